/* SPDX-License-Identifier: MIT */
/*
 * session.c - session objects: creation, the per-command operations on
 * memories, regions and rings, and teardown (see session_priv.h for
 * ownership, ids and caps; the space and devices are in session_device.c).
 *
 * Vocabulary: "slot" is an index into one of the session's fixed tables;
 * "end" is exclusive, "last" inclusive (iova + size - 1, overflow-checked
 * by the decoder before anything here runs).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmasvc/hole_guard.h"

#include "log_priv.h"
#include "keep_priv.h"
#include "session_priv.h"

uint64_t dsvc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t make_id(uint32_t *gen, unsigned int slot)
{
	uint32_t g = ++*gen & ((1u << (32 - ID_SLOT_BITS)) - 1);

	if (g == 0) /* wrapped: ids stay non-zero */
		g = *gen = 1;
	return (g << ID_SLOT_BITS) | slot;
}

struct dsvc_region *session_region(const struct dsvc_session *s, uint32_t id)
{
	unsigned int slot = id & ((1u << ID_SLOT_BITS) - 1);
	struct dsvc_region *r;

	if (slot >= SESSION_MAX_REGIONS)
		return NULL;
	r = s->regions[slot];
	return r && r->id == id ? r : NULL;
}

struct dsvc_memory *session_memory(const struct dsvc_session *s, uint32_t id)
{
	unsigned int slot = id & ((1u << ID_SLOT_BITS) - 1);
	struct dsvc_memory *m;

	if (slot >= SESSION_MAX_MEMORIES || !id) /* 0: never an id (a hidden memory's, test builds) */
		return NULL;
	m = s->mems[slot];
	return m && m->id == id ? m : NULL;
}

struct dsvc_session *session_find_any(struct dsvc *d, uint32_t id)
{
	for (unsigned int i = 0; i < DSVC_MAX_SESSIONS; i++)
		if (d->sessions[i] && d->sessions[i]->id == id)
			return d->sessions[i];
	return NULL;
}

struct dsvc_session *session_find(struct dsvc *d, uint32_t id)
{
	struct dsvc_session *s = session_find_any(d, id);

	return s && !s->closing ? s : NULL;
}

/*
 * A session id for a new session: the one after the last given, skipping 0
 * (a query's "the caller") and every id of the table (live, closing, kept
 * or orphaned sessions), so that ids stay unique after the 32-bit counter
 * wraps: completions and polls find their session by id.  At most
 * DSVC_MAX_SESSIONS + 1 tries, each a scan of the table.
 */
static uint32_t session_new_id(struct dsvc *d)
{
	do
		d->next_session_id++;
	while (!d->next_session_id || session_find_any(d, d->next_session_id));
	return d->next_session_id;
}

/*
 * Admission by the max-sessions cap of @s's peer uid (@s not yet in @d):
 * its uid's sessions, closing ones included, must stay within it.  Returns
 * 0, or -EUSERS after logging the refusal with the numbers.
 */
static int uid_sessions_check(struct dsvc *d, struct dsvc_session *s)
{
	char why[DMASVC_TEXT_MAX];
	uint64_t n = 0;

	for (unsigned int i = 0; i < d->session_hi; i++)
		if (d->sessions[i] && d->sessions[i]->cred.uid == s->cred.uid &&
		    !d->sessions[i]->orphan) /* its client must be able to come back */
			n++;
	if (n < s->cap[OPT_CAP_SESSIONS])
		return 0;
	session_cap_refuse(s, OPT_CAP_SESSIONS, -EUSERS, 1, n, why, sizeof(why));
	s->log_budget = 1; /* not a session yet: only its uid's budget limits this line */
	dlog(d->log, session_log_level(d, s, DLOG_WARN), 0, "peer pid %d uid %u: %s", (int)s->cred.pid, (unsigned)s->cred.uid,
	     why);
	return -EUSERS;
}

int session_insert(struct dsvc *d, struct dsvc_session *s)
{
	unsigned int slot;

	for (slot = 0; slot < DSVC_MAX_SESSIONS; slot++)
		if (!d->sessions[slot])
			break;
	if (slot == DSVC_MAX_SESSIONS)
		return -EMFILE;
	d->sessions[slot] = s;
	d->nr_sessions++;
	if (slot >= d->session_hi)
		d->session_hi = slot + 1;
	return 0;
}

