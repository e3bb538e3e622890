/* SPDX-License-Identifier: MIT */
/*
 * test_keep.c - the kept session record (session/keep.c, docs/restart.md):
 * a round trip of every field, and hostile records refused with a reason
 * that names the field: truncated, bad magic, wrong version, a size that
 * does not match the counts, counts over the caps, a region that wraps,
 * leaves its memory or overlaps another, repeated ids, unknown flags; and
 * the adoption of fds with names that are not a complete keep set (closed,
 * nothing adopted) on the software model, which keeps nothing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "keep_priv.h"

#define MiB (1ull << 20)

static struct keep_record *rec_new(void)
{
	struct keep_record *r = calloc(1, sizeof(*r));

	cr_assert(r);
	r->session_id = 7;
	r->uid = 1000;
	r->gid = 1001;
	r->ioas_id = 2;
	for (int i = 0; i < DMASVC_TOKEN_LEN; i++)
		r->token[i] = (uint8_t)(0xa0 + i);
	r->client_tag = 0x1122334455667788ull;
	r->minor = 2;
	r->nr_devices = 2;
	r->devices[0] = (struct keep_device){ .id = 1, .iommufd_devid = 3, .flags = KEEP_DEV_CFG };
	r->devices[1] = (struct keep_device){ .id = 4, .iommufd_devid = 5, .flags = 0 };
	r->nr_regions = 2;
	r->regions[0] = (struct keep_region){ .id = (1u << ID_SLOT_BITS) | 0, .flags = 0,
					      .iova = 0, .size = 64 * MiB, .granule = 2 * MiB,
					      .mem_offset = 0, .mem_dev = 0x1d, .mem_ino = 4242,
					      .mem_size = 128 * MiB };
	r->regions[1] = (struct keep_region){ .id = (3u << ID_SLOT_BITS) | 5,
					      .flags = DMASVC_REGION_READONLY, .iova = 1ull << 32,
					      .size = 64 * MiB, .granule = 4096, .mem_offset = 64 * MiB,
					      .mem_dev = 0x1d, .mem_ino = 4242, .mem_size = 128 * MiB };
	return r;
}

/* Encode @r into a fresh buffer; *@len set. */
static uint8_t *enc(const struct keep_record *r, size_t *len)
{
	size_t cap = keep_record_size(r->nr_devices, r->nr_regions);
	uint8_t *b = malloc(cap);
	long n;

	cr_assert(b);
	n = keep_record_encode(r, b, cap);
	cr_assert_eq(n, (long)cap);
	*len = (size_t)n;
	return b;
}

/* Decode expecting @want; returns the reason (static). */
static const char *dec_err(const uint8_t *b, size_t len, int want)
{
	static char err[DMASVC_TEXT_MAX];
	struct keep_record *out = calloc(1, sizeof(*out));

	err[0] = 0;
	cr_assert_eq(keep_record_decode(b, len, KEEP_MAX_REGIONS, out, err, sizeof(err)), want,
		     "%s", err);
	free(out);
	cr_assert(err[0], "a refusal says why");
	return err;
}

/* Encode @r, decode, expect @want and @what in the reason. */
static void refused(struct keep_record *r, int want, const char *what)
{
	size_t len;
	uint8_t *b = enc(r, &len);
	const char *e = dec_err(b, len, want);

	cr_assert(strstr(e, what), "reason '%s' lacks '%s'", e, what);
	free(b);
}

