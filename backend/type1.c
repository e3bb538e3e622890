// SPDX-License-Identifier: MIT
/*
 * type1.c - be_type1_ops: the backend over the legacy VFIO container API
 * (/dev/vfio/vfio, VFIO_TYPE1v2_IOMMU) with one VFIO group.
 *
 * One be_ctx is one open VFIO group (be_config.path = /dev/vfio/N).  A
 * group belongs to at most one container, so a ctx has at most one space
 * at a time: space_create() opens a container, puts the group in it and
 * selects type1v2.  A map is one VFIO_IOMMU_MAP_DMA (one vfio_dma, one
 * area); an unmap is one VFIO_IOMMU_UNMAP_DMA over whole areas.
 *
 * Devices: type1 has no per-device attach; the group is the unit and all
 * its devices see the space from space_create() on.  be_type1_device_open()
 * hands out device fds (VFIO_GROUP_GET_DEVICE_FD); device_attach() takes a
 * reference (a dup) on such an fd so the device stays open while attached,
 * and device_detach() drops it.
 *
 * Which fds device_attach() accepts: only device files of the held group,
 * since a device of another group sees none of this container's mappings
 * (-EXDEV otherwise).  How it knows, without asking the device: every
 * device file of the group was created through *our* group file.  A device
 * file holds a reference to its group's file, and a group node opens once
 * (drivers/vfio/group.c, Linux 6.12: vfio_group_fops_open() -EBUSY while
 * opened_file is set; "Device FDs hold a group file reference"), and
 * type1_open() opened the group before any client could reach the service.
 * be_type1_device_open() keeps a reference to each file it creates
 * (struct be_space.own), so a client's fd is in the group exactly when it is
 * one of those open files (a client can hold one only as a copy of the
 * service's, e.g. taken with pidfd_getfd(2)).  Open-file identity is tested
 * without kcmp(2) (CONFIG_KCMP is off in many kernels, the vm tier's
 * included): file status flags belong to the open file, so O_NONBLOCK
 * toggled on ours shows through the client's fd only if it is the same
 * file (the flag does nothing for VFIO device ioctls, and it is restored
 * at once).  Rejected: VFIO_DEVICE_GET_PCI_HOT_RESET_INFO lists group ids
 * but fails with ENODEV on a device with no slot or bus reset (edu on q35's
 * root bus) and does not say which entry is the device itself; 6.12's
 * VFIO_DEVICE_GET_INFO and fdinfo carry no device name; config space is
 * the client's to write.  Safe direction: a file someone made through a
 * stolen copy of the group fd is refused although it is in the group.
 *
 * Audit: type1 cannot list its mappings and has no harmless probe (the
 * dirty-bitmap and VADDR-invalidate paths change state), so audit()
 * reports the backend's own record of successful maps (area_record): the
 * *service's* record, not the kernel's.  It catches bookkeeping bugs above
 * the backend, not kernel-side surprises.
 *
 * Error mapping to the be_ops contract: the kernel answers an unmap that
 * would split a vfio_dma with -EINVAL before unmapping anything, and an
 * unmap of an empty range with success and size 0; both become -ENOENT
 * here (the record tells a cut from a misaligned request).
 *
 * Vocabulary (backend.h): area, end (exclusive), last (inclusive).
 * Locking: struct be_space.lock serialises map/unmap/audit and the record
 * (the kernel holds one container mutex for the whole pin+map anyway).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <linux/vfio.h>

#include "dmasvc/backend.h"
#include "dmasvc/backend_kernel.h"
#include "area_record_priv.h"
#include "kernel_priv.h"
#include "prefill_priv.h"

#define BE_NAME "type1"
#define T1_CONTAINER "/dev/vfio/vfio"

/* One open VFIO group.  Immutable after open() except space. */
struct be_ctx {
	int group_fd;
	uint64_t max_areas;     /* cfg->max_areas, 0 = kernel's limit only */
	/* The one live space, or NULL: set by space_create() on the control
	 * thread, cleared by space_destroy() there or on a session's executor
	 * (its teardown), so atomic. */
	_Atomic(struct be_space *) space;
	struct be_report rep;   /* immutable; any thread */
};

