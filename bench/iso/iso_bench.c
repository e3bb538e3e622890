/* SPDX-License-Identifier: MIT */
/*
 * iso_bench.c - iso-bench: does one session's long operation stall another
 * session (issue 13, "Nothing long runs on the event loop")?
 *
 * One run starts the real daemon (dmasvc --soft-iommu, the software model)
 * and a session B that does blocking 2 MiB populates, each followed by a
 * blocking discard of it (so every populate is a real pin + map, every
 * discard a real unmap + unpin; both are timed: a stall hits whichever is
 * in flight) while session A does, in turn:
 *   alone       nothing (B's baseline)
 *   populate    one populate of SIZE at 2 MiB granules (a big burst)
 *   remove      REGION_REMOVE of that populated region (unmap + unpin)
 *   teardown    a child process with SIZE populated is SIGKILLed: the
 *               service unmaps, unpins and unmaps its memory
 *   status      `dmasvcctl status` run in a loop for STATUS_MS
 * and B alone again at the end (the machine's drift), and prints, side by
 * side, B's p50/p99/max under each, the ratio of each p99 to B's p99 alone
 * (the first row), and A's operation time.  A populate of B counts in the
 * scenario it started in, however long it waits.  Target: ratios <= 3.
 * With --reps N the sequence (alone, populate, remove, teardown, status)
 * runs N times and each row pools its N scenarios' samples (A's op time is
 * the mean): one REGION_REMOVE of 4 GiB gives B only a few hundred events,
 * whose p99 is nearly their maximum, and the alone baseline is then taken
 * between the loads, not only before them.
 *
 * Usage: iso-bench [--size GiB] [--workers N] [--reps N] [--json] [--daemon PATH] [--ctl PATH]
 * --json prints {"machine", "load", "rows": [{"name", "what", "op_ms", "n",
 * "p50_us", "p99_us", "max_us", "ratio"}]} instead of the table.
 * A benchmark, never a meson test; results in bench/RESULTS.md.
 * Reuses map-bench's clock, memfd, /proc and percentile helpers (mb_util.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "mb.h"

#define B_SIZE (64 * MiB)
#define B_IOVA (1ull << 40)
#define A_IOVA (1ull << 41)
#define ALONE_MS 3000
#define STATUS_MS 3000
#define MAX_SAMPLES 200000
#define NR_ROWS 6

extern char **environ;

struct opts {
	uint64_t size;
	unsigned int workers, reps;
	bool json;
	const char *daemon, *ctl;
};

/* One session with one region over its own memfd. */
struct sess {
	struct dmasvc_client *c;
	int fd, region;
	uint64_t size;
};

/* B's probe, on its own thread: latencies while running. */
struct probe {
	struct sess b;
	atomic_bool running, stop;
	atomic_bool inflight;    /* a populate that started while running is out */
	uint64_t *lat;
	atomic_size_t n;
	int err;
	pthread_t thread;
};

static int sess_open(struct sess *s, const char *sock, uint64_t size, uint64_t iova)
{
	struct dmasvc_connect_opts co = { .timeout_ms = 120000 };
	struct dmasvc_region_desc d = { .size = size, .iova = iova, .granule = 2 * MiB };
	int ret, mem;

	s->size = size;
	ret = dmasvc_connect(sock, &co, &s->c);
	if (ret)
		return ret;
	s->fd = mb_memfd(size);
	if (s->fd < 0)
		return s->fd;
	mem = dmasvc_memory_add(s->c, s->fd, size, 0);
	if (mem < 0)
		return mem;
	d.mem_id = (uint32_t)mem;
	s->region = dmasvc_region_add(s->c, &d);
	return s->region < 0 ? s->region : 0;
}

static void sess_close(struct sess *s)
{
	if (s->c)
		dmasvc_disconnect(s->c);
	if (s->fd > 0)
		close(s->fd);
	s->c = NULL;
}

