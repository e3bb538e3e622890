/* SPDX-License-Identifier: MIT */
/*
 * test_plan_runs.c - the planner with a run cap (gran_plan_set_run_max)
 * over the software model opened with be_config.cut_areas: a populate maps
 * each run of unmapped granules as areas of at most the cap, a discard cuts
 * the areas it starts or ends inside, a failed populate unmaps exactly what
 * it mapped (also across windows), and the model's areas, pins (the
 * kernel's VmPin or VmLck) and the region's bits agree after each step.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "dmasvc/plan.h"
#include "gtest_util.h"
#include "gran_priv.h" /* test access: gran_region_test */
#include "plan_priv.h" /* test access: window */

#define K4 4096ull
#define MiB (1ull << 20)
#define RA_IOVA 0x100000ull

static struct gt_mem mem;
static struct gt_soft sm;
static struct gran_region *ra; /* 256 x 4 KiB */
static long long pin0;         /* the kernel's pinned bytes before the test */

static void setup(void)
{
	struct gran_region_desc d = { .size = MiB, .iova = RA_IOVA, .granule = K4,
				      .prot = BE_PROT_READ | BE_PROT_WRITE };
	char msg[256];

	gt_mem_create(&mem, 2 * MiB);
	d.mem_size = mem.size;
	d.mem_vaddr = mem.va;
	d.mem_fd = mem.fd;
	pin0 = gt_pinned_bytes();
	gt_soft_open_cut(&sm, NULL, 0, true);
	cr_assert(be_soft_ops.unmap_cuts && be_soft_ops.unmap_cuts(sm.space),
		  "the model opened with cut_areas cuts");
	cr_assert_eq(gran_region_register(&d, NULL, &ra, msg, sizeof(msg)), 0, "%s", msg);
}

static void teardown(void)
{
	cr_assert_eq(gran_region_unmap_all(ra, &be_soft_ops, sm.space), 0);
	cr_assert_eq(gt_areas(sm.space), 0, "leak: areas left");
	cr_assert_eq(gt_pinned(sm.space), 0, "leak: pins left");
	cr_assert_eq(gt_pinned_bytes(), pin0, "leak: the kernel still counts pins");
	gran_region_unregister(ra);
	gt_soft_close(&sm);
	gt_mem_destroy(&mem);
}

TestSuite(runs, .init = setup, .fini = teardown);

static struct gran_event ev(uint32_t op, uint64_t first, uint64_t count, uint64_t ud)
{
	return (struct gran_event){ ra, first, count, op, ud };
}

#define POP(f, c, ud) ev(GRAN_OP_POPULATE, f, c, ud)
#define DIS(f, c, ud) ev(GRAN_OP_DISCARD, f, c, ud)

/* Execute @n events with run cap @run_max, @window (0: default), @runner
 * (NULL: serial) on the model; completions into @comp. */
static struct gran_exec_stats run(const struct gran_event *e, size_t n,
				  struct gran_completion *comp, uint64_t run_max,
				  size_t window, const struct gran_job_runner *runner)
{
	return gt_plan_run(e, n, comp, &be_soft_ops, sm.space, runner, window, run_max);
}

/* The model holds exactly the area [@first, @first + @count) granules. */
static void expect_area(uint64_t first, uint64_t count)
{
	uint64_t a, l;

	cr_assert_eq(soft_iommu_lookup(sm.space, RA_IOVA + first * K4, &a, &l), 0,
		     "granule %llu should be mapped", (unsigned long long)first);
	cr_assert_eq(a, RA_IOVA + first * K4, "area at granule %llu starts at %#llx",
		     (unsigned long long)first, (unsigned long long)a);
	cr_assert_eq(l, count * K4, "area at granule %llu is %llu bytes",
		     (unsigned long long)first, (unsigned long long)l);
}

/* Bits, the model's areas and the kernel's pin count agree: every set
 * granule is inside an area, every clear one is not, and the kernel
 * counts exactly the set granules as pinned. */
