/* SPDX-License-Identifier: MIT */
/*
 * ring_roles.c - set up the four roles (SQ/CQ producer/consumer) on a mapping.
 *
 * A role takes entries, mask and its first index from the private
 * struct ring_mapping, never from shared memory, and points into the mapping
 * only for the words and the entry array it reads or writes.
 */
#include <dmasvc/ring.h>

/* Start of the SQE array of an attached mapping (layout: ring_layout.h). */
static void *sqes_of(const struct ring_mapping *m)
{
	return (char *)m->base + RING_SQES_OFF;
}

/* Start of the CQE array, right after the S SQEs. */
static void *cqes_of(const struct ring_mapping *m)
{
	return (char *)m->base + RING_SQES_OFF + (size_t)m->params.sq_entries * sizeof(struct dmasvc_sqe);
}

/* The queue block and entry count a role on @m uses; NULL if @m is not attached. */
static struct ring_queue_shm *queue_of(const struct ring_mapping *m, bool sq, uint32_t *entries)
{
	struct ring_shm *shm = m->base;

	if (!shm)
		return NULL;
	*entries = sq ? m->params.sq_entries : m->params.cq_entries;
	return sq ? &shm->sq : &shm->cq;
}

/* Point @p at queue @sq's words of @m; private state from @m only. 0 or -EINVAL. */
static int prod_init(struct ring_pvt_prod *p, const struct ring_mapping *m, bool sq)
{
	uint32_t entries;
	struct ring_queue_shm *q = queue_of(m, sq, &entries);

	if (!q)
		return -EINVAL;
	*p = (struct ring_pvt_prod){
		.tail_p = &q->tail.value,
		.head_p = &q->head.value,
		.wait_p = &q->prod_wait.value,
		.peer_wait_p = &q->cons_wait.value,
		.entries = entries,
		.mask = entries - 1,
		.tail = m->params.first_index,
		.head_cache = m->params.first_index,
	};
	/* our flag starts clear; relaxed: no data depends on it */
	ring_write_once(p->wait_p, 0);
	return 0;
}

/* The consumer twin of prod_init(). */
static int cons_init(struct ring_pvt_cons *c, const struct ring_mapping *m, bool sq)
{
	uint32_t entries;
	struct ring_queue_shm *q = queue_of(m, sq, &entries);

	if (!q)
		return -EINVAL;
	*c = (struct ring_pvt_cons){
		.head_p = &q->head.value,
		.tail_p = &q->tail.value,
		.wait_p = &q->cons_wait.value,
		.peer_wait_p = &q->prod_wait.value,
		.entries = entries,
		.mask = entries - 1,
		.head = m->params.first_index,
		.tail_cache = m->params.first_index,
	};
	ring_write_once(c->wait_p, 0);
	return 0;
}

__attribute__((cold)) int ring_sq_producer_init(struct ring_sq_producer *r, const struct ring_mapping *m)
{
	r->sqes = m->base ? sqes_of(m) : NULL;
	return prod_init(&r->core, m, true);
}

__attribute__((cold)) int ring_sq_consumer_init(struct ring_sq_consumer *r, const struct ring_mapping *m)
{
	r->sqes = m->base ? sqes_of(m) : NULL;
	return cons_init(&r->core, m, true);
}

__attribute__((cold)) int ring_cq_producer_init(struct ring_cq_producer *r, const struct ring_mapping *m)
{
	r->cqes = m->base ? cqes_of(m) : NULL;
	return prod_init(&r->core, m, false);
}

__attribute__((cold)) int ring_cq_consumer_init(struct ring_cq_consumer *r, const struct ring_mapping *m)
{
	r->cqes = m->base ? cqes_of(m) : NULL;
	return cons_init(&r->core, m, false);
}
