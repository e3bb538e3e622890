#!/bin/sh
# Runs as proof.service under systemd 252 (PID 1): bind edu, then the
# crash-restart proof (restart-test crash) with systemd as the fd store
# and Restart=on-failure: a shim turns restart-test's keeper interface
# (tests/vm/fdstore-keeper.c: a ctl FIFO, a state file) into systemctl.
export PATH=/bin:/sbin
echo "proof-systemd: $(systemctl --version | head -n 1)"
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
show() { systemctl show -p "$1" --value dmasvc.service; }
echo "proof-systemd: started: MainPID $(show MainPID), fd store $(show NFileDescriptorStore)"

# The shim: state every ~100 ms, "kill" -> systemctl kill -s KILL.
dir=/run/proof.keeper
mkdir -p $dir
mkfifo $dir/ctl
(
	exec 3<>$dir/ctl
	last=0 ready=0 lastfds=
	while :; do
		if read -t 0.1 cmd <&3; then
			[ "$cmd" = kill ] && systemctl kill -s KILL dmasvc.service
		fi
		pid=$(show MainPID) st=$(show ActiveState) nr=$(show NRestarts) fds=$(show NFileDescriptorStore)
		[ "$st" = active ] || pid=0
		if [ "$pid" != 0 ] && [ "$pid" != "$last" ]; then ready=$((ready + 1)); last=$pid; fi
		if [ "$fds" != "$lastfds" ]; then
			echo "proof-systemd: NFileDescriptorStore=$fds (MainPID $pid, NRestarts $nr)"
			lastfds=$fds
		fi
		printf 'pid %s\nstarts %s\nready %s\nfds %s\n' "$pid" $((nr + 1)) $ready "$fds" >$dir/state.tmp
		mv $dir/state.tmp $dir/state
	done
) &
shim=$!
while ! grep -q '^ready 1' $dir/state 2>/dev/null; do usleep 100000; done
restart-test crash /run/dmasvc.sock $dir
rc=$?
kill $shim
echo "proof-systemd: after: MainPID $(show MainPID), NRestarts $(show NRestarts), fd store $(show NFileDescriptorStore)"
echo "--- dmasvc log"
cat /run/dmasvc.log
[ $rc = 0 ] || finish "FAIL restart-test crash under systemd rc=$rc"
finish "PASS n=1 restart-test crash under systemd 252"
