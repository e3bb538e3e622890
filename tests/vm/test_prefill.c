// SPDX-License-Identifier: MIT
/*
 * test_prefill.c - host-side unit tests of prefill_page_tables() (the
 * backends' page-table fill before a pin through a vaddr, prefill_priv.h):
 * what the kernel's page tables say after it (/proc/self/pagemap's present
 * bit, this thread's minor faults from getrusage), and that it allocates nothing
 * over memory the VMM has not faulted in (the memfd's st_blocks).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prefill_priv.h"

#define PG 4096ull
#define SIZE (1ull << 20)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static int fd = -1;
static char *vmm, *svc; /* the VMM's mapping and the pinning process's, of one memfd */

static void setup(void)
{
	fd = memfd_create("test-prefill", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, SIZE), 0);
	vmm = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	svc = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(vmm, MAP_FAILED);
	cr_assert_neq(svc, MAP_FAILED);
}

static void teardown(void)
{
	munmap(vmm, SIZE);
	munmap(svc, SIZE);
	close(fd);
}

TestSuite(prefill, .init = setup, .fini = teardown);

/* Pages of [@p, @p + @len) with a present PTE in this process (pagemap bit 63). */
static uint64_t present_ptes(const char *p, uint64_t len)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t n = 0;

	cr_assert_geq(pm, 0);
	for (uint64_t off = 0; off < len; off += PG) {
		uint64_t e = 0;
		off_t at = (off_t)((uintptr_t)(p + off) / PG * sizeof(e));

		cr_assert_eq(pread(pm, &e, sizeof(e), at), (ssize_t)sizeof(e));
		n += e >> 63;
	}
	close(pm);
	return n;
}

static long minor_faults(void)
{
	struct rusage u;

	cr_assert_eq(getrusage(RUSAGE_THREAD, &u), 0); /* this thread's faults only */
	return u.ru_minflt;
}

/*
 * Write one byte per page of [@p, @p + @len).  Not instrumented: under
 * AddressSanitizer each store would first read its shadow, whose own page
 * faults would count.
 */
__attribute__((noinline, no_sanitize_address)) static void touch_pages(char *p, uint64_t len)
{
	for (uint64_t off = 0; off < len; off += PG)
		((volatile char *)p)[off] = 1;
}

Test(prefill, resident_memory_is_mapped_writable_in_one_pass)
{
	long before;

	cr_assert_eq(madvise(vmm, SIZE, MADV_POPULATE_WRITE), 0, "errno %d", errno);
	cr_assert_eq(present_ptes(svc, SIZE), 0);
	prefill_page_tables(svc, SIZE);
	cr_assert_eq(present_ptes(svc, SIZE), SIZE / PG);
	/* Writable too: writing every page (what the pin's FOLL_WRITE walk
	 * needs) takes no fault. */
	before = minor_faults();
	touch_pages(svc, SIZE);
	cr_assert_eq(minor_faults() - before, 0);
}

Test(prefill, allocates_nothing_where_the_vmm_did_not_fault_in)
{
	struct stat st;

	prefill_page_tables(svc, SIZE);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_blocks, 0, "%lld blocks allocated", (long long)st.st_blocks);
	cr_assert_eq(present_ptes(svc, SIZE), 0);
}

Test(prefill, leaves_a_small_range_to_the_pin)
{
	cr_assert_eq(madvise(vmm, SIZE, MADV_POPULATE_WRITE), 0);
	prefill_page_tables(svc, PREFILL_MIN_BYTES - PG);
	cr_assert_eq(present_ptes(svc, SIZE), 0);
	prefill_page_tables(svc, PREFILL_MIN_BYTES);
	cr_assert_geq(present_ptes(svc, PREFILL_MIN_BYTES), PREFILL_MIN_BYTES / PG);
}
