/* SPDX-License-Identifier: MIT */
/*
 * session_priv.h - sessions and what they own.  Do not include from
 * outside dmasvc/ (tests and fuzzers may).
 *
 * Ownership (each object owned by exactly the one above it):
 *   struct dsvc            the service (service_priv.h)
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
 * (datapath/executor.c).  Worker threads only see map jobs
 * (granule/plan.h) and the backend space, which backend.h allows to be
 * mapped concurrently.
 *
 * Caps (per session; -EMFILE for counts, -ENOSPC for in-flight entries and
 * the area budget, -EDQUOT for registered bytes): SESSION_MAX_MEMORIES,
 * SESSION_MAX_REGIONS, DMASVC_MAX_RINGS, SESSION_MAX_INFLIGHT SQ entries
 * summed over the rings, SESSION_MAX_DEVICES, the options' max_registered
 * bytes of memory and max_mappings areas (finite for iommufd by default).  With these, a session's service memory is bounded
 * (rings: at most SESSION_MAX_INFLIGHT SQEs; region state: granule/'s lazy
 * bitmap, one bit per granule at most).
 */
#ifndef DMASVC_SESSION_PRIV_H
#define DMASVC_SESSION_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "dmasvc/budget.h"
#include "dmasvc/granule.h"
#include "dmasvc/proto.h"
#include "dmasvc/ring.h"

#include "memory_priv.h"
#include "service_priv.h"

#define ID_SLOT_BITS 12
#define SESSION_MAX_MEMORIES 256
#define SESSION_MAX_REGIONS 1024
#define SESSION_MAX_DEVICES 16
#define SESSION_MAX_INFLIGHT 16384u /* SQ entries over all rings of a session */
#define RING_BURST 128              /* SQEs drained per burst (one plan; datapath/) */

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

struct executor_thread;
struct dsvc_burst;

/* What a session has mapped: one area per mapped granule, and its bytes. */
struct session_usage {
	uint64_t areas;
	uint64_t mapped_bytes;
};

struct dsvc_session {
	uint32_t id;
	int fd;                    /* the control socket */
	struct ucred cred;         /* SO_PEERCRED at accept */
	bool admin;                /* uid on the allow-list: may query all sessions */
	bool hello_done;
	bool ctl_pending;          /* requests left unread after a full turn (evloop.c) */
	bool hung_up;              /* the socket hung up while busy: close after the finish */
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
	uint64_t registered_bytes; /* sum of its memories' sizes (cap: --max-registered-gib) */
	unsigned int ring_hi;      /* slots [ring_hi, DMASVC_MAX_RINGS) are empty */
	uint32_t inflight;         /* SQ entries over all rings */
	struct dsvc_counters ctr;
	struct lat_window lat;
	/* Warning lines this session may still cause this second (refilled by
	 * the stats timer); past it, its request errors log at debug only, so
	 * a hostile client cannot flood the log. */
	unsigned int log_budget;
	/*
	 * The data path's state of this session (datapath/), which the
	 * session only carries: datapath/ allocates burst and exec on first
	 * use and frees them in ringsvc_session_release(), which must run before
	 * session_destroy().
	 * busy: s->burst is being executed by s->exec.  While busy, the loop
	 * touches none of the session's regions, rings or control socket: it
	 * defers them (ctl_pending, doorbells re-checked after the finish)
	 * and waits for the burst (ringsvc_quiesce) before anything that must see
	 * or change the session's state.  broken: the finish found a ring
	 * protocol error; the loop closes the session.
	 */
	bool busy;
	bool broken;
	struct executor_thread *exec;
	struct dsvc_burst *burst;
	/* Usage as of the last finish or region op, for readers while the
	 * session is busy (session_usage()). */
	struct session_usage usage_snapshot;
};

#define SESSION_LOG_BUDGET 20 /* warning lines per session per second */

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
 * @d.  The data path must have released @s (ringsvc_session_release()).  Never
 * fails; anything the backend still holds is logged as a bug.
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
 * session_device_iommufd_devid: the kernel's iommufd device id of @s's
 * attached device @id, or 0 when the backend has none (type1) or @id is not
 * attached.
 */
uint32_t session_device_iommufd_devid(const struct dsvc *d, const struct dsvc_session *s,
				      uint32_t id);

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

/*
 * session_usage: what @s has mapped, read from its regions' granule state;
 * while @s is busy (its executor owns the regions), the snapshot taken by
 * the last session_usage_snapshot().  The one place a session's areas and
 * mapped bytes are counted.
 */
struct session_usage session_usage(const struct dsvc_session *s);

/* session_usage_snapshot: store session_usage() of @s (not busy) for the time it is busy. */
void session_usage_snapshot(struct dsvc_session *s);

/* session_unmap_all: remove every mapping of @s (regions stay registered, all discarded). */
void session_unmap_all(struct dsvc *d, struct dsvc_session *s);

#endif /* DMASVC_SESSION_PRIV_H */
