/* SPDX-License-Identifier: MIT */
/*
 * test_faults.c - injected backend failures against the real daemon
 * (dmasvc --soft-iommu with DMASVC_TEST_SOFT_FAULTS, a knob of
 * fault-injection builds; see notes/daemon-status.md).
 *
 * What every test checks after each step ("the service's state is the
 * truth and the audit agrees"): QUERY REGIONS populated = mapped = pinned
 * bytes = the client's bitmap, QUERY AUDIT extents are all OK and cover
 * exactly the bitmap's runs (no STRAY: nothing is held that the service
 * calls unmapped; no MISSING), and the service's VmLck is its baseline
 * plus the populated bytes.
 *
 * Claims:
 *   - a populate whose map fails at the first, a middle or the last
 *     granule of the event fails with that errno and leaves everything as
 *     before, including granules the event overlapped that were already
 *     populated (all-or-nothing);
 *   - the fail-nth sweep: for N = 1, 2, ... the Nth map call of a burst of
 *     two events fails; exactly the event that made it fails and the other
 *     one's granules are populated; the first N the burst never reaches
 *     runs clean (the loop's end);
 *   - a discard whose unmap fails once is retried by the service and
 *     succeeds; if the retry fails too, the error is reported (CQE,
 *     events_failed) with the granules still populated, and the client's
 *     retry succeeds;
 *   - an unmap failing during session teardown (BYE or a SIGKILLed client)
 *     is retried by the service: nothing stays pinned;
 *   - a big burst's CQEs come from the executor that ran it, not when the
 *     loop notices it finished: with the loop made 1 s slow to reap, a
 *     16 MiB populate and discard complete well within it, and what the
 *     client asks next (QUERY) sees their results.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)
#define G (2 * MiB)
#define NR_G 16
#define IOVA (1ull << 32)

static struct it_svc svc;

static void stop(void)
{
	unsetenv("DMASVC_TEST_SOFT_FAULTS");
	unsetenv("DMASVC_TEST_EXEC_REAP_DELAY_US");
	it_suite_stop(&svc);
}

TestSuite(faults, .fini = stop, .timeout = 240);

/* One client, one memory, one region of NR_G granules. */
struct fx {
	struct dmasvc_client *c;
	int memfd;
	uint32_t region;
	int64_t base; /* service VmLck before anything was populated */
};

/*
 * fx_start_with: fx_start(), and with @caller_prefault the client faults
 * nothing in itself (DMASVC_PREFAULT_CALLER: one SQE per populate, not the
 * library's pieces) and the whole memory is allocated first.
 */
static void fx_start_with(struct fx *f, const char *faults, bool caller_prefault)
{
	struct dmasvc_region_desc d = { .size = NR_G * G, .iova = IOVA, .granule = G };
	int ret;

	cr_assert_eq(setenv("DMASVC_TEST_SOFT_FAULTS", faults, 1), 0);
	cr_assert_eq(it_svc_start(&svc, NULL), 0, "dmasvc starts with faults '%s'", faults);
	f->base = it_vmlck(svc.pid);
	cr_assert_geq(f->base, 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &f->c), 0);
	if (caller_prefault)
		cr_assert_eq(dmasvc_set_prefault(f->c, DMASVC_PREFAULT_CALLER), 0);
	f->memfd = it_memfd(d.size, true);
	cr_assert_geq(f->memfd, 0);
	if (caller_prefault)
		cr_assert_eq(it_memfd_prefault(f->memfd, 0, d.size), 0);
	ret = dmasvc_memory_add(f->c, f->memfd, d.size, 0);
	cr_assert_geq(ret, 0, "memory_add: %s", dmasvc_last_error(f->c));
	d.mem_id = (uint32_t)ret;
	ret = dmasvc_region_add(f->c, &d);
	cr_assert_geq(ret, 0, "region_add: %s", dmasvc_last_error(f->c));
	f->region = (uint32_t)ret;
}

