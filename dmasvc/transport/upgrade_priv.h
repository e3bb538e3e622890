/* SPDX-License-Identifier: MIT */
/*
 * upgrade_priv.h - the planned upgrade's exec (upgrade.c, docs/restart.md).
 * Do not include from outside dmasvc/.
 */
#ifndef DMASVC_UPGRADE_PRIV_H
#define DMASVC_UPGRADE_PRIV_H

#include <stddef.h>

#include "session_priv.h"

/*
 * upgrade_exec: replace this process's image with d->opt->upgrade_exec
 * (@argv as its arguments), passing the listening socket @lfd (named
 * "listen") and every kept session's fds (keep_fds(): names dmasvc-s*)
 * as LISTEN_FDS from fd 3 with LISTEN_PID (this pid) and LISTEN_FDNAMES.
 * The caller has quiesced every session (nothing in flight) and written
 * every record.  Returns only on failure: -errno with a reason in @err,
 * every fd of the service back where it was, LISTEN_* unset; the service
 * can go on serving.
 */
int upgrade_exec(struct dsvc *d, int lfd, char *const *argv, char *err, size_t errlen);

#endif /* DMASVC_UPGRADE_PRIV_H */
