/* SPDX-License-Identifier: MIT */
/*
 * test_longops_it.c - nothing long runs on the event loop (issue 13).
 *
 * While session A runs a long operation, session B's blocking 2 MiB
 * populates go on: each completes within B_BOUND_MS, far below the
 * operation's own time, which the test measures and requires to be long
 * (so a loop that waited for it would fail).  The operations are made long
 * deterministically with the software model's slowness knobs, not with big
 * memory: DMASVC_TEST_SOFT_FAULTS unmap_us_per_mib (REGION_REMOVE, BYE and
 * a killed client's teardown unmap slowly), map_delay_us (every map is
 * slow: a long burst, a doorbell flood), DMASVC_TEST_SOFT_DEVICES (a model
 * device whose attach takes seconds, as iommufd's pins every area).
 *
 * Also: a client that hangs up or is killed while its job (DEVICE_ATTACH,
 * REGION_REMOVE) runs, and a SIGTERM during a job: the job finishes, the
 * session is torn down after it, no fd or pin is left, the service exits 0.
 * Every test ends with B's state checked against the backend and, once
 * both sessions are gone, the service's pins back at the baseline.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)
#define B_BOUND_MS 500    /* B's worst populate while A's operation runs */
#define A_LONG_MS 1500    /* A's operation must take at least this long */
#define B_IOVA (1ull << 40)
#define A_IOVA (1ull << 41)

static struct it_svc svc;
static int64_t base_vmlck;

/* One libdmasvc session with one memfd region. */
struct peer {
	struct dmasvc_client *c;
	int fd, region;
	uint64_t size;
};

static void peer_open(struct peer *p, uint64_t size, uint64_t granule, uint64_t iova)
{
	struct dmasvc_region_desc d = { .size = size, .iova = iova, .granule = granule };
	int mem;

	p->size = size;
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &p->c), 0);
	p->fd = it_memfd(size, true);
	mem = dmasvc_memory_add(p->c, p->fd, size, 0);
	cr_assert_geq(mem, 0, "memory_add: %s", dmasvc_last_error(p->c));
	d.mem_id = (uint32_t)mem;
	p->region = dmasvc_region_add(p->c, &d);
	cr_assert_geq(p->region, 0, "region_add: %s", dmasvc_last_error(p->c));
}

static void peer_close(struct peer *p)
{
	if (!p->c)
		return;
	dmasvc_disconnect(p->c);
	close(p->fd);
	p->c = NULL;
}

/* Start the service with the test's knobs (NULL: none). */
static void svc_up(const char *faults, const char *devices, const char *const *extra)
{
	if (faults)
		setenv("DMASVC_TEST_SOFT_FAULTS", faults, 1);
	if (devices)
		setenv("DMASVC_TEST_SOFT_DEVICES", devices, 1);
	base_vmlck = it_suite_start(&svc, extra);
	unsetenv("DMASVC_TEST_SOFT_FAULTS");
	unsetenv("DMASVC_TEST_SOFT_DEVICES");
}

static void stop(void)
{
	it_suite_stop(&svc);
}

TestSuite(longops, .fini = stop, .timeout = 120);

/*
 * One of B's blocking 2 MiB populates, granule after granule of its region
 * (then again: already populated, a round trip through the loop with no
 * map), counted in *@n, its latency kept in *@worst (ms) if the worst.
 */
static void b_once(struct peer *b, unsigned *n, uint64_t *worst)
{
	uint64_t t0 = it_now_ms(), dt;
	uint64_t g = *n % (b->size / (2 * MiB));
	int ret = dmasvc_populate(b->c, (uint32_t)b->region, g * 2 * MiB, 2 * MiB);

	cr_assert_eq(ret, 0, "B's populate: %s (%s)", strerror(-ret), dmasvc_last_error(b->c));
	dt = it_now_ms() - t0;
	*worst = dt > *worst ? dt : *worst;
	++*n;
}

/* B's probe: b_once() every 2 ms while *@running.  Returns the worst (ms); *@n the count. */
static uint64_t b_probe(struct peer *b, atomic_bool *running, unsigned *n)
{
	uint64_t worst = 0;

	*n = 0;
	while (atomic_load(running)) {
		b_once(b, n, &worst);
		usleep(2000);
	}
	return worst;
}

