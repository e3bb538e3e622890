/* SPDX-License-Identifier: MIT */
/*
 * evloop.c - one thread, one io_uring: multishot polls on the listening
 * socket, every session socket, every ring doorbell, a signalfd and a stats
 * timerfd; between sleeps, adaptive polling of the SQ tails.
 *
 * Vocabulary:
 *   tag      the 64-bit user_data of a poll: kind (4 bits) | session id
 *            (32 bits) | ring slot (16 bits).  Objects are found again by id,
 *            never by pointer, so a completion that arrives after its
 *            session was freed finds nothing and is dropped.
 *   awake    a ring the loop polls; asleep: its consumer wait flag is set
 *            and the client rings the doorbell when it posts.
 *   spin     the polling window before sleeping, adapted as KVM adapts a
 *            vCPU's halt polling (note_found): a burst that came soon after
 *            the loop went to sleep (within SPIN_GROW_NS of the last one's
 *            end, a wake-up included) grows it, doubling up to SPIN_MAX_NS;
 *            one that came later halves it, to none; one found while
 *            spinning leaves it.  The gap that counts is the loop's idle
 *            time, from the end of a burst to the next: a synchronous
 *            client posts its next event within microseconds of the last
 *            completion however long that burst ran (sleeping costs ~33 us
 *            here, see docs/design.md "Facts"; until Dec 7 the window was
 *            twice the mean gap from burst end to burst end, so a client
 *            whose bursts ran longer than 25 us always found the loop
 *            asleep).  It yields the CPU as the poll below does, from its
 *            first pass while an executor runs (SPIN_PURE_NS).
 *   poll     polling mode (--poll-us N, off by default): the window lasts
 *            at least until N us after the last burst of any session, however
 *            far apart bursts came, so a VMM's next synchronous event finds
 *            the loop polling (no doorbell write, no wake-up).  On this
 *            thread, not a dedicated poller: the work it finds runs here
 *            anyway, and one thread keeps the per-turn bound and the round
 *            robin of work_all (a poll pass only looks; work_all does the
 *            work).  The poller yields its CPU (sched_yield) after each
 *            empty pass: on an oversubscribed host a polling loop has lost
 *            the wake-up preemption a sleeping one gets, and a client that
 *            shares its CPU would otherwise wait for a tick to post (or
 *            spin out its wait and sleep, measured: p50 70-84 us instead of
 *            18-44 us at load 4).  Cost: up to one CPU for N us after each burst.
 *   turn     one pass of work_all over every session.  Work is done only
 *            there, never in a completion handler (a doorbell or socket
 *            completion only marks the session), and each session gets at
 *            most BURSTS_PER_TURN bursts (over all its rings, round robin;
 *            none more once SQES_PER_TURN SQEs were done, a burst being a
 *            whole SQ) and CTL_PER_TURN control requests per turn: however a client
 *            floods its doorbells or its socket, the others wait at most
 *            one bounded turn.  What takes long (big bursts, REGION_REMOVE,
 *            BYE, DEVICE_ATTACH, a session's teardown) runs on the
 *            session's executor (datapath/executor_priv.h), never here.
 *   closing  session_close() cancels the session's polls and marks it;
 *            close_advance() starts its teardown on the executor once its
 *            burst or job finished, and frees it after the teardown.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <liburing.h>
#include <systemd/sd-daemon.h>

#include "dmasvc/proto_fd.h"

#include "executor_priv.h"
#include "dispatch_priv.h"
#include "evloop_priv.h"
#include "keep_priv.h"
#include "query_priv.h"
#include "reply_priv.h"
#include "ring_service_priv.h"
#include "server_priv.h"
#include "upgrade_priv.h"

#define SPIN_MAX_NS 50000ull
#define SPIN_START_NS 10000ull  /* the first window a short sleep opens (then doubled) */
/* A burst this soon after the last one's end, found asleep, grows the window:
 * the longest window, then a wake-up (35 us on an idle host here, 100 us
 * and more under load or a sanitizer: a gap the window could have covered
 * must not look too long to grow it). */
#define SPIN_GROW_NS (4 * SPIN_MAX_NS)
/* The first 20 us of a spin (adaptive or polling mode) without yielding (a
 * yield is a system call, ~1 us here; a client on another CPU answers in
 * less), then yielding after each empty pass: a client that shares the
 * loop's CPU must get it to post (without the yield a 50 us adaptive
 * window only delayed it, then slept: 100 sleeps in test_poll_it.c's 100
 * back-to-back conversions, 2-7 with it). */
#define SPIN_PURE_NS 20000ull
/* Not while an executor runs a burst or job (a session is busy): the loop
 * that just woke it yields from the first pass.  The scheduler often puts
 * the executor on the loop's CPU (the client spins on the other), where
 * it waited out the pure spin before its job began: the executor's run
 * delay p90 21-23 us a big conversion, 1.3-2.6 us yielding at once
 * (test_poll_it.c; ~20 us of a 128 MiB unplug note's round trip in a
 * sched trace, bench/RESULTS.md "eleventh pass"). */
