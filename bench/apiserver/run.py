#!/usr/bin/env python3
"""Through the API server: what admission adds to a FlinkDeployment create, through the real kube-apiserver.

Against the end-to-end harness (bash scripts/e2e-cluster.sh up: kube-apiserver, etcd and a real node, beam-webhook
as the chart's two pods behind its Service). The same FlinkDeployment is created over one keep-alive HTTPS
connection in four namespaces, round-robin so that drift hits each alike:
  none     - labelled beamstack.dev/webhook=disabled: no admission webhook, no policy (the baseline);
  noop     - through the no-op webhook: the same beam-webhook image and Deployment as the chart's, started with
             --noop-patch-bytes (allow; on /mutate a patch as long as ours that changes nothing) behind its own
             Service and webhook configurations: the limit for any webhook on our stack;
  webhook  - through beam-webhook (the mutation with defaults and the harness, then the validation with the shipped
             policies, the cluster watched);
  vap      - no webhook, but a ValidatingAdmissionPolicy holding the equivalent rules (bench/apiserver/vap.yaml),
             evaluated by the API server's own cel-go.
Each create's latency is measured at the client. Around the measured creates the API server's own metrics
(apiserver_admission_webhook_admission_duration_seconds: the call to each webhook, as the API server sees it) and the
webhook pods' (handling_duration_seconds: from the body received to the answer ready; admission_duration_seconds:
the review within it)
are read, so the time a create gains is split into the calls and the rest.

Then a burst: creates from many concurrent clients (each its own connection) through beam-webhook with both pods,
again with one pod deleted in the middle (as a rollout or a node drain does), and again with one pod's process
killed (SIGKILL, as a crash does): failures, p50/p99, throughput.

Prints one JSON document. Python's standard library only.

    python3 bench/apiserver/run.py [--creates 300] [--runs 3] [--burst 1000] [--clients 50]
"""
import argparse
import base64
import http.client
import json
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STATE = os.path.join(ROOT, ".e2e")
KUBECTL = os.path.join(ROOT, ".tools", "bin", "kubectl")
WEBHOOK_BIN = os.environ.get("BEAM_WEBHOOK_BIN", os.path.join(ROOT, "target", "release", "beam-webhook"))
CASES = ("none", "noop", "webhook", "vap")
WEBHOOK_LABEL = "app.kubernetes.io/name=beamstack-webhook"
NOOP = "beam-webhook-noop"
NOOP_LABEL = f"app.kubernetes.io/name={NOOP}"
# The webhook configurations' entries, by case, as the API server's metrics name them.
CALLS = {
    "webhook": {"mutate": "runners.mutate.beamstack.dev", "validate": "runners.validate.beamstack.dev"},
    "noop": {"mutate": "runners.mutate.noop.bench.beamstack.dev", "validate": "runners.validate.noop.bench.beamstack.dev"},
}
WARMUP_ROUNDS = 20


def kubectl(*args, stdin=None, check=True):
    env = dict(os.environ, KUBECONFIG=os.path.join(STATE, "kubeconfig"))
    done = subprocess.run([KUBECTL, *args], input=stdin, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)}: {done.stderr}")
    return done


def kubectl_json(*args):
    return json.loads(kubectl(*args, "-o", "json").stdout)


def credentials():
    config = open(os.path.join(STATE, "kubeconfig")).read()
    token = next(line.split(":", 1)[1].strip() for line in config.splitlines() if line.strip().startswith("token:"))
    server = next(line.split("server:", 1)[1].strip() for line in config.splitlines() if "server:" in line)
    host, port = server.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=os.path.join(STATE, "apiserver-certs", "ca.crt"))
    return host, int(port), context, token


def connection():
    host, port, context, token = credentials()
    return http.client.HTTPSConnection(host, port, context=context), token


# ---- Prometheus text -------------------------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text):
    """(name, labels, value) of every sample line of a Prometheus or OpenMetrics exposition."""
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            yield match.group(1), dict(LABEL.findall(match.group(2) or "")), float(match.group(3))


