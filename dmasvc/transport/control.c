/* SPDX-License-Identifier: MIT */
/*
 * control.c - decode/validate control packets and encode replies (see
 * control_priv.h for the two kinds of failure).
 *
 * Vocabulary: "body" is the packet after struct dmasvc_msg_hdr; "known
 * size" is sizeof the body struct this service understands; a body may be
 * longer than that only if the extra bytes are zero (-E2BIG otherwise).
 * All request bodies are fully mandatory: min size = known size.
 * "end" = start + size (exclusive), computed with overflow checks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log_priv.h"
#include "control_priv.h"

struct cmd_desc {
	const char *name;
	size_t body;  /* known body size */
	bool takes_fd; /* exactly one SCM_RIGHTS fd */
	size_t min;   /* minimum body size; 0: the known size (a command that grew
			 keeps its old size here; the missing tail reads as zero) */
};

static const struct cmd_desc cmds[DMASVC_CMD_MAX] = {
	[DMASVC_CMD_HELLO] = { "HELLO", sizeof(struct dmasvc_hello), false, DMASVC_HELLO_V1_SIZE },
	[DMASVC_CMD_MEMORY_ADD] = { "MEMORY_ADD", sizeof(struct dmasvc_memory_add), true },
	[DMASVC_CMD_MEMORY_REMOVE] = { "MEMORY_REMOVE", sizeof(struct dmasvc_memory_remove), false },
	[DMASVC_CMD_REGION_ADD] = { "REGION_ADD", sizeof(struct dmasvc_region_add), false },
	[DMASVC_CMD_REGION_REMOVE] = { "REGION_REMOVE", sizeof(struct dmasvc_region_remove), false },
	[DMASVC_CMD_RING_SETUP] = { "RING_SETUP", sizeof(struct dmasvc_ring_setup), false },
	[DMASVC_CMD_DEVICE_ATTACH] = { "DEVICE_ATTACH", sizeof(struct dmasvc_device_attach), true },
	[DMASVC_CMD_DEVICE_DETACH] = { "DEVICE_DETACH", sizeof(struct dmasvc_device_detach), false },
	[DMASVC_CMD_QUERY] = { "QUERY", sizeof(struct dmasvc_query), false },
	[DMASVC_CMD_BYE] = { "BYE", 0, false },
	[DMASVC_CMD_UPGRADE] = { "UPGRADE", 0, false },
};

const char *ctl_cmd_name(uint16_t cmd)
{
	if (cmd == 0 || cmd >= DMASVC_CMD_MAX || !cmds[cmd].name)
		return "?";
	return cmds[cmd].name;
}

