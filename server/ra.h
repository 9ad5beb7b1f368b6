/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_RA_H
#define P11E_RA_H

/*
 * p11enroll-ra, the program: shared state of the commands (server/main.c
 * parses the global options and dispatches; init.c and office.c hold the
 * commands).
 */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "common/err.h"
#include "common/secret.h"
#include "server/db.h"
#include "server/ra-conf.h"

/* Exit codes (p11enroll-ra(8)). */
#define P11E_RA_EXIT_OK 0
#define P11E_RA_EXIT_FAILURE 1
#define P11E_RA_EXIT_USAGE 2

/* The longest password read from the operator. */
#define P11E_RA_SECRET_MAX 1024

struct p11e_ra {
	bool json; /* --json */
	const char *dir; /* --dir, $P11ENROLL_RA_DIR */
	char actor[80]; /* "operator:NAME" for the audit table */
	struct p11e_ra_config cfg;
	struct p11e_db *db;
	struct p11e_secret *data_key;
};

/*
 * Loads DIR/ra.conf, opens DIR/ra.db and reads the data key.  Prints the
 * reason on failure.
 */
enum p11e_err p11e_ra_open(struct p11e_ra *ra);

/* Releases what p11e_ra_open() took. */
void p11e_ra_close(struct p11e_ra *ra);

/* "DIR/name" into buf; P11E_ERR_TOO_LARGE when it does not fit. */
enum p11e_err
p11e_ra_path(const struct p11e_ra *ra, const char *name, char *buf, size_t len);

/* t as "YYYY-MM-DDTHH:MM:SSZ" (UTC) into buf, "?" when it cannot be. */
void p11e_ra_iso_time(time_t t, char *buf, size_t len);

/*
 * The pin ("sha256//BASE64" of the SubjectPublicKeyInfo) of the server
 * certificate, [server] tls-cert, into pin (len bytes): what invitations
 * carry.  P11E_ERR_CONFIG when the file is not set or not readable,
 * P11E_ERR_PARSE when it holds no PEM certificate.  Prints nothing.
 */
enum p11e_err
p11e_ra_server_pin(const struct p11e_ra *ra, char *pin, size_t len);

/*
 * A new invitation, what the agent reads (`p11enroll enroll
 * --invitation`, doc/deployment.md): version 1, ra's URL, the server's
 * pin, the IDs, the role (admin or user) and when the window closes.
 */
json_t *p11e_ra_invitation(const struct p11e_ra *ra, const char *server_pin,
    const char *contract_id, const char *user_id, bool admin,
    const char *closes);

/* Prints err (and detail when it adds something) as an error. */
void p11e_ra_fail(enum p11e_err err, const char *detail);

/* The exit code for err. */
int p11e_ra_exit(enum p11e_err err);

/* Commands: argv[0] is the command name. */
int p11e_ra_cmd_init(struct p11e_ra *ra, int argc, char **argv);
int p11e_ra_cmd_contract(struct p11e_ra *ra, int argc, char **argv);
int p11e_ra_cmd_user(struct p11e_ra *ra, int argc, char **argv);
int p11e_ra_cmd_otp(struct p11e_ra *ra, int argc, char **argv);
int p11e_ra_cmd_admin_code(struct p11e_ra *ra, int argc, char **argv);
int p11e_ra_cmd_cert(struct p11e_ra *ra, int argc, char **argv);
int p11e_ra_cmd_crl(struct p11e_ra *ra, int argc, char **argv);
int p11e_ra_cmd_unlock(struct p11e_ra *ra, int argc, char **argv);
int p11e_ra_cmd_list(struct p11e_ra *ra, int argc, char **argv);
int p11e_ra_cmd_audit(struct p11e_ra *ra, int argc, char **argv);
int p11e_ra_cmd_serve(struct p11e_ra *ra, int argc, char **argv);

#endif /* P11E_RA_H */
