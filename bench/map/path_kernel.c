/* SPDX-License-Identifier: MIT */
/*
 * path_kernel.c - the "kernel" path: the physical limit, the backend's own
 * cost for the same work with nothing around it.  In-process on the same
 * backend space as direct (on the model host be_soft_ops' map/unmap, on
 * real iommufd plain IOMMU_IOAS_MAP/UNMAP ioctls), with one thread ("kernel
 * t1") or two threads over disjoint halves ("kernel t2").
 *
 * The work of a batch is what its notes change, in the fewest calls the
 * granule rules allow: a run of populate notes is one map call per granule
 * (the unit the IOMMU owner must be able to unmap alone, as direct and
 * dmasvc map); a run of discard notes is one unmap call per contiguous
 * range after merging adjacent notes (what dmasvc's planner does).  Runs
 * keep the batch's order.  With two threads, each run's calls are cut into
 * two contiguous halves, the second half done by a helper thread created at
 * open (one hand-off per run, through a mutex and condvar); a run of one
 * call runs on the calling thread alone.
 *
 * Latency of a note: from the start of its batch to its end.
 *
 * "kernel-cut" (real iommufd only, one thread) is the kernel's cost of
 * another design, which the service does not follow: areas over whole
 * runs.  A run of populate notes is one map call per contiguous range, and
 * an unmap cuts whatever areas it starts or ends inside
 * (be_iommufd_unmap_cut(): iommufd's VFIO-compat unmap, in an IOAS without
 * huge pages, which is what it costs the device).  It says how much of a
 * conversion storm's cost is per area (each area's calls, teardown and
 * IOTLB invalidation), which such areas would save.
 *
 * "kernel-hop" (one thread) is the limit of any IOMMU owner outside the
 * VMM's thread: kernel t1's calls for a batch, made by a thread that polls
 * for the batch on another CPU while the caller polls for their end (two
 * atomics, no system call, no yield, no sleep, no PAUSE: one cross-CPU
 * round trip around the calls; under TCG a PAUSE leaves the translated
 * code, and a spin with one cost +24 us p50 per round trip in the tests/vm
 * guest, +2.4 us without).  What a service adds to a synchronous note beyond
 * this is its own (ring, validation, plan); what this adds to kernel t1 is
 * the machine's (on the tests/vm guest, TCG's).  Its thread sleeps while
 * the target is frozen (freeze), so it polls only during its own runs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "dmasvc/backend_kernel.h"
#include "mb.h"

/* One backend call: map [iova, iova + len) from @off of the memfd, or unmap it. */
struct kcall {
	uint64_t off, len;
};

/* A half of a run, for one thread. */
struct khalf {
	const struct kcall *calls;
	size_t n;
	bool populate;
	int err;                 /* first failure, or 0 */
};

struct mb_target {
	const struct mb_env *env;
	unsigned int threads;    /* 1 or 2 */
	bool cut;                /* kernel-cut: runs mapped whole, unmaps cut areas */
	struct mb_space sp;
	struct mb_region r;
	bool have_region;
	struct mb_counts n;
	struct kcall *calls;     /* the current run's calls */
	size_t cap;
	/* helper thread (threads == 2) */
	pthread_t helper;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct khalf *job;       /* under lock: the helper's half, NULL when idle */
	bool job_done, stop;     /* under lock */
	/*
	 * kernel-hop: the caller publishes a batch (hop_notes, hop_n) and then
	 * hop_post (release); the hop thread, which polls hop_post, runs it and
	 * publishes hop_err and then hop_done = hop_post (release), which the
	 * caller polls.  hop_frozen (set only while no batch is posted) sends
	 * the hop thread to sleep on cv until unfrozen (under lock) or stop.
	 */
	bool hop;
	const struct mb_note *hop_notes;
	size_t hop_n;
	int hop_err;
	_Atomic uint64_t hop_post, hop_done;
	atomic_bool hop_frozen;
};

/* Do @h's calls on this thread; the first error stays in h->err. */
static void run_half(struct mb_target *t, struct khalf *h)
{
	const struct be_ops *ops = t->sp.ops;

	h->err = 0;
	for (size_t i = 0; i < h->n; i++) {
		uint64_t off = h->calls[i].off, len = h->calls[i].len, unmapped;
		int ret;

		if (h->populate) {
			struct be_map_src src = {
				.vaddr = (char *)t->r.vaddr + off,
				.fd = t->r.fd,
				.fd_offset = off,
			};

			ret = ops->map(t->sp.space, t->r.iova + off, len, &src,
				       BE_PROT_READ | BE_PROT_WRITE);
		} else {
			ret = t->cut ? be_iommufd_unmap_cut(t->sp.space, t->r.iova + off, len,
							 &unmapped)
				     : ops->unmap(t->sp.space, t->r.iova + off, len, &unmapped);
		}
		if (ret && !h->err)
			h->err = ret;
	}
}

