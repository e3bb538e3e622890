/* SPDX-License-Identifier: MIT */
/*
 * soft_pin.c - how the software IOMMU model pins (see soft_pin_priv.h):
 * io_uring registered buffers (pin_user_pages FOLL_LONGTERM), or mlock where
 * io_uring is not available.
 */
#include <errno.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "prefill_priv.h"
#include "soft_pin_priv.h"

#define SLOT_WORDS (SOFT_RING_SLOTS / 64)
_Static_assert(SOFT_RING_SLOTS % 64 == 0, "the free map is whole words");

/*
 * One ring and its free slots.  ring is used by any thread without a lock
 * of ours (io_uring_register serialises on the kernel's uring_lock);
 * nfree, freemap, low and inflight are guarded by the pinner's lock.
 *
 * A pin takes the lowest free slots (slot_take), so areas pinned one after
 * the other get consecutive slots however earlier areas were freed, and an
 * unmap over them clears one run with one buffer update
 * (soft_pinner_unpin_list).  A stack of free slots (until Dec 7) handed out
 * the last freed first: after a storm of 4 KiB conversions a long-lived
 * service's next 64 pages held scattered slots and their unmap cost up to
 * 64 system calls, where the kernel's IOMMU_IOAS_UNMAP over them is one.
 */
struct soft_ring {
	int fd;                       /* the ring: never submitted to, only registered on */
	uint32_t nfree;
	uint32_t inflight;            /* pins and unpins running on this ring */
	uint32_t low;                 /* no free slot in the words below this one */
	uint64_t freemap[SLOT_WORDS]; /* bit set: the slot is free */
};

/* The lowest free slot of @r, now taken (p->lock held; r->nfree > 0). */
static uint32_t slot_take(struct soft_ring *r)
{
	for (uint32_t w = r->low; w < SLOT_WORDS; w++) {
		if (!r->freemap[w])
			continue;
		uint32_t b = (uint32_t)__builtin_ctzll(r->freemap[w]);

		r->freemap[w] &= r->freemap[w] - 1;
		r->low = w;
		r->nfree--;
		return w * 64 + b;
	}
	abort(); /* BUG: nfree > 0 but no bit set at or above low */
}

/* Give slot @slot of @r back (p->lock held; @slot taken). */
static void slot_give(struct soft_ring *r, uint32_t slot)
{
	r->freemap[slot / 64] |= 1ull << (slot % 64);
	if (slot / 64 < r->low)
		r->low = slot / 64;
	r->nfree++;
}

/*
 * The pinner.  mode, reason and rep are immutable after open.  lock guards
 * rings (the array and the count; a ring, once created, stays until close)
 * and every ring's nfree, freemap, low and inflight, and slots.
 */
struct soft_pinner {
	enum soft_pin_mode mode; /* SOFT_PIN_MLOCK or SOFT_PIN_IO_URING */
	char reason[128];        /* why mlock, when auto fell back; else "" */
	struct be_report rep;
	pthread_mutex_t lock;
	struct soft_ring **rings;
	uint32_t nr_rings, cap_rings;
	uint64_t slots;          /* slots in use, all rings */
};

/*
 * mlock/munlock through the raw system calls: AddressSanitizer's runtime
 * intercepts mlock()/munlock() as no-ops, and the model must pin for real in
 * sanitizer builds too.  (io_uring_register is not intercepted.)
 */
static int mlock_pin(void *vaddr, uint64_t length)
{
	int ret = syscall(SYS_mlock, vaddr, (size_t)length) ? -errno : 0;

	/* mlock is not atomic: over a hole it has locked the VMAs before it. */
	if (ret)
		syscall(SYS_munlock, vaddr, (size_t)length);
	return ret;
}

static int mlock_unpin(void *vaddr, uint64_t length)
{
	return syscall(SYS_munlock, vaddr, (size_t)length) ? -errno : 0;
}

/*
 * The two io_uring system calls the pinner needs, raw: no submission queue
 * is ever used, so nothing is mapped, and the static guest binaries need no
 * liburing.  Each returns what the kernel does, or -errno.
 */
static int uring_setup(void)
{
	struct io_uring_params prm;
	long fd;

	memset(&prm, 0, sizeof(prm));
	fd = syscall(__NR_io_uring_setup, 1u, &prm);
	return fd < 0 ? -errno : (int)fd;
}

static int uring_register(int fd, unsigned int op, void *arg, unsigned int nr)
{
	long ret = syscall(__NR_io_uring_register, fd, op, arg, nr);

	return ret < 0 ? -errno : (int)ret;
}

