/* SPDX-License-Identifier: MIT */
/*
 * ring_core_pvt.h - PRIVATE to ring/: the producer and consumer cores behind
 * the four public roles of ring.h, and their inline hot paths.
 *
 * Nobody outside ring/ may call a function or name a field declared here.
 * The header is visible only because ring.h embeds the core structs in the
 * public roles (their size must be known) and inlines the hot path through
 * them (as rte_ring.h does with rte_ring_*_pvt.h).  Use the ring_sq_* and
 * ring_cq_* functions of ring.h instead.  Exception: white-box tests under
 * tests/ may read the core fields; each such test says so where it does.
 *
 * Naming: every identifier here starts with ring_pvt_ (macros RING_PVT_).
 *
 * This header needs neither ring.h nor anything else of the public API; it
 * stands on ring_layout.h (RING_WAIT_SLEEPING) and ring_atomic.h (every
 * shared access).  The memory-ordering labels at the barriers (A0/R0, A1/R1,
 * M0..M3) are defined in ring.h's header comment.
 */
#ifndef DMASVC_RING_CORE_PVT_H
#define DMASVC_RING_CORE_PVT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <dmasvc/ring_atomic.h>
#include <dmasvc/ring_layout.h>

/*
 * The public name of the protocol error; ring.h defines it the same way (an
 * identical redefinition is valid C, and the compiler rejects a different one).
 */
#define RING_EPROTO (-EPROTO)

#define RING_PVT_UNLIKELY(x) __builtin_expect(!!(x), 0)

/*
 * Producer state shared by both queues.  Only this thread writes any field.
 * Invariant while error == 0:
 *   head_cache <= tail <= tail + staged <= head_cache + entries   (modulo 2^32)
 * i.e. (tail + staged - head_cache) <= entries.  [tail, tail + staged) are
 * slots written by ring_pvt_prod_stage() and not yet published: the peer's
 * head can never pass tail, so they are ours until the release store.
 */
struct ring_pvt_prod {
	uint32_t *tail_p;            /* shared tail: written (R1), never read */
	const uint32_t *head_p;      /* shared head: peer's, read with A0 */
	uint32_t *wait_p;            /* shared prod_wait: written, never read */
	const uint32_t *peer_wait_p; /* shared cons_wait: peer's, read after M0 */
	uint32_t entries;            /* immutable after init */
	uint32_t mask;               /* entries - 1, immutable after init */
	uint32_t tail;               /* our published tail: the truth */
	uint32_t staged;             /* entries written after tail, not published yet */
	uint32_t head_cache;         /* last peer head that passed the check */
	int error;                   /* 0 or RING_EPROTO (sticky) */
};

/*
 * Consumer state shared by both queues.  Only this thread writes any field.
 * Invariant while error == 0:
 *   head <= tail_cache <= head + entries   (modulo 2^32)
 */
