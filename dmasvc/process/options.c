/* SPDX-License-Identifier: MIT */
/*
 * options.c - parse the daemon's command line (getopt_long) and validate
 * every value; see options_priv.h.  Numbers are parsed strictly: the whole
 * argument must be a number in range, else the flag is named in the error.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "dmasvc/proto.h"
#include "options_priv.h"

#ifndef DMASVC_VERSION
#define DMASVC_VERSION "unknown"
#endif

enum {
	OPT_SOFT = 256,
	OPT_IOMMUFD,
	OPT_VFIO_GROUP,
	OPT_DEVICE,
	OPT_SOCKET,
	OPT_SOCKET_MODE,
	OPT_WORKERS,
	OPT_MAX_MAPPINGS,
	OPT_MAX_REGISTERED,
	OPT_MAX_POPULATED,
	OPT_MAX_REGIONS_,
	OPT_MAX_INFLIGHT_,
	OPT_MAX_SESSIONS_,
	OPT_UID_CAPS,
	OPT_ALLOW_UID,
	OPT_ALLOW_GID,
	OPT_CONFIG,
	OPT_USER,
	OPT_SOCKET_GROUP,
	OPT_LOG_LEVEL,
	OPT_STATS_INTERVAL,
	OPT_POLL_US,
	OPT_ALLOW_FAULT_IN,
	OPT_RLIMIT_MODE,
	OPT_HUGE_PAGES,
	OPT_AREAS,
	OPT_KEEP_SESSIONS,
	OPT_RESUME_GRACE,
	OPT_UPGRADE_EXEC,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option long_opts[] = {
	{ "soft-iommu", no_argument, NULL, OPT_SOFT },
	{ "iommufd", required_argument, NULL, OPT_IOMMUFD },
	{ "vfio-group", required_argument, NULL, OPT_VFIO_GROUP },
	{ "device", required_argument, NULL, OPT_DEVICE },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "max-mappings", required_argument, NULL, OPT_MAX_MAPPINGS },
	{ "max-registered-gib", required_argument, NULL, OPT_MAX_REGISTERED },
	{ "max-populated-mib", required_argument, NULL, OPT_MAX_POPULATED },
	{ "max-regions", required_argument, NULL, OPT_MAX_REGIONS_ },
	{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT_ },
	{ "max-sessions", required_argument, NULL, OPT_MAX_SESSIONS_ },
	{ "uid-caps", required_argument, NULL, OPT_UID_CAPS },
	{ "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
	{ "allow-gid", required_argument, NULL, OPT_ALLOW_GID },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "user", required_argument, NULL, OPT_USER },
	{ "socket-group", required_argument, NULL, OPT_SOCKET_GROUP },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "stats-interval", required_argument, NULL, OPT_STATS_INTERVAL },
	{ "poll-us", required_argument, NULL, OPT_POLL_US },
	{ "allow-fault-in", no_argument, NULL, OPT_ALLOW_FAULT_IN },
	{ "iommufd-rlimit-mode", required_argument, NULL, OPT_RLIMIT_MODE },
	{ "iommufd-huge-pages", required_argument, NULL, OPT_HUGE_PAGES },
	{ "areas", required_argument, NULL, OPT_AREAS },
	{ "keep-sessions", no_argument, NULL, OPT_KEEP_SESSIONS },
	{ "resume-grace-sec", required_argument, NULL, OPT_RESUME_GRACE },
	{ "upgrade-exec", required_argument, NULL, OPT_UPGRADE_EXEC },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

void opt_usage(FILE *out)
{
	fprintf(out,
		"Usage: dmasvc [OPTIONS]\n"
		"Keep IOMMU mappings equal to the populated parts of guest memory that\n"
		"clients (VMMs) report over a control socket and shared-memory rings.\n"
		"\n"
		"Backend (exactly one; with neither flag, /dev/iommu is used if it exists):\n"
		"  --iommufd PATH        the kernel iommufd backend (normally /dev/iommu)\n"
		"  --vfio-group PATH     the VFIO type1 backend: /dev/vfio/vfio with this group\n"
		"                        (e.g. /dev/vfio/3); one container, so one session at a\n"
		"                        time maps (the first to register a region)\n"
		"  --soft-iommu          the software IOMMU model: enforces the iommufd rules and\n"
		"                        pins memory, but protects no device (for machines\n"
		"                        without an IOMMU, and for tests)\n"
		"\n"
		"Devices (clients may also attach their own over the socket):\n"
		"  --device SPEC         attach this device to the space of the first session that\n"
		"                        registers a region (again to the next one when that\n"
		"                        session ends); iommufd: a cdev such as\n"
		"                        /dev/vfio/devices/vfio0, type1: a PCI address in the\n"
		"                        group such as 0000:00:03.0; repeatable, up to %d\n"
		"\n"
		"Options:\n"
		"  --config PATH         read options from PATH before the command line, which\n"
		"                        overrides them: one 'long-option = value' a line,\n"
		"                        'flag = true' for a flag (default file, read if it\n"
		"                        exists: %s)\n"
		"  --socket PATH         control socket (default %s);\n"
		"                        under socket activation (dmasvc.socket) the inherited\n"
		"                        socket must be bound to this path\n"
		"  --socket-mode OCTAL   permissions of the socket file (default 0600, 0660\n"
		"                        with --socket-group)\n"
		"  --socket-group GROUP  group (name or number) of the socket file, so a VMM's\n"
		"                        group can connect; also admitted by default (below)\n"
		"  --allow-uid UID       peer uid allowed to connect; repeatable\n"
		"  --allow-gid GID       peer gid (its effective gid) allowed to connect;\n"
		"                        repeatable.  Default with neither: the service's own\n"
		"                        uid, root and the --socket-group group.  Service-wide\n"
		"                        queries (dmasvcctl) are for root and the service's uid\n"
		"  --user NAME           after opening the backend and the socket, run as this\n"
		"                        user (and its groups) keeping only CAP_IPC_LOCK (needs\n"
		"                        to start as root; the user must be able to open\n"
		"                        /dev/iommu and --device cdevs: each session reopens\n"
		"                        them).  dmasvc.service uses User= instead\n"
		"  --workers N           threads that run map calls in parallel, 1..%d (default %d)\n"
		"  --poll-us N           polling mode: after an event the event loop keeps\n"
		"                        polling the rings' SQs for N microseconds before it\n"
		"                        sleeps, 0..%u, so a VMM's next event pays no wake-up\n"
		"                        (costs up to one CPU while events come closer than N;\n"
		"                        like io_uring's sq_thread_idle).  Default 0: poll only\n"
		"                        for an adaptive window of at most 50 us\n"
		"  --allow-fault-in      pin guest memory that is not in memory yet, faulting it\n"
		"                        in from the service (charged to the service's cgroup,\n"
		"                        not the VM's).  Default: such a populate is refused\n"
		"                        with ENXIO; the VMM faults its memory in first\n"
		"                        (libdmasvc does)\n"
		"  --iommufd-rlimit-mode user|process  IOMMU_OPTION_RLIMIT_MODE of every iommufd\n"
		"                        context: pins counted in the service user's locked_vm\n"
		"                        (user) or the service process's (process, like VFIO);\n"
		"                        needs CAP_SYS_RESOURCE.  Default: the kernel's (user)\n"
		"  --iommufd-huge-pages on|off  IOMMU_OPTION_HUGE_PAGES of every IOAS (default:\n"
		"                        the kernel's, on)\n"
		"  --areas granule|run   how guest memory becomes IOMMU mappings (areas).\n"
		"                        granule (default): one area per granule, so any\n"
		"                        granule can be unmapped alone.  run: each run of\n"
		"                        granules a batch populates is one area (up to 2 MiB),\n"
		"                        and a discard cuts the areas it starts or ends in:\n"
		"                        fewer, larger calls for 4 KiB conversions.  The\n"
		"                        price is the IOMMU's huge pages: iommufd sets\n"
		"                        --iommufd-huge-pages off (every IOPTE 4 KiB, for\n"
		"                        every device of a session) and cuts with the\n"
		"                        VFIO-compat unmap; not with --vfio-group (type1\n"
		"                        cannot cut)\n"
		"  --keep-sessions       iommufd sessions outlive the process (docs/restart.md):\n"
		"                        each session's iommufd context, devices and record go\n"
		"                        into systemd's fd store (FileDescriptorStoreMax=) and to\n"
		"                        the next instance at an upgrade (SIGHUP, dmasvcctl\n"
		"                        upgrade); SIGTERM keeps them instead of unmapping, and\n"
		"                        a restarted service adopts them until the VMM resumes\n"
		"  --resume-grace-sec N  seconds an adopted session waits for its client to\n"
		"                        resume before it is torn down, 1..86400 (default 60)\n"
		"  --upgrade-exec PATH   the binary an upgrade executes, an absolute path\n"
		"                        (default: this binary's path at start)\n"
		"  --stats-interval SEC  seconds between stats log lines at info level (default 10)\n"
		"  --log-level LEVEL     error, warn, info or debug (default info); under\n"
		"                        journald (JOURNAL_STREAM) lines carry <N> priorities\n"
		"  --help                print this help and exit\n"
		"  --version             print the version and exit\n"
		"\n"
		"Caps, per session (sessions: per peer uid); each refusal names the cap and\n"
		"the numbers:\n"
		"  --max-registered-gib N  guest memory one session may register, in GiB\n"
		"                        (default %llu; MEMORY_ADD beyond it: EDQUOT)\n"
		"  --max-populated-mib N  guest memory one session may have mapped (pinned), in\n"
		"                        MiB (default %llu; a populate beyond it completes with\n"
		"                        -EDQUOT and changes nothing)\n"
		"  --max-mappings N      area budget of each session's space, reserved at\n"
		"                        REGION_ADD (default: iommufd %llu areas; type1: the\n"
		"                        container's dma_entry_limit, 65535 by default; the\n"
		"                        software model: no limit; beyond it: ENOSPC)\n"
		"  --max-regions N       regions per session, 1..%u (default %u; EMFILE)\n"
		"  --max-inflight N      SQ entries per session over all its rings, 2..%u\n"
		"                        (default %u; RING_SETUP beyond it: ENOSPC)\n"
		"  --max-sessions N      sessions of one peer uid at once, 1..%u (default %u;\n"
		"                        a connection beyond it is logged and closed)\n"
		"  --uid-caps UID:NAME=N[,NAME=N...]  caps for the sessions of peer uid UID,\n"
		"                        NAME one of the six options above without '--'\n"
		"                        (e.g. 1000:max-populated-mib=8192,max-regions=64);\n"
		"                        repeatable, up to %d uids; a session's caps are those\n"
		"                        of its peer uid when it connects\n"
		"\n"
		"Under systemd (dmasvc.socket, dmasvc.service): adopts the passed socket and\n"
		"reports READY=1, STATUS= (sessions) and STOPPING=1 through sd_notify.\n"
		"\n"
		"Exit status: 0 after SIGTERM/SIGINT (all mappings removed), 1 on a runtime\n"
		"error, 2 on bad usage (command line, configuration file, unknown --user or\n"
		"--socket-group) or no usable backend.\n",
		OPT_MAX_DEVICES, OPT_DEFAULT_CONFIG, DMASVC_DEFAULT_SOCKET, OPT_MAX_WORKERS, OPT_DEFAULT_WORKERS,
		OPT_MAX_POLL_US,
		OPT_DEFAULT_REGISTERED_GIB, OPT_DEFAULT_POPULATED_MIB, OPT_IOMMUFD_DEFAULT_AREAS,
		OPT_MAX_REGIONS, OPT_DEFAULT_REGIONS, OPT_MAX_INFLIGHT, OPT_DEFAULT_INFLIGHT,
		OPT_MAX_SESSIONS, OPT_DEFAULT_SESSIONS, OPT_MAX_UID_CAPS);
}

/* Parse all of @s as an unsigned number in [min, max] with @base. */
static int parse_u64(const char *s, int base, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || !end || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static const struct opt_cap_info cap_info[OPT_CAP_NR] = {
	[OPT_CAP_REGISTERED] = { "max-registered-gib", "GiB", "bytes", 30, 1, UINT64_MAX >> 30 },
	[OPT_CAP_POPULATED] = { "max-populated-mib", "MiB", "bytes", 20, 1, UINT64_MAX >> 20 },
	[OPT_CAP_MAPPINGS] = { "max-mappings", "areas", "areas", 0, 1, UINT64_MAX - 1 },
	[OPT_CAP_REGIONS] = { "max-regions", "regions", "regions", 0, 1, OPT_MAX_REGIONS },
	[OPT_CAP_INFLIGHT] = { "max-inflight", "SQ entries", "SQ entries", 0, 2, OPT_MAX_INFLIGHT },
	[OPT_CAP_SESSIONS] = { "max-sessions", "sessions", "sessions", 0, 1, OPT_MAX_SESSIONS },
};

const struct opt_cap_info *opt_cap_info(enum opt_cap c)
{
	return &cap_info[c];
}

/*
 * Parse @val as the value of cap @c (the option's unit) into *@out (the
 * cap's unit).  Returns 0, or -EINVAL with the reason, naming @flag, in @err.
 */
static int parse_cap(enum opt_cap c, const char *flag, const char *val, uint64_t *out, char *err,
		     size_t errlen)
{
	const struct opt_cap_info *ci = &cap_info[c];
	uint64_t v;

	if (parse_u64(val, 10, ci->min, ci->max, &v)) {
		snprintf(err, errlen, "%s: '%s' is not a number of %s in %llu..%llu", flag, val, ci->unit,
			 (unsigned long long)ci->min, (unsigned long long)ci->max);
		return -EINVAL;
	}
	*out = v << ci->shift;
	return 0;
}

/* Store cap @c = @v (already in the cap's unit) as the default in @o. */
static void set_default_cap(struct dsvc_options *o, enum opt_cap c, uint64_t v)
{
	switch (c) {
	case OPT_CAP_REGISTERED: o->max_registered = v; break;
	case OPT_CAP_POPULATED: o->max_populated = v; break;
	case OPT_CAP_MAPPINGS: o->max_mappings = v; break;
	case OPT_CAP_REGIONS: o->max_regions = (uint32_t)v; break;
	case OPT_CAP_INFLIGHT: o->max_inflight = (uint32_t)v; break;
	case OPT_CAP_SESSIONS: o->max_sessions = (uint32_t)v; break;
	case OPT_CAP_NR: break;
	}
}

/*
 * --uid-caps UID:NAME=N[,NAME=N...]: add to (or start) @uid's entry.
 * Returns 0 or -EINVAL with the reason in @err.
 */
static int parse_uid_caps(struct dsvc_options *o, const char *arg, char *err, size_t errlen)
{
	char buf[512], *p, *item, *save = NULL;
	struct opt_uid_caps *e = NULL;
	uint64_t uid;

	if (strlen(arg) >= sizeof(buf)) {
		snprintf(err, errlen, "--uid-caps: argument longer than %zu bytes", sizeof(buf) - 1);
		return -EINVAL;
	}
	strcpy(buf, arg);
	p = strchr(buf, ':');
	if (!p || p == buf || !p[1]) {
		snprintf(err, errlen, "--uid-caps: '%s' is not UID:NAME=N[,NAME=N...]", arg);
		return -EINVAL;
	}
	*p++ = '\0';
	if (parse_u64(buf, 10, 0, UINT32_MAX - 1, &uid)) {
		snprintf(err, errlen, "--uid-caps: '%s' is not a numeric uid", buf);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < o->nr_uid_caps; i++)
		if (o->uid_caps[i].uid == (uid_t)uid)
			e = &o->uid_caps[i];
	if (!e) {
		if (o->nr_uid_caps == OPT_MAX_UID_CAPS) {
			snprintf(err, errlen, "--uid-caps: at most %d uids", OPT_MAX_UID_CAPS);
			return -EINVAL;
		}
		e = &o->uid_caps[o->nr_uid_caps];
		memset(e, 0, sizeof(*e));
		e->uid = (uid_t)uid;
	}
	for (item = strtok_r(p, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '='), flag[64];
		enum opt_cap c;

		if (eq)
			*eq = '\0';
		for (c = 0; c < OPT_CAP_NR; c++)
			if (!strcmp(item, cap_info[c].name))
				break;
		if (!eq || c == OPT_CAP_NR) {
			snprintf(err, errlen,
				 "--uid-caps: '%s' is not NAME=N with NAME one of max-registered-gib,"
				 " max-populated-mib, max-mappings, max-regions, max-inflight, max-sessions",
				 item);
			return -EINVAL;
		}
		snprintf(flag, sizeof(flag), "--uid-caps %llu:%s", (unsigned long long)uid, item);
		if (parse_cap(c, flag, eq + 1, &e->cap[c], err, errlen))
			return -EINVAL;
		e->set |= 1u << c;
	}
	if (!e->set) {
		snprintf(err, errlen, "--uid-caps: '%s' sets no cap", arg);
		return -EINVAL;
	}
	if (e == &o->uid_caps[o->nr_uid_caps])
		o->nr_uid_caps++;
	return 0;
}

static void set_defaults(struct dsvc_options *o)
{
	memset(o, 0, sizeof(*o));
	o->backend = OPT_BACKEND_AUTO;
	o->socket_path = DMASVC_DEFAULT_SOCKET;
	o->socket_mode = 0600;
	o->workers = OPT_DEFAULT_WORKERS;
	o->max_registered = OPT_DEFAULT_REGISTERED_GIB << 30;
	o->max_populated = OPT_DEFAULT_POPULATED_MIB << 20;
	o->max_regions = OPT_DEFAULT_REGIONS;
	o->max_inflight = OPT_DEFAULT_INFLIGHT;
	o->max_sessions = OPT_DEFAULT_SESSIONS;
	o->stats_interval = 10;
	o->resume_grace_sec = OPT_DEFAULT_RESUME_GRACE;
	o->log_level = DLOG_INFO;
	o->run_uid = (uid_t)-1;
	o->run_gid = (gid_t)-1;
	o->socket_gid = (gid_t)-1;
	o->iommufd_rlimit_mode = -1;
	o->iommufd_huge_pages = -1;
}

/* Index of @s in the NULL-terminated @words, or -EINVAL. */
static int parse_word(const char *s, const char *const *words)
{
	for (int i = 0; words[i]; i++)
		if (!strcmp(s, words[i]))
			return i;
	return -EINVAL;
}

const struct option *opt_long_options(void)
{
	return long_opts;
}

int opt_parse(int argc, char **argv, struct dsvc_options *o, FILE *out, char *err, size_t errlen)
{
	return opt_parse_layered(argc, argv, 0, o, out, err, errlen);
}

/*
 * A command-line value of a repeatable option replaces the configuration
 * file's values: true (and the bit set in *@seen) at the first command-line
 * occurrence of option @bit, when the caller empties its list.
 */
static bool cmdline_replaces(bool from_file, uint32_t *seen, unsigned int bit)
{
	if (from_file || (*seen & (1u << bit)))
		return false;
	*seen |= 1u << bit;
	return true;
}

/* Whether the backend set so far may be replaced: it came from the file, this flag does not. */
#define BACKEND_REPLACEABLE() (backend_from_file && !from_file)

int opt_parse_layered(int argc, char **argv, int nfile, struct dsvc_options *o, FILE *out,
		      char *err, size_t errlen)
{
	bool backend_from_file = false, mode_given = false, from_file;
	uint32_t seen = 0;
	uint64_t v;
	int c;

	set_defaults(o);
	optind = 0; /* full reset: tests parse several argv in one process */
	opterr = 0;
	for (;;) {
		/* argv[1..nfile] came from the configuration file (one token each) */
		from_file = (optind ? optind : 1) <= nfile;
		c = getopt_long(argc, argv, ":", long_opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_SOFT:
			if (BACKEND_REPLACEABLE())
				o->backend = OPT_BACKEND_AUTO;
			if (o->backend != OPT_BACKEND_AUTO && o->backend != OPT_BACKEND_SOFT)
				goto err_both;
			o->backend = OPT_BACKEND_SOFT;
			backend_from_file = from_file;
			break;
		case OPT_IOMMUFD:
			if (BACKEND_REPLACEABLE())
				o->backend = OPT_BACKEND_AUTO;
			if (o->backend != OPT_BACKEND_AUTO && o->backend != OPT_BACKEND_IOMMUFD)
				goto err_both;
			if (!*optarg) {
				snprintf(err, errlen, "--iommufd needs a path (e.g. /dev/iommu)");
				return -EINVAL;
			}
			o->backend = OPT_BACKEND_IOMMUFD;
			o->iommufd_path = optarg;
			backend_from_file = from_file;
			break;
		case OPT_VFIO_GROUP:
			if (BACKEND_REPLACEABLE())
				o->backend = OPT_BACKEND_AUTO;
			if (o->backend != OPT_BACKEND_AUTO && o->backend != OPT_BACKEND_TYPE1)
				goto err_both;
			if (!*optarg) {
				snprintf(err, errlen, "--vfio-group needs a path (e.g. /dev/vfio/3)");
				return -EINVAL;
			}
			o->backend = OPT_BACKEND_TYPE1;
			o->group_path = optarg;
			backend_from_file = from_file;
			break;
		case OPT_DEVICE:
			if (!*optarg) {
				snprintf(err, errlen, "--device needs a cdev path or a PCI address");
				return -EINVAL;
			}
			if (cmdline_replaces(from_file, &seen, OPT_DEVICE - OPT_SOFT))
				o->nr_devices = 0;
			if (o->nr_devices == OPT_MAX_DEVICES) {
				snprintf(err, errlen, "--device: at most %d devices", OPT_MAX_DEVICES);
				return -EINVAL;
			}
			o->devices[o->nr_devices++] = optarg;
			break;
		case OPT_SOCKET:
			if (!*optarg || strlen(optarg) >= 108) {
				snprintf(err, errlen, "--socket: path must be 1..107 bytes");
				return -EINVAL;
			}
			o->socket_path = optarg;
			break;
		case OPT_SOCKET_MODE:
			if (parse_u64(optarg, 8, 0, 0777, &v)) {
				snprintf(err, errlen, "--socket-mode: '%s' is not an octal mode 0..0777", optarg);
				return -EINVAL;
			}
			o->socket_mode = (unsigned int)v;
			mode_given = true;
			break;
		case OPT_SOCKET_GROUP:
			if (!*optarg) {
				snprintf(err, errlen, "--socket-group needs a group name or number");
				return -EINVAL;
			}
			o->socket_group = optarg;
			break;
		case OPT_USER:
			if (!*optarg) {
				snprintf(err, errlen, "--user needs a user name");
				return -EINVAL;
			}
			o->user = optarg;
			break;
		case OPT_CONFIG:
			o->config_path = optarg; /* read before parsing: config.c */
			break;
		case OPT_WORKERS:
			if (parse_u64(optarg, 10, 1, OPT_MAX_WORKERS, &v)) {
				snprintf(err, errlen, "--workers: '%s' is not a number in 1..%d", optarg,
					 OPT_MAX_WORKERS);
				return -EINVAL;
			}
			o->workers = (unsigned int)v;
			break;
		case OPT_MAX_MAPPINGS:
		case OPT_MAX_REGISTERED:
		case OPT_MAX_POPULATED:
		case OPT_MAX_REGIONS_:
		case OPT_MAX_INFLIGHT_:
		case OPT_MAX_SESSIONS_: {
			enum opt_cap cap = c == OPT_MAX_MAPPINGS	? OPT_CAP_MAPPINGS
					   : c == OPT_MAX_REGISTERED ? OPT_CAP_REGISTERED
					   : c == OPT_MAX_POPULATED  ? OPT_CAP_POPULATED
					   : c == OPT_MAX_REGIONS_   ? OPT_CAP_REGIONS
					   : c == OPT_MAX_INFLIGHT_  ? OPT_CAP_INFLIGHT
								     : OPT_CAP_SESSIONS;
			char flag[32];

			snprintf(flag, sizeof(flag), "--%s", cap_info[cap].name);
			if (parse_cap(cap, flag, optarg, &v, err, errlen))
				return -EINVAL;
			set_default_cap(o, cap, v);
			break;
		}
		case OPT_UID_CAPS:
			if (cmdline_replaces(from_file, &seen, OPT_UID_CAPS - OPT_SOFT))
				o->nr_uid_caps = 0;
			if (parse_uid_caps(o, optarg, err, errlen))
				return -EINVAL;
			break;
		case OPT_ALLOW_UID:
			if (parse_u64(optarg, 10, 0, UINT32_MAX - 1, &v)) {
				snprintf(err, errlen, "--allow-uid: '%s' is not a numeric uid", optarg);
				return -EINVAL;
			}
			if (o->nr_allow_uids == OPT_MAX_ALLOW_UIDS) {
				snprintf(err, errlen, "--allow-uid: at most %d uids", OPT_MAX_ALLOW_UIDS);
				return -EINVAL;
			}
			if (cmdline_replaces(from_file, &seen, OPT_ALLOW_UID - OPT_SOFT))
				o->nr_allow_uids = 0;
			o->allow_uids[o->nr_allow_uids++] = (uid_t)v;
			break;
		case OPT_ALLOW_GID:
			if (parse_u64(optarg, 10, 0, UINT32_MAX - 1, &v)) {
				snprintf(err, errlen, "--allow-gid: '%s' is not a numeric gid", optarg);
				return -EINVAL;
			}
			if (o->nr_allow_gids == OPT_MAX_ALLOW_UIDS) {
				snprintf(err, errlen, "--allow-gid: at most %d gids", OPT_MAX_ALLOW_UIDS);
				return -EINVAL;
			}
			if (cmdline_replaces(from_file, &seen, OPT_ALLOW_GID - OPT_SOFT))
				o->nr_allow_gids = 0;
			o->allow_gids[o->nr_allow_gids++] = (gid_t)v;
			break;
		case OPT_LOG_LEVEL:
			if (dlog_parse_level(optarg, &o->log_level)) {
				snprintf(err, errlen, "--log-level: '%s' is not one of error, warn, info, debug",
					 optarg);
				return -EINVAL;
			}
			break;
		case OPT_STATS_INTERVAL:
			if (parse_u64(optarg, 10, 1, 3600, &v)) {
				snprintf(err, errlen, "--stats-interval: '%s' is not a number of seconds in 1..3600",
					 optarg);
				return -EINVAL;
			}
			o->stats_interval = (unsigned int)v;
			break;
		case OPT_POLL_US:
			if (parse_u64(optarg, 10, 0, OPT_MAX_POLL_US, &v)) {
				snprintf(err, errlen, "--poll-us: '%s' is not a number of microseconds in 0..%u",
					 optarg, OPT_MAX_POLL_US);
				return -EINVAL;
			}
			o->poll_us = (unsigned int)v;
			break;
		case OPT_ALLOW_FAULT_IN:
			o->allow_fault_in = true;
			break;
		case OPT_KEEP_SESSIONS:
			o->keep_sessions = true;
			break;
		case OPT_RESUME_GRACE:
			if (parse_u64(optarg, 10, 1, OPT_MAX_RESUME_GRACE, &v)) {
				snprintf(err, errlen, "--resume-grace-sec: '%s' is not a number of seconds in 1..%u",
					 optarg, OPT_MAX_RESUME_GRACE);
				return -EINVAL;
			}
			o->resume_grace_sec = (unsigned int)v;
			break;
		case OPT_UPGRADE_EXEC:
			if (optarg[0] != '/' || strlen(optarg) >= OPT_PATH_MAX) {
				snprintf(err, errlen, "--upgrade-exec: '%s' is not an absolute path (under %d bytes)",
					 optarg, OPT_PATH_MAX);
				return -EINVAL;
			}
			o->upgrade_exec = optarg;
			break;
		case OPT_RLIMIT_MODE: /* the kernel's values: 0 per user, 1 per process (mm) */
			o->iommufd_rlimit_mode = parse_word(optarg, (const char *const[]){ "user", "process", NULL });
			if (o->iommufd_rlimit_mode < 0) {
				snprintf(err, errlen, "--iommufd-rlimit-mode: '%s' is not user or process", optarg);
				return -EINVAL;
			}
			break;
		case OPT_HUGE_PAGES:
			o->iommufd_huge_pages = parse_word(optarg, (const char *const[]){ "off", "on", NULL });
			if (o->iommufd_huge_pages < 0) {
				snprintf(err, errlen, "--iommufd-huge-pages: '%s' is not on or off", optarg);
				return -EINVAL;
			}
			break;
		case OPT_AREAS:
			switch (parse_word(optarg, (const char *const[]){ "granule", "run", NULL })) {
			case 0:
				o->areas_run = false;
				break;
			case 1:
				o->areas_run = true;
				break;
			default:
				snprintf(err, errlen, "--areas: '%s' is not granule or run", optarg);
				return -EINVAL;
			}
			break;
		case OPT_HELP:
			opt_usage(out);
			return OPT_EXIT;
		case OPT_VERSION:
			fprintf(out, "dmasvc %s (control protocol %d.%d)\n", DMASVC_VERSION,
				DMASVC_PROTO_MAJOR, DMASVC_PROTO_MINOR);
			return OPT_EXIT;
		case ':':
			snprintf(err, errlen, "%s needs an argument", argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
		return -EINVAL;
	}
	if (o->nr_devices && o->backend == OPT_BACKEND_SOFT) {
		snprintf(err, errlen, "--device needs a kernel backend (--iommufd or --vfio-group): "
			 "the software model has no devices");
		return -EINVAL;
	}
	if (o->socket_group && !mode_given)
		o->socket_mode = 0660;
	if ((o->iommufd_rlimit_mode >= 0 || o->iommufd_huge_pages >= 0) &&
	    o->backend != OPT_BACKEND_AUTO && o->backend != OPT_BACKEND_IOMMUFD) {
		snprintf(err, errlen, "--iommufd-rlimit-mode and --iommufd-huge-pages need the iommufd backend");
		return -EINVAL;
	}
	if (o->areas_run && o->backend == OPT_BACKEND_TYPE1) {
		snprintf(err, errlen, "--areas run: the type1 backend (--vfio-group) cannot cut an area");
		return -EINVAL;
	}
	if (o->areas_run && o->iommufd_huge_pages == 1) {
		snprintf(err, errlen, "--areas run needs --iommufd-huge-pages off: the kernel cuts "
			 "areas only in an IOAS without huge pages");
		return -EINVAL;
	}
	return OPT_RUN;

err_both:
	snprintf(err, errlen,
		 "--soft-iommu, --iommufd and --vfio-group are mutually exclusive (one backend)");
	return -EINVAL;
}

uint64_t opt_default_max_areas(const struct dsvc_options *o)
{
	if (o->max_mappings)
		return o->max_mappings;
	return o->backend == OPT_BACKEND_IOMMUFD ? OPT_IOMMUFD_DEFAULT_AREAS : 0;
}

uint64_t opt_backend_max_areas(const struct dsvc_options *o)
{
	uint64_t areas = opt_default_max_areas(o);

	if (!areas)
		return 0; /* the backend's own limit: no override can need more */
	for (unsigned int i = 0; i < o->nr_uid_caps; i++)
		if ((o->uid_caps[i].set & (1u << OPT_CAP_MAPPINGS)) &&
		    o->uid_caps[i].cap[OPT_CAP_MAPPINGS] > areas)
			areas = o->uid_caps[i].cap[OPT_CAP_MAPPINGS];
	return areas;
}

unsigned int opt_caps_for_uid(const struct dsvc_options *o, uid_t uid, uint64_t cap[OPT_CAP_NR])
{
	cap[OPT_CAP_REGISTERED] = o->max_registered;
	cap[OPT_CAP_POPULATED] = o->max_populated;
	cap[OPT_CAP_MAPPINGS] = opt_default_max_areas(o);
	cap[OPT_CAP_REGIONS] = o->max_regions;
	cap[OPT_CAP_INFLIGHT] = o->max_inflight;
	cap[OPT_CAP_SESSIONS] = o->max_sessions;
	for (unsigned int i = 0; i < o->nr_uid_caps; i++) {
		const struct opt_uid_caps *e = &o->uid_caps[i];

		if (e->uid != uid)
			continue;
		for (unsigned int c = 0; c < OPT_CAP_NR; c++)
			if (e->set & (1u << c))
				cap[c] = e->cap[c];
		return e->set;
	}
	return 0;
}

int opt_resolve_backend(struct dsvc_options *o, bool have_dev_iommu, char *err, size_t errlen)
{
	if (o->backend != OPT_BACKEND_AUTO)
		return 0;
	if (!have_dev_iommu) {
		snprintf(err, errlen,
			 "no backend given and %s does not exist; use --soft-iommu for the "
			 "software model (no device protection) or --iommufd PATH",
			 OPT_DEFAULT_IOMMUFD);
		return -ENODEV;
	}
	o->backend = OPT_BACKEND_IOMMUFD;
	o->iommufd_path = OPT_DEFAULT_IOMMUFD;
	return 0;
}

/* Parse all of @s as a decimal id below (id_t)-1. */
static int parse_id(const char *s, uint64_t *out)
{
	return parse_u64(s, 10, 0, UINT32_MAX - 1, out);
}

int opt_resolve_accounts(struct dsvc_options *o, char *err, size_t errlen)
{
	char buf[4096];
	uint64_t v;
	int ret;

	if (o->user) {
		struct passwd pw, *pwp = NULL;

		ret = getpwnam_r(o->user, &pw, buf, sizeof(buf), &pwp);
		if (!pwp)
			return dlog_errf(ret ? -ret : -ENOENT, err, errlen, "--user: no user '%s'%s%s",
					 o->user, ret ? ": " : "", ret ? strerror(ret) : "");
		o->run_uid = pw.pw_uid;
		o->run_gid = pw.pw_gid;
	}
	if (o->socket_group) {
		struct group gr, *grp = NULL;

		if (parse_id(o->socket_group, &v) == 0) {
			o->socket_gid = (gid_t)v;
			return 0;
		}
		ret = getgrnam_r(o->socket_group, &gr, buf, sizeof(buf), &grp);
		if (!grp)
			return dlog_errf(ret ? -ret : -ENOENT, err, errlen,
					 "--socket-group: no group '%s'%s%s", o->socket_group,
					 ret ? ": " : "", ret ? strerror(ret) : "");
		o->socket_gid = gr.gr_gid;
	}
	return 0;
}
