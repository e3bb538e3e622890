/* SPDX-License-Identifier: MIT */
/*
 * query.c - QUERY views (see query_priv.h for paging and access).
 *
 * The audit compares two orderings of one region, both walked once in
 * increasing IOVA: the backend's held extents (be_ops.audit) and the
 * service's mapped granule runs (gran_region_for_each_run).  Each granule is
 * classified OK (both), MISSING (service only) or STRAY (backend only);
 * adjacent granules of one class are merged into one extent.  Granule
 * indices count from the region start; extents the backend reports that
 * are not granule-aligned are widened to whole granules.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log_priv.h"
#include "query_priv.h"

/* A "Vm...: N kB" line of this process's status, in bytes (0 when missing). */
static uint64_t read_vm_kb(const char *key)
{
	char line[256];
	uint64_t kb = 0;
	size_t klen = strlen(key);
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			unsigned long long v;

			if (sscanf(line + klen + 1, "%llu", &v) == 1)
				kb = v;
			break;
		}
	}
	fclose(f);
	return kb * 1024;
}

/* DMASVC_AREA_RULE_* of a space whose unmap cuts areas (@cuts) or not. */
static uint32_t area_rule(bool cuts)
{
	return cuts ? DMASVC_AREA_RULE_RUN : DMASVC_AREA_RULE_GRANULE;
}

/*
 * DMASVC_AREA_RULE_* of @s's space: whether its unmap cuts areas (fixed at
 * the space's creation, or at its adoption after a restart: keep.c), or,
 * before the space exists, the rule it will get (dmasvc --areas).
 */
static uint32_t session_area_rule(const struct dsvc *d, const struct dsvc_session *s)
{
	bool cuts = s->space ? d->ops->unmap_cuts && d->ops->unmap_cuts(s->space)
			     : d->opt->areas_run;

	return area_rule(cuts);
}

static void fill_session(const struct dsvc *d, const struct dsvc_session *s,
			 struct dmasvc_stat_session *r)
{
	memset(r, 0, sizeof(*r));
	r->session_id = s->id;
	r->pid = (uint32_t)s->cred.pid;
	r->uid = (uint32_t)s->cred.uid;
	r->regions = s->nr_regions;
	r->rings = s->nr_rings;
	r->devices = s->nr_devices;
	r->client_tag = s->client_tag;
	r->events = s->ctr.events;
	r->events_failed = s->ctr.events_failed;
	r->map_calls = s->ctr.map_calls;
	r->unmap_calls = s->ctr.unmap_calls;
	r->resume_repair_maps = s->ctr.resume_repair_maps;
	r->resume_repair_unmaps = s->ctr.resume_repair_unmaps;
	r->areas = session_usage(s).areas; /* the snapshot while busy: never waits */
	r->max_areas = s->max_areas;
	r->reserved_areas = s->budget.reserved;
	r->latency_p50_ns = lat_percentile(&s->lat, 50);
	r->latency_p99_ns = lat_percentile(&s->lat, 99);
	r->populated_bytes = session_usage(s).mapped_bytes;
	r->max_populated_bytes = s->cap[OPT_CAP_POPULATED];
	r->area_rule = session_area_rule(d, s);
}

/*
 * Whether @s's mapped bytes are pinned now.  Every area pins exactly its
 * bytes and areas never share pages, except that iommufd pins only while a
 * device is attached to the space (backend.h, map): before that, mapped
 * bytes are recorded, not pinned.
 */
static bool session_pins(const struct dsvc *d, const struct dsvc_session *s)
{
	return strcmp(d->ops->name, "iommufd") != 0 || s->nr_devices > 0;
}

static void fill_region(const struct dsvc *d, const struct dsvc_session *s,
			const struct dsvc_region *rg, struct dmasvc_stat_region *r)
{
	const struct gran_region *g = rg->gr;

	memset(r, 0, sizeof(*r));
	r->session_id = s->id;
	r->region_id = rg->id;
	r->mem_id = rg->mem ? rg->mem->id : 0; /* 0: adopted, no memory yet (resume.c) */
	r->flags = rg->flags;
	r->iova = gran_region_iova(g);
	r->size = gran_region_size(g);
	r->granule = gran_region_granule(g);
	r->populated_bytes = gran_region_populated(g) * gran_region_granule(g);
	r->mapped_bytes = gran_region_mapped_bytes(g);
	r->pinned_bytes = session_pins(d, s) ? r->mapped_bytes : 0;
}

