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
 * executor thread runs one thing for it, a burst or a job, and owns what
 * that needs; the loop touches none of it.  The hand-over is a mutex in
 * each direction (datapath/executor.c).  What a busy session's executor
 * may write, and the loop therefore never reads while busy:
 *   burst            s->burst, the granule state of the regions it names,
 *                    the space (maps/unmaps), and the CQ producer side and
 *                    backlog of s->burst->rg (it posts the CQEs itself,
 *                    burst_post; the loop posts, drains and
 *                    settles no ring of a busy session)
 *   REGION_REMOVE,   the granule state of the regions it unmaps, the space
 *   BYE (jobs)
 *   DEVICE_ATTACH    the space (the attach pins every existing area)
 *   teardown         everything session_teardown() names: granule state,
 *                    device_used[], space, the memories' mappings and fds
 * The loop reads of a busy session only fields no executor writes: id,
 * cred, client_tag, nr_* counts, ctr, lat, budget, max_areas, the
 * usage_snapshot, rings (the loop's alone, but for the CQ side above)
 * and the flags below.  Counters a job earns (unmap calls) reach ctr at
 * its finish, on the loop.  Worker
 * threads only see map jobs (granule/plan.h) and the backend space, which
 * backend.h allows to be mapped concurrently.
 *
 * Caps (per session).  Fixed: SESSION_MAX_MEMORIES, DMASVC_MAX_RINGS,
 * SESSION_MAX_DEVICES (-EMFILE).  Set by the operator (options_priv.h,
 * "Per-session caps"; fixed for a session at admission from its peer uid,
 * s->cap[]): registered bytes (-EDQUOT at MEMORY_ADD), populated bytes (a
 * populate's CQE -EDQUOT, caps.c), the area budget (-ENOSPC at
 * REGION_ADD), regions (-EMFILE), in-flight SQ entries summed over the
 * rings (-ENOSPC at RING_SETUP); and, per peer uid, sessions (-EUSERS at
 * session_create).  Every refusal names the cap and the numbers
 * (session_cap_refuse).  With these, a session's service memory is
 * bounded (rings: at most cap[OPT_CAP_INFLIGHT] SQEs; region state:
 * granule/'s lazy bitmap, one bit per granule at most).
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
#define SESSION_MAX_REGIONS OPT_MAX_REGIONS /* the table; the cap is s->cap[OPT_CAP_REGIONS] */
#define SESSION_MAX_DEVICES 16

static_assert(SESSION_MAX_REGIONS <= (1u << ID_SLOT_BITS), "slot bits");
static_assert(SESSION_MAX_MEMORIES <= (1u << ID_SLOT_BITS), "slot bits");

struct dsvc_region {
	uint32_t id;
	uint32_t flags;            /* DMASVC_REGION_* */
	struct dsvc_memory *mem;   /* users counts this region; NULL while adopted */
	struct gran_region *gr;    /* granule state; owns the budget reservation */
	/*
	 * adopted: re-created from a kept session's record (docs/restart.md)
	 * and not yet claimed by the resumed client's REGION_ADD: no memory,
	 * granule state from the kernel's audit; it can be discarded and torn
	 * down but not populated.  keep_*: the memory it maps (st_dev,
	 * st_ino of the fd, offset, size), kept in the record and compared
	 * at the claim.
	 */
	bool adopted;
	uint64_t keep_mem_dev, keep_mem_ino, keep_mem_offset, keep_mem_size;
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
	/* CQEs the CQ had no room for yet, posted before any new drain: at
	 * most one burst, which is at most sq_entries SQEs (datapath/). */
	struct dmasvc_cqe *backlog;      /* sq_entries of them, owned */
	unsigned int nr_backlog;
	bool cq_waiting;           /* cq wait flag set: the client's drain rings our doorbell */
	bool doorbell_armed;       /* a multishot poll on doorbell is live */
};

struct executor_thread;
struct gran_event;
struct dsvc_burst;
struct exec_job_ops;

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
	bool announced;            /* its first MEMORY_ADD/DEVICE_ATTACH/RING_SETUP was logged at
				      info (a query-only client such as dmasvcctl logs at debug) */
	bool ctl_pending;          /* requests left unread after a full turn (evloop.c) */
	bool hung_up;              /* the socket hung up while busy: close after the finish */
	uint64_t client_tag;
	uint16_t minor;
	struct be_space *space;    /* see devices[] below for when it is NULL */
	struct gran_budget budget;
	uint64_t max_areas;
	uint32_t mem_gen, region_gen;
	struct dsvc_memory *mems[SESSION_MAX_MEMORIES];
	/* The userfaultfd guarding its memories' holes (be_hole_guard_create(),
	 * one for all of them: a memory costs no fd more; made at the first
	 * MEMORY_ADD that wants it, closed by session_destroy); valid only
	 * while hole_guard_open (a calloc'd session has none). */
	bool hole_guard_open;
	int hole_guard;
	struct dsvc_region *regions[SESSION_MAX_REGIONS];
	struct dsvc_ring *rings[DMASVC_MAX_RINGS];
	/* NULL only while d->lazy_space and before the first REGION_ADD or
	 * DEVICE_ATTACH (session_space_get); set once, destroyed with the session. */
	uint32_t devices[SESSION_MAX_DEVICES];
	bool device_used[SESSION_MAX_DEVICES];
	bool device_cfg[SESSION_MAX_DEVICES]; /* an operator --device: clients cannot detach it */
	unsigned int nr_mems, nr_regions, nr_rings, nr_devices;
	uint64_t registered_bytes; /* sum of its memories' sizes (cap: --max-registered-gib) */
	/* Its caps, fixed at admission (opt_caps_for_uid of cred.uid; mappings
	 * 0 = the backend's own limit); cap_uid: the ones its uid's --uid-caps
	 * entry set (for the refusal's text). */
	uint64_t cap[OPT_CAP_NR];
	unsigned int cap_uid;
	unsigned int region_hi;    /* slots [region_hi, SESSION_MAX_REGIONS) are empty */
	unsigned int ring_hi;      /* slots [ring_hi, DMASVC_MAX_RINGS) are empty */
	uint32_t inflight;         /* SQ entries over all rings (cap: cap[OPT_CAP_INFLIGHT]) */
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
	/*
	 * job_ops/job_arg: the job in flight instead of a burst while busy
	 * (datapath/executor_priv.h), NULL otherwise; arg is the submitter's
	 * until the job's finish runs on the loop.
	 */
	const struct exec_job_ops *job_ops;
	void *job_arg;
	uint64_t job_unmap_calls;  /* written by a job's run, added to ctr by its finish */
	/*
	 * Closing (transport/evloop.c).  closing: NULL while the session is
	 * served; the reason once the loop started to close it.  From then on
	 * the loop never reads its socket or drains its rings, session_find()
	 * no longer returns it, and service-wide REGIONS skip it; it is freed
	 * only after its burst or job finished and its teardown ran
	 * (session_teardown() on the executor; torn_down set at that job's
	 * finish).  close_why: a finish on the loop (which may run inside a
	 * wait, where closing is not allowed) asks the loop to close the
	 * session for this reason at its next turn.
	 */
	const char *closing;
	const char *close_why;
	bool torn_down;
	/* Loop-turn accounting (evloop.c): the ring the next turn starts at. */
	unsigned int ring_next;
	/* Usage as of the moment the session went busy (executor_kick takes
	 * it), for readers while it is busy (session_usage()). */
	struct session_usage usage_snapshot;
	/*
	 * Restart (docs/restart.md).  token: the secret a client resumes this
	 * session with (all-zero: not resumable).  keep_fd: the memfd holding
	 * its record, -1 when the session is not kept.  orphan: adopted from
	 * a previous instance and not resumed yet (fd is -1); torn down at
	 * orphan_deadline_ns (CLOCK_MONOTONIC).  resumed: a client resumed it;
	 * region_phase: REGION_ADDs may still claim adopted regions (ends at
	 * the first RING_SETUP after the resume).
	 */
	uint8_t token[DMASVC_TOKEN_LEN];
	int keep_fd;
	bool orphan;
	bool resumed;
	bool region_phase;
	uint64_t orphan_deadline_ns;
	uint32_t keep_pushed;      /* keep.c: which of its names this instance put in the fd store */
};

#define SESSION_LOG_BUDGET 20 /* warning lines per session per second */
#define UID_LOG_BUDGET 50     /* warning lines per peer uid per second, all its sessions */

/*
 * Resume (docs/restart.md).
 *
 * session_resumable: whether @s can outlive the service (the backend keeps
 * spaces: iommufd; or the test hook).  Sessions that cannot get an
 * all-zero token.
 */
bool session_resumable(const struct dsvc *d);

/*
 * session_token_issue: a fresh random token for @s (getrandom) when the
 * service can keep it, all-zero otherwise or when getrandom fails (logged).
 * The caller writes the session's record.  Never fails.
 */
void session_token_issue(struct dsvc *d, struct dsvc_session *s);

/*
 * session_orphan_match: the orphan session (not closing) whose token equals
 * @token and whose uid is @uid, or NULL.  @token all-zero never matches.
 * Every orphan's token is compared in constant time, whether it matches or
 * not, so the time taken says nothing about a token.
 */
struct dsvc_session *session_orphan_match(struct dsvc *d, const uint8_t token[DMASVC_TOKEN_LEN],
					  uid_t uid);

/*
 * session_region_claim: REGION_ADD @req in resumed @s during its region
 * phase, against the adopted regions.  An adopted region of the same iova,
 * size, granule and flags over the same memory (@m's st_dev, st_ino
 * and offset equal to the record) is bound to @m and keeps its id and
 * granule state: returns true and *@id.  An adopted region that overlaps
 * @req but differs is unmapped and removed (logged, its unmap calls
 * counted); then returns false (the caller adds the region as new).
 */
bool session_region_claim(struct dsvc *d, struct dsvc_session *s, struct dsvc_memory *m,
			  const struct dmasvc_region_add *req, uint32_t *id);

/*
 * session_region_phase_end: the first RING_SETUP after a resume: every
 * adopted region the client did not claim is unmapped and removed, one log
 * line each.  Returns the unmap calls made (added to s->ctr here).
 */
void session_region_phase_end(struct dsvc *d, struct dsvc_session *s);

#ifdef DMASVC_FAULT_INJECTION
/*
 * session_orphan_for_test (DMASVC_TEST_ORPHAN_ON_HANGUP, test builds): turn
 * live @s, whose socket hung up, into an orphan as adoption after a
 * restart would make it: socket closed (fd -1), rings freed, every region
 * adopted (its memory identity recorded, the memory hidden from the
 * client's ids but kept mapped, as the kernel keeps the pages pinned),
 * granule state kept.  The caller cancelled its polls.  Never fails.
 */
void session_orphan_for_test(struct dsvc *d, struct dsvc_session *s);
#endif

/*
 * session_create: a new session for connected socket @fd (ownership moves
 * to the session) with peer credentials @cred.  Creates its space (with
 * d->lazy_space only its budget: session_space_get() creates the space).
 * Returns 0 and *@out (registered in @d), or -errno (fd left open):
 * -EMFILE when the table is full, -EUSERS when @cred's uid already has
 * its max-sessions cap of sessions (logged with the numbers).
 */
int session_create(struct dsvc *d, int fd, const struct ucred *cred, bool admin,
		   struct dsvc_session **out);

/*
 * session_insert: put @s (its id set) into @d's table.  Returns 0, or
 * -EMFILE when the table is full.  session_create() and keep_adopt() use it.
 */
int session_insert(struct dsvc *d, struct dsvc_session *s);

/*
 * session_budget_open: set @s's area budget: the smaller of what its space
 * allows (@space_areas, UINT64_MAX = unlimited) and its max-mappings cap,
 * which from now on holds the result (what a refusal names).
 */
void session_budget_open(struct dsvc_session *s, uint64_t space_areas);

/*
 * session_device_record: record backend device @handle in slot @slot of @s
 * (@cfg: an operator --device).  The slot must be free.
 */
void session_device_record(struct dsvc_session *s, unsigned int slot, uint32_t handle, bool cfg);

/*
 * session_teardown: the long part of freeing @s, safe on its executor
 * while it is busy: unmap every mapping (coalesced, per region), detach
 * its devices, destroy the space, unmap and close its memories.  Writes
 * only what session_priv.h's threading rule lists for a teardown; the
 * structs stay for session_destroy().  Returns the unmap calls made (the
 * caller adds them to s->ctr on the loop).  Never fails; anything the
 * backend still holds is logged as a bug.
 */
uint64_t session_teardown(struct dsvc *d, struct dsvc_session *s);

/*
 * session_destroy: free @s on the loop: session_teardown() first unless
 * s->torn_down, then regions, rings, device bookkeeping, memories, close
 * the socket and drop it from @d.  The data path must have released @s
 * (ringsvc_session_release()).  Never fails.
 */
void session_destroy(struct dsvc *d, struct dsvc_session *s);

/* session_find: the live session with @id that is not closing, or NULL. */
struct dsvc_session *session_find(struct dsvc *d, uint32_t id);

/* session_find_any: the session with @id, closing or not, or NULL. */
struct dsvc_session *session_find_any(struct dsvc *d, uint32_t id);

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
 * session_log_level: on the loop, the level to log a complaint about @s
 * at: @want while both @s's per-second budget (SESSION_LOG_BUDGET) and
 * its peer uid's (UID_LOG_BUDGET, shared by the uid's sessions, closed
 * ones included, so reconnecting does not refill it) last, and always for
 * info/debug; else DLOG_DEBUG.  Consumes one unit of each for error/warn
 * lines.  The first line a uid's budget demotes in a second is preceded by
 * one warning saying so.  Never fails.
 */
