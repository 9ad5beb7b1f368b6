/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_CLI_H
#define P11E_CLI_H

#include <stdbool.h>

#include <jansson.h>

#include "common/err.h"
#include "common/secret.h"

/* Exit codes (doc: p11enroll(1)). */
#define P11E_EXIT_OK 0
#define P11E_EXIT_FAILURE 1
#define P11E_EXIT_USAGE 2
#define P11E_EXIT_WAITING 3 /* a credential waits for its user */
#define P11E_EXIT_TOKEN_ABSENT 4
#define P11E_EXIT_PIN_LOCKED 5
#define P11E_EXIT_NEEDS_REISSUE 6 /* expired or revoked: admin reissue */

/* The exit code for an error (the distinct ones above, else 1). */
int p11e_cli_exit_code(enum p11e_err err);

/*
 * Reports err with the agent's detail ("WHAT: ERROR: DETAIL"), once when
 * the detail already starts with the error's text; what may be NULL.
 */
void p11e_cli_fail(const char *what, enum p11e_err err, const char *detail);

/* The longest PIN or password read from the user. */
#define P11E_CLI_SECRET_MAX 256

/* Options shared by every command. */
struct p11e_cli {
	bool json; /* --json: machine-readable output */
	bool autostart; /* start the agent when it is not running */
	bool quiet; /* p11e_cli_connect prints no error */
	bool pin_stdin; /* --pin-stdin: the PIN is the first line of stdin */
	bool final_try; /* --final-try: the last PIN try is allowed */
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

/*
 * Reads a secret: the first line of standard input when from_stdin, else
 * from /dev/tty after printing prompt there, with echo off (restored on
 * SIGINT/SIGTERM/SIGHUP).  Byte by byte into the secret: no stdio buffer
 * keeps a copy.  P11E_ERR_PIN_REQUIRED when there is no terminal or
 * nothing was entered.
 */
enum p11e_err p11e_cli_read_secret(
    const char *prompt, bool from_stdin, struct p11e_secret **out);

/*
 * Connects, makes one call and prints an error with the agent's detail.
 * *result as for p11e_cli_call().
 */
enum p11e_err p11e_cli_call_agent(
    struct p11e_cli *cli, const char *method, json_t *params, json_t **result);

/* Prints j as indented JSON on standard output. */
void p11e_cli_print_json(json_t *j);

/*
 * s padded with spaces to width terminal columns (a wide character, as
 * in Japanese, takes two), on the left when right; into buf.
 */
const char *
p11e_cli_pad(char *buf, size_t len, const char *s, int width, bool right);

/* cli/token.c */
int p11e_cmd_tokens(struct p11e_cli *cli, int argc, char **argv);
int p11e_cmd_token(struct p11e_cli *cli, int argc, char **argv);

/*
 * Adds "pin" (asked on the terminal, or the first line of standard input
 * with cli->pin_stdin) and "final_try" to params for the token uri, when
 * the token needs a PIN typed in.
 */
enum p11e_err
p11e_cli_add_pin(struct p11e_cli *cli, const char *uri, json_t *params);

/* cli/enroll.c */
int p11e_cmd_enroll(struct p11e_cli *cli, int argc, char **argv);
int p11e_cmd_list(struct p11e_cli *cli, int argc, char **argv);
int p11e_cmd_service(struct p11e_cli *cli, int argc, char **argv);
int p11e_cmd_renew(struct p11e_cli *cli, int argc, char **argv);
/*
 * Prints the credentials table (status and list), or gives the agent's
 * answer in *out (caller frees); the exit status they call for (see
 * credentials_exit), P11E_EXIT_FAILURE when the agent did not answer.
 */
int p11e_cli_print_credentials(struct p11e_cli *cli, json_t **out);

/* cli/admin.c */
int p11e_cmd_admin(struct p11e_cli *cli, int argc, char **argv);

/* cli/browser.c */
int p11e_cmd_browser(struct p11e_cli *cli, int argc, char **argv);

#endif /* P11E_CLI_H */