/* Register @iov (iov_base NULL: clear, unpinning) in slot @slot of @r; 0 or -errno. */
static int ring_update(struct soft_ring *r, uint32_t slot, const struct iovec *iov)
{
	struct io_uring_rsrc_update2 up;
	int ret;

	memset(&up, 0, sizeof(up));
	up.offset = slot;
	up.data = (uint64_t)(uintptr_t)iov;
	up.tags = 0; /* no tag: a cleared slot posts no CQE */
	up.nr = 1;
	ret = uring_register(r->fd, IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up));
	return ret == 1 ? 0 : ret < 0 ? ret : -EIO;
}

/* A new ring with an empty sparse table, or NULL with *@err = -errno. */
static struct soft_ring *ring_new(int *err)
{
	struct soft_ring *r = calloc(1, sizeof(*r));
	int ret;

	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	struct io_uring_rsrc_register rr;

	r->fd = uring_setup();
	if (r->fd < 0) {
		*err = r->fd;
		free(r);
		return NULL;
	}
	memset(&rr, 0, sizeof(rr));
	rr.nr = SOFT_RING_SLOTS;
	rr.flags = IORING_RSRC_REGISTER_SPARSE;
	ret = uring_register(r->fd, IORING_REGISTER_BUFFERS2, &rr, sizeof(rr));
	if (ret) {
		close(r->fd);
		free(r);
		*err = ret;
		return NULL;
	}
	memset(r->freemap, 0xff, sizeof(r->freemap));
	r->nfree = SOFT_RING_SLOTS;
	return r;
}

static void ring_free(struct soft_ring *r)
{
	close(r->fd); /* the last reference to the ring unpins what it holds */
	free(r);
}

