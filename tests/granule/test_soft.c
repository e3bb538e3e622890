/* SPDX-License-Identifier: MIT */
/*
 * test_soft.c - the software IOMMU model's rules: translate, EEXIST,
 * iommufd's partial-overlap ENOENT with *unmapped, IOVA ranges, ENOSPC,
 * argument checks, real pinning (VmPin, or VmLck on the mlock path), pin
 * failure, fault injection, audit order, concurrent maps, O(log n) area
 * storage, and the io_uring pin's slots (more than one ring, areas above
 * 1 GiB, consecutive slots after scattered frees), and the cutting unmap
 * of be_config.cut_areas (parts re-pinned, pins drop by exactly what was
 * unmapped, refusals change nothing).  meson runs it once per
 * pin path (GT_SOFT_PIN, gtest_util.h).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gtest_util.h"

#define K4 4096ull

static struct gt_mem mem;
static struct gt_soft sm;

static void setup(void)
{
	gt_mem_create(&mem, 16 << 20);
	gt_soft_open(&sm, NULL, 0);
}

static void teardown(void)
{
	gt_soft_close(&sm);
	gt_mem_destroy(&mem);
}

/* map @len bytes of mem at @off to @iova */
static int map_at(uint64_t iova, uint64_t off, uint64_t len)
{
	struct be_map_src src = { mem.va + off, mem.fd, off };

	return be_soft_ops.map(sm.space, iova, len, &src,
			       BE_PROT_READ | BE_PROT_WRITE);
}

static void map_ok(uint64_t iova, uint64_t off, uint64_t len)
{
	cr_assert_eq(map_at(iova, off, len), 0, "map 0x%llx+0x%llx",
		     (unsigned long long)iova, (unsigned long long)len);
}

static int unmap_at(uint64_t iova, uint64_t len, uint64_t *unmapped)
{
	return be_soft_ops.unmap(sm.space, iova, len, unmapped);
}

static bool mapped(uint64_t iova)
{
	uint64_t a, l;

	return soft_iommu_lookup(sm.space, iova, &a, &l) == 0;
}

TestSuite(soft, .init = setup, .fini = teardown);

Test(soft, translate_reads_memfd_bytes)
{
	void *host;

	memset(mem.va + 3 * K4, 0xab, K4);
	memset(mem.va + 4 * K4, 0xcd, K4);
	map_ok(0x100000, 3 * K4, 2 * K4);
	cr_assert_eq(soft_iommu_translate(sm.space, 0x100000 + K4 + 16, 64, &host), 0);
	cr_assert_eq(host, mem.va + 4 * K4 + 16);
	cr_assert_eq(*(unsigned char *)host, 0xcd);
	/* A device write lands in the memfd. */
	*(unsigned char *)host = 0x11;
	cr_assert_eq(mem.va[4 * K4 + 16], 0x11);
	cr_assert_eq(soft_iommu_translate(sm.space, 0x100000 - 1, 2, &host), -ENOENT);
	cr_assert_eq(soft_iommu_translate(sm.space, 0x100000 + 2 * K4, 1, &host), -ENOENT);
	/* Not across two areas, even adjacent ones. */
	map_ok(0x100000 + 2 * K4, 5 * K4, K4);
	cr_assert_eq(soft_iommu_translate(sm.space, 0x100000 + 2 * K4 - 8, 16, &host), -ENOENT);
	cr_assert_eq(soft_iommu_translate(sm.space, 0x100000, 0, &host), -EINVAL);
}

Test(soft, overlapping_map_is_eexist)
{
	map_ok(0x200000, 0, 4 * K4);
	cr_assert_eq(map_at(0x200000, 8 * K4, 4 * K4), -EEXIST);
	cr_assert_eq(map_at(0x200000 - K4, 8 * K4, 2 * K4), -EEXIST);
	cr_assert_eq(map_at(0x200000 + 3 * K4, 8 * K4, 2 * K4), -EEXIST);
	cr_assert_eq(map_at(0x200000 - K4, 8 * K4, 6 * K4), -EEXIST);
	cr_assert_eq(map_at(0x200000 + K4, 8 * K4, K4), -EEXIST);
	cr_assert_eq(gt_areas(sm.space), 1);
	/* Touching is not overlapping. */
	map_ok(0x200000 - K4, 8 * K4, K4);
	map_ok(0x200000 + 4 * K4, 9 * K4, K4);
	cr_assert_eq(gt_areas(sm.space), 3);
}

Test(soft, unmap_partial_overlap_enoent_after_earlier_areas)
{
	uint64_t un = 99;

	map_ok(0x10000, 0, K4);          /* A */
	map_ok(0x11000, K4, 2 * K4);     /* B */
	map_ok(0x13000, 3 * K4, K4);     /* C */
	/* Cuts B: A is unmapped first, then -ENOENT. */
	cr_assert_eq(unmap_at(0x10000, 2 * K4, &un), -ENOENT);
	cr_assert_eq(un, K4);
	cr_assert(!mapped(0x10000));
	cr_assert(mapped(0x11000) && mapped(0x12000) && mapped(0x13000));
	/* Cut at the start: nothing unmapped. */
	cr_assert_eq(unmap_at(0x12000, 2 * K4, &un), -ENOENT);
	cr_assert_eq(un, 0);
	cr_assert(mapped(0x12000) && mapped(0x13000));
	/* Nothing there. */
	cr_assert_eq(unmap_at(0x40000, K4, &un), -ENOENT);
	cr_assert_eq(un, 0);
	/* Many whole areas with gaps around them: one call. */
	cr_assert_eq(unmap_at(0x0, 0x100000, &un), 0);
	cr_assert_eq(un, 3 * K4);
	cr_assert_eq(gt_areas(sm.space), 0);
	cr_assert_eq(gt_pinned(sm.space), 0);
}

Test(soft, argument_checks)
{
	uint64_t un;
	struct be_map_src src = { mem.va + 1, mem.fd, 1 };

	cr_assert_eq(map_at(0x1000, 0, 0), -EINVAL);
	cr_assert_eq(map_at(0x1001, 0, K4), -EINVAL);
	cr_assert_eq(map_at(0x1000, 0, 100), -EINVAL);
	cr_assert_eq(be_soft_ops.map(sm.space, 0x1000, K4, &src, 0), -EINVAL);
	cr_assert_eq(map_at(UINT64_MAX - K4 + 1, 0, 2 * K4), -EOVERFLOW);
	cr_assert_eq(unmap_at(0x1000, 0, &un), -EINVAL);
	cr_assert_eq(unmap_at(UINT64_MAX, 2, &un), -EOVERFLOW);
	cr_assert_eq(gt_areas(sm.space), 0);
}

