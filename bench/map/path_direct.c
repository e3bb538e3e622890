/* SPDX-License-Identifier: MIT */
/*
 * path_direct.c - the "direct" path: what QEMU's VFIO listener does today,
 * in-process and synchronous on the calling thread (QEMU: the main loop,
 * or a vCPU thread for guest_memfd conversions).
 *
 *   populate [off, off + len)  one map call per granule, in order
 *                              (vfio_ram_discard_notify_populate maps each
 *                              granule alone "so we can unmap in minimum
 *                              granularity later"); a failure unmaps what
 *                              this note mapped and fails the note;
 *   discard  [off, off + len)  one unmap call over the whole range
 *                              (vfio_ram_discard_notify_discard).
 *
 * The backend space (and the device attach) is made per region: a VFIO
 * cdev can be bound to one iommufd at a time.
 *
 * "direct-pf" (direct after the VMM's prefault) does what the ring path's
 * client and service do between them, in-process, without the ring: each
 * populate first faults its range in with dmasvc_prefault() through a
 * second MAP_SHARED mapping of the memory (what libdmasvc's default does in
 * the VMM), then maps it per granule through the bench's own mapping (which
 * has no page tables for it yet, as the service's has none): the like-for-
 * like baseline of the ring at plug (bench/RESULTS.md, "plug: where the
 * ring path's time goes").
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"

#include "mb.h"

struct mb_target {
	const struct mb_env *env;
	struct mb_space sp;
	struct mb_region r;
	bool have_region;
	bool prefault;   /* direct-pf */
	char *pf_map;    /* direct-pf: the VMM's prefault mapping, or NULL */
	struct mb_counts n;
};

static int direct_open(const struct mb_env *env, unsigned int workers,
		       struct mb_target **out)
{
	(void)workers;
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->env = env;
	return 0;
}

static int direct_pf_open(const struct mb_env *env, unsigned int workers,
			  struct mb_target **out)
{
	int ret = direct_open(env, workers, out);

	if (!ret)
		(*out)->prefault = true;
	return ret;
}

static void direct_close(struct mb_target *t)
{
	free(t);
}

static int direct_region_add(struct mb_target *t, const struct mb_region *r)
{
	int ret = mb_space_open(t->env, &t->sp);

	if (ret)
		return ret;
	if (t->prefault) {
		void *p = mmap(NULL, r->size, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_NORESERVE, r->fd, 0);

		if (p == MAP_FAILED) {
			ret = -errno;
			mb_space_close(&t->sp);
			return ret;
		}
		t->pf_map = p;
	}
	t->r = *r;
	t->have_region = true;
	t->n = (struct mb_counts){ 0 };
	return 0;
}

static void direct_region_del(struct mb_target *t)
{
	if (!t->have_region)
		return;
	mb_space_close(&t->sp); /* unmaps whatever is left */
	if (t->pf_map)
		munmap(t->pf_map, t->r.size);
	t->pf_map = NULL;
	t->have_region = false;
}

static int direct_populate(struct mb_target *t, uint64_t off, uint64_t len)
{
	const struct be_ops *ops = t->sp.ops;
	uint64_t g = t->r.granule, done, unmapped;
	int ret = 0;

	for (done = 0; done < len; done += g) {
		struct be_map_src src = {
			.vaddr = (char *)t->r.vaddr + off + done,
			.fd = t->r.fd,
			.fd_offset = off + done,
		};

		t->n.map_calls++;
		ret = ops->map(t->sp.space, t->r.iova + off + done, g, &src,
			       BE_PROT_READ | BE_PROT_WRITE);
		if (ret)
			break;
	}
	if (ret && done) {
		t->n.unmap_calls++;
		ops->unmap(t->sp.space, t->r.iova + off, done, &unmapped);
	}
	return ret;
}

static int direct_notify(struct mb_target *t, const struct mb_note *notes,
			 size_t n, uint64_t *lat_ns)
{
	int first_err = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = mb_now_ns(), unmapped;
		int ret;

		if (notes[i].populate) {
			ret = t->pf_map ? dmasvc_prefault(t->pf_map + notes[i].offset,
							  (size_t)notes[i].length, true)
					: 0;
			if (!ret)
				ret = direct_populate(t, notes[i].offset, notes[i].length);
		} else {
			t->n.unmap_calls++;
			ret = t->sp.ops->unmap(t->sp.space, t->r.iova + notes[i].offset,
					       notes[i].length, &unmapped);
		}
		lat_ns[i] = mb_now_ns() - t0;
		if (ret && !first_err)
			first_err = ret;
	}
	return first_err;
}

static int direct_counts(struct mb_target *t, struct mb_counts *out)
{
	*out = t->n;
	return 0;
}

static pid_t direct_pin_pid(struct mb_target *t)
{
	(void)t;
	return getpid();
}

const struct mb_path_ops mb_direct_ops = {
	.name = "direct",
	.open = direct_open,
	.close = direct_close,
	.region_add = direct_region_add,
	.region_del = direct_region_del,
	.notify = direct_notify,
	.counts = direct_counts,
	.pin_pid = direct_pin_pid,
};

const struct mb_path_ops mb_direct_pf_ops = {
	.name = "direct-pf",
	.open = direct_pf_open,
	.close = direct_close,
	.region_add = direct_region_add,
	.region_del = direct_region_del,
	.notify = direct_notify,
	.counts = direct_counts,
	.pin_pid = direct_pin_pid,
};
