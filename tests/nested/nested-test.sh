#!/usr/bin/env bash
# tests/nested/nested-test.sh - the nested tier end to end, as one meson
# test: QEMU with the shim (clients/qemu-shim/build-qemu.sh, cached), the
# L1 kernel (tests/vm/build-kernel.sh) and the L2 kernel (the same with
# --fragment kernel-l2.config), the payload (build-payload.sh, cached),
# L2's initrd (busybox, l2-init, l2-edu) and L1's initramfs (tests/vm's
# guest/init, dmasvc-static, fdstore-keeper, nested-l1, 10-nested-e2e,
# L2's initrd as
# /l2/initrd.cpio.gz; then the payload appended), booted by tests/vm's
# run-guest.sh with 2 GiB and edu's 48-bit dma_mask.  Passes only on the
# guest's PASS line; prints the nested-unplug and nested-e2e summary lines.
#
# Usage: nested-test.sh NESTED_L1 L2_EDU DMASVC_STATIC FDSTORE_KEEPER
# Environment: BUILD_QEMU (set by meson.build), DMASVC_NESTED_BACKEND
#   (dma-service, the default, or iommufd: stock QEMU), DMASVC_VM_TIMEOUT (L1 time
#   limit, default 1200 s), DMASVC_NESTED_APPEND (more L1 kernel arguments,
#   which reach nested-l1 as environment, e.g.
#   NESTED_QTEST_ONLY=1), DMASVC_VM_LOG (console log; default under the
#   build directory), DMASVC_NESTED_EXTRA_CPIO (a debugging archive appended
#   to L1's initramfs, e.g. gdb with its libraries as /usr/bin/gdb and an
#   unstripped QEMU as /dbg/qemu-system-x86_64: nested-l1 then prints
#   QEMU's thread stacks when a device_del does not complete).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
vm=$here/../vm
nested_l1=${1:?usage: nested-test.sh NESTED_L1 L2_EDU DMASVC_STATIC FDSTORE_KEEPER}
l2_edu=${2:?usage: nested-test.sh NESTED_L1 L2_EDU DMASVC_STATIC FDSTORE_KEEPER}
dmasvc_static=${3:?usage: nested-test.sh NESTED_L1 L2_EDU DMASVC_STATIC FDSTORE_KEEPER}
fdstore_keeper=${4:?usage: nested-test.sh NESTED_L1 L2_EDU DMASVC_STATIC FDSTORE_KEEPER}
build_qemu=${BUILD_QEMU:-$here/../../clients/qemu-shim/build-qemu.sh}
backend=${DMASVC_NESTED_BACKEND:-dma-service}
work=${MESON_BUILD_ROOT:-$PWD}/nested-work
mkdir -p "$work"

start=$(date +%s)
step() { echo "nested-test: [$(( $(date +%s) - start )) s] $*" >&2; }

qemu=$("$build_qemu" | tail -n 1)
l1_kernel=$("$vm/build-kernel.sh" | tail -n 1)
l2_kernel=$("$vm/build-kernel.sh" --fragment "$here/kernel-l2.config" | tail -n 1)
payload=$("$here/build-payload.sh" "$qemu" "$l2_kernel" | tail -n 1)
for f in "$qemu" "$l1_kernel" "$l2_kernel" "$payload"; do
	[ -s "$f" ] || { echo "nested-test: $f missing" >&2; exit 1; }
done
step "QEMU, kernels and payload ready"

"$vm/build-initramfs.sh" -o "$work/l2-initrd.cpio.gz" -i "$here/l2-init" -b "$l2_edu"
"$vm/build-initramfs.sh" -o "$work/l1-base.cpio.gz" -b "$dmasvc_static" -b "$fdstore_keeper" -b "$nested_l1" \
	-t "$here/10-nested-e2e" -f "$work/l2-initrd.cpio.gz=/l2/initrd.cpio.gz"
cat "$work/l1-base.cpio.gz" "$payload" ${DMASVC_NESTED_EXTRA_CPIO:+"$DMASVC_NESTED_EXTRA_CPIO"} \
	>"$work/l1-initrd.cpio.gz"
step "initramfs ready (backend $backend)"

log=${DMASVC_VM_LOG:-$work/console.log}
set +e
DMASVC_VM_MEM=2G DMASVC_VM_EDU=edu,dma_mask=0xffffffffffff DMASVC_VM_LOG=$log \
	DMASVC_VM_APPEND="nested_backend=$backend ${DMASVC_NESTED_APPEND:-}" \
	"$vm/run-guest.sh" "$l1_kernel" "$work/l1-initrd.cpio.gz" "${DMASVC_VM_TIMEOUT:-1200}"
rc=$?
set -e
grep -a -e 'nested-l1: .*phase ' -e '^nested-e2e:' -e '^nested-unplug:' "$log" | tr -d '\r' >&2 || true
step "done, rc $rc"
exit $rc
