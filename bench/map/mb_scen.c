/* SPDX-License-Identifier: MIT */
/*
 * mb_scen.c - builds the scenarios of mb_scen.h as arrays of notes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mb_scen.h"

/* A growable phase under construction. */
struct phase_buf {
	struct mb_phase *ph;
	size_t note_cap, batch_cap;
};

static int add_note(struct phase_buf *b, uint64_t off, uint64_t len, bool populate)
{
	struct mb_phase *ph = b->ph;

	if (ph->nr_notes == b->note_cap) {
		size_t cap = b->note_cap ? 2 * b->note_cap : 256;
		struct mb_note *n = realloc(ph->notes, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		ph->notes = n;
		b->note_cap = cap;
	}
	ph->notes[ph->nr_notes++] = (struct mb_note){ off, len, populate };
	if (!populate)
		ph->pages_discarded += len / MB_PAGE;
	return 0;
}

/* Close the current batch (no-op when it is empty). */
static int end_batch(struct phase_buf *b)
{
	struct mb_phase *ph = b->ph;
	size_t prev = ph->nr_batches ? ph->batch_end[ph->nr_batches - 1] : 0;

	if (ph->nr_notes == prev)
		return 0;
	if (ph->nr_batches == b->batch_cap) {
		size_t cap = b->batch_cap ? 2 * b->batch_cap : 64;
		size_t *e = realloc(ph->batch_end, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		ph->batch_end = e;
		b->batch_cap = cap;
	}
	ph->batch_end[ph->nr_batches++] = ph->nr_notes;
	return 0;
}

static int one_batch_note(struct mb_phase *ph, uint64_t off, uint64_t len, bool populate)
{
	struct phase_buf b = { .ph = ph };

	return add_note(&b, off, len, populate) ?: end_batch(&b);
}

int mb_scen_plug(struct mb_scen *s, uint64_t size, uint64_t granule)
{
	struct phase_buf plug, unplug;
	char a[24], g[24];
	int ret = 0;

	memset(s, 0, sizeof(*s));
	if (!size || size % MB_PLUG_REQUEST || MB_PLUG_REQUEST % granule)
		return -EINVAL;
	strcpy(s->kind, "plug");
	s->size = size;
	s->granule = granule;
	s->nr_phases = 2;
	s->ph[0] = (struct mb_phase){ .name = "plug", .report = true, .populated_after = size };
	s->ph[1] = (struct mb_phase){ .name = "unplug", .report = true };
	plug = (struct phase_buf){ .ph = &s->ph[0] };
	unplug = (struct phase_buf){ .ph = &s->ph[1] };
	for (uint64_t off = 0; off < size && !ret; off += MB_PLUG_REQUEST) {
		ret = add_note(&plug, off, MB_PLUG_REQUEST, true) ?: end_batch(&plug) ?:
		      add_note(&unplug, off, MB_PLUG_REQUEST, false) ?: end_batch(&unplug);
	}
	snprintf(s->title, sizeof(s->title), "%s at %s granules, 128 MiB requests (%zu notes)",
		 mb_fmt_size(a, size), mb_fmt_size(g, granule), s->ph[0].nr_notes);
	if (ret)
		mb_scen_free(s);
	return ret;
}

/* xorshift64*: deterministic, the same sequence for every path. */
static uint64_t rnd(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 2685821657736338717ull;
}

#define STORM_MAX_RUN 256

int mb_scen_storm(struct mb_scen *s, uint64_t size, unsigned int conversions,
		  uint64_t seed)
{
	uint64_t pages = size / MB_PAGE, shared = 0, x = seed | 1;
	struct phase_buf b;
	char a[24];
	bool *st;
	int ret = 0;

	memset(s, 0, sizeof(*s));
	if (pages < STORM_MAX_RUN || size % MB_PAGE)
		return -EINVAL;
	st = calloc(pages, sizeof(*st)); /* false = private (discarded) */
	if (!st)
		return -ENOMEM;
	strcpy(s->kind, "storm");
	s->size = size;
	s->granule = MB_PAGE;
	s->nr_phases = 1;
	s->ph[0] = (struct mb_phase){ .name = "storm", .report = true };
	b = (struct phase_buf){ .ph = &s->ph[0] };
	for (unsigned int c = 0; c < conversions && !ret; c++) {
		uint64_t len = 1 + rnd(&x) % STORM_MAX_RUN;
		uint64_t start = rnd(&x) % (pages - len + 1);
		bool to_shared = rnd(&x) & 1, mixed = false;
		uint64_t change = 0;

		for (uint64_t p = start; p < start + len; p++)
			change += st[p] != to_shared;
		if (!change)
			continue; /* already in that state: QEMU notifies nothing */
		mixed = change != len;
		if (!mixed)
			ret = add_note(&b, start * MB_PAGE, len * MB_PAGE, to_shared);
		for (uint64_t p = start; p < start + len && !ret; p++) {
			if (st[p] == to_shared)
				continue;
			if (mixed)
				ret = add_note(&b, p * MB_PAGE, MB_PAGE, to_shared);
			st[p] = to_shared;
			shared += to_shared ? 1 : (uint64_t)-1;
		}
		if (!ret)
			ret = end_batch(&b);
	}
	free(st);
	s->ph[0].populated_after = shared * MB_PAGE;
	snprintf(s->title, sizeof(s->title),
		 "guest_memfd conversion storm: %s at 4 KiB, %u conversions (%zu notes, %zu batches)",
		 mb_fmt_size(a, size), conversions, s->ph[0].nr_notes, s->ph[0].nr_batches);
	if (ret)
		mb_scen_free(s);
	return ret;
}

int mb_scen_burst(struct mb_scen *s, uint64_t pages)
{
	struct phase_buf b;
	int ret;

	memset(s, 0, sizeof(*s));
	if (!pages)
		return -EINVAL;
	strcpy(s->kind, "burst");
	s->size = pages * MB_PAGE;
	s->granule = MB_PAGE;
	s->nr_phases = 2;
	s->ph[0] = (struct mb_phase){ .name = "populate", .populated_after = s->size };
	s->ph[1] = (struct mb_phase){ .name = "discard burst", .report = true };
	ret = one_batch_note(&s->ph[0], 0, s->size, true);
	b = (struct phase_buf){ .ph = &s->ph[1] };
	for (uint64_t p = 0; p < pages && !ret; p++)
		ret = add_note(&b, p * MB_PAGE, MB_PAGE, false);
	if (!ret)
		ret = end_batch(&b);
	snprintf(s->title, sizeof(s->title),
		 "4 KiB discard burst: %llu contiguous pages discarded page by page (one batch)",
		 (unsigned long long)pages);
	if (ret)
		mb_scen_free(s);
	return ret;
}

int mb_scen_sync(struct mb_scen *s, unsigned int notes, uint64_t seed)
{
	uint64_t pages = 4096, x = seed | 1, *perm;
	struct phase_buf pb, db;
	char a[24];
	int ret = 0;

	memset(s, 0, sizeof(*s));
	if (!notes)
		return -EINVAL;
	while (pages < 4ull * notes)
		pages *= 2;
	perm = malloc(pages * sizeof(*perm));
	if (!perm)
		return -ENOMEM;
	for (uint64_t i = 0; i < pages; i++)
		perm[i] = i;
	for (uint64_t i = pages - 1; i > 0; i--) { /* Fisher-Yates: distinct pages */
		uint64_t j = rnd(&x) % (i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	strcpy(s->kind, "sync");
	s->size = pages * MB_PAGE;
	s->granule = MB_PAGE;
	s->nr_phases = 2;
	s->ph[0] = (struct mb_phase){ .name = "sync populate", .report = true,
				      .populated_after = (uint64_t)notes * MB_PAGE };
	s->ph[1] = (struct mb_phase){ .name = "sync discard", .report = true };
	pb = (struct phase_buf){ .ph = &s->ph[0] };
	db = (struct phase_buf){ .ph = &s->ph[1] };
	for (unsigned int i = 0; i < notes && !ret; i++)
		ret = add_note(&pb, perm[i] * MB_PAGE, MB_PAGE, true) ?: end_batch(&pb) ?:
		      add_note(&db, perm[i] * MB_PAGE, MB_PAGE, false) ?: end_batch(&db);
	free(perm);
	snprintf(s->title, sizeof(s->title),
		 "synchronous 4 KiB conversions: %u random pages of %s, each note its own batch, waited for",
		 notes, mb_fmt_size(a, s->size));
	if (ret)
		mb_scen_free(s);
	return ret;
}

void mb_scen_free(struct mb_scen *s)
{
	for (unsigned int i = 0; i < MB_MAX_PHASES; i++) {
		free(s->ph[i].notes);
		free(s->ph[i].batch_end);
	}
	memset(s, 0, sizeof(*s));
}
