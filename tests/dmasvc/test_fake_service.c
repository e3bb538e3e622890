/* SPDX-License-Identifier: MIT */
/*
 * test_fake_service.c - libdmasvc facing a scripted, sometimes hostile,
 * fake service (a thread in this test).  The real daemon is tested in the
 * *_it tests; here the point is what the library does with replies and
 * completions the real daemon would never send: wrong msg_id, impossible
 * errno, missing fds, a ring whose header does not match, CQEs naming no
 * event, duplicated, with a positive res, a corrupt CQ tail, a QUERY
 * cursor that does not advance.  And things the daemon may do but rarely:
 * completing events out of order, which the bitmap must still apply in
 * submission order; QUERY pages that are empty or carry records of another
 * size.  Also what a query-only client sends (HELLO, QUERY, BYE: no ring).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"
#include "dmasvc/proto_fd.h"
#include "dmasvc/ring.h"
#include "it_util.h"

#define MiB (1ull << 20)

enum fake_fault {
	FAKE_OK = 0,
	FAKE_BAD_MSG_ID,     /* MEMORY_ADD reply echoes another msg_id */
	FAKE_BAD_ERRNO,      /* MEMORY_ADD reply error 99999 */
	FAKE_RING_TWO_FDS,   /* RING_SETUP reply carries 2 fds */
	FAKE_RING_MISMATCH,  /* RING_SETUP ring made with other entry counts */
	FAKE_QUERY_STUCK,    /* QUERY pages: next_cursor 5, also when asked for 5 */
	FAKE_QUERY_FAILS,    /* QUERY #1: EPERM "not for you"; later ones: no reply */
	FAKE_QUERY_ENDLESS,  /* QUERY pages: empty, next_cursor always cursor + 1 */
	FAKE_FALLOC,         /* MEMORY_ADD reply: DMASVC_MEMORY_ADDED_FALLOC */
};

/* QUERY pages of the fake (cursor 0, 10, 20): 8-byte records {id, 100 + id}. */
#define FAKE_PAGES 3

struct fake {
	enum fake_fault fault;
	char dir[48], path[64];
	int lfd, cfd;
	pthread_t thread;
	pthread_mutex_t lock;        /* guards the ring fields below */
	bool have_ring;
	struct ring_fds fds;
	struct ring_mapping map;
	struct ring_sq_consumer sq;
	struct ring_cq_producer cq;
	unsigned ring_setups, queries, byes; /* requests seen (the fake thread writes) */
};

/* Reply to @req: @body, then the NUL-terminated @text. */
static void reply_text(struct fake *f, const struct dmasvc_msg_hdr *req, uint32_t error,
		       const void *body, uint32_t len, const char *text)
{
	char pkt[DMASVC_MSG_MAX];
	size_t tl = strlen(text) + 1;
	struct dmasvc_msg_hdr h = { .size = (uint32_t)(sizeof(h) + len + tl), .cmd = req->cmd,
				    .flags = DMASVC_MSG_REPLY, .msg_id = req->msg_id, .error = error };

	cr_assert_leq(h.size, sizeof(pkt));
	if (len)
		memcpy(pkt, body, len);
	memcpy(pkt + len, text, tl);
	it_send_packet(f->cfd, &h, pkt, (uint32_t)(len + tl), NULL, 0);
}

/* A page of QUERY records (see FAKE_PAGES), or the faults' replies. */
static void query_page(struct fake *f, const struct dmasvc_msg_hdr *h, const struct dmasvc_query *q)
{
	struct {
		struct dmasvc_query_reply rep;
		uint32_t rec[4][2];
	} body = { .rep = { .what = q->what, .record_size = 8 } };

	f->queries++;
	if (f->fault == FAKE_QUERY_FAILS) {
		if (f->queries == 1)
			reply_text(f, h, EPERM, NULL, 0, "not for you");
		return; /* later queries: no reply at all */
	}
	if (f->fault == FAKE_QUERY_STUCK) {
		body.rep.count = 1;
		body.rep.next_cursor = 5;
	} else if (f->fault == FAKE_QUERY_ENDLESS) {
		body.rep.next_cursor = q->cursor + 1; /* advances, never ends */
	} else if (q->cursor == 0) {  /* two records */
		body.rep.count = 2;
		body.rep.next_cursor = 10;
	} else if (q->cursor == 10) { /* an empty page that is not the last */
		body.rep.next_cursor = 20;
	} else {                      /* the last page: one record */
		body.rep.count = 1;
	}
	for (uint32_t i = 0; i < body.rep.count; i++) {
		body.rec[i][0] = (uint32_t)q->cursor + i + 1;
		body.rec[i][1] = 100 + body.rec[i][0];
	}
	reply_text(f, h, 0, &body, (uint32_t)(sizeof(body.rep) + body.rep.count * 8), "");
}

