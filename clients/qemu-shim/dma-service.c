/*
 * dma-service: hand guest RAM to the dmasvc DMA mapping service
 *
 * `-object dma-service,id=ds0,socket=PATH|fd=FD[,timeout-ms=N][,reconnect-ms=N]`
 *
 * fd= is a Unix SOCK_SEQPACKET socket a manager already connected to the
 * service (a number, or a name passed with the monitor's getfd), as libvirt
 * passes `-object iommufd,fd=`.  Such a connection cannot be made again:
 * once it breaks, the object stays broken (plugs are refused) until it is
 * deleted and added again with a new fd.
 *
 * Read-only state for `qom-get`: connected, broken, resumed (the last
 * reconnect resumed the same session), session-id, regions (the service's
 * regions of this VM), populated-bytes (what this side has told the service
 * is populated), devices and devices-blocked.
 *
 * Devices: vfio-pci's dma-service=ds0 (hw/vfio/vfio-dma-service.c) attaches
 * them through dma_service_device_attach (include/system/dma-service.h).
 * While the object has devices it cannot be deleted.  The device files stay
 * bound to the service's iommufd context, which the kernel keeps alive with
 * its IOAS, mappings and pins while they are bound.  The safety valve
 * (ds_block_devices) detaches them from the IOAS on QEMU's own fd; a blocked
 * device stays bound to the old context, and only device_del + device_add
 * restores its DMA.
 *
 * Restart of the service (docs/restart.md, "What a VM behind QEMU sees"):
 *   - A session is *resumable* when the service gave a non-zero token in
 *     HELLO (dmasvc_resumable: iommufd with --keep-sessions) and this
 *     object can connect again (socket=, reconnect-ms > 0).  The kernel
 *     then keeps the session's IOAS, mappings and device attachments while
 *     no service runs, so the devices keep their DMA.
 *   - When the connection is lost with a resumable session, the devices
 *     are NOT blocked (@keep_dma).  While disconnected: a populate (plug)
 *     is vetoed, as before; a discard (unplug) of a handed-over region, a
 *     change of the memory map (region add or del), a device detach, or
 *     any failure other than a vetoed populate fires the valve: the only
 *     ways memory the guest gave up could stay reachable, or the service's
 *     record and QEMU's view could part.  A non-resumable session (token
 *     0: type1, the software model, no --keep-sessions; or fd=, or
 *     reconnect-ms=0) fires the valve at once, as before.
 *   - The reconnect timer, @keep_dma and no device blocked: dmasvc_reconnect
 *     on the same client (resume with the token, memories and regions
 *     re-added, libdmasvc's bitmap replayed; the service repairs and counts
 *     any mismatch).  Resumed: online again, the devices attached all
 *     along, nothing replayed through the listener.  libdmasvc's bitmap
 *     equals QEMU's view then: a bit changes only when an event completed,
 *     every populate that failed was vetoed (virtio-mem keeps the block
 *     unplugged) and every discard that failed, or could not be sent,
 *     fired the valve (so @keep_dma is false).  An event in flight at the
 *     crash fails with -ECONNRESET and leaves the bitmap alone: a populate
 *     the dead service had already mapped is a block the guest never got
 *     (vetoed; the device may reach it until the resume's complement
 *     DISCARD unmaps it, a logged repair: it is this VM's own memory, zero
 *     since its last discard punched it); a discard in flight fired the
 *     valve before virtio-mem punched the block.
 *   - Not resumed (grace expired, fresh session, or the resume failed once
 *     the service answered), or a device blocked: the valve (a device the
 *     service already detached is detached again without error: the kernel
 *     detaches only what is attached), then the state handed over from
 *     QEMU's view as before (a fresh client, listener unregistered and
 *     registered again).  With a device blocked and a resumable session,
 *     the kept session is first resumed and closed (BYE), so the service
 *     releases its copy of the device files at once instead of after its
 *     grace period, and device_del + device_add can bind them again.
 *     Never both paths on one session.
 *   - A failed attempt is retried after reconnect-ms, or four times what it
 *     held the main loop (a HELLO that waits for timeout-ms on a socket
 *     held by systemd but not served yet) if longer (ds_retry).
 *   - Info lines: "resumed session N at PATH" or "reconnected to PATH (new
 *     session N)"; traces dma_service_disconnected (what broke, whether
 *     the devices keep DMA), dma_service_valve (why), dma_service_resume
 *     (the result of dmasvc_reconnect) and dma_service_reconnect.
 *
 * A MemoryListener on address_space_memory tells the service, through
 * libdmasvc, which guest RAM is there and which of it the guest may use;
 * the service keeps the IOMMU mappings of its devices equal to that.
 *
 * Vocabulary:
 *   memory   one RAMBlock's fd, sent once (dmasvc_memory_add), refcounted by
 *            the regions that use it
 *   region   one RAM MemoryRegionSection: iova = offset_within_address_space,
 *            mem_offset = ram_block->fd_offset + offset_within_region
 *   plain    a region without a RamDiscardManager: populated as a whole when
 *            added, removed as a whole (the service unmaps it) when deleted
 *   managed  a region with a RamDiscardManager (virtio-mem): a
 *            RamDiscardListener populates/discards granules as the manager
 *            plugs and unplugs them; a failed populate vetoes the plug
 *   online   connected, not broken, not closing: only then are requests sent
 *   broken   a request failed in a way that leaves the service's state
 *            unknown (connection lost, timeout, failed discard); nothing is
 *            sent until the reconnect timer has resumed the session or
 *            connected again and handed the whole state over again
 *            (listener unregistered + registered: QEMU's own view is the
 *            truth, not a replay log); see "Restart" above
 *
 * Firmware and option ROMs that aux-ram-share=on puts in unsealed memfds
 * (created without MFD_ALLOW_SEALING, so they can never get F_SEAL_SHRINK,
 * which the service requires) are left out with a warning: no device needs
 * to DMA from them.  RAM owned by a memory backend must be accepted: if it is
 * not fd-backed or not sealed, creating the object fails with a hint.
 *
 * Locking: everything here runs with the BQL held (listener callbacks, the
 * RamDiscardManager's notifications, the reconnect timer, QOM hooks).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/notify.h"
#include "qemu/queue.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qom/object_interfaces.h"
#include "exec/memory.h"
#include "exec/address-spaces.h"
#include "exec/ramblock.h"
#include "hw/qdev-core.h"
#include "monitor/monitor.h"
#include "system/hostmem.h"
#include "system/system.h"
#include "system/dma-service.h"
#include "hw/vfio/vfio-common.h"
#include "trace.h"

#include <sys/ioctl.h>
#include <linux/vfio.h>
#include <dmasvc/dmasvc.h>
#include <dmasvc/proto.h>

OBJECT_DECLARE_SIMPLE_TYPE(DmaService, DMA_SERVICE)

#define DMA_SERVICE_TIMEOUT_MS 5000
#define DMA_SERVICE_RECONNECT_MS 1000
#define DMA_SERVICE_MAX_PREFAULT_THREADS 64 /* dmasvc_set_prefault_threads: -EINVAL above */

typedef struct DmaServiceMemory {
    RAMBlock *rb;              /* identity; valid while @users > 0 */
    uint32_t mem_id;
    unsigned users;            /* regions using it */
    QLIST_ENTRY(DmaServiceMemory) next;
} DmaServiceMemory;

/*
 * Plain RAM (no RamDiscardManager) is never discarded in part, so it is
 * handed over in the largest areas the service and iommufd can use: the
 * section is cut into maximal blocks aligned (in IOVA and in the file) to
 * a power of two of at most DS_PLAIN_GRANULE_MAX, and runs of equal blocks
 * are one service region each, at that granule: a head of growing
 * granules up to the first well-aligned address, a body of 1 GiB (or the
 * largest alignment iova and file offset share) and a tail of shrinking
 * ones.  q35's low RAM at 0x100000 is 9 areas for 512 MiB, not 511 of
 * 1 MiB.  A managed (virtio-mem) section is one part at the manager's
 * granularity.
 */
