#!/usr/bin/env bash
# The benchmarks in one command: under load, policy scale, tenant scale, CEL against cel-go and the plugin (and
# through the API server with --apiserver); writes bench/BENCHMARKS.md (or --out FILE) with every figure, its
# baseline and its target. Baselines and subjects are measured in the same run, interleaved, so drift and other
# load on the machine hit both alike.
#
#   bash bench/run.sh            # full: 3 runs of everything (about 8 minutes after the build on 2 cores)
#   bash bench/run.sh --quick    # 1 run, shorter windows, fewer points (CI; about 2 minutes after the build)
#   bash bench/run.sh --apiserver   # also through the API server: creates via a real kube-apiserver (the e2e harness; its
#                                   # tools are built from their Go modules once, about 5 more minutes)
#
# Needs: cargo, python3, taskset (util-linux); Go 1.26 for the CEL benchmark (bench/cel-go builds cel-go and Kubernetes'
# CEL library from the Go module proxy; without `go` it is skipped); hyperfine and /usr/bin/time for
# the plugin benchmark (apt-get install -y hyperfine time), else the plugin is timed by a loop here and its memory read from
# /proc.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0
apiserver=0
out=bench/BENCHMARKS.md
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) quick=1 ;;
        --apiserver) apiserver=1 ;;
        --out) out=$2; shift ;;
        *) echo "usage: bash bench/run.sh [--quick] [--apiserver] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done

if [[ $quick == 1 ]]; then
    runs=1 window=1 warmup=0.3 sweep="1 4 16 64" rate_window=2 policy_rounds=400 plugin_runs=5 memory_runs=3
    cel_window=0.05 cel_repeats=2
else
    runs=3 window=2 warmup=0.5 sweep="1 2 4 8 16 32 64" rate_window=5 policy_rounds=2000 plugin_runs=20 memory_runs=5
    cel_window=0.15 cel_repeats=3
fi
rate_connections=8
runners=10000
base_port=${BENCH_PORT:-19443}

log() { echo "bench: $*" >&2; }

log "building (cargo build --release)"
cargo build --release --quiet
bin=$root/target/release
# The CEL benchmark's reference: cel-go, as bench/cel-go/go.mod pins it (go.sum is committed; -mod=mod lets an older
# go.sum be completed from the module proxy).
if command -v go >/dev/null; then
    log "building bench/cel-go ($(go version | cut -d' ' -f3))"
    go -C bench/cel-go build -mod=mod -o "$bin/cel-go-bench" .
fi

work=$(mktemp -d)
results=$work/results.jsonl
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# One core for the servers, another for the client, when there are two.
# (Arrays, not functions: `taskset` execs the command, so `$!` of a backgrounded server is the server's PID.)
if [[ $(nproc) -ge 2 ]]; then
    on_server=(taskset -c 1)
    on_client=(taskset -c 0)
    pinning="servers (and the policy and plugin benchmarks) on CPU 1, the load generator on CPU 0 (taskset, one core each)"
else
    on_server=(env)
    on_client=(env)
    pinning="one CPU: servers and load generator share it (no pinning)"
fi

record() { echo "$1" >>"$results"; }
command_line="bash bench/run.sh"; [[ $quick == 1 ]] && command_line+=" --quick"; [[ $apiserver == 1 ]] && command_line+=" --apiserver"
record "$(python3 - "$command_line" "$pinning" "$quick" <<'EOF'
import json, os, platform, subprocess, sys
def sh(*cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError: return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
load = open("/proc/loadavg").read().split()[:3]
print(json.dumps({"kind": "machine", "command": sys.argv[1], "pinning": sys.argv[2], "quick": sys.argv[3] == "1",
    "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "rustc": sh("rustc", "--version"),
    "commit": sh("git", "rev-parse", "--short", "HEAD"), "date": sh("date", "-u", "+%Y-%m-%d %H:%M UTC"),
    "loadavg_start": load, "memory": sh("sh", "-c", "free -m | awk '/Mem:/ {print $2}'") + " MiB"}))
EOF
)"

log "preparing policies, reviews, answers and certificates in $work"
"$bin/bench-server" prepare --out "$work" >&2
"$bin/beam-webhook" certs --out "$work/certs" --name localhost --name 127.0.0.1 --days 2 >/dev/null
ca=$work/certs/ca.crt

