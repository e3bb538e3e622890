// SPDX-License-Identifier: MIT
/*
 * restart-test.c - issue #14's proof on the real kernel: the service dies or
 * is upgraded under a VMM-like client with edu attached, and the kernel's
 * objects (the session's iommufd context, the device bound to it, every
 * mapping and pin) outlive the process; the next instance adopts them and
 * the client resumes.  Runs under tests/vm/fdstore-keeper (systemd's fd
 * store and Restart= for the busybox guest).
 *
 * Usage: restart-test crash|crash-device|upgrade|abandon|bench SOCKET KEEPER_DIR
 *   KEEPER_DIR holds the keeper's control FIFO "ctl" and state file "state"
 *   (tests/vm/fdstore-keeper.c); env EDU_CDEV; upgrade: env RESTART_UP_PATH
 *   (the --upgrade-exec path the daemon runs from) and RESTART_UP_NEW (build
 *   B, renamed over it).
 *
 * Setup (every mode): the client opens the edu cdev, keeps it open and sends
 * it with DEVICE_ATTACH (as a VMM does); one sealed 20 MiB memfd: region A
 * 8 x 2 MiB granules at iova 0x1000000, scratch S 1 x 4 KiB at 0x3000000
 * (always populated: where the device shows what it read); S[0] and A[0..4]
 * populated.  A value is left in edu's factorial register (0x08) and the PCI
 * command register has bus mastering on (written once, by edu_init, before
 * the restart; never again).
 *
 * Pins, at every step: the system's FOLL_PIN pages from the kernel,
 * /proc/vmstat nr_foll_pin_acquired - nr_foll_pin_released, minus the value
 * before anything was populated, must equal the populated bytes / 4096
 * (a double pin, or pins lost with the process, shows here).  vmstat folds
 * per-cpu deltas at least every second: a mismatch is re-read for 5 s.
 *
 * crash    the keeper SIGKILLs the daemon and restarts it after 8 s
 *          (--restart-sec 8).  While no daemon runs (the keeper's state says
 *          pid 0 before and after): edu DMA both ways into A[0] and A[3]
 *          lands, data-checked; A[6] (never populated) stays blocked; pins
 *          unchanged.  Then the factorial register still holds the value and
 *          the command register still has bus mastering: vfio-pci clears the
 *          master bit on the device's last close (vfio_pci_core_disable:
 *          pci_clear_master, then a reset), and a PCI reset in QEMU clears
 *          the command register, so both prove the device was neither closed
 *          nor reset.  (edu has no reset handler, so the factorial register
 *          alone would not prove that; it shows that nothing rewrote it.)
 *          The restarted daemon adopts the session; dmasvc_reconnect()
 *          resumes it: dmasvc_resumed() true, the same session id, 1 device,
 *          and the replay made 0 map and 0 unmap calls (QUERY SESSIONS).
 *          DMA on A[0..4] lands; A[5], A[6] populated and A[1] discarded
 *          after the resume, each DMA-checked; pins equal at every step;
 *          the new daemon's VmPin equals only what it mapped itself (pins
 *          are charged to the mm that mapped; the adopted areas stay charged
 *          to the dead instance's mm, which iommufd keeps).  Then a second
 *          SIGKILL, of the instance that adopted: in that gap A[0] and A[6]
 *          land and A[1] stays blocked (what the second instance mapped and
 *          unmapped is kept too), the third instance adopts, the client
 *          resumes the same session with 0 map calls, DMA on A[0], A[2..6]
 *          lands, A[1] blocked, and the third daemon's VmPin is 0.
 * crash-device  as crash, but the daemon runs with --device EDU_CDEV (it
 *          opens and binds the cdev itself) and this process holds no VFIO
 *          file at all: it drives edu through sysfs (resource0 mapped,
 *          config file).  So only the daemon, and the fd store it pushed
 *          to, keep the device's file open: without the keep set the kill
 *          closes it (vfio-pci disables the device: bus master off, DMA
 *          blocked) and the gap checks fail.
 * upgrade  build B is renamed over RESTART_UP_PATH, then the keeper sends
 *          SIGHUP: the same pid re-execs; its /proc/PID/exe is then build B's
 *          inode; DMA lands during the re-exec and after; the client's
 *          connection was closed by the exec, so it reconnects and resumes
 *          (same checks as crash).
 * abandon  the daemon runs with --resume-grace-sec 3; the keeper SIGKILLs
 *          it (restart at once) and the client never reconnects: within
 *          20 s the pins are back to the baseline and a DMA write into A[0]
 *          no longer lands (the device was detached through the kept fd).
 *
 * Prints "restart-test[<mode>]: PASS checks=<n>" and exits 0, or the failed
 * check and exits 1.
 */
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "edu.h"
#include "svc-audit.h"

