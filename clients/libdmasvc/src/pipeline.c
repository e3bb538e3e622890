/* SPDX-License-Identifier: MIT */
/*
 * pipeline.c - a large blocking populate, faulted in and posted in pieces.
 *
 * Why: the VM allocates its memory, not the service (prefault.c), so a
 * plug is two passes over the memory: the VMM's fault-in, then the
 * service's pin.  Posted whole, the second waits for the first.  Cut into
 * pieces, the service pins piece k while the VMM faults piece k + 1 in,
 * and the fault-in itself may run on more than one of the VMM's threads
 * (as QEMU's prealloc-threads do); the pin is then hidden behind the
 * allocation, which is the work the in-process method does anyway
 * (bench/RESULTS.md, "plug: where the ring path's time goes").
 *
 * When: a blocking populate (dmasvc_populate) in library prefault mode of
 * at least two pieces, on a default queue with nothing in flight, of a
 * range none of whose granules the library knows populated.  Anything else
 * takes the one-event path (queue.c).
 *
 * Pieces: granule multiples of at least CL_PIPE_PIECE bytes, at most
 * CL_PIPE_MAX_PIECES of them and never more than the queue's slots, so
 * every piece's slot (and result) stays put until the call reads it.
 *
 * Threads: the caller and up to threads - 1 helpers (started for the call,
 * every signal blocked, joined before it returns) claim pieces in order
 * and fault them in; the caller posts each piece once it and every piece
 * before it are in (one SQE each, published at once).  The helpers touch
 * nothing but the memory and the piece table (under pipe.lock).
 *
 * All or nothing, as the one-event path: when a piece fails (its fault-in
 * or the service), nothing more is posted, and once the posted pieces
 * completed the call discards the whole range (nothing of it was populated
 * before the call, see "when") and returns the first error.  Only a
 * timeout leaves pieces in flight (their slots orphaned, as a blocking
 * event's), and a failed rollback (service gone) leaves the bitmap saying
 * what the service kept.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>

#include "libdmasvc_priv.h"

#define CL_PIPE_PIECE (4ull << 20)   /* bytes: ~5 ms of fault-in, ~0.4 ms of pin */
#define CL_PIPE_MAX_PIECES 64u
#define CL_PIPE_MAX_THREADS 4u       /* the default's cap (dmasvc_set_prefault_threads) */

enum { PIECE_TODO = 0, PIECE_FAULTING, PIECE_IN };

struct pipe {
	pthread_mutex_t lock;        /* guards everything below */
	pthread_cond_t changed;      /* a piece came in, or failed */
	char *base;                  /* the range's first byte in the library's mapping */
	bool writable;
	uint64_t piece;              /* bytes per piece (the last may be shorter) */
	uint64_t length;
	uint32_t n;                  /* pieces */
	uint32_t next;               /* first piece nobody claimed */
	int err;                     /* first fault-in error, or 0: stops the claims */
	uint8_t state[CL_PIPE_MAX_PIECES];
};

/* Claim the next piece; UINT32_MAX when none is left or one failed.  pipe.lock held. */
static uint32_t pipe_claim(struct pipe *p)
{
	if (p->err || p->next == p->n)
		return UINT32_MAX;
	p->state[p->next] = PIECE_FAULTING;
	return p->next++;
}

