/* SPDX-License-Identifier: MIT */
/*
 * mb_backend.c - the in-process backend space of the direct and engine
 * paths: be_soft_ops (the model, pins as mb_soft_pin() says) or be_iommufd_ops on
 * /dev/iommu with a VFIO cdev attached, so that iommufd really pins and
 * fills IOMMU page tables (with no device attached it only records areas).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "dmasvc/backend_kernel.h"
#include "mb.h"

/* mb_space_open() and mb_space_open_cut(): @cut = huge pages off. */
static int space_open(const struct mb_env *env, bool cut, struct mb_space *s)
{
	struct be_config cfg = { 0 };
	struct soft_iommu_config soft = { .pin = mb_soft_pin() };
	struct be_iommufd_config icfg = { .rlimit_mode = -1, .huge_pages = 0 };
	int ret;

	*s = (struct mb_space){ .dev_fd = -1 };
	if (env->backend == MB_IOMMUFD) {
		s->ops = &be_iommufd_ops;
		cfg.path = env->iommu_path;
		if (cut)
			cfg.backend_private = &icfg;
	} else if (cut) {
		return -EOPNOTSUPP;
	} else {
		s->ops = &be_soft_ops;
		cfg.backend_private = &soft;
	}
	ret = s->ops->open(&cfg, &s->ctx);
	if (ret)
		return ret;
	ret = s->ops->space_create(s->ctx, &s->space);
	if (ret)
		goto err_close;
	if (!env->device_path)
		return 0;
	if (!s->ops->device_attach) {
		ret = -EOPNOTSUPP;
		goto err_destroy;
	}
	s->dev_fd = open(env->device_path, O_RDWR | O_CLOEXEC);
	if (s->dev_fd < 0) {
		ret = -errno;
		goto err_destroy;
	}
	ret = s->ops->device_attach(s->space, s->dev_fd, &s->dev_id);
	if (ret)
		goto err_close_dev;
	return 0;

err_close_dev:
	close(s->dev_fd);
	s->dev_fd = -1;
err_destroy:
	s->ops->space_destroy(s->space);
err_close:
	s->ops->close(s->ctx);
	return ret;
}

int mb_space_open(const struct mb_env *env, struct mb_space *s)
{
	return space_open(env, false, s);
}

int mb_space_open_cut(const struct mb_env *env, struct mb_space *s)
{
	return space_open(env, true, s);
}

void mb_space_close(struct mb_space *s)
{
	if (s->dev_fd >= 0) {
		s->ops->device_detach(s->space, s->dev_id);
		close(s->dev_fd);
	}
	s->ops->space_destroy(s->space);
	s->ops->close(s->ctx);
}