Test(soft, iova_ranges)
{
	struct soft_iommu_config cfg = { .nr_ranges = 2 };
	struct gt_soft s2;
	struct be_limits lim;
	struct be_map_src src = { mem.va, mem.fd, 0 };

	cfg.ranges[0] = (struct be_iova_range){ 0x1000, 0xfffff };
	cfg.ranges[1] = (struct be_iova_range){ 0x200000, 0x2fffff };
	gt_soft_open(&s2, &cfg, 0);
	cr_assert_eq(be_soft_ops.limits(s2.space, &lim), 0);
	cr_assert_eq(lim.nr_ranges, 2);
	cr_assert_eq(lim.ranges[1].start, 0x200000);
	cr_assert_eq(lim.ranges[1].last, 0x2fffff);
	cr_assert_eq(lim.max_areas, UINT64_MAX);
	cr_assert_eq(be_soft_ops.map(s2.space, 0x1000, K4, &src, 1), 0);
	cr_assert_eq(be_soft_ops.map(s2.space, 0x2ff000, K4, &src, 1), 0);
	int r0 = be_soft_ops.map(s2.space, 0x0, K4, &src, 1);
	cr_assert_eq(r0, -EINVAL, "got %d", r0);
	cr_assert_eq(be_soft_ops.map(s2.space, 0xff000, 2 * K4, &src, 1), -EINVAL);
	cr_assert_eq(be_soft_ops.map(s2.space, 0x300000, K4, &src, 1), -EINVAL);
	cr_assert_eq(be_soft_ops.map(s2.space, 0xfff000, K4, &src, 1), -EINVAL);
	gt_soft_close(&s2);
}

Test(soft, area_limit_enospc)
{
	struct gt_soft s2;
	struct be_limits lim;
	struct be_map_src src = { mem.va, mem.fd, 0 };
	uint64_t un;

	gt_soft_open(&s2, NULL, 2);
	cr_assert_eq(be_soft_ops.limits(s2.space, &lim), 0);
	cr_assert_eq(lim.max_areas, 2);
	cr_assert_eq(be_soft_ops.map(s2.space, 0x1000, K4, &src, 1), 0);
	src.vaddr = mem.va + K4;
	cr_assert_eq(be_soft_ops.map(s2.space, 0x2000, K4, &src, 1), 0);
	src.vaddr = mem.va + 2 * K4;
	cr_assert_eq(be_soft_ops.map(s2.space, 0x3000, K4, &src, 1), -ENOSPC);
	cr_assert_eq(be_soft_ops.unmap(s2.space, 0x1000, K4, &un), 0);
	cr_assert_eq(be_soft_ops.map(s2.space, 0x3000, K4, &src, 1), 0);
	gt_soft_close(&s2);
}

Test(soft, pins_with_the_asked_mechanism)
{
	struct soft_iommu_pin_info pi;
	long long pin = gt_status_bytes("VmPin"), lck = gt_vmlck_bytes();
	bool uring = gt_pin_mode() == SOFT_PIN_IO_URING;

	soft_iommu_pin_info(sm.ctx, &pi);
	cr_assert_eq(pi.mode, gt_pin_mode(), "pin mode %d (%s)", pi.mode, pi.reason);
	cr_assert_eq(pi.rings, uring ? 4u : 0u, "rings are made at open (the service's fds stay put)");
	map_ok(0x100000, 0, 1 << 20);
	/* The kernel shows the pin where the mechanism puts it, and only there. */
	cr_assert_eq(gt_status_bytes("VmPin") - pin, uring ? 1 << 20 : 0);
	cr_assert_eq(gt_vmlck_bytes() - lck, uring ? 0 : 1 << 20);
	soft_iommu_pin_info(sm.ctx, &pi);
	cr_assert_eq(pi.rings, uring ? 4u : 0u);
	cr_assert_eq(pi.slots, uring ? 1u : 0u);
	cr_assert_eq(unmap_at(0x100000, 1 << 20, NULL), 0);
	/* The unpin is done when unmap returns (no deferred release). */
	cr_assert_eq(gt_status_bytes("VmPin"), pin);
	cr_assert_eq(gt_vmlck_bytes(), lck);
	soft_iommu_pin_info(sm.ctx, &pi);
	cr_assert_eq(pi.slots, 0);
}

Test(soft, forced_mechanism_wins_over_the_suite)
{
	struct soft_iommu_config c = { .pin = SOFT_PIN_MLOCK };
	struct soft_iommu_pin_info pi;
	struct gt_soft s2;

	gt_soft_open(&s2, &c, 0);
	soft_iommu_pin_info(s2.ctx, &pi);
	cr_assert_eq(pi.mode, SOFT_PIN_MLOCK);
	cr_assert_str_eq(pi.reason, "mlock was asked for");
	gt_soft_close(&s2);
	c.pin = SOFT_PIN_IO_URING;
	gt_soft_open(&s2, &c, 0);
	soft_iommu_pin_info(s2.ctx, &pi);
	cr_assert_eq(pi.mode, SOFT_PIN_IO_URING);
	cr_assert_str_eq(pi.reason, "");
	gt_soft_close(&s2);
}

Test(soft, pinned_bytes_follow_mapped_bytes)
{
	long long base = gt_pinned_bytes();
	uint64_t un;

	cr_assert(base >= 0);
	map_ok(0x100000, 0, 64 * K4);
	map_ok(0x200000, 100 * K4, 3 * K4);
	map_ok(0x300000, 1 << 20, 1 << 20);
	cr_assert_eq(gt_pinned_bytes() - base, (long long)(67 * K4 + (1 << 20)));
	cr_assert_eq(gt_pinned(sm.space), 67 * K4 + (1 << 20));
	cr_assert_eq(unmap_at(0x200000, 3 * K4, &un), 0);
	cr_assert_eq(gt_pinned_bytes() - base, (long long)(64 * K4 + (1 << 20)));
	cr_assert_eq(unmap_at(0, 1ull << 30, &un), 0);
	cr_assert_eq(un, 64 * K4 + (1 << 20));
	cr_assert_eq(gt_pinned_bytes(), base);
	/* Destroy releases what is left. */
	map_ok(0x100000, 0, 8 * K4);
	cr_assert_eq(gt_pinned_bytes() - base, (long long)(8 * K4));
	gt_soft_close(&sm);
	cr_assert_eq(gt_pinned_bytes(), base);
	gt_soft_open(&sm, NULL, 0);
}

/* Drop CAP_IPC_LOCK in this (forked) test process so RLIMIT_MEMLOCK bites. */
static void drop_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	cr_assert_eq(syscall(SYS_capget, &hdr, data), 0);
	data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	data[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
	cr_assert_eq(syscall(SYS_capset, &hdr, data), 0);
}

