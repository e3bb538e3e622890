/* SPDX-License-Identifier: MIT */
/*
 * it_suite.c - the Criterion suite fixtures every integration suite shares
 * (it_util.h): start the service and take the VmLck baseline, stop it and
 * expect a clean exit.
 */
#include <criterion/criterion.h>

#include "it_util.h"

int64_t it_suite_start(struct it_svc *s, const char *const *extra)
{
	int64_t vmlck;

	cr_assert_eq(it_svc_start(s, extra), 0, "dmasvc starts");
	vmlck = it_vmlck(s->pid);
	cr_assert_geq(vmlck, 0, "the service's VmLck is readable");
	return vmlck;
}

void it_suite_stop(struct it_svc *s)
{
	int rc = it_svc_finish(s);

	cr_expect_eq(rc, 0, "dmasvc exits 0 on SIGTERM (got %d)", rc);
}
