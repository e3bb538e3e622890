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
 * Granules of [@first, @end) of region @r populated after the admitted
 * events @ev[0..@k): the latest of them that overlaps decides its overlap
 * (populate: all, discard: none), the parts it leaves are asked of the
 * events before it, and what no event touched is read from the region's
 * state.  Recursion depth <= @k; the pieces stay disjoint, so at most
 * 2k + 1 leaves.
 */
static uint64_t populated_after(const struct gran_event *ev, const bool *skip, size_t k,
				struct gran_region *r, uint64_t first, uint64_t end)
{
	uint64_t n = 0;

	for (size_t j = k; j-- > 0;) {
		const struct gran_event *e = &ev[j];
		uint64_t s = e->first > first ? e->first : first;
		uint64_t t = e->first + e->count < end ? e->first + e->count : end;

		if (skip[j] || e->region != r || s >= t)
			continue;
		if (e->op == GRAN_OP_POPULATE)
			n = t - s;
		if (first < s)
			n += populated_after(ev, skip, j, r, first, s);
		if (t < end)
			n += populated_after(ev, skip, j, r, t, end);
		return n;
	}
	gran_region_for_each_run(r, first, end - first, add_run, &n);
	return n;
}

unsigned int session_burst_admit(const struct dsvc_session *s, const struct gran_event *ev,
				 size_t nev, const bool *hole, bool *refused, bool *skip,
				 size_t *first, char *why, size_t whylen)
{
	uint64_t cap = s->cap[OPT_CAP_POPULATED], pop, upper;
	unsigned int nref = 0; /* skip[i]: refused, or a hole: takes no effect */

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
		uint64_t have = populated_after(ev, skip, i, e->region, e->first, e->first + e->count);
		uint64_t add = (e->count - have) * g;

		skip[i] = hole && hole[i];
		if (e->op != GRAN_OP_POPULATE) {
			pop -= have * g <= pop ? have * g : pop;
			continue;
		}
		if (add == 0 || (add <= cap && pop <= cap - add)) { /* re-populating is free */
			if (!skip[i])
				pop += add;
			continue;
		}
		refused[i] = skip[i] = true;
		if (!nref++) {
			*first = i;
			session_cap_refuse(s, OPT_CAP_POPULATED, -EDQUOT, add, pop, why, whylen);
		}
	}
	return nref;
}
