/* SPDX-License-Identifier: MIT */
/*
 * svc-audit.h - the guest tests' checks of the service's state: one
 * region's AUDIT against what the test believes is populated (one bool per
 * granule), the daemon's pin counters from /proc, and copies of the
 * daemon's fds.
 */
#ifndef DMASVC_VM_SVC_AUDIT_H
#define DMASVC_VM_SVC_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dmasvc/dmasvc.h"

/*
 * svc_audit_check - QUERY AUDIT of the caller's region @region_id (described
 * by @d) and compare: every extent must be OK, granule-aligned and inside
 * the region, and the OK extents must cover exactly the granules with
 * @pop[i] set (@pop has d->size / d->granule entries, at most 65536).
 * Returns the number of extents (>= 0) when they agree; -1 with a reason in
 * @why when not; -errno when the query fails (reason in @why too).
 */
int svc_audit_check(struct dmasvc_client *c, int region_id, const struct dmasvc_region_desc *d,
		    const bool *pop, char *why, size_t whylen);

/*
 * svc_status_bytes - the kB field @key ("VmPin:", "VmLck:") of
 * /proc/@pid/status in bytes, or UINT64_MAX when it cannot be read.
 */
uint64_t svc_status_bytes(pid_t pid, const char *key);

/*
 * svc_foll_pin_pages - the FOLL_PIN pages held system-wide now, from the
 * kernel: /proc/vmstat nr_foll_pin_acquired - nr_foll_pin_released, or -1
 * when they cannot be read.  vmstat folds per-CPU deltas about once a
 * second: callers re-read.
 */
int64_t svc_foll_pin_pages(void);

/*
 * svc_steal_fd - a copy (pidfd_getfd(2)) of @daemon's @skip-th (from 0)
 * open fd whose /proc/PID/fd link reads @want, or -ENOENT / -errno.
 */
int svc_steal_fd(pid_t daemon, const char *want, int skip);

#endif /* DMASVC_VM_SVC_AUDIT_H */
