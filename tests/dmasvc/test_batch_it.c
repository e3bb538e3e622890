/* SPDX-License-Identifier: MIT */
/*
 * test_batch_it.c - libdmasvc's batches (dmasvc_queue_batch_begin/end)
 * against the real dmasvc (--soft-iommu): a burst of contiguous one-page
 * discards posted page by page inside a batch costs the backend exactly one
 * unmap call in every run, however slowly the client posts (the service's
 * own counter, QUERY STATUS unmap_calls); without the batch the same slow
 * poster is split by a service that drains while it posts (the control:
 * the counter does see splits).  Batches larger than the service's old
 * drain of 128 SQEs (256 and 512 pages, on a 512-entry SQ) are still one
 * drain and one plan: 1 unmap call.  Also: nothing in a batch completes before
 * its end, batches do not nest, and a batch larger than the SQ is
 * published as it fills and still completes every event.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "it_util.h"

#define PAGE 4096ull
#define BURST 64
#define BIG_BURST 512 /* pages of the largest batch; the SQ has as many entries */
#define RUNS 100
#define POST_GAP_US 50 /* the VMM's work between two notes of a conversion */

IT_SUITE(batch, .timeout = 120);

struct fixture {
	struct dmasvc_client *c;
	struct dmasvc_queue *q;
	int fd, region;
	uint64_t size;
};

static void fx_open(struct fixture *f, uint64_t size, uint32_t sq_entries)
{
	struct dmasvc_region_desc d = { .size = size, .iova = 1ull << 32, .granule = PAGE };
	int mem;

	f->size = size;
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &f->c), 0);
	f->fd = it_memfd(size, true);
	cr_assert_geq(f->fd, 0);
	mem = dmasvc_memory_add(f->c, f->fd, size, 0);
	cr_assert_geq(mem, 0, "memory_add: %s", dmasvc_last_error(f->c));
	d.mem_id = (uint32_t)mem;
	f->region = dmasvc_region_add(f->c, &d);
	cr_assert_geq(f->region, 0, "region_add: %s", dmasvc_last_error(f->c));
	cr_assert_eq(dmasvc_queue_open(f->c, sq_entries, &f->q), 0);
}

static void fx_close(struct fixture *f)
{
	char why[256];

	cr_assert_eq(it_check_region(f->c, (uint32_t)f->region, 1ull << 32, why, sizeof(why)), 0,
		     "service != client: %s", why);
	dmasvc_queue_close(f->q);
	dmasvc_disconnect(f->c);
	close(f->fd);
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck, 3000), base_vmlck, "disconnect unpins all");
}

/* The session's backend unmap calls so far (QUERY STATUS of the own session). */
static uint64_t unmap_calls(struct fixture *f)
{
	struct dmasvc_stat_service st;

	cr_assert_eq(dmasvc_query(f->c, DMASVC_QUERY_STATUS, 0, 0, &st, sizeof(st), 1), 1);
	return st.unmap_calls;
}

static void busy_wait_us(unsigned us)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000ll + (t.tv_nsec - t0.tv_nsec) < us * 1000ll);
}

/* Reap @n completions of @q, each with res 0. */
static void reap_all(struct fixture *f, unsigned n)
{
	struct dmasvc_completion cq[BURST];

	for (unsigned done = 0; done < n;) {
		int got = dmasvc_reap(f->q, cq, BURST, 5000);

		cr_assert_gt(got, 0, "completion %u of %u arrives (%d)", done, n, got);
		for (int i = 0; i < got; i++)
			cr_assert_eq(cq[i].res, 0, "event %lu: %d", (unsigned long)cq[i].user_data, cq[i].res);
		done += (unsigned)got;
	}
}

/*
 * One run: populate @pages pages with one event, then discard them page by
 * page, @gap_us apart, inside a batch if @batch.  Returns the unmap calls
 * the discards cost.
 */
static uint64_t discard_pages(struct fixture *f, unsigned pages, unsigned gap_us, bool batch)
{
	uint64_t before;

	cr_assert_eq(dmasvc_submit_populate(f->q, (uint32_t)f->region, 0, pages * PAGE, 0), 0);
	reap_all(f, 1);
	before = unmap_calls(f);
	if (batch)
		cr_assert_eq(dmasvc_queue_batch_begin(f->q), 0);
	for (unsigned p = 0; p < pages; p++) {
		cr_assert_eq(dmasvc_submit_discard(f->q, (uint32_t)f->region, p * PAGE, PAGE, p), 0);
		busy_wait_us(gap_us);
	}
	if (batch)
		cr_assert_eq(dmasvc_queue_batch_end(f->q), 0);
	reap_all(f, pages);
	cr_assert_eq(dmasvc_region_populated_bytes(f->c, (uint32_t)f->region), 0);
	return unmap_calls(f) - before;
}

static uint64_t discard_burst(struct fixture *f, bool batch)
{
	return discard_pages(f, BURST, POST_GAP_US, batch);
}

