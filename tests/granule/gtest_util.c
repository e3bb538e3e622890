/* SPDX-License-Identifier: MIT */
/*
 * gtest_util.c - shared helpers of the granule suite (see gtest_util.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gtest_util.h"
#include "plan_priv.h" /* test access: gran_plan_set_window */

void gt_mem_create(struct gt_mem *m, uint64_t size)
{
	m->fd = memfd_create("gran-test", MFD_CLOEXEC);
	cr_assert(m->fd >= 0, "memfd_create");
	cr_assert(ftruncate(m->fd, (off_t)size) == 0, "ftruncate %llu",
		  (unsigned long long)size);
	m->va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	cr_assert(m->va != MAP_FAILED, "mmap memfd");
	m->size = size;
}

void gt_mem_destroy(struct gt_mem *m)
{
	if (m->va && m->va != MAP_FAILED)
		munmap(m->va, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->va = NULL;
	m->fd = -1;
}

enum soft_pin_mode gt_pin_mode(void)
{
	const char *e = getenv("GT_SOFT_PIN");

	return e && !strcmp(e, "mlock") ? SOFT_PIN_MLOCK : SOFT_PIN_IO_URING;
}

void gt_soft_open(struct gt_soft *s, const struct soft_iommu_config *cfg,
		  uint64_t max_areas)
{
	gt_soft_open_cut(s, cfg, max_areas, false);
}

void gt_soft_open_cut(struct gt_soft *s, const struct soft_iommu_config *cfg,
		      uint64_t max_areas, bool cut_areas)
{
	struct soft_iommu_config c = { .nr_ranges = 0 };
	struct be_config bc = { .path = NULL, .max_areas = max_areas,
				.backend_private = &c, .cut_areas = cut_areas };

	if (cfg)
		c = *cfg;
	if (c.pin == SOFT_PIN_AUTO)
		c.pin = gt_pin_mode(); /* the suite runs once per pin path */

	cr_assert_eq(be_soft_ops.open(&bc, &s->ctx), 0);
	cr_assert_eq(be_soft_ops.space_create(s->ctx, &s->space), 0);
}

void gt_soft_close(struct gt_soft *s)
{
	be_soft_ops.space_destroy(s->space);
	be_soft_ops.close(s->ctx);
}

long long gt_status_bytes(const char *key)
{
	char line[256];
	long long kb = -1;
	size_t kl = strlen(key);
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':' &&
		    sscanf(line + kl + 1, " %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

long long gt_vmlck_bytes(void)
{
	return gt_status_bytes("VmLck");
}

long long gt_pinned_bytes(void)
{
	return gt_status_bytes(gt_pin_mode() == SOFT_PIN_MLOCK ? "VmLck" : "VmPin");
}

uint64_t gt_areas(struct be_space *space)
{
	struct soft_iommu_stats st;

	soft_iommu_get_stats(space, &st);
	return st.areas;
}

uint64_t gt_pinned(struct be_space *space)
{
	struct soft_iommu_stats st;

	soft_iommu_get_stats(space, &st);
	return st.pinned_bytes;
}

struct pool_arg {
	const struct be_ops *ops;
	struct be_space *space;
	struct gran_map_job *jobs;
	size_t from, to;
};

static void *pool_thread(void *p)
{
	struct pool_arg *a = p;
	size_t i;

	for (i = a->from; i < a->to; i++)
		a->jobs[i].res = a->ops->map(a->space, a->jobs[i].iova,
					     a->jobs[i].length, &a->jobs[i].src,
					     a->jobs[i].prot);
	return NULL;
}

int gt_pool_run(void *ctx, const struct be_ops *ops, struct be_space *space,
		struct gran_map_job *jobs, size_t n)
{
	pthread_t th[3];
	struct pool_arg a[3];
	int i, started = 0;

	(void)ctx;
	for (i = 0; i < 3; i++) {
		a[i] = (struct pool_arg){ ops, space, jobs, n * (size_t)i / 3,
					  n * (size_t)(i + 1) / 3 };
		if (pthread_create(&th[i], NULL, pool_thread, &a[i]))
			break;
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return started == 3 ? 0 : -EAGAIN;
}

struct gran_exec_stats gt_plan_run(const struct gran_event *e, size_t n,
				   struct gran_completion *comp, const struct be_ops *ops,
				   struct be_space *space, const struct gran_job_runner *runner,
				   size_t window, uint64_t run_max)
{
	const struct gran_completion *c;
	struct gran_exec_stats st;
	struct gran_plan *p;
	size_t nc;

	cr_assert_eq(gran_plan_build(e, n, &p), 0);
	gran_plan_set_window(p, window);
	gran_plan_set_run_max(p, run_max);
	cr_assert_eq(gran_plan_execute(p, ops, space, runner), 0);
	c = gran_plan_completions(p, &nc);
	cr_assert_eq(nc, n);
	memcpy(comp, c, n * sizeof(*c));
	gran_plan_stats(p, &st);
	gran_plan_free(p);
	return st;
}
