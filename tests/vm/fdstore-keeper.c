// SPDX-License-Identifier: MIT
/*
 * fdstore-keeper.c - systemd's socket activation, notify socket, fd store
 * and Restart= for the busybox guest (tests/vm), where no systemd runs.
 * It does for one daemon what dmasvc.socket + dmasvc.service
 * (Restart=on-failure, FileDescriptorStoreMax=) do under systemd 252:
 *
 *   - owns the listening socket: binds SOCKET itself (SOCK_SEQPACKET, as
 *     the socket unit's ListenSequentialPacket=) and never closes it;
 *   - creates the notify socket (an AF_UNIX datagram socket at NOTIFY) and
 *     reads the daemon's messages: READY=1, FDSTORE=1 with FDNAME= and fds
 *     as SCM_RIGHTS (kept under that name; "stored" without FDNAME, like
 *     systemd; a second fd naming the same open file as one kept is
 *     closed, as systemd's same_fd() check does), FDSTOREREMOVE=1 with
 *     FDNAME= (every fd of that name closed);
 *   - starts the daemon: fork, in the child the listening socket at fd 3
 *     named as systemd names a socket unit's fds (FileDescriptorName=
 *     defaults to the unit's name: "dmasvc.socket"), then every kept fd in the order stored, with its
 *     name, LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID = the child's own pid,
 *     NOTIFY_SOCKET, then execv;
 *   - restarts it when it dies unless it exited 0 (Restart=on-failure),
 *     or when the test asks.
 *
 * Usage: fdstore-keeper [options] -- DAEMON [ARG]...
 *   --socket PATH    the service socket (bound here, passed first)
 *   --socket-name N  its fd name (default "dmasvc.socket", the unit's name)
 *   --notify PATH    the notify socket (default PATH.notify)
 *   --ctl PATH       a FIFO the test writes one-line commands to:
 *                      kill      SIGKILL the daemon (a restart follows)
 *                      term      SIGTERM it (exit 0: no restart)
 *                      hup       SIGHUP it
 *                      start     start it if none runs
 *                      exec P    the next start runs the binary P
 *                      quit      SIGTERM the daemon, wait, exit
 *   --state PATH     rewritten (by rename) after every change, lines:
 *                      pid N         the running daemon's pid, 0 for none
 *                      starts N      how many times it was started
 *                      ready N       READY=1 messages received
 *                      exit S        the last exit ("code N" / "signal N")
 *                      fds N         count of kept fds
 *                      fd NAME       one line per kept fd, in order
 *   --restart-sec S  wait before a restart (RestartSec=, default 0)
 *   --log PATH       the daemon's stdout+stderr (appended)
 * Logs what it does on stderr, prefixed "keeper:".  Exits 0 after quit.
 *
 * Not done (systemd does): credentials checks of the sender
 * (NotifyAccess=main; here any sender is taken), the watchdog, the
 * FileDescriptorStoreMax limit (fixed at KEEP_MAX), poll-based pruning of
 * hung-up fds (fds are kept until FDSTOREREMOVE or the keeper exits).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdstore-notify.h"

#define KEEP_MAX 1024

struct kept {
	int fd;
	char name[KN_NAME_MAX + 1];
};

/* Everything the keeper owns; one instance, in main(). */
struct keeper {
	const char *sock_path, *sock_name, *notify_path, *ctl_path, *state_path, *log_path;
	char **argv;        /* the daemon's argv; argv[0] replaced by exec P */
	char *exec_path;    /* owned; NULL: argv[0] */
	int listen_fd, notify_fd, ctl_fd, sig_fd;
	pid_t pid;
	unsigned int starts, ready, restart_sec;
	char last_exit[32];
	struct kept kept[KEEP_MAX];
	unsigned int nkept;
	bool quitting;
};

static void klog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void klog(const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "keeper: %s\n", buf);
}

