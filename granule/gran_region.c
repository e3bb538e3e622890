/* SPDX-License-Identifier: MIT */
/*
 * gran_region.c - region registration, the byte -> granule validator,
 * counters, run iteration and the never-failing unmap of a whole region.
 *
 * Vocabulary: see granule.h (first/count granule ranges, end exclusive,
 * last inclusive; every iova + size - 1 is overflow-checked once here).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "dmasvc/granule.h"
#include "dmasvc/plan.h"
#include "gran_priv.h"

#define FAIL(err, ...)                                                   \
	do {                                                             \
		if (msg && msglen)                                       \
			snprintf(msg, msglen, __VA_ARGS__);              \
		return (err);                                            \
	} while (0)

/* Check @d; returns 0 or -EINVAL/-ERANGE with a message. */
static int check_desc(const struct gran_region_desc *d, char *msg, size_t msglen)
{
	uint64_t g = d->granule, end, last;

	if (g < GRAN_MIN_GRANULE || (g & (g - 1)))
		FAIL(-EINVAL, "granule %" PRIu64 " is not a power of two >= %llu",
		     g, GRAN_MIN_GRANULE);
	if (d->flags & ~GRAN_DESC_NO_MEMORY)
		FAIL(-EINVAL, "unknown region flags 0x%x", d->flags);
	if (!d->mem_vaddr && !(d->flags & GRAN_DESC_NO_MEMORY))
		FAIL(-EINVAL, "region has no memory mapping");
	if (!d->size)
		FAIL(-EINVAL, "region size is 0");
	if ((d->size | d->iova | d->mem_offset) & (g - 1))
		FAIL(-EINVAL, "region size 0x%" PRIx64 ", iova 0x%" PRIx64
		     " and memory offset 0x%" PRIx64
		     " must be multiples of the granule 0x%" PRIx64,
		     d->size, d->iova, d->mem_offset, g);
	if (__builtin_add_overflow(d->mem_offset, d->size, &end) ||
	    end > d->mem_size)
		FAIL(-ERANGE, "region [0x%" PRIx64 ", +0x%" PRIx64
		     ") does not fit its memory of 0x%" PRIx64 " bytes",
		     d->mem_offset, d->size, d->mem_size);
	if (__builtin_add_overflow(d->iova, d->size - 1, &last))
		FAIL(-ERANGE, "region iova 0x%" PRIx64 " + size 0x%" PRIx64
		     " overflows", d->iova, d->size);
	if (d->size / g > GRAN_MAX_GRANULES)
		FAIL(-ERANGE, "region has %" PRIu64 " granules, more than %llu",
		     d->size / g, GRAN_MAX_GRANULES);
	return 0;
}

int gran_region_register(const struct gran_region_desc *d,
			 struct gran_budget *budget, struct gran_region **out,
			 char *msg, size_t msglen)
{
	struct gran_region *r;
	int ret;

	if (msg && msglen)
		msg[0] = '\0';
	ret = check_desc(d, msg, msglen);
	if (ret)
		return ret;
	r = calloc(1, sizeof(*r));
	if (!r)
		FAIL(-ENOMEM, "out of memory for a region");
	r->d = *d;
	r->shift = (unsigned int)__builtin_ctzll(d->granule);
	r->nr_granules = d->size >> r->shift;
	ret = gran_bm_init(&r->bm, r->nr_granules);
	if (ret) {
		if (msg && msglen)
			snprintf(msg, msglen, "out of memory for a region bitmap");
		goto err_free_region;
	}
	if (budget) {
		ret = gran_budget_reserve(budget, d->size, d->granule, msg, msglen);
		if (ret)
			goto err_destroy_bm;
		r->budget = budget;
	}
	*out = r;
	return 0;

err_destroy_bm:
	gran_bm_destroy(&r->bm);
err_free_region:
	free(r);
	return ret;
}

void gran_region_unregister(struct gran_region *r)
{
	if (!r)
		return;
	if (r->budget)
		gran_budget_release(r->budget, r->d.size, r->d.granule);
	gran_bm_destroy(&r->bm);
	free(r);
}

int gran_region_range(const struct gran_region *r, uint64_t offset,
		      uint64_t length, uint64_t *first, uint64_t *count)
{
	uint64_t end;

	if (!length || ((offset | length) & (r->d.granule - 1)))
		return -EINVAL;
	if (__builtin_add_overflow(offset, length, &end) || end > r->d.size)
		return -ERANGE;
	*first = offset >> r->shift;
	*count = length >> r->shift;
	return 0;
}

uint64_t gran_region_iova(const struct gran_region *r)
{
	return r->d.iova;
}

uint64_t gran_region_size(const struct gran_region *r)
{
	return r->d.size;
}

uint64_t gran_region_granule(const struct gran_region *r)
{
	return r->d.granule;
}

uint64_t gran_region_nr_granules(const struct gran_region *r)
{
	return r->nr_granules;
}

const struct gran_region_desc *gran_region_desc(const struct gran_region *r)
{
	return &r->d;
}

int gran_region_set_memory(struct gran_region *r, void *mem_vaddr, int mem_fd,
			   uint64_t mem_size)
{
	uint64_t end;

	if (!mem_vaddr)
		return -EINVAL;
	if (__builtin_add_overflow(r->d.mem_offset, r->d.size, &end) || end > mem_size)
		return -ERANGE;
	r->d.mem_vaddr = mem_vaddr;
	r->d.mem_fd = mem_fd;
	r->d.mem_size = mem_size;
	r->d.flags &= ~GRAN_DESC_NO_MEMORY; /* it has one now */
	return 0;
}

