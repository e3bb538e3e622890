/* SPDX-License-Identifier: MIT */
/*
 * dmasvcctl.c - look into a running dmasvc: status, regions, audit (text or
 * --json) and metrics (Prometheus text format).  Uses service-wide queries
 * (DMASVC_QUERY_F_ALL_SESSIONS), so it must run as root or as the service's
 * uid.
 *
 * Exit status: 0 success (audit: every extent OK), 1 audit found MISSING or
 * STRAY extents, 2 bad usage, 3 the service could not be queried.
 *
 * Latency figures are service-side: from the SQE drain to the CQE post, over
 * the last one to two seconds (a log-linear histogram; values are bucket
 * upper bounds, at most 12.5% high).
 *
 * It talks to the service through libdmasvc, on a query-only connection
 * (dmasvc_connect_query_only: HELLO and nothing else, so it holds no ring
 * and never takes the service's devices).  Errors are -errno up to report()
 * (or main() for the connect), which prints them with the service's reason.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"

#define EXIT_MISMATCH 1
#define EXIT_USAGE 2
#define EXIT_SERVICE 3

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: dmasvcctl [--socket PATH] COMMAND [--json]\n"
		"Commands:\n"
		"  status    service totals and one line per session (this tool's own\n"
		"            session is not counted)\n"
		"  regions   every region: populated, mapped and pinned bytes\n"
		"  audit     compare the service's per-granule state with what the backend\n"
		"            holds; prints OK/MISSING/STRAY extents\n"
		"  metrics   Prometheus text format\n"
		"Options:\n"
		"  --socket PATH   control socket (default %s)\n"
		"  --json          JSON output (status, regions, audit)\n"
		"  --help          this text\n"
		"Latencies are measured by the service from SQE drain to CQE post.\n"
		"Exit status: 0 ok (audit: all OK), 1 audit found MISSING/STRAY, 2 usage,\n"
		"3 the service could not be queried.\n",
		DMASVC_DEFAULT_SOCKET);
}

/* ---- collecting records -------------------------------------------- */

struct vec {
	void *data;
	size_t n, size;
};

static int vec_push(void *arg, const void *rec)
{
	struct vec *v = arg;
	void *p = realloc(v->data, (v->n + 1) * v->size);

	if (!p)
		return -ENOMEM;
	v->data = p;
	memcpy((char *)v->data + v->n * v->size, rec, v->size);
	v->n++;
	return 0;
}

/*
 * fetch: every record of a service-wide QUERY @what into @v (records of
 * @size bytes; the caller frees v->data).  For AUDIT, @region and @session
 * are the service's ids from a REGIONS record.  Returns 0 or -errno (then
 * @v is empty).
 */
static int fetch(struct dmasvc_client *c, uint32_t what, uint32_t region, uint32_t session,
		 struct vec *v, size_t size)
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

/* The one report of a failed query: what, the errno, the service's reason. */
static int report(struct dmasvc_client *c, const char *what, int ret)
{
	const char *text = dmasvc_last_service_error(c);

	fprintf(stderr, "dmasvcctl: %s: %s%s%s\n", what, strerror(-ret), text[0] ? ": " : "", text);
	return EXIT_SERVICE;
}

/* Remove this tool's own (query-only) session from a SESSIONS listing. */
static void drop_own_session(const struct dmasvc_client *c, struct vec *ss)
{
	struct dmasvc_stat_session *r = ss->data;
	uint32_t own = dmasvc_session_id(c);
	size_t k = 0;

	for (size_t i = 0; i < ss->n; i++)
		if (r[i].session_id != own)
			r[k++] = r[i];
	ss->n = k;
}

/* ---- status -------------------------------------------------------- */

static const char *fmt_left(uint64_t left, char *buf, size_t len)
{
	if (left == UINT64_MAX)
		return "unlimited";
	snprintf(buf, len, "%" PRIu64, left);
	return buf;
}

