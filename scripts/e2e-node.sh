#!/usr/bin/env bash
# The test cluster's node: a real single-node Kubernetes worker on this machine, beside the control plane that
# scripts/e2e-cluster.sh starts. containerd, runc and the CNI plugins come from Debian's packages; kubelet,
# kube-controller-manager, kube-scheduler, kube-proxy and CoreDNS are built from their Go modules
# (scripts/e2e-tools.sh); the images it runs are made by scripts/e2e-images.sh. Pods get addresses from a bridge
# (cni0, 10.244.0.0/24); Services work through kube-proxy (iptables); cluster DNS is CoreDNS at 10.96.0.10.
#
#   bash scripts/e2e-node.sh up      # called by e2e-cluster.sh up, after the API server is ready
#   bash scripts/e2e-node.sh down    # stops what up started (by PID) and undoes what it changed on the machine
#
# What this machine needs (see README, "The test cluster's node"): cgroup v1 with the cgroupfs driver (no systemd
# runs), and `restrict_oom_score_adj` in containerd (the machine lacks CAP_SYS_RESOURCE, so runc cannot give a
# sandbox a negative oom_score_adj). What up changes outside .e2e/, and down undoes: iptables chains (KUBE-*, CNI-*),
# the cni0 bridge, the kubepods cgroups, the sysctls kubelet, kube-proxy and the bridge plugin set, and the few paths
# kubelet and containerd hard-code (/var/lib/kubelet, /var/log/containers, /var/lib/cni, /run/containerd); each is
# recorded before up touches it, so down removes only what up made.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$root/.e2e"
node="$state/node"
bin="$root/.tools/bin"
cache="${BEAMSTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beamstack}"
node_name=e2e-node
pod_cidr=10.244.0.0/24
cluster_dns=10.96.0.10
kubelet_port=20250
kubelet_healthz_port=20248
controller_manager_port=20257
scheduler_port=20259
proxy_metrics_port=20249
proxy_healthz_port=20256
socket="$node/containerd/containerd.sock"

# Paths outside .e2e that kubelet or containerd create whatever they are told; removed by down if up made them.
hard_coded_paths=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/containerd /opt/containerd)
# Sysctls set by kubelet (protectKernelDefaults: false), kube-proxy and the bridge plugin.
sysctls=(vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.ip_forward net.ipv4.conf.all.route_localnet
    net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables)