static void *helper_main(void *arg)
{
	struct mb_target *t = arg;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		while (!t->job && !t->stop)
			pthread_cond_wait(&t->cv, &t->lock);
		if (t->stop)
			break;
		pthread_mutex_unlock(&t->lock);
		run_half(t, t->job);
		pthread_mutex_lock(&t->lock);
		t->job = NULL;
		t->job_done = true;
		pthread_cond_broadcast(&t->cv);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static int kernel_open(const struct mb_env *env, unsigned int workers, struct mb_target **out)
{
	struct mb_target *t = calloc(1, sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	t->env = env;
	t->threads = workers >= 2 ? 2 : 1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cv, NULL);
	if (t->threads == 2) {
		ret = -pthread_create(&t->helper, NULL, helper_main, t);
		if (ret) {
			pthread_cond_destroy(&t->cv);
			pthread_mutex_destroy(&t->lock);
			free(t);
			return ret;
		}
	}
	*out = t;
	return 0;
}

static int kernel_cut_open(const struct mb_env *env, unsigned int workers,
			   struct mb_target **out)
{
	int ret;

	(void)workers;
	if (env->backend != MB_IOMMUFD)
		return -EOPNOTSUPP; /* the model has no cut: areas are its granules */
	ret = kernel_open(env, 1, out);
	if (!ret)
		(*out)->cut = true;
	return ret;
}

static void kernel_close(struct mb_target *t)
{
	if (t->threads == 2 || t->hop) {
		pthread_mutex_lock(&t->lock);
		t->stop = true;
		/* a polling hop thread looks at stop only once frozen */
		atomic_store_explicit(&t->hop_frozen, true, memory_order_relaxed);
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->helper, NULL);
	}
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->lock);
	free(t->calls);
	free(t);
}

static int kernel_region_add(struct mb_target *t, const struct mb_region *r)
{
	int ret = t->cut ? mb_space_open_cut(t->env, &t->sp) : mb_space_open(t->env, &t->sp);

	if (ret)
		return ret;
	t->r = *r;
	t->have_region = true;
	t->n = (struct mb_counts){ 0 };
	return 0;
}

static void kernel_region_del(struct mb_target *t)
{
	if (!t->have_region)
		return;
	mb_space_close(&t->sp); /* unmaps whatever is left */
	t->have_region = false;
}

/* Append a call; with @merge (discards; populates on kernel-cut) it extends
 * the previous call when adjacent. */
static int add_call(struct mb_target *t, size_t *n, uint64_t off, uint64_t len, bool merge)
{
	if (merge && *n && t->calls[*n - 1].off + t->calls[*n - 1].len == off) {
		t->calls[*n - 1].len += len;
		return 0;
	}
	if (*n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 1024;
		struct kcall *c = realloc(t->calls, cap * sizeof(*c));

		if (!c)
			return -ENOMEM;
		t->calls = c;
		t->cap = cap;
	}
	t->calls[(*n)++] = (struct kcall){ off, len };
	return 0;
}

/* Run @n calls of one direction, split over the threads.  0 or the first -errno. */
static int run_calls(struct mb_target *t, size_t n, bool populate)
{
	struct khalf a = { .calls = t->calls, .n = n, .populate = populate };
	struct khalf b = { .populate = populate };

	if (populate)
		t->n.map_calls += n;
	else
		t->n.unmap_calls += n;
	if (t->threads == 1 || n < 2) {
		run_half(t, &a);
		return a.err;
	}
	a.n = n / 2;
	b.calls = t->calls + a.n;
	b.n = n - a.n;
	pthread_mutex_lock(&t->lock);
	t->job = &b;
	t->job_done = false;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->lock);
	run_half(t, &a);
	pthread_mutex_lock(&t->lock);
	while (!t->job_done)
		pthread_cond_wait(&t->cv, &t->lock);
	pthread_mutex_unlock(&t->lock);
	return a.err ? a.err : b.err;
}

/* The calls of the batch @notes[0..n): 0 or the first -errno (later runs still ran). */
static int kernel_batch(struct mb_target *t, const struct mb_note *notes, size_t n)
{
	uint64_t g = t->r.granule;
	int first_err = 0, ret;

	for (size_t i = 0; i < n;) {
		bool populate = notes[i].populate;
		size_t nc = 0;

		/* one run: the notes up to the next change of direction */
		for (; i < n && notes[i].populate == populate; i++) {
			for (uint64_t done = 0; populate && !t->cut && done < notes[i].length;
			     done += g) {
				ret = add_call(t, &nc, notes[i].offset + done, g, false);
				if (ret)
					return ret;
			}
			if (!populate || t->cut) {
				ret = add_call(t, &nc, notes[i].offset, notes[i].length, true);
				if (ret)
					return ret;
			}
		}
		ret = run_calls(t, nc, populate);
		if (ret && !first_err)
			first_err = ret;
	}
	return first_err;
}

