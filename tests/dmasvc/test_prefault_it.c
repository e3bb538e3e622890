/* SPDX-License-Identifier: MIT */
/*
 * test_prefault_it.c - who allocates guest memory (docs/design.md, "Who
 * allocates guest memory"), against the real daemon on the software model,
 * through libdmasvc: the library's default prefault makes populates work
 * and leaves the pages in the memfd; a client that faults nothing in is
 * refused with -ENXIO and an error naming the range, pins nothing and gets
 * nothing faulted in; faulting its own mapping in (dmasvc_prefault) makes
 * the same populate work; --allow-fault-in accepts the hole and the service
 * faults it in.  No memcg here: the charge itself is measured in the
 * tests/vm guest (guest/memcg-charge.c).  Pins: the daemon's VmLck.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)
#define G (2 * MiB)
#define SIZE (16 * MiB)
#define IOVA (1ull << 32)

static struct it_svc svc;

static void stop(void)
{
	it_suite_stop(&svc);
}

TestSuite(prefault, .fini = stop, .timeout = 60);

struct fx {
	struct dmasvc_client *c;
	int fd, region;
	char *map; /* the test's own view of the memfd (mincore, caller prefault) */
};

static void fx_open(struct fx *f, const char *const *extra, enum dmasvc_prefault_mode mode)
{
	struct dmasvc_region_desc d = { .size = SIZE, .iova = IOVA, .granule = G };
	int mem;

	cr_assert_eq(it_svc_start(&svc, extra), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &f->c), 0);
	cr_assert_eq(dmasvc_set_prefault(f->c, mode), 0);
	f->fd = it_memfd(SIZE, true);
	cr_assert_geq(f->fd, 0);
	f->map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
	cr_assert_neq(f->map, MAP_FAILED);
	mem = dmasvc_memory_add(f->c, f->fd, SIZE, 0);
	cr_assert_geq(mem, 0, "%s", dmasvc_last_error(f->c));
	d.mem_id = (uint32_t)mem;
	f->region = dmasvc_region_add(f->c, &d);
	cr_assert_geq(f->region, 0, "%s", dmasvc_last_error(f->c));
}

static void fx_close(struct fx *f)
{
	dmasvc_disconnect(f->c);
	munmap(f->map, SIZE);
	close(f->fd);
	cr_expect_eq(it_wait_vmlck(svc.pid, 0, 5000), 0, "the session's pins are gone");
}

/* Pages of [off, off + len) of the memfd in memory (mincore faults nothing in). */
static uint64_t resident(const struct fx *f, uint64_t off, uint64_t len)
{
	unsigned char v[SIZE / 4096];
	uint64_t n = 0;

	cr_assert_eq(mincore(f->map + off, len, v), 0);
	for (uint64_t i = 0; i < len / 4096; i++)
		n += v[i] & 1;
	return n;
}

Test(prefault, the_library_faults_a_populate_in_before_it_posts)
{
	struct fx f;

	fx_open(&f, NULL, DMASVC_PREFAULT_LIBRARY);
	cr_assert_eq(resident(&f, 0, SIZE), 0, "a fresh memfd is all holes");
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 2 * MiB, 4 * MiB), 0, "%s",
		     dmasvc_last_error(f.c));
	cr_expect_eq(resident(&f, 2 * MiB, 4 * MiB), 1024, "the populated range is in memory");
	cr_expect_eq(resident(&f, 0, 2 * MiB) + resident(&f, 6 * MiB, SIZE - 6 * MiB), 0,
		     "nothing else was faulted in");
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(4 * MiB), 5000), (int64_t)(4 * MiB));
	/* asynchronous submits prefault too */
	cr_assert_eq(dmasvc_submit_populate(dmasvc_default_queue(f.c), (uint32_t)f.region, 8 * MiB, G, 7), 0);
	{
		struct dmasvc_completion cq;

		cr_assert_eq(dmasvc_reap(dmasvc_default_queue(f.c), &cq, 1, 5000), 1);
		cr_expect_eq(cq.res, 0);
		cr_expect_eq(cq.user_data, 7);
	}
	cr_expect_eq(resident(&f, 8 * MiB, G), G / 4096);
	fx_close(&f);
}

