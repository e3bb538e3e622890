#!/usr/bin/env bash
# tests/vm/build-kernel.sh - build (or reuse) the small guest kernel for the
# vm tier: Debian's linux-source-6.12, `make tinyconfig`, kernel.config merged
# over it, `make olddefconfig bzImage`.
#
# Cache: ~/.cache/dmasvc/kernel-<key>/bzImage, where <key> hashes the source
# tarball's identity (path, size, mtime, package version), kernel.config,
# the --fragment files (if any, in order) and this script.  A hit costs a
# few seconds; a miss 6-9 minutes on 2 cores.
# The source tree is unpacked once per tarball into ~/.cache/dmasvc/linux-src-*.
#
# Usage: build-kernel.sh [--print-path] [--fragment FILE]...
#   --fragment FILE  one more config fragment, merged after kernel.config
#                    (tests/nested/kernel-l2.config); its CONFIG_*=y lines
#                    are checked like kernel.config's
#   Prints progress on stderr and the bzImage path as the last stdout line.
# Environment: DMASVC_CACHE (default ~/.cache/dmasvc), DMASVC_KERNEL_TARBALL
#   (default /usr/src/linux-source-6.12.tar.xz), DMASVC_JOBS (default nproc).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${DMASVC_CACHE:-$HOME/.cache/dmasvc}
tarball=${DMASVC_KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
fragment=$here/kernel.config
extras=()
while [ $# -gt 0 ]; do
	case $1 in
	--print-path) ;;
	--fragment) [ $# -ge 2 ] || { echo "build-kernel: --fragment needs a file" >&2; exit 2; }
		extras+=("$(realpath "$2")"); shift ;;
	*) echo "usage: build-kernel.sh [--print-path] [--fragment FILE]..." >&2; exit 2 ;;
	esac
	shift
done
jobs=${DMASVC_JOBS:-$(nproc)}

log() { echo "build-kernel: $*" >&2; }
die() { log "error: $*"; exit 1; }

for f in "${extras[@]}"; do [ -r "$f" ] || { echo "build-kernel: error: fragment $f not readable" >&2; exit 1; }; done
[ -r "$tarball" ] || die "$tarball missing (install linux-source-6.12 from bookworm-backports: scripts/setup)"
for tool in make gcc flex bison bc tar xz; do
	command -v "$tool" >/dev/null || die "'$tool' not found (scripts/setup installs the kernel build deps)"
done

pkgver=$(dpkg-query -W -f '${Version}' linux-source-6.12 2>/dev/null || echo unknown)
src_id=$(stat -c '%n %s %Y' "$tarball")
# Without --fragment the key's input is what it always was.
key=$( { echo "$src_id $pkgver"; cat "$fragment" "${extras[@]}" "$0"; } | sha256sum | cut -c1-16)
src_key=$(echo "$src_id $pkgver" | sha256sum | cut -c1-16)
out=$cache/kernel-$key
src=$cache/linux-src-$src_key

mkdir -p "$cache"
# cached: on a hit print it and exit (a bzImage appears only complete, by mv).
cached() {
	if [ -s "$out/bzImage" ]; then
		log "cached: $out/bzImage"
		echo "$out/bzImage"
		exit 0
	fi
}
cached
# One builder at a time per cache (meson may run two builds in parallel);
# a hit above does not wait for another kernel's build.
exec 9>"$cache/.kernel.lock"
flock 9
cached

start=$(date +%s)
if [ ! -e "$src/.unpacked" ]; then
	log "unpacking $tarball into $src (about a minute)"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -xf "$tarball" -C "$src.tmp" --strip-components=1
	touch "$src.tmp/.unpacked"
	mv "$src.tmp" "$src"
fi

obj=$out.build
rm -rf "$obj"
mkdir -p "$obj"
log "configuring in $obj (tinyconfig + $(basename "$fragment")${extras[*]:+ + ${extras[*]##*/}})"
make -s -C "$src" O="$obj" tinyconfig >/dev/null
# merge_config.sh splits its file arguments on spaces: give it copies under
# $obj (the cache, no spaces), so a checkout path with a space works.
merge=("$obj/fragment-0.config")
cp "$fragment" "${merge[0]}"
for i in "${!extras[@]}"; do
	merge+=("$obj/fragment-$((i + 1)).config")
	cp "${extras[$i]}" "${merge[-1]}"
done
"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "${merge[@]}" >/dev/null
make -s -C "$src" O="$obj" olddefconfig >/dev/null

# Every option the fragments ask for must have survived olddefconfig.
missing=0
while IFS= read -r line; do
	case $line in CONFIG_*=y) ;; *) continue ;; esac
	if ! grep -qx "$line" "$obj/.config"; then
		log "option lost after olddefconfig (unmet dependency?): $line"
		missing=1
	fi
done < <(cat "$fragment" "${extras[@]}")
[ $missing = 0 ] || die "kernel configuration incomplete"

log "make bzImage -j$jobs (6-9 minutes cold on 2 cores)"
# Progress: one line per 200 objects compiled, so a CI log shows life.
set +e
nice -n 10 make -C "$src" O="$obj" -j"$jobs" bzImage 2>"$obj/build.err" |
	awk '/^  CC /{n++; if (n % 200 == 0) { printf "build-kernel: %d objects\n", n > "/dev/stderr" }}'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
	tail -n 40 "$obj/build.err" >&2
	die "make bzImage failed (rc $rc); full log $obj/build.err"
fi

cp "$obj/arch/x86/boot/bzImage" "$obj/bzImage.tmp"
cp "$obj/.config" "$obj/config.tmp"
mkdir -p "$out"
mv "$obj/config.tmp" "$out/config"
mv "$obj/bzImage.tmp" "$out/bzImage"
rm -rf "$obj"
log "built $out/bzImage in $(( $(date +%s) - start )) s"
echo "$out/bzImage"
