/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the dmasvc SQ/CQ ring: setup, the four roles, and their hot paths.
 *
 * The byte layout and the entry formats are in ring_layout.h (included).
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
 * Memory-ordering labels (each use site names its label and its pair):
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
#include <string.h>
#include <sys/types.h>

#include <dmasvc/ring_atomic.h>
#include <dmasvc/ring_layout.h>

#define RING_EPROTO (-EPROTO)

#define RING_UNLIKELY(x) __builtin_expect(!!(x), 0)

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
 * signalled, then consume it.  Returns 0, -ETIMEDOUT, or -errno.
 */
int ring_eventfd_wait(int fd, int timeout_ms);

/* ------------------------------------------------------ generic role cores */

/*
 * @internal Producer state shared by both queues.  Only this thread writes
 * any field.  Invariant while error == 0:
 *   head_cache <= tail <= head_cache + entries   (modulo 2^32)
 * i.e. (tail - head_cache) <= entries.
 */
struct __ring_prod {
	uint32_t *tail_p;            /* shared tail: written (R1), never read */
	const uint32_t *head_p;      /* shared head: peer's, read with A0 */
	uint32_t *wait_p;            /* shared prod_wait: written, never read */
	const uint32_t *peer_wait_p; /* shared cons_wait: peer's, read after M0 */
	uint32_t entries;            /* immutable after init */
	uint32_t mask;               /* entries - 1, immutable after init */
	uint32_t tail;               /* our tail: the truth */
	uint32_t head_cache;         /* last peer head that passed the check */
	int error;                   /* 0 or RING_EPROTO (sticky) */
};

/*
 * @internal Consumer state shared by both queues.  Only this thread writes
 * any field.  Invariant while error == 0:
 *   head <= tail_cache <= head + entries   (modulo 2^32)
 */
struct __ring_cons {
	uint32_t *head_p;            /* shared head: written (R0), never read */
	const uint32_t *tail_p;      /* shared tail: peer's, read with A1 */
	uint32_t *wait_p;            /* shared cons_wait: written, never read */
	const uint32_t *peer_wait_p; /* shared prod_wait: peer's, read after M2 */
	uint32_t entries;            /* immutable after init */
	uint32_t mask;               /* entries - 1, immutable after init */
	uint32_t head;               /* our head: the truth */
	uint32_t tail_cache;         /* last peer tail that passed the check */
	int error;                   /* 0 or RING_EPROTO (sticky) */
};

/*
 * @internal Re-read the peer's head (A0) and check it: it may only move
 * forward, up to our tail.  Returns free slots, or RING_EPROTO.
 */
static inline int __ring_prod_refresh(struct __ring_prod *p)
{
	/*
	 * A0: acquire-load of the consumer's head; pairs with R0, its
	 * release-store after it copied the entries out, so our later writes
	 * into the freed slots cannot overtake its reads.  Read once: the
	 * checked value is the one we keep.
	 */
	uint32_t head = ring_load_acquire(p->head_p);

	/* head in [head_cache, tail], both ends modulo 2^32 */
	if (RING_UNLIKELY(head - p->head_cache > p->tail - p->head_cache)) {
		p->error = RING_EPROTO;
		return RING_EPROTO;
	}
	p->head_cache = head;
	return (int)(p->entries - (p->tail - head));
}

/*
 * @internal How many of @n entries fit now, refreshing the peer's head only
 * when the cached one says fewer than @n fit.  Returns 0..n, or RING_EPROTO.
 */
static inline int __ring_prod_space(struct __ring_prod *p, unsigned n)
{
	uint32_t space;
	int fresh;

	if (RING_UNLIKELY(p->error))
		return p->error;
	/* cached: (tail - head_cache) <= entries by the invariant */
	space = p->entries - (p->tail - p->head_cache);
	if (space < n) {
		fresh = __ring_prod_refresh(p);
		if (fresh < 0)
			return fresh;
		space = (uint32_t)fresh;
	}
	return (int)(space < n ? space : n);
}

/* @internal Publish @n entries written at [tail, tail + n). */
static inline void __ring_prod_publish(struct __ring_prod *p, uint32_t n)
{
	p->tail += n;
	/*
	 * R1: release-store of our tail after writing the entries; pairs with
	 * A1 in the consumer, which then sees the entries complete.
	 */
	ring_store_release(p->tail_p, p->tail);
}

/*
 * @internal Re-read the peer's tail (A1) and check it: it may only move
 * forward, up to head + entries.  Returns entries available, or RING_EPROTO.
 */