def sum_and_count(text, family, **wanted):
    """Sum and count of a histogram's series whose labels include `wanted`, added over the matching series."""
    total = {"sum": 0.0, "count": 0.0}
    for name, labels, value in samples(text):
        for part in total:
            if name == f"{family}_{part}" and all(labels.get(k) == v for k, v in wanted.items()):
                total[part] += value
    return total


def apiserver_metrics():
    host, port, context, token = credentials()
    conn = http.client.HTTPSConnection(host, port, context=context)
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    text = response.read().decode()
    if response.status != 200:
        sys.exit(f"the API server's /metrics answered {response.status}: {text[:300]}")
    return text


def pod_metrics(label):
    """The admin /metrics of every Ready pod with `label`, by pod name (the host routes to pod IPs)."""
    texts = {}
    for pod in kubectl_json("get", "pods", "-A", "-l", label)["items"]:
        ip = pod["status"].get("podIP")
        if ip and pod["metadata"].get("deletionTimestamp") is None:
            with urllib.request.urlopen(f"http://{ip}:8080/metrics", timeout=5) as answer:
                texts[pod["metadata"]["name"]] = answer.read().decode()
    return texts


def snapshot():
    return {"apiserver": apiserver_metrics(), "webhook": pod_metrics(WEBHOOK_LABEL), "noop": pod_metrics(NOOP_LABEL)}


def mean_ms(before, after):
    count = after["count"] - before["count"]
    return {"mean_ms": (after["sum"] - before["sum"]) / count * 1000 if count else None, "calls": count}


def split(before, after):
    """Per webhook: the API server's call time, the server's handling time and its review time (means, ms)."""
    result = {}
    family = "apiserver_admission_webhook_admission_duration_seconds"
    for case, calls in CALLS.items():
        for endpoint, name in calls.items():
            row = {"apiserver_call": mean_ms(sum_and_count(before["apiserver"], family, name=name),
                                             sum_and_count(after["apiserver"], family, name=name))}
            pods = [pod for pod in after[case] if pod in before[case]]  # a pod replaced midway is left out
            for metric, key in (("handling", "server_handling"), ("admission", "server_review")):
                family_ours = f"beamstack_webhook_{metric}_duration_seconds"
                # sum_and_count adds over every matching series: the pods' texts together give the Deployment's.
                row[key] = mean_ms(
                    sum_and_count("\n".join(before[case][pod] for pod in pods), family_ours, endpoint=endpoint),
                    sum_and_count("\n".join(after[case][pod] for pod in pods), family_ours, endpoint=endpoint))
            result[f"{case}.{endpoint}"] = row
    # No such figure for the VAP: apiserver_validating_admission_policy_check_duration_seconds counts only denials
    # (Kubernetes 1.34), and the ValidatingAdmissionPolicy plugin's own duration covers every create in the cluster.
    return result


# ---- The no-op webhook -----------------------------------------------------------------------------------------

