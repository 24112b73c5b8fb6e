#!/usr/bin/env bash
# The end-to-end suite's cluster: a real single-node Kubernetes on this machine with Beamstack installed by Helm,
# the way a platform team installs it.
#   - etcd and kube-apiserver (built by e2e-tools.sh) on this machine, reached on loopback by the tests and on the
#     node's address by pods;
#   - the node (scripts/e2e-node.sh): containerd, kubelet, kube-controller-manager, kube-scheduler, kube-proxy and
#     CoreDNS, running the images scripts/e2e-images.sh built (ours from images/, stand-ins for official ones);
#   - the Flink and Spark operators' CRDs, the Flink Kubernetes Operator 1.7.0 watching beam-flink and the Kubeflow
#     Spark operator v2.5.2 (controller and pod webhook) watching beam-spark, from their image stand-ins; objects in
#     other namespaces are the tests' own, their statuses played;
#   - `helm install` of charts/beamstack into the namespace beamstack, which enforces the restricted Pod Security
#     Standard: two beam-webhook pods from ghcr.io/beamstack/beam-webhook, called by the API server through the
#     chart's Service, with the provided certificate mode (a Secret made with `beam-webhook certs`);
#   - Prometheus (Debian's package) discovering the webhook pods through the API server, and
#     scripts/flink-reporter-standin.py standing in for Flink's Prometheus reporter.
#
#   bash scripts/e2e-cluster.sh up              # start everything; prints the kubeconfig path
#   bash scripts/e2e-cluster.sh down            # stop everything, undo what up changed, keep nothing in .e2e
#   bash scripts/e2e-cluster.sh webhook-stop    # scale the webhook to zero pods (failure-policy scenarios)
#   bash scripts/e2e-cluster.sh webhook-start   # scale it back and wait until both pods are Ready
#
# State lives in .e2e/ (ports, certificates, logs, kubeconfig); built tools and images in $BEAMSTACK_CACHE.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$root/.e2e"
bin="$root/.tools/bin"
# The host-side tool (certificates), and the binary the webhook's image is built from: the release build unless
# BEAM_WEBHOOK_IMAGE_BIN names another (CI names the debug build: see scripts/test.sh). BEAM_WEBHOOK_RELEASE_BIN is
# the older name of the same setting.
release_bin="${BEAM_WEBHOOK_IMAGE_BIN:-${BEAM_WEBHOOK_RELEASE_BIN:-$root/target/release/beam-webhook}}"
webhook_bin="${BEAM_WEBHOOK_BIN:-$root/target/debug/beam-webhook}"
[[ -x "$webhook_bin" ]] || webhook_bin=$release_bin
etcd_port=23791
apiserver_port=26443
prometheus_port=29090
exporter_port=29091
namespace=beamstack

