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
	/*
	 * 32-byte events fwd in bursts of @burst for @ms; returns 0 and
	 * events/s over the whole run (@whole) and the median window rate
	 * (@window, see BENCH_WINDOW_SHIFT), or -errno.
	 */
	int (*throughput)(unsigned burst, uint64_t ms, double *whole, double *window);
	/*
	 * Up to @iters round trips (1 SQE fwd, 1 CQE back), at most @ms long,
	 * after iters/100 + 1 warm-up ones; @sleep: idle sides sleep on eventfds.
	 */
	int (*pingpong)(bool sleep, unsigned iters, uint64_t ms, struct bench_lat *lat);
};

extern const struct bench_impl bench_ours;
extern const struct bench_impl bench_rte;

/*
 * Throughput is measured in windows of BENCH_WINDOW events: the consumer
 * stamps the time at each window boundary, and a run's rate is the median
 * window rate.  On a loaded machine a window in which either process was
 * preempted is an outlier that the median ignores.
 */
#define BENCH_WINDOW_SHIFT 12 /* 4096 events: 4 rings full, so a catch-up drain is at most 1/4 of one */
#define BENCH_MAX_WINDOWS (1u << 18)

/* Cross-process start line and result slot, in MAP_SHARED memory. */
struct bench_sync {
	uint32_t ready; /* child: attached and waiting */
	uint32_t go;    /* parent: start now */
	uint64_t t_end; /* child: CLOCK_MONOTONIC ns when it finished (read after waitpid) */
	uint64_t count; /* child: events received (read after waitpid) */
	int err;        /* child: 0 or -errno */
	uint32_t nwin;  /* child: window stamps taken */
	uint64_t win[BENCH_MAX_WINDOWS]; /* child: time at each window boundary */
};

/* median events/s over the windows in @s; 0 if fewer than 3 stamps */
double bench_window_rate(const struct bench_sync *s);

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
 * A spin-wait: PAUSE each round; a process that may run on more than one
 * CPU (--no-pin) also yields every 4096 rounds, so that two spinners sharing
 * a CPU do not burn each other's slices.  Pinned processes never yield: on
 * a loaded machine a yield gives away a whole time slice.
 */
struct bench_spinner {
	unsigned rounds;
	bool yield;
};

void bench_spinner_init(struct bench_spinner *sp);

static inline void bench_spin(struct bench_spinner *sp)
{
	__builtin_ia32_pause();
	if (sp->yield && (++sp->rounds & 4095) == 0)
		sched_yield();
}

#endif /* RING_BENCH_H */
