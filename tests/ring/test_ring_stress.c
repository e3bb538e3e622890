/* SPDX-License-Identifier: MIT */
/*
 * test_ring_stress.c - two processes, one ring memfd mapped at different
 * addresses, millions of SQEs and their CQEs.
 *
 * The test process plays the service (SQ consumer, CQ producer); a forked
 * child plays the client (SQ producer, CQ consumer).  Each SQE and CQE
 * carries a sequence number in every field and both sides check them in
 * order, so a dropped, duplicated, torn or reordered entry fails.  Burst
 * sizes are random in 1..max_burst on all four roles, so transfers start
 * at every slot and split at every offset when they wrap; the test checks
 * that coverage.  Idle sides poll for a random number of rounds and then
 * sleep on their eventfd through the need-wakeup protocol; a lost wake-up
 * shows as a sleep that times out (counted, must be 0).
 *
 * Vocabulary: "pend" is the service's private list of CQEs it owes but
 * could not post yet (CQ full: the service waits, it never drops).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ring_test_util.h"
/* white-box: reads private core fields (r.core.*) to check a role's own index, to count what a call moved */
#include <dmasvc/ring_core_pvt.h>

#define MAX_BURST 64
#define SLEEP_TIMEOUT_MS 5000
#define DEADLINE_S 240

struct stress_cfg {
	struct ring_params params;
	uint64_t n;          /* SQEs to pass (and CQEs back) */
	uint32_t idle_spins; /* max polling rounds before sleeping (random below it) */
	uint64_t seed;
	/*
	 * Assert that every role wrapped at every split offset.  Off where
	 * burst sizes follow wake-up timing (always_sleep: the woken service
	 * often holds few entries, so large splits near the end of a 512-slot
	 * CQ are luck, and the check flaked); the other runs assert it.
	 */
	bool check_wraps;
};

/* Per-role counters; wrapped[s] = a transfer started at slot s and wrapped. */
struct role_stats {
	uint64_t entries;
	uint64_t calls_empty;  /* post that found the queue full / drain that found it empty */
	uint8_t wrapped[1024];
};

struct side_stats {
	uint64_t sleeps;
	uint64_t timeouts;     /* sleeps that ran into SLEEP_TIMEOUT_MS: lost wake-ups */
	uint64_t signals;      /* eventfd writes this side did */
};

/* In MAP_SHARED anonymous memory: written by both processes, read after the child exits. */
struct stress_shared {
	struct stress_cfg cfg;
	const void *service_base;
	struct role_stats sq_prod, cq_cons; /* client */
	struct side_stats client;
	char client_err[256];
	int client_fds[3];
};

/* Count a post/drain of @n entries that started at index @index_before. */
static void note_transfer(struct role_stats *st, uint32_t index_before, int n, uint32_t entries)
{
	uint32_t slot = index_before & (entries - 1);

	if (n == 0) {
		st->calls_empty++;
		return;
	}
	st->entries += (uint64_t)n;
	if ((uint32_t)n > entries - slot)
		st->wrapped[slot] = 1;
}

/*
 * Transfers wrapped at every split offset a burst of at most MAX_BURST can
 * have: started at each slot s with 0 < entries - s < min(entries, MAX_BURST).
 */
static uint32_t wrap_misses(const struct role_stats *st, uint32_t entries)
{
	uint32_t span = entries < MAX_BURST ? entries : MAX_BURST, miss = 0;

	for (uint32_t s = entries - span + 1; s < entries; s++)
		miss += !st->wrapped[s];
	return miss;
}

#define CHILD_FAIL(sh, ...) \
	do { \
		snprintf((sh)->client_err, sizeof((sh)->client_err), __VA_ARGS__); \
		return 1; \
	} while (0)

