/* SPDX-License-Identifier: MIT */
/*
 * test_demo_it.c - the main job's workload in small: dmasvc-demo
 * ($DMASVC_DEMO) for 3 s against a real service must exit 0, report zero
 * failed events, agree with the service and its backend, and leave the
 * service's VmLck at its baseline after it removed its regions.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_util.h"

static struct it_svc svc;

static void stop(void)
{
	it_suite_stop(&svc);
}

TestSuite(demo, .fini = stop, .timeout = 60);

Test(demo, short_run_is_clean)
{
	const char *demo = getenv("DMASVC_DEMO");
	char cmd[512], line[512];
	bool agree = false, zero_failed = false;
	int64_t base;
	FILE *out;
	int status;

	cr_assert_not_null(demo, "DMASVC_DEMO is set by meson");
	cr_assert_eq(it_svc_start(&svc, NULL), 0);
	base = it_vmlck(svc.pid);
	/* Quoted: the checkout may live under a path with spaces. */
	cr_assert_null(strchr(demo, '\''), "no quote in %s", demo);
	snprintf(cmd, sizeof(cmd), "'%s' --socket '%s' --service-pid %d --duration 3 --max-plugged 256",
		 demo, svc.sock, (int)svc.pid);
	out = popen(cmd, "r");
	cr_assert_not_null(out);
	while (fgets(line, sizeof(line), out)) {
		unsigned long a, b;

		if (strstr(line, "client == service == backend") && strstr(line, "yes (audit OK)"))
			agree = true;
		if (sscanf(line, " events failed %lu %lu", &a, &b) == 2 && a == 0 && b == 0)
			zero_failed = true;
	}
	status = pclose(out);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "demo exit status %d", status);
	cr_assert(zero_failed, "no failed events in the table");
	cr_assert(agree, "client, service and backend agree");
	cr_assert_eq(it_wait_vmlck(svc.pid, base, 2000), base, "VmLck back at the baseline");
}