Test(prefault, a_populate_of_a_hole_is_refused_and_named)
{
	struct dmasvc_completion cq;
	struct fx f;

	fx_open(&f, NULL, DMASVC_PREFAULT_CALLER);
	cr_expect_eq(dmasvc_populate(f.c, (uint32_t)f.region, 2 * MiB, 4 * MiB), -ENXIO);
	cr_expect(strstr(dmasvc_last_error(f.c), "region 0 [0x200000, 0x600000)") &&
		  strstr(dmasvc_last_error(f.c), "not in memory") &&
		  strstr(dmasvc_last_error(f.c), "--allow-fault-in"),
		  "the error names the range and the way out: %s", dmasvc_last_error(f.c));
	cr_expect_eq(resident(&f, 0, SIZE), 0, "the service faulted nothing in");
	cr_expect_eq(it_vmlck(svc.pid), 0, "nothing pinned");
	cr_expect_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), 0);
	/* asynchronously: the CQE carries it */
	cr_assert_eq(dmasvc_submit_populate(dmasvc_default_queue(f.c), (uint32_t)f.region, 0, G, 9), 0);
	cr_assert_eq(dmasvc_reap(dmasvc_default_queue(f.c), &cq, 1, 5000), 1);
	cr_expect_eq(cq.res, -ENXIO);

	/* the caller faults its own mapping in: now it maps */
	cr_assert_eq(dmasvc_prefault(f.map + 2 * MiB, 4 * MiB, true), 0);
	cr_expect_eq(dmasvc_populate(f.c, (uint32_t)f.region, 2 * MiB, 4 * MiB), 0, "%s",
		     dmasvc_last_error(f.c));
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(4 * MiB), 5000), (int64_t)(4 * MiB));
	/* one page of a granule missing is enough to refuse it */
	cr_assert_eq(dmasvc_prefault(f.map + 8 * MiB, G - 4096, true), 0);
	cr_expect_eq(dmasvc_populate(f.c, (uint32_t)f.region, 8 * MiB, G), -ENXIO);
	cr_expect_eq(it_vmlck(svc.pid), (int64_t)(4 * MiB));
	fx_close(&f);
}

Test(prefault, allow_fault_in_lets_the_service_fault_holes_in)
{
	static const char *const extra[] = { "--allow-fault-in", NULL };
	struct fx f;

	fx_open(&f, extra, DMASVC_PREFAULT_CALLER);
	cr_expect_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 4 * MiB), 0, "%s",
		     dmasvc_last_error(f.c));
	cr_expect_eq(resident(&f, 0, 4 * MiB), 1024, "the service's pin faulted the pages in");
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(4 * MiB), 5000), (int64_t)(4 * MiB));
	fx_close(&f);
}

Test(prefault, the_mode_is_chosen_before_the_first_memory)
{
	struct dmasvc_client *c;
	int fd = it_memfd(SIZE, true);
	char page[4096];

	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	cr_expect_eq(dmasvc_set_prefault(c, (enum dmasvc_prefault_mode)7), -EINVAL);
	cr_assert_geq(dmasvc_memory_add(c, fd, SIZE, 0), 0);
	cr_expect_eq(dmasvc_set_prefault(c, DMASVC_PREFAULT_CALLER), -EBUSY);
	cr_expect_eq(dmasvc_prefault(NULL, 4096, true), -EINVAL);
	cr_expect_eq(dmasvc_prefault(page + 1, 4096, true), -EINVAL, "not page-aligned");
	dmasvc_disconnect(c);
	close(fd);
}

/* Submit @n populates of [off[i], off[i] + len[i]) on @f's default queue as one burst; CQE results by index. */
static void populate_burst(struct fx *f, int n, const uint64_t *off, const uint64_t *len, int *res)
{
	struct dmasvc_queue *q = dmasvc_default_queue(f->c);
	struct dmasvc_completion cq[8];
	int got = 0;

	cr_assert_eq(dmasvc_queue_batch_begin(q), 0); /* one doorbell: one burst */
	for (int i = 0; i < n; i++)
		cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)f->region, off[i], len[i], (uint64_t)i), 0);
	cr_assert_eq(dmasvc_queue_batch_end(q), 0);
	while (got < n) {
		int k = dmasvc_reap(q, cq, (unsigned)(n - got), 5000);

		cr_assert_gt(k, 0, "completions: %d", k);
		for (int i = 0; i < k; i++)
			res[cq[i].user_data] = cq[i].res;
		got += k;
	}
}

