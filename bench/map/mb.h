/* SPDX-License-Identifier: MIT */
/*
 * mb.h - map-bench internals shared by its files (not installed).
 *
 * Vocabulary:
 *   path     a way of making the IOMMU follow guest memory: "direct" (what
 *            QEMU's VFIO listener does in-process today), "engine" (dmasvc's
 *            planner + worker pool in-process, no socket), "ring" (the
 *            dmasvc daemon, driven over its SQ/CQ ring by libdmasvc; the
 *            VMM prefaults), "faultin" (the same, the daemon faults) or
 *            "kernel" (the backend's own calls for the same work, nothing
 *            around them: the physical limit);
 *   target   one opened path with a worker count (direct has none; for
 *            kernel it is the thread count, 1 or 2);
 *   note     one notification a VMM sends: populate or discard of
 *            [offset, offset + length) of the region (QEMU's
 *            notify_populate / notify_discard of one section);
 *   batch    notes issued together and waited for together: one 128 MiB
 *            virtio-mem request, or one guest_memfd conversion.
 *
 * Errors: functions return 0 or -errno and report nothing themselves;
 * map_bench.c reports with context.
 */
#ifndef MAPBENCH_MB_H
#define MAPBENCH_MB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dmasvc/backend.h"
#include "dmasvc/soft_iommu.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Burst the daemon drains at once: since issue 16 a whole SQ, and the ring
 * path's SQ has 1024 entries (path_ring.c RING_SQ), so a batch of up to
 * that many notes is one plan; the engine path cuts batches the same way. */
#define MB_BURST 1024

enum mb_backend { MB_SOFT, MB_IOMMUFD };

#define MB_MAX_DAEMON_ARGS 4 /* extra daemon arguments of one --variant */

/* What every target needs to know about the run environment. */
struct mb_env {
	enum mb_backend backend;
	const char *iommu_path;  /* /dev/iommu for MB_IOMMUFD */
	const char *device_path; /* VFIO cdev attached to every space, or NULL */
	const char *daemon_path; /* dmasvc binary for the ring path */
	/* the ring path's variant (--variant): a name for its socket and log,
	 * and extra daemon arguments (NULL-terminated); "" and none by default */
	const char *variant;
	const char *daemon_args[MB_MAX_DAEMON_ARGS + 1];
	const char *tmpdir;      /* sockets and daemon logs */
};

struct mb_note {
	uint64_t offset;
	uint64_t length;
	bool populate;
};

/* Calls a target made to its backend, cumulative since region_add. */
struct mb_counts {
	uint64_t map_calls;
	uint64_t unmap_calls;
};

/* One region of one run, as every target needs it. */
struct mb_region {
	int fd;          /* sealed memfd of size bytes */
	void *vaddr;     /* bench's MAP_SHARED mapping (direct/engine only) */
	uint64_t size;
	uint64_t granule;
	uint64_t iova;
};

struct mb_target;

struct mb_path_ops {
	const char *name;
	/* open: a target with @workers lanes (ignored by direct).  0 or -errno. */
	int (*open)(const struct mb_env *env, unsigned int workers,
		    struct mb_target **out);
	/* close: undo open (region already removed).  Never fails. */
	void (*close)(struct mb_target *t);
	/* region_add: register @r, all of it discarded.  0 or -errno. */
	int (*region_add)(struct mb_target *t, const struct mb_region *r);
	/* region_del: remove the region and every pin it still holds. */
	void (*region_del)(struct mb_target *t);
	/*
	 * notify: issue @n notes in order and return once all completed;
	 * @lat_ns[i] = issue of note i to its completion.  0 or the first
	 * -errno (later notes still ran).
	 */
	int (*notify)(struct mb_target *t, const struct mb_note *notes, size_t n,
		      uint64_t *lat_ns);
	/* counts: backend calls since region_add.  0 or -errno (then *out is 0). */
	int (*counts)(struct mb_target *t, struct mb_counts *out);
	/* pin_pid: the process whose VmLck/VmPin shows this target's pins. */
	pid_t (*pin_pid)(struct mb_target *t);
	/*
	 * freeze (optional): @frozen true stops whatever runs for the target
	 * outside its calls (the ring's daemon, SIGSTOP), false lets it run
	 * again (SIGCONT).  The bench keeps every target but the one it runs
	 * frozen: on a host of 2 CPUs the poll window of an idle target's
	 * daemon (--poll-us) would take a CPU from the target measured (a
	 * host runs one service, not one per variant).  Never fails.
	 */
	void (*freeze)(struct mb_target *t, bool frozen);
};

