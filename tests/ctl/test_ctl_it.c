/* SPDX-License-Identifier: MIT */
/*
 * test_ctl_it.c - dmasvcctl's output against the real daemon on the
 * software model: every JSON document parses (json-c) with "version" 1,
 * the fields docs/dmasvcctl-json.md names and types, null for unlimited;
 * the audit stays valid when a region is removed between the listing and
 * its audit, and prints nothing when a query fails half-way (both
 * provoked by a proxy between dmasvcctl and the service); metrics pass
 * the exposition checker (check_prom.py) and the histogram's _count is
 * the service's event counter; text output says units; --version.
 *
 * Paths: $DMASVC_BIN, $DMASVCCTL_BIN, $PYTHON3, $CHECK_PROM, $JSON_DOC
 * (set by meson).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"
#include "it_util.h"

#define MB (1ull << 20)

static struct it_svc svc;
static struct dmasvc_client *cl;
static int memfd = -1;
static int region[2];   /* the client's ids: A (first listed), B */

/* Start the service; one client with two regions, 6 MiB of A populated. */
/* Start @s with @args (may be NULL), connect *@c to it and add a memfd of
 * @size as a memory (its fd to *@fd); returns the memory's id. */
static uint32_t start_with_memory(struct it_svc *s, const char *const *args,
				  struct dmasvc_client **c, int *fd, uint64_t size)
{
	int mem;

	cr_assert_eq(it_svc_start(s, args), 0);
	cr_assert_eq(dmasvc_connect(s->sock, NULL, c), 0);
	*fd = it_memfd(size, true);
	cr_assert_geq(*fd, 0);
	mem = dmasvc_memory_add(*c, *fd, size, 0);
	cr_assert_geq(mem, 0);
	return (uint32_t)mem;
}

static void setup(void)
{
	struct dmasvc_region_desc d = { .size = 16 * MB, .granule = 2 * MB };

	memset(&svc, 0, sizeof(svc));
	d.mem_id = start_with_memory(&svc, NULL, &cl, &memfd, 32 * MB);
	for (int i = 0; i < 2; i++) {
		d.iova = (1ull << 30) + (uint64_t)i * (1ull << 28);
		d.mem_offset = (uint64_t)i * 16 * MB;
		region[i] = dmasvc_region_add(cl, &d);
		cr_assert_geq(region[i], 0);
	}
	cr_assert_eq(dmasvc_populate(cl, (uint32_t)region[0], 0, 4 * MB), 0);
	cr_assert_eq(dmasvc_populate(cl, (uint32_t)region[0], 8 * MB, 2 * MB), 0);
}

static void teardown(void)
{
	dmasvc_disconnect(cl);
	cl = NULL;
	if (memfd >= 0)
		close(memfd);
	memfd = -1;
	it_suite_stop(&svc);
}

TestSuite(ctl, .init = setup, .fini = teardown, .timeout = 60);

/* ---- running dmasvcctl ---- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	cr_assert(buf);
	if (f) {
		n = fread(buf, 1, (1 << 20) - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

struct ctl_run {
	int status;
	char *out; /* stdout */
	char *err; /* stderr */
};

/* ctl: run dmasvcctl @args (NULL-terminated, after --socket @sock); its
 * output goes to files beside the socket (the service's directory). */
static struct ctl_run ctl(const char *sock, const char *const *args)
{
	char out[192], err[192], dir[160];
	const char *slash = strrchr(sock, '/');
	const char *argv[16] = { getenv("DMASVCCTL_BIN"), "--socket", sock };
	struct ctl_run r;
	int n = 3, st;
	pid_t pid;

	cr_assert(argv[0], "DMASVCCTL_BIN is set by meson");
	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	cr_assert(slash && (size_t)(slash - sock) < sizeof(dir), "socket path %s", sock);
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - sock), sock);
	snprintf(out, sizeof(out), "%s/ctl.out", dir);
	snprintf(err, sizeof(err), "%s/ctl.err", dir);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r.out = slurp(out);
	r.err = slurp(err);
	return r;
}

