/* SPDX-License-Identifier: MIT */
/*
 * keep_priv.h - sessions that outlive the process (docs/restart.md).  Do
 * not include from outside dmasvc/ (tests and fuzzers may).
 *
 * The keep set of one resumable session (iommufd: be_ops.space_keep set,
 * --keep-sessions on) is a few named fds:
 *   dmasvc-s<SID>-state    a memfd holding the session record (below)
 *   dmasvc-s<SID>-iommufd  the space's own iommufd context
 *   dmasvc-s<SID>-dev<ID>  the backend's dup of device ID's VFIO cdev
 * The service pushes each into systemd's fd store when it comes to exist
 * and removes it when it goes (sd_pid_notify_with_fds; nothing without
 * NOTIFY_SOCKET), and hands all of them to the next instance at a planned
 * upgrade (exec with LISTEN_FDS).  A new instance adopts each complete set
 * as an orphan session (keep_adopt).
 *
 * The record (little-endian, packed, byte offsets fixed; written whole on
 * the loop at every control change, never on the data path):
 *   header  66 bytes: magic "DMASVCK1", u32 version (1), u32 size (the
 *           whole record), u32 session_id, u32 uid, u32 gid, u32 ioas_id,
 *           u8 token[16], u64 client_tag, u16 minor, u32 nr_devices,
 *           u32 nr_regions
 *   device  12 bytes each: u32 id, u32 iommufd_devid, u32 flags
 *           (KEEP_DEV_CFG: an operator --device)
 *   region  64 bytes each: u32 id, u32 flags, u64 iova, size, granule,
 *           mem_offset, mem_dev, mem_ino (st_dev/st_ino of the memory's
 *           fd), mem_size
 * The granule state is not in it: the kernel is the truth, and adoption
 * re-learns it with be_ops.audit.
 */
#ifndef DMASVC_KEEP_PRIV_H
#define DMASVC_KEEP_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "session_priv.h"

#define KEEP_MAGIC "DMASVCK1"
#define KEEP_VERSION 1u
#define KEEP_HDR_SIZE 66u
#define KEEP_DEV_SIZE 12u
#define KEEP_REGION_SIZE 64u
#define KEEP_MAX_DEVICES SESSION_MAX_DEVICES
#define KEEP_MAX_REGIONS SESSION_MAX_REGIONS
#define KEEP_MAX_SIZE (KEEP_HDR_SIZE + KEEP_MAX_DEVICES * KEEP_DEV_SIZE + \
		       KEEP_MAX_REGIONS * KEEP_REGION_SIZE)
#define KEEP_DEV_CFG (1u << 0)
#define KEEP_NAME_MAX 64 /* "dmasvc-s4294967295-dev16" and NUL fit */

static_assert(KEEP_MAX_DEVICES <= BE_KEPT_MAX_DEVICES, "a kept space holds every device");

struct keep_device {
	uint32_t id;            /* the session's device id (slot + 1) */
	uint32_t iommufd_devid; /* the kernel's device id in the space's context */
	uint32_t flags;         /* KEEP_DEV_* */
};

struct keep_region {
	uint32_t id, flags;     /* the region's id and DMASVC_REGION_* */
	uint64_t iova, size, granule, mem_offset;
	uint64_t mem_dev, mem_ino, mem_size;
};

/* A decoded record.  regions[] is sized KEEP_MAX_REGIONS (allocate it). */
struct keep_record {
	uint32_t session_id, uid, gid, ioas_id;
	uint8_t token[DMASVC_TOKEN_LEN];
	uint64_t client_tag;
	uint16_t minor;
	uint32_t nr_devices, nr_regions;
	struct keep_device devices[KEEP_MAX_DEVICES];
	struct keep_region regions[KEEP_MAX_REGIONS];
};

/* keep_record_size: the encoded size of a record with these counts. */
size_t keep_record_size(uint32_t nr_devices, uint32_t nr_regions);

/*
 * keep_record_encode: @rec (counts within KEEP_MAX_*) into @buf of @len
 * bytes.  Returns the bytes written, or -ENOSPC when @len is too small,
 * -EINVAL when a count is over its maximum.
 */
long keep_record_encode(const struct keep_record *rec, void *buf, size_t len);

