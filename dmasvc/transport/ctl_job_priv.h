/* SPDX-License-Identifier: MIT */
/*
 * ctl_job_priv.h - the control requests that take long run as jobs on the
 * session's executor (datapath/executor_priv.h), not on the event loop:
 * REGION_REMOVE's and BYE's unmaps (and unpins), DEVICE_ATTACH's attach
 * (iommufd pins every existing area inside the ioctl).  Do not include from
 * outside dmasvc/.
 *
 * A request becomes a job in three steps: dispatch.c checks it on the loop
 * (a request that fails a check is answered at once, no job); the job's run
 * does the long part on the executor while the session is busy, so no other
 * control request, burst or close of the session runs meanwhile (other
 * sessions are served); its finish, back on the loop, applies the result
 * and sends the reply (reply_priv.h) and frees the job.
 *
 * Ownership: the job is allocated by dispatch.c and owned by the session's
 * executor hand-over (s->job_arg) from ctl_job_start() until its finish,
 * which frees it; its req.fd (DEVICE_ATTACH) is the job's and is closed by
 * the finish.  While the job runs its region is not freed: only the
 * finish or a session's destroy frees regions, and neither runs while busy.
 */
#ifndef DMASVC_CTL_JOB_PRIV_H
#define DMASVC_CTL_JOB_PRIV_H

#include <stdbool.h>

#include "control_priv.h"
#include "session_priv.h"

struct ctl_job {
	/* Set by dispatch.c before ctl_job_start(), immutable after: */
	struct ctl_request req;     /* the request; req.fd is the job's */
	struct dsvc_region *region; /* REGION_REMOVE: its region */
	unsigned int slot;          /* DEVICE_ATTACH: the slot prepare chose */
	/* Written by the run on the executor, read by the finish: */
	int ret;                    /* DEVICE_ATTACH: the attach's result */
	uint32_t handle;            /* DEVICE_ATTACH: the backend's device handle */
	char err[DMASVC_TEXT_MAX];  /* DEVICE_ATTACH: the reason when ret != 0 */
};

/*
 * ctl_job_start: run @j (ownership moves) for @s, which is not busy: on the
 * executor, or inline when there is none.  Returns true when it runs on
 * the executor (@s busy; the reply comes from the finish), false when it
 * is already finished (the reply sent, @j freed).  Either way a
 * disconnect the finish asks for is in s->close_why.
 */
bool ctl_job_start(struct dsvc *d, struct dsvc_session *s, struct ctl_job *j);

#endif /* DMASVC_CTL_JOB_PRIV_H */
