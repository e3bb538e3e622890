/* SPDX-License-Identifier: MIT */
/*
 * bitmap_priv.h - libdmasvc internal: the populated bitmap of a region.
 * Do not include directly from outside clients/libdmasvc.
 *
 * One bit per granule; bit i covers region bytes [i * granule, (i + 1) *
 * granule).  A set bit means "the service completed a populate of this
 * granule and no successful discard since".  Vocabulary: @first is a bit
 * index, @count a number of bits, end = first + count (exclusive).
 *
 * Pure code, no locking: the owner (struct cl_region) is guarded by the
 * client's state_lock.
 */
#ifndef DMASVC_BITMAP_PRIV_H
#define DMASVC_BITMAP_PRIV_H

#include <stdbool.h>
#include <stdint.h>

struct cl_bitmap {
	uint64_t nbits;     /* immutable after cl_bitmap_init */
	uint64_t *words;    /* (nbits + 63) / 64 words; bits past nbits stay 0 */
	uint64_t set_bits;  /* popcount of words, kept in step */
};

/*
 * cl_bitmap_init: all-clear bitmap of @nbits bits (nbits >= 1).
 * Returns 0, -EINVAL for 0 bits or a size that overflows, -ENOMEM.
 */
int cl_bitmap_init(struct cl_bitmap *b, uint64_t nbits);

/* cl_bitmap_destroy: free the words; the bitmap may be init'ed again. */
void cl_bitmap_destroy(struct cl_bitmap *b);

/*
 * cl_bitmap_set / cl_bitmap_clear: set or clear bits [first, first + count).
 * The caller guarantees the range lies inside the bitmap (see
 * cl_range_to_bits); count 0 is a no-op.
 */
void cl_bitmap_set(struct cl_bitmap *b, uint64_t first, uint64_t count);
void cl_bitmap_clear(struct cl_bitmap *b, uint64_t first, uint64_t count);

/* cl_bitmap_test: bit @i (i < nbits). */
bool cl_bitmap_test(const struct cl_bitmap *b, uint64_t i);

/* cl_bitmap_weight: number of set bits (O(1)). */
static inline uint64_t cl_bitmap_weight(const struct cl_bitmap *b)
{
	return b->set_bits;
}

/*
 * cl_bitmap_next_run: find the first maximal run of set bits starting at or
 * after @from.  Returns true and sets *@first / *@count, or false when there
 * is none.  Walks whole zero words at once.
 */
bool cl_bitmap_next_run(const struct cl_bitmap *b, uint64_t from, uint64_t *first,
			uint64_t *count);

/*
 * cl_range_to_bits: check an event's byte range against a region of
 * @size bytes at @granule (a power of two) and convert it to bits.
 * Returns 0 and sets *@first / *@count; -EINVAL when @length is 0 or
 * @offset / @length are not granule-aligned; -ERANGE when the range does
 * not fit in the region (overflow included).
 */
int cl_range_to_bits(uint64_t size, uint64_t granule, uint64_t offset, uint64_t length,
		     uint64_t *first, uint64_t *count);

/*
 * cl_region_geom_check: the local sanity check of a region's geometry
 * (the service checks it again, with the same rules and codes).  Returns 0,
 * -EINVAL (size 0, granule not a power of two >= 4096, size / iova /
 * mem_offset not granule-aligned) or -ERANGE (the last IOVA or the end in
 * the memory overflows).
 */
int cl_region_geom_check(uint64_t mem_offset, uint64_t size, uint64_t iova, uint64_t granule);

#endif /* DMASVC_BITMAP_PRIV_H */
