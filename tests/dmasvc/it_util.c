/* SPDX-License-Identifier: MIT */
/* it_util.c - integration-test helpers (see it_util.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/proto_fd.h"

#include "it_util.h"

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int it_raw_connect(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int it_svc_start(struct it_svc *s, const char *const *extra)
{
	const char *bin = getenv("DMASVC_BIN");
	const char *argv[32];
	pid_t parent = getpid();
	int n = 0;

	if (!bin)
		return -ENOENT;
	if (!s->dir[0]) {
		snprintf(s->dir, sizeof(s->dir), "/tmp/dmasvc-it.XXXXXX");
		if (!mkdtemp(s->dir))
			return -errno;
		snprintf(s->sock, sizeof(s->sock), "%s/dmasvc.sock", s->dir);
	}
	unlink(s->sock); /* a SIGKILLed instance leaves its socket file */
	argv[n++] = bin;
	argv[n++] = "--soft-iommu";
	argv[n++] = "--config"; /* not this machine's /etc/dmasvc/dmasvc.conf */
	argv[n++] = "/dev/null";
	argv[n++] = "--socket";
	argv[n++] = s->sock;
	argv[n++] = "--log-level";
	argv[n++] = getenv("DMASVC_IT_LOG_LEVEL") ? getenv("DMASVC_IT_LOG_LEVEL") : "warn";
	for (int i = 0; extra && extra[i] && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;

	s->pid = fork();
	if (s->pid < 0)
		return -errno;
	if (s->pid == 0) {
		/* Die with the test: no stray daemon after a failed assert. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int fd;

		if (!it_svc_alive(s))
			return -ECHILD;
		fd = it_raw_connect(s->sock);
		if (fd >= 0) {
			/*
			 * The socket listens before the event loop has its
			 * signalfd and timerfd: "started" is the loop's answer
			 * (a reply, or a close for a refused peer), so a test
			 * that counts the service's fds sees it complete.
			 */
			(void)it_raw_hello(fd);
			close(fd);
			return 0;
		}
		sleep_ms(10);
	}
	it_svc_kill(s);
	return -ETIMEDOUT;
}

bool it_svc_alive(const struct it_svc *s)
{
	int status;

	if (s->pid <= 0)
		return false;
	return waitpid(s->pid, &status, WNOHANG) == 0;
}

int it_svc_stop(struct it_svc *s)
{
	int status = 0;

	if (s->pid <= 0)
		return -ECHILD;
	kill(s->pid, SIGTERM);
	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(s->pid, &status, WNOHANG);

		if (r == s->pid) {
			s->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		sleep_ms(10);
	}
	it_svc_kill(s);
	return -ETIMEDOUT;
}

void it_svc_kill(struct it_svc *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	s->pid = 0;
}

int it_svc_finish(struct it_svc *s)
{
	int rc = s->pid ? it_svc_stop(s) : 0;

	it_svc_cleanup(s);
	return rc;
}

void it_svc_cleanup(struct it_svc *s)
{
	it_svc_kill(s);
	if (s->dir[0]) {
		char lock[sizeof(s->sock) + 8];

		snprintf(lock, sizeof(lock), "%s.lock", s->sock);
		unlink(s->sock);
		unlink(lock);
		rmdir(s->dir);
		s->dir[0] = '\0';
	}
}

int it_count_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

int64_t it_proc_field(const char *path, const char *field)
{
	char line[256];
	size_t flen = strlen(field);
	int64_t v = -ENOENT;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, flen) && line[flen] == ':' &&
		    sscanf(line + flen + 1, "%" SCNd64, &v) == 1)
			break;
	fclose(f);
	return v;
}

int64_t it_proc_status_bytes(pid_t pid, const char *field)
{
	char path[64];
	int64_t kb;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	kb = it_proc_field(path, field);
	return kb < 0 ? kb : kb * 1024;
}

int64_t it_vmlck(pid_t pid)
{
	int64_t pin = it_proc_status_bytes(pid, "VmPin"), lck = it_proc_status_bytes(pid, "VmLck");

	return pin < 0 ? pin : lck < 0 ? lck : pin + lck;
}

int64_t it_vmrss(pid_t pid)
{
	return it_proc_status_bytes(pid, "VmRSS");
}

uint64_t it_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t it_wait_vmlck(pid_t pid, int64_t bytes, int ms)
{
	int64_t v = it_vmlck(pid);

	for (int waited = 0; v != bytes && waited < ms; waited += 5) {
		sleep_ms(5);
		v = it_vmlck(pid);
	}
	return v;
}

