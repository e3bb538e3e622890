/* SPDX-License-Identifier: MIT */
/*
 * soft_tree_priv.h - private to the software IOMMU model; do not include directly
 * from outside backend/.
 *
 * The model's area store is an AVL tree keyed by IOVA.  Areas never overlap,
 * so ordering by iova also orders by last; every lookup is O(log n) (a 64 GiB
 * region at 4 KiB is 16 M areas).  The tree itself has no lock: the owning
 * space's mutex guards every call (see struct soft_space in soft.c).
 *
 * Vocabulary: last is inclusive (iova + length - 1).
 */
#ifndef DMASVC_SOFT_TREE_PRIV_H
#define DMASVC_SOFT_TREE_PRIV_H

#include <stdbool.h>
#include <stdint.h>

/*
 * One area.  iova, length, vaddr are immutable while it is in the tree (an
 * unmap that cuts an area unlinks it, trims it to the bytes that leave and
 * links it again, soft.c).  published is
 * false between the two phases of a map (reserved, being pinned) and true
 * once the pin succeeded; only published areas are visible to translate,
 * lookup and audit, and an unmap that meets an unpublished one gets -EBUSY.
 */
struct soft_slot {
	uint32_t ring; /* index into the model's ring table */
	uint32_t slot; /* registered-buffer slot of that ring */
};

struct soft_area {
	uint64_t iova;
	uint64_t length;
	void *vaddr;
	bool published;
	/*
	 * The registered-buffer slots that pin the area (io_uring pin mode;
	 * nslots = 0 in mlock mode): one per GiB or part of it.  slots points
	 * at slot1 when nslots == 1, else at a heap array the area owns.
	 */
	uint32_t nslots;
	struct soft_slot slot1;
	struct soft_slot *slots;
	int height;               /* AVL height, leaf = 1 */
	struct soft_area *left;   /* smaller IOVAs */
	struct soft_area *right;  /* larger IOVAs */
};

/* Last byte of @a (cannot overflow: checked at map time). */
static inline uint64_t soft_area_last(const struct soft_area *a)
{
	return a->iova + a->length - 1;
}

/*
 * soft_tree_insert - link @a (iova/length set, not overlapping any area in
 * the tree: the caller checked with soft_tree_first_overlap()).
 * Returns the new root.
 */
struct soft_area *soft_tree_insert(struct soft_area *root, struct soft_area *a);

/*
 * soft_tree_remove - unlink the area starting exactly at @iova (it must be
 * in the tree).  Returns the new root; the area itself is not freed.
 */
struct soft_area *soft_tree_remove(struct soft_area *root, uint64_t iova);

/*
 * soft_tree_first_overlap - the lowest area that has a byte in
 * [@start, @last], or NULL.
 */
struct soft_area *soft_tree_first_overlap(struct soft_area *root,
					  uint64_t start, uint64_t last);

/*
 * soft_tree_pop_any - unlink any one area (used by destroy); returns the
 * new root and sets *@out (NULL when the tree is empty).
 */
struct soft_area *soft_tree_pop_any(struct soft_area *root,
				    struct soft_area **out);

#endif /* DMASVC_SOFT_TREE_PRIV_H */
