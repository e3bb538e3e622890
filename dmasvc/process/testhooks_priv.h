/* SPDX-License-Identifier: MIT */
/*
 * testhooks_priv.h - test-only knobs read from the environment, compiled in
 * only with -Dfault_injection=true (DMASVC_FAULT_INJECTION).  Never in
 * --help: production runs must not depend on them.
 *
 * DMASVC_TEST_SOFT_FAULTS (software model only): comma-separated
 *   map_fail_nth=N      the Nth map() call fails
 *   map_errno=E         its errno (default EIO)
 *   map_range=A-L       maps touching IOVA [A, L] fail (hex or decimal)
 *   map_range_errno=E   their errno (default EIO)
 *   unmap_fail_nth=N    the Nth unmap() call fails
 *   unmap_fail_count=C  and the C - 1 calls after it (default 1)
 *   unmap_errno=E       its errno (default EIO)
 *   map_delay_us=N      every map() call first sleeps N us
 *   unmap_us_per_mib=N  unmap() sleeps N us per MiB it unmapped
 *   (the last two make an operation long deterministically: tests of what
 *   must not wait for it)
 * DMASVC_TEST_SOFT_DEVICES=N[,resv=A-L]... (software model only): the model
 *   accepts DEVICE_ATTACH of any fd (a model device that protects nothing),
 *   each attach taking N us, as iommufd's attach pins every existing area;
 *   each resv=A-L (at most SOFT_IOMMU_MAX_DEV_RESV) is IOVA the device
 *   reserves while attached, like VT-d's MSI window 0xfee00000-0xfeefffff.
 * DMASVC_TEST_ASYNC_ALL=1: every burst with events runs on the session's
 *   executor thread, however small (the executor paths under test).
 * DMASVC_TEST_ORPHAN_ON_HANGUP=1: sessions get resume tokens on any backend
 *   (the model too), and a session whose socket hangs up becomes an orphan
 *   instead of being torn down, as adoption after a restart makes it
 *   (session_orphan_for_test): resume, the region claim and replay repairs
 *   are tested on the host without a kernel.
 * DMASVC_TEST_NO_HOLE_GUARD=1: memories get no hole guard, so the residency
 *   rule is checked with mincore() before the plan, as on a kernel without
 *   userfaultfd (both paths are tested on the host).
 * DMASVC_TEST_EXEC_REAP_DELAY_US=N (0..10000000): the event loop sleeps N us
 *   before it reaps what the executors finished (a loop slow to notice):
 *   what a client waits for must not wait for that (a burst's CQEs).
 */
#ifndef DMASVC_TESTHOOKS_PRIV_H
#define DMASVC_TESTHOOKS_PRIV_H

#include <stddef.h>

#include "dmasvc/soft_iommu.h"

#define TESTHOOK_SOFT_FAULTS_ENV "DMASVC_TEST_SOFT_FAULTS"
#define TESTHOOK_SOFT_DEVICES_ENV "DMASVC_TEST_SOFT_DEVICES"
#define TESTHOOK_SOFT_PIN_ENV "DMASVC_TEST_SOFT_PIN" /* "mlock" or "io_uring": the model's pin (else auto) */
#define TESTHOOK_ASYNC_ALL_ENV "DMASVC_TEST_ASYNC_ALL" /* "1": every burst with events runs on the executor */
#define TESTHOOK_ORPHAN_ON_HANGUP_ENV "DMASVC_TEST_ORPHAN_ON_HANGUP" /* "1": see above */
#define TESTHOOK_NO_HOLE_GUARD_ENV "DMASVC_TEST_NO_HOLE_GUARD" /* "1": see above */
#define TESTHOOK_EXEC_REAP_DELAY_ENV "DMASVC_TEST_EXEC_REAP_DELAY_US" /* see above */

/*
 * testhook_parse_soft_faults: parse @s (the format above) into *@f (zeroed
 * first).  Returns 0 or -EINVAL with the bad item named in @err.
 */
int testhook_parse_soft_faults(const char *s, struct soft_iommu_faults *f, char *err, size_t errlen);

/*
 * testhook_parse_soft_devices: parse @s (DMASVC_TEST_SOFT_DEVICES, above)
 * into @c's attach_us and dev_resv.  Returns 0 or -EINVAL with the bad item
 * named in @err.
 */
int testhook_parse_soft_devices(const char *s, struct soft_iommu_config *c, char *err, size_t errlen);

#endif /* DMASVC_TESTHOOKS_PRIV_H */
