/* SPDX-License-Identifier: MIT */
/*
 * session_priv.h - the daemon object, sessions and what they own.
 * Do not include from outside dmasvc/.
 *
 * Ownership (each object owned by exactly the one above it):
 *   struct dsvc            the service: backend, worker pool, sessions
 *     struct dsvc_session  one connected client: socket, space, budget
 *       dsvc_memory        guest-memory fds, mapped once (memory_priv.h)
 *       dsvc_region        a window of a memory + its granule state
 *       dsvc_ring          one SQ/CQ ring and its two eventfds
 *       devices            backend device handles
 *
 * Ids.  Memory and region ids are (generation << ID_SLOT_BITS) | slot with a
 * generation >= 1, so an id is never 0, a removed id is not reused at once,
 * and lookup is one array index plus a compare.  Ring ids are the slot.
 * Session ids count up from 1 and are never reused while the service runs.
 *
 * Threading: every field here belongs to the event-loop thread, with one
 * exception: while a session is busy (see struct dsvc_session), its
 * executor thread owns s->burst and the regions that burst names, and the
 * loop does not touch them.  The hand-over is a mutex in each direction
 * (burst_exec.c).  Worker threads only see map jobs (granule/plan.h) and
 * the backend space, which backend.h allows to be mapped concurrently.
 *
 * Caps (per session; -EMFILE for counts, -ENOSPC for in-flight entries and
 * the area budget): SESSION_MAX_MEMORIES, SESSION_MAX_REGIONS,
 * DMASVC_MAX_RINGS, SESSION_MAX_INFLIGHT SQ entries summed over the rings,
 * SESSION_MAX_DEVICES.  With these, a session's service memory is bounded
 * (rings: at most SESSION_MAX_INFLIGHT SQEs; region state: granule/'s lazy
 * bitmap, one bit per granule at most).
 */
#ifndef DMASVC_SESSION_PRIV_H
#define DMASVC_SESSION_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "dmasvc/backend.h"
#include "dmasvc/budget.h"
#include "dmasvc/granule.h"
#include "dmasvc/plan.h"
#include "dmasvc/proto.h"
#include "dmasvc/ring.h"

#include "exec_pool_priv.h"
#include "log_priv.h"
#include "memory_priv.h"
#include "options_priv.h"
#include "stats_priv.h"

#define ID_SLOT_BITS 12
#define SESSION_MAX_MEMORIES 256
#define SESSION_MAX_REGIONS 1024
#define SESSION_MAX_DEVICES 16
#define SESSION_MAX_INFLIGHT 16384u /* SQ entries over all rings of a session */
#define DSVC_MAX_SESSIONS 256
#define RING_BURST 128              /* SQEs drained per burst (one plan) */

static_assert(SESSION_MAX_REGIONS <= (1u << ID_SLOT_BITS), "slot bits");
static_assert(SESSION_MAX_MEMORIES <= (1u << ID_SLOT_BITS), "slot bits");

struct dsvc_region {
	uint32_t id;
	uint32_t flags;            /* DMASVC_REGION_* */
	struct dsvc_memory *mem;   /* users counts this region */
	struct gran_region *gr;    /* granule state; owns the budget reservation */
};

/*
 * One ring.  The service's roles keep private copies of sizes and indices
 * (ring.h); nothing here is read back from the shared mapping.
 */
struct dsvc_ring {
	uint32_t id;
	struct ring_mapping map;
	struct ring_sq_consumer sq;
	struct ring_cq_producer cq;
	int doorbell;              /* we poll it; the client writes it */
	int completion;            /* we write it; the client polls it */
	uint32_t sq_entries;
	/* CQEs the CQ had no room for yet, posted before any new drain. */
	struct dmasvc_cqe backlog[RING_BURST];
	unsigned int nr_backlog;
	bool cq_waiting;           /* cq wait flag set: the client's drain rings our doorbell */
	bool doorbell_armed;       /* a multishot poll on doorbell is live */
};

/*
 * One drained burst on its way from an SQ to the CQ (ring_service.c).  Built
 * and finished on the event-loop thread; executed there or, for big bursts,
 * on the session's executor thread (burst_exec.c) while the session is busy.
 */
