#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_units.py - the installed units pass `systemd-analyze verify` with no
warning (it exits 0 on "Unknown key ... ignoring", so any output fails), with
ExecStart= pointing at this build's dmasvc; a unit with a typo is caught (the
check can fail); the sysusers.d and tmpfiles.d snippets name the same user
and runtime directory the units use.

argv: the build's dmasvc-build.service, the source dmasvc.socket,
sysusers.conf, tmpfiles.conf.
"""
import os
import shutil
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def verify(d):
    r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        os.path.join(d, "dmasvc.socket"), os.path.join(d, "dmasvc.service")],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, (r.stdout + r.stderr).strip()


def main():
    service, sock, sysusers, tmpfiles, dmasvc = sys.argv[1:6]
    d = tempfile.mkdtemp(prefix="dmasvc-units.")
    try:
        # The build's unit names /BUILD-SBINDIR: a link to the binary's
        # directory, so ExecStart= has no space whatever the checkout's path.
        bindir = os.path.join(d, "sbin")
        os.symlink(os.path.dirname(os.path.abspath(dmasvc)), bindir)
        text = open(service).read().replace("/BUILD-SBINDIR", bindir)
        with open(os.path.join(d, "dmasvc.service"), "w") as f:
            f.write(text)
        shutil.copy(sock, os.path.join(d, "dmasvc.socket"))
        rc, out = verify(d)
        check(rc == 0 and out == "", "systemd-analyze verify: rc %d, output %r" % (rc, out))

        with open(os.path.join(d, "dmasvc.service"), "w") as f:
            f.write(text.replace("ProtectSystem=strict", "ProtectSystem=strcit"))
        rc, out = verify(d)
        check("strcit" in out, "a typo in the unit is reported: %r" % out)

        for key in ("Type=notify", "User=dmasvc", "CapabilityBoundingSet=CAP_IPC_LOCK",
                    "AmbientCapabilities=CAP_IPC_LOCK", "DevicePolicy=closed",
                    "DeviceAllow=/dev/iommu rw", "RuntimeDirectory=dmasvc", "NoNewPrivileges=yes",
                    "ProtectSystem=strict", "LimitMEMLOCK=infinity"):
            check(key in text.splitlines(), "dmasvc.service has " + key)
        socktext = open(sock).read()
        check("ListenSequentialPacket=/run/dmasvc/dmasvc.sock" in socktext.splitlines(),
              "dmasvc.socket listens on the default --socket path")
        su = open(sysusers).read().split()
        check(su[su.index("u") + 1] == "dmasvc", "sysusers.d creates user dmasvc")
        tf = [l.split() for l in open(tmpfiles) if l.strip() and not l.startswith("#")]
        check(tf[0][:5] == ["d", "/run/dmasvc", "0755", "dmasvc", "dmasvc"],
              "tmpfiles.d makes /run/dmasvc for dmasvc: %r" % tf[0])
    finally:
        shutil.rmtree(d)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
