/*
 * dma-service: what the VFIO backend (hw/vfio/vfio-dma-service.c) needs
 * from the dma-service object (backends/dma-service.c)
 *
 * The object owns the session with the dmasvc service; the backend owns
 * QEMU's side of each device (its container, hiod, migration blocker) and
 * attaches a device to the session's IOAS only through these calls, so
 * that the object knows its devices: object-del is refused while it has
 * any, and a broken session blocks their DMA (the safety valve) before a
 * plug is vetoed.
 *
 * All of these run with the BQL held.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef SYSTEM_DMA_SERVICE_H
#define SYSTEM_DMA_SERVICE_H

#include "qom/object.h"

#define TYPE_DMA_SERVICE "dma-service"

struct VFIODevice;

/**
 * dma_service_check_usable: can devices attach to @ds now?
 *
 * Called by the backend before it sends anything for a device.  @ds must
 * be a dma-service object whose creation completed, whose session is not
 * broken, and which found no configuration error while it handed the
 * guest's RAM over (that text, e.g. the service's ENOSPC and suggested
 * granule, is passed on).
 *
 * @ds: the device's dma-service link
 * @errp: set when it cannot be used
 *
 * Returns: true if a device may attach now.
 */
bool dma_service_check_usable(Object *ds, Error **errp);

/**
 * dma_service_device_attach: attach @vbasedev to @ds's session
 *
 * Sends @vbasedev->fd (an iommufd cdev, open and not bound) to the service,
 * which binds it to the session's iommufd context and attaches it to the
 * session's IOAS; the wait is the object's timeout-ms plus 1 s per GiB
 * populated (the first attach pins every populated area in one ioctl).
 * On success the object records the device (object-del is refused until
 * dma_service_device_detach) and @vbasedev->devid is the kernel's id of the
 * device in that context (for hot reset).  The caller keeps its fd: it is
 * the same open file, usable for everything but IOMMU ioctls.
 *
 * @ds: the device's dma-service link (dma_service_check_usable passed)
 * @vbasedev: the device; @vbasedev->fd and ->name are set
 * @errp: the service's text on failure
 *
 * Returns: true on success.  On failure nothing is recorded, and the file
 * may still be bound to the service's context: it must be opened anew
 * before another try.
 */
bool dma_service_device_attach(Object *ds, struct VFIODevice *vbasedev,
                               Error **errp);

/**
 * dma_service_device_detach: undo dma_service_device_attach
 *
 * Called from the backend's detach_device, before the caller's last close
 * of the fd.  The service detaches the device and closes its duplicate;
 * when the session broke (the device was blocked, or the connection is
 * gone) nothing is sent.  Never fails: a refusal is only reported.
 *
 * @ds: the object @vbasedev was attached to
 * @vbasedev: an attached device
 */
void dma_service_device_detach(Object *ds, struct VFIODevice *vbasedev);

/**
 * dma_service_max_areas: the session's area budget, for
 * VFIOContainerBase.dma_max_mappings (only read to warn, and only by a
 * MemoryListener the backend does not register).
 *
 * @ds: a usable dma-service object
 *
 * Returns: the budget, capped at UINT_MAX; 0 when unlimited or unknown.
 */
unsigned int dma_service_max_areas(Object *ds);

#endif /* SYSTEM_DMA_SERVICE_H */
