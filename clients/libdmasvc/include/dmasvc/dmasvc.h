/* SPDX-License-Identifier: MIT */
/*
 * dmasvc.h - libdmasvc, the client library for any VMM.
 *
 * A VMM connects to the dmasvc service, hands it its guest memory fds,
 * registers regions (one per QEMU MemoryRegionSection) and then tells it,
 * granule by granule, which parts became usable (populate) or unusable
 * (discard).  The service keeps the IOMMU mappings equal to the populated
 * parts.
 *
 * Threads: a struct dmasvc_client may be used from several threads.  Each
 * thread that posts events should open its own queue with
 * dmasvc_queue_open() (one SQ/CQ ring per producer: no lock on the hot
 * path); the client's default queue (queue NULL) is shared and serialised
 * by a mutex.  Control calls (memory/region add and remove, reconnect) are
 * serialised internally.
 *
 * Replay: the library keeps a populated bitmap per region.  After the
 * service restarts, dmasvc_reconnect() re-sends memories and regions and
 * replays every populated range; ids stay the same for the caller.
 *
 * Errors: every function returns 0 (or a count/id) on success and -errno on
 * failure; errno is not used.  dmasvc_last_error() returns the service's
 * message for the last failed control call on this client;
 * dmasvc_last_service_error() only the service's own reason, for callers
 * that print it after their own strerror().
 */
#ifndef DMASVC_DMASVC_H
#define DMASVC_DMASVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmasvc/records.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dmasvc_client;
struct dmasvc_queue;

struct dmasvc_connect_opts {
	uint32_t sq_entries;     /* default queue's SQ; 0 = 256 */
	uint32_t cq_entries;     /* 0 = 2 * sq_entries */
	uint64_t client_tag;     /* shown in service logs; 0 = getpid() */
	int timeout_ms;          /* per control call and per blocking event;
				    0 = 10000, -1 = wait forever */
};

/*
 * dmasvc_connect: connect to the service at @socket_path (NULL = the
 * default), do the HELLO handshake and set up the default queue.
 * Never blocks longer than the timeout, even against a service that is
 * alive but not accepting.  Returns 0 and sets *@out, or -errno
 * (-ECONNREFUSED / -ENOENT when no service listens, -EAGAIN when its
 * listen backlog is full, -ETIMEDOUT when it does not answer the
 * handshake in time, -EPROTO on a version mismatch).
 */
int dmasvc_connect(const char *socket_path, const struct dmasvc_connect_opts *opts,
		   struct dmasvc_client **out);

/*
 * dmasvc_connect_fd: dmasvc_connect() over @sock_fd, a Unix SOCK_SEQPACKET
 * socket already connected to the service (a VMM's manager connected it and
 * passed it, as libvirt passes fds to QEMU).
 *   guarantees: @sock_fd is consumed (owned by the client on success, closed
 *               on failure); it is made non-blocking and close-on-exec.  Such
 *               a client has no path: dmasvc_reconnect() fails with
 *               -ENOTCONN (ask the manager for a new connection and connect
 *               again).
 *   returns:    0 and sets *@out, or -errno: -EBADF, -ENOTSOCK, -EPROTOTYPE
 *               (not AF_UNIX SOCK_SEQPACKET), -ENOTCONN (not connected), or
 *               as dmasvc_connect().
 */
int dmasvc_connect_fd(int sock_fd, const struct dmasvc_connect_opts *opts,
		      struct dmasvc_client **out);

/*
 * dmasvc_disconnect: orderly close (BYE: the service unmaps everything of
 * this client), free all queues and the client.  NULL is a no-op.
 */
void dmasvc_disconnect(struct dmasvc_client *c);

