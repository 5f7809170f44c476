#!/bin/bash
# Build the kvmnet test guest: Debian's cloud kernel and a busybox initramfs.
#
# Output (in $KVMNET_GUEST_DIR, default <repo>/.cache/guest):
#   vmlinux            uncompressed ELF kernel (PVH entry), for -machine microvm or q35
#   vmlinuz            the package's compressed bzImage, for any machine type
#   initramfs.cpio.gz  busybox, the virtio-net module chain and guest/init
#   kernel-release     the kernel's release string, for example 6.1.0-57-cloud-amd64
#
# Everything comes from Debian packages: linux-image-cloud-amd64 is fetched
# with `apt-get download` and unpacked with `dpkg-deb -x` into a temporary
# directory, so nothing is installed into /boot. busybox-static is installed
# with apt-get when /bin/busybox is missing or not static.
#
# The script is idempotent: when the artefacts exist and were built from the
# current guest/init and guest/build.sh, it exits at once. Set
# KVMNET_GUEST_REFRESH=1 to fetch the newest kernel package again.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${KVMNET_GUEST_DIR:-$(dirname "$here")/.cache/guest}

# Modules the guest needs beyond the built-in drivers. In Debian's cloud
# kernel (6.1) virtio, virtio_pci, virtio_mmio and virtio_net are all modules;
# their dependencies are resolved from modules.dep.
modules=(virtio_pci virtio_mmio virtio_net)

log() { echo "guest/build.sh: $*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

stamp=$(cat "$here/init" "$here/build.sh" | sha256sum | cut -d' ' -f1)
if [[ -z ${KVMNET_GUEST_REFRESH:-} && -s $out/vmlinux && -s $out/vmlinuz &&
	-s $out/initramfs.cpio.gz && -d $out/modules &&
	$(cat "$out/.stamp" 2>/dev/null) == "$stamp" ]]; then
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# download PACKAGE: fetch a .deb into $work, updating the package lists once
# if apt has none that lists the package.
download() {
	if (cd "$work" && apt-get download "$1" >/dev/null 2>"$work/apt.err"); then
		return
	fi
	log "apt-get download $1 failed ($(tail -n1 "$work/apt.err")); running apt-get update"
	apt-get update -qq >/dev/null
	(cd "$work" && apt-get download "$1" >/dev/null) || die "apt-get download $1 failed"
}

# extract_vmlinux BZIMAGE OUT: write the uncompressed ELF kernel found in a
# bzImage. Debian builds the cloud kernel with CONFIG_KERNEL_LZ4, whose
# payload starts with the legacy LZ4 frame magic 02 21 4c 18. lz4 stops with
# an error at the bzImage's trailing data after the payload, so success is
# judged by the ELF header instead of the exit code.
extract_vmlinux() {
	local bz=$1 dst=$2 offsets off
	command -v lz4 >/dev/null || apt-get install -y -qq lz4 >/dev/null
	offsets=$(grep -obUaP '\x02\x21\x4c\x18' "$bz" | cut -d: -f1) || true
	for off in $offsets; do
		tail -c +$((off + 1)) "$bz" | lz4 -dc >"$dst.tmp" 2>/dev/null || true
		if [[ $(head -c4 "$dst.tmp" | od -An -c | tr -d ' ') == '177ELF' ]]; then
			mv "$dst.tmp" "$dst"
			return 0
		fi
	done
	rm -f "$dst.tmp"
	return 1
}

# Step 1: kernel and modules, unless they exist and no refresh was requested.
if [[ -n ${KVMNET_GUEST_REFRESH:-} || ! -s $out/vmlinuz || ! -s $out/kernel-release || ! -d $out/modules ]]; then
	download linux-image-cloud-amd64
	meta=$(ls "$work"/linux-image-cloud-amd64_*.deb)
	# The meta package depends on exactly one versioned image package.
	image=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[^ ]*\).*/\1/p' | head -n1)
	[[ -n $image ]] || die "no linux-image dependency in $(basename "$meta")"
	log "fetching $image"
	download "$image"
	dpkg-deb -x "$work/${image}"_*.deb "$work/kernel"

	release=${image#linux-image-}
	kdir=$work/kernel/lib/modules/$release
	[[ -d $kdir ]] || die "no /lib/modules/$release in $image"
	cp "$work/kernel/boot/vmlinuz-$release" "$work/vmlinuz"
	cp "$work/kernel/boot/config-$release" "$work/config"

	# The package ships no modules.dep (depmod runs at install time).
	busybox depmod -b "$work/kernel" "$release"

	declare -A seen=()
	order=()
	visit() {
		local path=$1 dep
		[[ -n ${seen[$path]:-} ]] && return
		seen[$path]=1
		for dep in $(grep "^$path:" "$kdir/modules.dep" | cut -d: -f2); do
			visit "$dep"
		done
		order+=("$path")
	}
	for name in "${modules[@]}"; do
		path=$(grep -E "^[^:]*/$name\.ko(\.[a-z]+)?:" "$kdir/modules.dep" | cut -d: -f1 || true)
		if [[ -z $path ]]; then
			grep -qE "/$name\.ko" "$kdir/modules.builtin" || die "module $name is neither in modules.dep nor built in"
			continue
		fi
		visit "$path"
	done

	mkdir -p "$work/modules"
	: >"$work/modules/load-order"
	for path in "${order[@]}"; do
		case $path in
		*.ko) ;;
		*) die "module $path is compressed; only plain .ko files are supported" ;;
		esac
		cp "$kdir/$path" "$work/modules/"
		basename "$path" >>"$work/modules/load-order"
	done
	log "module load order: $(tr '\n' ' ' <"$work/modules/load-order")"

	extract_vmlinux "$work/vmlinuz" "$work/vmlinux" || die "no LZ4-compressed ELF kernel found in vmlinuz-$release"

	rm -rf "$out/modules"
	mv "$work/modules" "$out/modules"
	mv "$work/vmlinuz" "$out/vmlinuz"
	mv "$work/vmlinux" "$out/vmlinux"
	mv "$work/config" "$out/config"
	echo "$release" >"$out/kernel-release"
fi

# Step 2: busybox-static, needed on the build machine only.
if [[ $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) != *'ok installed' ]]; then
	log "installing busybox-static"
	apt-get install -y -qq busybox-static >/dev/null || die "apt-get install busybox-static failed"
fi

# Step 3: the initramfs. Device nodes come from devtmpfs at boot, so the
# build needs no mknod and the archive lists every file as owned by root.
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,www/cgi-bin,lib/modules}
cp /bin/busybox "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod 0755 "$root/init"
cp "$out"/modules/* "$root/lib/modules/"
(cd "$root" && find . | sort | busybox cpio -o -H newc -R 0:0 2>/dev/null) | gzip -9 >"$work/initramfs.cpio.gz"
mv "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"

echo "$stamp" >"$out/.stamp"
log "guest ready in $out (kernel $(cat "$out/kernel-release"), initramfs $(stat -c %s "$out/initramfs.cpio.gz") bytes)"
