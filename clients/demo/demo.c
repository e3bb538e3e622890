/* SPDX-License-Identifier: MIT */
/*
 * demo.c - dmasvc-demo, the main-job workload: a VMM-shaped client that
 * drives a running dmasvc through libdmasvc and reports what it cost.
 *
 * Phase 1, "plug": a virtio-mem device.  A 4 GiB sealed memfd is one region
 * at 2 MiB granules; the guest plugs and unplugs in 128 MiB requests (one
 * blocking populate or discard of 64 granules each, as QEMU's listener
 * waits), keeping at most --max-plugged populated; after an unplug the demo
 * punches the hole in the memfd, as virtio-mem does, so host memory follows.
 *
 * Phase 2, "storm": guest_memfd-style shared/private conversions on a
 * second memfd region at 4 KiB granules: runs of pages converted page by
 * page, each page one asynchronous 4 KiB populate (to shared) or discard (to
 * private) on the demo's own queue, many contiguous, so the service can
 * coalesce them.
 *
 * Memory: pages are allocated only while pinned; the demo keeps at most
 * --max-plugged (default 512 MiB) of phase 1 plus the 128 MiB storm region
 * populated, i.e. under 640 MiB.
 *
 * Latency: client side = submit to completion seen by this process
 * (blocking calls: the call's duration); service side = the service's own
 * window from QUERY STATUS (SQE drain to CQE post).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"
#include "lat_hist.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define PLUG_BLOCK (128 * MiB)
#define PLUG_GRANULE (2 * MiB)
#define STORM_SIZE (128 * MiB)
#define STORM_PAGE 4096ull
#define STORM_IOVA (64 * GiB)
#define STORM_QD 256u

struct demo_opts {
	const char *socket;
	double duration;         /* seconds, both phases */
	pid_t service_pid;       /* 0: VmLck from QUERY STATUS only */
	uint64_t mem_size;
	uint64_t max_plugged;
	unsigned seed;
};

struct phase_stats {
	const char *name;
	uint64_t events, failed;
	struct lat_hist lat;
	struct dmasvc_stat_service before, after;
	double t_start, t_end;   /* seconds, CLOCK_MONOTONIC */
	bool printed;            /* a progress line was printed ... */
	uint64_t printed_events; /* ... showing this many events */
};

struct demo {
	struct demo_opts o;
	struct dmasvc_client *c;
	int plug_fd, storm_fd;
	int plug_region, storm_region;
	bool tty;
	double t0;
	struct phase_stats plug, storm;
};

/* The one global: set by the SIGINT/SIGTERM handler, read by the phase loops. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: dmasvc-demo [--socket PATH] [--duration SEC] [--service-pid PID]\n"
		"                   [--max-plugged MIB] [--seed N]\n"
		"Drive a running dmasvc like a VMM: a virtio-mem device plugging and\n"
		"unplugging a 4 GiB memfd in 128 MiB requests at 2 MiB granules, then a\n"
		"guest_memfd-style storm of 4 KiB shared/private conversions posted\n"
		"asynchronously.  Prints progress and a summary table; exits 0 only if\n"
		"every event succeeded and the service's state matched the client's.\n"
		"  --socket PATH       the service's control socket (default %s)\n"
		"  --duration SEC      total run time, split between the phases (default 40)\n"
		"  --service-pid PID   read the service's VmLck from /proc/PID/status\n"
		"  --max-plugged MIB   most memory plugged at once in phase 1 (default 512)\n"
		"  --seed N            random seed (default 1)\n",
		DMASVC_DEFAULT_SOCKET);
}

static int parse_opts(int argc, char **argv, struct demo_opts *o)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "service-pid", required_argument, NULL, 'p' },
		{ "max-plugged", required_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*o = (struct demo_opts){ .socket = DMASVC_DEFAULT_SOCKET, .duration = 40,
				 .mem_size = 4 * GiB, .max_plugged = 512 * MiB, .seed = 1 };
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		char *end = NULL;

		switch (ch) {
		case 's': o->socket = optarg; break;
		case 'd':
			o->duration = strtod(optarg, &end);
			if (*end || o->duration <= 0 || o->duration > 86400)
				goto bad;
			break;
		case 'p':
			o->service_pid = (pid_t)strtol(optarg, &end, 10);
			if (*end || o->service_pid <= 0)
				goto bad;
			break;
		case 'm': {
			unsigned long long mib = strtoull(optarg, &end, 10);

			if (*end || mib < 128 || mib > 4096 || mib % 128)
				goto bad;
			o->max_plugged = mib * MiB;
			break;
		}
		case 'r': o->seed = (unsigned)strtoul(optarg, &end, 10); if (*end) goto bad; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
		continue;
bad:
		fprintf(stderr, "dmasvc-demo: bad option value '%s' (see --help)\n", optarg);
		exit(2);
	}
	if (optind != argc) {
		fprintf(stderr, "dmasvc-demo: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	return 0;
}

/* A sealed memfd of @size bytes (sparse: pages come only when touched or pinned). */
static int make_memfd(const char *name, uint64_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/*
 * The service's locked + pinned memory in bytes: VmLck (the software model
 * mlock()s) plus VmPin (iommufd pins) from /proc if we know its pid, else
 * QUERY STATUS's vmlck_bytes.
 */
static uint64_t service_vmlck(struct demo *d, const struct dmasvc_stat_service *st)
{
	char path[64], line[256];
	uint64_t kb, total = 0;
	FILE *f;

	if (!d->o.service_pid)
		return st->vmlck_bytes;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)d->o.service_pid);
	f = fopen(path, "r");
	if (!f)
		return st->vmlck_bytes;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %" SCNu64 " kB", &kb) == 1 ||
		    sscanf(line, "VmPin: %" SCNu64 " kB", &kb) == 1)
			total += kb * 1024;
	fclose(f);
	return total;
}

