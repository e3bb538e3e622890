/* SPDX-License-Identifier: MIT */
/*
 * libdmasvc_priv.h - libdmasvc internal objects.  Do not include directly from
 * outside clients/libdmasvc.
 *
 * Vocabulary:
 *   local id    the memory / region id the caller sees: an index into the
 *               client's tables, stable across dmasvc_reconnect();
 *   svc id      the id the current service instance gave it (may change on
 *               reconnect);
 *   seq         a queue's event sequence number, sent as the SQE user_data
 *               (the caller's user_data stays in the slot);
 *   apply       updating a region bitmap from a completion; done strictly in
 *               submission order per queue, because the service applies one
 *               SQ's events in order but may complete them out of order.
 *
 * Lock order: ctl_lock -> queue lock (default queue only) -> state_lock.
 */
#ifndef DMASVC_LIBDMASVC_PRIV_H
#define DMASVC_LIBDMASVC_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"
#include "bitmap_priv.h"
#include "ring_priv.h"

#define CL_MAX_REPLY_FDS 4

struct cl_memory {
	bool live;            /* slot in use (local id = index) */
	int fd;               /* our dup of the caller's fd, for replay; owned */
	uint32_t svc_id;      /* valid while the session that added it lives */
	uint32_t flags;
	uint64_t size;
	void *map;            /* DMASVC_PREFAULT_LIBRARY: our MAP_SHARED mapping of
				 [0, size) to fault populates in through; else NULL */
	uint64_t page;        /* with map: the memory's page size (huge for hugetlbfs) */
	bool falloc;          /* the service's MEMORY_ADD reply said DMASVC_MEMORY_ADDED_FALLOC
				 (set at every send: a replay may change it) */
};

/*
 * struct cl_pf - where and how a region's populates are faulted in
 * (prefault.c): a copy per region, per pending batch run and per
 * pipelined populate.
 */
struct cl_pf {
	char *map;            /* the region's start in its memory's map, or NULL
				 (caller mode: nothing is faulted in) */
	int fd;               /* the memory's fd (ours) when pages are allocated
				 with fallocate() (cl_pf_range), else -1 */
	uint64_t fd_off;      /* the region's offset in that memory */
	bool write;           /* MADV_POPULATE_WRITE (else READ) */
	uint64_t page;        /* the memory's page size, with map */
};

struct cl_region {
	bool live;
	uint32_t svc_id;
	struct dmasvc_region_desc desc; /* desc.mem_id is a local memory id */
	struct cl_bitmap populated;     /* guarded by client.state_lock */
	struct cl_pf pf;                /* guarded by client.state_lock once live
					   (cl_region_pf_set: add, replay) */
};

/* Slot of one event posted on a queue; slot index = seq & slot_mask. */
enum cl_slot_state { SLOT_FREE = 0, SLOT_INFLIGHT, SLOT_COMPLETE };
enum cl_slot_kind {
	SLOT_ASYNC = 0,  /* completion goes to the ready FIFO for dmasvc_reap */
	SLOT_SYNC,       /* a blocking call waits for it */
	SLOT_ORPHAN,     /* blocking call timed out: nobody reports it */
	SLOT_REPLAY,     /* posted by dmasvc_reconnect: failure goes to replay_err */
};

struct cl_slot {
	uint64_t seq;
	uint8_t state;        /* enum cl_slot_state */
	uint8_t kind;         /* enum cl_slot_kind */
	uint8_t op;           /* DMASVC_OP_POPULATE / DISCARD */
	uint32_t region;      /* local region id */
	uint64_t first, count;/* granule bits */
	uint64_t user_data;   /* the caller's */
	int32_t res;
};

/*
 * A queue: one ring from RING_SETUP plus the event bookkeeping.
 * Default queue: every field below lock is guarded by lock.  Private queue:
 * used by one thread only, lock not taken (dmasvc_reconnect requires the
 * owning threads to be quiescent).
 */
struct dmasvc_queue {
	struct dmasvc_client *c;
	bool shared;                 /* the default queue: take lock */
	pthread_mutex_t lock;
	struct dmasvc_queue *next;   /* client's list, under ctl_lock */

	uint32_t sq_entries, cq_entries;
	struct cl_ring ring;         /* mapping, roles, eventfds */
	bool armed;                  /* dmasvc_queue_arm() set the CQ wait flag */
	bool batch;                  /* dmasvc_queue_batch_begin(): stage, publish at the end */
	bool dead;                   /* service gone or ring corrupt */
	int dead_err;                /* -ENOTCONN or -EPROTO */