static void run_free(struct ctl_run *r)
{
	free(r->out);
	free(r->err);
}

/* parse: @s must be exactly one JSON object with "version": 1. */
static struct json_object *parse(const char *s)
{
	enum json_tokener_error jerr;
	struct json_object *o = json_tokener_parse_verbose(s, &jerr), *v;

	cr_assert_not_null(o, "not JSON (%s): %s", json_tokener_error_desc(jerr), s);
	cr_assert(json_object_is_type(o, json_type_object), "top level is an object: %s", s);
	cr_assert(json_object_object_get_ex(o, "version", &v) && json_object_is_type(v, json_type_int) &&
		  json_object_get_int(v) == 1, "\"version\": 1 in %s", s);
	return o;
}

static struct json_object *get(struct json_object *o, const char *key, enum json_type t)
{
	struct json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "field %s in %s", key,
		  json_object_to_json_string(o));
	cr_assert(json_object_is_type(v, t), "%s is a %s: %s", key, json_type_to_name(t),
		  json_object_to_json_string(o));
	return v;
}

static uint64_t get_u64(struct json_object *o, const char *key)
{
	return json_object_get_uint64(get(o, key, json_type_int));
}

/*
 * documented: every key of @o (recursively) is named `key` in the schema
 * document ($JSON_DOC), so the page cannot fall behind the output.
 */
static void documented(struct json_object *o, const char *doc)
{
	if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			documented(json_object_array_get_idx(o, i), doc);
		return;
	}
	if (!json_object_is_type(o, json_type_object))
		return;
	json_object_object_foreach(o, key, val) {
		char want[80], nested[80];

		snprintf(want, sizeof(want), "`%s`", key);
		snprintf(nested, sizeof(nested), ".%s`", key); /* `buckets[].count` */
		cr_expect(strstr(doc, want) || strstr(doc, nested), "%s is not in docs/dmasvcctl-json.md",
			  key);
		documented(val, doc);
	}
}

static char *json_doc(void)
{
	const char *p = getenv("JSON_DOC");

	cr_assert(p, "JSON_DOC is set by meson");
	return slurp(p);
}

/* ---- JSON ---- */

Test(ctl, status_json)
{
	struct ctl_run r = ctl(svc.sock, (const char *[]){ "status", "--json", NULL });
	struct json_object *o, *s, *lat, *b, *ss, *one;
	uint64_t sum = 0;
	char *doc = json_doc();

	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	o = parse(r.out);
	s = get(o, "service", json_type_object);
	cr_expect_str_eq(json_object_get_string(get(s, "backend", json_type_string)), "soft");
	cr_expect_str_eq(json_object_get_string(get(s, "locked_source", json_type_string)), "VmPin+VmLck");
	get(s, "max_areas", json_type_null); /* the software model has no budget: null */
	cr_expect_str_eq(json_object_get_string(get(s, "area_rule", json_type_string)), "granule");
	cr_expect_eq(get_u64(s, "sessions"), 1, "the tool's own session is not counted");
	cr_expect_eq(get_u64(s, "areas"), 3);
	cr_expect_eq(get_u64(s, "pinned_bytes"), 6 * MB);
	cr_expect_eq(get_u64(s, "locked_bytes"), (uint64_t)it_vmlck(svc.pid));
	cr_expect_eq(get_u64(s, "events"), 2);
	lat = get(s, "latency_since_start", json_type_object);
	cr_expect_eq(get_u64(lat, "count"), 2, "every event is in the histogram");
	cr_expect_gt(get_u64(lat, "sum_ns"), 0);
	b = get(lat, "buckets", json_type_array);
	for (size_t i = 0; i < json_object_array_length(b); i++) {
		struct json_object *e = json_object_array_get_idx(b, i);

		cr_expect_leq(get_u64(e, "ge_ns"), get_u64(e, "le_ns"));
		sum += get_u64(e, "count");
	}
	cr_expect_eq(sum, 2, "the buckets hold every event");
	get(s, "latency_window", json_type_object);
	ss = get(o, "sessions", json_type_array);
	cr_assert_eq(json_object_array_length(ss), 1);
	one = json_object_array_get_idx(ss, 0);
	cr_expect_eq(get_u64(one, "session_id"), dmasvc_session_id(cl));
	cr_expect_eq(get_u64(one, "pid"), (uint64_t)getpid());
	cr_expect_eq(get_u64(one, "regions"), 2);
	get(one, "max_areas", json_type_null);
	get(one, "budget_left_areas", json_type_null);
	cr_expect_str_eq(json_object_get_string(get(one, "area_rule", json_type_string)), "granule");
	documented(o, doc);
	json_object_put(o);
	free(doc);
	run_free(&r);
}

