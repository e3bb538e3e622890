/* SPDX-License-Identifier: MIT */
/*
 * queue.c - event queues: RING_SETUP, posting populate/discard events,
 * reaping and validating completions, applying them to the region bitmaps,
 * and waiting for them (the blocking calls on top are blocking.c's).
 *
 * Each posted event owns a slot (slot = seq & (nslots - 1)) until it is
 * applied.  In flight = submit_seq - apply_seq <= nslots = cq_entries, so
 * the service can always post every completion we owe it room for.  An
 * asynchronous completion is copied to the ready FIFO when its CQE arrives;
 * posting an async event also needs room there (in flight + ready <=
 * nslots), so the FIFO never overflows.
 *
 * Bitmap rule: a bit changes only when an event completes with res 0
 * (populate sets, discard clears), applied in submission order.  A failed
 * event leaves the bits as they were, matching the service's all-or-nothing
 * rule; in particular a discard that fails (backend error) leaves the
 * granules marked populated, so a replay maps them again and the caller
 * may retry the discard.
 *
 * Batches: between dmasvc_queue_batch_begin() and _end() an event's SQE is
 * staged (written into the SQ, tail not moved) instead of posted; the end
 * publishes them all with one tail store and at most one doorbell, so the
 * service drains the batch whole (up to its drain size) and coalesces
 * neighbours however slowly the caller posted; its populates are faulted
 * in at the publish, a contiguous run with one call (defer_prefault).
 * Whatever would wait for a
 * completion publishes first (an unpublished event never completes): a
 * full SQ, queue_wait() (blocking calls, reap with a timeout, close).
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libdmasvc_priv.h"

#define CL_REAP_BATCH 64
/*
 * Poll the CQ at least this long before sleeping on the eventfd, yielding
 * the CPU between polls (a polling service may share it).  About KVM's
 * halt-polling window (200 us): a conversion's round trip on the model is
 * 100-200 us here, and a sleep costs two wake-ups (bench/RESULTS.md,
 * "client spin").  The window of a queue grows up to CL_SPIN_MAX_US while
 * its waits end soon after the window (spin_adapt()).
 */
#define CL_SPIN_US 250
/*
 * The longest window: a large unmap (128 MiB: 0.4-0.7 ms on the model), a
 * storm's batch of a few hundred notes (up to 1.5 ms) is waited for without
 * a sleep, whose wake-up costs 30-60 us here (bench/RESULTS.md, "issue 16,
 * Dec 6 (sixth pass)", "The client's spin window adapts").  Longer waits
 * sleep, and shrink the window again.
 */
#define CL_SPIN_MAX_US 2000
/* The first microseconds of it without yielding: a completion that comes
 * that soon comes from a service on another CPU, and a yield (a system
 * call, ~1 us here) would only delay seeing it. */
#define CL_SPIN_PURE_US 20

void cl_queue_lock(struct dmasvc_queue *q)
{
	if (q->shared)
		pthread_mutex_lock(&q->lock);
}

