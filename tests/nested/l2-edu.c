// SPDX-License-Identifier: MIT
/*
 * l2-edu.c - the nested tier's program in L2 (static, started by
 * tests/nested/l2-init): drives the edu device that L1's QEMU assigned to
 * L2 with vfio-pci, from inside L2, and answers tests/nested/nested-l1 on
 * the console.
 *
 * Device: BAR0 mapped from sysfs resource0, memory space and bus mastering
 * set through the sysfs config file, 64-bit DMA source/destination (edu
 * allows 8-byte accesses from 0x80 up; L1 gives edu dma_mask=48 bits).
 * There is no vIOMMU in L2, so the address edu emits (IOVA) is the L2
 * guest-physical address (GPA), which L2 takes from /proc/self/pagemap for
 * its mlock()ed pages (root sees the PFNs).
 *
 * Vocabulary: "boot" pages are allocated before any plug, so they are in
 * boot RAM; "vmem" pages are pages this program holds whose GPA lies in the
 * virtio-mem device range [base, base + size) that nested-l1 gives it
 * (from QMP query-memory-devices); a GPA is "offline" when
 * /proc/kpageflags shows KPF_OFFLINE (virtio-mem keeps unplugged
 * sub-blocks fake-offline) or KPF_NOPAGE (the memory block is gone).
 * Pages may migrate (unplug migrates them out of the blocks it takes), so
 * every check reads the current GPA again.
 *
 * Checks (each DMA waits for edu's 100 ms timer):
 *   works at a page it can read (cpu_check): CPU writes a fresh pattern P,
 *     DMA page -> edu -> scratch, scratch == P; then CPU writes P' into the
 *     source page, DMA source -> edu -> page, page == P'.
 *   round trip at a GPA it cannot read (roundtrip): DMA P from the source
 *     page into edu and out to G; load edu's buffer with ~P; DMA G -> edu ->
 *     scratch.  Scratch == P iff G is mapped: a stale mapping of G would
 *     pass, so "blocked" means scratch != P, never "memory unchanged".
 *
 * Console protocol: one command per line on stdin, one answer line on
 * stdout, "L2EDU ok <cmd> [n=N] ..." or "L2EDU fail <cmd> <reason>":
 *   (at start)         L2EDU ready uptime=S boot=GPA scratch=GPA
 *   ping
 *   alloc BASE SIZE    hold one page in each 2 MiB block of the range it
 *                      can get (allocates about SIZE, keeps one page per
 *                      block not held yet, frees the rest); n = blocks
 *                      newly held (may be 0), held = all held
 *   dma_ok boot        cpu_check on the boot page; n=1
 *   dma_ok vmem        cpu_check on each held page now in the range; n
 *   dma_blocked offline  roundtrip must fail at each GPA ever held in the
 *                      range that is offline now; n; fails at 0
 *   dma_ok replugged   roundtrip must pass at each GPA found blocked
 *                      before that is online now; n; fails at 0
 *   dma_blocked boot   roundtrip must fail at the boot page (the whole
 *                      device blocked, after the service died); n=1
 *   dma_blocked held   roundtrip must fail at each held page now in the
 *                      range (still plugged, device blocked); n; fails at 0
 *   gone               unmap edu's BAR and wait (up to 60 s) until edu has
 *                      left /sys/bus/pci/devices (after device_del in L1)
 *   reopen             find edu again and map its BAR (after device_del +
 *                      device_add in L1); waits up to 60 s for it
 *   reset              reset edu through sysfs (echo 1 > .../reset; the
 *                      kernel saves and restores config space around the
 *                      method it picks); answers with reset_method, the
 *                      kernel's list of methods (it uses the first)
 *   quit               answers, exits 0 (l2-init powers off)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "edu.h"

#define PAGE 4096ull
#define BLOCK (2ull << 20)
#define DMA_LEN 1024u
#define MAX_HELD 256
#define KPF_NOPAGE_BIT 20
#define KPF_OFFLINE_BIT 23

/* A page this program holds in the device range, and what became of it. */
struct held {
	uint8_t *va;      /* our mapping; NULL once released */
	uint64_t gpa0;    /* its GPA when it was taken */
	bool was_blocked; /* dma_blocked found gpa0 blocked */
};

static volatile uint8_t *bar;
static uint8_t *page_src, *page_clr, *page_scratch, *page_boot;
static struct held held[MAX_HELD];
static int n_held;
static uint64_t range_base, range_size;
static int pagemap_fd = -1, kpageflags_fd = -1;
static uint32_t pattern_seq;