/*
 * fetch_status_sessions: the service record (@st, backend NUL-terminated)
 * and the session records (@ss, caller frees ss->data), both without this
 * dmasvcctl's own session.  Returns 0, or report()'s exit code.
 */
static int fetch_status_sessions(struct dmasvc_client *c, struct dmasvc_stat_service *st,
				 struct vec *ss)
{
	struct vec sv;
	int ret;

	ret = fetch(c, DMASVC_QUERY_STATUS, 0, 0, &sv, sizeof(*st));
	if (!ret && sv.n != 1)
		ret = -EPROTO;
	if (ret)
		return report(c, "status", ret);
	memcpy(st, sv.data, sizeof(*st));
	free(sv.data);
	st->backend[sizeof(st->backend) - 1] = '\0';
	if (st->sessions)
		st->sessions--; /* not counting this dmasvcctl's own session */
	ret = fetch(c, DMASVC_QUERY_SESSIONS, 0, 0, ss, sizeof(struct dmasvc_stat_session));
	if (ret)
		return report(c, "sessions", ret);
	drop_own_session(c, ss);
	return 0;
}

static int cmd_status(struct dmasvc_client *c, bool json)
{
	struct dmasvc_stat_service st;
	struct vec ss;
	int ret;

	ret = fetch_status_sessions(c, &st, &ss);
	if (ret)
		return ret;
	if (json) {
		printf("{\"service\":{\"backend\":\"%s\",\"uptime_ns\":%" PRIu64 ",\"sessions\":%u,"
		       "\"workers\":%u,\"events\":%" PRIu64 ",\"events_failed\":%" PRIu64
		       ",\"map_calls\":%" PRIu64 ",\"unmap_calls\":%" PRIu64 ",\"pinned_bytes\":%" PRIu64
		       ",\"vmlck_bytes\":%" PRIu64 ",\"areas\":%" PRIu64 ",\"max_areas\":%" PRIu64
		       ",\"latency_p50_ns\":%" PRIu64 ",\"latency_p99_ns\":%" PRIu64 "},\"sessions\":[",
		       st.backend, st.uptime_ns, st.sessions, st.workers, st.events, st.events_failed,
		       st.map_calls, st.unmap_calls, st.pinned_bytes, st.vmlck_bytes, st.areas,
		       st.max_areas, st.latency_p50_ns, st.latency_p99_ns);
	} else {
		printf("service: backend %s, up %.1f s, %u workers, %u sessions\n", st.backend,
		       (double)st.uptime_ns / 1e9, st.workers, st.sessions);
		printf("events: %" PRIu64 " completed, %" PRIu64 " failed; backend calls: map %" PRIu64
		       ", unmap %" PRIu64 "\n", st.events, st.events_failed, st.map_calls, st.unmap_calls);
		printf("areas: %" PRIu64 " mapped", st.areas);
		if (st.max_areas == UINT64_MAX)
			printf(" (no budget limit)");
		else
			printf(" of %" PRIu64 " budgeted", st.max_areas);
		printf("; pinned %" PRIu64 " B; %s %" PRIu64 " B\n", st.pinned_bytes,
		       strcmp(st.backend, "soft") == 0 ? "VmLck" : "VmPin", st.vmlck_bytes);
		printf("latency (service-side, SQE drain to CQE post): p50 %" PRIu64 " ns, p99 %" PRIu64
		       " ns\n", st.latency_p50_ns, st.latency_p99_ns);
	}
	for (size_t i = 0; i < ss.n; i++) {
		const struct dmasvc_stat_session *s = (const struct dmasvc_stat_session *)ss.data + i;
		uint64_t left = s->max_areas == UINT64_MAX ? UINT64_MAX : s->max_areas - s->areas;
		char leftbuf[32];

		if (json)
			printf("%s{\"session_id\":%u,\"pid\":%u,\"uid\":%u,\"client_tag\":%" PRIu64
			       ",\"regions\":%u,\"rings\":%u,\"devices\":%u,\"events\":%" PRIu64
			       ",\"events_failed\":%" PRIu64 ",\"map_calls\":%" PRIu64 ",\"unmap_calls\":%" PRIu64
			       ",\"areas\":%" PRIu64 ",\"max_areas\":%" PRIu64 ",\"reserved_areas\":%" PRIu64
			       ",\"latency_p50_ns\":%" PRIu64 ",\"latency_p99_ns\":%" PRIu64 "}",
			       i ? "," : "", s->session_id, s->pid, s->uid, s->client_tag, s->regions,
			       s->rings, s->devices, s->events, s->events_failed, s->map_calls,
			       s->unmap_calls, s->areas, s->max_areas, s->reserved_areas, s->latency_p50_ns,
			       s->latency_p99_ns);
		else
			printf("session %u: pid %u uid %u tag 0x%" PRIx64 ": %u regions, %u rings, %u devices; "
			       "events %" PRIu64 " (failed %" PRIu64 "); map %" PRIu64 ", unmap %" PRIu64
			       "; areas %" PRIu64 ", budget left %s (reserved %" PRIu64
			       "); p50 %" PRIu64 " ns p99 %" PRIu64 " ns\n",
			       s->session_id, s->pid, s->uid, s->client_tag, s->regions, s->rings,
			       s->devices, s->events, s->events_failed, s->map_calls, s->unmap_calls,
			       s->areas, fmt_left(left, leftbuf, sizeof(leftbuf)), s->reserved_areas,
			       s->latency_p50_ns, s->latency_p99_ns);
	}
	if (json)
		printf("]}\n");
	free(ss.data);
	return 0;
}

