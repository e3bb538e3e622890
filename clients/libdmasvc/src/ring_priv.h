/* SPDX-License-Identifier: MIT */
/*
 * ring_priv.h - libdmasvc internal: the client's two roles on a ring
 * received from RING_SETUP (SQ producer, CQ consumer), wrapped around
 * ring/'s implementation.  Do not include directly from outside
 * clients/libdmasvc.
 *
 * The service created the ring; the client maps it and checks its header
 * against the entry counts it asked for (ring_attach).  Everything the
 * service writes (SQ head, CQ tail, CQEs) is validated by ring/ before use;
 * a broken index is reported as -EPROTO and the queue is then dead.
 */
#ifndef DMASVC_RING_PRIV_H
#define DMASVC_RING_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "dmasvc/ring_layout.h"

struct cl_ring_roles; /* ring/'s role structs, private to ring_client.c */

struct cl_ring {
	int memfd;             /* -1 when not attached; all three owned */
	int doorbell_fd;       /* we write: SQ has entries */
	int completion_fd;     /* service writes: CQ has entries */
	struct cl_ring_roles *roles;
};

/* cl_ring_init_empty: a ring holding nothing (teardown-safe). */
void cl_ring_init_empty(struct cl_ring *r);

/*
 * cl_ring_attach: take ownership of the three fds (closed on every path),
 * map @size bytes of @memfd and check the header against @sq_entries /
 * @cq_entries.  Returns 0 or -errno (-EPROTO for a header that does not
 * match, -ENOMEM, mmap's error).
 */
int cl_ring_attach(struct cl_ring *r, int memfd, int doorbell_fd, int completion_fd,
		   uint64_t size, uint32_t sq_entries, uint32_t cq_entries);

/* cl_ring_detach: unmap and close (never fails; empty ring is a no-op). */
void cl_ring_detach(struct cl_ring *r);

/*
 * cl_ring_post: post up to @n SQEs and ring the doorbell if the service
 * sleeps.  Returns the number posted (0 = SQ full) or -EPROTO (the service
 * broke the SQ head), or -errno from the doorbell write.
 */
int cl_ring_post(struct cl_ring *r, const struct dmasvc_sqe *sqes, unsigned n);

/*
 * cl_ring_stage: write up to @n SQEs into the SQ without publishing them
 * (the service sees none until cl_ring_publish()).  Returns the number
 * staged (0 = SQ full, counting staged ones), -EPROTO, or -ENOTCONN.
 */
int cl_ring_stage(struct cl_ring *r, const struct dmasvc_sqe *sqes, unsigned n);

/*
 * cl_ring_publish: publish every staged SQE with one tail store, then ring
 * the doorbell if the service sleeps.  Returns 0 (also when nothing was
 * staged, or the ring is detached) or -errno from the doorbell write.
 */
int cl_ring_publish(struct cl_ring *r);

/* cl_ring_reap: copy up to @max CQEs out; count or -EPROTO. */
int cl_ring_reap(struct cl_ring *r, struct dmasvc_cqe *out, unsigned max);

/*
 * cl_ring_sleep_prepare: announce that we are about to sleep on
 * completion_fd.  Returns 0 when it is safe to sleep, 1 when CQEs arrived
 * meanwhile (do not sleep; call cl_ring_sleep_finish), -EPROTO.
 */
int cl_ring_sleep_prepare(struct cl_ring *r);

/* cl_ring_sleep_finish: withdraw the announcement and drain the eventfd. */
void cl_ring_sleep_finish(struct cl_ring *r);

/* cl_ring_wake_poller: make completion_fd readable, as the service would
 * (for whoever polls it after dmasvc_queue_arm()).  Never fails. */
void cl_ring_wake_poller(struct cl_ring *r);

#endif /* DMASVC_RING_PRIV_H */
