/* SPDX-License-Identifier: MIT */
/*
 * path_ring.c - the "ring" path: the real dmasvc daemon, started by the
 * bench as a child process (one per worker count, for the whole run), and
 * driven like a VMM drives it, through libdmasvc over the control socket
 * and the shared SQ/CQ ring.
 *
 *   batch of 1 note   a blocking dmasvc_populate/discard (QEMU's
 *                     RamDiscardListener waits for each notification);
 *   batch of n notes  n asynchronous submits on the default queue inside
 *                     one libdmasvc batch (dmasvc_queue_batch_begin/end:
 *                     published with one tail store), then reap until all
 *                     n completed (a guest_memfd conversion posts its
 *                     page-by-page notes and waits once).
 *
 * Each region gets a fresh connection (device_attach when the bench has a
 * device, memory_add, region_add); removing it disconnects, and the daemon
 * drops every pin and the device of the session.  Backend call
 * counts come from the daemon (QUERY STATUS of the own session); pins are
 * read from the daemon's /proc/PID/status.
 *
 * Who allocates the plugged memory (docs/design.md, "Who allocates guest
 * memory"): on "ring" the VMM does, libdmasvc's default prefault
 * (MADV_POPULATE_WRITE in the bench process) before each populate is
 * posted, inside the timed call; on "faultin" the daemon runs with
 * --allow-fault-in and the client in DMASVC_PREFAULT_CALLER mode faults
 * nothing in, so the daemon's pins fault the pages (the service pays).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dmasvc/dmasvc.h"
#include "dmasvc/proto.h"
#include "mb.h"

#define RING_SQ 1024 /* a batch of up to 1024 notes is one drain of the daemon */
#define DAEMON_START_MS 30000
#define DAEMON_RELEASE_MS 30000

struct mb_target {
	const struct mb_env *env;
	bool fault_in;           /* the "faultin" path */
	pid_t daemon;
	int dev_fd;              /* our fd of the device sent to the daemon, or -1 */
	char sock[256];
	struct dmasvc_client *c; /* NULL when no region */
	uint32_t region_id;
	struct mb_counts base;   /* the session's counters at region_add */
	uint64_t *t_sub;         /* per-note submit time of the batch */
	size_t t_cap;
	int prefault_threads;    /* --client-threads=N, or -1: libdmasvc's default */
	bool whole;              /* --client-whole: prefault each populate whole, then post */
	char *map;               /* --client-whole: the bench's own mapping of the region */
	uint64_t map_size;
};

/*
 * Variant words for the client, not the daemon (--variant NAME=DAEMON,ARG;
 * no ":" in them: run-vm.sh joins the arguments with it):
 *   --client-threads=N  dmasvc_set_prefault_threads(N) (the pipelined plug)
 *   --client-whole      libdmasvc as before the pipeline: the bench faults each
 *                     populate's whole range in (DMASVC_PREFAULT_CALLER,
 *                     dmasvc_prefault on its own mapping), then posts it
 */
#define CLIENT_WORD "--client-"

static void client_words(struct mb_target *t)
{
	t->prefault_threads = -1;
	for (int i = 0; i < MB_MAX_DAEMON_ARGS && t->env->daemon_args[i]; i++) {
		const char *a = t->env->daemon_args[i];

		if (!strncmp(a, CLIENT_WORD "threads=", strlen(CLIENT_WORD "threads=")))
			t->prefault_threads = atoi(a + strlen(CLIENT_WORD "threads="));
		else if (!strcmp(a, CLIENT_WORD "whole"))
			t->whole = true;
	}
}

/* Start the daemon; wait until its socket exists.  0 or -errno. */
static int daemon_start(const struct mb_env *env, unsigned int workers,
			struct mb_target *t)
{
	char wbuf[16], logpath[300];
	struct stat st;
	int logfd;

	const char *kind = t->fault_in ? "f" : "", *var = env->variant ? env->variant : "";