static void reply(struct fake *f, const struct dmasvc_msg_hdr *req, uint32_t error,
		  const void *body, uint32_t len, const int *fds, unsigned nfds)
{
	char text_after[DMASVC_MSG_MAX];
	struct dmasvc_msg_hdr h = { .size = (uint32_t)sizeof(h) + len + 1, .cmd = req->cmd,
				    .flags = DMASVC_MSG_REPLY, .msg_id = req->msg_id, .error = error };

	if (f->fault == FAKE_BAD_MSG_ID && req->cmd == DMASVC_CMD_MEMORY_ADD)
		h.msg_id += 7;
	if (f->fault == FAKE_BAD_ERRNO && req->cmd == DMASVC_CMD_MEMORY_ADD)
		h.error = 99999;
	/* body, then an empty reply text */
	if (len)
		memcpy(text_after, body, len);
	text_after[len] = '\0';
	it_send_packet(f->cfd, &h, text_after, len + 1, fds, nfds);
}

static void ring_setup(struct fake *f, const struct dmasvc_msg_hdr *h, const struct dmasvc_ring_setup *rs)
{
	struct ring_params p = { .sq_entries = rs->sq_entries, .cq_entries = rs->cq_entries };
	struct dmasvc_ring_setup_reply rep = { .ring_id = 0 };
	int fds[3];

	if (f->fault == FAKE_RING_MISMATCH)
		p.sq_entries *= 2;
	pthread_mutex_lock(&f->lock);
	cr_assert_eq(ring_fds_create(&f->fds, &p), 0);
	cr_assert_eq(ring_map(&f->map, f->fds.memfd, &p), 0);
	cr_assert_eq(ring_sq_consumer_init(&f->sq, &f->map), 0);
	cr_assert_eq(ring_cq_producer_init(&f->cq, &f->map), 0);
	rep.ring_size = (uint64_t)ring_mem_size(rs->sq_entries, rs->cq_entries);
	f->have_ring = true;
	pthread_mutex_unlock(&f->lock);
	fds[0] = f->fds.memfd;
	fds[1] = f->fds.doorbell;
	fds[2] = f->fds.completion;
	reply(f, h, 0, &rep, sizeof(rep), fds, f->fault == FAKE_RING_TWO_FDS ? 2 : 3);
}

