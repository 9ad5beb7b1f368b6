/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "common/i18n.h"
#include "common/ipc.h"
#include "common/log.h"
#include "server/ca.h"
#include "server/ra.h"
#include "server/seal.h"

struct command {
	const char *name;
	int (*fn)(struct p11e_ra *ra, int argc, char **argv);
	const char *help;
};

static int cmd_help(struct p11e_ra *ra, int argc, char **argv);

static const struct command commands[] = {
	{ "init", p11e_ra_cmd_init,
	    "DIR: create the CA, TLS key, database and ra.conf" },
	{ "contract", p11e_ra_cmd_contract,
	    "add --name NAME: new contract (契約者ID, PINs, お客様カード)" },
	{ "user", p11e_ra_cmd_user,
	    "add CONTRACT USER_ID --name NAME [--admin]: new user (利用者)" },
	{ "otp", p11e_ra_cmd_otp,
	    "assign|check CONTRACT USER_ID: one-time password token" },
	{ "admin-code", p11e_ra_cmd_admin_code,
	    "CONTRACT USER_ID: one-time code for an admin's first "
	    "certificate" },
	{ "cert", p11e_ra_cmd_cert, "revoke SERIAL [--reason R]" },
	{ "crl", p11e_ra_cmd_crl, "print the current CRL (PEM)" },
	{ "unlock", p11e_ra_cmd_unlock,
	    "CONTRACT USER_ID: reset the failure counters and the lock" },
	{ "list", p11e_ra_cmd_list,
	    "[CONTRACT]: contracts, users, certificates, windows" },
	{ "audit", p11e_ra_cmd_audit, "[--since TIME]: the audit trail" },
	{ "serve", p11e_ra_cmd_serve,
	    "[--listen ADDR:PORT] [--port-file F]: EST and the user session "
	    "over HTTPS" },
	{ "help", cmd_help, "show this help" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f,
	    "Usage: p11enroll-ra [OPTION]... COMMAND [ARG]...\n"
	    "The reference enrollment authority of p11enroll: CA, database "
	    "and back office.\n\n"
	    "Commands:\n");
	for (i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
	fprintf(f,
	    "\nOptions:\n"
	    "  -d, --dir DIR   the RA directory (default $P11ENROLL_RA_DIR)\n"
	    "      --json      machine-readable output\n"
	    "  -v, --verbose   say more\n"
	    "  -h, --help      show this help and exit\n"
	    "  -V, --version   show the version and exit\n"
	    "\nSecrets (PINs, passwords, OTP secrets, card values) are never "
	    "taken from the\ncommand line or the environment.  Exit status: "
	    "0 success, 1 failure, 2 usage.\n");
}

void
p11e_ra_iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "?");
}

enum p11e_err
p11e_ra_server_pin(const struct p11e_ra *ra, char *pin, size_t len)
{
	enum p11e_err err;
	X509 *x;
	FILE *f;

	if (ra->cfg.tls_cert == NULL ||
	    (f = fopen(ra->cfg.tls_cert, "re")) == NULL)
		return P11E_ERR_CONFIG;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		return P11E_ERR_PARSE;
	err = p11e_ca_spki_pin(x, pin, len);
	X509_free(x);
	return err;
}

json_t *
p11e_ra_invitation(const struct p11e_ra *ra, const char *server_pin,
    const char *contract_id, const char *user_id, bool admin,
    const char *closes)
{
	return json_pack("{s:i, s:s?, s:s, s:s, s:s, s:s, s:s}",
	    "p11enroll_invitation", 1, "url", ra->cfg.url, "server_pin",
	    server_pin, "contract_id", contract_id, "user_id", user_id, "role",
	    admin ? "admin" : "user", "window_closes", closes);
}

void
p11e_ra_fail(enum p11e_err err, const char *detail)
{
	if (detail != NULL && detail[0] != '\0' &&
	    strcmp(detail, p11e_strerror(err)) != 0)
		p11e_error("%s: %s", p11e_strerror(err), detail);
	else
		p11e_error("%s", p11e_strerror(err));
}

int
p11e_ra_exit(enum p11e_err err)
{
	return err == P11E_OK ? P11E_RA_EXIT_OK : P11E_RA_EXIT_FAILURE;
}

