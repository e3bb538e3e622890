/* SPDX-License-Identifier: MIT */
/*
 * kernel_priv.h - do not include directly; private to the kernel backends
 * (iommufd.c, type1.c).  Syscall wrappers that turn -1/errno into -errno
 * at once, the one way these backends report a kernel error: the
 * backend, the call, the IOVA range and the errno, through the context's
 * reporter (report_priv.h), and a space's table of attached devices.
 *
 * Vocabulary as in backend.h: end = iova + length (exclusive, overflow
 * checked), last = end - 1.
 */
#ifndef DMASVC_BACKEND_KERNEL_PRIV_H
#define DMASVC_BACKEND_KERNEL_PRIV_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
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

/*
 * kernel_map_args: check map()'s arguments as both kernel backends take
 * them: [@iova, @iova + @length) non-empty and not wrapping (sets *@end),
 * @prot READ and/or WRITE and nothing else, and a @src.  Returns 0,
 * -EINVAL or -EOVERFLOW.
 */
static inline int kernel_map_args(uint64_t iova, uint64_t length, const struct be_map_src *src,
				  unsigned int prot, uint64_t *end)
{
	const unsigned int rw = BE_PROT_READ | BE_PROT_WRITE;
	int rc = kernel_range(iova, length, end);

	if (rc < 0)
		return rc;
	if (!(prot & rw) || (prot & ~rw) || !src)
		return -EINVAL;
	return 0;
}

/*
 * A space's attached devices: our own fd of each (a dup of the caller's,
 * the same open file, which keeps the device with the space) and the
 * handle device_attach() gave out for it.  Touched only by the space's
 * control thread (backend.h).  Unordered: a removal moves the last entry
 * into the hole.
 */
#define KERNEL_MAX_DEVICES 32

struct kernel_devs {
	unsigned int n;
	struct {
		int fd;
		uint32_t dev_id;
	} dev[KERNEL_MAX_DEVICES];
};

/* kernel_devs_full: whether @t has no free entry (device_attach: -ENOSPC). */
static inline bool kernel_devs_full(const struct kernel_devs *t)
{
	return t->n == KERNEL_MAX_DEVICES;
}

/* kernel_devs_add: record @fd (@t owns it from now on) as @dev_id; @t not full. */
static inline void kernel_devs_add(struct kernel_devs *t, int fd, uint32_t dev_id)
{
	t->dev[t->n].fd = fd;
	t->dev[t->n].dev_id = dev_id;
	t->n++;
}

/*
 * kernel_devs_index: the entry of @dev_id in @t for its detach, or -1 after
 * reporting to @r (backend @be) the BUG of a detach of a device @t does not
 * hold.
 */
static inline int kernel_devs_index(const struct kernel_devs *t, const struct be_report *r,
				    const char *be, uint32_t dev_id)
{
	for (unsigned int i = 0; i < t->n; i++)
		if (t->dev[i].dev_id == dev_id)
			return (int)i;
	be_reportf(r, "%s: BUG: detach of unknown device %" PRIu32, be, dev_id);
	return -1;
}

/* kernel_devs_drop: close entry @i's fd and remove it from @t.  Never fails. */
static inline void kernel_devs_drop(struct kernel_devs *t, unsigned int i)
{
	close(t->dev[i].fd);
	t->dev[i] = t->dev[--t->n];
}

#endif /* DMASVC_BACKEND_KERNEL_PRIV_H */