struct be_space {
	struct be_ctx *ctx;     /* immutable */
	/* Control thread only: the device files be_type1_device_open() made
	 * (our references), what device_attach() accepts. */
	unsigned int nr_own;
	int own[KERNEL_MAX_DEVICES];
	int container_fd;       /* immutable */
	pthread_mutex_t lock;   /* guards rec and the kernel map/unmap calls */
	struct area_record rec; /* successful maps not yet unmapped */
	/* Control thread only: the attached devices (fds of this group), each
	 * handle counted up from next_dev_id. */
	uint32_t next_dev_id;
	struct kernel_devs devs;
};

/* Open the container and check it speaks type1v2.  Returns fd or -errno (reported to @r). */
static int type1_container_open(const struct be_report *r)
{
	int fd = kernel_open(T1_CONTAINER, O_RDWR);
	int rc;

	if (fd < 0) {
		kernel_report(r, BE_NAME, "open " T1_CONTAINER, 0, 0, fd);
		return fd;
	}
	rc = kernel_ioctl(fd, VFIO_GET_API_VERSION, NULL);
	if (rc != VFIO_API_VERSION) {
		be_reportf(r, BE_NAME ": VFIO API version %d, want %d", rc, VFIO_API_VERSION);
		close(fd);
		return -EOPNOTSUPP;
	}
	rc = kernel_ioctl(fd, VFIO_CHECK_EXTENSION,
		       (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
	if (rc <= 0) {
		be_reportf(r, BE_NAME ": no VFIO_TYPE1v2_IOMMU");
		close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

static int type1_open(const struct be_config *cfg, struct be_ctx **out)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	struct be_report rep = be_report_init(cfg);
	struct be_ctx *ctx;
	int rc, probe;

	if (!cfg->path)
		return -EINVAL;
	/* Type1 v2 refuses a cut, v1 unmaps whole mappings: no cut_areas. */
	if (cfg->cut_areas)
		return -EOPNOTSUPP;
	/* Fail early, with the container's own error, if VFIO is absent. */
	probe = type1_container_open(&rep);
	if (probe < 0)
		return probe;
	close(probe);

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->max_areas = cfg->max_areas;
	ctx->rep = rep;
	ctx->group_fd = kernel_open(cfg->path, O_RDWR);
	if (ctx->group_fd < 0) {
		rc = ctx->group_fd;
		be_reportf(&rep, BE_NAME ": open %s: %s", cfg->path, strerror(-rc));
		goto err_free;
	}
	rc = kernel_ioctl(ctx->group_fd, VFIO_GROUP_GET_STATUS, &st);
	if (rc < 0) {
		kernel_report(&rep, BE_NAME, "VFIO_GROUP_GET_STATUS", 0, 0, rc);
		goto err_close;
	}
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		be_reportf(&rep, BE_NAME ": group %s not viable (bind every device of it to vfio)",
			   cfg->path);
		rc = -EBUSY;
		goto err_close;
	}
	*out = ctx;
	return 0;

err_close:
	close(ctx->group_fd);
err_free:
	free(ctx);
	return rc;
}

static void type1_close(struct be_ctx *ctx)
{

	if (!ctx)
		return;
	if (atomic_load(&ctx->space))
		be_reportf(&ctx->rep, BE_NAME ": BUG: close with a live space");
	close(ctx->group_fd);
	free(ctx);
}

static int type1_space_create(struct be_ctx *ctx, struct be_space **out)
{
	struct be_space *sp;
	int rc;

	if (atomic_load(&ctx->space))
		return -EBUSY; /* a group sits in one container at a time */
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->ctx = ctx;
	area_rec_init(&sp->rec);
	rc = pthread_mutex_init(&sp->lock, NULL);
	if (rc) {
		rc = -rc;
		goto err_free;
	}
	sp->container_fd = type1_container_open(&ctx->rep);
	if (sp->container_fd < 0) {
		rc = sp->container_fd;
		goto err_mutex;
	}
	rc = kernel_ioctl(ctx->group_fd, VFIO_GROUP_SET_CONTAINER,
		       &sp->container_fd);
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "VFIO_GROUP_SET_CONTAINER", 0, 0, rc);
		goto err_close;
	}
	rc = kernel_ioctl(sp->container_fd, VFIO_SET_IOMMU,
		       (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "VFIO_SET_IOMMU type1v2", 0, 0, rc);
		goto err_unset;
	}
	atomic_store(&ctx->space, sp);
	*out = sp;
	return 0;

err_unset:
	if (kernel_ioctl(ctx->group_fd, VFIO_GROUP_UNSET_CONTAINER, NULL) < 0)
		be_reportf(&ctx->rep, BE_NAME ": BUG: unset container failed");
err_close:
	close(sp->container_fd);
err_mutex:
	pthread_mutex_destroy(&sp->lock);
err_free:
	free(sp);
	return rc;
}

