// SPDX-License-Identifier: MIT
/*
 * be-dma-test.c - the kernel backends against a real IOMMU, in the guest.
 *
 * Usage: be-dma-test iommufd|type1   (env: EDU_BDF, EDU_GROUP, EDU_CDEV)
 *
 * Through be_ops only (plus backend_kernel.h for the device fd and
 * options), with one memfd as "guest memory":
 *   A  2 granules of 2 MiB   memfd [0, 4 MiB)        iova 0x1000000
 *   B  16 granules of 4 KiB  memfd [4 MiB, +64 KiB)  iova 0x2000000
 *   C  1 area of 2 MiB       memfd [6 MiB, 8 MiB)    iova 0x2010000 (right
 *      after B, so one unmap can cover whole B areas and cut C)
 *   R  4 KiB of a second memfd at iova 0x3000000: where the device leaves
 *      what it read, for the program to look at.
 *   D  a 32 MiB memfd mapped as 16 x 2 MiB (iova 0x4000000) and then as
 *      D4, 1024 x 4 KiB (iova 0x6000000), from 4 threads at once, each
 *      removed by one unmap call.
 *   H  an 8 MiB hugetlbfs memfd (2 MiB pages), 4 x 2 MiB at 0x8000000.
 * the edu device's DMA must read exactly the memfd's bytes and its writes
 * must land in the memfd while a granule is mapped; once unmapped, reads
 * return something else and writes leave the memfd alone (the data is
 * checked, not the log); remapping restores both; the other regions keep
 * working throughout.  After every step the kernel's pin counter (VmPin for
 * iommufd, VmLck for type1, which accounts locked_vm) equals the bytes this
 * program mapped, and audit() reports exactly the mapped granules.
 *
 * Prints "be-dma-test[<backend>]: PASS checks=<n>" and exits 0, or prints
 * the failed check and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "dmasvc/backend.h"
#include "dmasvc/backend_kernel.h"
#include "dmasvc/hole_guard.h"
#include "iommufd_test_priv.h" /* test access: options, MAP_FILE use */
#include "edu.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)

#define A_IOVA 0x1000000ull
#define A_GRAN (2 * MiB)
#define A_N 2
#define A_OFF 0ull
#define B_IOVA 0x2000000ull
#define B_GRAN (4 * KiB)
#define B_N 16
#define B_OFF (4 * MiB)
#define C_IOVA (B_IOVA + B_N * B_GRAN)
#define C_LEN (2 * MiB)
#define C_OFF (6 * MiB)
#define R_IOVA 0x3000000ull
#define R_LEN (4 * KiB)
#define MEM_SIZE (8 * MiB)
#define D_IOVA 0x4000000ull
#define D_SIZE (32 * MiB)
#define D4_IOVA 0x6000000ull
#define D4_N 1024
#define H_IOVA 0x8000000ull
#define G_IOVA 0xc000000ull /* check_hole_guard */
#define G_LEN (2 * MiB)
#define H_SIZE (8 * MiB)
#define MAX_GRANULES 1024
#define NR_WORKERS 4
#define XFER 2048u

/* One region of the test: granules at iova, backed by mem/fd + off. */
struct region {
	const char *name;
	uint64_t iova, gran, off;
	unsigned int n;
	uint8_t *mem; /* the memfd's mapping; not owned */
	int fd;       /* the memfd; not owned */
	bool mapped[MAX_GRANULES]; /* what this program believes is mapped */
};

/* One run of the test against one backend; owned by main(). */
struct t {
	const char *be_name;
	const struct be_ops *ops;
	struct be_ctx *ctx;
	struct be_space *space;
	struct edu edu;
	int dev_fd;
	uint32_t dev_id;
	int memfd, rfd, dfd, hfd;
	uint8_t *mem, *r, *dmem, *hmem;
	struct region A, B, C, D, D4, H, K;
	bool r_mapped;
	bool detached; /* iommufd only: no device, so the IOAS pins nothing */
	unsigned int checks;
	uint8_t seed;
};

static void __attribute__((format(printf, 3, 4), noreturn))
fail(struct t *t, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stdout, "be-dma-test[%s]: FAIL (line %d): ", t->be_name, line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	exit(1);
}

#define CHECK(cond, ...)                                   \
	do {                                               \
		t->checks++;                                \
		if (!(cond))                               \
			fail(t, __LINE__, __VA_ARGS__);       \
	} while (0)

static void step(struct t *t, const char *what)
{
	printf("be-dma-test[%s]: %s\n", t->be_name, what);
	fflush(stdout);
}

