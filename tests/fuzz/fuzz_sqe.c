/* SPDX-License-Identifier: MIT */
/*
 * fuzz_sqe.c - libFuzzer target: a burst of arbitrary SQEs through the
 * daemon's validator (ringsvc_sqe_validate), then, for the valid ones, the planner
 * and executor against the software model with injected map/unmap
 * failures.
 *
 * Input layout:
 *   byte 0   bit 0: execute the valid events; bits 1..2: faults
 *            (1: the Nth map fails, 2: the Nth unmap fails, 3: both);
 *            bit 3: arm the faults again for the reset (session_unmap_all);
 *            bit 4: map one granule behind the service's back (a STRAY for
 *            the audit); bit 5: unmap one populated granule behind its back
 *            (a MISSING), both undone before the reset; bits 6..7: the
 *            first audit cursor is byte 1 << (4 * bits)
 *   byte 1   N for the faults (1..256); also picks the STRAY/MISSING granules
 *            and the first audit cursor
 *   then     up to FZ_BURST SQEs of 32 bytes, steered by fz_steer_sqe()
 *            so that valid events are common.
 *
 * Oracles:
 *   - ringsvc_sqe_validate() agrees with an independent re-implementation of the
 *     SQE rules (ring_service_priv.h), error code and granule range;
 *   - one completion per valid event, in order, user_data kept; with no
 *     fault armed every event succeeds;
 *   - final state: each granule's state equals what the model holds, and
 *     equals a sequential model of the burst (successful events applied in
 *     order; a failed populate changes nothing unless an unmap failed too;
 *     a failed discard leaves its granules unknown);
 *   - QUERY AUDIT (query_run, as the control socket runs it), followed page
 *     by page from a fuzzed cursor: misaligned or out-of-range cursors are
 *     -EINVAL; otherwise the extents are ordered, disjoint, granule-aligned
 *     and inside the region, the cursor always advances, OK covers exactly
 *     the populated granules from the cursor on, and STRAY/MISSING appear
 *     exactly where they were planted (one page holds every extent these
 *     small regions can have; paging is unit-tested in test_session.c);
 *     QUERY REGIONS/SESSIONS/STATUS with fuzzed cursors stay in their page;
 *   - the reset unmaps everything even with an unmap fault armed.
 */
#include <errno.h>
#include <string.h>

#include "dmasvc/plan.h"
#include "dmasvc/soft_iommu.h"
#include "fuzz_session.h"
#include "query_priv.h"
#include "ring_service_priv.h"
#include "gran_priv.h" /* test access: gran_region_test */
#include "plan_priv.h" /* test access: window, stages */

#define MODEL_MAX 64 /* granules per region in the layout, at most */
#define FZ_BURST 128 /* SQEs validated per input (a burst of the ring service is up to an SQ) */

enum { M_UNMAPPED = 0, M_MAPPED = 1, M_UNKNOWN = 2 };

/* The SQE rules, written again from the contract, not from the code. */
static int expect_sqe(const struct fz_session *f, const struct dmasvc_sqe *q, int *ridx,
		      uint64_t *first, uint64_t *count)
{
	const struct dsvc_region *r = NULL;
	uint64_t g, end;

	if (q->opcode > DMASVC_OP_DISCARD || (q->flags & ~DMASVC_SQE_REPLAY) || q->__reserved)
		return -EINVAL;
	if (q->opcode == DMASVC_OP_NOP)
		return 0;
	for (int i = 0; i < FZ_NR_REGIONS; i++)
		if (f->region_ids[i] == q->region_id)
			*ridx = i, r = session_region(f->s, q->region_id);
	if (!r)
		return -ENOENT;
	g = gran_region_granule(r->gr);
	if (q->length == 0 || q->offset % g || q->length % g)
		return -EINVAL;
	if (__builtin_add_overflow(q->offset, q->length, &end) || end > gran_region_size(r->gr))
		return -ERANGE;
	*first = q->offset / g;
	*count = q->length / g;
	return 1;
}

/*
 * Apply completed events to the model, in burst order.  @unmap_failed: some
 * unmap of the execution failed, so the undo of a failed populate may have
 * left granules mapped (plan.h step 4: the bits follow the backend then).
 */
