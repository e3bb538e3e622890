/* SPDX-License-Identifier: MIT */
/*
 * test_process.c - the dmasvc and dmasvcctl executables as processes:
 * exit codes and messages of the CLI, the socket's mode, peer admission,
 * SIGTERM cleanup (exit 0, nothing pinned, socket removed), and dmasvcctl's
 * status/regions/audit/metrics output and exit codes against a live client.
 * Paths come from $DMASVC_BIN and $DMASVCCTL_BIN (set by meson).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"
#include "dmasvc/ring.h"
#include "unit_util.h"

#define MB (1ull << 20)

struct proc {
	pid_t pid;
	char dir[64];
	char sock[128];
	char log[128];
};

static struct proc svc;

/* Run @argv with stdout and stderr to @out (path); returns the pid. */
static pid_t spawn(char *const argv[], const char *out, uid_t uid)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* A real other user: no root groups left (gid = uid: 65534 is nogroup). */
		if (uid && (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int wait_exit(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Run a tool to completion; its output is left in svc.dir/out.txt (truncated first). */
static int run(uid_t uid, char *const argv[], char **output)
{
	char out[160];
	int ret;

	snprintf(out, sizeof(out), "%s/out.txt", svc.dir);
	unlink(out);
	ret = wait_exit(spawn(argv, out, uid));
	*output = slurp(out);
	return ret;
}

static void start(const char *const *extra)
{
	char *argv[32] = { getenv("DMASVC_BIN"), "--soft-iommu", "--socket", svc.sock, "--log-level",
			   "info" };
	int n = 6;

	cr_assert(argv[0], "DMASVC_BIN not set");
	for (; extra && *extra; extra++)
		argv[n++] = (char *)*extra;
	argv[n] = NULL;
	svc.pid = spawn(argv, svc.log, 0);
	for (int i = 0; i < 500; i++) {
		struct stat st;

		if (stat(svc.sock, &st) == 0 && strstr(slurp(svc.log), "listening"))
			return;
		usleep(10000);
	}
	cr_assert_fail("dmasvc did not start: %s", slurp(svc.log));
}

static int stop(void)
{
	int ret;

	if (!svc.pid)
		return 0;
	kill(svc.pid, SIGTERM);
	ret = wait_exit(svc.pid);
	svc.pid = 0;
	return ret;
}

static void setup(void)
{
	snprintf(svc.dir, sizeof(svc.dir), "/tmp/dmasvc-proc-XXXXXX");
	cr_assert(mkdtemp(svc.dir));
	chmod(svc.dir, 0755);
	snprintf(svc.sock, sizeof(svc.sock), "%s/s.sock", svc.dir);
	snprintf(svc.log, sizeof(svc.log), "%s/log.txt", svc.dir);
	svc.pid = 0;
}

static void teardown(void)
{
	char cmd[160];

	if (svc.pid) {
		kill(svc.pid, SIGKILL);
		wait_exit(svc.pid);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", svc.dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(process, .init = setup, .fini = teardown, .timeout = 60);

/* Bytes of the /proc/PID/status line @key (a "kB" field, e.g. "VmLck:"), or 0. */
static uint64_t status_bytes(pid_t pid, const char *key)
{
	char path[64], *s, *p;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	s = slurp(path);
	p = strstr(s, key);
	return p ? strtoull(p + strlen(key), NULL, 10) * 1024 : 0;
}

/* What the kernel counts as pinned by @pid: VmPin (the model's io_uring pin) + VmLck (its mlock fallback). */
static uint64_t vmlck_of(pid_t pid)
{
	return status_bytes(pid, "VmPin:") + status_bytes(pid, "VmLck:");
}

Test(process, cli_exit_codes)
{
	char *bin = getenv("DMASVC_BIN"), *out;

	cr_assert(bin);
	{
		char *argv[] = { bin, "--bogus", NULL };

		cr_expect_eq(run(0, argv, &out), 2);
		cr_expect(strstr(out, "--bogus"), "%s", out);
	}
	{
		char *argv[] = { bin, "--workers", "many", "--soft-iommu", NULL };

		cr_expect_eq(run(0, argv, &out), 2);
		cr_expect(strstr(out, "--workers"), "%s", out);
	}
	{
		char *argv[] = { bin, "--help", NULL };

		cr_expect_eq(run(0, argv, &out), 0);
		cr_expect(strstr(out, "--soft-iommu") && strstr(out, "--allow-uid"), "%s", out);
	}
	{
		char *argv[] = { bin, "--version", NULL };

		cr_expect_eq(run(0, argv, &out), 0);
		cr_expect(strstr(out, "dmasvc "), "%s", out);
	}
	if (access("/dev/iommu", F_OK) != 0) {
		char *argv[] = { bin, "--socket", svc.sock, NULL };

		cr_expect_eq(run(0, argv, &out), 2, "no backend flag and no /dev/iommu");
		cr_expect(strstr(out, "--soft-iommu"), "%s", out);
		char *argv2[] = { bin, "--iommufd", "/nonexistent/iommu", "--socket", svc.sock, NULL };

		cr_expect_eq(run(0, argv2, &out), 1, "an iommufd path that does not exist");
		cr_expect(strstr(out, "/nonexistent/iommu"), "%s", out);
	}
}

Test(process, sigterm_unmaps_unpins_and_exits_0)
{
	struct dmasvc_region_desc d = { .size = 16 * MB, .iova = 1ull << 30, .granule = 2 * MB };
	struct dmasvc_client *c;
	struct stat st;
	int fd = make_memfd(16 * MB, F_SEAL_SHRINK);
	int mem;

	start(NULL);
	cr_assert_eq(stat(svc.sock, &st), 0);
	cr_expect(S_ISSOCK(st.st_mode));
	cr_expect_eq(st.st_mode & 0777, 0600, "socket mode %o", st.st_mode & 0777);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	mem = dmasvc_memory_add(c, fd, 16 * MB, 0);
	cr_assert_geq(mem, 0, "%s", dmasvc_last_error(c));
	d.mem_id = (uint32_t)mem;
	int r = dmasvc_region_add(c, &d);

	cr_assert_geq(r, 0, "%s", dmasvc_last_error(c));
	cr_assert_eq(dmasvc_populate(c, (uint32_t)r, 0, 8 * MB), 0);
	cr_expect_eq(vmlck_of(svc.pid), 8 * MB, "the model pins the populated bytes");
	cr_expect_eq(stop(), 0, "SIGTERM exits 0");
	cr_expect_neq(access(svc.sock, F_OK), 0, "socket file removed");
	cr_expect(strstr(slurp(svc.log), "stopped: all mappings removed"), "%s", slurp(svc.log));
	cr_expect(strstr(slurp(svc.log), "service stopping"), "the session was torn down");
	dmasvc_disconnect(c);
	close(fd);
}

/*
 * A second dmasvc on a live socket path refuses to start and leaves the
 * first one reachable; the first removes its own socket at exit; after a
 * SIGKILL the stale socket is replaced by the next instance.
 */
Test(process, second_instance_refuses_a_live_socket)
{
	char *argv[] = { getenv("DMASVC_BIN"), "--soft-iommu", "--socket", svc.sock, NULL }, *out;
	struct dmasvc_client *c;
	char why[256];

	start(NULL);
	cr_expect_eq(run(0, argv, &out), 1, "the second instance fails: %s", out);
	snprintf(why, sizeof(why), "another dmasvc (pid %d) serves %s", (int)svc.pid, svc.sock);
	cr_expect(strstr(out, why), "names the first one: %s", out);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0, "the first is still reachable");
	dmasvc_disconnect(c);
	cr_expect_eq(stop(), 0);
	cr_expect_neq(access(svc.sock, F_OK), 0, "the first removed its own socket");

	unlink(svc.log); /* start() waits for a new "listening" line */
	start(NULL);
	kill(svc.pid, SIGKILL);
	wait_exit(svc.pid);
	svc.pid = 0;
	cr_expect_eq(access(svc.sock, F_OK), 0, "a killed instance leaves its socket behind");
	unlink(svc.log);
	start(NULL); /* the stale socket is replaced: its owner's lock is gone */
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0, "the new instance serves the path");
	dmasvc_disconnect(c);
	cr_expect_eq(stop(), 0);
}

Test(process, socket_mode_and_admission)
{
	const char *extra[] = { "--socket-mode", "0666", "--allow-uid", "0", "--allow-uid", "65534", NULL };
	char *src = getenv("DMASVCCTL_BIN"), *out, ctl[192];
	struct stat st;

	cr_assert(src);
	/* uid 65534 runs a copy in our 0755 directory: the checkout's own
	 * directories may be closed to it (a clone under mktemp -d is 0700). */
	cr_assert_eq(copy_executable_for_uid(src, svc.dir, ctl, sizeof(ctl)), 0, "copy %s", src);
	start(extra);
	cr_assert_eq(stat(svc.sock, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0666);
	{
		/* allowed to connect, but not an admin: no service-wide view */
		char *argv[] = { ctl, "--socket", svc.sock, "status", NULL };

		cr_expect_eq(run(65534, argv, &out), 3, "%s", out);
		cr_expect(strstr(out, "Operation not permitted"), "%s", out);
		cr_expect_eq(run(0, argv, &out), 0, "root is an admin: %s", out);
	}
	cr_expect_eq(stop(), 0);

	/* now 65534 is not on the list */
	const char *extra2[] = { "--socket-mode", "0666", NULL };

	start(extra2);
	{
		char *argv[] = { ctl, "--socket", svc.sock, "status", NULL };

		cr_expect_eq(run(65534, argv, &out), 3, "%s", out);
		cr_expect(strstr(slurp(svc.log), "uid 65534 gid 65534: not on the allow-list"), "%s", slurp(svc.log));
	}
}

Test(process, dmasvcctl_views)
{
	struct dmasvc_region_desc d = { .size = 16 * MB, .iova = 1ull << 30, .granule = 2 * MB };
	char *ctl = getenv("DMASVCCTL_BIN"), *out;
	struct dmasvc_client *c;
	int fd = make_memfd(16 * MB, F_SEAL_SHRINK);
	char want[128];
	int mem, r;

	cr_assert(ctl);
	start(NULL);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	mem = dmasvc_memory_add(c, fd, 16 * MB, 0);
	cr_assert_geq(mem, 0);
	d.mem_id = (uint32_t)mem;
	r = dmasvc_region_add(c, &d);
	cr_assert_geq(r, 0);
	cr_assert_eq(dmasvc_populate(c, (uint32_t)r, 0, 4 * MB), 0);
	cr_assert_eq(dmasvc_populate(c, (uint32_t)r, 8 * MB, 2 * MB), 0);
	{
		char *argv[] = { ctl, "--socket", svc.sock, "status", NULL };

		cr_expect_eq(run(0, argv, &out), 0, "%s", out);
		cr_expect(strstr(out, "backend soft"), "%s", out);
		cr_expect(strstr(out, "areas: 3 mapped"), "%s", out);
		cr_expect(strstr(out, "1 sessions"), "the tool's own session is not counted: %s", out);
		cr_expect(strstr(out, "session ") && !strstr(strstr(out, "session ") + 1, "\nsession "),
			  "one session line: %s", out);
		cr_expect(strstr(out, "SQE drain to CQE post"), "latency says what it measures: %s", out);
	}
	{
		char *argv[] = { ctl, "--socket", svc.sock, "regions", "--json", NULL };

		cr_expect_eq(run(0, argv, &out), 0, "%s", out);
		cr_expect(strstr(out, "\"populated_bytes\":6291456"), "%s", out);
		cr_expect(strstr(out, "\"pinned_bytes\":6291456"), "%s", out);
	}
	{
		char *argv[] = { ctl, "--socket", svc.sock, "audit", NULL };

		cr_expect_eq(run(0, argv, &out), 0, "%s", out);
		cr_expect(strstr(out, "OK      iova 0x40000000 len 0x400000"), "%s", out);
		cr_expect(strstr(out, "OK      iova 0x40800000 len 0x200000"), "%s", out);
		cr_expect(strstr(out, "audit: all OK"), "%s", out);
	}
	{
		char *argv[] = { ctl, "--socket", svc.sock, "metrics", NULL };

		cr_expect_eq(run(0, argv, &out), 0, "%s", out);
		cr_expect(strstr(out, "# TYPE dmasvc_events_total counter\ndmasvc_events_total 2\n"), "%s", out);
		cr_expect(strstr(out, "dmasvc_backend_calls_total{op=\"map\"} 3\n"), "%s", out);
		const char *line;

		snprintf(want, sizeof(want), "dmasvc_region_pinned_bytes{session=\"%u\",region=\"",
			 dmasvc_session_id(c));
		line = strstr(out, want);
		cr_expect(line && strchr(line, '\n') && !strncmp(strchr(line, '}'), "} 6291456\n", 10),
			  "%s", out);
		cr_expect(strstr(out, "dmasvc_event_latency_seconds_count 2\n"), "%s", out);
		cr_expect(strstr(out, "dmasvc_session_areas{session="), "%s", out);
		cr_expect(strstr(out, "dmasvc_sessions 1\n"), "%s", out);
	}
	{
		char *argv[] = { ctl, "--socket", svc.sock, "frob", NULL };

		cr_expect_eq(run(0, argv, &out), 2);
	}
	{
		char *argv[] = { ctl, "--socket", "/nonexistent.sock", "status", NULL };

		cr_expect_eq(run(0, argv, &out), 3);
	}
	dmasvc_disconnect(c);
	close(fd);
	cr_expect_eq(stop(), 0);
}

Test(process, stats_line_every_interval)
{
	const char *extra[] = { "--stats-interval", "1", NULL };

	start(extra);
	for (int i = 0; i < 300 && !strstr(slurp(svc.log), "stats: sessions"); i++)
		usleep(10000);
	cr_expect(strstr(slurp(svc.log), "stats: sessions 0 events 0"), "%s", slurp(svc.log));
	cr_expect(strstr(slurp(svc.log), "(drain to CQE)"), "the latency says what it measures");
	cr_expect_eq(stop(), 0);
}

/* ---- a raw client: HELLO and RING_SETUP by hand, then the ring itself ---- */

static int raw_call(int sock, uint16_t cmd, const void *body, size_t len, void *reply, size_t rlen,
		    int *fds, int nfds)
{
	unsigned char out[DMASVC_MSG_MAX], in[DMASVC_MSG_MAX];
	struct dmasvc_msg_hdr h = { .size = (uint32_t)(sizeof(h) + len), .cmd = cmd, .msg_id = cmd };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 3)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = in, .iov_len = sizeof(in) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
			     .msg_controllen = sizeof(cbuf.buf) };
	struct cmsghdr *c;
	ssize_t n;

	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), body, len);
	cr_assert_eq(send(sock, out, h.size, 0), (ssize_t)h.size);
	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	cr_assert_gt(n, (ssize_t)sizeof(h));
	memcpy(&h, in, sizeof(h));
	if (h.error)
		return -(int)h.error;
	memcpy(reply, in + sizeof(h), rlen);
	c = CMSG_FIRSTHDR(&mh);
	if (nfds) {
		cr_assert(c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int) * nfds));
		memcpy(fds, CMSG_DATA(c), sizeof(int) * nfds);
	}
	return 0;
}