Test(batch, discard_burst_in_a_batch_is_one_unmap_every_run)
{
	struct fixture f;
	unsigned split = 0;
	uint64_t worst = 0;

	fx_open(&f, BURST * PAGE, 256);
	for (int r = 0; r < RUNS; r++) {
		uint64_t n = discard_burst(&f, true);

		split += n != 1;
		worst = n > worst ? n : worst;
	}
	cr_expect_eq(split, 0, "%u of %d batched bursts of %d pages cost more than 1 unmap call (worst %lu)",
		     split, RUNS, BURST, (unsigned long)worst);
	fx_close(&f);
}

/*
 * Batches of 256 and 512 one-page discards (2 and 4 times the 128 SQEs the
 * service drained at once before a burst took a whole SQ) on a 512-entry
 * SQ: one drain, one plan, exactly 1 unmap call in every run.  Posted
 * 5 us apart (512 pages x 50 us would make 100 runs take 2.6 s each size):
 * the batch hides the posting from the service however slow it is, which
 * the 64-page test above shows at 50 us.  Before the change this failed:
 * every run cost 2 (256 pages) and 4 (512 pages) unmap calls.
 */
Test(batch, batches_larger_than_128_are_one_unmap_every_run)
{
	static const unsigned sizes[] = { 256, BIG_BURST };
	struct fixture f;

	fx_open(&f, BIG_BURST * PAGE, BIG_BURST);
	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned split = 0;
		uint64_t worst = 0;

		for (int r = 0; r < RUNS; r++) {
			uint64_t n = discard_pages(&f, sizes[k], 5, true);

			split += n != 1;
			worst = n > worst ? n : worst;
		}
		cr_expect_eq(split, 0, "%u of %d batched bursts of %u pages cost more than 1 unmap call (worst %lu)",
			     split, RUNS, sizes[k], (unsigned long)worst);
	}
	fx_close(&f);
}

/*
 * The control: the same slow poster without a batch (libdmasvc's path
 * before batches existed) is split by the service draining while it posts,
 * in at least one of RUNS runs; so the counter above does see a split.
 */
Test(batch, without_a_batch_a_slow_poster_is_split)
{
	struct fixture f;
	unsigned split = 0;

	fx_open(&f, BURST * PAGE, 256);
	for (int r = 0; r < RUNS && !split; r++)
		split += discard_burst(&f, false) != 1;
	cr_expect_gt(split, 0, "no run of %d split a slow unbatched burst", RUNS);
	fx_close(&f);
}

Test(batch, nothing_completes_before_the_end_and_batches_do_not_nest)
{
	struct fixture f;
	struct dmasvc_completion cq[8];

	fx_open(&f, 8 * PAGE, 16);
	cr_assert_eq(dmasvc_queue_batch_end(f.q), -EINVAL, "no batch open");
	cr_assert_eq(dmasvc_queue_batch_begin(NULL), -EINVAL);
	cr_assert_eq(dmasvc_queue_batch_begin(f.q), 0);
	cr_assert_eq(dmasvc_queue_batch_begin(f.q), -EBUSY, "batches do not nest");
	for (unsigned p = 0; p < 8; p++)
		cr_assert_eq(dmasvc_submit_populate(f.q, (uint32_t)f.region, p * PAGE, PAGE, p), 0);
	usleep(100000); /* a service that saw the SQEs would have completed them by now */
	cr_assert_eq(dmasvc_reap(f.q, cq, 8, 0), 0, "nothing published, nothing completes");
	cr_assert_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), 0);
	cr_assert_eq(it_vmlck(svc.pid), base_vmlck, "nothing pinned yet");
	cr_assert_eq(dmasvc_queue_batch_end(f.q), 0);
	reap_all(&f, 8);
	cr_assert_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), (int64_t)(8 * PAGE));
	fx_close(&f);
}

/*
 * A batch of 300 events on a 16-entry SQ (32 slots): submit returns
 * -EAGAIN as it fills, having published the batch so far, and a reap that
 * polls (timeout 0) then finds completions: no deadlock on an unpublished
 * batch.  Every event completes, the bitmap and the service agree.
 */
Test(batch, a_batch_larger_than_the_sq_is_published_as_it_fills)
{
	struct fixture f;
	struct dmasvc_completion cq[32];
	unsigned posted = 0, done = 0;

	fx_open(&f, 300 * PAGE, 16);
	cr_assert_eq(dmasvc_queue_batch_begin(f.q), 0);
	while (posted < 300) {
		int err = dmasvc_submit_populate(f.q, (uint32_t)f.region, posted * PAGE, PAGE, posted);

		if (err == -EAGAIN) {
			int got;

			for (int spins = 0; (got = dmasvc_reap(f.q, cq, 32, 0)) == 0; spins++) {
				cr_assert_lt(spins, 5000, "a full batch was published: completions come");
				usleep(1000);
			}
			cr_assert_gt(got, 0);
			done += (unsigned)got;
			continue;
		}
		cr_assert_eq(err, 0);
		posted++;
	}
	cr_assert_eq(dmasvc_queue_batch_end(f.q), 0);
	reap_all(&f, 300 - done);
	cr_assert_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), (int64_t)(300 * PAGE));
	fx_close(&f);
}
