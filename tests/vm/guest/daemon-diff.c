// SPDX-License-Identifier: MIT
/*
 * daemon-diff.c - randomized differential test of the daemon on the real
 * iommufd backend, in the guest: the event stream of tests/granule's
 * differential test (diff_gen.h) goes through libdmasvc's queue to the
 * daemon, and the kernel's IOAS is compared with a trivial reference (one
 * bool per granule).
 *
 * Usage: daemon-diff SOCKET   (env: DMASVC_PID, the daemon's pid, as set
 *   by with-daemon; EDU_CDEV; DIFF_EVENTS, default 20000; DIFF_SEED,
 *   default time-based, printed)
 *
 * Six regions of one sealed memfd (4 KiB granules, two of them
 * IOVA-adjacent; 64 KiB; two adjacent 2 MiB regions; a 4 MiB-granule
 * region), bursts of 1..64 random populate/discard events submitted
 * together (so the daemon plans them as one burst: coalesced discards, a
 * populate and a discard of one granule in one burst), then reaped.  The
 * edu device is attached (DEVICE_ATTACH), so every map really pins.
 * After every burst: every completion is 0 and matches its event; the
 * reference applies the events in submission order; the service's AUDIT
 * of every region the burst touched (the kernel's areas, probed with
 * IOMMU_IOAS_COPY, against the service's state) reports exactly the
 * reference's granules as OK and nothing MISSING or STRAY.  Every
 * FULL_EVERY bursts and at the end: every region, the daemon's VmPin equal
 * to the reference's populated bytes, and the service's own populated and
 * mapped bytes (QUERY REGIONS) equal to the reference.
 *
 * Prints "daemon-diff: PASS events=<n> bursts=<n> audits=<n> seed=<s> ..."
 * and exits 0, or the failed check (with the seed) and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"
#include "diff_gen.h"
#include "svc-audit.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define NREG 6
#define MAX_BURST 64
#define FULL_EVERY 64
#define MEM_SIZE (64 * MiB)

struct spec {
	uint64_t mem_offset, granule, n, iova;
	unsigned int weight; /* per 100000 events */
};

static const struct spec specs[NREG] = {
	{ 0, 4 * KiB, 64, 0x1000000, 30000 },
	{ 256 * KiB, 4 * KiB, 64, 0x1040000, 20000 }, /* adjacent to R0 */
	{ 1 * MiB, 64 * KiB, 32, 0x2000000, 25000 },
	{ 4 * MiB, 2 * MiB, 8, 0x4000000, 10000 },
	{ 20 * MiB, 2 * MiB, 8, 0x5000000, 10000 },   /* adjacent to R3 */
	{ 36 * MiB, 4 * MiB, 4, 0x8000000, 5000 },
};

struct world {
	uint64_t seed, rng;
	pid_t daemon;
	struct dmasvc_client *c;
	struct dmasvc_queue *q;
	struct dmasvc_region_desc d[NREG];
	int id[NREG];
	bool ref[NREG][64];
	unsigned int weight[NREG];
	uint64_t audits;
};

struct ev {
	int ri;
	uint64_t first, count;
	bool populate;
};

static void __attribute__((format(printf, 2, 3), noreturn))
fail(const struct world *w, const char *fmt, ...)
{
	va_list ap;

	printf("daemon-diff: FAIL seed=%" PRIu64 ": ", w->seed);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (w->c)
		printf(" (service: %s)", dmasvc_last_error(w->c));
	putchar('\n');
	fflush(stdout);
	exit(1);
}

static void audit_region(struct world *w, int ri)
{
	char why[160];

	w->audits++;
	if (svc_audit_check(w->c, w->id[ri], &w->d[ri], w->ref[ri], why, sizeof(why)) < 0)
		fail(w, "region %d: kernel/service/reference disagree: %s", ri, why);
}

