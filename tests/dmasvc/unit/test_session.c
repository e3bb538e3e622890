/* SPDX-License-Identifier: MIT */
/*
 * test_session.c - sessions on the software model, without a socket:
 * memory and region rules, the area budget, ring setup, SQE validation and
 * completion, CQ backpressure (nothing dropped, order kept), ring protocol
 * errors, injected map failures (rolled back, logged with context), the
 * audit, queries and their access rule, and teardown (no pin, no fd left).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/soft_iommu.h"
#include "dispatch_priv.h"
#include "exec_pool_priv.h"
#include "query_priv.h"
#include "ring_service_priv.h"
#include "session_priv.h"
#include "unit_util.h"

#define MB (1ull << 20)
#define GRAN (2 * MB)
#define IOVA0 (1ull << 30)
#define BUDGET 64

static struct dsvc_options opt;
static struct dlog lg;
static struct dsvc d;
static struct dsvc_session *s;
static char *logtext;
static size_t loglen;
static int fd_baseline;
static int peer_fd;

/* What the kernel counts as pinned here: VmPin (the model's io_uring pin) + VmLck (its mlock fallback). */
static uint64_t vmlck(void)
{
	char line[256];
	unsigned long long kb, sum = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %llu", &kb) == 1 || sscanf(line, "VmPin: %llu", &kb) == 1)
			sum += kb;
	if (f)
		fclose(f);
	return sum * 1024;
}

