/* SPDX-License-Identifier: MIT */
/*
 * config.c - read the configuration file into option tokens (see
 * config_priv.h for the format).  The file is trusted as much as the
 * command line (root's), but still parsed strictly: any line that is not a
 * comment, blank, or a valid setting stops the service with FILE:LINE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_priv.h"
#include "options_priv.h"

const char *cfg_find(int argc, char **argv, const char *default_path, bool *explicit_path,
		     bool *skip)
{
	const char *path = NULL;

	*skip = false;
	for (int i = 1; i < argc && argv[i]; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--"))
			break;
		if (!strcmp(a, "--help") || !strcmp(a, "--version"))
			*skip = true;
		else if (!strcmp(a, "--config") && i + 1 < argc)
			path = argv[++i];
		else if (!strncmp(a, "--config=", 9))
			path = a + 9;
	}
	*explicit_path = path != NULL;
	return path ? path : default_path;
}

void cfg_free(struct cfg_file *f)
{
	for (unsigned int i = 0; i < f->nr; i++)
		free(f->args[i]);
	free(f->args);
	free(f->lines);
	f->args = NULL;
	f->lines = NULL;
	f->nr = 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The option named @key in the table, or NULL. */
static const struct option *find_key(const char *key)
{
	for (const struct option *op = opt_long_options(); op->name; op++)
		if (!strcmp(op->name, key))
			return op;
	return NULL;
}

/* 1 for true/yes/on/1, 0 for false/no/off/0, -1 otherwise. */
static int parse_bool(const char *v)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (unsigned int i = 0; i < 4; i++) {
		if (!strcmp(v, yes[i]))
			return 1;
		if (!strcmp(v, no[i]))
			return 0;
	}
	return -1;
}

/*
 * One line (NUL-terminated, no newline, writable) -> *@tok: a malloc'ed
 * token, or NULL for a comment, a blank line or a false flag.  Returns 0,
 * -EINVAL with the reason (no FILE:LINE) in @err, or -ENOMEM.
 */
static int parse_line(char *line, char **tok, char *err, size_t errlen)
{
	const struct option *op;
	char *key, *val, *eq, *end;
	struct dsvc_options scratch;
	char perr[256];
	char *argv[3];
	int b, ret;

	*tok = NULL;
	key = line;
	while (is_blank(*key))
		key++;
	if (!*key || *key == '#' || *key == ';')
		return 0;
	eq = strchr(key, '=');
	if (!eq)
		return dlog_errf(-EINVAL, err, errlen, "expected 'key = value', got '%s'", key);
	end = eq;
	while (end > key && is_blank(end[-1]))
		end--;
	*end = '\0';
	val = eq + 1;
	while (is_blank(*val))
		val++;
	end = val + strlen(val);
	while (end > val && is_blank(end[-1]))
		end--;
	*end = '\0';
	if (!*key)
		return dlog_errf(-EINVAL, err, errlen, "no key before '='");
	if (!strcmp(key, "config") || !strcmp(key, "help") || !strcmp(key, "version"))
		return dlog_errf(-EINVAL, err, errlen, "'%s' cannot be set in a configuration file", key);
	op = find_key(key);
	if (!op)
		return dlog_errf(-EINVAL, err, errlen, "unknown key '%s' (keys are dmasvc's long options, see --help)",
				 key);
	if (op->has_arg == no_argument) {
		b = parse_bool(val);
		if (b < 0)
			return dlog_errf(-EINVAL, err, errlen,
					 "%s is a flag: the value must be true or false, not '%s'", key, val);
		if (!b)
			return 0;
		ret = asprintf(tok, "--%s", key);
	} else {
		if (!*val)
			return dlog_errf(-EINVAL, err, errlen, "%s needs a value", key);
		ret = asprintf(tok, "--%s=%s", key, val);
	}
	if (ret < 0) {
		*tok = NULL;
		return -ENOMEM;
	}
	/* The value's own check: the command-line parser, on this token alone. */
	argv[0] = "dmasvc";
	argv[1] = *tok;
	argv[2] = NULL;
	ret = opt_parse(2, argv, &scratch, NULL, perr, sizeof(perr));
	if (ret < 0) {
		free(*tok);
		*tok = NULL;
		return dlog_errf(-EINVAL, err, errlen, "%s", perr);
	}
	return 0;
}

