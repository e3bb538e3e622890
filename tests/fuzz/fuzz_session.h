/* SPDX-License-Identifier: MIT */
/*
 * fuzz_session.h - a daemon session on the software model, without a
 * socket, for the fuzz targets that need one (SQE validation, the ring
 * consumer).  Built from the daemon's own objects (daemon_dep), so the
 * fuzzers run exactly the code the daemon runs.
 *
 * Vocabulary: the "service" (struct dsvc) lives for the whole fuzzing run;
 * a "session" is created and destroyed per input so every input starts
 * from the same state (reproducible crashes).  Regions are small (tens of
 * granules) so that executing a burst costs microseconds.
 */
#ifndef DMASVC_FUZZ_SESSION_H
#define DMASVC_FUZZ_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_check.h"
#include "session_priv.h"

#define FZ_NR_REGIONS 4

/* A session with one memory and FZ_NR_REGIONS regions of varied granules. */
struct fz_session {
	struct dsvc_session *s;
	uint32_t region_ids[FZ_NR_REGIONS];
};

/* fz_service: the process-wide service (soft model, 1 lane), made on first use. */
struct dsvc *fz_service(void);

/* fz_bx_queue: the service's executor done-queue (made once), for targets
 * that switch d->bx on to take the daemon's async burst path. */
struct executor_queue *fz_bx_queue(void);

/* fz_session_open: a new session with its memory and regions; aborts on failure. */
void fz_session_open(struct fz_session *f);

/*
 * fz_session_close: unmap everything, check that the model holds nothing
 * pinned afterwards, destroy the session.
 */
void fz_session_close(struct fz_session *f);

/*
 * fz_session_shared: the process-wide session (made on first use) for
 * targets that need no per-input objects beyond region state; pair each
 * use with fz_session_reset(), which brings it back to the same state
 * (every granule unmapped, nothing pinned), so inputs stay reproducible.
 */
void fz_session_shared(struct fz_session *f);
void fz_session_reset(struct fz_session *f);

/*
 * fz_check_consistent: every region's granule state equals what the
 * software model holds (the audit invariant), granule by granule.
 */
void fz_check_consistent(const struct fz_session *f);

/* fz_steer_region: map an arbitrary 32-bit id to a live region id most of the time. */
uint32_t fz_steer_region(const struct fz_session *f, uint32_t raw);

/*
 * fz_steer_sqe: steer @q's region id with fz_steer_region(); if bit 15 of
 * its __reserved is set, also clear __reserved and make offset and length
 * granule-aligned and inside the region, so that valid events are common.
 */
void fz_steer_sqe(const struct fz_session *f, struct dmasvc_sqe *q);

#endif /* DMASVC_FUZZ_SESSION_H */
