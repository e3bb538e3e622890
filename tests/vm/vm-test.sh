#!/usr/bin/env bash
# tests/vm/vm-test.sh - the vm tier end to end, as one meson test:
# build (or reuse) the guest kernel, pack the initramfs with the static
# guest binaries given as arguments and every script in guest/tests/, boot
# it under TCG and accept only the guest's PASS line.  Shell helpers in
# guest/bin/ go to the guest's /bin.
#
# Usage: vm-test.sh STATIC_BINARY...
# Environment: DMASVC_VM_TIMEOUT (guest time limit, default 900 s),
#   DMASVC_VM_LOG (console log path; default under the build directory).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=${MESON_BUILD_ROOT:-$PWD}/vm-work
mkdir -p "$work"

kernel=$("$here/build-kernel.sh" | tail -n 1)
[ -s "$kernel" ] || { echo "vm-test: no kernel image" >&2; exit 1; }

args=()
for b in "$@"; do args+=(-b "$b"); done
for h in "$here"/guest/bin/*; do args+=(-s "$h"); done
for t in "$here"/guest/tests/*; do args+=(-t "$t"); done
"$here/build-initramfs.sh" -o "$work/initrd.cpio.gz" "${args[@]}"

export DMASVC_VM_LOG=${DMASVC_VM_LOG:-$work/console.log}
# A second edu in its own group (guest/tests/55-daemon-valid-type1).
export DMASVC_VM_EDU2=${DMASVC_VM_EDU2-edu}
exec "$here/run-guest.sh" "$kernel" "$work/initrd.cpio.gz" "${DMASVC_VM_TIMEOUT:-900}"
