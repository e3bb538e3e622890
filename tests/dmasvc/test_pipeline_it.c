/* SPDX-License-Identifier: MIT */
/*
 * test_pipeline_it.c - a large blocking populate faulted in and posted in
 * pieces (clients/libdmasvc/src/pipeline.c), against the real daemon on the
 * software model: it maps all of the range in pieces (the service counts
 * one populate event per 4 MiB piece; the one-event path makes one), with
 * the caller alone and with helper threads, which are gone when it
 * returns; a piece the service refuses (the populated-bytes cap) makes the
 * call give the range back whole (the daemon's pins, measured by the
 * kernel, back to 0); a range already partly populated takes the one-event
 * path; a fault-in that fails (hugetlb with an empty pool) posts and pins
 * nothing and says so, and in a batch reaches the caller as completions.  Pins: the daemon's VmPin + VmLck (it_vmlck).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)
#define G (2 * MiB)
#define SIZE (64 * MiB)
#define IOVA (1ull << 32)

static struct it_svc svc;

static void stop(void)
{
	it_suite_stop(&svc);
}

TestSuite(pipeline, .fini = stop, .timeout = 60);

struct fx {
	struct dmasvc_client *c;
	int fd, region;
	char *map; /* the test's own view of the memfd (mincore) */
};

static void fx_open_sq(struct fx *f, const char *const *extra, uint64_t granule, uint32_t sq)
{
	struct dmasvc_region_desc d = { .size = SIZE, .iova = IOVA, .granule = granule };
	struct dmasvc_connect_opts o = { .sq_entries = sq };
	int mem;

	cr_assert_eq(it_svc_start(&svc, extra), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, sq ? &o : NULL, &f->c), 0);
	f->fd = it_memfd(SIZE, true);
	cr_assert_geq(f->fd, 0);
	f->map = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, f->fd, 0);
	cr_assert_neq(f->map, MAP_FAILED);
	mem = dmasvc_memory_add(f->c, f->fd, SIZE, 0);
	cr_assert_geq(mem, 0, "%s", dmasvc_last_error(f->c));
	d.mem_id = (uint32_t)mem;
	f->region = dmasvc_region_add(f->c, &d);
	cr_assert_geq(f->region, 0, "%s", dmasvc_last_error(f->c));
}

static void fx_open_g(struct fx *f, const char *const *extra, uint64_t granule)
{
	fx_open_sq(f, extra, granule, 0);
}

static void fx_open(struct fx *f, const char *const *extra)
{
	fx_open_g(f, extra, G);
}

static void fx_close(struct fx *f)
{
	dmasvc_disconnect(f->c);
	munmap(f->map, SIZE);
	close(f->fd);
	cr_expect_eq(it_wait_vmlck(svc.pid, 0, 5000), 0, "the session's pins are gone");
}

static struct dmasvc_stat_session session(struct fx *f)
{
	struct dmasvc_stat_session st = { 0 };

	cr_assert_eq(dmasvc_query(f->c, DMASVC_QUERY_SESSIONS, 0, 0, &st, sizeof(st), 1), 1);
	return st;
}

/* Pages of [off, off + len) of the memfd in memory. */
static uint64_t resident(const struct fx *f, uint64_t off, uint64_t len)
{
	static unsigned char v[SIZE / 4096];
	uint64_t n = 0;

	cr_assert_eq(mincore(f->map + off, len, v), 0);
	for (uint64_t i = 0; i < len / 4096; i++)
		n += v[i] & 1;
	return n;
}

