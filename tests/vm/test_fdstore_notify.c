// SPDX-License-Identifier: MIT
/*
 * test_fdstore_notify.c - host test of the guest keeper's notify parser
 * (fdstore-notify.c): what systemd 252 takes and refuses.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "fdstore-notify.h"

static int parse(const char *s, struct kn_msg *m)
{
	return kn_parse(s, strlen(s), m);
}

Test(fdstore_notify, ready_and_status)
{
	struct kn_msg m;

	cr_assert_eq(parse("READY=1\nSTATUS=1 session, backend iommufd", &m), 0);
	cr_assert(m.ready);
	cr_assert(!m.fdstore);
	cr_assert_str_empty(m.fdname);
}

Test(fdstore_notify, fdstore_with_name)
{
	struct kn_msg m;

	cr_assert_eq(parse("FDSTORE=1\nFDNAME=dmasvc-s1-state\n", &m), 0);
	cr_assert(m.fdstore && !m.fdstore_remove && !m.ready);
	cr_assert_str_eq(m.fdname, "dmasvc-s1-state");
	cr_assert_eq(parse("FDSTOREREMOVE=1\nFDNAME=dmasvc-s7-dev2", &m), 0);
	cr_assert(m.fdstore_remove && !m.fdstore);
	cr_assert_str_eq(m.fdname, "dmasvc-s7-dev2");
}

Test(fdstore_notify, exact_values_only)
{
	struct kn_msg m;

	/* systemd matches "READY=1" exactly: READY=0 or READY=10 are not it. */
	cr_assert_eq(parse("READY=10\nFDSTORE=0\nXREADY=1", &m), 0);
	cr_assert(!m.ready && !m.fdstore);
}

Test(fdstore_notify, bad_names_refuse_the_message)
{
	struct kn_msg m;
	char longname[300] = "FDSTORE=1\nFDNAME=";

	cr_assert_eq(parse("FDSTORE=1\nFDNAME=a:b", &m), -EINVAL);
	cr_assert_eq(parse("FDSTORE=1\nFDNAME=", &m), -EINVAL);
	cr_assert_eq(parse("FDSTORE=1\nFDNAME=tab\there", &m), -EINVAL);
	memset(longname + strlen(longname), 'x', 256);
	cr_assert_eq(parse(longname, &m), -EINVAL);
	longname[strlen("FDSTORE=1\nFDNAME=") + 255] = '\0';
	cr_assert_eq(parse(longname, &m), 0);
	cr_assert_eq(strlen(m.fdname), 255);
}

Test(fdstore_notify, nul_inside_refused)
{
	struct kn_msg m;

	cr_assert_eq(kn_parse("READY=1\0FDSTORE=1", 17, &m), -EBADMSG);
	cr_assert(!m.ready);
}
