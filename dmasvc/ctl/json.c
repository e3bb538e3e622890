/* SPDX-License-Identifier: MIT */
/*
 * json.c - dmasvcctl's JSON output, built with json-c (never printf), so
 * every document is valid JSON whatever the records hold.  Each command
 * prints one top-level object with "version": CTL_JSON_VERSION; the schema
 * (every field, its type and unit) is docs/dmasvcctl-json.md.  A limit
 * that is unlimited is null, never 2^64-1; a latency bound with no event
 * behind it is null, never 0.
 *
 * Building: struct jb carries a sticky out-of-memory flag, so a document
 * is either complete or not printed at all.
 */
#include <errno.h>
#include <json-c/json.h>

#include "ctl_priv.h"

struct jb {
	bool oom;
};

/* put: o[@k] = @v (NULL @v is an allocation failure); takes @v. */
static void put(struct jb *b, struct json_object *o, const char *k, struct json_object *v)
{
	if (!o || !v || json_object_object_add(o, k, v)) {
		json_object_put(v);
		b->oom = true;
	}
}

static void put_u64(struct jb *b, struct json_object *o, const char *k, uint64_t v)
{
	put(b, o, k, json_object_new_uint64(v));
}

static void put_null(struct jb *b, struct json_object *o, const char *k)
{
	if (o && json_object_object_add(o, k, NULL))
		b->oom = true;
}

/* put_u64_or_null: @v, or null when @v == @none. */
static void put_u64_or_null(struct jb *b, struct json_object *o, const char *k, uint64_t v,
			    uint64_t none)
{
	if (v == none)
		put_null(b, o, k);
	else
		put_u64(b, o, k, v);
}

static void append(struct jb *b, struct json_object *arr, struct json_object *v)
{
	if (!arr || !v || json_object_array_add(arr, v)) {
		json_object_put(v);
		b->oom = true;
	}
}

/* latency_window: the window's percentile bounds (null: no event timed). */
static struct json_object *latency_window(struct jb *b, uint64_t p50, uint64_t p99)
{
	struct json_object *o = json_object_new_object();

	put_u64_or_null(b, o, "p50_le_ns", p50, 0);
	put_u64_or_null(b, o, "p99_le_ns", p99, 0);
	return o;
}

/* latency_since_start: count, sum and the non-empty power-of-two buckets. */
static struct json_object *latency_since_start(struct jb *b, const struct dmasvc_stat_service *st)
{
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();

	put_u64(b, o, "count", st->latency_count);
	put_u64(b, o, "sum_ns", st->latency_sum_ns);
	for (unsigned int k = 0; k < DMASVC_LATENCY_LOG2; k++) {
		struct json_object *e;

		if (!st->latency_log2[k])
			continue;
		e = json_object_new_object();
		put_u64(b, e, "ge_ns", k ? ctl_log2_le_ns(k - 1) + 1 : 0);
		put_u64_or_null(b, e, "le_ns", ctl_log2_le_ns(k), UINT64_MAX);
		put_u64(b, e, "count", st->latency_log2[k]);
		append(b, arr, e);
	}
	put(b, o, "buckets", arr);
	return o;
}

/* "area_rule": "granule", "run", or null (a service older than the field). */
static void put_rule(struct jb *b, struct json_object *o, uint32_t rule)
{
	const char *name = ctl_area_rule(rule);

	if (name)
		put(b, o, "area_rule", json_object_new_string(name));
	else
		put_null(b, o, "area_rule");
}

static struct json_object *session_obj(struct jb *b, const struct dmasvc_stat_session *s)
{
	struct json_object *o = json_object_new_object();

	put_u64(b, o, "session_id", s->session_id);
	put_u64(b, o, "pid", s->pid);
	put_u64(b, o, "uid", s->uid);
	put_u64(b, o, "client_tag", s->client_tag);
	put_u64(b, o, "regions", s->regions);
	put_u64(b, o, "rings", s->rings);
	put_u64(b, o, "devices", s->devices);
	put_u64(b, o, "events", s->events);
	put_u64(b, o, "events_failed", s->events_failed);
	put_u64(b, o, "map_calls", s->map_calls);
	put_u64(b, o, "unmap_calls", s->unmap_calls);
	put_u64(b, o, "resume_repair_maps", s->resume_repair_maps);
	put_u64(b, o, "resume_repair_unmaps", s->resume_repair_unmaps);
	put_u64(b, o, "areas", s->areas);
	put_u64_or_null(b, o, "max_areas", s->max_areas, UINT64_MAX);
	put_u64_or_null(b, o, "budget_left_areas",
			s->max_areas == UINT64_MAX ? UINT64_MAX
			: s->max_areas > s->areas ? s->max_areas - s->areas : 0, UINT64_MAX);
	put_u64(b, o, "reserved_areas", s->reserved_areas);
	put_rule(b, o, s->area_rule);
	put(b, o, "latency_window", latency_window(b, s->latency_p50_ns, s->latency_p99_ns));
	return o;
}