struct ring_pvt_cons {
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
 * ring_pvt_prod_refresh: re-read the peer's head (A0) and check it: it may
 * only move forward, up to our published tail.  Needs an initialised @p.
 * Returns free slots (not counting the staged ones; head_cache updated), or
 * RING_EPROTO (latched in p->error).
 */
static inline int ring_pvt_prod_refresh(struct ring_pvt_prod *p)
{
	/*
	 * A0: acquire-load of the consumer's head; pairs with R0, its
	 * release-store after it copied the entries out, so our later writes
	 * into the freed slots cannot overtake its reads.  Read once: the
	 * checked value is the one we keep.
	 */
	uint32_t head = ring_load_acquire(p->head_p);

	/* head in [head_cache, tail], both ends modulo 2^32 */
	if (RING_PVT_UNLIKELY(head - p->head_cache > p->tail - p->head_cache)) {
		p->error = RING_EPROTO;
		return RING_EPROTO;
	}
	p->head_cache = head;
	return (int)(p->entries - (p->tail + p->staged - head));
}

/*
 * ring_pvt_prod_space: how many of @n entries fit now, refreshing the peer's
 * head only when the cached one says fewer than @n fit.  Returns 0..n, or
 * RING_EPROTO (sticky: returned again on every later call).
 */
static inline int ring_pvt_prod_space(struct ring_pvt_prod *p, unsigned n)
{
	uint32_t space;
	int fresh;

	if (RING_PVT_UNLIKELY(p->error))
		return p->error;
	/* cached: (tail + staged - head_cache) <= entries by the invariant */
	space = p->entries - (p->tail + p->staged - p->head_cache);
	if (space < n) {
		fresh = ring_pvt_prod_refresh(p);
		if (fresh < 0)
			return fresh;
		space = (uint32_t)fresh;
	}
	return (int)(space < n ? space : n);
}

/*
 * ring_pvt_prod_publish: publish every staged entry, [tail, tail + staged),
 * with one release store (nothing when none is staged).  Returns how many
 * it published.  Never fails.
 */
static inline uint32_t ring_pvt_prod_publish(struct ring_pvt_prod *p)
{
	uint32_t n = p->staged;

	if (!n)
		return 0;
	p->tail += n;
	p->staged = 0;
	/*
	 * R1: release-store of our tail after writing the entries (every
	 * staged one, however many stage calls wrote them: the release orders
	 * all earlier stores, so one store publishes the whole batch); pairs
	 * with A1 in the consumer, which then sees the entries complete and
	 * cannot see any of them before this store.
	 */
	ring_store_release(p->tail_p, p->tail);
	return n;
}

/*
 * ring_pvt_cons_refresh: re-read the peer's tail (A1) and check it: it may
 * only move forward, up to head + entries.  Needs an initialised @c.
 * Returns entries available (tail_cache updated), or RING_EPROTO (latched in
 * c->error).
 */
static inline int ring_pvt_cons_refresh(struct ring_pvt_cons *c)
{
	/*
	 * A1: acquire-load of the producer's tail; pairs with R1, its
	 * release-store after writing the entries, so our copies of
	 * [head, tail) are not read before the entries were written.  Read
	 * once: the checked value is the one we keep.
	 */
	uint32_t tail = ring_load_acquire(c->tail_p);

	/* tail in [tail_cache, head + entries], both ends modulo 2^32 */
	if (RING_PVT_UNLIKELY(tail - c->tail_cache > c->head + c->entries - c->tail_cache)) {
		c->error = RING_EPROTO;
		return RING_EPROTO;
	}
	c->tail_cache = tail;
	return (int)(tail - c->head);
}

/*
 * ring_pvt_cons_avail: how many of @max entries can be read now, refreshing
 * the peer's tail only when the cached one says fewer than @max.  Copies and
 * releases nothing.  Returns 0..max, or RING_EPROTO (sticky).
 */
static inline int ring_pvt_cons_avail(struct ring_pvt_cons *c, unsigned max)
{
	uint32_t avail;
	int fresh;

	if (RING_PVT_UNLIKELY(c->error))
		return c->error;
	/* cached: (tail_cache - head) <= entries by the invariant */
	avail = c->tail_cache - c->head;
	if (avail < max) {
		fresh = ring_pvt_cons_refresh(c);
		if (fresh < 0)
			return fresh;
		avail = (uint32_t)fresh;
	}
	return (int)(avail < max ? avail : max);
}

/*
 * ring_pvt_cons_release: release @n slots at [head, head + n) after they
 * were copied out; @n must not exceed what ring_pvt_cons_avail() granted.
 */
static inline void ring_pvt_cons_release(struct ring_pvt_cons *c, uint32_t n)
{
	c->head += n;
	/*
	 * R0: release-store of our head after copying the entries out; pairs
	 * with A0 in the producer, which may then overwrite those slots.
	 */
	ring_store_release(c->head_p, c->head);
}

/*
 * ring_pvt_prod_should_wake: after a post, does the consumer sleep and want
 * a signal?  Costs a full barrier.  False once in error.
 */
static inline bool ring_pvt_prod_should_wake(const struct ring_pvt_prod *p)
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

/*
 * ring_pvt_cons_should_wake: after a drain, does the producer sleep waiting
 * for space?  Costs a full barrier.  False once in error.
 */
static inline bool ring_pvt_cons_should_wake(const struct ring_pvt_cons *c)
{
	if (c->error)
		return false;
	/* M2: full barrier between R0 and the flag load; pairs with M3. */
	ring_smp_mb();
	return ring_read_once(c->peer_wait_p) & RING_WAIT_SLEEPING;
}

/*
 * Wait protocol (out of line, ring_wait.c; the wake-up paragraph of ring.h
 * describes it).
 * ring_pvt_prod_wait_begin: set our wait flag, full barrier (M3), re-read the
 * head.  Returns 1: still full, sleep; 0: space appeared, flag cleared again;
 * RING_EPROTO (sticky).
 * ring_pvt_cons_wait_begin: the same for an empty queue (M1, re-reads the tail).
 * ring_pvt_*_wait_end: clear our wait flag.  Never fail.
 */
int ring_pvt_prod_wait_begin(struct ring_pvt_prod *p);
void ring_pvt_prod_wait_end(struct ring_pvt_prod *p);
int ring_pvt_cons_wait_begin(struct ring_pvt_cons *c);
void ring_pvt_cons_wait_end(struct ring_pvt_cons *c);

/*
 * ring_pvt_prod_stage: reserve up to @n slots after the staged ones and copy
 * @n entries of @esz bytes from @src into them (entry array @ring, indexed
 * & p->mask), without publishing: the consumer sees none of them until
 * ring_pvt_prod_publish().  Returns the number staged (0..n; 0 = full), or
 * RING_EPROTO.  Always inlined so that @esz is a constant and each copy a
 * fixed-size move.
 */
__attribute__((always_inline)) static inline int
ring_pvt_prod_stage(struct ring_pvt_prod *p, void *ring, const void *src, size_t esz, unsigned n)
{
	int cnt = ring_pvt_prod_space(p, n);
	uint32_t at = p->tail + p->staged, mask = p->mask;

	for (int i = 0; i < cnt; i++)
		memcpy((char *)ring + ((at + (uint32_t)i) & mask) * esz, (const char *)src + (size_t)i * esz, esz);
	if (cnt > 0)
		p->staged += (uint32_t)cnt;
	return cnt;
}

/*
 * ring_pvt_prod_post: stage up to @n entries and, when at least one fit,
 * publish them together with any staged before, with one release store.
 * Returns the number of @src's entries posted (0..n; 0: nothing published,
 * earlier staged entries stay staged), or RING_EPROTO (nothing published).
 * So a return > 0 is exactly "the tail moved": the caller's wake-up check.
 */
__attribute__((always_inline)) static inline int
ring_pvt_prod_post(struct ring_pvt_prod *p, void *ring, const void *src, size_t esz, unsigned n)
{
	int cnt = ring_pvt_prod_stage(p, ring, src, esz, n);

	if (cnt > 0)
		ring_pvt_prod_publish(p);
	return cnt;
}

/*
 * ring_pvt_cons_drain: copy up to @max entries of @esz bytes from the entry
 * array @ring into @out and release their slots.  Returns the number copied
 * (0..max), or RING_EPROTO with nothing copied.  Always inlined for the same
 * reason.
 */
__attribute__((always_inline)) static inline int
ring_pvt_cons_drain(struct ring_pvt_cons *c, const void *ring, void *out, size_t esz, unsigned max)
{
	int cnt = ring_pvt_cons_avail(c, max);
	uint32_t head = c->head, mask = c->mask;

	for (int i = 0; i < cnt; i++)
		memcpy((char *)out + (size_t)i * esz, (const char *)ring + ((head + (uint32_t)i) & mask) * esz, esz);
	if (cnt > 0)
		ring_pvt_cons_release(c, (uint32_t)cnt);
	return cnt;
}

#endif /* DMASVC_RING_CORE_PVT_H */
