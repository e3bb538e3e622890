/* SPDX-License-Identifier: MIT */
/*
 * fuzz_session_ops.c - libFuzzer target: a hostile client's sequence of
 * control requests, each decoded (ctl_decode) and carried out
 * (dispatch_request) on one session of the software model, as the event
 * loop does for each packet; the session is then torn down.  The session's
 * socket is one end of a socketpair: a request that became a job
 * (REGION_REMOVE, BYE, DEVICE_ATTACH) is answered by the job's finish on
 * it, as the loop's is; the harness reads that reply from the other end.
 *
 * Input: a sequence of requests, each
 *   byte     command (low 4 bits; 0 and 11..15 are unknown commands),
 *            bit 4: steer the ids in the body to live objects,
 *            bits 5..7: which fd to attach (0: none, 1: sealed memfd,
 *            2: unsealed memfd, 3: read-only sealed memfd, 4: a pipe,
 *            5: /dev/null, 6: two sealed memfds, 7: a sealed 64 KiB memfd)
 *   byte     body length (0..63)
 *   bytes    the body (after steering, see steer_body)
 * The first request is always a valid HELLO unless byte 0 of the input
 * is 0xff (then the session must refuse everything before HELLO).
 *
 * Oracles:
 *   - every request gets exactly one well-formed reply (size, REPLY flag,
 *     cmd and msg_id echoed, error 0 or a known errno, text NUL-terminated);
 *   - a request the reply reports as failed leaves the object counts as
 *     they were; the counts never exceed the caps (the session's own:
 *     regions, registered bytes, in-flight entries, set small by
 *     fuzz_session.c so sequences reach them), and a refusal by one of
 *     those caps names it and the numbers;
 *   - after the session is destroyed, the process has exactly the fds it
 *     had before: every received fd, ring fd and memory fd is released.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dispatch_priv.h"
#include "reply_priv.h"
#include "ring_service_priv.h"
#include "fuzz_session.h"

#define KiB (1ull << 10)
#define MAX_IDS 16
#define FD_SCAN 1024 /* > the fds one session can hold (256 memories + 64 rings x 3) */

/* Live ids the harness learned from successful replies. */
struct ids {
	uint32_t mem[MAX_IDS], region[MAX_IDS];
	unsigned int nmem, nregion;
};

/* The fds a request may carry (made once; each use sends a dup). */
static int proto_fd[8];

static int make_memfd(uint64_t size, bool seal, bool rdonly)
{
	int fd = memfd_create("fuzz-ops", MFD_CLOEXEC | MFD_ALLOW_SEALING), ro;
	char path[64];

	FZ_CHECK(fd >= 0 && ftruncate(fd, (off_t)size) == 0, "memfd");
	if (seal)
		FZ_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0, "seal");
	if (!rdonly)
		return fd;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	FZ_CHECK(ro >= 0, "read-only reopen");
	close(fd);
	return ro;
}

static void make_proto_fds(void)
{
	int p[2];

	if (proto_fd[1])
		return;
	proto_fd[1] = make_memfd(1024 * KiB, true, false);
	proto_fd[2] = make_memfd(1024 * KiB, false, false);
	proto_fd[3] = make_memfd(1024 * KiB, true, true);
	FZ_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
	proto_fd[4] = p[0]; /* p[1] stays open for the whole run */
	proto_fd[5] = open("/dev/null", O_RDWR | O_CLOEXEC);
	proto_fd[7] = make_memfd(64 * KiB, true, false);
}

