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
 * at least two pieces, and two units or two threads, on a default queue
 * with nothing in flight and no batch open, of a range none of whose
 * granules the library knows populated.  Anything else takes the one-event path (queue.c).
 *
 * Pieces and units: the range is faulted in by pieces of CL_PIPE_PIECE
 * bytes (whole pages of the memory, huge ones for hugetlbfs) and posted by
 * units of whole granules of at least CL_PIPE_PIECE, at most
 * CL_PIPE_MAX_UNITS of them and never more than the queue's SQ entries and
 * slots, so every unit's SQE has room and its slot (and result) stays put
 * until the call reads it.  A range of
 * one granule (a 128 MiB granule) is one unit: its fault-in is still shared
 * by the threads, its pin not overlapped.
 *
 * Threads: the caller and up to threads - 1 helpers (started for the call,
 * every signal blocked, joined before it returns) claim pieces in order
 * and fault them in; the caller posts each unit once every piece up to its
 * end is in (one SQE each, published at once).  The helpers touch nothing
 * but the memory and the piece table (under pipe.lock).
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
#define CL_PIPE_MAX_UNITS 64u        /* events posted for one call, at most */
#define CL_PIPE_MAX_PIECES 1024u     /* fault-in pieces of one call, at most */
#define CL_PIPE_MAX_THREADS 4u       /* the default's cap (dmasvc_set_prefault_threads) */

enum { PIECE_TODO = 0, PIECE_FAULTING, PIECE_IN };

/*
 * Two cuts of the range: fault-in pieces (pages of the memory, so that a
 * 128 MiB granule is faulted in by several threads) and posted units (whole
 * granules: what the service maps is never less than a granule).  A unit is
 * posted once every piece up to its end is in.
 */
struct pipe {
	pthread_mutex_t lock;        /* guards everything below */
	pthread_cond_t changed;      /* a piece came in, or failed */
	struct cl_pf pf;             /* the region's prefault source */
	uint64_t base;               /* the range's offset in the region */
	uint64_t length;
	uint64_t piece;              /* fault-in bytes per piece (the last may be shorter) */
	uint32_t n;                  /* pieces */
	uint32_t next;               /* first piece nobody claimed */
	uint32_t in;                 /* pieces [0, in) are all in */
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
	int err = cl_pf_range(&p->pf, p->base + off, (size_t)len);

	pthread_mutex_lock(&p->lock);
	if (err && !p->err)
		p->err = err;
	if (!err) {
		p->state[i] = PIECE_IN;
		while (p->in < p->n && p->state[p->in] == PIECE_IN)
			p->in++;
	}
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

/* A helper thread: fault pieces in until none is left to claim or one failed. */
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

/* @v rounded up to a multiple of @m (a power of two or any m > 0). */
static uint64_t round_up(uint64_t v, uint64_t m)
{
	return (v + m - 1) / m * m;
}

int cl_populate_pipelined(struct dmasvc_queue *q, uint32_t region, uint64_t offset,
			  uint64_t length, bool *prefault_failed)
{
	struct dmasvc_client *c = q->c;
	struct pipe p = { .length = length };
	pthread_t tids[CL_PIPE_MAX_THREADS];
	uint64_t granule = 0, page = 4096, unit, first_seq = q->submit_seq, first, count;
	unsigned threads, helpers = 0;
	uint32_t posted = 0, units, maxu;
	struct cl_region *r;
	int err = 0, werr;
	bool eligible = false;

	*prefault_failed = false;
	/* a piece is at least CL_PIPE_PIECE; inside a batch nothing would be posted early */
	if (length < 2 * CL_PIPE_PIECE || q != c->defq || q->batch || cl_queue_inflight(q) != 0)
		return 1;
	pthread_mutex_lock(&c->state_lock);
	r = cl_region_get(c, region);
	if (r && r->pf.map &&
	    !cl_range_to_bits(r->desc.size, r->desc.granule, offset, length, &first, &count)) {
		uint64_t pf, pc;

		granule = r->desc.granule;
		page = r->pf.page;
		p.pf = r->pf;
		/*
		 * The advice, not fallocate(), here: the helpers zero the pieces
		 * while the service pins the ones before, so the zeroing stays
		 * off the service's path; fallocate()d pages are zeroed by the
		 * service's pin, one map call (one granule) at a time.  Measured
		 * on real iommufd in the guest: 1 GiB at 128 MiB granules 1.07x
		 * and 1.34x direct (w1, w2) with fallocate() against 1.67x and
		 * 1.71x with the advice (bench/RESULTS.md, "fifth pass").
		 */
		p.pf.fd = -1;
		p.base = offset;
		/* no granule of the range populated: the rollback discards only ours */
		eligible = !cl_bitmap_next_run(&r->populated, first, &pf, &pc) || pf >= first + count;
	}
	pthread_mutex_unlock(&c->state_lock);
	if (!eligible)
		return 1;

	/* pieces: pages of the memory; units: granules (offset and length are granule multiples) */
	p.piece = round_up(CL_PIPE_PIECE, page);
	if (length / p.piece >= CL_PIPE_MAX_PIECES)
		p.piece = round_up((length + CL_PIPE_MAX_PIECES - 1) / CL_PIPE_MAX_PIECES, page);
	p.n = (uint32_t)((length + p.piece - 1) / p.piece);
	unit = round_up(CL_PIPE_PIECE, granule);
	/* every unit's SQE fits in the SQ and its slot stays put (nothing else in flight) */
	maxu = q->nslots < CL_PIPE_MAX_UNITS ? q->nslots : CL_PIPE_MAX_UNITS;
	if (q->sq_entries < maxu)
		maxu = q->sq_entries;
	if (length / unit >= maxu) /* fewer, larger units */
		unit = round_up((length + maxu - 1) / maxu, granule);
	units = (uint32_t)((length + unit - 1) / unit);
	threads = __atomic_load_n(&c->prefault_threads, __ATOMIC_RELAXED);
	if (!threads)
		threads = default_threads();
	if (p.n < 2 || (units < 2 && threads < 2))
		return 1; /* nothing to overlap */

	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.changed, NULL);
	if (threads > 1)
		helpers = pipe_start(&p, tids, threads - 1 < p.n - 1 ? threads - 1 : p.n - 1);

	/* Fault in what nobody claimed yet; post each unit once it is in, in order. */
	pthread_mutex_lock(&p.lock);
	while (posted < units && !p.err && !err) {
		uint64_t off = (uint64_t)posted * unit;
		uint64_t len = length - off < unit ? length - off : unit;
		uint32_t i;

		if (p.in == p.n || (uint64_t)p.in * p.piece >= off + len) {
			int64_t seq;

			pthread_mutex_unlock(&p.lock);
			seq = cl_submit_locked(q, DMASVC_OP_POPULATE, region, offset + off, len, 0,
					       SLOT_SYNC, false);
			/* units <= the SQ and the slots, nothing else in flight:
			 * -EAGAIN is not expected; wait for room all the same */
			while (seq == -EAGAIN && !(err = cl_queue_wait_room(q, c->opts.timeout_ms)))
				seq = cl_submit_locked(q, DMASVC_OP_POPULATE, region, offset + off,
						       len, 0, SLOT_SYNC, false);
			if (err)
				seq = err;
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
		/* every piece claimed, the ones the next unit needs still on helpers */
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
		if (werr) {
			*prefault_failed = false; /* the wait's error is the one returned */
			if (werr == -ETIMEDOUT)
				cl_queue_orphan(q, first_seq, first_seq + posted);
			return werr;
		}
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
