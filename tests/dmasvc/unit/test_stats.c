/* SPDX-License-Identifier: MIT */
/*
 * test_stats.c - the log-linear histogram: bucket bounds, relative error,
 * percentiles, the two-histogram window.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "stats_priv.h"

#define DMASVC_TEST_LOG2 40 /* dmasvc_stat_service.latency_log2 */

Test(stats, buckets_cover_and_bound)
{
	unsigned int prev = 0;

	for (uint64_t v = 0; v < 100000; v += (v < 64 ? 1 : v / 13)) {
		unsigned int b = hist_bucket(v);

		cr_assert_lt(b, HIST_BUCKETS);
		cr_assert_geq(b, prev, "buckets are monotonic in the value");
		cr_assert_geq(hist_bucket_max(b), v, "bucket %u max %llu < %llu", b,
			      (unsigned long long)hist_bucket_max(b), (unsigned long long)v);
		if (b > 0)
			cr_assert_lt(hist_bucket_max(b - 1), v, "value %llu belongs to bucket %u",
				     (unsigned long long)v, b);
		/* upper bound at most 12.5% above any value in the bucket */
		cr_assert_leq((double)hist_bucket_max(b), (double)v * 1.125 + 1.0);
		prev = b;
	}
	cr_expect_lt(hist_bucket(UINT64_MAX), HIST_BUCKETS);
	cr_expect_eq(hist_bucket_max(hist_bucket(UINT64_MAX)), UINT64_MAX);
}

Test(stats, percentiles)
{
	static struct hist h;

	memset(&h, 0, sizeof(h));
	cr_expect_eq(hist_percentile(&h, 50), 0, "empty");
	for (uint64_t v = 1; v <= 1000; v++)
		hist_record(&h, v * 1000); /* 1 us .. 1 ms */
	cr_expect_eq(h.count, 1000);
	uint64_t p50 = hist_percentile(&h, 50), p99 = hist_percentile(&h, 99);

	cr_expect(p50 >= 500000 && p50 <= 500000 * 1.125, "p50 %llu", (unsigned long long)p50);
	cr_expect(p99 >= 990000 && p99 <= 990000 * 1.125, "p99 %llu", (unsigned long long)p99);
	cr_expect_geq(hist_percentile(&h, 100), 1000000);
}

Test(stats, window_rolls)
{
	static struct lat_window w;

	memset(&w, 0, sizeof(w));
	lat_record(&w, 100);
	lat_record(&w, 100);
	cr_expect_eq(lat_percentile(&w, 50), hist_bucket_max(hist_bucket(100)));
	lat_roll(&w);
	lat_record(&w, 1000000);
	cr_expect_eq(lat_percentile(&w, 99), hist_bucket_max(hist_bucket(1000000)),
		     "previous and current windows both count");
	lat_roll(&w);
	cr_expect_eq(lat_percentile(&w, 50), hist_bucket_max(hist_bucket(1000000)),
		     "two rolls forget the first window");
	lat_roll(&w);
	lat_roll(&w);
	cr_expect_eq(lat_percentile(&w, 50), 0);
}

Test(stats, counters)
{
	struct dsvc_counters a = { 1, 2, 3, 4 }, b = { 10, 20, 30, 40 };

	counters_add(&a, &b);
	cr_expect_eq(a.events, 11);
	cr_expect_eq(a.events_failed, 22);
	cr_expect_eq(a.map_calls, 33);
	cr_expect_eq(a.unmap_calls, 44);
}

/* The since-start histogram folded to powers of two (STATUS latency_log2):
 * each value lands in the entry of its bit length, the last entry takes
 * everything longer, nothing is lost, and the sum is exact. */
Test(stats, total_folds_to_log2_exactly)
{
	static const uint64_t vals[] = { 0, 1, 2, 3, 15, 16, 17, 1023, 1024, 1025, 45000,
					 16777215, 16777216, (1ull << 38) - 1, 1ull << 38, UINT64_MAX / 2 };
	static struct lat_total t;
	uint64_t out[DMASVC_TEST_LOG2], want[DMASVC_TEST_LOG2] = { 0 }, sum = 0, total = 0;

	memset(&t, 0, sizeof(t));
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint64_t v = vals[i];
		unsigned int bits = v ? 64u - (unsigned int)__builtin_clzll(v) : 0;

		lat_total_record(&t, v, i + 1);
		want[bits < DMASVC_TEST_LOG2 ? bits : DMASVC_TEST_LOG2 - 1] += i + 1;
		sum += v * (i + 1);
	}
	hist_fold_log2(&t.h, out, DMASVC_TEST_LOG2);
	for (unsigned int k = 0; k < DMASVC_TEST_LOG2; k++) {
		cr_expect_eq(out[k], want[k], "entry %u: %llu, want %llu", k, (unsigned long long)out[k],
			     (unsigned long long)want[k]);
		total += out[k];
	}
	cr_expect_eq(total, t.h.count);
	cr_expect_eq(t.sum_ns, sum);
	cr_expect_eq(out[11], 9 + 10, "1024 (x9) and 1025 (x10) have 11 bits");
	cr_expect_eq(out[10], 8, "1023 (x8) has 10");
}
