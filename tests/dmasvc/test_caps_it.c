/* SPDX-License-Identifier: MIT */
/*
 * test_caps_it.c - per-session caps (issue 13, "Bounded cost per session").
 *
 * Against the real daemon on the software model: each cap (registered
 * bytes, populated bytes, areas, regions, in-flight SQ entries) refuses one
 * past it with its errno and a text naming the cap, the option it comes
 * from and the numbers (requested, in use, cap), as dmasvc_last_error()
 * shows it; after each refusal nothing changed: the session's record
 * (QUERY SESSIONS: regions, rings, areas, reserved areas), its regions'
 * state against the backend (QUERY REGIONS + AUDIT against the client's
 * bitmap), the service's VmLck (the model pins with mlock) and its open
 * fds.  A populate over the populated-bytes cap completes with -EDQUOT and
 * maps nothing (libdmasvc's blocking populate puts the cap, the numbers and
 * the range into dmasvc_last_error()); re-populating what is populated
 * stays free at the cap.
 * --uid-caps raises one cap and lowers another for the test's own uid
 * while a client forked as uid 65534 gets the defaults; and one session at
 * its caps does not stop another from working.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)
#define IOVA0 (1ull << 40)

static struct it_svc svc;

static void stop(void)
{
	it_suite_stop(&svc);
}

TestSuite(caps, .fini = stop, .timeout = 120);

/* What a refusal must leave as it was. */
struct snap {
	struct dmasvc_stat_session ss;
	uint64_t populated;  /* sum of the session's regions' populated bytes */
	int64_t vmlck;
	int fds;
};

static void snap_take(struct dmasvc_client *c, struct snap *s)
{
	struct dmasvc_stat_region r[16];
	int n;

	memset(s, 0, sizeof(*s));
	cr_assert_eq(dmasvc_query(c, DMASVC_QUERY_SESSIONS, 0, 0, &s->ss, sizeof(s->ss), 1), 1,
		     "own SESSIONS record: %s", dmasvc_last_error(c));
	n = dmasvc_query(c, DMASVC_QUERY_REGIONS, 0, 0, r, sizeof(r[0]), 16);
	cr_assert_geq(n, 0, "REGIONS: %s", dmasvc_last_error(c));
	for (int i = 0; i < n; i++)
		s->populated += r[i].populated_bytes;
	s->vmlck = it_vmlck(svc.pid);
	s->fds = it_count_fds(svc.pid);
}

/* Nothing of @c's session (nor the service's pins and fds) changed since @a. */
static void snap_same(struct dmasvc_client *c, const struct snap *a, const char *after)
{
	struct snap b;

	snap_take(c, &b);
	cr_assert_eq(b.ss.regions, a->ss.regions, "%s: regions %u -> %u", after, a->ss.regions,
		     b.ss.regions);
	cr_assert_eq(b.ss.rings, a->ss.rings, "%s: rings %u -> %u", after, a->ss.rings, b.ss.rings);
	cr_assert_eq(b.ss.areas, a->ss.areas, "%s: areas %llu -> %llu", after,
		     (unsigned long long)a->ss.areas, (unsigned long long)b.ss.areas);
	cr_assert_eq(b.ss.reserved_areas, a->ss.reserved_areas, "%s: reserved areas changed", after);
	cr_assert_eq(b.populated, a->populated, "%s: populated %llu -> %llu", after,
		     (unsigned long long)a->populated, (unsigned long long)b.populated);
	cr_assert_eq(b.vmlck, a->vmlck, "%s: the service's VmLck %lld -> %lld", after,
		     (long long)a->vmlck, (long long)b.vmlck);
	cr_assert_eq(b.fds, a->fds, "%s: the service's fds %d -> %d", after, a->fds, b.fds);
}

/* The service's state of @region equals @c's bitmap (REGIONS + AUDIT). */
static void region_ok(struct dmasvc_client *c, int region, uint64_t iova)
{
	char why[256];

	cr_assert_eq(it_check_region(c, (uint32_t)region, iova, why, sizeof(why)), 0, "%s", why);
}

