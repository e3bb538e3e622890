/* SPDX-License-Identifier: MIT */
/*
 * sd_static.c - what the static guest daemon (dmasvc-static) links instead
 * of libsystemd, which Debian ships only as a shared library.  The busybox
 * guest has no systemd, but tests/vm/fdstore-keeper.c plays its part
 * (socket activation, the notify socket and its fd store), so these speak
 * the same protocol as libsystemd 252 does:
 *   - sd_listen_fds*: LISTEN_PID must be our pid, LISTEN_FDS the count of
 *     fds from 3 (SD_LISTEN_FDS_START), LISTEN_FDNAMES their ':'-separated
 *     names (missing names read "unknown"); the fds are made CLOEXEC;
 *     @unset_environment removes the three variables.
 *   - sd_notify*: one datagram to the AF_UNIX socket in NOTIFY_SOCKET
 *     (a path, or '@' for the abstract namespace), fds as SCM_RIGHTS;
 *     without NOTIFY_SOCKET nothing is sent and 0 is returned.
 * Only what the daemon calls is here; credentials (SCM_CREDENTIALS) are
 * not sent: the kernel attaches them when the receiver sets SO_PASSCRED.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#define SD_MAX_PASSED 4096 /* like FileDescriptorStoreMax's order of magnitude */

/* Parse all of @s as a decimal number in [0, max]; -EINVAL otherwise. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static void unset_listen_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

/*
 * sd_listen_fds_with_names - as libsystemd: the number of passed fds (0 when
 * LISTEN_PID is unset or not ours) and, in @names, a NULL-terminated array
 * of their names (malloc'd, the caller frees each and the array).
 */
int sd_listen_fds_with_names(int unset_environment, char ***names)
{
	unsigned long pid, n;
	const char *e;
	char **v = NULL;
	int r;

	if (names)
		*names = NULL;
	e = getenv("LISTEN_PID");
	if (!e) {
		r = 0;
		goto out;
	}
	if (parse_uint(e, (unsigned long)INT32_MAX, &pid) < 0) {
		r = -EINVAL;
		goto out;
	}
	if ((pid_t)pid != getpid()) {
		r = 0;
		goto out;
	}
	if (parse_uint(getenv("LISTEN_FDS"), SD_MAX_PASSED, &n) < 0) {
		r = -EINVAL;
		goto out;
	}
	for (unsigned long i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + (int)i;
		int fl = fcntl(fd, F_GETFD);

		if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
			r = -errno;
			goto out;
		}
	}
	if (names) {
		const char *list = getenv("LISTEN_FDNAMES");
		const char *p = list;

		v = calloc(n + 1, sizeof(*v));
		if (!v) {
			r = -ENOMEM;
			goto out;
		}
		for (unsigned long i = 0; i < n; i++) {
			size_t len = 0;

			if (p) {
				const char *colon = strchr(p, ':');

				len = colon ? (size_t)(colon - p) : strlen(p);
			}
			v[i] = p ? strndup(p, len) : strdup("unknown");
			if (!v[i]) {
				for (unsigned long j = 0; j < i; j++)
					free(v[j]);
				free(v);
				r = -ENOMEM;
				goto out;
			}
			if (p)
				p = p[len] == ':' ? p + len + 1 : NULL;
		}
		*names = v;
	}
	r = (int)n;
out:
	if (unset_environment)
		unset_listen_env();
	return r;
}

int sd_listen_fds(int unset_environment)
{
	return sd_listen_fds_with_names(unset_environment, NULL);
}

/*
 * sd_is_socket_unix - as libsystemd: 1 when @fd is an AF_UNIX socket of
 * @type (0: any), listening when @listening > 0 (not listening when 0,
 * either when < 0), bound to @path (@length 0: NUL-terminated; NULL: any
 * path); 0 when not; -errno on error.
 */
