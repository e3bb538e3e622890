/* SPDX-License-Identifier: MIT */
/*
 * test_config.c - the configuration file: its format (comments, blanks,
 * flags as booleans, repeatable keys), every refusal naming FILE:LINE (bad
 * line, unknown key, bad value through the option parser, limits), the
 * missing-file rules, and the override order (command line over file).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_priv.h"
#include "options_priv.h"

/* Parse @text as FILE "t.conf"; returns the result, @err set on error. */
static int parse(const char *text, struct cfg_file *f, char *err, size_t errlen)
{
	return cfg_parse_text("t.conf", text, f, err, errlen);
}

/* Parse @text, then @cmdline (NULL-terminated, argv[0] included) over it. */
static int layered(const char *text, char **cmdline, struct dsvc_options *o, struct cfg_file *f,
		   char ***margv, char *err, size_t errlen)
{
	int argc = 0, margc, ret;

	while (cmdline[argc])
		argc++;
	ret = parse(text, f, err, errlen);
	if (ret)
		return ret;
	cr_assert_eq(cfg_merge(f, argc, cmdline, &margc, margv), 0);
	return opt_parse_layered(margc, *margv, (int)f->nr, o, stdout, err, errlen);
}

Test(config, format)
{
	struct cfg_file f;
	char err[512];

	cr_assert_eq(parse("# a comment\n"
			   "\n"
			   "   ; another\n"
			   "workers = 3\n"
			   "\tallow-uid=107   \n"
			   "allow-uid = 108\r\n"
			   "soft-iommu = true\n"
			   "socket = /run/x y.sock\n"
			   "stats-interval = 5", /* no final newline */
			   &f, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(f.nr, 6);
	cr_expect_str_eq(f.args[0], "--workers=3");
	cr_expect_eq(f.lines[0], 4);
	cr_expect_str_eq(f.args[1], "--allow-uid=107");
	cr_expect_str_eq(f.args[2], "--allow-uid=108");
	cr_expect_str_eq(f.args[3], "--soft-iommu");
	cr_expect_str_eq(f.args[4], "--socket=/run/x y.sock", "inner blanks are kept");
	cr_expect_str_eq(f.args[5], "--stats-interval=5");
	cr_expect_eq(f.lines[5], 9);
	cfg_free(&f);
	cfg_free(&f); /* idempotent */

	cr_assert_eq(parse("soft-iommu = false\nsoft-iommu = off\nsoft-iommu = no\nsoft-iommu = 0\n", &f,
			   err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(f.nr, 0, "a false flag is left out");
	cr_assert_eq(parse("", &f, err, sizeof(err)), 0);
	cr_expect_eq(f.nr, 0);
}

Test(config, bad_lines_name_file_and_line)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "workers = 2\nworkers 3\n", "t.conf:2: expected 'key = value'" },
		{ "\n\nfrobnicate = 1\n", "t.conf:3: unknown key 'frobnicate'" },
		{ "--workers = 2\n", "t.conf:1: unknown key '--workers'" },
		{ "= 2\n", "t.conf:1: no key" },
		{ "workers =\n", "t.conf:1: workers needs a value" },
		{ "workers = 0\n", "t.conf:1: --workers: '0'" },
		{ "workers = 2 # two\n", "t.conf:1: --workers: '2 # two'" },
		{ "allow-uid = bob\n", "t.conf:1: --allow-uid" },
		{ "log-level = loud\n", "t.conf:1: --log-level" },
		{ "soft-iommu = maybe\n", "t.conf:1: soft-iommu is a flag" },
		{ "config = /etc/other.conf\n", "t.conf:1: 'config' cannot be set" },
		{ "help = true\n", "t.conf:1: 'help' cannot be set" },
		{ "version = true\n", "t.conf:1: 'version' cannot be set" },
	};
	struct cfg_file f;
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_expect_eq(parse(cases[i].text, &f, err, sizeof(err)), -EINVAL, "%s", cases[i].text);
		cr_expect(strstr(err, cases[i].want), "case %zu: want '%s' in '%s'", i, cases[i].want, err);
		cr_expect_eq(f.nr, 0, "nothing kept on error");
		cr_expect_null(f.args);
	}
}

Test(config, limits)
{
	size_t n = CFG_MAX_LINE + 2;
	char *text = malloc(n + 16), err[512];
	struct cfg_file f;

	cr_assert(text);
	memset(text, '#', n);
	text[n] = '\0';
	cr_expect_eq(parse(text, &f, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "t.conf:1: line longer than"), "%s", err);
	free(text);

	text = malloc((CFG_MAX_SETTINGS + 1) * 16);
	cr_assert(text);
	text[0] = '\0';
	for (int i = 0; i <= CFG_MAX_SETTINGS; i++)
		strcat(text, "workers = 2\n");
	cr_expect_eq(parse(text, &f, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "more than"), "%s", err);
	free(text);
}

