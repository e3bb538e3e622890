/* SPDX-License-Identifier: MIT */
/*
 * burst_priv.h - one drained burst on its way from an SQ to the CQ, and
 * running it: plan the events with granule/, map on the worker pool.  Do
 * not include from outside dmasvc/ (tests and fuzzers may).
 *
 * A burst is built and finished on the event-loop thread (ring_service.c);
 * it is run there or, when big, on the session's executor thread
 * (executor.c) while the session is busy.
 */
#ifndef DMASVC_BURST_PRIV_H
#define DMASVC_BURST_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "dmasvc/plan.h"

#include "session_priv.h"

/* A burst naming at least this many bytes or granules is big: it runs on the
 * session's executor, not on the loop (d->async_bytes starts at the bytes). */
#define BURST_ASYNC_BYTES (16ull << 20)
#define BURST_ASYNC_GRANULES 256

/*
 * In a space whose unmap cuts areas (--areas run): the most one map call of
 * a run may cover.  Big enough that a 4 KiB run of a conversion storm is
 * one call (512 pages), small enough that a plug still spreads over the
 * workers; a 2 MiB granule stays one call per granule.
 */
#define BURST_RUN_MAX_BYTES (2ull << 20)

/*
 * One burst: what one drain took from one SQ.  Its capacity is the largest
 * SQ of its session (cap SQEs): a drain takes everything published, and a
 * batch the client published with one tail store is never larger than its
 * SQ, so a batch is always drained, planned and coalesced as one (burst_new).
 * Every array below has cap entries, in one allocation with the struct.
 */
struct dsvc_burst {
	unsigned int cap;                    /* entries of every array below */
	struct dsvc_ring *rg;                /* the ring it came from */
	unsigned int n;                      /* SQEs drained */
	size_t nev;                          /* valid events among them */
	uint64_t t0;                         /* drain time: latency starts here */
	uint64_t bytes, granules;            /* work the events name (upper bound) */
	struct dmasvc_sqe *sqes;             /* the drained SQEs (private copies) */
	struct dmasvc_cqe *cqes;             /* one per SQE, in SQE order */
	struct gran_event *ev;
	uint32_t *region_ids;                /* per event, for log lines */
	unsigned int *ev_sqe;                /* event index -> SQE index */
	bool *replay;                        /* per event: DMASVC_SQE_REPLAY in a resumed session */
	/* per replay event, counted by burst_run before the plan: granules
	 * its op must change (a populate's unmapped ones, a discard's mapped
	 * ones): the repair, logged and counted at the finish if it succeeded */
	uint64_t *repair;
	/* Results, written by whoever runs it: */
	int32_t *res;                        /* per event */
	int err;                             /* plan build/execute error, or 0 */
	struct gran_exec_stats st;
	bool map_failed;
	struct gran_map_job first_fail;      /* the first failed map job */
	/* Set by burst_post, on the thread that ran the burst: */
	bool posted;                         /* the CQEs went out (or could not: post_err) */
	int post_err;                        /* 0, or RING_EPROTO: the CQ is corrupt */
	uint64_t t_done;                     /* when they went out: latency ends here */
	/* The residency rule (burst_run.c): populates refused before the plan
	 * or by the guard at their pin (not counting those the cap refused
	 * too: they are -EDQUOT). */
	unsigned int nr_refused;             /* events refused */
	size_t refused_event;                /* the first of them */
	int refused_err;                     /* its result: -ENXIO, or mincore's -errno */
	uint64_t refused_hole;               /* memory offset of its first absent page */
	/* The populated-bytes cap (session_burst_admit), judged after the
	 * residency rule: populates refused with -EDQUOT. */
	unsigned int nr_over_cap;
	size_t over_cap_event;               /* the first of them */
	char over_cap_why[DMASVC_TEXT_MAX];  /* its refusal, for the log line */
	/* Scratch of burst_run: the events that go into the plan, and where
	 * each one came from in ev[]; per event: a hole, over the cap, the
	 * cap's skip, the first absent page. */
	struct gran_event *plan_ev;
	unsigned int *plan_idx;
	bool *hole, *over;
	uint64_t *hole_at;
	struct session_admit_span *spans;    /* 2 * cap + 1: the cap's scratch */
};

/*
 * burst_new: a burst of capacity @cap (>= 1) SQEs, every array zeroed, in
 * one allocation the caller frees with free().  Returns NULL when out of
 * memory.
 */
struct dsvc_burst *burst_new(unsigned int cap);

/*
 * burst_run: plan and run the events of @b against @s's space (map jobs
 * on d->pool) and store the results in @b.  Runs on the loop or on @s's
 * executor; touches only @b, the space and the regions the events name.
 * Two checks come before anything is mapped or faulted in, in this order:
 * unless the operator allows faulting in (--allow-fault-in), a populate
 * whose memory range holds a page that is not in memory is a hole, refused
 * with -ENXIO (mem_find_hole(), which faults nothing: the service pins only
 * pages the VM allocated; docs/design.md, "Who allocates guest memory");
 * then the session's populated-bytes cap (session_burst_admit): a populate
 * over it is -EDQUOT, hole or not, and a refused hole takes no budget from
 * the events after it.  Where the memory's mapping is guarded and the
 * backend pins through it at map time (be_ops.pins_vaddr_at_map), the pin
 * itself refuses the hole instead (dmasvc/hole_guard.h, the session's guard): no
 * mincore() before, the same -ENXIO after (the map changed nothing); only
 * when the cap refuses an event of the burst are the guarded populates
 * checked before the plan after all, so that the cap's judgement is the
 * same as with every hole known.  Never fails (failures are per-event
 * results and b->err).
 */
void burst_run(struct dsvc *d, struct dsvc_session *s, struct dsvc_burst *b);

/*
 * burst_post: post the CQEs of @b (its SQEs' results, b->res for
 * its events) to its ring's CQ, what does not fit to the ring's backlog,
 * and wake the client if it sleeps; records it in b->posted, b->post_err
 * (RING_EPROTO: the client corrupted the CQ) and b->t_done.  Called by the
 * thread that ran @b: the executor of a busy session right after
 * burst_run (so the client does not wait for the loop to notice), else
 * the loop when it finishes @b.  The CQ's producer side and the backlog
 * of a busy session's ring belong to its executor (session_priv.h).
 */
void burst_post(struct dsvc_burst *b);

#endif /* DMASVC_BURST_PRIV_H */
