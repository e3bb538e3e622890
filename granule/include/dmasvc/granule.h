/* SPDX-License-Identifier: MIT */
/*
 * granule.h - regions and their per-granule state.
 *
 * A region is a window of one memory (an fd of guest RAM that the service
 * has mapped MAP_SHARED once) placed at an IOVA, cut into granules of one
 * power-of-two size >= 4 KiB.  Each granule is either mapped (one backend
 * area of exactly that granule) or not.  The region keeps one bit per
 * granule, the truth the service believes about the backend, in a lazily
 * allocated two-level bitmap: registering costs a pointer per 32768
 * granules, and a leaf of 32768 bits exists only while one of its granules
 * is mapped.  Regions never merge: nothing done for one region touches
 * another region's range.
 *
 * Vocabulary: a granule index counts granules from the region's start;
 * first/count describe a granule range (count >= 1); byte ranges are
 * offset/length from the region's start; end is exclusive, last inclusive.
 * Every byte -> granule conversion goes through gran_region_range().
 *
 * Threading: a region is used by one thread at a time (the daemon's event
 * loop); the executor's job runner never touches regions, only jobs.
 */
#ifndef DMASVC_GRANULE_H
#define DMASVC_GRANULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmasvc/backend.h"
#include "dmasvc/budget.h"

#define GRAN_MIN_GRANULE 4096ull
/* Regions of more granules are refused (bounds the bitmap's top level). */
#define GRAN_MAX_GRANULES (1ull << 40)

struct gran_region;

/* What a client asks for; validated by gran_region_register(). */
struct gran_region_desc {
	uint64_t mem_offset; /* byte offset of the region inside its memory */
	uint64_t size;       /* bytes, a multiple of granule, > 0 */
	uint64_t iova;       /* granule-aligned */
	uint64_t granule;    /* power of two >= GRAN_MIN_GRANULE */
	uint64_t mem_size;   /* bytes of the whole memory (bounds check) */
	void *mem_vaddr;     /* service's mapping of the memory at offset 0 */
	int mem_fd;          /* the memory's fd for MAP_FILE backends, or -1 */
	unsigned int prot;   /* enum be_prot bits for every map */
	unsigned int flags;  /* GRAN_DESC_*; other bits -EINVAL */
};

/*
 * GRAN_DESC_NO_MEMORY: a region re-created from a kept session
 * (docs/restart.md) before a memory is bound to it: mem_vaddr may be NULL
 * and mem_fd -1.  Its state comes from gran_region_learn(); its owner must
 * not plan a populate on it before gran_region_set_memory().  Set only by
 * the service, never from a client's request.
 */
#define GRAN_DESC_NO_MEMORY (1u << 0)

/*
 * gran_region_register - check @d and create a region, reserving its worst
 * case (size / granule areas) in @budget (NULL: no budget).
 * Returns 0 and sets *@out; -EINVAL for a bad granule, misalignment, zero
 * size, NULL mem_vaddr or unknown flags; -ERANGE when the region does not fit
 * its memory, its IOVA range overflows or it has more than GRAN_MAX_GRANULES
 * granules; -ENOSPC when the budget refuses it; -ENOMEM.  On error, if @msg
 * is not NULL, a one-line explanation naming the numbers is written into it
 * (@msglen bytes, NUL terminated).  Allocates O(granules / 32768) pointers.
 */
int gran_region_register(const struct gran_region_desc *d,
			 struct gran_budget *budget, struct gran_region **out,
			 char *msg, size_t msglen);

/*
 * gran_region_unregister - free @r and release its budget reservation.
 * The region should hold no mapped granule (call gran_region_unmap_all()
 * first); state still set is dropped.  Never fails; NULL is a no-op.
 */
void gran_region_unregister(struct gran_region *r);

/*
 * gran_region_range - the one validator from bytes to granules: the byte
 * range [@offset, @offset + @length) of @r as *@first and *@count.
 * Returns 0; -EINVAL when @length is 0 or offset/length is not
 * granule-aligned; -ERANGE when the range ends beyond the region (checked
 * without overflow).  Outputs are untouched on error.
 */
int gran_region_range(const struct gran_region *r, uint64_t offset,
		      uint64_t length, uint64_t *first, uint64_t *count);

/* Immutable geometry of @r. */
uint64_t gran_region_iova(const struct gran_region *r);
uint64_t gran_region_size(const struct gran_region *r);
uint64_t gran_region_granule(const struct gran_region *r);
uint64_t gran_region_nr_granules(const struct gran_region *r);
const struct gran_region_desc *gran_region_desc(const struct gran_region *r);

/*
 * gran_region_set_memory - bind @r to another mapping of its memory (a
 * restarted service's region claimed by the resumed client: the granules
 * the kernel holds stay mapped, later maps read the new mapping).  The
 * region [mem_offset, mem_offset + size) must fit @mem_size.  Returns 0 or
 * -ERANGE (nothing changed); -EINVAL for a NULL @mem_vaddr.
 */
int gran_region_set_memory(struct gran_region *r, void *mem_vaddr, int mem_fd,
			   uint64_t mem_size);

/* Counters: mapped granules, and the same in bytes. */
uint64_t gran_region_populated(const struct gran_region *r);
uint64_t gran_region_mapped_bytes(const struct gran_region *r);


/*
 * gran_region_run_fn - called with one maximal run of mapped granules;
 * a non-zero return stops the walk and is returned by the iterator.
 */
typedef int (*gran_region_run_fn)(void *arg, struct gran_region *r,
				  uint64_t first, uint64_t count);

/*
 * gran_region_for_each_run - call @fn for each maximal run of mapped
 * granules inside [@first, @first + @count), in increasing order (runs are
 * clipped to the range).  Cost: O(mapped words + allocated leaves) of the
 * range.  Returns 0 or fn's non-zero value.
 */
int gran_region_for_each_run(struct gran_region *r, uint64_t first,
			     uint64_t count, gran_region_run_fn fn, void *arg);

/*
 * gran_region_unmap_all - unmap every mapped granule of @r from @space, one
 * unmap call per maximal run, and mark the whole region unmapped.  Used on
 * disconnect and before unregistering; never fails: a run the backend
 * refuses is retried granule by granule.  Returns the number of granules the
 * backend may still hold (0 unless the backend is broken); the caller logs
 * a non-zero value as a bug.
 */
uint64_t gran_region_unmap_all(struct gran_region *r, const struct be_ops *ops,
			       struct be_space *space);

/*
 * gran_region_learn - set @r's granule state from what the backend holds:
 * every granule of @r that be_ops.audit() of @space reports mapped (probed
 * at @r's granule) is marked mapped, every other one unmapped; no map, no
 * unmap.  For a region whose areas a previous owner made (adoption after a
 * restart).  Returns 0; -EOPNOTSUPP without audit; -ENOMEM; or the audit's
 * -errno, with @r's state then all unmapped (nothing is claimed that the
 * audit did not see).
 */
int gran_region_learn(struct gran_region *r, const struct be_ops *ops,
		      struct be_space *space);

#endif /* DMASVC_GRANULE_H */