static void type1_space_destroy(struct be_space *sp)
{
	struct vfio_iommu_type1_dma_unmap um = {
		.argsz = sizeof(um),
		.flags = VFIO_DMA_UNMAP_FLAG_ALL,
	};
	int rc;

	if (!sp)
		return;
	while (sp->devs.n)
		kernel_devs_drop(&sp->devs, sp->devs.n - 1);
	while (sp->nr_own)
		close(sp->own[--sp->nr_own]);
	if (sp->rec.n) {
		rc = kernel_ioctl(sp->container_fd, VFIO_IOMMU_UNMAP_DMA, &um);
		if (rc < 0)
			kernel_report(&sp->ctx->rep, BE_NAME, "BUG: VFIO_IOMMU_UNMAP_DMA all", 0, 0,
				   rc);
	}
	/* Fails with EBUSY while the caller still holds a device fd. */
	rc = kernel_ioctl(sp->ctx->group_fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
	if (rc < 0)
		kernel_report(&sp->ctx->rep, BE_NAME, "BUG: VFIO_GROUP_UNSET_CONTAINER (device fd still open?)",
			   0, 0, rc);
	close(sp->container_fd);
	area_rec_destroy(&sp->rec);
	pthread_mutex_destroy(&sp->lock);
	atomic_store(&sp->ctx->space, NULL);
	free(sp);
}

/* Fill *@out from the capability chain of a VFIO_IOMMU_GET_INFO reply. */
static void type1_parse_caps(const struct vfio_iommu_type1_info *info,
			  uint32_t size, struct be_limits *out,
			  uint64_t *avail)
{
	const char *base = (const char *)info;
	uint32_t off = info->flags & VFIO_IOMMU_INFO_CAPS ? info->cap_offset : 0;

	/* Offsets come from the kernel; still bound them to the buffer. */
	for (unsigned int hops = 0; off && hops < 64; hops++) {
		const struct vfio_info_cap_header *h;

		if (off < sizeof(*info) || off > size - sizeof(*h))
			break;
		h = (const void *)(base + off);
		if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE &&
		    off + sizeof(struct vfio_iommu_type1_info_cap_iova_range) <= size) {
			const struct vfio_iommu_type1_info_cap_iova_range *cr =
				(const void *)h;
			uint32_t n = cr->nr_iovas;

			if ((size - off - sizeof(*cr)) / sizeof(cr->iova_ranges[0]) < n)
				n = (size - off - sizeof(*cr)) /
				    sizeof(cr->iova_ranges[0]);
			if (n > BE_MAX_IOVA_RANGES)
				n = BE_MAX_IOVA_RANGES;
			for (uint32_t i = 0; i < n; i++) {
				/* vfio's end is inclusive, like our last. */
				out->ranges[i].start = cr->iova_ranges[i].start;
				out->ranges[i].last = cr->iova_ranges[i].end;
			}
			out->nr_ranges = n;
		} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL &&
			   off + sizeof(struct vfio_iommu_type1_info_dma_avail) <= size) {
			*avail = ((const struct vfio_iommu_type1_info_dma_avail *)h)->avail;
		}
		off = h->next;
	}
}

