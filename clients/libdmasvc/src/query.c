/* SPDX-License-Identifier: MIT */
/*
 * query.c - dmasvc_query() and dmasvc_query_each(): QUERY pages walked with
 * the service's cursor (query_walk), records copied into the caller's
 * layout (truncated or zero-padded, so either side may have grown a
 * record).  Region ids are translated between the caller's local ids and
 * the service's, except in service-wide calls naming another session.
 */
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "libdmasvc_priv.h"

/* Local id of the region the service calls @svc_id, or UINT32_MAX. */
static uint32_t region_local_id(struct dmasvc_client *c, uint32_t svc_id)
{
	for (uint32_t i = 0; i < c->nregions; i++)
		if (c->regions[i] && c->regions[i]->live && c->regions[i]->svc_id == svc_id)
			return i;
	return UINT32_MAX;
}

/*
 * Fill in @req's region id for AUDIT (ctl_lock held): the caller's local
 * @region_id unless req->session_id names a session, in which case it is
 * the service's id already.  0 or -ENOENT (unknown local region).
 */
static int query_target(struct dmasvc_client *c, struct dmasvc_query *req, uint32_t region_id)
{
	struct cl_region *reg;

	if (req->what != DMASVC_QUERY_AUDIT)
		return 0;
	if (req->session_id) {
		req->region_id = region_id;
		return 0;
	}
	pthread_mutex_lock(&c->state_lock);
	reg = cl_region_get(c, region_id);
	req->region_id = reg ? reg->svc_id : 0;
	pthread_mutex_unlock(&c->state_lock);
	return reg ? 0 : -ENOENT;
}

/* Wire record @src (@wire_size bytes) into @dst (@size bytes) as the caller sees it. */
static void record_copy(struct dmasvc_client *c, const struct dmasvc_query *req, void *dst,
			size_t size, const uint8_t *src, uint32_t wire_size)
{
	size_t n = wire_size < size ? wire_size : size;

	memcpy(dst, src, n);
	memset((char *)dst + n, 0, size - n);
	if (req->what == DMASVC_QUERY_REGIONS && !(req->flags & DMASVC_QUERY_F_ALL_SESSIONS) &&
	    size >= DMASVC_OFFSETOFEND(struct dmasvc_stat_region, region_id)) {
		struct dmasvc_stat_region *sr = dst;

		sr->region_id = region_local_id(c, sr->region_id);
	}
}

typedef int (*wire_record_fn)(void *arg, const uint8_t *rec, uint32_t wire_size);

/*
 * Run @req from its cursor to the last page (ctl_lock held), calling @fn per
 * wire record once its page is validated.  The whole walk gets the
 * connection's timeout, not each page: a service whose cursor advances
 * forever would otherwise hold ctl_lock (every control call) forever.
 * Returns 0, @fn's non-zero return, the service's -errno, -EPROTO
 * (malformed page, or a cursor that does not advance) or -ETIMEDOUT.
 */
static int query_walk(struct dmasvc_client *c, struct dmasvc_query *req, wire_record_fn fn,
		      void *arg)
{
	int64_t deadline = c->opts.timeout_ms < 0 ? -1 : cl_now_ms() + c->opts.timeout_ms;
	struct cl_reply r;
	int err;

	do {
		struct dmasvc_query_reply rep;
		int64_t left = deadline < 0 ? -1 : deadline - cl_now_ms();
		uint64_t bytes;

		if (deadline >= 0 && left <= 0) {
			snprintf(c->last_error, sizeof(c->last_error),
				 "query: the service's pages did not end within the timeout (%d ms)",
				 c->opts.timeout_ms);
			return -ETIMEDOUT;
		}
		err = cl_call_timed(c, (int)left, DMASVC_CMD_QUERY, req, sizeof(*req), NULL, 0, &r,
				    sizeof(rep));
		if (err)
			return err;
		cl_reply_close_fds(&r);
		if (r.hdr.error)
			return -(int)r.hdr.error;
		memcpy(&rep, r.buf, sizeof(rep));
		bytes = (uint64_t)rep.count * rep.record_size;
		if (rep.what != req->what || rep.record_size == 0 ||
		    bytes > r.body_len - sizeof(rep) ||
		    (rep.next_cursor && rep.next_cursor == req->cursor))
			return -EPROTO;
		for (uint32_t i = 0; i < rep.count; i++) {
			err = fn(arg, r.buf + sizeof(rep) + (size_t)i * rep.record_size,
				 rep.record_size);
			if (err)
				return err;
		}
		req->cursor = rep.next_cursor;
	} while (req->cursor);
	return 0;
}

