/* SPDX-License-Identifier: MIT */
/*
 * test_failnth.c - integrity under allocation failure (the fail-nth loop of
 * STYLE.md 13).  The binary is linked with --wrap for malloc, calloc and
 * realloc, so the Nth allocation made by granule/ or the soft model (or
 * this file) while armed returns NULL.  For N = 1, 2, ... a fresh world
 * runs the same register + burst sequence with the Nth allocation failing;
 * afterwards every region bit must match the model exactly, every event
 * must have completed with 0 or -ENOMEM, a failed event must have left no
 * trace, and the run is torn down (ASan's leak check covers the rest).  The
 * loop stops at the first N that the sequence never reaches: that run must
 * have succeeded completely.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dmasvc/plan.h"
#include "gtest_util.h"
#include "gran_priv.h" /* test access: gran_region_test */
#include "plan_priv.h" /* test access: window, stages */

#define K4 4096ull
#define K64 65536ull
#define MiB (1ull << 20)
/* Arbitrary cap on iterations; the sequence below allocates far fewer. */
#define MAX_N 400

/* ---- the failing allocator (test-only state) ---- */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t sz);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t sz);
void *__wrap_realloc(void *p, size_t n);

static struct {
	bool armed;
	unsigned long calls, fail_at;
} fa;

static bool should_fail(void)
{
	return fa.armed && ++fa.calls == fa.fail_at;
}

void *__wrap_malloc(size_t n)
{
	return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t sz)
{
	return should_fail() ? NULL : __real_calloc(n, sz);
}

void *__wrap_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : __real_realloc(p, n);
}

/* ---- one run ---- */
#define NREG 2
#define NEV 9

struct run {
	struct gt_mem mem;
	struct gt_soft sm;
	struct gran_region *r[NREG];
	bool ref[NREG][4096];
};

static const uint64_t gsz[NREG] = { K4, K64 };

/* Register the regions; returns 0 or the first error. */
static int run_register(struct run *w)
{
	int i, ret;

	for (i = 0; i < NREG; i++) {
		struct gran_region_desc d = {
			.mem_offset = (uint64_t)i * 8 * MiB, .size = 8 * MiB,
			.iova = 0x100000000ull + (uint64_t)i * 8 * MiB,
			.granule = gsz[i], .mem_size = w->mem.size,
			.mem_vaddr = w->mem.va, .mem_fd = w->mem.fd,
			.prot = BE_PROT_READ | BE_PROT_WRITE,
		};

		ret = gran_region_register(&d, NULL, &w->r[i], NULL, 0);
		if (ret)
			return ret;
	}
	return 0;
}

/* Execute one burst; fill @res.  Returns gran_plan_build()'s result. */
static int run_burst(struct run *w, const struct gran_event *ev, size_t n, int *res)
{
	const struct gran_completion *c;
	struct gran_plan *p;
	size_t nc, i;
	int ret;

	ret = gran_plan_build(ev, n, &p);
	if (ret)
		return ret;
	gran_plan_set_window(p, 7); /* several windows per stage */
	gran_plan_execute(p, &be_soft_ops, w->sm.space, NULL);
	c = gran_plan_completions(p, &nc);
	cr_assert_eq(nc, n);
	for (i = 0; i < n; i++)
		res[i] = c[i].res;
	gran_plan_free(p);
	return 0;
}

static void apply(struct run *w, const struct gran_event *ev, size_t n, const int *res)
{
	size_t i;
	uint64_t g;
	int ri;

	for (i = 0; i < n; i++) {
		cr_assert(res[i] == 0 || res[i] == -ENOMEM, "event %zu: %d", i, res[i]);
		if (res[i])
			continue; /* a failed event leaves no trace */
		ri = ev[i].region == w->r[0] ? 0 : 1;
		for (g = ev[i].first; g < ev[i].first + ev[i].count; g++)
			w->ref[ri][g] = ev[i].op == GRAN_OP_POPULATE;
	}
}