static void *probe_main(void *arg)
{
	struct probe *p = arg;
	uint64_t g = 0, ng = p->b.size / (2 * MiB);

	while (!atomic_load(&p->stop)) {
		uint64_t t0, dt;
		int ret = 0;

		if (!atomic_load(&p->running)) {
			usleep(1000);
			continue;
		}
		/* Counted if it started during the scenario, however long it
		 * takes: a B stuck behind A's whole operation shows as such. */
		atomic_store(&p->inflight, true);
		for (int k = 0; k < 2 && !ret; k++) { /* populate, then discard: both timed */
			t0 = mb_now_ns();
			ret = k ? dmasvc_discard(p->b.c, (uint32_t)p->b.region, g * 2 * MiB, 2 * MiB)
				: dmasvc_populate(p->b.c, (uint32_t)p->b.region, g * 2 * MiB, 2 * MiB);
			dt = mb_now_ns() - t0;
			if (!ret) {
				size_t i = atomic_fetch_add(&p->n, 1);

				if (i < MAX_SAMPLES)
					p->lat[i] = dt;
			}
		}
		atomic_store(&p->inflight, false);
		if (ret) {
			p->err = ret;
			break;
		}
		g = (g + 1) % ng;
	}
	return NULL;
}

static void probe_begin(struct probe *p)
{
	atomic_store(&p->n, 0);
	atomic_store(&p->running, true);
}

static size_t probe_end(struct probe *p)
{
	size_t n;

	atomic_store(&p->running, false);
	while (atomic_load(&p->inflight) && !p->err)
		usleep(100); /* the sample in flight lands */
	n = atomic_load(&p->n);
	return n < MAX_SAMPLES ? n : MAX_SAMPLES;
}

/* One scenario's row: the samples of all its repetitions. */
struct row {
	const char *name;
	const char *what;
	uint64_t *lat;           /* MAX_SAMPLES */
	size_t n;
	uint64_t p50, p99, max, op_ns; /* op_ns: summed over reps until printed */
	unsigned int reps;
	int err;
};

static pid_t daemon_start(const struct opts *o, const char *sock)
{
	char workers[16];
	pid_t pid;

	snprintf(workers, sizeof(workers), "%u", o->workers);
	pid = fork();
	if (pid == 0) {
		execl(o->daemon, o->daemon, "--soft-iommu", "--socket", sock, "--log-level", "error",
		      "--workers", workers, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; pid > 0 && i < 500; i++) {
		if (access(sock, F_OK) == 0)
			return pid;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/* Run `ctl status` against @sock until @ms passed.  Returns the runs, or -errno. */
static int status_loop(const char *ctl, const char *sock, uint64_t ms)
{
	char *argv[] = { (char *)ctl, "--socket", (char *)sock, "status", NULL };
	uint64_t t0 = mb_now_ns();
	posix_spawn_file_actions_t fa;
	int runs = 0, ret = 0;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0); /* its report is not ours */
	while (!ret && mb_now_ns() - t0 < ms * 1000000ull) {
		pid_t pid;
		int st;

		ret = -posix_spawn(&pid, ctl, &fa, NULL, argv, environ);
		if (ret)
			break;
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			ret = -EIO;
		runs++;
	}
	posix_spawn_file_actions_destroy(&fa);
	return ret ? ret : runs;
}

/* A's SIZE populated in a child, which then waits to be killed.  Returns its pid. */
static pid_t doomed_start(const char *sock, uint64_t size)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p))
		return -errno;
	pid = fork();
	if (pid == 0) {
		struct sess a = { 0 };

		close(p[0]);
		if (sess_open(&a, sock, size, A_IOVA) == 0 &&
		    dmasvc_populate(a.c, (uint32_t)a.region, 0, size) == 0 && write(p[1], "x", 1) == 1)
			pause();
		_exit(1);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &c, 1) != 1) {
		close(p[0]);
		return pid < 0 ? -errno : -EIO;
	}
	close(p[0]);
	return pid;
}

/* Add the probe's samples since probe_begin() and A's op time to @r. */
static void finish_row(struct row *r, struct probe *p, uint64_t op_ns)
{
	size_t n = probe_end(p);

	if (n > MAX_SAMPLES - r->n)
		n = MAX_SAMPLES - r->n;
	memcpy(r->lat + r->n, p->lat, n * sizeof(*p->lat));
	r->n += n;
	r->op_ns += op_ns;
	r->reps++;
}

/* Percentiles of @r's pooled samples and its mean op time. */
static void close_row(struct row *r)
{
	r->p50 = mb_percentile(r->lat, r->n, 50);
	r->p99 = mb_percentile(r->lat, r->n, 99);
	r->max = r->n ? r->lat[r->n - 1] : 0; /* mb_percentile sorted them */
	r->op_ns = r->reps ? r->op_ns / r->reps : 0;
}

