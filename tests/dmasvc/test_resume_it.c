/* SPDX-License-Identifier: MIT */
/*
 * test_resume_it.c - session tokens and resume (docs/restart.md,
 * docs/protocol.md "Resume") on the software model:
 *   - HELLO: the old 16-byte HELLO gets the 32-byte reply; a minor-2 HELLO
 *     gets flags and an all-zero token on the model (not resumable); RESUME
 *     with a wrong or zero token is ESTALE and the same connection may then
 *     say a plain HELLO; bad flags and RESUME at minor 1 are EINVAL;
 *   - dmasvc_reconnect after the daemon is SIGKILLed and restarted falls
 *     back to a fresh session and replays it, the complement DISCARDs
 *     making no unmap call;
 *   - with the test hook DMASVC_TEST_ORPHAN_ON_HANGUP=1 (a session whose
 *     socket hangs up becomes an orphan, as a restart's adoption makes it):
 *     resume with the token (same session id, same region ids, no map or
 *     unmap call), the claim of a region of another shape (unmapped,
 *     logged), an unclaimed region removed at RING_SETUP, and replay
 *     repairs (log lines and counters).
 * A token of another uid cannot be tried here without a second uid (the
 * tests run unprivileged as one user): the uid compare is exercised by
 * every match and is not tested on its own.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dmasvc/ring.h"

#include "it_util.h"

#define MiB (1ull << 20)
#define G (2 * MiB)

static struct it_svc svc;
static char logpath[128];

static void stop(void)
{
	int rc = it_svc_finish(&svc);

	cr_expect_eq(rc, 0, "dmasvc exits 0 on SIGTERM (got %d)", rc);
	unsetenv("DMASVC_TEST_ORPHAN_ON_HANGUP");
	if (logpath[0])
		unlink(logpath);
}

/* Start the daemon with its stderr (the log) in a file we can read. */
static void start_logged(void)
{
	int saved = dup(2), fd;

	if (!svc.dir[0]) {
		snprintf(svc.dir, sizeof(svc.dir), "/tmp/dmasvc-it.XXXXXX");
		cr_assert_not_null(mkdtemp(svc.dir));
		snprintf(svc.sock, sizeof(svc.sock), "%s/dmasvc.sock", svc.dir);
	}
	snprintf(logpath, sizeof(logpath), "%s/log", svc.dir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_geq(dup2(fd, 2), 0);
	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	dup2(saved, 2);
	close(saved);
	close(fd);
}

static void start_plain(void)
{
	cr_assert_eq(it_svc_start(&svc, NULL), 0);
}

static void start_hook(void)
{
	setenv("DMASVC_TEST_ORPHAN_ON_HANGUP", "1", 1);
	start_logged();
}

/* Lines of the daemon's log containing @needle. */
static int log_count(const char *needle)
{
	char line[1024];
	int n = 0;
	FILE *f = fopen(logpath, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

/* ---- raw HELLO ---------------------------------------------------------- */

struct hello_out {
	struct dmasvc_msg_hdr hdr;
	unsigned char body[512];
};

/* Send a HELLO of @len bytes; returns the reply's errno (0 ok). */
static int hello_raw(int fd, const struct dmasvc_hello *h, uint32_t len, struct hello_out *o)
{
	cr_assert_eq(it_raw_send(fd, DMASVC_CMD_HELLO, 7, h, len, NULL, 0), 0);
	return it_raw_recv(fd, &o->hdr, o->body, sizeof(o->body), NULL, NULL, 2000);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

Test(resume, old_16_byte_hello_gets_32_byte_reply, .init = start_plain, .fini = stop)
{
	struct dmasvc_hello h = { .major = DMASVC_PROTO_MAJOR, .minor = 1, .client_tag = 5 };
	struct dmasvc_hello_reply rep;
	struct hello_out o;
	int fd = it_raw_connect(svc.sock);

	cr_assert_geq(fd, 0);
	cr_assert_eq(hello_raw(fd, &h, DMASVC_HELLO_V1_SIZE, &o), 0);
	memcpy(&rep, o.body, sizeof(rep));
	cr_assert_eq(rep.minor, 1, "minor agreed: %u", rep.minor);
	cr_assert_gt(rep.session_id, 0);
	/* the text starts right after a 32-byte struct */
	cr_assert_eq(o.hdr.size, sizeof(o.hdr) + DMASVC_HELLO_REPLY_V1_SIZE +
				 strlen((char *)o.body + DMASVC_HELLO_REPLY_V1_SIZE) + 1);
	cr_assert(strncmp((char *)o.body + DMASVC_HELLO_REPLY_V1_SIZE, "session ", 8) == 0,
		  "text at offset 32: '%.20s'", o.body + DMASVC_HELLO_REPLY_V1_SIZE);
	close(fd);
}

Test(resume, minor2_hello_on_the_model_gets_zero_token, .init = start_plain, .fini = stop)
{
	struct dmasvc_hello h = { .major = DMASVC_PROTO_MAJOR, .minor = 2 };
	struct dmasvc_hello_reply rep;
	struct hello_out o;
	int fd = it_raw_connect(svc.sock);

	cr_assert_eq(hello_raw(fd, &h, sizeof(h), &o), 0);
	memcpy(&rep, o.body, sizeof(rep));
	cr_assert_eq(rep.minor, 2);
	cr_assert_eq(o.hdr.size, sizeof(o.hdr) + sizeof(rep) + strlen((char *)o.body + sizeof(rep)) + 1);
	cr_assert_eq(rep.flags, 0);
	cr_assert(all_zero(rep.token, sizeof(rep.token)), "the model is not resumable: no token");
	close(fd);
}

Test(resume, bad_hello_flags_and_resume_at_minor1, .init = start_plain, .fini = stop)
{
	struct dmasvc_hello h = { .major = DMASVC_PROTO_MAJOR, .minor = 2, .flags = 2 };
	struct hello_out o;
	int fd = it_raw_connect(svc.sock);

	cr_assert_eq(hello_raw(fd, &h, sizeof(h), &o), EINVAL, "unknown flag");
	h.flags = DMASVC_HELLO_RESUME;
	h.minor = 1;
	h.token[0] = 1;
	cr_assert_eq(hello_raw(fd, &h, sizeof(h), &o), EINVAL, "RESUME at minor 1");
	h.flags = 0;
	h.minor = 2;
	cr_assert_eq(hello_raw(fd, &h, sizeof(h), &o), EINVAL, "a token without RESUME");
	h.token[0] = 0;
	cr_assert_eq(hello_raw(fd, &h, sizeof(h), &o), 0, "then a plain HELLO works");
	close(fd);
}

Test(resume, wrong_or_zero_token_is_estale_then_plain_hello, .init = start_plain, .fini = stop)
{
	struct dmasvc_hello h = { .major = DMASVC_PROTO_MAJOR, .minor = 2, .flags = DMASVC_HELLO_RESUME };
	struct dmasvc_hello_reply rep;
	struct hello_out o;
	int fd = it_raw_connect(svc.sock);

	cr_assert_eq(hello_raw(fd, &h, sizeof(h), &o), ESTALE, "zero token");
	memset(h.token, 0xa5, sizeof(h.token));
	cr_assert_eq(hello_raw(fd, &h, sizeof(h), &o), ESTALE, "wrong token");
	cr_assert(strstr((char *)o.body, "no session to resume"), "text: %s", o.body);
	cr_assert_not(it_peer_closed(fd, 50), "ESTALE keeps the connection");
	h.flags = 0;
	memset(h.token, 0, sizeof(h.token));
	cr_assert_eq(hello_raw(fd, &h, sizeof(h), &o), 0, "a plain HELLO on the same connection");
	memcpy(&rep, o.body, sizeof(rep));
	cr_assert_eq(rep.flags, 0);
	cr_assert_gt(rep.session_id, 0);
	close(fd);
}

/* ---- libdmasvc -------------------------------------------------------- */

struct reg {
	int id, mem;
	int fd;
	uint64_t size, iova;
};

static void reg_add(struct dmasvc_client *c, struct reg *r, uint64_t size, uint64_t iova)
{
	struct dmasvc_region_desc d = { .size = size, .iova = iova, .granule = G };

	r->size = size;
	r->iova = iova;
	r->fd = it_memfd(size, true);
	cr_assert_eq(it_memfd_prefault(r->fd, 0, size), 0);
	r->mem = dmasvc_memory_add(c, r->fd, size, 0);
	cr_assert_geq(r->mem, 0, "%s", dmasvc_last_error(c));
	d.mem_id = (uint32_t)r->mem;
	r->id = dmasvc_region_add(c, &d);
	cr_assert_geq(r->id, 0, "%s", dmasvc_last_error(c));
}

/* This client's own session record. */
static struct dmasvc_stat_session own_session(struct dmasvc_client *c)
{
	struct dmasvc_stat_session st;

	memset(&st, 0, sizeof(st));
	cr_assert_eq(dmasvc_query(c, DMASVC_QUERY_SESSIONS, 0, 0, &st, sizeof(st), 1), 1);
	return st;
}

/* Session @sid's record through an admin connection of its own; false when absent. */
static bool session_record(uint32_t sid, struct dmasvc_stat_session *out)
{
	struct dmasvc_stat_session st[16];
	struct dmasvc_client *q;
	bool found = false;
	int n;

	cr_assert_eq(dmasvc_connect_query_only(svc.sock, NULL, &q), 0);
	n = dmasvc_query(q, DMASVC_QUERY_SESSIONS, DMASVC_QUERY_F_ALL_SESSIONS, 0, st, sizeof(st[0]), 16);
	cr_assert_geq(n, 0);
	for (int i = 0; i < n; i++)
		if (st[i].session_id == sid) {
			*out = st[i];
			found = true;
		}
	dmasvc_disconnect(q);
	return found;
}

static void check_equal(struct dmasvc_client *c, struct reg *regs, int n)
{
	char why[256];

	for (int i = 0; i < n; i++)
		cr_assert_eq(it_check_region(c, (uint32_t)regs[i].id, regs[i].iova, why, sizeof(why)), 0,
			     "region %d: %s", i, why);
}

/* A pattern: granules 0-3 and 8 of region 0, 2-5 of region 1. */
static void populate_pattern(struct dmasvc_client *c, struct reg *regs)
{
	cr_assert_eq(dmasvc_populate(c, (uint32_t)regs[0].id, 0, 4 * G), 0);
	cr_assert_eq(dmasvc_populate(c, (uint32_t)regs[0].id, 8 * G, G), 0);
	cr_assert_eq(dmasvc_populate(c, (uint32_t)regs[1].id, 2 * G, 4 * G), 0);
}

Test(resume, reconnect_on_the_model_falls_back_and_replays, .init = start_plain, .fini = stop)
{
	struct dmasvc_client *c;
	struct reg regs[2];
	struct dmasvc_stat_session st;
	uint32_t old_sid;

	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	cr_assert_not(dmasvc_resumable(c), "the model's zero token: not resumable");
	cr_assert_not(dmasvc_resumable(NULL));
	reg_add(c, &regs[0], 32 * MiB, 1ull << 30);
	reg_add(c, &regs[1], 16 * MiB, 2ull << 30);
	populate_pattern(c, regs);
	old_sid = dmasvc_session_id(c);
	it_svc_kill(&svc);
	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	cr_assert_eq(dmasvc_reconnect(c), 0, "%s", dmasvc_last_error(c));
	cr_assert_not(dmasvc_resumed(c), "the model keeps nothing: a fresh session");
	(void)old_sid; /* a new instance counts from 1 again: the id says nothing */
	check_equal(c, regs, 2);
	st = own_session(c);
	/* populated runs: 2 in region 0, 1 in region 1; the complement: 2 + 2 discards */
	cr_assert_eq(st.map_calls, 4 + 1 + 4, "one map per granule populated (%llu)",
		     (unsigned long long)st.map_calls);
	cr_assert_eq(st.unmap_calls, 0, "the complement DISCARDs unmap nothing (%llu calls)",
		     (unsigned long long)st.unmap_calls);
	cr_assert_eq(st.events, 3 + 4, "3 populates and 4 discards replayed (%llu)",
		     (unsigned long long)st.events);
	cr_assert_eq(st.events_failed, 0);
	cr_assert_eq(st.resume_repair_maps + st.resume_repair_unmaps, 0, "not resumed: no repair");
	/* the client goes on */
	cr_assert_eq(dmasvc_discard(c, (uint32_t)regs[0].id, 0, 2 * G), 0);
	check_equal(c, regs, 2);
	dmasvc_disconnect(c);
	for (int i = 0; i < 2; i++)
		close(regs[i].fd);
}

/*
 * The control socket of a client connected just now: the one SEQPACKET
 * socket in @after that was not open in @before (fd sets as bitmaps).
 */
static int seqpacket_fds(unsigned char *set, size_t n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	memset(set, 0, n);
	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name), type = 0;
		socklen_t len = sizeof(type);

		if (e->d_name[0] == '.' || fd < 0 || (size_t)fd >= n)
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET)
			set[fd] = 1;
	}
	closedir(d);
	return 0;
}

static int connect_tracked(struct dmasvc_client **c)
{
	unsigned char before[1024], after[1024];
	int sock = -1;

	seqpacket_fds(before, sizeof(before));
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, c), 0);
	seqpacket_fds(after, sizeof(after));
	for (int i = 0; i < 1024; i++)
		if (after[i] && !before[i]) {
			cr_assert_eq(sock, -1, "one new socket");
			sock = i;
		}
	cr_assert_geq(sock, 0);
	return sock;
}

