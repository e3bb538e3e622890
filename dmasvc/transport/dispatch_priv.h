/* SPDX-License-Identifier: MIT */
/*
 * dispatch_priv.h - one decoded control request -> session operation ->
 * reply packet.  Do not include from outside dmasvc/.
 */
#ifndef DMASVC_DISPATCH_PRIV_H
#define DMASVC_DISPATCH_PRIV_H

#include <stdbool.h>
#include <sys/types.h>

#include "control_priv.h"
#include "session_priv.h"

/* What the event loop must do after sending the reply. */
struct dispatch_out {
	int fds[3];          /* fds to send with the reply (SCM_RIGHTS) */
	unsigned int nfds;
	bool close_fds_after;/* fds[0] is ours to close once sent (ring memfd) */
	bool disconnect;     /* close the session after the reply ... */
	const char *why;     /* ... for this reason (log line) */
	bool new_ring;       /* a ring was set up: arm its doorbell */
	bool deferred;       /* the request became a job (ctl_job_priv.h): no reply now */
	/* HELLO RESUME matched: after the reply, the connection moves onto
	 * this session and the one it came in on is dropped (evloop.c). */
	struct dsvc_session *resumed;
};

/*
 * dispatch_request: carry out @req for session @s and encode the reply into
 * @buf (DMASVC_MSG_MAX bytes).  Consumes req->fd.  Every request gets a
 * reply; the reply text for a failure names the command.  A long request
 * (REGION_REMOVE, BYE, DEVICE_ATTACH) that passes its checks becomes a job
 * on the session's executor (out->deferred; @s is then busy, or, when it
 * ran inline, already answered); its reply is sent by the job's finish.
 * Returns the reply length (> 0), or 0 when deferred.
 */
ssize_t dispatch_request(struct dsvc *d, struct dsvc_session *s, struct ctl_request *req,
			 void *buf, struct dispatch_out *out);

#endif /* DMASVC_DISPATCH_PRIV_H */
