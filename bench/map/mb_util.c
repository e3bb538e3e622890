/* SPDX-License-Identifier: MIT */
/*
 * mb_util.c - map-bench helpers: clock, /proc readers, memfds, medians and
 * percentiles, size parsing and printing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mb.h"

uint64_t mb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The "<field>: N kB" line of @path, in bytes, or -errno. */
static int64_t kb_field(const char *path, const char *field)
{
	size_t flen = strlen(field);
	char line[256];
	int64_t ret = -ENOENT;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			ret = strtoll(line + flen + 1, NULL, 10) * 1024;
			break;
		}
	}
	fclose(f);
	return ret;
}

int64_t mb_proc_bytes(pid_t pid, const char *field)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	return kb_field(path, field);
}

int64_t mb_meminfo_bytes(const char *field)
{
	return kb_field("/proc/meminfo", field);
}

/* mb_memfd() and mb_memfd_hugetlb(), @flags added to memfd_create's. */
static int memfd_flags(uint64_t size, unsigned int flags)
{
	int fd = memfd_create(MB_MEMFD_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING | flags);
	int ret;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int mb_memfd(uint64_t size)
{
	return memfd_flags(size, 0);
}

int mb_memfd_hugetlb(uint64_t size)
{
	return memfd_flags(size, MFD_HUGETLB);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

uint64_t mb_percentile(uint64_t *v, size_t n, double pct)
{
	size_t idx;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	/* nearest rank: the smallest value with >= pct % of samples at or below */
	idx = (size_t)((pct / 100.0) * (double)n + 0.999999);
	if (idx < 1)
		idx = 1;
	if (idx > n)
		idx = n;
	return v[idx - 1];
}

uint64_t mb_median_u64(uint64_t *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double mb_median_d(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

uint64_t mb_parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	uint64_t mul = 1;

	if (end == s)
		return 0;
	switch (*end) {
	case 'k': case 'K': mul = KiB; end++; break;
	case 'm': case 'M': mul = MiB; end++; break;
	case 'g': case 'G': mul = GiB; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || v == 0 || v > (UINT64_MAX / mul))
		return 0;
	return v * mul;
}

const char *mb_fmt_size(char *buf, uint64_t b)
{
	if (b >= GiB && b % GiB == 0)
		snprintf(buf, 24, "%llu GiB", (unsigned long long)(b / GiB));
	else if (b >= MiB && b % MiB == 0)
		snprintf(buf, 24, "%llu MiB", (unsigned long long)(b / MiB));
	else if (b >= KiB && b % KiB == 0)
		snprintf(buf, 24, "%llu KiB", (unsigned long long)(b / KiB));
	else
		snprintf(buf, 24, "%llu B", (unsigned long long)b);
	return buf;
}

enum soft_pin_mode mb_soft_pin(void)
{
	const char *e = getenv("DMASVC_TEST_SOFT_PIN");

	if (e && !strcmp(e, "mlock"))
		return SOFT_PIN_MLOCK;
	return e && !strcmp(e, "io_uring") ? SOFT_PIN_IO_URING : SOFT_PIN_AUTO;
}
