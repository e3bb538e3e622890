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
 * An unmap with cut_areas (be_config) cuts the areas that straddle its
 * range the way iommufd's VFIO-compat unmap does (iopt_cut_iova, then the
 * unmap of whole areas), in three steps like a map: under the space lock
 * the range is checked and the straddling areas found (cut_find); with the
 * lock dropped the parts of them that stay are pinned anew (cut_pin: an
 * io_uring registered buffer cannot be cut, the kernel's halves share one
 * pin); under the lock again the straddling areas are replaced by those
 * parts plus their inside pieces (cut_commit), which the ordinary walk then
 * unmaps with everything else inside the range.  Pinning with the space
 * unlocked keeps the lock's hold short (a re-pin is proportional to what
 * stays, e.g. a 4 KiB cut of a 64 GiB area re-pins 64 GiB) and keeps the
 * pin away from whatever else holds the space lock; the price is a check
 * on relock that no map started in the range meanwhile (cut_find again).
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
	bool cut_areas;                  /* immutable: be_config.cut_areas */
};

/*
 * One address space.  ctx is immutable.  lock guards root, nr_areas,
 * pinned_bytes and the stats counters.  Areas are only ever published,
 * cut or removed with lock held; an unpublished area belongs to the map()
 * that reserved it.
 */
struct be_space {
	struct be_ctx *ctx;
	pthread_mutex_t lock;
	struct soft_area *root;
	uint64_t nr_areas;       /* published + reserved */
	uint64_t pinned_bytes;   /* published only */
	uint64_t maps;           /* successful map() calls */
	uint64_t unmap_calls;
	uint64_t cuts;           /* area ends cut by unmap */
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
	ctx->cut_areas = cfg && cfg->cut_areas;
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

/*
 * A cut in preparation: the published areas that straddle the start
 * (head: it begins before the range) and the end (tail: it ends after it)
 * of an unmap's range, one area for both when it straddles both, and the
 * parts of them that stay mapped (before: [head->iova, range start),
 * after: [range end, tail's end)), not yet in the tree.
 */
struct soft_cut {
	struct soft_area *head, *tail;    /* NULL: that end cuts nothing */
	struct soft_area *before, *after; /* NULL until cut_pin */
};

/*
 * cut_find - check [@iova, @last] of @s for a cut unmap and fill @c's head
 * and tail (s->lock held).  Returns 0; -ENOENT when no area has a byte in
 * the range; -EBUSY when an area whose map is in flight does (checked for
 * the whole range first: a cut unmap changes nothing then).
 */
static int cut_find(struct be_space *s, uint64_t iova, uint64_t last, struct soft_cut *c)
{
	struct soft_area *a;
	uint64_t next = iova;
	bool any = false;

	*c = (struct soft_cut){ 0 };
	while ((a = soft_tree_first_overlap(s->root, next, last))) {
		if (!a->published)
			return -EBUSY;
		any = true;
		if (a->iova < iova)
			c->head = a;
		if (soft_area_last(a) >= last) {
			if (soft_area_last(a) > last)
				c->tail = a;
			break;
		}
		next = soft_area_last(a) + 1;
	}
	return any ? 0 : -ENOENT;
}

/* A new unpublished area [@iova, @iova + @length) of @vaddr, or NULL. */
static struct soft_area *part_new(uint64_t iova, uint64_t length, void *vaddr)
{
	struct soft_area *p = calloc(1, sizeof(*p));

