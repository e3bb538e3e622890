/* SPDX-License-Identifier: MIT */
/*
 * gtest_util.h - helpers shared by the granule suite's test programs:
 * a memfd-backed "guest memory", a soft-model space, and /proc readers.
 */
#ifndef DMASVC_GTEST_UTIL_H
#define DMASVC_GTEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "dmasvc/backend.h"
#include "dmasvc/plan.h"
#include "dmasvc/soft_iommu.h"

/* A memfd of @size bytes mapped MAP_SHARED read/write (pages untouched). */
struct gt_mem {
	int fd;
	uint64_t size;
	unsigned char *va;
};

/* Create / destroy; create aborts the test (cr_assert) on failure. */
void gt_mem_create(struct gt_mem *m, uint64_t size);
void gt_mem_destroy(struct gt_mem *m);

/* A soft model instance and one space. */
struct gt_soft {
	struct be_ctx *ctx;
	struct be_space *space;
};

/*
 * The pin path the test program runs on: GT_SOFT_PIN=mlock in the
 * environment -> SOFT_PIN_MLOCK, else SOFT_PIN_IO_URING (meson runs the
 * model's suite once per path).
 */
enum soft_pin_mode gt_pin_mode(void);

/*
 * Open the model with @cfg (may be NULL) and @max_areas (0 = unlimited),
 * pinning with gt_pin_mode() unless @cfg names a pin mode.
 */
void gt_soft_open(struct gt_soft *s, const struct soft_iommu_config *cfg,
		  uint64_t max_areas);
/* gt_soft_open, the model opened with be_config.cut_areas = @cut_areas. */
void gt_soft_open_cut(struct gt_soft *s, const struct soft_iommu_config *cfg,
		      uint64_t max_areas, bool cut_areas);
void gt_soft_close(struct gt_soft *s);

/* /proc/self/status line @key ("VmPin", ...) in bytes, or -1 if unreadable. */
long long gt_status_bytes(const char *key);
/* VmLck of this process in bytes, or -1 if unreadable. */
long long gt_vmlck_bytes(void);
/* What the kernel counts as pinned by gt_pin_mode(): VmPin (io_uring) or VmLck (mlock). */
long long gt_pinned_bytes(void);

/* Areas and pinned bytes of a space. */
uint64_t gt_areas(struct be_space *space);
uint64_t gt_pinned(struct be_space *space);

/*
 * gt_pool_run - a gran_job_runner.run that splits the jobs over three
 * threads (like the daemon's worker pool); ctx is unused.  Returns 0, or
 * -EAGAIN if a thread could not start (its jobs stay -ECANCELED).
 */
int gt_pool_run(void *ctx, const struct be_ops *ops, struct be_space *space,
		struct gran_map_job *jobs, size_t n);

/*
 * gt_plan_run - build a plan of the @n events @e, with a @window (0: the
 * default) and a run cap @run_max (0: one job per granule), execute it on
 * @space with @ops and @runner (NULL: serial), copy its @n completions into
 * @comp and return its stats.  Asserts every step.
 */
struct gran_exec_stats gt_plan_run(const struct gran_event *e, size_t n,
				   struct gran_completion *comp, const struct be_ops *ops,
				   struct be_space *space, const struct gran_job_runner *runner,
				   size_t window, uint64_t run_max);

#endif /* DMASVC_GTEST_UTIL_H */
