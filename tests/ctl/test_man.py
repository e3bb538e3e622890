#!/usr/bin/env python3
"""test_man.py - the man pages built from man/*.scd: each is roff that
man(1) renders without a warning, and they stay true to the binaries:
every long option of `dmasvc --help` is described in dmasvc(8) and is a key
in dmasvc.conf(5) (but --config, --help, --version), and every long option
of `dmasvcctl --help` is in dmasvcctl(8).

Both binaries also answer --version with their name and the project's
version.

Usage: test_man.py DMASVC DMASVCCTL MANDIR VERSION
"""
import os
import re
import shutil
import subprocess
import sys

PAGES = ["dmasvc.8", "dmasvcctl.8", "dmasvc.conf.5", "libdmasvc.3"]
NOT_KEYS = {"config", "help", "version"}


def long_options(binary):
    r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        sys.exit(f"FAIL: {binary} --help: rc {r.returncode}")
    opts = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", r.stdout))
    if len(opts) < 3:
        sys.exit(f"FAIL: {binary} --help lists {opts}?")
    return opts


def main():
    dmasvc, ctl, mandir, version = sys.argv[1:5]
    errs = []
    for b in (dmasvc, ctl):
        r = subprocess.run([b, "--version"], capture_output=True, text=True, timeout=30)
        want = f"{os.path.basename(b)} {version} "
        if r.returncode != 0 or not r.stdout.startswith(want):
            errs.append(f"{b} --version: rc {r.returncode}, {r.stdout!r}, want {want!r}...")
    text = {}
    for p in PAGES:
        path = os.path.join(mandir, p)
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            errs.append(f"{p}: not built")
            continue
        with open(path, encoding="utf-8") as f:
            text[p] = f.read()
        if not re.search(r'^\.TH "?%s"? "?%s"?' % (re.escape(p.rsplit(".", 1)[0]), p.rsplit(".", 1)[1]),
                         text[p], re.M):
            errs.append(f"{p}: no .TH line naming the page and its section")
        if shutil.which("man"):
            r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", path],
                               capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
            if r.returncode != 0 or r.stderr.strip():
                errs.append(f"{p}: man --warnings: rc {r.returncode} {r.stderr.strip()}")
            elif "NAME" not in re.sub(r".\x08", "", r.stdout):
                errs.append(f"{p}: renders without a NAME section")
    if errs:
        sys.exit("FAIL:\n" + "\n".join(errs))

    for opt in sorted(long_options(dmasvc)):
        if f"\\fB--{opt}\\fR" not in text["dmasvc.8"]:
            errs.append(f"dmasvc --help has --{opt}, dmasvc(8) does not describe it")
        if opt not in NOT_KEYS and f"\\fB{opt}\\fR" not in text["dmasvc.conf.5"]:
            errs.append(f"dmasvc --help has --{opt}, dmasvc.conf(5) lists no key {opt}")
    for opt in sorted(long_options(ctl)):
        if f"\\fB--{opt}\\fR" not in text["dmasvcctl.8"]:
            errs.append(f"dmasvcctl --help has --{opt}, dmasvcctl(8) does not describe it")
    if errs:
        sys.exit("FAIL:\n" + "\n".join(errs))
    print(f"--version answers; {len(PAGES)} pages render without warnings; every long option is documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
