/* SPDX-License-Identifier: MIT */
/*
 * backend.h - the one interface every IOMMU backend implements.
 *
 * A backend owns "spaces": IOMMU address spaces (an iommufd IOAS, a VFIO type1
 * container, or the software model's table).  By default the daemon maps one
 * area per granule and unmaps runs of whole areas, and a backend never splits
 * an area.  A backend opened with be_config.cut_areas makes spaces whose
 * unmap() cuts areas (unmap_cuts()); the daemon then maps runs of granules as
 * one area each ("areas over runs", docs/design.md).
 *
 * Vocabulary (used in every backend file):
 *   area    one successful map call: [iova, iova + length)
 *   end     exclusive bound (iova + length); computed with overflow checks
 *   last    inclusive bound (iova + length - 1); used where end can overflow
 *
 * Errors: every op returns 0 (or a count) on success and -errno on failure;
 * no op reads or sets errno for its caller.
 *
 * Threading: map() may be called concurrently from several worker threads on
 * the same space for disjoint ranges (iommufd allows it; a backend that cannot
 * must serialise internally).  unmap(), device_*(), audit(), limits() and
 * space_destroy() are called from one thread at a time per space and never
 * while a map() on that space is in flight.  open()/close() are called once.
 */
#ifndef DMASVC_BACKEND_H
#define DMASVC_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Opaque here; each backend's file defines both for itself (soft.c, iommufd.c, type1.c). */
struct be_ctx;   /* one opened backend (an open /dev/iommu, a model instance) */
struct be_space; /* one IOMMU address space owned by a be_ctx */

#define BE_MAX_IOVA_RANGES 16

enum be_prot {
	BE_PROT_READ = 1u << 0,  /* device may read guest memory */
	BE_PROT_WRITE = 1u << 1, /* device may write guest memory */
};

/* An allowed IOVA window, both bounds inclusive (iommufd's convention). */
struct be_iova_range {
	uint64_t start;
	uint64_t last;
};

/* What a space can hold; filled by be_ops.limits(). */
struct be_limits {
	uint64_t max_areas;     /* area budget; UINT64_MAX when unlimited */
	uint64_t pgsize_bitmap; /* IOMMU page sizes; bit n set = 2^n bytes */
	uint32_t nr_ranges;     /* valid entries in ranges[] */
	struct be_iova_range ranges[BE_MAX_IOVA_RANGES];
};

/*
 * be_limits_allow: whether [@iova, @last] lies inside one allowed range of
 * @lim (no ranges: everything is allowed).  limits.c.
 */
bool be_limits_allow(const struct be_limits *lim, uint64_t iova, uint64_t last);

/*
 * be_limits_format: @lim's ranges as "0xA-0xL 0xA-0xL ..." ("any" when it
 * has none) into @buf, NUL-terminated, cut short with "..." when it does
 * not fit.  Never fails.  limits.c.
 */
void be_limits_format(const struct be_limits *lim, char *buf, size_t len);

/*
 * Where the bytes of a map come from.  vaddr is the service's own MAP_SHARED
 * mapping of the memory at fd_offset; fd/fd_offset name the same bytes for
 * backends that map files directly (IOMMU_IOAS_MAP_FILE).  fd may be -1.
 */
struct be_map_src {
	void *vaddr;
	int fd;
	uint64_t fd_offset;
};

/*
 * be_report_fn - how a backend reports what it cannot return with its
 * context: one line (no newline) naming the backend, the call, the IOVA
 * range and the error, or a "BUG:" in a path that never fails.  Called from
 * any thread (map runs on workers), so it must be thread-safe; it must not
 * fail or call back into the backend.  The daemon passes its logger (one
 * priority, one rate limit for every backend line).
 */
typedef void (*be_report_fn)(void *arg, const char *line);

/* Backend-independent configuration passed to be_ops.open(). */
struct be_config {
	const char *path;       /* /dev/iommu, /dev/vfio/N, or NULL for the model */
	uint64_t max_areas;     /* operator budget override; 0 = backend default */
	void *backend_private;  /* backend-specific knobs (e.g. soft model faults) */
	be_report_fn report;    /* NULL: lines go to stderr */
	void *report_arg;       /* passed to report; must outlive the backend */
	/*
	 * cut_areas: make spaces whose unmap() cuts areas (be_ops.unmap_cuts).
	 * iommufd: every IOAS without huge pages (open() fails with -EINVAL
	 * if its config asks for huge pages) and the VFIO-compat unmap; the
	 * model emulates the cut; type1 cannot (open() fails, -EOPNOTSUPP).
	 */
	bool cut_areas;
};

