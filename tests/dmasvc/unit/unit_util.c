/* SPDX-License-Identifier: MIT */
/*
 * unit_util.c - helpers for the daemon unit tests (see unit_util.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "unit_util.h"

int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

int make_memfd(uint64_t size, unsigned int seals)
{
	int fd = memfd_create("unit", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 || (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}
