/* SPDX-License-Identifier: MIT */
/*
 * ring_bench.c - ring-bench: the dmasvc ring against DPDK rte_ring.
 *
 * Two processes share each ring through a memfd mapped at different
 * addresses.  Workloads: fwd throughput at burst 1 and 32, and a ping-pong
 * round trip (1 SQE fwd, 1 CQE back) polling and through the eventfd sleep
 * path.  Each repetition runs every workload for both implementations, the
 * order alternating, so that machine noise hits both; the table shows the
 * median of the repetitions per implementation and the ratio ours/rte of
 * those medians (throughput: higher is better; latency: lower is better).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

#define MAX_REPS 99

enum row {
	ROW_TP1,
	ROW_TP1_WIN,
	ROW_TP32,
	ROW_TP32_WIN,
	ROW_POLL_P50,
	ROW_POLL_P99,
	ROW_SLEEP_P50,
	ROW_SLEEP_P99,
	ROW_COUNT,
};

static const struct {
	const char *name;
	bool higher_better;
} rows[ROW_COUNT] = {
	[ROW_TP1] = { "throughput burst 1, whole run (Mev/s)", true },
	[ROW_TP1_WIN] = { "throughput burst 1, median window (Mev/s)", true },
	[ROW_TP32] = { "throughput burst 32, whole run (Mev/s)", true },
	[ROW_TP32_WIN] = { "throughput burst 32, median window (Mev/s)", true },
	[ROW_POLL_P50] = { "round trip poll p50 (ns)", false },
	[ROW_POLL_P99] = { "round trip poll p99 (ns)", false },
	[ROW_SLEEP_P50] = { "round trip eventfd sleep p50 (ns)", false },
	[ROW_SLEEP_P99] = { "round trip eventfd sleep p99 (ns)", false },
};

struct opts {
	bool json, quick, pin;
	unsigned reps;
	uint64_t tp_ms;       /* length of one throughput run */
	unsigned poll_iters, sleep_iters;
	uint64_t pp_ms;       /* cap on one ping-pong run */
};

/* The --help text; it must match what the program does. */
static void usage(FILE *f)
{
	fprintf(f,
		"usage: ring-bench [--quick] [--json] [--reps N] [--no-pin]\n"
		"\n"
		"Compares the dmasvc SQ/CQ ring with DPDK rte_ring (SP/SC, _elem burst API,\n"
		"rte_ring_init on a memfd, no EAL) between two processes that map each ring\n"
		"at different addresses, %u slots per direction, 32-byte events forward\n"
		"and 16-byte completions back.\n"
		"\n"
		"Rows: forward throughput at burst 1 and 32; ping-pong round trip p50/p99\n"
		"polling, and with idle sides sleeping on an eventfd (ours: need-wakeup\n"
		"flags decide whether to signal; rte_ring: always signals).\n"
		"Throughput is given over the whole run and as the median rate over\n"
		"windows of %u events (the consumer stamps each window boundary), which\n"
		"leaves out windows in which a process was preempted.\n"
		"Each repetition runs every row for both implementations in alternating\n"
		"order; the table shows medians over repetitions and ratio = ours / rte of\n"
		"the medians (throughput: higher is better, latency: lower is better).\n"
		"\n"
		"Default: 5 repetitions; a throughput run lasts 1 s; a ping-pong run does\n"
		"200000 (poll) or 20000 (sleep) round trips, or stops after 3 s.\n"
		"\n"
		"  --quick      3 repetitions, 200 ms throughput runs, 50000 / 3000 round\n"
		"               trips capped at 500 ms: about 10 s at most\n"
		"  --json       print {\"rows\":[{\"name\":..,\"ours\":..,\"rte\":..,\"ratio\":..}]}\n"
		"               instead of the table\n"
		"  --reps N     repetitions (1..%d)\n"
		"  --no-pin     do not pin; by default the parent (producer) runs on CPU 0\n"
		"               and each child (consumer) on CPU 1\n"
		"  --help       this text\n",
		BENCH_SLOTS, 1u << BENCH_WINDOW_SHIFT, MAX_REPS);
}

