/*
 * dma-service VFIO backend: vfio-pci devices on a dma-service object's IOAS
 *
 * `-device vfio-pci,host=BDF|sysfsdev=PATH|fd=N,dma-service=ds0`
 *
 * The dmasvc service binds the device's iommufd cdev to its session's
 * iommufd context and attaches it to the session's IOAS, whose mappings it
 * keeps equal to the guest RAM the dma-service object hands over (boot RAM,
 * and only the plugged blocks of virtio-mem).  So a device the guest drives
 * does DMA only into memory the guest may use, at IOVA = guest-physical
 * address.
 *
 * QEMU keeps the same open file and does everything else on it (regions,
 * IRQs, reset, hot reset, kvm-vfio); it has no iommufd of its own, so it
 * never maps: this backend registers no MemoryListener (the object's
 * listener is the one that maps), and therefore refuses what needs one:
 * a vIOMMU in front of the device, and migration (no dirty tracking).
 * Peer-to-peer DMA to other devices' BARs is not mapped either.
 *
 * Vocabulary:
 *   ds         the device's dma-service object (vbasedev->dma_service)
 *   container  one VFIODmaServiceContainer per (address space, ds), in the
 *              VFIOAddressSpace's list like the other backends' containers
 *   valve      when the session breaks, the object blocks the DMA of every
 *              device (dma-service.c:ds_block_devices); detach then sends
 *              nothing to the service
 *
 * Design and sources: docs/qemu-vfio-backend.md of dmasvc.
 * Locking: everything here runs with the BQL held.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <linux/vfio.h>

#include "hw/vfio/vfio-common.h"
#include "hw/qdev-core.h"
#include "migration/blocker.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "exec/address-spaces.h"
#include "system/dma-service.h"
#include "pci.h"
#include "trace.h"

#define TYPE_HOST_IOMMU_DEVICE_DMA_SERVICE_VFIO \
    TYPE_HOST_IOMMU_DEVICE "-dma-service-vfio"

/* A device's migration blocker, owned by its container. */
typedef struct VFIODmaServiceDev {
    VFIODevice *vbasedev;
    Error *blocker;            /* registered with migrate_add_blocker */
    QLIST_ENTRY(VFIODmaServiceDev) next;
} VFIODmaServiceDev;

/*
 * @ds must be the first word after the base: container.c's
 * vfio_connect_container casts every container of the space to
 * VFIOContainer and passes the int there (VFIOContainer.fd) to
 * VFIO_GROUP_SET_CONTAINER; a pointer's low half there fails with EBADF
 * instead of naming some open file.
 */
typedef struct VFIODmaServiceContainer {
    VFIOContainerBase bcontainer;
    Object *ds;                /* the object its devices are attached to */
    QLIST_HEAD(, VFIODmaServiceDev) devs;
} VFIODmaServiceContainer;

OBJECT_DECLARE_SIMPLE_TYPE(VFIODmaServiceContainer, VFIO_IOMMU_DMA_SERVICE)

/*
 * vfio_dma_service_container_get: the container for (@space, @ds), created
 * (with the page size as the only page size, no IOVA ranges and no
 * listener) if there is none.  Never fails.
 */
static VFIODmaServiceContainer *
vfio_dma_service_container_get(VFIOAddressSpace *space, Object *ds)
{
    VFIODmaServiceContainer *container;
    VFIOContainerBase *bcontainer;

    QLIST_FOREACH(bcontainer, &space->containers, next) {
        if (object_dynamic_cast(OBJECT(bcontainer),
                                TYPE_VFIO_IOMMU_DMA_SERVICE) &&
            VFIO_IOMMU_DMA_SERVICE(bcontainer)->ds == ds) {
            return VFIO_IOMMU_DMA_SERVICE(bcontainer);
        }
    }
    container = VFIO_IOMMU_DMA_SERVICE(object_new(TYPE_VFIO_IOMMU_DMA_SERVICE));
    container->ds = ds;
    QLIST_INIT(&container->devs);
    bcontainer = &container->bcontainer;
    bcontainer->pgsizes = qemu_real_host_page_size();
    bcontainer->dma_max_mappings = dma_service_max_areas(ds);
    bcontainer->initialized = true;
    vfio_address_space_insert(space, bcontainer);
    trace_vfio_dma_service_container_new(object_get_canonical_path_component(ds),
                                         bcontainer->dma_max_mappings);
    return container;
}

