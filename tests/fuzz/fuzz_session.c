/* SPDX-License-Identifier: MIT */
/*
 * fuzz_session.c - the per-input session of the fuzz targets (see
 * fuzz_session.h).  The service object is the one process-wide state of a
 * fuzzer (libFuzzer calls the target repeatedly in one process); it holds
 * no per-input state.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "executor_priv.h"
#include "exec_pool_priv.h"
#include "ring_service_priv.h"
#include "dmasvc/soft_iommu.h"
#include "fuzz_session.h"
#include "gran_priv.h" /* test access: gran_region_test */
#include "plan_priv.h" /* test access: window, stages */

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define MEM_SIZE (1 * MiB)

/* Region layout: disjoint slices of one small memory, varied granules. */
static const struct {
	uint64_t mem_offset, size, iova, granule;
} layout[FZ_NR_REGIONS] = {
	{ 0, 256 * KiB, 1ull << 30, 4 * KiB },          /* 64 granules */
	{ 256 * KiB, 256 * KiB, 2ull << 30, 16 * KiB }, /* 16 granules */
	{ 512 * KiB, 256 * KiB, 4ull << 30, 128 * KiB },/* 2 granules */
	{ 768 * KiB, 8 * KiB, (8ull << 30) - 8 * KiB, 8 * KiB }, /* 1 granule */
};

/* The service for the whole run: built once, never freed (process exit). */
struct fz_global {
	struct dsvc_options opt;
	struct dsvc d;
	struct executor_queue *bx; /* d.bx is set per input by the targets that want it */
	int memfd;
	bool ready;
};

static struct fz_global *fz_get(void)
{
	static struct fz_global g;
	struct be_config cfg = { .max_areas = 4096 };

