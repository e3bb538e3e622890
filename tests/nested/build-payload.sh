#!/usr/bin/env bash
# tests/nested/build-payload.sh - the nested tier's L1 payload: a cpio.gz
# with the QEMU that runs in L1 (stripped, at /usr/bin/qemu-system-x86_64),
# the shared libraries `ldd` lists at their own paths, the program
# interpreter, the firmware q35 + pcie-root-port + virtio-mem-pci need
# under /fw (bios-256k.bin, linuxboot_dma.bin for -kernel, kvmvapic.bin;
# QEMU in L1 runs with -L /fw) and the L2 kernel as /l2/bzImage.  L1's
# initramfs is build-initramfs.sh's archive followed by this one
# (concatenated cpio.gz archives unpack as one initramfs).
#
# Cache: ~/.cache/dmasvc/nested-payload-<key>/payload.cpio.gz, <key> =
# hash of the QEMU binary, the bzImage, each library and firmware file
# (path and sha256) and this script; the two newest are kept.  A hit costs
# about a second (hashing QEMU); a miss ~15 s.
#
# Usage: build-payload.sh QEMU BZIMAGE
#   progress on stderr, the payload path as the last stdout line
# Environment: DMASVC_CACHE (default ~/.cache/dmasvc).
set -euo pipefail

qemu=${1:?usage: build-payload.sh QEMU BZIMAGE}
bzimage=${2:?usage: build-payload.sh QEMU BZIMAGE}
cache=${DMASVC_CACHE:-$HOME/.cache/dmasvc}
firmware=(/usr/share/seabios/bios-256k.bin /usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/kvmvapic.bin)

log() { echo "build-payload: $*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in ldd readelf strip cpio gzip sha256sum flock; do
	command -v "$tool" >/dev/null || die "'$tool' not found"
done
[ -x "$qemu" ] || die "$qemu: not an executable"
[ -r "$bzimage" ] || die "$bzimage: not readable"
for f in "${firmware[@]}"; do
	[ -r "$f" ] || die "$f missing (seabios, qemu-system-data: scripts/setup --qemu)"
done
interp=$(readelf -l "$qemu" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
[ -n "$interp" ] || die "$qemu has no program interpreter"
mapfile -t libs < <(ldd "$qemu" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | LC_ALL=C sort -u)
[ ${#libs[@]} -gt 0 ] || die "ldd lists no libraries for $qemu"
ldd "$qemu" | grep -q 'not found' && die "ldd: libraries of $qemu not found"

key=$( {
	sha256sum "$qemu" "$bzimage" | cut -d' ' -f1
	sha256sum "$interp" "${libs[@]}" "${firmware[@]}"
	cat "$0"
} | sha256sum | cut -c1-16)
out=$cache/nested-payload-$key

mkdir -p "$cache"
exec 9>"$cache/.nested-payload.lock"
flock 9
if [ -s "$out/payload.cpio.gz" ]; then
	log "cached: $out/payload.cpio.gz"
	echo "$out/payload.cpio.gz"
	exit 0
fi

start=$(date +%s)
root=$(mktemp -d "$cache/nested-payload.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/fw" "$root/l2"
strip -o "$root/usr/bin/qemu-system-x86_64" "$qemu"
for f in "$interp" "${libs[@]}"; do
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
done
cp "${firmware[@]}" "$root/fw/"
cp "$bzimage" "$root/l2/bzImage"
mkdir -p "$out.tmp"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$out.tmp/payload.cpio.gz"
printf '%s\n' "$interp" "${libs[@]}" "${firmware[@]}" >"$out.tmp/contents"
rm -rf "$out"
mv "$out.tmp" "$out"
# Keep the two newest payloads.
ls -dt "$cache"/nested-payload-[0-9a-f]* 2>/dev/null | grep -v '\.tmp$' | tail -n +3 | xargs -r rm -rf
log "built $out/payload.cpio.gz ($(du -k "$out/payload.cpio.gz" | cut -f1) KiB) in $(( $(date +%s) - start )) s"
echo "$out/payload.cpio.gz"
