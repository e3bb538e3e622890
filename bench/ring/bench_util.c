/* SPDX-License-Identifier: MIT */
/*
 * bench_util.c - process, start-line and statistics helpers for ring-bench.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dmasvc/ring_atomic.h>

#include "bench.h"

/* Contracts of the exported helpers: bench.h. */
struct bench_sync *bench_sync_new(void)
{
	void *p = mmap(NULL, sizeof(struct bench_sync), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void bench_sync_free(struct bench_sync *s)
{
	munmap(s, sizeof(*s));
}

void bench_spinner_init(struct bench_spinner *sp)
{
	cpu_set_t set;

	sp->rounds = 0;
	sp->yield = sched_getaffinity(0, sizeof(set), &set) < 0 || CPU_COUNT(&set) != 1;
}

void bench_sync_child_ready_wait_go(struct bench_sync *s)
{
	struct bench_spinner sp;

	bench_spinner_init(&sp);
	/* release/acquire: the child's attach happens before the parent starts */
	ring_store_release(&s->ready, 1);
	while (!ring_load_acquire(&s->go))
		bench_spin(&sp);
}

void bench_sync_parent_wait_ready_go(struct bench_sync *s)
{
	struct bench_spinner sp;

	bench_spinner_init(&sp);
	while (!ring_load_acquire(&s->ready))
		bench_spin(&sp);
	ring_store_release(&s->go, 1);
}

int bench_pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

/* A child of a process pinned to one CPU moves to the next online CPU. */
static void pin_child(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (n < 2 || sched_getaffinity(0, sizeof(set), &set) < 0 || CPU_COUNT(&set) != 1)
		return;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &set)) {
			bench_pin_self((int)((cpu + 1) % n));
			return;
		}
	}
}

pid_t bench_spawn(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0)
		return -errno;
	if (pid > 0)
		return pid;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(100);
	pin_child();
	_exit(fn(arg) ? 1 : 0);
}

int bench_reap(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* qsort order for uint64_t. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

double bench_window_rate(const struct bench_sync *s)
{
	uint64_t *d;
	double rate = 0;
	unsigned n = s->nwin < BENCH_MAX_WINDOWS ? s->nwin : BENCH_MAX_WINDOWS;

	if (n < 3)
		return 0;
	d = malloc((n - 1) * sizeof(*d));
	if (!d)
		return 0;
	for (unsigned i = 1; i < n; i++)
		d[i - 1] = s->win[i] - s->win[i - 1];
	qsort(d, n - 1, sizeof(*d), cmp_u64);
	if (d[(n - 1) / 2])
		rate = (double)(1u << BENCH_WINDOW_SHIFT) * 1e9 / (double)d[(n - 1) / 2];
	free(d);
	return rate;
}

void bench_percentiles(uint64_t *v, unsigned n, struct bench_lat *lat)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	lat->p50 = (double)v[n / 2];
	lat->p99 = (double)v[(uint64_t)n * 99 / 100];
}

void *bench_map_elsewhere(int fd, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}
