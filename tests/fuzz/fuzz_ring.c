/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ring.c - libFuzzer target: the service side of one ring (SQ
 * consumer, validation, execution on the software model, CQ producer with
 * its backlog and wait flag) driven by a hostile client that writes
 * arbitrary values into the shared mapping between the service's turns.
 * The service code is ringsvc_ring_work(), exactly what the event loop calls.
 *
 * Input layout:
 *   byte 0   ring shape: sq_entries = 2 << (b & 3), cq_entries = sq << ((b >> 2) & 1);
 *            bit 3: async mode, every burst with events goes to the
 *            session's executor thread (d->bx set, d->async_bytes = 0) and
 *            each service turn ends with ringsvc_quiesce(), as the loop would
 *            finish it with ringsvc_complete()
 *   then     commands, each an opcode byte (low 3 bits) and its arguments:
 *     0 d8      SQ tail = client tail + (int8)d     (small lies)
 *     1 u32     SQ tail = u32                       (any value)
 *     2 d8      CQ head = client head + (int8)d
 *     3 u32     CQ head = u32
 *     4 s8 sqe  write SQE slot s (32 bytes, steered: fz_steer_sqe)
 *     5 w8      wait flags: bit0 SQ cons_wait, bit1 SQ prod_wait,
 *               bit2 CQ cons_wait, bit3 CQ prod_wait (set/clear)
 *     6 b8      the service works: ringsvc_ring_work(.., 1 + b % 4 bursts)
 *     7 n8      an honest client: post up to n % 8 + 1 NOPs and populates
 *               (each with a new user_data) and consume every CQE posted
 *   a final service turn runs after the last command.
 *
 * Oracles after each service turn (unless it returned RING_EPROTO, after
 * which the session would be dropped and the input ends):
 *   - every SQE the service drained got exactly one CQE, posted or in the
 *     backlog (sq head moved = cq tail moved + backlog), in order, with the
 *     user_data of the slot as it was when drained; res is 0 or -errno;
 *   - the CQ producer never had more than cq_entries unconsumed CQEs
 *     according to the last head it accepted (no overwrite);
 *   - region state equals what the model holds (fz_check_consistent).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_session.h"
#include "ring_service_priv.h"

#define MAX_EXPECT 4096

struct fz_ring {
	struct dsvc_ring *rg;
	struct ring_shm *shm;
	struct dmasvc_sqe *sqes;   /* shared slots (the client writes them) */
	struct dmasvc_cqe *cqes;
	uint32_t sq_entries, cq_entries;
	uint32_t sq_tail, cq_head; /* what this client last wrote */
	uint64_t next_ud;
	/* user_data of drained SQEs whose CQE has not been seen yet, in order */
	uint64_t expect[MAX_EXPECT];
	size_t exp_head, exp_tail;
};

static void ring_open(struct fz_session *f, struct fz_ring *r, uint8_t shape)
{
	struct dmasvc_ring_setup req;
	char err[256];
	int fds[3];

	memset(r, 0, sizeof(*r));
	r->sq_entries = 2u << (shape & 3);
	r->cq_entries = r->sq_entries << ((shape >> 2) & 1);
	req = (struct dmasvc_ring_setup){ .sq_entries = r->sq_entries, .cq_entries = r->cq_entries };
	FZ_CHECK(session_ring_setup(fz_service(), f->s, &req, &r->rg, fds, err, sizeof(err)) == 0,
		 "%s", err);
	close(fds[0]); /* the event loop closes its copy of the memfd after sending it */
	r->shm = r->rg->map.base;
	r->sqes = (struct dmasvc_sqe *)((char *)r->shm + RING_SQES_OFF);
	r->cqes = (struct dmasvc_cqe *)((char *)r->sqes + r->sq_entries * sizeof(struct dmasvc_sqe));
	r->next_ud = 1;
}

static uint32_t rd32(const uint8_t **p, const uint8_t *end)
{
	uint32_t v = 0;

	if (end - *p >= 4)
		memcpy(&v, *p, 4), *p += 4;
	else
		*p = end;
	return v;
}

static uint8_t rd8(const uint8_t **p, const uint8_t *end)
{
	return *p < end ? *(*p)++ : 0;
}