Test(ctl, regions_json)
{
	struct ctl_run r = ctl(svc.sock, (const char *[]){ "regions", "--json", NULL });
	struct json_object *o, *rs, *a;
	char *doc = json_doc();

	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	o = parse(r.out);
	rs = get(o, "regions", json_type_array);
	cr_assert_eq(json_object_array_length(rs), 2, "%s", r.out);
	a = json_object_array_get_idx(rs, 0);
	cr_expect_eq(get_u64(a, "iova"), 1ull << 30);
	cr_expect_eq(get_u64(a, "size"), 16 * MB);
	cr_expect_eq(get_u64(a, "granule"), 2 * MB);
	cr_expect_eq(get_u64(a, "populated_bytes"), 6 * MB);
	cr_expect_eq(get_u64(a, "mapped_bytes"), 6 * MB);
	cr_expect_eq(get_u64(a, "pinned_bytes"), 6 * MB);
	cr_expect_eq(json_object_get_boolean(get(a, "readonly", json_type_boolean)), 0);
	documented(o, doc);
	json_object_put(o);
	free(doc);
	run_free(&r);
}

Test(ctl, audit_json)
{
	struct ctl_run r = ctl(svc.sock, (const char *[]){ "audit", "--json", NULL });
	struct json_object *o, *rs, *ext;
	char *doc = json_doc();

	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	o = parse(r.out);
	cr_expect(json_object_get_boolean(get(o, "ok", json_type_boolean)));
	cr_expect_eq(get_u64(o, "vanished_regions"), 0);
	rs = get(o, "regions", json_type_array);
	cr_assert_eq(json_object_array_length(rs), 2);
	ext = get(json_object_array_get_idx(rs, 0), "extents", json_type_array);
	cr_assert_eq(json_object_array_length(ext), 2, "%s", r.out);
	cr_expect_str_eq(json_object_get_string(get(json_object_array_get_idx(ext, 1), "state",
						     json_type_string)), "OK");
	cr_expect_eq(get_u64(json_object_array_get_idx(ext, 1), "length"), 2 * MB);
	cr_expect_eq(json_object_array_length(get(json_object_array_get_idx(rs, 1), "extents",
						  json_type_array)), 0, "B holds nothing");
	documented(o, doc);
	json_object_put(o);
	free(doc);
	run_free(&r);
}

/* ---- a proxy between dmasvcctl and the service ---- */

enum proxy_mode {
	PROXY_REMOVE_A,    /* at the first AUDIT request: remove region A first */
	PROXY_FAIL_SECOND, /* the second AUDIT's reply becomes EIO */
};

struct proxy {
	int lfd;
	char path[100];
	enum proxy_mode mode;
	int audits;        /* AUDIT requests seen */
	int removed;       /* dmasvc_region_remove's result (PROXY_REMOVE_A) */
	uint32_t fail_id;  /* msg_id whose reply to fail; 0 none */
	pthread_t th;
};