struct dsvc_burst {
	struct dsvc_ring *rg;                /* the ring it came from */
	unsigned int n;                      /* SQEs drained */
	size_t nev;                          /* valid events among them */
	uint64_t t0;                         /* drain time: latency starts here */
	uint64_t bytes, granules;            /* work the events name (upper bound) */
	struct dmasvc_cqe cqes[RING_BURST];  /* one per SQE, in SQE order */
	struct gran_event ev[RING_BURST];
	uint32_t region_ids[RING_BURST];     /* per event, for log lines */
	unsigned int ev_sqe[RING_BURST];     /* event index -> SQE index */
	/* Results, written by whoever executes it: */
	int32_t res[RING_BURST];             /* per event */
	int err;                             /* plan build/execute error, or 0 */
	struct gran_exec_stats st;
	bool map_failed;
	struct gran_map_job first_fail;      /* the first failed map job */
};

struct bx_thread;
struct bx_queue;

struct dsvc_session {
	uint32_t id;
	int fd;                    /* the control socket */
	struct ucred cred;         /* SO_PEERCRED at accept */
	bool admin;                /* uid on the allow-list: may query all sessions */
	bool hello_done;
	bool ctl_pending;          /* requests left unread after a full turn (evloop.c) */
	uint64_t client_tag;
	uint16_t minor;
	struct be_space *space;    /* see devices[] below for when it is NULL */
	struct gran_budget budget;
	uint64_t max_areas;
	uint32_t mem_gen, region_gen;
	struct dsvc_memory *mems[SESSION_MAX_MEMORIES];
	struct dsvc_region *regions[SESSION_MAX_REGIONS];
	struct dsvc_ring *rings[DMASVC_MAX_RINGS];
	/* NULL only while d->lazy_space and before the first REGION_ADD or
	 * DEVICE_ATTACH (session_space_get); set once, destroyed with the session. */
	uint32_t devices[SESSION_MAX_DEVICES];
	bool device_used[SESSION_MAX_DEVICES];
	bool device_cfg[SESSION_MAX_DEVICES]; /* an operator --device: clients cannot detach it */
	unsigned int nr_mems, nr_regions, nr_rings, nr_devices;
	unsigned int ring_hi;      /* slots [ring_hi, DMASVC_MAX_RINGS) are empty */
	uint32_t inflight;         /* SQ entries over all rings */
	struct dsvc_counters ctr;
	struct lat_window lat;
	/* Warning lines this session may still cause this second (refilled by
	 * the stats timer); past it, its request errors log at debug only, so
	 * a hostile client cannot flood the log. */
	unsigned int log_budget;
	/*
	 * busy: s->burst is being executed by s->exec.  While busy, the loop
	 * touches none of the session's regions, rings or control socket: it
	 * defers them (ctl_pending, doorbells re-checked after the finish)
	 * and waits for the burst (rsv_quiesce) before anything that must see
	 * or change the session's state.  broken: the finish found a ring
	 * protocol error; the loop closes the session.
	 */
	bool busy;
	bool broken;
	struct bx_thread *exec;    /* created on the first big burst, joined at destroy */
	struct dsvc_burst burst;
	uint64_t cached_areas;     /* areas/mapped bytes as of the last finish or region op, */
	uint64_t cached_mapped;    /* for the stats timer while the session is busy */
};

#define SESSION_LOG_BUDGET 20 /* warning lines per session per second */

/* The service.  Lock order: none (one thread owns all of it). */
struct dsvc {
	const struct dsvc_options *opt;
	const struct dlog *log;
	const struct be_ops *ops;
	struct be_ctx *be;
	struct exec_pool *pool;
	uint64_t start_ns;
	uint32_t next_session_id;
	unsigned int nr_sessions;
	unsigned int session_hi;     /* slots [session_hi, DSVC_MAX_SESSIONS) are empty */
	struct dsvc_session *sessions[DSVC_MAX_SESSIONS];
	struct dsvc_counters gone;   /* counters of sessions already freed */
	struct lat_window lat;       /* all sessions */
	bool stopping;
	struct bx_queue *bx;         /* finished async bursts; NULL: every burst runs inline */
	uint64_t async_bytes;        /* bursts naming at least this many bytes (or
					BX_ASYNC_GRANULES granules) run on the session's executor */
	/*
	 * lazy_space: a session gets its space at its first REGION_ADD or
	 * DEVICE_ATTACH, not at connect (type1: one container per service, so
	 * a query-only connection such as dmasvcctl must not take it); set by
	 * main() before the loop, with lazy_max_areas = the budget a space
	 * will have (reported in HELLO before the space exists).
	 */
	bool lazy_space;
	uint64_t lazy_max_areas;
	uint32_t cfg_dev_owner;      /* session holding the --device devices; 0 = none */
};