/* The last error of @c contains @want. */
static void says(struct dmasvc_client *c, const char *want)
{
	cr_assert(strstr(dmasvc_last_error(c), want), "the refusal names the cap and the numbers:\n"
		  "  got:  %s\n  want: ...%s...", dmasvc_last_error(c), want);
}

static void up(const char *const *extra)
{
	cr_assert_eq(it_svc_start(&svc, extra), 0, "dmasvc starts");
}

static struct dmasvc_client *client(void)
{
	struct dmasvc_client *c;

	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	return c;
}

/* A sealed memfd of @size registered with @c; its fd in *@fd. */
static int mem(struct dmasvc_client *c, uint64_t size, int *fd)
{
	int m;

	*fd = it_memfd(size, true);
	cr_assert_geq(*fd, 0);
	m = dmasvc_memory_add(c, *fd, size, 0);
	cr_assert_geq(m, 0, "memory_add: %s", dmasvc_last_error(c));
	return m;
}

static int region_try(struct dmasvc_client *c, int m, uint64_t off, uint64_t size, uint64_t iova,
		      uint64_t granule)
{
	struct dmasvc_region_desc d = {
		.mem_id = (uint32_t)m, .mem_offset = off, .size = size, .iova = iova, .granule = granule,
	};

	return dmasvc_region_add(c, &d);
}

static int region(struct dmasvc_client *c, int m, uint64_t off, uint64_t size, uint64_t iova,
		  uint64_t granule)
{
	int r = region_try(c, m, off, size, iova, granule);

	cr_assert_geq(r, 0, "region_add: %s", dmasvc_last_error(c));
	return r;
}

Test(caps, registered_bytes)
{
	static const char *const extra[] = { "--max-registered-gib", "1", NULL };
	struct dmasvc_client *a, *b;
	int fd768, fd512, m, fdb;
	struct snap s;

	up(extra);
	a = client();
	b = client();
	m = mem(a, 768 * MiB, &fd768);
	fd512 = it_memfd(512 * MiB, true);
	snap_take(a, &s);
	cr_assert_eq(dmasvc_memory_add(a, fd512, 512 * MiB, 0), -EDQUOT);
	says(a, "cap max-registered-gib (--max-registered-gib) exceeded: requested 536870912 bytes,"
		" in use 805306368, cap 1073741824");
	snap_same(a, &s, "a refused MEMORY_ADD");
	mem(b, 512 * MiB, &fdb); /* per session */
	cr_assert_eq(dmasvc_memory_remove(a, (uint32_t)m), 0);
	cr_assert_geq(dmasvc_memory_add(a, fd512, 512 * MiB, 0), 0, "room again: %s",
		      dmasvc_last_error(a));
	dmasvc_disconnect(a);
	dmasvc_disconnect(b);
	close(fd768);
	close(fd512);
	close(fdb);
}

Test(caps, regions)
{
	static const char *const extra[] = { "--max-regions", "4", NULL };
	struct dmasvc_client *a, *b;
	int fd, fdb, m, mb, r = -1;
	struct snap s;

	up(extra);
	a = client();
	b = client();
	m = mem(a, 8 * MiB, &fd);
	for (int i = 0; i < 4; i++)
		r = region(a, m, (uint64_t)i * 2 * MiB, 2 * MiB, IOVA0 + (uint64_t)i * 2 * MiB, 2 * MiB);
	cr_assert_eq(dmasvc_populate(a, (uint32_t)r, 0, 2 * MiB), 0);
	snap_take(a, &s);
	cr_assert_eq(region_try(a, m, 0, 2 * MiB, IOVA0 + 64 * MiB, 2 * MiB), -EMFILE);
	says(a, "cap max-regions (--max-regions) exceeded: requested 1 regions, in use 4, cap 4");
	snap_same(a, &s, "a refused REGION_ADD");
	region_ok(a, r, IOVA0 + 6 * MiB);
	mb = mem(b, 8 * MiB, &fdb);
	for (int i = 0; i < 4; i++)
		region(b, mb, (uint64_t)i * 2 * MiB, 2 * MiB, IOVA0 + (uint64_t)i * 2 * MiB, 2 * MiB);
	cr_assert_eq(dmasvc_region_remove(a, (uint32_t)r), 0);
	region(a, m, 0, 2 * MiB, IOVA0 + 64 * MiB, 2 * MiB); /* room again */
	dmasvc_disconnect(a);
	dmasvc_disconnect(b);
	close(fd);
	close(fdb);
}

