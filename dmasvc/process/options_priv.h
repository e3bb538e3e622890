/* SPDX-License-Identifier: MIT */
/*
 * options_priv.h - the daemon's command line, parsed into a plain struct.
 * Do not include from outside dmasvc/.
 *
 * Parsing is a pure function of argv (tests call it directly); choosing the
 * backend when no backend flag is given depends on whether /dev/iommu
 * exists, which the caller passes in.
 */
#ifndef DMASVC_OPTIONS_PRIV_H
#define DMASVC_OPTIONS_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <getopt.h>
#include <stdio.h>
#include <sys/types.h>

#include "log_priv.h"

#define OPT_MAX_ALLOW_UIDS 32
#define OPT_MAX_WORKERS 64
#define OPT_DEFAULT_WORKERS 2
#define OPT_DEFAULT_IOMMUFD "/dev/iommu"
#define OPT_MAX_DEVICES 8
#ifndef OPT_DEFAULT_CONFIG
#define OPT_DEFAULT_CONFIG "/etc/dmasvc/dmasvc.conf" /* meson passes sysconfdir's */
#endif

enum opt_backend {
	OPT_BACKEND_AUTO = 0, /* no flag: iommufd if /dev/iommu exists, else refuse */
	OPT_BACKEND_SOFT,     /* --soft-iommu: the software model */
	OPT_BACKEND_IOMMUFD,  /* --iommufd PATH */
	OPT_BACKEND_TYPE1,    /* --vfio-group PATH: VFIO type1 container + this group */
};

/*
 * Per-session caps (docs/security.md, "Per-session caps"): what one client
 * may cost the service, with defaults that fit a large VM.  Each is a long
 * option, and --uid-caps UID:NAME=N,... overrides any of them for the
 * sessions of one peer uid (SO_PEERCRED at admission).
 *   registered  bytes of memory registered (each mapped whole into the
 *               service's address space, which every session shares)
 *   populated   bytes mapped (pinned), summed over regions: a memory seen
 *               through several regions counts once per region
 *   mappings    areas of the space's budget, reserved at REGION_ADD (each
 *               iommufd area is a kernel allocation, made even before a
 *               device is attached); 0 = the backend's own limit
 *   regions     regions registered
 *   inflight    SQ entries summed over the session's rings: SQEs it can
 *               have accepted and not completed
 *   sessions    sessions of one peer uid at once (the only cap counted per
 *               uid, not per session): no uid can take the whole session
 *               table and lock the others out
 */
#define OPT_DEFAULT_REGISTERED_GIB 4096ull              /* 4 TiB */
#define OPT_DEFAULT_POPULATED_MIB (4096ull << 10)        /* 4 TiB */
#define OPT_IOMMUFD_DEFAULT_AREAS (1ull << 22)  /* 8 TiB at 2 MiB, 16 GiB at 4 KiB */
#define OPT_DEFAULT_REGIONS 1024u
#define OPT_DEFAULT_RESUME_GRACE 60u
#define OPT_MAX_RESUME_GRACE 86400u
#define OPT_MAX_POLL_US 1000000u /* --poll-us: at most 1 s of polling after an event */
#define OPT_PATH_MAX 4096
#define OPT_MAX_REGIONS 4096u          /* the session's region table (id slot bits) */
#define OPT_DEFAULT_INFLIGHT 16384u
#define OPT_MAX_INFLIGHT (64u * 4096u) /* DMASVC_MAX_RINGS rings of the largest SQ */
#define OPT_DEFAULT_SESSIONS 128u      /* half the service's table (DSVC_MAX_SESSIONS) */
#define OPT_MAX_SESSIONS 256u          /* = DSVC_MAX_SESSIONS (service_priv.h) */
#define OPT_MAX_UID_CAPS 32

enum opt_cap {
	OPT_CAP_REGISTERED = 0, /* --max-registered-gib */
	OPT_CAP_POPULATED,      /* --max-populated-mib */
	OPT_CAP_MAPPINGS,       /* --max-mappings */
	OPT_CAP_REGIONS,        /* --max-regions */
	OPT_CAP_INFLIGHT,       /* --max-inflight */
	OPT_CAP_SESSIONS,       /* --max-sessions (per uid) */
	OPT_CAP_NR
};