#define BURSTS_PER_TURN 4  /* per session per loop turn, over all its rings */
#define SQES_PER_TURN 512  /* ... and no burst more once this many SQEs were completed
			      (a burst is a whole SQ, up to 4096: one never stops midway) */
#define URING_ENTRIES 256
#define CTL_PER_TURN 16    /* control requests per session per loop turn */
#define SHUTDOWN_TURNS 64  /* turns to finish what clients posted before a stop */

enum tag_kind {
	TAG_LISTEN = 1,
	TAG_SIGNAL = 2,
	TAG_TIMER = 3,
	TAG_CLIENT = 4,
	TAG_DOORBELL = 5,
	TAG_EXEC = 6,     /* async bursts finished (executor.c) */
};

static uint64_t make_tag(enum tag_kind k, uint32_t sid, uint32_t ring)
{
	return ((uint64_t)k << 60) | ((uint64_t)sid << 16) | (ring & 0xffff);
}

struct evl {
	struct dsvc *d;
	struct io_uring uring;
	int lfd, sfd, tfd;
	uint64_t win_ns;          /* the adaptive spin window: 0 or SPIN_START_NS..SPIN_MAX_NS */
	uint64_t last_burst_ns;   /* when the last burst (of any session) ended */
	bool slept;               /* the loop slept since then */
	uint64_t poll_ns;         /* --poll-us in ns: poll this long after the last burst */
	unsigned int ticks;
	uid_t self;
	unsigned int status_sessions; /* the session count systemd was last told */
};

/*
 * Tell the service manager (sd_notify; nothing without NOTIFY_SOCKET) the
 * session count when it changed, with READY=1 the first time (@ready).
 */
static void notify_status(struct evl *e, bool ready)
{
	struct dsvc *d = e->d;

	if (!ready && e->status_sessions == d->nr_sessions)
		return;
	e->status_sessions = d->nr_sessions;
	sd_notifyf(0, "%sSTATUS=%u session%s, backend %s, socket %s", ready ? "READY=1\n" : "",
		   d->nr_sessions, d->nr_sessions == 1 ? "" : "s", d->ops->name, d->opt->socket_path);
}

static struct io_uring_sqe *get_sqe(struct evl *e)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->uring);

	if (!sqe) {
		io_uring_submit(&e->uring);
		sqe = io_uring_get_sqe(&e->uring);
	}
	return sqe; /* NULL only if the kernel took nothing: logged by callers */
}

static int arm_poll(struct evl *e, int fd, uint64_t tag)
{
	struct io_uring_sqe *sqe = get_sqe(e);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_multishot(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, tag);
	return 0;
}

static void cancel_poll(struct evl *e, uint64_t tag)
{
	struct io_uring_sqe *sqe = get_sqe(e);

	if (!sqe)
		return;
	io_uring_prep_poll_remove(sqe, tag);
	io_uring_sqe_set_data64(sqe, 0); /* its own completion is ignored */
}

/* The teardown job: session_teardown() on the executor (session_priv.h). */
static void teardown_run(struct dsvc *d, struct dsvc_session *s, void *arg)
{
	(void)arg;
	s->job_unmap_calls = session_teardown(d, s);
}

/* On the loop: the teardown is done; close_advance() frees the session. */
static void teardown_finish(struct dsvc *d, struct dsvc_session *s, void *arg)
{
	(void)d;
	(void)arg;
	s->ctr.unmap_calls += s->job_unmap_calls;
	s->job_unmap_calls = 0;
	s->torn_down = true;
}

static const struct exec_job_ops teardown_job = {
	.run = teardown_run,
	.finish = teardown_finish,
};

/*
 * Move closing session @s on: nothing while its burst or job runs; then its
 * teardown (on the executor, or inline when it holds no memory, region or
 * device, or there is no executor); once torn down, free it.  Returns true
 * when @s was freed.
 */
static bool close_advance(struct evl *e, struct dsvc_session *s)
{
	struct dsvc *d = e->d;

	if (s->busy)
		return false; /* its finish comes first; work_all calls again */
	if (!s->torn_down && (s->nr_mems || s->nr_regions || s->nr_devices)) {
		s->job_unmap_calls = 0;
		if (executor_run_job(d, s, &teardown_job, NULL))
			return false;
	}
	ringsvc_session_release(d, s); /* nothing runs for it: joins its idle executor */
	session_destroy(d, s);
	return true;
}

/*
 * Disconnect @s: cancel its polls and start closing it (close_advance).
 * The caller must not touch @s again (it may be freed).
 */