/* The control loop: answers until the client hangs up. */
static void *fake_main(void *arg)
{
	struct fake *f = arg;

	f->cfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	for (;;) {
		char buf[DMASVC_MSG_MAX];
		int fds[4], msg_flags;
		unsigned int nfds;
		struct dmasvc_msg_hdr h;
		ssize_t n = proto_recv(f->cfd, buf, sizeof(buf), fds, 4, &nfds, &msg_flags, 0);
		uint32_t id_reply[2] = { 0, 0 };

		for (unsigned int i = 0; i < nfds && i < 4; i++)
			close(fds[i]); /* the fake keeps no memory */
		if (n < (ssize_t)sizeof(h))
			break;
		memcpy(&h, buf, sizeof(h));
		switch (h.cmd) {
		case DMASVC_CMD_HELLO: {
			struct dmasvc_hello_reply r = { .major = 1, .session_id = 7,
							.max_sq_entries = 1024, .max_cq_entries = 2048 };

			reply(f, &h, 0, &r, sizeof(r), NULL, 0);
			break;
		}
		case DMASVC_CMD_MEMORY_ADD:
			id_reply[0] = 5;
			if (f->fault == FAKE_FALLOC)
				id_reply[1] = DMASVC_MEMORY_ADDED_FALLOC;
			reply(f, &h, 0, id_reply, sizeof(id_reply), NULL, 0);
			break;
		case DMASVC_CMD_REGION_ADD:
			id_reply[0] = 9;
			reply(f, &h, 0, id_reply, sizeof(id_reply), NULL, 0);
			break;
		case DMASVC_CMD_RING_SETUP: {
			struct dmasvc_ring_setup rs;

			f->ring_setups++;
			memcpy(&rs, buf + sizeof(h), sizeof(rs));
			ring_setup(f, &h, &rs);
			break;
		}
		case DMASVC_CMD_QUERY: {
			struct dmasvc_query q;

			memcpy(&q, buf + sizeof(h), sizeof(q));
			query_page(f, &h, &q);
			break;
		}
		case DMASVC_CMD_BYE:
			f->byes++;
			reply(f, &h, 0, NULL, 0, NULL, 0);
			break;
		default:
			reply(f, &h, 0, NULL, 0, NULL, 0);
			break;
		}
	}
	return NULL;
}

static void fake_start(struct fake *f, enum fake_fault fault)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	f->fault = fault;
	pthread_mutex_init(&f->lock, NULL);
	snprintf(f->dir, sizeof(f->dir), "/tmp/dmasvc-fake.XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/s", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	f->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(f->lfd, 1), 0);
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	if (f->cfd > 0)
		shutdown(f->cfd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->lfd);
	if (f->cfd > 0)
		close(f->cfd);
	if (f->have_ring) {
		ring_unmap(&f->map);
		ring_fds_close(&f->fds);
	}
	unlink(f->path);
	rmdir(f->dir);
}

/* Client with one 8-granule region on the fake. */
static struct dmasvc_client *client_on(struct fake *f, int *region, int *memfd)
{
	struct dmasvc_connect_opts o = { .sq_entries = 8, .timeout_ms = 2000 };
	struct dmasvc_region_desc d = { .size = 16 * MiB, .granule = 2 * MiB };
	struct dmasvc_client *c;
	int mem;

	cr_assert_eq(dmasvc_connect(f->path, &o, &c), 0);
	*memfd = it_memfd(16 * MiB, true);
	mem = dmasvc_memory_add(c, *memfd, 16 * MiB, 0);
	cr_assert_geq(mem, 0);
	d.mem_id = (uint32_t)mem;
	*region = dmasvc_region_add(c, &d);
	cr_assert_geq(*region, 0);
	return c;
}

/* The fake drains @n SQEs (waiting up to 2 s). */
static void fake_drain(struct fake *f, struct dmasvc_sqe *out, unsigned n)
{
	unsigned got = 0;

	for (int i = 0; i < 2000 && got < n; i++) {
		int k = ring_sq_drain(&f->sq, out + got, n - got);

		cr_assert_geq(k, 0);
		got += (unsigned)k;
		if (got < n)
			usleep(1000);
	}
	cr_assert_eq(got, n);
}

static void fake_complete(struct fake *f, uint64_t user_data, int32_t res)
{
	struct dmasvc_cqe cqe = { .user_data = user_data, .res = res };

	cr_assert_eq(ring_cq_post(&f->cq, &cqe, 1), 1);
	ring_eventfd_signal(f->fds.completion);
}

/*
 * A batch stages a populate, whose fault-in waits for the publish; its
 * region and memory are removed meanwhile, and another file takes the fd
 * number the library closed.  The publish must not fault into that file
 * (found by review: batch_end fallocate()d 4 MiB into it).
 */
