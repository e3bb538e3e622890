// SPDX-License-Identifier: MIT
/*
 * daemon-e2e.c - the dmasvc daemon end to end in the guest: a libdmasvc
 * client populates and discards, and the edu device's DMA shows that the
 * IOMMU follows, through the daemon, on the real kernel backend.
 *
 * Usage: daemon-e2e iommufd|iommufd-runs|iommufd-hugetlb|iommufd-device|type1 SOCKET
 *   (env: DMASVC_PID, the daemon's pid, as set by with-daemon; EDU_CDEV)
 *
 * How the device reaches both the daemon and this test:
 *   iommufd  this program opens the cdev and sends the fd with
 *            DEVICE_ATTACH; the daemon binds and attaches its copy, and
 *            the test drives BAR0/config through its own fd (the same open
 *            file: SCM_RIGHTS passes the file, and the bind is per file).
 *   iommufd-runs  as iommufd, the daemon with --areas run: after the walk
 *            below, B is populated whole in one event, and the kernel
 *            shows one area over it: through the session's own iommufd
 *            context (a copy of the daemon's file), the IOAS has huge
 *            pages off and IOMMU_IOAS_UNMAP of B[3] alone is refused
 *            (ENOENT: it would cut an area).  The service's discards of
 *            B[3] and of B[8..12) then cut that area: DMA to them stops,
 *            DMA beside them goes on, VmPin drops by exactly their bytes,
 *            and a populate puts B[3] back.
 *   iommufd-hugetlb  as iommufd, but the guest memory is a hugetlbfs memfd
 *            (MFD_HUGETLB, 2 MiB pages, from the pool the test script
 *            reserves), which the daemon maps MAP_NORESERVE; every region
 *            has 2 MiB granules (the memory's page size): A 4, B 6, S 1.
 *            The daemon's VmPin must equal the populated bytes, whole huge
 *            pages, and the DMA checks are the same.
 *   iommufd-device  the daemon runs with --device EDU_CDEV and opens and
 *            binds the cdev itself when the client registers its first
 *            region; the client takes a copy of the daemon's file with
 *            pidfd_getfd(2) (the /proc link naming the cdev).  It also
 *            checks that a second open file of the cdev cannot be bound to
 *            another iommufd meanwhile.
 *   type1    the daemon runs with --vfio-group G --device BDF and holds the
 *            group (a group node can be open once); the client takes a copy
 *            of the daemon's device fd with pidfd_getfd(2), no protocol
 *            change.  It closes the copy before it is killed, since an open
 *            device fd keeps the container busy at the daemon's teardown.
 *
 * Layout (one sealed 16 MiB memfd, shared by the client and the checker):
 *   A  4 x 2 MiB granules  memfd [0, 8 MiB)      iova 0x1000000
 *   B  16 x 4 KiB granules memfd [8 MiB, +64 KiB) iova 0x2000000
 *   S  1 x 4 KiB scratch   memfd [9 MiB, +4 KiB)  iova 0x3000000, always
 *      populated: where the device shows what it read.
 * The client (a child process) walks populate -> discard -> populate over
 * A[1] and B[3] and checks after each step: a mapped granule's DMA read
 * returns exactly the memfd bytes and a DMA write lands in the memfd; a
 * discarded one's read does not and its write leaves the memfd alone; the
 * other region keeps working; the daemon's VmPin (iommufd) or VmLck (type1)
 * equals the populated bytes; AUDIT reports exactly the populated granules.
 * type1 also: the session's budget is the container's dma_entry_limit
 * (65535) and a region of 65536 granules is refused with ENOSPC.
 * Then the checker SIGKILLs the client and requires, within 20 s, the
 * daemon's pin counter back at 0, no session but its own, no region and no
 * area in the service-wide STATUS, and (iommufd) a DMA write to A[1] from
 * its own device fd that no longer lands.
 *
 * Prints "daemon-e2e[<backend>]: PASS checks=<n>" and exits 0, or the
 * failed check and exits 1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"
#include "edu.h"
#include "svc-audit.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define MEM_SIZE (16 * MiB)
#define HUGE_MEM_SIZE (24 * MiB) /* 12 pages of 2 MiB: A 4, B 6, S 1, one spare */
#define XFER 2048u
#define NREG 3
#define MAX_GRAN 16

