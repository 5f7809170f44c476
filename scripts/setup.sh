#!/usr/bin/env bash
# Installs what kvmnet's build, demo and tests need on a Debian machine:
# Debian packages, and the CNI reference plugins v1.10.0 (CNI spec 1.1.0)
# built into .cache/cni next to Debian's older ones.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iproute2 nftables containernetworking-plugins busybox-static qemu-system-x86)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

plugins_version=v1.10.0
mkdir -p .cache/cni
for plugin in ipam/host-local ipam/static; do
  name=${plugin#*/}
  if [ ! -x ".cache/cni/$name" ]; then
    echo "setup: building CNI plugin $name $plugins_version"
    GOBIN="$PWD/.cache/cni" go install "github.com/containernetworking/plugins/plugins/$plugin@$plugins_version"
  fi
done