int session_create(struct dsvc *d, int fd, const struct ucred *cred, bool admin,
		   struct dsvc_session **out)
{
	struct dsvc_session *s;
	int ret;

	if (d->nr_sessions >= DSVC_MAX_SESSIONS)
		return -EMFILE;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cred = *cred;
	s->cap_uid = opt_caps_for_uid(d->opt, cred->uid, s->cap);
	ret = uid_sessions_check(d, s);
	if (ret)
		goto err_free;
	ret = session_space_open(d, s);
	if (ret)
		goto err_free;
	s->id = session_new_id(d);
	s->fd = fd;
	s->keep_fd = -1;
	s->admin = admin;
	s->log_budget = SESSION_LOG_BUDGET;
	session_insert(d, s); /* cannot fail: a slot was free above */
	*out = s;
	return 0;

err_free:
	free(s);
	return ret;
}

/* gran_region_for_each_run callback: count one mapped run into *@arg. */
static int count_run(void *arg, struct gran_region *r, uint64_t first, uint64_t count)
{
	(void)r;
	(void)first;
	(void)count;
	++*(uint64_t *)arg;
	return 0;
}

uint64_t session_region_unmap(struct dsvc *d, struct dsvc_session *s, struct dsvc_region *r)
{
	uint64_t runs = 0, held;

	gran_region_for_each_run(r->gr, 0, gran_region_nr_granules(r->gr), count_run, &runs);
	if (!runs)
		return 0;
	held = gran_region_unmap_all(r->gr, d->ops, s->space);
	if (held)
		dlog(d->log, DLOG_ERROR, s->id,
		     "region %u: BUG: backend may still hold %llu granules after unmapping all",
		     r->id, (unsigned long long)held);
	return runs;
}

uint64_t session_unmap_regions(struct dsvc *d, struct dsvc_session *s)
{
	uint64_t calls = 0;

	for (unsigned int i = 0; i < s->region_hi; i++)
		if (s->regions[i])
			calls += session_region_unmap(d, s, s->regions[i]);
	return calls;
}

void session_unmap_all(struct dsvc *d, struct dsvc_session *s)
{
	s->ctr.unmap_calls += session_unmap_regions(d, s);
	session_usage_snapshot(s);
}

static void ring_free(struct dsvc_ring *rg)
{
	ring_unmap(&rg->map);
	if (rg->doorbell >= 0)
		close(rg->doorbell);
	if (rg->completion >= 0)
		close(rg->completion);
	free(rg->backlog);
	free(rg);
}

struct session_usage session_usage(const struct dsvc_session *s)
{
	struct session_usage u = { 0, 0 };

	if (s->busy)
		return s->usage_snapshot;
	for (unsigned int i = 0; i < s->region_hi; i++) {
		if (!s->regions[i])
			continue;
		u.areas += gran_region_populated(s->regions[i]->gr);
		u.mapped_bytes += gran_region_mapped_bytes(s->regions[i]->gr);
	}
	return u;
}

void session_usage_snapshot(struct dsvc_session *s)
{
	s->usage_snapshot = session_usage(s);
}

uint64_t session_teardown(struct dsvc *d, struct dsvc_session *s)
{
	uint64_t calls = session_unmap_regions(d, s);

	for (unsigned int i = 0; i < SESSION_MAX_DEVICES; i++) {
		if (!s->device_used[i])
			continue;
		d->ops->device_detach(s->space, s->devices[i]);
		s->device_used[i] = false; /* nr_devices stays: STATUS reads it (session_destroy) */
	}
	if (s->space)
		d->ops->space_destroy(s->space);
	s->space = NULL;
	for (unsigned int i = 0; i < SESSION_MAX_MEMORIES; i++)
		if (s->mems[i])
			mem_close(s->mems[i]); /* the struct stays until session_destroy */
	return calls;
}

