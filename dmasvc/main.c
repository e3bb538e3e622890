/* SPDX-License-Identifier: MIT */
/*
 * main.c - the dmasvc executable: read the configuration file and the
 * command line, open the backend, listen (or adopt systemd's socket), drop
 * privileges (--user), start the worker pool, run the event loop, clean up.
 * All long-lived state lives in main()'s frame (struct dsvc and friends).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmasvc/backend_kernel.h"
#include "dmasvc/hole_guard.h"

#include "burst_priv.h"
#include "config_priv.h"
#include "executor_priv.h"
#include "evloop_priv.h"
#include "exec_pool_priv.h"
#include "privdrop_priv.h"
#include "server_priv.h"
#include "keep_priv.h"
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
	/* iommufd's knobs: open() copies them, so the stack is enough. */
	struct be_iommufd_config kcfg = { .rlimit_mode = -1, .huge_pages = -1 }, *kc = &kcfg;
	struct soft_iommu_config soft = { .nr_ranges = 0 };
	struct be_config cfg = {
		.max_areas = opt_backend_max_areas(o),
		.report = dlog_backend_report, /* the same logger and rate limit */
		.report_arg = (void *)lg,
		.cut_areas = o->areas_run,
	};
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
		env = getenv(TESTHOOK_SOFT_PIN_ENV);
		if (env && *env) {
			if (!strcmp(env, "mlock"))
				soft.pin = SOFT_PIN_MLOCK;
			else if (!strcmp(env, "io_uring"))
				soft.pin = SOFT_PIN_IO_URING;
			else {
				dlog(lg, DLOG_ERROR, 0, "%s=%s: expected mlock or io_uring", TESTHOOK_SOFT_PIN_ENV, env);
				return -EINVAL;
			}
			dlog(lg, DLOG_WARN, 0, "test: the software model pins with %s", env);
		}
		env = getenv(TESTHOOK_SOFT_DEVICES_ENV);
		if (env && *env) {
			char err[256];

			ret = testhook_parse_soft_devices(env, &soft, err, sizeof(err));
			if (ret) {
				dlog(lg, DLOG_ERROR, 0, "%s", err);
				return ret;
			}
			*test_ops = be_soft_ops;
			test_ops->device_attach = soft_iommu_test_device_attach;
			test_ops->device_detach = soft_iommu_test_device_detach;
			test_ops->device_reserved = soft_iommu_test_device_reserved;
			*ops = test_ops;
			dlog(lg, DLOG_WARN, 0, "test model devices: each attach takes %llu us, %u reserved ranges",
			     (unsigned long long)soft.attach_us, soft.nr_dev_resv);
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
		cfg.backend_private = kc;
		kc->rlimit_mode = o->iommufd_rlimit_mode;
		kc->huge_pages = o->iommufd_huge_pages;
	}
	ret = (*ops)->open(&cfg, ctx);
	if (!ret && o->backend == OPT_BACKEND_SOFT) {
		struct soft_iommu_pin_info pi;

		soft_iommu_pin_info(*ctx, &pi);
		if (pi.mode == SOFT_PIN_IO_URING)
			dlog(lg, DLOG_INFO, 0, "the software model pins with io_uring registered buffers"
			     " (pin_user_pages FOLL_LONGTERM, shown in VmPin)");
		else
			dlog(lg, DLOG_WARN, 0, "the software model pins with mlock (shown in VmLck, takes the"
			     " mmap write lock): %s", pi.reason);
	}
	if (!ret && o->areas_run)
		dlog(lg, DLOG_INFO, 0, "--areas run: each run of granules a batch populates is one area"
		     " (up to 2 MiB) and discards cut areas%s",
		     o->backend == OPT_BACKEND_SOFT ? " (the model re-pins the parts it keeps)"
						    : "; every IOAS without huge pages (4 KiB IOPTEs)");
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

/*
 * read_options: the configuration file (--config PATH, else
 * OPT_DEFAULT_CONFIG if it exists), then the command line over it, into
 * *@opt; *@cf and *@margv own what @opt points into (the caller frees them,
 * also on error).  Returns OPT_RUN, OPT_EXIT, or -errno after printing the
 * reason.
 */
