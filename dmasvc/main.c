/* SPDX-License-Identifier: MIT */
/*
 * main.c - the dmasvc executable: parse the command line, open the backend,
 * start the worker pool, listen, run the event loop, clean up.  All
 * long-lived state lives in main()'s frame (struct dsvc and friends).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor_priv.h"
#include "burst_priv.h"
#include "evloop_priv.h"
#include "exec_pool_priv.h"
#include "server_priv.h"
#include "session_priv.h"
#include "testhooks_priv.h"

/*
 * open_backend: open the backend @o names; *@ops is the backend's table, or
 * @test_ops (main's, filled here) when a test asks for the software model's
 * test devices (DMASVC_TEST_SOFT_DEVICES, fault-injection builds only).
 * Returns 0 or -errno (logged).
 */
static int open_backend(const struct dsvc_options *o, const struct dlog *lg,
			const struct be_ops **ops, struct be_ops *test_ops, struct be_ctx **ctx)
{
	struct soft_iommu_config soft = { .nr_ranges = 0 };
	struct be_config cfg = { .max_areas = opt_backend_max_areas(o) };
	int ret;

	if (o->backend == OPT_BACKEND_SOFT) {
		*ops = &be_soft_ops;
		cfg.backend_private = &soft;
#ifdef DMASVC_FAULT_INJECTION
		const char *env = getenv(TESTHOOK_SOFT_FAULTS_ENV);

		if (env && *env) {
			char err[256];

			ret = testhook_parse_soft_faults(env, &soft.faults, err, sizeof(err));
			if (ret) {
				dlog(lg, DLOG_ERROR, 0, "%s", err);
				return ret;
			}
			dlog(lg, DLOG_WARN, 0, "test fault injection armed: %s", env);
		}
		env = getenv(TESTHOOK_SOFT_DEVICES_ENV);
		if (env && *env) {
			soft.attach_us = strtoull(env, NULL, 0);
			*test_ops = be_soft_ops;
			test_ops->device_attach = soft_iommu_test_device_attach;
			test_ops->device_detach = soft_iommu_test_device_detach;
			*ops = test_ops;
			dlog(lg, DLOG_WARN, 0, "test model devices: each attach takes %llu us",
			     (unsigned long long)soft.attach_us);
		}
#else
		(void)test_ops;
#endif
		dlog(lg, DLOG_WARN, 0,
		     "using the software IOMMU model: mappings are enforced and pinned in userspace only; no device is protected");
	} else if (o->backend == OPT_BACKEND_TYPE1) {
		*ops = &be_type1_ops;
		cfg.path = o->group_path;
	} else {
		*ops = &be_iommufd_ops;
		cfg.path = o->iommufd_path;
	}
	ret = (*ops)->open(&cfg, ctx);
	if (ret) {
		if (o->backend != OPT_BACKEND_SOFT)
			dlog_err(lg, 0, ret, "cannot open the %s backend at %s%s", (*ops)->name, cfg.path,
				 ret == -ENOENT ? " (no such device; --soft-iommu runs the software model)"
						: "");
		else
			dlog_err(lg, 0, ret, "cannot open the %s backend", (*ops)->name);
	}
	return ret;
}

/*
 * probe_single_space: type1 has one container per service, so sessions get
 * their space only when they register a region (d->lazy_space).  Create it
 * once here, to fail early on a group that cannot be used and to learn the
 * budget sessions announce in HELLO.  Returns 0 or -errno (logged).
 */
static int probe_single_space(struct dsvc *d)
{
	struct be_space *sp;
	struct be_limits lim;
	int ret;

	d->lazy_space = true;
	ret = d->ops->space_create(d->be, &sp);
	if (ret) {
		dlog_err(d->log, 0, ret, "cannot set up the %s container for %s", d->ops->name,
			 d->opt->group_path);
		return ret;
	}
	ret = d->ops->limits(sp, &lim);
	d->ops->space_destroy(sp);
	if (ret) {
		dlog_err(d->log, 0, ret, "cannot read the %s container's limits", d->ops->name);
		return ret;
	}
	d->lazy_max_areas = lim.max_areas; /* each session applies its own max-mappings cap */
	dlog(d->log, DLOG_INFO, 0, "%s: group %s, up to %llu mappings (one session maps at a time)",
	     d->ops->name, d->opt->group_path, (unsigned long long)d->lazy_max_areas);
	return 0;
}

int main(int argc, char **argv)
{
	struct dsvc_options opt;
	struct be_ops test_ops;
	struct dlog lg = { .level = DLOG_INFO, .out = stderr };
	struct server_claim claim;
	struct dsvc d;
	char err[512];
	sigset_t mask;
	int ret, lfd;

	ret = opt_parse(argc, argv, &opt, stdout, err, sizeof(err));
	if (ret == OPT_EXIT)
		return 0;
	if (ret < 0) {
		fprintf(stderr, "dmasvc: %s\n", err);
		return 2;
	}
	if (opt_resolve_backend(&opt, access(OPT_DEFAULT_IOMMUFD, F_OK) == 0, err, sizeof(err))) {
		fprintf(stderr, "dmasvc: %s\n", err);
		return 2;
	}
	lg.level = opt.log_level;

	memset(&d, 0, sizeof(d));
	d.opt = &opt;
	d.log = &lg;
	d.start_ns = dsvc_now_ns();
	if (open_backend(&opt, &lg, &d.ops, &test_ops, &d.be))
		return 1;
	if (opt.backend == OPT_BACKEND_TYPE1 && probe_single_space(&d)) {
		d.ops->close(d.be);
		return 1;
	}
	/* SIGTERM/SIGINT arrive through the loop's signalfd; worker threads inherit the mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	ret = pool_create(opt.workers, &d.pool);
	if (ret) {
		dlog_err(&lg, 0, ret, "cannot start %u workers", opt.workers);
		goto err_backend;
	}
	ret = executor_queue_create(&d.bx);
	if (ret) {
		dlog_err(&lg, 0, ret, "cannot create the executor queue");
		goto err_pool;
	}
	d.async_bytes = BURST_ASYNC_BYTES;
#ifdef DMASVC_FAULT_INJECTION
	{
		const char *env = getenv(TESTHOOK_ASYNC_ALL_ENV);

		if (env && !strcmp(env, "1"))
			d.async_bytes = 0; /* tests: every burst takes the executor path */
	}
#endif
	lfd = server_listen(&opt, &claim, err, sizeof(err));
	if (lfd < 0) {
		dlog_err(&lg, 0, lfd, "%s", err);
		ret = lfd;
		goto err_bx;
	}
	dlog(&lg, DLOG_INFO, 0, "listening on %s (mode %04o), backend %s, %u workers", opt.socket_path,
	     opt.socket_mode, d.ops->name, opt.workers);
	ret = evl_run(&d, lfd);
	server_release(&opt, &claim);
	if (!ret)
		dlog(&lg, DLOG_INFO, 0, "stopped: all mappings removed");
err_bx:
	executor_queue_destroy(d.bx); /* every executor was joined with its session */
err_pool:
	pool_destroy(d.pool);
err_backend:
	d.ops->close(d.be);
	return ret ? 1 : 0;
}
