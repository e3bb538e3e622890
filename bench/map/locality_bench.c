/* SPDX-License-Identifier: MIT */
/*
 * locality_bench.c - locality-bench: what an unplug's unmap (the unpin of
 * its pages) costs on the software model (be_soft_ops in this process,
 * io_uring registered buffers: the kernel's long-term pin) depending on
 * which CPUs touched the pages before.  The in-process method (map-bench
 * "direct") allocates, pins and unpins on one thread; the service's pins
 * run on its own threads and the VMM allocates on its own (the residency
 * rule), so an unplug over the ring unpins pages that other CPUs touched.
 * This measures that cost alone, without the ring.
 *
 * Placements (A and B: the first two CPUs this process may run on; the
 * thread moves between them outside the timed calls):
 *   in-process     the map's pin allocates on A; unmap on A (direct)
 *   service        a VMM process faults in on A (dmasvc_prefault on its
 *                  mapping, kept until the end); map on B through this
 *                  process's own mapping; unmap on B (the ring: VMM and
 *                  service in their processes, on their CPUs)
 *   one cpu        the same with the VMM on B too
 *   moved pin      the map's pin allocates on A; unmap on B
 *   moved unmap    fault-in on A, map on B, unmap on A
 * SIZE (default 1 GiB) is mapped at GRANULE (default 2 MiB, one map each)
 * and unmapped in 128 MiB calls (one unplug note each), as map-bench's plug
 * scenario does.  Rows: unmap ms per GiB, median (min-max) over REPS
 * (default 7), placements interleaved; ratio = the in-process row's time
 * over the row's, paired within each repetition (> 1: faster).
 *
 * Usage: locality-bench [SIZE_MIB] [GRANULE_KIB] [REPS]
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "mb.h"

#define NOTE_BYTES (128 * MiB)
#define MAX_REPS 64

struct placement {
	const char *name;
	int fault_cpu; /* 0: A, 1: B, -1: no fault-in (the pin allocates) */
	int map_cpu;
	int unmap_cpu;
};

static const struct placement rows[] = {
	{ "in-process", -1, 0, 0 },
	{ "service", 0, 1, 1 },
	{ "one cpu", 1, 1, 1 },
	{ "moved pin", -1, 0, 1 },
	{ "moved unmap", 0, 1, 0 },
};
#define NR_ROWS (sizeof(rows) / sizeof(rows[0]))

/* Run the calling thread on @cpu only; 0 or -errno. */
static int run_on(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return sched_setaffinity(0, sizeof(s), &s) ? -errno : 0;
}

/*
 * vmm_fault_in - fault [@map, @map + @size) in from a child process (the
 * VMM) running on @cpu, and keep that process (its mapping, its page
 * tables) until *@hold is closed; *@pid is then to be waited for.
 * Returns 0, or -errno (no child left behind).
 */
static int vmm_fault_in(char *map, uint64_t size, int cpu, pid_t *pid, int *hold)
{
	int done[2], stay[2];
	char c = 1;
	pid_t p;

	if (pipe(done))
		return -errno;
	if (pipe(stay)) {
		int err = -errno;

		close(done[0]);
		close(done[1]);
		return err;
	}
	p = fork();
	if (p == 0) {
		close(done[0]);
		close(stay[1]);
		if (run_on(cpu) || dmasvc_prefault(map, (size_t)size, true))
			_exit(1);
		if (write(done[1], &c, 1) != 1)
			_exit(1);
		(void)read(stay[0], &c, 1); /* until the parent closes its end */
		_exit(0);
	}
	close(done[1]);
	close(stay[0]);
	if (p < 0 || read(done[0], &c, 1) != 1) {
		int err = p < 0 ? -errno : -EIO;

		close(done[0]);
		close(stay[1]);
		if (p > 0)
			waitpid(p, NULL, 0);
		return err;
	}
	close(done[0]);
	*pid = p;
	*hold = stay[1];
	return 0;
}

/*
 * One repetition of @pl over a fresh memfd of @size: returns the unmap time
 * in ns (> 0), or -errno with *@what naming the step that failed.
 */
