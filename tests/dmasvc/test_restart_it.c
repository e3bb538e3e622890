/* SPDX-License-Identifier: MIT */
/*
 * test_restart_it.c - dmasvc SIGKILLed and restarted: libdmasvc reconnects
 * and replays, and the new instance's state equals the client's bitmap
 * (QUERY REGIONS + AUDIT, and VmLck), including events that were still in
 * flight when the service died.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)

static struct it_svc svc;

static void stop(void)
{
	it_suite_stop(&svc);
}

TestSuite(restart, .fini = stop, .timeout = 90);

struct reg {
	int id;
	uint64_t size, granule, iova;
	int fd;
};

static void reg_add(struct dmasvc_client *c, struct reg *r, uint64_t size, uint64_t granule,
		    uint64_t iova)
{
	struct dmasvc_region_desc d = { .size = size, .iova = iova, .granule = granule };
	int mem;

	r->size = size;
	r->granule = granule;
	r->iova = iova;
	r->fd = it_memfd(size, true);
	mem = dmasvc_memory_add(c, r->fd, size, 0);
	cr_assert_geq(mem, 0);
	d.mem_id = (uint32_t)mem;
	r->id = dmasvc_region_add(c, &d);
	cr_assert_geq(r->id, 0, "%s", dmasvc_last_error(c));
}

static void check_equal(struct dmasvc_client *c, struct reg *regs, int n, int64_t base)
{
	int64_t total = 0;
	char why[256];

	for (int i = 0; i < n; i++) {
		cr_assert_eq(it_check_region(c, (uint32_t)regs[i].id, regs[i].iova, why, sizeof(why)), 0,
			     "region %d: %s", i, why);
		total += dmasvc_region_populated_bytes(c, (uint32_t)regs[i].id);
	}
	cr_assert_eq(it_wait_vmlck(svc.pid, base + total, 2000), base + total,
		     "service VmLck = baseline + client's populated bytes (%ld)", (long)total);
}

/* Random blocking events; returns how many. */
static void churn(struct dmasvc_client *c, struct reg *r, unsigned *seed, int n)
{
	uint64_t ng = r->size / r->granule;

	for (int i = 0; i < n; i++) {
		uint64_t g = (uint64_t)rand_r(seed) % ng, k = 1 + (uint64_t)rand_r(seed) % 32;
		int err;

		if (g + k > ng)
			k = ng - g;
		err = rand_r(seed) % 3 ? dmasvc_populate(c, (uint32_t)r->id, g * r->granule, k * r->granule)
				       : dmasvc_discard(c, (uint32_t)r->id, g * r->granule, k * r->granule);
		cr_assert_eq(err, 0, "event %d: %s", i, strerror(-err));
	}
}

Test(restart, kill_restart_reconnect_replay)
{
	struct dmasvc_client *c;
	struct reg regs[2];
	unsigned seed = 11;
	int64_t base;

	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	base = it_vmlck(svc.pid);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	reg_add(c, &regs[0], 128 * MiB, 2 * MiB, 0);
	reg_add(c, &regs[1], 16 * MiB, 4096, 1ull << 36);

	for (int round = 0; round < 5; round++) {
		churn(c, &regs[0], &seed, 40);
		churn(c, &regs[1], &seed, 200);
		check_equal(c, regs, 2, base);

		it_svc_kill(&svc);
		cr_assert_eq(dmasvc_populate(c, (uint32_t)regs[0].id, 0, 2 * MiB), -ENOTCONN,
			     "a blocking event notices the service is gone");
		cr_assert_eq(it_svc_start(&svc, NULL), 0, "restart %d", round);
		base = it_vmlck(svc.pid);
		cr_assert_eq(dmasvc_reconnect(c), 0, "reconnect: %s", dmasvc_last_error(c));
		check_equal(c, regs, 2, base);
	}
	dmasvc_disconnect(c);
	cr_assert_eq(it_wait_vmlck(svc.pid, base, 2000), base);
	close(regs[0].fd);
	close(regs[1].fd);
}

Test(restart, events_in_flight_at_the_kill)
{
	struct dmasvc_client *c;
	struct dmasvc_queue *q;
	struct dmasvc_completion cqe[64];
	struct reg r;
	unsigned seed = 5;
	int64_t base;

	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	reg_add(c, &r, 64 * MiB, 4096, 1ull << 33);
	cr_assert_eq(dmasvc_queue_open(c, 256, &q), 0);
	for (int round = 0; round < 5; round++) {
		int posted = 0, done = 0, failed = 0;

		/* Post a burst and kill the service while it is working on it. */
		for (int i = 0; i < 256; i++) {
			uint64_t p = (uint64_t)rand_r(&seed) % (r.size / 4096);
			int err = rand_r(&seed) % 4 ? dmasvc_submit_populate(q, (uint32_t)r.id, p * 4096, 4096, (uint64_t)i)
						   : dmasvc_submit_discard(q, (uint32_t)r.id, p * 4096, 4096, (uint64_t)i);

			if (err == -EAGAIN)
				break;
			cr_assert_eq(err, 0);
			posted++;
		}
		it_svc_kill(&svc);
		cr_assert_eq(it_svc_start(&svc, NULL), 0);
		base = it_vmlck(svc.pid);
		cr_assert_eq(dmasvc_reconnect(c), 0, "reconnect: %s", dmasvc_last_error(c));
		/* Every event gets exactly one completion: 0 or -ECONNRESET. */
		while (done < posted) {
			int n = dmasvc_reap(q, cqe, 64, 2000);

			cr_assert_gt(n, 0, "completions after reconnect (%d of %d)", done, posted);
			for (int i = 0; i < n; i++) {
				cr_assert(cqe[i].res == 0 || cqe[i].res == -ECONNRESET, "res %d", cqe[i].res);
				failed += cqe[i].res != 0;
			}
			done += n;
		}
		cr_assert_eq(dmasvc_reap(q, cqe, 64, 0), 0);
		cr_log_info("round %d: %d events in flight at the kill, %d reset", round, posted, failed);
		check_equal(c, &r, 1, base);
		/* The queue works on the new instance. */
		cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)r.id, 0, 4096, 999), 0);
		cr_assert_eq(dmasvc_reap(q, cqe, 1, 2000), 1);
		cr_assert_eq(cqe[0].res, 0);
		cr_assert_eq(cqe[0].user_data, 999);
		check_equal(c, &r, 1, base);
	}
	dmasvc_queue_close(q);
	dmasvc_disconnect(c);
	close(r.fd);
}
