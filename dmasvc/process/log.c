/* SPDX-License-Identifier: MIT */
/*
 * log.c - format and write log lines (see log_priv.h for the line format).
 * One fprintf per line so lines from worker threads never interleave.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "log_priv.h"

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int dlog_parse_level(const char *s, enum dlog_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum dlog_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *dlog_level_name(enum dlog_level lvl)
{
	if ((unsigned)lvl >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[lvl];
}

__attribute__((format(printf, 5, 0)))
static void dlog_v(const struct dlog *lg, enum dlog_level lvl, uint32_t sid, int err,
		   const char *fmt, va_list ap)
{
	char msg[512];
	char errbuf[128];
	const char *es = "";

	if (!lg || !lg->out || lvl > lg->level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (err) {
		es = strerror_r(-err, errbuf, sizeof(errbuf));
		if (sid)
			fprintf(lg->out, "dmasvc[%s] session %u: %s: %s\n", dlog_level_name(lvl), sid, msg, es);
		else
			fprintf(lg->out, "dmasvc[%s] %s: %s\n", dlog_level_name(lvl), msg, es);
	} else if (sid) {
		fprintf(lg->out, "dmasvc[%s] session %u: %s\n", dlog_level_name(lvl), sid, msg);
	} else {
		fprintf(lg->out, "dmasvc[%s] %s\n", dlog_level_name(lvl), msg);
	}
	fflush(lg->out);
}

void dlog(const struct dlog *lg, enum dlog_level lvl, uint32_t sid, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dlog_v(lg, lvl, sid, 0, fmt, ap);
	va_end(ap);
}

void dlog_err(const struct dlog *lg, uint32_t sid, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dlog_v(lg, DLOG_ERROR, sid, err, fmt, ap);
	va_end(ap);
}

int dlog_errf(int res, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return res;
}
