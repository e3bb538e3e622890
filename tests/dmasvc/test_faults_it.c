/* SPDX-License-Identifier: MIT */
/*
 * test_faults_it.c - backend failures seen through libdmasvc: the service
 * runs with injected soft-model faults (DMASVC_TEST_SOFT_FAULTS, a
 * test-only knob of fault-injection builds).  A populate whose map fails
 * mid-event returns the error and leaves service, bitmap and VmLck as
 * before (all-or-nothing); a discard whose unmap fails returns the error
 * and leaves the granules populated in both the service and the bitmap,
 * a retry succeeds, and a restart replays the still-populated granules.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)
#define G (2 * MiB)
#define IOVA (1ull << 32)

static struct it_svc svc;

static void stop(void)
{
	it_suite_stop(&svc);
}

TestSuite(faults, .fini = stop, .timeout = 60);

struct fx {
	struct dmasvc_client *c;
	int fd, region;
	int64_t base;
};

static void fx_start(struct fx *f, const char *faults)
{
	struct dmasvc_region_desc d = { .size = 32 * MiB, .iova = IOVA, .granule = G };
	int mem;

	cr_assert_eq(setenv("DMASVC_TEST_SOFT_FAULTS", faults, 1), 0);
	cr_assert_eq(it_svc_start(&svc, NULL), 0, "dmasvc starts with faults '%s'", faults);
	f->base = it_vmlck(svc.pid);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &f->c), 0);
	f->fd = it_memfd(d.size, true);
	mem = dmasvc_memory_add(f->c, f->fd, d.size, 0);
	cr_assert_geq(mem, 0);
	d.mem_id = (uint32_t)mem;
	f->region = dmasvc_region_add(f->c, &d);
	cr_assert_geq(f->region, 0);
}

static void fx_check(struct fx *f, int64_t populated)
{
	char why[256];

	cr_assert_eq(dmasvc_region_populated_bytes(f->c, (uint32_t)f->region), populated,
		     "client bitmap");
	cr_assert_eq(it_check_region(f->c, (uint32_t)f->region, IOVA, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(it_wait_vmlck(svc.pid, f->base + populated, 2000), f->base + populated, "VmLck");
}

Test(faults, failed_populate_is_all_or_nothing)
{
	char faults[96];
	struct fx f;

	/* Every map touching granule 10 fails with ENOMEM. */
	snprintf(faults, sizeof(faults), "map_range=0x%llx-0x%llx,map_range_errno=12",
		 (unsigned long long)(IOVA + 10 * G), (unsigned long long)(IOVA + 10 * G));
	fx_start(&f, faults);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 4 * G), 0);
	fx_check(&f, (int64_t)(4 * G));
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 6 * G, 8 * G), -ENOMEM,
		     "granule 10 cannot map");
	fx_check(&f, (int64_t)(4 * G));
	/* Overlapping an already populated run: the old part stays. */
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 2 * G, 10 * G), -ENOMEM);
	fx_check(&f, (int64_t)(4 * G));
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 11 * G, 4 * G), 0, "beyond it works");
	fx_check(&f, (int64_t)(8 * G));
	dmasvc_disconnect(f.c);
	close(f.fd);
}

Test(faults, failed_discard_keeps_bits_and_replays)
{
	struct fx f;

	/* The second unmap call of the backend fails, and so does the service's retry. */
	fx_start(&f, "unmap_fail_nth=2,unmap_fail_count=2,unmap_errno=5");
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 8 * G), 0);
	cr_assert_eq(dmasvc_discard(f.c, (uint32_t)f.region, 0, 2 * G), 0, "first unmap works");
	fx_check(&f, (int64_t)(6 * G));
	cr_assert_eq(dmasvc_discard(f.c, (uint32_t)f.region, 4 * G, 2 * G), -EIO, "second fails");
	fx_check(&f, (int64_t)(6 * G));

	/* Restart: the granules the failed discard left are replayed. */
	it_svc_kill(&svc);
	cr_assert_eq(unsetenv("DMASVC_TEST_SOFT_FAULTS"), 0);
	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	f.base = it_vmlck(svc.pid);
	cr_assert_eq(dmasvc_reconnect(f.c), 0, "%s", dmasvc_last_error(f.c));
	fx_check(&f, (int64_t)(6 * G));
	cr_assert_eq(dmasvc_discard(f.c, (uint32_t)f.region, 4 * G, 2 * G), 0, "retry works");
	fx_check(&f, (int64_t)(4 * G));
	dmasvc_disconnect(f.c);
	close(f.fd);
}
