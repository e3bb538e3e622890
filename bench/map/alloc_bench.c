/* SPDX-License-Identifier: MIT */
/*
 * alloc_bench.c - alloc-bench: who allocates a populate, and what the pin
 * after it costs, on the software model's pin (be_soft_ops: io_uring
 * registered buffers, as the service pins), one thread, per populate size.
 *
 * Rows, each a populate of SIZE at a random SIZE-aligned offset of a
 * 256 MiB memfd that holds nothing there yet, undone after (unmap, punch):
 *   direct           the pin allocates (through the pinner's own mapping,
 *                    unguarded): the in-process method, and the floor
 *   advice + pin     MADV_POPULATE_WRITE through a second mapping (the
 *                    library's), then the pin through the guarded mapping
 *                    (the service's): libdmasvc before DMASVC_MEMORY_ADDED_FALLOC
 *   fallocate + pin  fallocate() on the fd, then the same pin: libdmasvc
 *                    where the service guards (the pin zeroes the pages)
 * The rows of one iteration run back to back in a rotating order; p50 and
 * p90 over the iterations, ratio = direct p50 / row p50 (> 1: faster).
 * Checked: each pin pins SIZE (the model's count) and the pages read zero.
 *
 * Usage: alloc-bench [ITERATIONS] (default 1000)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "dmasvc/hole_guard.h"
#include "dmasvc/soft_iommu.h"
#include "mb.h"

#define MEM (256 * MiB)

enum { ROW_DIRECT, ROW_ADVICE, ROW_FALLOC, NR_ROWS };
static const char *const row_name[NR_ROWS] = { "direct (pin allocates)", "advice + pin",
					       "fallocate + pin" };

struct ab {
	int fd;
	char *pin_map;    /* the pinner's own mapping, unguarded (direct) */
	char *vmm_map;    /* the library's mapping (the advice) */
	char *guard_map;  /* the service's mapping, guarded */
	struct be_ctx *ctx;
	struct be_space *sp;
};

/* One populate of row @row at @off; 0 or -errno.  Undone before it returns. */
static int one(struct ab *a, int row, uint64_t off, uint64_t size, uint64_t *ns)
{
	struct be_map_src src = { .fd = -1 };
	uint64_t t0 = mb_now_ns(), unmapped;
	int ret = 0;

	src.vaddr = (row == ROW_DIRECT ? a->pin_map : a->guard_map) + off;
	if (row == ROW_ADVICE && madvise(a->vmm_map + off, size, MADV_POPULATE_WRITE))
		ret = -errno;
	if (row == ROW_FALLOC && fallocate(a->fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)size))
		ret = -errno;
	if (!ret)
		ret = be_soft_ops.map(a->sp, off, size, &src, BE_PROT_READ | BE_PROT_WRITE);
	*ns = mb_now_ns() - t0;
	if (ret)
		return ret;
	if (((volatile char *)a->guard_map)[off + size - 1] != 0)
		ret = -EIO; /* a populated page reads zero */
	be_soft_ops.unmap(a->sp, off, size, &unmapped);
	if (!ret && unmapped != size)
		ret = -EIO;
	if (fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)size))
		ret = -errno;
	return ret;
}

static int ab_open(struct ab *a)
{
	struct be_config cfg = { .max_areas = 0 };
	int prot = PROT_READ | PROT_WRITE, guard, ret;

	a->fd = mb_memfd(MEM);
	if (a->fd < 0)
		return a->fd;
	a->pin_map = mmap(NULL, MEM, prot, MAP_SHARED | MAP_NORESERVE, a->fd, 0);
	a->vmm_map = mmap(NULL, MEM, prot, MAP_SHARED | MAP_NORESERVE, a->fd, 0);
	a->guard_map = mmap(NULL, MEM, prot, MAP_SHARED | MAP_NORESERVE, a->fd, 0);
	if (a->pin_map == MAP_FAILED || a->vmm_map == MAP_FAILED || a->guard_map == MAP_FAILED)
		return -errno;
	guard = be_hole_guard_create();
	if (guard < 0)
		return guard;
	ret = be_hole_guard_add(guard, a->guard_map, MEM); /* held open until exit */
	if (ret)
		return ret;
	ret = be_soft_ops.open(&cfg, &a->ctx);
	return ret ? ret : be_soft_ops.space_create(a->ctx, &a->sp);
}

int main(int argc, char **argv)
{
	static const uint64_t sizes[] = { 4096, 64 << 10, 256 << 10, 2 * MiB };
	unsigned int iters = argc > 1 ? (unsigned int)atoi(argv[1]) : 1000;
	double load[3] = { 0 };
	struct soft_iommu_pin_info pi;
	struct utsname u;
	struct ab a;
	int ret;

	if (!iters || iters > 100000) {
		fprintf(stderr, "usage: alloc-bench [ITERATIONS <= 100000]\n");
		return 2;
	}
	ret = ab_open(&a);
	if (ret) {
		fprintf(stderr, "alloc-bench: set-up failed: %s\n", strerror(-ret));
		return 1;
	}
	soft_iommu_pin_info(a.ctx, &pi);
	uname(&u);
	getloadavg(load, 3);
	printf("alloc-bench: who allocates a populate, then the model's pin (%s), one thread\n",
	       pi.mode == SOFT_PIN_MLOCK ? "mlock" : "io_uring registered buffers");
	printf("machine: %s %s, %ld cpus, load %.2f %.2f %.2f\ncommand: alloc-bench %u\n\n",
	       u.sysname, u.release, sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2], iters);
	printf("%-10s %-24s %10s %10s %8s\n", "size", "row", "p50 us", "p90 us", "ratio");
	srand(1);
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		uint64_t size = sizes[si], *ns[NR_ROWS], p50[NR_ROWS];
		char buf[32];

		for (int r = 0; r < NR_ROWS; r++) {
			ns[r] = calloc(iters, sizeof(uint64_t));
			if (!ns[r])
				return 1;
		}
		for (unsigned int i = 0; i < iters; i++) {
			uint64_t off = (uint64_t)rand() % (MEM / size) * size;

			for (int k = 0; k < NR_ROWS; k++) {
				int r = (int)((k + i) % NR_ROWS);

				ret = one(&a, r, off, size, &ns[r][i]);
				if (ret) {
					fprintf(stderr, "alloc-bench: %s of %llu bytes: %s\n", row_name[r],
						(unsigned long long)size, strerror(-ret));
					return 1;
				}
			}
		}
		for (int r = 0; r < NR_ROWS; r++) {
			uint64_t p90 = mb_percentile(ns[r], iters, 90);

			p50[r] = mb_percentile(ns[r], iters, 50);
			printf("%-10s %-24s %10.2f %10.2f %7.2fx\n", mb_fmt_size(buf, size), row_name[r],
			       (double)p50[r] / 1e3, (double)p90 / 1e3,
			       (double)p50[ROW_DIRECT] / (double)(p50[r] ? p50[r] : 1));
			free(ns[r]);
		}
	}
	return 0;
}