static void setup(void)
{
	struct be_config cfg = { .max_areas = BUDGET };
	struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	char *argv[] = { "dmasvc", "--soft-iommu", NULL };
	char err[256];
	int sp[2];

	fd_baseline = count_open_fds();
	cr_assert_eq(opt_parse(2, argv, &opt, stdout, err, sizeof(err)), OPT_RUN);
	lg.level = DLOG_DEBUG;
	lg.out = open_memstream(&logtext, &loglen);
	memset(&d, 0, sizeof(d));
	d.opt = &opt;
	d.log = &lg;
	d.ops = &be_soft_ops;
	d.start_ns = dsvc_now_ns();
	cr_assert_eq(d.ops->open(&cfg, &d.be), 0);
	cr_assert_eq(pool_create(2, &d.pool), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	peer_fd = sp[1];
	cr_assert_eq(session_create(&d, sp[0], &cred, true, &s), 0);
	cr_assert_eq(d.nr_sessions, 1);
}

static void teardown(void)
{
	if (s) {
		ringsvc_session_release(&d, s);
		session_destroy(&d, s);
	}
	s = NULL;
	cr_expect_eq(d.nr_sessions, 0);
	pool_destroy(d.pool);
	d.ops->close(d.be);
	close(peer_fd);
	fclose(lg.out);
	free(logtext);
	cr_expect_eq(count_open_fds(), fd_baseline, "fd leak");
	cr_expect_eq(vmlck(), 0, "pins left after teardown");
}

TestSuite(session, .init = setup, .fini = teardown, .timeout = 60);

static uint32_t add_mem(uint64_t size, uint32_t flags)
{
	struct dmasvc_memory_add req = { .size = size, .flags = flags };
	int fd = make_memfd(size, F_SEAL_SHRINK);
	char err[256];
	uint32_t id;

	cr_assert_geq(fd, 0);
	cr_assert_eq(session_memory_add(&d, s, fd, &req, &id, err, sizeof(err)), 0, "%s", err);
	return id;
}

static int add_region(uint32_t mem, uint64_t off, uint64_t size, uint64_t iova, uint64_t gran,
		      uint32_t flags, uint32_t *id, char *err)
{
	struct dmasvc_region_add req = {
		.mem_id = mem, .flags = flags, .mem_offset = off, .size = size, .iova = iova, .granule = gran,
	};

	return session_region_add(&d, s, &req, id, err, 256);
}

/* A client's view of a ring set up in @s. */
struct client_ring {
	struct dsvc_ring *rg;
	struct ring_mapping map;
	struct ring_sq_producer sq;
	struct ring_cq_consumer cq;
};

static void open_ring(struct client_ring *c, uint32_t sq, uint32_t cq)
{
	struct dmasvc_ring_setup req = { .sq_entries = sq, .cq_entries = cq };
	struct ring_params p = { .sq_entries = sq, .cq_entries = cq };
	char err[256];
	int fds[3];

	cr_assert_eq(session_ring_setup(&d, s, &req, &c->rg, fds, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ring_map(&c->map, fds[0], &p), 0);
	close(fds[0]); /* the daemon's event loop closes its copy after sending */
	cr_assert_eq(ring_sq_producer_init(&c->sq, &c->map), 0);
	cr_assert_eq(ring_cq_consumer_init(&c->cq, &c->map), 0);
}

static void close_ring(struct client_ring *c)
{
	ring_unmap(&c->map);
}

static void post_raw(struct client_ring *c, uint8_t op, uint32_t region, uint64_t off,
		     uint64_t len, uint64_t ud)
{
	struct dmasvc_sqe e = { .opcode = op, .region_id = region, .offset = off, .length = len,
				.user_data = ud };

	cr_assert_eq(ring_sq_post(&c->sq, &e, 1), 1, "SQ full");
}

/*
 * The VMM's part of the residency rule (docs/design.md): a populate's range
 * is faulted in before it is posted.  Client and service are this one
 * process here, so through a mapping of the test's own (the service's
 * mapping guards its holes: a fault there fails); a range outside the
 * region (the bad-SQE cases) is left alone.
 */
static void prefault(uint32_t region, uint64_t off, uint64_t len)
{
	const struct dsvc_region *r = session_region(s, region);
	const struct gran_region_desc *gd;
	uint64_t at;
	char *vmm;

	if (!r)
		return;
	gd = gran_region_desc(r->gr);
	if (!len || off > gd->size || len > gd->size - off)
		return;
	at = (gd->mem_offset + off) & ~4095ull;
	len += gd->mem_offset + off - at;
	vmm = mmap(NULL, len, r->mem->readonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED,
		   r->mem->fd, (off_t)at);
	cr_assert_neq(vmm, MAP_FAILED);
	cr_assert_eq(madvise(vmm, len, r->mem->readonly ? MADV_POPULATE_READ : MADV_POPULATE_WRITE), 0);
	munmap(vmm, len);
}

static void post(struct client_ring *c, uint8_t op, uint32_t region, uint64_t off, uint64_t len,
		 uint64_t ud)
{
	if (op == DMASVC_OP_POPULATE)
		prefault(region, off, len);
	post_raw(c, op, region, off, len, ud);
}

/* Run the service on the ring and reap exactly @n CQEs into @out. */
static void run_and_reap(struct client_ring *c, struct dmasvc_cqe *out, int n)
{
	int got;

	cr_assert_geq(ringsvc_ring_work(&d, s, c->rg, 16), 0);
	got = ring_cq_drain(&c->cq, out, (unsigned int)n + 1);
	cr_assert_eq(got, n, "expected %d completions, got %d", n, got);
}

static int32_t one_event(struct client_ring *c, uint8_t op, uint32_t region, uint64_t off, uint64_t len)
{
	struct dmasvc_cqe cqe;

	post(c, op, region, off, len, 0xabc);
	run_and_reap(c, &cqe, 1);
	cr_assert_eq(cqe.user_data, 0xabc);
	return cqe.res;
}

static bool mapped(uint64_t iova)
{
	void *host;

	return soft_iommu_translate(s->space, iova, 4096, &host) == 0;
}

Test(session, memory_and_region_rules)
{
	uint32_t mem = add_mem(64 * MB, 0), ro = add_mem(4 * MB, DMASVC_MEMORY_READONLY);
	uint32_t r1, r2;
	char err[256];

	cr_expect_neq(mem, 0, "ids are never 0");
	cr_expect_eq(add_region(mem, 0, 32 * MB, IOVA0, GRAN, 0, &r1, err), 0, "%s", err);
	cr_expect_eq(add_region(mem + 1, 0, 32 * MB, IOVA0 * 2, GRAN, 0, &r2, err), -ENOENT);
	cr_expect_eq(add_region(mem, 0, 4 * MB, IOVA0 + 30 * MB, GRAN, 0, &r2, err), -EEXIST);
	cr_expect(strstr(err, "overlaps"), "%s", err);
	cr_expect_eq(add_region(mem, 62 * MB, 4 * MB, IOVA0 * 2, GRAN, 0, &r2, err), -ERANGE,
		     "beyond the memory");
	cr_expect_eq(add_region(ro, 0, 4 * MB, IOVA0 * 3, GRAN, 0, &r2, err), -EINVAL,
		     "read-only memory needs a READONLY region");
	cr_expect_eq(add_region(ro, 0, 4 * MB, IOVA0 * 3, GRAN, DMASVC_REGION_READONLY, &r2, err), 0, "%s",
		     err);
	cr_expect_eq(session_memory_remove(s, mem, err, sizeof(err)), -EBUSY);
	cr_expect_eq(session_region_remove(&d, s, r1, err, sizeof(err)), 0);
	cr_expect_eq(session_region_remove(&d, s, r1, err, sizeof(err)), -ENOENT, "ids are not reused");
	cr_expect_eq(session_memory_remove(s, mem, err, sizeof(err)), 0);
	cr_expect_eq(s->nr_regions, 1);
	cr_expect_eq(s->nr_mems, 1);
}

/* A hugetlbfs memory's regions take granules of at least its page size. */
Test(session, hugetlbfs_region_granule_is_at_least_the_page_size)
{
	struct dmasvc_memory_add req = { .size = 8 * MB };
	int fd = memfd_create("unit-huge-region", MFD_CLOEXEC | MFD_HUGETLB);
	char err[256];
	uint32_t mem, r;

	if (fd < 0) {
		cr_log_warn("no hugetlbfs memfd on this kernel (%d): check not exercised", errno);
		return;
	}
	cr_assert_eq(ftruncate(fd, 8 * MB), 0);
	cr_assert_eq(session_memory_add(&d, s, fd, &req, &mem, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(add_region(mem, 0, 8 * MB, IOVA0, 4096, 0, &r, err), -EINVAL,
		     "4 KiB granules on 2 MiB pages");
	cr_expect(strstr(err, "page size"), "%s", err);
	cr_expect_eq(add_region(mem, 0, 8 * MB, IOVA0, 2 * MB, 0, &r, err), 0, "%s", err);
}

Test(session, budget_refusal_names_numbers)
{
	uint32_t mem = add_mem(512 * MB, 0), r;
	char err[256];

	cr_expect_eq(s->max_areas, BUDGET);
	/* 128 areas at 2 MiB do not fit a budget of 64; 4 MiB would */
	cr_expect_eq(add_region(mem, 0, 256 * MB, IOVA0, GRAN, 0, &r, err), -ENOSPC);
	cr_expect(strstr(err, "128"), "names the areas needed: %s", err);
	cr_expect(strstr(err, "64"), "names the budget: %s", err);
	cr_expect_eq(add_region(mem, 0, 256 * MB, IOVA0, 4 * MB, 0, &r, err), 0, "%s", err);
	cr_expect_eq(s->budget.reserved, 64);
}

Test(session, populate_discard_and_bad_sqes)
{
	uint32_t mem = add_mem(64 * MB, 0), r;
	struct client_ring c;
	char err[256];
	void *host;

	cr_assert_eq(add_region(mem, 16 * MB, 32 * MB, IOVA0, GRAN, 0, &r, err), 0, "%s", err);
	open_ring(&c, 16, 32);
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r, 0, 8 * MB), 0);
	for (uint64_t o = 0; o < 8 * MB; o += GRAN)
		cr_expect(mapped(IOVA0 + o));
	cr_expect(!mapped(IOVA0 + 8 * MB));
	cr_assert_eq(soft_iommu_translate(s->space, IOVA0 + GRAN, 4096, &host), 0);
	cr_expect_eq(host, (char *)session_memory(s, mem)->vaddr + 16 * MB + GRAN,
		     "the IOVA reaches the region's bytes of the memory");
	cr_expect_eq(one_event(&c, DMASVC_OP_DISCARD, r, 2 * MB, 4 * MB), 0);
	cr_expect(mapped(IOVA0) && !mapped(IOVA0 + 2 * MB) && !mapped(IOVA0 + 4 * MB) &&
		  mapped(IOVA0 + 6 * MB));
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r, 0, 8 * MB), 0, "idempotent");

	cr_expect_eq(one_event(&c, 7, r, 0, GRAN), -EINVAL, "unknown opcode");
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r + 1, 0, GRAN), -ENOENT, "unknown region");
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r, 4096, GRAN), -EINVAL, "misaligned");
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r, 0, 0), -EINVAL, "zero length");
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r, 30 * MB, 4 * MB), -ERANGE, "out of bounds");
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r, UINT64_MAX - GRAN + 1, GRAN), -ERANGE,
		     "offset overflow");
	cr_expect_eq(one_event(&c, DMASVC_OP_NOP, 0, 0, 0), 0, "NOP");
	{
		/* a flag no protocol version defines (bit 0 is DMASVC_SQE_REPLAY) */
		struct dmasvc_sqe e = { .opcode = DMASVC_OP_POPULATE, .flags = 0x80, .region_id = r,
					.length = GRAN, .user_data = 5 };
		struct dmasvc_cqe cqe[2];

		cr_assert_eq(ring_sq_post(&c.sq, &e, 1), 1);
		e.flags = 0;
		e.__reserved = 1;
		cr_assert_eq(ring_sq_post(&c.sq, &e, 1), 1);
		run_and_reap(&c, cqe, 2);
		cr_expect_eq(cqe[0].res, -EINVAL, "flags");
		cr_expect_eq(cqe[1].res, -EINVAL, "reserved");
	}
	cr_expect(!mapped(IOVA0 + 30 * MB), "bad events changed nothing");
	cr_expect_eq(s->ctr.events, 12);
	cr_expect_eq(s->ctr.events_failed, 8);
	cr_expect_eq(s->ctr.map_calls, 6, "4 + 2 re-populated granules");
	close_ring(&c);
}

