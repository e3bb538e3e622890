/* SPDX-License-Identifier: MIT */
/*
 * ctl_job.c - a long control request as a job on the session's executor
 * (see ctl_job_priv.h): the run, and the finish that replies.
 */
#include <stdlib.h>
#include <unistd.h>

#include "ctl_job_priv.h"
#include "dispatch_priv.h"
#include "executor_priv.h"

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
		j->ret = d->ops->device_attach(s->space, j->req.fd, &j->handle);
		break;
	default:
		break; /* dispatch.c makes jobs of the three above only */
	}
}

/* On the loop: apply, reply (unless the session is closing), free the job. */
static void ctl_job_finish(struct dsvc *d, struct dsvc_session *s, void *arg)
{
	unsigned char out[DMASVC_MSG_MAX];
	struct ctl_job *j = arg;
	struct dispatch_out dout;
	ssize_t rlen;

	s->ctr.unmap_calls += s->job_unmap_calls;
	s->job_unmap_calls = 0;
	rlen = dispatch_finish(d, s, j, out, &dout);
	if (!s->closing) {
		int ret = dispatch_send(s->fd, out, (size_t)rlen, NULL, 0);

		if (ret) {
			dout.disconnect = true;
			dout.why = dispatch_send_failure(ret);
		}
	}
	if (dout.disconnect && !s->close_why)
		s->close_why = dout.why ? dout.why : "closed";
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
