/* SPDX-License-Identifier: MIT */
/*
 * map_bench.c - map-bench: dmasvc against the in-process per-granule method
 * QEMU's VFIO listener uses today, side by side in one run.
 *
 * Each scenario (mb_scen.h) is replayed on every target: "direct" and the
 * dmasvc paths ("ring": the daemon over its ring; "engine": its planner and
 * worker pool in-process) with each worker count.  Repetitions interleave
 * the targets, rotating their order, so load on the machine hits all of
 * them; mb_report.h says what each printed number is.
 *
 * Memory: a plug really populates and pins `size` bytes (the model mlocks,
 * iommufd pins); a size that does not fit in MemAvailable (with 512 MiB to
 * spare) is skipped with a line saying so.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "mb.h"
#include "mb_report.h"
#include "mb_scen.h"

#ifndef MB_DAEMON_PATH
#define MB_DAEMON_PATH "dmasvc"
#endif

#define MAX_LIST 8
#define MAX_INST 16
#define MAX_VARIANTS 4
#define REGION_IOVA (4 * GiB)
#define MEM_SPARE (512 * MiB)
#define MEM_WAIT_S 20

struct opts {
	struct mb_env env;
	bool json, quick;
	bool prefault;           /* allocate the memfd before region_add */
	bool hugetlb;            /* memfds of 2 MiB huge pages */
	FILE *json_file;         /* --json-file: JSON here besides the tables */
	bool path_engine, path_ring, path_kernel, path_kernel_cut, path_kernel_hop, path_faultin,
	     path_direct_pf;
	unsigned int workers[MAX_LIST], nr_workers;
	uint64_t sizes[MAX_LIST];
	unsigned int nr_sizes;
	uint64_t granules[MAX_LIST];
	unsigned int nr_granules;
	uint64_t burst_pages[MAX_LIST];
	unsigned int nr_burst;
	bool sc_plug, sc_storm, sc_burst, sc_sync;
	unsigned int sync_notes;
	uint64_t storm_size;
	unsigned int storm_conv;
	unsigned int reps;
	uint64_t seed;
	/* --variant NAME=DAEMON[,ARG...]: ring targets, each its own env */
	struct mb_env variants[MAX_VARIANTS];
	char variant_buf[MAX_VARIANTS][256];
	unsigned int nr_variants;
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: map-bench [options]\n"
"\n"
"Replays VMM memory notifications on the in-process per-granule method QEMU's\n"
"VFIO listener uses today (\"direct\": one map call per granule, synchronous,\n"
"one unmap per discarded range) and on dmasvc with 1, 2 and N workers, on the\n"
"same backend, in one run, repetitions interleaved.\n"
"\n"
"Scenarios:\n"
"  plug   virtio-mem plug of SIZE at GRANULE in 128 MiB requests (one blocking\n"
"         populate each), then unplug the same way\n"
"  storm  guest_memfd conversions at 4 KiB: runs of 1..256 pages turned\n"
"         shared (populate) or private (discard); a mixed run is notified page\n"
"         by page (QEMU RamBlockAttributes); one batch per conversion\n"
"  burst  N contiguous 4 KiB pages discarded page by page in one batch\n"
"         (counts how many unmap calls that costs)\n"
"  sync   synchronous 4 KiB conversions (a vCPU exit each): N random pages\n"
"         populated one note at a time, each waited for, then discarded so;\n"
"         p50/p99 are the latency of one conversion\n"
"\n"
"Paths:\n"
"  direct  always run: in-process be_ops on this thread\n"
"  ring    the dmasvc daemon (--daemon), started once per worker count,\n"
"          driven through libdmasvc over its SQ/CQ ring\n"
"  engine  dmasvc's planner + worker pool in-process (no socket, no ring)\n"
"  kernel  the physical limit: the backend's plain map/unmap calls for the\n"
"          same work (a map per granule, an unmap per merged range), on one\n"
"          thread (kernel t1) and on two over disjoint halves (kernel t2)\n"
"  kernel-cut  (real iommufd, --paths kernel-cut) the kernel's cost of a\n"
"          design the service does not follow: a map per contiguous range,\n"
"          unmaps cutting areas (VFIO-compat unmap, IOAS without huge pages)\n"
"  kernel-hop  (--paths kernel-hop) the limit of any IOMMU owner outside the\n"
"          VMM's thread: kernel t1's calls made by a thread polling on another\n"
"          CPU for a caller polling for their end (one cross-CPU round trip\n"
"          per batch, no system call around the calls)\n"
"\n"
"Each scenario first runs once on direct unrecorded (warm-up), then REPS\n"
"times on every target, the order rotated each repetition; the daemons of\n"
"the targets not running are stopped (SIGSTOP) meanwhile.\n"
"Reported per scenario phase and path: wall time (median, min-max) and\n"
"ratio = median over repetitions of direct/path (paired within each\n"
"repetition), note latency p50/p99, backend map and unmap calls, pinned\n"
"bytes (VmPin; VmLck on the model's mlock path; of the process that pins)\n"
"against populated bytes, and the whole-region pin a VMM without discard\n"
"tracking causes (the region's size).\n"
"\n"
"Options:\n"
"  --backend soft|iommufd   soft: the software model (default), pins like the\n"
"                           kernel (io_uring registered buffers; mlock where\n"
"                           io_uring is not available);\n"
"                           iommufd: the real kernel (needs /dev/iommu)\n"
"  --iommu PATH             iommufd node (default /dev/iommu)\n"
"  --device PATH            VFIO cdev attached to every space (in-process, or\n"
"                           the daemon's session through libdmasvc)\n"
"                           (iommufd pins only with a device attached;\n"
"                           default $EDU_CDEV with --backend iommufd)\n"
"  --paths LIST             ring,engine,kernel (default: ring,kernel on soft,\n"
"                           engine,ring,kernel on iommufd; the ring path sends\n"
"                           the --device to the daemon with dmasvc_device_attach;\n"
"                           faultin: the daemon with --allow-fault-in and a\n"
"                           client that prefaults nothing, so the service\n"
"                           allocates the plug: ring,faultin compares who pays;\n"
"                           direct-pf: direct after the VMM's prefault, each\n"
"                           populate first faulted in (dmasvc_prefault) through\n"
"                           a second mapping as libdmasvc does, then mapped\n"
"                           through the bench's own: the ring's plug work\n"
"                           in-process, its like-for-like baseline)\n"
"  --daemon PATH            dmasvc binary (default %s)\n"
"  --variant NAME=DAEMON[,ARG...]  instead of one ring daemon, one per variant\n"
"                           (repeatable, up to 4; NAME up to 12 characters):\n"
"                           DAEMON started with ARGs (e.g. --poll-us=200),\n"
"                           rows labelled \"dmasvc NAME wN\", interleaved with\n"
"                           the others (old build against new, an option on/off);\n"
"                           ARGs for the client, not the daemon: --client-threads=N\n"
"                           (dmasvc_set_prefault_threads: the pipelined plug's\n"
"                           fault-in threads), --client-whole (the bench faults\n"
"                           each populate in whole, then posts it: libdmasvc\n"
"                           before the pipeline)\n"
"  --workers LIST           worker counts (default 1,2,4: N = 4)\n"
"  --sizes LIST             plug sizes, multiples of 128M (default 1G,4G,16G);\n"
"                           a size that does not fit (MemAvailable - 512M,\n"
"                           after waiting up to 20 s) is skipped, saying so\n"
"  --granules LIST          plug granules (default 2M,128M)\n"
"  --scenarios LIST         plug,storm,burst,sync (default all)\n"
"  --storm-size SIZE        storm region (default 64M)\n"
"  --storm-conversions N    (default 2000)\n"
"  --burst-pages LIST       (default 64,512)\n"
"  --sync-notes N           pages of the sync scenario (default 2000)\n"
"  --reps N                 repetitions, 1..%d (default 3)\n"
"  --seed N                 storm sequence seed (default 1)\n"
"  --prefault               allocate each region's memfd (fallocate) before\n"
"                           it is registered, untimed: pins then find the\n"
"                           pages present, as in a pre-populated guest;\n"
"                           default: the pin allocates them (virtio-mem plug)\n"
"  --hugetlb                every region a memfd of 2 MiB huge pages\n"
"                           (hugetlbfs, as QEMU's memory-backend-memfd\n"
"                           hugetlb=on); needs that many free in the pool\n"
"                           (vm.nr_hugepages; the guest: DMASVC_VM_EXTRA=hugepages=N)\n"
"  --quick                  1 repetition, plug 1G only, storm 16M x 300,\n"
"                           sync 300,\n"
"                           burst 64: under a minute on the model\n"
"  --json                   one JSON document instead of the tables\n"
"  --json-file PATH         the tables on stdout and the JSON into PATH\n"
"  --help                   this text\n"
"Environment: MB_TRACE=1 prints every run's wall time on stderr.\n",
		MB_DAEMON_PATH, MB_MAX_REPS);
}

