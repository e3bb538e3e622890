#!/usr/bin/env bash
# bench/restart/run-vm.sh - issue #14's restart measurement in the tests/vm
# guest (TCG, emulated Intel IOMMU, edu attached): MIB of memory populated
# at 2 MiB, the daemon SIGKILLed under fdstore-keeper (RestartSec 0), the
# time until the new instance is READY and until the client resumed, and
# the map/unmap calls the resume made.  Prints the table (bench/RESULTS.md
# "## restart").  Not a meson test.
#
# Usage: run-vm.sh BUILD_DIR OUT_PREFIX [MIB]
#   BUILD_DIR   a meson build without sanitizers with tests/vm's static
#               binaries built (dmasvc-static, fdstore-keeper, restart-test)
#   OUT_PREFIX  writes OUT_PREFIX.txt (the table) and .console.log
#   MIB         populated size (default 4096); the guest gets MIB + 2 GiB
# Environment: DMASVC_VM_MEM overrides the guest RAM, DMASVC_VM_TIMEOUT
#   (default 3000 s).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
vm=$here/../../tests/vm
build=${1:?usage: run-vm.sh BUILD_DIR OUT_PREFIX [MIB]}
out=${2:?usage: run-vm.sh BUILD_DIR OUT_PREFIX [MIB]}
mib=${3:-4096}
args=()
for b in dmasvc-static fdstore-keeper restart-test; do
	f=$build/tests/vm/$b
	[ -x "$f" ] || { echo "run-vm: $f missing (ninja -C $build tests/vm/$b)" >&2; exit 1; }
	args+=(-b "$f")
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kernel=$("$vm/build-kernel.sh" | tail -n 1)
"$vm/build-initramfs.sh" -o "$work/initrd.cpio.gz" "${args[@]}" -s "$vm/guest/bin/with-keeper" \
	-t "$vm/guest/bench/80-restart-bench"
export DMASVC_VM_MEM=${DMASVC_VM_MEM:-$((mib / 1024 + 3))G}
export DMASVC_VM_APPEND="restart_mib=$mib"
export DMASVC_VM_LOG=$out.console.log
rc=0
"$vm/run-guest.sh" "$kernel" "$work/initrd.cpio.gz" "${DMASVC_VM_TIMEOUT:-3000}" >/dev/null || rc=$?
{
	echo "restart-bench: SIGKILL -> resumed session, iommufd, edu attached, fdstore-keeper RestartSec=0"
	echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; guest: qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m $DMASVC_VM_MEM, intel-iommu (caching-mode), edu; $(tr -d '\r' <"$out.console.log" | grep -a -m1 '^guest: 6' || true)"
	echo "command: bench/restart/run-vm.sh $build $out $mib"
	echo "host load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	tr -d '\r' <"$out.console.log" | sed -n '/^RESTART-BENCH-BEGIN/,/^RESTART-BENCH-END/p' | sed '1d;$d'
} >"$out.txt"
cat "$out.txt"
tr -d '\r' <"$out.console.log" | grep -a 'adopted session\|restart-test\[bench\]' >&2 || true
echo "run-vm: guest rc $rc; table $out.txt, console $out.console.log" >&2
exit "$rc"
