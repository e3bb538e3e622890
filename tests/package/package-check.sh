#!/usr/bin/env bash
# tests/package: the Debian packages, built and used as an operator would.
#
#   1. dpkg-buildpackage -b -uc -us on a copy of the source tree (no build
#      dirs), in a private temporary directory;
#   2. lintian on the result: any error (E:) fails the test;
#   3. apt-get install of dmasvc, libdmasvc0 and libdmasvc-dev on this
#      machine; every file the test uses from here on is an installed one;
#   4. dmasvc --version and dmasvcctl --version; pkg-config finds libdmasvc;
#      a program built against the installed headers (C99 -pedantic) and
#      library links and runs;
#   5. systemd-analyze verify on the installed units;
#   6. a socket like the installed dmasvc.socket's ListenSequentialPacket=,
#      at a private path, activated with
#      systemd-socket-activate, running the installed unit's ExecStart with
#      a test configuration (software model, no /dev/iommu here), and the
#      installed dmasvcctl answers through it;
#   7. the packages are purged again (also on failure).
#
# Usage: package-check.sh SOURCE_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/dmasvc-pkg.XXXXXX)
pkgs=(dmasvc libdmasvc0 libdmasvc-dev)
installed=0
act_pid=

log() { echo "package: $*"; }
die() { echo "package: FAIL: $*" >&2; exit 1; }
cleanup() {
	[ -n "$act_pid" ] && kill "$act_pid" 2>/dev/null && wait "$act_pid" 2>/dev/null
	if [ $installed = 1 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${pkgs[@]}" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

for t in dpkg-buildpackage lintian systemd-analyze systemd-socket-activate; do
	command -v "$t" >/dev/null || die "$t missing (scripts/setup --package installs it)"
done
for p in "${pkgs[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		die "$p is already installed on this machine: this test installs and purges it, remove it first"
	fi
done

# 1. Build from a copy: dpkg-buildpackage writes into the tree and its parent.
log "copying the source tree to $work/dmasvc"
mkdir "$work/dmasvc"
tar -C "$src" --exclude='./build*' --exclude=./.git --exclude='./obj-*' \
	--exclude=./debian/tmp -cf - . | tar -C "$work/dmasvc" -xf -
log "dpkg-buildpackage -b -uc -us"
(cd "$work/dmasvc" && dpkg-buildpackage -b -uc -us >"$work/build.log" 2>&1) ||
	{ tail -40 "$work/build.log" >&2; die "dpkg-buildpackage failed"; }
changes=$(ls "$work"/dmasvc_*_*.changes)
for p in "${pkgs[@]}"; do
	ls "$work/${p}"_*.deb >/dev/null 2>&1 || die "no ${p} package was built"
done
log "built: $(cd "$work" && ls *.deb | tr '\n' ' ')"

# 2. lintian: errors fail, warnings are shown.
lintian --allow-root --no-tag-display-limit "$changes" >"$work/lintian.log" 2>&1 || true
cat "$work/lintian.log"
if grep -q '^E: ' "$work/lintian.log"; then
	die "lintian reports errors"
fi
log "lintian: $(grep -c '^W: ' "$work/lintian.log" || true) warnings, no errors"

# 3. Install.
log "apt-get install ./${pkgs[*]}"
installed=1
(cd "$work" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	"$(ls ./dmasvc_*.deb)" "$(ls ./libdmasvc0_*.deb)" "$(ls ./libdmasvc-dev_*.deb)" \
	>"$work/install.log" 2>&1) || { cat "$work/install.log" >&2; die "install failed"; }

# 4. The installed binaries, library and headers.
dmasvc_bin=$(dpkg -L dmasvc | grep -E '/s?bin/dmasvc$')
ctl_bin=$(dpkg -L dmasvc | grep -E '/s?bin/dmasvcctl$')
v1=$("$dmasvc_bin" --version) || die "$dmasvc_bin --version failed"
v2=$("$ctl_bin" --version) || die "$ctl_bin --version failed"
log "$dmasvc_bin --version: $v1"
log "$ctl_bin --version: $v2"
pcv=$(pkg-config --modversion libdmasvc) || die "pkg-config does not find libdmasvc"
log "pkg-config libdmasvc: $pcv"
cat >"$work/user.c" <<'C'
#include <dmasvc/dmasvc.h>
#include <stdio.h>
int main(void)
{
	/* no service at this path: a clean error, not a crash */
	struct dmasvc_client *c = NULL;
	int ret = dmasvc_connect("/nonexistent/dmasvc.sock", NULL, &c);

	printf("dmasvc_connect: %d\n", ret);
	return ret < 0 ? 0 : 1;
}
C
# shellcheck disable=SC2046
cc -std=c99 -pedantic -Wall -Wextra -Werror -o "$work/user" "$work/user.c" \
	$(pkg-config --cflags --libs libdmasvc) || die "a C99 program does not build against the installed libdmasvc"
"$work/user" || die "the program linked against the installed libdmasvc failed"

# 5. The installed units.
unit_dir=$(dirname "$(dpkg -L dmasvc | grep -E '/dmasvc\.socket$')")
[ -f "$unit_dir/dmasvc.service" ] || die "dmasvc.service not installed beside dmasvc.socket"
systemd-analyze verify "$unit_dir/dmasvc.socket" "$unit_dir/dmasvc.service" ||
	die "systemd-analyze verify reports the installed units"
log "systemd-analyze verify: $unit_dir/dmasvc.{socket,service} clean"

# 6. Socket activation through the installed unit's own lines.
listen=$(sed -n 's/^ListenSequentialPacket=//p' "$unit_dir/dmasvc.socket" | head -n 1)
exec_start=$(sed -n 's/^ExecStart=//p' "$unit_dir/dmasvc.service" | head -n 1)
[ -n "$listen" ] && [ -n "$exec_start" ] || die "ListenSequentialPacket= or ExecStart= not found in the units"
sock="$work/run/dmasvc.sock"
mkdir -p "$work/run"
cat >"$work/dmasvc.conf" <<CONF
# test configuration: the software model (this machine has no /dev/iommu)
soft-iommu = true
socket = $sock
CONF
# ExecStart's words, plus the test configuration (a later --config wins).
read -r -a cmd <<<"$exec_start"
log "activating: systemd-socket-activate --seqpacket -l $sock ${cmd[*]} --config $work/dmasvc.conf (unit listens on $listen)"
systemd-socket-activate --seqpacket -l "$sock" "${cmd[@]}" --config "$work/dmasvc.conf" \
	>"$work/activate.log" 2>&1 &
act_pid=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || die "systemd-socket-activate did not listen on $sock"
out=$("$ctl_bin" --socket "$sock" status --json) || { cat "$work/activate.log" >&2; die "dmasvcctl status through the activated socket failed"; }
echo "$out" | python3 -m json.tool >/dev/null || die "dmasvcctl status --json is not JSON: $out"
grep -qi 'activat' "$work/activate.log" || { cat "$work/activate.log" >&2; die "the service did not report socket activation"; }
log "dmasvcctl status --json through the activated socket: $(echo "$out" | head -c 200)"
kill "$act_pid"; wait "$act_pid" 2>/dev/null || true; act_pid=

log "ok"
