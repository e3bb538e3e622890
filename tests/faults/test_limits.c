/* SPDX-License-Identifier: MIT */
/*
 * test_limits.c - per-session resource caps and RLIMIT_MEMLOCK, against
 * the real daemon.
 *
 * Claims (session_priv.h "Caps"):
 *   - registered guest memory (--max-registered-gib): -EDQUOT past it;
 *   - memories (256), regions (1024), rings (64) and in-flight SQ entries
 *     summed over a session's rings (16384): one past the cap is refused
 *     with -EMFILE / -ENOSPC and a message naming the cap, the session
 *     goes on working, and hammering the cap does not grow the service's
 *     memory (VmRSS bounded);
 *   - a service whose RLIMIT_MEMLOCK is exhausted (run without
 *     CAP_IPC_LOCK, so the limit applies to it as root) fails the populate
 *     that does not fit with -ENOMEM, all-or-nothing, logs the map error
 *     with its IOVA, keeps running and serves populates that fit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_util.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

static struct it_svc svc;

static void stop(void)
{
	it_suite_stop(&svc);
}

TestSuite(limits, .fini = stop, .timeout = 120);

/* A raw session (HELLO done) on the running service. */
static int raw_session(void)
{
	int fd = it_raw_connect(svc.sock);

	cr_assert_geq(fd, 0);
	cr_assert_eq(it_raw_hello(fd), 0);
	return fd;
}

/* RING_SETUP of @sq entries; closes the returned fds.  Returns the reply's errno. */
static int raw_ring(int fd, uint32_t sq)
{
	struct dmasvc_ring_setup req = { .sq_entries = sq, .cq_entries = sq };
	unsigned char reply[256];
	int rfds[4];
	unsigned int nrfds = 0;
	int ret;

	ret = it_raw_call(fd, DMASVC_CMD_RING_SETUP, &req, sizeof(req), NULL, 0, reply,
			  sizeof(reply), rfds, &nrfds);
	for (unsigned int i = 0; i < nrfds; i++)
		close(rfds[i]);
	cr_assert_eq(nrfds, ret == 0 ? 3u : 0u, "a ring reply carries 3 fds, an error none");
	return ret;
}

/* The session still answers a plain request. */
static void still_works(int fd)
{
	struct dmasvc_query q = { .what = DMASVC_QUERY_STATUS };
	unsigned char reply[1024];

	cr_assert_eq(it_raw_call(fd, DMASVC_CMD_QUERY, &q, sizeof(q), NULL, 0, reply, sizeof(reply),
				 NULL, NULL), 0, "the session goes on after a refused request");
}

Test(limits, memories_cap)
{
	struct dmasvc_client *c;
	int fd, ret = 0;
	int64_t rss;

	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	fd = it_memfd(64 * KiB, true);
	cr_assert_geq(fd, 0);
	for (int i = 0; i < 256; i++) {
		ret = dmasvc_memory_add(c, fd, 64 * KiB, 0);
		cr_assert_geq(ret, 0, "memory %d of 256: %s", i, dmasvc_last_error(c));
	}
	cr_assert_eq(dmasvc_memory_add(c, fd, 64 * KiB, 0), -EMFILE, "the 257th memory is refused");
	cr_assert(strstr(dmasvc_last_error(c), "cap"), "message: %s", dmasvc_last_error(c));
	rss = it_vmrss(svc.pid);
	cr_assert_geq(rss, 0, "the service's VmRSS is readable");
	for (int i = 0; i < 500; i++)
		cr_assert_eq(dmasvc_memory_add(c, fd, 64 * KiB, 0), -EMFILE);
	cr_assert_lt(it_vmrss(svc.pid) - rss, (int64_t)(2 * MiB), "refusals cost no service memory");
	cr_assert_eq(dmasvc_memory_remove(c, (uint32_t)ret), 0);
	cr_assert_geq(dmasvc_memory_add(c, fd, 64 * KiB, 0), 0, "a freed slot is usable again");
	dmasvc_disconnect(c);
	close(fd);
}

/*
 * --max-registered-gib: one session may register at most that much guest
 * memory (sparse memfds: nothing is allocated); past it MEMORY_ADD is
 * -EDQUOT with the numbers, other sessions are not affected, and removing
 * a memory makes room again.
 */
