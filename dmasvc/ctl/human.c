/* SPDX-License-Identifier: MIT */
/*
 * human.c - dmasvcctl's text output: every figure with its unit.
 * Latency percentiles are printed as what they are, upper bounds of the
 * service's histogram buckets ("p50 <= 16.8 ms", rounded up so the
 * statement stays true); byte counts in binary units (KiB, MiB, GiB, TiB).
 */
#include <inttypes.h>
#include <string.h>

#include "ctl_priv.h"

/*
 * fmt_ns: @ns in the largest unit (ns, us, ms, s) that keeps it >= 1, with
 * 3 significant digits; rounded up if @up (for bounds), else to nearest.
 * Returns @buf.
 */
static const char *fmt_ns(uint64_t ns, bool up, char *buf, size_t len)
{
	static const struct {
		uint64_t div;
		const char *unit;
	} u[] = { { 1, "ns" }, { 1000, "us" }, { 1000000, "ms" }, { 1000000000, "s" } };
	unsigned int i = 0, dec;
	unsigned __int128 scaled, q, pow10 = 1;

	while (i < 3 && ns >= u[i + 1].div)
		i++;
	dec = ns / u[i].div >= 100 || i == 0 ? 0 : ns / u[i].div >= 10 ? 1 : 2;
	for (unsigned int k = 0; k < dec; k++)
		pow10 *= 10;
	scaled = (unsigned __int128)ns * pow10;
	q = up ? (scaled + u[i].div - 1) / u[i].div : (scaled + u[i].div / 2) / u[i].div;
	if (dec)
		snprintf(buf, len, "%" PRIu64 ".%0*" PRIu64 " %s", (uint64_t)(q / pow10), (int)dec,
			 (uint64_t)(q % pow10), u[i].unit);
	else
		snprintf(buf, len, "%" PRIu64 " %s", (uint64_t)q, u[i].unit);
	return buf;
}

/* fmt_le: "<= X unit" for a bucket bound, or "-" when no event was timed. */
static const char *fmt_le(uint64_t ns, char *buf, size_t len)
{
	char v[32];

	if (!ns)
		return "-";
	snprintf(buf, len, "<= %s", fmt_ns(ns, true, v, sizeof(v)));
	return buf;
}

/* fmt_bytes: "512 B", "6.0 MiB", ... (nearest, one decimal).  Returns @buf. */
static const char *fmt_bytes(uint64_t b, char *buf, size_t len)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned int i = 0;
	double x;

	if (b < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", b);
		return buf;
	}
	x = (double)b / 1024.0;
	while (x >= 1024.0 && i < 5) {
		x /= 1024.0;
		i++;
	}
	snprintf(buf, len, "%.1f %s", x, unit[i]);
	return buf;
}

/* " (rule: NAME)" for a known area rule, "" for an unknown one. */
static const char *fmt_rule(uint32_t rule, char *buf, size_t len)
{
	const char *name = ctl_area_rule(rule);

	if (!name)
		return "";
	snprintf(buf, len, " (rule: %s)", name);
	return buf;
}