/*
 * vfio_dma_service_container_put: free @container once it has no devices
 * (its finalize leaves the space), then the space once it has no
 * containers.  Never fails.
 */
static void vfio_dma_service_container_put(VFIODmaServiceContainer *container)
{
    VFIOAddressSpace *space = container->bcontainer.space;

    if (QLIST_EMPTY(&container->bcontainer.device_list)) {
        object_unref(container);
    }
    vfio_put_address_space(space);
}

/*
 * vfio_dma_service_refuse: what this backend cannot do, before anything is
 * sent to the service: a vIOMMU (its own address space; the device would
 * DMA at IOVAs the service never maps), an mdev (no IOMMU of its own),
 * enable-migration=on (no dirty tracking), or an object that cannot take
 * devices (dma_service_check_usable).
 *
 * Returns: true (and @errp set) if the device must be refused.
 */
static bool vfio_dma_service_refuse(VFIODevice *vbasedev, AddressSpace *as,
                                    Error **errp)
{
    if (as != &address_space_memory) {
        error_setg(errp, "dma-service maps guest-physical memory only; vIOMMU"
                   " (AS '%s') in front of the device: remove it or use"
                   " iommufd=", as->name);
        return true;
    }
    if (vbasedev->mdev) {
        error_setg(errp, "dma-service cannot take a mediated device (mdev):"
                   " it does not DMA through an IOMMU of its own");
        return true;
    }
    if (vbasedev->enable_migration == ON_OFF_AUTO_ON) {
        error_setg(errp, "dma-service devices cannot migrate: the service does"
                   " no dirty tracking; drop enable-migration=on");
        return true;
    }
    return !dma_service_check_usable(vbasedev->dma_service, errp);
}

/*
 * vfio_dma_service_attach: VFIOIOMMUClass.attach_device, from
 * common.c:vfio_attach_device during vfio-pci realize, after the hiod was
 * created (non-mdev) and before the rest of realize uses vbasedev->fd.
 *
 * Refuses first (vfio_dma_service_refuse), blocks migration with its own
 * blocker, in every mode (pci.c skips vfio_migration_realize for these
 * devices, so no savevm handlers and no VFIO blocker hiding this one's
 * text; AUTO reads as OFF), before anything reaches the service, so
 * -only-migratable refuses the device with no DEVICE_ATTACH; then gets the
 * fd (host= and sysfsdev=: the device's cdev; fd=: as given), adds it to
 * kvm-vfio, has the service bind and attach it (dma_service_device_attach,
 * holding a reference on ds until detach), joins the container, realizes
 * the hiod and reads the device info.
 *
 * @name: the device's name for the kernel (unused: the cdev needs none)
 * @vbasedev: the device; ->dma_service set, ->iommufd not
 * @as: pci_device_iommu_address_space of the device
 * @errp: why it failed
 *
 * Returns: true with vbasedev->bcontainer set.  On failure every step is
 * undone and the fd, whether opened here or passed with fd=, is closed.
 */