/* Steer the id fields of @cmd's body to live objects (or 1 in 8 left raw). */
static void steer_body(uint16_t cmd, unsigned char *b, size_t len, const struct ids *ids)
{
	uint32_t raw;

	if (cmd == DMASVC_CMD_MEMORY_ADD && len >= sizeof(struct dmasvc_memory_add)) {
		struct dmasvc_memory_add m;

		memcpy(&m, b, sizeof(m));
		m.size = (1 + m.size % 256) * 4096;
		m.flags &= DMASVC_MEMORY_READONLY;
		m.__reserved = 0;
		memcpy(b, &m, sizeof(m));
		return;
	}
	if (len < 4)
		return;
	memcpy(&raw, b, 4);
	if ((raw & 7) == 7)
		return;
	switch (cmd) {
	case DMASVC_CMD_MEMORY_REMOVE:
	case DMASVC_CMD_REGION_ADD: /* mem_id first */
		if (ids->nmem)
			raw = ids->mem[(raw >> 3) % ids->nmem];
		break;
	case DMASVC_CMD_REGION_REMOVE:
		if (ids->nregion)
			raw = ids->region[(raw >> 3) % ids->nregion];
		break;
	default:
		return;
	}
	memcpy(b, &raw, 4);
	if (cmd == DMASVC_CMD_REGION_ADD && len >= 40) {
		/* granule 4 KiB << (g % 8), geometry in granules, small */
		struct dmasvc_region_add r;

		memcpy(&r, b, sizeof(r));
		r.granule = 4096ull << (r.granule % 8);
		r.mem_offset = (r.mem_offset % 64) * r.granule;
		r.size = (1 + r.size % 64) * r.granule;
		r.iova = (r.iova % 4096) * r.granule;
		r.flags &= 1;
		memcpy(b, &r, sizeof(r));
	}
}

static void count_objects(const struct dsvc_session *s, unsigned int n[3])
{
	n[0] = s->nr_mems;
	n[1] = s->nr_regions;
	n[2] = s->nr_rings;
}