void session_destroy(struct dsvc *d, struct dsvc_session *s)
{
	if (s->busy || s->exec || s->burst)
		dlog(d->log, DLOG_ERROR, s->id, "BUG: destroying a session the data path did not release");
	if (!s->torn_down)
		s->ctr.unmap_calls += session_teardown(d, s);
	keep_session_forget_names(d, s); /* nothing of it is kept any more */
	for (unsigned int i = 0; i < s->region_hi; i++) {
		if (!s->regions[i])
			continue;
		gran_region_unregister(s->regions[i]->gr);
		free(s->regions[i]);
		s->regions[i] = NULL;
	}
	for (unsigned int i = 0; i < DMASVC_MAX_RINGS; i++) {
		if (s->rings[i])
			ring_free(s->rings[i]);
		s->rings[i] = NULL;
	}
	session_devices_release(d, s); /* the bookkeeping: teardown detached them */
	for (unsigned int i = 0; i < SESSION_MAX_MEMORIES; i++) {
		if (!s->mems[i])
			continue;
		free(s->mems[i]);
		s->mems[i] = NULL;
	}
	if (s->fd >= 0)
		close(s->fd);
	if (s->hole_guard_open) /* after the teardown unmapped the memories */
		close(s->hole_guard);
	for (unsigned int i = 0; i < DSVC_MAX_SESSIONS; i++) {
		if (d->sessions[i] == s) {
			d->sessions[i] = NULL;
			d->nr_sessions--;
		}
	}
	counters_add(&d->gone, &s->ctr);
	free(s);
}

int session_memory_add(struct dsvc *d, struct dsvc_session *s, int fd,
		       const struct dmasvc_memory_add *req, uint32_t *id, char *err, size_t errlen)
{
	bool guard = !d->opt->allow_fault_in && !d->test_no_hole_guard; /* docs/design.md */
	struct dsvc_memory *m;
	unsigned int slot;
	int ret;

	if (req->size > s->cap[OPT_CAP_REGISTERED] ||
	    s->registered_bytes > s->cap[OPT_CAP_REGISTERED] - req->size)
		return session_cap_refuse(s, OPT_CAP_REGISTERED, -EDQUOT, req->size, s->registered_bytes,
					  err, errlen);
	for (slot = 0; slot < SESSION_MAX_MEMORIES; slot++)
		if (!s->mems[slot])
			break;
	if (slot == SESSION_MAX_MEMORIES)
		return dlog_errf(-EMFILE, err, errlen, "session already has %d memories (the cap)",
			     SESSION_MAX_MEMORIES);
	m = calloc(1, sizeof(*m));
	if (!m)
		return dlog_errf(-ENOMEM, err, errlen, "out of memory");
	if (guard && !s->hole_guard_open) {
		int g = be_hole_guard_create(); /* none here: mincore() checks this session */

		s->hole_guard_open = g >= 0;
		s->hole_guard = g;
	}
	ret = mem_open(m, fd, req->size, req->flags & DMASVC_MEMORY_READONLY,
		       guard && s->hole_guard_open ? s->hole_guard : -1, err, errlen);
	if (ret) {
		free(m);
		return ret;
	}
	m->id = make_id(&s->mem_gen, slot);
	s->mems[slot] = m;
	s->nr_mems++;
	s->registered_bytes += m->size;
	*id = m->id;
	return 0;
}

int session_memory_remove(struct dsvc_session *s, uint32_t id, char *err, size_t errlen)
{
	struct dsvc_memory *m = session_memory(s, id);

	if (!m)
		return dlog_errf(-ENOENT, err, errlen, "no memory %u", id);
	if (m->users)
		return dlog_errf(-EBUSY, err, errlen, "memory %u is used by %u regions", id, m->users);
	s->mems[id & ((1u << ID_SLOT_BITS) - 1)] = NULL;
	s->nr_mems--;
	s->registered_bytes -= m->size;
	mem_close(m);
	free(m);
	return 0;
}

/*
 * REGION_ADD's refusal by the area budget: the cap's line (areas the region
 * needs at worst, areas reserved, the cap) followed by the budget's own
 * text in @err (the numbers and the smallest granule that fits).
 * Returns -ENOSPC.
 */
static int budget_refusal(const struct dsvc_session *s, const struct dmasvc_region_add *req,
			  char *err, size_t errlen)
{
	char why[DMASVC_TEXT_MAX];
	const char *semi;
	size_t n;

	semi = strstr(err, "; "); /* keep the suggestion, the numbers come from the cap's line */
	snprintf(why, sizeof(why), "%s", semi ? semi : "");
	session_cap_refuse(s, OPT_CAP_MAPPINGS, -ENOSPC, req->size / req->granule, s->budget.reserved,
			   err, errlen);
	n = strlen(err);
	if (n < errlen)
		snprintf(err + n, errlen - n, "%s", why);
	return -ENOSPC;
}

