/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_CLI_H
#define P11E_CLI_H

#include <stdbool.h>

#include <jansson.h>

#include "common/err.h"

/* Exit codes (doc: p11enroll(1)). */
#define P11E_EXIT_OK 0
#define P11E_EXIT_FAILURE 1
#define P11E_EXIT_USAGE 2

/* Options shared by every command. */
struct p11e_cli {
	bool json; /* --json: machine-readable output */
	bool autostart; /* start the agent when it is not running */
	bool quiet; /* p11e_cli_connect prints no error */
	int verbose;
	const char *conf_path;
};

/*
 * Connects to the agent's socket.  When nothing listens and
 * cli->autostart is set, starts p11enrolld (P11ENROLL_AGENT, else the
 * installed one) with its standard error appended to
 * $XDG_RUNTIME_DIR/p11enroll/agent.log, and waits up to 5 seconds for it.
 * Returns P11E_OK and *fd, or P11E_ERR_AGENT_UNREACHABLE (reason printed).
 */
enum p11e_err p11e_cli_connect(const struct p11e_cli *cli, int *fd);

/*
 * Sends one call (the reference to params, which may be NULL, is
 * stolen) and waits for its reply.  On P11E_OK, *result is a new
 * reference to the reply's parameters.  An error reply returns its error
 * and prints nothing; *detail (may be NULL) then points to a static copy
 * of the agent's message, valid until the next call.
 */
enum p11e_err p11e_cli_call(int fd, const char *method, json_t *params,
    json_t **result, const char **detail);

#endif /* P11E_CLI_H */
