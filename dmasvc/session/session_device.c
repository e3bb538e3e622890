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
#include "session_priv.h"

static void budget_open(struct dsvc_session *s, uint64_t space_areas);

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
	budget_open(s, lim.max_areas);
	return 0;
}

/*
 * Set the area budget of @s: the smaller of what the space allows
 * (@space_areas, UINT64_MAX = unlimited) and its max-mappings cap, which
 * from now on holds the result (what a refusal names).
 */
static void budget_open(struct dsvc_session *s, uint64_t space_areas)
{
	s->max_areas = space_areas;
	if (s->cap[OPT_CAP_MAPPINGS] && s->cap[OPT_CAP_MAPPINGS] < s->max_areas)
		s->max_areas = s->cap[OPT_CAP_MAPPINGS];
	s->cap[OPT_CAP_MAPPINGS] = s->max_areas;
	gran_budget_init(&s->budget, s->max_areas == UINT64_MAX ? 0 : s->max_areas);
}

int session_space_open(struct dsvc *d, struct dsvc_session *s)
{
	char err[128];

	if (d->lazy_space) {
		budget_open(s, d->lazy_max_areas);
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

/* Record backend device @handle in slot @slot of @s. */
static void device_record(struct dsvc_session *s, unsigned int slot, uint32_t handle, bool cfg)
{
	s->devices[slot] = handle;
	s->device_used[slot] = true;
	s->device_cfg[slot] = cfg;
	s->nr_devices++;
}

/* Attach device fd @fd (not consumed) to @s's space in slot @slot. */
static int device_add(struct dsvc *d, struct dsvc_session *s, unsigned int slot, int fd, bool cfg)
{
	uint32_t handle;
	int ret = d->ops->device_attach(s->space, fd, &handle);

	if (ret)
		return ret;
	device_record(s, slot, handle, cfg);
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
		char err[128];
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
		ret = device_add(d, s, (unsigned int)slot, fd, true);
		close(fd); /* the backend keeps its own reference */
		if (ret) {
			dlog_err(d->log, s->id, ret, "--device %s: attaching it failed", spec);
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
				 uint32_t handle, uint32_t *id, char *err, size_t errlen)
{
	if (ret)
		return dlog_errf(ret, err, errlen,
			     "attaching the device failed (the kernel's error; an iommufd cdev fd that failed once cannot be bound again: open it anew)");
	device_record(s, slot, handle, false);
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
	uint32_t handle = 0;
	unsigned int slot;
	int ret;

	ret = session_device_attach_prepare(d, s, &slot, err, errlen);
	if (ret)
		return ret;
	ret = d->ops->device_attach(s->space, fd, &handle);
	return session_device_attach_commit(s, slot, ret, handle, id, err, errlen);
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
	return 0;
}
