/* SPDX-License-Identifier: MIT */
/*
 * test_devices.c - a session's space and devices (session_device.c) on a
 * stand-in backend: the software model wrapped so that it has one space at
 * a time (like type1's one container; space_create -EBUSY otherwise) and
 * devices that are only counted.  Checks: with lazy_space a session gets
 * its space at its first REGION_ADD or DEVICE_ATTACH and a query-only
 * session never takes it; a second session's REGION_ADD is refused with
 * -EBUSY naming the holder until the holder ends; the operator's --device
 * devices go to the first session that registers a region, cannot be
 * detached by the client, are detached before the space is destroyed and
 * move to the next session that registers; client devices attach, detach
 * and are released at teardown.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dmasvc/soft_iommu.h"
#include "session_priv.h"
#include "unit_util.h"

#define MB (1ull << 20)
#define IOVA0 (1ull << 30)

/* The stand-in backend's state (one per test process; tests are forked). */
static struct {
	unsigned int spaces;        /* live spaces */
	unsigned int attached;      /* live devices */
	unsigned int attach_calls;
	bool detach_after_destroy;  /* a device outlived its space: a bug */
	uint32_t next_dev;
} fake;

static int one_space_create(struct be_ctx *ctx, struct be_space **out)
{
	int ret;

	if (fake.spaces)
		return -EBUSY;
	ret = be_soft_ops.space_create(ctx, out);
	if (!ret)
		fake.spaces++;
	return ret;
}

static void one_space_destroy(struct be_space *space)
{
	if (fake.attached)
		fake.detach_after_destroy = true;
	be_soft_ops.space_destroy(space);
	fake.spaces--;
}

