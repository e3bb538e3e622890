#!/usr/bin/env bash
# clients/qemu-shim/build-qemu.sh - build (or reuse) QEMU 10.0.2 with the
# dma-service shim, from Debian's source tarball.
#
# Vocabulary:
#   tarball  qemu_10.0.2+ds.orig.tar.xz, fetched with `apt-get source
#            --download-only -t bookworm-backports qemu` (only the orig
#            tarball is served; the .dsc/.debian errors are expected)
#   tree     an unpacked, configured QEMU source + build directory, keyed by
#            the tarball's sha256, TREE_RECIPE and the configure arguments:
#            ~/.cache/dmasvc/qemu-tree-<key>/{src,build,pristine}.  Created
#            once (the cold build, 8+ minutes on 2 cores), then reused.
#   inputs   what goes into the tree on every run: patches/*.patch (applied
#            to pristine copies of the files they touch), dma-service.c,
#            dma-service.h, vfio-dma-service.c, trace-events,
#            trace-events-vfio, and the client sources QEMU compiles in
#            (clients/libdmasvc/{include,src}, ring/{*.c,include},
#            proto/{*.c,include}).  A file is rewritten only when its content
#            changed, so ninja rebuilds only what depends on it (seconds
#            for the shim, ~50 s for qapi/qom.json).
#   output   ~/.cache/dmasvc/qemu-<key>/qemu-system-x86_64, where <key>
#            hashes the tarball sha256, every input above and this script.
#            A hit prints the path at once.
#
# How the shim gets into QEMU: dma-service.c becomes backends/dma-service.c,
# dma-service.h include/system/dma-service.h, vfio-dma-service.c (the VFIO
# backend, built by patches/0006) hw/vfio/vfio-dma-service.c; trace-events
# and trace-events-vfio are appended to backends/ and hw/vfio/trace-events;
# libdmasvc and the ring sources are copied under backends/dmasvc-client/ and
# compiled there as a static library with their own include paths (their own
# code, unchanged; QEMU's warnings apply, --disable-werror), linked into
# qemu-system-x86_64 through backends/meson.build (patches/).
#
# Usage: build-qemu.sh          progress on stderr, binary path as the last
#                               stdout line
# Environment: DMASVC_CACHE (default ~/.cache/dmasvc), DMASVC_QEMU_TARBALL (a
#   local qemu_10.0.2+ds.orig.tar.xz instead of apt-get source),
#   DMASVC_JOBS (default nproc).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${DMASVC_CACHE:-$HOME/.cache/dmasvc}
jobs=${DMASVC_JOBS:-$(nproc)}
tarname=qemu_10.0.2+ds.orig.tar.xz
# Bump when the way a tree is unpacked or configured changes.
TREE_RECIPE=1
configure_args=(--python=/usr/bin/python3 --target-list=x86_64-softmmu
	--without-default-features --enable-tcg --disable-docs --disable-werror
	--disable-install-blobs)
# The client code compiled into QEMU (backends/dmasvc-client/): *.c and *.h
# directly in these directories, and everything under the include/ ones.
client_dirs=(clients/libdmasvc/src ring proto)
client_incs=(clients/libdmasvc/include ring/include proto/include)

