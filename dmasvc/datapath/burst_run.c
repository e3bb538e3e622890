/* SPDX-License-Identifier: MIT */
/*
 * burst_run.c - run one burst: refuse populates of memory that is not
 * resident, plan the other events, execute the plan with the worker pool's
 * job runner, keep the results (see burst_priv.h).
 */
#include <errno.h>
#include <string.h>

#include "burst_priv.h"
#include "exec_pool_priv.h"

/*
 * check_resident: apply the residency rule to @b's populates (all pass when
 * the operator allows faulting in).  A refused event gets its result now
 * (-ENXIO, or mincore's -errno) and the first one is recorded for the log
 * line; the others go to b->plan_ev in order.  Returns how many went.
 */
static size_t check_resident(const struct dsvc *d, const struct dsvc_session *s,
			     struct dsvc_burst *b)
{
	size_t n = 0;

	b->nr_refused = 0;
	for (size_t i = 0; i < b->nev; i++) {
		const struct gran_event *ev = &b->ev[i];

		if (ev->op == GRAN_OP_POPULATE && !d->opt->allow_fault_in) {
			const struct dsvc_region *r = session_region(s, b->region_ids[i]);
			uint64_t g = gran_region_granule(ev->region), hole = 0;
			int ret = r ? mem_find_hole(r->mem, gran_region_desc(ev->region)->mem_offset +
							    ev->first * g, ev->count * g, &hole)
				    : -ENOENT; /* cannot happen: regions do not change while it runs */

			if (ret) {
				b->res[i] = ret < 0 ? ret : -ENXIO;
				if (!b->nr_refused++) {
					b->refused_event = i;
					b->refused_err = b->res[i];
					b->refused_hole = hole;
				}
				continue;
			}
		}
		b->plan_ev[n] = *ev;
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
	np = check_resident(d, s, b);
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