Test(keep, round_trip)
{
	struct keep_record *r = rec_new(), *out = calloc(1, sizeof(*out));
	char err[DMASVC_TEXT_MAX];
	size_t len;
	uint8_t *b = enc(r, &len);

	cr_assert_eq(len, KEEP_HDR_SIZE + 2 * KEEP_DEV_SIZE + 2 * KEEP_REGION_SIZE);
	cr_assert_eq(memcmp(b, "DMASVCK1", 8), 0);
	cr_assert_eq(b[16], 7, "session id little-endian at offset 16");
	cr_assert_eq(keep_record_decode(b, len, KEEP_MAX_REGIONS, out, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(memcmp(out, r, offsetof(struct keep_record, regions)), 0, "header and devices");
	cr_assert_eq(memcmp(out->regions, r->regions, 2 * sizeof(r->regions[0])), 0, "regions");
	/* Trailing bytes after the record's size are ignored (the memfd may be
	 * longer only if a truncate failed; size is what counts). */
	cr_assert_eq(keep_record_encode(r, b, len - 1), -ENOSPC);
	free(b);
	free(r);
	free(out);
}

Test(keep, truncated_and_bad_header)
{
	struct keep_record *r = rec_new();
	size_t len;
	uint8_t *b = enc(r, &len);

	for (size_t cut = 0; cut < len; cut += 7)
		dec_err(b, cut, cut < KEEP_HDR_SIZE ? -EBADMSG : -EBADMSG);
	b[0] = 'X';
	cr_assert(strstr(dec_err(b, len, -EBADMSG), "magic"));
	b[0] = 'D';
	b[8] = 2; /* version */
	cr_assert(strstr(dec_err(b, len, -EINVAL), "version 2"));
	b[8] = 1;
	b[12]++; /* size */
	cr_assert(strstr(dec_err(b, len, -EBADMSG), "size"));
	free(b);
	free(r);
}

Test(keep, counts_over_caps)
{
	struct keep_record *r = rec_new();
	size_t len;
	uint8_t *b = enc(r, &len);
	struct keep_record *out = calloc(1, sizeof(*out));
	char err[DMASVC_TEXT_MAX];

	/* The session's region cap is below the record's count. */
	cr_assert_eq(keep_record_decode(b, len, 1, out, err, sizeof(err)), -E2BIG);
	cr_assert(strstr(err, "2 regions, the cap is 1"), "%s", err);
	/* A count far over the table: refused before any region is read. */
	b[62] = 0xff, b[63] = 0xff, b[64] = 0xff, b[65] = 0x7f;
	cr_assert(strstr(dec_err(b, len, -E2BIG), "regions"));
	b[62] = 2, b[63] = b[64] = b[65] = 0;
	b[58] = KEEP_MAX_DEVICES + 1;
	cr_assert(strstr(dec_err(b, len, -E2BIG), "devices"));
	free(b);
	free(out);
	free(r);
}

Test(keep, bad_regions)
{
	struct keep_record *r = rec_new();

	r->regions[1].iova = 32 * MiB; /* inside region 0 */
	refused(r, -EINVAL, "overlap");
	free(r);
	r = rec_new();
	r->regions[1].iova = UINT64_MAX - MiB + 1 - 4095; /* aligned to 4K, wraps */
	r->regions[1].iova &= ~4095ull;
	refused(r, -EINVAL, "wraps");
	free(r);
	r = rec_new();
	r->regions[1].mem_size = 64 * MiB; /* [64 MiB, +64 MiB) outside */
	refused(r, -EINVAL, "outside its memory");
	free(r);
	r = rec_new();
	r->regions[1].granule = 3 * 4096;
	refused(r, -EINVAL, "power of two");
	free(r);
	r = rec_new();
	r->regions[0].size = 0;
	refused(r, -EINVAL, "granules");
	free(r);
	r = rec_new();
	r->regions[1].flags = 0x80;
	refused(r, -EINVAL, "unknown flags");
	free(r);
	r = rec_new();
	r->regions[1].id = r->regions[0].id; /* duplicate id (same slot) */
	refused(r, -EINVAL, "slot");
	free(r);
	r = rec_new();
	r->regions[1].id = (9u << ID_SLOT_BITS) | 0; /* other id, same slot */
	refused(r, -EINVAL, "slot 0 is used twice");
	free(r);
	r = rec_new();
	r->regions[1].id = 0;
	refused(r, -EINVAL, "not a valid id");
	free(r);
}

Test(keep, bad_devices)
{
	struct keep_record *r = rec_new();

	r->devices[1].id = 1;
	refused(r, -EINVAL, "repeated");
	free(r);
	r = rec_new();
	r->devices[1].id = KEEP_MAX_DEVICES + 1;
	refused(r, -EINVAL, "out of 1..");
	free(r);
	r = rec_new();
	r->devices[1].iommufd_devid = 3;
	refused(r, -EINVAL, "share iommufd device id 3");
	free(r);
	r = rec_new();
	r->devices[1].flags = 2;
	refused(r, -EINVAL, "unknown flags");
	free(r);
	r = rec_new();
	r->session_id = 0;
	refused(r, -EINVAL, "session id 0");
	free(r);
}

/* Random bytes never crash the decoder and never pass as a record. */
Test(keep, random_bytes)
{
	struct keep_record *out = calloc(1, sizeof(*out));
	char err[DMASVC_TEXT_MAX];
	uint8_t b[1024];

	srand(14);
	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)rand() % sizeof(b);

		for (size_t j = 0; j < len; j++)
			b[j] = (uint8_t)rand();
		if (len >= 8 && i % 2)
			memcpy(b, KEEP_MAGIC, 8);
		if (len >= 12 && i % 4 == 1)
			b[8] = 1, b[9] = b[10] = b[11] = 0;
		cr_assert_neq(keep_record_decode(b, len, KEEP_MAX_REGIONS, out, err, sizeof(err)), 0);
	}
	free(out);
}

Test(keep, names)
{
	cr_assert(keep_name_is_ours("dmasvc-s1-state"));
	cr_assert(!keep_name_is_ours("listen"));
	cr_assert(!keep_name_is_ours("dmasvc.socket"));
	cr_assert(!keep_name_is_ours(NULL));
}
