/* SPDX-License-Identifier: MIT */
/*
 * ctl_job.c - a long control request as a job on the session's executor
 * (see ctl_job_priv.h): the run, and the finish that applies its result
 * and replies.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_job_priv.h"
#include "executor_priv.h"
#include "keep_priv.h"
#include "reply_priv.h"

/* On the executor: the long part of the request (session_priv.h, threading). */
static void ctl_job_run(struct dsvc *d, struct dsvc_session *s, void *arg)
{
	struct ctl_job *j = arg;

	switch (j->req.cmd) {
	case DMASVC_CMD_REGION_REMOVE:
		s->job_unmap_calls = session_region_unmap(d, s, j->region);
		break;
	case DMASVC_CMD_BYE:
		s->job_unmap_calls = session_unmap_regions(d, s);
		break;
	case DMASVC_CMD_DEVICE_ATTACH:
		j->ret = session_device_attach_run(d, s, j->req.fd, &j->handle, j->err,
						   sizeof(j->err));
		break;
	default:
		break; /* dispatch.c makes jobs of the three above only */
	}
}

/*
 * On the loop, after @j ran: apply its result (the loop half of its
 * command), and encode its reply into @buf.  Sets *@disconnect for BYE.
 * Returns the reply length.
 */
static ssize_t ctl_job_apply(struct dsvc *d, struct dsvc_session *s, struct ctl_job *j,
			     void *buf, bool *disconnect)
{
	union reply_body body;
	size_t body_len = 0;
	char err[DMASVC_TEXT_MAX] = "";
	uint32_t id;
	int ret = 0;

	memset(&body, 0, sizeof(body));
	switch (j->req.cmd) {
	case DMASVC_CMD_REGION_REMOVE:
		session_region_forget(s, j->region);
		keep_session_write(d, s); /* the record follows every control change */
		break;
	case DMASVC_CMD_DEVICE_ATTACH:
		ret = session_device_attach_commit(s, j->slot, j->ret, j->handle, j->err, &id, err,
						   sizeof(err));
		if (!ret) {
			keep_session_write(d, s);
			body.device.dev_id = id;
			body.device.iommufd_devid = session_device_iommufd_devid(d, s, id);
			body_len = sizeof(body.device);
		}
		break;
	case DMASVC_CMD_BYE:
		session_usage_snapshot(s);
		*disconnect = true;
		break;
	default:
		break;
	}
	return reply_encode(d, s, &j->req, ret, err, &body, body_len, buf);
}

/* On the loop: apply, reply (unless the session is closing), free the job. */
static void ctl_job_finish(struct dsvc *d, struct dsvc_session *s, void *arg)
{
	unsigned char out[DMASVC_MSG_MAX];
	struct ctl_job *j = arg;
	const char *why = NULL;
	bool bye = false;
	ssize_t rlen;

	s->ctr.unmap_calls += s->job_unmap_calls;
	s->job_unmap_calls = 0;
	rlen = ctl_job_apply(d, s, j, out, &bye);
	if (bye)
		why = "bye";
	if (!s->closing) {
		int ret = reply_send(s->fd, out, (size_t)rlen, NULL, 0);

		if (ret)
			why = reply_send_failure(ret);
	}
	if (why && !s->close_why)
		s->close_why = why;
	if (j->req.fd >= 0)
		close(j->req.fd); /* the backend dup()ed what it keeps */
	free(j);
}

static const struct exec_job_ops ctl_job_ops = {
	.run = ctl_job_run,
	.finish = ctl_job_finish,
};

bool ctl_job_start(struct dsvc *d, struct dsvc_session *s, struct ctl_job *j)
{
	s->job_unmap_calls = 0;
	return executor_run_job(d, s, &ctl_job_ops, j);
}