static void check_agree(void)
{
	uint64_t g, a, l, n = 0;

	for (g = 0; g < gran_region_nr_granules(ra); g++) {
		int ret = soft_iommu_lookup(sm.space, RA_IOVA + g * K4, &a, &l);

		n += gran_region_test(ra, g);
		cr_assert_eq(ret, gran_region_test(ra, g) ? 0 : -ENOENT,
			     "granule %llu: bit %d, model %d", (unsigned long long)g,
			     gran_region_test(ra, g), ret);
	}
	cr_assert_eq(gt_pinned(sm.space), n * K4);
	cr_assert_eq(gt_pinned_bytes() - pin0, (long long)(n * K4),
		     "the kernel counts %lld pinned bytes for %llu granules",
		     gt_pinned_bytes() - pin0, (unsigned long long)n);
}

Test(runs, populate_maps_a_run_as_areas_of_the_cap)
{
	struct gran_event e = POP(10, 40, 1);
	struct gran_completion c;
	struct gran_exec_stats st;

	st = run(&e, 1, &c, 16 * K4, 0, NULL);
	cr_assert_eq(c.res, 0);
	cr_assert_eq(st.map_calls, 3, "40 granules at 16 per area: 3 maps, not 40");
	expect_area(10, 16);
	expect_area(26, 16);
	expect_area(42, 8);
	cr_assert_eq(gt_areas(sm.space), 3);
	check_agree();
}

Test(runs, populate_skips_what_is_mapped_and_maps_each_run)
{
	struct gran_event pre[2] = { POP(20, 2, 1), POP(40, 1, 2) };
	struct gran_event e = POP(10, 40, 3);
	struct gran_completion c[2];
	struct gran_exec_stats st;

	run(pre, 2, c, 0, 0, NULL); /* per granule: 3 areas */
	cr_assert_eq(c[0].res, 0);
	cr_assert_eq(c[1].res, 0);
	st = run(&e, 1, c, 64 * K4, 0, NULL);
	cr_assert_eq(c[0].res, 0);
	cr_assert_eq(st.map_calls, 3, "one per run: [10,20) [22,40) [41,50)");
	expect_area(10, 10);
	expect_area(20, 1);
	expect_area(22, 18);
	expect_area(40, 1);
	expect_area(41, 9);
	check_agree();
}

Test(runs, discard_cuts_the_area_it_is_inside)
{
	struct gran_event e[2] = { POP(0, 32, 1), DIS(8, 4, 2) };
	struct gran_completion c[2];
	struct gran_exec_stats st;
	uint64_t a, l;

	run(e, 1, c, MiB, 0, NULL);
	expect_area(0, 32);
	st = run(e + 1, 1, c + 1, MiB, 0, NULL);
	cr_assert_eq(c[1].res, 0);
	cr_assert_eq(st.unmap_calls, 1);
	cr_assert_eq(st.unmap_failures, 0);
	expect_area(0, 8);
	expect_area(12, 20);
	cr_assert_eq(soft_iommu_lookup(sm.space, RA_IOVA + 9 * K4, &a, &l), -ENOENT);
	cr_assert_eq(gran_region_populated(ra), 28);
	check_agree();
}

Test(runs, discard_over_whole_and_cut_areas_is_one_call)
{
	/* Areas [0,16) [16,32) [32,48) [48,64); discard [5,60). */
	struct gran_event e[2] = { POP(0, 64, 1), DIS(5, 55, 2) };
	struct gran_completion c[2];
	struct gran_exec_stats st;

	run(e, 1, c, 16 * K4, 0, NULL);
	cr_assert_eq(gt_areas(sm.space), 4);
	st = run(e + 1, 1, c + 1, 16 * K4, 0, NULL);
	cr_assert_eq(c[1].res, 0);
	cr_assert_eq(st.unmap_calls, 1);
	expect_area(0, 5);
	expect_area(60, 4);
	cr_assert_eq(gt_areas(sm.space), 2);
	check_agree();
}