static bool is_audit(const unsigned char *p, ssize_t n)
{
	struct dmasvc_msg_hdr h;
	struct dmasvc_query q;

	if (n < (ssize_t)(sizeof(h) + sizeof(q)))
		return false;
	memcpy(&h, p, sizeof(h));
	memcpy(&q, p + sizeof(h), sizeof(q));
	return h.cmd == DMASVC_CMD_QUERY && !(h.flags & DMASVC_MSG_REPLY) &&
	       q.what == DMASVC_QUERY_AUDIT;
}

/* One connection: forward packets both ways, acting on AUDIT requests. */
static void *proxy_main(void *arg)
{
	struct proxy *px = arg;
	int down = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC), up = it_raw_connect(svc.sock);
	unsigned char buf[DMASVC_MSG_MAX + 64];

	if (down < 0 || up < 0)
		goto out;
	for (;;) {
		struct pollfd p[2] = { { .fd = down, .events = POLLIN }, { .fd = up, .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, 10000) <= 0)
			break;
		if (p[0].revents) {
			n = recv(down, buf, sizeof(buf), 0);
			if (n <= 0)
				break;
			if (is_audit(buf, n)) {
				struct dmasvc_msg_hdr h;

				memcpy(&h, buf, sizeof(h));
				if (++px->audits == 1 && px->mode == PROXY_REMOVE_A)
					px->removed = dmasvc_region_remove(cl, (uint32_t)region[0]);
				if (px->audits == 2 && px->mode == PROXY_FAIL_SECOND)
					px->fail_id = h.msg_id;
			}
			if (send(up, buf, (size_t)n, 0) != n)
				break;
		}
		if (p[1].revents) {
			struct dmasvc_msg_hdr h;

			n = recv(up, buf, sizeof(buf), 0);
			if (n <= 0)
				break;
			memcpy(&h, buf, sizeof(h));
			if (px->fail_id && h.msg_id == px->fail_id) {
				h.error = EIO;
				h.size = sizeof(h);
				memcpy(buf, &h, sizeof(h));
				n = sizeof(h);
			}
			if (send(down, buf, (size_t)n, 0) != n)
				break;
		}
	}
out:
	if (down >= 0)
		close(down);
	if (up >= 0)
		close(up);
	return NULL;
}

