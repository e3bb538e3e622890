/* SPDX-License-Identifier: MIT */
/*
 * replay.c - dmasvc_reconnect(): after the service went away, resume the
 * session with its token (HELLO RESUME, docs/restart.md) or open a new one,
 * re-register every live memory and region (their local ids stay, their svc
 * ids are refreshed; a resumed session gives its regions' ids again),
 * re-create every queue's ring and replay each region's bitmap: one
 * POPULATE per maximal populated run and one DISCARD per run between them,
 * flagged DMASVC_SQE_REPLAY (a map or unmap they cause is a logged repair).
 *
 * Events in flight when the old service died complete with -ECONNRESET
 * (unless their CQE had already been posted, which is then honoured) and
 * do not touch the bitmap; so after a successful replay the new service's
 * state equals the bitmap.
 */
#include <errno.h>
#include <unistd.h>

#include "libdmasvc_priv.h"

/*
 * Post region @id's whole state on @q as SLOT_REPLAY events, in order: a
 * POPULATE per maximal populated run and a DISCARD per run between them
 * (the complement).  The discards cost nothing where nothing is mapped (a
 * fresh session) and, after a resume, repair what the kernel kept but the
 * client does not hold (an event in flight at the crash).
 */
static int replay_region(struct dmasvc_queue *q, uint32_t id)
{
	struct dmasvc_client *c = q->c;
	uint64_t from = 0, first, count, granule, ng;
	int err = 0;

	for (;;) {
		struct cl_region *r;
		bool found;
		uint8_t op;
		int64_t seq;

		pthread_mutex_lock(&c->state_lock);
		r = cl_region_get(c, id);
		granule = r ? r->desc.granule : 0;
		ng = r ? r->desc.size / granule : 0;
		found = r && cl_bitmap_next_run(&r->populated, from, &first, &count);
		pthread_mutex_unlock(&c->state_lock);
		if (!r || from >= ng)
			return 0;
		if (found && first == from) {
			op = DMASVC_OP_POPULATE;
		} else {
			op = DMASVC_OP_DISCARD;
			count = (found ? first : ng) - from;
		}
		seq = cl_submit_locked(q, op, id, from * granule, count * granule, 0, SLOT_REPLAY,
				       true);
		if (seq == -EAGAIN) {
			/* Ring or slots full: let the service catch up, then retry. */
			err = cl_queue_wait_idle(q, c->opts.timeout_ms);
			if (err)
				return err;
			continue;
		}
		if (seq < 0)
			return (int)seq;
		from += count;
	}
}

int cl_replay(struct dmasvc_client *c)
{
	struct dmasvc_queue *q = c->defq;
	int err;

	q->replay_err = 0;
	for (uint32_t id = 0; id < c->nregions; id++) {
		err = replay_region(q, id);
		if (err)
			return err;
	}
	err = cl_queue_wait_idle(q, c->opts.timeout_ms);
	return err ? err : q->replay_err;
}

int dmasvc_reconnect(struct dmasvc_client *c)
{
	struct dmasvc_queue *q;
	int err;

	if (!c)
		return -EINVAL;
	if (c->query_only)
		return -EOPNOTSUPP; /* nothing to replay: disconnect and connect again */
	pthread_mutex_lock(&c->ctl_lock);
	cl_queue_lock(c->defq);
	for (q = c->queues; q; q = q->next) {
		cl_queue_fail_inflight(q, -ECONNRESET);
		cl_ring_detach(&q->ring);
		q->dead = true;
		q->dead_err = -ENOTCONN;
	}
	if (c->sock >= 0) {
		close(c->sock);
		c->sock = -1;
	}
	err = cl_session_open(c, true);
	if (err)
		goto out_unlock;
	/* Resumed or fresh, the same replay: memories are new objects either
	 * way; a resumed session's REGION_ADDs claim its kept regions (same
	 * ids, nothing mapped), its devices stay attached (not replayed); the
	 * state replay then maps nothing that is mapped already. */
	for (uint32_t i = 0; i < c->nmems && !err; i++)
		if (c->mems[i].live)
			err = cl_memory_send(c, &c->mems[i]);
	for (uint32_t i = 0; i < c->nregions && !err; i++)
		if (c->regions[i] && c->regions[i]->live) {
			err = cl_region_send(c, c->regions[i]);
			cl_region_pf_set(c, c->regions[i]); /* this service's flag */
		}
	for (q = c->queues; q && !err; q = q->next)
		err = cl_queue_ring_setup(c, q);
	if (!err)
		err = cl_replay(c);
out_unlock:
	cl_queue_unlock(c->defq);
	pthread_mutex_unlock(&c->ctl_lock);
	return err;
}

bool dmasvc_resumed(const struct dmasvc_client *c)
{
	return c && c->resumed;
}

bool dmasvc_resumable(const struct dmasvc_client *c)
{
	uint8_t any = 0;

	if (!c || c->query_only || !c->path[0])
		return false;
	for (unsigned int i = 0; i < sizeof(c->token); i++)
		any |= c->token[i];
	return any != 0;
}

int dmasvc_control_fd(const struct dmasvc_client *c)
{
	return c && c->sock >= 0 ? c->sock : -1;
}
