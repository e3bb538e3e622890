/* SPDX-License-Identifier: MIT */
/*
 * test_hostile_it.c - hostile clients against the real dmasvc while a
 * well-behaved libdmasvc session keeps working alongside.
 *
 * Each test starts a service and a "good" session (its own thread,
 * populating and discarding 2 MiB granules and checking every result),
 * then misbehaves on a raw socket: random bytes, no HELLO, wrong or missing
 * fds, a non-memfd fd, an unsealed memfd, malformed SQEs (each must get a
 * CQE with the right -errno, not a disconnect), corrupt ring indices (must
 * get a disconnect).  Afterwards the service must still run, the good
 * session must have made progress with zero failures, its state must match
 * the backend, and the hostile session's pins must be gone.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dmasvc/ring.h"
#include "it_util.h"

#define MiB (1ull << 20)

static struct it_svc svc;
static int64_t base_vmlck;
static int base_fds;
static char base_list[2048];
static void list_fds(pid_t pid, char *buf, size_t len);

/* ---- the good session ---- */

static struct good {
	pthread_t thread;
	atomic_bool stop;
	atomic_ulong events;
	atomic_int failures;
	char why[256];
	struct dmasvc_client *c;
	int fd, region;
} good;

static void *good_loop(void *arg)
{
	const uint64_t G = 2 * MiB;
	unsigned seed = 99;

	(void)arg;
	while (!atomic_load(&good.stop)) {
		uint64_t g = (uint64_t)rand_r(&seed) % 8, n = 1 + (uint64_t)rand_r(&seed) % (8 - g);
		int err = rand_r(&seed) % 2 ? dmasvc_populate(good.c, (uint32_t)good.region, g * G, n * G)
					    : dmasvc_discard(good.c, (uint32_t)good.region, g * G, n * G);

		if (err) {
			snprintf(good.why, sizeof(good.why), "good event: %s (%s)", strerror(-err),
				 dmasvc_last_error(good.c));
			atomic_fetch_add(&good.failures, 1);
			break;
		}
		atomic_fetch_add(&good.events, 1);
	}
	return NULL;
}

static void start(void)
{
	struct dmasvc_region_desc d = { .size = 16 * MiB, .iova = 1ull << 40, .granule = 2 * MiB };
	int mem;

	base_vmlck = it_suite_start(&svc, NULL);
	/* it_svc_start's probe connection may not be closed yet: take the low. */
	base_fds = it_count_fds(svc.pid);
	for (int i = 0; i < 10; i++) {
		int n = it_count_fds(svc.pid);

		if (n <= base_fds)
			list_fds(svc.pid, base_list, sizeof(base_list));
		base_fds = n < base_fds ? n : base_fds;
		usleep(10000);
	}
	memset(&good, 0, sizeof(good));
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &good.c), 0);
	good.fd = it_memfd(d.size, true);
	mem = dmasvc_memory_add(good.c, good.fd, d.size, 0);
	cr_assert_geq(mem, 0);
	d.mem_id = (uint32_t)mem;
	good.region = dmasvc_region_add(good.c, &d);
	cr_assert_geq(good.region, 0);
	cr_assert_eq(pthread_create(&good.thread, NULL, good_loop, NULL), 0);
}

/* The good session survived and still matches the backend. */
static void good_finish(void)
{
	unsigned long before = atomic_load(&good.events);
	char why[256];

	/* It must keep making progress after the hostile part. */
	for (int i = 0; i < 200 && atomic_load(&good.events) < before + 20 &&
			!atomic_load(&good.failures); i++)
		usleep(10000);
	atomic_store(&good.stop, true);
	pthread_join(good.thread, NULL);
	cr_assert_eq(atomic_load(&good.failures), 0, "%s", good.why);
	cr_assert_geq(atomic_load(&good.events), before + 20, "good session kept working");
	cr_assert_eq(it_check_region(good.c, (uint32_t)good.region, 1ull << 40, why, sizeof(why)), 0,
		     "good session state: %s", why);
	dmasvc_disconnect(good.c);
	close(good.fd);
	good.c = NULL;
}

static void stop(void)
{
	if (good.c) {
		atomic_store(&good.stop, true);
		pthread_join(good.thread, NULL);
		dmasvc_disconnect(good.c);
		close(good.fd);
	}
	it_suite_stop(&svc);
}

TestSuite(hostile, .init = start, .fini = stop, .timeout = 60);