log() { echo "build-qemu: $*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in /usr/bin/python3 ninja meson patch tar xz cc sha256sum flock; do
	command -v "$tool" >/dev/null || die "'$tool' not found (scripts/setup --qemu installs QEMU's build deps)"
done

mkdir -p "$cache/downloads"
exec 9>"$cache/.qemu.lock"
flock 9

# ---- the tarball ------------------------------------------------------------
tarball=${DMASVC_QEMU_TARBALL:-$cache/downloads/$tarname}
if [ ! -s "$tarball" ]; then
	log "fetching $tarname (apt-get source --download-only -t bookworm-backports qemu)"
	# Only the orig tarball is served; apt-get fails on the rest, so judge by the file.
	(cd "$cache/downloads" && apt-get source --download-only -t bookworm-backports qemu >&2) || true
	[ -s "$tarball" ] || die "could not fetch $tarname (is deb-src for bookworm-backports configured? scripts/setup --qemu)"
fi
tar_sha=$(sha256sum "$tarball" | cut -d' ' -f1)

# ---- keys -------------------------------------------------------------------
client_files() { # the client code, repository-relative, sorted
	(cd "$top" && {
		for d in "${client_dirs[@]}"; do find "$d" -maxdepth 1 -type f -name '*.[ch]'; done
		for d in "${client_incs[@]}"; do find "$d" -type f -name '*.h'; done
	} | LC_ALL=C sort)
}
input_files() { # every input file, repository-relative, sorted
	(cd "$top" && {
		find clients/qemu-shim -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' -o -name 'trace-events*' \)
		find clients/qemu-shim/patches -type f -name '*.patch'
	} | LC_ALL=C sort)
	client_files
}
tree_key=$(printf '%s\n' "$tar_sha" "$TREE_RECIPE" "${configure_args[*]}" | sha256sum | cut -c1-16)
out_key=$( {
	echo "$tar_sha"
	cat "$0"
	input_files | while read -r f; do echo "== $f"; cat "$top/$f"; done
} | sha256sum | cut -c1-16)
tree=$cache/qemu-tree-$tree_key
out=$cache/qemu-$out_key

if [ -x "$out/qemu-system-x86_64" ]; then
	log "cached: $out/qemu-system-x86_64"
	echo "$out/qemu-system-x86_64"
	exit 0
fi
start=$(date +%s)

[ -n "$(cd "$top" && ls clients/libdmasvc/src/*.c 2>/dev/null)" ] ||
	die "no clients/libdmasvc/src/*.c: libdmasvc is not in this tree yet"

# ---- the tree: unpack once --------------------------------------------------
if [ ! -e "$tree/.unpacked" ]; then
	log "unpacking $tarname into $tree"
	rm -rf "$tree"
	mkdir -p "$tree/src.tmp" "$tree/pristine"
	tar -xf "$tarball" -C "$tree/src.tmp" --strip-components=1
	mv "$tree/src.tmp" "$tree/src"
	touch "$tree/.unpacked"
fi
src=$tree/src
build=$tree/build

# put_file SRC DEST: copy only when the content differs (keeps mtimes).
put_file() {
	if ! cmp -s "$1" "$2"; then
		mkdir -p "$(dirname "$2")"
		cp "$1" "$2.tmp" && mv "$2.tmp" "$2"
		log "updated ${2#"$src"/}"
	fi
}

# ---- patches: pristine copy + every patch, then put_file --------------------
patches=("$here"/patches/*.patch)
mapfile -t patched < <(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "${patches[@]}" | LC_ALL=C sort -u)
for f in "${patched[@]}" backends/trace-events hw/vfio/trace-events; do
	if [ ! -e "$tree/pristine/$f" ]; then
		mkdir -p "$(dirname "$tree/pristine/$f")"
		cp "$src/$f" "$tree/pristine/$f.tmp"
		mv "$tree/pristine/$f.tmp" "$tree/pristine/$f"
	fi
done
stage=$(mktemp -d "$tree/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
for f in "${patched[@]}"; do
	mkdir -p "$(dirname "$stage/$f")"
	cp "$tree/pristine/$f" "$stage/$f"
done
for p in "${patches[@]}"; do
	patch -s -p1 -d "$stage" --no-backup-if-mismatch <"$p" >&2 ||
		die "patch $(basename "$p") does not apply to QEMU 10.0.2"
done
for f in "${patched[@]}"; do put_file "$stage/$f" "$src/$f"; done
# A file no patch touches any more goes back to its pristine content.
if [ -e "$tree/patched.list" ]; then
	printf '%s\n' "${patched[@]}" | LC_ALL=C sort >"$stage/patched.list"
	LC_ALL=C sort "$tree/patched.list" | comm -23 - "$stage/patched.list" |
		while read -r f; do put_file "$tree/pristine/$f" "$src/$f"; done
fi
printf '%s\n' "${patched[@]}" >"$tree/patched.list"

# ---- shim and client sources ------------------------------------------------
put_file "$here/dma-service.c" "$src/backends/dma-service.c"
put_file "$here/dma-service.h" "$src/include/system/dma-service.h"
put_file "$here/vfio-dma-service.c" "$src/hw/vfio/vfio-dma-service.c"
cat "$tree/pristine/backends/trace-events" "$here/trace-events" >"$stage/trace-events"
put_file "$stage/trace-events" "$src/backends/trace-events"
cat "$tree/pristine/hw/vfio/trace-events" "$here/trace-events-vfio" >"$stage/trace-events-vfio"
put_file "$stage/trace-events-vfio" "$src/hw/vfio/trace-events"

dc=$src/backends/dmasvc-client
mkdir -p "$dc"
client_files >"$stage/files"
while read -r f; do put_file "$top/$f" "$dc/$f"; done <"$stage/files"
# Files that left the repository leave the tree too.
(cd "$dc" && find . -type f \( -name '*.c' -o -name '*.h' \) | sed 's|^\./||') | LC_ALL=C sort |
	comm -23 - "$stage/files" | while read -r f; do log "removed $f"; rm -f "$dc/$f"; done
{
	echo "# Generated by clients/qemu-shim/build-qemu.sh: libdmasvc + ring, compiled into QEMU."
	echo "dmasvc_client_inc = include_directories("
	for d in "${client_dirs[@]}" "${client_incs[@]}"; do echo "  '$d',"; done
	echo ")"
	echo "dmasvc_client_lib = static_library('dmasvc-client', files("
	grep '\.c$' "$stage/files" | sed "s|.*|  '&',|"
	echo "  ), include_directories: dmasvc_client_inc,"
	echo "  c_args: ['-D_GNU_SOURCE', '-Wno-missing-prototypes', '-Wno-undef'],"
	echo "  dependencies: [threads], build_by_default: false)"
	echo "dmasvc_client_dep = declare_dependency(link_with: dmasvc_client_lib,"
	echo "  include_directories: include_directories('clients/libdmasvc/include', 'proto/include'))"
} >"$stage/meson.build"
put_file "$stage/meson.build" "$dc/meson.build"

# ---- configure once, then build ---------------------------------------------
if [ ! -e "$build/build.ninja" ]; then
	log "configuring QEMU in $build"
	rm -rf "$build"
	mkdir -p "$build"
	(cd "$build" && "$src/configure" "${configure_args[@]}" >configure.log 2>&1) || {
		tail -n 30 "$build/configure.log" >&2
		die "configure failed; full log $build/configure.log"
	}
fi

log "ninja qemu-system-x86_64 (cold: 8+ minutes on 2 cores; warm: seconds)"
set +e
nice -n 10 ninja -C "$build" -j"$jobs" qemu-system-x86_64 2>&1 |
	tee "$build/ninja.log" |
	awk '/^\[[0-9]+\/[0-9]+\]/ { gsub(/[][]/, "", $1); split($1, a, "/");
		if (a[1] % 100 == 0 || a[1] == a[2]) printf "build-qemu: %s/%s\n", a[1], a[2] > "/dev/stderr" }'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
	grep -E -B2 -A8 'error:|FAILED' "$build/ninja.log" | tail -n 60 >&2
	die "ninja failed (rc $rc); full log $build/ninja.log"
fi

# The shim and the client code must build without warnings (QEMU itself is
# built with --disable-werror, so check here).
if grep -E '(dma-service|dmasvc-client)[^ ]*\.[ch]:[0-9]+:[0-9]+: warning' "$build/ninja.log" >&2; then
	# Recompile them next time too, so the warnings cannot slip through.
	find "$build" -name '*.o' \( -name '*dma-service.c.o' -o -path '*dmasvc-client*' \) -delete
	die "warnings in the shim or the client code (above)"
fi

mkdir -p "$out.tmp"
cp "$build/qemu-system-x86_64" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
# Keep the three newest outputs.
ls -dt "$cache"/qemu-[0-9a-f]* 2>/dev/null | grep -v -e '\.tmp$' | tail -n +4 | xargs -r rm -rf
log "built $out/qemu-system-x86_64 in $(( $(date +%s) - start )) s"
echo "$out/qemu-system-x86_64"