	if (p) {
		p->iova = iova;
		p->length = length;
		p->vaddr = vaddr;
	}
	return p;
}

/* Undo cut_pin (no lock held): drop and free @c's parts. */
static void cut_drop(struct be_space *s, struct soft_cut *c)
{
	struct soft_area *parts[2] = { c->before, c->after };

	for (int i = 0; i < 2; i++) {
		if (!parts[i])
			continue;
		soft_pinner_drop_part(s->ctx->pin, parts[i]);
		soft_area_free(parts[i]);
	}
	c->before = c->after = NULL;
}

/*
 * cut_pin - make and pin the parts of @c's head and tail outside
 * [@iova, @last] (no lock held; head and tail stay published meanwhile: the
 * caller is unmap, which only one thread runs per space, and no map can
 * overlap them).  Returns 0, or the pin's -errno (-ENOMEM...) with no part
 * left pinned or allocated.
 */
static int cut_pin(struct be_space *s, struct soft_cut *c, uint64_t iova, uint64_t last)
{
	struct soft_area *h = c->head, *t = c->tail;
	int ret;

	if (h)
		c->before = part_new(h->iova, iova - h->iova, h->vaddr);
	if (t)
		c->after = part_new(last + 1, soft_area_last(t) - last,
				    (char *)t->vaddr + (last + 1 - t->iova));
	if ((h && !c->before) || (t && !c->after)) {
		free(c->before); /* nothing pinned yet */
		free(c->after);
		c->before = c->after = NULL;
		return -ENOMEM;
	}
	ret = h ? soft_pinner_pin_part(s->ctx->pin, c->before) : 0;
	if (ret) {
		soft_area_free(c->before); /* a failed pin leaves nothing to drop */
		c->before = NULL;
	} else if (t) {
		ret = soft_pinner_pin_part(s->ctx->pin, c->after);
		if (ret) {
			soft_area_free(c->after);
			c->after = NULL;
		}
	}
	if (ret)
		cut_drop(s, c); /* what is left pinned: before, if its pin went through */
	return ret;
}

/* Trim @a (unlinked) to the bytes it has inside [@iova, @last]. */
static void area_trim(struct soft_area *a, uint64_t iova, uint64_t last)
{
	if (a->iova < iova) {
		a->vaddr = (char *)a->vaddr + (iova - a->iova);
		a->length -= iova - a->iova;
		a->iova = iova;
	}
	if (soft_area_last(a) > last)
		a->length = last - a->iova + 1;
}

/*
 * cut_commit - replace @c's head and tail by their pinned parts outside
 * [@iova, @last] and their pieces inside it, which keep the old pin (s->lock
 * held; @c found and pinned for this range, nothing changed since).  Every
 * area with a byte in the range then lies inside it.  pinned_bytes does not
 * move (the parts and the pieces add up to the old areas); nr_areas grows
 * by the parts (above max_areas, possibly: iommufd has no area budget).
 */
static void cut_commit(struct be_space *s, struct soft_cut *c, uint64_t iova, uint64_t last)
{
	struct soft_area *old[2] = { c->head, c->tail != c->head ? c->tail : NULL };
	struct soft_area *parts[2] = { c->before, c->after };

	for (int i = 0; i < 2; i++) {
		if (!old[i])
			continue;
		s->root = soft_tree_remove(s->root, old[i]->iova);
		area_trim(old[i], iova, last);
		s->root = soft_tree_insert(s->root, old[i]);
	}
	for (int i = 0; i < 2; i++) {
		if (!parts[i])
			continue;
		parts[i]->published = true;
		s->root = soft_tree_insert(s->root, parts[i]);
		s->nr_areas++;
		s->cuts++;
	}
	c->before = c->after = NULL; /* the tree owns them now */
}

/*
 * soft_unmap - be_ops.unmap.  Without cut_areas: whole areas only, in
 * increasing IOVA order like iopt_unmap_iova_range(); a cut area or an
 * area in flight stops the walk with the areas before it gone.  With
 * cut_areas: the range must be 4 KiB-aligned (-EINVAL); an area in flight
 * in it -> -EBUSY before anything changes; the straddling areas are cut
 * (see the top of the file; a failed re-pin returns its -errno with
 * nothing changed), then every area inside is unmapped.  The unmap faults
 * and the unmap_us_per_mib delay apply either way.
 */
static int soft_unmap(struct be_space *s, uint64_t iova, uint64_t length,
		      uint64_t *unmapped)
{
	uint64_t last, done = 0;
	struct soft_area *a, *gone = NULL;
	struct soft_cut cut, again;
	bool later = soft_pinner_unpins_unlocked(s->ctx->pin);
	int ret = -ENOENT;

	if (unmapped)
		*unmapped = 0;
	if (!length)
		return -EINVAL;
	if (__builtin_add_overflow(iova, length - 1, &last))
		return -EOVERFLOW;
	if (s->ctx->cut_areas && ((iova | length) & (SOFT_PAGE - 1)))
		return -EINVAL; /* iopt_area_split(): a cut on a page boundary only */

	pthread_mutex_lock(&s->lock);
	s->unmap_calls++;
	pthread_mutex_unlock(&s->lock);
	ret = unmap_fault(s->ctx);
	if (ret)
		return ret;
	ret = -ENOENT;

	pthread_mutex_lock(&s->lock);
	if (s->ctx->cut_areas) {
		ret = cut_find(s, iova, last, &cut);
		if (ret)
			goto out_unlock;
		if (cut.head || cut.tail) {
			pthread_mutex_unlock(&s->lock);
			ret = cut_pin(s, &cut, iova, last);
			if (ret)
				goto out;
			pthread_mutex_lock(&s->lock);
			/* Nothing may have moved while unlocked (an unmap runs on one
			 * thread per space: only a map in flight in a gap can appear). */
			ret = cut_find(s, iova, last, &again);
			if (!ret && (again.head != cut.head || again.tail != cut.tail))
				ret = -EBUSY;
			if (ret) {
				pthread_mutex_unlock(&s->lock);
				cut_drop(s, &cut);
				goto out;
			}
			cut_commit(s, &cut, iova, last);
		}
		ret = -ENOENT;
	}
	/* In increasing IOVA order, like iopt_unmap_iova_range(): a cut area
	 * (never after cut_commit) stops the walk with what was unmapped
	 * before it gone. */
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
	 * returning, every area of the call together (a cut area's inside
	 * piece clears the whole old pin: its parts have their own). */
	if (gone)
		soft_pinner_unpin_list(s->ctx->pin, gone);
	while ((a = gone)) {
		gone = a->left;
		soft_area_free(a);
	}
out:
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
	out->cuts = s->cuts;
	pthread_mutex_unlock(&s->lock);
}

/* Whether unmap cuts areas: fixed at open (be_config.cut_areas). */
static bool soft_unmap_cuts(struct be_space *s)
{
	return s->ctx->cut_areas;
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
	.unmap_cuts = soft_unmap_cuts,
	.unmap = soft_unmap,
	.device_attach = NULL,
	.device_detach = NULL,
	.audit = soft_audit,
};