/*
 * be_audit_fn - called by be_ops.audit() for each mapped extent, in
 * increasing IOVA order.  Returning non-zero stops the walk and audit()
 * returns that value.
 */
typedef int (*be_audit_fn)(void *arg, uint64_t iova, uint64_t length);

#define BE_KEPT_MAX_DEVICES 16

/*
 * What outlives the service's process for one space (docs/restart.md): the
 * kernel objects are held by these fds, so a new instance that gets them
 * back (systemd's fd store, or an exec) adopts the space as it is.
 */
struct be_kept_space {
	int fd;              /* the space's own iommufd context */
	uint32_t ioas_id;
	uint32_t nr_devs;
	struct {
		int fd;          /* the VFIO cdev file bound to @fd's context */
		uint32_t dev_id; /* the kernel's device id (device_attach's handle) */
	} devs[BE_KEPT_MAX_DEVICES];
};

struct be_ops {
	/* @name: short name for logs and stats ("iommufd", "type1", "soft"). */
	const char *name;

	/*
	 * @open: open the backend described by @cfg.
	 * Returns 0 and sets *@out, or -errno (-ENOENT when the device node is
	 * missing, -EOPNOTSUPP when the kernel lacks the interface).
	 */
	int (*open)(const struct be_config *cfg, struct be_ctx **out);

	/* @close: release the backend; every space must already be destroyed. */
	void (*close)(struct be_ctx *ctx);

	/* @space_create: a new empty space.  Returns 0 or -errno. */
	int (*space_create)(struct be_ctx *ctx, struct be_space **out);

	/*
	 * @space_destroy: unmap every area still in the space, release every
	 * pin, detach every device and free the space.  Never fails: a kernel
	 * error here is logged as a bug, not returned.
	 */
	void (*space_destroy)(struct be_space *space);

	/* @limits: fill *@out for @space.  Returns 0 or -errno. */
	int (*limits)(struct be_space *space, struct be_limits *out);

	/*
	 * @map: map [@iova, @iova + @length) to @src with @prot (enum be_prot),
	 * pinning the pages.  One call makes exactly one area.
	 * Returns 0; -EEXIST if any byte is already mapped; -ENOSPC when the
	 * area budget is exhausted; -ERANGE/-EINVAL outside the allowed IOVA
	 * ranges or misaligned; -ENOMEM/-EFAULT when pinning fails.  On error
	 * nothing was mapped or pinned.  iommufd pins only while a device is
	 * attached to the space: before the first attach a map records the
	 * area only, and the attach pins (and may fail with -ENOMEM/-EFAULT).
	 */
	int (*map)(struct be_space *space, uint64_t iova, uint64_t length,
		   const struct be_map_src *src, unsigned int prot);

	/*
	 * @pins_vaddr_at_map: whether a map() of @space made now pins through
	 * src->vaddr before it returns (a GUP walk of the caller's page
	 * tables).  Then a fault the caller made fail (a userfaultfd guard
	 * over a hole, dmasvc's residency rule) fails that map with -EFAULT
	 * (-ENOMEM for the model's mlock) and nothing is mapped or pinned.
	 * false when a map pins nothing yet (iommufd without a device), may
	 * pin from the file instead (IOMMU_IOAS_MAP_FILE) or cannot tell.
	 * The answer holds until a device is attached or detached.  Optional:
	 * NULL means false.
	 */
	bool (*pins_vaddr_at_map)(struct be_space *space);

	/*
	 * @unmap_cuts: whether unmap() of @space cuts areas (below).  Fixed
	 * for the space's life: set at space_create() (be_config.cut_areas)
	 * or read back from the kernel at space_adopt().  Optional: NULL
	 * means false.
	 */
	bool (*unmap_cuts)(struct be_space *space);

