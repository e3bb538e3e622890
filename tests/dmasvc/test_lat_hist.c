/* SPDX-License-Identifier: MIT */
/*
 * test_lat_hist.c - the demo's latency histogram: percentiles of known
 * distributions come back within the bucket error (1/16), the empty
 * histogram reports 0, and the formatter picks sensible units.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "lat_hist.h"

static void assert_close(uint64_t got, uint64_t want)
{
	double err = got > want ? (double)(got - want) : (double)(want - got);

	cr_assert_leq(err, (double)want / 16.0 + 1.0, "got %lu, want %lu", (unsigned long)got,
		      (unsigned long)want);
}

Test(lat_hist, uniform_percentiles)
{
	static struct lat_hist h;

	for (uint64_t v = 1; v <= 100000; v++)
		lat_hist_add(&h, v * 1000); /* 1 us .. 100 ms */
	cr_assert_eq(h.count, 100000);
	assert_close(lat_hist_pct(&h, 50), 50000 * 1000ull);
	assert_close(lat_hist_pct(&h, 99), 99000 * 1000ull);
	assert_close(lat_hist_pct(&h, 100), 100000 * 1000ull);
}

Test(lat_hist, small_and_skewed)
{
	static struct lat_hist h;

	cr_assert_eq(lat_hist_pct(&h, 50), 0, "empty");
	for (int i = 0; i < 98; i++)
		lat_hist_add(&h, 7);
	lat_hist_add(&h, 3000000000ull);
	lat_hist_add(&h, 3000000000ull);
	cr_assert_eq(lat_hist_pct(&h, 50), 7, "values below 16 are exact");
	assert_close(lat_hist_pct(&h, 99), 3000000000ull);
}

Test(lat_hist, format_units)
{
	char b[16];

	cr_assert_str_eq(lat_fmt(b, 1500), "1.5us");
	cr_assert_str_eq(lat_fmt(b, 250000), "250us");
	cr_assert_str_eq(lat_fmt(b, 12300000), "12.3ms");
	cr_assert_str_eq(lat_fmt(b, 2500000000ull), "2.50s");
}
