// SPDX-License-Identifier: MIT
/*
 * iommufd.c - be_iommufd_ops: the backend over Linux iommufd (/dev/iommu).
 *
 * One be_ctx is one open /dev/iommu; one be_space is one IOAS in it.  A map
 * is one IOMMU_IOAS_MAP (or IOMMU_IOAS_MAP_FILE) with a fixed IOVA, so one
 * area per map; an unmap is one IOMMU_IOAS_UNMAP over whole areas.  Devices
 * are VFIO cdevs bound to the ctx's iommufd and attached to the IOAS.
 *
 * Vocabulary (backend.h): area = one successful map; end = iova + length
 * (exclusive, overflow checked); last = end - 1.
 *
 * Facts this file relies on (drivers/iommu/iommufd/, Linux 6.12):
 * - IOMMU_IOAS_UNMAP removes areas in increasing IOVA order and stops with
 *   -ENOENT at the first area that sticks out of the range; the areas before
 *   it are gone, but the ioctl copies nothing back on error, so the number
 *   of bytes already unmapped is lost.  unmap() then reports *unmapped = 0
 *   and the caller must re-learn the range with audit().  -ENOENT also means
 *   "nothing mapped there".  Neither is ever taken as success here.
 * - IOMMU_IOAS_COPY of [iova, iova + n) succeeds exactly when the range is
 *   covered, without holes, by areas of the source IOAS (several areas, or
 *   part of one, are fine), and -ENOENT otherwise.  It shares the pinned
 *   pages (no second pin) and, into an IOAS with no device, programs no
 *   IOMMU.  audit() uses it as a non-destructive presence probe into a
 *   scratch IOAS that lives only for the audit call, first over the whole
 *   range, then over halves of the spans that have holes.
 * - iommufd pins pages while filling a domain: with no device attached a
 *   map only records the area (nothing pinned, a bad VA not yet noticed);
 *   the first attach pins every area and may fail for that reason; the
 *   last detach releases every pin.
 * - Attaching a device narrows the IOAS: the domain's aperture and the
 *   device's reserved regions (MSI window; iopt_table_add_domain() and
 *   iopt_table_enforce_dev_resv_regions()) become reserved IOVA.  The
 *   attach fails with -EADDRINUSE when an existing *area* lies there; a
 *   registered but unmapped range is not the kernel's business, so the
 *   caller re-reads IOMMU_IOAS_IOVA_RANGES after the attach (the ranges
 *   are the holes between reserved spans; full before any attach).  Maps
 *   into reserved IOVA fail with -EINVAL (iopt_check_iova()).
 * - IOMMU_IOAS_MAP_FILE (Linux >= 6.13, command 0x8f, struct checked against
 *   the upstream uapi header) is unknown to 6.12 and fails with ENOTTY; the
 *   first ENOTTY switches this ctx to IOMMU_IOAS_MAP of the vaddr for good.
 *   EOPNOTSUPP falls back to the vaddr for that one map only.  Never run
 *   here on a kernel that has it: the vm tier's guest is 6.12, so that path
 *   is unproven (docs/design.md).
 *
 * Threading: map() runs concurrently on one space (the kernel allows maps of
 * disjoint ranges in parallel); it only reads the ctx and space, apart from
 * the MAP_FILE state, which is atomic.  Everything else is called from one
 * thread per space (backend.h).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "dmasvc/backend.h"
#include "dmasvc/backend_kernel.h"
#include "iommufd_test_priv.h"
#include "kernel_priv.h"
#include "prefill_priv.h"

#ifndef IOMMU_IOAS_MAP_FILE
/* Linux >= 6.13 uapi (include/uapi/linux/iommufd.h); absent from 6.12. */
#define IOMMUFD_CMD_IOAS_MAP_FILE 0x8f
struct iommu_ioas_map_file {
	__u32 size;
	__u32 flags;
	__u32 ioas_id;
	__s32 fd;
	__aligned_u64 start;
	__aligned_u64 length;
	__aligned_u64 iova;
};
#define IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP_FILE)
#endif
_Static_assert(sizeof(struct iommu_ioas_map_file) == 40,
	       "iommu_ioas_map_file layout");

#define BE_NAME "iommufd"

enum iommufd_map_file_state {
	IOFD_MF_UNKNOWN = 0, /* not tried yet */
	IOFD_MF_WORKS = 1,   /* the kernel accepted it at least once */
	IOFD_MF_ABSENT = 2,  /* ENOTTY seen, or disabled by the config */
};

