/* SPDX-License-Identifier: MIT */
/*
 * ring_test_util.c - implementation of ring_test_util.h (see there).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring_test_util.h"

uint32_t t_burst(struct t_rng *r, uint32_t max)
{
	uint32_t pick = t_rng_range(r, 0, 7);

	if (pick == 0)
		return 1;
	if (pick == 1)
		return max;
	return t_rng_range(r, 1, max);
}

void t_sqe_fill(struct dmasvc_sqe *sqe, uint64_t seq)
{
	*sqe = (struct dmasvc_sqe){
		.opcode = (uint8_t)(seq % DMASVC_OP_MAX),
		.flags = 0,
		.region_id = (uint32_t)(seq * 2654435761u),
		.offset = seq << 12,
		.length = ~seq,
		.user_data = seq,
	};
}

bool t_sqe_check(const struct dmasvc_sqe *sqe, uint64_t seq)
{
	struct dmasvc_sqe want;

	t_sqe_fill(&want, seq);
	return sqe->opcode == want.opcode && sqe->flags == 0 && sqe->__reserved == 0 &&
	       sqe->region_id == want.region_id && sqe->offset == want.offset &&
	       sqe->length == want.length && sqe->user_data == want.user_data;
}

void t_cqe_fill(struct dmasvc_cqe *cqe, uint64_t seq)
{
	*cqe = (struct dmasvc_cqe){
		.user_data = seq,
		.res = -(int32_t)(seq % 4096),
		.flags = (uint32_t)(seq >> 32),
	};
}

bool t_cqe_check(const struct dmasvc_cqe *cqe, uint64_t seq)
{
	struct dmasvc_cqe want;

	t_cqe_fill(&want, seq);
	return cqe->user_data == want.user_data && cqe->res == want.res && cqe->flags == want.flags;
}

void *t_map_guarded(int memfd, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *area, *ring;

	area = mmap(NULL, size + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return NULL;
	ring = mmap(area + page, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, 0);
	if (ring == MAP_FAILED) {
		munmap(area, size + 2 * page);
		return NULL;
	}
	return ring;
}

void t_unmap_guarded(void *ring, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	munmap((char *)ring - page, size + 2 * page);
}

void *t_map_elsewhere(int memfd, size_t size, const void *avoid)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (p == avoid) { /* cannot happen while @avoid is mapped; be sure */
		munmap(p, size);
		return NULL;
	}
	return p;
}

void *t_shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void t_shared_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

pid_t t_spawn(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid > 0)
		return pid;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(100);
	_exit(fn(arg) & 0xff);
}

int t_reap(pid_t pid, int timeout_s)
{
	uint64_t deadline = t_now_ns() + (uint64_t)timeout_s * 1000000000ull;
	struct timespec nap = { .tv_nsec = 2 * 1000 * 1000 };
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (t_now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -ETIMEDOUT;
		}
		nanosleep(&nap, NULL);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

uint64_t t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
