#!/usr/bin/env bash
# The Flink stand-in's entry point (see Dockerfile): the contract of the official image's docker-entrypoint.sh,
# written for this recipe. Before the command: jemalloc preloaded unless DISABLE_JEMALLOC=true, the plugins named in
# ENABLE_BUILT_IN_PLUGINS linked from opt/, and the configuration given by the environment (the JobManager's RPC
# address, blob and query ports, TASK_MANAGER_NUMBER_OF_TASK_SLOTS, FLINK_PROPERTIES) written with Flink's own
# config-parser-utils.sh. A read-only conf/ (the operator mounts its ConfigMap there) makes that write fail, which,
# as in the official image, is reported and not fatal. Then `jobmanager`, `taskmanager`, `standalone-job` and
# `history-server` start Flink in the foreground; anything else runs as given. Started as root, it steps down to flink.

as_flink() {
    if [[ $(id -u) == 0 ]]; then echo gosu flink; fi
}

if [[ "${DISABLE_JEMALLOC:-false}" == false ]]; then
    for library in "/usr/lib/$(uname -m)-linux-gnu/libjemalloc.so.2" /usr/lib/x86_64-linux-gnu/libjemalloc.so.2; do
        if [[ -f "$library" ]]; then
            export LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$library"
            break
        fi
    done
fi

if [[ -n "${ENABLE_BUILT_IN_PLUGINS:-}" ]]; then
    IFS=';' read -r -a plugins <<<"$ENABLE_BUILT_IN_PLUGINS"
    for plugin in "${plugins[@]}"; do
        [[ -e "$FLINK_HOME/opt/$plugin" ]] || { echo "Plugin $plugin does not exist in $FLINK_HOME/opt. Exiting."; exit 1; }
        mkdir -p "$FLINK_HOME/plugins/${plugin%.jar}"
        ln -fs "$FLINK_HOME/opt/$plugin" "$FLINK_HOME/plugins/${plugin%.jar}"
        echo "Enabled plugin $plugin"
    done
fi

settings=(-Djobmanager.rpc.address="${JOB_MANAGER_RPC_ADDRESS:-$(hostname -f)}" -Dblob.server.port=6124
    -Dquery.server.port=6125)
[[ -z "${TASK_MANAGER_NUMBER_OF_TASK_SLOTS:-}" ]] ||
    settings+=(-Dtaskmanager.numberOfTaskSlots="$TASK_MANAGER_NUMBER_OF_TASK_SLOTS")
while IFS= read -r property; do
    property=${property//[[:space:]]/}
    [[ -n "$property" ]] || continue
    settings+=(-D"${property%%:*}=$(envsubst <<<"${property#*:}")")
done <<<"${FLINK_PROPERTIES:-}"
"$FLINK_HOME/bin/config-parser-utils.sh" "$FLINK_HOME/conf" "$FLINK_HOME/bin" "$FLINK_HOME/lib" "${settings[@]}"

command=${1:-help}
case "$command" in
    help)
        echo "Usage: $(basename "$0") (jobmanager|standalone-job|taskmanager|history-server), or any command"
        exit 0 ;;
    jobmanager) shift; exec $(as_flink) "$FLINK_HOME/bin/jobmanager.sh" start-foreground "$@" ;;
    standalone-job) shift; exec $(as_flink) "$FLINK_HOME/bin/standalone-job.sh" start-foreground "$@" ;;
    history-server) shift; exec $(as_flink) "$FLINK_HOME/bin/historyserver.sh" start-foreground "$@" ;;
    taskmanager) shift; exec $(as_flink) "$FLINK_HOME/bin/taskmanager.sh" start-foreground "$@" ;;
    *) exec $(as_flink) "$@" ;;
esac