struct reg {
	const char *name;
	struct dmasvc_region_desc d;
	int id;
	bool pop[MAX_GRAN];
};

/* The test's world; owned by main(), inherited by the client child. */
struct e2e {
	const char *be;
	const char *pin_key;  /* "VmPin:" (iommufd) or "VmLck:" (type1) */
	bool type1;
	bool hugetlb;         /* iommufd-hugetlb: the memfd is on hugetlbfs */
	bool runs;            /* iommufd-runs: the daemon runs with --areas run */
	int ictx;             /* iommufd-runs: a copy of the session's iommufd file */
	uint32_t ioas;        /* iommufd-runs: the session's IOAS in it */
	uint64_t mem_size;
	pid_t daemon;
	uint8_t *mem;         /* the memfd, MAP_SHARED */
	int memfd;
	struct reg r[NREG];   /* A, B, S */
	struct dmasvc_client *c;
	struct edu edu;
	unsigned int checks;
	uint8_t seed;
};

enum { A, B, S };

static void __attribute__((format(printf, 2, 3), noreturn))
fail(struct e2e *t, const char *fmt, ...)
{
	va_list ap;

	printf("daemon-e2e[%s]: FAIL ", t->be);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (t->c)
		printf(" (service: %s)", dmasvc_last_error(t->c));
	putchar('\n');
	fflush(stdout);
	_exit(1);
}

static void note(struct e2e *t, const char *what)
{
	printf("daemon-e2e[%s]: %s\n", t->be, what);
}

static uint64_t populated_bytes(const struct e2e *t)
{
	uint64_t sum = 0;

	for (int i = 0; i < NREG; i++)
		for (uint64_t g = 0; g < t->r[i].d.size / t->r[i].d.granule; g++)
			sum += t->r[i].pop[g] ? t->r[i].d.granule : 0;
	return sum;
}

/* The daemon's pins and its AUDIT both equal what is populated. */
static void check_state(struct e2e *t, const char *step)
{
	uint64_t want = populated_bytes(t), got = svc_status_bytes(t->daemon, t->pin_key);
	char why[160];

	t->checks++;
	if (got != want)
		fail(t, "%s: daemon %s %" PRIu64 " bytes, populated %" PRIu64, step, t->pin_key,
		     got, want);
	for (int i = 0; i < NREG; i++) {
		t->checks++;
		if (svc_audit_check(t->c, t->r[i].id, &t->r[i].d, t->r[i].pop, why, sizeof(why)) < 0)
			fail(t, "%s: audit of %s: %s", step, t->r[i].name, why);
	}
}

/* One event over granules [@g, @g + @n) of @ri; checks the state after it. */
static void event_range(struct e2e *t, int ri, uint64_t g, uint64_t n, bool populate)
{
	struct reg *r = &t->r[ri];
	uint64_t off = g * r->d.granule, len = n * r->d.granule;
	int rc = populate ? dmasvc_populate(t->c, (uint32_t)r->id, off, len)
			  : dmasvc_discard(t->c, (uint32_t)r->id, off, len);
	char step[80];

	if (n == 1)
		snprintf(step, sizeof(step), "%s %s[%" PRIu64 "]",
			 populate ? "populate" : "discard", r->name, g);
	else
		snprintf(step, sizeof(step), "%s %s[%" PRIu64 "..%" PRIu64 "]",
			 populate ? "populate" : "discard", r->name, g, g + n - 1);
	if (rc)
		fail(t, "%s: %s", step, strerror(-rc));
	for (uint64_t i = g; i < g + n; i++)
		r->pop[i] = populate;
	check_state(t, step);
	note(t, step);
}

/* One event over granule @g of @ri. */
static void event(struct e2e *t, int ri, uint64_t g, bool populate)
{
	event_range(t, ri, g, 1, populate);
}

static void dma(struct e2e *t, uint64_t iova, int to_ram)
{
	int rc = edu_dma(&t->edu, iova, XFER, to_ram);

	if (rc)
		fail(t, "edu DMA %s 0x%" PRIx64 ": %s", to_ram ? "to" : "from", iova, strerror(-rc));
}

