/* SPDX-License-Identifier: MIT */
/*
 * test_diff.c - randomized differential test of planner + executor + soft
 * model against a trivial reference (one bool per granule).
 *
 * Six regions in one space (granules 4 KiB .. 1 GiB, some IOVA-adjacent,
 * one of 64 GiB), bursts of 1..64 random populate/discard events, injected
 * map and unmap failures, two job runners (serial and a 3-thread pool), and
 * the default or tiny (1..8 job) windows.
 * After every burst, for every granule an event touched:
 *   - the model holds exactly one area of exactly that granule iff the
 *     reference says populated, and the region's bit agrees;
 *   - translate() of a populated granule gives the memfd's bytes;
 * and from the operation log of the burst:
 *   - every map is one granule inside a populate event of the burst;
 *   - every unmap lies inside one region and only touches granules that a
 *     discard of the burst covers or that a failed populate had mapped;
 *   - no map ever fails except by injection (no EEXIST, ENOSPC, EINVAL).
 * A failed event must leave no trace (reference unchanged), except when an
 * unmap failure was injected into the same burst: then the failed event's
 * range follows the region state, which is itself checked against the model.
 * Every 256 bursts (and at the end) a full audit compares all granules, all
 * model areas, pinned bytes and the process's VmPin (VmLck on the mlock path).
 *
 * The same with areas over runs (dmasvc --areas run): the model opened with
 * cut_areas and each burst's plan with a random run cap (none, 2..64
 * granules, or 2 MiB); then a populated granule lies inside one area
 * rather than being one, a map is a granule-aligned run of at most the
 * cap inside the populates of the burst (a third of the events go on
 * where the one before ended, so runs span events), every area the audit lists covers
 * populated granules only, and the kernel's pin count still equals the
 * populated bytes.
 *
 * Environment: GRAN_DIFF_SEED (default: time-based; printed on failure),
 * GRAN_DIFF_EVENTS (default 1000000; the runs test does a quarter).  Real pinned memory is capped
 * (see specs[]); discarded granules of the big regions are punched out of
 * the memfd, as a VMM does.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/plan.h"
#include "diff_gen.h"
#include "gtest_util.h"
#include "gran_priv.h" /* test access: gran_region_test */
#include "plan_priv.h" /* test access: window, stages */

#define K4 4096ull
#define K64 65536ull
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define NREG 6
#define MAX_BURST 64
#define AUDIT_EVERY 256

/* ---- random numbers: the shared stream (diff_gen.h) ---- */
#define rng_next dg_next
#define rng_below dg_below

/* ---- the world ---- */
struct reg_spec {
	uint64_t mem_offset, size, iova, granule;
	uint64_t pin_cap;    /* populates beyond this become discards; 0 = none */
	bool punch;          /* give discarded granules' memory back */
	unsigned int weight; /* per 100000 events */
};

/*
 * Real memory: R0-R3 are small (at most 184 MiB if all populated) and keep
 * their pages; R4 (1 GiB granules) and R5 (64 GiB at 2 MiB) are capped and
 * punched after discards, so their real footprint stays under 1.2 GiB.
 */
static const struct reg_spec specs[NREG] = {
	{ 0, 16 * MiB, 0x100000000ull, K4, 0, false, 40000 },
	{ 16 * MiB, 8 * MiB, 0x101000000ull, K4, 0, false, 25000 }, /* adjacent to R0 */
	{ 32 * MiB, 32 * MiB, 0x200000000ull, K64, 0, false, 27000 },
	{ 64 * MiB, 128 * MiB, 0x202000000ull, 2 * MiB, 0, false, 5000 }, /* adjacent to R2 */
	{ 1 * GiB, 4 * GiB, 0x4000000000ull, GiB, GiB, true, 2 },
	{ 6 * GiB, 64 * GiB, 0x8000000000ull, 2 * MiB, 128 * MiB, true, 2998 },
};
#define MEM_SIZE (70 * GiB)

