/* SPDX-License-Identifier: MIT */
/*
 * fuzz_control.c - libFuzzer target: one control packet as the daemon's
 * event loop sees it after recvmsg(): the SCM_RIGHTS ancillary data
 * (proto_collect_fds) and the packet bytes (ctl_decode), then the reply
 * encoder on the decoder's error text.
 *
 * Input layout (see fuzz_control_gen below):
 *   byte 0     msg_flags selector (bit 0: MSG_TRUNC, bit 1: MSG_CTRUNC)
 *   byte 1     bit 0..1: header fix-ups (bit 0: hdr.size = packet length,
 *              bit 1: flags/error = 0) so the fuzzer reaches the bodies;
 *              bits 2..4: number of control messages (0..7)
 *   per cmsg   3 bytes: level selector, type selector, fd count (0..15;
 *              bit 7: SCM_RIGHTS entries are bogus negative numbers)
 *   rest       the packet (at most DMASVC_MSG_MAX bytes)
 *
 * The control buffer is shaped as the kernel writes it (each cmsg_len
 * exact, several messages of any level/type): it comes from the kernel,
 * not from the client, so lying lengths are not a client capability.
 *
 * Fds are fake: control.c is compiled into this target with close renamed
 * to fuzz_fake_close (meson.build), so the decoder can "close" fds freely.
 * Delivered fds are FAKE_FD_BASE + k.  Oracle: every delivered fd is
 * closed exactly once, or (success of a command that takes an fd) is
 * req.fd and not closed; nothing else is ever closed; a decoded request
 * re-passes its byte-level rules checked here independently.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dmasvc/proto_fd.h"

#include "control_priv.h"
#include "fuzz_check.h"

#define FAKE_FD_BASE 0x40000000
#define MAX_DELIVERED 128

/* Per-input bookkeeping of the fake fd table (reset for every input). */
struct fake_fds {
	unsigned int delivered;            /* fds placed in SCM_RIGHTS payloads */
	unsigned int closed[MAX_DELIVERED];
	unsigned int foreign;              /* closes of fds never delivered */
};

static struct fake_fds fk;

int fuzz_fake_close(int fd);
int fuzz_fake_close(int fd)
{
	unsigned int k = (unsigned int)fd - FAKE_FD_BASE;

	if (fd < FAKE_FD_BASE || k >= fk.delivered) {
		fk.foreign++;
		return -1;
	}
	fk.closed[k]++;
	return 0;
}

/* Independent re-check of what a successfully decoded request promises. */
static void check_decoded(const struct ctl_request *req, const unsigned char *pkt, size_t len)
{
	struct dmasvc_msg_hdr hdr;

	FZ_CHECK(req->hdr_ok && !req->fatal, "success needs a header");
	memcpy(&hdr, pkt, sizeof(hdr));
	FZ_CHECK(hdr.size == len && hdr.flags == 0 && hdr.error == 0, "framing");
	FZ_CHECK(hdr.cmd >= DMASVC_CMD_HELLO && hdr.cmd < DMASVC_CMD_MAX, "cmd %u", hdr.cmd);
	switch (req->cmd) {
	case DMASVC_CMD_REGION_ADD: {
		const struct dmasvc_region_add *r = &req->u.region_add;
		uint64_t end;

		FZ_CHECK(r->granule >= 4096 && !(r->granule & (r->granule - 1)), "granule");
		FZ_CHECK(r->size && !((r->iova | r->size | r->mem_offset) & (r->granule - 1)), "align");
		FZ_CHECK(!__builtin_add_overflow(r->iova, r->size - 1, &end), "iova overflow");
		FZ_CHECK(!__builtin_add_overflow(r->mem_offset, r->size, &end), "offset overflow");
		FZ_CHECK(!(r->flags & ~(uint32_t)DMASVC_REGION_READONLY), "flags");
		break;
	}
	case DMASVC_CMD_RING_SETUP: {
		const struct dmasvc_ring_setup *r = &req->u.ring_setup;

		FZ_CHECK(r->sq_entries >= CTL_MIN_ENTRIES && r->sq_entries <= CTL_MAX_SQ_ENTRIES &&
		      !(r->sq_entries & (r->sq_entries - 1)), "sq_entries %u", r->sq_entries);
		FZ_CHECK(r->cq_entries >= r->sq_entries && r->cq_entries <= CTL_MAX_CQ_ENTRIES &&
		      !(r->cq_entries & (r->cq_entries - 1)), "cq_entries %u", r->cq_entries);
		break;
	}
	case DMASVC_CMD_MEMORY_ADD:
		FZ_CHECK(req->u.memory_add.size && !req->u.memory_add.__reserved, "memory_add");
		break;
	case DMASVC_CMD_QUERY:
		FZ_CHECK(req->u.query.what >= 1 && req->u.query.what < DMASVC_QUERY_MAX, "query what");
		break;
	default:
		break;
	}
}