/*
 * dmasvc_connect_query_only: connect to the service at @socket_path (NULL =
 * the default) for queries only: the HELLO handshake and nothing else.
 *   needs:      @opts NULL or its client_tag and timeout_ms (sq_entries and
 *               cq_entries are ignored); service-wide queries need an admin
 *               peer (root or the service's uid, docs/protocol.md).
 *   guarantees: the session holds no ring, memory or region and never takes
 *               the service's configured devices.  dmasvc_query(),
 *               dmasvc_query_each(), dmasvc_session_id(), the error texts
 *               and dmasvc_disconnect() work as on any client; the calls
 *               that would give the session resources (dmasvc_memory_add,
 *               dmasvc_region_add, dmasvc_populate, dmasvc_discard,
 *               dmasvc_queue_open, dmasvc_device_attach, dmasvc_reconnect)
 *               return -EOPNOTSUPP and send nothing; dmasvc_default_queue()
 *               is NULL.
 *   returns:    0 and sets *@out, or -errno as dmasvc_connect().
 */
int dmasvc_connect_query_only(const char *socket_path, const struct dmasvc_connect_opts *opts,
			      struct dmasvc_client **out);

/* dmasvc_last_error: the service's text for the last failed call ("" if none). */
const char *dmasvc_last_error(const struct dmasvc_client *c);

/*
 * dmasvc_last_service_error: the text of the service's error reply to the
 * most recent control request sent on this client.
 *   guarantees: "" when that request succeeded, or failed without an error
 *               reply (transport failure, timeout, malformed reply); never a
 *               text made up by the library and never one left over from an
 *               earlier request (unlike dmasvc_last_error(), which is meant
 *               to be shown alone).  Calls that fail their local checks send
 *               nothing and leave it as it was.  Valid until the next call
 *               on @c.
 *   returns:    a NUL-terminated string ("" for NULL @c).
 */
const char *dmasvc_last_service_error(const struct dmasvc_client *c);

/*
 * dmasvc_memory_add: give the service guest memory: a memfd sealed with
 * F_SEAL_SHRINK, or a hugetlbfs file, of at least @size bytes.  The library
 * keeps a dup of @fd for replay; the caller keeps its own.  In
 * DMASVC_PREFAULT_LIBRARY mode (the default) it also maps the memory
 * (address space only, nothing touched) for prefaulting populates.
 * Returns the memory id (>= 0) or -errno (mmap's errno when that mapping
 * fails).
 */
int dmasvc_memory_add(struct dmasvc_client *c, int fd, uint64_t size, uint32_t flags);

/* ---- who allocates guest memory ------------------------------------------ */

/*
 * The rule (docs/design.md, "Who allocates guest memory"): the pages of a
 * populate are allocated by the VM, in the VMM's context, before the
 * populate is posted; the service only pins pages that are already in
 * memory, so the memory cgroup charge, NUMA placement and transparent huge
 * pages follow the VMM.  A service that finds a page of the range not in
 * memory refuses the populate with -ENXIO (unless its operator runs it
 * with --allow-fault-in), and the blocking calls then say so in
 * dmasvc_last_error().
 */
enum dmasvc_prefault_mode {
	/* The library maps each memory once (MAP_SHARED | MAP_NORESERVE, in
	 * this process) and faults every populate's range in through that
	 * mapping (MADV_POPULATE_WRITE; READ for DMASVC_MEMORY_READONLY) right
	 * before it posts it, on the calling thread; where the service's
	 * MEMORY_ADD reply says DMASVC_MEMORY_ADDED_FALLOC, a read-write
	 * memory of 4 KiB pages is allocated with fallocate() on its fd
	 * instead (charged to this process the same way; the advice where
	 * fallocate() is refused, and for a pipelined dmasvc_populate, whose
	 * threads zero the pages off the service's path).  The default. */
	DMASVC_PREFAULT_LIBRARY = 0,
	/* The caller guarantees the range is in memory before each populate:
	 * its own preallocation, or dmasvc_prefault() on its own mapping (which
	 * keeps the caller's madvise and mbind choices).  No mapping is made. */
	DMASVC_PREFAULT_CALLER = 1,
};

/*
 * dmasvc_set_prefault: choose who faults populates in (see above).
 *   needs:      no memory added yet on @c.
 *   returns:    0, -EINVAL (bad mode), -EBUSY (memories exist).
 */