/*
 * dmasvc_resumed() arrives with issue #14's libdmasvc; weak, so this test
 * also builds (and fails, on what it checks) against the library before it.
 */
bool dmasvc_resumed(const struct dmasvc_client *c);
#pragma weak dmasvc_resumed

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define MEM_SIZE (20 * MiB)
#define NGRAN 8
#define XFER 2048u
#define EDU_REG_FACT 0x08
#define FACT_IN 10u
#define FACT_OUT 3628800u /* 10! */

struct rt {
	const char *mode, *sock, *kdir;
	struct dmasvc_client *c;
	struct edu edu;
	int devfd, memfd, a_id, s_id;
	uint8_t *mem;
	struct dmasvc_region_desc a, s;
	bool pop[NGRAN];
	int64_t pin_base; /* vmstat pins (pages) before anything was populated */
	bool operator_device; /* crash-device: the daemon's --device, no client fd */
	unsigned int checks;
	uint8_t seed;
};

static void __attribute__((format(printf, 2, 3), noreturn)) fail(struct rt *t, const char *fmt, ...)
{
	va_list ap;

	printf("restart-test[%s]: FAIL ", t->mode);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (t->c)
		printf(" (service: %s)", dmasvc_last_error(t->c));
	putchar('\n');
	fflush(stdout);
	_exit(1);
}

static void __attribute__((format(printf, 2, 3))) note(struct rt *t, const char *fmt, ...)
{
	va_list ap;

	printf("restart-test[%s]: ", t->mode);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* FOLL_PIN pages held system-wide now (kernel counters), or -1. */
static int64_t vmstat_pins(void)
{
	return svc_foll_pin_pages();
}

/*
 * The baseline: vmstat pins once they stopped moving (two reads 1 s apart
 * equal; at most 15 s).  The previous test's kept context is released when
 * its keeper exits, and vmstat folds per-cpu deltas only every second.
 */
static int64_t stable_pins(void)
{
	int64_t a = vmstat_pins(), b;

	for (int i = 0; i < 15; i++) {
		sleep(1);
		b = vmstat_pins();
		if (a == b)
			return b;
		a = b;
	}
	return -1;
}

static uint64_t populated_bytes(const struct rt *t)
{
	uint64_t sum = t->s.granule; /* S[0] is always populated */

	for (int g = 0; g < NGRAN; g++)
		sum += t->pop[g] ? t->a.granule : 0;
	return sum;
}

/* System-wide pins - baseline == populated pages (re-read up to 5 s). */
static void check_pins(struct rt *t, const char *step)
{
	int64_t want = (int64_t)(populated_bytes(t) / 4096), got = -1;

	for (uint64_t end = now_ms() + 5000;;) {
		got = vmstat_pins() - t->pin_base;
		if (got == want || now_ms() > end)
			break;
		usleep(100000);
	}
	t->checks++;
	if (got != want)
		fail(t, "%s: the kernel holds %" PRId64 " pinned pages more than at the start, "
		     "populated %" PRId64 " pages", step, got, want);
	note(t, "%s: pins %" PRId64 " pages = populated", step, got);
}

/* The keeper's state file value of @key ("pid", "starts", "ready"), or -1. */
static long keeper_state(struct rt *t, const char *key)
{
	char path[256], k[64], v[256];
	long val = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/state", t->kdir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fscanf(f, "%63s %255s", k, v) == 2)
		if (!strcmp(k, key))
			val = strtol(v, NULL, 10);
	fclose(f);
	return val;
}

static void keeper_cmd(struct rt *t, const char *cmd)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/ctl", t->kdir);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd) || write(fd, "\n", 1) != 1)
		fail(t, "keeper command '%s': %s", cmd, strerror(errno));
	close(fd);
}