/* The client's connection breaks (the service's view of a crash); wait until the session is an orphan (its ring freed). */
static void hang_up(int sock, uint32_t sid)
{
	struct dmasvc_stat_session st;

	cr_assert_eq(shutdown(sock, SHUT_RDWR), 0);
	for (int i = 0; i < 500; i++) {
		cr_assert(session_record(sid, &st), "session %u is kept, not torn down", sid);
		if (st.rings == 0)
			return;
		usleep(10000);
	}
	cr_assert_fail("session %u not orphaned within 5 s", sid);
}

Test(resume, resume_same_session_maps_nothing, .init = start_hook, .fini = stop)
{
	struct dmasvc_client *c;
	struct dmasvc_stat_session before, after;
	struct reg regs[2];
	uint32_t sid;
	int sock;

	sock = connect_tracked(&c);
	reg_add(c, &regs[0], 32 * MiB, 1ull << 30);
	reg_add(c, &regs[1], 16 * MiB, 2ull << 30);
	populate_pattern(c, regs);
	sid = dmasvc_session_id(c);
	before = own_session(c);
	cr_assert(dmasvc_resumable(c), "a non-zero token and a socket path: resumable");
	cr_assert_eq(dmasvc_control_fd(c), sock, "the control fd is the connection's socket");
	hang_up(sock, sid);
	{
		char b;

		/* what a VMM polling the fd sees: a hangup, no call needed */
		cr_assert_eq(recv(dmasvc_control_fd(c), &b, 1, MSG_PEEK | MSG_DONTWAIT), 0,
			     "the hangup reads as EOF");
	}
	cr_assert(dmasvc_resumable(c), "still resumable once the connection is gone");
	cr_assert_eq(dmasvc_reconnect(c), 0, "%s", dmasvc_last_error(c));
	cr_assert(dmasvc_resumed(c), "resumed with the token");
	cr_assert(dmasvc_resumable(c), "the resumed session's token: resumable again");
	cr_assert_geq(dmasvc_control_fd(c), 0, "a new control fd");
	cr_assert_eq(dmasvc_control_fd(NULL), -1);
	cr_assert_eq(dmasvc_session_id(c), sid, "the same session");
	check_equal(c, regs, 2); /* QUERY REGIONS translates the service's ids: same ones kept */
	after = own_session(c);
	cr_assert_eq(after.map_calls, before.map_calls, "the resume mapped nothing (%llu -> %llu)",
		     (unsigned long long)before.map_calls, (unsigned long long)after.map_calls);
	cr_assert_eq(after.unmap_calls, before.unmap_calls, "and unmapped nothing");
	cr_assert_eq(after.regions, 2);
	cr_assert_eq(after.resume_repair_maps + after.resume_repair_unmaps, 0);
	cr_assert_eq(log_count("resume: session"), 0, "no repair line");
	/* and it goes on like any session */
	cr_assert_eq(dmasvc_discard(c, (uint32_t)regs[0].id, 0, 4 * G), 0);
	cr_assert_eq(dmasvc_populate(c, (uint32_t)regs[1].id, 0, G), 0);
	check_equal(c, regs, 2);
	dmasvc_disconnect(c);
	for (int i = 0; i < 2; i++)
		close(regs[i].fd);
}