def our_patch_bytes(plain):
    """How long beam-webhook's JSON patch for the benchmark's object is (the offline review, chart config)."""
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "bench", "kind": {"group": "flink.apache.org", "version": "v1beta1", "kind": "FlinkDeployment"},
        "name": plain["metadata"]["name"], "namespace": plain["metadata"]["namespace"], "operation": "CREATE",
        "userInfo": {"username": "bench"}, "object": plain}}
    done = subprocess.run([WEBHOOK_BIN, "review", "--endpoint", "mutate", "-"], input=json.dumps(review),
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{WEBHOOK_BIN} review: {done.stderr}")
    return len(base64.b64decode(json.loads(done.stdout)["response"]["patch"]))


def start_noop(patch_bytes):
    """The chart's Deployment, Service and webhook configurations copied for the no-op webhook, with its own
    certificate; its pods select only namespaces labelled beamstack.dev/bench=noop."""
    deployment = next(iter(kubectl_json("get", "deployments", "-A", "-l", WEBHOOK_LABEL)["items"]), None)
    if deployment is None:
        sys.exit("no beam-webhook Deployment: bash scripts/e2e-cluster.sh up")
    namespace = deployment["metadata"]["namespace"]
    certs = tempfile.mkdtemp(prefix="noop-certs-")
    done = subprocess.run([WEBHOOK_BIN, "certs", "--out", certs, "--service", NOOP, "--namespace", namespace],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{WEBHOOK_BIN} certs: {done.stderr}")
    kubectl("-n", namespace, "delete", "secret", f"{NOOP}-tls", "--ignore-not-found")
    kubectl("-n", namespace, "create", "secret", "tls", f"{NOOP}-tls", f"--cert={certs}/tls.crt",
            f"--key={certs}/tls.key")
    ca_bundle = base64.b64encode(open(f"{certs}/ca.crt", "rb").read()).decode()
    labels = {"app.kubernetes.io/name": NOOP}
    spec = deployment["spec"]
    spec["selector"] = {"matchLabels": labels}
    spec["template"]["metadata"]["labels"] = labels
    for volume in spec["template"]["spec"].get("volumes", []):
        if "secret" in volume:
            volume["secret"]["secretName"] = f"{NOOP}-tls"
    for container in spec["template"]["spec"]["containers"]:
        container.setdefault("env", []).append({"name": "BEAM_WEBHOOK_NOOP_PATCH_BYTES", "value": str(patch_bytes)})
    objects = [{"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": NOOP, "namespace": namespace, "labels": labels}, "spec": spec}]
    service = kubectl_json("-n", namespace, "get", "service", "beam-webhook")
    objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": NOOP, "namespace": namespace},
                    "spec": {"selector": labels, "ports": service["spec"]["ports"]}})
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        configuration = kubectl_json("get", kind.lower(), "beamstack")
        endpoint = "mutate" if kind.startswith("Mutating") else "validate"
        webhook = next(w for w in configuration["webhooks"] if w["name"] == CALLS["webhook"][endpoint])
        webhook["name"] = CALLS["noop"][endpoint]
        webhook["clientConfig"] = {"caBundle": ca_bundle, "service": dict(webhook["clientConfig"]["service"],
                                                                          name=NOOP, namespace=namespace)}
        webhook["namespaceSelector"] = {"matchLabels": {"beamstack.dev/bench": "noop"}}
        webhook.pop("objectSelector", None)
        objects.append({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                        "metadata": {"name": "beamstack-bench-noop"}, "webhooks": [webhook]})
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    kubectl("-n", namespace, "rollout", "status", f"deployment/{NOOP}", "--timeout=120s")
    # Ready pods are not yet a routed Service: wait until kube-proxy forwards its ClusterIP, as the API server dials it.
    address = kubectl_json("-n", namespace, "get", "service", NOOP)["spec"]["clusterIP"]
    port = service["spec"]["ports"][0]["port"]
    for _ in range(300):
        try:
            socket.create_connection((address, port), timeout=1).close()
            return namespace
        except OSError:
            time.sleep(0.1)
    sys.exit(f"the no-op webhook's Service {address}:{port} never accepted a connection")


def stop_noop(namespace):
    for args in (("delete", "mutatingwebhookconfiguration,validatingwebhookconfiguration", "beamstack-bench-noop"),
                 ("-n", namespace, "delete", "deployment,service", NOOP),
                 ("-n", namespace, "delete", "secret", f"{NOOP}-tls")):
        kubectl(*args, "--ignore-not-found", check=False)


# ---- Creates ---------------------------------------------------------------------------------------------------

def prepare():
    labels = {
        "none": {"beamstack.dev/webhook": "disabled", "team": "a"},
        "noop": {"beamstack.dev/webhook": "disabled", "team": "a", "beamstack.dev/bench": "noop"},
        "webhook": {"team": "a"},
        "vap": {"beamstack.dev/webhook": "disabled", "team": "a", "beamstack.dev/bench": "vap"},
    }
    suffix = str(int(time.time()))
    names = {}
    for case in CASES:
        name = f"bench-{case}-{suffix}"
        names[case] = name
        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels[case]}}
        kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    kubectl("apply", "--server-side", "-f", os.path.join(ROOT, "bench", "apiserver", "vap.yaml"))
    return names