static bool vfio_dma_service_attach(const char *name, VFIODevice *vbasedev,
                                    AddressSpace *as, Error **errp)
{
    Object *ds = vbasedev->dma_service;
    VFIODmaServiceContainer *container;
    VFIOContainerBase *bcontainer;
    struct vfio_device_info *info;
    VFIODmaServiceDev *dev = NULL;
    int fd;

    if (vfio_dma_service_refuse(vbasedev, as, errp)) {
        goto err_close;
    }
    dev = g_new0(VFIODmaServiceDev, 1);
    dev->vbasedev = vbasedev;
    error_setg(&dev->blocker, "%s: dma-service devices cannot migrate: the"
               " service does no dirty tracking", vbasedev->name);
    if (migrate_add_blocker(&dev->blocker, errp) < 0) {
        /* the blocker was freed */
        g_clear_pointer(&dev, g_free);
        goto err_close;
    }

    if (vbasedev->fd < 0) {
        fd = iommufd_cdev_getfd(vbasedev->sysfsdev, errp);
        if (fd < 0) {
            goto err_close;
        }
        vbasedev->fd = fd;
    }
    fd = vbasedev->fd;
    if (vfio_kvm_device_add_fd(fd, errp)) {
        goto err_close;
    }

    object_ref(ds);
    if (!dma_service_device_attach(ds, vbasedev, errp)) {
        goto err_unref;
    }

    container = vfio_dma_service_container_get(vfio_get_address_space(as), ds);
    bcontainer = &container->bcontainer;
    if (!vfio_device_hiod_realize(vbasedev, errp)) {
        goto err_container;
    }
    info = vfio_get_device_info(fd);
    if (!info) {
        error_setg_errno(errp, errno, "error getting device info");
        goto err_container;
    }

    if (vbasedev->enable_migration == ON_OFF_AUTO_AUTO) {
        vbasedev->enable_migration = ON_OFF_AUTO_OFF;
    }
    QLIST_INSERT_HEAD(&container->devs, dev, next);

    vbasedev->group = NULL;
    vbasedev->num_irqs = info->num_irqs;
    vbasedev->num_regions = info->num_regions;
    vbasedev->flags = info->flags;
    vbasedev->reset_works = !!(info->flags & VFIO_DEVICE_FLAGS_RESET);
    vbasedev->bcontainer = bcontainer;
    QLIST_INSERT_HEAD(&bcontainer->device_list, vbasedev, container_next);
    QLIST_INSERT_HEAD(&vfio_device_list, vbasedev, global_next);
    trace_vfio_dma_service_attach(vbasedev->name, fd, vbasedev->devid,
                                  vbasedev->num_irqs, vbasedev->num_regions,
                                  vbasedev->flags);
    g_free(info);
    return true;

err_container:
    vfio_dma_service_container_put(container);
    dma_service_device_detach(ds, vbasedev);
err_unref:
    vfio_kvm_device_del_fd(fd, NULL);
    object_unref(ds);
err_close:
    if (vbasedev->fd >= 0) {
        close(vbasedev->fd);
        vbasedev->fd = -1;
    }
    if (dev) {
        migrate_del_blocker(&dev->blocker);
        g_free(dev);
    }
    return false;
}

/*
 * vfio_dma_service_detach: VFIOIOMMUClass.detach_device, from
 * common.c:vfio_detach_device at the device's last unref (after unrealize,
 * after the hiod's unref).  The order matters: the service detaches the
 * device from the IOAS before QEMU's last close ends the bind, and ds goes
 * (if it was object-deleted: BYE) only after its last device.  Never fails.
 *
 * @vbasedev: an attached device
 */
static void vfio_dma_service_detach(VFIODevice *vbasedev)
{
    VFIOContainerBase *bcontainer = vbasedev->bcontainer;
    VFIODmaServiceContainer *container = VFIO_IOMMU_DMA_SERVICE(bcontainer);
    Object *ds = container->ds;
    VFIODmaServiceDev *dev;
    Error *err = NULL;

    QLIST_REMOVE(vbasedev, global_next);
    QLIST_REMOVE(vbasedev, container_next);
    vbasedev->bcontainer = NULL;

    QLIST_FOREACH(dev, &container->devs, next) {
        if (dev->vbasedev == vbasedev) {
            QLIST_REMOVE(dev, next);
            migrate_del_blocker(&dev->blocker);
            g_free(dev);
            break;
        }
    }

    dma_service_device_detach(ds, vbasedev);
    if (vfio_kvm_device_del_fd(vbasedev->fd, &err)) {
        error_report_err(err);
    }
    vfio_dma_service_container_put(container);
    trace_vfio_dma_service_detach(vbasedev->name, vbasedev->fd);
    close(vbasedev->fd);
    vbasedev->fd = -1;
    object_unref(ds);
}

/*
 * vfio_dma_service_find_by_devid: the realized vfio-pci device of @ds with
 * kernel id @devid in the session's context, or NULL.  Only devices of this
 * backend on the same ds share that context; ids in other contexts (other
 * objects, QEMU's own iommufd) are unrelated numbers.
 */