/*
 * The backend: where /dev/iommu is and how to set up each space's own file.
 * Immutable after open() except where noted.
 *
 * Isolation: every space opens /dev/iommu itself (its own iommufd context).
 * A client keeps its device file after DEVICE_ATTACH (it is the same open
 * file the service bound), and VFIO_DEVICE_ATTACH_IOMMUFD_PT on it may name
 * any IOAS of the context the file is bound to: with one shared context, a
 * client could move its device into another session's IOAS and DMA into
 * that VM's memory.  With a context per space, the ids it can name are its
 * own session's.
 */
struct be_ctx {
	char *path;                   /* /dev/iommu */
	int rlimit_mode;              /* -1 = kernel default; set on every space's file */
	int huge_pages;               /* -1 = kernel default */
	bool cut_areas;               /* be_config.cut_areas: huge_pages is 0 */
	uint64_t max_areas;           /* cfg->max_areas or UINT64_MAX */
	_Atomic int map_file;         /* enum iommufd_map_file_state; any thread */
	/* Live spaces: created on the control thread, destroyed there or by a
	 * session's teardown on its executor, so counted atomically; read
	 * at close() to report spaces left over. */
	atomic_uint nr_spaces;
	struct be_report rep;         /* immutable after open; any thread */
};

/* One IOAS in its own iommufd context. */
struct be_space {
	struct be_ctx *ctx;
	int fd;                       /* this space's /dev/iommu: its own context */
	uint32_t ioas_id;
	/* This IOAS is the context's VFIO-compat one: set at create or adopt
	 * for a space that cuts, else by the first be_iommufd_unmap_cut()
	 * (idempotent, so two first callers racing are harmless). */
	atomic_bool compat_ioas;
	/* unmap() cuts (VFIO_IOMMU_UNMAP_DMA): an IOAS without huge pages
	 * that is the compat one.  Immutable after create/adopt. */
	bool cuts;
	/* The cdevs bound to fd and attached to the IOAS; each handle is the
	 * kernel's out_devid.  Control thread only. */
	struct kernel_devs devs;
};

/* IOMMU_OPTION set or get of @option on @object (0 = global). */
static int iommufd_option(int fd, uint32_t option, uint16_t op, uint32_t object,
		       uint64_t *val)
{
	struct iommu_option cmd = {
		.size = sizeof(cmd),
		.option_id = option,
		.op = op,
		.object_id = object,
		.val64 = *val,
	};
	int rc = kernel_ioctl(fd, IOMMU_OPTION, &cmd);

	if (rc == 0)
		*val = cmd.val64;
	return rc;
}

/* A fresh IOAS in @fd; sets *@id.  Returns 0 or -errno (reported to @r). */
static int iommufd_ioas_alloc(const struct be_report *r, int fd, uint32_t *id)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
	int rc = kernel_ioctl(fd, IOMMU_IOAS_ALLOC, &cmd);

	if (rc < 0) {
		kernel_report(r, BE_NAME, "IOMMU_IOAS_ALLOC", 0, 0, rc);
		return rc;
	}
	*id = cmd.out_ioas_id;
	return 0;
}

/* IOMMU_DESTROY of object @id; a failure is a bug, reported to @r, not returned. */
static void iommufd_destroy_obj(const struct be_report *r, int fd, uint32_t id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };
	int rc = kernel_ioctl(fd, IOMMU_DESTROY, &cmd);

	if (rc < 0)
		kernel_report(r, BE_NAME, "BUG: IOMMU_DESTROY", 0, 0, rc);
}

/* IOMMU_IOAS_UNMAP on @ioas; *@unmapped = bytes removed (0 on error). */
static int iommufd_unmap_raw(int fd, uint32_t ioas, uint64_t iova,
			  uint64_t length, uint64_t *unmapped)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas,
		.iova = iova,
		.length = length,
	};
	int rc = kernel_ioctl(fd, IOMMU_IOAS_UNMAP, &cmd);

	*unmapped = rc < 0 ? 0 : cmd.length;
	return rc < 0 ? rc : 0;
}

/*
 * Open @path and set the global options of this new iommufd context (they
 * are valid only before its first IOAS).  Returns the fd or -errno, after
 * reporting the failure to @r.
 */
static int iommufd_context_open(const struct be_report *r, const char *path, int rlimit_mode)
{
	int fd = kernel_open(path, O_RDWR), rc;

	if (fd < 0) {
		be_reportf(r, BE_NAME ": open %s: %s", path, strerror(-fd));
		return fd;
	}
	if (rlimit_mode >= 0) {
		uint64_t val = (uint64_t)rlimit_mode;

		rc = iommufd_option(fd, IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, &val);
		if (rc < 0) {
			kernel_report(r, BE_NAME, "IOMMU_OPTION set RLIMIT_MODE", 0, 0, rc);
			close(fd);
			return rc;
		}
	}
	return fd;
}

