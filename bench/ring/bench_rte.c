/* SPDX-License-Identifier: MIT */
/*
 * bench_rte.c - DPDK rte_ring in ring-bench's workloads, as the yardstick:
 * one SP/SC ring of 32-byte elements fwd and one of 16-byte elements back,
 * each in its own memfd set up with rte_ring_init() (no EAL), the inline
 * _elem burst calls, and an eventfd per direction that the producer always
 * signals in sleep mode (rte_ring has no need-wakeup flag).
 */
#include <sys/mman.h>
#include <unistd.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <dmasvc/ring.h> /* eventfd helpers, entry formats */

#include "bench.h"

struct rte_dir {
	int memfd;
	int efd;
	size_t size;
	struct rte_ring *r;
};

struct impl {
	struct rte_dir fwd, back;
};

/* One direction: memfd of rte_ring_get_memsize_elem() bytes, rte_ring_init() on it, an eventfd. */
static int dir_setup(struct rte_dir *d, const char *name, unsigned esize)
{
	ssize_t size = rte_ring_get_memsize_elem(esize, BENCH_SLOTS);
	void *mem;
	int ret;

	*d = (struct rte_dir){ .memfd = -1, .efd = -1 };
	if (size < 0)
		return (int)size;
	d->size = (size_t)size;
	d->memfd = memfd_create(name, MFD_CLOEXEC);
	if (d->memfd < 0 || ftruncate(d->memfd, size) < 0) {
		ret = -errno;
		goto err_close;
	}
	mem = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
	if (mem == MAP_FAILED) {
		ret = -errno;
		goto err_close;
	}
	d->r = mem;
	ret = rte_ring_init(d->r, name, BENCH_SLOTS, RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (ret < 0)
		goto err_unmap;
	ret = ring_eventfd_open(true);
	if (ret < 0)
		goto err_unmap;
	d->efd = ret;
	return 0;

err_unmap:
	munmap(mem, d->size);
err_close:
	if (d->memfd >= 0)
		close(d->memfd);
	return ret;
}

/* Undo dir_setup(). */
static void dir_teardown(struct rte_dir *d)
{
	munmap(d->r, d->size);
	close(d->memfd);
	close(d->efd);
}

/* In the child: map the ring again elsewhere and drop the inherited mapping. */
static int dir_remap(struct rte_dir *d)
{
	void *base = bench_map_elsewhere(d->memfd, d->size);

	if (!base)
		return -ENOMEM;
	munmap(d->r, d->size);
	d->r = base;
	return 0;
}

/* impl_* contracts: bench_workloads.h. */
static int impl_setup(struct impl *x)
{
	int ret = dir_setup(&x->fwd, "rte-fwd", sizeof(struct dmasvc_sqe));

	if (ret < 0)
		return ret;
	ret = dir_setup(&x->back, "rte-back", sizeof(struct dmasvc_cqe));
	if (ret < 0)
		dir_teardown(&x->fwd);
	return ret;
}

static int impl_attach_child(struct impl *x)
{
	int ret = dir_remap(&x->fwd);

	return ret < 0 ? ret : dir_remap(&x->back);
}

static void impl_teardown(struct impl *x)
{
	dir_teardown(&x->fwd);
	dir_teardown(&x->back);
}

static inline unsigned impl_fwd_post(struct impl *x, const struct dmasvc_sqe *e, unsigned n)
{
	return rte_ring_sp_enqueue_burst_elem(x->fwd.r, e, sizeof(*e), n, NULL);
}

static inline unsigned impl_fwd_drain(struct impl *x, struct dmasvc_sqe *e, unsigned n)
{
	return rte_ring_sc_dequeue_burst_elem(x->fwd.r, e, sizeof(*e), n, NULL);
}

static inline unsigned impl_back_post(struct impl *x, const struct dmasvc_cqe *e, unsigned n)
{
	return rte_ring_sp_enqueue_burst_elem(x->back.r, e, sizeof(*e), n, NULL);
}

static inline unsigned impl_back_drain(struct impl *x, struct dmasvc_cqe *e, unsigned n)
{
	return rte_ring_sc_dequeue_burst_elem(x->back.r, e, sizeof(*e), n, NULL);
}

static inline void impl_fwd_wake(struct impl *x)
{
	ring_eventfd_signal(x->fwd.efd);
}

static inline void impl_back_wake(struct impl *x)
{
	ring_eventfd_signal(x->back.efd);
}

static void impl_fwd_sleep(struct impl *x)
{
	ring_eventfd_wait(x->fwd.efd, -1);
}

static void impl_back_sleep(struct impl *x)
{
	ring_eventfd_wait(x->back.efd, -1);
}

#define BENCH_IMPL_VAR bench_rte
#define BENCH_IMPL_NAME "rte_ring"
#include "bench_workloads.h"