	uint32_t nslots;             /* power of two = cq_entries */
	struct cl_slot *slots;
	uint64_t submit_seq;         /* next seq to post */
	uint64_t apply_seq;          /* oldest seq not yet applied */

	struct dmasvc_completion *ready; /* FIFO of nslots entries */
	uint32_t ready_head, ready_count;
	int replay_err;              /* first failure of a SLOT_REPLAY event */
	int prefault_err;            /* the last populate refused by its prefault, or 0 */
	int64_t spin_us;             /* queue_wait's spin window (queue.c spin_adapt) */
	struct cl_pf pf;             /* batch: staged populates not yet faulted in, one */
	uint64_t pf_off;             /* contiguous run [pf_off, pf_off + pf_len) of one */
	size_t pf_len;               /* region's memory (queue.c) */
};

struct dmasvc_client {
	pthread_mutex_t ctl_lock;    /* sock, msg ids, last_error, tables' shape, queue list */
	int sock;                    /* -1 when not connected */
	uint32_t next_msg_id;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* "": dmasvc_connect_fd() */
	int given_fd;                /* dmasvc_connect_fd()'s socket until its HELLO, else -1 */
	struct dmasvc_connect_opts opts; /* defaults filled in */
	struct dmasvc_hello_reply hello;  /* the last HELLO's reply (a minor < 2 service's: zero tail) */
	uint8_t token[DMASVC_TOKEN_LEN]; /* from the last HELLO reply: resumes the session
					    after a service restart; all-zero: not resumable */
	bool resumed;                /* the last session open resumed the previous session */
	bool query_only;             /* dmasvc_connect_query_only(): HELLO, no queue */
	enum dmasvc_prefault_mode prefault; /* under ctl_lock; fixed once a memory exists */
	unsigned prefault_threads;   /* dmasvc_set_prefault_threads(); 0 = default; atomic */
	char last_error[DMASVC_TEXT_MAX];
	char service_error[DMASVC_TEXT_MAX]; /* error reply text of the last request, or "" */

	pthread_mutex_t state_lock;  /* regions[i]->populated and ->live */
	struct cl_memory *mems;      /* under ctl_lock */
	uint32_t nmems;
	struct cl_region **regions;  /* pointers stay valid until disconnect */
	uint32_t nregions;

	struct dmasvc_queue *queues; /* all queues incl. the default one */
	struct dmasvc_queue *defq;
};

/* ---- wire.c: one request / one reply over the control socket ---------- */

struct cl_reply {
	struct dmasvc_msg_hdr hdr;
	uint8_t buf[DMASVC_MSG_MAX]; /* the body after the header */
	uint32_t body_len;
	int fds[CL_MAX_REPLY_FDS];   /* received fds, owned by the reply */
	unsigned nfds;
};

/*
 * cl_call: send request @cmd with @body (and @nfds fds) and wait for its
 * reply into @r (caller holds ctl_lock).  On return 0, r->hdr.error is the
 * service's errno (0 = success; then the body holds at least @reply_struct
 * bytes); on an error reply last_error and service_error hold the service's
 * text (service_error is "" otherwise).  The reply's fds must be
 * taken or closed with cl_reply_close_fds().  Returns 0 or -errno for a
 * transport failure (-ENOTCONN peer gone, -ETIMEDOUT, -EPROTO malformed).
 */
int cl_call(struct dmasvc_client *c, uint16_t cmd, const void *body, uint32_t len,
	    const int *fds, unsigned nfds, struct cl_reply *r, uint32_t reply_struct);

/*
 * cl_local_error: a call of @c failed before anything was sent: make
 * dmasvc_last_error() say so (@what and @err) and clear the service's
 * text, so neither reports an earlier failure.  Takes ctl_lock (must not
 * be held).  Returns @err.
 */
int cl_local_error(struct dmasvc_client *c, const char *what, int err);

/*
 * cl_event_error: an event call of @c failed (not a control request): set
 * dmasvc_last_error() from @fmt, leave the service's text alone.  Takes
 * ctl_lock (must not be held).
 */
__attribute__((format(printf, 2, 3)))
void cl_event_error(struct dmasvc_client *c, const char *fmt, ...);

