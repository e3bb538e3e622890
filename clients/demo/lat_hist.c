/* SPDX-License-Identifier: MIT */
/* lat_hist.c - the demo's log-linear latency histogram (see lat_hist.h). */
#include <stdio.h>

#include "lat_hist.h"

static unsigned bucket_of(uint64_t ns)
{
	unsigned msb;

	if (ns < (1u << LAT_SUB_BITS))
		return (unsigned)ns;
	msb = 63u - (unsigned)__builtin_clzll(ns);
	return ((msb - LAT_SUB_BITS + 1) << LAT_SUB_BITS) |
	       (unsigned)((ns >> (msb - LAT_SUB_BITS)) & ((1u << LAT_SUB_BITS) - 1));
}

/* Middle value of bucket @b (inverse of bucket_of). */
static uint64_t bucket_mid(unsigned b)
{
	unsigned hi = b >> LAT_SUB_BITS, lo = b & ((1u << LAT_SUB_BITS) - 1);
	uint64_t base, width;

	if (hi == 0)
		return lo;
	base = (uint64_t)((1u << LAT_SUB_BITS) | lo) << (hi - 1);
	width = 1ull << (hi - 1);
	return base + width / 2;
}

void lat_hist_add(struct lat_hist *h, uint64_t ns)
{
	h->buckets[bucket_of(ns)]++;
	h->count++;
}

uint64_t lat_hist_pct(const struct lat_hist *h, double pct)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	rank = (uint64_t)((double)h->count * pct / 100.0 + 0.5);
	if (rank < 1)
		rank = 1;
	for (unsigned b = 0; b < LAT_BUCKETS; b++) {
		seen += h->buckets[b];
		if (seen >= rank)
			return bucket_mid(b);
	}
	return bucket_mid(LAT_BUCKETS - 1);
}

const char *lat_fmt(char *buf, uint64_t ns)
{
	if (ns < 10000)
		snprintf(buf, 16, "%.1fus", (double)ns / 1e3);
	else if (ns < 1000000)
		snprintf(buf, 16, "%.0fus", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, 16, "%.1fms", (double)ns / 1e6);
	else
		snprintf(buf, 16, "%.2fs", (double)ns / 1e9);
	return buf;
}
