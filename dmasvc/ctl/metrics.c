/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - dmasvcctl metrics: the Prometheus text exposition format
 * (version 0.0.4), for node_exporter's textfile collector
 * (docs/dmasvcctl-metrics.md has the scrape setup and every metric).
 *
 * Conventions followed: base units in names (_seconds, _bytes), counters
 * end in _total, every family has HELP and TYPE, no sentinel values (a
 * limit that does not exist is no sample, not -1 or 2^64-1).  Labels:
 * "session" (the service's session id; it never changes during a session
 * and is not reused while the service runs) and "region" (the service's
 * region id, the same) identify series; pid, uid, client_tag and area_rule describe
 * a session and appear only on dmasvc_session_info (join on "session"),
 * so they add no series.  Latency is a real histogram: the service's
 * since-start counts per power of two (STATUS latency_log2) summed into
 * cumulative buckets whose bounds are exact bucket edges, 2^k - 1 ns.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ctl_priv.h"

/* Histogram bounds shown: le = 2^k - 1 ns for k in [LE_FIRST, LE_LAST]
 * (1.023 us .. 17.18 s), then +Inf. */
#define LE_FIRST 10
#define LE_LAST 34

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* seconds: @ns as an exact decimal number of seconds. */
static const char *seconds(uint64_t ns, char *buf, size_t len)
{
	uint64_t frac = ns % 1000000000u;
	int n = snprintf(buf, len, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u, frac);

	while (n > 0 && (size_t)n < len && buf[n - 1] == '0' && buf[n - 2] != '.')
		buf[--n] = '\0';
	return buf;
}

/* label: @s escaped as a label value (backslash, double quote, newline). */
static const char *label(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			buf[o++] = '\\';
			buf[o++] = *s;
		} else if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = '\0';
	return buf;
}

/* The area_rule label: "granule", "run" or "unknown" (a service older than the field). */
static const char *rule_label(uint32_t rule)
{
	return ctl_area_rule(rule) ? ctl_area_rule(rule) : "unknown";
}

static void latency_histogram(FILE *out, const struct dmasvc_stat_service *st)
{
	const char *name = "dmasvc_event_latency_seconds";
	uint64_t cum = 0;
	char b[40];
	unsigned int k = 0;

	family(out, name, "histogram",
	       "Service-side latency of ring events, SQE drain to CQE post, all sessions since the "
	       "service started.");
	for (unsigned int le = LE_FIRST; le <= LE_LAST; le++) {
		for (; k <= le && k < DMASVC_LATENCY_LOG2; k++)
			cum += st->latency_log2[k];
		fprintf(out, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
			seconds(ctl_log2_le_ns(le), b, sizeof(b)), cum);
	}
	fprintf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, st->latency_count);
	fprintf(out, "%s_sum %s\n", name, seconds(st->latency_sum_ns, b, sizeof(b)));
	fprintf(out, "%s_count %" PRIu64 "\n", name, st->latency_count);
}

/*
 * A column of a record table shown as a family of samples, one per record:
 * the uint32_t or uint64_t field at @off (@width bytes) of each record,
 * labelled with the record's identity and then @labels.  A row with @type
 * NULL adds samples to the family of the row above it.  @no_max: a record
 * whose value is UINT64_MAX (a limit that does not exist) has no sample.
 */
struct column {
	const char *name, *type, *help;
	const char *labels;
	size_t off, width;
	bool no_max;
};

#define FIELD(type, f) offsetof(type, f), sizeof(((type *)0)->f)
#define SESSION(f) FIELD(struct dmasvc_stat_session, f)
#define REGION(f) FIELD(struct dmasvc_stat_region, f)

/* record_ident: writes the labels that name record @rec (a session or region) into @buf. */
typedef void record_ident(const void *rec, char *buf, size_t len);

static void session_ident(const void *rec, char *buf, size_t len)
{
	const struct dmasvc_stat_session *s = rec;

	snprintf(buf, len, "session=\"%u\"", s->session_id);
}

