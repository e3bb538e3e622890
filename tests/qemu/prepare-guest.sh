#!/usr/bin/env bash
# tests/qemu/prepare-guest.sh - the guest for the qemu suite: Debian's
# bookworm-backports 6.12 kernel image (downloaded with `apt-get download`,
# unpacked with dpkg-deb -x, never installed) and a busybox-static initramfs
# whose /init loads virtio_mem (and the modules it depends on, per
# `modinfo -F depends`) and then idles.  The test drives the guest only
# through QMP (virtio-mem requested-size), so the guest runs no test code.
#
# Cache: ~/.cache/dmasvc/qemu-guest-<key>/{vmlinuz,initrd.cpio.gz}; <key>
# hashes the kernel package name and version, busybox's version and this
# script.  A hit costs a second; a miss about 10 s plus the download.
#
# Usage: prepare-guest.sh    progress on stderr; the directory as the last
#                            stdout line
# Environment: DMASVC_CACHE (default ~/.cache/dmasvc), DMASVC_GUEST_KERNEL_PKG
#   (default: what linux-image-6.12-amd64 depends on).
set -euo pipefail

cache=${DMASVC_CACHE:-$HOME/.cache/dmasvc}
log() { echo "prepare-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in apt-get apt-cache dpkg-deb modinfo cpio gzip xz; do
	command -v "$tool" >/dev/null || die "'$tool' not found (scripts/setup --qemu)"
done
busybox=/bin/busybox
[ -x "$busybox" ] && dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
	die "$busybox missing or not static: install busybox-static (scripts/setup --qemu)"

pkg=${DMASVC_GUEST_KERNEL_PKG:-$(apt-cache depends linux-image-6.12-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-6\.12[^ ]*-amd64\)$/\1/p' | head -n 1)}
[ -n "$pkg" ] || die "no linux-image-6.12-amd64 in the package lists (bookworm-backports: scripts/setup --qemu)"
ver=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
bbver=$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || echo unknown)
key=$( { echo "$pkg $ver $bbver"; cat "$0"; } | sha256sum | cut -c1-16)
out=$cache/qemu-guest-$key

mkdir -p "$cache/downloads"
exec 9>"$cache/.qemu-guest.lock"
flock 9
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.cpio.gz" ]; then
	log "cached: $out"
	echo "$out"
	exit 0
fi

deb=$(ls "$cache/downloads/${pkg}_"*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
	log "apt-get download $pkg ($ver)"
	(cd "$cache/downloads" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
	deb=$(ls "$cache/downloads/${pkg}_"*.deb | head -n 1)
fi

work=$(mktemp -d "$cache/qemu-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "unpacking $(basename "$deb")"
dpkg-deb -x "$deb" "$work/pkg"
kver=$(ls "$work/pkg/lib/modules" | head -n 1)
moddir=$work/pkg/lib/modules/$kver

# modpath NAME: the module file of NAME in the image.
modpath() {
	local f
	f=$(find "$moddir/kernel" -name "$1.ko*" -o -name "$(echo "$1" | tr _ -).ko*" | head -n 1)
	[ -n "$f" ] || die "module $1 not in $pkg"
	echo "$f"
}
# Dependencies first, each module once.
order=()
add_module() {
	local m=$1 d f
	for d in "${order[@]}"; do [ "$d" = "$m" ] && return 0; done
	f=$(modpath "$m")
	for d in $(modinfo -F depends "$f" | tr , ' '); do add_module "$d"; done
	order+=("$m")
}
add_module virtio_mem

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
cp "$busybox" "$root/bin/busybox"
for m in "${order[@]}"; do
	f=$(modpath "$m")
	case $f in
	*.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
	*.zst) zstd -dqc "$f" >"$root/lib/modules/$m.ko" ;;
	*) cp "$f" "$root/lib/modules/$m.ko" ;;
	esac
done
{
	echo '#!/bin/busybox sh'
	echo '/bin/busybox --install -s /bin'
	echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null'
	for m in "${order[@]}"; do echo "insmod /lib/modules/$m.ko || echo 'dmasvc-guest: insmod $m failed'"; done
	echo 'echo "dmasvc-guest: ready ($(cat /proc/meminfo | head -n 1))"'
	echo 'while :; do sleep 3600; done'
} >"$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initrd.cpio.gz")

mkdir -p "$out.tmp"
cp "$work/pkg/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"
mv "$work/initrd.cpio.gz" "$out.tmp/initrd.cpio.gz"
printf '%s\n' "${order[@]}" >"$out.tmp/modules"
rm -rf "$out"
mv "$out.tmp" "$out"
# Keep the two newest guests.
ls -dt "$cache"/qemu-guest-[0-9a-f]* 2>/dev/null | grep -v '\.tmp$' | tail -n +3 | xargs -r rm -rf
log "guest ready in $out (kernel $kver, modules: ${order[*]})"
echo "$out"