enum dlog_level session_log_level(struct dsvc *d, struct dsvc_session *s, enum dlog_level want);

/* session_log_tick: once a second, on the loop: refill every session's and uid's warning budget. */
void session_log_tick(struct dsvc *d);

/*
 * session_usage: what @s has mapped, read from its regions' granule state;
 * while @s is busy (its executor owns the regions), the snapshot taken by
 * the last session_usage_snapshot().  The one place a session's areas and
 * mapped bytes are counted.
 */
struct session_usage session_usage(const struct dsvc_session *s);

/* session_usage_snapshot: store session_usage() of @s (not busy) for the time it is busy. */
void session_usage_snapshot(struct dsvc_session *s);

/*
 * session_cap_refuse: the refusal of a request that would take @s over its
 * cap @c: writes "cap NAME (SOURCE) exceeded: requested R UNIT, in use U,
 * cap C" into @err (SOURCE: the default option or the uid's --uid-caps)
 * and returns @ret (the caller's -errno).
 */
int session_cap_refuse(const struct dsvc_session *s, enum opt_cap c, int ret, uint64_t requested,
		       uint64_t in_use, char *err, size_t errlen);

/*
 * session_burst_admit: apply @s's populated-bytes cap to a burst's
 * validated events @ev[0..@nev) (in SQE order), by whoever runs the burst
 * (the loop, or @s's executor while @s is busy: it reads only s->cap, which
 * is fixed, session_usage() and the regions the events name).  Events take
 * effect in order, so a populate adds the granules of its range not
 * populated after the events before it (state now, overlaid with the
 * earlier admitted events; a failed map counts as made, a discard as done).
 * @hole[i] (may be NULL) marks a populate the residency rule refused: it is
 * judged like the others but, admitted, adds nothing, so a refused hole
 * never takes budget from the events after it.  A populate that would take
 * the session over its cap is refused (@refused[i] true) and the events
 * after it are judged without it; the first refusal's text ("cap
 * max-populated-mib (...) exceeded: requested R bytes, in use U, cap C") goes
 * to @why and its index to *@first.  @spans is the caller's scratch of
 * 2 * @nev + 1 entries.  Cost: O(@nev^2) plus one walk of the granules the
 * events touch.  Returns the number refused; nothing is changed but
 * @refused, @spans, @why and *@first.
 */
