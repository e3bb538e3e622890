#!/usr/bin/env python3
# bench/map/targets.py - check map-bench JSON against the issue-7 targets and
# print markdown tables (used by results-md.sh for bench/RESULTS.md).
#
# Usage: targets.py MODEL.json [MODEL2.json ...] [--vm VM.json ...]
#   model files: overhead of dmasvc with 1 worker over direct (target <= 5 %)
#   vm files:    speed-up of dmasvc w2 over direct at 2 MiB (target >= 1.5x
#                for 1 GiB)
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


def sz(b):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if b >= 2**shift:
            return "%g %s" % (b / 2**shift, unit)
    return "%d B" % b


def key(r):
    return "%s %s at %s" % (r["phase"], sz(r["size"]), sz(r["granule"]))


def name(p):
    return p.split("/")[-1]


if model:
    print("Overhead of dmasvc with 1 worker over direct, model (target <= 5 %; "
          "overhead = 1/ratio - 1, negative = faster than direct):\n")
    print("| run | phase | ring w1 ratio | ring w1 overhead | engine w1 ratio | target (ring w1) |")
    print("|---|---|---|---|---|---|")
    for path in model:
        rs = rows(path)
        for k in dict.fromkeys(key(r) for r in rs if r["scenario"] in ("plug", "storm")):
            ring = [r for r in rs if key(r) == k and r["label"] == "dmasvc ring w1"]
            eng = [r for r in rs if key(r) == k and r["label"] == "dmasvc engine w1"]
            if not ring:
                continue
            ratio = ring[0]["ratio_direct_over_path"]
            over = 100 * (1 / ratio - 1) if ratio > 0 else float("nan")
            print("| %s | %s | %.3f | %+.1f %% | %s | %s |"
                  % (name(path), k, ratio, over,
                     "%.3f" % eng[0]["ratio_direct_over_path"] if eng else "-",
                     "met" if over <= 5 else "missed by %.1f points" % (over - 5)))
    print()
if vm:
    print("dmasvc against direct on real iommufd, plug at 2 MiB granules: ratio direct/dmasvc "
          "(target: >= 1.5x with 2 workers at 1 GiB):\n")
    labels = ["dmasvc %s w%d" % (p, w) for p in ("engine", "ring") for w in (1, 2, 4)]
    print("| run | plug | " + " | ".join(l.replace("dmasvc ", "") for l in labels) + " | target (ring w2, 1 GiB) |")
    print("|---|---|" + "---|" * len(labels) + "---|")
    for path in vm:
        rs = [r for r in rows(path) if r["scenario"] == "plug" and r["phase"] == "plug"
              and r["granule"] == 2 * 2**20]
        for size in sorted({r["size"] for r in rs}):
            cells = []
            for l in labels:
                x = [r for r in rs if r["size"] == size and r["label"] == l]
                cells.append("%.3fx" % x[0]["ratio_direct_over_path"] if x else "-")
            w2 = [r for r in rs if r["size"] == size and r["label"] == "dmasvc ring w2"]
            verdict = "-"
            if size == 2**30 and w2:
                v = w2[0]["ratio_direct_over_path"]
                verdict = "met" if v >= 1.5 else "missed by %.2fx" % (1.5 - v)
            print("| %s | %s | %s | %s |" % (name(path), sz(size), " | ".join(cells), verdict))
    print()
print("Unmap calls for N contiguous 4 KiB pages discarded page by page in one batch "
      "(median, min-max over repetitions; target 1):\n")
print("| run | pages | direct | dmasvc path | unmap calls (range) |")
print("|---|---|---|---|---|")
for path in model + vm:
    for r in rows(path):
        if r["scenario"] != "burst" or r["path"] in ("direct", "kernel"):
            continue
        lo = r.get("unmap_calls_min", r["unmap_calls"])
        hi = r.get("unmap_calls_max", r["unmap_calls"])
        print("| %s | %d | %d | %s | %d%s |" % (name(path), r["pages_discarded"], r["pages_discarded"],
                                            r["label"], r["unmap_calls"],
                                            "" if lo == hi else " (%d-%d)" % (lo, hi)))
print()
for path in model + vm:
    rs = rows(path)
    bad = [r for r in rs if r["populated_bytes"] > 0 and abs(r["pinned_over_populated"] - 1) > 0.0005]
    left = [r for r in rs if r["populated_bytes"] == 0 and r["pinned_bytes"] != 0]
    n = len([r for r in rs if r["populated_bytes"] > 0])
    print("- %s: pinned/populated is 1.000 in %d of %d rows with memory populated%s; "
          "%d rows left pins after everything was discarded"
          % (name(path), n - len(bad), n,
             "" if not bad else " (off: " + ", ".join("%s %s %.3f" % (key(r), r["label"], r["pinned_over_populated"]) for r in bad) + ")",
             len(left)))