static void model_apply(uint8_t model[FZ_NR_REGIONS][MODEL_MAX], const struct gran_event *ev,
			const int *ridx, const struct gran_completion *c, size_t n,
			bool unmap_failed)
{
	for (size_t e = 0; e < n; e++) {
		uint8_t v;

		if (ev[e].op == GRAN_OP_POPULATE && c[e].res && !unmap_failed)
			continue; /* all-or-nothing: as before */
		if (ev[e].op == GRAN_OP_POPULATE)
			v = c[e].res ? M_UNKNOWN : M_MAPPED;
		else
			v = c[e].res ? M_UNKNOWN : M_UNMAPPED;
		for (uint64_t k = ev[e].first; k < ev[e].first + ev[e].count; k++)
			if (v != M_UNKNOWN ||
			    model[ridx[e]][k] == (ev[e].op == GRAN_OP_POPULATE ? M_UNMAPPED : M_MAPPED))
				model[ridx[e]][k] = v;
	}
}

static void run_burst(struct fz_session *f, const struct gran_event *ev, const int *ridx, size_t n,
		      bool faulted)
{
	uint8_t model[FZ_NR_REGIONS][MODEL_MAX] = { { 0 } };
	const struct gran_completion *c;
	struct gran_exec_stats st;
	struct gran_plan *plan;
	size_t nc;

	FZ_CHECK(gran_plan_build(ev, n, &plan) == 0, "plan of %zu valid events", n);
	FZ_CHECK(gran_plan_execute(plan, fz_service()->ops, f->s->space, NULL) == 0, "execute");
	c = gran_plan_completions(plan, &nc);
	FZ_CHECK(nc == n, "%zu completions for %zu events", nc, n);
	for (size_t e = 0; e < n; e++) {
		FZ_CHECK(c[e].user_data == ev[e].user_data, "completion %zu out of order", e);
		FZ_CHECK(c[e].res <= 0 && c[e].res > -4096, "res %d", c[e].res);
		FZ_CHECK(faulted || c[e].res == 0, "event %zu failed (%d) with no fault armed", e,
			 c[e].res);
	}
	fz_check_consistent(f);
	gran_plan_stats(plan, &st);
	model_apply(model, ev, ridx, c, n, st.unmap_failures != 0);
	for (int i = 0; i < FZ_NR_REGIONS; i++) {
		const struct dsvc_region *r = session_region(f->s, f->region_ids[i]);

		for (uint64_t k = 0; k < gran_region_nr_granules(r->gr); k++)
			FZ_CHECK(model[i][k] == M_UNKNOWN || model[i][k] == gran_region_test(r->gr, k),
				 "region %d granule %llu: model %u, state %d", i, (unsigned long long)k,
				 model[i][k], gran_region_test(r->gr, k));
	}
	gran_plan_free(plan);
}

/* A granule planted behind the service's back, or none (region < 0). */
struct plant {
	int region;
	uint64_t granule;
};

/* The backend-side map/unmap of one granule of region @ri, as the planner would do it. */
static int plant_op(struct fz_session *f, int ri, uint64_t k, bool map)
{
	const struct dsvc_region *r = session_region(f->s, f->region_ids[ri]);
	const struct gran_region_desc *d = gran_region_desc(r->gr);
	uint64_t g = d->granule, iova = d->iova + k * g, unmapped = 0;
	struct be_map_src src = {
		.vaddr = (char *)d->mem_vaddr + d->mem_offset + k * g,
		.fd = d->mem_fd, .fd_offset = d->mem_offset + k * g,
	};
	const struct be_ops *ops = fz_service()->ops;

	return map ? ops->map(f->s->space, iova, g, &src, d->prot)
		   : ops->unmap(f->s->space, iova, g, &unmapped);
}

/* Plant a STRAY (@map) or MISSING (!@map) granule picked by @pick; region -1 when none fits. */
static struct plant plant(struct fz_session *f, unsigned int pick, bool map)
{
	struct plant p = { .region = -1 };
	int ri = (int)(pick % FZ_NR_REGIONS);
	const struct dsvc_region *r = session_region(f->s, f->region_ids[ri]);
	uint64_t nr = gran_region_nr_granules(r->gr);

	for (uint64_t i = 0; i < nr; i++) {
		uint64_t k = (pick / FZ_NR_REGIONS + i) % nr;

		if (gran_region_test(r->gr, k) != map) {
			FZ_CHECK(plant_op(f, ri, k, map) == 0, "planting %s at granule %llu",
				 map ? "a stray map" : "a missing unmap", (unsigned long long)k);
			p.region = ri;
			p.granule = k;
			break;
		}
	}
	return p;
}