/* What the service's fds point at, "fd:target " each, for a failure message. */
static void list_fds(pid_t pid, char *buf, size_t len)
{
	char path[64], target[128];
	struct dirent *e;
	size_t used = 0;
	DIR *d;

	buf[0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d)) && used < len) {
		char link[384];
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = 0;
		used += (size_t)snprintf(buf + used, len - used, "%s:%s ", e->d_name, target);
	}
	closedir(d);
}

/*
 * After hostile work: service alive, the good session fine; once it has
 * disconnected too, no pins and no fds of either peer are left.
 */
static void service_intact(void)
{
	int fds_before = base_fds;

	int fds = -1;

	cr_assert(it_svc_alive(&svc), "service still runs");
	good_finish();
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck, 2000), base_vmlck, "no stray pins");
	/* The service closes a session's fds when its loop gets to it; under
	 * ASan on a loaded 2-CPU machine that took over 1 s once: allow 10 s. */
	for (int i = 0; i < 1000 && (fds = it_count_fds(svc.pid)) != fds_before; i++)
		usleep(10000);
	if (fds != fds_before) {
		char now[2048];

		list_fds(svc.pid, now, sizeof(now));
		cr_assert_eq(fds, fds_before, "service fds back to %d (now %d): at start %s; now %s",
			     fds_before, fds, base_list, now);
	}
}

