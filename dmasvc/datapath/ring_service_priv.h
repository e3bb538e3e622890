/* SPDX-License-Identifier: MIT */
/*
 * ring_service_priv.h - the service side of a session's rings: drain SQEs in
 * bursts, validate them, plan and execute with granule/, post CQEs.
 * Do not include from outside dmasvc/ (tests and fuzzers may).
 *
 * Rules (docs/design.md "Data path"):
 *   - each SQE is copied once by the ring, then validated here: opcode,
 *     flags, reserved, region, alignment, bounds.  A bad SQE completes with
 *     -EINVAL (opcode, flags, reserved, alignment, zero length), -ERANGE
 *     (out of bounds) or -ENOENT (unknown region); it is not a disconnect.
 *     A ring-index protocol error (RING_EPROTO) is: the caller disconnects.
 *   - a full CQ makes the service wait: CQEs that do not fit are kept in the
 *     ring's backlog (at most one burst), the SQ is not drained again until
 *     the backlog is posted, and the CQ wait flag asks the client to ring the
 *     doorbell when it frees CQ space.  No completion is ever dropped.
 *   - latency is recorded per event from the drain to the CQE post.
 */
#ifndef DMASVC_RING_SERVICE_PRIV_H
#define DMASVC_RING_SERVICE_PRIV_H

#include "dmasvc/plan.h"

#include "session_priv.h"

/*
 * ringsvc_sqe_validate: check @sqe against @s.  Returns 1 and fills *@ev for a
 * populate/discard, 0 for a valid NOP (complete it with 0), or -errno for
 * the CQE (-EINVAL, -ERANGE, -ENOENT).  Pure: reads @s, changes nothing.
 */
int ringsvc_sqe_validate(const struct dmasvc_sqe *sqe, const struct dsvc_session *s,
		 struct gran_event *ev);

/*
 * ringsvc_ring_work: process ring @rg of @s: post any backlog, then drain and
 * run up to @max_bursts bursts.  A big burst (d->async_bytes) is handed to
 * the session's executor and the session becomes busy; it is finished by
 * ringsvc_complete().  Does nothing while @s is busy.  Returns the number of
 * SQEs completed here (0 when the SQ was empty, the CQ is full or the
 * session went busy), or RING_EPROTO (disconnect the session).
 */
int ringsvc_ring_work(struct dsvc *d, struct dsvc_session *s, struct dsvc_ring *rg,
		  unsigned int max_bursts);


/*
 * ringsvc_complete: finish every async burst that is done (CQEs, counters,
 * logs) and every job (its finish); their sessions stop being busy, or are
 * marked broken on a ring protocol error.  Never blocks.  Returns how many
 * bursts were finished (jobs not counted: the loop's polling window and
 * spin count bursts only).
 */
unsigned int ringsvc_complete(struct dsvc *d);

/*
 * ringsvc_quiesce: wait until @s (NULL: every session that is not closing)
 * has no burst or job in flight, finishing them as they complete (a job's
 * finish runs here).  Never closes or frees a session.
 */
void ringsvc_quiesce(struct dsvc *d, struct dsvc_session *s);

/*
 * ringsvc_session_release: wait for @s's burst in flight, stop its executor and
 * free what the data path keeps for @s; call it before session_destroy().
 * Idempotent; never fails.
 */
void ringsvc_session_release(struct dsvc *d, struct dsvc_session *s);

/* ringsvc_ring_pending: whether @rg has SQEs waiting (peeks the tail; false while the CQ backlog blocks). */
bool ringsvc_ring_pending(struct dsvc_ring *rg);

#endif /* DMASVC_RING_SERVICE_PRIV_H */
