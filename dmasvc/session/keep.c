// SPDX-License-Identifier: MIT
/*
 * keep.c - sessions that outlive the process (keep_priv.h, docs/restart.md):
 * the session record, the per-session state memfd, systemd's fd store, and
 * the adoption of a previous instance's sessions as orphans.
 *
 * Vocabulary: the keep set of a session is its named fds (state, iommufd,
 * devices); a group is the fds of one session id found at start; pushed
 * (s->keep_pushed) is which names this instance put into the fd store.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "dmasvc/granule.h"

#include "keep_priv.h"

#define PUSHED_BASE (1u << 0)        /* state + iommufd */
#define PUSHED_DEV(slot) (1u << (1 + (slot)))

static_assert(1 + SESSION_MAX_DEVICES <= 32, "keep_pushed bits");

/* ---- little-endian packing ------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

size_t keep_record_size(uint32_t nr_devices, uint32_t nr_regions)
{
	return KEEP_HDR_SIZE + (size_t)nr_devices * KEEP_DEV_SIZE +
	       (size_t)nr_regions * KEEP_REGION_SIZE;
}

long keep_record_encode(const struct keep_record *rec, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t size;

	if (rec->nr_devices > KEEP_MAX_DEVICES || rec->nr_regions > KEEP_MAX_REGIONS)
		return -EINVAL;
	size = keep_record_size(rec->nr_devices, rec->nr_regions);
	if (len < size)
		return -ENOSPC;
	memcpy(p, KEEP_MAGIC, 8);
	put32(p + 8, KEEP_VERSION);
	put32(p + 12, (uint32_t)size);
	put32(p + 16, rec->session_id);
	put32(p + 20, rec->uid);
	put32(p + 24, rec->gid);
	put32(p + 28, rec->ioas_id);
	memcpy(p + 32, rec->token, DMASVC_TOKEN_LEN);
	put64(p + 48, rec->client_tag);
	put16(p + 56, rec->minor);
	put32(p + 58, rec->nr_devices);
	put32(p + 62, rec->nr_regions);
	p += KEEP_HDR_SIZE;
	for (uint32_t i = 0; i < rec->nr_devices; i++, p += KEEP_DEV_SIZE) {
		put32(p, rec->devices[i].id);
		put32(p + 4, rec->devices[i].iommufd_devid);
		put32(p + 8, rec->devices[i].flags);
	}
	for (uint32_t i = 0; i < rec->nr_regions; i++, p += KEEP_REGION_SIZE) {
		const struct keep_region *r = &rec->regions[i];

		put32(p, r->id);
		put32(p + 4, r->flags);
		put64(p + 8, r->iova);
		put64(p + 16, r->size);
		put64(p + 24, r->granule);
		put64(p + 32, r->mem_offset);
		put64(p + 40, r->mem_dev);
		put64(p + 48, r->mem_ino);
		put64(p + 56, r->mem_size);
	}
	return (long)size;
}

/* One region's geometry; returns 0 or -EINVAL with a reason. */
static int region_check(const struct keep_region *r, char *err, size_t errlen)
{
	uint64_t g = r->granule, end;

	if (!r->id || (r->id & ((1u << ID_SLOT_BITS) - 1)) >= KEEP_MAX_REGIONS)
		return dlog_errf(-EINVAL, err, errlen, "region id 0x%x is not a valid id", r->id);
	if (r->flags & ~(uint32_t)DMASVC_REGION_READONLY)
		return dlog_errf(-EINVAL, err, errlen, "region %u: unknown flags 0x%x", r->id, r->flags);
	if (g < GRAN_MIN_GRANULE || (g & (g - 1)))
		return dlog_errf(-EINVAL, err, errlen, "region %u: granule 0x%" PRIx64
				 " is not a power of two >= 4 KiB", r->id, g);
	if (!r->size || ((r->size | r->iova | r->mem_offset) & (g - 1)))
		return dlog_errf(-EINVAL, err, errlen, "region %u: size 0x%" PRIx64 ", iova 0x%" PRIx64
				 ", mem_offset 0x%" PRIx64 " not whole granules of 0x%" PRIx64,
				 r->id, r->size, r->iova, r->mem_offset, g);
	if (__builtin_add_overflow(r->iova, r->size - 1, &end))
		return dlog_errf(-EINVAL, err, errlen, "region %u: iova 0x%" PRIx64 " + 0x%" PRIx64
				 " wraps", r->id, r->iova, r->size);
	if (__builtin_add_overflow(r->mem_offset, r->size, &end) || end > r->mem_size)
		return dlog_errf(-EINVAL, err, errlen, "region %u: [0x%" PRIx64 ", +0x%" PRIx64
				 ") outside its memory of 0x%" PRIx64 " bytes", r->id, r->mem_offset,
				 r->size, r->mem_size);
	if (r->size / g > GRAN_MAX_GRANULES)
		return dlog_errf(-EINVAL, err, errlen, "region %u: %" PRIu64 " granules, more than %llu",
				 r->id, r->size / g, GRAN_MAX_GRANULES);
	return 0;
}