/* Wait (30 s) for the keeper's @key to reach at least @min. */
static long wait_state(struct rt *t, const char *key, long min)
{
	long v = -1;

	for (int i = 0; i < 600; i++) {
		v = keeper_state(t, key);
		if (v >= min)
			return v;
		usleep(50000);
	}
	fail(t, "keeper %s stayed %ld (want >= %ld)", key, v, min);
}

static uint64_t a_iova(const struct rt *t, int g)
{
	return t->a.iova + (uint64_t)g * t->a.granule + 4096;
}

static uint8_t *a_mem(const struct rt *t, int g)
{
	return t->mem + t->a.mem_offset + (uint64_t)g * t->a.granule + 4096;
}

static uint8_t *s_mem(const struct rt *t)
{
	return t->mem + t->s.mem_offset;
}

static void pattern(struct rt *t, uint8_t *p)
{
	t->seed++;
	for (unsigned int i = 0; i < XFER; i++)
		p[i] = (uint8_t)((i * 131u) ^ (t->seed * 29u) ^ 0x5au) | 0x20;
}

static void dma(struct rt *t, uint64_t iova, int to_ram)
{
	int rc = edu_dma(&t->edu, iova, XFER, to_ram);

	if (rc)
		fail(t, "edu DMA %s 0x%" PRIx64 ": %s", to_ram ? "to" : "from", iova, strerror(-rc));
}

/*
 * The device reads A[g] (through the scratch granule back to us) and writes
 * a fresh pattern into it.  @mapped: both must land; else neither.
 */
static void check_dma(struct rt *t, int g, bool mapped, const char *step)
{
	uint8_t fill[XFER], pat[XFER], before[XFER];
	uint8_t *m = a_mem(t, g);
	bool same;

	pattern(t, m);
	pattern(t, fill);
	memcpy(s_mem(t), fill, XFER);
	dma(t, t->s.iova, 0);          /* S -> device buffer: fill */
	dma(t, a_iova(t, g), 0);       /* A[g] -> device buffer */
	memset(s_mem(t), 0, XFER);
	dma(t, t->s.iova, 1);          /* device buffer -> S */
	same = !memcmp(s_mem(t), m, XFER);
	t->checks++;
	if (same != mapped)
		fail(t, "%s: device read of %s A[%d] %s the client's bytes", step,
		     mapped ? "populated" : "unpopulated", g, mapped ? "differs from" : "returned");
	memcpy(before, m, XFER);
	pattern(t, pat);
	memcpy(s_mem(t), pat, XFER);
	dma(t, t->s.iova, 0);
	dma(t, a_iova(t, g), 1);
	t->checks++;
	if (memcmp(m, mapped ? pat : before, XFER))
		fail(t, "%s: device write to %s A[%d] %s", step, mapped ? "populated" : "unpopulated",
		     g, mapped ? "did not land" : "changed the client's memory");
}

static void event(struct rt *t, int g, bool populate)
{
	int rc = populate ? dmasvc_populate(t->c, (uint32_t)t->a_id, (uint64_t)g * t->a.granule,
					    t->a.granule)
			  : dmasvc_discard(t->c, (uint32_t)t->a_id, (uint64_t)g * t->a.granule,
					   t->a.granule);
	char step[64];

	snprintf(step, sizeof(step), "%s A[%d]", populate ? "populate" : "discard", g);
	if (rc)
		fail(t, "%s: %s", step, strerror(-rc));
	t->pop[g] = populate;
	check_pins(t, step);
	check_dma(t, g, populate, step);
}

static int rd_bar(struct rt *t, uint32_t reg, uint32_t *v)
{
	if (t->edu.bar) {
		*v = t->edu.bar[reg / 4];
		return 0;
	}
	return pread(t->devfd, v, 4, (off_t)(t->edu.bar0_off + reg)) == 4 ? 0 : -EIO;
}

static int wr_bar(struct rt *t, uint32_t reg, uint32_t v)
{
	if (t->edu.bar) {
		t->edu.bar[reg / 4] = v;
		return 0;
	}
	return pwrite(t->devfd, &v, 4, (off_t)(t->edu.bar0_off + reg)) == 4 ? 0 : -EIO;
}

