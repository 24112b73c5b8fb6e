#!/usr/bin/env bash
# Builds every image of the project, each from its Dockerfile under images/, the way the release workflow does
# (.github/workflows/release.yaml), with whichever builder the machine has: `docker buildx` where a Docker engine
# runs, otherwise buildah (no daemon, as root or rootless).
#
#   bash images/build.sh                                # ghcr.io/beamstack/<image>:<version>, this machine's arch
#   bash images/build.sh --registry my.registry/beamstack --tag 0.1.0-rc1 --push
#   bash images/build.sh --binaries DIR                 # reuse release binaries (DIR/linux-<arch>/beam-webhook)
#   bash images/build.sh --binaries dist --platforms linux/amd64,linux/arm64 --push   # what the release does
#   bash images/build.sh --archive DIR                  # also write each image as DIR/<image>.tar (docker-archive),
#                                                       # which `ctr images import` and `docker load` read
#   bash images/build.sh --images beam-java-transforms  # only these images (default: beam-webhook,beam-java-transforms)
#   bash images/build.sh --beam-versions 2.62.0 --maven-repository ~/.cache/m2
#                                                       # the Java image for these Beam releases only (default: each
#                                                       # in images/beam-java-transforms/beam-releases), with Maven's
#                                                       # local repository there (default: Maven's own)
#
# The binaries are release builds of this workspace (cargo build --release), copied into the images: the image
# needs no Rust toolchain, and the bytes tested are the bytes shipped. Likewise the Java image
# (beam-java-transforms, tagged with the Beam release it holds, one per release) gets the worker pool's jar and its
# classpath from `mvn package` of images/beam-java-transforms, run here (its tests included) in a copy of the
# project, so the checkout keeps no build output. Prints each image's reference.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
registry=ghcr.io/beamstack
tag=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
binaries="" archive="" push=false builder="${IMAGE_BUILDER:-}" platforms="" beam_versions="" maven_repository=""
images="beam-webhook beam-java-transforms"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --registry) registry=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --binaries) binaries=$2; shift 2 ;;
        --archive) archive=$2; shift 2 ;;
        --push) push=true; shift ;;
        --builder) builder=$2; shift 2 ;;
        --platforms) platforms=$2; shift 2 ;;
        --images) images=${2//,/ }; shift 2 ;;
        --beam-versions) beam_versions=${2//,/ }; shift 2 ;;
        --maven-repository) maven_repository=$2; shift 2 ;;
        *) echo "usage: $0 [--registry R] [--tag T] [--binaries DIR] [--platforms P,...] [--archive DIR] [--push] [--builder docker|buildah] [--images NAME,...] [--beam-versions V,...] [--maven-repository DIR]" >&2; exit 2 ;;
    esac
done
wanted() { [[ " $images " == *" $1 "* ]]; }

log() { printf 'images: %s\n' "$*" >&2; }

if [[ -z "$builder" ]]; then
    if docker info >/dev/null 2>&1; then builder=docker
    elif command -v buildah >/dev/null; then builder=buildah
    else log "no image builder: a running Docker engine, or buildah (apt-get install buildah)"; exit 1
    fi
fi

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) log "unsupported machine $(uname -m)"; exit 1 ;;
esac

platforms=${platforms:-linux/$arch}
if [[ "$platforms" == *,* ]] && [[ "$builder" != docker || $push == false || -n "$archive" || -z "$binaries" ]]; then
    log "several platforms need docker buildx, --push (a multi-platform image has no local form) and --binaries DIR"
    log "holding DIR/linux-<arch>/ for each (the release workflow builds them)"
    exit 2
fi

# The build context holds only the binaries, laid out as linux-<arch>/<binary> (what TARGETARCH picks).
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
if ! wanted beam-webhook; then
    : # the Java image needs no binaries
elif [[ -n "$binaries" ]]; then
    cp -r "$binaries"/. "$context/"
else
    log "cargo build --release (beam-webhook)"
    (cd "$root" && cargo build --release --locked -p webhook --bin beam-webhook)
    mkdir -p "$context/linux-$arch"
    cp "${CARGO_TARGET_DIR:-$root/target}/release/beam-webhook" "$context/linux-$arch/"
fi

# image NAME [TAG [CONTEXT [BUILD-ARG...]]]: builds images/NAME/Dockerfile as $registry/NAME:TAG (default $tag)
# from CONTEXT (default: the binaries).
image() {
    local name=$1 reference="$registry/$1:${2:-$tag}" dir=${3:-$context}
    shift $(($# < 3 ? $# : 3))
    local build_args=(--build-arg "VERSION=$tag")
    for arg in "$@"; do build_args+=(--build-arg "$arg"); done
    log "building $reference with $builder"
    case "$builder" in
        docker)
            local output=--load
            if $push; then output=--push; fi
            docker buildx build --platform "$platforms" "${build_args[@]}" $output \
                -f "$root/images/$name/Dockerfile" -t "$reference" "$dir" >&2
            if [[ -n "$archive" ]]; then mkdir -p "$archive" && docker save -o "$archive/$name-${2:-$tag}.tar" "$reference"; fi
            ;;
        buildah)
            buildah bud --quiet --layers --platform "$platforms" "${build_args[@]}" \
                -f "$root/images/$name/Dockerfile" -t "$reference" "$dir" >/dev/null
            if $push; then buildah push "$reference" "docker://$reference" >&2; fi
            if [[ -n "$archive" ]]; then
                mkdir -p "$archive" && rm -f "$archive/$name.tar"
                buildah push --quiet "$reference" "docker-archive:$archive/$name-${2:-$tag}.tar:$reference" >&2
            fi
            ;;
        *) log "unknown builder $builder"; exit 2 ;;
    esac
    echo "$reference"
}

if wanted beam-webhook; then image beam-webhook; fi

# The Java image, one per Beam release: the worker pool built and tested against that release's jars.
java_project="$root/images/beam-java-transforms"
[[ -n "$beam_versions" ]] || beam_versions=$(grep -v '^#' "$java_project/beam-releases" | xargs)
wanted beam-java-transforms || beam_versions=""
for beam in $beam_versions; do
    java_context="$context/java-$beam"
    mkdir -p "$java_context/project"
    cp -r "$java_project/pom.xml" "$java_project/src" "$java_context/project/"
    log "mvn package of the Java worker pool and its classpath for Beam $beam"
    mvn -B -q -Dstyle.color=never -f "$java_context/project/pom.xml" -Dbeam.version="$beam" \
        ${maven_repository:+-Dmaven.repo.local="$maven_repository"} package >&2
    mv "$java_context/project/target/beam-java-transforms.jar" "$java_context/project/target/lib" "$java_context/"
    cp "$java_project/entrypoint.sh" "$java_context/"
    rm -rf "$java_context/project"
    image beam-java-transforms "$beam" "$java_context" "BEAM_VERSION=$beam"
done