int session_region_add(struct dsvc *d, struct dsvc_session *s, const struct dmasvc_region_add *req,
		       uint32_t *id, char *err, size_t errlen)
{
	uint64_t last = req->iova + req->size - 1; /* no overflow: checked by ctl_decode */
	struct gran_region_desc desc;
	struct dsvc_memory *m;
	struct dsvc_region *r;
	struct be_limits lim;
	unsigned int slot;
	int ret;

	m = session_memory(s, req->mem_id);
	if (!m)
		return dlog_errf(-ENOENT, err, errlen, "no memory %u", req->mem_id);
	if (s->region_phase) { /* resumed: an adopted region may be this one (resume.c) */
		if (session_region_claim(d, s, m, req, id))
			return 0;
	}
	ret = session_space_get(d, s, err, errlen);
	if (ret)
		return ret;
	if ((req->granule | req->mem_offset) & (m->page_size - 1))
		return dlog_errf(-EINVAL, err, errlen,
			     "granule 0x%llx and mem_offset 0x%llx must be multiples of memory %u's"
			     " page size 0x%llx (hugetlbfs)",
			     (unsigned long long)req->granule, (unsigned long long)req->mem_offset,
			     req->mem_id, (unsigned long long)m->page_size);
	if (m->readonly && !(req->flags & DMASVC_REGION_READONLY))
		return dlog_errf(-EINVAL, err, errlen, "memory %u is read-only: the region must be READONLY",
			     req->mem_id);
	if (s->nr_regions >= s->cap[OPT_CAP_REGIONS])
		return session_cap_refuse(s, OPT_CAP_REGIONS, -EMFILE, 1, s->nr_regions, err, errlen);
	for (slot = 0; slot < SESSION_MAX_REGIONS; slot++)
		if (!s->regions[slot])
			break;
	if (slot == SESSION_MAX_REGIONS) /* cannot happen: the cap is <= the table */
		return dlog_errf(-EMFILE, err, errlen, "session already has %d regions (the table)",
			     SESSION_MAX_REGIONS);
	for (unsigned int i = 0; i < s->region_hi; i++) {
		const struct gran_region *o = s->regions[i] ? s->regions[i]->gr : NULL;

		if (o && req->iova <= gran_region_iova(o) + gran_region_size(o) - 1 &&
		    gran_region_iova(o) <= last)
			return dlog_errf(-EEXIST, err, errlen,
				     "iova 0x%llx..0x%llx overlaps region %u",
				     (unsigned long long)req->iova, (unsigned long long)last,
				     s->regions[i]->id);
	}
	ret = d->ops->limits(s->space, &lim);
	if (ret)
		return dlog_errf(ret, err, errlen, "backend limits query failed");
	if (!be_limits_allow(&lim, req->iova, last)) {
		char ranges[160];

		be_limits_format(&lim, ranges, sizeof(ranges));
		return dlog_errf(-ERANGE, err, errlen,
			     "iova 0x%llx..0x%llx is outside the space's IOVA ranges (%s)",
			     (unsigned long long)req->iova, (unsigned long long)last, ranges);
	}
	/* Every map is granule-sized at a granule-aligned iova: both must be
	 * multiples of the IOMMU's smallest page, or no map can succeed. */
	if (lim.pgsize_bitmap && ((req->granule | req->iova) & ((lim.pgsize_bitmap & -lim.pgsize_bitmap) - 1)))
		return dlog_errf(-EINVAL, err, errlen,
			     "granule 0x%llx and iova 0x%llx must be multiples of the IOMMU's smallest"
			     " page size 0x%llx",
			     (unsigned long long)req->granule, (unsigned long long)req->iova,
			     (unsigned long long)(lim.pgsize_bitmap & -lim.pgsize_bitmap));
	r = calloc(1, sizeof(*r));
	if (!r)
		return dlog_errf(-ENOMEM, err, errlen, "out of memory");
	desc = (struct gran_region_desc){
		.mem_offset = req->mem_offset,
		.size = req->size,
		.iova = req->iova,
		.granule = req->granule,
		.mem_size = m->size,
		.mem_vaddr = m->vaddr,
		.mem_fd = m->fd,
		.prot = (req->flags & DMASVC_REGION_READONLY) ? BE_PROT_READ
							       : BE_PROT_READ | BE_PROT_WRITE,
		.flags = 0,
	};
	ret = gran_region_register(&desc, &s->budget, &r->gr, err, errlen);
	if (ret) {
		free(r);
		if (ret == -ENOSPC) /* the budget's text: the numbers and a granule that fits */
			return budget_refusal(s, req, err, errlen);
		return ret;
	}
	r->id = make_id(&s->region_gen, slot);
	r->flags = req->flags;
	r->mem = m;
	r->keep_mem_dev = m->dev; /* the memory's identity, for the kept record */
	r->keep_mem_ino = m->ino;
	r->keep_mem_offset = req->mem_offset;
	r->keep_mem_size = m->size;
	m->users++;
	s->regions[slot] = r;
	s->nr_regions++;
	if (slot >= s->region_hi)
		s->region_hi = slot + 1;
	*id = r->id;
	session_usage_snapshot(s);
	keep_session_write(d, s);
	return 0;
}

