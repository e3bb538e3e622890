/* SPDX-License-Identifier: MIT */
/*
 * soft_iommu.h - the software IOMMU *model* (be_soft_ops): knobs and
 * test-only queries.
 *
 * The model is a userspace imitation of iommufd's IOAS bookkeeping for
 * machines with no IOMMU.  It protects no device: nothing outside this
 * process ever looks at its tables.  What it does do for real is pin, the
 * way the kernel pins for a device: a mapped area's pages in the service's
 * own MAP_SHARED mapping of the memory are pinned with pin_user_pages
 * (FOLL_LONGTERM), reached through an io_uring registered buffer, so pinned
 * bytes show in VmPin and populated memory is really allocated.  Where
 * io_uring is not available the model mlock()s instead (VmLck); see
 * soft_iommu_pin_info().  Tests use soft_iommu_translate() to see what a
 * device would read at an IOVA.
 *
 * Rules it enforces (iommufd's, see docs/design.md "Facts"):
 *   map    one area per call; any overlap -> -EEXIST; a range outside the
 *          allowed IOVA ranges or misaligned (4 KiB) -> -EINVAL; overflow
 *          -> -EOVERFLOW; more than max_areas areas -> -ENOSPC; pin
 *          failure -> its -errno and nothing stays mapped or pinned.
 *   unmap  whole areas only, walked in increasing IOVA order; an area cut
 *          by the range -> -ENOENT after the areas before it were unmapped
 *          (*unmapped counts them); nothing there -> -ENOENT; an area whose
 *          map is still in flight -> -EBUSY (after the areas before it).
 *   unmap with be_config.cut_areas (unmap_cuts() true; iommufd's
 *          VFIO_IOMMU_UNMAP_DMA in an IOAS without huge pages: iopt_cut_iova
 *          at the range's start and end, then the unmap of whole areas):
 *          a range not 4 KiB-aligned (iova or length) -> -EINVAL; an area
 *          in flight anywhere in the range -> -EBUSY with nothing changed;
 *          an area that straddles the range's start and/or end is cut
 *          there: its parts outside stay mapped (same host addresses, so
 *          translate() is unchanged for them) and pinned, each its own
 *          area; everything inside is unmapped; *unmapped counts the inside
 *          bytes only; -ENOENT only when nothing is mapped in the range.
 *          The cut costs the model a re-pin: an io_uring registered buffer
 *          cannot be cut, so each part that stays is pinned anew (new
 *          slots) before the old area's pin is released, where the kernel's
 *          halves share the old pin's pages.  So the model's cut takes time
 *          in proportion to what stays (not the kernel's cost: do not
 *          benchmark cuts on the model), pins the staying bytes twice for
 *          a moment (a cut can fail with -ENOMEM against RLIMIT_MEMLOCK
 *          where the kernel's would not; then nothing changed), and may
 *          take nr_areas above max_areas (iommufd has no area budget; maps
 *          then get -ENOSPC).  Once it returns, VmPin has dropped by
 *          exactly the bytes unmapped, as the kernel's.  With mlock the
 *          parts keep the old lock and only the inside is munlocked.
 *          Without cut_areas the model behaves as above (a straddle ->
 *          -ENOENT).
 *
 * Pin accounting: io_uring pins are counted per pin, like the kernel's
 * (two areas over the same host pages pin them twice, VmPin counts both).
 * The mlock fallback is per page and not reference counted: two areas that
 * point at the same host pages would share the lock, and unmapping one
 * munlocks the other's pages; each mlock()ed range also becomes its own VMA
 * unless it touches a neighbour, so very many scattered areas can hit
 * vm.max_map_count and fail with -ENOMEM (reported like any pin failure).
 *
 * Vocabulary: end is exclusive (iova + length), last is inclusive.
 */
#ifndef DMASVC_SOFT_IOMMU_H
#define DMASVC_SOFT_IOMMU_H

#include <stdint.h>

#include "dmasvc/backend.h"

/*
 * Injected failures.  Counters count calls made after the faults were set
 * (soft_iommu_set_faults() or open()).  Errno values are positive.
 */
struct soft_iommu_faults {
	uint64_t map_fail_nth;   /* the Nth map() call fails (1-based); 0 = off */
	int map_fail_errno;      /* errno for map_fail_nth (default EIO) */
	uint64_t map_fail_start; /* maps touching [start, last] fail; off */
	uint64_t map_fail_last;  /* while start, last and errno are all 0 */
	int map_range_errno;     /* errno for the range (default EIO) */
	uint64_t unmap_fail_nth; /* the Nth unmap() call fails, unmapping nothing */
	int unmap_fail_errno;    /* errno for unmap_fail_nth (default EIO) */
	uint64_t unmap_fail_count; /* calls N .. N + count - 1 fail (0 = 1): a
				    * failure that outlasts the executor's retry */
	/*
	 * Slowness, so a test can make an operation long deterministically
	 * instead of relying on the timing of big memory (0 = off).  Each
	 * sleeps with no lock held.
	 */
	uint64_t map_delay_us;     /* every map() call first sleeps this long */
	uint64_t unmap_us_per_mib; /* unmap() sleeps this long per MiB it unmapped */
};

#define SOFT_IOMMU_MAX_DEV_RESV 4

