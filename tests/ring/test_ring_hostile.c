/* SPDX-License-Identifier: MIT */
/*
 * test_ring_hostile.c - a hostile client process against the service side
 * of the ring, with the service's mapping fenced by PROT_NONE guard pages.
 *
 * SQ direction: the victim (this process) is the SQ consumer; the child is
 * a hand-written producer that
 *   phase 0: posts honest, sequence-numbered SQEs while scribbling random
 *            bytes on every shared field the consumer must ignore (header,
 *            the consumer's own head and wait flag, guard lines, free slots,
 *            the whole CQ side); the victim must receive exactly the
 *            sequence;
 *   phase 1: writes random and adversarial values into every shared word
 *            and entry byte, tail included;
 *   phase 2: writes a tail that is impossible for the victim's state (one
 *            behind the last tail it accepted) until the victim reports it.
 * CQ direction: the victim is the CQ producer and the child a hand-written
 * consumer doing the same with the CQ head.
 *
 * The victim asserts: no access outside the ring (the guard pages fault,
 * ASan in the asan build), every return is a count within the request or
 * RING_EPROTO, the private index invariant holds after every call, the
 * protocol error is reported and then sticks.
 *
 * "pub" fields: the victim publishes its private indices through a separate
 * shared page so the child can aim its adversarial values; the ring code
 * never sees that page.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ring_test_util.h"
/* white-box: reads private core fields (r.core.*) to check the private index invariant and the accepted peer index */
#include <dmasvc/ring_core_pvt.h>

#define ENTRIES 64
#define HONEST 200000       /* entries passed in phase 0 */
#define CHAOS_MS 400        /* phase 1 length */
#define FINAL_TIMEOUT_S 20  /* phase 2 must end in EPROTO within this */
#define MAX_BURST 64

enum { PHASE_HONEST, PHASE_CHAOS, PHASE_FINAL };

struct hostile_shared {
	struct ring_params params;
	int memfd;
	const void *victim_base;
	uint32_t phase;      /* PHASE_*: victim moves 0 -> 1 (SQ) or child does (CQ); child 1 -> 2 */
	uint32_t pub_index;  /* victim's own index: SQ head / CQ tail */
	uint32_t pub_cache;  /* victim's cached peer index: SQ tail_cache / CQ head_cache */
	uint32_t eproto;     /* victim saw RING_EPROTO */
	char err[256];
};

/* pub page accesses: release/acquire so that a published CQ tail also publishes the CQEs */
static uint32_t pub_read(const uint32_t *p)
{
	return ring_load_acquire(p);
}

static void pub_write(uint32_t *p, uint32_t v)
{
	ring_store_release(p, v);
}

#define CHILD_FAIL(sh, ...) \
	do { \
		snprintf((sh)->err, sizeof((sh)->err), __VA_ARGS__); \
		return 1; \
	} while (0)

/* A value for a peer index: random, extreme, or just outside/inside the legal window. */
static uint32_t adversarial(struct t_rng *rng, uint32_t ref, uint32_t cache)
{
	switch (t_rng_range(rng, 0, 9)) {
	case 0: return (uint32_t)t_rng_next(rng);
	case 1: return 0;
	case 2: return UINT32_MAX;
	case 3: return cache - 1;
	case 4: return ref + ENTRIES;
	case 5: return ref + ENTRIES + 1;
	case 6: return ref + 0x80000000u;
	case 7: return ref - t_rng_range(rng, 1, ENTRIES);
	case 8: return cache + t_rng_range(rng, 0, ENTRIES);
	default: return ref + t_rng_range(rng, 0, 2 * ENTRIES);
	}
}

/* A byte range of the mapping the child may scribble on. */
struct region {
	size_t off, len;
};

/* Write one random byte or word at a random place inside one of @regs. */
static void scribble(struct t_rng *rng, char *base, const struct region *regs, size_t nregs)
{
	const struct region *r = &regs[t_rng_range(rng, 0, (uint32_t)nregs - 1)];
	size_t off = r->off + t_rng_range(rng, 0, (uint32_t)r->len - 1);

	if (t_rng_range(rng, 0, 1) && off % 4 == 0 && off + 4 <= r->off + r->len)
		ring_write_once((uint32_t *)(base + off), (uint32_t)t_rng_next(rng));
	else
		base[off] = (char)t_rng_next(rng);
}

#define LINE(q, field) { offsetof(struct ring_shm, q) + offsetof(struct ring_queue_shm, field), RING_CACHE_LINE }