void cl_queue_unlock(struct dmasvc_queue *q)
{
	if (q->shared)
		pthread_mutex_unlock(&q->lock);
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

int cl_queue_ring_setup(struct dmasvc_client *c, struct dmasvc_queue *q)
{
	struct dmasvc_ring_setup req = { .sq_entries = q->sq_entries, .cq_entries = q->cq_entries };
	struct dmasvc_ring_setup_reply rep;
	struct cl_reply r;
	int err;

	err = cl_call(c, DMASVC_CMD_RING_SETUP, &req, sizeof(req), NULL, 0, &r, sizeof(rep));
	if (err)
		return err;
	if (r.hdr.error)
		return -(int)r.hdr.error;
	memcpy(&rep, r.buf, sizeof(rep));
	if (r.nfds != 3) {
		cl_reply_close_fds(&r);
		return -EPROTO;
	}
	q->pf_len = 0; /* a new ring holds nothing staged: nothing to fault in for it */
	/* cl_ring_attach owns the three fds from here on, on every path. */
	r.nfds = 0;
	err = cl_ring_attach(&q->ring, r.fds[0], r.fds[1], r.fds[2], rep.ring_size, q->sq_entries,
			     q->cq_entries);
	if (err)
		return err;
	q->dead = false;
	q->dead_err = 0;
	q->armed = false;
	return 0;
}

int cl_queue_setup(struct dmasvc_client *c, struct dmasvc_queue *q, uint32_t sq_entries)
{
	uint32_t cq_entries = q->shared ? c->opts.cq_entries : 2 * sq_entries;
	int err;

	cl_ring_init_empty(&q->ring);
	if (!is_pow2(sq_entries) || !is_pow2(cq_entries) || cq_entries < sq_entries ||
	    sq_entries < RING_MIN_ENTRIES || cq_entries > RING_MAX_ENTRIES)
		return -EINVAL;
	if ((c->hello.max_sq_entries && sq_entries > c->hello.max_sq_entries) ||
	    (c->hello.max_cq_entries && cq_entries > c->hello.max_cq_entries))
		return -EINVAL;
	q->c = c;
	q->sq_entries = sq_entries;
	q->cq_entries = cq_entries;
	q->nslots = cq_entries;
	q->spin_us = CL_SPIN_US; /* kept across a reconnect (the ring's setup only) */
	q->slots = calloc(q->nslots, sizeof(*q->slots));
	q->ready = calloc(q->nslots, sizeof(*q->ready));
	if (!q->slots || !q->ready) {
		err = -ENOMEM;
		goto err_free;
	}
	err = cl_queue_ring_setup(c, q);
	if (err)
		goto err_free;
	return 0;

err_free:
	free(q->slots);
	free(q->ready);
	q->slots = NULL;
	q->ready = NULL;
	return err;
}

void cl_queue_teardown(struct dmasvc_queue *q)
{
	cl_ring_detach(&q->ring);
	free(q->slots);
	free(q->ready);
	q->slots = NULL;
	q->ready = NULL;
}

static uint64_t inflight(const struct dmasvc_queue *q)
{
	return q->submit_seq - q->apply_seq;
}

static void ready_push(struct dmasvc_queue *q, uint64_t user_data, int32_t res)
{
	uint32_t i = (q->ready_head + q->ready_count) & (q->nslots - 1);

	q->ready[i].user_data = user_data;
	q->ready[i].res = res;
	q->ready_count++;
}

/* Apply every completed event at the front, in submission order. */
static void apply_completed(struct dmasvc_queue *q)
{
	struct dmasvc_client *c = q->c;
	bool locked = false;

	while (q->apply_seq != q->submit_seq) {
		struct cl_slot *s = &q->slots[q->apply_seq & (q->nslots - 1)];

		if (s->state != SLOT_COMPLETE)
			break;
		if (s->res == 0) {
			struct cl_region *r;

			if (!locked) {
				pthread_mutex_lock(&c->state_lock);
				locked = true;
			}
			r = cl_region_get(c, s->region);
			if (r && s->op == DMASVC_OP_POPULATE)
				cl_bitmap_set(&r->populated, s->first, s->count);
			else if (r)
				cl_bitmap_clear(&r->populated, s->first, s->count);
		} else if (s->kind == SLOT_REPLAY && !q->replay_err) {
			q->replay_err = s->res;
		}
		s->state = SLOT_FREE;
		q->apply_seq++;
	}
	if (locked)
		pthread_mutex_unlock(&c->state_lock);
}

static int queue_kill(struct dmasvc_queue *q, int err)
{
	if (!q->dead) {
		q->dead = true;
		q->dead_err = err;
	}
	return q->dead_err;
}

/* Complete one slot with @res (CQE or local failure). */
static void slot_complete(struct dmasvc_queue *q, struct cl_slot *s, int32_t res)
{
	s->state = SLOT_COMPLETE;
	s->res = res;
	if (s->kind == SLOT_ASYNC)
		ready_push(q, s->user_data, res);
}

/*
 * Reap and validate every CQE now in the ring, then apply.  Returns the
 * number of CQEs taken or -EPROTO (queue is then dead): a CQE naming no
 * event in flight, completing one twice, or a res that is not 0 / -errno.
 */
static int process_cqes(struct dmasvc_queue *q)
{
	struct dmasvc_cqe cqes[CL_REAP_BATCH];
	int total = 0, n;

	if (q->dead)
		return q->dead_err;
	do {
		n = cl_ring_reap(&q->ring, cqes, CL_REAP_BATCH);
		if (n < 0)
			return queue_kill(q, -EPROTO);
		for (int i = 0; i < n; i++) {
			uint64_t seq = cqes[i].user_data;
			struct cl_slot *s = &q->slots[seq & (q->nslots - 1)];

			if (seq - q->apply_seq >= inflight(q) || s->seq != seq ||
			    s->state != SLOT_INFLIGHT || cqes[i].res > 0 || cqes[i].res < -4095)
				return queue_kill(q, -EPROTO);
			slot_complete(q, s, cqes[i].res);
		}
		total += n;
	} while (n == CL_REAP_BATCH);
	apply_completed(q);
	return total;
}

/*
 * Batches fault their populates in when they are published, a contiguous
 * run of the library's mapping with one madvise: a conversion notified page
 * by page (QEMU's RamBlockAttributes) then costs one fault-in call per run,
 * not one per page.  defer_prefault adds [@addr, +@len) to the queue's
 * pending run, faulting the run before it in first when this one does not
 * continue it.  A fault-in that fails here is not the caller's error any
 * more (its submit returned): the populate reaches the service with pages
 * missing, which refuses it with -ENXIO in its completion (the residency
 * rule); that completion is the report.  The run lives in the library's
 * own mapping of a memory, which stays mapped while a region uses it
 * (dmasvc_memory_remove: -EBUSY); a run whose region was removed since is
 * dropped before its memory goes (cl_queue_drop_prefault), and a new ring
 * (setup, reconnect) starts without one.
 */
static void flush_prefault(struct dmasvc_queue *q)
{
	if (q->pf_len)
		(void)cl_pf_range(&q->pf, q->pf_off, q->pf_len);
	q->pf_len = 0;
}

static void defer_prefault(struct dmasvc_queue *q, const struct cl_pf *pf, uint64_t off,
			   size_t len)
{
	/* the same region's memory, seen the same way, continued */
	if (q->pf_len && pf->map + off == q->pf.map + q->pf_off + q->pf_len &&
	    pf->fd == q->pf.fd && pf->fd_off + off == q->pf.fd_off + q->pf_off + q->pf_len &&
	    pf->write == q->pf.write) {
		q->pf_len += len;
		return;
	}
	flush_prefault(q);
	q->pf = *pf;
	q->pf_off = off;
	q->pf_len = len;
}

void cl_queue_drop_prefault(struct dmasvc_queue *q, const void *map, uint64_t size)
{
	uintptr_t lo = (uintptr_t)map, run;

	cl_queue_lock(q);
	run = (uintptr_t)q->pf.map + q->pf_off;
	if (q->pf_len && q->pf.map && run >= lo && run - lo < size)
		q->pf_len = 0;
	cl_queue_unlock(q);
}

/* Publish what is staged, its populates faulted in first.  0 or -errno. */
static int queue_publish(struct dmasvc_queue *q)
{
	flush_prefault(q);
	return cl_ring_publish(&q->ring);
}

int64_t cl_submit_locked(struct dmasvc_queue *q, uint8_t op, uint32_t region, uint64_t offset,
			 uint64_t length, uint64_t user_data, uint8_t kind, bool prefault_it)
{
	struct dmasvc_client *c = q->c;
	struct dmasvc_sqe sqe = { .opcode = op };
	struct cl_region *r;
	struct cl_slot *s;
	uint64_t first, count;
	struct cl_pf pf = { .fd = -1 };
	int err;

	if (q->dead)
		return q->dead_err;
	pthread_mutex_lock(&c->state_lock);
	r = cl_region_get(c, region);
	err = r ? cl_range_to_bits(r->desc.size, r->desc.granule, offset, length, &first, &count)
		: -ENOENT; /* what the service answers for an unknown region */
	if (!err) {
		sqe.region_id = r->svc_id;
		pf = r->pf;
	}
	pthread_mutex_unlock(&c->state_lock);
	if (err)
		return err;

	/* Make room: take whatever completed first (cheap when nothing did). */
	if (inflight(q) + (kind == SLOT_ASYNC ? q->ready_count : 0) >= q->nslots) {
		err = process_cqes(q);
		if (err < 0)
			return err;
		if (inflight(q) + (kind == SLOT_ASYNC ? q->ready_count : 0) >= q->nslots) {
			/* the caller will wait for completions: publish the batch so far */
			err = queue_publish(q);
			return err ? err : -EAGAIN;
		}
	}
	/*
	 * The VM allocates its memory, not the service: fault the range in
	 * here, in the caller's thread, before the service sees the event
	 * (prefault.c; the range lies inside the region, checked above).
	 */
	q->prefault_err = 0;
	if (op == DMASVC_OP_POPULATE && pf.map && prefault_it && !q->batch) {
		err = cl_pf_range(&pf, offset, (size_t)length);
		if (err) {
			q->prefault_err = err;
			return err;
		}
	}
	sqe.offset = offset;
	sqe.length = length;
	sqe.user_data = q->submit_seq;
	if (kind == SLOT_REPLAY && c->hello.minor >= 2) /* older services refuse the flag */
		sqe.flags = DMASVC_SQE_REPLAY;
	if (q->batch) {
		err = cl_ring_stage(&q->ring, &sqe, 1);
		if (err == 0) {
			/* SQ full of our own staged SQEs: the batch cannot be
			 * one drain; publish so the service frees room. */
			err = queue_publish(q);
			if (!err)
				err = cl_ring_stage(&q->ring, &sqe, 1);
		}
		if (err > 0 && op == DMASVC_OP_POPULATE && pf.map && prefault_it)
			defer_prefault(q, &pf, offset, (size_t)length);
	} else {
		err = cl_ring_post(&q->ring, &sqe, 1);
	}
	if (err < 0)
		return err == -EPROTO ? queue_kill(q, -EPROTO) : err;
	if (err == 0)
		return -EAGAIN;
	s = &q->slots[q->submit_seq & (q->nslots - 1)];
	*s = (struct cl_slot){
		.seq = q->submit_seq, .state = SLOT_INFLIGHT, .kind = kind, .op = op,
		.region = region, .first = first, .count = count, .user_data = user_data,
	};
	return (int64_t)q->submit_seq++;
}

/*
 * After a wait of @q that took @waited_us and slept (its spin window ran
 * out first), adapt the window as KVM's halt polling adapts a vCPU's: a
 * sleep that ended within CL_SPIN_MAX_US grows it to cover the next wait
 * like it (a quarter more), a longer one halves it, down to CL_SPIN_US.
 * A wait that ended while spinning is not passed here: it leaves the
 * window alone.  @q's lock held.
 */
static void spin_adapt(struct dmasvc_queue *q, int64_t waited_us)
{
	int64_t want = waited_us + waited_us / 4;

	if (waited_us > CL_SPIN_MAX_US)
		q->spin_us = q->spin_us / 2 > CL_SPIN_US ? q->spin_us / 2 : CL_SPIN_US;
	else if (want > q->spin_us)
		q->spin_us = want < CL_SPIN_MAX_US ? want : CL_SPIN_MAX_US;
}

/*
 * Wait until @done(q, arg) holds, processing completions.  Spins on the CQ
 * for the queue's window (spin_adapt), then sleeps on the completion
 * eventfd (and notices the control socket hanging up); *@slept says
 * whether it did.  Returns 0, -ETIMEDOUT, or the queue's dead error.
 */
static int queue_wait_once(struct dmasvc_queue *q, bool (*done)(struct dmasvc_queue *, uint64_t),
			   uint64_t arg, int timeout_ms, bool *slept)
{
	int64_t deadline = timeout_ms < 0 ? -1 : cl_now_ms() + timeout_ms;
	int64_t spin_from, spin_until, now;
	int perr = queue_publish(q); /* a staged event would never complete */

	*slept = false;
	if (perr)
		return perr;
	/* The window counts from the publish: a batch's deferred fault-in
	 * (queue_publish) is not waiting for the service. */
	spin_from = cl_now_us();
	spin_until = spin_from + q->spin_us;
	if (timeout_ms >= 0 && spin_until > spin_from + (int64_t)timeout_ms * 1000)
		spin_until = spin_from + (int64_t)timeout_ms * 1000; /* never past the caller's timeout */
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = q->ring.completion_fd, .events = POLLIN },
			{ .fd = q->c->sock, .events = 0 }, /* POLLHUP only: service gone */
		};
		int err, wait = -1, prep;

		err = process_cqes(q);
		if (err < 0)
			return err;
		if (done(q, arg)) {
			if (*slept) /* no clock read on the fast path */
				spin_adapt(q, cl_now_us() - spin_from);
			return 0;
		}
		now = cl_now_us();
		if (now < spin_until) {
			if (now - spin_from > CL_SPIN_PURE_US)
				sched_yield(); /* a service sharing our CPU gets it to complete us */
			continue;
		}
		*slept = true;
		if (deadline >= 0) {
			int64_t left = deadline - cl_now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			wait = (int)left;
		}
		prep = cl_ring_sleep_prepare(&q->ring);
		if (prep < 0)
			return queue_kill(q, -EPROTO);
		if (prep == 0) {
			if (poll(pfd, 2, wait) < 0 && errno != EINTR) {
				err = -errno; /* before sleep_finish's read can change errno */
				cl_ring_sleep_finish(&q->ring);
				return err;
			}
		}
		cl_ring_sleep_finish(&q->ring);
		if (pfd[1].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			/* Take what the service completed before it went away. */
			(void)process_cqes(q);
			if (done(q, arg))
				return 0;
			return queue_kill(q, -ENOTCONN);
		}
	}
}

