/* SPDX-License-Identifier: MIT */
/*
 * test_memory.c - the planner and executor's heap stays bounded whatever
 * the events ask for: a populate of 16 M granules whose first map fails,
 * and successful populates of 64 Ki and 1 Mi granules, each cost one
 * window of jobs (plus bitmap leaves), not one job per granule.
 *
 * The binary is linked with --wrap for malloc, calloc, realloc and free,
 * so every allocation made by granule/, the soft model and this file is
 * counted: live bytes (malloc_usable_size) and their peak since the last
 * reset.  Vocabulary: "peak" is the largest live total above the value at
 * the reset.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "dmasvc/plan.h"
#include "gran_priv.h"
#include "gtest_util.h"

#define K4 4096ull
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* ---- the counting allocator (test-only state) ---- */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t sz);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t sz);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

static _Atomic long long live, peak;
static _Atomic long long leaf_allocs; /* allocations of a bitmap leaf's size */

static void count_add(void *p)
{
	long long now, old;

	if (!p)
		return;
	now = atomic_fetch_add(&live, (long long)malloc_usable_size(p)) +
	      (long long)malloc_usable_size(p);
	old = atomic_load(&peak);
	while (now > old && !atomic_compare_exchange_weak(&peak, &old, now))
		;
}

static void count_sub(void *p)
{
	if (p)
		atomic_fetch_sub(&live, (long long)malloc_usable_size(p));
}

void *__wrap_malloc(size_t n)
{
	void *p = __real_malloc(n);

	count_add(p);
	return p;
}

void *__wrap_calloc(size_t n, size_t sz)
{
	void *p = __real_calloc(n, sz);

	if (n * sz == sizeof(struct gran_leaf))
		atomic_fetch_add(&leaf_allocs, 1);

	count_add(p);
	return p;
}

void *__wrap_realloc(void *p, size_t n)
{
	void *q;

	count_sub(p);
	q = __real_realloc(p, n);
	if (q)
		count_add(q);
	else if (p && n)
		count_add(p); /* failed: p is still ours */
	return q;
}

void __wrap_free(void *p)
{
	count_sub(p);
	__real_free(p);
}

/* Start a measurement; returns the live bytes now (the base). */
static long long count_reset(void)
{
	long long base = atomic_load(&live);

	atomic_store(&peak, base);
	return base;
}

/* Run one event with @ops/@runner; returns the completion's res. */
static int run_one(const struct gran_event *e, const struct be_ops *ops,
		   struct be_space *space, const struct gran_job_runner *runner,
		   struct gran_exec_stats *st)
{
	const struct gran_completion *c;
	struct gran_plan *p;
	size_t nc;
	int res;

	cr_assert_eq(gran_plan_build(e, 1, &p), 0);
	cr_assert_eq(gran_plan_execute(p, ops, space, runner), 0);
	c = gran_plan_completions(p, &nc);
	cr_assert_eq(nc, 1);
	res = c[0].res;
	gran_plan_stats(p, st);
	gran_plan_free(p);
	return res;
}