/* B's state matches the backend, then both are gone and no pin is left. */
static void finish(struct peer *b)
{
	char why[256];

	cr_assert_eq(it_check_region(b->c, (uint32_t)b->region, B_IOVA, why, sizeof(why)), 0, "B: %s",
		     why);
	peer_close(b);
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck, 10000), base_vmlck, "no stray pins");
	cr_assert(it_svc_alive(&svc));
}

/* ---- A's long operation on a thread ---- */

struct a_op {
	struct peer a;
	int (*op)(struct a_op *);
	int ret;
	int arg;
	uint64_t ms;
	atomic_bool running;
	pthread_t thread;
};

static void *a_main(void *arg)
{
	struct a_op *o = arg;
	uint64_t t0 = it_now_ms();

	o->ret = o->op(o);
	o->ms = it_now_ms() - t0;
	atomic_store(&o->running, false);
	return NULL;
}

static void a_start(struct a_op *o)
{
	atomic_store(&o->running, true);
	cr_assert_eq(pthread_create(&o->thread, NULL, a_main, o), 0);
	usleep(50000); /* its request is in the service */
}

/* Run B's probe while A's operation runs; check both. */
static void b_during_a(struct peer *b, struct a_op *o, const char *what)
{
	unsigned n;
	uint64_t worst = b_probe(b, &o->running, &n);

	pthread_join(o->thread, NULL);
	cr_assert_eq(o->ret, 0, "A's %s: %s (%s)", what, strerror(-o->ret), dmasvc_last_error(o->a.c));
	cr_assert_geq(o->ms, A_LONG_MS, "A's %s took %llu ms: too short to prove anything", what,
		      (unsigned long long)o->ms);
	cr_assert_geq(n, 5, "B completed %u populates during A's %s", n, what);
	cr_assert_lt(worst, B_BOUND_MS, "B's worst populate took %llu ms during A's %s of %llu ms",
		     (unsigned long long)worst, what, (unsigned long long)o->ms);
}

static int op_region_remove(struct a_op *o)
{
	return dmasvc_region_remove(o->a.c, (uint32_t)o->a.region);
}

static int op_device_attach(struct a_op *o)
{
	int ret = dmasvc_device_attach(o->a.c, o->arg);

	return ret > 0 ? 0 : ret ? ret : -EINVAL;
}

static int op_populate(struct a_op *o)
{
	return dmasvc_populate(o->a.c, (uint32_t)o->a.region, 0, o->a.size);
}

/*
 * Session A with 256 MiB populated on a service that unmaps at 8 ms/MiB
 * (about 2 s for A's memory) runs @op while B probes.
 */
static void slow_unmap_case(int (*op)(struct a_op *), const char *what)
{
	struct peer b = { 0 };
	struct a_op o = { .op = op };

	svc_up("unmap_us_per_mib=8000", NULL, NULL);
	peer_open(&b, 16 * MiB, 2 * MiB, B_IOVA);
	peer_open(&o.a, 256 * MiB, 2 * MiB, A_IOVA);
	cr_assert_eq(dmasvc_populate(o.a.c, (uint32_t)o.a.region, 0, o.a.size), 0);
	a_start(&o);
	b_during_a(&b, &o, what);
	peer_close(&o.a);
	finish(&b);
}

static int op_bye(struct a_op *o)
{
	dmasvc_disconnect(o->a.c); /* BYE: waits for its reply, after the unmaps */
	o->a.c = NULL;
	close(o->a.fd);
	return 0;
}

Test(longops, region_remove_runs_off_the_loop)
{
	slow_unmap_case(op_region_remove, "REGION_REMOVE");
}

Test(longops, bye_runs_off_the_loop)
{
	slow_unmap_case(op_bye, "BYE");
}

/*
 * A killed client's teardown (256 MiB at 8 ms/MiB, about 2 s): the child
 * populates, says so on a pipe, and is SIGKILLed; B probes until the
 * service has forgotten A (SESSIONS: B only, besides the asker), which it does only
 * after the teardown's unmaps returned.
 */