static void region_ident(const void *rec, char *buf, size_t len)
{
	const struct dmasvc_stat_region *r = rec;

	snprintf(buf, len, "session=\"%u\",region=\"%u\"", r->session_id, r->region_id);
}

/* columns: the families @col[0..@n) over the records of @vec, each named by @ident. */
static void columns(FILE *out, const struct ctl_vec *vec, record_ident *ident,
		    const struct column *col, size_t n)
{
	for (const struct column *c = col; c < col + n; c++) {
		if (c->type)
			family(out, c->name, c->type, c->help);
		for (size_t i = 0; i < vec->n; i++) {
			const char *rec = (const char *)vec->data + i * vec->size;
			uint64_t val = 0;
			uint32_t v32;
			char id[64];

			if (c->width == sizeof(v32)) {
				memcpy(&v32, rec + c->off, sizeof(v32));
				val = v32;
			} else {
				memcpy(&val, rec + c->off, sizeof(val));
			}
			if (c->no_max && val == UINT64_MAX)
				continue;
			ident(rec, id, sizeof(id));
			fprintf(out, "%s{%s%s} %" PRIu64 "\n", c->name, id, c->labels, val);
		}
	}
}

static void sessions(FILE *out, const struct ctl_view *v)
{
	static const struct column col[] = {
		{ "dmasvc_session_events_total", "counter", "Ring events the session completed.", "",
		  SESSION(events), false },
		{ "dmasvc_session_events_failed_total", "counter",
		  "Ring events the session completed with an error.", "", SESSION(events_failed), false },
		{ "dmasvc_session_backend_calls_total", "counter",
		  "Backend map and unmap calls made for the session.", ",op=\"map\"", SESSION(map_calls),
		  false },
		{ "dmasvc_session_backend_calls_total", NULL, NULL, ",op=\"unmap\"", SESSION(unmap_calls),
		  false },
		{ "dmasvc_session_resume_repairs_total", "counter",
		  "Granules replay events of the resumed session had to map or unmap (0 after a consistent resume).",
		  ",op=\"map\"", SESSION(resume_repair_maps), false },
		{ "dmasvc_session_resume_repairs_total", NULL, NULL, ",op=\"unmap\"",
		  SESSION(resume_repair_unmaps), false },
		{ "dmasvc_session_regions", "gauge", "Regions the session has registered.", "",
		  SESSION(regions), false },
		{ "dmasvc_session_rings", "gauge", "Rings (queues) the session has open.", "",
		  SESSION(rings), false },
		{ "dmasvc_session_devices", "gauge", "Devices attached to the session's space.", "",
		  SESSION(devices), false },
		{ "dmasvc_session_areas", "gauge", "Areas mapped in the session's space.", "",
		  SESSION(areas), false },
		{ "dmasvc_session_areas_reserved", "gauge",
		  "Areas the session's regions reserve in the worst case.", "", SESSION(reserved_areas),
		  false },
		{ "dmasvc_session_areas_limit", "gauge",
		  "Area budget of the session's space (no sample: no limit).", "", SESSION(max_areas),
		  true },
	};

	family(out, "dmasvc_session_info", "gauge",
	       "One series per connected client session (always 1): its pid, uid, client tag and its "
	       "space's area rule.");
	for (size_t i = 0; i < v->sessions.n; i++) {
		const struct dmasvc_stat_session *s = ctl_session(v, i);

		fprintf(out, "dmasvc_session_info{session=\"%u\",pid=\"%u\",uid=\"%u\",client_tag=\"0x%" PRIx64
			"\",area_rule=\"%s\"} 1\n", s->session_id, s->pid, s->uid, s->client_tag,
			rule_label(s->area_rule));
	}
	columns(out, &v->sessions, session_ident, col, sizeof(col) / sizeof(col[0]));
}

