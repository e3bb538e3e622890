// SPDX-License-Identifier: MIT
/*
 * memcg-charge.c - guest memory is charged to its VM (docs/design.md, "Who
 * allocates guest memory"), measured with the kernel's own numbers: cgroup
 * v2 memory.current of the VMM's cgroup and of the service's, and the
 * service's VmPin, on the real iommufd backend in the vm-tier guest.
 *
 * Usage: memcg-charge prefault|fault-in SOCKET CGROUP_ROOT
 *   (env: DMASVC_PID, the daemon's pid, as set by with-daemon; EDU_CDEV;
 *   the daemon runs in CGROUP_ROOT/svc, this program moves itself to
 *   CGROUP_ROOT/vm1 before it allocates anything:
 *   guest/tests/70-memcg-charge-iommufd)
 *
 * The plugging client attaches the edu cdev to its session first: iommufd
 * pins pages only for an IOAS with a domain attached (without one, a map
 * records the area and pins nothing, so nothing would be faulted either).
 *
 *   prefault  (daemon without --allow-fault-in) a libdmasvc client in its
 *             default mode plugs N = 64 MiB of a fresh memfd: the first
 *             half in one blocking populate (pipelined: the library's
 *             threads fault it in with MADV_POPULATE_WRITE through its own
 *             mapping, so the client's RssShmem grows by N/2), the second
 *             granule by granule (the daemon guards its mapping, so the
 *             library allocates each with fallocate(): the client's
 *             RssShmem grows by less than N/16 over that half): vm1's
 *             memory.current grows by N (at least N - 1 MiB, at most
 *             N + N/8) and svc's by less than N/16; VmPin = N.  Then
 *             a client in DMASVC_PREFAULT_CALLER mode that faults nothing in
 *             populates N bytes of holes: -ENXIO, dmasvc_last_error() names
 *             the range, VmPin stays N, svc's memory.current grows by less
 *             than N/16 and the memfd is still all holes.
 *   fault-in  (daemon with --allow-fault-in; the negative control) the same
 *             populate of holes is accepted and the charge lands in svc: svc
 *             grows by at least N - 1 MiB, vm1 by less than N/16.
 *
 * Tolerances: the charged pages are exact, but memory.current also counts
 * each CPU's pre-charged stock (up to 64 pages per CPU, charged to the
 * counter in advance: -1 MiB covers 2 CPUs twice over) and the kernel
 * memory of the act: page tables of the mapping that faulted (1/512 of N),
 * the memfd's xarray nodes, iommufd's pinned-PFN store and area objects
 * (GFP_KERNEL_ACCOUNT, about 1/512 of N); N/16 and N/8 are far above those
 * and far below N, so the two outcomes cannot be confused.
 *
 * Prints "memcg-charge[<mode>]: PASS ..." with the measured numbers and
 * exits 0, or the failed check and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "svc-audit.h"

#define MiB ((uint64_t)1 << 20)
#define N (64 * MiB)
#define GRANULE (2 * MiB)

static const char *mode;

static void __attribute__((format(printf, 1, 2), noreturn)) fail(const char *fmt, ...)
{
	va_list ap;

	printf("memcg-charge[%s]: FAIL ", mode);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(1);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		fail("write '%s' to %s: %s", text, path, strerror(errno));
	close(fd);
}

/* memory.current of cgroup @root/@name, in bytes. */
static uint64_t current(const char *root, const char *name)
{
	char path[256];
	unsigned long long v;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/memory.current", root, name);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%llu", &v) != 1)
		fail("read %s: %s", path, strerror(errno));
	fclose(f);
	return v;
}