/* kernel-hop's other thread: polls hop_post, runs each batch posted. */
static void *hop_main(void *arg)
{
	struct mb_target *t = arg;
	uint64_t seen = 0;

	for (;;) {
		uint64_t post;

		if (atomic_load_explicit(&t->hop_frozen, memory_order_relaxed)) {
			pthread_mutex_lock(&t->lock);
			while (atomic_load_explicit(&t->hop_frozen, memory_order_relaxed) &&
			       !t->stop)
				pthread_cond_wait(&t->cv, &t->lock);
			if (t->stop) {
				pthread_mutex_unlock(&t->lock);
				return NULL;
			}
			pthread_mutex_unlock(&t->lock);
		}
		/* Acquire: the batch's notes, published before hop_post. */
		post = atomic_load_explicit(&t->hop_post, memory_order_acquire);
		if (post == seen)
			continue;
		seen = post;
		t->hop_err = kernel_batch(t, t->hop_notes, t->hop_n);
		/* Release: hop_err before the caller sees the batch done. */
		atomic_store_explicit(&t->hop_done, post, memory_order_release);
	}
}

static int kernel_notify(struct mb_target *t, const struct mb_note *notes, size_t n,
			 uint64_t *lat_ns)
{
	uint64_t t0 = mb_now_ns(), dt;
	int err;

	if (t->hop) {
		uint64_t post = atomic_load_explicit(&t->hop_post, memory_order_relaxed) + 1;

		t->hop_notes = notes;
		t->hop_n = n;
		/* Release: the notes before the hop thread sees the post. */
		atomic_store_explicit(&t->hop_post, post, memory_order_release);
		/* Acquire: hop_err, written before hop_done. */
		while (atomic_load_explicit(&t->hop_done, memory_order_acquire) != post)
			; /* no PAUSE, as in the service's and libdmasvc's spins (see above) */
		err = t->hop_err;
	} else {
		err = kernel_batch(t, notes, n);
	}
	dt = mb_now_ns() - t0;
	for (size_t i = 0; i < n; i++)
		lat_ns[i] = dt;
	return err;
}

static int kernel_hop_open(const struct mb_env *env, unsigned int workers,
			   struct mb_target **out)
{
	struct mb_target *t;
	int ret;

	(void)workers;
	ret = kernel_open(env, 1, &t);
	if (ret)
		return ret;
	t->hop = true;
	atomic_init(&t->hop_frozen, true); /* polls only during its runs (freeze) */
	ret = -pthread_create(&t->helper, NULL, hop_main, t);
	if (ret) {
		t->hop = false;
		kernel_close(t);
		return ret;
	}
	*out = t;
	return 0;
}

/* kernel-hop: @frozen sends the hop thread to sleep; false wakes it to poll. */
static void kernel_hop_freeze(struct mb_target *t, bool frozen)
{
	pthread_mutex_lock(&t->lock);
	atomic_store_explicit(&t->hop_frozen, frozen, memory_order_relaxed);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->lock);
}

static int kernel_counts(struct mb_target *t, struct mb_counts *out)
{
	*out = t->n;
	return 0;
}

static pid_t kernel_pin_pid(struct mb_target *t)
{
	(void)t;
	return getpid();
}

const struct mb_path_ops mb_kernel_ops = {
	.name = "kernel",
	.open = kernel_open,
	.close = kernel_close,
	.region_add = kernel_region_add,
	.region_del = kernel_region_del,
	.notify = kernel_notify,
	.counts = kernel_counts,
	.pin_pid = kernel_pin_pid,
};

const struct mb_path_ops mb_kernel_cut_ops = {
	.name = "kernel-cut",
	.open = kernel_cut_open,
	.close = kernel_close,
	.region_add = kernel_region_add,
	.region_del = kernel_region_del,
	.notify = kernel_notify,
	.counts = kernel_counts,
	.pin_pid = kernel_pin_pid,
};

const struct mb_path_ops mb_kernel_hop_ops = {
	.name = "kernel-hop",
	.open = kernel_hop_open,
	.close = kernel_close,
	.region_add = kernel_region_add,
	.region_del = kernel_region_del,
	.notify = kernel_notify,
	.counts = kernel_counts,
	.pin_pid = kernel_pin_pid,
	.freeze = kernel_hop_freeze,
};
