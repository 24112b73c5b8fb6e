#!/usr/bin/env bash
# A real control plane on loopback for the end-to-end suite: etcd and kube-apiserver (built by e2e-tools.sh), the
# Flink and Spark operators' CRDs and ours, and beam-webhook from this workspace registered through the Helm chart's
# own webhook configurations (rendered with helm, pointing at the webhook by URL, caBundle from our cert tooling).
# No kubelet, scheduler or controller-manager runs: pods are never started, and operators' status is played by tests.
#
#   bash scripts/e2e-cluster.sh up              # start everything; prints the kubeconfig path
#   bash scripts/e2e-cluster.sh down            # stop everything, keep nothing
#   bash scripts/e2e-cluster.sh webhook-stop    # stop only the webhook (failure-policy scenarios)
#   bash scripts/e2e-cluster.sh webhook-start   # start it again with the same certificates
#
# State lives in .e2e/ (ports, certificates, logs, kubeconfig).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$root/.e2e"
bin="$root/.tools/bin"
webhook_bin="${BEAM_WEBHOOK_BIN:-$root/target/debug/beam-webhook}"
etcd_port=23791
apiserver_port=26443
webhook_port=29443
admin_port=29080
prometheus_port=29090
exporter_port=29091

log() { printf 'e2e-cluster: %s\n' "$*" >&2; }

