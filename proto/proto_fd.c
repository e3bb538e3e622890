/* SPDX-License-Identifier: MIT */
/*
 * proto_fd.c - one packet with its fds (see proto_fd.h for the contracts).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "dmasvc/proto_fd.h"

/* A control buffer for PROTO_MAX_FDS fds, aligned for struct cmsghdr. */
union proto_cbuf {
	char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
	struct cmsghdr align;
};

ssize_t proto_send(int sock, const struct iovec *iov, int iovcnt, const int *fds,
		   unsigned int nfds, int flags)
{
	union proto_cbuf cb;
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	ssize_t n;

	if (nfds > PROTO_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(&cb, 0, sizeof(cb));
		mh.msg_control = cb.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

unsigned int proto_collect_fds(const struct msghdr *msg, int *fds, unsigned int cap)
{
	unsigned int n = 0;
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
		size_t count;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue; /* SCM_CREDENTIALS and others: nothing to release */
		if (c->cmsg_len < CMSG_LEN(0))
			continue;
		count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int fd;

			/* CMSG_DATA need not be aligned for int: copy. */
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < cap)
				fds[n] = fd;
			else if (fd >= 0)
				close(fd);
			n++;
		}
	}
	return n;
}

ssize_t proto_recv(int sock, void *buf, size_t len, int *fds, unsigned int cap,
		   unsigned int *nfds, int *msg_flags, int flags)
{
	union proto_cbuf cb;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cb.buf, .msg_controllen = sizeof(cb.buf),
	};
	ssize_t n;

	*nfds = 0;
	*msg_flags = 0;
	do
		n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	*nfds = proto_collect_fds(&mh, fds, cap);
	*msg_flags = mh.msg_flags;
	return n;
}