/* The client (child): post SQEs, check CQEs, sleep when idle; 0 = pass. */
static int client_main(void *arg)
{
	struct stress_shared *sh = arg;
	const struct stress_cfg *cfg = &sh->cfg;
	struct t_rng rng = { cfg->seed * 2 + 1 };
	ssize_t size = ring_mem_size(cfg->params.sq_entries, cfg->params.cq_entries);
	int doorbell = sh->client_fds[1], completion = sh->client_fds[2];
	struct dmasvc_sqe sqes[MAX_BURST];
	struct dmasvc_cqe cqes[MAX_BURST];
	struct ring_sq_producer sqp;
	struct ring_cq_consumer cqc;
	struct ring_mapping m;
	uint64_t posted = 0, completed = 0;
	uint32_t idle = 0, idle_limit = 0;
	void *base;

	/* a second mapping at another address; drop the one inherited from fork */
	base = t_map_elsewhere(sh->client_fds[0], (size_t)size, sh->service_base);
	if (!base)
		CHILD_FAIL(sh, "map failed");
	munmap((void *)sh->service_base, (size_t)size);
	if (ring_attach(&m, base, (size_t)size, &cfg->params) < 0)
		CHILD_FAIL(sh, "attach failed");
	if (ring_sq_producer_init(&sqp, &m) < 0 || ring_cq_consumer_init(&cqc, &m) < 0)
		CHILD_FAIL(sh, "role init failed");

	while (completed < cfg->n) {
		bool progress = false;
		uint32_t b, before;
		int n;

		if (posted < cfg->n) {
			b = t_burst(&rng, MAX_BURST);
			if (b > cfg->n - posted)
				b = (uint32_t)(cfg->n - posted);
			for (uint32_t i = 0; i < b; i++)
				t_sqe_fill(&sqes[i], posted + i);
			before = sqp.core.tail;
			n = ring_sq_post(&sqp, sqes, b);
			if (n < 0 || (uint32_t)n > b)
				CHILD_FAIL(sh, "sq_post returned %d for %u", n, b);
			note_transfer(&sh->sq_prod, before, n, cfg->params.sq_entries);
			if (n > 0) {
				posted += (uint64_t)n;
				progress = true;
				if (ring_sq_post_should_wake(&sqp)) {
					sh->client.signals++;
					if (ring_eventfd_signal(doorbell) < 0)
						CHILD_FAIL(sh, "doorbell signal failed");
				}
			}
		}
		b = t_burst(&rng, MAX_BURST);
		before = cqc.core.head;
		n = ring_cq_drain(&cqc, cqes, b);
		if (n < 0 || (uint32_t)n > b)
			CHILD_FAIL(sh, "cq_drain returned %d for %u", n, b);
		note_transfer(&sh->cq_cons, before, n, cfg->params.cq_entries);
		for (int i = 0; i < n; i++, completed++) {
			if (!t_cqe_check(&cqes[i], completed))
				CHILD_FAIL(sh, "CQE %llu wrong (user_data %llu)", (unsigned long long)completed,
					   (unsigned long long)cqes[i].user_data);
			if (completed >= posted)
				CHILD_FAIL(sh, "CQE %llu before its SQE was posted", (unsigned long long)completed);
		}
		if (n > 0) {
			progress = true;
			if (ring_cq_drain_should_wake(&cqc)) {
				sh->client.signals++;
				if (ring_eventfd_signal(doorbell) < 0)
					CHILD_FAIL(sh, "doorbell signal failed");
			}
		}
		if (progress) {
			idle = 0;
			continue;
		}
		if (idle++ < idle_limit) {
			t_cpu_relax();
			continue;
		}
		idle = 0;
		idle_limit = cfg->idle_spins ? t_rng_range(&rng, 0, cfg->idle_spins) : 0;

		/* nothing to do: wait for CQEs, and for SQ space if the SQ is full */
		bool want_space = posted < cfg->n, sleep_ok = true;

		n = ring_cq_drain_wait_begin(&cqc);
		if (n < 0)
			CHILD_FAIL(sh, "cq wait_begin %d", n);
		sleep_ok = n == 1;
		if (want_space) {
			n = ring_sq_post_wait_begin(&sqp);
			if (n < 0)
				CHILD_FAIL(sh, "sq wait_begin %d", n);
			sleep_ok = sleep_ok && n == 1;
		}
		if (sleep_ok) {
			sh->client.sleeps++;
			n = ring_eventfd_wait(completion, SLEEP_TIMEOUT_MS);
			if (n == -ETIMEDOUT)
				sh->client.timeouts++;
			else if (n < 0)
				CHILD_FAIL(sh, "completion wait %d", n);
		}
		ring_cq_drain_wait_end(&cqc);
		if (want_space)
			ring_sq_post_wait_end(&sqp);
	}
	munmap(base, (size_t)size);
	return 0;
}

