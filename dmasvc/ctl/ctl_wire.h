/* SPDX-License-Identifier: MIT */
/*
 * ctl_wire.h - dmasvcctl's side of the control protocol: connect, HELLO,
 * and paged QUERY calls.  Private to dmasvcctl.
 *
 * Replies are validated before use: REPLY flag, cmd and msg_id echo, size
 * equal to the packet length, record_size/count fitting the packet.
 */
#ifndef DMASVC_CTL_WIRE_H
#define DMASVC_CTL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "dmasvc/proto.h"

struct ctlw {
	int fd;
	uint32_t msg_id;
	uint32_t session_id;
	char text[DMASVC_TEXT_MAX]; /* the service's text of the last reply */
};

/* ctlw_open: connect to @path and say HELLO.  Returns 0 or -errno (text in w->text). */
int ctlw_open(struct ctlw *w, const char *path);

/* ctlw_close: send BYE and close.  Never fails. */
void ctlw_close(struct ctlw *w);

/*
 * ctlw_query_fn: called per record of a QUERY reply with its bytes (at
 * least @size bytes valid; records shorter than the struct this tool knows
 * are zero-extended by the caller).  Non-zero stops the walk.
 */
typedef int (*ctlw_record_fn)(void *arg, const void *rec, size_t size);

/*
 * ctlw_query_all: QUERY @what with @flags, @region_id and @session_id over
 * every page, calling @fn per record (copied into a buffer of at least
 * @min_size zeroed bytes).  Returns 0, fn's non-zero value, or -errno (the
 * service's text in w->text).
 */
int ctlw_query_all(struct ctlw *w, uint32_t what, uint32_t flags, uint32_t region_id,
		   uint32_t session_id, size_t min_size, ctlw_record_fn fn, void *arg);

#endif /* DMASVC_CTL_WIRE_H */
