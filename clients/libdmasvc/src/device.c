// SPDX-License-Identifier: MIT
/*
 * device.c - DEVICE_ATTACH / DEVICE_DETACH: hand a VFIO device fd to the
 * service so it attaches the device to this session's IOMMU space.
 *
 * Devices are not part of the replayed state: a cdev's bind belongs to the
 * open file, and the service consumed it, so after dmasvc_reconnect() the
 * caller attaches freshly opened fds again.
 */
#include <errno.h>
#include <pthread.h>

#include "libdmasvc_priv.h"
#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"

int dmasvc_device_attach_ex(struct dmasvc_client *c, int device_fd, int timeout_ms,
			    struct dmasvc_device_info *out)
{
	struct dmasvc_device_attach req = { 0 };
	struct dmasvc_device_attach_reply rep;
	int err;

	if (!c)
		return -EINVAL;
	if (device_fd < 0 || !out)
		return cl_local_error(c, "device_attach: bad fd or no info to fill", -EINVAL);
	if (c->query_only)
		return cl_local_error(c, "device_attach on a query-only client", -EOPNOTSUPP);
	pthread_mutex_lock(&c->ctl_lock);
	err = cl_call_simple_timed(c, timeout_ms == 0 ? c->opts.timeout_ms : timeout_ms,
				   DMASVC_CMD_DEVICE_ATTACH, &req, sizeof(req), &device_fd, 1, &rep,
				   sizeof(rep));
	pthread_mutex_unlock(&c->ctl_lock);
	if (err)
		return err;
	if (rep.dev_id == 0 || rep.dev_id > INT32_MAX)
		return cl_local_error(c, "device_attach: the service's device id is out of range", -EPROTO);
	*out = (struct dmasvc_device_info){ .dev_id = rep.dev_id, .iommufd_devid = rep.iommufd_devid };
	return 0;
}

int dmasvc_device_attach(struct dmasvc_client *c, int device_fd)
{
	struct dmasvc_device_info info;
	int err = dmasvc_device_attach_ex(c, device_fd, 0, &info);

	return err ? err : (int)info.dev_id;
}

int dmasvc_device_detach(struct dmasvc_client *c, uint32_t dev_id)
{
	struct dmasvc_device_detach req = { .dev_id = dev_id };
	int err;

	if (!c || dev_id == 0)
		return -EINVAL;
	pthread_mutex_lock(&c->ctl_lock);
	err = cl_call_simple(c, DMASVC_CMD_DEVICE_DETACH, &req, sizeof(req), NULL, 0, NULL, 0);
	pthread_mutex_unlock(&c->ctl_lock);
	return err;
}