/* Map the ring in the child at its own address, dropping the inherited one. */
static char *child_map(struct hostile_shared *sh, size_t size)
{
	char *base = t_map_elsewhere(sh->memfd, size, sh->victim_base);

	if (base)
		t_unmap_guarded((void *)sh->victim_base, size);
	return base;
}

/* The service side of a hostile test: a guarded mapping, exact-size buffers, the child. */
struct victim {
	struct hostile_shared *sh;
	int fd;
	void *base;
	size_t size;
	struct ring_mapping m;
	void *bufs[MAX_BURST + 1]; /* bufs[i]: exactly i entries, so ASan sees any overrun */
	pid_t child;
};

static void victim_start(struct victim *v, const struct ring_params *p, size_t esize, int (*child_fn)(void *))
{
	v->sh = t_shared_alloc(sizeof(*v->sh));
	cr_assert_not_null(v->sh);
	v->size = (size_t)ring_mem_size(p->sq_entries, p->cq_entries);
	v->fd = ring_create(p);
	cr_assert_geq(v->fd, 0);
	v->base = t_map_guarded(v->fd, v->size);
	cr_assert_not_null(v->base);
	cr_assert_eq(ring_attach(&v->m, v->base, v->size, p), 0);
	for (uint32_t i = 1; i <= MAX_BURST; i++)
		cr_assert_not_null(v->bufs[i] = malloc(i * esize));
	*v->sh = (struct hostile_shared){ .params = *p, .memfd = v->fd, .victim_base = v->base,
					  .pub_index = p->first_index, .pub_cache = p->first_index };
	v->child = t_spawn(child_fn, v->sh);
	cr_assert_gt(v->child, 0);
}

/* Tell the child the error was seen, collect it, free everything. */
static void victim_finish(struct victim *v)
{
	int rc;

	pub_write(&v->sh->eproto, 1);
	rc = t_reap(v->child, 30);
	cr_assert_eq(rc, 0, "child exit %d: %s", rc, v->sh->err);
	for (uint32_t i = 1; i <= MAX_BURST; i++)
		free(v->bufs[i]);
	t_unmap_guarded(v->base, v->size);
	close(v->fd);
	t_shared_free(v->sh, sizeof(*v->sh));
}

/* ---------------------------------------------------------- SQ direction */

static int sq_child(void *arg)
{
	struct hostile_shared *sh = arg;
	struct t_rng rng = { 0x5eed };
	size_t size = (size_t)ring_mem_size(ENTRIES, ENTRIES);
	char *base = child_map(sh, size);
	struct ring_shm *shm = (struct ring_shm *)base;
	struct dmasvc_sqe *sqes = (struct dmasvc_sqe *)(base + RING_SQES_OFF);
	uint32_t tail = sh->params.first_index;
	uint64_t seq = 0, t_end;
	/* everything the consumer must never read or must ignore */
	const struct region ignored[] = {
		{ 0, 2 * RING_CACHE_LINE },                  /* header + guard */
		{ offsetof(struct ring_shm, sq) + 4, RING_CACHE_LINE - 4 }, /* tail line padding */
		{ offsetof(struct ring_shm, sq) + RING_CACHE_LINE, 7 * RING_CACHE_LINE }, /* head, flags, guards */
		{ offsetof(struct ring_shm, cq), sizeof(struct ring_queue_shm) },
		{ RING_SQES_OFF + ENTRIES * sizeof(struct dmasvc_sqe), ENTRIES * sizeof(struct dmasvc_cqe) },
	};

	if (!base)
		CHILD_FAIL(sh, "map failed");
	/* phase 0: honest posts + scribbles, until the victim moves on */
	while (pub_read(&sh->phase) == PHASE_HONEST) {
		uint32_t head = pub_read(&sh->pub_index), free = ENTRIES - (tail - head);
		uint32_t b = t_burst(&rng, MAX_BURST);

		if (free > ENTRIES)
			CHILD_FAIL(sh, "victim head %u beyond tail %u", head, tail);
		if (b > free)
			b = free;
		for (uint32_t i = 0; i < b; i++)
			t_sqe_fill(&sqes[(tail + i) & (ENTRIES - 1)], seq++);
		tail += b;
		ring_store_release(&shm->sq.tail.value, tail);
		for (int k = 0; k < 8; k++)
			scribble(&rng, base, ignored, sizeof(ignored) / sizeof(ignored[0]));
		/* free slots: the consumer must not read past the published tail */
		head = pub_read(&sh->pub_index);
		for (uint32_t k = 0; k < ENTRIES - (tail - head) && k < 4; k++)
			memset(&sqes[(tail + k) & (ENTRIES - 1)], (int)t_rng_next(&rng), sizeof(*sqes));
		if (t_rng_range(&rng, 0, 63) == 0)
			sched_yield();
	}
	/* phase 1: anything anywhere */
	t_end = t_now_ns() + CHAOS_MS * 1000000ull;
	while (t_now_ns() < t_end) {
		const struct region all[] = { { 0, size } };
		uint32_t ref = pub_read(&sh->pub_index), cache = pub_read(&sh->pub_cache);

		ring_write_once(&shm->sq.tail.value, adversarial(&rng, ref, cache));
		for (int k = 0; k < 4; k++)
			scribble(&rng, base, all, 1);
	}
	/* phase 2: one behind the last accepted tail is impossible in any state */
	pub_write(&sh->phase, PHASE_FINAL);
	t_end = t_now_ns() + FINAL_TIMEOUT_S * 1000000000ull;
	while (!pub_read(&sh->eproto)) {
		if (t_now_ns() > t_end)
			CHILD_FAIL(sh, "victim never reported the protocol error");
		ring_write_once(&shm->sq.tail.value, pub_read(&sh->pub_cache) - 1);
		sched_yield();
	}
	munmap(base, size);
	return 0;
}

