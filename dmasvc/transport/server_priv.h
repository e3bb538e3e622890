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
 * server_listen: create the SOCK_SEQPACKET socket at @o->socket_path with mode
 * @o->socket_mode (a stale socket file is replaced; any other file there is
 * an error) and listen.  Returns the fd (non-blocking, cloexec) or -errno
 * with a reason in @err.
 */
int server_listen(const struct dsvc_options *o, char *err, size_t errlen);

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
