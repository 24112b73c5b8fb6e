#!/usr/bin/env bash
# The Spark stand-in's entry point (see Dockerfile), doing what the official image's /opt/entrypoint.sh does for
# Spark on Kubernetes: the pod spec Spark builds runs this image with `driver ARGS...` or `executor`, and passes
# what they need in the environment (SPARK_DRIVER_BIND_ADDRESS, SPARK_EXECUTOR_* and SPARK_JAVA_OPT_*).
set -eo pipefail

# Root steps down to spark, as the official image does with gosu.
switch_user=()
if [ "$(id -u)" = 0 ]; then
  switch_user=(gosu spark)
fi

SPARK_CLASSPATH="$SPARK_CLASSPATH:${SPARK_HOME}/jars/*"
# The executor's JVM options come as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... in order.
executor_java_opts=()
while IFS= read -r name; do
  executor_java_opts+=("${!name}")
done < <(env | sed -n 's/^\(SPARK_JAVA_OPT_[0-9]*\)=.*/\1/p' | sort -t_ -k4 -n)
if [ -n "$SPARK_EXTRA_CLASSPATH" ]; then
  SPARK_CLASSPATH="$SPARK_CLASSPATH:$SPARK_EXTRA_CLASSPATH"
fi
if [ -n "$HADOOP_CONF_DIR" ]; then
  SPARK_CLASSPATH="$HADOOP_CONF_DIR:$SPARK_CLASSPATH"
fi
if [ -n "$SPARK_CONF_DIR" ]; then
  SPARK_CLASSPATH="$SPARK_CONF_DIR:$SPARK_CLASSPATH"
elif [ -n "$SPARK_HOME" ]; then
  SPARK_CLASSPATH="$SPARK_HOME/conf:$SPARK_CLASSPATH"
fi
# Files in the working directory (what spark-submit downloaded) are on the classpath too.
SPARK_CLASSPATH="$SPARK_CLASSPATH:$PWD"

case "$1" in
  driver)
    shift 1
    command=(
      "$SPARK_HOME/bin/spark-submit"
      --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS"
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=$SPARK_DRIVER_BIND_ADDRESS"
      --deploy-mode client
      "$@"
    )
    ;;
  executor)
    shift 1
    command=(
      "${JAVA_HOME}/bin/java"
      "${executor_java_opts[@]}"
      -Xms"$SPARK_EXECUTOR_MEMORY"
      -Xmx"$SPARK_EXECUTOR_MEMORY"
      -cp "$SPARK_CLASSPATH:$SPARK_DIST_CLASSPATH"
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend
      --driver-url "$SPARK_DRIVER_URL"
      --executor-id "$SPARK_EXECUTOR_ID"
      --cores "$SPARK_EXECUTOR_CORES"
      --app-id "$SPARK_APPLICATION_ID"
      --hostname "$SPARK_EXECUTOR_POD_IP"
      --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID"
      --podName "$SPARK_EXECUTOR_POD_NAME"
    )
    ;;
  *)
    # Anything else runs as given, as the official image's pass-through does.
    exec "$@"
    ;;
esac

# tini reaps the JVM's children and forwards signals (-s: also when it is not PID 1).
exec "${switch_user[@]}" /usr/bin/tini -s -- "${command[@]}"
