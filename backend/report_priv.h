/* SPDX-License-Identifier: MIT */
/*
 * report_priv.h - do not include directly; private to backend/.  The one way
 * a backend reports what it cannot return with its context (a failed kernel
 * call with its IOVA range, a BUG in a never-fail path): through the
 * be_config.report callback its user set at open (the daemon's logger, with
 * its priorities and rate limit), or on stderr when there is none (tests,
 * benchmarks).
 */
#ifndef DMASVC_BACKEND_REPORT_PRIV_H
#define DMASVC_BACKEND_REPORT_PRIV_H

#include "dmasvc/backend.h"

/* A backend context's reporter: copied from be_config at open, immutable. */
struct be_report {
	be_report_fn fn; /* NULL: stderr */
	void *arg;
};

/* be_report_init: the reporter @cfg names. */
static inline struct be_report be_report_init(const struct be_config *cfg)
{
	return (struct be_report){ .fn = cfg->report, .arg = cfg->report_arg };
}

/*
 * be_reportf: format one line (no newline; truncated at 512 bytes) and hand
 * it to @r (NULL: stderr).  Any thread; never fails; leaves errno alone.
 */
__attribute__((format(printf, 2, 3)))
void be_reportf(const struct be_report *r, const char *fmt, ...);

#endif /* DMASVC_BACKEND_REPORT_PRIV_H */
