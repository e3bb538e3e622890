/* SPDX-License-Identifier: MIT */
/*
 * ring_service.c - drain, validate, plan, execute, complete (see
 * ring_service_priv.h for the rules).  Map jobs run on the worker pool
 * through a gran_job_runner.  Draining, validation and the finish (CQEs)
 * run on the event loop; execution runs there too, or on the session's
 * executor for a big burst (burst_exec.c).
 *
 * Vocabulary: a "burst" is what one drain pass took from an SQ (<=
 * RING_BURST SQEs); "events" are its valid populate/discard SQEs in order;
 * "backlog" holds CQEs the CQ had no room for; "finish" turns results into
 * CQEs, counters and log lines.
 */
#include <errno.h>
#include <string.h>

#include "dmasvc/ring_atomic.h"

#include "burst_exec_priv.h"
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

/*
 * The pool runner: each job's map() on some lane, one window of jobs per
 * run(); remembers the first failure.  Once a job of an event failed, lanes
 * skip that event's later jobs (they keep -ECANCELED; the event fails and
 * is undone anyway), so a huge populate whose first map fails does not pin
 * the rest of its window first.
 */
struct pool_runner {
	struct exec_pool *pool;
	const struct be_ops *ops;
	struct be_space *space;
	struct gran_map_job *jobs;
	uint32_t failed_event; /* 1 + event of the latest failed job of this window, 0: none */
	bool failed;
	struct gran_map_job first_fail;
};

static void run_one_job(void *arg, size_t i)
{
	struct pool_runner *pr = arg;
	struct gran_map_job *j = &pr->jobs[i];

	/* Relaxed on both sides: a stale value only costs one map more, which
	 * the event's undo removes; pool_run()'s join orders it for the caller. */
	if (ring_read_once(&pr->failed_event) == j->event + 1)
		return;
	j->res = pr->ops->map(pr->space, j->iova, j->length, &j->src, j->prot);
	if (j->res)
		ring_write_once(&pr->failed_event, j->event + 1);
}

static int pool_runner_run(void *ctx, const struct be_ops *ops, struct be_space *space,
			   struct gran_map_job *jobs, size_t n)
{
	struct pool_runner *pr = ctx;

