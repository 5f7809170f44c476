#!/usr/bin/env bash
# The main job on the built-in default network, inside a throwaway network
# namespace: installs what is missing, builds kvmnet, brings the network of
# one VM up, shows what it created, takes it down and checks nothing is left.
# Then guest/demo.sh does it again with a real QEMU guest on the tap, unless
# --no-guest is given.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: network namespaces and taps need root; run $0 as root or with sudo" >&2
  exit 1
fi
scripts/setup.sh
guest=1
[ "${1:-}" = "--no-guest" ] && guest=0

work=$(mktemp -d /tmp/kvmnet-demo.XXXXXX)
ns="kvmt-demo-$$"
cleanup() {
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/kvmnet" ./cmd/kvmnet
# kvmnet rejects a --net-dir that does not exist.
mkdir -p "$work/net.d"
ip netns add "$ns"
ip -n "$ns" link set lo up
kvmnet() {
  ip netns exec "$ns" "$work/kvmnet" --state-dir "$work/state" --net-dir "$work/net.d" \
    --cni-path "$PWD/.cache/cni:/usr/lib/cni" "$@"
}
snapshot() {
  ip -n "$ns" -o link show | sed 's/^[0-9]*: //'
  ip -n "$ns" -o addr show
  ip -n "$ns" route show table all
  ip netns exec "$ns" nft list ruleset
  ip netns exec "$ns" cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding
}
snapshot >"$work/before"

echo "== kvmnet up demo-vm (network: default) in namespace $ns"
kvmnet up demo-vm
echo
echo "== QEMU arguments (kvmnet show demo-vm --format qemu)"
kvmnet show demo-vm --format qemu
echo
echo "== guest kernel argument (--format kernel-args)"
kvmnet show demo-vm --format kernel-args
echo
echo "== what the namespace holds now"
ip -n "$ns" -br addr show
ip -n "$ns" route show
ip netns exec "$ns" nft list ruleset
echo
echo "== kvmnet down demo-vm"
kvmnet down demo-vm
snapshot >"$work/after"
if diff -u "$work/before" "$work/after"; then
  echo "nothing left: links, addresses, routes, forwarding sysctls and nftables ruleset match the state before up"
else
  echo "demo: residue found after down (diff above)" >&2
  exit 1
fi
left=$(find "$work/state" -name '*.json' | wc -l)
reserved=$(find "$work/state/ipam" -type f -name '1*' | wc -l)
echo "state records left: $left, IPAM reservations left: $reserved"
[ "$left" -eq 0 ] && [ "$reserved" -eq 0 ]
if [ "$guest" -eq 1 ]; then
  echo
  echo "== the same with a real guest (guest/demo.sh)"
  guest/demo.sh
fi