def templates(namespaces):
    """The plain FlinkDeployment (for the webhook, which defaults it and adds the harness) and the same object as the
    webhook stores it (for the others, which do not mutate), so every case stores the same object."""
    text = kubectl("create", "--dry-run=client", "-o", "json", "-f",
                   os.path.join(ROOT, "policies", "tests", "resources", "flink-pipeline.yaml")).stdout
    plain = json.loads(text)
    plain["metadata"] = {"name": "template", "namespace": namespaces["webhook"], "labels": {"team": "a"},
                         "annotations": plain["metadata"].get("annotations", {})}
    stored = json.loads(kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(plain)).stdout)
    assert "beam-worker-pool" in json.dumps(stored), "the webhook did not add the harness"
    kubectl("delete", "flinkdeployment", "template", "-n", namespaces["webhook"])
    metadata = stored["metadata"]
    stored["metadata"] = {key: metadata[key] for key in ("name", "labels", "annotations") if key in metadata}
    stored.pop("status", None)
    return plain, {"none": stored, "noop": stored, "webhook": plain, "vap": stored}


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def create(conn, token, namespace, body, name):
    body = dict(body, metadata=dict(body["metadata"], name=name, namespace=namespace))
    started = time.perf_counter()
    conn.request("POST", f"/apis/flink.apache.org/v1beta1/namespaces/{namespace}/flinkdeployments",
                 body=json.dumps(body), headers={"Authorization": f"Bearer {token}",
                                                 "Content-Type": "application/json"})
    response = conn.getresponse()
    answer = response.read()
    return time.perf_counter() - started, response.status, answer


def run_once(namespaces, creates, bodies):
    conn, token = connection()
    latencies = {case: [] for case in CASES}
    before = None
    for index in range(creates + WARMUP_ROUNDS):
        if index == WARMUP_ROUNDS:  # the first rounds warm connections and caches
            before = snapshot()
        for case in CASES:
            elapsed, status, answer = create(conn, token, namespaces[case], bodies[case],
                                             f"b{index}-{time.monotonic_ns() % 10**9}")
            if status != 201:
                sys.exit(f"{case}: create answered {status}: {answer[:400]!r}")
            if index >= WARMUP_ROUNDS:
                latencies[case].append(elapsed * 1000)
    after = snapshot()
    result = {case: {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}
              for case, values in latencies.items()}
    result["split"] = split(before, after)
    return result


# ---- The burst -------------------------------------------------------------------------------------------------

def burst(namespace, body, total, clients, disrupt_at=None, disrupt=None):
    """`total` creates from `clients` threads, each on its own connection. With `disrupt_at`, `disrupt(pod)` is
    called on one beam-webhook pod once that many creates have completed."""
    latencies, failures, lock = [], [], threading.Lock()
    counter = iter(range(total))
    done_count = [0]
    deleted = {}

    def client():
        conn, token = connection()
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            try:
                elapsed, status, answer = create(conn, token, namespace, body, f"burst-{index}-{time.time_ns()}")
            except (OSError, http.client.HTTPException) as error:
                conn, token = connection()
                elapsed, status, answer = None, None, str(error).encode()
            with lock:
                done_count[0] += 1
                if status == 201:
                    latencies.append(elapsed * 1000)
                else:
                    try:  # the API server's Status: its message names the webhook and the cause
                        failures.append(f"{status}: {json.loads(answer)['message']}")
                    except (ValueError, KeyError, TypeError):
                        failures.append(f"{status}: {answer[:300].decode(errors='replace')}")

    def deleter():
        while done_count[0] < disrupt_at:
            time.sleep(0.005)
        pod = kubectl_json("get", "pods", "-A", "-l", WEBHOOK_LABEL)["items"][0]
        deleted["pod"] = pod["metadata"]["name"]
        deleted["after_creates"] = done_count[0]
        disrupt(pod)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    if disrupt_at is not None:
        threads.append(threading.Thread(target=deleter))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    result = {"creates": total, "clients": clients, "failed": len(failures), "failures": failures[:5],
              "seconds": seconds, "per_second": total / seconds}
    if latencies:
        result.update(p50=percentile(latencies, 0.5), p99=percentile(latencies, 0.99))
    if deleted:
        result["deleted"] = deleted
    return result


def delete_pod(pod):
    """As a rollout or a node drain does: the pod's preStop sleep, then SIGTERM and the drain."""
    kubectl("-n", pod["metadata"]["namespace"], "delete", "pod", pod["metadata"]["name"], "--wait=false")


