/* SPDX-License-Identifier: MIT */
/*
 * plan_build.c - the planner: copy a burst, cut it into stages of disjoint
 * events, and prepare one stage from the current region state: per-event
 * job counts, the windows of map jobs (filled one at a time, so memory does
 * not grow with the granules) and the coalesced unmap calls (see plan.h for
 * the rules).
 *
 * Vocabulary: granule ranges [first, first + count) = [first, end).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gran_priv.h"
#include "plan_priv.h"

static bool event_valid(const struct gran_event *e)
{
	uint64_t end;

	if (!e->region || !e->count ||
	    (e->op != GRAN_OP_POPULATE && e->op != GRAN_OP_DISCARD))
		return false;
	return !__builtin_add_overflow(e->first, e->count, &end) &&
	       end <= e->region->nr_granules;
}

/*
 * The events of the stage being cut, for the overlap check: pairwise
 * disjoint, sorted by (region, first), so an event overlaps one of them
 * exactly when it overlaps its neighbours in that order.
 */
struct stage_key {
	uintptr_t region;
	uint64_t first, end;
};

/* Whether (@region, @first) sorts after @k's start. */
static bool key_after(const struct stage_key *k, uintptr_t region, uint64_t first)
{
	return region > k->region || (region == k->region && first > k->first);
}

/*
 * Whether @e overlaps an event of the stage @k[0..@n) (sorted, disjoint);
 * *@pos is where @e goes in that order.  O(1) for an event after every
 * other (a burst in address order), O(log n) else.
 */
static bool stage_overlaps(const struct stage_key *k, size_t n, const struct gran_event *e,
			   size_t *pos)
{
	uintptr_t r = (uintptr_t)e->region;
	size_t lo = 0, hi = n;

	if (n && key_after(&k[n - 1], r, e->first))
		lo = n;
	while (lo < hi) { /* the first key not before e */
		size_t mid = lo + (hi - lo) / 2;

		if (key_after(&k[mid], r, e->first))
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	if (lo < n && k[lo].region == r && k[lo].first < e->first + e->count)
		return true;
	return lo > 0 && k[lo - 1].region == r && k[lo - 1].end > e->first;
}

int gran_plan_build(const struct gran_event *events, size_t n,
		    struct gran_plan **out)
{
	struct stage_key *keys;
	struct gran_plan *p;
	size_t i, nk = 0;

	if (!n || !events)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!event_valid(&events[i]))
			return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ev = malloc(n * sizeof(*p->ev));
	p->stage_start = malloc((n + 1) * sizeof(*p->stage_start));
	p->comp = calloc(n, sizeof(*p->comp));
	keys = malloc(n * sizeof(*keys));
	if (!p->ev || !p->stage_start || !p->comp || !keys) {
		free(keys);
		gran_plan_free(p);
		return -ENOMEM;
	}
	memcpy(p->ev, events, n * sizeof(*p->ev));
	p->n = n;
	p->window = GRAN_PLAN_WINDOW_JOBS;

	/* A new stage begins at an event that overlaps one of the current
	 * stage's events: inside a stage every event is disjoint.  The stage's
	 * events are kept sorted (keys): O(n) for a burst in address order, a
	 * binary search and a memmove of 24-byte keys per event out of order;
	 * comparing each event with every earlier one of its stage cost 0.2 ms
	 * for 512 one-page discards (bench/RESULTS.md, "issue 16, Dec 7 (ninth
	 * pass)"). */
	p->stage_start[0] = 0;
	p->nr_stages = 1;
	for (i = 0; i < n; i++) {
		const struct gran_event *e = &p->ev[i];
		size_t pos;

		if (stage_overlaps(keys, nk, e, &pos)) {
			p->stage_start[p->nr_stages++] = i;
			nk = pos = 0;
		}
		memmove(&keys[pos + 1], &keys[pos], (nk - pos) * sizeof(*keys));
		keys[pos] = (struct stage_key){ (uintptr_t)e->region, e->first, e->first + e->count };
		nk++;
	}
	free(keys);
	p->stage_start[p->nr_stages] = n;
	*out = p;
	return 0;
}