int dmasvc_set_prefault(struct dmasvc_client *c, enum dmasvc_prefault_mode mode);

/*
 * dmasvc_set_prefault_threads: how many of the VMM's threads fault in one
 * large blocking populate in library mode (DMASVC_0.2).  dmasvc_populate()
 * of at least two 4 MiB pieces, on a range none of which is populated,
 * with nothing else in flight on the default queue and no batch open, is
 * faulted in and posted piece by piece: the service pins a piece while the
 * next is faulted in, by the caller's thread and @threads - 1 helpers started for
 * the call (every signal blocked; joined before it returns).  Still all or
 * nothing: a piece that fails makes the call discard the range again and
 * return the error.  @threads 0 = the default: the CPUs the caller may run
 * on (sched_getaffinity), at most 4; 1 = the calling thread only.
 *   returns:    0, -EINVAL (@threads > 64).
 */
int dmasvc_set_prefault_threads(struct dmasvc_client *c, unsigned threads);

/*
 * dmasvc_prefault: allocate every page of [@addr, @addr + @length), a range
 * of the caller's own shared mapping of guest memory, in the calling thread
 * (MADV_POPULATE_WRITE when @writable, else MADV_POPULATE_READ; Linux >=
 * 5.14), from the first page mincore() does not report in memory: pages
 * already in memory cost a mincore() walk only (~1 us per MiB).
 *   needs:      @addr page-aligned (huge-page-aligned for hugetlbfs), @length
 *               a multiple of that page size.
 *   returns:    0, or -errno from madvise: -ENOMEM (out of memory, e.g. the
 *               VM's memory cgroup limit, or not mapped), -EFAULT (beyond the
 *               file's end), -EINVAL (alignment, or a kernel before 5.14),
 *               -EHWPOISON.
 */
int dmasvc_prefault(void *addr, size_t length, bool writable);

/* dmasvc_memory_remove: -EBUSY while a region uses it. */
int dmasvc_memory_remove(struct dmasvc_client *c, uint32_t mem_id);

struct dmasvc_region_desc {
	uint32_t mem_id;
	uint32_t flags;          /* DMASVC_REGION_* (records.h) */
	uint64_t mem_offset;
	uint64_t size;
	uint64_t iova;
	uint64_t granule;        /* power of two >= 4096 */
};

/*
 * dmasvc_region_add: register a region (starts discarded).  Returns the
 * region id (>= 0) or -errno; -ENOSPC when the mapping budget does not
 * allow size / granule areas (dmasvc_last_error() suggests a granule).
 * The geometry is checked locally first, with the service's codes: -EINVAL
 * (size 0, granule, alignment), -ERANGE (the range overflows).  A call
 * that fails locally sets dmasvc_last_error() and clears
 * dmasvc_last_service_error().
 */
int dmasvc_region_add(struct dmasvc_client *c, const struct dmasvc_region_desc *d);

/* dmasvc_region_remove: discard all of it and forget it. */
int dmasvc_region_remove(struct dmasvc_client *c, uint32_t region_id);

/*
 * Blocking events on the default queue: return once the service completed
 * the event (0) or failed it (-errno; the region is as before the call;
 * -ENXIO: a populate of memory that is not in memory, see "who allocates
 * guest memory"; -EDQUOT: a populate over the session's populated-bytes
 * cap, dmasvc_last_error() naming the cap and the numbers), or
 * -ETIMEDOUT after the connect timeout (the event may still complete
 * later; the bitmap is updated when it does).  -ENOTCONN when the service
 * is gone.  Checked locally first, with the service's codes: -ENOENT for
 * an unknown region, -EINVAL for a zero or misaligned range, -ERANGE for a
 * range past the region's end.  A populate is prefaulted first (library
 * mode) and fails with dmasvc_prefault()'s error; a large one is faulted in
 * and posted in pieces (dmasvc_set_prefault_threads), and a piece that
 * fails makes the call discard what the others mapped before it returns
 * the error, so the region is as before the call either way.
 * The default queue's mutex is held for the whole call, so blocking calls from several
 * threads run one after the other; open a queue per thread to overlap them.
 */