void ctl_human_status(FILE *out, const struct ctl_view *v)
{
	const struct dmasvc_stat_service *st = &v->st;
	char b1[32], b2[32], b3[32], rule[24];

	fprintf(out, "service: backend %s, up %s, %u workers, %u sessions\n", st->backend,
		fmt_ns(st->uptime_ns, false, b1, sizeof(b1)), st->workers, st->sessions);
	fprintf(out, "events: %" PRIu64 " completed, %" PRIu64 " failed; backend calls: map %" PRIu64
		", unmap %" PRIu64 "\n", st->events, st->events_failed, st->map_calls, st->unmap_calls);
	if (st->resume_repair_maps || st->resume_repair_unmaps) /* only after a restart's repairs */
		fprintf(out, "resume repairs: %" PRIu64 " granules mapped, %" PRIu64 " unmapped\n",
			st->resume_repair_maps, st->resume_repair_unmaps);
	fprintf(out, "areas: %" PRIu64 " mapped%s", st->areas,
		fmt_rule(st->area_rule, rule, sizeof(rule)));
	if (st->max_areas == UINT64_MAX)
		fprintf(out, " (no budget limit)");
	else
		fprintf(out, " of %" PRIu64 " budgeted", st->max_areas);
	fprintf(out, "; pinned %s; %s %s\n", fmt_bytes(st->pinned_bytes, b1, sizeof(b1)),
		ctl_locked_source(st->backend), fmt_bytes(st->vmlck_bytes, b2, sizeof(b2)));
	fprintf(out, "latency (service-side, SQE drain to CQE post): last 1-2 s p50 %s, p99 %s",
		fmt_le(st->latency_p50_ns, b1, sizeof(b1)), fmt_le(st->latency_p99_ns, b2, sizeof(b2)));
	if (st->latency_count)
		fprintf(out, "; since start %" PRIu64 " events, mean %s\n", st->latency_count,
			fmt_ns(st->latency_sum_ns / st->latency_count, false, b3, sizeof(b3)));
	else
		fprintf(out, "; since start no events\n");
	for (size_t i = 0; i < v->sessions.n; i++) {
		const struct dmasvc_stat_session *s = ctl_session(v, i);
		char left[32];

		if (s->max_areas == UINT64_MAX)
			snprintf(left, sizeof(left), "unlimited");
		else
			snprintf(left, sizeof(left), "%" PRIu64,
				 s->max_areas > s->areas ? s->max_areas - s->areas : 0);
		fprintf(out, "session %u: pid %u uid %u tag 0x%" PRIx64 ": %u regions, %u rings, %u devices; "
			"events %" PRIu64 " (failed %" PRIu64 "); map %" PRIu64 ", unmap %" PRIu64
			"; areas %" PRIu64 "%s, budget left %s (reserved %" PRIu64 "); p50 %s, p99 %s\n",
			s->session_id, s->pid, s->uid, s->client_tag, s->regions, s->rings, s->devices,
			s->events, s->events_failed, s->map_calls, s->unmap_calls, s->areas,
			fmt_rule(s->area_rule, rule, sizeof(rule)), left,
			s->reserved_areas, fmt_le(s->latency_p50_ns, b1, sizeof(b1)),
			fmt_le(s->latency_p99_ns, b2, sizeof(b2)));
		if (s->resume_repair_maps || s->resume_repair_unmaps)
			fprintf(out, "session %u: resume repairs: %" PRIu64 " granules mapped, %" PRIu64
				" unmapped\n", s->session_id, s->resume_repair_maps, s->resume_repair_unmaps);
	}
}

void ctl_human_regions(FILE *out, const struct ctl_view *v)
{
	fprintf(out, "%-7s %-7s %-7s %-18s %-10s %-10s %-10s %-10s %-10s %s\n", "session", "region",
		"memory", "iova", "size", "granule", "populated", "mapped", "pinned", "flags");
	for (size_t i = 0; i < v->regions.n; i++) {
		const struct dmasvc_stat_region *r = ctl_region(v, i);
		char b[5][32];

		fprintf(out, "%-7u %-7u %-7u 0x%-16" PRIx64 " %-10s %-10s %-10s %-10s %-10s %s\n",
			r->session_id, r->region_id, r->mem_id, r->iova,
			fmt_bytes(r->size, b[0], sizeof(b[0])), fmt_bytes(r->granule, b[1], sizeof(b[1])),
			fmt_bytes(r->populated_bytes, b[2], sizeof(b[2])),
			fmt_bytes(r->mapped_bytes, b[3], sizeof(b[3])),
			fmt_bytes(r->pinned_bytes, b[4], sizeof(b[4])),
			(r->flags & DMASVC_REGION_READONLY) ? "ro" : "rw");
	}
}

void ctl_human_audit(FILE *out, const struct ctl_audit *a)
{
	for (size_t i = 0; i < a->n; i++) {
		const struct ctl_audit_region *ar = &a->r[i];

		for (size_t j = 0; j < ar->extents.n; j++) {
			const struct dmasvc_audit_extent *x = ctl_extent(ar, j);
			char b[32];

			fprintf(out, "session %u region %u: %-7s iova 0x%" PRIx64 " len 0x%" PRIx64 " (%s)\n",
				ar->session_id, ar->region_id, ctl_audit_state(x->state), x->iova, x->length,
				fmt_bytes(x->length, b, sizeof(b)));
		}
		if (!ar->extents.n)
			fprintf(out, "session %u region %u: OK      (nothing mapped, nothing held)\n",
				ar->session_id, ar->region_id);
	}
	if (a->vanished)
		fprintf(out, "(%zu regions were removed while the audit ran)\n", a->vanished);
	fprintf(out, "audit: %s\n", a->all_ok ? "all OK" : "MISMATCH");
}
