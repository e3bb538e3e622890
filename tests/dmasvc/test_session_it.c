/* SPDX-License-Identifier: MIT */
/*
 * test_session_it.c - libdmasvc against the real dmasvc (--soft-iommu):
 * populate/discard correctness checked against what the service's backend
 * holds (QUERY REGIONS + AUDIT) and against its VmLck; blocking and
 * asynchronous events; several concurrent sessions; the mapping budget;
 * local argument checks; a query-only connection (dmasvc_connect_query_only)
 * walking service-wide queries over several pages (dmasvc_query_each) and
 * the service's error text (dmasvc_last_service_error); a session over a
 * socket fd connected by someone else (dmasvc_connect_fd).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)

IT_SUITE(session, .timeout = 60);

struct fixture {
	struct dmasvc_client *c;
	int fd, mem, region;
	uint64_t size, granule, iova;
};

/* A session on the service at @sock with one sealed memfd of @size and one region over it. */
static void fx_open_at(struct fixture *f, const char *sock, uint64_t size, uint64_t granule,
		       uint64_t iova)
{
	struct dmasvc_region_desc d = { .size = size, .iova = iova, .granule = granule };

	f->size = size;
	f->granule = granule;
	f->iova = iova;
	cr_assert_eq(dmasvc_connect(sock, NULL, &f->c), 0);
	f->fd = it_memfd(size, true);
	cr_assert_geq(f->fd, 0);
	f->mem = dmasvc_memory_add(f->c, f->fd, size, 0);
	cr_assert_geq(f->mem, 0, "memory_add: %s", dmasvc_last_error(f->c));
	d.mem_id = (uint32_t)f->mem;
	f->region = dmasvc_region_add(f->c, &d);
	cr_assert_geq(f->region, 0, "region_add: %s", dmasvc_last_error(f->c));
}

static void fx_open(struct fixture *f, uint64_t size, uint64_t granule, uint64_t iova)
{
	fx_open_at(f, svc.sock, size, granule, iova);
}

static void fx_close(struct fixture *f)
{
	dmasvc_disconnect(f->c);
	close(f->fd);
}

static void check(struct fixture *f)
{
	char why[256];
	int err = it_check_region(f->c, (uint32_t)f->region, f->iova, why, sizeof(why));

	cr_assert_eq(err, 0, "service != client: %s", why);
}

Test(session, populate_discard_matches_backend_and_vmlck)
{
	struct fixture f;
	const uint64_t G = 2 * MiB;
	int64_t lck = it_proc_status_bytes(svc.pid, "VmLck");

	fx_open(&f, 64 * MiB, G, 1ull << 32);
	check(&f);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 8 * G), 0);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 20 * G, 4 * G), 0);
	cr_assert_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), (int64_t)(12 * G));
	check(&f);
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck + (int64_t)(12 * G), 3000),
		     base_vmlck + (int64_t)(12 * G), "VmPin follows the pins");
	/* The model pins like the kernel (io_uring, pin_user_pages): VmPin, not VmLck. */
	cr_assert_eq(it_proc_status_bytes(svc.pid, "VmLck"), lck, "the model mlock()ed");

	/* Idempotent populate, discard across a hole and a populated run. */
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 2 * G, 2 * G), 0);
	cr_assert_eq(dmasvc_discard(f.c, (uint32_t)f.region, 6 * G, 16 * G), 0);
	cr_assert_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), (int64_t)(8 * G));
	check(&f);
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck + (int64_t)(8 * G), 3000),
		     base_vmlck + (int64_t)(8 * G));

	cr_assert_eq(dmasvc_discard(f.c, (uint32_t)f.region, 0, f.size), 0);
	check(&f);
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck, 3000), base_vmlck);
	fx_close(&f);
}