Test(hostile, random_bytes_on_the_socket)
{
	unsigned seed = 4242;

	for (int conn = 0; conn < 40; conn++) {
		int fd = it_raw_connect(svc.sock);

		cr_assert_geq(fd, 0, "service still accepts (conn %d)", conn);
		if (conn % 2)
			cr_assert_eq(it_raw_hello(fd), 0);
		for (int i = 0; i < 20; i++) {
			char buf[DMASVC_MSG_MAX + 100];
			size_t len = (size_t)rand_r(&seed) % sizeof(buf);
			struct dmasvc_msg_hdr *h = (void *)buf;

			for (size_t k = 0; k < len; k++)
				buf[k] = (char)rand_r(&seed);
			if (len >= sizeof(*h) && rand_r(&seed) % 2) {
				/* plausible header, garbage body */
				h->size = (uint32_t)len;
				h->cmd = (uint16_t)(rand_r(&seed) % (DMASVC_CMD_MAX + 2));
				h->flags = 0;
				h->error = 0;
			}
			if (send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				break; /* disconnected: fine */
		}
		/* Drain replies until the service closes or goes quiet. */
		for (;;) {
			struct dmasvc_msg_hdr hdr;
			int r = it_raw_recv(fd, &hdr, NULL, 0, NULL, NULL, 50);

			if (r == -ETIMEDOUT || r == -ENOTCONN)
				break;
			cr_assert(r >= 0 || r == -EPROTO, "reply or disconnect, got %d", r);
			if (r >= 0)
				cr_assert(hdr.flags & DMASVC_MSG_REPLY);
		}
		close(fd);
	}
	service_intact();
}

Test(hostile, first_request_must_be_hello)
{
	struct dmasvc_memory_remove body = { 0 };
	struct dmasvc_hello bad = { .major = DMASVC_PROTO_MAJOR + 1 };
	char reply[512];
	int fd = it_raw_connect(svc.sock);

	cr_assert_eq(it_raw_call(fd, DMASVC_CMD_MEMORY_REMOVE, &body, sizeof(body), NULL, 0, reply,
				 sizeof(reply), NULL, NULL), EPROTO);
	cr_assert(it_peer_closed(fd, 2000), "disconnected after a non-HELLO first request");
	close(fd);
	fd = it_raw_connect(svc.sock);
	cr_assert_eq(it_raw_call(fd, DMASVC_CMD_HELLO, &bad, sizeof(bad), NULL, 0, reply,
				 sizeof(reply), NULL, NULL), EPROTO, "major version mismatch");
	cr_assert(it_peer_closed(fd, 2000));
	close(fd);
	service_intact();
}

Test(hostile, wrong_missing_and_bad_fds)
{
	struct dmasvc_memory_add ma = { .size = 4 * MiB };
	struct dmasvc_region_add ra = { .size = 2 * MiB, .granule = 2 * MiB };
	char reply[512];
	int p[2], two[2], r;
	int unsealed = it_memfd(4 * MiB, false), sealed = it_memfd(4 * MiB, true);
	int tmpf = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	int fd = it_raw_connect(svc.sock);

	cr_assert_geq(tmpf, 0);
	cr_assert_eq(ftruncate(tmpf, 4 * MiB), 0);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(it_raw_hello(fd), 0);

	r = it_raw_call(fd, DMASVC_CMD_MEMORY_ADD, &ma, sizeof(ma), NULL, 0, reply, sizeof(reply), NULL, NULL);
	cr_assert_eq(r, EBADF, "MEMORY_ADD without an fd: %d", r);
	r = it_raw_call(fd, DMASVC_CMD_REGION_ADD, &ra, sizeof(ra), &sealed, 1, reply, sizeof(reply), NULL, NULL);
	cr_assert_eq(r, EBADF, "an fd on a command that takes none: %d", r);
	two[0] = sealed;
	two[1] = sealed;
	r = it_raw_call(fd, DMASVC_CMD_MEMORY_ADD, &ma, sizeof(ma), two, 2, reply, sizeof(reply), NULL, NULL);
	cr_assert_eq(r, EBADF, "two fds: %d", r);
	r = it_raw_call(fd, DMASVC_CMD_MEMORY_ADD, &ma, sizeof(ma), &p[0], 1, reply, sizeof(reply), NULL, NULL);
	cr_assert_gt(r, 0, "a pipe is not guest memory");
	r = it_raw_call(fd, DMASVC_CMD_MEMORY_ADD, &ma, sizeof(ma), &tmpf, 1, reply, sizeof(reply), NULL, NULL);
	cr_assert_gt(r, 0, "a regular file is not a memfd");
	r = it_raw_call(fd, DMASVC_CMD_MEMORY_ADD, &ma, sizeof(ma), &unsealed, 1, reply, sizeof(reply), NULL, NULL);
	cr_assert_gt(r, 0, "an unsealed memfd is refused");
	cr_assert_neq(reply[0], '\0', "with a message");
	ma.flags = 0x80;
	r = it_raw_call(fd, DMASVC_CMD_MEMORY_ADD, &ma, sizeof(ma), &sealed, 1, reply, sizeof(reply), NULL, NULL);
	cr_assert_eq(r, EINVAL, "unknown flag: %d", r);
	ma.flags = 0;
	ra.mem_id = 12345;
	r = it_raw_call(fd, DMASVC_CMD_REGION_ADD, &ra, sizeof(ra), NULL, 0, reply, sizeof(reply), NULL, NULL);
	cr_assert_gt(r, 0, "region on an unknown memory");
	/* The session is still usable after all of that. */
	r = it_raw_call(fd, DMASVC_CMD_MEMORY_ADD, &ma, sizeof(ma), &sealed, 1, reply, sizeof(reply), NULL, NULL);
	cr_assert_eq(r, 0, "a good MEMORY_ADD still works");
	close(fd);
	close(p[0]);
	close(p[1]);
	close(tmpf);
	close(unsealed);
	close(sealed);
	service_intact();
}

/* ---- a raw session with a ring ---- */

struct raw_ring {
	int sock, memfd, region;
	struct ring_fds fds;
	struct ring_mapping map;
	struct ring_sq_producer sq;
	struct ring_cq_consumer cq;
};

/* A raw session with one memory and region of @size bytes (2 MiB granules) and one ring. */
static void raw_ring_open_sized(struct raw_ring *rr, uint32_t entries, uint64_t size)
{
	struct dmasvc_memory_add ma = { .size = size };
	struct dmasvc_region_add ra = { .size = size, .iova = 1ull << 41, .granule = 2 * MiB };
	struct dmasvc_ring_setup rs = { .sq_entries = entries, .cq_entries = entries };
	struct ring_params p = { .sq_entries = entries, .cq_entries = entries };
	uint32_t rep[8];
	int rfds[4];
	unsigned nr = 0;

	rr->sock = it_raw_connect(svc.sock);
	cr_assert_eq(it_raw_hello(rr->sock), 0);
	rr->memfd = it_memfd(size, true);
	/* A VMM allocates its memory before it posts populates (the residency rule). */
	cr_assert_eq(it_memfd_prefault(rr->memfd, 0, size), 0);
	cr_assert_eq(it_raw_call(rr->sock, DMASVC_CMD_MEMORY_ADD, &ma, sizeof(ma), &rr->memfd, 1, rep,
				 sizeof(rep), NULL, NULL), 0);
	ra.mem_id = rep[0];
	cr_assert_eq(it_raw_call(rr->sock, DMASVC_CMD_REGION_ADD, &ra, sizeof(ra), NULL, 0, rep,
				 sizeof(rep), NULL, NULL), 0);
	rr->region = (int)rep[0];
	cr_assert_eq(it_raw_call(rr->sock, DMASVC_CMD_RING_SETUP, &rs, sizeof(rs), NULL, 0, rep,
				 sizeof(rep), rfds, &nr), 0);
	cr_assert_eq(nr, 3);
	rr->fds = (struct ring_fds){ rfds[0], rfds[1], rfds[2] };
	cr_assert_eq(ring_map(&rr->map, rr->fds.memfd, &p), 0);
	cr_assert_eq(ring_sq_producer_init(&rr->sq, &rr->map), 0);
	cr_assert_eq(ring_cq_consumer_init(&rr->cq, &rr->map), 0);
}

static void raw_ring_open(struct raw_ring *rr, uint32_t entries)
{
	raw_ring_open_sized(rr, entries, 16 * MiB);
}

static void raw_ring_close(struct raw_ring *rr)
{
	ring_unmap(&rr->map);
	ring_fds_close(&rr->fds);
	close(rr->memfd);
	close(rr->sock);
}

static void raw_post(struct raw_ring *rr, struct dmasvc_sqe sqe)
{
	cr_assert_eq(ring_sq_post(&rr->sq, &sqe, 1), 1);
	cr_assert_eq(ring_eventfd_signal(rr->fds.doorbell), 0);
}

static struct dmasvc_cqe raw_wait_cqe(struct raw_ring *rr)
{
	struct dmasvc_cqe cqe;

	for (int i = 0; i < 2000; i++) {
		int n = ring_cq_drain(&rr->cq, &cqe, 1);

		cr_assert_geq(n, 0);
		if (n == 1)
			return cqe;
		usleep(1000);
	}
	cr_assert_fail("no CQE within 2 s");
	return cqe;
}

Test(hostile, malformed_sqes_get_error_completions)
{
	const uint64_t G = 2 * MiB;
	struct {
		struct dmasvc_sqe sqe;
		int32_t res;
		const char *what;
	} cases[] = {
		{ { .opcode = DMASVC_OP_POPULATE, .offset = 4096, .length = G }, -EINVAL, "misaligned offset" },
		{ { .opcode = DMASVC_OP_POPULATE, .offset = 0, .length = G + 4096 }, -EINVAL, "misaligned length" },
		{ { .opcode = DMASVC_OP_POPULATE, .offset = 0, .length = 0 }, -EINVAL, "empty" },
		{ { .opcode = DMASVC_OP_POPULATE, .offset = 8 * G, .length = G }, -ERANGE, "past the end" },
		{ { .opcode = DMASVC_OP_DISCARD, .offset = UINT64_MAX - G + 1, .length = 2 * G }, -ERANGE, "overflow" },
		{ { .opcode = 77, .length = G }, -EINVAL, "unknown opcode" },
		{ { .opcode = DMASVC_OP_POPULATE, .flags = 2, .length = G }, -EINVAL, "unknown flag 2" },
		{ { .opcode = DMASVC_OP_POPULATE, .flags = 0x81, .length = G }, -EINVAL, "REPLAY + unknown flag" },
		{ { .opcode = DMASVC_OP_POPULATE, .flags = DMASVC_SQE_REPLAY, .offset = 2 * G, .length = G }, 0,
		  "REPLAY accepted (a fresh session: no repair)" },
		{ { .opcode = DMASVC_OP_POPULATE, .__reserved = 1, .length = G }, -EINVAL, "reserved" },
		{ { .opcode = DMASVC_OP_POPULATE, .region_id = 999999, .length = G }, -ENOENT, "unknown region" },
		{ { .opcode = DMASVC_OP_POPULATE, .offset = 0, .length = 2 * G }, 0, "valid populate" },
	};
	struct raw_ring rr;

	raw_ring_open(&rr, 8);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dmasvc_sqe sqe = cases[i].sqe;
		struct dmasvc_cqe cqe;

		if (sqe.region_id == 0)
			sqe.region_id = (uint32_t)rr.region;
		sqe.user_data = 0x1000 + i;
		raw_post(&rr, sqe);
		cqe = raw_wait_cqe(&rr);
		cr_assert_eq(cqe.user_data, 0x1000 + i, "%s: user_data echoed", cases[i].what);
		cr_assert_eq(cqe.res, cases[i].res, "%s: res %d, want %d", cases[i].what, cqe.res, cases[i].res);
	}
	cr_assert_not(it_peer_closed(rr.sock, 50), "bad SQEs are not a disconnect");
	raw_ring_close(&rr);
	service_intact();
}

