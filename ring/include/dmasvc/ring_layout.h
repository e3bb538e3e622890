/* SPDX-License-Identifier: MIT */
/*
 * ring_layout.h - the exact byte layout of one dmasvc ring memfd (wire ABI).
 *
 * One memfd holds a submission queue (SQ: client -> service, 32-byte SQEs)
 * and a completion queue (CQ: service -> client, 16-byte CQEs).  The service
 * creates, sizes, formats and seals it; the client maps it at any address.
 * Nothing here contains a pointer: every position is an offset from the start
 * of the mapping, so the two processes may map it at different addresses.
 *
 *   offset  size  what                            written by
 *   0x000   64    struct ring_hdr                 service, once, before sharing
 *   0x040   64    guard line
 *   0x080   512   struct ring_queue_shm sq        tail: client, head: service
 *   0x280   512   struct ring_queue_shm cq        tail: service, head: client
 *   0x480   32*S  struct dmasvc_sqe sqes[S]       client
 *   +32*S   16*C  struct dmasvc_cqe cqes[C]       service
 *   ...           zero padding up to a page multiple (ring_mem_size())
 *
 * S and C (sq_entries, cq_entries) are powers of two in
 * [RING_MIN_ENTRIES, RING_MAX_ENTRIES], agreed over the control socket.
 *
 * Inside struct ring_queue_shm every word sits alone on a 64-byte line and is
 * followed by an unused guard line, so each word owns an aligned 128-byte
 * pair: the adjacent-line prefetcher of x86 pulls lines in 128-byte pairs,
 * and without the guard the producer's tail and the consumer's head would
 * still bounce as one unit (false sharing).  The need-wakeup words get lines
 * of their own because they change rarely while the producer reads them after
 * every post: kept off the head/tail lines they stay cached.
 *
 * Indices (head, tail) run free over 0..2^32-1 and are masked with
 * (entries - 1) on access; unsigned subtraction modulo 2^32 makes the wrap
 * harmless: (tail - head) is the number of filled slots.  A ring may start at
 * any index (struct ring_params.first_index), which lets tests cross 2^32.
 *
 * Protocol rules each side may rely on (and must check, see ring.h):
 *   - head and tail never move backwards;
 *   - 0 <= tail - head <= entries, for both queues, at every instant;
 *   - an entry in [head, tail) is written before tail is released past it,
 *     and is not written again until head has been released past it.
 */
#ifndef DMASVC_RING_LAYOUT_H
#define DMASVC_RING_LAYOUT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define RING_CACHE_LINE 64u
#define RING_MAGIC 0x52534d44u   /* "DMSR" in little-endian memory */
#define RING_VERSION 1u
#define RING_MIN_ENTRIES 2u
#define RING_MAX_ENTRIES 65536u

/* struct dmasvc_sqe.opcode */
enum dmasvc_op {
	DMASVC_OP_NOP = 0,
	DMASVC_OP_POPULATE = 1,
	DMASVC_OP_DISCARD = 2,
	DMASVC_OP_MAX, /* sentinel: first invalid opcode; never reuse a number */
};

/*
 * Submission queue entry, client -> service.  The ring only moves copies of
 * it; the daemon validates every field after the copy.
 */
struct dmasvc_sqe {
	uint8_t opcode;      /* enum dmasvc_op */
	uint8_t flags;       /* DMASVC_SQE_*; other bits are -EINVAL */
	uint16_t __reserved; /* must be 0 */
	uint32_t region_id;
	uint64_t offset;     /* bytes from the region start */
	uint64_t length;     /* bytes */
	uint64_t user_data;  /* returned unchanged in the CQE */
};
static_assert(sizeof(struct dmasvc_sqe) == 32, "SQE is 32 bytes");
/* The client replays its state after a resume (docs/restart.md): the
 * event changes nothing in meaning; a map or unmap it makes is a repair,
 * logged and counted. */
#define DMASVC_SQE_REPLAY (1u << 0)
static_assert(offsetof(struct dmasvc_sqe, region_id) == 4, "SQE layout");
static_assert(offsetof(struct dmasvc_sqe, offset) == 8, "SQE layout");
static_assert(offsetof(struct dmasvc_sqe, length) == 16, "SQE layout");
static_assert(offsetof(struct dmasvc_sqe, user_data) == 24, "SQE layout");

