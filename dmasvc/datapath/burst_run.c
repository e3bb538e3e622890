/* SPDX-License-Identifier: MIT */
/*
 * burst_run.c - run one burst: refuse populates of memory that is not
 * resident (checked here, or by the pin where a guard makes a hole fail
 * it), then those over the session's populated-bytes cap, plan the other
 * events, execute the plan with the worker pool's job runner, keep the
 * results; post them as CQEs (burst_post) (see burst_priv.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "burst_priv.h"
#include "exec_pool_priv.h"

/* Reserve @n entries of @size bytes at *@off (aligned for any type); returns the offset. */
static size_t burst_carve(size_t *off, size_t n, size_t size)
{
	size_t at = (*off + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);

	*off = at + n * size;
	return at;
}

struct dsvc_burst *burst_new(unsigned int cap)
{
	size_t off = sizeof(struct dsvc_burst), o_sqes, o_cqes, o_ev, o_rid, o_evs, o_replay,
	       o_repair, o_res, o_pev, o_pidx, o_hole, o_over, o_spans, o_at;
	struct dsvc_burst *b;
	char *base;

	if (!cap)
		return NULL;
	o_sqes = burst_carve(&off, cap, sizeof(struct dmasvc_sqe));
	o_cqes = burst_carve(&off, cap, sizeof(struct dmasvc_cqe));
	o_ev = burst_carve(&off, cap, sizeof(struct gran_event));
	o_rid = burst_carve(&off, cap, sizeof(uint32_t));
	o_evs = burst_carve(&off, cap, sizeof(unsigned int));
	o_replay = burst_carve(&off, cap, sizeof(bool));
	o_repair = burst_carve(&off, cap, sizeof(uint64_t));
	o_res = burst_carve(&off, cap, sizeof(int32_t));
	o_pev = burst_carve(&off, cap, sizeof(struct gran_event));
	o_pidx = burst_carve(&off, cap, sizeof(unsigned int));
	o_hole = burst_carve(&off, cap, sizeof(bool));
	o_over = burst_carve(&off, cap, sizeof(bool));
	o_spans = burst_carve(&off, 2 * (size_t)cap + 1, sizeof(struct session_admit_span));
	o_at = burst_carve(&off, cap, sizeof(uint64_t));
	base = calloc(1, off); /* cap <= RING_MAX_ENTRIES: no overflow */
	if (!base)
		return NULL;
	b = (struct dsvc_burst *)base;
	b->cap = cap;
	b->sqes = (struct dmasvc_sqe *)(base + o_sqes);
	b->cqes = (struct dmasvc_cqe *)(base + o_cqes);
	b->ev = (struct gran_event *)(base + o_ev);
	b->region_ids = (uint32_t *)(base + o_rid);
	b->ev_sqe = (unsigned int *)(base + o_evs);
	b->replay = (bool *)(base + o_replay);
	b->repair = (uint64_t *)(base + o_repair);
	b->res = (int32_t *)(base + o_res);
	b->plan_ev = (struct gran_event *)(base + o_pev);
	b->plan_idx = (unsigned int *)(base + o_pidx);
	b->hole = (bool *)(base + o_hole);
	b->over = (bool *)(base + o_over);
	b->spans = (struct session_admit_span *)(base + o_spans);
	b->hole_at = (uint64_t *)(base + o_at);
	return b;
}

/*
 * populate_range: where event @i of @b (a populate) lies in its memory:
 * *@mem and the byte range [*@off, *@off + *@len).  Returns false when
 * its region is gone (cannot happen: regions do not change while a burst
 * runs).
 */
static bool populate_range(const struct dsvc_session *s, const struct dsvc_burst *b, size_t i,
			   const struct dsvc_memory **mem, uint64_t *off, uint64_t *len)
{
	const struct gran_event *ev = &b->ev[i];
	const struct dsvc_region *r = session_region(s, b->region_ids[i]);
	uint64_t g = gran_region_granule(ev->region);

	if (!r)
		return false;
	*mem = r->mem;
	*off = gran_region_desc(ev->region)->mem_offset + ev->first * g;
	*len = ev->count * g;
	return true;
}

/* One event's residency check: hole[i], at[i] and b->res[i] as find_holes says. */
static void find_hole_one(const struct dsvc_session *s, struct dsvc_burst *b, size_t i,
			  bool *hole, uint64_t *at)
{
	const struct dsvc_memory *mem;
	uint64_t off, len;
	int ret;

	at[i] = 0;
	ret = populate_range(s, b, i, &mem, &off, &len) ? mem_find_hole(mem, off, len, &at[i])
							 : -ENOENT;
	if (ret) {
		hole[i] = true;
		b->res[i] = ret < 0 ? ret : -ENXIO;
	}
}

