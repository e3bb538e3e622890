/* SPDX-License-Identifier: MIT */
/*
 * fdstore-notify.h - parse one sd_notify datagram the way systemd 252's
 * service manager reads it, for tests/vm/fdstore-keeper.c (and its host
 * test, test_fdstore_notify.c).
 */
#ifndef DMASVC_VM_FDSTORE_NOTIFY_H
#define DMASVC_VM_FDSTORE_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

#define KN_NAME_MAX 255 /* systemd's fdname_is_valid(): at most 255 chars */
#define KN_MAX_FDS 253  /* SCM_MAX_FD */

struct kn_msg {
	bool ready;          /* READY=1 */
	bool reloading;      /* RELOADING=1 */
	bool stopping;       /* STOPPING=1 */
	bool fdstore;        /* FDSTORE=1 */
	bool fdstore_remove; /* FDSTOREREMOVE=1 */
	char fdname[KN_NAME_MAX + 1]; /* FDNAME=, "" when absent */
};

/*
 * kn_fdname_valid - systemd's fdname_is_valid(): 1..255 printable ASCII
 * characters (0x20..0x7e) without ':'.
 */
bool kn_fdname_valid(const char *s);

/*
 * kn_parse - parse the @len bytes at @buf (newline-separated KEY=VALUE
 * assignments; unknown keys and the last line's missing newline are fine,
 * as in systemd) into @m.  A NUL byte inside the message, or an FDNAME=
 * that is not valid, makes the whole message invalid (systemd ignores
 * such a message and closes its fds).  Returns 0 or -EINVAL / -EBADMSG.
 */
int kn_parse(const char *buf, size_t len, struct kn_msg *m);

#endif /* DMASVC_VM_FDSTORE_NOTIFY_H */