Test(session, mixed_burst_keeps_order)
{
	uint32_t mem = add_mem(32 * MB, 0), r;
	struct client_ring c;
	struct dmasvc_cqe cqe[4];
	char err[256];

	cr_assert_eq(add_region(mem, 0, 32 * MB, IOVA0, GRAN, 0, &r, err), 0, "%s", err);
	open_ring(&c, 16, 16);
	post(&c, DMASVC_OP_POPULATE, r, 0, 8 * MB, 1);
	post(&c, DMASVC_OP_DISCARD, r, 0, 4 * MB, 2);
	post(&c, DMASVC_OP_POPULATE, r, 2 * MB, 2 * MB, 3);
	post(&c, DMASVC_OP_DISCARD, r, 6 * MB, 2 * MB, 4);
	run_and_reap(&c, cqe, 4);
	for (int i = 0; i < 4; i++)
		cr_expect_eq(cqe[i].res, 0);
	cr_expect(!mapped(IOVA0) && mapped(IOVA0 + 2 * MB) && mapped(IOVA0 + 4 * MB) &&
		  !mapped(IOVA0 + 6 * MB), "events of one burst take effect in order");
	close_ring(&c);
}

Test(session, full_cq_waits_and_drops_nothing)
{
	uint32_t mem = add_mem(4 * MB, 0), r;
	struct client_ring c;
	struct dmasvc_cqe cqe[8];
	uint64_t next_post = 0, next_reap = 0;
	char err[256];

	cr_assert_eq(add_region(mem, 0, 4 * MB, IOVA0, GRAN, 0, &r, err), 0, "%s", err);
	open_ring(&c, 8, 8);
	for (int i = 0; i < 8; i++)
		post(&c, DMASVC_OP_NOP, 0, 0, 0, next_post++);
	cr_expect_eq(ringsvc_ring_work(&d, s, c.rg, 16), 8);
	for (int i = 0; i < 8; i++)
		post(&c, DMASVC_OP_NOP, 0, 0, 0, next_post++);
	/* CQ full: the next 8 are drained, kept in the backlog, and the service waits */
	cr_expect_eq(ringsvc_ring_work(&d, s, c.rg, 16), 8);
	cr_expect_eq(c.rg->nr_backlog, 8);
	cr_expect(c.rg->cq_waiting);
	for (int i = 0; i < 8; i++)
		post(&c, DMASVC_OP_NOP, 0, 0, 0, next_post++);
	cr_expect_eq(ringsvc_ring_work(&d, s, c.rg, 16), 0, "no drain while the backlog waits");
	cr_expect(!ringsvc_ring_pending(c.rg));
	for (int round = 0; round < 3; round++) {
		bool waiting = c.rg->cq_waiting;
		int n = ring_cq_drain(&c.cq, cqe, 8);

		cr_assert_eq(n, 8, "round %d", round);
		cr_expect_eq(ring_cq_drain_should_wake(&c.cq), waiting,
			     "the client rings the doorbell exactly when the service waits (round %d)", round);
		for (int i = 0; i < n; i++)
			cr_assert_eq(cqe[i].user_data, next_reap++, "in order, none lost");
		ringsvc_ring_work(&d, s, c.rg, 16);
	}
	cr_expect_eq(next_reap, next_post);
	cr_expect_eq(ring_cq_drain(&c.cq, cqe, 8), 0, "nothing duplicated");
	cr_expect_eq(c.rg->nr_backlog, 0);
	close_ring(&c);
}

Test(session, corrupt_ring_index_is_a_protocol_error)
{
	struct client_ring c;

	open_ring(&c, 8, 8);
	/* the client claims 100 more entries than the ring holds */
	*c.sq.core.tail_p = c.sq.core.tail + 100;
	cr_expect_eq(ringsvc_ring_work(&d, s, c.rg, 16), RING_EPROTO);
	cr_expect_eq(ringsvc_ring_work(&d, s, c.rg, 16), RING_EPROTO, "sticky");
	close_ring(&c);
}

Test(session, failed_map_rolls_back_and_is_logged)
{
	uint32_t mem = add_mem(16 * MB, 0), r;
	struct soft_iommu_faults f = { .map_fail_nth = 3, .map_fail_errno = ENOMEM };
	struct client_ring c;
	char err[256];

	cr_assert_eq(add_region(mem, 0, 16 * MB, IOVA0, GRAN, 0, &r, err), 0, "%s", err);
	open_ring(&c, 8, 8);
	soft_iommu_set_faults(d.be, &f);
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r, 0, 8 * MB), -ENOMEM);
	for (uint64_t o = 0; o < 8 * MB; o += GRAN)
		cr_expect(!mapped(IOVA0 + o), "granule 0x%llx left mapped", (unsigned long long)o);
	cr_expect_eq(gran_region_populated(session_region(s, r)->gr), 0);
	fflush(lg.out);
	cr_expect(strstr(logtext, "map iova 0x") && strstr(logtext, "Cannot allocate memory"),
		  "log: %s", logtext);
	{
		char want[64];

		snprintf(want, sizeof(want), "session %u: region %u: map iova", s->id, r);
		cr_expect(strstr(logtext, want), "log names session and region: %s", logtext);
	}
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r, 0, 8 * MB), 0, "a retry succeeds");
	close_ring(&c);
}