/* Completion queue entry, service -> client. */
struct dmasvc_cqe {
	uint64_t user_data; /* the SQE's user_data */
	int32_t res;        /* 0 or -errno */
	uint32_t flags;     /* 0 for now */
};
static_assert(sizeof(struct dmasvc_cqe) == 16, "CQE is 16 bytes");
static_assert(offsetof(struct dmasvc_cqe, res) == 8, "CQE layout");
static_assert(offsetof(struct dmasvc_cqe, flags) == 12, "CQE layout");

/*
 * Header at offset 0.  Written once by the service (ring_format()) before
 * the fd is sent; afterwards nobody reads it on a hot path.  The receiving
 * side compares a private copy with the values agreed over the socket
 * (ring_attach()) and then uses only its own values.  A client may scribble
 * on it later: no side ever looks at it again.
 */
struct ring_hdr {
	uint32_t magic;       /* RING_MAGIC */
	uint32_t version;     /* RING_VERSION */
	uint32_t hdr_size;    /* RING_SQES_OFF: bytes before the SQE array */
	uint32_t flags;       /* must be 0 */
	uint32_t sq_entries;  /* S */
	uint32_t cq_entries;  /* C */
	uint32_t first_index; /* initial head and tail of both queues */
	uint32_t __reserved0; /* must be 0 */
	uint64_t size;        /* ring_mem_size(S, C): bytes of the memfd */
	uint64_t sqes_off;    /* RING_SQES_OFF */
	uint64_t cqes_off;    /* RING_SQES_OFF + 32 * S */
	uint64_t __reserved1; /* must be 0 */
};
static_assert(sizeof(struct ring_hdr) == RING_CACHE_LINE, "header is one line");

/* One shared 32-bit word alone on its cache line. */
struct ring_word_line {
	uint32_t value;
	uint32_t __pad[15];
} __attribute__((aligned(RING_CACHE_LINE)));
static_assert(sizeof(struct ring_word_line) == RING_CACHE_LINE, "one line");

/* ring_queue_shm.cons_wait / prod_wait: bit 0; other bits are ignored. */
#define RING_WAIT_SLEEPING 1u

/*
 * The shared indices of one queue.  For the SQ the producer is the client
 * and the consumer the service; for the CQ it is the other way round.
 */
struct ring_queue_shm {
	struct ring_word_line tail;      /* producer writes (release), consumer reads (acquire) */
	struct ring_word_line __guard0;
	struct ring_word_line head;      /* consumer writes (release), producer reads (acquire) */
	struct ring_word_line __guard1;
	struct ring_word_line cons_wait; /* consumer writes RING_WAIT_SLEEPING before it sleeps on
	                                    the producer's signal; the producer reads it after posting */
	struct ring_word_line __guard2;
	struct ring_word_line prod_wait; /* producer writes RING_WAIT_SLEEPING before it sleeps
	                                    waiting for space; the consumer reads it after draining */
	struct ring_word_line __guard3;
};
static_assert(sizeof(struct ring_queue_shm) == 8 * RING_CACHE_LINE, "queue block size");
static_assert(offsetof(struct ring_queue_shm, head) == 2 * RING_CACHE_LINE, "head/tail 128 B apart");
static_assert(offsetof(struct ring_queue_shm, cons_wait) == 4 * RING_CACHE_LINE, "own line pair");
static_assert(offsetof(struct ring_queue_shm, prod_wait) == 6 * RING_CACHE_LINE, "own line pair");

/* Everything before the entry arrays. */
struct ring_shm {
	struct ring_hdr hdr;
	struct ring_word_line __guard_hdr;
	struct ring_queue_shm sq;
	struct ring_queue_shm cq;
	/* struct dmasvc_sqe sqes[S] at RING_SQES_OFF, then struct dmasvc_cqe cqes[C] */
};
#define RING_SQES_OFF ((size_t)sizeof(struct ring_shm))
static_assert(offsetof(struct ring_shm, sq) == 0x080, "layout table above");
static_assert(offsetof(struct ring_shm, cq) == 0x280, "layout table above");
static_assert(sizeof(struct ring_shm) == 0x480, "layout table above");
static_assert(sizeof(struct ring_shm) % (2 * RING_CACHE_LINE) == 0, "SQE array on a line pair");
static_assert(RING_MIN_ENTRIES * sizeof(struct dmasvc_sqe) % RING_CACHE_LINE == 0,
	      "CQE array starts on a cache line for every allowed S");

#endif /* DMASVC_RING_LAYOUT_H */
