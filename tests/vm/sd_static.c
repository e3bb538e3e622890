/* SPDX-License-Identifier: MIT */
/*
 * sd_static.c - what the static guest daemon (dmasvc-static) links instead
 * of libsystemd, which Debian ships only as a shared library.  The guest has
 * no systemd: there is never a passed socket or a notify socket, so these
 * answer exactly what libsystemd answers without LISTEN_FDS/NOTIFY_SOCKET
 * (0: nothing passed, nothing sent).  No protocol is implemented here.
 */
#include <stddef.h>
#include <systemd/sd-daemon.h>

int sd_listen_fds(int unset_environment)
{
	(void)unset_environment;
	return 0;
}

int sd_is_socket_unix(int fd, int type, int listening, const char *path, size_t length)
{
	(void)fd;
	(void)type;
	(void)listening;
	(void)path;
	(void)length;
	return 0;
}

int sd_notify(int unset_environment, const char *state)
{
	(void)unset_environment;
	(void)state;
	return 0;
}

int sd_notifyf(int unset_environment, const char *format, ...)
{
	(void)unset_environment;
	(void)format;
	return 0;
}
