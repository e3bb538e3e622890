/* SPDX-License-Identifier: MIT */
/*
 * ring_wait.c - the sleep side of the need-wakeup protocol (see ring.h).
 *
 * "wait_begin" announces "I am about to sleep, signal me" in the caller's
 * own wait word and then re-checks the queue, so that a peer that posted (or
 * drained) just before the announcement is not missed; "wait_end" withdraws
 * the announcement.  Both write only the caller's own word and never read it
 * back: a peer that rewrites it can only cost itself a wake-up.
 */
#include <dmasvc/ring_core_pvt.h>

/* Contract: ring_pvt_prod_wait_begin() in ring_core_pvt.h (public: ring_{sq,cq}_post_wait_begin()). */
int ring_pvt_prod_wait_begin(struct ring_pvt_prod *p)
{
	int space;

	if (p->error)
		return p->error;
	/* relaxed store: ordered against the re-check by M3 below */
	ring_write_once(p->wait_p, RING_WAIT_SLEEPING);
	/*
	 * M3: full barrier between our flag store and the head load (A0 in
	 * ring_pvt_prod_refresh); pairs with M2 in the consumer (R0, barrier,
	 * flag load): either it sees our flag, or we see its new head.
	 */
	ring_smp_mb();
	space = ring_pvt_prod_refresh(p);
	if (space < 0)
		return space;
	if (space == 0)
		return 1;
	ring_write_once(p->wait_p, 0);
	return 0;
}

/* Contract: ring_pvt_*_wait_end() in ring_core_pvt.h (public: ring_*_wait_end()). */
void ring_pvt_prod_wait_end(struct ring_pvt_prod *p)
{
	/* relaxed: a late clear only costs the consumer one extra signal */
	ring_write_once(p->wait_p, 0);
}

/* Contract: ring_pvt_cons_wait_begin() in ring_core_pvt.h (public: ring_{sq,cq}_drain_wait_begin()). */
int ring_pvt_cons_wait_begin(struct ring_pvt_cons *c)
{
	int avail;

	if (c->error)
		return c->error;
	ring_write_once(c->wait_p, RING_WAIT_SLEEPING);
	/*
	 * M1: full barrier between our flag store and the tail load (A1 in
	 * ring_pvt_cons_refresh); pairs with M0 in the producer (R1, barrier,
	 * flag load): either it sees our flag, or we see its new tail.
	 */
	ring_smp_mb();
	avail = ring_pvt_cons_refresh(c);
	if (avail < 0)
		return avail;
	if (avail == 0)
		return 1;
	ring_write_once(c->wait_p, 0);
	return 0;
}

/* Contract: ring_pvt_*_wait_end() in ring_core_pvt.h (public: ring_*_wait_end()). */
void ring_pvt_cons_wait_end(struct ring_pvt_cons *c)
{
	ring_write_once(c->wait_p, 0);
}