/*
 * The residency rule and the populated-bytes cap (docs/protocol.md, ENXIO
 * and EDQUOT): both are judged before anything is mapped or faulted in; a
 * populate over the cap is -EDQUOT whether or not it is a hole, and a hole
 * refused with -ENXIO takes no budget from the events after it.  Cap 8 MiB;
 * one burst: a 4 MiB hole, then 6 MiB that are in memory (fits: the hole
 * took nothing), then a 10 MiB hole (over the cap: -EDQUOT, not -ENXIO).
 * On the service before the order was decided (the cap on the loop, then
 * the residency rule) the second populate was -EDQUOT: the hole had been
 * counted against the cap.
 */
Test(prefault, a_refused_hole_takes_no_budget_and_the_cap_comes_first)
{
	static const char *const extra[] = { "--max-populated-mib", "8", NULL };
	const uint64_t off[] = { 0, 4 * MiB, 0 }, len[] = { 4 * MiB, 6 * MiB, SIZE - 6 * MiB };
	int res[3] = { 1, 1, 1 };
	struct fx f;

	fx_open(&f, extra, DMASVC_PREFAULT_CALLER);
	cr_assert_eq(dmasvc_prefault(f.map + 4 * MiB, 6 * MiB, true), 0);
	populate_burst(&f, 3, off, len, res);
	cr_expect_eq(res[0], -ENXIO, "the hole: %d", res[0]);
	cr_expect_eq(res[1], 0, "6 MiB in memory, after a refused hole, under an 8 MiB cap: %d", res[1]);
	cr_expect_eq(res[2], -EDQUOT, "10 MiB more over the cap, a hole too: %d", res[2]);
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(6 * MiB), 5000), (int64_t)(6 * MiB));
	cr_expect_eq(resident(&f, 0, 4 * MiB), 0, "the service faulted nothing in");
	cr_expect_eq(resident(&f, 10 * MiB, SIZE - 10 * MiB), 0, "the service faulted nothing in");
	fx_close(&f);
}

/*
 * Only the populate that holds a hole is refused, on both paths of the
 * residency rule.  Guarded (the default here: the model pins through the
 * service's guarded mapping), each populate's pin decides and the 6th's
 * fails over its hole; unguarded (@guard false: the test hook, as on a
 * kernel without userfaultfd), the service checks consecutive populates of
 * contiguous memory with one mincore() over their union
 * (datapath/burst_run.c find_holes) and a union with a hole event by
 * event.  One burst of 8 contiguous 2 MiB populates, the 6th missing one
 * page (its last): 7 map, the 6th is -ENXIO.  And 8 with no hole all map.
 */
static void one_hole_in_a_run(bool guard)
{
	uint64_t off[8], len[8];
	int res[8];
	struct fx f;

	if (!guard)
		cr_assert_eq(setenv("DMASVC_TEST_NO_HOLE_GUARD", "1", 1), 0);
	fx_open(&f, NULL, DMASVC_PREFAULT_CALLER);
	unsetenv("DMASVC_TEST_NO_HOLE_GUARD");
	for (int i = 0; i < 8; i++) {
		off[i] = (uint64_t)i * G;
		len[i] = G;
		res[i] = 1;
	}
	cr_assert_eq(dmasvc_prefault(f.map, 5 * G + G - 4096, true), 0);
	cr_assert_eq(dmasvc_prefault(f.map + 6 * G, 2 * G, true), 0);
	populate_burst(&f, 8, off, len, res);
	for (int i = 0; i < 8; i++)
		cr_expect_eq(res[i], i == 5 ? -ENXIO : 0, "populate %d: %d", i, res[i]);
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(7 * G), 5000), (int64_t)(7 * G));
	cr_expect_eq(resident(&f, 5 * G + G - 4096, 4096), 0, "the service faulted nothing in");
	cr_assert_eq(dmasvc_prefault(f.map + 5 * G, G, true), 0);
	for (int i = 0; i < 8; i++)
		res[i] = 1;
	populate_burst(&f, 8, off, len, res);
	for (int i = 0; i < 8; i++)
		cr_expect_eq(res[i], 0, "populate %d again, no hole: %d", i, res[i]);
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(8 * G), 5000), (int64_t)(8 * G));
	fx_close(&f);
}

Test(prefault, one_hole_in_a_run_of_contiguous_populates_refuses_that_one_only)
{
	one_hole_in_a_run(true);
}

Test(prefault, one_hole_in_a_run_refuses_that_one_only_without_the_guard)
{
	one_hole_in_a_run(false);
}

