#!/usr/bin/env bash
# The operator stand-in's entry point (see Dockerfile), the contract of the official image's: `operator` starts the
# operator in the foreground (exec: the JVM gets the container's signals), `help` says what it does, anything else
# runs as given. LOG_CONFIG and JVM_ARGS come from the Deployment, unquoted on purpose: each holds several flags.
cd /flink-kubernetes-operator || exit 1
case "${1:-help}" in
    operator)
        echo "Starting Operator"
        # shellcheck disable=SC2086
        exec java -cp "./$KUBERNETES_STANDALONE_JAR:./$OPERATOR_JAR:$OPERATOR_LIB/*" ${LOG_CONFIG:-} ${JVM_ARGS:-} \
            org.apache.flink.kubernetes.operator.FlinkOperator ;;
    help)
        echo "Usage: $(basename "$0") operator, or any command" ;;
    *)
        exec "$@" ;;
esac
