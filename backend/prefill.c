/* SPDX-License-Identifier: MIT */
/*
 * prefill.c - the pinning process's page tables filled before a pin (see
 * prefill_priv.h for why and the contract).
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>

#include "prefill_priv.h"

#ifndef MADV_POPULATE_READ /* Linux 5.14 uapi; older libc headers lack it (EINVAL on older kernels) */
#define MADV_POPULATE_READ 22
#endif

/* Whether mincore() reports the page at @vaddr in memory; false when it cannot tell. */
static bool first_page_present(void *vaddr)
{
	unsigned char v = 0;

	return mincore(vaddr, 1, &v) == 0 && (v & 1);
}

void prefill_page_tables(void *vaddr, uint64_t length)
{
	if (length >= PREFILL_MIN_BYTES && first_page_present(vaddr))
		(void)madvise(vaddr, (size_t)length, MADV_POPULATE_READ);
}
