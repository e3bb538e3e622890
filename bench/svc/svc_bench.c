/* SPDX-License-Identifier: MIT */
/*
 * svc_bench.c - svc-bench: the fixed cost of one event in the service
 * (issue 16): drain, validate, plan, dispatch, complete, measured by itself
 * in ns per event, at burst 1 and 64 (and 128; and 512, where a planner
 * that compared every event with every other showed: issue 16, Dec 7).
 *
 * What runs is the daemon's own code (daemon_dep): one session, one region
 * of 4 KiB granules, one ring, and ringsvc_ring_work() - exactly what the
 * event loop calls when a doorbell or the spin finds SQEs - timed alone.
 * The backend is the software model with map and unmap replaced by calls
 * that do nothing and succeed (zero-cost map), so everything timed is the
 * service's part: what remains when the IOMMU is free.  Not timed: the
 * client posting (staged and published with one store before the timer
 * starts) and reaping, the event loop's io_uring turn and its spin, the
 * doorbell.  Map jobs go through the daemon's worker pool (--workers).
 *
 * Rows (each burst size B):
 *   nop        B NOP SQEs: drain, validate, complete (no plan, no backend)
 *   populate   B populates of adjacent 4 KiB pages: + plan, B map jobs
 *              dispatched to the pool (each a no-op map)
 *   discard    B one-page discards of those pages: + plan, one coalesced
 *              no-op unmap
 *   discard-rev the same discards in descending page order: the planner's
 *              path for a burst out of address order (a balanced tree of
 *              the stage's events instead of appends)
 * A repetition runs every row for about --events events; rows interleave,
 * repetitions rotate nothing (all rows are in-process and short).  A row's
 * value in a repetition is its median burst's time / burst size (robust to
 * the bursts the scheduler preempted on a loaded host); printed: the median
 * of that over repetitions, min-max.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/soft_iommu.h"
#include "exec_pool_priv.h"
#include "log_priv.h"
#include "options_priv.h"
#include "ring_service_priv.h"
#include "session_priv.h"

#define PAGE 4096ull
#define REGION (64ull << 20)
#define SQ_ENTRIES 1024
#define CQ_ENTRIES 2048
#define MAX_REPS 21
#define NBURST 4

static const unsigned bursts[NBURST] = { 1, 64, 128, 512 };
enum mode { M_NOP, M_POPULATE, M_DISCARD, M_DISCARD_REV, NMODE };
static const char *const mode_name[NMODE] = { "nop", "populate", "discard", "discard-rev" };

/* Zero-cost map: succeeds, pins nothing, records nothing. */
static int null_map(struct be_space *space, uint64_t iova, uint64_t length,
		    const struct be_map_src *src, unsigned int prot)
{
	(void)space, (void)iova, (void)length, (void)src, (void)prot;
	return 0;
}

/* Zero-cost unmap: reports the whole range unmapped. */
static int null_unmap(struct be_space *space, uint64_t iova, uint64_t length, uint64_t *unmapped)
{
	(void)space, (void)iova;
	*unmapped = length;
	return 0;
}