static inline int __ring_cons_refresh(struct __ring_cons *c)
{
	/*
	 * A1: acquire-load of the producer's tail; pairs with R1, its
	 * release-store after writing the entries, so our copies of
	 * [head, tail) are not read before the entries were written.  Read
	 * once: the checked value is the one we keep.
	 */
	uint32_t tail = ring_load_acquire(c->tail_p);

	/* tail in [tail_cache, head + entries], both ends modulo 2^32 */
	if (RING_UNLIKELY(tail - c->tail_cache > c->head + c->entries - c->tail_cache)) {
		c->error = RING_EPROTO;
		return RING_EPROTO;
	}
	c->tail_cache = tail;
	return (int)(tail - c->head);
}

/*
 * @internal How many of @max entries can be read now, refreshing the peer's
 * tail only when the cached one says fewer than @max.  Returns 0..max or
 * RING_EPROTO.
 */
static inline int __ring_cons_avail(struct __ring_cons *c, unsigned max)
{
	uint32_t avail;
	int fresh;

	if (RING_UNLIKELY(c->error))
		return c->error;
	/* cached: (tail_cache - head) <= entries by the invariant */
	avail = c->tail_cache - c->head;
	if (avail < max) {
		fresh = __ring_cons_refresh(c);
		if (fresh < 0)
			return fresh;
		avail = (uint32_t)fresh;
	}
	return (int)(avail < max ? avail : max);
}

/* @internal Release @n slots at [head, head + n) after they were copied out. */
static inline void __ring_cons_release(struct __ring_cons *c, uint32_t n)
{
	c->head += n;
	/*
	 * R0: release-store of our head after copying the entries out; pairs
	 * with A0 in the producer, which may then overwrite those slots.
	 */
	ring_store_release(c->head_p, c->head);
}

/* @internal After a post: does the consumer sleep and want a signal? */
static inline bool __ring_prod_should_wake(const struct __ring_prod *p)
{
	if (p->error)
		return false;
	/*
	 * M0: full barrier between R1 (our tail store) and the load of the
	 * consumer's wait flag; pairs with M1 (flag store, barrier, A1).
	 * Relaxed load: the flag carries no data, only "signal me".
	 */
	ring_smp_mb();
	return ring_read_once(p->peer_wait_p) & RING_WAIT_SLEEPING;
}

/* @internal After a drain: does the producer sleep waiting for space? */
static inline bool __ring_cons_should_wake(const struct __ring_cons *c)
{
	if (c->error)
		return false;
	/* M2: full barrier between R0 and the flag load; pairs with M3. */
	ring_smp_mb();
	return ring_read_once(c->peer_wait_p) & RING_WAIT_SLEEPING;
}

/* Wait protocol (out of line, ring_wait.c); see the wake-up paragraph above. */
int __ring_prod_wait_begin(struct __ring_prod *p);
void __ring_prod_wait_end(struct __ring_prod *p);
int __ring_cons_wait_begin(struct __ring_cons *c);
void __ring_cons_wait_end(struct __ring_cons *c);

/* ------------------------------------------------------------ the 4 roles */

struct ring_sq_producer { /* client */
	struct __ring_prod core;
	struct dmasvc_sqe *sqes; /* shared array, indexed (i & core.mask) */
};

struct ring_sq_consumer { /* service */
	struct __ring_cons core;
	const struct dmasvc_sqe *sqes;
};

struct ring_cq_producer { /* service */
	struct __ring_prod core;
	struct dmasvc_cqe *cqes;
};

