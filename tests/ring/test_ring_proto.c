/* SPDX-License-Identifier: MIT */
/*
 * test_ring_proto.c - single-process tests of the ring: setup and header
 * checks, post/drain order, backpressure, the 2^32 index wrap, the verdict
 * on every kind of impossible peer index, error stickiness, the need-wakeup
 * protocol and the eventfd helpers.
 *
 * "peer" below is the test writing the shared words by hand, the way a
 * hostile process could.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ring_test_util.h"
/* white-box: reads private core fields (r.core.*) to check the cached peer index, our index and the error of a role */
#include <dmasvc/ring_core_pvt.h>

/* One formatted ring in private memory with all four roles. */
struct fix {
	void *mem;
	size_t size;
	struct ring_mapping m;
	struct ring_shm *shm;
	struct ring_sq_producer sqp;
	struct ring_sq_consumer sqc;
	struct ring_cq_producer cqp;
	struct ring_cq_consumer cqc;
};

/* Format a private ring with these sizes and first index and set up all four roles. */
static void fix_init(struct fix *f, uint32_t sq, uint32_t cq, uint32_t first)
{
	struct ring_params p = { .sq_entries = sq, .cq_entries = cq, .first_index = first };
	ssize_t size = ring_mem_size(sq, cq);

	cr_assert_gt(size, 0);
	f->size = (size_t)size;
	f->mem = aligned_alloc(4096, f->size);
	cr_assert_not_null(f->mem);
	cr_assert_eq(ring_format(f->mem, f->size, &p), 0);
	cr_assert_eq(ring_attach(&f->m, f->mem, f->size, &p), 0);
	f->shm = f->mem;
	cr_assert_eq(ring_sq_producer_init(&f->sqp, &f->m), 0);
	cr_assert_eq(ring_sq_consumer_init(&f->sqc, &f->m), 0);
	cr_assert_eq(ring_cq_producer_init(&f->cqp, &f->m), 0);
	cr_assert_eq(ring_cq_consumer_init(&f->cqc, &f->m), 0);
}

/* Undo fix_init(). */
static void fix_fini(struct fix *f)
{
	ring_unmap(&f->m); /* not owned: clears only */
	free(f->mem);
}