Test(longops, killed_client_teardown_runs_off_the_loop)
{
	struct peer b = { 0 };
	int p[2], status;
	uint64_t t0, worst = 0, ms;
	unsigned n = 0;
	int64_t b_pins;
	pid_t pid;
	char c;

	svc_up("unmap_us_per_mib=8000", NULL, NULL);
	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct peer a = { 0 };

		close(p[0]);
		peer_open(&a, 256 * MiB, 2 * MiB, A_IOVA);
		if (dmasvc_populate(a.c, (uint32_t)a.region, 0, a.size) == 0 && write(p[1], "x", 1) == 1)
			pause();
		_exit(1);
	}
	close(p[1]);
	cr_assert_eq(read(p[0], &c, 1), 1, "A populated");
	close(p[0]);
	peer_open(&b, 16 * MiB, 2 * MiB, B_IOVA);
	cr_assert_eq(dmasvc_populate(b.c, (uint32_t)b.region, 0, b.size), 0);
	b_pins = it_vmlck(svc.pid) - (int64_t)(256 * MiB);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	t0 = it_now_ms();
	while (it_count_sessions(svc.sock) > 1 && it_now_ms() - t0 < 20000) {
		b_once(&b, &n, &worst);
		usleep(2000);
	}
	ms = it_now_ms() - t0;
	cr_assert_eq(it_vmlck(svc.pid), b_pins, "A's pins released");
	cr_assert_geq(ms, A_LONG_MS, "A's teardown took %llu ms: too short to prove anything",
		      (unsigned long long)ms);
	cr_assert_geq(n, 5, "B completed %u populates during A's teardown", n);
	cr_assert_lt(worst, B_BOUND_MS, "B's worst populate took %llu ms during A's teardown of %llu ms",
		     (unsigned long long)worst, (unsigned long long)ms);
	finish(&b);
}

/* DEVICE_ATTACH of a model device whose attach takes 2 s. */
Test(longops, device_attach_runs_off_the_loop)
{
	struct peer b = { 0 };
	struct a_op o = { .op = op_device_attach };

	svc_up(NULL, "2000000", NULL);
	peer_open(&b, 16 * MiB, 2 * MiB, B_IOVA);
	peer_open(&o.a, 16 * MiB, 2 * MiB, A_IOVA);
	o.arg = it_memfd(4096, true); /* any fd: the model device keeps nothing */
	a_start(&o);
	b_during_a(&b, &o, "DEVICE_ATTACH");
	close(o.arg);
	peer_close(&o.a);
	finish(&b);
}

/*
 * A big burst runs (64 maps of 50 ms on 2 workers: about 1.6 s) while an
 * operator asks what `dmasvcctl status` asks (service-wide STATUS and
 * SESSIONS, on a query-only connection each time): each answer comes
 * within the bound, not after the burst.
 */
Test(longops, status_does_not_wait_for_a_burst)
{
	static const char *const extra[] = { "--workers", "2", NULL };
	struct dmasvc_stat_service st;
	struct a_op o = { .op = op_populate };
	uint64_t worst = 0;
	unsigned n = 0;

	svc_up("map_delay_us=50000", NULL, extra);
	peer_open(&o.a, 128 * MiB, 2 * MiB, A_IOVA);
	a_start(&o);
	while (atomic_load(&o.running)) {
		struct dmasvc_client *q;
		uint64_t t0 = it_now_ms(), dt;

		cr_assert_eq(dmasvc_connect_query_only(svc.sock, NULL, &q), 0);
		cr_assert_eq(dmasvc_query(q, DMASVC_QUERY_STATUS, DMASVC_QUERY_F_ALL_SESSIONS, 0, &st,
					  sizeof(st), 1), 1);
		dmasvc_disconnect(q);
		int ns = it_count_sessions(svc.sock);

		cr_assert_geq(ns, 1, "SESSIONS: A at least, besides the asker (%d)", ns);
		dt = it_now_ms() - t0;
		worst = dt > worst ? dt : worst;
		n++;
		usleep(20000);
	}
	pthread_join(o.thread, NULL);
	cr_assert_eq(o.ret, 0, "A's populate: %s", strerror(-o.ret));
	cr_assert_geq(o.ms, A_LONG_MS, "A's burst took %llu ms: too short", (unsigned long long)o.ms);
	cr_assert_geq(n, 5, "%u status rounds during the burst", n);
	cr_assert_lt(worst, B_BOUND_MS, "status took %llu ms during a burst of %llu ms",
		     (unsigned long long)worst, (unsigned long long)o.ms);
	peer_close(&o.a);
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck, 10000), base_vmlck, "no stray pins");
}

