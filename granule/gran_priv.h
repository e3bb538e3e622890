/* SPDX-License-Identifier: MIT */
/*
 * gran_priv.h - private to granule/; do not include directly from outside.
 *
 * The two-level bitmap: a top array of leaf pointers, one per 32768
 * granules, allocated at registration; a leaf (its bits plus a count of set
 * bits) is allocated on demand and given up by gran_bm_trim() once empty.
 * The last leaf given up is kept as the bitmap's spare (all zero, as an
 * empty leaf is) and the next leaf needed takes it: a region whose one
 * populated page comes and goes (a confidential VM's shared page, a
 * synchronous conversion) neither allocates nor zeroes 4 KiB each time.
 * Setting a bit needs its leaf to exist (gran_bm_ensure() first), so the
 * commit paths, which only set bits whose leaves were ensured while
 * preparing, cannot fail.  Clearing never frees (so an audit can clear a
 * run and set back what is still held); callers trim afterwards.
 *
 * Vocabulary: bit indices are granule indices; [from, end) ranges.
 */
#ifndef DMASVC_GRAN_PRIV_H
#define DMASVC_GRAN_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "dmasvc/granule.h"

/* Heavier self-checks run only in debug-check builds (meson debug_checks). */
#ifndef DMASVC_DEBUG
#define DMASVC_DEBUG 0
#endif

#define GRAN_LEAF_SHIFT 15
#define GRAN_LEAF_BITS (1ull << GRAN_LEAF_SHIFT)
#define GRAN_LEAF_WORDS (GRAN_LEAF_BITS / 64)

struct gran_leaf {
	uint64_t count; /* set bits in w[] */
	uint64_t w[GRAN_LEAF_WORDS];
};

/* Invariants: count = sum of leaf counts; a NULL leaf has no set bit;
 * spare, if not NULL, is all zero and in no slot of leaves[]. */
struct gran_bm {
	uint64_t nbits;
	uint64_t nleaves;
	uint64_t count;
	struct gran_leaf **leaves;
	struct gran_leaf *spare;
};

int gran_bm_init(struct gran_bm *bm, uint64_t nbits);
void gran_bm_destroy(struct gran_bm *bm);
bool gran_bm_test(const struct gran_bm *bm, uint64_t i);
/* Give [from, end) its leaves (the spare first, then new zeroed ones).
 * Returns 0, or -ENOMEM with the leaves made so far kept (trim frees them). */
int gran_bm_ensure(struct gran_bm *bm, uint64_t from, uint64_t end);
/* Set [from, end); every leaf of the range must exist. */
void gran_bm_set(struct gran_bm *bm, uint64_t from, uint64_t end);
/* Clear [from, end); leaves stay allocated. */
void gran_bm_clear(struct gran_bm *bm, uint64_t from, uint64_t end);
/* Give up the empty leaves overlapping [from, end): the first becomes the
 * spare if there is none, the others are freed. */
void gran_bm_trim(struct gran_bm *bm, uint64_t from, uint64_t end);
/* First set (clear) bit in [from, end), or end. */
uint64_t gran_bm_next_set(const struct gran_bm *bm, uint64_t from, uint64_t end);
uint64_t gran_bm_next_clear(const struct gran_bm *bm, uint64_t from, uint64_t end);

/*
 * A registered region.  Geometry (d, nr_granules, shift) is immutable;
 * bm is changed only by the executor and gran_region_unmap_all() on the
 * owner thread.  budget, if not NULL, outlives the region.
 */
struct gran_region {
	struct gran_region_desc d;
	uint64_t nr_granules;
	unsigned int shift; /* log2(granule) */
	struct gran_bm bm;
	struct gran_budget *budget;
};

/* Byte address helpers for granule @g of @r (no overflow: checked at
 * registration). */
static inline uint64_t gran_iova_of(const struct gran_region *r, uint64_t g)
{
	return r->d.iova + (g << r->shift);
}

static inline uint64_t gran_bytes(const struct gran_region *r, uint64_t n)
{
	return n << r->shift;
}

/*
 * gran_region_resync - after a failed unmap of granules [first, first+count)
 * of @r in @space: clear their bits, then set back every granule the
 * backend still holds according to be_ops.audit.  If the audit fails, set
 * all of them (conservative).  Leaves must exist.  Returns 0 if the audit
 * worked, else its -errno.
 */
int gran_region_resync(struct gran_region *r, const struct be_ops *ops,
		       struct be_space *space, uint64_t first, uint64_t count);

/*
 * gran_bm_check - debug self-check of [from, end): every leaf's count
 * matches its bits.  Returns true when consistent.
 */
bool gran_bm_check(const struct gran_bm *bm, uint64_t from, uint64_t end);

/* Test access (no production caller): */
/* gran_region_test - whether granule @idx (< nr_granules) is mapped. */
bool gran_region_test(const struct gran_region *r, uint64_t idx);

#endif /* DMASVC_GRAN_PRIV_H */
