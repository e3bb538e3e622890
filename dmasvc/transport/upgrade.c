// SPDX-License-Identifier: MIT
/*
 * upgrade.c - a planned upgrade by re-exec (docs/restart.md): hand the
 * listening socket and every kept session's fds to a new image of the
 * service in this same process (same pid: systemd keeps tracking it).
 *
 * LISTEN_FDS wants the fds at 3, 4, ... in order, where this process has
 * other files open (io_uring, signalfd, sessions).  So: each fd to pass is
 * first dup'ed above 3 + n (cloexec), every file now at a target number is saved
 * high too, then the passed ones are dup2'ed onto 3.. (dup2 clears
 * FD_CLOEXEC on the target, so exactly these survive the exec, together
 * with nothing else: every other fd of the service is cloexec).  If execv
 * fails the saved files go back to their numbers and the service goes on
 * as if nothing happened.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "keep_priv.h"
#include "upgrade_priv.h"

/*
 * The listening socket's name in LISTEN_FDNAMES (docs/restart.md): "listen"
 * when this service bound it (the next image removes its file at the
 * stop), "activated" when systemd did (never removed by the service).
 */
#define LISTEN_NAME "listen"
#define LISTEN_NAME_ACTIVATED "activated"

struct handover {
	unsigned int n, cap;
	int *fds;                  /* the files to pass, in LISTEN_FDS order */
	char (*names)[KEEP_NAME_MAX];
	int *high;                 /* their high dups */
	int *saved;                /* what was at 3 + i before, high; -1: nothing */
};

static void handover_free(struct handover *h)
{
	for (unsigned int i = 0; i < h->n; i++) {
		if (h->high && h->high[i] >= 0)
			close(h->high[i]);
		if (h->saved && h->saved[i] >= 0)
			close(h->saved[i]);
	}
	free(h->fds);
	free(h->names);
	free(h->high);
	free(h->saved);
}

/* Collect @lfd and every kept session's fds into @h.  Returns 0 or -errno. */
static int handover_collect(struct dsvc *d, int lfd, struct handover *h)
{
	h->cap = 1 + d->nr_sessions * (2 + SESSION_MAX_DEVICES);
	h->fds = calloc(h->cap, sizeof(*h->fds));
	h->names = calloc(h->cap, sizeof(*h->names));
	h->high = calloc(h->cap, sizeof(*h->high));
	h->saved = calloc(h->cap, sizeof(*h->saved));
	if (!h->fds || !h->names || !h->high || !h->saved)
		return -ENOMEM;
	h->fds[0] = lfd;
	snprintf(h->names[0], KEEP_NAME_MAX, "%s",
		 d->socket_activated ? LISTEN_NAME_ACTIVATED : LISTEN_NAME);
	h->n = 1;
	for (unsigned int i = 0; i < d->session_hi; i++) {
		struct dsvc_session *s = d->sessions[i];
		int n;

		if (!s)
			continue;
		n = keep_fds(d, s, h->fds + h->n, h->names + h->n, h->cap - h->n);
		if (n < 0)
			return n;
		h->n += (unsigned int)n;
	}
	return 0;
}

/* LISTEN_FDNAMES: the names joined by ':'.  Returns a malloc'ed string or NULL. */
static char *names_join(const struct handover *h)
{
	size_t len = 1;
	char *s;

	for (unsigned int i = 0; i < h->n; i++)
		len += strlen(h->names[i]) + 1;
	s = calloc(1, len);
	if (!s)
		return NULL;
	for (unsigned int i = 0; i < h->n; i++) {
		if (i)
			strcat(s, ":");
		strcat(s, h->names[i]);
	}
	return s;
}

/* Put the saved files back at 3.. after a failed exec (best effort). */
static void handover_undo(struct handover *h)
{
	for (unsigned int i = 0; i < h->n; i++) {
		int target = SD_LISTEN_FDS_START + (int)i;

		if (h->saved[i] >= 0)
			dup3(h->saved[i], target, O_CLOEXEC);
		else
			close(target);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int upgrade_exec(struct dsvc *d, int lfd, char *const *argv, char *err, size_t errlen)
{
	struct handover h = { 0 };
	char num[32], *joined = NULL;
	int ret;

	if (!d->opt->upgrade_exec)
		return dlog_errf(-ENOENT, err, errlen, "no --upgrade-exec path known");
	if (access(d->opt->upgrade_exec, X_OK) < 0)
		return dlog_errf(-errno, err, errlen, "%s is not executable", d->opt->upgrade_exec);
	ret = handover_collect(d, lfd, &h);
	if (ret) {
		dlog_errf(ret, err, errlen, "collecting the fds to pass failed");
		goto out;
	}
	joined = names_join(&h);
	if (!joined) {
		ret = dlog_errf(-ENOMEM, err, errlen, "out of memory");
		goto out;
	}
	for (unsigned int i = 0; i < h.n; i++)
		h.high[i] = h.saved[i] = -1;
	for (unsigned int i = 0; i < h.n; i++) {
		int target = SD_LISTEN_FDS_START + (int)i;

		h.high[i] = fcntl(h.fds[i], F_DUPFD_CLOEXEC, SD_LISTEN_FDS_START + (int)h.n);
		if (h.high[i] < 0) {
			ret = dlog_errf(-errno, err, errlen, "dup of fd %d failed", h.fds[i]);
			goto out;
		}
		if (fcntl(target, F_GETFD) >= 0) {
			h.saved[i] = fcntl(target, F_DUPFD_CLOEXEC, SD_LISTEN_FDS_START + (int)h.n);
			if (h.saved[i] < 0) {
				ret = dlog_errf(-errno, err, errlen, "dup of fd %d failed", target);
				goto out;
			}
		}
	}
	for (unsigned int i = 0; i < h.n; i++) {
		if (dup2(h.high[i], SD_LISTEN_FDS_START + (int)i) < 0) {
			ret = dlog_errf(-errno, err, errlen, "dup2 onto fd %u failed",
					SD_LISTEN_FDS_START + i);
			handover_undo(&h);
			goto out;
		}
	}
	snprintf(num, sizeof(num), "%d", (int)getpid());
	setenv("LISTEN_PID", num, 1);
	snprintf(num, sizeof(num), "%u", h.n);
	setenv("LISTEN_FDS", num, 1);
	setenv("LISTEN_FDNAMES", joined, 1);
	execv(d->opt->upgrade_exec, argv);
	ret = dlog_errf(-errno, err, errlen, "execv %s failed", d->opt->upgrade_exec);
	handover_undo(&h);
out:
	free(joined);
	handover_free(&h);
	return ret;
}