static void check(struct run *w)
{
	uint64_t g, a, l, n;
	int ri, ret;

	for (ri = 0; ri < NREG; ri++) {
		n = 0;
		for (g = 0; g < gran_region_nr_granules(w->r[ri]); g++) {
			uint64_t iova = gran_region_iova(w->r[ri]) + g * gsz[ri];

			ret = soft_iommu_lookup(w->sm.space, iova, &a, &l);
			cr_assert_eq(gran_region_test(w->r[ri], g), w->ref[ri][g],
				     "region %d granule %llu", ri, (unsigned long long)g);
			cr_assert_eq(ret == 0, w->ref[ri][g]);
			if (!ret)
				cr_assert(a == iova && l == gsz[ri]);
			n += w->ref[ri][g];
		}
		cr_assert_eq(gran_region_populated(w->r[ri]), n);
	}
}

/* Returns true when the armed allocation was reached. */
static bool one_run(unsigned long fail_at)
{
	struct run *w = calloc(1, sizeof(*w));
	struct gran_event b1[NEV], b2[NEV];
	int res[NEV], ret, i;
	bool reached;

	cr_assert(w);
	gt_mem_create(&w->mem, 16 * MiB);
	gt_soft_open(&w->sm, NULL, 0);
	fa = (typeof(fa)){ true, 0, fail_at };
	ret = run_register(w);
	fa.armed = false;
	if (ret) {
		cr_assert_eq(ret, -ENOMEM);
		goto out;
	}
	/* Burst 1: populates over leaf boundaries of both regions. */
	b1[0] = (struct gran_event){ w->r[0], 0, 40, GRAN_OP_POPULATE, 1 };
	b1[1] = (struct gran_event){ w->r[1], 10, 20, GRAN_OP_POPULATE, 2 };
	b1[2] = (struct gran_event){ w->r[0], 100, 1, GRAN_OP_POPULATE, 3 };
	b1[3] = (struct gran_event){ w->r[0], 20, 5, GRAN_OP_DISCARD, 4 };
	b1[4] = (struct gran_event){ w->r[1], 0, 128, GRAN_OP_DISCARD, 5 };
	b1[5] = (struct gran_event){ w->r[1], 5, 10, GRAN_OP_POPULATE, 6 };
	b1[6] = (struct gran_event){ w->r[0], 2000, 48, GRAN_OP_POPULATE, 7 };
	b1[7] = (struct gran_event){ w->r[0], 0, 2048, GRAN_OP_DISCARD, 8 };
	b1[8] = (struct gran_event){ w->r[0], 30, 3, GRAN_OP_POPULATE, 9 };
	fa = (typeof(fa)){ true, 0, fail_at };
	ret = run_burst(w, b1, NEV, res);
	fa.armed = false;
	if (ret) {
		cr_assert_eq(ret, -ENOMEM);
	} else {
		apply(w, b1, NEV, res);
		check(w);
	}
	/* Burst 2 (unarmed): the world still works after the failure. */
	for (i = 0; i < NEV; i++) {
		b2[i] = b1[i];
		b2[i].op = b1[i].op == GRAN_OP_POPULATE ? GRAN_OP_DISCARD : GRAN_OP_POPULATE;
	}
	cr_assert_eq(run_burst(w, b2, NEV, res), 0);
	for (i = 0; i < NEV; i++)
		cr_assert_eq(res[i], 0);
	apply(w, b2, NEV, res);
	check(w);
out:
	reached = fa.calls >= fail_at;
	for (i = 0; i < NREG; i++) {
		if (w->r[i]) {
			cr_assert_eq(gran_region_unmap_all(w->r[i], &be_soft_ops,
							   w->sm.space), 0);
			gran_region_unregister(w->r[i]);
		}
	}
	cr_assert_eq(gt_areas(w->sm.space), 0, "leak: areas");
	cr_assert_eq(gt_pinned(w->sm.space), 0, "leak: pins");
	gt_soft_close(&w->sm);
	gt_mem_destroy(&w->mem);
	free(w);
	return reached;
}

Test(failnth, allocation_failures_keep_integrity)
{
	unsigned long n;

	for (n = 1; n <= MAX_N; n++)
		if (!one_run(n))
			break;
	cr_assert(n > 5, "the sequence allocates (n=%lu)", n);
	cr_assert(n <= MAX_N, "allocation sites never exhausted");
	cr_log_info("fail-nth: %lu allocation sites swept", n - 1);
}