static void proxy_start(struct proxy *px, enum proxy_mode mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(px, 0, sizeof(*px));
	px->mode = mode;
	snprintf(px->path, sizeof(px->path), "%s/proxy.sock", svc.dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", px->path);
	px->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	cr_assert_geq(px->lfd, 0);
	unlink(px->path);
	cr_assert_eq(bind(px->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(px->lfd, 1), 0);
	cr_assert_eq(pthread_create(&px->th, NULL, proxy_main, px), 0);
}

static void proxy_stop(struct proxy *px)
{
	pthread_join(px->th, NULL);
	close(px->lfd);
	unlink(px->path);
}

/* A region removed between REGIONS and its AUDIT: still one valid document,
 * the region left out and counted (before: `{"regions":[,{`). */
Test(ctl, audit_json_region_removed_mid_listing)
{
	struct proxy px;
	struct ctl_run r;
	struct json_object *o, *rs;

	proxy_start(&px, PROXY_REMOVE_A);
	r = ctl(px.path, (const char *[]){ "audit", "--json", NULL });
	proxy_stop(&px);
	cr_assert_eq(px.removed, 0, "region A removed by the proxy");
	cr_assert_eq(px.audits, 2, "dmasvcctl audited both listed regions");
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	o = parse(r.out);
	cr_expect_eq(get_u64(o, "vanished_regions"), 1, "%s", r.out);
	rs = get(o, "regions", json_type_array);
	cr_expect_eq(json_object_array_length(rs), 1, "only B is left: %s", r.out);
	cr_expect(json_object_get_boolean(get(o, "ok", json_type_boolean)));
	json_object_put(o);
	run_free(&r);
}

/* The same race in text: said, not hidden. */
Test(ctl, audit_text_region_removed_mid_listing)
{
	struct proxy px;
	struct ctl_run r;

	proxy_start(&px, PROXY_REMOVE_A);
	r = ctl(px.path, (const char *[]){ "audit", NULL });
	proxy_stop(&px);
	cr_assert_eq(px.removed, 0);
	cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_expect(strstr(r.out, "(1 regions were removed while the audit ran)"), "%s", r.out);
	cr_expect(strstr(r.out, "audit: all OK"), "%s", r.out);
	run_free(&r);
}

/* A query that fails after the first region's audit: exit 3, the reason on
 * stderr, and nothing on stdout (before: a truncated `{"regions":[{...`). */
Test(ctl, audit_json_failure_prints_nothing)
{
	struct proxy px;
	struct ctl_run r;

	proxy_start(&px, PROXY_FAIL_SECOND);
	r = ctl(px.path, (const char *[]){ "audit", "--json", NULL });
	proxy_stop(&px);
	cr_assert_eq(px.audits, 2);
	cr_expect_eq(r.status, 3, "%s%s", r.out, r.err);
	cr_expect_str_eq(r.out, "", "no partial document on stdout");
	cr_expect(strstr(r.err, "audit: Input/output error"), "%s", r.err);
	run_free(&r);
}

/* ---- metrics ---- */

/* value of the sample line starting with @prefix (the whole name{labels}). */
static double sample(const char *text, const char *prefix)
{
	char want[160];
	const char *p;

	snprintf(want, sizeof(want), "\n%s ", prefix);
	p = strstr(text, want);
	cr_assert_not_null(p, "no sample %s in\n%s", prefix, text);
	return strtod(p + strlen(want), NULL);
}

Test(ctl, metrics_exposition)
{
	struct ctl_run r = ctl(svc.sock, (const char *[]){ "metrics", NULL });
	const char *py = getenv("PYTHON3"), *chk = getenv("CHECK_PROM");
	char path[192], info[256];
	pid_t pid;
	FILE *f;
	int st;

	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(py && chk, "PYTHON3 and CHECK_PROM are set by meson");
	snprintf(path, sizeof(path), "%s/metrics.prom", svc.dir);
	f = fopen(path, "w");
	cr_assert(f);
	fputs(r.out, f);
	fclose(f);
	/* argv, not a shell line: the checkout's path may hold a space */
	cr_assert_eq(posix_spawn(&pid, py, NULL, NULL, (char *const[]){ (char *)py, (char *)chk, path, NULL },
				 environ), 0, "spawn %s", py);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "check_prom.py rejects:\n%s", r.out);
	cr_expect_eq(sample(r.out, "dmasvc_event_latency_seconds_count"),
		     sample(r.out, "dmasvc_events_total"), "every event is in the histogram");
	cr_expect_eq(sample(r.out, "dmasvc_event_latency_seconds_count"), 2);
	cr_expect_gt(sample(r.out, "dmasvc_event_latency_seconds_sum"), 0);
	cr_expect_eq(sample(r.out, "dmasvc_pinned_bytes"), 6.0 * MB);
	cr_expect(!strstr(r.out, "dmasvc_session_areas_limit{"),
		  "no limit on the software model: no sample, no sentinel");
	cr_expect(!strstr(r.out, "18446744073709551615") && !strstr(r.out, " -1\n"), "no sentinel");
	snprintf(info, sizeof(info), "dmasvc_session_info{session=\"%u\",pid=\"%d\",uid=\"%u\",",
		 dmasvc_session_id(cl), getpid(), (unsigned)getuid());
	cr_expect(strstr(r.out, info), "%s in\n%s", info, r.out);
	cr_expect(strstr(r.out, "dmasvc_info{backend=\"soft\",area_rule=\"granule\"} 1\n"), "%s", r.out);
	run_free(&r);
}

/*
 * The area rule as the service runs it (`dmasvc --areas run`): the
 * service's and the session's, in JSON, text and metrics alike.  (The
 * fixture's service runs the default rule: status_json, metrics_exposition.)
 */
Test(ctl_areas, the_run_rule_is_shown_everywhere)
{
	const char *const args[] = { "--areas", "run", NULL };
	struct dmasvc_region_desc d = { .size = 16 * MB, .iova = 1ull << 30, .granule = 2 * MB };
	struct it_svc s2 = { 0 };
	struct dmasvc_client *c2;
	struct json_object *o, *one;
	struct ctl_run r;
	char want[160];
	int fd;

	d.mem_id = start_with_memory(&s2, args, &c2, &fd, 16 * MB);
	cr_assert_geq(dmasvc_region_add(c2, &d), 0, "the region makes the session's space");

	r = ctl(s2.sock, (const char *[]){ "status", "--json", NULL });
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	o = parse(r.out);
	cr_expect_str_eq(json_object_get_string(get(get(o, "service", json_type_object), "area_rule",
						    json_type_string)), "run");
	one = json_object_array_get_idx(get(o, "sessions", json_type_array), 0);
	cr_assert(one, "%s", r.out);
	cr_expect_str_eq(json_object_get_string(get(one, "area_rule", json_type_string)), "run");
	json_object_put(o);
	run_free(&r);

	r = ctl(s2.sock, (const char *[]){ "status", NULL });
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_expect(strstr(r.out, "mapped (rule: run)"), "%s", r.out);
	snprintf(want, sizeof(want), "session %u: ", dmasvc_session_id(c2));
	cr_expect(strstr(r.out, want) && strstr(strstr(r.out, want), "areas 0 (rule: run)"), "%s", r.out);
	run_free(&r);

	r = ctl(s2.sock, (const char *[]){ "metrics", NULL });
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_expect(strstr(r.out, "dmasvc_info{backend=\"soft\",area_rule=\"run\"} 1\n"), "%s", r.out);
	snprintf(want, sizeof(want), "dmasvc_session_info{session=\"%u\",", dmasvc_session_id(c2));
	cr_expect(strstr(r.out, want) && strstr(strstr(r.out, want), ",area_rule=\"run\"} 1\n"),
		  "%s with area_rule=\"run\" in\n%s", want, r.out);
	run_free(&r);

	dmasvc_disconnect(c2);
	close(fd);
	it_suite_stop(&s2);
}

/* ---- text ---- */

Test(ctl, text_says_units)
{
	struct ctl_run r = ctl(svc.sock, (const char *[]){ "status", NULL });
	const char *p;

	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_expect(strstr(r.out, "pinned 6.0 MiB"), "%s", r.out);
	cr_expect(strstr(r.out, "areas: 3 mapped (rule: granule)"), "%s", r.out);
	p = strstr(r.out, "since start 2 events, mean ");
	cr_expect(p, "%s", r.out);
	/* a percentile is a bound with a unit, never a bare bucket bound in ns */
	cr_expect(strstr(r.out, "p50 <= ") || strstr(r.out, "p50 -,"), "%s", r.out);
	for (p = strstr(r.out, " ns"); p; p = strstr(p + 1, " ns")) {
		const char *d = p;

		while (d > r.out && d[-1] >= '0' && d[-1] <= '9')
			d--;
		cr_expect_lt(strtoull(d, NULL, 10), 1000, "a figure in ns is below 1 us: %s", r.out);
	}
	run_free(&r);
	r = ctl(svc.sock, (const char *[]){ "regions", NULL });
	cr_expect(strstr(r.out, "16.0 MiB") && strstr(r.out, "2.0 MiB") && strstr(r.out, "6.0 MiB"),
		  "%s", r.out);
	run_free(&r);
}

Test(ctl, version)
{
	struct ctl_run r = ctl(svc.sock, (const char *[]){ "--version", NULL });

	cr_expect_eq(r.status, 0);
	cr_expect(!strncmp(r.out, "dmasvcctl ", 10) && strstr(r.out, "JSON schema 1"), "%s", r.out);
	run_free(&r);
}