/* Threads of this process (/proc/self/task). */
static int threads_now(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

Test(pipeline, a_large_populate_maps_all_of_it_in_pieces)
{
	static const unsigned threads[] = { 1, 4 };

	for (unsigned k = 0; k < 2; k++) {
		struct dmasvc_stat_session before, after;
		int t0 = threads_now();
		struct fx f;

		fx_open(&f, NULL);
		cr_assert_eq(dmasvc_set_prefault_threads(f.c, threads[k]), 0);
		before = session(&f);
		cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 8 * MiB, 48 * MiB), 0,
			     "%u threads: %s", threads[k], dmasvc_last_error(f.c));
		after = session(&f);
		cr_expect_eq(after.events - before.events, 12,
			     "%u threads: 48 MiB is 12 populate events of 4 MiB, got %llu", threads[k],
			     (unsigned long long)(after.events - before.events));
		cr_expect_eq(after.populated_bytes, 48 * MiB);
		cr_expect_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), (int64_t)(48 * MiB));
		cr_expect_eq(resident(&f, 8 * MiB, 48 * MiB), 48 * MiB / 4096,
			     "the VMM faulted the whole range in");
		cr_expect_eq(resident(&f, 0, 8 * MiB) + resident(&f, 56 * MiB, 8 * MiB), 0,
			     "and nothing else");
		cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(48 * MiB), 5000), (int64_t)(48 * MiB),
			     "the daemon's pins, measured by the kernel");
		cr_expect_eq(threads_now(), t0, "%u threads: the helpers are gone", threads[k]);
		fx_close(&f);
		cr_assert_eq(it_svc_finish(&svc), 0);
	}
}

Test(pipeline, a_refused_piece_gives_the_whole_range_back)
{
	static const char *const extra[] = { "--max-populated-mib", "20", NULL };
	struct dmasvc_stat_session before, after;
	struct fx f;

	fx_open(&f, extra);
	cr_assert_eq(dmasvc_set_prefault_threads(f.c, 2), 0);
	before = session(&f);
	cr_expect_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 48 * MiB), -EDQUOT);
	cr_expect(strstr(dmasvc_last_error(f.c), "max-populated-mib"), "%s", dmasvc_last_error(f.c));
	after = session(&f);
	cr_expect_gt(after.map_calls, before.map_calls,
		     "the pieces under the cap were mapped before the refusal");
	cr_expect_gt(after.unmap_calls, before.unmap_calls, "and given back");
	cr_expect_eq(after.populated_bytes, 0, "nothing of the range is left populated");
	cr_expect_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), 0);
	cr_expect_eq(it_wait_vmlck(svc.pid, 0, 5000), 0, "no pin is left (kernel's count)");
	/* under the cap it works, in pieces */
	cr_expect_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 16 * MiB), 0, "%s",
		     dmasvc_last_error(f.c));
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(16 * MiB), 5000), (int64_t)(16 * MiB));
	fx_close(&f);
}

Test(pipeline, a_partly_populated_range_is_one_event)
{
	struct dmasvc_stat_session before, after;
	struct fx f;

	fx_open(&f, NULL);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 4 * MiB, G), 0);
	before = session(&f);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 32 * MiB), 0, "%s",
		     dmasvc_last_error(f.c));
	after = session(&f);
	cr_expect_eq(after.events - before.events, 1, "one event");
	cr_expect_eq(after.populated_bytes, 32 * MiB);
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(32 * MiB), 5000), (int64_t)(32 * MiB));
	cr_expect_eq(dmasvc_set_prefault_threads(f.c, 65), -EINVAL);
	fx_close(&f);
}

/*
 * A range of one large granule (32 MiB) is one event, whose fault-in the
 * threads share: it maps all of it, and the helpers are gone after.
 */
Test(pipeline, one_large_granule_is_one_event)
{
	struct dmasvc_stat_session before, after;
	int t0 = threads_now();
	struct fx f;

	fx_open_g(&f, NULL, 32 * MiB);
	cr_assert_eq(dmasvc_set_prefault_threads(f.c, 4), 0);
	before = session(&f);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 32 * MiB, 32 * MiB), 0, "%s",
		     dmasvc_last_error(f.c));
	after = session(&f);
	cr_expect_eq(after.events - before.events, 1, "a granule is never cut");
	cr_expect_eq(resident(&f, 32 * MiB, 32 * MiB), 32 * MiB / 4096);
	cr_expect_eq(resident(&f, 0, 32 * MiB), 0);
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)(32 * MiB), 5000), (int64_t)(32 * MiB));
	cr_expect_eq(threads_now(), t0, "the helpers are gone");
	fx_close(&f);
}