Test(session, local_argument_checks)
{
	struct fixture f;
	const uint64_t G = 2 * MiB;
	struct dmasvc_region_desc bad = { .size = 3 * 4096, .granule = 3 * 4096 };

	fx_open(&f, 16 * MiB, G, 0);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 4096, G), -EINVAL, "misaligned offset");
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 0), -EINVAL, "empty");
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 8 * G, G), -ERANGE, "past the end");
	cr_assert_eq(dmasvc_populate(f.c, 77, 0, G), -ENOENT, "unknown region, as the service says");
	cr_assert_eq(dmasvc_region_add(f.c, &bad), -EINVAL, "granule not a power of two");
	cr_assert_eq(dmasvc_memory_remove(f.c, (uint32_t)f.mem), -EBUSY, "memory in use");
	cr_assert_eq(dmasvc_region_remove(f.c, (uint32_t)f.region), 0);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, G), -ENOENT, "removed region");
	cr_assert_eq(dmasvc_memory_remove(f.c, (uint32_t)f.mem), 0);
	fx_close(&f);
}

/*
 * The library's own checks answer what the service would (here an IOVA
 * range that overflows: -ERANGE from both), and a call that fails locally
 * replaces the text of an earlier service error.
 */
Test(session, local_errors_agree_with_the_service_and_reset_last_error)
{
	const uint64_t G = 2 * MiB;
	struct dmasvc_region_add raw = { .mem_id = 1, .size = 2 * G, .iova = UINT64_MAX - G + 1,
					 .granule = G };
	struct dmasvc_region_desc over = { .size = 2 * G, .iova = UINT64_MAX - G + 1, .granule = G };
	struct dmasvc_region_desc dup = { .size = G, .iova = 0, .granule = G };
	struct fixture f;
	uint32_t rep[4];
	int sock;

	sock = it_raw_connect(svc.sock);
	cr_assert_geq(sock, 0);
	cr_assert_eq(it_raw_hello(sock), 0);
	cr_expect_eq(it_raw_call(sock, DMASVC_CMD_REGION_ADD, &raw, sizeof(raw), NULL, 0, rep,
				 sizeof(rep), NULL, NULL), ERANGE, "the service: ERANGE (replies carry positive errno)");
	close(sock);

	fx_open(&f, 16 * MiB, G, 0);
	dup.mem_id = over.mem_id = (uint32_t)f.mem;
	cr_assert_eq(dmasvc_region_add(f.c, &dup), -EEXIST);
	cr_assert_neq(dmasvc_last_service_error(f.c)[0], '\0', "the service explained the overlap");
	cr_expect_eq(dmasvc_region_add(f.c, &over), -ERANGE, "the library: -ERANGE too");
	cr_expect(strstr(dmasvc_last_error(f.c), "overflows"), "last error names the local failure: %s",
		  dmasvc_last_error(f.c));
	cr_expect_eq(dmasvc_last_service_error(f.c)[0], '\0', "no stale service text: %s",
		     dmasvc_last_service_error(f.c));
	fx_close(&f);
}

Test(session, service_refuses_unsealed_memfd_and_overlap)
{
	struct dmasvc_client *c;
	struct dmasvc_region_desc d = { .size = 4 * MiB, .iova = 0, .granule = 2 * MiB };
	int unsealed = it_memfd(4 * MiB, false), sealed = it_memfd(4 * MiB, true), mem;

	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	cr_assert_lt(dmasvc_memory_add(c, unsealed, 4 * MiB, 0), 0, "unsealed memfd refused");
	cr_assert_neq(dmasvc_last_error(c)[0], '\0', "with a message");
	cr_assert_lt(dmasvc_memory_add(c, sealed, 8 * MiB, 0), 0, "memfd smaller than size refused");
	mem = dmasvc_memory_add(c, sealed, 4 * MiB, 0);
	cr_assert_geq(mem, 0);
	d.mem_id = (uint32_t)mem;
	cr_assert_geq(dmasvc_region_add(c, &d), 0);
	cr_assert_eq(dmasvc_region_add(c, &d), -EEXIST, "overlapping IOVA range: %s",
		     dmasvc_last_error(c));
	dmasvc_disconnect(c);
	close(unsealed);
	close(sealed);
}