/* ---- raw resume: claim mismatch, phase end, repairs -------------------- */

struct raw {
	int sock;
	uint32_t sid, mem, region;
	uint8_t token[DMASVC_TOKEN_LEN];
	struct ring_fds fds;
	struct ring_mapping map;
	struct ring_sq_producer sq;
	struct ring_cq_consumer cq;
};

static int raw_hello(struct raw *r, const uint8_t *token)
{
	struct dmasvc_hello h = { .major = DMASVC_PROTO_MAJOR, .minor = 2 };
	struct dmasvc_hello_reply rep;
	struct hello_out o;
	int ret;

	if (token) {
		h.flags = DMASVC_HELLO_RESUME;
		memcpy(h.token, token, sizeof(h.token));
	}
	ret = hello_raw(r->sock, &h, sizeof(h), &o);
	if (ret)
		return ret;
	memcpy(&rep, o.body, sizeof(rep));
	r->sid = rep.session_id;
	memcpy(r->token, rep.token, sizeof(r->token));
	return token && !(rep.flags & DMASVC_HELLO_RESUMED) ? -1 : 0;
}

static uint32_t raw_mem(struct raw *r, int memfd, uint64_t size)
{
	struct dmasvc_memory_add ma = { .size = size };
	uint32_t rep[8];

	cr_assert_eq(it_raw_call(r->sock, DMASVC_CMD_MEMORY_ADD, &ma, sizeof(ma), &memfd, 1, rep,
				 sizeof(rep), NULL, NULL), 0);
	return rep[0];
}