/* A sealed memfd of N bytes, all holes. */
static int guest_memfd(void)
{
	int fd = memfd_create("memcg-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, (off_t)N) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		fail("memfd: %s", strerror(errno));
	return fd;
}

/* Pages of @fd in memory, by mincore on a fresh mapping (faults nothing in). */
static uint64_t resident_pages(int fd)
{
	static unsigned char vec[N / 4096];
	void *p = mmap(NULL, N, PROT_READ, MAP_SHARED, fd, 0);
	uint64_t n = 0;

	if (p == MAP_FAILED || mincore(p, N, vec) < 0)
		fail("mincore: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(vec); i++)
		n += vec[i] & 1;
	munmap(p, N);
	return n;
}

/*
 * Connect, attach the edu cdev when @devfd >= 0, register @fd as one region
 * of 2 MiB granules at @iova.
 */
static struct dmasvc_client *client(const char *sock, bool caller_mode, int devfd, int fd,
				    uint64_t iova, int *region)
{
	struct dmasvc_connect_opts o = { .timeout_ms = 60000 };
	struct dmasvc_region_desc d = { .size = N, .iova = iova, .granule = GRANULE };
	struct dmasvc_client *c;
	int ret;

	ret = dmasvc_connect(sock, &o, &c);
	if (ret)
		fail("connect %s: %s", sock, strerror(-ret));
	if (caller_mode && (ret = dmasvc_set_prefault(c, DMASVC_PREFAULT_CALLER)))
		fail("set_prefault: %s", strerror(-ret));
	if (devfd >= 0 && (ret = dmasvc_device_attach(c, devfd)) < 0)
		fail("device_attach: %s (%s)", strerror(-ret), dmasvc_last_error(c));
	ret = dmasvc_memory_add(c, fd, N, 0);
	if (ret < 0)
		fail("memory_add: %s (%s)", strerror(-ret), dmasvc_last_error(c));
	d.mem_id = (uint32_t)ret;
	*region = dmasvc_region_add(c, &d);
	if (*region < 0)
		fail("region_add: %s (%s)", strerror(-*region), dmasvc_last_error(c));
	return c;
}

int main(int argc, char **argv)
{
	const char *pid_env = getenv("DMASVC_PID");
	uint64_t v0, s0, v1, s1, pin, dv, ds, rss0, rss_half, rss1;
	struct dmasvc_client *c;
	const char *root;
	char self[32];
	pid_t svc;
	int fd, devfd, r, ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mode = argc == 4 ? argv[1] : "?";
	if (argc != 4 || (strcmp(mode, "prefault") && strcmp(mode, "fault-in")) || !pid_env)
		fail("usage: memcg-charge prefault|fault-in SOCKET CGROUP_ROOT (DMASVC_PID set)");
	root = argv[3];
	svc = (pid_t)atoi(pid_env);
	snprintf(self, sizeof(self), "%d", getpid());
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/vm1/cgroup.procs", root);
		write_file(path, self); /* before the first allocation of guest memory */
	}
	devfd = open(getenv("EDU_CDEV") ? getenv("EDU_CDEV") : "/dev/null", O_RDWR | O_CLOEXEC);
	if (devfd < 0 || !getenv("EDU_CDEV"))
		fail("open EDU_CDEV: %s", strerror(errno));
	fd = guest_memfd();
	c = client(argv[2], !strcmp(mode, "fault-in"), devfd, fd, 1ull << 30, &r);
	v0 = current(root, "vm1");
	s0 = current(root, "svc");
	rss0 = svc_status_bytes(getpid(), "RssShmem:");
	ret = dmasvc_populate(c, (uint32_t)r, 0, N / 2);
	if (ret)
		fail("populate of %" PRIu64 " MiB: %s (%s)", N / 2 / MiB, strerror(-ret),
		     dmasvc_last_error(c));
	rss_half = svc_status_bytes(getpid(), "RssShmem:");
	for (uint64_t off = N / 2; off < N; off += GRANULE) {
		ret = dmasvc_populate(c, (uint32_t)r, off, GRANULE);
		if (ret)
			fail("populate at %" PRIu64 " MiB: %s (%s)", off / MiB, strerror(-ret),
			     dmasvc_last_error(c));
	}
	v1 = current(root, "vm1");
	s1 = current(root, "svc");
	pin = svc_status_bytes(svc, "VmPin:");
	rss1 = svc_status_bytes(getpid(), "RssShmem:");
	dv = v1 > v0 ? v1 - v0 : 0;
	ds = s1 > s0 ? s1 - s0 : 0;
	printf("memcg-charge[%s]: plugged N=%" PRIu64 " KiB: vm1 memory.current +%" PRIu64
	       " KiB, svc +%" PRIu64 " KiB, service VmPin %" PRIu64 " KiB, memfd pages in memory %" PRIu64 "\n",
	       mode, N >> 10, dv >> 10, ds >> 10, pin >> 10, resident_pages(fd));
	if (pin != N)
		fail("service VmPin %" PRIu64 " KiB, want %" PRIu64, pin >> 10, N >> 10);
	if (!strcmp(mode, "prefault")) {
		if (dv < N - MiB || dv > N + N / 8)
			fail("vm1 grew by %" PRIu64 " KiB, want N=%" PRIu64 " (-1 MiB, +N/8)", dv >> 10, N >> 10);
		if (ds >= N / 16)
			fail("svc grew by %" PRIu64 " KiB, want < N/16 (%" PRIu64 ")", ds >> 10, (N / 16) >> 10);
		printf("memcg-charge[%s]: client RssShmem +%" PRIu64 " KiB (pipelined half), +%" PRIu64
		       " KiB (granule by granule)\n", mode, (rss_half > rss0 ? rss_half - rss0 : 0) >> 10,
		       (rss1 > rss_half ? rss1 - rss_half : 0) >> 10);
		if (rss_half < rss0 + N / 2 - MiB)
			fail("the pipelined half grew the client's RssShmem by less than N/2: not advised "
			     "through the library's mapping");
		if (rss1 > rss_half && rss1 - rss_half >= N / 16)
			fail("the client's RssShmem grew by %" PRIu64 " KiB over the granule-by-granule half: "
			     "the library faulted its mapping in instead of fallocate()",
			     (rss1 - rss_half) >> 10);
	} else {
		if (ds < N - MiB || ds > N + N / 8)
			fail("svc grew by %" PRIu64 " KiB, want N=%" PRIu64 " (-1 MiB, +N/8)", ds >> 10, N >> 10);
		if (dv >= N / 16)
			fail("vm1 grew by %" PRIu64 " KiB, want < N/16 (%" PRIu64 ")", dv >> 10, (N / 16) >> 10);
		printf("memcg-charge[%s]: PASS (negative control: the service faulted the plug in and was charged)\n",
		       mode);
		dmasvc_disconnect(c);
		close(fd);
		close(devfd);
		return 0;
	}

	/* A client that faults nothing in: its populate of holes is refused. */
	{
		int fd2 = guest_memfd(), r2;
		struct dmasvc_client *c2 = client(argv[2], true, -1, fd2, 2ull << 30, &r2);
		uint64_t s2, pin2, ds2;

		ret = dmasvc_populate(c2, (uint32_t)r2, 0, N);
		s2 = current(root, "svc");
		pin2 = svc_status_bytes(svc, "VmPin:");
		ds2 = s2 > s1 ? s2 - s1 : 0;
		printf("memcg-charge[%s]: populate of holes: %d (%s); svc +%" PRIu64 " KiB, VmPin %" PRIu64
		       " KiB, memfd pages in memory %" PRIu64 "\n",
		       mode, ret, dmasvc_last_error(c2), ds2 >> 10, pin2 >> 10, resident_pages(fd2));
		if (ret != -ENXIO)
			fail("populate of holes returned %d, want -ENXIO", ret);
		if (!strstr(dmasvc_last_error(c2), "[0x0, 0x4000000)") ||
		    !strstr(dmasvc_last_error(c2), "not in memory"))
			fail("the error does not name the range: %s", dmasvc_last_error(c2));
		if (pin2 != N)
			fail("VmPin %" PRIu64 " KiB after the refusal, want %" PRIu64, pin2 >> 10, N >> 10);
		if (ds2 >= N / 16)
			fail("svc grew by %" PRIu64 " KiB on a refused populate", ds2 >> 10);
		if (resident_pages(fd2))
			fail("the refused populate faulted pages in");
		dmasvc_disconnect(c2);
		close(fd2);
	}
	dmasvc_disconnect(c);
	close(fd);
	close(devfd);
	printf("memcg-charge[%s]: PASS\n", mode);
	return 0;
}