struct audit_rec {
	struct dmasvc_audit_extent x[16];
	unsigned int n;
};

static int audit(uint32_t region, struct audit_rec *out)
{
	struct dmasvc_query q = { .what = DMASVC_QUERY_AUDIT, .region_id = region };
	struct dmasvc_query_reply rep;
	static unsigned char records[QUERY_RECORD_BYTES];
	char err[256];
	int ret = query_run(&d, s, &q, &rep, records, err, sizeof(err));

	if (ret)
		return ret;
	cr_assert_leq(rep.count, 16);
	cr_expect_eq(rep.next_cursor, 0);
	memcpy(out->x, records, rep.count * sizeof(out->x[0]));
	out->n = rep.count;
	return 0;
}

Test(session, audit_finds_missing_and_stray)
{
	uint32_t mem = add_mem(32 * MB, 0), r;
	struct client_ring c;
	struct audit_rec a;
	struct be_map_src src;
	uint64_t unmapped;
	char err[256];

	cr_assert_eq(add_region(mem, 0, 32 * MB, IOVA0, GRAN, 0, &r, err), 0, "%s", err);
	open_ring(&c, 8, 8);
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r, 0, 8 * MB), 0);
	cr_assert_eq(audit(r, &a), 0);
	cr_assert_eq(a.n, 1);
	cr_expect_eq(a.x[0].state, DMASVC_AUDIT_OK);
	cr_expect_eq(a.x[0].iova, IOVA0);
	cr_expect_eq(a.x[0].length, 8 * MB);

	/* behind the service's back: drop granule 1, map granule 10 (in memory) */
	cr_assert_eq(d.ops->unmap(s->space, IOVA0 + GRAN, GRAN, &unmapped), 0);
	prefault(r, 10 * GRAN, GRAN);
	src = (struct be_map_src){ .vaddr = (char *)session_memory(s, mem)->vaddr + 10 * GRAN, .fd = -1 };
	cr_assert_eq(d.ops->map(s->space, IOVA0 + 10 * GRAN, GRAN, &src, BE_PROT_READ), 0);
	cr_assert_eq(audit(r, &a), 0);
	cr_assert_eq(a.n, 4);
	cr_expect(a.x[0].state == DMASVC_AUDIT_OK && a.x[0].iova == IOVA0 && a.x[0].length == GRAN);
	cr_expect(a.x[1].state == DMASVC_AUDIT_MISSING && a.x[1].iova == IOVA0 + GRAN &&
		  a.x[1].length == GRAN);
	cr_expect(a.x[2].state == DMASVC_AUDIT_OK && a.x[2].iova == IOVA0 + 2 * GRAN &&
		  a.x[2].length == 2 * GRAN);
	cr_expect(a.x[3].state == DMASVC_AUDIT_STRAY && a.x[3].iova == IOVA0 + 10 * GRAN &&
		  a.x[3].length == GRAN);
	cr_expect_eq(audit(r + 1, &a), -ENOENT);
	/* put the stray back under the service's control so teardown releases it */
	cr_assert_eq(d.ops->unmap(s->space, IOVA0 + 10 * GRAN, GRAN, &unmapped), 0);
	close_ring(&c);
}

Test(session, audit_pages_with_a_cursor)
{
	uint32_t mem = add_mem(512 * MB, 0), r;
	struct dmasvc_query q = { .what = DMASVC_QUERY_AUDIT };
	struct dmasvc_query_reply rep;
	static unsigned char records[QUERY_RECORD_BYTES];
	struct client_ring c;
	uint64_t total = 0, pages = 0, ok_bytes = 0;
	char err[256];

	/* budget 64: 256 KiB granules would need 2048 areas, so use the model without the test budget */
	cr_assert_eq(add_region(mem, 0, 512 * MB, IOVA0, 8 * MB, 0, &r, err), 0, "%s", err);
	open_ring(&c, 64, 64);
	for (int g = 0; g < 64; g += 2) /* every other granule: 32 separate extents */
		post(&c, DMASVC_OP_POPULATE, r, (uint64_t)g * 8 * MB, 8 * MB, (uint64_t)g);
	cr_assert_eq(ringsvc_ring_work(&d, s, c.rg, 16), 32);
	q.region_id = r;
	do {
		cr_assert_eq(query_run(&d, s, &q, &rep, records, err, sizeof(err)), 0, "%s", err);
		for (unsigned int i = 0; i < rep.count; i++) {
			struct dmasvc_audit_extent *x = (struct dmasvc_audit_extent *)records + i;

			cr_expect_eq(x->state, DMASVC_AUDIT_OK);
			ok_bytes += x->length;
		}
		total += rep.count;
		pages++;
		q.cursor = rep.next_cursor;
	} while (q.cursor);
	cr_expect_eq(total, 32);
	cr_expect_eq(ok_bytes, 32 * 8 * MB);
	cr_expect_eq(pages, 1, "32 extents fit one page");
	q.cursor = 4096;
	cr_expect_eq(query_run(&d, s, &q, &rep, records, err, sizeof(err)), -EINVAL, "cursor not aligned");
	close_ring(&c);
}