/* A raw session of 8-entry rings with 4 MiB populated (pins to release). */
static struct ring_shm *raw_ring_open_pinned(struct raw_ring *rr)
{
	raw_ring_open(rr, 8);
	raw_post(rr, (struct dmasvc_sqe){ .opcode = DMASVC_OP_POPULATE, .region_id = (uint32_t)rr->region,
					    .length = 4 * MiB, .user_data = 1 });
	cr_assert_eq(raw_wait_cqe(rr).res, 0);
	return rr->map.base;
}

Test(hostile, corrupt_sq_tail_disconnects)
{
	struct raw_ring rr;
	struct ring_shm *shm = raw_ring_open_pinned(&rr);

	/* tail - head > entries: impossible for an honest producer. */
	shm->sq.tail.value += 8 + 100;
	cr_assert_eq(ring_eventfd_signal(rr.fds.doorbell), 0);
	cr_assert(it_peer_closed(rr.sock, 3000), "ring protocol error disconnects");
	raw_ring_close(&rr);
	service_intact();
}

Test(hostile, corrupt_cq_head_disconnects)
{
	struct raw_ring rr;
	struct ring_shm *shm = raw_ring_open_pinned(&rr);

	/* The client's CQ head jumps past the service's tail. */
	shm->cq.head.value += 1000;
	/*
	 * The service re-reads the head only when its cached view says the
	 * CQ is full: a ring's worth of completions gets it there.
	 */
	for (uint64_t i = 0; i < 8; i++)
		raw_post(&rr, (struct dmasvc_sqe){ .opcode = DMASVC_OP_DISCARD,
						     .region_id = (uint32_t)rr.region,
						     .length = 2 * MiB, .user_data = 2 + i });
	cr_assert(it_peer_closed(rr.sock, 3000), "CQ head corruption disconnects");
	raw_ring_close(&rr);
	service_intact();
}