Test(ring_setup, mem_size_bounds)
{
	static const uint32_t bad[] = { 0, 1, 3, 6, 100, 65535, 65537, 131072, 1u << 31, UINT32_MAX };
	static const uint32_t good[] = { 2, 4, 64, 1024, 65536 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(ring_mem_size(bad[i], 64), -EINVAL, "sq %u", bad[i]);
		cr_expect_eq(ring_mem_size(64, bad[i]), -EINVAL, "cq %u", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ssize_t s = ring_mem_size(good[i], good[i]);
		size_t need = RING_SQES_OFF + good[i] * (32 + 16);

		cr_expect_geq(s, (ssize_t)need);
		cr_expect_lt(s, (ssize_t)need + 4096);
		cr_expect_eq(s % 4096, 0);
	}
}

Test(ring_setup, format_then_attach_checks_header)
{
	struct ring_params p = { 64, 128, 7 }, q;
	ssize_t size = ring_mem_size(64, 128);
	struct ring_mapping m;
	struct ring_hdr *h;
	char *mem = aligned_alloc(4096, (size_t)size);

	cr_assert_not_null(mem);
	h = (struct ring_hdr *)mem;
	cr_assert_eq(ring_format(mem, (size_t)size - 1, &p), -EINVAL);
	cr_assert_eq(ring_format(mem, (size_t)size, &p), 0);
	cr_expect_eq(h->magic, RING_MAGIC);
	cr_expect_eq(h->cqes_off, RING_SQES_OFF + 64 * 32);
	cr_assert_eq(ring_attach(&m, mem, (size_t)size, &p), 0);
	cr_expect_eq(m.base, mem);
	cr_expect_eq(m.size, (size_t)size);
	cr_expect_eq(ring_attach(&m, mem, (size_t)size - 4096, &p), -EINVAL);
	cr_expect_eq(ring_attach(&m, mem + 4, (size_t)size - 64, &p), -EINVAL, "misaligned");
	cr_expect_eq(ring_format(mem + 32, (size_t)size - 64, &p), -EINVAL, "misaligned");

	/* any disagreement with the agreed parameters is a protocol error */
	q = p, q.sq_entries = 32;
	cr_expect_eq(ring_attach(&m, mem, (size_t)size, &q), -EPROTO);
	q = p, q.first_index = 8;
	cr_expect_eq(ring_attach(&m, mem, (size_t)size, &q), -EPROTO);
	q = p, q.cq_entries = 3;
	cr_expect_eq(ring_attach(&m, mem, (size_t)size, &q), -EINVAL);

	/* and so is any header field a peer changed (every byte of it) */
	for (size_t off = 0; off < sizeof(struct ring_hdr); off++) {
		mem[off] ^= 0x40;
		cr_expect_eq(ring_attach(&m, mem, (size_t)size, &p), -EPROTO, "header byte %zu", off);
		mem[off] ^= 0x40;
	}
	cr_expect_eq(ring_attach(&m, mem, (size_t)size, &p), 0);
	free(mem);
}

Test(ring_setup, create_is_sealed_and_maps)
{
	struct ring_params p = { 256, 256, 0 }, q = { 128, 256, 0 };
	ssize_t size = ring_mem_size(256, 256);
	struct ring_mapping m;
	struct ring_fds fds;
	int seals;

	cr_assert_eq(ring_fds_create(&fds, &p), 0);
	seals = fcntl(fds.memfd, F_GET_SEALS);
	cr_expect_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
		     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	cr_expect_eq(ftruncate(fds.memfd, 4096), -1, "a peer cannot shrink the ring");
	cr_expect_eq(lseek(fds.memfd, 0, SEEK_END), size);
	cr_expect_eq(ring_map(&m, fds.memfd, &q), -EPROTO, "wrong size");
	cr_assert_eq(ring_map(&m, fds.memfd, &p), 0);
	cr_expect(m.owned);
	cr_expect_eq(((struct ring_hdr *)m.base)->sq_entries, 256);
	ring_unmap(&m);
	cr_expect_null(m.base);
	cr_expect_eq(ring_eventfd_signal(fds.doorbell), 0);
	cr_expect_eq(ring_eventfd_consume(fds.doorbell), 0);
	cr_expect_eq(ring_eventfd_consume(fds.doorbell), -EAGAIN);
	cr_expect_eq(ring_eventfd_wait(fds.completion, 10), -ETIMEDOUT);
	cr_expect_eq(ring_eventfd_signal(fds.completion), 0);
	cr_expect_eq(ring_eventfd_wait(fds.completion, 1000), 0);
	ring_fds_close(&fds);
	cr_expect_eq(fds.memfd, -1);
	cr_expect_eq(ring_eventfd_signal(-1), -EBADF);
}

Test(ring_setup, roles_need_an_attached_mapping)
{
	struct ring_mapping m = { 0 };
	struct ring_sq_producer sqp;
	struct ring_cq_consumer cqc;

	cr_expect_eq(ring_sq_producer_init(&sqp, &m), -EINVAL);
	cr_expect_eq(ring_cq_consumer_init(&cqc, &m), -EINVAL);
}

/* Fill the SQ to the brim, see backpressure, drain in order; across 2^32. */
static void sq_fill_drain(uint32_t entries, uint32_t first, int rounds)
{
	struct fix f;
	struct dmasvc_sqe *in = calloc(entries + 1, sizeof(*in));
	struct dmasvc_sqe *out = calloc(entries + 1, sizeof(*out));
	uint64_t seq_in = 0, seq_out = 0;

	cr_assert(in && out);
	fix_init(&f, entries, entries, first);
	for (int r = 0; r < rounds; r++) {
		uint32_t posted = 0, got = 0;
		int n;

		/* post in bursts of 3 until full; the last burst is partial */
		for (;;) {
			for (int i = 0; i < 3; i++)
				t_sqe_fill(&in[i], seq_in + (uint64_t)i);
			n = ring_sq_post(&f.sqp, in, 3);
			cr_assert_geq(n, 0);
			seq_in += (uint64_t)n;
			posted += (uint32_t)n;
			if (n < 3)
				break;
		}
		cr_assert_eq(posted, entries, "exactly entries fit (round %d)", r);
		cr_assert_eq(ring_pvt_cons_avail(&f.sqc.core, UINT32_MAX), (int)entries,
			     "all of them are ready");
		cr_assert_eq(ring_pvt_cons_avail(&f.sqc.core, 1), 1);
		cr_assert_eq(ring_sq_post(&f.sqp, in, 1), 0, "full ring refuses");
		/* drain a few, so the next round starts at another offset */
		n = ring_sq_drain(&f.sqc, out, entries + 1);
		cr_assert_eq((uint32_t)n, entries);
		for (int i = 0; i < n; i++)
			cr_assert(t_sqe_check(&out[i], seq_out++), "entry %d of round %d", i, r);
		got = (uint32_t)n;
		cr_assert_eq(ring_sq_drain(&f.sqc, out, 1), 0, "empty ring gives nothing");
		cr_assert_eq(got, posted);
		/* shift the start offset by one slot each round */
		t_sqe_fill(&in[0], seq_in++);
		cr_assert_eq(ring_sq_post(&f.sqp, in, 1), 1);
		cr_assert_eq(ring_sq_drain(&f.sqc, out, 1), 1);
		cr_assert(t_sqe_check(&out[0], seq_out++));
	}
	fix_fini(&f);
	free(in);
	free(out);
}

Test(ring_queue, full_ring_backpressure_and_order)
{
	sq_fill_drain(2, 0, 5);
	sq_fill_drain(64, 0, 70);
	sq_fill_drain(1024, 12345, 3);
}

Test(ring_queue, indices_cross_2_pow_32)
{
	sq_fill_drain(8, UINT32_MAX - 20, 10);
	sq_fill_drain(64, UINT32_MAX, 3);
}

Test(ring_queue, cq_round_trip_across_2_pow_32)
{
	struct fix f;
	struct dmasvc_cqe in[16], out[16];
	uint64_t seq_in = 0, seq_out = 0;

	fix_init(&f, 4, 16, UINT32_MAX - 3);
	for (int r = 0; r < 50; r++) {
		uint32_t burst = (uint32_t)(r % 16) + 1;
		int n;

		for (uint32_t i = 0; i < burst; i++)
			t_cqe_fill(&in[i], seq_in + i);
		n = ring_cq_post(&f.cqp, in, burst);
		cr_assert_eq((uint32_t)n, burst);
		seq_in += burst;
		cr_assert_eq(ring_pvt_cons_avail(&f.cqc.core, 16), (int)burst);
		n = ring_cq_drain(&f.cqc, out, 16);
		cr_assert_eq((uint32_t)n, burst);
		for (int i = 0; i < n; i++)
			cr_assert(t_cqe_check(&out[i], seq_out++));
	}
	fix_fini(&f);
}

/*
 * A staged batch: invisible to the consumer (shared tail unchanged, drain
 * and the wait re-check find nothing) until one publish makes all of it
 * visible in order; staged slots count against the space; a post publishes
 * what was staged before it.  Across 2^32.
 */
static void staged_batch(uint32_t first)
{
	struct fix f;
	struct dmasvc_sqe in[8], out[9];
	uint32_t tail0;

	fix_init(&f, 8, 8, first);
	for (int i = 0; i < 8; i++)
		t_sqe_fill(&in[i], (uint64_t)i);
	tail0 = f.shm->sq.tail.value;
	cr_assert_eq(ring_sq_stage(&f.sqp, in, 3), 3);
	cr_assert_eq(ring_sq_staged(&f.sqp), 3);
	cr_expect_eq(f.shm->sq.tail.value, tail0, "staging stores no tail");
	cr_expect_not(ring_sq_pending(&f.sqc), "the consumer sees nothing staged");
	cr_assert_eq(ring_sq_drain(&f.sqc, out, 8), 0);
	cr_assert_eq(ring_sq_drain_wait_begin(&f.sqc), 1, "still empty for a sleeper");
	cr_assert_eq(ring_sq_stage(&f.sqp, in + 3, 6), 5, "staged slots count as used");
	cr_assert_eq(ring_sq_stage(&f.sqp, in, 1), 0, "full");
	cr_assert_eq(ring_sq_drain(&f.sqc, out, 8), 0);
	cr_assert_eq(ring_sq_publish(&f.sqp), 8, "one publish for the whole batch");
	cr_expect_eq(f.shm->sq.tail.value, tail0 + 8);
	cr_expect(ring_sq_post_should_wake(&f.sqp), "the sleeper is signalled once, after the publish");
	ring_sq_drain_wait_end(&f.sqc);
	cr_assert_eq(ring_sq_publish(&f.sqp), 0, "nothing left staged");
	cr_assert_eq(ring_sq_drain(&f.sqc, out, 9), 8);
	for (int i = 0; i < 8; i++)
		cr_assert(t_sqe_check(&out[i], (uint64_t)i), "entry %d in staging order", i);
	/* post publishes what was staged before it, in order; a post that
	 * fits nothing publishes nothing (its 0 means "no tail store") */
	t_sqe_fill(&in[0], 100);
	t_sqe_fill(&in[1], 101);
	cr_assert_eq(ring_sq_stage(&f.sqp, &in[0], 1), 1);
	cr_assert_eq(ring_sq_post(&f.sqp, &in[1], 0), 0);
	cr_assert_eq(ring_sq_staged(&f.sqp), 1, "an empty post publishes nothing");
	cr_expect_eq(f.shm->sq.tail.value, tail0 + 8);
	cr_assert_eq(ring_sq_post(&f.sqp, &in[1], 1), 1);
	cr_assert_eq(ring_sq_staged(&f.sqp), 0);
	cr_assert_eq(ring_sq_drain(&f.sqc, out, 9), 2);
	cr_assert(t_sqe_check(&out[0], 100));
	cr_assert(t_sqe_check(&out[1], 101));
	fix_fini(&f);
}

Test(ring_queue, staged_batch_published_at_once)
{
	staged_batch(0);
	staged_batch(UINT32_MAX - 4);
}

/*
 * A consumer head past the published tail is impossible even while entries
 * are staged beyond it: staging does not widen what the producer accepts.
 */
Test(ring_hostile_values, head_into_staged_slots_is_eproto)
{
	struct fix f;
	struct dmasvc_sqe in[4] = { 0 };

	fix_init(&f, 8, 8, 0);
	cr_assert_eq(ring_sq_post(&f.sqp, in, 2), 2);
	cr_assert_eq(ring_sq_stage(&f.sqp, in, 4), 4);
	f.shm->sq.head.value = 3; /* one into the staged slots */
	cr_assert_eq(ring_sq_stage(&f.sqp, in, 4), RING_EPROTO, "refresh rejects the head");
	cr_assert_eq(ring_sq_post(&f.sqp, in, 1), RING_EPROTO, "sticky");
	cr_expect_eq(f.shm->sq.tail.value, 2, "nothing more published");
	fix_fini(&f);
}

/*
 * The consumer's verdict on a tail written by a hostile producer, from a
 * state with head = H and a validated tail_cache = H + 3 (entries 8).
 */
Test(ring_hostile_values, consumer_tail_verdicts)
{
	static const struct {
		int64_t delta; /* tail - H */
		int want;      /* entries returned with max = 16, or RING_EPROTO */
	} cases[] = {
		{ 3, 3 },                  /* unchanged */
		{ 4, 4 },                  /* forward */
		{ 8, 8 },                  /* exactly full */
		{ 9, RING_EPROTO },        /* more than entries filled */
		{ 2, RING_EPROTO },        /* backwards, still ahead of head */
		{ -1, RING_EPROTO },       /* behind head */
		{ 0x80000000, RING_EPROTO },
		{ 0xffffffff, RING_EPROTO },
		{ 0x100000003, 3 },        /* same value modulo 2^32 */
	};
	static const uint32_t starts[] = { 0, 5, UINT32_MAX - 4, 0x7ffffffe };

	for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct fix f;
			struct dmasvc_sqe in[3] = { 0 }, out[16];
			uint32_t h = starts[s];
			int n;

			fix_init(&f, 8, 8, h);
			/* pass 3 entries through: head = tail_cache = start + 3 =: H */
			cr_assert_eq(ring_sq_post(&f.sqp, in, 3), 3);
			for (int k = 0; k < 3; k++)
				cr_assert_eq(ring_sq_drain(&f.sqc, out, 1), 1);
			h += 3;
			/* post 3 more; a drain of 0 entries must not refresh */
			cr_assert_eq(ring_sq_post(&f.sqp, in, 3), 3);
			cr_assert_eq(ring_sq_drain(&f.sqc, out, 0), 0);
			cr_assert_eq(f.sqc.core.tail_cache, h);
			/* wait_begin refreshes: tail_cache = H + 3, head = H */
			cr_assert_eq(ring_sq_drain_wait_begin(&f.sqc), 0, "entries there, no sleep");
			cr_assert_eq(f.sqc.core.tail_cache, h + 3);
			/* the hostile write */
			f.shm->sq.tail.value = (uint32_t)(h + (uint64_t)cases[i].delta);
			n = ring_sq_drain(&f.sqc, out, 16);
			cr_expect_eq(n, cases[i].want, "start %u delta %lld", starts[s], (long long)cases[i].delta);
			if (cases[i].want == RING_EPROTO) {
				/* sticky: every later call says the same, nothing moves */
				f.shm->sq.tail.value = h + 1;
				cr_expect_eq(ring_sq_drain(&f.sqc, out, 16), RING_EPROTO);
				cr_expect_eq(ring_sq_drain_wait_begin(&f.sqc), RING_EPROTO);
				cr_expect_not(ring_sq_drain_should_wake(&f.sqc));
				cr_expect_eq(f.shm->sq.head.value, h, "head not moved");
			}
			fix_fini(&f);
		}
	}
}

