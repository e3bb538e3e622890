/* SPDX-License-Identifier: MIT */
/*
 * prefill_priv.h - do not include directly; private to the backends.
 *
 * Filling the pinning process's page tables before a pin that goes through
 * its virtual addresses (the model's io_uring registration, IOMMU_IOAS_MAP
 * of a vaddr, VFIO_IOMMU_MAP_DMA).  Under the residency rule the VMM has
 * faulted guest memory in through its own mapping: the pages are in the
 * memfd's page cache but not in the service's page tables, and the pin's
 * FOLL_WRITE walk takes one write fault per 4 KiB page.  A read fault maps
 * up to the kernel's fault_around_bytes (64 KiB by default) of cached
 * neighbours at once, writable in a shared mapping of shmem (its
 * vm_page_prot needs no write notification), so one MADV_POPULATE_READ
 * pass over the range leaves the pin nothing to fault.  Measured on the
 * model: 105-137 ms per GiB of pin faults against 54-75 ms of this plus
 * 14-28 ms of pin (bench/RESULTS.md, "plug: where the ring path's time
 * goes").  IOMMU_IOAS_MAP_FILE pins from the file and needs none of it.
 */
#ifndef DMASVC_PREFILL_PRIV_H
#define DMASVC_PREFILL_PRIV_H

#include <stdint.h>

/* Below this, too few neighbours to win back the system call (a 4 KiB pin). */
#define PREFILL_MIN_BYTES (64u << 10)

/*
 * prefill_page_tables - map the resident pages of [@vaddr, @vaddr +
 * @length) (page aligned, in this process) into its page tables with read
 * faults.  Does nothing below PREFILL_MIN_BYTES, or when the range's first
 * page is not in memory: over absent pages a read fault allocates one page
 * as the pin's write fault would, and the pass would only add to it.  It
 * never allocates more than the pin that follows would.  Never fails: the
 * pin reports what is wrong with the range.
 */
void prefill_page_tables(void *vaddr, uint64_t length);

#endif