Test(limits, registered_bytes_cap)
{
	const char *extra[] = { "--max-registered-gib", "1", NULL };
	struct dmasvc_client *a, *b;
	int fd768, fd512, m;

	cr_assert_eq(it_svc_start(&svc, extra), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &a), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &b), 0);
	fd768 = it_memfd(768 * MiB, true);
	fd512 = it_memfd(512 * MiB, true);
	cr_assert(fd768 >= 0 && fd512 >= 0);
	m = dmasvc_memory_add(a, fd768, 768 * MiB, 0);
	cr_assert_geq(m, 0, "%s", dmasvc_last_error(a));
	cr_assert_eq(dmasvc_memory_add(a, fd512, 512 * MiB, 0), -EDQUOT, "1.25 GiB > the 1 GiB cap");
	cr_expect(strstr(dmasvc_last_error(a), "cap max-registered-gib (--max-registered-gib) exceeded:"
		  " requested 536870912 bytes, in use 805306368, cap 1073741824"),
		  "the message names the cap: %s", dmasvc_last_error(a));
	cr_assert_geq(dmasvc_memory_add(b, fd512, 512 * MiB, 0), 0, "the cap is per session");
	cr_assert_eq(dmasvc_memory_remove(a, (uint32_t)m), 0);
	cr_assert_geq(dmasvc_memory_add(a, fd512, 512 * MiB, 0), 0, "room again after a remove");
	dmasvc_disconnect(a);
	dmasvc_disconnect(b);
	close(fd768);
	close(fd512);
}

Test(limits, regions_cap)
{
	struct dmasvc_region_desc d = { .size = 4 * KiB, .granule = 4 * KiB };
	struct dmasvc_client *c;
	int fd, mem, last = -1;
	int64_t rss;

	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	fd = it_memfd(1024 * 4 * KiB, true);
	mem = dmasvc_memory_add(c, fd, 1024 * 4 * KiB, 0);
	cr_assert_geq(mem, 0);
	d.mem_id = (uint32_t)mem;
	for (int i = 0; i < 1024; i++) {
		d.mem_offset = (uint64_t)i * 4 * KiB;
		d.iova = (1ull << 32) + (uint64_t)i * 8 * KiB;
		last = dmasvc_region_add(c, &d);
		cr_assert_geq(last, 0, "region %d of 1024: %s", i, dmasvc_last_error(c));
	}
	d.iova = 1ull << 33;
	cr_assert_eq(dmasvc_region_add(c, &d), -EMFILE, "the 1025th region is refused");
	cr_assert(strstr(dmasvc_last_error(c), "cap"), "message: %s", dmasvc_last_error(c));
	rss = it_vmrss(svc.pid);
	cr_assert_geq(rss, 0, "the service's VmRSS is readable");
	for (int i = 0; i < 500; i++)
		cr_assert_eq(dmasvc_region_add(c, &d), -EMFILE);
	cr_assert_lt(it_vmrss(svc.pid) - rss, (int64_t)(2 * MiB), "refusals cost no service memory");
	cr_assert_eq(dmasvc_populate(c, (uint32_t)last, 0, 4 * KiB), 0, "the regions still work");
	dmasvc_disconnect(c);
	close(fd);
}

Test(limits, rings_cap)
{
	int fd;
	int64_t rss;

	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	fd = raw_session();
	for (int i = 0; i < DMASVC_MAX_RINGS; i++)
		cr_assert_eq(raw_ring(fd, 2), 0, "ring %d of %d", i, DMASVC_MAX_RINGS);
	cr_assert_eq(raw_ring(fd, 2), EMFILE, "ring %d is refused", DMASVC_MAX_RINGS + 1);
	rss = it_vmrss(svc.pid);
	cr_assert_geq(rss, 0, "the service's VmRSS is readable");
	for (int i = 0; i < 500; i++)
		cr_assert_eq(raw_ring(fd, 2), EMFILE);
	cr_assert_lt(it_vmrss(svc.pid) - rss, (int64_t)(2 * MiB), "refusals cost no service memory");
	still_works(fd);
	close(fd);
}

Test(limits, inflight_cap)
{
	int fd;

	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	fd = raw_session();
	for (int i = 0; i < 4; i++)
		cr_assert_eq(raw_ring(fd, 4096), 0, "4 x 4096 SQ entries = the in-flight cap");
	cr_assert_eq(raw_ring(fd, 2), ENOSPC, "2 more SQ entries exceed the cap");
	still_works(fd);
	close(fd);
	/* The cap is per session: another session gets its own. */
	fd = raw_session();
	cr_assert_eq(raw_ring(fd, 4096), 0);
	close(fd);
}

