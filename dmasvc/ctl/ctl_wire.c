/* SPDX-License-Identifier: MIT */
/*
 * ctl_wire.c - dmasvcctl's transport: one request, one validated reply
 * (see ctl_wire.h).  Blocking calls with a 10 s receive timeout.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl_wire.h"

#define CTLW_MAX_ERRNO 4095

/*
 * Send @cmd with @body and wait for its reply into @buf.  Returns the bytes
 * between the header and the final NUL (body plus text) with *@body_out
 * pointing at them, or -errno (-EPROTO for a malformed reply).
 */
static int ctlw_call(struct ctlw *w, uint16_t cmd, const void *body, size_t len, unsigned char *buf,
		     const unsigned char **body_out)
{
	unsigned char out[DMASVC_MSG_MAX];
	struct dmasvc_msg_hdr h = {
		.size = (uint32_t)(sizeof(h) + len), .cmd = cmd, .msg_id = ++w->msg_id,
	};
	ssize_t n;

	w->text[0] = '\0';
	memcpy(out, &h, sizeof(h));
	if (len)
		memcpy(out + sizeof(h), body, len);
	if (send(w->fd, out, h.size, MSG_NOSIGNAL) != (ssize_t)h.size)
		return -errno ? -errno : -EIO;
	do {
		n = recv(w->fd, buf, DMASVC_MSG_MAX, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	if ((size_t)n < sizeof(h))
		return -EPROTO;
	memcpy(&h, buf, sizeof(h));
	if (h.size != (size_t)n || !(h.flags & DMASVC_MSG_REPLY) || h.cmd != cmd ||
	    h.msg_id != w->msg_id || h.error > CTLW_MAX_ERRNO || buf[n - 1] != '\0')
		return -EPROTO;
	if (h.error) {
		snprintf(w->text, sizeof(w->text), "%s", (const char *)buf + sizeof(h));
		return -(int)h.error;
	}
	*body_out = buf + sizeof(h);
	/* body and text together; the text (at least its NUL) ends the packet */
	return (int)((size_t)n - sizeof(h) - 1);
}

int ctlw_open(struct ctlw *w, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	struct dmasvc_hello hello = {
		.major = DMASVC_PROTO_MAJOR, .minor = DMASVC_PROTO_MINOR, .client_tag = (uint64_t)getpid(),
	};
	struct dmasvc_hello_reply rep;
	unsigned char buf[DMASVC_MSG_MAX];
	const unsigned char *body;
	int ret;

	memset(w, 0, sizeof(*w));
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	w->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (w->fd < 0)
		return -errno;
	setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(w->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		goto err_close;
	}
	ret = ctlw_call(w, DMASVC_CMD_HELLO, &hello, sizeof(hello), buf, &body);
	if (ret < 0)
		goto err_close;
	if ((size_t)ret < sizeof(rep)) {
		ret = -EPROTO;
		goto err_close;
	}
	memcpy(&rep, body, sizeof(rep));
	w->session_id = rep.session_id;
	return 0;

err_close:
	close(w->fd);
	w->fd = -1;
	return ret;
}

void ctlw_close(struct ctlw *w)
{
	unsigned char buf[DMASVC_MSG_MAX];
	const unsigned char *body;

	if (w->fd < 0)
		return;
	ctlw_call(w, DMASVC_CMD_BYE, NULL, 0, buf, &body);
	close(w->fd);
	w->fd = -1;
}

int ctlw_query_all(struct ctlw *w, uint32_t what, uint32_t flags, uint32_t region_id,
		   uint32_t session_id, size_t min_size, ctlw_record_fn fn, void *arg)
{
	struct dmasvc_query q = {
		.what = what, .flags = flags, .region_id = region_id, .session_id = session_id,
	};
	unsigned char buf[DMASVC_MSG_MAX];
	unsigned char rec[DMASVC_MSG_MAX];
	unsigned int pages = 0;

	if (min_size > sizeof(rec))
		return -EINVAL;
	do {
		struct dmasvc_query_reply rep;
		const unsigned char *body;
		int len, ret;

		len = ctlw_call(w, DMASVC_CMD_QUERY, &q, sizeof(q), buf, &body);
		if (len < 0)
			return len;
		if ((size_t)len < sizeof(rep))
			return -EPROTO;
		memcpy(&rep, body, sizeof(rep));
		if (rep.what != what || (rep.count && rep.record_size == 0) ||
		    (uint64_t)rep.count * rep.record_size > (size_t)len - sizeof(rep))
			return -EPROTO;
		for (uint32_t i = 0; i < rep.count; i++) {
			size_t take = rep.record_size < sizeof(rec) ? rep.record_size : sizeof(rec);

			memset(rec, 0, sizeof(rec));
			memcpy(rec, body + sizeof(rep) + (size_t)i * rep.record_size, take);
			ret = fn(arg, rec, take > min_size ? take : min_size);
			if (ret)
				return ret;
		}
		if (rep.next_cursor && rep.next_cursor == q.cursor)
			return -EPROTO; /* no progress: refuse to loop */
		q.cursor = rep.next_cursor;
	} while (q.cursor && ++pages < 1000000);
	return 0;
}