static void fx_start(struct fx *f, const char *faults)
{
	fx_start_with(f, faults, false);
}

static void fx_stop(struct fx *f)
{
	dmasvc_disconnect(f->c);
	close(f->memfd);
	cr_expect_eq(it_wait_vmlck(svc.pid, f->base, 3000), f->base, "service VmLck back to baseline");
}

/* The service agrees with the client's bitmap, which holds @populated bytes. */
static void fx_check(struct fx *f, uint64_t populated, const char *step)
{
	char why[256];

	cr_assert_eq(dmasvc_region_populated_bytes(f->c, f->region), (int64_t)populated,
		     "%s: client bitmap", step);
	cr_assert_eq(it_check_region(f->c, f->region, IOVA, why, sizeof(why)), 0, "%s: %s", step, why);
	cr_assert_eq(it_wait_vmlck(svc.pid, f->base + (int64_t)populated, 2000),
		     f->base + (int64_t)populated, "%s: service VmLck", step);
}

/* Whether granule @k is populated according to the client's bitmap. */
struct probe {
	uint64_t off;
	bool hit;
};

static int probe_run(void *arg, uint64_t off, uint64_t len)
{
	struct probe *p = arg;

	if (p->off >= off && p->off < off + len)
		p->hit = true;
	return 0;
}

static bool populated(struct fx *f, unsigned int k)
{
	struct probe p = { .off = k * G };

	dmasvc_region_for_each_populated(f->c, f->region, probe_run, &p);
	return p.hit;
}

static uint64_t service_events_failed(struct fx *f)
{
	struct dmasvc_stat_service st;

	cr_assert_eq(dmasvc_query(f->c, DMASVC_QUERY_STATUS, 0, 0, &st, sizeof(st), 1), 1);
	return st.events_failed;
}

/*
 * Populate granules [4, 12) while granules 6 and 7 are already populated;
 * the map of granule @bad fails with ENOMEM.
 */
static void map_fails_at(unsigned int bad)
{
	char faults[128];
	struct fx f;

	snprintf(faults, sizeof(faults), "map_range=0x%llx-0x%llx,map_range_errno=12",
		 (unsigned long long)(IOVA + bad * G), (unsigned long long)(IOVA + bad * G + G - 1));
	fx_start(&f, faults);
	cr_assert_eq(dmasvc_populate(f.c, f.region, 6 * G, 2 * G), 0);
	fx_check(&f, 2 * G, "before");
	cr_assert_eq(dmasvc_populate(f.c, f.region, 4 * G, 8 * G), -ENOMEM,
		     "the populate fails with the map's errno (bad granule %u)", bad);
	fx_check(&f, 2 * G, "after the failed populate");
	cr_assert(populated(&f, 6) && populated(&f, 7), "the overlapped granules stay populated");
	/* Everything but the bad granule still maps (6 and 7 idempotently). */
	if (bad > 4)
		cr_assert_eq(dmasvc_populate(f.c, f.region, 4 * G, (bad - 4) * G), 0, "before the bad one");
	if (bad < 11)
		cr_assert_eq(dmasvc_populate(f.c, f.region, (bad + 1) * G, (11 - bad) * G), 0,
			     "after the bad one");
	fx_check(&f, 7 * G, "granules 4..11 but the bad one");
	cr_assert(!populated(&f, bad), "the bad granule is not populated");
	fx_stop(&f);
}

Test(faults, map_fails_at_first_granule)
{
	map_fails_at(4);
}

Test(faults, map_fails_at_middle_granule)
{
	map_fails_at(9);
}

Test(faults, map_fails_at_last_granule)
{
	map_fails_at(11);
}

/*
 * The fail-nth sweep over a burst of two 4-granule populates on one queue:
 * the Nth map call of the service fails with EIO.
 */
