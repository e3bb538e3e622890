/* SPDX-License-Identifier: MIT */
/*
 * test_memory.c - which fds the service accepts as guest memory, the one
 * MAP_SHARED mapping, and the guard over its holes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmasvc/hole_guard.h"
#include "dmasvc/soft_iommu.h"
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
	cr_assert_eq(mem_open(&m, fd, 2 * MB, false, -1, err, sizeof(err)), 0, "%s", err);
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

	cr_assert_eq(mem_open(&m, fd, MB, true, -1, err, sizeof(err)), 0, "%s", err);
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
	cr_expect_eq(mem_open(&m, fd, 64 * MB, false, -1, err, sizeof(err)), 0,
		     "64 MiB of hugetlbfs mapped whatever the pool holds: %s", err);
	cr_expect(m.hugetlb);
	mem_close(&m);
}


/* The pages the memfd holds, as the kernel counts them (st_blocks, 512 B units). */
static long long file_blocks(int fd)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	return (long long)st.st_blocks;
}

/*
 * The guard (dmasvc/hole_guard.h, be_hole_guard_add): a pin through the service's
 * mapping over a page the memfd does not hold fails and allocates nothing
 * (st_blocks, the kernel's count of the file's pages, does not move): the
 * model's pin (io_uring registered buffer, -EFAULT; mlock, -ENOMEM) and
 * MADV_POPULATE_WRITE (the kernel's GUP fault, -EFAULT).  A page the VMM
 * wrote through its own mapping pins; one it punched out after it had been
 * in memory is refused as well (the pin decides, not an earlier check).
 * Without the guard the same pin allocates the hole (the negative control:
 * what the service's mincore() check had to prevent).
 */