int dmasvc_populate(struct dmasvc_client *c, uint32_t region_id, uint64_t offset,
		    uint64_t length);
int dmasvc_discard(struct dmasvc_client *c, uint32_t region_id, uint64_t offset,
		   uint64_t length);

/* ---- asynchronous queues ------------------------------------------------ */

/*
 * dmasvc_queue_open: a private SQ/CQ pair for the calling thread (no lock).
 * @sq_entries 0 = the connect default (a power of two; the CQ gets twice as
 * many).  Returns 0 and sets *@out or -errno.  dmasvc_queue_close waits
 * (up to the connect timeout) for the queue's in-flight events first; the
 * service keeps the ring until the session ends (DMASVC_MAX_RINGS per
 * session), so open queues per thread, not per request.  Closing the
 * default queue is a no-op.
 */
int dmasvc_queue_open(struct dmasvc_client *c, uint32_t sq_entries, struct dmasvc_queue **out);
void dmasvc_queue_close(struct dmasvc_queue *q);

/* dmasvc_default_queue: the client's shared queue (serialised by a mutex). */
struct dmasvc_queue *dmasvc_default_queue(struct dmasvc_client *c);

struct dmasvc_completion {
	uint64_t user_data;
	int32_t res;             /* 0 or -errno */
};

/*
 * dmasvc_submit_populate / dmasvc_submit_discard: post one event.  Returns 0,
 * -EAGAIN when the SQ is full (reap completions and retry), a populate's
 * prefault error (library mode outside a batch, as dmasvc_prefault(); nothing posted;
 * its completion may later carry -ENXIO if the range lost pages
 * meanwhile), -ENOENT for an
 * unknown region, -EINVAL for a misaligned range, -ERANGE past the region's end
 * (checked locally first), -ENOTCONN, -EPROTO once the ring is corrupt.
 * The doorbell is rung only when the service asked for a wake-up.  Events
 * in flight on a queue never exceed its CQ size (-EAGAIN beyond), so the
 * service never has to wait for CQ room.
 */
int dmasvc_submit_populate(struct dmasvc_queue *q, uint32_t region_id, uint64_t offset,
			   uint64_t length, uint64_t user_data);
int dmasvc_submit_discard(struct dmasvc_queue *q, uint32_t region_id, uint64_t offset,
			  uint64_t length, uint64_t user_data);

/*
 * dmasvc_queue_batch_begin / dmasvc_queue_batch_end: post the events
 * submitted on @q in between as one batch.  Their SQEs are written into the
 * SQ but published only by batch_end, with one tail store and at most one
 * doorbell, so the service takes the batch in one drain (a drain takes the
 * whole SQ: a batch that fits in @q's SQ) and coalesces neighbours, e.g. 64
 * contiguous one-page discards cost one unmap however slowly the caller
 * posts them.  Nothing is lost or reordered.  A batch is published early,
 * at that point, when the SQ or the queue's slots fill up (submit
 * returns -EAGAIN) and whenever a call on @q waits for a completion (dmasvc_reap with a timeout
 * other than 0, the blocking calls on the default queue, close): an
 * unpublished event never completes.  On the default queue the batch
 * holds every thread's events until its end.  Batches do not nest.
 * In library prefault mode a batch's populates are faulted in when it is
 * published, each contiguous run of them with one call (a conversion
 * notified page by page costs one fault-in per run, not per page), so a
 * populate's submit in a batch never returns a prefault error: a fault-in
 * that fails leaves the pages missing and the service completes that
 * populate with -ENXIO.
 * begin returns 0, -EBUSY inside a batch, -EINVAL for NULL; end returns 0,
 * -EINVAL outside a batch, the queue's dead error (-ENOTCONN, -EPROTO), or
 * -errno from the doorbell write.  (Addition to the first API.)
 */