/* ---- a client flooding its doorbells ---- */

#define FLOOD_QUEUES 7
#define FLOOD_ENTRIES 2048 /* 7 x 2048 + the default queue: within the in-flight cap */

struct flood {
	struct peer a;
	atomic_bool stop;
	atomic_ulong events;
	int err;
	pthread_t thread;
};

/*
 * Keep every queue full of 4 KiB populates of distinct granules (each one
 * map, slow with map_delay_us), discarding the whole region once all are
 * populated; never wait for a completion.
 */
static void *flood_main(void *arg)
{
	struct flood *f = arg;
	struct dmasvc_queue *q[FLOOD_QUEUES];
	uint64_t ng = f->a.size / 4096, next = 0;

	for (int i = 0; i < FLOOD_QUEUES; i++)
		if ((f->err = dmasvc_queue_open(f->a.c, FLOOD_ENTRIES, &q[i])))
			return NULL;
	while (!atomic_load(&f->stop)) {
		for (int i = 0; i < FLOOD_QUEUES && !atomic_load(&f->stop); i++) {
			struct dmasvc_completion cq[256];
			int r;

			while (next < ng && dmasvc_submit_populate(q[i], (uint32_t)f->a.region, next * 4096,
								   4096, next) == 0)
				next++;
			while ((r = dmasvc_reap(q[i], cq, 256, 0)) > 0)
				atomic_fetch_add(&f->events, (unsigned long)r);
		}
		if (next == ng) { /* all submitted: wait for them, start over */
			for (int i = 0; i < FLOOD_QUEUES; i++) {
				struct dmasvc_completion cq[256];
				int r;

				while ((r = dmasvc_reap(q[i], cq, 256, 100)) > 0)
					atomic_fetch_add(&f->events, (unsigned long)r);
			}
			dmasvc_discard(f->a.c, (uint32_t)f->a.region, 0, f->a.size);
			next = 0;
		}
	}
	for (int i = 0; i < FLOOD_QUEUES; i++)
		dmasvc_queue_close(q[i]);
	return NULL;
}

/*
 * A keeps 7 rings of 2048 SQEs full of slow populates (300 us per map, 2
 * workers: about 20 ms per burst of 128).  Without a per-session bound one
 * loop turn would run 16 bursts of every ring (over 2 s); with it, B's
 * blocking populate waits for at most a few of A's bursts.
 */
Test(longops, doorbell_flood_gets_a_bounded_share)
{
	static const char *const extra[] = { "--workers", "2", NULL };
	struct flood f = { 0 };
	struct peer b = { 0 };
	uint64_t worst = 0, t0;
	unsigned n = 0;

	svc_up("map_delay_us=300", NULL, extra);
	peer_open(&b, 16 * MiB, 2 * MiB, B_IOVA);
	peer_open(&f.a, 64 * MiB, 4096, A_IOVA);
	cr_assert_eq(pthread_create(&f.thread, NULL, flood_main, &f), 0);
	for (int i = 0; i < 200 && atomic_load(&f.events) < 2048; i++)
		usleep(10000);
	t0 = it_now_ms();
	while (it_now_ms() - t0 < 3000) {
		b_once(&b, &n, &worst);
		usleep(5000);
	}
	atomic_store(&f.stop, true);
	pthread_join(f.thread, NULL);
	cr_assert_eq(f.err, 0, "A's queues: %s", strerror(-f.err));
	cr_assert_geq(atomic_load(&f.events), 4096, "A flooded (%lu events)", atomic_load(&f.events));
	cr_assert_lt(worst, B_BOUND_MS, "B's worst populate took %llu ms during the flood",
		     (unsigned long long)worst);
	peer_close(&f.a);
	finish(&b);
}