#define BX_ASYNC_BYTES (16ull << 20)
#define BX_ASYNC_GRANULES 256

/* dsvc_now_ns: CLOCK_MONOTONIC in ns. */
uint64_t dsvc_now_ns(void);

/*
 * session_create: a new session for connected socket @fd (ownership moves
 * to the session) with peer credentials @cred.  Creates its space (with
 * d->lazy_space only its budget: session_space_get() creates the space).
 * Returns 0 and *@out (registered in @d), or -errno (fd left open).
 */
int session_create(struct dsvc *d, int fd, const struct ucred *cred, bool admin,
		   struct dsvc_session **out);

/*
 * session_destroy: unmap every mapping of @s (coalesced, per region), free
 * rings, memories, devices and the space, close the socket and drop it from
 * @d.  Never fails; anything the backend still holds is logged as a bug.
 */
void session_destroy(struct dsvc *d, struct dsvc_session *s);

/* session_find: the live session with @id, or NULL. */
struct dsvc_session *session_find(struct dsvc *d, uint32_t id);

/* Lookups by id; NULL when unknown. */
struct dsvc_region *session_region(const struct dsvc_session *s, uint32_t id);
struct dsvc_memory *session_memory(const struct dsvc_session *s, uint32_t id);

/*
 * Session operations behind the control commands.  Each returns 0 (and the
 * new id where there is one) or -errno with a reason in @err.
 */
int session_memory_add(struct dsvc *d, struct dsvc_session *s, int fd,
		       const struct dmasvc_memory_add *req, uint32_t *id, char *err, size_t errlen);
int session_memory_remove(struct dsvc_session *s, uint32_t id, char *err, size_t errlen);
int session_region_add(struct dsvc *d, struct dsvc_session *s, const struct dmasvc_region_add *req,
		       uint32_t *id, char *err, size_t errlen);
int session_region_remove(struct dsvc *d, struct dsvc_session *s, uint32_t id, char *err,
			  size_t errlen);
int session_ring_setup(struct dsvc *d, struct dsvc_session *s, const struct dmasvc_ring_setup *req,
		       struct dsvc_ring **out, int fds[3], char *err, size_t errlen);
int session_device_attach(struct dsvc *d, struct dsvc_session *s, int fd, uint32_t *id, char *err,
			  size_t errlen);
int session_device_detach(struct dsvc *d, struct dsvc_session *s, uint32_t id, char *err,
			  size_t errlen);

/*
 * session_space_open: at session creation, the space and budget of @s: the
 * space itself, or (d->lazy_space) only the budget d->lazy_max_areas until
 * session_space_get().  Returns 0 or -errno.
 */
int session_space_open(struct dsvc *d, struct dsvc_session *s);

/*
 * session_devices_release: detach every device of @s (before its space is
 * destroyed) and give up the operator's devices if @s held them.  Never fails.
 */
void session_devices_release(struct dsvc *d, struct dsvc_session *s);

/*
 * session_space_get: make sure @s has a space (creating it when
 * d->lazy_space), and hand it the operator's --device devices if no
 * session holds them yet.  A configured device that fails to attach is
 * logged and skipped (the session still gets its space).  Returns 0, or
 * -errno with a reason in @err (-EBUSY: type1's one container is used by
 * another session).
 */
int session_space_get(struct dsvc *d, struct dsvc_session *s, char *err, size_t errlen);

/*
 * session_log_level: the level to log a complaint about @s at: @want while
 * the session's per-second budget lasts (and always for info/debug), else
 * DLOG_DEBUG.  Consumes one unit of budget for error/warn lines.
 */
enum dlog_level session_log_level(struct dsvc_session *s, enum dlog_level want);

/* session_refresh_cache: recompute s->cached_areas and s->cached_mapped. */
void session_refresh_cache(struct dsvc_session *s);

/* session_unmap_all: remove every mapping of @s (regions stay registered, all discarded). */
void session_unmap_all(struct dsvc *d, struct dsvc_session *s);

#endif /* DMASVC_SESSION_PRIV_H */
