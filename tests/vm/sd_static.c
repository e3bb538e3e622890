/* SPDX-License-Identifier: MIT */
/*
 * sd_static.c - what the static guest daemon (dmasvc-static) links instead
 * of libsystemd, which Debian ships only as a shared library.  The guest has
 * no systemd, but a test's fd store (tests/vm, docs/restart.md) speaks the
 * two protocols the daemon uses, so these implement them as libsystemd
 * does (sd-daemon.c), reduced to what the daemon calls:
 *   - LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES: fds from 3, FD_CLOEXEC set,
 *     names split at ':' ("unknown" when absent), the variables unset;
 *   - NOTIFY_SOCKET: one datagram (path, or '@' for an abstract name) with
 *     the state text and SCM_RIGHTS fds; nothing without the variable.
 * Without the variables they answer what libsystemd answers (0).
 */
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

static void unset_listen(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int sd_listen_fds(int unset_environment)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	long n;

	if (!pid || !fds || strtol(pid, NULL, 10) != (long)getpid()) {
		if (unset_environment)
			unset_listen();
		return 0;
	}
	n = strtol(fds, NULL, 10);
	if (n < 0 || n > 65536)
		n = 0;
	for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (unset_environment)
		unset_listen();
	return (int)n;
}

int sd_listen_fds_with_names(int unset_environment, char ***names)
{
	const char *e = getenv("LISTEN_FDNAMES");
	char *copy = e ? strdup(e) : NULL, *save = NULL, *tok;
	int n = sd_listen_fds(unset_environment), i = 0;
	char **l;

	if (n <= 0 || !names) {
		free(copy);
		return n;
	}
	l = calloc((size_t)n + 1, sizeof(*l));
	if (!l) {
		free(copy);
		return -ENOMEM;
	}
	for (tok = copy ? strtok_r(copy, ":", &save) : NULL; tok && i < n;
	     tok = strtok_r(NULL, ":", &save))
		l[i++] = strdup(tok);
	for (; i < n; i++)
		l[i] = strdup("unknown");
	free(copy);
	*names = l;
	return n;
}

int sd_is_socket_unix(int fd, int type, int listening, const char *path, size_t length)
{
	struct sockaddr_un sa;
	socklen_t l = sizeof(int), sl = sizeof(sa);
	int t = 0, acc = 0;

	(void)path;
	(void)length;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l) < 0)
		return -errno;
	if (type && t != type)
		return 0;
	l = sizeof(int);
	if (listening >= 0 && (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) < 0 ||
			       !acc != !listening))
		return 0;
	if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return -errno;
	return sa.sun_family == AF_UNIX;
}

int sd_pid_notify_with_fds(pid_t pid, int unset_environment, const char *state, const int *fds,
			   unsigned int n_fds)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct iovec iov = { (void *)state, strlen(state) };
	struct msghdr mh = { .msg_name = &sa, .msg_iov = &iov, .msg_iovlen = 1 };
	char cbuf[CMSG_SPACE(sizeof(int) * 253)];
	size_t len;
	int s, ret = 1;

	(void)pid;
	if (!e || !*e)
		return 0;
	len = strlen(e);
	if (len >= sizeof(sa.sun_path) || n_fds > 253)
		return -EINVAL;
	memcpy(sa.sun_path, e, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0;
	mh.msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if (n_fds) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (sendmsg(s, &mh, MSG_NOSIGNAL) < 0)
		ret = -errno;
	close(s);
	if (unset_environment)
		unsetenv("NOTIFY_SOCKET");
	return ret;
}

int sd_pid_notify(pid_t pid, int unset_environment, const char *state)
{
	return sd_pid_notify_with_fds(pid, unset_environment, state, NULL, 0);
}

int sd_notify(int unset_environment, const char *state)
{
	return sd_pid_notify_with_fds(0, unset_environment, state, NULL, 0);
}

int sd_notifyf(int unset_environment, const char *format, ...)
{
	char *p = NULL;
	va_list ap;
	int ret;

	va_start(ap, format);
	ret = vasprintf(&p, format, ap);
	va_end(ap);
	if (ret < 0)
		return -ENOMEM;
	ret = sd_notify(unset_environment, p);
	free(p);
	return ret;
}
