/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c - run one control request against its session and build the
 * reply (see dispatch_priv.h).  Failures are logged here, once, with the
 * session id, the command and the reason: this is the one place control
 * errors are reported.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_job_priv.h"
#include "dispatch_priv.h"
#include "keep_priv.h"
#include "query_priv.h"
#include "reply_priv.h"
#include "ring_service_priv.h"

/*
 * HELLO RESUME (docs/restart.md): the orphan session holding @h's token
 * for the peer's uid takes over @s's connection.  Here only the session
 * state moves (client tag, pid, minor, a new token); the event loop moves
 * the socket and drops @s once the reply is sent (out->resumed).  Returns
 * 0 and *@o, or -ESTALE (no such session; @s stays before HELLO so the
 * client may send a plain one).
 */
static int hello_resume(struct dsvc *d, struct dsvc_session *s, const struct dmasvc_hello *h,
			uint16_t minor, struct dsvc_session **o, char *err, size_t errlen)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	struct dsvc_session *t;

	/*
	 * A RESUME whose sender has already closed its connection: a client
	 * that gave up waiting while the socket was held but not served (a
	 * restart under socket activation) and will send a new RESUME on a new
	 * connection.  Taking the orphan here would tear it down at the
	 * hangup that follows; leave it for that next RESUME.
	 */
	if (s->fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR))) {
		snprintf(err, errlen, "the connection is closed already: the session stays kept");
		return -ESTALE;
	}
	t = session_orphan_match(d, h->token, s->cred.uid);
	if (!t) {
		snprintf(err, errlen, "no session to resume: expired, torn down or another uid");
		return -ESTALE;
	}
	t->orphan = false;
	t->resumed = true;
	t->region_phase = true;
	t->hello_done = true;
	t->client_tag = h->client_tag;
	t->minor = minor;
	t->cred.pid = s->cred.pid;
	t->cred.gid = s->cred.gid;
	t->admin = s->admin;
	t->log_budget = SESSION_LOG_BUDGET;
	session_token_issue(d, t); /* single use */
	keep_session_write(d, t); /* the new token; its names are in the store already */
	dlog(d->log, DLOG_INFO, t->id,
	     "resumed by pid %d uid %u tag 0x%llx (connection of session %u): %u regions, %u devices",
	     (int)t->cred.pid, (unsigned)t->cred.uid, (unsigned long long)t->client_tag, s->id,
	     t->nr_regions, t->nr_devices);
	*o = t;
	return 0;
}

static int do_hello(struct dsvc *d, struct dsvc_session *s, const struct dmasvc_hello *h,
		    struct dmasvc_hello_reply *rep, struct dispatch_out *out, char *err,
		    size_t errlen)
{
	unsigned int ours = DMASVC_PROTO_MINOR; /* a variable: the compare may be always-false */
	uint16_t minor = (uint16_t)(h->minor < ours ? h->minor : ours);
	struct dsvc_session *t = s;
	int ret;

	if (s->hello_done) {
		snprintf(err, errlen, "HELLO sent twice");
		return -EINVAL;
	}
	if (h->major != DMASVC_PROTO_MAJOR) {
		snprintf(err, errlen, "protocol major %u not supported (service speaks %d.%d)",
			 h->major, DMASVC_PROTO_MAJOR, DMASVC_PROTO_MINOR);
		out->disconnect = true;
		return -EPROTO;
	}
	if (h->flags & DMASVC_HELLO_RESUME) { /* minor >= 2: checked by ctl_decode */
		ret = hello_resume(d, s, h, minor, &t, err, errlen);
		if (ret)
			return ret;
		out->resumed = t;
	} else {
		s->hello_done = true;
		s->client_tag = h->client_tag;
		s->minor = minor;
		if (minor >= 2) {
			session_token_issue(d, s);
			keep_session_write(d, s); /* the token: from now on it can be resumed */
		}
	}
	*rep = (struct dmasvc_hello_reply){
		.major = DMASVC_PROTO_MAJOR,
		.minor = t->minor,
		.session_id = t->id,
		.max_sq_entries = CTL_MAX_SQ_ENTRIES,
		.max_cq_entries = CTL_MAX_CQ_ENTRIES,
		.max_areas = t->max_areas,
		.flags = t != s ? DMASVC_HELLO_RESUMED : 0,
	};
	memcpy(rep->token, t->token, sizeof(rep->token));
	/* debug: every dmasvcctl call says hello; a VMM is announced at its first object */
	dlog(d->log, DLOG_DEBUG, t->id, "hello: pid %d uid %u tag 0x%llx protocol %u.%u%s%s",
	     (int)t->cred.pid, (unsigned)t->cred.uid, (unsigned long long)t->client_tag, h->major,
	     t->minor, t->admin ? " (admin)" : "", t != s ? " (resumed)" : "");
	return 0;
}

/*
 * Make @req (checked) a job for @s's executor, with @r or @slot as its
 * command needs; the job takes req->fd.  Returns 0 (out->deferred), or
 * -ENOMEM with a reason in @err (then nothing changed).
 */
static int defer(struct dsvc *d, struct dsvc_session *s, struct ctl_request *req,
		 struct dsvc_region *r, unsigned int slot, struct dispatch_out *out, char *err,
		 size_t errlen)
{
	struct ctl_job *j = calloc(1, sizeof(*j));

	if (!j)
		return dlog_errf(-ENOMEM, err, errlen, "out of memory");
	j->req = *req;
	j->region = r;
	j->slot = slot;
	req->fd = -1;
	out->deferred = true;
	ctl_job_start(d, s, j);
	return 0;
}

