#!/usr/bin/python3
"""tests/qemu/test_shim.py - the dma-service QEMU shim end to end.

dmasvc --soft-iommu runs on the host; QEMU 10.0.2 with the shim (built by
clients/qemu-shim/build-qemu.sh) boots Debian's 6.12 kernel under TCG with a
busybox initramfs that loads virtio_mem (tests/qemu/prepare-guest.sh).  Guest
RAM is a memfd backend; one virtio-mem device (memfd backend, 1 GiB, 2 MiB
blocks).  The test drives virtio-mem over QMP and compares, after each step,
QEMU's view (the device's plugged size) with the service's (dmasvcctl
regions/status/audit --json):

  Each state is measured three ways that share no counter: the service's
  granule state (dmasvcctl regions), the backend's own area table
  (dmasvcctl audit), and the kernel's VmPin + VmLck of the service (the
  software model pins every area with io_uring registered buffers, VmPin,
  or with mlock() where io_uring is not available, VmLck), each against
  QEMU's plugged size.

  boot         boot RAM populated, held and locked, in few large areas
               (head, body, tail); firmware ROM memfds left out with a
               warning; virtio-mem region registered, empty
  resize       256 MiB, 128 MiB, 0: region populated == held by the backend
               == plugged size; VmLck growth == boot RAM + plugged; audit OK
  kill         dmasvc SIGKILLed while the guest plugs 896 MiB: the rest of
               the plug is refused (size stops growing), QEMU keeps running
  replay fails dmasvc started again, failing every map of boot RAM: the
               hand-over fails, the object stays broken and retries
  restart      dmasvc started again: the shim reconnects and hands the state
               over; it matches; a new plug works
  stall        dmasvc SIGSTOPped, the guest asks for more: the request times
               out (timeout-ms), the plug is refused, QEMU does not hang;
               SIGCONT: the shim resyncs and the state matches
  object-del   the session goes with all its mappings and pins; object-add
               with fd= (a socket the test connected, passed with QMP
               getfd, as a manager does) hands the current state over again;
               prefault-threads=65 is refused, =1 is kept
  fault        the service fails the maps of one block (injected ENOMEM): the
               plug stops there, the session is not broken, state matches
  quit         QEMU quits: its session is gone, nothing mapped or pinned
  refuse       QEMU with anonymous guest RAM: the shim refuses to start and
               says how to fix the command line
  fatal        a service that cannot map boot RAM before the machine runs:
               QEMU exits with an error, the guest never runs
  vfio         vfio-pci's dma-service= backend, without a device or a guest
               (test_vfio.py, run first): the soft model's EOPNOTSUPP reaches
               realize; a vIOMMU, iommufd= and enable-migration=on are refused
               before any DEVICE_ATTACH; a failed hotplug closes its fd

Exit status 0 = pass, 1 = fail (any missing tool is a failure with a message).
Environment (set by tests/qemu/meson.build): DMASVC, DMASVCCTL, BUILD_QEMU,
PREPARE_GUEST; DMASVC_TEST_KEEP=1 keeps the temporary directory.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
RAM = 512 * MiB
VMEM = 1024 * MiB
BLOCK = 2 * MiB


# With fault injection compiled in, every map of the virtio-mem block at
# 768 MiB (IOVA 0x100000000 + 768 MiB: device memory starts at 4 GiB here)
# fails with ENOMEM; the other steps never plug that far.
FAULT_IOVA = 0x100000000 + 768 * MiB
# Boot RAM at 256 MiB (inside q35's low RAM): for the steps that need the
# hand-over of boot RAM itself to fail.
BOOT_FAULTS = "map_range=0x10000000-0x101fffff,map_range_errno=12"
FAULTS = (f"map_range=0x{FAULT_IOVA:x}-0x{FAULT_IOVA + BLOCK - 1:x},map_range_errno=12"
          if os.environ.get("DMASVC_FAULT_INJECTION") == "1" else "")


class Fail(Exception):
    pass


def log(msg):
    print(f"test_shim: {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise Fail(msg)
    log(f"ok: {msg}")


def wait_for(what, fn, timeout, interval=0.2):
    """Poll fn() until it returns a true value; Fail after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise Fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Qmp:
    """A minimal QMP client over a Unix socket (one command at a time)."""

    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.f = self.sock.makefile("rw")
        self.events = []  # every event seen so far, oldest first
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise Fail(f"QMP connection closed during {name}")
            r = json.loads(line)
            if "error" in r:
                raise Fail(f"QMP {name}: {r['error']}")
            if "return" in r:
                return r["return"]
            if "event" in r:
                self.events.append(r)

    def send_fd(self, fd, name):
        """QMP getfd: pass @fd to QEMU under @name (SCM_RIGHTS)."""
        msg = json.dumps({"execute": "getfd", "arguments": {"fdname": name}}) + "\n"
        socket.send_fds(self.sock, [msg.encode()], [fd])
        while True:
            r = json.loads(self.f.readline())
            if "error" in r:
                raise Fail(f"QMP getfd: {r['error']}")
            if "return" in r:
                return

    def close(self):
        self.sock.close()