static int iommufd_open(const struct be_config *cfg, struct be_ctx **out)
{
	const struct be_iommufd_config *kc = cfg->backend_private;
	const char *path = cfg->path ? cfg->path : "/dev/iommu";
	struct be_ctx *ctx;
	int fd;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->path = strdup(path);
	if (!ctx->path) {
		free(ctx);
		return -ENOMEM;
	}
	ctx->rlimit_mode = kc ? kc->rlimit_mode : -1;
	ctx->huge_pages = kc ? kc->huge_pages : -1;
	if (cfg->cut_areas) {
		/* The kernel cuts only in an IOAS without huge pages. */
		if (ctx->huge_pages == 1) {
			free(ctx->path);
			free(ctx);
			return -EINVAL;
		}
		ctx->huge_pages = 0;
		ctx->cut_areas = true;
	}
	ctx->max_areas = cfg->max_areas ? cfg->max_areas : UINT64_MAX;
	ctx->rep = be_report_init(cfg);
	atomic_init(&ctx->map_file, kc && kc->no_map_file ? IOFD_MF_ABSENT
							  : IOFD_MF_UNKNOWN);
	/* Fail at start, not at the first session, if the path or an option is refused. */
	fd = iommufd_context_open(&ctx->rep, ctx->path, ctx->rlimit_mode);
	if (fd < 0) {
		free(ctx->path);
		free(ctx);
		return fd;
	}
	close(fd);
	*out = ctx;
	return 0;
}

static void iommufd_close(struct be_ctx *ctx)
{

	if (!ctx)
		return;
	if (atomic_load(&ctx->nr_spaces))
		be_reportf(&ctx->rep, BE_NAME ": BUG: close with %u live spaces",
			   atomic_load(&ctx->nr_spaces));
	free(ctx->path);
	free(ctx);
}

static int iommufd_compat_set(struct be_space *sp);

static int iommufd_space_create(struct be_ctx *ctx, struct be_space **out)
{
	struct be_space *sp;
	int rc;

	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->ctx = ctx;
	sp->fd = iommufd_context_open(&ctx->rep, ctx->path, ctx->rlimit_mode);
	if (sp->fd < 0) {
		rc = sp->fd;
		goto err_free;
	}
	rc = iommufd_ioas_alloc(&ctx->rep, sp->fd, &sp->ioas_id);
	if (rc < 0)
		goto err_close;

	if (ctx->huge_pages >= 0) {
		uint64_t val = (uint64_t)ctx->huge_pages;

		rc = iommufd_option(sp->fd, IOMMU_OPTION_HUGE_PAGES,
				 IOMMU_OPTION_OP_SET, sp->ioas_id, &val);
		if (rc < 0) {
			kernel_report(&sp->ctx->rep, BE_NAME, "IOMMU_OPTION set HUGE_PAGES", 0,
				   0, rc);
			goto err_destroy_ioas;
		}
	}
	if (ctx->cut_areas) {
		rc = iommufd_compat_set(sp);
		if (rc < 0)
			goto err_destroy_ioas;
		sp->cuts = true;
	}
	atomic_fetch_add(&ctx->nr_spaces, 1);
	*out = sp;
	return 0;

err_destroy_ioas:
	iommufd_destroy_obj(&sp->ctx->rep, sp->fd, sp->ioas_id);
err_close:
	close(sp->fd);
err_free:
	free(sp);
	return rc;
}

/*
 * Detach device entry @i from the IOAS and drop it (the bind ends once the
 * caller's fd is closed too).  Never fails.
 */
static void iommufd_dev_release(struct be_space *sp, unsigned int i)
{
	struct vfio_device_detach_iommufd_pt det = { .argsz = sizeof(det) };
	int rc = kernel_ioctl(sp->devs.dev[i].fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &det);

	if (rc < 0)
		kernel_report(&sp->ctx->rep, BE_NAME, "BUG: VFIO_DEVICE_DETACH_IOMMUFD_PT", 0, 0,
			   rc);
	kernel_devs_drop(&sp->devs, i);
}

static void iommufd_space_destroy(struct be_space *sp)
{
	uint64_t unmapped;
	int rc;

	if (!sp)
		return;
	while (sp->devs.n)
		iommufd_dev_release(sp, sp->devs.n - 1);
	/* iova 0, length U64_MAX is the kernel's "unmap everything". */
	rc = iommufd_unmap_raw(sp->fd, sp->ioas_id, 0, UINT64_MAX, &unmapped);
	if (rc < 0 && rc != -ENOENT)
		kernel_report(&sp->ctx->rep, BE_NAME, "BUG: IOMMU_IOAS_UNMAP all", 0, 0, rc);
	iommufd_destroy_obj(&sp->ctx->rep, sp->fd, sp->ioas_id);
	close(sp->fd);
	atomic_fetch_sub(&sp->ctx->nr_spaces, 1);
	free(sp);
}