static int64_t run_placement(const struct placement *pl, const int cpu[2], uint64_t size,
			     uint64_t granule, const char **what)
{
	struct mb_env env = { .backend = MB_SOFT };
	const uint64_t iova = 1ull << 32;
	char *vmm = MAP_FAILED, *svc = MAP_FAILED;
	struct mb_space sp;
	int64_t ret;
	uint64_t t0, unmapped;
	int fd, vmm_hold = -1;
	pid_t vmm_pid = -1;

	*what = "memfd";
	fd = mb_memfd(size);
	if (fd < 0)
		return fd;
	*what = "mmap";
	svc = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (pl->fault_cpu >= 0)
		vmm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (svc == MAP_FAILED || (pl->fault_cpu >= 0 && vmm == MAP_FAILED)) {
		ret = -errno;
		goto out_unmap;
	}
	/* The VMM first: forked before the backend opens, it holds no ring of ours. */
	if (pl->fault_cpu >= 0) {
		*what = "fault-in";
		ret = vmm_fault_in(vmm, size, cpu[pl->fault_cpu], &vmm_pid, &vmm_hold);
		if (ret)
			goto out_unmap;
	}
	*what = "backend open";
	ret = mb_space_open(&env, &sp);
	if (ret)
		goto out_vmm;
	*what = "map";
	ret = run_on(cpu[pl->map_cpu]);
	for (uint64_t off = 0; off < size && !ret; off += granule) {
		struct be_map_src src = { .vaddr = svc + off, .fd = fd, .fd_offset = off };

		ret = sp.ops->map(sp.space, iova + off, granule, &src,
				  BE_PROT_READ | BE_PROT_WRITE);
	}
	if (ret)
		goto out_space;
	*what = "unmap";
	ret = run_on(cpu[pl->unmap_cpu]);
	if (ret)
		goto out_space;
	t0 = mb_now_ns();
	for (uint64_t off = 0; off < size && !ret; off += NOTE_BYTES)
		ret = sp.ops->unmap(sp.space, iova + off,
				    size - off < NOTE_BYTES ? size - off : NOTE_BYTES, &unmapped);
	if (!ret)
		ret = (int64_t)(mb_now_ns() - t0);
out_space:
	mb_space_close(&sp); /* unmaps whatever is left */
out_vmm:
	if (vmm_pid > 0) {
		close(vmm_hold); /* the VMM exits */
		waitpid(vmm_pid, NULL, 0);
	}
out_unmap:
	if (vmm != MAP_FAILED)
		munmap(vmm, size);
	if (svc != MAP_FAILED)
		munmap(svc, size);
	close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	uint64_t size = (argc > 1 ? strtoull(argv[1], NULL, 0) : 1024) * MiB;
	uint64_t granule = (argc > 2 ? strtoull(argv[2], NULL, 0) : 2048) * KiB;
	unsigned int reps = argc > 3 ? (unsigned int)atoi(argv[3]) : 7;
	double ms[NR_ROWS][MAX_REPS], ratio[NR_ROWS][MAX_REPS];
	double load[3] = { 0 };
	int cpu[2], n = 0;
	struct utsname u;
	cpu_set_t allowed;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: locality-bench [SIZE_MIB] [GRANULE_KIB] [REPS]\n\n"
		       "Maps SIZE_MIB (default 1024, a multiple of 128) of a memfd at GRANULE_KIB\n"
		       "(default 2048) with the software model in this process and times its\n"
		       "unmap in 128 MiB calls, by where the pages were faulted in (a VMM child\n"
		       "process, or the pin itself), pinned and unpinned: CPU A or B, the first\n"
		       "two this process may run on.  REPS (default 7, at most %d) repetitions,\n"
		       "placements interleaved; ms per GiB, median (min-max), and the in-process\n"
		       "placement's time over each row's (> 1: faster).  Needs two CPUs.\n",
		       MAX_REPS);
		return 0;
	}
	if (!size || !granule || size % NOTE_BYTES || NOTE_BYTES % granule ||
	    granule % (4 * KiB) || !reps || reps > MAX_REPS) {
		fprintf(stderr, "usage: locality-bench [SIZE_MIB: a multiple of 128] "
				"[GRANULE_KIB: 4 KiB pages dividing 128 MiB] [REPS <= %d]\n",
			MAX_REPS);
		return 2;
	}
	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		return perror("locality-bench: sched_getaffinity"), 1;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &allowed))
			cpu[n++] = c;
	if (n < 2) {
		fprintf(stderr, "locality-bench: needs two CPUs to run on (has %d)\n", n);
		return 1;
	}
	uname(&u);
	getloadavg(load, 3);
	printf("locality-bench: %s %s, %ld cpus, load %.2f %.2f %.2f\n", u.sysname, u.release,
	       sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
	printf("command: locality-bench %llu %llu %u (A = cpu %d, B = cpu %d; model pins: %s)\n",
	       (unsigned long long)(size / MiB), (unsigned long long)(granule / KiB), reps,
	       cpu[0], cpu[1], mb_soft_pin() == SOFT_PIN_MLOCK ? "mlock" : "io_uring");
	for (unsigned int r = 0; r < reps; r++) {
		for (size_t k = 0; k < NR_ROWS; k++) {
			size_t i = (k + r) % NR_ROWS; /* rotate the order each repetition */
			const char *what = "";
			int64_t ns = run_placement(&rows[i], cpu, size, granule, &what);

			if (ns < 0) {
				fprintf(stderr, "locality-bench: %s, %s: %s\n", rows[i].name, what,
					strerror((int)-ns));
				return 1;
			}
			ms[i][r] = (double)ns / 1e6 / ((double)size / (double)GiB);
		}
		for (size_t i = 0; i < NR_ROWS; i++)
			ratio[i][r] = ms[0][r] / ms[i][r];
	}
	printf("%-12s %-6s %-6s %-6s %12s %17s %7s\n", "placement", "fault", "map", "unmap",
	       "ms per GiB", "(min-max)", "ratio");
	for (size_t i = 0; i < NR_ROWS; i++) {
		double lo = ms[i][0], hi = ms[i][0];
		static const char *const where[] = { "A", "B" };

		for (unsigned int r = 1; r < reps; r++) {
			lo = ms[i][r] < lo ? ms[i][r] : lo;
			hi = ms[i][r] > hi ? ms[i][r] : hi;
		}
		printf("%-12s %-6s %-6s %-6s %12.2f %8.2f-%-8.2f %7.2f\n", rows[i].name,
		       rows[i].fault_cpu < 0 ? "(pin)" : where[rows[i].fault_cpu],
		       where[rows[i].map_cpu], where[rows[i].unmap_cpu], mb_median_d(ms[i], reps), lo,
		       hi, mb_median_d(ratio[i], reps));
	}
	return 0;
}
