#!/usr/bin/python3
"""tests/qemu/test_vfio.py - vfio-pci's dma-service= backend on the soft model.

Run by test_shim.py (the qemu-shim meson test) before it boots a guest, or
alone with the same environment.  No device and no guest kernel are needed:
the software model has no devices, so every attach must fail, and the
checks are about what fails, with which text, and what reaches the service.
QEMU runs stopped (-S) or fails at its command line.

  cold fd=/dev/null   -device vfio-pci,fd=N,dma-service=ds0: realize fails
                      with the service's EOPNOTSUPP text, and the service
                      logged exactly one DEVICE_ATTACH (the positive control
                      for the next check)
  vIOMMU              -device intel-iommu in front: the vIOMMU error, and no
                      DEVICE_ATTACH reached the service
  iommufd=            together with dma-service=: refused, no DEVICE_ATTACH
  enable-migration=on refused, no DEVICE_ATTACH
  -only-migratable    the device's migration blocker is refused with QEMU's
                      "disallowing migration blocker" and the backend's
                      reason, before any DEVICE_ATTACH
  hotplug             device_add vfio-pci,fd=NAME (a memfd passed with
                      getfd),dma-service=ds0: the EOPNOTSUPP text over QMP;
                      QEMU closed the memfd; qom-get ds0 devices == 0 and
                      the session is still connected; the same with
                      iommufd= (refused before the service, memfd closed)

  unplug after      (QEMU itself, the shim's patches/0007) an emulated edu
  info mtree -f     behind a root port, its BAR0 mapped through qtest, then
                    HMP "info mtree -f", then device_del and the ACPI
                    eject: DEVICE_DELETED must come.  Unpatched QEMU 10.0.2
                    leaked a reference on every FlatView that several
                    address spaces share (system/memory.c:
                    mtree_info_flatview), and with it the device: no
                    DEVICE_DELETED, ever (measured: none in 10 s here,
                    none in 60 s in the nested tier's L1).

object-del while a device uses ds0, the migration blocker and the safety
valve need a real device: they are checked in the nested tier.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

import test_shim as ts

MiB = 1 << 20
RAM = 64 * MiB


def base_cmd(qemu, sock, extra=()):
    return [qemu, "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", f"{RAM // MiB}M",
            "-nodefaults", "-display", "none", "-no-reboot",
            "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
            "-object", f"memory-backend-memfd,id=ram0,size={RAM}",
            "-machine", "q35,memory-backend=ram0,aux-ram-share=on,kernel-irqchip=split",
            "-object", f"dma-service,id=ds0,socket={sock}",
            *extra]


def attaches(svc):
    """DEVICE_ATTACH requests the service logged so far (each failed one is a
    warning line; the soft model fails them all)."""
    return ts.read(svc.logfile()).count("DEVICE_ATTACH")


def cold(qemu, svc, what, extra, want, attach_delta, pass_fds=()):
    """QEMU with @extra must exit != 0, its stderr containing every string in
    @want, and the service must have seen @attach_delta DEVICE_ATTACHes."""
    before = attaches(svc)
    r = subprocess.run(base_cmd(qemu, svc.sock, extra), capture_output=True, text=True,
                       timeout=120, pass_fds=pass_fds)
    err = r.stderr.strip().splitlines()
    last = err[-1] if err else ""
    ts.check(r.returncode != 0, f"{what}: QEMU exits with an error ({r.returncode})")
    missing = [w for w in want if w not in r.stderr]
    ts.check(not missing, f"{what}: the error says {want}: {last}" +
             (f" (missing {missing})" if missing else ""))
    # The service logs (and flushes) a failed request before it replies, so
    # before QEMU could report the failure and exit.
    delta = attaches(svc) - before
    ts.check(delta == attach_delta,
             f"{what}: {delta} DEVICE_ATTACH reached the service (want {attach_delta})")


def qemu_fds(pid):
    """{fd: link target} of process @pid."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def hotplug(qemu, svc, tmp, extra_dev, what, want, attach_delta):
    """device_add of vfio-pci with a memfd passed by getfd into a running
    (stopped) QEMU: the error over QMP, the memfd closed by QEMU, the object
    without devices and still connected."""
    qmp_path = os.path.join(tmp, "vfio-qmp.sock")
    if os.path.exists(qmp_path):
        os.unlink(qmp_path)
    log = open(os.path.join(tmp, "qemu-vfio.log"), "w")
    proc = subprocess.Popen(base_cmd(qemu, svc.sock, [
        "-object", "iommufd,id=iommufd0",
        "-device", "pcie-root-port,id=rp0,chassis=1",
        "-S", "-qmp", f"unix:{qmp_path},server=on,wait=off"]),
        stdout=log, stderr=subprocess.STDOUT)
    try:
        qmp = ts.wait_for("QMP", lambda: ts.qmp_connect(qmp_path, proc), 60)
        name = "dmasvc-test-device"
        fd = os.memfd_create(name)
        qmp.send_fd(fd, "dev0")
        os.close(fd)
        ts.check(any(name in t for t in qemu_fds(proc.pid).values()),
                 f"{what}: QEMU holds the memfd after getfd")
        before = attaches(svc)
        try:
            qmp.cmd("device_add", driver="vfio-pci", id="vfio0", bus="rp0", fd="dev0",
                    **{"dma-service": "ds0"}, **extra_dev)
            err = None
        except ts.Fail as e:
            err = str(e)
        ts.check(err is not None and all(w in err for w in want),
                 f"{what}: device_add fails with {want}: {err}")
        ts.check(not any(name in t for t in qemu_fds(proc.pid).values()),
                 f"{what}: QEMU closed the device fd after the failed realize")
        st = {p: qmp.cmd("qom-get", path="/objects/ds0", property=p)
              for p in ("devices", "devices-blocked", "connected", "broken")}
        ts.check(st["devices"] == 0 and st["devices-blocked"] == 0 and st["connected"]
                 and not st["broken"],
                 f"{what}: qom-get ds0 {st}: no devices, the session still works")
        time.sleep(0.2)
        delta = attaches(svc) - before
        ts.check(delta == attach_delta,
                 f"{what}: {delta} DEVICE_ATTACH reached the service (want {attach_delta})")
        qmp.cmd("quit")
        qmp.close()
        ts.check(proc.wait(60) == 0, f"{what}: QEMU quits with 0")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def mtree_unplug(qemu, tmp):
    """device_del of a device whose BAR was in the flat view at an "info
    mtree -f": QEMU must finalize it (DEVICE_DELETED).  -accel qtest: the
    test writes what firmware and the guest's ACPI eject would."""
    what = "unplug after info mtree -f"
    qmp_path = os.path.join(tmp, "mtree-qmp.sock")
    qt_path = os.path.join(tmp, "mtree-qtest.sock")
    for p in (qmp_path, qt_path):
        if os.path.exists(p):
            os.unlink(p)
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(qt_path)
    lsock.listen(1)
    lsock.settimeout(60)
    log = open(os.path.join(tmp, "qemu-mtree.log"), "w")
    proc = subprocess.Popen([
        qemu, "-accel", "qtest", "-qtest", f"unix:{qt_path}", "-nodefaults", "-display", "none",
        "-L", "/usr/share/seabios", "-L", "/usr/share/qemu", "-machine", "q35",
        "-device", "pcie-root-port,id=rp0,chassis=1,addr=0x1", "-device", "edu,id=edu0,bus=rp0",
        "-qmp", f"unix:{qmp_path},server=on,wait=off"], stdout=log, stderr=subprocess.STDOUT)
    try:
        qt_sock = lsock.accept()[0]
        qt_file = qt_sock.makefile("rw")

        def qt(cmd):
            qt_file.write(cmd + "\n")
            qt_file.flush()
            ans = qt_file.readline().strip()
            if not ans.startswith("OK"):
                raise ts.Fail(f"{what}: qtest '{cmd}': {ans}")
            return ans

        def cfg(bus, devfn, reg, val):
            qt(f"outl 0xcf8 0x{0x80000000 | bus << 16 | devfn << 8 | reg:x}")
            qt(f"outl 0xcfc 0x{val:x}")

        qmp = ts.wait_for("QMP", lambda: ts.qmp_connect(qmp_path, proc), 60)
        # rp0 (00:01.0): bus 1, a window at 0xfe000000, MEM + master; edu's BAR0 there
        cfg(0, 8, 0x18, 0x00010100)
        cfg(0, 8, 0x20, 0xfe00fe00)
        cfg(0, 8, 0x04, 6)
        cfg(1, 0, 0x10, 0xfe000000)
        cfg(1, 0, 0x04, 6)
        ans = qt("readl 0xfe000000")
        ts.check(int(ans.split()[1], 16) == 0x010000ed, f"{what}: edu's id through BAR0: {ans}")
        mtree = qmp.cmd("human-monitor-command", **{"command-line": "info mtree -f"})
        ts.check("edu-mmio" in mtree, f"{what}: edu's BAR0 is in the flat view")
        bsel = qmp.cmd("qom-get", path="/machine/peripheral/rp0/rp0", property="acpi-pcihp-bsel")
        qmp.cmd("device_del", id="edu0")
        qt(f"outl 0xcd0 0x{bsel:x}")
        qt("outl 0xcc8 0x1")

        def deleted():
            qmp.cmd("query-status")
            return any(e["event"] == "DEVICE_DELETED" and e["data"].get("device") == "edu0"
                       for e in qmp.events) or None
        ts.wait_for(f"{what}: DEVICE_DELETED for edu0 (QEMU finalized the device)", deleted, 10)
        ts.log(f"{what}: DEVICE_DELETED")
        qmp.cmd("quit")
        qmp.close()
        ts.check(proc.wait(60) == 0, f"{what}: QEMU quits with 0")
    finally:
        lsock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def run_vfio_checks(qemu, svc, tmp):
    # fd=N: /dev/null, inherited by QEMU under the same number.
    null_fd = os.open("/dev/null", os.O_RDWR)
    try:
        dev = f"vfio-pci,fd={null_fd},dma-service=ds0"
        fds = [null_fd]
        cold(qemu, svc, "cold fd=/dev/null", ["-device", dev],
             ["the service could not attach the device", "Operation not supported",
              "has no devices"], 1, fds)
        cold(qemu, svc, "vIOMMU", ["-device", "intel-iommu", "-device", dev],
             ["vIOMMU (AS", "remove it or use iommufd="], 0, fds)
        cold(qemu, svc, "iommufd= and dma-service=",
             ["-object", "iommufd,id=iommufd0", "-device", dev + ",iommufd=iommufd0"],
             ["'iommufd' and 'dma-service' cannot be used together"], 0, fds)
        cold(qemu, svc, "enable-migration=on", ["-device", dev + ",enable-migration=on"],
             ["dma-service devices cannot migrate"], 0, fds)
        cold(qemu, svc, "-only-migratable", ["-only-migratable", "-device", dev],
             ["disallowing migration blocker", "dma-service devices cannot migrate"], 0, fds)
    finally:
        os.close(null_fd)
    hotplug(qemu, svc, tmp, {}, "hotplug fd=memfd",
            ["the service could not attach the device", "Operation not supported"], 1)
    hotplug(qemu, svc, tmp, {"iommufd": "iommufd0"}, "hotplug iommufd=",
            ["'iommufd' and 'dma-service' cannot be used together"], 0)
    mtree_unplug(qemu, tmp)


def main():
    need = ["DMASVC", "DMASVCCTL", "BUILD_QEMU"]
    env = {k: os.environ.get(k, "") for k in need}
    if not all(env.values()):
        print(f"test_vfio: FAIL: environment {need} not all set")
        return 1
    import tempfile
    tmp = tempfile.mkdtemp(prefix="dmasvc-qemu-vfio-")
    qemu = subprocess.run([env["BUILD_QEMU"]], stdout=subprocess.PIPE, text=True,
                          check=True).stdout.strip().splitlines()[-1]
    svc = ts.Service(env["DMASVC"], env["DMASVCCTL"], tmp)
    svc.start()
    try:
        run_vfio_checks(qemu, svc, tmp)
        ok = svc.stop() == 0
    except ts.Fail as e:
        print(f"test_vfio: FAIL: {e}")
        print(ts.read(svc.logfile())[-3000:])
        ok = False
    finally:
        svc.stop()
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_vfio: {'PASS' if ok else 'FAIL (kept ' + tmp + ')'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