static void session_close(struct evl *e, struct dsvc_session *s, const char *why)
{
	if (s->closing)
		return;
	s->closing = why;
	dlog(e->d->log, s->announced ? DLOG_INFO : DLOG_DEBUG, s->id, "disconnect: %s", why);
	cancel_poll(e, make_tag(TAG_CLIENT, s->id, 0));
	for (unsigned int i = 0; i < DMASVC_MAX_RINGS; i++)
		if (s->rings[i] && s->rings[i]->doorbell_armed)
			cancel_poll(e, make_tag(TAG_DOORBELL, s->id, i));
	io_uring_submit(&e->uring);
	close_advance(e, s);
}

/*
 * The peer of @s hung up: close @s (session_close).  Test builds with
 * DMASVC_TEST_ORPHAN_ON_HANGUP make a resumable session an orphan instead,
 * as a restart would (session_orphan_for_test).  The caller must not touch
 * @s again.
 */
static void session_hangup(struct evl *e, struct dsvc_session *s, const char *why)
{
#ifdef DMASVC_FAULT_INJECTION
	uint8_t any = 0;

	for (unsigned int i = 0; i < DMASVC_TOKEN_LEN; i++)
		any |= s->token[i];
	if (e->d->test_orphan_on_hangup && any && (s->nr_regions || s->nr_devices) && !s->closing &&
	    !s->busy && !s->close_why && !s->broken) { /* a session owning nothing has nothing to keep */
		cancel_poll(e, make_tag(TAG_CLIENT, s->id, 0));
		for (unsigned int i = 0; i < DMASVC_MAX_RINGS; i++)
			if (s->rings[i] && s->rings[i]->doorbell_armed)
				cancel_poll(e, make_tag(TAG_DOORBELL, s->id, i));
		io_uring_submit(&e->uring);
		session_orphan_for_test(e->d, s);
		return;
	}
#endif
	session_close(e, s, why);
}

/*
 * HELLO RESUME matched (dispatch.c moved the session state): the connection
 * of @s, the session made at accept, moves onto @o, and @s is dropped
 * without a disconnect (it owns nothing a client made: before HELLO).
 * Decision: the connection moves onto the orphan object, not the orphan's
 * state into @s: the orphan's regions, space, devices, executor thread and
 * grace bookkeeping all point at its object, while @s holds only a socket.
 * The loop finds sessions by id in its poll tags, so the socket's poll is
 * cancelled under @s's id and armed again under @o's (a completion still
 * queued for @s's tag finds no session and is dropped).  Returns nothing;
 * @s is freed; @o may be closed (no poll possible).
 */
static void connection_move(struct evl *e, struct dsvc_session *s, struct dsvc_session *o)
{
	struct dsvc *d = e->d;

	cancel_poll(e, make_tag(TAG_CLIENT, s->id, 0));
	io_uring_submit(&e->uring);
	o->fd = s->fd;
	s->fd = -1;
	o->ctl_pending = true; /* requests sent behind the HELLO: read them next turn */
	ringsvc_session_release(d, s);
	session_destroy(d, s);
	if (arm_poll(e, o->fd, make_tag(TAG_CLIENT, o->id, 0)))
		session_close(e, o, "cannot poll its socket");
}

static void arm_new_rings(struct evl *e, struct dsvc_session *s)
{
	for (unsigned int i = 0; i < DMASVC_MAX_RINGS; i++) {
		struct dsvc_ring *rg = s->rings[i];

		if (rg && !rg->doorbell_armed &&
		    arm_poll(e, rg->doorbell, make_tag(TAG_DOORBELL, s->id, i)) == 0)
			rg->doorbell_armed = true;
	}
}

/*
 * Read and answer up to CTL_PER_TURN pending requests of @s; stop at a
 * request that became a job (@s busy: the rest waits for its finish).
 * Returns false when the session was closed (the caller must not touch it
 * again).
 */
