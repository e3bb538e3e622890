/* SPDX-License-Identifier: MIT */
/*
 * hole_guard.h - make a pin through a mapping of a memfd fail over a hole
 * instead of allocating it (dmasvc's residency rule, docs/design.md "Who
 * allocates guest memory"; be_ops.pins_vaddr_at_map says which maps pin
 * through the vaddr).
 */
#ifndef DMASVC_HOLE_GUARD_H
#define DMASVC_HOLE_GUARD_H

#include <stdint.h>

/*
 * be_hole_guard_open: make every fault into a hole of [@vaddr, @vaddr +
 * @len) (a page the memfd does not hold) fail instead of allocating it.  A
 * userfaultfd that nobody reads, UFFD_USER_MODE_ONLY (no privilege needed)
 * with UFFD_FEATURE_SIGBUS, registered in MISSING mode over the range: a
 * fault the kernel takes for a pin (GUP: io_uring registered buffers,
 * IOMMU_IOAS_MAP of a vaddr, VFIO_IOMMU_MAP_DMA, mlock, MADV_POPULATE_*)
 * gets SIGBUS, which the pin returns as -EFAULT (mlock: -ENOMEM) having
 * pinned and allocated nothing; a fault from user mode gets the signal.
 * Pages the memfd holds (swapped out ones too) fault in as before,
 * fault-around included.  The pin then decides in the same walk that pins:
 * no window between a check and the pin in which the file's owner could
 * punch a page out and have the pinning process allocate it.
 *   needs:      @vaddr a MAP_SHARED mapping of a memfd (shmem) that may be
 *               written (the kernel registers only such VMAs), page
 *               aligned, @len a multiple of the page size.
 *   returns:    the userfaultfd (the guard lasts until it is closed or
 *               the range is unmapped; close it after the munmap), or
 *               -errno: -ENOSYS/-EPERM no userfaultfd here (a kernel
 *               without CONFIG_USERFAULTFD), -EINVAL a mapping it cannot
 *               guard.
 */
int be_hole_guard_open(void *vaddr, uint64_t len);

/*
 * be_hole_guard_create, be_hole_guard_add: be_hole_guard_open() in two
 * steps, so that one userfaultfd guards many ranges (one fd per owner, not
 * per range).  create returns the userfaultfd or -errno as open does; add
 * registers [@vaddr, @vaddr + @len) (same needs as open) on @guard and
 * returns 0 or -errno.  A range stays guarded until it is unmapped or
 * @guard is closed.
 */
int be_hole_guard_create(void);
int be_hole_guard_add(int guard, void *vaddr, uint64_t len);

/*
 * be_hole_guard_probe: whether be_hole_guard_open() works in this process
 * (on one page of a scratch memfd).  Returns 0 or its -errno.
 */
int be_hole_guard_probe(void);

#endif /* DMASVC_HOLE_GUARD_H */
