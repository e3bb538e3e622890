/* SPDX-License-Identifier: MIT */
/*
 * service_priv.h - the service object: what one dmasvc process serves with
 * (options, log, backend, worker pool) and the sessions it holds.  Do not
 * include from outside dmasvc/ (tests and fuzzers may).
 *
 * Owned by main(), which fills it before the event loop runs; the parts
 * below main keep only what the field comments say.  Lock order: none
 * (the event-loop thread owns all of it; executors and workers use only
 * the fields that do not change while the loop runs: opt, log, ops, be,
 * pool, and bx, which has a lock of its own).
 */
#ifndef DMASVC_SERVICE_PRIV_H
#define DMASVC_SERVICE_PRIV_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include "dmasvc/backend.h"

#include "log_priv.h"
#include "options_priv.h"
#include "stats_priv.h"

#define DSVC_MAX_SESSIONS 256
static_assert(OPT_MAX_SESSIONS == DSVC_MAX_SESSIONS, "--max-sessions ranges over the table");

/* Distinct peer uids whose warning budget one second can track; the
 * uids past them share the last entry (session.c, session_log_level). */
#define DSVC_LOG_UIDS 32

/* One peer uid's warning lines left this second (session_log_level). */
struct dsvc_uid_log {
	uint32_t uid;
	uint32_t left;
	bool noted;                  /* the "rest at debug level" line was logged */
};

struct dsvc_session;
struct exec_pool;   /* datapath/exec_pool_priv.h */
struct executor_queue;    /* datapath/executor_priv.h */

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
	struct lat_total lat_total;  /* all sessions, since start (STATUS) */
	bool stopping;
	struct executor_queue *bx;         /* finished async bursts; NULL: every burst runs inline */
	uint64_t async_bytes;        /* bursts naming at least this many bytes (or
					BURST_ASYNC_GRANULES granules) run on the session's executor */
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
	/* Test builds only (DMASVC_TEST_ORPHAN_ON_HANGUP, testhooks_priv.h):
	 * sessions on the model get tokens and a hang-up makes them orphans,
	 * as a restart would (docs/restart.md); false in production. */
	bool test_orphan_on_hangup;
	/* Test builds only (DMASVC_TEST_NO_HOLE_GUARD): memories are opened
	 * without the hole guard (mincore() before the plan); false in
	 * production. */
	bool test_no_hole_guard;
	/* Test builds only (DMASVC_TEST_EXEC_REAP_DELAY_US): the loop sleeps
	 * this long before it reaps finished executor work (a loop slow to
	 * notice, as on a loaded host); 0 in production. */
	unsigned int test_exec_reap_delay_us;
	/* Warning budget per peer uid, this second (session_log_tick() empties
	 * it): a client reconnecting in a loop gets a fresh session budget
	 * each time, not a fresh uid budget. */
	struct dsvc_uid_log log_uids[DSVC_LOG_UIDS];
	unsigned int nr_log_uids;
	/*
	 * Restart (docs/restart.md).  upgrade: an upgrade was asked for
	 * (SIGHUP, the UPGRADE command); the loop runs it after the turn.
	 * argv: main's argv, what the upgrade's exec passes on.
	 */
	bool upgrade;
	char *const *argv;
	bool socket_activated;       /* the listening socket's file is not ours to remove */
};

/* dsvc_now_ns: CLOCK_MONOTONIC in ns. */
uint64_t dsvc_now_ns(void);

#endif /* DMASVC_SERVICE_PRIV_H */