static void unplant(struct fz_session *f, struct plant p, bool was_map)
{
	if (p.region >= 0)
		FZ_CHECK(plant_op(f, p.region, p.granule, !was_map) == 0, "undoing a plant");
}

/* Follow QUERY AUDIT of region @ri from @cursor to the end and check it. */
static void audit_region(struct fz_session *f, int ri, uint64_t cursor, struct plant stray,
			 struct plant missing)
{
	static unsigned char records[QUERY_RECORD_BYTES];
	const struct dsvc_region *r = session_region(f->s, f->region_ids[ri]);
	uint64_t g = gran_region_granule(r->gr), iova = gran_region_iova(r->gr);
	uint64_t size = gran_region_size(r->gr), ok = 0, want_ok = 0, next_iova;
	bool saw_stray = false, saw_missing = false;
	struct dmasvc_query q = { .what = DMASVC_QUERY_AUDIT, .region_id = f->region_ids[ri],
				  .cursor = cursor };
	struct dmasvc_query_reply rep;
	char err[DMASVC_TEXT_MAX];
	int ret, pages = 0;

	ret = query_run(fz_service(), f->s, &q, &rep, records, err, sizeof(err));
	if (cursor % g || cursor >= size) {
		FZ_CHECK(ret == -EINVAL, "audit cursor 0x%llx of a 0x%llx region: %d",
			 (unsigned long long)cursor, (unsigned long long)size, ret);
		return;
	}
	next_iova = iova + cursor;
	for (uint64_t k = cursor / g; k < size / g; k++)
		if (gran_region_test(r->gr, k) && !(missing.region == ri && missing.granule == k))
			want_ok += g;
	for (;;) {
		const struct dmasvc_audit_extent *e = (const void *)records;

		FZ_CHECK(ret == 0, "audit page %d: %d %s", pages, ret, err);
		FZ_CHECK(rep.record_size == sizeof(*e) && rep.count * sizeof(*e) <= sizeof(records),
			 "audit page of %u records of %u bytes", rep.count, rep.record_size);
		for (unsigned int i = 0; i < rep.count; i++) {
			uint64_t k = (e[i].iova - iova) / g;

			FZ_CHECK(e[i].iova >= next_iova && e[i].length && !(e[i].iova % g) &&
				 !(e[i].length % g) && e[i].iova + e[i].length <= iova + size,
				 "extent 0x%llx+0x%llx (next 0x%llx)", (unsigned long long)e[i].iova,
				 (unsigned long long)e[i].length, (unsigned long long)next_iova);
			next_iova = e[i].iova + e[i].length;
			if (e[i].state == DMASVC_AUDIT_OK) {
				ok += e[i].length;
				continue;
			}
			FZ_CHECK(e[i].length == g, "a %s extent of 0x%llx bytes",
				 e[i].state == DMASVC_AUDIT_STRAY ? "STRAY" : "MISSING",
				 (unsigned long long)e[i].length);
			if (e[i].state == DMASVC_AUDIT_STRAY) {
				FZ_CHECK(stray.region == ri && stray.granule == k, "unplanted STRAY at %llu",
					 (unsigned long long)k);
				saw_stray = true;
			} else {
				FZ_CHECK(e[i].state == DMASVC_AUDIT_MISSING && missing.region == ri &&
					 missing.granule == k, "unplanted state %u at %llu", e[i].state,
					 (unsigned long long)k);
				saw_missing = true;
			}
		}
		if (!rep.next_cursor)
			break;
		FZ_CHECK(rep.next_cursor > q.cursor && !(rep.next_cursor % g) && rep.next_cursor < size,
			 "cursor 0x%llx after 0x%llx", (unsigned long long)rep.next_cursor,
			 (unsigned long long)q.cursor);
		FZ_CHECK(++pages < 1024, "audit does not end");
		q.cursor = rep.next_cursor;
		ret = query_run(fz_service(), f->s, &q, &rep, records, err, sizeof(err));
	}
	FZ_CHECK(ok == want_ok, "audit OK covers 0x%llx bytes, populated 0x%llx",
		 (unsigned long long)ok, (unsigned long long)want_ok);
	FZ_CHECK(saw_stray == (stray.region == ri && stray.granule * g >= cursor),
		 "planted STRAY reported %d", saw_stray);
	FZ_CHECK(saw_missing == (missing.region == ri && missing.granule * g >= cursor),
		 "planted MISSING reported %d", saw_missing);
}