/*
 * queue_wait_once() on an armed queue (a thread polls dmasvc_queue_fd()
 * while this one, on the shared default queue, waits in a blocking call):
 * its sleep cleared the CQ's wait flag and drained the eventfd that the
 * service may have signalled for the poller, and the completions it took
 * went to the ready FIFO.  So after a sleep the queue is armed again, and
 * when something is there to reap the eventfd is signalled here: the
 * poller's wake-up is never lost.  @q's lock held.
 */
static int queue_wait(struct dmasvc_queue *q, bool (*done)(struct dmasvc_queue *, uint64_t),
		      uint64_t arg, int timeout_ms)
{
	bool slept;
	int err = queue_wait_once(q, done, arg, timeout_ms, &slept);
	int prep;

	if (!slept || !q->armed || q->dead)
		return err;
	prep = cl_ring_sleep_prepare(&q->ring); /* 0: flag set again, CQ empty */
	if (prep < 0) {
		(void)queue_kill(q, -EPROTO);
		return err ? err : q->dead_err;
	}
	if (prep == 1 || q->ready_count)
		cl_ring_wake_poller(&q->ring);
	return err;
}

static bool seq_applied(struct dmasvc_queue *q, uint64_t seq)
{
	return seq - q->apply_seq >= inflight(q); /* seq < apply_seq, modulo 2^64 */
}

