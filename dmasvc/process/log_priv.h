/* SPDX-License-Identifier: MIT */
/*
 * log_priv.h - the daemon's one logging function.  Do not include from
 * outside dmasvc/.
 *
 * Vocabulary: a "logger" is a small object owned by main() (level and
 * stream); every module that reports gets a pointer to it.  Lines look like
 *     dmasvc[info] session 3: region 2: map iova 0x... len 0x...: Cannot allocate memory
 * or, when stderr is journald's stream (systemd sets JOURNAL_STREAM to its
 * device:inode), like
 *     <6>session 3: region 2: ...
 * where <N> is the syslog priority (sd-daemon.h's SD_ERR, SD_WARNING,
 * SD_INFO, SD_DEBUG) that journald strips and stores as PRIORITY=.
 * Session id 0 means "not about one session".  Errors travel up as -errno and
 * are reported once, at the place that knows the context.
 *
 * Rate limit: lines no session owns that a peer can cause in numbers share
 * one budget of DLOG_LIMITED_BURST lines a second for the whole service
 * (dlog_limited): the backends' lines (dlog_backend_report, the
 * be_config.report callback; map failures arrive from worker threads, one
 * per granule) and refused connections.  A line over budget is counted, and
 * the next line that fits says how many were suppressed.  Lines about one
 * session have that session's own budget (session_log_level).
 */
#ifndef DMASVC_LOG_PRIV_H
#define DMASVC_LOG_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum dlog_level {
	DLOG_ERROR = 0,
	DLOG_WARN = 1,
	DLOG_INFO = 2,
	DLOG_DEBUG = 3,
};

#define DLOG_LIMITED_BURST 20 /* dlog_limited lines a second, service-wide */

/* The dlog_limited() budget; guarded by its own lock (any thread). */
struct dlog_limit {
	pthread_mutex_t lock;
	uint64_t second;      /* CLOCK_MONOTONIC second of the current window */
	unsigned int used;    /* lines written in it */
	uint64_t suppressed;  /* lines dropped since the last one written */
};

/* Immutable after main() set it up (dlog_init); safe to read from any thread. */
struct dlog {
	enum dlog_level level;    /* lines above this level are dropped */
	FILE *out;                /* stderr in the daemon, a tmpfile in tests */
	bool journal;             /* <N> priority prefixes instead of dmasvc[level] */
	struct dlog_limit *limit; /* dlog_limited() budget; NULL: unlimited */
};

/*
 * dlog_init: a logger at @level writing to @out, with journald's priority
 * prefixes when @out is the stream JOURNAL_STREAM names (@journal_stream:
 * its value, may be NULL), and @limit (initialised here; may be NULL) for
 * the backend lines.  Never fails.
 */
void dlog_init(struct dlog *lg, enum dlog_level level, FILE *out, const char *journal_stream,
	       struct dlog_limit *limit);

/* dlog_fini: release what dlog_init() set up in @lg->limit. */
void dlog_fini(struct dlog *lg);

/*
 * dlog_limited: like dlog() (no session) within the service-wide budget
 * (see the top of this file).  Any thread; never fails.
 */
__attribute__((format(printf, 3, 4)))
void dlog_limited(const struct dlog *lg, enum dlog_level lvl, const char *fmt, ...);

/*
 * dlog_backend_report: the backends' report callback (be_config.report, with
 * report_arg = the logger): dlog_limited() of @line at DLOG_ERROR.
 */
void dlog_backend_report(void *logger, const char *line);

/*
 * dlog_parse_level: "error", "warn", "info" or "debug" -> *@out.
 * Returns 0 or -EINVAL.
 */
int dlog_parse_level(const char *s, enum dlog_level *out);

/* dlog_level_name: the inverse of dlog_parse_level ("?" when out of range). */
const char *dlog_level_name(enum dlog_level lvl);

/*
 * dlog: print one line at @lvl about session @sid (0: none).  @lg may be
 * NULL (drops everything).  Never fails, never changes errno's meaning for
 * the caller (callers don't use errno anyway).
 */
__attribute__((format(printf, 4, 5)))
void dlog(const struct dlog *lg, enum dlog_level lvl, uint32_t sid, const char *fmt, ...);

/* dlog_err: like dlog at DLOG_ERROR with ": <strerror(-err)>" appended. */
__attribute__((format(printf, 4, 5)))
void dlog_err(const struct dlog *lg, uint32_t sid, int err, const char *fmt, ...);

/*
 * dlog_errf: write a one-line reason into @err (@errlen bytes, NUL terminated)
 * and return @res, so a failing check is `return dlog_errf(-EINVAL, ...)`.
 */
__attribute__((format(printf, 4, 5)))
int dlog_errf(int res, char *err, size_t errlen, const char *fmt, ...);

#endif /* DMASVC_LOG_PRIV_H */
