/* SPDX-License-Identifier: MIT */
/*
 * plan_priv.h - private to granule/ (planner and executor); do not include
 * directly from outside.
 */
#ifndef DMASVC_PLAN_PRIV_H
#define DMASVC_PLAN_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "dmasvc/plan.h"

/* One maximal run of mapped granules a discard event of the stage covers. */
struct plan_seg {
	struct gran_region *region;
	uint64_t first, count;
	size_t event; /* burst index */
	size_t call;  /* index in stage.unmaps */
};

/*
 * A plan.  Stage i is events [stage_start[i], stage_start[i + 1]).
 * Stages before next_stage have run and their completions are in comp.
 * When prepared is true, st/segs describe stage next_stage and have not run.
 * While a stage runs, comp[e].res of its events holds each populate's
 * first map error (0 while fine), and fill_ev/fill_g say where the next
 * window starts: event fill_ev (burst index), its granule fill_g.
 * Owned by the thread that built it.
 */
struct gran_plan {
	struct gran_event *ev;
	size_t n;
	size_t *stage_start; /* nr_stages + 1 entries */
	size_t nr_stages;
	size_t next_stage;
	bool prepared;
	struct gran_stage st;
	struct plan_seg *segs;
	size_t nr_segs;
	struct gran_completion *comp; /* n entries, nr_comp filled */
	size_t nr_comp;
	size_t window; /* max jobs per window, >= 1 */
	uint64_t run_max; /* bytes per map job over a run; 0: one granule */
	size_t fill_ev;
	uint64_t fill_g;
	struct gran_exec_stats stats;
};

/* Granule index of job @j of region @r. */
uint64_t plan_job_granule(const struct gran_region *r,
			  const struct gran_map_job *j);

/*
 * Fill st.jobs with the next window of the prepared stage (skipping events
 * whose comp res is already an error).  Returns st.nr_jobs (0: no job left).
 */
size_t plan_fill_window(struct gran_plan *p);

/* Free the prepared stage's arrays of @p and mark it unprepared. */
void plan_stage_release(struct gran_plan *p);

/*
 * Test access: what the suites inspect or tune and no production caller
 * needs (not in the public plan.h / granule.h).
 */
/*
 * gran_plan_set_window - bound the jobs handed to the runner at once to
 * @max_jobs (>= 1; 0 restores GRAN_PLAN_WINDOW_JOBS).  Call before the
 * first stage is prepared; tests use tiny windows to cross boundaries.
 */
void gran_plan_set_window(struct gran_plan *p, size_t max_jobs);

/* Number of stages of @p. */
size_t gran_plan_nr_stages(const struct gran_plan *p);

#endif /* DMASVC_PLAN_PRIV_H */
