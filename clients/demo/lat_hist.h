/* SPDX-License-Identifier: MIT */
/*
 * lat_hist.h - a fixed-size log-linear latency histogram for the demo.
 *
 * Values are nanoseconds.  Bucket = (position of the highest set bit,
 * next LAT_SUB_BITS bits), so the relative error of a percentile is below
 * 1 / 2^LAT_SUB_BITS (6 %); memory is constant whatever the sample count.
 */
#ifndef DMASVC_DEMO_LAT_HIST_H
#define DMASVC_DEMO_LAT_HIST_H

#include <stdint.h>

#define LAT_SUB_BITS 4
#define LAT_BUCKETS (64 << LAT_SUB_BITS)

struct lat_hist {
	uint64_t count;
	uint64_t buckets[LAT_BUCKETS];
};

/* lat_hist_add: record one sample of @ns nanoseconds. */
void lat_hist_add(struct lat_hist *h, uint64_t ns);

/* lat_hist_pct: the @pct-th percentile (0 < pct <= 100) in ns; 0 if empty. */
uint64_t lat_hist_pct(const struct lat_hist *h, double pct);

/* lat_fmt: "812us", "3.4ms", "1.20s" into @buf (>= 16 bytes); returns buf. */
const char *lat_fmt(char *buf, uint64_t ns);

#endif /* DMASVC_DEMO_LAT_HIST_H */