/* ---- hang-ups and a stop while a job runs ---- */

/* Wait up to 10 s for the service to be back to B alone: its pins, its fds. */
static void back_to_b(int64_t pins, int fds)
{
	int n = -1, f = -1;

	for (int i = 0; i < 1000 && ((n = it_count_sessions(svc.sock)) != 1 ||
				     (f = it_count_fds(svc.pid)) != fds); i++)
		usleep(10000);
	cr_assert_eq(n, 1, "only B is left (%d sessions)", n);
	cr_assert_eq(f, fds, "the service's fds are back to %d (now %d)", fds, f);
	cr_assert_eq(it_wait_vmlck(svc.pid, pins, 5000), pins, "only B's pins are left");
	cr_assert(it_svc_alive(&svc));
}

/*
 * A raw client sends DEVICE_ATTACH (a model device taking 1 s) and hangs
 * up at once: the job finishes, its reply goes nowhere, the session is
 * torn down (the device detached) and freed; B is served throughout.
 */
Test(longops, hangup_while_device_attach_runs)
{
	struct dmasvc_device_attach da = { 0 };
	struct peer b = { 0 };
	int64_t pins;
	int fds, sock, dev;
	unsigned n = 0;
	uint64_t t0, worst = 0;

	svc_up(NULL, "1000000", NULL);
	peer_open(&b, 16 * MiB, 2 * MiB, B_IOVA);
	cr_assert_eq(dmasvc_populate(b.c, (uint32_t)b.region, 0, b.size), 0); /* its pins stay */
	pins = it_vmlck(svc.pid);
	fds = it_count_fds(svc.pid);
	sock = it_raw_connect(svc.sock);
	cr_assert_geq(sock, 0);
	cr_assert_eq(it_raw_hello(sock), 0);
	dev = it_memfd(4096, true);
	cr_assert_eq(it_raw_send(sock, DMASVC_CMD_DEVICE_ATTACH, 9, &da, sizeof(da), &dev, 1), 0);
	close(dev);
	close(sock); /* hang up, the attach unanswered */
	t0 = it_now_ms();
	usleep(300000);
	cr_assert_eq(it_count_sessions(svc.sock), 2, "the attach job runs: A is still there");
	while (it_now_ms() - t0 < 1500) {
		b_once(&b, &n, &worst);
		usleep(5000);
	}
	cr_assert_lt(worst, B_BOUND_MS, "B's worst populate: %llu ms", (unsigned long long)worst);
	back_to_b(pins, fds);
	finish(&b);
}

/*
 * A client with 64 MiB populated asks REGION_REMOVE (unmapping at 8 ms/MiB,
 * about 0.5 s) and is SIGKILLed while the job runs: the job finishes, then
 * the teardown; nothing is left.
 */
Test(longops, killed_during_region_remove)
{
	struct peer b = { 0 };
	int p[2], fds;
	int64_t pins;
	pid_t pid;
	char c;

	svc_up("unmap_us_per_mib=8000", NULL, NULL);
	peer_open(&b, 16 * MiB, 2 * MiB, B_IOVA);
	cr_assert_eq(dmasvc_populate(b.c, (uint32_t)b.region, 0, 2 * MiB), 0);
	pins = it_vmlck(svc.pid);
	fds = it_count_fds(svc.pid);
	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct peer a = { 0 };

		close(p[0]);
		peer_open(&a, 64 * MiB, 2 * MiB, A_IOVA);
		if (dmasvc_populate(a.c, (uint32_t)a.region, 0, a.size) == 0 && write(p[1], "x", 1) == 1)
			dmasvc_region_remove(a.c, (uint32_t)a.region);
		pause();
		_exit(1);
	}
	close(p[1]);
	cr_assert_eq(read(p[0], &c, 1), 1, "A populated");
	close(p[0]);
	usleep(100000); /* its REGION_REMOVE runs */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	back_to_b(pins, fds);
	finish(&b);
}