static int read_options(int argc, char **argv, struct dsvc_options *opt, struct cfg_file *cf,
			char ***margv, const char **cfg_path)
{
	bool explicit_path, skip;
	char err[512];
	int margc, ret;

	memset(cf, 0, sizeof(*cf));
	*margv = NULL;
	*cfg_path = cfg_find(argc, argv, OPT_DEFAULT_CONFIG, &explicit_path, &skip);
	if (!skip) {
		ret = cfg_load(*cfg_path, explicit_path, cf, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "dmasvc: %s\n", err);
			return ret;
		}
	}
	if (cfg_merge(cf, argc, argv, &margc, margv)) {
		fprintf(stderr, "dmasvc: out of memory\n");
		return -ENOMEM;
	}
	ret = opt_parse_layered(margc, *margv, (int)cf->nr, opt, stdout, err, sizeof(err));
	if (ret < 0)
		fprintf(stderr, "dmasvc: %s%s%s%s\n", err, cf->nr ? " (options from " : "",
			cf->nr ? *cfg_path : "", cf->nr ? " and the command line)" : "");
	return ret;
}

/*
 * The restart side of the start (docs/restart.md): the upgrade's exec path
 * (--upgrade-exec, else this binary's absolute path now, into @exe) and
 * argv, the keep-sessions line, and the adoption of the sessions a
 * previous instance kept (the fds server_listen() sorted into @claim).
 */
static void keep_start(struct dsvc *d, struct dsvc_options *opt, struct server_claim *claim,
		       char **argv, char *exe, size_t exelen)
{
	ssize_t n;

	d->argv = argv;
	if (!opt->upgrade_exec) {
		n = readlink("/proc/self/exe", exe, exelen - 1);
		if (n > 0 && exe[0] == '/') {
			exe[n] = '\0';
			opt->upgrade_exec = exe;
		}
	}
	if (opt->keep_sessions && !d->ops->space_keep)
		dlog(d->log, DLOG_WARN, 0, "keep-sessions: the %s backend cannot keep sessions across a"
		     " restart; they are torn down at stop as without it", d->ops->name);
	else if (opt->keep_sessions && !keep_store_available())
		dlog(d->log, DLOG_INFO, 0, "keep-sessions: no service manager fd store; only a planned"
		     " upgrade (SIGHUP) keeps sessions");
	if (claim->nr_keep) {
		unsigned int n_adopted = keep_adopt(d, claim->keep_fds, claim->keep_names, claim->nr_keep);

		dlog(d->log, DLOG_INFO, 0, "adopted %u kept sessions from %u passed fds; each is torn"
		     " down unless resumed within %u s", n_adopted, claim->nr_keep, opt->resume_grace_sec);
	}
	server_keep_free(claim, false); /* keep_adopt took every fd */
}

