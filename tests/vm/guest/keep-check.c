/* SPDX-License-Identifier: MIT */
/*
 * keep-check.c - the service side of issue 14 in the guest, one planned
 * upgrade (docs/restart.md): a client registers 64 MiB at 2 MiB, attaches
 * edu (EDU_CDEV) and populates 32 MiB; the daemon (DMASVC_PID, started
 * with --keep-sessions) gets SIGHUP and re-executes itself; the client
 * resumes (dmasvc_reconnect, dmasvc_resumed) and replays.  The system-wide
 * pin count (/proc/vmstat nr_foll_pin_acquired - nr_foll_pin_released,
 * iommufd pins with FOLL_PIN) must not move across the upgrade and the
 * resume: the kernel kept every mapping.  Usage: keep-check SOCKET.
 * keep-check SOCKET abandon: the client never comes back; after the
 * daemon's --resume-grace-sec (3 s in 81-*) the orphan is torn down and
 * the pins go back to where they were before the session.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"

#define MiB (1ull << 20)

/*
 * Pinned pages system-wide.  The vmstat counters are folded from per-CPU
 * deltas about once a second (vmstat_update): wait for that first, or a
 * read right after a populate misses a few pages (measured: 8177 of 8192).
 */
static long long pins(void)
{
	char line[128];
	long long acq = -1, rel = -1, v;
	FILE *f;

	sleep(2);
	f = fopen("/proc/vmstat", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "nr_foll_pin_acquired %lld", &v) == 1)
			acq = v;
		if (sscanf(line, "nr_foll_pin_released %lld", &v) == 1)
			rel = v;
	}
	fclose(f);
	return acq < 0 || rel < 0 ? -1 : acq - rel;
}

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		if (!(cond)) {                                            \
			printf("keep-check: FAIL: " __VA_ARGS__);         \
			printf("\n");                                     \
			return 1;                                         \
		}                                                         \
	} while (0)

int main(int argc, char **argv)
{
	struct dmasvc_region_desc d = { .size = 64 * MiB, .iova = 1ull << 30, .granule = 2 * MiB };
	const char *pid_s = getenv("DMASVC_PID"), *cdev = getenv("EDU_CDEV");
	struct dmasvc_client *c;
	long long p0, p1, p2, p3;
	int fd, dfd, mem, r, ret;

	CHECK((argc == 2 || (argc == 3 && !strcmp(argv[2], "abandon"))) && pid_s && cdev,
	      "usage: keep-check SOCKET [abandon] (DMASVC_PID, EDU_CDEV set)");
	p0 = pins();
	CHECK(dmasvc_connect(argv[1], NULL, &c) == 0, "connect");
	fd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0 && ftruncate(fd, 64 * MiB) == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0,
	      "memfd");
	mem = dmasvc_memory_add(c, fd, 64 * MiB, 0);
	CHECK(mem >= 0, "memory_add %d %s", mem, dmasvc_last_error(c));
	d.mem_id = (uint32_t)mem;
	r = dmasvc_region_add(c, &d);
	CHECK(r >= 0, "region_add %d %s", r, dmasvc_last_error(c));
	dfd = open(cdev, O_RDWR | O_CLOEXEC);
	CHECK(dfd >= 0, "open %s", cdev);
	ret = dmasvc_device_attach(c, dfd);
	CHECK(ret > 0, "device_attach %d %s", ret, dmasvc_last_error(c));
	ret = dmasvc_populate(c, (uint32_t)r, 0, 32 * MiB);
	CHECK(ret == 0, "populate %d %s", ret, dmasvc_last_error(c));
	p1 = pins();
	printf("keep-check: pins before %lld, after populating 32 MiB %lld (+%lld pages)\n", p0, p1,
	       p1 - p0);
	CHECK(p1 - p0 == (long long)(32 * MiB / 4096), "the kernel pinned 32 MiB");

	CHECK(kill((pid_t)atoi(pid_s), SIGHUP) == 0, "SIGHUP");
	sleep(1); /* the re-exec and the adoption (pins() waits 2 s more) */
	p2 = pins();
	printf("keep-check: pins after the upgrade %lld\n", p2);
	CHECK(p2 == p1, "pins moved across the upgrade: %lld -> %lld", p1, p2);
	if (argc == 3) { /* abandon: never resumed */
		dmasvc_disconnect(c);
		close(dfd);
		close(fd);
		sleep(4); /* the 3 s grace and the teardown (pins() waits 2 s more) */
		p3 = pins();
		printf("keep-check: pins after the grace period %lld\n", p3);
		CHECK(p3 == p0, "the orphan's pins were not released: %lld, %lld before", p3, p0);
		printf("keep-check: PASS\n");
		return 0;
	}
	ret = dmasvc_reconnect(c);
	CHECK(ret == 0, "reconnect %d %s", ret, dmasvc_last_error(c));
	printf("keep-check: reconnect: resumed %d\n", (int)dmasvc_resumed(c));
	CHECK(dmasvc_resumed(c), "the session was not resumed: %s", dmasvc_last_error(c));
	ret = dmasvc_populate(c, (uint32_t)r, 32 * MiB, 8 * MiB);
	CHECK(ret == 0, "populate after the resume %d %s", ret, dmasvc_last_error(c));
	p3 = pins();
	printf("keep-check: pins after the resume and 8 MiB more %lld (+%lld pages)\n", p3, p3 - p1);
	/* 8 MiB more, and not the 32 MiB again */
	CHECK(p3 - p1 == (long long)(8 * MiB / 4096), "the resume re-pinned or lost pages");
	dmasvc_disconnect(c);
	close(dfd);
	close(fd);
	printf("keep-check: PASS\n");
	return 0;
}
