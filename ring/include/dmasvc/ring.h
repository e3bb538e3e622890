/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the dmasvc SQ/CQ ring: setup, the four roles, and their hot paths.
 *
 * The byte layout and the entry formats are in ring_layout.h (included).
 * The producer/consumer cores the roles are built on, and the inline hot
 * path behind the ring_sq_* / ring_cq_* functions, are in ring_core_pvt.h
 * (included for the inline functions below): private to ring/, everything
 * there is prefixed ring_pvt_ and no code outside ring/ may use it.
 *
 * Roles.  Each queue has one producer and one consumer, each a small struct
 * that holds PRIVATE copies of everything that matters (entries, mask, its
 * own index, a cached copy of the peer's index) plus pointers into the
 * mapping.  The service holds a ring_sq_consumer and a ring_cq_producer, the
 * client a ring_sq_producer and a ring_cq_consumer.  A role is used by one
 * thread at a time (single producer, single consumer); callers serialise.
 *
 * Trust.  Either side treats the mapping as hostile, the service because the
 * client is untrusted, the client for free (same code).  A side
 *   - never reads back a word it writes itself (its own index and its own
 *     wait flag are private; the shared copies are write-only for it);
 *   - reads the peer's index once per refresh, checks it against its private
 *     state and, if the value is impossible, returns RING_EPROTO and keeps
 *     returning it (the session is to be torn down);
 *   - masks every index before use, so even a checked index cannot point out
 *     of the entry array;
 *   - copies entries into caller memory before returning them, so a peer
 *     writing to a slot later cannot change what the caller validates.
 *   A peer index is possible iff it did not move backwards and keeps
 *   0 <= tail - head <= entries.
 *
 * Wake-ups.  Each process sleeps on one eventfd: the service on the
 * doorbell, the client on the completion eventfd.  A side that finds nothing
 * to do calls *_wait_begin() (sets its wait flag, full barrier, re-checks);
 * if that returns 1 it sleeps on its eventfd, then calls *_wait_end().  After
 * a successful post or drain a side calls *_should_wake() and, if true,
 * signals the peer's eventfd:
 *     ring_sq_post_should_wake()   -> doorbell   (service waits for SQEs)
 *     ring_cq_post_should_wake()   -> completion (client waits for CQEs)
 *     ring_sq_drain_should_wake()  -> completion (client waits for SQ space)
 *     ring_cq_drain_should_wake()  -> doorbell   (service waits for CQ space)
 * The flags are advisory and writable by the peer.  A hostile client that
 * sets the flags the service reads costs the service at most one eventfd
 * write per post or drain (bounded by work it does anyway); a client that
 * clears the service's flags, or does not signal, leaves the service asleep
 * on that session only: the missed wake-up hurts the liar alone.
 *
 * Memory-ordering labels (each use site, in ring_core_pvt.h and ring_wait.c,
 * names its label and its pair):
 *   R1  producer: release-store of tail after writing entries.
 *   A1  consumer: acquire-load of tail before reading entries.     A1 <-> R1
 *   R0  consumer: release-store of head after copying entries out.
 *   A0  producer: acquire-load of head before overwriting slots.   A0 <-> R0
 *   M0  producer: full barrier between R1 and reading cons_wait.
 *   M1  consumer: full barrier between setting cons_wait and A1.   M0 <-> M1
 *   M2  consumer: full barrier between R0 and reading prod_wait.
 *   M3  producer: full barrier between setting prod_wait and A0.   M2 <-> M3
 *   (M-pairs: each side stores then loads; with a full barrier on both sides
 *   at least one of them sees the other's store, so a wake-up is never lost
 *   between honest peers.)
 *
 * Errors: functions return a count or 0 on success, -errno on failure, and
 * never read or set errno for the caller.  RING_EPROTO (== -EPROTO) means
 * "the peer broke the ring protocol" and is sticky per role.
 */
#ifndef DMASVC_RING_H
#define DMASVC_RING_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <dmasvc/ring_layout.h>

/* "the peer broke the ring protocol"; ring_core_pvt.h repeats this definition */
#define RING_EPROTO (-EPROTO)

/* ------------------------------------------------------------------ setup */

/* What both sides agree on over the control socket. */
struct ring_params {
	uint32_t sq_entries;  /* power of two, RING_MIN_ENTRIES..RING_MAX_ENTRIES */
	uint32_t cq_entries;  /* same */
	uint32_t first_index; /* initial head/tail of both queues; 0 in production,
	                         tests pick values near 2^32 to cross the wrap */
};

/* One process's view of a ring memfd; all fields private and immutable. */
struct ring_mapping {
	void *base;               /* start of the mapping (struct ring_shm) */
	size_t size;              /* ring_mem_size() of params */
	struct ring_params params;
	bool owned;               /* ring_unmap() munmaps base */
};

/* The three fds of one ring; -1 when closed. */
struct ring_fds {
	int memfd;      /* the ring (sealed against grow/shrink) */
	int doorbell;   /* eventfd: the service sleeps on it */
	int completion; /* eventfd: the client sleeps on it */
};

/*
 * ring_mem_size: bytes a ring with @sq_entries and @cq_entries needs (a page
 * multiple).  Returns the size, or -EINVAL if either count is not a power of
 * two in [RING_MIN_ENTRIES, RING_MAX_ENTRIES].
 */
ssize_t ring_mem_size(uint32_t sq_entries, uint32_t cq_entries);

/*
 * ring_format: write an empty ring described by @p into caller memory @mem of
 * @size bytes (at least ring_mem_size(); the rest is zeroed too), aligned to
 * RING_CACHE_LINE.  Must run before any peer can see @mem.  Returns 0, or
 * -EINVAL for bad @p, a short @size or a misaligned @mem.
 */
int ring_format(void *mem, size_t size, const struct ring_params *p);

/*
 * ring_create: create a memfd of ring_mem_size() bytes, format it, and seal it
 * (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) so the peer cannot truncate it
 * under us.  Returns the memfd (O_CLOEXEC) or -errno.
 */
int ring_create(const struct ring_params *p);

/*
 * ring_attach: accept @mem (@size bytes, mapped by the caller) as a ring with
 * parameters @p.  Copies the header once and compares it with @p and the
 * computed layout; never uses a value taken from the header.  On success
 * fills @m (with owned = false).  Returns 0, -EINVAL for bad @p, a short
 * @size or @mem not aligned to RING_CACHE_LINE, -EPROTO if the header does
 * not match.
 */
int ring_attach(struct ring_mapping *m, void *mem, size_t size, const struct ring_params *p);

/*
 * ring_map: map @memfd (MAP_SHARED, read/write) and ring_attach() it.  The
 * memfd must be exactly ring_mem_size() bytes.  Returns 0 with @m owning the
 * mapping, or -errno (-EPROTO for a wrong size or header) with nothing mapped.
 */
int ring_map(struct ring_mapping *m, int memfd, const struct ring_params *p);

/* ring_unmap: undo ring_map() (munmap if owned); @m is cleared.  Never fails. */
void ring_unmap(struct ring_mapping *m);

/*
 * ring_fds_create: ring_create() plus the doorbell and completion eventfds
 * (EFD_CLOEXEC | EFD_NONBLOCK).  Returns 0 with all three open, or -errno
 * with none open.
 */
int ring_fds_create(struct ring_fds *fds, const struct ring_params *p);

/* ring_fds_close: close every fd that is >= 0 and set it to -1.  Never fails. */
void ring_fds_close(struct ring_fds *fds);

/* ---------------------------------------------------------------- eventfd */

/* ring_eventfd_open: a new eventfd (EFD_CLOEXEC, plus EFD_NONBLOCK if @nonblock). Returns the fd or -errno. */
int ring_eventfd_open(bool nonblock);

/*
 * ring_eventfd_signal: add 1 to @fd's counter (retries EINTR).  A full
 * counter (EAGAIN) counts as success: a wake-up is pending anyway.
 * Returns 0 or -errno.
 */
int ring_eventfd_signal(int fd);

/*
 * ring_eventfd_consume: read and reset @fd's counter (retries EINTR).
 * Returns 0 if it was non-zero, -EAGAIN if it was zero (non-blocking fd),
 * or -errno.
 */
int ring_eventfd_consume(int fd);

/*
 * ring_eventfd_wait: wait up to @timeout_ms (-1: forever) for @fd to be
 * signalled, then consume it.  Returns 0, -ETIMEDOUT, or -errno.  For a
 * peer that blocks on one ring alone (the ring benchmark, ring-level
 * tests); the service polls with io_uring and libdmasvc with its socket.
 */
int ring_eventfd_wait(int fd, int timeout_ms);

/* ------------------------------------------------------------ the 4 roles */

/*
 * The private cores (struct ring_pvt_prod / ring_pvt_cons) and the inline
 * hot path.  Needed here only because the roles embed a core (so callers
 * know their size) and the functions below are inline.
 */
#include <dmasvc/ring_core_pvt.h>

/*
 * The roles.  Callers allocate them and pass them to the functions below;
 * every member is private (core: ring_core_pvt.h, the entry-array pointer:
 * set by ring_*_init()).  One thread at a time per role.
 */
struct ring_sq_producer { /* client */
	struct ring_pvt_prod core;
	struct dmasvc_sqe *sqes; /* shared array, indexed (i & core.mask) */
};

struct ring_sq_consumer { /* service */
	struct ring_pvt_cons core;
	const struct dmasvc_sqe *sqes;
};

struct ring_cq_producer { /* service */
	struct ring_pvt_prod core;
	struct dmasvc_cqe *cqes;
};

struct ring_cq_consumer { /* client */
	struct ring_pvt_cons core;
	const struct dmasvc_cqe *cqes;
};

/*
 * ring_*_init: set up a role on an attached mapping.  Takes every size and
 * the first index from @m (private), none from shared memory, and clears the
 * wait flag the role owns.  Returns 0, or -EINVAL if @m is not attached.
 */
int ring_sq_producer_init(struct ring_sq_producer *r, const struct ring_mapping *m);
int ring_sq_consumer_init(struct ring_sq_consumer *r, const struct ring_mapping *m);
int ring_cq_producer_init(struct ring_cq_producer *r, const struct ring_mapping *m);
int ring_cq_consumer_init(struct ring_cq_consumer *r, const struct ring_mapping *m);

/*
 * ring_sq_post: copy up to @n SQEs from @sqes into the SQ and publish them
 * (and, when any fit, those staged before them, see ring_sq_stage()) with
 * one release store.  Returns the number posted (0..n; 0 = full, the
 * backpressure signal: nothing is dropped, post the rest later), or
 * RING_EPROTO if the consumer's head is impossible.
 */
static inline int ring_sq_post(struct ring_sq_producer *r, const struct dmasvc_sqe *sqes, unsigned n)
{
	return ring_pvt_prod_post(&r->core, r->sqes, sqes, sizeof(*sqes), n);
}

/*
 * Batches ("reserve many, publish once", as DPDK's rte_ring_enqueue_zc /
 * io_uring's SQ tail): ring_sq_stage() writes SQEs into free slots without
 * moving the shared tail, ring_sq_publish() moves it over all of them with
 * one release store (R1).  The consumer sees the batch whole or not at all,
 * so a service draining while the client is still posting cannot split it.
 * Staged slots count as used for the space check; a ring_sq_post() that
 * posts anything publishes the staged entries too.  Nothing staged is lost or reordered: the entries are
 * published in the order they were staged.
 *
 * ring_sq_stage: copy up to @n SQEs from @sqes into the slots after the
 * staged ones, unpublished.  Returns the number staged (0..n; 0 = full:
 * publish, let the consumer drain, stage the rest later), or RING_EPROTO.
 */
static inline int ring_sq_stage(struct ring_sq_producer *r, const struct dmasvc_sqe *sqes, unsigned n)
{
	return ring_pvt_prod_stage(&r->core, r->sqes, sqes, sizeof(*sqes), n);
}

/*
 * ring_sq_publish: publish every staged SQE with one release store.  Returns
 * how many (0: none was staged; then nothing is stored).  Never fails; call
 * ring_sq_post_should_wake() after a publish that returned > 0.
 */
static inline unsigned ring_sq_publish(struct ring_sq_producer *r)
{
	return ring_pvt_prod_publish(&r->core);
}

/* ring_sq_staged: how many SQEs are staged and not yet published. */
static inline unsigned ring_sq_staged(const struct ring_sq_producer *r)
{
	return r->core.staged;
}

/*
 * ring_sq_drain: copy up to @max SQEs into @out (private memory) and release
 * their slots.  Returns the number copied (0..max; 0 = empty), or
 * RING_EPROTO if the producer's tail is impossible; nothing is copied then.
 * The copies are whatever bytes the slots held: validate them.
 */
static inline int ring_sq_drain(struct ring_sq_consumer *r, struct dmasvc_sqe *out, unsigned max)
{
	return ring_pvt_cons_drain(&r->core, r->sqes, out, sizeof(*out), max);
}

/* ring_cq_post: as ring_sq_post() for CQEs (service side; the head checked is the client's). */
static inline int ring_cq_post(struct ring_cq_producer *r, const struct dmasvc_cqe *cqes, unsigned n)
{
	return ring_pvt_prod_post(&r->core, r->cqes, cqes, sizeof(*cqes), n);
}

/* ring_cq_drain: as ring_sq_drain() for CQEs (client side). */
static inline int ring_cq_drain(struct ring_cq_consumer *r, struct dmasvc_cqe *out, unsigned max)
{
	return ring_pvt_cons_drain(&r->core, r->cqes, out, sizeof(*out), max);
}

/*
 * ring_sq_pending: whether a drain would find work: true if at least one SQE
 * is waiting, or if the producer's tail is impossible (RING_EPROTO, now
 * sticky, so the caller sees it on its next ring_sq_drain()); false if the
 * SQ is empty.  Copies and releases nothing; re-reads the tail (checked)
 * only when the cached one shows the SQ empty.  Not const: like a drain it
 * updates the cached tail and latches the error.
 */
static inline bool ring_sq_pending(struct ring_sq_consumer *r)
{
	return ring_pvt_cons_avail(&r->core, 1) != 0;
}

/*
 * ring_{sq,cq}_post_should_wake: call after a post that returned > 0.
 * True if the consumer announced it sleeps: signal its eventfd (SQ:
 * doorbell, CQ: completion).  Costs a full barrier.  False once in error.
 */
static inline bool ring_sq_post_should_wake(const struct ring_sq_producer *r)
{
	return ring_pvt_prod_should_wake(&r->core);
}

static inline bool ring_cq_post_should_wake(const struct ring_cq_producer *r)
{
	return ring_pvt_prod_should_wake(&r->core);
}

/*
 * ring_{sq,cq}_drain_should_wake: call after a drain that returned > 0.
 * True if the producer announced it sleeps waiting for space: signal its
 * eventfd (SQ: completion, CQ: doorbell).  False once in error.
 */
static inline bool ring_sq_drain_should_wake(const struct ring_sq_consumer *r)
{
	return ring_pvt_cons_should_wake(&r->core);
}

static inline bool ring_cq_drain_should_wake(const struct ring_cq_consumer *r)
{
	return ring_pvt_cons_should_wake(&r->core);
}

/*
 * ring_{sq,cq}_post_wait_begin: the queue was full and the producer wants to
 * sleep until the consumer frees space.  Sets the producer's wait flag, full
 * barrier (M3), re-reads the head.  Returns 1: still full, sleep on your
 * eventfd then call *_post_wait_end(); 0: space appeared, flag cleared
 * again, do not sleep; RING_EPROTO.
 * ring_{sq,cq}_drain_wait_begin: the same for a consumer that found the
 * queue empty (M1, re-reads the tail).
 * ring_*_wait_end: clear the flag after waking.  Never fail.
 */
static inline int ring_sq_post_wait_begin(struct ring_sq_producer *r)
{
	return ring_pvt_prod_wait_begin(&r->core);
}

static inline void ring_sq_post_wait_end(struct ring_sq_producer *r)
{
	ring_pvt_prod_wait_end(&r->core);
}

static inline int ring_cq_post_wait_begin(struct ring_cq_producer *r)
{
	return ring_pvt_prod_wait_begin(&r->core);
}

static inline void ring_cq_post_wait_end(struct ring_cq_producer *r)
{
	ring_pvt_prod_wait_end(&r->core);
}

static inline int ring_sq_drain_wait_begin(struct ring_sq_consumer *r)
{
	return ring_pvt_cons_wait_begin(&r->core);
}

static inline void ring_sq_drain_wait_end(struct ring_sq_consumer *r)
{
	ring_pvt_cons_wait_end(&r->core);
}

static inline int ring_cq_drain_wait_begin(struct ring_cq_consumer *r)
{
	return ring_pvt_cons_wait_begin(&r->core);
}

static inline void ring_cq_drain_wait_end(struct ring_cq_consumer *r)
{
	ring_pvt_cons_wait_end(&r->core);
}

#endif /* DMASVC_RING_H */