static uint32_t raw_region(struct raw *r, uint32_t mem, uint64_t iova, uint64_t size, uint64_t granule)
{
	struct dmasvc_region_add ra = { .mem_id = mem, .size = size, .iova = iova, .granule = granule };
	uint32_t rep[8];

	cr_assert_eq(it_raw_call(r->sock, DMASVC_CMD_REGION_ADD, &ra, sizeof(ra), NULL, 0, rep,
				 sizeof(rep), NULL, NULL), 0);
	return rep[0];
}

static void raw_ring(struct raw *r)
{
	struct dmasvc_ring_setup rs = { .sq_entries = 16, .cq_entries = 16 };
	struct ring_params p = { .sq_entries = 16, .cq_entries = 16 };
	uint32_t rep[8];
	int rfds[4];
	unsigned nr = 0;

	cr_assert_eq(it_raw_call(r->sock, DMASVC_CMD_RING_SETUP, &rs, sizeof(rs), NULL, 0, rep,
				 sizeof(rep), rfds, &nr), 0);
	cr_assert_eq(nr, 3);
	r->fds = (struct ring_fds){ rfds[0], rfds[1], rfds[2] };
	cr_assert_eq(ring_map(&r->map, r->fds.memfd, &p), 0);
	cr_assert_eq(ring_sq_producer_init(&r->sq, &r->map), 0);
	cr_assert_eq(ring_cq_consumer_init(&r->cq, &r->map), 0);
}

