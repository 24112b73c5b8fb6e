#!/usr/bin/env bash
# The operator stand-in's entry point (see Dockerfile): the operator binary with the container's arguments, under
# tini, as the official image's entrypoint runs it.
set -euo pipefail
exec /usr/bin/tini -s -- /usr/bin/spark-operator "$@"