/*
 * Start dmasvc without CAP_IPC_LOCK (dropped from the bounding set, so
 * even root's exec gets no such capability) and with RLIMIT_MEMLOCK
 * @limit; its stderr goes to @log.
 */
static void start_memlock_limited(uint64_t limit, const char *log)
{
	const char *bin = getenv("DMASVC_BIN");
	pid_t parent = getpid();

	cr_assert_not_null(bin);
	snprintf(svc.dir, sizeof(svc.dir), "/tmp/dmasvc-lim.XXXXXX");
	cr_assert_not_null(mkdtemp(svc.dir));
	snprintf(svc.sock, sizeof(svc.sock), "%s/dmasvc.sock", svc.dir);
	svc.pid = fork();
	cr_assert_geq(svc.pid, 0);
	if (svc.pid == 0) {
		struct rlimit rl = { .rlim_cur = limit, .rlim_max = limit };
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* Not root: no CAP_IPC_LOCK to drop, the rlimit applies anyway. */
		if (getppid() != parent || fd < 0 || dup2(fd, 2) < 0 ||
		    setrlimit(RLIMIT_MEMLOCK, &rl) ||
		    (prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0) && geteuid() == 0))
			_exit(126);
		execl(bin, bin, "--soft-iommu", "--socket", svc.sock, "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int fd = it_raw_connect(svc.sock);

		if (fd >= 0) {
			close(fd);
			return;
		}
		cr_assert(it_svc_alive(&svc), "dmasvc died at start");
		usleep(10000);
	}
	cr_assert_fail("dmasvc did not start");
}

/* Whether @path contains @needle. */
static bool file_has(const char *path, const char *needle)
{
	char buf[16384];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

Test(limits, memlock_exhaustion_fails_the_populate)
{
	struct dmasvc_region_desc d = { .size = 32 * MiB, .iova = 1ull << 32, .granule = 2 * MiB };
	struct dmasvc_client *c;
	char log[128], why[256], needle[64];
	int64_t base;
	int fd, ret;

	snprintf(log, sizeof(log), "/tmp/dmasvc-lim-%d.log", (int)getpid());
	start_memlock_limited(8 * MiB, log);
	base = it_vmlck(svc.pid);
	cr_assert_lt(base, (int64_t)(2 * MiB), "the service starts with (almost) nothing locked");
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	fd = it_memfd(d.size, true);
	ret = dmasvc_memory_add(c, fd, d.size, 0);
	cr_assert_geq(ret, 0, "%s", dmasvc_last_error(c));
	d.mem_id = (uint32_t)ret;
	ret = dmasvc_region_add(c, &d);
	cr_assert_geq(ret, 0, "%s", dmasvc_last_error(c));

	cr_assert_eq(dmasvc_populate(c, (uint32_t)ret, 0, 2 * MiB * 2), 0, "4 MiB fit in 8 MiB");
	cr_assert_eq(dmasvc_populate(c, (uint32_t)ret, 8 * MiB, 12 * MiB), -ENOMEM,
		     "12 MiB more do not fit: the populate fails with ENOMEM");
	cr_assert(it_svc_alive(&svc), "the service survives");
	cr_assert_eq(it_check_region(c, (uint32_t)ret, d.iova, why, sizeof(why)), 0,
		     "all-or-nothing: %s", why);
	cr_assert_eq(it_wait_vmlck(svc.pid, base + (int64_t)(4 * MiB), 2000), base + (int64_t)(4 * MiB));
	snprintf(needle, sizeof(needle), "Cannot allocate memory");
	cr_assert(file_has(log, needle) && file_has(log, "map iova"),
		  "the service logs the failed map with its IOVA and the error");
	cr_assert_eq(dmasvc_populate(c, (uint32_t)ret, 8 * MiB, 2 * MiB), 0, "what fits still maps");
	cr_assert_eq(it_check_region(c, (uint32_t)ret, d.iova, why, sizeof(why)), 0, "%s", why);
	dmasvc_disconnect(c);
	close(fd);
	cr_assert_eq(it_wait_vmlck(svc.pid, base, 3000), base, "everything unpinned");
	unlink(log);
}