/*
 * The CQ producer's (service's) verdict on a head written by a hostile
 * client, from a full CQ: tail = B + 8, validated head_cache = B (entries 8).
 */
Test(ring_hostile_values, producer_head_verdicts)
{
	static const struct {
		int64_t delta; /* head - B */
		int want;      /* entries accepted of 16, or RING_EPROTO */
	} cases[] = {
		{ 0, 0 },                  /* unchanged: still full */
		{ 2, 2 },                  /* forward */
		{ 8, 8 },                  /* head == tail: all free */
		{ 9, RING_EPROTO },        /* head beyond tail */
		{ -1, RING_EPROTO },       /* backwards */
		{ -4, RING_EPROTO },       /* backwards, still within tail - entries */
		{ 0x80000000, RING_EPROTO },
		{ 0xffffffff, RING_EPROTO },
		{ 0x100000002, 2 },        /* same value modulo 2^32 */
	};
	static const uint32_t starts[] = { 0, UINT32_MAX - 2, 0x80000001 };

	for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct fix f;
			struct dmasvc_cqe in[16] = { 0 }, out[16];
			uint32_t base;
			int n;

			fix_init(&f, 8, 8, starts[s]);
			/* tail = start + 8 (full), head_cache = start */
			cr_assert_eq(ring_cq_post(&f.cqp, in, 8), 8);
			cr_assert_eq(ring_cq_drain(&f.cqc, out, 5), 5);
			/* refresh: head_cache = start + 5 */
			cr_assert_eq(ring_cq_post(&f.cqp, in, 5), 5);
			/* tail = start + 13; client drains 0 more: head = start + 5 */
			base = starts[s] + 5;
			cr_assert_eq(f.cqp.core.head_cache, base);
			cr_assert_eq(f.cqp.core.tail, base + 8);
			/* client catches up by 5: the state of the table */
			cr_assert_eq(ring_cq_drain(&f.cqc, out, 5), 5);
			cr_assert_eq(ring_cq_post(&f.cqp, in, 5), 5);
			base += 5;
			cr_assert_eq(f.cqp.core.head_cache, base);
			cr_assert_eq(f.cqp.core.tail - base, 8, "full again");
			/* drain 5 properly but then overwrite with the hostile value */
			cr_assert_eq(ring_cq_drain(&f.cqc, out, 5), 5);
			f.shm->cq.head.value = (uint32_t)(base + (uint64_t)cases[i].delta);
			n = ring_cq_post(&f.cqp, in, 16);
			cr_expect_eq(n, cases[i].want, "start %u delta %lld", starts[s], (long long)cases[i].delta);
			if (cases[i].want == RING_EPROTO) {
				f.shm->cq.head.value = base + 5;
				cr_expect_eq(ring_cq_post(&f.cqp, in, 1), RING_EPROTO);
				cr_expect_eq(ring_cq_post_wait_begin(&f.cqp), RING_EPROTO);
				cr_expect_not(ring_cq_post_should_wake(&f.cqp));
			}
			fix_fini(&f);
		}
	}
}

