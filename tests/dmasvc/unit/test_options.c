/* SPDX-License-Identifier: MIT */
/*
 * test_options.c - command line parsing, backend choice, --help honesty,
 * and the test-only fault-injection environment format.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dmasvc/backend.h"
#include "dmasvc/proto.h"
#include "options_priv.h"
#include "server_priv.h"
#include "testhooks_priv.h"

#define ARGV(...) ((char *[]){ "dmasvc", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "dmasvc", __VA_ARGS__ }) / sizeof(char *)))
#define MiB_ (1ull << 20)
#define PARSE(o, err, ...) opt_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o), stdout, (err), sizeof(err))

Test(options, defaults)
{
	struct dsvc_options o;
	char err[256];
	char *argv[] = { "dmasvc", NULL };

	cr_assert_eq(opt_parse(1, argv, &o, stdout, err, sizeof(err)), OPT_RUN);
	cr_expect_eq(o.backend, OPT_BACKEND_AUTO);
	cr_expect_str_eq(o.socket_path, DMASVC_DEFAULT_SOCKET);
	cr_expect_eq(o.socket_mode, 0600);
	cr_expect_eq(o.workers, 2);
	cr_expect_eq(o.max_mappings, 0);
	cr_expect_eq(o.log_level, DLOG_INFO);
	cr_expect_eq(o.nr_allow_uids, 0);
}

Test(options, all_flags)
{
	struct dsvc_options o;
	char err[256];

	cr_assert_eq(PARSE(&o, err, "--soft-iommu", "--socket", "/tmp/x.sock", "--socket-mode", "0660",
			   "--workers", "4", "--max-mappings", "1000", "--allow-uid", "1000",
			   "--allow-uid", "0", "--log-level", "debug", "--stats-interval", "5",
			   "--poll-us", "200"),
		     OPT_RUN, "%s", err);
	cr_expect_eq(o.backend, OPT_BACKEND_SOFT);
	cr_expect_str_eq(o.socket_path, "/tmp/x.sock");
	cr_expect_eq(o.socket_mode, 0660);
	cr_expect_eq(o.workers, 4);
	cr_expect_eq(o.max_mappings, 1000);
	cr_expect_eq(o.nr_allow_uids, 2);
	cr_expect_eq(o.allow_uids[0], 1000);
	cr_expect_eq(o.allow_uids[1], 0);
	cr_expect_eq(o.log_level, DLOG_DEBUG);
	cr_expect_eq(o.stats_interval, 5);
	cr_expect_eq(o.poll_us, 200);

	cr_assert_eq(PARSE(&o, err, "--iommufd", "/dev/iommu"), OPT_RUN);
	cr_expect_eq(o.backend, OPT_BACKEND_IOMMUFD);
	cr_expect_str_eq(o.iommufd_path, "/dev/iommu");
}

Test(options, bad_flags_name_the_flag)
{
	struct dsvc_options o;
	char err[256];

	cr_expect_eq(PARSE(&o, err, "--workers", "0"), -EINVAL);
	cr_expect(strstr(err, "--workers"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--workers", "65"), -EINVAL);
	cr_expect_eq(PARSE(&o, err, "--workers", "2x"), -EINVAL);
	cr_expect_eq(PARSE(&o, err, "--workers", "-1"), -EINVAL);
	cr_expect_eq(PARSE(&o, err, "--max-mappings", "0"), -EINVAL);
	cr_expect(strstr(err, "--max-mappings"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--socket-mode", "0999"), -EINVAL);
	cr_expect_eq(PARSE(&o, err, "--allow-uid", "bob"), -EINVAL);
	cr_expect(strstr(err, "--allow-uid"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--log-level", "loud"), -EINVAL);
	cr_expect(strstr(err, "--log-level"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--frobnicate"), -EINVAL);
	cr_expect(strstr(err, "--frobnicate"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--workers"), -EINVAL, "missing argument");
	cr_expect(strstr(err, "--workers"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "stray"), -EINVAL);
	cr_expect_eq(PARSE(&o, err, "--soft-iommu", "--iommufd", "/dev/iommu"), -EINVAL);
	cr_expect(strstr(err, "mutually exclusive"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--soft-fail-map", "3"), -EINVAL, "no fault flags in production");
	cr_expect_eq(PARSE(&o, err, "--poll-us", "1000001"), -EINVAL);
	cr_expect(strstr(err, "--poll-us") && strstr(err, "0..1000000"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--poll-us", "-5"), -EINVAL);
}

Test(options, help_and_version)
{
	struct dsvc_options o;
	char err[256], *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	char *argv[] = { "dmasvc", "--help", NULL };
	char *argv2[] = { "dmasvc", "--version", NULL };
	const char *flags[] = { "--iommufd", "--vfio-group", "--device", "--soft-iommu", "--socket", "--socket-mode", "--workers",
				"--max-mappings", "--allow-uid", "--log-level", "--stats-interval", "--poll-us",
				"--help", "--version", "--max-registered-gib", "--max-populated-mib",
				"--max-regions", "--max-inflight", "--max-sessions", "--uid-caps",
				"--config", "--user", "--socket-group", "--allow-gid" };

	cr_assert_eq(opt_parse(2, argv, &o, f, err, sizeof(err)), OPT_EXIT);
	cr_assert_eq(opt_parse(2, argv2, &o, f, err, sizeof(err)), OPT_EXIT);
	fclose(f);
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		cr_expect(strstr(text, flags[i]), "--help documents %s", flags[i]);
	for (const struct option *op = opt_long_options(); op->name; op++) {
		char flag[64];

		snprintf(flag, sizeof(flag), "--%s ", op->name);
		cr_expect(strstr(text, flag), "--help documents every option of the table: %s", flag);
	}
	cr_expect(strstr(text, OPT_DEFAULT_CONFIG), "--help names the default configuration file");
	cr_expect(!strstr(text, "fail"), "no fault-injection knob in --help");
	snprintf(err, sizeof(err), "protocol %d.%d", DMASVC_PROTO_MAJOR, DMASVC_PROTO_MINOR);
	cr_expect(strstr(text, err), "version names the protocol (%s)", err);
	free(text);
}

Test(options, backend_choice)
{
	struct dsvc_options o;
	char err[256];

	cr_assert_eq(PARSE(&o, err, "--socket", "/tmp/a"), OPT_RUN);
	cr_expect_eq(opt_resolve_backend(&o, false, err, sizeof(err)), -ENODEV);
	cr_expect(strstr(err, "--soft-iommu"), "the message names --soft-iommu: %s", err);
	cr_expect_eq(opt_resolve_backend(&o, true, err, sizeof(err)), 0);
	cr_expect_eq(o.backend, OPT_BACKEND_IOMMUFD);
	cr_expect_str_eq(o.iommufd_path, "/dev/iommu");

	cr_assert_eq(PARSE(&o, err, "--soft-iommu"), OPT_RUN);
	cr_expect_eq(opt_resolve_backend(&o, true, err, sizeof(err)), 0);
	cr_expect_eq(o.backend, OPT_BACKEND_SOFT, "an explicit flag wins over /dev/iommu");
}

/* iommufd gets a finite area budget by default (each area is kernel memory); --max-mappings wins. */
Test(options, iommufd_default_area_budget)
{
	struct dsvc_options o;
	char err[256];

	cr_assert_eq(PARSE(&o, err, "--iommufd", "/dev/iommu"), OPT_RUN);
	cr_expect_eq(opt_backend_max_areas(&o), OPT_IOMMUFD_DEFAULT_AREAS);
	cr_expect_neq(opt_backend_max_areas(&o), 0, "finite");
	cr_assert_eq(PARSE(&o, err, "--iommufd", "/dev/iommu", "--max-mappings", "1000"), OPT_RUN);
	cr_expect_eq(opt_backend_max_areas(&o), 1000);
	cr_assert_eq(PARSE(&o, err, "--soft-iommu"), OPT_RUN);
	cr_expect_eq(opt_backend_max_areas(&o), 0, "the model keeps its own default");
	cr_assert_eq(PARSE(&o, err, "--socket", "/tmp/a"), OPT_RUN);
	cr_assert_eq(opt_resolve_backend(&o, true, err, sizeof(err)), 0);
	cr_expect_eq(opt_backend_max_areas(&o), OPT_IOMMUFD_DEFAULT_AREAS, "auto-chosen iommufd too");
}