static int query_status(struct demo *d, struct dmasvc_stat_service *st)
{
	int n = dmasvc_query(d->c, DMASVC_QUERY_STATUS, 0, 0, st, sizeof(*st), 1);

	if (n < 0)
		return n;
	return n == 1 ? 0 : -EPROTO;
}

/*
 * The progress line: rewritten in place (\r) on a tty every 0.25 s, a new
 * line every 5 s otherwise; @last 0 forces one (end of a phase).
 */
static void progress(struct demo *d, struct phase_stats *ps, const char *state,
		     double *last)
{
	double t = now_s();
	char p50[16] = "-", p99[16] = "-";

	if (t - *last < (d->tty ? 0.25 : 5.0) || (!*last && ps->printed && ps->printed_events == ps->events))
		return;
	*last = t;
	ps->printed = true;
	ps->printed_events = ps->events;
	if (ps->lat.count) {
		lat_fmt(p50, lat_hist_pct(&ps->lat, 50));
		lat_fmt(p99, lat_hist_pct(&ps->lat, 99));
	}
	printf("%s[%-5s] %5.1fs  %-22s events %9" PRIu64 " (%" PRIu64 " failed)  p50 %-8s p99 %-8s%s",
	       d->tty ? "\r" : "", ps->name, t - d->t0, state, ps->events, ps->failed, p50, p99,
	       d->tty ? "" : "\n");
	fflush(stdout);
}

static void progress_end(struct demo *d)
{
	if (d->tty)
		printf("\n");
}

/* Phase 1: virtio-mem plug/unplug in 128 MiB requests until @until. */
static int phase_plug(struct demo *d, double until)
{
	unsigned nblocks = (unsigned)(d->o.mem_size / PLUG_BLOCK), plugged = 0;
	unsigned max_blocks = (unsigned)(d->o.max_plugged / PLUG_BLOCK);
	bool *on = calloc(nblocks, sizeof(*on));
	struct phase_stats *ps = &d->plug;
	double last = 0;
	char state[32];

	if (!on)
		return -ENOMEM;
	while (now_s() < until && !stop_requested) {
		/* Plug while below half the limit, unplug at the limit, else coin. */
		bool plug = plugged < max_blocks / 2 ||
			    (plugged < max_blocks && rand_r(&d->o.seed) % 2);
		unsigned b = (unsigned)rand_r(&d->o.seed) % nblocks;
		uint64_t t;
		int err;

		while (on[b] != !plug)
			b = (b + 1) % nblocks;
		t = now_ns();
		if (plug)
			err = dmasvc_populate(d->c, (uint32_t)d->plug_region, b * PLUG_BLOCK, PLUG_BLOCK);
		else
			err = dmasvc_discard(d->c, (uint32_t)d->plug_region, b * PLUG_BLOCK, PLUG_BLOCK);
		lat_hist_add(&ps->lat, now_ns() - t);
		ps->events++;
		if (err) {
			ps->failed++;
			fprintf(stderr, "\ndmasvc-demo: %s block %u: %s (%s)\n", plug ? "plug" : "unplug",
				b, strerror(-err), dmasvc_last_error(d->c));
			if (err == -ENOTCONN)
				break;
			continue;
		}
		on[b] = plug;
		plugged += plug ? 1 : -1u;
		/* virtio-mem frees the memory of an unplugged block. */
		if (!plug && fallocate(d->plug_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				       (off_t)(b * PLUG_BLOCK), (off_t)PLUG_BLOCK) < 0)
			fprintf(stderr, "\ndmasvc-demo: punch hole: %s\n", strerror(errno));
		snprintf(state, sizeof(state), "plugged %4u MiB", (unsigned)(plugged * (PLUG_BLOCK / MiB)));
		progress(d, ps, state, &last);
	}
	last = 0;
	progress(d, ps, state, &last);
	progress_end(d);
	free(on);
	return ps->failed ? -EIO : 0;
}