/* What a cap is called and counts: for parsing, --help and refusals. */
struct opt_cap_info {
	const char *name;  /* the long option without "--", also the --uid-caps key */
	const char *unit;  /* what the option's number counts ("GiB", "regions", ...) */
	const char *what;  /* what the session's use is counted in ("bytes", ...) */
	unsigned int shift; /* option value << shift = the cap in @what */
	uint64_t min, max; /* the option value's range */
};

/* opt_cap_info: the description of cap @c (< OPT_CAP_NR). */
const struct opt_cap_info *opt_cap_info(enum opt_cap c);

/* One --uid-caps entry: the caps in @set (bit 1 << enum opt_cap) replace the defaults. */
struct opt_uid_caps {
	uid_t uid;
	unsigned int set;
	uint64_t cap[OPT_CAP_NR]; /* in the units of opt_cap_info().what */
};

struct dsvc_options {
	enum opt_backend backend;
	const char *iommufd_path;    /* --iommufd PATH (points into argv) */
	const char *group_path;      /* --vfio-group PATH (points into argv) */
	/* --device SPEC (repeatable): operator-configured devices, attached to
	 * the space of the first session that registers a region while no
	 * session holds them.  iommufd: a cdev path; type1: a PCI address of
	 * a device in the group.  Point into argv. */
	unsigned int nr_devices;
	const char *devices[OPT_MAX_DEVICES];
	const char *socket_path;     /* --socket; default DMASVC_DEFAULT_SOCKET */
	unsigned int socket_mode;    /* --socket-mode OCTAL; default 0600 */
	unsigned int workers;        /* --workers N, 1..OPT_MAX_WORKERS */
	uint64_t max_mappings;       /* --max-mappings N; 0 = backend default
					(iommufd: OPT_IOMMUFD_DEFAULT_AREAS) */
	uint64_t max_registered;     /* --max-registered-gib N, in bytes; default
					OPT_DEFAULT_REGISTERED_GIB GiB */
	uint64_t max_populated;      /* --max-populated-mib N, in bytes */
	uint32_t max_regions;        /* --max-regions N */
	uint32_t max_inflight;       /* --max-inflight N */
	uint32_t max_sessions;       /* --max-sessions N, per peer uid */
	/* --uid-caps UID:NAME=N[,NAME=N...] (repeatable; one entry per uid,
	 * a repeated uid adds to or replaces its entry's caps) */
	unsigned int nr_uid_caps;
	struct opt_uid_caps uid_caps[OPT_MAX_UID_CAPS];
	unsigned int stats_interval; /* --stats-interval SEC, 1..3600; default 10 */
	unsigned int poll_us;        /* --poll-us N, 0..OPT_MAX_POLL_US: the loop polls the SQs
					this long after the last event before it sleeps
					(transport/evloop.c); 0 (default): the adaptive spin only */
	enum dlog_level log_level;   /* --log-level; default info */
	bool keep_sessions;          /* --keep-sessions: iommufd sessions outlive the process
					(session/keep_priv.h, docs/restart.md) */
	unsigned int resume_grace_sec; /* --resume-grace-sec N, 1..OPT_MAX_RESUME_GRACE; default 60 */
	const char *upgrade_exec;    /* --upgrade-exec PATH (absolute; points into argv or the
					config); NULL: main() uses its own binary's path */
	bool allow_fault_in;         /* --allow-fault-in: pin pages that are not in memory
					(the service faults them in); default false: such a
					populate is refused (datapath/burst_run.c) */
	int iommufd_rlimit_mode;     /* --iommufd-rlimit-mode: IOMMU_OPTION_RLIMIT_MODE, 0 user,
					1 process; -1 (default) the kernel's */
	int iommufd_huge_pages;      /* --iommufd-huge-pages: IOMMU_OPTION_HUGE_PAGES, 0 or 1;
					-1 (default) the kernel's */
	bool areas_run;              /* --areas run: be_config.cut_areas, the planner maps
					runs (datapath/burst_run.c); default false: granule */
	unsigned int nr_allow_uids;  /* --allow-uid UID (repeatable); 0 and no gids = default list */
	uid_t allow_uids[OPT_MAX_ALLOW_UIDS];
	unsigned int nr_allow_gids;  /* --allow-gid GID (repeatable): a peer's SO_PEERCRED gid */
	gid_t allow_gids[OPT_MAX_ALLOW_UIDS];
	const char *config_path;     /* --config PATH (read before parsing; see config_priv.h) */
	const char *user;            /* --user NAME: run as NAME after the backend and socket are open */
	const char *socket_group;    /* --socket-group GROUP: name or number */
	/* Filled by opt_resolve_accounts() from user/socket_group; -1 = none. */
	uid_t run_uid;
	gid_t run_gid;
	gid_t socket_gid;
};