static void answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* answer - print one protocol line (prefixed "L2EDU ") and flush it. */
static void answer(const char *fmt, ...)
{
	va_list ap;

	fputs("L2EDU ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* gpa_of - the current GPA of the mapped, present page at @va, or 0. */
static uint64_t gpa_of(const void *va)
{
	uint64_t ent, vpn = (uintptr_t)va / PAGE;

	if (pread(pagemap_fd, &ent, 8, (off_t)(vpn * 8)) != 8)
		return 0;
	if (!(ent >> 63 & 1) || !(ent & ((1ull << 55) - 1)))
		return 0;
	return (ent & ((1ull << 55) - 1)) * PAGE + (uintptr_t)va % PAGE;
}

/* gpa_offline - true when the page at @gpa is fake-offline or absent. */
static bool gpa_offline(uint64_t gpa)
{
	uint64_t flags;

	if (pread(kpageflags_fd, &flags, 8, (off_t)(gpa / PAGE * 8)) != 8)
		return true; /* beyond max_pfn: no page there */
	return flags >> KPF_OFFLINE_BIT & 1 || flags >> KPF_NOPAGE_BIT & 1;
}

static bool in_range(uint64_t gpa)
{
	return range_size && gpa >= range_base && gpa - range_base < range_size;
}

static uint32_t rd32(uint32_t reg)
{
	return *(volatile uint32_t *)(bar + reg);
}

static void wr32(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(bar + reg) = v;
}

static void wr64(uint32_t reg, uint64_t v)
{
	*(volatile uint64_t *)(bar + reg) = v;
}

/*
 * dma - one edu transfer of DMA_LEN bytes between @gpa and edu's buffer
 * (@to_ram: buffer -> RAM), polled to completion.  A transfer the IOMMU
 * blocks still completes.  Returns 0 or -ETIMEDOUT.
 */
static int dma(uint64_t gpa, bool to_ram)
{
	struct timespec tick = { .tv_nsec = 5 * 1000 * 1000 };

	wr64(EDU_REG_DMA_SRC, to_ram ? EDU_DEV_BUF : gpa);
	wr64(EDU_REG_DMA_DST, to_ram ? gpa : EDU_DEV_BUF);
	wr32(EDU_REG_DMA_CNT, DMA_LEN);
	wr32(EDU_REG_DMA_CMD, EDU_CMD_RUN | (to_ram ? EDU_CMD_TO_RAM : 0));
	for (int ms = 0; ms < EDU_DMA_TIMEOUT_MS * 3; ms += 5) {
		if (!(rd32(EDU_REG_DMA_CMD) & EDU_CMD_RUN))
			return 0;
		nanosleep(&tick, NULL);
	}
	return -ETIMEDOUT;
}

/* fill - a fresh pattern (never repeated in this run) into @p; returns its seed. */
static uint32_t fill(uint8_t *p)
{
	uint32_t seed = ++pattern_seq * 2654435761u ^ (uint32_t)time(NULL);

	for (unsigned i = 0; i < DMA_LEN; i += 4) {
		uint32_t v = seed + i * 0x9e3779b9u;

		memcpy(p + i, &v, 4);
	}
	return seed;
}

/* move - DMA from @src_gpa into edu and out to @dst_gpa.  0 or -errno. */
static int move(uint64_t src_gpa, uint64_t dst_gpa)
{
	int rc = dma(src_gpa, false);

	return rc ? rc : dma(dst_gpa, true);
}

/*
 * cpu_check - DMA works both ways at the page @va, which the CPU can read
 * (see the header).  Returns 0, 1 when the data is wrong (reason in
 * @why), or -errno.
 */
static int cpu_check(uint8_t *va, char *why, size_t whylen)
{
	uint64_t g = gpa_of(va), src = gpa_of(page_src), scr = gpa_of(page_scratch);
	int rc;

	if (!g || !src || !scr) {
		snprintf(why, whylen, "no GPA for a page");
		return -EFAULT;
	}
	fill(va);
	memset(page_scratch, 0xa5, DMA_LEN);
	rc = move(g, scr);
	if (rc)
		return rc;
	if (memcmp(page_scratch, va, DMA_LEN)) {
		snprintf(why, whylen, "read of 0x%" PRIx64 ": scratch does not hold the page's bytes", g);
		return 1;
	}
	fill(page_src);
	rc = move(src, g);
	if (rc)
		return rc;
	if (memcmp(va, page_src, DMA_LEN)) {
		snprintf(why, whylen, "write to 0x%" PRIx64 ": the page does not hold the written bytes", g);
		return 1;
	}
	return 0;
}

/*
 * roundtrip - write a fresh pattern to @g by DMA, read @g back by DMA into
 * scratch (with edu's buffer reloaded in between).  Returns 1 when scratch
 * holds the pattern (DMA to @g works), 0 when not, -errno on a device
 * timeout.
 */
static int roundtrip(uint64_t g)
{
	uint64_t src = gpa_of(page_src), clr = gpa_of(page_clr), scr = gpa_of(page_scratch);
	int rc;

	if (!src || !clr || !scr)
		return -EFAULT;
	fill(page_src);
	for (unsigned i = 0; i < DMA_LEN; i++)
		page_clr[i] = (uint8_t)~page_src[i];
	memset(page_scratch, 0x5a, DMA_LEN);
	rc = move(src, g);
	if (!rc)
		rc = dma(clr, false);
	if (!rc)
		rc = move(g, scr);
	if (rc)
		return rc;
	return !memcmp(page_scratch, page_src, DMA_LEN);
}

/* release - munlock and free the pages [@p, @p + @len) (len may be 0). */
static void release(uint8_t *p, size_t len)
{
	if (len) {
		munlock(p, len);
		madvise(p, len, MADV_DONTNEED);
	}
}

/*
 * cmd_alloc - hold one page per 2 MiB block of [@base, @base + @size)
 * that an allocation of about @size bytes gets; free the other pages.
 * Returns the number of blocks held (pages held before stay held), or
 * -errno.  One pagemap read and one release per run of unkept pages:
 * each system call is slow in a nested TCG guest.
 */
static int cmd_alloc(uint64_t base, uint64_t size)
{
	size_t len = (size_t)size + BLOCK, npages = len / PAGE, run = 0;
	uint64_t *ent, cur[MAX_HELD];
	uint8_t *p;
	int got = 0;

	range_base = base;
	range_size = size;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	ent = malloc(npages * sizeof(*ent));
	if (!ent || mlock(p, len) < 0 ||
	    pread(pagemap_fd, ent, npages * 8, (off_t)((uintptr_t)p / PAGE * 8)) != (ssize_t)(npages * 8)) {
		int err = ent ? errno : ENOMEM;

		free(ent);
		munmap(p, len);
		return -err;
	}
	for (int h = 0; h < n_held; h++) /* the blocks held pages are in now */
		cur[h] = held[h].va ? gpa_of(held[h].va) / BLOCK : UINT64_MAX;
	for (size_t i = 0; i < npages; i++) {
		uint64_t pfn = ent[i] & ((1ull << 55) - 1), g = pfn * PAGE;
		bool keep = ent[i] >> 63 & 1 && pfn && in_range(g) && n_held < MAX_HELD;

		for (int h = 0; keep && h < n_held; h++)
			if (cur[h] == g / BLOCK)
				keep = false;
		if (!keep) {
			run++;
			continue;
		}
		release(p + (i - run) * PAGE, run * PAGE);
		run = 0;
		cur[n_held] = g / BLOCK;
		held[n_held++] = (struct held){ .va = p + i * PAGE, .gpa0 = g };
		got++;
	}
	release(p + (npages - run) * PAGE, run * PAGE);
	free(ent);
	return got;
}

/* do_dma_ok_vmem - cpu_check on each held page now in the range. */
static void do_dma_ok_vmem(void)
{
	char why[160];
	int n = 0;

	for (int i = 0; i < n_held; i++) {
		int rc;

		if (!held[i].va || !in_range(gpa_of(held[i].va)))
			continue;
		rc = cpu_check(held[i].va, why, sizeof(why));
		if (rc) {
			answer("fail dma_ok vmem %s", rc < 0 ? strerror(-rc) : why);
			return;
		}
		n++;
	}
	if (!n)
		answer("fail dma_ok vmem no held page in the device range");
	else
		answer("ok dma_ok vmem n=%d", n);
}

/* do_dma_blocked - the round trip must fail at every offline GPA held. */
static void do_dma_blocked(void)
{
	int n = 0, online = 0;

	for (int i = 0; i < n_held; i++) {
		int rc;

		if (!gpa_offline(held[i].gpa0)) {
			online++;
			continue;
		}
		rc = roundtrip(held[i].gpa0);
		if (rc < 0) {
			answer("fail dma_blocked offline %s", strerror(-rc));
			return;
		}
		if (rc) {
			answer("fail dma_blocked offline DMA to unplugged 0x%" PRIx64 " still works",
			       held[i].gpa0);
			return;
		}
		held[i].was_blocked = true;
		n++;
	}
	if (!n)
		answer("fail dma_blocked offline none of the %d GPAs held went offline", n_held);
	else
		answer("ok dma_blocked offline n=%d online=%d", n, online);
}

/* do_dma_blocked_held - the round trip must fail at every held page in the range. */
static void do_dma_blocked_held(void)
{
	int n = 0;

	for (int i = 0; i < n_held; i++) {
		uint64_t g = held[i].va ? gpa_of(held[i].va) : 0;
		int rc;

		if (!in_range(g))
			continue;
		rc = roundtrip(g);
		if (rc) {
			answer("fail dma_blocked held %s",
			       rc < 0 ? strerror(-rc) : "DMA to a plugged page still works");
			return;
		}
		n++;
	}
	if (!n)
		answer("fail dma_blocked held no held page in the device range");
	else
		answer("ok dma_blocked held n=%d", n);
}

/* do_dma_ok_replugged - the round trip must pass where it was blocked. */
static void do_dma_ok_replugged(void)
{
	int n = 0;

	for (int i = 0; i < n_held; i++) {
		int rc;

		if (!held[i].was_blocked || gpa_offline(held[i].gpa0))
			continue;
		rc = roundtrip(held[i].gpa0);
		if (rc < 0) {
			answer("fail dma_ok replugged %s", strerror(-rc));
			return;
		}
		if (!rc) {
			answer("fail dma_ok replugged DMA to replugged 0x%" PRIx64 " is still blocked",
			       held[i].gpa0);
			return;
		}
		n++;
	}
	if (!n)
		answer("fail dma_ok replugged no formerly blocked GPA is online again");
	else
		answer("ok dma_ok replugged n=%d", n);
}

/* edu_find - the BDF of edu (1234:11e8) into @bdf; 0 or -ENODEV (-errno). */
static int edu_find(char *bdf, size_t bdflen)
{
	char path[300];
	struct dirent *d;
	DIR *dir = opendir("/sys/bus/pci/devices");
	int found = 0;

	if (!dir)
		return -errno;
	while (!found && (d = readdir(dir))) {
		unsigned vendor = 0, device = 0;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%x", &vendor) != 1)
			vendor = 0;
		fclose(f);
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%x", &device) != 1)
			device = 0;
		fclose(f);
		if (vendor == 0x1234 && device == 0x11e8) {
			snprintf(bdf, bdflen, "%s", d->d_name);
			found = 1;
		}
	}
	closedir(dir);
	return found ? 0 : -ENODEV;
}

/* edu_open - find edu, map BAR0, enable memory space + bus mastering. */
static int edu_open(char *bdf, size_t bdflen)
{
	char path[300];
	uint16_t cmd;
	int fd, rc = edu_find(bdf, bdflen);

	if (rc)
		return rc;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return -errno;
	if (pread(fd, &cmd, 2, 4) != 2) {
		close(fd);
		return -EIO;
	}
	cmd |= 0x6; /* memory space + bus master */
	if (pwrite(fd, &cmd, 2, 4) != 2) {
		close(fd);
		return -EIO;
	}
	close(fd);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0)
		return -errno;
	bar = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	rc = bar == MAP_FAILED ? -errno : 0;
	close(fd);
	if (rc) {
		bar = NULL;
		return rc;
	}
	if ((rd32(EDU_REG_ID) & 0xff) != 0xed)
		return -ENODEV;
	return 0;
}

/*
 * do_reset - reset edu at @bdf through sysfs; answers with the kernel's
 * reset_method list ("none" when the kernel offers no method: then the
 * reset file does not exist and this fails).
 */
static void do_reset(const char *bdf)
{
	char path[300], methods[128] = "none";
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/reset_method", bdf);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(methods, sizeof(methods), f))
			snprintf(methods, sizeof(methods), "none");
		methods[strcspn(methods, "\n")] = 0;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/reset", bdf);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, "1", 1) != 1) {
		answer("fail reset %s: %s (reset_method: %s)", path, strerror(errno), methods);
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	if ((rd32(EDU_REG_ID) & 0xff) != 0xed) {
		answer("fail reset edu's id register reads 0x%x after the reset", rd32(EDU_REG_ID));
		return;
	}
	answer("ok reset edu=%s reset_method=%s", bdf, methods);
}

/* quiet_console - no echo of our input on the console (it would read as output). */
static void quiet_console(void)
{
	struct termios t;

	if (tcgetattr(0, &t) == 0) {
		t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		t.c_iflag |= ICRNL;
		tcsetattr(0, TCSANOW, &t);
	}
}

static double uptime(void)
{
	double up = -1;
	FILE *f = fopen("/proc/uptime", "r");

	if (f) {
		if (fscanf(f, "%lf", &up) != 1)
			up = -1;
		fclose(f);
	}
	return up;
}

int main(void)
{
	char line[256], bdf[NAME_MAX + 1], why[160];
	uint8_t *pages;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	quiet_console();
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY);
	if (pagemap_fd < 0 || kpageflags_fd < 0) {
		answer("fail start /proc/self/pagemap or /proc/kpageflags: %s", strerror(errno));
		return 1;
	}
	rc = edu_open(bdf, sizeof(bdf));
	if (rc) {
		answer("fail start edu: %s", strerror(-rc));
		return 1;
	}
	/* Before any plug: these four pages are boot RAM. */
	pages = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
	if (pages == MAP_FAILED || mlock(pages, 4 * PAGE) < 0) {
		answer("fail start boot pages: %s", strerror(errno));
		return 1;
	}
	page_src = pages;
	page_clr = pages + PAGE;
	page_scratch = pages + 2 * PAGE;
	page_boot = pages + 3 * PAGE;
	answer("ready uptime=%.1f edu=%s boot=0x%" PRIx64 " scratch=0x%" PRIx64, uptime(), bdf,
	       gpa_of(page_boot), gpa_of(page_scratch));

	while (fgets(line, sizeof(line), stdin)) {
		unsigned long long base, size;
		char arg[32] = "";

		line[strcspn(line, "\r\n")] = 0;
		if (!line[0])
			continue;
		if (!strcmp(line, "ping")) {
			answer("ok ping");
		} else if (sscanf(line, "alloc %llx %llx", &base, &size) == 2) {
			rc = cmd_alloc(base, size);
			if (rc < 0)
				answer("fail alloc %s", strerror(-rc));
			else
				answer("ok alloc n=%d held=%d", rc, n_held);
		} else if (!strcmp(line, "dma_ok boot")) {
			snprintf(why, sizeof(why), "the boot page is in the device range");
			rc = in_range(gpa_of(page_boot)) ? 1 : cpu_check(page_boot, why, sizeof(why));
			if (rc)
				answer("fail dma_ok boot %s", rc < 0 ? strerror(-rc) : why);
			else
				answer("ok dma_ok boot n=1 gpa=0x%" PRIx64, gpa_of(page_boot));
		} else if (!strcmp(line, "dma_ok vmem")) {
			do_dma_ok_vmem();
		} else if (!strcmp(line, "gone")) {
			if (bar)
				munmap((void *)bar, PAGE);
			bar = NULL;
			for (int i = 0; !(rc = edu_find(bdf, sizeof(bdf))) && i < 60; i++)
				sleep(1);
			if (!rc)
				answer("fail gone edu %s is still there after 60 s", bdf);
			else
				answer("ok gone");
		} else if (!strcmp(line, "reset")) {
			do_reset(bdf);
		} else if (!strcmp(line, "reopen")) {
			if (bar)
				munmap((void *)bar, PAGE);
			bar = NULL;
			for (int i = 0; (rc = edu_open(bdf, sizeof(bdf))) && i < 60; i++)
				sleep(1);
			if (rc)
				answer("fail reopen edu: %s", strerror(-rc));
			else
				answer("ok reopen edu=%s", bdf);
		} else if (!strcmp(line, "dma_blocked boot")) {
			rc = roundtrip(gpa_of(page_boot));
			if (rc)
				answer("fail dma_blocked boot %s",
				       rc < 0 ? strerror(-rc) : "DMA to the boot page still works");
			else
				answer("ok dma_blocked boot n=1");
		} else if (!strcmp(line, "dma_blocked held")) {
			do_dma_blocked_held();
		} else if (!strcmp(line, "dma_blocked offline")) {
			do_dma_blocked();
		} else if (!strcmp(line, "dma_ok replugged")) {
			do_dma_ok_replugged();
		} else if (!strcmp(line, "quit")) {
			answer("ok quit");
			return 0;
		} else {
			sscanf(line, "%31s", arg);
			answer("fail %s unknown command", arg);
		}
	}
	return 0;
}
