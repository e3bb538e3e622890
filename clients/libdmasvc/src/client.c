/* SPDX-License-Identifier: MIT */
/*
 * client.c - the client object and its control calls: connect / HELLO,
 * memories, regions, bitmap views, disconnect.
 *
 * Local ids (what the caller sees) are indices into c->mems / c->regions
 * and never change; each entry records the id the current service
 * instance gave it (svc id), which dmasvc_reconnect() refreshes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libdmasvc_priv.h"

#define CL_DEFAULT_SQ 256u
#define CL_DEFAULT_TIMEOUT_MS 10000
#define CL_MAX_IDS 65536u /* ids ever used per client: never reused (see region_remove) */

static void set_error(struct dmasvc_client *c, const char *what, int err)
{
	snprintf(c->last_error, sizeof(c->last_error), "%s: %s", what, strerror(-err));
}

/*
 * One HELLO on c->sock, RESUME with c->token when @resume.  A minor < 2
 * service answers 32 bytes: the rest of c->hello reads as zero (no token).
 * A RESUME is sent only to a service that gave a token, so minor >= 2.
 * Returns 0 (c->hello, c->token, c->resumed set) or -errno (the service's
 * refusal, e.g. -ESTALE, or a transport error).
 */
static int hello_call(struct dmasvc_client *c, bool resume)
{
	struct dmasvc_hello hello = {
		.major = DMASVC_PROTO_MAJOR,
		.minor = DMASVC_PROTO_MINOR,
		.flags = resume ? DMASVC_HELLO_RESUME : 0,
		.client_tag = c->opts.client_tag,
	};
	struct cl_reply r;
	int err;

	if (resume)
		memcpy(hello.token, c->token, sizeof(hello.token));
	err = cl_call_timed(c, c->opts.timeout_ms, DMASVC_CMD_HELLO, &hello, sizeof(hello), NULL, 0,
			    &r, DMASVC_HELLO_REPLY_V1_SIZE);
	if (err)
		return err;
	cl_reply_close_fds(&r);
	if (r.hdr.error)
		return -(int)r.hdr.error;
	/* The text follows the reply struct, whose size the agreed minor
	 * tells (a minor < 2 service sends 32 bytes). */
	memset(&c->hello, 0, sizeof(c->hello));
	memcpy(&c->hello, r.buf, DMASVC_HELLO_REPLY_V1_SIZE);
	if (c->hello.major != DMASVC_PROTO_MAJOR)
		return -EPROTO;
	if (c->hello.minor >= 2) {
		if (r.body_len < sizeof(c->hello))
			return -EPROTO;
		memcpy(&c->hello, r.buf, sizeof(c->hello));
	}
	memcpy(c->token, c->hello.token, sizeof(c->token));
	c->resumed = resume && (c->hello.flags & DMASVC_HELLO_RESUMED);
	return 0;
}

/* A connected socket to c->path, or c->given_fd once; -errno with last_error. */
static int session_socket(struct dmasvc_client *c)
{
	int fd;

	if (c->given_fd >= 0) {
		fd = c->given_fd;
		c->given_fd = -1;
		return fd;
	}
	if (!c->path[0]) {
		set_error(c, "connected through a socket fd: no path to connect again", -ENOTCONN);
		return -ENOTCONN;
	}
	fd = cl_socket_connect(c->path);
	if (fd < 0)
		set_error(c, c->path, fd);
	return fd;
}

int cl_session_open(struct dmasvc_client *c, bool resume)
{
	uint8_t any = 0;
	int fd, err;

	for (unsigned int i = 0; i < sizeof(c->token); i++)
		any |= c->token[i];
	c->resumed = false;
	fd = session_socket(c);
	if (fd < 0)
		return fd;
	c->sock = fd;
	err = resume && any ? hello_call(c, true) : -ESTALE;
	if (err == -ESTALE) {
		/* no session to resume (or no token): a fresh one, same connection */
		err = hello_call(c, false);
	} else if (err == -EINVAL || err == -EPROTO) {
		/*
		 * A service older than minor 2 refusing the RESUME flag.  Not a
		 * transport error (-ETIMEDOUT: a restarting service whose socket
		 * is there but not served yet, -ECONNRESET): a fresh session then
		 * would give up a session that may still be resumed; the caller
		 * retries.
		 */
		close(c->sock);
		c->sock = -1;
		fd = session_socket(c);
		if (fd < 0)
			return fd;
		c->sock = fd;
		err = hello_call(c, false);
	}
	if (err) {
		close(c->sock);
		c->sock = -1;
	}
	return err;
}

