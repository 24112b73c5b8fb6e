#!/usr/bin/env bash
# The main job on a fresh machine, no cluster needed: builds beam-webhook, makes certificates with its own tooling,
# serves on loopback over TLS, and sends it the AdmissionReviews an API server would send for a Beam pipeline on
# Flink and on Spark. Prints each answer's JSON patch, then the webhook's metrics, and stops it with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${BEAM_DEMO_PORT:-18443}"
admin_port="${BEAM_DEMO_ADMIN_PORT:-18080}"
work="$(mktemp -d)"
webhook_pid=""
cleanup() {
  if [ -n "$webhook_pid" ] && kill -0 "$webhook_pid" 2>/dev/null; then kill -TERM "$webhook_pid"; wait "$webhook_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> building beam-webhook and kubectl-beam"
cargo build --quiet -p webhook --bin beam-webhook -p kubectl-beam --bin kubectl-beam
bin=target/debug/beam-webhook
plugin=target/debug/kubectl-beam

echo "==> certificates (CA + serving certificate for localhost)"
"$bin" certs --out "$work/certs" --name localhost --name 127.0.0.1 --days 1

echo "==> serving on https://127.0.0.1:$port (admin http://127.0.0.1:$admin_port)"
"$bin" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin_port" \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" --log-format text 2>"$work/webhook.log" &
webhook_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$admin_port/readyz"; echo

for review in testdata/fixtures/reviews/flink-pipeline-create.json testdata/fixtures/reviews/spark-pipeline-create.json; do
  echo
  echo "==> POST /mutate $(basename "$review")"
  answer="$(curl -fsS --cacert "$work/certs/ca.crt" -H 'Content-Type: application/json' \
    --data-binary "@$review" "https://localhost:$port/mutate")"
  echo "$answer" | python3 -c '
import base64, json, sys
response = json.load(sys.stdin)["response"]
print("allowed:", response["allowed"], " uid:", response["uid"])
for op in json.loads(base64.b64decode(response["patch"])):
    print(" ", op["op"], op["path"], json.dumps(op.get("value"))[:110])
'
done

echo
echo "==> POST /validate with a broken FlinkDeployment: one denial lists every problem"
python3 -c '
import json, sys
review = json.load(open("testdata/fixtures/reviews/flink-pipeline-create.json"))
spec = review["request"]["object"]["spec"]
review["request"]["object"]["metadata"]["name"] = "Word_Count"
spec["flinkVersion"] = "v1_13"
spec["taskManager"]["resource"]["memory"] = "lots"
spec["flinkConfiguration"]["kubernetes.namespace"] = "elsewhere"
spec["job"]["parallelism"] = 0
print(json.dumps(review))
' | curl -fsS --cacert "$work/certs/ca.crt" -H 'Content-Type: application/json' --data-binary @- \
  "https://localhost:$port/validate" | python3 -c '
import json, sys
response = json.load(sys.stdin)["response"]
print("allowed:", response["allowed"])
print(response["status"]["message"])
'

echo
echo "==> kubectl beam run examples/beam/wordcount_minimal.yaml --dry-run=client, then through the webhook"
"$plugin" run examples/beam/wordcount_minimal.yaml --dry-run=client -o json -n data > "$work/objects.json"
python3 -c '
import json, sys
objects = json.load(open(sys.argv[1]))["items"]
print("objects:", ", ".join(o["kind"] + "/" + o["metadata"]["name"] for o in objects))
deployment = next(o for o in objects if o["kind"] == "FlinkDeployment")
print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "3f1c0a2e-demo", "kind": {"group": "flink.apache.org", "version": "v1beta1", "kind": "FlinkDeployment"},
    "name": deployment["metadata"]["name"], "namespace": "data", "operation": "CREATE",
    "userInfo": {"username": "demo"}, "object": deployment}}), file=open(sys.argv[2], "w"))
' "$work/objects.json" "$work/review.json"
curl -fsS --cacert "$work/certs/ca.crt" -H 'Content-Type: application/json' --data-binary "@$work/review.json" \
  "https://localhost:$port/mutate" | python3 -c '
import base64, json, sys
response = json.load(sys.stdin)["response"]
for op in json.loads(base64.b64decode(response["patch"])):
    if op["path"] == "/spec/taskManager/podTemplate":
        for container in op["value"]["spec"]["containers"]:
            print("  TaskManager container:", container["name"], container.get("image", "(the Flink image)"))
    elif "merge-arrays" in op["path"]:
        print(" ", op["op"], op["path"], json.dumps(op.get("value")))
'

echo
echo "==> metrics"
curl -fsS "http://127.0.0.1:$admin_port/metrics" | grep -E '^beamstack_webhook_(admissions|patches)_total'
echo
echo "==> SIGTERM"
kill -TERM "$webhook_pid"; wait "$webhook_pid"; webhook_pid=""
tail -n 4 "$work/webhook.log"
