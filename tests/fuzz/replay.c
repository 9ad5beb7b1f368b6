/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

/*
 * Without libFuzzer, each fuzz target is linked with this file and
 * replays its corpus: every file named on the command line (or every file
 * in a directory named there) goes through LLVMFuzzerTestOneInput once.
 * Prints TAP, one line per input.
 */

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX (1024 * 1024)

static int n_inputs;
static int n_bad;

static void
run_file(const char *path)
{
	static uint8_t buf[REPLAY_MAX];
	size_t len;
	FILE *f;

	f = fopen(path, "rb");
	n_inputs++;
	if (f == NULL) {
		printf("not ok %d - %s: cannot open\n", n_inputs, path);
		n_bad++;
		return;
	}
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* a crash or sanitizer report ends the program before this line */
	LLVMFuzzerTestOneInput(buf, len);
	printf("ok %d - %s\n", n_inputs, path);
}

static int
count_or_run(const char *arg, int run)
{
	char path[4096];
	struct dirent **names;
	struct stat st;
	int i, n, count = 0;

	if (stat(arg, &st) != 0 || !S_ISDIR(st.st_mode)) {
		if (run)
			run_file(arg);
		return 1;
	}
	n = scandir(arg, &names, NULL, alphasort);
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			snprintf(
			    path, sizeof(path), "%s/%s", arg, names[i]->d_name);
			if (run)
				run_file(path);
			count++;
		}
		free(names[i]);
	}
	if (n >= 0)
		free(names);
	return count;
}

int
main(int argc, char **argv)
{
	int i, total = 0;

	for (i = 1; i < argc; i++)
		total += count_or_run(argv[i], 0);
	printf("1..%d\n", total);
	for (i = 1; i < argc; i++)
		count_or_run(argv[i], 1);
	return n_bad ? 1 : 0;
}
