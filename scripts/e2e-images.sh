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
#       docker.io/library/flink:1.19            tests/node/images/flink (Flink 1.19.3 from PyPI, Debian's JRE 17)
#       docker.io/apache/beam_python3.11_sdk:2.62.0
#                                               tests/node/images/beam-python-sdk (Beam's boot from its Go module,
#                                               apache-beam from PyPI on Debian's Python 3.11)
#       docker.io/apache/beam_flink1.19_job_server:2.62.0
#                                               tests/node/images/beam-flink-job-server (the job-server jar built
#                                               with Maven: scripts/flink-job-server/pom.xml)
#       docker.io/apache/flink-kubernetes-operator:1.7.0
#                                               tests/node/images/flink-kubernetes-operator (the operator's jars from
#                                               Maven Central)
#       docker.io/apache/spark:3.5.6-java17     tests/node/images/spark (Spark 3.5.6 from PyPI's pyspark sdist,
#                                               Debian's JRE 17)
#       docker.io/apache/beam_spark3_job_server:2.62.0
#                                               tests/node/images/beam-spark-job-server (the job-server jar built
#                                               with Maven: scripts/spark-job-server/pom.xml)
#       docker.io/library/postgres:15           tests/node/images/postgres (Debian 12's postgresql-15; the
#                                               database the Java-transforms scenario reads and writes)
#       ghcr.io/kubeflow/spark-operator/controller:2.5.2
#                                               tests/node/images/spark-operator (the operator built from its Go
#                                               module on the Spark stand-in; made by `build`, since it needs
#                                               that binary: scripts/e2e-tools.sh spark-operator)
#   Each recipe's Dockerfile says what it keeps of the official image and what differs.
#
# buildah (Debian's package) builds everything; its image store is kept outside the checkout
# ($BEAMSTACK_CACHE/containers), so base images are made once per machine.
#
#   bash scripts/e2e-images.sh build                   # make what is missing, build the project's images
#   bash scripts/e2e-images.sh stand-ins               # only the base images, stand-ins and the Java image (CI makes them beside
#                                                      # the Go builds, before the project's binaries exist)
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
flink=docker.io/library/flink:1.19
beam_sdk=docker.io/apache/beam_python3.11_sdk:2.62.0
job_server=docker.io/apache/beam_flink1.19_job_server:2.62.0
operator=docker.io/apache/flink-kubernetes-operator:1.7.0
spark=docker.io/apache/spark:3.5.6-java17
spark_job_server=docker.io/apache/beam_spark3_job_server:2.62.0
spark_operator=ghcr.io/kubeflow/spark-operator/controller:2.5.2
postgres=docker.io/library/postgres:15
# Beamstack's Java image, for the Beam release the scenarios run (the mirror here serves its jars up to 2.75).
java_beam=2.62.0
java=ghcr.io/beamstack/beam-java-transforms:$java_beam
# Every image the node runs: the chart's, the cluster add-ons', the operators', the pipelines', the test pods'.
node_images=("$pause" "$coredns" "$webhook" "$debian" "$flink" "$beam_sdk" "$job_server" "$operator" "$spark"
    "$spark_job_server" "$spark_operator" "$postgres" "$java")

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

# build_recipe NAME IMAGE KEY [PREPARE]: the image from tests/node/images/NAME (its Dockerfile and the files beside
# it form the context), rebuilt only when those files or KEY (the versions or digests of what PREPARE adds) changed
# since the kept image was built. PREPARE, a function, gets the context folder to add the large inputs to, so they
# are copied only for a build. Builds use the host's network (apt inside the recipes).
build_recipe() {
    local recipe=$1 image=$2 key=$3 prepare=${4:-}
    local dir="$root/tests/node/images/$recipe" inputs stamp="$store/stamps/$recipe"
    inputs=$( (cd "$dir" && find . -type f | LC_ALL=C sort | xargs sha256sum; echo "$key") | sha256sum | cut -d' ' -f1)
    if have "$image" && [[ "$(cat "$stamp" 2>/dev/null)" == "$inputs" ]]; then return; fi
    local context started=$SECONDS
    context=$(mktemp -d)
    cp -r "$dir/." "$context/"
    [[ -z "$prepare" ]] || "$prepare" "$context"
    buildah bud --quiet --layers --network host -f "$context/Dockerfile" -t "$image" "$context" >/dev/null
    rm -rf "$context"
    mkdir -p "$store/stamps" && echo "$inputs" >"$stamp"
    log "built $image in $((SECONDS - started)) s"
}

# What the Flink recipes take from scripts/flink-local.sh: Flink's home and Beam's job-server jar.
flink_env() { sed -n "s/^$1=//p" "$root/.tools/flink/env"; }

