/* SPDX-License-Identifier: MIT */
/*
 * gran_budget.c - per-space mapping budget: reserve each region's worst-case
 * area count at registration, refuse with numbers and a suggested granule.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "dmasvc/budget.h"
#include "dmasvc/granule.h"

void gran_budget_init(struct gran_budget *b, uint64_t limit)
{
	b->limit = limit ? limit : UINT64_MAX;
	b->reserved = 0;
}

uint64_t gran_budget_free_areas(const struct gran_budget *b)
{
	if (b->limit == UINT64_MAX)
		return UINT64_MAX;
	return b->limit - b->reserved;
}

uint64_t gran_budget_suggest_granule(uint64_t size, uint64_t areas)
{
	uint64_t g = GRAN_MIN_GRANULE;

	if (!areas)
		return 0;
	/* ceil(size / g) <= areas; stop before g overflows. */
	while (size / g + (size % g != 0) > areas) {
		if (g >> 63)
			return 0;
		g <<= 1;
	}
	return g;
}

int gran_budget_reserve(struct gran_budget *b, uint64_t size, uint64_t granule,
			char *msg, size_t msglen)
{
	uint64_t need = size / granule, avail = gran_budget_free_areas(b);
	uint64_t g;
	int n;

	if (b->limit == UINT64_MAX || need <= avail) {
		if (b->limit != UINT64_MAX)
			b->reserved += need;
		return 0;
	}
	if (msg && msglen) {
		n = snprintf(msg, msglen,
			     "mapping budget exceeded: a region of %" PRIu64
			     " bytes at granule %" PRIu64 " needs up to %" PRIu64
			     " mappings, but the space allows %" PRIu64 " (%" PRIu64
			     " reserved, %" PRIu64 " free)",
			     size, granule, need, b->limit, b->reserved, avail);
		g = gran_budget_suggest_granule(size, avail);
		if (n >= 0 && (size_t)n < msglen) {
			if (g)
				snprintf(msg + n, msglen - (size_t)n,
					 "; the smallest granule that fits is %" PRIu64
					 " bytes (%" PRIu64 " mappings)",
					 g, size / g + (size % g != 0));
			else
				snprintf(msg + n, msglen - (size_t)n,
					 "; no granule fits: the space has no free mappings");
		}
	}
	return -ENOSPC;
}

void gran_budget_release(struct gran_budget *b, uint64_t size, uint64_t granule)
{
	uint64_t need = size / granule;

	if (b->limit == UINT64_MAX)
		return;
	b->reserved = need <= b->reserved ? b->reserved - need : 0;
}