static int cmp_region_iova(const void *a, const void *b)
{
	const struct keep_region *x = *(const struct keep_region *const *)a;
	const struct keep_region *y = *(const struct keep_region *const *)b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/* No two regions share an id, a table slot or an IOVA byte. */
static int regions_disjoint(const struct keep_record *rec, char *err, size_t errlen)
{
	const struct keep_region **by = malloc(sizeof(*by) * (rec->nr_regions ? rec->nr_regions : 1));
	uint8_t *slot_used = calloc(KEEP_MAX_REGIONS, 1);
	int ret = 0;

	if (!by || !slot_used) {
		ret = dlog_errf(-ENOMEM, err, errlen, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < rec->nr_regions; i++) {
		unsigned int slot = rec->regions[i].id & ((1u << ID_SLOT_BITS) - 1);

		if (slot_used[slot]) {
			ret = dlog_errf(-EINVAL, err, errlen, "region id 0x%x: its slot %u is used twice",
					rec->regions[i].id, slot);
			goto out;
		}
		slot_used[slot] = 1;
		by[i] = &rec->regions[i];
	}
	qsort(by, rec->nr_regions, sizeof(*by), cmp_region_iova);
	for (uint32_t i = 1; i < rec->nr_regions; i++) {
		if (by[i]->iova <= by[i - 1]->iova + (by[i - 1]->size - 1)) {
			ret = dlog_errf(-EINVAL, err, errlen, "regions %u and %u overlap at iova 0x%" PRIx64,
					by[i - 1]->id, by[i]->id, by[i]->iova);
			goto out;
		}
	}
out:
	free(by);
	free(slot_used);
	return ret;
}

int keep_record_decode(const void *buf, size_t len, uint32_t max_regions, struct keep_record *rec,
		       char *err, size_t errlen)
{
	const uint8_t *p = buf;
	uint32_t version, size, used_ids = 0;
	int ret;

	if (max_regions > KEEP_MAX_REGIONS)
		max_regions = KEEP_MAX_REGIONS;
	if (len < KEEP_HDR_SIZE)
		return dlog_errf(-EBADMSG, err, errlen, "record of %zu bytes, the header needs %u", len,
				 KEEP_HDR_SIZE);
	if (memcmp(p, KEEP_MAGIC, 8))
		return dlog_errf(-EBADMSG, err, errlen, "record has a bad magic");
	version = get32(p + 8);
	if (version != KEEP_VERSION)
		return dlog_errf(-EINVAL, err, errlen, "record version %u, this build reads %u", version,
				 KEEP_VERSION);
	size = get32(p + 12);
	memset(rec, 0, offsetof(struct keep_record, regions));
	rec->session_id = get32(p + 16);
	rec->uid = get32(p + 20);
	rec->gid = get32(p + 24);
	rec->ioas_id = get32(p + 28);
	memcpy(rec->token, p + 32, DMASVC_TOKEN_LEN);
	rec->client_tag = get64(p + 48);
	rec->minor = get16(p + 56);
	rec->nr_devices = get32(p + 58);
	rec->nr_regions = get32(p + 62);
	if (!rec->session_id)
		return dlog_errf(-EINVAL, err, errlen, "record of session id 0");
	if (rec->nr_devices > KEEP_MAX_DEVICES)
		return dlog_errf(-E2BIG, err, errlen, "record has %u devices, the cap is %u",
				 rec->nr_devices, KEEP_MAX_DEVICES);
	if (rec->nr_regions > max_regions)
		return dlog_errf(-E2BIG, err, errlen, "record has %u regions, the cap is %u",
				 rec->nr_regions, max_regions);
	if (size != keep_record_size(rec->nr_devices, rec->nr_regions) || size > len)
		return dlog_errf(-EBADMSG, err, errlen,
				 "record size %u: %u devices and %u regions need %zu, %zu bytes present",
				 size, rec->nr_devices, rec->nr_regions,
				 keep_record_size(rec->nr_devices, rec->nr_regions), len);
	p += KEEP_HDR_SIZE;
	for (uint32_t i = 0; i < rec->nr_devices; i++, p += KEEP_DEV_SIZE) {
		struct keep_device *dv = &rec->devices[i];

		dv->id = get32(p);
		dv->iommufd_devid = get32(p + 4);
		dv->flags = get32(p + 8);
		if (dv->id < 1 || dv->id > KEEP_MAX_DEVICES || (used_ids & (1u << dv->id)))
			return dlog_errf(-EINVAL, err, errlen, "device id %u is out of 1..%u or repeated",
					 dv->id, KEEP_MAX_DEVICES);
		used_ids |= 1u << dv->id;
		if (dv->flags & ~KEEP_DEV_CFG)
			return dlog_errf(-EINVAL, err, errlen, "device %u: unknown flags 0x%x", dv->id,
					 dv->flags);
		if (!dv->iommufd_devid)
			return dlog_errf(-EINVAL, err, errlen, "device %u: iommufd device id 0", dv->id);
		for (uint32_t j = 0; j < i; j++)
			if (rec->devices[j].iommufd_devid == dv->iommufd_devid)
				return dlog_errf(-EINVAL, err, errlen,
						 "devices %u and %u share iommufd device id %u",
						 rec->devices[j].id, dv->id, dv->iommufd_devid);
	}
	for (uint32_t i = 0; i < rec->nr_regions; i++, p += KEEP_REGION_SIZE) {
		struct keep_region *r = &rec->regions[i];

		r->id = get32(p);
		r->flags = get32(p + 4);
		r->iova = get64(p + 8);
		r->size = get64(p + 16);
		r->granule = get64(p + 24);
		r->mem_offset = get64(p + 32);
		r->mem_dev = get64(p + 40);
		r->mem_ino = get64(p + 48);
		r->mem_size = get64(p + 56);
		ret = region_check(r, err, errlen);
		if (ret)
			return ret;
	}
	return regions_disjoint(rec, err, errlen);
}

/* ---- names and the fd store ------------------------------------------ */

static void name_state(char *buf, uint32_t sid)
{
	snprintf(buf, KEEP_NAME_MAX, "dmasvc-s%" PRIu32 "-state", sid);
}

static void name_iommufd(char *buf, uint32_t sid)
{
	snprintf(buf, KEEP_NAME_MAX, "dmasvc-s%" PRIu32 "-iommufd", sid);
}

static void name_dev(char *buf, uint32_t sid, uint32_t id)
{
	snprintf(buf, KEEP_NAME_MAX, "dmasvc-s%" PRIu32 "-dev%" PRIu32, sid, id);
}

bool keep_name_is_ours(const char *name)
{
	return name && !strncmp(name, "dmasvc-s", 8);
}

bool keep_store_available(void)
{
	const char *e = getenv("NOTIFY_SOCKET");

	return e && *e;
}

int keep_store_fd(int fd, const char *name)
{
	char msg[KEEP_NAME_MAX + 32];
	int ret;

	if (!keep_store_available())
		return 0;
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	ret = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
	return ret < 0 ? ret : 0;
}

int keep_store_remove(const char *name)
{
	char msg[KEEP_NAME_MAX + 32];
	int ret;

	if (!keep_store_available())
		return 0;
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	ret = sd_pid_notify(0, 0, msg);
	return ret < 0 ? ret : 0;
}

/* ---- the live side ---------------------------------------------------- */

/*
 * Whether @s is to be kept at all (see keep_session_write): from its first
 * region or device on (a query-only client such as dmasvcctl never puts
 * anything into the store; a session with nothing has nothing to resume).
 */
static bool keepable(const struct dsvc *d, const struct dsvc_session *s)
{
	return d->opt->keep_sessions && d->ops->space_keep && s->space && !s->closing &&
	       (s->nr_regions || s->nr_devices || s->keep_fd >= 0);
}

/* The record of @s now; @kept from space_keep.  Returns 0. */
static int record_fill(struct dsvc *d, struct dsvc_session *s, const struct be_kept_space *kept,
		       struct keep_record *rec)
{
	memset(rec, 0, offsetof(struct keep_record, regions));
	rec->session_id = s->id;
	rec->uid = s->cred.uid;
	rec->gid = s->cred.gid;
	rec->ioas_id = kept->ioas_id;
	memcpy(rec->token, s->token, DMASVC_TOKEN_LEN);
	rec->client_tag = s->client_tag;
	rec->minor = s->minor;
	for (unsigned int i = 0; i < SESSION_MAX_DEVICES; i++) {
		if (!s->device_used[i])
			continue;
		rec->devices[rec->nr_devices++] = (struct keep_device){
			.id = i + 1,
			.iommufd_devid = s->devices[i],
			.flags = s->device_cfg[i] ? KEEP_DEV_CFG : 0,
		};
	}
	for (unsigned int i = 0; i < s->region_hi; i++) {
		const struct dsvc_region *r = s->regions[i];
		struct keep_region *k;

		if (!r)
			continue;
		k = &rec->regions[rec->nr_regions++];
		/* keep_mem_*: set at REGION_ADD (one fstat), or from the record */
		*k = (struct keep_region){
			.id = r->id, .flags = r->flags,
			.iova = gran_region_iova(r->gr), .size = gran_region_size(r->gr),
			.granule = gran_region_granule(r->gr),
			.mem_offset = gran_region_desc(r->gr)->mem_offset,
			.mem_dev = r->keep_mem_dev, .mem_ino = r->keep_mem_ino,
			.mem_size = r->keep_mem_size,
		};
	}
	(void)d;
	return 0;
}

/* Find the backend's fd of device handle @devid in @kept, or -1. */
static int kept_dev_fd(const struct be_kept_space *kept, uint32_t devid)
{
	for (uint32_t i = 0; i < kept->nr_devs; i++)
		if (kept->devs[i].dev_id == devid)
			return kept->devs[i].fd;
	return -1;
}

int keep_session_write(struct dsvc *d, struct dsvc_session *s)
{
	struct be_kept_space kept;
	struct keep_record *rec;
	char name[KEEP_NAME_MAX];
	uint8_t *buf = NULL;
	long len;
	int ret;

	if (!keepable(d, s))
		return 0;
	ret = d->ops->space_keep(s->space, &kept);
	if (ret)
		goto out_log;
	rec = malloc(sizeof(*rec));
	if (!rec) {
		ret = -ENOMEM;
		goto out_log;
	}
	ret = record_fill(d, s, &kept, rec);
	if (!ret) {
		size_t cap = keep_record_size(rec->nr_devices, rec->nr_regions);

		buf = malloc(cap);
		len = buf ? keep_record_encode(rec, buf, cap) : -ENOMEM;
		ret = len < 0 ? (int)len : 0;
	}
	free(rec);
	if (ret)
		goto out_free;
	if (s->keep_fd < 0) {
		name_state(name, s->id);
		s->keep_fd = memfd_create(name, MFD_CLOEXEC);
		if (s->keep_fd < 0) {
			ret = -errno;
			goto out_free;
		}
	}
	if (pwrite(s->keep_fd, buf, (size_t)len, 0) != len || ftruncate(s->keep_fd, len) < 0) {
		ret = errno ? -errno : -EIO;
		goto out_free;
	}
	if (!(s->keep_pushed & PUSHED_BASE)) {
		name_state(name, s->id);
		ret = keep_store_fd(s->keep_fd, name);
		name_iommufd(name, s->id);
		if (!ret)
			ret = keep_store_fd(kept.fd, name);
		if (ret)
			goto out_free;
		s->keep_pushed |= PUSHED_BASE;
	}
	for (unsigned int i = 0; i < SESSION_MAX_DEVICES; i++) {
		bool pushed = s->keep_pushed & PUSHED_DEV(i);

		name_dev(name, s->id, i + 1);
		if (s->device_used[i] && !pushed) {
			int fd = kept_dev_fd(&kept, s->devices[i]);

			ret = fd < 0 ? -ENOENT : keep_store_fd(fd, name);
			if (ret)
				goto out_free;
			s->keep_pushed |= PUSHED_DEV(i);
		} else if (!s->device_used[i] && pushed) {
			keep_store_remove(name);
			s->keep_pushed &= ~PUSHED_DEV(i);
		}
	}
out_free:
	free(buf);
out_log:
	if (ret)
		dlog_err(d->log, s->id, ret, "keep: the session's record or fd store entry was not written;"
			 " it cannot be resumed after a restart");
	return ret;
}

void keep_session_forget_names(struct dsvc *d, struct dsvc_session *s)
{
	char name[KEEP_NAME_MAX];

	(void)d;
	if (s->keep_pushed & PUSHED_BASE) {
		name_state(name, s->id);
		keep_store_remove(name);
		name_iommufd(name, s->id);
		keep_store_remove(name);
	}
	for (unsigned int i = 0; i < SESSION_MAX_DEVICES; i++) {
		if (s->keep_pushed & PUSHED_DEV(i)) {
			name_dev(name, s->id, i + 1);
			keep_store_remove(name);
		}
	}
	s->keep_pushed = 0;
	if (s->keep_fd >= 0)
		close(s->keep_fd);
	s->keep_fd = -1;
}

void keep_session_release(struct dsvc *d, struct dsvc_session *s)
{
	if (s->keep_fd >= 0)
		close(s->keep_fd);
	s->keep_fd = -1;
	s->keep_pushed = 0; /* the store keeps them: not ours to remove any more */
	if (!s->space || !d->ops->space_forget)
		return;
	d->ops->space_forget(s->space);
	s->space = NULL;
	for (unsigned int i = 0; i < SESSION_MAX_DEVICES; i++)
		s->device_used[i] = false; /* held by the kept fds, not detached */
	for (unsigned int i = 0; i < SESSION_MAX_MEMORIES; i++)
		if (s->mems[i])
			mem_close(s->mems[i]);
	s->torn_down = true; /* session_destroy() only frees the structs */
}

int keep_fds(struct dsvc *d, struct dsvc_session *s, int *fds, char (*names)[KEEP_NAME_MAX],
	     unsigned int max)
{
	struct be_kept_space kept;
	unsigned int n = 0;
	int ret;

	if (s->keep_fd < 0 || !keepable(d, s))
		return 0;
	ret = d->ops->space_keep(s->space, &kept);
	if (ret)
		return ret;
	if (max < 2 + kept.nr_devs)
		return -ENOSPC;
	fds[n] = s->keep_fd;
	name_state(names[n++], s->id);
	fds[n] = kept.fd;
	name_iommufd(names[n++], s->id);
	for (unsigned int i = 0; i < SESSION_MAX_DEVICES; i++) {
		int fd;

		if (!s->device_used[i])
			continue;
		fd = kept_dev_fd(&kept, s->devices[i]);
		if (fd < 0)
			return -ENOENT;
		fds[n] = fd;
		name_dev(names[n++], s->id, i + 1);
	}
	return (int)n;
}

/* ---- adoption --------------------------------------------------------- */

/* The fds of one session id found at start. */
struct keep_group {
	uint32_t sid;
	int state, iommufd;
	int dev[KEEP_MAX_DEVICES + 1]; /* by device id; [0] unused */
};

/*
 * Discard group @g: its names leave the fd store (the store's copies would
 * otherwise hold its kernel objects for good) and its fds are closed.
 */
static void group_close(struct keep_group *g)
{
	char name[KEEP_NAME_MAX];

	if (keep_store_available()) {
		name_state(name, g->sid);
		keep_store_remove(name);
		name_iommufd(name, g->sid);
		keep_store_remove(name);
		for (unsigned int i = 1; i <= KEEP_MAX_DEVICES; i++) {
			name_dev(name, g->sid, i);
			keep_store_remove(name);
		}
	}
	if (g->state >= 0)
		close(g->state);
	if (g->iommufd >= 0)
		close(g->iommufd);
	for (unsigned int i = 0; i <= KEEP_MAX_DEVICES; i++)
		if (g->dev[i] >= 0)
			close(g->dev[i]);
	g->state = g->iommufd = -1;
	for (unsigned int i = 0; i <= KEEP_MAX_DEVICES; i++)
		g->dev[i] = -1;
}

/*
 * Parse "dmasvc-s<SID>-state|iommufd|dev<ID>": sets *@sid and returns 0
 * (state), 1 (iommufd), 1 + ID (a device), or -1 for anything else.
 */
static int name_parse(const char *name, uint32_t *sid)
{
	unsigned long long v, id;
	char *end;

	if (!keep_name_is_ours(name) || name[8] < '1' || name[8] > '9')
		return -1;
	errno = 0;
	v = strtoull(name + 8, &end, 10);
	if (errno || !v || v > UINT32_MAX || *end != '-')
		return -1;
	*sid = (uint32_t)v;
	if (!strcmp(end, "-state"))
		return 0;
	if (!strcmp(end, "-iommufd"))
		return 1;
	if (strncmp(end, "-dev", 4) || end[4] < '1' || end[4] > '9')
		return -1;
	id = strtoull(end + 4, &end, 10);
	if (*end || id > KEEP_MAX_DEVICES)
		return -1;
	return 1 + (int)id;
}

/* Read and decode @g's record into @rec.  Returns 0 or -errno + @err. */
static int group_record(struct keep_group *g, struct keep_record *rec, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf;
	ssize_t n;
	int ret;

	if (fstat(g->state, &st) < 0)
		return dlog_errf(-errno, err, errlen, "state fd: fstat failed");
	if (st.st_size < 0 || (uint64_t)st.st_size > KEEP_MAX_SIZE)
		return dlog_errf(-E2BIG, err, errlen, "state of %lld bytes, at most %zu",
				 (long long)st.st_size, (size_t)KEEP_MAX_SIZE);
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		return dlog_errf(-ENOMEM, err, errlen, "out of memory");
	n = pread(g->state, buf, (size_t)st.st_size, 0);
	if (n != st.st_size)
		ret = dlog_errf(n < 0 ? -errno : -EIO, err, errlen, "state: short read");
	else
		ret = keep_record_decode(buf, (size_t)n, KEEP_MAX_REGIONS, rec, err, errlen);
	free(buf);
	if (!ret && rec->session_id != g->sid)
		ret = dlog_errf(-EINVAL, err, errlen, "record names session %u", rec->session_id);
	return ret;
}

/* Audit sink: sum the bytes mapped (only for the log line). */
static uint64_t session_mapped(const struct dsvc_session *s)
{
	uint64_t b = 0;

	for (unsigned int i = 0; i < s->region_hi; i++)
		if (s->regions[i])
			b += gran_region_mapped_bytes(s->regions[i]->gr);
	return b;
}

/* Re-create region @k of @s without memory, its state from the kernel. */
static int region_adopt(struct dsvc *d, struct dsvc_session *s, const struct keep_region *k,
			char *err, size_t errlen)
{
	unsigned int slot = k->id & ((1u << ID_SLOT_BITS) - 1);
	struct gran_region_desc desc = {
		.mem_offset = k->mem_offset, .size = k->size, .iova = k->iova,
		.granule = k->granule, .mem_size = k->mem_size, .mem_vaddr = NULL, .mem_fd = -1,
		.prot = (k->flags & DMASVC_REGION_READONLY) ? BE_PROT_READ
							    : BE_PROT_READ | BE_PROT_WRITE,
		.flags = GRAN_DESC_NO_MEMORY,
	};
	struct dsvc_region *r = calloc(1, sizeof(*r));
	uint32_t gen = k->id >> ID_SLOT_BITS;
	int ret;

	if (!r)
		return dlog_errf(-ENOMEM, err, errlen, "out of memory");
	ret = gran_region_register(&desc, &s->budget, &r->gr, err, errlen);
	if (ret) {
		free(r);
		return ret;
	}
	ret = gran_region_learn(r->gr, d->ops, s->space);
	if (ret) {
		gran_region_unregister(r->gr);
		free(r);
		return dlog_errf(ret, err, errlen, "region %u: the kernel audit failed", k->id);
	}
	r->id = k->id;
	r->flags = k->flags;
	r->adopted = true;
	r->keep_mem_dev = k->mem_dev;
	r->keep_mem_ino = k->mem_ino;
	r->keep_mem_offset = k->mem_offset;
	r->keep_mem_size = k->mem_size;
	s->regions[slot] = r;
	s->nr_regions++;
	if (slot >= s->region_hi)
		s->region_hi = slot + 1;
	if (gen > s->region_gen) /* new ids never repeat an adopted one */
		s->region_gen = gen;
	return 0;
}

/*
 * Adopt group @g as an orphan session.  Returns 0; 1 when the record
 * holds nothing to resume (not adopted); or -errno with a reason in @err; the group's fds are consumed either way (on a failure
 * after the space was adopted, the space is destroyed: unmapped,
 * detached, as a torn-down session would be).
 */
static int group_adopt(struct dsvc *d, struct keep_group *g, struct keep_record *rec,
		       uint64_t *audit_ns, char *err, size_t errlen)
{
	struct be_kept_space kept = { .fd = -1 };
	struct dsvc_session *s = NULL;
	struct be_limits lim;
	uint64_t t0;
	int ret;

	ret = group_record(g, rec, err, errlen);
	if (ret)
		goto err_close;
	if (!rec->nr_regions && !rec->nr_devices) {
		/* A fresh session resumes nothing: the client starts afresh (ESTALE). */
		dlog_errf(0, err, errlen, "nothing to resume (no region, no device)");
		ret = 1;
		goto err_close;
	}
	for (uint32_t i = 0; i < rec->nr_devices; i++) {
		if (g->dev[rec->devices[i].id] < 0) {
			ret = dlog_errf(-ENOENT, err, errlen, "device %u of the record has no fd",
					rec->devices[i].id);
			goto err_close;
		}
	}
	for (unsigned int id = 1; id <= KEEP_MAX_DEVICES; id++) {
		bool known = false;

		for (uint32_t i = 0; i < rec->nr_devices; i++)
			known |= rec->devices[i].id == id;
		if (g->dev[id] >= 0 && !known) {
			dlog(d->log, DLOG_WARN, g->sid, "keep: fd of device %u is not in the record: closed",
			     id);
			close(g->dev[id]);
			g->dev[id] = -1;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		ret = dlog_errf(-ENOMEM, err, errlen, "out of memory");
		goto err_close;
	}
	s->id = g->sid;
	s->fd = -1;
	s->keep_fd = g->state;
	g->state = -1;
	s->cred = (struct ucred){ .pid = 0, .uid = rec->uid, .gid = rec->gid };
	s->cap_uid = opt_caps_for_uid(d->opt, rec->uid, s->cap);
	s->announced = true; /* hello_done stays false: the resume's HELLO sets it */
	s->client_tag = rec->client_tag;
	s->minor = rec->minor;
	memcpy(s->token, rec->token, DMASVC_TOKEN_LEN);
	s->orphan = true;
	s->log_budget = SESSION_LOG_BUDGET;
	if (rec->nr_regions > s->cap[OPT_CAP_REGIONS]) {
		ret = session_cap_refuse(s, OPT_CAP_REGIONS, -EMFILE, rec->nr_regions, 0, err, errlen);
		goto err_close;
	}
	kept.fd = g->iommufd;
	kept.ioas_id = rec->ioas_id;
	g->iommufd = -1;
	for (uint32_t i = 0; i < rec->nr_devices; i++) {
		kept.devs[kept.nr_devs].fd = g->dev[rec->devices[i].id];
		kept.devs[kept.nr_devs++].dev_id = rec->devices[i].iommufd_devid;
		g->dev[rec->devices[i].id] = -1;
	}
	ret = d->ops->space_adopt(d->be, &kept, &s->space); /* consumes kept's fds */
	if (ret) {
		dlog_errf(ret, err, errlen, "the %s backend refused the kept space (IOAS %u, %u devices)",
			  d->ops->name, rec->ioas_id, rec->nr_devices);
		goto err_close;
	}
	ret = d->ops->limits(s->space, &lim);
	if (ret) {
		dlog_errf(ret, err, errlen, "backend limits query failed");
		goto err_destroy;
	}
	session_budget_open(s, lim.max_areas);
	for (uint32_t i = 0; i < rec->nr_devices; i++) {
		session_device_record(s, rec->devices[i].id - 1, rec->devices[i].iommufd_devid,
				      rec->devices[i].flags & KEEP_DEV_CFG);
		s->keep_pushed |= PUSHED_DEV(rec->devices[i].id - 1);
	}
	t0 = dsvc_now_ns();
	for (uint32_t i = 0; i < rec->nr_regions && !ret; i++)
		ret = region_adopt(d, s, &rec->regions[i], err, errlen);
	*audit_ns = dsvc_now_ns() - t0;
	if (ret)
		goto err_destroy;
	ret = session_insert(d, s);
	if (ret) {
		dlog_errf(ret, err, errlen, "the session table is full");
		goto err_destroy;
	}
	s->keep_pushed |= PUSHED_BASE; /* the store (if any) has them already */
	s->orphan_deadline_ns = dsvc_now_ns() + (uint64_t)d->opt->resume_grace_sec * 1000000000ull;
	for (uint32_t i = 0; i < rec->nr_devices; i++)
		if ((rec->devices[i].flags & KEEP_DEV_CFG) && !d->cfg_dev_owner)
			d->cfg_dev_owner = s->id;
	if (s->id > d->next_session_id)
		d->next_session_id = s->id;
	session_usage_snapshot(s);
	return 0;

err_destroy:
	/* What the kept space holds is released as a teardown would. */
	for (unsigned int i = 0; i < s->region_hi; i++) {
		if (!s->regions[i])
			continue;
		gran_region_unregister(s->regions[i]->gr);
		free(s->regions[i]);
	}
	d->ops->space_destroy(s->space);
err_close:
	if (s && s->keep_fd >= 0)
		close(s->keep_fd);
	free(s);
	group_close(g);
	return ret;
}

unsigned int keep_adopt(struct dsvc *d, const int *fds, char **names, unsigned int n)
{
	struct keep_group *groups = calloc(DSVC_MAX_SESSIONS, sizeof(*groups));
	struct keep_record *rec = malloc(sizeof(*rec));
	unsigned int ng = 0, adopted = 0;

	if (!groups || !rec) {
		dlog(d->log, DLOG_ERROR, 0, "keep: out of memory: no session adopted");
		for (unsigned int i = 0; i < n; i++)
			if (keep_name_is_ours(names ? names[i] : NULL))
				close(fds[i]);
		free(groups);
		free(rec);
		return 0;
	}
	for (unsigned int i = 0; i < n; i++) {
		const char *name = names ? names[i] : NULL;
		struct keep_group *g = NULL;
		uint32_t sid = 0;
		int kind, *slot;

		if (!keep_name_is_ours(name))
			continue;
		kind = name_parse(name, &sid);
		for (unsigned int j = 0; kind >= 0 && j < ng && !g; j++)
			if (groups[j].sid == sid)
				g = &groups[j];
		if (kind >= 0 && !g && ng < DSVC_MAX_SESSIONS) {
			g = &groups[ng++];
			*g = (struct keep_group){ .sid = sid, .state = -1, .iommufd = -1 };
			for (unsigned int k = 0; k <= KEEP_MAX_DEVICES; k++)
				g->dev[k] = -1;
		}
		if (!g) {
			dlog(d->log, DLOG_ERROR, 0, "keep: fd %d named '%s': %s: closed", fds[i], name,
			     kind < 0 ? "not a keep-set name" : "more kept sessions than the table holds");
			close(fds[i]);
			continue;
		}
		slot = kind == 0 ? &g->state : kind == 1 ? &g->iommufd : &g->dev[kind - 1];
		if (*slot >= 0) {
			dlog(d->log, DLOG_ERROR, sid, "keep: a second fd named '%s': closed", name);
			close(fds[i]);
			continue;
		}
		*slot = fds[i];
	}
	for (unsigned int j = 0; j < ng; j++) {
		struct keep_group *g = &groups[j];
		char err[DMASVC_TEXT_MAX];
		uint64_t audit_ns = 0;
		struct dsvc_session *s;
		int ret;

		if (g->state < 0 || g->iommufd < 0) {
			dlog(d->log, DLOG_ERROR, g->sid, "keep: incomplete keep set (no %s): closed",
			     g->state < 0 ? "state" : "iommufd");
			group_close(g);
			continue;
		}
		if (!d->ops->space_adopt) {
			dlog(d->log, DLOG_ERROR, g->sid,
			     "keep: the %s backend cannot adopt a kept space: closed", d->ops->name);
			group_close(g);
			continue;
		}
		ret = group_adopt(d, g, rec, &audit_ns, err, sizeof(err));
		if (ret > 0) {
			dlog(d->log, DLOG_DEBUG, g->sid, "keep: session not adopted: %s", err);
			continue;
		}
		if (ret) {
			dlog_err(d->log, g->sid, ret, "keep: session not adopted, its fds closed: %s", err);
			continue;
		}
		s = session_find_any(d, g->sid);
		adopted++;
		dlog(d->log, DLOG_INFO, g->sid,
		     "adopted session %u (uid %u, tag %llu): %u regions, %u devices, %llu bytes mapped"
		     " in the kernel, audited in %llu ms", g->sid, rec->uid,
		     (unsigned long long)rec->client_tag, rec->nr_regions, rec->nr_devices,
		     (unsigned long long)session_mapped(s), (unsigned long long)(audit_ns / 1000000));
	}
	free(groups);
	free(rec);
	return adopted;
}