# Flink's home as the official image has it: the REST and RPC endpoints bound to every interface (the same edit
# its Dockerfile makes with Flink's own config tool), no user jars or logs.
flink_context() {
    local home
    home=$(flink_env FLINK_HOME)
    cp -a "$home" "$1/flink"
    rm -rf "$1/flink/usrlib" "$1/flink/log" "$1/flink/.complete"
    mkdir -p "$1/flink/log"
    bash "$1/flink/bin/config-parser-utils.sh" "$1/flink/conf" "$1/flink/bin" "$1/flink/lib" \
        -repKV rest.address,localhost,0.0.0.0 -repKV rest.bind-address,localhost,0.0.0.0 \
        -repKV jobmanager.bind-host,localhost,0.0.0.0 -repKV taskmanager.bind-host,localhost,0.0.0.0 \
        -rmKV taskmanager.host=localhost >/dev/null
}

# apache-beam and its dependencies as wheels, built on this machine (Debian 12, Python 3.11, like the image): the
# image installs them offline, so its build needs no access to PyPI (nor this machine's certificate setup).
# async-timeout: redis needs it below Python 3.11.3 (Debian 12's is 3.11.2), which pip, resolving for this
# machine's Python, would not fetch.
beam_sdk_context() {
    local wheels="$cache/wheels/apache-beam-2.62.0-yaml"
    if [[ ! -f "$wheels/.complete" ]]; then
        rm -rf "$wheels" && mkdir -p "$wheels"
        python3 -m pip wheel --quiet --disable-pip-version-check -w "$wheels" 'apache-beam[yaml]==2.62.0' \
            'async-timeout>=4.0.3'
        touch "$wheels/.complete"
    fi
    cp -r "$wheels" "$1/wheels"
    rm -f "$1/wheels/.complete"
    cp "$root/.tools/bin/beam-python-boot" "$1/boot"
}

job_server_context() {
    cp "$(flink_env JOB_SERVER_JAR)" "$1/beam-runners-flink-job-server.jar"
}

# The operator's jars (tests/node/images/flink-kubernetes-operator/pom.xml), resolved once into the cache.
operator_context() {
    local jars="$cache/flink-kubernetes-operator-1.7.0"
    if [[ ! -f "$jars/.complete" ]]; then
        rm -rf "$jars"
        mvn -B -q -f "$root/tests/node/images/flink-kubernetes-operator/pom.xml" package -Doperator.out="$jars/all" \
            -Dmaven.repo.local="$cache/m2" 2>&1 | sed "s/\x1b\[[0-9;]*m//g" | grep -v -e '^\[WARNING\]' -e '^$' || true
        mkdir -p "$jars/operator"
        mv "$jars/all/flink-kubernetes-operator-1.7.0.jar" "$jars/all/flink-kubernetes-standalone-1.7.0.jar" \
            "$jars/operator/"
        touch "$jars/.complete"
    fi
    cp -r "$jars/operator" "$1/operator"
    cp -r "$jars/all" "$1/operator-lib"
    cp -r "$(flink_env FLINK_HOME)/plugins" "$1/plugins"
}

# What the Spark recipes take from scripts/spark-local.sh: Spark's home and Beam's Spark job-server jar.
spark_env() { sed -n "s/^$1=//p" "$root/.tools/spark/env"; }

spark_context() {
    cp -a "$(spark_env SPARK_HOME)" "$1/spark"
    rm -f "$1/spark/.complete"
}

spark_job_server_context() {
    cp "$(spark_env JOB_SERVER_JAR)" "$1/beam-runners-spark-job-server.jar"
    cp -a "$(spark_env SPARK_HOME)/jars" "$1/spark-jars"
}

spark_operator_context() {
    cp "$root/.tools/bin/spark-operator" "$1/spark-operator"
}

# Everything but the webhook's image and the Spark operator's: the bases, the stand-ins for official images and
# Beamstack's Java image.
# Needs buildah, Flink's and Spark's pieces (scripts/flink-local.sh, scripts/spark-local.sh: run here) and two Go
# tools (scripts/e2e-tools.sh coredns beam-python-boot), not our binaries nor the other Go builds.
stand_ins() {
    command -v buildah >/dev/null || { log "no buildah: apt-get install buildah"; exit 1; }
    make_distroless
    make_debian
    local work
    work=$(mktemp -d)
    gcc -Os -static -Wall -o "$work/pause" "$root/tests/node/images/pause/pause.c" && strip "$work/pause"
    pause_context() { cp "$work/pause" "$1/"; }
    build_recipe pause "$pause" "$(sha256sum <"$work/pause")" pause_context
    coredns_context() { cp "$root/.tools/bin/coredns" "$1/"; }
    build_recipe coredns "$coredns" "$(sha256sum <"$root/.tools/bin/coredns")" coredns_context
    rm -rf "$work"
    # The Flink and Beam stand-ins: Flink's home, the job-server jar and Beam's venv come from flink-local.sh.
    bash "$root/scripts/flink-local.sh" >&2
    local flink_key
    flink_key=$(cat "$root/.tools/flink/env")
    build_recipe flink "$flink" "$flink_key" flink_context
    build_recipe beam-python-sdk "$beam_sdk" "$(sha256sum <"$root/.tools/bin/beam-python-boot")" beam_sdk_context
    build_recipe beam-flink-job-server "$job_server" "$flink_key" job_server_context
    build_recipe flink-kubernetes-operator "$operator" "$flink_key" operator_context
    build_recipe postgres "$postgres" ""
    java_image
    spark_stand_ins
}

