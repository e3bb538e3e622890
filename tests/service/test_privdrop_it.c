/* SPDX-License-Identifier: MIT */
/*
 * test_privdrop_it.c - dmasvc --user and --socket-group, as root: what the
 * kernel says the running service is (/proc/PID/status of every thread:
 * uids, gids, capability sets), that it still pins guest memory beyond
 * RLIMIT_MEMLOCK (CAP_IPC_LOCK, the one capability it keeps), and who may
 * connect (socket file group and mode, then the allow-list).  Skipped when
 * not root.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_util.h"

#define MiB (1ull << 20)
#define CAP_IPC_LOCK_MASK (1ull << 14)

static struct it_svc svc;

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root (to start dmasvc as root and drop)");
}

static void finish(void)
{
	it_suite_stop(&svc);
}

TestSuite(privdrop, .fini = finish, .timeout = 60);

/* The value of @key in /proc/@pid/task/@tid/status ("" if absent). */
static void status_field(pid_t pid, const char *tid, const char *key, char *out, size_t len)
{
	char path[96], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, tid);
	out[0] = '\0';
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		size_t k = strlen(key);

		if (!strncmp(line, key, k) && line[k] == ':') {
			char *v = line + k + 1;

			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, len, "%s", v);
			break;
		}
	}
	fclose(f);
}

static unsigned long long hex_field(pid_t pid, const char *tid, const char *key)
{
	char v[64];

	status_field(pid, tid, key, v, sizeof(v));
	return strtoull(v, NULL, 16);
}

static gid_t group_of(const char *name, gid_t fallback)
{
	struct group *g = getgrnam(name);

	return g ? g->gr_gid : fallback;
}

Test(privdrop, runs_as_the_user_with_cap_ipc_lock_only_and_still_pins)
{
	const char *extra[] = { "--user", "nobody", "--socket-group", "nogroup", NULL };
	struct rlimit old, small = { 8 * MiB, 8 * MiB };
	struct passwd *pw;
	struct dmasvc_client *c;
	struct stat st;
	char want[64], got[128], why[256];
	int threads = 0, mem, region, fd;
	int64_t base;
	DIR *dir;
	struct dirent *de;
	uint64_t size = 64 * MiB;

	need_root();
	pw = getpwnam("nobody");
	cr_assert(pw, "user nobody exists");
	/* the service inherits an 8 MiB memlock limit: pinning 32 MiB needs CAP_IPC_LOCK */
	cr_assert_eq(getrlimit(RLIMIT_MEMLOCK, &old), 0);
	cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &small), 0);
	cr_assert_eq(it_svc_start(&svc, extra), 0, "dmasvc --user nobody starts");
	cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &old), 0);

	/* every thread (the loop, workers started after the drop) */
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", (unsigned)pw->pw_uid, (unsigned)pw->pw_uid,
		 (unsigned)pw->pw_uid, (unsigned)pw->pw_uid);
	snprintf(got, sizeof(got), "/proc/%d/task", (int)svc.pid);
	dir = opendir(got);
	cr_assert(dir);
	while ((de = readdir(dir))) {
		char v[128], gw[64];

		if (de->d_name[0] == '.')
			continue;
		threads++;
		status_field(svc.pid, de->d_name, "Uid", v, sizeof(v));
		cr_expect_str_eq(v, want, "thread %s Uid", de->d_name);
		snprintf(gw, sizeof(gw), "%u\t%u\t%u\t%u", (unsigned)pw->pw_gid, (unsigned)pw->pw_gid,
			 (unsigned)pw->pw_gid, (unsigned)pw->pw_gid);
		status_field(svc.pid, de->d_name, "Gid", v, sizeof(v));
		cr_expect_str_eq(v, gw, "thread %s Gid", de->d_name);
		cr_expect_eq(hex_field(svc.pid, de->d_name, "CapEff"), CAP_IPC_LOCK_MASK,
			     "thread %s CapEff %llx", de->d_name, hex_field(svc.pid, de->d_name, "CapEff"));
		cr_expect_eq(hex_field(svc.pid, de->d_name, "CapPrm"), CAP_IPC_LOCK_MASK, "CapPrm");
		cr_expect_eq(hex_field(svc.pid, de->d_name, "CapBnd"), 0, "CapBnd: empty, nothing to regain");
		cr_expect_eq(hex_field(svc.pid, de->d_name, "CapInh"), 0, "CapInh");
		cr_expect_eq(hex_field(svc.pid, de->d_name, "CapAmb"), 0, "CapAmb");
	}
	closedir(dir);
	/* --workers 2: the loop thread is one lane, one thread more started after the drop */
	cr_expect_geq(threads, 2, "the loop and a worker (got %d threads)", threads);

	/* the socket file: the user's, the group's, 0660 */
	cr_assert_eq(stat(svc.sock, &st), 0);
	cr_expect_eq(st.st_uid, pw->pw_uid);
	cr_expect_eq(st.st_gid, group_of("nogroup", 65534));
	cr_expect_eq(st.st_mode & 0777, 0660);

	/* a populate still works, pinned beyond the 8 MiB limit */
	base = it_vmlck(svc.pid);
	cr_assert_geq(base, 0);
	cr_assert_eq(dmasvc_connect(svc.sock, NULL, &c), 0);
	fd = it_memfd(size, true);
	cr_assert_geq(fd, 0);
	mem = dmasvc_memory_add(c, fd, size, 0);
	cr_assert_geq(mem, 0, "memory_add: %d", mem);
	struct dmasvc_region_desc d = { .mem_id = (uint32_t)mem, .size = size, .iova = 1ull << 32,
					.granule = 2 * MiB };

	region = dmasvc_region_add(c, &d);
	cr_assert_geq(region, 0, "region_add: %d", region);
	cr_assert_eq(dmasvc_populate(c, (uint32_t)region, 0, 32 * MiB), 0, "populate 32 MiB");
	cr_expect_eq(it_wait_vmlck(svc.pid, base + (int64_t)(32 * MiB), 2000), base + (int64_t)(32 * MiB),
		     "VmPin + VmLck count the 32 MiB pinned");
	cr_expect_eq(it_check_region(c, (uint32_t)region, d.iova, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(dmasvc_discard(c, (uint32_t)region, 0, 32 * MiB), 0);
	cr_expect_eq(it_wait_vmlck(svc.pid, base, 2000), base, "discard unpins");
	dmasvc_disconnect(c);
	close(fd);
}

/*
 * Connect to @sock as @uid/@gid (a forked child) and say HELLO.  Returns 0
 * (admitted), 1 (connect refused by the file's permissions), 2 (the service
 * closed the connection: not on the allow-list), or 3 (other).
 */
static int try_as(const char *sock, uid_t uid, gid_t gid)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd;

		if (setgroups(0, NULL) || setgid(gid) || setuid(uid))
			_exit(3);
		fd = it_raw_connect(sock);
		if (fd == -EACCES)
			_exit(1);
		if (fd < 0)
			_exit(3);
		_exit(it_raw_hello(fd) == 0 ? 0 : 2);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
}

