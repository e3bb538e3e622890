#!/usr/bin/env bash
# bench/map/check-build.sh - refuse to time a build whose daemon is not
# the one an operator runs.
#
# Usage: check-build.sh BUILD_DIR
# Exits 0 if BUILD_DIR (a configured meson build) has -Ddebug_checks=false
# and no sanitizer, else prints why and how to configure a bench build and
# exits 1.  The debug checks (DMASVC_DEBUG) re-count a whole bitmap leaf
# (512 words) after every stage of every burst: 0.6-0.9 us a lone event on
# the model host, about 20 us under TCG in the tests/vm guest, where a
# synchronous 4 KiB conversion costs the kernel 13-70 us (bench/RESULTS.md,
# "issue 16, Dec 7 (fourteenth pass)").  run-host.sh and run-vm.sh call it.
set -euo pipefail

build=${1:?usage: check-build.sh BUILD_DIR}
opts=$build/meson-info/intro-buildoptions.json
[ -r "$opts" ] || { echo "check-build: $build is not a configured meson build ($opts missing)" >&2; exit 1; }
why=$(python3 - "$opts" <<'PY'
import json, sys
o = {x["name"]: x["value"] for x in json.load(open(sys.argv[1]))}
bad = []
if o.get("debug_checks"):
    bad.append("-Ddebug_checks=true (the planner's self-checks run on every burst)")
if o.get("b_sanitize", "none") != "none":
    bad.append("-Db_sanitize=%s" % o["b_sanitize"])
print("; ".join(bad))
PY
)
if [ -n "$why" ]; then
	echo "check-build: $build is not a build to time: $why." >&2
	echo "check-build: configure one (the guest binaries need the test tree):" >&2
	echo "  meson setup build/bench --buildtype=release -Dtests=enabled -Dfault_injection=true -Ddebug_checks=false" >&2
	echo "  ninja -C build/bench bench/map/map-bench bench/map/map-bench-static dmasvc/dmasvc tests/vm/dmasvc-static" >&2
	exit 1
fi
