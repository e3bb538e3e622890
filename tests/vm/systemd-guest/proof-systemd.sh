#!/bin/sh
# Runs as proof.service under systemd 252 (PID 1): bind edu, then the
# crash-restart proof with systemd as the fd store (systemd-keeper-shim).
export PATH=/bin:/sbin
echo "proof-systemd: systemd $(systemctl --version | head -n 1)"
finish() { echo "DMASVC-VM-RESULT: $*"; sync; poweroff -f; }
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
		EDU_BDF=$(basename "$d"); break
	fi
done
[ -n "$EDU_BDF" ] || finish "FAIL no edu"
dev=/sys/bus/pci/devices/$EDU_BDF
echo vfio-pci >"$dev/driver_override"
echo "$EDU_BDF" >/sys/bus/pci/drivers/vfio-pci/bind || finish "FAIL bind"
for c in "$dev"/vfio-dev/vfio*; do EDU_CDEV=/dev/vfio/devices/$(basename "$c"); done
export EDU_BDF EDU_CDEV
systemctl start dmasvc.service || finish "FAIL systemctl start dmasvc"
systemctl show -p MainPID,NRestarts,NFileDescriptorStore dmasvc.service
finish "PASS n=0 systemd booted and started dmasvc"