Test(session, async_4k_events_coalesce_and_match)
{
	struct fixture f;
	struct dmasvc_queue *q;
	struct dmasvc_completion cq[64];
	const uint64_t P = 4096, N = 4096; /* 16 MiB of 4 KiB pages */
	uint64_t posted = 0, done = 0;
	unsigned seed = 7;

	fx_open(&f, N * P, P, 1ull << 36);
	cr_assert_eq(dmasvc_queue_open(f.c, 128, &q), 0);
	/* Runs of contiguous pages flipped one page per event, as guest_memfd does. */
	for (int run = 0; run < 200; run++) {
		uint64_t first = (uint64_t)rand_r(&seed) % N, len = 1 + (uint64_t)rand_r(&seed) % 64;
		bool pop = rand_r(&seed) % 3 != 0;

		for (uint64_t p = first; p < first + len && p < N; p++) {
			int err;

			while ((err = pop ? dmasvc_submit_populate(q, (uint32_t)f.region, p * P, P, posted)
					  : dmasvc_submit_discard(q, (uint32_t)f.region, p * P, P, posted)) == -EAGAIN) {
				int n = dmasvc_reap(q, cq, 64, 2000);

				cr_assert_gt(n, 0, "reap while full: %d", n);
				for (int i = 0; i < n; i++)
					cr_assert_eq(cq[i].res, 0);
				done += (uint64_t)n;
			}
			cr_assert_eq(err, 0);
			posted++;
		}
	}
	while (done < posted) {
		int n = dmasvc_reap(q, cq, 64, 2000);

		cr_assert_gt(n, 0, "completion arrives (%lu of %lu)", (unsigned long)done,
			     (unsigned long)posted);
		for (int i = 0; i < n; i++)
			cr_assert_eq(cq[i].res, 0);
		done += (uint64_t)n;
	}
	cr_assert_eq(dmasvc_reap(q, cq, 64, 0), 0, "no extra completions");
	check(&f);
	cr_assert_eq(it_wait_vmlck(svc.pid,
				   base_vmlck + dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), 3000),
		     base_vmlck + dmasvc_region_populated_bytes(f.c, (uint32_t)f.region));
	dmasvc_queue_close(q);
	fx_close(&f);
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck, 2000), base_vmlck, "disconnect unpins all");
}

/* ---- several sessions at once, one thread each, private queues ---- */

struct worker {
	int idx;
	int failures;
	char why[256];
};

static void *session_worker(void *arg)
{
	struct worker *w = arg;
	struct dmasvc_client *c = NULL;
	struct dmasvc_region_desc d = { .size = 32 * MiB, .granule = 64 * 1024 };
	struct dmasvc_queue *q = NULL;
	unsigned seed = (unsigned)w->idx * 31u + 1;
	int fd = it_memfd(d.size, true), mem, region;

	d.iova = (uint64_t)(w->idx + 1) << 34;
	if (fd < 0 || dmasvc_connect(svc.sock, NULL, &c) || (mem = dmasvc_memory_add(c, fd, d.size, 0)) < 0)
		goto fail;
	d.mem_id = (uint32_t)mem;
	region = dmasvc_region_add(c, &d);
	if (region < 0 || dmasvc_queue_open(c, 64, &q))
		goto fail;
	for (int i = 0; i < 300; i++) {
		uint64_t g = (uint64_t)rand_r(&seed) % 512, n = 1 + (uint64_t)rand_r(&seed) % 16;
		struct dmasvc_completion cqe;
		int err;

		if (g + n > 512)
			n = 512 - g;
		if (i % 3 == 0) {
			/* blocking, on the shared default queue */
			err = rand_r(&seed) % 2 ? dmasvc_populate(c, (uint32_t)region, g * d.granule, n * d.granule)
						: dmasvc_discard(c, (uint32_t)region, g * d.granule, n * d.granule);
		} else {
			err = rand_r(&seed) % 2 ? dmasvc_submit_populate(q, (uint32_t)region, g * d.granule, n * d.granule, (uint64_t)i)
						: dmasvc_submit_discard(q, (uint32_t)region, g * d.granule, n * d.granule, (uint64_t)i);
			if (!err)
				err = dmasvc_reap(q, &cqe, 1, 5000) == 1 ? cqe.res : -ETIMEDOUT;
		}
		if (err) {
			snprintf(w->why, sizeof(w->why), "event %d: %s", i, strerror(-err));
			goto fail;
		}
	}
	if (it_check_region(c, (uint32_t)region, d.iova, w->why, sizeof(w->why)))
		goto fail;
	dmasvc_queue_close(q);
	dmasvc_disconnect(c);
	close(fd);
	return NULL;
fail:
	w->failures++;
	if (!w->why[0])
		snprintf(w->why, sizeof(w->why), "setup failed (%s)", c ? dmasvc_last_error(c) : "connect");
	dmasvc_queue_close(q);
	dmasvc_disconnect(c);
	if (fd >= 0)
		close(fd);
	return NULL;
}