/* document: a top-level object with "version" (NULL on allocation failure). */
static struct json_object *document(struct jb *b)
{
	struct json_object *doc = json_object_new_object();

	put_u64(b, doc, "version", CTL_JSON_VERSION);
	return doc;
}

/* emit: print @doc on one line unless building it failed; frees @doc. */
static int emit(FILE *out, struct jb *b, struct json_object *doc)
{
	int ret = -ENOMEM;

	if (!b->oom) {
		const char *s = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE);

		if (s) {
			fprintf(out, "%s\n", s);
			ret = 0;
		}
	}
	json_object_put(doc);
	return ret;
}

int ctl_json_status(FILE *out, const struct ctl_view *v)
{
	const struct dmasvc_stat_service *st = &v->st;
	struct jb b = { false };
	struct json_object *doc = document(&b), *svc = json_object_new_object(),
			   *arr = json_object_new_array();

	put(&b, svc, "backend", json_object_new_string(st->backend));
	put_u64(&b, svc, "uptime_ns", st->uptime_ns);
	put_u64(&b, svc, "sessions", st->sessions);
	put_u64(&b, svc, "workers", st->workers);
	put_u64(&b, svc, "events", st->events);
	put_u64(&b, svc, "events_failed", st->events_failed);
	put_u64(&b, svc, "map_calls", st->map_calls);
	put_u64(&b, svc, "unmap_calls", st->unmap_calls);
	put_u64(&b, svc, "resume_repair_maps", st->resume_repair_maps);
	put_u64(&b, svc, "resume_repair_unmaps", st->resume_repair_unmaps);
	put_u64(&b, svc, "pinned_bytes", st->pinned_bytes);
	put_u64(&b, svc, "locked_bytes", st->vmlck_bytes);
	put(&b, svc, "locked_source", json_object_new_string(ctl_locked_source(st->backend)));
	put_u64(&b, svc, "areas", st->areas);
	put_u64_or_null(&b, svc, "max_areas", st->max_areas, UINT64_MAX);
	put_rule(&b, svc, st->area_rule);
	put(&b, svc, "latency_window", latency_window(&b, st->latency_p50_ns, st->latency_p99_ns));
	put(&b, svc, "latency_since_start", latency_since_start(&b, st));
	put(&b, doc, "service", svc);
	for (size_t i = 0; i < v->sessions.n; i++)
		append(&b, arr, session_obj(&b, ctl_session(v, i)));
	put(&b, doc, "sessions", arr);
	return emit(out, &b, doc);
}

int ctl_json_regions(FILE *out, const struct ctl_view *v)
{
	struct jb b = { false };
	struct json_object *doc = document(&b), *arr = json_object_new_array();

	for (size_t i = 0; i < v->regions.n; i++) {
		const struct dmasvc_stat_region *r = ctl_region(v, i);
		struct json_object *o = json_object_new_object();

		put_u64(&b, o, "session_id", r->session_id);
		put_u64(&b, o, "region_id", r->region_id);
		put_u64(&b, o, "mem_id", r->mem_id);
		put_u64(&b, o, "flags", r->flags);
		put(&b, o, "readonly", json_object_new_boolean(r->flags & DMASVC_REGION_READONLY));
		put_u64(&b, o, "iova", r->iova);
		put_u64(&b, o, "size", r->size);
		put_u64(&b, o, "granule", r->granule);
		put_u64(&b, o, "populated_bytes", r->populated_bytes);
		put_u64(&b, o, "mapped_bytes", r->mapped_bytes);
		put_u64(&b, o, "pinned_bytes", r->pinned_bytes);
		append(&b, arr, o);
	}
	put(&b, doc, "regions", arr);
	return emit(out, &b, doc);
}

int ctl_json_audit(FILE *out, const struct ctl_audit *a)
{
	struct jb b = { false };
	struct json_object *doc = document(&b), *arr = json_object_new_array();

	put(&b, doc, "ok", json_object_new_boolean(a->all_ok));
	put_u64(&b, doc, "vanished_regions", a->vanished);
	for (size_t i = 0; i < a->n; i++) {
		const struct ctl_audit_region *ar = &a->r[i];
		struct json_object *o = json_object_new_object(), *ext = json_object_new_array();
		bool ok = true;

		put_u64(&b, o, "session_id", ar->session_id);
		put_u64(&b, o, "region_id", ar->region_id);
		for (size_t j = 0; j < ar->extents.n; j++) {
			const struct dmasvc_audit_extent *x = ctl_extent(ar, j);
			struct json_object *e = json_object_new_object();

			ok = ok && x->state == DMASVC_AUDIT_OK;
			put_u64(&b, e, "iova", x->iova);
			put_u64(&b, e, "length", x->length);
			put(&b, e, "state", json_object_new_string(ctl_audit_state(x->state)));
			append(&b, ext, e);
		}
		put(&b, o, "ok", json_object_new_boolean(ok));
		put(&b, o, "extents", ext);
		append(&b, arr, o);
	}
	put(&b, doc, "regions", arr);
	return emit(out, &b, doc);
}