/* How the model pins (soft_iommu_config.pin). */
enum soft_pin_mode {
	SOFT_PIN_AUTO = 0,  /* io_uring registered buffers where available, else mlock */
	SOFT_PIN_MLOCK,     /* mlock()/munlock() (VmLck); the fallback, or forced */
	SOFT_PIN_IO_URING,  /* io_uring only: open() fails with the probe's -errno without it */
};

/* be_config.backend_private for be_soft_ops (NULL = all defaults). */
struct soft_iommu_config {
	/* Allowed IOVA windows; 0 ranges = one window [0, 2^48 - 1]. */
	uint32_t nr_ranges;
	struct be_iova_range ranges[BE_MAX_IOVA_RANGES];
	struct soft_iommu_faults faults; /* armed at open() */
	/*
	 * Test hook, optional (NULL = none): called by map() between its two
	 * phases, after [iova, iova + length) is reserved and before it is
	 * pinned, with no lock held.  Lets a test hold a map in flight.
	 */
	void (*before_pin)(void *arg, uint64_t iova, uint64_t length);
	void *before_pin_arg;
	uint64_t attach_us;  /* soft_iommu_test_device_attach() takes this long */
	/*
	 * IOVA every attached test device reserves, like a real device's MSI
	 * window or reserved regions (iommufd: iopt_table_enforce_dev_resv_regions):
	 * while at least one test device is attached, limits() reports the
	 * allowed windows minus these and map() refuses them (-EINVAL); an
	 * attach while an area (published or in flight) touches one fails with
	 * -EADDRINUSE and changes nothing.  Bounds inclusive.
	 */
	uint32_t nr_dev_resv;
	struct be_iova_range dev_resv[SOFT_IOMMU_MAX_DEV_RESV];
	enum soft_pin_mode pin; /* default SOFT_PIN_AUTO */
	uint32_t pin_rings;     /* io_uring rings made at open (0: 4); more when those are full */
};

/* What soft_iommu_pin_info() reports. */
struct soft_iommu_pin_info {
	enum soft_pin_mode mode; /* SOFT_PIN_IO_URING or SOFT_PIN_MLOCK, never AUTO */
	char reason[128];        /* why mlock ("" with io_uring) */
	uint32_t rings;          /* io_uring rings (made at open; more when those are full) */
	uint64_t slots;          /* registered-buffer slots in use, every space */
};

/*
 * soft_iommu_pin_info - the pin mechanism @ctx chose at open and its rings.
 * Never fails.
 */
void soft_iommu_pin_info(struct be_ctx *ctx, struct soft_iommu_pin_info *out);

/*
 * soft_iommu_set_faults - replace the model instance's injected failures and
 * restart their call counters.  Safe while maps run (takes the instance lock).
 * @ctx must come from be_soft_ops.open().
 */
void soft_iommu_set_faults(struct be_ctx *ctx, const struct soft_iommu_faults *f);

/*
 * soft_iommu_translate - what a device would reach at [@iova, @iova + @len):
 * sets *@host to the service's address of those bytes.  The range must lie
 * inside one mapped area (areas are not contiguous in host memory).
 * Returns 0, -ENOENT when not (fully) mapped, -EINVAL when @len is 0 or the
 * range overflows.
 */
int soft_iommu_translate(struct be_space *space, uint64_t iova, uint64_t len,
			 void **host);

/*
 * soft_iommu_lookup - the area containing @iova: sets *@area_iova and
 * *@area_len.  Returns 0 or -ENOENT (nothing, or a map still in flight).
 */
int soft_iommu_lookup(struct be_space *space, uint64_t iova,
		      uint64_t *area_iova, uint64_t *area_len);

/*
 * soft_iommu_test_device_attach / _detach - a test-only model device for
 * be_ops.device_attach/device_detach (be_soft_ops has none: the model
 * protects no device).  The daemon installs them only in fault-injection
 * builds when a test asks (DMASVC_TEST_SOFT_DEVICES).  Attach accepts any
 * fd (keeps nothing), takes @attach_us microseconds the way iommufd's
 * attach pins every existing area of the space, reserves the config's
 * dev_resv ranges (-EADDRINUSE, nothing attached, when an area touches one)
 * and returns a fresh handle in *@dev_id.  Detach never fails; it drops the
 * reservation with the last test device.  soft_iommu_test_device_reserved
 * is be_ops.device_reserved for them: the dev_resv ranges, whatever the fd.
 */
int soft_iommu_test_device_attach(struct be_space *space, int device_fd, uint32_t *dev_id);
void soft_iommu_test_device_detach(struct be_space *space, uint32_t dev_id);
int soft_iommu_test_device_reserved(struct be_space *space, int device_fd,
				    struct be_iova_range *out, uint32_t max);

/* Counters of one space, read under its lock. */
struct soft_iommu_stats {
	uint64_t areas;        /* published plus reserved (in-flight) areas */
	uint64_t pinned_bytes; /* bytes of published areas (pinned) */
	uint64_t maps;         /* successful map() calls, ever */
	uint64_t unmap_calls;  /* unmap() calls, ever, failed ones included */
	uint64_t cuts;         /* area ends cut by unmap() (cut_areas), ever */
};

/* soft_iommu_stats - fill *@out for @space.  Never fails. */
void soft_iommu_get_stats(struct be_space *space, struct soft_iommu_stats *out);

#endif /* DMASVC_SOFT_IOMMU_H */
