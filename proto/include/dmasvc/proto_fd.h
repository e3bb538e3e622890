/* SPDX-License-Identifier: MIT */
/*
 * proto_fd.h - one packet with its file descriptors over the control
 * socket (SOCK_SEQPACKET, SCM_RIGHTS): the one send and the one receive
 * that the service, libdmasvc, dmasvcctl and the tests use.  Not installed:
 * a part of each side, not of the public API.
 *
 * Fds travel in one SCM_RIGHTS control message per packet (proto.h).  The
 * receiver owns every fd the kernel installed, whatever else is wrong with
 * the packet: proto_recv() hands each one back or closes it, never leaks.
 */
#ifndef DMASVC_PROTO_FD_H
#define DMASVC_PROTO_FD_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Most fds one packet carries on the wire (send) or is read with (receive). */
#define PROTO_MAX_FDS 16

/*
 * proto_send: send the @iovcnt buffers of @iov as one packet, with @nfds
 * (<= PROTO_MAX_FDS) fds from @fds as SCM_RIGHTS.  @flags go to sendmsg()
 * (MSG_NOSIGNAL is always added); EINTR is retried.  The fds stay the
 * caller's.  Returns the bytes sent, or -errno (-EINVAL: too many fds).
 */
ssize_t proto_send(int sock, const struct iovec *iov, int iovcnt, const int *fds,
		   unsigned int nfds, int flags);

/*
 * proto_collect_fds: take every SCM_RIGHTS fd out of @msg's control data
 * into @fds (at most @cap; the ones past @cap are closed at once).  Other
 * control messages (SCM_CREDENTIALS, unknown types) are skipped.  Returns
 * how many fds the packet carried, which may exceed @cap (then only @cap
 * are open in @fds): a receiver treats that as a bad packet.
 */
unsigned int proto_collect_fds(const struct msghdr *msg, int *fds, unsigned int cap);

/*
 * proto_recv: receive one packet into @buf (@len bytes) and its fds into
 * @fds (room for @cap, at most PROTO_MAX_FDS are read; *@nfds is set as by
 * proto_collect_fds()).  @flags go to recvmsg() (MSG_CMSG_CLOEXEC is always
 * added); EINTR is retried.  *@msg_flags gets recvmsg()'s msg_flags
 * (MSG_TRUNC, MSG_CTRUNC: a bad packet).  Returns the bytes received (0:
 * an empty packet or the peer closed), or -errno with no fd left open.
 */
ssize_t proto_recv(int sock, void *buf, size_t len, int *fds, unsigned int cap,
		   unsigned int *nfds, int *msg_flags, int flags);

#endif /* DMASVC_PROTO_FD_H */