/* Reap whatever completed on @q; record latencies; returns count or -errno. */
static int storm_reap(struct demo *d, struct dmasvc_queue *q, const uint64_t *t_sub,
		      unsigned *inflight, int timeout_ms)
{
	struct dmasvc_completion cq[64];
	int n = dmasvc_reap(q, cq, 64, timeout_ms);
	uint64_t t = now_ns();

	for (int i = 0; i < n; i++) {
		lat_hist_add(&d->storm.lat, t - t_sub[cq[i].user_data % STORM_QD]);
		if (cq[i].res) {
			d->storm.failed++;
			if (d->storm.failed <= 5)
				fprintf(stderr, "\ndmasvc-demo: storm event failed: %s\n", strerror(-cq[i].res));
		}
		(*inflight)--;
	}
	return n;
}

/*
 * Phase 2: conversion storm until @until.  Each run converts a random
 * stretch of pages one 4 KiB event at a time; user_data is the event
 * number, and its submit time sits in t_sub[user_data % STORM_QD] (at most
 * STORM_QD events in flight, so no slot is reused while in flight).
 */
static int phase_storm(struct demo *d, double until)
{
	uint64_t npages = STORM_SIZE / STORM_PAGE, t_sub[STORM_QD], next = 0;
	struct phase_stats *ps = &d->storm;
	struct dmasvc_queue *q;
	unsigned inflight = 0;
	double last = 0;
	char state[32];
	int err;

	err = dmasvc_queue_open(d->c, STORM_QD, &q);
	if (err)
		return err;
	while (now_s() < until && !stop_requested) {
		uint64_t first = (uint64_t)rand_r(&d->o.seed) % npages;
		uint64_t len = 1 + (uint64_t)rand_r(&d->o.seed) % 512;
		bool to_shared = rand_r(&d->o.seed) % 2;

		if (first + len > npages)
			len = npages - first;
		/* one conversion = one batch: the service drains its pages whole */
		err = dmasvc_queue_batch_begin(q);
		if (err)
			goto out_close;
		for (uint64_t p = first; p < first + len; p++) {
			for (;;) {
				if (inflight < STORM_QD) {
					t_sub[next % STORM_QD] = now_ns();
					err = to_shared ?
						dmasvc_submit_populate(q, (uint32_t)d->storm_region, p * STORM_PAGE, STORM_PAGE, next) :
						dmasvc_submit_discard(q, (uint32_t)d->storm_region, p * STORM_PAGE, STORM_PAGE, next);
				} else {
					err = -EAGAIN;
				}
				if (err == 0) {
					next++;
					inflight++;
					ps->events++;
					break;
				}
				if (err != -EAGAIN)
					goto out_close;
				err = storm_reap(d, q, t_sub, &inflight, 1000);
				if (err < 0)
					goto out_close;
			}
			err = storm_reap(d, q, t_sub, &inflight, 0);
			if (err < 0)
				goto out_close;
		}
		err = dmasvc_queue_batch_end(q);
		if (err)
			goto out_close;
		snprintf(state, sizeof(state), "shared %5" PRId64 " MiB",
			 dmasvc_region_populated_bytes(d->c, (uint32_t)d->storm_region) / (int64_t)MiB);
		progress(d, ps, state, &last);
	}
	while (inflight) {
		err = storm_reap(d, q, t_sub, &inflight, 5000);
		if (err <= 0) {
			err = err ? err : -ETIMEDOUT;
			goto out_close;
		}
	}
	err = 0;
	last = 0;
	progress(d, ps, state, &last);
out_close:
	progress_end(d);
	dmasvc_queue_close(q);
	if (err)
		fprintf(stderr, "dmasvc-demo: storm: %s\n", strerror(-err));
	return err ? err : ps->failed ? -EIO : 0;
}

