/* SPDX-License-Identifier: MIT */
/*
 * test_kill_it.c - clients SIGKILLed at random points leave nothing behind.
 *
 * Each test runs one service and KILLS_PER_SERVICE trials; four tests make
 * 120 trials.  A trial forks a client that connects, registers a memfd
 * region and loops over random blocking and asynchronous populates and
 * discards (a 4 KiB-granule variant too); the test kills it after a random
 * 0..60 ms (odd trials: during connect, setup, an event, or between
 * events) or 0..20 ms after the service first holds its pins (even
 * trials), and then
 * requires, within 3 s: the service's VmLck back at its baseline, no
 * session and no region left (QUERY with F_ALL_SESSIONS), and the service
 * still running.  A trial that caught the client with memory pinned is
 * counted; at least half must, or the test proves nothing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)
#define KILLS_PER_SERVICE 30

static struct it_svc svc;

static void stop(void)
{
	it_suite_stop(&svc);
}

TestSuite(kill, .fini = stop, .timeout = 150);

/* The doomed client: never returns. */
static void client_main(unsigned seed, uint64_t granule)
{
	struct dmasvc_region_desc d = { .size = 32 * MiB, .iova = 1ull << 30, .granule = granule };
	struct dmasvc_client *c;
	struct dmasvc_queue *q;
	uint64_t ng = d.size / granule;
	int fd = it_memfd(d.size, true), mem, region;

	if (fd < 0 || dmasvc_connect(svc.sock, NULL, &c))
		_exit(1);
	mem = dmasvc_memory_add(c, fd, d.size, 0);
	d.mem_id = (uint32_t)mem;
	region = mem < 0 ? -1 : dmasvc_region_add(c, &d);
	if (region < 0 || dmasvc_queue_open(c, 64, &q))
		_exit(1);
	for (uint64_t i = 0;; i++) {
		uint64_t g = (uint64_t)rand_r(&seed) % ng, n = 1 + (uint64_t)rand_r(&seed) % 64;
		struct dmasvc_completion cqe[16];

		if (g + n > ng)
			n = ng - g;
		switch (rand_r(&seed) % 4) {
		case 0:
			dmasvc_populate(c, (uint32_t)region, g * granule, n * granule);
			break;
		case 1:
			dmasvc_discard(c, (uint32_t)region, g * granule, n * granule);
			break;
		default:
			/* async, left in flight now and then */
			for (uint64_t k = 0; k < n; k++)
				if (dmasvc_submit_populate(q, (uint32_t)region, (g + k) * granule, granule, i))
					break;
			dmasvc_reap(q, cqe, 16, rand_r(&seed) % 2 ? 0 : 5);
			break;
		}
	}
}

static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

static void run_trials(unsigned seed0, uint64_t granule)
{
	unsigned seed = seed0;
	int64_t base;
	int pinned_at_kill = 0;

	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	base = it_vmlck(svc.pid);
	for (int t = 0; t < KILLS_PER_SERVICE; t++) {
		long delay_us = rand_r(&seed) % 60000;
		unsigned child_seed = (unsigned)rand_r(&seed);
		pid_t pid = fork();
		int64_t v;
		int n;

		cr_assert_geq(pid, 0);
		if (pid == 0) {
			/* A failed assert in the parent must not leave it looping. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			client_main(child_seed, granule);
		}
		if (t % 2 == 0) {
			/* Even trials: wait until it holds pins, then a short random delay. */
			for (int i = 0; i < 3000 && it_vmlck(svc.pid) <= base; i++)
				sleep_us(1000);
			delay_us %= 20000;
		}
		/* Odd trials: a random point anywhere, setup included. */
		sleep_us(delay_us);
		if (it_vmlck(svc.pid) > base)
			pinned_at_kill++;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);

		v = it_wait_vmlck(svc.pid, base, 3000);
		cr_assert_eq(v, base, "trial %d (kill after %ld us): VmLck %ld, baseline %ld", t, delay_us,
			     (long)v, (long)base);
		for (int i = 0; i < 300 && (n = it_count_sessions(svc.sock)) != 0; i++)
			sleep_us(10000);
		cr_assert_eq(n, 0, "trial %d: sessions left: %d", t, n);
		cr_assert_eq(it_count_all_regions(svc.sock), 0, "trial %d: regions left", t);
		cr_assert(it_svc_alive(&svc));
	}
	cr_log_info("granule %lu: %d of %d kills caught the client with memory pinned",
		    (unsigned long)granule, pinned_at_kill, KILLS_PER_SERVICE);
	cr_assert_geq(pinned_at_kill, KILLS_PER_SERVICE / 2,
		      "only %d of %d kills caught the client with memory pinned", pinned_at_kill,
		      KILLS_PER_SERVICE);
}

Test(kill, random_kills_2m_a) { run_trials(1, 2 * MiB); }
Test(kill, random_kills_2m_b) { run_trials(2, 2 * MiB); }
Test(kill, random_kills_64k)  { run_trials(3, 64 * 1024); }
Test(kill, random_kills_4k)   { run_trials(4, 4096); }
