/* SPDX-License-Identifier: MIT */
/*
 * session_device.c - a session's space and its devices: creating the space
 * on demand (type1's one container), client devices (DEVICE_ATTACH), and
 * the operator's --device devices, which follow one session at a time.
 *
 * Vocabulary: a "configured" device is one named by --device (a cdev path
 * for iommufd, a PCI address in the group for type1); the "owner" is the
 * session whose space they are attached to (d->cfg_dev_owner).  They go to
 * the first session that registers a region while no session owns them, and
 * are released with that session; the next session to register a region
 * takes them.  Each hand-over opens the device afresh: an iommufd cdev's
 * bind lasts as long as its open file, so a file is never attached twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dmasvc/backend_kernel.h"
#include "keep_priv.h"
#include "session_priv.h"

/* Open a space for @s and set its budget from the space's limits. */
static int space_open(struct dsvc *d, struct dsvc_session *s, char *err, size_t errlen)
{
	struct be_limits lim;
	int ret;

	ret = d->ops->space_create(d->be, &s->space);
	if (ret == -EBUSY) {
		uint32_t holder = 0;

		for (unsigned int i = 0; i < d->session_hi; i++)
			if (d->sessions[i] && d->sessions[i]->space)
				holder = d->sessions[i]->id;
		return dlog_errf(ret, err, errlen,
			     "the %s backend has one IOMMU space and session %u holds it",
			     d->ops->name, holder);
	}
	if (ret)
		return dlog_errf(ret, err, errlen, "creating the %s space failed", d->ops->name);
	ret = d->ops->limits(s->space, &lim);
	if (ret) {
		d->ops->space_destroy(s->space);
		s->space = NULL;
		return dlog_errf(ret, err, errlen, "backend limits query failed");
	}
	session_budget_open(s, lim.max_areas);
	return 0;
}

/* session_priv.h */
void session_budget_open(struct dsvc_session *s, uint64_t space_areas)
{
	s->max_areas = space_areas;
	if (s->cap[OPT_CAP_MAPPINGS] && s->cap[OPT_CAP_MAPPINGS] < s->max_areas)
		s->max_areas = s->cap[OPT_CAP_MAPPINGS];
	s->cap[OPT_CAP_MAPPINGS] = s->max_areas;
	gran_budget_init(&s->budget, s->max_areas == UINT64_MAX ? 0 : s->max_areas);
}

/*
 * The next region of @s from slot *@i on (advances *@i past it), with its
 * IOVA span in *@iova and the inclusive *@last; NULL after the last.
 */
static const struct dsvc_region *region_next(const struct dsvc_session *s, unsigned int *i,
					     uint64_t *iova, uint64_t *last)
{
	for (; *i < SESSION_MAX_REGIONS; ++*i) {
		const struct dsvc_region *r = s->regions[*i];

		if (!r)
			continue;
		++*i;
		*iova = gran_region_iova(r->gr);
		*last = *iova + gran_region_size(r->gr) - 1;
		return r;
	}
	return NULL;
}

/*
 * After an attach: the first region of @s outside the space's IOVA ranges
 * as they are now.  Returns 0 when every region fits, -EADDRINUSE with the
 * region and the ranges in @err, or the limits query's -errno.
 */
static int regions_fit(struct dsvc *d, struct dsvc_session *s, char *err, size_t errlen)
{
	const struct dsvc_region *r;
	uint64_t iova, last;
	struct be_limits lim;
	char ranges[160];
	unsigned int i = 0;
	int ret = d->ops->limits(s->space, &lim);

	if (ret)
		return dlog_errf(ret, err, errlen,
			     "device attach refused: reading the space's IOVA ranges after it failed");
	while ((r = region_next(s, &i, &iova, &last))) {
		if (be_limits_allow(&lim, iova, last))
			continue;
		be_limits_format(&lim, ranges, sizeof(ranges));
		return dlog_errf(-EADDRINUSE, err, errlen,
			     "device attach refused: region %u iova 0x%llx-0x%llx is outside the IOVA"
			     " ranges allowed with the device attached (%s)", r->id,
			     (unsigned long long)iova, (unsigned long long)last, ranges);
	}
	return 0;
}

/*
 * The kernel refused an attach with -EADDRINUSE: name the region of @s that
 * lies in one of the device's reserved ranges (be_ops.device_reserved), or
 * say what else it can be.  Returns -EADDRINUSE with the reason in @err.
 */