static void close_fds(int *fds, unsigned int nfds)
{
	if (nfds > CTL_MAX_FDS)
		nfds = CTL_MAX_FDS;
	for (unsigned int i = 0; i < nfds; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* The byte-only checks of REGION_ADD: granule, alignment, no overflow. */
static int check_region_add(const struct dmasvc_region_add *r, char *err, size_t errlen)
{
	uint64_t end;

	if (r->flags & ~(uint32_t)DMASVC_REGION_READONLY)
		return dlog_errf(-EINVAL, err, errlen, "unknown region flags 0x%x", r->flags);
	if (!ctl_is_pow2(r->granule) || r->granule < CTL_MIN_GRANULE)
		return dlog_errf(-EINVAL, err, errlen,
			    "granule 0x%llx is not a power of two >= 4096",
			    (unsigned long long)r->granule);
	if (r->size == 0)
		return dlog_errf(-EINVAL, err, errlen, "region size is 0");
	if ((r->iova | r->size | r->mem_offset) & (r->granule - 1))
		return dlog_errf(-EINVAL, err, errlen,
			    "iova 0x%llx, size 0x%llx and mem_offset 0x%llx must be multiples of the granule 0x%llx",
			    (unsigned long long)r->iova, (unsigned long long)r->size,
			    (unsigned long long)r->mem_offset, (unsigned long long)r->granule);
	if (__builtin_add_overflow(r->iova, r->size - 1, &end))
		return dlog_errf(-ERANGE, err, errlen, "iova 0x%llx + size 0x%llx overflows",
			    (unsigned long long)r->iova, (unsigned long long)r->size);
	if (__builtin_add_overflow(r->mem_offset, r->size, &end))
		return dlog_errf(-ERANGE, err, errlen, "mem_offset 0x%llx + size 0x%llx overflows",
			    (unsigned long long)r->mem_offset, (unsigned long long)r->size);
	return 0;
}

static int check_ring_setup(const struct dmasvc_ring_setup *r, char *err, size_t errlen)
{
	if (r->flags || r->__reserved)
		return dlog_errf(-EINVAL, err, errlen, "ring flags/reserved must be 0");
	if (!ctl_is_pow2(r->sq_entries) || r->sq_entries < CTL_MIN_ENTRIES ||
	    r->sq_entries > CTL_MAX_SQ_ENTRIES)
		return dlog_errf(-EINVAL, err, errlen, "sq_entries %u is not a power of two in %u..%u",
			    r->sq_entries, CTL_MIN_ENTRIES, CTL_MAX_SQ_ENTRIES);
	if (!ctl_is_pow2(r->cq_entries) || r->cq_entries < r->sq_entries ||
	    r->cq_entries > CTL_MAX_CQ_ENTRIES)
		return dlog_errf(-EINVAL, err, errlen,
			    "cq_entries %u is not a power of two in sq_entries (%u)..%u",
			    r->cq_entries, r->sq_entries, CTL_MAX_CQ_ENTRIES);
	return 0;
}

/* Per-command checks that need only the body bytes. */
static int check_body(struct ctl_request *req, char *err, size_t errlen)
{
	switch (req->cmd) {
	case DMASVC_CMD_HELLO:
		if (req->u.hello.flags & ~(uint32_t)DMASVC_HELLO_RESUME)
			return dlog_errf(-EINVAL, err, errlen, "unknown hello flags 0x%x",
				    req->u.hello.flags & ~(uint32_t)DMASVC_HELLO_RESUME);
		if ((req->u.hello.flags & DMASVC_HELLO_RESUME) && req->u.hello.minor < 2)
			return dlog_errf(-EINVAL, err, errlen,
				    "hello RESUME needs protocol minor 2 (the client says %u)",
				    req->u.hello.minor);
		if (!(req->u.hello.flags & DMASVC_HELLO_RESUME) &&
		    !all_zero(req->u.hello.token, sizeof(req->u.hello.token)))
			return dlog_errf(-EINVAL, err, errlen, "hello token without RESUME must be all-zero");
		return 0;
	case DMASVC_CMD_MEMORY_ADD:
		if (req->u.memory_add.flags & ~(uint32_t)DMASVC_MEMORY_READONLY)
			return dlog_errf(-EINVAL, err, errlen, "unknown memory flags 0x%x",
				    req->u.memory_add.flags);
		if (req->u.memory_add.__reserved)
			return dlog_errf(-EINVAL, err, errlen, "memory reserved field must be 0");
		if (req->u.memory_add.size == 0)
			return dlog_errf(-EINVAL, err, errlen, "memory size is 0");
		return 0;
	case DMASVC_CMD_MEMORY_REMOVE:
		return req->u.memory_remove.__reserved ?
			dlog_errf(-EINVAL, err, errlen, "reserved field must be 0") : 0;
	case DMASVC_CMD_REGION_ADD:
		return check_region_add(&req->u.region_add, err, errlen);
	case DMASVC_CMD_REGION_REMOVE:
		return req->u.region_remove.__reserved ?
			dlog_errf(-EINVAL, err, errlen, "reserved field must be 0") : 0;
	case DMASVC_CMD_RING_SETUP:
		return check_ring_setup(&req->u.ring_setup, err, errlen);
	case DMASVC_CMD_DEVICE_ATTACH:
		if (req->u.device_attach.flags || req->u.device_attach.__reserved)
			return dlog_errf(-EINVAL, err, errlen, "device flags/reserved must be 0");
		return 0;
	case DMASVC_CMD_DEVICE_DETACH:
		return req->u.device_detach.__reserved ?
			dlog_errf(-EINVAL, err, errlen, "reserved field must be 0") : 0;
	case DMASVC_CMD_QUERY:
		if (req->u.query.what == 0 || req->u.query.what >= DMASVC_QUERY_MAX)
			return dlog_errf(-EINVAL, err, errlen, "unknown query %u", req->u.query.what);
		if (req->u.query.flags & ~(uint32_t)DMASVC_QUERY_F_ALL_SESSIONS)
			return dlog_errf(-EINVAL, err, errlen, "unknown query flags 0x%x", req->u.query.flags);
		if (req->u.query.session_id &&
		    !(req->u.query.what == DMASVC_QUERY_AUDIT &&
		      (req->u.query.flags & DMASVC_QUERY_F_ALL_SESSIONS)))
			return dlog_errf(-EINVAL, err, errlen,
				    "session_id is only valid for AUDIT with ALL_SESSIONS");
		return 0;
	default:
		return 0;
	}
}

int ctl_decode(const void *buf, size_t len, int msg_flags, int *fds, unsigned int nfds,
	       struct ctl_request *req, char *err, size_t errlen)
{
	const unsigned char *p = buf;
	struct dmasvc_msg_hdr hdr;
	const struct cmd_desc *d;
	size_t body_len;
	int ret;

	memset(req, 0, sizeof(*req));
	req->fd = -1;
	err[0] = '\0';

	if (len >= sizeof(hdr)) {
		memcpy(&hdr, p, sizeof(hdr));
		req->msg_id = hdr.msg_id;
		req->cmd = hdr.cmd;
		req->hdr_ok = true;
	}
	req->fatal = true; /* until the framing checks pass */
	if (msg_flags & MSG_TRUNC) {
		ret = dlog_errf(-EPROTO, err, errlen, "packet truncated (more than %d bytes)", DMASVC_MSG_MAX);
		goto err_close;
	}
	if (msg_flags & MSG_CTRUNC) {
		ret = dlog_errf(-EPROTO, err, errlen, "ancillary data truncated (too many fds)");
		goto err_close;
	}
	if (!req->hdr_ok) {
		ret = dlog_errf(-EPROTO, err, errlen, "packet of %zu bytes is shorter than the header", len);
		goto err_close;
	}
	if (hdr.size != len) {
		ret = dlog_errf(-EPROTO, err, errlen, "header size %u but packet has %zu bytes", hdr.size, len);
		goto err_close;
	}
	if ((hdr.flags & DMASVC_MSG_REPLY) || hdr.error) {
		ret = dlog_errf(-EPROTO, err, errlen, "request with reply flag or error set");
		goto err_close;
	}
	req->fatal = false;

	if (hdr.flags) {
		ret = dlog_errf(-EINVAL, err, errlen, "unknown header flags 0x%x", hdr.flags);
		goto err_close;
	}
	if (hdr.cmd == 0 || hdr.cmd >= DMASVC_CMD_MAX || !cmds[hdr.cmd].name) {
		ret = dlog_errf(-EOPNOTSUPP, err, errlen, "unknown command %u", hdr.cmd);
		goto err_close;
	}
	d = &cmds[hdr.cmd];
	body_len = len - sizeof(hdr);
	if (body_len < (d->min ? d->min : d->body)) {
		ret = dlog_errf(-EINVAL, err, errlen, "%s body of %zu bytes, needs %zu", d->name, body_len,
				d->min ? d->min : d->body);
		goto err_close;
	}
	if (body_len > d->body && !all_zero(p + sizeof(hdr) + d->body, body_len - d->body)) {
		ret = dlog_errf(-E2BIG, err, errlen, "%s body has %zu unknown non-zero trailing bytes",
			   d->name, body_len - d->body);
		goto err_close;
	}
	if (nfds > CTL_MAX_FDS || nfds != (d->takes_fd ? 1u : 0u)) {
		ret = dlog_errf(-EBADF, err, errlen, "%s takes %d fds, got %u", d->name, d->takes_fd ? 1 : 0,
			   nfds);
		goto err_close;
	}
	if (d->takes_fd && fds[0] < 0) {
		ret = dlog_errf(-EBADF, err, errlen, "%s: invalid fd", d->name);
		goto err_close;
	}
	memset(&req->u, 0, sizeof(req->u));
	memcpy(&req->u, p + sizeof(hdr), body_len < d->body ? body_len : d->body);
	ret = check_body(req, err, errlen);
	if (ret)
		goto err_close;
	if (d->takes_fd) {
		req->fd = fds[0];
		fds[0] = -1;
	}
	return 0;

err_close:
	close_fds(fds, nfds);
	return ret;
}

ssize_t ctl_encode_reply(void *buf, size_t cap, uint16_t cmd, uint32_t msg_id, int res,
			 const void *body, size_t body_len, const char *text)
{
	struct dmasvc_msg_hdr hdr;
	size_t tlen = text ? strnlen(text, DMASVC_TEXT_MAX - 1) : 0;
	size_t total;

	if (res)
		body_len = 0;
	total = sizeof(hdr) + body_len + tlen + 1;
	if (total > cap || total > DMASVC_MSG_MAX)
		return -E2BIG;
	hdr = (struct dmasvc_msg_hdr){
		.size = (uint32_t)total,
		.cmd = cmd,
		.flags = DMASVC_MSG_REPLY,
		.msg_id = msg_id,
		.error = (uint32_t)(res < 0 ? -res : 0),
	};
	memcpy(buf, &hdr, sizeof(hdr));
	if (body_len)
		memcpy((char *)buf + sizeof(hdr), body, body_len);
	if (tlen)
		memcpy((char *)buf + sizeof(hdr) + body_len, text, tlen);
	((char *)buf)[sizeof(hdr) + body_len + tlen] = '\0';
	return (ssize_t)total;
}
