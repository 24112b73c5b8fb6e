#!/usr/bin/env bash
# Builds the real Kubernetes the end-to-end suite runs on, from Go modules: etcd, kube-apiserver, kubectl, the node's
# kubelet, kube-controller-manager, kube-scheduler and kube-proxy (all Kubernetes 1.34.4, the API version k8s-openapi
# is built for), CoreDNS (the version kubeadm 1.34 deploys), helm, actionlint (which checks the release workflow),
# Beam's `boot`, the entry point of Beam's Python SDK image, and the Kubeflow Spark operator (the stand-ins of their
# images are built by scripts/e2e-images.sh).
# No prebuilt binary can be downloaded on our build machines; the Go module proxy and the machine's Go toolchain can.
#
# Each binary is built once into a cache outside the checkout ($BEAMSTACK_CACHE, default ~/.cache/beamstack), kept
# with a stamp naming its version, and linked into .tools/bin; a fresh clone on a warm machine takes a second.
#
#   bash scripts/e2e-tools.sh                         # build what is missing, print the bin folder
#   bash scripts/e2e-tools.sh coredns beam-python-boot  # only those (CI builds what the images need first)
#
# Tools: etcd helm kubernetes (its six commands) coredns beam-python-boot actionlint spark-operator. Each build holds a lock of its
# own, so two runs at once (CI builds the images' tools beside the rest) build a tool once and the other waits.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${BEAMSTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beamstack}"
built="$cache/bin"
work="$cache/go-build"
bin="$root/.tools/bin"
mkdir -p "$built" "$work" "$bin"

kubernetes_version=1.34.4 # every Kubernetes binary; staging modules are v0.34.4
etcd_version=3.6.16       # the etcd minor Kubernetes 1.34 is tested with
helm_version=3.19.5
coredns_version=1.12.1    # the CoreDNS kubeadm 1.34 deploys
actionlint_version=1.7.12
spark_operator_version=2.5.2 # the newest Kubeflow Spark operator the Go proxy serves here (by exact version only)
beam_boot_version=2.62.0  # Beam's Python SDK container entry point, for the SDK image stand-in (e2e-images.sh)

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { printf 'e2e-tools: %s\n' "$*" >&2; }

# fresh_module DIR: an empty main module to build a dependency's command from. Building from a module of our own
# (rather than `go install pkg@version`) is what lets Kubernetes build: its go.mod points its staging modules at
# folders of its repository, which a main module of ours replaces with their published versions.
fresh_module() {
    rm -rf "$1" && mkdir -p "$1" && (cd "$1" && go mod init beamstack.dev/e2e-tools >/dev/null 2>&1)
}