static uint64_t ref_bytes(const struct world *w, int ri)
{
	uint64_t b = 0;

	for (uint64_t g = 0; g < specs[ri].n; g++)
		b += w->ref[ri][g] ? specs[ri].granule : 0;
	return b;
}

/* Every region, the daemon's pins and its per-region byte counts. */
static void full_check(struct world *w)
{
	struct dmasvc_stat_region st[NREG + 1];
	uint64_t want = 0, pin;
	int n;

	for (int ri = 0; ri < NREG; ri++) {
		audit_region(w, ri);
		want += ref_bytes(w, ri);
	}
	pin = svc_status_bytes(w->daemon, "VmPin:");
	if (pin != want)
		fail(w, "daemon VmPin %" PRIu64 ", reference populated %" PRIu64, pin, want);
	n = dmasvc_query(w->c, DMASVC_QUERY_REGIONS, 0, 0, st, sizeof(st[0]), NREG + 1);
	if (n != NREG)
		fail(w, "QUERY REGIONS: %d records", n);
	for (int i = 0; i < n; i++) {
		int ri = -1;

		for (int k = 0; k < NREG; k++)
			if ((uint32_t)w->id[k] == st[i].region_id)
				ri = k;
		if (ri < 0 || st[i].populated_bytes != ref_bytes(w, ri) ||
		    st[i].mapped_bytes != ref_bytes(w, ri) || st[i].pinned_bytes != ref_bytes(w, ri))
			fail(w, "region record %u: populated %" PRIu64 " mapped %" PRIu64
			     " pinned %" PRIu64 ", reference %" PRIu64, st[i].region_id,
			     st[i].populated_bytes, st[i].mapped_bytes, st[i].pinned_bytes,
			     ri < 0 ? 0 : ref_bytes(w, ri));
	}
}

static size_t gen_burst(struct world *w, struct ev *ev)
{
	size_t n = 1 + dg_below(&w->rng, MAX_BURST);

	for (size_t i = 0; i < n; i++) {
		ev[i].ri = dg_weighted(&w->rng, w->weight, NREG);
		dg_range(&w->rng, specs[ev[i].ri].n, &ev[i].first, &ev[i].count);
		ev[i].populate = dg_below(&w->rng, 2);
	}
	return n;
}