int it_memfd(uint64_t size, bool sealed)
{
	int fd = memfd_create("it-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 ||
	    (sealed && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int it_memfd_prefault(int fd, uint64_t off, uint64_t len)
{
	void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
	int err;

	if (p == MAP_FAILED)
		return -errno;
	err = dmasvc_prefault(p, (size_t)len, true);
	munmap(p, (size_t)len);
	return err;
}

/* ---- comparing the service with a client ---- */

struct run_list {
	uint64_t (*runs)[2];
	size_t n, cap;
};

static int collect_run(void *arg, uint64_t off, uint64_t len)
{
	struct run_list *l = arg;

	if (l->n == l->cap) {
		void *p = realloc(l->runs, (l->cap ? l->cap * 2 : 64) * sizeof(*l->runs));

		if (!p)
			return -ENOMEM;
		l->runs = p;
		l->cap = l->cap ? l->cap * 2 : 64;
	}
	l->runs[l->n][0] = off;
	l->runs[l->n][1] = len;
	l->n++;
	return 0;
}

#define MAX_EXTENTS (1u << 18)

int it_check_region(struct dmasvc_client *c, uint32_t region, uint64_t iova, char *why,
		    size_t whylen)
{
	struct dmasvc_stat_region regs[64];
	struct dmasvc_audit_extent *ext = NULL;
	struct run_list l = { 0 };
	int64_t mine = dmasvc_region_populated_bytes(c, region);
	int n, ret = -EINVAL;
	size_t r = 0;
	bool found = false;

	why[0] = '\0';
	n = dmasvc_query(c, DMASVC_QUERY_REGIONS, 0, 0, regs, sizeof(regs[0]), 64);
	if (n < 0) {
		snprintf(why, whylen, "QUERY REGIONS: %s", strerror(-n));
		return n;
	}
	for (int i = 0; i < n; i++) {
		if (regs[i].region_id != region)
			continue;
		found = true;
		if (regs[i].populated_bytes != (uint64_t)mine || regs[i].mapped_bytes != (uint64_t)mine ||
		    regs[i].pinned_bytes != (uint64_t)mine) {
			snprintf(why, whylen,
				 "region %u: client %" PRId64 " B, service populated %" PRIu64
				 " mapped %" PRIu64 " pinned %" PRIu64,
				 region, mine, regs[i].populated_bytes, regs[i].mapped_bytes,
				 regs[i].pinned_bytes);
			return -EINVAL;
		}
	}
	if (!found) {
		snprintf(why, whylen, "region %u not in QUERY REGIONS (%d records)", region, n);
		return -ENOENT;
	}
	ext = calloc(MAX_EXTENTS, sizeof(*ext));
	if (!ext)
		return -ENOMEM;
	n = dmasvc_query(c, DMASVC_QUERY_AUDIT, 0, region, ext, sizeof(*ext), MAX_EXTENTS);
	if (n < 0) {
		snprintf(why, whylen, "QUERY AUDIT: %s", strerror(-n));
		ret = n;
		goto out;
	}
	if (dmasvc_region_for_each_populated(c, region, collect_run, &l)) {
		ret = -ENOMEM;
		goto out;
	}
	/* Merge adjacent OK extents and compare with the bitmap's runs. */
	for (int i = 0; i < n;) {
		uint64_t start = ext[i].iova, end = ext[i].iova + ext[i].length;

		if (ext[i].state != DMASVC_AUDIT_OK) {
			snprintf(why, whylen, "audit extent 0x%" PRIx64 "+0x%" PRIx64 " state %u",
				 ext[i].iova, ext[i].length, ext[i].state);
			goto out;
		}
		for (i++; i < n && ext[i].state == DMASVC_AUDIT_OK && ext[i].iova == end; i++)
			end += ext[i].length;
		if (r >= l.n || l.runs[r][0] + iova != start || l.runs[r][1] != end - start) {
			snprintf(why, whylen,
				 "audit run 0x%" PRIx64 "-0x%" PRIx64 " vs client run #%zu %s", start, end,
				 r, r < l.n ? "differs" : "missing");
			goto out;
		}
		r++;
	}
	if (r != l.n) {
		snprintf(why, whylen, "client has %zu runs, service holds %zu", l.n, r);
		goto out;
	}
	ret = 0;
out:
	free(l.runs);
	free(ext);
	return ret;
}

static int count_all(const char *sock, uint32_t what, size_t rec)
{
	struct dmasvc_client *c;
	void *buf = calloc(1024, rec);
	int n;

	if (!buf)
		return -ENOMEM;
	n = dmasvc_connect(sock, NULL, &c);
	if (!n) {
		n = dmasvc_query(c, what, DMASVC_QUERY_F_ALL_SESSIONS, 0, buf, rec, 1024);
		dmasvc_disconnect(c);
	}
	free(buf);
	return n;
}

int it_count_sessions(const char *sock)
{
	/* The connection that asks is itself a session: do not count it. */
	int n = count_all(sock, DMASVC_QUERY_SESSIONS, sizeof(struct dmasvc_stat_session));

	return n > 0 ? n - 1 : n;
}

int it_count_all_regions(const char *sock)
{
	return count_all(sock, DMASVC_QUERY_REGIONS, sizeof(struct dmasvc_stat_region));
}

/* ---- raw protocol ---- */

int it_send_packet(int fd, const struct dmasvc_msg_hdr *hdr, const void *body, uint32_t len,
		   const int *fds, unsigned nfds)
{
	struct iovec iov[2] = { { (void *)hdr, sizeof(*hdr) }, { (void *)body, len } };
	ssize_t n = proto_send(fd, iov, len ? 2 : 1, fds, nfds, 0);

	return n < 0 ? (int)n : 0;
}

int it_raw_send(int fd, uint16_t cmd, uint32_t msg_id, const void *body, uint32_t len,
		const int *fds, unsigned nfds)
{
	struct dmasvc_msg_hdr hdr = { .size = (uint32_t)sizeof(hdr) + len, .cmd = cmd, .msg_id = msg_id };

	return it_send_packet(fd, &hdr, body, len, fds, nfds);
}

int it_raw_recv(int fd, struct dmasvc_msg_hdr *hdr, void *body, uint32_t cap, int *fds,
		unsigned *nfds, int ms)
{
	char pkt[DMASVC_MSG_MAX + 64];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int got[4], msg_flags;
	unsigned int ngot;
	ssize_t n;

	if (nfds)
		*nfds = 0;
	if (poll(&pfd, 1, ms) <= 0)
		return -ETIMEDOUT;
	n = proto_recv(fd, pkt, sizeof(pkt), got, 4, &ngot, &msg_flags, MSG_DONTWAIT);
	if (n < 0)
		return n == -ECONNRESET ? -ENOTCONN : (int)n;
	for (unsigned int i = 0; i < ngot && i < 4; i++) {
		if (fds && nfds)
			fds[(*nfds)++] = got[i];
		else
			close(got[i]);
	}
	if (n == 0)
		return -ENOTCONN;
	if ((size_t)n < sizeof(*hdr))
		return -EPROTO;
	memcpy(hdr, pkt, sizeof(*hdr));
	if (body && cap) {
		size_t blen = (size_t)n - sizeof(*hdr);

		memset(body, 0, cap);
		memcpy(body, pkt + sizeof(*hdr), blen < cap ? blen : cap);
	}
	return (int)hdr->error;
}

int it_raw_call(int fd, uint16_t cmd, const void *body, uint32_t len, const int *fds,
		unsigned nfds, void *reply, uint32_t cap, int *rfds, unsigned *nrfds)
{
	static uint32_t id = 1000;
	struct dmasvc_msg_hdr hdr;
	int err = it_raw_send(fd, cmd, ++id, body, len, fds, nfds);

	if (err)
		return err;
	err = it_raw_recv(fd, &hdr, reply, cap, rfds, nrfds, 5000);
	if (err >= 0 && (hdr.msg_id != id || !(hdr.flags & DMASVC_MSG_REPLY)))
		return -EPROTO;
	return err;
}

int it_raw_hello(int fd)
{
	struct dmasvc_hello h = { .major = DMASVC_PROTO_MAJOR, .minor = DMASVC_PROTO_MINOR };
	char reply[512];

	return it_raw_call(fd, DMASVC_CMD_HELLO, &h, sizeof(h), NULL, 0, reply, sizeof(reply), NULL,
			   NULL);
}

bool it_peer_closed(int fd, int ms)
{
	char buf[DMASVC_MSG_MAX];

	for (int waited = 0; waited <= ms; waited += 10) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, 10) > 0) {
			ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (n == 0 || (n < 0 && errno == ECONNRESET))
				return true;
			if (pfd.revents & POLLHUP)
				return true;
		}
	}
	return false;
}
