/* SPDX-License-Identifier: MIT */
/*
 * test_region.c - region registration (alignment, bounds, messages), the
 * byte -> granule validator, the mapping budget and its refusal message,
 * the up-front cost of huge regions (time and bytes), and the lazy bitmap
 * against a one-bool-per-bit reference.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmasvc/granule.h"
#include "gran_priv.h"
#include "gtest_util.h"

/* Under ASan, malloc statistics come from the sanitizer's allocator. */
#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define GT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define GT_ASAN 1
#endif
#endif

#ifdef GT_ASAN
/* From the sanitizer runtime (gcc ships no allocator_interface.h). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#define K4 4096ull
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)

static char dummy_mem[64];

static struct gran_region_desc desc(uint64_t off, uint64_t size, uint64_t iova,
				    uint64_t granule, uint64_t mem_size)
{
	return (struct gran_region_desc){ .mem_offset = off, .size = size,
					  .iova = iova, .granule = granule,
					  .mem_size = mem_size,
					  .mem_vaddr = dummy_mem, .mem_fd = -1,
					  .prot = BE_PROT_READ | BE_PROT_WRITE };
}

/* Register @d expecting @err; returns the message. */
static const char *reg_err(struct gran_region_desc d, int err)
{
	static char msg[512];
	struct gran_region *r = NULL;

	cr_assert_eq(gran_region_register(&d, NULL, &r, msg, sizeof(msg)), err,
		     "%s", msg);
	cr_assert(msg[0] != '\0', "an error must come with a message");
	return msg;
}

Test(region, rejects_bad_granules_and_alignment)
{
	cr_assert(strstr(reg_err(desc(0, 8 * K4, 0, 0, GiB), -EINVAL), "power of two"));
	cr_assert(strstr(reg_err(desc(0, 8 * K4, 0, 2048, GiB), -EINVAL), "granule 2048"));
	reg_err(desc(0, 24 * K4, 0, 3 * K4, GiB), -EINVAL);
	cr_assert(strstr(reg_err(desc(0, 3 * K4, 0, 2 * K4, GiB), -EINVAL), "multiples"));
	reg_err(desc(0, 4 * K4, K4, 2 * K4, GiB), -EINVAL);
	reg_err(desc(K4, 4 * K4, 0, 2 * K4, GiB), -EINVAL);
	reg_err(desc(0, 0, 0, K4, GiB), -EINVAL);
	struct gran_region_desc d = desc(0, K4, 0, K4, GiB);
	d.flags = 0x80;
	reg_err(d, -EINVAL);
	d = desc(0, K4, 0, K4, GiB);
	d.mem_vaddr = NULL;
	reg_err(d, -EINVAL);
}

Test(region, rejects_out_of_bounds)
{
	cr_assert(strstr(reg_err(desc(GiB - K4, 2 * K4, 0, K4, GiB), -ERANGE),
			 "does not fit"));
	reg_err(desc(UINT64_MAX - K4 + 1, K4, 0, K4, UINT64_MAX), -ERANGE);
	cr_assert(strstr(reg_err(desc(0, 2 * K4, UINT64_MAX - K4 + 1, K4, GiB),
				 -ERANGE), "overflows"));
	/* Ending exactly at the memory's end and at 2^64 is fine. */
	struct gran_region *r;
	struct gran_region_desc d = desc(GiB - 2 * K4, 2 * K4,
					 UINT64_MAX - 2 * K4 + 1, K4, GiB);
	cr_assert_eq(gran_region_register(&d, NULL, &r, NULL, 0), 0);
	cr_assert_eq(gran_region_nr_granules(r), 2);
	gran_region_unregister(r);
}