static int counting_attach(struct be_space *space, int fd, uint32_t *dev_id)
{
	(void)space;
	fake.attach_calls++;
	if (fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	fake.attached++;
	*dev_id = ++fake.next_dev;
	return 0;
}

static void counting_detach(struct be_space *space, uint32_t dev_id)
{
	(void)space;
	(void)dev_id;
	fake.attached--;
}

static struct be_ops one_space_ops;
static struct dsvc_options opt;
static struct dlog lg;
static struct dsvc d;
static char *logtext;
static size_t loglen;
static int fd_baseline;

static void setup(void)
{
	struct be_config cfg = { .max_areas = 0 };
	/* /dev/null stands for a cdev: the stand-in attach only checks the fd. */
	char *argv[] = { "dmasvc", "--iommufd", "/dev/iommu", "--device", "/dev/null",
			 "--device", "/dev/null", NULL };
	char err[256];

	fd_baseline = count_open_fds();
	cr_assert_eq(opt_parse(7, argv, &opt, stdout, err, sizeof(err)), OPT_RUN, "%s", err);
	cr_assert_eq(opt.nr_devices, 2);
	one_space_ops = be_soft_ops;
	one_space_ops.name = "one-space";
	one_space_ops.space_create = one_space_create;
	one_space_ops.space_destroy = one_space_destroy;
	one_space_ops.device_attach = counting_attach;
	one_space_ops.device_detach = counting_detach;
	lg.level = DLOG_DEBUG;
	lg.out = open_memstream(&logtext, &loglen);
	memset(&d, 0, sizeof(d));
	d.opt = &opt;
	d.log = &lg;
	d.ops = &one_space_ops;
	d.lazy_space = true;
	d.lazy_max_areas = 1000;
	cr_assert_eq(d.ops->open(&cfg, &d.be), 0);
}

static void teardown(void)
{
	for (unsigned int i = 0; i < DSVC_MAX_SESSIONS; i++)
		if (d.sessions[i])
			session_destroy(&d, d.sessions[i]);
	cr_expect_eq(fake.spaces, 0, "a space outlived its session");
	cr_expect_eq(fake.attached, 0, "a device outlived its session");
	cr_expect(!fake.detach_after_destroy, "a space was destroyed with a device attached");
	d.ops->close(d.be);
	fclose(lg.out);
	free(logtext);
	cr_expect_eq(count_open_fds(), fd_baseline, "fd leak");
}

TestSuite(devices, .init = setup, .fini = teardown, .timeout = 60);

static struct dsvc_session *new_session(void)
{
	struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	struct dsvc_session *s;
	int sp[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	close(sp[1]); /* the session never talks in these tests */
	cr_assert_eq(session_create(&d, sp[0], &cred, true, &s), 0);
	return s;
}

/* Register 4 MiB of a fresh memfd at @iova in 2 MiB granules. */
static int add_region(struct dsvc_session *s, uint64_t iova, char *err)
{
	struct dmasvc_memory_add mreq = { .size = 4 * MB };
	struct dmasvc_region_add req = { .size = 4 * MB, .iova = iova, .granule = 2 * MB };
	int fd = make_memfd(4 * MB, F_SEAL_SHRINK);
	uint32_t id;

	cr_assert_geq(fd, 0);
	cr_assert_eq(session_memory_add(&d, s, fd, &mreq, &req.mem_id, err, 256), 0, "%s", err);
	return session_region_add(&d, s, &req, &id, err, 256);
}

Test(devices, space_comes_with_the_first_region_and_is_exclusive)
{
	struct dsvc_session *query_only = new_session(), *a = new_session(), *b = new_session();
	char err[256] = "";

	cr_expect_null(query_only->space, "connecting takes no space");
	cr_expect_null(a->space);
	cr_expect_eq(a->max_areas, 1000, "HELLO announces the budget before the space exists");
	cr_assert_eq(add_region(a, IOVA0, err), 0, "%s", err);
	cr_expect_not_null(a->space);
	cr_expect_eq(fake.spaces, 1);

	cr_expect_eq(add_region(b, IOVA0, err), -EBUSY);
	cr_expect(strstr(err, "one IOMMU space") && strstr(err, "session 2"), "%s", err);
	cr_expect_null(b->space);

	session_destroy(&d, a);
	cr_expect_eq(fake.spaces, 0);
	cr_assert_eq(add_region(b, IOVA0, err), 0, "after the holder ended: %s", err);
	cr_expect_not_null(b->space);
	cr_expect_null(query_only->space);
}

Test(devices, configured_devices_follow_the_registering_session)
{
	struct dsvc_session *a = new_session(), *b = new_session();
	char err[256] = "";

	cr_expect_eq(fake.attach_calls, 0, "nothing attached at connect");
	cr_assert_eq(add_region(a, IOVA0, err), 0, "%s", err);
	cr_expect_eq(fake.attached, 2, "both --device attached to the first registering session");
	cr_expect_eq(a->nr_devices, 2);
	cr_expect_eq(d.cfg_dev_owner, a->id);
	cr_expect_eq(session_device_detach(&d, a, 1, err, sizeof(err)), -EPERM);
	cr_expect(strstr(err, "--device"), "%s", err);
	cr_expect_eq(fake.attached, 2);

	session_destroy(&d, a);
	cr_expect_eq(fake.attached, 0, "released with their session, before its space");
	cr_expect_eq(d.cfg_dev_owner, 0);
	cr_assert_eq(add_region(b, IOVA0, err), 0, "%s", err);
	cr_expect_eq(fake.attached, 2, "the next registering session takes them");
	cr_expect_eq(d.cfg_dev_owner, b->id);
	cr_expect_eq(fake.attach_calls, 4, "opened afresh for each hand-over");
}

Test(devices, client_devices_attach_detach_and_go_with_the_session)
{
	struct dsvc_session *a = new_session();
	char err[256] = "";
	uint32_t id1, id2;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	opt.nr_devices = 0; /* no operator devices in this test */
	cr_assert_geq(fd, 0);
	cr_assert_eq(session_device_attach(&d, a, fd, &id1, err, sizeof(err)), 0, "%s", err);
	cr_expect_not_null(a->space, "DEVICE_ATTACH creates the space too");
	cr_assert_eq(session_device_attach(&d, a, fd, &id2, err, sizeof(err)), 0, "%s", err);
	cr_expect_neq(id1, id2);
	cr_expect_eq(fake.attached, 2);
	cr_expect_eq(session_device_detach(&d, a, id1, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(session_device_detach(&d, a, id1, err, sizeof(err)), -ENOENT);
	cr_expect_eq(session_device_detach(&d, a, 0, err, sizeof(err)), -ENOENT);
	cr_expect_eq(session_device_detach(&d, a, SESSION_MAX_DEVICES + 1, err, sizeof(err)), -ENOENT);
	cr_expect_eq(fake.attached, 1);
	cr_expect_eq(session_device_attach(&d, a, -1, &id1, err, sizeof(err)), -EBADF,
		     "the backend's error comes back");
	close(fd);
	/* teardown destroys the session: the remaining device must go first */
}

Test(devices, iommufd_devid_is_the_backend_handle_only_where_it_is_the_kernels)
{
	struct dsvc_session *a = new_session();
	char err[256] = "";
	uint32_t id;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	opt.nr_devices = 0;
	cr_assert_geq(fd, 0);
	cr_assert_eq(session_device_attach(&d, a, fd, &id, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(session_device_iommufd_devid(&d, a, id), 0, "a type1-like handle is no devid");
	one_space_ops.device_handle_is_devid = true;
	cr_expect_eq(session_device_iommufd_devid(&d, a, id), fake.next_dev,
		     "iommufd: the backend's handle is the kernel's devid");
	cr_expect_eq(session_device_iommufd_devid(&d, a, id + 1), 0, "not attached");
	cr_expect_eq(session_device_iommufd_devid(&d, a, 0), 0);
	cr_expect_eq(session_device_detach(&d, a, id, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(session_device_iommufd_devid(&d, a, id), 0, "detached");
	close(fd);
}

Test(devices, device_cap)
{
	struct dsvc_session *a = new_session();
	char err[256] = "";
	uint32_t id;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	opt.nr_devices = 0;
	for (unsigned int i = 0; i < SESSION_MAX_DEVICES; i++)
		cr_assert_eq(session_device_attach(&d, a, fd, &id, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(session_device_attach(&d, a, fd, &id, err, sizeof(err)), -EMFILE);
	cr_expect(strstr(err, "cap"), "%s", err);
	close(fd);
}

/* An IOMMU whose smallest page is 64 KiB (iommufd's out_iova_alignment). */
static int limits_64k(struct be_space *space, struct be_limits *out)
{
	int ret = be_soft_ops.limits(space, out);

	out->pgsize_bitmap = ~(64 * 1024ull - 1);
	return ret;
}

Test(devices, region_granule_must_be_a_multiple_of_the_iommu_page)
{
	struct dsvc_session *a = new_session();
	struct dmasvc_memory_add mreq = { .size = 4 * MB };
	struct dmasvc_region_add req = { .size = 1 * MB, .iova = 1ull << 32, .granule = 4096 };
	int fd = make_memfd(4 * MB, F_SEAL_SHRINK);
	char err[256] = "";
	uint32_t id;

	opt.nr_devices = 0;
	one_space_ops.limits = limits_64k;
	cr_assert_geq(fd, 0);
	cr_assert_eq(session_memory_add(&d, a, fd, &mreq, &req.mem_id, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(session_region_add(&d, a, &req, &id, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "smallest page size 0x10000"), "%s", err);
	req.granule = 64 * 1024;
	cr_expect_eq(session_region_add(&d, a, &req, &id, err, sizeof(err)), 0, "%s", err);
}

/*
 * The operator's devices take the same re-validation as DEVICE_ATTACH: on
 * a backend with a space per session whose devices reserve the MSI window
 * (the model's test devices), session B registers a region there while A
 * holds the --device devices; when A ends and B registers again, the
 * hand-over would strand B's region, so each device is detached again and
 * the refusal is logged naming the region and the ranges.
 */
Test(devices, operator_devices_do_not_strand_a_region)
{
	struct soft_iommu_config sc = {
		.nr_dev_resv = 1, .dev_resv = { { 0xfee00000, 0xfeefffff } },
	};
	struct be_config cfg = { .backend_private = &sc };
	struct dsvc_session *a, *b;
	struct be_limits lim;
	char err[256] = "";

	d.ops->close(d.be);
	one_space_ops = be_soft_ops;
	one_space_ops.device_attach = soft_iommu_test_device_attach;
	one_space_ops.device_detach = soft_iommu_test_device_detach;
	one_space_ops.device_reserved = soft_iommu_test_device_reserved;
	d.lazy_space = false;
	cr_assert_eq(d.ops->open(&cfg, &d.be), 0);
	a = new_session();
	b = new_session();
	cr_assert_eq(add_region(a, IOVA0, err), 0, "%s", err);
	cr_expect_eq(a->nr_devices, 2);
	cr_assert_eq(add_region(b, 0xfee00000, err), 0, "B has no device: %s", err);
	session_destroy(&d, a);
	cr_expect_eq(d.cfg_dev_owner, 0);
	cr_assert_eq(add_region(b, IOVA0, err), 0, "%s", err);
	cr_expect_eq(b->nr_devices, 0, "neither device stayed attached to B");
	cr_assert_eq(d.ops->limits(b->space, &lim), 0);
	cr_expect_eq(lim.nr_ranges, 1, "the refused devices reserve nothing in B's space");
	fflush(lg.out);
	cr_expect(strstr(logtext, "--device /dev/null: device attach refused: region") &&
		  strstr(logtext, "iova 0xfee00000-0xff1fffff is outside the IOVA ranges allowed"),
		  "%s", logtext);
}
