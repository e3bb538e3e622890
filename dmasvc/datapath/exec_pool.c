/* SPDX-License-Identifier: MIT */
/*
 * exec_pool.c - a fixed pool of worker threads shared by concurrent
 * pool_run() batches (see exec_pool_priv.h).
 *
 * Vocabulary: a batch lives on its caller's stack for the duration of
 * pool_run(); while it has unclaimed items it sits on the pool's "open"
 * list.  Workers claim items from the open batches in turn, one item each
 * (round robin: the head batch moves to the tail after a claim); the caller
 * claims items of its own batch only, then waits until every claimed item
 * of it finished.  One mutex guards the list and every batch's counters.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "exec_pool_priv.h"

struct pool_batch {
	pool_item_fn fn;          /* immutable while queued */
	void *arg;
	size_t n;
	size_t next;              /* next unclaimed item (pool lock) */
	size_t done;              /* finished items (pool lock) */
	struct pool_batch *link;  /* next open batch (pool lock) */
};

struct exec_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;      /* signalled: a batch was opened, or stop */
	pthread_cond_t idle;      /* broadcast: some batch finished its last item */
	/* Guarded by lock: */
	struct pool_batch *head;  /* open batches, oldest first */
	struct pool_batch *tail;
	bool stop;
	/* Immutable after create: */
	unsigned int workers;     /* lanes: the threads plus each caller */
	unsigned int nthreads;    /* started threads (workers - 1 once created) */
	pthread_t *threads;
};

/* Claim the next item of @b; drops @b from the open list once all are claimed.  Lock held. */
static size_t pool_claim_locked(struct exec_pool *p, struct pool_batch *b)
{
	size_t i = b->next++;

	if (b->next == b->n) {
		struct pool_batch **pp = &p->head, *prev = NULL;

		while (*pp && *pp != b) {
			prev = *pp;
			pp = &(*pp)->link;
		}
		if (*pp) {
			*pp = b->link;
			if (p->tail == b)
				p->tail = prev;
		}
	}
	return i;
}

/* Run item @i of @b outside the lock and count it done.  Lock held on entry and exit. */
static void pool_run_item_locked(struct exec_pool *p, struct pool_batch *b, size_t i)
{
	pthread_mutex_unlock(&p->lock);
	b->fn(b->arg, i);
	pthread_mutex_lock(&p->lock);
	if (++b->done == b->n)
		pthread_cond_broadcast(&p->idle);
}

static void *pool_thread(void *opaque)
{
	struct exec_pool *p = opaque;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct pool_batch *b;
		size_t i;

		while (!p->stop && !p->head)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		b = p->head;
		i = pool_claim_locked(p, b);
		if (p->head == b && b->link) {
			/* Round robin: the next claim serves the next open batch
			 * (each session runs at most one batch at a time, so a
			 * session's small burst does not wait behind all of
			 * another's 2048 map jobs for the workers). */
			p->head = b->link;
			b->link = NULL;
			p->tail->link = b;
			p->tail = b;
		}
		pool_run_item_locked(p, b, i);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int pool_create(unsigned int workers, struct exec_pool **out)
{
	struct exec_pool *p;
	int ret = 0;

	if (workers == 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->workers = workers;
	p->threads = calloc(workers, sizeof(*p->threads));
	if (!p->threads) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	for (unsigned int i = 0; i + 1 < workers; i++) {
		ret = -pthread_create(&p->threads[i], NULL, pool_thread, p);
		if (ret)
			break;
		p->nthreads++;
	}
	if (ret) {
		pool_destroy(p);
		return ret;
	}
	*out = p;
	return 0;
}

void pool_destroy(struct exec_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->idle);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

unsigned int pool_workers(const struct exec_pool *p)
{
	return p->workers;
}

void pool_run(struct exec_pool *p, pool_item_fn fn, void *arg, size_t n)
{
	struct pool_batch b = { .fn = fn, .arg = arg, .n = n };

	if (n == 0)
		return;
	if (n == 1 || p->nthreads == 0) {
		/* Nothing to share: no hand-off, no wake-up latency. */
		for (size_t i = 0; i < n; i++)
			fn(arg, i);
		return;
	}
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->link = &b;
	else
		p->head = &b;
	p->tail = &b;
	pthread_cond_broadcast(&p->work);
	while (b.next < b.n) /* the caller is a lane of its own batch */
		pool_run_item_locked(p, &b, pool_claim_locked(p, &b));
	while (b.done < b.n)
		pthread_cond_wait(&p->idle, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

static void run_one_job(void *arg, size_t i)
{
	struct pool_job_runner *pr = arg;
	struct gran_map_job *j = &pr->jobs[i];

	if (atomic_load_explicit(&pr->failed_event, memory_order_relaxed) == j->event + 1)
		return;
	j->res = pr->ops->map(pr->space, j->iova, j->length, &j->src, j->prot);
	if (j->res)
		atomic_store_explicit(&pr->failed_event, j->event + 1, memory_order_relaxed);
}

static int pool_job_runner_run(void *ctx, const struct be_ops *ops, struct be_space *space,
			       struct gran_map_job *jobs, size_t n)
{
	struct pool_job_runner *pr = ctx;
	uint64_t bytes = 0;

	pr->ops = ops;
	pr->space = space;
	pr->jobs = jobs;
	atomic_store_explicit(&pr->failed_event, 0, memory_order_relaxed);
	for (size_t i = 0; i < n && bytes < POOL_SHARE_MIN_BYTES; i++)
		bytes += jobs[i].length;
	if (bytes < POOL_SHARE_MIN_BYTES) {
		/* Too little to share: the hand-off would cost more than the
		 * work, and lanes on one pinning primitive contend for its lock
		 * (bench/RESULTS.md, the storm's w2 rows). */
		for (size_t i = 0; i < n; i++)
			run_one_job(pr, i);
	} else {
		pool_run(pr->pool, run_one_job, pr, n);
	}
	for (size_t i = 0; i < n && !pr->failed; i++) {
		if (jobs[i].res && jobs[i].res != -ECANCELED) {
			pr->failed = true;
			pr->first_fail = jobs[i];
		}
	}
	return 0;
}

void pool_job_runner_init(struct pool_job_runner *pr, struct exec_pool *p,
			  struct gran_job_runner *out)
{
	*pr = (struct pool_job_runner){ .pool = p };
	*out = (struct gran_job_runner){ .run = pool_job_runner_run, .ctx = pr };
}
