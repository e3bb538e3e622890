/* SPDX-License-Identifier: MIT */
/*
 * path_engine.c - the "engine" path: dmasvc's data path without the socket
 * and the ring.  Notes become granule events (gran_region_range), a batch is
 * cut into bursts of MB_BURST events as the daemon drains them, each burst
 * is planned (gran_plan_build) and executed (gran_plan_execute) with the
 * daemon's worker pool (dmasvc/exec_pool.c) running the map jobs, on the
 * same in-process backend space as the direct path.  So engine - direct is
 * what the service's planner and parallel pins add or save, and ring -
 * engine is what the transport costs.
 *
 * Latency of an event: from the start of its burst to the end of it (all
 * events of a burst complete together, as the daemon posts their CQEs).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "dmasvc/granule.h"
#include "dmasvc/plan.h"
#include "exec_pool_priv.h"
#include "mb.h"

struct mb_target {
	const struct mb_env *env;
	struct exec_pool *pool;
	struct mb_space sp;
	struct gran_region *gr; /* NULL when no region */
	struct mb_counts n;
};

static int engine_open(const struct mb_env *env, unsigned int workers,
		       struct mb_target **out)
{
	struct mb_target *t = calloc(1, sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	t->env = env;
	ret = pool_create(workers ? workers : 1, &t->pool);
	if (ret) {
		free(t);
		return ret;
	}
	*out = t;
	return 0;
}

static void engine_close(struct mb_target *t)
{
	pool_destroy(t->pool);
	free(t);
}

static int engine_region_add(struct mb_target *t, const struct mb_region *r)
{
	struct gran_region_desc d = {
		.mem_offset = 0,
		.size = r->size,
		.iova = r->iova,
		.granule = r->granule,
		.mem_size = r->size,
		.mem_vaddr = r->vaddr,
		.mem_fd = r->fd,
		.prot = BE_PROT_READ | BE_PROT_WRITE,
	};
	int ret = mb_space_open(t->env, &t->sp);

	if (ret)
		return ret;
	ret = gran_region_register(&d, NULL, &t->gr, NULL, 0);
	if (ret) {
		mb_space_close(&t->sp);
		t->gr = NULL;
		return ret;
	}
	t->n = (struct mb_counts){ 0 };
	return 0;
}

static void engine_region_del(struct mb_target *t)
{
	if (!t->gr)
		return;
	gran_region_unmap_all(t->gr, t->sp.ops, t->sp.space);
	gran_region_unregister(t->gr);
	t->gr = NULL;
	mb_space_close(&t->sp);
}

/* One burst of @n events; completion results into @res. */
static int engine_burst(struct mb_target *t, const struct gran_event *ev,
			size_t n, int *res)
{
	struct pool_job_runner pr;
	struct gran_job_runner runner;
	const struct gran_completion *c;
	struct gran_exec_stats st;
	struct gran_plan *plan;
	size_t nc;
	int ret;

	ret = gran_plan_build(ev, n, &plan);
	if (ret)
		return ret;
	pool_job_runner_init(&pr, t->pool, &runner); /* the daemon's runner */
	ret = gran_plan_execute(plan, t->sp.ops, t->sp.space, &runner);
	c = gran_plan_completions(plan, &nc);
	for (size_t i = 0; i < n; i++)
		res[i] = i < nc ? c[i].res : -ENOMEM;
	gran_plan_stats(plan, &st);
	t->n.map_calls += st.map_calls;
	t->n.unmap_calls += st.unmap_calls + st.undo_calls;
	gran_plan_free(plan);
	return ret;
}

static int engine_notify(struct mb_target *t, const struct mb_note *notes,
			 size_t n, uint64_t *lat_ns)
{
	struct gran_event ev[MB_BURST]; /* 44 KiB of the bench's main-thread stack */
	int res[MB_BURST];
	int first_err = 0, ret;

	for (size_t base = 0; base < n; base += MB_BURST) {
		size_t k = n - base < MB_BURST ? n - base : MB_BURST;
		uint64_t t0 = mb_now_ns(), dt;

		for (size_t i = 0; i < k; i++) {
			const struct mb_note *no = &notes[base + i];

			ret = gran_region_range(t->gr, no->offset, no->length,
						&ev[i].first, &ev[i].count);
			if (ret)
				return ret; /* the bench built a bad note */
			ev[i].region = t->gr;
			ev[i].op = no->populate ? GRAN_OP_POPULATE : GRAN_OP_DISCARD;
			ev[i].user_data = base + i;
		}
		ret = engine_burst(t, ev, k, res);
		dt = mb_now_ns() - t0;
		if (ret && !first_err)
			first_err = ret;
		for (size_t i = 0; i < k; i++) {
			lat_ns[base + i] = dt;
			if (res[i] && !first_err)
				first_err = res[i];
		}
	}
	return first_err;
}

static int engine_counts(struct mb_target *t, struct mb_counts *out)
{
	*out = t->n;
	return 0;
}

static pid_t engine_pin_pid(struct mb_target *t)
{
	(void)t;
	return getpid();
}

const struct mb_path_ops mb_engine_ops = {
	.name = "engine",
	.open = engine_open,
	.close = engine_close,
	.region_add = engine_region_add,
	.region_del = engine_region_del,
	.notify = engine_notify,
	.counts = engine_counts,
	.pin_pid = engine_pin_pid,
};
