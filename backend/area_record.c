// SPDX-License-Identifier: MIT
/*
 * area_record.c - a sorted array of non-overlapping areas, the backend's own
 * record of successful maps (see area_record_priv.h for the contract).
 *
 * Vocabulary: area = [iova, iova + length); end = iova + length, exclusive.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "area_record_priv.h"

static uint64_t ent_end(const struct area_rec_entry *e)
{
	return e->iova + e->length; /* checked at insert: cannot wrap */
}

/* Index of the first entry whose end is above @iova (n if none). */
static size_t first_ending_after(const struct area_record *r, uint64_t iova)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ent_end(&r->v[mid]) <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void area_rec_init(struct area_record *r)
{
	*r = (struct area_record){ 0 };
}

void area_rec_destroy(struct area_record *r)
{
	free(r->v);
	area_rec_init(r);
}

int area_rec_insert(struct area_record *r, uint64_t iova, uint64_t length)
{
	uint64_t end;
	size_t i;

	if (!length || __builtin_add_overflow(iova, length, &end))
		return -EINVAL;
	i = first_ending_after(r, iova);
	if (i < r->n && r->v[i].iova < end)
		return -EEXIST;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct area_rec_entry *v = realloc(r->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	memmove(&r->v[i + 1], &r->v[i], (r->n - i) * sizeof(*r->v));
	r->v[i] = (struct area_rec_entry){ .iova = iova, .length = length };
	r->n++;
	return 0;
}

uint64_t area_rec_remove(struct area_record *r, uint64_t iova, uint64_t end)
{
	size_t i = first_ending_after(r, iova), j = i, keep = i;
	uint64_t bytes = 0;

	if (!r->n)
		return 0; /* r->v may be NULL: no memmove from it */
	for (; j < r->n && r->v[j].iova < end; j++) {
		if (r->v[j].iova >= iova && ent_end(&r->v[j]) <= end)
			bytes += r->v[j].length;
		else
			r->v[keep++] = r->v[j]; /* sticks out: stays */
	}
	memmove(&r->v[keep], &r->v[j], (r->n - j) * sizeof(*r->v));
	r->n -= j - keep;
	return bytes;
}

int area_rec_cuts(const struct area_record *r, uint64_t iova, uint64_t end)
{
	size_t i = first_ending_after(r, iova);

	if (i < r->n && r->v[i].iova < iova)
		return 1; /* starts before the range and reaches into it */
	i = first_ending_after(r, end - 1);
	return i < r->n && r->v[i].iova < end && ent_end(&r->v[i]) > end;
}

int area_rec_walk(const struct area_record *r, uint64_t iova, uint64_t end,
		  int (*fn)(void *arg, uint64_t iova, uint64_t length),
		  void *arg)
{
	for (size_t i = first_ending_after(r, iova);
	     i < r->n && r->v[i].iova < end; i++) {
		uint64_t s = r->v[i].iova > iova ? r->v[i].iova : iova;
		uint64_t e = ent_end(&r->v[i]) < end ? ent_end(&r->v[i]) : end;
		int rc = fn(arg, s, e - s);

		if (rc)
			return rc;
	}
	return 0;
}