int sd_is_socket_unix(int fd, int type, int listening, const char *path, size_t length)
{
	struct sockaddr_un sa;
	socklen_t l = sizeof(sa);
	struct stat st;
	int v;

	if (fd < 0)
		return -EBADF;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return 0;
	if (type) {
		socklen_t tl = sizeof(v);

		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &tl) < 0)
			return -errno;
		if (v != type)
			return 0;
	}
	if (listening >= 0) {
		socklen_t tl = sizeof(v);

		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &tl) < 0)
			return -errno;
		if (!v != !listening)
			return 0;
	}
	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &l) < 0)
		return -errno;
	if (sa.sun_family != AF_UNIX)
		return 0;
	if (path) {
		size_t have = l > offsetof(struct sockaddr_un, sun_path)
				      ? l - offsetof(struct sockaddr_un, sun_path) : 0;

		if (length == 0)
			length = strlen(path);
		if (length == 0)
			return have == 0;
		if (path[0]) /* a path: the kernel may count the NUL */
			return have >= length && !strncmp(sa.sun_path, path, length) &&
			       (have == length || sa.sun_path[length] == '\0');
		return have == length && !memcmp(sa.sun_path, path, length);
	}
	return 1;
}

/*
 * sd_pid_notify_with_fds - send @state (and @n_fds fds as SCM_RIGHTS) to
 * NOTIFY_SOCKET.  @pid is ignored (the kernel's credentials name the
 * sender).  Returns 1 when sent, 0 without NOTIFY_SOCKET, -errno.
 */
int sd_pid_notify_with_fds(pid_t pid, int unset_environment, const char *state, const int *fds,
			   unsigned n_fds)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct iovec iov = { .iov_base = (void *)state, .iov_len = state ? strlen(state) : 0 };
	struct msghdr mh = { .msg_name = &sa, .msg_iov = &iov, .msg_iovlen = 1 };
	const char *e = getenv("NOTIFY_SOCKET");
	size_t len;
	char *cbuf = NULL;
	int s, r;

	(void)pid;
	if (!state)
		return -EINVAL;
	if (n_fds > 0 && !fds)
		return -EINVAL;
	if (!e)
		return 0;
	len = strlen(e);
	if ((e[0] != '/' && e[0] != '@') || len < 2 || len > sizeof(sa.sun_path)) {
		r = -EINVAL;
		goto out;
	}
	memcpy(sa.sun_path, e, len);
	if (e[0] == '@')
		sa.sun_path[0] = '\0';
	mh.msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
				     (e[0] == '/' ? 1 : 0));
	if (mh.msg_namelen > sizeof(sa))
		mh.msg_namelen = sizeof(sa);
	if (n_fds > 0) {
		struct cmsghdr *cm;

		if (n_fds > 253) { /* SCM_MAX_FD */
			r = -E2BIG;
			goto out;
		}
		cbuf = calloc(1, CMSG_SPACE(sizeof(int) * n_fds));
		if (!cbuf) {
			r = -ENOMEM;
			goto out;
		}
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
	}
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		r = -errno;
		goto out;
	}
	r = sendmsg(s, &mh, MSG_NOSIGNAL) < 0 ? -errno : 1;
	close(s);
out:
	free(cbuf);
	if (unset_environment)
		unsetenv("NOTIFY_SOCKET");
	return r;
}

int sd_pid_notify(pid_t pid, int unset_environment, const char *state)
{
	return sd_pid_notify_with_fds(pid, unset_environment, state, NULL, 0);
}

int sd_notify(int unset_environment, const char *state)
{
	return sd_pid_notify_with_fds(0, unset_environment, state, NULL, 0);
}

/* Format @format and send it (the two *notifyf below). */
static int vnotifyf(pid_t pid, int unset_environment, const char *format, va_list ap)
{
	char *p = NULL;
	int r;

	if (vasprintf(&p, format, ap) < 0)
		return -ENOMEM;
	r = sd_pid_notify_with_fds(pid, unset_environment, p, NULL, 0);
	free(p);
	return r;
}

int sd_pid_notifyf(pid_t pid, int unset_environment, const char *format, ...)
{
	va_list ap;
	int r;

	va_start(ap, format);
	r = vnotifyf(pid, unset_environment, format, ap);
	va_end(ap);
	return r;
}

int sd_notifyf(int unset_environment, const char *format, ...)
{
	va_list ap;
	int r;

	va_start(ap, format);
	r = vnotifyf(0, unset_environment, format, ap);
	va_end(ap);
	return r;
}

/*
 * The build's tag: tests/vm builds the static daemon twice (dmasvc-static,
 * tag "A"; dmasvc-static-b, -DDMASVC_BUILD_TAG="B") so the upgrade test
 * (guest/tests/81-restart-upgrade-iommufd) replaces one build by another.
 */
#ifndef DMASVC_BUILD_TAG
#define DMASVC_BUILD_TAG "A"
#endif
__attribute__((used)) static const char build_tag[] = "dmasvc-static build " DMASVC_BUILD_TAG;