/* ---- dmasvc_query: into the caller's array, up to max records ---- */

struct array_ctx {
	struct dmasvc_client *c;
	const struct dmasvc_query *req;
	char *records;
	size_t record_size;
	unsigned max, got;
};

/* Returns 1 (stop) once the array is full. */
static int array_push(void *arg, const uint8_t *rec, uint32_t wire_size)
{
	struct array_ctx *a = arg;

	if (a->got == a->max)
		return 1;
	record_copy(a->c, a->req, a->records + (size_t)a->got * a->record_size, a->record_size,
		    rec, wire_size);
	return ++a->got == a->max;
}

int dmasvc_query(struct dmasvc_client *c, uint32_t what, uint32_t flags, uint32_t region_id,
		 void *records, size_t record_size, unsigned max)
{
	struct dmasvc_query req = { .what = what, .flags = flags };
	struct array_ctx a = {
		.c = c, .req = &req, .records = records, .record_size = record_size, .max = max,
	};
	int err;

	if (!c || (max && (!records || !record_size)))
		return -EINVAL;
	pthread_mutex_lock(&c->ctl_lock);
	err = query_target(c, &req, region_id);
	if (!err)
		err = query_walk(c, &req, array_push, &a);
	pthread_mutex_unlock(&c->ctl_lock);
	return err < 0 ? err : (int)a.got;
}

/* ---- dmasvc_query_each: one caller-layout record at a time ---- */

struct each_ctx {
	struct dmasvc_client *c;
	const struct dmasvc_query *req;
	size_t record_size;
	int (*fn)(void *arg, const void *record);
	void *arg;
	alignas(max_align_t) unsigned char rec[DMASVC_MSG_MAX];
};

static int each_record(void *arg, const uint8_t *rec, uint32_t wire_size)
{
	struct each_ctx *e = arg;

	record_copy(e->c, e->req, e->rec, e->record_size, rec, wire_size);
	return e->fn(e->arg, e->rec);
}

int dmasvc_query_each(struct dmasvc_client *c, uint32_t what, uint32_t flags, uint32_t region_id,
		      uint32_t session_id, size_t record_size,
		      int (*fn)(void *arg, const void *record), void *arg)
{
	struct dmasvc_query req = { .what = what, .flags = flags, .session_id = session_id };
	struct each_ctx e = {
		.c = c, .req = &req, .record_size = record_size, .fn = fn, .arg = arg,
	};
	int err;

	if (!c || !fn || record_size == 0 || record_size > sizeof(e.rec))
		return -EINVAL;
	if (session_id && (what != DMASVC_QUERY_AUDIT || !(flags & DMASVC_QUERY_F_ALL_SESSIONS)))
		return -EINVAL;
	pthread_mutex_lock(&c->ctl_lock);
	err = query_target(c, &req, region_id);
	if (!err)
		err = query_walk(c, &req, each_record, &e);
	pthread_mutex_unlock(&c->ctl_lock);
	return err;
}

uint32_t dmasvc_session_id(const struct dmasvc_client *c)
{
	return c ? c->hello.session_id : 0;
}

int dmasvc_upgrade(struct dmasvc_client *c)
{
	int err;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->ctl_lock);
	err = cl_call_simple(c, DMASVC_CMD_UPGRADE, NULL, 0, NULL, 0, NULL, 0);
	pthread_mutex_unlock(&c->ctl_lock);
	return err;
}
