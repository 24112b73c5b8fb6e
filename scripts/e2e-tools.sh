#!/usr/bin/env bash
# Builds the real control plane and clients the end-to-end suite runs against, from their Go modules:
# etcd, kube-apiserver and kubectl (Kubernetes 1.34, the API version k8s-openapi is built for) and helm.
# No prebuilt binary can be downloaded on our build machines; the Go module proxy and the machine's Go toolchain can.
# Each binary is built once into .tools/bin and kept with a stamp naming its version, so a second run takes a second.
#
#   bash scripts/e2e-tools.sh          # build what is missing, print the bin folder
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
bin="$tools/bin"
work="$tools/go-build"
mkdir -p "$bin" "$work"

kubernetes_version=1.34.4 # kube-apiserver and kubectl; staging modules are v0.34.4
etcd_version=3.6.16       # the etcd minor Kubernetes 1.34 is tested with
helm_version=3.19.5

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { printf 'e2e-tools: %s\n' "$*" >&2; }

# fresh_module DIR: an empty main module to build a dependency's command from. Building from a module of our own
# (rather than `go install pkg@version`) is what lets Kubernetes build: its go.mod points its staging modules at
# folders of its repository, which a main module of ours replaces with their published versions.
fresh_module() {
    rm -rf "$1" && mkdir -p "$1" && (cd "$1" && go mod init beamstack.dev/e2e-tools >/dev/null 2>&1)
}

stamped() { [[ -x "$bin/$1" && "$(cat "$bin/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"$bin/.$1.version"; }

build_kubernetes() {
    if stamped kube-apiserver "$kubernetes_version" && stamped kubectl "$kubernetes_version"; then return; fi
    local dir="$work/kubernetes" started=$SECONDS
    log "building kube-apiserver and kubectl v$kubernetes_version from k8s.io/kubernetes (several minutes, once)"
    fresh_module "$dir"
    local staging
    staging=$(curl -fsS "https://proxy.golang.org/k8s.io/kubernetes/@v/v$kubernetes_version.mod" |
        sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p')
    [[ -n "$staging" ]] || { log "could not read the staging modules of k8s.io/kubernetes v$kubernetes_version"; exit 1; }
    (
        cd "$dir"
        for module in $staging; do
            go mod edit -replace "$module=$module@v0.${kubernetes_version#1.}"
        done
        # Versions on the package paths: a bare `go get <package>` would move to the newest Kubernetes.
        go get "k8s.io/kubernetes/cmd/kube-apiserver@v$kubernetes_version" \
            "k8s.io/kubernetes/cmd/kubectl@v$kubernetes_version" >/dev/null
        local major=${kubernetes_version%%.*} minor=${kubernetes_version#*.}
        minor=${minor%%.*}
        # kubectl version and helm's kubeVersion checks read these; an unset gitVersion is v0.0.0-master.
        local pkg=k8s.io/component-base/version
        local ldflags="-s -w -X $pkg.gitVersion=v$kubernetes_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
        go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
        go build -trimpath -ldflags "$ldflags" -o "$bin/kubectl" k8s.io/kubernetes/cmd/kubectl
    )
    stamp kube-apiserver "$kubernetes_version"
    stamp kubectl "$kubernetes_version"
    log "kube-apiserver and kubectl built in $((SECONDS - started)) s"
}

# build_go_command NAME VERSION PACKAGE@VERSION LDFLAGS: one command from its module, into .tools/bin/NAME.
build_go_command() {
    local name=$1 version=$2 package=$3 ldflags=$4
    if stamped "$name" "$version"; then return; fi
    local dir="$work/$name" started=$SECONDS
    log "building $name v$version from ${package%@*}"
    fresh_module "$dir"
    (
        cd "$dir"
        go get "$package" >/dev/null
        go build -trimpath -ldflags "$ldflags" -o "$bin/$name" "${package%@*}"
    )
    stamp "$name" "$version"
    log "$name built in $((SECONDS - started)) s"
}

build_etcd() {
    build_go_command etcd "$etcd_version" "go.etcd.io/etcd/server/v3@v$etcd_version" "-s -w"
}

build_helm() {
    build_go_command helm "$helm_version" "helm.sh/helm/v3/cmd/helm@v$helm_version" \
        "-s -w -X helm.sh/helm/v3/internal/version.version=v$helm_version"
}

build_etcd
build_helm
build_kubernetes
echo "$bin"