/* ---- regions ------------------------------------------------------- */

static int cmd_regions(struct dmasvc_client *c, bool json)
{
	struct vec rv;
	int ret;

	ret = fetch(c, DMASVC_QUERY_REGIONS, 0, 0, &rv, sizeof(struct dmasvc_stat_region));
	if (ret)
		return report(c, "regions", ret);
	if (json)
		printf("[");
	else
		printf("%-7s %-7s %-7s %-18s %-14s %-10s %-14s %-14s %-14s %s\n", "session", "region",
		       "memory", "iova", "size", "granule", "populated", "mapped", "pinned", "flags");
	for (size_t i = 0; i < rv.n; i++) {
		const struct dmasvc_stat_region *r = (const struct dmasvc_stat_region *)rv.data + i;

		if (json)
			printf("%s{\"session_id\":%u,\"region_id\":%u,\"mem_id\":%u,\"flags\":%u,\"iova\":%" PRIu64
			       ",\"size\":%" PRIu64 ",\"granule\":%" PRIu64 ",\"populated_bytes\":%" PRIu64
			       ",\"mapped_bytes\":%" PRIu64 ",\"pinned_bytes\":%" PRIu64 "}",
			       i ? "," : "", r->session_id, r->region_id, r->mem_id, r->flags, r->iova,
			       r->size, r->granule, r->populated_bytes, r->mapped_bytes, r->pinned_bytes);
		else
			printf("%-7u %-7u %-7u 0x%-16" PRIx64 " %-14" PRIu64 " %-10" PRIu64 " %-14" PRIu64
			       " %-14" PRIu64 " %-14" PRIu64 " %s\n",
			       r->session_id, r->region_id, r->mem_id, r->iova, r->size, r->granule,
			       r->populated_bytes, r->mapped_bytes, r->pinned_bytes,
			       (r->flags & DMASVC_REGION_READONLY) ? "ro" : "rw");
	}
	if (json)
		printf("]\n");
	free(rv.data);
	return 0;
}

/* ---- audit --------------------------------------------------------- */