void gran_plan_set_window(struct gran_plan *p, size_t max_jobs)
{
	p->window = max_jobs ? max_jobs : GRAN_PLAN_WINDOW_JOBS;
}

void gran_plan_set_run_max(struct gran_plan *p, uint64_t bytes)
{
	p->run_max = bytes;
}

size_t gran_plan_nr_stages(const struct gran_plan *p)
{
	return p->nr_stages;
}

void plan_stage_release(struct gran_plan *p)
{
	free(p->st.jobs);
	free(p->st.job_first);
	free(p->st.job_count);
	free(p->st.unmaps);
	free(p->segs);
	memset(&p->st, 0, sizeof(p->st));
	p->segs = NULL;
	p->nr_segs = 0;
	p->prepared = false;
}

void gran_plan_free(struct gran_plan *p)
{
	if (!p)
		return;
	plan_stage_release(p);
	free(p->ev);
	free(p->stage_start);
	free(p->comp);
	free(p);
}

uint64_t plan_job_granule(const struct gran_region *r,
			  const struct gran_map_job *j)
{
	return (j->iova - r->d.iova) >> r->shift;
}

/* Granules one map job of @p may cover in @r: its run cap, >= 1. */
static uint64_t run_cap(const struct gran_plan *p, const struct gran_region *r)
{
	uint64_t g = p->run_max >> r->shift;

	return g ? g : 1;
}

/* Map jobs for the unmapped granules of [first, end) in @r: one per
 * granule, or with a run cap one per @cap granules of each unmapped run. */
static uint64_t count_jobs(const struct gran_region *r, uint64_t first,
			   uint64_t end, uint64_t cap)
{
	uint64_t s, e, n = 0;

	for (s = gran_bm_next_clear(&r->bm, first, end); s < end;
	     s = gran_bm_next_clear(&r->bm, e, end)) {
		e = gran_bm_next_set(&r->bm, s, end);
		n += (e - s + cap - 1) / cap;
	}
	return n;
}

/* Runs of mapped granules of [first, end) in @r. */
static uint64_t count_runs(const struct gran_region *r, uint64_t first,
			   uint64_t end)
{
	uint64_t s, e, n = 0;

	for (s = gran_bm_next_set(&r->bm, first, end); s < end;
	     s = gran_bm_next_set(&r->bm, e, end)) {
		e = gran_bm_next_clear(&r->bm, s, end);
		n++;
	}
	return n;
}

/*
 * Fill at most @cap jobs of populate event @ei (event @e) at @jobs, from
 * granule *@cursor on, each of at most @gcap granules of one unmapped run;
 * moves *@cursor past them (to the event's end once no unmapped granule is
 * left).  Returns how many.
 */
static size_t fill_jobs(const struct gran_event *e, size_t ei, uint64_t *cursor,
			struct gran_map_job *jobs, size_t cap, uint64_t gcap)
{
	const struct gran_region *r = e->region;
	uint64_t s = *cursor, x, len, end = e->first + e->count;
	size_t n = 0;

	while (n < cap) {
		s = gran_bm_next_clear(&r->bm, s, end);
		if (s >= end)
			break;
		x = gran_bm_next_set(&r->bm, s, end);
		for (; s < x && n < cap; s += len) {
			struct gran_map_job *j = &jobs[n++];

			len = x - s < gcap ? x - s : gcap;
			j->iova = gran_iova_of(r, s);
			j->length = gran_bytes(r, len);
			j->src.vaddr = (char *)r->d.mem_vaddr + r->d.mem_offset +
				       gran_bytes(r, s);
			j->src.fd = r->d.mem_fd;
			j->src.fd_offset = r->d.mem_offset + gran_bytes(r, s);
			j->prot = r->d.prot;
			j->event = (uint32_t)ei;
			j->event_last = (uint32_t)ei;
			j->res = -ECANCELED;
		}
	}
	*cursor = s;
	return n;
}

