/* SPDX-License-Identifier: MIT */
/*
 * plan.h - the batch planner and its executor.
 *
 * A burst is an ordered array of validated events (populate or discard of a
 * granule range of one region).  gran_plan_build() copies it and cuts it
 * into stages: a new stage starts at an event that touches a granule some
 * earlier event of the current stage touched (any op).  Inside a stage all
 * events are disjoint, so their operations may run in any order and in
 * parallel; stages run one after the other, which makes events take effect
 * in burst order (a populate then a discard of one granule ends discarded,
 * both complete).
 *
 * Each stage is prepared from the regions' state at the moment it starts
 * (earlier stages, including their failures, are already committed):
 *   map jobs     one per granule a populate finds unmapped, in event order
 *                and, inside an event, in granule order (iommufd and type1
 *                cannot split an area, so one area per granule is what lets
 *                any granule be unmapped alone later).  With a run cap
 *                (gran_plan_set_run_max(), for a space whose unmap cuts
 *                areas), one per run of unmapped granules of an event
 *                instead, cut into jobs of at most the cap (so a plug
 *                still spreads over the runner's threads); a run that
 *                goes on into the next events of the stage (consecutive
 *                populates, each starting where the last one ends: a
 *                conversion notified page by page) stays one job over
 *                those events' granules.  They are
 *                never all materialised: the stage hands them to the
 *                runner in windows of at most the plan's window size
 *                (GRAN_PLAN_WINDOW_JOBS by default), each window the next
 *                jobs in that order, skipping the events that already
 *                failed;
 *   undo plan    stored as ranges, not jobs: if a window has a failed job
 *                of event e, what e mapped is its unmapped-at-start
 *                granules before its first job of that window (all earlier
 *                windows of e succeeded, and e's bits are committed only at
 *                the end of the stage) plus its part of the successful jobs
 *                of this window; exactly those are unmapped again
 *                (contiguous ones in one call; a part of a job shared with
 *                another event is cut out of its area) and e takes no
 *                further jobs.  A shared job that failed (or was skipped)
 *                fails none of its events by itself: each event's part is
 *                mapped again alone, and only an event whose own part
 *                fails fails;
 *   unmap calls  one per maximal run of contiguous mapped granules that the
 *                stage discards in one region (adjacent discards of several
 *                events share a call; a call never spans two regions).
 * Populating a mapped granule or discarding an unmapped one makes no
 * operation (idempotent) and succeeds.
 *
 * What execution guarantees, per stage:
 *   - a populate event succeeds iff every map job it needed succeeded;
 *     then all its granules are mapped.  If one failed, the event fails
 *     with its first job error and exactly what it mapped is unmapped
 *     again: it changes nothing.
 *   - a discard event's granules are unmapped in coalesced calls shared
 *     with the stage's other discards.  It fails (with the last unmap
 *     error) iff one of its granules is still held by the backend after
 *     one audited retry; the caller may retry it.
 *   - region state is the truth afterwards: a granule is marked unmapped
 *     only when the backend no longer holds it (after a failed unmap, the
 *     bits follow be_ops.audit; if the audit fails too, they stay mapped).
 *   - one completion per event, in event order.
 *
 * Lifetime: a plan points at its events' regions; they must stay
 * registered until the plan is freed.  Memory, whatever the events: the
 * copied burst, O(events) per stage, one window of jobs (56 bytes each,
 * about 0.9 MiB by default), one unmap call per mapped run a stage
 * discards (bounded by the regions' bitmaps), and the bitmap leaves of the
 * populated ranges (one bit per granule).  A populate of a whole 64 GiB
 * region at 4 KiB costs one window plus 2 MiB of leaves, not 16 M jobs.
 *
 * Threading: build/execute/free run on the region owner's thread; only the
 * runner's run() may fan the jobs out to other threads, and it returns
 * after all of them finished.
 */
#ifndef DMASVC_PLAN_H
#define DMASVC_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "dmasvc/backend.h"
#include "dmasvc/granule.h"

enum gran_op {
	GRAN_OP_POPULATE = 1,
	GRAN_OP_DISCARD = 2,
};

/* One validated event (ranges from gran_region_range()). */
struct gran_event {
	struct gran_region *region;
	uint64_t first;     /* first granule */
	uint64_t count;     /* granules, >= 1 */
	uint32_t op;        /* enum gran_op */
	uint64_t user_data; /* returned in the completion */
};

struct gran_completion {
	uint64_t user_data;
	int32_t res; /* 0 or -errno */
};

/* One map call (a granule, or a piece of a run with a run cap), filled by
 * the planner, run by a job runner. */
struct gran_map_job {
	uint64_t iova;
	uint64_t length;
	struct be_map_src src;
	unsigned int prot;
	uint32_t event; /* index of the (first) event in the burst it maps for */
	/* Result: -ECANCELED until the runner runs the job, then map()'s. */
	int res;
	/* The last event it maps for: == event, except with a run cap, where
	 * a run that goes on into the next events of the stage (consecutive
	 * populates of one region, each starting where the last ends) is one
	 * job over their granules. */
	uint32_t event_last;
};