	snprintf(t->sock, sizeof(t->sock), "%s/%s%sw%u.sock", env->tmpdir, kind, var, workers);
	snprintf(logpath, sizeof(logpath), "%s/dmasvc-%s%sw%u.log", env->tmpdir, kind, var, workers);
	snprintf(wbuf, sizeof(wbuf), "%u", workers);
	unlink(t->sock);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0)
		return -errno;
	t->daemon = fork();
	if (t->daemon < 0) {
		close(logfd);
		return -errno;
	}
	if (t->daemon == 0) {
		const char *backend = env->backend == MB_IOMMUFD ? "--iommufd" : "--soft-iommu";
		const char *argv[12 + MB_MAX_DAEMON_ARGS];
		int a = 0;

		argv[a++] = env->daemon_path;
		argv[a++] = backend;
		if (env->backend == MB_IOMMUFD)
			argv[a++] = env->iommu_path;
		argv[a++] = "--socket";
		argv[a++] = t->sock;
		argv[a++] = "--workers";
		argv[a++] = wbuf;
		argv[a++] = "--log-level";
		argv[a++] = "warn";
		if (t->fault_in)
			argv[a++] = "--allow-fault-in";
		for (int i = 0; i < MB_MAX_DAEMON_ARGS && env->daemon_args[i]; i++)
			if (strncmp(env->daemon_args[i], CLIENT_WORD, strlen(CLIENT_WORD)))
				argv[a++] = env->daemon_args[i];
		argv[a] = NULL;
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the bench */
		dup2(logfd, STDERR_FILENO);
		dup2(logfd, STDOUT_FILENO);
		execv(env->daemon_path, (char *const *)argv);
		_exit(127);
	}
	close(logfd);
	for (int ms = 0; ms < DAEMON_START_MS; ms += 10) {
		int status;

		if (stat(t->sock, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		if (waitpid(t->daemon, &status, WNOHANG) == t->daemon) {
			t->daemon = 0;
			fprintf(stderr, "map-bench: %s exited at start-up (log %s)\n",
				env->daemon_path, logpath);
			return -ECHILD;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
	return -ETIMEDOUT;
}

static void daemon_stop(struct mb_target *t)
{
	int status;

	if (t->daemon <= 0)
		return;
	kill(t->daemon, SIGTERM);
	kill(t->daemon, SIGCONT); /* frozen between its runs: let it take the SIGTERM */
	waitpid(t->daemon, &status, 0);
	t->daemon = 0;
}

static int open_kind(const struct mb_env *env, unsigned int workers, bool fault_in,
		     struct mb_target **out)
{
	struct mb_target *t = calloc(1, sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	t->env = env;
	t->fault_in = fault_in;
	t->dev_fd = -1;
	client_words(t);
	ret = daemon_start(env, workers ? workers : 1, t);
	if (ret) {
		daemon_stop(t);
		free(t);
		return ret;
	}
	*out = t;
	return 0;
}

static int ring_open(const struct mb_env *env, unsigned int workers, struct mb_target **out)
{
	return open_kind(env, workers, false, out);
}

static int faultin_open(const struct mb_env *env, unsigned int workers, struct mb_target **out)
{
	return open_kind(env, workers, true, out);
}

static void ring_close(struct mb_target *t)
{
	daemon_stop(t);
	free(t->t_sub);
	free(t);
}

/* The session's own map/unmap counters from the daemon.  0 or -errno. */
static int session_counts(struct mb_target *t, struct mb_counts *out)
{
	struct dmasvc_stat_service st;
	int ret = dmasvc_query(t->c, DMASVC_QUERY_STATUS, 0, 0, &st, sizeof(st), 1);

	if (ret < 0)
		return ret;
	if (ret != 1)
		return -EPROTO;
	out->map_calls = st.map_calls;
	out->unmap_calls = st.unmap_calls;
	return 0;
}

static int ring_region_add(struct mb_target *t, const struct mb_region *r)
{
	struct dmasvc_connect_opts o = { .sq_entries = RING_SQ, .timeout_ms = 600000 };
	struct dmasvc_region_desc d = {
		.size = r->size,
		.iova = r->iova,
		.granule = r->granule,
	};
	int ret, mem;

	ret = dmasvc_connect(t->sock, &o, &t->c);
	if (ret)
		return ret;
	if ((t->fault_in || t->whole) && (ret = dmasvc_set_prefault(t->c, DMASVC_PREFAULT_CALLER)))
		goto err_disconnect;
	if (t->prefault_threads >= 0 &&
	    (ret = dmasvc_set_prefault_threads(t->c, (unsigned)t->prefault_threads)))
		goto err_disconnect;
	if (t->whole) {
		t->map = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			      r->fd, 0);
		if (t->map == MAP_FAILED) {
			t->map = NULL;
			ret = -errno;
			goto err_disconnect;
		}
		t->map_size = r->size;
	}
	if (t->env->device_path) {
		/* attached first, so that every map pins (iommufd pins only
		 * while a device is attached) */
		t->dev_fd = open(t->env->device_path, O_RDWR | O_CLOEXEC);
		if (t->dev_fd < 0) {
			ret = -errno;
			goto err_disconnect;
		}
		ret = dmasvc_device_attach(t->c, t->dev_fd);
		if (ret < 0)
			goto err_disconnect;
	}
	mem = dmasvc_memory_add(t->c, r->fd, r->size, 0);
	if (mem < 0) {
		ret = mem;
		goto err_disconnect;
	}
	d.mem_id = (uint32_t)mem;
	ret = dmasvc_region_add(t->c, &d);
	if (ret < 0)
		goto err_disconnect;
	t->region_id = (uint32_t)ret;
	ret = session_counts(t, &t->base);
	if (ret)
		goto err_disconnect;
	return 0;

err_disconnect:
	fprintf(stderr, "map-bench: ring: %s\n", dmasvc_last_error(t->c));
	dmasvc_disconnect(t->c);
	t->c = NULL;
	if (t->dev_fd >= 0)
		close(t->dev_fd);
	t->dev_fd = -1;
	if (t->map)
		munmap(t->map, t->map_size);
	t->map = NULL;
	return ret;
}

/* Whether the daemon still maps, or holds an fd of, a file whose name has @needle. */
static bool daemon_holds(pid_t pid, const char *needle)
{
	char path[64], line[512], link[300];
	bool found = false;
	struct dirent *de;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	while (!found && d && (de = readdir(d))) {
		ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);

		if (n > 0) {
			link[n] = 0;
			found = strstr(link, needle) != NULL;
		}
	}
	if (d)
		closedir(d);
	return found;
}

static void ring_region_del(struct mb_target *t)
{
	if (!t->c)
		return;
	dmasvc_disconnect(t->c); /* BYE: the daemon unmaps and unpins it all */
	t->c = NULL;
	if (t->map)
		munmap(t->map, t->map_size);
	t->map = NULL;
	/*
	 * The daemon may drop its mapping of the memory (and the device) after
	 * it answered BYE.  Wait for that, so that freeing the pages happens
	 * now (when the bench closes its fd) and not during the next target's
	 * run, and so that the cdev is free for the next space.
	 */
	for (int ms = 0; ms < DAEMON_RELEASE_MS; ms++) {
		if (!daemon_holds(t->daemon, "/memfd:" MB_MEMFD_NAME) &&
		    (!t->env->device_path || !daemon_holds(t->daemon, t->env->device_path)))
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	/* Only now may the in-process paths bind the device again. */
	if (t->dev_fd >= 0)
		close(t->dev_fd);
	t->dev_fd = -1;
}

static int submit_one(struct mb_target *t, struct dmasvc_queue *q, uint32_t region,
		      const struct mb_note *no, uint64_t user_data)
{
	if (t->whole && no->populate) {
		int ret = dmasvc_prefault(t->map + no->offset, no->length, true);

		if (ret)
			return ret;
	}
	if (no->populate)
		return dmasvc_submit_populate(q, region, no->offset, no->length, user_data);
	return dmasvc_submit_discard(q, region, no->offset, no->length, user_data);
}

/* Reap what is there (wait for at least one if @wait); record latencies. */
static int reap_some(struct mb_target *t, struct dmasvc_queue *q, bool wait,
		     size_t n, uint64_t *lat_ns, size_t *done, int *first_err)
{
	struct dmasvc_completion comp[64];
	int got = dmasvc_reap(q, comp, 64, wait ? -1 : 0);
	uint64_t now = mb_now_ns();

	if (got < 0)
		return got;
	for (int i = 0; i < got; i++) {
		uint64_t k = comp[i].user_data;

		if (k >= n)
			return -EPROTO;
		lat_ns[k] = now - t->t_sub[k];
		if (comp[i].res && !*first_err)
			*first_err = comp[i].res;
	}
	*done += (size_t)got;
	return 0;
}

static int ring_notify(struct mb_target *t, const struct mb_note *notes, size_t n,
		       uint64_t *lat_ns)
{
	struct dmasvc_queue *q = dmasvc_default_queue(t->c);
	size_t sent = 0, done = 0;
	int first_err = 0, ret;
	bool in_batch = true;

	if (n == 1) {
		uint64_t t0 = mb_now_ns();

		ret = t->whole && notes[0].populate ?
			dmasvc_prefault(t->map + notes[0].offset, notes[0].length, true) : 0;
		if (!ret)
			ret = notes[0].populate ?
			dmasvc_populate(t->c, t->region_id, notes[0].offset, notes[0].length) :
			dmasvc_discard(t->c, t->region_id, notes[0].offset, notes[0].length);
		lat_ns[0] = mb_now_ns() - t0;
		return ret;
	}
	if (n > t->t_cap) {
		uint64_t *p = realloc(t->t_sub, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->t_sub = p;
		t->t_cap = n;
	}
	/* One batch: the daemon sees the notes whole (up to its drain size). */
	ret = dmasvc_queue_batch_begin(q);
	if (ret)
		return ret;
	while (done < n) {
		while (sent < n) {
			t->t_sub[sent] = mb_now_ns();
			ret = submit_one(t, q, t->region_id, &notes[sent], sent);
			if (ret == -EAGAIN)
				break; /* libdmasvc published the batch so far */
			if (ret)
				goto out;
			sent++;
		}
		if (in_batch && sent == n) {
			in_batch = false;
			ret = dmasvc_queue_batch_end(q);
			if (ret)
				goto out;
		}
		ret = reap_some(t, q, true, n, lat_ns, &done, &first_err);
		if (ret)
			goto out;
	}
	ret = first_err;
out:
	if (in_batch)
		(void)dmasvc_queue_batch_end(q); /* the error to report is ret */
	return ret;
}

static int ring_counts(struct mb_target *t, struct mb_counts *out)
{
	struct mb_counts now = { 0 };
	int ret = session_counts(t, &now);

	*out = (struct mb_counts){ 0 };
	if (ret)
		return ret;
	out->map_calls = now.map_calls - t->base.map_calls;
	out->unmap_calls = now.unmap_calls - t->base.unmap_calls;
	return 0;
}

static pid_t ring_pin_pid(struct mb_target *t)
{
	return t->daemon;
}

/* Stop (SIGSTOP) or continue (SIGCONT) the daemon: see mb_path_ops.freeze. */
static void ring_freeze(struct mb_target *t, bool frozen)
{
	if (t->daemon > 0)
		kill(t->daemon, frozen ? SIGSTOP : SIGCONT);
}

const struct mb_path_ops mb_ring_ops = {
	.name = "ring",
	.open = ring_open,
	.close = ring_close,
	.region_add = ring_region_add,
	.region_del = ring_region_del,
	.notify = ring_notify,
	.counts = ring_counts,
	.pin_pid = ring_pin_pid,
	.freeze = ring_freeze,
};

const struct mb_path_ops mb_faultin_ops = {
	.name = "faultin",
	.open = faultin_open,
	.close = ring_close,
	.region_add = ring_region_add,
	.region_del = ring_region_del,
	.notify = ring_notify,
	.counts = ring_counts,
	.pin_pid = ring_pin_pid,
	.freeze = ring_freeze,
};
