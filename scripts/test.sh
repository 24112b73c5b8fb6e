#!/usr/bin/env bash
# Every check the project has, as CI runs them on a fresh machine: formatting, lints, unit and integration tests, the
# Helm chart (helm lint, helm template), the release workflow (actionlint) and the krew manifest it fills, the
# project's images built from images/ with buildah, the end-to-end suite against a real single-node Kubernetes with
# Beamstack installed by `helm install` from those images, short fuzzing runs (scripts/fuzz.sh: cargo-fuzz from
# crates.io), and the main job (scripts/demo.sh) as a smoke test. Needs the Rust toolchain (cargo, rustfmt, clippy),
# a C compiler, Go (to build the Kubernetes binaries, CoreDNS, helm and actionlint from their modules, once per
# machine, into ~/.cache/beamstack), curl, openssl, python3 with venv, and root (the node: containerd, kubelet,
# iptables); Debian's packages it needs are installed by scripts/e2e-packages.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

cache="${BEAMSTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beamstack}"
export BEAMSTACK_CACHE=$cache
# Compiled dependencies are shared between clones (cargo's build directory, outside the checkout; binaries still land
# in ./target): a fresh clone on a warm machine compiles only the workspace's own crates. Cargo locks the folder, so
# two runs at once wait for each other rather than mix. Emptied when it outgrows 15 GiB, so the disk does not fill.
# Cargo hashes workspace crates by their path within the workspace, so every clone shares one copy of them and tells
# them fresh by file times: a fresh clone's files are newer than any artifact and are rebuilt, but a second, older
# checkout built with this directory can be handed the first one's binaries (seen with two worktrees; touch its files).
export CARGO_BUILD_BUILD_DIR="$cache/cargo-build"
# The lints and the fuzz build run beside the critical path (below) in a build directory of their own: cargo locks a
# build directory for the whole of a build, so sharing one would make the two wait for each other.
checks_build_dir="$cache/cargo-build-checks"
for dir in "$CARGO_BUILD_BUILD_DIR" "$checks_build_dir"; do
  if [[ -d "$dir" ]] && (($(du -sk "$dir" | cut -f1) > 15 * 1024 * 1024)); then
    echo "emptying $dir (over 15 GiB)"
    rm -rf "$dir"
  fi
done
mkdir -p target/ci-logs

# What needs the network more than the processors starts now, beside the Rust checks: Python venvs and Debian's
# packages and the Flink pieces (downloads), and the Go builds (once per machine; downloads, then compiling). On a
# cold machine this saves the minutes the downloads and single-threaded link steps would otherwise take alone.
background() { # NAME COMMAND...: runs COMMAND with its output in target/ci-logs/NAME.log, timed
  local name=$1
  shift
  (
    start=$SECONDS status=0
    "$@" || status=$?
    echo "($name: $((SECONDS - start)) s, exit $status)"
    exit $status
  ) >"target/ci-logs/$name.log" 2>&1 &
  background_pids[$name]=$!
}
collect() { # NAME: waits for it, shows its output, fails if it failed
  local status=0
  wait "${background_pids[$1]}" || status=$?
  cat "target/ci-logs/$1.log"
  unset "background_pids[$1]"
  [[ $status == 0 ]] || { echo "$1 failed (exit $status)"; exit 1; }
}
declare -A background_pids=()
kill_tree() { local child; for child in $(pgrep -P "$1"); do kill_tree "$child"; done; kill "$1" 2>/dev/null || true; }
stop_background() { local pid; for pid in "${background_pids[@]}"; do kill_tree "$pid"; done; }
trap stop_background EXIT
# The node's images other than ours (bases, stand-ins for official images) follow the downloads they are made
# from, with the two Go tools they hold built first: on a cold machine that is ~6 minutes of apt, pip, Maven and
# buildah (mostly waiting on the network and the disk) that no longer sit between the Go builds and the cluster.
download_steps() {
  bash scripts/beam-venv.sh && bash scripts/e2e-packages.sh && bash scripts/flink-local.sh &&
    bash scripts/e2e-tools.sh coredns beam-python-boot >/dev/null && bash scripts/e2e-images.sh stand-ins
}
# Checks only the end of the run waits for: clippy, cargo-deny (installed once) and the fuzz targets' build. They run
# at the lowest CPU priority beside the builds below and the cluster's start, taking what those leave idle, and are
# waited for before the end-to-end tests: a compile beside the Flink scenarios slowed them twofold on this 2-core
# machine (1046 s against 507 s alone; nice does not help against two vCPUs sharing a core's caches), and their
# timeouts are set for a machine that is not compiling.
check_steps() { # every command checked by hand: `set -e` does not apply inside `background`'s `"$@" || status=$?`
  renice -n 19 -p "$BASHPID" >/dev/null
  export CARGO_BUILD_BUILD_DIR=$checks_build_dir CARGO_TARGET_DIR=$PWD/target/checks
  echo "==> cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings || return
  echo "==> cargo-deny: licences, banned crates (one crypto provider: ring; no serde_yaml), sources, duplicates"
  # Advisories are left out: the RustSec database lives on GitHub, which CI's machines cannot reach (deny.toml).
  if ! cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0.20.2'; then
    # Its release profile is fat LTO in one codegen unit (4.9 of a cold run's minutes). Built unoptimised instead: it
    # checks a graph our size in a few seconds either way.
    cargo install --locked --quiet --debug cargo-deny --version 0.20.2 || return
  fi
  cargo deny --log-level error check bans licenses sources || return
  echo "==> cargo-fuzz targets built (scripts/fuzz.sh --build-only; they run after the tests)"
  bash scripts/fuzz.sh --build-only
}

