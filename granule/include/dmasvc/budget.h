/* SPDX-License-Identifier: MIT */
/*
 * budget.h - the mapping budget of one space.
 *
 * A space may hold at most `limit` areas (VFIO type1's dma_entry_limit,
 * 65535 by default; an operator choice for iommufd and the model).  Every
 * region reserves its worst case, size / granule areas, when it is
 * registered, so a populate can never fail later with -ENOSPC; a region
 * whose worst case does not fit is refused up front with a message that
 * names the numbers and the smallest granule that would fit.  This is
 * QEMU's memslot rule: refuse when limit < used + reserved.
 *
 * Not thread safe: the owner of the space (the daemon's control thread)
 * calls it.
 */
#ifndef DMASVC_BUDGET_H
#define DMASVC_BUDGET_H

#include <stddef.h>
#include <stdint.h>

/* Invariant: reserved <= limit.  limit UINT64_MAX means unlimited. */
struct gran_budget {
	uint64_t limit;    /* areas the space may hold */
	uint64_t reserved; /* sum of the registered regions' worst cases */
};

/* gran_budget_init - an empty budget of @limit areas (0 = unlimited). */
void gran_budget_init(struct gran_budget *b, uint64_t limit);

/*
 * gran_budget_reserve - reserve the worst case of a region of @size bytes at
 * @granule (size / granule areas; both already validated, granule != 0).
 * Returns 0, or -ENOSPC when limit < reserved + worst case; then, if @msg is
 * not NULL, writes into it (at most @msglen bytes, NUL terminated) a sentence
 * naming the numbers and the smallest power-of-two granule that would fit
 * (the region's size, iova and offset must then be aligned to it).
 */
int gran_budget_reserve(struct gran_budget *b, uint64_t size, uint64_t granule,
			char *msg, size_t msglen);

/* gran_budget_release - undo gran_budget_reserve() of the same region. */
void gran_budget_release(struct gran_budget *b, uint64_t size, uint64_t granule);

/* gran_budget_free_areas - areas still unreserved (UINT64_MAX if unlimited). */
uint64_t gran_budget_free_areas(const struct gran_budget *b);

/*
 * gran_budget_suggest_granule - the smallest power-of-two granule >= 4 KiB
 * at which a region of @size bytes needs at most @areas areas, or 0 when
 * @areas is 0.
 */
uint64_t gran_budget_suggest_granule(uint64_t size, uint64_t areas);

#endif /* DMASVC_BUDGET_H */