static void print_machine(int argc, char **argv, bool json)
{
	char line[256], model[128] = "?";
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "re");
	double la[3] = { 0 };

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
			snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
			model[strcspn(model, "\n")] = 0;
			break;
		}
	if (f)
		fclose(f);
	uname(&u);
	getloadavg(la, 3);
	if (json) {
		printf("{\"machine\": \"%s, %ld CPUs, %s %s\", \"load_start\": [%.2f, %.2f, %.2f], ",
		       model, sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, la[0], la[1], la[2]);
		return;
	}
	printf("iso-bench: session B's blocking 2 MiB populate while session A runs long operations\n");
	printf("machine: %s, %ld CPUs, %s %s, load %.2f %.2f %.2f (start)\n", model,
	       sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, la[0], la[1], la[2]);
	printf("command:");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
}

/* The table (or the JSON rows) of @rows; ratios against rows[0]. */
static void print_rows(const struct opts *o, struct row *rows, int nr)
{
	double la[3] = { 0 };

	getloadavg(la, 3);
	if (o->json)
		printf("\"load_end\": [%.2f, %.2f, %.2f], \"workers\": %u, \"size_gib\": %llu, \"reps\": %u, \"rows\": [",
		       la[0], la[1], la[2], o->workers, (unsigned long long)(o->size / GiB), o->reps);
	else
		printf("load %.2f %.2f %.2f (end); workers %u, SIZE %llu GiB, reps %u, "
		       "B: blocking 2 MiB populate, then its discard, each timed; us\n\n"
		       "%-9s %-30s %12s %8s %10s %10s %10s %10s  %s\n",
		       la[0], la[1], la[2], o->workers, (unsigned long long)(o->size / GiB), o->reps,
		       "scenario", "session A does", "A's op (ms)", "B n", "B p50", "B p99", "B max",
		       "p99/alone", "target <= 3x");
	for (int i = 0; i < nr; i++) {
		struct row *r = &rows[i];
		double ratio = rows[0].p99 ? (double)r->p99 / (double)rows[0].p99 : 0;

		if (o->json) {
			printf("%s{\"name\": \"%s\", \"what\": \"%s\", \"err\": %d, \"op_ms\": %.1f, \"n\": %zu, "
			       "\"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, \"ratio\": %.3f}",
			       i ? ", " : "", r->name, r->what, r->err, (double)r->op_ns / 1e6, r->n,
			       (double)r->p50 / 1e3, (double)r->p99 / 1e3, (double)r->max / 1e3, ratio);
			continue;
		}
		if (r->err) {
			printf("%-9s %-30s failed: %s\n", r->name, r->what, strerror(-r->err));
			continue;
		}
		printf("%-9s %-30s %12.0f %8zu %10.0f %10.0f %10.0f %9.2fx  %s\n", r->name, r->what,
		       (double)r->op_ns / 1e6, r->n, (double)r->p50 / 1e3, (double)r->p99 / 1e3,
		       (double)r->max / 1e3, ratio,
		       i == 0 || i == nr - 1 ? "-" : ratio <= 3.0 ? "met" : "MISSED");
	}
	if (o->json)
		printf("]}\n");
}

/* One repetition of the loads, each row's samples added to @rows[1..4]. */
/* What the model holds pinned in @pid: VmPin (io_uring pins) + VmLck (its mlock fallback). */
static int64_t pinned(pid_t pid)
{
	return mb_proc_bytes(pid, "VmPin") + mb_proc_bytes(pid, "VmLck");
}

static void run_loads(const struct opts *o, const char *sock, pid_t daemon, struct probe *p,
		      struct row *rows)
{
	struct sess a = { 0 };
	uint64_t t0;
	pid_t doomed;
	int ret, err;

	err = sess_open(&a, sock, o->size, A_IOVA);
	probe_begin(p); /* A populates SIZE */
	t0 = mb_now_ns();
	if (!err)
		err = dmasvc_populate(a.c, (uint32_t)a.region, 0, o->size);
	finish_row(&rows[1], p, mb_now_ns() - t0);
	rows[1].err = rows[1].err ? rows[1].err : err;

	probe_begin(p); /* A removes it */
	t0 = mb_now_ns();
	ret = err ? err : dmasvc_region_remove(a.c, (uint32_t)a.region);
	finish_row(&rows[2], p, mb_now_ns() - t0);
	rows[2].err = rows[2].err ? rows[2].err : ret;
	sess_close(&a);

