/* SPDX-License-Identifier: MIT */
/*
 * kernel_priv.h - do not include directly; private to the kernel backends
 * (iommufd.c, type1.c).  Syscall wrappers that turn -1/errno into -errno
 * at once, and the one way these backends report a kernel error: the
 * backend, the call, the IOVA range and the errno, through the context's
 * reporter (report_priv.h).
 *
 * Vocabulary as in backend.h: end = iova + length (exclusive, overflow
 * checked), last = end - 1.
 */
#ifndef DMASVC_BACKEND_KERNEL_PRIV_H
#define DMASVC_BACKEND_KERNEL_PRIV_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "report_priv.h"

/* ioctl(2) returning its non-negative result or -errno. */
static inline int kernel_ioctl(int fd, unsigned long req, void *arg)
{
	int rc = ioctl(fd, req, arg);

	return rc < 0 ? -errno : rc;
}

/* open(2) with O_CLOEXEC, returning the fd or -errno. */
static inline int kernel_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* dup with O_CLOEXEC, returning the new fd or -errno. */
static inline int kernel_dup(int fd)
{
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	return nfd < 0 ? -errno : nfd;
}

/*
 * kernel_report - report through @r a failed kernel call of backend @be:
 * "@call" on [@iova, @iova + @length) (length 0: no range) failed with @err
 * (-errno).  Never fails; leaves errno alone.
 */
static inline void kernel_report(const struct be_report *r, const char *be, const char *call,
				 uint64_t iova, uint64_t length, int err)
{
	char es[128];

	if (length)
		be_reportf(r, "%s: %s iova 0x%" PRIx64 " length 0x%" PRIx64 ": %s (%d)", be, call,
			   iova, length, strerror_r(-err, es, sizeof(es)), err);
	else
		be_reportf(r, "%s: %s: %s (%d)", be, call, strerror_r(-err, es, sizeof(es)), err);
}

/* [iova, iova + length) is non-empty and does not wrap; sets *end. */
static inline int kernel_range(uint64_t iova, uint64_t length, uint64_t *end)
{
	if (!length)
		return -EINVAL;
	if (__builtin_add_overflow(iova, length, end))
		return -EOVERFLOW;
	return 0;
}

#endif /* DMASVC_BACKEND_KERNEL_PRIV_H */