	pr->ops = ops;
	pr->space = space;
	pr->jobs = jobs;
	pr->failed_event = 0;
	pool_run(pr->pool, run_one_job, pr, n);
	for (size_t i = 0; i < n && !pr->failed; i++) {
		if (jobs[i].res && jobs[i].res != -ECANCELED) {
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

void rsv_burst_execute(struct dsvc *d, struct dsvc_session *s, struct dsvc_burst *b)
{
	struct pool_runner pr = { .pool = d->pool };
	struct gran_job_runner runner = { .run = pool_runner_run, .ctx = &pr };
	const struct gran_completion *c;
	struct gran_plan *plan;
	size_t nc;
	int ret;

	memset(&b->st, 0, sizeof(b->st));
	b->err = 0;
	ret = gran_plan_build(b->ev, b->nev, &plan);
	if (ret) {
		b->err = ret;
		for (size_t i = 0; i < b->nev; i++)
			b->res[i] = ret;
		return;
	}
	b->err = gran_plan_execute(plan, d->ops, s->space, &runner);
	c = gran_plan_completions(plan, &nc);
	for (size_t i = 0; i < b->nev; i++)
		b->res[i] = i < nc ? c[i].res : -ENOMEM;
	gran_plan_stats(plan, &b->st);
	b->map_failed = pr.failed;
	b->first_fail = pr.first_fail;
	gran_plan_free(plan);
}

/*
 * Drain one burst of @rg into s->burst and validate it; bad SQEs get their
 * CQE now.  Returns the SQEs drained (0: none) or RING_EPROTO.
 */
static int burst_prepare(struct dsvc *d, struct dsvc_session *s, struct dsvc_ring *rg)
{
	struct dsvc_burst *b = &s->burst;
	struct dmasvc_sqe sqes[RING_BURST];
	int n;

	n = ring_sq_drain(&rg->sq, sqes, RING_BURST);
	if (n <= 0)
		return n;
	/*
	 * A client posting one SQE at a time is often still posting: take
	 * what arrived meanwhile too, so adjacent discards share one unmap
	 * (no waiting; stops at the first empty re-check).
	 */
	while (n < RING_BURST) {
		int more = ring_sq_drain(&rg->sq, sqes + n, RING_BURST - (unsigned int)n);

		if (more < 0)
			return more;
		if (more == 0)
			break;
		n += more;
	}
	b->rg = rg;
	b->n = (unsigned int)n;
	b->nev = 0;
	b->bytes = 0;
	b->granules = 0;
	b->t0 = dsvc_now_ns();
	if (ring_sq_drain_should_wake(&rg->sq))
		ring_eventfd_signal(rg->completion); /* the client waits for SQ space */
	for (int i = 0; i < n; i++) {
		struct gran_event *ev = &b->ev[b->nev];
		int v = sqe_validate(&sqes[i], s, ev);

		b->cqes[i] = (struct dmasvc_cqe){ .user_data = sqes[i].user_data, .res = 0 };
		if (v == 1) {
			b->region_ids[b->nev] = sqes[i].region_id;
			b->ev_sqe[b->nev++] = (unsigned int)i;
			b->granules += ev->count;
			b->bytes += ev->count * gran_region_granule(ev->region); /* <= region size: no overflow */
		} else if (v < 0) {
			b->cqes[i].res = v;
			dlog(d->log, DLOG_DEBUG, s->id, "bad SQE op %u region %u off 0x%llx len 0x%llx: %d",
			     sqes[i].opcode, sqes[i].region_id, (unsigned long long)sqes[i].offset,
			     (unsigned long long)sqes[i].length, v);
		}
	}
	return n;
}

/*
 * Complete s->burst after it was executed (or had no events): counters,
 * the one log line per failure, CQEs (the overflow goes to the backlog),
 * latency.  Returns the SQEs completed, or RING_EPROTO.
 */
static int burst_finish(struct dsvc *d, struct dsvc_session *s)
{
	struct dsvc_burst *b = &s->burst;
	struct dsvc_ring *rg = b->rg;
	uint64_t lat;
	int posted;

	if (b->nev) {
		for (size_t e = 0; e < b->nev; e++)
			b->cqes[b->ev_sqe[e]].res = b->res[e];
		s->ctr.map_calls += b->st.map_calls;
		s->ctr.unmap_calls += b->st.unmap_calls + b->st.undo_calls + b->st.unmap_retries;
		if (b->err)
			dlog_err(d->log, s->id, b->err, "running a burst of %zu events", b->nev);
		if (b->map_failed)
			dlog_err(d->log, s->id, b->first_fail.res, "region %u: map iova 0x%llx len 0x%llx",
				 b->first_fail.event < b->nev ? b->region_ids[b->first_fail.event] : 0,
				 (unsigned long long)b->first_fail.iova,
				 (unsigned long long)b->first_fail.length);
		if (b->st.first_unmap_err)
			dlog_err(d->log, s->id, b->st.first_unmap_err, "unmap iova 0x%llx len 0x%llx",
				 (unsigned long long)b->st.first_unmap_iova,
				 (unsigned long long)b->st.first_unmap_length);
		session_refresh_cache(s);
	}
	posted = ring_cq_post(&rg->cq, b->cqes, b->n);
	if (posted < 0)
		return posted;
	if (posted > 0 && ring_cq_post_should_wake(&rg->cq))
		ring_eventfd_signal(rg->completion);
	if ((unsigned int)posted < b->n) {
		memcpy(rg->backlog, b->cqes + posted, (b->n - (unsigned int)posted) * sizeof(b->cqes[0]));
		rg->nr_backlog = b->n - (unsigned int)posted;
	}
	lat = dsvc_now_ns() - b->t0;
	for (unsigned int i = 0; i < b->n; i++) {
		lat_record(&s->lat, lat);
		lat_record(&d->lat, lat);
		s->ctr.events++;
		if (b->cqes[i].res)
			s->ctr.events_failed++;
	}
	return (int)b->n;
}

static bool burst_is_big(const struct dsvc *d, const struct dsvc_burst *b)
{
	return d->bx && b->nev && (b->bytes >= d->async_bytes || b->granules >= BX_ASYNC_GRANULES);
}

int rsv_ring_work(struct dsvc *d, struct dsvc_session *s, struct dsvc_ring *rg,
		  unsigned int max_bursts)
{
	int total = 0, ret;

	if (s->busy)
		return 0;
	for (unsigned int i = 0; i < max_bursts; i++) {
		ret = settle_backlog(rg);
		if (ret <= 0)
			return ret < 0 ? ret : total;
		ret = burst_prepare(d, s, rg);
		if (ret <= 0) {
			if (ret < 0)
				return ret;
			break;
		}
		if (burst_is_big(d, &s->burst) && bx_submit(d, s) == 0)
			return total; /* finished later by rsv_complete() */
		rsv_burst_execute(d, s, &s->burst);
		ret = burst_finish(d, s);
		if (ret < 0)
			return ret;
		total += ret;
	}
	if (settle_backlog(rg) < 0)
		return RING_EPROTO;
	return total;
}

/* Finish the async bursts that are done.  Returns how many. */
static unsigned int complete_ready(struct dsvc *d)
{
	uint32_t ids[DSVC_MAX_SESSIONS];
	unsigned int n = bx_reap(d, ids, DSVC_MAX_SESSIONS);

	for (unsigned int i = 0; i < n; i++) {
		struct dsvc_session *s = session_find(d, ids[i]);

		if (!s || !s->busy)
			continue; /* cannot happen: a busy session is never freed */
		s->busy = false;
		if (burst_finish(d, s) < 0 || settle_backlog(s->burst.rg) < 0)
			s->broken = true;
	}
	return n;
}

unsigned int rsv_complete(struct dsvc *d)
{
	return d->bx ? complete_ready(d) : 0;
}

static bool any_busy(const struct dsvc *d)
{
	for (unsigned int i = 0; i < d->session_hi; i++)
		if (d->sessions[i] && d->sessions[i]->busy)
			return true;
	return false;
}

void rsv_quiesce(struct dsvc *d, struct dsvc_session *s)
{
	if (!d->bx)
		return;
	while (s ? s->busy : any_busy(d)) {
		bx_wait(d);
		complete_ready(d);
	}
}