Test(options, type1_and_devices)
{
	struct dsvc_options o;
	char err[256];

	cr_assert_eq(PARSE(&o, err, "--vfio-group", "/dev/vfio/3", "--device", "0000:00:03.0"), OPT_RUN,
		     "%s", err);
	cr_expect_eq(o.backend, OPT_BACKEND_TYPE1);
	cr_expect_str_eq(o.group_path, "/dev/vfio/3");
	cr_expect_eq(o.nr_devices, 1);
	cr_expect_str_eq(o.devices[0], "0000:00:03.0");
	cr_expect_eq(opt_resolve_backend(&o, true, err, sizeof(err)), 0);
	cr_expect_eq(o.backend, OPT_BACKEND_TYPE1, "an explicit flag wins over /dev/iommu");

	cr_assert_eq(PARSE(&o, err, "--device", "/dev/vfio/devices/vfio0", "--device",
			   "/dev/vfio/devices/vfio1"), OPT_RUN, "%s", err);
	cr_expect_eq(o.nr_devices, 2);
	cr_expect_eq(o.backend, OPT_BACKEND_AUTO, "--device alone picks no backend");

	cr_expect_eq(PARSE(&o, err, "--iommufd", "/dev/iommu", "--vfio-group", "/dev/vfio/3"), -EINVAL);
	cr_expect(strstr(err, "mutually exclusive"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--vfio-group", "/dev/vfio/3", "--soft-iommu"), -EINVAL);
	cr_expect_eq(PARSE(&o, err, "--vfio-group", ""), -EINVAL);
	cr_expect(strstr(err, "--vfio-group"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--soft-iommu", "--device", "/dev/vfio/devices/vfio0"), -EINVAL);
	cr_expect(strstr(err, "--device") && strstr(err, "kernel backend"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--device", ""), -EINVAL);
	cr_expect_eq(PARSE(&o, err, "--device", "a", "--device", "b", "--device", "c", "--device", "d",
			   "--device", "e", "--device", "f", "--device", "g", "--device", "h",
			   "--device", "i"), -EINVAL, "more than OPT_MAX_DEVICES");
	cr_expect(strstr(err, "at most 8"), "%s", err);
}

Test(options, allow_list)
{
	struct dsvc_options o;
	char err[256];

	cr_assert_eq(PARSE(&o, err, "--soft-iommu"), OPT_RUN);
	cr_expect(server_peer_allowed(&o, 1000, 1000, 1000), "own uid by default");
	cr_expect(server_peer_allowed(&o, 1000, 0, 0), "root by default");
	cr_expect(!server_peer_allowed(&o, 1000, 1001, 1001));
	cr_assert_eq(PARSE(&o, err, "--allow-uid", "1001"), OPT_RUN);
	cr_expect(server_peer_allowed(&o, 1000, 1001, 5));
	cr_expect(!server_peer_allowed(&o, 1000, 1000, 1000), "an explicit list replaces the default");
	cr_expect(server_peer_admin(1000, 0));
	cr_expect(server_peer_admin(1000, 1000));
	cr_expect(!server_peer_admin(1000, 1001));
}

Test(options, allow_gid_and_socket_group)
{
	struct dsvc_options o;
	char err[256];

	cr_assert_eq(PARSE(&o, err, "--allow-gid", "107"), OPT_RUN, "%s", err);
	cr_expect(server_peer_allowed(&o, 1000, 1002, 107), "gid on the list");
	cr_expect(!server_peer_allowed(&o, 1000, 1002, 108));
	cr_expect(!server_peer_allowed(&o, 1000, 0, 0), "an explicit list replaces the default (root too)");
	cr_expect_eq(PARSE(&o, err, "--allow-gid", "kvm"), -EINVAL);
	cr_expect(strstr(err, "--allow-gid"), "%s", err);

	cr_assert_eq(PARSE(&o, err, "--socket-group", "0"), OPT_RUN, "%s", err);
	cr_expect_eq(o.socket_mode, 0660, "--socket-group makes the default mode 0660");
	cr_assert_eq(opt_resolve_accounts(&o, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(o.socket_gid, 0);
	cr_expect(server_peer_allowed(&o, 1000, 1003, 0), "the socket group is admitted by default");
	cr_expect(!server_peer_allowed(&o, 1000, 1003, 5));
	cr_assert_eq(PARSE(&o, err, "--socket-group", "root", "--socket-mode", "0640"), OPT_RUN);
	cr_expect_eq(o.socket_mode, 0640, "an explicit mode wins");
	cr_assert_eq(opt_resolve_accounts(&o, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(o.socket_gid, 0, "group names resolve");
	cr_assert_eq(PARSE(&o, err, "--socket-group", "no-such-group-dmasvc"), OPT_RUN);
	cr_expect_eq(opt_resolve_accounts(&o, err, sizeof(err)), -ENOENT);
	cr_expect(strstr(err, "no-such-group-dmasvc"), "%s", err);
	cr_assert_eq(PARSE(&o, err, "--user", "root"), OPT_RUN);
	cr_assert_eq(opt_resolve_accounts(&o, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(o.run_uid, 0);
	cr_expect_eq(o.run_gid, 0);
	cr_assert_eq(PARSE(&o, err, "--user", "no-such-user-dmasvc"), OPT_RUN);
	cr_expect_eq(opt_resolve_accounts(&o, err, sizeof(err)), -ENOENT);
	cr_expect(strstr(err, "no-such-user-dmasvc"), "%s", err);
}

Test(options, soft_faults_env)
{
	struct soft_iommu_faults f;
	char err[256];

	cr_assert_eq(testhook_parse_soft_faults("map_fail_nth=3,map_errno=12,unmap_fail_nth=2,unmap_errno=5,"
					  "map_range=0x200000-0x3fffff,map_range_errno=14",
					  &f, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(f.map_fail_nth, 3);
	cr_expect_eq(f.map_fail_errno, 12);
	cr_expect_eq(f.unmap_fail_nth, 2);
	cr_expect_eq(f.unmap_fail_errno, 5);
	cr_expect_eq(f.map_fail_start, 0x200000);
	cr_expect_eq(f.map_fail_last, 0x3fffff);
	cr_expect_eq(f.map_range_errno, 14);
	cr_assert_eq(testhook_parse_soft_faults("map_delay_us=250,unmap_us_per_mib=8000", &f, err,
					  sizeof(err)), 0, "%s", err);
	cr_expect_eq(f.map_delay_us, 250);
	cr_expect_eq(f.unmap_us_per_mib, 8000);
	cr_expect_eq(testhook_parse_soft_faults("", &f, err, sizeof(err)), 0);
	cr_expect_eq(testhook_parse_soft_faults("bogus=1", &f, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "bogus"), "%s", err);
	cr_expect_eq(testhook_parse_soft_faults("map_errno=0", &f, err, sizeof(err)), -EINVAL);
	cr_expect_eq(testhook_parse_soft_faults("map_fail_nth", &f, err, sizeof(err)), -EINVAL);
	cr_expect_eq(testhook_parse_soft_faults("map_range=5", &f, err, sizeof(err)), -EINVAL);
}

Test(options, soft_devices_env)
{
	struct soft_iommu_config c = { .nr_ranges = 0 };
	char err[256];

	cr_assert_eq(testhook_parse_soft_devices("250", &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(c.attach_us, 250);
	cr_expect_eq(c.nr_dev_resv, 0);
	cr_assert_eq(testhook_parse_soft_devices("0,resv=0xfee00000-0xfeefffff,resv=0x10-0x1f", &c, err,
						 sizeof(err)), 0, "%s", err);
	cr_expect_eq(c.attach_us, 0);
	cr_assert_eq(c.nr_dev_resv, 2);
	cr_expect_eq(c.dev_resv[0].start, 0xfee00000);
	cr_expect_eq(c.dev_resv[0].last, 0xfeefffff);
	cr_expect_eq(c.dev_resv[1].last, 0x1f);
	cr_expect_eq(testhook_parse_soft_devices("0,resv=0x20-0x10", &c, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "resv=0x20-0x10"), "%s", err);
	cr_expect_eq(testhook_parse_soft_devices("0,bogus=1", &c, err, sizeof(err)), -EINVAL);
	cr_expect_eq(testhook_parse_soft_devices("x", &c, err, sizeof(err)), -EINVAL);
	cr_expect_eq(testhook_parse_soft_devices("0,resv=1-2,resv=3-4,resv=5-6,resv=7-8,resv=9-10", &c,
						 err, sizeof(err)), -EINVAL, "more than 4 ranges");
}

Test(options, log_levels)
{
	enum dlog_level l;

	cr_expect_eq(dlog_parse_level("warn", &l), 0);
	cr_expect_eq(l, DLOG_WARN);
	cr_expect_str_eq(dlog_level_name(DLOG_ERROR), "error");
	cr_expect_eq(dlog_parse_level("WARN", &l), -EINVAL);
}

Test(options, log_line_format)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct dlog lg = { .level = DLOG_INFO, .out = f };

	dlog_err(&lg, 3, -ENOMEM, "region %u: map iova 0x%x len 0x%x", 2, 0x200000, 0x200000);
	dlog(&lg, DLOG_DEBUG, 3, "dropped");
	dlog(&lg, DLOG_INFO, 0, "plain");
	fclose(f);
	cr_expect_str_eq(text,
			 "dmasvc[error] session 3: region 2: map iova 0x200000 len 0x200000: Cannot allocate memory\n"
			 "dmasvc[info] plain\n");
	free(text);
}

/* The five caps: defaults, flags, --uid-caps entries, and the caps a uid gets. */
Test(options, caps_and_uid_caps)
{
	struct dsvc_options o;
	uint64_t cap[OPT_CAP_NR];
	char err[256];

	cr_assert_eq(PARSE(&o, err, "--soft-iommu"), OPT_RUN, "%s", err);
	cr_expect_eq(opt_caps_for_uid(&o, 1000, cap), 0, "no entry for uid 1000");
	cr_expect_eq(cap[OPT_CAP_REGISTERED], OPT_DEFAULT_REGISTERED_GIB << 30);
	cr_expect_eq(cap[OPT_CAP_POPULATED], OPT_DEFAULT_POPULATED_MIB << 20);
	cr_expect_eq(cap[OPT_CAP_POPULATED], 4ull << 40, "4 TiB");
	cr_expect_eq(cap[OPT_CAP_MAPPINGS], 0, "the model: its own limit");
	cr_expect_eq(cap[OPT_CAP_REGIONS], 1024);
	cr_expect_eq(cap[OPT_CAP_INFLIGHT], 16384);
	cr_expect_eq(cap[OPT_CAP_SESSIONS], 128, "half the session table");

	cr_assert_eq(PARSE(&o, err, "--iommufd", "/dev/iommu", "--max-populated-mib", "8", "--max-regions", "4",
			   "--max-inflight", "512", "--max-registered-gib", "2",
			   "--uid-caps", "1000:max-regions=8,max-populated-mib=2",
			   "--uid-caps", "1001:max-mappings=9000000,max-sessions=2",
			   "--uid-caps", "1000:max-inflight=64,max-regions=16"), OPT_RUN, "%s", err);
	cr_expect_eq(o.nr_uid_caps, 2, "a repeated uid adds to its entry");
	cr_expect_eq(opt_caps_for_uid(&o, 1000, cap),
		     (1u << OPT_CAP_REGIONS) | (1u << OPT_CAP_POPULATED) | (1u << OPT_CAP_INFLIGHT));
	cr_expect_eq(cap[OPT_CAP_REGIONS], 16, "the later value wins");
	cr_expect_eq(cap[OPT_CAP_POPULATED], 2 * MiB_);
	cr_expect_eq(cap[OPT_CAP_INFLIGHT], 64);
	cr_expect_eq(cap[OPT_CAP_REGISTERED], 2ull << 30, "not set: the default");
	cr_expect_eq(cap[OPT_CAP_MAPPINGS], OPT_IOMMUFD_DEFAULT_AREAS);
	cr_expect_eq(opt_caps_for_uid(&o, 1001, cap), (1u << OPT_CAP_MAPPINGS) | (1u << OPT_CAP_SESSIONS));
	cr_expect_eq(cap[OPT_CAP_SESSIONS], 2);
	cr_expect_eq(cap[OPT_CAP_MAPPINGS], 9000000);
	cr_expect_eq(cap[OPT_CAP_REGIONS], 4);
	cr_expect_eq(cap[OPT_CAP_POPULATED], 8 * MiB_);
	cr_expect_eq(opt_backend_max_areas(&o), 9000000, "the backend allows the largest override");
	cr_expect_eq(opt_default_max_areas(&o), OPT_IOMMUFD_DEFAULT_AREAS);

	cr_expect_eq(PARSE(&o, err, "--max-regions", "4097"), -EINVAL);
	cr_expect(strstr(err, "--max-regions") && strstr(err, "1..4096"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--max-inflight", "1"), -EINVAL);
	cr_expect(strstr(err, "--max-inflight"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--max-sessions", "257"), -EINVAL);
	cr_expect(strstr(err, "--max-sessions") && strstr(err, "1..256"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--max-populated-mib", "0"), -EINVAL);
	cr_expect(strstr(err, "--max-populated-mib: '0'"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--uid-caps", "1000"), -EINVAL);
	cr_expect(strstr(err, "UID:NAME=N"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--uid-caps", "bob:max-regions=2"), -EINVAL);
	cr_expect(strstr(err, "'bob' is not a numeric uid"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--uid-caps", "1000:max-cats=2"), -EINVAL);
	cr_expect(strstr(err, "'max-cats' is not NAME=N"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--uid-caps", "1000:max-regions"), -EINVAL);
	cr_expect_eq(PARSE(&o, err, "--uid-caps", "1000:max-regions=0"), -EINVAL);
	cr_expect(strstr(err, "--uid-caps 1000:max-regions: '0'"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--uid-caps", "1000:,"), -EINVAL);
	cr_expect(strstr(err, "sets no cap"), "%s", err);

	/* A soft or type1 default of "the backend's own limit" stays that, overrides or not. */
	cr_assert_eq(PARSE(&o, err, "--soft-iommu", "--uid-caps", "5:max-mappings=10"), OPT_RUN, "%s", err);
	cr_expect_eq(opt_backend_max_areas(&o), 0);
	cr_expect_eq(opt_caps_for_uid(&o, 5, cap), 1u << OPT_CAP_MAPPINGS);
	cr_expect_eq(cap[OPT_CAP_MAPPINGS], 10);
}

/* At most OPT_MAX_UID_CAPS uids. */
Test(options, uid_caps_limit)
{
	char *argv[2 + 2 * (OPT_MAX_UID_CAPS + 1)];
	char vals[OPT_MAX_UID_CAPS + 1][32];
	struct dsvc_options o;
	char err[256];
	int n = 0;

	argv[n++] = "dmasvc";
	for (int i = 0; i <= OPT_MAX_UID_CAPS; i++) {
		snprintf(vals[i], sizeof(vals[i]), "%d:max-regions=1", 100 + i);
		argv[n++] = "--uid-caps";
		argv[n++] = vals[i];
	}
	argv[n] = NULL;
	cr_expect_eq(opt_parse(n - 2, argv, &o, stdout, err, sizeof(err)), OPT_RUN, "%s", err);
	cr_expect_eq(o.nr_uid_caps, OPT_MAX_UID_CAPS);
	cr_expect_eq(opt_parse(n, argv, &o, stdout, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "at most 32 uids"), "%s", err);
}

Test(options, log_journal_priorities)
{
	char *text = NULL, js[64];
	size_t len = 0;
	FILE *f = tmpfile();
	struct dlog lg;
	struct stat st;

	cr_assert(f);
	cr_assert_eq(fstat(fileno(f), &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	dlog_init(&lg, DLOG_DEBUG, f, js, NULL);
	cr_assert(lg.journal, "JOURNAL_STREAM naming the stream turns prefixes on");
	dlog_err(&lg, 3, -ENOMEM, "map");
	dlog(&lg, DLOG_WARN, 0, "w");
	dlog(&lg, DLOG_INFO, 0, "i");
	dlog(&lg, DLOG_DEBUG, 2, "d");
	dlog_backend_report(&lg, "iommufd: IOMMU_IOAS_MAP: x");
	fflush(f);
	rewind(f);
	text = calloc(1, 4096);
	cr_assert(text);
	len = fread(text, 1, 4095, f);
	cr_expect_str_eq(text, "<3>session 3: map: Cannot allocate memory\n<4>w\n<6>i\n<7>session 2: d\n"
			       "<3>iommufd: IOMMU_IOAS_MAP: x\n", "got %zu bytes: %s", len, text);
	free(text);
	dlog_fini(&lg);

	/* another stream's JOURNAL_STREAM (stderr under systemd, redirected here) */
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	dlog_init(&lg, DLOG_DEBUG, f, js, NULL);
	cr_expect(!lg.journal);
	dlog_init(&lg, DLOG_DEBUG, f, "garbage", NULL);
	cr_expect(!lg.journal);
	dlog_init(&lg, DLOG_DEBUG, f, NULL, NULL);
	cr_expect(!lg.journal);
	fclose(f);
}

Test(options, backend_lines_share_one_rate_limit)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct dlog_limit lim;
	struct dlog lg;
	struct timespec ts;
	time_t start;
	int lines = 0;

	dlog_init(&lg, DLOG_INFO, f, NULL, &lim);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	start = ts.tv_sec;
	/* start at a fresh second so the 100 lines fall into one window */
	do {
		clock_gettime(CLOCK_MONOTONIC, &ts);
	} while (ts.tv_sec == start);
	for (int i = 0; i < 100; i++)
		dlog_backend_report(&lg, "iommufd: IOMMU_IOAS_MAP iova 0x0: Cannot allocate memory");
	fflush(f);
	for (char *p = text; (p = strchr(p, '\n')); p++)
		lines++;
	cr_expect_eq(lines, DLOG_LIMITED_BURST, "one second's budget, got %d lines", lines);
	cr_expect(!strstr(text, "suppressed"));
	start = ts.tv_sec;
	do {
		clock_gettime(CLOCK_MONOTONIC, &ts);
	} while (ts.tv_sec == start);
	dlog_backend_report(&lg, "type1: VFIO_IOMMU_MAP_DMA: x");
	fclose(f);
	cr_expect(strstr(text, "dmasvc[error] type1: VFIO_IOMMU_MAP_DMA: x (and 80 earlier lines suppressed"),
		  "%s", strrchr(text, '[') ? strrchr(text, '[') : text);
	free(text);
	dlog_fini(&lg);
}

/* A backend's report reaches the callback its user set, not stderr. */
static void grab_line(void *arg, const char *line)
{
	snprintf(arg, 256, "%s", line);
}

Test(options, backend_reports_through_the_callback)
{
	char line[256] = "";
	struct be_config cfg = { .path = "/nonexistent/iommu", .report = grab_line, .report_arg = line };
	struct be_ctx *ctx = NULL;

	cr_expect_eq(be_iommufd_ops.open(&cfg, &ctx), -ENOENT);
	cr_expect_str_eq(line, "iommufd: open /nonexistent/iommu: No such file or directory");
	line[0] = '\0';
	cfg.path = "/nonexistent/vfio/3";
	if (be_type1_ops.open(&cfg, &ctx) == 0)
		be_type1_ops.close(ctx);
	cr_expect(strstr(line, "type1: ") == line, "type1 reports through the callback: '%s'", line);
}

/* Who allocates guest memory, and the iommufd options (docs/design.md). */
Test(options, fault_in_and_iommufd_options)
{
	struct dsvc_options o;
	char err[256];

	cr_assert_eq(PARSE(&o, err, "--soft-iommu"), OPT_RUN);
	cr_expect(!o.allow_fault_in, "the service faults nothing in by default");
	cr_expect_eq(o.iommufd_rlimit_mode, -1, "the kernel's rlimit mode by default");
	cr_expect_eq(o.iommufd_huge_pages, -1);
	cr_assert_eq(PARSE(&o, err, "--soft-iommu", "--allow-fault-in"), OPT_RUN, "%s", err);
	cr_expect(o.allow_fault_in);
	cr_assert_eq(PARSE(&o, err, "--iommufd", "/dev/iommu", "--iommufd-rlimit-mode", "process",
			   "--iommufd-huge-pages", "off"), OPT_RUN, "%s", err);
	cr_expect_eq(o.iommufd_rlimit_mode, 1, "IOMMUFD_RLIMIT_MODE: 1 = per process (mm)");
	cr_expect_eq(o.iommufd_huge_pages, 0);
	cr_assert_eq(PARSE(&o, err, "--iommufd-rlimit-mode", "user", "--iommufd-huge-pages", "on"), OPT_RUN,
		     "%s", err);
	cr_expect_eq(o.iommufd_rlimit_mode, 0);
	cr_expect_eq(o.iommufd_huge_pages, 1);
	cr_expect_eq(PARSE(&o, err, "--iommufd-rlimit-mode", "vm"), -EINVAL);
	cr_expect(strstr(err, "--iommufd-rlimit-mode") && strstr(err, "'vm'"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--iommufd-huge-pages", "2"), -EINVAL);
	cr_expect(strstr(err, "--iommufd-huge-pages"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--soft-iommu", "--iommufd-rlimit-mode", "user"), -EINVAL);
	cr_expect(strstr(err, "need the iommufd backend"), "%s", err);
}

Test(options, areas_run_only_where_areas_can_be_cut)
{
	struct dsvc_options o;
	char err[256];

	cr_assert_eq(PARSE(&o, err, "--soft-iommu"), OPT_RUN);
	cr_expect(!o.areas_run, "one area per granule by default");
	cr_assert_eq(PARSE(&o, err, "--soft-iommu", "--areas", "run"), OPT_RUN, "%s", err);
	cr_expect(o.areas_run);
	cr_assert_eq(PARSE(&o, err, "--areas", "run", "--areas", "granule"), OPT_RUN, "%s", err);
	cr_expect(!o.areas_run, "the last one counts");
	cr_assert_eq(PARSE(&o, err, "--iommufd", "/dev/iommu", "--areas", "run",
			   "--iommufd-huge-pages", "off"), OPT_RUN, "%s", err);
	cr_expect(o.areas_run);
	cr_expect_eq(PARSE(&o, err, "--areas", "run", "--iommufd-huge-pages", "on"), -EINVAL);
	cr_expect(strstr(err, "needs --iommufd-huge-pages off"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--vfio-group", "/dev/vfio/1", "--areas", "run"), -EINVAL);
	cr_expect(strstr(err, "type1") && strstr(err, "cannot cut"), "%s", err);
	cr_expect_eq(PARSE(&o, err, "--areas", "chunk"), -EINVAL);
	cr_expect(strstr(err, "--areas: 'chunk' is not granule or run"), "%s", err);
}