/* kB value of @key ("VmPin:") in /proc/self/status, in bytes. */
static uint64_t status_bytes(const char *key)
{
	char line[256];
	uint64_t kb = UINT64_MAX;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, strlen(key))) {
			kb = strtoull(line + strlen(key), NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb == UINT64_MAX ? kb : kb * KiB;
}

static uint64_t region_mapped_bytes(const struct region *g)
{
	uint64_t b = 0;

	for (unsigned int i = 0; i < g->n; i++)
		b += g->mapped[i] ? g->gran : 0;
	return b;
}

/* The backend's pin counter must equal what this program has mapped. */
static void check_pinned(struct t *t, int line)
{
	const char *key = t->ops == &be_type1_ops ? "VmLck:" : "VmPin:";
	uint64_t want = region_mapped_bytes(&t->A) + region_mapped_bytes(&t->B) +
			region_mapped_bytes(&t->C) + region_mapped_bytes(&t->D) +
			region_mapped_bytes(&t->D4) + region_mapped_bytes(&t->H) +
			region_mapped_bytes(&t->K) + (t->r_mapped ? R_LEN : 0);
	uint64_t got = status_bytes(key);

	/* iommufd pins an area only while some domain (device) uses it. */
	if (t->detached)
		want = 0;

	t->checks++;
	if (got != want)
		fail(t, line, "%s %" PRIu64 " KiB, mapped %" PRIu64 " KiB", key,
		     got / KiB, want / KiB);
}

static struct be_map_src src_of(const struct region *g, unsigned int i)
{
	return (struct be_map_src){
		.vaddr = g->mem + g->off + i * g->gran,
		.fd = g->fd,
		.fd_offset = g->off + i * g->gran,
	};
}

static void map_granule(struct t *t, int line, struct region *g, unsigned int i)
{
	struct be_map_src src = src_of(g, i);
	int rc = t->ops->map(t->space, g->iova + i * g->gran, g->gran, &src,
			    BE_PROT_READ | BE_PROT_WRITE);

	t->checks++;
	if (rc)
		fail(t, line, "map %s[%u]: %s", g->name, i, strerror(-rc));
	g->mapped[i] = true;
}

/* Unmap granules [first, first + count) of @g in one call. */
static void unmap_run(struct t *t,
		int line, struct region *g, unsigned int first,
		      unsigned int count)
{
	uint64_t unmapped = 1;
	int rc = t->ops->unmap(t->space, g->iova + first * g->gran,
			      count * g->gran, &unmapped);

	t->checks++;
	if (rc || unmapped != count * g->gran)
		fail(t, line, "unmap %s[%u..+%u]: rc %d unmapped 0x%" PRIx64,
		     g->name, first, count, rc, unmapped);
	for (unsigned int i = first; i < first + count; i++)
		g->mapped[i] = false;
}

struct audit_acc {
	const struct region *g;
	bool seen[MAX_GRANULES];
	int bad;
};

static int audit_cb(void *arg, uint64_t iova, uint64_t length)
{
	struct audit_acc *a = arg;
	const struct region *g = a->g;

	if (iova < g->iova || (iova - g->iova) % g->gran || length % g->gran ||
	    !length || iova - g->iova + length > g->n * g->gran) {
		a->bad = 1;
		return 0;
	}
	for (uint64_t o = iova - g->iova; o < iova - g->iova + length; o += g->gran) {
		if (a->seen[o / g->gran])
			a->bad = 1; /* reported twice */
		a->seen[o / g->gran] = true;
	}
	return 0;
}

/* audit() over region @g must report exactly the mapped granules. */
static void check_audit(struct t *t, int line, const struct region *g)
{
	struct audit_acc a = { .g = g };
	int rc = t->ops->audit(t->space, g->iova, g->n * g->gran, g->gran,
			      audit_cb, &a);

	t->checks++;
	if (rc || a.bad)
		fail(t, line, "audit %s: rc %d, malformed extents %d", g->name, rc,
		     a.bad);
	for (unsigned int i = 0; i < g->n; i++) {
		t->checks++;
		if (a.seen[i] != g->mapped[i])
			fail(t, line, "audit %s[%u]: reported %d, mapped %d", g->name,
			     i, a.seen[i], g->mapped[i]);
	}
}

static void dma(struct t *t, int line, uint64_t iova, int to_ram)
{
	int rc = edu_dma(&t->edu, iova, XFER, to_ram);

	t->checks++;
	if (rc)
		fail(t, line, "edu DMA %s iova 0x%" PRIx64 ": %s",
		     to_ram ? "to RAM" : "from RAM", iova, strerror(-rc));
}

/* A byte pattern that differs per call and is never all-zero. */
static void fill_pattern(struct t *t, uint8_t *p, size_t n)
{
	t->seed++;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(0x5a ^ (i * 31) ^ (t->seed * 77) ^ (i >> 8)) | 1;
}

/* Where granule @i of @g lives: an iova and the memfd bytes behind it. */
static uint64_t xfer_iova(const struct region *g, unsigned int i)
{
	return g->iova + i * g->gran + (g->gran > 2 * XFER ? 64 * KiB : 1024);
}

static uint8_t *xfer_mem(const struct region *g, unsigned int i)
{
	return g->mem + (xfer_iova(g, i) - g->iova) + g->off;
}

/* Put @p (XFER bytes) into the device buffer via R. */
static void load_device(struct t *t, int line, const uint8_t *p)
{
	memcpy(t->r, p, XFER);
	dma(t, line, R_IOVA, 0);
}

/* The device reads granule @i of @g and shows us what it got, in out. */
static void device_read(struct t *t,
		int line, const struct region *g, unsigned int i,
			uint8_t *out)
{
	uint8_t sentinel[XFER];

	fill_pattern(t, sentinel, sizeof(sentinel));
	load_device(t, line, sentinel); /* so a blocked read leaves no memfd bytes */
	dma(t, line, xfer_iova(g, i), 0);
	memset(t->r, 0, XFER);
	dma(t, line, R_IOVA, 1);
	memcpy(out, t->r, XFER);
}

/* A device read of granule @i returns the memfd bytes iff @mapped. */
static void check_read(struct t *t,
		int line, const struct region *g, unsigned int i,
		       bool mapped)
{
	uint8_t got[XFER];

	device_read(t, line, g, i, got);
	t->checks++;
	if (!memcmp(got, xfer_mem(g, i), XFER) != mapped)
		fail(t, line, "device read of %s %s[%u] %s the memfd bytes",
		     mapped ? "mapped" : "unmapped", g->name, i,
		     mapped ? "differs from" : "returned");
}

#define check_read_ok(line, g, i) check_read(t, line, g, i, true)
#define check_read_blocked(line, g, i) check_read(t, line, g, i, false)

/* The device writes a fresh pattern to granule @i; returns the pattern. */
static void device_write(struct t *t,
		int line, const struct region *g, unsigned int i,
			 uint8_t *pattern)
{
	fill_pattern(t, pattern, XFER);
	load_device(t, line, pattern);
	dma(t, line, xfer_iova(g, i), 1);
}

/* A device write to granule @i lands in the memfd iff @mapped. */
static void check_write(struct t *t,
		int line, const struct region *g, unsigned int i,
			bool mapped)
{
	uint8_t before[XFER], pat[XFER];

	memcpy(before, xfer_mem(g, i), XFER);
	device_write(t, line, g, i, pat);
	t->checks++;
	if (mapped && memcmp(pat, xfer_mem(g, i), XFER))
		fail(t, line, "device write to mapped %s[%u] did not land in the memfd",
		     g->name, i);
	if (!mapped && memcmp(before, xfer_mem(g, i), XFER))
		fail(t, line, "device write to unmapped %s[%u] changed the memfd",
		     g->name, i);
}

#define check_write_ok(line, g, i) check_write(t, line, g, i, true)
#define check_write_blocked(line, g, i) check_write(t, line, g, i, false)

static int make_memfd_flags(const char *name, uint64_t size, uint8_t **map,
			    unsigned int flags)
{
	int fd = memfd_create(name, MFD_CLOEXEC | flags);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -1;
	*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return *map == MAP_FAILED ? -1 : fd;
}

static int make_memfd(const char *name, uint64_t size, uint8_t **map)
{
	return make_memfd_flags(name, size, map, 0);
}

/* Reserve enough 2 MiB huge pages for H (the guest boots with none). */
static int reserve_huge_pages(unsigned long want)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r+");
	unsigned long have = 0;
	int ok;

	if (!f)
		return -1;
	ok = fscanf(f, "%lu", &have) == 1;
	if (ok && have < want) {
		rewind(f);
		ok = fprintf(f, "%lu\n", want) > 0;
	}
	return fclose(f) == 0 && ok ? 0 : -1;
}