#define DS_PLAIN_GRANULE_MAX (1ULL << 30)
#define DS_MAX_PARTS 48            /* 2 per power of two from 4 KiB to 1 GiB, and more */
/* Most bytes one populate SQE of plain RAM names: its completion must come
 * well within timeout-ms (pinning 256 MiB takes a few hundred ms here). */
#define DS_POPULATE_PIECE (256ULL << 20)
/*
 * Most bytes of plain RAM in flight before the shim waits for them: the
 * service completes the SQEs of one burst together, so the wait for the
 * first completion is the time to pin all of them.  Each wait gets
 * ds_wait_ms() for what is in flight.
 */
#define DS_POPULATE_INFLIGHT (512ULL << 20)
#define DS_POPULATE_INFLIGHT_SQES 128  /* well below the default SQ's 256 */

/* Populates of plain RAM submitted and not yet reaped (ds_reap). */
typedef struct DsInflight {
    unsigned n;
    uint64_t bytes;
} DsInflight;

typedef struct DmaServicePart {
    uint64_t offset;           /* inside the section */
    uint64_t size;
    uint64_t granule;
    uint32_t region_id;        /* valid when the region's @mem != NULL */
} DmaServicePart;

typedef struct DmaServiceRegion {
    DmaService *s;
    MemoryRegionSection section;  /* copy: a reference on .mr, no .fv */
    DmaServiceMemory *mem;     /* NULL until registered at the service */
    unsigned nparts;           /* >= 1; managed: 1 */
    DmaServicePart part[DS_MAX_PARTS];
    uint32_t flags;            /* DMASVC_REGION_* */
    bool managed;              /* has a RamDiscardManager */
    bool rdl_registered;       /* @rdl is registered with the manager */
    RamDiscardListener rdl;
    QLIST_ENTRY(DmaServiceRegion) next;
} DmaServiceRegion;

/* A device attached to the session (dma_service_device_attach). */
typedef struct DmaServiceDevice {
    VFIODevice *vbasedev;      /* its fd is QEMU's, closed after the detach */
    uint32_t dev_id;           /* the service's id, for dmasvc_device_detach */
    uint32_t session_id;       /* the session it was attached in */
    bool blocked;              /* detached from the IOAS by the safety valve */
    QLIST_ENTRY(DmaServiceDevice) next;
} DmaServiceDevice;

struct DmaService {
    Object parent_obj;

    /* Properties; fixed once the object is complete.  Exactly one of
     * @socket and @sock_fd is set. */
    char *socket;
    int sock_fd;               /* fd=: its socket until connected, else -1 */
    char *endpoint;            /* for messages: the socket path or "fd=NAME" */
    uint32_t timeout_ms;
    uint32_t reconnect_ms;
    uint32_t prefault_threads; /* 0: libdmasvc's default */

    /*
     * NULL until complete connects; while broken, the old connection until
     * ds_resync replaces it.
     */
    struct dmasvc_client *client;
    bool complete;             /* user_creatable complete ran successfully */
    bool discard_disabled;     /* uncoordinated discards disabled by us */
    bool broken;               /* see the file header */
    /*
     * While broken: the session was resumable when it broke and nothing
     * since fired the valve, so the devices keep their DMA and the
     * reconnect timer resumes the session.
     */
    bool keep_dma;
    bool resumed;              /* the last reconnect resumed the session */
    int watch_fd;              /* the control socket watched for a hangup, or -1 */
    bool closing;              /* finalize: the BYE unmaps everything */
    bool replaying;            /* in ram_discard_manager_register_listener */
    bool machine_done_added;   /* @machine_done is in the notifier list */
    /*
     * The first fatal error found before the machine was ready; reported by
     * complete or ds_machine_done.
     */
    Error *setup_error;
    MemoryListener listener;
    Notifier machine_done;
    QEMUTimer *reconnect_timer;
    GHashTable *warned;        /* RAMBlock idstrs already warned about */

    QLIST_HEAD(, DmaServiceMemory) memories;
    QLIST_HEAD(, DmaServiceRegion) regions;  /* known to the listener */
    QLIST_HEAD(, DmaServiceRegion) adds;     /* region_add since begin */
    QLIST_HEAD(, DmaServiceRegion) dels;     /* region_del since begin */
    QLIST_HEAD(, DmaServiceDevice) devices;  /* attached vfio devices */
};

static bool ds_online(const DmaService *s)
{
    return s->client && !s->broken && !s->closing;
}

/*
 * ds_set_broken: the service's state is unknown after a failure @err
 * (-errno); stop talking to it and arm the reconnect timer.
 */
static void ds_fail(DmaService *s, Error *err);

/* ds_conn_error: true for errors after which the connection is unusable. */
static bool ds_conn_error(int err)
{
    return err == -ENOTCONN || err == -ECONNRESET || err == -EPIPE ||
           err == -ETIMEDOUT || err == -EPROTO || err == -EBADF ||
           err == -ECONNREFUSED;
}

/* ds_can_reconnect: the connection can be made again (socket=, reconnect-ms). */
static bool ds_can_reconnect(DmaService *s)
{
    return s->reconnect_ms && s->socket;
}

/*
 * ds_block_devices: the safety valve (call it through ds_valve).  The
 * device files stay bound to the service's iommufd context, which the
 * kernel keeps alive with its IOAS, mappings and pins while they are bound;
 * so detach each device from its IOAS on QEMU's own fd (any holder of the
 * bound file may: vfio_df_ioctl_detach_pt; the kernel returns 0 for a
 * device that is not attached, e.g. one the service detached already).
 * The device then sits in the blocking domain: no DMA, no pins.  Warns
 * once per device.  Never fails: a device that cannot be blocked is
 * reported.
 */
static void ds_block_devices(DmaService *s)
{
    DmaServiceDevice *d;

    QLIST_FOREACH(d, &s->devices, next) {
        struct vfio_device_detach_iommufd_pt detach = {
            .argsz = sizeof(detach),
            .flags = 0,
        };
        int ret;

        if (d->blocked) {
            continue;
        }
        ret = ioctl(d->vbasedev->fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach);
        ret = ret ? -errno : 0;
        trace_dma_service_device_block(d->vbasedev->name, ret);
        if (ret) {
            error_report("dma-service '%s': cannot block the DMA of %s after"
                         " the session broke: %s; it may still reach memory"
                         " the service had mapped",
                         object_get_canonical_path_component(OBJECT(s)),
                         d->vbasedev->name, strerror(-ret));
            continue;
        }
        d->blocked = true;
        warn_report("dma-service '%s': DMA of %s blocked: the session broke;"
                    " device_del + device_add it to restore",
                    object_get_canonical_path_component(OBJECT(s)),
                    d->vbasedev->name);
    }
}

/*
 * ds_valve: the devices may no longer keep their DMA (@why, for the trace):
 * block them now, and make the reconnect hand the state over afresh.
 */
static void ds_valve(DmaService *s, const char *why)
{
    s->keep_dma = false;
    trace_dma_service_valve(why);
    ds_block_devices(s);
}

/*
 * ds_keeps_dma: may the devices keep their DMA while the connection is
 * down?  Only when the service keeps the session across its restart and
 * this object can connect again to resume it.
 */
static bool ds_keeps_dma(DmaService *s)
{
    return ds_can_reconnect(s) && s->client && dmasvc_resumable(s->client) &&
           s->complete && phase_check(PHASE_MACHINE_READY);
}

/*
 * ds_set_broken: see ds_fail's declaration.  @vetoed: nothing the guest
 * gave up is involved (a populate whose caller vetoes it, or a hangup
 * between requests): with a resumable session the devices keep their DMA;
 * every other failure fires the valve (the file header, "Restart").
 */
static void ds_watch(DmaService *s, bool on);