int dmasvc_queue_batch_begin(struct dmasvc_queue *q);
int dmasvc_queue_batch_end(struct dmasvc_queue *q);

/*
 * dmasvc_reap: copy up to @max completions into @out.  @timeout_ms 0 polls,
 * -1 waits until at least one arrives.  Returns the count (0 on timeout, and
 * at once when nothing is in flight) or -errno (-ENOTCONN, -EPROTO on a
 * corrupt ring: a CQE naming no event in flight, or an impossible index).
 * Waiting spins on the CQ (250 us at first; the queue's window grows up to
 * 2 ms while its waits end soon after it, and shrinks again when they do
 * not; the CPU is yielded between polls after the first 20 us), then sleeps
 * on the completion eventfd; on the default queue it holds the queue's
 * mutex meanwhile.
 */
int dmasvc_reap(struct dmasvc_queue *q, struct dmasvc_completion *out, unsigned max,
		int timeout_ms);

/*
 * dmasvc_queue_fd: the completion eventfd, for the VMM's own poll loop.
 * The service signals it only after the queue was armed: call
 * dmasvc_queue_arm() right before polling, then dmasvc_reap(q, ..., 0) when
 * the fd is readable (that disarms and drains it).
 */
int dmasvc_queue_fd(const struct dmasvc_queue *q);

/*
 * dmasvc_queue_arm: ask the service to signal dmasvc_queue_fd() when the
 * next completion is posted.  Returns 0 (armed: poll the fd), 1 when
 * completions are ready already (do not sleep: reap now), or -errno
 * (-EPROTO corrupt ring, -ENOTCONN).  (Addition to the first API.)
 */
int dmasvc_queue_arm(struct dmasvc_queue *q);

/* ---- state, replay ------------------------------------------------------ */

/*
 * dmasvc_reconnect: after the service went away, connect again, re-add every
 * memory and region (ids unchanged for the caller) and replay every
 * populated range.  Queues are re-created (the same pointers stay valid).
 * It first tries to resume the same session with the token of the last
 * HELLO (a service that kept it across its restart: iommufd,
 * docs/restart.md): then the service's regions keep what is mapped (the
 * replay maps nothing already mapped; a populated range the kernel lost is
 * mapped again, a mapped range the bitmap does not hold is unmapped: both
 * logged by the service as repairs) and devices stay attached with their
 * ids.  Otherwise (no token, the session expired, an older service) a
 * fresh session: devices are not re-attached.  A transport error on the
 * way (-ETIMEDOUT from a socket that is held but not served yet, as in a
 * restart under socket activation; -ECONNRESET) fails the call and opens
 * no fresh session: the kept session may still be resumed by a retry.  Replay events carry
 * DMASVC_SQE_REPLAY; each region's unpopulated runs are replayed as
 * discards (free where nothing is mapped).
 * Events in flight when the old service died complete with -ECONNRESET
 * (unless their completion had already been posted) and leave the bitmap
 * alone, so afterwards the service's state equals the bitmap.  Threads
 * using private queues must not use them during the call.  Returns 0 or
 * -errno; it may be retried.
 */
int dmasvc_reconnect(struct dmasvc_client *c);

/*
 * dmasvc_resumed: whether the last dmasvc_reconnect() resumed the same
 * session (same session id, devices still attached) rather than opening a
 * fresh one.  False before any reconnect and for NULL.  (Version node
 * DMASVC_0.2.)
 */
bool dmasvc_resumed(const struct dmasvc_client *c);

/*
 * dmasvc_resumable: whether dmasvc_reconnect() may resume the current
 * session after the service went away: the service gave a non-zero token
 * in the last HELLO (it keeps sessions across a restart: iommufd with
 * --keep-sessions, docs/restart.md) and the client has a socket path to
 * connect to again (not dmasvc_connect_fd(), not query-only).  A VMM that
 * lost its connection uses it to decide whether its devices may keep
 * their DMA while it waits for the service (the kernel keeps the
 * session's mappings), or must be blocked at once.
 *   needs:      not called while dmasvc_reconnect() runs on @c in another
 *               thread.
 *   guarantees: reads only what the last HELLO left; sends nothing.  A
 *               true answer is no promise: the service may still expire
 *               the session (its grace period) or lose it; dmasvc_resumed()
 *               after dmasvc_reconnect() tells what happened.
 *   returns:    true or false; false for NULL.  (Version node DMASVC_0.2.)
 */