enum opt_result {
	OPT_RUN = 0,  /* options valid: start the service */
	OPT_EXIT = 1, /* --help or --version printed: exit 0 */
};

/*
 * opt_parse: parse @argv into *@o (defaults first).  --help and --version
 * print to @out.  Returns OPT_RUN, OPT_EXIT, or -EINVAL with a one-line
 * reason in @err (the caller prints it and exits 2).  Pointers in *@o point
 * into @argv, which must outlive it.
 */
int opt_parse(int argc, char **argv, struct dsvc_options *o, FILE *out, char *err, size_t errlen);

/*
 * opt_parse_layered: opt_parse() of @argv whose elements 1..@nfile came from
 * the configuration file (one "--name=value" or "--flag" token each) and the
 * rest from the command line.  The command line overrides the file: a later
 * value replaces an earlier one, a backend flag on the command line replaces
 * the file's backend, and the first command-line --device, --allow-uid,
 * --allow-gid or --uid-caps empties the file's list of that option.
 */
int opt_parse_layered(int argc, char **argv, int nfile, struct dsvc_options *o, FILE *out,
		      char *err, size_t errlen);

/*
 * opt_long_options: the option table (getopt_long's, NULL-terminated); the
 * configuration file accepts each long name as a key.
 */
const struct option *opt_long_options(void);

/*
 * opt_resolve_accounts: look up --user (uid and primary gid) and
 * --socket-group (a number, or a group name) into run_uid/run_gid and
 * socket_gid.  Returns 0, or -ENOENT (or the lookup's -errno) with the
 * name in @err (exit 2).
 */
int opt_resolve_accounts(struct dsvc_options *o, char *err, size_t errlen);

/*
 * opt_resolve_backend: turn OPT_BACKEND_AUTO into a concrete choice given
 * whether /dev/iommu exists.  Returns 0, or -ENODEV with a message naming
 * --soft-iommu in @err (exit 2).
 */
int opt_resolve_backend(struct dsvc_options *o, bool have_dev_iommu, char *err, size_t errlen);

/*
 * opt_backend_max_areas: the area budget to open the backend with:
 * --max-mappings when given, else finite for iommufd
 * (OPT_IOMMUFD_DEFAULT_AREAS: each area is a kernel allocation, made even
 * before a device is attached), else 0 (the backend's own limit).
 */
uint64_t opt_backend_max_areas(const struct dsvc_options *o);

/*
 * opt_default_max_areas: a session's area cap unless --uid-caps sets its
 * max-mappings: --max-mappings, else OPT_IOMMUFD_DEFAULT_AREAS for iommufd,
 * else 0 (the backend's own limit).  opt_backend_max_areas() is this, or
 * the largest --uid-caps max-mappings when that is larger (the backend
 * must allow the most any session may reserve).
 */
uint64_t opt_default_max_areas(const struct dsvc_options *o);

/*
 * opt_caps_for_uid: the per-session caps of a session of peer @uid, in the
 * units of opt_cap_info().what (mappings: 0 = the backend's own limit):
 * the defaults, replaced by @uid's --uid-caps entry where it sets one.
 * Returns the set of caps @uid's entry set (bit 1 << enum opt_cap).
 */
unsigned int opt_caps_for_uid(const struct dsvc_options *o, uid_t uid, uint64_t cap[OPT_CAP_NR]);

/* opt_usage: the --help text. */
void opt_usage(FILE *out);

#endif /* DMASVC_OPTIONS_PRIV_H */
