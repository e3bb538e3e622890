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
#include <stdint.h>
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
 * disjoint, ordered by (region, first), so an event overlaps one of them
 * exactly when it overlaps the last one that starts before its end (their
 * ends are in the same order as their starts).  While the stage's events
 * come in address order (a VMM's burst, a storm) they are appended to a
 * sorted array and only the last is compared: O(1) per event.  Out of
 * order, a small stage stays an array (binary search and memmove), and a
 * large one is turned into a balanced tree in which the rest of the stage
 * is kept (an AVL tree, insert only: a new stage starts empty): O(log n)
 * per event whatever the order.  An array kept by memmove at any size cost
 * O(n^2) bytes for a burst in descending order (65536 one-granule
 * discards: about a second of the session's executor).
 */
struct stage_key {
	uintptr_t region;
	uint64_t first, end;
};

/* A tree node: a key and its children (indices into the node array, 0 = none). */
struct stage_node {
	struct stage_key k;
	size_t left, right;
	int height; /* of the subtree: 1 for a leaf, 0 for none */
};

/*
 * The stage being cut.  Invariant: in array mode (!root) keys[0..nk) holds
 * the stage sorted; in tree mode (root != 0) node[1..nn] does and keys[] is
 * unused.  node[] has n + 1 entries (node[0] stands for "none"), allocated
 * the first time a stage turns into a tree (an event out of order meets
 * STAGE_ARRAY_MAX events or more) and kept for the burst's later stages.
 */
#define STAGE_ARRAY_MAX 128 /* events a stage out of order keeps in its array */
struct stage_set {
	struct stage_key *keys;
	size_t nk;
	struct stage_node *node;
	size_t nn, root;
};

/* Whether (@region, @first) sorts after @k's start. */
static bool key_after(const struct stage_key *k, uintptr_t region, uint64_t first)
{
	return region > k->region || (region == k->region && first > k->first);
}

static int node_height(const struct stage_set *t, size_t i)
{
	return i ? t->node[i].height : 0;
}

static void node_fix_height(struct stage_set *t, size_t i)
{
	int l = node_height(t, t->node[i].left), r = node_height(t, t->node[i].right);

	t->node[i].height = 1 + (l > r ? l : r);
}

/* Rotate the subtree at @i toward its @right side (else left); returns its new root. */
static size_t node_rotate(struct stage_set *t, size_t i, bool right)
{
	size_t c = right ? t->node[i].left : t->node[i].right;

	if (right) {
		t->node[i].left = t->node[c].right;
		t->node[c].right = i;
	} else {
		t->node[i].right = t->node[c].left;
		t->node[c].left = i;
	}
	node_fix_height(t, i);
	node_fix_height(t, c);
	return c;
}

/* Restore the AVL balance at @i, whose subtrees are AVL trees whose heights
 * differ by at most 2; returns the subtree's new root. */
static size_t node_balance(struct stage_set *t, size_t i)
{
	struct stage_node *n = &t->node[i];
	int bf = node_height(t, n->left) - node_height(t, n->right);

	if (bf > 1) {
		struct stage_node *l = &t->node[n->left];

		if (node_height(t, l->left) < node_height(t, l->right))
			n->left = node_rotate(t, n->left, false);
		return node_rotate(t, i, true);
	}
	if (bf < -1) {
		struct stage_node *r = &t->node[n->right];

		if (node_height(t, r->right) < node_height(t, r->left))
			n->right = node_rotate(t, n->right, true);
		return node_rotate(t, i, false);
	}
	node_fix_height(t, i);
	return i;
}

/* Insert node @x (a key disjoint from every other) under @at; returns the
 * subtree's new root.  Recursion depth <= 1.44 log2(n) + 2. */
static size_t node_insert(struct stage_set *t, size_t at, size_t x)
{
	if (!at)
		return x;
	if (key_after(&t->node[at].k, t->node[x].k.region, t->node[x].k.first))
		t->node[at].right = node_insert(t, t->node[at].right, x);
	else
		t->node[at].left = node_insert(t, t->node[at].left, x);
	return node_balance(t, at);
}

/* A balanced tree of keys[lo, hi) in nodes lo + 1 .. hi; returns its root. */
static size_t node_build(struct stage_set *t, size_t lo, size_t hi)
{
	size_t mid = lo + (hi - lo) / 2, i = mid + 1;

	if (lo >= hi)
		return 0;
	t->node[i].k = t->keys[mid];
	t->node[i].left = node_build(t, lo, mid);
	t->node[i].right = node_build(t, mid + 1, hi);
	node_fix_height(t, i);
	return i;
}

/* Whether @e overlaps a key of the tree: the last key starting before e's end. */
static bool tree_overlaps(const struct stage_set *t, const struct gran_event *e)
{
	uintptr_t r = (uintptr_t)e->region;
	uint64_t end = e->first + e->count;
	size_t at = t->root, best = 0;

	while (at) {
		const struct stage_key *k = &t->node[at].k;

		if (key_after(k, r, end)) { /* k starts before end */
			best = at;
			at = t->node[at].right;
		} else {
			at = t->node[at].left;
		}
	}
	return best && t->node[best].k.region == r && t->node[best].k.end > e->first;
}

/*
 * Whether @e overlaps a key of the array (sorted, disjoint); *@pos is where
 * @e goes in its order.  O(log nk).
 */
static bool array_overlaps(const struct stage_set *t, const struct gran_event *e, size_t *pos)
{
	uintptr_t r = (uintptr_t)e->region;
	size_t lo = 0, hi = t->nk;

	while (lo < hi) { /* the first key not before e */
		size_t mid = lo + (hi - lo) / 2;

		if (key_after(&t->keys[mid], r, e->first))
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	if (lo < t->nk && t->keys[lo].region == r && t->keys[lo].first < e->first + e->count)
		return true;
	return lo > 0 && t->keys[lo - 1].region == r && t->keys[lo - 1].end > e->first;
}

/*
 * Add @e to the stage @t (n: the burst's events, for the tree's size) if it
 * overlaps none of its events; returns 1 if it does (nothing added), 0 if
 * added, -ENOMEM (nothing added).  An event out of order goes into the
 * array by memmove while the stage has fewer than STAGE_ARRAY_MAX events
 * (at most 3 KiB moved: cheaper than the tree's inserts there, svc-bench's
 * discard-rev rows), into the tree from then on.
 */
static int stage_add(struct stage_set *t, const struct gran_event *e, size_t n)
{
	uintptr_t r = (uintptr_t)e->region;
	struct stage_key key = { r, e->first, e->first + e->count };
	const struct stage_key *last = t->nk ? &t->keys[t->nk - 1] : NULL;
	size_t pos;

	if (!t->root) {
		if (!last || key_after(last, r, e->first)) { /* in order: append */
			if (last && last->region == r && last->end > e->first)
				return 1;
			t->keys[t->nk++] = key;
			return 0;
		}
		if (t->nk < STAGE_ARRAY_MAX) {
			if (array_overlaps(t, e, &pos))
				return 1;
			memmove(&t->keys[pos + 1], &t->keys[pos], (t->nk - pos) * sizeof(*t->keys));
			t->keys[pos] = key;
			t->nk++;
			return 0;
		}
		if (!t->node) {
			t->node = malloc((n + 1) * sizeof(*t->node));
			if (!t->node)
				return -ENOMEM;
		}
		t->nn = t->nk;
		t->root = node_build(t, 0, t->nk);
	}
	if (tree_overlaps(t, e))
		return 1;
	t->nn++;
	t->node[t->nn] = (struct stage_node){ key, 0, 0, 1 };
	t->root = node_insert(t, t->root, t->nn);
	return 0;
}

/* Empty the stage (back to array mode). */
static void stage_reset(struct stage_set *t)
{
	t->nk = t->nn = t->root = 0;
}

/* Every array of a plan's block starts 8-byte aligned after the one before. */
_Static_assert(sizeof(struct gran_plan) % 8 == 0 && sizeof(struct gran_event) % 8 == 0 &&
		       sizeof(struct gran_completion) % 8 == 0 && sizeof(struct stage_key) % 8 == 0 &&
		       _Alignof(struct gran_plan) <= 8 && _Alignof(struct gran_event) <= 8 &&
		       _Alignof(struct gran_completion) <= 8 && _Alignof(struct stage_key) <= 8,
	       "the plan's block holds its arrays back to back");

/*
 * A plan for @n events and its arrays in one allocation (one malloc and
 * one free per burst instead of five: the allocator had about 15 % of
 * svc-bench's samples): the plan (zeroed), ev[n], stage_start[n + 1],
 * comp[n] (zeroed) and the cut's keys[n] (*@keys; unused after the cut).
 * Returns NULL when out of memory or when the size overflows.
 */
static struct gran_plan *plan_alloc(size_t n, struct stage_key **keys)
{
	size_t per = sizeof(struct gran_event) + sizeof(size_t) + sizeof(struct gran_completion) +
		     sizeof(struct stage_key);
	struct gran_plan *p;
	char *b;

	if (n > (SIZE_MAX - sizeof(*p) - sizeof(size_t)) / per)
		return NULL;
	b = malloc(sizeof(*p) + sizeof(size_t) + n * per);
	if (!b)
		return NULL;
	p = (struct gran_plan *)b;
	memset(p, 0, sizeof(*p));
	p->ev = (struct gran_event *)(b + sizeof(*p));
	p->stage_start = (size_t *)(p->ev + n);
	p->comp = (struct gran_completion *)(p->stage_start + n + 1);
	memset(p->comp, 0, n * sizeof(*p->comp));
	*keys = (struct stage_key *)(p->comp + n);
	return p;
}

int gran_plan_build(const struct gran_event *events, size_t n,
		    struct gran_plan **out)
{
	struct stage_set st = { 0 };
	struct gran_plan *p;
	size_t i;
	int ret = 0;

	if (!n || !events)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!event_valid(&events[i]))
			return -EINVAL;
	p = plan_alloc(n, &st.keys);
	if (!p)
		return -ENOMEM;
	memcpy(p->ev, events, n * sizeof(*p->ev));
	p->n = n;
	p->window = GRAN_PLAN_WINDOW_JOBS;

	/* A new stage begins at an event that overlaps one of the current
	 * stage's events: inside a stage every event is disjoint (struct
	 * stage_set: O(1) per event in address order, O(log n) else;
	 * comparing each event with every earlier one of its stage cost 0.2 ms
	 * for 512 one-page discards, bench/RESULTS.md, "issue 16, Dec 7 (ninth
	 * pass)"). */
	p->stage_start[0] = 0;
	p->nr_stages = 1;
	for (i = 0; i < n; i++) {
		ret = stage_add(&st, &p->ev[i], n);
		if (ret == 1) {
			p->stage_start[p->nr_stages++] = i;
			stage_reset(&st);
			ret = stage_add(&st, &p->ev[i], n); /* empty: appended */
		}
		if (ret < 0)
			goto out;
	}
	p->stage_start[p->nr_stages] = n;
	*out = p;
out:
	free(st.node);
	if (ret < 0)
		gran_plan_free(p);
	return ret;
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
	free(p->st.job_first); /* and job_count: prepare_jobs */
	free(p->segs);         /* and st.unmaps: prepare_unmaps */
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
	free(p); /* with its arrays: plan_alloc */
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
	/* One block: segs[nsegs], then unmaps[nsegs] (plan_stage_release). */
	_Static_assert(sizeof(struct plan_seg) % _Alignof(struct gran_unmap_call) == 0,
		       "unmaps start aligned after segs");
	if (nsegs > SIZE_MAX / (sizeof(*p->segs) + sizeof(*p->st.unmaps)))
		return -ENOMEM;
	p->segs = malloc(nsegs * (sizeof(*p->segs) + sizeof(*p->st.unmaps)));
	if (!p->segs)
		return -ENOMEM;
	p->st.unmaps = (struct gran_unmap_call *)(p->segs + nsegs);
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

	/* One block: job_first[n], then job_count[n] (plan_stage_release). */
	p->st.job_first = calloc(2 * n, sizeof(*p->st.job_first));
	if (!p->st.job_first)
		return -ENOMEM;
	p->st.job_count = p->st.job_first + n;
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
