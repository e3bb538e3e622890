/* SPDX-License-Identifier: MIT */
/*
 * ring_setup.c - sizing, formatting, creating and attaching a ring memfd.
 *
 * Vocabulary: "format" writes an empty ring into memory nobody else sees
 * yet; "attach" accepts memory someone else formatted, after comparing a
 * private copy of its header with the values agreed over the socket; "map"
 * is mmap + attach.  Layout: ring_layout.h.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dmasvc/ring.h>

/* Shared words need natural alignment for the atomics; lines need line alignment. */
static bool mem_ok(const void *mem)
{
	return mem && ((uintptr_t)mem & (RING_CACHE_LINE - 1)) == 0;
}

/* A queue size the protocol allows: a power of two in [MIN, MAX]. */
static bool entries_ok(uint32_t n)
{
	return n >= RING_MIN_ENTRIES && n <= RING_MAX_ENTRIES && (n & (n - 1)) == 0;
}

__attribute__((cold)) ssize_t ring_mem_size(uint32_t sq_entries, uint32_t cq_entries)
{
	size_t bytes, page = (size_t)sysconf(_SC_PAGESIZE);

	if (!entries_ok(sq_entries) || !entries_ok(cq_entries))
		return -EINVAL;
	/* bounded entries: at most 0x480 + 3 MiB, no overflow possible */
	bytes = RING_SQES_OFF + (size_t)sq_entries * sizeof(struct dmasvc_sqe) +
		(size_t)cq_entries * sizeof(struct dmasvc_cqe);
	return (ssize_t)((bytes + page - 1) & ~(page - 1));
}

/* The header an empty ring with @p has; @p already checked. */
static void hdr_expected(struct ring_hdr *h, const struct ring_params *p)
{
	memset(h, 0, sizeof(*h));
	h->magic = RING_MAGIC;
	h->version = RING_VERSION;
	h->hdr_size = (uint32_t)RING_SQES_OFF;
	h->sq_entries = p->sq_entries;
	h->cq_entries = p->cq_entries;
	h->first_index = p->first_index;
	h->size = (uint64_t)ring_mem_size(p->sq_entries, p->cq_entries);
	h->sqes_off = RING_SQES_OFF;
	h->cqes_off = RING_SQES_OFF + (uint64_t)p->sq_entries * sizeof(struct dmasvc_sqe);
}

__attribute__((cold)) int ring_format(void *mem, size_t size, const struct ring_params *p)
{
	struct ring_shm *shm = mem;
	ssize_t need = ring_mem_size(p->sq_entries, p->cq_entries);

	if (need < 0)
		return (int)need;
	if (!mem_ok(mem) || size < (size_t)need)
		return -EINVAL;
	/* nobody else sees @mem yet: plain stores are enough */
	memset(mem, 0, size);
	hdr_expected(&shm->hdr, p);
	shm->sq.head.value = shm->sq.tail.value = p->first_index;
	shm->cq.head.value = shm->cq.tail.value = p->first_index;
	return 0;
}

__attribute__((cold)) int ring_attach(struct ring_mapping *m, void *mem, size_t size,
				      const struct ring_params *p)
{
	struct ring_hdr want, got;
	ssize_t need = ring_mem_size(p->sq_entries, p->cq_entries);

	if (need < 0)
		return (int)need;
	if (!mem_ok(mem) || size < (size_t)need)
		return -EINVAL;
	/* one copy; the comparison looks only at the copy */
	memcpy(&got, mem, sizeof(got));
	hdr_expected(&want, p);
	if (memcmp(&got, &want, sizeof(want)) != 0)
		return -EPROTO;
	*m = (struct ring_mapping){
		.base = mem,
		.size = (size_t)need,
		.params = *p,
		.owned = false,
	};
	return 0;
}

__attribute__((cold)) int ring_create(const struct ring_params *p)
{
	ssize_t size = ring_mem_size(p->sq_entries, p->cq_entries);
	void *mem;
	int fd, ret;

	if (size < 0)
		return (int)size;
	fd = memfd_create("dmasvc-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, size) < 0) {
		ret = -errno;
		goto err_close;
	}
	mem = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		ret = -errno;
		goto err_close;
	}
	ret = ring_format(mem, (size_t)size, p);
	munmap(mem, (size_t)size);
	if (ret < 0)
		goto err_close;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		ret = -errno;
		goto err_close;
	}
	return fd;

err_close:
	close(fd);
	return ret;
}

__attribute__((cold)) int ring_map(struct ring_mapping *m, int memfd, const struct ring_params *p)
{
	ssize_t size = ring_mem_size(p->sq_entries, p->cq_entries);
	struct stat st;
	void *mem;
	int ret;

	if (size < 0)
		return (int)size;
	if (fstat(memfd, &st) < 0)
		return -errno;
	if (st.st_size != (off_t)size)
		return -EPROTO;
	mem = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED)
		return -errno;
	ret = ring_attach(m, mem, (size_t)size, p);
	if (ret < 0)
		goto err_unmap;
	m->owned = true;
	return 0;

err_unmap:
	munmap(mem, (size_t)size);
	return ret;
}

void ring_unmap(struct ring_mapping *m)
{
	if (m->owned && m->base)
		munmap(m->base, m->size);
	*m = (struct ring_mapping){ 0 };
}

__attribute__((cold)) int ring_fds_create(struct ring_fds *fds, const struct ring_params *p)
{
	int ret;

	*fds = (struct ring_fds){ .memfd = -1, .doorbell = -1, .completion = -1 };
	ret = ring_create(p);
	if (ret < 0)
		return ret;
	fds->memfd = ret;
	ret = ring_eventfd_open(true);
	if (ret < 0)
		goto err_close;
	fds->doorbell = ret;
	ret = ring_eventfd_open(true);
	if (ret < 0)
		goto err_close;
	fds->completion = ret;
	return 0;

err_close:
	ring_fds_close(fds);
	return ret;
}

void ring_fds_close(struct ring_fds *fds)
{
	int *all[] = { &fds->memfd, &fds->doorbell, &fds->completion };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (*all[i] >= 0)
			close(*all[i]);
		*all[i] = -1;
	}
}