static void regions(FILE *out, const struct ctl_view *v)
{
	static const struct column col[] = {
		{ "dmasvc_region_size_bytes", "gauge", "Size of the region.", "", REGION(size), false },
		{ "dmasvc_region_granule_bytes", "gauge",
		  "Granule of the region (its unit of populate and discard).", "", REGION(granule), false },
		{ "dmasvc_region_populated_bytes", "gauge",
		  "Bytes of the region the service has populated.", "", REGION(populated_bytes), false },
		{ "dmasvc_region_mapped_bytes", "gauge",
		  "Bytes of the region in areas the backend accepted.", "", REGION(mapped_bytes), false },
		{ "dmasvc_region_pinned_bytes", "gauge", "Bytes the backend holds pinned for the region.",
		  "", REGION(pinned_bytes), false },
	};

	columns(out, &v->regions, region_ident, col, sizeof(col) / sizeof(col[0]));
}

void ctl_metrics(FILE *out, const struct ctl_view *v)
{
	const struct dmasvc_stat_service *st = &v->st;
	char b[40], lb[64];

	family(out, "dmasvc_info", "gauge",
	       "Service information (always 1): the backend in use and the area rule new spaces get.");
	fprintf(out, "dmasvc_info{backend=\"%s\",area_rule=\"%s\"} 1\n", label(st->backend, lb, sizeof(lb)),
		rule_label(st->area_rule));
	family(out, "dmasvc_uptime_seconds", "gauge", "Seconds since the service started.");
	fprintf(out, "dmasvc_uptime_seconds %s\n", seconds(st->uptime_ns, b, sizeof(b)));
	family(out, "dmasvc_workers", "gauge", "Worker threads that run backend map calls.");
	fprintf(out, "dmasvc_workers %u\n", st->workers);
	family(out, "dmasvc_sessions", "gauge", "Connected client sessions (not counting this scrape).");
	fprintf(out, "dmasvc_sessions %u\n", st->sessions);
	family(out, "dmasvc_events_total", "counter", "Ring events (SQEs) completed, all sessions.");
	fprintf(out, "dmasvc_events_total %" PRIu64 "\n", st->events);
	family(out, "dmasvc_events_failed_total", "counter", "Ring events completed with an error.");
	fprintf(out, "dmasvc_events_failed_total %" PRIu64 "\n", st->events_failed);
	family(out, "dmasvc_backend_calls_total", "counter",
	       "Backend map and unmap calls (ioctls on the kernel backends).");
	fprintf(out, "dmasvc_backend_calls_total{op=\"map\"} %" PRIu64 "\n", st->map_calls);
	fprintf(out, "dmasvc_backend_calls_total{op=\"unmap\"} %" PRIu64 "\n", st->unmap_calls);
	family(out, "dmasvc_resume_repairs_total", "counter",
	       "Granules replay events of resumed sessions had to map or unmap, since start.");
	fprintf(out, "dmasvc_resume_repairs_total{op=\"map\"} %" PRIu64 "\n", st->resume_repair_maps);
	fprintf(out, "dmasvc_resume_repairs_total{op=\"unmap\"} %" PRIu64 "\n", st->resume_repair_unmaps);
	family(out, "dmasvc_pinned_bytes", "gauge", "Bytes the backend holds pinned for all sessions.");
	fprintf(out, "dmasvc_pinned_bytes %" PRIu64 "\n", st->pinned_bytes);
	family(out, "dmasvc_process_locked_bytes", "gauge",
	       "The service process's pinned memory as the kernel counts it: VmPin + VmLck on the "
	       "software model (io_uring pins, or its mlock fallback), VmPin on the kernel backends.");
	fprintf(out, "dmasvc_process_locked_bytes %" PRIu64 "\n", st->vmlck_bytes);
	family(out, "dmasvc_areas", "gauge", "Areas mapped, all spaces.");
	fprintf(out, "dmasvc_areas %" PRIu64 "\n", st->areas);
	latency_histogram(out, st);
	sessions(out, v);
	regions(out, v);
}
