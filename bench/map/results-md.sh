#!/usr/bin/env bash
# bench/map/results-md.sh - the generated part of bench/RESULTS.md
# "## map-bench": the target checks (targets.py), the populate plot and
# every table, from one directory of runs (run-host.sh + run-vm.sh output).
# It replaces the text between the two map-bench:generated markers of
# RESULTS.md in place and leaves everything else of the file alone.
#
# Usage: results-md.sh RUN_DIR RESULTS.md
#   RUN_DIR holds host-A, host-B, host-C and vm (.txt and .json each;
#   a missing one is left out) and vm.guest.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: results-md.sh RUN_DIR RESULTS.md}
md=${2:?usage: results-md.sh RUN_DIR RESULTS.md}
png_rel=plots/map-populate.png
png=$(dirname "$md")/$png_rel

host_json=() plot_args=()
for r in A B C; do
	[ -s "$dir/host-$r.json" ] && host_json+=("$dir/host-$r.json")
done
vm_json=()
[ -s "$dir/vm.json" ] && vm_json=(--vm "$dir/vm.json")
# The plot: host A and B together (1, 4, 16 GiB), and the guest.
if [ -s "$dir/host-A.json" ]; then
	python3 - "$dir" <<'PY'
import json, os, sys
d = sys.argv[1]
rows, machine = [], None
for r in ("A", "B"):
    p = os.path.join(d, "host-%s.json" % r)
    if os.path.exists(p):
        doc = json.load(open(p))
        machine = machine or doc["machine"]
        rows += [x for x in doc["rows"] if "scenario" in x and x["path"] != "engine"]
json.dump({"machine": machine, "rows": rows}, open(os.path.join(d, "host-AB.json"), "w"))
PY
	plot_args+=("model (host), direct vs dmasvc ring" "$dir/host-AB.json")
fi
[ -s "$dir/vm.json" ] && plot_args+=("real iommufd (TCG guest), direct vs dmasvc engine and ring" "$dir/vm.json")
"$here/plot.sh" "$png" "${plot_args[@]}" 2>/dev/null

gen=$(mktemp)
trap 'rm -f "$gen"' EXIT
{
	echo "<!-- map-bench:generated:begin (bench/map/results-md.sh; do not edit by hand) -->"
	echo
	echo "### Targets (bench/map/targets.py on these runs)"
	echo
	python3 "$here/targets.py" "${host_json[@]}" "${vm_json[@]}"
	echo
	echo "### Populate time against size"
	echo
	echo "![populate wall time against plug size]($png_rel)"
	echo
	for r in A B C; do
		[ -s "$dir/host-$r.txt" ] || continue
		echo "### Host, software model: run $r"
		echo
		echo '```'
		cat "$dir/host-$r.txt"
		echo '```'
		echo
	done
	if [ -s "$dir/vm.txt" ]; then
		echo "### Guest, real iommufd with edu attached (TCG, 2 vCPUs)"
		echo
		echo '```'
		cat "$dir/vm.guest.txt" 2>/dev/null || true
		echo
		cat "$dir/vm.txt"
		echo '```'
		echo
	fi
	echo "<!-- map-bench:generated:end -->"
} >"$gen"
python3 - "$md" "$gen" <<'PY'
import sys
md, gen = sys.argv[1], open(sys.argv[2]).read()
s = open(md).read()
b = s.index("<!-- map-bench:generated:begin")
e = s.index("<!-- map-bench:generated:end -->") + len("<!-- map-bench:generated:end -->")
open(md, "w").write(s[:b] + gen.rstrip("\n") + s[e:])
PY
echo "results-md: $md updated, plot $png" >&2