/* Once broken, a consumer stays broken whatever the peer writes now. */
static void sq_expect_sticky(struct ring_sq_consumer *c, struct dmasvc_sqe *buf)
{
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(ring_sq_drain(c, buf, MAX_BURST), RING_EPROTO);
		cr_assert_eq(ring_sq_drain_wait_begin(c), RING_EPROTO);
		cr_assert_not(ring_sq_drain_should_wake(c));
	}
}

Test(ring_hostile, sq_producer_lies, .timeout = 120)
{
	struct ring_params p = { ENTRIES, ENTRIES, UINT32_MAX - 5000 };
	struct dmasvc_sqe **bufs;
	struct t_rng rng = { 77 };
	struct ring_sq_consumer c;
	struct hostile_shared *sh;
	struct victim v;
	uint64_t seq = 0, calls = 0, got_chaos = 0, errors = 0, deadline = t_now_ns() + 90 * 1000000000ull;
	int n;

	victim_start(&v, &p, sizeof(struct dmasvc_sqe), sq_child);
	sh = v.sh;
	bufs = (struct dmasvc_sqe **)v.bufs;
	cr_assert_eq(ring_sq_consumer_init(&c, &v.m), 0);

	for (;;) {
		uint32_t b = t_burst(&rng, MAX_BURST), phase = pub_read(&sh->phase);

		cr_assert_lt(t_now_ns(), deadline, "phase %u, %llu honest entries", phase, (unsigned long long)seq);
		switch (t_rng_range(&rng, 0, 15)) {
		case 0:
			n = ring_sq_drain_wait_begin(&c);
			cr_assert(n == 0 || n == 1 || n == RING_EPROTO, "wait_begin %d", n);
			ring_sq_drain_wait_end(&c);
			if (n != RING_EPROTO)
				n = 0;
			break;
		case 1:
			(void)ring_sq_drain_should_wake(&c); /* reads a hostile flag: any answer is fine */
			n = 0;
			break;
		default:
			n = ring_sq_drain(&c, bufs[b], b);
			break;
		}
		calls++;
		cr_assert(n == RING_EPROTO || (n >= 0 && (uint32_t)n <= b), "drain returned %d for %u", n, b);
		if (n == RING_EPROTO) {
			cr_assert_neq(phase, PHASE_HONEST, "an honest producer was called a liar");
			sq_expect_sticky(&c, bufs[MAX_BURST]);
			errors++;
			if (phase == PHASE_FINAL)
				break;
			/* chaos: start over as a fresh session would, and keep going */
			cr_assert_eq(ring_sq_consumer_init(&c, &v.m), 0);
			continue;
		}
		cr_assert_leq(c.core.tail_cache - c.core.head, ENTRIES, "private invariant");
		if (phase == PHASE_HONEST) {
			for (int i = 0; i < n; i++, seq++)
				cr_assert(t_sqe_check(&bufs[b][i], seq), "honest SQE %llu", (unsigned long long)seq);
			if (seq >= HONEST)
				pub_write(&sh->phase, PHASE_CHAOS);
		} else {
			got_chaos += (uint64_t)(n > 0 ? n : 0);
		}
		pub_write(&sh->pub_cache, c.core.tail_cache);
		pub_write(&sh->pub_index, c.core.head);
	}
	cr_expect_geq(seq, HONEST);
	cr_expect_gt(errors, 1, "chaos produced protocol errors before the final one");
	victim_finish(&v);
	cr_log_info("SQ: %llu calls, %llu honest entries, %llu entries accepted and %llu errors in chaos",
		    (unsigned long long)calls, (unsigned long long)seq, (unsigned long long)got_chaos,
		    (unsigned long long)errors);
}