static int type1_limits(struct be_space *sp, struct be_limits *out)
{
	struct vfio_iommu_type1_info *info;
	uint32_t size = sizeof(*info);
	uint64_t avail = UINT64_MAX;
	int rc;

	/* The kernel raises argsz when the capabilities do not fit. */
	for (int tries = 0; tries < 3; tries++) {
		info = calloc(1, size);
		if (!info)
			return -ENOMEM;
		info->argsz = size;
		rc = kernel_ioctl(sp->container_fd, VFIO_IOMMU_GET_INFO, info);
		if (rc < 0) {
			kernel_report(&sp->ctx->rep, BE_NAME, "VFIO_IOMMU_GET_INFO", 0, 0, rc);
			free(info);
			return rc;
		}
		if (info->argsz <= size)
			break;
		size = info->argsz;
		free(info);
		info = NULL;
	}
	if (!info)
		return -EAGAIN;

	*out = (struct be_limits){ 0 };
	out->pgsize_bitmap = info->flags & VFIO_IOMMU_INFO_PGSIZES ?
		info->iova_pgsizes : 0;
	type1_parse_caps(info, size, out, &avail);
	free(info);

	pthread_mutex_lock(&sp->lock);
	/* avail counts what is left; the budget includes what is in use. */
	out->max_areas = avail == UINT64_MAX ? UINT64_MAX : avail + sp->rec.n;
	pthread_mutex_unlock(&sp->lock);
	if (sp->ctx->max_areas && sp->ctx->max_areas < out->max_areas)
		out->max_areas = sp->ctx->max_areas;
	return 0;
}

static int type1_map(struct be_space *sp, uint64_t iova, uint64_t length,
		  const struct be_map_src *src, unsigned int prot)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.iova = iova,
		.size = length,
	};
	uint64_t end;
	int rc;

	rc = kernel_map_args(iova, length, src, prot, &end);
	if (rc < 0)
		return rc;
	if (!src->vaddr)
		return -EINVAL;
	map.vaddr = (uintptr_t)src->vaddr;
	if (prot & BE_PROT_READ)
		map.flags |= VFIO_DMA_MAP_FLAG_READ;
	if (prot & BE_PROT_WRITE)
		map.flags |= VFIO_DMA_MAP_FLAG_WRITE;
	prefill_page_tables(src->vaddr, length); /* MAP_DMA pins through the vaddr */

	pthread_mutex_lock(&sp->lock);
	if (sp->ctx->max_areas && sp->rec.n >= sp->ctx->max_areas) {
		rc = -ENOSPC;
		goto out_unlock;
	}
	rc = kernel_ioctl(sp->container_fd, VFIO_IOMMU_MAP_DMA, &map);
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "VFIO_IOMMU_MAP_DMA", iova, length, rc);
		goto out_unlock;
	}
	rc = area_rec_insert(&sp->rec, iova, length);
	if (rc < 0) {
		/* Keep kernel and record in step: undo the map we just made. */
		struct vfio_iommu_type1_dma_unmap um = {
			.argsz = sizeof(um), .iova = iova, .size = length,
		};

		int urc = kernel_ioctl(sp->container_fd, VFIO_IOMMU_UNMAP_DMA, &um);

		if (urc < 0)
			kernel_report(&sp->ctx->rep, BE_NAME, "BUG: VFIO_IOMMU_UNMAP_DMA (undo)",
				   iova, length, urc);
	}
out_unlock:
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

static int type1_unmap(struct be_space *sp, uint64_t iova, uint64_t length,
		    uint64_t *unmapped)
{
	struct vfio_iommu_type1_dma_unmap um = {
		.argsz = sizeof(um),
		.iova = iova,
		.size = length,
	};
	uint64_t end, recorded;
	int rc;

	*unmapped = 0;
	rc = kernel_range(iova, length, &end);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&sp->lock);
	rc = kernel_ioctl(sp->container_fd, VFIO_IOMMU_UNMAP_DMA, &um);
	if (rc == -EINVAL && area_rec_cuts(&sp->rec, iova, end))
		rc = -ENOENT; /* type1v2 refuses to split; nothing unmapped */
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "VFIO_IOMMU_UNMAP_DMA", iova, length, rc);
		goto out_unlock;
	}
	*unmapped = um.size;
	recorded = area_rec_remove(&sp->rec, iova, end);
	if (recorded != um.size)
		be_reportf(&sp->ctx->rep, BE_NAME ": BUG: unmap iova 0x%" PRIx64
			   " length 0x%" PRIx64 ": kernel removed 0x%llx bytes, record 0x%" PRIx64,
			iova, length, (unsigned long long)um.size, recorded);
	if (!um.size)
		rc = -ENOENT; /* nothing was mapped there */