kubectl() { "$bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }
pids=$node log_name=e2e-node
# shellcheck source=scripts/e2e-common.sh
source "$root/scripts/e2e-common.sh"

# A kubeconfig for one of the node's identities (tokens from e2e-cluster.sh's token file).
write_kubeconfig() {
    local name=$1 token
    token=$(awk -F, -v user="$2" '$2 == user {print $1}' "$state/tokens.csv")
    cat >"$node/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster: {server: "$(sed -n 's/^ *server: //p' "$state/kubeconfig")", certificate-authority: "$state/apiserver-certs/ca.crt"}
users:
  - name: $2
    user: {token: "$token"}
contexts:
  - name: e2e
    context: {cluster: e2e, user: "$2"}
current-context: e2e
EOF
}

record_machine() {
    : >"$node/made-paths"
    for path in "${hard_coded_paths[@]}"; do [[ -e "$path" ]] || echo "$path" >>"$node/made-paths"; done
    sysctl -e "${sysctls[@]}" 2>/dev/null | sed 's/ = /=/' >"$node/sysctls-before"
    for tool in iptables ip6tables; do
        "$tool-save" 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/\1/p' | sort -u >"$node/$tool-chains-before" || true
    done
    if ip link show cni0 >/dev/null 2>&1; then echo cni0; fi >"$node/bridge-before"
    : >"$node/cgroups-made"
    for hierarchy in /sys/fs/cgroup/*/; do
        for group in kubepods k8s.io; do
            [[ -d "$hierarchy$group" ]] || echo "$hierarchy$group" >>"$node/cgroups-made"
        done
    done
}

start_containerd() {
    mkdir -p "$node/containerd" "$node/cni/net.d" "$cache/containerd/root" "$cache/containerd/opt"
    # containerd's root (images, snapshots) is kept outside the checkout so the images are imported once per
    # machine; state, socket and CNI configuration live in .e2e.
    cat >"$node/containerd/config.toml" <<EOF
version = 2
root = "$cache/containerd/root"
state = "$node/containerd/state"

[grpc]
  address = "$socket"

[plugins."io.containerd.internal.v1.opt"]
  path = "$cache/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  disable_apparmor = true
  # This machine's bounding set lacks CAP_SYS_RESOURCE: a sandbox's oom_score_adj of -998 cannot be set, and runc
  # fails with "can't get final child's PID from pipe: EOF". Clamp to containerd's own value instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd runs here: cgroupfs, as the kubelet's cgroupDriver (containerd 1.6 cannot tell it).
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node/cni/net.d"
EOF
    cat >"$node/cni/net.d/10-podnet.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "podnet", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$node/cni/ipam", "ranges": [[{"subnet": "$pod_cidr"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
    start containerd containerd --config "$node/containerd/config.toml"
    wait_for containerd ctr --address "$socket" version
}

start_kubelet() {
    local ip=$1
    mkdir -p "$node/kubelet/root" "$node/kubelet/pki" "$node/kubelet/volume-plugins" "$node/pod-logs"
    write_kubeconfig kubelet "system:node:$node_name"
    cat >"$node/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# No systemd: cgroupfs on the machine's cgroup v1 hierarchies (1.35 refuses v1 unless told).
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$socket
address: $ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$state/kubelet-client-ca/ca.crt"}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$cluster_dns]
resolvConf: /etc/resolv.conf
podCIDR: $pod_cidr
podLogsDir: "$node/pod-logs"
volumePluginDir: "$node/kubelet/volume-plugins"
registerNode: true
serializeImagePulls: false
# Images come from no registry: the garbage collector must never remove one, and a busy build disk must not
# evict the cluster's pods.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1Gi", imagefs.available: "1Gi"}
# Secret and ConfigMap volumes (certificates, policies) follow their objects within seconds rather than a minute.
syncFrequency: 10s
EOF
    start kubelet "$bin/kubelet" --config "$node/kubelet/config.yaml" --kubeconfig "$node/kubelet.kubeconfig" \
        --root-dir "$node/kubelet/root" --cert-dir "$node/kubelet/pki" --hostname-override "$node_name" \
        --node-ip "$ip" --v=1
    wait_for kubelet curl -fsS "http://127.0.0.1:$kubelet_healthz_port/healthz"
}

start_controllers() {
    write_kubeconfig controller-manager system:kube-controller-manager
    write_kubeconfig scheduler system:kube-scheduler
    write_kubeconfig proxy system:kube-proxy
    local kcm="$node/controller-manager.kubeconfig" scheduler="$node/scheduler.kubeconfig"
    start controller-manager "$bin/kube-controller-manager" \
        --kubeconfig "$kcm" --authentication-kubeconfig "$kcm" --authorization-kubeconfig "$kcm" \
        --bind-address 127.0.0.1 --secure-port "$controller_manager_port" --leader-elect=false \
        --service-account-private-key-file "$state/sa.key" --root-ca-file "$state/apiserver-certs/ca.crt" \
        --use-service-account-credentials --cluster-cidr 10.244.0.0/16 --service-cluster-ip-range 10.96.0.0/16 \
        --allocate-node-cidrs=false --controllers '*,-bootstrapsigner,-tokencleaner,-csrsigning' \
        --concurrent-gc-syncs 5 --v=1
    start scheduler "$bin/kube-scheduler" \
        --kubeconfig "$scheduler" --authentication-kubeconfig "$scheduler" --authorization-kubeconfig "$scheduler" \
        --bind-address 127.0.0.1 --secure-port "$scheduler_port" --leader-elect=false --v=1
    cat >"$node/proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$node/proxy.kubeconfig"}
mode: iptables
clusterCIDR: 10.244.0.0/16
hostnameOverride: $node_name
metricsBindAddress: 127.0.0.1:$proxy_metrics_port
healthzBindAddress: 127.0.0.1:$proxy_healthz_port
# Leave the machine's conntrack settings and route_localnet alone.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
EOF
    start proxy "$bin/kube-proxy" --config "$node/proxy.yaml" --v=1
    wait_for controller-manager curl -fsSk "https://127.0.0.1:$controller_manager_port/healthz"
    wait_for scheduler curl -fsSk "https://127.0.0.1:$scheduler_port/healthz"
    wait_for proxy curl -fsS "http://127.0.0.1:$proxy_healthz_port/healthz"
}

up() {
    local ip started=$SECONDS
    ip=$(node_ip)
    [[ -n "$ip" ]] || { log "no address on the default route's interface"; exit 1; }
    mkdir -p "$node"
    record_machine
    start_containerd
    bash "$root/scripts/e2e-images.sh" import "$socket"
    start_kubelet "$ip"
    start_controllers
    kubectl wait --for condition=Ready "node/$node_name" --timeout 60s >/dev/null
    kubectl apply --server-side -f "$root/tests/node/manifests/coredns.yaml" >/dev/null
    log "node $node_name ($ip) Ready after $((SECONDS - started)) s"
}

# Pods first (so the kubelet tears down their sandboxes, CNI DEL included), then the daemons, then the machine.
down() {
    [[ -d "$node" ]] || return 0
    stop controller-manager
    stop scheduler
    if running kubelet && kubectl get --raw /readyz >/dev/null 2>&1; then
        kubectl delete pods --all --all-namespaces --grace-period 0 --force --wait=false >/dev/null 2>&1 || true
        for _ in $(seq 150); do
            [[ -z "$(ctr --address "$socket" -n k8s.io tasks ls -q 2>/dev/null)" ]] && break
            sleep 0.2
        done
    fi
    stop kubelet
    stop proxy
    "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
    if running containerd; then
        # Whatever the kubelet left: kill tasks and remove containers, so no shim outlives containerd.
        for task in $(ctr --address "$socket" -n k8s.io tasks ls -q 2>/dev/null); do
            ctr --address "$socket" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
        done
        sleep 0.5
        for container in $(ctr --address "$socket" -n k8s.io containers ls -q 2>/dev/null); do
            ctr --address "$socket" -n k8s.io tasks delete -f "$container" >/dev/null 2>&1 || true
            ctr --address "$socket" -n k8s.io containers delete "$container" >/dev/null 2>&1 || true
        done
    fi
    stop containerd
    pkill -f "containerd-shim-runc-v2 .*-address $socket" 2>/dev/null || true
    restore_machine
}

restore_machine() {
    # Mounts under the node's folders and containerd's root (the kubelet bind-mounts its root dir onto itself).
    local target
    for target in $(findmnt -rn -o TARGET | grep -E "^($node|$cache/containerd)" | sort -r || true); do
        umount -l "$target" 2>/dev/null || true
    done
    for tool in iptables ip6tables; do
        [[ -f "$node/$tool-chains-before" ]] || continue
        for table in filter nat mangle; do
            local made
            made=$("$tool-save" -t "$table" 2>/dev/null | sed -n 's/^:\(\(KUBE\|CNI\)-[^ ]*\) .*/\1/p' |
                grep -vxF -f "$node/$tool-chains-before" || true)
            [[ -n "$made" ]] || continue
            # Rules elsewhere that jump into a chain up made, then the chains themselves.
            local jumps rule
            jumps=$("$tool-save" -t "$table" | grep -E "^-A .* -j ($(paste -sd '|' <<<"$made"))( |$)" || true)
            while read -r rule; do
                if [[ -n "$rule" ]]; then eval "$tool -t $table ${rule/-A /-D }" 2>/dev/null || true; fi
            done <<<"$jumps"
            for chain in $made; do "$tool" -t "$table" -F "$chain" 2>/dev/null || true; done
            for chain in $made; do "$tool" -t "$table" -X "$chain" 2>/dev/null || true; done
        done
    done
    if [[ -f "$node/bridge-before" && ! -s "$node/bridge-before" ]]; then ip link del cni0 2>/dev/null || true; fi
    if [[ -f "$node/cgroups-made" ]]; then
        while read -r group; do
            if [[ -d "$group" ]]; then find "$group" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
        done <"$node/cgroups-made"
    fi
    if [[ -f "$node/sysctls-before" ]]; then
        while IFS='=' read -r key value; do sysctl -q -w "$key=$value" >/dev/null 2>&1 || true; done \
            <"$node/sysctls-before"
    fi
    if [[ -f "$node/made-paths" ]]; then
        while read -r path; do rm -rf "$path"; done <"$node/made-paths"
    fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