static int iommufd_limits(struct be_space *sp, struct be_limits *out)
{
	struct iommu_iova_range *ranges;
	struct iommu_ioas_iova_ranges cmd = {
		.size = sizeof(cmd),
		.ioas_id = sp->ioas_id,
	};
	uint32_t n;
	int rc;

	/* First ask for the count, then fetch exactly that many. */
	rc = kernel_ioctl(sp->fd, IOMMU_IOAS_IOVA_RANGES, &cmd);
	if (rc < 0 && rc != -EMSGSIZE) {
		kernel_report(&sp->ctx->rep, BE_NAME, "IOMMU_IOAS_IOVA_RANGES", 0, 0, rc);
		return rc;
	}
	n = cmd.num_iovas;
	ranges = calloc(n ? n : 1, sizeof(*ranges));
	if (!ranges)
		return -ENOMEM;
	cmd.num_iovas = n;
	cmd.allowed_iovas = (uintptr_t)ranges;
	rc = kernel_ioctl(sp->fd, IOMMU_IOAS_IOVA_RANGES, &cmd);
	if (rc < 0) {
		/* -EMSGSIZE here: a device attach raced us; callers retry. */
		kernel_report(&sp->ctx->rep, BE_NAME, "IOMMU_IOAS_IOVA_RANGES", 0, 0, rc);
		goto out_free;
	}

	*out = (struct be_limits){ .max_areas = sp->ctx->max_areas };
	/* The IOAS has no page-size list: every power of two >= alignment. */
	out->pgsize_bitmap = cmd.out_iova_alignment ?
		~(cmd.out_iova_alignment - 1) : ~(uint64_t)0;
	/* Keep the lowest ranges if there are more than fit: conservative. */
	out->nr_ranges = cmd.num_iovas < BE_MAX_IOVA_RANGES ?
		cmd.num_iovas : BE_MAX_IOVA_RANGES;
	for (uint32_t i = 0; i < out->nr_ranges; i++) {
		out->ranges[i].start = ranges[i].start;
		out->ranges[i].last = ranges[i].last;
	}
	rc = 0;
out_free:
	free(ranges);
	return rc;
}

static uint32_t iommufd_map_flags(unsigned int prot)
{
	uint32_t flags = IOMMU_IOAS_MAP_FIXED_IOVA;

	if (prot & BE_PROT_READ)
		flags |= IOMMU_IOAS_MAP_READABLE;
	if (prot & BE_PROT_WRITE)
		flags |= IOMMU_IOAS_MAP_WRITEABLE;
	return flags;
}

/*
 * Try IOMMU_IOAS_MAP_FILE.  Returns 0, -errno from the kernel, or
 * -ENOTTY when this kernel does not have it (then never again on this ctx).
 */
static int iommufd_map_file(struct be_space *sp, uint64_t iova,
			 uint64_t length, const struct be_map_src *src,
			 uint32_t flags)
{
	struct iommu_ioas_map_file cmd = {
		.size = sizeof(cmd),
		.flags = flags,
		.ioas_id = sp->ioas_id,
		.fd = src->fd,
		.start = src->fd_offset,
		.length = length,
		.iova = iova,
	};
	int rc = kernel_ioctl(sp->fd, IOMMU_IOAS_MAP_FILE, &cmd);

	if (rc == -ENOTTY)
		atomic_store_explicit(&sp->ctx->map_file, IOFD_MF_ABSENT,
				      memory_order_relaxed);
	else if (rc == 0)
		atomic_store_explicit(&sp->ctx->map_file, IOFD_MF_WORKS,
				      memory_order_relaxed);
	return rc;
}