	/*
	 * @unmap: unmap every area inside [@iova, @iova + @length); the range
	 * may cover many whole areas but may not cut one.  Except when
	 * unmap_cuts(@space): then an area that starts before @iova or ends
	 * after the range is first cut there (its parts outside stay mapped
	 * and pinned) and -ENOENT means only that nothing was mapped in the
	 * range; the range must then be 4 KiB-aligned (-EINVAL).  A failed
	 * cut (-ENOMEM) may leave an area cut in two, both parts mapped.
	 * Sets *@unmapped to the bytes actually unmapped, also on error.
	 * Returns 0; -ENOENT when nothing is mapped there *or* when the range
	 * cuts an area (areas before the cut may already be gone: see
	 * *@unmapped; never infer state from -ENOENT); -EBUSY while a map in
	 * the range is in flight.  iommufd cannot say how much went before a
	 * failure (the ioctl copies nothing back on error): it reports 0, and
	 * the caller re-learns the range with audit().
	 */
	int (*unmap)(struct be_space *space, uint64_t iova, uint64_t length,
		     uint64_t *unmapped);

	/*
	 * @device_attach: attach the VFIO device behind @device_fd (a cdev or
	 * group device fd; the backend dups what it keeps) to @space.  Sets
	 * *@dev_id to a handle for device_detach() (with @device_handle_is_devid,
	 * the kernel's device id too).  Optional: NULL means the
	 * backend has no devices (the model), and the daemon answers
	 * -EOPNOTSUPP.  Returns 0 or -errno: -EADDRINUSE when a mapped area
	 * lies where the device's domain reserves IOVA (MSI window, reserved
	 * regions, outside its aperture); -EXDEV (type1) when the fd is not a
	 * device of the group the backend holds.  After a successful attach
	 * limits() may report narrower IOVA ranges (iommufd reports the full
	 * range until a domain reserves its windows): the caller re-checks.
	 */
	int (*device_attach)(struct be_space *space, int device_fd,
			     uint32_t *dev_id);

	/* @device_detach: undo device_attach().  Never fails. Optional with it. */
	void (*device_detach)(struct be_space *space, uint32_t dev_id);

	/*
	 * @device_reserved: the IOVA ranges the device behind @device_fd
	 * reserves when attached (its MSI window and reserved regions; not the
	 * domain's aperture), at most @max into @out, bounds inclusive.  Used
	 * only to explain a refused attach (-EADDRINUSE: the kernel found a
	 * mapped area inside one).  Optional (NULL: not known).  Returns the
	 * number of ranges or -errno.
	 */
	int (*device_reserved)(struct be_space *space, int device_fd,
			       struct be_iova_range *out, uint32_t max);

	/*
	 * @device_handle_is_devid: device_attach()'s handle is the kernel's
	 * device id in the space's iommufd context (iommufd: out_devid of
	 * VFIO_DEVICE_BIND_IOMMUFD), which a VMM needs to match hot-reset info.
	 */
	bool device_handle_is_devid;

	/*
	 * @audit: report, through @fn, the extents the backend really holds in
	 * [@iova, @iova + @length).  A backend that can list its areas reports
	 * each area; one that cannot probes at @probe_granule and reports each
	 * mapped granule (adjacent reports may be merged).  Does not change
	 * the space.  Returns 0, fn's non-zero value, or -errno.
	 */
	int (*audit)(struct be_space *space, uint64_t iova, uint64_t length,
		     uint64_t probe_granule, be_audit_fn fn, void *arg);

	/*
	 * Restart (docs/restart.md).  Optional, all three or none: NULL means
	 * the backend's state dies with the process (type1, the model).
	 *
	 * @space_keep: fill *@out with the fds that hold @space's kernel
	 * objects; they stay owned by the backend.  Returns 0 or -errno.
	 *
	 * @space_adopt: a space from fds a previous instance kept; ownership
	 * of every fd in @in moves to the backend, also on error (closed).
	 * Checks that the IOAS and each device are what @in says; nothing is
	 * attached, detached, mapped or unmapped.  Returns 0 and *@out, or
	 * -errno (-ENOENT: no such IOAS in that context; -ENODEV: a device
	 * fd is not a VFIO device).
	 *
	 * @space_forget: free @space and close its fds without unmapping or
	 * detaching anything (the kept copies hold the kernel objects).
	 * Never fails.
	 */
	int (*space_keep)(struct be_space *space, struct be_kept_space *out);
	int (*space_adopt)(struct be_ctx *ctx, const struct be_kept_space *in,
			   struct be_space **out);
	void (*space_forget)(struct be_space *space);
};

/* The backends built into this binary; NULL where not compiled in. */
extern const struct be_ops be_soft_ops;
extern const struct be_ops be_iommufd_ops; /* iommufd.c: /dev/iommu + VFIO cdevs */
extern const struct be_ops be_type1_ops;   /* type1.c: /dev/vfio/vfio + one group */

#endif /* DMASVC_BACKEND_H */