static void client_free(struct dmasvc_client *c)
{
	for (uint32_t i = 0; i < c->nmems; i++) {
		if (c->mems[i].live) {
			cl_memory_unmap(&c->mems[i]);
			close(c->mems[i].fd);
		}
	}
	for (uint32_t i = 0; i < c->nregions; i++) {
		if (c->regions[i]) {
			cl_bitmap_destroy(&c->regions[i]->populated);
			free(c->regions[i]);
		}
	}
	free(c->mems);
	free(c->regions);
	pthread_mutex_destroy(&c->state_lock);
	pthread_mutex_destroy(&c->ctl_lock);
	free(c);
}

/*
 * dmasvc_connect, dmasvc_connect_query_only (no queue) and dmasvc_connect_fd
 * (@fd >= 0, consumed: @socket_path is ignored).
 */
static int client_connect(const char *socket_path, int fd, const struct dmasvc_connect_opts *opts,
			  bool query_only, struct dmasvc_client **out)
{
	struct dmasvc_client *c;
	struct dmasvc_queue *q;
	const char *path = fd >= 0 ? "" : socket_path ? socket_path : DMASVC_DEFAULT_SOCKET;
	int err;

	if (!out || strlen(path) >= sizeof(c->path)) {
		if (fd >= 0)
			close(fd);
		return !out ? -EINVAL : -ENAMETOOLONG;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->ctl_lock, NULL);
	pthread_mutex_init(&c->state_lock, NULL);
	c->sock = -1;
	c->given_fd = fd;
	c->next_msg_id = 1;
	c->query_only = query_only;
	memcpy(c->path, path, strlen(path) + 1);
	if (opts)
		c->opts = *opts;
	if (!c->opts.sq_entries)
		c->opts.sq_entries = CL_DEFAULT_SQ;
	if (!c->opts.cq_entries)
		c->opts.cq_entries = 2 * c->opts.sq_entries;
	if (!c->opts.client_tag)
		c->opts.client_tag = (uint64_t)getpid();
	if (!c->opts.timeout_ms)
		c->opts.timeout_ms = CL_DEFAULT_TIMEOUT_MS;

	err = cl_session_open(c, false);
	if (err) {
		if (c->given_fd >= 0)
			close(c->given_fd);
		goto err_free;
	}
	if (query_only) {
		*out = c;
		return 0;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		err = -ENOMEM;
		goto err_close;
	}
	q->c = c;
	q->shared = true;
	pthread_mutex_init(&q->lock, NULL);
	err = cl_queue_setup(c, q, c->opts.sq_entries);
	if (err) {
		pthread_mutex_destroy(&q->lock);
		free(q);
		goto err_close;
	}
	c->defq = q;
	c->queues = q;
	*out = c;
	return 0;

err_close:
	close(c->sock);
err_free:
	client_free(c);
	return err;
}

int dmasvc_connect(const char *socket_path, const struct dmasvc_connect_opts *opts,
		   struct dmasvc_client **out)
{
	return client_connect(socket_path, -1, opts, false, out);
}

int dmasvc_connect_query_only(const char *socket_path, const struct dmasvc_connect_opts *opts,
			      struct dmasvc_client **out)
{
	return client_connect(socket_path, -1, opts, true, out);
}

int dmasvc_connect_fd(int sock_fd, const struct dmasvc_connect_opts *opts,
		      struct dmasvc_client **out)
{
	int fd = cl_socket_adopt(sock_fd);

	if (fd < 0)
		return fd;
	return client_connect(NULL, fd, opts, false, out);
}

