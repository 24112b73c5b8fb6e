#!/usr/bin/env bash
# Flink and Beam's Flink job-server jar, for the stand-ins of the official flink and beam_flink job server images
# (scripts/e2e-images.sh). Idempotent: every piece (Flink, the jar, Maven's repository) is cached outside the checkout in $BEAMSTACK_CACHE/flink (default
# ~/.cache/beamstack/flink) and built only when missing. Prints nothing but progress; the test reads .tools/flink/env.
#
# What it prepares, from the registries this machine reaches:
#   1. FLINK_HOME (flink/flink-<version>): Flink's lib/, opt/ and plugins/ from PyPI's
#      apache-flink-libraries sdist, and bin/ and conf/ from PyPI's apache-flink wheel (pyflink/bin, pyflink/conf):
#      PyFlink assembles its Flink home from these same two packages. The sdist's bin/ holds only
#      bash-java-utils.jar, so the scripts (standalone-job.sh, jobmanager.sh, taskmanager.sh, config.sh, ...) come
#      from the wheel, which is platform independent for them.
#   2. Beam's Flink job-server jar, beam-runners-flink-<minor>-job-server-<beam>.jar, built here with Maven
#      (scripts/flink-job-server/pom.xml, maven-shade-plugin) from the published beam-runners-flink-<minor> runner
#      and its dependencies. WHY: the Maven mirror this machine reaches (repo1.maven.org, partial) does not hold the
#      published org.apache.beam:beam-runners-flink-<minor>-job-server artifacts (404 for every minor and version
#      tried), so the jar is assembled the way Beam's runners/flink/job-server/flink_job_server.gradle shadowJar
#      assembles it (see the pom's header for what it bundles and leaves out).
#
# Versions: Beam 2.62.0 with Flink 1.19 (1.19.3). The mirror holds beam-runners-flink-1.19 only in 2.62.0 and
# 2.70.0, and 2.70.0's runner needs org.apache.beam:beam-runners-java-job-service:2.70.0, which the mirror lacks
# (404; it has that artifact up to 2.65.0). 2.62.0 resolves completely. Override with BEAM_VERSION, FLINK_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

beam=${BEAM_VERSION:-2.62.0}
flink=${FLINK_VERSION:-1.19.3}
minor=${flink%.*}
python=${PYTHON:-python3}

cache="${BEAMSTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beamstack}"
base=$cache/flink
dl=$base/downloads
flink_home=$base/flink-$flink
jar_name=beam-runners-flink-$minor-job-server-$beam.jar
jar=$base/jars/$jar_name
mkdir -p "$dl" "$base/jars"

log() { printf '[flink-local] %s\n' "$*"; }
start=$SECONDS

# Java 17 and Maven, from Debian's packages when the machine lacks them.
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  log "Java 17 and Maven from Debian's packages"
  sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  export DEBIAN_FRONTEND=noninteractive
  packages=(openjdk-17-jdk-headless maven)
  sudo_if_needed apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null ||
    { sudo_if_needed apt-get update -qq && sudo_if_needed apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; }
fi

# 1. Flink.
if [ ! -f "$flink_home/.complete" ]; then
  log "Flink $flink from PyPI (apache-flink-libraries sdist: lib, opt, plugins; apache-flink wheel: bin, conf)"
  sdist=$dl/apache-flink-libraries-$flink.tar.gz
  if [ ! -f "$sdist" ]; then
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
      "apache-flink-libraries==$flink" -d "$dl"
  fi
  wheel=$(ls "$dl"/apache_flink-"$flink"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: --python-version 3.11 \
      --platform manylinux2014_x86_64 "apache-flink==$flink" -d "$dl"
    wheel=$(ls "$dl"/apache_flink-"$flink"-*.whl | head -n 1)
  fi
  rm -rf "$flink_home" "$base/unpack"
  mkdir -p "$base/unpack" "$flink_home"
  tar -xzf "$sdist" -C "$base/unpack" "apache-flink-libraries-$flink/deps"
  deps=$base/unpack/apache-flink-libraries-$flink/deps
  mv "$deps/lib" "$deps/opt" "$deps/plugins" "$deps/licenses" "$flink_home/"
  mkdir -p "$flink_home/bin"
  mv "$deps/bin/bash-java-utils.jar" "$flink_home/bin/"
  "$python" - "$wheel" "$base/unpack" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    wheel.extractall(sys.argv[2], [n for n in wheel.namelist() if n.startswith(("pyflink/bin/", "pyflink/conf/"))])
PY
  cp -r "$base/unpack/pyflink/bin/." "$flink_home/bin/"
  cp -r "$base/unpack/pyflink/conf" "$flink_home/conf"
  chmod +x "$flink_home"/bin/*.sh "$flink_home/bin/flink"
  mkdir -p "$flink_home/usrlib" "$flink_home/log"
  rm -rf "$base/unpack"
  touch "$flink_home/.complete"
fi

# 2. The job-server jar.
if [ ! -f "$jar" ]; then
  log "building $jar_name with Maven (the mirror lacks the published jar; see scripts/flink-job-server/pom.xml)"
  mvn -B -q -f scripts/flink-job-server/pom.xml package \
    -Dbeam.version="$beam" -Dflink.minor="$minor" \
    -Djobserver.out="$base/job-server-build" -Dmaven.repo.local="$base/m2" 2>&1 |
    sed 's/\x1b\[[0-9;]*m//g' | grep -v -e '^\[WARNING\]' -e '^$' || true
  built=$base/job-server-build/$jar_name
  [ -f "$built" ] || { echo "Maven did not produce $built" >&2; exit 1; }
  mv "$built" "$jar"
  rm -rf "$base/job-server-build"
fi
# The FlinkDeployment's jarURI is local:///opt/flink/usrlib/<jar>: the image holds it in Flink's usrlib.
ln -sf "$jar" "$flink_home/usrlib/$jar_name"

mkdir -p "$root/.tools/flink"
cat >"$root/.tools/flink/env" <<EOF
FLINK_HOME=$flink_home
FLINK_VERSION=$flink
FLINK_MINOR=$minor
BEAM_VERSION=$beam
JOB_SERVER_JAR=$jar
EOF
log "ready in $((SECONDS - start))s: $(java -version 2>&1 | head -n 1); Flink $flink; Beam $beam (.tools/flink/env)"