static int setup(struct demo *d)
{
	struct dmasvc_region_desc plug = { .size = d->o.mem_size, .iova = 0, .granule = PLUG_GRANULE };
	struct dmasvc_region_desc storm = { .size = STORM_SIZE, .iova = STORM_IOVA, .granule = STORM_PAGE };
	int err, id;

	err = dmasvc_connect(d->o.socket, NULL, &d->c);
	if (err) {
		fprintf(stderr, "dmasvc-demo: connect %s: %s\n", d->o.socket, strerror(-err));
		return err;
	}
	d->plug_fd = make_memfd("demo-virtio-mem", d->o.mem_size);
	d->storm_fd = make_memfd("demo-guest-memfd", STORM_SIZE);
	if (d->plug_fd < 0 || d->storm_fd < 0)
		return d->plug_fd < 0 ? d->plug_fd : d->storm_fd;
	id = dmasvc_memory_add(d->c, d->plug_fd, d->o.mem_size, 0);
	if (id < 0)
		goto err_service;
	plug.mem_id = (uint32_t)id;
	id = d->plug_region = dmasvc_region_add(d->c, &plug);
	if (id < 0)
		goto err_service;
	id = dmasvc_memory_add(d->c, d->storm_fd, STORM_SIZE, 0);
	if (id < 0)
		goto err_service;
	storm.mem_id = (uint32_t)id;
	id = d->storm_region = dmasvc_region_add(d->c, &storm);
	if (id < 0)
		goto err_service;
	return 0;

err_service:
	fprintf(stderr, "dmasvc-demo: setup: %s (%s)\n", strerror(-id), dmasvc_last_error(d->c));
	return id;
}

/* Sum of the service's region records and an audit of both regions. */
struct end_state {
	uint64_t populated_client, populated_svc, mapped, pinned, vmlck;
	int audit_bad;      /* extents not OK, or -errno */
	bool match;         /* service populated == client bitmap, per region */
};

static void collect_end_state(struct demo *d, struct end_state *es)
{
	struct dmasvc_stat_region regs[8];
	struct dmasvc_audit_extent *ext;
	struct dmasvc_stat_service st;
	int regions[2] = { d->plug_region, d->storm_region };
	int n;

	memset(es, 0, sizeof(*es));
	es->match = true;
	n = dmasvc_query(d->c, DMASVC_QUERY_REGIONS, 0, 0, regs, sizeof(regs[0]), 8);
	for (int i = 0; i < n; i++) {
		int64_t mine = dmasvc_region_populated_bytes(d->c, regs[i].region_id);

		es->populated_svc += regs[i].populated_bytes;
		es->mapped += regs[i].mapped_bytes;
		es->pinned += regs[i].pinned_bytes;
		if (mine < 0 || (uint64_t)mine != regs[i].populated_bytes ||
		    regs[i].mapped_bytes != regs[i].populated_bytes)
			es->match = false;
	}
	if (n != 2)
		es->match = false;
	for (int i = 0; i < 2; i++)
		es->populated_client += (uint64_t)dmasvc_region_populated_bytes(d->c, (uint32_t)regions[i]);
	ext = calloc(65536, sizeof(*ext));
	for (int i = 0; ext && i < 2; i++) {
		n = dmasvc_query(d->c, DMASVC_QUERY_AUDIT, 0, (uint32_t)regions[i], ext, sizeof(*ext), 65536);
		if (n < 0) {
			es->audit_bad = n;
			break;
		}
		for (int j = 0; j < n; j++)
			es->audit_bad += ext[j].state != DMASVC_AUDIT_OK;
	}
	free(ext);
	if (!query_status(d, &st))
		es->vmlck = service_vmlck(d, &st);
}

static void row(const char *what, const char *a, const char *b)
{
	printf("  %-34s %20s %20s\n", what, a, b);
}

static void row_u64(const char *what, uint64_t a, uint64_t b)
{
	char sa[32], sb[32];

	snprintf(sa, sizeof(sa), "%" PRIu64, a);
	snprintf(sb, sizeof(sb), "%" PRIu64, b);
	row(what, sa, sb);
}