def kill_pod_process(pod):
    """SIGKILL to the pod's beam-webhook process (its pods run on this machine): no preStop, no drain, as when the
    process crashes or the node's OOM killer takes it. The kubelet restarts the container in the same pod."""
    uid = pod["metadata"]["uid"]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
            cgroup = open(f"/proc/{pid}/cgroup").read()
        except OSError:
            continue
        if comm == "beam-webhook" and (uid in cgroup or uid.replace("-", "_") in cgroup):
            os.kill(int(pid), 9)
            return
    sys.exit(f"no beam-webhook process found for pod {pod['metadata']['name']}")


def wait_for_two_webhook_pods():
    deployment = kubectl_json("get", "deployments", "-A", "-l", WEBHOOK_LABEL)["items"][0]
    kubectl("-n", deployment["metadata"]["namespace"], "rollout", "status",
            f"deployment/{deployment['metadata']['name']}", "--timeout=180s")
    for _ in range(120):  # the deleted pod is gone from the list, and its replacement Ready
        pods = kubectl_json("get", "pods", "-A", "-l", WEBHOOK_LABEL)["items"]
        if len(pods) == 2 and all(p["metadata"].get("deletionTimestamp") is None
                                  and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
                                  for p in pods):
            return
        time.sleep(1)
    sys.exit("beam-webhook did not come back to two pods")


# ---- The same pod, paced and back to back -----------------------------------------------------------------------

def review_body(obj, namespace, uid):
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "flink.apache.org", "version": "v1beta1", "kind": "FlinkDeployment"},
        "resource": {"group": "flink.apache.org", "version": "v1beta1", "resource": "flinkdeployments"},
        "name": obj["metadata"]["name"], "namespace": namespace, "operation": "CREATE",
        "userInfo": {"username": "bench"}, "object": dict(obj, metadata=dict(obj["metadata"], namespace=namespace)),
        "dryRun": False}})


def pace_probe(plain, stored, namespace, requests=300):
    """Reviews sent straight to one beam-webhook pod over one keep-alive connection, back to back and one every
    4 ms (the API server's pace when creates come one at a time): the pod's own review and handling means, and the
    round trip at the client. The same code, the same body: what differs is whether the core stayed busy."""
    pod = next(p for p in kubectl_json("get", "pods", "-A", "-l", WEBHOOK_LABEL)["items"]
               if p["metadata"].get("deletionTimestamp") is None)
    ip, pod_namespace = pod["status"]["podIP"], pod["metadata"]["namespace"]
    secret = kubectl_json("-n", pod_namespace, "get", "secret", "beam-webhook-tls")
    context = ssl.create_default_context(cadata=base64.b64decode(secret["data"]["ca.crt"]).decode())
    context.check_hostname = False  # the certificate names the Service; the probe dials one pod's address
    bodies = {"mutate": review_body(plain, namespace, "probe"), "validate": review_body(stored, namespace, "probe")}

    def pod_text():
        with urllib.request.urlopen(f"http://{ip}:8080/metrics", timeout=5) as answer:
            return answer.read().decode()

    result = {}
    for pace_ms in (0, 4):
        for endpoint, body in bodies.items():
            conn = http.client.HTTPSConnection(ip, 9443, context=context)
            send = lambda: (conn.request("POST", f"/{endpoint}", body=body,
                                         headers={"Content-Type": "application/json"}),
                            conn.getresponse().read())
            for _ in range(20):
                send()
            before, latencies = pod_text(), []
            for _ in range(requests):
                started = time.perf_counter()
                send()
                latencies.append((time.perf_counter() - started) * 1000)
                if pace_ms:
                    time.sleep(pace_ms / 1000)
            after = pod_text()
            conn.close()
            row = {"client_p50_ms": percentile(latencies, 0.5)}
            for metric, key in (("handling", "handling_ms"), ("admission", "review_ms")):
                family = f"beamstack_webhook_{metric}_duration_seconds"
                row[key] = mean_ms(sum_and_count(before, family, endpoint=endpoint),
                                   sum_and_count(after, family, endpoint=endpoint))["mean_ms"]
            result[f"{endpoint}.pace_{pace_ms}ms"] = row
    return result