struct session_admit_span {
	struct gran_region *r;
	uint64_t first, end;       /* granules [first, end) */
	bool populated;
};
unsigned int session_burst_admit(const struct dsvc_session *s, const struct gran_event *ev,
				 size_t nev, const bool *hole, bool *refused,
				 struct session_admit_span *spans, size_t *first, char *why,
				 size_t whylen);

/* session_unmap_all: remove every mapping of @s (regions stay registered, all discarded). */
void session_unmap_all(struct dsvc *d, struct dsvc_session *s);

/*
 * The executor-safe halves of the long control operations (each writes only
 * granule state and the space, and returns the backend unmap calls it made
 * for the caller to add to s->ctr on the loop; never fail, a granule the
 * backend may still hold is logged as a bug), and their loop halves.
 *   session_region_unmap:  every mapping of region @r (REGION_REMOVE)
 *   session_unmap_regions: every mapping of every region (BYE)
 *   session_region_forget: on the loop, after session_region_unmap(): drop
 *                          @r from @s and free it (REGION_REMOVE's end)
 */
uint64_t session_region_unmap(struct dsvc *d, struct dsvc_session *s, struct dsvc_region *r);
uint64_t session_unmap_regions(struct dsvc *d, struct dsvc_session *s);
void session_region_forget(struct dsvc_session *s, struct dsvc_region *r);