static void raw_ring_close(struct raw *r)
{
	ring_unmap(&r->map);
	ring_fds_close(&r->fds);
}

/* Post one event and wait for its completion; returns res. */
static int32_t raw_event(struct raw *r, uint8_t op, uint8_t flags, uint32_t region, uint64_t off,
			 uint64_t len)
{
	struct dmasvc_sqe sqe = { .opcode = op, .flags = flags, .region_id = region, .offset = off,
				  .length = len, .user_data = 77 };
	struct dmasvc_cqe cqe;

	cr_assert_eq(ring_sq_post(&r->sq, &sqe, 1), 1);
	cr_assert_eq(ring_eventfd_signal(r->fds.doorbell), 0);
	for (int i = 0; i < 2000; i++) {
		int n = ring_cq_drain(&r->cq, &cqe, 1);

		cr_assert_geq(n, 0);
		if (n == 1) {
			cr_assert_eq(cqe.user_data, 77);
			return cqe.res;
		}
		usleep(1000);
	}
	cr_assert_fail("no CQE within 2 s");
	return 0;
}

/* A token is not enough: a client on a given socket fd cannot connect again. */
Test(resume, resumable_needs_a_token_and_a_path, .init = start_hook, .fini = stop)
{
	struct dmasvc_client *c = NULL, *q = NULL;
	int fd = it_raw_connect(svc.sock);

	cr_assert_geq(fd, 0);
	cr_assert_eq(dmasvc_connect_fd(fd, NULL, &c), 0, "%s", c ? dmasvc_last_error(c) : "");
	cr_expect_not(dmasvc_resumable(c), "no path: dmasvc_reconnect cannot resume");
	dmasvc_disconnect(c);
	cr_assert_eq(dmasvc_connect_query_only(svc.sock, NULL, &q), 0);
	cr_expect_not(dmasvc_resumable(q), "query-only: nothing to resume");
	dmasvc_disconnect(q);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	cr_expect(dmasvc_resumable(c), "the same service, a path: resumable");
	dmasvc_disconnect(c);
}

