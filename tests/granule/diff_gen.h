/* SPDX-License-Identifier: MIT */
/*
 * diff_gen.h - the random event stream of the differential tests, shared by
 * tests/granule/test_diff.c (planner + soft model, in process) and
 * tests/vm/guest/daemon-diff.c (the daemon on the real iommufd backend).
 * Header-only so that both builds take it without a library.
 *
 * Vocabulary: a stream is reproducible from its seed (splitmix64); an event
 * names a region by index, a granule range [first, first + count) and an op.
 */
#ifndef DMASVC_TESTS_DIFF_GEN_H
#define DMASVC_TESTS_DIFF_GEN_H

#include <stdint.h>

/* dg_next - the next 64 random bits of the stream in *@s. */
static inline uint64_t dg_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* dg_below - a random number in [0, @n); 0 when @n is 0. */
static inline uint64_t dg_below(uint64_t *s, uint64_t n)
{
	return n ? dg_next(s) % n : 0;
}

/*
 * dg_weighted - a random index in [0, @n) where index i has weight
 * @weight[i] out of 100000 (the last index takes what is left).
 */
static inline int dg_weighted(uint64_t *s, const unsigned int *weight, int n)
{
	uint64_t pick = dg_below(s, 100000), acc = 0;
	int i;

	for (i = 0; i < n - 1; i++) {
		acc += weight[i];
		if (pick < acc)
			break;
	}
	return i;
}

/*
 * dg_range - a random granule range of a region of @ng granules: mostly
 * 1..4 granules, sometimes up to 16 or 64, and 1 in 5000 the whole region.
 * Sets *@first and *@count (count >= 1, first + count <= ng; ng >= 1).
 */
static inline void dg_range(uint64_t *s, uint64_t ng, uint64_t *first, uint64_t *count)
{
	uint64_t k = dg_below(s, 10000), c;

	c = k < 8000 ? 1 + dg_below(s, 4) :
	    k < 9700 ? 1 + dg_below(s, 16) :
	    k < 9998 ? 1 + dg_below(s, 64) : ng;
	*first = c >= ng ? 0 : dg_below(s, ng - c + 1);
	if (c > ng - *first)
		c = ng - *first;
	*count = c;
}

#endif /* DMASVC_TESTS_DIFF_GEN_H */