Test(faults, fail_nth_map_sweep)
{
	for (unsigned int n = 1;; n++) {
		struct dmasvc_completion cq[2];
		struct dmasvc_queue *q;
		char faults[64];
		struct fx f;
		int got = 0, failed = -1;

		cr_assert_leq(n, 9, "the sweep ends once the fault is out of reach (8 maps)");
		snprintf(faults, sizeof(faults), "map_fail_nth=%u,map_errno=5", n);
		fx_start(&f, faults);
		q = dmasvc_default_queue(f.c);
		cr_assert_eq(dmasvc_submit_populate(q, f.region, 0, 4 * G, 0), 0);
		cr_assert_eq(dmasvc_submit_populate(q, f.region, 8 * G, 4 * G, 1), 0);
		while (got < 2) {
			int r = dmasvc_reap(q, cq + got, 2 - (unsigned int)got, 5000);

			cr_assert_gt(r, 0, "completions arrive (N=%u)", n);
			got += r;
		}
		for (int i = 0; i < 2; i++) {
			cr_assert(cq[i].res == 0 || cq[i].res == -EIO, "N=%u res %d", n, cq[i].res);
			if (cq[i].res) {
				cr_assert_eq(failed, -1, "N=%u: only the event with the Nth map fails", n);
				failed = (int)cq[i].user_data;
			}
		}
		if (failed < 0) {
			/* The fault was never reached: the clean end of the sweep. */
			cr_assert_eq(n, 9, "N=%u: 8 maps are made, so N <= 8 must hit one", n);
			fx_check(&f, 8 * G, "clean run");
			fx_stop(&f);
			it_svc_stop(&svc);
			break;
		}
		fx_check(&f, 4 * G, "one of two events failed");
		for (unsigned int k = 0; k < 4; k++)
			cr_assert_eq(populated(&f, (failed ? 0 : 8) + k), true,
				     "N=%u: the other event's granule %u is populated", n, k);
		fx_stop(&f);
		cr_assert_eq(it_svc_stop(&svc), 0);
	}
}

/*
 * The first unmap of a discard fails once: the service audits the range
 * and unmaps what is still held once more (granule/plan_exec.c
 * unmap_retry), so the discard succeeds and is no failure.
 */
Test(faults, failed_discard_unmap_is_retried_by_the_service)
{
	uint64_t failed0;
	struct fx f;

	fx_start(&f, "unmap_fail_nth=1,unmap_errno=5");
	cr_assert_eq(dmasvc_populate(f.c, f.region, 0, 8 * G), 0);
	failed0 = service_events_failed(&f);
	cr_assert_eq(dmasvc_discard(f.c, f.region, 2 * G, 4 * G), 0, "the service's retry unmaps");
	cr_assert_eq(service_events_failed(&f), failed0, "a retried discard is no failure");
	fx_check(&f, 4 * G, "after the retried discard");
	fx_stop(&f);
}

/*
 * The unmap and the service's retry both fail: the error is reported (CQE,
 * events_failed), the granules stay populated in the service and the
 * client's bitmap, and the client's own retry succeeds.
 */
Test(faults, failed_discard_retry_failure_is_reported)
{
	uint64_t failed0;
	struct fx f;

	fx_start(&f, "unmap_fail_nth=1,unmap_fail_count=2,unmap_errno=5");
	cr_assert_eq(dmasvc_populate(f.c, f.region, 0, 8 * G), 0);
	failed0 = service_events_failed(&f);
	cr_assert_eq(dmasvc_discard(f.c, f.region, 2 * G, 4 * G), -EIO, "the unmap error is reported");
	cr_assert_eq(service_events_failed(&f), failed0 + 1, "and counted");
	fx_check(&f, 8 * G, "after the failed discard: the granules are still populated");
	cr_assert_eq(dmasvc_discard(f.c, f.region, 2 * G, 4 * G), 0, "the client's retry");
	fx_check(&f, 4 * G, "after the client's retry");
	fx_stop(&f);
}