Test(config, missing_files)
{
	char dir[] = "/tmp/dmasvc-cfg-XXXXXX", path[128], err[512];
	struct cfg_file f;
	FILE *fp;

	cr_assert(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/none.conf", dir);
	cr_expect_eq(cfg_load(path, false, &f, err, sizeof(err)), 0, "a missing default file is fine");
	cr_expect_eq(f.nr, 0);
	cr_expect_eq(cfg_load(path, true, &f, err, sizeof(err)), -ENOENT, "a missing explicit file is not");
	cr_expect(strstr(err, path), "%s", err);
	cr_expect_eq(cfg_load(dir, true, &f, err, sizeof(err)), -EISDIR, "a directory is refused");
	cr_expect(strstr(err, dir), "%s", err);
	cr_expect_eq(cfg_load("/dev/null", true, &f, err, sizeof(err)), 0, "/dev/null: no settings");
	cr_expect_eq(f.nr, 0);

	snprintf(path, sizeof(path), "%s/d.conf", dir);
	fp = fopen(path, "w");
	cr_assert(fp);
	fputs("workers = 4\nbogus = 1\n", fp);
	fclose(fp);
	cr_expect_eq(cfg_load(path, false, &f, err, sizeof(err)), -EINVAL);
	char want[192];

	snprintf(want, sizeof(want), "%s:2: unknown key 'bogus'", path);
	cr_expect(strstr(err, want), "want '%s' in '%s'", want, err);
	unlink(path);
	rmdir(dir);
}

Test(config, find)
{
	bool expl, skip;
	char *a1[] = { "dmasvc", "--workers", "2", NULL };
	char *a2[] = { "dmasvc", "--config", "/x.conf", NULL };
	char *a3[] = { "dmasvc", "--config=/y.conf", "--help", NULL };

	cr_expect_str_eq(cfg_find(3, a1, "/etc/d.conf", &expl, &skip), "/etc/d.conf");
	cr_expect(!expl && !skip);
	cr_expect_str_eq(cfg_find(3, a2, "/etc/d.conf", &expl, &skip), "/x.conf");
	cr_expect(expl && !skip);
	cr_expect_str_eq(cfg_find(3, a3, "/etc/d.conf", &expl, &skip), "/y.conf");
	cr_expect(expl && skip, "--help skips the file");
}

Test(config, command_line_overrides_the_file)
{
	struct dsvc_options o;
	struct cfg_file f;
	char **margv = NULL, err[512];
	const char *file = "workers = 3\n"
			   "soft-iommu = true\n"
			   "allow-uid = 107\n"
			   "allow-uid = 108\n"
			   "allow-gid = 200\n"
			   "log-level = debug\n"
			   "socket = /run/file.sock\n";

	/* the file alone */
	char *c0[] = { "dmasvc", NULL };

	cr_assert_eq(layered(file, c0, &o, &f, &margv, err, sizeof(err)), OPT_RUN, "%s", err);
	cr_expect_eq(o.workers, 3);
	cr_expect_eq(o.backend, OPT_BACKEND_SOFT);
	cr_expect_eq(o.nr_allow_uids, 2);
	cr_expect_eq(o.allow_uids[1], 108);
	cr_expect_eq(o.nr_allow_gids, 1);
	cr_expect_eq(o.log_level, DLOG_DEBUG);
	cr_expect_str_eq(o.socket_path, "/run/file.sock");
	free(margv);
	cfg_free(&f);

	/* scalars: the command line's value wins; lists: the command line's replace the file's */
	char *c1[] = { "dmasvc", "--workers", "5", "--allow-uid", "1", "--allow-uid", "2",
		       "--socket=/run/cmd.sock", "--iommufd", "/dev/iommu", NULL };

	cr_assert_eq(layered(file, c1, &o, &f, &margv, err, sizeof(err)), OPT_RUN, "%s", err);
	cr_expect_eq(o.workers, 5);
	cr_expect_str_eq(o.socket_path, "/run/cmd.sock");
	cr_expect_eq(o.nr_allow_uids, 2);
	cr_expect_eq(o.allow_uids[0], 1);
	cr_expect_eq(o.allow_uids[1], 2);
	cr_expect_eq(o.nr_allow_gids, 1, "a list the command line does not name stays the file's");
	cr_expect_eq(o.backend, OPT_BACKEND_IOMMUFD, "a backend on the command line replaces the file's");
	cr_expect_str_eq(o.iommufd_path, "/dev/iommu");
	cr_expect_eq(o.log_level, DLOG_DEBUG, "what the command line leaves alone stays the file's");
	free(margv);
	cfg_free(&f);

	/* two backends within one layer are still refused */
	char *c2[] = { "dmasvc", "--iommufd", "/dev/iommu", "--soft-iommu", NULL };

	cr_expect_eq(layered(file, c2, &o, &f, &margv, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "mutually exclusive"), "%s", err);
	free(margv);
	cfg_free(&f);
	cr_expect_eq(layered("soft-iommu = true\niommufd = /dev/iommu\n", c0, &o, &f, &margv, err,
			     sizeof(err)),
		     -EINVAL, "two backends in the file");
	free(margv);
	cfg_free(&f);
}

/* Options added to the table by others (the caps) are keys with no loader code. */
Test(config, caps_options_are_keys_and_override_too)
{
	struct dsvc_options o;
	struct cfg_file f;
	char **margv = NULL, err[512];
	const char *file = "max-sessions = 4\n"
			   "max-populated-mib = 512\n"
			   "uid-caps = 1000:max-regions=8\n"
			   "uid-caps = 1001:max-regions=9\n";
	char *c0[] = { "dmasvc", NULL };
	char *c1[] = { "dmasvc", "--uid-caps", "1002:max-regions=10", "--max-sessions", "6", NULL };

	cr_assert_eq(layered(file, c0, &o, &f, &margv, err, sizeof(err)), OPT_RUN, "%s", err);
	cr_expect_eq(o.max_sessions, 4);
	cr_expect_eq(o.max_populated, 512ull << 20);
	cr_expect_eq(o.nr_uid_caps, 2);
	free(margv);
	cfg_free(&f);
	cr_assert_eq(layered(file, c1, &o, &f, &margv, err, sizeof(err)), OPT_RUN, "%s", err);
	cr_expect_eq(o.max_sessions, 6);
	cr_expect_eq(o.nr_uid_caps, 1, "the command line's --uid-caps replaces the file's list");
	free(margv);
	cfg_free(&f);
	cr_expect_eq(parse("max-sessions = 0\n", &f, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "t.conf:1: --max-sessions"), "%s", err);
}