static const char *state_name(uint32_t s)
{
	switch (s) {
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

static int cmd_audit(struct dmasvc_client *c, bool json)
{
	struct vec rv;
	bool all_ok = true;
	size_t shown = 0; /* regions printed: the JSON separator follows it, not i */
	int ret;

	ret = fetch(c, DMASVC_QUERY_REGIONS, 0, 0, &rv, sizeof(struct dmasvc_stat_region));
	if (ret)
		return report(c, "regions", ret);
	if (json)
		printf("{\"regions\":[");
	for (size_t i = 0; i < rv.n; i++) {
		const struct dmasvc_stat_region *r = (const struct dmasvc_stat_region *)rv.data + i;
		struct vec ev;
		size_t bad = 0;

		ret = fetch(c, DMASVC_QUERY_AUDIT, r->region_id, r->session_id, &ev,
			    sizeof(struct dmasvc_audit_extent));
		if (ret == -ENOENT)
			continue; /* removed since the listing */
		if (ret) {
			free(rv.data);
			return report(c, "audit", ret);
		}
		if (json)
			printf("%s{\"session_id\":%u,\"region_id\":%u,\"extents\":[",
			       shown ? "," : "", r->session_id, r->region_id);
		shown++;
		for (size_t j = 0; j < ev.n; j++) {
			const struct dmasvc_audit_extent *x = (const struct dmasvc_audit_extent *)ev.data + j;

			if (x->state != DMASVC_AUDIT_OK)
				bad++;
			if (json)
				printf("%s{\"iova\":%" PRIu64 ",\"length\":%" PRIu64 ",\"state\":\"%s\"}",
				       j ? "," : "", x->iova, x->length, state_name(x->state));
			else
				printf("session %u region %u: %-7s iova 0x%" PRIx64 " len 0x%" PRIx64 "\n",
				       r->session_id, r->region_id, state_name(x->state), x->iova, x->length);
		}
		if (json)
			printf("]}");
		else if (ev.n == 0)
			printf("session %u region %u: OK      (nothing mapped, nothing held)\n",
			       r->session_id, r->region_id);
		if (bad)
			all_ok = false;
		free(ev.data);
	}
	free(rv.data);
	if (json)
		printf("],\"ok\":%s}\n", all_ok ? "true" : "false");
	else
		printf("audit: %s\n", all_ok ? "all OK" : "MISMATCH");
	return all_ok ? 0 : EXIT_MISMATCH;
}

/* ---- metrics ------------------------------------------------------- */

static void metric(const char *name, const char *type, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int cmd_metrics(struct dmasvc_client *c)
{
	struct dmasvc_stat_service st;
	struct vec ss, rv;
	int ret;

	ret = fetch_status_sessions(c, &st, &ss);
	if (ret)
		return ret;
	ret = fetch(c, DMASVC_QUERY_REGIONS, 0, 0, &rv, sizeof(struct dmasvc_stat_region));
	if (ret) {
		free(ss.data);
		return report(c, "regions", ret);
	}
	metric("dmasvc_info", "gauge", "Service information (always 1).");
	printf("dmasvc_info{backend=\"%s\",workers=\"%u\"} 1\n", st.backend, st.workers);
	metric("dmasvc_uptime_seconds", "gauge", "Seconds since the service started.");
	printf("dmasvc_uptime_seconds %.3f\n", (double)st.uptime_ns / 1e9);
	metric("dmasvc_sessions", "gauge", "Connected client sessions.");
	printf("dmasvc_sessions %u\n", st.sessions);
	metric("dmasvc_events_total", "counter", "Ring events (SQEs) completed since start.");
	printf("dmasvc_events_total %" PRIu64 "\n", st.events);
	metric("dmasvc_events_failed_total", "counter", "Ring events completed with an error.");
	printf("dmasvc_events_failed_total %" PRIu64 "\n", st.events_failed);
	metric("dmasvc_backend_calls_total", "counter", "Backend map/unmap calls (ioctls on kernel backends).");
	printf("dmasvc_backend_calls_total{op=\"map\"} %" PRIu64 "\n", st.map_calls);
	printf("dmasvc_backend_calls_total{op=\"unmap\"} %" PRIu64 "\n", st.unmap_calls);
	metric("dmasvc_pinned_bytes", "gauge", "Bytes the backend holds pinned for all sessions.");
	printf("dmasvc_pinned_bytes %" PRIu64 "\n", st.pinned_bytes);
	metric("dmasvc_process_locked_bytes", "gauge", "The service's VmLck (software model) or VmPin (kernel).");
	printf("dmasvc_process_locked_bytes %" PRIu64 "\n", st.vmlck_bytes);
	metric("dmasvc_event_latency_seconds", "gauge",
	       "Service-side event latency, SQE drain to CQE post, recent window (bucket upper bound).");
	printf("dmasvc_event_latency_seconds{quantile=\"0.5\"} %.9f\n", (double)st.latency_p50_ns / 1e9);
	printf("dmasvc_event_latency_seconds{quantile=\"0.99\"} %.9f\n", (double)st.latency_p99_ns / 1e9);
	metric("dmasvc_space_areas", "gauge", "Areas mapped in a session's space.");
	for (size_t i = 0; i < ss.n; i++) {
		const struct dmasvc_stat_session *s = (const struct dmasvc_stat_session *)ss.data + i;

		printf("dmasvc_space_areas{session=\"%u\"} %" PRIu64 "\n", s->session_id, s->areas);
	}
	metric("dmasvc_space_budget_left_areas", "gauge",
	       "Areas a session's space may still map (-1: unlimited).");
	for (size_t i = 0; i < ss.n; i++) {
		const struct dmasvc_stat_session *s = (const struct dmasvc_stat_session *)ss.data + i;

		if (s->max_areas == UINT64_MAX)
			printf("dmasvc_space_budget_left_areas{session=\"%u\"} -1\n", s->session_id);
		else
			printf("dmasvc_space_budget_left_areas{session=\"%u\"} %" PRIu64 "\n", s->session_id,
			       s->max_areas - s->areas);
	}
	metric("dmasvc_region_bytes", "gauge", "Per region: populated, mapped and pinned bytes.");
	for (size_t i = 0; i < rv.n; i++) {
		const struct dmasvc_stat_region *r = (const struct dmasvc_stat_region *)rv.data + i;
		const char *kinds[] = { "populated", "mapped", "pinned" };
		uint64_t vals[] = { r->populated_bytes, r->mapped_bytes, r->pinned_bytes };

		for (int k = 0; k < 3; k++)
			printf("dmasvc_region_bytes{session=\"%u\",region=\"%u\",state=\"%s\"} %" PRIu64 "\n",
			       r->session_id, r->region_id, kinds[k], vals[k]);
	}
	free(ss.data);
	free(rv.data);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DMASVC_DEFAULT_SOCKET, *cmd;
	struct dmasvc_client *c;
	bool json = false;
	int opt, ret;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "dmasvcctl: unknown option '%s'\n", argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	for (; optind < argc; optind++) {
		if (!strcmp(argv[optind], "--json")) {
			json = true;
		} else {
			fprintf(stderr, "dmasvcctl: unexpected argument '%s'\n", argv[optind]);
			return EXIT_USAGE;
		}
	}
	if (strcmp(cmd, "status") && strcmp(cmd, "regions") && strcmp(cmd, "audit") &&
	    strcmp(cmd, "metrics")) {
		fprintf(stderr, "dmasvcctl: unknown command '%s'\n", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (json && !strcmp(cmd, "metrics")) {
		fprintf(stderr, "dmasvcctl: metrics has no --json (it is Prometheus text)\n");
		return EXIT_USAGE;
	}
	ret = dmasvc_connect_query_only(path, NULL, &c);
	if (ret) {
		fprintf(stderr, "dmasvcctl: cannot talk to dmasvc at %s: %s\n", path, strerror(-ret));
		return EXIT_SERVICE;
	}
	if (!strcmp(cmd, "status"))
		ret = cmd_status(c, json);
	else if (!strcmp(cmd, "regions"))
		ret = cmd_regions(c, json);
	else if (!strcmp(cmd, "audit"))
		ret = cmd_audit(c, json);
	else
		ret = cmd_metrics(c);
	fflush(stdout);
	dmasvc_disconnect(c);
	return ret;
}
