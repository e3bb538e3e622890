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
 * region id, the same) identify series; pid, uid and client_tag describe
 * a session and appear only on dmasvc_session_info (join on "session"),
 * so they add no series.  Latency is a real histogram: the service's
 * since-start counts per power of two (STATUS latency_log2) summed into
 * cumulative buckets whose bounds are exact bucket edges, 2^k - 1 ns.
 */
#include <inttypes.h>
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

/* One sample per session of @name: @get(session). */
#define PER_SESSION(out, v, name, expr)                                                      \
	do {                                                                                 \
		for (size_t i_ = 0; i_ < (v)->sessions.n; i_++) {                            \
			const struct dmasvc_stat_session *s =                                \
				(const struct dmasvc_stat_session *)(v)->sessions.data + i_; \
			fprintf(out, "%s{session=\"%u\"} %" PRIu64 "\n", name, s->session_id,  \
				(uint64_t)(expr));                                           \
		}                                                                            \
	} while (0)

static void sessions(FILE *out, const struct ctl_view *v)
{
	family(out, "dmasvc_session_info", "gauge",
	       "One series per connected client session (always 1): its pid, uid and client tag.");
	for (size_t i = 0; i < v->sessions.n; i++) {
		const struct dmasvc_stat_session *s = (const struct dmasvc_stat_session *)v->sessions.data + i;

		fprintf(out, "dmasvc_session_info{session=\"%u\",pid=\"%u\",uid=\"%u\",client_tag=\"0x%" PRIx64
			"\"} 1\n", s->session_id, s->pid, s->uid, s->client_tag);
	}
	family(out, "dmasvc_session_events_total", "counter", "Ring events the session completed.");
	PER_SESSION(out, v, "dmasvc_session_events_total", s->events);
	family(out, "dmasvc_session_events_failed_total", "counter",
	       "Ring events the session completed with an error.");
	PER_SESSION(out, v, "dmasvc_session_events_failed_total", s->events_failed);
	family(out, "dmasvc_session_backend_calls_total", "counter",
	       "Backend map and unmap calls made for the session.");
	for (size_t i = 0; i < v->sessions.n; i++) {
		const struct dmasvc_stat_session *s = (const struct dmasvc_stat_session *)v->sessions.data + i;

		fprintf(out, "dmasvc_session_backend_calls_total{session=\"%u\",op=\"map\"} %" PRIu64 "\n",
			s->session_id, s->map_calls);
		fprintf(out, "dmasvc_session_backend_calls_total{session=\"%u\",op=\"unmap\"} %" PRIu64 "\n",
			s->session_id, s->unmap_calls);
	}
	family(out, "dmasvc_session_regions", "gauge", "Regions the session has registered.");
	PER_SESSION(out, v, "dmasvc_session_regions", s->regions);
	family(out, "dmasvc_session_rings", "gauge", "Rings (queues) the session has open.");
	PER_SESSION(out, v, "dmasvc_session_rings", s->rings);
	family(out, "dmasvc_session_devices", "gauge", "Devices attached to the session's space.");
	PER_SESSION(out, v, "dmasvc_session_devices", s->devices);
	family(out, "dmasvc_session_areas", "gauge", "Areas mapped in the session's space.");
	PER_SESSION(out, v, "dmasvc_session_areas", s->areas);
	family(out, "dmasvc_session_areas_reserved", "gauge",
	       "Areas the session's regions reserve in the worst case.");
	PER_SESSION(out, v, "dmasvc_session_areas_reserved", s->reserved_areas);
	family(out, "dmasvc_session_areas_limit", "gauge",
	       "Area budget of the session's space (no sample: no limit).");
	for (size_t i = 0; i < v->sessions.n; i++) {
		const struct dmasvc_stat_session *s = (const struct dmasvc_stat_session *)v->sessions.data + i;

		if (s->max_areas != UINT64_MAX)
			fprintf(out, "dmasvc_session_areas_limit{session=\"%u\"} %" PRIu64 "\n", s->session_id,
				s->max_areas);
	}
}

static void regions(FILE *out, const struct ctl_view *v)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} f[] = {
		{ "dmasvc_region_size_bytes", "Size of the region.",
		  offsetof(struct dmasvc_stat_region, size) },
		{ "dmasvc_region_granule_bytes", "Granule of the region (its unit of populate and discard).",
		  offsetof(struct dmasvc_stat_region, granule) },
		{ "dmasvc_region_populated_bytes", "Bytes of the region the service has populated.",
		  offsetof(struct dmasvc_stat_region, populated_bytes) },
		{ "dmasvc_region_mapped_bytes", "Bytes of the region in areas the backend accepted.",
		  offsetof(struct dmasvc_stat_region, mapped_bytes) },
		{ "dmasvc_region_pinned_bytes", "Bytes the backend holds pinned for the region.",
		  offsetof(struct dmasvc_stat_region, pinned_bytes) },
	};

	for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
		family(out, f[k].name, "gauge", f[k].help);
		for (size_t i = 0; i < v->regions.n; i++) {
			const char *r = (const char *)v->regions.data + i * v->regions.size;
			const struct dmasvc_stat_region *rr = (const struct dmasvc_stat_region *)r;
			uint64_t val;

			memcpy(&val, r + f[k].off, sizeof(val));
			fprintf(out, "%s{session=\"%u\",region=\"%u\"} %" PRIu64 "\n", f[k].name,
				rr->session_id, rr->region_id, val);
		}
	}
}

void ctl_metrics(FILE *out, const struct ctl_view *v)
{
	const struct dmasvc_stat_service *st = &v->st;
	char b[40], lb[64];

	family(out, "dmasvc_info", "gauge", "Service information (always 1): the backend in use.");
	fprintf(out, "dmasvc_info{backend=\"%s\"} 1\n", label(st->backend, lb, sizeof(lb)));
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
	family(out, "dmasvc_pinned_bytes", "gauge", "Bytes the backend holds pinned for all sessions.");
	fprintf(out, "dmasvc_pinned_bytes %" PRIu64 "\n", st->pinned_bytes);
	family(out, "dmasvc_process_locked_bytes", "gauge",
	       "The service process's locked memory as the kernel counts it: VmLck on the software "
	       "model, VmPin on the kernel backends.");
	fprintf(out, "dmasvc_process_locked_bytes %" PRIu64 "\n", st->vmlck_bytes);
	family(out, "dmasvc_areas", "gauge", "Areas mapped, all spaces.");
	fprintf(out, "dmasvc_areas %" PRIu64 "\n", st->areas);
	latency_histogram(out, st);
	sessions(out, v);
	regions(out, v);
}
