#!/usr/bin/python3
"""Sum Criterion's synthesis lines over meson test logs.

Reads meson-logs/testlog.json files (one JSON object per test), takes each
test's Criterion line ``[====] Synthesis: Tested: N | Passing: N | Failing: N
| Crashing: N`` from its output, counts a test without one (a shell or
standalone test) as one test that passed or failed by its meson result, and
prints one summed synthesis line.  Exits 1 if anything failed or if no test
ran at all.
"""
import json
import re
import sys

LINE = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")


def main(paths):
    tested = passing = failing = crashing = 0
    per_suite = {}
    for path in paths:
        with open(path) as f:
            for raw in f:
                raw = raw.strip()
                if not raw:
                    continue
                t = json.loads(raw)
                out = (t.get("stdout") or "") + (t.get("stderr") or "")
                m = LINE.findall(out)
                ok = t.get("result") in ("OK", "EXPECTEDFAIL")
                if m:
                    n, p, fl, c = (int(x) for x in m[-1])
                    if not ok and fl == 0 and c == 0:
                        fl = 1  # e.g. a sanitizer report after Criterion finished
                else:
                    n, p, fl, c = 1, int(ok), int(not ok), 0
                tested += n
                passing += p
                failing += fl
                crashing += c
                suite = ",".join(t.get("suite") or ["?"])
                s = per_suite.setdefault(suite, [0, 0])
                s[0] += n
                s[1] += p
    for suite, (n, p) in sorted(per_suite.items()):
        print(f"  {suite:<40} {p}/{n} passing")
    print(f"[====] Synthesis: Tested: {tested} | Passing: {passing} | Failing: {failing} | Crashing: {crashing}")
    return 0 if tested > 0 and failing == 0 and crashing == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
