/* SPDX-License-Identifier: MIT */
/*
 * log.c - format and write log lines (see log_priv.h for the line format).
 * One fprintf per line so lines from worker threads never interleave.
 *
 * Under journald the priority is a "<N>" prefix on the stream line rather
 * than sd_journal_print(): stderr is already journald's stream (systemd
 * connects it), so the prefix costs nothing, keeps one write per line from
 * any thread in the order written, reaches the same PRIORITY= field, and
 * works the same under any supervisor that reads syslog prefixes (or none:
 * a terminal shows dmasvc[level] instead).
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

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

/* Whether @journal_stream ("DEVICE:INODE", systemd.exec(5)) names the file behind @out. */
static bool is_journal_stream(FILE *out, const char *journal_stream)
{
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (!out || !journal_stream ||
	    sscanf(journal_stream, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(fileno(out), &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void dlog_init(struct dlog *lg, enum dlog_level level, FILE *out, const char *journal_stream,
	       struct dlog_limit *limit)
{
	lg->level = level;
	lg->out = out;
	lg->journal = is_journal_stream(out, journal_stream);
	lg->limit = limit;
	if (limit) {
		memset(limit, 0, sizeof(*limit));
		pthread_mutex_init(&limit->lock, NULL);
	}
}

void dlog_fini(struct dlog *lg)
{
	if (lg->limit)
		pthread_mutex_destroy(&lg->limit->lock);
	lg->limit = NULL;
}

/* One line: "<N>" + @body under journald, else "dmasvc[level] " + @body. */
static void write_line(const struct dlog *lg, enum dlog_level lvl, const char *body)
{
	static const char *const prio[] = { SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG };

	if (lg->journal)
		fprintf(lg->out, "%s%s\n", prio[lvl <= DLOG_DEBUG ? lvl : DLOG_DEBUG], body);
	else
		fprintf(lg->out, "dmasvc[%s] %s\n", dlog_level_name(lvl), body);
	fflush(lg->out);
}

__attribute__((format(printf, 5, 0)))
static void dlog_v(const struct dlog *lg, enum dlog_level lvl, uint32_t sid, int err,
		   const char *fmt, va_list ap)
{
	char msg[512], line[800];
	char errbuf[128];
	char who[32] = "";

	if (!lg || !lg->out || lvl > lg->level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (sid)
		snprintf(who, sizeof(who), "session %u: ", sid);
	if (err)
		snprintf(line, sizeof(line), "%s%s: %s", who, msg, strerror_r(-err, errbuf, sizeof(errbuf)));
	else
		snprintf(line, sizeof(line), "%s%s", who, msg);
	write_line(lg, lvl, line);
}

/*
 * Take one line from @lim's budget for this second.  Returns false when over
 * it (the line is counted as suppressed); else true, with *@dropped = the
 * lines suppressed since the last one written.
 */
static bool limit_take(struct dlog_limit *lim, uint64_t *dropped)
{
	struct timespec ts;
	bool ok = true;

	*dropped = 0;
	if (!lim)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&lim->lock);
	if (lim->second != (uint64_t)ts.tv_sec) {
		lim->second = (uint64_t)ts.tv_sec;
		lim->used = 0;
	}
	if (lim->used < DLOG_LIMITED_BURST) {
		lim->used++;
		*dropped = lim->suppressed;
		lim->suppressed = 0;
	} else {
		lim->suppressed++;
		ok = false;
	}
	pthread_mutex_unlock(&lim->lock);
	return ok;
}

void dlog_limited(const struct dlog *lg, enum dlog_level lvl, const char *fmt, ...)
{
	char msg[512], line[640];
	uint64_t dropped;
	va_list ap;

	if (!lg || !lg->out || lvl > lg->level || !limit_take(lg->limit, &dropped))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (dropped)
		snprintf(line, sizeof(line), "%s (and %llu earlier lines suppressed: over %d a second)", msg,
			 (unsigned long long)dropped, DLOG_LIMITED_BURST);
	else
		snprintf(line, sizeof(line), "%s", msg);
	write_line(lg, lvl, line);
}

void dlog_backend_report(void *logger, const char *line)
{
	dlog_limited(logger, DLOG_ERROR, "%s", line);
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
