/* SPDX-License-Identifier: MIT */
/*
 * unit_util.h - small helpers shared by the daemon unit tests: fd leak
 * counting and sealed memfds.
 */
#ifndef DMASVC_UNIT_UTIL_H
#define DMASVC_UNIT_UTIL_H

#include <stdbool.h>
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

#endif /* DMASVC_UNIT_UTIL_H */