Test(caps, mappings)
{
	static const char *const extra[] = { "--max-mappings", "64", NULL };
	struct dmasvc_client *a;
	int fd, m, r;
	struct snap s;

	up(extra);
	a = client();
	m = mem(a, 256 * MiB, &fd);
	r = region(a, m, 0, 128 * MiB, IOVA0, 2 * MiB); /* 64 areas at worst: the whole budget */
	cr_assert_eq(dmasvc_populate(a, (uint32_t)r, 0, 4 * MiB), 0);
	snap_take(a, &s);
	cr_assert_eq(region_try(a, m, 128 * MiB, 2 * MiB, IOVA0 + 1024 * MiB, 2 * MiB), -ENOSPC);
	says(a, "cap max-mappings (--max-mappings) exceeded: requested 1 areas, in use 64, cap 64");
	says(a, "no granule fits");
	snap_same(a, &s, "a refused REGION_ADD (budget)");
	cr_assert_eq(dmasvc_region_remove(a, (uint32_t)r), 0);
	cr_assert_eq(region_try(a, m, 0, 256 * MiB, IOVA0, 2 * MiB), -ENOSPC);
	says(a, "requested 128 areas, in use 0, cap 64");
	says(a, "the smallest granule that fits is 4194304 bytes");
	dmasvc_disconnect(a);
	close(fd);
}

Test(caps, inflight)
{
	static const char *const extra[] = { "--max-inflight", "512", NULL };
	struct dmasvc_client *a;
	struct dmasvc_queue *q, *q2;
	struct snap s;

	up(extra);
	a = client(); /* its default queue: 256 entries */
	cr_assert_eq(dmasvc_queue_open(a, 256, &q), 0, "%s", dmasvc_last_error(a));
	snap_take(a, &s);
	cr_assert_eq(dmasvc_queue_open(a, 2, &q2), -ENOSPC);
	says(a, "cap max-inflight (--max-inflight) exceeded: requested 2 SQ entries, in use 512, cap 512");
	snap_same(a, &s, "a refused RING_SETUP");
	dmasvc_queue_close(q);
	dmasvc_disconnect(a);
}

/*
 * Populated bytes: 8 MiB.  Over it a populate completes with -EDQUOT and
 * maps nothing; at the cap, re-populating is free and a discard makes
 * room; queued events are judged in order (discard, then populate).
 */