static void ds_set_broken_ex(DmaService *s, int err, const char *what,
                             bool vetoed)
{
    if (s->closing) {
        return;
    }
    if (s->broken) {
        if (!vetoed && s->keep_dma) {
            ds_valve(s, what);
        }
        return;
    }
    s->broken = true;
    s->resumed = false;
    ds_watch(s, false);
    s->keep_dma = vetoed && ds_conn_error(err) && ds_keeps_dma(s);
    trace_dma_service_broken(what, err);
    trace_dma_service_disconnected(what, err, s->keep_dma);
    if (!s->keep_dma) {
        ds_valve(s, what);
    }
    if (!s->complete || !phase_check(PHASE_MACHINE_READY)) {
        Error *e = NULL;

        /* Before the guest runs, a VM without its DMA mappings must not start. */
        error_setg(&e, "dma-service '%s': %s failed before the machine started:"
                   " %s (is dmasvc running at %s, and answering within"
                   " timeout-ms=%u plus 1 s per GiB it pins?)",
                   object_get_canonical_path_component(OBJECT(s)), what,
                   strerror(-err), s->endpoint, s->timeout_ms);
        ds_fail(s, e);
        return;
    }
    warn_report("dma-service '%s': %s failed: %s; %s",
                object_get_canonical_path_component(OBJECT(s)), what,
                strerror(-err),
                s->keep_dma ? "devices keep their DMA; reconnecting to resume"
                " the session" :
                ds_can_reconnect(s) ? "reconnecting" :
                s->socket ? "reconnect-ms=0: giving up" :
                "fd= cannot connect again: delete the object and add it with"
                " a new fd");
    if (ds_can_reconnect(s) && s->reconnect_timer) {
        timer_mod(s->reconnect_timer,
                  qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + s->reconnect_ms);
    }
}

static void ds_set_broken(DmaService *s, int err, const char *what)
{
    ds_set_broken_ex(s, err, what, false);
}

/*
 * ds_hangup: the control socket is readable while no request runs (every
 * request runs with the BQL held, and so does this handler).  EOF or an
 * error: the service went away between requests (a crash, an upgrade's
 * exec); learn it now, not at the next plug.  Data: a late reply to a
 * request that timed out, which libdmasvc drops at the next request; stop
 * watching until the next connection rather than spin on it.
 */
