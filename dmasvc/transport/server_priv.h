/* SPDX-License-Identifier: MIT */
/*
 * server_priv.h - the listening socket and peer admission.
 * Do not include from outside dmasvc/.
 *
 * Admission: a peer is accepted when its SO_PEERCRED uid is on the
 * allow-list (--allow-uid, repeatable) or its SO_PEERCRED gid (the peer's
 * effective gid at connect; supplementary groups are not considered) is
 * (--allow-gid, repeatable); with neither list the default admits the
 * service's own uid, root, and the --socket-group gid.  An accepted peer is
 * an "admin" (may use service-wide queries, DMASVC_QUERY_F_ALL_SESSIONS)
 * when its uid is root or the service's own.
 *
 * Socket activation: when systemd passes the listening socket
 * (LISTEN_FDS, dmasvc.socket), the service adopts it instead of binding;
 * the lock next to the path is taken all the same, so one instance per
 * path still holds, and the socket file (systemd's) is never removed here.
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
	bool activated;            /* the socket came from systemd (sd_listen_fds) */
	bool upgraded;             /* the socket came from this service's upgrade ("listen") */
	dev_t dev;
	ino_t ino;
	/* Passed fds that are a kept session's (keep_priv.h names), for
	 * keep_adopt(); nr_stray: passed fds of no use, closed. */
	int *keep_fds;
	char **keep_names;
	unsigned int nr_keep, nr_stray;
};

/*
 * server_listen: take the lock next to @o->socket_path, then either adopt
 * the socket passed by systemd or an upgrade's exec (LISTEN_FDS: exactly
 * one listening SOCK_SEQPACKET socket bound to that path, whatever its
 * name; *@claim->activated set; the passed keep-set fds, named dmasvc-s*,
 * in @claim->keep_* for keep_adopt(), other fds closed) or create the SOCK_SEQPACKET
 * socket there, owned by @o->run_uid and @o->socket_gid where set, with
 * mode @o->socket_mode (a stale socket file, whose owner is gone since the
 * lock was free, is replaced; any other file there is an error) and
 * listen.  Returns the fd (non-blocking, cloexec) and fills *@claim, or
 * -errno with a reason in @err: -EADDRINUSE when another dmasvc holds the
 * path (its pid named), -EINVAL for an activated socket that does not fit.
 */
int server_listen(const struct dsvc_options *o, struct server_claim *claim, char *err,
		  size_t errlen);

/*
 * server_keep_free: free @claim's keep list (closing its fds when
 * @close_fds: keep_adopt() did not take them).  Idempotent.
 */
void server_keep_free(struct server_claim *claim, bool close_fds);

/*
 * server_release: remove the socket file if it is still the one @claim
 * bound, then drop the lock.  Idempotent; never fails.
 */
void server_release(const struct dsvc_options *o, struct server_claim *claim);

/*
 * server_peer_allowed: whether a peer with @uid and @gid (SO_PEERCRED) may
 * connect under @o (@self is the service's euid).
 */
bool server_peer_allowed(const struct dsvc_options *o, uid_t self, uid_t uid, gid_t gid);

/* server_peer_admin: whether @uid may use service-wide queries. */
bool server_peer_admin(uid_t self, uid_t uid);

/*
 * server_accept: accept one connection on @lfd and read its credentials.
 * Returns the new fd (non-blocking, cloexec) or -errno (-EAGAIN: none
 * pending).
 */
int server_accept(int lfd, struct ucred *cred);

#endif /* DMASVC_SERVER_PRIV_H */