void query_fill_service(struct dsvc *d, struct dmasvc_stat_service *st)
{
	struct dsvc_counters c = d->gone;
	struct session_usage u;
	bool unlimited = false;

	memset(st, 0, sizeof(*st));
	st->uptime_ns = dsvc_now_ns() - d->start_ns;
	st->sessions = d->nr_sessions;
	st->workers = d->opt->workers;
	snprintf(st->backend, sizeof(st->backend), "%s", d->ops->name);
	st->area_rule = area_rule(d->opt->areas_run);
	for (unsigned int i = 0; i < DSVC_MAX_SESSIONS; i++) {
		const struct dsvc_session *s = d->sessions[i];

		if (!s)
			continue;
		counters_add(&c, &s->ctr);
		u = session_usage(s);
		st->areas += u.areas;
		st->pinned_bytes += session_pins(d, s) ? u.mapped_bytes : 0;
		if (s->max_areas == UINT64_MAX)
			unlimited = true;
		else
			st->max_areas += s->max_areas;
	}
	if (unlimited)
		st->max_areas = UINT64_MAX;
	st->events = c.events;
	st->events_failed = c.events_failed;
	st->map_calls = c.map_calls;
	st->unmap_calls = c.unmap_calls;
	st->resume_repair_maps = c.resume_repair_maps;
	st->resume_repair_unmaps = c.resume_repair_unmaps;
	/* The model pins in VmPin (io_uring) or, its fallback, VmLck (mlock). */
	st->vmlck_bytes = strcmp(d->ops->name, "soft") == 0 ? read_vm_kb("VmPin") + read_vm_kb("VmLck")
							     : read_vm_kb("VmPin");
	st->latency_p50_ns = lat_percentile(&d->lat, 50);
	st->latency_p99_ns = lat_percentile(&d->lat, 99);
	st->latency_count = d->lat_total.h.count;
	st->latency_sum_ns = d->lat_total.sum_ns;
	hist_fold_log2(&d->lat_total.h, st->latency_log2, DMASVC_LATENCY_LOG2);
}

/* STATUS for a non-admin peer: service facts plus its own counters only. */
static void fill_service_own(struct dsvc *d, const struct dsvc_session *s,
			     struct dmasvc_stat_service *st)
{
	struct session_usage u;

	memset(st, 0, sizeof(*st));
	st->uptime_ns = dsvc_now_ns() - d->start_ns;
	st->sessions = 1;
	st->workers = d->opt->workers;
	snprintf(st->backend, sizeof(st->backend), "%s", d->ops->name);
	st->area_rule = area_rule(d->opt->areas_run);
	st->events = s->ctr.events;
	st->events_failed = s->ctr.events_failed;
	st->map_calls = s->ctr.map_calls;
	st->unmap_calls = s->ctr.unmap_calls;
	st->resume_repair_maps = s->ctr.resume_repair_maps;
	st->resume_repair_unmaps = s->ctr.resume_repair_unmaps;
	u = session_usage(s);
	st->pinned_bytes = session_pins(d, s) ? u.mapped_bytes : 0;
	st->latency_p50_ns = lat_percentile(&s->lat, 50);
	st->latency_p99_ns = lat_percentile(&s->lat, 99);
	st->areas = u.areas;
	st->max_areas = s->max_areas;
}

/* ---- audit ----------------------------------------------------------- */

struct audit_walk {
	struct gran_region *gr;
	uint64_t iova, granule, nr; /* region geometry */
	uint64_t pos;               /* next granule to classify */
	struct dmasvc_audit_extent *out;
	unsigned int cap, n;
	bool full;
	uint64_t stop_at;           /* first granule not reported (when full) */
	uint64_t cls_cursor;        /* inside a held extent: next unclassified granule */
	int err;
};

/* Append or merge [first, first + count) of class @state.  Returns 1 when the page is full. */
static int emit(struct audit_walk *w, uint64_t first, uint64_t count, uint32_t state)
{
	uint64_t iova = w->iova + first * w->granule, len = count * w->granule;
	struct dmasvc_audit_extent *last = w->n ? &w->out[w->n - 1] : NULL;

	if (!count)
		return 0;
	if (last && last->state == state && last->iova + last->length == iova) {
		last->length += len;
		return 0;
	}
	if (w->n == w->cap) {
		w->full = true;
		w->stop_at = first;
		return 1;
	}
	w->out[w->n++] = (struct dmasvc_audit_extent){ .iova = iova, .length = len, .state = state };
	return 0;
}

static int emit_missing(void *arg, struct gran_region *r, uint64_t first, uint64_t count)
{
	(void)r;
	return emit(arg, first, count, DMASVC_AUDIT_MISSING);
}

/* Inside a held extent: runs are OK, the gaps between them STRAY. */
static int emit_held_run(void *arg, struct gran_region *r, uint64_t first, uint64_t count)
{
	struct audit_walk *w = arg;

	(void)r;
	if (first > w->cls_cursor && emit(w, w->cls_cursor, first - w->cls_cursor, DMASVC_AUDIT_STRAY))
		return 1;
	if (emit(w, first, count, DMASVC_AUDIT_OK))
		return 1;
	w->cls_cursor = first + count;
	return 0;
}

static int audit_extent(void *arg, uint64_t iova, uint64_t length)
{
	struct audit_walk *w = arg;
	uint64_t a, b, end;

	if (length == 0 || iova + length <= w->iova)
		return 0;
	if (__builtin_add_overflow(iova, length, &end))
		end = UINT64_MAX;
	a = iova <= w->iova ? 0 : (iova - w->iova) / w->granule;
	b = (end - w->iova + w->granule - 1) / w->granule;
	if (b > w->nr)
		b = w->nr;
	if (a < w->pos)
		a = w->pos;
	if (a >= b)
		return 0;
	if (a > w->pos && gran_region_for_each_run(w->gr, w->pos, a - w->pos, emit_missing, w))
		return 1;
	w->cls_cursor = a;
	if (gran_region_for_each_run(w->gr, a, b - a, emit_held_run, w))
		return 1;
	if (w->cls_cursor < b && emit(w, w->cls_cursor, b - w->cls_cursor, DMASVC_AUDIT_STRAY))
		return 1;
	w->pos = b;
	return 0;
}

