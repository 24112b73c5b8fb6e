#!/usr/bin/env python3
"""Turns bench/run.sh's results (one JSON object per line) into bench/BENCHMARKS.md.

    python3 bench/report.py report RESULTS.jsonl > bench/BENCHMARKS.md
    python3 bench/report.py half-peak RESULTS.jsonl SERVER ENDPOINT   # half the peak closed-loop throughput, req/s
"""

import json
import math
import os
import statistics
import sys
from collections import defaultdict

# The targets the benchmarks are held to (bench/NOTES.md says which are met).
THROUGHPUT_FRACTION = 0.70
P99_HALF_LOAD_US = 2000.0
US_PER_POLICY = 5.0
TENANT_P99_RATIO = 1.2
TENANT_RSS_MB = 150.0
PLUGIN_TIME_RATIO = 2.0
PLUGIN_RSS_MB = 30.0
CEL_RATIO = 1.0


def load(path):
    rows = []
    for line in open(path):
        line = line.strip()
        if line:
            row = json.loads(line)
            for part in str(row.get("label", "")).split():
                if "=" in part:
                    key, value = part.split("=", 1)
                    row[key] = int(value) if value.isdigit() else value
                else:
                    row["bench"] = part
            rows.append(row)
    return rows


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt(triple, digits=0, unit=""):
    if triple is None:
        return "n/a"
    median, low, high = triple
    if low == high:
        return f"{median:,.{digits}f}{unit}"
    return f"{median:,.{digits}f}{unit} ({low:,.{digits}f}–{high:,.{digits}f})"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def closed(rows, server, endpoint):
    """connections -> list of runs, closed-loop rows of the load benchmark."""
    by = defaultdict(list)
    for r in rows:
        if r.get("bench") == "limit-closed" and r["server"] == server and r["endpoint"] == endpoint:
            by[r["connections"]].append(r)
    return dict(sorted(by.items()))


def peak(rows, server, endpoint):
    """(connections, stats of throughput) at the concurrency with the highest median throughput."""
    best = None
    for connections, runs in closed(rows, server, endpoint).items():
        s = stats([r["throughput"] for r in runs])
        if best is None or s[0] > best[1][0]:
            best = (connections, s)
    return best


def cpu_per_request(runs):
    """Server CPU µs per completed request, per run (None when the server's CPU time was not read)."""
    return [r["server_cpu"] * r["seconds"] / r["requests"] * 1e6 if r.get("server_cpu") and r["requests"] else None
            for r in runs]


def geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def apiserver_section(s, summary, api):
    """The headline: a create through kube-apiserver with no admission, the no-op webhook, beam-webhook and an
    equivalent VAP; where the webhook's time goes; a burst with a pod deleted midway."""
    def ms(key, digits=2):
        v = api.get(key)
        return fmt((v["median"], v["min"], v["max"]), digits, " ms") if v else "n/a"

    def ratio(key):
        v = api.get(key)
        return (v["median"], v["min"], v["max"]) if v else None

    s("## Headline: a create through the real API server")
    s("")
    s("What a user waits for. `bench/apiserver/run.py` against the end-to-end harness (`scripts/e2e-cluster.sh up`:")
    s("etcd, kube-apiserver 1.34 and a real node; beam-webhook installed by the chart as two pods behind its Service,")
    s("the shipped policies in force, the cluster watched): the same FlinkDeployment created over one keep-alive")
    s(f"HTTPS connection, round-robin between four namespaces, {api['creates_per_namespace_per_run']} creates per")
    s(f"namespace and run after 20 warm-up rounds, {api['runs']} run(s). **none**: no admission (the baseline);")
    s("**no-op webhook**: the same image, Deployment, Service and webhook configurations as beam-webhook's, started")
    s(f"with `--noop-patch-bytes {api.get('noop_patch_bytes', '?')}` (it reads only the envelope, allows, and on")
    s("/mutate answers a patch as long as ours that changes nothing): the limit for any webhook on this stack;")
    s("**beam-webhook**: defaults and the Beam harness on /mutate, the built-in rules and the shipped policies on")
    s("/validate; **ValidatingAdmissionPolicy**: no webhook, the equivalent rules (`bench/apiserver/vap.yaml`) in the")
    s("API server's own cel-go. Latency at the client, per create; the none, no-op and VAP namespaces get the object as")
    s("beam-webhook stores it, so every case stores the same object.")
    s("")
    s("| | p50 | p99 | adds to p50 | adds to p99 |")
    s("|---|---:|---:|---:|---:|")
    s(f"| none (baseline) | {ms('none.p50')} | {ms('none.p99')} | | |")
    for case, label in (("noop", "no-op webhook"), ("webhook", "beam-webhook"), ("vap", "ValidatingAdmissionPolicy")):
        s(f"| {label} | {ms(case + '.p50')} | {ms(case + '.p99')} | {ms(case + '.adds.p50')} "
          f"| {ms(case + '.adds.p99')} |")
    s("")
    s("Where a webhook's time goes, per call (means over the measured creates): the API server's own")
    s("`apiserver_admission_webhook_admission_duration_seconds` (building the review, the HTTPS round trip through the")
    s("Service, reading the answer and, on /mutate, applying the patch) against the pods'")
    s("`beamstack_webhook_handling_duration_seconds` (from the body received to the answer ready) and")
    s("`beamstack_webhook_admission_duration_seconds` (the review within it).")
    s("")
    s("| webhook, endpoint | API server's call | server handling | review | outside our server |")
    s("|---|---:|---:|---:|---:|")
    for case, label in (("noop", "no-op"), ("webhook", "beam-webhook")):
        for endpoint in ("mutate", "validate"):
            key = f"split.{case}.{endpoint}"
            call, handling = api.get(f"{key}.apiserver_call"), api.get(f"{key}.server_handling")
            outside = call["median"] - handling["median"] if call and handling else None
            s(f"| {label} /{endpoint} | {ms(key + '.apiserver_call', 3)} | {ms(key + '.server_handling', 3)} | "
              f"{ms(key + '.server_review', 3)} | {'n/a' if outside is None else f'{outside:.3f} ms'} |")
    s("")
    probe = api.get("pace_probe") or {}
    if probe:
        s("The review itself, on the same pod with the same bodies sent straight to it over one keep-alive connection:")
        s("back to back (the next request as soon as the answer arrives), then one request every 4 ms (the pace of the")
        s("creates above, one at a time). Means from the pod's metrics; the round trip at the client, p50.")
        s("")
        s("| pace | /mutate review | /mutate handling | /mutate round trip | /validate review | /validate handling "
          "| /validate round trip |")
        s("|---|---:|---:|---:|---:|---:|---:|")
        for pace, label in ((0, "back to back"), (4, "one every 4 ms")):
            cells = []
            for endpoint in ("mutate", "validate"):
                row = probe.get(f"{endpoint}.pace_{pace}ms", {})
                cells += [f"{row.get('review_ms', float('nan')) * 1000:.0f} µs",
                          f"{row.get('handling_ms', float('nan')) * 1000:.0f} µs",
                          f"{row.get('client_p50_ms', float('nan')):.2f} ms"]
            s(f"| {label} | " + " | ".join(cells) + " |")
        s("")
        s("The same code on the same body is slower at the API server's pace than back to back: between requests the")
        s("core idles or runs other processes (bench/NOTES.md; the in-process review, `bench-policy`, is in section 3).")
        s("")
    bursts = api.get("burst") or {}
    if bursts:
        s("A burst: creates from concurrent clients, each on its own connection, into one namespace; then again with one")
        s("beam-webhook pod deleted midway (`kubectl delete pod`, as a rollout or a node drain does: its preStop sleep,")
        s("then the drain), and with one pod's process killed midway (SIGKILL, as a crash or the OOM killer does: no")
        s("drain; the kubelet restarts the container).")
        s("")
        s("| burst | creates | clients | failed | p50 | p99 | creates/s |")
        s("|---|---:|---:|---:|---:|---:|---:|")
        labels = {"none": "no admission", "webhook": "beam-webhook, both pods",
                  "webhook_pod_deleted": "beam-webhook, a pod deleted",
                  "webhook_process_killed": "beam-webhook, a pod's process killed (SIGKILL)"}
        for key, label in labels.items():
            b = bursts.get(key)
            if not b:
                continue
            if b.get("deleted"):
                label += f" after {b['deleted']['after_creates']} creates"
            s(f"| {label} | {b['creates']} | {b['clients']} | {b['failed']} | {b.get('p50', float('nan')):.1f} ms "
              f"| {b.get('p99', float('nan')):.1f} ms | {b['per_second']:.0f} |")
            for failure in b.get("failures", []):
                # The API server's Status names the webhook, then the cause: keep the cause.
                cause = failure.split("failed to call webhook: ")[-1].replace("\\u003e", ">").replace('\\"', '"')
                s(f"| &nbsp;&nbsp;{cause[:160]} | | | | | | |")
        s("")
    for stat in ("p50", "p99"):
        r = ratio(f"webhook_over_noop.adds.{stat}")
        if r:
            summary.append((f"4. create through the API server: beam-webhook adds / no-op adds ({stat})",
                            ms(f"webhook.adds.{stat}"), f"{ms(f'noop.adds.{stat}')} no-op", fmt(r, 2), "≤ 1.2",
                            verdict(r[0] <= 1.2)))
    r = ratio("webhook_over_vap.adds.p50")
    if r:
        summary.append(("4. create through the API server: beam-webhook adds / VAP adds (p50)", ms("webhook.adds.p50"),
                        f"{ms('vap.adds.p50')} VAP", fmt(r, 2), "≤ 2", verdict(r[0] <= 2)))
    for endpoint in ("mutate", "validate"):
        r = ratio(f"webhook.{endpoint}.server_over_review")
        if r:
            summary.append((f"4. server handling / review in the pod, /{endpoint}",
                            ms(f"split.webhook.{endpoint}.server_handling", 3),
                            f"{ms(f'split.webhook.{endpoint}.server_review', 3)} review", fmt(r, 2), "≤ 1.5",
                            verdict(r[0] <= 1.5)))
    for key, what in (("webhook", "both pods"), ("webhook_pod_deleted", "a pod deleted"),
                      ("webhook_process_killed", "a pod's process killed")):
        b = bursts.get(key)
        if b:
            summary.append((f"4. burst of {b['creates']} creates from {b['clients']} clients, {what}",
                            f"{b['failed']} failed", f"p50 {b.get('p50', 0):.0f} ms, p99 {b.get('p99', 0):.0f} ms",
                            "", "0 failed", verdict(b["failed"] == 0)))


