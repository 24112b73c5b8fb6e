#!/usr/bin/env bash
# The images the test cluster's node runs, made without an image registry (none is reachable here) and imported
# into the node's containerd:
#
#   - the project's own images, built from their Dockerfiles under images/ by images/build.sh, unchanged;
#   - stand-ins for official images, made from Debian's packages and built from recipes in tests/node/images/,
#     tagged with the official names so the Dockerfiles and manifests that name them stay unchanged:
#       gcr.io/distroless/cc-debian12:nonroot   distroless's own recipe, done by hand: Debian 12's packages
#                                               unpacked (glibc, libgcc, libstdc++, libssl, CA certificates, tzdata),
#                                               /etc/passwd with nonroot 65532, no shell and no package manager
#       docker.io/library/debian:bookworm-slim  debootstrap --variant=minbase bookworm, as the official image is made
#       registry.k8s.io/pause:3.10              tests/node/images/pause (the sandbox's first process, from C)
#       registry.k8s.io/coredns/coredns:v1.12.1 tests/node/images/coredns (CoreDNS built from its Go module)
#
# buildah (Debian's package) builds everything; its image store is kept outside the checkout
# ($BEAMSTACK_CACHE/containers), so base images are made once per machine.
#
#   bash scripts/e2e-images.sh build                   # make what is missing, build the project's images
#   bash scripts/e2e-images.sh import CONTAINERD_SOCK  # import every image the cluster runs into containerd
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${BEAMSTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beamstack}"
store="$cache/containers"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)

distroless=gcr.io/distroless/cc-debian12:nonroot
debian=docker.io/library/debian:bookworm-slim
pause=registry.k8s.io/pause:3.10
coredns=registry.k8s.io/coredns/coredns:v1.12.1
webhook=ghcr.io/beamstack/beam-webhook:$version
# Every image the node runs: the chart's, the cluster add-ons', the test pods'.
node_images=("$pause" "$coredns" "$webhook" "$debian")

log() { printf 'e2e-images: %s\n' "$*" >&2; }

# buildah's store outside the checkout; overlay on the machine's disk.
mkdir -p "$store"
cat >"$store/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$store/storage"
runroot = "$store/run"
CONF
export CONTAINERS_STORAGE_CONF="$store/storage.conf"

have() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# commit_rootfs DIR IMAGE CONFIG...: an image FROM scratch holding DIR, with buildah config flags.
commit_rootfs() {
    local dir=$1 image=$2
    shift 2
    local container
    container=$(buildah from scratch)
    buildah copy --quiet "$container" "$dir" / >/dev/null
    buildah config "$@" "$container"
    buildah commit --quiet --rm "$container" "$image" >/dev/null
}

make_distroless() {
    have "$distroless" && return
    local started=$SECONDS work
    work=$(mktemp -d)
    log "making $distroless from Debian 12's packages"
    local packages=(base-files netbase tzdata libc6 libgcc-s1 libgomp1 libstdc++6 libssl3)
    mkdir -p "$cache/debs" "$work/rootfs"
    (cd "$cache/debs" && apt-get download "${packages[@]}" >/dev/null 2>&1) ||
        (apt-get update -qq && cd "$cache/debs" && apt-get download "${packages[@]}" >/dev/null)
    for package in "${packages[@]}"; do
        local deb
        deb=$(find "$cache/debs" -name "${package}_*.deb" -printf '%T@ %p\n' | sort -rn | head -n 1 | cut -d' ' -f2)
        dpkg-deb -x "$deb" "$work/rootfs"
    done
    local rootfs=$work/rootfs
    rm -rf "${rootfs:?}"/usr/share/{doc,man,info,lintian} "${rootfs:?}"/usr/share/zoneinfo/right
    mkdir -p "$rootfs"/{tmp,home/nonroot,root,etc/ssl/certs,var/lib}
    chmod 1777 "$rootfs/tmp"
    chmod 700 "$rootfs/root"
    # The bundle update-ca-certificates makes from Debian's ca-certificates (distroless ships the same file).
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
        >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
    chown 65532:65532 "$rootfs/home/nonroot"
    commit_rootfs "$rootfs" "$distroless" --user 65532:65532 --workingdir /home/nonroot \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --os linux --arch amd64
    rm -rf "$work"
    log "$distroless made in $((SECONDS - started)) s"
}