/* Wait for the completion eventfd (the service signals only when we said we sleep). */
static int reap(struct ring_cq_consumer *cq, int completion, struct dmasvc_cqe *out, unsigned int max)
{
	int n = ring_cq_drain(cq, out, max);

	for (int tries = 0; n == 0 && tries < 100; tries++) {
		if (ring_cq_drain_wait_begin(cq) == 1)
			ring_eventfd_wait(completion, 50);
		ring_cq_drain_wait_end(cq);
		n = ring_cq_drain(cq, out, max);
	}
	return n;
}

Test(process, real_loop_doorbell_and_full_cq)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dmasvc_hello hello = { .major = DMASVC_PROTO_MAJOR };
	struct dmasvc_hello_reply hr;
	struct dmasvc_ring_setup rs = { .sq_entries = 8, .cq_entries = 8 };
	struct dmasvc_ring_setup_reply rr;
	struct ring_params p = { .sq_entries = 8, .cq_entries = 8 };
	struct ring_mapping m;
	struct ring_sq_producer sq;
	struct ring_cq_consumer cq;
	struct dmasvc_cqe cqe[8];
	uint64_t posted = 0, reaped = 0;
	int sock, fds[3], cq_waits = 0;

	start(NULL);
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, svc.sock);
	cr_assert_eq(connect(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(raw_call(sock, DMASVC_CMD_HELLO, &hello, sizeof(hello), &hr, sizeof(hr), NULL, 0), 0);
	cr_assert_eq(raw_call(sock, DMASVC_CMD_RING_SETUP, &rs, sizeof(rs), &rr, sizeof(rr), fds, 3), 0);
	cr_assert_eq(ring_map(&m, fds[0], &p), 0);
	cr_expect_eq(rr.ring_size, m.size);
	cr_assert_eq(ring_sq_producer_init(&sq, &m), 0);
	cr_assert_eq(ring_cq_consumer_init(&cq, &m), 0);

	for (int round = 0; round < 50; round++) {
		/* post 16 NOPs into an 8-entry SQ and an 8-entry CQ without reaping in between */
		for (int k = 0; k < 2; k++) {
			for (int i = 0; i < 8; i++) {
				struct dmasvc_sqe e = { .opcode = DMASVC_OP_NOP, .user_data = posted };
				int ret;

				for (int w = 0; (ret = ring_sq_post(&sq, &e, 1)) == 0 && w < 200; w++)
					usleep(1000); /* SQ full until the service drains */
				cr_assert_eq(ret, 1, "round %d: SQ stayed full", round);
				posted++;
				if (ring_sq_post_should_wake(&sq))
					ring_eventfd_signal(fds[1]);
			}
			usleep(2000);
		}
		while (reaped < posted) {
			int n = reap(&cq, fds[2], cqe, 8);

			cr_assert_gt(n, 0, "round %d: completions stopped at %llu of %llu", round,
				     (unsigned long long)reaped, (unsigned long long)posted);
			if (ring_cq_drain_should_wake(&cq)) {
				ring_eventfd_signal(fds[1]); /* the service waits for CQ space */
				cq_waits++;
			}
			for (int i = 0; i < n; i++) {
				cr_assert_eq(cqe[i].user_data, reaped, "in order, none lost");
				cr_assert_eq(cqe[i].res, 0);
				reaped++;
			}
		}
	}
	cr_expect_eq(reaped, 800);
	cr_expect_gt(cq_waits, 0, "the service did wait on a full CQ");
	ring_unmap(&m);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	close(sock);
	cr_expect_eq(stop(), 0);
}

Test(process, a_request_flood_does_not_starve_other_sessions)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dmasvc_hello hello = { .major = DMASVC_PROTO_MAJOR };
	struct dmasvc_hello_reply hr;
	struct dmasvc_query q = { .what = DMASVC_QUERY_STATUS };
	unsigned char pkt[64];
	struct dmasvc_msg_hdr h = { .size = sizeof(h) + sizeof(q), .cmd = DMASVC_CMD_QUERY };
	char *ctl = getenv("DMASVCCTL_BIN"), *out;
	int flood;

	start(NULL);
	flood = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, svc.sock);
	cr_assert_eq(connect(flood, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(raw_call(flood, DMASVC_CMD_HELLO, &hello, sizeof(hello), &hr, sizeof(hr), NULL, 0), 0);
	/* queue many requests without reading replies: the service answers in turns of 32 */
	memcpy(pkt, &h, sizeof(h));
	memcpy(pkt + sizeof(h), &q, sizeof(q));
	for (int i = 0; i < 100; i++)
		if (send(flood, pkt, h.size, MSG_DONTWAIT) != (ssize_t)h.size)
			break;
	{
		char *argv[] = { ctl, "--socket", svc.sock, "status", NULL };

		cr_expect_eq(run(0, argv, &out), 0, "another session is served: %s", out);
	}
	close(flood);
	cr_expect_eq(stop(), 0);
}

/* ---- latency isolation: a big burst runs on its session's executor ---- */

struct big_pop {
	struct dmasvc_client *c;
	uint32_t region;
	uint64_t len;
	int res;
	uint64_t end_ns; /* when the populate returned; read after the join */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *big_populate(void *arg)
{
	struct big_pop *b = arg;

	b->res = dmasvc_populate(b->c, b->region, 0, b->len);
	b->end_ns = mono_ns();
	return NULL;
}

static int add_client_region(struct dmasvc_client *c, int fd, uint64_t size, uint64_t iova)
{
	struct dmasvc_region_desc d = { .size = size, .iova = iova, .granule = 2 * MB };
	int mem = dmasvc_memory_add(c, fd, size, 0);

	cr_assert_geq(mem, 0, "%s", dmasvc_last_error(c));
	d.mem_id = (uint32_t)mem;
	return dmasvc_region_add(c, &d);
}

Test(process, a_big_burst_does_not_hold_up_other_sessions)
{
	const uint64_t big = 512 * MB;
	struct dmasvc_client *a, *b;
	struct dmasvc_connect_opts o = { .timeout_ms = 60000 };
	int fa = make_memfd(big, F_SEAL_SHRINK), fb = make_memfd(4 * MB, F_SEAL_SHRINK);
	int ra, rb, overtaken = 0;

	start(NULL);
	cr_assert_eq(dmasvc_connect(svc.sock, &o, &a), 0);
	cr_assert_eq(dmasvc_connect(svc.sock, &o, &b), 0);
	ra = add_client_region(a, fa, big, 1ull << 32);
	rb = add_client_region(b, fb, 4 * MB, 1ull << 32);
	cr_assert_geq(ra, 0);
	cr_assert_geq(rb, 0);
	for (int attempt = 0; attempt < 3 && !overtaken; attempt++) {
		struct big_pop bp = { .c = a, .region = (uint32_t)ra, .len = big };
		pthread_t t;

		cr_assert_eq(pthread_create(&t, NULL, big_populate, &bp), 0);
		/* wait until A's burst is pinning, then run B's small events */
		for (int i = 0; i < 2000 && vmlck_of(svc.pid) == 0; i++)
			usleep(500);
		uint64_t b0 = mono_ns(), b1;

		cr_assert_eq(dmasvc_populate(b, (uint32_t)rb, 0, 2 * MB), 0);
		b1 = mono_ns();
		cr_assert_eq(dmasvc_discard(b, (uint32_t)rb, 0, 2 * MB), 0);
		pthread_join(t, NULL);
		/*
		 * Held up, B's populate would end when A's burst ends.  Served
		 * alongside, it takes a small part of what A still had to do
		 * when B started.
		 */
		cr_log_info("attempt %d: B took %llu us, A went on for %llu us after B started", attempt,
			    (unsigned long long)(b1 - b0) / 1000, (unsigned long long)(bp.end_ns - b0) / 1000);
		if ((b1 - b0) * 4 < bp.end_ns - b0)
			overtaken = 1;
		cr_assert_eq(bp.res, 0);
		cr_assert_eq(dmasvc_discard(a, (uint32_t)ra, 0, big), 0);
		cr_assert_eq(fallocate(fa, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)big), 0);
	}
	cr_expect(overtaken, "session B waited for session A's 512 MiB burst in all 3 attempts");
	dmasvc_disconnect(a);
	dmasvc_disconnect(b);
	close(fa);
	close(fb);
	cr_expect_eq(stop(), 0);
}

/*
 * One POPULATE over a 64 GiB region at 4 KiB (16 Mi granules) whose first
 * map fails: the service's memory stays bounded (the planner hands map jobs
 * over in windows; one job per granule would be ~900 MiB), the event fails
 * with the map error and nothing stays pinned.
 */
Test(process, a_huge_failing_populate_costs_little_memory)
{
	const uint64_t size = 64ull << 30;
	struct dmasvc_client *c;
	struct dmasvc_connect_opts o = { .timeout_ms = 60000 };
	struct dmasvc_region_desc d = { .size = size, .iova = 1ull << 40, .granule = 4096 };
	int fd = make_memfd(size, F_SEAL_SHRINK), mem, r;
	uint64_t hwm0, hwm1;

	cr_assert_geq(fd, 0);
	cr_assert_eq(setenv("DMASVC_TEST_SOFT_FAULTS", "map_fail_nth=1", 1), 0);
	/*
	 * --allow-fault-in and no prefault: the 64 GiB are never allocated
	 * (the first map fails before the service touches a page); the VMM's
	 * prefault (the residency rule) would allocate all of them.
	 */
	start((const char *const[]){ "--allow-fault-in", NULL });
	cr_assert_eq(dmasvc_connect(svc.sock, &o, &c), 0);
	cr_assert_eq(dmasvc_set_prefault(c, DMASVC_PREFAULT_CALLER), 0);
	mem = dmasvc_memory_add(c, fd, size, 0);
	cr_assert_geq(mem, 0, "%s", dmasvc_last_error(c));
	d.mem_id = (uint32_t)mem;
	r = dmasvc_region_add(c, &d);
	cr_assert_geq(r, 0, "%s", dmasvc_last_error(c));
	hwm0 = status_bytes(svc.pid, "VmHWM:");
	cr_assert_eq(dmasvc_populate(c, (uint32_t)r, 0, size), -EIO);
	hwm1 = status_bytes(svc.pid, "VmHWM:");
	cr_log_info("service peak RSS grew by %llu KiB", (unsigned long long)(hwm1 - hwm0) >> 10);
	cr_assert_lt(hwm1 - hwm0, 64 * MB, "peak RSS grew by %llu bytes", (unsigned long long)(hwm1 - hwm0));
	cr_assert_eq(vmlck_of(svc.pid), 0, "nothing stays pinned");
	dmasvc_disconnect(c);
	close(fd);
	cr_expect_eq(stop(), 0);
}

/* Occurrences of @needle in @hay. */
static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Wait until the log holds @n "backend soft," start lines (images started). */
static bool wait_images(int n)
{
	for (int i = 0; i < 500; i++) {
		if (count_of(slurp(svc.log), "backend soft,") >= n)
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * In a child: send @cmd with @body, wait for the reply.  Returns its errno
 * (0 for success), or 100+ for a transport failure (no criterion asserts:
 * they would abort the forked child).
 */
static int child_call(int s, uint16_t cmd, const void *body, size_t len)
{
	unsigned char out[DMASVC_MSG_MAX], in[DMASVC_MSG_MAX];
	struct dmasvc_msg_hdr h = { .size = (uint32_t)(sizeof(h) + len), .cmd = cmd, .msg_id = cmd };
	ssize_t n;

	memcpy(out, &h, sizeof(h));
	if (len)
		memcpy(out + sizeof(h), body, len);
	if (send(s, out, h.size, 0) != (ssize_t)h.size)
		return 101;
	n = recv(s, in, sizeof(in), 0);
	if (n < (ssize_t)sizeof(h))
		return 102;
	memcpy(&h, in, sizeof(h));
	return h.error > 99 ? 103 : (int)h.error;
}

/* HELLO then UPGRADE on a raw connection as @uid (0: us); returns UPGRADE's -errno or 0. */
static int upgrade_as(uid_t uid)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct dmasvc_hello h = { .major = DMASVC_PROTO_MAJOR, .minor = DMASVC_PROTO_MINOR };
		int s, ret;

		if (uid && (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0))
			_exit(126);
		s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		memcpy(sa.sun_path, svc.sock, strnlen(svc.sock, sizeof(sa.sun_path) - 1));
		if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(125);
		if (child_call(s, DMASVC_CMD_HELLO, &h, sizeof(h)))
			_exit(124);
		ret = child_call(s, DMASVC_CMD_UPGRADE, NULL, 0);
		_exit(ret);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "the child died: status 0x%x", st);
	cr_assert_lt(WEXITSTATUS(st), 100, "transport failure %d", WEXITSTATUS(st));
	return -WEXITSTATUS(st);
}

/*
 * The planned upgrade on the model (docs/restart.md): UPGRADE from an
 * admin, and SIGHUP, re-execute the service in the same process (same
 * pid) with the same listening socket; the model's session is not
 * resumable, so it ends with the old image (its pins are gone with the
 * old mm, VmLck 0), and new clients are served after it.  UPGRADE from a
 * peer that is not an admin is refused with EPERM and changes nothing.
 */
Test(process, upgrade_reexecs_same_pid_and_socket)
{
	const char *extra[] = { "--keep-sessions", "--allow-uid", "0", "--allow-uid", "65534",
				"--socket-mode", "0666", NULL };
	struct dmasvc_region_desc d = { .size = 16 * MB, .iova = 1ull << 30, .granule = 2 * MB };
	struct dmasvc_client *c;
	struct stat st0, st1;
	char exe0[256], exe1[256], path[64];
	int fd = make_memfd(16 * MB, F_SEAL_SHRINK), mem, r;
	ssize_t n;

	start(extra);
	cr_assert(wait_images(1));
	cr_assert_eq(stat(svc.sock, &st0), 0);
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)svc.pid);
	n = readlink(path, exe0, sizeof(exe0) - 1);
	cr_assert_gt(n, 0);
	exe0[n] = 0;
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	mem = dmasvc_memory_add(c, fd, 16 * MB, 0);
	cr_assert_geq(mem, 0, "%s", dmasvc_last_error(c));
	d.mem_id = (uint32_t)mem;
	r = dmasvc_region_add(c, &d);
	cr_assert_geq(r, 0, "%s", dmasvc_last_error(c));
	cr_assert_eq(dmasvc_populate(c, (uint32_t)r, 0, 8 * MB), 0);
	cr_expect_eq(vmlck_of(svc.pid), 8 * MB);

	cr_expect_eq(upgrade_as(65534), -EPERM, "a non-admin peer cannot upgrade");
	cr_expect(strstr(slurp(svc.log), "UPGRADE is for the service's admins"), "%s", slurp(svc.log));
	usleep(200000);
	cr_expect_eq(count_of(slurp(svc.log), "backend soft,"), 1, "no re-exec: %s", slurp(svc.log));
	cr_expect_eq(vmlck_of(svc.pid), 8 * MB, "the session is untouched");

	cr_expect_eq(upgrade_as(0), 0, "root's UPGRADE is accepted");
	cr_assert(wait_images(2), "the new image started: %s", slurp(svc.log));
	cr_expect_eq(kill(svc.pid, 0), 0, "same pid");
	cr_expect(strstr(slurp(svc.log), "upgrade: executing"), "%s", slurp(svc.log));
	cr_expect(strstr(slurp(svc.log), "(the socket passed by the upgrade)"), "%s", slurp(svc.log));
	n = readlink(path, exe1, sizeof(exe1) - 1);
	cr_assert_gt(n, 0);
	exe1[n] = 0;
	cr_expect_str_eq(exe1, exe0);
	cr_assert_eq(stat(svc.sock, &st1), 0);
	cr_expect(st0.st_ino == st1.st_ino, "the same socket file: not re-bound");
	cr_expect_eq(vmlck_of(svc.pid), 0, "the model's pins ended with the old image");
	cr_expect_lt(dmasvc_populate(c, (uint32_t)r, 8 * MB, 2 * MB), 0, "the old session is gone");
	dmasvc_disconnect(c);

	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0, "a new client is served");
	mem = dmasvc_memory_add(c, fd, 16 * MB, 0);
	cr_assert_geq(mem, 0, "%s", dmasvc_last_error(c));
	d.mem_id = (uint32_t)mem;
	r = dmasvc_region_add(c, &d);
	cr_assert_geq(r, 0, "%s", dmasvc_last_error(c));
	cr_assert_eq(dmasvc_populate(c, (uint32_t)r, 0, 4 * MB), 0);
	cr_expect_eq(vmlck_of(svc.pid), 4 * MB);

	kill(svc.pid, SIGHUP);
	cr_assert(wait_images(3), "SIGHUP re-executes too: %s", slurp(svc.log));
	cr_expect_eq(kill(svc.pid, 0), 0, "same pid");
	dmasvc_disconnect(c);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0, "served after the second upgrade");
	dmasvc_disconnect(c);
	cr_expect_eq(stop(), 0);
	cr_expect_neq(access(svc.sock, F_OK), 0, "its own socket file removed at the stop");
	close(fd);
}
