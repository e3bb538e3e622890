/* SPDX-License-Identifier: MIT */
/*
 * report.c - the backends' one report path (see report_priv.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "report_priv.h"

void be_reportf(const struct be_report *r, const char *fmt, ...)
{
	char line[512];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r && r->fn)
		r->fn(r->arg, line);
	else
		fprintf(stderr, "dmasvc: %s\n", line);
	errno = saved;
}