Test(fake, staged_prefault_dropped_with_its_memory)
{
	struct dmasvc_client *c;
	struct dmasvc_queue *q;
	struct fake f;
	struct stat st;
	int memfd, region, other;

	fake_start(&f, FAKE_FALLOC);
	c = client_on(&f, &region, &memfd); /* its memory is local id 0 */
	cr_assert_eq(dmasvc_queue_open(c, 8, &q), 0);
	cr_assert_eq(dmasvc_queue_batch_begin(q), 0);
	cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)region, 0, 4 * MiB, 1), 0);
	cr_assert_eq(dmasvc_region_remove(c, (uint32_t)region), 0);
	cr_assert_eq(dmasvc_memory_remove(c, 0), 0);
	other = memfd_create("other", MFD_CLOEXEC); /* the lowest free fd: the library's closed dup */
	cr_assert_geq(other, 0);
	cr_assert_eq(ftruncate(other, 16 * MiB), 0);
	(void)dmasvc_queue_batch_end(q);
	cr_assert_eq(fstat(other, &st), 0);
	cr_expect_eq(st.st_blocks, 0, "the publish allocated %lld bytes in an unrelated file",
		     (long long)st.st_blocks * 512);
	close(other);
	dmasvc_queue_close(q);
	dmasvc_disconnect(c);
	close(memfd);
	fake_stop(&f);
}

struct populate_arg {
	struct dmasvc_client *c;
	uint32_t region;
	int ret;
};

static void *blocking_populate(void *arg)
{
	struct populate_arg *a = arg;

	a->ret = dmasvc_populate(a->c, a->region, 2 * MiB, 2 * MiB);
	return NULL;
}

/*
 * The default queue is shared: thread A arms it and polls its fd for an
 * async event while thread B's blocking populate sleeps on the same eventfd.
 * The service signals once, for the armed queue; B takes A's completion
 * into the ready FIFO.  A's poll must still wake (found by review: it
 * slept out its timeout, and no later completion would have signalled).
 */
Test(fake, armed_queue_keeps_its_wakeup_from_a_blocking_call)
{
	struct dmasvc_completion cq[4];
	struct dmasvc_sqe sqe_a, sqe_b;
	struct dmasvc_cqe cqe;
	struct populate_arg a;
	struct dmasvc_client *c;
	struct dmasvc_queue *q;
	struct pollfd pfd;
	struct fake f;
	int region, memfd;
	pthread_t t;

	fake_start(&f, FAKE_OK);
	c = client_on(&f, &region, &memfd);
	q = dmasvc_default_queue(c);
	cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)region, 0, 2 * MiB, 42), 0);
	fake_drain(&f, &sqe_a, 1);
	cr_assert_eq(dmasvc_queue_arm(q), 0);
	a = (struct populate_arg){ .c = c, .region = (uint32_t)region };
	cr_assert_eq(pthread_create(&t, NULL, blocking_populate, &a), 0);
	fake_drain(&f, &sqe_b, 1);
	usleep(30000); /* past B's spin window: B sleeps on the eventfd */
	/* A's completion, signalled as a service does: only to a waiter */
	cqe = (struct dmasvc_cqe){ .user_data = sqe_a.user_data, .res = 0 };
	cr_assert_eq(ring_cq_post(&f.cq, &cqe, 1), 1);
	cr_assert(ring_cq_post_should_wake(&f.cq), "the armed queue asks for a wake-up");
	ring_eventfd_signal(f.fds.completion);
	usleep(30000); /* B woke, took A's completion into the ready FIFO, slept again */
	fake_complete(&f, sqe_b.user_data, 0);
	pthread_join(t, NULL);
	cr_assert_eq(a.ret, 0);
	pfd = (struct pollfd){ .fd = dmasvc_queue_fd(q), .events = POLLIN };
	cr_expect_eq(poll(&pfd, 1, 1000), 1, "A's armed fd did not wake for its completion");
	cr_expect_eq(dmasvc_reap(q, cq, 4, 0), 1);
	cr_expect_eq(cq[0].user_data, 42);
	dmasvc_disconnect(c);
	close(memfd);
	fake_stop(&f);
}