# Beamstack's Java image (images/build.sh: its worker pool built and tested with Maven), made with the stand-ins,
# beside the Rust builds, as it needs none of them: on a cold machine Maven's downloads stay off the critical path.
# Rebuilt when its project changed (buildah's layers make an unchanged one quick, but Maven's run is not).
java_image() {
    local key stamp="$store/stamps/beam-java-transforms"
    key=$( (cd "$root/images/beam-java-transforms" && find . -type f -not -path './target/*' | LC_ALL=C sort |
        xargs sha256sum; echo "$java_beam") | sha256sum | cut -d' ' -f1)
    if have "$java" && [[ "$(cat "$stamp" 2>/dev/null)" == "$key" ]]; then return; fi
    local started=$SECONDS
    IMAGE_BUILDER=buildah bash "$root/images/build.sh" --images beam-java-transforms --beam-versions "$java_beam" \
        --maven-repository "$cache/m2" >/dev/null
    mkdir -p "$store/stamps" && echo "$key" >"$stamp"
    log "built $java in $((SECONDS - started)) s (the worker pool's tests passed)"
}

# The Spark stand-ins but the operator's: Spark's home and the job-server jar come from spark-local.sh (its env names
# their versions and the pom that built the jar, so it keys the images).
spark_stand_ins() {
    bash "$root/scripts/spark-local.sh" >&2
    local spark_key
    spark_key=$(cat "$root/.tools/spark/env")
    build_recipe spark "$spark" "$spark_key" spark_context
    build_recipe beam-spark-job-server "$spark_job_server" "$spark_key" spark_job_server_context
}

# The Spark operator's image: its binary (scripts/e2e-tools.sh spark-operator) on the Spark stand-in, so its key
# names that image too.
spark_operator_image() {
    [[ -x "$root/.tools/bin/spark-operator" ]] || { log "no .tools/bin/spark-operator: run bash scripts/e2e-tools.sh"; exit 1; }
    build_recipe spark-operator "$spark_operator" \
        "$(sha256sum <"$root/.tools/bin/spark-operator") $(buildah images --noheading --no-trunc --format '{{.ID}}' "$spark")" \
        spark_operator_context
}

build() {
    stand_ins
    spark_operator_image
    # The project's images, exactly as a platform team builds them.
    IMAGE_BUILDER=buildah bash "$root/images/build.sh" --binaries "${BEAMSTACK_BINARIES:?the release binaries}" \
        --images beam-webhook >/dev/null
    # The previous build of our image, now untagged: the store is kept between runs and must not grow with them.
    buildah rmi --prune >/dev/null 2>&1 || true
}

# Imports what containerd does not hold yet in the version buildah has: its store is kept between runs
# ($BEAMSTACK_CACHE/containerd), so a warm run imports only the images that changed.
import() {
    local socket=$1 work imported="$cache/containerd/imported" count=0
    work=$(mktemp -d)
    mkdir -p "$imported"
    for image in "${node_images[@]}"; do
        local id stamp="$imported/${image//[\/:]/_}"
        id=$(buildah images --noheading --no-trunc --format '{{.ID}}' "$image" | head -n 1)
        if [[ "$(cat "$stamp" 2>/dev/null)" == "$id" ]] &&
            ctr --address "$socket" -n k8s.io images ls -q | grep -qxF "$image"; then
            continue
        fi
        buildah push --quiet "$image" "docker-archive:$work/image.tar:$image" >/dev/null
        ctr --address "$socket" -n k8s.io images import "$work/image.tar" >/dev/null
        rm -f "$work/image.tar"
        echo "$id" >"$stamp"
        count=$((count + 1))
    done
    rm -rf "$work"
    log "imported $count of ${#node_images[@]} images into the node's containerd (the others were there)"
}

case "${1:-}" in
    build) build ;;
    stand-ins) stand_ins ;;
    import) import "$2" ;;
    *) echo "usage: $0 build | stand-ins | import CONTAINERD_SOCKET" >&2; exit 2 ;;
esac
