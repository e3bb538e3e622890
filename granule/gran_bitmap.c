/* SPDX-License-Identifier: MIT */
/*
 * gran_bitmap.c - the lazily allocated two-level granule bitmap (see
 * gran_priv.h for its rules).  Word-at-a-time scans; a missing leaf is
 * skipped whole, so walking a sparse region costs its allocated leaves.
 */
#include <errno.h>
#include <stdlib.h>

#include "gran_priv.h"

int gran_bm_init(struct gran_bm *bm, uint64_t nbits)
{
	bm->nbits = nbits;
	bm->count = 0;
	bm->nleaves = (nbits + GRAN_LEAF_BITS - 1) >> GRAN_LEAF_SHIFT;
	bm->spare = NULL;
	bm->leaves = calloc(bm->nleaves, sizeof(*bm->leaves));
	return bm->leaves ? 0 : -ENOMEM;
}

void gran_bm_destroy(struct gran_bm *bm)
{
	uint64_t i;

	if (!bm->leaves)
		return;
	for (i = 0; i < bm->nleaves; i++)
		free(bm->leaves[i]);
	free(bm->leaves);
	free(bm->spare);
	bm->leaves = NULL;
	bm->spare = NULL;
	bm->count = 0;
}

bool gran_bm_test(const struct gran_bm *bm, uint64_t i)
{
	const struct gran_leaf *l = bm->leaves[i >> GRAN_LEAF_SHIFT];
	uint64_t b = i & (GRAN_LEAF_BITS - 1);

	return l && (l->w[b / 64] >> (b % 64) & 1);
}

int gran_bm_ensure(struct gran_bm *bm, uint64_t from, uint64_t end)
{
	uint64_t li;

	if (from >= end)
		return 0;
	for (li = from >> GRAN_LEAF_SHIFT; li <= (end - 1) >> GRAN_LEAF_SHIFT; li++) {
		if (bm->leaves[li])
			continue;
		if (bm->spare) {
			bm->leaves[li] = bm->spare;
			bm->spare = NULL;
			continue;
		}
		bm->leaves[li] = calloc(1, sizeof(struct gran_leaf));
		if (!bm->leaves[li])
			return -ENOMEM;
	}
	return 0;
}

/* Mask of bits [lo, hi) of one word, 0 <= lo < hi <= 64. */
static uint64_t word_mask(unsigned int lo, unsigned int hi)
{
	uint64_t m = hi == 64 ? ~0ull : (1ull << hi) - 1;

	return m & ~((1ull << lo) - 1);
}

/* Set (@on) or clear bits [from, end) that lie in one word. */
static void change_word(struct gran_bm *bm, uint64_t from, uint64_t end, bool on)
{
	struct gran_leaf *l = bm->leaves[from >> GRAN_LEAF_SHIFT];
	uint64_t b = from & (GRAN_LEAF_BITS - 1);
	uint64_t *w, m, before;
	int delta;

	if (!l)
		return; /* clearing a missing leaf: nothing set there */
	w = &l->w[b / 64];
	m = word_mask(b % 64, b % 64 + (unsigned int)(end - from));
	before = *w;
	*w = on ? before | m : before & ~m;
	delta = __builtin_popcountll(*w) - __builtin_popcountll(before);
	l->count += (uint64_t)(int64_t)delta;
	bm->count += (uint64_t)(int64_t)delta;
}

static void change(struct gran_bm *bm, uint64_t from, uint64_t end, bool on)
{
	uint64_t stop;

	while (from < end) {
		stop = (from | 63) + 1;
		if (stop > end)
			stop = end;
		change_word(bm, from, stop, on);
		from = stop;
	}
}

void gran_bm_set(struct gran_bm *bm, uint64_t from, uint64_t end)
{
	change(bm, from, end, true);
}

void gran_bm_clear(struct gran_bm *bm, uint64_t from, uint64_t end)
{
	change(bm, from, end, false);
}

void gran_bm_trim(struct gran_bm *bm, uint64_t from, uint64_t end)
{
	uint64_t li;

	if (from >= end)
		return;
	for (li = from >> GRAN_LEAF_SHIFT; li <= (end - 1) >> GRAN_LEAF_SHIFT; li++) {
		struct gran_leaf *l = bm->leaves[li];

		if (!l || l->count)
			continue;
		bm->leaves[li] = NULL;
		if (bm->spare)
			free(l);
		else
			bm->spare = l; /* count 0: every word is 0 */
	}
}

/* Shared scan: first bit in [from, end) equal to @want. */
static uint64_t next_bit(const struct gran_bm *bm, uint64_t from, uint64_t end,
			 bool want)
{
	const struct gran_leaf *l;
	uint64_t b, w, base;

	while (from < end) {
		l = bm->leaves[from >> GRAN_LEAF_SHIFT];
		if (!l && !want)
			return from; /* a missing leaf is all clear */
		/* Skip a leaf with nothing to find: empty or missing when
		 * looking for a set bit, full when looking for a clear one. */
		if (!l || (want ? !l->count : l->count == GRAN_LEAF_BITS)) {
			from = ((from >> GRAN_LEAF_SHIFT) + 1) << GRAN_LEAF_SHIFT;
			continue;
		}
		b = from & (GRAN_LEAF_BITS - 1);
		base = from - b;
		w = want ? l->w[b / 64] : ~l->w[b / 64];
		w &= ~0ull << (b % 64);
		while (!w) {
			b = (b / 64 + 1) * 64;
			if (b >= GRAN_LEAF_BITS || base + b >= end)
				break;
			w = want ? l->w[b / 64] : ~l->w[b / 64];
		}
		if (w) {
			b = (b & ~63ull) + (uint64_t)__builtin_ctzll(w);
			return base + b < end ? base + b : end;
		}
		from = base + GRAN_LEAF_BITS;
	}
	return end;
}

uint64_t gran_bm_next_set(const struct gran_bm *bm, uint64_t from, uint64_t end)
{
	return next_bit(bm, from, end, true);
}

uint64_t gran_bm_next_clear(const struct gran_bm *bm, uint64_t from, uint64_t end)
{
	return next_bit(bm, from, end, false);
}

/*
 * Set bits of w[0..n): a SWAR popcount with shifts, adds and masks only, so
 * the compiler vectorizes the loop on the baseline ISA; without -mpopcnt
 * __builtin_popcountll is a libgcc call per word (__popcountdi2), which made
 * the debug check of a 512-word leaf cost microseconds per stage.
 */
static uint64_t words_popcount(const uint64_t *w, size_t n)
{
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t x = w[i];

		x -= (x >> 1) & 0x5555555555555555ull;
		x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
		x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
		x += x >> 8;
		x += x >> 16;
		x += x >> 32;
		total += x & 0x7f;
	}
	return total;
}

bool gran_bm_check(const struct gran_bm *bm, uint64_t from, uint64_t end)
{
	uint64_t li;

	if (from >= end)
		return true;
	for (li = from >> GRAN_LEAF_SHIFT; li <= (end - 1) >> GRAN_LEAF_SHIFT; li++) {
		const struct gran_leaf *l = bm->leaves[li];

		if (!l)
			continue;
		if (words_popcount(l->w, GRAN_LEAF_WORDS) != l->count)
			return false;
	}
	return bm->count <= bm->nbits;
}