static int iommufd_map(struct be_space *sp, uint64_t iova, uint64_t length,
		    const struct be_map_src *src, unsigned int prot)
{
	uint32_t flags = iommufd_map_flags(prot);
	struct iommu_ioas_map cmd;
	uint64_t end;
	int rc;

	rc = kernel_map_args(iova, length, src, prot, &end);
	if (rc < 0)
		return rc;

	/* Relaxed: a stale value only costs one extra ENOTTY attempt. */
	if (src->fd >= 0 && atomic_load_explicit(&sp->ctx->map_file,
						 memory_order_relaxed) !=
			    IOFD_MF_ABSENT) {
		rc = iommufd_map_file(sp, iova, length, src, flags);
		/* -EOPNOTSUPP: this file's kind is not one MAP_FILE takes; the vaddr still works. */
		if (rc != -ENOTTY && rc != -EOPNOTSUPP) {
			if (rc < 0)
				kernel_report(&sp->ctx->rep, BE_NAME, "IOMMU_IOAS_MAP_FILE", iova,
					   length, rc);
			return rc;
		}
	}
	if (!src->vaddr)
		return -EINVAL;
	/*
	 * With a device attached the map pins through the vaddr now: fill our
	 * page tables first (prefill_priv.h).  Without one it only records the
	 * area, and the first attach pins everything later.  devs.n changes
	 * only on the space's owner thread, never during a map.
	 */
	if (sp->devs.n)
		prefill_page_tables(src->vaddr, length);
	cmd = (struct iommu_ioas_map){
		.size = sizeof(cmd),
		.flags = flags,
		.ioas_id = sp->ioas_id,
		.user_va = (uintptr_t)src->vaddr,
		.length = length,
		.iova = iova,
	};
	rc = kernel_ioctl(sp->fd, IOMMU_IOAS_MAP, &cmd);
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "IOMMU_IOAS_MAP", iova, length, rc);
		return rc;
	}
	return 0;
}

/*
 * The kernel's area cut: VFIO_IOMMU_UNMAP_DMA of iommufd's type1
 * compatibility on @sp's context, whose compat IOAS must be @sp's and have
 * huge pages off (else the kernel unmaps whole areas only, -ENOENT at a
 * cut).  It cuts the areas at both ends of the range, then unmaps every
 * area inside; nothing mapped there is success with size 0 (made -ENOENT
 * here, as IOMMU_IOAS_UNMAP says it).  Sets *@unmapped on success only;
 * an error is reported through the context.
 */
static int iommufd_cut(struct be_space *sp, uint64_t iova, uint64_t length,
		       uint64_t *unmapped)
{
	struct vfio_iommu_type1_dma_unmap cmd = {
		.argsz = sizeof(cmd),
		.iova = iova,
		.size = length,
	};
	int rc = kernel_ioctl(sp->fd, VFIO_IOMMU_UNMAP_DMA, &cmd);

	if (!rc && !cmd.size)
		rc = -ENOENT;
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "VFIO_IOMMU_UNMAP_DMA (cut)", iova, length, rc);
		return rc;
	}
	*unmapped = cmd.size;
	return 0;
}

/*
 * Make @sp's IOAS its context's VFIO-compat IOAS (each space has a context
 * of its own, so nothing else uses it).  Returns 0 or -errno, reported.
 */
static int iommufd_compat_set(struct be_space *sp)
{
	struct iommu_vfio_ioas set = {
		.size = sizeof(set),
		.ioas_id = sp->ioas_id,
		.op = IOMMU_VFIO_IOAS_SET,
	};
	int rc;

	if (atomic_load_explicit(&sp->compat_ioas, memory_order_acquire))
		return 0;
	rc = kernel_ioctl(sp->fd, IOMMU_VFIO_IOAS, &set);
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "IOMMU_VFIO_IOAS set", 0, 0, rc);
		return rc;
	}
	atomic_store_explicit(&sp->compat_ioas, true, memory_order_release);
	return 0;
}

static int iommufd_unmap(struct be_space *sp, uint64_t iova, uint64_t length,
		      uint64_t *unmapped)
{
	uint64_t end;
	int rc;

	*unmapped = 0;
	rc = kernel_range(iova, length, &end);
	if (rc < 0)
		return rc;
	if (sp->cuts) {
		/* A failed cut may leave one end's area cut in two (both
		 * halves mapped): audit() tells, as after any failure. */
		return iommufd_cut(sp, iova, length, unmapped);
	}
	/*
	 * On -ENOENT the kernel may already have removed the whole areas
	 * before the one the range cuts, and it does not say how much:
	 * *unmapped stays 0 and the caller re-learns the range by audit().
	 */
	rc = iommufd_unmap_raw(sp->fd, sp->ioas_id, iova, length, unmapped);
	if (rc < 0)
		kernel_report(&sp->ctx->rep, BE_NAME, "IOMMU_IOAS_UNMAP", iova, length, rc);
	return rc;
}

static bool iommufd_unmap_cuts(struct be_space *sp)
{
	return sp->cuts;
}

int be_iommufd_unmap_cut(struct be_space *sp, uint64_t iova, uint64_t length,
			 uint64_t *unmapped)
{
	uint64_t end;
	int rc;

	*unmapped = 0;
	rc = kernel_range(iova, length, &end);
	if (rc < 0)
		return rc;
	if (sp->ctx->huge_pages != 0)
		return -EOPNOTSUPP; /* the kernel cuts only without huge pages */
	rc = iommufd_compat_set(sp);
	return rc < 0 ? rc : iommufd_cut(sp, iova, length, unmapped);
}

