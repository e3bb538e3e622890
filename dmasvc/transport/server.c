/* SPDX-License-Identifier: MIT */
/*
 * server.c - create the control socket, accept peers, read SO_PEERCRED and
 * decide admission (see server_priv.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "server_priv.h"

/*
 * Create the socket's directory (one level, mode 0755) if it is missing,
 * e.g. /run/dmasvc for the default path.  Failures show up at bind().
 */
static void make_parent_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	mkdir(dir, 0755);
}

int server_listen(const struct dsvc_options *o, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, ret;

	if (strlen(o->socket_path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path %s is too long", o->socket_path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, o->socket_path);
	make_parent_dir(o->socket_path);
	if (lstat(o->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket", o->socket_path);
			return -EEXIST;
		}
		unlink(o->socket_path); /* stale socket of an earlier instance */
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "socket(AF_UNIX, SOCK_SEQPACKET) failed");
		return ret;
	}
	old = umask(0177); /* the file never exists with wider permissions */
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (ret) {
		snprintf(err, errlen, "bind %s failed", o->socket_path);
		goto err_close;
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
	return fd;

err_unlink:
	unlink(o->socket_path);
err_close:
	close(fd);
	return ret;
}

bool server_peer_allowed(const struct dsvc_options *o, uid_t self, uid_t uid)
{
	if (o->nr_allow_uids == 0)
		return uid == self || uid == 0;
	for (unsigned int i = 0; i < o->nr_allow_uids; i++)
		if (o->allow_uids[i] == uid)
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