static void setup(struct t *t)
{
	struct be_iommufd_config icfg = { .rlimit_mode = 1, .huge_pages = 1 };
	struct be_config cfg = { 0 };
	const char *name;
	int rc;

	if (t->ops == &be_iommufd_ops) {
		cfg.path = "/dev/iommu";
		cfg.backend_private = &icfg;
	} else {
		cfg.path = getenv("EDU_GROUP");
	}
	CHECK(cfg.path, "EDU_GROUP not set");
	rc = t->ops->open(&cfg, &t->ctx);
	CHECK(rc == 0, "open %s: %s", cfg.path, strerror(-rc));
	rc = t->ops->space_create(t->ctx, &t->space);
	CHECK(rc == 0, "space_create: %s", strerror(-rc));

	if (t->ops == &be_iommufd_ops) {
		name = getenv("EDU_CDEV");
		CHECK(name, "EDU_CDEV not set");
		t->dev_fd = open(name, O_RDWR | O_CLOEXEC);
		CHECK(t->dev_fd >= 0, "open %s: %s", name, strerror(errno));
	} else {
		name = getenv("EDU_BDF");
		CHECK(name, "EDU_BDF not set");
		t->dev_fd = be_type1_device_open(t->space, name);
		CHECK(t->dev_fd >= 0, "be_type1_device_open %s: %s", name,
		      strerror(-t->dev_fd));
	}
	rc = t->ops->device_attach(t->space, t->dev_fd, &t->dev_id);
	CHECK(rc == 0, "device_attach: %s", strerror(-rc));
	rc = edu_init(&t->edu, t->dev_fd);
	CHECK(rc == 0, "edu_init: %s", strerror(-rc));

	t->memfd = make_memfd("guest-ram", MEM_SIZE, &t->mem);
	t->rfd = make_memfd("readback", R_LEN, &t->r);
	CHECK(t->memfd >= 0 && t->rfd >= 0, "memfd: %s", strerror(errno));
	fill_pattern(t, t->mem, MEM_SIZE); /* populates every page, too */
	t->dfd = make_memfd("bulk", D_SIZE, &t->dmem);
	CHECK(t->dfd >= 0, "memfd: %s", strerror(errno));
	fill_pattern(t, t->dmem, D_SIZE);
	CHECK(reserve_huge_pages(2 * H_SIZE / (2 * MiB)) == 0,
	      "reserving huge pages failed");
	t->hfd = make_memfd_flags("hugetlb", H_SIZE, &t->hmem,
				  MFD_HUGETLB); /* default size: 2 MiB */
	CHECK(t->hfd >= 0, "hugetlb memfd: %s", strerror(errno));
	fill_pattern(t, t->hmem, H_SIZE);
	t->H = (struct region){ .name = "H", .iova = H_IOVA, .gran = 2 * MiB,
			       .n = H_SIZE / (2 * MiB), .mem = t->hmem,
			       .fd = t->hfd };
	t->A = (struct region){ .name = "A", .iova = A_IOVA, .gran = A_GRAN,
			       .off = A_OFF, .n = A_N, .mem = t->mem,
			       .fd = t->memfd };
	t->B = (struct region){ .name = "B", .iova = B_IOVA, .gran = B_GRAN,
			       .off = B_OFF, .n = B_N, .mem = t->mem,
			       .fd = t->memfd };
	t->C = (struct region){ .name = "C", .iova = C_IOVA, .gran = C_LEN,
			       .off = C_OFF, .n = 1, .mem = t->mem,
			       .fd = t->memfd };
	t->D = (struct region){ .name = "D", .iova = D_IOVA, .gran = 2 * MiB,
			       .n = D_SIZE / (2 * MiB), .mem = t->dmem,
			       .fd = t->dfd };
	t->D4 = (struct region){ .name = "D4", .iova = D4_IOVA, .gran = 4 * KiB,
				.n = D4_N, .mem = t->dmem, .fd = t->dfd };
}

/*
 * A fresh context from @cfg with one space, edu attached again (reopened
 * from $EDU_CDEV), R mapped, and K (@name) mapped as one area of B_N pages
 * at B_IOVA.  Needs no space open; the caller undoes it all.
 */
static void one_area_space(struct t *t, const struct be_config *cfg, const char *name)
{
	const char *cdev = getenv("EDU_CDEV");
	struct be_map_src src;
	int rc;

	rc = t->ops->open(cfg, &t->ctx);
	CHECK(rc == 0, "open (%s): %s", name, strerror(-rc));
	rc = t->ops->space_create(t->ctx, &t->space);
	CHECK(rc == 0, "space_create (%s): %s", name, strerror(-rc));
	t->dev_fd = open(cdev, O_RDWR | O_CLOEXEC);
	CHECK(t->dev_fd >= 0, "reopen %s: %s", cdev, strerror(errno));
	rc = t->ops->device_attach(t->space, t->dev_fd, &t->dev_id);
	CHECK(rc == 0, "device_attach (%s): %s", name, strerror(-rc));
	rc = edu_init(&t->edu, t->dev_fd);
	CHECK(rc == 0, "edu_init (%s): %s", name, strerror(-rc));
	src = (struct be_map_src){ .vaddr = t->r, .fd = t->rfd, .fd_offset = 0 };
	rc = t->ops->map(t->space, R_IOVA, R_LEN, &src, BE_PROT_READ | BE_PROT_WRITE);
	CHECK(rc == 0, "map R: %s", strerror(-rc));
	t->r_mapped = true;

	t->K = (struct region){ .name = name, .iova = B_IOVA, .gran = B_GRAN,
			       .off = B_OFF, .n = B_N, .mem = t->mem, .fd = t->memfd };
	src = src_of(&t->K, 0);
	rc = t->ops->map(t->space, t->K.iova, t->K.n * t->K.gran, &src,
			 BE_PROT_READ | BE_PROT_WRITE);
	CHECK(rc == 0, "map %s as one area: %s", name, strerror(-rc));
	for (unsigned int i = 0; i < t->K.n; i++)
		t->K.mapped[i] = true;
	check_pinned(t, __LINE__);
}

