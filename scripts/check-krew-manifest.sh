#!/usr/bin/env bash
# The release workflow's krew step, run here on archives of the real binary: scripts/krew-manifest.py must give every
# platform of plugins/beam.yaml its archive's sha256 and the release's version, and refuse a missing archive.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
# The workspace's build (as scripts/test.sh makes it just before): building the plugin alone would unify other
# features and compile much of the graph a second time.
cargo build --quiet --locked --workspace --bins
for platform in linux-amd64 linux-arm64 darwin-amd64 darwin-arm64; do
    # Different bytes per archive, so a checksum put on the wrong platform is caught.
    echo "$platform" >"$dist/platform"
    tar -C "$dist" -czf "$dist/kubectl-beam-$platform.tar.gz" platform \
        -C "$root/target/debug" kubectl-beam -C "$root/plugins" kubectl_complete-beam -C "$root" LICENSE
done
python3 "$root/scripts/krew-manifest.py" v9.8.7 "$dist" >"$dist/beam.yaml"
for platform in linux-amd64 linux-arm64 darwin-amd64 darwin-arm64; do
    sum=$(sha256sum "$dist/kubectl-beam-$platform.tar.gz" | cut -d' ' -f1)
    grep -A1 "download/v9.8.7/kubectl-beam-$platform.tar.gz" "$dist/beam.yaml" | grep -q "sha256: \"$sum\"" ||
        { echo "krew manifest: wrong or missing sha256 for $platform" >&2; cat "$dist/beam.yaml" >&2; exit 1; }
done
grep -q '^  version: v9.8.7$' "$dist/beam.yaml" || { echo "krew manifest: version not filled" >&2; exit 1; }
! grep -q 'v0\.' "$dist/beam.yaml" || { echo "krew manifest: an old version is left" >&2; exit 1; }
rm "$dist/kubectl-beam-darwin-arm64.tar.gz"
if python3 "$root/scripts/krew-manifest.py" v9.8.7 "$dist" >/dev/null 2>&1; then
    echo "krew manifest: a missing archive was not refused" >&2
    exit 1
fi
echo "krew manifest: 4 platforms filled with their archives' sha256; a missing archive refused"