struct world {
	uint64_t seed, rng;
	struct gt_mem mem;
	struct gt_soft sm;
	struct gran_region *r[NREG];
	bool *ref[NREG];     /* the reference: one bool per granule */
	struct { int ri; uint64_t g; } *punch; /* large granules to give back */
	size_t npunch, punch_cap;
	unsigned char *mark[NREG]; /* scratch per burst: MARK_* bits */
	uint64_t ref_pop[NREG];  /* populated granules per the reference */
	unsigned int weight[NREG]; /* specs[].weight, for dg_weighted() */
	long long pin_base;    /* VmPin (VmLck with mlock) before anything was mapped */
	bool runs;             /* areas over runs: the model cuts, plans have a run cap */
	uint64_t run_max;      /* the current burst's run cap in bytes (0: per granule) */
};

/* ---- operation log (test-only state: the wrapper ops have no context) ---- */
enum { LOG_MAP, LOG_UNMAP };
struct logrec {
	int op, res;
	uint64_t iova, length, unmapped;
};

struct oplog {
	pthread_mutex_t lock;
	struct logrec *rec;
	size_t n, cap;
};

static struct oplog oplog = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0 };

static void log_add(struct logrec r)
{
	pthread_mutex_lock(&oplog.lock);
	if (oplog.n == oplog.cap) {
		oplog.cap = oplog.cap ? 2 * oplog.cap : 4096;
		oplog.rec = realloc(oplog.rec, oplog.cap * sizeof(*oplog.rec));
	}
	if (oplog.rec)
		oplog.rec[oplog.n++] = r;
	pthread_mutex_unlock(&oplog.lock);
}

static int log_map(struct be_space *s, uint64_t iova, uint64_t length,
		   const struct be_map_src *src, unsigned int prot)
{
	int ret = be_soft_ops.map(s, iova, length, src, prot);

	log_add((struct logrec){ LOG_MAP, ret, iova, length, 0 });
	return ret;
}

static int log_unmap(struct be_space *s, uint64_t iova, uint64_t length,
		     uint64_t *unmapped)
{
	uint64_t un = 0;
	int ret = be_soft_ops.unmap(s, iova, length, &un);

	if (unmapped)
		*unmapped = un;
	log_add((struct logrec){ LOG_UNMAP, ret, iova, length, un });
	return ret;
}

static struct be_ops logged_ops;

/* ---- helpers ---- */
static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

/* Region index holding @iova, or -1. */
static int region_of(uint64_t iova)
{
	int i;

	for (i = 0; i < NREG; i++)
		if (iova >= specs[i].iova && iova - specs[i].iova < specs[i].size)
			return i;
	return -1;
}

static void world_init(struct world *w, bool runs)
{
	struct be_ops *o = &logged_ops;
	char msg[256];
	int i;

	*o = be_soft_ops;
	o->map = log_map;
	o->unmap = log_unmap;
	w->pin_base = gt_pinned_bytes();
	cr_assert(w->pin_base >= 0);
	gt_mem_create(&w->mem, MEM_SIZE);
	w->runs = runs;
	gt_soft_open_cut(&w->sm, NULL, 0, runs);
	for (i = 0; i < NREG; i++) {
		const struct reg_spec *s = &specs[i];
		struct gran_region_desc d = {
			.mem_offset = s->mem_offset, .size = s->size, .iova = s->iova,
			.granule = s->granule, .mem_size = MEM_SIZE,
			.mem_vaddr = w->mem.va, .mem_fd = w->mem.fd,
			.prot = BE_PROT_READ | BE_PROT_WRITE,
		};
		uint64_t n = s->size / s->granule;

		cr_assert_eq(gran_region_register(&d, NULL, &w->r[i], msg, sizeof(msg)),
			     0, "%s", msg);
		w->weight[i] = s->weight;
		w->ref[i] = calloc(n, 1);
		w->mark[i] = calloc(n, 1);
		cr_assert(w->ref[i] && w->mark[i]);
	}
}

