/* SPDX-License-Identifier: MIT */
/*
 * mb_report.c - map-bench tables and JSON (see mb_report.h for what each
 * number is).  Both outputs come from the same summary of a result.
 */
#include <inttypes.h>
#include <string.h>

#include "mb_report.h"

/* One result reduced to what is printed. */
struct summary {
	double wall_ms, wall_min, wall_max;
	double ratio;        /* median over reps of direct / this; 0 when unknown */
	double p50_us, p99_us;
	uint64_t maps, unmaps, unmaps_min, unmaps_max;
	uint64_t pinned, populated, whole;
	double pin_ratio;    /* pinned / populated; -1 when populated is 0 */
	uint64_t pages_discarded;
	int err;
};

/*
 * @direct: direct's result of the same phase (wall_ms[] in repetition
 * order), or NULL.  The ratio pairs the two runs of each repetition (they
 * ran minutes apart at most, under the same load) and takes the median.
 */
static void summarise(const struct mb_scen *s, unsigned int phase,
		      struct mb_result *r, const struct mb_result *direct,
		      struct summary *out)
{
	const struct mb_phase *ph = &s->ph[phase];
	double w[MB_MAX_REPS], q[MB_MAX_REPS];
	unsigned int nq = 0;

	memcpy(w, r->wall_ms, sizeof(w));
	out->wall_ms = mb_median_d(w, r->reps); /* sorts w */
	out->wall_min = r->reps ? w[0] : 0;
	out->wall_max = r->reps ? w[r->reps - 1] : 0;
	for (unsigned int i = 0; direct && i < r->reps && i < direct->reps; i++)
		if (r->wall_ms[i] > 0)
			q[nq++] = direct->wall_ms[i] / r->wall_ms[i];
	out->ratio = mb_median_d(q, nq);
	out->p50_us = (double)mb_percentile(r->lat_ns, r->nr_lat, 50) / 1e3;
	out->p99_us = (double)mb_percentile(r->lat_ns, r->nr_lat, 99) / 1e3;
	out->maps = mb_median_u64(r->maps, r->reps);
	out->unmaps = mb_median_u64(r->unmaps, r->reps); /* sorts: [0] min, [reps-1] max */
	out->unmaps_min = r->unmaps[0];
	out->unmaps_max = r->reps ? r->unmaps[r->reps - 1] : 0;
	out->pinned = mb_median_u64(r->pinned, r->reps);
	out->populated = ph->populated_after;
	out->whole = s->size;
	out->pin_ratio = out->populated ? (double)out->pinned / (double)out->populated : -1;
	out->pages_discarded = ph->pages_discarded;
	out->err = r->err;
}

static const struct mb_result *direct_of(const struct mb_result *res,
					 const struct mb_inst *inst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(inst[i].ops->name, "direct") && res[i].reps)
			return &res[i];
	return NULL;
}

void mb_report_header(FILE *f, const struct mb_machine *m)
{
	fprintf(f, "map-bench  %s\n", m->started);
	fprintf(f, "command:   %s\n", m->command);
	fprintf(f, "machine:   %s, %ld cpus, %s\n", m->cpu, m->ncpu, m->kernel);
	fprintf(f, "backend:   %s\n", m->backend);
	fprintf(f, "load:      %.2f %.2f %.2f at start; MemAvailable %.1f GiB\n",
		m->load_start[0], m->load_start[1], m->load_start[2],
		(double)m->mem_avail / (double)GiB);
	fprintf(f, "method:    %u repetitions, targets interleaved (order rotated each\n"
		   "           repetition); wall = median (min-max); ratio = median over\n"
		   "           repetitions of direct / target in the same repetition (> 1:\n"
		   "           faster than direct); p50/p99 over every note of every repetition;\n"
		   "           pinned = %s of the pinning process over its baseline;\n"
		   "           the daemons of the targets not running are stopped (SIGSTOP)\n",
		m->reps, m->pin_field);
	fprintf(f, "memory:    %s%s\n\n", m->prefault ?
		"--prefault: each memfd is allocated before the timed part (pins find the pages)" :
		"each memfd starts empty: the pin allocates and zeroes the pages (as a plug does)",
		m->hugetlb ? "\n           --hugetlb: memfds of 2 MiB huge pages (hugetlbfs)" : "");
}

void mb_report_table(FILE *f, const struct mb_machine *m, const struct mb_scen *s,
		     unsigned int phase, const struct mb_inst *inst,
		     struct mb_result *res, size_t n)
{
	const struct mb_phase *ph = &s->ph[phase];
	const struct mb_result *d = direct_of(res, inst, n);
	char a[24], b[24], c[24];

