#!/bin/sh
# tests/vm/test-keeper.sh KEEPER DUMMY - host test of fdstore-keeper with
# keeper-dummy (both built for the host; the dummy speaks sd_static.c's
# protocol): socket passed first as "dmasvc.socket" with LISTEN_PID = the child,
# FDSTORE=1 kept across a SIGKILL and handed back by name, a second start
# sees the same memfd (its counter goes 1, 2, 3), FDSTOREREMOVE=1 drops it,
# exit 0 after SIGTERM is not restarted, "start" and "quit" work.
set -u
keeper=$(realpath "$1")
dummy=$(realpath "$2")
dir=$(mktemp -d)
trap 'kill $kpid 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "test-keeper: FAIL $*"; echo "--- keeper log"; cat "$dir/keeper.log"; echo "--- report"; cat "$dir/report" 2>/dev/null; exit 1; }
# wait_for FILE PATTERN: up to 10 s
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 200 ] || fail "no '$2' in $1"
		sleep 0.05
	done
}
"$keeper" --socket "$dir/s.sock" --ctl "$dir/ctl" --state "$dir/state" -- \
	"$dummy" "$dir/report" "$dir/s.sock" 2>"$dir/keeper.log" &
kpid=$!
wait_for "$dir/report" 'counter=1'
grep -q 'start pid=[0-9]* fds=1 names=dmasvc.socket counter=1 sock=1' "$dir/report" || fail "first start"
wait_for "$dir/state" '^fd dummy-mem'
grep -q '^ready 1' "$dir/state" || fail "READY=1 not counted"
pid1=$(sed -n 's/^pid //p' "$dir/state")
echo kill >"$dir/ctl"
wait_for "$dir/report" 'counter=2'
grep -q 'fds=2 names=dmasvc.socket:dummy-mem counter=2 sock=1' "$dir/report" || fail "restart without the stored fd"
wait_for "$dir/state" '^starts 2'
pid2=$(sed -n 's/^pid //p' "$dir/state")
[ "$pid1" != "$pid2" ] || fail "same pid after a restart"
grep -q '^exit signal 9' "$dir/state" || fail "the kill is not recorded"
kill -KILL "$pid2"
wait_for "$dir/report" 'counter=3'
wait_for "$dir/state" '^fds 0'
echo term >"$dir/ctl"
wait_for "$dir/state" '^exit code 0'
sleep 0.3
grep -q '^starts 3' "$dir/state" || fail "restarted after exit 0"
grep -q '^pid 0' "$dir/state" || fail "a daemon runs after exit 0"
echo start >"$dir/ctl"
wait_for "$dir/report" 'fds=1 names=dmasvc.socket counter=1'
echo quit >"$dir/ctl"
wait $kpid || fail "keeper exit status $?"
grep -q 'quit: daemon gone' "$dir/keeper.log" || fail "no quit line"
echo "test-keeper: PASS ($(wc -l <"$dir/report") starts)"