/* Move the window cursor to event @ei (or past the stage). */
static void fill_seek(struct gran_plan *p, size_t ei)
{
	p->fill_ev = ei;
	p->fill_g = ei < p->st.ev_end ? p->ev[ei].first : 0;
}

/* Whether event @ei of the prepared stage still takes jobs. */
static bool fillable(const struct gran_plan *p, size_t ei)
{
	return p->ev[ei].op == GRAN_OP_POPULATE && p->st.job_count[ei - p->st.ev_first] &&
	       !p->comp[ei].res;
}

/*
 * With a run cap, once the cursor's event is filled: extend @j, the last job
 * filled, into the next event of the stage when the run goes on there (a
 * fillable populate of the same region that starts where the cursor's event
 * ends, at an unmapped granule) and @j is below the cap; it takes that
 * event's first unmapped granules up to the cap, and the cursor moves into
 * it.  Returns whether it did.
 */
static bool fill_merge_next(struct gran_plan *p, struct gran_map_job *j)
{
	const struct gran_event *ev = &p->ev[p->fill_ev], *nx = ev + 1;
	const struct gran_region *r = ev->region;
	uint64_t cap, have, x, take, end = ev->first + ev->count;

	if (!p->run_max || p->fill_ev + 1 >= p->st.ev_end || j->event_last != p->fill_ev ||
	    p->comp[p->fill_ev].res || j->iova + j->length != gran_iova_of(r, end) ||
	    !fillable(p, p->fill_ev + 1) || nx->region != r || nx->first != end ||
	    gran_bm_test(&r->bm, nx->first))
		return false;
	cap = run_cap(p, r);
	have = j->length >> r->shift;
	if (have >= cap)
		return false;
	x = gran_bm_next_set(&r->bm, nx->first, nx->first + nx->count);
	take = x - nx->first < cap - have ? x - nx->first : cap - have;
	j->length += gran_bytes(r, take);
	j->event_last = (uint32_t)(p->fill_ev + 1);
	p->fill_ev++;
	p->fill_g = nx->first + take;
	return true;
}