Test(session, concurrent_sessions_stay_consistent)
{
	enum { NW = 4 };
	pthread_t t[NW];
	struct worker w[NW];

	for (int i = 0; i < NW; i++) {
		w[i] = (struct worker){ .idx = i };
		cr_assert_eq(pthread_create(&t[i], NULL, session_worker, &w[i]), 0);
	}
	for (int i = 0; i < NW; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < NW; i++)
		cr_expect_eq(w[i].failures, 0, "session %d: %s", i, w[i].why);
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck, 2000), base_vmlck, "all pins released");
	cr_assert_eq(it_count_all_regions(svc.sock), 0, "no region left behind");
}

Test(session, mapping_budget_refuses_region_with_suggestion)
{
	const char *extra[] = { "--max-mappings", "64", NULL };
	struct dmasvc_client *c;
	struct dmasvc_region_desc d = { .size = 64 * MiB, .granule = 4096 };
	int fd = it_memfd(64 * MiB, true), mem;

	/* Restart with a small budget (the fixture's instance is replaced). */
	cr_assert_eq(it_svc_stop(&svc), 0);
	cr_assert_eq(it_svc_start(&svc, extra), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	mem = dmasvc_memory_add(c, fd, 64 * MiB, 0);
	cr_assert_geq(mem, 0);
	d.mem_id = (uint32_t)mem;
	cr_assert_eq(dmasvc_region_add(c, &d), -ENOSPC, "16384 areas > budget 64");
	cr_assert_neq(strstr(dmasvc_last_error(c), "granule"), NULL, "message suggests a granule: '%s'",
		      dmasvc_last_error(c));
	d.granule = 1 * MiB;
	cr_assert_geq(dmasvc_region_add(c, &d), 0, "64 areas fit: %s", dmasvc_last_error(c));
	dmasvc_disconnect(c);
	close(fd);
}

/* ---- several producer threads on one client ---- */

struct producer {
	struct fixture *f;
	int idx;
	bool private_queue;
	int err;
};

/* Thread idx owns granules [idx * 16, idx * 16 + 16) of the region. */
static void *producer_thread(void *arg)
{
	struct producer *p = arg;
	struct fixture *f = p->f;
	struct dmasvc_queue *q = NULL;
	unsigned seed = (unsigned)p->idx + 100;

	if (p->private_queue && (p->err = dmasvc_queue_open(f->c, 32, &q)))
		return NULL;
	for (int i = 0; i < 200 && !p->err; i++) {
		uint64_t g = (uint64_t)p->idx * 16 + (uint64_t)rand_r(&seed) % 16;
		bool pop = rand_r(&seed) % 2;
		struct dmasvc_completion cqe;

		if (!q) {
			p->err = pop ? dmasvc_populate(f->c, (uint32_t)f->region, g * f->granule, f->granule)
				     : dmasvc_discard(f->c, (uint32_t)f->region, g * f->granule, f->granule);
			continue;
		}
		p->err = pop ? dmasvc_submit_populate(q, (uint32_t)f->region, g * f->granule, f->granule, (uint64_t)i)
			     : dmasvc_submit_discard(q, (uint32_t)f->region, g * f->granule, f->granule, (uint64_t)i);
		if (!p->err)
			p->err = dmasvc_reap(q, &cqe, 1, 5000) == 1 ? cqe.res : -ETIMEDOUT;
		if (!p->err && cqe.user_data != (uint64_t)i)
			p->err = -EBADMSG;
	}
	dmasvc_queue_close(q);
	return NULL;
}

Test(session, producer_threads_share_one_client)
{
	enum { NT = 6 };
	struct fixture f;
	struct producer p[NT];
	pthread_t t[NT];

	fx_open(&f, NT * 16 * 64 * 1024, 64 * 1024, 1ull << 38);
	/* Threads 0-3 serialise on the default queue, 4-5 have their own SQ. */
	for (int i = 0; i < NT; i++) {
		p[i] = (struct producer){ .f = &f, .idx = i, .private_queue = i >= 4 };
		cr_assert_eq(pthread_create(&t[i], NULL, producer_thread, &p[i]), 0);
	}
	for (int i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < NT; i++)
		cr_expect_eq(p[i].err, 0, "thread %d: %s", i, strerror(-p[i].err));
	check(&f);
	fx_close(&f);
}

/* ---- the VMM's own poll loop on dmasvc_queue_fd() ---- */

Test(session, queue_fd_in_a_poll_loop)
{
	struct fixture f;
	struct dmasvc_queue *q;
	struct dmasvc_completion cq[16];
	const uint64_t G = 64 * 1024;
	int done = 0, wakeups = 0;

	fx_open(&f, 16 * G, G, 1ull << 39);
	cr_assert_eq(dmasvc_queue_open(f.c, 16, &q), 0);
	for (int i = 0; i < 16; i++)
		cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)f.region, (uint64_t)i * G, G, (uint64_t)i), 0);
	while (done < 16) {
		struct pollfd pfd = { .fd = dmasvc_queue_fd(q), .events = POLLIN };
		int armed = dmasvc_queue_arm(q), n;

		cr_assert_geq(armed, 0);
		if (armed == 0) {
			cr_assert_eq(poll(&pfd, 1, 5000), 1, "the armed eventfd fires");
			wakeups++;
		}
		n = dmasvc_reap(q, cq, 16, 0);
		cr_assert_geq(n, 0);
		for (int i = 0; i < n; i++)
			cr_assert_eq(cq[i].res, 0);
		done += n;
	}
	cr_log_info("16 completions, %d eventfd wake-ups", wakeups);
	cr_assert_eq(dmasvc_reap(q, cq, 16, 0), 0);
	check(&f);
	dmasvc_queue_close(q);
	fx_close(&f);
}

