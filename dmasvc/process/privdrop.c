/* SPDX-License-Identifier: MIT */
/*
 * privdrop.c - the --user privilege drop, with libcap-ng (see
 * privdrop_priv.h for what is kept and why).
 */
#include <cap-ng.h>
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <unistd.h>

#include "log_priv.h"
#include "privdrop_priv.h"

int priv_drop(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	int ret;

	if (geteuid() != 0)
		return dlog_errf(-EPERM, err, errlen, "--user needs the service to start as root (euid is %u)",
				 (unsigned)geteuid());
	capng_clear(CAPNG_SELECT_BOTH);
	if (capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED, CAP_IPC_LOCK))
		return dlog_errf(-EINVAL, err, errlen, "libcap-ng: cannot select CAP_IPC_LOCK");
	/* setgid, initgroups(uid's name), setuid keeping the selected caps, apply them, and
	 * empty the bounding set (nothing can be regained, not even by exec) */
	ret = capng_change_id((int)uid, (int)gid, CAPNG_INIT_SUPP_GRP | CAPNG_CLEAR_BOUNDING);
	if (ret)
		return dlog_errf(-EPERM, err, errlen,
				 "libcap-ng: cannot change to uid %u gid %u keeping CAP_IPC_LOCK (capng_change_id %d)",
				 (unsigned)uid, (unsigned)gid, ret);
	/* check what the kernel says, not what we asked for */
	capng_clear(CAPNG_SELECT_BOTH);
	capng_get_caps_process();
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
	    capng_have_capability(CAPNG_EFFECTIVE, CAP_SETUID) ||
	    capng_have_capability(CAPNG_EFFECTIVE, CAP_SYS_ADMIN) ||
	    !capng_have_capability(CAPNG_EFFECTIVE, CAP_IPC_LOCK))
		return dlog_errf(-EPERM, err, errlen, "privilege drop to uid %u gid %u did not take effect",
				 (unsigned)uid, (unsigned)gid);
	return 0;
}
