/* SPDX-License-Identifier: MIT */
/*
 * limits.c - what every user of a space asks of its limits (struct
 * be_limits, backend.h) the same way: whether an IOVA span fits one
 * allowed range, and the ranges as text for a refusal.  Ranges are
 * inclusive at both ends (iommufd's convention).
 */
#include <stdio.h>
#include <string.h>

#include "dmasvc/backend.h"

bool be_limits_allow(const struct be_limits *lim, uint64_t iova, uint64_t last)
{
	if (lim->nr_ranges == 0)
		return true;
	for (uint32_t i = 0; i < lim->nr_ranges && i < BE_MAX_IOVA_RANGES; i++)
		if (iova >= lim->ranges[i].start && last <= lim->ranges[i].last)
			return true;
	return false;
}

void be_limits_format(const struct be_limits *lim, char *buf, size_t len)
{
	size_t used = 0;

	if (!len)
		return;
	buf[0] = '\0';
	if (lim->nr_ranges == 0)
		snprintf(buf, len, "any");
	for (uint32_t i = 0; i < lim->nr_ranges && i < BE_MAX_IOVA_RANGES; i++) {
		int n = snprintf(buf + used, len - used, "%s0x%llx-0x%llx", i ? " " : "",
				 (unsigned long long)lim->ranges[i].start,
				 (unsigned long long)lim->ranges[i].last);

		if (n < 0 || (size_t)n >= len - used) {
			if (len > 4)
				memcpy(buf + len - 4, "...", 4);
			return;
		}
		used += (size_t)n;
	}
}