/* Append a new ring to @p (p->lock held, or @p not yet shared); 0 or -errno. */
static int ring_add(struct soft_pinner *p)
{
	struct soft_ring *r;
	int err = 0;

	if (p->nr_rings == p->cap_rings) {
		uint32_t cap = p->cap_rings ? 2 * p->cap_rings : 8;
		struct soft_ring **n = realloc(p->rings, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->rings = n;
		p->cap_rings = cap;
	}
	r = ring_new(&err);
	if (!r)
		return err;
	p->rings[p->nr_rings++] = r;
	return 0;
}

int soft_pinner_open(enum soft_pin_mode want, uint32_t rings, const struct be_report *rep,
		     struct soft_pinner **out)
{
	struct soft_pinner *p = calloc(1, sizeof(*p));
	int err = 0;

	if (!p)
		return -ENOMEM;
	p->rep = *rep;
	p->mode = SOFT_PIN_MLOCK;
	if (want != SOFT_PIN_MLOCK) {
		/* The first ring is the probe; the others fail only for lack of memory or fds. */
		for (uint32_t i = 0; i < (rings ? rings : SOFT_OPEN_RINGS) && !err; i++)
			err = ring_add(p);
		if (!err) {
			p->mode = SOFT_PIN_IO_URING;
		} else if (want == SOFT_PIN_IO_URING || p->nr_rings) {
			for (uint32_t i = 0; i < p->nr_rings; i++)
				ring_free(p->rings[i]);
			free(p->rings);
			free(p);
			return err;
		} else {
			free(p->rings);
			p->rings = NULL;
			p->cap_rings = 0;
			snprintf(p->reason, sizeof(p->reason),
				 "io_uring registered buffers are not available: %s%s", strerror(-err),
				 err == -EPERM ? " (kernel.io_uring_disabled, or seccomp)" :
				 err == -ENOSYS ? " (no io_uring, or seccomp)" : "");
		}
	} else {
		snprintf(p->reason, sizeof(p->reason), "mlock was asked for");
	}
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

void soft_pinner_close(struct soft_pinner *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->nr_rings; i++)
		ring_free(p->rings[i]);
	free(p->rings);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/*
 * The ring to take @need slots from (p->lock held): an idle ring with room
 * (so concurrent pins do not queue on one uring_lock); else the least busy
 * ring with room; else a new ring.  Returns the index or -errno.
 */
static int pick_ring(struct soft_pinner *p, uint32_t need)
{
	int best = -1, ret;
	struct soft_ring *r;

	for (uint32_t i = 0; i < p->nr_rings; i++) {
		r = p->rings[i];
		if (r->nfree < need)
			continue;
		if (!r->inflight)
			return (int)i;
		if (best < 0 || r->inflight < p->rings[best]->inflight)
			best = (int)i;
	}
	if (best >= 0)
		return best;
	ret = ring_add(p);
	return ret ? ret : (int)p->nr_rings - 1;
}

#define UNPIN_BATCH 256u /* slots cleared by one buffer update, at most */

/*
 * Clear @n slots of @r, consecutive from @first, with one buffer update per
 * UNPIN_BATCH; 0 or the first -errno (the rest is still tried).
 */
static int slots_clear_run(struct soft_ring *r, uint32_t first, uint32_t n)
{
	static const struct iovec none[UNPIN_BATCH]; /* all { NULL, 0 }: clear */
	int err = 0;

	while (n) {
		uint32_t k = n < UNPIN_BATCH ? n : UNPIN_BATCH;
		struct io_uring_rsrc_update2 up;
		int ret;

		memset(&up, 0, sizeof(up));
		up.offset = first;
		up.data = (uint64_t)(uintptr_t)none;
		up.nr = k;
		ret = uring_register(r->fd, IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up));
		if (ret != (int)k && !err)
			err = ret < 0 ? ret : -EIO;
		first += k;
		n -= k;
	}
	return err;
}

/*
 * Clear slot @slot of ring @r, unpinning what it holds (before it returns);
 * 0 or -errno.  @r was read from p->rings under p->lock: the array may be
 * reallocated by ring_add meanwhile, the ring itself stays until close.
 */
static int slot_clear(struct soft_ring *r, uint32_t slot)
{
	return slots_clear_run(r, slot, 1);
}

/* Give @a's slots back and drop its ring's inflight (p->lock held). */
static void slots_put(struct soft_pinner *p, struct soft_area *a, uint32_t ring)
{
	struct soft_ring *r = p->rings[ring];

	for (uint32_t i = 0; i < a->nslots; i++)
		slot_give(r, a->slots[i].slot);
	p->slots -= a->nslots;
	r->inflight--;
	if (a->slots != &a->slot1)
		free(a->slots);
	a->slots = NULL;
	a->nslots = 0;
}

int soft_pinner_pin(struct soft_pinner *p, struct soft_area *a)
{
	uint32_t n, done, ring;
	struct soft_ring *r;
	int ret = 0;

	if (p->mode == SOFT_PIN_MLOCK)
		return mlock_pin(a->vaddr, a->length);
	n = (uint32_t)((a->length + SOFT_SLOT_BYTES - 1) / SOFT_SLOT_BYTES);
	if (n > SOFT_RING_SLOTS)
		return -E2BIG; /* 16 TiB in one area */
	a->slots = n == 1 ? &a->slot1 : calloc(n, sizeof(*a->slots));
	if (!a->slots)
		return -ENOMEM;

	pthread_mutex_lock(&p->lock);
	ret = pick_ring(p, n);
	if (ret < 0) {
		pthread_mutex_unlock(&p->lock);
		if (a->slots != &a->slot1)
			free(a->slots);
		a->slots = NULL;
		return ret;
	}
	ring = (uint32_t)ret;
	r = p->rings[ring];
	r->inflight++;
	for (uint32_t i = 0; i < n; i++)
		a->slots[i] = (struct soft_slot){ ring, slot_take(r) };
	a->nslots = n;
	p->slots += n;
	pthread_mutex_unlock(&p->lock);

	/*
	 * The pinning process's page tables first (prefill_priv.h): a page the
	 * VMM allocated through its own mapping is not in ours yet.  Over
	 * absent pages (a pin that allocates: in-process, --allow-fault-in) it
	 * does nothing (direct plug 264-384 ms per GiB without a pass, 367-467
	 * with one, measured).
	 */
	prefill_page_tables(a->vaddr, a->length);
	ret = 0;
	for (done = 0; done < n; done++) {
		uint64_t off = (uint64_t)done * SOFT_SLOT_BYTES;
		uint64_t len = a->length - off < SOFT_SLOT_BYTES ? a->length - off : SOFT_SLOT_BYTES;
		struct iovec iov = { (char *)a->vaddr + off, (size_t)len };

		ret = ring_update(r, a->slots[done].slot, &iov);
		if (ret)
			break;
	}
	/* A failure leaves nothing pinned: clear what the earlier chunks pinned. */
	for (uint32_t i = 0; ret && i < done; i++) {
		int c = slot_clear(r, a->slots[i].slot);

		if (c)
			be_reportf(&p->rep, "soft: BUG: clearing io_uring buffer slot %u of ring %u: %d",
				   a->slots[i].slot, ring, c);
	}
	pthread_mutex_lock(&p->lock);
	if (ret)
		slots_put(p, a, ring);
	else
		r->inflight--;
	pthread_mutex_unlock(&p->lock);
	return ret;
}

void soft_pinner_unpin(struct soft_pinner *p, struct soft_area *a)
{
	struct soft_ring *r;
	uint32_t ring;
	int ret;

	if (p->mode == SOFT_PIN_MLOCK) {
		/* munlock cannot fail on a range that was mlock()ed: a bug. */
		ret = mlock_unpin(a->vaddr, a->length);
		if (ret)
			be_reportf(&p->rep, "soft: BUG: munlock iova 0x%llx len 0x%llx: %d",
				   (unsigned long long)a->iova, (unsigned long long)a->length, ret);
		return;
	}
	if (!a->nslots)
		return;
	ring = a->slots[0].ring;
	pthread_mutex_lock(&p->lock);
	r = p->rings[ring];
	r->inflight++;
	pthread_mutex_unlock(&p->lock);
	for (uint32_t i = 0; i < a->nslots; i++) {
		ret = slot_clear(r, a->slots[i].slot);
		if (ret)
			be_reportf(&p->rep, "soft: BUG: unpin iova 0x%llx len 0x%llx (io_uring slot %u of ring %u): %d",
				   (unsigned long long)a->iova, (unsigned long long)a->length,
				   a->slots[i].slot, ring, ret);
	}
	pthread_mutex_lock(&p->lock);
	slots_put(p, a, ring);
	pthread_mutex_unlock(&p->lock);
}

int soft_pinner_pin_part(struct soft_pinner *p, struct soft_area *part)
{
	if (p->mode == SOFT_PIN_MLOCK)
		return 0; /* the old area's mlock covers the part: see soft_pin_priv.h */
	return soft_pinner_pin(p, part);
}

void soft_pinner_drop_part(struct soft_pinner *p, struct soft_area *part)
{
	if (p->mode == SOFT_PIN_MLOCK)
		return; /* pin_part locked nothing; munlock would unlock the old area */
	soft_pinner_unpin(p, part);
}

/* qsort order of two uint64_t: ascending. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void soft_pinner_unpin_list(struct soft_pinner *p, struct soft_area *gone)
{
	uint64_t *keys, n = 0, k = 0;
	struct soft_area *a;

	for (a = gone; a; a = a->left)
		n += a->nslots;
	keys = p->mode == SOFT_PIN_IO_URING && n > 1 ? malloc(n * sizeof(*keys)) : NULL;
	if (!keys) {
		for (a = gone; a; a = a->left)
			soft_pinner_unpin(p, a);
		return;
	}
	pthread_mutex_lock(&p->lock);
	for (a = gone; a; a = a->left) {
		if (!a->nslots)
			continue;
		p->rings[a->slots[0].ring]->inflight++;
		for (uint32_t i = 0; i < a->nslots; i++)
			keys[k++] = (uint64_t)a->slots[i].ring << 32 | a->slots[i].slot;
	}
	pthread_mutex_unlock(&p->lock);
	qsort(keys, n, sizeof(*keys), cmp_u64);
	for (uint64_t i = 0, j; i < n; i = j) {
		uint32_t ring = (uint32_t)(keys[i] >> 32), first = (uint32_t)keys[i];
		struct soft_ring *r;
		int ret;

		for (j = i + 1; j < n && keys[j] == keys[j - 1] + 1 &&
				(uint32_t)(keys[j] >> 32) == ring; j++)
			;
		pthread_mutex_lock(&p->lock);
		r = p->rings[ring]; /* the array may move (ring_add), the ring does not */
		pthread_mutex_unlock(&p->lock);
		ret = slots_clear_run(r, first, (uint32_t)(j - i));
		if (ret)
			be_reportf(&p->rep, "soft: BUG: unpin of io_uring slots %u-%u of ring %u: %d",
				   first, first + (uint32_t)(j - i) - 1, ring, ret);
	}
	free(keys);
	pthread_mutex_lock(&p->lock);
	for (a = gone; a; a = a->left)
		if (a->nslots)
			slots_put(p, a, a->slots[0].ring);
	pthread_mutex_unlock(&p->lock);
}

bool soft_pinner_unpins_unlocked(const struct soft_pinner *p)
{
	return p->mode == SOFT_PIN_IO_URING;
}

void soft_pinner_info(struct soft_pinner *p, struct soft_iommu_pin_info *out)
{
	memset(out, 0, sizeof(*out));
	out->mode = p->mode;
	snprintf(out->reason, sizeof(out->reason), "%s", p->reason);
	pthread_mutex_lock(&p->lock);
	out->rings = p->nr_rings;
	out->slots = p->slots;
	pthread_mutex_unlock(&p->lock);
}