	fprintf(f, "== %s: %s ==\n", ph->name, s->title);
	fprintf(f, "%-16s %10s %19s %7s %9s %9s %9s %15s %17s %12s\n", "path", "wall ms",
		"(min-max)", "ratio", "p50 us", "p99 us", "maps", "unmaps (range)", "pinned/populated",
		"whole-region");
	for (size_t i = 0; i < n; i++) {
		struct summary sm;
		char pr[24], um[48], mm[48];

		if (!res[i].reps)
			continue;
		summarise(s, phase, &res[i], d, &sm);
		if (sm.pin_ratio < 0)
			snprintf(pr, sizeof(pr), "%s / 0", mb_fmt_size(c, sm.pinned));
		else
			snprintf(pr, sizeof(pr), "%.3f", sm.pin_ratio);
		if (sm.unmaps_min == sm.unmaps_max)
			snprintf(um, sizeof(um), "%" PRIu64, sm.unmaps);
		else
			snprintf(um, sizeof(um), "%" PRIu64 " (%" PRIu64 "-%" PRIu64 ")",
				 sm.unmaps, sm.unmaps_min, sm.unmaps_max);
		snprintf(mm, sizeof(mm), sm.wall_max >= 100 ? "(%.0f-%.0f)" : "(%.3g-%.3g)",
			 sm.wall_min, sm.wall_max);
		fprintf(f, "%-16s %10.3f %19s %7.3f %9.1f %9.1f %9" PRIu64 " %15s %17s %12s%s\n",
			inst[i].label, sm.wall_ms, mm, sm.ratio, sm.p50_us, sm.p99_us, sm.maps,
			um, pr, mb_fmt_size(a, sm.whole),
			sm.err ? "  FAILED" : "");
		if (sm.err)
			fprintf(f, "    ^ error: %s\n", strerror(-sm.err));
	}
	fprintf(f, "(populated after the phase: %s; %" PRIu64 " pages of 4 KiB discarded by its notes;"
		   " whole-region = what a VMM without discard tracking pins: the region, %s)\n\n",
		mb_fmt_size(b, ph->populated_after), ph->pages_discarded,
		mb_fmt_size(a, s->size));
	(void)m;
}

void mb_report_skip(FILE *f, bool json, bool *first_row, const char *what,
		    const char *why)
{
	if (!json) {
		fprintf(f, "== SKIPPED: %s: %s ==\n\n", what, why);
		return;
	}
	fprintf(f, "%s\n  {\"skipped\": \"%s\", \"why\": \"%s\"}", *first_row ? "" : ",", what, why);
	*first_row = false;
}

/* JSON string body: the bench's own strings only contain printable ASCII;
 * quotes and backslashes are escaped. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s >= 0x20)
			fputc(*s, f);
	}
	fputc('"', f);
}

void mb_json_begin(FILE *f, const struct mb_machine *m)
{
	fputs("{\"machine\": {\"cpu\": ", f);
	json_str(f, m->cpu);
	fprintf(f, ", \"cpus\": %ld, \"kernel\": ", m->ncpu);
	json_str(f, m->kernel);
	fputs(", \"backend\": ", f);
	json_str(f, m->backend);
	fprintf(f, ", \"pin_field\": \"%s\", \"load_start\": [%.2f, %.2f, %.2f], "
		   "\"mem_available\": %" PRIu64 ", \"started\": \"%s\", \"reps\": %u, "
		   "\"prefault\": %s, \"hugetlb\": %s},\n"
		   " \"command\": ",
		m->pin_field, m->load_start[0], m->load_start[1], m->load_start[2],
		m->mem_avail, m->started, m->reps, m->prefault ? "true" : "false",
		m->hugetlb ? "true" : "false");
	json_str(f, m->command);
	fputs(",\n \"rows\": [", f);
}

void mb_json_rows(FILE *f, bool *first_row, const struct mb_scen *s,
		  unsigned int phase, const struct mb_inst *inst,
		  struct mb_result *res, size_t n)
{
	const struct mb_result *d = direct_of(res, inst, n);

	for (size_t i = 0; i < n; i++) {
		struct summary sm;

		if (!res[i].reps)
			continue;
		summarise(s, phase, &res[i], d, &sm);
		fprintf(f, "%s\n  {\"scenario\": \"%s\", \"phase\": \"%s\", \"size\": %" PRIu64
			   ", \"granule\": %" PRIu64 ", \"notes\": %zu, \"path\": \"%s\", "
			   "\"workers\": %u, \"label\": \"%s\", \"reps\": %u, \"wall_ms\": %.3f, "
			   "\"wall_ms_min\": %.3f, \"wall_ms_max\": %.3f, "
			   "\"ratio_direct_over_path\": %.4f, \"lat_p50_us\": %.3f"
			   ", \"lat_p99_us\": %.3f, \"map_calls\": %" PRIu64
			   ", \"unmap_calls\": %" PRIu64 ", \"unmap_calls_min\": %" PRIu64
			   ", \"unmap_calls_max\": %" PRIu64 ", \"pages_discarded\": %" PRIu64
			   ", \"pinned_bytes\": %" PRIu64 ", \"populated_bytes\": %" PRIu64
			   ", \"pinned_over_populated\": %.4f, \"whole_region_pin_bytes\": %" PRIu64
			   ", \"error\": %d}",
			*first_row ? "" : ",", s->kind, s->ph[phase].name, s->size, s->granule,
			s->ph[phase].nr_notes, inst[i].ops->name, inst[i].workers, inst[i].label,
			res[i].reps, sm.wall_ms, sm.wall_min, sm.wall_max, sm.ratio, sm.p50_us, sm.p99_us, sm.maps,
			sm.unmaps, sm.unmaps_min, sm.unmaps_max, sm.pages_discarded, sm.pinned, sm.populated,
			sm.pin_ratio, sm.whole, sm.err);
		*first_row = false;
	}
}

void mb_json_end(FILE *f, const struct mb_machine *m)
{
	fprintf(f, "\n ],\n \"load_end\": [%.2f, %.2f, %.2f]}\n", m->load_end[0],
		m->load_end[1], m->load_end[2]);
}