bool dmasvc_resumable(const struct dmasvc_client *c);

/*
 * dmasvc_control_fd: the connection's control socket, for a caller that
 * wants to learn that the service went away while no call runs (an
 * upgrade or a crash between requests): poll it for POLLIN; a hangup
 * (recv with MSG_PEEK returns 0, or an error) means the connection is
 * gone.  Data may also be readable: a late reply to a call that timed
 * out, which the library drops at the next call.
 *   needs:      the caller never reads, writes or closes the fd, and stops
 *               polling it before dmasvc_reconnect() or dmasvc_disconnect()
 *               (both close it; a reconnect gives a new one).
 *   returns:    the fd, or -1 (NULL, not connected).  (Version node
 *               DMASVC_0.2.)
 */
int dmasvc_control_fd(const struct dmasvc_client *c);

/* dmasvc_region_populated_bytes: what the library's bitmap says is populated. */
int64_t dmasvc_region_populated_bytes(struct dmasvc_client *c, uint32_t region_id);

/*
 * dmasvc_region_for_each_populated: call @fn for each maximal populated run
 * of the region, in order (offsets and lengths in bytes).  A non-zero return
 * of @fn stops the walk and is returned.  @fn runs with the client's state
 * lock held: it must not call back into this client.
 *
 * Bitmap rule: a granule's bit changes only when an event on it completes
 * with res 0 (populate sets, discard clears), applied per queue in
 * submission order.  A failed event, including a discard the backend failed,
 * leaves the bits as they were (the service's state is then as before the
 * event too, per its all-or-nothing rule): such granules stay "populated",
 * are replayed by dmasvc_reconnect(), and the caller may retry the discard.
 */
int dmasvc_region_for_each_populated(struct dmasvc_client *c, uint32_t region_id,
				     int (*fn)(void *arg, uint64_t offset, uint64_t length),
				     void *arg);

/* ---- queries (additions to the lead's API: the demo, dmasvcctl, tests) ---- */

/*
 * dmasvc_query: run QUERY @what (enum dmasvc_query_what, records.h) with
 * @flags (DMASVC_QUERY_F_*), following the service's cursor, and copy up to
 * @max records of @record_size bytes each into @records (a record larger on
 * the wire is truncated, a smaller one zero-padded).  For DMASVC_QUERY_AUDIT
 * @region_id is the caller's region id; it is ignored otherwise.  For
 * DMASVC_QUERY_REGIONS of the caller's own session, each record's region_id
 * is translated to the caller's id (UINT32_MAX if the library does not know
 * it).  The whole walk, every page, gets the connection's timeout.
 * Returns the number of records copied or -errno (-ENOENT unknown region,
 * the service's error, -EPROTO malformed reply, -ETIMEDOUT the pages did
 * not end in time).
 */
int dmasvc_query(struct dmasvc_client *c, uint32_t what, uint32_t flags, uint32_t region_id,
		 void *records, size_t record_size, unsigned max);