static void ds_hangup(void *opaque)
{
    DmaService *s = opaque;
    char byte;
    ssize_t n = recv(s->watch_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    int err = n < 0 ? -errno : 0;

    if (err == -EAGAIN || err == -EINTR) {
        return;
    }
    trace_dma_service_hangup(n, err);
    ds_watch(s, false);
    if (n <= 0) {
        ds_set_broken_ex(s, err ? err : -ECONNRESET,
                         "the connection (closed by the service)", true);
    }
}

/*
 * ds_watch: watch the control socket of an online session for a hangup
 * (@on), or stop (before the socket is closed, and while broken).
 */
static void ds_watch(DmaService *s, bool on)
{
    int fd = on && ds_online(s) ? dmasvc_control_fd(s->client) : -1;

    if (s->watch_fd == fd) {
        return;
    }
    if (s->watch_fd >= 0) {
        qemu_set_fd_handler(s->watch_fd, NULL, NULL, NULL);
    }
    s->watch_fd = fd;
    if (fd >= 0) {
        qemu_set_fd_handler(fd, ds_hangup, NULL, s);
    }
}

/*
 * ds_fail: a configuration error (@err is consumed).  Before the machine is
 * ready (or while complete runs) the first one fails the object's creation;
 * later ones are only reported.
 */
static void ds_fail(DmaService *s, Error *err)
{
    if (!s->complete || !phase_check(PHASE_MACHINE_READY)) {
        if (!s->setup_error) {
            s->setup_error = err;
            return;
        }
        error_free(err);
        return;
    }
    error_report_err(err);
}

/* ---- memories -------------------------------------------------------- */

static const char *ds_fix_hint(void)
{
    return "use fd-backed guest RAM: -object memory-backend-memfd,id=ram0,"
           "size=... -machine memory-backend=ram0,aux-ram-share=on";
}

/*
 * ds_memory_get: the service's memory for @rb, sending the fd the first time.
 * Needs ds_online().  Returns the memory (one more user) or NULL; on NULL,
 * *@err is -errno (a connection error has already broken the session) and
 * @errp says why (nothing set for connection errors).
 */
static DmaServiceMemory *ds_memory_get(DmaService *s, RAMBlock *rb, int fd,
                                       int *err, Error **errp)
{
    DmaServiceMemory *m;
    struct stat st;
    int ret;

    QLIST_FOREACH(m, &s->memories, next) {
        if (m->rb == rb) {
            m->users++;
            return m;
        }
    }
    if (fstat(fd, &st) < 0 || st.st_size <= 0) {
        *err = -EINVAL;
        error_setg(errp, "dma-service: RAM block '%s': cannot size its fd",
                   qemu_ram_get_idstr(rb));
        return NULL;
    }
    ret = dmasvc_memory_add(s->client, fd, st.st_size, 0);
    trace_dma_service_memory_add(qemu_ram_get_idstr(rb), fd, st.st_size, ret);
    if (ret < 0) {
        *err = ret;
        if (ds_conn_error(ret)) {
            ds_set_broken(s, ret, "memory_add");
        } else {
            error_setg(errp, "dma-service: the service refused RAM block '%s'"
                       " (%s): %s", qemu_ram_get_idstr(rb), strerror(-ret),
                       dmasvc_last_error(s->client));
        }
        return NULL;
    }
    m = g_new0(DmaServiceMemory, 1);
    m->rb = rb;
    m->mem_id = ret;
    m->users = 1;
    QLIST_INSERT_HEAD(&s->memories, m, next);
    return m;
}

/*
 * ds_memory_put: drop one user.  The memory stays known (a transaction that
 * moves sections of a RAM block removes them all before adding the new
 * ones) until ds_memory_sweep.
 */
static void ds_memory_put(DmaServiceMemory *m)
{
    assert(m->users);
    m->users--;
}

/* ds_memory_sweep: remove the memories no region uses.  Never fails. */
static void ds_memory_sweep(DmaService *s)
{
    DmaServiceMemory *m, *next;
    int ret;

    QLIST_FOREACH_SAFE(m, &s->memories, next, next) {
        if (m->users) {
            continue;
        }
        if (ds_online(s)) {
            ret = dmasvc_memory_remove(s->client, m->mem_id);
            trace_dma_service_memory_remove(m->mem_id, ret);
            if (ret < 0) {
                ds_set_broken(s, ret, "memory_remove");
            }
        }
        QLIST_REMOVE(m, next);
        g_free(m);
    }
}

/* ---- regions --------------------------------------------------------- */

/*
 * ds_rdl_range: the region a RamDiscardListener belongs to, and @section's
 * range inside that region (the manager's sections lie within it).
 */
static DmaServiceRegion *ds_rdl_range(RamDiscardListener *rdl,
                                      const MemoryRegionSection *section,
                                      uint64_t *off, uint64_t *len)
{
    DmaServiceRegion *r = container_of(rdl, DmaServiceRegion, rdl);

    *off = section->offset_within_address_space -
           r->section.offset_within_address_space;
    *len = int128_get64(section->size);
    return r;
}

static int ds_notify_populate(RamDiscardListener *rdl,
                              MemoryRegionSection *section)
{
    uint64_t off, len;
    DmaServiceRegion *r = ds_rdl_range(rdl, section, &off, &len);
    DmaService *s = r->s;
    int ret;

    if (!ds_online(s) || !r->mem) {
        /* Offline: veto plugs; a replay is redone by the resync. */
        ret = s->replaying ? 0 : -ENOTCONN;
        trace_dma_service_populate(r->part[0].region_id, off, len, ret);
        return ret;
    }
    ret = dmasvc_populate(s->client, r->part[0].region_id, off, len);
    trace_dma_service_populate(r->part[0].region_id, off, len, ret);
    if (ret < 0 && (ds_conn_error(ret) || s->replaying)) {
        /*
         * Connection errors: the event may still complete later.  A replay
         * (listener registration, after a reconnect too) cannot be vetoed:
         * the manager only logs it, and the block would stay plugged but
         * unmapped.  Either way, resync from scratch.
         */
        ds_set_broken_ex(s, ret, s->replaying ? "replay of plugged memory" :
                         "populate", !s->replaying);
    }
    return ret < 0 ? ret : 0;
}

static void ds_notify_discard(RamDiscardListener *rdl,
                              MemoryRegionSection *section)
{
    uint64_t off, len;
    DmaServiceRegion *r = ds_rdl_range(rdl, section, &off, &len);
    DmaService *s = r->s;
    int ret;

    if (!ds_online(s) || !r->mem) {
        /*
         * Unregistered: nothing mapped.  Closing: the BYE covers it.
         * Disconnected: the kept session still maps it; the resync hands
         * the state over afresh.
         */
        if (r->mem && s->broken && !s->closing && s->keep_dma) {
            ds_valve(s, "discard while disconnected");
        }
        return;
    }
    ret = dmasvc_discard(s->client, r->part[0].region_id, off, len);
    trace_dma_service_discard(r->part[0].region_id, off, len, ret);
    if (ret < 0) {
        /* A discard cannot be refused: the service's state is wrong now. */
        ds_set_broken(s, ret, "discard");
    }
}

/*
 * ds_region_check: can @section be handed to the service?  Returns 1 (yes,
 * *@fd set), 0 (leave it out: traced, or warned about), or -1 with @errp set
 * (a configuration error).
 */
static int ds_region_check(DmaService *s, MemoryRegionSection *section,
                           int *fd, Error **errp)
{
    MemoryRegion *mr = section->mr;
    RAMBlock *rb = mr->ram_block;
    uint64_t iova = section->offset_within_address_space;
    uint64_t size = int128_get64(section->size);
    bool backend_ram = mr->owner &&
                       object_dynamic_cast(mr->owner, TYPE_MEMORY_BACKEND);
    int seals;

    if (!memory_region_is_ram(mr) || memory_region_is_ram_device(mr) ||
        memory_region_is_protected(mr) || (iova & (1ULL << 63)) || !rb) {
        return 0;
    }
    if (!QEMU_IS_ALIGNED(iova | size | section->offset_within_region,
                         qemu_real_host_page_size())) {
        trace_dma_service_skip(memory_region_name(mr), iova, size,
                               "not page aligned");
        return 0;
    }
    *fd = memory_region_get_fd(mr);
    if (*fd < 0) {
        error_setg(errp, "dma-service: RAM '%s' at 0x%" PRIx64 " is not"
                   " fd-backed; %s", memory_region_name(mr), iova,
                   ds_fix_hint());
        return -1;
    }
    seals = fcntl(*fd, F_GET_SEALS);
    if (seals >= 0 && !(seals & F_SEAL_SHRINK)) {
        if (backend_ram) {
            error_setg(errp, "dma-service: memory backend RAM '%s' is an"
                       " unsealed memfd; %s (seal=on, the default)",
                       memory_region_name(mr), ds_fix_hint());
            return -1;
        }
        /* aux-ram-share's firmware/ROM memfds: see the file header. */
        if (g_hash_table_add(s->warned, g_strdup(qemu_ram_get_idstr(rb)))) {
            warn_report("dma-service: leaving out '%s' (an unsealed memfd:"
                        " firmware or option ROM); devices cannot DMA to or"
                        " from it", memory_region_name(mr));
        }
        trace_dma_service_skip(memory_region_name(mr), iova, size,
                               "unsealed memfd");
        return 0;
    }
    return 1;
}

/*
 * ds_region_listen: register the RamDiscardListener of managed region @r.
 * Online, the manager's replay populates every plugged part now; offline,
 * the replay is accepted without a request (the resync replays it again)
 * and the listener is there to veto plugs until the service is back.
 */
static void ds_region_listen(DmaService *s, DmaServiceRegion *r)
{
    RamDiscardManager *rdm =
        memory_region_get_ram_discard_manager(r->section.mr);

    ram_discard_listener_init(&r->rdl, ds_notify_populate, ds_notify_discard,
                              true);
    s->replaying = true;
    ram_discard_manager_register_listener(rdm, &r->rdl, &r->section);
    s->replaying = false;
    r->rdl_registered = true;
}

/* ds_parts_remove: remove the first @n parts of @r at the service. */
static void ds_parts_remove(DmaService *s, DmaServiceRegion *r, unsigned n)
{
    int ret;

    for (unsigned i = 0; i < n && ds_online(s); i++) {
        ret = dmasvc_region_remove(s->client, r->part[i].region_id);
        trace_dma_service_region_remove(r->part[i].region_id, ret);
        if (ret < 0) {
            ds_set_broken(s, ret, "region_remove");
        }
    }
}

/*
 * ds_region_register: register @r's parts at the service and populate them
 * (plain: submit populates of at most DS_POPULATE_PIECE bytes each or one
 * granule, counted in *@inflight and reaped by the caller, or here
 * whenever DS_POPULATE_INFLIGHT bytes or DS_POPULATE_INFLIGHT_SQES are in
 * flight; managed: register the RamDiscardListener,
 * whose replay populates the plugged parts now).  Needs ds_online().
 * Failures break the session or go to ds_fail(); a refused part leaves
 * none of @r registered.
 */
static void ds_reap(DmaService *s, struct dmasvc_queue *q, DsInflight *inflight);

static void ds_region_register(DmaService *s, DmaServiceRegion *r, int fd,
                                   struct dmasvc_queue *q, DsInflight *inflight)
{
    MemoryRegionSection *sec = &r->section;
    RAMBlock *rb = sec->mr->ram_block;
    uint64_t base_offset = rb->fd_offset + sec->offset_within_region;
    unsigned i;
    Error *err = NULL;
    int ret;

    r->mem = ds_memory_get(s, rb, fd, &ret, &err);
    if (!r->mem) {
        if (err) {
            ds_fail(s, err);
        }
        return;
    }
    for (i = 0; i < r->nparts; i++) {
        DmaServicePart *p = &r->part[i];
        struct dmasvc_region_desc d = {
            .mem_id = r->mem->mem_id,
            .flags = r->flags,
            .mem_offset = base_offset + p->offset,
            .size = p->size,
            .iova = sec->offset_within_address_space + p->offset,
            .granule = p->granule,
        };

        ret = dmasvc_region_add(s->client, &d);
        trace_dma_service_region_add(memory_region_name(sec->mr), d.iova,
                                     d.size, d.mem_offset, d.granule, d.flags,
                                     ret);
        if (ret < 0) {
            if (ds_conn_error(ret)) {
                ds_set_broken(s, ret, "region_add");
            } else {
                error_setg(&err, "dma-service: the service refused RAM '%s'"
                           " at 0x%" PRIx64 " size 0x%" PRIx64 " granule 0x%"
                           PRIx64 " (%s): %s", memory_region_name(sec->mr),
                           d.iova, d.size, d.granule, strerror(-ret),
                           dmasvc_last_error(s->client));
                ds_fail(s, err);
            }
            ds_parts_remove(s, r, i);
            ds_memory_put(r->mem);
            r->mem = NULL;
            return;
        }
        p->region_id = ret;
    }

    if (r->managed) {
        ds_region_listen(s, r);
        return;
    }
    for (i = 0; i < r->nparts; i++) {
        DmaServicePart *p = &r->part[i];
        uint64_t piece = MAX(p->granule, DS_POPULATE_PIECE);

        for (uint64_t off = 0; off < p->size; off += piece) {
            uint64_t len = MIN(piece, p->size - off);

            if (inflight->n &&
                (inflight->n >= DS_POPULATE_INFLIGHT_SQES ||
                 inflight->bytes + len > DS_POPULATE_INFLIGHT)) {
                ds_reap(s, q, inflight);
                if (!ds_online(s)) {
                    return;
                }
            }
            ret = dmasvc_submit_populate(q, p->region_id, off, len,
                                         (uintptr_t)r);
            trace_dma_service_populate(p->region_id, off, len, ret);
            if (ret < 0) {
                ds_set_broken(s, ret, "populate");
                return;
            }
            inflight->n++;
            inflight->bytes += len;
        }
    }
}

/* ds_region_destroy: undo ds_region_register and free @r.  Never fails. */
static void ds_region_destroy(DmaService *s, DmaServiceRegion *r)
{
    if (r->rdl_registered) {
        /* Reports every plugged part as discarded (ds_notify_discard). */
        ram_discard_manager_unregister_listener(
            memory_region_get_ram_discard_manager(r->section.mr), &r->rdl);
    }
    if (r->mem) {
        ds_parts_remove(s, r, r->nparts);
        ds_memory_put(r->mem);
    }
    memory_region_unref(r->section.mr);
    g_free(r);
}

/*
 * ds_plain_parts: cut plain RAM [@iova, @iova + @size) at file offset
 * @mem_offset (all page aligned) into parts as described over
 * DmaServicePart.  Returns the number of parts, 1..DS_MAX_PARTS: block
 * sizes only grow (head) until the cap or the end limits them, then only
 * shrink (tail), so from 4 KiB to 1 GiB there are at most 19 + 1 + 18 runs.
 */
static unsigned ds_plain_parts(uint64_t iova, uint64_t size,
                               uint64_t mem_offset, DmaServicePart *part)
{
    unsigned n = 0;
    uint64_t pos = 0;

    while (pos < size) {
        uint64_t left = size - pos;
        uint64_t b = 1ULL << ctz64((iova + pos) | (mem_offset + pos) |
                                   DS_PLAIN_GRANULE_MAX);

        while (b > left) {
            b >>= 1;
        }
        if (n && part[n - 1].granule == b) {
            part[n - 1].size += b;
        } else {
            assert(n < DS_MAX_PARTS);
            part[n++] = (DmaServicePart) { .offset = pos, .size = b,
                                           .granule = b };
        }
        pos += b;
    }
    return n;
}

/* ---- MemoryListener -------------------------------------------------- */

static void ds_region_add(MemoryListener *listener,
                          MemoryRegionSection *section)
{
    DmaService *s = container_of(listener, DmaService, listener);
    DmaServiceRegion *r;
    Error *err = NULL;
    uint64_t iova = section->offset_within_address_space;
    uint64_t size = int128_get64(section->size);
    uint64_t mem_offset;
    int fd = -1;

    switch (ds_region_check(s, section, &fd, &err)) {
    case 0:
        return;
    case -1:
        ds_fail(s, err);
        return;
    }
    r = g_new0(DmaServiceRegion, 1);
    r->s = s;
    r->section = *section;
    r->section.fv = NULL;  /* used after the transaction: no FlatView */
    memory_region_ref(section->mr);
    r->managed = memory_region_has_ram_discard_manager(section->mr);
    r->flags = (section->readonly || memory_region_is_rom(section->mr)) ?
               DMASVC_REGION_READONLY : 0;
    if (r->managed) {
        r->nparts = 1;
        r->part[0] = (DmaServicePart) {
            .size = size,
            .granule = ram_discard_manager_get_min_granularity(
                memory_region_get_ram_discard_manager(section->mr),
                section->mr),
        };
    } else {
        mem_offset = section->mr->ram_block->fd_offset +
                     section->offset_within_region;
        r->nparts = ds_plain_parts(iova, size, mem_offset, r->part);
    }
    QLIST_INSERT_HEAD(&s->adds, r, next);
}

static void ds_region_del(MemoryListener *listener,
                          MemoryRegionSection *section)
{
    DmaService *s = container_of(listener, DmaService, listener);
    DmaServiceRegion *r;

    QLIST_FOREACH(r, &s->regions, next) {
        if (r->section.mr == section->mr &&
            r->section.offset_within_address_space ==
            section->offset_within_address_space &&
            int128_eq(r->section.size, section->size)) {
            QLIST_REMOVE(r, next);
            QLIST_INSERT_HEAD(&s->dels, r, next);
            return;
        }
    }
    /* Not ours: left out by ds_region_check. */
}

static void ds_begin(MemoryListener *listener)
{
    DmaService *s = container_of(listener, DmaService, listener);

    assert(QLIST_EMPTY(&s->adds) && QLIST_EMPTY(&s->dels));
}

/*
 * ds_wait_ms: how long the service gets for a request that pins @bytes:
 * timeout-ms + 1 s per GiB (rounded up), at most INT_MAX.
 */
static int ds_wait_ms(DmaService *s, uint64_t bytes)
{
    uint64_t ms = s->timeout_ms + 1000 * DIV_ROUND_UP(bytes, 1ULL << 30);

    return MIN(ms, INT_MAX);
}

/*
 * ds_reap: wait for the populates of plain regions in @inflight, submitted
 * on @q, each wait getting ds_wait_ms() of what is still in flight; empties
 * *@inflight.  A failed one leaves its region unpopulated and is a
 * configuration error; a timeout breaks the session.
 */
static void ds_reap(DmaService *s, struct dmasvc_queue *q, DsInflight *inflight)
{
    struct dmasvc_completion cqe[32];
    unsigned total = inflight->n, left = inflight->n, done = 0;
    int wait_ms = ds_wait_ms(s, inflight->bytes);
    int n, i;

    *inflight = (DsInflight){ 0 };
    while (left && ds_online(s)) {
        n = dmasvc_reap(q, cqe, MIN(left, ARRAY_SIZE(cqe)), wait_ms);
        if (n <= 0) {
            ds_set_broken(s, n ? n : -ETIMEDOUT, "populate");
            return;
        }
        for (i = 0; i < n; i++) {
            /*
             * libdmasvc returns only user_data submitted on @q: a region of
             * this commit, alive until the commit ends.
             */
            DmaServiceRegion *r = (void *)(uintptr_t)cqe[i].user_data;

            trace_dma_service_populated(memory_region_name(r->section.mr),
                                        ++done, total, cqe[i].res);
            if (cqe[i].res < 0 && s->complete &&
                phase_check(PHASE_MACHINE_READY)) {
                /* A replay after a reconnect or a late section: the guest
                 * runs without that RAM mapped.  Never swallow it. */
                ds_set_broken(s, cqe[i].res, "populate of RAM");
            } else if (cqe[i].res < 0) {
                Error *err = NULL;

                error_setg(&err, "dma-service: the service could not map RAM"
                           " '%s' at 0x%" PRIx64 ": %s",
                           memory_region_name(r->section.mr),
                           r->section.offset_within_address_space,
                           strerror(-cqe[i].res));
                ds_fail(s, err);
            }
        }
        left -= n;
    }
}

/*
 * ds_commit: apply the transaction: deletions first (a new section may
 * reuse their IOVA), then additions, whose populates are submitted together
 * and reaped at the end.
 */
static void ds_commit(MemoryListener *listener)
{
    DmaService *s = container_of(listener, DmaService, listener);
    struct dmasvc_queue *q = s->client ? dmasvc_default_queue(s->client) : NULL;
    DmaServiceRegion *r, *next;
    DsInflight inflight = { 0 };
    int fd;

    if (s->broken && s->keep_dma &&
        (!QLIST_EMPTY(&s->adds) || !QLIST_EMPTY(&s->dels))) {
        /* The kept session no longer matches the memory map. */
        ds_valve(s, "memory map changed while disconnected");
    }
    QLIST_FOREACH_SAFE(r, &s->dels, next, next) {
        QLIST_REMOVE(r, next);
        ds_region_destroy(s, r);
    }
    QLIST_FOREACH_SAFE(r, &s->adds, next, next) {
        QLIST_REMOVE(r, next);
        QLIST_INSERT_HEAD(&s->regions, r, next);
        if (ds_online(s)) {
            fd = memory_region_get_fd(r->section.mr);
            ds_region_register(s, r, fd, q, &inflight);
        }
        if (r->managed && !r->rdl_registered) {
            /* Offline or refused: the listener vetoes every plug. */
            ds_region_listen(s, r);
        }
    }
    ds_reap(s, q, &inflight);
    ds_memory_sweep(s);
}

/* ---- connection ------------------------------------------------------ */

static int ds_connect(DmaService *s)
{
    struct dmasvc_connect_opts opts = {
        .timeout_ms = s->timeout_ms,
        .client_tag = getpid(),
    };
    int ret;

    if (s->sock_fd >= 0) {
        ret = dmasvc_connect_fd(s->sock_fd, &opts, &s->client);
        s->sock_fd = -1;  /* consumed, whatever the result */
    } else {
        ret = dmasvc_connect(s->socket, &opts, &s->client);
    }
    trace_dma_service_connect(s->endpoint, ret);
    if (ret < 0) {
        s->client = NULL;
        return ret;
    }
    /* Kept by the client across dmasvc_reconnect; <= 64, checked when set. */
    if (s->prefault_threads) {
        dmasvc_set_prefault_threads(s->client, s->prefault_threads);
    }
    return ret;
}

/*
 * ds_resume_retry: after dmasvc_reconnect failed with @err, is the service
 * only not back yet, or gone again (try again later, the devices keep
 * their DMA: the kept session waits in the fd store)?  Transport errors
 * only; a refusal or a failed replay is not retried.
 */
static bool ds_resume_retry(int err)
{
    return err == -ECONNREFUSED || err == -ENOENT || err == -EAGAIN ||
           err == -ETIMEDOUT || err == -ECONNRESET || err == -EPIPE ||
           err == -ENOTCONN;
}

/*
 * ds_retry: arm the reconnect timer after an attempt that failed and held
 * QEMU's main loop @spent_ms: in reconnect-ms, or in four times @spent_ms
 * if that is longer.  An attempt waits up to timeout-ms for HELLO when the
 * socket is held (systemd, a keeper) but no instance serves it yet, and
 * the guest's vCPUs wait for the BQL meanwhile: so such attempts take at
 * most a fifth of the main loop's time, for a few seconds more until the
 * resume once the service is back.
 */
static void ds_retry(DmaService *s, int64_t spent_ms)
{
    int64_t delay = MAX((int64_t)s->reconnect_ms, 4 * spent_ms);

    trace_dma_service_retry(spent_ms, delay);
    timer_mod(s->reconnect_timer,
              qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + delay);
}

/*
 * ds_resume: the reconnect timer's resume path (@keep_dma, no device
 * blocked): dmasvc_reconnect on the same client.  Returns 1 when the
 * session was resumed (online again), 0 when the service is not back yet
 * (timer re-armed), -1 when the session is lost: then the valve has fired
 * and @s->client holds whatever the reconnect left (a fresh session, or a
 * dead connection), for ds_resync's fresh path to close.
 */
static int ds_resume(DmaService *s)
{
    const char *id = object_get_canonical_path_component(OBJECT(s));
    int64_t t0 = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    int ret = dmasvc_reconnect(s->client);
    bool resumed = ret == 0 && dmasvc_resumed(s->client);

    trace_dma_service_resume(dmasvc_session_id(s->client), resumed, ret);
    if (resumed) {
        s->broken = false;
        s->keep_dma = false;
        s->resumed = true;
        ds_watch(s, true);
        info_report("dma-service '%s': resumed session %u at %s: devices kept"
                    " their DMA", id, dmasvc_session_id(s->client),
                    s->endpoint);
        return 1;
    }
    if (ret < 0 && ds_resume_retry(ret)) {
        ds_retry(s, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - t0);
        return 0;
    }
    warn_report("dma-service '%s': the session at %s was not resumed (%s);"
                " blocking the devices' DMA and handing the state over"
                " afresh", id, s->endpoint,
                ret < 0 ? strerror(-ret) : "the service opened a new session");
    ds_valve(s, ret < 0 ? "resume failed" : "session not resumed");
    return -1;
}

/*
 * ds_resync: the reconnect timer, armed while the session is broken.
 * With @keep_dma and no device blocked, resume the session (ds_resume).
 * Otherwise (or when that fails) the fresh path: once a new connection is
 * up, close the old session (a kept one is resumed first, so that its BYE
 * releases it now), drop every region without a request, then register
 * the listener again, which hands the current sections and plugged blocks
 * over from scratch.  Until then, the regions stay as they are and managed
 * ones veto plugs.
 */
static void ds_resync(void *opaque)
{
    DmaService *s = opaque;
    struct dmasvc_client *old = s->client;
    bool blocked = false, tried = false;
    DmaServiceDevice *d;
    int64_t t0;
    int ret;

    if (!s->broken || s->closing) {
        return;
    }
    QLIST_FOREACH(d, &s->devices, next) {
        blocked |= d->blocked;
    }
    if (s->keep_dma && !blocked) {
        ret = ds_resume(s);
        if (ret >= 0) {
            return;
        }
        tried = true;
    }
    s->client = NULL;
    t0 = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    ret = ds_connect(s);
    trace_dma_service_reconnect(ret);
    if (ret < 0) {
        s->client = old;
        ds_retry(s, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - t0);
        return;
    }
    if (!tried && old && dmasvc_resumable(old)) {
        /* Claim the kept session only to close it: the BYE below. */
        ret = dmasvc_reconnect(old);
        trace_dma_service_release(dmasvc_session_id(old),
                                  ret == 0 && dmasvc_resumed(old), ret);
    }
    memory_listener_unregister(&s->listener);  /* broken: no requests */
    assert(QLIST_EMPTY(&s->regions) && QLIST_EMPTY(&s->memories));
    dmasvc_disconnect(old);
    s->broken = false;
    s->keep_dma = false;
    memory_listener_register(&s->listener, &address_space_memory);
    if (!s->broken) {
        ds_watch(s, true);
        info_report("dma-service '%s': reconnected to %s (new session %u)",
                    object_get_canonical_path_component(OBJECT(s)), s->endpoint,
                    dmasvc_session_id(s->client));
    }
}

static void ds_machine_done(Notifier *n, void *unused)
{
    DmaService *s = container_of(n, DmaService, machine_done);

    if (s->setup_error) {
        error_report_err(s->setup_error);
        s->setup_error = NULL;
        exit(EXIT_FAILURE);
    }
}

/* ---- QOM ------------------------------------------------------------- */

static void ds_complete(UserCreatable *uc, Error **errp)
{
    DmaService *s = DMA_SERVICE(uc);
    int ret;

    if (!s->socket == (s->sock_fd < 0)) {
        error_setg(errp, "dma-service: exactly one of 'socket' and 'fd' is"
                   " required");
        return;
    }
    ret = ram_block_uncoordinated_discard_disable(true);
    if (ret) {
        error_setg_errno(errp, -ret, "dma-service: cannot disable"
                         " uncoordinated RAM discards (virtio-balloon?)");
        return;
    }
    s->discard_disabled = true;
    ret = ds_connect(s);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "dma-service: cannot connect to the"
                         " service at '%s'", s->endpoint);
        return;
    }
    s->reconnect_timer = timer_new_ms(QEMU_CLOCK_REALTIME, ds_resync, s);
    memory_listener_register(&s->listener, &address_space_memory);
    if (s->setup_error) {
        error_propagate(errp, s->setup_error);
        s->setup_error = NULL;
        return;  /* finalize undoes the rest */
    }
    if (s->broken) {
        error_setg(errp, "dma-service: the service at '%s' failed while"
                   " receiving the guest's RAM", s->endpoint);
        return;
    }
    s->complete = true;
    ds_watch(s, true);
    if (!phase_check(PHASE_MACHINE_READY)) {
        qemu_add_machine_init_done_notifier(&s->machine_done);
        s->machine_done_added = true;
    }
}

