/* SPDX-License-Identifier: MIT */
/*
 * test_pool.c - the worker pool runs every item exactly once, in parallel
 * when it has lanes, and can be reused batch after batch; concurrent
 * batches share the workers in turn.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "exec_pool_priv.h"

struct batch {
	atomic_int *hits;
	atomic_int running, max_running;
	int sleep_us;
};

static void item(void *arg, size_t i)
{
	struct batch *b = arg;
	int now = atomic_fetch_add(&b->running, 1) + 1;
	int m = atomic_load(&b->max_running);

	while (now > m && !atomic_compare_exchange_weak(&b->max_running, &m, now))
		;
	if (b->sleep_us)
		usleep((useconds_t)b->sleep_us);
	atomic_fetch_add(&b->hits[i], 1);
	atomic_fetch_sub(&b->running, 1);
}

ParameterizedTestParameters(pool, every_item_once)
{
	static unsigned int lanes[] = { 1, 2, 4 };

	return cr_make_param_array(unsigned int, lanes, sizeof(lanes) / sizeof(lanes[0]));
}

ParameterizedTest(unsigned int *lanes, pool, every_item_once)
{
	struct exec_pool *p;
	size_t n = 1000;
	struct batch b = { .hits = calloc(n, sizeof(atomic_int)) };

	cr_assert_eq(pool_create(*lanes, &p), 0);
	cr_expect_eq(pool_workers(p), *lanes);
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < n; i++)
			atomic_store(&b.hits[i], 0);
		pool_run(p, item, &b, round == 0 ? 1 : n - (size_t)round);
		for (size_t i = 0; i < (round == 0 ? 1 : n - (size_t)round); i++)
			cr_assert_eq(atomic_load(&b.hits[i]), 1, "round %d item %zu", round, i);
		cr_assert_eq(atomic_load(&b.running), 0, "pool_run returned with items in flight");
	}
	pool_destroy(p);
	free(b.hits);
}

Test(pool, runs_in_parallel)
{
	struct exec_pool *p;
	struct batch b = { .hits = calloc(16, sizeof(atomic_int)), .sleep_us = 20000 };

	cr_assert_eq(pool_create(4, &p), 0);
	pool_run(p, item, &b, 16);
	cr_expect_geq(atomic_load(&b.max_running), 2, "at least two lanes ran at once");
	cr_expect_leq(atomic_load(&b.max_running), 4, "never more than --workers lanes");
	pool_destroy(p);
	free(b.hits);
	cr_expect_eq(pool_create(0, &p), -EINVAL);
}

struct concurrent {
	struct exec_pool *p;
	struct batch b;
	size_t n;
};

static void *concurrent_caller(void *arg)
{
	struct concurrent *c = arg;

	for (int round = 0; round < 50; round++)
		pool_run(c->p, item, &c->b, c->n);
	return NULL;
}

Test(pool, concurrent_callers_share_the_lanes)
{
	struct exec_pool *p;
	struct concurrent c[3];
	pthread_t t[3];

	cr_assert_eq(pool_create(3, &p), 0);
	for (int i = 0; i < 3; i++) {
		c[i] = (struct concurrent){ .p = p, .n = 100 + (size_t)i * 37 };
		c[i].b.hits = calloc(c[i].n, sizeof(atomic_int));
		cr_assert_eq(pthread_create(&t[i], NULL, concurrent_caller, &c[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		for (size_t k = 0; k < c[i].n; k++)
			cr_assert_eq(atomic_load(&c[i].b.hits[k]), 50, "caller %d item %zu", i, k);
		cr_expect_eq(atomic_load(&c[i].b.running), 0);
		free(c[i].b.hits);
	}
	pool_destroy(p);
}

/* A batch that records which threads ran its items. */
struct rr_batch {
	pthread_t caller;
	atomic_int by_caller, by_worker, done;
	int sleep_us;
};

static void rr_item(void *arg, size_t i)
{
	struct rr_batch *b = arg;

	(void)i;
	usleep((useconds_t)b->sleep_us);
	if (pthread_equal(pthread_self(), b->caller))
		atomic_fetch_add(&b->by_caller, 1);
	else
		atomic_fetch_add(&b->by_worker, 1);
	atomic_fetch_add(&b->done, 1);
}

struct rr_run {
	struct exec_pool *p;
	struct rr_batch *b;
	size_t n;
};

static void *rr_caller(void *arg)
{
	struct rr_run *r = arg;

	r->b->caller = pthread_self();
	pool_run(r->p, rr_item, r->b, r->n);
	return NULL;
}

/*
 * Fair share between sessions: A's batch of 1000 items (1 ms each, over a
 * second of claims on 3 lanes) is running when B's batch of 10 starts; the
 * workers take turns, so some of B's items run on worker threads while A
 * still has items left.  Oldest-first (before): B got only its own lane,
 * by_worker 0, until A's last item was claimed.
 */
Test(pool, a_later_batch_gets_a_share_of_the_workers)
{
	struct rr_batch a = { .sleep_us = 1000 }, b = { .sleep_us = 1000 };
	struct rr_run ra = { .b = &a, .n = 1000 }, rb = { .b = &b, .n = 10 };
	pthread_t ta, tb;

	cr_assert_eq(pool_create(3, &ra.p), 0);
	rb.p = ra.p;
	cr_assert_eq(pthread_create(&ta, NULL, rr_caller, &ra), 0);
	while (atomic_load(&a.done) < 10)
		usleep(1000);
	cr_assert_eq(pthread_create(&tb, NULL, rr_caller, &rb), 0);
	pthread_join(tb, NULL);
	cr_expect_lt(atomic_load(&a.done), 1000, "A still had items when B finished");
	cr_expect_eq(atomic_load(&b.by_caller) + atomic_load(&b.by_worker), 10);
	cr_expect_geq(atomic_load(&b.by_worker), 1,
		      "the workers served B too (by worker %d, by its caller %d; A done %d)",
		      atomic_load(&b.by_worker), atomic_load(&b.by_caller), atomic_load(&a.done));
	pthread_join(ta, NULL);
	cr_expect_eq(atomic_load(&a.done), 1000);
	pool_destroy(ra.p);
}
