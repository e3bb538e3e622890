/* SPDX-License-Identifier: MIT */
/*
 * area_record_priv.h - do not include directly; private to the backends.
 *
 * An area record: the backend's own list of the areas it mapped
 * successfully, for kernels that cannot list them (VFIO type1 has no
 * query ioctl).  It is the *service's* record of what it asked for, not
 * the kernel's state.  Areas never overlap; the list is kept sorted by
 * IOVA in one array, so appending in increasing IOVA order (the usual
 * populate order) is O(1) and an out-of-order insert costs a memmove.
 *
 * Vocabulary: area = [iova, iova + length); end exclusive.
 * Locking: none inside; the owner serialises every call.
 */
#ifndef DMASVC_AREA_RECORD_PRIV_H
#define DMASVC_AREA_RECORD_PRIV_H

#include <stddef.h>
#include <stdint.h>

struct area_rec_entry {
	uint64_t iova;
	uint64_t length;
};

struct area_record {
	struct area_rec_entry *v; /* sorted by iova, no overlaps; owned */
	size_t n;                 /* entries in use */
	size_t cap;               /* entries allocated */
};

/* An empty record (no allocation yet). */
void area_rec_init(struct area_record *r);

/* Free everything; the record is empty and reusable afterwards. */
void area_rec_destroy(struct area_record *r);

/*
 * area_rec_insert - add [@iova, @iova + @length).  Needs length > 0 and no
 * overflow.  Returns 0, -EEXIST if it overlaps a recorded area, -ENOMEM.
 */
int area_rec_insert(struct area_record *r, uint64_t iova, uint64_t length);

/*
 * area_rec_remove - drop every area lying wholly inside [@iova, @end).
 * Returns the number of bytes dropped.
 */
uint64_t area_rec_remove(struct area_record *r, uint64_t iova, uint64_t end);

/*
 * area_rec_cuts - whether some recorded area crosses @iova or @end, so an
 * unmap of [@iova, @end) would have to split it.
 */
int area_rec_cuts(const struct area_record *r, uint64_t iova, uint64_t end);

/*
 * area_rec_walk - call @fn(arg, iova, length) for each area intersecting
 * [@iova, @end), clipped to it, in increasing order.  Stops at and returns
 * fn's first non-zero value; 0 otherwise.
 */
int area_rec_walk(const struct area_record *r, uint64_t iova, uint64_t end,
		  int (*fn)(void *arg, uint64_t iova, uint64_t length),
		  void *arg);

#endif /* DMASVC_AREA_RECORD_PRIV_H */
