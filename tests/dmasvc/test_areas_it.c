/* SPDX-License-Identifier: MIT */
/*
 * test_areas_it.c - `dmasvc --areas run` against the real daemon (the
 * software model emulates the kernel's cut): a populate of a run of 4 KiB
 * granules costs one backend map call per 2 MiB, not one per granule (QUERY
 * STATUS map_calls, against a plain service in the same test), also when
 * the run is notified page by page in one batch; page-by-page
 * discards inside such an area cut it, and what stays pinned is exactly
 * the populated pages as the kernel counts them (the daemon's VmPin/VmLck);
 * and a conversion storm ends with the service's view, the client's bitmap,
 * the audit and the kernel's pin count equal.  (Which options may cut:
 * unit/test_options.c.)
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "it_util.h"

#define PAGE 4096ull
#define IOVA (1ull << 32)
#define SIZE (8ull << 20) /* 2048 pages */

static struct it_svc svc;
static int64_t base_vmlck;

static void start_run(void)
{
	static const char *const extra[] = { "--areas", "run", NULL };

	base_vmlck = it_suite_start(&svc, extra);
}

static void stop(void)
{
	it_suite_stop(&svc);
}

TestSuite(areas, .init = start_run, .fini = stop, .timeout = 120);

struct fixture {
	struct dmasvc_client *c;
	struct dmasvc_queue *q;
	int fd, region;
};

static void fx_open(struct fixture *f, const char *sock)
{
	struct dmasvc_region_desc d = { .size = SIZE, .iova = IOVA, .granule = PAGE };
	int mem;

	cr_assert_eq(dmasvc_connect(sock, NULL, &f->c), 0);
	f->fd = it_memfd(SIZE, true);
	cr_assert_geq(f->fd, 0);
	mem = dmasvc_memory_add(f->c, f->fd, SIZE, 0);
	cr_assert_geq(mem, 0, "memory_add: %s", dmasvc_last_error(f->c));
	d.mem_id = (uint32_t)mem;
	f->region = dmasvc_region_add(f->c, &d);
	cr_assert_geq(f->region, 0, "region_add: %s", dmasvc_last_error(f->c));
	cr_assert_eq(dmasvc_queue_open(f->c, 512, &f->q), 0);
}

static void fx_close(struct fixture *f, struct it_svc *s, int64_t base)
{
	char why[256];

	cr_assert_eq(it_check_region(f->c, (uint32_t)f->region, IOVA, why, sizeof(why)), 0,
		     "service != client: %s", why);
	dmasvc_queue_close(f->q);
	dmasvc_disconnect(f->c);
	close(f->fd);
	cr_assert_eq(it_wait_vmlck(s->pid, base, 3000), base, "disconnect unpins all");
}

static struct dmasvc_stat_service status(struct fixture *f)
{
	struct dmasvc_stat_service st;

	cr_assert_eq(dmasvc_query(f->c, DMASVC_QUERY_STATUS, 0, 0, &st, sizeof(st), 1), 1);
	return st;
}

/* Reap @n completions, each with res 0. */
static void reap_all(struct fixture *f, unsigned n)
{
	struct dmasvc_completion cq[64];

	for (unsigned done = 0; done < n;) {
		int got = dmasvc_reap(f->q, cq, 64, 5000);

		cr_assert_gt(got, 0, "completion %u of %u arrives (%d)", done, n, got);
		for (int i = 0; i < got; i++)
			cr_assert_eq(cq[i].res, 0, "event %lu: %d", (unsigned long)cq[i].user_data,
				     cq[i].res);
		done += (unsigned)got;
	}
}

static void populate(struct fixture *f, uint64_t page, uint64_t pages)
{
	cr_assert_eq(it_memfd_prefault(f->fd, page * PAGE, pages * PAGE), 0);
	cr_assert_eq(dmasvc_submit_populate(f->q, (uint32_t)f->region, page * PAGE, pages * PAGE,
					    page), 0);
	reap_all(f, 1);
}

/* Map calls of populating all 2048 pages in one event on @s. */
static uint64_t maps_of_a_whole_populate(struct it_svc *s, int64_t base)
{
	struct fixture f;
	uint64_t before, maps;

	fx_open(&f, s->sock);
	before = status(&f).map_calls;
	populate(&f, 0, SIZE / PAGE);
	maps = status(&f).map_calls - before;
	cr_assert_eq(it_vmlck(s->pid) - base, (int64_t)SIZE, "the kernel counts 8 MiB pinned");
	fx_close(&f, s, base);
	return maps;
}

