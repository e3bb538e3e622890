/* SPDX-License-Identifier: MIT */
/*
 * unit_util.c - helpers for the daemon unit tests (see unit_util.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

int copy_executable_for_uid(const char *src, const char *dir, char *out, size_t outlen)
{
	const char *base = strrchr(src, '/');
	char buf[65536];
	int in, fd, ret = 0;
	ssize_t n;

	base = base ? base + 1 : src;
	if ((size_t)snprintf(out, outlen, "%s/%s", dir, base) >= outlen)
		return -ENAMETOOLONG;
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (fd < 0) {
		ret = -errno;
		close(in);
		return ret;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(fd, buf, (size_t)n) != n) {
			ret = -EIO;
			break;
		}
	}
	if (n < 0)
		ret = -errno;
	if (!ret && fchmod(fd, 0755) < 0) /* whatever the umask */
		ret = -errno;
	close(fd);
	close(in);
	return ret;
}

