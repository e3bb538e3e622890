/* SPDX-License-Identifier: MIT */
/*
 * iommufd_test_priv.h - what tests/vm reads back from the iommufd backend
 * to prove what the kernel did; no production caller, so not in the
 * public backend_kernel.h.  Private to backend/ and its tests.
 */
#ifndef DMASVC_IOMMUFD_TEST_PRIV_H
#define DMASVC_IOMMUFD_TEST_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "dmasvc/backend.h"

/*
 * be_iommufd_get_option - read an iommufd option back (IOMMU_OPTION_OP_GET).
 * @space: a space of an iommufd backend; @option: IOMMU_OPTION_*; for the
 * per-IOAS option (HUGE_PAGES) the space's IOAS is asked, for the global
 * one (RLIMIT_MODE) object 0.  Returns 0 and sets *@val, or -errno.
 */
int be_iommufd_get_option(struct be_space *space, uint32_t option,
			  uint64_t *val);

/*
 * be_iommufd_map_file_used - whether map() of this backend has used
 * IOMMU_IOAS_MAP_FILE successfully at least once (kernels >= 6.13; on 6.12
 * the ioctl is unknown, ENOTTY, and map() falls back to IOMMU_IOAS_MAP).
 */
bool be_iommufd_map_file_used(struct be_space *space);

/* be_iommufd_ioas_id - the IOAS id of @space (in its own iommufd context). */
uint32_t be_iommufd_ioas_id(struct be_space *space);

#endif /* DMASVC_IOMMUFD_TEST_PRIV_H */