/* Parse "a,b,c" with @fn into @out; returns the count or -1. */
static int parse_list_u64(const char *s, uint64_t *out, bool sizes)
{
	char buf[256], *save = NULL, *tok;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v = sizes ? mb_parse_size(tok) : strtoull(tok, NULL, 10);

		if (!v || n == MAX_LIST)
			return -1;
		out[n++] = v;
	}
	return n ? n : -1;
}

/*
 * --variant NAME=DAEMON[,ARG...]: a ring target running DAEMON with ARGs
 * (at most MB_MAX_DAEMON_ARGS), labelled "dmasvc NAME wN".  The env is
 * completed from o->env in main (backend, paths).  0, or -1 for a bad spec.
 */
static int parse_variant(struct opts *o, const char *spec)
{
	char *buf = o->variant_buf[o->nr_variants], *eq, *save = NULL, *tok;
	struct mb_env *v = &o->variants[o->nr_variants];
	unsigned int na = 0;

	if (strlen(spec) >= sizeof(o->variant_buf[0]))
		return -1;
	strcpy(buf, spec);
	eq = strchr(buf, '=');
	if (!eq || eq == buf || eq - buf > 12)
		return -1;
	*eq = '\0';
	memset(v, 0, sizeof(*v));
	v->variant = buf;
	tok = strtok_r(eq + 1, ",", &save);
	if (!tok)
		return -1;
	v->daemon_path = tok;
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (na == MB_MAX_DAEMON_ARGS)
			return -1;
		v->daemon_args[na++] = tok;
	}
	o->nr_variants++;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "iommu", required_argument, NULL, 'i' },
		{ "device", required_argument, NULL, 'd' },
		{ "paths", required_argument, NULL, 'p' },
		{ "daemon", required_argument, NULL, 'D' },
		{ "variant", required_argument, NULL, 'V' },
		{ "workers", required_argument, NULL, 'w' },
		{ "sizes", required_argument, NULL, 's' },
		{ "granules", required_argument, NULL, 'g' },
		{ "scenarios", required_argument, NULL, 'S' },
		{ "storm-size", required_argument, NULL, 'z' },
		{ "storm-conversions", required_argument, NULL, 'c' },
		{ "burst-pages", required_argument, NULL, 'B' },
		{ "sync-notes", required_argument, NULL, 'n' },
		{ "reps", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 'e' },
		{ "quick", no_argument, NULL, 'q' },
		{ "prefault", no_argument, NULL, 'P' },
		{ "hugetlb", no_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "json-file", required_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *paths = NULL, *scen = "plug,storm,burst,sync";
	bool set_sizes = false, set_storm = false, set_conv = false, set_burst = false,
	     set_reps = false, set_sync = false;
	uint64_t tmp[MAX_LIST];
	int c, n;

	*o = (struct opts){
		.env = { .backend = MB_SOFT, .iommu_path = "/dev/iommu",
			 .daemon_path = MB_DAEMON_PATH },
		.workers = { 1, 2, 4 }, .nr_workers = 3,
		.sizes = { 1 * GiB, 4 * GiB, 16 * GiB }, .nr_sizes = 3,
		.granules = { 2 * MiB, 128 * MiB }, .nr_granules = 2,
		.burst_pages = { 64, 512 }, .nr_burst = 2,
		.storm_size = 64 * MiB, .storm_conv = 2000, .reps = 3, .seed = 1, .sync_notes = 2000,
	};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (!strcmp(optarg, "soft"))
				o->env.backend = MB_SOFT;
			else if (!strcmp(optarg, "iommufd"))
				o->env.backend = MB_IOMMUFD;
			else
				return -1;
			break;
		case 'i': o->env.iommu_path = optarg; break;
		case 'd': o->env.device_path = optarg; break;
		case 'p': paths = optarg; break;
		case 'D': o->env.daemon_path = optarg; break;
		case 'V':
			if (o->nr_variants == MAX_VARIANTS || parse_variant(o, optarg))
				return -1;
			break;
		case 'w':
			n = parse_list_u64(optarg, tmp, false);
			if (n < 0)
				return -1;
			for (int i = 0; i < n; i++) {
				if (tmp[i] > 64)
					return -1;
				o->workers[i] = (unsigned int)tmp[i];
			}
			o->nr_workers = (unsigned int)n;
			break;
		case 's':
			n = parse_list_u64(optarg, o->sizes, true);
			if (n < 0)
				return -1;
			o->nr_sizes = (unsigned int)n;
			set_sizes = true;
			break;
		case 'g':
			n = parse_list_u64(optarg, o->granules, true);
			if (n < 0)
				return -1;
			o->nr_granules = (unsigned int)n;
			break;
		case 'S': scen = optarg; break;
		case 'z':
			o->storm_size = mb_parse_size(optarg);
			if (!o->storm_size)
				return -1;
			set_storm = true;
			break;
		case 'c':
			o->storm_conv = (unsigned int)strtoul(optarg, NULL, 10);
			if (!o->storm_conv)
				return -1;
			set_conv = true;
			break;
		case 'B':
			n = parse_list_u64(optarg, o->burst_pages, false);
			if (n < 0)
				return -1;
			o->nr_burst = (unsigned int)n;
			set_burst = true;
			break;
		case 'n':
			o->sync_notes = (unsigned int)strtoul(optarg, NULL, 10);
			if (!o->sync_notes || o->sync_notes > 1000000)
				return -1;
			set_sync = true;
			break;
		case 'r':
			o->reps = (unsigned int)strtoul(optarg, NULL, 10);
			if (o->reps < 1 || o->reps > MB_MAX_REPS)
				return -1;
			set_reps = true;
			break;
		case 'e': o->seed = strtoull(optarg, NULL, 0); break;
		case 'q': o->quick = true; break;
		case 'P': o->prefault = true; break;
		case 'T': o->hugetlb = true; break;
		case 'j': o->json = true; break;
		case 'J':
			o->json_file = fopen(optarg, "we");
			if (!o->json_file) {
				perror(optarg);
				return -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (optind != argc || (o->json && o->json_file))
		return -1; /* --json and --json-file exclude each other */
	if (o->quick) {
		if (!set_sizes) {
			o->sizes[0] = 1 * GiB;
			o->nr_sizes = 1;
		}
		if (!set_storm)
			o->storm_size = 16 * MiB;
		if (!set_conv)
			o->storm_conv = 300;
		if (!set_burst) {
			o->burst_pages[0] = 64;
			o->nr_burst = 1;
		}
		if (!set_reps)
			o->reps = 1;
		if (!set_sync)
			o->sync_notes = 300;
	}
	if (!paths)
		paths = o->env.backend == MB_IOMMUFD ? "engine,ring,kernel" : "ring,kernel";
	/* each name exactly ("kernel-cut" is not "kernel"); direct always runs */
	for (const char *p = paths; *p;) {
		const struct { const char *name; bool *on; } names[] = {
			{ "ring", &o->path_ring },         { "engine", &o->path_engine },
			{ "kernel", &o->path_kernel },     { "kernel-cut", &o->path_kernel_cut },
			{ "kernel-hop", &o->path_kernel_hop },
			{ "faultin", &o->path_faultin },   { "direct-pf", &o->path_direct_pf },
			{ "direct", NULL },
		};
		size_t len = strcspn(p, ","), k = 0;

		while (k < sizeof(names) / sizeof(names[0]) &&
		       (len != strlen(names[k].name) || strncmp(p, names[k].name, len)))
			k++;
		if (k == sizeof(names) / sizeof(names[0])) {
			fprintf(stderr, "map-bench: --paths: unknown path '%.*s'\n", (int)len, p);
			return -1;
		}
		if (names[k].on)
			*names[k].on = true;
		p += len + (p[len] == ',');
	}
	o->sc_plug = strstr(scen, "plug") != NULL;
	o->sc_storm = strstr(scen, "storm") != NULL;
	o->sc_burst = strstr(scen, "burst") != NULL;
	o->sc_sync = strstr(scen, "sync") != NULL;
	if (o->hugetlb && (o->sc_storm || o->sc_burst || o->sc_sync)) {
		/* a 4 KiB granule is not a page of a huge page (REGION_ADD refuses it) */
		fprintf(stderr, "map-bench: --hugetlb: plug only (--scenarios plug): the other "
			"scenarios' 4 KiB granules are smaller than a huge page\n");
		return -1;
	}
	if (o->env.backend == MB_IOMMUFD && !o->env.device_path)
		o->env.device_path = getenv("EDU_CDEV");
	return 0;
}

static void machine_info(struct mb_machine *m, const struct opts *o, int argc, char **argv)
{
	struct utsname u;
	char line[256];
	FILE *f;
	time_t now = time(NULL);
	size_t len = 0;

	memset(m, 0, sizeof(*m));
	snprintf(m->cpu, sizeof(m->cpu), "unknown cpu");
	f = fopen("/proc/cpuinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *v = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && v) {
			snprintf(m->cpu, sizeof(m->cpu), "%s", v + 2);
			m->cpu[strcspn(m->cpu, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	m->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (!uname(&u))
		snprintf(m->kernel, sizeof(m->kernel), "%s %s %s", u.sysname, u.release, u.machine);
	getloadavg(m->load_start, 3);
	m->mem_avail = (uint64_t)(mb_meminfo_bytes("MemAvailable") > 0 ? mb_meminfo_bytes("MemAvailable") : 0);
	if (o->env.backend == MB_IOMMUFD)
		snprintf(m->backend, sizeof(m->backend),
			 "iommufd (real kernel IOMMU: %s, device %s attached to every space)",
			 o->env.iommu_path, o->env.device_path ? o->env.device_path : "NONE");
	else
		snprintf(m->backend, sizeof(m->backend),
			 "soft (the software IOMMU model be_soft_ops: userspace tables, pins = %s)",
			 mb_soft_pin() == SOFT_PIN_MLOCK ? "mlock" : "io_uring registered buffers");
	snprintf(m->pin_field, sizeof(m->pin_field), "%s",
		 o->env.backend != MB_IOMMUFD && mb_soft_pin() == SOFT_PIN_MLOCK ? "VmLck" : "VmPin");
	for (int i = 0; i < argc && len + 2 < sizeof(m->command); i++)
		len += (size_t)snprintf(m->command + len, sizeof(m->command) - len, "%s%s",
					i ? " " : "", argv[i]);
	strftime(m->started, sizeof(m->started), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
	m->reps = o->reps;
	m->prefault = o->prefault;
	m->hugetlb = o->hugetlb;
}

/* One run of @sc on @in: appends one repetition to res[phase].  0 or -errno. */
static int run_one(const struct mb_scen *sc, struct mb_inst *in,
		   struct mb_result *res, const char *pin_field, bool prefault, bool hugetlb)
{
	struct mb_region r = { .size = sc->size, .granule = sc->granule, .iova = REGION_IOVA };
	const struct mb_path_ops *ops = in->ops;
	int64_t base;
	int ret;

	r.fd = hugetlb ? mb_memfd_hugetlb(sc->size) : mb_memfd(sc->size);
	if (r.fd < 0)
		return r.fd;
	if (prefault && fallocate(r.fd, 0, 0, (off_t)sc->size)) {
		ret = -errno;
		goto out_close;
	}
	if (ops != &mb_ring_ops && ops != &mb_faultin_ops) { /* in-process paths map it themselves */
		r.vaddr = mmap(NULL, sc->size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
		if (r.vaddr == MAP_FAILED) {
			ret = -errno;
			goto out_close;
		}
	}
	if (ops->freeze)
		ops->freeze(in->t, false);
	base = mb_proc_bytes(ops->pin_pid(in->t), pin_field);
	ret = ops->region_add(in->t, &r);
	if (ret)
		goto out_unmap;
	for (unsigned int p = 0; p < sc->nr_phases; p++) {
		const struct mb_phase *ph = &sc->ph[p];
		struct mb_result *rs = &res[p];
		struct mb_counts c0, c1;
		uint64_t t0, t1, *lat;
		int64_t pinned;
		size_t from = 0;
		int e;

		lat = realloc(rs->lat_ns, (rs->nr_lat + ph->nr_notes) * sizeof(*lat));
		if (!lat) {
			ret = -ENOMEM;
			break;
		}
		rs->lat_ns = lat;
		e = ops->counts(in->t, &c0);
		if (e && !rs->err)
			rs->err = e;
		t0 = mb_now_ns();
		for (size_t b = 0; b < ph->nr_batches; b++) {
			e = ops->notify(in->t, ph->notes + from, ph->batch_end[b] - from,
					lat + rs->nr_lat + from);

			if (e && !rs->err)
				rs->err = e;
			from = ph->batch_end[b];
		}
		t1 = mb_now_ns();
		e = ops->counts(in->t, &c1);
		if (e && !rs->err)
			rs->err = e;
		pinned = mb_proc_bytes(ops->pin_pid(in->t), pin_field);
		if (rs->reps < MB_MAX_REPS) {
			rs->wall_ms[rs->reps] = (double)(t1 - t0) / 1e6;
			if (getenv("MB_TRACE"))
				fprintf(stderr, "trace: %s %s rep %u: %.1f ms\n", in->label, ph->name, rs->reps, rs->wall_ms[rs->reps]);
			rs->maps[rs->reps] = c1.map_calls - c0.map_calls;
			rs->unmaps[rs->reps] = c1.unmap_calls - c0.unmap_calls;
			rs->pinned[rs->reps] = pinned >= base && base >= 0 ? (uint64_t)(pinned - base) : 0;
			rs->reps++;
		}
		rs->nr_lat += ph->nr_notes;
	}
	ops->region_del(in->t);
out_unmap:
	if (ops->freeze)
		ops->freeze(in->t, true);
	if (r.vaddr)
		munmap(r.vaddr, sc->size);
out_close:
	close(r.fd);
	return ret;
}

/*
 * fault_in_ratios: for each worker count run on both "ring" (the VMM
 * prefaults) and "faultin" (the service faults), the median over the
 * interleaved repetitions of faultin's wall time / ring's in the same
 * repetition, with its range: who pays for allocating the plug, side by
 * side.  Prints nothing without such a pair.
 */
static void fault_in_ratios(FILE *f, const struct mb_scen *sc, unsigned int phase,
			    const struct mb_inst *inst, const struct mb_result *row, size_t ni)
{
	for (size_t i = 0; i < ni; i++) {
		double r[MB_MAX_REPS], lo = 0, hi = 0;
		unsigned int n = 0;

		if (inst[i].ops != &mb_faultin_ops)
			continue;
		for (size_t j = 0; j < ni; j++) {
			if (inst[j].ops != &mb_ring_ops || inst[j].workers != inst[i].workers)
				continue;
			for (unsigned int k = 0; k < row[i].reps && k < row[j].reps; k++) {
				if (row[j].wall_ms[k] <= 0)
					continue;
				r[n] = row[i].wall_ms[k] / row[j].wall_ms[k];
				lo = n && lo < r[n] ? lo : r[n];
				hi = n && hi > r[n] ? hi : r[n];
				n++;
			}
		}
		if (n)
			fprintf(f, "fault-in ratio w%u (%s, %s): service faulting / VMM prefaulting = %.3f "
				   "(%.3f-%.3f) over %u interleaved repetitions\n\n",
				inst[i].workers, sc->ph[phase].name, sc->title, mb_median_d(r, n), lo, hi, n);
	}
}

/* Run @sc on every target, interleaved, and print its tables. */
static int run_scen(const struct opts *o, const struct mb_machine *m, struct mb_scen *sc,
		    struct mb_inst *inst, size_t ni, bool *first_row)
{
	struct mb_result (*res)[MB_MAX_PHASES] = calloc(ni, sizeof(*res));
	int ret = 0;

	if (!res)
		return -ENOMEM;
	/* Warm-up, not recorded: the first run after a size change pays for
	 * the kernel finding free memory (compaction, reclaim). */
	ret = run_one(sc, &inst[0], res[0], m->pin_field, o->prefault, o->hugetlb);
	for (unsigned int p = 0; p < MB_MAX_PHASES; p++) {
		free(res[0][p].lat_ns);
		res[0][p] = (struct mb_result){ 0 };
	}
	for (unsigned int rep = 0; rep < o->reps && !ret; rep++) {
		for (size_t k = 0; k < ni && !ret; k++) {
			size_t i = (k + rep) % ni;

			ret = run_one(sc, &inst[i], res[i], m->pin_field, o->prefault, o->hugetlb);
			if (ret)
				fprintf(stderr, "map-bench: %s on %s: %s\n", sc->title,
					inst[i].label, strerror(-ret));
		}
	}
	for (unsigned int p = 0; p < sc->nr_phases; p++) {
		struct mb_result row[MAX_INST];

		if (!sc->ph[p].report)
			continue;
		for (size_t i = 0; i < ni; i++)
			row[i] = res[i][p];
		if (o->json)
			mb_json_rows(stdout, first_row, sc, p, inst, row, ni);
		else
			mb_report_table(stdout, m, sc, p, inst, row, ni);
		if (o->json_file)
			mb_json_rows(o->json_file, first_row, sc, p, inst, row, ni);
		if (!o->json)
			fault_in_ratios(stdout, sc, p, inst, row, ni);
		fflush(stdout);
	}
	for (size_t i = 0; i < ni; i++)
		for (unsigned int p = 0; p < MB_MAX_PHASES; p++)
			free(res[i][p].lat_ns);
	free(res);
	return ret;
}

/*
 * Whether a region of @size fits in memory now (waiting up to
 * MEM_WAIT_S for memory the previous run freed to come back); else
 * writes why.
 */
static bool fits(uint64_t size, char *why, size_t len)
{
	int64_t avail = mb_meminfo_bytes("MemAvailable");
	int64_t total = mb_meminfo_bytes("MemTotal");
	char a[24], b[24];

	/* no point waiting for what the machine does not have */
	for (int i = 0; total >= 0 && (uint64_t)total >= size + MEM_SPARE &&
			i < MEM_WAIT_S * 10; i++) {
		if (avail >= 0 && (uint64_t)avail >= size + MEM_SPARE)
			return true;
		nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
		avail = mb_meminfo_bytes("MemAvailable");
	}
	snprintf(why, len, "needs %s + %s spare, MemAvailable is %.1f GiB",
		 mb_fmt_size(a, size), mb_fmt_size(b, MEM_SPARE),
		 avail < 0 ? 0.0 : (double)avail / (double)GiB);
	return false;
}

/*
 * open_limit: open the in-process limit target @ops (kernel, kernel-cut,
 * kernel-hop) with @workers threads into *@in, labelled @label.  0, or
 * -errno reported on stderr.
 */
static int open_limit(struct opts *o, struct mb_inst *in, const struct mb_path_ops *ops,
		      unsigned int workers, const char *label)
{
	int ret;

	*in = (struct mb_inst){ .ops = ops, .workers = workers };
	snprintf(in->label, sizeof(in->label), "%s", label);
	ret = ops->open(&o->env, workers, &in->t);
	if (ret)
		fprintf(stderr, "map-bench: starting %s: %s%s\n", in->label, strerror(-ret),
			ret == -EOPNOTSUPP ? " (real iommufd only: --backend iommufd)" : "");
	return ret;
}

static int open_targets(struct opts *o, struct mb_inst *inst, size_t *ni)
{
	const struct mb_path_ops *paths[3] = { NULL, NULL, NULL };
	size_t n = 0;
	int ret;

	inst[n] = (struct mb_inst){ .ops = &mb_direct_ops, .label = "direct" };
	ret = mb_direct_ops.open(&o->env, 0, &inst[n].t);
	if (ret)
		return ret;
	n++;
	if (o->path_direct_pf) {
		inst[n] = (struct mb_inst){ .ops = &mb_direct_pf_ops, .label = "direct-pf" };
		ret = mb_direct_pf_ops.open(&o->env, 0, &inst[n].t);
		if (ret) {
			*ni = n;
			return ret;
		}
		n++;
	}
	if (o->path_engine)
		paths[0] = &mb_engine_ops;
	if (o->path_ring)
		paths[1] = &mb_ring_ops;
	if (o->path_faultin)
		paths[2] = &mb_faultin_ops;
	for (unsigned int p = 0; p < 3; p++) {
		/* the ring path once per --variant, if any */
		unsigned int nv = p == 1 && o->nr_variants ? o->nr_variants : 1;

		for (unsigned int k = 0; paths[p] && k < nv * o->nr_workers && n < MAX_INST; k++) {
			struct mb_inst *in = &inst[n];
			unsigned int w = k % o->nr_workers, v = k / o->nr_workers;
			const struct mb_env *env = &o->env;

			*in = (struct mb_inst){ .ops = paths[p], .workers = o->workers[w] };
			snprintf(in->label, sizeof(in->label), "dmasvc %s w%u", paths[p]->name,
				 o->workers[w]);
			if (p == 1 && o->nr_variants) {
				struct mb_env *ve = &o->variants[v];
				const char *name = ve->variant, *dpath = ve->daemon_path;
				const char *args[MB_MAX_DAEMON_ARGS + 1];

				memcpy(args, ve->daemon_args, sizeof(args));
				*ve = o->env; /* backend, device, tmpdir */
				ve->variant = name;
				ve->daemon_path = dpath;
				memcpy(ve->daemon_args, args, sizeof(args));
				env = ve;
				snprintf(in->label, sizeof(in->label), "dmasvc %s w%u", name, o->workers[w]);
			}
			ret = paths[p]->open(env, o->workers[w], &in->t);
			if (ret) {
				fprintf(stderr, "map-bench: starting %s: %s\n", in->label,
					strerror(-ret));
				*ni = n;
				return ret;
			}
			if (paths[p]->freeze) /* runs only for its own repetitions */
				paths[p]->freeze(in->t, true);
			n++;
		}
	}
	if (o->path_kernel_cut && n < MAX_INST) {
		ret = open_limit(o, &inst[n], &mb_kernel_cut_ops, 1, "kernel-cut t1");
		if (ret)
			goto out;
		n++;
	}
	if (o->path_kernel_hop && n < MAX_INST) {
		ret = open_limit(o, &inst[n], &mb_kernel_hop_ops, 1, "kernel-hop t1");
		if (ret)
			goto out;
		n++;
	}
	/* the physical limit: one thread, then two over disjoint halves */
	for (unsigned int k = 1; o->path_kernel && k <= 2 && n < MAX_INST; k++) {
		char label[16];

		snprintf(label, sizeof(label), "kernel t%u", k);
		ret = open_limit(o, &inst[n], &mb_kernel_ops, k, label);
		if (ret)
			goto out;
		n++;
	}
out:
	*ni = n;
	return ret;
}

int main(int argc, char **argv)
{
	struct mb_inst inst[MAX_INST];
	struct mb_machine m;
	char tmpl[] = "/tmp/map-bench.XXXXXX", why[160], what[160], sz[24], gr[24];
	bool first_row = true;
	struct opts o;
	struct mb_scen sc;
	size_t ni = 0;
	int ret;

	if (parse_opts(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	if (!mkdtemp(tmpl)) {
		perror("map-bench: mkdtemp");
		return 1;
	}
	o.env.tmpdir = tmpl;
	machine_info(&m, &o, argc, argv);
	ret = open_targets(&o, inst, &ni);
	if (ret)
		goto out;
	if (o.json)
		mb_json_begin(stdout, &m);
	else
		mb_report_header(stdout, &m);
	if (o.json_file)
		mb_json_begin(o.json_file, &m);

	for (unsigned int s = 0; o.sc_plug && s < o.nr_sizes && !ret; s++) {
		for (unsigned int g = 0; g < o.nr_granules && !ret; g++) {
			snprintf(what, sizeof(what), "plug %s at %s", mb_fmt_size(sz, o.sizes[s]),
				 mb_fmt_size(gr, o.granules[g]));
			if (!fits(o.sizes[s], why, sizeof(why))) {
				mb_report_skip(stdout, o.json, &first_row, what, why);
				if (o.json_file)
					mb_report_skip(o.json_file, true, &first_row, what, why);
				continue;
			}
			ret = mb_scen_plug(&sc, o.sizes[s], o.granules[g]);
			if (ret) {
				fprintf(stderr, "map-bench: %s: bad size or granule\n", what);
				break;
			}
			ret = run_scen(&o, &m, &sc, inst, ni, &first_row);
			mb_scen_free(&sc);
		}
	}
	if (o.sc_storm && !ret) {
		ret = mb_scen_storm(&sc, o.storm_size, o.storm_conv, o.seed);
		if (!ret) {
			ret = run_scen(&o, &m, &sc, inst, ni, &first_row);
			mb_scen_free(&sc);
		} else {
			fprintf(stderr, "map-bench: storm: bad size (>= 1 MiB, 4 KiB multiple)\n");
		}
	}
	for (unsigned int b = 0; o.sc_burst && b < o.nr_burst && !ret; b++) {
		ret = mb_scen_burst(&sc, o.burst_pages[b]);
		if (!ret) {
			ret = run_scen(&o, &m, &sc, inst, ni, &first_row);
			mb_scen_free(&sc);
		}
	}
	if (o.sc_sync && !ret) {
		ret = mb_scen_sync(&sc, o.sync_notes, o.seed);
		if (!ret) {
			ret = run_scen(&o, &m, &sc, inst, ni, &first_row);
			mb_scen_free(&sc);
		}
	}
	getloadavg(m.load_end, 3);
	if (o.json)
		mb_json_end(stdout, &m);
	else
		printf("load at end: %.2f %.2f %.2f\n", m.load_end[0], m.load_end[1],
		       m.load_end[2]);
	if (o.json_file)
		mb_json_end(o.json_file, &m);
out:
	if (o.json_file)
		fclose(o.json_file);
	for (size_t i = 0; i < ni; i++)
		inst[i].ops->close(inst[i].t);
	if (!ret) {
		char path[300];

		for (size_t i = 0; i < ni; i++) {
			snprintf(path, sizeof(path), "%s/dmasvc-w%u.log", tmpl, inst[i].workers);
			unlink(path);
		}
		rmdir(tmpl);
	} else {
		fprintf(stderr, "map-bench: failed (%s); daemon logs in %s\n", strerror(-ret), tmpl);
	}
	return ret ? 1 : 0;
}
