/* SPDX-License-Identifier: MIT */
/*
 * testhooks.c - parse the test-only environment knobs (testhooks_priv.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testhooks_priv.h"

static int parse_num(const char *s, size_t len, uint64_t *out)
{
	char buf[32];
	char *end;

	if (len == 0 || len >= sizeof(buf) || *s == '-')
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*out = strtoull(buf, &end, 0);
	return errno || *end ? -EINVAL : 0;
}

/* "A-L" of @len bytes at @val into *@a, *@l.  Returns 0 or -EINVAL. */
static int parse_range(const char *val, size_t vlen, uint64_t *a, uint64_t *l)
{
	const char *dash = memchr(val, '-', vlen);

	if (!dash || parse_num(val, (size_t)(dash - val), a) ||
	    parse_num(dash + 1, vlen - (size_t)(dash - val) - 1, l))
		return -EINVAL;
	return 0;
}

int testhook_parse_soft_faults(const char *s, struct soft_iommu_faults *f, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	while (s && *s) {
		const char *comma = strchr(s, ','), *eq;
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		const char *val;
		size_t klen, vlen;
		uint64_t v = 0, v2 = 0;
		int bad = 0;

		eq = memchr(s, '=', len);
		if (!eq)
			goto err;
		klen = (size_t)(eq - s);
		val = eq + 1;
		vlen = len - klen - 1;
		if (klen == 9 && !strncmp(s, "map_range", 9)) {
			if (parse_range(val, vlen, &v, &v2))
				goto err;
			f->map_fail_start = v;
			f->map_fail_last = v2;
		} else if (parse_num(val, vlen, &v)) {
			goto err;
		} else if (klen == 12 && !strncmp(s, "map_fail_nth", 12)) {
			f->map_fail_nth = v;
		} else if (klen == 9 && !strncmp(s, "map_errno", 9)) {
			f->map_fail_errno = (int)v;
			bad = v == 0 || v > 4095;
		} else if (klen == 15 && !strncmp(s, "map_range_errno", 15)) {
			f->map_range_errno = (int)v;
			bad = v == 0 || v > 4095;
		} else if (klen == 14 && !strncmp(s, "unmap_fail_nth", 14)) {
			f->unmap_fail_nth = v;
		} else if (klen == 16 && !strncmp(s, "unmap_fail_count", 16)) {
			f->unmap_fail_count = v;
		} else if (klen == 12 && !strncmp(s, "map_delay_us", 12)) {
			f->map_delay_us = v;
		} else if (klen == 16 && !strncmp(s, "unmap_us_per_mib", 16)) {
			f->unmap_us_per_mib = v;
		} else if (klen == 11 && !strncmp(s, "unmap_errno", 11)) {
			f->unmap_fail_errno = (int)v;
			bad = v == 0 || v > 4095;
		} else {
			goto err;
		}
		if (bad)
			goto err;
		s = comma ? comma + 1 : NULL;
		continue;
err:
		snprintf(err, errlen, "%s: bad item '%.*s'", TESTHOOK_SOFT_FAULTS_ENV, (int)len, s);
		return -EINVAL;
	}
	return 0;
}

int testhook_parse_soft_devices(const char *s, struct soft_iommu_config *c, char *err, size_t errlen)
{
	const char *comma = strchr(s, ',');
	size_t len = comma ? (size_t)(comma - s) : strlen(s);

	c->nr_dev_resv = 0;
	if (parse_num(s, len, &c->attach_us))
		goto err;
	while (comma) {
		struct be_iova_range *r = &c->dev_resv[c->nr_dev_resv];

		s = comma + 1;
		comma = strchr(s, ',');
		len = comma ? (size_t)(comma - s) : strlen(s);
		if (len < 5 || strncmp(s, "resv=", 5) || c->nr_dev_resv == SOFT_IOMMU_MAX_DEV_RESV ||
		    parse_range(s + 5, len - 5, &r->start, &r->last) || r->last < r->start)
			goto err;
		c->nr_dev_resv++;
	}
	return 0;
err:
	snprintf(err, errlen, "%s: bad item '%.*s'", TESTHOOK_SOFT_DEVICES_ENV, (int)len, s);
	return -EINVAL;
}
