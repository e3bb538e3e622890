/* SPDX-License-Identifier: MIT */
/*
 * wire.c - the client half of the control protocol transport (proto.h):
 * connect, send one request with its fds, receive and validate its reply.
 *
 * The service is trusted more than clients are, but a reply is still
 * checked before use: the REPLY flag, cmd and msg_id echo, size equal to the
 * packet length, errno in range, fds only where expected (extra fds are
 * closed), truncation flags.  Replies to requests that timed out earlier
 * (older msg_id) are dropped.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/proto_fd.h"

#include "libdmasvc_priv.h"

#define CL_MAX_ERRNO 4095

int64_t cl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int cl_socket_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/*
	 * Non-blocking, for good: a service that is alive but not accepting
	 * (stopped, wedged) leaves connections in its listen backlog; once
	 * the backlog is full a blocking connect() would wait forever (a QEMU
	 * main loop holding its big lock with it).  A Unix socket never
	 * returns EINPROGRESS: connect() succeeds at once or fails with
	 * EAGAIN when the backlog is full.  Sends use the same fd and fail
	 * with -ETIMEDOUT instead of blocking (send_request); receives poll.
	 */
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int cl_socket_adopt(int fd)
{
	struct sockaddr_un peer;
	socklen_t len = sizeof(int);
	int domain = 0, type = 0, fl, err = 0;

	if (fd < 0)
		return -EBADF;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		err = errno == EBADF ? -EBADF : -ENOTSOCK;
	len = sizeof(int);
	if (!err && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		err = -errno;
	if (!err && (domain != AF_UNIX || type != SOCK_SEQPACKET))
		err = -EPROTOTYPE;
	len = sizeof(peer);
	if (!err && getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
		err = -errno;
	fl = err ? 0 : fcntl(fd, F_GETFL);
	if (!err && (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
		     fcntl(fd, F_SETFD, FD_CLOEXEC) < 0))
		err = -errno;
	if (err) {
		if (err != -EBADF)
			close(fd);
		return err;
	}
	return fd;
}

void cl_reply_close_fds(struct cl_reply *r)
{
	for (unsigned i = 0; i < r->nfds; i++)
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	r->nfds = 0;
}

static int send_request(struct dmasvc_client *c, uint16_t cmd, uint32_t msg_id,
			const void *body, uint32_t len, const int *fds, unsigned nfds)
{
	struct dmasvc_msg_hdr hdr = {
		.size = (uint32_t)sizeof(hdr) + len,
		.cmd = cmd,
		.msg_id = msg_id,
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)body, .iov_len = len },
	};
	ssize_t n;

	if (len > DMASVC_MSG_MAX - sizeof(hdr) || nfds > CL_MAX_REPLY_FDS)
		return -EINVAL;
	n = proto_send(c->sock, iov, len ? 2 : 1, fds, nfds, 0);
	if (n == -EAGAIN || n == -EWOULDBLOCK)
		return -ETIMEDOUT; /* the service has not read its socket for a long time */
	if (n < 0)
		return n == -EPIPE || n == -ECONNRESET ? -ENOTCONN : (int)n;
	return n == (ssize_t)hdr.size ? 0 : -EPROTO;
}