/* One service turn and its oracles.  Returns false once the ring is dead. */
static bool service_turn(struct fz_session *f, struct fz_ring *r, unsigned int bursts)
{
	struct dmasvc_sqe snap[16];
	uint32_t head0 = r->rg->sq.core.head, tail0 = r->rg->cq.core.tail;
	uint32_t drained, posted;
	int ret;

	memcpy(snap, r->sqes, r->sq_entries * sizeof(snap[0]));
	ret = ringsvc_ring_work(fz_service(), f->s, r->rg, bursts);
	FZ_CHECK(ret >= 0 || ret == RING_EPROTO, "ringsvc_ring_work returned %d", ret);
	if (ret >= 0) {
		ringsvc_quiesce(fz_service(), f->s); /* finish an async burst */
		if (f->s->broken)
			ret = RING_EPROTO;
	}
	FZ_CHECK(!f->s->busy, "session still busy after ringsvc_quiesce");
	if (ret < 0) {
		/* The session is dropped now: completions owed are moot, but
		 * the state must still match the model for the teardown. */
		fz_check_consistent(f);
		return false;
	}
	drained = r->rg->sq.core.head - head0;
	posted = r->rg->cq.core.tail - tail0;
	FZ_CHECK(r->rg->nr_backlog <= r->rg->sq_entries, "backlog %u", r->rg->nr_backlog);
	FZ_CHECK(r->rg->cq.core.tail - r->rg->cq.core.head_cache <= r->cq_entries,
		 "CQ producer is %u ahead of the accepted head", r->rg->cq.core.tail - r->rg->cq.core.head_cache);
	for (uint32_t i = 0; i < drained; i++) {
		FZ_CHECK(r->exp_tail - r->exp_head < MAX_EXPECT, "expect queue");
		r->expect[r->exp_tail++ % MAX_EXPECT] = snap[(head0 + i) & (r->sq_entries - 1)].user_data;
	}
	for (uint32_t i = 0; i < posted; i++) {
		const struct dmasvc_cqe *c = &r->cqes[(tail0 + i) & (r->cq_entries - 1)];

		FZ_CHECK(r->exp_head < r->exp_tail, "a CQE nobody asked for");
		FZ_CHECK(c->user_data == r->expect[r->exp_head % MAX_EXPECT],
			 "CQE %u carries user_data 0x%llx, expected 0x%llx", i,
			 (unsigned long long)c->user_data,
			 (unsigned long long)r->expect[r->exp_head % MAX_EXPECT]);
		FZ_CHECK(c->res <= 0 && c->res > -4096 && c->flags == 0, "CQE res %d flags %u", c->res,
			 c->flags);
		r->exp_head++;
	}
	FZ_CHECK(r->exp_tail - r->exp_head == r->rg->nr_backlog,
		 "%zu completions owed, backlog holds %u", r->exp_tail - r->exp_head, r->rg->nr_backlog);
	fz_check_consistent(f);
	return true;
}

/* Command 7: an honest client posts a few events and consumes all CQEs. */
static void honest_client(struct fz_session *f, struct fz_ring *r, unsigned int n)
{
	uint32_t head = ring_load_acquire(&r->shm->sq.head.value);
	uint32_t ctail = ring_load_acquire(&r->shm->cq.tail.value);

	for (unsigned int i = 0; i < n && r->sq_tail - head < r->sq_entries; i++) {
		struct dmasvc_sqe q = {
			.opcode = (uint8_t)(i % 3), .region_id = f->region_ids[i % FZ_NR_REGIONS],
			.offset = 0, .length = 4096u << (i % FZ_NR_REGIONS), .user_data = r->next_ud++,
			.__reserved = 0x8000,
		};

		fz_steer_sqe(f, &q);
		r->sqes[r->sq_tail & (r->sq_entries - 1)] = q;
		r->sq_tail++;
	}
	ring_store_release(&r->shm->sq.tail.value, r->sq_tail);
	r->cq_head = ctail;
	ring_store_release(&r->shm->cq.head.value, r->cq_head);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct fz_session f;
	struct fz_ring r;
	bool alive = true;

	if (size < 1)
		return 0;
	fz_service()->bx = (data[0] & 8) ? fz_bx_queue() : NULL;
	fz_service()->async_bytes = 0;
	fz_session_open(&f);
	ring_open(&f, &r, rd8(&p, end));
	while (alive && p < end) {
		uint8_t op = rd8(&p, end) & 7;

		switch (op) {
		case 0:
		case 1:
			r.sq_tail = op == 0 ? r.sq_tail + (uint32_t)(int8_t)rd8(&p, end) : rd32(&p, end);
			ring_store_release(&r.shm->sq.tail.value, r.sq_tail);
			break;
		case 2:
		case 3:
			r.cq_head = op == 2 ? r.cq_head + (uint32_t)(int8_t)rd8(&p, end) : rd32(&p, end);
			ring_store_release(&r.shm->cq.head.value, r.cq_head);
			break;
		case 4: {
			uint8_t slot = rd8(&p, end);
			struct dmasvc_sqe q = { 0 };

			if (end - p < (ptrdiff_t)sizeof(q)) {
				p = end;
				break;
			}
			memcpy(&q, p, sizeof(q));
			p += sizeof(q);
			fz_steer_sqe(&f, &q);
			r.sqes[slot & (r.sq_entries - 1)] = q;
			break;
		}
		case 5: {
			uint8_t w = rd8(&p, end);

			ring_write_once(&r.shm->sq.cons_wait.value, w & 1);
			ring_write_once(&r.shm->sq.prod_wait.value, (w >> 1) & 1);
			ring_write_once(&r.shm->cq.cons_wait.value, (w >> 2) & 1);
			ring_write_once(&r.shm->cq.prod_wait.value, (w >> 3) & 1);
			break;
		}
		case 6:
			alive = service_turn(&f, &r, 1 + rd8(&p, end) % 4);
			break;
		default:
			honest_client(&f, &r, rd8(&p, end) % 8 + 1);
			break;
		}
	}
	if (alive)
		service_turn(&f, &r, 4);
	fz_session_close(&f);
	fz_service()->bx = NULL;
	return 0;
}
