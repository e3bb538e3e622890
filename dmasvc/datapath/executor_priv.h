/* SPDX-License-Identifier: MIT */
/*
 * executor_priv.h - per-session executor threads for everything long (big
 * bursts, and the jobs of long control requests and of teardown), so one
 * session's long pinning or unpinning does not stall the event loop and the
 * other sessions.  Do not include from outside dmasvc/.
 *
 * Vocabulary: each session gets at most one executor thread (created on its
 * first big burst or job) and has at most one thing in flight on it
 * (s->busy): a burst (s->burst) or a job (s->job_ops).  When it is done
 * the session id goes on the "done" queue and the queue's eventfd is
 * signalled; the event loop reaps the ids and finishes bursts (posts CQEs)
 * and jobs (their finish()) on its own thread.  Map jobs of every executor
 * share the one worker pool.
 *
 * Threading: executor_submit, executor_submit_job, executor_run_job,
 * executor_reap, executor_wait and executor_thread_stop are called by the
 * event loop only; the executor thread touches what session_priv.h's
 * threading rule lists for the burst or job it runs, nothing else.
 */
#ifndef DMASVC_EXECUTOR_PRIV_H
#define DMASVC_EXECUTOR_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "service_priv.h"
#include "session_priv.h"


/*
 * A job: work that runs on a session's executor instead of the loop.
 * @run: on the executor thread while the session is busy; may touch only
 *       what session_priv.h's threading rule lists for its kind.
 * @finish: on the loop once the job was reaped (the session no longer
 *       busy): apply the results to loop-owned state, reply, and end the
 *       submitter's ownership of @arg.  May run inside a wait
 *       (ringsvc_quiesce), so it must not free the session.
 */
struct exec_job_ops {
	void (*run)(struct dsvc *d, struct dsvc_session *s, void *arg);
	void (*finish)(struct dsvc *d, struct dsvc_session *s, void *arg);
};

/* executor_queue_create: the done queue and its eventfd.  Returns 0 or -errno. */
int executor_queue_create(struct executor_queue **out);

/* executor_queue_destroy: free it (no executor may be running).  NULL is a no-op. */
void executor_queue_destroy(struct executor_queue *q);

/* executor_queue_fd: the eventfd the loop polls (readable when bursts finished). */
int executor_queue_fd(const struct executor_queue *q);

/*
 * executor_submit: mark @s busy and hand s->burst to its executor (started on
 * first use).  Returns 0, or -errno if the thread could not be started
 * (then @s is not busy: run the burst inline).
 */
int executor_submit(struct dsvc *d, struct dsvc_session *s);

/*
 * executor_submit_job: mark @s (not busy) busy and run @ops with @arg on its
 * executor (started on first use); ops->finish runs when the loop reaps it
 * (ringsvc_complete).  Returns 0, or -errno if there is no executor (no done
 * queue, or the thread could not be started): then @s is not busy.
 */
int executor_submit_job(struct dsvc *d, struct dsvc_session *s, const struct exec_job_ops *ops,
			void *arg);

/*
 * executor_run_job: executor_submit_job(), or, when that fails, run and
 * finish the job inline on the loop (slow, but never lost).  Returns true
 * when the job went to the executor (@s busy), false when it is done.
 */
bool executor_run_job(struct dsvc *d, struct dsvc_session *s, const struct exec_job_ops *ops,
		      void *arg);

/*
 * executor_reap: take up to @max finished session ids into @ids (the sessions are
 * still marked busy; the caller finishes them).  Returns the count.
 */
unsigned int executor_reap(struct dsvc *d, uint32_t *ids, unsigned int max);

/* executor_wait: block until some burst finished (the queue's eventfd is readable). */
void executor_wait(struct dsvc *d);

/* executor_thread_stop: stop and join @s's executor (@s must not be busy).  Never fails. */
void executor_thread_stop(struct dsvc_session *s);

#endif /* DMASVC_EXECUTOR_PRIV_H */