/* The service side (the daemon's structs) and the client's view of its ring. */
struct bench {
	struct be_ops ops;
	struct dsvc_options opt;
	struct dlog lg;
	struct dsvc d;
	struct dsvc_session *s;
	int peer_fd, mem_fd;
	uint32_t region;
	struct dsvc_ring *rg;
	struct ring_mapping map;
	struct ring_sq_producer sq;
	struct ring_cq_consumer cq;
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Set up @b with @workers pool lanes.  0 or -errno (@why says what). */
/* Write every page of memfd @fd (REGION bytes): resident.  0, or -1 with errno. */
static int prefault_fd(int fd)
{
	void *m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int ret;

	if (m == MAP_FAILED)
		return -1;
	ret = madvise(m, REGION, MADV_POPULATE_WRITE);
	munmap(m, REGION);
	return ret;
}

static int bench_open(struct bench *b, unsigned workers, char *why, size_t len)
{
	struct be_config cfg = { .max_areas = 1u << 20 };
	struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	char *argv[] = { "dmasvc", "--soft-iommu", NULL };
	struct dmasvc_memory_add mreq = { .size = REGION };
	struct dmasvc_region_add rreq = { .size = REGION, .iova = 1ull << 32, .granule = PAGE };
	struct dmasvc_ring_setup qreq = { .sq_entries = SQ_ENTRIES, .cq_entries = CQ_ENTRIES };
	struct ring_params p = { .sq_entries = SQ_ENTRIES, .cq_entries = CQ_ENTRIES };
	int sp[2], fds[3], ret;

	memset(b, 0, sizeof(*b));
	b->peer_fd = b->mem_fd = -1;
	b->ops = be_soft_ops;
	b->ops.map = null_map;
	b->ops.unmap = null_unmap;
	if (opt_parse(2, argv, &b->opt, stdout, why, len) != OPT_RUN)
		return -EINVAL;
	b->lg.level = DLOG_WARN;
	b->lg.out = stderr;
	b->d.opt = &b->opt;
	b->d.log = &b->lg;
	b->d.ops = &b->ops;
	b->d.start_ns = now_ns();
	ret = b->ops.open(&cfg, &b->d.be);
	if (!ret)
		ret = pool_create(workers, &b->d.pool);
	if (!ret && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp))
		ret = -errno;
	if (ret) {
		snprintf(why, len, "backend, pool or socketpair: %s", strerror(-ret));
		return ret;
	}
	b->peer_fd = sp[1];
	ret = session_create(&b->d, sp[0], &cred, true, &b->s);
	if (ret) {
		snprintf(why, len, "session_create: %s", strerror(-ret));
		return ret;
	}
	b->mem_fd = memfd_create("svc-bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	/* resident, as a VMM's prefault leaves it (written: fallocate's
	 * pages are not uptodate, mincore() would call them holes): the
	 * residency rule's mincore() finds every page, part of a populate's cost */
	if (b->mem_fd < 0 || ftruncate(b->mem_fd, (off_t)REGION) || prefault_fd(b->mem_fd) ||
	    fcntl(b->mem_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)) {
		snprintf(why, len, "memfd: %s", strerror(errno));
		return -errno;
	}
	ret = session_memory_add(&b->d, b->s, b->mem_fd, &mreq, &rreq.mem_id, why, len);
	if (!ret)
		ret = session_region_add(&b->d, b->s, &rreq, &b->region, why, len);
	if (!ret)
		ret = session_ring_setup(&b->d, b->s, &qreq, &b->rg, fds, why, len);
	if (ret)
		return ret;
	ret = ring_map(&b->map, fds[0], &p);
	close(fds[0]); /* the event loop closes its copy after sending it */
	if (!ret)
		ret = ring_sq_producer_init(&b->sq, &b->map);
	if (!ret)
		ret = ring_cq_consumer_init(&b->cq, &b->map);
	if (ret)
		snprintf(why, len, "client side of the ring: %s", strerror(-ret));
	return ret;
}

static void bench_close(struct bench *b)
{
	ring_unmap(&b->map);
	if (b->s) {
		ringsvc_session_release(&b->d, b->s);
		session_destroy(&b->d, b->s);
	}
	if (b->d.pool)
		pool_destroy(b->d.pool);
	if (b->d.be)
		b->ops.close(b->d.be);
	if (b->peer_fd >= 0)
		close(b->peer_fd);
	if (b->mem_fd >= 0)
		close(b->mem_fd);
}

/*
 * One burst of @n events of @m at page @first: post them (one publish),
 * time ringsvc_ring_work(), reap and check the CQEs.  Returns the ns the
 * service took, or 0 with *@err set.
 */
static uint64_t one_burst(struct bench *b, enum mode m, unsigned n, uint64_t first, int *err)
{
	struct dmasvc_sqe sqe[512];
	struct dmasvc_cqe cqe[513];
	uint64_t t0, t1;
	int ret;

	for (unsigned i = 0; i < n; i++)
		sqe[i] = (struct dmasvc_sqe){
			.opcode = m == M_NOP ? DMASVC_OP_NOP : m == M_POPULATE ? DMASVC_OP_POPULATE
									 : DMASVC_OP_DISCARD,
			.region_id = b->region,
			.offset = (first + (m == M_DISCARD_REV ? n - 1 - i : i)) * PAGE,
			.length = m == M_NOP ? 0 : PAGE,
			.user_data = i,
		};
	if (ring_sq_stage(&b->sq, sqe, n) != (int)n) {
		*err = -ENOSPC;
		return 0;
	}
	ring_sq_publish(&b->sq);
	t0 = now_ns();
	ret = ringsvc_ring_work(&b->d, b->s, b->rg, 1);
	t1 = now_ns();
	if (ret != (int)n) {
		*err = ret < 0 ? ret : -EIO;
		return 0;
	}
	ret = ring_cq_drain(&b->cq, cqe, n + 1);
	if (ret != (int)n) {
		*err = -EPROTO;
		return 0;
	}
	for (unsigned i = 0; i < n; i++) {
		if (cqe[i].res) {
			*err = cqe[i].res;
			return 0;
		}
	}
	return t1 - t0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * ns per event of mode @m at burst @n over about @events events: the median
 * burst's time / @n (a burst the scheduler preempted is an outlier, not a
 * share of the mean: on a loaded host the mean measures the load).  @t has
 * room for @events / @n + 1 bursts.  < 0 with *@err set on failure.
 */