/*
 * dmasvc_query_each: run QUERY @what (with @flags) over every page the
 * service returns, following its cursor, and call @fn once per record in
 * the service's order.
 *   needs:      @fn; 0 < @record_size <= DMASVC_MSG_MAX.  @fn gets @record_size
 *               bytes (a record larger on the wire is truncated, a smaller
 *               one zero-padded), valid during the call only; it runs with
 *               the client's control lock held and must not call into @c.
 *               Ids: with @session_id 0, as dmasvc_query() (for
 *               DMASVC_QUERY_AUDIT @region_id is the caller's region id;
 *               REGIONS of the own session report the caller's ids).  A
 *               non-zero @session_id, only for DMASVC_QUERY_AUDIT with
 *               DMASVC_QUERY_F_ALL_SESSIONS, names another session and
 *               @region_id is then the service's id of its region: both as
 *               REGIONS with DMASVC_QUERY_F_ALL_SESSIONS reports them.
 *   guarantees: each page is validated before @fn sees its records; a cursor
 *               that does not advance ends the walk with -EPROTO, one that
 *               never ends with -ETIMEDOUT: the whole walk gets the
 *               connection's timeout.
 *   returns:    0 after the last page, @fn's non-zero return (which stops the
 *               walk), or -errno: -EINVAL bad arguments, -ENOENT unknown
 *               local region or (from the service) a session or region that
 *               is gone, -EPERM a service-wide query from a non-admin peer,
 *               -EPROTO a malformed reply, the service's other errors, or
 *               transport errors as for any control call.
 */
int dmasvc_query_each(struct dmasvc_client *c, uint32_t what, uint32_t flags, uint32_t region_id,
		      uint32_t session_id, size_t record_size,
		      int (*fn)(void *arg, const void *record), void *arg);

/* dmasvc_session_id: the service's id of the current session (for logs). */
uint32_t dmasvc_session_id(const struct dmasvc_client *c);

/*
 * dmasvc_upgrade: ask the service to upgrade itself in place (UPGRADE,
 * docs/restart.md): after this reply it re-executes its binary, keeping
 * its pid, socket and the sessions it can keep.
 *   needs:      an admin peer (root or the service's uid).
 *   returns:    0 when the service accepted (the upgrade runs after the
 *               reply; this connection then ends), or -errno: -EPERM not
 *               an admin, transport errors as for any control call.
 */
int dmasvc_upgrade(struct dmasvc_client *c);

/* ---- devices (src/device.c) ---------------------------------------------- */

/*
 * dmasvc_device_attach: send the VFIO device fd @device_fd (an iommufd-style
 * cdev, /dev/vfio/devices/vfioN, opened O_RDWR and not yet bound) to the
 * service, which binds it to its iommufd and attaches it to this session's
 * space: from then on the device sees exactly the populated granules.  The
 * caller keeps its own @device_fd (the same open file, so it may use the
 * device's regions once the call returned) and closes it when done.
 * A failed attach may leave the file bound to the service's iommufd: open
 * the cdev again before retrying.  Attached devices are not replayed by
 * dmasvc_reconnect().  Returns the device id (> 0) for
 * dmasvc_device_detach(), or -errno (the service's: -EOPNOTSUPP on the
 * software model, -EMFILE over 16 devices, -EBUSY when the service's one
 * type1 container belongs to another session, or the kernel's errno).
 */
int dmasvc_device_attach(struct dmasvc_client *c, int device_fd);

/* What the service says about an attached device. */
struct dmasvc_device_info {
	uint32_t dev_id;        /* for dmasvc_device_detach() (> 0) */
	uint32_t iommufd_devid; /* the kernel's id in the session's iommufd context,
				 * as VFIO_DEVICE_GET_PCI_HOT_RESET_INFO reports
				 * it; 0 on type1 and from a protocol-1.0 service */
};

/*
 * dmasvc_device_attach_ex: dmasvc_device_attach() that waits up to
 * @timeout_ms for the service (0: the connection's timeout; < 0: forever;
 * the first attach on iommufd pins every populated granule inside one
 * ioctl, so allow for the populated size) and fills @out.  Returns 0 or
 * -errno, as dmasvc_device_attach().
 */
int dmasvc_device_attach_ex(struct dmasvc_client *c, int device_fd, int timeout_ms,
			    struct dmasvc_device_info *out);

/* dmasvc_device_detach: detach device @dev_id.  Returns 0 or -errno
 * (-ENOENT unknown id). */
int dmasvc_device_detach(struct dmasvc_client *c, uint32_t dev_id);

#ifdef __cplusplus
}
#endif

#endif /* DMASVC_DMASVC_H */