Test(runs, page_by_page_conversions_in_one_burst)
{
	/* A guest_memfd storm in miniature: populate a run, then convert
	 * every other page back and forth in one burst. */
	struct gran_event e[64];
	struct gran_completion c[64];
	size_t i, n = 0;

	e[n++] = POP(0, 64, 1);
	for (i = 0; i < 64; i += 2)
		e[n++] = DIS(i, 1, 100 + i);
	for (i = 0; i < 64; i += 4)
		e[n++] = POP(i, 1, 200 + i);
	run(e, n, c, MiB, 0, NULL);
	for (i = 0; i < n; i++)
		cr_assert_eq(c[i].res, 0, "event %zu: %d", i, c[i].res);
	for (i = 0; i < 64; i++)
		cr_assert_eq(gran_region_test(ra, i), i % 2 || i % 4 == 0,
			     "granule %zu", i);
	check_agree();
}

Test(runs, pool_runner_maps_runs_in_parallel)
{
	struct gran_job_runner pool = { gt_pool_run, NULL };
	struct gran_event e[2] = { POP(0, 200, 1), DIS(3, 190, 2) };
	struct gran_completion c[2];
	struct gran_exec_stats st;

	st = run(e, 1, c, 8 * K4, 0, &pool);
	cr_assert_eq(c[0].res, 0);
	cr_assert_eq(st.map_calls, 25);
	check_agree();
	run(e + 1, 1, c + 1, 8 * K4, 0, &pool);
	cr_assert_eq(c[1].res, 0);
	expect_area(0, 3);
	expect_area(193, 7);
	check_agree();
}

/* A failed map of a run: the event maps nothing in the end. */
static void failed_run_undone(size_t window)
{
	struct soft_iommu_faults f = { .map_fail_nth = 6 };
	struct gran_event pre = POP(30, 2, 1);
	struct gran_event e = POP(0, 100, 2);
	struct gran_completion c;
	struct gran_exec_stats st;

	run(&pre, 1, &c, 0, 0, NULL);
	/* [0,30) [32,100) at 8 per area: 4 + 9 jobs; the sixth fails. */
	soft_iommu_set_faults(sm.ctx, &f);
	st = run(&e, 1, &c, 8 * K4, window, NULL);
	soft_iommu_set_faults(sm.ctx, NULL);
	cr_assert_eq(c.res, -EIO);
	cr_assert_eq(st.map_failures, 1);
	cr_assert(st.undo_calls >= 1);
	cr_assert_eq(st.unmap_failures, 0);
	cr_assert_eq(gran_region_populated(ra), 2, "only what was there before");
	expect_area(30, 1); /* mapped per granule before */
	expect_area(31, 1);
	cr_assert_eq(gt_areas(sm.space), 2);
	check_agree();
}

Test(runs, failed_populate_undoes_its_runs)
{
	failed_run_undone(0);
}

Test(runs, failed_populate_undoes_runs_of_earlier_windows)
{
	failed_run_undone(2); /* the failure is in the third window */
}

Test(runs, page_by_page_populates_of_a_run_are_one_map)
{
	struct gran_event e[40];
	struct gran_completion c[40];
	struct gran_exec_stats st;
	size_t i;

	for (i = 0; i < 40; i++)
		e[i] = POP(100 + i, 1, i);
	st = run(e, 40, c, 16 * K4, 0, NULL);
	for (i = 0; i < 40; i++)
		cr_assert_eq(c[i].res, 0, "event %zu: %d", i, c[i].res);
	cr_assert_eq(st.map_calls, 3, "40 one-page notes of a run at 16 per area: 3 maps (%llu)",
		     (unsigned long long)st.map_calls);
	expect_area(100, 16);
	expect_area(116, 16);
	expect_area(132, 8);
	check_agree();
}