Test(region, validator)
{
	struct gran_region *r;
	struct gran_region_desc d = desc(0, 64 * MiB, 1ull << 32, 2 * MiB, GiB);
	uint64_t f = 77, c = 77;

	cr_assert_eq(gran_region_register(&d, NULL, &r, NULL, 0), 0);
	cr_assert_eq(gran_region_range(r, 4 * MiB, 6 * MiB, &f, &c), 0);
	cr_assert_eq(f, 2);
	cr_assert_eq(c, 3);
	cr_assert_eq(gran_region_range(r, 62 * MiB, 2 * MiB, &f, &c), 0);
	cr_assert_eq(f, 31);
	cr_assert_eq(c, 1);
	f = c = 77;
	cr_assert_eq(gran_region_range(r, 0, 0, &f, &c), -EINVAL);
	cr_assert_eq(gran_region_range(r, MiB, 2 * MiB, &f, &c), -EINVAL);
	cr_assert_eq(gran_region_range(r, 0, 3 * MiB, &f, &c), -EINVAL);
	cr_assert_eq(gran_region_range(r, 64 * MiB, 2 * MiB, &f, &c), -ERANGE);
	cr_assert_eq(gran_region_range(r, 62 * MiB, 4 * MiB, &f, &c), -ERANGE);
	cr_assert_eq(gran_region_range(r, UINT64_MAX - 2 * MiB + 1, 2 * MiB, &f, &c),
		     -ERANGE);
	cr_assert_eq(gran_region_range(r, 2 * MiB, UINT64_MAX - 2 * MiB + 1, &f, &c),
		     -ERANGE);
	cr_assert_eq(f, 77, "outputs untouched on error");
	cr_assert_eq(c, 77);
	cr_assert_eq(gran_region_iova(r), 1ull << 32);
	cr_assert_eq(gran_region_size(r), 64 * MiB);
	cr_assert_eq(gran_region_granule(r), 2 * MiB);
	cr_assert_eq(gran_region_populated(r), 0);
	cr_assert_eq(gran_region_mapped_bytes(r), 0);
	gran_region_unregister(r);
}

Test(budget, refusal_names_numbers_and_granule)
{
	struct gran_budget b;
	struct gran_region *r;
	struct gran_region_desc d = desc(0, 64 * GiB, 0, K4, 64 * GiB);
	char msg[512];

	gran_budget_init(&b, 65535);
	cr_assert_eq(gran_region_register(&d, &b, &r, msg, sizeof(msg)), -ENOSPC);
	cr_assert_str_eq(msg,
		"mapping budget exceeded: a region of 68719476736 bytes at granule 4096 "
		"needs up to 16777216 mappings, but the space allows 65535 (0 reserved, "
		"65535 free); the smallest granule that fits is 2097152 bytes (32768 mappings)");
	cr_assert_eq(b.reserved, 0);
}

Test(budget, reserves_and_releases)
{
	struct gran_budget b;
	struct gran_region *r1, *r2, *r3;
	struct gran_region_desc d1 = desc(0, 40000 * K4, 0, K4, 64 * GiB);
	struct gran_region_desc d2 = desc(0, 32 * GiB, 64 * GiB, 2 * MiB, 64 * GiB);
	struct gran_region_desc d3 = desc(0, 25535 * K4, 128 * GiB, K4, 64 * GiB);
	char msg[512];

	gran_budget_init(&b, 65535);
	cr_assert_eq(gran_region_register(&d1, &b, &r1, msg, sizeof(msg)), 0);
	cr_assert_eq(b.reserved, 40000);
	/* 16384 more would still fit; 32 GiB at 2 MiB is 16384: fits. */
	cr_assert_eq(gran_region_register(&d2, &b, &r2, msg, sizeof(msg)), 0);
	cr_assert_eq(gran_budget_free_areas(&b), 65535 - 40000 - 16384);
	/* 25535 > 9151 free: refused, suggestion against what is free. */
	cr_assert_eq(gran_region_register(&d3, &b, &r3, msg, sizeof(msg)), -ENOSPC);
	cr_assert_str_eq(msg,
		"mapping budget exceeded: a region of 104591360 bytes at granule 4096 "
		"needs up to 25535 mappings, but the space allows 65535 (56384 reserved, "
		"9151 free); the smallest granule that fits is 16384 bytes (6384 mappings)");
	gran_region_unregister(r2);
	/* limit < used + reserved is the only refusal: an exact fit passes. */
	cr_assert_eq(gran_region_register(&d3, &b, &r3, msg, sizeof(msg)), 0);
	cr_assert_eq(gran_budget_free_areas(&b), 0);
	cr_assert_eq(gran_region_register(&d2, &b, &r2, msg, sizeof(msg)), -ENOSPC);
	cr_assert(strstr(msg, "no granule fits"), "%s", msg);
	gran_region_unregister(r1);
	gran_region_unregister(r3);
	cr_assert_eq(b.reserved, 0);
	/* Unlimited (0) never refuses. */
	gran_budget_init(&b, 0);
	d1 = desc(0, 64 * GiB, 0, K4, 64 * GiB);
	cr_assert_eq(gran_region_register(&d1, &b, &r1, msg, sizeof(msg)), 0);
	gran_region_unregister(r1);
	cr_assert_eq(gran_budget_suggest_granule(64 * GiB, 65535), 2 * MiB);
	cr_assert_eq(gran_budget_suggest_granule(5 * K4, 2), 4 * K4);
	cr_assert_eq(gran_budget_suggest_granule(K4, 0), 0);
}