step "started in the background: Beam's venv, Debian's packages, Flink, Spark, then the node's base and stand-in images (target/ci-logs/downloads.log); Kubernetes, CoreDNS, helm, actionlint, the Spark operator built from Go modules (target/ci-logs/go-tools.log); clippy, cargo-deny and the fuzz build at low priority (target/ci-logs/checks.log)"
background downloads download_steps
background go-tools bash scripts/e2e-tools.sh
background checks check_steps

step "cargo fmt --check"
cargo fmt --all --check

# Everything that needs neither the downloads nor the Go tools is compiled before waiting for them: on a cold machine
# the Go builds take ~30 minutes, and the Rust builds fill the cores their single-threaded link steps leave idle.
step "cargo build (the plugin, the webhook and the tools the end-to-end suite runs)"
cargo build --workspace --bins --locked
# The webhook's image is built from this debug build, not a release one: the same source with overflow checks on
# (stricter), and it spares a cold run the whole dependency graph compiled a second time at opt-level 3 (about 10 of
# its minutes). The release build is the release workflow's (.github/workflows/release.yaml) and `make release`.
export BEAM_WEBHOOK_IMAGE_BIN=$PWD/target/debug/beam-webhook

step "cargo test --no-run (the test executables, compiled before the cluster is up)"
cargo test --workspace --locked --no-run

step "Beam's venv; Debian's packages: containerd, runc, CNI plugins, iptables, buildah, debootstrap, Prometheus, shellcheck; Flink 1.19 and Spark 3.5.6 with Beam's job-server jars; the base and stand-in images (scripts/e2e-images.sh stand-ins; all cached in $cache)"
collect downloads

step "Kubernetes 1.34.4, CoreDNS, helm, actionlint and the Kubeflow Spark operator, built from their Go modules (cached in $cache/bin)"
collect go-tools

step "Helm chart: helm lint, helm template (the three certificate modes)"
.tools/bin/helm lint --strict charts/beamstack 2>/dev/null
.tools/bin/helm template beamstack charts/beamstack -n beamstack --kube-version 1.34.4 2>/dev/null >/dev/null
.tools/bin/helm template beamstack charts/beamstack -n beamstack --kube-version 1.34.4 \
  --set certificates.mode=provided --set certificates.caBundle=Y2E= --set webhook.url=https://127.0.0.1:9443 \
  2>/dev/null >/dev/null
.tools/bin/helm template beamstack charts/beamstack -n beamstack --kube-version 1.34.4 \
  --set certificates.mode=selfManaged 2>/dev/null >/dev/null
echo "ok"

step "release: actionlint on .github/workflows (with shellcheck on its scripts), the krew manifest it fills"
.tools/bin/actionlint -no-color
bash scripts/check-krew-manifest.sh

step "a real single-node Kubernetes (etcd, kube-apiserver, containerd, kubelet, controller-manager, scheduler, kube-proxy, CoreDNS), the images, helm install of Beamstack, the Flink and Spark operators"
trap 'stop_background; bash scripts/e2e-cluster.sh down' EXIT
bash scripts/e2e-cluster.sh up
.tools/bin/kubectl --kubeconfig .e2e/kubeconfig get pods -n beamstack -o wide

step "clippy, cargo-deny and the fuzz build (started at the beginning, at low priority; done before the tests)"
collect checks

step "cargo test (unit, integration, and the end-to-end scenarios against that cluster)"
BEAMSTACK_E2E=1 cargo test --workspace --locked 2>&1 | tee target/test-output.txt
passed=$(grep -Eo '[0-9]+ passed' target/test-output.txt | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s += $1} END {print s + 0}')

step "fuzzing: every cargo-fuzz target for 50 s after replaying fuzz/regressions, two at a time (scripts/fuzz.sh, fuzz/README.md)"
# In the build directory the background build used: the targets are built there already.
CARGO_BUILD_BUILD_DIR=$checks_build_dir bash scripts/fuzz.sh --parallel 2

step "shipped policies: kubectl beam policy test policies/"
# The binary the workspace build made: `cargo run -p kubectl-beam` alone would unify features differently and
# recompile part of the dependency graph (1.5 minutes of a cold run).
target/debug/kubectl-beam policy test policies/ | tail -n 1

step "main job: scripts/demo.sh"
bash scripts/demo.sh >target/demo-output.txt 2>&1 || { cat target/demo-output.txt; exit 1; }
grep -q 'has 6 problems' target/demo-output.txt
grep -q 'beam-worker-pool' target/demo-output.txt
echo "demo: webhook served, patched, denied and drained"

echo
echo "${passed} passed, ${failed} failed"
