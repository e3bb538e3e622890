/* SPDX-License-Identifier: MIT */
/*
 * soft_tree.c - the software IOMMU model's ordered area store: an AVL tree
 * of non-overlapping areas keyed by IOVA, O(log n) per insert, remove and
 * overlap query.  Recursion depth is bounded by the AVL height (< 1.45 log2 n,
 * about 50 for 2^32 areas).  Caller holds the owning space's lock.
 */
#include <stddef.h>

#include "soft_tree_priv.h"

static int height(const struct soft_area *a)
{
	return a ? a->height : 0;
}

static void fix_height(struct soft_area *a)
{
	int hl = height(a->left), hr = height(a->right);

	a->height = (hl > hr ? hl : hr) + 1;
}

static struct soft_area *rotate_right(struct soft_area *a)
{
	struct soft_area *l = a->left;

	a->left = l->right;
	l->right = a;
	fix_height(a);
	fix_height(l);
	return l;
}

static struct soft_area *rotate_left(struct soft_area *a)
{
	struct soft_area *r = a->right;

	a->right = r->left;
	r->left = a;
	fix_height(a);
	fix_height(r);
	return r;
}

/* Restore the AVL balance of @a whose subtrees are balanced. */
static struct soft_area *rebalance(struct soft_area *a)
{
	int bal;

	fix_height(a);
	bal = height(a->left) - height(a->right);
	if (bal > 1) {
		if (height(a->left->left) < height(a->left->right))
			a->left = rotate_left(a->left);
		return rotate_right(a);
	}
	if (bal < -1) {
		if (height(a->right->right) < height(a->right->left))
			a->right = rotate_right(a->right);
		return rotate_left(a);
	}
	return a;
}

struct soft_area *soft_tree_insert(struct soft_area *root, struct soft_area *a)
{
	if (!root) {
		a->left = a->right = NULL;
		a->height = 1;
		return a;
	}
	if (a->iova < root->iova)
		root->left = soft_tree_insert(root->left, a);
	else
		root->right = soft_tree_insert(root->right, a);
	return rebalance(root);
}

/* Unlink the smallest area of @root into *@min; returns the new subtree. */
static struct soft_area *remove_min(struct soft_area *root,
				    struct soft_area **min)
{
	if (!root->left) {
		*min = root;
		return root->right;
	}
	root->left = remove_min(root->left, min);
	return rebalance(root);
}

struct soft_area *soft_tree_remove(struct soft_area *root, uint64_t iova)
{
	struct soft_area *min;

	if (!root)
		return NULL;
	if (iova < root->iova) {
		root->left = soft_tree_remove(root->left, iova);
	} else if (iova > root->iova) {
		root->right = soft_tree_remove(root->right, iova);
	} else {
		if (!root->right)
			return root->left;
		root->right = remove_min(root->right, &min);
		min->left = root->left;
		min->right = root->right;
		return rebalance(min);
	}
	return rebalance(root);
}

struct soft_area *soft_tree_first_overlap(struct soft_area *root,
					  uint64_t start, uint64_t last)
{
	struct soft_area *best = NULL;

	/* Areas are disjoint, so last grows with iova: find the lowest area
	 * whose last byte is >= start, then check it begins by @last. */
	while (root) {
		if (soft_area_last(root) >= start) {
			best = root;
			root = root->left;
		} else {
			root = root->right;
		}
	}
	return best && best->iova <= last ? best : NULL;
}

struct soft_area *soft_tree_pop_any(struct soft_area *root,
				    struct soft_area **out)
{
	if (!root) {
		*out = NULL;
		return NULL;
	}
	return remove_min(root, out);
}
