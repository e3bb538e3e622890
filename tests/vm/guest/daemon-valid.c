// SPDX-License-Identifier: MIT
/*
 * daemon-valid.c - what the daemon refuses on the real kernel (issue 13,
 * "Validation that matches the kernel"), through libdmasvc.
 *
 * Usage: daemon-valid iova|type1 SOCKET   (env: DMASVC_PID; EDU_CDEV for
 *        iova; EDU_GROUP, EDU2_BDF, EDU2_GROUP for type1)
 *
 *   iova   daemon --iommufd.  The emulated VT-d gives every device the MSI
 *          window 0xfee00000-0xfeefffff as a reserved region, and iommufd
 *          reports the IOAS's full range until a device is attached.
 *          1. a registered, unpopulated 2 MiB region at 0xfee00000, then
 *             DEVICE_ATTACH of the edu cdev: the kernel's attach succeeds
 *             (no area there), the daemon re-reads the ranges, refuses with
 *             EADDRINUSE naming the region and the allowed ranges, and
 *             detaches again (IOMMU_IOAS_IOVA_RANGES, read back from the
 *             daemon's own iommufd with pidfd_getfd, is whole again);
 *          2. the same region populated: the kernel itself refuses the
 *             attach (EADDRINUSE, an area inside a reserved region); the
 *             daemon names the region and the reserved range from sysfs;
 *          3. the region removed: the attach works, and a REGION_ADD over
 *             the window is refused with ERANGE naming the ranges.
 *   type1  daemon --vfio-group EDU_GROUP --device EDU_BDF.  The client holds
 *          a second edu in another group (its own container):
 *          1. opening EDU_GROUP fails with EBUSY (the daemon holds it: no
 *             client can make a device fd of that group itself);
 *          2. DEVICE_ATTACH of the second edu's fd is refused with EXDEV
 *             naming the held group (before: reported attached);
 *          3. DEVICE_ATTACH of a copy of the daemon's own edu fd
 *             (pidfd_getfd) is accepted.
 *
 * Prints "daemon-valid[<mode>]: PASS checks=<n>" and exits 0, or the failed
 * check and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "dmasvc/dmasvc.h"
#include "svc-audit.h"

#define MiB ((uint64_t)1 << 20)
#define MSI 0xfee00000ull

static const char *mode = "?";
static unsigned int checks;
static struct dmasvc_client *cl;

static void __attribute__((format(printf, 1, 2), noreturn)) fail(const char *fmt, ...)
{
	va_list ap;

	printf("daemon-valid[%s]: FAIL ", mode);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (cl)
		printf(" (service: %s)", dmasvc_last_error(cl));
	putchar('\n');
	fflush(stdout);
	_exit(1);
}

/* The call returned @got, want @want, and the service's text holds @text. */
static void expect(const char *what, int got, int want, const char *text)
{
	const char *e = dmasvc_last_error(cl);

	checks++;
	if (got != want)
		fail("%s: %d (%s), want %d (%s)", what, got, got < 0 ? strerror(-got) : "ok", want,
		     want < 0 ? strerror(-want) : "ok");
	if (text && !strstr(e, text))
		fail("%s: the service's text lacks '%s'", what, text);
	printf("daemon-valid[%s]: %s: %s%s%s\n", mode, what, want < 0 ? strerror(-want) : "ok",
	       text ? ": " : "", text ? e : "");
}

static int memory(uint64_t size)
{
	int fd = memfd_create("guest-ram", MFD_ALLOW_SEALING), mem;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		fail("sealed memfd: %s", strerror(errno));
	mem = dmasvc_memory_add(cl, fd, size, 0);
	if (mem < 0)
		fail("memory_add: %s", strerror(-mem));
	close(fd);
	return mem;
}

static int region(int mem, uint64_t off, uint64_t iova)
{
	struct dmasvc_region_desc d = {
		.mem_id = (uint32_t)mem, .mem_offset = off, .size = 2 * MiB, .iova = iova,
		.granule = 2 * MiB,
	};

	return dmasvc_region_add(cl, &d);
}

static int attach_cdev(void)
{
	const char *cdev = getenv("EDU_CDEV");
	int fd = cdev ? open(cdev, O_RDWR) : -1, rc;

	if (fd < 0)
		fail("open EDU_CDEV %s: %s", cdev ? cdev : "(unset)", strerror(errno));
	rc = dmasvc_device_attach(cl, fd); /* a refused fd stays bound: open anew each time */
	close(fd);
	return rc;
}

/*
 * Whether every IOAS in the daemon's iommufd contexts allows @iova (the
 * IOAS ids are small; ask ids 1..8 of each context).  Returns 1 allowed,
 * 0 reserved somewhere, -errno when no IOAS answered.
 */
static int daemon_allows(pid_t daemon, uint64_t iova)
{
	struct iommu_iova_range r[16];
	int fd, answered = 0, allowed = 1;

	fd = svc_steal_fd(daemon, "/dev/iommu", 0);
	if (fd < 0)
		return fd;
	for (uint32_t id = 1; id <= 8; id++) {
		struct iommu_ioas_iova_ranges q = {
			.size = sizeof(q), .ioas_id = id, .num_iovas = 16,
			.allowed_iovas = (uintptr_t)r,
		};
		bool in = false;

		if (ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &q) < 0)
			continue;
		answered++;
		for (uint32_t i = 0; i < q.num_iovas && i < 16; i++)
			in |= iova >= r[i].start && iova <= r[i].last;
		allowed &= in;
	}
	close(fd);
	return answered ? allowed : -ENOENT;
}