static size_t allocated_bytes(void)
{
#ifdef GT_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#endif
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Register a huge region: best of 5 times must be < 1 ms; bytes < 1 MiB. */
static void check_upfront(uint64_t size, uint64_t granule)
{
	struct gran_region_desc d = desc(0, size, 0, granule, size);
	struct gran_region *r;
	double best = 1e9, t;
	size_t before, bytes = 0;
	int i;

	for (i = 0; i < 5; i++) {
		before = allocated_bytes();
		t = now_ms();
		cr_assert_eq(gran_region_register(&d, NULL, &r, NULL, 0), 0);
		t = now_ms() - t;
		bytes = allocated_bytes() - before;
		if (t < best)
			best = t;
		cr_assert(bytes > 0 && bytes < MiB,
			  "%llu bytes up front for %llu at %llu",
			  (unsigned long long)bytes, (unsigned long long)size,
			  (unsigned long long)granule);
		gran_region_unregister(r);
	}
	cr_log_info("register %llu GiB at %llu KiB: %.1f us, %zu bytes",
		    (unsigned long long)(size / GiB),
		    (unsigned long long)(granule / 1024), best * 1e3, bytes);
	cr_assert(best < 1.0, "registration took %.3f ms", best);
}

Test(region, huge_regions_are_cheap_up_front)
{
	check_upfront(TiB, 2 * MiB);
	check_upfront(64 * GiB, K4);
}

/* The lazy bitmap against a bool array, across leaf boundaries. */
Test(bitmap, matches_reference)
{
	const uint64_t n = 3 * GRAN_LEAF_BITS + 1000;
	struct gran_bm bm;
	bool *ref = calloc(n, 1);
	uint64_t i, k, a, b, cnt = 0, s, e;
	unsigned int seed = 12345;

	cr_assert(ref);
	cr_assert_eq(gran_bm_init(&bm, n), 0);
	cr_assert_eq(bm.nleaves, 4);
	for (k = 0; k < 4000; k++) {
		a = (uint64_t)rand_r(&seed) % n;
		b = a + 1 + (uint64_t)rand_r(&seed) % (k % 10 == 0 ? 70000 : 200);
		if (b > n)
			b = n;
		if (rand_r(&seed) % 2) {
			cr_assert_eq(gran_bm_ensure(&bm, a, b), 0);
			gran_bm_set(&bm, a, b);
			for (i = a; i < b; i++)
				ref[i] = true;
		} else {
			gran_bm_clear(&bm, a, b);
			gran_bm_trim(&bm, a, b);
			for (i = a; i < b; i++)
				ref[i] = false;
		}
		if (k % 200)
			continue;
		cnt = 0;
		for (i = 0; i < n; i++) {
			cnt += ref[i];
			cr_assert_eq(gran_bm_test(&bm, i), ref[i], "bit %llu",
				     (unsigned long long)i);
		}
		cr_assert_eq(bm.count, cnt);
		/* Runs from next_set/next_clear reproduce the reference. */
		for (s = gran_bm_next_set(&bm, 0, n); s < n;
		     s = gran_bm_next_set(&bm, e, n)) {
			e = gran_bm_next_clear(&bm, s, n);
			cr_assert(ref[s] && (s == 0 || !ref[s - 1] ||
					     s == 0));
			for (i = s; i < e; i++)
				cr_assert(ref[i]);
			cr_assert(e == n || !ref[e]);
		}
	}
	/* Clearing everything frees every leaf. */
	gran_bm_clear(&bm, 0, n);
	gran_bm_trim(&bm, 0, n);
	for (i = 0; i < bm.nleaves; i++)
		cr_assert_null(bm.leaves[i]);
	cr_assert_eq(bm.count, 0);
	cr_assert_eq(gran_bm_next_set(&bm, 0, n), n);
	cr_assert_eq(gran_bm_next_clear(&bm, 5, n), 5);
	gran_bm_destroy(&bm);
	free(ref);
}

/*
 * A region re-created without a memory (adoption after a restart) learns
 * which granules the space holds from the backend's audit: the areas a
 * previous owner mapped, including across a bitmap leaf boundary, and
 * nothing else; no map or unmap is made.  Then a memory is bound.
 */
Test(region, learn_from_audit_without_memory)
{
	struct gt_mem m;
	struct gt_soft sm;
	struct gran_region *r = NULL;
	uint64_t n = GRAN_LEAF_BITS + 64, held[] = { 0, 1, 7, GRAN_LEAF_BITS - 1, GRAN_LEAF_BITS,
						    GRAN_LEAF_BITS + 63 };
	struct gran_region_desc d = desc(0, n * K4, 1ull << 32, K4, n * K4);
	char msg[256];

	gt_mem_create(&m, n * K4);
	gt_soft_open(&sm, NULL, 0);
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
		struct be_map_src src = { m.va + held[i] * K4, m.fd, held[i] * K4 };

		cr_assert_eq(be_soft_ops.map(sm.space, d.iova + held[i] * K4, K4, &src,
					     BE_PROT_READ), 0);
	}
	d.mem_vaddr = NULL;
	d.mem_fd = -1;
	cr_assert_eq(gran_region_register(&d, NULL, &r, msg, sizeof(msg)), -EINVAL,
		     "no memory without GRAN_DESC_NO_MEMORY");
	d.flags = GRAN_DESC_NO_MEMORY;
	cr_assert_eq(gran_region_register(&d, NULL, &r, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(gran_region_populated(r), 0);
	cr_assert_eq(gran_region_learn(r, &be_soft_ops, sm.space), 0);
	cr_assert_eq(gran_region_populated(r), sizeof(held) / sizeof(held[0]));
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
		cr_assert(gran_region_test(r, held[i]), "granule %llu", (unsigned long long)held[i]);
	cr_assert(!gran_region_test(r, 2));
	cr_assert(!gran_region_test(r, GRAN_LEAF_BITS + 1));
	cr_assert_eq(gt_areas(sm.space), sizeof(held) / sizeof(held[0]), "the audit mapped nothing");
	/* Learning again is idempotent (clears, then sets what is held). */
	cr_assert_eq(gran_region_learn(r, &be_soft_ops, sm.space), 0);
	cr_assert_eq(gran_region_populated(r), sizeof(held) / sizeof(held[0]));
	cr_assert_eq(gran_region_set_memory(r, NULL, -1, n * K4), -EINVAL);
	cr_assert_eq(gran_region_set_memory(r, m.va, m.fd, n * K4), 0);
	cr_assert_eq(gran_region_desc(r)->flags, 0, "it has a memory now");
	cr_assert_eq(gran_region_populated(r), sizeof(held) / sizeof(held[0]), "state kept");
	cr_assert_eq(gran_region_unmap_all(r, &be_soft_ops, sm.space), 0);
	cr_assert_eq(gt_areas(sm.space), 0);
	gran_region_unregister(r);
	gt_soft_close(&sm);
	gt_mem_destroy(&m);
}