kubectl() { "$bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }
pids=$state log_name=e2e-cluster
# shellcheck source=scripts/e2e-common.sh
source "$root/scripts/e2e-common.sh"

# Identities: the tests' admin and the node's components, each a token user named as its bootstrap RBAC binding
# expects; and the client certificate the API server shows the kubelet (logs, exec), from a CA the kubelet trusts.
make_identities() {
    {
        echo "$(openssl rand -hex 24),e2e-admin,e2e-admin,system:masters"
        echo "$(openssl rand -hex 24),system:node:e2e-node,system:node:e2e-node,system:nodes"
        for user in system:kube-controller-manager system:kube-scheduler system:kube-proxy; do
            echo "$(openssl rand -hex 24),$user,$user"
        done
    } >"$state/tokens.csv"
    local ca="$state/kubelet-client-ca"
    mkdir -p "$ca"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj "/CN=e2e kubelet client CA" \
        -keyout "$ca/ca.key" -out "$ca/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=system:masters/CN=kube-apiserver" \
        -keyout "$ca/client.key" -out "$ca/client.csr" 2>/dev/null
    openssl x509 -req -in "$ca/client.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -CAcreateserial -days 7 \
        -out "$ca/client.crt" 2>/dev/null
}

write_kubeconfig() {
    local token
    token=$(awk -F, '$2 == "e2e-admin" {print $1}' "$state/tokens.csv")
    cat >"$state/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: https://127.0.0.1:$apiserver_port
      certificate-authority: $state/apiserver-certs/ca.crt
users:
  - name: e2e-admin
    user:
      token: $token
contexts:
  - name: e2e
    context: {cluster: e2e, user: e2e-admin, namespace: default}
current-context: e2e
EOF
}

up() {
    for tool in etcd kube-apiserver kubectl helm kubelet kube-controller-manager kube-scheduler kube-proxy coredns; do
        [[ -x "$bin/$tool" ]] || { log "no $bin/$tool: run bash scripts/e2e-tools.sh first"; exit 1; }
    done
    [[ -x "$release_bin" ]] || { log "no $release_bin: cargo build --release -p webhook first (or name a binary with BEAM_WEBHOOK_IMAGE_BIN)"; exit 1; }
    down
    mkdir -p "$state/etcd"
    local started=$SECONDS ip
    ip=$(node_ip)

    # The images first: base images and stand-ins are made once per machine, ours from that binary.
    mkdir -p "$state/binaries/linux-amd64" && cp "$release_bin" "$state/binaries/linux-amd64/"
    BEAMSTACK_BINARIES="$state/binaries" bash "$root/scripts/e2e-images.sh" build
    log "images ready after $((SECONDS - started)) s"

    start etcd "$bin/etcd" --data-dir "$state/etcd" --name e2e \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
        --initial-cluster "e2e=http://127.0.0.1:$((etcd_port + 1))" \
        --unsafe-no-fsync --quota-backend-bytes 2147483648

    # The API server's serving certificate (every name a client uses: loopback, the node's address, the
    # kubernetes Service's ClusterIP and DNS names), made with the project's cert tooling, and service-account keys.
    "$webhook_bin" certs --out "$state/apiserver-certs" --service kubernetes --namespace default \
        --name 127.0.0.1 --name localhost --name "$ip" --name 10.96.0.1 >/dev/null
    openssl genrsa -out "$state/sa.key" 2048 2>/dev/null
    openssl rsa -in "$state/sa.key" -pubout -out "$state/sa.pub" 2>/dev/null
    make_identities
    wait_for etcd curl -fsS "http://127.0.0.1:$etcd_port/health"

    # Bound to every address: the tests use loopback, pods the kubernetes Service, which kube-proxy sends to the
    # advertised node address. Node authorization and NodeRestriction keep the kubelet to its own node.
    start apiserver "$bin/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address 0.0.0.0 --advertise-address "$ip" --secure-port "$apiserver_port" \
        --tls-cert-file "$state/apiserver-certs/tls.crt" --tls-private-key-file "$state/apiserver-certs/tls.key" \
        --client-ca-file "$state/apiserver-certs/ca.crt" \
        --service-account-issuer https://kubernetes.default.svc \
        --service-account-key-file "$state/sa.pub" --service-account-signing-key-file "$state/sa.key" \
        --token-auth-file "$state/tokens.csv" --authorization-mode Node,RBAC \
        --enable-admission-plugins NodeRestriction \
        --kubelet-client-certificate "$state/kubelet-client-ca/client.crt" \
        --kubelet-client-key "$state/kubelet-client-ca/client.key" --kubelet-preferred-address-types InternalIP,Hostname \
        --service-cluster-ip-range 10.96.0.0/16 \
        --enable-priority-and-fairness=false --profiling=false
    write_kubeconfig
    wait_for apiserver kubectl get --raw /readyz
    log "API server ready after $((SECONDS - started)) s"

    # The operators' CRDs (ours come with the chart).
    kubectl apply --server-side -f "$root/testdata/crds/" >/dev/null
    bash "$root/scripts/e2e-node.sh" up
    install_beamstack
    install_flink_operator
    install_spark_operator
    start_monitoring
    # A CRD created a moment ago may have no status yet, which kubectl wait reports as an error: ask again.
    for attempt in 1 2 3 4 5; do
        kubectl wait --for condition=established --timeout 60s crd --all >/dev/null 2>&1 && break
        [[ $attempt == 5 ]] && { kubectl wait --for condition=established --timeout 5s crd --all; exit 1; }
        sleep 0.5
    done
    kubectl -n kube-system rollout status deployment/coredns --timeout 120s >/dev/null
    log "cluster, node, Beamstack and Prometheus up after $((SECONDS - started)) s; KUBECONFIG=$state/kubeconfig"
    echo "$state/kubeconfig"
}

# Beamstack as a platform team installs it: its namespace enforcing the restricted Pod Security Standard, the
# serving certificate as a Secret (provided mode, certs/README.md), and `helm install` of the chart.
install_beamstack() {
    kubectl create namespace "$namespace" >/dev/null
    kubectl label namespace "$namespace" pod-security.kubernetes.io/enforce=restricted \
        pod-security.kubernetes.io/enforce-version=latest >/dev/null
    "$webhook_bin" certs --out "$state/webhook-certs" --service beam-webhook --namespace "$namespace" >/dev/null
    kubectl -n "$namespace" create secret generic beam-webhook-tls --type kubernetes.io/tls \
        --from-file="$state/webhook-certs/tls.crt" --from-file="$state/webhook-certs/tls.key" \
        --from-file="$state/webhook-certs/ca.crt" >/dev/null
    local ca_bundle
    ca_bundle=$(base64 -w0 <"$state/webhook-certs/ca.crt")
    if ! "$bin/helm" --kubeconfig "$state/kubeconfig" install beamstack "$root/charts/beamstack" -n "$namespace" \
        --set certificates.mode=provided --set "certificates.caBundle=$ca_bundle" \
        --set "pluginDefaults.prometheus=http://127.0.0.1:$prometheus_port" \
        --wait --timeout 180s >"$state/helm-install.log" 2>&1; then
        log "helm install failed:"
        cat "$state/helm-install.log" >&2
        kubectl -n "$namespace" get pods -o wide >&2
        kubectl -n "$namespace" describe pods 2>&1 | tail -40 >&2
        exit 1
    fi
    wait_for_service 0
    log "helm install: beam-webhook $(kubectl -n "$namespace" get deployment beam-webhook -o jsonpath='{.status.readyReplicas}') pods Ready"
}

# The Flink Kubernetes Operator as a platform team runs it (tests/node/manifests/flink-kubernetes-operator: what
# its 1.7.0 chart installs with the webhook off, watching the namespace beam-flink), from its image stand-in.
install_flink_operator() {
    local manifests="$root/tests/node/manifests/flink-kubernetes-operator" flink_home
    flink_home=$(sed -n 's/^FLINK_HOME=//p' "$root/.tools/flink/env")
    kubectl apply -f "$manifests/operator.yaml" >/dev/null
    kubectl -n flink-operator create configmap flink-operator-config --dry-run=client -o yaml \
        --from-file="$manifests/flink-conf.yaml" --from-file="$manifests/log4j-operator.properties" \
        --from-file="$flink_home/conf/log4j-console.properties" | kubectl apply -f - >/dev/null
    if ! kubectl -n flink-operator rollout status deployment/flink-kubernetes-operator --timeout 180s >/dev/null; then
        log "the Flink operator did not become ready:"
        kubectl -n flink-operator get pods -o wide >&2
        kubectl -n flink-operator logs deployment/flink-kubernetes-operator --tail 40 >&2 || true
        exit 1
    fi
    log "Flink Kubernetes Operator 1.7.0 ready, watching beam-flink"
}

# The Kubeflow Spark operator as a platform team runs it (tests/node/manifests/spark-operator: what its v2.5.2 chart
# installs for the job namespace beam-spark), from its image stand-in. Its webhook makes its own certificate and
# writes the CA into its webhook configurations: until then (and until it serves), pods it mutates and
# SparkApplications cannot be created, so up waits for the CA.
install_spark_operator() {
    kubectl apply -f "$root/tests/node/manifests/spark-operator/operator.yaml" >/dev/null
    local deployment
    for deployment in spark-operator-controller spark-operator-webhook; do
        if ! kubectl -n spark-operator rollout status "deployment/$deployment" --timeout 180s >/dev/null; then
            log "the Spark operator's $deployment did not become ready:"
            kubectl -n spark-operator get pods -o wide >&2
            kubectl -n spark-operator logs "deployment/$deployment" --tail 40 >&2 || true
            exit 1
        fi
    done
    local jsonpath='{.webhooks[*].clientConfig.caBundle}' attempt
    for attempt in $(seq 60); do
        [[ -n "$(kubectl get mutatingwebhookconfiguration spark-operator-webhook -o jsonpath="$jsonpath")" &&
            -n "$(kubectl get validatingwebhookconfiguration spark-operator-webhook -o jsonpath="$jsonpath")" ]] && break
        [[ $attempt == 60 ]] && { log "the Spark operator's webhook never wrote its CA"; exit 1; }
        sleep 1
    done
    log "Kubeflow Spark operator v2.5.2 ready (controller and webhook), watching beam-spark"
}

# wait_for_service ANSWER: until a connection to the webhook Service's ClusterIP, as the API server makes it, gives
# curl's exit code ANSWER (0: served, 7: refused), i.e. until kube-proxy has caught up with the pods.
wait_for_service() {
    local address
    address=$(kubectl -n "$namespace" get service beam-webhook -o jsonpath='{.spec.clusterIP}')
    for _ in $(seq 150); do
        local code=0
        curl -sk --max-time 1 -o /dev/null "https://$address:443/" || code=$?
        [[ $code == "$1" ]] && return 0
        sleep 0.2
    done
    log "the webhook Service at $address never answered as expected (curl exit $1)"
    exit 1
}

webhook_stop() {
    kubectl -n "$namespace" scale deployment/beam-webhook --replicas 0 >/dev/null
    kubectl -n "$namespace" wait --for delete pod -l app.kubernetes.io/name=beamstack-webhook --timeout 60s >/dev/null
    wait_for_service 7
}

webhook_start() {
    kubectl -n "$namespace" scale deployment/beam-webhook --replicas 2 >/dev/null
    kubectl -n "$namespace" rollout status deployment/beam-webhook --timeout 120s >/dev/null
    wait_for_service 0
}

# A real Prometheus (Debian's package) finding the webhook pods and the Flink pods through the API server, as one
# without the Prometheus operator does; and scripts/flink-reporter-standin.py standing in for the Flink reporter of a
# job "wc" that the status and dashboard scenario plays (its object exists, no Flink runs for it).
start_monitoring() {
    command -v prometheus >/dev/null || { log "no prometheus: apt-get install prometheus (Debian's package)"; exit 1; }
    mkdir -p "$state/prometheus"
    start exporter python3 "$root/scripts/flink-reporter-standin.py" "$exporter_port"
    # Debian's Prometheus is built without Kubernetes service discovery. In its place, a loop writes file_sd files
    # every two seconds with the labels Kubernetes discovery's relabelling would give (namespace, pod): the Ready
    # webhook pods' admin endpoints (the chart's ServiceMonitor) and the Flink pods' port named `metrics`, which the
    # webhook adds with Flink's Prometheus reporter (the chart's PodMonitor for Flink).
    start discovery discover_pods
    cat >"$state/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: beam-webhook
    file_sd_configs: [{files: ["$state/prometheus-targets.json"], refresh_interval: 1s}]
  - job_name: flink-pods
    scrape_interval: 5s
    file_sd_configs: [{files: ["$state/prometheus-flink-targets.json"], refresh_interval: 1s}]
  - job_name: flink
    static_configs: [{targets: ["127.0.0.1:$exporter_port"]}]
EOF
    start prometheus prometheus --config.file "$state/prometheus.yml" --storage.tsdb.path "$state/prometheus" \
        --web.listen-address "127.0.0.1:$prometheus_port"
    wait_for prometheus curl -fsS "http://127.0.0.1:$prometheus_port/-/ready"
}

# Prometheus file_sd targets, rewritten whenever they change: the Ready webhook pods' admin endpoints, and the
# running Flink pods' (label type=flink-native-kubernetes) container port named `metrics`.
discover_pods() {
    local webhook_targets="$state/prometheus-targets.json" flink_targets="$state/prometheus-flink-targets.json"
    echo '[]' >"$webhook_targets"
    echo '[]' >"$flink_targets"
    while true; do
        kubectl -n "$namespace" get pods -l app.kubernetes.io/name=beamstack-webhook -o json 2>/dev/null |
            python3 -c '
import json, sys
pods = json.load(sys.stdin)["items"]
ready = [p for p in pods if p["status"].get("podIP") and any(
    c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
print(json.dumps([{"targets": [p["status"]["podIP"] + ":8080"],
                   "labels": {"namespace": p["metadata"]["namespace"], "pod": p["metadata"]["name"]}}
                  for p in ready]))' >"$webhook_targets.new" 2>/dev/null && mv "$webhook_targets.new" "$webhook_targets"
        kubectl get pods -A -l type=flink-native-kubernetes -o json 2>/dev/null |
            python3 -c '
import json, sys
targets = []
for p in json.load(sys.stdin)["items"]:
    ip = p["status"].get("podIP")
    if not ip or p["status"].get("phase") != "Running":
        continue
    for c in p["spec"]["containers"]:
        for port in c.get("ports", []):
            if port.get("name") == "metrics":
                labels = {"namespace": p["metadata"]["namespace"], "pod": p["metadata"]["name"],
                          "component": p["metadata"].get("labels", {}).get("component", "")}
                targets.append({"targets": [ip + ":" + str(port["containerPort"])], "labels": labels})
print(json.dumps(targets))' >"$flink_targets.new" 2>/dev/null && mv "$flink_targets.new" "$flink_targets"
        sleep 2
    done
}

down() {
    stop discovery
    stop prometheus
    stop exporter
    bash "$root/scripts/e2e-node.sh" down
    stop apiserver
    stop etcd
    rm -rf "$state"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    webhook-stop) webhook_stop ;;
    webhook-start) webhook_start ;;
    *) echo "usage: $0 up|down|webhook-stop|webhook-start" >&2; exit 2 ;;
esac
