/* SPDX-License-Identifier: MIT */
/*
 * server_priv.h - the listening socket and peer admission.
 * Do not include from outside dmasvc/.
 *
 * Admission: a peer is accepted when its SO_PEERCRED uid is on the
 * allow-list (--allow-uid, repeatable; default: the service's own uid and
 * root).  An accepted peer is an "admin" (may use service-wide queries,
 * DMASVC_QUERY_F_ALL_SESSIONS) when its uid is root or the service's own.
 */
#ifndef DMASVC_SERVER_PRIV_H
#define DMASVC_SERVER_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "options_priv.h"

/*
 * What this instance owns of its socket path: the lock on "PATH.lock" (held
 * while it runs, so a second dmasvc on the same path refuses to start) and
 * the identity of the socket file it bound (it removes only that one).
 */
struct server_claim {
	int lock_fd;               /* -1: nothing claimed */
	dev_t dev;
	ino_t ino;
};

/*
 * server_listen: take the lock next to @o->socket_path, create the
 * SOCK_SEQPACKET socket there with mode @o->socket_mode (a stale socket
 * file, whose owner is gone since the lock was free, is replaced; any other
 * file there is an error) and listen.  Returns the fd (non-blocking,
 * cloexec) and fills *@claim, or -errno with a reason in @err: -EADDRINUSE
 * when another dmasvc holds the path (its pid named).
 */
int server_listen(const struct dsvc_options *o, struct server_claim *claim, char *err,
		  size_t errlen);

/*
 * server_release: remove the socket file if it is still the one @claim
 * bound, then drop the lock.  Idempotent; never fails.
 */
void server_release(const struct dsvc_options *o, struct server_claim *claim);

/*
 * server_peer_allowed: whether @uid may connect under @o (@self is the
 * service's euid).
 */
bool server_peer_allowed(const struct dsvc_options *o, uid_t self, uid_t uid);

/* server_peer_admin: whether @uid may use service-wide queries. */
bool server_peer_admin(uid_t self, uid_t uid);

/*
 * server_accept: accept one connection on @lfd and read its credentials.
 * Returns the new fd (non-blocking, cloexec) or -errno (-EAGAIN: none
 * pending).
 */
int server_accept(int lfd, struct ucred *cred);

#endif /* DMASVC_SERVER_PRIV_H */