static int attach_collision(struct dsvc *d, struct dsvc_session *s, int fd, char *err,
			    size_t errlen)
{
	struct be_iova_range resv[BE_MAX_IOVA_RANGES];
	int n = d->ops->device_reserved ?
		d->ops->device_reserved(s->space, fd, resv, BE_MAX_IOVA_RANGES) : -EOPNOTSUPP;

	for (int k = 0; k < n; k++) {
		const struct dsvc_region *r;
		uint64_t iova, last;
		unsigned int i = 0;

		while ((r = region_next(s, &i, &iova, &last))) {
			if (iova > resv[k].last || resv[k].start > last)
				continue;
			return dlog_errf(-EADDRINUSE, err, errlen,
				     "device attach refused by the kernel: region %u iova 0x%llx-0x%llx"
				     " has mappings in the device's reserved IOVA 0x%llx-0x%llx"
				     " (MSI window or reserved region)", r->id,
				     (unsigned long long)iova, (unsigned long long)last,
				     (unsigned long long)resv[k].start,
				     (unsigned long long)resv[k].last);
		}
	}
	return dlog_errf(-EADDRINUSE, err, errlen,
		     "device attach refused by the kernel: a populated region lies where the"
		     " device's domain reserves IOVA (MSI window, reserved region, outside its"
		     " aperture) or breaks its IOVA alignment%s",
		     n < 0 ? " (the device's reserved ranges are unknown)" : "");
}

int session_device_attach_run(struct dsvc *d, struct dsvc_session *s, int fd, uint32_t *handle,
			      char *err, size_t errlen)
{
	int ret = d->ops->device_attach(s->space, fd, handle);

	if (ret == -EADDRINUSE)
		return attach_collision(d, s, fd, err, errlen);
	if (ret == -EXDEV)
		return dlog_errf(ret, err, errlen,
			     "device attach refused: the fd is not a device of the VFIO group %s,"
			     " which this service's type1 container holds; no other device sees its"
			     " mappings", d->opt->group_path ? d->opt->group_path : "(none)");
	if (ret)
		return dlog_errf(ret, err, errlen,
			     "attaching the device failed (the kernel's error; an iommufd cdev fd that"
			     " failed once cannot be bound again: open it anew)");
	ret = regions_fit(d, s, err, errlen);
	if (ret)
		d->ops->device_detach(s->space, *handle);
	return ret;
}

int session_space_open(struct dsvc *d, struct dsvc_session *s)
{
	char err[128];

	if (d->lazy_space) {
		session_budget_open(s, d->lazy_max_areas);
		return 0;
	}
	return space_open(d, s, err, sizeof(err));
}

/* A free device slot of @s, or -EMFILE with a reason. */
static int device_slot(const struct dsvc_session *s, char *err, size_t errlen)
{
	for (unsigned int slot = 0; slot < SESSION_MAX_DEVICES; slot++)
		if (!s->device_used[slot])
			return (int)slot;
	return dlog_errf(-EMFILE, err, errlen, "session already has %d devices (the cap)",
		    SESSION_MAX_DEVICES);
}

/* session_priv.h */
void session_device_record(struct dsvc_session *s, unsigned int slot, uint32_t handle, bool cfg)
{
	s->devices[slot] = handle;
	s->device_used[slot] = true;
	s->device_cfg[slot] = cfg;
	s->nr_devices++;
}

/*
 * Attach device fd @fd (not consumed) to @s's space in slot @slot, checking
 * the session's regions against the narrowed ranges.  Returns 0 or -errno
 * with the reason in @err.
 */
static int device_add(struct dsvc *d, struct dsvc_session *s, unsigned int slot, int fd, bool cfg,
		      char *err, size_t errlen)
{
	uint32_t handle;
	int ret = session_device_attach_run(d, s, fd, &handle, err, errlen);

	if (ret)
		return ret;
	session_device_record(s, slot, handle, cfg);
	return 0;
}