static VFIOPCIDevice *vfio_dma_service_find_by_devid(Object *ds, __u32 devid,
                                                     VFIODevice *reset_dev)
{
    VFIODevice *vbasedev;

    if (devid == reset_dev->devid || devid == VFIO_PCI_DEVID_OWNED) {
        return NULL;
    }
    QLIST_FOREACH(vbasedev, &vfio_device_list, global_next) {
        if (!object_dynamic_cast(OBJECT(vbasedev->bcontainer),
                                 TYPE_VFIO_IOMMU_DMA_SERVICE) ||
            VFIO_IOMMU_DMA_SERVICE(vbasedev->bcontainer)->ds != ds ||
            vbasedev->devid != devid) {
            continue;
        }
        if (!vbasedev->dev->realized ||
            vbasedev->type != VFIO_DEVICE_TYPE_PCI) {
            return NULL;
        }
        return container_of(vbasedev, VFIOPCIDevice, vbasedev);
    }
    return NULL;
}

/*
 * vfio_dma_service_pci_hot_reset: VFIOIOMMUClass.pci_hot_reset, from
 * pci.c:vfio_pci_hot_reset (vfio_pci_reset for one device, @single;
 * vfio_reset_handler for all of a bus).  As
 * iommufd.c:iommufd_cdev_pci_hot_reset: the kernel reports dependent
 * devices by their id in the device's iommufd context, here the session's
 * (VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED when the session owns them all),
 * and takes a zero-length device list.
 *
 * Returns: 0 or -errno (-EPERM: a dependent device is not owned; -EINVAL:
 * @single but other realized devices would be reset too, or !@single and
 * none would).
 */
static int vfio_dma_service_pci_hot_reset(VFIODevice *vbasedev, bool single)
{
    VFIOPCIDevice *vdev = container_of(vbasedev, VFIOPCIDevice, vbasedev);
    Object *ds = VFIO_IOMMU_DMA_SERVICE(vbasedev->bcontainer)->ds;
    struct vfio_pci_hot_reset_info *info = NULL;
    struct vfio_pci_dependent_device *devices;
    struct vfio_pci_hot_reset *reset;
    bool multi = false;
    int ret, i;

    trace_vfio_pci_hot_reset(vbasedev->name, single ? "one" : "multi");
    if (!single) {
        vfio_pci_pre_reset(vdev);
    }
    vbasedev->needs_reset = false;

    ret = vfio_pci_get_pci_hot_reset_info(vdev, &info);
    if (ret) {
        goto out;
    }
    devices = &info->devices[0];
    if (!(info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID) ||
        !(info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED)) {
        if (!vdev->has_pm_reset) {
            for (i = 0; i < info->count; i++) {
                if (!(info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID) ||
                    devices[i].devid == VFIO_PCI_DEVID_NOT_OWNED) {
                    error_report("vfio: Cannot reset device %s, depends on"
                                 " device %04x:%02x:%02x.%x which is not"
                                 " owned by the session.", vbasedev->name,
                                 devices[i].segment, devices[i].bus,
                                 PCI_SLOT(devices[i].devfn),
                                 PCI_FUNC(devices[i].devfn));
                }
            }
        }
        ret = -EPERM;
        goto out;
    }

    trace_vfio_pci_hot_reset_has_dep_devices(vbasedev->name);
    for (i = 0; i < info->count; i++) {
        VFIOPCIDevice *tmp;

        trace_vfio_dma_service_hot_reset_dep(devices[i].segment, devices[i].bus,
                                             PCI_SLOT(devices[i].devfn),
                                             PCI_FUNC(devices[i].devfn),
                                             devices[i].devid);
        tmp = vfio_dma_service_find_by_devid(ds, devices[i].devid, vbasedev);
        if (!tmp) {
            continue;
        }
        if (single) {
            ret = -EINVAL;
            goto out;
        }
        vfio_pci_pre_reset(tmp);
        tmp->vbasedev.needs_reset = false;
        multi = true;
    }
    if (!single && !multi) {
        ret = -EINVAL;
        goto out;
    }

    /* A zero-length list: the kernel checks ownership by the context. */
    reset = g_malloc0(sizeof(*reset));
    reset->argsz = sizeof(*reset);
    ret = ioctl(vbasedev->fd, VFIO_DEVICE_PCI_HOT_RESET, reset) ? -errno : 0;
    g_free(reset);
    trace_vfio_pci_hot_reset_result(vbasedev->name,
                                    ret ? strerror(-ret) : "Success");

    for (i = 0; i < info->count; i++) {
        VFIOPCIDevice *tmp = vfio_dma_service_find_by_devid(ds,
                                                            devices[i].devid,
                                                            vbasedev);

        if (tmp) {
            vfio_pci_post_reset(tmp);
        }
    }
out:
    if (!single) {
        vfio_pci_post_reset(vdev);
    }
    g_free(info);
    return ret;
}