/* ---------------------------------------------------------- CQ direction */

static int cq_child(void *arg)
{
	struct hostile_shared *sh = arg;
	struct t_rng rng = { 0xc0ffee };
	size_t size = (size_t)ring_mem_size(ENTRIES, ENTRIES);
	char *base = child_map(sh, size);
	struct ring_shm *shm = (struct ring_shm *)base;
	const struct dmasvc_cqe *cqes =
		(const struct dmasvc_cqe *)(base + RING_SQES_OFF + ENTRIES * sizeof(struct dmasvc_sqe));
	uint32_t head = sh->params.first_index;
	uint64_t seq = 0, t_end;
	/* everything the producer must never read back or must ignore */
	const struct region ignored[] = {
		{ 0, 2 * RING_CACHE_LINE },
		{ offsetof(struct ring_shm, sq), sizeof(struct ring_queue_shm) },
		LINE(cq, tail), LINE(cq, __guard0), LINE(cq, __guard1), LINE(cq, cons_wait),
		LINE(cq, __guard2), LINE(cq, prod_wait), LINE(cq, __guard3),
		{ offsetof(struct ring_shm, cq) + offsetof(struct ring_queue_shm, head) + 4, RING_CACHE_LINE - 4 },
		{ RING_SQES_OFF, ENTRIES * sizeof(struct dmasvc_sqe) },
	};

	if (!base)
		CHILD_FAIL(sh, "map failed");
	/* phase 0: honest drains (tail taken from the pub page) + scribbles */
	while (seq < HONEST) {
		uint32_t tail = pub_read(&sh->pub_index), avail = tail - head;
		uint32_t b = t_burst(&rng, MAX_BURST);

		if (avail > ENTRIES)
			CHILD_FAIL(sh, "victim tail %u vs head %u", tail, head);
		if (b > avail)
			b = avail;
		for (uint32_t i = 0; i < b; i++, seq++)
			if (!t_cqe_check(&cqes[(head + i) & (ENTRIES - 1)], seq))
				CHILD_FAIL(sh, "honest CQE %llu wrong", (unsigned long long)seq);
		head += b;
		ring_store_release(&shm->cq.head.value, head);
		for (int k = 0; k < 8; k++)
			scribble(&rng, base, ignored, sizeof(ignored) / sizeof(ignored[0]));
		if (t_rng_range(&rng, 0, 63) == 0)
			sched_yield();
	}
	pub_write(&sh->phase, PHASE_CHAOS);
	/* phase 1: anything anywhere */
	t_end = t_now_ns() + CHAOS_MS * 1000000ull;
	while (t_now_ns() < t_end) {
		const struct region all[] = { { 0, size } };
		uint32_t ref = pub_read(&sh->pub_index), cache = pub_read(&sh->pub_cache);

		ring_write_once(&shm->cq.head.value, adversarial(&rng, ref, cache));
		for (int k = 0; k < 4; k++)
			scribble(&rng, base, all, 1);
	}
	/* phase 2: a head ahead of the producer's tail is impossible */
	pub_write(&sh->phase, PHASE_FINAL);
	t_end = t_now_ns() + FINAL_TIMEOUT_S * 1000000000ull;
	while (!pub_read(&sh->eproto)) {
		if (t_now_ns() > t_end)
			CHILD_FAIL(sh, "victim never reported the protocol error");
		ring_write_once(&shm->cq.head.value, pub_read(&sh->pub_index) + 1);
		sched_yield();
	}
	munmap(base, size);
	return 0;
}

static void cq_expect_sticky(struct ring_cq_producer *p, const struct dmasvc_cqe *buf)
{
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(ring_cq_post(p, buf, 1), RING_EPROTO);
		cr_assert_eq(ring_cq_post_wait_begin(p), RING_EPROTO);
		cr_assert_not(ring_cq_post_should_wake(p));
	}
}