/* An unmap fails while the service tears a session down: it retries. */
Test(faults, teardown_unmap_failure_is_retried)
{
	struct fx f;
	int n;

	fx_start(&f, "unmap_fail_nth=1,unmap_errno=16");
	cr_assert_eq(dmasvc_populate(f.c, f.region, 0, 3 * G), 0);
	cr_assert_eq(dmasvc_populate(f.c, f.region, 5 * G, 6 * G), 0);
	fx_check(&f, 9 * G, "populated in two runs");
	fx_stop(&f); /* BYE: the first teardown unmap fails; VmLck must still return */
	n = it_count_all_regions(svc.sock);
	cr_assert_eq(n, 0, "no region of the closed session is left (%d)", n);
}

Test(faults, killed_client_teardown_unmap_failure_is_retried)
{
	char faults[] = "unmap_fail_nth=1,unmap_errno=5";
	int64_t base;
	pid_t pid;
	int pipefd[2], status;
	char ok;

	cr_assert_eq(setenv("DMASVC_TEST_SOFT_FAULTS", faults, 1), 0);
	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	base = it_vmlck(svc.pid);
	cr_assert_eq(pipe(pipefd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct dmasvc_region_desc d = { .size = NR_G * G, .iova = IOVA, .granule = G };
		struct dmasvc_client *c;
		int fd = it_memfd(d.size, true), mem, r;

		if (fd < 0 || dmasvc_connect(svc.sock, NULL, &c))
			_exit(1);
		mem = dmasvc_memory_add(c, fd, d.size, 0);
		d.mem_id = (uint32_t)mem;
		r = mem < 0 ? mem : dmasvc_region_add(c, &d);
		if (r < 0 || dmasvc_populate(c, (uint32_t)r, 0, 2 * G) ||
		    dmasvc_populate(c, (uint32_t)r, 4 * G, 4 * G))
			_exit(1);
		if (write(pipefd[1], "k", 1) != 1)
			_exit(1);
		pause(); /* SIGKILLed here, mid-session */
		_exit(0);
	}
	close(pipefd[1]);
	cr_assert_eq(read(pipefd[0], &ok, 1), 1, "the client populated 6 granules");
	close(pipefd[0]);
	cr_assert_eq(it_wait_vmlck(svc.pid, base + (int64_t)(6 * G), 2000), base + (int64_t)(6 * G));
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	cr_assert_eq(it_wait_vmlck(svc.pid, base, 3000), base,
		     "the dead client's pins are released although the first unmap failed");
}

/*
 * The service's own view is consistent (whatever the client believes):
 * populated = mapped = pinned bytes, every audit extent OK and together
 * exactly the populated bytes, VmLck = baseline + populated.  Returns the
 * populated bytes.
 */
static uint64_t service_consistent(struct fx *f, const char *step)
{
	static struct dmasvc_audit_extent ext[NR_G];
	struct dmasvc_stat_region regs[8];
	uint64_t sum = 0, pop = UINT64_MAX;
	int n;

	n = dmasvc_query(f->c, DMASVC_QUERY_REGIONS, 0, 0, regs, sizeof(regs[0]), 8);
	cr_assert_gt(n, 0, "%s: QUERY REGIONS", step);
	for (int i = 0; i < n; i++) {
		if (regs[i].region_id != f->region)
			continue;
		pop = regs[i].populated_bytes;
		cr_assert(regs[i].mapped_bytes == pop && regs[i].pinned_bytes == pop,
			  "%s: populated %llu mapped %llu pinned %llu", step, (unsigned long long)pop,
			  (unsigned long long)regs[i].mapped_bytes, (unsigned long long)regs[i].pinned_bytes);
	}
	cr_assert_neq(pop, UINT64_MAX, "%s: region listed", step);
	n = dmasvc_query(f->c, DMASVC_QUERY_AUDIT, 0, f->region, ext, sizeof(ext[0]), NR_G);
	cr_assert_geq(n, 0, "%s: QUERY AUDIT", step);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(ext[i].state, DMASVC_AUDIT_OK, "%s: audit extent 0x%llx state %u", step,
			     (unsigned long long)ext[i].iova, ext[i].state);
		sum += ext[i].length;
	}
	cr_assert_eq(sum, pop, "%s: audit covers the populated bytes", step);
	cr_assert_eq(it_wait_vmlck(svc.pid, f->base + (int64_t)pop, 2000), f->base + (int64_t)pop,
		     "%s: VmLck", step);
	return pop;
}

