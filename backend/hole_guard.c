/* SPDX-License-Identifier: MIT */
/*
 * hole_guard.c - the userfaultfd that makes a pin over a hole of a memfd
 * mapping fail (see include/dmasvc/hole_guard.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "dmasvc/hole_guard.h"

int be_hole_guard_create(void)
{
#if defined(SYS_userfaultfd) && defined(UFFD_USER_MODE_ONLY)
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_SIGBUS };
	int u, ret;

	u = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (u < 0)
		return -errno;
	if (ioctl(u, UFFDIO_API, &api) < 0) {
		ret = -errno;
		close(u);
		return ret;
	}
	return u;
#else
	return -ENOSYS;
#endif
}

int be_hole_guard_add(int guard, void *vaddr, uint64_t len)
{
#if defined(SYS_userfaultfd) && defined(UFFD_USER_MODE_ONLY)
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)vaddr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(guard, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
#else
	(void)guard;
	(void)vaddr;
	(void)len;
	return -ENOSYS;
#endif
}

int be_hole_guard_open(void *vaddr, uint64_t len)
{
	int u = be_hole_guard_create(), ret;

	if (u < 0)
		return u;
	ret = be_hole_guard_add(u, vaddr, len);
	if (ret) {
		close(u);
		return ret;
	}
	return u;
}

int be_hole_guard_probe(void)
{
	int fd, ret;
	void *p;

	fd = memfd_create("dmasvc-guard-probe", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, 4096) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ret = be_hole_guard_open(p, 4096);
	munmap(p, 4096);
	close(fd);
	if (ret < 0)
		return ret;
	close(ret);
	return 0;
}