Test(caps, populated_bytes)
{
	static const char *const extra[] = { "--max-populated-mib", "8", NULL };
	struct dmasvc_completion cq[3];
	struct dmasvc_client *a;
	struct dmasvc_queue *q;
	int fd, m, r, n = 0;
	struct snap s;

	up(extra);
	a = client();
	m = mem(a, 32 * MiB, &fd);
	r = region(a, m, 0, 32 * MiB, IOVA0, 2 * MiB);
	cr_assert_eq(dmasvc_populate(a, (uint32_t)r, 0, 8 * MiB), 0);
	snap_take(a, &s);
	cr_assert_eq(s.populated, 8 * MiB);
	cr_assert_eq(dmasvc_populate(a, (uint32_t)r, 8 * MiB, 2 * MiB), -EDQUOT);
	/* the CQE has no text: libdmasvc words it from the session's record */
	says(a, "populate of region 0 [0x800000, 0xa00000): the service refused it, cap max-populated-mib");
	says(a, "exceeded: requested up to 2097152 bytes, in use 8388608, cap 8388608");
	snap_same(a, &s, "a refused populate");
	cr_assert_eq(dmasvc_populate(a, (uint32_t)r, 6 * MiB, 4 * MiB), -EDQUOT,
		     "half of it is populated: 2 MiB more is still over");
	snap_same(a, &s, "a refused populate over a populated range");
	region_ok(a, r, IOVA0);
	cr_assert_eq(dmasvc_populate(a, (uint32_t)r, 0, 8 * MiB), 0, "populated already: free");
	/* One queue, no waiting: discard 2 MiB, populate 2 MiB (fits), 2 MiB more (does not). */
	cr_assert_eq(dmasvc_queue_open(a, 8, &q), 0);
	cr_assert_eq(dmasvc_submit_discard(q, (uint32_t)r, 0, 2 * MiB, 1), 0);
	cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)r, 10 * MiB, 2 * MiB, 2), 0);
	cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)r, 12 * MiB, 2 * MiB, 3), 0);
	while (n < 3) {
		int k = dmasvc_reap(q, cq + n, 3 - (unsigned)n, 5000);

		cr_assert_gt(k, 0, "completions: %d", k);
		n += k;
	}
	for (int i = 0; i < 3; i++) {
		int want = cq[i].user_data == 3 ? -EDQUOT : 0;

		cr_assert_eq(cq[i].res, want, "event %llu: %d, want %d", (unsigned long long)cq[i].user_data,
			     cq[i].res, want);
	}
	snap_take(a, &s);
	cr_assert_eq(s.populated, 8 * MiB, "populated stays at the cap");
	region_ok(a, r, IOVA0);
	dmasvc_queue_close(q);
	dmasvc_disconnect(a);
	close(fd);
}

/*
 * A child as uid 65534 (a real other user: the socket is 0666, the
 * directory searchable): regions and populated bytes at the defaults of
 * this service.  Exits 0 when every check holds, else the failing step.
 */
static int other_uid_client(void)
{
	struct dmasvc_client *c;
	int fd, m, r[3];

	if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
		return 10;
	if (dmasvc_connect(svc.sock, NULL, &c))
		return 11;
	fd = it_memfd(16 * MiB, true);
	m = dmasvc_memory_add(c, fd, 16 * MiB, 0);
	if (m < 0)
		return 12;
	for (int i = 0; i < 2; i++) {
		struct dmasvc_region_desc d = { .mem_id = (uint32_t)m, .mem_offset = (uint64_t)i * 8 * MiB,
						.size = 8 * MiB, .iova = IOVA0 + (uint64_t)i * 8 * MiB,
						.granule = 2 * MiB };

		r[i] = dmasvc_region_add(c, &d);
		if (r[i] < 0)
			return 13 + i;
	}
	struct dmasvc_region_desc d3 = { .mem_id = (uint32_t)m, .size = 2 * MiB, .iova = 1ull << 41,
					 .granule = 2 * MiB };
	if (dmasvc_region_add(c, &d3) != -EMFILE ||
	    !strstr(dmasvc_last_error(c), "cap max-regions (--max-regions) exceeded: requested 1 regions,"
					  " in use 2, cap 2"))
		return 20;
	if (dmasvc_populate(c, (uint32_t)r[0], 0, 4 * MiB))
		return 21;
	if (dmasvc_populate(c, (uint32_t)r[1], 0, 2 * MiB) != -EDQUOT)
		return 22;
	dmasvc_disconnect(c);
	close(fd);
	return 0;
}

/*
 * Defaults: 2 regions, 4 MiB populated.  --uid-caps for the test's own uid
 * raises regions to 3 and lowers populated bytes to 2 MiB; the refusals
 * say so.  A client as uid 65534 gets the defaults.
 */