Test(fake, completions_out_of_order_apply_in_order)
{
	struct fake f;
	struct dmasvc_completion cq[4];
	struct dmasvc_sqe sqe[2];
	int region, memfd;
	struct dmasvc_client *c;

	fake_start(&f, FAKE_OK);
	c = client_on(&f, &region, &memfd);
	struct dmasvc_queue *q = dmasvc_default_queue(c);

	cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)region, 0, 4 * MiB, 100), 0);
	cr_assert_eq(dmasvc_submit_discard(q, (uint32_t)region, 0, 4 * MiB, 101), 0);
	fake_drain(&f, sqe, 2);
	cr_assert_eq(sqe[0].region_id, 9, "the service's region id goes on the wire");
	/* The discard completes first: the bitmap must wait for the populate. */
	fake_complete(&f, sqe[1].user_data, 0);
	cr_assert_eq(dmasvc_reap(q, cq, 4, 1000), 1);
	cr_assert_eq(cq[0].user_data, 101);
	cr_assert_eq(dmasvc_region_populated_bytes(c, (uint32_t)region), 0);
	fake_complete(&f, sqe[0].user_data, 0);
	cr_assert_eq(dmasvc_reap(q, cq, 4, 1000), 1);
	cr_assert_eq(cq[0].user_data, 100);
	cr_assert_eq(dmasvc_region_populated_bytes(c, (uint32_t)region), 0,
		     "populate then discard, in submission order: nothing populated");

	/* And a failed populate leaves the bitmap alone. */
	cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)region, 0, 2 * MiB, 102), 0);
	cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)region, 2 * MiB, 2 * MiB, 103), 0);
	fake_drain(&f, sqe, 2);
	fake_complete(&f, sqe[0].user_data, -ENOMEM);
	fake_complete(&f, sqe[1].user_data, 0);
	cr_assert_eq(dmasvc_reap(q, cq, 4, 1000), 2);
	cr_assert_eq(dmasvc_region_populated_bytes(c, (uint32_t)region), (int64_t)(2 * MiB));
	dmasvc_disconnect(c);
	close(memfd);
	fake_stop(&f);
}

/* One hostile CQE kind: the queue must report -EPROTO and stay dead. */
static void hostile_cqe(int kind)
{
	struct fake f;
	struct dmasvc_completion cq[4];
	struct dmasvc_sqe sqe;
	int region, memfd, r;
	struct dmasvc_client *c;
	struct dmasvc_queue *q;

	fake_start(&f, FAKE_OK);
	c = client_on(&f, &region, &memfd);
	q = dmasvc_default_queue(c);
	cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)region, 0, 2 * MiB, 1), 0);
	fake_drain(&f, &sqe, 1);
	switch (kind) {
	case 0: /* names no event in flight */
		fake_complete(&f, sqe.user_data + 1000, 0);
		break;
	case 1: /* completes the event twice */
		fake_complete(&f, sqe.user_data, 0);
		cr_assert_eq(dmasvc_reap(q, cq, 4, 1000), 1);
		fake_complete(&f, sqe.user_data, 0);
		break;
	case 2: /* positive res */
		fake_complete(&f, sqe.user_data, 5);
		break;
	case 3: { /* CQ tail far beyond what the ring holds */
		struct ring_shm *shm = f.map.base;

		shm->cq.tail.value += 100000;
		ring_eventfd_signal(f.fds.completion);
		break;
	}
	}
	r = dmasvc_reap(q, cq, 4, 1000);
	cr_assert_eq(r, -EPROTO, "kind %d: reap %d", kind, r);
	cr_assert_eq(dmasvc_submit_populate(q, (uint32_t)region, 0, 2 * MiB, 2), -EPROTO, "stays dead");
	cr_assert_eq(dmasvc_populate(c, (uint32_t)region, 0, 2 * MiB), -EPROTO);
	cr_assert_eq(dmasvc_region_populated_bytes(c, (uint32_t)region), kind == 1 ? (int64_t)(2 * MiB) : 0);
	dmasvc_disconnect(c);
	close(memfd);
	fake_stop(&f);
}

Test(fake, cqe_for_no_event) { hostile_cqe(0); }
Test(fake, cqe_twice) { hostile_cqe(1); }
Test(fake, cqe_positive_res) { hostile_cqe(2); }
Test(fake, cq_tail_corrupt) { hostile_cqe(3); }

