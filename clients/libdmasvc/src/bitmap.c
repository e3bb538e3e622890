/* SPDX-License-Identifier: MIT */
/*
 * bitmap.c - the populated bitmap of a region and the byte-range checks
 * that feed it (see bitmap_priv.h for the vocabulary).
 */
#include <errno.h>
#include <stdlib.h>

#include "bitmap_priv.h"

#define WORD_BITS 64u

int cl_bitmap_init(struct cl_bitmap *b, uint64_t nbits)
{
	uint64_t nwords;

	b->words = NULL;
	b->nbits = 0;
	b->set_bits = 0;
	if (nbits == 0 || nbits > (UINT64_MAX - (WORD_BITS - 1)))
		return -EINVAL;
	nwords = (nbits + WORD_BITS - 1) / WORD_BITS;
	if (nwords > SIZE_MAX / sizeof(uint64_t))
		return -EINVAL;
	b->words = calloc(nwords, sizeof(uint64_t));
	if (!b->words)
		return -ENOMEM;
	b->nbits = nbits;
	return 0;
}

void cl_bitmap_destroy(struct cl_bitmap *b)
{
	free(b->words);
	b->words = NULL;
	b->nbits = 0;
	b->set_bits = 0;
}

/* Mask of bits [lo, hi) inside one word, 0 <= lo < hi <= 64. */
static uint64_t word_mask(unsigned lo, unsigned hi)
{
	uint64_t upper = hi == WORD_BITS ? ~0ull : ((1ull << hi) - 1);

	return upper & ~((1ull << lo) - 1);
}

/* Apply set (value true) or clear to [first, first + count), keeping set_bits. */
static void bitmap_assign(struct cl_bitmap *b, uint64_t first, uint64_t count, bool value)
{
	uint64_t end = first + count; /* caller checked: end <= nbits */

	while (first < end) {
		uint64_t w = first / WORD_BITS;
		unsigned lo = (unsigned)(first % WORD_BITS);
		unsigned hi = (end - w * WORD_BITS) >= WORD_BITS ?
				      WORD_BITS : (unsigned)(end - w * WORD_BITS);
		uint64_t mask = word_mask(lo, hi);
		uint64_t old = b->words[w];
		uint64_t new = value ? (old | mask) : (old & ~mask);

		b->set_bits += (uint64_t)__builtin_popcountll(new);
		b->set_bits -= (uint64_t)__builtin_popcountll(old);
		b->words[w] = new;
		first = (w + 1) * WORD_BITS;
	}
}

void cl_bitmap_set(struct cl_bitmap *b, uint64_t first, uint64_t count)
{
	bitmap_assign(b, first, count, true);
}

void cl_bitmap_clear(struct cl_bitmap *b, uint64_t first, uint64_t count)
{
	bitmap_assign(b, first, count, false);
}

bool cl_bitmap_test(const struct cl_bitmap *b, uint64_t i)
{
	return (b->words[i / WORD_BITS] >> (i % WORD_BITS)) & 1;
}

/* First bit >= @from whose value is @value, or nbits when none. */
static uint64_t bitmap_find(const struct cl_bitmap *b, uint64_t from, bool value)
{
	while (from < b->nbits) {
		uint64_t w = from / WORD_BITS;
		uint64_t word = value ? b->words[w] : ~b->words[w];

		word &= ~0ull << (from % WORD_BITS);
		if (word) {
			uint64_t bit = w * WORD_BITS + (uint64_t)__builtin_ctzll(word);

			return bit < b->nbits ? bit : b->nbits;
		}
		from = (w + 1) * WORD_BITS;
	}
	return b->nbits;
}

bool cl_bitmap_next_run(const struct cl_bitmap *b, uint64_t from, uint64_t *first,
			uint64_t *count)
{
	uint64_t start = bitmap_find(b, from, true);
	uint64_t end;

	if (start >= b->nbits)
		return false;
	end = bitmap_find(b, start, false);
	*first = start;
	*count = end - start;
	return true;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int cl_range_to_bits(uint64_t size, uint64_t granule, uint64_t offset, uint64_t length,
		     uint64_t *first, uint64_t *count)
{
	uint64_t end;

	if (!is_pow2(granule) || length == 0 || (offset | length) & (granule - 1))
		return -EINVAL;
	if (__builtin_add_overflow(offset, length, &end) || end > size)
		return -ERANGE;
	*first = offset / granule;
	*count = length / granule;
	return 0;
}

int cl_region_geom_check(uint64_t mem_offset, uint64_t size, uint64_t iova, uint64_t granule)
{
	uint64_t end;

	if (size == 0 || granule < 4096 || !is_pow2(granule))
		return -EINVAL;
	if ((mem_offset | size | iova) & (granule - 1))
		return -EINVAL;
	/* The service's rules (control.c): the last IOVA, not the end, must fit. */
	if (__builtin_add_overflow(iova, size - 1, &end) ||
	    __builtin_add_overflow(mem_offset, size, &end))
		return -ERANGE;
	return 0;
}