ssize_t dispatch_request(struct dsvc *d, struct dsvc_session *s, struct ctl_request *req,
			 void *buf, struct dispatch_out *out)
{
	union reply_body body;
	size_t body_len = 0;
	char err[DMASVC_TEXT_MAX] = "";
	struct dsvc_region *r;
	struct dsvc_ring *rg;
	unsigned int slot;
	uint32_t id;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	memset(&body, 0, sizeof(body));
	if (!s->hello_done && req->cmd != DMASVC_CMD_HELLO) {
		snprintf(err, sizeof(err), "the first request must be HELLO");
		ret = -EPROTO;
		out->disconnect = true;
		out->why = "protocol error: a request before HELLO";
		goto reply;
	}
	switch (req->cmd) {
	case DMASVC_CMD_HELLO:
		ret = do_hello(d, s, &req->u.hello, &body.hello, out, err, sizeof(err));
		out->why = "protocol version mismatch";
		if (out->resumed)
			s = out->resumed; /* the reply speaks for the resumed session */
		/* a minor < 2 client knows only the first 32 bytes */
		body_len = s->minor >= 2 ? sizeof(body.hello) : DMASVC_HELLO_REPLY_V1_SIZE;
		break;
	case DMASVC_CMD_MEMORY_ADD:
		ret = session_memory_add(d, s, req->fd, &req->u.memory_add, &id, err, sizeof(err));
		if (!ret) {
			const struct dsvc_memory *m = session_memory(s, id);

			req->fd = -1; /* the memory owns it now */
			body.memory.mem_id = id;
			body.memory.flags = m && m->guarded ? DMASVC_MEMORY_ADDED_FALLOC : 0;
			body_len = sizeof(body.memory);
		}
		break;
	case DMASVC_CMD_MEMORY_REMOVE:
		ret = session_memory_remove(s, req->u.memory_remove.mem_id, err, sizeof(err));
		break;
	case DMASVC_CMD_REGION_ADD:
		ret = session_region_add(d, s, &req->u.region_add, &id, err, sizeof(err));
		if (!ret) {
			body.region.region_id = id;
			body_len = sizeof(body.region);
		}
		break;
	case DMASVC_CMD_REGION_REMOVE:
		r = session_region(s, req->u.region_remove.region_id);
		if (!r) {
			ret = dlog_errf(-ENOENT, err, sizeof(err), "no region %u",
					req->u.region_remove.region_id);
			break;
		}
		ret = defer(d, s, req, r, 0, out, err, sizeof(err));
		if (!ret)
			return 0;
		break;
	case DMASVC_CMD_RING_SETUP:
		ret = session_ring_setup(d, s, &req->u.ring_setup, &rg, out->fds, err, sizeof(err));
		if (!ret) {
			out->nfds = 3;
			out->close_fds_after = true;
			out->new_ring = true;
			body.ring.ring_id = rg->id;
			body.ring.ring_size = rg->map.size;
			body_len = sizeof(body.ring);
		}
		break;
	case DMASVC_CMD_DEVICE_ATTACH:
		ret = session_device_attach_prepare(d, s, &slot, err, sizeof(err));
		if (!ret)
			ret = defer(d, s, req, NULL, slot, out, err, sizeof(err));
		if (!ret)
			return 0;
		break;
	case DMASVC_CMD_DEVICE_DETACH:
		ret = session_device_detach(d, s, req->u.device_detach.dev_id, err, sizeof(err));
		break;
	case DMASVC_CMD_QUERY:
		/*
		 * STATUS and SESSIONS read busy sessions' snapshots
		 * (session_usage()); REGIONS and AUDIT read region state, which
		 * a busy session's executor owns: wait for it (AUDIT: only for
		 * the session audited).  Not for a query query_run() refuses
		 * (service-wide from a non-admin peer): a peer allowed to
		 * connect must not hold the loop on other sessions' bursts.
		 */
		if ((req->u.query.flags & DMASVC_QUERY_F_ALL_SESSIONS) && s->admin) {
			if (req->u.query.what == DMASVC_QUERY_REGIONS) {
				ringsvc_quiesce(d, NULL); /* every session */
			} else if (req->u.query.what == DMASVC_QUERY_AUDIT) {
				/* id 0 names the caller, which is never busy here */
				struct dsvc_session *o = session_find(d, req->u.query.session_id);

				if (o)
					ringsvc_quiesce(d, o);
			}
		}
		ret = query_run(d, s, &req->u.query, &body.q.rep, body.q.records, err, sizeof(err));
		if (!ret)
			body_len = sizeof(body.q.rep) + (size_t)body.q.rep.count * body.q.rep.record_size;
		break;
	case DMASVC_CMD_BYE:
		if (s->nr_regions == 0) { /* nothing to unmap (dmasvcctl): no job */
			out->disconnect = true;
			out->why = "bye";
			break;
		}
		ret = defer(d, s, req, NULL, 0, out, err, sizeof(err));
		if (!ret)
			return 0;
		break;
	case DMASVC_CMD_UPGRADE:
		/* Runs after this turn (evloop.c): the reply goes out first. */
		if (!s->admin) {
			ret = dlog_errf(-EPERM, err, sizeof(err),
					"UPGRADE is for the service's admins (root and the service's uid),"
					" not uid %u", (unsigned)s->cred.uid);
			break;
		}
		d->upgrade = true;
		break;
	default:
		snprintf(err, sizeof(err), "unknown command %u", req->cmd);
		ret = -EOPNOTSUPP;
		break;
	}
reply:
	if (req->fd >= 0) {
		close(req->fd); /* a failed DEVICE_ATTACH or MEMORY_ADD */
		req->fd = -1;
	}
	return reply_encode(d, s, req, ret, err, &body, body_len, buf);
}