static void world_fini(struct world *w)
{
	int i;

	for (i = 0; i < NREG; i++) {
		cr_assert_eq(gran_region_unmap_all(w->r[i], &be_soft_ops, w->sm.space), 0);
		gran_region_unregister(w->r[i]);
		free(w->ref[i]);
		free(w->mark[i]);
	}
	free(w->punch);
	cr_assert_eq(gt_areas(w->sm.space), 0, "seed=%llu: areas left",
		     (unsigned long long)w->seed);
	gt_soft_close(&w->sm);
	gt_mem_destroy(&w->mem);
	free(oplog.rec);
	oplog.rec = NULL;
	oplog.n = oplog.cap = 0;
}

/* Bytes a populate of [first, first+count) of region @ri would newly pin. */
static uint64_t new_pin_bytes(const struct world *w, int ri, uint64_t first,
			      uint64_t count)
{
	uint64_t g, n = 0;

	for (g = first; g < first + count; g++)
		n += !w->ref[ri][g];
	return n * specs[ri].granule;
}

/* Generate one burst into @ev; returns its length. */
static size_t gen_burst(struct world *w, struct gran_event *ev, uint64_t *ud)
{
	uint64_t pend[NREG] = { 0 };
	size_t n = 1 + rng_below(&w->rng, MAX_BURST), i;
	int ri;

	for (i = 0; i < n; i++) {
		uint64_t first, count;

		ri = dg_weighted(&w->rng, w->weight, NREG);
		/* Mostly small ranges; 1 in 5000 covers the whole region. */
		dg_range(&w->rng, specs[ri].size / specs[ri].granule, &first, &count);
		ev[i] = (struct gran_event){ w->r[ri], first, count,
					     rng_below(&w->rng, 2) ? GRAN_OP_POPULATE
								  : GRAN_OP_DISCARD,
					     (*ud)++ };
		/* Areas over runs: a third of the events go on where the one
		 * before ended (a conversion notified page by page), so that
		 * runs are shared by events. */
		if (w->runs && i && rng_below(&w->rng, 3) == 0) {
			const struct gran_event *pv = &ev[i - 1];
			uint64_t gn, end = pv->first + pv->count;
			int pri;

			for (pri = 0; pv->region != w->r[pri]; pri++)
				;
			gn = specs[pri].size / specs[pri].granule;
			if (end < gn) {
				ri = pri;
				ev[i].region = pv->region;
				ev[i].first = end;
				ev[i].count = 1 + rng_below(&w->rng, 4);
				if (ev[i].count > gn - end)
					ev[i].count = gn - end;
				ev[i].op = pv->op;
			}
		}
		/* Cap real pinned memory per large-granule region (an upper
		 * bound: pending populates of the burst are all counted). */
		if (ev[i].op == GRAN_OP_POPULATE && specs[ri].pin_cap) {
			uint64_t add = new_pin_bytes(w, ri, ev[i].first, ev[i].count);

			if (w->ref_pop[ri] * specs[ri].granule + pend[ri] + add >
			    specs[ri].pin_cap)
				ev[i].op = GRAN_OP_DISCARD;
			else
				pend[ri] += add;
		}
	}
	return n;
}

/* Arm random injected failures for the next burst. */
static void arm_faults(struct world *w, bool *unmap_armed)
{
	struct soft_iommu_faults f = { 0 };
	static const int errs[] = { ENOMEM, EFAULT, EIO };
	uint64_t k = rng_below(&w->rng, 100);

	*unmap_armed = false;
	if (k < 20) {
		f.map_fail_nth = 1 + rng_below(&w->rng, 40);
		f.map_fail_errno = errs[rng_below(&w->rng, 3)];
	}
	if (k >= 15 && k < 25) {
		int ri = (int)rng_below(&w->rng, NREG);
		uint64_t g = rng_below(&w->rng, specs[ri].size / specs[ri].granule);

		f.map_fail_start = specs[ri].iova + g * specs[ri].granule;
		f.map_fail_last = f.map_fail_start + specs[ri].granule - 1;
		f.map_range_errno = EFAULT;
	}
	if (k >= 22 && k < 27) {
		f.unmap_fail_nth = 1 + rng_below(&w->rng, 8);
		f.unmap_fail_errno = errs[rng_below(&w->rng, 3)];
		*unmap_armed = true;
	}
	soft_iommu_set_faults(w->sm.ctx, &f);
}