/* Fault piece @i in (pipe.lock not held) and record the outcome. */
static void pipe_fault(struct pipe *p, uint32_t i)
{
	uint64_t off = (uint64_t)i * p->piece;
	uint64_t len = p->length - off < p->piece ? p->length - off : p->piece;
	int err = dmasvc_prefault(p->base + off, (size_t)len, p->writable);

	pthread_mutex_lock(&p->lock);
	if (err && !p->err)
		p->err = err;
	if (!err)
		p->state[i] = PIECE_IN;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

static void *pipe_helper(void *arg)
{
	struct pipe *p = arg;

	for (;;) {
		uint32_t i;

		pthread_mutex_lock(&p->lock);
		i = pipe_claim(p);
		pthread_mutex_unlock(&p->lock);
		if (i == UINT32_MAX)
			return NULL;
		pipe_fault(p, i);
	}
}

/* The default thread count: CPUs the caller may run on, at most CL_PIPE_MAX_THREADS. */
static unsigned default_threads(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	n = CPU_COUNT(&set);
	return n < 1 ? 1 : (unsigned)n > CL_PIPE_MAX_THREADS ? CL_PIPE_MAX_THREADS : (unsigned)n;
}

/*
 * Start up to @want helpers with every signal blocked (the VMM's signals
 * stay on its own threads).  Returns how many started; a failure to start
 * one only means fewer.
 */
static unsigned pipe_start(struct pipe *p, pthread_t *tids, unsigned want)
{
	sigset_t all, old;
	unsigned got = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (got < want && pthread_create(&tids[got], NULL, pipe_helper, p) == 0)
		got++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return got;
}

int cl_populate_pipelined(struct dmasvc_queue *q, uint32_t region, uint64_t offset,
			  uint64_t length, bool *prefault_failed)
{
	struct dmasvc_client *c = q->c;
	struct pipe p = { .length = length };
	pthread_t tids[CL_PIPE_MAX_THREADS];
	uint64_t granule = 0, first_seq = q->submit_seq, first, count;
	unsigned threads, helpers = 0;
	uint32_t posted = 0, maxp;
	struct cl_region *r;
	int err = 0, werr = 0;
	bool eligible = false;

	*prefault_failed = false;
	if (length < 2 * CL_PIPE_PIECE || q != c->defq || cl_queue_inflight(q) != 0)
		return 1; /* a piece is at least CL_PIPE_PIECE: fewer than two */
	pthread_mutex_lock(&c->state_lock);
	r = cl_region_get(c, region);
	if (r && r->prefault &&
	    !cl_range_to_bits(r->desc.size, r->desc.granule, offset, length, &first, &count)) {
		uint64_t pf, pc;

		granule = r->desc.granule;
		p.base = r->prefault + offset;
		p.writable = r->prefault_write;
		/* no granule of the range populated: the rollback discards only ours */
		eligible = !cl_bitmap_next_run(&r->populated, first, &pf, &pc) || pf >= first + count;
	}
	pthread_mutex_unlock(&c->state_lock);
	if (!eligible)
		return 1;

	p.piece = (CL_PIPE_PIECE + granule - 1) / granule * granule;
	maxp = q->nslots < CL_PIPE_MAX_PIECES ? q->nslots : CL_PIPE_MAX_PIECES;
	if (length / p.piece >= maxp) /* fewer, larger pieces */
		p.piece = ((length + maxp - 1) / maxp + granule - 1) / granule * granule;
	p.n = (uint32_t)((length + p.piece - 1) / p.piece);
	if (p.n < 2)
		return 1;

	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.changed, NULL);
	threads = __atomic_load_n(&c->prefault_threads, __ATOMIC_RELAXED);
	if (!threads)
		threads = default_threads();
	if (threads > 1)
		helpers = pipe_start(&p, tids, threads - 1 < p.n - 1 ? threads - 1 : p.n - 1);

	/* Fault in what nobody claimed yet; post every piece that is in, in order. */
	pthread_mutex_lock(&p.lock);
	while (posted < p.n && !p.err && !err) {
		uint32_t i;

		if (p.state[posted] == PIECE_IN) {
			uint64_t off = offset + (uint64_t)posted * p.piece;
			uint64_t len = offset + length - off < p.piece ? offset + length - off : p.piece;
			int64_t seq;

			pthread_mutex_unlock(&p.lock);
			seq = cl_submit_locked(q, DMASVC_OP_POPULATE, region, off, len, 0, SLOT_SYNC,
					       false);
			/* n <= nslots and nothing else in flight: never -EAGAIN */
			if (seq < 0)
				err = (int)seq;
			else
				posted++;
			pthread_mutex_lock(&p.lock);
			continue;
		}
		i = pipe_claim(&p);
		if (i != UINT32_MAX) {
			pthread_mutex_unlock(&p.lock);
			pipe_fault(&p, i);
			pthread_mutex_lock(&p.lock);
			continue;
		}
		/* every piece claimed, the next to post still on a helper */
		pthread_cond_wait(&p.changed, &p.lock);
	}
	if (!err && p.err) {
		err = p.err;
		*prefault_failed = true;
	}
	if (!p.err)
		p.err = err; /* a failed post stops the helpers' claims too */
	pthread_mutex_unlock(&p.lock);
	for (unsigned k = 0; k < helpers; k++)
		pthread_join(tids[k], NULL);
	pthread_cond_destroy(&p.changed);
	pthread_mutex_destroy(&p.lock);

	if (posted) {
		werr = cl_queue_wait_applied(q, first_seq + posted - 1, c->opts.timeout_ms);
		if (werr == -ETIMEDOUT) {
			cl_queue_orphan(q, first_seq, first_seq + posted);
			return werr;
		}
		if (werr)
			return werr;
	}
	for (uint32_t k = 0; k < posted && !err; k++)
		err = q->slots[(first_seq + k) & (q->nslots - 1)].res;
	if (err && posted) {
		/* All or nothing: give back what the service populated of it. */
		int64_t seq = cl_submit_locked(q, DMASVC_OP_DISCARD, region, offset, length, 0,
					       SLOT_SYNC, false);

		if (seq >= 0 && cl_queue_wait_applied(q, (uint64_t)seq, c->opts.timeout_ms) ==
			-ETIMEDOUT)
			cl_queue_orphan(q, (uint64_t)seq, (uint64_t)seq + 1);
	}
	return err;
}

int dmasvc_set_prefault_threads(struct dmasvc_client *c, unsigned threads)
{
	if (!c || threads > 64)
		return -EINVAL;
	__atomic_store_n(&c->prefault_threads, threads, __ATOMIC_RELAXED);
	return 0;
}