	doomed = doomed_start(sock, o->size); /* a child with SIZE populated, then killed */
	if (doomed < 0 && !rows[3].err)
		rows[3].err = (int)doomed;
	if (doomed > 0) {
		int64_t lck = pinned(daemon), shm = mb_proc_bytes(daemon, "RssShmem");

		probe_begin(p);
		t0 = mb_now_ns();
		kill(doomed, SIGKILL);
		waitpid(doomed, NULL, 0);
		/* done when the service let go of its pins and its mapping */
		while ((pinned(daemon) > lck - (int64_t)o->size + (int64_t)(16 * MiB) ||
			mb_proc_bytes(daemon, "RssShmem") > shm - (int64_t)o->size + (int64_t)(16 * MiB)) &&
		       mb_now_ns() - t0 < 120 * 1000000000ull)
			usleep(1000);
		finish_row(&rows[3], p, mb_now_ns() - t0);
	}

	probe_begin(p); /* an operator asking in a loop */
	t0 = mb_now_ns();
	ret = status_loop(o->ctl, sock, STATUS_MS);
	finish_row(&rows[4], p, mb_now_ns() - t0);
	if (ret < 0 && !rows[4].err)
		rows[4].err = ret;
}

int main(int argc, char **argv)
{
	struct opts o = { .size = 4 * GiB, .workers = 2, .reps = 1, .daemon = MB_DAEMON_PATH,
			  .ctl = ISO_CTL_PATH };
	char dir[] = "/tmp/iso-bench-XXXXXX", sock[128];
	struct probe p = { 0 };
	struct row rows[NR_ROWS] = {
		{ "alone", "nothing" }, { "populate", "populate SIZE at 2 MiB" },
		{ "remove", "REGION_REMOVE of SIZE" }, { "teardown", "SIGKILL with SIZE populated" },
		{ "status", "dmasvcctl status, in a loop" }, { "alone", "nothing (again, at the end)" },
	};
	pid_t daemon;
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--size") && i + 1 < argc)
			o.size = strtoull(argv[++i], NULL, 0) * GiB;
		else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
			o.workers = (unsigned int)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			o.reps = (unsigned int)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--json"))
			o.json = true;
		else if (!strcmp(argv[i], "--daemon") && i + 1 < argc)
			o.daemon = argv[++i];
		else if (!strcmp(argv[i], "--ctl") && i + 1 < argc)
			o.ctl = argv[++i];
		else
			o.reps = 0;
		if (!o.reps || !o.size || !o.workers) {
			fprintf(stderr, "usage: %s [--size GiB] [--workers N] [--reps N] [--json] "
				"[--daemon PATH] [--ctl PATH]\n", argv[0]);
			return 2;
		}
	}
	print_machine(argc, argv, o.json);
	fflush(stdout);
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock, sizeof(sock), "%s/dmasvc.sock", dir);
	daemon = daemon_start(&o, sock);
	if (daemon < 0) {
		fprintf(stderr, "iso-bench: cannot start %s\n", o.daemon);
		return 1;
	}
	p.lat = calloc(MAX_SAMPLES, sizeof(*p.lat));
	ret = p.lat ? 0 : -ENOMEM;
	for (int i = 0; i < NR_ROWS && !ret; i++) {
		rows[i].lat = calloc(MAX_SAMPLES, sizeof(*rows[i].lat));
		ret = rows[i].lat ? 0 : -ENOMEM;
	}
	if (!ret)
		ret = sess_open(&p.b, sock, B_SIZE, B_IOVA);
	if (!ret)
		ret = -pthread_create(&p.thread, NULL, probe_main, &p);
	if (ret) {
		fprintf(stderr, "iso-bench: session B: %s\n", strerror(-ret));
		goto out;
	}

	for (unsigned int r = 0; r < o.reps && !p.err; r++) {
		probe_begin(&p); /* alone */
		usleep(ALONE_MS * 1000);
		finish_row(&rows[0], &p, 0);
		run_loads(&o, sock, daemon, &p, rows);
	}

	probe_begin(&p); /* alone again: how much the machine drifted */
	usleep(ALONE_MS * 1000);
	finish_row(&rows[5], &p, 0);

	for (int i = 0; i < NR_ROWS; i++)
		close_row(&rows[i]);
	print_rows(&o, rows, NR_ROWS);
	if (p.err)
		fprintf(stderr, "B failed: %s\n", strerror(-p.err));
out:
	atomic_store(&p.stop, true);
	if (p.thread)
		pthread_join(p.thread, NULL);
	sess_close(&p.b);
	kill(daemon, SIGTERM);
	waitpid(daemon, NULL, 0);
	unlink(sock);
	rmdir(dir);
	for (int i = 0; i < NR_ROWS; i++)
		free(rows[i].lat);
	free(p.lat);
	return p.err ? 1 : 0;
}
