/* SPDX-License-Identifier: MIT */
/*
 * log_priv.h - the daemon's one logging function.  Do not include from
 * outside dmasvc/.
 *
 * Vocabulary: a "logger" is a small object owned by main() (level and
 * stream); every module that reports gets a pointer to it.  Lines look like
 *     dmasvc[info] session 3: region 2: map iova 0x... len 0x...: Cannot allocate memory
 * Session id 0 means "not about one session".  Errors travel up as -errno and
 * are reported once, at the place that knows the context.
 */
#ifndef DMASVC_LOG_PRIV_H
#define DMASVC_LOG_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum dlog_level {
	DLOG_ERROR = 0,
	DLOG_WARN = 1,
	DLOG_INFO = 2,
	DLOG_DEBUG = 3,
};

/* Immutable after main() set it up; safe to read from any thread. */
struct dlog {
	enum dlog_level level; /* lines above this level are dropped */
	FILE *out;             /* stderr in the daemon, a tmpfile in tests */
};

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