Test(resume, claim_mismatch_phase_end_and_repairs, .init = start_hook, .fini = stop)
{
	const uint64_t size = 16 * MiB; /* 8 granules */
	struct dmasvc_stat_session st;
	struct raw a = { 0 }, b = { 0 };
	uint32_t r1, r2, r3, mem;
	int fd1 = it_memfd(size, true), fd2 = it_memfd(size, true), fd3 = it_memfd(size, true);
	int64_t base = it_vmlck(svc.pid);

	cr_assert_geq(base, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(it_memfd_prefault(i == 0 ? fd1 : i == 1 ? fd2 : fd3, 0, size), 0);
	a.sock = it_raw_connect(svc.sock);
	cr_assert_eq(raw_hello(&a, NULL), 0);
	cr_assert_not(all_zero(a.token, sizeof(a.token)), "the hook makes the model resumable");
	r1 = raw_region(&a, raw_mem(&a, fd1, size), 1ull << 30, size, G);
	r2 = raw_region(&a, raw_mem(&a, fd2, size), 2ull << 30, size, G);
	r3 = raw_region(&a, raw_mem(&a, fd3, size), 3ull << 30, size, G);
	raw_ring(&a);
	/* r1: granules 0-3 mapped; r2: 0-1; r3: 0-7 */
	cr_assert_eq(raw_event(&a, DMASVC_OP_POPULATE, 0, r1, 0, 4 * G), 0);
	cr_assert_eq(raw_event(&a, DMASVC_OP_POPULATE, 0, r2, 0, 2 * G), 0);
	cr_assert_eq(raw_event(&a, DMASVC_OP_POPULATE, 0, r3, 0, 8 * G), 0);
	cr_assert_eq(it_wait_vmlck(svc.pid, base + (int64_t)(14 * G), 2000), base + (int64_t)(14 * G));
	raw_ring_close(&a);
	hang_up(a.sock, a.sid);
	close(a.sock);
	cr_assert_eq(it_vmlck(svc.pid), base + (int64_t)(14 * G), "the orphan keeps its mappings");
	cr_assert_eq(it_count_all_regions(svc.sock), 3, "the orphan's adopted regions are listed");

	b.sock = it_raw_connect(svc.sock);
	cr_assert_eq(raw_hello(&b, a.token), 0, "RESUMED");
	cr_assert_eq(b.sid, a.sid, "the same session id");
	cr_assert(memcmp(a.token, b.token, sizeof(a.token)) != 0, "a new token (single use)");
	/* r1 claimed as it was: the same id */
	mem = raw_mem(&b, fd1, size);
	cr_assert_eq(raw_region(&b, mem, 1ull << 30, size, G), r1, "claimed: the same region id");
	/* r2's iova with another granule: the adopted one is unmapped, a new one added */
	mem = raw_mem(&b, fd2, size);
	cr_assert_neq(raw_region(&b, mem, 2ull << 30, size, 4 * MiB), r2, "a mismatch is a new region");
	cr_assert_eq(log_count("does not match the record: unmapped"), 1, "one line for r2");
	cr_assert_eq(it_wait_vmlck(svc.pid, base + (int64_t)(12 * G), 2000), base + (int64_t)(12 * G),
		     "r2's 2 granules unpinned");
	/* r3 is not added again: RING_SETUP removes it */
	raw_ring(&b);
	cr_assert_eq(log_count("was not added again before the first RING_SETUP"), 1, "one line for r3");
	cr_assert_eq(it_wait_vmlck(svc.pid, base + (int64_t)(4 * G), 2000), base + (int64_t)(4 * G),
		     "r3's 8 granules unpinned");
	cr_assert(session_record(b.sid, &st));
	cr_assert_eq(st.regions, 2);
	cr_assert_eq(raw_event(&b, DMASVC_OP_POPULATE, 0, r3, 0, G), -ENOENT, "r3 is gone");

	/*
	 * Replay r1 as a client that holds granules 0-1 and 4-5 populated
	 * (the kernel has 0-3): 0-1 nothing, 2-3 discarded (2 unmapped), 4-5
	 * populated (2 mapped), 6-7 discarded (nothing).
	 */
	cr_assert_eq(raw_event(&b, DMASVC_OP_POPULATE, DMASVC_SQE_REPLAY, r1, 0, 2 * G), 0);
	cr_assert_eq(raw_event(&b, DMASVC_OP_DISCARD, DMASVC_SQE_REPLAY, r1, 2 * G, 2 * G), 0);
	cr_assert_eq(raw_event(&b, DMASVC_OP_POPULATE, DMASVC_SQE_REPLAY, r1, 4 * G, 2 * G), 0);
	cr_assert_eq(raw_event(&b, DMASVC_OP_DISCARD, DMASVC_SQE_REPLAY, r1, 6 * G, 2 * G), 0);
	cr_assert(session_record(b.sid, &st));
	cr_assert_eq(st.resume_repair_maps, 2, "2 granules mapped by the replay (%llu)",
		     (unsigned long long)st.resume_repair_maps);
	cr_assert_eq(st.resume_repair_unmaps, 2, "2 granules unmapped by the replay (%llu)",
		     (unsigned long long)st.resume_repair_unmaps);
	cr_assert_eq(log_count("the client holds populated were not mapped: mapped"), 1);
	cr_assert_eq(log_count("mapped in the kernel the client does not hold populated: unmapped"), 1);
	cr_assert_eq(it_wait_vmlck(svc.pid, base + (int64_t)(4 * G), 2000), base + (int64_t)(4 * G),
		     "r1 holds 4 granules, the new r2 none");
	/* dmasvcctl shows them (human output: only when non-zero) */
	{
		const char *ctl = getenv("DMASVCCTL_BIN");
		char cmd[512], line[512];
		bool svc_line = false, sess_line = false;
		char want[128];
		FILE *p;

		cr_assert_not_null(ctl, "DMASVCCTL_BIN (meson sets it)");
		snprintf(cmd, sizeof(cmd), "'%s' --socket '%s' status", ctl, svc.sock);
		snprintf(want, sizeof(want), "session %u: resume repairs: 2 granules mapped, 2 unmapped", b.sid);
		p = popen(cmd, "r");
		cr_assert_not_null(p);
		while (fgets(line, sizeof(line), p)) {
			svc_line = svc_line || strncmp(line, "resume repairs: 2 granules mapped, 2 unmapped", 45) == 0;
			sess_line = sess_line || strstr(line, want);
		}
		cr_assert_eq(pclose(p), 0);
		cr_assert(svc_line, "dmasvcctl status: the service's repairs line");
		cr_assert(sess_line, "dmasvcctl status: '%s'", want);
	}
	/* a populate without the flag is not a repair */
	cr_assert_eq(raw_event(&b, DMASVC_OP_POPULATE, 0, r1, 7 * G, G), 0);
	cr_assert(session_record(b.sid, &st));
	cr_assert_eq(st.resume_repair_maps, 2);
	raw_ring_close(&b);
	close(b.sock);
	close(fd1);
	close(fd2);
	close(fd3);
}

Test(resume, a_token_resumes_once, .init = start_hook, .fini = stop)
{
	const uint64_t size = 4 * MiB;
	struct raw a = { 0 }, b = { 0 }, c = { 0 };
	int fd = it_memfd(size, true);

	a.sock = it_raw_connect(svc.sock);
	cr_assert_eq(raw_hello(&a, NULL), 0);
	(void)raw_region(&a, raw_mem(&a, fd, size), 1ull << 30, size, G);
	hang_up(a.sock, a.sid);
	close(a.sock);
	b.sock = it_raw_connect(svc.sock);
	cr_assert_eq(raw_hello(&b, a.token), 0);
	c.sock = it_raw_connect(svc.sock);
	cr_assert_eq(raw_hello(&c, a.token), ESTALE, "the token was used: the session is live");
	cr_assert_eq(raw_hello(&c, b.token), ESTALE, "a live session's token resumes nothing");
	cr_assert_eq(raw_hello(&c, NULL), 0);
	cr_assert_neq(c.sid, b.sid);
	close(b.sock);
	close(c.sock);
	close(fd);
}

/*
 * A RESUME left in the socket by a client that gave up (it timed out while
 * the socket was held but not served, as in a restart under socket
 * activation, and closed): the service reads it after the hangup and must
 * not spend the kept session on it (it would tear the session down at the
 * hangup that follows); the client's next RESUME takes it.  Failed before
 * the fix: b got ESTALE.
 */
Test(resume, a_resume_from_a_closed_connection_keeps_the_session, .init = start_hook, .fini = stop)
{
	const uint64_t size = 4 * MiB;
	struct dmasvc_hello h = { .major = DMASVC_PROTO_MAJOR, .minor = 2, .flags = DMASVC_HELLO_RESUME };
	struct raw a = { 0 }, b = { 0 };
	int fd = it_memfd(size, true), stale;

	a.sock = it_raw_connect(svc.sock);
	cr_assert_eq(raw_hello(&a, NULL), 0);
	(void)raw_region(&a, raw_mem(&a, fd, size), 1ull << 30, size, G);
	hang_up(a.sock, a.sid);
	close(a.sock);
	cr_assert_eq(kill(svc.pid, SIGSTOP), 0);
	stale = it_raw_connect(svc.sock);
	cr_assert_geq(stale, 0);
	memcpy(h.token, a.token, sizeof(h.token));
	cr_assert_eq(it_raw_send(stale, DMASVC_CMD_HELLO, 7, &h, sizeof(h), NULL, 0), 0);
	close(stale);
	cr_assert_eq(kill(svc.pid, SIGCONT), 0);
	usleep(300000); /* the service reads the stale RESUME and the hangup */
	b.sock = it_raw_connect(svc.sock);
	cr_assert_eq(raw_hello(&b, a.token), 0, "the kept session is still there to resume");
	cr_assert_eq(b.sid, a.sid, "the same session");
	close(b.sock);
	close(fd);
}