/* Build the control buffer from the input; returns bytes consumed. */
static size_t fuzz_control_gen(const uint8_t *data, size_t size, unsigned int ncmsg,
			       unsigned char *cbuf, size_t cap, size_t *controllen)
{
	size_t used = 0, off = 0;

	for (unsigned int i = 0; i < ncmsg && used + 3 <= size; i++, used += 3) {
		const uint8_t *d = data + used;
		unsigned int nfd = d[2] & 15;
		size_t len = CMSG_LEN(nfd * sizeof(int)), space = CMSG_SPACE(nfd * sizeof(int));
		struct cmsghdr c;

		if (off + space > cap)
			break;
		memset(&c, 0, sizeof(c));
		c.cmsg_level = (d[0] & 3) ? SOL_SOCKET : (int)d[0] - 1;
		c.cmsg_type = (d[1] & 3) == 0 ? SCM_CREDENTIALS : (d[1] & 3) == 3 ? (int)d[1] : SCM_RIGHTS;
		c.cmsg_len = len;
		memcpy(cbuf + off, &c, sizeof(c));
		for (unsigned int k = 0; k < nfd; k++) {
			int fd = -1;

			if (c.cmsg_level == SOL_SOCKET && c.cmsg_type == SCM_RIGHTS && !(d[2] & 0x80) &&
			    fk.delivered < MAX_DELIVERED)
				fd = FAKE_FD_BASE + (int)fk.delivered++;
			else if (c.cmsg_level == SOL_SOCKET && c.cmsg_type == SCM_RIGHTS)
				fd = -1 - (int)k; /* bogus negative entries */
			else
				fd = 0x7eadbeef; /* not an fd: must never be closed */
			memcpy(CMSG_DATA((struct cmsghdr *)(cbuf + off)) + k * sizeof(int), &fd, sizeof(fd));
		}
		off += space;
	}
	*controllen = off;
	return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* cmsg payload as the kernel would give it, aligned like evloop's buffer. */
	union {
		struct cmsghdr align;
		unsigned char b[CMSG_SPACE(sizeof(int) * 32) * 2];
	} cbuf;
	unsigned char pkt[DMASVC_MSG_MAX];
	unsigned char out[DMASVC_MSG_MAX];
	struct iovec iov;
	struct msghdr mh;
	struct ctl_request req;
	int fds[CTL_MAX_FDS];
	char err[DMASVC_TEXT_MAX];
	unsigned int nfds, ncmsg;
	size_t len, used, controllen;
	int flags = 0, ret;
	ssize_t rlen;

	if (size < 2)
		return 0;
	memset(&fk, 0, sizeof(fk));
	memset(&cbuf, 0, sizeof(cbuf));
	if (data[0] & 1)
		flags |= MSG_TRUNC;
	if (data[0] & 2)
		flags |= MSG_CTRUNC;
	ncmsg = (data[1] >> 2) & 7;
	used = 2 + fuzz_control_gen(data + 2, size - 2, ncmsg, cbuf.b, sizeof(cbuf.b), &controllen);
	len = size - used;
	if (len > sizeof(pkt))
		len = sizeof(pkt);
	memcpy(pkt, data + used, len);
	if (len >= sizeof(struct dmasvc_msg_hdr)) {
		struct dmasvc_msg_hdr hdr;

		memcpy(&hdr, pkt, sizeof(hdr));
		if (data[1] & 1)
			hdr.size = (uint32_t)len;
		if (data[1] & 2)
			hdr.flags = 0, hdr.error = 0;
		memcpy(pkt, &hdr, sizeof(hdr));
	}

	iov = (struct iovec){ .iov_base = pkt, .iov_len = sizeof(pkt) };
	mh = (struct msghdr){ .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = controllen ? cbuf.b : NULL, .msg_controllen = controllen,
			      .msg_flags = flags };
	memset(fds, 0xff, sizeof(fds));
	nfds = proto_collect_fds(&mh, fds, CTL_MAX_FDS);
	FZ_CHECK(fk.foreign == 0, "proto_collect_fds closed something it was not given");
	for (unsigned int i = 0; i < nfds && i < CTL_MAX_FDS; i++)
		FZ_CHECK(fds[i] < FAKE_FD_BASE || fk.closed[fds[i] - FAKE_FD_BASE] == 0,
		      "fd %d both returned and closed", fds[i]);

	ret = ctl_decode(pkt, len, flags, fds, nfds, &req, err, sizeof(err));
	FZ_CHECK(fk.foreign == 0, "the decoder closed an fd it was not given");
	FZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL, "error text not terminated");
	for (unsigned int k = 0; k < fk.delivered; k++) {
		bool kept = ret == 0 && req.fd == FAKE_FD_BASE + (int)k;

		FZ_CHECK(fk.closed[k] == (kept ? 0u : 1u), "fd %u closed %u times (kept %d, ret %d)", k,
		      fk.closed[k], kept, ret);
	}
	if (ret == 0) {
		check_decoded(&req, pkt, len);
	} else {
		FZ_CHECK(req.fd == -1, "failed decode hands out fd %d", req.fd);
		FZ_CHECK(ret == -EPROTO || ret == -EINVAL || ret == -E2BIG || ret == -EBADF ||
		      ret == -EOPNOTSUPP || ret == -ERANGE, "unexpected error %d", ret);
		FZ_CHECK(!req.fatal || ret == -EPROTO, "fatal error %d is not EPROTO", ret);
		FZ_CHECK(err[0] != '\0', "error %d without a reason", ret);
	}

	/* The reply the daemon would send: well-formed whatever the text. */
	rlen = ctl_encode_reply(out, sizeof(out), req.cmd, req.msg_id, ret, NULL, 0, err);
	FZ_CHECK(rlen >= (ssize_t)sizeof(struct dmasvc_msg_hdr) + 1 && rlen <= DMASVC_MSG_MAX,
	      "reply length %zd", rlen);
	FZ_CHECK(out[rlen - 1] == '\0', "reply text not terminated");
	if (ret == 0 && req.fd >= 0)
		fuzz_fake_close(req.fd);
	return 0;
}