/*
 * A populate fails at its 3rd map and the undo's unmap and its retry fail
 * too: the service must not claim unmapped what the backend still holds.  The
 * granules the undo could not remove stay marked populated in the service
 * (plan.h step 4), the audit agrees, and a discard or the teardown removes
 * them.
 */
Test(faults, failed_undo_keeps_service_truthful)
{
	uint64_t held;
	struct fx f;

	fx_start(&f, "map_fail_nth=3,map_errno=12,unmap_fail_nth=1,unmap_fail_count=2,unmap_errno=5");
	cr_assert_eq(dmasvc_populate(f.c, f.region, 0, 4 * G), -ENOMEM);
	held = service_consistent(&f, "after the failed undo");
	/* The worker lanes map in parallel: every granule but the failed one may be held. */
	cr_assert_leq(held, 3 * G, "at most the granules whose maps succeeded are held");
	cr_assert_eq(dmasvc_discard(f.c, f.region, 0, 4 * G), 0, "a discard removes them");
	cr_assert_eq(service_consistent(&f, "after the discard"), 0);
	fx_check(&f, 0, "client and service agree again");
	fx_stop(&f);
}

/*
 * DMASVC_TEST_EXEC_REAP_DELAY_US makes the loop sleep 1 s before it reaps
 * finished executor work.  A populate and a discard of 16 MiB, each one SQE
 * (the client faults the memory in itself: DMASVC_PREFAULT_CALLER, so the
 * library does not cut the populate into pieces) and so one big burst on
 * the executor in both runs of this suite, return in well under that:
 * their CQEs were posted by the executor.  Before burst_post the
 * loop posted them after the reap (each call took >= 1 s).  The session
 * stays busy until the reap, so the QUERY that follows is answered after
 * it, with the burst's results in the service's state.
 */
Test(faults, big_burst_completes_without_the_loop)
{
	uint64_t t0, populate_ms, discard_ms;
	struct fx f;

	cr_assert_eq(setenv("DMASVC_TEST_EXEC_REAP_DELAY_US", "1000000", 1), 0);
	fx_start_with(&f, "", true);
	/* whatever the setup ran on the executor was reaped by now */
	nanosleep(&(struct timespec){ .tv_sec = 1, .tv_nsec = 500000000 }, NULL);

	t0 = it_now_ms();
	cr_assert_eq(dmasvc_populate(f.c, f.region, 0, 8 * G), 0);
	populate_ms = it_now_ms() - t0;
	fx_check(&f, 8 * G, "after the populate");
	t0 = it_now_ms();
	cr_assert_eq(dmasvc_discard(f.c, f.region, 0, 8 * G), 0);
	discard_ms = it_now_ms() - t0;
	fx_check(&f, 0, "after the discard");
	fprintf(stderr, "16 MiB with the loop 1 s slow to reap: populate %llu ms, discard %llu ms\n",
		(unsigned long long)populate_ms, (unsigned long long)discard_ms);
	cr_expect_lt(populate_ms, 500, "the populate took %llu ms: its CQE waited for the loop",
		     (unsigned long long)populate_ms);
	cr_expect_lt(discard_ms, 500, "the discard took %llu ms: its CQE waited for the loop",
		     (unsigned long long)discard_ms);
	unsetenv("DMASVC_TEST_EXEC_REAP_DELAY_US");
	fx_stop(&f);
}