Test(memory, huge_populate_whose_first_map_fails_stays_small)
{
	struct soft_iommu_config cfg = { .faults = { .map_fail_nth = 1,
						     .map_fail_errno = EIO } };
	struct gran_exec_stats st;
	struct gran_region *r;
	struct gran_event e;
	struct gt_mem mem;
	struct gt_soft sm;
	long long base;
	char msg[256];
	int res;

	gt_mem_create(&mem, 64 * GiB); /* sparse: nothing is touched */
	gt_soft_open(&sm, &cfg, 0);
	struct gran_region_desc d = { .size = 64 * GiB, .iova = 64 * GiB,
				      .granule = K4, .mem_size = mem.size,
				      .mem_vaddr = mem.va, .mem_fd = mem.fd,
				      .prot = BE_PROT_READ | BE_PROT_WRITE };
	cr_assert_eq(gran_region_register(&d, NULL, &r, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(gran_region_nr_granules(r), 16ull << 20);

	e = (struct gran_event){ r, 0, 16ull << 20, GRAN_OP_POPULATE, 7 };
	base = count_reset();
	res = run_one(&e, &be_soft_ops, sm.space, NULL, &st);
	cr_log_info("16 Mi granule populate, first map failing: peak heap %lld KiB",
		    (atomic_load(&peak) - base) >> 10);
	cr_assert_eq(res, -EIO, "the event fails with the map error");
	cr_assert_lt(atomic_load(&peak) - base, 16ll << 20,
		     "peak heap %lld bytes: must stay < 16 MiB", atomic_load(&peak) - base);
	cr_assert_not_null(r->bm.spare, "one emptied leaf is kept as the spare");
	cr_assert_eq(atomic_load(&live) - base, (long long)malloc_usable_size(r->bm.spare),
		     "everything else given back (leaves trimmed)");
	cr_assert_eq(st.map_calls, 1, "the rest of the event is skipped");
	cr_assert_eq(st.map_failures, 1);
	cr_assert_eq(st.undo_calls, 0, "nothing was mapped: nothing to undo");
	cr_assert_eq(gran_region_populated(r), 0);
	cr_assert_eq(gt_areas(sm.space), 0);
	cr_assert_eq(gt_pinned(sm.space), 0);

	gran_region_unregister(r);
	gt_soft_close(&sm);
	gt_mem_destroy(&mem);
}

/* ---- a backend that maps nothing, for memory measurements of big successes ---- */
struct null_space {
	uint64_t maps, unmaps, mapped;
};

static int null_map(struct be_space *space, uint64_t iova, uint64_t length,
		    const struct be_map_src *src, unsigned int prot)
{
	struct null_space *ns = (struct null_space *)space;

	(void)iova;
	(void)src;
	(void)prot;
	ns->maps++;
	ns->mapped += length;
	return 0;
}

static int null_unmap(struct be_space *space, uint64_t iova, uint64_t length,
		      uint64_t *unmapped)
{
	struct null_space *ns = (struct null_space *)space;

	(void)iova;
	ns->unmaps++;
	ns->mapped -= length;
	*unmapped = length;
	return 0;
}

/* A runner that records the largest window and maps serially. */
static size_t max_window;

static int recording_run(void *ctx, const struct be_ops *ops,
			 struct be_space *space, struct gran_map_job *jobs,
			 size_t n)
{
	(void)ctx;
	if (n > max_window)
		max_window = n;
	return gran_serial_runner.run(gran_serial_runner.ctx, ops, space, jobs, n);
}

Test(memory, big_populates_cost_one_window)
{
	const struct be_ops ops = { .map = null_map, .unmap = null_unmap };
	const struct gran_job_runner runner = { recording_run, NULL };
	struct null_space ns = { 0 };
	struct be_space *space = (struct be_space *)&ns;
	struct gran_exec_stats st;
	struct gran_region *r;
	struct gran_event e;
	long long base, peak_64k, peak_1m;
	char msg[256];
	void *va;

	/* Address space only: the null backend never touches the memory. */
	va = mmap(NULL, 4 * GiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert(va != MAP_FAILED);
	struct gran_region_desc d = { .size = 4 * GiB, .iova = 4 * GiB,
				      .granule = K4, .mem_size = 4 * GiB,
				      .mem_vaddr = va, .mem_fd = -1,
				      .prot = BE_PROT_READ };
	cr_assert_eq(gran_region_register(&d, NULL, &r, msg, sizeof(msg)), 0, "%s", msg);

	/* 256 MiB at 4 KiB: 64 Ki granules, 3.5 MiB as one job each. */
	e = (struct gran_event){ r, 0, 1ull << 16, GRAN_OP_POPULATE, 1 };
	base = count_reset();
	cr_assert_eq(run_one(&e, &ops, space, &runner, &st), 0);
	peak_64k = atomic_load(&peak) - base;
	cr_assert_eq(ns.maps, 1ull << 16);
	cr_assert_eq(st.map_calls, 1ull << 16);
	cr_assert_eq(gran_region_populated(r), 1ull << 16);
	cr_assert_leq(max_window, GRAN_PLAN_WINDOW_JOBS);

	/* The whole 4 GiB: 1 Mi granules (56 MiB as one job each). */
	e = (struct gran_event){ r, 0, 1ull << 20, GRAN_OP_POPULATE, 2 };
	base = count_reset();
	cr_assert_eq(run_one(&e, &ops, space, &runner, &st), 0);
	peak_1m = atomic_load(&peak) - base;
	cr_assert_eq(ns.maps, 1ull << 20, "only the new granules were mapped");
	cr_assert_eq(gran_region_populated(r), 1ull << 20);
	cr_assert_eq(ns.mapped, 4 * GiB);
	cr_log_info("peak heap: %lld KiB for 64 Ki granules, %lld KiB for 1 Mi",
		    peak_64k >> 10, peak_1m >> 10);
	cr_assert_lt(peak_64k, 1536ll << 10, "peak %lld: one window, not 64 Ki jobs", peak_64k);
	/* Growing 16 times costs only bitmap leaves (4 KiB per 32 Ki granules). */
	cr_assert_lt(peak_1m, 1536ll << 10, "peak %lld: one window, not 1 Mi jobs", peak_1m);
	cr_assert_leq(max_window, GRAN_PLAN_WINDOW_JOBS);

	e = (struct gran_event){ r, 0, 1ull << 20, GRAN_OP_DISCARD, 3 };
	cr_assert_eq(run_one(&e, &ops, space, &runner, &st), 0);
	cr_assert_eq(ns.unmaps, 1, "one unmap call for the whole run");
	cr_assert_eq(ns.mapped, 0);
	cr_assert_eq(gran_region_populated(r), 0);
	gran_region_unregister(r);
	munmap(va, 4 * GiB);
}

/*
 * A region whose only populated page comes and goes (a confidential VM's
 * shared page; a synchronous conversion) empties its bitmap leaf every
 * round: the leaf is kept as the bitmap's spare and taken back, so the
 * rounds allocate no leaf after the first; the spare is all zero (the page
 * the next round does not populate reads as not populated) and it goes
 * with the region.
 */
Test(memory, an_emptied_leaf_is_kept_and_reused)
{
	const struct be_ops ops = { .map = null_map, .unmap = null_unmap };
	struct null_space ns = { 0 };
	struct be_space *space = (struct be_space *)&ns;
	struct gran_exec_stats st;
	struct gran_region *r;
	struct gran_event e;
	long long base, before;
	char msg[256];
	void *va;

	/* 256 MiB at 4 KiB: two leaves of 32 Ki granules. */
	va = mmap(NULL, 256 * MiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert(va != MAP_FAILED);
	before = atomic_load(&live);
	struct gran_region_desc d = { .size = 256 * MiB, .iova = 4 * GiB,
				      .granule = K4, .mem_size = 256 * MiB,
				      .mem_vaddr = va, .mem_fd = -1,
				      .prot = BE_PROT_READ };
	cr_assert_eq(gran_region_register(&d, NULL, &r, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(r->bm.nleaves, 2);

	base = count_reset();
	atomic_store(&leaf_allocs, 0);
	for (uint64_t i = 0; i < 1000; i++) {
		/* Alternate leaves and pages: the spare moves between slots. */
		uint64_t g = (i % 2) * GRAN_LEAF_BITS + i % 97;

		e = (struct gran_event){ r, g, 1, GRAN_OP_POPULATE, 2 * i };
		cr_assert_eq(run_one(&e, &ops, space, NULL, &st), 0);
		cr_assert_eq(gran_region_populated(r), 1);
		cr_assert_eq(gran_bm_next_set(&r->bm, 0, r->nr_granules), g,
			     "round %llu: only granule %llu is set", (unsigned long long)i,
			     (unsigned long long)g);
		cr_assert_eq(gran_bm_next_set(&r->bm, g + 1, r->nr_granules), r->nr_granules);
		e = (struct gran_event){ r, g, 1, GRAN_OP_DISCARD, 2 * i + 1 };
		cr_assert_eq(run_one(&e, &ops, space, NULL, &st), 0);
		cr_assert_null(r->bm.leaves[g >> GRAN_LEAF_SHIFT], "the emptied leaf left its slot");
		cr_assert_not_null(r->bm.spare);
	}
	cr_assert_eq(atomic_load(&leaf_allocs), 1, "%lld leaves allocated for 1000 rounds",
		     atomic_load(&leaf_allocs));
	cr_assert_eq(atomic_load(&live) - base, (long long)malloc_usable_size(r->bm.spare),
		     "only the spare stays");
	cr_assert_eq(ns.maps, 1000);
	cr_assert_eq(ns.unmaps, 1000);

	/* Both leaves at once: the spare serves one, the other is new. */
	atomic_store(&leaf_allocs, 0);
	e = (struct gran_event){ r, GRAN_LEAF_BITS - 1, 2, GRAN_OP_POPULATE, 5000 };
	cr_assert_eq(run_one(&e, &ops, space, NULL, &st), 0);
	cr_assert_eq(atomic_load(&leaf_allocs), 1);
	cr_assert_null(r->bm.spare);
	e = (struct gran_event){ r, 0, r->nr_granules, GRAN_OP_DISCARD, 5001 };
	cr_assert_eq(run_one(&e, &ops, space, NULL, &st), 0);
	cr_assert_not_null(r->bm.spare, "one emptied leaf kept, the other freed");
	cr_assert_eq(atomic_load(&live) - base, (long long)malloc_usable_size(r->bm.spare));
	gran_region_unregister(r);
	cr_assert_eq(atomic_load(&live), before, "the region's spare went with it");
	munmap(va, 256 * MiB);
}