static bool client_readable(struct evl *e, struct dsvc_session *s)
{
	struct dsvc *d = e->d;
	unsigned char in[DMASVC_MSG_MAX];
	unsigned char out[DMASVC_MSG_MAX];
	unsigned int handled = 0;

	/* Busy: the executor owns the session's regions, so no request may run
	 * (a REGION_REMOVE would free what the burst uses): read them after
	 * the finish (work_all). */
	if (s->busy) {
		s->ctl_pending = true;
		return true;
	}
	s->ctl_pending = false;
	for (;;) {
		int fds[CTL_MAX_FDS], msg_flags;
		struct dispatch_out dout = { .nfds = 0 };
		struct ctl_request req;
		char err[DMASVC_TEXT_MAX];
		unsigned int nfds;
		ssize_t n, rlen;
		int ret;

		n = proto_recv(s->fd, in, sizeof(in), fds, CTL_MAX_FDS, &nfds, &msg_flags,
			       MSG_DONTWAIT);
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return true;
		if (n < 0) {
			session_close(e, s, "socket error");
			return false;
		}
		if (n == 0 && !(msg_flags & MSG_TRUNC)) {
			for (unsigned int i = 0; i < nfds && i < CTL_MAX_FDS; i++)
				close(fds[i]);
			session_hangup(e, s, "peer closed the socket");
			return false;
		}
		ret = ctl_decode(in, (size_t)n, msg_flags, fds, nfds, &req, err, sizeof(err));
		if (ret) {
			rlen = reply_error(&req, ret, err, out);
			dlog(d->log, req.fatal ? session_log_level(d, s, DLOG_WARN) : DLOG_DEBUG, s->id,
			     "bad %s request: %s",
			     req.hdr_ok ? ctl_cmd_name(req.cmd) : "?", err);
			dout.disconnect = req.fatal;
			dout.why = "protocol error: malformed packet";
		} else {
			rlen = dispatch_request(d, s, &req, out, &dout);
		}
		if (rlen > 0) {
			ret = reply_send(s->fd, out, (size_t)rlen, dout.fds, dout.nfds);
			if (ret) {
				dout.disconnect = true;
				dout.why = reply_send_failure(ret);
			}
		}
		if (dout.close_fds_after && dout.nfds)
			close(dout.fds[0]);
		if (dout.resumed) {
			uint32_t oid = dout.resumed->id;
			struct dsvc_session *o;

			connection_move(e, s, dout.resumed); /* frees s; may close the other */
			o = session_find(d, oid);
			if (o && dout.disconnect) /* the reply was not sent */
				session_close(e, o, dout.why ? dout.why : "closed");
			return false;
		}
		if (dout.new_ring)
			arm_new_rings(e, s);
		if (dout.disconnect) {
			session_close(e, s, dout.why ? dout.why : "closed");
			return false;
		}
		if (dout.deferred && s->close_why) { /* a job finished inline asked for it */
			session_close(e, s, s->close_why);
			return false;
		}
		if (dout.deferred && s->busy) {
			s->ctl_pending = true; /* read on after the job's finish */
			return true;
		}
		if (++handled == CTL_PER_TURN) {
			/* fairness: the rest waits for the next loop turn (see work_all) */
			s->ctl_pending = true;
			return true;
		}
	}
}

static void do_accept(struct evl *e)
{
	struct dsvc *d = e->d;

	for (;;) {
		struct dsvc_session *s;
		struct ucred cred;
		int fd, ret;

		fd = server_accept(e->lfd, &cred);
		if (fd == -EAGAIN || fd == -EWOULDBLOCK)
			return;
		if (fd < 0) {
			if (fd == -EINTR || fd == -ECONNABORTED)
				continue;
			dlog_err(d->log, 0, fd, "accept");
			return;
		}
		if (!server_peer_allowed(d->opt, e->self, cred.uid, cred.gid)) {
			dlog_limited(d->log, DLOG_WARN, "refused peer pid %d uid %u gid %u: not on the allow-list",
				     (int)cred.pid, (unsigned)cred.uid, (unsigned)cred.gid);
			close(fd);
			continue;
		}
		ret = session_create(d, fd, &cred, server_peer_admin(e->self, cred.uid), &s);
		if (ret) {
			dlog_err(d->log, 0, ret, "refused peer pid %d uid %u: cannot create a session",
				 (int)cred.pid, (unsigned)cred.uid);
			close(fd);
			continue;
		}
		dlog(d->log, DLOG_DEBUG, s->id, "connected: pid %d uid %u", (int)cred.pid,
		     (unsigned)cred.uid);
		if (arm_poll(e, fd, make_tag(TAG_CLIENT, s->id, 0)))
			session_close(e, s, "cannot poll its socket");
	}
}

/*
 * A burst was taken at @found (on the loop or handed to an executor): adapt
 * the spin window to the idle time before it (the "spin" entry above).
 * Only a burst found after a sleep says something: one found while
 * spinning proves the window long enough.
 */
static void note_found(struct evl *e, uint64_t found)
{
	uint64_t idle;

	if (!e->slept || !e->last_burst_ns)
		return;
	e->slept = false;
	/* an executor posts its CQEs before the loop reaps it: the client's
	 * next burst can be found before the last one "ended" here */
	idle = found > e->last_burst_ns ? found - e->last_burst_ns : 0;
	if (idle <= SPIN_GROW_NS) {
		e->win_ns = e->win_ns < SPIN_START_NS ? SPIN_START_NS : e->win_ns * 2;
		if (e->win_ns > SPIN_MAX_NS)
			e->win_ns = SPIN_MAX_NS;
	} else {
		e->win_ns /= 2;
		if (e->win_ns < SPIN_START_NS)
			e->win_ns = 0;
	}
}

