#!/usr/bin/env python3
"""check_prom.py FILE - check a Prometheus text exposition (format 0.0.4)
the way dmasvc promises it (docs/dmasvcctl-metrics.md); exit 1 with every
problem listed, 0 if none.

Checked: every sample belongs to a family with one HELP and one TYPE line
before its samples, and a family's samples are contiguous; metric and label
names are valid, label values correctly escaped, no series twice; values
are numbers and no sentinel (-1, 2^64-1, NaN); counters end in _total and
are >= 0, gauges do not end in _total; no non-base unit in a name (_ns,
_ms, _us, _milliseconds, _kib, ...); a histogram has, per label set,
_bucket samples with strictly increasing le ending in +Inf, cumulative
(non-decreasing) counts, _sum, and _count equal to the +Inf bucket.
"""
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"')
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)( -?\d+)?$")
BAD_UNITS = ("_ns", "_us", "_ms", "_nanoseconds", "_microseconds", "_milliseconds",
             "_minutes", "_hours", "_kib", "_mib", "_gib", "_kb", "_mb", "_gb", "_percent")
SENTINELS = (-1.0, float(2**64 - 1), float(2**63 - 1))


def parse_labels(text, errs, where):
    labels = {}
    if not text:
        return labels
    body = text[1:-1]
    pos = 0
    while pos < len(body):
        m = LABEL.match(body, pos)
        if not m:
            errs.append(f"{where}: bad labels {text}")
            return labels
        if m.group(1) in labels:
            errs.append(f"{where}: label {m.group(1)} twice")
        labels[m.group(1)] = m.group(2)
        pos = m.end()
        if pos < len(body):
            if body[pos] != ",":
                errs.append(f"{where}: bad labels {text}")
                return labels
            pos += 1
    return labels


def family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
            return name[: -len(suffix)]
    return None


def check(text):
    errs = []
    helps, types, done = {}, {}, set()
    current = None
    seen = set()
    hist = {}  # (family, labels without le) -> {"buckets": [(le, v)], "sum": v, "count": v}
    if not text.endswith("\n"):
        errs.append("the exposition does not end with a newline")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}"
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not NAME.match(parts[2]):
                errs.append(f"{where}: bad comment {line!r}")
                continue
            kind, name, rest = parts[1], parts[2], parts[3]
            table = helps if kind == "HELP" else types
            if name in table:
                errs.append(f"{where}: second {kind} for {name}")
            if name in done or (current not in (None, name) and name in helps.keys() | types.keys()):
                errs.append(f"{where}: {kind} for {name} after its samples")
            if kind == "TYPE" and rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                errs.append(f"{where}: unknown type {rest}")
            table[name] = rest
            if current and current != name:
                done.add(current)
            current = name
            continue
        if line.startswith("#") or not line:
            errs.append(f"{where}: unexpected line {line!r}")
            continue
        m = SAMPLE.match(line)
        if not m:
            errs.append(f"{where}: not a sample {line!r}")
            continue
        name, ltext, value = m.group(1), m.group(2), m.group(3)
        fam = family_of(name, types)
        if fam is None:
            errs.append(f"{where}: {name} has no TYPE line before it")
            continue
        if fam not in helps:
            errs.append(f"{where}: {fam} has no HELP line")
        if fam != current:
            errs.append(f"{where}: {name} is not next to the rest of {fam}")
        labels = parse_labels(ltext, errs, where)
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            errs.append(f"{where}: series {name}{ltext or ''} twice")
        seen.add(key)
        try:
            v = float(value)
        except ValueError:
            errs.append(f"{where}: value {value!r} is not a number")
            continue
        if math.isnan(v) or v in SENTINELS:
            errs.append(f"{where}: sentinel value {value}")
        t = types[fam]
        if t == "counter":
            if not name.endswith("_total"):
                errs.append(f"{where}: counter {name} does not end in _total")
            if v < 0:
                errs.append(f"{where}: counter {name} is negative")
        elif name.endswith("_total"):
            errs.append(f"{where}: {t} {name} ends in _total")
        for u in BAD_UNITS:
            if fam.endswith(u) or (u + "_") in fam:
                errs.append(f"{where}: {fam} uses unit {u[1:]}, not a base unit")
        if t == "histogram":
            rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            h = hist.setdefault((fam, rest), {"buckets": [], "sum": None, "count": None})
            if name.endswith("_bucket"):
                if "le" not in labels:
                    errs.append(f"{where}: bucket without le")
                    continue
                try:
                    le = float(labels["le"])
                except ValueError:
                    errs.append(f"{where}: le {labels['le']!r} is not a number")
                    continue
                h["buckets"].append((le, v, where))
            elif name.endswith("_sum"):
                h["sum"] = v
            else:
                h["count"] = v
    for (fam, rest), h in hist.items():
        b = h["buckets"]
        what = f"{fam}{dict(rest) or ''}"
        if not b or b[-1][0] != math.inf:
            errs.append(f"{what}: buckets do not end with le=\"+Inf\"")
        for (le0, v0, _), (le1, v1, w1) in zip(b, b[1:]):
            if le1 <= le0:
                errs.append(f"{w1}: {what} le not increasing ({le0} then {le1})")
            if v1 < v0:
                errs.append(f"{w1}: {what} buckets not cumulative ({v0} then {v1})")
        if h["sum"] is None:
            errs.append(f"{what}: no _sum")
        if h["count"] is None:
            errs.append(f"{what}: no _count")
        elif b and b[-1][0] == math.inf and h["count"] != b[-1][1]:
            errs.append(f"{what}: _count {h['count']} != +Inf bucket {b[-1][1]}")
    for fam in types.keys() - helps.keys():
        errs.append(f"{fam}: TYPE without HELP")
    return errs