/* The service side, in the test process.  Returns after all CQEs are posted. */
static void service_run(struct stress_shared *sh, struct ring_mapping *m, const struct ring_fds *fds, pid_t child,
			struct role_stats *sq_cons, struct role_stats *cq_prod, struct side_stats *me)
{
	const struct stress_cfg *cfg = &sh->cfg;
	struct t_rng rng = { cfg->seed * 2 + 2 };
	struct dmasvc_sqe sqes[MAX_BURST];
	struct dmasvc_cqe pend[MAX_BURST];
	struct ring_sq_consumer sqc;
	struct ring_cq_producer cqp;
	uint64_t drained = 0, completed = 0, deadline = t_now_ns() + DEADLINE_S * 1000000000ull;
	uint32_t npend = 0, idle = 0, idle_limit = 0;

	cr_assert_eq(ring_sq_consumer_init(&sqc, m), 0);
	cr_assert_eq(ring_cq_producer_init(&cqp, m), 0);
	while (completed < cfg->n) {
		bool progress = false;
		uint32_t b, before;
		int n;

		if (npend < MAX_BURST) {
			b = t_burst(&rng, MAX_BURST - npend);
			before = sqc.core.head;
			n = ring_sq_drain(&sqc, sqes, b);
			cr_assert(n >= 0 && (uint32_t)n <= b, "sq_drain returned %d for %u", n, b);
			note_transfer(sq_cons, before, n, cfg->params.sq_entries);
			for (int i = 0; i < n; i++, drained++) {
				cr_assert(t_sqe_check(&sqes[i], drained), "SQE %llu wrong (user_data %llu)",
					  (unsigned long long)drained, (unsigned long long)sqes[i].user_data);
				t_cqe_fill(&pend[npend++], drained);
			}
			if (n > 0) {
				progress = true;
				if (ring_sq_drain_should_wake(&sqc)) {
					me->signals++;
					cr_assert_eq(ring_eventfd_signal(fds->completion), 0);
				}
			}
		}
		if (npend > 0) {
			b = t_burst(&rng, npend);
			before = cqp.core.tail;
			n = ring_cq_post(&cqp, pend, b);
			cr_assert(n >= 0 && (uint32_t)n <= b, "cq_post returned %d for %u", n, b);
			note_transfer(cq_prod, before, n, cfg->params.cq_entries);
			if (n > 0) {
				npend -= (uint32_t)n;
				memmove(pend, pend + n, npend * sizeof(pend[0]));
				completed += (uint64_t)n;
				progress = true;
				if (ring_cq_post_should_wake(&cqp)) {
					me->signals++;
					cr_assert_eq(ring_eventfd_signal(fds->completion), 0);
				}
			}
		}
		if (progress) {
			idle = 0;
			continue;
		}
		if (idle++ < idle_limit) {
			t_cpu_relax();
			continue;
		}
		idle = 0;
		idle_limit = cfg->idle_spins ? t_rng_range(&rng, 0, cfg->idle_spins) : 0;
		cr_assert_lt(t_now_ns(), deadline, "deadline: %llu of %llu completed",
			     (unsigned long long)completed, (unsigned long long)cfg->n);

		/* wait for SQEs if we can take more, for CQ space if we owe CQEs */
		bool want_sqes = npend < MAX_BURST, want_space = npend > 0, sleep_ok = true;

		if (want_sqes) {
			n = ring_sq_drain_wait_begin(&sqc);
			cr_assert_geq(n, 0);
			sleep_ok = n == 1;
		}
		if (want_space) {
			n = ring_cq_post_wait_begin(&cqp);
			cr_assert_geq(n, 0);
			sleep_ok = sleep_ok && n == 1;
		}
		if (sleep_ok) {
			me->sleeps++;
			n = ring_eventfd_wait(fds->doorbell, SLEEP_TIMEOUT_MS);
			if (n == -ETIMEDOUT) {
				me->timeouts++;
				cr_assert_eq(kill(child, 0), 0, "client died: %s", sh->client_err);
			} else {
				cr_assert_eq(n, 0);
			}
		}
		if (want_sqes)
			ring_sq_drain_wait_end(&sqc);
		if (want_space)
			ring_cq_post_wait_end(&cqp);
	}
	cr_expect_eq(drained, cfg->n);
}