/* A burst ended at @now (finished on the loop, or reaped from an executor):
 * the spin window and the polling mode's window count from here. */
static void note_end(struct evl *e, uint64_t now)
{
	e->last_burst_ns = now;
	e->slept = false;
}

/*
 * Work ring @i of @s: at most one burst.  Returns SQEs completed; 0 also
 * when the session was closed for a ring protocol error (then *@closed is
 * set).
 */
static int work_ring(struct evl *e, struct dsvc_session *s, unsigned int i, bool *closed)
{
	uint64_t found = ringsvc_ring_pending(s->rings[i]) ? dsvc_now_ns() : 0;
	int n = ringsvc_ring_work(e->d, s, s->rings[i], 1);

	if (n > 0 || s->busy) /* finished here, or handed to the executor */
		note_found(e, found ? found : dsvc_now_ns());
	if (n == RING_EPROTO) {
		dlog(e->d->log, DLOG_WARN, s->id, "ring %u: protocol error (impossible ring index)", i);
		session_close(e, s, "ring protocol error");
		*closed = true;
		return 0;
	}
	if (n > 0)
		note_end(e, dsvc_now_ns());
	return n > 0 ? n : 0;
}

/*
 * One turn's ring work of @s: one burst per ring, round robin from where
 * the last turn stopped, BURSTS_PER_TURN bursts and SQES_PER_TURN SQEs at
 * most (a burst already taken is finished whole); stops when a burst went
 * to the executor.  Returns SQEs completed (*@closed as above).
 */
static int work_rings(struct evl *e, struct dsvc_session *s, bool *closed)
{
	unsigned int budget = BURSTS_PER_TURN, n = s->ring_hi;
	int total = 0;

	for (unsigned int k = 0; k < n && budget && !*closed && !s->busy; k++) {
		unsigned int i = (s->ring_next + k) % n;
		int done;

		if (!s->rings[i])
			continue;
		done = work_ring(e, s, i, closed);
		total += done;
		if (done > 0 && total >= SQES_PER_TURN)
			budget = 1; /* this was the turn's last burst */
		if ((done > 0 || s->busy) && --budget == 0)
			s->ring_next = (i + 1) % n; /* the next turn starts after it */
	}
	return total;
}

/* One turn: every session's pending work, bounded per session.  Returns progress made. */
static int work_all(struct evl *e)
{
	struct dsvc *d = e->d;
	int total = 0;

	for (unsigned int si = 0; si < d->session_hi; si++) {
		struct dsvc_session *s = d->sessions[si];
		bool closed = false;

		if (!s)
			continue;
		if (s->closing) {
			if (!s->busy) {
				total++;
				close_advance(e, s);
			}
			continue;
		}
		if (s->busy || s->orphan) /* an orphan has no socket and no ring */
			continue;
		if (s->close_why || s->broken) {
			session_close(e, s, s->close_why ? s->close_why : "ring protocol error");
			continue;
		}
		if (s->hung_up) { /* answer what came before the hang-up, then close */
			if (client_readable(e, s))
				session_hangup(e, s, "socket hung up");
			continue;
		}
		if (s->ctl_pending) {
			total++; /* control work counts as progress: keep the loop awake */
			if (!client_readable(e, s) || s->busy)
				continue;
		}
		total += work_rings(e, s, &closed);
	}
	return total;
}

/*
 * Poll the SQ tails (and the io_uring CQ) until the window ends: the
 * adaptive one (win_ns, note_found) from now, or, in polling mode, until
 * poll_ns after the last burst, whichever ends later.  Returns true if work
 * was found.
 */
static bool spin(struct evl *e)
{
	uint64_t start = dsvc_now_ns(), end = start + e->win_ns, now;

	if (e->poll_ns && e->last_burst_ns && e->last_burst_ns + e->poll_ns > end)
		end = e->last_burst_ns + e->poll_ns;
	if (end == start)
		return false;
	do {
		struct io_uring_cqe *cqe;
		bool executing = false; /* an executor runs a burst or a job */

		for (unsigned int si = 0; si < e->d->session_hi; si++) {
			struct dsvc_session *s = e->d->sessions[si];

			if (s && (s->busy || s->closing)) {
				executing = executing || s->busy;
				continue;
			}
			for (unsigned int i = 0; s && i < s->ring_hi; i++)
				if (s->rings[i] && ringsvc_ring_pending(s->rings[i]))
					return true;
		}
		if (io_uring_peek_cqe(&e->uring, &cqe) == 0)
			return true; /* control traffic or a signal: go handle it */
		now = dsvc_now_ns();
		/*
		 * A poller is not a wake-up: leave the CPU to whoever needs it,
		 * e.g. the client we wait for on a shared CPU.  From the first
		 * pass while an executor runs: the loop woke it, and with the
		 * other CPUs busy (a client spinning for its completion) it
		 * waits on this one (SPIN_PURE_NS).
		 */
		if (executing || now - start > SPIN_PURE_NS)
			sched_yield();
	} while (now < end);
	return false;
}

