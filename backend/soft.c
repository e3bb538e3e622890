/* SPDX-License-Identifier: MIT */
/*
 * soft.c - be_soft_ops, the software IOMMU model (see
 * include/dmasvc/soft_iommu.h for the rules it enforces and what it is not).
 *
 * A map is iommufd's two-phase insert: under the space lock the range is
 * checked and an unpublished area reserves it; the lock is dropped while the
 * pages are pinned (soft_pin.c; so maps of disjoint ranges pin in parallel); then the
 * area is published under the lock, or removed again if the pin failed.
 *
 * Vocabulary: end is exclusive (iova + length), last is inclusive
 * (iova + length - 1, computed with an overflow check).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/backend.h"
#include "dmasvc/soft_iommu.h"
#include "report_priv.h"
#include "soft_pin_priv.h"
#include "soft_tree_priv.h"

#define SOFT_PAGE 4096ull
#define SOFT_DEFAULT_LAST ((1ull << 48) - 1)

/*
 * One model instance.  cfg (ranges) and max_areas are immutable after open.
 * lock guards faults and the two call counters; it is taken inside a space
 * lock never, and never held while a space lock is taken (a leaf lock).
 */
struct be_ctx {
	struct soft_iommu_config cfg;
	uint64_t max_areas;
	pthread_mutex_t lock;
	struct soft_iommu_faults faults; /* guarded by lock */
	uint64_t map_calls;              /* guarded by lock; since set_faults */
	uint64_t unmap_calls;            /* guarded by lock; since set_faults */
	struct be_report rep;            /* immutable; any thread */
	struct soft_pinner *pin;         /* immutable pointer; locks inside */
};

/*
 * One address space.  ctx is immutable.  lock guards root, nr_areas,
 * pinned_bytes and the stats counters.  Areas are only ever published or
 * removed with lock held; an unpublished area belongs to the map() that
 * reserved it.
 */
struct be_space {
	struct be_ctx *ctx;
	pthread_mutex_t lock;
	struct soft_area *root;
	uint64_t nr_areas;       /* published + reserved */
	uint64_t pinned_bytes;   /* published only */
	uint64_t maps;           /* successful map() calls */
	uint64_t unmap_calls;
	uint32_t test_dev_ids;   /* handles given by soft_iommu_test_device_attach */
	uint32_t test_devs;      /* test devices attached: ctx->cfg.dev_resv is reserved */
};

/* Free @a and what it owns (its slots are given back by soft_pinner_unpin first). */
static void soft_area_free(struct soft_area *a)
{
	if (a->slots && a->slots != &a->slot1)
		free(a->slots);
	free(a);
}

static int soft_open(const struct be_config *cfg, struct be_ctx **out)
{
	const struct soft_iommu_config *sc = cfg ? cfg->backend_private : NULL;
	struct be_ctx *ctx;
	uint32_t i;
	int ret;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	if (sc)
		ctx->cfg = *sc;
	if (ctx->cfg.nr_ranges > BE_MAX_IOVA_RANGES) {
		free(ctx);
		return -EINVAL;
	}
	for (i = 0; i < ctx->cfg.nr_ranges; i++) {
		if (ctx->cfg.ranges[i].last < ctx->cfg.ranges[i].start) {
			free(ctx);
			return -EINVAL;
		}
	}
	if (ctx->cfg.nr_dev_resv > SOFT_IOMMU_MAX_DEV_RESV) {
		free(ctx);
		return -EINVAL;
	}
	for (i = 0; i < ctx->cfg.nr_dev_resv; i++) {
		if (ctx->cfg.dev_resv[i].last < ctx->cfg.dev_resv[i].start) {
			free(ctx);
			return -EINVAL;
		}
	}
	if (!ctx->cfg.nr_ranges) {
		ctx->cfg.nr_ranges = 1;
		ctx->cfg.ranges[0].start = 0;
		ctx->cfg.ranges[0].last = SOFT_DEFAULT_LAST;
	}
	ctx->faults = ctx->cfg.faults;
	ctx->max_areas = cfg && cfg->max_areas ? cfg->max_areas : UINT64_MAX;
	if (cfg)
		ctx->rep = be_report_init(cfg);
	ret = soft_pinner_open(ctx->cfg.pin, ctx->cfg.pin_rings, &ctx->rep, &ctx->pin);
	if (ret) {
		free(ctx);
		return ret;
	}
	pthread_mutex_init(&ctx->lock, NULL);
	*out = ctx;
	return 0;
}

static void soft_close(struct be_ctx *ctx)
{
	if (!ctx)
		return;
	soft_pinner_close(ctx->pin); /* every space is destroyed: no slot is in use */
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
}