/*
 * iommufd cuts an area only in its VFIO-compat unmap, in an IOAS without
 * huge pages (be_iommufd_unmap_cut(): map-bench's kernel-cut row; the
 * service does not use it).  In a new context with huge pages off and edu
 * attached again: K, 16 pages mapped as one area; its middle 4 cut out.
 * The kernel must report exactly those 16 KiB, VmPin drop by them, audit
 * show the two halves, and the device read both sides but not the cut
 * pages; the same cut through IOMMU_IOAS_UNMAP is refused.  Needs nothing
 * mapped and no space open; leaves it so.
 */
static void check_cut_areas(struct t *t)
{
	struct be_iommufd_config icfg = { .rlimit_mode = 1, .huge_pages = 0 };
	struct be_config cfg = { .path = "/dev/iommu", .backend_private = &icfg };
	uint64_t unmapped;
	int rc;

	one_area_space(t, &cfg, "K(one area)");
	check_read_ok(__LINE__, &t->K, 5);

	rc = t->ops->unmap(t->space, t->K.iova + 4 * t->K.gran, 4 * t->K.gran, &unmapped);
	CHECK(rc == -ENOENT && unmapped == 0,
	      "IOMMU_IOAS_UNMAP inside an area: rc %d unmapped 0x%" PRIx64 ", want -ENOENT, 0",
	      rc, unmapped);
	check_pinned(t, __LINE__);
	rc = be_iommufd_unmap_cut(t->space, t->K.iova + 4 * t->K.gran, 4 * t->K.gran, &unmapped);
	CHECK(rc == 0 && unmapped == 4 * t->K.gran,
	      "cut unmap of K[4..7]: rc %d unmapped 0x%" PRIx64, rc, unmapped);
	for (unsigned int i = 4; i < 8; i++)
		t->K.mapped[i] = false;
	check_pinned(t, __LINE__);
	check_audit(t, __LINE__, &t->K);
	check_read_ok(__LINE__, &t->K, 3);
	check_read_blocked(__LINE__, &t->K, 5);
	check_read_ok(__LINE__, &t->K, 8);
	check_write_ok(__LINE__, &t->K, 15);

	/* the halves are areas of their own now: one plain unmap takes both */
	rc = t->ops->unmap(t->space, t->K.iova, t->K.n * t->K.gran, &unmapped);
	CHECK(rc == 0 && unmapped == 12 * t->K.gran, "unmap of K's halves: rc %d unmapped 0x%" PRIx64,
	      rc, unmapped);
	memset(t->K.mapped, 0, sizeof(t->K.mapped));
	check_pinned(t, __LINE__);
	check_read_blocked(__LINE__, &t->K, 0);

	t->ops->device_detach(t->space, t->dev_id);
	close(t->dev_fd);
	t->ops->space_destroy(t->space);
	t->ops->close(t->ctx);
	t->r_mapped = false;
	check_pinned(t, __LINE__);
}

/*
 * be_config.cut_areas (dmasvc --areas run), iommufd: the backend's own
 * unmap() cuts.  A context opened with it makes an IOAS with huge pages off
 * (read back from the kernel) whose unmap_cuts() is true; K, 16 pages as
 * one area: unmap() of K[4..7] cuts them out (the kernel reports 16 KiB,
 * VmPin drops by them, audit shows the halves, the device reads beside the
 * cut but not inside), unmap() of K[0] cuts at one end only.  Then the
 * space is kept (its fds dup'ed, as the daemon's restart does), forgotten
 * and adopted by a second context opened *without* cut_areas: the adopted
 * space still cuts (its IOAS has huge pages off) - K[10..11] are cut out
 * with DMA and VmPin to show it.  Needs nothing mapped and no space open;
 * leaves it so.
 */
static void check_backend_cuts(struct t *t)
{
	struct be_iommufd_config icfg = { .rlimit_mode = 1, .huge_pages = -1 };
	struct be_config cfg = { .path = "/dev/iommu", .backend_private = &icfg,
				 .cut_areas = true };
	struct be_config plain = { .path = "/dev/iommu", .backend_private = &icfg };
	struct be_kept_space kept;
	struct be_ctx *ctx2;
	uint64_t unmapped, v = 7;
	int rc;

	one_area_space(t, &cfg, "K(cut_areas)");
	CHECK(t->ops->unmap_cuts && t->ops->unmap_cuts(t->space), "cut_areas: unmap_cuts false");
	rc = be_iommufd_get_option(t->space, IOMMU_OPTION_HUGE_PAGES, &v);
	CHECK(rc == 0 && v == 0, "cut_areas: HUGE_PAGES read back: rc %d val %" PRIu64, rc, v);
	unmap_run(t, __LINE__, &t->K, 4, 4); /* cuts at both ends */
	check_pinned(t, __LINE__);
	check_audit(t, __LINE__, &t->K);
	check_read_ok(__LINE__, &t->K, 3);
	check_read_blocked(__LINE__, &t->K, 5);
	check_read_ok(__LINE__, &t->K, 8);
	unmap_run(t, __LINE__, &t->K, 0, 1); /* cuts at the end only */
	check_pinned(t, __LINE__);
	check_read_blocked(__LINE__, &t->K, 0);
	check_read_ok(__LINE__, &t->K, 1);
	rc = t->ops->unmap(t->space, t->K.iova + 5 * t->K.gran, t->K.gran, &unmapped);
	CHECK(rc == -ENOENT, "unmap of a cut-out page: rc %d, want -ENOENT", rc);

	/* Keep, forget, adopt in a context without cut_areas. */
	rc = t->ops->space_keep(t->space, &kept);
	CHECK(rc == 0, "space_keep: %s", strerror(-rc));
	kept.fd = dup(kept.fd);
	for (uint32_t i = 0; i < kept.nr_devs; i++)
		kept.devs[i].fd = dup(kept.devs[i].fd);
	t->ops->space_forget(t->space);
	rc = t->ops->open(&plain, &ctx2);
	CHECK(rc == 0, "open (plain): %s", strerror(-rc));
	rc = t->ops->space_adopt(ctx2, &kept, &t->space);
	CHECK(rc == 0, "space_adopt: %s", strerror(-rc));
	CHECK(t->ops->unmap_cuts(t->space), "an adopted IOAS without huge pages must cut");
	t->ops->close(t->ctx);
	t->ctx = ctx2;
	check_pinned(t, __LINE__);
	unmap_run(t, __LINE__, &t->K, 10, 2);
	check_pinned(t, __LINE__);
	check_audit(t, __LINE__, &t->K);
	check_read_blocked(__LINE__, &t->K, 10);
	check_read_ok(__LINE__, &t->K, 9);
	check_write_ok(__LINE__, &t->K, 12);

	/* Everything left (K[1..3], K[8..9], K[12..15]: pieces of cut areas)
	 * in one call over the holes too. */
	rc = t->ops->unmap(t->space, t->K.iova, t->K.n * t->K.gran, &unmapped);
	CHECK(rc == 0 && unmapped == region_mapped_bytes(&t->K),
	      "unmap of all K: rc %d unmapped 0x%" PRIx64 ", want 0x%" PRIx64, rc, unmapped,
	      region_mapped_bytes(&t->K));
	memset(t->K.mapped, 0, sizeof(t->K.mapped));
	check_pinned(t, __LINE__);
	check_read_blocked(__LINE__, &t->K, 13);
	t->ops->device_detach(t->space, kept.devs[0].dev_id);
	close(t->dev_fd);
	t->ops->space_destroy(t->space);
	t->ops->close(t->ctx);
	t->r_mapped = false;
	check_pinned(t, __LINE__);
}