/*
 * find_holes: the residency rule on @b's populates (none is a hole when the
 * operator allows faulting in): @hole[i] true and b->res[i] the result
 * (-ENXIO, or mincore's -errno), @at[i] the memory offset of the first
 * absent page.  Allocates nothing (in a guarded memory the check faults in,
 * zeroing them, the pages the VMM only fallocate()d: mem_find_hole).  A
 * populate of a guarded memory is left
 * to its pin when @pins (the backend pins through the guarded mapping at
 * map time; refuse_guarded_holes() names what the guard refused): returns
 * whether one was left so.
 * Consecutive populates of contiguous memory (a conversion posted page by
 * page) are checked with one mem_find_hole() over their union (one
 * mincore() instead of one per event: 2 us each here, bench/RESULTS.md);
 * only a union with a hole, or whose check failed, is checked again event
 * by event.
 */
static bool find_holes(const struct dsvc *d, const struct dsvc_session *s, struct dsvc_burst *b,
		       bool pins, bool *hole, uint64_t *at)
{
	bool left = false;

	for (size_t i = 0; i < b->nev; i++)
		hole[i] = false;
	if (d->opt->allow_fault_in)
		return false;
	for (size_t i = 0; i < b->nev;) {
		const struct dsvc_memory *mem, *m2;
		uint64_t off, len, o2, l2, where = 0;
		size_t j = i + 1;

		if (b->ev[i].op != GRAN_OP_POPULATE) {
			i++;
			continue;
		}
		if (!populate_range(s, b, i, &mem, &off, &len)) {
			find_hole_one(s, b, i++, hole, at);
			continue;
		}
		if (pins && mem->guarded) {
			left = true;
			i++;
			continue;
		}
		while (j < b->nev && b->ev[j].op == GRAN_OP_POPULATE &&
		       populate_range(s, b, j, &m2, &o2, &l2) && m2 == mem && o2 == off + len) {
			len += l2; /* <= the memory's size: no overflow */
			j++;
		}
		if (j - i == 1 || mem_find_hole(mem, off, len, &where) != 0)
			for (size_t k = i; k < j; k++)
				find_hole_one(s, b, k, hole, at);
		i = j;
	}
	return left;
}

/*
 * refuse_before_plan: the residency rule, then the populated-bytes cap
 * (burst_priv.h).  Refused events get their result and are counted (the
 * first of each kind kept for the log line); the others go to b->plan_ev
 * in order.  Returns how many went.  When the cap refuses an event while
 * populates were left to the guard (@pins), their holes are looked for
 * after all and the cap judges again: a hole never takes budget from the
 * events after it, and only a burst at the cap pays the mincore().
 */
static size_t refuse_before_plan(const struct dsvc *d, const struct dsvc_session *s,
				 struct dsvc_burst *b, bool pins)
{
	bool *hole = b->hole, *over = b->over;
	uint64_t *at = b->hole_at;
	size_t n = 0;
	bool left;

	b->nr_refused = 0;
	b->nr_over_cap = 0;
	left = find_holes(d, s, b, pins, hole, at);
	b->nr_over_cap = session_burst_admit(s, b->ev, b->nev, hole, over, b->spans, &b->over_cap_event,
					     b->over_cap_why, sizeof(b->over_cap_why));
	if (b->nr_over_cap && left) {
		find_holes(d, s, b, false, hole, at);
		b->nr_over_cap = session_burst_admit(s, b->ev, b->nev, hole, over, b->spans,
						     &b->over_cap_event, b->over_cap_why,
						     sizeof(b->over_cap_why));
	}
	for (size_t i = 0; i < b->nev; i++) {
		if (over[i]) {
			b->res[i] = -EDQUOT;
			continue;
		}
		if (hole[i]) {
			if (!b->nr_refused++) {
				b->refused_event = i;
				b->refused_err = b->res[i];
				b->refused_hole = at[i];
			}
			continue;
		}
		b->plan_ev[n] = b->ev[i];
		b->plan_idx[n++] = (unsigned int)i;
	}
	return n;
}

/*
 * refuse_guarded_holes: the residency rule for the populates of the plan
 * (@np events) that failed over a guarded memory: one whose range holds a
 * page not in memory failed at the guard (dmasvc/hole_guard.h), so it is
 * refused with -ENXIO and counted as find_holes() would have (its
 * map changed nothing: plan.h); the others keep their error.  Returns
 * whether a failed populate is left that was not refused (a backend
 * failure, for the log line; the pool's first failed job may still be a
 * refused one's when both happen in one burst).
 */