Test(session, queries_and_access)
{
	uint32_t mem = add_mem(16 * MB, 0), r;
	struct dmasvc_query q = { .what = DMASVC_QUERY_REGIONS, .flags = DMASVC_QUERY_F_ALL_SESSIONS };
	struct dmasvc_query_reply rep;
	static unsigned char records[QUERY_RECORD_BYTES];
	struct dmasvc_stat_region *reg = (struct dmasvc_stat_region *)records;
	struct dmasvc_stat_service *st = (struct dmasvc_stat_service *)records;
	struct client_ring c;
	char err[256];

	cr_assert_eq(add_region(mem, 0, 16 * MB, IOVA0, GRAN, 0, &r, err), 0, "%s", err);
	open_ring(&c, 8, 8);
	cr_expect_eq(one_event(&c, DMASVC_OP_POPULATE, r, 0, 6 * MB), 0);
	cr_assert_eq(query_run(&d, s, &q, &rep, records, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rep.count, 1);
	cr_expect_eq(rep.record_size, sizeof(*reg));
	cr_expect_eq(reg->region_id, r);
	cr_expect_eq(reg->session_id, s->id);
	cr_expect_eq(reg->populated_bytes, 6 * MB);
	cr_expect_eq(reg->mapped_bytes, 6 * MB);
	cr_expect_eq(reg->granule, GRAN);

	q.what = DMASVC_QUERY_STATUS;
	cr_assert_eq(query_run(&d, s, &q, &rep, records, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(st->backend, "soft");
	cr_expect_eq(st->sessions, 1);
	cr_expect_eq(st->areas, 3);
	cr_expect_eq(st->map_calls, 3);
	cr_expect_eq(st->events, 1);
	cr_expect_eq(st->pinned_bytes, 6 * MB);
	cr_expect_geq(st->vmlck_bytes, 6 * MB);
	cr_expect_gt(st->latency_p50_ns, 0);

	s->admin = false;
	cr_expect_eq(query_run(&d, s, &q, &rep, records, err, sizeof(err)), -EPERM);
	q.flags = 0;
	cr_expect_eq(query_run(&d, s, &q, &rep, records, err, sizeof(err)), 0, "own view is allowed");
	cr_expect_eq(st->sessions, 1);
	close_ring(&c);
}

Test(session, caps_and_devices)
{
	struct dmasvc_ring_setup req = { .sq_entries = 4096, .cq_entries = 4096 };
	struct dsvc_ring *rg;
	char err[256];
	int fds[3];
	uint32_t id;
	int memfd = make_memfd(4096, 0);

	for (unsigned int i = 0; i < OPT_DEFAULT_INFLIGHT / 4096; i++) {
		cr_assert_eq(session_ring_setup(&d, s, &req, &rg, fds, err, sizeof(err)), 0, "%s", err);
		close(fds[0]);
	}
	cr_expect_eq(session_ring_setup(&d, s, &req, &rg, fds, err, sizeof(err)), -ENOSPC);
	cr_expect(strstr(err, "cap max-inflight (--max-inflight) exceeded: requested 4096 SQ entries, in use 16384, cap 16384"), "%s", err);
	cr_expect_eq(session_device_attach(&d, s, memfd, &id, err, sizeof(err)), -EOPNOTSUPP);
	cr_expect(strstr(err, "--iommufd"), "the message says what to do: %s", err);
	close(memfd);
}

Test(session, teardown_unmaps_and_unpins)
{
	uint32_t mem = add_mem(32 * MB, 0), r;
	struct client_ring c;
	char err[256];

	cr_assert_eq(add_region(mem, 0, 32 * MB, IOVA0, GRAN, 0, &r, err), 0, "%s", err);
	open_ring(&c, 8, 8);
	post(&c, DMASVC_OP_POPULATE, r, 0, 4 * MB, 1);
	post(&c, DMASVC_OP_POPULATE, r, 8 * MB, 8 * MB, 2);
	cr_assert_eq(ringsvc_ring_work(&d, s, c.rg, 16), 2);
	cr_expect_eq(vmlck(), 12 * MB, "the model pins what is mapped");
	close_ring(&c);
	ringsvc_session_release(&d, s);
	session_destroy(&d, s);
	s = NULL;
	cr_expect_eq(vmlck(), 0);
	cr_expect_eq(d.gone.map_calls, 6, "freed sessions' counters are kept");
	cr_expect_eq(d.gone.unmap_calls, 2, "one coalesced unmap per populated run");
}

/* The last occurrence of @needle in @hay, or NULL. */
static const char *strrstr_last(const char *hay, const char *needle)
{
	const char *last = NULL;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		last = p;
	return last;
}

Test(session, complaints_are_rate_limited)
{
	int warn = 0;

	for (int i = 0; i < 100; i++)
		if (session_log_level(&d, s, DLOG_WARN) == DLOG_WARN)
			warn++;
	cr_expect_eq(warn, SESSION_LOG_BUDGET, "a flood of bad requests logs a bounded number of warnings");
	cr_expect_eq(session_log_level(&d, s, DLOG_INFO), DLOG_INFO, "info is never demoted");
}

/*
 * A client that reconnects gets a fresh session budget, not a fresh uid
 * budget: 10 sessions of one uid, one after the other, each complaining
 * 100 times within a second, log UID_LOG_BUDGET warnings in all (and one
 * line saying the rest go to debug); another uid has its own budget; the
 * next second refills both.  Before the uid budget: 10 x SESSION_LOG_BUDGET.
 */
Test(session, reconnecting_does_not_refill_the_uid_budget)
{
	struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	struct ucred other = { .pid = getpid(), .uid = getuid() + 1, .gid = getgid() };
	struct dsvc_session *t;
	int warn = 0, sp[2];

	for (int k = 0; k < 10; k++) {
		cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
		cr_assert_eq(session_create(&d, sp[0], &cred, false, &t), 0);
		for (int i = 0; i < 100; i++)
			warn += session_log_level(&d, t, DLOG_WARN) == DLOG_WARN;
		ringsvc_session_release(&d, t);
		session_destroy(&d, t); /* closes sp[0] */
		close(sp[1]);
	}
	cr_expect_eq(warn, UID_LOG_BUDGET, "10 reconnects: %d warnings, want the uid's %d", warn,
		     UID_LOG_BUDGET);
	fflush(lg.out);
	cr_expect(strstr(logtext, "more than 50 warning lines this second") &&
		  strstr(logtext, "more than 50 warning lines this second") ==
			  strrstr_last(logtext, "more than 50 warning lines this second"),
		  "one line says the rest go to debug level:\n%s", logtext);
	cr_expect_eq(session_log_level(&d, s, DLOG_WARN), DLOG_DEBUG, "s has the same uid: spent");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	cr_assert_eq(session_create(&d, sp[0], &other, false, &t), 0);
	cr_expect_eq(session_log_level(&d, t, DLOG_WARN), DLOG_WARN, "another uid: its own budget");
	session_log_tick(&d);
	cr_expect_eq(session_log_level(&d, s, DLOG_WARN), DLOG_WARN, "the next second: refilled");
	ringsvc_session_release(&d, t);
	session_destroy(&d, t);
	close(sp[1]);
}

/*
 * Session ids stay unique when the 32-bit counter wraps, and 0 (a query's
 * "the caller") is never one (found by review: a new session took a live
 * session's id; completions are reaped by id, so the first one's burst was
 * reaped for the other and it stayed busy for good).
 */
Test(session, ids_stay_unique_when_the_counter_wraps)
{
	struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	struct dsvc_session *t, *u;
	int sp[2], sq[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sq), 0);
	d.next_session_id = s->id - 1; /* the counter's next value is s's id */
	cr_assert_eq(session_create(&d, sp[0], &cred, false, &t), 0);
	cr_expect_neq(t->id, s->id, "a new session took live session %u's id", s->id);
	cr_expect_eq(session_find_any(&d, t->id), t);
	d.next_session_id = UINT32_MAX; /* wraps to 0, then to s's and t's ids if they are 1, 2 */
	cr_assert_eq(session_create(&d, sq[0], &cred, false, &u), 0);
	cr_expect(u->id != 0 && u->id != s->id && u->id != t->id, "ids s %u t %u u %u", s->id, t->id,
		  u->id);
	cr_expect_eq(session_find_any(&d, u->id), u);
	ringsvc_session_release(&d, u);
	session_destroy(&d, u);
	ringsvc_session_release(&d, t);
	session_destroy(&d, t);
	close(sp[1]);
	close(sq[1]);
}

/* Dispatch one decoded request; returns the reply's error and copies its text. */
static int dispatch(struct ctl_request *req, char *text, struct dispatch_out *out)
{
	static unsigned char buf[DMASVC_MSG_MAX];
	struct dmasvc_msg_hdr h;
	ssize_t n = dispatch_request(&d, s, req, buf, out);

	cr_assert_gt(n, (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	cr_assert_eq(h.size, n);
	cr_assert_eq(buf[n - 1], '\0');
	/* the text is the last NUL-terminated string: scan back from the end */
	{
		ssize_t i = n - 2;

		while (i >= (ssize_t)sizeof(h) && buf[i] != '\0')
			i--;
		snprintf(text, 256, "%s", (char *)buf + i + 1);
	}
	return -(int)h.error;
}

Test(session, every_request_gets_a_reply_with_a_message)
{
	struct ctl_request req = { .cmd = DMASVC_CMD_MEMORY_ADD, .msg_id = 1, .hdr_ok = true };
	struct dispatch_out out;
	char text[256];
	int fd = make_memfd(4 * MB, F_SEAL_SHRINK);

	req.fd = fd;
	req.u.memory_add.size = 4 * MB;
	cr_expect_eq(dispatch(&req, text, &out), -EPROTO, "HELLO must come first");
	cr_expect(out.disconnect);
	cr_expect(strstr(text, "HELLO"), "%s", text);
	cr_expect(!fd_is_open(fd), "the request's fd is closed");

	req = (struct ctl_request){ .cmd = DMASVC_CMD_HELLO, .msg_id = 2, .hdr_ok = true, .fd = -1 };
	req.u.hello.major = DMASVC_PROTO_MAJOR;
	cr_expect_eq(dispatch(&req, text, &out), 0);
	cr_expect(strstr(text, "session"), "%s", text);
	cr_expect_eq(dispatch(&req, text, &out), -EINVAL, "a second HELLO");

	req = (struct ctl_request){ .cmd = DMASVC_CMD_MEMORY_ADD, .msg_id = 3, .hdr_ok = true };
	req.fd = make_memfd(4 * MB, F_SEAL_SHRINK);
	req.u.memory_add.size = 4 * MB;
	cr_expect_eq(dispatch(&req, text, &out), 0);
	cr_expect(strstr(text, "0x400000 bytes mapped"), "%s", text);

	req = (struct ctl_request){ .cmd = DMASVC_CMD_REGION_REMOVE, .msg_id = 4, .hdr_ok = true, .fd = -1 };
	req.u.region_remove.region_id = 77;
	cr_expect_eq(dispatch(&req, text, &out), -ENOENT);
	cr_expect(strstr(text, "REGION_REMOVE: no region 77"), "%s", text);
	cr_expect(!out.disconnect);
}

Test(session, memory_and_region_caps)
{
	struct dmasvc_memory_add req = { .size = 4096 };
	uint32_t mem = 0, id;
	char err[256];
	int fd;

	gran_budget_init(&s->budget, 0); /* unlimited: the count caps must bite first */
	for (int i = 0; i < SESSION_MAX_MEMORIES; i++)
		mem = add_mem(4096 * 256, 0);
	fd = make_memfd(4096, F_SEAL_SHRINK);
	cr_expect_eq(session_memory_add(&d, s, fd, &req, &id, err, sizeof(err)), -EMFILE);
	cr_expect(strstr(err, "256"), "%s", err);
	close(fd); /* on failure the caller keeps the fd */
	for (int i = 0; i < (int)OPT_DEFAULT_REGIONS; i++) {
		cr_assert_eq(add_region(mem, (uint64_t)(i % 256) * 4096, 4096,
					(1ull << 32) + (uint64_t)i * 4096, 4096, 0, &id, err), 0,
			     "region %d: %s", i, err);
	}
	cr_expect_eq(add_region(mem, 0, 4096, 1ull << 40, 4096, 0, &id, err), -EMFILE);
	cr_expect(strstr(err, "1024"), "%s", err);
}

/* Random SQEs: the validator answers only with the documented results, and
 * every accepted event lies inside its region. */
Test(session, random_sqes_validate_safely)
{
	uint32_t mem = add_mem(64 * MB, 0), r[2];
	unsigned int seed = (unsigned int)time(NULL);
	char err[256];

	gran_budget_init(&s->budget, 0); /* unlimited: a 4 KiB-granule region below */
	cr_assert_eq(add_region(mem, 0, 32 * MB, IOVA0, GRAN, 0, &r[0], err), 0, "%s", err);
	cr_assert_eq(add_region(mem, 32 * MB, 32 * MB, 2 * IOVA0, 4096, 0, &r[1], err), 0, "%s", err);
	srand(seed);
	for (int i = 0; i < 200000; i++) {
		static const uint64_t lens[] = { 0, 4096, GRAN, 32 * MB, 64 * MB, UINT64_MAX };
		struct dmasvc_sqe e = {
			.opcode = (uint8_t)(rand() % 4),
			.flags = (uint8_t)(rand() % 16 ? 0 : rand()),
			.__reserved = (uint16_t)(rand() % 16 ? 0 : rand()),
			.region_id = rand() % 8 ? r[rand() % 2] : (uint32_t)rand(),
			.offset = rand() % 2 ? (uint64_t)(rand() % 64) * 4096 * (rand() % 2 ? 512 : 1)
					     : ((uint64_t)rand() << 32 | (uint64_t)rand()),
			.length = rand() % 2 ? lens[rand() % 6] : (uint64_t)rand() * 4096,
		};
		struct gran_event ev;
		int v = ringsvc_sqe_validate(&e, s, &ev);

		cr_assert(v == 1 || v == 0 || v == -EINVAL || v == -ERANGE || v == -ENOENT,
			  "seed %u: result %d", seed, v);
		if (v == 1) {
			cr_assert_geq(ev.count, 1);
			cr_assert_leq(ev.first + ev.count, gran_region_nr_granules(ev.region),
				      "seed %u: event beyond its region", seed);
			cr_assert((e.flags & ~DMASVC_SQE_REPLAY) == 0 && e.__reserved == 0 &&
				  e.opcode != DMASVC_OP_NOP);
		}
		if (v == 0)
			cr_assert_eq(e.opcode, DMASVC_OP_NOP);
	}
}

/* gran_region_for_each_run callback: mark a run's granules in a bool map. */
struct mark_ctx {
	bool set[64];
	uint64_t n;
};

static int mark_run(void *arg, struct gran_region *r, uint64_t first, uint64_t count)
{
	struct mark_ctx *m = arg;

	(void)r;
	for (uint64_t g = first; g < first + count && g < m->n; g++)
		m->set[g] = true;
	return 0;
}

/*
 * The populated-bytes cap against a sequential model: random bursts of
 * up to @maxn populates and discards over two regions (32 granules of 4 KiB
 * each) on one ring of @sq entries, @rounds times, under a random cap.  The model applies the events in order on
 * its own bitmaps: a populate whose not-yet-populated granules would take
 * the total over the cap is -EDQUOT and changes nothing, everything else
 * succeeds.  Every CQE, the regions' state and the session's mapped bytes
 * must match it after every burst.
 */
static void cap_model(uint32_t sq, int maxn, int rounds)
{
	enum { NG = 32 }; /* 2 x 32 areas: within the model's BUDGET */
	uint32_t mem = add_mem(2 * NG * 4096, 0), r[2];
	bool model[2][NG] = { { false } };
	unsigned int seed = (unsigned int)time(NULL);
	struct client_ring c;
	uint64_t pop = 0, refused = 0, admitted = 0;
	char err[256];

	cr_log_info("seed %u", seed);
	gran_budget_init(&s->budget, 0); /* unlimited: 128 granules of 4 KiB */
	for (int i = 0; i < 2; i++)
		cr_assert_eq(add_region(mem, (uint64_t)i * NG * 4096, NG * 4096, IOVA0 + (uint64_t)i * NG * 4096,
					4096, 0, &r[i], err), 0, "%s", err);
	open_ring(&c, sq, 2 * sq);
	for (int round = 0; round < rounds; round++) {
		struct dmasvc_cqe cqe[1024];
		int32_t want[1024];
		int n = 1 + rand_r(&seed) % maxn;

		s->cap[OPT_CAP_POPULATED] = (uint64_t)(rand_r(&seed) % (2 * NG + 1)) * 4096;
		for (int e = 0; e < n; e++) {
			int k = rand_r(&seed) % 2, first = rand_r(&seed) % NG;
			int count = 1 + rand_r(&seed) % (rand_r(&seed) % 4 ? 4 : NG - first);
			bool populate = rand_r(&seed) % 3 != 0;
			uint64_t add = 0;

			if (first + count > NG)
				count = NG - first;
			for (int g = first; g < first + count; g++)
				add += model[k][g] == populate ? 0 : 4096;
			want[e] = 0;
			if (populate && add && pop + add > s->cap[OPT_CAP_POPULATED]) {
				want[e] = -EDQUOT;
				refused++;
			} else {
				for (int g = first; g < first + count; g++)
					model[k][g] = populate;
				pop = populate ? pop + add : pop - add;
				admitted += populate;
			}
			post(&c, populate ? DMASVC_OP_POPULATE : DMASVC_OP_DISCARD, r[k],
			     (uint64_t)first * 4096, (uint64_t)count * 4096, (uint64_t)e);
		}
		run_and_reap(&c, cqe, n);
		for (int e = 0; e < n; e++)
			cr_assert_eq(cqe[e].res, want[cqe[e].user_data], "round %d event %llu: %d, model %d",
				     round, (unsigned long long)cqe[e].user_data, cqe[e].res,
				     want[cqe[e].user_data]);
		for (int k = 0; k < 2; k++) {
			struct mark_ctx m = { .n = NG };

			gran_region_for_each_run(session_region(s, r[k])->gr, 0, NG, mark_run, &m);
			for (int g = 0; g < NG; g++)
				cr_assert_eq(m.set[g], model[k][g], "round %d region %d granule %d", round, k, g);
		}
		cr_assert_eq(session_usage(s).mapped_bytes, pop, "round %d", round);
	}
	cr_log_info("%llu populates admitted, %llu refused", (unsigned long long)admitted,
		    (unsigned long long)refused);
	cr_assert_gt(refused, 10, "the cap was reached");
	cr_assert_gt(admitted, 100);
}

Test(session, populated_cap_matches_a_sequential_model)
{
	cap_model(128, 48, 150);
}

/*
 * The same with bursts of up to 900 events (one burst is a whole SQ since
 * issue 16, 1024 entries here): the cap's overlay of the events before
 * each one (caps.c) stays exact over hundreds of overlapping events.
 */
Test(session, populated_cap_matches_a_sequential_model_in_bursts_of_hundreds)
{
	cap_model(1024, 900, 30);
}

/* Whether the 4 KiB page of memory @mem at @off is in memory (mincore). */
static bool resident(uint32_t mem, uint64_t off)
{
	unsigned char v = 0;

	cr_assert_eq(mincore((char *)session_memory(s, mem)->vaddr + off, 4096, &v), 0);
	return v & 1;
}

/*
 * The residency rule (docs/design.md, "Who allocates guest memory"): a
 * populate over a page that is not in memory is refused with -ENXIO, maps
 * and pins nothing, faults nothing in, and the log names the region's
 * range and the first absent page; a prefaulted range maps; with
 * --allow-fault-in the service faults the hole in itself (a memory added
 * with it set: the option is the daemon's, fixed at start, and decides
 * whether a memory's holes are guarded).  The model pins through the
 * guarded mapping, so here the pin refuses the hole (memory_priv.h); a
 * read-only memory has no guard, and mincore() refuses it before the plan.
 * (Failed on the service before the rule: the hole populated with 0.)
 */
Test(session, populate_of_a_hole_is_refused_unless_fault_in_is_allowed)
{
	uint32_t mem = add_mem(16 * MB, 0), r, ro, r2, fi, r3;
	struct client_ring c;
	struct dmasvc_cqe cqe;
	char err[256];

	cr_assert_eq(add_region(mem, 4 * MB, 8 * MB, IOVA0, GRAN, 0, &r, err), 0, "%s", err);
	open_ring(&c, 8, 8);
	/* granule 0 and the first half of granule 1 are in memory; then a hole */
	prefault(r, 0, GRAN + GRAN / 2);
	post_raw(&c, DMASVC_OP_POPULATE, r, 0, 2 * GRAN, 1);
	run_and_reap(&c, &cqe, 1);
	cr_expect_eq(cqe.res, -ENXIO);
	cr_expect(!mapped(IOVA0) && !mapped(IOVA0 + GRAN), "nothing of a refused populate is mapped");
	cr_expect_eq(vmlck(), 0, "nothing pinned");
	cr_expect(!resident(mem, 4 * MB + GRAN + GRAN / 2), "the check faulted nothing in");
	fflush(lg.out);
	cr_expect(strstr(logtext, "populate of [0x0, 0x400000) refused (-6)") &&
		  strstr(logtext, "memory offset 0x700000 is not in memory (a hole)") &&
		  strstr(logtext, "--allow-fault-in"), "log: %s", logtext);

	post_raw(&c, DMASVC_OP_POPULATE, r, 0, GRAN, 2);
	run_and_reap(&c, &cqe, 1);
	cr_expect_eq(cqe.res, 0, "a prefaulted granule maps");
	cr_expect(mapped(IOVA0));

	cr_expect(session_memory(s, mem)->guarded, "the model's memory is guarded");

	ro = add_mem(16 * MB, DMASVC_MEMORY_READONLY);
	cr_expect(!session_memory(s, ro)->guarded, "a read-only memory is not");
	cr_assert_eq(add_region(ro, 0, 8 * MB, IOVA0 + 64 * MB, GRAN, DMASVC_REGION_READONLY, &r2, err),
		     0, "%s", err);
	post_raw(&c, DMASVC_OP_POPULATE, r2, 0, GRAN, 4);
	run_and_reap(&c, &cqe, 1);
	cr_expect_eq(cqe.res, -ENXIO, "mincore() refuses a hole of an unguarded memory");
	cr_expect(!mapped(IOVA0 + 64 * MB) && !resident(ro, 0));

	opt.allow_fault_in = true;
	fi = add_mem(16 * MB, 0);
	cr_expect(!session_memory(s, fi)->guarded, "no guard with --allow-fault-in");
	cr_assert_eq(add_region(fi, 0, 8 * MB, IOVA0 + 128 * MB, GRAN, 0, &r3, err), 0, "%s", err);
	post_raw(&c, DMASVC_OP_POPULATE, r3, 0, 3 * GRAN, 3);
	run_and_reap(&c, &cqe, 1);
	cr_expect_eq(cqe.res, 0, "--allow-fault-in: the service faults the hole in");
	cr_expect(mapped(IOVA0 + 128 * MB + 2 * GRAN) && resident(fi, 2 * GRAN));
	cr_expect_eq(vmlck(), 4 * GRAN);
	opt.allow_fault_in = false;
	close_ring(&c);
}

/*
 * The cap's cost is bounded for a whole-SQ burst: 2048 one-granule discards
 * of every other granule, then 2048 populates of the whole region (never
 * faulted in: holes, judged by the cap all the same), a session at its cap.
 * Judged in 0.19 s here; the recursion the overlay replaced took 7.2 s for
 * this burst (O(n^3)), on the session's executor.  The bound, 3 s, leaves
 * room for a loaded host and the sanitizers.
 */
Test(session, a_whole_sq_burst_at_the_cap_is_judged_in_bounded_time)
{
	enum { NG = 8192, N = 4096 };
	uint32_t mem = add_mem((uint64_t)NG * 4096, 0), r;
	struct client_ring c;
	static struct dmasvc_cqe cqe[N];
	struct timespec t0, t1;
	char err[256];
	double ms;

	gran_budget_init(&s->budget, 0);
	cr_assert_eq(add_region(mem, 0, (uint64_t)NG * 4096, IOVA0, 4096, 0, &r, err), 0, "%s", err);
	open_ring(&c, N, 2 * N);
	s->cap[OPT_CAP_POPULATED] = 4096;
	for (int i = 0; i < N / 2; i++)
		post_raw(&c, DMASVC_OP_DISCARD, r, (uint64_t)(2 * i) * 4096, 4096, (uint64_t)i);
	for (int i = N / 2; i < N; i++)
		post_raw(&c, DMASVC_OP_POPULATE, r, 0, (uint64_t)NG * 4096, (uint64_t)i);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_and_reap(&c, cqe, N);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	cr_log_info("a burst of %d events at the cap: %.1f ms", N, ms);
	for (int i = 0; i < N; i++)
		cr_assert(cqe[i].user_data < N / 2 ? cqe[i].res == 0 : cqe[i].res < 0,
			  "event %llu: %d", (unsigned long long)cqe[i].user_data, cqe[i].res);
	cr_expect_lt(ms, 3000.0, "a burst of %d events at the cap took %.0f ms", N, ms);
}

/* be_ops.pins_vaddr_at_map of a backend that reads its space (iommufd does). */
static bool pins_reads_space(struct be_space *space)
{
	cr_assert_not_null(space, "pins_vaddr_at_map asked of a session with no space");
	return true;
}

/*
 * A session with no space yet (the lazy space: it comes with the first
 * region or device) that posts only invalid SQEs gets its completions,
 * and the backend is not asked about a space it does not have.  (Failed
 * before the guard's first version was mended: burst_run asked
 * pins_vaddr_at_map(NULL), which on iommufd reads the space: a crash any
 * client could cause.)
 */
Test(session, invalid_sqes_of_a_session_without_a_space)
{
	struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	struct be_ops ops = be_soft_ops;
	struct client_ring c;
	struct dmasvc_cqe cqe;
	int sp[2];

	ringsvc_session_release(&d, s);
	session_destroy(&d, s);
	close(peer_fd);
	ops.pins_vaddr_at_map = pins_reads_space;
	d.ops = &ops;
	d.lazy_space = true;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	peer_fd = sp[1];
	cr_assert_eq(session_create(&d, sp[0], &cred, true, &s), 0);
	cr_assert_null(s->space);
	open_ring(&c, 8, 8);
	post_raw(&c, DMASVC_OP_POPULATE, 999, 0, GRAN, 7);
	run_and_reap(&c, &cqe, 1);
	cr_expect_eq(cqe.user_data, 7);
	cr_expect_lt(cqe.res, 0, "an SQE naming no region fails: %d", cqe.res);
	cr_expect_null(s->space);
	close_ring(&c);
	ringsvc_session_release(&d, s);
	session_destroy(&d, s);
	s = NULL;
	d.ops = &be_soft_ops;
	d.lazy_space = false;
}