static void queue_free(struct dmasvc_queue *q)
{
	cl_queue_teardown(q);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

void dmasvc_disconnect(struct dmasvc_client *c)
{
	struct dmasvc_queue *q, *next;

	if (!c)
		return;
	pthread_mutex_lock(&c->ctl_lock);
	if (c->sock >= 0) {
		/* BYE: the service unmaps everything; its error does not matter here. */
		(void)cl_call_simple(c, DMASVC_CMD_BYE, NULL, 0, NULL, 0, NULL, 0);
		close(c->sock);
		c->sock = -1;
	}
	for (q = c->queues; q; q = next) {
		next = q->next;
		queue_free(q);
	}
	c->queues = NULL;
	pthread_mutex_unlock(&c->ctl_lock);
	client_free(c);
}

const char *dmasvc_last_error(const struct dmasvc_client *c)
{
	return c ? c->last_error : "";
}

const char *dmasvc_last_service_error(const struct dmasvc_client *c)
{
	return c ? c->service_error : "";
}

/* ---- memories ------------------------------------------------------------ */

int cl_memory_send(struct dmasvc_client *c, struct cl_memory *m)
{
	struct dmasvc_memory_add req = { .size = m->size, .flags = m->flags };
	struct dmasvc_memory_add_reply rep = { 0 };
	int err;

	err = cl_call_simple(c, DMASVC_CMD_MEMORY_ADD, &req, sizeof(req), &m->fd, 1, &rep,
			     sizeof(rep));
	if (!err) {
		m->svc_id = rep.mem_id;
		m->falloc = rep.flags & DMASVC_MEMORY_ADDED_FALLOC;
	}
	return err;
}

void cl_region_pf_set(struct dmasvc_client *c, struct cl_region *r)
{
	const struct cl_memory *m = &c->mems[r->desc.mem_id];
	struct cl_pf pf = { .fd = -1, .fd_off = r->desc.mem_offset, .page = m->page,
			    .write = !(m->flags & DMASVC_MEMORY_READONLY) };

	if (m->map) {
		pf.map = (char *)m->map + r->desc.mem_offset;
		/* hugetlbfs keeps the advice (the service never takes its
		 * fallocate()d pages: no flag), so does a read-only memory */
		if (m->falloc && pf.write && m->page == 4096)
			pf.fd = m->fd;
	}
	pthread_mutex_lock(&c->state_lock);
	r->pf = pf;
	pthread_mutex_unlock(&c->state_lock);
}

/* Grow an array of @elem-byte entries to hold one more than *@n (ctl_lock). */
static int table_grow(void **arr, uint32_t n, size_t elem)
{
	void *p;

	if (n >= CL_MAX_IDS)
		return -ENOSPC;
	p = realloc(*arr, (n + 1) * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	return 0;
}

int dmasvc_memory_add(struct dmasvc_client *c, int fd, uint64_t size, uint32_t flags)
{
	struct cl_memory m = { .live = true, .size = size, .flags = flags };
	int err, id;

	if (!c)
		return -EINVAL;
	if (fd < 0 || size == 0)
		return cl_local_error(c, "memory_add: bad fd or size 0", -EINVAL);
	if (c->query_only)
		return cl_local_error(c, "memory_add on a query-only client", -EOPNOTSUPP);
	m.fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (m.fd < 0)
		return cl_local_error(c, "memory_add: dup of the memory fd", -errno);
	pthread_mutex_lock(&c->ctl_lock);
	err = table_grow((void **)&c->mems, c->nmems, sizeof(*c->mems));
	if (err)
		goto err_unlock;
	err = cl_memory_map(c, &m);
	if (err) {
		snprintf(c->last_error, sizeof(c->last_error),
			 "memory_add: mapping the memory to fault populates in (libdmasvc's prefault; "
			 "dmasvc_set_prefault(DMASVC_PREFAULT_CALLER) makes none): %s", strerror(-err));
		c->service_error[0] = '\0';
		goto err_unlock;
	}
	err = cl_memory_send(c, &m);
	if (err)
		goto err_unmap;
	id = (int)c->nmems;
	c->mems[c->nmems++] = m;
	pthread_mutex_unlock(&c->ctl_lock);
	return id;

err_unmap:
	cl_memory_unmap(&m);
err_unlock:
	pthread_mutex_unlock(&c->ctl_lock);
	close(m.fd);
	return err;
}

int dmasvc_memory_remove(struct dmasvc_client *c, uint32_t mem_id)
{
	struct dmasvc_memory_remove req = { 0 };
	struct cl_memory *m;
	int err;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->ctl_lock);
	err = -ENOENT;
	if (mem_id >= c->nmems || !c->mems[mem_id].live)
		goto out_unlock;
	m = &c->mems[mem_id];
	err = -EBUSY;
	for (uint32_t i = 0; i < c->nregions; i++)
		if (c->regions[i] && c->regions[i]->live && c->regions[i]->desc.mem_id == mem_id)
			goto out_unlock;
	req.mem_id = m->svc_id;
	err = cl_call_simple(c, DMASVC_CMD_MEMORY_REMOVE, &req, sizeof(req), NULL, 0, NULL, 0);
	if (!err || err == -ENOTCONN) {
		/* Gone from the service either way: forget it locally, and the
		 * fault-in runs of batches still staged in it (their regions
		 * are gone): they would fault into whatever is mapped or
		 * opened here next. */
		for (struct dmasvc_queue *q = c->queues; q && m->map; q = q->next)
			cl_queue_drop_prefault(q, m->map, m->size);
		cl_memory_unmap(m);
		close(m->fd);
		m->live = false;
		err = 0;
	}
out_unlock:
	pthread_mutex_unlock(&c->ctl_lock);
	return err;
}

/* ---- regions ------------------------------------------------------------- */

int cl_region_send(struct dmasvc_client *c, struct cl_region *r)
{
	const struct dmasvc_region_desc *d = &r->desc;
	struct dmasvc_region_add req = {
		.mem_id = c->mems[d->mem_id].svc_id,
		.flags = d->flags,
		.mem_offset = d->mem_offset,
		.size = d->size,
		.iova = d->iova,
		.granule = d->granule,
	};
	struct dmasvc_region_add_reply rep;
	int err;

	err = cl_call_simple(c, DMASVC_CMD_REGION_ADD, &req, sizeof(req), NULL, 0, &rep,
			     sizeof(rep));
	if (!err)
		r->svc_id = rep.region_id;
	return err;
}

int dmasvc_region_add(struct dmasvc_client *c, const struct dmasvc_region_desc *d)
{
	struct cl_region *r;
	int err, id;

	if (!c)
		return -EINVAL;
	if (!d)
		return cl_local_error(c, "region_add: no descriptor", -EINVAL);
	if (c->query_only)
		return cl_local_error(c, "region_add on a query-only client", -EOPNOTSUPP);
	err = cl_region_geom_check(d->mem_offset, d->size, d->iova, d->granule);
	if (err)
		return cl_local_error(c, err == -ERANGE ? "region_add: iova or mem_offset + size overflows"
						     : "region_add: size, granule or alignment", err);
	r = calloc(1, sizeof(*r));
	if (!r)
		return cl_local_error(c, "region_add", -ENOMEM);
	r->desc = *d;
	err = cl_bitmap_init(&r->populated, d->size / d->granule);
	if (err)
		goto err_free;
	pthread_mutex_lock(&c->ctl_lock);
	err = -ENOENT;
	if (d->mem_id >= c->nmems || !c->mems[d->mem_id].live)
		goto err_unlock;
	/* Queues read c->regions under state_lock only: grow it under that lock. */
	pthread_mutex_lock(&c->state_lock);
	err = table_grow((void **)&c->regions, c->nregions, sizeof(*c->regions));
	pthread_mutex_unlock(&c->state_lock);
	if (err)
		goto err_unlock;
	err = cl_region_send(c, r);
	if (err)
		goto err_unlock;
	/* The service checked that the region lies inside its memory. */
	cl_region_pf_set(c, r);
	r->live = true;
	id = (int)c->nregions;
	pthread_mutex_lock(&c->state_lock);
	c->regions[c->nregions++] = r;
	pthread_mutex_unlock(&c->state_lock);
	pthread_mutex_unlock(&c->ctl_lock);
	return id;

err_unlock:
	pthread_mutex_unlock(&c->ctl_lock);
	cl_bitmap_destroy(&r->populated);
err_free:
	free(r);
	return err;
}

int dmasvc_region_remove(struct dmasvc_client *c, uint32_t region_id)
{
	struct dmasvc_region_remove req = { 0 };
	struct cl_region *r;
	int err;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->ctl_lock);
	pthread_mutex_lock(&c->state_lock);
	r = cl_region_get(c, region_id);
	pthread_mutex_unlock(&c->state_lock);
	err = -ENOENT;
	if (!r)
		goto out_unlock;
	req.region_id = r->svc_id;
	err = cl_call_simple(c, DMASVC_CMD_REGION_REMOVE, &req, sizeof(req), NULL, 0, NULL, 0);
	if (!err || err == -ENOTCONN) {
		/*
		 * The entry stays, dead: ids are never reused, so a completion
		 * still in flight for it cannot land on a newer region.  Its
		 * bitmap is freed now.
		 */
		pthread_mutex_lock(&c->state_lock);
		r->live = false;
		cl_bitmap_destroy(&r->populated);
		pthread_mutex_unlock(&c->state_lock);
		err = 0;
	}
out_unlock:
	pthread_mutex_unlock(&c->ctl_lock);
	return err;
}

