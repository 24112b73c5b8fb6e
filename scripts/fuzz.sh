#!/usr/bin/env bash
# Builds and runs the cargo-fuzz targets of fuzz/ (see fuzz/README.md), each for a while, and fails if one crashes.
#
#   bash scripts/fuzz.sh [--seconds N] [--runs N] [target...]
#
#   --seconds N   run each target for N seconds (default 50; CI uses the default)
#   --runs N      stop each target after N executions instead (no time limit unless --seconds is given too)
#   --jobs N      libFuzzer workers per target (default 1)
#   --parallel N  run N targets at a time (default 1; CI runs 2, one a core), each still for --seconds
#   --build-only  build the targets and stop
#   target...     admission_review admission_mutate beam_yaml policy (default: all)
#   FUZZ_TOOLCHAIN=stable  use that toolchain (see below) instead of choosing
#
# Needs only a stable Rust toolchain: cargo-fuzz is installed from crates.io when missing (pinned, --locked); a
# nightly toolchain is used when rustup has one, else stable with RUSTC_BOOTSTRAP=1 (for any nightly-only flag
# cargo-fuzz passes; with --sanitizer none the ones it passes today are stable -C flags). No sanitizer: the crates are #![forbid(unsafe_code)], and ASAN would halve the speed; debug
# assertions are on (-a), so integer overflows are crashes too. The build goes to fuzz/target (gitignored, reusable
# between runs); libFuzzer's growing corpus to fuzz/corpus/<target> (gitignored) beside the committed seeds in
# fuzz/seeds/<target> and the inputs of past findings in fuzz/regressions; a crashing input to
# fuzz/artifacts/<target>/.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.1
ALL_TARGETS=(admission_review admission_mutate beam_yaml policy)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz="$root/fuzz"
seconds=""
runs=""
jobs=1
parallel=1
build_only=0
targets=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --runs) runs="$2"; shift 2 ;;
        --runs=*) runs="${1#*=}"; shift ;;
        --jobs) jobs="$2"; shift 2 ;;
        --jobs=*) jobs="${1#*=}"; shift ;;
        --parallel) parallel="$2"; shift 2 ;;
        --parallel=*) parallel="${1#*=}"; shift ;;
        --build-only) build_only=1; shift ;;
        -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")
if [[ -z "$seconds" ]]; then
    if [[ -n "$runs" ]]; then seconds=0; else seconds=50; fi   # libFuzzer: 0 = no time limit
fi
for target in "${targets[@]}"; do
    [[ -f "$fuzz/fuzz_targets/$target.rs" ]] || { echo "fuzz.sh: no target $target (have: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

log() { printf '==> %s\n' "$*" >&2; }

# cargo-fuzz, pinned.
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

# Nightly when rustup has one; otherwise stable, allowed the nightly flags. FUZZ_TOOLCHAIN=stable forces the path CI
# takes on a machine without nightly.
toolchain=()
if [[ -n "${FUZZ_TOOLCHAIN:-}" ]]; then
    toolchain=(+"$FUZZ_TOOLCHAIN")
    [[ "$FUZZ_TOOLCHAIN" == nightly* ]] || export RUSTC_BOOTSTRAP=1
    log "toolchain: $(rustc "${toolchain[@]}" --version) (FUZZ_TOOLCHAIN${RUSTC_BOOTSTRAP:+, RUSTC_BOOTSTRAP=1})"
elif command -v rustup >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
    log "toolchain: nightly ($(rustc +nightly --version))"
else
    export RUSTC_BOOTSTRAP=1
    if command -v rustup >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q '^stable'; then
        toolchain=(+stable)
    fi
    log "toolchain: $(rustc "${toolchain[@]}" --version) with RUSTC_BOOTSTRAP=1 (no nightly installed)"
fi

# One build for every target: release, debug assertions, coverage instrumentation, no sanitizer; 16 codegen units
# (cargo-fuzz defaults to 1, which left one of two cores idle for most of a 13-minute cold build).
flags=(--sanitizer none --debug-assertions --codegen-units 16 --target-dir "$fuzz/target")
cd "$fuzz"
started=$(date +%s)
log "building ${targets[*]}"
for target in "${targets[@]}"; do
    cargo "${toolchain[@]}" fuzz build "${flags[@]}" "$target"
done
log "built in $(($(date +%s) - started)) s"
[[ $build_only -eq 0 ]] || exit 0

# fuzz_target TARGET: one target's run; its output in fuzz/logs/<target>.log, a summary (or the log's end) printed
# when it is over, its status the run's.
fuzz_target() {
    local target=$1
    local corpus="$fuzz/corpus/$target"
    mkdir -p "$corpus" "$fuzz/artifacts/$target" "$fuzz/logs"
    local args=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1
          -artifact_prefix="$fuzz/artifacts/$target/")
    [[ -z "$runs" ]] || args+=(-runs="$runs")
    [[ ! -f "$fuzz/dicts/$target.dict" ]] || args+=(-dict="$fuzz/dicts/$target.dict")
    [[ "$jobs" -le 1 ]] || args+=(-fork="$jobs")
    log "fuzzing $target (${runs:+$runs runs}${runs:+, }time limit ${seconds} s; 0 = none)"
    local target_started target_log=$fuzz/logs/$target.log
    target_started=$(date +%s)
    # The first folder receives new inputs; the seeds and the inputs of past findings (fuzz/regressions, replayed by
    # every target) are only read. libFuzzer prints a line per new input (thousands a minute): kept in the log, its
    # summary shown, and the log's end when the target fails.
    if cargo "${toolchain[@]}" fuzz run "${flags[@]}" "$target" "$corpus" "$fuzz/seeds/$target" "$fuzz/regressions" \
        -- "${args[@]}" >"$target_log" 2>&1; then
        grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done [0-9]+ runs)' "$target_log" | tail -n 3 | sed "s/^/$target: /" || true
        log "$target: no crash in $(($(date +%s) - target_started)) s"
    else
        tail -n 60 "$target_log"
        log "$target: FAILED (input saved in fuzz/artifacts/$target/; reproduce with" \
            "cargo ${toolchain[*]} fuzz run ${flags[*]} $target fuzz/artifacts/$target/<file>)"
        return 1
    fi
}

# Up to --parallel targets at once (one a core): each gets its full time, the whole run takes less of the clock.
declare -A running=() # pid -> target
failed=()
wait_one() {
    local pid status=0
    wait -n -p pid "${!running[@]}" || status=$?
    [[ $status == 0 ]] || failed+=("${running[$pid]}")
    unset "running[$pid]"
}
for target in "${targets[@]}"; do
    while ((${#running[@]} >= parallel)); do wait_one; done
    fuzz_target "$target" &
    running[$!]=$target
done
while ((${#running[@]} > 0)); do wait_one; done
log "done in $(($(date +%s) - started)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
    log "crashes in: ${failed[*]}"
    exit 1
fi
