/* SPDX-License-Identifier: MIT */
/*
 * evloop_priv.h - the daemon's liburing event loop.
 * Do not include from outside dmasvc/.
 */
#ifndef DMASVC_EVLOOP_PRIV_H
#define DMASVC_EVLOOP_PRIV_H

#include "session_priv.h"

/*
 * evl_run: serve on listening socket @lfd until SIGTERM or SIGINT (the
 * caller has blocked both; the loop reads them from a signalfd).  On a
 * signal: stop accepting, finish the events already in the rings, remove
 * every mapping of every session, free the sessions.  Takes ownership of
 * @lfd.  Returns 0 after a clean stop, or -errno if the loop could not run
 * (io_uring, signalfd or timerfd setup failed).
 */
int evl_run(struct dsvc *d, int lfd);

#endif /* DMASVC_EVLOOP_PRIV_H */
