#!/usr/bin/env bash
# tests/vm/run-guest.sh - boot the vm-tier guest under TCG and judge it.
#
# Usage: run-guest.sh BZIMAGE INITRD.cpio.gz [TIMEOUT_SECONDS]
# Boots Debian's qemu-system-x86_64 with an emulated Intel IOMMU (interrupt
# remapping, caching mode) and the edu PCI device, console on stdio
# (no_timer_check: under TCG on a busy host the kernel's IO-APIC timer
# check can miss its ticks and panic at boot; the check proves nothing
# here).  The
# guest's /init prints one "DMASVC-VM-RESULT: ..." line and powers off.
# Exit status 0 only if exactly one such line appeared and it is the PASS
# line; a FAIL line, no line, a QEMU error or the timeout (default 600 s)
# all fail.  The full console log is kept in $DMASVC_VM_LOG if set.
# DMASVC_VM_MEM sets the guest RAM (default 1G) and DMASVC_VM_APPEND adds
# kernel arguments (bench/map/run-vm.sh uses both).  DMASVC_VM_EDU is the
# edu -device argument (default "edu"; tests/nested passes
# "edu,dma_mask=0xffffffffffff": edu masks DMA addresses to 28 bits by
# default, hw/misc/edu.c:edu_clamp_addr, which would clamp an L2 address
# above 256 MiB into low memory instead of failing).  DMASVC_VM_EDU2, when
# set, adds a second edu with that -device argument (in its own IOMMU group:
# tests/vm's type1 test needs a device outside the group the daemon holds).
set -euo pipefail

kernel=${1:?usage: run-guest.sh BZIMAGE INITRD [TIMEOUT]}
initrd=${2:?usage: run-guest.sh BZIMAGE INITRD [TIMEOUT]}
limit=${3:-600}
qemu=${QEMU:-qemu-system-x86_64}
log=${DMASVC_VM_LOG:-$(mktemp)}

command -v "$qemu" >/dev/null || { echo "run-guest: $qemu not found (install qemu-system-x86)" >&2; exit 1; }
command -v timeout >/dev/null || { echo "run-guest: timeout(1) not found" >&2; exit 1; }

start=$(date +%s)
set +e
timeout --kill-after=10 "$limit" "$qemu" \
	-accel tcg -cpu max -smp 2 -m "${DMASVC_VM_MEM:-1G}" \
	-machine q35,kernel-irqchip=split \
	-device intel-iommu,intremap=on,caching-mode=on \
	-device "${DMASVC_VM_EDU:-edu}" \
	${DMASVC_VM_EDU2:+-device "$DMASVC_VM_EDU2"} \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 intel_iommu=on iommu=pt panic=-1 no_timer_check ${DMASVC_VM_APPEND:-}" \
	-nographic -no-reboot -nodefaults -serial stdio -monitor none \
	</dev/null 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - start ))

results=$(grep -a 'DMASVC-VM-RESULT:' "$log" | tr -d '\r' || true)
count=$(printf '%s' "$results" | grep -c 'DMASVC-VM-RESULT:' || true)
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	echo "run-guest: FAIL: guest timed out after ${limit}s (log $log)" >&2
	exit 1
fi
if [ "$count" != 1 ]; then
	echo "run-guest: FAIL: expected one result line, got $count (qemu rc $rc, log $log)" >&2
	exit 1
fi
case $results in
*"DMASVC-VM-RESULT: PASS "*)
	echo "run-guest: PASS in ${elapsed}s: $results" >&2
	exit 0 ;;
*)
	echo "run-guest: FAIL: $results (log $log)" >&2
	exit 1 ;;
esac
