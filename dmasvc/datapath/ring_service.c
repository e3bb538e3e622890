/* SPDX-License-Identifier: MIT */
/*
 * ring_service.c - drain, validate, plan, execute, complete (see
 * ring_service_priv.h for the rules).  Map jobs run on the worker pool
 * through a gran_job_runner.  Draining, validation and the finish (CQEs)
 * run on the event loop; the run (burst_run.c) happens there too, or on
 * the session's executor for a big burst (executor.c).
 *
 * Vocabulary: a "burst" is what one drain pass took from an SQ: everything
 * published, up to the SQ's size, so a batch the client published at once
 * is one burst and one plan (burst_priv.h); "events" are its valid
 * populate/discard SQEs in order; "backlog" holds CQEs the CQ had no room
 * for; "finish" turns results into CQEs, counters and log lines.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "executor_priv.h"
#include "burst_priv.h"
#include "ring_service_priv.h"

int ringsvc_sqe_validate(const struct dmasvc_sqe *sqe, const struct dsvc_session *s,
		 struct gran_event *ev)
{
	const struct dsvc_region *r;
	uint64_t first, count;
	int ret;

	if (sqe->opcode >= DMASVC_OP_MAX || (sqe->flags & ~DMASVC_SQE_REPLAY) || sqe->__reserved)
		return -EINVAL;
	if (sqe->opcode == DMASVC_OP_NOP)
		return 0;
	r = session_region(s, sqe->region_id);
	if (!r)
		return -ENOENT;
	if (r->adopted && sqe->opcode == DMASVC_OP_POPULATE)
		return -ESTALE; /* no memory until the resumed client adds it again (resume.c) */
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

bool ringsvc_ring_pending(struct dsvc_ring *rg)
{
	if (rg->nr_backlog)
		return false;
	return ring_sq_pending(&rg->sq); /* EPROTO counts: the caller will see it */
}

/*
 * Drain one burst of @rg into s->burst and validate it; bad SQEs get their
 * CQE now.  Returns the SQEs drained (0: none) or RING_EPROTO.
 */