/*
 * Bind the cdev behind @device_fd to the ctx's iommufd and attach it to the
 * IOAS.  Attaching the first device pins every area already mapped, so it
 * fails with -EFAULT/-ENOMEM if one of them is unbacked.  The bind belongs
 * to the open file and lasts until its last fd closes (there is no unbind
 * ioctl): after a failed attach that file stays bound and a retry fails in
 * VFIO_DEVICE_BIND_IOMMUFD with -EINVAL; the caller must open a fresh fd.
 */
static int iommufd_device_attach(struct be_space *sp, int device_fd,
			      uint32_t *dev_id)
{
	struct vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = sp->fd,
	};
	struct vfio_device_attach_iommufd_pt att = {
		.argsz = sizeof(att),
		.pt_id = sp->ioas_id,
	};
	int fd, rc;

	if (kernel_devs_full(&sp->devs))
		return -ENOSPC;
	fd = kernel_dup(device_fd);
	if (fd < 0)
		return fd;
	rc = kernel_ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "VFIO_DEVICE_BIND_IOMMUFD", 0, 0, rc);
		goto err_close;
	}
	rc = kernel_ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &att);
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", 0, 0, rc);
		goto err_close; /* unbinds with the file's last close */
	}
	kernel_devs_add(&sp->devs, fd, bind.out_devid);
	*dev_id = bind.out_devid;
	return 0;

err_close:
	close(fd);
	return rc;
}

static void iommufd_device_detach(struct be_space *sp, uint32_t dev_id)
{
	int i = kernel_devs_index(&sp->devs, &sp->ctx->rep, BE_NAME, dev_id);

	if (i >= 0)
		iommufd_dev_release(sp, (unsigned int)i);
}

/*
 * The reserved IOVA of the device behind cdev fd @device_fd, from sysfs:
 * /sys/dev/char/MAJ:MIN (the cdev) -> device (the PCI device) ->
 * iommu_group/reserved_regions, lines "0xSTART 0xEND TYPE" with END
 * inclusive.  direct-relaxable regions are skipped, as
 * iopt_table_enforce_dev_resv_regions() skips them.  This is the group's
 * list, what the kernel reserves for the device at attach (the domain's
 * aperture is not in it).
 */
static int iommufd_device_reserved(struct be_space *s, int device_fd,
				   struct be_iova_range *out, uint32_t max)
{
	char path[96], line[128], type[32];
	unsigned long long start, end;
	struct stat st;
	uint32_t n = 0;
	FILE *f;

	(void)s;
	if (fstat(device_fd, &st) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode))
		return -ENODEV; /* not a cdev */
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/device/iommu_group/reserved_regions",
		 major(st.st_rdev), minor(st.st_rdev));
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (n < max && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %llx %31s", &start, &end, type) != 3 || end < start)
			continue;
		if (!strcmp(type, "direct-relaxable"))
			continue;
		out[n++] = (struct be_iova_range){ .start = start, .last = end };
	}
	fclose(f);
	return (int)n;
}

/*
 * Is [@iova, @iova + @length) fully mapped in @sp?  Probes by copying it
 * into @scratch and removing the copy again.  Returns 1, 0, or -errno.
 */
static int iommufd_probe(struct be_space *sp, uint32_t scratch, uint64_t iova,
		      uint64_t length)
{
	struct iommu_ioas_copy cmd = {
		.size = sizeof(cmd),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE,
		.dst_ioas_id = scratch,
		.src_ioas_id = sp->ioas_id,
		.length = length,
		.dst_iova = iova,
		.src_iova = iova,
	};
	uint64_t unmapped;
	int rc = kernel_ioctl(sp->fd, IOMMU_IOAS_COPY, &cmd);

	if (rc == -ENOENT)
		return 0; /* a hole somewhere in the range */
	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "IOMMU_IOAS_COPY (audit probe)", iova,
			   length, rc);
		return rc;
	}
	rc = iommufd_unmap_raw(sp->fd, scratch, iova, length, &unmapped);
	if (rc < 0 || unmapped != length) {
		kernel_report(&sp->ctx->rep, BE_NAME, "BUG: IOMMU_IOAS_UNMAP (audit scratch)",
			   iova, length, rc < 0 ? rc : -EIO);
		return rc < 0 ? rc : -EIO;
	}
	return 1;
}

/* One audit walk: the probe target and the run of mapped bytes not yet
 * reported (adjacent mapped spans are merged before fn sees them). */
struct iommufd_audit {
	struct be_space *sp;
	uint32_t scratch;   /* the scratch IOAS probes copy into */
	uint64_t gran;      /* probe granule */
	be_audit_fn fn;
	void *arg;
	uint64_t run_start; /* valid while run_len != 0 */
	uint64_t run_len;
};

