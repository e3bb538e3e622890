/* SPDX-License-Identifier: MIT */
/*
 * config_priv.h - the configuration file (/etc/dmasvc/dmasvc.conf, or
 * --config PATH).  Do not include from outside dmasvc/.
 *
 * Format (docs/operating.md, dmasvc.conf(5)): one setting a line,
 *     long-option-name = value
 * where every key is one of dmasvc's long options without its "--"
 * (`workers = 2`, `allow-uid = 107`, repeatable keys given once a line), a
 * flag takes a boolean (`soft-iommu = true`; false/no/off/0 leaves it out),
 * blank lines and lines whose first non-blank is '#' or ';' are ignored,
 * and the value is the rest of the line with surrounding blanks removed (no
 * quoting, no trailing comments).  `config`, `help` and `version` are not
 * keys.  The loader turns each setting into one "--name=value" (or
 * "--flag") token, validates it with the command-line parser itself (so an
 * option added to options.c's table works here with no code, and a bad value
 * is reported with the file and line), and puts the tokens before the
 * command line's, which therefore overrides (opt_parse_layered).
 */
#ifndef DMASVC_CONFIG_PRIV_H
#define DMASVC_CONFIG_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#define CFG_MAX_LINE 4096          /* bytes of one line, newline excluded */
#define CFG_MAX_SETTINGS 1024      /* settings in one file */
#define CFG_MAX_BYTES (1u << 20)   /* size of the file (-EFBIG beyond) */

/* The settings of one file as option tokens; owned by its caller (cfg_free). */
struct cfg_file {
	unsigned int nr;      /* settings */
	char **args;          /* nr tokens "--name=value" / "--flag" */
	unsigned int *lines;  /* nr line numbers, for messages */
};

/*
 * cfg_find: the configuration file @argv names (--config PATH or
 * --config=PATH before a "--"), else @default_path.  *@explicit_path tells
 * which; *@skip is set when @argv asks only for --help or --version (the
 * file is then not read).  Never fails.
 */
const char *cfg_find(int argc, char **argv, const char *default_path, bool *explicit_path,
		     bool *skip);

/*
 * cfg_parse_text: parse the NUL-terminated @text of the file @name into
 * *@out (emptied first).  Returns 0, or -EINVAL with "NAME:LINE: reason" in
 * @err (unknown key, no '=', a flag with a non-boolean, an empty value, a
 * value the option parser refuses, too long a line, too many settings);
 * *@out is then empty.  -ENOMEM when allocation fails.
 */
int cfg_parse_text(const char *name, const char *text, struct cfg_file *out, char *err,
		   size_t errlen);

/*
 * cfg_load: read and parse @path into *@out.  A missing file is an error
 * only when @explicit_path (the operator named it); otherwise *@out is empty
 * and 0 is returned.  Returns 0 or -errno with the path (and line) in @err.
 */
int cfg_load(const char *path, bool explicit_path, struct cfg_file *out, char *err,
	     size_t errlen);

/*
 * cfg_merge: a new argv: @argv[0], the file's tokens, then @argv[1..]
 * (NULL-terminated, *@margc elements); parse it with
 * opt_parse_layered(*margc, *margv, f->nr, ...).  The array (not the
 * strings) is the caller's to free(); it must outlive the options parsed
 * from it, like @f.  Returns 0 or -ENOMEM.
 */
int cfg_merge(const struct cfg_file *f, int argc, char **argv, int *margc, char ***margv);

/* cfg_free: release what cfg_parse_text()/cfg_load() allocated; idempotent. */
void cfg_free(struct cfg_file *f);

#endif /* DMASVC_CONFIG_PRIV_H */