/* Write the state file (by rename, so a reader never sees half of it). */
static void write_state(struct keeper *k)
{
	char tmp[4200];
	FILE *f;

	if (!k->state_path)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", k->state_path);
	f = fopen(tmp, "w");
	if (!f) {
		klog("cannot write %s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(f, "pid %d\nstarts %u\nready %u\nexit %s\nfds %u\n", (int)k->pid, k->starts, k->ready,
		k->last_exit[0] ? k->last_exit : "none", k->nkept);
	for (unsigned int i = 0; i < k->nkept; i++)
		fprintf(f, "fd %s\n", k->kept[i].name);
	if (fclose(f) != 0 || rename(tmp, k->state_path) != 0)
		klog("cannot write %s: %s", k->state_path, strerror(errno));
}

/* Whether @a and @b are the same open file (kcmp KCMP_FILE, else st_dev/st_ino+flags). */
static bool same_file(int a, int b)
{
	struct stat sa, sb;
	long r = syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, a, b);

	if (r >= 0)
		return r == 0;
	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
		return false;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino &&
	       fcntl(a, F_GETFL) == fcntl(b, F_GETFL);
}

/* Keep @fd under @name (takes ownership of @fd in every case). */
static void store_fd(struct keeper *k, int fd, const char *name)
{
	for (unsigned int i = 0; i < k->nkept; i++) {
		if (same_file(k->kept[i].fd, fd)) {
			klog("FDSTORE %s: the same file as kept %s, not stored twice", name,
			     k->kept[i].name);
			close(fd);
			return;
		}
	}
	if (k->nkept == KEEP_MAX) {
		klog("FDSTORE %s: the store is full (%u fds), closed", name, KEEP_MAX);
		close(fd);
		return;
	}
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	k->kept[k->nkept].fd = fd;
	snprintf(k->kept[k->nkept].name, sizeof(k->kept[0].name), "%s", name);
	k->nkept++;
	klog("FDSTORE %s (fd %d), %u kept", name, fd, k->nkept);
}

static void remove_fds(struct keeper *k, const char *name)
{
	unsigned int j = 0, removed = 0;

	for (unsigned int i = 0; i < k->nkept; i++) {
		if (!strcmp(k->kept[i].name, name)) {
			close(k->kept[i].fd);
			removed++;
		} else {
			k->kept[j++] = k->kept[i];
		}
	}
	k->nkept = j;
	klog("FDSTOREREMOVE %s: %u closed, %u kept", name, removed, k->nkept);
}

