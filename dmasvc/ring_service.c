/* SPDX-License-Identifier: MIT */
/*
 * ring_service.c - drain, validate, plan, execute, complete (see
 * ring_service_priv.h for the rules).  Map jobs run on the worker pool
 * through a gran_job_runner; everything else runs on the event loop.
 *
 * Vocabulary: a "burst" is what one ring_sq_drain() returned (<= RING_BURST
 * SQEs); "events" are its valid populate/discard SQEs in order; "backlog"
 * holds CQEs the CQ had no room for.
 */
#include <errno.h>
#include <string.h>

#include "ring_service_priv.h"

int sqe_validate(const struct dmasvc_sqe *sqe, const struct dsvc_session *s,
		 struct gran_event *ev)
{
	const struct dsvc_region *r;
	uint64_t first, count;
	int ret;

	if (sqe->opcode >= DMASVC_OP_MAX || sqe->flags || sqe->__reserved)
		return -EINVAL;
	if (sqe->opcode == DMASVC_OP_NOP)
		return 0;
	r = session_region(s, sqe->region_id);
	if (!r)
		return -ENOENT;
	ret = gran_region_range(r->gr, sqe->offset, sqe->length, &first, &count);
	if (ret)
		return ret;
	*ev = (struct gran_event){
		.region = r->gr,
		.first = first,
		.count = count,
		.op = sqe->opcode == DMASVC_OP_POPULATE ? GRAN_OP_POPULATE : GRAN_OP_DISCARD,
		.user_data = sqe->user_data,
	};
	return 1;
}

/* The pool runner: each job's map() on some lane; remembers the first failure. */
struct pool_runner {
	struct exec_pool *pool;
	const struct be_ops *ops;
	struct be_space *space;
	struct gran_map_job *jobs;
	bool failed;
	struct gran_map_job first_fail;
};

static void run_one_job(void *arg, size_t i)
{
	struct pool_runner *pr = arg;
	struct gran_map_job *j = &pr->jobs[i];

	j->res = pr->ops->map(pr->space, j->iova, j->length, &j->src, j->prot);
}

static int pool_runner_run(void *ctx, const struct be_ops *ops, struct be_space *space,
			   struct gran_map_job *jobs, size_t n)
{
	struct pool_runner *pr = ctx;

	pr->ops = ops;
	pr->space = space;
	pr->jobs = jobs;
	pool_run(pr->pool, run_one_job, pr, n);
	for (size_t i = 0; i < n && !pr->failed; i++) {
		if (jobs[i].res) {
			pr->failed = true;
			pr->first_fail = jobs[i];
		}
	}
	return 0;
}

/* Post as much of the backlog as fits.  Returns 0, or RING_EPROTO. */
static int post_backlog(struct dsvc_ring *rg)
{
	int n;

	if (!rg->nr_backlog)
		return 0;
	n = ring_cq_post(&rg->cq, rg->backlog, rg->nr_backlog);
	if (n < 0)
		return n;
	if (n > 0) {
		memmove(rg->backlog, rg->backlog + n, (rg->nr_backlog - (unsigned int)n) * sizeof(rg->backlog[0]));
		rg->nr_backlog -= (unsigned int)n;
		if (ring_cq_post_should_wake(&rg->cq))
			ring_eventfd_signal(rg->completion);
	}
	return 0;
}

/*
 * Make sure the backlog is empty.  Returns 1 when it is (drain may go on),
 * 0 when the CQ is still full (we now wait for the client's doorbell), or
 * RING_EPROTO.
 */
static int settle_backlog(struct dsvc_ring *rg)
{
	int ret;

	for (;;) {
		ret = post_backlog(rg);
		if (ret)
			return ret;
		if (!rg->nr_backlog) {
			if (rg->cq_waiting) {
				ring_cq_post_wait_end(&rg->cq);
				rg->cq_waiting = false;
			}
			return 1;
		}
		if (rg->cq_waiting)
			return 0;
		ret = ring_cq_post_wait_begin(&rg->cq);
		if (ret < 0)
			return ret;
		if (ret == 1) {
			rg->cq_waiting = true;
			return 0;
		}
		/* space appeared between the post and the flag: try again */
	}
}

bool rsv_ring_pending(struct dsvc_ring *rg)
{
	if (rg->nr_backlog)
		return false;
	return __ring_cons_avail(&rg->sq.core, 1) != 0; /* EPROTO counts: the caller will see it */
}