static void ds_init(Object *obj)
{
    DmaService *s = DMA_SERVICE(obj);

    s->timeout_ms = DMA_SERVICE_TIMEOUT_MS;
    s->reconnect_ms = DMA_SERVICE_RECONNECT_MS;
    s->sock_fd = -1;
    s->watch_fd = -1;
    s->listener = (MemoryListener) {
        .name = "dma-service",
        .begin = ds_begin,
        .commit = ds_commit,
        .region_add = ds_region_add,
        .region_del = ds_region_del,
        .priority = MEMORY_LISTENER_PRIORITY_DEV_BACKEND,
    };
    s->machine_done.notify = ds_machine_done;
    s->warned = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    QLIST_INIT(&s->memories);
    QLIST_INIT(&s->regions);
    QLIST_INIT(&s->adds);
    QLIST_INIT(&s->dels);
    QLIST_INIT(&s->devices);
}

static void ds_finalize(Object *obj)
{
    DmaService *s = DMA_SERVICE(obj);

    /* Each device holds a reference (vfio-dma-service.c) until detached. */
    assert(QLIST_EMPTY(&s->devices));
    /* The BYE in dmasvc_disconnect unmaps all at once: send nothing else. */
    s->closing = true;
    ds_watch(s, false);
    memory_listener_unregister(&s->listener);
    assert(QLIST_EMPTY(&s->regions) && QLIST_EMPTY(&s->memories));
    dmasvc_disconnect(s->client);
    s->client = NULL;
    if (s->machine_done_added) {
        notifier_remove(&s->machine_done);
    }
    if (s->reconnect_timer) {
        timer_free(s->reconnect_timer);
    }
    if (s->discard_disabled) {
        ram_block_uncoordinated_discard_disable(false);
    }
    error_free(s->setup_error);
    g_hash_table_destroy(s->warned);
    if (s->sock_fd >= 0) {
        close(s->sock_fd);  /* fd= given, never connected */
    }
    g_free(s->socket);
    g_free(s->endpoint);
}

