/* SPDX-License-Identifier: MIT */
/*
 * test_attach_it.c - DEVICE_ATTACH re-validates the session's regions
 * against the IOVA ranges that hold once the device is attached (issue 13,
 * "Validation that matches the kernel"), on the software model.
 *
 * The model's test device (DMASVC_TEST_SOFT_DEVICES=0,resv=...) reserves
 * the VT-d MSI window 0xfee00000-0xfeefffff while attached, the way a real
 * device's domain does in iommufd (iopt_table_enforce_dev_resv_regions):
 * the IOAS reports the full range until then.  Checked through libdmasvc
 * and the daemon:
 *   - a registered, unpopulated region over the window: the attach is
 *     refused (EADDRINUSE) naming the region and the allowed ranges, and
 *     the device is detached again (the window is free afterwards);
 *   - a populated one: the attach is refused as iommufd refuses it
 *     (EADDRINUSE, an area inside a reserved range), naming the region and
 *     the device's reserved range;
 *   - with the device attached, a REGION_ADD over the window is refused
 *     (ERANGE) naming the ranges, one elsewhere works and populates.
 * Before the change every attach here was accepted.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)
#define MSI_START 0xfee00000ull
#define MSI_LAST 0xfeefffffull

static struct it_svc svc;

static void up(void)
{
	setenv("DMASVC_TEST_SOFT_DEVICES", "0,resv=0xfee00000-0xfeefffff", 1);
	cr_assert_eq(it_svc_start(&svc, NULL), 0, "dmasvc starts");
	unsetenv("DMASVC_TEST_SOFT_DEVICES");
}

static void down(void)
{
	it_suite_stop(&svc);
}

TestSuite(attach, .init = up, .fini = down, .timeout = 60);

/* A client with one 16 MiB memfd; returns the memory id. */
static int client(struct dmasvc_client **c, int *fd)
{
	int mem;

	cr_assert_eq(dmasvc_connect(svc.sock, NULL, c), 0);
	*fd = it_memfd(16 * MiB, true);
	mem = dmasvc_memory_add(*c, *fd, 16 * MiB, 0);
	cr_assert_geq(mem, 0, "memory_add: %s", dmasvc_last_error(*c));
	return mem;
}

static int region(struct dmasvc_client *c, int mem, uint64_t iova, uint64_t size)
{
	struct dmasvc_region_desc d = {
		.mem_id = (uint32_t)mem, .size = size, .iova = iova, .granule = 2 * MiB,
	};

	return dmasvc_region_add(c, &d);
}

/* The model device's fd: any open fd will do (it keeps nothing). */
static int attach(struct dmasvc_client *c)
{
	int fd = dup(STDERR_FILENO), ret;

	cr_assert_geq(fd, 0);
	ret = dmasvc_device_attach(c, fd);
	close(fd);
	return ret;
}

static void expect_text(struct dmasvc_client *c, const char *want)
{
	cr_expect(strstr(dmasvc_last_error(c), want), "error text '%s' lacks '%s'",
		  dmasvc_last_error(c), want);
}

Test(attach, unpopulated_region_in_msi_window_refused)
{
	struct dmasvc_client *c;
	int fd, mem = client(&c, &fd);
	int r = region(c, mem, MSI_START, 2 * MiB), r2;

	cr_assert_geq(r, 0, "before any device the full range is allowed: %s", dmasvc_last_error(c));
	cr_expect_eq(attach(c), -EADDRINUSE);
	expect_text(c, "region");
	expect_text(c, "iova 0xfee00000-0xfeffffff is outside the IOVA ranges allowed");
	expect_text(c, "0x0-0xfedfffff 0xfef00000-0x");
	/* The device went away again: nothing reserves the window now. */
	cr_assert_eq(dmasvc_region_remove(c, (uint32_t)r), 0);
	r2 = region(c, mem, MSI_START - 2 * MiB, 8 * MiB);
	cr_expect_geq(r2, 0, "window free after the refused attach: %s", dmasvc_last_error(c));
	cr_expect_eq(dmasvc_populate(c, (uint32_t)r2, 2 * MiB, 2 * MiB), 0, "%s",
		     dmasvc_last_error(c));
	dmasvc_disconnect(c);
	close(fd);
}

Test(attach, populated_region_in_msi_window_refused)
{
	struct dmasvc_client *c;
	int fd, mem = client(&c, &fd);
	int r = region(c, mem, MSI_START, 2 * MiB);

	cr_assert_geq(r, 0, "%s", dmasvc_last_error(c));
	cr_assert_eq(dmasvc_populate(c, (uint32_t)r, 0, 2 * MiB), 0, "%s", dmasvc_last_error(c));
	cr_expect_eq(attach(c), -EADDRINUSE);
	expect_text(c, "region");
	expect_text(c, "iova 0xfee00000-0xfeffffff has mappings in the device's reserved IOVA"
		       " 0xfee00000-0xfeefffff");
	/* Still mapped, still populated: the refusal changed nothing. */
	cr_expect_eq(dmasvc_discard(c, (uint32_t)r, 0, 2 * MiB), 0, "%s", dmasvc_last_error(c));
	dmasvc_disconnect(c);
	close(fd);
}

Test(attach, region_add_after_attach_checks_narrowed_ranges)
{
	struct dmasvc_client *c;
	int fd, mem = client(&c, &fd);
	int r;

	r = attach(c);
	cr_assert_gt(r, 0, "attach: %d %s", r, dmasvc_last_error(c));
	r = region(c, mem, MSI_START, 2 * MiB);
	cr_expect_eq(r, -ERANGE, "a region over the MSI window after the attach: %d", r);
	expect_text(c, "iova 0xfee00000..0xfeffffff is outside the space's IOVA ranges (0x0-0xfedfffff");
	r = region(c, mem, MSI_START - 4 * MiB, 4 * MiB);
	cr_expect_geq(r, 0, "right below the window: %s", dmasvc_last_error(c));
	cr_expect_eq(dmasvc_populate(c, (uint32_t)r, 0, 4 * MiB), 0, "%s", dmasvc_last_error(c));
	dmasvc_disconnect(c);
	close(fd);
}