int main(int argc, char **argv)
{
	struct dsvc_options opt;
	struct be_ops test_ops;
	struct dlog lg;
	struct dlog_limit limit;
	struct server_claim claim;
	struct cfg_file cf;
	const char *cfg_path;
	char **margv;
	struct dsvc d;
	char err[512], exe[OPT_PATH_MAX];
	sigset_t mask;
	int ret, lfd, status = 2;

	ret = read_options(argc, argv, &opt, &cf, &margv, &cfg_path);
	if (ret == OPT_EXIT)
		status = 0;
	if (ret)
		goto out_options;
	if (opt_resolve_backend(&opt, access(OPT_DEFAULT_IOMMUFD, F_OK) == 0, err, sizeof(err)) ||
	    opt_resolve_accounts(&opt, err, sizeof(err))) {
		fprintf(stderr, "dmasvc: %s\n", err);
		goto out_options;
	}
	dlog_init(&lg, opt.log_level, stderr, getenv("JOURNAL_STREAM"), &limit);
	if (cf.nr)
		dlog(&lg, DLOG_INFO, 0, "configuration: %s (%u settings; the command line overrides them)",
		     cfg_path, cf.nr);
	status = 1;

	memset(&d, 0, sizeof(d));
	d.opt = &opt;
	d.log = &lg;
	d.start_ns = dsvc_now_ns();
	if (open_backend(&opt, &lg, &d.ops, &test_ops, &d.be))
		goto out_log;
	if (opt.backend == OPT_BACKEND_TYPE1 && probe_single_space(&d)) {
		d.ops->close(d.be);
		goto out_log;
	}
	/* SIGTERM/SIGINT arrive through the loop's signalfd; worker threads inherit the mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP); /* the planned upgrade (docs/restart.md) */
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	lfd = server_listen(&opt, &claim, err, sizeof(err));
	if (lfd < 0) {
		dlog_err(&lg, 0, lfd, "%s", err);
		ret = lfd;
		goto err_backend;
	}
	if (claim.nr_stray)
		dlog(&lg, DLOG_WARN, 0, "%u passed fds are neither the socket nor a kept session's: closed",
		     claim.nr_stray);
	d.socket_activated = claim.activated;
	if (claim.activated)
		dlog(&lg, DLOG_INFO, 0, "socket activated: serving the socket systemd passed for %s",
		     opt.socket_path);
	else if (claim.upgraded)
		dlog(&lg, DLOG_INFO, 0, "listening on %s (the socket passed by the upgrade)",
		     opt.socket_path);
	else
		dlog(&lg, DLOG_INFO, 0, "listening on %s (mode %04o%s%s)", opt.socket_path,
		     opt.socket_mode, opt.socket_group ? ", group " : "",
		     opt.socket_group ? opt.socket_group : "");
	/* Before any thread: capabilities are per thread, later threads inherit these. */
	if (opt.user) {
		ret = priv_drop(opt.run_uid, opt.run_gid, err, sizeof(err));
		if (ret) {
			dlog_err(&lg, 0, ret, "%s", err);
			goto err_listen;
		}
		dlog(&lg, DLOG_INFO, 0, "running as user %s (uid %u gid %u) with CAP_IPC_LOCK only",
		     opt.user, (unsigned)opt.run_uid, (unsigned)opt.run_gid);
	}
	ret = pool_create(opt.workers, &d.pool);
	if (ret) {
		dlog_err(&lg, 0, ret, "cannot start %u workers", opt.workers);
		goto err_listen;
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
		env = getenv(TESTHOOK_ORPHAN_ON_HANGUP_ENV);
		d.test_orphan_on_hangup = env && !strcmp(env, "1"); /* tests: resume on the model */
		env = getenv(TESTHOOK_NO_HOLE_GUARD_ENV);
		d.test_no_hole_guard = env && !strcmp(env, "1"); /* tests: the mincore() path */
		env = getenv(TESTHOOK_EXEC_REAP_DELAY_ENV);
		if (env) {
			unsigned long v = strtoul(env, NULL, 10);

			d.test_exec_reap_delay_us = v <= 10000000 ? (unsigned int)v : 10000000;
		}
	}
#endif
	dlog(&lg, DLOG_INFO, 0, "backend %s, %u workers", d.ops->name, opt.workers);
	if (opt.poll_us)
		dlog(&lg, DLOG_INFO, 0, "polling mode: the event loop polls the rings for %u us after"
		     " each burst before it sleeps (up to one CPU while events keep coming)", opt.poll_us);
	if (!opt.allow_fault_in && !d.test_no_hole_guard) {
		ret = be_hole_guard_probe();
		if (ret)
			dlog(&lg, DLOG_WARN, 0, "residency rule: no userfaultfd guard here (%s); each"
			     " populate is checked with mincore() before its pin", strerror(-ret));
		else
			dlog(&lg, DLOG_INFO, 0, "residency rule: a userfaultfd guard on each memory makes a"
			     " pin over a hole fail (read-only and hugetlbfs memories: mincore() before the pin)");
	}
	keep_start(&d, &opt, &claim, argv, exe, sizeof(exe));
	/* closes lfd; tells systemd READY=1 once it polls, STOPPING=1 at the signal */
	ret = evl_run(&d, lfd);
	lfd = -1;
	if (!ret)
		dlog(&lg, DLOG_INFO, 0, "stopped: all mappings removed");
	executor_queue_destroy(d.bx); /* every executor was joined with its session */
err_pool:
	pool_destroy(d.pool);
err_listen:
	if (lfd >= 0)
		close(lfd);
	server_keep_free(&claim, true); /* not adopted: an early failure */
	server_release(&opt, &claim);
err_backend:
	d.ops->close(d.be);
	status = ret ? 1 : 0;
out_log:
	dlog_fini(&lg);
out_options:
	free(margv);
	cfg_free(&cf);
	return status;
}
