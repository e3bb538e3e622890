#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_activation.py - dmasvc under socket activation and sd_notify, as
systemd would run it, with systemd's own tools (PID 1 here is not systemd,
so `systemctl start dmasvc.socket` cannot be tested; systemd-socket-activate
passes the socket exactly as PID 1 does: LISTEN_FDS, LISTEN_PID, fd 3).

  1. systemd-socket-activate --seqpacket -l PATH listens; the first client
     (dmasvcctl status) starts dmasvc, which adopts fd 3, logs that it was
     activated, and answers through the inherited socket.
  2. sd_notify: READY=1 with STATUS=0 sessions, STATUS=1 session while a
     client stays connected, STOPPING=1 at SIGTERM; exit 0.
  3. The path lock still holds: a second dmasvc started by hand on the same
     path refuses (exit 1, names the pid) while the activated one runs.
  4. A mismatched --socket is refused with both paths named.
  5. No info line per dmasvcctl call (hello/disconnect are debug).

Environment (set by meson): DMASVC_BIN, DMASVCCTL_BIN.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

DMASVC = os.environ["DMASVC_BIN"]
CTL = os.environ["DMASVCCTL_BIN"]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def read_notify(ns, want, timeout):
    """Datagrams from the notify socket until one contains @want."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ns.settimeout(max(0.01, end - time.monotonic()))
        try:
            msg = ns.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if want in msg:
            return msg, got
    return None, got


def activate(tmp, sock, args, ns_path):
    log = open(os.path.join(tmp, "dmasvc.log"), "w+")
    p = subprocess.Popen(["systemd-socket-activate", "--seqpacket", "-l", sock,
                          "-E", "NOTIFY_SOCKET=" + ns_path,
                          DMASVC] + args, stdout=log, stderr=subprocess.STDOUT)
    # systemd-socket-activate binds, listens, then waits for the first
    # connection; the file exists from bind(), and a connect() before
    # listen() is refused (ECONNREFUSED): wait for the listening socket
    for _ in range(500):
        if listening(sock):
            break
        time.sleep(0.01)
    return p, log


def listening(path):
    """True when a listening AF_UNIX socket is bound to @path (/proc/net/unix:
    the Flags column has __SO_ACCEPTCON, 0x10000)."""
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:  # the path is the last field and may hold spaces
                fields = line.split(None, 7)
                if len(fields) == 8 and fields[7].rstrip("\n") == path \
                        and int(fields[3], 16) & 0x10000:
                    return True
    except OSError:
        pass
    return False


def slurp(log):
    log.flush()
    log.seek(0)
    return log.read()


def main():
    tmp = tempfile.mkdtemp(prefix="dmasvc-act.")
    sock = os.path.join(tmp, "dmasvc.sock")
    ns_path = os.path.join(tmp, "notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(ns_path)
    base = ["--soft-iommu", "--config", "/dev/null", "--socket", sock]

    p, log = activate(tmp, sock, base, ns_path)
    try:
        check(listening(sock), "systemd-socket-activate listens on " + sock)
        r = subprocess.run([CTL, "--socket", sock, "status"], capture_output=True, text=True,
                           timeout=30)
        check(r.returncode == 0, "dmasvcctl status through the activated socket (rc %d: %s)"
              % (r.returncode, r.stderr.strip()))
        check("backend soft" in r.stdout, "the service answered: " + r.stdout.splitlines()[0]
              if r.stdout else "no output")
        msg, got = read_notify(ns, "READY=1", 10)
        check(msg is not None and "STATUS=0 sessions, backend soft" in msg,
              "sd_notify READY=1 with STATUS= (%r)" % got)
        text = slurp(log)
        check("socket activated: serving the socket systemd passed for " + sock in text,
              "the service logs that it was activated")
        check("hello" not in text and "disconnect" not in text,
              "no info line for a dmasvcctl call")

        # a client that stays: STATUS follows the session count
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.connect(sock)
        msg, got = read_notify(ns, "STATUS=1 session,", 5)
        check(msg is not None, "STATUS=1 session while a client is connected (%r)" % got)
        c.close()
        msg, got = read_notify(ns, "STATUS=0 sessions", 5)
        check(msg is not None, "STATUS=0 sessions after it left (%r)" % got)

        # one instance per path: the lock is taken under activation too
        r = subprocess.run([DMASVC] + base, capture_output=True, text=True, timeout=30)
        check(r.returncode == 1 and ("pid %d" % p.pid) in r.stderr,
              "a second dmasvc on the path refuses and names pid %d (rc %d: %s)"
              % (p.pid, r.returncode, r.stderr.strip()))

        p.send_signal(signal.SIGTERM)
        msg, got = read_notify(ns, "STOPPING=1", 10)
        check(msg is not None, "sd_notify STOPPING=1 at SIGTERM (%r)" % got)
        rc = p.wait(timeout=30)
        check(rc == 0, "exit 0 after SIGTERM (got %d)" % rc)
        check(os.path.exists(sock), "the activated socket file is left to its owner")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print(slurp(log), end="")

    # the inherited socket must be the configured path
    other = os.path.join(tmp, "other.sock")
    os.unlink(sock)
    p, log = activate(tmp, sock, ["--soft-iommu", "--config", "/dev/null", "--socket", other],
                      ns_path)
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.connect(sock)
        rc = p.wait(timeout=30)
        text = slurp(log)
        check(rc == 1 and "bound to " + other in text,
              "an activated socket at another path is refused (rc %d): %s" % (rc, text.strip()))
        c.close()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