/* Receive one packet into @r (fds included).  0, -ETIMEDOUT, -ENOTCONN, -EPROTO. */
static int recv_packet(struct dmasvc_client *c, struct cl_reply *r, int64_t deadline)
{
	struct {
		struct dmasvc_msg_hdr hdr;
		uint8_t body[DMASVC_MSG_MAX];
	} pkt;
	struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
	unsigned int nfds;
	int msg_flags;
	ssize_t n;

	r->nfds = 0;
	for (;;) {
		int wait = -1, pr;

		if (deadline >= 0) {
			int64_t left = deadline - cl_now_ms();

			wait = left > 0 ? (int)left : 0;
		}
		pr = poll(&pfd, 1, wait);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return -ETIMEDOUT;
		break;
	}
	n = proto_recv(c->sock, &pkt, sizeof(pkt), r->fds, CL_MAX_REPLY_FDS, &nfds, &msg_flags,
		       MSG_DONTWAIT);
	if (n < 0)
		return n == -ECONNRESET ? -ENOTCONN : (int)n;
	r->nfds = nfds < CL_MAX_REPLY_FDS ? nfds : CL_MAX_REPLY_FDS;
	if (n == 0) {
		cl_reply_close_fds(r);
		return -ENOTCONN;
	}
	if (nfds > CL_MAX_REPLY_FDS || (msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    (size_t)n < sizeof(pkt.hdr) || pkt.hdr.size != (uint32_t)n) {
		cl_reply_close_fds(r);
		return -EPROTO;
	}
	r->hdr = pkt.hdr;
	r->body_len = (uint32_t)n - (uint32_t)sizeof(pkt.hdr);
	memcpy(r->buf, pkt.body, r->body_len);
	return 0;
}

/*
 * Copy the reply text (NUL-terminated or not) at body offset @off into
 * service_error and last_error.
 */
static void take_text(struct dmasvc_client *c, const struct cl_reply *r, uint32_t off)
{
	char *t = c->service_error;
	size_t len = 0;

	if (off < r->body_len) {
		len = r->body_len - off;
		if (len > sizeof(c->service_error) - 1)
			len = sizeof(c->service_error) - 1;
		memcpy(t, r->buf + off, len);
	}
	t[strnlen(t, len)] = '\0';
	memcpy(c->last_error, t, strlen(t) + 1);
}

int cl_local_error(struct dmasvc_client *c, const char *what, int err)
{
	pthread_mutex_lock(&c->ctl_lock);
	snprintf(c->last_error, sizeof(c->last_error), "%s: %s", what, strerror(-err));
	c->service_error[0] = '\0';
	pthread_mutex_unlock(&c->ctl_lock);
	return err;
}

void cl_event_error(struct dmasvc_client *c, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&c->ctl_lock);
	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&c->ctl_lock);
}

int cl_call(struct dmasvc_client *c, uint16_t cmd, const void *body, uint32_t len,
	    const int *fds, unsigned nfds, struct cl_reply *r, uint32_t reply_struct)
{
	return cl_call_timed(c, c->opts.timeout_ms, cmd, body, len, fds, nfds, r, reply_struct);
}

int cl_call_timed(struct dmasvc_client *c, int timeout_ms, uint16_t cmd, const void *body,
		  uint32_t len, const int *fds, unsigned nfds, struct cl_reply *r,
		  uint32_t reply_struct)
{
	int64_t deadline = timeout_ms < 0 ? -1 : cl_now_ms() + timeout_ms;
	uint32_t id;
	int err;

	r->nfds = 0;
	c->service_error[0] = '\0';
	if (c->sock < 0) {
		err = -ENOTCONN;
		goto err_transport;
	}
	id = c->next_msg_id++;
	err = send_request(c, cmd, id, body, len, fds, nfds);
	if (err)
		goto err_transport;
	for (;;) {
		err = recv_packet(c, r, deadline);
		if (err)
			goto err_transport;
		/* A late reply to a request that timed out before: drop it. */
		if ((int32_t)(r->hdr.msg_id - id) < 0) {
			cl_reply_close_fds(r);
			continue;
		}
		break;
	}
	if (r->hdr.msg_id != id || r->hdr.cmd != cmd || !(r->hdr.flags & DMASVC_MSG_REPLY) ||
	    r->hdr.error > CL_MAX_ERRNO) {
		cl_reply_close_fds(r);
		err = -EPROTO;
		goto err_transport;
	}
	if (r->hdr.error) {
		cl_reply_close_fds(r);
		take_text(c, r, 0);
		return 0;
	}
	if (r->body_len < reply_struct) {
		cl_reply_close_fds(r);
		err = -EPROTO;
		goto err_transport;
	}
	return 0;

err_transport:
	snprintf(c->last_error, sizeof(c->last_error), "control socket: %s", strerror(-err));
	return err;
}

int cl_call_simple(struct dmasvc_client *c, uint16_t cmd, const void *body, uint32_t len,
		   const int *fds, unsigned nfds, void *out, uint32_t out_len)
{
	return cl_call_simple_timed(c, c->opts.timeout_ms, cmd, body, len, fds, nfds, out, out_len);
}

int cl_call_simple_timed(struct dmasvc_client *c, int timeout_ms, uint16_t cmd, const void *body,
			 uint32_t len, const int *fds, unsigned nfds, void *out, uint32_t out_len)
{
	struct cl_reply r;
	int err = cl_call_timed(c, timeout_ms, cmd, body, len, fds, nfds, &r, out_len);

	if (err)
		return err;
	cl_reply_close_fds(&r);
	if (r.hdr.error)
		return -(int)r.hdr.error;
	if (out_len)
		memcpy(out, r.buf, out_len);
	return 0;
}