/* SIGTERM while a REGION_REMOVE job runs: the service finishes it, tears down, exits 0. */
Test(longops, stop_while_a_job_runs)
{
	struct a_op o = { .op = op_region_remove };
	int rc;

	svc_up("unmap_us_per_mib=8000", NULL, NULL);
	peer_open(&o.a, 128 * MiB, 2 * MiB, A_IOVA);
	cr_assert_eq(dmasvc_populate(o.a.c, (uint32_t)o.a.region, 0, o.a.size), 0);
	a_start(&o);
	rc = it_svc_stop(&svc);
	cr_assert_eq(rc, 0, "dmasvc exits 0 on SIGTERM during a job (got %d)", rc);
	pthread_join(o.thread, NULL); /* answered, or its connection closed: either is fine */
	peer_close(&o.a);
}

/*
 * A non-admin peer's service-wide REGIONS query is refused (EPERM); it must
 * not first wait for other sessions' bursts on the loop (found by review:
 * each refused query held the loop up to 1.5 s while A's burst ran, and B's
 * populates with it).  The querier runs as uid 65534, 20 queries while A's
 * 128 MiB populate takes its 64 maps of 50 ms on A's executor.
 */
Test(longops, refused_service_wide_query_does_not_wait_for_busy_sessions)
{
	char me[16];
	const char *const extra[] = { "--workers", "2", "--socket-mode", "0666", "--allow-uid", me,
				      "--allow-uid", "65534", NULL };
	struct peer b = { 0 };
	struct a_op o = { .op = op_populate };
	long long res[3] = { 0 }; /* last result, worst ms, queries */
	uint64_t worst;
	unsigned n;
	int pfd[2];
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("not root: no client as uid 65534");
	snprintf(me, sizeof(me), "%u", (unsigned)getuid());
	svc_up("map_delay_us=50000", NULL, extra);
	cr_assert_eq(chmod(svc.dir, 0711), 0);
	peer_open(&b, 16 * MiB, 2 * MiB, B_IOVA);
	peer_open(&o.a, 128 * MiB, 2 * MiB, A_IOVA);
	cr_assert_eq(pipe(pfd), 0);
	a_start(&o);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		long long out[3] = { 1, -1, 0 };
		struct dmasvc_stat_region r[4];
		struct dmasvc_client *q;

		close(pfd[0]);
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(1);
		if (dmasvc_connect_query_only(svc.sock, NULL, &q))
			_exit(2);
		for (int i = 0; i < 20; i++) {
			uint64_t t0 = it_now_ms(), dt;

			out[0] = dmasvc_query(q, DMASVC_QUERY_REGIONS, DMASVC_QUERY_F_ALL_SESSIONS, 0, r,
					      sizeof(r[0]), 4);
			dt = it_now_ms() - t0;
			out[1] = (long long)dt > out[1] ? (long long)dt : out[1];
			out[2]++;
		}
		dmasvc_disconnect(q);
		_exit(write(pfd[1], out, sizeof(out)) == (ssize_t)sizeof(out) ? 0 : 3);
	}
	close(pfd[1]);
	worst = b_probe(&b, &o.running, &n);
	pthread_join(o.thread, NULL);
	cr_assert_eq(read(pfd[0], res, sizeof(res)), (ssize_t)sizeof(res), "the querier reports");
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_log_info("A's burst %llu ms; 20 refused queries, the slowest %lld ms; B's worst populate "
		    "%llu ms (%u)", (unsigned long long)o.ms, res[1], (unsigned long long)worst, n);
	cr_assert_eq(o.ret, 0, "A's populate: %s", strerror(-o.ret));
	cr_assert_geq(o.ms, A_LONG_MS, "A's burst took %llu ms: too short to prove anything",
		      (unsigned long long)o.ms);
	cr_expect_eq(res[2], 20);
	cr_expect_eq(res[0], -EPERM, "a service-wide query from uid 65534: %lld", res[0]);
	cr_expect_lt(res[1], B_BOUND_MS, "a refused query waited %lld ms", res[1]);
	cr_expect_lt(worst, B_BOUND_MS, "B's worst populate took %llu ms", (unsigned long long)worst);
	peer_close(&o.a);
	finish(&b);
}
