// SPDX-License-Identifier: MIT
/*
 * daemon-smoke.c - the dmasvc daemon on the real iommufd backend, in the
 * guest, driven through libdmasvc.  No device is attached, so this checks
 * the daemon's map/unmap/audit path against the kernel's IOAS, not DMA;
 * daemon-e2e and be-dma-test cover DMA.
 *
 * Usage: daemon-smoke SOCKET
 *
 * One sealed memfd, two regions (A: 8 MiB of 2 MiB granules, B: 1 MiB of
 * 4 KiB granules).  After every populate/discard the service's AUDIT
 * (iommufd: IOMMU_IOAS_COPY probes) must report exactly the populated
 * granules as OK, nothing MISSING or STRAY.  Exits 0 and prints
 * "daemon-smoke: PASS" or prints the failed step and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"
#include "svc-audit.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define MEM_SIZE (16 * MiB)
#define MAX_GRAN 256

struct region {
	const char *name;
	struct dmasvc_region_desc d;
	int id;
	bool pop[MAX_GRAN]; /* what this program populated */
};

static int die(const char *step, int rc, struct dmasvc_client *c)
{
	printf("daemon-smoke: FAIL %s: %s%s%s\n", step, strerror(-rc),
	       c ? " - service: " : "", c ? dmasvc_last_error(c) : "");
	exit(1);
}

/* AUDIT of @g must say OK for exactly the populated granules. */
static void check_audit(struct dmasvc_client *c, const struct region *g,
			const char *step)
{
	char why[160];
	int n = svc_audit_check(c, g->id, &g->d, g->pop, why, sizeof(why));

	if (n < 0) {
		printf("daemon-smoke: FAIL %s: %s: %s\n", step, g->name, why);
		exit(1);
	}
	printf("daemon-smoke: %s: audit of %s agrees (%d extents)\n", step,
	       g->name, n);
}

static void event(struct dmasvc_client *c, struct region *g, bool populate,
		  uint64_t off, uint64_t len, const char *step)
{
	int rc = populate ? dmasvc_populate(c, (uint32_t)g->id, off, len) :
			    dmasvc_discard(c, (uint32_t)g->id, off, len);

	if (rc)
		die(step, rc, c);
	for (uint64_t o = off; o < off + len; o += g->d.granule)
		g->pop[o / g->d.granule] = populate;
	check_audit(c, g, step);
}

int main(int argc, char **argv)
{
	struct dmasvc_connect_opts opts = { .timeout_ms = 20000 };
	struct dmasvc_client *c;
	struct region A = { .name = "A" }, B = { .name = "B" };
	int fd, mem, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: daemon-smoke SOCKET\n");
		return 2;
	}
	fd = memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, MEM_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		die("sealed memfd", -errno, NULL);

	rc = dmasvc_connect(argv[1], &opts, &c);
	if (rc)
		die("connect", rc, NULL);
	mem = dmasvc_memory_add(c, fd, MEM_SIZE, 0);
	if (mem < 0)
		die("memory_add", mem, c);
	A.d = (struct dmasvc_region_desc){ .mem_id = (uint32_t)mem,
		.mem_offset = 0, .size = 8 * MiB, .iova = 0x1000000,
		.granule = 2 * MiB };
	B.d = (struct dmasvc_region_desc){ .mem_id = (uint32_t)mem,
		.mem_offset = 8 * MiB, .size = 1 * MiB, .iova = 0x2000000,
		.granule = 4 * KiB };
	A.id = dmasvc_region_add(c, &A.d);
	if (A.id < 0)
		die("region_add A", A.id, c);
	B.id = dmasvc_region_add(c, &B.d);
	if (B.id < 0)
		die("region_add B", B.id, c);
	check_audit(c, &A, "empty");

	event(c, &A, true, 0, 4 * MiB, "populate A[0,4M)");
	event(c, &B, true, 0, 256 * KiB, "populate B[0,256K)");
	event(c, &B, false, 64 * KiB, 64 * KiB, "discard B[64K,128K)");
	check_audit(c, &A, "A after B's events");
	event(c, &A, true, 2 * MiB, 6 * MiB, "populate A[2M,8M) (overlaps)");
	event(c, &B, true, 0, 1 * MiB, "populate all of B");
	event(c, &A, false, 0, 8 * MiB, "discard all of A");
	check_audit(c, &B, "B after A's discard");

	rc = dmasvc_region_remove(c, (uint32_t)B.id);
	if (rc)
		die("region_remove B", rc, c);
	dmasvc_disconnect(c);
	close(fd);
	printf("daemon-smoke: PASS\n");
	return 0;
}
