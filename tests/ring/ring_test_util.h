/* SPDX-License-Identifier: MIT */
/*
 * ring_test_util.h - helpers shared by the ring suite: guarded mappings,
 * child processes with a deadline, a small PRNG, and the SQE/CQE patterns
 * the two-process tests check.
 *
 * Vocabulary: "guarded" mapping = the ring memfd mapped between two
 * PROT_NONE pages, so any access outside the ring faults at once.
 * Children report through their exit status (0 = pass) and stderr; they
 * never call Criterion asserts.
 */
#ifndef RING_TEST_UTIL_H
#define RING_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <dmasvc/ring.h>

/* xorshift64*: deterministic per seed, good enough for burst sizes and noise. */
struct t_rng {
	uint64_t s;
};

static inline uint64_t t_rng_next(struct t_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545F4914F6CDD1DULL;
}

/* Uniform-ish in [lo, hi]. */
static inline uint32_t t_rng_range(struct t_rng *r, uint32_t lo, uint32_t hi)
{
	return lo + (uint32_t)(t_rng_next(r) % ((uint64_t)hi - lo + 1));
}

/* Burst size in [1, max]: often 1, often max, otherwise uniform. */
uint32_t t_burst(struct t_rng *r, uint32_t max);

/* The SQE / CQE that carries sequence number @seq (every field derived from it). */
void t_sqe_fill(struct dmasvc_sqe *sqe, uint64_t seq);
bool t_sqe_check(const struct dmasvc_sqe *sqe, uint64_t seq);
void t_cqe_fill(struct dmasvc_cqe *cqe, uint64_t seq);
bool t_cqe_check(const struct dmasvc_cqe *cqe, uint64_t seq);

/*
 * t_map_guarded: map @memfd (@size bytes) read/write, shared, with a
 * PROT_NONE page right before and right after.  Returns the ring address
 * or NULL; t_unmap_guarded() undoes it.
 */
void *t_map_guarded(int memfd, size_t size);
void t_unmap_guarded(void *ring, size_t size);

/*
 * t_map_elsewhere: map @memfd again at a new address, different from @avoid
 * (which stays mapped until the caller unmaps it).  Returns NULL on failure.
 */
void *t_map_elsewhere(int memfd, size_t size, const void *avoid);

/* An anonymous MAP_SHARED area for test bookkeeping across fork(). */
void *t_shared_alloc(size_t size);
void t_shared_free(void *p, size_t size);

/*
 * t_spawn: fork a child that runs @fn(@arg) and _exit()s with its return
 * value; the child dies with SIGKILL if the test process dies.  Returns the
 * pid or -errno.
 */
pid_t t_spawn(int (*fn)(void *), void *arg);

/*
 * t_reap: wait up to @timeout_s for @pid; kill it if it is still running.
 * Returns its exit status (0..255), 128 + signal if it was killed by one,
 * or -ETIMEDOUT.
 */
int t_reap(pid_t pid, int timeout_s);

/* Monotonic time in nanoseconds. */
uint64_t t_now_ns(void);

/* A short pause for spin loops (x86 PAUSE, or a compiler barrier elsewhere). */
static inline void t_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

#endif /* RING_TEST_UTIL_H */
