/* SPDX-License-Identifier: MIT */
/*
 * privdrop_priv.h - run as an unprivileged user after start-up (--user).
 * Do not include from outside dmasvc/.
 *
 * What the service keeps, and why (docs/operating.md):
 *   CAP_IPC_LOCK  pinning guest memory beyond RLIMIT_MEMLOCK: the software
 *                 model mlock()s, iommufd and type1 charge pins to the
 *                 user's locked_vm unless the process has it.
 * Nothing else: /dev/iommu and the VFIO group are opened before the drop;
 * devices opened later (--device cdevs, at the first session) need file
 * permissions for the user (a udev rule, and the unit's DeviceAllow=), not
 * a capability; clients pass their own device fds.
 */
#ifndef DMASVC_PRIVDROP_PRIV_H
#define DMASVC_PRIVDROP_PRIV_H

#include <stddef.h>
#include <sys/types.h>

/*
 * priv_drop: become @uid/@gid with @uid's supplementary groups, keeping only
 * CAP_IPC_LOCK (effective and permitted; the bounding set is emptied, so
 * nothing can be regained), through libcap-ng.  Call it before any thread exists:
 * capabilities are per thread and threads started later inherit the
 * caller's.  Returns 0, or -errno with the reason in @err (-EPERM: not
 * started as root); on error the caller exits.
 */
int priv_drop(uid_t uid, gid_t gid, char *err, size_t errlen);

#endif /* DMASVC_PRIVDROP_PRIV_H */
