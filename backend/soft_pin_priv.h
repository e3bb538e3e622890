/* SPDX-License-Identifier: MIT */
/*
 * soft_pin_priv.h - private to the software IOMMU model; do not include
 * directly from outside backend/.
 *
 * How the model pins an area's host pages (docs/design.md, "The software
 * model's pin"): with the kernel's long-term pin, pin_user_pages(FOLL_WRITE |
 * FOLL_LONGTERM), as io_uring reaches it when a buffer is registered in a
 * slot of a sparse buffer table; cleared, the slot unpins before the update
 * returns.  Pins show in VmPin (mm->pinned_vm), are counted per pin (two
 * areas over the same pages pin them twice), and take the mmap lock for
 * read at most.  Where io_uring is not available (the io_uring_disabled
 * sysctl, ENOSYS, seccomp, a kernel without sparse tables) the model falls
 * back to mlock(), which shows in VmLck instead.
 *
 * Rings: one table holds at most SOFT_RING_SLOTS buffers and one buffer at
 * most 1 GiB, so an area takes one slot per GiB or part of it, all from one
 * ring.  SOFT_OPEN_RINGS rings are made at open (so the service's fds do not
 * change with its pins), more only when those are full.  A registration
 * holds its ring's kernel mutex (uring_lock) while it pins: concurrent pins
 * go to different rings (an idle one if there is one).  io_uring decides at
 * ring creation whether to charge RLIMIT_MEMLOCK (not with CAP_IPC_LOCK);
 * the daemon opens its backend before its privilege drop, which keeps
 * CAP_IPC_LOCK, so the decision is the one the running service would get.
 */
#ifndef DMASVC_SOFT_PIN_PRIV_H
#define DMASVC_SOFT_PIN_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "dmasvc/soft_iommu.h"
#include "report_priv.h"
#include "soft_tree_priv.h"

#define SOFT_RING_SLOTS 16384u     /* IORING_MAX_REG_BUFFERS */
#define SOFT_SLOT_BYTES (1ull << 30) /* io_buffer_validate(): iov_len <= 1 GiB */
#define SOFT_OPEN_RINGS 4u

struct soft_pinner;

/*
 * soft_pinner_open - choose the pin mechanism: @want SOFT_PIN_MLOCK uses
 * mlock; SOFT_PIN_IO_URING requires io_uring (-errno of the first ring's
 * creation when it cannot be had); SOFT_PIN_AUTO makes the first ring (a
 * sparse table) and falls back to mlock when that fails, keeping the
 * reason.  With io_uring, @rings rings are made now (0: SOFT_OPEN_RINGS).
 * @r reports BUGs of unpin later.  Returns 0 or -errno (*@out untouched).
 */
int soft_pinner_open(enum soft_pin_mode want, uint32_t rings, const struct be_report *r,
		     struct soft_pinner **out);

/* soft_pinner_close - close every ring (unpinning what they still hold). */
void soft_pinner_close(struct soft_pinner *p);

/*
 * soft_pinner_pin - pin [a->vaddr, a->vaddr + a->length) for @a (no lock of
 * the caller needs to be held; any thread).  On success @a's slots are set;
 * on failure nothing stays pinned, @a has no slots, and the return is the
 * kernel's -errno (e.g. -ENOMEM beyond RLIMIT_MEMLOCK, -EFAULT unmapped).
 */
int soft_pinner_pin(struct soft_pinner *p, struct soft_area *a);

/*
 * soft_pinner_unpin - release @a's pin (pinned by soft_pinner_pin) and its
 * slots.  io_uring: clears @a's slots whatever a->iova/length/vaddr say now
 * (they only name the area in reports); mlock: munlocks [a->vaddr,
 * a->vaddr + a->length) as they are now.  So a caller that trims a cut
 * area to the bytes that leave (soft.c) releases exactly those: all of the
 * old pin with io_uring (the parts that stay have pins of their own,
 * soft_pinner_pin_part), only the trimmed bytes with mlock.  Never fails:
 * a kernel refusal is reported as a BUG.
 */
void soft_pinner_unpin(struct soft_pinner *p, struct soft_area *a);

/*
 * soft_pinner_pin_part - pin @part ahead of a cut (soft.c's unmap with
 * cut_areas): @part (iova, length, vaddr set; in no tree) is a piece of a
 * published area that stays mapped when an unmap cuts that area, and the
 * area's own pin lasts until @part is pinned.  io_uring: a registered
 * buffer cannot be cut, so @part gets a pin of its own in new slots, as
 * soft_pinner_pin (-errno and nothing pinned on failure; until the old
 * area's slots are cleared its bytes are pinned twice, which counts
 * against RLIMIT_MEMLOCK).  mlock: the old area's lock already covers
 * @part's pages and is not counted (munlock of the trimmed old area leaves
 * them locked): nothing to do, returns 0.  No lock of the caller needs to
 * be held.  Undo with soft_pinner_drop_part; once @part is published it is
 * an area like any other (soft_pinner_unpin).
 */
int soft_pinner_pin_part(struct soft_pinner *p, struct soft_area *part);

/*
 * soft_pinner_drop_part - undo soft_pinner_pin_part of @part (the cut did
 * not happen; the old area still holds its pin).  io_uring: clears @part's
 * slots; mlock: nothing (a munlock would unlock the old area's pages).
 * Never fails.
 */
void soft_pinner_drop_part(struct soft_pinner *p, struct soft_area *part);

/*
 * soft_pinner_unpin_list - soft_pinner_unpin of every area of the list
 * @gone (linked through ->left), the way one IOMMU_IOAS_UNMAP unpins every
 * area it covers in one call: one buffer update per run of consecutive
 * slots of a ring (slots are handed out in order, so the areas of a range
 * mapped together mostly make one run), not one system call per area.
 * The areas keep their list links; their slots are given back.  Never
 * fails (as soft_pinner_unpin; without memory for the sort it unpins area
 * by area).
 */
void soft_pinner_unpin_list(struct soft_pinner *p, struct soft_area *gone);

/*
 * soft_pinner_unpins_unlocked - whether unpin may run after the space lock
 * is dropped (io_uring: pins are counted, an area's unpin touches nobody
 * else's) rather than under it (mlock: a page's lock is shared by every
 * area over it, so the old model's order is kept).
 */
bool soft_pinner_unpins_unlocked(const struct soft_pinner *p);

/* soft_pinner_info - fill *@out (mode, reason, rings, slots in use). */
void soft_pinner_info(struct soft_pinner *p, struct soft_iommu_pin_info *out);

#endif /* DMASVC_SOFT_PIN_PRIV_H */