/* cl_call_timed: cl_call waiting up to @timeout_ms (< 0: forever) instead of
 * the connection's timeout, for calls known to take long. */
int cl_call_timed(struct dmasvc_client *c, int timeout_ms, uint16_t cmd, const void *body,
		  uint32_t len, const int *fds, unsigned nfds, struct cl_reply *r,
		  uint32_t reply_struct);

/* cl_call_simple: cl_call, close any fds, copy up to @out_len reply bytes;
 * returns 0 or -errno (transport or the service's error). */
int cl_call_simple(struct dmasvc_client *c, uint16_t cmd, const void *body, uint32_t len,
		   const int *fds, unsigned nfds, void *out, uint32_t out_len);

/* cl_call_simple_timed: cl_call_simple with cl_call_timed's @timeout_ms. */
int cl_call_simple_timed(struct dmasvc_client *c, int timeout_ms, uint16_t cmd, const void *body,
			 uint32_t len, const int *fds, unsigned nfds, void *out, uint32_t out_len);

void cl_reply_close_fds(struct cl_reply *r);

/*
 * cl_socket_connect: a connected, non-blocking SOCK_SEQPACKET socket to
 * @path, or -errno (-EAGAIN when the service's listen backlog is full: it
 * is not accepting).  Never blocks.
 */
int cl_socket_connect(const char *path);

/* ---- client.c ------------------------------------------------------------- */

/* cl_session_open: connect c->path (or take c->given_fd once) and HELLO;
 * sets c->sock, c->hello, c->token and c->resumed.  @resume with a token:
 * HELLO RESUME first; refused (-ESTALE: a plain HELLO on the same
 * connection; else a new connection) it opens a fresh session.
 * -ENOTCONN for an fd-made client's reconnect.  ctl_lock held. */
int cl_session_open(struct dmasvc_client *c, bool resume);

/*
 * cl_socket_adopt: check that @fd is a connected AF_UNIX SOCK_SEQPACKET
 * socket and make it non-blocking and close-on-exec, as cl_socket_connect's
 * are.  Consumes @fd: returns it, or closes it and returns -errno (-EBADF
 * not an fd, -ENOTSOCK, -EPROTOTYPE wrong family or type, -ENOTCONN).
 */
int cl_socket_adopt(int fd);

/* cl_memory_send / cl_region_send: (re-)register one entry with the
 * current service and record its svc id.  ctl_lock held; 0 or -errno. */
int cl_memory_send(struct dmasvc_client *c, struct cl_memory *m);
int cl_region_send(struct dmasvc_client *c, struct cl_region *r);

/* ---- prefault.c ---------------------------------------------------------- */

/*
 * cl_memory_map: in DMASVC_PREFAULT_LIBRARY mode map @m (m->fd, m->size,
 * m->flags set) MAP_SHARED | MAP_NORESERVE into m->map, touching nothing;
 * in caller mode set m->map = NULL.  ctl_lock held.  Returns 0 or -errno
 * (mmap's).
 */
int cl_memory_map(struct dmasvc_client *c, struct cl_memory *m);

/* cl_memory_unmap: undo cl_memory_map (NULL map: nothing).  Never fails. */
void cl_memory_unmap(struct cl_memory *m);

/*
 * cl_region_pf_set: set @r's prefault source from its memory (ctl_lock
 * held; takes state_lock).  Never fails.
 */
void cl_region_pf_set(struct dmasvc_client *c, struct cl_region *r);

/*
 * cl_pf_range: fault [@off, @off + @len) of a region in (@off relative to
 * the region) before its populate is posted: the VM allocates its memory
 * (prefault.c).  With pf->fd the pages are allocated with fallocate()
 * (charged to the caller like a fault, no page tables filled, the service's
 * pin zeroes them; where fallocate() is refused, e.g. by a seccomp filter,
 * MADV_POPULATE_WRITE instead); otherwise dmasvc_prefault() on the
 * library's mapping.  Needs pf->map.  0 or -errno.
 */
int cl_pf_range(const struct cl_pf *pf, uint64_t off, size_t len);

/* cl_region_get: live region @id or NULL; state_lock held.  Inline: the
 * submit path (queue.c) looks regions up without a call into client.c. */
static inline struct cl_region *cl_region_get(struct dmasvc_client *c, uint32_t id)
{
	if (id >= c->nregions || !c->regions[id] || !c->regions[id]->live)
		return NULL;
	return c->regions[id];
}

