/* SPDX-License-Identifier: MIT */
/*
 * query_priv.h - build QUERY replies: service status, sessions, regions and
 * audit extents.  Do not include from outside dmasvc/.
 *
 * Paging: a reply holds as many records as fit in one packet next to the
 * reply header and a text; next_cursor resumes.  Cursors are opaque to
 * clients: for SESSIONS and REGIONS they count records already returned,
 * for AUDIT they are the byte offset in the region where the next page
 * starts (never 0 after the first page).  Views may change between pages.
 *
 * Access: without DMASVC_QUERY_F_ALL_SESSIONS a peer sees only its own
 * session (STATUS then carries the service-wide fields plus its own
 * counters); with it, only admin peers (uid on the allow-list) are served,
 * others get -EPERM.
 */
#ifndef DMASVC_QUERY_PRIV_H
#define DMASVC_QUERY_PRIV_H

#include <stddef.h>

#include "session_priv.h"

/* Room for records in one reply packet. */
#define QUERY_RECORD_BYTES \
	(DMASVC_MSG_MAX - sizeof(struct dmasvc_msg_hdr) - sizeof(struct dmasvc_query_reply) - \
	 DMASVC_TEXT_MAX)

/*
 * query_run: answer @q from session @s into @rep and @records (room for
 * QUERY_RECORD_BYTES).  Returns 0, or -errno with a reason in @err
 * (-EPERM, -ENOENT unknown session/region, -EINVAL bad cursor, or the
 * backend's audit error).
 */
int query_run(struct dsvc *d, struct dsvc_session *s, const struct dmasvc_query *q,
	      struct dmasvc_query_reply *rep, void *records, char *err, size_t errlen);

/* query_fill_service: the service-wide STATUS record (all sessions). */
void query_fill_service(struct dsvc *d, struct dmasvc_stat_service *st);

#endif /* DMASVC_QUERY_PRIV_H */