static void run_iova(pid_t daemon)
{
	int mem = memory(8 * MiB), r, r2;

	r = region(mem, 0, MSI);
	expect("region at 0xfee00000 before any device (the full range)", r > 0 ? 0 : r, 0, NULL);
	expect("attach with that region registered, nothing mapped", attach_cdev(), -EADDRINUSE,
	       "region");
	expect("the refusal names the region", 0, 0, "iova 0xfee00000-0xfeffffff is outside");
	expect("the refusal names the allowed ranges", 0, 0, "0xfef00000-0x");
	checks++;
	if (daemon_allows(daemon, MSI) != 1)
		fail("after the refused attach the daemon's IOAS still reserves 0xfee00000: "
		     "the device was not detached");
	printf("daemon-valid[%s]: the daemon's IOAS allows 0xfee00000 again (device detached)\n",
	       mode);

	expect("populate the region (an area, no device: nothing pinned)",
	       dmasvc_populate(cl, (uint32_t)r, 0, 2 * MiB), 0, NULL);
	expect("attach with the region populated: the kernel refuses", attach_cdev(),
	       -EADDRINUSE, "refused by the kernel: region");
	expect("the refusal names the reserved range", 0, 0, "reserved IOVA 0xfee00000-0xfeefffff");

	expect("remove the region", dmasvc_region_remove(cl, (uint32_t)r), 0, NULL);
	r = attach_cdev();
	expect("attach with nothing in the window", r > 0 ? 0 : r, 0, NULL);
	checks++;
	if (daemon_allows(daemon, MSI) != 0)
		fail("with the device attached the daemon's IOAS allows 0xfee00000");
	r2 = region(mem, 2 * MiB, MSI);
	expect("a region at 0xfee00000 after the attach", r2, -ERANGE,
	       "is outside the space's IOVA ranges (0x");
	r2 = region(mem, 2 * MiB, MSI - 2 * MiB);
	expect("a region right below the window", r2 > 0 ? 0 : r2, 0, NULL);
	expect("populate it", dmasvc_populate(cl, (uint32_t)r2, 0, 2 * MiB), 0, NULL);
}

static void run_type1(pid_t daemon)
{
	const char *held = getenv("EDU_GROUP"), *g2 = getenv("EDU2_GROUP"), *bdf2 = getenv("EDU2_BDF");
	struct vfio_group_status st = { .argsz = sizeof(st) };
	int fd, grp, cont, dev, own, rc;

	if (!held || !g2 || !bdf2)
		fail("EDU_GROUP, EDU2_GROUP and EDU2_BDF must be set (a second edu: run-guest.sh "
		     "DMASVC_VM_EDU2)");
	/* The session takes the container (and --device) at its first region. */
	rc = region(memory(4 * MiB), 0, 0x1000000);
	expect("a region (the session takes the container)", rc > 0 ? 0 : rc, 0, NULL);
	fd = open(held, O_RDWR);
	checks++;
	if (fd >= 0 || errno != EBUSY)
		fail("opening the held group %s: %s, want EBUSY", held,
		     fd >= 0 ? "opened" : strerror(errno));
	printf("daemon-valid[%s]: %s cannot be opened by a client: %s\n", mode, held,
	       strerror(errno));

	grp = open(g2, O_RDWR);
	cont = open("/dev/vfio/vfio", O_RDWR);
	if (grp < 0 || cont < 0)
		fail("open %s or the container: %s", g2, strerror(errno));
	if (ioctl(grp, VFIO_GROUP_GET_STATUS, &st) < 0 || !(st.flags & VFIO_GROUP_FLAGS_VIABLE))
		fail("%s not viable", g2);
	if (ioctl(grp, VFIO_GROUP_SET_CONTAINER, &cont) < 0 ||
	    ioctl(cont, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
		fail("a container for %s: %s", g2, strerror(errno));
	dev = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, bdf2);
	if (dev < 0)
		fail("device fd of %s: %s", bdf2, strerror(errno));
	expect("attach of a device of another group", dmasvc_device_attach(cl, dev), -EXDEV,
	       "is not a device of the VFIO group");
	expect("the refusal names the held group", 0, 0, held);
	close(dev);
	close(grp);
	close(cont);

	own = svc_steal_fd(daemon, "anon_inode:[vfio-device]", 0);
	if (own < 0)
		fail("the daemon holds no device fd (--device): %s", strerror(-own));
	rc = dmasvc_device_attach(cl, own);
	expect("attach of a copy of the daemon's own device fd (the held group)", rc > 0 ? 0 : rc,
	       0, NULL);
	if (rc > 0)
		expect("detach it", dmasvc_device_detach(cl, (uint32_t)rc), 0, NULL);
	close(own); /* an open device fd would keep the container busy at teardown */
}

int main(int argc, char **argv)
{
	struct dmasvc_connect_opts opts = { .timeout_ms = 30000 };
	pid_t daemon;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3 || (strcmp(argv[1], "iova") && strcmp(argv[1], "type1")) ||
	    !getenv("DMASVC_PID")) {
		fprintf(stderr, "usage: DMASVC_PID=PID daemon-valid iova|type1 SOCKET\n");
		return 2;
	}
	mode = argv[1];
	daemon = (pid_t)atoi(getenv("DMASVC_PID"));
	rc = dmasvc_connect(argv[2], &opts, &cl);
	if (rc)
		fail("connect %s: %s", argv[2], strerror(-rc));
	if (!strcmp(mode, "iova"))
		run_iova(daemon);
	else
		run_type1(daemon);
	dmasvc_disconnect(cl);
	cl = NULL;
	printf("daemon-valid[%s]: PASS checks=%u\n", mode, checks);
	return 0;
}
