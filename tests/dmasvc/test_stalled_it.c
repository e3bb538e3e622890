/* SPDX-License-Identifier: MIT */
/*
 * test_stalled_it.c - a service that is alive but not answering (SIGSTOP)
 * never blocks a client: every dmasvc_connect() returns an error within its
 * timeout, also after the service's listen backlog is full, and the service
 * serves again after SIGCONT.  (The QEMU shim retries connect with its big
 * lock held; a blocking connect() would hang the VM.)
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "it_util.h"

static struct it_svc svc;

static void stop(void)
{
	kill(svc.pid, SIGCONT);
	it_suite_stop(&svc);
}

TestSuite(stalled, .fini = stop, .timeout = 120);

Test(stalled, connect_never_blocks_past_its_timeout)
{
	struct dmasvc_connect_opts o = { .timeout_ms = 50 };
	struct dmasvc_client *c = NULL;
	int n_again = 0, n_timeout = 0;

	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	cr_assert_eq(kill(svc.pid, SIGSTOP), 0);

	/* More attempts than any listen backlog dmasvc uses (64), so the
	 * later ones meet a full backlog. */
	for (int i = 0; i < 200; i++) {
		int64_t t0 = (int64_t)it_now_ms();
		int err = dmasvc_connect(svc.sock, &o, &c);
		int64_t took = (int64_t)it_now_ms() - t0;

		cr_assert_lt(err, 0, "attempt %d connected to a stopped service", i);
		cr_assert_lt(took, 1000, "attempt %d blocked %lld ms (err %d)", i, (long long)took, err);
		if (err == -EAGAIN)
			n_again++;
		else if (err == -ETIMEDOUT)
			n_timeout++;
		else
			cr_assert_fail("attempt %d: unexpected error %d", i, err);
	}
	cr_expect_gt(n_again, 0, "the backlog filled up (%d timeouts, %d EAGAIN)", n_timeout, n_again);
	cr_expect_gt(n_timeout, 0, "some attempts reached the backlog and timed out");

	/* Alive again: it drains the dead connections (the backlog may still
	 * be full for a moment: retry like a client would) and serves. */
	cr_assert_eq(kill(svc.pid, SIGCONT), 0);
	o.timeout_ms = 5000;
	int err = -EAGAIN;
	for (int64_t end = (int64_t)it_now_ms() + 10000; err == -EAGAIN && (int64_t)it_now_ms() < end;) {
		err = dmasvc_connect(svc.sock, &o, &c);
		if (err == -EAGAIN)
			nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000000 }, NULL);
	}
	cr_assert_eq(err, 0, "connect after SIGCONT: %d", err);
	struct dmasvc_stat_service st;
	cr_expect_eq(dmasvc_query(c, DMASVC_QUERY_STATUS, 0, 0, &st, sizeof(st), 1), 1,
		     "the new session answers a query");
	dmasvc_disconnect(c);
}