/* Submit the burst as one batch, reap every completion, apply to the reference. */
static void run_burst(struct world *w, const struct ev *ev, size_t n)
{
	struct dmasvc_completion comp[MAX_BURST];
	bool seen[MAX_BURST] = { false }, touched[NREG] = { false };
	size_t got = 0;

	for (size_t i = 0; i < n; i++) {
		const struct spec *s = &specs[ev[i].ri];
		uint32_t rid = (uint32_t)w->id[ev[i].ri];
		int rc = ev[i].populate ?
			dmasvc_submit_populate(w->q, rid, ev[i].first * s->granule,
					       ev[i].count * s->granule, i) :
			dmasvc_submit_discard(w->q, rid, ev[i].first * s->granule,
					      ev[i].count * s->granule, i);

		if (rc)
			fail(w, "submit event %zu: %s", i, strerror(-rc));
	}
	while (got < n) {
		int k = dmasvc_reap(w->q, comp, MAX_BURST, 30000);

		if (k <= 0)
			fail(w, "reap: %s", k ? strerror(-k) : "timeout (30 s)");
		for (int j = 0; j < k; j++) {
			uint64_t u = comp[j].user_data;

			if (u >= n || seen[u])
				fail(w, "completion for event %" PRIu64 " (burst of %zu)", u, n);
			if (comp[j].res)
				fail(w, "event %" PRIu64 " (%s region %d [%" PRIu64 ", +%" PRIu64
				     ")) failed: %s", u, ev[u].populate ? "populate" : "discard",
				     ev[u].ri, ev[u].first, ev[u].count, strerror(-comp[j].res));
			seen[u] = true;
		}
		got += (size_t)k;
	}
	for (size_t i = 0; i < n; i++) {
		for (uint64_t g = ev[i].first; g < ev[i].first + ev[i].count; g++)
			w->ref[ev[i].ri][g] = ev[i].populate;
		touched[ev[i].ri] = true;
	}
	for (int ri = 0; ri < NREG; ri++)
		if (touched[ri])
			audit_region(w, ri);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

int main(int argc, char **argv)
{
	struct dmasvc_connect_opts opts = { .timeout_ms = 30000 };
	static struct world w;
	struct ev ev[MAX_BURST];
	uint64_t target, done = 0, bursts = 0, pops = 0;
	const char *cdev = getenv("EDU_CDEV");
	int memfd, devfd, mem, rc;
	double t0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2 || !getenv("DMASVC_PID") || !cdev) {
		fprintf(stderr, "usage: DMASVC_PID=PID EDU_CDEV=PATH daemon-diff SOCKET\n");
		return 2;
	}
	w.daemon = (pid_t)atoi(getenv("DMASVC_PID"));
	w.seed = env_u64("DIFF_SEED", (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	w.rng = w.seed;
	target = env_u64("DIFF_EVENTS", 20000);
	printf("daemon-diff: DIFF_SEED=%" PRIu64 " DIFF_EVENTS=%" PRIu64 "\n", w.seed, target);

	memfd = memfd_create("guest-ram", MFD_ALLOW_SEALING);
	if (memfd < 0 || ftruncate(memfd, MEM_SIZE) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		fail(&w, "sealed memfd: %s", strerror(errno));
	rc = dmasvc_connect(argv[1], &opts, &w.c);
	if (rc)
		fail(&w, "connect: %s", strerror(-rc));
	devfd = open(cdev, O_RDWR);
	if (devfd < 0)
		fail(&w, "open %s: %s", cdev, strerror(errno));
	rc = dmasvc_device_attach(w.c, devfd);
	if (rc <= 0)
		fail(&w, "DEVICE_ATTACH: %s", strerror(-rc));
	close(devfd); /* the daemon keeps the device attached through its dup */
	mem = dmasvc_memory_add(w.c, memfd, MEM_SIZE, 0);
	if (mem < 0)
		fail(&w, "memory_add: %s", strerror(-mem));
	for (int ri = 0; ri < NREG; ri++) {
		w.d[ri] = (struct dmasvc_region_desc){ .mem_id = (uint32_t)mem,
			.mem_offset = specs[ri].mem_offset, .size = specs[ri].n * specs[ri].granule,
			.iova = specs[ri].iova, .granule = specs[ri].granule };
		w.id[ri] = dmasvc_region_add(w.c, &w.d[ri]);
		if (w.id[ri] < 0)
			fail(&w, "region_add %d: %s", ri, strerror(-w.id[ri]));
		w.weight[ri] = specs[ri].weight;
	}
	rc = dmasvc_queue_open(w.c, 128, &w.q);
	if (rc)
		fail(&w, "queue_open: %s", strerror(-rc));
	full_check(&w);
	t0 = now_s();
	while (done < target) {
		size_t n = gen_burst(&w, ev);

		run_burst(&w, ev, n);
		for (size_t i = 0; i < n; i++)
			pops += ev[i].populate;
		done += n;
		if (++bursts % FULL_EVERY == 0) {
			full_check(&w);
			printf("daemon-diff: %" PRIu64 " events, %" PRIu64 " audits, %.0f s\n", done,
			       w.audits, now_s() - t0);
		}
	}
	full_check(&w);
	printf("daemon-diff: PASS events=%" PRIu64 " (%" PRIu64 " populates) bursts=%" PRIu64
	       " audits=%" PRIu64 " seed=%" PRIu64 " %.1f s\n", done, pops, bursts, w.audits,
	       w.seed, now_s() - t0);
	dmasvc_queue_close(w.q);
	dmasvc_disconnect(w.c);
	close(memfd);
	return 0;
}