Test(areas, a_run_is_one_map_per_2_mib)
{
	struct it_svc plain = { 0 };
	int64_t plain_base;
	uint64_t runs, granules;

	runs = maps_of_a_whole_populate(&svc, base_vmlck);
	plain_base = it_suite_start(&plain, NULL);
	granules = maps_of_a_whole_populate(&plain, plain_base);
	it_suite_stop(&plain);
	cr_assert_eq(runs, SIZE >> 21, "--areas run: one map per 2 MiB (%llu)",
		     (unsigned long long)runs);
	cr_assert_eq(granules, SIZE / PAGE, "--areas granule: one per page (%llu)",
		     (unsigned long long)granules);
}

Test(areas, discards_cut_the_area_and_unpin_exactly)
{
	struct fixture f;
	uint64_t before;

	fx_open(&f, svc.sock);
	populate(&f, 0, 512); /* one area of 2 MiB */
	before = status(&f).unmap_calls;
	cr_assert_eq(dmasvc_queue_batch_begin(f.q), 0);
	for (unsigned p = 100; p < 164; p++)
		cr_assert_eq(dmasvc_submit_discard(f.q, (uint32_t)f.region, p * PAGE, PAGE, p), 0);
	cr_assert_eq(dmasvc_queue_batch_end(f.q), 0);
	reap_all(&f, 64);
	cr_assert_eq(status(&f).unmap_calls - before, 1, "64 pages out of one area: one cut");
	cr_assert_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), 448 * PAGE);
	cr_assert_eq(it_vmlck(svc.pid) - base_vmlck, (int64_t)(448 * PAGE),
		     "the kernel counts exactly the 448 pages left pinned");
	/* Discard a page of each piece and populate the hole back. */
	cr_assert_eq(dmasvc_submit_discard(f.q, (uint32_t)f.region, 0, PAGE, 1000), 0);
	cr_assert_eq(dmasvc_submit_discard(f.q, (uint32_t)f.region, 511 * PAGE, PAGE, 1001), 0);
	reap_all(&f, 2);
	populate(&f, 100, 64);
	cr_assert_eq(it_vmlck(svc.pid) - base_vmlck, (int64_t)(510 * PAGE));
	fx_close(&f, &svc, base_vmlck);
}

Test(areas, a_run_notified_page_by_page_is_one_map)
{
	struct fixture f;
	uint64_t before;

	fx_open(&f, svc.sock);
	cr_assert_eq(it_memfd_prefault(f.fd, 0, 64 * PAGE), 0);
	before = status(&f).map_calls;
	cr_assert_eq(dmasvc_queue_batch_begin(f.q), 0);
	for (unsigned p = 0; p < 64; p++)
		cr_assert_eq(dmasvc_submit_populate(f.q, (uint32_t)f.region, p * PAGE, PAGE, p), 0);
	cr_assert_eq(dmasvc_queue_batch_end(f.q), 0);
	reap_all(&f, 64);
	cr_assert_eq(status(&f).map_calls - before, 1, "64 one-page notes of one run: one map");
	cr_assert_eq(it_vmlck(svc.pid) - base_vmlck, (int64_t)(64 * PAGE));
	fx_close(&f, &svc, base_vmlck);
}

Test(areas, conversion_storm_keeps_service_client_and_kernel_equal)
{
	struct fixture f;
	uint64_t seed = 12345, pages = SIZE / PAGE, populated;
	unsigned posted = 0;

	fx_open(&f, svc.sock);
	populate(&f, 0, pages);
	for (unsigned i = 0; i < 4000; i++) {
		uint64_t p, n;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		p = (seed >> 33) % pages;
		n = 1 + (seed >> 20) % 8;
		if (p + n > pages)
			n = pages - p;
		if ((seed >> 12) & 1) {
			cr_assert_eq(it_memfd_prefault(f.fd, p * PAGE, n * PAGE), 0);
			cr_assert_eq(dmasvc_submit_populate(f.q, (uint32_t)f.region, p * PAGE,
							    n * PAGE, i), 0);
		} else {
			cr_assert_eq(dmasvc_submit_discard(f.q, (uint32_t)f.region, p * PAGE,
							   n * PAGE, i), 0);
		}
		if (++posted == 256) {
			reap_all(&f, posted);
			posted = 0;
		}
	}
	reap_all(&f, posted);
	populated = dmasvc_region_populated_bytes(f.c, (uint32_t)f.region);
	cr_assert_eq(it_vmlck(svc.pid) - base_vmlck, (int64_t)populated,
		     "the kernel counts what the client thinks is populated (%llu bytes)",
		     (unsigned long long)populated);
	fx_close(&f, &svc, base_vmlck);
}