	if (g.ready)
		return &g;
	/* Caps small enough that fuzz-session's request sequences reach them
	 * (16 memories of 1 MiB, 16 regions, rings of up to 4096 SQ entries);
	 * populated bytes stay at the default: fuzz-sqe's model has no cap. */
	g.opt.max_registered = 4 * MiB;
	g.opt.max_populated = OPT_DEFAULT_POPULATED_MIB << 20;
	g.opt.max_regions = 8;
	g.opt.max_inflight = 4096;
	g.opt.max_sessions = OPT_DEFAULT_SESSIONS;
	g.d.opt = &g.opt;
	g.d.log = NULL; /* dlog drops everything */
	g.d.ops = &be_soft_ops;
	g.d.start_ns = dsvc_now_ns();
	FZ_CHECK(g.d.ops->open(&cfg, &g.d.be) == 0, "soft model open");
	FZ_CHECK(pool_create(1, &g.d.pool) == 0, "pool");
	FZ_CHECK(executor_queue_create(&g.bx) == 0, "executor queue");
	g.memfd = memfd_create("fuzz-mem", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	FZ_CHECK(g.memfd >= 0, "memfd");
	FZ_CHECK(ftruncate(g.memfd, MEM_SIZE) == 0, "ftruncate");
	FZ_CHECK(fcntl(g.memfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0, "seal");
	/*
	 * The VMM's part of the residency rule, once for the run: every page
	 * of the memfd in memory (written through a mapping of the harness's
	 * own, not the service's, whose holes are guarded), so the service's
	 * pins find them and the inputs reach the planner and the backend.
	 */
	{
		void *vmm = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g.memfd, 0);

		FZ_CHECK(vmm != MAP_FAILED, "mmap");
		memset(vmm, 0, MEM_SIZE);
		munmap(vmm, MEM_SIZE);
	}
	g.ready = true;
	return &g;
}

struct dsvc *fz_service(void)
{
	return &fz_get()->d;
}

struct executor_queue *fz_bx_queue(void)
{
	return fz_get()->bx;
}

void fz_session_open(struct fz_session *f)
{
	struct fz_global *g = fz_get();
	struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	struct dmasvc_memory_add ma = { .size = MEM_SIZE };
	char err[256];
	uint32_t mem;
	int fd;

	memset(f, 0, sizeof(*f));
	FZ_CHECK(session_create(&g->d, -1, &cred, false, &f->s) == 0, "session_create");
	fd = fcntl(g->memfd, F_DUPFD_CLOEXEC, 3);
	FZ_CHECK(fd >= 0, "dup");
	FZ_CHECK(session_memory_add(&g->d, f->s, fd, &ma, &mem, err, sizeof(err)) == 0, "%s", err);
	for (unsigned int i = 0; i < FZ_NR_REGIONS; i++) {
		struct dmasvc_region_add ra = {
			.mem_id = mem, .mem_offset = layout[i].mem_offset, .size = layout[i].size,
			.iova = layout[i].iova, .granule = layout[i].granule,
		};

		FZ_CHECK(session_region_add(&g->d, f->s, &ra, &f->region_ids[i], err, sizeof(err)) == 0,
			 "%s", err);
	}
}

void fz_check_consistent(const struct fz_session *f)
{
	struct soft_iommu_stats st;
	uint64_t areas = 0, bytes = 0;

	for (unsigned int i = 0; i < FZ_NR_REGIONS; i++) {
		const struct dsvc_region *r = session_region(f->s, f->region_ids[i]);
		uint64_t g = gran_region_granule(r->gr), iova = gran_region_iova(r->gr);

		for (uint64_t k = 0; k < gran_region_nr_granules(r->gr); k++) {
			uint64_t ai = 0, al = 0;
			bool held = soft_iommu_lookup(f->s->space, iova + k * g, &ai, &al) == 0;

			FZ_CHECK(gran_region_test(r->gr, k) == held,
				 "region %u granule %llu: state says %d, the model holds %d", i,
				 (unsigned long long)k, gran_region_test(r->gr, k), held);
			FZ_CHECK(!held || (ai == iova + k * g && al == g),
				 "region %u granule %llu: area 0x%llx+0x%llx is not one granule", i,
				 (unsigned long long)k, (unsigned long long)ai, (unsigned long long)al);
		}
		areas += gran_region_populated(r->gr);
		bytes += gran_region_mapped_bytes(r->gr);
	}
	soft_iommu_get_stats(f->s->space, &st);
	FZ_CHECK(st.areas == areas && st.pinned_bytes == bytes,
		 "model holds %llu areas / %llu bytes, state says %llu / %llu",
		 (unsigned long long)st.areas, (unsigned long long)st.pinned_bytes,
		 (unsigned long long)areas, (unsigned long long)bytes);
}

void fz_session_reset(struct fz_session *f)
{
	struct soft_iommu_stats st;

	session_unmap_all(fz_service(), f->s);
	soft_iommu_get_stats(f->s->space, &st);
	FZ_CHECK(st.areas == 0 && st.pinned_bytes == 0, "%llu areas left after unmapping all",
		 (unsigned long long)st.areas);
	for (unsigned int i = 0; i < FZ_NR_REGIONS; i++)
		FZ_CHECK(gran_region_populated(session_region(f->s, f->region_ids[i])->gr) == 0,
			 "region %u still has populated granules after unmapping all", i);
}

void fz_session_close(struct fz_session *f)
{
	fz_session_reset(f);
	ringsvc_session_release(fz_service(), f->s);
	session_destroy(fz_service(), f->s);
	f->s = NULL;
}

void fz_session_shared(struct fz_session *f)
{
	static struct fz_session shared;

	if (!shared.s)
		fz_session_open(&shared);
	*f = shared;
}

uint32_t fz_steer_region(const struct fz_session *f, uint32_t raw)
{
	/* 1 in 8 ids stay raw (unknown, stale or forged); the rest hit a region. */
	if ((raw & 7) == 7)
		return raw;
	return f->region_ids[(raw >> 3) % FZ_NR_REGIONS];
}

void fz_steer_sqe(const struct fz_session *f, struct dmasvc_sqe *q)
{
	const struct dsvc_region *r;
	uint64_t nr, g, first;

	q->region_id = fz_steer_region(f, q->region_id);
	if (!(q->__reserved & 0x8000))
		return;
	q->__reserved = 0;
	r = session_region(f->s, q->region_id);
	if (!r)
		return;
	nr = gran_region_nr_granules(r->gr);
	g = gran_region_granule(r->gr);
	first = q->offset % nr;
	q->offset = first * g;
	q->length = (1 + q->length % (nr - first)) * g;
}
