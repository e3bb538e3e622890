#!/usr/bin/env bash
# bench/map/plot.sh - the map-bench populate plot: plug (populate) wall
# time against plug size, direct and every dmasvc target, one panel per
# (run, granule).  Reads map-bench JSON (--json or --json-file output).
#
# Usage: plot.sh OUT.png TITLE1 RUN1.json [TITLE2 RUN2.json]
# Needs python3 (JSON -> columns) and gnuplot (gnuplot-nox).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: plot.sh OUT.png TITLE RUN.json [TITLE RUN.json]}
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

panels=()
n=0
while [ $# -ge 2 ]; do
	title=$1 json=$2
	shift 2
	for gran in 2097152 134217728; do
		dat=$work/p$n-$gran.dat
		python3 - "$json" "$gran" "$dat" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
gran = int(sys.argv[2])
rows = [r for r in doc["rows"] if r.get("scenario") == "plug"
        and r.get("phase") == "plug" and r.get("granule") == gran]
labels = []
for r in rows:
    if r["label"] not in labels:
        labels.append(r["label"])
sizes = sorted({r["size"] for r in rows})
with open(sys.argv[3], "w") as f:
    f.write("size_GiB " + " ".join('"%s"' % l for l in labels) + "\n")
    for s in sizes:
        vals = []
        for l in labels:
            v = [r["wall_ms"] / 1000 for r in rows if r["size"] == s and r["label"] == l]
            vals.append("%.4f" % v[0] if v else "NaN")
        f.write("%.4f %s\n" % (s / 2**30, " ".join(vals)))

PY
		panels+=("$dat|$title, $((gran / 1048576)) MiB granules")
	done
	n=$((n + 1))
done

rows=$(( (${#panels[@]} + 1) / 2 ))
{
	echo "set terminal pngcairo size 1200,$((420 * rows)) font ',10'"
	echo "set output '$out'"
	echo "set multiplot layout $rows,2"
	echo "load '$here/../plots/map-populate.gp'"
	for p in "${panels[@]}"; do
		dat=${p%%|*} t=${p#*|}
		cols=$(head -1 "$dat" | grep -o '"[^"]*"' | wc -l)
		echo "set title '$t'"
		echo "plot for [i=2:$((cols + 1))] '$dat' using 1:i with linespoints title columnheader(i)"
	done
	echo "unset multiplot"
} >"$work/plot.gp"
gnuplot "$work/plot.gp"
echo "plot.sh: $out" >&2