/*
 * ds_count: the registered regions (@populated false) or the bytes told to
 * the service as populated in them (@populated true); 0 without a client.
 */
static uint64_t ds_count(DmaService *s, bool populated)
{
    DmaServiceRegion *r;
    uint64_t value = 0;

    if (!s->client) {
        return 0;
    }
    QLIST_FOREACH(r, &s->regions, next) {
        for (unsigned i = 0; r->mem && i < r->nparts; i++) {
            int64_t b = dmasvc_region_populated_bytes(s->client,
                                                      r->part[i].region_id);

            value += !populated ? 1 : b > 0 ? (uint64_t)b : 0;
        }
    }
    return value;
}

/*
 * ds_can_be_deleted: object-del is refused ("object 'ds0' is in use") while
 * devices are attached: device_del them first.
 */
static bool ds_can_be_deleted(UserCreatable *uc)
{
    return QLIST_EMPTY(&DMA_SERVICE(uc)->devices);
}

/* ---- devices (include/system/dma-service.h) -------------------------- */

bool dma_service_check_usable(Object *ds, Error **errp)
{
    DmaService *s = DMA_SERVICE(ds);
    const char *id = object_get_canonical_path_component(ds);

    if (!s->complete) {
        error_setg(errp, "dma-service '%s' is not ready: its creation has not"
                   " completed", id);
        return false;
    }
    if (s->setup_error) {
        error_setg(errp, "dma-service '%s' cannot take devices: %s", id,
                   error_get_pretty(s->setup_error));
        return false;
    }
    if (s->broken || !s->client) {
        error_setg(errp, "dma-service '%s' has no working session with the"
                   " service at %s%s", id, s->endpoint,
                   ds_can_reconnect(s) ? "; try again once it reconnected" :
                   "");
        return false;
    }
    return true;
}

