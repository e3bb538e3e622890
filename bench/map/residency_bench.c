/* SPDX-License-Identifier: MIT */
/*
 * residency_bench.c - residency-bench: what the service's residency check
 * (mem_find_hole, dmasvc/session/memory.c) costs, against what the VMM's
 * prefault (dmasvc_prefault: MADV_POPULATE_WRITE) and the service's own
 * fault-in cost for the same bytes.  One memfd of SIZE (default 512 MiB),
 * repetitions interleaved, medians and ranges printed.
 *
 * Rows (per MiB, microseconds):
 *   check resident   mem_find_hole over SIZE, every page in memory (the
 *                    normal case: the whole range is walked)
 *   check hole       mem_find_hole over SIZE of holes (stops at page 0)
 *   prefault         dmasvc_prefault of SIZE fresh pages (the VMM allocates)
 *   prefault again   dmasvc_prefault of SIZE already in memory
 * Checked: the check faults nothing in (mincore of the hole memfd after
 * every check: 0 pages).
 *
 * Usage: residency-bench [SIZE_MIB] [REPS]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "memory_priv.h"
#include "mb.h"

enum { ROW_RESIDENT, ROW_HOLE, ROW_PREFAULT, ROW_AGAIN, NR_ROWS };
static const char *const row_name[NR_ROWS] = { "check resident", "check hole", "prefault",
					       "prefault again" };

static int open_mem(uint64_t size, struct dsvc_memory *m)
{
	char err[256];
	int fd = mb_memfd(size), ret;

	if (fd < 0)
		return fd;
	ret = mem_open(m, fd, size, false, -1, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "residency-bench: %s\n", err);
		close(fd);
	}
	return ret;
}

int main(int argc, char **argv)
{
	uint64_t size = (argc > 1 ? strtoull(argv[1], NULL, 0) : 512) * MiB;
	unsigned int reps = argc > 2 ? (unsigned int)atoi(argv[2]) : 9;
	double us[NR_ROWS][64];
	struct utsname u;
	double load[3] = { 0 };

	if (!size || !reps || reps > 64) {
		fprintf(stderr, "usage: residency-bench [SIZE_MIB] [REPS <= 64]\n");
		return 2;
	}
	uname(&u);
	getloadavg(load, 3);
	printf("residency-bench: %s %s, %ld cpus, load %.2f %.2f %.2f, size %llu MiB, %u reps\n",
	       u.sysname, u.release, sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2],
	       (unsigned long long)(size / MiB), reps);
	for (unsigned int r = 0; r < reps; r++) {
		struct dsvc_memory full, hole;
		uint64_t at = 0, t0;
		unsigned char v;

		if (open_mem(size, &full) || open_mem(size, &hole))
			return 1;
		t0 = mb_now_ns();
		if (dmasvc_prefault(full.vaddr, size, true))
			return 1;
		us[ROW_PREFAULT][r] = (double)(mb_now_ns() - t0) / 1e3;
		t0 = mb_now_ns();
		if (dmasvc_prefault(full.vaddr, size, true))
			return 1;
		us[ROW_AGAIN][r] = (double)(mb_now_ns() - t0) / 1e3;
		t0 = mb_now_ns();
		if (mem_find_hole(&full, 0, size, &at) != 0) {
			fprintf(stderr, "residency-bench: a prefaulted page reads as a hole at 0x%llx\n",
				(unsigned long long)at);
			return 1;
		}
		us[ROW_RESIDENT][r] = (double)(mb_now_ns() - t0) / 1e3;
		t0 = mb_now_ns();
		if (mem_find_hole(&hole, 0, size, &at) != 1 || at != 0)
			return 1;
		us[ROW_HOLE][r] = (double)(mb_now_ns() - t0) / 1e3;
		for (uint64_t o = 0; o < size; o += 4096) {
			if (mincore((char *)hole.vaddr + o, 4096, &v) || (v & 1)) {
				fprintf(stderr, "residency-bench: the check faulted a page in\n");
				return 1;
			}
		}
		mem_close(&full);
		mem_close(&hole);
	}
	printf("%-16s %12s %24s %14s\n", "row", "us per MiB", "(min-max)", "total ms");
	for (int i = 0; i < NR_ROWS; i++) {
		double lo = us[i][0], hi = us[i][0], med;

		for (unsigned int r = 1; r < reps; r++) {
			lo = us[i][r] < lo ? us[i][r] : lo;
			hi = us[i][r] > hi ? us[i][r] : hi;
		}
		med = mb_median_d(us[i], reps);
		printf("%-16s %12.3f %11.3f-%-12.3f %14.3f\n", row_name[i], med / (double)(size / MiB),
		       lo / (double)(size / MiB), hi / (double)(size / MiB), med / 1e3);
	}
	return 0;
}
