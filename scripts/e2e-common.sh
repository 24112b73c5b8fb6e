# shellcheck shell=bash disable=SC2154  # $pids and $log_name are set by the sourcing script
# Shared by the end-to-end harness's scripts, which source it after setting $pids (where each daemon's NAME.pid and
# NAME.log live) and $log_name. Daemons are started in the background and stopped by the PID recorded at start:
# the daemon's own PID, never a subshell's, so that stopping it stops it.

log() { printf '%s: %s\n' "$log_name" "$*" >&2; }

running() { [[ -f "$pids/$1.pid" ]] && kill -0 "$(cat "$pids/$1.pid")" 2>/dev/null; }

# start NAME COMMAND...: COMMAND in the background, its output appended to NAME.log.
start() {
    local name=$1
    shift
    "$@" >>"$pids/$name.log" 2>&1 &
    echo $! >"$pids/$name.pid"
}

# stop NAME: SIGTERM, up to 15 s to exit, then SIGKILL.
stop() {
    if running "$1"; then
        local pid
        pid=$(cat "$pids/$1.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pids/$1.pid"
}

# wait_for NAME COMMAND...: until COMMAND succeeds (30 s at most), or fail with the daemon's log.
wait_for() {
    local name=$1
    shift
    for _ in $(seq 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if ! running "$name"; then break; fi
        sleep 0.1
    done
    log "$name did not come up; its log ends with:"
    tail -30 "$pids/$name.log" >&2 || true
    exit 1
}

# The address of the interface the default route leaves by: the node's address, which pods reach it by.
node_ip() {
    local device
    device=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1); exit}')
    ip -4 -o addr show dev "$device" scope global | awk '{split($4, a, "/"); print a[1]; exit}'
}
