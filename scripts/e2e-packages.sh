#!/usr/bin/env bash
# Debian's packages the tests need, installed when missing: the node's container runtime (containerd, runc, the
# CNI plugins, iptables, conntrack), the image tools (buildah, debootstrap), Prometheus for the monitoring
# scenario, and shellcheck (actionlint runs it on the release workflow's scripts).
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables conntrack buildah debootstrap prometheus shellcheck)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    as_root() { if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi; }
    export DEBIAN_FRONTEND=noninteractive
    echo "e2e-packages: installing ${missing[*]}" >&2
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi
# containerd's Debian package enables a systemd unit; without systemd nothing started it, and the node starts its own.
printf '%s\n' "$(containerd --version)" "$(runc --version | head -n 1)" "$(buildah --version)" \
    "$(prometheus --version 2>&1 | head -n 1)"