static bool queue_idle(struct dmasvc_queue *q, uint64_t unused)
{
	(void)unused;
	return inflight(q) == 0;
}

static bool have_ready(struct dmasvc_queue *q, uint64_t unused)
{
	(void)unused;
	return q->ready_count > 0 || inflight(q) == 0;
}

static bool fewer_inflight(struct dmasvc_queue *q, uint64_t than)
{
	return inflight(q) < than;
}

int cl_queue_wait_idle(struct dmasvc_queue *q, int timeout_ms)
{
	return queue_wait(q, queue_idle, 0, timeout_ms);
}

int cl_queue_wait_applied(struct dmasvc_queue *q, uint64_t seq, int timeout_ms)
{
	return queue_wait(q, seq_applied, seq, timeout_ms);
}

uint64_t cl_queue_inflight(const struct dmasvc_queue *q)
{
	return inflight(q);
}

int cl_queue_wait_room(struct dmasvc_queue *q, int timeout_ms)
{
	return inflight(q) ? queue_wait(q, fewer_inflight, inflight(q), timeout_ms) : -EAGAIN;
}

void cl_queue_orphan(struct dmasvc_queue *q, uint64_t from, uint64_t to)
{
	for (uint64_t seq = from; seq != to; seq++)
		if (!seq_applied(q, seq))
			q->slots[seq & (q->nslots - 1)].kind = SLOT_ORPHAN;
}