class Service:
    """dmasvc --soft-iommu on a private socket."""

    def __init__(self, exe, ctl, tmp):
        self.exe, self.ctl, self.tmp = exe, ctl, tmp
        self.sock = os.path.join(tmp, "dmasvc.sock")
        self.proc = None
        self.n = 0

    def start(self, faults=None):
        """Start it; @faults: DMASVC_TEST_SOFT_FAULTS instead of FAULTS."""
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.n += 1
        logf = open(os.path.join(self.tmp, f"dmasvc.{self.n}.log"), "w")
        env = dict(os.environ)
        if faults or FAULTS:
            env["DMASVC_TEST_SOFT_FAULTS"] = faults or FAULTS
        self.proc = subprocess.Popen([self.exe, "--soft-iommu", "--socket", self.sock,
                                      "--stats-interval", "3600"],
                                     stdout=logf, stderr=subprocess.STDOUT, env=env)
        wait_for("dmasvc to listen", lambda: self.query("status") is not None, 10)
        self.vmlck_base = self.vmlck()

    def logfile(self):
        """The current instance's log (stdout and stderr)."""
        return os.path.join(self.tmp, f"dmasvc.{self.n}.log")

    def vmlck(self):
        """The kernel's count of the service's pinned bytes, VmPin + VmLck:
        the software model pins every mapped area with io_uring registered
        buffers (VmPin), or with mlock() where io_uring is not available
        (VmLck)."""
        found, total = 0, 0
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmLck:") or line.startswith("VmPin:"):
                    found += 1
                    total += int(line.split()[1]) * 1024
        if found != 2:
            raise Fail("no VmPin or VmLck in the service's /proc status")
        return total

    def pinned(self):
        """Bytes the kernel says the service pinned since it started."""
        return self.vmlck() - self.vmlck_base

    def audit(self):
        """One AUDIT, which reads the backend's own area table: ({(session_id,
        region_id): (bytes the backend holds, bytes missing)}, every extent
        OK (exit 0), the output for a failure message)."""
        r = subprocess.run([self.ctl, "--socket", self.sock, "audit", "--json"],
                           capture_output=True, text=True, timeout=30)
        out = {}
        for reg in json.loads(r.stdout)["regions"]:
            ext = reg["extents"]
            out[(reg["session_id"], reg["region_id"])] = (
                sum(x["length"] for x in ext if x["state"] in ("OK", "STRAY")),
                sum(x["length"] for x in ext if x["state"] == "MISSING"))
        return out, r.returncode == 0, r.stdout + r.stderr

    def query(self, what):
        r = subprocess.run([self.ctl, "--socket", self.sock, what, "--json"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode not in (0, 1):
            return None
        return json.loads(r.stdout)

    def regions(self):
        """dmasvcctl regions --json's list of regions (None on failure)."""
        q = self.query("regions")
        return None if q is None else q["regions"]

    def session_of(self, pid):
        st = self.query("status")
        for s in st["sessions"]:
            # pid: the peer's credentials, taken by the kernel at connect();
            # over fd= that is whoever connected (the manager, here this
            # test), so QEMU's pid is then only in the shim's client_tag.
            if s["pid"] == pid or s["client_tag"] == pid:
                return s
        return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode if self.proc else None


def qemu_cmd(qemu, guest, tmp, sock, extra_ram_args=None, timeout_ms=2000):
    ram = extra_ram_args or [
        "-object", f"memory-backend-memfd,id=ram0,size={RAM}",
        "-machine", "q35,memory-backend=ram0,aux-ram-share=on",
    ]
    return [qemu, "-accel", "tcg", "-cpu", "max", "-smp", "1",
            "-m", f"{RAM // MiB}M,maxmem={(RAM + VMEM) // MiB}M,slots=1",
            "-nodefaults", "-display", "none", "-no-reboot",
            "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
            *ram,
            "-object", f"memory-backend-memfd,id=mem1,size={VMEM}",
            "-device", f"virtio-mem-pci,id=vm0,memdev=mem1,block-size={BLOCK},requested-size=0",
            "-object", f"dma-service,id=ds0,socket={sock},timeout-ms={timeout_ms},reconnect-ms=500",
            "-kernel", os.path.join(guest, "vmlinuz"),
            "-initrd", os.path.join(guest, "initrd.cpio.gz"),
            "-append", "console=ttyS0 memhp_default_state=online_movable panic=-1",
            "-serial", "file:" + os.path.join(tmp, "serial.log"),
            "-qmp", "unix:" + os.path.join(tmp, "qmp.sock") + ",server=on,wait=off"]


def regions_of(svc, pid):
    sess = svc.session_of(pid)
    if not sess:
        return None
    return [r for r in svc.regions() if r["session_id"] == sess["session_id"]]


def expect_state(svc, qemu_pid, vmem_base, plugged, what):
    """The service's state for QEMU equals boot RAM + @plugged bytes of
    virtio-mem (@plugged: QEMU's own count, qom-get size), measured three
    ways that share no counter: the service's granule state (QUERY regions),
    the backend's area table (AUDIT), and the kernel's VmPin + VmLck of the service."""
    regs = regions_of(svc, qemu_pid)
    check(regs is not None, f"{what}: QEMU has a session")
    vm = [r for r in regs if r["iova"] == vmem_base]
    check(len(vm) == 1 and vm[0]["size"] == VMEM and vm[0]["granule"] == BLOCK,
          f"{what}: one virtio-mem region of 1 GiB at 0x{vmem_base:x}, granule 2 MiB")
    v = vm[0]
    held, audit_ok, audit_out = svc.audit()
    vm_held, vm_missing = held[(v["session_id"], v["region_id"])]
    check(v["populated_bytes"] == plugged,
          f"{what}: virtio-mem populated (service) {v['populated_bytes'] // MiB} MiB =="
          f" plugged (QEMU) {plugged // MiB} MiB")
    check(vm_held == plugged and vm_missing == 0,
          f"{what}: virtio-mem held by the backend {vm_held // MiB} MiB == plugged"
          f" {plugged // MiB} MiB, {vm_missing // MiB} MiB missing")
    boot = [r for r in regs if r["iova"] != vmem_base]
    boot_populated = sum(r["populated_bytes"] for r in boot)
    boot_held = sum(held[(r["session_id"], r["region_id"])][0] for r in boot)
    boot_missing = sum(held[(r["session_id"], r["region_id"])][1] for r in boot)
    check(boot_populated == RAM and boot_held == RAM and boot_missing == 0,
          f"{what}: boot RAM populated {boot_populated // MiB} MiB, held by the backend"
          f" {boot_held // MiB} MiB, missing {boot_missing // MiB} MiB; want {RAM // MiB} MiB")
    areas = sum(r["size"] // r["granule"] for r in boot)
    check(areas <= 40 and all(r["granule"] in (1 << k for k in range(12, 31)) for r in boot),
          f"{what}: boot RAM is {areas} areas in {len(boot)} regions (head, body, tail of"
          f" large granules; one area per granule of 1 MiB would be over 500)")
    check(all(not (r["iova"] <= 0xfffc0000 < r["iova"] + r["size"]) for r in regs),
          f"{what}: the BIOS ROM (unsealed memfd) is not handed over")
    pinned = svc.pinned()
    check(pinned == RAM + plugged,
          f"{what}: the kernel's VmPin + VmLck of the service grew by {pinned // MiB} MiB =="
          f" boot RAM + plugged {(RAM + plugged) // MiB} MiB")
    check(audit_ok, f"{what}: dmasvcctl audit finds no MISSING/STRAY extents"
          + ("" if audit_ok else ":\n" + audit_out))


def ds_state(qmp):
    """The dma-service object's read-only QOM state."""
    return {p: qmp.cmd("qom-get", path="/objects/ds0", property=p)
            for p in ("connected", "broken", "resumed", "session-id", "regions",
                      "populated-bytes")}


def expect_qom(qmp, svc, pid, plugged, what):
    """The object's QOM state agrees with the service's own view."""
    st = ds_state(qmp)
    sess = svc.session_of(pid)
    regs = regions_of(svc, pid) or []
    check(st["connected"] and not st["broken"] and sess is not None
          and st["session-id"] == sess["session_id"] and st["regions"] == len(regs)
          and st["populated-bytes"] == RAM + plugged,
          f"{what}: qom-get ds0 {st} agrees with the service (session"
          f" {sess and sess['session_id']}, {len(regs)} regions, {(RAM + plugged) // MiB} MiB)")


def qmp_connect(path, proc):
    """A QMP connection once QEMU listens; Fail if QEMU exited."""
    if proc.poll() is not None:
        raise Fail(f"QEMU exited with {proc.returncode}")
    try:
        return Qmp(path, 60)
    except OSError:
        return None


def plugged_size(qmp):
    return qmp.cmd("qom-get", path="/machine/peripheral/vm0", property="size")


def resize(qmp, size, timeout=120):
    qmp.cmd("qom-set", path="/machine/peripheral/vm0", property="requested-size", value=size)
    wait_for(f"virtio-mem size {size // MiB} MiB", lambda: plugged_size(qmp) == size, timeout)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def test_refuse(qemu, guest, tmp, svc):
    """Anonymous guest RAM: QEMU must refuse to start, with the fix in the message."""
    cmd = qemu_cmd(qemu, guest, tmp, svc.sock, extra_ram_args=["-machine", "q35"])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    check(r.returncode != 0, "refuse: QEMU with anonymous RAM exits with an error")
    check("aux-ram-share=on" in r.stderr and "memory-backend-memfd" in r.stderr,
          "refuse: the error names memory-backend-memfd and aux-ram-share=on: "
          + r.stderr.strip().splitlines()[-1])


def test_fatal_before_run(qemu, guest, tmp, exe, ctl):
    """A service that fails boot RAM before the machine runs: QEMU must not
    start a guest without its DMA mappings; it exits with a clear message."""
    if not FAULTS:
        log("fatal before run: skipped (dmasvc built without fault injection)")
        return
    d = os.path.join(tmp, "fatal")
    os.mkdir(d)
    svc = Service(exe, ctl, d)
    svc.start(faults=BOOT_FAULTS)
    try:
        r = subprocess.run(qemu_cmd(qemu, guest, d, svc.sock), capture_output=True,
                           text=True, timeout=120)
        err = r.stderr.strip().splitlines()
        check(r.returncode != 0 and any("dma-service" in l and "'ram0'" in l
                                        and "Cannot allocate memory" in l for l in err),
              "fatal before run: QEMU exits with an error when boot RAM cannot be mapped: "
              + (err[-1] if err else f"(no message, exit {r.returncode})"))
        check("dmasvc-guest: ready" not in read(os.path.join(d, "serial.log")),
              "fatal before run: the guest never ran")
    finally:
        check(svc.stop() == 0, "fatal before run: dmasvc exits 0 on SIGTERM")


def run(env, tmp):
    log("building QEMU with the shim (cold: 8+ minutes)")
    qemu = subprocess.run([env["BUILD_QEMU"]], stdout=subprocess.PIPE, text=True,
                          check=True).stdout.strip().splitlines()[-1]
    log("preparing the guest")
    guest = subprocess.run([env["PREPARE_GUEST"]], stdout=subprocess.PIPE, text=True,
                           check=True).stdout.strip().splitlines()[-1]

    svc = Service(env["DMASVC"], env["DMASVCCTL"], tmp)
    svc.start()
    qemu_log = os.path.join(tmp, "qemu.log")
    proc = None
    try:
        import test_vfio  # here: it imports this module
        test_vfio.run_vfio_checks(qemu, svc, tmp)
        test_refuse(qemu, guest, tmp, svc)
        test_fatal_before_run(qemu, guest, tmp, env["DMASVC"], env["DMASVCCTL"])

        for name in ("qmp.sock", "serial.log"):
            if os.path.exists(os.path.join(tmp, name)):
                os.unlink(os.path.join(tmp, name))
        with open(qemu_log, "w") as qlog:
            proc = subprocess.Popen(qemu_cmd(qemu, guest, tmp, svc.sock),
                                    stdout=qlog, stderr=subprocess.STDOUT)
        check(proc.poll() is None, "boot: QEMU with the shim started")
        qmp = wait_for("QMP", lambda: qmp_connect(os.path.join(tmp, "qmp.sock"), proc), 60)
        wait_for("the guest to load virtio_mem",
                 lambda: "dmasvc-guest: ready" in read(os.path.join(tmp, "serial.log"))
                 or proc.poll() is not None, 300, 0.5)
        check(proc.poll() is None, "boot: the guest booted and loaded virtio_mem")
        check("insmod virtio_mem failed" not in read(os.path.join(tmp, "serial.log")),
              "boot: virtio_mem loaded")
        devs = qmp.cmd("query-memory-devices")
        vmem = [d["data"] for d in devs if d["type"] == "virtio-mem"]
        check(len(vmem) == 1, "boot: one virtio-mem device")
        base = vmem[0]["memaddr"]
        check("leaving out 'pc.bios'" in read(qemu_log),
              "boot: the shim warns that it leaves the BIOS ROM memfd out")
        expect_state(svc, proc.pid, base, 0, "boot")
        expect_qom(qmp, svc, proc.pid, 0, "boot")

        for size in (256 * MiB, 128 * MiB, 0):
            t = time.monotonic()
            resize(qmp, size)
            log(f"resize to {size // MiB} MiB took {time.monotonic() - t:.1f} s")
            expect_state(svc, proc.pid, base, size, f"resize {size // MiB} MiB")
            expect_qom(qmp, svc, proc.pid, size, f"resize {size // MiB} MiB")

        # kill: the service dies while the guest plugs; the rest of the plug
        # must be refused, QEMU must go on.
        want = 896 * MiB
        qmp.cmd("qom-set", path="/machine/peripheral/vm0", property="requested-size",
                value=want)
        wait_for("the guest to start plugging", lambda: plugged_size(qmp) >= 128 * MiB, 120, 0.05)
        svc.proc.kill()
        svc.proc.wait()
        if plugged_size(qmp) == want:  # it finished first: ask for more
            want = VMEM
            qmp.cmd("qom-set", path="/machine/peripheral/vm0", property="requested-size",
                    value=want)
        # The shim learns of the death either from the populate in flight
        # ("populate failed") or, between two requests, from the socket's
        # hangup ("the connection (closed by the service) failed"); after
        # the hangup it vetoes every plug without a request (-ENOTCONN).
        wait_for("the shim to report the failed populate or the hangup",
                 lambda: "populate failed" in read(qemu_log)
                 or "the connection (closed by the service) failed" in read(qemu_log), 60)
        log("kill: the shim learnt it from " + ("the populate in flight" if "populate failed"
                                                 in read(qemu_log) else "the hangup"))
        size = plugged_size(qmp)
        time.sleep(3)
        check(plugged_size(qmp) == size < want,
              f"kill: the plug was refused (size stays {size // MiB} MiB < {want // MiB} MiB)")
        check(proc.poll() is None and qmp.cmd("query-status")["running"],
              "kill: QEMU keeps running")
        st = ds_state(qmp)
        check(not st["connected"] and st["broken"], f"kill: qom-get ds0 says broken: {st}")

        # replay fails: a service that cannot map boot RAM takes the
        # connection, the hand-over fails, the object stays broken and
        # tries again; it never reports itself reconnected.
        if FAULTS:
            svc.start(faults=BOOT_FAULTS)
            n_warn = read(qemu_log).count("reconnecting")
            wait_for("the failed hand-over to be retried",
                     lambda: read(qemu_log).count("reconnecting") >= n_warn + 2, 60)
            st = ds_state(qmp)
            check("reconnected to" not in read(qemu_log) and st["broken"]
                  and not st["connected"],
                  f"replay fails: the hand-over fails (boot RAM map refused), the object"
                  f" stays broken and retries: {st}")
            check(plugged_size(qmp) == size and proc.poll() is None,
                  "replay fails: the guest keeps its size, QEMU runs")
            svc.proc.kill()
            svc.proc.wait()
        else:
            log("replay fails: skipped (dmasvc built without fault injection)")

        # restart: the shim reconnects and hands everything over again.
        svc.start()
        wait_for("the shim to reconnect", lambda: "reconnected to" in read(qemu_log), 60)
        # The guest may retry its plug as soon as memory can be mapped again.
        wait_for("the state to settle", lambda: (regions_of(svc, proc.pid) or []) and
                 sum(r["populated_bytes"] for r in regions_of(svc, proc.pid)
                     if r["iova"] == base) == plugged_size(qmp), 30)
        expect_state(svc, proc.pid, base, plugged_size(qmp), "restart")
        # The model gives a zero token (nothing is kept): never resumable,
        # so the shim takes the fresh path, never the resume.
        check(re.search(r"reconnected to \S+ \(new session \d+\)", read(qemu_log))
              and "resumed session" not in read(qemu_log) and not ds_state(qmp)["resumed"],
              "restart: the model's session is not resumable: 'reconnected to ... (new"
              " session N)', qom 'resumed' false")
        resize(qmp, 192 * MiB)
        expect_state(svc, proc.pid, base, 192 * MiB, "restart, then 192 MiB")

        # stall: a service that does not answer is a failure, never a hang.
        svc.proc.send_signal(signal.SIGSTOP)
        t = time.monotonic()
        qmp.cmd("qom-set", path="/machine/peripheral/vm0", property="requested-size",
                value=320 * MiB)
        wait_for("the shim to time out", lambda: "populate failed" in
                 read(qemu_log).split("reconnected to")[-1], 60)
        log(f"stall: the populate failed after {time.monotonic() - t:.1f} s (timeout-ms=2000)")
        check(qmp.cmd("query-status")["running"], "stall: QEMU answers QMP and runs")
        check(plugged_size(qmp) == 192 * MiB, "stall: the plug was refused (size stays 192 MiB)")
        svc.proc.send_signal(signal.SIGCONT)
        n_reconnects = read(qemu_log).count("reconnected to")
        wait_for("the shim to resync", lambda: read(qemu_log).count("reconnected to") > n_reconnects, 60)
        resize(qmp, 64 * MiB)
        expect_state(svc, proc.pid, base, 64 * MiB, "stall, resync, then 64 MiB")

        # object-del: the session goes; object-add: everything handed over again.
        pid = proc.pid
        qmp.cmd("object-del", id="ds0")
        wait_for("the session to go after object-del", lambda: svc.session_of(pid) is None, 30)
        check(svc.pinned() == 0 and svc.regions() == [],
              f"object-del: session gone, VmLck back to its start ({svc.pinned()} bytes more),"
              " no regions")
        # A bad prefault-threads is refused before anything connects.
        refused = ""
        try:
            qmp.cmd("object-add", **{"qom-type": "dma-service", "id": "ds-bad",
                                     "socket": svc.sock, "prefault-threads": 65})
        except Fail as e:
            refused = str(e)
        check("'prefault-threads' must be at most 64" in refused,
              f"object-add prefault-threads=65: refused with the limit ({refused or 'accepted'})")
        check(svc.session_of(pid) is None, "prefault-threads=65: no session made")
        # object-add the way a manager does it: it connects, QEMU gets the fd.
        mgr = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mgr.connect(svc.sock)
        qmp.send_fd(mgr.fileno(), "dmasvc0")
        mgr.close()
        qmp.cmd("object-add", **{"qom-type": "dma-service", "id": "ds0", "fd": "dmasvc0",
                                 "prefault-threads": 1})
        check(qmp.cmd("qom-get", path="/objects/ds0", property="prefault-threads") == 1,
              "object-add fd=: prefault-threads=1 kept")
        expect_state(svc, pid, base, 64 * MiB, "object-add fd=")
        expect_qom(qmp, svc, pid, 64 * MiB, "object-add fd=")
        resize(qmp, 128 * MiB)
        expect_state(svc, pid, base, 128 * MiB, "object-add, then 128 MiB")

        # fault: the service fails a map; the plug is refused, the session stays.
        if FAULTS:
            check(base == 0x100000000, "fault: virtio-mem at 4 GiB, where the fault is armed")
            sess = svc.session_of(pid)["session_id"]
            n_reconnects = read(qemu_log).count("reconnected to")
            qmp.cmd("qom-set", path="/machine/peripheral/vm0", property="requested-size",
                    value=VMEM)
            last = [None, time.monotonic()]

            def settled():
                size = plugged_size(qmp)
                if size != last[0]:
                    last[:] = [size, time.monotonic()]
                return time.monotonic() - last[1] > 5 and size

            size = wait_for("the plugged size to settle", settled, 180, 0.5)
            check(128 * MiB <= size <= 768 * MiB,
                  f"fault: plugging stopped at the failing block ({size // MiB} MiB plugged)")
            check(svc.session_of(pid)["session_id"] == sess
                  and read(qemu_log).count("reconnected to") == n_reconnects,
                  "fault: a refused map does not break the session")
            expect_state(svc, pid, base, size, "fault")
            resize(qmp, 256 * MiB)
            expect_state(svc, pid, base, 256 * MiB, "fault, then 256 MiB")
        else:
            log("fault: skipped (dmasvc built without fault injection)")

        # quit: the session goes, with every mapping and pin.
        pid = proc.pid
        qmp.cmd("quit")
        qmp.close()
        check(proc.wait(60) == 0, "quit: QEMU exited 0")
        wait_for("the session to go", lambda: svc.session_of(pid) is None, 30)
        st = svc.query("status")
        check(svc.pinned() == 0 and st["service"]["areas"] == 0
              and svc.regions() == [],
              f"quit: VmLck back to its start ({svc.pinned()} bytes more), no areas,"
              " no regions left")
        check(svc.stop() == 0, "dmasvc exits 0 on SIGTERM")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        svc.stop()


def main():
    need = ["DMASVC", "DMASVCCTL", "BUILD_QEMU", "PREPARE_GUEST"]
    env = {k: os.environ.get(k, "") for k in need}
    missing = [k for k in need if not env[k]]
    if missing:
        print(f"test_shim: FAIL: environment {missing} not set (run through meson test)")
        return 1
    tmp = tempfile.mkdtemp(prefix="dmasvc-qemu-")
    ok = False
    try:
        run(env, tmp)
        ok = True
    except Exception as e:  # every failure: report it with the logs
        print(f"test_shim: FAIL: {type(e).__name__}: {e}")
        for name in sorted(os.listdir(tmp)):
            if name.endswith(".log"):
                text = read(os.path.join(tmp, name)).splitlines()
                print(f"---- {name} (last 30 lines)")
                print("\n".join(text[-30:]))
    finally:
        if os.environ.get("DMASVC_TEST_KEEP") == "1" or not ok:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    log("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