/* The model, the region bit and the reference agree on granule @g of @ri. */
static void check_granule(struct world *w, int ri, uint64_t g)
{
	const struct reg_spec *s = &specs[ri];
	uint64_t iova = s->iova + g * s->granule, a = 0, l = 0, off;
	int ret = soft_iommu_lookup(w->sm.space, iova, &a, &l);
	unsigned char *want;
	void *host;

	cr_assert_eq(gran_region_test(w->r[ri], g), w->ref[ri][g],
		     "seed=%llu: region %d granule %llu: state %d, reference %d",
		     (unsigned long long)w->seed, ri, (unsigned long long)g,
		     gran_region_test(w->r[ri], g), w->ref[ri][g]);
	if (!w->ref[ri][g]) {
		cr_assert_eq(ret, -ENOENT, "seed=%llu: region %d granule %llu mapped "
			     "but discarded", (unsigned long long)w->seed, ri,
			     (unsigned long long)g);
		return;
	}
	if (w->runs)
		cr_assert(ret == 0 && a <= iova && a >= s->iova && (a - s->iova) % s->granule == 0 &&
			  l % s->granule == 0 && a - s->iova + l <= s->size && a + l > iova,
			  "seed=%llu: region %d granule %llu: area 0x%llx+0x%llx (%d)",
			  (unsigned long long)w->seed, ri, (unsigned long long)g,
			  (unsigned long long)a, (unsigned long long)l, ret);
	else
	cr_assert(ret == 0 && a == iova && l == s->granule,
		  "seed=%llu: region %d granule %llu: area 0x%llx+0x%llx (%d)",
		  (unsigned long long)w->seed, ri, (unsigned long long)g,
		  (unsigned long long)a, (unsigned long long)l, ret);
	/* What a device reads there is the memfd's byte. */
	off = (rng_next(&w->rng) % (s->granule / 8)) * 8;
	want = w->mem.va + s->mem_offset + g * s->granule + off;
	*want = (unsigned char)(g * 131 + 7);
	cr_assert_eq(soft_iommu_translate(w->sm.space, iova + off, 8, &host), 0);
	cr_assert(host == (void *)want && memcmp(host, want, 8) == 0,
		  "seed=%llu: translate region %d granule %llu",
		  (unsigned long long)w->seed, ri, (unsigned long long)g);
}

enum {
	MARK_POPULATE = 1,  /* a populate of the burst covers the granule */
	MARK_DISCARD = 2,   /* a discard of the burst covers it */
	MARK_FAILED = 4,    /* a failed populate covers it */
	MARK_MAPPED = 8,    /* the log shows a successful map of it */
};

/* Set the MARK_* bits of the burst's events (or clear them: @on false). */
static void mark_events(struct world *w, const struct gran_event *ev, size_t n,
			const struct gran_completion *c, bool on)
{
	size_t i;
	uint64_t g;
	unsigned char m;
	int ri;

	for (i = 0; i < n; i++) {
		for (ri = 0; ev[i].region != w->r[ri]; ri++)
			;
		m = ev[i].op == GRAN_OP_POPULATE ?
			    (unsigned char)(MARK_POPULATE | (c[i].res ? MARK_FAILED : 0)) :
			    MARK_DISCARD;
		for (g = ev[i].first; g < ev[i].first + ev[i].count; g++)
			w->mark[ri][g] = on ? w->mark[ri][g] | m : 0;
	}
}

/* Region and granule of a logged op, checking it stays inside the region. */
static int log_region(struct world *w, const struct logrec *r, uint64_t *g)
{
	int ri = region_of(r->iova);

	cr_assert(ri >= 0, "seed=%llu: op outside every region at 0x%llx",
		  (unsigned long long)w->seed, (unsigned long long)r->iova);
	cr_assert(r->length <= specs[ri].size - (r->iova - specs[ri].iova),
		  "seed=%llu: op at 0x%llx+0x%llx crosses region %d's end",
		  (unsigned long long)w->seed, (unsigned long long)r->iova,
		  (unsigned long long)r->length, ri);
	cr_assert((r->iova - specs[ri].iova) % specs[ri].granule == 0,
		  "seed=%llu: op not granule-aligned", (unsigned long long)w->seed);
	*g = (r->iova - specs[ri].iova) / specs[ri].granule;
	return ri;
}