static void check_limits(struct t *t)
{
	struct be_limits lim;
	bool covered = false;
	int rc = t->ops->limits(t->space, &lim);

	CHECK(rc == 0, "limits: %s", strerror(-rc));
	CHECK(lim.nr_ranges >= 1 && lim.nr_ranges <= BE_MAX_IOVA_RANGES,
	      "limits: %u ranges", lim.nr_ranges);
	for (uint32_t i = 0; i < lim.nr_ranges; i++) {
		printf("be-dma-test[%s]: iova range [0x%" PRIx64 ", 0x%" PRIx64 "]\n",
		       t->be_name, lim.ranges[i].start, lim.ranges[i].last);
		if (lim.ranges[i].start <= A_IOVA &&
		    lim.ranges[i].last >= EDU_IOVA_LIMIT - 1)
			covered = true;
	}
	CHECK(covered, "no allowed range covers the test IOVAs");
	CHECK(lim.pgsize_bitmap & 4096, "4 KiB pages not allowed: 0x%" PRIx64,
	      lim.pgsize_bitmap);
	printf("be-dma-test[%s]: max_areas %" PRIu64 " pgsizes 0x%" PRIx64 "\n",
	       t->be_name, lim.max_areas, lim.pgsize_bitmap);
	if (t->ops == &be_iommufd_ops)
		CHECK(lim.max_areas == UINT64_MAX, "iommufd has no area limit");
	else
		CHECK(lim.max_areas > 1000 && lim.max_areas < UINT64_MAX,
		      "type1 area budget from DMA_AVAIL: %" PRIu64, lim.max_areas);
}

static void check_iommufd_options(struct t *t)
{
	uint64_t v = 7;
	int rc = be_iommufd_get_option(t->space, IOMMU_OPTION_RLIMIT_MODE, &v);

	CHECK(rc == 0 && v == 1, "RLIMIT_MODE read back: rc %d val %" PRIu64, rc, v);
	rc = be_iommufd_get_option(t->space, IOMMU_OPTION_HUGE_PAGES, &v);
	CHECK(rc == 0 && v == 1, "HUGE_PAGES read back: rc %d val %" PRIu64, rc, v);
}

/*
 * One unmap over whole B[14], B[15] that cuts into C.  The kernels differ:
 * iommufd removes B[14..15] and then fails, type1v2 refuses up front.  Both
 * must say -ENOENT; what is left is learned from audit() and the pin count.
 */
static void check_cut_unmap(struct t *t)
{
	uint64_t unmapped = 1;
	uint64_t iova = B_IOVA + 14 * B_GRAN, len = 2 * B_GRAN + C_LEN / 2;
	int rc = t->ops->unmap(t->space, iova, len, &unmapped);

	CHECK(rc == -ENOENT, "cutting unmap: rc %d, want -ENOENT", rc);
	CHECK(unmapped == 0, "cutting unmap: unmapped 0x%" PRIx64, unmapped);
	if (t->ops == &be_iommufd_ops)
		t->B.mapped[14] = t->B.mapped[15] = false;
	check_audit(t, __LINE__, &t->B);
	check_audit(t, __LINE__, &t->C);
	check_pinned(t, __LINE__);
	check_read_ok(__LINE__, &t->C, 0);
	if (t->ops == &be_iommufd_ops)
		check_read_blocked(__LINE__, &t->B, 15);
	else
		check_read_ok(__LINE__, &t->B, 15);
}

struct worker {
	struct t *t;
	struct region *g;
	unsigned int first; /* maps granules first, first + NR_WORKERS, ... */
	int rc;             /* first failure, -errno; 0 if all mapped */
};