/* ---- queue.c -------------------------------------------------------------- */

/* cl_queue_setup: allocate @q's slots for @sq_entries and RING_SETUP it;
 * ctl_lock held.  On error the queue holds nothing. */
int cl_queue_setup(struct dmasvc_client *c, struct dmasvc_queue *q, uint32_t sq_entries);

/* cl_queue_teardown: unmap the ring, close its fds (never fails). */
void cl_queue_teardown(struct dmasvc_queue *q);

/* cl_queue_fail_inflight: every in-flight event completes with @err (not
 * applied).  Used when the service went away; queue lock held if shared. */
void cl_queue_fail_inflight(struct dmasvc_queue *q, int err);

/* cl_queue_lock / unlock: take the queue lock if the queue is shared. */
void cl_queue_lock(struct dmasvc_queue *q);
void cl_queue_unlock(struct dmasvc_queue *q);

/* cl_queue_wait_idle: wait (queue lock held) until every event is applied;
 * 0, -ETIMEDOUT or the queue's dead error. */
int cl_queue_wait_idle(struct dmasvc_queue *q, int timeout_ms);

/* cl_queue_ring_setup: RING_SETUP for @q's current sizes and attach the
 * returned ring (ctl_lock held; the old ring, if any, already torn down). */
int cl_queue_ring_setup(struct dmasvc_client *c, struct dmasvc_queue *q);

/* cl_submit_locked: post one event of @kind; queue lock held; a populate is
 * faulted in first (library mode) when @prefault_it.  Returns the seq (>= 0)
 * or -errno (-EAGAIN full, -EINVAL/-ERANGE bad range, -ENOTCONN, the
 * prefault's error, also left in q->prefault_err). */
int64_t cl_submit_locked(struct dmasvc_queue *q, uint8_t op, uint32_t region, uint64_t offset,
			 uint64_t length, uint64_t user_data, uint8_t kind, bool prefault_it);

/* cl_queue_wait_applied: wait (queue lock held) until event @seq was applied;
 * 0, -ETIMEDOUT, or the queue's dead error. */
int cl_queue_wait_applied(struct dmasvc_queue *q, uint64_t seq, int timeout_ms);

/* cl_queue_inflight: events posted and not yet applied (queue lock held). */
uint64_t cl_queue_inflight(const struct dmasvc_queue *q);

/* cl_queue_wait_room: wait (queue lock held) until fewer events are in
 * flight than now; 0, -EAGAIN when none is (nothing to wait for),
 * -ETIMEDOUT, or the queue's dead error. */
int cl_queue_wait_room(struct dmasvc_queue *q, int timeout_ms);

/*
 * cl_queue_drop_prefault: forget @q's pending fault-in run (a batch's staged
 * populates) if it lies in [@map, @map + @size), a memory about to be
 * unmapped and closed (dmasvc_memory_remove); the staged populate still
 * reaches the service, which answers it (its region is gone).  Takes @q's
 * lock (ctl_lock may be held: that order).
 */
void cl_queue_drop_prefault(struct dmasvc_queue *q, const void *map, uint64_t size);

/* cl_queue_orphan: events [@from, @to) not yet applied lose their waiter
 * (a timed-out blocking call): applied when they complete, reported nowhere. */
void cl_queue_orphan(struct dmasvc_queue *q, uint64_t from, uint64_t to);

/* ---- pipeline.c ----------------------------------------------------------- */

/*
 * cl_populate_pipelined: a blocking populate of @region [@offset, +@length)
 * faulted in and posted in pieces (pipeline.c says when and how); default
 * queue's lock held.  Returns 1 when it does not apply (the caller posts one
 * event), else the populate's result: 0, or -errno with the range as before
 * the call (*@prefault_failed: the error is the fault-in's), -ETIMEDOUT as a
 * blocking event's.
 */
int cl_populate_pipelined(struct dmasvc_queue *q, uint32_t region, uint64_t offset,
			  uint64_t length, bool *prefault_failed);

/* ---- replay.c ------------------------------------------------------------- */
int cl_replay(struct dmasvc_client *c);

/* Milliseconds from now on CLOCK_MONOTONIC, for deadlines. */
int64_t cl_now_ms(void);
int64_t cl_now_us(void);

#endif /* DMASVC_LIBDMASVC_PRIV_H */
