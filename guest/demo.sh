#!/bin/bash
# kvmnet demo: one VM on the built-in `default` network, start to finish.
#
# It builds the test guest and kvmnet, creates a throwaway network
# namespace, runs `kvmnet up`, boots a QEMU guest with the printed
# arguments, shows the guest replying to ping and HTTP with timings, runs
# `kvmnet down` and checks that nothing is left. Everything happens inside
# the namespace and a temporary directory, both removed on any exit.
#
# Needs root, qemu-system-x86_64, busybox and Go. Usage, as root or with
# sudo: guest/demo.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
ns=kvmt-demo-$$
tmp=$(mktemp -d)
qemu_pid=""

step() { printf '\n== %s\n' "$*"; }
fail() {
	echo "demo failed: $*" >&2
	exit 1
}

cleanup() {
	if [[ -n $qemu_pid ]]; then
		kill "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) -eq 0 ]] || fail "run as root: the demo creates a network namespace"
for tool in ip nft qemu-system-x86_64 busybox go; do
	command -v "$tool" >/dev/null || fail "$tool not found"
done

# now_ms: milliseconds since the epoch, for timings.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

step "build the guest image and kvmnet"
guest_dir=${KVMNET_GUEST_DIR:-$repo/.cache/guest}
KVMNET_GUEST_DIR=$guest_dir bash "$here/build.sh"
(cd "$repo" && go build -o "$tmp/kvmnet" ./cmd/kvmnet)
echo "guest image in $guest_dir, kvmnet in $tmp/kvmnet"

step "create namespace $ns (the demo's stand-in for the host)"
ip netns add "$ns"
ip -n "$ns" link set lo up
mkdir -p "$tmp/state" "$tmp/net.d" "$tmp/dev"
kvmnet() {
	ip netns exec "$ns" "$tmp/kvmnet" --state-dir "$tmp/state" --net-dir "$tmp/net.d" --dev-dir "$tmp/dev" "$@"
}
in_ns() { ip netns exec "$ns" "$@"; }

# snapshot: the namespace's links, addresses, routes and firewall ruleset.
snapshot() {
	ip -n "$ns" -o link show
	ip -n "$ns" -o addr show
	ip -n "$ns" route show table all
	ip -n "$ns" -6 route show table all
	in_ns nft list ruleset
}
snapshot >"$tmp/before"

step "kvmnet up demo-vm (network: default)"
start=$(now_ms)
qemu_args=$(kvmnet up demo-vm --format qemu)
echo "took $(($(now_ms) - start)) ms"
kernel_args=$(kvmnet show demo-vm --format kernel-args)
kvmnet show demo-vm
echo "qemu arguments:  $(echo $qemu_args)"
echo "kernel arguments: $kernel_args"
guest_ip=$(echo "$kernel_args" | sed -n 's/.*\bip=\([0-9.]*\):.*/\1/p')
[[ -n $guest_ip ]] || fail "no guest address in the kernel arguments"

step "boot the guest (QEMU, software emulation)"
khz=$(awk -F: '/^cpu MHz/ {printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
start=$(now_ms)
# shellcheck disable=SC2086 # kvmnet prints plain words, one option per word
ip netns exec "$ns" qemu-system-x86_64 \
	-machine microvm,pcie=on -accel tcg -smp 1 -m 256 \
	-nodefaults -no-user-config -display none -monitor none -no-reboot \
	-serial "file:$tmp/serial.log" \
	-kernel "$guest_dir/vmlinux" -initrd "$guest_dir/initramfs.cpio.gz" \
	-append "console=ttyS0 panic=-1 quiet tsc_early_khz=$khz $kernel_args" \
	$qemu_args </dev/null >"$tmp/qemu.log" 2>&1 &
qemu_pid=$!
for _ in $(seq 1 600); do
	grep -q KVMNET-GUEST-READY "$tmp/serial.log" 2>/dev/null && break
	kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited: $(cat "$tmp/qemu.log" "$tmp/serial.log")"
	sleep 0.1
done
grep -q KVMNET-GUEST-READY "$tmp/serial.log" || fail "guest not ready after 60 s: $(cat "$tmp/serial.log")"
echo "guest ready after $(($(now_ms) - start)) ms at $guest_ip"

step "the guest replies"
in_ns busybox ping -c 3 -W 2 "$guest_ip"
start=$(now_ms)
page=$(in_ns timeout 5 busybox wget -q -O- "http://$guest_ip/cgi-bin/info")
echo "HTTP GET http://$guest_ip/cgi-bin/info in $(($(now_ms) - start)) ms:"
echo "$page" | sed 's/^/  /'

step "kvmnet down demo-vm"
kill "$qemu_pid"
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=""
start=$(now_ms)
kvmnet down demo-vm
echo "took $(($(now_ms) - start)) ms"

step "check that nothing is left"
snapshot >"$tmp/after"
left=0
if diff -u "$tmp/before" "$tmp/after"; then
	echo "links, addresses, routes and nft ruleset: same as before up"
else
	echo "links, addresses, routes or nft ruleset differ from before up (diff above)"
	left=1
fi
records=$(find "$tmp/state" -maxdepth 1 -type f -name '*.json')
if [[ -z $records ]]; then
	echo "state dir: no VM record"
else
	echo "state dir still has: $records"
	left=1
fi
# host-local keeps one file per reserved address, plus its lock and
# last_reserved_ip.* bookkeeping files, which may stay.
reserved=$(find "$tmp/state" "$tmp/dev" -path '*/ipam/*' -type f ! -name lock ! -name 'last_reserved_ip.*' 2>/dev/null)
if [[ -z $reserved ]]; then
	echo "IPAM: no reserved address"
else
	echo "IPAM still reserves: $reserved"
	left=1
fi
nodes=$(find "$tmp/dev" -mindepth 1)
if [[ -z $nodes ]]; then
	echo "device nodes: none"
else
	echo "device nodes left: $nodes"
	left=1
fi

if [[ $left -ne 0 ]]; then
	fail "kvmnet down left something behind"
fi
echo
echo "demo finished: nothing left; namespace $ns and $tmp are removed on exit"
