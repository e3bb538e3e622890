/* SPDX-License-Identifier: MIT */
/*
 * stats_priv.h - counters and the latency histogram.  Do not include from
 * outside dmasvc/.
 *
 * Latency is measured service-side: from the moment an SQE is drained from
 * its ring to the moment its CQE is posted (the client's own queueing before
 * the drain is not included).
 *
 * The histogram is log-linear: values below HIST_LINEAR (16 ns) get one
 * bucket each; above, each power of two [2^e, 2^(e+1)) is split into
 * HIST_SUB (8) equal buckets, so a reported percentile is the upper bound of
 * a bucket at most 12.5% wider than its lower bound.  Fixed size (HIST_BUCKETS
 * counters, ~4 KiB): no unbounded memory whatever the input.
 *
 * A "window" is two histograms: the current one and the previous one.  The
 * stats timer rolls it (previous := current, current := empty), so
 * percentiles describe the last one to two timer periods.
 *
 * Threading: all of it is touched by the event-loop thread only.
 */
#ifndef DMASVC_STATS_PRIV_H
#define DMASVC_STATS_PRIV_H

#include <stdint.h>

#define HIST_LINEAR 16
#define HIST_SUB_BITS 3
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_LINEAR + (64 - 4) * HIST_SUB)

struct hist {
	uint64_t count;              /* values recorded */
	uint64_t bucket[HIST_BUCKETS];
};

struct lat_window {
	struct hist cur;
	struct hist prev;
};

/*
 * Since-start latency: every value recorded, never rolled (the service's
 * Prometheus histogram); the sum in ns wraps after 584 years.
 */
struct lat_total {
	struct hist h;
	uint64_t sum_ns;
};

/* Event and backend-call counters of one session (and summed service-wide). */
struct dsvc_counters {
	uint64_t events;        /* SQEs completed (any result) */
	uint64_t events_failed; /* ... with res != 0 */
	uint64_t map_calls;     /* backend map ops issued */
	uint64_t unmap_calls;   /* backend unmap ops issued */
	/* granules replay events of a resumed session had to map / unmap
	 * (docs/restart.md: repairs; 0 after a consistent resume) */
	uint64_t resume_repair_maps;
	uint64_t resume_repair_unmaps;
};

/* hist_bucket: the bucket index of @v (always < HIST_BUCKETS). */
unsigned int hist_bucket(uint64_t v);

/* hist_bucket_max: the largest value that falls into bucket @idx. */
uint64_t hist_bucket_max(unsigned int idx);

/* hist_record: count @v once. */
void hist_record(struct hist *h, uint64_t v);

/* hist_add: *@dst += *@src, bucket by bucket. */
void hist_add(struct hist *dst, const struct hist *src);

/*
 * hist_percentile: the upper bound of the bucket holding the @pct-th
 * percentile (0 < pct <= 100) of @h.  Returns 0 when @h is empty.
 */
uint64_t hist_percentile(const struct hist *h, double pct);

/*
 * hist_fold_log2: @out[k] (0 <= k < @n) = the values of @h whose bit length
 * is k, the last entry also every longer one (the layout of
 * dmasvc_stat_service.latency_log2).  Exact: a power of two starts a
 * bucket.  Needs @n >= 2.
 */
void hist_fold_log2(const struct hist *h, uint64_t *out, unsigned int n);

/* lat_total_record: count @n values of @ns each. */
void lat_total_record(struct lat_total *t, uint64_t ns, uint64_t n);

/* lat_record / lat_roll / lat_percentile: the two-histogram window above. */
void lat_record(struct lat_window *w, uint64_t ns);
void lat_roll(struct lat_window *w);
uint64_t lat_percentile(const struct lat_window *w, double pct);

/* counters_add: *@dst += *@src. */
void counters_add(struct dsvc_counters *dst, const struct dsvc_counters *src);

#endif /* DMASVC_STATS_PRIV_H */