/* A side never reads back the words it writes: scribbling them changes nothing. */
Test(ring_hostile_values, own_words_are_never_read_back)
{
	struct fix f;
	struct dmasvc_sqe in[4], out[4];
	struct dmasvc_cqe cin[4], cout[4];
	uint64_t seq_out = 0;

	fix_init(&f, 4, 4, 0);
	for (uint64_t seq = 0; seq < 64; seq += 2) {
		t_sqe_fill(&in[0], seq);
		t_sqe_fill(&in[1], seq + 1);
		cr_assert_eq(ring_sq_post(&f.sqp, in, 2), 2);
		/* the client scribbles the service's head and flag, and the header */
		f.shm->sq.head.value = (uint32_t)(seq * 77 + 13);
		f.shm->sq.cons_wait.value = (uint32_t)seq;
		memset(&f.shm->hdr, (int)seq, sizeof(f.shm->hdr));
		cr_assert_eq(ring_sq_drain(&f.sqc, out, 4), 2);
		cr_assert(t_sqe_check(&out[0], seq_out++));
		cr_assert(t_sqe_check(&out[1], seq_out++));
		/* CQ: the client scribbles the service's tail and flag */
		t_cqe_fill(&cin[0], seq);
		cr_assert_eq(ring_cq_post(&f.cqp, cin, 1), 1);
		f.shm->cq.tail.value = (uint32_t)(seq * 31 + 5);
		f.shm->cq.prod_wait.value = (uint32_t)~seq;
		f.shm->cq.tail.value = f.cqp.core.tail; /* client must see the real tail again to drain */
		cr_assert_eq(ring_cq_drain(&f.cqc, cout, 4), 1);
		cr_assert(t_cqe_check(&cout[0], seq));
		/* restore the SQ head a producer needs to see, like an honest service would */
		f.shm->sq.head.value = f.sqc.core.head;
	}
	cr_expect_eq(f.sqc.core.error, 0);
	cr_expect_eq(f.cqp.core.error, 0);
	fix_fini(&f);
}

