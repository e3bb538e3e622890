// SPDX-License-Identifier: MIT
/*
 * keeper-dummy.c - a stand-in daemon for the host test of fdstore-keeper
 * (test-keeper.sh), linked with sd_static.c as dmasvc-static is, so the
 * same code paths (sd_listen_fds_with_names, sd_pid_notify_with_fds) are
 * exercised against the keeper.
 *
 * Usage: keeper-dummy REPORT SOCKET
 * Each start: the passed fds must be "dmasvc.socket" first (a listening
 * SOCK_SEQPACKET socket bound to SOCKET) then any "dummy-mem"; with a
 * dummy-mem memfd its counter is read and incremented, without one a memfd
 * is made with counter 1 and stored (FDSTORE=1, FDNAME=dummy-mem).  When the
 * counter reaches 3 the memfd is removed again (FDSTOREREMOVE=1).  Then
 * READY=1, and one line appended to REPORT:
 *   start pid=<pid> fds=<n> names=<a:b:...> counter=<c> sock=<0|1>
 * then it waits for a signal (SIGTERM: exit 0).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

int sd_listen_fds_with_names(int unset_environment, char ***names);
int sd_pid_notify_with_fds(pid_t pid, int unset_environment, const char *state, const int *fds,
			   unsigned n_fds);

int main(int argc, char **argv)
{
	char **names = NULL, joined[1024] = "";
	int n, memfd = -1, sock_ok = 0;
	unsigned int counter = 0;
	FILE *rep;
	sigset_t set;
	int sig;

	if (argc != 3)
		return 2;
	n = sd_listen_fds_with_names(1, &names);
	if (n < 0)
		return 3;
	if (getenv("LISTEN_PID") || getenv("LISTEN_FDS"))
		return 4; /* unset_environment must have removed them */
	for (int i = 0; i < n; i++) {
		if (i)
			strncat(joined, ":", sizeof(joined) - strlen(joined) - 1);
		strncat(joined, names[i], sizeof(joined) - strlen(joined) - 1);
		if (!strcmp(names[i], "dmasvc.socket"))
			sock_ok = i == 0 && sd_is_socket_unix(SD_LISTEN_FDS_START + i, SOCK_SEQPACKET,
							      1, argv[2], 0) == 1;
		if (!strcmp(names[i], "dummy-mem"))
			memfd = SD_LISTEN_FDS_START + i;
		free(names[i]);
	}
	free(names);
	if (memfd >= 0) {
		if (pread(memfd, &counter, sizeof(counter), 0) != sizeof(counter))
			return 5;
		counter++;
		if (pwrite(memfd, &counter, sizeof(counter), 0) != sizeof(counter))
			return 5;
		if (counter == 3 && sd_pid_notify_with_fds(0, 0, "FDSTOREREMOVE=1\nFDNAME=dummy-mem",
							   NULL, 0) != 1)
			return 6;
	} else {
		counter = 1;
		memfd = memfd_create("dummy-mem", MFD_CLOEXEC);
		if (memfd < 0 || pwrite(memfd, &counter, sizeof(counter), 0) != sizeof(counter))
			return 5;
		if (sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=dummy-mem", &memfd, 1) != 1)
			return 6;
	}
	if (sd_notify(0, "READY=1\nSTATUS=dummy") != 1)
		return 7;
	rep = fopen(argv[1], "a");
	if (!rep)
		return 8;
	fprintf(rep, "start pid=%d fds=%d names=%s counter=%u sock=%d\n", (int)getpid(), n, joined,
		counter, sock_ok);
	fclose(rep);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (sigwait(&set, &sig) == 0 && sig == SIGTERM)
		return 0;
	return 1;
}
