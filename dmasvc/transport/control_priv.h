/* SPDX-License-Identifier: MIT */
/*
 * control_priv.h - decode and validate one control packet; encode replies.
 * Do not include from outside dmasvc/ (tests and fuzzers may).
 *
 * Pure functions of bytes and fds: no session state, no I/O except close()
 * of fds they reject, so the fuzzer and unit tests call exactly what the
 * daemon calls.
 *
 * Two kinds of failure (see docs/protocol.md "Errors"):
 *   - a *framing* error (packet shorter than the header, hdr.size not equal
 *     to the packet length, MSG_TRUNC/MSG_CTRUNC, the reply bit set, a
 *     non-zero error field in a request): the service replies -EPROTO (with
 *     the msg_id when one could be read) and disconnects;
 *   - a *request* error (bad body size, flags, reserved bytes, fds): the
 *     service replies -errno and the session goes on.
 * Checks that need session state (ids, memory sizes, caps, budget) are the
 * session's job; checks that need only the bytes are done here.
 */
#ifndef DMASVC_CONTROL_PRIV_H
#define DMASVC_CONTROL_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "dmasvc/proto.h"

#define CTL_MAX_FDS 8            /* fds collected per packet (proto_recv); more are closed */
#define CTL_MIN_GRANULE 4096ull
#define CTL_MAX_SQ_ENTRIES 4096u /* RING_SETUP bounds announced in HELLO */
#define CTL_MAX_CQ_ENTRIES 8192u
#define CTL_MIN_ENTRIES 2u

/* A decoded request.  @fd is owned by the request (close it or keep it). */
struct ctl_request {
	uint32_t msg_id;  /* valid when hdr_ok */
	uint16_t cmd;     /* valid when hdr_ok */
	bool hdr_ok;      /* a header could be read (a reply can be addressed) */
	bool fatal;       /* framing error: reply, then disconnect */
	int fd;           /* the command's fd (MEMORY_ADD, DEVICE_ATTACH) or -1 */
	union {
		struct dmasvc_hello hello;
		struct dmasvc_memory_add memory_add;
		struct dmasvc_memory_remove memory_remove;
		struct dmasvc_region_add region_add;
		struct dmasvc_region_remove region_remove;
		struct dmasvc_ring_setup ring_setup;
		struct dmasvc_device_attach device_attach;
		struct dmasvc_device_detach device_detach;
		struct dmasvc_query query;
	} u;
};

/*
 * ctl_decode: decode one packet of @len bytes (@msg_flags from recvmsg)
 * carrying @nfds fds (@fds holds min(nfds, CTL_MAX_FDS) open ones; the
 * decoder owns all of them from now on).  Fills *@req.
 * Returns 0 (req->fd holds the command's fd or -1; every other fd closed),
 * or -errno with a reason in @err (every fd closed; req->fatal says whether
 * to disconnect after the reply).
 */
int ctl_decode(const void *buf, size_t len, int msg_flags, int *fds, unsigned int nfds,
	       struct ctl_request *req, char *err, size_t errlen);

/*
 * ctl_encode_reply: build a reply to (@cmd, @msg_id) in @buf: header with
 * error = -@res (0 on success), @body (only when @res == 0) and @text
 * (truncated to DMASVC_TEXT_MAX - 1 bytes, always NUL-terminated).
 * Returns the packet length, or -E2BIG if @cap is too small.
 */
ssize_t ctl_encode_reply(void *buf, size_t cap, uint16_t cmd, uint32_t msg_id, int res,
			 const void *body, size_t body_len, const char *text);

/* ctl_cmd_name: "HELLO", "MEMORY_ADD", ... or "?" */
const char *ctl_cmd_name(uint16_t cmd);

/* ctl_is_pow2: @v is a non-zero power of two. */
static inline bool ctl_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

#endif /* DMASVC_CONTROL_PRIV_H */
