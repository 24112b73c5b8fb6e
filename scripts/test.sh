#!/usr/bin/env bash
# Every check the project has, as CI runs them on a fresh machine: formatting, lints, all tests, and the main job
# (scripts/demo.sh) as a smoke test. Needs the Rust toolchain (cargo, rustfmt, clippy), curl and python3 (with venv;
# scripts/beam-venv.sh installs apache-beam from PyPI for the tests that compare verdicts with Beam).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Beam's own Python package, the judge of Beam YAML (installed once into .tools/)"
bash scripts/beam-venv.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "one crypto provider: ring (no aws-lc-rs, no openssl in the dependency graph)"
if cargo tree --workspace --locked --edges normal,build,dev --prefix none | grep -E '^(aws-lc-(rs|sys)|openssl(-sys)?) '; then
  echo "a second crypto provider entered the dependency graph (see above): keep rustls on ring only" >&2
  exit 1
fi
echo "ok"

step "cargo test"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
passed=$(grep -Eo '[0-9]+ passed' target/test-output.txt | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s += $1} END {print s + 0}')

step "shipped policies: kubectl beam policy test policies/"
cargo run --quiet --locked -p kubectl-beam -- policy test policies/ | tail -n 1

step "main job: scripts/demo.sh"
bash scripts/demo.sh >target/demo-output.txt 2>&1 || { cat target/demo-output.txt; exit 1; }
grep -q 'has 6 problems' target/demo-output.txt
grep -q 'beam-worker-pool' target/demo-output.txt
echo "demo: webhook served, patched, denied and drained"

echo
echo "${passed} passed, ${failed} failed"
