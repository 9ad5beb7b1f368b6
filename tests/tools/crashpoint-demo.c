/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * crashpoint-demo FILE: writes "a", "b", "c" and then "l1".."l3" to FILE
 * with write(2), one line each, with a crash point after each write
 * ("after-a", "after-b", "after-c", and "loop" three times).  It also
 * prints a line to stdout (buffered, flushed only by a normal exit) and
 * registers an atexit handler that appends "atexit" to FILE: neither may
 * show up when a crash point fires.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crashpoint.h"
#include "common/log.h"

static int out_fd = -1;

static void
put(const char *line)
{
	size_t len = strlen(line);

	if (write(out_fd, line, len) != (ssize_t)len) {
		perror("crashpoint-demo: write");
		_exit(2);
	}
}

static void
at_exit(void)
{
	put("atexit\n");
}

int
main(int argc, char **argv)
{
	static const char *const loop[] = { "l1\n", "l2\n", "l3\n" };
	size_t i;

	p11e_log_init("crashpoint-demo");
	if (argc != 2) {
		fprintf(stderr, "usage: crashpoint-demo FILE\n");
		return 2;
	}
	out_fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out_fd == -1) {
		perror(argv[1]);
		return 2;
	}
	if (atexit(at_exit) != 0)
		return 2;
	/* Full buffering whatever stdout is, so only exit() flushes it. */
	(void)setvbuf(stdout, NULL, _IOFBF, BUFSIZ);
	printf("buffered stdio text\n");

	put("a\n");
	p11e_crashpoint("after-a");
	put("b\n");
	p11e_crashpoint("after-b");
	put("c\n");
	p11e_crashpoint("after-c");
	for (i = 0; i < sizeof(loop) / sizeof(loop[0]); i++) {
		put(loop[i]);
		p11e_crashpoint("loop");
	}
	return 0;
}
