/* SPDX-License-Identifier: MIT */
/*
 * plan_exec.c - the executor: run a plan's stages against a backend space
 * (windows of map jobs through the job runner, undo of failed populates as
 * granule runs, coalesced unmaps, one audited retry of a failed unmap),
 * commit region state truthfully and produce completions.  The ordering
 * rules are in plan.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "gran_priv.h"
#include "plan_priv.h"

static int serial_run(void *ctx, const struct be_ops *ops,
		      struct be_space *space, struct gran_map_job *jobs,
		      size_t n)
{
	size_t i;
	bool failed = false;

	(void)ctx;
	for (i = 0; i < n; i++) {
		if (i && jobs[i].event != jobs[i - 1].event)
			failed = false;
		if (failed)
			continue; /* the event fails anyway: leave -ECANCELED */
		jobs[i].res = ops->map(space, jobs[i].iova, jobs[i].length,
				       &jobs[i].src, jobs[i].prot);
		failed = jobs[i].res != 0;
	}
	return 0;
}

const struct gran_job_runner gran_serial_runner = { serial_run, NULL };

static void note_unmap_failure(struct gran_plan *p, int err, uint64_t iova,
			       uint64_t length)
{
	p->stats.unmap_failures++;
	if (!p->stats.first_unmap_err) {
		p->stats.first_unmap_err = err;
		p->stats.first_unmap_iova = iova;
		p->stats.first_unmap_length = length;
	}
}

/* After a failed unmap of [first, first+count): bits follow the backend. */
static void resync(struct gran_plan *p, struct gran_region *r,
		   const struct be_ops *ops, struct be_space *space,
		   uint64_t first, uint64_t count)
{
	p->stats.audits++;
	if (gran_region_resync(r, ops, space, first, count))
		p->stats.audit_failures++;
}

/*
 * After unmap of [first, first+count) of @r failed with @err: audit the
 * range, then unmap each run the bits still say mapped once more (a run
 * whose retry fails is audited again).  Bits end truthful either way.
 * Returns 0 when nothing of the range is held any more, else the last
 * unmap error.
 */
static int unmap_retry(struct gran_plan *p, struct gran_region *r,
		       const struct be_ops *ops, struct be_space *space,
		       uint64_t first, uint64_t count, int err)
{
	uint64_t s, e, end = first + count, unmapped;
	int ret;

	note_unmap_failure(p, err, gran_iova_of(r, first), gran_bytes(r, count));
	resync(p, r, ops, space, first, count);
	for (s = gran_bm_next_set(&r->bm, first, end); s < end;
	     s = gran_bm_next_set(&r->bm, e, end)) {
		e = gran_bm_next_clear(&r->bm, s, end);
		p->stats.unmap_retries++;
		ret = ops->unmap(space, gran_iova_of(r, s), gran_bytes(r, e - s),
				 &unmapped);
		if (!ret) {
			gran_bm_clear(&r->bm, s, e);
			continue;
		}
		note_unmap_failure(p, ret, gran_iova_of(r, s), gran_bytes(r, e - s));
		resync(p, r, ops, space, s, e - s);
		err = ret;
	}
	return gran_bm_next_set(&r->bm, first, end) < end ? err : 0;
}

/* Undo accumulator: granule runs an event mapped, merged when adjacent. */
struct undo_acc {
	struct gran_region *r;
	uint64_t first, count;
};

/* Unmap the accumulated run (the granules' bits are clear). */
static void undo_flush(struct gran_plan *p, struct undo_acc *u,
		       const struct be_ops *ops, struct be_space *space)
{
	uint64_t unmapped;
	int ret;

	if (!u->count)
		return;
	p->stats.undo_calls++;
	ret = ops->unmap(space, gran_iova_of(u->r, u->first),
			 gran_bytes(u->r, u->count), &unmapped);
	if (ret)
		unmap_retry(p, u->r, ops, space, u->first, u->count, ret);
	u->count = 0;
}

static void undo_add(struct gran_plan *p, struct undo_acc *u, uint64_t first,
		     uint64_t count, const struct be_ops *ops,
		     struct be_space *space)
{
	if (u->count && u->first + u->count == first) {
		u->count += count;
		return;
	}
	undo_flush(p, u, ops, space);
	u->first = first;
	u->count = count;
}

/* Granules of job @j inside event @ev: [*@first, *@first + return). */
static uint64_t job_part(const struct gran_event *ev, const struct gran_map_job *j,
			 uint64_t *first)
{
	const struct gran_region *r = ev->region;
	uint64_t s = plan_job_granule(r, j), e = s + (j->length >> r->shift);

	if (s < ev->first)
		s = ev->first;
	if (e > ev->first + ev->count)
		e = ev->first + ev->count;
	*first = s;
	return e - s;
}