Test(soft, pin_failure_maps_nothing)
{
	struct rlimit rl = { 64 * K4, 64 * K4 };
	long long base;
	int ret;

	drop_ipc_lock();
	cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
	/* io_uring decides at ring creation: make the model's rings without CAP_IPC_LOCK. */
	gt_soft_close(&sm);
	gt_soft_open(&sm, NULL, 0);
	base = gt_pinned_bytes();
	ret = map_at(0x100000, 0, 1 << 20);
	cr_assert(ret == -ENOMEM || ret == -EPERM || ret == -EAGAIN,
		  "a pin beyond RLIMIT_MEMLOCK gave %d", ret);
	cr_assert(!mapped(0x100000));
	cr_assert_eq(gt_areas(sm.space), 0);
	cr_assert_eq(gt_pinned_bytes(), base);
	cr_assert_eq(gt_status_bytes("VmPin") + gt_vmlck_bytes(), base);
	/* The reservation is gone: the same range maps once it fits. */
	map_ok(0x100000, 0, 16 * K4);
}

Test(soft, fault_injection)
{
	struct soft_iommu_faults f = { .map_fail_nth = 3, .map_fail_errno = EFAULT,
				       .map_fail_start = 0x800000,
				       .map_fail_last = 0x800fff,
				       .map_range_errno = ENXIO,
				       .unmap_fail_nth = 2,
				       .unmap_fail_errno = EINTR };
	uint64_t un = 7;

	soft_iommu_set_faults(sm.ctx, &f);
	map_ok(0x1000, 0, K4);
	map_ok(0x2000, K4, K4);
	cr_assert_eq(map_at(0x3000, 2 * K4, K4), -EFAULT);
	cr_assert(!mapped(0x3000));
	map_ok(0x3000, 2 * K4, K4);      /* one-shot */
	cr_assert_eq(map_at(0x7ff000, 3 * K4, 2 * K4), -ENXIO);
	cr_assert_eq(map_at(0x800fff & ~0xfffull, 3 * K4, K4), -ENXIO);
	map_ok(0x801000, 3 * K4, K4);
	cr_assert_eq(gt_areas(sm.space), 4);
	cr_assert_eq(unmap_at(0x1000, K4, &un), 0);
	cr_assert_eq(unmap_at(0x2000, K4, &un), -EINTR);
	cr_assert_eq(un, 0);
	cr_assert(mapped(0x2000));
	cr_assert_eq(unmap_at(0x2000, K4, &un), 0);
	/* set_faults restarts the counters; NULL clears. */
	f.map_fail_nth = 1;
	f.map_fail_start = f.map_fail_last = 0;
	f.map_range_errno = 0;
	soft_iommu_set_faults(sm.ctx, &f);
	cr_assert_eq(map_at(0x5000, 4 * K4, K4), -EFAULT);
	soft_iommu_set_faults(sm.ctx, NULL);
	map_ok(0x5000, 4 * K4, K4);
	map_ok(0x800000, 5 * K4, K4);
	/* A range with no errno fails with EIO. */
	f = (struct soft_iommu_faults){ .map_fail_start = 0x900000,
					.map_fail_last = 0x900fff };
	soft_iommu_set_faults(sm.ctx, &f);
	cr_assert_eq(map_at(0x900000, 6 * K4, K4), -EIO);
	map_ok(0x901000, 6 * K4, K4);
	/* unmap_fail_count: consecutive unmap failures from the Nth call. */
	f = (struct soft_iommu_faults){ .unmap_fail_nth = 2, .unmap_fail_count = 2 };
	soft_iommu_set_faults(sm.ctx, &f);
	cr_assert_eq(unmap_at(0x5000, K4, &un), 0);
	cr_assert_eq(unmap_at(0x800000, K4, &un), -EIO);
	cr_assert_eq(unmap_at(0x800000, K4, &un), -EIO);
	cr_assert(mapped(0x800000));
	cr_assert_eq(unmap_at(0x800000, K4, &un), 0);
}

static int audit_cb_count(void *arg, uint64_t iova, uint64_t length)
{
	(void)iova;
	(void)length;
	(*(int *)arg)++;
	return 0;
}

/* Holds the map of one IOVA in flight between reserve and pin. */
struct park {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t iova;
	bool parked, go;
};

static void park_hook(void *arg, uint64_t iova, uint64_t length)
{
	struct park *p = arg;

	(void)length;
	if (iova != p->iova)
		return;
	pthread_mutex_lock(&p->lock);
	p->parked = true;
	pthread_cond_broadcast(&p->cond);
	while (!p->go)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

struct inflight {
	struct gt_soft *s;
	int ret;
};

static void *inflight_map(void *arg)
{
	struct inflight *m = arg;
	struct be_map_src src = { mem.va + 32 * K4, mem.fd, 32 * K4 };

	m->ret = be_soft_ops.map(m->s->space, 0x100000, 4 * K4, &src, 1);
	return NULL;
}

Test(soft, two_phase_map_in_flight)
{
	struct park pk = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			   0x100000, false, false };
	struct soft_iommu_config cfg = { .before_pin = park_hook,
					 .before_pin_arg = &pk };
	struct gt_soft s2;
	struct inflight m = { &s2, 1 };
	struct be_map_src src = { mem.va, mem.fd, 0 };
	int ar = 0;
	uint64_t un = 9, a, l;
	void *host;
	pthread_t th;

	gt_soft_open(&s2, &cfg, 0);
	cr_assert_eq(pthread_create(&th, NULL, inflight_map, &m), 0);
	pthread_mutex_lock(&pk.lock);
	while (!pk.parked)
		pthread_cond_wait(&pk.cond, &pk.lock);
	pthread_mutex_unlock(&pk.lock);

	/* Reserved, not published. */
	cr_assert_eq(be_soft_ops.unmap(s2.space, 0x100000, 4 * K4, &un), -EBUSY);
	cr_assert_eq(un, 0);
	cr_assert_eq(be_soft_ops.map(s2.space, 0x102000, 4 * K4, &src, 1), -EEXIST);
	cr_assert_eq(soft_iommu_lookup(s2.space, 0x100000, &a, &l), -ENOENT);
	cr_assert_eq(soft_iommu_translate(s2.space, 0x100000, 8, &host), -ENOENT);
	cr_assert_eq(be_soft_ops.audit(s2.space, 0, 1ull << 30, K4, audit_cb_count, &ar), 0);
	cr_assert_eq(ar, 0);
	cr_assert_eq(gt_areas(s2.space), 1);
	cr_assert_eq(gt_pinned(s2.space), 0);
	/* No lock is held while it pins: a disjoint map goes through. */
	cr_assert_eq(be_soft_ops.map(s2.space, 0x200000, K4, &src, 1), 0);

	pthread_mutex_lock(&pk.lock);
	pk.go = true;
	pthread_cond_broadcast(&pk.cond);
	pthread_mutex_unlock(&pk.lock);
	pthread_join(th, NULL);
	cr_assert_eq(m.ret, 0);
	cr_assert_eq(soft_iommu_lookup(s2.space, 0x101000, &a, &l), 0);
	cr_assert_eq(a, 0x100000);
	cr_assert_eq(l, 4 * K4);
	cr_assert_eq(gt_pinned(s2.space), 5 * K4);
	cr_assert_eq(be_soft_ops.unmap(s2.space, 0x100000, 4 * K4, &un), 0);
	gt_soft_close(&s2);
}