static int burst_prepare(struct dsvc *d, struct dsvc_session *s, struct dsvc_ring *rg)
{
	struct dsvc_burst *b = s->burst;
	struct dmasvc_sqe *sqes = b->sqes;
	unsigned int max = rg->sq_entries; /* <= b->cap; the backlog holds that many */
	int n;

	n = ring_sq_drain(&rg->sq, sqes, max);
	if (n <= 0)
		return n;
	/*
	 * A client posting one SQE at a time is often still posting: take
	 * what arrived meanwhile too, so adjacent discards share one unmap
	 * (no waiting; stops at the first empty re-check).
	 */
	while ((unsigned int)n < max) {
		int more = ring_sq_drain(&rg->sq, sqes + n, max - (unsigned int)n);

		if (more < 0)
			return more;
		if (more == 0)
			break;
		n += more;
	}
	b->rg = rg;
	b->n = (unsigned int)n;
	b->nev = 0;
	b->posted = false;
	b->bytes = 0;
	b->granules = 0;
	b->t0 = dsvc_now_ns();
	if (ring_sq_drain_should_wake(&rg->sq))
		ring_eventfd_signal(rg->completion); /* the client waits for SQ space */
	for (int i = 0; i < n; i++) {
		struct gran_event *ev = &b->ev[b->nev];
		int v = ringsvc_sqe_validate(&sqes[i], s, ev);

		b->cqes[i] = (struct dmasvc_cqe){ .user_data = sqes[i].user_data, .res = 0 };
		if (v == 1) {
			b->region_ids[b->nev] = sqes[i].region_id;
			b->replay[b->nev] = s->resumed && (sqes[i].flags & DMASVC_SQE_REPLAY);
			b->ev_sqe[b->nev++] = (unsigned int)i;
			b->granules += ev->count;
			b->bytes += ev->count * gran_region_granule(ev->region); /* <= region size: no overflow */
		} else if (v == -ESTALE) {
			b->cqes[i].res = v;
			dlog(d->log, session_log_level(d, s, DLOG_WARN), s->id,
			     "region %u: populate refused (%d): the region is adopted from before the "
			     "restart and has no memory until the client adds it again", sqes[i].region_id, v);
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
 * The replay events of @b that repaired something (b->repair, counted by
 * burst_run) and succeeded: one warning line each, and the session's
 * repair counters (docs/restart.md).
 */
static void repairs_finish(struct dsvc *d, struct dsvc_session *s, const struct dsvc_burst *b)
{
	for (size_t e = 0; e < b->nev; e++) {
		const struct gran_event *ev = &b->ev[e];
		uint64_t g;

		if (!b->replay[e] || !b->repair[e] || b->res[e])
			continue;
		g = gran_region_granule(ev->region);
		if (ev->op == GRAN_OP_POPULATE)
			s->ctr.resume_repair_maps += b->repair[e];
		else
			s->ctr.resume_repair_unmaps += b->repair[e];
		dlog(d->log, DLOG_WARN, s->id,
		     "resume: session %u region %u [0x%llx, 0x%llx): %llu granules %s", s->id,
		     b->region_ids[e], (unsigned long long)(gran_region_iova(ev->region) + ev->first * g),
		     (unsigned long long)(gran_region_iova(ev->region) + (ev->first + ev->count) * g),
		     (unsigned long long)b->repair[e],
		     ev->op == GRAN_OP_POPULATE
			     ? "the client holds populated were not mapped: mapped"
			     : "mapped in the kernel the client does not hold populated: unmapped");
	}
}

/*
 * Complete s->burst after it was executed (or had no events): its CQEs
 * unless the executor posted them (burst_post), counters, the one
 * log line per failure, latency.  On the loop, @s not busy.  Returns the
 * SQEs completed, or RING_EPROTO.
 */
static int burst_finish(struct dsvc *d, struct dsvc_session *s)
{
	struct dsvc_burst *b = s->burst;
	uint64_t lat;

	if (!b->posted)
		burst_post(b);
	if (b->nev) {
		s->ctr.map_calls += b->st.map_calls;
		repairs_finish(d, s, b);
		s->ctr.unmap_calls += b->st.unmap_calls + b->st.undo_calls + b->st.unmap_retries;
		if (b->err)
			dlog_err(d->log, s->id, b->err, "running a burst of %zu events", b->nev);
		if (b->nr_refused) {
			const struct gran_event *ev = &b->ev[b->refused_event];
			uint64_t g = gran_region_granule(ev->region);

			dlog(d->log, session_log_level(d, s, DLOG_WARN), s->id,
			     "region %u: populate of [0x%llx, 0x%llx) refused (%d): memory offset 0x%llx %s; "
			     "the VMM must fault guest memory in before it posts (libdmasvc does), or the "
			     "operator allows it with --allow-fault-in (%u populate(s) refused in this burst)",
			     b->region_ids[b->refused_event], (unsigned long long)(ev->first * g),
			     (unsigned long long)((ev->first + ev->count) * g), b->refused_err,
			     (unsigned long long)b->refused_hole,
			     b->refused_err == -ENXIO ? "is not in memory (a hole)" : "could not be checked",
			     b->nr_refused);
		}
		if (b->nr_over_cap) {
			const struct gran_event *ev = &b->ev[b->over_cap_event];

			dlog(d->log, session_log_level(d, s, DLOG_WARN), s->id,
			     "populate of region %u granules %llu..%llu refused: %s (%u populate(s) "
			     "refused over the cap in this burst)", b->region_ids[b->over_cap_event],
			     (unsigned long long)ev->first, (unsigned long long)(ev->first + ev->count - 1),
			     b->over_cap_why, b->nr_over_cap);
		}
		if (b->map_failed)
			dlog_err(d->log, s->id, b->first_fail.res, "region %u: map iova 0x%llx len 0x%llx",
				 b->first_fail.event < b->nev ? b->region_ids[b->first_fail.event] : 0,
				 (unsigned long long)b->first_fail.iova,
				 (unsigned long long)b->first_fail.length);
		if (b->st.first_unmap_err)
			dlog_err(d->log, s->id, b->st.first_unmap_err, "unmap iova 0x%llx len 0x%llx",
				 (unsigned long long)b->st.first_unmap_iova,
				 (unsigned long long)b->st.first_unmap_length);
	}
	if (b->post_err)
		return b->post_err;
	lat = b->t_done - b->t0;
	lat_total_record(&d->lat_total, lat, b->n);
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
	return d->bx && b->nev && (b->bytes >= d->async_bytes || b->granules >= BURST_ASYNC_GRANULES);
}

int ringsvc_ring_work(struct dsvc *d, struct dsvc_session *s, struct dsvc_ring *rg,
		  unsigned int max_bursts)
{
	int total = 0, ret;

	if (s->busy)
		return 0;
	if (!s->burst || s->burst->cap < rg->sq_entries) {
		/* sized for the session's largest SQ: a drain never cuts a batch */
		unsigned int cap = rg->sq_entries;
		struct dsvc_burst *b;

		for (unsigned int i = 0; i < s->ring_hi; i++)
			if (s->rings[i] && s->rings[i]->sq_entries > cap)
				cap = s->rings[i]->sq_entries;
		b = burst_new(cap);
		if (!b) {
			dlog_err(d->log, s->id, -ENOMEM, "ring %u: no memory to drain it (retried next turn)",
				 rg->id);
			return 0;
		}
		free(s->burst); /* not busy: nothing runs on it */
		s->burst = b;
	}
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
		if (burst_is_big(d, s->burst) && executor_submit(d, s) == 0)
			return total; /* finished later by ringsvc_complete() */
		burst_run(d, s, s->burst);
		ret = burst_finish(d, s);
		if (ret < 0)
			return ret;
		total += ret;
	}
	if (settle_backlog(rg) < 0)
		return RING_EPROTO;
	return total;
}

/* Finish the async bursts and jobs that are done.  Returns how many of them were bursts. */
static unsigned int complete_ready(struct dsvc *d)
{
	uint32_t ids[DSVC_MAX_SESSIONS];
	unsigned int n = executor_reap(d, ids, DSVC_MAX_SESSIONS), bursts = 0;

	for (unsigned int i = 0; i < n; i++) {
		struct dsvc_session *s = session_find_any(d, ids[i]);

		if (!s || !s->busy)
			continue; /* cannot happen: a busy session is never freed */
		s->busy = false;
		if (s->job_ops) {
			const struct exec_job_ops *ops = s->job_ops;

			s->job_ops = NULL;
			ops->finish(d, s, s->job_arg);
			continue;
		}
		bursts++;
		if (burst_finish(d, s) < 0 || settle_backlog(s->burst->rg) < 0)
			s->broken = true;
	}
	return bursts;
}

unsigned int ringsvc_complete(struct dsvc *d)
{
	return d->bx ? complete_ready(d) : 0;
}

/* Whether a session that is not closing is busy (a closing one's teardown is not waited for). */
static bool any_busy(const struct dsvc *d)
{
	for (unsigned int i = 0; i < d->session_hi; i++)
		if (d->sessions[i] && d->sessions[i]->busy && !d->sessions[i]->closing)
			return true;
	return false;
}

void ringsvc_quiesce(struct dsvc *d, struct dsvc_session *s)
{
	if (!d->bx)
		return;
	while (s ? s->busy : any_busy(d)) {
		executor_wait(d);
		complete_ready(d);
	}
}

void ringsvc_session_release(struct dsvc *d, struct dsvc_session *s)
{
	ringsvc_quiesce(d, s);
	executor_thread_stop(s);
	free(s->burst);
	s->burst = NULL;
}