/* The other queries with a fuzzed cursor: bounded pages, no crash. */
static void other_queries(struct fz_session *f, uint64_t cursor)
{
	static unsigned char records[QUERY_RECORD_BYTES];
	struct dmasvc_query_reply rep;
	char err[DMASVC_TEXT_MAX];

	for (uint32_t what = DMASVC_QUERY_STATUS; what <= DMASVC_QUERY_REGIONS; what++) {
		struct dmasvc_query q = { .what = what, .cursor = cursor };
		int ret = query_run(fz_service(), f->s, &q, &rep, records, err, sizeof(err));

		FZ_CHECK(ret == 0 && (uint64_t)rep.count * rep.record_size <= sizeof(records),
			 "query %u: %d, %u records", what, ret, rep.count);
		FZ_CHECK(what != DMASVC_QUERY_REGIONS ||
			 rep.count == (cursor < FZ_NR_REGIONS ? FZ_NR_REGIONS - cursor : 0),
			 "REGIONS from %llu: %u records", (unsigned long long)cursor, rep.count);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gran_event ev[FZ_BURST];
	int ridx[FZ_BURST];
	struct soft_iommu_faults faults = { 0 }, none = { 0 };
	struct fz_session f;
	size_t n, nev = 0;
	unsigned int mode, pick;

	if (size < 2)
		return 0;
	mode = data[0];
	pick = data[1];
	if (mode & 2)
		faults.map_fail_nth = (uint64_t)data[1] + 1;
	if (mode & 4)
		faults.unmap_fail_nth = (uint64_t)data[1] + 1;
	data += 2;
	size -= 2;
	n = size / sizeof(struct dmasvc_sqe);
	if (n > FZ_BURST)
		n = FZ_BURST;

	fz_session_shared(&f);
	for (size_t i = 0; i < n; i++) {
		struct dmasvc_sqe q;
		struct gran_event e;
		uint64_t first = 0, count = 0;
		int want, got, ri = -1;

		memcpy(&q, data + i * sizeof(q), sizeof(q));
		fz_steer_sqe(&f, &q);
		want = expect_sqe(&f, &q, &ri, &first, &count);
		memset(&e, 0, sizeof(e));
		got = ringsvc_sqe_validate(&q, f.s, &e);
		FZ_CHECK(got == want, "ringsvc_sqe_validate says %d, the rules say %d (op %u region %u off 0x%llx len 0x%llx)",
			 got, want, q.opcode, q.region_id, (unsigned long long)q.offset,
			 (unsigned long long)q.length);
		if (got != 1)
			continue;
		FZ_CHECK(e.first == first && e.count == count && e.user_data == q.user_data &&
			 e.op == (q.opcode == DMASVC_OP_POPULATE ? GRAN_OP_POPULATE : GRAN_OP_DISCARD),
			 "event fields");
		ridx[nev] = ri;
		ev[nev++] = e;
	}
	if ((mode & 1) && nev) {
		soft_iommu_set_faults(fz_service()->be, &faults);
		run_burst(&f, ev, ridx, nev, faults.map_fail_nth || faults.unmap_fail_nth);
		soft_iommu_set_faults(fz_service()->be, &none);
	}
	if (mode & 0x30) {
		struct plant stray = { .region = -1 }, missing = { .region = -1 };
		uint64_t cursor = (uint64_t)pick << ((mode >> 6) * 4);

		if (mode & 0x10)
			stray = plant(&f, pick, true);
		if (mode & 0x20)
			missing = plant(&f, pick * 7u + 3, false);
		for (int i = 0; i < FZ_NR_REGIONS; i++)
			audit_region(&f, i, (unsigned int)i == pick % FZ_NR_REGIONS ? cursor : 0, stray, missing);
		other_queries(&f, pick & 7);
		unplant(&f, missing, false);
		unplant(&f, stray, true);
	}
	if (mode & 8)
		soft_iommu_set_faults(fz_service()->be, &faults); /* the teardown meets the faults */
	fz_session_reset(&f);
	soft_iommu_set_faults(fz_service()->be, &none);
	return 0;
}
