/* SPDX-License-Identifier: MIT */
/*
 * reply_priv.h - the reply to one control request: its body, its encoding
 * (with the one log line that reports a failed request), and its send.
 * Used by dispatch.c (requests answered at once), ctl_job.c (requests
 * answered by a job's finish) and evloop.c (undecodable requests).  Do not
 * include from outside dmasvc/.
 */
#ifndef DMASVC_REPLY_PRIV_H
#define DMASVC_REPLY_PRIV_H

#include <sys/types.h>

#include "control_priv.h"
#include "query_priv.h"
#include "session_priv.h"

/* The body of any reply. */
union reply_body {
	struct dmasvc_hello_reply hello;
	struct dmasvc_memory_add_reply memory;
	struct dmasvc_region_add_reply region;
	struct dmasvc_ring_setup_reply ring;
	struct dmasvc_device_attach_reply device;
	struct {
		struct dmasvc_query_reply rep;
		unsigned char records[QUERY_RECORD_BYTES];
	} q;
};

/*
 * reply_encode: encode into @buf (DMASVC_MSG_MAX bytes) the reply to
 * @req of session @s with result @ret (a failure's reason in @err) and, on
 * success, @body of @body_len bytes, and log it: a failure at warn (error
 * for -ENOMEM/-EIO, within the session's log budget), a success at debug.
 * This is the one place a control request's failure is reported.  Returns
 * the reply length (> 0).
 */
ssize_t reply_encode(struct dsvc *d, struct dsvc_session *s, const struct ctl_request *req,
		     int ret, char *err, const union reply_body *body, size_t body_len, void *buf);

/*
 * reply_error: encode a reply for a request that failed to decode
 * (@res < 0, reason @text), without logging.  Returns the reply length.
 */
ssize_t reply_error(const struct ctl_request *req, int res, const char *text, void *buf);

/*
 * reply_send: send one reply of @len bytes from @buf with @nfds fds
 * without blocking.  Returns 0 or -errno (-EAGAIN: the peer reads no
 * replies; -EPROTO: a short send).
 */
int reply_send(int fd, const void *buf, size_t len, const int *fds, unsigned int nfds);

/* reply_send_failure: the disconnect reason for reply_send()'s error @ret. */
const char *reply_send_failure(int ret);

#endif /* DMASVC_REPLY_PRIV_H */
