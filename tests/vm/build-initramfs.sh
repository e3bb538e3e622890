#!/usr/bin/env bash
# tests/vm/build-initramfs.sh - pack a busybox-static initramfs for the vm
# tier: /init (guest/init), busybox and its applet links, static test
# binaries in /bin and test scripts in /tests.  Cheap (< 1 s): rebuilt on
# every run, no cache.
#
# Usage: build-initramfs.sh -o OUT.cpio.gz [-i INIT] [-b BINARY]... [-s SCRIPT]...
#                           [-t SCRIPT]... [-f SRC=DEST]...
#   -i INIT    the /init script (default guest/init; tests/nested gives L2
#              its own)
#   -b BINARY  a statically linked executable, installed as /bin/<name>
#              (refused if it has a program interpreter, i.e. is dynamic)
#   -s SCRIPT  a shell helper for the tests, installed as /bin/<name>
#   -t SCRIPT  a test, installed as /tests/<name>; guest/init runs every
#              /tests/* in name order (so prefix names with 10-, 20-, ...)
#              and each must exit 0
#   -f SRC=DEST  any other file, installed as DEST (an absolute path)
# Adding a daemon or another test program later is one more -b / -t.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=
init=$here/guest/init
files=()
bins=()
helpers=()
tests=()
usage="usage: $0 -o OUT.cpio.gz [-i INIT] [-b BINARY]... [-s SCRIPT]... [-t SCRIPT]... [-f SRC=DEST]..."
while getopts "o:i:b:s:t:f:" opt; do
	case $opt in
	o) out=$OPTARG ;;
	i) init=$OPTARG ;;
	f) files+=("$OPTARG") ;;
	b) bins+=("$OPTARG") ;;
	s) helpers+=("$OPTARG") ;;
	t) tests+=("$OPTARG") ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
[ -n "$out" ] || { echo "build-initramfs: -o OUT is required" >&2; exit 2; }

die() { echo "build-initramfs: error: $*" >&2; exit 1; }
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || die "busybox not found (install busybox-static)"
if readelf -l "$busybox" 2>/dev/null | grep -q 'program interpreter'; then
	die "$busybox is dynamically linked (install busybox-static)"
fi
command -v cpio >/dev/null || die "cpio not found"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,tests,etc}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$init" "$root/init"

for b in "${bins[@]}"; do
	[ -x "$b" ] || die "$b: not an executable"
	if readelf -l "$b" | grep -q 'program interpreter'; then
		die "$b is dynamically linked; guest binaries must be static"
	fi
	install -m 0755 "$b" "$root/bin/$(basename "$b")"
done
for h in "${helpers[@]}"; do
	head -n 1 "$h" | grep -q '^#!/bin/sh' || die "$h: not a /bin/sh script"
	install -m 0755 "$h" "$root/bin/$(basename "$h")"
done
for t in "${tests[@]}"; do
	[ -r "$t" ] || die "$t: not readable"
	install -m 0755 "$t" "$root/tests/$(basename "$t")"
done
for f in "${files[@]}"; do
	src=${f%%=*} dest=${f#*=}
	case $f in *=/*) ;; *) die "-f $f: not SRC=/ABSOLUTE/DEST" ;; esac
	[ -r "$src" ] || die "$src: not readable"
	mkdir -p "$root$(dirname "$dest")"
	cp "$src" "$root$dest"
done

mkdir -p "$(dirname "$out")"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
	gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
echo "build-initramfs: $out ($(du -k "$out" | cut -f1) KiB, ${#bins[@]} binaries, ${#tests[@]} tests)" >&2