/* Account [@iova, +@len) as @mapped; calls fn when a run ends. */
static int audit_emit(struct iommufd_audit *a, uint64_t iova, uint64_t len,
		      bool mapped)
{
	int rc = 0;

	if (mapped && a->run_len && a->run_start + a->run_len == iova) {
		a->run_len += len;
		return 0;
	}
	if (a->run_len)
		rc = a->fn(a->arg, a->run_start, a->run_len);
	a->run_len = 0;
	if (!rc && mapped) {
		a->run_start = iova;
		a->run_len = len;
	}
	return rc;
}

/*
 * Audit @n granules from @iova: one probe for the whole span; if it has a
 * hole, split it in halves down to single granules.  A fully mapped region
 * costs one probe, a region with h holes about 2 h log2(n).
 */
static int audit_span(struct iommufd_audit *a, uint64_t iova, uint64_t n)
{
	uint64_t half;
	int rc = iommufd_probe(a->sp, a->scratch, iova, n * a->gran);

	if (rc < 0)
		return rc;
	if (rc == 1 || n == 1)
		return audit_emit(a, iova, n * a->gran, rc == 1);
	half = n / 2;
	rc = audit_span(a, iova, half);
	return rc ? rc : audit_span(a, iova + half * a->gran, n - half);
}

static int iommufd_audit(struct be_space *s, uint64_t iova, uint64_t length,
		      uint64_t probe_granule, be_audit_fn fn, void *arg)
{
	struct iommufd_audit a = {
		.sp = s, .gran = probe_granule, .fn = fn, .arg = arg,
	};
	uint64_t end;
	int rc;

	rc = kernel_range(iova, length, &end);
	if (rc < 0)
		return rc;
	/* Probes step from iova; the range must be whole probe granules. */
	if (!probe_granule || length % probe_granule)
		return -EINVAL;
	rc = iommufd_ioas_alloc(&a.sp->ctx->rep, a.sp->fd, &a.scratch);
	if (rc < 0)
		return rc;
	rc = audit_span(&a, iova, length / probe_granule);
	if (!rc)
		rc = audit_emit(&a, end, 0, false); /* report the last run */
	iommufd_destroy_obj(&a.sp->ctx->rep, a.sp->fd, a.scratch);
	return rc;
}

/*
 * Restart (docs/restart.md).  The space's context fd, its IOAS id and each
 * device's fd stay owned by the space; the caller keeps dups of them.
 */
static int iommufd_space_keep(struct be_space *sp, struct be_kept_space *out)
{
	if (sp->devs.n > BE_KEPT_MAX_DEVICES)
		return -E2BIG;
	*out = (struct be_kept_space){ .fd = sp->fd, .ioas_id = sp->ioas_id,
				       .nr_devs = sp->devs.n };
	for (unsigned int i = 0; i < sp->devs.n; i++) {
		out->devs[i].fd = sp->devs.dev[i].fd;
		out->devs[i].dev_id = sp->devs.dev[i].dev_id;
	}
	return 0;
}

/* Close every fd of @in (the ones >= 0). */
static void kept_close(const struct be_kept_space *in)
{
	if (in->fd >= 0)
		close(in->fd);
	for (uint32_t i = 0; i < in->nr_devs && i < BE_KEPT_MAX_DEVICES; i++)
		if (in->devs[i].fd >= 0)
			close(in->devs[i].fd);
}

/*
 * Whether adopted @sp cuts: its IOAS has huge pages off (then it becomes
 * the compat IOAS again, idempotent).  Returns 0 or -errno, reported.
 */
static int iommufd_adopt_cuts(struct be_space *sp)
{
	uint64_t huge = 1;
	int rc = iommufd_option(sp->fd, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET,
				sp->ioas_id, &huge);

	if (rc < 0) {
		kernel_report(&sp->ctx->rep, BE_NAME, "IOMMU_OPTION get HUGE_PAGES (adopt)", 0, 0, rc);
		return rc;
	}
	if (huge)
		return 0;
	rc = iommufd_compat_set(sp);
	if (rc < 0)
		return rc;
	sp->cuts = true;
	return 0;
}

/*
 * Adopt: the IOAS must answer IOMMU_IOAS_IOVA_RANGES in the kept context
 * (-ENOENT otherwise: not an IOAS of that file), and every device fd must
 * answer VFIO_DEVICE_GET_INFO (-ENODEV otherwise).  Whether a device is
 * bound to this very context cannot be asked without changing it; a
 * device that is not is refused by the kernel at the teardown's detach
 * (logged as a bug there), nothing worse.
 */
