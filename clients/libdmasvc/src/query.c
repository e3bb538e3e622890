/* SPDX-License-Identifier: MIT */
/*
 * query.c - dmasvc_query(): QUERY pages walked with the service's cursor,
 * records copied into the caller's layout (truncated or zero-padded, so
 * either side may have grown a record).  Region ids are translated between
 * the caller's local ids and the service's.
 */
#include <errno.h>
#include <string.h>

#include "client_priv.h"

/* Local id of the region the service calls @svc_id, or UINT32_MAX. */
static uint32_t region_local_id(struct dmasvc_client *c, uint32_t svc_id)
{
	for (uint32_t i = 0; i < c->nregions; i++)
		if (c->regions[i] && c->regions[i]->live && c->regions[i]->svc_id == svc_id)
			return i;
	return UINT32_MAX;
}

int dmasvc_query(struct dmasvc_client *c, uint32_t what, uint32_t flags, uint32_t region_id,
		 void *records, size_t record_size, unsigned max)
{
	struct dmasvc_query req = { .what = what, .flags = flags };
	unsigned got = 0;
	struct cl_reply r;
	int err = 0;

	if (!c || (max && (!records || !record_size)))
		return -EINVAL;
	pthread_mutex_lock(&c->ctl_lock);
	if (what == DMASVC_QUERY_AUDIT) {
		pthread_mutex_lock(&c->state_lock);
		struct cl_region *reg = cl_region_get(c, region_id);

		req.region_id = reg ? reg->svc_id : 0;
		pthread_mutex_unlock(&c->state_lock);
		if (!reg) {
			err = -ENOENT;
			goto out_unlock;
		}
	}
	do {
		struct dmasvc_query_reply rep;
		uint64_t bytes;

		err = cl_call(c, DMASVC_CMD_QUERY, &req, sizeof(req), NULL, 0, &r, sizeof(rep));
		if (err)
			goto out_unlock;
		cl_reply_close_fds(&r);
		if (r.hdr.error) {
			err = -(int)r.hdr.error;
			goto out_unlock;
		}
		memcpy(&rep, r.buf, sizeof(rep));
		bytes = (uint64_t)rep.count * rep.record_size;
		if (rep.what != what || rep.record_size == 0 ||
		    bytes > r.body_len - sizeof(rep)) {
			err = -EPROTO;
			goto out_unlock;
		}
		for (uint32_t i = 0; i < rep.count && got < max; i++, got++) {
			char *dst = (char *)records + (size_t)got * record_size;
			size_t n = rep.record_size < record_size ? rep.record_size : record_size;

			memcpy(dst, r.buf + sizeof(rep) + (size_t)i * rep.record_size, n);
			memset(dst + n, 0, record_size - n);
			if (what == DMASVC_QUERY_REGIONS && !(flags & DMASVC_QUERY_F_ALL_SESSIONS) &&
			    record_size >= DMASVC_OFFSETOFEND(struct dmasvc_stat_region, region_id)) {
				struct dmasvc_stat_region *sr = (struct dmasvc_stat_region *)dst;

				sr->region_id = region_local_id(c, sr->region_id);
			}
		}
		req.cursor = rep.next_cursor;
	} while (req.cursor && got < max);
	err = (int)got;
out_unlock:
	pthread_mutex_unlock(&c->ctl_lock);
	return err;
}

uint32_t dmasvc_session_id(const struct dmasvc_client *c)
{
	return c ? c->hello.session_id : 0;
}