static bool refuse_guarded_holes(const struct dsvc_session *s, struct dsvc_burst *b, size_t np)
{
	bool other = false;

	for (size_t k = 0; k < np; k++) {
		size_t i = b->plan_idx[k];
		const struct dsvc_memory *mem;
		uint64_t off, len, at = 0;

		if (!b->res[i] || b->ev[i].op != GRAN_OP_POPULATE)
			continue;
		if (!populate_range(s, b, i, &mem, &off, &len) || !mem->guarded ||
		    mem_find_hole(mem, off, len, &at) != 1) {
			other = true;
			continue;
		}
		if (!b->nr_refused || i < b->refused_event) {
			b->refused_event = i;
			b->refused_err = -ENXIO;
			b->refused_hole = at;
		}
		b->nr_refused++;
		b->res[i] = -ENXIO;
	}
	return other;
}

/* gran_region_for_each_run callback: add the run's granules to *@arg. */
static int sum_run(void *arg, struct gran_region *r, uint64_t first, uint64_t count)
{
	(void)r;
	(void)first;
	*(uint64_t *)arg += count;
	return 0;
}

/*
 * count_repairs: for each replay event of @b, the granules its op must
 * change (before the plan runs: the state is the kernel's as adopted):
 * a populate's unmapped granules, a discard's mapped ones (b->repair).
 * Replay events are disjoint (libdmasvc's complement replay), so counts
 * taken before the burst are what the burst changes.
 */
static void count_repairs(struct dsvc_burst *b)
{
	for (size_t i = 0; i < b->nev; i++) {
		const struct gran_event *ev = &b->ev[i];
		uint64_t mapped = 0;

		b->repair[i] = 0;
		if (!b->replay[i])
			continue;
		gran_region_for_each_run(ev->region, ev->first, ev->count, sum_run, &mapped);
		b->repair[i] = ev->op == GRAN_OP_POPULATE ? ev->count - mapped : mapped;
	}
}

void burst_run(struct dsvc *d, struct dsvc_session *s, struct dsvc_burst *b)
{
	struct pool_job_runner pr;
	struct gran_job_runner runner;
	const struct gran_completion *c;
	struct gran_plan *plan;
	size_t nc;
	size_t np;
	int ret;
	/* a burst of only invalid SQEs may come from a session with no space yet */
	bool pins = b->nev && s->space && d->ops->pins_vaddr_at_map &&
		    d->ops->pins_vaddr_at_map(s->space);

	memset(&b->st, 0, sizeof(b->st));
	b->err = 0;
	b->map_failed = false;
	count_repairs(b);
	np = refuse_before_plan(d, s, b, pins);
	if (!np)
		return;
	ret = gran_plan_build(b->plan_ev, np, &plan);
	if (ret) {
		b->err = ret;
		for (size_t i = 0; i < np; i++)
			b->res[b->plan_idx[i]] = ret;
		return;
	}
	if (d->ops->unmap_cuts && d->ops->unmap_cuts(s->space))
		gran_plan_set_run_max(plan, BURST_RUN_MAX_BYTES);
	pool_job_runner_init(&pr, d->pool, &runner);
	b->err = gran_plan_execute(plan, d->ops, s->space, &runner);
	c = gran_plan_completions(plan, &nc);
	for (size_t i = 0; i < np; i++)
		b->res[b->plan_idx[i]] = i < nc ? c[i].res : -ENOMEM;
	gran_plan_stats(plan, &b->st);
	b->map_failed = pr.failed && refuse_guarded_holes(s, b, np);
	b->first_fail = pr.first_fail;
	gran_plan_free(plan);
}

void burst_post(struct dsvc_burst *b)
{
	struct dsvc_ring *rg = b->rg;
	int posted;

	for (size_t e = 0; e < b->nev; e++)
		b->cqes[b->ev_sqe[e]].res = b->res[e];
	b->posted = true;
	b->post_err = 0;
	posted = ring_cq_post(&rg->cq, b->cqes, b->n);
	b->t_done = dsvc_now_ns();
	if (posted < 0) {
		b->post_err = posted;
		return;
	}
	if (posted > 0 && ring_cq_post_should_wake(&rg->cq))
		ring_eventfd_signal(rg->completion);
	if ((unsigned int)posted < b->n) {
		memcpy(rg->backlog, b->cqes + posted, (b->n - (unsigned int)posted) * sizeof(b->cqes[0]));
		rg->nr_backlog = b->n - (unsigned int)posted;
	}
}
