/* SPDX-License-Identifier: MIT */
/*
 * stats.c - log-linear latency histogram and counter sums; see
 * stats_priv.h for the bucket layout.
 */
#include <string.h>

#include "stats_priv.h"

unsigned int hist_bucket(uint64_t v)
{
	unsigned int e, sub;

	if (v < HIST_LINEAR)
		return (unsigned int)v;
	e = 63u - (unsigned int)__builtin_clzll(v); /* 4..63 */
	sub = (unsigned int)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
	return HIST_LINEAR + (e - 4) * HIST_SUB + sub;
}

uint64_t hist_bucket_max(unsigned int idx)
{
	unsigned int e, sub;
	uint64_t lo, width;

	if (idx < HIST_LINEAR)
		return idx;
	if (idx >= HIST_BUCKETS)
		return UINT64_MAX;
	e = (idx - HIST_LINEAR) / HIST_SUB + 4;
	sub = (idx - HIST_LINEAR) % HIST_SUB;
	width = 1ull << (e - HIST_SUB_BITS);
	lo = ((uint64_t)HIST_SUB + sub) * width;
	return lo + (width - 1);
}

void hist_record(struct hist *h, uint64_t v)
{
	h->bucket[hist_bucket(v)]++;
	h->count++;
}

void hist_add(struct hist *dst, const struct hist *src)
{
	for (unsigned int i = 0; i < HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
}

uint64_t hist_percentile(const struct hist *h, double pct)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	if (pct > 100.0)
		pct = 100.0;
	/* rank = ceil(count * pct / 100), at least 1 */
	rank = (uint64_t)((double)h->count * pct / 100.0);
	if ((double)rank < (double)h->count * pct / 100.0)
		rank++;
	if (rank == 0)
		rank = 1;
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank)
			return hist_bucket_max(i);
	}
	return hist_bucket_max(HIST_BUCKETS - 1);
}

void hist_fold_log2(const struct hist *h, uint64_t *out, unsigned int n)
{
	memset(out, 0, n * sizeof(*out));
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		/* every value of bucket i has the bit length of its upper bound */
		uint64_t max = hist_bucket_max(i);
		unsigned int bits = max ? 64u - (unsigned int)__builtin_clzll(max) : 0;

		out[bits < n ? bits : n - 1] += h->bucket[i];
	}
}

void lat_total_record(struct lat_total *t, uint64_t ns, uint64_t n)
{
	t->h.bucket[hist_bucket(ns)] += n;
	t->h.count += n;
	t->sum_ns += ns * n;
}

void lat_record(struct lat_window *w, uint64_t ns)
{
	hist_record(&w->cur, ns);
}

void lat_roll(struct lat_window *w)
{
	w->prev = w->cur;
	memset(&w->cur, 0, sizeof(w->cur));
}

uint64_t lat_percentile(const struct lat_window *w, double pct)
{
	struct hist sum = w->prev;

	hist_add(&sum, &w->cur);
	return hist_percentile(&sum, pct);
}

void counters_add(struct dsvc_counters *dst, const struct dsvc_counters *src)
{
	dst->events += src->events;
	dst->events_failed += src->events_failed;
	dst->map_calls += src->map_calls;
	dst->unmap_calls += src->unmap_calls;
	dst->resume_repair_maps += src->resume_repair_maps;
	dst->resume_repair_unmaps += src->resume_repair_unmaps;
}
