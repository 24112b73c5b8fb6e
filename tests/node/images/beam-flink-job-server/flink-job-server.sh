#!/usr/bin/env bash
# The job server stand-in's entry point (see Dockerfile): Beam's Flink job server with the container's arguments.
# exec, so the JVM is the container's process and receives its signals.
exec java ${JAVA_OPTS:-} -cp "jars/*" org.apache.beam.runners.flink.FlinkJobServerDriver "$@"
