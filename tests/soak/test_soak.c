/* SPDX-License-Identifier: MIT */
/*
 * test_soak.c - 64 clients x 2 SQs post random events against one real
 * daemon while whole client processes are SIGKILLed and replaced.
 *
 * Vocabulary: a "host" is a client process running HOST_CLIENTS clients
 * (each its own connection, memory and region); a client has two
 * "lanes", each a thread with its own queue (SQ/CQ ring) working on its
 * own half of the region, so the client's bitmap is exact.  The test
 * keeps NR_HOSTS hosts alive; every KILL_MS or so it SIGKILLs a random
 * one and starts a replacement (whose clients connect afresh).
 *
 * Claims:
 *   - no lost or duplicated completion: every lane knows the user_data of
 *     each event in flight; a completion that matches none, or an event
 *     never completed by the end, fails the host; every event succeeds;
 *   - at the end, with the other clients still connected, the service's
 *     view of each live client's region (QUERY REGIONS + AUDIT) equals the
 *     client's bitmap;
 *   - afterwards no session's region is left and the service's VmLck is
 *     back to its baseline: SIGKILLed clients leave nothing pinned.
 *
 * Environment: DMASVC_SOAK_SECONDS (default 20) is the kill phase;
 * DMASVC_SOAK_SEED fixes the random seed (printed).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "it_util.h"

#define NR_HOSTS 8
#define HOST_CLIENTS 8            /* 8 x 8 = 64 clients */
#define LANES 2                   /* SQs per client */
#define GRAN (64u << 10)
#define LANE_GRANULES 16
#define REGION_SIZE ((uint64_t)GRAN * LANE_GRANULES * LANES)
#define INFLIGHT 8                /* events in flight per lane */
#define MAX_SPAWNS 4096
#define KILL_MS 400

/* What a host reports through shared memory (one slot per spawn). */
struct host_report {
	atomic_int state;         /* 0 running, 1 passed, 2 failed */
	atomic_ullong events;     /* completions checked */
	atomic_ullong audits;     /* regions compared with the service */
	char why[160];            /* first failure */
};

/* Shared between the test and every host (MAP_SHARED, made before forking). */
struct soak_shared {
	atomic_int stop;          /* 1: finish, drain, verify, disconnect */
	struct host_report hosts[MAX_SPAWNS];
};

static struct it_svc svc;
static struct soak_shared *sh;

static void stop_svc(void)
{
	it_suite_stop(&svc);
	if (sh)
		munmap(sh, sizeof(*sh));
}

TestSuite(soak, .fini = stop_svc, .timeout = 600);

/* ---- one host process ---- */

struct lane {
	struct dmasvc_queue *q;
	uint32_t region;
	unsigned int id, first;    /* first granule of this lane's half */
	uint64_t inflight[INFLIGHT];
	unsigned int nr_inflight;
	uint64_t seq, done;
	unsigned int rng;
	struct host_report *rep;
};

