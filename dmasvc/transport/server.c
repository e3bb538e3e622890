/* SPDX-License-Identifier: MIT */
/*
 * server.c - create (or inherit from systemd) the control socket, accept
 * peers, read SO_PEERCRED and decide admission (see server_priv.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "keep_priv.h"
#include "server_priv.h"

/*
 * Create the socket's directory (one level, mode 0755) if it is missing,
 * e.g. /run/dmasvc for the default path, owned by @o's --user (so the
 * service can still remove its socket after the drop).  Failures show up
 * at bind().
 */
static void make_parent_dir(const struct dsvc_options *o)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", o->socket_path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0755) == 0 && o->run_uid != (uid_t)-1 && chown(dir, o->run_uid, o->run_gid) < 0) {
		/* the service then leaves a stale socket at exit, replaced at the next start */
	}
}

/*
 * Take "PATH.lock" (created 0600, owned by @o's --user) and write our pid
 * into it.  Returns the fd or -errno.
 */
static int claim_lock(const struct dsvc_options *o, const char *path, char *err, size_t errlen)
{
	char lock[sizeof(((struct sockaddr_un *)0)->sun_path) + 8], pid[32];
	int fd, ret, n;

	snprintf(lock, sizeof(lock), "%s.lock", path);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open the lock file %s", lock);
		return ret;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
		n = (int)pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, errlen, "another dmasvc (pid %s) serves %s: refusing to take it over",
			 *pid ? pid : "?", path);
		close(fd);
		return ret;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* the pid only serves the message above: go on without it */
	}
	if (o->run_uid != (uid_t)-1 && fchown(fd, o->run_uid, o->run_gid) < 0) {
		/* a later start under that user (User=) could not reopen it: said in docs */
	}
	return fd;
}

/*
 * Sort the @n fds passed (socket activation, the fd store, an upgrade's
 * exec; names from LISTEN_FDNAMES): the one listening SOCK_SEQPACKET
 * socket bound to @o->socket_path is returned (made non-blocking and
 * cloexec); every keep-set fd (keep_name_is_ours) goes to @claim's keep
 * list for keep_adopt(); anything else is closed with a line in @claim's
 * count of strays.  Returns the socket's fd, or -errno with a reason (no
 * such socket, or two; every fd is closed then).
 */
static int adopt_activated(const struct dsvc_options *o, int n, char **names,
			   struct server_claim *claim, char *err, size_t errlen)
{
	int fd = -1, ret;

	claim->keep_fds = calloc((size_t)n, sizeof(int));
	claim->keep_names = calloc((size_t)n + 1, sizeof(char *));
	if (!claim->keep_fds || !claim->keep_names) {
		snprintf(err, errlen, "out of memory for %d passed fds", n);
		for (int i = 0; i < n; i++)
			close(SD_LISTEN_FDS_START + i);
		ret = -ENOMEM;
		goto err_keep;
	}
	for (int i = 0; i < n; i++) {
		int f = SD_LISTEN_FDS_START + i;
		const char *name = names && names[i] ? names[i] : "unknown";

		if (keep_name_is_ours(name)) {
			fcntl(f, F_SETFD, FD_CLOEXEC);
			claim->keep_fds[claim->nr_keep] = f;
			claim->keep_names[claim->nr_keep++] = strdup(name);
			continue;
		}
		if (sd_is_socket_unix(f, SOCK_SEQPACKET, 1, o->socket_path, 0) > 0 && fd < 0) {
			fd = f;
			/* "listen": bound by the instance before an upgrade, so its file is ours */
			claim->upgraded = !strcmp(name, "listen");
			claim->activated = !claim->upgraded;
			continue;
		}
		claim->nr_stray++; /* closed: nothing of ours */
		close(f);
	}
	if (fd < 0) {
		snprintf(err, errlen,
			 "no passed fd is a listening SOCK_SEQPACKET socket bound to %s "
			 "(ListenSequentialPacket= in dmasvc.socket and --socket must name the same path)",
			 o->socket_path);
		ret = -EINVAL;
		goto err_close;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		ret = -errno;
		close(fd);
		snprintf(err, errlen, "cannot set up the activated socket (fd %d)", fd);
		goto err_keep;
	}
	return fd;

err_close:
	if (fd >= 0)
		close(fd);
err_keep:
	server_keep_free(claim, true);
	return ret;
}

void server_keep_free(struct server_claim *claim, bool close_fds)
{
	for (unsigned int i = 0; i < claim->nr_keep; i++) {
		if (close_fds && claim->keep_fds[i] >= 0)
			close(claim->keep_fds[i]);
		free(claim->keep_names ? claim->keep_names[i] : NULL);
	}
	free(claim->keep_fds);
	free(claim->keep_names);
	claim->keep_fds = NULL;
	claim->keep_names = NULL;
	claim->nr_keep = 0;
}

