/* SPDX-License-Identifier: MIT */
/*
 * bench_workloads.h - the two workloads, written once and compiled once per
 * implementation so that each implementation's hot path is inlined into
 * them (no call through a pointer per operation).
 *
 * Include after defining, for one implementation:
 *   struct impl                       per-run state (both processes)
 *   BENCH_IMPL_VAR, BENCH_IMPL_NAME   the struct bench_impl to define, its name
 *   impl_setup(x)          parent, before fork: create the rings, map them,
 *                          set up the parent's side; 0 or -errno
 *   impl_attach_child(x)   child: map the rings again at another address, drop
 *                          the inherited mapping, set up the child's side
 *   impl_teardown(x)       parent, after the child exited
 *   impl_fwd_post / impl_fwd_drain / impl_back_post / impl_back_drain
 *                          burst calls returning a count (0 = full/empty)
 *   impl_fwd_wake / impl_back_wake     after a post in sleep mode: signal the
 *                                      consumer if it needs it
 *   impl_fwd_sleep / impl_back_sleep   consumer found nothing: sleep until
 *                                      signalled (may return spuriously)
 */
#include <stdio.h>
#include <stdlib.h>

#include <dmasvc/ring_layout.h>

#include "bench.h"

#define MAX_BURST 64

#define STOP UINT64_MAX /* user_data of the event that ends a run */

struct tp_arg {
	struct impl *x;
	struct bench_sync *sync;
	unsigned burst;
};

/* Throughput consumer (child): drain until STOP, check order, stamp windows. */
static int tp_child(void *p)
{
	struct tp_arg *a = p;
	struct dmasvc_sqe buf[MAX_BURST];
	struct bench_spinner sp;
	uint64_t got = 0;

	bench_spinner_init(&sp);
	a->sync->err = impl_attach_child(a->x);
	if (a->sync->err)
		return 1;
	bench_sync_child_ready_wait_go(a->sync);
	for (;;) {
		unsigned n = impl_fwd_drain(a->x, buf, a->burst);

		if (n == 0) {
			bench_spin(&sp);
			continue;
		}
		bool stop = buf[n - 1].user_data == STOP;

		n -= stop; /* STOP is the last event of a run, not counted */
		if (n && buf[n - 1].user_data != got + n - 1) {
			a->sync->err = -EBADMSG;
			return 1;
		}
		if ((got >> BENCH_WINDOW_SHIFT) != ((got + n) >> BENCH_WINDOW_SHIFT) &&
		    a->sync->nwin < BENCH_MAX_WINDOWS)
			a->sync->win[a->sync->nwin++] = bench_now_ns();
		got += n;
		if (stop)
			break;
	}
	a->sync->t_end = bench_now_ns();
	a->sync->count = got;
	return 0;
}

/* bench_impl.throughput (bench.h): the parent is the producer. */
static int throughput(unsigned burst, uint64_t ms, double *whole, double *window)
{
	struct dmasvc_sqe buf[MAX_BURST] = { 0 };
	struct impl x;
	struct tp_arg a = { .x = &x, .burst = burst };
	uint64_t sent = 0, t0, t_stop;
	struct bench_spinner sp;
	pid_t child;
	int ret;

	if (burst == 0 || burst > MAX_BURST)
		return -EINVAL;
	bench_spinner_init(&sp);
	a.sync = bench_sync_new();
	if (!a.sync)
		return -ENOMEM;
	ret = impl_setup(&x);
	if (ret < 0)
		goto out_sync;
	child = bench_spawn(tp_child, &a);
	if (child < 0) {
		ret = (int)child;
		goto out_teardown;
	}
	bench_sync_parent_wait_ready_go(a.sync);
	t0 = bench_now_ns();
	t_stop = t0 + ms * 1000000;
	for (;;) {
		unsigned got;

		for (unsigned i = 0; i < burst; i++)
			buf[i].user_data = sent + i;
		got = impl_fwd_post(&x, buf, burst);
		if (got == 0)
			bench_spin(&sp);
		sent += got;
		/* the clock read is amortised: once per 256 events */
		if ((sent & ~255ull) != ((sent - got) & ~255ull) && bench_now_ns() > t_stop)
			break;
	}
	buf[0].user_data = STOP;
	while (impl_fwd_post(&x, buf, 1) == 0)
		bench_spin(&sp);
	ret = bench_reap(child);
	if (ret == 0 && a.sync->err)
		ret = a.sync->err;
	if (ret == 0 && a.sync->count != sent)
		ret = -EBADMSG;
	if (ret == 0) {
		*whole = (double)sent * 1e9 / (double)(a.sync->t_end - t0);
		*window = bench_window_rate(a.sync);
		if (*window == 0) /* fewer than 3 windows: use the whole run */
			*window = *whole;
	}
out_teardown:
	impl_teardown(&x);
out_sync:
	bench_sync_free(a.sync);
	return ret;
}