stamped() { [[ -x "$built/$1" && "$(cat "$built/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"$built/.$1.version"; }

kubernetes_commands=(kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler kube-proxy)

build_kubernetes() {
    local missing=()
    for command in "${kubernetes_commands[@]}"; do
        stamped "$command" "$kubernetes_version" || missing+=("$command")
    done
    [[ ${#missing[@]} == 0 ]] && return
    local dir="$work/kubernetes" started=$SECONDS
    log "building ${missing[*]} v$kubernetes_version from k8s.io/kubernetes (several minutes, once)"
    fresh_module "$dir"
    local staging
    staging=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$kubernetes_version" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])' |
        xargs sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p')
    [[ -n "$staging" ]] || { log "could not read the staging modules of k8s.io/kubernetes v$kubernetes_version"; exit 1; }
    (
        cd "$dir"
        for module in $staging; do
            go mod edit -replace "$module=$module@v0.${kubernetes_version#1.}"
        done
        # Versions on the package paths: a bare `go get <package>` would move to the newest Kubernetes.
        local packages=()
        for command in "${kubernetes_commands[@]}"; do packages+=("k8s.io/kubernetes/cmd/$command@v$kubernetes_version"); done
        go get "${packages[@]}" >/dev/null
        local major=${kubernetes_version%%.*} minor=${kubernetes_version#*.}
        minor=${minor%%.*}
        # kubectl version, the node's kubeletVersion and helm's kubeVersion checks read these; unset, v0.0.0-master.
        local pkg=k8s.io/component-base/version
        local ldflags="-s -w -X $pkg.gitVersion=v$kubernetes_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
        # One `go build` for all of them: shared packages compile once and the link steps (single-threaded each) run
        # side by side.
        local targets=()
        for command in "${missing[@]}"; do targets+=("k8s.io/kubernetes/cmd/$command"); done
        go build -trimpath -ldflags "$ldflags" -o "$built/" "${targets[@]}"
        for command in "${missing[@]}"; do stamp "$command" "$kubernetes_version"; done
    )
    log "${missing[*]} built in $((SECONDS - started)) s"
}

# build_go_command NAME VERSION PACKAGE@VERSION LDFLAGS: one command from its module, into the cache.
build_go_command() {
    local name=$1 version=$2 package=$3 ldflags=$4
    if stamped "$name" "$version"; then return; fi
    local dir="$work/$name" started=$SECONDS
    log "building $name v$version from ${package%@*}"
    fresh_module "$dir"
    (
        cd "$dir"
        go get "$package" >/dev/null
        go build -trimpath -ldflags "$ldflags" -o "$built/$name" "${package%@*}"
    )
    stamp "$name" "$version"
    log "$name built in $((SECONDS - started)) s"
}

# CoreDNS with the plugins a cluster's DNS uses (scripts/coredns/main.go says why), built the way its Makefile does
# (CGO off, the version in coremain).
build_coredns() {
    # The stamp names the plugin set too: a build of another set is rebuilt.
    local stamp_text="$coredns_version+kubeadm-plugins"
    if stamped coredns "$stamp_text"; then return; fi
    local dir="$work/coredns" started=$SECONDS
    log "building coredns v$coredns_version from github.com/coredns/coredns"
    fresh_module "$dir"
    cp "$root/scripts/coredns/main.go" "$dir/"
    (
        cd "$dir"
        go get "github.com/coredns/coredns@v$coredns_version" >/dev/null
        go mod tidy >/dev/null
        go build -trimpath -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=v$coredns_version" \
            -o "$built/coredns" .
    )
    stamp coredns "$stamp_text"
    log "coredns built in $((SECONDS - started)) s"
}

# The Kubeflow Spark operator (one binary: `spark-operator controller start` and `spark-operator webhook start`). Its
# go.mod pins 25 k8s.io modules to v0.32.5 with replace directives, which `go install pkg@version` refuses: a main
# module of ours copies them, as its own build resolves them.
build_spark_operator() {
    if stamped spark-operator "$spark_operator_version"; then return; fi
    local dir="$work/spark-operator" started=$SECONDS module=github.com/kubeflow/spark-operator/v2
    log "building spark-operator v$spark_operator_version from $module"
    fresh_module "$dir"
    (
        cd "$dir"
        local gomod
        gomod=$(go mod download -json "$module@v$spark_operator_version" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
        # Each `old => new version` line of its replace block (the k8s.io pins), replaced here the same way.
        sed -n 's#^[[:space:]]*\([^ ]*\) => \([^ ]*\) \(v[^ ]*\)$#\1=\2@\3#p' "$gomod" |
            while read -r replacement; do go mod edit -replace "$replacement"; done
        go get "$module/cmd/operator@v$spark_operator_version" >/dev/null
        local pkg=$module/pkg/version
        go build -trimpath -ldflags "-s -w -X $pkg.version=v$spark_operator_version" \
            -o "$built/spark-operator" "$module/cmd/operator"
    )
    stamp spark-operator "$spark_operator_version"
    log "spark-operator built in $((SECONDS - started)) s"
}

# locked NAME COMMAND...: COMMAND while holding NAME's lock; the stamp check inside it then sees a build that
# finished while this one waited.
locked() {
    local name=$1
    shift
    (
        flock 9
        "$@"
    ) 9>"$work/.$name.lock"
}

build_tool() {
    case "$1" in
        etcd) build_go_command etcd "$etcd_version" "go.etcd.io/etcd/server/v3@v$etcd_version" "-s -w" ;;
        helm) build_go_command helm "$helm_version" "helm.sh/helm/v3/cmd/helm@v$helm_version" \
            "-s -w -X helm.sh/helm/v3/internal/version.version=v$helm_version" ;;
        kubernetes) build_kubernetes ;;
        coredns) build_coredns ;;
        # Beam's `boot`, the entry point of its Python SDK image (worker pool and workers), from Beam's Go module.
        # The checksum database has no entry for that module version (404), hence GONOSUMDB for it alone.
        beam-python-boot) GONOSUMDB=github.com/apache/beam build_go_command beam-python-boot "$beam_boot_version" \
            "github.com/apache/beam/sdks/v2/python/container@v$beam_boot_version" "-s -w" ;;
        actionlint) build_go_command actionlint "$actionlint_version" \
            "github.com/rhysd/actionlint/cmd/actionlint@v$actionlint_version" \
            "-s -w -X github.com/rhysd/actionlint.version=$actionlint_version" ;;
        spark-operator) build_spark_operator ;;
        *) log "unknown tool $1 (etcd helm kubernetes coredns beam-python-boot actionlint spark-operator)"; exit 2 ;;
    esac
}

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(etcd helm kubernetes coredns beam-python-boot actionlint spark-operator)
for tool in "${tools[@]}"; do
    locked "$tool" build_tool "$tool"
done

for command in etcd helm coredns actionlint beam-python-boot spark-operator "${kubernetes_commands[@]}"; do
    [[ -x "$built/$command" ]] && ln -sfn "$built/$command" "$bin/$command"
done
echo "$bin"