/* A job mapping for more than one event (a run cap's merged run). */
static bool job_shared(const struct gran_map_job *j)
{
	return j->event != j->event_last;
}

/*
 * Settle event @ei for the window just run: @jobs[0..@n) are the window's
 * jobs that map any of its granules, in granule order.  A shared job that
 * did not map (failed, or skipped by the runner) is retried for this
 * event's part alone while the event has no error yet, so one event's bad
 * page fails only that event.  On a failure, fail the event and unmap
 * exactly what it mapped (its earlier windows: the granules of its range
 * before the window's first job whose bits are clear; this window: its
 * part of the jobs that mapped, cut out of an area it shares).  @run_err
 * is the runner's error for the window (0 or -errno): an event whose only
 * failure is a job the runner did not run fails with it rather than with
 * -ECANCELED.
 */
static void settle_event(struct gran_plan *p, size_t ei, const struct gran_map_job *jobs,
			 size_t n, const struct be_ops *ops, struct be_space *space,
			 int run_err)
{
	struct gran_event *ev = &p->ev[ei];
	struct gran_region *r = ev->region;
	struct undo_acc u = { .r = r };
	size_t retried_ok[2], nr_ok = 0, k;
	uint64_t s, x, g0, g, cnt;
	int err = 0, res;

	for (size_t i = 0; i < n; i++) {
		if (!jobs[i].res)
			continue;
		if (!job_shared(&jobs[i])) {
			if (!err || err == -ECANCELED)
				err = jobs[i].res;
			continue;
		}
		if (err)
			continue; /* the event fails anyway */
		/* At most two shared jobs touch an event: one that reaches in
		 * from the events before, one that goes on into the next. */
		cnt = job_part(ev, &jobs[i], &g);
		res = ops->map(space, gran_iova_of(r, g), gran_bytes(r, cnt),
			       &(struct be_map_src){
				       .vaddr = (char *)jobs[i].src.vaddr +
						(gran_iova_of(r, g) - jobs[i].iova),
				       .fd = jobs[i].src.fd,
				       .fd_offset = jobs[i].src.fd_offset +
						    (gran_iova_of(r, g) - jobs[i].iova) },
			       jobs[i].prot);
		p->stats.map_calls++;
		if (res) {
			p->stats.map_failures++;
			err = res;
		} else if (nr_ok < 2) {
			retried_ok[nr_ok++] = i;
		}
	}
	if (!err)
		return;
	if (err == -ECANCELED && run_err < 0)
		err = run_err;
	p->comp[ei].res = err;
	job_part(ev, &jobs[0], &g0);
	for (s = gran_bm_next_clear(&r->bm, ev->first, g0); s < g0;
	     s = gran_bm_next_clear(&r->bm, x, g0)) {
		x = gran_bm_next_set(&r->bm, s, g0);
		undo_add(p, &u, s, x - s, ops, space);
	}
	for (size_t i = 0; i < n; i++) {
		bool mapped = !jobs[i].res;

		for (k = 0; k < nr_ok && !mapped; k++)
			mapped = retried_ok[k] == i;
		if (!mapped)
			continue;
		cnt = job_part(ev, &jobs[i], &g);
		undo_add(p, &u, g, cnt, ops, space);
	}
	undo_flush(p, &u, ops, space);
}

/*
 * Settle the window just run, event by event: the jobs that map for event
 * k (event <= k <= event_last) are contiguous in a window.
 */
static void settle_window(struct gran_plan *p, const struct be_ops *ops,
			  struct be_space *space, int run_err)
{
	const struct gran_map_job *jobs = p->st.jobs;
	size_t lo = 0, hi, n = p->st.nr_jobs;

	for (size_t i = 0; i < n; i++) {
		if (jobs[i].res != -ECANCELED)
			p->stats.map_calls++;
		if (jobs[i].res && jobs[i].res != -ECANCELED)
			p->stats.map_failures++;
	}
	if (!n)
		return;
	for (size_t k = jobs[0].event; k <= jobs[n - 1].event_last; k++) {
		while (lo < n && jobs[lo].event_last < k)
			lo++;
		for (hi = lo; hi < n && jobs[hi].event <= k; hi++)
			;
		if (hi > lo)
			settle_event(p, k, jobs + lo, hi - lo, ops, space, run_err);
	}
}

/* Run the stage's coalesced unmap calls and commit their bits. */
static void run_unmaps(struct gran_plan *p, const struct be_ops *ops,
		       struct be_space *space)
{
	struct gran_unmap_call *c;
	uint64_t unmapped;
	size_t i;