/* Read one notify datagram and act on it. */
static void on_notify(struct keeper *k)
{
	char buf[4097];
	union {
		char b[CMSG_SPACE(sizeof(int) * KN_MAX_FDS) + CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b,
			     .msg_controllen = sizeof(cb.b) };
	int fds[KN_MAX_FDS];
	unsigned int nfds = 0;
	struct kn_msg m;
	ssize_t n = recvmsg(k->notify_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
	int rc;

	if (n < 0)
		return;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			unsigned int cnt = (unsigned int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			for (unsigned int i = 0; i < cnt; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (nfds < KN_MAX_FDS)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
	}
	if ((size_t)n >= sizeof(buf) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		klog("notify message truncated (%zd bytes, flags 0x%x): ignored, %u fds closed", n,
		     mh.msg_flags, nfds);
		for (unsigned int i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	rc = kn_parse(buf, (size_t)n, &m);
	if (rc < 0) {
		klog("notify message refused (%s): %u fds closed", strerror(-rc), nfds);
		for (unsigned int i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	if (m.ready) {
		k->ready++;
		klog("READY=1 (%u)", k->ready);
	}
	if (m.fdstore_remove)
		remove_fds(k, m.fdname[0] ? m.fdname : "stored");
	for (unsigned int i = 0; i < nfds; i++) {
		if (m.fdstore)
			store_fd(k, fds[i], m.fdname[0] ? m.fdname : "stored");
		else
			close(fds[i]); /* systemd closes fds sent without FDSTORE=1 */
	}
	if (nfds && !m.fdstore)
		klog("%u fds without FDSTORE=1: closed", nfds);
	write_state(k);
}

/* Move @fds (n of them) to 3, 4, ... in the child, clearing CLOEXEC. */
static int place_fds(const int *fds, unsigned int n)
{
	int tmp[KEEP_MAX + 1];

	/* First above every target, so no dup2 overwrites a source. */
	for (unsigned int i = 0; i < n; i++) {
		tmp[i] = fcntl(fds[i], F_DUPFD, 3 + (int)n);
		if (tmp[i] < 0)
			return -errno;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (dup2(tmp[i], 3 + (int)i) < 0)
			return -errno;
		close(tmp[i]);
	}
	return 0;
}

static void start_daemon(struct keeper *k)
{
	const char *bin = k->exec_path ? k->exec_path : k->argv[0];
	pid_t pid;

	pid = fork();
	if (pid < 0) {
		klog("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		int fds[KEEP_MAX + 1];
		size_t namelen = strlen(k->sock_name) + 1;
		char *names, num[32];
		sigset_t all;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		fds[0] = k->listen_fd;
		for (unsigned int i = 0; i < k->nkept; i++) {
			fds[i + 1] = k->kept[i].fd;
			namelen += strlen(k->kept[i].name) + 1;
		}
		names = malloc(namelen);
		if (!names)
			_exit(127);
		strcpy(names, k->sock_name);
		for (unsigned int i = 0; i < k->nkept; i++) {
			strcat(names, ":");
			strcat(names, k->kept[i].name);
		}
		if (k->log_path) {
			int lf = open(k->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

			if (lf >= 0) {
				dup2(lf, 1);
				dup2(lf, 2);
				close(lf);
			}
		}
		if (place_fds(fds, k->nkept + 1) < 0)
			_exit(127);
		for (int fd = 4 + (int)k->nkept; fd < 4 + KEEP_MAX + 64; fd++)
			close(fd); /* nothing else leaks to the daemon */
		snprintf(num, sizeof(num), "%u", k->nkept + 1);
		setenv("LISTEN_FDS", num, 1);
		setenv("LISTEN_FDNAMES", names, 1);
		snprintf(num, sizeof(num), "%d", (int)getpid());
		setenv("LISTEN_PID", num, 1);
		setenv("NOTIFY_SOCKET", k->notify_path, 1);
		execv(bin, k->argv);
		fprintf(stderr, "keeper: execv %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	k->pid = pid;
	k->starts++;
	klog("started %s as pid %d (start %u) with %u fds: listen + %u kept", bin, (int)pid, k->starts,
	     k->nkept + 1, k->nkept);
	write_state(k);
}

static void send_sig(struct keeper *k, int sig, const char *what);

/* Drain the signalfd: SIGTERM/SIGINT quit (the daemon is stopped first), SIGCHLD reaps. */
static void on_signals(struct keeper *k)
{
	struct signalfd_siginfo si;
	int status;
	pid_t p;

	while (read(k->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo != SIGCHLD && !k->quitting) {
			k->quitting = true;
			send_sig(k, SIGTERM, "quit: SIGTERM");
		}
	}
	while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
		bool failed;

		if (p != k->pid)
			continue;
		if (WIFEXITED(status))
			snprintf(k->last_exit, sizeof(k->last_exit), "code %d", WEXITSTATUS(status));
		else
			snprintf(k->last_exit, sizeof(k->last_exit), "signal %d", WTERMSIG(status));
		failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
		klog("pid %d exited (%s)%s", (int)p, k->last_exit,
		     failed && !k->quitting ? ": restarting (on-failure)" : "");
		k->pid = 0;
		write_state(k);
		if (failed && !k->quitting) {
			if (k->restart_sec)
				sleep(k->restart_sec);
			start_daemon(k);
		}
	}
}

static void send_sig(struct keeper *k, int sig, const char *what)
{
	if (k->pid > 0 && kill(k->pid, sig) == 0)
		klog("%s pid %d", what, (int)k->pid);
	else
		klog("%s: no daemon runs", what);
}

/* One command line from the FIFO. */
static void on_command(struct keeper *k, char *line)
{
	if (!strcmp(line, "kill")) {
		send_sig(k, SIGKILL, "SIGKILL");
	} else if (!strcmp(line, "term")) {
		send_sig(k, SIGTERM, "SIGTERM");
	} else if (!strcmp(line, "hup")) {
		send_sig(k, SIGHUP, "SIGHUP");
	} else if (!strcmp(line, "start")) {
		if (k->pid == 0)
			start_daemon(k);
	} else if (!strncmp(line, "exec ", 5) && line[5] == '/') {
		free(k->exec_path);
		k->exec_path = strdup(line + 5);
		klog("next start runs %s", line + 5);
	} else if (!strcmp(line, "quit")) {
		k->quitting = true;
		send_sig(k, SIGTERM, "quit: SIGTERM");
	} else {
		klog("unknown command '%s'", line);
	}
}

static void on_ctl(struct keeper *k)
{
	static char buf[1024];
	static size_t have;
	ssize_t n = read(k->ctl_fd, buf + have, sizeof(buf) - 1 - have);
	char *nl;

	if (n <= 0)
		return;
	have += (size_t)n;
	buf[have] = '\0';
	while ((nl = strchr(buf, '\n'))) {
		*nl = '\0';
		on_command(k, buf);
		have -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, have + 1);
	}
	if (have == sizeof(buf) - 1)
		have = 0; /* a line too long: dropped */
}

static int bind_unix(const char *path, int type, struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (fd < 0 || strlen(path) >= sizeof(sa->sun_path))
		return -1;
	strcpy(sa->sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)sa, sizeof(*sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static struct keeper k = { .listen_fd = -1, .notify_fd = -1, .ctl_fd = -1 };
	static char notify_default[108];
	struct sockaddr_un sa;
	sigset_t mask;
	int i, one = 1;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			goto usage;
		if (!strcmp(argv[i], "--socket"))
			k.sock_path = v;
		else if (!strcmp(argv[i], "--socket-name"))
			k.sock_name = v;
		else if (!strcmp(argv[i], "--notify"))
			k.notify_path = v;
		else if (!strcmp(argv[i], "--ctl"))
			k.ctl_path = v;
		else if (!strcmp(argv[i], "--state"))
			k.state_path = v;
		else if (!strcmp(argv[i], "--log"))
			k.log_path = v;
		else if (!strcmp(argv[i], "--restart-sec"))
			k.restart_sec = (unsigned int)atoi(v);
		else
			goto usage;
		i++;
	}
	if (i + 1 >= argc || !k.sock_path || argv[i + 1][0] != '/')
		goto usage;
	k.argv = argv + i + 1;
	if (!k.sock_name)
		k.sock_name = "dmasvc.socket";
	if (!k.notify_path) {
		snprintf(notify_default, sizeof(notify_default), "%s.notify", k.sock_path);
		k.notify_path = notify_default;
	}
	k.listen_fd = bind_unix(k.sock_path, SOCK_SEQPACKET, &sa);
	if (k.listen_fd < 0 || listen(k.listen_fd, 128) < 0) {
		klog("cannot listen on %s: %s", k.sock_path, strerror(errno));
		return 1;
	}
	k.notify_fd = bind_unix(k.notify_path, SOCK_DGRAM, &sa);
	if (k.notify_fd < 0) {
		klog("cannot bind the notify socket %s: %s", k.notify_path, strerror(errno));
		return 1;
	}
	(void)setsockopt(k.notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	if (k.ctl_path) {
		unlink(k.ctl_path);
		/* O_RDWR: the FIFO never reports EOF when a writer closes. */
		if (mkfifo(k.ctl_path, 0600) < 0 ||
		    (k.ctl_fd = open(k.ctl_path, O_RDWR | O_CLOEXEC | O_NONBLOCK)) < 0) {
			klog("cannot make the control FIFO %s: %s", k.ctl_path, strerror(errno));
			return 1;
		}
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	k.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	start_daemon(&k);
	for (;;) {
		struct pollfd p[3] = { { .fd = k.notify_fd, .events = POLLIN },
				       { .fd = k.sig_fd, .events = POLLIN },
				       { .fd = k.ctl_fd, .events = POLLIN } };
		if (k.quitting && k.pid == 0)
			break;
		if (poll(p, k.ctl_fd >= 0 ? 3 : 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			klog("poll: %s", strerror(errno));
			return 1;
		}
		if (p[0].revents & POLLIN)
			on_notify(&k);
		if (p[1].revents & POLLIN)
			on_signals(&k);
		if (k.ctl_fd >= 0 && (p[2].revents & POLLIN))
			on_ctl(&k);
	}
	klog("quit: daemon gone, %u fds kept are closed", k.nkept);
	unlink(k.notify_path);
	if (k.ctl_path)
		unlink(k.ctl_path);
	free(k.exec_path);
	return 0;

usage:
	fprintf(stderr, "usage: fdstore-keeper --socket PATH [--socket-name NAME] [--notify PATH] [--ctl FIFO] "
			"[--state FILE] [--log FILE] [--restart-sec S] -- /ABS/DAEMON [ARG]...\n");
	return 2;
}