out_unlock:
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

/*
 * Whether @fd and @ours are the same open file: O_NONBLOCK toggled on
 * @ours shows through @fd only then (see the file comment).  Restores the
 * flags.  An error reads as "not the same".
 */
static bool type1_same_file(const struct be_space *sp, int fd, int ours)
{
	int a = fcntl(fd, F_GETFL), b = fcntl(ours, F_GETFL), a2;

	if (a < 0 || b < 0 || a != b)
		return false;
	if (fcntl(ours, F_SETFL, b ^ O_NONBLOCK) < 0)
		return false;
	a2 = fcntl(fd, F_GETFL);
	if (fcntl(ours, F_SETFL, b) < 0)
		kernel_report(&sp->ctx->rep, BE_NAME, "BUG: F_SETFL restore", 0, 0, -errno);
	return a2 == (b ^ O_NONBLOCK);
}

static int type1_device_attach(struct be_space *sp, int device_fd,
			    uint32_t *dev_id)
{
	bool ours = false;
	int fd;

	if (kernel_devs_full(&sp->devs))
		return -ENOSPC;
	for (unsigned int i = 0; i < sp->nr_own && !ours; i++)
		ours = type1_same_file(sp, device_fd, sp->own[i]);
	if (!ours)
		return -EXDEV; /* not a device file of the held group */
	fd = kernel_dup(device_fd);
	if (fd < 0)
		return fd;
	kernel_devs_add(&sp->devs, fd, ++sp->next_dev_id);
	*dev_id = sp->next_dev_id;
	return 0;
}

static void type1_device_detach(struct be_space *sp, uint32_t dev_id)
{
	int i = kernel_devs_index(&sp->devs, &sp->ctx->rep, BE_NAME, dev_id);

	if (i >= 0)
		kernel_devs_drop(&sp->devs, (unsigned int)i);
}

static int type1_audit(struct be_space *sp, uint64_t iova, uint64_t length,
		    uint64_t probe_granule, be_audit_fn fn, void *arg)
{
	uint64_t end;
	int rc;

	(void)probe_granule; /* the record lists whole areas: no probing */
	rc = kernel_range(iova, length, &end);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&sp->lock);
	rc = area_rec_walk(&sp->rec, iova, end, fn, arg);
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

int be_type1_device_open(struct be_space *sp, const char *name)
{
	int rc, own;

	if (sp->nr_own == KERNEL_MAX_DEVICES)
		return -ENOSPC;
	rc = kernel_ioctl(sp->ctx->group_fd, VFIO_GROUP_GET_DEVICE_FD, (void *)name);
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "VFIO_GROUP_GET_DEVICE_FD", 0, 0, rc);
		return rc;
	}
	own = kernel_dup(rc);
	if (own < 0) {
		close(rc);
		return own;
	}
	sp->own[sp->nr_own++] = own;
	return rc;
}

/*
 * VFIO_IOMMU_MAP_DMA pins through the vaddr whenever the container has an
 * IOMMU domain, which the group's joining at space_create() gave it.
 */
static bool type1_pins_vaddr_at_map(struct be_space *sp)
{
	(void)sp;
	return true;
}

const struct be_ops be_type1_ops = {
	.name = BE_NAME,
	.open = type1_open,
	.close = type1_close,
	.space_create = type1_space_create,
	.space_destroy = type1_space_destroy,
	.limits = type1_limits,
	.map = type1_map,
	.pins_vaddr_at_map = type1_pins_vaddr_at_map,
	.unmap = type1_unmap,
	.device_attach = type1_device_attach,
	.device_detach = type1_device_detach,
	.audit = type1_audit,
};