Test(privdrop, socket_group_connects_and_the_allow_list_still_applies)
{
	gid_t nogroup = group_of("nogroup", 65534);
	const char *extra[] = { "--socket-group", "nogroup", NULL };

	need_root();
	cr_assert_eq(it_svc_start(&svc, extra), 0);
	/* the socket dir (mkdtemp, 0700) must let the others reach the socket */
	cr_assert_eq(chmod(svc.dir, 0755), 0);
	cr_expect_eq(try_as(svc.sock, 4242, nogroup), 0, "the socket group connects and is admitted");
	cr_expect_eq(try_as(svc.sock, 4242, 4242), 1, "others cannot open the 0660 socket");
	cr_expect_eq(it_svc_stop(&svc), 0);

	/* an explicit allow-list: the group still opens the file, the service refuses it */
	const char *extra2[] = { "--socket-group", "nogroup", "--allow-uid", "0", NULL };

	cr_assert_eq(it_svc_start(&svc, extra2), 0);
	cr_assert_eq(chmod(svc.dir, 0755), 0);
	cr_expect_eq(try_as(svc.sock, 4242, nogroup), 2, "not on --allow-uid: closed");
	cr_expect_eq(it_svc_stop(&svc), 0);

	char gid_arg[16];

	snprintf(gid_arg, sizeof(gid_arg), "%u", (unsigned)nogroup);
	const char *extra3[] = { "--socket-group", "nogroup", "--allow-uid", "0", "--allow-gid", gid_arg,
				 NULL };

	cr_assert_eq(it_svc_start(&svc, extra3), 0);
	cr_assert_eq(chmod(svc.dir, 0755), 0);
	cr_expect_eq(try_as(svc.sock, 4242, nogroup), 0, "--allow-gid admits the group");
}