/*
 * Arm the SQ wait flag of every ring; a ring that got work between the
 * last pass and its flag is worked instead.  Returns true if nothing is
 * pending anywhere (safe to sleep).
 */
static bool prepare_sleep(struct evl *e)
{
	struct dsvc *d = e->d;
	bool idle = true;

	for (unsigned int si = 0; si < d->session_hi; si++) {
		struct dsvc_session *s = d->sessions[si];

		if (s && (s->busy || s->broken || s->ctl_pending || s->hung_up || s->closing ||
			  s->close_why)) {
			idle = idle && s->busy; /* busy: its completion wakes us */
			continue;
		}
		for (unsigned int i = 0; s && i < s->ring_hi; i++) {
			struct dsvc_ring *rg = s->rings[i];
			int ret;

			if (!rg || rg->nr_backlog)
				continue; /* a blocked CQ waits for the doorbell already */
			ret = ring_sq_drain_wait_begin(&rg->sq);
			if (ret == 1)
				continue;
			idle = false; /* work arrived, or a bad index: the next turn sees it */
			if (ret == 0)
				ring_sq_drain_wait_end(&rg->sq);
			else
				s->broken = true;
		}
	}
	return idle;
}

static void wake_rings(struct evl *e)
{
	for (unsigned int si = 0; si < e->d->session_hi; si++) {
		struct dsvc_session *s = e->d->sessions[si];

		for (unsigned int i = 0; s && i < s->ring_hi; i++)
			if (s->rings[i])
				ring_sq_drain_wait_end(&s->rings[i]->sq);
	}
}

/*
 * Tear down every orphan session (adopted, docs/restart.md) whose grace
 * period ended without a resume, exactly as a closed session.
 */
static void orphans_expire(struct evl *e)
{
	struct dsvc *d = e->d;
	uint64_t now = dsvc_now_ns();

	for (unsigned int i = 0; i < d->session_hi; i++) {
		struct dsvc_session *s = d->sessions[i];
		struct session_usage u;

		if (!s || !s->orphan || s->closing || s->busy || now < s->orphan_deadline_ns)
			continue;
		u = session_usage(s);
		dlog(d->log, DLOG_INFO, s->id,
		     "orphan session %u (uid %u, tag %llu) not resumed within %u s: torn down,"
		     " releasing %llu bytes mapped (%llu areas), %u regions, %u devices",
		     s->id, (unsigned)s->cred.uid, (unsigned long long)s->client_tag,
		     d->opt->resume_grace_sec, (unsigned long long)u.mapped_bytes,
		     (unsigned long long)u.areas, s->nr_regions, s->nr_devices);
		session_close(e, s, "not resumed within the grace period");
	}
}

static void stats_tick(struct evl *e)
{
	struct dsvc *d = e->d;
	uint64_t exp;

	while (read(e->tfd, &exp, sizeof(exp)) < 0 && errno == EINTR)
		;
	lat_roll(&d->lat);
	for (unsigned int i = 0; i < d->session_hi; i++)
		if (d->sessions[i])
			lat_roll(&d->sessions[i]->lat);
	session_log_tick(d);
	orphans_expire(e);
	notify_status(e, false);
	if (++e->ticks % d->opt->stats_interval == 0 && d->log->level >= DLOG_INFO) {
		struct dmasvc_stat_service st;

		query_fill_service(d, &st);
		dlog(d->log, DLOG_INFO, 0,
		     "stats: sessions %u events %llu failed %llu maps %llu unmaps %llu areas %llu pinned %llu B latency p50 %llu ns p99 %llu ns (drain to CQE)",
		     st.sessions, (unsigned long long)st.events, (unsigned long long)st.events_failed,
		     (unsigned long long)st.map_calls, (unsigned long long)st.unmap_calls,
		     (unsigned long long)st.areas, (unsigned long long)st.pinned_bytes,
		     (unsigned long long)st.latency_p50_ns, (unsigned long long)st.latency_p99_ns);
	}
}

