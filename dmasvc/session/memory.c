/* SPDX-License-Identifier: MIT */
/*
 * memory.c - fd checks and the one MAP_SHARED mapping of a memory (see
 * memory_priv.h).  fstat for the type and size, fstatfs for hugetlbfs,
 * F_GET_SEALS for the memfd seal, F_GETFL for the access mode; the guard
 * over the mapping's holes (backend/hole_guard.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "dmasvc/hole_guard.h"

#include "log_priv.h"
#include "memory_priv.h"

int mem_check_fd(int fd, uint64_t size, bool readonly, uint64_t *page_size, bool *hugetlb,
		 struct stat *st_out, char *err, size_t errlen)
{
	struct statfs sfs;
	struct stat st;
	int fl, seals;

	if (fstat(fd, &st) < 0)
		return dlog_errf(-errno, err, errlen, "fstat of the memory fd failed");
	if (!S_ISREG(st.st_mode))
		return dlog_errf(-EINVAL, err, errlen,
				"memory fd is not a regular file (want a memfd or a hugetlbfs file)");
	if (fstatfs(fd, &sfs) < 0)
		return dlog_errf(-errno, err, errlen, "fstatfs of the memory fd failed");
	*hugetlb = (sfs.f_type == HUGETLBFS_MAGIC);
	*page_size = *hugetlb ? (uint64_t)sfs.f_bsize : 4096;
	if (!*hugetlb) {
		seals = fcntl(fd, F_GET_SEALS);
		if (seals < 0)
			return dlog_errf(-EINVAL, err, errlen,
					"memory fd is neither a memfd nor a hugetlbfs file");
		if (!(seals & F_SEAL_SHRINK))
			return dlog_errf(-EPERM, err, errlen,
					"memfd is not sealed with F_SEAL_SHRINK (it could shrink under a pinned mapping)");
	}
	if (*page_size == 0 || (*page_size & (*page_size - 1)))
		return dlog_errf(-EINVAL, err, errlen, "memory has an odd page size %llu",
				(unsigned long long)*page_size);
	if (size % *page_size)
		return dlog_errf(-EINVAL, err, errlen, "size 0x%llx is not a multiple of the page size 0x%llx",
				(unsigned long long)size, (unsigned long long)*page_size);
	if (st.st_size < 0 || (uint64_t)st.st_size < size)
		return dlog_errf(-ERANGE, err, errlen, "memory file has 0x%llx bytes, fewer than size 0x%llx",
				(unsigned long long)st.st_size, (unsigned long long)size);
	if (size > (uint64_t)SIZE_MAX / 2)
		return dlog_errf(-ERANGE, err, errlen, "size 0x%llx too large", (unsigned long long)size);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return dlog_errf(-errno, err, errlen, "F_GETFL of the memory fd failed");
	if ((fl & O_ACCMODE) == O_WRONLY)
		return dlog_errf(-EACCES, err, errlen, "memory fd is write-only");
	if (!readonly && (fl & O_ACCMODE) != O_RDWR)
		return dlog_errf(-EACCES, err, errlen,
				"memory fd is read-only but the memory is not DMASVC_MEMORY_READONLY");
	if (st_out)
		*st_out = st;
	return 0;
}

int mem_open(struct dsvc_memory *m, int fd, uint64_t size, bool readonly, int guard,
	     char *err, size_t errlen)
{
	/* set by mem_check_fd() when it returns 0; initialised for gcc -O3,
	 * which cannot see that through dlog_errf()'s return value */
	uint64_t page_size = 0;
	struct stat st = { 0 };
	bool hugetlb = false;
	void *p;
	int ret;

	ret = mem_check_fd(fd, size, readonly, &page_size, &hugetlb, &st, err, errlen);
	if (ret)
		return ret;
	/*
	 * MAP_NORESERVE: the service never touches these pages (only pins
	 * populated ones), so it must not reserve them: on hugetlbfs a plain
	 * MAP_SHARED reserves the whole file from the pool, which fails with
	 * ENOMEM for QEMU's reserve=off memory (virtio-mem on hugetlb) or
	 * takes the whole maxmem from the pool.
	 */
	p = mmap(NULL, (size_t)size, readonly ? PROT_READ : PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED)
		return dlog_errf(-errno, err, errlen, "mmap of 0x%llx bytes failed", (unsigned long long)size);
	m->fd = fd;
	m->vaddr = p;
	m->size = size;
	m->page_size = page_size;
	m->readonly = readonly;
	m->hugetlb = hugetlb;
	m->dev = (uint64_t)st.st_dev;
	m->ino = (uint64_t)st.st_ino;
	m->users = 0;
	/*
	 * The guard spares the residency check and closes its window
	 * (docs/design.md); where it is not asked for (--allow-fault-in, no
	 * userfaultfd: @guard -1), cannot be had (read-only mapping) or is
	 * left out (hugetlbfs) the memory is checked by mem_find_hole().
	 */
	m->guarded = guard >= 0 && !readonly && !hugetlb && be_hole_guard_add(guard, p, size) == 0;
	return 0;
}