struct ring_cq_consumer { /* client */
	struct __ring_cons core;
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
 * @internal Post up to @n entries of @esz bytes from @src into @ring.
 * Always inlined so that @esz is a constant and each copy a fixed-size move.
 */
__attribute__((always_inline)) static inline int
__ring_prod_post(struct __ring_prod *p, void *ring, const void *src, size_t esz, unsigned n)
{
	int cnt = __ring_prod_space(p, n);
	uint32_t tail = p->tail, mask = p->mask;

	for (int i = 0; i < cnt; i++)
		memcpy((char *)ring + ((tail + (uint32_t)i) & mask) * esz, (const char *)src + (size_t)i * esz, esz);
	if (cnt > 0)
		__ring_prod_publish(p, (uint32_t)cnt);
	return cnt;
}

/*
 * @internal Copy up to @max entries of @esz bytes from @ring into @out and
 * release their slots.  Always inlined for the same reason.
 */
__attribute__((always_inline)) static inline int
__ring_cons_drain(struct __ring_cons *c, const void *ring, void *out, size_t esz, unsigned max)
{
	int cnt = __ring_cons_avail(c, max);
	uint32_t head = c->head, mask = c->mask;

	for (int i = 0; i < cnt; i++)
		memcpy((char *)out + (size_t)i * esz, (const char *)ring + ((head + (uint32_t)i) & mask) * esz, esz);
	if (cnt > 0)
		__ring_cons_release(c, (uint32_t)cnt);
	return cnt;
}

/*
 * ring_sq_post: copy up to @n SQEs from @sqes into the SQ and publish them
 * with one release store.  Returns the number posted (0..n; 0 = full, the
 * backpressure signal: nothing is dropped, post the rest later), or
 * RING_EPROTO if the consumer's head is impossible.
 */
static inline int ring_sq_post(struct ring_sq_producer *r, const struct dmasvc_sqe *sqes, unsigned n)
{
	return __ring_prod_post(&r->core, r->sqes, sqes, sizeof(*sqes), n);
}

/*
 * ring_sq_drain: copy up to @max SQEs into @out (private memory) and release
 * their slots.  Returns the number copied (0..max; 0 = empty), or
 * RING_EPROTO if the producer's tail is impossible; nothing is copied then.
 * The copies are whatever bytes the slots held: validate them.
 */
static inline int ring_sq_drain(struct ring_sq_consumer *r, struct dmasvc_sqe *out, unsigned max)
{
	return __ring_cons_drain(&r->core, r->sqes, out, sizeof(*out), max);
}

/* ring_cq_post: as ring_sq_post() for CQEs (service side; the head checked is the client's). */
static inline int ring_cq_post(struct ring_cq_producer *r, const struct dmasvc_cqe *cqes, unsigned n)
{
	return __ring_prod_post(&r->core, r->cqes, cqes, sizeof(*cqes), n);
}

/* ring_cq_drain: as ring_sq_drain() for CQEs (client side). */
static inline int ring_cq_drain(struct ring_cq_consumer *r, struct dmasvc_cqe *out, unsigned max)
{
	return __ring_cons_drain(&r->core, r->cqes, out, sizeof(*out), max);
}

/*
 * ring_{sq,cq}_ready: how many entries a drain of up to @max would copy now,
 * without copying or releasing any; re-reads the producer's tail (checked)
 * only when the cached one shows fewer than @max.  Returns 0..max, or
 * RING_EPROTO (sticky, as for a drain).
 */
static inline int ring_sq_ready(struct ring_sq_consumer *r, unsigned max)
{
	return __ring_cons_avail(&r->core, max);
}

static inline int ring_cq_ready(struct ring_cq_consumer *r, unsigned max)
{
	return __ring_cons_avail(&r->core, max);
}

/*
 * ring_{sq,cq}_post_should_wake: call after a post that returned > 0.
 * True if the consumer announced it sleeps: signal its eventfd (SQ:
 * doorbell, CQ: completion).  Costs a full barrier.  False once in error.
 */
static inline bool ring_sq_post_should_wake(const struct ring_sq_producer *r)
{
	return __ring_prod_should_wake(&r->core);
}

static inline bool ring_cq_post_should_wake(const struct ring_cq_producer *r)
{
	return __ring_prod_should_wake(&r->core);
}

/*
 * ring_{sq,cq}_drain_should_wake: call after a drain that returned > 0.
 * True if the producer announced it sleeps waiting for space: signal its
 * eventfd (SQ: completion, CQ: doorbell).  False once in error.
 */
static inline bool ring_sq_drain_should_wake(const struct ring_sq_consumer *r)
{
	return __ring_cons_should_wake(&r->core);
}

static inline bool ring_cq_drain_should_wake(const struct ring_cq_consumer *r)
{
	return __ring_cons_should_wake(&r->core);
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
	return __ring_prod_wait_begin(&r->core);
}

static inline void ring_sq_post_wait_end(struct ring_sq_producer *r)
{
	__ring_prod_wait_end(&r->core);
}

static inline int ring_cq_post_wait_begin(struct ring_cq_producer *r)
{
	return __ring_prod_wait_begin(&r->core);
}

static inline void ring_cq_post_wait_end(struct ring_cq_producer *r)
{
	__ring_prod_wait_end(&r->core);
}

static inline int ring_sq_drain_wait_begin(struct ring_sq_consumer *r)
{
	return __ring_cons_wait_begin(&r->core);
}

static inline void ring_sq_drain_wait_end(struct ring_sq_consumer *r)
{
	__ring_cons_wait_end(&r->core);
}

static inline int ring_cq_drain_wait_begin(struct ring_cq_consumer *r)
{
	return __ring_cons_wait_begin(&r->core);
}

static inline void ring_cq_drain_wait_end(struct ring_cq_consumer *r)
{
	__ring_cons_wait_end(&r->core);
}

#endif /* DMASVC_RING_H */
