#!/usr/bin/env bash
# bench/map/run-vm.sh - run map-bench on a real iommufd inside the tests/vm
# guest (TCG, emulated Intel IOMMU, edu bound to vfio-pci and attached).
#
# Usage: run-vm.sh BUILD_DIR OUT_PREFIX [MAP-BENCH ARG]...
#   BUILD_DIR   a meson build of this tree without sanitizers and without
#               debug checks (check-build.sh says how to make one), with
#               bench/map/map-bench-static and tests/vm/dmasvc-static built
#   OUT_PREFIX  writes OUT_PREFIX.txt (tables), .json, .console.log
#   args        passed to map-bench in the guest (no ':' or spaces inside
#               one argument)
# Environment: DMASVC_VM_MEM (guest RAM, default 3G here),
#   DMASVC_VM_TIMEOUT (default 3000 s), DMASVC_VM_EXTRA (more words for the
#   guest kernel command line, e.g. idle=halt), DMASVC_VM_BINS (more static
#   executables, space-separated, installed as /bin/<name>: an older
#   dmasvc-static copied to another name, for --variant old=/bin/NAME).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
vm=$here/../../tests/vm
build=${1:?usage: run-vm.sh BUILD_DIR OUT_PREFIX [ARG]...}
out=${2:?usage: run-vm.sh BUILD_DIR OUT_PREFIX [ARG]...}
shift 2
bench=$build/bench/map/map-bench-static
daemon=$build/tests/vm/dmasvc-static
"$here/check-build.sh" "$build"
for f in "$bench" "$daemon"; do
	[ -x "$f" ] || { echo "run-vm: $f missing (ninja -C $build ${f#"$build"/})" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kernel=$("$vm/build-kernel.sh" | tail -n 1)
extra=()
for b in ${DMASVC_VM_BINS:-}; do
	[ -x "$b" ] || { echo "run-vm: DMASVC_VM_BINS: $b is not an executable" >&2; exit 1; }
	extra+=(-b "$b")
done
"$vm/build-initramfs.sh" -o "$work/initrd.cpio.gz" -b "$bench" -b "$daemon" "${extra[@]}" \
	-t "$here/../../tests/vm/guest/bench/50-map-bench"

joined=$(IFS=:; echo "$*")
export DMASVC_VM_MEM=${DMASVC_VM_MEM:-3G}
export DMASVC_VM_APPEND="loglevel=1 ${DMASVC_VM_EXTRA:-} mapbench_args=$joined"
export DMASVC_VM_LOG=$out.console.log
rc=0
# How much host CPU the emulator got: with 2 vCPUs, user+sys below 2x the
# wall time means the vCPUs did not both run all the time.
TIMEFORMAT='host: qemu wall %R s, cpu user %U s + sys %S s (both vCPU threads and the emulator)'
{ time "$vm/run-guest.sh" "$kernel" "$work/initrd.cpio.gz" "${DMASVC_VM_TIMEOUT:-3000}" \
	>/dev/null 2>&3 || rc=$?; } 3>&2 2>"$work/time.txt"
tr -d '\r' <"$out.console.log" | sed -n '/^MAPBENCH-TABLE-BEGIN/,/^MAPBENCH-TABLE-END/p' |
	sed '1d;$d' >"$out.txt"
tr -d '\r' <"$out.console.log" | sed -n '/^MAPBENCH-JSON-BEGIN/,/^MAPBENCH-JSON-END/p' |
	sed '1d;$d' >"$out.json"
{
	echo "guest: qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m $DMASVC_VM_MEM, intel-iommu, edu"
	grep -a '^guest:' "$out.console.log" | tr -d '\r' || true
	cat "$work/time.txt"
	echo "host: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out.guest.txt"
cat "$out.txt"
echo "run-vm: guest rc $rc; tables $out.txt, JSON $out.json, console $out.console.log" >&2
exit "$rc"
