/* SPDX-License-Identifier: MIT */
/*
 * reply.c - encode, log and send the reply to one control request (see
 * reply_priv.h).
 */
#include <stdio.h>
#include <string.h>

#include "dmasvc/proto_fd.h"

#include "reply_priv.h"

int reply_send(int fd, const void *buf, size_t len, const int *fds, unsigned int nfds)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	ssize_t n = proto_send(fd, &iov, 1, fds, nfds, MSG_DONTWAIT);

	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EPROTO;
}

const char *reply_send_failure(int ret)
{
	return ret == -EAGAIN ? "reply not sent: the peer does not read its replies"
			      : "reply not sent: socket error";
}

ssize_t reply_error(const struct ctl_request *req, int res, const char *text, void *buf)
{
	return ctl_encode_reply(buf, DMASVC_MSG_MAX, req->hdr_ok ? req->cmd : 0,
				req->hdr_ok ? req->msg_id : 0, res, NULL, 0, text);
}

/* The reply text of a successful request: what was done, with its numbers. */
static void success_text(const struct dsvc_session *s, const struct ctl_request *req,
			 const void *body, char *out, size_t len)
{
	const struct dmasvc_region_add *ra = &req->u.region_add;
	uint32_t id;

	memcpy(&id, body, sizeof(id)); /* every reply struct with an id starts with it */
	switch (req->cmd) {
	case DMASVC_CMD_HELLO:
		snprintf(out, len, "session %u, protocol %d.%u", s->id, DMASVC_PROTO_MAJOR, s->minor);
		break;
	case DMASVC_CMD_MEMORY_ADD:
		snprintf(out, len, "memory %u: 0x%llx bytes mapped%s", id,
			 (unsigned long long)req->u.memory_add.size,
			 (req->u.memory_add.flags & DMASVC_MEMORY_READONLY) ? " read-only" : "");
		break;
	case DMASVC_CMD_REGION_ADD:
		snprintf(out, len, "region %u: iova 0x%llx size 0x%llx, %llu granules of 0x%llx", id,
			 (unsigned long long)ra->iova, (unsigned long long)ra->size,
			 (unsigned long long)(ra->size / ra->granule), (unsigned long long)ra->granule);
		break;
	case DMASVC_CMD_RING_SETUP:
		snprintf(out, len, "ring %u: %u SQ / %u CQ entries", id, req->u.ring_setup.sq_entries,
			 req->u.ring_setup.cq_entries);
		break;
	case DMASVC_CMD_DEVICE_ATTACH:
		snprintf(out, len, "device %u attached", id);
		break;
	case DMASVC_CMD_MEMORY_REMOVE:
	case DMASVC_CMD_REGION_REMOVE:
	case DMASVC_CMD_DEVICE_DETACH:
		snprintf(out, len, "%u removed", req->u.memory_remove.mem_id); /* all three: id first */
		break;
	case DMASVC_CMD_BYE:
		snprintf(out, len, "all mappings removed; goodbye");
		break;
	default:
		out[0] = '\0';
		break;
	}
}

ssize_t reply_encode(struct dsvc *d, struct dsvc_session *s, const struct ctl_request *req,
		     int ret, char *err, const union reply_body *body, size_t body_len, void *buf)
{
	if (ret) {
		char full[DMASVC_TEXT_MAX];

		snprintf(full, sizeof(full), "%s: %s", ctl_cmd_name(req->cmd), err);
		dlog(d->log, session_log_level(d, s, ret == -ENOMEM || ret == -EIO ? DLOG_ERROR : DLOG_WARN),
		     s->id, "%s: %s", full, strerror(-ret));
		return ctl_encode_reply(buf, DMASVC_MSG_MAX, req->cmd, req->msg_id, ret, NULL, 0, full);
	}
	success_text(s, req, body, err, DMASVC_TEXT_MAX);
	if (!s->announced && (req->cmd == DMASVC_CMD_MEMORY_ADD || req->cmd == DMASVC_CMD_DEVICE_ATTACH ||
			      req->cmd == DMASVC_CMD_RING_SETUP)) {
		/* info once per VMM-like session; a query-only client (dmasvcctl) stays at debug */
		s->announced = true;
		dlog(d->log, DLOG_INFO, s->id, "client pid %d uid %u tag 0x%llx protocol %d.%u: %s: %s",
		     (int)s->cred.pid, (unsigned)s->cred.uid, (unsigned long long)s->client_tag,
		     DMASVC_PROTO_MAJOR, s->minor, ctl_cmd_name(req->cmd), err);
	} else {
		dlog(d->log, DLOG_DEBUG, s->id, "%s: %s", ctl_cmd_name(req->cmd), err);
	}
	return ctl_encode_reply(buf, DMASVC_MSG_MAX, req->cmd, req->msg_id, 0, body, body_len, err);
}