# start NAME COMMAND...: runs a server on the server core, waits for its JSON "listening" line on stdout.
start() {
    local name=$1
    shift
    "${on_server[@]}" "$@" >"$work/$name.out" 2>"$work/$name.log" &
    pids+=($!)
    eval "${name//-/_}_pid=$!"
    for _ in $(seq 600); do
        if grep -q listening "$work/$name.out" 2>/dev/null; then return 0; fi
        if [[ $name == webhook ]] && curl -fsS "http://127.0.0.1:$((base_port + 100))/readyz" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    log "$name did not start:"; tail -20 "$work/$name.log" >&2; exit 1
}

port() { case $1 in baseline) echo $base_port ;; webhook) echo $((base_port + 1)) ;;
    tenant-0) echo $((base_port + 2)) ;; tenant-$runners) echo $((base_port + 3)) ;; esac; }
pid_of() { local var="${1//-/_}_pid"; echo "${!var}"; }

# load SERVER ENDPOINT LABEL ARGS...: one run of the load generator, its JSON line recorded with the labels.
load() {
    local server=$1 endpoint=$2 label=$3
    shift 3
    local line
    line=$("${on_client[@]}" "$bin/bench-load" --url "https://127.0.0.1:$(port "$server")/$endpoint" \
        --body "$work/$endpoint.json" --ca "$ca" --server-pid "$(pid_of "$server")" --label "$label" "$@")
    record "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(json.loads(sys.argv[2])); print(json.dumps(d))' \
        "$line" "{\"server\": \"$server\", \"endpoint\": \"$endpoint\"}")"
    if [[ $line == *'"errors":0,'* ]]; then :; else log "errors: $line"; exit 1; fi
}

# ---- 1. Against the limit -----------------------------------------------------------------------------------------
log "1. against the limit: baseline and webhook, closed loop over $sweep connections, $runs run(s)"
start baseline "$bin/bench-server" baseline --listen "127.0.0.1:$(port baseline)" \
    --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" --dir "$work"
# As the chart starts it (charts/beamstack/templates/deployment.yaml): serve, TLS files, the policy folder; JSON logs
# at info, one line per admission, here into /dev/null. No --cluster: there is no API server, so the tenant comes
# from the folder (the e2e harness creates it in the cluster instead).
start webhook "$bin/beam-webhook" serve --listen "127.0.0.1:$(port webhook)" \
    --admin-listen "127.0.0.1:$((base_port + 100))" \
    --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" --policies "$work/policies"
webhook_args="serve --listen 127.0.0.1:PORT --admin-listen 127.0.0.1:PORT --tls-cert tls.crt --tls-key tls.key --policies DIR"
for run in $(seq "$runs"); do
    for connections in $sweep; do
        for endpoint in mutate validate; do
            for server in baseline webhook; do
                load $server $endpoint "limit-closed run=$run" -c "$connections" --duration "$window" --warmup "$warmup"
            done
        done
    done
done
for endpoint in mutate validate; do
    half=$(python3 "$root/bench/report.py" half-peak "$results" webhook "$endpoint")
    log "   $endpoint: fixed rate $half/s (half of the webhook's peak) on $rate_connections connections"
    eval "half_$endpoint=$half"
    for run in $(seq "$runs"); do
        for server in baseline webhook; do
            load $server $endpoint "limit-rate run=$run" -c $rate_connections --rate "$half" \
                --duration "$rate_window" --warmup "$warmup"
        done
    done
done
kill -TERM "$baseline_pid" "$webhook_pid"

# ---- 3. Tenant scale ----------------------------------------------------------------------------------------------
log "3. tenant scale: the webhook in-process with 0 and $runners runner CRs in the usage ledger"
for count in 0 $runners; do
    start "tenant-$count" "$bin/bench-server" webhook --listen "127.0.0.1:$(port "tenant-$count")" \
        --admin-listen "127.0.0.1:0" --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" \
        --policies "$work/policies" --runners "$count"
    record "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["kind"]="tenant-start"; print(json.dumps(d))' \
        "$(grep listening "$work/tenant-$count.out")")"
done
for run in $(seq "$runs"); do
    for endpoint in validate mutate; do
        rate_var="half_$endpoint"
        for count in 0 $runners; do
            load "tenant-$count" $endpoint "tenant run=$run runners=$count" -c $rate_connections \
                --rate "${!rate_var}" --duration "$rate_window" --warmup "$warmup"
        done
    done