def cel_section(s, summary, setup, cel):
    """CEL against cel-go: per expression, the three sides' ns and the paired (same run) ratios."""
    sides = ("rust", "go", "go-plain")
    names, by = [], defaultdict(lambda: defaultdict(dict))
    for r in cel:
        if r["name"] not in names:
            names.append(r["name"])
        by[r["name"]][r["impl"]][r["run"]] = r
    runs = sorted({r["run"] for r in cel})
    s("## CEL against cel-go")
    s("")
    s(f"The same {setup['expressions']} expressions over the same object, per-evaluation time: `bench-cel` (the")
    s("webhook's CEL runtime, `beamstack::policy::runtime`: the cel 0.15 crate with the webhook's functions, every")
    s("expression compiled once by `Runtime::compile`, metered comprehensions, `Runtime::evaluate` under the default")
    s("cost limit, variables bound as the engine binds them) against `bench/cel-go` (cel-go "
      f"{setup['cel_go']}, the version k8s.io/apiserver {setup['apiserver']} uses, {setup['go'].split()[2]}), twice:")
    s("")
    s("- **cel-go as Kubernetes runs it**: Kubernetes' base CEL environment (`environment.MustBaseEnvSet(...)")
    s("  .NewExpressionsEnv()`: its libraries, `OptOptimize`, cost tracking with Kubernetes' estimator, the per-call")
    s("  cost limit), programs built as the admission plugin builds them (`InterruptCheckFrequency(100)`), evaluated")
    s("  with `ContextEval`. This is the target's reference.")
    s("- **cel-go alone**: `cel.NewEnv` with only the libraries the expressions need (strings extension, Kubernetes'")
    s("  Quantity), `OptOptimize`, no cost tracking, `Eval`: cel-go's evaluator by itself, for what the cost")
    s("  tracking and the context cost.")
    s("")
    s("The input (`bench-cel --emit-input`) holds every expression of the shipped `policies/*.yaml` (match conditions,")
    s("variables, validations, message expressions, mutations; each source once) that evaluates on the benchmark's")
    s("FlinkDeployment (the /validate review's object, after /mutate), nine classic ones (field access, comparison,")
    s("`all()`/`exists()` over containers, `startsWith`, `matches`, `size()`, `map()`/`filter()`), and the variables the")
    s("engine binds for it: `object`, `runnerSpec`, `kind`, `containers`, `images`, `volumes`, `tenant` (bench's")
    s("tenant), `usage`, `demand` (quantities as Kubernetes quantities on the Go side) and each policy's `variables`")
    s("as the engine computes them. Both sides convert the variables once into a prebuilt scope/activation; only")
    s("evaluation is timed: a loop calibrated to at least "
      f"{setup['window_s']} s, {setup['repeats']} repetitions, their median; the three sides in turn, eight")
    s("expressions at a time, pinned to one core. The Go side registers two functions of ours Kubernetes lacks")
    s("(`normalizeImage`, `quantity.asString()`); both sides' results are compared.")
    s("")
    for excluded in setup.get("excluded", []):
        s(f"Left out: `{excluded['name']}` (`{excluded['expression']}`): {excluded['reason']} on a FlinkDeployment"
          " (the policy matches Spark kinds only).")
        s("")
    s("| expression | Rust ns | cel-go (Kubernetes) ns | Rust / cel-go (Kubernetes) | cel-go alone ns "
      "| Rust / cel-go alone |")
    s("|---|---:|---:|---:|---:|---:|")

    def ratio(name, other):
        values = [by[name]["rust"][run]["ns"] / by[name][other][run]["ns"] for run in runs
                  if "ns" in by[name]["rust"].get(run, {}) and "ns" in by[name][other].get(run, {})]
        return stats(values)

    ratios = {side: [] for side in sides[1:]}
    notes = []
    for name in names:
        cells = []
        for side in sides:
            ns = stats([r.get("ns") for r in by[name][side].values()])
            if ns is None:
                error = next((r.get("error") for r in by[name][side].values() if r.get("error")), "no figure")
                notes.append(f"`{name}`, {side}: {error.splitlines()[0]}" + (
                    " (cel-go type-checks, as Kubernetes compiles; the cel crate has no type checker)"
                    if "no matching overload" in error else ""))
            cells.append(fmt(ns))
            if side != "rust":
                r = ratio(name, side)
                cells.append(f"**{fmt(r, 2)}**" if r else "n/a")
                if r:
                    ratios[side].append(r[0])
        results = {side: json.dumps(r["result"], sort_keys=True) for side in sides
                   for r in list(by[name][side].values())[:1] if "result" in r}
        if len(set(results.values())) > 1:
            notes.append(f"`{name}`: the results differ: " + ", ".join(f"{k} {v}" for k, v in results.items()))
        s(f"| `{name}` | " + " | ".join(cells) + " |")
    k8s, alone = geomean(ratios["go"]), geomean(ratios["go-plain"])
    s("")
    for note in notes:
        s(f"- {note}")
    if notes:
        s("")
    if k8s:
        s(f"Geometric mean of the per-expression ratios over {len(ratios['go'])} expressions: Rust / cel-go as "
          f"Kubernetes runs it **{k8s:.2f}** (target ≤ {CEL_RATIO:.1f}: {verdict(k8s <= CEL_RATIO)}); Rust / cel-go "
          f"alone **{alone:.2f}** over {len(ratios['go-plain'])}.")
        s("")
        summary.append(("5. CEL per evaluation, Rust / cel-go (Kubernetes)", f"geomean {k8s:.2f}",
                        f"{len(ratios['go'])} expressions", f"{k8s:.2f}", f"≤ {CEL_RATIO:.1f}",
                        verdict(k8s <= CEL_RATIO)))
        summary.append(("5. CEL per evaluation, Rust / cel-go alone", f"geomean {alone:.2f}",
                        f"{len(ratios['go-plain'])} expressions", f"{alone:.2f}", f"≤ {CEL_RATIO:.1f}",
                        verdict(alone <= CEL_RATIO)))


