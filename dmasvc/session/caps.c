/* SPDX-License-Identifier: MIT */
/*
 * caps.c - the populated-bytes cap, applied to a burst's events after the
 * residency rule and before it is planned (see session_priv.h, "Caps", and options_priv.h for the caps
 * themselves; the other caps are checked by the operations they bound, in
 * session.c, which also words every refusal: session_cap_refuse).
 *
 * Vocabulary: "populated" is what a session has mapped, in bytes, summed
 * over its regions (gran_region_mapped_bytes); "end" is exclusive.  A
 * populate of a range counts only its granules not already populated, so
 * re-populating is free and a populate at the cap of a populated range is
 * admitted.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "dmasvc/plan.h"
#include "log_priv.h"
#include "session_priv.h"

/* gran_region_for_each_run callback: add a run's granules to *@arg. */
static int add_run(void *arg, struct gran_region *r, uint64_t first, uint64_t count)
{
	(void)r;
	(void)first;
	*(uint64_t *)arg += count;
	return 0;
}

/*
 * The overlay: what the admitted events before the one being judged left
 * in each granule they touched, as disjoint spans sorted by (region,
 * first) in @sp[0..*@n).  A granule no span covers is as the region's state
 * says.  Each granule is read from the region at most once per burst (a
 * span covers it from then on) and each event adds at most 2 spans, so a
 * burst of n events costs O(n^2) span steps plus one walk of the granules
 * it touches (the recursion this replaced was O(n^3) and walked the
 * region again per piece: harmless at 128 events, not at a 4096-entry SQ).
 */
static bool span_before(const struct session_admit_span *sp, const struct gran_region *r,
			uint64_t first)
{
	return (uintptr_t)sp->r < (uintptr_t)r || (sp->r == r && sp->end <= first);
}

/* Index of the first span of @r that ends after @first (or of the first span after @r's). */
static size_t span_lower(const struct session_admit_span *sp, size_t n, const struct gran_region *r,
			 uint64_t first)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (span_before(&sp[mid], r, first))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Granules of [@first, @end) of region @r populated under the overlay. */
static uint64_t span_populated(const struct session_admit_span *sp, size_t n, struct gran_region *r,
			       uint64_t first, uint64_t end)
{
	uint64_t got = 0, pos = first;

	for (size_t i = span_lower(sp, n, r, first); i < n && sp[i].r == r && sp[i].first < end; i++) {
		uint64_t a = sp[i].first > first ? sp[i].first : first;
		uint64_t b = sp[i].end < end ? sp[i].end : end;

		if (pos < a)
			gran_region_for_each_run(r, pos, a - pos, add_run, &got);
		if (sp[i].populated)
			got += b - a;
		pos = b;
	}
	if (pos < end)
		gran_region_for_each_run(r, pos, end - pos, add_run, &got);
	return got;
}

/* Set [@first, @end) of region @r to @populated in the overlay (room: 2 more spans). */
static void span_set(struct session_admit_span *sp, size_t *n, struct gran_region *r,
		     uint64_t first, uint64_t end, bool populated)
{
	size_t i0 = span_lower(sp, *n, r, first), i1 = i0, m = 0;
	struct session_admit_span add[3];

	while (i1 < *n && sp[i1].r == r && sp[i1].first < end)
		i1++;
	if (i0 < i1 && sp[i0].first < first)
		add[m++] = (struct session_admit_span){ r, sp[i0].first, first, sp[i0].populated };
	add[m++] = (struct session_admit_span){ r, first, end, populated };
	if (i0 < i1 && sp[i1 - 1].end > end)
		add[m++] = (struct session_admit_span){ r, end, sp[i1 - 1].end, sp[i1 - 1].populated };
	memmove(&sp[i0 + m], &sp[i1], (*n - i1) * sizeof(*sp));
	memcpy(&sp[i0], add, m * sizeof(*sp));
	*n = *n - (i1 - i0) + m;
}

unsigned int session_burst_admit(const struct dsvc_session *s, const struct gran_event *ev,
				 size_t nev, const bool *hole, bool *refused,
				 struct session_admit_span *spans, size_t *first, char *why,
				 size_t whylen)
{
	uint64_t cap = s->cap[OPT_CAP_POPULATED], pop, upper;
	unsigned int nref = 0;
	size_t nsp = 0;

	for (size_t i = 0; i < nev; i++)
		refused[i] = false;
	/* Fast path: even if every populate mapped all of its range, the
	 * session would stay within its cap (each event's bytes <= its region's
	 * size; the sum saturates). */
	pop = upper = session_usage(s).mapped_bytes;
	for (size_t i = 0; i < nev; i++)
		if (ev[i].op == GRAN_OP_POPULATE &&
		    __builtin_add_overflow(upper, ev[i].count * gran_region_granule(ev[i].region), &upper))
			upper = UINT64_MAX;
	if (upper <= cap)
		return 0;
	for (size_t i = 0; i < nev; i++) {
		const struct gran_event *e = &ev[i];
		uint64_t g = gran_region_granule(e->region);
		uint64_t have = span_populated(spans, nsp, e->region, e->first, e->first + e->count);
		uint64_t add = (e->count - have) * g;

		if (e->op != GRAN_OP_POPULATE) {
			pop -= have * g <= pop ? have * g : pop;
			span_set(spans, &nsp, e->region, e->first, e->first + e->count, false);
			continue;
		}
		if (add == 0 || (add <= cap && pop <= cap - add)) { /* re-populating is free */
			if (!(hole && hole[i])) { /* a refused hole takes no effect */
				pop += add;
				span_set(spans, &nsp, e->region, e->first, e->first + e->count, true);
			}
			continue;
		}
		refused[i] = true;
		if (!nref++) {
			*first = i;
			session_cap_refuse(s, OPT_CAP_POPULATED, -EDQUOT, add, pop, why, whylen);
		}
	}
	return nref;
}
