/* SPDX-License-Identifier: MIT */
/*
 * backend_kernel.h - knobs and helpers of the two kernel backends
 * (be_iommufd_ops, be_type1_ops) that do not fit the generic be_ops.
 *
 * Both backends talk to the real kernel: iommufd through /dev/iommu and a
 * VFIO cdev per device, type1 through /dev/vfio/vfio plus one VFIO group.
 */
#ifndef DMASVC_BACKEND_KERNEL_H
#define DMASVC_BACKEND_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "dmasvc/backend.h"

/*
 * struct be_iommufd_config - what be_config.backend_private points at for
 * be_iommufd_ops (NULL = every field at its default).
 * @rlimit_mode: IOMMU_OPTION_RLIMIT_MODE to set at open(), before any IOAS
 *	exists: 0 per-user locked_vm (kernel default), 1 per-process like
 *	VFIO; -1 leaves the kernel's value alone.  Needs CAP_SYS_RESOURCE.
 * @huge_pages: IOMMU_OPTION_HUGE_PAGES set on every IOAS this backend
 *	creates: 1 combine contiguous pages (kernel default), 0 map every
 *	PAGE_SIZE separately; -1 leaves the kernel's value alone.
 * @no_map_file: never try IOMMU_IOAS_MAP_FILE, always map the vaddr.
 */
struct be_iommufd_config {
	int rlimit_mode;
	int huge_pages;
	bool no_map_file;
};

/*
 * be_type1_device_open - a device fd for @name (a PCI address such as
 * "0000:00:03.0") from the VFIO group the type1 backend holds
 * (VFIO_GROUP_GET_DEVICE_FD).  Type1 has no per-device attach: the whole
 * group joined @space's container at space_create(), so the device sees
 * the space's mappings from the moment this returns.  Pass the fd to
 * be_ops.device_attach() to have the backend keep a reference; the caller
 * owns and closes its own fd, before space_destroy().  The backend keeps a
 * reference to the file until space_destroy(): device_attach() accepts
 * only these files (another group's device sees none of the mappings).
 * Returns the new fd (>= 0) or -errno (-ENOSPC: 32 files opened already).
 */
int be_type1_device_open(struct be_space *space, const char *name);

/*
 * be_iommufd_unmap_cut - unmap [@iova, @iova + @length) of @space even where
 * it starts or ends inside an area: the kernel first cuts those areas at
 * the range's ends.  IOMMU_IOAS_UNMAP never cuts an area (-ENOENT), which
 * is why the service maps one area per granule; iommufd cuts only in its
 * VFIO type1 compatibility (VFIO_IOMMU_UNMAP_DMA on the iommufd, vfio_compat.c)
 * and only in an IOAS without huge pages (every IOPTE PAGE_SIZE).  So
 * @space must come from a context opened with huge_pages = 0; the first
 * call makes @space its context's VFIO-compat IOAS.  What it is for:
 * map-bench's "kernel-cut" row, the kernel's cost of a design whose areas
 * span runs of granules (bench/RESULTS.md); the service does not use it.
 * Returns 0 with *@unmapped = bytes unmapped, -EOPNOTSUPP when the space
 * has huge pages, or the ioctl's -errno (reported through the context;
 * *@unmapped is then 0 even if the kernel removed some areas, as for
 * be_ops.unmap(): audit() tells what is left).
 */
int be_iommufd_unmap_cut(struct be_space *space, uint64_t iova, uint64_t length,
			 uint64_t *unmapped);

#endif /* DMASVC_BACKEND_KERNEL_H */