static void print_table(struct demo *d, const struct end_state *es)
{
	const struct phase_stats *p = &d->plug, *s = &d->storm;
	char a[32], b[32], x[16], y[16];
	uint64_t pc = p->after.map_calls - p->before.map_calls;
	uint64_t pu = p->after.unmap_calls - p->before.unmap_calls;
	uint64_t sc = s->after.map_calls - s->before.map_calls;
	uint64_t su = s->after.unmap_calls - s->before.unmap_calls;

	printf("\n== dmasvc demo summary (backend %.16s) ==\n", s->after.backend);
	row("", "plug 128M @2M", "storm 4K @4K");
	row_u64("events", p->events, s->events);
	row_u64("events failed", p->failed, s->failed);
	snprintf(a, sizeof(a), "%.0f/s", p->t_end > p->t_start ? (double)p->events / (p->t_end - p->t_start) : 0.0);
	snprintf(b, sizeof(b), "%.0f/s", s->t_end > s->t_start ? (double)s->events / (s->t_end - s->t_start) : 0.0);
	row("event rate", a, b);
	row_u64("service events", p->after.events - p->before.events,
		s->after.events - s->before.events);
	row_u64("backend map calls", pc, sc);
	row_u64("backend unmap calls", pu, su);
	snprintf(a, sizeof(a), "%.2f", p->events ? (double)(pc + pu) / (double)p->events : 0.0);
	snprintf(b, sizeof(b), "%.2f", s->events ? (double)(sc + su) / (double)s->events : 0.0);
	row("map+unmap calls per event", a, b);
	snprintf(a, sizeof(a), "%s / %s", lat_fmt(x, lat_hist_pct(&p->lat, 50)), lat_fmt(y, lat_hist_pct(&p->lat, 99)));
	snprintf(b, sizeof(b), "%s / %s", lat_fmt(x, lat_hist_pct(&s->lat, 50)), lat_fmt(y, lat_hist_pct(&s->lat, 99)));
	row("client latency p50 / p99", a, b);
	snprintf(a, sizeof(a), "%s / %s", lat_fmt(x, p->after.latency_p50_ns), lat_fmt(y, p->after.latency_p99_ns));
	snprintf(b, sizeof(b), "%s / %s", lat_fmt(x, s->after.latency_p50_ns), lat_fmt(y, s->after.latency_p99_ns));
	row("service latency p50 / p99 (window)", a, b);
	printf("\n  state at the end of the run (both regions)\n");
	printf("  %-34s %20.1f MiB\n", "populated (client bitmap)", (double)es->populated_client / MiB);
	printf("  %-34s %20.1f MiB\n", "populated (service)", (double)es->populated_svc / MiB);
	printf("  %-34s %20.1f MiB\n", "mapped (backend areas)", (double)es->mapped / MiB);
	printf("  %-34s %20.1f MiB\n", "pinned (backend)", (double)es->pinned / MiB);
	printf("  %-34s %20.1f MiB%s\n", "service VmLck + VmPin", (double)es->vmlck / MiB,
	       d->o.service_pid ? "" : " (QUERY)");
	printf("  %-34s %20s\n", "client == service == backend",
	       es->match && es->audit_bad == 0 ? "yes (audit OK)" : "NO");
}

int main(int argc, char **argv)
{
	struct demo d = { .plug_fd = -1, .storm_fd = -1 };
	struct dmasvc_stat_service st;
	struct end_state es;
	double half;
	int err, rc = 1;

	parse_opts(argc, argv, &d.o);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	d.tty = isatty(STDOUT_FILENO);
	d.plug.name = "plug";
	d.storm.name = "storm";
	if (setup(&d))
		goto out;
	d.t0 = now_s();
	half = d.o.duration / 2;
	printf("dmasvc-demo: session %u, plug region %d MiB @2M, storm region %d MiB @4K, %.0fs\n",
	       dmasvc_session_id(d.c), (int)(d.o.mem_size / MiB), (int)(STORM_SIZE / MiB), d.o.duration);

	if (query_status(&d, &d.plug.before))
		goto out;
	d.plug.t_start = now_s();
	err = phase_plug(&d, d.t0 + half);
	d.plug.t_end = now_s();
	if (query_status(&d, &d.plug.after) || err)
		goto out;
	d.storm.before = d.plug.after;
	d.storm.t_start = now_s();
	err = phase_storm(&d, d.t0 + d.o.duration);
	d.storm.t_end = now_s();
	if (query_status(&d, &d.storm.after) || err)
		goto out;
	collect_end_state(&d, &es);
	print_table(&d, &es);
	if (!es.match || es.audit_bad)
		goto out;

	/* Unplug everything; the service must drop every pin of ours. */
	err = dmasvc_region_remove(d.c, (uint32_t)d.plug_region);
	if (!err)
		err = dmasvc_region_remove(d.c, (uint32_t)d.storm_region);
	if (err || query_status(&d, &st)) {
		fprintf(stderr, "dmasvc-demo: cleanup: %s\n", strerror(-err));
		goto out;
	}
	printf("  %-34s %20.1f MiB\n", "VmLck + VmPin after region removal", (double)service_vmlck(&d, &st) / MiB);
	rc = 0;
out:
	dmasvc_disconnect(d.c);
	if (d.plug_fd >= 0)
		close(d.plug_fd);
	if (d.storm_fd >= 0)
		close(d.storm_fd);
	return rc;
}