/* Check one reply packet against the request it answers. */
static int check_reply(const unsigned char *out, ssize_t rlen, uint16_t cmd, uint32_t msg_id)
{
	struct dmasvc_msg_hdr h;

	FZ_CHECK(rlen >= (ssize_t)sizeof(h) + 1 && rlen <= DMASVC_MSG_MAX, "reply length %zd", rlen);
	memcpy(&h, out, sizeof(h));
	FZ_CHECK(h.size == (uint32_t)rlen && (h.flags & DMASVC_MSG_REPLY) && h.cmd == cmd &&
		 h.msg_id == msg_id, "reply header size %u flags %u cmd %u id %u", h.size, h.flags,
		 h.cmd, h.msg_id);
	FZ_CHECK(out[rlen - 1] == '\0', "reply text not terminated");
	FZ_CHECK(h.error < 4096, "reply error %u", h.error);
	return -(int)h.error;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char out[DMASVC_MSG_MAX];
	static bool open_before[FD_SCAN];
	struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	const uint8_t *p = data, *end = data + size;
	struct dsvc *d = fz_service();
	struct dsvc_session *s;
	struct ids ids = { .nmem = 0 };
	uint32_t msg_id = 0;
	int fd_base, sp[2];
	bool hello = size == 0 || data[0] != 0xff;

	make_proto_fds();
	fd_base = fcntl(0, F_DUPFD_CLOEXEC, 0); /* the lowest free fd */
	FZ_CHECK(fd_base >= 0, "dup");
	close(fd_base);
	for (int i = 0; i < FD_SCAN; i++) /* inherited fds may sit above it */
		open_before[i] = fcntl(fd_base + i, F_GETFD) >= 0;
	FZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0, "socketpair");
	FZ_CHECK(session_create(d, sp[0], &cred, false, &s) == 0, "session_create");
	while (p < end || hello) {
		unsigned char pkt[DMASVC_MSG_MAX];
		struct dmasvc_msg_hdr h = { .msg_id = ++msg_id };
		struct ctl_request req;
		struct dispatch_out dout;
		char err[DMASVC_TEXT_MAX];
		unsigned int before[3], after[3], kind, nfds = 0;
		int fds[CTL_MAX_FDS], ret;
		size_t blen;
		ssize_t rlen;

		if (hello) {
			struct dmasvc_hello b = { .major = DMASVC_PROTO_MAJOR };

			h.cmd = DMASVC_CMD_HELLO;
			memcpy(pkt + sizeof(h), &b, sizeof(b));
			blen = sizeof(b);
			kind = 0;
			hello = false;
		} else {
			uint8_t op = *p++;

			h.cmd = op & 15;
			kind = op >> 5;
			blen = p < end ? *p++ % 64 : 0;
			if (blen > (size_t)(end - p))
				blen = (size_t)(end - p);
			memcpy(pkt + sizeof(h), p, blen);
			p += blen;
			if (op & 16)
				steer_body(h.cmd, pkt + sizeof(h), blen, &ids);
		}
		h.size = (uint32_t)(sizeof(h) + blen);
		memcpy(pkt, &h, sizeof(h));
		if (kind) {
			fds[nfds++] = fcntl(proto_fd[kind == 6 ? 1 : kind], F_DUPFD_CLOEXEC, 0);
			if (kind == 6)
				fds[nfds++] = fcntl(proto_fd[1], F_DUPFD_CLOEXEC, 0);
		}
		count_objects(s, before);
		ret = ctl_decode(pkt, h.size, 0, fds, nfds, &req, err, sizeof(err));
		if (ret) {
			rlen = reply_error(&req, ret, err, out);
			FZ_CHECK(check_reply(out, rlen, h.cmd, h.msg_id) == ret, "decode error reply");
			FZ_CHECK(!req.fatal, "a well-framed packet is never fatal");
			continue;
		}
		rlen = dispatch_request(d, s, &req, out, &dout);
		if (rlen == 0) { /* a job: its finish sends the reply */
			FZ_CHECK(dout.deferred, "no reply and not deferred");
			ringsvc_quiesce(d, s);
			rlen = recv(sp[1], out, DMASVC_MSG_MAX, MSG_DONTWAIT);
			dout.disconnect = s->close_why != NULL;
		}
		ret = check_reply(out, rlen, h.cmd, h.msg_id);
		FZ_CHECK(req.fd == -1, "dispatch_request did not consume the request's fd");
		count_objects(s, after);
		FZ_CHECK(after[0] <= SESSION_MAX_MEMORIES && after[1] <= s->cap[OPT_CAP_REGIONS] &&
			 after[2] <= DMASVC_MAX_RINGS && s->registered_bytes <= s->cap[OPT_CAP_REGISTERED] &&
			 s->inflight <= s->cap[OPT_CAP_INFLIGHT], "caps");
		if ((h.cmd == DMASVC_CMD_MEMORY_ADD && ret == -EDQUOT) ||
		    (h.cmd == DMASVC_CMD_REGION_ADD && (ret == -EMFILE || ret == -ENOSPC)) ||
		    (h.cmd == DMASVC_CMD_RING_SETUP && ret == -ENOSPC))
			FZ_CHECK(strstr((const char *)out + sizeof(struct dmasvc_msg_hdr), "cap max-") &&
				 strstr((const char *)out + sizeof(struct dmasvc_msg_hdr), ", in use "),
				 "cmd %u: a refusal by a cap names it and the numbers", h.cmd);
		if (ret)
			FZ_CHECK(!memcmp(before, after, sizeof(before)) || h.cmd == DMASVC_CMD_BYE,
				 "failed cmd %u changed the object counts", h.cmd);
		if (dout.nfds) {
			FZ_CHECK(!ret && h.cmd == DMASVC_CMD_RING_SETUP && dout.nfds == 3 &&
				 dout.close_fds_after, "reply fds");
			close(dout.fds[0]); /* sent, then closed by the loop; the others are the ring's */
		}
		if (!ret && h.cmd == DMASVC_CMD_MEMORY_ADD && ids.nmem < MAX_IDS)
			memcpy(&ids.mem[ids.nmem++], out + sizeof(h), 4);
		if (!ret && h.cmd == DMASVC_CMD_REGION_ADD && ids.nregion < MAX_IDS)
			memcpy(&ids.region[ids.nregion++], out + sizeof(h), 4);
		if (dout.disconnect)
			break;
	}
	ringsvc_session_release(d, s);
	session_destroy(d, s); /* closes sp[0] */
	close(sp[1]);
	for (int i = 0; i < FD_SCAN; i++)
		FZ_CHECK((fcntl(fd_base + i, F_GETFD) >= 0) == open_before[i], "fd %d leaked or closed",
			 fd_base + i);
	return 0;
}
