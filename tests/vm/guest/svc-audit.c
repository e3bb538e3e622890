// SPDX-License-Identifier: MIT
/*
 * svc-audit.c - compare the service's AUDIT of a region with the guest
 * test's own per-granule record, and read the daemon's pin counters (see
 * svc-audit.h).  Offsets are relative to the region's iova; "end" is
 * exclusive.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dmasvc/proto.h"
#include "svc-audit.h"

#define MAX_EXTENTS 4096
#define MAX_GRANULES 65536

int svc_audit_check(struct dmasvc_client *c, int region_id, const struct dmasvc_region_desc *d,
		    const bool *pop, char *why, size_t whylen)
{
	static struct dmasvc_audit_extent ext[MAX_EXTENTS];
	static bool seen[MAX_GRANULES];
	uint64_t n_gran = d->size / d->granule;
	int n;

	if (n_gran > MAX_GRANULES) {
		snprintf(why, whylen, "region of %" PRIu64 " granules is too big to check", n_gran);
		return -EINVAL;
	}
	n = dmasvc_query(c, DMASVC_QUERY_AUDIT, 0, (uint32_t)region_id, ext, sizeof(ext[0]),
			 MAX_EXTENTS);
	if (n < 0) {
		snprintf(why, whylen, "AUDIT query: %s (%s)", strerror(-n), dmasvc_last_error(c));
		return n;
	}
	memset(seen, 0, n_gran * sizeof(seen[0]));
	for (int i = 0; i < n; i++) {
		uint64_t off = ext[i].iova - d->iova, end = off + ext[i].length;

		if (ext[i].state != DMASVC_AUDIT_OK || ext[i].iova < d->iova ||
		    off % d->granule || ext[i].length % d->granule || end < off ||
		    end > d->size) {
			snprintf(why, whylen, "extent 0x%" PRIx64 "+0x%" PRIx64 " state %u",
				 ext[i].iova, ext[i].length, ext[i].state);
			return -1;
		}
		for (uint64_t o = off; o < end; o += d->granule)
			seen[o / d->granule] = true;
	}
	for (uint64_t i = 0; i < n_gran; i++) {
		if (seen[i] != pop[i]) {
			snprintf(why, whylen, "granule %" PRIu64 ": audit %d, populated %d", i,
				 seen[i], pop[i]);
			return -1;
		}
	}
	return n;
}

uint64_t svc_status_bytes(pid_t pid, const char *key)
{
	char path[64], line[256];
	uint64_t v = UINT64_MAX;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtoull(line + strlen(key), NULL, 10) * 1024;
	fclose(f);
	return v;
}

int svc_steal_fd(pid_t daemon, const char *want, int skip)
{
	char dir[64], path[320], link[128];
	int pidfd, fd = -ENOENT;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)daemon);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && fd == -ENOENT) {
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, want) || skip-- > 0)
			continue;
		pidfd = (int)syscall(SYS_pidfd_open, daemon, 0);
		if (pidfd < 0) {
			fd = -errno;
			break;
		}
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, atoi(de->d_name), 0);
		if (fd < 0)
			fd = -errno;
		close(pidfd);
	}
	closedir(d);
	return fd;
}

int64_t svc_foll_pin_pages(void)
{
	FILE *f = fopen("/proc/vmstat", "r");
	char key[64];
	unsigned long long v;
	int64_t acq = -1, rel = -1;

	if (!f)
		return -1;
	while (fscanf(f, "%63s %llu", key, &v) == 2) {
		if (!strcmp(key, "nr_foll_pin_acquired"))
			acq = (int64_t)v;
		else if (!strcmp(key, "nr_foll_pin_released"))
			rel = (int64_t)v;
	}
	fclose(f);
	return acq < 0 || rel < 0 ? -1 : acq - rel;
}
