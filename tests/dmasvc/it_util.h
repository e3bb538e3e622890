/* SPDX-License-Identifier: MIT */
/*
 * it_util.h - helpers for the dmasvc integration tests: start and stop the
 * real dmasvc binary (path in $DMASVC_BIN, set by meson) on a private
 * socket in a temp dir, read its VmLck, speak the raw control protocol
 * (for hostile clients), and compare the service's view with a client's.
 *
 * Every service a test starts dies with the test process
 * (PR_SET_PDEATHSIG), so a failing assert leaves no stray daemon.
 * Functions return 0 / a value, or -errno; the tests assert.
 */
#ifndef DMASVC_TEST_IT_UTIL_H
#define DMASVC_TEST_IT_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"

struct it_svc {
	pid_t pid;            /* 0 when not running */
	char dir[64];         /* private temp dir */
	char sock[128];       /* dir/dmasvc.sock */
};

/*
 * it_svc_start: start `dmasvc --soft-iommu --config /dev/null --socket
 * <dir>/dmasvc.sock --log-level warn` plus @extra (NULL-terminated, may be NULL); wait until
 * its event loop answers a HELLO (5 s to accept, then up to 5 s for the
 * answer; a refused peer's close counts).  Reuses s->dir if set (restart).
 */
int it_svc_start(struct it_svc *s, const char *const *extra);

/* it_svc_stop: SIGTERM, wait; returns the exit status (or 128 + signal). */
int it_svc_stop(struct it_svc *s);

/* it_svc_kill: SIGKILL and reap (never fails). */
void it_svc_kill(struct it_svc *s);

/* it_svc_finish: the fixture teardown: stop (SIGTERM) if running, clean
 * up; returns the exit status, 0 if it was not running. */
int it_svc_finish(struct it_svc *s);

/*
 * Suite fixtures for the Criterion suites; unlike the rest of this file
 * they assert (it_suite.c).
 * it_suite_start: start @s with @extra (it_svc_start; asserts it started)
 *   and return the service's VmLck in bytes (asserted readable), the
 *   baseline of the suite's "nothing left pinned" checks.
 * it_suite_stop: the suite's teardown: it_svc_finish(@s), and expect the
 *   service to have exited 0 on SIGTERM (0 too if it was not running).
 */
int64_t it_suite_start(struct it_svc *s, const char *const *extra);
void it_suite_stop(struct it_svc *s);

/*
 * IT_SUITE(name, ...): the Criterion suite @name (more TestSuite options
 * after it) over one plain service for each test: defines the file's
 * `svc` and its VmLck baseline `base_vmlck`, started by it_suite_start()
 * before each test and stopped by it_suite_stop() after it.
 */
#define IT_SUITE(name, ...)                                                                \
	static struct it_svc svc;                                                          \
	static int64_t base_vmlck;                                                         \
	static void name##_start(void)                                                     \
	{                                                                                  \
		base_vmlck = it_suite_start(&svc, NULL);                                   \
	}                                                                                  \
	static void name##_stop(void)                                                      \
	{                                                                                  \
		it_suite_stop(&svc);                                                       \
	}                                                                                  \
	TestSuite(name, .init = name##_start, .fini = name##_stop, __VA_ARGS__)

/* it_svc_cleanup: kill if running, remove the temp dir. */
void it_svc_cleanup(struct it_svc *s);

/* it_svc_alive: the process still runs. */
bool it_svc_alive(const struct it_svc *s);

/* it_count_fds: the open fds of @pid, or -1. */
int it_count_fds(pid_t pid);

/*
 * it_proc_field: N of the first "@field: N" line of the /proc file @path
 * (/proc/meminfo, a task's status), or -errno (-ENOENT: no such line).
 */
int64_t it_proc_field(const char *path, const char *field);

/*
 * it_proc_status_bytes: the "@field: N kB" line of /proc/@pid/status in
 * bytes, or -errno (-ENOENT: no such line).  it_vmrss: VmRSS.  it_vmlck:
 * what the kernel counts as pinned by @pid, VmPin + VmLck (the software
 * model pins with io_uring registered buffers, VmPin, or with mlock where
 * io_uring is not available, VmLck; iommufd pins count in VmPin; the
 * service pins nothing else).
 */
int64_t it_proc_status_bytes(pid_t pid, const char *field);
int64_t it_vmlck(pid_t pid);
int64_t it_vmrss(pid_t pid);

/* it_now_ms: CLOCK_MONOTONIC in milliseconds (for timing a call in a test). */
uint64_t it_now_ms(void);

/* it_wait_vmlck: wait up to @ms for it_vmlck(@pid) to equal @bytes; returns the last value. */
int64_t it_wait_vmlck(pid_t pid, int64_t bytes, int ms);

/* it_memfd: a memfd of @size bytes sealed against shrink/grow (or not). */
int it_memfd(uint64_t size, bool sealed);

/*
 * it_memfd_prefault: allocate [@off, @off + @len) of memfd @fd in this
 * process, as a VMM does before it posts a populate (the residency rule,
 * docs/design.md): a temporary shared mapping, dmasvc_prefault(), unmap;
 * the pages stay in the memfd.  Returns 0 or -errno.
 */
int it_memfd_prefault(int fd, uint64_t off, uint64_t len);

/*
 * it_check_client: the service's view of @region equals the client's bitmap:
 * QUERY REGIONS populated/mapped bytes, and QUERY AUDIT extents all OK and
 * covering exactly the bitmap's runs at @iova.  Returns 0 or a negative
 * code with a message in @why.
 */
int it_check_region(struct dmasvc_client *c, uint32_t region, uint64_t iova, char *why,
		    size_t whylen);

/* it_all_sessions: records of QUERY SESSIONS with F_ALL_SESSIONS via a fresh
 * connection to @sock (-errno on failure). */
int it_count_sessions(const char *sock);
int it_count_all_regions(const char *sock);

/* ---- raw protocol ---- */

/* it_raw_connect: a connected SOCK_SEQPACKET fd to @sock, or -errno. */
int it_raw_connect(const char *sock);

/* it_send_packet: send @hdr as given, then @len body bytes and @nfds (<= 8)
 * fds in one packet.  Returns 0 or -errno. */
int it_send_packet(int fd, const struct dmasvc_msg_hdr *hdr, const void *body, uint32_t len,
		   const int *fds, unsigned nfds);

/* it_raw_send: one request; @fds may be NULL.  Returns 0 or -errno. */
int it_raw_send(int fd, uint16_t cmd, uint32_t msg_id, const void *body, uint32_t len,
		const int *fds, unsigned nfds);

/*
 * it_raw_recv: one reply (timeout @ms).  Copies the body (after the header)
 * into @body (up to @cap), received fds into @fds (up to 4, *nfds set).
 * Returns the service's positive errno (0 = success), -ENOTCONN on EOF, or
 * -errno.
 */
int it_raw_recv(int fd, struct dmasvc_msg_hdr *hdr, void *body, uint32_t cap, int *fds,
		unsigned *nfds, int ms);

/* it_raw_call: send then receive; returns the reply's errno / -errno. */
int it_raw_call(int fd, uint16_t cmd, const void *body, uint32_t len, const int *fds,
		unsigned nfds, void *reply, uint32_t cap, int *rfds, unsigned *nrfds);

/* it_raw_hello: HELLO; 0 or error. */
int it_raw_hello(int fd);

/* it_peer_closed: wait up to @ms for the service to close @fd. */
bool it_peer_closed(int fd, int ms);

#endif /* DMASVC_TEST_IT_UTIL_H */
