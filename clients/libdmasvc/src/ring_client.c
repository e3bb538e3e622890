/* SPDX-License-Identifier: MIT */
/*
 * ring_client.c - the client's roles on a service-made ring (SQ producer,
 * CQ consumer) on top of ring/ (ring.h), with the doorbell and completion
 * eventfds.  See ring_priv.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "dmasvc/ring.h"
#include "ring_priv.h"

struct cl_ring_roles {
	struct ring_mapping map;
	struct ring_sq_producer sq;
	struct ring_cq_consumer cq;
};

void cl_ring_init_empty(struct cl_ring *r)
{
	r->memfd = -1;
	r->doorbell_fd = -1;
	r->completion_fd = -1;
	r->roles = NULL;
}

int cl_ring_attach(struct cl_ring *r, int memfd, int doorbell_fd, int completion_fd,
		   uint64_t size, uint32_t sq_entries, uint32_t cq_entries)
{
	struct ring_params p = { .sq_entries = sq_entries, .cq_entries = cq_entries };
	ssize_t want = ring_mem_size(sq_entries, cq_entries);
	int err;

	r->memfd = memfd;
	r->doorbell_fd = doorbell_fd;
	r->completion_fd = completion_fd;
	if (want < 0) {
		err = (int)want;
		goto err_close;
	}
	if ((uint64_t)want != size) {
		err = -EPROTO;
		goto err_close;
	}
	r->roles = calloc(1, sizeof(*r->roles));
	if (!r->roles) {
		err = -ENOMEM;
		goto err_close;
	}
	err = ring_map(&r->roles->map, memfd, &p);
	if (err)
		goto err_free;
	err = ring_sq_producer_init(&r->roles->sq, &r->roles->map);
	if (!err)
		err = ring_cq_consumer_init(&r->roles->cq, &r->roles->map);
	if (err)
		goto err_unmap;
	return 0;

err_unmap:
	ring_unmap(&r->roles->map);
err_free:
	free(r->roles);
	r->roles = NULL;
err_close:
	cl_ring_detach(r);
	return err;
}

void cl_ring_detach(struct cl_ring *r)
{
	if (r->roles) {
		ring_unmap(&r->roles->map);
		free(r->roles);
	}
	if (r->memfd >= 0)
		close(r->memfd);
	if (r->doorbell_fd >= 0)
		close(r->doorbell_fd);
	if (r->completion_fd >= 0)
		close(r->completion_fd);
	cl_ring_init_empty(r);
}

int cl_ring_post(struct cl_ring *r, const struct dmasvc_sqe *sqes, unsigned n)
{
	int cnt, err;

	if (!r->roles)
		return -ENOTCONN;
	cnt = ring_sq_post(&r->roles->sq, sqes, n);
	if (cnt > 0 && ring_sq_post_should_wake(&r->roles->sq)) {
		err = ring_eventfd_signal(r->doorbell_fd);
		if (err)
			return err;
	}
	return cnt;
}

int cl_ring_stage(struct cl_ring *r, const struct dmasvc_sqe *sqes, unsigned n)
{
	if (!r->roles)
		return -ENOTCONN;
	return ring_sq_stage(&r->roles->sq, sqes, n);
}

int cl_ring_publish(struct cl_ring *r)
{
	if (!r->roles)
		return 0; /* detached: nothing staged survives a detach */
	if (ring_sq_publish(&r->roles->sq) && ring_sq_post_should_wake(&r->roles->sq))
		return ring_eventfd_signal(r->doorbell_fd);
	return 0;
}

int cl_ring_reap(struct cl_ring *r, struct dmasvc_cqe *out, unsigned max)
{
	int cnt;

	if (!r->roles)
		return -ENOTCONN;
	cnt = ring_cq_drain(&r->roles->cq, out, max);
	/* The service may wait for CQ space (it never drops a completion). */
	if (cnt > 0 && ring_cq_drain_should_wake(&r->roles->cq))
		(void)ring_eventfd_signal(r->doorbell_fd);
	return cnt;
}

int cl_ring_sleep_prepare(struct cl_ring *r)
{
	int ret;

	if (!r->roles)
		return -ENOTCONN;
	ret = ring_cq_drain_wait_begin(&r->roles->cq);
	if (ret < 0)
		return ret;
	return ret == 1 ? 0 : 1; /* 1 from ring/ = still empty, safe to sleep */
}

void cl_ring_wake_poller(struct cl_ring *r)
{
	(void)ring_eventfd_signal(r->completion_fd);
}

void cl_ring_sleep_finish(struct cl_ring *r)
{
	if (!r->roles)
		return;
	ring_cq_drain_wait_end(&r->roles->cq);
	(void)ring_eventfd_consume(r->completion_fd);
}
