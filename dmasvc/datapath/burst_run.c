/* SPDX-License-Identifier: MIT */
/*
 * burst_run.c - run one burst: refuse populates of memory that is not
 * resident, then those over the session's populated-bytes cap, plan the
 * other events, execute the plan with the worker pool's
 * job runner, keep the results (see burst_priv.h).
 */
#include <errno.h>
#include <string.h>

#include "burst_priv.h"
#include "exec_pool_priv.h"

/*
 * find_holes: the residency rule on @b's populates (none is a hole when the
 * operator allows faulting in): @hole[i] true and b->res[i] the result
 * (-ENXIO, or mincore's -errno), @at[i] the memory offset of the first
 * absent page.  Faults nothing in.
 */
static void find_holes(const struct dsvc *d, const struct dsvc_session *s, struct dsvc_burst *b,
		       bool *hole, uint64_t *at)
{
	for (size_t i = 0; i < b->nev; i++) {
		const struct gran_event *ev = &b->ev[i];

		hole[i] = false;
		if (ev->op == GRAN_OP_POPULATE && !d->opt->allow_fault_in) {
			const struct dsvc_region *r = session_region(s, b->region_ids[i]);
			uint64_t g = gran_region_granule(ev->region);
			int ret;

			at[i] = 0;
			ret = r ? mem_find_hole(r->mem, gran_region_desc(ev->region)->mem_offset +
							    ev->first * g, ev->count * g, &at[i])
				: -ENOENT; /* cannot happen: regions do not change while it runs */
			if (ret) {
				hole[i] = true;
				b->res[i] = ret < 0 ? ret : -ENXIO;
			}
		}
	}
}

/*
 * refuse_before_plan: the residency rule, then the populated-bytes cap
 * (burst_priv.h).  Refused events get their result and are counted (the
 * first of each kind kept for the log line); the others go to b->plan_ev
 * in order.  Returns how many went.
 */
static size_t refuse_before_plan(const struct dsvc *d, const struct dsvc_session *s,
				 struct dsvc_burst *b)
{
	bool hole[RING_BURST], over[RING_BURST];
	uint64_t at[RING_BURST];
	size_t n = 0;

	b->nr_refused = 0;
	b->nr_over_cap = 0;
	find_holes(d, s, b, hole, at);
	b->nr_over_cap = session_burst_admit(s, b->ev, b->nev, hole, over, &b->over_cap_event,
					     b->over_cap_why, sizeof(b->over_cap_why));
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
	int ret;

	size_t np;

	memset(&b->st, 0, sizeof(b->st));
	b->err = 0;
	b->map_failed = false;
	count_repairs(b);
	np = refuse_before_plan(d, s, b);
	if (!np)
		return;
	ret = gran_plan_build(b->plan_ev, np, &plan);
	if (ret) {
		b->err = ret;
		for (size_t i = 0; i < np; i++)
			b->res[b->plan_idx[i]] = ret;
		return;
	}
	pool_job_runner_init(&pr, d->pool, &runner);
	b->err = gran_plan_execute(plan, d->ops, s->space, &runner);
	c = gran_plan_completions(plan, &nc);
	for (size_t i = 0; i < np; i++)
		b->res[b->plan_idx[i]] = i < nc ? c[i].res : -ENOMEM;
	gran_plan_stats(plan, &b->st);
	b->map_failed = pr.failed;
	b->first_fail = pr.first_fail;
	gran_plan_free(plan);
}
