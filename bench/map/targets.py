#!/usr/bin/env python3
# bench/map/targets.py - check map-bench JSON against the issue-7 targets and
# print one markdown line per check (used to write bench/RESULTS.md).
#
# Usage: targets.py MODEL.json [MODEL2.json ...] [--vm VM.json ...]
#   model files: overhead of dmasvc w1 over direct (target <= 5 %)
#   vm files:    speed-up of dmasvc w2 over direct, 1 GiB at 2 MiB (>= 1.5x)
#   all files:   unmap calls of the 4 KiB discard bursts (target 1) and
#                pinned / populated (target 1.000)
import json
import sys

model, vm, cur = [], [], None
for a in sys.argv[1:]:
    if a == "--vm":
        cur = vm
        continue
    (cur if cur is not None else model).append(a)


def rows(path):
    return [r for r in json.load(open(path))["rows"] if "scenario" in r]


def gib(b):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if b >= 2**shift:
            return "%g %s" % (b / 2**shift, unit)
    return "%d B" % b


for path in model:
    for r in rows(path):
        if r["workers"] == 1 and r["scenario"] in ("plug", "storm") and r["ratio_direct_over_path"] > 0:
            over = 1 / r["ratio_direct_over_path"] - 1
            print("- model %s %s %s at %s, %s: direct/dmasvc %.3f -> overhead %+.1f %% (target <= 5 %%): %s"
                  % (path.split("/")[-1], r["phase"], gib(r["size"]), gib(r["granule"]),
                     r["label"], r["ratio_direct_over_path"], 100 * over,
                     "met" if over <= 0.05 else "MISSED by %.1f points" % (100 * over - 5)))
for path in vm:
    for r in rows(path):
        if r["scenario"] == "plug" and r["phase"] == "plug" and r["workers"] == 2 \
                and r["granule"] == 2 * 2**20:
            ok = r["ratio_direct_over_path"] >= 1.5
            print("- vm %s plug %s at 2 MiB, %s: %.3fx of direct (target >= 1.5x): %s"
                  % (path.split("/")[-1], gib(r["size"]), r["label"],
                     r["ratio_direct_over_path"], "met" if ok else "MISSED"))
for path in model + vm:
    for r in rows(path):
        if r["scenario"] == "burst" and r["path"] != "direct":
            pages = r["pages_discarded"]
            print("- %s burst of %d pages, %s: %d unmap calls (range %d-%d; direct %d; target 1): %s"
                  % (path.split("/")[-1], pages, r["label"], r["unmap_calls"],
                     r["unmap_calls_min"], r["unmap_calls_max"], pages,
                     "met" if r["unmap_calls_max"] == 1 else "MISSED"))
    bad = [r for r in rows(path) if r["populated_bytes"] > 0
           and abs(r["pinned_over_populated"] - 1) > 0.0005]
    zero = [r for r in rows(path) if r["populated_bytes"] == 0 and r["pinned_bytes"] != 0]
    n = len([r for r in rows(path) if r["populated_bytes"] > 0])
    print("- %s pinned/populated: %d rows with populated > 0, %d off 1.000%s; %d rows left pins after a full discard"
          % (path.split("/")[-1], n, len(bad),
             "" if not bad else " (" + ", ".join("%s %s %.3f" % (r["phase"], r["label"], r["pinned_over_populated"]) for r in bad) + ")",
             len(zero)))