Test(ring_wakeup, consumer_sleep_protocol)
{
	struct fix f;
	struct dmasvc_sqe in[2] = { 0 }, out[2];

	fix_init(&f, 4, 4, 0);
	cr_expect_not(ring_sq_post_should_wake(&f.sqp), "nobody sleeps yet");
	cr_assert_eq(ring_sq_drain_wait_begin(&f.sqc), 1, "empty: may sleep");
	cr_expect_eq(f.shm->sq.cons_wait.value, RING_WAIT_SLEEPING);
	cr_assert_eq(ring_sq_post(&f.sqp, in, 1), 1);
	cr_expect(ring_sq_post_should_wake(&f.sqp), "sleeping consumer must be signalled");
	ring_sq_drain_wait_end(&f.sqc);
	cr_expect_eq(f.shm->sq.cons_wait.value, 0);
	cr_expect_not(ring_sq_post_should_wake(&f.sqp));
	/* entries already there: no sleep, flag withdrawn */
	cr_assert_eq(ring_sq_drain_wait_begin(&f.sqc), 0);
	cr_expect_eq(f.shm->sq.cons_wait.value, 0);
	cr_assert_eq(ring_sq_drain(&f.sqc, out, 2), 1);
	/* other bits of a peer-written flag word mean nothing */
	f.shm->sq.cons_wait.value = 0xfffffffe;
	cr_expect_not(ring_sq_post_should_wake(&f.sqp));
	fix_fini(&f);
}

Test(ring_wakeup, producer_space_protocol)
{
	struct fix f;
	struct dmasvc_cqe in[4] = { 0 }, out[4];

	fix_init(&f, 4, 4, 0);
	cr_assert_eq(ring_cq_post_wait_begin(&f.cqp), 0, "space: no sleep");
	cr_expect_eq(f.shm->cq.prod_wait.value, 0);
	cr_assert_eq(ring_cq_post(&f.cqp, in, 4), 4);
	cr_assert_eq(ring_cq_post_wait_begin(&f.cqp), 1, "full: may sleep");
	cr_expect_eq(f.shm->cq.prod_wait.value, RING_WAIT_SLEEPING);
	cr_assert_eq(ring_cq_drain(&f.cqc, out, 1), 1);
	cr_expect(ring_cq_drain_should_wake(&f.cqc), "the waiting producer must be signalled");
	ring_cq_post_wait_end(&f.cqp);
	cr_expect_not(ring_cq_drain_should_wake(&f.cqc));
	cr_assert_eq(ring_cq_post(&f.cqp, in, 4), 1);
	fix_fini(&f);
}