running() { [[ -f "$state/$1.pid" ]] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

stop() {
    if running "$1"; then
        local pid
        pid=$(cat "$state/$1.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$state/$1.pid"
}

# wait_for NAME COMMAND...: until COMMAND succeeds, or fail with the process's log.
wait_for() {
    local name=$1
    shift
    for _ in $(seq 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if ! running "$name"; then break; fi
        sleep 0.1
    done
    log "$name did not come up; its log ends with:"
    tail -30 "$state/$name.log" >&2
    exit 1
}

start_webhook() {
    [[ -x "$webhook_bin" ]] || { log "no $webhook_bin: run cargo build --workspace --bins first"; exit 1; }
    KUBECONFIG="$state/kubeconfig" "$webhook_bin" serve \
        --listen "127.0.0.1:$webhook_port" --admin-listen "127.0.0.1:$admin_port" \
        --tls-cert "$state/webhook-certs/tls.crt" --tls-key "$state/webhook-certs/tls.key" \
        --tls-reload-interval 1s --policies "$state/policies" --policy-reload-interval 1s --cluster \
        --log-format json >>"$state/webhook.log" 2>&1 &
    echo $! >"$state/webhook.pid"
    wait_for webhook curl -fsS "http://127.0.0.1:$admin_port/readyz"
}

up() {
    for tool in etcd kube-apiserver kubectl helm; do
        [[ -x "$bin/$tool" ]] || { log "no $bin/$tool: run bash scripts/e2e-tools.sh first"; exit 1; }
    done
    down
    mkdir -p "$state/etcd" "$state/policies"
    local started=$SECONDS

    "$bin/etcd" --data-dir "$state/etcd" --name e2e \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
        --initial-cluster "e2e=http://127.0.0.1:$((etcd_port + 1))" \
        --unsafe-no-fsync --quota-backend-bytes 2147483648 >"$state/etcd.log" 2>&1 &
    echo $! >"$state/etcd.pid"

    # The API server's own serving certificate and service-account keys, made with the project's cert tooling.
    "$webhook_bin" certs --out "$state/apiserver-certs" --service kubernetes --namespace default \
        --name 127.0.0.1 --name localhost >/dev/null
    openssl genrsa -out "$state/sa.key" 2048 2>/dev/null
    openssl rsa -in "$state/sa.key" -pubout -out "$state/sa.pub" 2>/dev/null
    local token
    token=$(openssl rand -hex 24)
    echo "$token,e2e-admin,e2e-admin,system:masters" >"$state/tokens.csv"
    wait_for etcd curl -fsS "http://127.0.0.1:$etcd_port/health"

    "$bin/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$apiserver_port" \
        --tls-cert-file "$state/apiserver-certs/tls.crt" --tls-private-key-file "$state/apiserver-certs/tls.key" \
        --client-ca-file "$state/apiserver-certs/ca.crt" \
        --service-account-issuer https://kubernetes.default.svc \
        --service-account-key-file "$state/sa.pub" --service-account-signing-key-file "$state/sa.key" \
        --token-auth-file "$state/tokens.csv" --authorization-mode RBAC \
        --service-cluster-ip-range 10.96.0.0/16 \
        --enable-priority-and-fairness=false --profiling=false \
        >"$state/apiserver.log" 2>&1 &
    echo $! >"$state/apiserver.pid"

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
    export KUBECONFIG="$state/kubeconfig"
    wait_for apiserver "$bin/kubectl" get --raw /readyz
    log "API server ready after $((SECONDS - started)) s"

    "$bin/kubectl" apply --server-side -f "$root/tests/crds/" -f "$root/charts/beamstack/crds/" >/dev/null
    # A CRD created a moment ago may have no status yet, which kubectl wait reports as an error: ask again.
    for attempt in 1 2 3 4 5; do
        "$bin/kubectl" wait --for condition=established --timeout 60s crd --all >/dev/null 2>&1 && break
        [[ $attempt == 5 ]] && { "$bin/kubectl" wait --for condition=established --timeout 5s crd --all; exit 1; }
        sleep 0.5
    done
    "$bin/kubectl" create namespace beamstack >/dev/null

    # The webhook: certificates from beam-webhook certs for the chart's Service name plus loopback, the shipped
    # policies in a folder it reloads, and the cluster watches (policies, tenants, namespaces, runner CRs).
    "$webhook_bin" certs --out "$state/webhook-certs" --service beam-webhook --namespace beamstack \
        --name 127.0.0.1 --name localhost >/dev/null
    cp "$root"/policies/*.yaml "$state/policies/"
    start_webhook

    # The chart's templates decide what gets registered: render them by URL with the CA we just made, and apply
    # everything the chart makes (its Deployment never starts: there is no kubelet).
    start_monitoring

    local ca_bundle
    ca_bundle=$(base64 -w0 <"$state/webhook-certs/ca.crt")
    "$bin/helm" template beamstack "$root/charts/beamstack" --namespace beamstack --kube-version 1.34.4 \
        --set certificates.mode=provided --set "certificates.caBundle=$ca_bundle" \
        --set "webhook.url=https://127.0.0.1:$webhook_port" \
        --set "pluginDefaults.prometheus=http://127.0.0.1:$prometheus_port" 2>/dev/null >"$state/chart.yaml"
    "$bin/kubectl" apply --server-side -f "$state/chart.yaml" >/dev/null
    log "cluster, CRDs, webhook and chart up after $((SECONDS - started)) s; KUBECONFIG=$state/kubeconfig"
    echo "$state/kubeconfig"
}

# A real Prometheus (Debian's package) scraping the webhook's /metrics, and a static exporter standing in for Flink's
# Prometheus reporter (no Flink runs here): the series a running job "wc" would have, with fixed values.
start_monitoring() {
    command -v prometheus >/dev/null || { log "no prometheus: apt-get install prometheus (Debian's package)"; exit 1; }
    mkdir -p "$state/flink-exporter" "$state/prometheus"
    local now_ms
    now_ms=$(($(date +%s) * 1000))
    cat >"$state/flink-exporter/metrics" <<EOF
# TYPE flink_taskmanager_job_task_numRecordsInPerSecond gauge
flink_taskmanager_job_task_numRecordsInPerSecond{job_name="wc",task_name="ReadFromText",subtask_index="0"} 1200.5
flink_taskmanager_job_task_numRecordsInPerSecond{job_name="wc",task_name="WriteToText",subtask_index="0"} 300
# TYPE flink_taskmanager_job_task_backPressuredTimeMsPerSecond gauge
flink_taskmanager_job_task_backPressuredTimeMsPerSecond{job_name="wc",task_name="ReadFromText",subtask_index="0"} 250
flink_taskmanager_job_task_backPressuredTimeMsPerSecond{job_name="wc",task_name="WriteToText",subtask_index="0"} 0
# TYPE flink_jobmanager_job_lastCheckpointCompletedTimestamp gauge
flink_jobmanager_job_lastCheckpointCompletedTimestamp{job_name="wc"} $now_ms
EOF
    python3 -m http.server "$exporter_port" --bind 127.0.0.1 --directory "$state/flink-exporter" \
        >"$state/exporter.log" 2>&1 &
    echo $! >"$state/exporter.pid"
    cat >"$state/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: beam-webhook
    static_configs: [{targets: ["127.0.0.1:$admin_port"]}]
  - job_name: flink
    static_configs: [{targets: ["127.0.0.1:$exporter_port"]}]
EOF
    prometheus --config.file "$state/prometheus.yml" --storage.tsdb.path "$state/prometheus" \
        --web.listen-address "127.0.0.1:$prometheus_port" >"$state/prometheus.log" 2>&1 &
    echo $! >"$state/prometheus.pid"
    wait_for prometheus curl -fsS "http://127.0.0.1:$prometheus_port/-/ready"
}

down() {
    stop prometheus
    stop exporter
    stop webhook
    stop apiserver
    stop etcd
    rm -rf "$state"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    webhook-stop) stop webhook ;;
    webhook-start) start_webhook ;;
    *) echo "usage: $0 up|down|webhook-stop|webhook-start" >&2; exit 2 ;;
esac
