/* SPDX-License-Identifier: MIT */
/*
 * ring_atomic.h - the only place in the ring (ring/) that spells a memory
 * order.
 *
 * Every access to a ring index or flag word in shared memory goes through
 * one of these five helpers; no other file in ring/ uses __atomic,
 * <stdatomic.h> or volatile.  (This claim covers ring/ only; other parts of
 * dmasvc may use the helpers for their own words, or atomics of their own.)
 * They map onto the GCC/Clang __atomic builtins, which operate on plain
 * (non-_Atomic) objects, so the shared layout stays plain uint32_t.
 *
 * Vocabulary (as in the Linux kernel's memory-barriers.txt):
 *   READ_ONCE / WRITE_ONCE  one untorn access the compiler may not merge,
 *                           repeat or invent; no ordering (relaxed).
 *   acquire                 no later load or store moves before this load.
 *   release                 no earlier load or store moves after this store.
 *   full barrier (smp_mb)   no store before it is reordered with a load after
 *                           it: needed for the store-then-load ("Dekker")
 *                           pattern of the need-wakeup flags, which acquire
 *                           and release alone do not order.
 *
 * Callers name the pairing at each use site (labels A0/R0, A1/R1, M0..M3,
 * defined in ring.h; the use sites are in ring_core_pvt.h and ring_wait.c).
 */
#ifndef DMASVC_RING_ATOMIC_H
#define DMASVC_RING_ATOMIC_H

#include <stdint.h>

/* Relaxed load of a word another process may write at any time. */
static inline uint32_t ring_read_once(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Relaxed store of a word another process may read at any time. */
static inline void ring_write_once(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Load that orders every later access after it (pairs with a release). */
static inline uint32_t ring_load_acquire(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Store that orders every earlier access before it (pairs with an acquire). */
static inline void ring_store_release(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Full barrier: orders earlier stores before later loads (and everything else). */
static inline void ring_smp_mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

#endif /* DMASVC_RING_ATOMIC_H */
