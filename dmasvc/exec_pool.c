/* SPDX-License-Identifier: MIT */
/*
 * exec_pool.c - a fixed pool of worker threads for pool_run() batches (see
 * exec_pool_priv.h).  One mutex and two condition variables; a batch is
 * published under the mutex with a new generation number so a worker never
 * mistakes an old batch for a new one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "exec_pool_priv.h"

struct exec_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;   /* signalled: a batch was published, or stop */
	pthread_cond_t idle;   /* signalled: the last item of a batch finished */
	/* Guarded by lock: */
	pool_item_fn fn;
	void *arg;
	size_t n;              /* items in the current batch */
	size_t next;           /* next unclaimed item */
	size_t done;           /* finished items */
	unsigned long gen;     /* batch generation */
	bool stop;
	/* Immutable after create: */
	unsigned int workers;  /* lanes, the caller included */
	unsigned int nthreads; /* started threads (workers - 1 once created) */
	pthread_t *threads;
};

/* Claim and run items until the batch has none left; called with lock held. */
static void __pool_drain(struct exec_pool *p)
{
	while (p->next < p->n) {
		size_t i = p->next++;
		pool_item_fn fn = p->fn;
		void *arg = p->arg;

		pthread_mutex_unlock(&p->lock);
		fn(arg, i);
		pthread_mutex_lock(&p->lock);
		if (++p->done == p->n)
			pthread_cond_signal(&p->idle);
	}
}

static void *pool_thread(void *opaque)
{
	struct exec_pool *p = opaque;
	unsigned long seen = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && (p->gen == seen || p->next >= p->n))
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		seen = p->gen;
		__pool_drain(p);
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
	if (n == 0)
		return;
	if (n == 1 || p->nthreads == 0) {
		/* Nothing to share: no hand-off, no wake-up latency. */
		for (size_t i = 0; i < n; i++)
			fn(arg, i);
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->fn = fn;
	p->arg = arg;
	p->n = n;
	p->next = 0;
	p->done = 0;
	p->gen++;
	pthread_cond_broadcast(&p->work);
	__pool_drain(p); /* the caller is lane 0 */
	while (p->done < p->n)
		pthread_cond_wait(&p->idle, &p->lock);
	p->n = 0;
	p->next = 0;
	pthread_mutex_unlock(&p->lock);
}
