/* SPDX-License-Identifier: MIT */
/*
 * fuzz_check.h - the fuzz targets' oracle macro.  A failed check prints the
 * condition and a message and aborts, which libFuzzer reports as a crash
 * (with the input saved) and replay_main as a failed test.
 */
#ifndef DMASVC_FUZZ_CHECK_H
#define DMASVC_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FZ_CHECK(cond, ...)                                                   \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz: check failed: %s: ", #cond);   \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			abort();                                              \
		}                                                             \
	} while (0)

#endif /* DMASVC_FUZZ_CHECK_H */
