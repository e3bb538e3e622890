/* SPDX-License-Identifier: MIT */
/*
 * test_bitmap.c - libdmasvc's pure parts: the populated bitmap (set/clear
 * across word boundaries, weight, run walk) against a byte-per-bit
 * reference model, and the event range / region geometry checks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap_priv.h"

/* Runs of the bitmap must equal the runs of the reference @ref. */
static void check_against(const struct cl_bitmap *b, const unsigned char *ref)
{
	uint64_t weight = 0, from = 0, first, count, seen = 0;

	for (uint64_t i = 0; i < b->nbits; i++) {
		cr_assert_eq(cl_bitmap_test(b, i), ref[i] != 0, "bit %lu", (unsigned long)i);
		weight += ref[i];
	}
	cr_assert_eq(cl_bitmap_weight(b), weight);
	while (cl_bitmap_next_run(b, from, &first, &count)) {
		cr_assert_gt(count, 0);
		cr_assert(first == 0 || !ref[first - 1], "run at %lu not maximal (left)", (unsigned long)first);
		cr_assert(first + count == b->nbits || !ref[first + count], "run not maximal (right)");
		for (uint64_t i = first; i < first + count; i++)
			cr_assert(ref[i]);
		seen += count;
		from = first + count;
	}
	cr_assert_eq(seen, weight, "runs cover every set bit");
}

Test(bitmap, init_rejects_zero)
{
	struct cl_bitmap b;

	cr_assert_eq(cl_bitmap_init(&b, 0), -EINVAL);
	cr_assert_eq(cl_bitmap_init(&b, UINT64_MAX), -EINVAL);
}

Test(bitmap, word_edges)
{
	struct cl_bitmap b;
	unsigned char ref[200] = { 0 };
	static const uint64_t r[][2] = { { 0, 1 }, { 63, 2 }, { 64, 64 }, { 127, 3 }, { 199, 1 }, { 5, 190 } };

	cr_assert_eq(cl_bitmap_init(&b, 200), 0);
	check_against(&b, ref);
	for (unsigned i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		cl_bitmap_set(&b, r[i][0], r[i][1]);
		memset(ref + r[i][0], 1, r[i][1]);
		check_against(&b, ref);
	}
	cl_bitmap_clear(&b, 60, 70);
	memset(ref + 60, 0, 70);
	check_against(&b, ref);
	cl_bitmap_clear(&b, 0, 200);
	memset(ref, 0, 200);
	check_against(&b, ref);
	cl_bitmap_destroy(&b);
}

Test(bitmap, random_ops_match_reference)
{
	enum { N = 1000, OPS = 3000 };
	struct cl_bitmap b;
	unsigned char *ref = calloc(N, 1);
	unsigned seed = 12345;

	cr_assert_eq(cl_bitmap_init(&b, N), 0);
	for (int op = 0; op < OPS; op++) {
		uint64_t first = (uint64_t)rand_r(&seed) % N;
		uint64_t count = 1 + (uint64_t)rand_r(&seed) % (rand_r(&seed) % 4 ? 8 : 300);
		bool set = rand_r(&seed) & 1;

		if (first + count > N)
			count = N - first;
		if (set)
			cl_bitmap_set(&b, first, count);
		else
			cl_bitmap_clear(&b, first, count);
		memset(ref + first, set, count);
		if (op % 50 == 0)
			check_against(&b, ref);
	}
	check_against(&b, ref);
	cl_bitmap_destroy(&b);
	free(ref);
}

Test(range, to_bits)
{
	uint64_t first = 99, count = 99;
	const uint64_t G = 2u << 20, SZ = 64 * G;

	cr_assert_eq(cl_range_to_bits(SZ, G, 0, SZ, &first, &count), 0);
	cr_assert_eq(first, 0);
	cr_assert_eq(count, 64);
	cr_assert_eq(cl_range_to_bits(SZ, G, 3 * G, 2 * G, &first, &count), 0);
	cr_assert_eq(first, 3);
	cr_assert_eq(count, 2);
	cr_assert_eq(cl_range_to_bits(SZ, G, 0, 0, &first, &count), -EINVAL, "empty");
	cr_assert_eq(cl_range_to_bits(SZ, G, 4096, G, &first, &count), -EINVAL, "offset misaligned");
	cr_assert_eq(cl_range_to_bits(SZ, G, 0, G + 4096, &first, &count), -EINVAL, "length misaligned");
	cr_assert_eq(cl_range_to_bits(SZ, G, SZ - G, 2 * G, &first, &count), -ERANGE, "past end");
	cr_assert_eq(cl_range_to_bits(SZ, G, SZ, G, &first, &count), -ERANGE, "at end");
	cr_assert_eq(cl_range_to_bits(SZ, G, UINT64_MAX - G + 1, G, &first, &count), -ERANGE,
		     "offset + length overflows");
	cr_assert_eq(cl_range_to_bits(SZ, 3 * 4096, 0, 3 * 4096, &first, &count), -EINVAL,
		     "granule not a power of two");
}

Test(range, region_geometry)
{
	const uint64_t G = 4096;

	cr_assert_eq(cl_region_geom_check(0, G, 0, G), 0);
	cr_assert_eq(cl_region_geom_check(0, 0, 0, G), -EINVAL, "empty");
	cr_assert_eq(cl_region_geom_check(0, G, 0, 2048), -EINVAL, "granule < 4 KiB");
	cr_assert_eq(cl_region_geom_check(0, 3 * G, 0, 3 * G), -EINVAL, "granule not pow2");
	cr_assert_eq(cl_region_geom_check(G, 4 * G, 0, 2 * G), -EINVAL, "mem_offset misaligned");
	cr_assert_eq(cl_region_geom_check(0, 4 * G, G, 2 * G), -EINVAL, "iova misaligned");
	cr_assert_eq(cl_region_geom_check(0, 3 * G, 0, 2 * G), -EINVAL, "size misaligned");
	/* Overflows are -ERANGE, as the service says (transport/control.c). */
	cr_assert_eq(cl_region_geom_check(0, 2 * G, UINT64_MAX - G + 1, G), -ERANGE, "iova overflow");
	cr_assert_eq(cl_region_geom_check(UINT64_MAX - G + 1, 2 * G, 0, G), -ERANGE, "offset overflow");
	cr_assert_eq(cl_region_geom_check(0, G, UINT64_MAX - G + 1, G), 0,
		     "a region ending at the last IOVA fits, as at the service");
}