def half_peak(path, server, endpoint):
    print(int(peak(load(path), server, endpoint)[1][0] / 2))


def report(path):
    rows = load(path)
    machine = next(r for r in rows if r["kind"] == "machine")
    end = next((r for r in rows if r.get("kind") == "end"), {})
    out = []
    w = out.append
    summary = []

    w("# Benchmarks")
    w("")
    w("The benchmarks: under load (against the limit), policy scale, tenant scale, through the API server (with")
    w("`--apiserver`), CEL against cel-go and the plugin, measured")
    w("by one command. Every figure is the median of the runs with (min–max); baselines and subjects are measured in")
    w("the same run, interleaved, so the ratios hold when the absolute times drift.")
    w("")
    w("## How to reproduce")
    w("")
    w("```sh")
    w("apt-get install -y hyperfine time   # optional: the plugin benchmark falls back to a timing loop without hyperfine")
    w("bash bench/run.sh                   # full run; writes bench/BENCHMARKS.md and the raw results bench/BENCHMARKS.jsonl")
    w("bash bench/run.sh --quick           # 1 run, shorter windows (CI)")
    w("bash bench/run.sh --apiserver       # also the API-server benchmark, through a real kube-apiserver (the e2e harness)")
    w("```")
    w("")
    w("`bench/` holds the tools: `bench-server` (the bare axum + rustls baseline, the webhook in-process with a filled")
    w("usage ledger, and `prepare`, which writes the policy folder, the reviews and the answers), `bench-load` (the")
    w("load generator: keep-alive HTTP/1.1 over rustls, closed loop or fixed rate with latency from the time each")
    w("request was due, recorded in an HDR histogram), `bench-policy` (policy scale), `bench-cel` and `cel-go/`")
    w("(CEL against cel-go), `run.sh` and this report (`report.py`). The CEL benchmark needs Go 1.26 (`go` builds `bench/cel-go`")
    w("from the Go module proxy); without it the section is left out.")
    w("")
    w("## Machine and run")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| command | `{machine['command']}` |")
    w(f"| date, commit | {machine['date']}, `{machine['commit']}` |")
    w(f"| CPU | {machine['cpu']}, nproc {machine['nproc']}, {machine['memory']} |")
    w(f"| kernel | {machine['kernel']} |")
    w(f"| rustc | {machine['rustc']} (`cargo build --release`: thin LTO, 4 codegen units) |")
    w(f"| pinning | {machine['pinning']} |")
    w(f"| load average | {' '.join(machine['loadavg_start'])} at the start, {end.get('loadavg_end', '?')} at the end; "
      f"{end.get('seconds', '?')} s |")
    w("")
    busy = max(float(machine["loadavg_start"][0]), float(str(end.get("loadavg_end", "0")).split()[0])) > 1.0
    if busy:
        w("The machine was **busy** during this run (load average above 1 on 2 cores: other work was compiling or")
        w("running tests), so absolute figures are noisy, tail latencies most; the ratios, measured side by side, hold")
        w("better. Re-run on a quiet machine for absolute figures.")
        w("")

    sections = []
    s = sections.append
    # ---- 4, the headline: what a user waits for ----
    api = next((r for r in rows if r.get("kind") == "apiserver"), None)
    if api:
        apiserver_section(s, summary, api)

    # ---- 1 ----
    s("## Under load: against the limit")
    s("")
    s("Baseline: `bench-server baseline`, a bare HTTPS server on the webhook's stack (the rustls configuration of")
    s("`beamstack::server::tls` with ring, TLS 1.2/1.3, ALPN h2 and http/1.1; the webhook's accept loop; hyper's auto")
    s("HTTP/1.1+HTTP/2 connection; axum with the same body limit; a multi-thread tokio runtime) answering the webhook's")
    s("own answer to the same review from memory. Subject: `target/release/beam-webhook serve` started as the chart")
    s("starts it, with the shipped `policies/*.yaml` and the tenant of the review's namespace in its `--policies` folder")
    s("(11 RunnerPolicies, 1 Tenant), certificates from `beam-webhook certs`, JSON logs at info (one line per")
    s("admission) into /dev/null. The review is the router tests' Beam FlinkDeployment (3 KB) with a `team` label:")
    s("/mutate answers with a patch (defaults, harness, tenant defaults); /validate gets the mutated object and allows")
    s("it. Each server runs on one core, the load generator on the other.")
    s("")
    fractions = {}
    for endpoint in ("mutate", "validate"):
        base_peak = peak(rows, "baseline", endpoint)
        hook_peak = peak(rows, "webhook", endpoint)
        if not base_peak or not hook_peak:
            continue
        fraction = hook_peak[1][0] / base_peak[1][0]
        fractions[endpoint] = fraction
        s(f"### POST /{endpoint}, closed loop")
        s("")
        s("| connections | baseline req/s | webhook req/s | webhook / baseline | baseline p50 / p99 µs "
          "| webhook p50 / p99 µs | server CPU (baseline, webhook) | server CPU µs per request (baseline, webhook) "
          "| client CPU |")
        s("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        base_runs = closed(rows, "baseline", endpoint)
        for connections, runs in closed(rows, "webhook", endpoint).items():
            base = base_runs.get(connections, [])
            b, h = stats([r["throughput"] for r in base]), stats([r["throughput"] for r in runs])
            ratio = h[0] / b[0] if b else float("nan")
            lat = lambda rs: (f"{stats([r['p50_us'] for r in rs])[0]:.0f} / "
                              f"{stats([r['p99_us'] for r in rs])[0]:.0f}")
            cpu = lambda rs: stats([r.get("server_cpu") for r in rs])
            s(f"| {connections} | {fmt(b)} | {fmt(h)} | {ratio:.2f} | {lat(base)} | {lat(runs)} | "
              f"{fmt(cpu(base), 2)}, {fmt(cpu(runs), 2)} | {fmt(stats(cpu_per_request(base)), 1)}, "
              f"{fmt(stats(cpu_per_request(runs)), 1)} | {fmt(stats([r.get('client_cpu') for r in runs + base]), 2)} |")
        s("")
        s(f"Peak: baseline {fmt(base_peak[1])} req/s at {base_peak[0]} connections, webhook {fmt(hook_peak[1])} req/s "
          f"at {hook_peak[0]}: **{fraction:.0%}** of the baseline (target ≥ {THROUGHPUT_FRACTION:.0%}: "
          f"{verdict(fraction >= THROUGHPUT_FRACTION)}).")
        s("")
        # CPU time per request at the peaks: what a core can do, whatever else the machine was running.
        base_cost = stats(cpu_per_request(closed(rows, "baseline", endpoint)[base_peak[0]]))
        hook_cost = stats(cpu_per_request(closed(rows, "webhook", endpoint)[hook_peak[0]]))
        if base_cost and hook_cost:
            s(f"Server CPU time per request at those peaks: baseline {fmt(base_cost, 1)} µs, webhook "
              f"{fmt(hook_cost, 1)} µs, so a fully used core would give the webhook {base_cost[0] / hook_cost[0]:.0%} "
              "of the baseline's throughput (this ratio does not depend on how much of its core each server got "
              "while other work ran).")
            s("")
        summary.append((f"1. throughput, /{endpoint}", f"{fmt(hook_peak[1])} req/s",
                        f"baseline {fmt(base_peak[1])} req/s", f"{fraction:.2f}",
                        f"≥ {THROUGHPUT_FRACTION:.2f}", verdict(fraction >= THROUGHPUT_FRACTION)))

    s("### Latency at half of the webhook's peak (fixed rate)")
    s("")
    s("Constant rate at half the webhook's peak throughput of that endpoint, spread over 8 keep-alive connections")
    s("(wrk2's schedule); latency counts from when each request was due, so stalls are not hidden. The baseline gets")
    s("the same rate.")
    s("")
    s("| endpoint | rate req/s | server | achieved req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | client send lag p99 µs |")
    s("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    rate_rows = [r for r in rows if r.get("bench") == "limit-rate"]
    for endpoint in ("mutate", "validate"):
        p99 = {}
        for server in ("baseline", "webhook"):
            runs = [r for r in rate_rows if r["server"] == server and r["endpoint"] == endpoint]
            if not runs:
                continue
            p99[server] = stats([r["p99_us"] for r in runs])
            s(f"| /{endpoint} | {runs[0]['target_rate']:,.0f} | {server} | {fmt(stats([r['throughput'] for r in runs]))} | "
              f"{fmt(stats([r['p50_us'] for r in runs]))} | {fmt(stats([r['p90_us'] for r in runs]))} | "
              f"{fmt(p99[server])} | {fmt(stats([r['p999_us'] for r in runs]))} | "
              f"{fmt(stats([r['max_us'] for r in runs]))} | {fmt(stats([r['send_lag_p99_us'] for r in runs]), 1)} |")
        if "webhook" in p99 and "baseline" in p99:
            ok = p99["webhook"][0] <= P99_HALF_LOAD_US
            summary.append((f"1. p99 at half load, /{endpoint}", f"{fmt(p99['webhook'])} µs",
                            f"baseline {fmt(p99['baseline'])} µs", f"{p99['webhook'][0] / p99['baseline'][0]:.2f}",
                            f"≤ {P99_HALF_LOAD_US:.0f} µs", verdict(ok)))
    s("")

    # ---- 2 ----
    s("## Policy scale")
    s("")
    s("`bench-policy`: one admission through `Admission::review` (parse, built-in rules, every policy, the answer) of")
    s("the same reviews, in one process on one core, with 0, 10, 50 and 200 RunnerPolicies (the shipped ones, then")
    s("renamed copies of them) and the tenant. Per repeat, the median of the admissions at each count, and the")
    s("least-squares line through the four medians: its slope is the cost per added policy.")
    s("")
    points = [r for r in rows if r.get("kind") == "point"]
    fits = [r for r in rows if r.get("kind") == "fit"]
    if points:
        counts = sorted({r["policies"] for r in points})
        s("| endpoint | " + " | ".join(f"{c} policies µs (× 0 policies)" for c in counts) + " | µs per added policy |")
        s("|---|" + "---:|" * (len(counts) + 1))
        for endpoint in ("mutate", "validate"):
            cells = []
            zero = stats([r["p50_us"] for r in points if r["endpoint"] == endpoint and r["policies"] == counts[0]])
            for c in counts:
                st = stats([r["p50_us"] for r in points if r["endpoint"] == endpoint and r["policies"] == c])
                cells.append(f"{fmt(st, 1)} (×{st[0] / zero[0]:.1f})")
            slope = stats([r["us_per_policy"] for r in fits if r["endpoint"] == endpoint])
            cells.append(f"**{fmt(slope, 2)}**")
            s(f"| /{endpoint} | " + " | ".join(cells) + " |")
            summary.append((f"2. cost per added policy, /{endpoint}", f"{fmt(slope, 2)} µs",
                            f"{fmt(zero, 1)} µs with 0 policies", f"{slope[0] / zero[0]:.2f}",
                            f"≤ {US_PER_POLICY:.0f} µs", verdict(slope[0] <= US_PER_POLICY)))
        s("")

    # ---- 3 ----
    s("## Tenant scale")
    s("")
    s("The usage ledger is fed by the cluster watch on the runner CRs (`policy::cluster::watch_runners`), so without")
    s("an API server `bench-server webhook` drives it in-process through the library: it decodes the objects as the")
    s("watcher delivers them (list pages of 500, `DynamicObject`), reduces each to its key and demand exactly as the")
    s("watch does, observes them in the engine's ledger and keeps the watch's set of seen names; then it serves with")
    s("`beamstack::server::Server`, the same server `beam-webhook serve` runs, with the same policy folder and JSON")
    s("logs. The 10,000 CRs (7 in 10 FlinkDeployments, 3 in 10 SparkApplications, the fixtures renamed) spread over")
    s("100 namespaces, ten of them the reviewed tenant's. Both servers (none and 10,000) run side by side and get the")
    s("same fixed rate as the load benchmark's half load, interleaved; memory is the server process's resident set.")
    s("")
    tenant_rows = [r for r in rows if r.get("bench") == "tenant"]
    starts = {r["runners"]: r for r in rows if r.get("kind") == "tenant-start"}
    memory = {r["runners"]: r for r in rows if r.get("kind") == "tenant-memory"}
    counts = sorted({r["runners"] for r in tenant_rows})
    if counts:
        s("| endpoint | runner CRs | rate req/s | achieved req/s | p50 µs | p99 µs | p50 / p50 with none "
          "| p99 / p99 with none |")
        s("|---|---:|---:|---:|---:|---:|---:|---:|")
        for endpoint in ("validate", "mutate"):
            base = base50 = None
            for count in counts:
                runs = [r for r in tenant_rows if r["runners"] == count and r["endpoint"] == endpoint]
                p99 = stats([r["p99_us"] for r in runs])
                p50 = stats([r["p50_us"] for r in runs])
                base, base50 = base or p99, base50 or p50
                ratio = p99[0] / base[0]
                s(f"| /{endpoint} | {count:,} | {runs[0]['target_rate']:,.0f} | {fmt(stats([r['throughput'] for r in runs]))} | "
                  f"{fmt(p50)} | {fmt(p99)} | {p50[0] / base50[0]:.2f} | {ratio:.2f} |")
                if count == counts[-1] and count != counts[0]:
                    summary.append((f"3. p99 with {count:,} CRs / none, /{endpoint}", f"{fmt(p99)} µs",
                                    f"{fmt(base)} µs with none", f"{ratio:.2f}", f"≤ {TENANT_P99_RATIO}",
                                    verdict(ratio <= TENANT_P99_RATIO)))
        s("")
        ledger = [r for r in rows if r.get("kind") == "ledger"]
        if ledger:
            s("The same admissions without the network (`bench-policy`: `Admission::review` in one process on one core, "
              "2,000 per point and repeat, the shipped set), where scheduling on a shared machine does not reach the tail:")
            s("")
            s("| endpoint | runner CRs | p50 µs | p99 µs | p99 / p99 with none |")
            s("|---|---:|---:|---:|---:|")
            for endpoint in ("validate", "mutate"):
                base = None
                for count in sorted({r["runners"] for r in ledger}):
                    runs = [r for r in ledger if r["runners"] == count and r["endpoint"] == endpoint]
                    p99 = stats([r["p99_us"] for r in runs])
                    base = base or p99
                    s(f"| /{endpoint} | {count:,} | {fmt(stats([r['p50_us'] for r in runs]), 1)} | {fmt(p99, 1)} | "
                      f"{p99[0] / base[0]:.2f} |")
                    if count and count == max(r["runners"] for r in ledger):
                        summary.append((f"3. in-process p99 with {count:,} CRs / none, /{endpoint}", f"{fmt(p99, 1)} µs",
                                        f"{fmt(base, 1)} µs with none", f"{p99[0] / base[0]:.2f}",
                                        f"≤ {TENANT_P99_RATIO}", verdict(p99[0] / base[0] <= TENANT_P99_RATIO)))
            s("")
        s("| runner CRs | RSS after filling, before load | RSS after the load runs | peak RSS (VmHWM) | fill time |")
        s("|---:|---:|---:|---:|---:|")
        for count in counts:
            st, mem = starts.get(count, {}), memory.get(count, {})
            s(f"| {count:,} | {st.get('rss_bytes', 0) / 2**20:.1f} MB | {mem.get('VmRSS_kb', 0) / 1024:.1f} MB | "
              f"{mem.get('VmHWM_kb', 0) / 1024:.1f} MB | {st.get('fill_seconds', 0):.2f} s |")
        s("")
        if len(counts) > 1:
            hwm = memory[counts[-1]]["VmHWM_kb"] / 1024
            hwm0 = memory[counts[0]]["VmHWM_kb"] / 1024
            summary.append((f"3. webhook memory with {counts[-1]:,} CRs", f"{hwm:.1f} MB peak RSS",
                            f"{hwm0:.1f} MB with none", f"{hwm / hwm0:.2f}", f"≤ {TENANT_RSS_MB:.0f} MB",
                            verdict(hwm <= TENANT_RSS_MB)))

    # ---- 5 ----
    setup = next((r for r in rows if r.get("kind") == "cel-setup"), None)
    cel = [r for r in rows if r.get("kind") == "cel"]
    if setup and cel:
        cel_section(s, summary, setup, cel)

    # ---- 6 ----
    s("## The plugin")
    s("")
    times = {r["which"]: r for r in rows if r.get("kind") == "plugin-time"}
    mems = defaultdict(list)
    for r in rows:
        if r.get("kind") == "plugin-memory":
            mems[r["which"]].append(r["max_rss_kb"] / 1024)
    output = next((r for r in rows if r.get("kind") == "plugin-output"), {})
    if times:
        tool = times["run"]["tool"]
        s(f"`{times['run']['command']}`")
        s("")
        s(f"({output.get('example', '?')}, {output.get('example_bytes', '?')} bytes of Beam YAML, the largest example")
        s(f"pipeline, with the Jinja variables and expansion service of the golden test; {output.get('bytes', '?')} bytes")
        s(f"of YAML out) against `{times['version']['command']}` (process start; prints without a cluster). Timed by "
          f"{'hyperfine (3 warm-up runs, no shell)' if tool == 'hyperfine' else 'a loop in run.sh'}; peak memory by")
        s("`/usr/bin/time -f %M` (maximum resident set). `KUBECONFIG` points nowhere and `HOME` is empty: no plugin")
        s("defaults file, no cluster.")
        s("")
        s("| command | runs | wall time ms | peak RSS MB |")
        s("|---|---:|---:|---:|")
        for which in ("version", "run"):
            t = times[which]
            s(f"| {which} | {t['runs']} | {fmt((t['median_s'] * 1e3, t['min_s'] * 1e3, t['max_s'] * 1e3), 2)} | "
              f"{fmt(stats(mems.get(which, [])), 1)} |")
        s("")
        ratio = times["run"]["median_s"] / times["version"]["median_s"]
        summary.append(("6. plugin run / version (time)", f"{times['run']['median_s'] * 1e3:.1f} ms",
                        f"{times['version']['median_s'] * 1e3:.1f} ms", f"{ratio:.2f}", f"≤ {PLUGIN_TIME_RATIO}",
                        verdict(ratio <= PLUGIN_TIME_RATIO)))
        if mems.get("run"):
            m, m0 = stats(mems["run"])[0], stats(mems["version"])[0]
            summary.append(("6. plugin run peak memory", f"{m:.1f} MB", f"{m0:.1f} MB for version", f"{m / m0:.2f}",
                            f"≤ {PLUGIN_RSS_MB:.0f} MB", verdict(m <= PLUGIN_RSS_MB)))

    w("## Summary")
    w("")
    w("| benchmark | figure | baseline | ratio | target | |")
    w("|---|---:|---:|---:|---:|---|")
    for row in summary:
        w("| " + " | ".join(row) + " |")
    w("")
    out.extend(sections)
    # What the figures do not say by themselves (profiles, what was changed, before/after) is written by hand.
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
    if os.path.exists(notes):
        out.append(open(notes).read().rstrip())
        out.append("")
    print("\n".join(out).rstrip() + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "half-peak":
        half_peak(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)
