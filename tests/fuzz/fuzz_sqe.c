/* SPDX-License-Identifier: MIT */
/*
 * fuzz_sqe.c - libFuzzer target: a burst of arbitrary SQEs through the
 * daemon's validator (sqe_validate), then, for the valid ones, the planner
 * and executor against the software model with injected map/unmap
 * failures.
 *
 * Input layout:
 *   byte 0   bit 0: execute the valid events; bits 1..2: faults
 *            (1: the Nth map fails, 2: the Nth unmap fails, 3: both);
 *            bit 3: keep the faults armed while the session is torn down
 *   byte 1   N for the faults (1..256)
 *   then     up to RING_BURST SQEs of 32 bytes, steered by fz_steer_sqe()
 *            so that valid events are common.
 *
 * Oracles:
 *   - sqe_validate() agrees with an independent re-implementation of the
 *     SQE rules (ring_service_priv.h), error code and granule range;
 *   - one completion per valid event, in order, user_data kept; with no
 *     fault armed every event succeeds;
 *   - final state: each granule's state equals what the model holds, and
 *     equals a sequential model of the burst (successful events applied in
 *     order; a failed populate changes nothing; a failed discard leaves
 *     its granules unknown);
 *   - teardown unmaps everything even with an unmap fault armed.
 */
#include <errno.h>
#include <string.h>

#include "dmasvc/plan.h"
#include "dmasvc/soft_iommu.h"
#include "fuzz_session.h"
#include "ring_service_priv.h"

#define MODEL_MAX 64 /* granules per region in the layout, at most */

enum { M_UNMAPPED = 0, M_MAPPED = 1, M_UNKNOWN = 2 };

/* The SQE rules, written again from the contract, not from the code. */
static int expect_sqe(const struct fz_session *f, const struct dmasvc_sqe *q, int *ridx,
		      uint64_t *first, uint64_t *count)
{
	const struct dsvc_region *r = NULL;
	uint64_t g, end;

	if (q->opcode > DMASVC_OP_DISCARD || q->flags || q->__reserved)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gran_event ev[RING_BURST];
	int ridx[RING_BURST];
	struct soft_iommu_faults faults = { 0 }, none = { 0 };
	struct fz_session f;
	size_t n, nev = 0;
	unsigned int mode;

	if (size < 2)
		return 0;
	mode = data[0];
	if (mode & 2)
		faults.map_fail_nth = (uint64_t)data[1] + 1;
	if (mode & 4)
		faults.unmap_fail_nth = (uint64_t)data[1] + 1;
	data += 2;
	size -= 2;
	n = size / sizeof(struct dmasvc_sqe);
	if (n > RING_BURST)
		n = RING_BURST;

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
		got = sqe_validate(&q, f.s, &e);
		FZ_CHECK(got == want, "sqe_validate says %d, the rules say %d (op %u region %u off 0x%llx len 0x%llx)",
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
		if (!(mode & 8))
			soft_iommu_set_faults(fz_service()->be, &none);
	}
	fz_session_reset(&f);
	soft_iommu_set_faults(fz_service()->be, &none);
	return 0;
}