Test(runs, a_run_stops_where_a_note_is_not_contiguous_or_mapped)
{
	struct gran_event pre = POP(12, 1, 100);
	struct gran_event e[4] = { POP(8, 2, 1), POP(10, 2, 2), POP(13, 3, 3), POP(17, 2, 4) };
	struct gran_completion c[4];
	struct gran_exec_stats st;

	run(&pre, 1, c, 0, 0, NULL);
	st = run(e, 4, c, MiB, 0, NULL);
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(c[i].res, 0);
	/* [8,12) one run over two notes; 12 was mapped; [13,16) alone: 17
	 * does not follow 16. */
	cr_assert_eq(st.map_calls, 3);
	expect_area(8, 4);
	expect_area(12, 1);
	expect_area(13, 3);
	expect_area(17, 2);
	check_agree();
}

Test(runs, a_bad_page_fails_only_its_note)
{
	struct soft_iommu_faults f = { .map_fail_start = RA_IOVA + 7 * K4,
				       .map_fail_last = RA_IOVA + 8 * K4 - 1,
				       .map_range_errno = EFAULT };
	struct gran_event e[16];
	struct gran_completion c[16];
	struct gran_exec_stats st;
	size_t i;

	for (i = 0; i < 16; i++)
		e[i] = POP(i, 1, i);
	soft_iommu_set_faults(sm.ctx, &f);
	st = run(e, 16, c, MiB, 0, NULL);
	soft_iommu_set_faults(sm.ctx, NULL);
	for (i = 0; i < 16; i++)
		cr_assert_eq(c[i].res, i == 7 ? -EFAULT : 0, "event %zu: %d", i, c[i].res);
	cr_assert_eq(st.map_calls, 1 + 16, "the shared map, then each note's page alone");
	cr_assert_eq(gran_region_populated(ra), 15);
	cr_assert_eq(st.unmap_failures, 0);
	check_agree();
}

Test(runs, a_failed_note_is_cut_out_of_the_area_it_shares)
{
	/* A = [0,40): jobs [0,16) [16,32) and [32,40) merged with B = [40,48).
	 * [16,32) fails: A fails and its part of the shared area is cut out;
	 * B keeps [40,48). */
	struct soft_iommu_faults f = { .map_fail_start = RA_IOVA + 20 * K4,
				       .map_fail_last = RA_IOVA + 21 * K4 - 1,
				       .map_range_errno = EFAULT };
	struct gran_event e[2] = { POP(0, 40, 1), POP(40, 8, 2) };
	struct gran_completion c[2];
	struct gran_exec_stats st;

	soft_iommu_set_faults(sm.ctx, &f);
	st = run(e, 2, c, 16 * K4, 0, NULL);
	soft_iommu_set_faults(sm.ctx, NULL);
	cr_assert_eq(c[0].res, -EFAULT);
	cr_assert_eq(c[1].res, 0);
	cr_assert_eq(st.unmap_failures, 0);
	cr_assert_eq(gran_region_populated(ra), 8);
	expect_area(40, 8);
	cr_assert_eq(gt_areas(sm.space), 1);
	check_agree();
}

Test(runs, shared_runs_across_windows_and_threads)
{
	struct gran_job_runner pool = { gt_pool_run, NULL };
	struct soft_iommu_faults f = { .map_fail_start = RA_IOVA + 50 * K4,
				       .map_fail_last = RA_IOVA + 51 * K4 - 1,
				       .map_range_errno = EFAULT };
	struct gran_event e[100];
	struct gran_completion c[100];
	size_t i;

	for (i = 0; i < 100; i++)
		e[i] = POP(i * 2, 2, i);
	soft_iommu_set_faults(sm.ctx, &f);
	run(e, 100, c, 6 * K4, 2, &pool);
	soft_iommu_set_faults(sm.ctx, NULL);
	for (i = 0; i < 100; i++)
		cr_assert_eq(c[i].res, i == 25 ? -EFAULT : 0, "event %zu: %d", i, c[i].res);
	cr_assert_eq(gran_region_populated(ra), 198);
	check_agree();
}