struct audit_rec {
	uint64_t iova[8], len[8];
	int n;
};

static int audit_cb(void *arg, uint64_t iova, uint64_t length)
{
	struct audit_rec *a = arg;

	cr_assert(a->n < 8);
	a->iova[a->n] = iova;
	a->len[a->n++] = length;
	return 0;
}

Test(soft, audit_lists_areas_in_order)
{
	struct audit_rec a = { .n = 0 };

	map_ok(0x30000, 0, K4);
	map_ok(0x10000, K4, 2 * K4);
	map_ok(0x20000, 3 * K4, K4);
	cr_assert_eq(be_soft_ops.audit(sm.space, 0x11000, 0x20000, K4, audit_cb, &a), 0);
	cr_assert_eq(a.n, 3);
	cr_assert_eq(a.iova[0], 0x10000);
	cr_assert_eq(a.len[0], 2 * K4);
	cr_assert_eq(a.iova[1], 0x20000);
	cr_assert_eq(a.iova[2], 0x30000);
}

struct thr_arg {
	uint64_t base;
	int n;
	int failures;
};

static void *map_thread(void *p)
{
	struct thr_arg *t = p;
	int i;

	for (i = 0; i < t->n; i++)
		if (map_at(t->base + (uint64_t)i * K4, ((uint64_t)i % 64) * K4, K4))
			t->failures++;
	return NULL;
}