/* A fresh fd for configured device @spec: opened (iommufd) or from the group (type1). */
static int cfg_device_open(struct dsvc *d, struct dsvc_session *s, const char *spec)
{
	int fd;

	if (d->opt->backend == OPT_BACKEND_TYPE1)
		return be_type1_device_open(s->space, spec);
	fd = open(spec, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Give the operator's devices to @s; failures are logged, not returned. */
static void cfg_devices_take(struct dsvc *d, struct dsvc_session *s)
{
	for (unsigned int i = 0; i < d->opt->nr_devices; i++) {
		const char *spec = d->opt->devices[i];
		char err[DMASVC_TEXT_MAX];
		int slot = device_slot(s, err, sizeof(err));
		int fd, ret;

		if (slot < 0) {
			dlog_err(d->log, s->id, slot, "--device %s: %s", spec, err);
			continue;
		}
		fd = cfg_device_open(d, s, spec);
		if (fd < 0) {
			dlog_err(d->log, s->id, fd, "--device %s: cannot open it", spec);
			continue;
		}
		ret = device_add(d, s, (unsigned int)slot, fd, true, err, sizeof(err));
		close(fd); /* the backend keeps its own reference */
		if (ret) {
			dlog_err(d->log, s->id, ret, "--device %s: %s", spec, err);
			continue;
		}
		dlog(d->log, DLOG_INFO, s->id, "--device %s attached to this session's space (device %d)",
		     spec, slot + 1);
	}
	d->cfg_dev_owner = s->id;
}

int session_space_get(struct dsvc *d, struct dsvc_session *s, char *err, size_t errlen)
{
	int ret;

	if (!s->space) {
		ret = space_open(d, s, err, errlen);
		if (ret)
			return ret;
	}
	if (d->opt->nr_devices && d->cfg_dev_owner == 0 && d->ops->device_attach)
		cfg_devices_take(d, s);
	return 0;
}

void session_devices_release(struct dsvc *d, struct dsvc_session *s)
{
	for (unsigned int i = 0; i < SESSION_MAX_DEVICES; i++) {
		if (!s->device_used[i])
			continue;
		d->ops->device_detach(s->space, s->devices[i]);
		s->device_used[i] = false;
		s->device_cfg[i] = false;
	}
	s->nr_devices = 0;
	if (d->cfg_dev_owner == s->id) {
		d->cfg_dev_owner = 0;
		if (d->opt->nr_devices)
			dlog(d->log, DLOG_INFO, s->id,
			     "--device devices released; the next session to register a region takes them");
	}
}

int session_device_attach_prepare(struct dsvc *d, struct dsvc_session *s, unsigned int *slot,
				  char *err, size_t errlen)
{
	int ret;

	if (!d->ops->device_attach)
		return dlog_errf(-EOPNOTSUPP, err, errlen,
			     "the %s backend has no devices (the software model protects none; run dmasvc --iommufd)",
			     d->ops->name);
	ret = session_space_get(d, s, err, errlen);
	if (ret)
		return ret;
	ret = device_slot(s, err, errlen);
	if (ret < 0)
		return ret;
	*slot = (unsigned int)ret;
	return 0;
}

int session_device_attach_commit(struct dsvc_session *s, unsigned int slot, int ret,
				 uint32_t handle, const char *run_err, uint32_t *id, char *err,
				 size_t errlen)
{
	if (ret)
		return dlog_errf(ret, err, errlen, "%s",
			     run_err[0] ? run_err : "attaching the device failed");
	session_device_record(s, slot, handle, false);
	*id = slot + 1;
	return 0;
}

uint32_t session_device_iommufd_devid(const struct dsvc *d, const struct dsvc_session *s,
				      uint32_t id)
{
	if (!d->ops->device_handle_is_devid || id == 0 || id > SESSION_MAX_DEVICES ||
	    !s->device_used[id - 1])
		return 0;
	return s->devices[id - 1];
}

int session_device_attach(struct dsvc *d, struct dsvc_session *s, int fd, uint32_t *id, char *err,
			  size_t errlen)
{
	char run_err[DMASVC_TEXT_MAX] = "";
	uint32_t handle = 0;
	unsigned int slot;
	int ret;

	ret = session_device_attach_prepare(d, s, &slot, err, errlen);
	if (ret)
		return ret;
	ret = session_device_attach_run(d, s, fd, &handle, run_err, sizeof(run_err));
	return session_device_attach_commit(s, slot, ret, handle, run_err, id, err, errlen);
}

int session_device_detach(struct dsvc *d, struct dsvc_session *s, uint32_t id, char *err,
			  size_t errlen)
{
	if (id == 0 || id > SESSION_MAX_DEVICES || !s->device_used[id - 1])
		return dlog_errf(-ENOENT, err, errlen, "no device %u", id);
	if (s->device_cfg[id - 1])
		return dlog_errf(-EPERM, err, errlen, "device %u was configured by the operator (--device)", id);
	d->ops->device_detach(s->space, s->devices[id - 1]);
	s->device_used[id - 1] = false;
	s->nr_devices--;
	keep_session_write(d, s); /* its name leaves the fd store */
	return 0;
}
