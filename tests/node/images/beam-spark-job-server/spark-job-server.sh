#!/usr/bin/env bash
# The job server stand-in's entry point (see Dockerfile): Beam's Spark job server with the container's arguments,
# Spark's jars after the job server's. exec, so the JVM is the container's process and receives its signals.
exec java ${JAVA_OPTS:-} -cp "jars/*:spark-jars/*" org.apache.beam.runners.spark.SparkJobServerDriver "$@"