enum p11e_err
p11e_ra_path(const struct p11e_ra *ra, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", ra->dir, name);

	return n < 0 || (size_t)n >= len ? P11E_ERR_TOO_LARGE : P11E_OK;
}

enum p11e_err
p11e_ra_open(struct p11e_ra *ra)
{
	char path[4096];
	enum p11e_err err;
	struct stat stb;

	if (ra->dir == NULL) {
		p11e_error("no RA directory: give --dir DIR or set "
			   "P11ENROLL_RA_DIR");
		return P11E_ERR_INVALID_PARAMETER;
	}
	if (stat(ra->dir, &stb) != 0 || !S_ISDIR(stb.st_mode)) {
		p11e_error(
		    "%s: not an RA directory (p11enroll-ra init)", ra->dir);
		return P11E_ERR_NOT_FOUND;
	}
	if ((stb.st_mode & 077) != 0 || stb.st_uid != geteuid()) {
		p11e_error(
		    "%s: must be owned by this user and mode 0700", ra->dir);
		return P11E_ERR_UNSAFE_PATH;
	}
	if ((err = p11e_ra_path(ra, P11E_RA_CONF, path, sizeof(path))) !=
		P11E_OK ||
	    (err = p11e_ra_config_load(path, &ra->cfg)) != P11E_OK ||
	    (err = p11e_ra_path(ra, P11E_RA_DATA_KEY, path, sizeof(path))) !=
		P11E_OK ||
	    (err = p11e_seal_key_load(path, &ra->data_key)) != P11E_OK ||
	    (err = p11e_ra_path(ra, P11E_RA_DB, path, sizeof(path))) !=
		P11E_OK ||
	    (err = p11e_db_open(path, false, &ra->db)) != P11E_OK) {
		p11e_ra_fail(err, NULL);
		p11e_ra_close(ra);
		return err;
	}
	return P11E_OK;
}

void
p11e_ra_close(struct p11e_ra *ra)
{
	p11e_db_close(ra->db);
	ra->db = NULL;
	p11e_secret_free(ra->data_key);
	ra->data_key = NULL;
	p11e_ra_config_clear(&ra->cfg);
}

static int
cmd_help(struct p11e_ra *ra, int argc, char **argv)
{
	(void)ra;
	(void)argc;
	(void)argv;
	usage(stdout);
	return P11E_RA_EXIT_OK;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct p11e_ra ra;
	struct passwd *pw;
	int c, verbose = 0, rc;
	size_t i;

	memset(&ra, 0, sizeof(ra));
	p11e_log_init("p11enroll-ra");
	p11e_i18n_init("p11enroll-ra");
	p11e_ipc_json_init(); /* jansson's strings are wiped when freed */
	umask(077);
	ra.dir = getenv("P11ENROLL_RA_DIR");
	if (ra.dir != NULL && ra.dir[0] == '\0')
		ra.dir = NULL;
	while ((c = getopt_long(argc, argv, "+d:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			ra.dir = optarg;
			break;
		case 'j':
			ra.json = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return P11E_RA_EXIT_OK;
		case 'V':
			printf("p11enroll-ra %s\n", PACKAGE_VERSION);
			return P11E_RA_EXIT_OK;
		default:
			usage(stderr);
			return P11E_RA_EXIT_USAGE;
		}
	}
	if (verbose > 0)
		p11e_log_set_level(
		    verbose > 1 ? P11E_LOG_DEBUG : P11E_LOG_VERBOSE);
	if (optind >= argc) {
		usage(stderr);
		return P11E_RA_EXIT_USAGE;
	}
	pw = getpwuid(geteuid());
	snprintf(ra.actor, sizeof(ra.actor), "operator:%s",
	    pw != NULL ? pw->pw_name : "?");
	for (i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, argv[optind]) == 0)
			break;
	if (i == N_COMMANDS) {
		p11e_error("unknown command '%s' (see p11enroll-ra help)",
		    argv[optind]);
		return P11E_RA_EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* restart getopt for the command's own options */
	rc = commands[i].fn(&ra, argc, argv);
	p11e_ra_close(&ra);
	return rc;
}
