// SPDX-License-Identifier: MIT
/*
 * test_area_record.c - host-side unit tests of area_record (the type1
 * backend's own record of its areas, which its audit() reports).
 *
 * Vocabulary: area = [iova, iova + length), end exclusive.  The random
 * test checks the record against a page bitmap model, slot by slot.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "area_record_priv.h"

#define PG 4096ull

static struct area_record rec;

static void setup(void)
{
	area_rec_init(&rec);
}

static void teardown(void)
{
	area_rec_destroy(&rec);
	cr_assert_eq(rec.n, 0);
	cr_assert_null(rec.v);
}

TestSuite(area_record, .init = setup, .fini = teardown);

struct seen {
	uint64_t iova[64], len[64];
	int n, stop_at;
};

static int collect(void *arg, uint64_t iova, uint64_t length)
{
	struct seen *s = arg;

	if (s->n == 64)
		return -1;
	s->iova[s->n] = iova;
	s->len[s->n] = length;
	s->n++;
	return s->n == s->stop_at ? 42 : 0;
}

Test(area_record, insert_keeps_order_and_refuses_overlap)
{
	struct seen s = { 0 };

	cr_assert_eq(area_rec_insert(&rec, 10 * PG, PG), 0);
	cr_assert_eq(area_rec_insert(&rec, 2 * PG, 2 * PG), 0);
	cr_assert_eq(area_rec_insert(&rec, 4 * PG, PG), 0); /* adjacent */
	cr_assert_eq(area_rec_insert(&rec, 3 * PG, PG), -EEXIST);
	cr_assert_eq(area_rec_insert(&rec, PG, 2 * PG), -EEXIST);
	cr_assert_eq(area_rec_insert(&rec, 9 * PG, 4 * PG), -EEXIST);
	cr_assert_eq(area_rec_insert(&rec, 0, 0), -EINVAL);
	cr_assert_eq(area_rec_insert(&rec, UINT64_MAX - PG + 2, PG), -EINVAL);
	cr_assert_eq(rec.n, 3);

	cr_assert_eq(area_rec_walk(&rec, 0, UINT64_MAX, collect, &s), 0);
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.iova[0], 2 * PG);
	cr_assert_eq(s.iova[1], 4 * PG);
	cr_assert_eq(s.iova[2], 10 * PG);
	cr_assert_eq(s.len[0], 2 * PG);
}

Test(area_record, walk_clips_and_stops)
{
	struct seen s = { .stop_at = 2 };

	for (uint64_t i = 0; i < 4; i++)
		cr_assert_eq(area_rec_insert(&rec, i * 4 * PG, 4 * PG), 0);
	/* [2 PG, 10 PG): the first area clipped at the start, stop at #2. */
	cr_assert_eq(area_rec_walk(&rec, 2 * PG, 10 * PG, collect, &s), 42);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.iova[0], 2 * PG);
	cr_assert_eq(s.len[0], 2 * PG);
	cr_assert_eq(s.iova[1], 4 * PG);
	cr_assert_eq(s.len[1], 4 * PG);

	s = (struct seen){ 0 };
	cr_assert_eq(area_rec_walk(&rec, 9 * PG, 10 * PG, collect, &s), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.iova[0], 9 * PG);
	cr_assert_eq(s.len[0], PG);
}

Test(area_record, remove_takes_whole_areas_only)
{
	for (uint64_t i = 0; i < 8; i++)
		cr_assert_eq(area_rec_insert(&rec, i * 2 * PG, 2 * PG), 0);
	/* [3 PG, 11 PG) holds areas 2..4 whole; areas 1 and 5 stick out. */
	cr_assert(area_rec_cuts(&rec, 3 * PG, 11 * PG));
	cr_assert_eq(area_rec_remove(&rec, 3 * PG, 11 * PG), 6 * PG);
	cr_assert_eq(rec.n, 5);
	cr_assert_eq(rec.v[0].iova, 0);
	cr_assert_eq(rec.v[1].iova, 2 * PG);
	cr_assert_eq(rec.v[2].iova, 10 * PG);
	cr_assert_eq(area_rec_remove(&rec, 4 * PG, 10 * PG), 0);
	cr_assert_not(area_rec_cuts(&rec, 4 * PG, 10 * PG));
	cr_assert_not(area_rec_cuts(&rec, 0, 4 * PG));
	cr_assert(area_rec_cuts(&rec, PG, 4 * PG));
	cr_assert(area_rec_cuts(&rec, 0, 3 * PG));
	cr_assert_eq(area_rec_remove(&rec, 0, UINT64_MAX), 10 * PG);
	cr_assert_eq(rec.n, 0);
}

#define SLOTS 128

/* Random inserts/removes/walks against a per-page model of the areas. */
Test(area_record, matches_a_page_model)
{
	int owner[SLOTS]; /* area start slot covering each page, or -1 */
	unsigned int seed = 12345;

	for (int i = 0; i < SLOTS; i++)
		owner[i] = -1;
	for (int op = 0; op < 20000; op++) {
		int a = rand_r(&seed) % SLOTS;
		int n = 1 + rand_r(&seed) % 6;
		int free_run = 1, whole = 0, cut = 0;
		uint64_t bytes = 0;

		if (a + n > SLOTS)
			n = SLOTS - a;
		for (int i = a; i < a + n; i++)
			free_run &= owner[i] < 0;
		if (rand_r(&seed) % 2) {
			int rc = area_rec_insert(&rec, a * PG, n * PG);

			cr_assert_eq(rc, free_run ? 0 : -EEXIST, "op %d", op);
			for (int i = a; free_run && i < a + n; i++)
				owner[i] = a;
			continue;
		}
		/* Model of remove: areas wholly inside [a, a + n). */
		for (int i = a; i < a + n; i++) {
			int o = owner[i];

			if (o < 0)
				continue;
			if (o < a)
				cut = 1;
			int e = o;
			while (e < SLOTS && owner[e] == o)
				e++;
			if (e > a + n)
				cut = 1;
			if (o >= a && e <= a + n && i == o)
				whole += e - o;
		}
		cr_assert_eq(area_rec_cuts(&rec, a * PG, (a + n) * PG), cut,
			     "op %d", op);
		bytes = area_rec_remove(&rec, a * PG, (a + n) * PG);
		cr_assert_eq(bytes, whole * PG, "op %d", op);
		for (int i = 0; i < SLOTS; i++) {
			int o = owner[i];
			int e = o;

			if (o < 0 || o < a)
				continue;
			while (e < SLOTS && owner[e] == o)
				e++;
			if (e <= a + n && o < a + n)
				for (int k = o; k < e; k++)
					owner[k] = -1;
		}
	}
	/* Final state, page by page, through the walk. */
	{
		int got[SLOTS];
		struct seen s;

		for (int i = 0; i < SLOTS; i++)
			got[i] = -1;
		for (uint64_t base = 0; base < SLOTS; base += 32) {
			s = (struct seen){ 0 };
			cr_assert_eq(area_rec_walk(&rec, base * PG, (base + 32) * PG,
						   collect, &s), 0);
			for (int k = 0; k < s.n; k++)
				for (uint64_t p = s.iova[k] / PG;
				     p < (s.iova[k] + s.len[k]) / PG; p++)
					got[p] = 1;
		}
		for (int i = 0; i < SLOTS; i++)
			cr_assert_eq(got[i] > 0, owner[i] >= 0, "page %d", i);
	}
}