/* Append @tok from line @lineno to @f.  Returns 0 or -ENOMEM (tok freed). */
static int add_token(struct cfg_file *f, char *tok, unsigned int lineno)
{
	char **args = realloc(f->args, (f->nr + 1) * sizeof(*args));
	unsigned int *lines;

	if (!args) {
		free(tok);
		return -ENOMEM;
	}
	f->args = args;
	lines = realloc(f->lines, (f->nr + 1) * sizeof(*lines));
	if (!lines) {
		free(tok);
		return -ENOMEM;
	}
	f->lines = lines;
	f->args[f->nr] = tok;
	f->lines[f->nr++] = lineno;
	return 0;
}

int cfg_parse_text(const char *name, const char *text, struct cfg_file *out, char *err,
		   size_t errlen)
{
	char line[CFG_MAX_LINE + 1], reason[384];
	unsigned int lineno = 0;
	const char *p = text, *nl;
	size_t len;
	char *tok;
	int ret;

	memset(out, 0, sizeof(*out));
	while (*p) {
		lineno++;
		nl = strchr(p, '\n');
		len = nl ? (size_t)(nl - p) : strlen(p);
		if (len > CFG_MAX_LINE) {
			ret = dlog_errf(-EINVAL, err, errlen, "%s:%u: line longer than %d bytes", name,
					lineno, CFG_MAX_LINE);
			goto err_free;
		}
		memcpy(line, p, len);
		line[len] = '\0';
		p = nl ? nl + 1 : p + len;
		ret = parse_line(line, &tok, reason, sizeof(reason));
		if (ret == -ENOMEM)
			goto err_free;
		if (ret) {
			dlog_errf(ret, err, errlen, "%s:%u: %s", name, lineno, reason);
			goto err_free;
		}
		if (!tok)
			continue;
		if (out->nr == CFG_MAX_SETTINGS) {
			free(tok);
			ret = dlog_errf(-EINVAL, err, errlen, "%s:%u: more than %d settings", name, lineno,
					CFG_MAX_SETTINGS);
			goto err_free;
		}
		ret = add_token(out, tok, lineno);
		if (ret)
			goto err_free;
	}
	return 0;

err_free:
	if (ret == -ENOMEM)
		dlog_errf(ret, err, errlen, "%s: out of memory", name);
	cfg_free(out);
	return ret;
}

int cfg_load(const char *path, bool explicit_path, struct cfg_file *out, char *err,
	     size_t errlen)
{
	size_t got = 0;
	char *text;
	ssize_t n;
	int fd, ret;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT && !explicit_path)
			return 0;
		return dlog_errf(ret, err, errlen, "cannot open the configuration file %s: %s", path,
				 strerror(-ret));
	}
	text = malloc(CFG_MAX_BYTES + 1);
	if (!text) {
		close(fd);
		return dlog_errf(-ENOMEM, err, errlen, "%s: out of memory", path);
	}
	/* read to EOF, one byte past the limit to see it crossed (/dev/null reads empty) */
	for (;;) {
		n = read(fd, text + got, CFG_MAX_BYTES + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got > CFG_MAX_BYTES)
			break;
	}
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (ret || got > CFG_MAX_BYTES) {
		free(text);
		if (ret)
			return dlog_errf(ret, err, errlen, "cannot read the configuration file %s: %s", path,
					 strerror(-ret));
		return dlog_errf(-EFBIG, err, errlen, "configuration file %s is larger than %u bytes", path,
				 CFG_MAX_BYTES);
	}
	text[got] = '\0';
	if (strlen(text) != got) {
		free(text);
		return dlog_errf(-EINVAL, err, errlen, "configuration file %s contains a NUL byte", path);
	}
	ret = cfg_parse_text(path, text, out, err, errlen);
	free(text);
	return ret;
}

int cfg_merge(const struct cfg_file *f, int argc, char **argv, int *margc, char ***margv)
{
	int n = argc + (int)f->nr;
	char **v = calloc((size_t)n + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	v[0] = argc > 0 ? argv[0] : "dmasvc";
	for (unsigned int i = 0; i < f->nr; i++)
		v[1 + i] = f->args[i];
	for (int i = 1; i < argc; i++)
		v[f->nr + (unsigned int)i] = argv[i];
	*margc = argc > 0 ? n : (int)f->nr + 1;
	*margv = v;
	return 0;
}