bool dma_service_device_attach(Object *ds, VFIODevice *vbasedev, Error **errp)
{
    DmaService *s = DMA_SERVICE(ds);
    struct dmasvc_device_info info = { 0 };
    uint64_t timeout;
    DmaServiceDevice *d;
    int ret;

    if (!dma_service_check_usable(ds, errp)) {
        return false;
    }
    /* iommufd pins every populated area inside the attach */
    timeout = ds_wait_ms(s, ds_count(s, true));
    ret = dmasvc_device_attach_ex(s->client, vbasedev->fd, timeout, &info);
    trace_dma_service_device_attach(vbasedev->name, vbasedev->fd, timeout,
                                    info.dev_id, info.iommufd_devid, ret);
    if (ret < 0) {
        error_setg(errp, "dma-service '%s': the service could not attach the"
                   " device (%s): %s; open the device's cdev again before"
                   " another try", object_get_canonical_path_component(ds),
                   strerror(-ret), dmasvc_last_error(s->client));
        if (ds_conn_error(ret)) {
            ds_set_broken(s, ret, "device_attach");
        }
        return false;
    }
    d = g_new0(DmaServiceDevice, 1);
    d->vbasedev = vbasedev;
    d->dev_id = info.dev_id;
    d->session_id = dmasvc_session_id(s->client);
    QLIST_INSERT_HEAD(&s->devices, d, next);
    vbasedev->devid = info.iommufd_devid;
    return true;
}

void dma_service_device_detach(Object *ds, VFIODevice *vbasedev)
{
    DmaService *s = DMA_SERVICE(ds);
    DmaServiceDevice *d;
    int ret;

    QLIST_FOREACH(d, &s->devices, next) {
        if (d->vbasedev == vbasedev) {
            break;
        }
    }
    if (!d) {
        error_report("dma-service '%s': BUG: %s is not attached",
                     object_get_canonical_path_component(ds), vbasedev->name);
        return;
    }
    if (s->broken && s->keep_dma && !d->blocked) {
        /* The kept session would keep the device QEMU lets go of. */
        ds_valve(s, "device detach while disconnected");
    }
    QLIST_REMOVE(d, next);
    /*
     * Only in the session it was attached in: after a break (blocked or
     * not) that session is gone, or goes with the old connection's BYE.
     */
    if (!d->blocked && ds_online(s) &&
        dmasvc_session_id(s->client) == d->session_id) {
        ret = dmasvc_device_detach(s->client, d->dev_id);
        trace_dma_service_device_detach(vbasedev->name, d->dev_id, ret);
        if (ret < 0) {
            warn_report("dma-service '%s': the service did not detach %s"
                        " (%s): %s", object_get_canonical_path_component(ds),
                        vbasedev->name, strerror(-ret),
                        dmasvc_last_error(s->client));
            if (ds_conn_error(ret)) {
                ds_set_broken(s, ret, "device_detach");
            }
        }
    } else {
        trace_dma_service_device_detach(vbasedev->name, d->dev_id, 0);
    }
    g_free(d);
}

/* The session's own record (QUERY SESSIONS without ALL_SESSIONS). */
unsigned int dma_service_max_areas(Object *ds)
{
    DmaService *s = DMA_SERVICE(ds);
    struct dmasvc_stat_session st = { 0 };

    if (!ds_online(s) ||
        dmasvc_query(s->client, DMASVC_QUERY_SESSIONS, 0, 0, &st,
                     sizeof(st), 1) != 1 ||
        st.max_areas == UINT64_MAX) {
        return 0;
    }
    return MIN(st.max_areas, UINT_MAX);
}

static bool ds_check_settable(DmaService *s, const char *name, Error **errp)
{
    if (s->client || s->complete) {
        error_setg(errp, "dma-service: '%s' cannot change after creation",
                   name);
        return false;
    }
    return true;
}

static char *ds_get_socket(Object *obj, Error **errp)
{
    return g_strdup(DMA_SERVICE(obj)->socket ?: "");
}