int64_t dmasvc_region_populated_bytes(struct dmasvc_client *c, uint32_t region_id)
{
	struct cl_region *r;
	int64_t bytes = -ENOENT;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->state_lock);
	r = cl_region_get(c, region_id);
	if (r)
		bytes = (int64_t)(cl_bitmap_weight(&r->populated) * r->desc.granule);
	pthread_mutex_unlock(&c->state_lock);
	return bytes;
}

int dmasvc_region_for_each_populated(struct dmasvc_client *c, uint32_t region_id,
				     int (*fn)(void *arg, uint64_t offset, uint64_t length),
				     void *arg)
{
	struct cl_region *r;
	uint64_t from = 0, first, count;
	int ret = 0;

	if (!c || !fn)
		return -EINVAL;
	/* fn runs under state_lock: it must not call back into this client. */
	pthread_mutex_lock(&c->state_lock);
	r = cl_region_get(c, region_id);
	if (!r)
		ret = -ENOENT;
	while (r && !ret && cl_bitmap_next_run(&r->populated, from, &first, &count)) {
		ret = fn(arg, first * r->desc.granule, count * r->desc.granule);
		from = first + count;
	}
	pthread_mutex_unlock(&c->state_lock);
	return ret;
}

struct dmasvc_queue *dmasvc_default_queue(struct dmasvc_client *c)
{
	return c ? c->defq : NULL;
}