void session_region_forget(struct dsvc_session *s, struct dsvc_region *r)
{
	s->regions[r->id & ((1u << ID_SLOT_BITS) - 1)] = NULL;
	s->nr_regions--;
	if (r->mem) /* NULL while adopted (keep.c) */
		r->mem->users--;
	gran_region_unregister(r->gr);
	free(r);
	session_usage_snapshot(s);
}

int session_region_remove(struct dsvc *d, struct dsvc_session *s, uint32_t id, char *err,
			  size_t errlen)
{
	struct dsvc_region *r = session_region(s, id);

	if (!r)
		return dlog_errf(-ENOENT, err, errlen, "no region %u", id);
	s->ctr.unmap_calls += session_region_unmap(d, s, r);
	session_region_forget(s, r);
	return 0;
}

int session_ring_setup(struct dsvc *d, struct dsvc_session *s, const struct dmasvc_ring_setup *req,
		       struct dsvc_ring **out, int fds[3], char *err, size_t errlen)
{
	struct ring_params p = { .sq_entries = req->sq_entries, .cq_entries = req->cq_entries };
	struct ring_fds rf;
	struct dsvc_ring *rg;
	unsigned int slot;
	int ret;

	if (s->region_phase) /* the first RING_SETUP after a resume (resume.c) */
		session_region_phase_end(d, s);
	for (slot = 0; slot < DMASVC_MAX_RINGS; slot++)
		if (!s->rings[slot])
			break;
	if (slot == DMASVC_MAX_RINGS)
		return dlog_errf(-EMFILE, err, errlen, "session already has %d rings (the cap)",
			     DMASVC_MAX_RINGS);
	if ((uint64_t)s->inflight + req->sq_entries > s->cap[OPT_CAP_INFLIGHT])
		return session_cap_refuse(s, OPT_CAP_INFLIGHT, -ENOSPC, req->sq_entries, s->inflight,
					  err, errlen);
	rg = calloc(1, sizeof(*rg));
	if (rg)
		rg->backlog = calloc(req->sq_entries, sizeof(*rg->backlog));
	if (!rg || !rg->backlog) {
		free(rg);
		return dlog_errf(-ENOMEM, err, errlen, "out of memory");
	}
	ret = ring_fds_create(&rf, &p);
	if (ret) {
		free(rg->backlog);
		free(rg);
		return dlog_errf(ret, err, errlen, "creating the ring failed");
	}
	ret = ring_map(&rg->map, rf.memfd, &p);
	if (ret)
		goto err_fds;
	ret = ring_sq_consumer_init(&rg->sq, &rg->map);
	if (!ret)
		ret = ring_cq_producer_init(&rg->cq, &rg->map);
	if (ret)
		goto err_unmap;
	rg->id = slot;
	rg->doorbell = rf.doorbell;
	rg->completion = rf.completion;
	rg->sq_entries = req->sq_entries;
	s->rings[slot] = rg;
	s->nr_rings++;
	if (slot >= s->ring_hi)
		s->ring_hi = slot + 1;
	s->inflight += req->sq_entries;
	fds[0] = rf.memfd; /* the caller sends it, then closes it */
	fds[1] = rf.doorbell;
	fds[2] = rf.completion;
	*out = rg;
	return 0;

err_unmap:
	ring_unmap(&rg->map);
err_fds:
	ring_fds_close(&rf);
	free(rg->backlog);
	free(rg);
	return dlog_errf(ret, err, errlen, "mapping the new ring failed");
}