Test(soft, concurrent_disjoint_maps)
{
	pthread_t th[4];
	struct thr_arg ta[4];
	int i;

	for (i = 0; i < 4; i++) {
		ta[i] = (struct thr_arg){ (uint64_t)(i + 1) << 32, 3000, 0 };
		cr_assert_eq(pthread_create(&th[i], NULL, map_thread, &ta[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(ta[i].failures, 0);
	}
	cr_assert_eq(gt_areas(sm.space), 12000);
}

/* Many areas over one host page (pins alias; not checked here): the area
 * store must stay ordered and logarithmic. */
Test(soft, many_areas_ordered)
{
	const uint64_t n = 200000;
	struct be_map_src src = { mem.va, mem.fd, 0 };
	uint64_t i, j, un, a, l;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Insert in a scrambled order (i * odd mod n is a permutation). */
	for (i = 0; i < n; i++) {
		j = (i * 7919) % n;
		cr_assert_eq(be_soft_ops.map(sm.space, 0x100000000ull + j * 2 * K4,
					     K4, &src, 1), 0);
	}
	cr_assert_eq(gt_areas(sm.space), n);
	for (i = 0; i < n; i += 1000) {
		cr_assert_eq(soft_iommu_lookup(sm.space, 0x100000000ull + i * 2 * K4 + 5,
					       &a, &l), 0);
		cr_assert_eq(a, 0x100000000ull + i * 2 * K4);
		cr_assert_eq(soft_iommu_lookup(sm.space, 0x100000000ull + i * 2 * K4 + K4,
					       &a, &l), -ENOENT);
	}
	/* Remove every other area one by one, then the rest in one call. */
	for (i = 0; i < n; i += 2)
		cr_assert_eq(unmap_at(0x100000000ull + i * 2 * K4, K4, &un), 0);
	cr_assert_eq(gt_areas(sm.space), n / 2);
	cr_assert_eq(unmap_at(0x100000000ull, n * 2 * K4, &un), 0);
	cr_assert_eq(un, n / 2 * K4);
	cr_assert_eq(gt_areas(sm.space), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_log_info("200k areas: %.2f s", (double)(t1.tv_sec - t0.tv_sec) +
				       (t1.tv_nsec - t0.tv_nsec) / 1e9);
}

/*
 * A test device reserving two windows (like VT-d's MSI window): limits()
 * cuts them out of the allowed range while it is attached, map() refuses
 * them, an attach over a mapped area fails with EADDRINUSE and changes
 * nothing, detach gives the windows back.
 */
Test(soft, test_device_reserves_iova)
{
	struct soft_iommu_config cfg = {
		.nr_ranges = 1, .ranges = { { 0, 0xffffffffull } },
		.nr_dev_resv = 2, .dev_resv = { { 0xfee00000, 0xfeefffff }, { 0x1000, 0x1fff } },
	};
	struct be_limits lim;
	uint32_t dev;

	gt_soft_close(&sm);
	gt_soft_open(&sm, &cfg, 0);
	cr_assert_eq(be_soft_ops.limits(sm.space, &lim), 0);
	cr_expect_eq(lim.nr_ranges, 1, "no device: the whole window");
	map_ok(0x1000, 0, K4);
	cr_expect_eq(soft_iommu_test_device_attach(sm.space, 0, &dev), -EADDRINUSE);
	cr_assert_eq(be_soft_ops.limits(sm.space, &lim), 0);
	cr_expect_eq(lim.nr_ranges, 1, "a refused attach reserves nothing");
	cr_assert_eq(unmap_at(0x1000, K4, &(uint64_t){ 0 }), 0);
	cr_assert_eq(soft_iommu_test_device_attach(sm.space, 0, &dev), 0);
	cr_assert_eq(be_soft_ops.limits(sm.space, &lim), 0);
	cr_assert_eq(lim.nr_ranges, 3);
	cr_expect_eq(lim.ranges[0].start, 0);
	cr_expect_eq(lim.ranges[0].last, 0xfff);
	cr_expect_eq(lim.ranges[1].start, 0x2000);
	cr_expect_eq(lim.ranges[1].last, 0xfedfffff);
	cr_expect_eq(lim.ranges[2].start, 0xfef00000);
	cr_expect_eq(lim.ranges[2].last, 0xffffffff);
	cr_expect_eq(map_at(0xfeeff000, 0, K4), -EINVAL, "inside the MSI window");
	cr_expect_eq(map_at(0xfedff000, 0, 2 * K4), -EINVAL, "straddling its start");
	map_ok(0xfedff000, 0, K4);
	soft_iommu_test_device_detach(sm.space, dev);
	cr_assert_eq(be_soft_ops.limits(sm.space, &lim), 0);
	cr_expect_eq(lim.nr_ranges, 1, "the last detach gives the windows back");
	map_ok(0xfee00000, K4, K4);
	cr_assert_eq(unmap_at(0, 0xffffffffull, &(uint64_t){ 0 }), 0);
}

/*
 * More areas than one io_uring buffer table holds (16384 slots): the pinner
 * makes a second ring and VmPin still counts every byte; all of it is
 * released by unmap.  (On the mlock path: the same, in VmLck.)
 */
Test(soft, more_areas_than_one_ring_holds)
{
	const uint64_t n = 16384 + 600;
	struct soft_iommu_config c = { .pin_rings = 1 };
	struct gt_mem big;
	struct gt_soft s2;
	struct soft_iommu_pin_info pi;
	long long base = gt_pinned_bytes();
	uint64_t un;

	gt_mem_create(&big, n * K4);
	gt_soft_open(&s2, &c, 0);
	for (uint64_t i = 0; i < n; i++) {
		struct be_map_src src = { big.va + i * K4, big.fd, i * K4 };
		int ret = be_soft_ops.map(s2.space, (1ull << 32) + i * 2 * K4, K4, &src,
					  BE_PROT_READ | BE_PROT_WRITE);

		cr_assert_eq(ret, 0, "map %llu: %d", (unsigned long long)i, ret);
	}
	cr_assert_eq(gt_pinned_bytes() - base, (long long)(n * K4));
	soft_iommu_pin_info(s2.ctx, &pi);
	if (gt_pin_mode() == SOFT_PIN_IO_URING) {
		cr_assert_eq(pi.slots, n);
		cr_assert_eq(pi.rings, 2u, "%llu areas in %u rings", (unsigned long long)n, pi.rings);
	}
	cr_assert_eq(be_soft_ops.unmap(s2.space, 0, 1ull << 40, &un), 0);
	cr_assert_eq(un, n * K4);
	cr_assert_eq(gt_pinned_bytes(), base);
	soft_iommu_pin_info(s2.ctx, &pi);
	cr_assert_eq(pi.slots, 0);
	/* Freed slots are used again: no new ring for the same number of areas. */
	for (uint64_t i = 0; i < n; i++) {
		struct be_map_src src = { big.va + i * K4, big.fd, i * K4 };

		cr_assert_eq(be_soft_ops.map(s2.space, i * K4, K4, &src, BE_PROT_READ), 0);
	}
	{
		struct soft_iommu_pin_info p2;

		soft_iommu_pin_info(s2.ctx, &p2);
		cr_assert_eq(p2.rings, pi.rings);
	}
	gt_soft_close(&s2); /* destroy unpins what is left */
	cr_assert_eq(gt_pinned_bytes(), base);
	gt_mem_destroy(&big);
}

/*
 * The io_uring slots (buffer table indices) that hold buffers starting at
 * the @n pages from @va, as the kernel shows them (/proc/self/fdinfo of
 * every io_uring fd of this process, each read once: "UserBufs" then one
 * "%5u: 0x%llx/%u" line per slot): page i's slot in @slot[i] and its ring's
 * fd in @fd[i]; -1 for a page no ring holds.
 */
static void kernel_slots_of_pages(const unsigned char *va, size_t n, long *slot, int *fd)
{
	uintptr_t lo = (uintptr_t)va, hi = lo + n * K4;
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;

	cr_assert_not_null(dir);
	for (size_t i = 0; i < n; i++)
		slot[i] = fd[i] = -1;
	while ((de = readdir(dir))) {
		char path[300], link[64], line[128];
		ssize_t len;
		FILE *f;
		bool bufs = false;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = 0;
		if (strcmp(link, "anon_inode:[io_uring]"))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%s", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned int k, blen;
			unsigned long long a;

			if (!strncmp(line, "UserBufs:", 9))
				bufs = true;
			else if (bufs && sscanf(line, " %u: 0x%llx/%u", &k, &a, &blen) == 3 &&
				 a >= lo && a < hi && (a - lo) % K4 == 0) {
				slot[(a - lo) / K4] = k;
				fd[(a - lo) / K4] = atoi(de->d_name);
			}
		}
		fclose(f);
	}
	closedir(dir);
}

/*
 * After 1024 one-page areas were unmapped in a scattered order (a storm of
 * conversions), 64 pages mapped one after the other sit in 64 consecutive
 * slots of one ring, in order, as the kernel shows them: their unmap is one
 * run, one buffer update (soft_pinner_unpin_list), as IOMMU_IOAS_UNMAP over
 * them is one call.  A stack of free slots gave them the scattered slots
 * back in the reverse order of their frees.  (io_uring path only: mlock has
 * no slots; the mlock run checks that the same maps and unmaps succeed.)
 */
Test(soft, slots_stay_consecutive_after_scattered_frees)
{
	struct soft_iommu_config c = { .pin_rings = 1 };
	const uint64_t n = 1024, base = 1ull << 32;
	struct gt_soft s2;
	long slots[64];
	int fds[64];
	uint64_t un;

	gt_soft_open(&s2, &c, 0);
	for (uint64_t i = 0; i < n; i++) {
		struct be_map_src src = { mem.va + i * K4, mem.fd, i * K4 };

		cr_assert_eq(be_soft_ops.map(s2.space, base + i * K4, K4, &src,
					     BE_PROT_READ | BE_PROT_WRITE), 0);
	}
	for (uint64_t i = 0; i < n; i++) { /* 389 is odd: i*389 mod 1024 visits each page once */
		uint64_t p = (i * 389) % n;

		cr_assert_eq(be_soft_ops.unmap(s2.space, base + p * K4, K4, &un), 0);
		cr_assert_eq(un, K4);
	}
	for (uint64_t i = 0; i < 64; i++) {
		struct be_map_src src = { mem.va + (n + i) * K4, mem.fd, (n + i) * K4 };

		cr_assert_eq(be_soft_ops.map(s2.space, base + i * K4, K4, &src,
					     BE_PROT_READ | BE_PROT_WRITE), 0);
	}
	if (gt_pin_mode() == SOFT_PIN_IO_URING)
		kernel_slots_of_pages(mem.va + n * K4, 64, slots, fds);
	for (uint64_t i = 0; gt_pin_mode() == SOFT_PIN_IO_URING && i < 64; i++) {
		cr_assert_geq(slots[i], 0, "page %llu is in no io_uring buffer table",
			      (unsigned long long)i);
		cr_assert_eq(fds[i], fds[0], "page %llu on another ring", (unsigned long long)i);
		cr_assert_eq(slots[i], slots[0] + (long)i, "page %llu in slot %ld, page 0 in slot %ld",
			     (unsigned long long)i, slots[i], slots[0]);
	}
	cr_assert_eq(be_soft_ops.unmap(s2.space, base, 64 * K4, &un), 0);
	cr_assert_eq(un, 64 * K4);
	cr_assert_eq(gt_areas(s2.space), 0);
	gt_soft_close(&s2);
}

/*
 * An area above 1 GiB (one io_uring buffer is at most 1 GiB: the area takes
 * two slots), and a pin whose second GiB fails (its tail is not mapped)
 * leaves nothing pinned: the first GiB's slot is cleared again.  Allocates
 * 1 GiB of memory (the pin faults it in).
 */
Test(soft, area_above_1g_and_its_failed_tail, .timeout = 120)
{
	const uint64_t g = 1ull << 30;
	struct gt_mem big;
	struct soft_iommu_pin_info pi;
	long long base = gt_pinned_bytes();
	struct be_map_src src;
	uint64_t un;
	int ret;

	gt_mem_create(&big, g + 2 * K4);
	cr_assert_eq(munmap(big.va + g + K4, K4), 0); /* the last page: a hole */
	src = (struct be_map_src){ big.va, big.fd, 0 };
	ret = be_soft_ops.map(sm.space, 0, g + 2 * K4, &src, BE_PROT_READ | BE_PROT_WRITE);
	cr_assert(ret == -EFAULT || ret == -ENOMEM, "a pin over a hole gave %d", ret);
	cr_assert(!mapped(0));
	cr_assert_eq(gt_pinned_bytes(), base, "nothing stays pinned after a failed pin");
	soft_iommu_pin_info(sm.ctx, &pi);
	cr_assert_eq(pi.slots, 0);
	cr_assert_eq(be_soft_ops.map(sm.space, 0, g + K4, &src, BE_PROT_READ | BE_PROT_WRITE), 0);
	cr_assert_eq(gt_pinned_bytes() - base, (long long)(g + K4));
	soft_iommu_pin_info(sm.ctx, &pi);
	cr_assert_eq(pi.slots, gt_pin_mode() == SOFT_PIN_IO_URING ? 2u : 0u);
	cr_assert_eq(unmap_at(0, g + K4, &un), 0);
	cr_assert_eq(un, g + K4);
	cr_assert_eq(gt_pinned_bytes(), base);
	big.size = g + K4; /* the last page is already gone */
	gt_mem_destroy(&big);
}

/*
 * Cutting unmap (be_config.cut_areas): iommufd's VFIO-compat unmap without
 * huge pages cuts the areas that straddle the range and unmaps what lies
 * inside; the model emulates it by re-pinning the parts that stay.  Each
 * test ends with an unmap of everything and checks that no pin is left.
 */

/* map @len bytes of mem at @off to @iova in @s */
static void cmap(struct gt_soft *s, uint64_t iova, uint64_t off, uint64_t len)
{
	struct be_map_src src = { mem.va + off, mem.fd, off };
	int ret = be_soft_ops.map(s->space, iova, len, &src, BE_PROT_READ | BE_PROT_WRITE);

	cr_assert_eq(ret, 0, "map 0x%llx+0x%llx: %d", (unsigned long long)iova,
		     (unsigned long long)len, ret);
}

/* Assert that the area holding @iova in @s is exactly [@a_iova, @a_iova + @a_len). */
static void area_is(struct gt_soft *s, uint64_t iova, uint64_t a_iova, uint64_t a_len)
{
	uint64_t a = 0, l = 0;
	int ret = soft_iommu_lookup(s->space, iova, &a, &l);

	cr_assert_eq(ret, 0, "lookup 0x%llx: %d", (unsigned long long)iova, ret);
	cr_assert(a == a_iova && l == a_len, "0x%llx is in [0x%llx +0x%llx), want [0x%llx +0x%llx)",
		  (unsigned long long)iova, (unsigned long long)a, (unsigned long long)l,
		  (unsigned long long)a_iova, (unsigned long long)a_len);
}

/* Assert that the device reaches mem at @off through @iova in @s. */
static void reaches(struct gt_soft *s, uint64_t iova, uint64_t off)
{
	void *host = NULL;

	cr_assert_eq(soft_iommu_translate(s->space, iova, 8, &host), 0,
		     "0x%llx not mapped", (unsigned long long)iova);
	cr_assert_eq(host, mem.va + off, "0x%llx reaches %p, want %p", (unsigned long long)iova,
		     host, (void *)(mem.va + off));
}

static bool cmapped(struct gt_soft *s, uint64_t iova)
{
	void *host;

	return soft_iommu_translate(s->space, iova, 1, &host) == 0;
}

/* io_uring slots in use by @s's pinner (0 on the mlock path). */
static uint64_t slots_of(struct gt_soft *s)
{
	struct soft_iommu_pin_info pi;

	soft_iommu_pin_info(s->ctx, &pi);
	return pi.slots;
}

/* Unmap everything of @s: no area, no pinned byte (model and kernel), no slot left. */
static void unmap_all_no_leak(struct gt_soft *s, long long kernel_base, uint64_t want)
{
	uint64_t un = 0;

	cr_assert_eq(be_soft_ops.unmap(s->space, 0, 1ull << 40, &un), 0);
	cr_assert_eq(un, want, "unmapped 0x%llx, want 0x%llx", (unsigned long long)un,
		     (unsigned long long)want);
	cr_assert_eq(gt_areas(s->space), 0);
	cr_assert_eq(gt_pinned(s->space), 0);
	cr_assert_eq(gt_pinned_bytes(), kernel_base, "pins leaked: %lld bytes",
		     gt_pinned_bytes() - kernel_base);
	cr_assert_eq(slots_of(s), 0);
}

Test(soft, cut_middle_of_one_area)
{
	const uint64_t base = 0x100000, off = 8 * K4;
	long long kbase = gt_pinned_bytes();
	struct soft_iommu_stats st;
	struct gt_soft c;
	uint64_t un = 99;
	bool uring = gt_pin_mode() == SOFT_PIN_IO_URING;

	gt_soft_open_cut(&c, NULL, 0, true);
	cr_assert(be_soft_ops.unmap_cuts && be_soft_ops.unmap_cuts(c.space));
	cmap(&c, base, off, 16 * K4);
	cr_assert_eq(gt_pinned_bytes() - kbase, (long long)(16 * K4));
	cr_assert_eq(slots_of(&c), uring ? 1u : 0u);

	cr_assert_eq(be_soft_ops.unmap(c.space, base + 5 * K4, 4 * K4, &un), 0);
	cr_assert_eq(un, 4 * K4);
	area_is(&c, base, base, 5 * K4);
	area_is(&c, base + 4 * K4, base, 5 * K4);
	area_is(&c, base + 9 * K4, base + 9 * K4, 7 * K4);
	area_is(&c, base + 15 * K4, base + 9 * K4, 7 * K4);
	for (uint64_t p = 5; p < 9; p++)
		cr_assert(!cmapped(&c, base + p * K4), "page %llu still mapped",
			  (unsigned long long)p);
	/* The parts that stay reach the same bytes as before the cut. */
	reaches(&c, base, off);
	reaches(&c, base + 4 * K4 + 100, off + 4 * K4 + 100);
	reaches(&c, base + 9 * K4, off + 9 * K4);
	reaches(&c, base + 15 * K4 + 8, off + 15 * K4 + 8);
	soft_iommu_get_stats(c.space, &st);
	cr_assert_eq(st.areas, 2);
	cr_assert_eq(st.pinned_bytes, 12 * K4);
	cr_assert_eq(st.cuts, 2);
	/* VmPin (io_uring; VmLck with mlock) drops by exactly the bytes unmapped. */
	cr_assert_eq(gt_pinned_bytes() - kbase, (long long)(12 * K4));
	cr_assert_eq(slots_of(&c), uring ? 2u : 0u, "each part has its own buffer");
	/* Audit sees the two parts. */
	{
		struct audit_rec ar = { .n = 0 };

		cr_assert_eq(be_soft_ops.audit(c.space, 0, 1ull << 30, K4, audit_cb, &ar), 0);
		cr_assert_eq(ar.n, 2);
		cr_assert(ar.iova[0] == base && ar.len[0] == 5 * K4);
		cr_assert(ar.iova[1] == base + 9 * K4 && ar.len[1] == 7 * K4);
	}
	/* The hole maps again; the parts are areas like any other. */
	cmap(&c, base + 5 * K4, 0, 4 * K4);
	cr_assert_eq(be_soft_ops.unmap(c.space, base + 5 * K4, 4 * K4, &un), 0);
	cr_assert_eq(un, 4 * K4);
	unmap_all_no_leak(&c, kbase, 12 * K4);
	gt_soft_close(&c);
}

Test(soft, cut_at_one_end_only)
{
	const uint64_t a = 0x100000, b = 0x200000;
	long long kbase = gt_pinned_bytes();
	struct gt_soft c;
	uint64_t un = 99;

	gt_soft_open_cut(&c, NULL, 0, true);
	cmap(&c, a, 0, 8 * K4);
	cmap(&c, b, 16 * K4, 8 * K4);
	/* The range starts inside A and runs past its end: A keeps its head. */
	cr_assert_eq(be_soft_ops.unmap(c.space, a + 5 * K4, 0x10000, &un), 0);
	cr_assert_eq(un, 3 * K4);
	area_is(&c, a, a, 5 * K4);
	cr_assert(!cmapped(&c, a + 5 * K4));
	reaches(&c, a + 4 * K4, 4 * K4);
	/* The range starts before B and ends inside it: B keeps its tail. */
	cr_assert_eq(be_soft_ops.unmap(c.space, b - 4 * K4, 6 * K4, &un), 0);
	cr_assert_eq(un, 2 * K4);
	area_is(&c, b + 2 * K4, b + 2 * K4, 6 * K4);
	cr_assert(!cmapped(&c, b + K4));
	reaches(&c, b + 2 * K4, 18 * K4);
	/* Exactly at an area's start, ending inside it: one cut, at the end. */
	cr_assert_eq(be_soft_ops.unmap(c.space, a, 2 * K4, &un), 0);
	cr_assert_eq(un, 2 * K4);
	area_is(&c, a + 2 * K4, a + 2 * K4, 3 * K4);
	reaches(&c, a + 2 * K4, 2 * K4);
	/* Starting inside, ending exactly at the area's end: one cut, at the start. */
	cr_assert_eq(be_soft_ops.unmap(c.space, b + 6 * K4, 2 * K4, &un), 0);
	cr_assert_eq(un, 2 * K4);
	area_is(&c, b + 2 * K4, b + 2 * K4, 4 * K4);
	cr_assert_eq(gt_areas(c.space), 2);
	cr_assert_eq(gt_pinned(c.space), 7 * K4);
	cr_assert_eq(gt_pinned_bytes() - kbase, (long long)(7 * K4));
	unmap_all_no_leak(&c, kbase, 7 * K4);
	gt_soft_close(&c);
}

Test(soft, cut_several_areas_and_both_ends)
{
	const uint64_t base = 0x400000;
	long long kbase = gt_pinned_bytes();
	struct audit_rec ar = { .n = 0 };
	struct gt_soft c;
	uint64_t un = 99;

	gt_soft_open_cut(&c, NULL, 0, true);
	cmap(&c, base, 0, 8 * K4);                /* P: loses its last 2 pages */
	cmap(&c, base + 8 * K4, 8 * K4, 4 * K4);  /* Q: whole, adjacent to P */
	cmap(&c, base + 16 * K4, 16 * K4, 4 * K4); /* R: whole, after a gap */
	cmap(&c, base + 20 * K4, 20 * K4, 8 * K4); /* S: loses its first 2 pages */
	cr_assert_eq(be_soft_ops.unmap(c.space, base + 6 * K4, 16 * K4, &un), 0);
	cr_assert_eq(un, 12 * K4);
	cr_assert_eq(be_soft_ops.audit(c.space, 0, 1ull << 30, K4, audit_cb, &ar), 0);
	cr_assert_eq(ar.n, 2);
	cr_assert(ar.iova[0] == base && ar.len[0] == 6 * K4);
	cr_assert(ar.iova[1] == base + 22 * K4 && ar.len[1] == 6 * K4);
	reaches(&c, base + 5 * K4, 5 * K4);
	reaches(&c, base + 22 * K4, 22 * K4);
	for (uint64_t p = 6; p < 22; p++)
		cr_assert(!cmapped(&c, base + p * K4), "page %llu still mapped",
			  (unsigned long long)p);
	cr_assert_eq(gt_pinned(c.space), 12 * K4);
	cr_assert_eq(gt_pinned_bytes() - kbase, (long long)(12 * K4));
	unmap_all_no_leak(&c, kbase, 12 * K4);
	gt_soft_close(&c);
}

Test(soft, cut_refusals_change_nothing)
{
	const uint64_t base = 0x100000;
	long long kbase = gt_pinned_bytes();
	struct soft_iommu_stats st;
	struct gt_soft c;
	uint64_t un = 99;

	gt_soft_open_cut(&c, NULL, 0, true);
	cmap(&c, base, 0, 16 * K4);
	/* Not 4 KiB-aligned: iova or length. */
	cr_assert_eq(be_soft_ops.unmap(c.space, base + 5 * K4 + 1, 4 * K4, &un), -EINVAL);
	cr_assert_eq(un, 0);
	un = 99;
	cr_assert_eq(be_soft_ops.unmap(c.space, base + 5 * K4, 4 * K4 + 512, &un), -EINVAL);
	cr_assert_eq(un, 0);
	/* Nothing mapped there: before, after, and in a gap between two areas. */
	cmap(&c, base + 32 * K4, 32 * K4, K4);
	un = 99;
	cr_assert_eq(be_soft_ops.unmap(c.space, 0, base, &un), -ENOENT);
	cr_assert_eq(un, 0);
	cr_assert_eq(be_soft_ops.unmap(c.space, base + 16 * K4, 16 * K4, &un), -ENOENT);
	cr_assert_eq(be_soft_ops.unmap(c.space, base + 33 * K4, 1ull << 30, &un), -ENOENT);
	cr_assert_eq(un, 0);
	soft_iommu_get_stats(c.space, &st);
	cr_assert_eq(st.areas, 2);
	cr_assert_eq(st.pinned_bytes, 17 * K4);
	cr_assert_eq(st.cuts, 0);
	area_is(&c, base, base, 16 * K4);
	cr_assert_eq(gt_pinned_bytes() - kbase, (long long)(17 * K4));
	/* The fault knobs apply as before: a failing call unmaps nothing. */
	soft_iommu_set_faults(c.ctx, &(struct soft_iommu_faults){ .unmap_fail_nth = 1,
								 .unmap_fail_errno = EINTR });
	cr_assert_eq(be_soft_ops.unmap(c.space, base + 5 * K4, 4 * K4, &un), -EINTR);
	cr_assert_eq(un, 0);
	area_is(&c, base, base, 16 * K4);
	unmap_all_no_leak(&c, kbase, 17 * K4);
	gt_soft_close(&c);
}

Test(soft, without_cut_areas_a_straddle_is_enoent)
{
	const uint64_t base = 0x100000;
	long long kbase = gt_pinned_bytes();
	struct gt_soft c;
	uint64_t un = 99;

	gt_soft_open_cut(&c, NULL, 0, false);
	cr_assert(!be_soft_ops.unmap_cuts(c.space));
	cmap(&c, base, 0, 16 * K4);
	cr_assert_eq(be_soft_ops.unmap(c.space, base + 5 * K4, 4 * K4, &un), -ENOENT);
	cr_assert_eq(un, 0);
	cr_assert_eq(be_soft_ops.unmap(c.space, base - 4 * K4, 6 * K4, &un), -ENOENT);
	cr_assert_eq(be_soft_ops.unmap(c.space, base + 14 * K4, 4 * K4, &un), -ENOENT);
	cr_assert_eq(un, 0);
	area_is(&c, base, base, 16 * K4);
	cr_assert_eq(gt_areas(c.space), 1);
	cr_assert_eq(gt_pinned(c.space), 16 * K4);
	cr_assert_eq(gt_pinned_bytes() - kbase, (long long)(16 * K4));
	unmap_all_no_leak(&c, kbase, 16 * K4);
	gt_soft_close(&c);
	/* The default suite's model (NULL be_config fields) does not cut either. */
	cr_assert(!be_soft_ops.unmap_cuts(sm.space));
}

Test(soft, cut_with_a_map_in_flight_is_ebusy)
{
	struct park pk = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			   0x100000, false, false };
	struct soft_iommu_config cfg = { .before_pin = park_hook, .before_pin_arg = &pk };
	long long kbase = gt_pinned_bytes();
	struct gt_soft c;
	struct inflight m = { &c, 1 };
	uint64_t un = 99;
	pthread_t th;

	gt_soft_open_cut(&c, &cfg, 0, true);
	cmap(&c, 0xf0000, 0, 16 * K4);  /* [0xf0000, 0x100000): straddles the range's start */
	cr_assert_eq(pthread_create(&th, NULL, inflight_map, &m), 0); /* [0x100000, +4 pages) */
	pthread_mutex_lock(&pk.lock);
	while (!pk.parked)
		pthread_cond_wait(&pk.cond, &pk.lock);
	pthread_mutex_unlock(&pk.lock);
	cr_assert_eq(be_soft_ops.unmap(c.space, 0xf8000, 0x10000, &un), -EBUSY);
	cr_assert_eq(un, 0);
	area_is(&c, 0xf0000, 0xf0000, 16 * K4);
	cr_assert_eq(gt_pinned_bytes() - kbase, (long long)(16 * K4));
	pthread_mutex_lock(&pk.lock);
	pk.go = true;
	pthread_cond_broadcast(&pk.cond);
	pthread_mutex_unlock(&pk.lock);
	pthread_join(th, NULL);
	cr_assert_eq(m.ret, 0);
	cr_assert_eq(be_soft_ops.unmap(c.space, 0xf8000, 0x10000, &un), 0);
	cr_assert_eq(un, 8 * K4 + 4 * K4);
	area_is(&c, 0xf0000, 0xf0000, 8 * K4);
	unmap_all_no_leak(&c, kbase, 8 * K4);
	gt_soft_close(&c);
}

/*
 * A cut's re-pin beyond RLIMIT_MEMLOCK (io_uring: the parts that stay are
 * pinned anew before the old pin goes) fails with nothing changed; with
 * mlock the parts keep the old lock and the same cut goes through.
 */
Test(soft, cut_whose_repin_fails_changes_nothing)
{
	struct rlimit rl = { 64 * K4, 64 * K4 };
	const uint64_t base = 0x100000;
	long long kbase;
	struct gt_soft c;
	uint64_t un = 99;
	int ret;

	drop_ipc_lock();
	cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
	gt_soft_open_cut(&c, NULL, 0, true); /* rings made without CAP_IPC_LOCK: they charge the limit */
	kbase = gt_pinned_bytes();
	cmap(&c, base, 0, 40 * K4);
	ret = be_soft_ops.unmap(c.space, base + 4 * K4, 4 * K4, &un);
	if (gt_pin_mode() == SOFT_PIN_IO_URING) {
		cr_assert(ret == -ENOMEM || ret == -EPERM || ret == -EAGAIN,
			  "a re-pin of 36 pages on top of 40 under a 64-page limit gave %d", ret);
		cr_assert_eq(un, 0);
		area_is(&c, base, base, 40 * K4);
		area_is(&c, base + 5 * K4, base, 40 * K4);
		cr_assert_eq(gt_areas(c.space), 1);
		cr_assert_eq(gt_pinned(c.space), 40 * K4);
		cr_assert_eq(gt_pinned_bytes() - kbase, (long long)(40 * K4));
		cr_assert_eq(slots_of(&c), 1);
		/* A cut whose part fits goes through: 4 pages stay (40 + 4 <= 64,
		 * with room for pin_failure_maps_nothing's 16 pages running in
		 * parallel: io_uring charges the user, not the process). */
		cr_assert_eq(be_soft_ops.unmap(c.space, base + 4 * K4, 36 * K4, &un), 0);
		cr_assert_eq(un, 36 * K4);
	} else {
		cr_assert_eq(ret, 0, "mlock re-pins nothing: %d", ret);
		cr_assert_eq(un, 4 * K4);
		cr_assert_eq(be_soft_ops.unmap(c.space, base + 4 * K4, 36 * K4, &un), 0);
		cr_assert_eq(un, 32 * K4);
	}
	area_is(&c, base, base, 4 * K4);
	cr_assert_eq(gt_pinned_bytes() - kbase, (long long)(4 * K4));
	unmap_all_no_leak(&c, kbase, 4 * K4);
	gt_soft_close(&c);
}