/* ---- a query-only connection (dmasvcctl's) and service-wide paged queries ---- */

struct collected {
	unsigned char *buf;
	size_t size, n, cap;
	size_t stop_after; /* fn returns 42 after this many records (0: never) */
};

static int collect(void *arg, const void *rec)
{
	struct collected *k = arg;

	if (k->n == k->cap)
		return -ENOSPC;
	memcpy(k->buf + k->n * k->size, rec, k->size);
	k->n++;
	return k->stop_after && k->n == k->stop_after ? 42 : 0;
}

static void collect_init(struct collected *k, size_t size, size_t cap)
{
	*k = (struct collected){ .buf = calloc(cap, size), .size = size, .cap = cap };
	cr_assert_not_null(k->buf);
}

Test(session, query_only_connection_and_paged_service_wide_queries)
{
	enum { NREG = 80, NEXT = 400 };  /* > 1 page of REGIONS, > 2 pages of AUDIT extents */
	const uint64_t P = 4096, small = 64 * 1024;
	struct fixture f;
	struct dmasvc_client *q;
	struct dmasvc_queue *qq = NULL;
	struct dmasvc_region_desc d = { .size = small, .granule = P };
	struct dmasvc_stat_session *ss;
	struct dmasvc_stat_region *rg;
	struct dmasvc_audit_extent *ext, local[NEXT + 1];
	struct collected k;
	uint32_t fsid, qsid, svc_region = UINT32_MAX;
	int fd2, mem2;

	/* A VMM session: one region with NEXT separate populated pages, NREG more. */
	fx_open(&f, 2 * NEXT * P, P, 1ull << 40);
	for (uint64_t i = 0; i < NEXT; i++)
		cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 2 * i * P, P), 0);
	fd2 = it_memfd(NREG * small, true);
	mem2 = dmasvc_memory_add(f.c, fd2, NREG * small, 0);
	cr_assert_geq(mem2, 0, "%s", dmasvc_last_error(f.c));
	d.mem_id = (uint32_t)mem2;
	for (int i = 0; i < NREG; i++) {
		d.mem_offset = (uint64_t)i * small;
		d.iova = (1ull << 41) + (uint64_t)i * small;
		cr_assert_geq(dmasvc_region_add(f.c, &d), 0, "%s", dmasvc_last_error(f.c));
	}
	fsid = dmasvc_session_id(f.c);

	cr_assert_eq(dmasvc_connect_query_only(svc.sock, NULL, &q), 0);
	qsid = dmasvc_session_id(q);
	cr_assert(qsid != 0 && qsid != fsid);

	/* Nothing that would give the session resources, and nothing sent. */
	cr_expect_null(dmasvc_default_queue(q));
	cr_expect_eq(dmasvc_memory_add(q, fd2, NREG * small, 0), -EOPNOTSUPP);
	cr_expect_eq(dmasvc_region_add(q, &d), -EOPNOTSUPP);
	cr_expect_eq(dmasvc_populate(q, 0, 0, P), -EOPNOTSUPP);
	cr_expect_eq(dmasvc_discard(q, 0, 0, P), -EOPNOTSUPP);
	cr_expect_eq(dmasvc_queue_open(q, 8, &qq), -EOPNOTSUPP);
	cr_expect_null(qq);
	cr_expect_eq(dmasvc_device_attach(q, fd2), -EOPNOTSUPP);
	cr_expect_eq(dmasvc_reconnect(q), -EOPNOTSUPP);

	/* SESSIONS: the query-only session holds no ring and no region. */
	collect_init(&k, sizeof(*ss), 16);
	cr_assert_eq(dmasvc_query_each(q, DMASVC_QUERY_SESSIONS, DMASVC_QUERY_F_ALL_SESSIONS, 0, 0,
				       k.size, collect, &k), 0, "%s", dmasvc_last_service_error(q));
	cr_assert_eq(k.n, 2);
	ss = (struct dmasvc_stat_session *)k.buf;
	for (size_t i = 0; i < k.n; i++) {
		if (ss[i].session_id == qsid) {
			cr_expect_eq(ss[i].rings, 0, "query-only: no ring");
			cr_expect_eq(ss[i].regions, 0);
		} else {
			cr_expect_eq(ss[i].session_id, fsid);
			cr_expect_eq(ss[i].rings, 1);
			cr_expect_eq(ss[i].regions, NREG + 1);
		}
	}
	free(k.buf);

	/* REGIONS over two pages, with the service's ids. */
	collect_init(&k, sizeof(*rg), 4 * NREG);
	cr_assert_eq(dmasvc_query_each(q, DMASVC_QUERY_REGIONS, DMASVC_QUERY_F_ALL_SESSIONS, 0, 0,
				       k.size, collect, &k), 0);
	cr_assert_eq(k.n, NREG + 1, "every region, past the first page");
	rg = (struct dmasvc_stat_region *)k.buf;
	for (size_t i = 0; i < k.n; i++) {
		cr_expect_eq(rg[i].session_id, fsid);
		for (size_t j = 0; j < i; j++)
			cr_expect_neq(rg[i].region_id, rg[j].region_id, "each region once");
		if (rg[i].iova == f.iova) {
			svc_region = rg[i].region_id;
			cr_expect_eq(rg[i].populated_bytes, NEXT * P);
		}
	}
	cr_assert_neq(svc_region, UINT32_MAX);
	free(k.buf);

	/* AUDIT of the other session's region by its service ids, over three pages. */
	collect_init(&k, sizeof(*ext), 2 * NEXT);
	cr_assert_eq(dmasvc_query_each(q, DMASVC_QUERY_AUDIT, DMASVC_QUERY_F_ALL_SESSIONS, svc_region,
				       fsid, k.size, collect, &k), 0, "%s", dmasvc_last_service_error(q));
	cr_assert_eq(k.n, NEXT);
	ext = (struct dmasvc_audit_extent *)k.buf;
	for (size_t i = 0; i < k.n; i++) {
		cr_expect_eq(ext[i].state, DMASVC_AUDIT_OK);
		cr_expect_eq(ext[i].iova, f.iova + 2 * i * P);
		cr_expect_eq(ext[i].length, P);
	}
	/* The same through the owner's local id, and through dmasvc_query(). */
	k.n = 0;
	cr_assert_eq(dmasvc_query_each(f.c, DMASVC_QUERY_AUDIT, 0, (uint32_t)f.region, 0, k.size,
				       collect, &k), 0);
	cr_expect_eq(k.n, NEXT);
	cr_expect_eq(dmasvc_query(f.c, DMASVC_QUERY_AUDIT, 0, (uint32_t)f.region, local,
				  sizeof(local[0]), NEXT + 1), NEXT);
	cr_expect_eq(memcmp(local, k.buf, NEXT * sizeof(local[0])), 0);
	cr_expect_eq(dmasvc_query(f.c, DMASVC_QUERY_AUDIT, 0, (uint32_t)f.region, local,
				  sizeof(local[0]), 170), 170, "dmasvc_query stops at max");
	/* A non-zero return of fn stops the walk and is returned. */
	k.n = 0;
	k.stop_after = 3;
	cr_expect_eq(dmasvc_query_each(q, DMASVC_QUERY_AUDIT, DMASVC_QUERY_F_ALL_SESSIONS, svc_region,
				       fsid, k.size, collect, &k), 42);
	cr_expect_eq(k.n, 3);
	free(k.buf);

	/* Local argument checks. */
	collect_init(&k, sizeof(*ss), 16);
	cr_expect_eq(dmasvc_query_each(q, DMASVC_QUERY_SESSIONS, DMASVC_QUERY_F_ALL_SESSIONS, 0, fsid,
				       k.size, collect, &k), -EINVAL, "session id only for AUDIT");
	cr_expect_eq(dmasvc_query_each(q, DMASVC_QUERY_AUDIT, 0, svc_region, fsid, k.size, collect, &k),
		     -EINVAL, "session id only service-wide");
	cr_expect_eq(dmasvc_query_each(q, DMASVC_QUERY_SESSIONS, 0, 0, 0, 0, collect, &k), -EINVAL);
	cr_expect_eq(dmasvc_query_each(q, DMASVC_QUERY_SESSIONS, 0, 0, 0, DMASVC_MSG_MAX + 1, collect,
				       &k), -EINVAL);
	cr_expect_eq(dmasvc_query_each(q, DMASVC_QUERY_SESSIONS, 0, 0, 0, k.size, NULL, &k), -EINVAL);
	cr_expect_eq(dmasvc_query_each(q, DMASVC_QUERY_AUDIT, 0, 0, 0, k.size, collect, &k), -ENOENT,
		     "no local region 0 on a query-only client");

	/* The service's reason, and only for the request that failed. */
	cr_expect_eq(dmasvc_query_each(q, DMASVC_QUERY_AUDIT, DMASVC_QUERY_F_ALL_SESSIONS, svc_region,
				       0x7ffffff0, k.size, collect, &k), -ENOENT);
	cr_expect_neq(strstr(dmasvc_last_service_error(q), "no session"), NULL, "'%s'",
		      dmasvc_last_service_error(q));
	k.n = 0;
	cr_expect_eq(dmasvc_query_each(q, DMASVC_QUERY_SESSIONS, DMASVC_QUERY_F_ALL_SESSIONS, 0, 0,
				       k.size, collect, &k), 0);
	cr_expect_str_empty(dmasvc_last_service_error(q), "cleared by the next request");
	cr_expect_str_empty(dmasvc_last_service_error(NULL));
	free(k.buf);

	dmasvc_disconnect(q);
	cr_expect_eq(it_count_sessions(svc.sock), 1, "the query-only session is gone");
	cr_expect_eq(dmasvc_region_populated_bytes(f.c, (uint32_t)f.region), (int64_t)(NEXT * P));
	check(&f);
	fx_close(&f);
	close(fd2);
}

