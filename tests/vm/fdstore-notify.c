// SPDX-License-Identifier: MIT
/* fdstore-notify.c - see fdstore-notify.h. */
#include <errno.h>
#include <string.h>

#include "fdstore-notify.h"

bool kn_fdname_valid(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e || s[n] == ':')
			return false;
	return n >= 1 && n <= KN_NAME_MAX;
}

/* Whether line [@p, @p + @n) is exactly @key (as "KEY=VALUE"). */
static bool is(const char *p, size_t n, const char *kv)
{
	return strlen(kv) == n && !memcmp(p, kv, n);
}

int kn_parse(const char *buf, size_t len, struct kn_msg *m)
{
	memset(m, 0, sizeof(*m));
	if (memchr(buf, '\0', len))
		return -EBADMSG;
	for (size_t i = 0; i < len;) {
		const char *p = buf + i, *nl = memchr(p, '\n', len - i);
		size_t n = nl ? (size_t)(nl - p) : len - i;

		i += n + 1;
		if (is(p, n, "READY=1"))
			m->ready = true;
		else if (is(p, n, "RELOADING=1"))
			m->reloading = true;
		else if (is(p, n, "STOPPING=1"))
			m->stopping = true;
		else if (is(p, n, "FDSTORE=1"))
			m->fdstore = true;
		else if (is(p, n, "FDSTOREREMOVE=1"))
			m->fdstore_remove = true;
		else if (n >= 7 && !memcmp(p, "FDNAME=", 7)) {
			if (n - 7 > KN_NAME_MAX)
				return -EINVAL;
			memcpy(m->fdname, p + 7, n - 7);
			m->fdname[n - 7] = '\0';
			if (!kn_fdname_valid(m->fdname))
				return -EINVAL;
		}
	}
	return 0;
}