done
for count in 0 $runners; do
    pid=$(pid_of "tenant-$count")
    record "{\"kind\": \"tenant-memory\", \"runners\": $count, $(awk '/^VmRSS:|^VmHWM:/ {gsub(":", "", $1); printf "\"%s_kb\": %s, ", $1, $2}' "/proc/$pid/status") \"pid\": $pid}"
    kill -TERM "$pid"
done

# ---- 2. Policy scale ----------------------------------------------------------------------------------------------
log "2. policy scale: 0, 10, 50, 200 policies, $policy_rounds admissions per point, $runs repeat(s)"
"${on_server[@]}" "$bin/bench-policy" --rounds "$policy_rounds" --repeats "$runs" >>"$results"

# ---- 5. CEL against cel-go ----------------------------------------------------------------------------------------
# The same expressions over the same object (bench-cel --emit-input: the shipped policies' expressions and a few
# classic ones), per-evaluation time: bench-cel (the webhook's runtime), cel-go in Kubernetes' CEL environment, and
# cel-go alone. Eight expressions at a time, each side in turn, the order alternating, so drift hits all three.
if [[ -x $bin/cel-go-bench ]] && command -v go >/dev/null; then
    "$bin/bench-cel" --emit-input "$work/cel-input.json" 2>/dev/null
    cel_count=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["expressions"]))' \
        "$work/cel-input.json")
    log "5. CEL against cel-go: $cel_count expressions, ${cel_window} s x $cel_repeats per expression and side, $runs run(s)"
    record "$(python3 -c '
import json, re, sys
data = json.load(open(sys.argv[1]))
mod = open("bench/cel-go/go.mod").read()
version = lambda module: (re.search(re.escape(module) + r" (v\S+)", mod) or [None, "?"])[1]
print(json.dumps({"kind": "cel-setup", "expressions": len(data["expressions"]), "excluded": data["excluded"],
    "go": sys.argv[2], "cel_go": version("github.com/google/cel-go"), "apiserver": version("k8s.io/apiserver"),
    "window_s": float(sys.argv[3]), "repeats": int(sys.argv[4])}))' \
        "$work/cel-input.json" "$(go version)" "$cel_window" "$cel_repeats")"
    cel_sides=("$bin/bench-cel" "$bin/cel-go-bench --mode kubernetes" "$bin/cel-go-bench --mode plain")
    chunk=0
    for run in $(seq "$runs"); do
        for start in $(seq 0 8 $((cel_count - 1))); do
            order=(0 1 2)
            if (( chunk++ % 2 )); then order=(2 1 0); fi
            for side in "${order[@]}"; do
                # shellcheck disable=SC2086 # the side is a command and its arguments
                "${on_server[@]}" ${cel_sides[$side]} --input "$work/cel-input.json" --window "$cel_window" \
                    --repeats "$cel_repeats" --select "$start:$((start + 8))" |
                    python3 -c 'import json, sys; [print(json.dumps(dict(json.loads(l), run=int(sys.argv[1])))) for l in sys.stdin]' \
                        "$run" >>"$results"
            done
        done
    done
else
    log "5. CEL against cel-go: skipped (no Go toolchain; install Go 1.26 to run it)"
fi

