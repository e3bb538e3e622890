/* SPDX-License-Identifier: MIT */
/*
 * unit_util.h - small helpers shared by the daemon unit tests: fd leak
 * counting and sealed memfds.
 */
#ifndef DMASVC_UNIT_UTIL_H
#define DMASVC_UNIT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* count_open_fds: number of open fds of this process (from /proc/self/fd). */
int count_open_fds(void);

/* fd_is_open: whether @fd is an open descriptor. */
bool fd_is_open(int fd);

/*
 * make_memfd: a memfd of @size bytes, sealed with @seals (0: none).
 * Returns the fd or -errno.
 */
int make_memfd(uint64_t size, unsigned int seals);

/*
 * copy_executable_for_uid: copy the program @src into directory @dir (which
 * the test created, mode 0755) as an executable anyone may run, so a child
 * that drops to another uid can run it whatever the permissions of the
 * checkout's directories.  @src must need no library from the build tree
 * (link it statically).  Writes the copy's path into @out (@outlen bytes).
 * Returns 0 or -errno.
 */
int copy_executable_for_uid(const char *src, const char *dir, char *out, size_t outlen);

#endif /* DMASVC_UNIT_UTIL_H */
