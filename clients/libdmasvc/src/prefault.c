/* SPDX-License-Identifier: MIT */
/*
 * prefault.c - guest memory is allocated by the VM, not by the service
 * (docs/design.md, "Who allocates guest memory"): before a populate is
 * posted its pages are faulted in here, in the calling (VMM) thread, so
 * the memcg charge, NUMA placement and THP choice are the VM's.  The
 * service refuses a populate of pages that are not in memory unless its
 * operator runs it with --allow-fault-in.
 *
 * Two modes per client (dmasvc_set_prefault): DMASVC_PREFAULT_LIBRARY (the
 * default) maps each memory once, MAP_SHARED | MAP_NORESERVE, and faults a
 * populate's range in through that mapping with MADV_POPULATE_WRITE (READ
 * for a read-only memory); DMASVC_PREFAULT_CALLER maps nothing: the caller
 * faults its own mapping in (dmasvc_prefault(), or its own preallocation,
 * e.g. QEMU's prealloc=on) before each populate.
 *
 * Where the service says a memory's fallocate()d pages count as in memory
 * (DMASVC_MEMORY_ADDED_FALLOC: it guards its mapping, docs/design.md) the
 * library mode allocates with fallocate() on the memory's fd instead: the
 * pages are allocated and charged to the caller as by a fault, without
 * filling the library's page tables (which nobody else uses) or zeroing
 * here (the service's pin zeroes them, as a direct pin would); measured
 * 1 us less for a 4 KiB populate and 40 % less for 2 MiB of allocation and
 * pin together (bench/RESULTS.md, "issue 16 ... fifth pass").  Not for a
 * pipelined populate (pipeline.c): its helper threads zero the pieces off
 * the service's path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "libdmasvc_priv.h"

#define PREFAULT_PROBE_MIN (64u << 10)

#ifndef MADV_POPULATE_READ /* Linux 5.14 uapi; older libc headers lack it */
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

/*
 * first_absent: the offset of the first page of [@addr, @addr + @length)
 * that mincore() does not report in memory, or @length when all are (the
 * service's residency check asks the same question the same way).  A
 * mincore() failure answers 0: the caller then lets madvise() decide.
 */
static size_t first_absent(char *addr, size_t length)
{
	enum { VEC = 4096 }; /* pages per call */
	unsigned char vec[VEC];
	size_t done = 0;

	while (done < length) {
		size_t bytes = length - done < (size_t)VEC * 4096 ? length - done : (size_t)VEC * 4096;

		if (mincore(addr + done, bytes, vec) < 0)
			return done;
		for (size_t i = 0; i < (bytes + 4095) / 4096; i++)
			if (!(vec[i] & 1))
				return done + i * 4096;
		done += bytes;
	}
	return length;
}

/*
 * prefault_from: where a fault-in of [@addr, @addr + @length) starts, page
 * aligned: @length when every page is in memory already.  Pages already in
 * memory cost a mincore() walk (about 1 us per MiB) instead of
 * MADV_POPULATE's page-by-page walk (about 0.3 ms per MiB measured,
 * bench/RESULTS.md), so populating again what stayed allocated (a replug,
 * a replay) costs almost nothing.  A range of PREFAULT_PROBE_MIN or less
 * (a 4 KiB conversion) starts at 0: the mincore() would cost as much as the
 * advice on a present page.
 */
static size_t prefault_from(char *addr, size_t length)
{
	size_t from = length <= PREFAULT_PROBE_MIN ? 0 : first_absent(addr, length);

	return from == length ? length : from & ~(size_t)4095;
}

/* MADV_POPULATE_WRITE (READ unless @writable) of [@addr, @addr + @length); 0 or -errno. */
static int advise(char *addr, size_t length, bool writable)
{
	while (madvise(addr, length, writable ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int dmasvc_prefault(void *addr, size_t length, bool writable)
{
	size_t from;

	if (!addr || !length || ((uintptr_t)addr & 4095))
		return -EINVAL;
	from = prefault_from(addr, length);
	return from == length ? 0 : advise((char *)addr + from, length - from, writable);
}

int cl_pf_range(const struct cl_pf *pf, uint64_t off, size_t len)
{
	char *addr = pf->map + off;
	size_t from;

	if (pf->fd < 0)
		return dmasvc_prefault(addr, len, pf->write);
	if (!len)
		return -EINVAL; /* as dmasvc_prefault() answers */
	from = prefault_from(addr, len);
	if (from == len)
		return 0;
	for (;;) {
		if (fallocate(pf->fd, FALLOC_FL_KEEP_SIZE, (off_t)(pf->fd_off + off + from),
			      (off_t)(len - from)) == 0)
			return 0;
		if (errno != EINTR)
			break; /* e.g. EPERM (a seccomp filter), EOPNOTSUPP: the advice decides */
	}
	return advise(addr + from, len - from, pf->write);
}

int dmasvc_set_prefault(struct dmasvc_client *c, enum dmasvc_prefault_mode mode)
{
	int err = 0;

	if (!c || (mode != DMASVC_PREFAULT_LIBRARY && mode != DMASVC_PREFAULT_CALLER))
		return -EINVAL;
	pthread_mutex_lock(&c->ctl_lock);
	for (uint32_t i = 0; i < c->nmems; i++)
		if (c->mems[i].live)
			err = -EBUSY;
	if (!err)
		c->prefault = mode;
	pthread_mutex_unlock(&c->ctl_lock);
	return err;
}

int cl_memory_map(struct dmasvc_client *c, struct cl_memory *m)
{
	int prot = m->flags & DMASVC_MEMORY_READONLY ? PROT_READ : PROT_READ | PROT_WRITE;
	struct stat st;
	void *p;

	m->map = NULL;
	if (c->prefault != DMASVC_PREFAULT_LIBRARY)
		return 0;
	if (m->size > SIZE_MAX)
		return -ERANGE;
	/* NORESERVE: a hugetlbfs file must not reserve its whole size here. */
	p = mmap(NULL, (size_t)m->size, prot, MAP_SHARED | MAP_NORESERVE, m->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	m->map = p;
	m->page = 4096;
	/* hugetlbfs (and MFD_HUGETLB) give their huge page size as st_blksize */
	if (fstat(m->fd, &st) == 0 && st.st_blksize > 4096 &&
	    !(st.st_blksize & (st.st_blksize - 1)))
		m->page = (uint64_t)st.st_blksize;
	return 0;
}

void cl_memory_unmap(struct cl_memory *m)
{
	if (m->map)
		munmap(m->map, (size_t)m->size);
	m->map = NULL;
}
