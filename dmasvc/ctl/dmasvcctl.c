/* SPDX-License-Identifier: MIT */
/*
 * dmasvcctl.c - look into a running dmasvc: status, regions, audit (text
 * or --json) and metrics (Prometheus text format).  Uses service-wide
 * queries (DMASVC_QUERY_F_ALL_SESSIONS), so it must run as root or as the
 * service's uid.
 *
 * Exit status: 0 success (audit: every extent OK), 1 audit found MISSING or
 * STRAY extents, 2 bad usage, 3 the service could not be queried (then
 * nothing is printed on stdout).
 *
 * It talks to the service through libdmasvc, on a query-only connection
 * (dmasvc_connect_query_only: HELLO and nothing else, so it holds no ring
 * and never takes the service's devices).  A command reads everything
 * (read.c), then prints it (human.c, json.c, metrics.c).  Errors are -errno
 * up to main(), which reports them once with the service's reason.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_priv.h"
#include "dmasvc/proto.h"

#ifndef DMASVC_VERSION
#define DMASVC_VERSION "unknown"
#endif

#define EXIT_MISMATCH 1
#define EXIT_USAGE 2
#define EXIT_SERVICE 3

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: dmasvcctl [--socket PATH] COMMAND [--json]\n"
		"Commands:\n"
		"  status    service totals and one line per session (this tool's own\n"
		"            session is not counted)\n"
		"  regions   every region: size, populated, mapped and pinned bytes\n"
		"  audit     compare the service's per-granule state with what the backend\n"
		"            holds; prints OK/MISSING/STRAY extents\n"
		"  metrics   Prometheus text format (node_exporter textfile collector)\n"
		"  upgrade   make the service re-execute itself in place, keeping its\n"
		"            sessions (admin; like SIGHUP)\n"
		"Options:\n"
		"  --socket PATH   control socket (default %s)\n"
		"  --json          JSON output (status, regions, audit); schema version %d\n"
		"  --help          this text\n"
		"  --version       print the version and exit\n"
		"Latencies are measured by the service from SQE drain to CQE post.\n"
		"Exit status: 0 ok (audit: all OK), 1 audit found MISSING/STRAY, 2 usage,\n"
		"3 the service could not be queried.\n",
		DMASVC_DEFAULT_SOCKET, CTL_JSON_VERSION);
}

/* The one report of a failure: what, the errno, the service's reason. */
static int report(struct dmasvc_client *c, const char *what, int ret)
{
	const char *text = dmasvc_last_service_error(c);

	fprintf(stderr, "dmasvcctl: %s: %s%s%s\n", what, strerror(-ret), text[0] ? ": " : "", text);
	return EXIT_SERVICE;
}

enum cmd { CMD_STATUS, CMD_REGIONS, CMD_AUDIT, CMD_METRICS, CMD_UPGRADE };

/* run: read what @cmd shows, then print it.  Returns the exit status. */
static int run(struct dmasvc_client *c, enum cmd cmd, bool json)
{
	const char *what = "output";
	struct ctl_audit a;
	struct ctl_view v;
	int ret, status = 0;

	if (cmd == CMD_UPGRADE) {
		ret = dmasvc_upgrade(c);
		if (ret)
			return report(c, "upgrade", ret);
		printf("upgrade: the service accepted; it re-executes itself now\n");
		return 0;
	}
	if (cmd == CMD_AUDIT) {
		ret = ctl_read_audit(c, &a, &what);
		if (ret)
			return report(c, what, ret);
		if (json)
			ret = ctl_json_audit(stdout, &a);
		else
			ctl_human_audit(stdout, &a);
		status = a.all_ok ? 0 : EXIT_MISMATCH;
		ctl_audit_free(&a);
		return ret ? report(c, "json", ret) : status;
	}
	if (cmd == CMD_REGIONS) {
		memset(&v, 0, sizeof(v));
		ret = ctl_read_regions(c, &v, &what);
	} else {
		ret = ctl_read_view(c, cmd == CMD_METRICS, &v, &what);
	}
	if (ret)
		return report(c, what, ret);
	switch (cmd) {
	case CMD_STATUS:
		if (json)
			ret = ctl_json_status(stdout, &v);
		else
			ctl_human_status(stdout, &v);
		break;
	case CMD_REGIONS:
		if (json)
			ret = ctl_json_regions(stdout, &v);
		else
			ctl_human_regions(stdout, &v);
		break;
	default:
		ctl_metrics(stdout, &v);
		break;
	}
	ctl_view_free(&v);
	return ret ? report(c, "json", ret) : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const names[] = { "status", "regions", "audit", "metrics", "upgrade" };
	const char *path = DMASVC_DEFAULT_SOCKET;
	struct dmasvc_client *c;
	bool json = false;
	int opt, ret, cmd = -1;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("dmasvcctl %s (control protocol %d.%d, JSON schema %d)\n", DMASVC_VERSION,
			       DMASVC_PROTO_MAJOR, DMASVC_PROTO_MINOR, CTL_JSON_VERSION);
			return 0;
		default:
			fprintf(stderr, "dmasvcctl: unknown option '%s'\n", argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (!strcmp(argv[optind], names[i]))
			cmd = i;
	if (cmd < 0) {
		fprintf(stderr, "dmasvcctl: unknown command '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	for (optind++; optind < argc; optind++) {
		if (!strcmp(argv[optind], "--json")) {
			json = true;
		} else {
			fprintf(stderr, "dmasvcctl: unexpected argument '%s'\n", argv[optind]);
			return EXIT_USAGE;
		}
	}
	if (json && (cmd == CMD_METRICS || cmd == CMD_UPGRADE)) {
		fprintf(stderr, "dmasvcctl: %s has no --json\n", names[cmd]);
		return EXIT_USAGE;
	}
	ret = dmasvc_connect_query_only(path, NULL, &c);
	if (ret) {
		fprintf(stderr, "dmasvcctl: cannot talk to dmasvc at %s: %s\n", path, strerror(-ret));
		return EXIT_SERVICE;
	}
	ret = run(c, (enum cmd)cmd, json);
	if (fflush(stdout) && !ret) {
		fprintf(stderr, "dmasvcctl: writing the output: %s\n", strerror(errno));
		ret = EXIT_SERVICE;
	}
	dmasvc_disconnect(c);
	return ret;
}