# ---- 6. The plugin ------------------------------------------------------------------------------------------------
# The largest example pipeline (examples/beam/tests holds Beam's multi-pipeline test specs, not pipelines), with the
# Jinja variables and expansion service the golden test (kubectl-beam/tests/run_dry.rs) gives it.
example=$(python3 -c '
import os
files = [os.path.join(d, f) for d, _, fs in os.walk("examples/beam") if "/tests" not in d for f in fs if f.endswith(".yaml")]
print(max(files, key=os.path.getsize))')
services='{"sdks:java:io:expansion-service:shadowJar":"expansion.beam:8097","sdks:java:extensions:sql:expansion-service:shadowJar":"sql-expansion.beam:8097"}'
run_args=(run "$example" --dry-run=client -o yaml --jinja-variables testdata/beam/variables.json
    --jinja-search-path testdata/beam-package --beam-services "$services")
version_args=(version --client)
log "6. the plugin: ${run_args[*]:0:5} against ${version_args[*]}"
plugin_env=(env KUBECONFIG=/nonexistent HOME="$work/home")
mkdir -p "$work/home"
"${plugin_env[@]}" "$bin/kubectl-beam" "${run_args[@]}" >"$work/plugin-run.yaml"
"${plugin_env[@]}" "$bin/kubectl-beam" "${version_args[@]}" >/dev/null
declare -A shown=([version]="kubectl beam ${version_args[*]}" [run]="kubectl beam ${run_args[*]}")
shown[run]=${shown[run]/"$services"/"'$services'"}
if command -v hyperfine >/dev/null; then
    "${on_server[@]}" "${plugin_env[@]}" hyperfine --style none --warmup 3 --runs "$plugin_runs" -N \
        --export-json "$work/hyperfine.json" \
        "$(printf '%q ' "$bin/kubectl-beam" "${version_args[@]}")" \
        "$(printf '%q ' "$bin/kubectl-beam" "${run_args[@]}")" >/dev/null
    python3 - "$work/hyperfine.json" "${shown[version]}" "${shown[run]}" >>"$results" <<'EOF'
import json, sys
for name, shown, r in zip(["version", "run"], sys.argv[2:], json.load(open(sys.argv[1]))["results"]):
    print(json.dumps({"kind": "plugin-time", "tool": "hyperfine", "which": name, "command": shown,
                      "median_s": r["median"], "min_s": r["min"], "max_s": r["max"], "mean_s": r["mean"],
                      "runs": len(r["times"])}))
EOF
else
    for which in version run; do
        declare -n plugin_args="${which}_args"
        times=()
        for _ in $(seq "$plugin_runs"); do
            start_ns=$(date +%s%N)
            "${on_server[@]}" "${plugin_env[@]}" "$bin/kubectl-beam" "${plugin_args[@]}" >/dev/null
            times+=("$(($(date +%s%N) - start_ns))")
        done
        python3 - "$which" "${shown[$which]}" "${times[@]}" >>"$results" <<'EOF'
import json, statistics, sys
t = [int(x) / 1e9 for x in sys.argv[3:]]
print(json.dumps({"kind": "plugin-time", "tool": "loop", "which": sys.argv[1], "command": sys.argv[2],
                  "median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "mean_s": statistics.mean(t),
                  "runs": len(t)}))
EOF
        unset -n plugin_args
    done
fi
if [[ -x /usr/bin/time ]]; then
    for which in version run; do
        declare -n plugin_args="${which}_args"
        for _ in $(seq "$memory_runs"); do
            kb=$( { "${on_server[@]}" "${plugin_env[@]}" /usr/bin/time -f '%M' "$bin/kubectl-beam" "${plugin_args[@]}" \
                >/dev/null; } 2>&1 | tail -1)
            record "{\"kind\": \"plugin-memory\", \"which\": \"$which\", \"max_rss_kb\": $kb}"
        done
        unset -n plugin_args
    done
fi
record "{\"kind\": \"plugin-output\", \"bytes\": $(wc -c <"$work/plugin-run.yaml"), \"example\": \"$example\", \"example_bytes\": $(wc -c <"$example")}"
# ---- 4. Through the real API server --------------------------------------------------------------------------------
# Only with --apiserver: the end-to-end harness (a real single-node Kubernetes from scripts/e2e-tools.sh) with this
# run's release beam-webhook built into the image the chart runs as two pods; the harness's fixed ports must be free
# (no other harness up).
if [[ $apiserver == 1 ]]; then
    log "4. through the API server: creates with no admission, with beam-webhook, with an equivalent VAP"
    bash scripts/e2e-tools.sh >&2
    BEAM_WEBHOOK_RELEASE_BIN=$bin/beam-webhook bash scripts/e2e-cluster.sh up >&2
    if [[ $quick == 1 ]]; then apiserver_args=(--creates 100 --runs 1); else apiserver_args=(--creates 300 --runs 3); fi
    python3 bench/apiserver/run.py "${apiserver_args[@]}" >"$work/apiserver.json" || {
        bash scripts/e2e-cluster.sh down >&2; exit 1; }
    bash scripts/e2e-cluster.sh down >&2
    record "$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d["kind"] = "apiserver"; print(json.dumps(d))' \
        "$work/apiserver.json")"
fi

record "{\"kind\": \"end\", \"loadavg_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"seconds\": $SECONDS}"

cp "$results" "${out%.md}.jsonl" 2>/dev/null || true
python3 "$root/bench/report.py" report "$results" >"$out"
log "wrote $out (raw results: ${out%.md}.jsonl) after $SECONDS s"