/*
 * The guard's answer for [@off, @off + @len): 0 when it holds no hole
 * (each page's fault through the guarded mapping succeeds: the pages are
 * now in the service's page tables, a page fallocate()d and never written
 * zeroed on the way, nothing allocated), 1 when it holds one, -errno when
 * the advice failed otherwise.
 */
static int guard_range_has_hole(const struct dsvc_memory *m, uint64_t off, uint64_t len)
{
	while (madvise((char *)m->vaddr + off, (size_t)len, MADV_POPULATE_READ) < 0) {
		if (errno == EFAULT) /* the guard: a fault into a page the memfd does not hold */
			return 1;
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/*
 * The guard's first hole in [@off, @off + @len) (a hole fails the fault, a
 * page written or only fallocate()d passes, so the answer agrees with the
 * pin and with DMASVC_MEMORY_ADDED_FALLOC): 0, or 1 and *@hole, or
 * -errno.  By bisection: one advice over the range, then log2(pages) more
 * when it holds a hole.
 */
static int guard_find_hole(const struct dsvc_memory *m, uint64_t off, uint64_t len,
			   uint64_t *hole)
{
	uint64_t lo = off, hi = off + len; /* the first hole lies in [lo, hi) */
	int ret = guard_range_has_hole(m, off, len);

	if (ret <= 0)
		return ret;
	while (hi - lo > 4096) {
		uint64_t mid = lo + ((hi - lo) / 4096 / 2) * 4096;

		ret = guard_range_has_hole(m, lo, mid - lo);
		if (ret < 0)
			return ret;
		if (ret)
			hi = mid;
		else
			lo = mid;
	}
	*hole = lo;
	return 1;
}

int mem_find_hole(const struct dsvc_memory *m, uint64_t off, uint64_t len, uint64_t *hole)
{
	enum { VEC = 4096 }; /* pages per mincore(): 16 MiB of 4 KiB pages */
	unsigned char vec[VEC];

	if (m->hugetlb)
		return 0;
	while (len) {
		size_t pages = (size_t)(len / 4096 < VEC ? len / 4096 : VEC);

		if (mincore((char *)m->vaddr + off, pages * 4096, vec) < 0)
			return -errno;
		for (size_t i = 0, j; i < pages; i = j) {
			int ret;

			if (vec[i] & 1) {
				j = i + 1;
				continue;
			}
			if (!m->guarded) {
				*hole = off + i * 4096;
				return 1;
			}
			/* a run mincore() calls absent: holes, or pages only fallocate()d */
			for (j = i + 1; j < pages && !(vec[j] & 1); j++)
				;
			ret = guard_find_hole(m, off + i * 4096, (j - i) * 4096, hole);
			if (ret)
				return ret;
		}
		off += pages * 4096;
		len -= pages * 4096;
	}
	return 0;
}

void mem_close(struct dsvc_memory *m)
{
	/*
	 * In pieces of MEM_UNMAP_CHUNK: munmap() zaps the page tables with the
	 * service's mmap lock held (read, after the detach), and a pin or
	 * unpin of another session (the model's mlock, a GUP fault) waits for
	 * the write lock behind it.  One munmap of 4 GiB of populated memory
	 * stalled another session's 2 MiB populate for the whole zap (tens of
	 * ms, bench/RESULTS.md "iso-bench"); a piece holds the lock for a zap
	 * of 32 MiB.  A piece is a multiple of the page size (hugetlbfs).
	 */
	if (m->vaddr) {
		uint64_t chunk = m->page_size > MEM_UNMAP_CHUNK ? m->page_size : MEM_UNMAP_CHUNK;

		for (uint64_t off = 0; off < m->size; off += chunk)
			munmap((char *)m->vaddr + off,
			       (size_t)(m->size - off < chunk ? m->size - off : chunk));
	}
	if (m->fd >= 0)
		close(m->fd);
	m->vaddr = NULL;
	m->fd = -1;
	m->guarded = false;
}
