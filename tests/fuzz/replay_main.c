/* SPDX-License-Identifier: MIT */
/*
 * replay_main.c - run a fuzz target over files without libFuzzer: every
 * file named on the command line, or every file in a named directory, is
 * passed once to LLVMFuzzerTestOneInput().  Any check that fails aborts, so
 * a corpus or a crash reproducer becomes an ordinary regression test in
 * every build (gcc, ASan) of suite `fuzz`.
 * Exit status: 0 when every input ran, 1 when a file could not be read or
 * no input was found at all.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Run one file; returns 0, or -1 when it cannot be read. */
static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return -1;
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long runs = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *e;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: cannot stat\n", argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return fprintf(stderr, "replay: %s: unreadable\n", argv[i]), 1;
			runs++;
			continue;
		}
		d = opendir(argv[i]);
		while (d && (e = readdir(d))) {
			char path[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (run_file(path) < 0) {
				fprintf(stderr, "replay: %s: unreadable\n", path);
				closedir(d);
				return 1;
			}
			runs++;
		}
		if (d)
			closedir(d);
	}
	printf("replay: %lu inputs ran\n", runs);
	return runs ? 0 : 1;
}
