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

int dmasvc_device_attach(struct dmasvc_client *c, int device_fd)
{
	struct dmasvc_device_attach req = { 0 };
	struct dmasvc_device_attach_reply rep;
	int err;

	if (!c || device_fd < 0)
		return -EINVAL;
	if (c->query_only)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&c->ctl_lock);
	err = cl_call_simple(c, DMASVC_CMD_DEVICE_ATTACH, &req, sizeof(req), &device_fd, 1, &rep,
			     sizeof(rep));
	pthread_mutex_unlock(&c->ctl_lock);
	if (err)
		return err;
	if (rep.dev_id == 0 || rep.dev_id > INT32_MAX)
		return -EPROTO;
	return (int)rep.dev_id;
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
