/* SPDX-License-Identifier: MIT */
/*
 * ring_eventfd.c - the doorbell and completion eventfds: open, signal, wait.
 *
 * Thin wrappers that turn -1/errno into -errno at once and retry EINTR.
 */
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <dmasvc/ring.h>

/* Contracts of the four helpers: ring.h, section "eventfd". */
int ring_eventfd_open(bool nonblock)
{
	int fd = eventfd(0, EFD_CLOEXEC | (nonblock ? EFD_NONBLOCK : 0));

	return fd < 0 ? -errno : fd;
}

int ring_eventfd_signal(int fd)
{
	uint64_t one = 1;
	ssize_t n;

	do {
		n = write(fd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(one))
		return 0;
	if (n < 0 && errno == EAGAIN)
		return 0; /* counter saturated: a wake-up is pending anyway */
	return n < 0 ? -errno : -EIO;
}

int ring_eventfd_consume(int fd)
{
	uint64_t count;
	ssize_t n;

	do {
		n = read(fd, &count, sizeof(count));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(count))
		return 0;
	return n < 0 ? -errno : -EIO;
}

int ring_eventfd_wait(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int n, ret;

	for (;;) {
		n = poll(&pfd, 1, timeout_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		ret = ring_eventfd_consume(fd);
		/* another reader may have taken it (EAGAIN): wait again */
		if (ret != -EAGAIN)
			return ret;
	}
}
