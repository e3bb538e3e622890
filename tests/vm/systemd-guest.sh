#!/usr/bin/env bash
# tests/vm/systemd-guest.sh BUILD_DIR - meson test vm-systemd: boot Debian's systemd 252
# (the host's /lib/systemd/systemd and its libraries) as PID 1 in the tests/vm
# guest, kernel from kernel.config + systemd.config, units in systemd-guest/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1
kernel=$("$here/build-kernel.sh" --fragment "$here/systemd.config" | tail -n 1)
files=()
add() { files+=(-f "$1=$2"); }
for bin in /lib/systemd/systemd /bin/systemctl; do
	add "$bin" "$bin"
	for lib in $(ldd "$bin" | awk '/=>/{print $3} /ld-linux/{print $1}'); do add "$(readlink -f "$lib")" "$lib"; done
done
for u in "$here"/systemd-guest/*.target "$here"/systemd-guest/*.service "$here"/systemd-guest/*.socket; do
	add "$u" "/etc/systemd/system/$(basename "$u")"
done
add "$here/systemd-guest/proof-systemd.sh" /proof-systemd.sh
add /etc/os-release /etc/os-release
work=$build/systemd-guest
mkdir -p "$work"
echo -n > "$work/machine-id"
add "$work/machine-id" /etc/machine-id
"$here/build-initramfs.sh" -o "$work/initrd.cpio.gz" -b "$build/tests/vm/dmasvc-static" \
	-b "$build/tests/vm/restart-test" "${files[@]}"
export DMASVC_VM_APPEND="rdinit=/lib/systemd/systemd systemd.unit=proof.target systemd.log_target=console systemd.log_level=info systemd.show_status=1"
export DMASVC_VM_LOG=$work/console.log DMASVC_VM_MEM=1G
exec "$here/run-guest.sh" "$kernel" "$work/initrd.cpio.gz" "${DMASVC_VM_TIMEOUT:-600}"