static double run_row(struct bench *b, enum mode m, unsigned n, unsigned events, uint64_t *t,
		      int *err)
{
	uint64_t pages = REGION / PAGE, at = 0;
	size_t k = 0;

	for (unsigned count = 0; count < events; count += n) {
		if (m == M_NOP) {
			t[k++] = one_burst(b, M_NOP, n, 0, err);
		} else {
			/* populate and discard the same pages: the region ends as it began */
			uint64_t tp = one_burst(b, M_POPULATE, n, at, err);
			uint64_t td = *err ? 0 : one_burst(b, m == M_DISCARD_REV ? m : M_DISCARD, n, at, err);

			t[k++] = m == M_POPULATE ? tp : td;
			at = (at + n) % (pages - n);
		}
		if (*err)
			return -1;
	}
	qsort(t, k, sizeof(*t), cmp_u64);
	return (double)t[k / 2] / n;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: svc-bench [--workers N] [--reps N] [--events N] [--json]\n"
"\n"
"The fixed cost of one event in the dmasvc service, in ns per event: the\n"
"daemon's ringsvc_ring_work() (drain, validate, plan, dispatch, complete)\n"
"timed alone on one session, with the software model's map and unmap\n"
"replaced by no-ops (zero-cost map), at bursts of 1, 64, 128 and 512 SQEs.\n"
"Rows: nop (drain, validate, complete), populate (+ plan, one map job per\n"
"4 KiB page on the worker pool), discard (+ plan, one coalesced unmap),\n"
"discard-rev (the same discards in descending order: a burst out of order).\n"
"  --workers N   worker pool lanes (default 1)\n"
"  --reps N      repetitions, 1..%d (default 5); rows interleave in each\n"
"  --events N    events per row per repetition (default 20000)\n"
"  --json        one JSON document instead of the table\n",
		MAX_REPS);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "workers", required_argument, NULL, 'w' },
		{ "reps", required_argument, NULL, 'r' },
		{ "events", required_argument, NULL, 'e' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static double res[NMODE][NBURST][MAX_REPS];
	unsigned workers = 1, reps = 5, events = 20000;
	double load0[3] = { 0 }, load1[3] = { 0 };
	bool json = false, first = true;
	uint64_t *t;
	struct bench b;
	char why[256] = "";
	struct utsname u;
	int c, err = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'w': workers = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': reps = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'e': events = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !workers || workers > 64 || !reps || reps > MAX_REPS || events < 512) {
		usage(stderr);
		return 2;
	}
	getloadavg(load0, 3);
	t = calloc(events + 1, sizeof(*t));
	err = t ? bench_open(&b, workers, why, sizeof(why)) : -ENOMEM;
	for (unsigned r = 0; r < reps && !err; r++)
		for (unsigned k = 0; k < NBURST && !err; k++)
			for (unsigned m = 0; m < NMODE && !err; m++)
				res[m][k][r] = run_row(&b, m, bursts[k], events, t, &err);
	if (t)
		bench_close(&b);
	free(t);
	getloadavg(load1, 3);
	if (err) {
		fprintf(stderr, "svc-bench: %s%s%s\n", why, *why ? ": " : "", strerror(-err));
		return 1;
	}
	if (uname(&u))
		memset(&u, 0, sizeof(u));
	if (json)
		printf("{\"machine\": {\"kernel\": \"%s %s\", \"load_start\": [%.2f, %.2f, %.2f], "
		       "\"load_end\": [%.2f, %.2f, %.2f]}, \"workers\": %u, \"reps\": %u, "
		       "\"events\": %u,\n \"rows\": [",
		       u.sysname, u.release, load0[0], load0[1], load0[2], load1[0], load1[1], load1[2],
		       workers, reps, events);
	else
		printf("svc-bench: the service's fixed cost per event (ringsvc_ring_work timed alone,\n"
		       "zero-cost map/unmap; median burst / burst size), %u worker(s), %u repetitions\n"
		       "of %u events per row\n"
		       "machine: %s %s, %ld cpus; load %.2f %.2f %.2f at start, %.2f %.2f %.2f at end\n\n"
		       "%-10s %6s %12s %21s\n",
		       workers, reps, events, u.sysname, u.release, sysconf(_SC_NPROCESSORS_ONLN),
		       load0[0], load0[1], load0[2], load1[0], load1[1], load1[2],
		       "row", "burst", "ns/event", "(min-max)");
	for (unsigned m = 0; m < NMODE; m++) {
		for (unsigned k = 0; k < NBURST; k++) {
			double v[MAX_REPS], med;

			memcpy(v, res[m][k], sizeof(v));
			qsort(v, reps, sizeof(v[0]), cmp_d);
			med = reps % 2 ? v[reps / 2] : (v[reps / 2 - 1] + v[reps / 2]) / 2;
			if (json) {
				printf("%s\n  {\"row\": \"%s\", \"burst\": %u, \"ns_per_event\": %.1f, "
				       "\"min\": %.1f, \"max\": %.1f}",
				       first ? "" : ",", mode_name[m], bursts[k], med, v[0], v[reps - 1]);
				first = false;
			} else {
				printf("%-10s %6u %12.1f %10.1f-%-10.1f\n", mode_name[m], bursts[k], med, v[0],
				       v[reps - 1]);
			}
		}
	}
	if (json)
		printf("\n ]}\n");
	return 0;
}
