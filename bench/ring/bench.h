/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what ring-bench's parts share: one implementation's workloads
 * (struct bench_impl), their results, and process/timing helpers.
 *
 * Vocabulary: "fwd" is the 32-byte SQE direction (parent -> child), "back"
 * the 16-byte CQE direction (child -> parent), the same two directions the
 * dmasvc ring has.  A "run" is one workload once, in a fresh ring, with a
 * fresh child process.
 */
#ifndef RING_BENCH_H
#define RING_BENCH_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_SLOTS 1024 /* ring slots in every direction, both implementations */

/* Round-trip latencies of one ping-pong run, nanoseconds. */
struct bench_lat {
	double p50, p99;
};

struct bench_impl {
	const char *name;
	/* 32-byte events fwd in bursts of @burst for @ms; returns 0 and events/s, or -errno */
	int (*throughput)(unsigned burst, uint64_t ms, double *per_s);
	/*
	 * Up to @iters round trips (1 SQE fwd, 1 CQE back), at most @ms long,
	 * after iters/100 + 1 warm-up ones; @sleep: idle sides sleep on eventfds.
	 */
	int (*pingpong)(bool sleep, unsigned iters, uint64_t ms, struct bench_lat *lat);
};

extern const struct bench_impl bench_ours;
extern const struct bench_impl bench_rte;

/* Cross-process start line and result slot, in MAP_SHARED memory. */
struct bench_sync {
	uint32_t ready; /* child: attached and waiting */
	uint32_t go;    /* parent: start now */
	uint64_t t_end; /* child: CLOCK_MONOTONIC ns when it finished (read after waitpid) */
	uint64_t count; /* child: events received (read after waitpid) */
	int err;        /* child: 0 or -errno */
};

struct bench_sync *bench_sync_new(void);
void bench_sync_free(struct bench_sync *s);
void bench_sync_child_ready_wait_go(struct bench_sync *s);
void bench_sync_parent_wait_ready_go(struct bench_sync *s);

/* pin the calling process to @cpu; 0 or -errno */
int bench_pin_self(int cpu);
/*
 * fork @fn(@arg) in a child that dies with the parent; if the parent is
 * pinned to one CPU the child runs on the next one.  Returns the pid or -errno.
 */
pid_t bench_spawn(int (*fn)(void *), void *arg);
/* wait for @pid; 0 if it exited 0, -ECHILD otherwise */
int bench_reap(pid_t pid);

uint64_t bench_now_ns(void);
/* sort @v (n values) and fill @lat with p50/p99 */
void bench_percentiles(uint64_t *v, unsigned n, struct bench_lat *lat);

/* map @fd (@size bytes) shared at a new address; the caller then drops its old mapping */
void *bench_map_elsewhere(int fd, size_t size);

/*
 * One round of a spin-wait: PAUSE, and every 4096 rounds a sched_yield() so
 * that on an overloaded machine a spinner does not burn its peer's slice
 * (on an idle machine the yield never comes into play).
 */
static inline void bench_cpu_relax(void)
{
	static __thread unsigned spins;

	__builtin_ia32_pause();
	if ((++spins & 4095) == 0)
		sched_yield();
}

#endif /* RING_BENCH_H */
