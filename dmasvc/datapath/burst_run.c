/* SPDX-License-Identifier: MIT */
/*
 * burst_run.c - run one burst: plan its events, execute the plan with the
 * worker pool's job runner, keep the results (see burst_priv.h).
 */
#include <errno.h>
#include <string.h>

#include "burst_priv.h"
#include "exec_pool_priv.h"

void burst_run(struct dsvc *d, struct dsvc_session *s, struct dsvc_burst *b)
{
	struct pool_job_runner pr;
	struct gran_job_runner runner;
	const struct gran_completion *c;
	struct gran_plan *plan;
	size_t nc;
	int ret;

	memset(&b->st, 0, sizeof(b->st));
	b->err = 0;
	b->map_failed = false;
	ret = gran_plan_build(b->ev, b->nev, &plan);
	if (ret) {
		b->err = ret;
		for (size_t i = 0; i < b->nev; i++)
			b->res[i] = ret;
		return;
	}
	pool_job_runner_init(&pr, d->pool, &runner);
	b->err = gran_plan_execute(plan, d->ops, s->space, &runner);
	c = gran_plan_completions(plan, &nc);
	for (size_t i = 0; i < b->nev; i++)
		b->res[i] = i < nc ? c[i].res : -ENOMEM;
	gran_plan_stats(plan, &b->st);
	b->map_failed = pr.failed;
	b->first_fail = pr.first_fail;
	gran_plan_free(plan);
}
