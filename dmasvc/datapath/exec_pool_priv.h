/* SPDX-License-Identifier: MIT */
/*
 * exec_pool_priv.h - the worker pool that runs map jobs in parallel.
 * Do not include from outside dmasvc/.
 *
 * Vocabulary: a "batch" is one call of pool_run(): @n items, each handled
 * once by fn(arg, i).  The pool has `workers` lanes: workers - 1 threads
 * plus the calling thread, so --workers N means at most N maps in flight
 * for one batch (concurrent batches each add their caller).  Items are claimed one at a time (a map is a
 * pin + ioctl, far costlier than the claim).
 *
 * Threading: pool_run() may be called from several threads at once (the
 * event loop and session executors); their batches share the worker
 * threads in turn (a worker takes one item of the next open batch, round
 * robin), and each caller also runs items of its own batch.  pool_run() returns after every item of its batch finished.
 */
#ifndef DMASVC_EXEC_POOL_PRIV_H
#define DMASVC_EXEC_POOL_PRIV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmasvc/plan.h"

struct exec_pool;

/* pool_item_fn: handle item @i of the batch; must not fail (record results in the item). */
typedef void (*pool_item_fn)(void *arg, size_t i);

/*
 * pool_create: a pool of @workers lanes (>= 1; workers - 1 threads).
 * Returns 0 and *@out, or -errno (threads already started are joined).
 */
int pool_create(unsigned int workers, struct exec_pool **out);

/* pool_destroy: stop and join the threads, free the pool.  NULL is a no-op. */
void pool_destroy(struct exec_pool *p);

/* pool_workers: the number of lanes. */
unsigned int pool_workers(const struct exec_pool *p);

/* pool_run: call @fn(@arg, i) for i in [0, @n) on all lanes; returns when all are done. */
void pool_run(struct exec_pool *p, pool_item_fn fn, void *arg, size_t n);

/*
 * A window's map jobs are shared with the pool's workers only when they map
 * at least this many bytes together; fewer run on the calling lane alone.
 * A 4 KiB conversion's pins take microseconds each, a hand-off tens of them
 * here (a wake-up), so a conversion storm's windows (tens of pages) run on
 * one lane, while a 128 MiB plug is shared.
 */
#define POOL_SHARE_MIN_BYTES (1ull << 20)

/*
 * struct pool_job_runner - granule/'s map jobs (plan.h) on the pool: each
 * window's jobs are the items of one batch.  Once a job of an event failed,
 * lanes skip that event's later jobs of the window (they keep -ECANCELED:
 * the event fails and is undone anyway), so a huge populate whose first map
 * fails does not pin the rest of its window first.  The fields are the
 * runner's; read only failed and first_fail, after gran_plan_execute().
 */
struct pool_job_runner {
	struct exec_pool *pool;
	const struct be_ops *ops;        /* of the window being run */
	struct be_space *space;
	struct gran_map_job *jobs;
	/* 1 + event of the latest failed job of this window, 0: none.
	 * Relaxed on both sides: a stale value only costs one map more, which
	 * the event's undo removes; pool_run()'s join orders it for the caller. */
	_Atomic uint32_t failed_event;
	bool failed;                     /* some job failed (not -ECANCELED) */
	struct gran_map_job first_fail;  /* the first such job, in window order */
};

/*
 * pool_job_runner_init: set up *@pr to run map jobs on @p and *@out as the
 * gran_job_runner to pass to gran_plan_execute() (its run() always runs or
 * skips every job it is given and returns 0).  Never fails.
 */
void pool_job_runner_init(struct pool_job_runner *pr, struct exec_pool *p,
			  struct gran_job_runner *out);

#endif /* DMASVC_EXEC_POOL_PRIV_H */