static int query_audit(struct dsvc *d, struct dsvc_session *owner, const struct dmasvc_query *q,
		       struct dmasvc_query_reply *rep, void *records, char *err, size_t errlen)
{
	struct dsvc_region *rg = session_region(owner, q->region_id);
	struct audit_walk w;
	uint64_t start;
	int ret;

	if (!rg)
		return dlog_errf(-ENOENT, err, errlen, "session %u has no region %u", owner->id, q->region_id);
	memset(&w, 0, sizeof(w));
	w.gr = rg->gr;
	w.iova = gran_region_iova(rg->gr);
	w.granule = gran_region_granule(rg->gr);
	w.nr = gran_region_nr_granules(rg->gr);
	w.out = records;
	w.cap = (unsigned int)(QUERY_RECORD_BYTES / sizeof(struct dmasvc_audit_extent));
	if (q->cursor % w.granule || q->cursor >= gran_region_size(rg->gr))
		return dlog_errf(-EINVAL, err, errlen, "bad audit cursor 0x%llx", (unsigned long long)q->cursor);
	start = q->cursor / w.granule;
	w.pos = start;
	ret = d->ops->audit(owner->space, w.iova + start * w.granule, (w.nr - start) * w.granule,
			    w.granule, audit_extent, &w);
	if (ret < 0)
		return dlog_errf(ret, err, errlen, "backend audit of region %u failed", rg->id);
	if (!w.full && w.pos < w.nr)
		gran_region_for_each_run(w.gr, w.pos, w.nr - w.pos, emit_missing, &w);
	rep->count = w.n;
	rep->record_size = sizeof(struct dmasvc_audit_extent);
	rep->next_cursor = w.full ? w.stop_at * w.granule : 0;
	return 0;
}

/* ---- dispatch ------------------------------------------------------- */

int query_run(struct dsvc *d, struct dsvc_session *s, const struct dmasvc_query *q,
	      struct dmasvc_query_reply *rep, void *records, char *err, size_t errlen)
{
	bool all = q->flags & DMASVC_QUERY_F_ALL_SESSIONS;
	uint64_t idx = 0;
	unsigned int cap;

	if (all && !s->admin)
		return dlog_errf(-EPERM, err, errlen,
			     "uid %u is not on the allow-list: no service-wide queries", (unsigned)s->cred.uid);
	memset(rep, 0, sizeof(*rep));
	rep->what = q->what;
	switch (q->what) {
	case DMASVC_QUERY_STATUS:
		if (all)
			query_fill_service(d, records);
		else
			fill_service_own(d, s, records);
		rep->count = 1;
		rep->record_size = sizeof(struct dmasvc_stat_service);
		return 0;
	case DMASVC_QUERY_SESSIONS:
		cap = (unsigned int)(QUERY_RECORD_BYTES / sizeof(struct dmasvc_stat_session));
		rep->record_size = sizeof(struct dmasvc_stat_session);
		for (unsigned int i = 0; i < DSVC_MAX_SESSIONS; i++) {
			const struct dsvc_session *o = d->sessions[i];

			if (!o || (!all && o != s))
				continue;
			if (idx++ < q->cursor)
				continue;
			if (rep->count == cap) {
				rep->next_cursor = idx - 1;
				break;
			}
			fill_session(d, o, (struct dmasvc_stat_session *)records + rep->count++);
		}
		return 0;
	case DMASVC_QUERY_REGIONS:
		cap = (unsigned int)(QUERY_RECORD_BYTES / sizeof(struct dmasvc_stat_region));
		rep->record_size = sizeof(struct dmasvc_stat_region);
		for (unsigned int i = 0; i < DSVC_MAX_SESSIONS && !rep->next_cursor; i++) {
			const struct dsvc_session *o = d->sessions[i];

			/* closing: its executor may be freeing the regions */
			if (!o || o->closing || (!all && o != s))
				continue;
			for (unsigned int j = 0; j < o->region_hi; j++) {
				if (!o->regions[j] || idx++ < q->cursor)
					continue;
				if (rep->count == cap) {
					rep->next_cursor = idx - 1;
					break;
				}
				fill_region(d, o, o->regions[j],
					    (struct dmasvc_stat_region *)records + rep->count++);
			}
		}
		return 0;
	case DMASVC_QUERY_AUDIT: {
		struct dsvc_session *owner = s;

		if (all && q->session_id) {
			owner = session_find(d, q->session_id);
			if (!owner)
				return dlog_errf(-ENOENT, err, errlen, "no session %u", q->session_id);
		}
		return query_audit(d, owner, q, rep, records, err, errlen);
	}
	default:
		return dlog_errf(-EINVAL, err, errlen, "unknown query %u", q->what);
	}
}