# ---- Summary ---------------------------------------------------------------------------------------------------

def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(runs):
    summary = {}
    for case in CASES:
        for stat in ("p50", "p99"):
            summary[f"{case}.{stat}"] = spread([run[case][stat] for run in runs])
    for case in ("noop", "webhook", "vap"):
        for stat in ("p50", "p99"):
            summary[f"{case}.adds.{stat}"] = spread([run[case][stat] - run["none"][stat] for run in runs])
    for stat in ("p50", "p99"):
        summary[f"webhook_over_noop.adds.{stat}"] = spread(
            [(run["webhook"][stat] - run["none"][stat]) / (run["noop"][stat] - run["none"][stat])
             for run in runs if run["noop"][stat] > run["none"][stat]])
    summary["webhook_over_vap.adds.p50"] = spread(
        [(run["webhook"]["p50"] - run["none"]["p50"]) / (run["vap"]["p50"] - run["none"]["p50"])
         for run in runs if run["vap"]["p50"] > run["none"]["p50"]])
    for key in runs[0]["split"]:
        for part in runs[0]["split"][key]:
            summary[f"split.{key}.{part}"] = spread([run["split"][key][part]["mean_ms"] for run in runs])
    for endpoint in ("mutate", "validate"):
        summary[f"webhook.{endpoint}.server_over_review"] = spread(
            [run["split"][f"webhook.{endpoint}"]["server_handling"]["mean_ms"]
             / run["split"][f"webhook.{endpoint}"]["server_review"]["mean_ms"] for run in runs
             if run["split"][f"webhook.{endpoint}"]["server_review"]["mean_ms"]])
    return summary


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    if not os.path.exists(os.path.join(STATE, "kubeconfig")):
        sys.exit("no end-to-end cluster: bash scripts/e2e-tools.sh && bash scripts/e2e-cluster.sh up")
    runs, namespaces_made = [], []
    noop_namespace = None
    try:
        for _ in range(args.runs):
            namespaces = prepare()
            namespaces_made += namespaces.values()
            plain, bodies = templates(namespaces)
            if noop_namespace is None:
                patch_bytes = our_patch_bytes(plain)
                noop_namespace = start_noop(patch_bytes)
            runs.append(run_once(namespaces, args.creates, bodies))
            # The policy is really in force in its namespace: a FlinkDeployment without a serviceAccount is refused.
            refused = dict(bodies["vap"], metadata={"name": "refused", "labels": {"team": "a"}})
            refused["spec"] = {key: value for key, value in bodies["vap"]["spec"].items() if key != "serviceAccount"}
            denied = kubectl("create", "-n", namespaces["vap"], "-f", "-", stdin=json.dumps(refused), check=False)
            assert denied.returncode != 0 and "beamstack-bench-equivalent" in denied.stderr, denied.stderr
        probe = pace_probe(plain, bodies["none"], namespaces["webhook"])
        bursts = {}
        if args.burst:
            bursts["none"] = burst(namespaces["none"], bodies["none"], args.burst, args.clients)
            bursts["webhook"] = burst(namespaces["webhook"], bodies["webhook"], args.burst, args.clients)
            bursts["webhook_pod_deleted"] = burst(namespaces["webhook"], bodies["webhook"], args.burst, args.clients,
                                                  disrupt_at=args.burst // 3, disrupt=delete_pod)
            wait_for_two_webhook_pods()
            bursts["webhook_process_killed"] = burst(namespaces["webhook"], bodies["webhook"], args.burst,
                                                     args.clients, disrupt_at=args.burst // 3,
                                                     disrupt=kill_pod_process)
            wait_for_two_webhook_pods()
    finally:
        if noop_namespace:
            stop_noop(noop_namespace)
        for namespace in namespaces_made:
            kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    summary = summarize(runs)
    summary["noop_patch_bytes"] = patch_bytes
    summary["burst"] = bursts
    summary["pace_probe"] = probe
    summary["creates_per_namespace_per_run"] = args.creates
    summary["runs"] = args.runs
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
