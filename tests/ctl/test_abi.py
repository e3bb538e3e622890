#!/usr/bin/env python3
"""test_abi.py - libdmasvc's ABI as installed.

  symbols NM SO HEADER MAP MANPAGE
      The shared library's exported symbols (nm -D --defined-only) are
      exactly the functions dmasvc.h declares, each at the version node the
      version script lists it in by name (DMASVC_0.1, or a later node for a
      function added after a release; no glob in global:),
      and libdmasvc(3) names each.
  headers CC [CXX] -- HEADER...
      The installed headers, laid out as installed (include/dmasvc/), compile
      alone and together with -pedantic -Wall -Wextra -Werror as C99, C11
      and C17 (and C++11/C++17 when a C++ compiler is given).
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile


def declared(header):
    with open(header, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"^\s*#[^\n]*", "", text, flags=re.M)
    return set(re.findall(r"\b(dmasvc_[a-z0-9_]+)\s*\(", text))


def mapped(mapfile):
    """Every name the version script exports, with its node: {name: node}.
    The first node has global: and local:; later nodes (functions added
    after a release) have global: only and inherit the first."""
    with open(mapfile, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    nodes = re.findall(r"(DMASVC_[0-9.]+)\s*\{(.*?)\}\s*(?:DMASVC_[0-9.]+)?\s*;", text, re.S)
    if not nodes or "local:" not in nodes[0][1]:
        sys.exit(f"FAIL: {mapfile}: no node with global:/local: sections")
    out = {}
    for node, body in nodes:
        m = re.search(r"global:(.*?)(?:local:|$)", body, re.S)
        if not m:
            sys.exit(f"FAIL: {mapfile}: node {node} has no global: section")
        names = [n.strip() for n in m.group(1).split(";") if n.strip()]
        globs = [n for n in names if re.search(r"[*?\[]", n)]
        if globs:
            sys.exit(f"FAIL: {mapfile}: global: has patterns {globs}, not names")
        for n in names:
            if n in out:
                sys.exit(f"FAIL: {mapfile}: {n} in two nodes")
            out[n] = node
    return out


def symbols(args):
    nm, so, header, mapfile, man = args
    errs = []
    out = subprocess.run([nm, "-D", "--defined-only", so], capture_output=True, text=True,
                         check=True).stdout
    exported, versions = set(), {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, sym = parts[1], parts[2]
        if kind == "A" and not "@" in sym:
            continue  # the version node itself
        name, _, ver = sym.partition("@@")
        exported.add(name)
        versions[name] = ver
        if kind not in ("T", "t"):
            errs.append(f"{name}: exported as {kind}, not a function")
    decl = declared(header)
    for n in sorted(exported - decl):
        errs.append(f"{n}: exported by the .so, not declared in dmasvc.h")
    for n in sorted(decl - exported):
        errs.append(f"{n}: declared in dmasvc.h, not exported by the .so")
    mp = mapped(mapfile)
    for n in sorted(exported):
        want = mp.get(n, "DMASVC_0.1")
        if versions.get(n) != want:
            errs.append(f"{n}: version {versions.get(n)!r}, want {want} (the map's node)")
    for n in sorted(set(mp) ^ decl):
        errs.append(f"{n}: in {'the map only' if n in mp else 'dmasvc.h only'}")
    with open(man, encoding="utf-8") as f:
        page = f.read()
    for n in sorted(decl):
        if not re.search(r"\b%s\b" % n, page):
            errs.append(f"{n}: not in libdmasvc(3)")
    if errs:
        sys.exit("FAIL:\n" + "\n".join(errs))
    print(f"{len(exported)} symbols exported = declared = mapped = documented")


def headers(args):
    sep = args.index("--")
    compilers, hdrs = args[:sep], args[sep + 1:]
    cc = shlex.split(compilers[0])
    cxx = shlex.split(compilers[1]) if len(compilers) > 1 and compilers[1] else None
    tmp = tempfile.mkdtemp(prefix="dmasvc-headers.")
    errs, runs = [], 0
    try:
        inc = os.path.join(tmp, "include", "dmasvc")
        os.makedirs(inc)
        for h in hdrs:
            shutil.copy(h, inc)
        units = {}
        for h in hdrs:  # each alone, first in its unit
            units[f"alone-{os.path.basename(h)}"] = f"#include <dmasvc/{os.path.basename(h)}>\n"
        units["all"] = "".join(f"#include <dmasvc/{os.path.basename(h)}>\n" for h in hdrs)
        jobs = [(cc, "c", s) for s in ("c99", "c11", "c17")]
        if cxx:
            jobs += [(cxx, "c++", s) for s in ("c++11", "c++17")]
        for name, body in units.items():
            src = os.path.join(tmp, name + ".c")
            with open(src, "w", encoding="utf-8") as f:
                f.write(body + "int main(void) { return 0; }\n")
            for comp, lang, std in jobs:
                cmd = comp + ["-x", lang, f"-std={std}", "-pedantic", "-Wall", "-Wextra", "-Werror",
                              "-fsyntax-only", "-I", os.path.join(tmp, "include"), src]
                r = subprocess.run(cmd, capture_output=True, text=True)
                runs += 1
                if r.returncode != 0:
                    errs.append(f"{name} as {std}: {' '.join(cmd)}\n{r.stderr}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if errs:
        sys.exit("FAIL:\n" + "\n".join(errs))
    print(f"{len(hdrs)} headers: {runs} compilations with -pedantic -Werror clean")


if __name__ == "__main__":
    if sys.argv[1:2] == ["symbols"] and len(sys.argv) == 7:
        symbols(sys.argv[2:])
    elif sys.argv[1:2] == ["headers"] and "--" in sys.argv:
        headers(sys.argv[2:])
    else:
        sys.exit(__doc__)