size_t plan_fill_window(struct gran_plan *p)
{
	const struct gran_event *ev;
	size_t n = 0;

	while (p->fill_ev < p->st.ev_end && n < p->window) {
		ev = &p->ev[p->fill_ev];
		if (fillable(p, p->fill_ev))
			n += fill_jobs(ev, p->fill_ev, &p->fill_g, p->st.jobs + n,
				       p->window - n, run_cap(p, ev->region));
		if (!fillable(p, p->fill_ev) || p->fill_g >= ev->first + ev->count) {
			if (n && fill_merge_next(p, &p->st.jobs[n - 1]))
				continue; /* fill the rest of the next event */
			fill_seek(p, p->fill_ev + 1);
		}
	}
	p->st.nr_jobs = n;
	return n;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct plan_seg *x = a, *y = b;
	uintptr_t rx = (uintptr_t)x->region, ry = (uintptr_t)y->region;

	if (rx != ry)
		return rx < ry ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* Segments of the stage's discards, sorted, merged into unmap calls. */
static int prepare_unmaps(struct gran_plan *p, size_t ev_first, size_t ev_end)
{
	struct gran_unmap_call *c = NULL;
	uint64_t s, e, end, nsegs = 0;
	size_t i, k = 0;

	for (i = ev_first; i < ev_end; i++)
		if (p->ev[i].op == GRAN_OP_DISCARD)
			nsegs += count_runs(p->ev[i].region, p->ev[i].first,
					    p->ev[i].first + p->ev[i].count);
	if (!nsegs)
		return 0;
	p->segs = malloc(nsegs * sizeof(*p->segs));
	p->st.unmaps = malloc(nsegs * sizeof(*p->st.unmaps));
	if (!p->segs || !p->st.unmaps)
		return -ENOMEM;
	for (i = ev_first; i < ev_end; i++) {
		const struct gran_event *ev = &p->ev[i];
		const struct gran_region *r = ev->region;

		if (ev->op != GRAN_OP_DISCARD)
			continue;
		end = ev->first + ev->count;
		for (s = gran_bm_next_set(&r->bm, ev->first, end); s < end;
		     s = gran_bm_next_set(&r->bm, e, end)) {
			e = gran_bm_next_clear(&r->bm, s, end);
			p->segs[k++] = (struct plan_seg){ ev->region, s, e - s, i, 0 };
		}
	}
	p->nr_segs = k;
	qsort(p->segs, p->nr_segs, sizeof(*p->segs), seg_cmp);

	/* Merge segments that continue each other in the same region. */
	for (i = 0; i < p->nr_segs; i++) {
		struct plan_seg *sg = &p->segs[i];

		if (!c || c->region != sg->region ||
		    c->first + c->count != sg->first) {
			c = &p->st.unmaps[p->st.nr_unmaps++];
			*c = (struct gran_unmap_call){ .region = sg->region,
						       .first = sg->first };
		}
		c->count += sg->count;
		sg->call = p->st.nr_unmaps - 1;
	}
	for (i = 0; i < p->st.nr_unmaps; i++) {
		c = &p->st.unmaps[i];
		c->iova = gran_iova_of(c->region, c->first);
		c->length = gran_bytes(c->region, c->count);
	}
	return 0;
}

/* Job counts, leaf reservations and the first window of the stage's
 * populates; resets their results (comp res) to 0. */
static int prepare_jobs(struct gran_plan *p, size_t ev_first, size_t ev_end)
{
	size_t i, n = ev_end - ev_first, total = 0;
	int ret;

	p->st.job_first = calloc(n, sizeof(*p->st.job_first));
	p->st.job_count = calloc(n, sizeof(*p->st.job_count));
	if (!p->st.job_first || !p->st.job_count)
		return -ENOMEM;
	for (i = ev_first; i < ev_end; i++) {
		struct gran_event *ev = &p->ev[i];

		p->comp[i] = (struct gran_completion){ ev->user_data, 0 };
		if (ev->op != GRAN_OP_POPULATE)
			continue;
		p->st.job_first[i - ev_first] = total;
		p->st.job_count[i - ev_first] =
			count_jobs(ev->region, ev->first, ev->first + ev->count,
				   run_cap(p, ev->region));
		total += p->st.job_count[i - ev_first];
		/* Leaves for every bit the commit may set: commit cannot fail. */
		if (p->st.job_count[i - ev_first]) {
			ret = gran_bm_ensure(&ev->region->bm, ev->first,
					     ev->first + ev->count);
			if (ret)
				return ret;
		}
	}
	p->st.total_jobs = total;
	fill_seek(p, ev_first);
	if (!total)
		return 0;
	p->st.jobs = malloc((total < p->window ? total : p->window) *
			    sizeof(*p->st.jobs));
	if (!p->st.jobs)
		return -ENOMEM;
	plan_fill_window(p);
	return 0;
}

int gran_plan_prepare_stage(struct gran_plan *p, const struct gran_stage **out)
{
	size_t ev_first, ev_end, i;
	int ret;

	if (p->prepared) {
		*out = &p->st;
		return 1;
	}
	if (p->next_stage >= p->nr_stages)
		return 0;
	ev_first = p->stage_start[p->next_stage];
	ev_end = p->stage_start[p->next_stage + 1];
	p->st.ev_first = ev_first;
	p->st.ev_end = ev_end;
	ret = prepare_jobs(p, ev_first, ev_end);
	if (!ret)
		ret = prepare_unmaps(p, ev_first, ev_end);
	if (ret) {
		/* Give back leaves ensured for nothing. */
		for (i = ev_first; i < ev_end; i++)
			gran_bm_trim(&p->ev[i].region->bm, p->ev[i].first,
				     p->ev[i].first + p->ev[i].count);
		plan_stage_release(p);
		return ret;
	}
	p->prepared = true;
	*out = &p->st;
	return 1;
}

const struct gran_completion *gran_plan_completions(const struct gran_plan *p,
						    size_t *n)
{
	*n = p->nr_comp;
	return p->comp;
}

void gran_plan_stats(const struct gran_plan *p, struct gran_exec_stats *out)
{
	*out = p->stats;
}