/* Handle one io_uring completion.  Returns false on a stop signal. */
static bool handle_cqe(struct evl *e, uint64_t tag, int res, unsigned int flags)
{
	struct dsvc *d = e->d;
	enum tag_kind kind = (enum tag_kind)(tag >> 60);
	uint32_t sid = (uint32_t)(tag >> 16);
	unsigned int ring = (unsigned int)(tag & 0xffff);
	bool more = flags & IORING_CQE_F_MORE;
	struct dsvc_session *s;

	if (tag == 0)
		return true; /* a poll_remove's own completion */
	switch (kind) {
	case TAG_SIGNAL: {
		struct signalfd_siginfo si = { 0 };

		if (read(e->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si) && si.ssi_signo == SIGHUP) {
			dlog(d->log, DLOG_INFO, 0, "SIGHUP: upgrade (re-exec of %s)",
			     d->opt->upgrade_exec ? d->opt->upgrade_exec : "?");
			d->upgrade = true; /* after this turn (evl_run) */
		} else if (si.ssi_signo) {
			dlog(d->log, DLOG_INFO, 0, "signal %u: stopping", si.ssi_signo);
			sd_notify(0, "STOPPING=1\nSTATUS=stopping: removing every mapping");
			return false;
		}
		if (!more)
			arm_poll(e, e->sfd, tag);
		return true;
	}
	case TAG_TIMER:
		if (res > 0)
			stats_tick(e);
		if (!more)
			arm_poll(e, e->tfd, tag);
		return true;
	case TAG_LISTEN:
		if (res > 0)
			do_accept(e);
		if (!more && e->lfd >= 0)
			arm_poll(e, e->lfd, tag);
		return true;
	case TAG_EXEC:
#ifdef DMASVC_FAULT_INJECTION
		if (d->test_exec_reap_delay_us)
			usleep(d->test_exec_reap_delay_us);
#endif
		/* A big burst is a burst: it opens the polling window and the
		 * spin's idle time counts from its end as from one finished here
		 * (work_ring). */
		if (ringsvc_complete(d))
			note_end(e, dsvc_now_ns());
		if (!more)
			arm_poll(e, executor_queue_fd(d->bx), tag);
		return true;
	case TAG_CLIENT:
		/* Mark only: work_all reads the requests, within the turn's bound
		 * (and not while the session is busy: its executor owns it). */
		s = session_find(d, sid);
		if (!s || s->orphan)
			return true; /* gone, closing or orphaned: its poll was cancelled */
		if (res > 0 && (res & POLLIN))
			s->ctl_pending = true;
		if (res < 0 || (res & (POLLERR | POLLHUP | POLLNVAL))) {
			s->hung_up = true; /* answered what came before, then closed (work_all) */
			return true;       /* the poll ends with the session */
		}
		if (!more)
			arm_poll(e, s->fd, tag);
		return true;
	case TAG_DOORBELL:
		/* Mark only: work_all drains the ring in its turn. */
		s = session_find(d, sid);
		if (!s || ring >= DMASVC_MAX_RINGS || !s->rings[ring])
			return true;
		ring_eventfd_consume(s->rings[ring]->doorbell);
		ring_sq_drain_wait_end(&s->rings[ring]->sq);
		if (!more)
			arm_poll(e, s->rings[ring]->doorbell, tag);
		return true;
	default:
		return true;
	}
}

static int setup_fds(struct evl *e)
{
	struct itimerspec its = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	e->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (e->sfd < 0)
		return -errno;
	e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (e->tfd < 0)
		return -errno;
	if (timerfd_settime(e->tfd, 0, &its, NULL) < 0)
		return -errno;
	return 0;
}

/* Wait until no session has a burst or job in flight, closing ones included. */
static void quiesce_all(struct evl *e)
{
	struct dsvc *d = e->d;

	ringsvc_quiesce(d, NULL);
	for (;;) {
		bool busy = false;

		for (unsigned int i = 0; i < d->session_hi; i++)
			busy |= d->sessions[i] && d->sessions[i]->busy;
		if (!busy || !d->bx)
			return;
		executor_wait(d);
		ringsvc_complete(d);
	}
}

/*
 * The planned upgrade (SIGHUP, UPGRADE; docs/restart.md): nothing more is
 * drained or read, what is in flight finishes, every kept session's record
 * is rewritten, and the process executes --upgrade-exec with the listening
 * socket and the keep sets.  Returns only when the exec failed (logged):
 * the loop serves on.
 */
static void do_upgrade(struct evl *e)
{
	struct dsvc *d = e->d;
	char err[DMASVC_TEXT_MAX];
	unsigned int kept = 0;
	int ret;

	d->upgrade = false;
	sd_notify(0, "RELOADING=1\nSTATUS=upgrading: re-executing the service");
	quiesce_all(e);
	for (unsigned int i = 0; i < d->session_hi; i++) {
		struct dsvc_session *s = d->sessions[i];

		if (s && !s->closing && keep_session_write(d, s) == 0 && s->keep_fd >= 0)
			kept++;
	}
	dlog(d->log, DLOG_INFO, 0, "upgrade: executing %s with the listening socket and %u kept"
	     " sessions (%u sessions that cannot be kept end with this image)",
	     d->opt->upgrade_exec ? d->opt->upgrade_exec : "?", kept, d->nr_sessions - kept);
	fflush(NULL);
	ret = upgrade_exec(d, e->lfd, d->argv, err, sizeof(err));
	dlog_err(d->log, 0, ret, "upgrade failed, serving on with this image: %s", err);
	sd_notify(0, "READY=1");
	e->status_sessions = UINT32_MAX; /* STATUS= again at the next tick */
}