make_debian() {
    have "$debian" && return
    local started=$SECONDS tarball="$cache/debian-bookworm-minbase.tar"
    if [[ ! -f "$tarball" ]]; then
        log "debootstrap --variant=minbase bookworm (about a minute, once)"
        local mirror rootfs
        mirror=$(sed -n 's/^URIs: *\(.*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
        [[ -n "$mirror" ]] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
        rootfs=$(mktemp -d)
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
        chroot "$rootfs" apt-get clean
        rm -rf "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/dev/* "${rootfs:?}"/var/log/*.log \
            "${rootfs:?}"/var/cache/debconf/*-old "${rootfs:?}"/usr/share/{doc,man,info}
        tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
    fi
    local rootfs
    rootfs=$(mktemp -d)
    tar -C "$rootfs" -xf "$tarball"
    commit_rootfs "$rootfs" "$debian" --cmd bash \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --os linux --arch amd64
    rm -rf "$rootfs"
    log "$debian made in $((SECONDS - started)) s"
}

# build_recipe DIR IMAGE FILE...: tests/node/images/DIR's Dockerfile, its context holding FILE...; rebuilt when the
# Dockerfile or a file of the context changed since the kept image was built.
build_recipe() {
    local recipe=$1 image=$2
    shift 2
    local inputs stamp="$store/stamps/$recipe"
    inputs=$(cat "$root/tests/node/images/$recipe/Dockerfile" "$@" | sha256sum | cut -d' ' -f1)
    if have "$image" && [[ "$(cat "$stamp" 2>/dev/null)" == "$inputs" ]]; then return; fi
    local context
    context=$(mktemp -d)
    cp "$@" "$context/"
    buildah bud --quiet --layers -f "$root/tests/node/images/$recipe/Dockerfile" -t "$image" "$context" >/dev/null
    rm -rf "$context"
    mkdir -p "$store/stamps" && echo "$inputs" >"$stamp"
    log "built $image"
}

build() {
    command -v buildah >/dev/null || { log "no buildah: apt-get install buildah"; exit 1; }
    make_distroless
    make_debian
    local work
    work=$(mktemp -d)
    gcc -Os -static -Wall -o "$work/pause" "$root/tests/node/images/pause/pause.c" && strip "$work/pause"
    build_recipe pause "$pause" "$work/pause"
    build_recipe coredns "$coredns" "$root/.tools/bin/coredns"
    rm -rf "$work"
    # The project's images, exactly as a platform team builds them.
    IMAGE_BUILDER=buildah bash "$root/images/build.sh" --binaries "${BEAMSTACK_BINARIES:?the release binaries}" >/dev/null
    # The previous build of our image, now untagged: the store is kept between runs and must not grow with them.
    buildah rmi --prune >/dev/null 2>&1 || true
}

import() {
    local socket=$1 work
    work=$(mktemp -d)
    for image in "${node_images[@]}"; do
        buildah push --quiet "$image" "docker-archive:$work/image.tar:$image" >/dev/null
        ctr --address "$socket" -n k8s.io images import "$work/image.tar" >/dev/null
        rm -f "$work/image.tar"
    done
    rm -rf "$work"
    log "imported ${#node_images[@]} images into the node's containerd"
}

case "${1:-}" in
    build) build ;;
    import) import "$2" ;;
    *) echo "usage: $0 build | import CONTAINERD_SOCKET" >&2; exit 2 ;;
esac