/* With --allow-fault-in a populate over the cap is refused before the map would fault it in. */
Test(prefault, over_the_cap_nothing_is_faulted_in)
{
	static const char *const extra[] = { "--allow-fault-in", "--max-populated-mib", "4", NULL };
	struct fx f;

	fx_open(&f, extra, DMASVC_PREFAULT_CALLER);
	cr_expect_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 6 * MiB), -EDQUOT);
	cr_expect_eq(resident(&f, 0, SIZE), 0, "nothing faulted in");
	cr_expect_eq(it_vmlck(svc.pid), 0, "nothing pinned");
	cr_expect_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 4 * MiB), 0, "%s",
		     dmasvc_last_error(f.c));
	cr_expect_eq(resident(&f, 0, SIZE), 1024, "at the cap: the service faulted it in");
	fx_close(&f);
}

/* Bytes the memfd holds, written or only fallocate()d (st_blocks). */
static uint64_t allocated(const struct fx *f)
{
	struct stat st;

	cr_assert_eq(fstat(f->fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/*
 * A batch faults its populates in when it is published, a contiguous run
 * with one call (libdmasvc queue.c defer_prefault): while a run grows
 * nothing of it is allocated; a populate that does not continue it
 * allocates it and starts the next; batch_end allocates the last one before
 * it publishes; every populate completes 0 with the pins the kernel counts.
 * The service guards its mapping here, so the library allocates with
 * fallocate() (allocated, not yet written: mincore() sees the pages once
 * the service's pins wrote them, zeroed).
 */
Test(prefault, a_batch_faults_its_populates_in_at_publish)
{
	struct dmasvc_queue *q;
	struct dmasvc_completion cq[16];
	int got = 0;
	struct fx f;

	fx_open(&f, NULL, DMASVC_PREFAULT_LIBRARY);
	q = dmasvc_default_queue(f.c);
	cr_assert_eq(dmasvc_queue_batch_begin(q), 0);
	for (int i = 0; i < 4; i++) /* [0, 8 MiB) granule by granule */
		cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)f.region, (uint64_t)i * G, G,
						    (uint64_t)i), 0);
	cr_expect_eq(allocated(&f), 0, "a run is not allocated while it grows");
	cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)f.region, 12 * MiB, G, 4), 0);
	cr_expect_eq(allocated(&f), 8 * MiB,
		     "a populate that does not continue the run allocates the run (only it)");
	cr_assert_eq(dmasvc_queue_batch_end(q), 0);
	cr_expect_eq(allocated(&f), 8 * MiB + G,
		     "the batch's ranges are allocated once published, nothing else");
	while (got < 5) {
		int k = dmasvc_reap(q, cq, 16, 5000);

		cr_assert_gt(k, 0);
		for (int i = 0; i < k; i++)
			cr_expect_eq(cq[i].res, 0, "populate %llu: %d",
				     (unsigned long long)cq[i].user_data, cq[i].res);
		got += k;
	}
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(8 * MiB + G), 5000), (int64_t)(8 * MiB + G));
	cr_expect_eq(resident(&f, 0, 8 * MiB) + resident(&f, 12 * MiB, G), (8 * MiB + G) / 4096,
		     "the pins wrote the batch's pages");
	cr_expect_eq(resident(&f, 8 * MiB, 4 * MiB) + resident(&f, 14 * MiB, 2 * MiB), 0,
		     "and nothing else");
	fx_close(&f);
}

/*
 * Where the service guards its mapping (its MEMORY_ADD reply says
 * DMASVC_MEMORY_ADDED_FALLOC) the library allocates a populate with
 * fallocate() on the memory's fd: the memfd holds the pages (st_blocks),
 * the daemon pins them (VmLck) and they read as zeros, while this process's
 * shared-memory RSS (the kernel's RssShmem: the library's own mapping) did
 * not grow.  Without the guard (the test hook: mincore() checks, no flag)
 * the library advises through its mapping and RssShmem grows by the range:
 * the negative control, and a populate that works either way.
 */