extern const struct mb_path_ops mb_direct_ops;
/* direct after the VMM's prefault through a second mapping (libdmasvc's
 * way): the ring's plug work in-process, the like-for-like baseline */
extern const struct mb_path_ops mb_direct_pf_ops;
extern const struct mb_path_ops mb_engine_ops;
extern const struct mb_path_ops mb_ring_ops;
extern const struct mb_path_ops mb_kernel_ops;
/* the kernel's cost with areas over whole runs, unmaps cutting them (real
 * iommufd only): a design the service does not follow, measured */
extern const struct mb_path_ops mb_kernel_cut_ops;
/* kernel t1's calls made by a polling thread on another CPU for a polling
 * caller: the limit of any IOMMU owner outside the VMM's thread */
extern const struct mb_path_ops mb_kernel_hop_ops;
/* the ring path with the daemon faulting plugged memory in (--allow-fault-in)
 * and a client that prefaults nothing: who allocates, compared with ring */
extern const struct mb_path_ops mb_faultin_ops;

/* ---- mb_backend.c: the in-process backend for direct and engine ---------- */

/* An opened backend space with the device (if any) attached. */
struct mb_space {
	const struct be_ops *ops;
	struct be_ctx *ctx;
	struct be_space *space;
	int dev_fd;
	uint32_t dev_id;
};

/* mb_space_open: open @env's backend, create a space, attach the device. */
int mb_space_open(const struct mb_env *env, struct mb_space *s);
/*
 * mb_space_open_cut: the same on iommufd with huge pages off, so that
 * be_iommufd_unmap_cut() can unmap inside an area (the kernel-cut path);
 * -EOPNOTSUPP on the model.
 */
int mb_space_open_cut(const struct mb_env *env, struct mb_space *s);
/* mb_space_close: detach, destroy, close.  Never fails. */
void mb_space_close(struct mb_space *s);

/* ---- mb_util.c ------------------------------------------------------------ */

uint64_t mb_now_ns(void);
/*
 * mb_soft_pin: how the software model pins, in this process and in the
 * daemon it starts (which inherits the environment): DMASVC_TEST_SOFT_PIN=
 * mlock -> SOFT_PIN_MLOCK (the model before io_uring), io_uring ->
 * SOFT_PIN_IO_URING, else SOFT_PIN_AUTO (io_uring where available).
 */
enum soft_pin_mode mb_soft_pin(void);
/* mb_proc_kb: "VmLck"/"VmPin"/... of @pid in bytes, or -errno. */
int64_t mb_proc_bytes(pid_t pid, const char *field);
/* mb_meminfo_bytes: a /proc/meminfo field in bytes, or -errno. */
int64_t mb_meminfo_bytes(const char *field);
/* mb_memfd: a sealed (F_SEAL_SHRINK) memfd of @size bytes named
 * MB_MEMFD_NAME.  fd or -errno. */
#define MB_MEMFD_NAME "map-bench"
int mb_memfd(uint64_t size);
/* mb_memfd_hugetlb: the same on the default huge page size (MFD_HUGETLB):
 * @size a multiple of it, the pages from the reserved pool (vm.nr_hugepages). */
int mb_memfd_hugetlb(uint64_t size);
/* mb_percentile: @pct-th percentile of @v[0..n) (sorts @v); 0 if n == 0. */
uint64_t mb_percentile(uint64_t *v, size_t n, double pct);
/* mb_median_u64 / mb_median_d: median (does not keep order). */
uint64_t mb_median_u64(uint64_t *v, size_t n);
double mb_median_d(double *v, size_t n);
/* mb_parse_size: "4K", "2M", "1G", "16G" or bytes.  0 on error. */
uint64_t mb_parse_size(const char *s);
/* mb_fmt_size: "2 MiB", "1 GiB" into @buf (>= 24 bytes). */
const char *mb_fmt_size(char *buf, uint64_t bytes);

#endif /* MAPBENCH_MB_H */
