/* SPDX-License-Identifier: MIT */
/*
 * ctl_priv.h - dmasvcctl's parts.  Do not include from outside dmasvc/ctl/.
 *
 * A command first reads everything it shows (read.c: service-wide QUERY
 * records through libdmasvc), then one formatter prints it: human.c (text
 * with units), json.c (json-c, the schema of docs/dmasvcctl-json.md),
 * metrics.c (Prometheus text format).  Nothing is printed before every
 * read succeeded, so a failed command prints nothing on stdout.
 *
 * Vocabulary: a "view" is the service record plus the session and region
 * records of one run; this dmasvcctl's own query-only session is left out
 * of it.  Latency "le" values are upper bounds of the service's histogram
 * buckets (the true value is at most 12.5% lower).
 */
#ifndef DMASVC_CTL_PRIV_H
#define DMASVC_CTL_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dmasvc/dmasvc.h"

/* The "version" of every JSON document (docs/dmasvcctl-json.md). */
#define CTL_JSON_VERSION 1

/* Records of one kind, in service order; the owner frees data. */
struct ctl_vec {
	void *data;
	size_t n;
	size_t size; /* bytes per record */
};

struct ctl_view {
	struct dmasvc_stat_service st; /* backend NUL-terminated; sessions
					  without this tool's own */
	struct ctl_vec sessions;       /* dmasvc_stat_session, own left out */
	struct ctl_vec regions;        /* dmasvc_stat_region (if asked) */
};

struct ctl_audit_region {
	uint32_t session_id;
	uint32_t region_id;
	struct ctl_vec extents; /* dmasvc_audit_extent */
};

struct ctl_audit {
	struct ctl_audit_region *r;
	size_t n;
	size_t vanished; /* regions listed, then removed before their audit */
	bool all_ok;     /* no MISSING or STRAY extent */
};

/* The @i-th record (@i < n) of @v's sessions, @v's regions, @ar's extents. */
static inline const struct dmasvc_stat_session *ctl_session(const struct ctl_view *v, size_t i)
{
	return (const struct dmasvc_stat_session *)v->sessions.data + i;
}

static inline const struct dmasvc_stat_region *ctl_region(const struct ctl_view *v, size_t i)
{
	return (const struct dmasvc_stat_region *)v->regions.data + i;
}

static inline const struct dmasvc_audit_extent *ctl_extent(const struct ctl_audit_region *ar,
							   size_t i)
{
	return (const struct dmasvc_audit_extent *)ar->extents.data + i;
}

/* ---- read.c ---- */

/*
 * ctl_read_view: the service record and the sessions, and the regions if
 * @regions (else v->regions is empty).
 *   returns: 0, or -errno with *@what naming the query that failed (then
 *            @v holds nothing to free).
 */
int ctl_read_view(struct dmasvc_client *c, bool regions, struct ctl_view *v, const char **what);

/* ctl_read_regions: only the region records into v->regions (else as above). */
int ctl_read_regions(struct dmasvc_client *c, struct ctl_view *v, const char **what);

/* ctl_view_free: free what a successful read put in @v. */
void ctl_view_free(struct ctl_view *v);

/*
 * ctl_read_audit: list every region, then audit each; a region removed
 * between the two (-ENOENT) is counted in a->vanished and left out.
 *   returns: 0, or -errno with *@what set (then @a holds nothing).
 */
int ctl_read_audit(struct dmasvc_client *c, struct ctl_audit *a, const char **what);

/* ctl_audit_free: free what a successful ctl_read_audit put in @a. */
void ctl_audit_free(struct ctl_audit *a);

/* ctl_audit_state: "OK", "MISSING", "STRAY" (or "UNKNOWN"). */
const char *ctl_audit_state(uint32_t state);

/* ctl_locked_source: what vmlck_bytes measures on @backend: "VmPin+VmLck" (the model) or "VmPin". */
const char *ctl_locked_source(const char *backend);

/* ctl_area_rule: "granule" or "run" for a DMASVC_AREA_RULE_*, NULL when
 * unknown (a service older than the field). */
const char *ctl_area_rule(uint32_t rule);

/*
 * ctl_log2_le_ns: the largest latency in ns that entry @k of
 * dmasvc_stat_service.latency_log2 holds (2^k - 1; UINT64_MAX for the last).
 */
uint64_t ctl_log2_le_ns(unsigned int k);

/* ---- formatters: each prints one whole command's output to @out ---- */

void ctl_human_status(FILE *out, const struct ctl_view *v);
void ctl_human_regions(FILE *out, const struct ctl_view *v);
void ctl_human_audit(FILE *out, const struct ctl_audit *a);

/* JSON: return 0, or -ENOMEM (then nothing was printed). */
int ctl_json_status(FILE *out, const struct ctl_view *v);
int ctl_json_regions(FILE *out, const struct ctl_view *v);
int ctl_json_audit(FILE *out, const struct ctl_audit *a);

void ctl_metrics(FILE *out, const struct ctl_view *v);

#endif /* DMASVC_CTL_PRIV_H */