/* Free a names list from sd_listen_fds_with_names. */
static void names_free(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

int server_listen(const struct dsvc_options *o, struct server_claim *claim, char *err,
		  size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	char **names = NULL;
	mode_t old;
	int fd, ret, n;

	memset(claim, 0, sizeof(*claim));
	claim->lock_fd = -1;
	if (strlen(o->socket_path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path %s is too long", o->socket_path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, o->socket_path);
	n = sd_listen_fds_with_names(1, &names); /* also clears LISTEN_* so no child inherits them */
	if (n < 0) {
		snprintf(err, errlen, "cannot read the socket activation environment (LISTEN_FDS)");
		return n;
	}
	if (n == 0)
		make_parent_dir(o);
	ret = claim_lock(o, o->socket_path, err, errlen);
	if (ret < 0) {
		for (int i = 0; i < n; i++)
			close(SD_LISTEN_FDS_START + i);
		names_free(names);
		return ret;
	}
	claim->lock_fd = ret;
	if (n > 0) {
		fd = adopt_activated(o, n, names, claim, err, errlen);
		names_free(names);
		if (fd < 0) {
			ret = fd;
			goto err_unlock;
		}
		/* systemd's file is never unlinked here; our own (an upgrade's "listen") is */
		if (!claim->activated && lstat(o->socket_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
			claim->dev = st.st_dev;
			claim->ino = st.st_ino;
		}
		return fd;
	}
	if (lstat(o->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket", o->socket_path);
			ret = -EEXIST;
			goto err_unlock;
		}
		unlink(o->socket_path); /* stale: its owner released the lock */
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "socket(AF_UNIX, SOCK_SEQPACKET) failed");
		goto err_unlock;
	}
	old = umask(0177); /* the file never exists with wider permissions */
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (ret) {
		snprintf(err, errlen, "bind %s failed", o->socket_path);
		goto err_close;
	}
	/* owner and group first, so the wider mode never applies to root's group */
	if ((o->run_uid != (uid_t)-1 || o->socket_gid != (gid_t)-1) &&
	    chown(o->socket_path, o->run_uid, o->socket_gid) < 0) {
		ret = -errno;
		snprintf(err, errlen, "chown %s to uid %d gid %d failed", o->socket_path, (int)o->run_uid,
			 (int)o->socket_gid);
		goto err_unlink;
	}
	if (chmod(o->socket_path, o->socket_mode) < 0) {
		ret = -errno;
		snprintf(err, errlen, "chmod %s to %04o failed", o->socket_path, o->socket_mode);
		goto err_unlink;
	}
	if (listen(fd, 64) < 0) {
		ret = -errno;
		snprintf(err, errlen, "listen on %s failed", o->socket_path);
		goto err_unlink;
	}
	if (lstat(o->socket_path, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s vanished after bind", o->socket_path);
		goto err_close;
	}
	claim->dev = st.st_dev;
	claim->ino = st.st_ino;
	return fd;

err_unlink:
	unlink(o->socket_path);
err_close:
	close(fd);
err_unlock:
	close(claim->lock_fd);
	claim->lock_fd = -1;
	return ret;
}

void server_release(const struct dsvc_options *o, struct server_claim *claim)
{
	struct stat st;

	if (claim->lock_fd < 0)
		return;
	if (!claim->activated && lstat(o->socket_path, &st) == 0 && st.st_dev == claim->dev &&
	    st.st_ino == claim->ino)
		unlink(o->socket_path);
	close(claim->lock_fd); /* the lock file stays: removing it would race a new instance */
	claim->lock_fd = -1;
}

bool server_peer_allowed(const struct dsvc_options *o, uid_t self, uid_t uid, gid_t gid)
{
	if (o->nr_allow_uids == 0 && o->nr_allow_gids == 0)
		return uid == self || uid == 0 ||
		       (o->socket_gid != (gid_t)-1 && gid == o->socket_gid);
	for (unsigned int i = 0; i < o->nr_allow_uids; i++)
		if (o->allow_uids[i] == uid)
			return true;
	for (unsigned int i = 0; i < o->nr_allow_gids; i++)
		if (o->allow_gids[i] == gid)
			return true;
	return false;
}

bool server_peer_admin(uid_t self, uid_t uid)
{
	return uid == 0 || uid == self;
}

int server_accept(int lfd, struct ucred *cred)
{
	socklen_t len = sizeof(*cred);
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0 || len != sizeof(*cred)) {
		int ret = -errno;

		close(fd);
		return ret ? ret : -EPROTO;
	}
	return fd;
}
