/* SPDX-License-Identifier: MIT */
/*
 * resume.c - a client resumes its session after a service restart
 * (docs/restart.md, docs/protocol.md "Resume"): tokens, finding the orphan
 * session a token names, and the region phase (REGION_ADD claims the
 * adopted regions; the first RING_SETUP removes the unclaimed ones).
 *
 * Vocabulary: an "orphan" is a session adopted from a previous instance
 * (or, in test builds, made by DMASVC_TEST_ORPHAN_ON_HANGUP) that no client
 * has resumed yet; an "adopted" region is one of its regions not yet
 * claimed: no memory, granule state as the kernel holds it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "keep_priv.h"
#include "session_priv.h"

bool session_resumable(const struct dsvc *d)
{
	return d->ops->space_keep != NULL || d->test_orphan_on_hangup;
}

void session_token_issue(struct dsvc *d, struct dsvc_session *s)
{
	ssize_t n;

	memset(s->token, 0, sizeof(s->token));
	if (!session_resumable(d))
		return;
	n = getrandom(s->token, sizeof(s->token), 0);
	if (n != (ssize_t)sizeof(s->token)) {
		dlog_err(d->log, s->id, n < 0 ? -errno : -EIO,
			 "getrandom for the session token (the session cannot be resumed)");
		memset(s->token, 0, sizeof(s->token));
	}
}

struct dsvc_session *session_orphan_match(struct dsvc *d, const uint8_t token[DMASVC_TOKEN_LEN],
					  uid_t uid)
{
	struct dsvc_session *found = NULL;
	uint8_t any = 0;

	for (unsigned int i = 0; i < DMASVC_TOKEN_LEN; i++)
		any |= token[i];
	if (!any)
		return NULL;
	for (unsigned int i = 0; i < d->session_hi; i++) {
		struct dsvc_session *s = d->sessions[i];
		uint8_t diff = 0;

		if (!s || !s->orphan || s->closing)
			continue;
		for (unsigned int k = 0; k < DMASVC_TOKEN_LEN; k++) /* constant time */
			diff |= (uint8_t)(s->token[k] ^ token[k]);
		if (!diff && s->cred.uid == uid)
			found = s;
	}
	return found;
}

/* @r leaves @s: unmapped (counted) and forgotten, with the log line naming @why. */
static void adopted_remove(struct dsvc *d, struct dsvc_session *s, struct dsvc_region *r,
			   const char *why)
{
	uint64_t iova = gran_region_iova(r->gr), size = gran_region_size(r->gr);
	uint64_t mapped = gran_region_mapped_bytes(r->gr);

	dlog(d->log, DLOG_WARN, s->id,
	     "resume: region %u [0x%" PRIx64 ", 0x%" PRIx64 ") %s: unmapped (0x%" PRIx64
	     " bytes were mapped)", r->id, iova, iova + size, why, mapped);
	s->ctr.unmap_calls += session_region_unmap(d, s, r);
	session_region_forget(s, r);
}

bool session_region_claim(struct dsvc *d, struct dsvc_session *s, struct dsvc_memory *m,
			  const struct dmasvc_region_add *req, uint32_t *id)
{
	uint64_t last = req->iova + req->size - 1; /* no overflow: checked by ctl_decode */

	for (unsigned int i = 0; i < s->region_hi; i++) {
		struct dsvc_region *r = s->regions[i];
		uint64_t iova, size;

		if (!r || !r->adopted)
			continue;
		iova = gran_region_iova(r->gr);
		size = gran_region_size(r->gr);
		if (req->iova > iova + size - 1 || iova > last)
			continue;
		if (iova == req->iova && size == req->size &&
		    gran_region_granule(r->gr) == req->granule && r->flags == req->flags &&
		    r->keep_mem_dev == m->dev && r->keep_mem_ino == m->ino &&
		    r->keep_mem_offset == req->mem_offset &&
		    !((req->granule | req->mem_offset) & (m->page_size - 1)) &&
		    (!m->readonly || (req->flags & DMASVC_REGION_READONLY)) &&
		    gran_region_set_memory(r->gr, m->vaddr, m->fd, m->size) == 0) {
			r->mem = m;
			m->users++;
			r->adopted = false;
			*id = r->id;
			dlog(d->log, DLOG_DEBUG, s->id,
			     "resume: region %u claimed by memory %u (0x%" PRIx64 " bytes mapped kept)",
			     r->id, m->id, gran_region_mapped_bytes(r->gr));
			keep_session_write(d, s);
			return true;
		}
		adopted_remove(d, s, r, "does not match the record");
	}
	return false;
}

void session_region_phase_end(struct dsvc *d, struct dsvc_session *s)
{
	s->region_phase = false;
	for (unsigned int i = 0; i < s->region_hi; i++)
		if (s->regions[i] && s->regions[i]->adopted)
			adopted_remove(d, s, s->regions[i], "was not added again before the first RING_SETUP");
	session_usage_snapshot(s);
	keep_session_write(d, s);
}