void soft_iommu_set_faults(struct be_ctx *ctx, const struct soft_iommu_faults *f)
{
	pthread_mutex_lock(&ctx->lock);
	if (f)
		ctx->faults = *f;
	else
		memset(&ctx->faults, 0, sizeof(ctx->faults));
	ctx->map_calls = 0;
	ctx->unmap_calls = 0;
	pthread_mutex_unlock(&ctx->lock);
}

static int soft_space_create(struct be_ctx *ctx, struct be_space **out)
{
	struct be_space *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->ctx = ctx;
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
}

static void soft_space_destroy(struct be_space *s)
{
	struct soft_area *a;

	if (!s)
		return;
	for (;;) {
		s->root = soft_tree_pop_any(s->root, &a);
		if (!a)
			break;
		if (a->published)
			soft_pinner_unpin(s->ctx->pin, a);
		soft_area_free(a);
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Whether [@a, @b] and [@c, @d] (inclusive bounds) share a byte. */
static bool ranges_touch(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
	return a <= d && c <= b;
}

/* Whether an attached test device reserves a byte of [@iova, @last] (s->lock held). */
static bool in_reserved(const struct be_space *s, uint64_t iova, uint64_t last)
{
	const struct soft_iommu_config *c = &s->ctx->cfg;

	for (uint32_t i = 0; s->test_devs && i < c->nr_dev_resv; i++)
		if (ranges_touch(iova, last, c->dev_resv[i].start, c->dev_resv[i].last))
			return true;
	return false;
}

/*
 * Append [@start, @last] to @out's ranges with each reserved range of @s
 * cut out (s->lock held), in increasing order as long as they fit
 * (BE_MAX_IOVA_RANGES; the highest pieces are dropped: conservative).
 * @from: the first dev_resv index still to apply.
 */
static void add_unreserved(const struct be_space *s, uint32_t from, uint64_t start,
			   uint64_t last, struct be_limits *out)
{
	const struct soft_iommu_config *c = &s->ctx->cfg;

	for (uint32_t i = from; s->test_devs && i < c->nr_dev_resv; i++) {
		const struct be_iova_range *r = &c->dev_resv[i];

		if (!ranges_touch(start, last, r->start, r->last))
			continue;
		if (r->start > start)
			add_unreserved(s, i + 1, start, r->start - 1, out);
		if (r->last < last)
			add_unreserved(s, i + 1, r->last + 1, last, out);
		return;
	}
	if (out->nr_ranges < BE_MAX_IOVA_RANGES)
		out->ranges[out->nr_ranges++] = (struct be_iova_range){ start, last };
}

static int soft_limits(struct be_space *s, struct be_limits *out)
{
	const struct be_ctx *ctx = s->ctx;

	memset(out, 0, sizeof(*out));
	out->max_areas = ctx->max_areas;
	/* Any multiple of 4 KiB: the model has no page-table levels. */
	out->pgsize_bitmap = ~(SOFT_PAGE - 1);
	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < ctx->cfg.nr_ranges; i++)
		add_unreserved(s, 0, ctx->cfg.ranges[i].start, ctx->cfg.ranges[i].last, out);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* True when [@iova, @last] lies inside one allowed window of @s (s->lock held). */
static bool in_allowed_range(const struct be_space *s, uint64_t iova, uint64_t last)
{
	const struct be_ctx *ctx = s->ctx;
	uint32_t i;

	if (in_reserved(s, iova, last))
		return false;
	for (i = 0; i < ctx->cfg.nr_ranges; i++)
		if (iova >= ctx->cfg.ranges[i].start &&
		    last <= ctx->cfg.ranges[i].last)
			return true;
	return false;
}

/* Sleep @us microseconds (the slowness knobs); no lock may be held. */
static void soft_delay(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000 };

	while (us && nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* A slowness knob of @ctx, read under its lock. */
static uint64_t soft_knob(struct be_ctx *ctx, const uint64_t *knob)
{
	uint64_t v;

	pthread_mutex_lock(&ctx->lock);
	v = *knob;
	pthread_mutex_unlock(&ctx->lock);
	return v;
}

/* The injected map failure for [@iova, @last], as -errno, or 0. */
static int map_fault(struct be_ctx *ctx, uint64_t iova, uint64_t last)
{
	struct soft_iommu_faults *f = &ctx->faults;
	int ret = 0;

	pthread_mutex_lock(&ctx->lock);
	ctx->map_calls++;
	if (f->map_fail_nth && ctx->map_calls == f->map_fail_nth)
		ret = -(f->map_fail_errno ? f->map_fail_errno : EIO);
	else if ((f->map_fail_start || f->map_fail_last || f->map_range_errno) &&
		 iova <= f->map_fail_last && last >= f->map_fail_start)
		ret = -(f->map_range_errno ? f->map_range_errno : EIO);
	pthread_mutex_unlock(&ctx->lock);
	return ret;
}

static int soft_map(struct be_space *s, uint64_t iova, uint64_t length,
		    const struct be_map_src *src, unsigned int prot)
{
	struct soft_area *a;
	uint64_t last;
	int ret;

	(void)prot; /* the model has no permission bits to enforce */
	if (!length || !src || !src->vaddr)
		return -EINVAL;
	if (__builtin_add_overflow(iova, length - 1, &last))
		return -EOVERFLOW;
	if ((iova | length | (uintptr_t)src->vaddr) & (SOFT_PAGE - 1))
		return -EINVAL;
	ret = map_fault(s->ctx, iova, last);
	if (ret)
		return ret;
	soft_delay(soft_knob(s->ctx, &s->ctx->faults.map_delay_us));

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->iova = iova;
	a->length = length;
	a->vaddr = src->vaddr;

	/* Phase 1: reserve the IOVA range with an unpublished area. */
	pthread_mutex_lock(&s->lock);
	if (!in_allowed_range(s, iova, last))
		ret = -EINVAL;
	else if (soft_tree_first_overlap(s->root, iova, last))
		ret = -EEXIST;
	else if (s->nr_areas >= s->ctx->max_areas)
		ret = -ENOSPC;
	if (ret) {
		pthread_mutex_unlock(&s->lock);
		free(a);
		return ret;
	}
	s->root = soft_tree_insert(s->root, a);
	s->nr_areas++;
	pthread_mutex_unlock(&s->lock);

	/* Pin outside the lock, like iommufd's read-locked pin phase. */
	if (s->ctx->cfg.before_pin)
		s->ctx->cfg.before_pin(s->ctx->cfg.before_pin_arg, iova, length);
	ret = soft_pinner_pin(s->ctx->pin, a);

	/* Phase 2: publish, or drop the reservation. */
	pthread_mutex_lock(&s->lock);
	if (ret) {
		s->root = soft_tree_remove(s->root, a->iova);
		s->nr_areas--;
	} else {
		a->published = true;
		s->pinned_bytes += a->length;
		s->maps++;
	}
	pthread_mutex_unlock(&s->lock);
	if (ret)
		soft_area_free(a);
	return ret;
}

/* The injected unmap failure, as -errno, or 0. */
static int unmap_fault(struct be_ctx *ctx)
{
	int ret = 0;

	pthread_mutex_lock(&ctx->lock);
	ctx->unmap_calls++;
	if (ctx->faults.unmap_fail_nth &&
	    ctx->unmap_calls >= ctx->faults.unmap_fail_nth &&
	    ctx->unmap_calls - ctx->faults.unmap_fail_nth <
		    (ctx->faults.unmap_fail_count ? ctx->faults.unmap_fail_count : 1))
		ret = -(ctx->faults.unmap_fail_errno ?
			ctx->faults.unmap_fail_errno : EIO);
	pthread_mutex_unlock(&ctx->lock);
	return ret;
}

static int soft_unmap(struct be_space *s, uint64_t iova, uint64_t length,
		      uint64_t *unmapped)
{
	uint64_t last, done = 0;
	struct soft_area *a, *gone = NULL;
	bool later = soft_pinner_unpins_unlocked(s->ctx->pin);
	int ret = -ENOENT;

	if (unmapped)
		*unmapped = 0;
	if (!length)
		return -EINVAL;
	if (__builtin_add_overflow(iova, length - 1, &last))
		return -EOVERFLOW;

	pthread_mutex_lock(&s->lock);
	s->unmap_calls++;
	pthread_mutex_unlock(&s->lock);
	ret = unmap_fault(s->ctx);
	if (ret)
		return ret;
	ret = -ENOENT;

	pthread_mutex_lock(&s->lock);
	/* In increasing IOVA order, like iopt_unmap_iova_range(): a cut
	 * area stops the walk with what was unmapped before it gone. */
	while ((a = soft_tree_first_overlap(s->root, iova, last))) {
		if (!a->published) {
			ret = -EBUSY;
			goto out_unlock;
		}
		if (a->iova < iova || soft_area_last(a) > last) {
			ret = -ENOENT;
			goto out_unlock;
		}
		s->root = soft_tree_remove(s->root, a->iova);
		s->nr_areas--;
		s->pinned_bytes -= a->length;
		done += a->length;
		if (later) {
			a->left = gone; /* unlinked: the tree link is free */
			gone = a;
			continue;
		}
		soft_pinner_unpin(s->ctx->pin, a);
		soft_area_free(a);
	}
	if (done)
		ret = 0;
out_unlock:
	pthread_mutex_unlock(&s->lock);
	/* io_uring pins are counted: unpin with the space unlocked, before
	 * returning, every area of the call together. */
	if (gone)
		soft_pinner_unpin_list(s->ctx->pin, gone);
	while ((a = gone)) {
		gone = a->left;
		soft_area_free(a);
	}
	if (unmapped)
		*unmapped = done;
	soft_delay(soft_knob(s->ctx, &s->ctx->faults.unmap_us_per_mib) * (done >> 20));
	return ret;
}

int soft_iommu_test_device_attach(struct be_space *s, int device_fd, uint32_t *dev_id)
{
	const struct soft_iommu_config *c = &s->ctx->cfg;
	int ret = 0;

	if (device_fd < 0)
		return -EBADF;
	soft_delay(c->attach_us); /* cfg is immutable */
	pthread_mutex_lock(&s->lock);
	/* Like iopt_reserve_iova(): no area, published or in flight, may sit there. */
	for (uint32_t i = 0; i < c->nr_dev_resv && !ret; i++)
		if (soft_tree_first_overlap(s->root, c->dev_resv[i].start, c->dev_resv[i].last))
			ret = -EADDRINUSE;
	if (!ret) {
		s->test_devs++;
		*dev_id = ++s->test_dev_ids;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void soft_iommu_test_device_detach(struct be_space *s, uint32_t dev_id)
{
	(void)dev_id; /* the model device holds nothing but its reservation */
	pthread_mutex_lock(&s->lock);
	if (s->test_devs)
		s->test_devs--;
	else
		fprintf(stderr, "soft iommu: BUG: detach of test device %u with none attached\n",
			dev_id);
	pthread_mutex_unlock(&s->lock);
}

int soft_iommu_test_device_reserved(struct be_space *s, int device_fd,
				    struct be_iova_range *out, uint32_t max)
{
	const struct soft_iommu_config *c = &s->ctx->cfg; /* immutable */
	uint32_t n = c->nr_dev_resv < max ? c->nr_dev_resv : max;

	if (device_fd < 0)
		return -EBADF;
	memcpy(out, c->dev_resv, n * sizeof(*out));
	return (int)n;
}

static int soft_audit(struct be_space *s, uint64_t iova, uint64_t length,
		      uint64_t probe_granule, be_audit_fn fn, void *arg)
{
	uint64_t last, next;
	struct soft_area *a;
	int ret = 0;

	(void)probe_granule; /* the model lists its areas exactly */
	if (!length)
		return 0;
	if (__builtin_add_overflow(iova, length - 1, &last))
		return -EOVERFLOW;
	pthread_mutex_lock(&s->lock);
	next = iova;
	while ((a = soft_tree_first_overlap(s->root, next, last))) {
		if (a->published) {
			ret = fn(arg, a->iova, a->length);
			if (ret)
				break;
		}
		if (soft_area_last(a) >= last)
			break;
		next = soft_area_last(a) + 1;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int soft_iommu_translate(struct be_space *s, uint64_t iova, uint64_t len,
			 void **host)
{
	struct soft_area *a;
	uint64_t last;
	int ret = -ENOENT;

	if (!len || __builtin_add_overflow(iova, len - 1, &last))
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	a = soft_tree_first_overlap(s->root, iova, iova);
	if (a && a->published && last <= soft_area_last(a)) {
		*host = (char *)a->vaddr + (iova - a->iova);
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int soft_iommu_lookup(struct be_space *s, uint64_t iova, uint64_t *area_iova,
		      uint64_t *area_len)
{
	struct soft_area *a;
	int ret = -ENOENT;

	pthread_mutex_lock(&s->lock);
	a = soft_tree_first_overlap(s->root, iova, iova);
	if (a && a->published) {
		*area_iova = a->iova;
		*area_len = a->length;
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void soft_iommu_pin_info(struct be_ctx *ctx, struct soft_iommu_pin_info *out)
{
	soft_pinner_info(ctx->pin, out);
}

void soft_iommu_get_stats(struct be_space *s, struct soft_iommu_stats *out)
{
	pthread_mutex_lock(&s->lock);
	out->areas = s->nr_areas;
	out->pinned_bytes = s->pinned_bytes;
	out->maps = s->maps;
	out->unmap_calls = s->unmap_calls;
	pthread_mutex_unlock(&s->lock);
}

/* Every map pins through the vaddr (soft_pin: io_uring buffer or mlock). */
static bool soft_pins_vaddr_at_map(struct be_space *s)
{
	(void)s;
	return true;
}

const struct be_ops be_soft_ops = {
	.name = "soft",
	.open = soft_open,
	.close = soft_close,
	.space_create = soft_space_create,
	.space_destroy = soft_space_destroy,
	.limits = soft_limits,
	.map = soft_map,
	.pins_vaddr_at_map = soft_pins_vaddr_at_map,
	.unmap = soft_unmap,
	.device_attach = NULL,
	.device_detach = NULL,
	.audit = soft_audit,
};