static void ds_set_socket(Object *obj, const char *value, Error **errp)
{
    DmaService *s = DMA_SERVICE(obj);

    if (ds_check_settable(s, "socket", errp)) {
        g_free(s->socket);
        s->socket = g_strdup(value);
        g_free(s->endpoint);
        s->endpoint = g_strdup(value);
    }
}

/*
 * fd: a connected socket, as a number or a monitor fd name; the object owns
 * it from here on (closed at finalize if it never connected).
 */
static void ds_set_fd(Object *obj, const char *value, Error **errp)
{
    DmaService *s = DMA_SERVICE(obj);
    int fd;

    if (!ds_check_settable(s, "fd", errp)) {
        return;
    }
    fd = monitor_fd_param(monitor_cur(), value, errp);
    if (fd < 0) {
        error_prepend(errp, "dma-service: fd '%s': ", value);
        return;
    }
    if (s->sock_fd >= 0) {
        close(s->sock_fd);
    }
    s->sock_fd = fd;
    g_free(s->endpoint);
    s->endpoint = g_strdup_printf("fd=%s", value);
}

/* ---- read-only state ------------------------------------------------- */

static bool ds_get_connected(Object *obj, Error **errp)
{
    DmaService *s = DMA_SERVICE(obj);

    return s->client && !s->broken;
}

static bool ds_get_broken(Object *obj, Error **errp)
{
    return DMA_SERVICE(obj)->broken;
}

static bool ds_get_resumed(Object *obj, Error **errp)
{
    return DMA_SERVICE(obj)->resumed;
}

/*
 * session-id, regions, populated-bytes, devices, devices-blocked: @opaque
 * names the value.
 */
enum {
    DS_STATE_SESSION_ID, DS_STATE_REGIONS, DS_STATE_POPULATED,
    DS_STATE_DEVICES, DS_STATE_DEVICES_BLOCKED,
};

static void ds_get_state(Object *obj, Visitor *v, const char *name,
                         void *opaque, Error **errp)
{
    DmaService *s = DMA_SERVICE(obj);
    DmaServiceDevice *d;
    uint64_t value = 0;

    switch ((uintptr_t)opaque) {
    case DS_STATE_SESSION_ID:
        value = s->client ? dmasvc_session_id(s->client) : 0;
        break;
    case DS_STATE_REGIONS:
    case DS_STATE_POPULATED:
        value = ds_count(s, (uintptr_t)opaque == DS_STATE_POPULATED);
        break;
    default:
        QLIST_FOREACH(d, &s->devices, next) {
            value += (uintptr_t)opaque == DS_STATE_DEVICES || d->blocked;
        }
        break;
    }
    visit_type_uint64(v, name, &value, errp);
}

/* The read-only state properties, read by ds_get_state(). */
static const struct {
    const char *name;
    uintptr_t which;
    const char *desc;
} ds_state_props[] = {
    { "session-id", DS_STATE_SESSION_ID,
      "the service's id of this VM's session, 0 if none (read-only)" },
    { "regions", DS_STATE_REGIONS,
      "regions registered at the service (read-only)" },
    { "populated-bytes", DS_STATE_POPULATED,
      "bytes told to the service as populated (read-only)" },
    { "devices", DS_STATE_DEVICES,
      "vfio devices attached to the session (read-only)" },
    { "devices-blocked", DS_STATE_DEVICES_BLOCKED,
      "of those, devices whose DMA the safety valve blocked; only"
      " device_del + device_add restores it (read-only)" },
};

/*
 * timeout-ms, reconnect-ms and prefault-threads: @opaque is the field's
 * offset in DmaService.
 */
static void ds_get_u32(Object *obj, Visitor *v, const char *name,
                       void *opaque, Error **errp)
{
    uint32_t value = *(uint32_t *)((char *)obj + (uintptr_t)opaque);

    visit_type_uint32(v, name, &value, errp);
}

static void ds_set_u32(Object *obj, Visitor *v, const char *name,
                       void *opaque, Error **errp)
{
    DmaService *s = DMA_SERVICE(obj);
    uint32_t value;

    if (!ds_check_settable(s, name, errp) ||
        !visit_type_uint32(v, name, &value, errp)) {
        return;
    }
    if (!strcmp(name, "timeout-ms") && value == 0) {
        error_setg(errp, "dma-service: 'timeout-ms' must be at least 1");
        return;
    }
    if (!strcmp(name, "prefault-threads") && value > DMA_SERVICE_MAX_PREFAULT_THREADS) {
        error_setg(errp, "dma-service: 'prefault-threads' must be at most %u"
                   " (0: libdmasvc's default)", DMA_SERVICE_MAX_PREFAULT_THREADS);
        return;
    }
    *(uint32_t *)((char *)obj + (uintptr_t)opaque) = value;
}

static void ds_class_init(ObjectClass *oc, void *data)
{
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);
    size_t i;

    ucc->complete = ds_complete;
    ucc->can_be_deleted = ds_can_be_deleted;
    object_class_property_add_str(oc, "socket", ds_get_socket, ds_set_socket);
    object_class_property_set_description(oc, "socket",
        "path of the dmasvc service's control socket");
    object_class_property_add_str(oc, "fd", NULL, ds_set_fd);
    object_class_property_set_description(oc, "fd",
        "a Unix SOCK_SEQPACKET socket already connected to the service"
        " (number or monitor fd name), instead of 'socket'");
    object_class_property_add_bool(oc, "connected", ds_get_connected, NULL);
    object_class_property_set_description(oc, "connected",
        "connected to the service and not broken (read-only)");
    object_class_property_add_bool(oc, "broken", ds_get_broken, NULL);
    object_class_property_set_description(oc, "broken",
        "a request failed; plugs are refused until the session is resumed"
        " or the state is handed over again (read-only)");
    object_class_property_add_bool(oc, "resumed", ds_get_resumed, NULL);
    object_class_property_set_description(oc, "resumed",
        "the last reconnect resumed the same session: devices kept their"
        " DMA (read-only)");
    for (i = 0; i < ARRAY_SIZE(ds_state_props); i++) {
        object_class_property_add(oc, ds_state_props[i].name, "uint64",
                                  ds_get_state, NULL, NULL,
                                  (void *)ds_state_props[i].which);
        object_class_property_set_description(oc, ds_state_props[i].name,
                                              ds_state_props[i].desc);
    }
    object_class_property_add(oc, "timeout-ms", "uint32", ds_get_u32,
                              ds_set_u32, NULL,
                              (void *)offsetof(DmaService, timeout_ms));
    object_class_property_set_description(oc, "timeout-ms",
        "time the service gets to complete one request (ms)");
    object_class_property_add(oc, "reconnect-ms", "uint32", ds_get_u32,
                              ds_set_u32, NULL,
                              (void *)offsetof(DmaService, reconnect_ms));
    object_class_property_set_description(oc, "reconnect-ms",
        "interval between reconnect attempts after the connection was lost"
        " (ms); 0 never reconnects");
    object_class_property_add(oc, "prefault-threads", "uint32", ds_get_u32,
                              ds_set_u32, NULL,
                              (void *)offsetof(DmaService, prefault_threads));
    object_class_property_set_description(oc, "prefault-threads",
        "threads that fault in one large plug before the service pins it"
        " (the caller and helpers started for it); 1 starts none; 0 is"
        " libdmasvc's default: QEMU's CPUs, at most 4");
}

static const TypeInfo ds_types[] = {
    {
        .name = TYPE_DMA_SERVICE,
        .parent = TYPE_OBJECT,
        .instance_size = sizeof(DmaService),
        .instance_init = ds_init,
        .instance_finalize = ds_finalize,
        .class_init = ds_class_init,
        .interfaces = (InterfaceInfo[]) {
            { TYPE_USER_CREATABLE },
            { }
        },
    },
};

DEFINE_TYPES(ds_types)
