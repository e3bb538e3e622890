/* SPDX-License-Identifier: MIT */
/*
 * test_memory.c - which fds the service accepts as guest memory, and the
 * one MAP_SHARED mapping.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memory_priv.h"
#include "unit_util.h"

#define MB (1ull << 20)

static int check(int fd, uint64_t size, bool ro)
{
	uint64_t ps;
	bool huge;
	char err[256];

	return mem_check_fd(fd, size, ro, &ps, &huge, NULL, err, sizeof(err));
}

Test(memory, sealed_memfd_ok_and_mapped_shared)
{
	int fd = make_memfd(4 * MB, F_SEAL_SHRINK);
	struct dsvc_memory m = { .fd = -1 };
	char err[256];
	int before;

	cr_assert_geq(fd, 0);
	before = count_open_fds();
	cr_assert_eq(mem_open(&m, fd, 2 * MB, false, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(m.size, 2 * MB, "maps the declared size, not the file size");
	cr_expect_eq(m.page_size, 4096);
	cr_expect(!m.hugetlb);
	/* MAP_SHARED: a write through the fd is visible in the mapping */
	cr_assert_eq(pwrite(fd, "abc", 3, 4096), 3);
	cr_expect_eq(memcmp((char *)m.vaddr + 4096, "abc", 3), 0);
	mem_close(&m);
	cr_expect_eq(count_open_fds(), before - 1, "mem_close closes the fd");
}

Test(memory, refusals)
{
	int unsealed = make_memfd(MB, 0);
	int sealed = make_memfd(MB, F_SEAL_SHRINK | F_SEAL_GROW);
	int pipefd[2];
	char path[] = "/tmp/dmasvc-unit-XXXXXX";
	int plain = mkstemp(path);
	int ro;

	cr_assert_geq(unsealed, 0);
	cr_assert_geq(sealed, 0);
	cr_assert_geq(plain, 0);
	unlink(path);
	cr_assert_eq(ftruncate(plain, MB), 0);
	cr_expect_eq(check(unsealed, MB, false), -EPERM, "memfd without F_SEAL_SHRINK");
	cr_expect_eq(check(sealed, 2 * MB, false), -ERANGE, "file shorter than size");
	cr_expect_eq(check(sealed, 4096 + 100, false), -EINVAL, "size not a page multiple");
	cr_expect_eq(check(sealed, MB, false), 0);
	cr_expect_eq(check(plain, MB, false), -EINVAL, "an ordinary file is no memfd");
	cr_assert_eq(pipe(pipefd), 0);
	cr_expect_eq(check(pipefd[0], 4096, false), -EINVAL, "a pipe");
	/* a read-only fd of the same memfd: READONLY only */
	{
		char p[64];

		snprintf(p, sizeof(p), "/proc/self/fd/%d", sealed);
		ro = open(p, O_RDONLY | O_CLOEXEC);
	}
	cr_assert_geq(ro, 0);
	cr_expect_eq(check(ro, MB, false), -EACCES);
	cr_expect_eq(check(ro, MB, true), 0);
	close(ro);
	close(pipefd[0]);
	close(pipefd[1]);
	close(plain);
	close(sealed);
	close(unsealed);
}

Test(memory, readonly_mapping_is_read_only)
{
	int fd = make_memfd(MB, F_SEAL_SHRINK);
	struct dsvc_memory m = { .fd = -1 };
	char err[256];
	unsigned char vec;

	cr_assert_eq(mem_open(&m, fd, MB, true, err, sizeof(err)), 0, "%s", err);
	cr_expect(m.readonly);
	/* the service never touched a page: nothing is resident */
	cr_expect_eq(mincore(m.vaddr, 4096, &vec), 0);
	cr_expect_eq(vec & 1, 0);
	mem_close(&m);
}

Test(memory, hugetlbfs_memfd_needs_no_seal_but_huge_page_multiples)
{
	int fd = memfd_create("unit-huge", MFD_CLOEXEC | MFD_HUGETLB);
	uint64_t ps;
	bool huge;
	char err[256];

	if (fd < 0) {
		cr_log_warn("no hugetlbfs memfd on this kernel (%d): check not exercised", errno);
		return;
	}
	cr_assert_eq(ftruncate(fd, 4 * MB), 0);
	cr_expect_eq(mem_check_fd(fd, 4 * MB, false, &ps, &huge, NULL, err, sizeof(err)), 0, "%s", err);
	cr_expect(huge);
	cr_expect_geq(ps, 2 * MB, "the huge page size, from fstatfs");
	cr_expect_eq(mem_check_fd(fd, 4096, false, &ps, &huge, NULL, err, sizeof(err)), -EINVAL,
		     "size must be a multiple of the huge page size");
	cr_expect(strstr(err, "page size"), "%s", err);
	close(fd);
}

/*
 * A hugetlbfs memory is mapped without reserving its pages: with no huge
 * page in the pool (or QEMU's reserve=off), registering it must still work;
 * only populated pages are ever pinned.
 */
Test(memory, hugetlbfs_mapping_reserves_nothing)
{
	int fd = memfd_create("unit-huge-nores", MFD_CLOEXEC | MFD_HUGETLB);
	struct dsvc_memory m = { .fd = -1 };
	char err[256];

	if (fd < 0) {
		cr_log_warn("no hugetlbfs memfd on this kernel (%d): check not exercised", errno);
		return;
	}
	cr_assert_eq(ftruncate(fd, 64 * MB), 0);
	cr_expect_eq(mem_open(&m, fd, 64 * MB, false, err, sizeof(err)), 0,
		     "64 MiB of hugetlbfs mapped whatever the pool holds: %s", err);
	cr_expect(m.hugetlb);
	mem_close(&m);
}