/*
 * Keep every kept session (--keep-sessions with a service manager's fd
 * store): rewrite its record and free it without teardown, its kernel
 * objects held by the store.  Returns how many were kept.
 */
static unsigned int keep_all(struct evl *e)
{
	struct dsvc *d = e->d;
	unsigned int kept = 0;

	for (unsigned int i = 0; i < d->session_hi; i++) {
		struct dsvc_session *s = d->sessions[i];

		if (!s || s->closing || s->keep_fd < 0 || keep_session_write(d, s))
			continue;
		ringsvc_session_release(d, s);
		keep_session_release(d, s);
		session_destroy(d, s);
		kept++;
	}
	return kept;
}

/*
 * SIGTERM/SIGINT: stop accepting, finish queued events, then keep what can
 * be kept (--keep-sessions and an fd store) and unmap everything else.
 */
static void shutdown_all(struct evl *e)
{
	struct dsvc *d = e->d;

	d->stopping = true;
	if (e->lfd >= 0) {
		cancel_poll(e, make_tag(TAG_LISTEN, 0, 0));
		io_uring_submit(&e->uring);
		close(e->lfd);
		e->lfd = -1;
	}
	ringsvc_quiesce(d, NULL);
	wake_rings(e);
	for (unsigned int t = 0; t < SHUTDOWN_TURNS && work_all(e) > 0; t++)
		ringsvc_quiesce(d, NULL); /* complete what clients already posted */
	quiesce_all(e);
	if (d->opt->keep_sessions && keep_store_available())
		dlog(d->log, DLOG_INFO, 0, "stopping: %u sessions kept in the fd store", keep_all(e));
	for (unsigned int i = 0; i < DSVC_MAX_SESSIONS; i++)
		if (d->sessions[i])
			session_close(e, d->sessions[i], "service stopping");
	for (;;) { /* their teardowns, on their executors */
		for (unsigned int i = 0; i < DSVC_MAX_SESSIONS; i++)
			if (d->sessions[i] && !d->sessions[i]->busy)
				close_advance(e, d->sessions[i]); /* frees it, or it goes busy */
		if (!d->nr_sessions || !d->bx)
			break;
		executor_wait(d); /* every session left is busy: one finishes */
		ringsvc_complete(d);
	}
}

int evl_run(struct dsvc *d, int lfd)
{
	struct evl e = { .d = d, .lfd = lfd, .sfd = -1, .tfd = -1, .self = geteuid(),
			 .poll_ns = (uint64_t)d->opt->poll_us * 1000 };
	bool running = true;
	int ret;

	ret = io_uring_queue_init(URING_ENTRIES, &e.uring, 0);
	if (ret) {
		dlog_err(d->log, 0, ret, "io_uring_queue_init");
		close(lfd);
		return ret;
	}
	ret = setup_fds(&e);
	if (ret) {
		dlog_err(d->log, 0, ret, "signalfd/timerfd setup");
		goto out;
	}
	arm_poll(&e, e.sfd, make_tag(TAG_SIGNAL, 0, 0));
	arm_poll(&e, e.tfd, make_tag(TAG_TIMER, 0, 0));
	arm_poll(&e, e.lfd, make_tag(TAG_LISTEN, 0, 0));
	if (d->bx)
		arm_poll(&e, executor_queue_fd(d->bx), make_tag(TAG_EXEC, 0, 0));
	notify_status(&e, true);
	while (running) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;

		/* Work awake rings, spin while bursts come close together, then sleep. */
		while (work_all(&e) > 0 || spin(&e))
			if (io_uring_cq_ready(&e.uring))
				break;
		if (!io_uring_cq_ready(&e.uring) && prepare_sleep(&e)) {
			e.slept = true;
			ret = io_uring_submit_and_wait(&e.uring, 1);
			if (ret < 0 && ret != -EINTR) {
				dlog_err(d->log, 0, ret, "io_uring_submit_and_wait");
				break;
			}
		} else {
			io_uring_submit(&e.uring);
		}
		io_uring_for_each_cqe(&e.uring, head, cqe) {
			seen++;
			if (running && !handle_cqe(&e, cqe->user_data, cqe->res, cqe->flags))
				running = false;
		}
		io_uring_cq_advance(&e.uring, seen);
		if (running && d->upgrade)
			do_upgrade(&e);
	}
	shutdown_all(&e);
	ret = 0;
out:
	if (e.lfd >= 0)
		close(e.lfd);
	if (e.sfd >= 0)
		close(e.sfd);
	if (e.tfd >= 0)
		close(e.tfd);
	io_uring_queue_exit(&e.uring);
	return ret;
}