static void bad_reply(enum fake_fault fault, bool at_connect)
{
	struct dmasvc_connect_opts o = { .sq_entries = 8, .timeout_ms = 1000 };
	struct fake f;
	struct dmasvc_client *c = NULL;
	int memfd = it_memfd(16 * MiB, true), r;

	fake_start(&f, fault);
	r = dmasvc_connect(f.path, &o, &c);
	if (at_connect) {
		cr_assert_eq(r, -EPROTO, "connect: %d", r);
	} else {
		cr_assert_eq(r, 0);
		r = dmasvc_memory_add(c, memfd, 16 * MiB, 0);
		cr_assert(r == -EPROTO || r == -ETIMEDOUT, "memory_add: %d", r);
		cr_assert_neq(dmasvc_last_error(c)[0], '\0');
		dmasvc_disconnect(c);
	}
	close(memfd);
	fake_stop(&f);
}

Test(fake, reply_with_wrong_msg_id) { bad_reply(FAKE_BAD_MSG_ID, false); }
Test(fake, reply_with_impossible_errno) { bad_reply(FAKE_BAD_ERRNO, false); }
Test(fake, ring_setup_missing_fd) { bad_reply(FAKE_RING_TWO_FDS, true); }
Test(fake, ring_header_mismatch) { bad_reply(FAKE_RING_MISMATCH, true); }

/* ---- a query-only client ---- */

struct seen {
	struct dmasvc_stat_session rec[8];
	size_t size;
	unsigned n;
};

static int see(void *arg, const void *rec)
{
	struct seen *k = arg;

	if (k->n == 8)
		return -ENOSPC;
	memcpy(&k->rec[k->n++], rec, k->size);
	return 0;
}

Test(fake, query_only_client_pages_and_pads_records)
{
	struct dmasvc_connect_opts o = { .timeout_ms = 2000 };
	struct dmasvc_stat_session arr[4];
	struct seen k = { .size = sizeof(k.rec[0]) };
	struct fake f;
	struct dmasvc_client *c;

	fake_start(&f, FAKE_OK);
	cr_assert_eq(dmasvc_connect_query_only(f.path, &o, &c), 0);
	cr_expect_eq(dmasvc_session_id(c), 7);
	memset(k.rec, 0xa5, sizeof(k.rec));
	cr_assert_eq(dmasvc_query_each(c, DMASVC_QUERY_SESSIONS, 0, 0, 0, k.size, see, &k), 0);
	cr_expect_eq(f.queries, FAKE_PAGES, "every page, the empty one too");
	cr_assert_eq(k.n, 3);
	cr_expect_eq(k.rec[0].session_id, 1);
	cr_expect_eq(k.rec[1].session_id, 2);
	cr_expect_eq(k.rec[2].session_id, 21);
	cr_expect_eq(k.rec[2].pid, 121);
	cr_expect_eq(k.rec[2].uid, 0, "an 8-byte record is zero-padded");
	cr_expect_eq(k.rec[2].latency_p99_ns, 0);

	/* A smaller caller record gets the head of each wire record. */
	k = (struct seen){ .size = 4 };
	memset(k.rec, 0xa5, sizeof(k.rec));
	cr_assert_eq(dmasvc_query_each(c, DMASVC_QUERY_SESSIONS, 0, 0, 0, k.size, see, &k), 0);
	cr_expect_eq(k.n, 3);
	cr_expect_eq(k.rec[1].session_id, 2);
	cr_expect_eq(k.rec[1].pid, 0xa5a5a5a5u, "nothing past the caller's size is written");

	/* dmasvc_query stops asking once the array is full. */
	f.queries = 0;
	cr_expect_eq(dmasvc_query(c, DMASVC_QUERY_SESSIONS, 0, 0, arr, sizeof(arr[0]), 2), 2);
	cr_expect_eq(f.queries, 1);
	cr_expect_eq(dmasvc_query(c, DMASVC_QUERY_SESSIONS, 0, 0, arr, sizeof(arr[0]), 4), 3);
	cr_expect_eq(arr[2].session_id, 21);

	dmasvc_disconnect(c);
	fake_stop(&f);
	cr_expect_eq(f.ring_setups, 0, "a query-only client sets up no ring");
	cr_expect_eq(f.byes, 1, "and says BYE");
}