/* A socket fd connected by someone else (a VMM's manager) serves a whole session. */
Test(session, connect_fd_takes_a_connected_socket_and_refuses_anything_else)
{
	struct dmasvc_region_desc d = { .size = 8 * MiB, .iova = 1ull << 33, .granule = 2 * MiB };
	struct dmasvc_client *c = NULL;
	int sv[2], fd, mem, region, file;

	fd = it_raw_connect(svc.sock);
	cr_assert_geq(fd, 0);
	cr_assert_eq(dmasvc_connect_fd(fd, NULL, &c), 0, "%s", c ? dmasvc_last_error(c) : "");
	cr_expect(fcntl(fd, F_GETFL) & O_NONBLOCK, "made non-blocking");
	cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC, "made close-on-exec");
	file = it_memfd(d.size, true);
	mem = dmasvc_memory_add(c, file, d.size, 0);
	cr_assert_geq(mem, 0, "memory_add: %s", dmasvc_last_error(c));
	d.mem_id = (uint32_t)mem;
	region = dmasvc_region_add(c, &d);
	cr_assert_geq(region, 0, "region_add: %s", dmasvc_last_error(c));
	cr_assert_eq(dmasvc_populate(c, (uint32_t)region, 0, 4 * MiB), 0);
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck + (int64_t)(4 * MiB), 3000),
		     base_vmlck + (int64_t)(4 * MiB), "the service pinned what the fd's session populated");
	cr_expect_eq(dmasvc_reconnect(c), -ENOTCONN, "no path to connect again");
	cr_expect(strstr(dmasvc_last_error(c), "socket fd"), "%s", dmasvc_last_error(c));
	dmasvc_disconnect(c);
	cr_assert_eq(it_wait_vmlck(svc.pid, base_vmlck, 3000), base_vmlck, "disconnect unpins");
	close(file);

	/* Not a seqpacket socket, not a socket, not connected: refused and consumed. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_expect_eq(dmasvc_connect_fd(sv[0], NULL, &c), -EPROTOTYPE);
	cr_expect(fcntl(sv[0], F_GETFD) < 0 && errno == EBADF, "a refused fd is closed");
	close(sv[1]);
	file = it_memfd(4096, true);
	cr_expect_eq(dmasvc_connect_fd(file, NULL, &c), -ENOTSOCK);
	cr_expect(fcntl(file, F_GETFD) < 0 && errno == EBADF, "a refused fd is closed");
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	cr_assert_geq(fd, 0);
	cr_expect_eq(dmasvc_connect_fd(fd, NULL, &c), -ENOTCONN);
	cr_expect_eq(dmasvc_connect_fd(-1, NULL, &c), -EBADF);
}

/*
 * The model's fallback pin (mlock, where io_uring is not available), forced
 * by the test hook: the same populate and discard show in VmLck instead of
 * VmPin, and all of it is released.
 */