/* Run the valid events of a burst; fills res[] per event.  Never fails. */
static void run_events(struct dsvc *d, struct dsvc_session *s, const struct gran_event *ev,
		       const uint32_t *region_ids, size_t n, int32_t *res)
{
	struct pool_runner pr = { .pool = d->pool };
	struct gran_job_runner runner = { .run = pool_runner_run, .ctx = &pr };
	const struct gran_completion *c;
	struct gran_exec_stats st;
	struct gran_plan *plan;
	size_t nc;
	int ret;

	ret = gran_plan_build(ev, n, &plan);
	if (ret) {
		dlog_err(d->log, s->id, ret, "planning a burst of %zu events", n);
		for (size_t i = 0; i < n; i++)
			res[i] = ret;
		return;
	}
	ret = gran_plan_execute(plan, d->ops, s->space, &runner);
	if (ret)
		dlog_err(d->log, s->id, ret, "executing a burst of %zu events", n);
	c = gran_plan_completions(plan, &nc);
	for (size_t i = 0; i < n; i++)
		res[i] = i < nc ? c[i].res : -ENOMEM;
	gran_plan_stats(plan, &st);
	s->ctr.map_calls += st.map_calls;
	s->ctr.unmap_calls += st.unmap_calls + st.undo_calls;
	if (pr.failed)
		dlog_err(d->log, s->id, pr.first_fail.res, "region %u: map iova 0x%llx len 0x%llx",
			 pr.first_fail.event < n ? region_ids[pr.first_fail.event] : 0,
			 (unsigned long long)pr.first_fail.iova,
			 (unsigned long long)pr.first_fail.length);
	if (st.first_unmap_err)
		dlog_err(d->log, s->id, st.first_unmap_err, "unmap iova 0x%llx len 0x%llx",
			 (unsigned long long)st.first_unmap_iova,
			 (unsigned long long)st.first_unmap_length);
	gran_plan_free(plan);
}

/* Drain and complete one burst.  Returns SQEs completed or RING_EPROTO. */
static int one_burst(struct dsvc *d, struct dsvc_session *s, struct dsvc_ring *rg)
{
	struct dmasvc_sqe sqes[RING_BURST];
	struct dmasvc_cqe cqes[RING_BURST];
	struct gran_event ev[RING_BURST];
	uint32_t region_ids[RING_BURST];
	int32_t res[RING_BURST];
	unsigned int ev_sqe[RING_BURST]; /* event index -> sqe index */
	size_t nev = 0;
	uint64_t t0, t1;
	int n, posted;

	n = ring_sq_drain(&rg->sq, sqes, RING_BURST);
	if (n <= 0)
		return n;
	t0 = dsvc_now_ns();
	if (ring_sq_drain_should_wake(&rg->sq))
		ring_eventfd_signal(rg->completion); /* the client waits for SQ space */
	for (int i = 0; i < n; i++) {
		int v = sqe_validate(&sqes[i], s, &ev[nev]);

		cqes[i] = (struct dmasvc_cqe){ .user_data = sqes[i].user_data, .res = 0 };
		if (v == 1) {
			region_ids[nev] = sqes[i].region_id;
			ev_sqe[nev++] = (unsigned int)i;
		} else if (v < 0) {
			cqes[i].res = v;
			dlog(d->log, DLOG_DEBUG, s->id, "bad SQE op %u region %u off 0x%llx len 0x%llx: %d",
			     sqes[i].opcode, sqes[i].region_id, (unsigned long long)sqes[i].offset,
			     (unsigned long long)sqes[i].length, v);
		}
	}
	if (nev) {
		run_events(d, s, ev, region_ids, nev, res);
		for (size_t e = 0; e < nev; e++)
			cqes[ev_sqe[e]].res = res[e];
	}
	posted = ring_cq_post(&rg->cq, cqes, (unsigned int)n);
	if (posted < 0)
		return posted;
	if (posted > 0 && ring_cq_post_should_wake(&rg->cq))
		ring_eventfd_signal(rg->completion);
	if (posted < n) {
		memcpy(rg->backlog, cqes + posted, (size_t)(n - posted) * sizeof(cqes[0]));
		rg->nr_backlog = (unsigned int)(n - posted);
	}
	t1 = dsvc_now_ns();
	for (int i = 0; i < n; i++) {
		lat_record(&s->lat, t1 - t0);
		lat_record(&d->lat, t1 - t0);
		s->ctr.events++;
		if (cqes[i].res)
			s->ctr.events_failed++;
	}
	return n;
}

int rsv_ring_work(struct dsvc *d, struct dsvc_session *s, struct dsvc_ring *rg,
		  unsigned int max_bursts)
{
	int total = 0, ret;

	for (unsigned int b = 0; b < max_bursts; b++) {
		ret = settle_backlog(rg);
		if (ret <= 0)
			return ret < 0 ? ret : total;
		ret = one_burst(d, s, rg);
		if (ret < 0)
			return ret;
		if (ret == 0)
			break;
		total += ret;
	}
	if (settle_backlog(rg) < 0)
		return RING_EPROTO;
	return total;
}
