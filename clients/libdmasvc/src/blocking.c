/* SPDX-License-Identifier: MIT */
/*
 * blocking.c - the blocking calls on the default queue (dmasvc_populate,
 * dmasvc_discard): post one event, or a large populate in pieces
 * (pipeline.c), wait for it, and say what a refusal means in
 * dmasvc_last_error().  Built on queue.c's posting and waiting.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "libdmasvc_priv.h"

/*
 * The text of a populate of @region [@offset, @offset + @length) that the
 * service refused over the session's populated-bytes cap (-EDQUOT): the
 * CQE has no text, so the numbers come from the session's own QUERY
 * SESSIONS record (what it has populated now and its cap); without them
 * (an older service, a failed query) the text names the cap alone.
 */
static void over_cap_error(struct dmasvc_client *c, uint32_t region, uint64_t offset,
			   uint64_t length)
{
	struct dmasvc_stat_session st = { 0 };
	char nums[128] = "";

	if (dmasvc_query(c, DMASVC_QUERY_SESSIONS, 0, 0, &st, sizeof(st), 1) == 1 &&
	    st.max_populated_bytes)
		snprintf(nums, sizeof(nums), ": requested up to %llu bytes, in use %llu, cap %llu",
			 (unsigned long long)length, (unsigned long long)st.populated_bytes,
			 (unsigned long long)st.max_populated_bytes);
	cl_event_error(c, "populate of region %u [0x%llx, 0x%llx): the service refused it, cap "
		       "max-populated-mib (the session's populated bytes; --max-populated-mib or the "
		       "operator's --uid-caps) exceeded%s; discard some memory first",
		       region, (unsigned long long)offset, (unsigned long long)(offset + length), nums);
}

/* A blocking event on the default queue. */
static int blocking_event(struct dmasvc_client *c, uint8_t op, uint32_t region,
			  uint64_t offset, uint64_t length)
{
	struct dmasvc_queue *q;
	bool prefault_failed;
	int64_t seq;
	int err;

	if (!c)
		return -EINVAL;
	if (c->query_only)
		return -EOPNOTSUPP;
	q = c->defq;
	cl_queue_lock(q);
	q->prefault_err = 0; /* not an earlier call's: cl_submit_locked may refuse before it resets it */
	if (op == DMASVC_OP_POPULATE) {
		err = cl_populate_pipelined(q, region, offset, length, &prefault_failed);
		if (err <= 0) {
			/* the texts below tell a prefault failure by seq and prefault_err */
			seq = prefault_failed ? err : 0;
			q->prefault_err = prefault_failed ? err : 0;
			goto out_unlock;
		}
	}
	for (;;) {
		seq = cl_submit_locked(q, op, region, offset, length, 0, SLOT_SYNC, true);
		if (seq != -EAGAIN)
			break;
		/* SQ or slots full: wait until the service completes something. */
		err = cl_queue_wait_room(q, c->opts.timeout_ms);
		if (err) {
			seq = err;
			break;
		}
	}
	if (seq < 0) {
		err = (int)seq;
		goto out_unlock;
	}
	err = cl_queue_wait_applied(q, (uint64_t)seq, c->opts.timeout_ms);
	if (!err)
		err = q->slots[seq & (q->nslots - 1)].res;
	else if (err == -ETIMEDOUT)
		cl_queue_orphan(q, (uint64_t)seq, (uint64_t)seq + 1);
out_unlock:
	prefault_failed = seq < 0 && q->prefault_err == err;
	cl_queue_unlock(q);
	if (op == DMASVC_OP_POPULATE && (prefault_failed || err == -ENXIO))
		cl_event_error(c, prefault_failed
			? "populate of region %u [0x%llx, 0x%llx): faulting the memory in before posting "
			  "(libdmasvc's prefault) failed: %s"
			: "populate of region %u [0x%llx, 0x%llx): the service refused it, some of the "
			  "memory is not in memory (%s): fault it in before posting (dmasvc_prefault(), "
			  "or leave it to libdmasvc), or run the service with --allow-fault-in",
			region, (unsigned long long)offset, (unsigned long long)(offset + length),
			strerror(-err));
	else if (op == DMASVC_OP_POPULATE && err == -EDQUOT)
		over_cap_error(c, region, offset, length);
	return err;
}

int dmasvc_populate(struct dmasvc_client *c, uint32_t region_id, uint64_t offset,
		    uint64_t length)
{
	return blocking_event(c, DMASVC_OP_POPULATE, region_id, offset, length);
}

int dmasvc_discard(struct dmasvc_client *c, uint32_t region_id, uint64_t offset,
		   uint64_t length)
{
	return blocking_event(c, DMASVC_OP_DISCARD, region_id, offset, length);
}