/* Fill @o from the command line; exits with usage on a bad option. */
static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' }, { "json", no_argument, NULL, 'j' },
		{ "reps", required_argument, NULL, 'r' }, { "no-pin", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	long reps = 0;
	bool nopin = false;
	int c;

	*o = (struct opts){ .reps = 5, .tp_ms = 1000, .poll_iters = 200000, .sleep_iters = 20000, .pp_ms = 3000 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'q': o->quick = true; break;
		case 'j': o->json = true; break;
		case 'p': nopin = true; break;
		case 'r': reps = strtol(optarg, NULL, 10); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (o->quick)
		*o = (struct opts){ .json = o->json, .quick = true, .reps = 3, .tp_ms = 200,
				    .poll_iters = 50000, .sleep_iters = 3000, .pp_ms = 500 };
	o->pin = !nopin && sysconf(_SC_NPROCESSORS_ONLN) >= 2;
	if (reps) {
		if (reps < 1 || reps > MAX_REPS) {
			fprintf(stderr, "ring-bench: --reps must be 1..%d\n", MAX_REPS);
			exit(2);
		}
		o->reps = (unsigned)reps;
	}
}

/* Run workload @workload of @impl once; store its rows in @out[ROW_*][@rep]; exits on failure. */
static void run_one(const struct bench_impl *impl, int workload, const struct opts *o,
		    double out[ROW_COUNT][MAX_REPS], unsigned rep)
{
	struct bench_lat lat;
	double whole, win;
	int ret = 0;

	switch (workload) {
	case 0:
		ret = impl->throughput(1, o->tp_ms, &whole, &win);
		out[ROW_TP1][rep] = whole / 1e6;
		out[ROW_TP1_WIN][rep] = win / 1e6;
		break;
	case 1:
		ret = impl->throughput(32, o->tp_ms, &whole, &win);
		out[ROW_TP32][rep] = whole / 1e6;
		out[ROW_TP32_WIN][rep] = win / 1e6;
		break;
	case 2:
		ret = impl->pingpong(false, o->poll_iters, o->pp_ms, &lat);
		out[ROW_POLL_P50][rep] = lat.p50;
		out[ROW_POLL_P99][rep] = lat.p99;
		break;
	default:
		ret = impl->pingpong(true, o->sleep_iters, o->pp_ms, &lat);
		out[ROW_SLEEP_P50][rep] = lat.p50;
		out[ROW_SLEEP_P99][rep] = lat.p99;
		break;
	}
	if (ret < 0) {
		fprintf(stderr, "ring-bench: %s workload %d failed: %s\n", impl->name, workload, strerror(-ret));
		exit(1);
	}
}

/* qsort order for double. */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of @n values (@v is left unsorted). */
static double median(const double *v, unsigned n)
{
	double tmp[MAX_REPS];

	memcpy(tmp, v, n * sizeof(*v));
	qsort(tmp, n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* "model name" of the first CPU in /proc/cpuinfo. */
static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(buf, len, "unknown CPU");
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) == 0 && colon) {
			snprintf(buf, len, "%s", colon + 2);
			buf[strcspn(buf, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
}

/* The line of /proc/loadavg. */
static void loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");

	snprintf(buf, len, "?");
	if (f) {
		if (fgets(buf, (int)len, f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
	}
}

int main(int argc, char **argv)
{
	static double res[2][ROW_COUNT][MAX_REPS];
	const struct bench_impl *impls[2] = { &bench_ours, &bench_rte };
	char cpu[256], load0[128], load1[128];
	struct utsname un;
	struct opts o;

	parse(argc, argv, &o);
	if (o.pin && bench_pin_self(0) < 0) {
		fprintf(stderr, "ring-bench: cannot pin to CPU 0; use --no-pin\n");
		return 1;
	}
	loadavg(load0, sizeof(load0));
	for (unsigned r = 0; r < o.reps; r++) {
		for (int w = 0; w < 4; w++) {
			int first = (int)((r + (unsigned)w) % 2);

			for (int k = 0; k < 2; k++) {
				int i = (first + k) % 2;

				run_one(impls[i], w, &o, res[i], r);
			}
		}
		if (!o.json)
			fprintf(stderr, "ring-bench: repetition %u/%u done\n", r + 1, o.reps);
	}
	loadavg(load1, sizeof(load1));

	if (o.json) {
		printf("{\"rows\":[");
		for (int row = 0; row < ROW_COUNT; row++) {
			double ours = median(res[0][row], o.reps), rte = median(res[1][row], o.reps);

			printf("%s{\"name\":\"%s\",\"ours\":%.3f,\"rte\":%.3f,\"ratio\":%.3f}", row ? "," : "",
			       rows[row].name, ours, rte, ours / rte);
		}
		printf("]}\n");
		return 0;
	}
	cpu_model(cpu, sizeof(cpu));
	uname(&un);
	printf("ring-bench: dmasvc ring vs DPDK rte_ring (SP/SC _elem burst), %u slots, two processes\n", BENCH_SLOTS);
	printf("machine: %s, %ld cores, kernel %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN), un.release);
	printf("load average: %s (start) / %s (end)\n", load0, load1);
	printf("pinning: %s\n", o.pin ? "producer CPU 0, consumer CPU 1" : "none");
	printf("command:");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\nrepetitions: %u, interleaved; medians; ratio = ours / rte of the medians; range = per-repetition ratios\n\n",
	       o.reps);
	printf("%-44s %12s %12s %8s  %s\n", "row", "ours", "rte", "ratio", "range");
	for (int row = 0; row < ROW_COUNT; row++) {
		double ours = median(res[0][row], o.reps), rte = median(res[1][row], o.reps);
		double lo = 1e300, hi = 0;

		for (unsigned r = 0; r < o.reps; r++) {
			double q = res[0][row][r] / res[1][row][r];

			lo = q < lo ? q : lo;
			hi = q > hi ? q : hi;
		}
		printf("%-44s %12.2f %12.2f %7.2fx  %.2f..%.2f (%s)\n", rows[row].name, ours, rte, ours / rte, lo, hi,
		       rows[row].higher_better ? "higher is better" : "lower is better");
	}
	return 0;
}
