/* SPDX-License-Identifier: MIT */
/*
 * bench_ours.c - the dmasvc ring in ring-bench's workloads: one memfd with
 * the SQ (fwd) and CQ (back), checked peer indices, need-wakeup flags and
 * the doorbell/completion eventfds, exactly as the service and client use
 * them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <dmasvc/ring.h>

#include "bench.h"

struct impl {
	struct ring_params params;
	struct ring_fds fds;
	struct ring_mapping m;
	struct ring_sq_producer sqp; /* parent */
	struct ring_cq_consumer cqc; /* parent */
	struct ring_sq_consumer sqc; /* child */
	struct ring_cq_producer cqp; /* child */
};

/* An honest peer never breaks the protocol: if it happens the numbers are void. */
static void die_proto(const char *what)
{
	fprintf(stderr, "ring-bench: %s: ring protocol error\n", what);
	exit(2);
}

/* impl_* contracts: bench_workloads.h. */
static int impl_setup(struct impl *x)
{
	int ret;

	x->params = (struct ring_params){ BENCH_SLOTS, BENCH_SLOTS, 0 };
	ret = ring_fds_create(&x->fds, &x->params);
	if (ret < 0)
		return ret;
	ret = ring_map(&x->m, x->fds.memfd, &x->params);
	if (ret < 0)
		goto err_close;
	ret = ring_sq_producer_init(&x->sqp, &x->m);
	if (ret == 0)
		ret = ring_cq_consumer_init(&x->cqc, &x->m);
	if (ret < 0)
		goto err_unmap;
	return 0;

err_unmap:
	ring_unmap(&x->m);
err_close:
	ring_fds_close(&x->fds);
	return ret;
}

static int impl_attach_child(struct impl *x)
{
	void *old = x->m.base, *base = bench_map_elsewhere(x->fds.memfd, x->m.size);
	int ret;

	if (!base)
		return -ENOMEM;
	munmap(old, x->m.size);
	ret = ring_attach(&x->m, base, x->m.size, &x->params);
	if (ret < 0)
		return ret;
	ret = ring_sq_consumer_init(&x->sqc, &x->m);
	return ret < 0 ? ret : ring_cq_producer_init(&x->cqp, &x->m);
}

static void impl_teardown(struct impl *x)
{
	ring_unmap(&x->m);
	ring_fds_close(&x->fds);
}

static inline unsigned impl_fwd_post(struct impl *x, const struct dmasvc_sqe *e, unsigned n)
{
	int r = ring_sq_post(&x->sqp, e, n);

	if (r < 0)
		die_proto("sq post");
	return (unsigned)r;
}

static inline unsigned impl_fwd_drain(struct impl *x, struct dmasvc_sqe *e, unsigned n)
{
	int r = ring_sq_drain(&x->sqc, e, n);

	if (r < 0)
		die_proto("sq drain");
	return (unsigned)r;
}

static inline unsigned impl_back_post(struct impl *x, const struct dmasvc_cqe *e, unsigned n)
{
	int r = ring_cq_post(&x->cqp, e, n);

	if (r < 0)
		die_proto("cq post");
	return (unsigned)r;
}

static inline unsigned impl_back_drain(struct impl *x, struct dmasvc_cqe *e, unsigned n)
{
	int r = ring_cq_drain(&x->cqc, e, n);

	if (r < 0)
		die_proto("cq drain");
	return (unsigned)r;
}

static inline void impl_fwd_wake(struct impl *x)
{
	if (ring_sq_post_should_wake(&x->sqp))
		ring_eventfd_signal(x->fds.doorbell);
}

static inline void impl_back_wake(struct impl *x)
{
	if (ring_cq_post_should_wake(&x->cqp))
		ring_eventfd_signal(x->fds.completion);
}

static void impl_fwd_sleep(struct impl *x)
{
	if (ring_sq_drain_wait_begin(&x->sqc) == 1)
		ring_eventfd_wait(x->fds.doorbell, -1);
	ring_sq_drain_wait_end(&x->sqc);
}

static void impl_back_sleep(struct impl *x)
{
	if (ring_cq_drain_wait_begin(&x->cqc) == 1)
		ring_eventfd_wait(x->fds.completion, -1);
	ring_cq_drain_wait_end(&x->cqc);
}

#define BENCH_IMPL_VAR bench_ours
#define BENCH_IMPL_NAME "ours"
#include "bench_workloads.h"