/*
 * DEVICE_ATTACH in three steps, so the attach itself (iommufd pins every
 * existing area inside the ioctl) can run on the executor:
 *   session_device_attach_prepare: on the loop: the backend has devices,
 *     the space exists, a free slot (*@slot).  Returns 0 or -errno + @err.
 *   session_device_attach_run: anywhere, while no map of the space is in
 *     flight and no control request of @s runs (the session busy, or on
 *     the loop): the backend's attach, then the session's regions checked
 *     against the IOVA ranges that hold with the device attached (iommufd
 *     reports the full range until a domain reserves its aperture and MSI
 *     window); a region that no longer fits detaches the device again.
 *     Returns 0 and *@handle, or -errno with the region and the ranges
 *     named in @err (-EADDRINUSE: a region lies where the device reserves
 *     IOVA, whether the kernel refused the attach or our check did).
 *   session_device_attach_commit: on the loop, with the run's result
 *     @ret, @handle and reason @run_err ("" for none): record the device in
 *     @slot.  Returns 0 and the device id in *@id, or @ret with a reason in
 *     @err.
 * session_device_attach() is the three in a row.
 */
int session_device_attach_prepare(struct dsvc *d, struct dsvc_session *s, unsigned int *slot,
				  char *err, size_t errlen);
int session_device_attach_run(struct dsvc *d, struct dsvc_session *s, int fd, uint32_t *handle,
			      char *err, size_t errlen);
int session_device_attach_commit(struct dsvc_session *s, unsigned int slot, int ret,
				 uint32_t handle, const char *run_err, uint32_t *id, char *err,
				 size_t errlen);

#endif /* DMASVC_SESSION_PRIV_H */