static int iommufd_space_adopt(struct be_ctx *ctx, const struct be_kept_space *in,
			       struct be_space **out)
{
	struct iommu_ioas_iova_ranges rng = { .size = sizeof(rng), .ioas_id = in->ioas_id };
	struct be_space *sp;
	int rc;

	if (in->fd < 0 || in->nr_devs > BE_KEPT_MAX_DEVICES || in->nr_devs > KERNEL_MAX_DEVICES) {
		rc = -EINVAL;
		goto err_close;
	}
	rc = kernel_ioctl(in->fd, IOMMU_IOAS_IOVA_RANGES, &rng);
	if (rc < 0 && rc != -EMSGSIZE) {
		kernel_report(&ctx->rep, BE_NAME, "IOMMU_IOAS_IOVA_RANGES (adopt)", 0, 0, rc);
		rc = rc == -ENOTTY || rc == -EINVAL ? -ENOENT : rc;
		goto err_close;
	}
	for (uint32_t i = 0; i < in->nr_devs; i++) {
		struct vfio_device_info info = { .argsz = sizeof(info) };

		rc = in->devs[i].fd < 0 ? -EBADF
					: kernel_ioctl(in->devs[i].fd, VFIO_DEVICE_GET_INFO, &info);
		if (rc < 0) {
			kernel_report(&ctx->rep, BE_NAME, "VFIO_DEVICE_GET_INFO (adopt)", 0, 0, rc);
			rc = -ENODEV;
			goto err_close;
		}
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp) {
		rc = -ENOMEM;
		goto err_close;
	}
	sp->ctx = ctx;
	sp->fd = in->fd;
	sp->ioas_id = in->ioas_id;
	for (uint32_t i = 0; i < in->nr_devs; i++)
		kernel_devs_add(&sp->devs, in->devs[i].fd, in->devs[i].dev_id);
	/* An IOAS without huge pages keeps cutting, whatever this instance's
	 * cut_areas: its areas may span runs of granules. */
	rc = iommufd_adopt_cuts(sp);
	if (rc < 0) {
		while (sp->devs.n) /* closes only: nothing detached */
			kernel_devs_drop(&sp->devs, sp->devs.n - 1);
		close(sp->fd);
		free(sp);
		return rc;
	}
	atomic_fetch_add(&ctx->nr_spaces, 1);
	*out = sp;
	return 0;

err_close:
	kept_close(in);
	return rc;
}

static void iommufd_space_forget(struct be_space *sp)
{
	if (!sp)
		return;
	while (sp->devs.n) /* closes only: nothing detached */
		kernel_devs_drop(&sp->devs, sp->devs.n - 1);
	close(sp->fd);
	atomic_fetch_sub(&sp->ctx->nr_spaces, 1);
	free(sp);
}

int be_iommufd_get_option(struct be_space *sp, uint32_t option, uint64_t *val)
{
	uint32_t object = option == IOMMU_OPTION_RLIMIT_MODE ? 0 : sp->ioas_id;

	*val = 0;
	return iommufd_option(sp->fd, option, IOMMU_OPTION_OP_GET, object,
			   val);
}

uint32_t be_iommufd_ioas_id(struct be_space *s)
{
	return s->ioas_id;
}

bool be_iommufd_map_file_used(struct be_space *s)
{
	return atomic_load_explicit(&s->ctx->map_file,
				    memory_order_relaxed) == IOFD_MF_WORKS;
}

/*
 * A map pins through the vaddr only with a device attached (before, it
 * records the area) and once IOMMU_IOAS_MAP_FILE is known absent (where it
 * works it pins from the file).  devs.n changes only on the owner thread.
 */
static bool iommufd_pins_vaddr_at_map(struct be_space *sp)
{
	return sp->devs.n && atomic_load_explicit(&sp->ctx->map_file, memory_order_relaxed) ==
				     IOFD_MF_ABSENT;
}

const struct be_ops be_iommufd_ops = {
	.name = BE_NAME,
	.open = iommufd_open,
	.close = iommufd_close,
	.space_create = iommufd_space_create,
	.space_destroy = iommufd_space_destroy,
	.limits = iommufd_limits,
	.map = iommufd_map,
	.pins_vaddr_at_map = iommufd_pins_vaddr_at_map,
	.unmap_cuts = iommufd_unmap_cuts,
	.unmap = iommufd_unmap,
	.device_attach = iommufd_device_attach,
	.device_detach = iommufd_device_detach,
	.device_reserved = iommufd_device_reserved,
	.device_handle_is_devid = true,
	.audit = iommufd_audit,
	.space_keep = iommufd_space_keep,
	.space_adopt = iommufd_space_adopt,
	.space_forget = iommufd_space_forget,
};