uint64_t gran_region_populated(const struct gran_region *r)
{
	return r->bm.count;
}

uint64_t gran_region_mapped_bytes(const struct gran_region *r)
{
	return gran_bytes(r, r->bm.count);
}

bool gran_region_test(const struct gran_region *r, uint64_t idx)
{
	return idx < r->nr_granules && gran_bm_test(&r->bm, idx);
}

int gran_region_for_each_run(struct gran_region *r, uint64_t first,
			     uint64_t count, gran_region_run_fn fn, void *arg)
{
	uint64_t end, s, e;
	int ret;

	if (__builtin_add_overflow(first, count, &end) || end > r->nr_granules)
		end = r->nr_granules;
	for (s = gran_bm_next_set(&r->bm, first, end); s < end;
	     s = gran_bm_next_set(&r->bm, e, end)) {
		e = gran_bm_next_clear(&r->bm, s, end);
		ret = fn(arg, r, s, e - s);
		if (ret)
			return ret;
	}
	return 0;
}

/* Audit sink for gran_region_resync(): mark the granules an extent covers. */
struct resync_ctx {
	struct gran_region *r;
	uint64_t first, end;
};

static int resync_extent(void *arg, uint64_t iova, uint64_t length)
{
	struct resync_ctx *c = arg;
	struct gran_region *r = c->r;
	uint64_t s, e;

	if (!length || iova + (length - 1) < r->d.iova ||
	    iova > r->d.iova + (r->d.size - 1))
		return 0;
	/* Any granule the extent touches counts as held (conservative). */
	s = iova < r->d.iova ? 0 : (iova - r->d.iova) >> r->shift;
	e = iova + (length - 1) - r->d.iova;
	if (iova + (length - 1) > r->d.iova + (r->d.size - 1))
		e = r->d.size - 1;
	e = (e >> r->shift) + 1;
	if (s < c->first)
		s = c->first;
	if (e > c->end)
		e = c->end;
	if (s < e)
		gran_bm_set(&r->bm, s, e);
	return 0;
}

int gran_region_resync(struct gran_region *r, const struct be_ops *ops,
		       struct be_space *space, uint64_t first, uint64_t count)
{
	struct resync_ctx c = { r, first, first + count };
	int ret;

	gran_bm_clear(&r->bm, first, first + count);
	ret = ops->audit ? ops->audit(space, gran_iova_of(r, first),
				      gran_bytes(r, count), r->d.granule,
				      resync_extent, &c)
			 : -EOPNOTSUPP;
	if (ret) {
		/* Cannot tell: keep everything marked held. */
		gran_bm_set(&r->bm, first, first + count);
		return ret < 0 ? ret : -EIO;
	}
	return 0;
}

int gran_region_learn(struct gran_region *r, const struct be_ops *ops,
		      struct be_space *space)
{
	int ret = 0;

	if (!ops->audit)
		return -EOPNOTSUPP;
	/* One leaf's span at a time: at most one empty leaf exists at once. */
	for (uint64_t g = 0; g < r->nr_granules && !ret; g += GRAN_LEAF_BITS) {
		uint64_t n = r->nr_granules - g < GRAN_LEAF_BITS ? r->nr_granules - g
								  : GRAN_LEAF_BITS;

		ret = gran_bm_ensure(&r->bm, g, g + n);
		if (!ret)
			ret = gran_region_resync(r, ops, space, g, n);
		gran_bm_trim(&r->bm, g, g + n);
	}
	if (ret) {
		gran_bm_clear(&r->bm, 0, r->nr_granules);
		gran_bm_trim(&r->bm, 0, r->nr_granules);
	}
	return ret;
}

/* Unmap granules one at a time; returns how many the backend refused. */
static uint64_t unmap_each(struct gran_region *r, const struct be_ops *ops,
			   struct be_space *space, uint64_t first, uint64_t count)
{
	uint64_t g, refused = 0, unmapped;
	int ret;

	for (g = first; g < first + count; g++) {
		ret = ops->unmap(space, gran_iova_of(r, g), r->d.granule, &unmapped);
		/* -ENOENT for one whole granule-sized range that cuts nothing
		 * means nothing is there; anything else may still be held. */
		if (ret && ret != -ENOENT)
			refused++;
	}
	return refused;
}

struct unmap_all_ctx {
	const struct be_ops *ops;
	struct be_space *space;
	uint64_t refused;
};

static int unmap_all_run(void *arg, struct gran_region *r, uint64_t first,
			 uint64_t count)
{
	struct unmap_all_ctx *c = arg;
	uint64_t unmapped;
	int ret;

	ret = c->ops->unmap(c->space, gran_iova_of(r, first),
			    gran_bytes(r, count), &unmapped);
	/* Success means no area is left in the run, whatever *unmapped says;
	 * after a failure, find out granule by granule. */
	if (ret)
		c->refused += unmap_each(r, c->ops, c->space, first, count);
	return 0;
}

uint64_t gran_region_unmap_all(struct gran_region *r, const struct be_ops *ops,
			       struct be_space *space)
{
	struct unmap_all_ctx c = { ops, space, 0 };

	gran_region_for_each_run(r, 0, r->nr_granules, unmap_all_run, &c);
	gran_bm_clear(&r->bm, 0, r->nr_granules);
	gran_bm_trim(&r->bm, 0, r->nr_granules);
	return c.refused;
}

