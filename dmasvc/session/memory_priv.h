/* SPDX-License-Identifier: MIT */
/*
 * memory_priv.h - accept a client's guest-memory fd and map it once.
 * Do not include from outside dmasvc/.
 *
 * A "memory" is a memfd (sealed with F_SEAL_SHRINK, so it cannot shrink
 * under a pinned mapping) or a hugetlbfs file, at least @size bytes long,
 * @size a multiple of its page size.  The service maps it MAP_SHARED once
 * (PROT_READ|PROT_WRITE, or PROT_READ for READONLY memories) and never
 * touches guest pages through that mapping itself: only the backend pins
 * them.  Unsealed memfds (QEMU's aux-ram-share ROM blocks) are refused: a
 * client leaves them out (decision recorded in docs/protocol.md).
 */
#ifndef DMASVC_MEMORY_PRIV_H
#define DMASVC_MEMORY_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One mapped memory.  Immutable after mem_open(); owned by its session. */
struct dsvc_memory {
	uint32_t id;
	int fd;             /* the client's fd; closed by mem_close() */
	void *vaddr;        /* MAP_SHARED mapping of [0, size) */
	uint64_t size;      /* bytes mapped (the size the client declared) */
	uint64_t page_size; /* 4096, or the hugetlbfs page size */
	bool readonly;      /* mapped PROT_READ; regions must be READONLY */
	bool hugetlb;
	uint64_t dev, ino;  /* the file's st_dev/st_ino: its identity across a restart */
	bool guarded;       /* the mapping's holes are guarded (mem_open) */
	unsigned int users; /* regions using it (event-loop thread only) */
};

struct stat;

/*
 * mem_check_fd: check that @fd is a usable memory of @size bytes (see the
 * file comment) and that its access mode allows @readonly/read-write use.
 * Sets *@page_size and *@hugetlb, and *@st (the fd's fstat) when not
 * NULL.  Returns 0, or -errno with a reason in
 * @err: -EBADF/-EINVAL wrong file type, -EPERM missing F_SEAL_SHRINK,
 * -ERANGE file shorter than @size, -EINVAL size not a page multiple,
 * -EACCES fd not opened for writing.
 */
int mem_check_fd(int fd, uint64_t size, bool readonly, uint64_t *page_size, bool *hugetlb,
		 struct stat *st, char *err, size_t errlen);

/*
 * mem_open: mem_check_fd() then mmap.  Takes ownership of @fd on success
 * only (stored in *@m).  With @guard (a userfaultfd from
 * be_hole_guard_create(), the session's; -1: none) the mapping's holes are
 * guarded on it (be_hole_guard_add(): a pin through the mapping over a hole
 * fails, having allocated nothing) and m->guarded is set; not where it
 * cannot be: hugetlbfs (left out, docs/design.md), read-only memories, a
 * kernel that refuses the range; mem_find_hole() is the check there.
 * Returns 0, or -errno with a reason in @err.
 */
int mem_open(struct dsvc_memory *m, int fd, uint64_t size, bool readonly, int guard,
	     char *err, size_t errlen);

/*
 * mem_find_hole: whether every page of [@off, @off + @len) of @m is in
 * memory (in the memfd's page cache).  The residency rule of populates
 * (docs/design.md, "Who allocates guest memory"): the service pins only
 * pages the VM allocated.  mincore() on the service's own MAP_SHARED
 * mapping, which reports page-cache residency of written pages for shmem
 * whatever the service's page tables hold, faulting nothing in: one call
 * per 16 MiB (about 1 us per MiB measured, see bench/RESULTS.md).  A page
 * it calls absent is a hole, except in a guarded memory (m->guarded), where
 * each run of such pages is asked of the guard: MADV_POPULATE_READ through
 * the guarded mapping, the guard failing the fault of a hole (bisection
 * finds the first), so a page the VMM allocated with fallocate() and never
 * wrote counts as in memory (DMASVC_MEMORY_ADDED_FALLOC) and is zeroed by
 * that fault, and the pages of the run before its first hole end up in the
 * service's page tables (a pin would put them there too).
 *   needs:      @off and @len multiples of 4096, inside [0, m->size).
 *   guarantees: no page is allocated.  A page of the memfd that was
 *               swapped out counts as a hole to mincore() (the VMM's
 *               fault brings it back, charged to the VM) and as in memory
 *               to the guard (the fault swaps it in, charged where it was).
 *   used:       before the plan for memories without a guard
 *               (!m->guarded) or backends that do not pin at map time; after a
 *               failed pin of a guarded one, to tell a hole from a
 *               backend failure (burst_run.c).
 *   returns:    0 when every page is resident; 1 with *@hole = the memory
 *               offset of the first page that is not; 0 without checking
 *               for hugetlbfs (mincore there reports the service's own page
 *               tables, not the file: the check cannot tell; see
 *               docs/design.md); -errno when mincore() or the advice
 *               fails otherwise.
 */
int mem_find_hole(const struct dsvc_memory *m, uint64_t off, uint64_t len, uint64_t *hole);

/* mem_close unmaps in pieces of this many bytes (or of one page, if larger). */
#define MEM_UNMAP_CHUNK (32ull << 20)

/* mem_close: munmap (piece by piece: memory.c; the guard's range goes with it) and close.  Never fails. */
void mem_close(struct dsvc_memory *m);

#endif /* DMASVC_MEMORY_PRIV_H */