static void *worker_map(void *arg)
{
	struct worker *w = arg;

	for (unsigned int i = w->first; i < w->g->n && !w->rc; i += NR_WORKERS) {
		struct be_map_src src = src_of(w->g, i);

		w->rc = w->t->ops->map(w->t->space, w->g->iova + i * w->g->gran,
				       w->g->gran, &src,
				       BE_PROT_READ | BE_PROT_WRITE);
	}
	return NULL;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * Map every granule of @g from NR_WORKERS threads at once (be_ops allows
 * concurrent maps of disjoint ranges), check pins, audit and DMA, then
 * unmap the whole region in one call.  Prints the times (TCG: relative
 * numbers only).
 */
static void check_bulk(struct t *t, struct region *g)
{
	struct worker w[NR_WORKERS];
	pthread_t th[NR_WORKERS];
	uint64_t unmapped = 0;
	double t0, t1, t2;
	int rc;

	t0 = now_ms();
	for (unsigned int k = 0; k < NR_WORKERS; k++) {
		w[k] = (struct worker){ .t = t, .g = g, .first = k };
		rc = pthread_create(&th[k], NULL, worker_map, &w[k]);
		CHECK(rc == 0, "pthread_create: %s", strerror(rc));
	}
	for (unsigned int k = 0; k < NR_WORKERS; k++) {
		pthread_join(th[k], NULL);
		CHECK(w[k].rc == 0, "concurrent map of %s (worker %u): %s",
		      g->name, k, strerror(-w[k].rc));
	}
	t1 = now_ms();
	for (unsigned int i = 0; i < g->n; i++)
		g->mapped[i] = true;
	check_pinned(t, __LINE__);
	check_audit(t, __LINE__, g);
	check_read_ok(__LINE__, g, 0);
	check_read_ok(__LINE__, g, g->n - 1);
	check_write_ok(__LINE__, g, g->n / 2);

	t2 = now_ms();
	rc = t->ops->unmap(t->space, g->iova, g->n * g->gran, &unmapped);
	CHECK(rc == 0 && unmapped == g->n * g->gran,
	      "unmap all of %s: rc %d unmapped 0x%" PRIx64, g->name, rc,
	      unmapped);
	printf("be-dma-test[%s]: %s: map %u x %" PRIu64 " KiB (%d threads) "
	       "%.1f ms, one unmap %.1f ms\n", t->be_name, g->name, g->n,
	       g->gran / KiB, NR_WORKERS, t1 - t0, now_ms() - t2);
	for (unsigned int i = 0; i < g->n; i++)
		g->mapped[i] = false;
	check_pinned(t, __LINE__);
	check_audit(t, __LINE__, g);
	check_read_blocked(__LINE__, g, 0);
}

/*
 * iommufd: a detached device reaches no memory, and with no device left
 * the IOAS pins nothing (iommufd pins while filling a domain); a fresh cdev
 * fd attached to the populated IOAS pins and sees every mapping at once.
 */
/*
 * Sessions are isolated even from a client that keeps its device file:
 * the file the service bound (t->dev_fd is that same file) is asked to
 * attach to another space's IOAS id, which holds a mapping at an IOVA this
 * space leaves unmapped.  A device write there must not land: the request
 * can name only IOASes of its own space's iommufd context.  The device
 * still works in its own space afterwards.
 */
static void check_spaces_isolated(struct t *t)
{
	struct region x = { .name = "X(other space)", .iova = 0xa000000ull, .gran = A_GRAN,
			    .off = A_OFF, .n = 1, .mem = t->mem, .fd = t->memfd };
	struct be_map_src src = src_of(&x, 0);
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	struct be_space *other;
	uint64_t unmapped;
	int rc;

	rc = t->ops->space_create(t->ctx, &other);
	CHECK(rc == 0, "space_create (other): %s", strerror(-rc));
	rc = t->ops->map(other, x.iova, x.gran, &src, BE_PROT_READ | BE_PROT_WRITE);
	CHECK(rc == 0, "map X in the other space: %s", strerror(-rc));
	at.pt_id = be_iommufd_ioas_id(other);
	rc = ioctl(t->dev_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	printf("be-dma-test[%s]: the client's re-attach to the other space's IOAS id %u: %s"
	       " (now on pt %u)\n", t->be_name, be_iommufd_ioas_id(other),
	       rc < 0 ? strerror(errno) : "accepted", at.pt_id);
	check_write_blocked(__LINE__, &x, 0);
	check_read_ok(__LINE__, &t->A, 0);
	rc = t->ops->unmap(other, x.iova, x.gran, &unmapped);
	CHECK(rc == 0 && unmapped == x.gran, "unmap X: rc %d", rc);
	t->ops->space_destroy(other);
}

/* Pages the memfd @fd holds, as the kernel counts them (st_blocks, 512 B units; ~0 if fstat fails). */
static uint64_t file_blocks(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_blocks : UINT64_MAX;
}

/*
 * The residency rule's guard on the real kernel (backend/hole_guard.c),
 * with the device attached (iommufd pins at map time then): a map through
 * a guarded mapping of a memfd (the service's view) over pages the memfd
 * does not hold fails with -EFAULT, pins nothing (VmPin; type1 VmLck) and
 * allocates nothing (st_blocks).  Once the VMM has written the pages
 * through its own mapping, the same map works and the device reads the
 * VMM's bytes; a page the VMM punches out afterwards makes the map fail
 * again, and the punched page stays unallocated.
 */
static void check_hole_guard(struct t *t)
{
	const char *key = t->ops == &be_type1_ops ? "VmLck:" : "VmPin:";
	struct region G = { .name = "G", .iova = G_IOVA, .gran = G_LEN, .n = 1 };
	uint64_t pinned = status_bytes(key), unmapped = 0;
	struct be_map_src src = { .fd = -1 };
	uint8_t *svc;
	int guard, rc;

	G.fd = make_memfd("guarded", G_LEN, &G.mem); /* G.mem: the VMM's view */
	CHECK(G.fd >= 0, "memfd: %s", strerror(errno));
	svc = mmap(NULL, G_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, G.fd, 0);
	CHECK(svc != MAP_FAILED, "mmap: %s", strerror(errno));
	guard = be_hole_guard_open(svc, G_LEN);
	CHECK(guard >= 0, "be_hole_guard_open: %s (a kernel without CONFIG_USERFAULTFD?)",
	      strerror(-guard));
	src.vaddr = svc;

	rc = t->ops->map(t->space, G_IOVA, G_LEN, &src, BE_PROT_READ | BE_PROT_WRITE);
	printf("be-dma-test[%s]: map over a guarded hole: %s\n", t->be_name, strerror(-rc));
	CHECK(rc == -EFAULT, "map over a guarded hole: rc %d", rc);
	CHECK(status_bytes(key) == pinned, "%s moved by a refused map", key);
	CHECK(file_blocks(G.fd) == 0, "the refused map allocated %" PRIu64 " blocks",
	      file_blocks(G.fd));

	fill_pattern(t, G.mem, G_LEN); /* the VMM faults its memory in */
	rc = t->ops->map(t->space, G_IOVA, G_LEN, &src, BE_PROT_READ | BE_PROT_WRITE);
	CHECK(rc == 0, "map of the VMM's pages through the guard: %s", strerror(-rc));
	CHECK(status_bytes(key) == pinned + G_LEN, "%s after the map", key);
	check_read_ok(__LINE__, &G, 0);
	rc = t->ops->unmap(t->space, G_IOVA, G_LEN, &unmapped);
	CHECK(rc == 0 && unmapped == G_LEN, "unmap G: rc %d", rc);

	CHECK(fallocate(G.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 * KiB, 4 * KiB) == 0,
	      "punch: %s", strerror(errno));
	rc = t->ops->map(t->space, G_IOVA, G_LEN, &src, BE_PROT_READ | BE_PROT_WRITE);
	CHECK(rc == -EFAULT, "map over a page punched out: rc %d", rc);
	CHECK(status_bytes(key) == pinned, "%s moved by a refused map", key);
	CHECK(file_blocks(G.fd) == (G_LEN - 4 * KiB) / 512, "the punched page came back");
	/* (no device read here: the punched page reads as zeros, as a blocked read may) */

	munmap(svc, G_LEN);
	close(guard);
	munmap(G.mem, G_LEN);
	close(G.fd);
}

static void check_reattach(struct t *t)
{
	const char *cdev = getenv("EDU_CDEV");
	int rc;

	t->ops->device_detach(t->space, t->dev_id);
	t->detached = true;
	check_pinned(t, __LINE__); /* the last domain left: every pin dropped */
	check_write_blocked(__LINE__, &t->A, 0);
	/* Maps and unmaps without a domain only edit the IOAS. */
	unmap_run(t, __LINE__, &t->A, 1, 1);
	map_granule(t, __LINE__, &t->A, 1);
	check_pinned(t, __LINE__);
	check_audit(t, __LINE__, &t->A);

	close(t->dev_fd); /* the file's last fd: the device unbinds */
	t->dev_fd = open(cdev, O_RDWR | O_CLOEXEC);
	CHECK(t->dev_fd >= 0, "reopen %s: %s", cdev, strerror(errno));

	/* A VA with nothing behind it maps fine here; the attach must fail. */
	{
		void *hole = mmap(NULL, 4 * KiB, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct be_map_src bad = { .vaddr = hole, .fd = -1 };
		uint64_t unmapped = 0;

		CHECK(hole != MAP_FAILED && munmap(hole, 4 * KiB) == 0,
		      "mmap/munmap: %s", strerror(errno));
		rc = t->ops->map(t->space, R_IOVA + R_LEN, 4 * KiB, &bad,
				 BE_PROT_READ);
		CHECK(rc == 0, "map of an unbacked VA with no device: rc %d", rc);
		rc = t->ops->device_attach(t->space, t->dev_fd, &t->dev_id);
		printf("be-dma-test[%s]: attach with an unbacked area: %s\n",
		       t->be_name, strerror(-rc));
		CHECK(rc < 0, "attach pinned an unbacked VA");
		check_pinned(t, __LINE__);
		rc = t->ops->unmap(t->space, R_IOVA + R_LEN, 4 * KiB, &unmapped);
		CHECK(rc == 0 && unmapped == 4 * KiB, "unmap of the bad area: rc %d",
		      rc);
		/* The failed attach left this file bound: only a new one works. */
		close(t->dev_fd);
		t->dev_fd = open(cdev, O_RDWR | O_CLOEXEC);
		CHECK(t->dev_fd >= 0, "reopen %s: %s", cdev, strerror(errno));
	}
	rc = t->ops->device_attach(t->space, t->dev_fd, &t->dev_id);
	CHECK(rc == 0, "device_attach to a populated space: %s", strerror(-rc));
	t->detached = false;
	check_pinned(t, __LINE__); /* attach pinned every area */
	rc = edu_init(&t->edu, t->dev_fd);
	CHECK(rc == 0, "edu_init after reattach: %s", strerror(-rc));
	check_read_ok(__LINE__, &t->A, 0);
	check_read_ok(__LINE__, &t->B, 5);
	check_write_ok(__LINE__, &t->A, 1);
	check_read_blocked(__LINE__, &t->B, 8);
}

/*
 * type1 with an operator budget (be_config.max_areas = 4): limits() says 4
 * and the fifth map is refused with -ENOSPC before reaching the kernel.
 */
static void check_type1_budget(struct t *t)
{
	struct be_config cfg = { .path = getenv("EDU_GROUP"), .max_areas = 4 };
	struct be_limits lim;
	uint64_t unmapped = 0;
	int rc;

	rc = t->ops->open(&cfg, &t->ctx);
	CHECK(rc == 0, "open with max_areas: %s", strerror(-rc));
	rc = t->ops->space_create(t->ctx, &t->space);
	CHECK(rc == 0, "space_create: %s", strerror(-rc));
	rc = t->ops->limits(t->space, &lim);
	CHECK(rc == 0 && lim.max_areas == 4, "limits: rc %d max_areas %" PRIu64,
	      rc, lim.max_areas);
	for (unsigned int i = 0; i < 5; i++) {
		struct be_map_src src = src_of(&t->B, i);

		rc = t->ops->map(t->space, B_IOVA + i * B_GRAN, B_GRAN, &src,
				 BE_PROT_READ);
		CHECK(rc == (i < 4 ? 0 : -ENOSPC), "map #%u with budget 4: rc %d",
		      i + 1, rc);
	}
	rc = t->ops->unmap(t->space, B_IOVA, B_N * B_GRAN, &unmapped);
	CHECK(rc == 0 && unmapped == 4 * B_GRAN,
	      "unmap: rc %d unmapped 0x%" PRIx64, rc, unmapped);
	t->ops->space_destroy(t->space);
	t->ops->close(t->ctx);
	check_pinned(t, __LINE__);
}

static void run(struct t *t)
{
	struct be_map_src rsrc;
	uint64_t unmapped;
	int rc;

	setup(t);
	check_limits(t);
	if (t->ops == &be_iommufd_ops) {
		uint64_t cut = 1;
		int rc2;

		check_iommufd_options(t);
		rc2 = be_iommufd_unmap_cut(t->space, B_IOVA, B_GRAN, &cut);
		CHECK(rc2 == -EOPNOTSUPP && cut == 0,
		      "cut unmap with huge pages on: rc %d, want -EOPNOTSUPP", rc2);
	}
	check_pinned(t, __LINE__);

	step(t, "map A (2 MiB granules), B (4 KiB granules), C, R");
	for (unsigned int i = 0; i < A_N; i++)
		map_granule(t, __LINE__, &t->A, i);
	for (unsigned int i = 0; i < B_N; i++)
		map_granule(t, __LINE__, &t->B, i);
	map_granule(t, __LINE__, &t->C, 0);
	rsrc = (struct be_map_src){ .vaddr = t->r, .fd = t->rfd, .fd_offset = 0 };
	rc = t->ops->map(t->space, R_IOVA, R_LEN, &rsrc,
			BE_PROT_READ | BE_PROT_WRITE);
	CHECK(rc == 0, "map R: %s", strerror(-rc));
	t->r_mapped = true;
	check_pinned(t, __LINE__);
	check_audit(t, __LINE__, &t->A);
	check_audit(t, __LINE__, &t->B);

	step(t, "DMA reads and writes of mapped granules");
	check_read_ok(__LINE__, &t->A, 0);
	check_read_ok(__LINE__, &t->A, 1);
	check_read_ok(__LINE__, &t->B, 5);
	check_write_ok(__LINE__, &t->A, 1);
	check_write_ok(__LINE__, &t->B, 7);

	step(t, "map over a mapped granule: -EEXIST, nothing changes");
	{
		struct be_map_src src = src_of(&t->A, 0);

		rc = t->ops->map(t->space, A_IOVA, A_GRAN, &src, BE_PROT_READ);
		CHECK(rc == -EEXIST, "overlapping map: rc %d", rc);
		check_pinned(t, __LINE__);
		check_read_ok(__LINE__, &t->A, 0);
	}

	step(t, "unmap A[1]: blocked; A[0] and B keep working");
	unmap_run(t, __LINE__, &t->A, 1, 1);
	check_pinned(t, __LINE__);
	check_audit(t, __LINE__, &t->A);
	check_read_blocked(__LINE__, &t->A, 1);
	check_write_blocked(__LINE__, &t->A, 1);
	check_read_ok(__LINE__, &t->A, 0);
	check_read_ok(__LINE__, &t->B, 5);

	step(t, "unmap B[3] alone and B[6..9] in one call");
	unmap_run(t, __LINE__, &t->B, 3, 1);
	unmap_run(t, __LINE__, &t->B, 6, 4);
	check_pinned(t, __LINE__);
	check_audit(t, __LINE__, &t->B);
	check_read_blocked(__LINE__, &t->B, 3);
	check_read_blocked(__LINE__, &t->B, 8);
	check_write_blocked(__LINE__, &t->B, 9);
	check_read_ok(__LINE__, &t->B, 4);
	check_read_ok(__LINE__, &t->B, 10);

	step(t, "unmap of an empty range: -ENOENT, nothing changes");
	unmapped = 1;
	rc = t->ops->unmap(t->space, A_IOVA + A_GRAN, A_GRAN, &unmapped);
	CHECK(rc == -ENOENT && unmapped == 0,
	      "empty unmap: rc %d unmapped 0x%" PRIx64, rc, unmapped);
	check_pinned(t, __LINE__);

	step(t, "unmap cutting A[0]: -ENOENT, A[0] stays mapped");
	unmapped = 1;
	rc = t->ops->unmap(t->space, A_IOVA, A_GRAN / 2, &unmapped);
	CHECK(rc == -ENOENT && unmapped == 0,
	      "cutting unmap: rc %d unmapped 0x%" PRIx64, rc, unmapped);
	check_audit(t, __LINE__, &t->A);
	check_pinned(t, __LINE__);
	check_read_ok(__LINE__, &t->A, 0);

	step(t, "unmap over whole B[14..15] that cuts C");
	check_cut_unmap(t);

	step(t, "map A[1] and B[3] again: DMA works again");
	map_granule(t, __LINE__, &t->A, 1);
	map_granule(t, __LINE__, &t->B, 3);
	check_pinned(t, __LINE__);
	check_audit(t, __LINE__, &t->A);
	check_audit(t, __LINE__, &t->B);
	check_read_ok(__LINE__, &t->A, 1);
	check_write_ok(__LINE__, &t->A, 1);
	check_read_ok(__LINE__, &t->B, 3);
	check_read_ok(__LINE__, &t->A, 0);

	step(t, "a map through a guarded mapping over a hole fails and allocates nothing");
	check_hole_guard(t);
	check_pinned(t, __LINE__);

	if (t->ops == &be_iommufd_ops) {
		step(t, "the client's own file cannot move the device into another space");
		check_spaces_isolated(t);
		step(t, "detach: no DMA; attach a fresh fd to the populated IOAS");
		check_reattach(t);
	}

	step(t, "bulk: 16 x 2 MiB and 1024 x 4 KiB from 4 threads, one unmap each");
	check_bulk(t, &t->D);
	check_bulk(t, &t->D4);
	step(t, "hugetlbfs memfd: 4 x 2 MiB huge pages");
	check_bulk(t, &t->H);

	if (t->ops == &be_iommufd_ops) {
		struct utsname u;
		bool mf = be_iommufd_map_file_used(t->space);

		uname(&u);
		printf("be-dma-test[%s]: IOMMU_IOAS_MAP_FILE %s\n", t->be_name,
		       mf ? "used" : "absent (ENOTTY), mapped by vaddr");
		/* 6.12 has no MAP_FILE: a success there would be a wrong ioctl. */
		if (!strncmp(u.release, "6.12.", 5))
			CHECK(!mf, "MAP_FILE claimed on a 6.12 kernel");
	}

	step(t, "detach, destroy: every pin released");
	t->ops->device_detach(t->space, t->dev_id);
	close(t->dev_fd);
	t->ops->space_destroy(t->space);
	t->ops->close(t->ctx);
	memset(t->A.mapped, 0, sizeof(t->A.mapped));
	memset(t->B.mapped, 0, sizeof(t->B.mapped));
	memset(t->C.mapped, 0, sizeof(t->C.mapped));
	t->r_mapped = false;
	check_pinned(t, __LINE__);

	if (t->ops == &be_iommufd_ops) {
		step(t, "huge pages off: one area of 16 pages, its middle cut out (VFIO-compat unmap)");
		check_cut_areas(t);
		step(t, "cut_areas: the backend's unmap() cuts, also after keep and adopt");
		check_backend_cuts(t);
	}

	if (t->ops == &be_type1_ops) {
		step(t, "type1 with an operator area budget of 4");
		check_type1_budget(t);
	}
}

int main(int argc, char **argv)
{
	struct t test = { 0 }, *t = &test;
	struct utsname u;

	setvbuf(stdout, NULL, _IOLBF, 0);
	t->be_name = argc > 1 ? argv[1] : "?";
	if (argc == 2 && !strcmp(argv[1], "iommufd"))
		t->ops = &be_iommufd_ops;
	else if (argc == 2 && !strcmp(argv[1], "type1"))
		t->ops = &be_type1_ops;
	if (!t->ops) {
		fprintf(stderr, "usage: be-dma-test iommufd|type1\n");
		return 2;
	}
	uname(&u);
	printf("be-dma-test[%s]: kernel %s\n", t->be_name, u.release);
	run(t);
	printf("be-dma-test[%s]: PASS checks=%u\n", t->be_name, t->checks);
	return 0;
}