Test(fake, query_cursor_that_does_not_advance)
{
	struct dmasvc_connect_opts o = { .timeout_ms = 2000 };
	struct dmasvc_stat_session arr[16];
	struct seen k = { .size = sizeof(k.rec[0]) };
	struct fake f;
	struct dmasvc_client *c;

	fake_start(&f, FAKE_QUERY_STUCK);
	cr_assert_eq(dmasvc_connect_query_only(f.path, &o, &c), 0);
	cr_expect_eq(dmasvc_query_each(c, DMASVC_QUERY_SESSIONS, 0, 0, 0, k.size, see, &k), -EPROTO);
	cr_expect_eq(k.n, 1, "the first page's record; the repeated page is refused whole");
	cr_expect_eq(f.queries, 2);
	cr_expect_eq(dmasvc_query(c, DMASVC_QUERY_SESSIONS, 0, 0, arr, sizeof(arr[0]), 16), -EPROTO,
		     "no endless walk");
	dmasvc_disconnect(c);
	fake_stop(&f);
}

/* A cursor that advances forever (each page valid on its own) must not hold
 * the client's control lock forever: the walk as a whole gets the timeout. */
Test(fake, query_cursor_that_never_ends)
{
	struct dmasvc_connect_opts o = { .timeout_ms = 300 };
	struct dmasvc_stat_session arr[4];
	struct seen k = { .size = sizeof(k.rec[0]) };
	struct fake f;
	struct dmasvc_client *c;
	int64_t t0;

	fake_start(&f, FAKE_QUERY_ENDLESS);
	cr_assert_eq(dmasvc_connect_query_only(f.path, &o, &c), 0);
	t0 = it_now_ms();
	cr_expect_eq(dmasvc_query_each(c, DMASVC_QUERY_SESSIONS, 0, 0, 0, k.size, see, &k), -ETIMEDOUT);
	cr_expect_lt(it_now_ms() - t0, 2000, "the walk took %lld ms with a 300 ms timeout",
		     (long long)(it_now_ms() - t0));
	cr_expect_gt(f.queries, 10, "the pages were walked (%u)", f.queries);
	/* between pages, or inside the page the deadline fell in */
	cr_expect(strstr(dmasvc_last_error(c), "did not end") || strstr(dmasvc_last_error(c), "timed out"),
		  "last error: %s", dmasvc_last_error(c));
	t0 = it_now_ms();
	cr_expect_eq(dmasvc_query(c, DMASVC_QUERY_SESSIONS, 0, 0, arr, sizeof(arr[0]), 4), -ETIMEDOUT);
	cr_expect_lt(it_now_ms() - t0, 2000);
	dmasvc_disconnect(c);
	fake_stop(&f);
}

Test(fake, service_error_text_only_from_an_error_reply)
{
	struct dmasvc_connect_opts o = { .timeout_ms = 300 };
	struct seen k = { .size = sizeof(k.rec[0]) };
	struct fake f;
	struct dmasvc_client *c;

	fake_start(&f, FAKE_QUERY_FAILS);
	cr_assert_eq(dmasvc_connect_query_only(f.path, &o, &c), 0);
	cr_expect_str_empty(dmasvc_last_service_error(c));
	cr_expect_eq(dmasvc_query_each(c, DMASVC_QUERY_SESSIONS, DMASVC_QUERY_F_ALL_SESSIONS, 0, 0,
				       k.size, see, &k), -EPERM);
	cr_expect_str_eq(dmasvc_last_service_error(c), "not for you");
	cr_expect_str_eq(dmasvc_last_error(c), "not for you");
	/* No reply at all: the library's own text, no service text. */
	cr_expect_eq(dmasvc_query_each(c, DMASVC_QUERY_SESSIONS, 0, 0, 0, k.size, see, &k), -ETIMEDOUT);
	cr_expect_str_empty(dmasvc_last_service_error(c));
	cr_expect_str_neq(dmasvc_last_error(c), "not for you");
	cr_expect_str_not_empty(dmasvc_last_error(c));
	cr_expect_eq(k.n, 0);
	dmasvc_disconnect(c);
	fake_stop(&f);
}
