/* SPDX-License-Identifier: MIT */
/*
 * mb_report.h - what map-bench measured, and its table and JSON output.
 *
 * A result is one (scenario phase, target) over all repetitions: wall time
 * per repetition (the table shows median and min-max), every note's latency
 * pooled over repetitions (p50/p99 by nearest rank), backend call counts
 * and the pinned bytes once the phase ran (medians; unmap calls also
 * min-max, as the ring path's coalescing depends on how the daemon's drains
 * fall).  ratio: for each repetition, direct's wall / the target's wall
 * (the two ran close in time, under the same load); the median of those
 * (> 1: the target is faster than direct).
 */
#ifndef MAPBENCH_MB_REPORT_H
#define MAPBENCH_MB_REPORT_H

#include <stdio.h>

#include "mb.h"
#include "mb_scen.h"

#define MB_MAX_REPS 21

struct mb_inst {
	const struct mb_path_ops *ops;
	unsigned int workers;    /* 0 for direct */
	struct mb_target *t;
	char label[32];          /* "direct", "dmasvc ring w2", ... */
};

struct mb_result {
	unsigned int reps;
	double wall_ms[MB_MAX_REPS];
	uint64_t maps[MB_MAX_REPS];
	uint64_t unmaps[MB_MAX_REPS];
	uint64_t pinned[MB_MAX_REPS]; /* bytes over the baseline after the phase */
	uint64_t *lat_ns;             /* pooled over reps */
	size_t nr_lat;
	int err;                      /* first failure seen, -errno */
};

struct mb_machine {
	char cpu[128];
	long ncpu;
	char kernel[256];
	double load_start[3], load_end[3];
	uint64_t mem_avail;
	char backend[200];       /* what pins: model or real iommufd + device */
	char pin_field[8];       /* "VmLck" or "VmPin" */
	char command[1024];
	char started[32];        /* UTC time */
	unsigned int reps;
	bool prefault;           /* memfds allocated before the timed part */
	bool hugetlb;            /* memfds of 2 MiB huge pages (--hugetlb) */
};

/* mb_report_header: the machine block (table mode). */
void mb_report_header(FILE *f, const struct mb_machine *m);
/* mb_report_table: one phase of @s for all @n targets; res[i] is inst[i]'s. */
void mb_report_table(FILE *f, const struct mb_machine *m, const struct mb_scen *s,
		     unsigned int phase, const struct mb_inst *inst,
		     struct mb_result *res, size_t n);
/* mb_report_skip: a line (or JSON row) for a scenario that did not run. */
void mb_report_skip(FILE *f, bool json, bool *first_row, const char *what,
		    const char *why);
/* JSON: begin (machine), rows (one per target per phase), end. */
void mb_json_begin(FILE *f, const struct mb_machine *m);
void mb_json_rows(FILE *f, bool *first_row, const struct mb_scen *s,
		  unsigned int phase, const struct mb_inst *inst,
		  struct mb_result *res, size_t n);
void mb_json_end(FILE *f, const struct mb_machine *m);

#endif /* MAPBENCH_MB_REPORT_H */