/*
 * The operation log of a burst only touched what the burst may touch: maps
 * are single granules of its populates; an unmapped granule is one a
 * discard covers, or one a failed populate covers and mapped in this burst.
 */
static void check_log(struct world *w, const struct gran_event *ev, size_t n,
		      const struct gran_completion *c)
{
	size_t i;
	uint64_t iova, g, end;
	int ri;

	mark_events(w, ev, n, c, true);
	for (i = 0; i < oplog.n; i++) {
		const struct logrec *r = &oplog.rec[i];

		if (r->op != LOG_MAP)
			continue;
		ri = log_region(w, r, &g);
		cr_assert(r->length == specs[ri].granule ||
			  (w->runs && r->length % specs[ri].granule == 0 &&
			   r->length <= w->run_max),
			  "seed=%llu: a map of 0x%llx is not one granule%s",
			  (unsigned long long)w->seed, (unsigned long long)r->length,
			  w->runs ? " nor a run of at most the cap" : "");
		for (uint64_t k = g; k < g + r->length / specs[ri].granule; k++) {
			cr_assert(w->mark[ri][k] & MARK_POPULATE, "seed=%llu: mapped granule "
				  "%llu of region %d that no populate covers",
				  (unsigned long long)w->seed, (unsigned long long)k, ri);
			if (!r->res)
				w->mark[ri][k] |= MARK_MAPPED;
		}
		cr_assert(r->res == 0 || r->res == -ENOMEM || r->res == -EFAULT ||
			  r->res == -EIO, "seed=%llu: map failed with %d",
			  (unsigned long long)w->seed, r->res);
	}
	for (i = 0; i < oplog.n; i++) {
		const struct logrec *r = &oplog.rec[i];

		if (r->op != LOG_UNMAP)
			continue;
		ri = log_region(w, r, &g);
		end = r->res ? r->iova + r->unmapped : r->iova + r->length;
		for (iova = r->iova; iova < end; iova += specs[ri].granule) {
			unsigned char m;

			g = (iova - specs[ri].iova) / specs[ri].granule;
			m = w->mark[ri][g];
			cr_assert((m & MARK_DISCARD) ||
				  ((m & MARK_FAILED) && (m & MARK_MAPPED)),
				  "seed=%llu: unmapped granule %llu of region %d that "
				  "the burst neither discarded nor mapped in a failed "
				  "event", (unsigned long long)w->seed,
				  (unsigned long long)g, ri);
		}
	}
	mark_events(w, ev, n, c, false);
	oplog.n = 0;
}

static void punch_add(struct world *w, int ri, uint64_t g)
{
	if (w->npunch == w->punch_cap) {
		w->punch_cap = w->punch_cap ? 2 * w->punch_cap : 256;
		w->punch = realloc(w->punch, w->punch_cap * sizeof(*w->punch));
		cr_assert(w->punch);
	}
	w->punch[w->npunch].ri = ri;
	w->punch[w->npunch++].g = g;
}