static void fail(struct host_report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fail(struct host_report *rep, const char *fmt, ...)
{
	va_list ap;
	int expected = 0;

	if (!atomic_compare_exchange_strong(&rep->state, &expected, 2))
		return;
	va_start(ap, fmt);
	vsnprintf(rep->why, sizeof(rep->why), fmt, ap);
	va_end(ap);
}

/* Take completions; each must match exactly one event in flight. */
static int lane_reap(struct lane *l, int timeout_ms)
{
	struct dmasvc_completion c[INFLIGHT];
	int n = dmasvc_reap(l->q, c, INFLIGHT, timeout_ms);

	if (n < 0)
		return fail(l->rep, "lane %u: reap: %s", l->id, strerror(-n)), n;
	for (int i = 0; i < n; i++) {
		unsigned int k;

		for (k = 0; k < l->nr_inflight && l->inflight[k] != c[i].user_data; k++)
			;
		if (k == l->nr_inflight)
			return fail(l->rep, "lane %u: completion 0x%llx is unknown or duplicated", l->id,
				    (unsigned long long)c[i].user_data), -EPROTO;
		if (c[i].res)
			return fail(l->rep, "lane %u: event 0x%llx failed: %s", l->id,
				    (unsigned long long)c[i].user_data, strerror(-c[i].res)), c[i].res;
		l->inflight[k] = l->inflight[--l->nr_inflight];
		l->done++;
	}
	return n;
}

static void *lane_main(void *arg)
{
	struct lane *l = arg;

	while (!atomic_load(&sh->stop) && atomic_load(&l->rep->state) == 0) {
		if (l->nr_inflight < INFLIGHT) {
			unsigned int g = (unsigned int)rand_r(&l->rng) % LANE_GRANULES;
			unsigned int n = 1 + (unsigned int)rand_r(&l->rng) % (LANE_GRANULES - g);
			uint64_t ud = ((uint64_t)l->id << 40) | ++l->seq;
			uint64_t off = (uint64_t)(l->first + g) * GRAN;
			int r = rand_r(&l->rng) & 1 ?
					dmasvc_submit_populate(l->q, l->region, off, (uint64_t)n * GRAN, ud) :
					dmasvc_submit_discard(l->q, l->region, off, (uint64_t)n * GRAN, ud);

			if (r == 0) {
				l->inflight[l->nr_inflight++] = ud;
				continue;
			}
			if (r != -EAGAIN) {
				fail(l->rep, "lane %u: submit: %s", l->id, strerror(-r));
				break;
			}
		}
		if (lane_reap(l, 100) < 0)
			break;
	}
	/* Drain: every event in flight must complete. */
	for (int waited = 0; l->nr_inflight && waited < 200 && atomic_load(&l->rep->state) == 0; waited++)
		if (lane_reap(l, 100) < 0)
			break;
	if (l->nr_inflight && atomic_load(&l->rep->state) == 0)
		fail(l->rep, "lane %u: %u events never completed", l->id, l->nr_inflight);
	return NULL;
}

struct client {
	struct dmasvc_client *c;
	int memfd;
	uint32_t region;
	struct lane lanes[LANES];
	pthread_t th[LANES];
};

static int client_open(struct client *cl, unsigned int id, struct host_report *rep, unsigned int seed)
{
	struct dmasvc_connect_opts o = { .sq_entries = 8, .timeout_ms = 20000 };
	struct dmasvc_region_desc d = { .size = REGION_SIZE, .iova = 1ull << 32, .granule = GRAN };
	int r;

	memset(cl, 0, sizeof(*cl));
	cl->memfd = it_memfd(REGION_SIZE, true);
	if (cl->memfd < 0 || (r = dmasvc_connect(svc.sock, &o, &cl->c)))
		return fail(rep, "client %u: connect failed", id), -1;
	r = dmasvc_memory_add(cl->c, cl->memfd, REGION_SIZE, 0);
	if (r >= 0) {
		d.mem_id = (uint32_t)r;
		r = dmasvc_region_add(cl->c, &d);
	}
	if (r < 0)
		return fail(rep, "client %u: setup: %s", id, dmasvc_last_error(cl->c)), -1;
	cl->region = (uint32_t)r;
	for (unsigned int k = 0; k < LANES; k++) {
		struct lane *l = &cl->lanes[k];

		*l = (struct lane){ .region = cl->region, .id = id * LANES + k,
				    .first = k * LANE_GRANULES, .rng = seed ^ (id * 7919u + k), .rep = rep };
		if ((r = dmasvc_queue_open(cl->c, 8, &l->q)))
			return fail(rep, "client %u: queue: %s", id, strerror(-r)), -1;
	}
	return 0;
}

/* A host: HOST_CLIENTS clients, 2 lanes each, until sh->stop; then verify. */
static int host_main(struct host_report *rep, unsigned int seed)
{
	static struct client cl[HOST_CLIENTS];
	unsigned long long events = 0;
	char why[256];

	for (unsigned int i = 0; i < HOST_CLIENTS; i++)
		if (client_open(&cl[i], i, rep, seed))
			return 1;
	for (unsigned int i = 0; i < HOST_CLIENTS; i++)
		for (unsigned int k = 0; k < LANES; k++)
			pthread_create(&cl[i].th[k], NULL, lane_main, &cl[i].lanes[k]);
	for (unsigned int i = 0; i < HOST_CLIENTS; i++)
		for (unsigned int k = 0; k < LANES; k++) {
			pthread_join(cl[i].th[k], NULL);
			events += cl[i].lanes[k].done;
		}
	atomic_store(&rep->events, events);
	for (unsigned int i = 0; i < HOST_CLIENTS && atomic_load(&rep->state) == 0; i++) {
		if (it_check_region(cl[i].c, cl[i].region, 1ull << 32, why, sizeof(why)))
			fail(rep, "client %u: service and bitmap differ: %s", i, why);
		else
			atomic_fetch_add(&rep->audits, 1);
	}
	for (unsigned int i = 0; i < HOST_CLIENTS; i++) {
		for (unsigned int k = 0; k < LANES; k++)
			dmasvc_queue_close(cl[i].lanes[k].q);
		dmasvc_disconnect(cl[i].c);
		close(cl[i].memfd);
	}
	if (atomic_load(&rep->state) == 0)
		atomic_store(&rep->state, 1);
	return atomic_load(&rep->state) == 1 ? 0 : 1;
}

/* ---- the test ---- */

static pid_t spawn(unsigned int slot, unsigned int seed)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(host_main(&sh->hosts[slot], seed + slot * 104729u));
	return pid;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(soak, kill_and_reconnect)
{
	const char *env_s = getenv("DMASVC_SOAK_SECONDS"), *env_seed = getenv("DMASVC_SOAK_SEED");
	uint64_t secs = env_s ? strtoull(env_s, NULL, 0) : 20, t_end;
	unsigned int seed = env_seed ? (unsigned int)strtoul(env_seed, NULL, 0) : (unsigned int)time(NULL);
	const char *extra[] = { "--workers", "2", NULL };
	pid_t pids[NR_HOSTS];
	unsigned int slots[NR_HOSTS], next = 0, kills = 0, passed = 0, rng = seed;
	unsigned long long events = 0, audits = 0;
	int64_t base;

	fprintf(stderr, "soak: seed %u, %llu s, %d clients x %d SQs\n", seed, (unsigned long long)secs,
		NR_HOSTS * HOST_CLIENTS, LANES);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(sh, MAP_FAILED);
	cr_assert_eq(it_svc_start(&svc, extra), 0);
	base = it_vmlck(svc.pid);
	for (unsigned int i = 0; i < NR_HOSTS; i++)
		slots[i] = next, pids[i] = spawn(next++, seed);

	t_end = now_ms() + secs * 1000;
	while (now_ms() < t_end && next < MAX_SPAWNS) {
		unsigned int h = (unsigned int)rand_r(&rng) % NR_HOSTS;

		usleep((useconds_t)(KILL_MS / 2 + (unsigned int)rand_r(&rng) % KILL_MS) * 1000);
		cr_assert(it_svc_alive(&svc), "the service is alive");
		kill(pids[h], SIGKILL);
		waitpid(pids[h], NULL, 0);
		kills++;
		cr_assert_neq(atomic_load(&sh->hosts[slots[h]].state), 2, "host %u failed before its kill: %s",
			      slots[h], sh->hosts[slots[h]].why);
		slots[h] = next;
		pids[h] = spawn(next++, seed);
	}
	atomic_store(&sh->stop, 1);
	for (unsigned int i = 0; i < NR_HOSTS; i++) {
		int status;
		struct host_report *r = &sh->hosts[slots[i]];

		waitpid(pids[i], &status, 0);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0 && atomic_load(&r->state) == 1,
			  "host %u: %s (status 0x%x)", slots[i], r->why[0] ? r->why : "died", status);
		passed++;
		events += atomic_load(&r->events);
		audits += atomic_load(&r->audits);
	}
	fprintf(stderr, "soak: %u kills, %u spawns, %u hosts verified, %llu completions checked, %llu audits\n",
		kills, next, passed, events, audits);
	cr_assert_eq(audits, (unsigned long long)NR_HOSTS * HOST_CLIENTS, "every live client audited");
	cr_assert_gt(events, (unsigned long long)NR_HOSTS * HOST_CLIENTS, "the survivors did work");
	cr_assert_gt(kills, 0u, "clients were killed");
	cr_assert_eq(it_count_all_regions(svc.sock), 0, "no session's region is left");
	cr_assert_eq(it_wait_vmlck(svc.pid, base, 5000), base, "service VmLck back to its baseline");
}
