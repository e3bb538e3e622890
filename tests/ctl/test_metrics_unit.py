#!/usr/bin/env python3
"""test_metrics_unit.py - the textfile-collector units (dmasvc/systemd/
dmasvc-metrics.{service,timer}): systemd-analyze verify accepts both, and
the service's own ExecStart line, run against a live dmasvc (software
model), leaves a dmasvc.prom that check_prom.py accepts and no temporary
file; with the service gone it fails and removes dmasvc.prom.

Usage: test_metrics_unit.py SERVICE TIMER DMASVC DMASVCCTL CHECK_PROM
(SERVICE is the build copy whose ExecStart runs this build's dmasvcctl).
Exit 0 pass, 1 fail, 77 skip (no systemd-analyze).
"""
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def exec_start(unit):
    """The argv of the unit's ExecStart= (systemd's quoting, for this unit's
    simple case, is shell quoting)."""
    with open(unit, encoding="utf-8") as f:
        lines = [l for l in f.read().splitlines() if l.startswith("ExecStart=")]
    if len(lines) != 1:
        fail(f"{unit}: want one ExecStart=, got {lines}")
    return shlex.split(lines[0][len("ExecStart="):])


def main():
    service, timer, dmasvc, ctl, check_prom = sys.argv[1:6]
    tmp = tempfile.mkdtemp(prefix="dmasvc-metrics-unit.")
    proc = None
    try:
        # The build's unit names /BUILD-SBINDIR: a link to dmasvcctl's
        # directory, so ExecStart= has no space whatever the checkout's path.
        bindir = os.path.join(tmp, "sbin")
        os.symlink(os.path.dirname(os.path.abspath(ctl)), bindir)
        with open(service) as f:
            text = f.read().replace("/BUILD-SBINDIR", bindir)
        service = os.path.join(tmp, "dmasvc-metrics.service")
        with open(service, "w") as f:
            f.write(text)
        # 1. systemd-analyze verify, under the installed names
        sa = shutil.which("systemd-analyze")
        if sa:
            shutil.copy(timer, os.path.join(tmp, "dmasvc-metrics.timer"))
            r = subprocess.run([sa, "verify", "--man=no",
                                os.path.join(tmp, "dmasvc-metrics.service"),
                                os.path.join(tmp, "dmasvc-metrics.timer")],
                               capture_output=True, text=True, timeout=60)
            out = (r.stdout + r.stderr).strip()
            # Only complaints about our files count (verify also reads the
            # host's units).
            ours = [l for l in out.splitlines() if "dmasvc-metrics" in l]
            if r.returncode != 0 or ours:
                fail(f"systemd-analyze verify: rc {r.returncode}\n{out}")
            print("systemd-analyze verify: both units clean")
        else:
            print("systemd-analyze not found: verify skipped")

        # 2. the ExecStart line against a live service
        argv = exec_start(service)
        if argv[:2] != ["/bin/sh", "-c"] or len(argv) != 3:
            fail(f"ExecStart is not /bin/sh -c SCRIPT: {argv}")
        sock = os.path.join(tmp, "dmasvc.sock")
        script = argv[2].replace(" metrics ", f" --socket {shlex.quote(sock)} metrics ")
        if sock not in script or os.path.join(bindir, "dmasvcctl") not in script:
            fail(f"ExecStart does not run this build's dmasvcctl metrics: {argv[2]}")
        out_dir = os.path.join(tmp, "textfile")
        os.mkdir(out_dir)
        env = dict(os.environ, TEXTFILE_DIR=out_dir)
        proc = subprocess.Popen([dmasvc, "--soft-iommu", "--socket", sock, "--log-level", "warn"])
        for _ in range(500):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        ok = False
        for _ in range(50):  # the socket file appears just before listen()
            if subprocess.run([ctl, "--socket", sock, "status"],
                              capture_output=True).returncode == 0:
                ok = True
                break
            time.sleep(0.1)
        if not ok:
            fail("dmasvc did not start")
        r = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)
        prom = os.path.join(out_dir, "dmasvc.prom")
        if r.returncode != 0 or not os.path.exists(prom):
            fail(f"ExecStart failed with the service up: rc {r.returncode} {r.stderr}")
        if os.listdir(out_dir) != ["dmasvc.prom"]:
            fail(f"files left in the textfile directory: {os.listdir(out_dir)}")
        r = subprocess.run([sys.executable, check_prom, prom], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"dmasvc.prom refused by check_prom.py: {r.stderr}")
        print("ExecStart with the service up: dmasvc.prom written, check_prom.py accepts it")

        # 3. the service gone: the file goes too
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        proc = None
        r = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)
        if r.returncode == 0 or os.listdir(out_dir):
            fail(f"with the service down: rc {r.returncode}, left {os.listdir(out_dir)}")
        print("ExecStart with the service down: fails, dmasvc.prom removed")
    finally:
        if proc:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