	for (i = 0; i < p->st.nr_unmaps; i++) {
		c = &p->st.unmaps[i];
		p->stats.unmap_calls++;
		c->res = ops->unmap(space, c->iova, c->length, &unmapped);
		if (!c->res) {
			/* Success: no area is left inside the range. */
			gran_bm_clear(&c->region->bm, c->first, c->first + c->count);
			continue;
		}
		c->res = unmap_retry(p, c->region, ops, space, c->first,
				     c->count, c->res);
	}
}

/*
 * check_stage_bitmaps (DMASVC_DEBUG): the self-check of every bitmap leaf
 * events [@ev_first, @ev_end) touched, after their trims.  A leaf is 32768
 * granules, so checking it per event cost a full leaf's popcount per 4 KiB
 * event (the top entry of the daemon's storm profile, issue 16): events in
 * a row that touch the same region and leaves are merged into one span and
 * each span is checked once.  Reports a failure on stderr (a bug).
 */
static void check_stage_bitmaps(const struct gran_plan *p, size_t ev_first, size_t ev_end)
{
	const struct gran_event *ev;
	struct gran_region *r = NULL;
	uint64_t lo = 0, hi = 0;
	size_t from = ev_first;

	for (size_t i = ev_first; i <= ev_end; i++) {
		ev = i < ev_end ? &p->ev[i] : NULL;
		if (ev && ev->region == r && (ev->first >> GRAN_LEAF_SHIFT) <= ((hi - 1) >> GRAN_LEAF_SHIFT) + 1 &&
		    ((ev->first + ev->count - 1) >> GRAN_LEAF_SHIFT) + 1 >= (lo >> GRAN_LEAF_SHIFT)) {
			lo = ev->first < lo ? ev->first : lo;
			hi = ev->first + ev->count > hi ? ev->first + ev->count : hi;
			continue;
		}
		if (r && !gran_bm_check(&r->bm, lo, hi))
			fprintf(stderr, "granule: BUG: bitmap counts inconsistent "
				"after events %zu..%zu\n", from, i - 1);
		if (ev) {
			r = ev->region;
			lo = ev->first;
			hi = ev->first + ev->count;
			from = i;
		}
	}
}
/* Run the prepared stage; fills the completions of its events. */
static void run_stage(struct gran_plan *p, const struct be_ops *ops,
		      struct be_space *space,
		      const struct gran_job_runner *runner)
{
	size_t i, ev_first = p->st.ev_first, ev_end = p->st.ev_end;
	struct gran_event *ev;
	struct plan_seg *sg;
	int *res, run_err;

	p->stats.stages++;
	/* comp[ev_first..ev_end) were reset by the preparation; res aliases
	 * comp[i].res. */
	while (p->st.nr_jobs) {
		run_err = runner->run(runner->ctx, ops, space, p->st.jobs, p->st.nr_jobs);
		settle_window(p, ops, space, run_err);
		plan_fill_window(p);
	}
	for (i = ev_first; i < ev_end; i++) {
		ev = &p->ev[i];
		if (ev->op == GRAN_OP_POPULATE && !p->comp[i].res &&
		    p->st.job_count[i - ev_first])
			gran_bm_set(&ev->region->bm, ev->first, ev->first + ev->count);
	}
	run_unmaps(p, ops, space);
	for (i = 0; i < p->nr_segs; i++) {
		sg = &p->segs[i];
		res = &p->comp[sg->event].res;
		if (p->st.unmaps[sg->call].res && !*res &&
		    gran_bm_next_set(&sg->region->bm, sg->first,
				     sg->first + sg->count) < sg->first + sg->count)
			*res = p->st.unmaps[sg->call].res;
	}
	for (i = ev_first; i < ev_end; i++) {
		ev = &p->ev[i];
		gran_bm_trim(&ev->region->bm, ev->first, ev->first + ev->count);
	}
	if (DMASVC_DEBUG)
		check_stage_bitmaps(p, ev_first, ev_end);
	p->nr_comp = ev_end;
	p->next_stage++;
	plan_stage_release(p);
}

int gran_plan_execute(struct gran_plan *p, const struct be_ops *ops,
		      struct be_space *space,
		      const struct gran_job_runner *runner)
{
	const struct gran_stage *st;
	size_t i;
	int ret;

	if (!runner)
		runner = &gran_serial_runner;
	for (;;) {
		ret = gran_plan_prepare_stage(p, &st);
		if (ret == 0)
			return 0;
		if (ret < 0)
			break;
		run_stage(p, ops, space, runner);
	}
	/* Out of memory: fail this and every later event, changing nothing. */
	for (i = p->nr_comp; i < p->n; i++) {
		p->comp[i].user_data = p->ev[i].user_data;
		p->comp[i].res = ret;
	}
	p->nr_comp = p->n;
	p->next_stage = p->nr_stages;
	return ret;
}