/* Where the transfers of granule @g of region @ri go, and its memfd bytes. */
static uint64_t probe_iova(const struct e2e *t, int ri, uint64_t g)
{
	return t->r[ri].d.iova + g * t->r[ri].d.granule + 1024;
}

static uint8_t *probe_mem(const struct e2e *t, int ri, uint64_t g)
{
	return t->mem + t->r[ri].d.mem_offset + g * t->r[ri].d.granule + 1024;
}

/* Fresh bytes, never all zero, different on every call. */
static void pattern(struct e2e *t, uint8_t *p)
{
	t->seed++;
	for (unsigned int i = 0; i < XFER; i++)
		p[i] = (uint8_t)((i * 131u) ^ (t->seed * 29u) ^ 0xa5u) | 0x10;
}

/* Put @p into edu's buffer through the scratch granule. */
static void to_device(struct e2e *t, const uint8_t *p)
{
	memcpy(probe_mem(t, S, 0), p, XFER);
	dma(t, probe_iova(t, S, 0), 0);
}

/*
 * The device reads granule @g of @ri and writes it back out through the
 * scratch granule; then it writes a fresh pattern to @g.  With @mapped,
 * the read must return the memfd's bytes and the write must land; without,
 * the read must not and the memfd must keep its bytes.
 */
static void check_dma(struct e2e *t, int ri, uint64_t g, bool mapped, const char *step)
{
	uint8_t fill[XFER], pat[XFER], before[XFER];
	uint8_t *m = probe_mem(t, ri, g);
	bool same;

	pattern(t, m); /* the client's bytes at that IOVA */
	pattern(t, fill);
	to_device(t, fill);
	dma(t, probe_iova(t, ri, g), 0);
	memset(probe_mem(t, S, 0), 0, XFER);
	dma(t, probe_iova(t, S, 0), 1);
	same = !memcmp(probe_mem(t, S, 0), m, XFER);
	t->checks++;
	if (same != mapped)
		fail(t, "%s: device read of %s %s[%" PRIu64 "] %s the client's bytes", step,
		     mapped ? "populated" : "discarded", t->r[ri].name, g,
		     mapped ? "differs from" : "returned");

	memcpy(before, m, XFER);
	pattern(t, pat);
	to_device(t, pat);
	dma(t, probe_iova(t, ri, g), 1);
	t->checks++;
	if (memcmp(m, mapped ? pat : before, XFER))
		fail(t, "%s: device write to %s %s[%" PRIu64 "] %s", step,
		     mapped ? "populated" : "discarded", t->r[ri].name, g,
		     mapped ? "did not land in the client's memory" : "changed the client's memory");
}