Test(ring_hostile, cq_consumer_lies, .timeout = 120)
{
	struct ring_params p = { ENTRIES, ENTRIES, 0x7fffff00 };
	struct dmasvc_cqe **bufs;
	struct t_rng rng = { 78 };
	struct ring_cq_producer prod;
	struct hostile_shared *sh;
	struct victim v;
	uint64_t seq = 0, calls = 0, got_chaos = 0, errors = 0, deadline = t_now_ns() + 90 * 1000000000ull;
	int n;

	victim_start(&v, &p, sizeof(struct dmasvc_cqe), cq_child);
	sh = v.sh;
	bufs = (struct dmasvc_cqe **)v.bufs;
	cr_assert_eq(ring_cq_producer_init(&prod, &v.m), 0);

	for (;;) {
		uint32_t b = t_burst(&rng, MAX_BURST), phase = pub_read(&sh->phase);

		cr_assert_lt(t_now_ns(), deadline, "phase %u, %llu posted", phase, (unsigned long long)seq);
		switch (t_rng_range(&rng, 0, 15)) {
		case 0:
			n = ring_cq_post_wait_begin(&prod);
			cr_assert(n == 0 || n == 1 || n == RING_EPROTO, "wait_begin %d", n);
			ring_cq_post_wait_end(&prod);
			if (n != RING_EPROTO)
				n = 0;
			break;
		case 1:
			(void)ring_cq_post_should_wake(&prod);
			n = 0;
			break;
		default:
			for (uint32_t i = 0; i < b; i++)
				t_cqe_fill(&bufs[b][i], seq + i);
			n = ring_cq_post(&prod, bufs[b], b);
			break;
		}
		calls++;
		cr_assert(n == RING_EPROTO || (n >= 0 && (uint32_t)n <= b), "post returned %d for %u", n, b);
		if (n == RING_EPROTO) {
			/*
			 * The child moves to chaos on its own: read the phase again.
			 * It publishes the phase before its first lie (x86 keeps
			 * stores in order), so a lie seen now means phase > 0.
			 */
			phase = pub_read(&sh->phase);
			cr_assert_neq(phase, PHASE_HONEST, "an honest client was called a liar");
			cq_expect_sticky(&prod, bufs[1]);
			errors++;
			if (phase == PHASE_FINAL)
				break;
			cr_assert_eq(ring_cq_producer_init(&prod, &v.m), 0);
			continue;
		}
		if (phase != PHASE_HONEST)
			got_chaos += (uint64_t)n;
		seq += (uint64_t)n;
		cr_assert_leq(prod.core.tail - prod.core.head_cache, ENTRIES, "private invariant");
		pub_write(&sh->pub_cache, prod.core.head_cache);
		pub_write(&sh->pub_index, prod.core.tail);
	}
	cr_expect_gt(errors, 1, "chaos produced protocol errors before the final one");
	victim_finish(&v);
	cr_log_info("CQ: %llu calls, %llu CQEs posted, %llu accepted and %llu errors in chaos",
		    (unsigned long long)calls, (unsigned long long)seq, (unsigned long long)got_chaos,
		    (unsigned long long)errors);
}

/* ------------------------------------------- the fence itself is real */

static int touch_byte(void *arg)
{
	char c;

	memcpy(&c, arg, 1); /* the result depends on it: the load happens */
	return c == 42 ? 3 : 2; /* reaching here at all is the failure */
}

/* A byte just before and just after a guarded ring faults (so the tests above would see a stray access). */
Test(ring_hostile, guard_pages_fault)
{
	struct ring_params p = { ENTRIES, ENTRIES, 0 };
	size_t size = (size_t)ring_mem_size(ENTRIES, ENTRIES);
	int fd = ring_create(&p);
	char *base;
	int rc;

	cr_assert_geq(fd, 0);
	base = t_map_guarded(fd, size);
	cr_assert_not_null(base);
	cr_expect_eq(touch_byte(base), 2, "the ring itself is readable");
	rc = t_reap(t_spawn(touch_byte, base - 1), 30);
	cr_expect(rc != 2 && rc != 3 && rc != -ETIMEDOUT, "read before the ring did not fault (%d)", rc);
	rc = t_reap(t_spawn(touch_byte, base + size), 30);
	cr_expect(rc != 2 && rc != 3 && rc != -ETIMEDOUT, "read after the ring did not fault (%d)", rc);
	t_unmap_guarded(base, size);
	close(fd);
}
