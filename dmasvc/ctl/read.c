/* SPDX-License-Identifier: MIT */
/*
 * read.c - dmasvcctl's reads: service-wide QUERY records (STATUS,
 * SESSIONS, REGIONS, AUDIT) collected through libdmasvc on the tool's
 * query-only connection; see ctl_priv.h.  Nothing here prints.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_priv.h"

static int vec_push(void *arg, const void *rec)
{
	struct ctl_vec *v = arg;
	void *p = realloc(v->data, (v->n + 1) * v->size);

	if (!p)
		return -ENOMEM;
	v->data = p;
	memcpy((char *)v->data + v->n * v->size, rec, v->size);
	v->n++;
	return 0;
}

/*
 * fetch: every record of the service-wide QUERY @what into @v (records of
 * @size bytes).  For AUDIT, @region and @session are the service's ids
 * from a REGIONS record.  Returns 0 (caller frees v->data) or -errno (then
 * @v is empty).
 */
static int fetch(struct dmasvc_client *c, uint32_t what, uint32_t region, uint32_t session,
		 struct ctl_vec *v, size_t size)
{
	int ret;

	v->data = NULL;
	v->n = 0;
	v->size = size;
	ret = dmasvc_query_each(c, what, DMASVC_QUERY_F_ALL_SESSIONS, region, session, size,
				vec_push, v);
	if (ret) {
		free(v->data);
		v->data = NULL;
		v->n = 0;
	}
	return ret;
}

/* Remove this tool's own (query-only) session from a SESSIONS listing. */
static void drop_own_session(const struct dmasvc_client *c, struct ctl_vec *ss)
{
	struct dmasvc_stat_session *r = ss->data;
	uint32_t own = dmasvc_session_id(c);
	size_t k = 0;

	for (size_t i = 0; i < ss->n; i++)
		if (r[i].session_id != own)
			r[k++] = r[i];
	ss->n = k;
}

int ctl_read_regions(struct dmasvc_client *c, struct ctl_view *v, const char **what)
{
	int ret = fetch(c, DMASVC_QUERY_REGIONS, 0, 0, &v->regions, sizeof(struct dmasvc_stat_region));

	if (ret)
		*what = "regions";
	return ret;
}

int ctl_read_view(struct dmasvc_client *c, bool regions, struct ctl_view *v, const char **what)
{
	struct ctl_vec sv;
	int ret;

	memset(v, 0, sizeof(*v));
	ret = fetch(c, DMASVC_QUERY_STATUS, 0, 0, &sv, sizeof(v->st));
	if (!ret && sv.n != 1) {
		free(sv.data);
		ret = -EPROTO;
	}
	if (ret) {
		*what = "status";
		return ret;
	}
	memcpy(&v->st, sv.data, sizeof(v->st));
	free(sv.data);
	v->st.backend[sizeof(v->st.backend) - 1] = '\0';
	if (v->st.sessions)
		v->st.sessions--; /* not counting this dmasvcctl's own session */
	ret = fetch(c, DMASVC_QUERY_SESSIONS, 0, 0, &v->sessions, sizeof(struct dmasvc_stat_session));
	if (ret) {
		*what = "sessions";
		return ret;
	}
	drop_own_session(c, &v->sessions);
	if (regions) {
		ret = ctl_read_regions(c, v, what);
		if (ret) {
			free(v->sessions.data);
			memset(v, 0, sizeof(*v));
		}
	}
	return ret;
}

void ctl_view_free(struct ctl_view *v)
{
	free(v->sessions.data);
	free(v->regions.data);
	memset(v, 0, sizeof(*v));
}

int ctl_read_audit(struct dmasvc_client *c, struct ctl_audit *a, const char **what)
{
	struct ctl_vec rv;
	int ret;

	memset(a, 0, sizeof(*a));
	a->all_ok = true;
	ret = fetch(c, DMASVC_QUERY_REGIONS, 0, 0, &rv, sizeof(struct dmasvc_stat_region));
	if (ret) {
		*what = "regions";
		return ret;
	}
	a->r = calloc(rv.n ? rv.n : 1, sizeof(*a->r));
	if (!a->r) {
		free(rv.data);
		*what = "audit";
		return -ENOMEM;
	}
	for (size_t i = 0; i < rv.n; i++) {
		const struct dmasvc_stat_region *r = (const struct dmasvc_stat_region *)rv.data + i;
		struct ctl_audit_region *ar = &a->r[a->n];

		ret = fetch(c, DMASVC_QUERY_AUDIT, r->region_id, r->session_id, &ar->extents,
			    sizeof(struct dmasvc_audit_extent));
		if (ret == -ENOENT) {
			a->vanished++; /* removed since the listing */
			continue;
		}
		if (ret) {
			free(rv.data);
			ctl_audit_free(a);
			*what = "audit";
			return ret;
		}
		ar->session_id = r->session_id;
		ar->region_id = r->region_id;
		for (size_t j = 0; j < ar->extents.n; j++)
			if (ctl_extent(ar, j)->state != DMASVC_AUDIT_OK)
				a->all_ok = false;
		a->n++;
	}
	free(rv.data);
	return 0;
}

void ctl_audit_free(struct ctl_audit *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->r[i].extents.data);
	free(a->r);
	memset(a, 0, sizeof(*a));
}

const char *ctl_audit_state(uint32_t state)
{
	switch (state) {
	case DMASVC_AUDIT_OK:
		return "OK";
	case DMASVC_AUDIT_MISSING:
		return "MISSING";
	case DMASVC_AUDIT_STRAY:
		return "STRAY";
	default:
		return "UNKNOWN";
	}
}

const char *ctl_locked_source(const char *backend)
{
	return strcmp(backend, "soft") == 0 ? "VmPin+VmLck" : "VmPin";
}

const char *ctl_area_rule(uint32_t rule)
{
	return rule == DMASVC_AREA_RULE_GRANULE ? "granule"
	       : rule == DMASVC_AREA_RULE_RUN	? "run"
						: NULL;
}

uint64_t ctl_log2_le_ns(unsigned int k)
{
	return k + 1 >= DMASVC_LATENCY_LOG2 ? UINT64_MAX : (1ull << k) - 1;
}