int session_cap_refuse(const struct dsvc_session *s, enum opt_cap c, int ret, uint64_t requested,
		       uint64_t in_use, char *err, size_t errlen)
{
	const struct opt_cap_info *ci = opt_cap_info(c);
	char src[64];

	if (s->cap_uid & (1u << c))
		snprintf(src, sizeof(src), "--uid-caps for uid %u", (unsigned int)s->cred.uid);
	else
		snprintf(src, sizeof(src), "--%s", ci->name);
	return dlog_errf(ret, err, errlen, "cap %s (%s) exceeded: requested %llu %s, in use %llu, cap %llu",
			 ci->name, src, (unsigned long long)requested, ci->what,
			 (unsigned long long)in_use, (unsigned long long)s->cap[c]);
}

/* The warning budget of peer @uid this second: its entry, added if new (the last one is shared once full). */
static struct dsvc_uid_log *uid_log(struct dsvc *d, uint32_t uid)
{
	for (unsigned int i = 0; i < d->nr_log_uids; i++)
		if (d->log_uids[i].uid == uid)
			return &d->log_uids[i];
	if (d->nr_log_uids == DSVC_LOG_UIDS)
		return &d->log_uids[DSVC_LOG_UIDS - 1];
	d->log_uids[d->nr_log_uids] = (struct dsvc_uid_log){ .uid = uid, .left = UID_LOG_BUDGET };
	return &d->log_uids[d->nr_log_uids++];
}

enum dlog_level session_log_level(struct dsvc *d, struct dsvc_session *s, enum dlog_level want)
{
	struct dsvc_uid_log *u;

	if (want > DLOG_WARN)
		return want;
	if (s->log_budget == 0)
		return DLOG_DEBUG;
	u = uid_log(d, (uint32_t)s->cred.uid);
	if (u->left == 0) {
		if (!u->noted)
			dlog(d->log, DLOG_WARN, s->id,
			     "peer uid %u: more than %d warning lines this second (UID_LOG_BUDGET, all its "
			     "sessions); the rest of this second at debug level", (unsigned)s->cred.uid,
			     UID_LOG_BUDGET);
		u->noted = true;
		return DLOG_DEBUG;
	}
	u->left--;
	s->log_budget--;
	return want;
}

#ifdef DMASVC_FAULT_INJECTION
void session_orphan_for_test(struct dsvc *d, struct dsvc_session *s)
{
	unsigned int adopted = 0;

	for (unsigned int i = 0; i < DMASVC_MAX_RINGS; i++) {
		if (s->rings[i])
			ring_free(s->rings[i]);
		s->rings[i] = NULL;
	}
	s->nr_rings = 0;
	s->ring_hi = 0;
	s->ring_next = 0;
	s->inflight = 0;
	for (unsigned int i = 0; i < s->region_hi; i++) {
		struct dsvc_region *r = s->regions[i];

		if (!r || r->adopted)
			continue;
		/* keep_mem_* were recorded at REGION_ADD */
		r->mem->users--;
		r->mem = NULL;
		r->adopted = true;
		adopted++;
	}
	/*
	 * The memories leave the client's ids.  One a region mapped stays
	 * mapped, hidden (id 0, not counted), as the kernel keeps an adopted
	 * session's pages pinned: the model's areas point into it.  The
	 * others are closed.  session_teardown() closes the hidden ones.
	 */
	for (unsigned int i = 0; i < SESSION_MAX_MEMORIES; i++) {
		struct dsvc_memory *m = s->mems[i];
		bool used = false;

		if (!m || !m->id)
			continue;
		for (unsigned int k = 0; k < s->region_hi && !used; k++)
			used = s->regions[k] && s->regions[k]->adopted &&
			       gran_region_desc(s->regions[k]->gr)->mem_vaddr == m->vaddr;
		s->nr_mems--;
		s->registered_bytes -= m->size;
		if (used) {
			m->id = 0;
			continue;
		}
		mem_close(m);
		free(m);
		s->mems[i] = NULL;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->hello_done = false;
	s->hung_up = false;
	s->ctl_pending = false;
	s->orphan = true;
	s->resumed = false;
	s->region_phase = false;
	s->orphan_deadline_ns = dsvc_now_ns() + (uint64_t)d->opt->resume_grace_sec * 1000000000ull;
	session_usage_snapshot(s);
	dlog(d->log, DLOG_INFO, s->id, "test hook: the socket hung up: session orphaned, %u regions adopted",
	     adopted);
}
#endif

void session_log_tick(struct dsvc *d)
{
	for (unsigned int i = 0; i < d->session_hi; i++)
		if (d->sessions[i])
			d->sessions[i]->log_budget = SESSION_LOG_BUDGET;
	d->nr_log_uids = 0;
}