static void vfio_iommu_dma_service_class_init(ObjectClass *klass, void *data)
{
    VFIOIOMMUClass *vioc = VFIO_IOMMU_CLASS(klass);

    vioc->hiod_typename = TYPE_HOST_IOMMU_DEVICE_DMA_SERVICE_VFIO;
    /* no dma_map/dma_unmap: no MemoryListener calls them */
    vioc->attach_device = vfio_dma_service_attach;
    vioc->detach_device = vfio_dma_service_detach;
    vioc->pci_hot_reset = vfio_dma_service_pci_hot_reset;
}

/* ---- HostIOMMUDevice: only vIOMMUs read it, and they are refused ----- */

/*
 * hiod_dma_service_vfio_realize: HostIOMMUDeviceClass.realize, from
 * vfio_device_hiod_realize in attach.  Needs nothing from the kernel (QEMU
 * has no iommufd to ask, IOMMU_GET_HW_INFO is the service's).  Never fails.
 */
static bool hiod_dma_service_vfio_realize(HostIOMMUDevice *hiod, void *opaque,
                                          Error **errp)
{
    VFIODevice *vdev = opaque;

    hiod->name = g_strdup(vdev->name);
    hiod->agent = opaque;
    return true;
}

/* hiod_dma_service_vfio_get_cap: AW_BITS (64 without IOVA ranges), or -EINVAL. */
static int hiod_dma_service_vfio_get_cap(HostIOMMUDevice *hiod, int cap,
                                         Error **errp)
{
    switch (cap) {
    case HOST_IOMMU_DEVICE_CAP_AW_BITS:
        return vfio_device_get_aw_bits(hiod->agent);
    default:
        error_setg(errp, "%s: unsupported capability %x", hiod->name, cap);
        return -EINVAL;
    }
}

static GList *hiod_dma_service_vfio_get_iova_ranges(HostIOMMUDevice *hiod)
{
    VFIODevice *vdev = hiod->agent;

    g_assert(vdev);
    return vfio_container_get_iova_ranges(vdev->bcontainer);
}

static uint64_t hiod_dma_service_vfio_get_page_size_mask(HostIOMMUDevice *hiod)
{
    VFIODevice *vdev = hiod->agent;

    g_assert(vdev);
    return vfio_container_get_page_size_mask(vdev->bcontainer);
}

static void hiod_dma_service_vfio_class_init(ObjectClass *oc, void *data)
{
    HostIOMMUDeviceClass *hiodc = HOST_IOMMU_DEVICE_CLASS(oc);

    hiodc->realize = hiod_dma_service_vfio_realize;
    hiodc->get_cap = hiod_dma_service_vfio_get_cap;
    hiodc->get_iova_ranges = hiod_dma_service_vfio_get_iova_ranges;
    hiodc->get_page_size_mask = hiod_dma_service_vfio_get_page_size_mask;
}

static const TypeInfo types[] = {
    {
        .name = TYPE_VFIO_IOMMU_DMA_SERVICE,
        .parent = TYPE_VFIO_IOMMU,
        .instance_size = sizeof(VFIODmaServiceContainer),
        .class_init = vfio_iommu_dma_service_class_init,
    }, {
        .name = TYPE_HOST_IOMMU_DEVICE_DMA_SERVICE_VFIO,
        .parent = TYPE_HOST_IOMMU_DEVICE,
        .class_init = hiod_dma_service_vfio_class_init,
    },
};

DEFINE_TYPES(types)