Test(hostile, sq_garbage_entries_then_good_ones)
{
	struct raw_ring rr;
	unsigned seed = 3;
	int completions = 0;

	raw_ring_open(&rr, 64);
	/* Random SQE bytes: every one must complete (with some -errno or 0). */
	for (int round = 0; round < 20; round++) {
		struct dmasvc_sqe sqes[16];

		for (int i = 0; i < 16; i++) {
			unsigned char *b = (unsigned char *)&sqes[i];

			for (size_t k = 0; k < sizeof(sqes[i]); k++)
				b[k] = (unsigned char)rand_r(&seed);
			if (i % 2) {
				sqes[i].region_id = (uint32_t)rr.region;
				sqes[i].opcode = (uint8_t)(rand_r(&seed) % 3);
			}
		}
		cr_assert_eq(ring_sq_post(&rr.sq, sqes, 16), 16);
		cr_assert_eq(ring_eventfd_signal(rr.fds.doorbell), 0);
		for (int i = 0; i < 16; i++) {
			struct dmasvc_cqe cqe = raw_wait_cqe(&rr);

			cr_assert(cqe.res <= 0 && cqe.res > -4096, "res %d", cqe.res);
			completions++;
		}
	}
	cr_assert_eq(completions, 320);
	cr_assert_not(it_peer_closed(rr.sock, 50), "garbage SQEs are not a disconnect");
	raw_ring_close(&rr);
	service_intact();
}

/*
 * A session hangs up while its big populate runs on its executor, with a
 * REGION_REMOVE of that very region queued on the socket.  The service must
 * not run the request while the executor uses the region (that was a
 * use-after-free: the hang-up skipped the busy guard); it closes the
 * session after the burst, unpins everything and serves the others.
 */
Test(hostile, hangup_with_region_remove_while_busy)
{
	for (int round = 0; round < 12; round++) {
		struct dmasvc_region_remove rm;
		struct raw_ring rr;

		raw_ring_open_sized(&rr, 8, 64 * MiB); /* 64 MiB: a big burst, run on the executor */
		rm = (struct dmasvc_region_remove){ .region_id = (uint32_t)rr.region };
		raw_post(&rr, (struct dmasvc_sqe){ .opcode = DMASVC_OP_POPULATE,
						    .region_id = (uint32_t)rr.region,
						    .length = 64 * MiB, .user_data = 1 });
		cr_assert_eq(it_raw_send(rr.sock, DMASVC_CMD_REGION_REMOVE, 7, &rm, sizeof(rm), NULL, 0), 0);
		raw_ring_close(&rr); /* hang up at once, the request unanswered */
	}
	cr_assert(it_svc_alive(&svc), "the service survives");
	service_intact(); /* and no pin or fd of the hung-up sessions is left */
}

