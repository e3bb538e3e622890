#!/usr/bin/env bash
# bench/map/run-host.sh - the host (software model) runs behind
# bench/RESULTS.md "## map-bench", one after the other:
#   A  plug/unplug 1 and 4 GiB, direct vs dmasvc ring and engine and the
#      kernel rows (t1, t2), 5 reps
#   B  plug/unplug 16 GiB, direct vs dmasvc ring, 3 reps (skipped by
#      map-bench itself when MemAvailable is short)
#   C  storm and discard bursts, direct vs ring, engine and kernel, 5 reps
#
# Usage: run-host.sh BUILD_DIR OUT_DIR [EXTRA MAP-BENCH ARG]...
# BUILD_DIR: a build without debug checks or sanitizers (check-build.sh).
# Writes OUT_DIR/host-{A,B,C}.txt (tables) and .json.
# MAPBENCH_RUNS="A C" runs only those.
set -euo pipefail

build=${1:?usage: run-host.sh BUILD_DIR OUT_DIR [ARG]...}
out=${2:?usage: run-host.sh BUILD_DIR OUT_DIR [ARG]...}
shift 2
bench=$build/bench/map/map-bench
"$(dirname "$0")/check-build.sh" "$build"
[ -x "$bench" ] || { echo "run-host: $bench missing" >&2; exit 1; }
mkdir -p "$out"

run() {
	local name=$1
	shift
	echo "run-host: $name: map-bench $*" >&2
	"$bench" --json-file "$out/host-$name.json" "$@" "${extra[@]}" | tee "$out/host-$name.txt"
}
extra=("$@")
for r in ${MAPBENCH_RUNS:-A B C}; do
	case $r in
	A) run A --scenarios plug --sizes 1G,4G --paths ring,engine,kernel --reps 5 ;;
	B) run B --scenarios plug --sizes 16G --paths ring --reps 3 ;;
	C) run C --scenarios storm,burst --paths ring,engine,kernel --reps 5 ;;
	*) echo "run-host: unknown run $r" >&2; exit 2 ;;
	esac
done