/*
 * keep_record_decode: a record from @len bytes at @buf, validated as
 * hostile input: magic, version, size (== what the counts need, <= @len),
 * session_id != 0, nr_devices <= KEEP_MAX_DEVICES, nr_regions <=
 * @max_regions (the session's cap, <= KEEP_MAX_REGIONS); device ids in
 * 1..KEEP_MAX_DEVICES, unique, iommufd devids non-zero and unique, flags
 * known; region ids non-zero, unique, slot in the table, flags known,
 * granule a power of two >= 4 KiB, iova/size/mem_offset granule-aligned,
 * size > 0, no wrap, within its memory, at most GRAN_MAX_GRANULES
 * granules, and no two regions overlapping in IOVA.  Returns 0 and fills
 * *@rec, or -EINVAL/-E2BIG/-EBADMSG with a line naming the field and the
 * numbers in @err.
 */
int keep_record_decode(const void *buf, size_t len, uint32_t max_regions, struct keep_record *rec,
		       char *err, size_t errlen);

/*
 * keep_session_write: bring @s's keep set up to date: (re)write its record
 * into its memfd (created, with its iommufd fd, at the first call) and
 * push to / remove from the fd store the names that appeared / went
 * (devices attached or detached since the last call).  A no-op returning
 * 0 when --keep-sessions is off, the backend keeps nothing (type1, the
 * model), @s has no space yet, or it never had a region or a device.  On the loop, @s not busy.  Call it at
 * every control change (HELLO's token, REGION_ADD/REMOVE, DEVICE_ATTACH/
 * DETACH, a resume).  Returns 0 or -errno (logged here: a session that
 * cannot be kept is still served).
 */
int keep_session_write(struct dsvc *d, struct dsvc_session *s);

/*
 * keep_session_forget_names: remove every name of @s from the fd store and
 * close its memfd (@s is being torn down: nothing of it is to be kept).
 * Never fails; a no-op for a session that was never kept.
 */
void keep_session_forget_names(struct dsvc *d, struct dsvc_session *s);

/*
 * keep_session_release: at a stop or an exec that keeps sessions: close
 * @s's memfd and free its space with be_ops.space_forget (no unmap, no
 * detach: the kept copies hold the kernel objects), leaving @s for
 * session_destroy() with nothing to tear down.  Never fails.
 */
void keep_session_release(struct dsvc *d, struct dsvc_session *s);

/*
 * keep_fds: the fds of @s's keep set and their names, for an exec: at most
 * @max into @fds/@names (names of KEEP_NAME_MAX bytes each).  The fds stay
 * owned by the session and its space.  Returns the count (0 for a session
 * not kept), or -ENOSPC when @max is too small.
 */
int keep_fds(struct dsvc *d, struct dsvc_session *s, int *fds, char (*names)[KEEP_NAME_MAX],
	     unsigned int max);

/*
 * keep_adopt: at start, before serving: adopt the sessions in the named
 * fds @fds[0..@n) (@names from sd_listen_fds_with_names; only dmasvc-s*
 * names are looked at).  Ownership of every such fd moves here: adopted
 * or closed.  Each complete set (state + iommufd, devices as the record
 * says) becomes an orphan session (keep_priv.h: no socket, torn down at
 * now + --resume-grace-sec unless resumed); a bad record, a failed
 * space_adopt or an incomplete set is logged (one error line) and its fds
 * closed, an fd with an unknown name too.  d->next_session_id ends above
 * every adopted id.  Returns the number of sessions adopted.
 */
unsigned int keep_adopt(struct dsvc *d, const int *fds, char **names, unsigned int n);

/* keep_name_is_ours: whether @name is a keep-set name (dmasvc-s...). */
bool keep_name_is_ours(const char *name);

/*
 * keep_store_available: whether a service manager's fd store can hold the
 * keep set (NOTIFY_SOCKET set).  keep_store_fd / keep_store_remove: push
 * @fd under @name / remove @name; no-ops (0) without NOTIFY_SOCKET.
 * Return 0 or -errno.
 */
bool keep_store_available(void);
int keep_store_fd(int fd, const char *name);
int keep_store_remove(const char *name);

#endif /* DMASVC_KEEP_PRIV_H */