void cl_queue_fail_inflight(struct dmasvc_queue *q, int err)
{
	if (q->ring.memfd >= 0 && !q->dead)
		(void)process_cqes(q);
	for (uint64_t seq = q->apply_seq; seq != q->submit_seq; seq++) {
		struct cl_slot *s = &q->slots[seq & (q->nslots - 1)];

		if (s->state == SLOT_INFLIGHT)
			slot_complete(q, s, err);
	}
	apply_completed(q);
}

static int submit_async(struct dmasvc_queue *q, uint8_t op, uint32_t region, uint64_t offset,
			uint64_t length, uint64_t user_data)
{
	int64_t seq;

	if (!q)
		return -EINVAL;
	cl_queue_lock(q);
	seq = cl_submit_locked(q, op, region, offset, length, user_data, SLOT_ASYNC, true);
	cl_queue_unlock(q);
	return seq < 0 ? (int)seq : 0;
}

int dmasvc_submit_populate(struct dmasvc_queue *q, uint32_t region_id, uint64_t offset,
			   uint64_t length, uint64_t user_data)
{
	return submit_async(q, DMASVC_OP_POPULATE, region_id, offset, length, user_data);
}

int dmasvc_submit_discard(struct dmasvc_queue *q, uint32_t region_id, uint64_t offset,
			  uint64_t length, uint64_t user_data)
{
	return submit_async(q, DMASVC_OP_DISCARD, region_id, offset, length, user_data);
}