Test(memory, the_guard_makes_a_pin_over_a_hole_fail_and_allocate_nothing)
{
	int fd = make_memfd(4 * MB, F_SEAL_SHRINK), fd2;
	struct dsvc_memory m = { .fd = -1 }, bare = { .fd = -1 };
	struct soft_iommu_pin_info pi;
	struct be_config cfg = { .max_areas = 0 };
	struct be_ctx *ctx;
	struct be_space *sp;
	struct be_map_src src = { .fd = -1 };
	uint64_t unmapped;
	char err[256];
	char *vmm;
	int ret, guard = be_hole_guard_create();

	cr_assert_geq(guard, 0, "be_hole_guard_create: %d", guard);
	cr_assert_geq(fd, 0);
	fd2 = dup(fd);
	cr_assert_geq(fd2, 0);
	cr_assert_eq(mem_open(&m, fd, 4 * MB, false, guard, err, sizeof(err)), 0, "%s", err);
	cr_assert(m.guarded, "a read-write memfd is guarded");
	cr_assert_eq(be_soft_ops.open(&cfg, &ctx), 0);
	cr_assert_eq(be_soft_ops.space_create(ctx, &sp), 0);
	soft_iommu_pin_info(ctx, &pi);
	vmm = mmap(NULL, 4 * MB, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
	cr_assert_neq(vmm, MAP_FAILED);

	src.vaddr = m.vaddr;
	ret = be_soft_ops.map(sp, 0, MB, &src, BE_PROT_READ | BE_PROT_WRITE);
	cr_expect_eq(ret, pi.mode == SOFT_PIN_MLOCK ? -ENOMEM : -EFAULT, "pin over holes: %d", ret);
	cr_expect_eq(madvise(m.vaddr, MB, MADV_POPULATE_WRITE), -1);
	cr_expect_eq(errno, EFAULT);
	cr_expect_eq(file_blocks(fd2), 0, "nothing allocated");

	memset(vmm, 1, MB); /* the VMM faults its memory in */
	cr_expect_eq(be_soft_ops.map(sp, 0, MB, &src, BE_PROT_READ | BE_PROT_WRITE), 0);
	cr_expect_eq(be_soft_ops.unmap(sp, 0, MB, &unmapped), 0);

	cr_assert_eq(fallocate(fd2, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 4096), 0);
	cr_expect_eq(file_blocks(fd2), (long long)(MB - 4096) / 512);
	ret = be_soft_ops.map(sp, 0, MB, &src, BE_PROT_READ | BE_PROT_WRITE);
	cr_expect_eq(ret, pi.mode == SOFT_PIN_MLOCK ? -ENOMEM : -EFAULT, "a punched page: %d", ret);
	cr_expect_eq(file_blocks(fd2), (long long)(MB - 4096) / 512, "the punched page stays out");

	/* the negative control: the same memfd, a mapping without the guard */
	cr_assert_eq(mem_open(&bare, dup(fd2), 4 * MB, false, -1, err, sizeof(err)), 0, "%s", err);
	cr_expect(!bare.guarded);
	src.vaddr = (char *)bare.vaddr + 2 * MB;
	cr_expect_eq(be_soft_ops.map(sp, 2 * MB, MB, &src, BE_PROT_READ | BE_PROT_WRITE), 0);
	cr_expect_eq(file_blocks(fd2), (long long)(2 * MB - 4096) / 512, "unguarded, the pin allocates");
	cr_expect_eq(be_soft_ops.unmap(sp, 2 * MB, MB, &unmapped), 0);

	be_soft_ops.space_destroy(sp);
	be_soft_ops.close(ctx);
	munmap(vmm, 4 * MB);
	mem_close(&bare);
	mem_close(&m);
	close(guard);
	close(fd2);
}

/*
 * A read-only memory, and one opened without a guard, are not guarded
 * (mincore() checks them); one userfaultfd guards several memories, and a
 * memory costs no fd beyond its own (the guard's fd is its owner's).
 */
Test(memory, one_guard_for_many_memories_none_for_read_only_ones)
{
	int fd = make_memfd(MB, F_SEAL_SHRINK), guard = be_hole_guard_create(), before;
	struct dsvc_memory m = { .fd = -1 }, m2 = { .fd = -1 };
	char err[256];

	cr_assert_geq(fd, 0);
	cr_assert_geq(guard, 0);
	cr_assert_eq(mem_open(&m, dup(fd), MB, true, guard, err, sizeof(err)), 0, "%s", err);
	cr_expect(!m.guarded, "a read-only memory is not guarded");
	mem_close(&m);
	cr_assert_eq(mem_open(&m, dup(fd), MB, false, -1, err, sizeof(err)), 0, "%s", err);
	cr_expect(!m.guarded);
	mem_close(&m);
	before = count_open_fds();
	cr_assert_eq(mem_open(&m, dup(fd), MB, false, guard, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mem_open(&m2, dup(fd), MB, false, guard, err, sizeof(err)), 0, "%s", err);
	cr_expect(m.guarded && m2.guarded, "one guard, two memories");
	cr_expect_eq(count_open_fds(), before + 2, "each memory holds its own fd and no other");
	cr_expect_eq(madvise(m2.vaddr, 4096, MADV_POPULATE_WRITE), -1, "the second is guarded too");
	cr_expect_eq(errno, EFAULT);
	mem_close(&m2);
	mem_close(&m);
	close(guard);
	close(fd);
	cr_expect_eq(be_hole_guard_probe(), 0, "userfaultfd (UFFD_USER_MODE_ONLY) works here");
}

/*
 * mem_find_hole() agrees with the pin (DMASVC_MEMORY_ADDED_FALLOC): on a
 * guarded memory a page the VMM only fallocate()d counts as in memory, is
 * zeroed by the check, and the first real hole is found exactly (the
 * bisection) with nothing allocated there; without the guard, mincore()
 * calls the same fallocate()d page a hole (the negative control: why the
 * flag is given for guarded memories only).
 */
Test(memory, a_guarded_memory_counts_fallocated_pages_in_and_finds_the_first_hole)
{
	int fd = make_memfd(4 * MB, F_SEAL_SHRINK), guard = be_hole_guard_create();
	struct dsvc_memory m = { .fd = -1 }, bare = { .fd = -1 };
	uint64_t hole = 0;
	char err[256];

	cr_assert_geq(fd, 0);
	cr_assert_geq(guard, 0);
	cr_assert_eq(mem_open(&m, dup(fd), 4 * MB, false, guard, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mem_open(&bare, dup(fd), 4 * MB, false, -1, err, sizeof(err)), 0, "%s", err);
	cr_assert(m.guarded && !bare.guarded);
	/* pages [0, 100) allocated, but page 77; page 90 written with data */
	cr_assert_eq(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 77 * 4096), 0);
	cr_assert_eq(fallocate(fd, FALLOC_FL_KEEP_SIZE, 78 * 4096, 22 * 4096), 0);
	cr_assert_eq(pwrite(fd, "data", 4, 90 * 4096), 4);
	cr_expect_eq(file_blocks(fd), 99 * 4096 / 512);

	cr_expect_eq(mem_find_hole(&bare, 0, 4096, &hole), 1, "mincore: a fallocate()d page is a hole");
	cr_expect_eq(mem_find_hole(&m, 0, 77 * 4096, &hole), 0, "the guard: it is in memory");
	cr_expect_eq(((volatile char *)m.vaddr)[4096 * 5], 0, "zeroed");
	cr_expect_eq(mem_find_hole(&m, 78 * 4096, 22 * 4096, &hole), 0);
	cr_expect_eq(memcmp((char *)m.vaddr + 90 * 4096, "data", 4), 0, "written data stays");
	hole = 0;
	cr_expect_eq(mem_find_hole(&m, 0, 100 * 4096, &hole), 1);
	cr_expect_eq(hole, 77 * 4096, "the first hole: %llu", (unsigned long long)hole);
	hole = 0;
	cr_expect_eq(mem_find_hole(&m, 4096, 4 * MB - 4096, &hole), 1);
	cr_expect_eq(hole, 77 * 4096, "the first hole of a longer range: %llu",
		     (unsigned long long)hole);
	hole = 0;
	cr_expect_eq(mem_find_hole(&m, 78 * 4096, 4 * MB - 78 * 4096, &hole), 1);
	cr_expect_eq(hole, 100 * 4096, "after the allocated pages: %llu", (unsigned long long)hole);
	cr_expect_eq(file_blocks(fd), 99 * 4096 / 512, "the checks allocated nothing");
	mem_close(&bare);
	mem_close(&m);
	close(guard);
	close(fd);
}