static void make_memory(struct e2e *t)
{
	unsigned int huge = t->hugetlb ? MFD_HUGETLB : 0; /* the default size: 2 MiB on x86 */
	uint64_t bg = t->hugetlb ? 2 * MiB : 4 * KiB; /* B's and S's granule */

	t->mem_size = t->hugetlb ? HUGE_MEM_SIZE : MEM_SIZE;
	t->memfd = memfd_create("guest-ram", MFD_ALLOW_SEALING | huge);
	if (t->memfd < 0 || ftruncate(t->memfd, (off_t)t->mem_size) < 0 ||
	    fcntl(t->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		fail(t, "sealed %smemfd: %s", huge ? "hugetlb " : "", strerror(errno));
	t->mem = mmap(NULL, t->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->memfd, 0);
	if (t->mem == MAP_FAILED)
		fail(t, "mmap memfd: %s", strerror(errno));
	t->r[A] = (struct reg){ .name = "A", .d = { .mem_offset = 0, .size = 8 * MiB,
		.iova = 0x1000000, .granule = 2 * MiB } };
	t->r[B] = (struct reg){ .name = "B", .d = { .mem_offset = 8 * MiB,
		.size = t->hugetlb ? 6 * bg : 16 * bg, .iova = 0x2000000, .granule = bg } };
	t->r[S] = (struct reg){ .name = "S", .d = { .mem_offset = t->hugetlb ? 20 * MiB : 9 * MiB,
		.size = bg, .iova = 0x3000000, .granule = bg } };
}

/* A copy of the daemon's first fd whose /proc link reads @want. */
static int steal_device_fd(struct e2e *t, const char *want)
{
	return svc_steal_fd(t->daemon, want, 0);
}

/*
 * iommufd, client DEVICE_ATTACH: the reply's iommufd_devid names the device
 * in the kernel.  Exactly one of the daemon's /dev/iommu files (the
 * session's own context) answers IOMMU_GET_HW_INFO for it, and none for
 * the next id.
 */
static void check_iommufd_devid(struct e2e *t, uint32_t devid)
{
	int answered = 0, next = 0, fd;

	t->checks++;
	if (devid == 0)
		fail(t, "DEVICE_ATTACH on iommufd replied iommufd_devid 0");
	for (int i = 0; (fd = svc_steal_fd(t->daemon, "/dev/iommu", i)) >= 0; i++) {
		struct iommu_hw_info hw = { .size = sizeof(hw), .dev_id = devid };
		struct iommu_hw_info other = { .size = sizeof(other), .dev_id = devid + 1 };

		bool mine = ioctl(fd, IOMMU_GET_HW_INFO, &hw) == 0;

		answered += mine;
		next += ioctl(fd, IOMMU_GET_HW_INFO, &other) == 0;
		if (mine && t->runs && t->ictx < 0)
			t->ictx = fd; /* the session's context, for check_runs() */
		else
			close(fd);
	}
	if (answered != 1 || next != 0)
		fail(t, "iommufd_devid %u: %d of the daemon's iommufd contexts know it (want 1), %d "
		     "know %u (want 0)", devid, answered, next, devid + 1);
	note(t, "the reply's iommufd_devid is the kernel's id of the device in the session's context");
}

/*
 * iommufd with --device: while the daemon holds the cdev bound, another
 * open file of it cannot be bound to another iommufd (the device is taken).
 */
static void check_second_bind(struct e2e *t, const char *cdev)
{
	int fd = open(cdev, O_RDWR), ictx = open("/dev/iommu", O_RDWR), rc;
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = ictx };

	if (fd < 0 || ictx < 0) {
		printf("daemon-e2e[%s]: a second open of %s: %s\n", t->be, cdev,
		       fd < 0 ? strerror(errno) : "ok, but /dev/iommu failed");
		t->checks++;
		if (ictx < 0)
			fail(t, "open /dev/iommu: %s", strerror(errno));
	} else {
		rc = ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
		t->checks++;
		if (rc == 0)
			fail(t, "a second file of %s could be bound while the daemon holds it", cdev);
		printf("daemon-e2e[%s]: a second open of %s works, its bind fails: %s\n", t->be,
		       cdev, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	if (ictx >= 0)
		close(ictx);
}

/*
 * type1: the session's budget is the container's dma_entry_limit (65535 by
 * default, from VFIO_IOMMU_GET_INFO), and a region whose worst case does
 * not fit in what is left is refused at registration with -ENOSPC.
 */
static void check_type1_budget(struct e2e *t)
{
	struct dmasvc_stat_session ss;
	struct dmasvc_region_desc big = { .size = 65536 * 4 * KiB, .iova = 0x40000000,
					  .granule = 4 * KiB };
	int fd = memfd_create("big", MFD_ALLOW_SEALING), mem, rc;

	if (fd < 0 || ftruncate(fd, (off_t)big.size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		fail(t, "big memfd: %s", strerror(errno));
	rc = dmasvc_query(t->c, DMASVC_QUERY_SESSIONS, 0, 0, &ss, sizeof(ss), 1);
	t->checks += 2;
	if (rc != 1 || ss.max_areas != 65535 || ss.reserved_areas != 4 + 16 + 1)
		fail(t, "type1 budget: query %d, max_areas %" PRIu64 " (want 65535), reserved %"
		     PRIu64 " (want 21)", rc, ss.max_areas, ss.reserved_areas);
	mem = dmasvc_memory_add(t->c, fd, big.size, 0);
	if (mem < 0)
		fail(t, "memory_add big: %s", strerror(-mem));
	big.mem_id = (uint32_t)mem;
	rc = dmasvc_region_add(t->c, &big);
	if (rc != -ENOSPC)
		fail(t, "a region of 65536 granules over a budget of 65535 - 21: %s, want ENOSPC",
		     rc < 0 ? strerror(-rc) : "accepted");
	if (dmasvc_memory_remove(t->c, (uint32_t)mem))
		fail(t, "memory_remove big");
	close(fd);
	note(t, "budget = dma_entry_limit 65535; a region beyond it refused with ENOSPC");
}

/*
 * iommufd-runs: the IOAS of the session's context @t->ictx (the one object
 * there that answers IOMMU_IOAS_IOVA_RANGES; the daemon makes one per
 * context) and its huge pages, which --areas run turns off.
 */
static void find_runs_ioas(struct e2e *t)
{
	struct iommu_option opt = { .size = sizeof(opt), .option_id = IOMMU_OPTION_HUGE_PAGES,
				    .op = IOMMU_OPTION_OP_GET };
	int found = 0;

	if (t->ictx < 0)
		fail(t, "no iommufd context of the daemon knows the device");
	for (uint32_t id = 1; id < 64; id++) {
		struct iommu_ioas_iova_ranges r = { .size = sizeof(r), .ioas_id = id };

		if (ioctl(t->ictx, IOMMU_IOAS_IOVA_RANGES, &r) == 0 || errno == EMSGSIZE) {
			t->ioas = id;
			found++;
		}
	}
	t->checks += 2;
	if (found != 1)
		fail(t, "%d IOAS in the session's context, want 1", found);
	opt.object_id = t->ioas;
	if (ioctl(t->ictx, IOMMU_OPTION, &opt) < 0)
		fail(t, "IOMMU_OPTION get HUGE_PAGES of IOAS %u: %s", t->ioas, strerror(errno));
	if (opt.val64 != 0)
		fail(t, "--areas run: IOAS %u has huge pages %llu, want 0", t->ioas,
		     (unsigned long long)opt.val64);
	note(t, "the session's IOAS has huge pages off");
}

/*
 * iommufd-runs: B populated in one event is one area in the kernel, and the
 * service's discards cut it (see the file comment).
 */
static void check_runs(struct e2e *t)
{
	uint64_t nb = t->r[B].d.size / t->r[B].d.granule, g = t->r[B].d.granule;
	struct iommu_ioas_unmap un = { .size = sizeof(un), .ioas_id = t->ioas,
				       .iova = t->r[B].d.iova + 3 * g, .length = g };

	event_range(t, B, 0, nb, false);
	event_range(t, B, 0, nb, true);
	t->checks++;
	errno = 0;
	if (ioctl(t->ictx, IOMMU_IOAS_UNMAP, &un) == 0 || errno != ENOENT)
		fail(t, "IOMMU_IOAS_UNMAP of B[3] alone after B was populated in one event: %s, "
		     "want ENOENT (one area over B)", errno ? strerror(errno) : "unmapped");
	note(t, "the kernel refuses to unmap B[3] alone: B is one area");
	check_state(t, "B[3] still mapped after the refused unmap");
	check_dma(t, B, 3, true, "B[3] in one area over B");
	event(t, B, 3, false);
	check_dma(t, B, 3, false, "B[3] cut out of B's area");
	check_dma(t, B, 2, true, "B[2] left of the cut");
	check_dma(t, B, 4, true, "B[4] right of the cut");
	event_range(t, B, 8, 4, false);
	check_dma(t, B, 9, false, "B[9] cut out");
	check_dma(t, B, 7, true, "B[7] left of the second cut");
	check_dma(t, B, 12, true, "B[12] right of the second cut");
	check_dma(t, B, nb - 1, true, "B's last granule");
	event(t, B, 3, true);
	check_dma(t, B, 3, true, "B[3] populated again");
	close(t->ictx); /* the daemon's context must end with its session */
	t->ictx = -1;
}

/* The client: everything but the kill.  Writes 'R' to @ready, then waits. */
static void client(struct e2e *t, int devfd, int ready)
{
	struct dmasvc_connect_opts opts = { .timeout_ms = 30000 };
	const char *sock = getenv("E2E_SOCKET");
	int mem, rc;

	rc = dmasvc_connect(sock, &opts, &t->c);
	if (rc)
		fail(t, "connect %s: %s", sock, strerror(-rc));
	if (devfd >= 0) {
		struct dmasvc_device_info info;

		rc = dmasvc_device_attach_ex(t->c, devfd, 60000, &info);
		if (rc || info.dev_id == 0)
			fail(t, "DEVICE_ATTACH: %s", strerror(-rc));
		note(t, "device attached by the client (DEVICE_ATTACH)");
		if (!t->type1)
			check_iommufd_devid(t, info.iommufd_devid);
	}
	mem = dmasvc_memory_add(t->c, t->memfd, t->mem_size, 0);
	if (mem < 0)
		fail(t, "memory_add: %s", strerror(-mem));
	for (int i = 0; i < NREG; i++) {
		t->r[i].d.mem_id = (uint32_t)mem;
		t->r[i].id = dmasvc_region_add(t->c, &t->r[i].d);
		if (t->r[i].id < 0)
			fail(t, "region_add %s: %s", t->r[i].name, strerror(-t->r[i].id));
	}
	if (t->type1)
		check_type1_budget(t);
	if (devfd < 0) {
		const char *cdev = getenv("EDU_CDEV");

		if (!t->type1)
			check_second_bind(t, cdev);
		devfd = steal_device_fd(t, t->type1 ? "anon_inode:[vfio-device]" : cdev);
		if (devfd < 0)
			fail(t, "the daemon holds no vfio device fd (--device): %s", strerror(-devfd));
		note(t, "device from the daemon's --device (pidfd_getfd)");
	}
	rc = edu_init(&t->edu, devfd);
	if (rc)
		fail(t, "edu_init: %s", strerror(-rc));
	check_state(t, "registered, nothing populated");

	event(t, S, 0, true);
	event(t, A, 1, true);
	event(t, B, 3, true);
	check_dma(t, A, 1, true, "A[1] populated");
	check_dma(t, B, 3, true, "B[3] populated");
	event(t, A, 1, false);
	check_dma(t, A, 1, false, "A[1] discarded");
	check_dma(t, B, 3, true, "B[3] beside discarded A[1]");
	event(t, A, 1, true);
	check_dma(t, A, 1, true, "A[1] populated again");
	event(t, B, 3, false);
	check_dma(t, B, 3, false, "B[3] discarded");
	check_dma(t, A, 1, true, "A[1] beside discarded B[3]");
	event(t, B, 3, true);
	check_dma(t, B, 3, true, "B[3] populated again");
	if (t->runs) {
		find_runs_ioas(t);
		check_runs(t);
	}
	event(t, B, 4, true);
	event(t, A, 2, true);
	check_state(t, "before the kill");

	close(devfd); /* type1: see the file comment */
	printf("daemon-e2e[%s]: client done, checks=%u, pinned %" PRIu64 "\n", t->be, t->checks,
	       populated_bytes(t));
	fflush(stdout);
	if (write(ready, &t->checks, sizeof(t->checks)) != sizeof(t->checks))
		_exit(1);
	for (;;)
		pause();
}

/*
 * Service-wide view from a second (admin) connection after the kill.  The
 * kernel's pin count reaches 0 inside the session's teardown job, before
 * the job's finish on the loop forgets the session (until then QUERY
 * reports it with the usage snapshot taken when it went busy), so the
 * view is polled until it holds, for up to 20 s, and the last one is
 * what a failure reports.
 */
static void check_forgotten(struct e2e *t)
{
	struct dmasvc_connect_opts opts = { .timeout_ms = 30000 };
	struct dmasvc_stat_service st;
	struct dmasvc_stat_region rg[4];
	struct dmasvc_client *c;
	int rc, n;

	rc = dmasvc_connect(getenv("E2E_SOCKET"), &opts, &c);
	if (rc)
		fail(t, "admin connect: %s", strerror(-rc));
	for (int ms = 0;; ms += 50) {
		rc = dmasvc_query(c, DMASVC_QUERY_STATUS, DMASVC_QUERY_F_ALL_SESSIONS, 0, &st,
				  sizeof(st), 1);
		n = dmasvc_query(c, DMASVC_QUERY_REGIONS, DMASVC_QUERY_F_ALL_SESSIONS, 0, rg,
				 sizeof(rg[0]), 4);
		if (rc != 1 || n < 0)
			fail(t, "admin QUERY: %s", strerror(-(rc < 0 ? rc : n)));
		if ((st.sessions == 1 && n == 0 && st.areas == 0 && st.pinned_bytes == 0) ||
		    ms >= 20000)
			break;
		usleep(50000);
	}
	t->checks += 4;
	if (st.sessions != 1 || n != 0 || st.areas != 0 || st.pinned_bytes != 0)
		fail(t, "20 s after the kill: %u sessions, %d regions, %" PRIu64 " areas, %" PRIu64
		     " pinned bytes", st.sessions, n, st.areas, st.pinned_bytes);
	dmasvc_disconnect(c);
}

int main(int argc, char **argv)
{
	struct e2e t = { .be = "?", .memfd = -1 };
	unsigned int client_checks = 0;
	int devfd = -1, pipefd[2], status;
	uint64_t pinned = UINT64_MAX;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3 || (strcmp(argv[1], "iommufd") && strcmp(argv[1], "iommufd-device") &&
			  strcmp(argv[1], "iommufd-runs") &&
			  strcmp(argv[1], "iommufd-hugetlb") && strcmp(argv[1], "type1")) ||
	    !getenv("DMASVC_PID")) {
		fprintf(stderr, "usage: DMASVC_PID=PID daemon-e2e "
			"iommufd|iommufd-runs|iommufd-hugetlb|iommufd-device|type1 SOCKET\n");
		return 2;
	}
	t.be = argv[1];
	t.type1 = !strcmp(t.be, "type1");
	t.hugetlb = !strcmp(t.be, "iommufd-hugetlb");
	t.runs = !strcmp(t.be, "iommufd-runs");
	t.ictx = -1;
	t.pin_key = t.type1 ? "VmLck:" : "VmPin:";
	t.daemon = (pid_t)atoi(getenv("DMASVC_PID"));
	setenv("E2E_SOCKET", argv[2], 1);
	make_memory(&t);
	if (!strcmp(t.be, "iommufd") || t.hugetlb || t.runs) {
		const char *cdev = getenv("EDU_CDEV");

		devfd = cdev ? open(cdev, O_RDWR) : -1;
		if (devfd < 0)
			fail(&t, "open EDU_CDEV %s: %s", cdev ? cdev : "(unset)", strerror(errno));
	}
	if (pipe(pipefd) < 0)
		fail(&t, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		fail(&t, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(pipefd[0]);
		client(&t, devfd, pipefd[1]);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &client_checks, sizeof(client_checks)) != sizeof(client_checks)) {
		waitpid(pid, &status, 0);
		fail(&t, "the client failed (status 0x%x)", status);
	}
	t.checks += client_checks;
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	t.checks++;
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail(&t, "the client was not killed by SIGKILL (status 0x%x)", status);
	note(&t, "client SIGKILLed");
	for (int ms = 0; ms < 20000; ms += 50) {
		pinned = svc_status_bytes(t.daemon, t.pin_key);
		if (pinned == 0)
			break;
		usleep(50000);
	}
	t.checks++;
	if (pinned != 0)
		fail(&t, "20 s after the kill the daemon still has %s %" PRIu64, t.pin_key, pinned);
	check_forgotten(&t);
	if (devfd >= 0) {
		/* iommufd: our fd is the file the daemon attached; now detached. */
		uint8_t before[XFER];

		if (edu_init(&t.edu, devfd))
			fail(&t, "edu_init after the kill");
		memcpy(before, probe_mem(&t, A, 1), XFER);
		dma(&t, probe_iova(&t, A, 1), 1);
		t.checks++;
		if (memcmp(before, probe_mem(&t, A, 1), XFER))
			fail(&t, "a DMA write to A[1] landed after the client died");
		close(devfd);
	}
	printf("daemon-e2e[%s]: PASS checks=%u\n", t.be, t.checks);
	return 0;
}