GOOD = """# HELP a_seconds A.
# TYPE a_seconds histogram
a_seconds_bucket{le="0.001"} 1
a_seconds_bucket{le="+Inf"} 2
a_seconds_sum 0.5
a_seconds_count 2
# HELP b_total B.
# TYPE b_total counter
b_total{x="q\\"uote"} 3
"""

# Each bad exposition and a word its error must contain.
BAD = [
    ("c 1\n", "no TYPE"),
    (GOOD.replace('le="+Inf"} 2', 'le="+Inf"} 0'), "not cumulative"),
    (GOOD.replace("a_seconds_count 2", "a_seconds_count 3"), "!= +Inf"),
    (GOOD.replace('a_seconds_bucket{le="+Inf"} 2\n', ""), "+Inf"),
    (GOOD.replace("b_total{", "b_count{").replace("b_total counter", "b_count counter")
     .replace("b_total B", "b_count B"), "_total"),
    (GOOD.replace("} 3", "} -1"), "sentinel"),
    (GOOD.replace("} 3", "} 18446744073709551615"), "sentinel"),
    (GOOD + "# HELP d_ns D.\n# TYPE d_ns gauge\nd_ns 1\n", "unit"),
    (GOOD + '# HELP e E.\n# TYPE e gauge\ne 1\nb_total{x="y"} 1\n', "next to"),
    (GOOD.replace("# HELP b_total B.\n", ""), "HELP"),
    (GOOD + GOOD.split("# HELP b_total")[0], "second"),
]


def self_test():
    bad = check(GOOD)
    if bad:
        print(f"check_prom self-test: a good exposition is refused: {bad}", file=sys.stderr)
        return 1
    for text, word in BAD:
        errs = check(text)
        if not any(word in e for e in errs):
            print(f"check_prom self-test: missed {word!r} in\n{text}\ngot {errs}", file=sys.stderr)
            return 1
    print(f"check_prom self-test: 1 good, {len(BAD)} bad expositions judged right")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        errs = check(f.read())
    for e in errs:
        print(f"check_prom: {e}", file=sys.stderr)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