/* Apply the completions to the reference, in event order. */
static void apply_ref(struct world *w, const struct gran_event *ev, size_t n,
		      const struct gran_completion *c, bool unmap_armed)
{
	size_t i;
	uint64_t g;
	int ri;

	for (i = 0; i < n; i++) {
		for (ri = 0; ev[i].region != w->r[ri]; ri++)
			;
		cr_assert_eq(c[i].user_data, ev[i].user_data);
		/* (That a failed discard maps nothing is the log check's job:
		 * only populates may map.) */
		if (c[i].res && !unmap_armed) {
			if (specs[ri].punch)
				for (g = ev[i].first; g < ev[i].first + ev[i].count; g++)
					if (!w->ref[ri][g])
						punch_add(w, ri, g);
			/* A failed event leaves no trace; only populates can
			 * fail without unmap faults. */
			cr_assert_eq(ev[i].op, GRAN_OP_POPULATE,
				     "seed=%llu: discard failed with %d",
				     (unsigned long long)w->seed, c[i].res);
			continue;
		}
		for (g = ev[i].first; g < ev[i].first + ev[i].count; g++) {
			bool v = c[i].res ? gran_region_test(w->r[ri], g)
					  : ev[i].op == GRAN_OP_POPULATE;

			/* Large granules that are no longer (or were never, after
			 * a failed populate) mapped get their memory back. */
			if (specs[ri].punch && !v &&
			    (w->ref[ri][g] || ev[i].op == GRAN_OP_POPULATE))
				punch_add(w, ri, g);
			w->ref_pop[ri] += (uint64_t)v - (uint64_t)w->ref[ri][g];
			w->ref[ri][g] = v;
		}
	}
}

/* Give discarded large granules' memory back (the VMM punches holes). */
static void punch_discarded(struct world *w)
{
	size_t i;
	int ri;
	uint64_t g;

	for (i = 0; i < w->npunch; i++) {
		ri = w->punch[i].ri;
		g = w->punch[i].g;
		if (w->ref[ri][g])
			continue; /* mapped again later in the burst */
		cr_assert_eq(fallocate(w->mem.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				       (off_t)(specs[ri].mem_offset + g * specs[ri].granule),
				       (off_t)specs[ri].granule), 0);
	}
	w->npunch = 0;
}

struct audit_ctx {
	struct world *w;
	uint64_t areas;
	uint64_t granules; /* that the areas cover */
};

static int audit_area(void *arg, uint64_t iova, uint64_t length)
{
	struct audit_ctx *a = arg;
	int ri = region_of(iova);
	uint64_t g;

	cr_assert(ri >= 0 && (length == specs[ri].granule ||
			      (a->w->runs && length % specs[ri].granule == 0 &&
			       length <= specs[ri].size - (iova - specs[ri].iova))) &&
		  (iova - specs[ri].iova) % specs[ri].granule == 0,
		  "seed=%llu: stray area 0x%llx+0x%llx", (unsigned long long)a->w->seed,
		  (unsigned long long)iova, (unsigned long long)length);
	for (g = (iova - specs[ri].iova) / specs[ri].granule;
	     g < (iova - specs[ri].iova + length) / specs[ri].granule; g++) {
		cr_assert(a->w->ref[ri][g], "seed=%llu: area over discarded granule %llu, "
			  "region %d", (unsigned long long)a->w->seed, (unsigned long long)g, ri);
		a->granules++;
	}
	a->areas++;
	return 0;
}

static void full_audit(struct world *w)
{
	struct audit_ctx a = { w, 0, 0 };
	uint64_t g, pop = 0, bytes = 0;
	int ri;

	for (ri = 0; ri < NREG; ri++) {
		for (g = 0; g < specs[ri].size / specs[ri].granule; g++)
			cr_assert_eq(gran_region_test(w->r[ri], g), w->ref[ri][g],
				     "seed=%llu: audit region %d granule %llu",
				     (unsigned long long)w->seed, ri, (unsigned long long)g);
		cr_assert_eq(gran_region_populated(w->r[ri]), w->ref_pop[ri]);
		cr_assert_eq(gran_region_mapped_bytes(w->r[ri]),
			     w->ref_pop[ri] * specs[ri].granule);
		pop += w->ref_pop[ri];
		bytes += w->ref_pop[ri] * specs[ri].granule;
	}
	cr_assert_eq(be_soft_ops.audit(w->sm.space, 0, 1ull << 48, K4, audit_area, &a), 0);
	cr_assert_eq(a.granules, pop, "seed=%llu", (unsigned long long)w->seed);
	cr_assert_eq(gt_areas(w->sm.space), a.areas);
	if (!w->runs)
		cr_assert_eq(a.areas, pop, "seed=%llu: one area per granule",
			     (unsigned long long)w->seed);
	cr_assert_eq(gt_pinned(w->sm.space), bytes);
	/* The pins are real: VmPin moved by exactly the mapped bytes. */
	cr_assert_eq(gt_pinned_bytes() - w->pin_base, (long long)bytes,
		     "seed=%llu: pinned %lld, mapped %llu", (unsigned long long)w->seed,
		     gt_pinned_bytes() - w->pin_base, (unsigned long long)bytes);
}