/* The factorial register still holds 10! and bus mastering is still on. */
static void check_not_reset(struct rt *t, const char *step)
{
	uint32_t fact = 0;
	uint16_t cmd = 0;

	t->checks += 2;
	if (rd_bar(t, EDU_REG_FACT, &fact) || fact != FACT_OUT)
		fail(t, "%s: edu's factorial register reads %u, want %u (device reset or rewritten)",
		     step, fact, FACT_OUT);
	if (pread(t->edu.fd, &cmd, 2, (off_t)(t->edu.cfg_off + 4)) != 2 || !(cmd & 0x4))
		fail(t, "%s: PCI command 0x%x: bus mastering off (the device was closed or reset)",
		     step, cmd);
	note(t, "%s: factorial register %u, PCI command 0x%x (bus master on): not reset", step,
	     fact, cmd);
}

static void own_session(struct rt *t, struct dmasvc_stat_session *ss)
{
	int n = dmasvc_query(t->c, DMASVC_QUERY_SESSIONS, 0, 0, ss, sizeof(*ss), 1);

	if (n != 1)
		fail(t, "QUERY SESSIONS: %s", n < 0 ? strerror(-n) : "no record");
}

static void setup(struct rt *t)
{
	struct dmasvc_connect_opts opts = { .timeout_ms = 30000 };
	const char *cdev = getenv("EDU_CDEV");
	struct dmasvc_device_info info;
	int mem, rc;

	if (!t->operator_device) {
		t->devfd = cdev ? open(cdev, O_RDWR | O_CLOEXEC) : -1;
		if (t->devfd < 0)
			fail(t, "open EDU_CDEV %s: %s", cdev ? cdev : "(unset)", strerror(errno));
	}
	t->memfd = memfd_create("guest-ram", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (t->memfd < 0 || ftruncate(t->memfd, (off_t)MEM_SIZE) < 0 ||
	    fcntl(t->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		fail(t, "sealed memfd: %s", strerror(errno));
	t->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, t->memfd, 0);
	if (t->mem == MAP_FAILED)
		fail(t, "mmap: %s", strerror(errno));
	t->a = (struct dmasvc_region_desc){ .mem_offset = 0, .size = NGRAN * 2 * MiB,
					    .iova = 0x1000000, .granule = 2 * MiB };
	t->s = (struct dmasvc_region_desc){ .mem_offset = 18 * MiB, .size = 4 * KiB,
					    .iova = 0x3000000, .granule = 4 * KiB };
	t->pin_base = stable_pins();
	if (t->pin_base < 0)
		fail(t, "no nr_foll_pin_* in /proc/vmstat, or they did not settle in 15 s");
	rc = dmasvc_connect(t->sock, &opts, &t->c);
	if (rc)
		fail(t, "connect %s: %s", t->sock, strerror(-rc));
	if (!t->operator_device) {
		rc = dmasvc_device_attach_ex(t->c, t->devfd, 60000, &info);
		if (rc < 0)
			fail(t, "DEVICE_ATTACH: %s", strerror(-rc));
	}
	mem = dmasvc_memory_add(t->c, t->memfd, MEM_SIZE, 0);
	if (mem < 0)
		fail(t, "memory_add: %s", strerror(-mem));
	t->a.mem_id = t->s.mem_id = (uint32_t)mem;
	t->a_id = dmasvc_region_add(t->c, &t->a);
	t->s_id = dmasvc_region_add(t->c, &t->s);
	if (t->a_id < 0 || t->s_id < 0)
		fail(t, "region_add: %s", strerror(-(t->a_id < 0 ? t->a_id : t->s_id)));
	rc = dmasvc_populate(t->c, (uint32_t)t->s_id, 0, t->s.granule);
	if (rc)
		fail(t, "populate S: %s", strerror(-rc));
	if (t->operator_device) {
		const char *bdf = getenv("EDU_BDF");

		/* No VFIO fd here: only the daemon (and the fd store) hold the cdev. */
		rc = bdf ? edu_init_sysfs(&t->edu, bdf) : -ENOENT;
		if (rc)
			fail(t, "edu over sysfs (%s): %s", bdf ? bdf : "EDU_BDF unset", strerror(-rc));
	} else {
		rc = edu_init(&t->edu, t->devfd);
		if (rc)
			fail(t, "edu_init: %s", strerror(-rc));
	}
	{
		uint32_t in = FACT_IN, fact = 0;

		if (wr_bar(t, EDU_REG_FACT, in))
			fail(t, "write the factorial register: %s", strerror(errno));
		for (int i = 0; i < 100 && fact != FACT_OUT; i++) {
			usleep(10000);
			if (rd_bar(t, EDU_REG_FACT, &fact))
				fail(t, "read the factorial register");
		}
		if (fact != FACT_OUT)
			fail(t, "edu computed %u for %u!", fact, FACT_IN);
	}
	for (int g = 0; g < 5; g++)
		event(t, g, true);
	check_dma(t, 6, false, "A[6] never populated");
	note(t, "set up: device attached, %" PRIu64 " bytes populated", populated_bytes(t));
}

/* While no daemon runs: DMA both ways, data-checked, and the pins. */
static void check_gap(struct rt *t, const char *what)
{
	check_dma(t, 0, true, what);
	check_dma(t, 3, true, what);
	check_dma(t, 6, false, what);
	check_pins(t, what);
	check_not_reset(t, what);
}

/* Reconnect; must resume the same session, device attached, no map calls. */
static void resume(struct rt *t, uint32_t sid)
{
	struct dmasvc_stat_session ss;
	uint64_t t0 = now_ms();
	int rc = -EAGAIN;

	for (int i = 0; i < 100 && rc; i++) {
		rc = dmasvc_reconnect(t->c);
		if (rc)
			usleep(100000);
	}
	if (rc)
		fail(t, "dmasvc_reconnect: %s", strerror(-rc));
	note(t, "reconnected in %" PRIu64 " ms", now_ms() - t0);
	t->checks++;
	if (!dmasvc_resumed || !dmasvc_resumed(t->c))
		fail(t, "the reconnect did not resume the session (%s)",
		     dmasvc_resumed ? "dmasvc_resumed() false" : "no dmasvc_resumed() in libdmasvc");
	own_session(t, &ss);
	t->checks += 3;
	if (ss.session_id != sid)
		fail(t, "resumed session id %u, was %u", ss.session_id, sid);
	if (ss.devices != 1)
		fail(t, "the resumed session has %u devices, want 1 (still attached)", ss.devices);
	if (ss.map_calls != 0 || ss.unmap_calls != 0)
		fail(t, "the resume made %" PRIu64 " map and %" PRIu64 " unmap calls, want 0 for "
		     "granules mapped already", ss.map_calls, ss.unmap_calls);
	note(t, "resumed session %u: 1 device, 0 map and 0 unmap calls", sid);
}

/* After a resume: old granules work, more populate and discard work. */
static void after_resume(struct rt *t, pid_t daemon)
{
	uint64_t vmpin;

	for (int g = 0; g < 5; g++)
		check_dma(t, g, true, "after the resume");
	check_pins(t, "after the resume");
	event(t, 5, true);
	event(t, 6, true);
	event(t, 1, false);
	check_dma(t, 0, true, "A[0] beside discarded A[1]");
	vmpin = svc_status_bytes(daemon, "VmPin:");
	t->checks++;
	if (vmpin != 2 * t->a.granule)
		fail(t, "the new daemon's VmPin %" PRIu64 ", want %" PRIu64 " (the two granules it "
		     "mapped itself)", vmpin, 2 * t->a.granule);
	note(t, "new daemon VmPin %" PRIu64 " bytes: the granules it mapped", vmpin);
}

/*
 * One SIGKILL through the keeper and the restart after its RestartSec:
 * @gap runs while no daemon runs (checked: before the restart).  Returns
 * the restarted daemon's pid, ready (READY=1 sent) but not yet resumed.
 */
static pid_t kill_and_restart(struct rt *t, void (*gap)(struct rt *t))
{
	long starts = keeper_state(t, "starts"), ready = keeper_state(t, "ready");
	pid_t old = (pid_t)keeper_state(t, "pid"), now;

	/*
	 * 10 s: the exit of a killed daemon drops its pins and its iommufd
	 * context, which under TCG on a loaded host took more than 2 s once.
	 */
	keeper_cmd(t, "kill");
	for (int i = 0; i < 1000 && kill(old, 0) == 0; i++)
		usleep(10000);
	for (int i = 0; i < 1000 && keeper_state(t, "pid") != 0; i++)
		usleep(10000);
	t->checks++;
	if (kill(old, 0) == 0 || keeper_state(t, "pid") != 0)
		fail(t, "the daemon %d still runs after SIGKILL", (int)old);
	note(t, "daemon %d killed; the keeper restarts it after its RestartSec", (int)old);
	gap(t);
	t->checks++;
	if (keeper_state(t, "pid") != 0 || keeper_state(t, "starts") != starts)
		fail(t, "the gap's checks took longer than the restart delay: not measured in a gap");
	note(t, "the gap's checks ran while no daemon ran");
	wait_state(t, "starts", starts + 1);
	wait_state(t, "ready", ready + 1);
	now = (pid_t)keeper_state(t, "pid");
	note(t, "restarted as pid %d", (int)now);
	check_pins(t, "restarted, before the reconnect");
	return now;
}

static void first_gap(struct rt *t)
{
	check_gap(t, "no daemon running");
}

/* The state after_resume() left: A[0], A[2..6] populated, A[1] discarded. */
static void second_gap(struct rt *t)
{
	check_dma(t, 0, true, "second gap");
	check_dma(t, 6, true, "second gap (populated by the adopting instance)");
	check_dma(t, 1, false, "second gap (discarded by the adopting instance)");
	check_pins(t, "second gap");
	check_not_reset(t, "second gap");
}

/*
 * A second crash, of the instance that adopted the session: the fd store
 * must still hold the session (the adopting instance's names), with what
 * it mapped and unmapped itself.  The third instance maps nothing.
 */
static void crash_again(struct rt *t, uint32_t sid)
{
	pid_t now = kill_and_restart(t, second_gap);
	uint64_t vmpin;

	resume(t, sid);
	for (int g = 0; g < 7; g++)
		check_dma(t, g, g != 1, "after the second resume");
	check_pins(t, "after the second resume");
	vmpin = svc_status_bytes(now, "VmPin:");
	t->checks++;
	if (vmpin != 0)
		fail(t, "the third daemon's VmPin %" PRIu64 ", want 0 (it mapped nothing)", vmpin);
	note(t, "second crash: resumed again, 0 map calls, the third daemon pins nothing itself");
}

static void mode_crash(struct rt *t, uint32_t sid)
{
	pid_t now;

	now = kill_and_restart(t, first_gap);
	resume(t, sid);
	check_not_reset(t, "after the resume");
	after_resume(t, now);
	crash_again(t, sid);
}

/* /proc/PID/exe names the inode of @path. */
static bool runs_file(pid_t pid, const char *path)
{
	char exe[64];
	struct stat a, b;

	snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
	return stat(exe, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

static void mode_upgrade(struct rt *t, uint32_t sid)
{
	const char *up = getenv("RESTART_UP_PATH"), *next = getenv("RESTART_UP_NEW");
	long ready = keeper_state(t, "ready"), starts = keeper_state(t, "starts");
	pid_t pid = (pid_t)keeper_state(t, "pid");
	char tmp[256];
	int in, out;
	ssize_t n;
	char buf[65536];

	if (!up || !next)
		fail(t, "RESTART_UP_PATH and RESTART_UP_NEW must be set");
	t->checks++;
	if (!runs_file(pid, up))
		fail(t, "daemon %d does not run %s before the upgrade", (int)pid, up);
	/* Install build B as dpkg does: a new file renamed over the old path. */
	snprintf(tmp, sizeof(tmp), "%s.dpkg-new", up);
	in = open(next, O_RDONLY);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	if (in < 0 || out < 0)
		fail(t, "copy %s: %s", next, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			fail(t, "copy %s: %s", next, strerror(errno));
	close(in);
	if (close(out) || rename(tmp, up))
		fail(t, "install %s at %s: %s", next, up, strerror(errno));
	t->checks++;
	if (runs_file(pid, up))
		fail(t, "the rename did not replace %s", up);
	keeper_cmd(t, "hup");
	note(t, "build B renamed over %s; SIGHUP to %d", up, (int)pid);
	check_dma(t, 0, true, "during the re-exec");
	check_dma(t, 3, true, "during the re-exec");
	check_pins(t, "during the re-exec");
	wait_state(t, "ready", ready + 1);
	t->checks += 3;
	if (keeper_state(t, "pid") != pid || keeper_state(t, "starts") != starts)
		fail(t, "the upgrade was not a re-exec of pid %d (keeper pid %ld, starts %ld)",
		     (int)pid, keeper_state(t, "pid"), keeper_state(t, "starts"));
	for (int i = 0; i < 100 && !runs_file(pid, up); i++)
		usleep(100000);
	if (!runs_file(pid, up))
		fail(t, "pid %d does not run build B (%s) after SIGHUP", (int)pid, up);
	note(t, "pid %d runs build B", (int)pid);
	check_not_reset(t, "after the re-exec");
	resume(t, sid);
	after_resume(t, pid);
}

static void mode_abandon(struct rt *t)
{
	long starts = keeper_state(t, "starts"), ready = keeper_state(t, "ready");
	uint8_t before[XFER];
	int64_t got = -1;
	uint64_t t0;

	keeper_cmd(t, "kill");
	wait_state(t, "starts", starts + 1);
	wait_state(t, "ready", ready + 1);
	t0 = now_ms();
	note(t, "daemon killed and restarted; the client stays away");
	check_pins(t, "adopted, within the grace");
	for (uint64_t end = t0 + 20000; now_ms() < end;) {
		got = vmstat_pins() - t->pin_base;
		if (got == 0)
			break;
		usleep(200000);
	}
	t->checks++;
	if (got != 0)
		fail(t, "20 s after the restart (grace 3 s) the kernel still holds %" PRId64
		     " pages pinned beyond the baseline", got);
	note(t, "pins back to the baseline %" PRIu64 " ms after the restart (grace 3 s)",
	     now_ms() - t0);
	memcpy(before, a_mem(t, 0), XFER);
	pattern(t, s_mem(t));
	dma(t, t->s.iova, 0);
	dma(t, a_iova(t, 0), 1);
	t->checks++;
	if (memcmp(before, a_mem(t, 0), XFER))
		fail(t, "a DMA write to A[0] landed after the abandoned session was torn down");
	note(t, "the device is detached: a DMA write to A[0] does not land");
}

/*
 * bench (bench/restart/run-vm.sh): RESTART_BENCH_MIB (default 4096) of
 * memory in one region at 2 MiB granules at iova 4 GiB, every granule
 * populated with edu attached (so iommufd pins it all); then the keeper
 * SIGKILLs the daemon and restarts it at once (RestartSec 0), and the
 * client reconnects in a loop until it resumed.  Prints one table row
 * between RESTART-BENCH-BEGIN/END: the populated size, the time from the
 * SIGKILL to the new instance's READY=1 (it adopted and audited the
 * session), to the resumed session (dmasvc_reconnect() returned with
 * dmasvc_resumed()), the reconnect call alone, and the map/unmap calls
 * the resumed session made (QUERY SESSIONS), and the pins before and after.
 */
static void mode_bench(struct rt *t)
{
	const char *e = getenv("RESTART_BENCH_MIB");
	uint64_t mib = e ? strtoull(e, NULL, 10) : 4096, size = mib * MiB, t0, t_ready, t_rec, t_done;
	struct dmasvc_region_desc big = { .size = size, .iova = 1ull << 32, .granule = 2 * MiB };
	struct dmasvc_connect_opts opts = { .timeout_ms = 60000 };
	struct dmasvc_stat_session ss;
	struct dmasvc_device_info info;
	long starts, ready;
	int64_t pins_before, pins_after;
	int fd, mem, id, rc = -EAGAIN;
	uint64_t t_pop;

	t->pin_base = stable_pins();
	fd = memfd_create("bench-ram", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	t->devfd = open(getenv("EDU_CDEV") ? getenv("EDU_CDEV") : "/none", O_RDWR | O_CLOEXEC);
	if (fd < 0 || t->devfd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		fail(t, "memfd of %" PRIu64 " MiB / EDU_CDEV: %s", mib, strerror(errno));
	rc = dmasvc_connect(t->sock, &opts, &t->c);
	if (rc)
		fail(t, "connect: %s", strerror(-rc));
	rc = dmasvc_device_attach_ex(t->c, t->devfd, 60000, &info);
	if (rc < 0)
		fail(t, "DEVICE_ATTACH: %s", strerror(-rc));
	mem = dmasvc_memory_add(t->c, fd, size, 0);
	if (mem < 0)
		fail(t, "memory_add: %s", strerror(-mem));
	big.mem_id = (uint32_t)mem;
	id = dmasvc_region_add(t->c, &big);
	if (id < 0)
		fail(t, "region_add %" PRIu64 " MiB: %s", mib, strerror(-id));
	t_pop = now_ms();
	for (uint64_t off = 0; off < size; off += 256 * MiB) {
		uint64_t len = size - off < 256 * MiB ? size - off : 256 * MiB;

		rc = dmasvc_populate(t->c, (uint32_t)id, off, len);
		if (rc)
			fail(t, "populate [%" PRIu64 " MiB, +%" PRIu64 " MiB): %s", off / MiB, len / MiB,
			     strerror(-rc));
	}
	t_pop = now_ms() - t_pop;
	pins_before = stable_pins() - t->pin_base; /* vmstat folds per-cpu deltas each second */
	note(t, "%" PRIu64 " MiB populated at 2 MiB in %" PRIu64 " ms; pins %" PRId64 " pages", mib,
	     t_pop, pins_before);
	starts = keeper_state(t, "starts");
	ready = keeper_state(t, "ready");
	t0 = now_ms();
	keeper_cmd(t, "kill");
	wait_state(t, "starts", starts + 1);
	wait_state(t, "ready", ready + 1);
	t_ready = now_ms();
	rc = -EAGAIN;
	while (rc) {
		rc = dmasvc_reconnect(t->c);
		if (rc && now_ms() - t0 > 120000)
			fail(t, "dmasvc_reconnect: %s", strerror(-rc));
	}
	t_done = now_ms();
	t_rec = t_done - t_ready;
	if (!dmasvc_resumed || !dmasvc_resumed(t->c))
		fail(t, "the reconnect did not resume the session");
	own_session(t, &ss);
	pins_after = stable_pins() - t->pin_base;
	printf("RESTART-BENCH-BEGIN\n");
	printf("%-10s %-8s %14s %16s %14s %10s %12s %12s %12s\n", "populated", "granule",
	       "kill->ready ms", "kill->resumed ms", "reconnect ms", "map calls", "unmap calls",
	       "pins before", "pins after");
	printf("%-10s %-8s %14" PRIu64 " %16" PRIu64 " %14" PRIu64 " %10" PRIu64 " %12" PRIu64
	       " %12" PRId64 " %12" PRId64 "\n", e ? e : "4096", "2M", t_ready - t0, t_done - t0,
	       t_rec, ss.map_calls, ss.unmap_calls, pins_before, pins_after);
	printf("(MiB; pins in 4 KiB pages, /proc/vmstat nr_foll_pin_acquired - released over the "
	       "baseline; populate took %" PRIu64 " ms)\n", t_pop);
	printf("RESTART-BENCH-END\n");
	t->checks += 2;
	if (pins_after != pins_before || pins_before != (int64_t)(size / 4096) || ss.devices != 1)
		fail(t, "after the resume: pins %" PRId64 " pages (before %" PRId64 "), %u devices",
		     pins_after, pins_before, ss.devices);
}

int main(int argc, char **argv)
{
	struct rt t = { .mode = "?", .devfd = -1, .memfd = -1 };
	struct dmasvc_stat_session ss;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc != 4 || (strcmp(argv[1], "crash") && strcmp(argv[1], "upgrade") &&
			  strcmp(argv[1], "abandon") && strcmp(argv[1], "bench") &&
			  strcmp(argv[1], "crash-device"))) {
		fprintf(stderr, "usage: restart-test crash|crash-device|upgrade|abandon|bench SOCKET "
				"KEEPER_DIR\n");
		return 2;
	}
	t.mode = argv[1];
	t.sock = argv[2];
	t.kdir = argv[3];
	t.operator_device = !strcmp(t.mode, "crash-device");
	if (!strcmp(t.mode, "bench")) {
		mode_bench(&t);
		printf("restart-test[bench]: PASS checks=%u\n", t.checks);
		return 0;
	}
	setup(&t);
	own_session(&t, &ss);
	note(&t, "session %u", ss.session_id);
	if (!strcmp(t.mode, "crash") || t.operator_device)
		mode_crash(&t, ss.session_id);
	else if (!strcmp(t.mode, "upgrade"))
		mode_upgrade(&t, ss.session_id);
	else
		mode_abandon(&t);
	printf("restart-test[%s]: PASS checks=%u\n", t.mode, t.checks);
	return 0;
}