Test(caps, uid_caps_raise_and_lower)
{
	char uidcaps[64], me[16];
	const char *extra[] = { "--max-regions", "2", "--max-populated-mib", "4", "--socket-mode", "0666",
				"--allow-uid", me, "--allow-uid", "65534", "--uid-caps", uidcaps, NULL };
	struct dmasvc_client *a;
	int fd, m, r = -1, status;
	struct snap s;
	pid_t pid;

	snprintf(me, sizeof(me), "%u", (unsigned)getuid());
	snprintf(uidcaps, sizeof(uidcaps), "%u:max-regions=3,max-populated-mib=2", (unsigned)getuid());
	up(extra);
	a = client();
	m = mem(a, 16 * MiB, &fd);
	for (int i = 0; i < 3; i++)
		r = region(a, m, (uint64_t)i * 4 * MiB, 4 * MiB, IOVA0 + (uint64_t)i * 4 * MiB, 2 * MiB);
	snap_take(a, &s);
	cr_assert_eq(region_try(a, m, 12 * MiB, 4 * MiB, IOVA0 + 12 * MiB, 2 * MiB), -EMFILE);
	char want[160];

	snprintf(want, sizeof(want), "cap max-regions (--uid-caps for uid %u) exceeded: requested 1 regions,"
		 " in use 3, cap 3", (unsigned)getuid());
	says(a, want);
	snap_same(a, &s, "a refused REGION_ADD");
	cr_assert_eq(dmasvc_populate(a, (uint32_t)r, 0, 2 * MiB), 0);
	snap_take(a, &s);
	cr_assert_eq(dmasvc_populate(a, (uint32_t)r, 2 * MiB, 2 * MiB), -EDQUOT, "lowered to 2 MiB");
	snap_same(a, &s, "a refused populate");
	region_ok(a, r, IOVA0 + 8 * MiB);

	if (geteuid() != 0) { /* setuid needs root; the own-uid half above still ran */
		dmasvc_disconnect(a);
		close(fd);
		cr_skip_test("not root: no client as uid 65534");
	}
	cr_assert_eq(chmod(svc.dir, 0711), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(other_uid_client());
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "uid 65534 gets the defaults (failed step %d)", WEXITSTATUS(status));
	dmasvc_disconnect(a);
	close(fd);
}

/*
 * Session A sits at its populated, regions and in-flight caps and keeps
 * asking for more; session B (same uid, same caps) registers, populates
 * and discards as usual, and its state is right.
 */
Test(caps, a_session_at_its_caps_leaves_others_working)
{
	static const char *const extra[] = { "--max-populated-mib", "16", "--max-regions", "2",
					     "--max-inflight", "256", NULL };
	struct dmasvc_client *a, *b;
	struct dmasvc_queue *q;
	int fda, fdb, ma, mb, ra, rb;

	up(extra);
	a = client();
	b = client();
	ma = mem(a, 64 * MiB, &fda);
	ra = region(a, ma, 0, 32 * MiB, IOVA0, 2 * MiB);
	region(a, ma, 32 * MiB, 32 * MiB, IOVA0 + 32 * MiB, 2 * MiB);
	cr_assert_eq(dmasvc_populate(a, (uint32_t)ra, 0, 16 * MiB), 0);
	mb = mem(b, 32 * MiB, &fdb);
	rb = region(b, mb, 0, 32 * MiB, IOVA0, 2 * MiB);
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(dmasvc_populate(a, (uint32_t)ra, 16 * MiB, 2 * MiB), -EDQUOT);
		cr_assert_eq(region_try(a, ma, 0, 2 * MiB, (1ull << 41) + (uint64_t)i * 2 * MiB, 2 * MiB),
			     -EMFILE);
		cr_assert_eq(dmasvc_queue_open(a, 2, &q), -ENOSPC);
		cr_assert_eq(dmasvc_populate(b, (uint32_t)rb, (uint64_t)(i % 8) * 2 * MiB, 2 * MiB), 0,
			     "B: %s", dmasvc_last_error(b));
	}
	cr_assert_eq(dmasvc_discard(b, (uint32_t)rb, 0, 4 * MiB), 0);
	region_ok(b, rb, IOVA0);
	region_ok(a, ra, IOVA0);
	dmasvc_disconnect(a);
	cr_assert_eq(dmasvc_populate(b, (uint32_t)rb, 0, 16 * MiB), 0);
	region_ok(b, rb, IOVA0);
	dmasvc_disconnect(b);
	close(fda);
	close(fdb);
}