/* One coalesced unmap call of a stage. */
struct gran_unmap_call {
	struct gran_region *region;
	uint64_t first; /* granule range inside region */
	uint64_t count;
	uint64_t iova;  /* = region iova + first * granule */
	uint64_t length;
	int res;        /* unmap()'s result once run, else 0 */
};

/* Default and test-settable bound on the jobs of one window. */
#define GRAN_PLAN_WINDOW_JOBS 16384u

/* A prepared stage (read-only view for runners and tests). */
struct gran_stage {
	size_t ev_first, ev_end; /* events [ev_first, ev_end) of the burst */
	/* The current window: the next nr_jobs (<= the plan's window) jobs
	 * of the stage; after preparation, the first window. */
	struct gran_map_job *jobs;
	size_t nr_jobs;
	size_t total_jobs; /* jobs of the whole stage (all windows) */
	/* With i = e - ev_first: event e has job_count[i] jobs, the ones
	 * numbered job_first[i].. in the stage's job order. */
	size_t *job_first;
	size_t *job_count;
	struct gran_unmap_call *unmaps;
	size_t nr_unmaps;
};

/*
 * struct gran_job_runner - how map jobs run.
 * @run: called once per window (@n <= the plan's window; an event's jobs
 * are contiguous and in granule order, and a job shared by events
 * [event, event_last] counts as the first one's): run @jobs[0..@n) against @space
 * with @ops->map(), in any order and on any threads, and store each job's result in its res; a job it skips
 * keeps -ECANCELED (a runner may skip the remaining jobs of an event once
 * one of them failed).  Must return only after every job it started has
 * finished.  Returns 0, or -errno if it could not run everything (jobs not
 * run keep -ECANCELED; an event that has no other failed job fails with
 * this -errno).
 */
struct gran_job_runner {
	int (*run)(void *ctx, const struct be_ops *ops, struct be_space *space,
		   struct gran_map_job *jobs, size_t n);
	void *ctx;
};

/* The default runner: map() each job in order on the calling thread,
 * skipping the rest of an event after its first failure. */
extern const struct gran_job_runner gran_serial_runner;

/* What an execution did, for stats and for reporting failures. */
struct gran_exec_stats {
	uint64_t stages;
	uint64_t map_calls;       /* jobs run */
	uint64_t map_failures;
	uint64_t undo_calls;      /* unmaps made to roll back failed events */
	uint64_t unmap_calls;     /* coalesced discard unmaps */
	uint64_t unmap_failures;  /* failed undo or discard unmaps (retries too) */
	uint64_t unmap_retries;   /* retry unmaps after a failure (in neither
				   * count above unless they fail) */
	uint64_t audits;
	uint64_t audit_failures;
	int first_unmap_err;      /* first failed unmap: -errno, else 0 */
	uint64_t first_unmap_iova;
	uint64_t first_unmap_length;
};

struct gran_plan;

/*
 * gran_plan_build - copy the @n events (n >= 1) and cut them into stages.
 * Every event must have a region, a known op, count >= 1 and lie inside its
 * region.  Cost O(1) per event while a stage's events come in address
 * order, O(log n) per event else (a balanced tree of the stage's events).
 * Returns 0 and *@out; -EINVAL for a bad event; -ENOMEM.
 */
int gran_plan_build(const struct gran_event *events, size_t n,
		    struct gran_plan **out);

/*
 * gran_plan_prepare_stage - prepare the next stage of @p from the current
 * region state (idempotent until that stage runs) and set *@out to it.
 * Returns 1, 0 when every stage has run, or -ENOMEM.
 */
int gran_plan_prepare_stage(struct gran_plan *p, const struct gran_stage **out);

/*
 * gran_plan_execute - run every remaining stage of @p against @space with
 * @runner (NULL: gran_serial_runner) and commit region state.  Always
 * produces one completion per event: an event of a stage that could not be
 * prepared (-ENOMEM) fails with that error and changes nothing.
 * Returns 0, or -ENOMEM if some stage could not be prepared.
 */
int gran_plan_execute(struct gran_plan *p, const struct be_ops *ops,
		      struct be_space *space,
		      const struct gran_job_runner *runner);

/* gran_plan_completions - the completions so far (event order), *@n of them. */
const struct gran_completion *gran_plan_completions(const struct gran_plan *p,
						    size_t *n);

/* gran_plan_stats - what the execution did so far. */
void gran_plan_stats(const struct gran_plan *p, struct gran_exec_stats *out);

/*
 * gran_plan_set_run_max - map each run of unmapped granules a populate
 * finds as jobs of at most @bytes (at least one granule each; 0, the
 * default: one job per granule).  Only for a space whose unmap() cuts
 * areas (be_ops.unmap_cuts): with one area over many granules, a discard
 * of some of them must cut it.  Call before the first stage is prepared.
 */
void gran_plan_set_run_max(struct gran_plan *p, uint64_t bytes);

/* gran_plan_free - free @p (NULL is a no-op). */
void gran_plan_free(struct gran_plan *p);


#endif /* DMASVC_PLAN_H */
