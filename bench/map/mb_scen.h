/* SPDX-License-Identifier: MIT */
/*
 * mb_scen.h - map-bench scenarios: what the VMM tells the IOMMU owner, as
 * phases of batches of notes, built once and replayed identically on every
 * path.
 *
 *   plug    virtio-mem: a region of `size` bytes at `granule`, plugged in
 *           128 MiB requests (one populate note each, one batch each: QEMU
 *           waits for every notification), then unplugged the same way;
 *   storm   guest_memfd conversions at 4 KiB: a region starting private
 *           (discarded); each conversion picks a run of 1..256 pages and a
 *           direction; a run wholly in the other state is one note, a mixed
 *           run is one note per page that changes (QEMU's
 *           RamBlockAttributes); one batch per conversion;
 *   burst   N contiguous 4 KiB pages populated with one note (not
 *           reported), then discarded page by page: N notes, one batch;
 *   sync    what a vCPU exit costs (issue 16's latency target): N distinct
 *           random 4 KiB pages populated one note per batch, each waited
 *           for, then discarded the same way (the p50/p99 columns are the
 *           per-conversion latency).
 *
 * A phase knows the bytes that are populated once it ran, so the bench can
 * compare pins with it.
 */
#ifndef MAPBENCH_MB_SCEN_H
#define MAPBENCH_MB_SCEN_H

#include "mb.h"

#define MB_PLUG_REQUEST (128 * MiB)
#define MB_PAGE (4 * KiB)
#define MB_MAX_PHASES 2

struct mb_phase {
	const char *name;        /* "plug", "unplug", "storm", "discard burst" */
	bool report;             /* false: a set-up phase, not in the tables */
	struct mb_note *notes;
	size_t nr_notes;
	size_t *batch_end;       /* batch b is notes [end[b-1], end[b]) */
	size_t nr_batches;
	uint64_t populated_after;
	uint64_t pages_discarded; /* 4 KiB pages discarded by the phase's notes */
};

struct mb_scen {
	char kind[8];            /* "plug", "storm", "burst", "sync" */
	char title[128];
	uint64_t size;           /* region bytes */
	uint64_t granule;
	struct mb_phase ph[MB_MAX_PHASES];
	unsigned int nr_phases;
};

/* Builders: 0 or -ENOMEM / -EINVAL (size not a multiple of 128 MiB). */
int mb_scen_plug(struct mb_scen *s, uint64_t size, uint64_t granule);
int mb_scen_storm(struct mb_scen *s, uint64_t size, unsigned int conversions,
		  uint64_t seed);
int mb_scen_burst(struct mb_scen *s, uint64_t pages);
int mb_scen_sync(struct mb_scen *s, unsigned int notes, uint64_t seed);
void mb_scen_free(struct mb_scen *s);

#endif /* MAPBENCH_MB_SCEN_H */