static void library_allocation(bool guard)
{
	int64_t shmem;
	struct fx f;

	if (!guard)
		cr_assert_eq(setenv("DMASVC_TEST_NO_HOLE_GUARD", "1", 1), 0);
	fx_open(&f, NULL, DMASVC_PREFAULT_LIBRARY);
	unsetenv("DMASVC_TEST_NO_HOLE_GUARD");
	shmem = it_proc_status_bytes(getpid(), "RssShmem");
	cr_assert_geq(shmem, 0);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 2 * MiB, 4 * MiB), 0, "%s",
		     dmasvc_last_error(f.c));
	cr_expect_eq(allocated(&f), 4 * MiB, "the memfd holds the range");
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(4 * MiB), 5000), (int64_t)(4 * MiB));
	if (guard)
		cr_expect_lt(it_proc_status_bytes(getpid(), "RssShmem") - shmem, (int64_t)MiB,
			     "fallocate(): the library's mapping was not filled (RssShmem %lld -> %lld)",
			     (long long)shmem, (long long)it_proc_status_bytes(getpid(), "RssShmem"));
	else
		cr_expect_geq(it_proc_status_bytes(getpid(), "RssShmem") - shmem, (int64_t)(4 * MiB),
			      "the advice filled the library's mapping (RssShmem %lld -> %lld)",
			      (long long)shmem, (long long)it_proc_status_bytes(getpid(), "RssShmem"));
	for (uint64_t o = 2 * MiB; o < 6 * MiB; o += 4096)
		cr_assert_eq(f.map[o], 0, "zeroed at 0x%llx", (unsigned long long)o);
	/* a single page, as a conversion posts it */
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 8 * MiB, G), 0, "%s",
		     dmasvc_last_error(f.c));
	cr_expect_eq(allocated(&f), 4 * MiB + G);
	fx_close(&f);
}

Test(prefault, the_library_allocates_with_fallocate_where_the_service_guards)
{
	library_allocation(true);
}

Test(prefault, the_library_advises_where_the_service_does_not_guard)
{
	library_allocation(false);
}

/* Make fallocate() fail with EPERM in this process, as a seccomp sandbox may (QEMU's -sandbox). */
static void refuse_fallocate(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fallocate, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0, "seccomp: %d", errno);
}

/*
 * A client where fallocate() is refused (a seccomp filter, here installed
 * after the daemon started, so only this process has it): the library
 * falls back to the advice through its own mapping and the populate works.
 */
Test(prefault, a_refused_fallocate_falls_back_to_the_advice)
{
	int64_t shmem;
	struct fx f;

	fx_open(&f, NULL, DMASVC_PREFAULT_LIBRARY);
	refuse_fallocate();
	cr_assert_eq(fallocate(f.fd, FALLOC_FL_KEEP_SIZE, 0, 4096), -1);
	cr_assert_eq(errno, EPERM, "fallocate() refused: %d", errno);
	shmem = it_proc_status_bytes(getpid(), "RssShmem");
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 2 * G), 0, "%s",
		     dmasvc_last_error(f.c));
	cr_expect_eq(allocated(&f), 2 * G);
	cr_expect_geq(it_proc_status_bytes(getpid(), "RssShmem") - shmem, (int64_t)(2 * G),
		      "the advice, through the library's mapping");
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(2 * G), 5000), (int64_t)(2 * G));
	fx_close(&f);
}

/*
 * The flag is the service's of the moment: a client that allocated with
 * fallocate() for a guarding service, reconnected (dmasvc_reconnect: the
 * memories are added again) to one that does not guard, advises again, so
 * its next populate is not refused as a hole (mincore() there calls a page
 * only fallocate()d a hole); and back.
 */
Test(prefault, a_reconnect_takes_the_new_services_flag)
{
	struct fx f;

	fx_open(&f, NULL, DMASVC_PREFAULT_LIBRARY); /* guards */
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, G), 0, "%s", dmasvc_last_error(f.c));
	it_svc_kill(&svc);
	cr_assert_eq(setenv("DMASVC_TEST_NO_HOLE_GUARD", "1", 1), 0);
	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	unsetenv("DMASVC_TEST_NO_HOLE_GUARD");
	cr_assert_eq(dmasvc_reconnect(f.c), 0, "%s", dmasvc_last_error(f.c));
	cr_expect_eq(dmasvc_populate(f.c, (uint32_t)f.region, 4 * MiB, G), 0,
		     "no guard, no flag: the advice (%s)", dmasvc_last_error(f.c));
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(2 * G), 5000), (int64_t)(2 * G),
		     "the replayed granule and the new one");
	it_svc_kill(&svc);
	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	cr_assert_eq(dmasvc_reconnect(f.c), 0, "%s", dmasvc_last_error(f.c));
	cr_expect_eq(dmasvc_populate(f.c, (uint32_t)f.region, 8 * MiB, G), 0, "%s",
		     dmasvc_last_error(f.c));
	cr_expect_eq(allocated(&f), 3 * G);
	fx_close(&f);
}
