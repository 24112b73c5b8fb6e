#!/usr/bin/env bash
# Runs one of the beam-java-transforms image's two roles on the same classpath (lib/* and our jar):
#
#   entrypoint.sh expansion-service [PORT [ARGS...]]   Beam's Java expansion service (port 8091 by default); the
#                                                      transforms it expands run in the EXTERNAL environment at
#                                                      localhost:$BEAM_JAVA_WORKER_POOL_PORT (50001 by default)
#   entrypoint.sh worker-pool [PORT]                   the Java SDK worker pool Flink's TaskManagers call
#                                                      (port 50001 by default)
#
# JAVA_OPTS, if set, is added to the JVM's options (split at whitespace). BEAM_JAVA_HOME is the folder holding
# beam-java-transforms.jar and lib/ (default: this script's folder, /opt/beamstack/beam-java in the image).
set -euo pipefail

cd "${BEAM_JAVA_HOME:-$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")}"
classpath="lib/*:beam-java-transforms.jar"
read -r -a java_opts <<<"${JAVA_OPTS:-}"

usage() {
    echo "usage: $0 expansion-service [PORT [ARGS...]] | worker-pool [PORT]" >&2
    exit 2
}

role=${1:-}
[[ $# -gt 0 ]] && shift

case "$role" in
    expansion-service)
        port=${1:-8091}
        [[ $# -gt 0 ]] && shift
        exec java "${java_opts[@]}" -cp "$classpath" org.apache.beam.sdk.expansion.service.ExpansionService "$port" \
            --defaultEnvironmentType=EXTERNAL \
            --defaultEnvironmentConfig="localhost:${BEAM_JAVA_WORKER_POOL_PORT:-50001}" \
            "$@"
        ;;
    worker-pool)
        [[ $# -le 1 ]] || usage
        # The harness sizes its caches with jamm, whose agent measures exactly; Beam's own Java container loads it too.
        jamm=(lib/jamm-*.jar)
        [[ -f "${jamm[0]}" ]] || { echo "$0: no jamm jar in $PWD/lib" >&2; exit 1; }
        exec java -javaagent:"${jamm[0]}" "${java_opts[@]}" -cp "$classpath" \
            dev.beamstack.workerpool.WorkerPool "${1:-50001}"
        ;;
    *)
        usage
        ;;
esac
