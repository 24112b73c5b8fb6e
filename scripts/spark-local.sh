#!/usr/bin/env bash
# Spark and Beam's Spark job-server jar, for the stand-ins of the official apache/spark, beam_spark3_job_server and
# Spark operator images (scripts/e2e-images.sh). Idempotent: every piece is cached outside the checkout in
# $BEAMSTACK_CACHE/spark (default ~/.cache/beamstack/spark) and made only when missing. The images read
# .tools/spark/env.
#
# What it prepares, from the registries this machine reaches:
#   1. SPARK_HOME (spark/spark-<version>): a Spark distribution as spark-<version>-bin-hadoop3 lays it out (bin,
#      sbin, jars, data, examples, licenses), taken from PyPI's pyspark sdist, whose deps/ folder is that
#      distribution: PySpark installs its Spark from it. (downloads.apache.org, where the binary tarball lives, is
#      not reachable here.)
#   2. Beam's Spark 3 job-server jar, built here with Maven (scripts/spark-job-server/pom.xml: the mirror has no
#      org.apache.beam:beam-runners-spark-3-job-server at all), from the published beam-runners-spark-3 runner.
#
# Versions: Spark 3.5.6 (the Spark kubectl beam names by default) and Beam 2.62.0, the newest Beam whose Spark 3
# runner resolves from the mirror (its metadata: 2.62.0 and 2.70.0; 2.70.0 needs beam-runners-java-job-service
# 2.70.0, which is missing). Override with SPARK_VERSION, BEAM_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

spark=${SPARK_VERSION:-3.5.6}
beam=${BEAM_VERSION:-2.62.0}
python=${PYTHON:-python3}

cache="${BEAMSTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beamstack}"
base=$cache/spark
dl=$base/downloads
spark_home=$base/spark-$spark
jar_name=beam-runners-spark-3-job-server-$beam.jar
jar=$base/jars/$jar_name
mkdir -p "$dl" "$base/jars"

log() { printf '[spark-local] %s\n' "$*"; }
start=$SECONDS

# Java 17 and Maven come with scripts/flink-local.sh, which CI runs first (scripts/e2e-images.sh).
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  log "needs java and mvn: run scripts/flink-local.sh"
  exit 1
fi

# 1. Spark.
if [ ! -f "$spark_home/.complete" ]; then
  log "Spark $spark from PyPI (the pyspark sdist's deps/: bin, sbin, jars, data, examples, licenses)"
  sdist=$dl/pyspark-$spark.tar.gz
  if [ ! -f "$sdist" ]; then
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
      "pyspark==$spark" -d "$dl"
  fi
  rm -rf "$spark_home" "$base/unpack"
  mkdir -p "$base/unpack" "$spark_home"
  tar -xzf "$sdist" -C "$base/unpack" "pyspark-$spark/deps"
  deps=$base/unpack/pyspark-$spark/deps
  mv "$deps/bin" "$deps/sbin" "$deps/jars" "$deps/data" "$deps/examples" "$deps/licenses" "$spark_home/"
  # Windows launchers are not in the Linux distribution's image.
  rm -f "$spark_home"/bin/*.cmd
  chmod +x "$spark_home"/bin/* "$spark_home"/sbin/*
  echo "Spark $spark built for Hadoop 3 (from PyPI's pyspark $spark)" >"$spark_home/RELEASE"
  rm -rf "$base/unpack"
  touch "$spark_home/.complete"
fi

# 2. The job-server jar, rebuilt whenever its pom changes (a cached jar from an older pom would carry its faults).
pom_sum=$(sha256sum scripts/spark-job-server/pom.xml | cut -c1-16)
if [ ! -f "$jar" ] || [ "$(cat "$jar.pom-sum" 2>/dev/null)" != "$pom_sum" ]; then
  rm -f "$jar" "$jar.pom-sum"
  log "building $jar_name with Maven (the mirror lacks the published jar; see scripts/spark-job-server/pom.xml)"
  mvn -B -q -f scripts/spark-job-server/pom.xml package -Dbeam.version="$beam" \
    -Djobserver.out="$base/job-server-build" -Dmaven.repo.local="$cache/m2" 2>&1 |
    sed 's/\x1b\[[0-9;]*m//g' | grep -v -e '^\[WARNING\]' -e '^$' || true
  built=$base/job-server-build/$jar_name
  [ -f "$built" ] || { echo "Maven did not produce $built" >&2; exit 1; }
  mv "$built" "$jar"
  echo "$pom_sum" >"$jar.pom-sum"
  rm -rf "$base/job-server-build"
fi

mkdir -p "$root/.tools/spark"
cat >"$root/.tools/spark/env" <<ENV
SPARK_HOME=$spark_home
SPARK_VERSION=$spark
BEAM_VERSION=$beam
JOB_SERVER_JAR=$jar
JOB_SERVER_POM_SUM=$pom_sum
ENV
log "ready in $((SECONDS - start))s: Spark $spark; Beam $beam (.tools/spark/env)"
