/* SPDX-License-Identifier: MIT */
/*
 * plan_exec.c - the executor: run a plan's stages against a backend space
 * (map jobs through the job runner, undo of failed populates, coalesced
 * unmaps), commit region state truthfully and produce completions.  The
 * ordering rules are in plan.h.
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

/* Unmap one contiguous run of granules an event mapped before failing. */
static void undo_run(struct gran_plan *p, struct gran_region *r,
		     const struct be_ops *ops, struct be_space *space,
		     uint64_t first, uint64_t count)
{
	uint64_t unmapped;
	int ret;

	p->stats.undo_calls++;
	ret = ops->unmap(space, gran_iova_of(r, first), gran_bytes(r, count),
			 &unmapped);
	if (ret) {
		note_unmap_failure(p, ret, gran_iova_of(r, first),
				   gran_bytes(r, count));
		resync(p, r, ops, space, first, count);
	}
}

/*
 * Settle populate event @ei: commit its granules if all jobs worked, else
 * undo the successful ones.  Returns the event's result.
 */
static int settle_populate(struct gran_plan *p, size_t ei,
			   const struct be_ops *ops, struct be_space *space)
{
	struct gran_region *r = p->ev[ei].region;
	size_t k = ei - p->st.ev_first, i;
	size_t n = p->st.job_count[k];
	/* no pointer arithmetic on a stage without jobs (jobs == NULL) */
	struct gran_map_job *jobs = n ? p->st.jobs + p->st.job_first[k] : NULL;
	uint64_t g, run_first = 0, run_count = 0;
	int err = 0;

	for (i = 0; i < n; i++) {
		if (jobs[i].res != -ECANCELED)
			p->stats.map_calls++;
		if (jobs[i].res && jobs[i].res != -ECANCELED)
			p->stats.map_failures++;
		if (jobs[i].res && (!err || err == -ECANCELED))
			err = jobs[i].res;
	}
	if (!err) {
		for (i = 0; i < n; i++) {
			g = plan_job_granule(r, &jobs[i]);
			gran_bm_set(&r->bm, g, g + 1);
		}
		return 0;
	}
	/* Undo: unmap exactly the granules this event mapped, contiguous
	 * successful jobs in one call. */
	for (i = 0; i < n; i++) {
		if (jobs[i].res)
			continue;
		g = plan_job_granule(r, &jobs[i]);
		if (run_count && run_first + run_count == g) {
			run_count++;
			continue;
		}
		if (run_count)
			undo_run(p, r, ops, space, run_first, run_count);
		run_first = g;
		run_count = 1;
	}
	if (run_count)
		undo_run(p, r, ops, space, run_first, run_count);
	return err;
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
		note_unmap_failure(p, c->res, c->iova, c->length);
		resync(p, c->region, ops, space, c->first, c->count);
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
	int *res;

	p->stats.stages++;
	if (p->st.nr_jobs)
		runner->run(runner->ctx, ops, space, p->st.jobs, p->st.nr_jobs);
	/* Completions are written in place; res aliases comp[i].res. */
	for (i = ev_first; i < ev_end; i++) {
		ev = &p->ev[i];
		p->comp[i].user_data = ev->user_data;
		p->comp[i].res = ev->op == GRAN_OP_POPULATE ?
					 settle_populate(p, i, ops, space) : 0;
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
		if (DMASVC_DEBUG && !gran_bm_check(&ev->region->bm, ev->first,
						   ev->first + ev->count))
			fprintf(stderr, "granule: BUG: bitmap counts inconsistent "
				"after event %zu\n", i);
	}
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