/* One two-process run with @cfg, and every assertion on its counters. */
static void stress(const struct stress_cfg *cfg)
{
	struct stress_shared *sh = t_shared_alloc(sizeof(*sh));
	struct role_stats sq_cons = { 0 }, cq_prod = { 0 };
	struct side_stats service = { 0 };
	uint32_t sq = cfg->params.sq_entries, cq = cfg->params.cq_entries;
	struct ring_mapping m;
	struct ring_fds fds;
	uint64_t t0 = t_now_ns();
	pid_t child;
	int rc;

	cr_assert_not_null(sh);
	cr_assert_leq(sq, sizeof(sq_cons.wrapped));
	cr_assert_leq(cq, sizeof(cq_prod.wrapped));
	sh->cfg = *cfg;
	cr_assert_eq(ring_fds_create(&fds, &cfg->params), 0);
	cr_assert_eq(ring_map(&m, fds.memfd, &cfg->params), 0);
	sh->service_base = m.base;
	sh->client_fds[0] = fds.memfd;
	sh->client_fds[1] = fds.doorbell;
	sh->client_fds[2] = fds.completion;
	child = t_spawn(client_main, sh);
	cr_assert_gt(child, 0);

	service_run(sh, &m, &fds, child, &sq_cons, &cq_prod, &service);
	rc = t_reap(child, 60);
	cr_assert_eq(rc, 0, "client exit %d: %s", rc, sh->client_err);

	/* nothing dropped or duplicated: each role moved exactly n entries */
	cr_expect_eq(sh->sq_prod.entries, cfg->n);
	cr_expect_eq(sq_cons.entries, cfg->n);
	cr_expect_eq(cq_prod.entries, cfg->n);
	cr_expect_eq(sh->cq_cons.entries, cfg->n);
	/* wrap-around split at every offset, in all four roles */
	if (cfg->check_wraps) {
		cr_expect_eq(wrap_misses(&sh->sq_prod, sq), 0, "SQ producer");
		cr_expect_eq(wrap_misses(&sq_cons, sq), 0, "SQ consumer");
		cr_expect_eq(wrap_misses(&cq_prod, cq), 0, "CQ producer");
		cr_expect_eq(wrap_misses(&sh->cq_cons, cq), 0, "CQ consumer");
	}
	/* full queues were met and waited out (backpressure), sleeps happened */
	cr_expect_gt(sh->sq_prod.calls_empty, 0, "SQ never full");
	cr_expect_gt(sh->client.sleeps + service.sleeps, 0);
	/* an honest peer never loses a wake-up */
	cr_expect_eq(sh->client.timeouts, 0);
	cr_expect_eq(service.timeouts, 0);
	cr_log_info("n=%llu sq=%u cq=%u first=%#x: %.2f s; SQ full %llu, CQ full %llu; sleeps client %llu "
		    "service %llu; signals client %llu service %llu",
		    (unsigned long long)cfg->n, sq, cq, cfg->params.first_index, (double)(t_now_ns() - t0) / 1e9,
		    (unsigned long long)sh->sq_prod.calls_empty, (unsigned long long)cq_prod.calls_empty,
		    (unsigned long long)sh->client.sleeps, (unsigned long long)service.sleeps,
		    (unsigned long long)sh->client.signals, (unsigned long long)service.signals);
	ring_unmap(&m);
	ring_fds_close(&fds);
	t_shared_free(sh, sizeof(*sh));
}

/* 10 million SQEs and CQEs; indices cross 2^32 after the first million. */
Test(ring_stress, ten_million_sqes_and_cqes, .timeout = 280)
{
	struct stress_cfg cfg = {
		.params = { .sq_entries = 64, .cq_entries = 64, .first_index = UINT32_MAX - 1000000 },
		.n = 10 * 1000 * 1000,
		.idle_spins = 256,
		.seed = 1,
		.check_wraps = true,
	};

	stress(&cfg);
}

/* The smallest rings: every transfer is cut by backpressure. */
Test(ring_stress, two_slot_rings, .timeout = 120)
{
	struct stress_cfg cfg = {
		.params = { .sq_entries = 2, .cq_entries = 2, .first_index = 0 },
		.n = 300 * 1000,
		.idle_spins = 64,
		.seed = 2,
		.check_wraps = true,
	};

	stress(&cfg);
}

/* Sleep at once whenever idle: every wake-up goes through need_wakeup + eventfd. */
Test(ring_stress, always_sleep, .timeout = 120)
{
	struct stress_cfg cfg = {
		.params = { .sq_entries = 256, .cq_entries = 512, .first_index = UINT32_MAX - 5000 },
		.n = 2 * 1000 * 1000,
		.idle_spins = 0,
		.seed = 3,
	};

	stress(&cfg);
}