/* Random bursts until @target events, checked as the file comment says. */
static void random_events(bool runs, uint64_t target)
{
	static struct world w; /* large: keep it off the stack */
	struct gran_job_runner pool = { gt_pool_run, NULL };
	struct gran_event ev[MAX_BURST];
	struct gran_completion comp[MAX_BURST];
	const struct gran_completion *c;
	uint64_t done = 0, ud = 1;
	uint64_t bursts = 0, failed = 0, stages = 0, maps = 0, unmaps = 0;
	struct gran_exec_stats st;
	struct gran_plan *p;
	struct timespec t0, t1;
	bool unmap_armed;
	size_t n, nc, i;
	uint64_t g;
	int ri;

	memset(&w, 0, sizeof(w)); /* static: a second call starts clean */
	w.seed = env_u64("GRAN_DIFF_SEED", (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	w.rng = w.seed;
	cr_log_info("GRAN_DIFF_SEED=%llu", (unsigned long long)w.seed);
	world_init(&w, runs);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (done < target) {
		n = gen_burst(&w, ev, &ud);
		arm_faults(&w, &unmap_armed);
		cr_assert_eq(gran_plan_build(ev, n, &p), 0);
		/* Every fourth burst in tiny windows: undo across windows. */
		gran_plan_set_window(p, bursts % 4 == 1 ? 1 + rng_below(&w.rng, 8) : 0);
		if (runs) {
			/* No cap, 2..64 granules of 4 KiB, or the daemon's 2 MiB. */
			uint64_t k = rng_below(&w.rng, 4);

			w.run_max = k == 0 ? 0 : k == 1 ? (2 + rng_below(&w.rng, 63)) * K4
					 : 2ull << 20;
			gran_plan_set_run_max(p, w.run_max);
		}
		cr_assert_eq(gran_plan_execute(p, &logged_ops, w.sm.space,
					       bursts % 8 == 7 ? &pool : NULL), 0,
			     "seed=%llu", (unsigned long long)w.seed);
		c = gran_plan_completions(p, &nc);
		cr_assert_eq(nc, n);
		memcpy(comp, c, n * sizeof(*c));
		gran_plan_stats(p, &st);
		gran_plan_free(p);
		soft_iommu_set_faults(w.sm.ctx, NULL);
		stages += st.stages;
		maps += st.map_calls;
		unmaps += st.unmap_calls + st.undo_calls;

		check_log(&w, ev, n, comp);
		apply_ref(&w, ev, n, comp, unmap_armed);
		for (i = 0; i < n; i++) {
			failed += comp[i].res != 0;
			for (ri = 0; ev[i].region != w.r[ri]; ri++)
				;
			for (g = ev[i].first; g < ev[i].first + ev[i].count; g++)
				check_granule(&w, ri, g);
		}
		punch_discarded(&w);
		done += n;
		if (++bursts % AUDIT_EVERY == 0)
			full_audit(&w);
	}
	full_audit(&w);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_log_info("%llu events in %llu bursts (%llu stages), %llu failed, "
		    "%llu maps, %llu unmaps, %.1f s",
		    (unsigned long long)done, (unsigned long long)bursts,
		    (unsigned long long)stages, (unsigned long long)failed,
		    (unsigned long long)maps, (unsigned long long)unmaps,
		    (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	cr_assert(failed > 0, "seed=%llu: injection never failed an event",
		  (unsigned long long)w.seed);
	world_fini(&w);
}

Test(diff, million_random_events)
{
	random_events(false, env_u64("GRAN_DIFF_EVENTS", 1000000));
}

Test(diff, random_events_areas_over_runs)
{
	random_events(true, env_u64("GRAN_DIFF_EVENTS", 1000000) / 4);
}