struct pp_arg {
	struct impl *x;
	struct bench_sync *sync;
	bool sleep;
};

/* Ping-pong echo (child): each SQE comes back as a CQE with its user_data. */
static int pp_child(void *p)
{
	struct pp_arg *a = p;
	struct dmasvc_sqe sqe;
	struct dmasvc_cqe cqe = { 0 };
	struct bench_spinner sp;

	bench_spinner_init(&sp);
	a->sync->err = impl_attach_child(a->x);
	if (a->sync->err)
		return 1;
	bench_sync_child_ready_wait_go(a->sync);
	for (;;) {
		while (impl_fwd_drain(a->x, &sqe, 1) == 0) {
			if (a->sleep)
				impl_fwd_sleep(a->x);
			else
				bench_spin(&sp);
		}
		if (sqe.user_data == STOP)
			break;
		cqe.user_data = sqe.user_data;
		while (impl_back_post(a->x, &cqe, 1) == 0)
			bench_spin(&sp);
		if (a->sleep)
			impl_back_wake(a->x);
	}
	return 0;
}

/* bench_impl.pingpong (bench.h): the parent sends and times each round trip. */
static int pingpong(bool sleep, unsigned iters, uint64_t ms, struct bench_lat *lat)
{
	unsigned warm = iters / 100 + 1, total = warm + iters, done = 0;
	struct impl x;
	struct pp_arg a = { .x = &x, .sleep = sleep };
	struct dmasvc_sqe sqe = { 0 };
	struct dmasvc_cqe cqe;
	uint64_t *v, t0, t_stop;
	struct bench_spinner sp;
	pid_t child;
	int ret;

	bench_spinner_init(&sp);
	v = calloc(iters, sizeof(*v));
	a.sync = bench_sync_new();
	if (!v || !a.sync) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = impl_setup(&x);
	if (ret < 0)
		goto out_free;
	child = bench_spawn(pp_child, &a);
	if (child < 0) {
		ret = (int)child;
		goto out_teardown;
	}
	bench_sync_parent_wait_ready_go(a.sync);
	t_stop = bench_now_ns() + ms * 1000000;
	for (unsigned i = 0; i < total; i++) {
		t0 = bench_now_ns();
		if (t0 > t_stop)
			break;
		sqe.user_data = i;
		while (impl_fwd_post(&x, &sqe, 1) == 0)
			bench_spin(&sp);
		if (sleep)
			impl_fwd_wake(&x);
		while (impl_back_drain(&x, &cqe, 1) == 0) {
			if (sleep)
				impl_back_sleep(&x);
			else
				bench_spin(&sp);
		}
		if (cqe.user_data != i)
			ret = -EBADMSG;
		if (i >= warm)
			v[done++] = bench_now_ns() - t0;
	}
	sqe.user_data = STOP;
	while (impl_fwd_post(&x, &sqe, 1) == 0)
		bench_spin(&sp);
	if (sleep)
		impl_fwd_wake(&x);
	if (bench_reap(child) < 0 && ret == 0)
		ret = a.sync->err ? a.sync->err : -ECHILD;
	if (ret == 0 && done == 0)
		ret = -ETIME; /* not one measured round trip inside the time limit */
	if (ret == 0)
		bench_percentiles(v, done, lat);
out_teardown:
	impl_teardown(&x);
out_free:
	if (a.sync)
		bench_sync_free(a.sync);
	free(v);
	return ret;
}

const struct bench_impl BENCH_IMPL_VAR = {
	.name = BENCH_IMPL_NAME,
	.throughput = throughput,
	.pingpong = pingpong,
};
