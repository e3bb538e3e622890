/* SPDX-License-Identifier: MIT */
/*
 * executor.c - per-session executor threads and the done queue (see
 * executor_priv.h).  One mutex + condvar per executor for the hand-off,
 * one mutex for the done queue; the eventfd only wakes the loop.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "executor_priv.h"
#include "burst_priv.h"

struct executor_queue {
	pthread_mutex_t lock;
	/* Guarded by lock; at most one entry per session (one burst in flight each). */
	uint32_t ids[DSVC_MAX_SESSIONS];
	unsigned int n;
	int efd;                  /* immutable */
};

struct executor_thread {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	/* Guarded by lock: */
	bool job;                 /* s->burst or s->job_ops is waiting to run */
	bool stop;
	/* Immutable: */
	struct dsvc *d;
	struct dsvc_session *s;
};

int executor_queue_create(struct executor_queue **out)
{
	struct executor_queue *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		int ret = -errno;

		free(q);
		return ret;
	}
	pthread_mutex_init(&q->lock, NULL);
	*out = q;
	return 0;
}

void executor_queue_destroy(struct executor_queue *q)
{
	if (!q)
		return;
	close(q->efd);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int executor_queue_fd(const struct executor_queue *q)
{
	return q->efd;
}

static void executor_done(struct executor_queue *q, uint32_t sid)
{
	uint64_t one = 1;

	pthread_mutex_lock(&q->lock);
	if (q->n < DSVC_MAX_SESSIONS)
		q->ids[q->n++] = sid;
	pthread_mutex_unlock(&q->lock);
	while (write(q->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void *executor_main(void *arg)
{
	struct executor_thread *t = arg;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		while (!t->job && !t->stop)
			pthread_cond_wait(&t->cv, &t->lock);
		if (t->stop)
			break;
		pthread_mutex_unlock(&t->lock);
		if (t->s->job_ops) { /* set by the loop before the hand-over */
			t->s->job_ops->run(t->d, t->s, t->s->job_arg);
		} else {
			burst_run(t->d, t->s, t->s->burst);
			burst_post(t->s->burst); /* the client's CQEs now, not when the loop reaps */
		}
		pthread_mutex_lock(&t->lock);
		t->job = false;
		pthread_mutex_unlock(&t->lock);
		/* The loop may finish the burst from here on, and kick the next
		 * one: not under t->lock, or the loop, woken by the eventfd onto
		 * this CPU, would block on it and hand the CPU back first. */
		executor_done(t->d->bx, t->s->id);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

/* Start @s's executor thread if it has none.  Returns 0 or -errno. */
static int executor_start(struct dsvc *d, struct dsvc_session *s)
{
	struct executor_thread *t;
	int ret;

	if (s->exec)
		return 0;
	if (!d->bx)
		return -EOPNOTSUPP;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->d = d;
	t->s = s;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cv, NULL);
	ret = -pthread_create(&t->thread, NULL, executor_main, t);
	if (ret) {
		pthread_cond_destroy(&t->cv);
		pthread_mutex_destroy(&t->lock);
		free(t);
		return ret;
	}
	s->exec = t;
	return 0;
}

/* Hand what s->job_ops (or s->burst) names to the started executor of @s. */
static void executor_kick(struct dsvc_session *s)
{
	struct executor_thread *t = s->exec;

	/* what STATUS and the budget read while the executor owns the regions */
	session_usage_snapshot(s);
	s->busy = true;
	pthread_mutex_lock(&t->lock);
	t->job = true;
	pthread_mutex_unlock(&t->lock);
	/* After the unlock: woken under it, the executor (often put on this
	 * CPU) would run only to block on t->lock and sleep again. */
	pthread_cond_signal(&t->cv);
}

int executor_submit(struct dsvc *d, struct dsvc_session *s)
{
	int ret = executor_start(d, s);

	if (ret)
		return ret;
	s->job_ops = NULL;
	executor_kick(s);
	return 0;
}

int executor_submit_job(struct dsvc *d, struct dsvc_session *s, const struct exec_job_ops *ops,
			void *arg)
{
	int ret = executor_start(d, s);

	if (ret)
		return ret;
	s->job_ops = ops;
	s->job_arg = arg;
	executor_kick(s);
	return 0;
}

bool executor_run_job(struct dsvc *d, struct dsvc_session *s, const struct exec_job_ops *ops,
		      void *arg)
{
	int ret = executor_submit_job(d, s, ops, arg);

	if (ret == 0)
		return true;
	if (ret != -EOPNOTSUPP)
		dlog_err(d->log, s->id, ret, "no executor thread: running a long operation on the event loop");
	ops->run(d, s, arg);
	ops->finish(d, s, arg);
	return false;
}

unsigned int executor_reap(struct dsvc *d, uint32_t *ids, unsigned int max)
{
	struct executor_queue *q = d->bx;
	unsigned int n;
	uint64_t v;

	while (read(q->efd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&q->lock);
	n = q->n < max ? q->n : max;
	for (unsigned int i = 0; i < n; i++)
		ids[i] = q->ids[i];
	for (unsigned int i = n; i < q->n; i++)
		q->ids[i - n] = q->ids[i];
	q->n -= n;
	if (q->n) { /* more than max: keep the eventfd readable */
		v = 1;
		while (write(q->efd, &v, sizeof(v)) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}

void executor_wait(struct dsvc *d)
{
	struct pollfd p = { .fd = d->bx->efd, .events = POLLIN };

	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
}

void executor_thread_stop(struct dsvc_session *s)
{
	struct executor_thread *t = s->exec;

	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->lock);
	free(t);
	s->exec = NULL;
}
