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
#include <stdio.h>
#include <sys/types.h>

#include "log_priv.h"

#define OPT_MAX_ALLOW_UIDS 32
#define OPT_MAX_WORKERS 64
#define OPT_DEFAULT_WORKERS 2
#define OPT_DEFAULT_IOMMUFD "/dev/iommu"
#define OPT_MAX_DEVICES 8

enum opt_backend {
	OPT_BACKEND_AUTO = 0, /* no flag: iommufd if /dev/iommu exists, else refuse */
	OPT_BACKEND_SOFT,     /* --soft-iommu: the software model */
	OPT_BACKEND_IOMMUFD,  /* --iommufd PATH */
	OPT_BACKEND_TYPE1,    /* --vfio-group PATH: VFIO type1 container + this group */
};

/*
 * Per-session defaults that fit a large VM and bound what one client costs:
 * memory registered (mapped into the service's address space, which every
 * session shares) and iommufd areas (each a kernel allocation, made even
 * before a device is attached).
 */
#define OPT_DEFAULT_REGISTERED_GIB 4096ull      /* 4 TiB */
#define OPT_IOMMUFD_DEFAULT_AREAS (1ull << 22)  /* 8 TiB at 2 MiB, 16 GiB at 4 KiB */

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
	unsigned int stats_interval; /* --stats-interval SEC, 1..3600; default 10 */
	enum dlog_level log_level;   /* --log-level; default info */
	unsigned int nr_allow_uids;  /* --allow-uid UID (repeatable); 0 = default list */
	uid_t allow_uids[OPT_MAX_ALLOW_UIDS];
};

enum opt_result {
	OPT_RUN = 0,  /* options valid: start the service */
	OPT_EXIT = 1, /* --help or --version printed: exit 0 */
};

/*
 * opt_parse: parse @argv into *@o (defaults first).  --help and --version
 * print to @out.  Returns OPT_RUN, OPT_EXIT, or -EINVAL with a one-line
 * reason in @err (the caller prints it and exits 2).
 */
int opt_parse(int argc, char **argv, struct dsvc_options *o, FILE *out, char *err, size_t errlen);

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

/* opt_usage: the --help text. */
void opt_usage(FILE *out);

#endif /* DMASVC_OPTIONS_PRIV_H */