int dmasvc_queue_batch_begin(struct dmasvc_queue *q)
{
	int ret = 0;

	if (!q)
		return -EINVAL;
	cl_queue_lock(q);
	if (q->batch)
		ret = -EBUSY;
	else
		q->batch = true;
	cl_queue_unlock(q);
	return ret;
}

int dmasvc_queue_batch_end(struct dmasvc_queue *q)
{
	int ret;

	if (!q)
		return -EINVAL;
	cl_queue_lock(q);
	if (!q->batch) {
		ret = -EINVAL;
	} else {
		q->batch = false;
		ret = q->dead ? q->dead_err : queue_publish(q);
	}
	cl_queue_unlock(q);
	return ret;
}

int dmasvc_reap(struct dmasvc_queue *q, struct dmasvc_completion *out, unsigned max,
		int timeout_ms)
{
	unsigned n = 0;
	int err;

	if (!q || (!out && max))
		return -EINVAL;
	cl_queue_lock(q);
	if (q->armed) {
		/* The caller polled dmasvc_queue_fd(): disarm and drain it. */
		cl_ring_sleep_finish(&q->ring);
		q->armed = false;
	}
	err = process_cqes(q);
	if (err >= 0 && !q->ready_count && timeout_ms != 0 && inflight(q))
		err = queue_wait(q, have_ready, 0, timeout_ms);
	/* Completions already reaped are handed out even when the queue died. */
	while (n < max && q->ready_count) {
		out[n++] = q->ready[q->ready_head];
		q->ready_head = (q->ready_head + 1) & (q->nslots - 1);
		q->ready_count--;
	}
	cl_queue_unlock(q);
	if (n || err == -ETIMEDOUT)
		return (int)n;
	return err < 0 ? err : 0;
}

int dmasvc_queue_fd(const struct dmasvc_queue *q)
{
	return q ? q->ring.completion_fd : -EINVAL;
}

int dmasvc_queue_arm(struct dmasvc_queue *q)
{
	int ret;

	if (!q)
		return -EINVAL;
	cl_queue_lock(q);
	if (q->dead) {
		ret = q->dead_err;
	} else if (q->ready_count) {
		ret = 1;
	} else {
		ret = cl_ring_sleep_prepare(&q->ring);
		if (ret < 0)
			ret = queue_kill(q, -EPROTO);
		else if (ret == 1)
			cl_ring_sleep_finish(&q->ring);
		q->armed = ret == 0;
	}
	cl_queue_unlock(q);
	return ret;
}

int dmasvc_queue_open(struct dmasvc_client *c, uint32_t sq_entries, struct dmasvc_queue **out)
{
	struct dmasvc_queue *q;
	int err;

	if (!c || !out)
		return -EINVAL;
	if (c->query_only)
		return -EOPNOTSUPP;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_mutex_lock(&c->ctl_lock);
	err = cl_queue_setup(c, q, sq_entries ? sq_entries : c->opts.sq_entries);
	if (!err) {
		q->next = c->queues;
		c->queues = q;
	}
	pthread_mutex_unlock(&c->ctl_lock);
	if (err) {
		pthread_mutex_destroy(&q->lock);
		free(q);
		return err;
	}
	*out = q;
	return 0;
}

void dmasvc_queue_close(struct dmasvc_queue *q)
{
	struct dmasvc_client *c;

	if (!q || q->shared) /* the default queue lives as long as the client */
		return;
	c = q->c;
	(void)cl_queue_wait_idle(q, c->opts.timeout_ms);
	pthread_mutex_lock(&c->ctl_lock);
	for (struct dmasvc_queue **pp = &c->queues; *pp; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	}
	pthread_mutex_unlock(&c->ctl_lock);
	cl_queue_teardown(q);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