/* A small SQ (8 entries) bounds the units: 64 MiB in 8 events of 8 MiB. */
Test(pipeline, a_small_sq_gets_fewer_larger_units)
{
	struct dmasvc_stat_session before, after;
	struct fx f;

	fx_open_sq(&f, NULL, G, 8);
	before = session(&f);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, SIZE), 0, "%s",
		     dmasvc_last_error(f.c));
	after = session(&f);
	cr_expect_eq(after.events - before.events, 8, "got %llu events",
		     (unsigned long long)(after.events - before.events));
	cr_expect_eq(after.populated_bytes, SIZE);
	cr_expect_eq(it_wait_vmlck(svc.pid, (int64_t)SIZE, 5000), (int64_t)SIZE);
	fx_close(&f);
}

/*
 * A fault-in that fails: 16 MiB of a hugetlb memfd with no huge page in the
 * pool (MAP_NORESERVE: the fault-in, not the mapping, finds none).  The
 * pipelined populate returns the fault-in's error and says so, posts and
 * pins nothing.  (Where the pool has pages the same call must succeed.)
 */
Test(pipeline, a_failed_fault_in_maps_nothing_and_says_so)
{
	struct dmasvc_region_desc d = { .size = 16 * MiB, .iova = IOVA, .granule = G };
	struct dmasvc_stat_session before, after;
	long free_pages = (long)it_proc_field("/proc/meminfo", "HugePages_Free");
	struct fx f = { 0 };
	int fd, mem, ret;

	cr_assert_geq(free_pages, 0);
	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &f.c), 0);
	cr_assert_eq(dmasvc_set_prefault_threads(f.c, 2), 0);
	fd = memfd_create("it-huge", MFD_CLOEXEC | MFD_HUGETLB | MFD_ALLOW_SEALING);
	cr_assert_geq(fd, 0, "memfd_create(MFD_HUGETLB): %s", strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)d.size), 0);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	mem = dmasvc_memory_add(f.c, fd, d.size, 0);
	cr_assert_geq(mem, 0, "%s", dmasvc_last_error(f.c));
	d.mem_id = (uint32_t)mem;
	f.region = dmasvc_region_add(f.c, &d);
	cr_assert_geq(f.region, 0, "%s", dmasvc_last_error(f.c));
	before = session(&f);
	ret = dmasvc_populate(f.c, (uint32_t)f.region, 0, d.size);
	after = session(&f);
	if (free_pages >= 8) {
		cr_expect_eq(ret, 0, "%ld huge pages free: %s", free_pages, dmasvc_last_error(f.c));
	} else if (free_pages == 0) {
		cr_expect_lt(ret, 0, "no huge page in the pool, yet the populate worked");
		cr_expect(strstr(dmasvc_last_error(f.c), "faulting the memory in before posting"),
			  "the error names the fault-in: %s", dmasvc_last_error(f.c));
		cr_expect_eq(after.events, before.events, "nothing was posted");
		cr_expect_eq(after.populated_bytes, 0);
		cr_expect_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), 0);
		cr_expect_eq(it_vmlck(svc.pid), 0, "nothing pinned");
	}
	/*
	 * The same in a batch: the fault-in runs at the publish, the submits
	 * have returned, so the completions carry the refusal; nothing pinned.
	 */
	if (free_pages == 0) {
		struct dmasvc_queue *q = dmasvc_default_queue(f.c);
		struct dmasvc_completion cq[8];
		int got = 0;

		cr_assert_eq(dmasvc_queue_batch_begin(q), 0);
		for (uint64_t i = 0; i < 4; i++)
			cr_expect_eq(dmasvc_submit_populate(q, (uint32_t)f.region, i * G, G, i), 0,
				     "a submit in a batch returns no fault-in error");
		cr_assert_eq(dmasvc_queue_batch_end(q), 0);
		while (got < 4) {
			int n = dmasvc_reap(q, cq, 8, 5000);

			cr_assert_gt(n, 0);
			for (int i = 0; i < n; i++)
				cr_expect_lt(cq[i].res, 0, "populate %llu of holes completed %d",
					     (unsigned long long)cq[i].user_data, cq[i].res);
			got += n;
		}
		cr_expect_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), 0);
		cr_expect_eq(it_vmlck(svc.pid), 0, "nothing pinned");
	}
	dmasvc_disconnect(f.c);
	close(fd);
}