Test(session, mlock_fallback_pins_in_vmlck)
{
	struct it_svc s2 = { 0 };
	struct fixture f;
	int64_t pin0, lck0;

	setenv("DMASVC_TEST_SOFT_PIN", "mlock", 1);
	cr_assert_eq(it_svc_start(&s2, NULL), 0);
	unsetenv("DMASVC_TEST_SOFT_PIN");
	pin0 = it_proc_status_bytes(s2.pid, "VmPin");
	lck0 = it_proc_status_bytes(s2.pid, "VmLck");
	fx_open_at(&f, s2.sock, 16 * MiB, 2 * MiB, 1ull << 32);
	cr_assert_eq(dmasvc_populate(f.c, (uint32_t)f.region, 0, 8 * MiB), 0);
	cr_assert_eq(it_proc_status_bytes(s2.pid, "VmLck") - lck0, (int64_t)(8 * MiB));
	cr_assert_eq(it_proc_status_bytes(s2.pid, "VmPin"), pin0);
	cr_assert_eq(dmasvc_discard(f.c, (uint32_t)f.region, 0, 8 * MiB), 0);
	cr_assert_eq(it_wait_vmlck(s2.pid, pin0 + lck0, 3000), pin0 + lck0);
	fx_close(&f);
	cr_assert_eq(it_svc_finish(&s2), 0);
}
