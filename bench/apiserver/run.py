#!/usr/bin/env python3
"""Through the API server: what admission adds to a FlinkDeployment create, through the real kube-apiserver.

Against the end-to-end harness (bash scripts/e2e-cluster.sh up): the same FlinkDeployment is created over one
keep-alive HTTPS connection in three namespaces, round-robin so that drift hits each alike:
  none     - labelled beamstack.dev/webhook=disabled: no admission webhook, no policy (the baseline);
  webhook  - through beam-webhook (mutation with defaults and the harness, then validation with the shipped policies);
  vap      - no webhook, but a ValidatingAdmissionPolicy holding the equivalent rules (bench/apiserver/vap.yaml),
             evaluated by the API server's own cel-go.
Each create's latency is measured at the client; p50/p99 of each and what each adds to the baseline are printed as
JSON. Python's standard library only.

    python3 bench/apiserver/run.py [--creates 300] [--runs 3]
"""
import argparse
import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STATE = os.path.join(ROOT, ".e2e")
KUBECTL = os.path.join(ROOT, ".tools", "bin", "kubectl")
NAMESPACES = {"none": "bench-none", "webhook": "bench-webhook", "vap": "bench-vap"}


def kubectl(*args, stdin=None):
    env = dict(os.environ, KUBECONFIG=os.path.join(STATE, "kubeconfig"))
    done = subprocess.run([KUBECTL, *args], input=stdin, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


def connection():
    config = open(os.path.join(STATE, "kubeconfig")).read()
    token = next(line.split(":", 1)[1].strip() for line in config.splitlines() if line.strip().startswith("token:"))
    server = next(line.split("server:", 1)[1].strip() for line in config.splitlines() if "server:" in line)
    host, port = server.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=os.path.join(STATE, "apiserver-certs", "ca.crt"))
    return http.client.HTTPSConnection(host, int(port), context=context), token


def prepare():
    labels = {
        "none": {"beamstack.dev/webhook": "disabled", "team": "a"},
        "webhook": {"team": "a"},
        "vap": {"beamstack.dev/webhook": "disabled", "team": "a", "beamstack.dev/bench": "vap"},
    }
    # Namespaces being deleted cannot take new objects (no controller-manager runs to finish deleting them), so each
    # run uses fresh names.
    suffix = str(int(time.time()))
    names = {}
    for case, namespace in NAMESPACES.items():
        name = f"{namespace}-{suffix}"
        names[case] = name
        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels[case]}}
        kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    kubectl("apply", "--server-side", "-f", os.path.join(ROOT, "bench", "apiserver", "vap.yaml"))
    return names


def templates(namespaces):
    """The plain FlinkDeployment (for the webhook, which defaults it and adds the harness) and the same object as the
    webhook stores it (for the baseline and the policy, which do not mutate), so every case stores the same object."""
    text = kubectl("create", "--dry-run=client", "-o", "json", "-f",
                   os.path.join(ROOT, "policies", "tests", "resources", "flink-pipeline.yaml"))
    plain = json.loads(text)
    plain["metadata"] = {"name": "template", "namespace": namespaces["webhook"], "labels": {"team": "a"},
                         "annotations": plain["metadata"].get("annotations", {})}
    stored = json.loads(kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(plain)))
    assert "beam-worker-pool" in json.dumps(stored), "the webhook did not add the harness"
    kubectl("delete", "flinkdeployment", "template", "-n", namespaces["webhook"])
    metadata = stored["metadata"]
    stored["metadata"] = {key: metadata[key] for key in ("name", "labels", "annotations") if key in metadata}
    stored.pop("status", None)
    return {"none": stored, "webhook": plain, "vap": stored}


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def run_once(namespaces, creates, bodies):
    conn, token = connection()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies = {case: [] for case in namespaces}
    for index in range(creates + 20):
        for case, namespace in namespaces.items():
            body = dict(bodies[case])
            body["metadata"] = dict(bodies[case]["metadata"], name=f"b{index}-{time.monotonic_ns() % 10**9}",
                                    namespace=namespace)
            payload = json.dumps(body)
            started = time.perf_counter()
            conn.request("POST", f"/apis/flink.apache.org/v1beta1/namespaces/{namespace}/flinkdeployments",
                         body=payload, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 201:
                sys.exit(f"{case}: create answered {response.status}: {answer[:400]!r}")
            if index >= 20:  # the first 20 rounds warm connections and caches
                latencies[case].append(elapsed * 1000)
    return {case: {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}
            for case, values in latencies.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not os.path.exists(os.path.join(STATE, "kubeconfig")):
        sys.exit("no end-to-end cluster: bash scripts/e2e-tools.sh && bash scripts/e2e-cluster.sh up")
    runs = []
    for _ in range(args.runs):
        namespaces = prepare()
        bodies = templates(namespaces)
        runs.append(run_once(namespaces, args.creates, bodies))
        # The policy is really in force in its namespace: a FlinkDeployment without a serviceAccount is refused.
        refused = dict(bodies["vap"], metadata={"name": "refused", "labels": {"team": "a"}})
        refused["spec"] = {key: value for key, value in bodies["vap"]["spec"].items() if key != "serviceAccount"}
        env = dict(os.environ, KUBECONFIG=os.path.join(STATE, "kubeconfig"))
        denied = subprocess.run([KUBECTL, "create", "-n", namespaces["vap"], "-f", "-"], input=json.dumps(refused),
                                env=env, capture_output=True, text=True)
        assert denied.returncode != 0 and "beamstack-bench-equivalent" in denied.stderr, denied.stderr
        for namespace in namespaces.values():
            kubectl("delete", "namespace", namespace, "--wait=false")
    summary = {}
    for case in NAMESPACES:
        for stat in ("p50", "p99"):
            values = [run[case][stat] for run in runs]
            summary[f"{case}.{stat}"] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    for case in ("webhook", "vap"):
        for stat in ("p50", "p99"):
            added = [run[case][stat] - run["none"][stat] for run in runs]
            summary[f"{case}.adds.{stat}"] = {"median": statistics.median(added), "min": min(added),
                                               "max": max(added)}
    summary["creates_per_namespace_per_run"] = args.creates
    summary["runs"] = args.runs
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
