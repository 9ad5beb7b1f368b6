/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pskc/pskc.h>

#include "cli/cli.h"
#include "common/i18n.h"
#include "common/log.h"
#include "common/num.h"
#include "common/qr.h"
#include "server/ca.h"
#include "server/card.h"
#include "server/hash.h"
#include "server/ra.h"
#include "server/seal.h"
#include "server/totp.h"

/*
 * The back-office commands.  Each one checks its arguments and what it
 * refers to before it changes anything, makes its change and its audit
 * record in one transaction, and prints secrets only when handing them
 * out is its purpose (contract add, otp assign, admin-code).
 */

#define PIN_DIGITS 8
#define CODE_BYTES 16
#define NAME_MAX_LEN 200

static void
print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
}

/* A name for people: 1..NAME_MAX_LEN bytes of UTF-8 without controls. */
static bool
valid_name(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	/* jansson checks UTF-8 */
	{
		json_t *j = json_string(s);
		bool ok = j != NULL;

		json_decref(j);
		return ok;
	}
}

/* Checks contract ID and user ID format (R09), printing what is wrong. */
static enum p11e_err
check_ids(const char *contract_id, const char *user_id)
{
	if (!p11e_db_valid_contract_id(contract_id)) {
		p11e_error(
		    _("invalid contract ID (契約者ID): it must be exactly "
		      "11 half-width digits"));
		return P11E_ERR_INVALID_PARAMETER;
	}
	if (user_id != NULL && !p11e_db_valid_user_id(user_id)) {
		p11e_error(_("invalid user ID (利用者ID): it must be 1 to 30 "
			     "half-width letters and digits"));
		return P11E_ERR_INVALID_PARAMETER;
	}
	return P11E_OK;
}

static enum p11e_err
find_user(struct p11e_ra *ra, const char *contract_id, const char *user_id,
    struct p11e_db_user *u)
{
	struct p11e_db_contract c;
	enum p11e_err err;

	if ((err = check_ids(contract_id, user_id)) != P11E_OK)
		return err;
	if ((err = p11e_db_contract_find(ra->db, contract_id, &c)) ==
	    P11E_ERR_NOT_FOUND) {
		p11e_error(_("unknown contract %s"), contract_id);
		return err;
	}
	if (err != P11E_OK)
		return err;
	err = p11e_db_user_find(ra->db, contract_id, user_id, u);
	if (err == P11E_ERR_NOT_FOUND)
		p11e_error(
		    _("unknown user %s in contract %s"), user_id, contract_id);
	return err;
}

/*
 * The user a command names (CONTRACT USER_ID in ids[0], ids[1]): checks
 * the IDs, opens the RA and finds the user, printing what is wrong, and
 * puts "CONTRACT/USER_ID" (the audit target) into target.  Returns
 * P11E_RA_EXIT_OK, or the exit code of the failure.
 */
static int
open_user(struct p11e_ra *ra, char *const *ids, struct p11e_db_user *u,
    char *target, size_t len)
{
	enum p11e_err err;

	if (check_ids(ids[0], ids[1]) != P11E_OK || p11e_ra_open(ra) != P11E_OK)
		return P11E_RA_EXIT_FAILURE;
	if ((err = find_user(ra, ids[0], ids[1], u)) != P11E_OK) {
		if (err != P11E_ERR_NOT_FOUND)
			p11e_ra_fail(err, NULL);
		return p11e_ra_exit(err);
	}
	snprintf(target, len, "%s/%s", u->contract_id, u->user_id);
	return P11E_RA_EXIT_OK;
}

/*
 * The end of a command: on failure, rolls back what is open and prints
 * err unless said (the command said what went wrong).  The exit code.
 */
static int
command_end(struct p11e_ra *ra, enum p11e_err err, bool said)
{
	if (err != P11E_OK) {
		p11e_db_rollback(ra->db);
		if (!said)
			p11e_ra_fail(err, NULL);
	}
	return p11e_ra_exit(err);
}

/* Prints a command's usage text; the exit code of a usage error. */
static int
usage_error(const char *text)
{
	fputs(text, stderr);
	return P11E_RA_EXIT_USAGE;
}

/*
 * The arguments [--json] CONTRACT USER_ID of a command (usage: its usage
 * text), then the user as open_user() finds it.  P11E_RA_EXIT_OK, or the
 * exit code.
 */
static int
json_user_args(struct p11e_ra *ra, int argc, char **argv, const char *usage,
    struct p11e_db_user *u, char *target, size_t len)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j')
			return usage_error(usage);
		ra->json = true;
	}
	if (optind != argc - 2)
		return usage_error(usage);
	return open_user(ra, argv + optind, u, target, len);
}

/* n random characters of alphabet (no modulo bias) into a new secret. */
static enum p11e_err
random_chars(const char *alphabet, size_t n, struct p11e_secret **out)
{
	size_t i, k = strlen(alphabet);
	struct p11e_secret *s;
	unsigned char r;
	char d;

	*out = NULL;
	if ((s = p11e_secret_new(n)) == NULL)
		return P11E_ERR_NOMEM;
	for (i = 0; i < n; i++) {
		do {
			if (RAND_bytes(&r, 1) != 1) {
				p11e_secret_free(s);
				return P11E_ERR_CRYPTO;
			}
		} while (r >= 256 - 256 % k);
		d = alphabet[r % k];
		(void)p11e_secret_append(s, &d, 1);
	}
	d = 0;
	r = 0;
	*out = s;
	return P11E_OK;
}

/* n random decimal digits into a new secret. */
static enum p11e_err
random_digits(size_t n, struct p11e_secret **out)
{
	return random_chars("0123456789", n, out);
}

/* Runs the caller's statement inside the open transaction. */
static enum p11e_err
audit(struct p11e_ra *ra, const char *action, const char *target,
    const char *result, const char *detail)
{
	return p11e_db_audit(
	    ra->db, ra->actor, action, target, result, NULL, detail);
}

/* ---- contract add ---- */

static int
contract_add(struct p11e_ra *ra, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct p11e_secret *pin = NULL, *cpin = NULL, *card = NULL;
	struct p11e_secret *idsec = NULL;
	struct p11e_db_contract existing;
	char pin_hash[P11E_HASH_ENCODED_MAX], cpin_hash[P11E_HASH_ENCODED_MAX];
	char contract_id[12], aad[32], v[3];
	struct p11e_buf sealed;
	const char *name = NULL;
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int c, tries;
	size_t i;

	p11e_buf_init(&sealed, 4096);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'n')
			name = optarg;
		else if (c == 'j')
			ra->json = true;
		else
			goto usage;
	}
	if (optind != argc || name == NULL)
		goto usage;
	if (!valid_name(name)) {
		p11e_error(_("invalid --name: 1 to %d bytes of UTF-8 text "
			     "without control characters"),
		    NAME_MAX_LEN);
		return P11E_RA_EXIT_FAILURE;
	}
	if (p11e_ra_open(ra) != P11E_OK)
		return P11E_RA_EXIT_FAILURE;
	/* a fresh 11-digit contract ID (契約者ID) */
	for (tries = 0;; tries++) {
		if ((err = random_digits(11, &idsec)) != P11E_OK)
			goto out;
		memcpy(contract_id, p11e_secret_data(idsec), 11);
		contract_id[11] = '\0';
		p11e_secret_free(idsec);
		idsec = NULL;
		err = p11e_db_contract_find(ra->db, contract_id, &existing);
		if (err == P11E_ERR_NOT_FOUND)
			break;
		if (err != P11E_OK)
			goto out;
		if (tries > 100) {
			err = P11E_ERR_EXISTS;
			goto out;
		}
	}
	snprintf(aad, sizeof(aad), "card:%s", contract_id);
	if ((err = random_digits(PIN_DIGITS, &pin)) != P11E_OK ||
	    (err = random_digits(PIN_DIGITS, &cpin)) != P11E_OK ||
	    (err = p11e_card_new(&card)) != P11E_OK ||
	    (err = p11e_hash_secret(pin, NULL, pin_hash)) != P11E_OK ||
	    (err = p11e_hash_secret(cpin, NULL, cpin_hash)) != P11E_OK ||
	    (err = p11e_seal(ra->data_key, aad, card, &sealed)) != P11E_OK)
		goto out;
	if ((err = p11e_db_begin(ra->db)) != P11E_OK ||
	    (err = p11e_db_prepare(ra->db,
		 "INSERT INTO contracts (contract_id, name, pin_hash,"
		 " confirm_pin_hash, card, created) VALUES (?, ?, ?, ?, ?, ?)",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_text(st, 1, contract_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, pin_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, cpin_hash, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, sealed.data, (int)sealed.len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)time(NULL));
	if ((err = p11e_db_step_done(ra->db, st)) != P11E_OK ||
	    (err = audit(ra, "contract-add", contract_id, "ok", name)) !=
		P11E_OK ||
	    (err = p11e_db_commit(ra->db)) != P11E_OK)
		goto out;
	if (ra->json) {
		json_t *j = json_object(), *cells = json_object();
		json_t *rows = json_array();

		json_object_set_new(j, "contract_id", json_string(contract_id));
		json_object_set_new(j, "name", json_string(name));
		json_object_set_new(j, "contract_pin",
		    json_stringn(p11e_secret_str(pin), p11e_secret_len(pin)));
		json_object_set_new(j, "confirmation_pin",
		    json_stringn(p11e_secret_str(cpin), p11e_secret_len(cpin)));
		for (i = 0; i < P11E_CARD_CELLS; i++) {
			(void)p11e_card_value(card, i, v);
			json_object_set_new(
			    cells, p11e_card_label(i), json_string(v));
			if (i % P11E_CARD_COLS == 0)
				json_array_append_new(rows, json_array());
			json_array_append_new(
			    json_array_get(rows, json_array_size(rows) - 1),
			    json_string(p11e_card_label(i)));
		}
		json_object_set_new(j, "card", cells);
		json_object_set_new(j, "card_rows", rows);
		print_json(j);
		json_decref(j);
	} else {
		printf(_("New contract (ご契約先) %s\n"), name);
		printf(_("  契約者ID (contract ID):                    %s\n"),
		    contract_id);
		printf(_("  ご契約先暗証番号 (contract PIN):            %s\n"),
		    p11e_secret_str(pin));
		printf(_("  ご契約先確認暗証番号 (confirmation PIN):    %s\n"),
		    p11e_secret_str(cpin));
		printf(_("  お客様カード (customer card):\n"));
		for (i = 0; i < P11E_CARD_CELLS; i++) {
			(void)p11e_card_value(card, i, v);
			printf("%s%s %s",
			    i % P11E_CARD_COLS == 0 ? "    " : "   ",
			    p11e_card_label(i), v);
			if (i % P11E_CARD_COLS == P11E_CARD_COLS - 1)
				printf("\n");
		}
		printf(_("Hand these to the customer; they are shown only once "
			 "and stored only hashed or encrypted.\n"));
	}
	p11e_wipe(v, sizeof(v));
out:
	p11e_buf_clear(&sealed);
	p11e_secret_free(pin);
	p11e_secret_free(cpin);
	p11e_secret_free(card);
	return command_end(ra, err, false);
usage:
	return usage_error(
	    _("Usage: p11enroll-ra contract add --name NAME [--json]\n"));
}

int
p11e_ra_cmd_contract(struct p11e_ra *ra, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return contract_add(ra, argc - 1, argv + 1);
	return usage_error(_("Usage: p11enroll-ra contract add --name NAME\n"));
}

/* ---- user add ---- */

static enum p11e_err
server_pin(struct p11e_ra *ra, char *pin, size_t len)
{
	enum p11e_err err = p11e_ra_server_pin(ra, pin, len);

	if (err == P11E_ERR_CONFIG)
		p11e_error(_("no readable [server] tls-cert"));
	return err;
}

static enum p11e_err
write_invitation(const char *path, json_t *inv)
{
	enum p11e_err err = P11E_OK;
	FILE *f;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		p11e_error(_("--invitation %s: %s"), path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return errno == EEXIST ? P11E_ERR_EXISTS : P11E_ERR_IO;
	}
	if (json_dumpf(inv, f, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 ||
	    fputc('\n', f) == EOF || fflush(f) != 0 || fsync(fd) != 0) {
		p11e_error(_("--invitation %s: %s"), path, strerror(errno));
		err = P11E_ERR_IO;
	}
	if (fclose(f) != 0 && err == P11E_OK)
		err = P11E_ERR_IO;
	return err;
}

static int
user_add(struct p11e_ra *ra, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "admin", no_argument, NULL, 'a' },
		{ "password-stdin", no_argument, NULL, 's' },
		{ "invitation", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *inv_path = NULL, *contract_id, *user_id;
	struct p11e_secret *pw = NULL, *pw2 = NULL;
	char hash[P11E_HASH_ENCODED_MAX], pin[64], closes_s[32];
	bool admin = false, from_stdin = false;
	struct p11e_db_contract contract;
	struct p11e_db_user existing;
	json_t *inv = NULL;
	enum p11e_err err;
	int64_t user_row;
	time_t now, closes;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'a':
			admin = true;
			break;
		case 's':
			from_stdin = true;
			break;
		case 'i':
			inv_path = optarg;
			break;
		case 'j':
			ra->json = true;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc - 2 || name == NULL)
		goto usage;
	contract_id = argv[optind];
	user_id = argv[optind + 1];
	if (check_ids(contract_id, user_id) != P11E_OK)
		return P11E_RA_EXIT_FAILURE;
	if (!valid_name(name)) {
		p11e_error(_("invalid --name: 1 to %d bytes of UTF-8 text "
			     "without control characters"),
		    NAME_MAX_LEN);
		return P11E_RA_EXIT_FAILURE;
	}
	if (inv_path != NULL && access(inv_path, F_OK) == 0) {
		p11e_error(_("--invitation %s exists already"), inv_path);
		return P11E_RA_EXIT_FAILURE;
	}
	if (p11e_ra_open(ra) != P11E_OK)
		return P11E_RA_EXIT_FAILURE;
	if ((err = p11e_db_contract_find(ra->db, contract_id, &contract)) !=
	    P11E_OK) {
		if (err == P11E_ERR_NOT_FOUND)
			p11e_error(_("unknown contract %s"), contract_id);
		goto out;
	}
	if ((err = p11e_db_user_find(
		 ra->db, contract_id, user_id, &existing)) == P11E_OK) {
		p11e_error(_("user %s already exists in contract %s"), user_id,
		    contract_id);
		err = P11E_ERR_EXISTS;
		goto out;
	}
	if (err != P11E_ERR_NOT_FOUND ||
	    (err = server_pin(ra, pin, sizeof(pin))) != P11E_OK)
		goto out;
	/* the initial password (利用者暗証番号): never argv or env */
	if ((err = p11e_cli_read_secret(
		 _("Initial password: "), from_stdin, &pw)) != P11E_OK)
		goto out;
	if (!from_stdin &&
	    ((err = p11e_cli_read_secret(_("Repeat it: "), false, &pw2)) !=
		    P11E_OK ||
		!p11e_secret_equal(pw, pw2))) {
		if (err == P11E_OK)
			p11e_error(_("the passwords differ"));
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	if (p11e_secret_len(pw) < 8 || p11e_secret_len(pw) > 1024) {
		p11e_error(_("the password must be 8 to 1024 bytes long"));
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	if ((err = p11e_hash_secret(pw, NULL, hash)) != P11E_OK)
		goto out;
	now = time(NULL);
	closes = now + (time_t)ra->cfg.policy.window;
	if ((err = p11e_db_begin(ra->db)) != P11E_OK ||
	    (err = p11e_db_user_register(ra->db, contract.id, user_id, name,
		 admin, hash, now, closes, ra->actor, &user_row)) != P11E_OK)
		goto out;
	{
		char target[64];

		snprintf(target, sizeof(target), "%s/%s", contract_id, user_id);
		if ((err = audit(ra, "user-add", target, "ok",
			 admin ? "role=admin" : "role=user")) != P11E_OK)
			goto out;
	}
	p11e_ra_iso_time(closes, closes_s, sizeof(closes_s));
	if ((inv = p11e_ra_invitation(
		 ra, pin, contract_id, user_id, admin, closes_s)) == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	/* the invitation file before COMMIT: a failure leaves nothing */
	if (inv_path != NULL &&
	    (err = write_invitation(inv_path, inv)) != P11E_OK)
		goto out;
	if ((err = p11e_db_commit(ra->db)) != P11E_OK) {
		if (inv_path != NULL)
			unlink(inv_path);
		goto out;
	}
	if (ra->json) {
		print_json(inv);
	} else {
		printf(_("User (利用者) %s of contract %s added%s.\n"), user_id,
		    contract_id, admin ? _(" as administrator (管理者)") : "");
		printf(_("Invitation:\n"
			 "  service URL:   %s\n"
			 "  server pin:    %s\n"
			 "  契約者ID:      %s\n"
			 "  利用者ID:      %s\n"
			 "  取得可能期間:  until %s\n"),
		    ra->cfg.url != NULL ? ra->cfg.url : _("(set [server] url)"),
		    pin, contract_id, user_id, closes_s);
		if (inv_path != NULL)
			printf(_("Written to %s for p11enroll.\n"), inv_path);
	}
out:
	json_decref(inv);
	p11e_secret_free(pw);
	p11e_secret_free(pw2);
	return command_end(ra, err,
	    err == P11E_ERR_NOT_FOUND || err == P11E_ERR_EXISTS ||
		err == P11E_ERR_INVALID_PARAMETER);
usage:
	return usage_error(
	    _("Usage: p11enroll-ra user add CONTRACT USER_ID --name "
	      "NAME [--admin]\n"
	      "         [--password-stdin] [--invitation FILE] "
	      "[--json]\n"));
}

/* ---- user import: a batch of users and their invitations ---- */

/*
 * Initial passwords of imported users: 12 characters of an alphabet
 * without look-alikes (about 70 bits), printed once for the operator to
 * hand out like the contract's PINs.
 */
#define IMPORT_PASSWORD_LEN 12
static const char import_alphabet[] =
    "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
#define IMPORT_MAX 10000
#define IMPORT_LINE_MAX 512

struct import_user {
	char user_id[31];
	char name[NAME_MAX_LEN + 1];
	bool admin;
	struct p11e_secret *password;
	struct p11e_secret *otp_uri;
	char inv_path[4096];
	bool inv_written;
};

/*
 * Reads FILE: one user a line, "USER_ID,NAME" or "USER_ID,NAME,admin",
 * UTF-8; empty lines and lines starting with '#' are skipped.  Every
 * problem is reported as FILE:LINE; *n users into the array.
 */
static enum p11e_err
import_read(const char *path, struct import_user **out, size_t *n)
{
	struct import_user *u = NULL, *t;
	char line[IMPORT_LINE_MAX + 2], *id, *name, *role;
	enum p11e_err err = P11E_OK;
	size_t cap = 0, i;
	int lineno = 0;
	FILE *f;

	*out = NULL;
	*n = 0;
	if ((f = fopen(path, "re")) == NULL) {
		p11e_error("%s: %s", path, strerror(errno));
		return P11E_ERR_IO;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			p11e_error(_("%s:%d: line longer than %d bytes"), path,
			    lineno, IMPORT_LINE_MAX);
			err = P11E_ERR_PARSE;
			break;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		id = line;
		if ((name = strchr(id, ',')) == NULL) {
			p11e_error(_("%s:%d: expected USER_ID,NAME[,admin]"),
			    path, lineno);
			err = P11E_ERR_PARSE;
			break;
		}
		*name++ = '\0';
		role = strchr(name, ',');
		if (role != NULL)
			*role++ = '\0';
		if (!p11e_db_valid_user_id(id)) {
			p11e_error(_("%s:%d: invalid user ID (利用者ID) '%s': "
				     "1 to 30 half-width letters and digits"),
			    path, lineno, id);
			err = P11E_ERR_PARSE;
			break;
		}
		if (!valid_name(name)) {
			p11e_error(_("%s:%d: invalid name: 1 to %d bytes of "
				     "UTF-8 text without control characters"),
			    path, lineno, NAME_MAX_LEN);
			err = P11E_ERR_PARSE;
			break;
		}
		if (role != NULL && strcmp(role, "admin") != 0 &&
		    strcmp(role, "user") != 0) {
			p11e_error(_("%s:%d: the third field is 'admin' or "
				     "'user', not '%s'"),
			    path, lineno, role);
			err = P11E_ERR_PARSE;
			break;
		}
		for (i = 0; i < *n; i++)
			if (strcmp(u[i].user_id, id) == 0)
				break;
		if (i < *n) {
			p11e_error(_("%s:%d: user %s is listed twice"), path,
			    lineno, id);
			err = P11E_ERR_PARSE;
			break;
		}
		if (*n == IMPORT_MAX) {
			p11e_error(_("%s:%d: more than %d users"), path, lineno,
			    IMPORT_MAX);
			err = P11E_ERR_TOO_LARGE;
			break;
		}
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			if ((t = realloc(u, cap * sizeof(*u))) == NULL) {
				err = P11E_ERR_NOMEM;
				break;
			}
			u = t;
		}
		memset(&u[*n], 0, sizeof(u[*n]));
		/* both checked above: they fit */
		memcpy(u[*n].user_id, id, strlen(id) + 1);
		memcpy(u[*n].name, name, strlen(name) + 1);
		u[*n].admin = role != NULL && strcmp(role, "admin") == 0;
		(*n)++;
	}
	if (err == P11E_OK && ferror(f)) {
		p11e_error("%s: %s", path, strerror(errno));
		err = P11E_ERR_IO;
	}
	if (err == P11E_OK && *n == 0) {
		p11e_error(_("%s: no user in it"), path);
		err = P11E_ERR_PARSE;
	}
	fclose(f);
	explicit_bzero(line, sizeof(line));
	*out = u;
	return err;
}

static void
import_free(struct import_user *u, size_t n)
{
	size_t i;

	for (i = 0; u != NULL && i < n; i++) {
		p11e_secret_free(u[i].password);
		p11e_secret_free(u[i].otp_uri);
	}
	free(u);
}

/* One imported user: the rows, the OTP token, the invitation file. */
static enum p11e_err
import_one(struct p11e_ra *ra, const struct p11e_db_contract *contract,
    const char *pin, const char *dir, bool otp, time_t now, time_t closes,
    const char *closes_s, struct import_user *u)
{
	struct p11e_totp_params params = p11e_totp_default_params;
	char hash[P11E_HASH_ENCODED_MAX], target[64],
	    serial[P11E_TOTP_SERIAL_MAX];
	struct p11e_secret *secret = NULL;
	json_t *inv = NULL;
	enum p11e_err err;
	int64_t row;

	snprintf(
	    target, sizeof(target), "%s/%s", contract->contract_id, u->user_id);
	if ((err = random_chars(import_alphabet, IMPORT_PASSWORD_LEN,
		 &u->password)) != P11E_OK ||
	    (err = p11e_hash_secret(u->password, NULL, hash)) != P11E_OK ||
	    (err = p11e_db_user_register(ra->db, contract->id, u->user_id,
		 u->name, u->admin, hash, now, closes, ra->actor, &row)) !=
		P11E_OK ||
	    (err = audit(ra, "user-add", target, "ok",
		 u->admin ? "role=admin (import)" : "role=user (import)")) !=
		P11E_OK)
		goto out;
	if (otp) {
		params.step = ra->cfg.policy.otp_step;
		if ((err = p11e_totp_soft_new(&secret, serial)) != P11E_OK ||
		    (err = p11e_totp_assign(ra->db, ra->data_key, row, serial,
			 secret, &params, now)) != P11E_OK ||
		    (err = audit(ra, "otp-assign", target, "ok", serial)) !=
			P11E_OK ||
		    (err = p11e_totp_user_uri(secret, &params,
			 contract->contract_id, u->user_id, &u->otp_uri)) !=
			P11E_OK)
			goto out;
	}
	if (dir != NULL) {
		snprintf(u->inv_path, sizeof(u->inv_path), "%s/%s.json", dir,
		    u->user_id);
		if ((inv = p11e_ra_invitation(ra, pin, contract->contract_id,
			 u->user_id, u->admin, closes_s)) == NULL) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
		if ((err = write_invitation(u->inv_path, inv)) != P11E_OK)
			goto out;
		u->inv_written = true;
	}
out:
	p11e_wipe(hash, sizeof(hash));
	p11e_secret_free(secret);
	json_decref(inv);
	return err;
}

static int
user_import(struct p11e_ra *ra, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "invitations", required_argument, NULL, 'i' },
		{ "otp", no_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *contract_id, *path;
	struct import_user *u = NULL;
	struct p11e_db_contract contract;
	struct p11e_db_user existing;
	char pin[64], closes_s[32];
	enum p11e_err err;
	bool otp = false;
	size_t n = 0, i;
	json_t *list = NULL, *j;
	struct stat sb;
	time_t now, closes;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'i')
			dir = optarg;
		else if (c == 'o')
			otp = true;
		else if (c == 'j')
			ra->json = true;
		else
			goto usage;
	}
	if (optind != argc - 2)
		goto usage;
	contract_id = argv[optind];
	path = argv[optind + 1];
	if (!p11e_db_valid_contract_id(contract_id)) {
		p11e_error(_("invalid contract ID (契約者ID): it must be "
			     "exactly 11 half-width digits"));
		return P11E_RA_EXIT_FAILURE;
	}
	if (dir != NULL && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
		p11e_error(_("--invitations %s: not a directory"), dir);
		return P11E_RA_EXIT_FAILURE;
	}
	if ((err = import_read(path, &u, &n)) != P11E_OK)
		goto out;
	if (p11e_ra_open(ra) != P11E_OK) {
		err = P11E_ERR_IO;
		goto out;
	}
	if ((err = p11e_db_contract_find(ra->db, contract_id, &contract)) !=
	    P11E_OK) {
		if (err == P11E_ERR_NOT_FOUND)
			p11e_error(_("unknown contract %s"), contract_id);
		goto out;
	}
	/* every problem before anything is written */
	for (i = 0; i < n; i++) {
		char p[4096];

		err = p11e_db_user_find(
		    ra->db, contract_id, u[i].user_id, &existing);
		if (err == P11E_OK) {
			p11e_error(_("user %s already exists in contract %s"),
			    u[i].user_id, contract_id);
			err = P11E_ERR_EXISTS;
			goto out;
		}
		if (err != P11E_ERR_NOT_FOUND)
			goto out;
		snprintf(
		    p, sizeof(p), "%s/%s.json", dir ? dir : ".", u[i].user_id);
		if (dir != NULL && access(p, F_OK) == 0) {
			p11e_error(_("--invitation %s exists already"), p);
			err = P11E_ERR_EXISTS;
			goto out;
		}
	}
	if ((err = server_pin(ra, pin, sizeof(pin))) != P11E_OK)
		goto out;
	now = time(NULL);
	closes = now + (time_t)ra->cfg.policy.window;
	p11e_ra_iso_time(closes, closes_s, sizeof(closes_s));
	if ((err = p11e_db_begin(ra->db)) != P11E_OK)
		goto out;
	for (i = 0; i < n; i++)
		if ((err = import_one(ra, &contract, pin, dir, otp, now, closes,
			 closes_s, &u[i])) != P11E_OK)
			goto out;
	/* the invitation files are written: the rows go in all at once */
	if ((err = p11e_db_commit(ra->db)) != P11E_OK)
		goto out;
	if (ra->json) {
		list = json_array();
		for (i = 0; i < n; i++) {
			j = json_pack("{s:s, s:s, s:s, s:s%, s:s, s:s}",
			    "contract_id", contract_id, "user_id", u[i].user_id,
			    "name", u[i].name, "initial_password",
			    p11e_secret_str(u[i].password),
			    p11e_secret_len(u[i].password), "role",
			    u[i].admin ? "admin" : "user", "window_closes",
			    closes_s);
			if (j != NULL && u[i].otp_uri != NULL)
				json_object_set_new(j, "otpauth_uri",
				    json_stringn(p11e_secret_str(u[i].otp_uri),
					p11e_secret_len(u[i].otp_uri)));
			if (j != NULL && dir != NULL)
				json_object_set_new(j, "invitation",
				    json_string(u[i].inv_path));
			json_array_append_new(list, j);
		}
		j = json_pack("{s:o}", "users", list);
		print_json(j);
		json_decref(j);
	} else {
		printf(_("%zu users (利用者) of contract %s added; acquisition "
			 "window (取得可能期間) until %s.\n"
			 "Hand each user the initial password (shown only "
			 "once)%s:\n"),
		    n, contract_id, closes_s,
		    dir != NULL ? _(" and the invitation file") : "");
		for (i = 0; i < n; i++) {
			printf("  %-30s %s  %s\n", u[i].user_id,
			    p11e_secret_str(u[i].password), u[i].name);
			if (u[i].otp_uri != NULL)
				printf("      %s\n",
				    p11e_secret_str(u[i].otp_uri));
		}
		if (dir != NULL)
			printf(_("Invitations written to %s/USER_ID.json.\n"),
			    dir);
	}
out:
	if (err != P11E_OK) {
		if (ra->db != NULL)
			p11e_db_rollback(ra->db);
		for (i = 0; u != NULL && i < n; i++)
			if (u[i].inv_written)
				unlink(u[i].inv_path);
		if (err != P11E_ERR_NOT_FOUND && err != P11E_ERR_EXISTS &&
		    err != P11E_ERR_PARSE && err != P11E_ERR_IO &&
		    err != P11E_ERR_TOO_LARGE)
			p11e_ra_fail(err, NULL);
		p11e_error(_("nothing was added"));
	}
	import_free(u, n);
	return p11e_ra_exit(err);
usage:
	return usage_error(_("Usage: p11enroll-ra user import CONTRACT FILE "
			     "[--invitations DIR] [--otp] [--json]\n"));
}

int
p11e_ra_cmd_user(struct p11e_ra *ra, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return user_add(ra, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "import") == 0)
		return user_import(ra, argc - 1, argv + 1);
	return usage_error(_("Usage: p11enroll-ra user add CONTRACT USER_ID "
			     "--name NAME [--admin]\n"
			     "       p11enroll-ra user import CONTRACT FILE "
			     "[--invitations DIR] [--otp] [--json]\n"));
}

/* ---- otp assign / check ---- */

/* The first PSKC key package with serial, its secret and parameters. */
static enum p11e_err
pskc_import(const char *path, const char *serial, struct p11e_secret **secret,
    unsigned int *digits)
{
	struct p11e_buf file;
	pskc_t *container = NULL;
	pskc_key_t *key;
	const char *s, *alg;
	enum p11e_err err = P11E_ERR_NOT_FOUND;
	size_t i, len = 0;
	int rc, present = 0;
	unsigned char chunk[4096];
	ssize_t n;
	int fd;

	*secret = NULL;
	p11e_buf_init_wiped(&file, 1024 * 1024);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		p11e_error(_("--pskc %s: %s"), path, strerror(errno));
		return P11E_ERR_IO;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if ((err = p11e_buf_append(&file, chunk, (size_t)n)) !=
		    P11E_OK) {
			close(fd);
			goto out;
		}
	close(fd);
	p11e_wipe(chunk, sizeof(chunk));
	if ((rc = pskc_global_init()) != PSKC_OK ||
	    (rc = pskc_init(&container)) != PSKC_OK ||
	    (rc = pskc_parse_from_memory(
		 container, file.len, (const char *)file.data)) != PSKC_OK) {
		p11e_error(_("--pskc %s: %s"), path, pskc_strerror(rc));
		err = P11E_ERR_PARSE;
		goto out;
	}
	err = P11E_ERR_NOT_FOUND;
	for (i = 0; (key = pskc_get_keypackage(container, i)) != NULL; i++) {
		s = pskc_get_device_serialno(key);
		if (s == NULL || strcmp(s, serial) != 0)
			continue;
		alg = pskc_get_key_algorithm(key);
		if (alg == NULL || strstr(alg, "totp") == NULL) {
			p11e_error(
			    _("--pskc: token %s is not a TOTP token (%s)"),
			    serial, alg != NULL ? alg : "no algorithm");
			err = P11E_ERR_INVALID_PARAMETER;
			goto out;
		}
		*digits = (unsigned int)pskc_get_key_algparm_resp_length(
		    key, &present);
		if (!present)
			*digits = 6;
		if (*digits < 6 || *digits > 8) {
			p11e_error(
			    _("--pskc: %u digits are not supported"), *digits);
			err = P11E_ERR_INVALID_PARAMETER;
			goto out;
		}
		s = pskc_get_key_data_secret(key, &len);
		if (s == NULL || len == 0 || len > 64) {
			p11e_error(
			    _("--pskc: token %s has no usable secret "
			      "(encrypted PSKC files are not supported)"),
			    serial);
			err = P11E_ERR_PARSE;
			goto out;
		}
		if ((*secret = p11e_secret_new_from(s, len)) == NULL) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
		err = P11E_OK;
		goto out;
	}
	p11e_error(_("--pskc %s: no token with serial %s"), path, serial);
out:
	pskc_done(container);
	p11e_buf_clear(&file);
	return err;
}

static int
otp_assign(struct p11e_ra *ra, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pskc", required_argument, NULL, 'p' },
		{ "serial", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pskc = NULL, *serial = NULL;
	struct p11e_secret *secret = NULL, *uri = NULL;
	struct p11e_totp_params params = p11e_totp_default_params;
	struct p11e_db_user u;
	char target[64], gen_serial[P11E_TOTP_SERIAL_MAX], detail[80];
	enum p11e_err err;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'p')
			pskc = optarg;
		else if (c == 's')
			serial = optarg;
		else if (c == 'j')
			ra->json = true;
		else
			goto usage;
	}
	if (optind != argc - 2 || (pskc != NULL) != (serial != NULL))
		goto usage;
	if ((rc = open_user(ra, argv + optind, &u, target, sizeof(target))) !=
	    P11E_RA_EXIT_OK)
		return rc;
	params.step = ra->cfg.policy.otp_step;
	if (pskc != NULL) {
		if ((err = pskc_import(
			 pskc, serial, &secret, &params.digits)) != P11E_OK)
			goto out;
	} else {
		if ((err = p11e_totp_soft_new(&secret, gen_serial)) != P11E_OK)
			goto out;
		serial = gen_serial;
	}
	snprintf(detail, sizeof(detail), "serial=%s%s", serial,
	    pskc != NULL ? " (PSKC)" : "");
	if ((err = p11e_db_begin(ra->db)) != P11E_OK ||
	    (err = p11e_totp_assign(ra->db, ra->data_key, u.id, serial, secret,
		 &params, time(NULL))) != P11E_OK ||
	    (err = audit(ra, "otp-assign", target, "ok", detail)) != P11E_OK ||
	    (err = p11e_db_commit(ra->db)) != P11E_OK)
		goto out;
	if (pskc != NULL) {
		if (ra->json) {
			json_t *j = json_pack("{s:s, s:s, s:s, s:i}",
			    "contract_id", u.contract_id, "user_id", u.user_id,
			    "serial", serial, "digits", (int)params.digits);

			print_json(j);
			json_decref(j);
		} else {
			printf(_("Hardware token %s assigned to %s.\n"), serial,
			    target);
		}
		goto out;
	}
	if ((err = p11e_totp_user_uri(
		 secret, &params, u.contract_id, u.user_id, &uri)) != P11E_OK)
		goto out;
	if (ra->json) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:s%}", "contract_id",
		    u.contract_id, "user_id", u.user_id, "serial", serial,
		    "otpauth_uri", p11e_secret_str(uri), p11e_secret_len(uri));

		print_json(j);
		json_decref(j);
	} else {
		printf(_("One-time password token %s assigned to %s.\n"
			 "Scan into an authenticator app (shown only once):\n"
			 "  %s\n"),
		    serial, target, p11e_secret_str(uri));
		p11e_qr_print(p11e_secret_str(uri));
	}
out:
	p11e_secret_free(secret);
	p11e_secret_free(uri);
	return command_end(ra, err, err == P11E_ERR_NOT_FOUND);
usage:
	return usage_error(_("Usage: p11enroll-ra otp assign CONTRACT USER_ID "
			     "[--pskc FILE --serial S] [--json]\n"));
}

/*
 * otp check: the operator verifies a code the user reads from the token
 * (ワンタイムパスワード利用開始).  The code is read from the terminal or
 * stdin; an accepted code's step is stored like any login's, so it
 * cannot be used again.
 */
static int
otp_check(struct p11e_ra *ra, int argc, char **argv)
{
	struct p11e_secret *code = NULL;
	bool from_stdin = false;
	struct p11e_db_user u;
	char target[64];
	enum p11e_err err, verdict;
	int i, rc;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--stdin") == 0)
			from_stdin = true;
		else
			goto usage;
	}
	if (i != argc - 2)
		goto usage;
	if ((rc = open_user(ra, argv + i, &u, target, sizeof(target))) !=
	    P11E_RA_EXIT_OK)
		return rc;
	if ((err = p11e_cli_read_secret(
		 _("One-time password: "), from_stdin, &code)) != P11E_OK)
		goto out;
	/* decision and step in one transaction (R02) */
	if ((err = p11e_db_begin(ra->db)) != P11E_OK)
		goto out;
	err = p11e_totp_check(ra->db, ra->data_key, u.id, code,
	    ra->cfg.policy.otp_skew, time(NULL), &verdict);
	if (err == P11E_ERR_NOT_FOUND)
		p11e_error(_("%s has no one-time password token"), target);
	if (err != P11E_OK)
		goto out;
	err = verdict;
	if (err == P11E_OK) {
		if ((err = audit(ra, "otp-check", target, "ok", NULL)) !=
			P11E_OK ||
		    (err = p11e_db_commit(ra->db)) != P11E_OK)
			goto out;
		if (ra->json) {
			json_t *j = json_pack("{s:b}", "valid", 1);

			print_json(j);
			json_decref(j);
		} else {
			printf(_("The one-time password is valid.\n"));
		}
		goto out;
	}
	if (err == P11E_ERR_OTP_INVALID || err == P11E_ERR_OTP_REPLAYED) {
		enum p11e_err e2;

		if ((e2 = audit(ra, "otp-check", target, "refused",
			 p11e_err_name(err))) == P11E_OK)
			e2 = p11e_db_commit(ra->db);
		if (e2 != P11E_OK)
			err = e2;
	}
out:
	p11e_secret_free(code);
	return command_end(ra, err, err == P11E_ERR_NOT_FOUND);
usage:
	return usage_error(
	    _("Usage: p11enroll-ra otp check [--stdin] CONTRACT USER_ID\n"));
}

int
p11e_ra_cmd_otp(struct p11e_ra *ra, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "assign") == 0)
		return otp_assign(ra, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return otp_check(ra, argc - 1, argv + 1);
	return usage_error(_("Usage: p11enroll-ra otp assign|check CONTRACT "
			     "USER_ID ...\n"));
}

/* ---- admin-code ---- */

int
p11e_ra_cmd_admin_code(struct p11e_ra *ra, int argc, char **argv)
{
	unsigned char raw[CODE_BYTES], md[32];
	struct p11e_secret *code = NULL;
	struct p11e_db_user u;
	sqlite3_stmt *st = NULL;
	char target[64], closes_s[32];
	enum p11e_err err;
	int64_t window;
	time_t now, closes;
	unsigned int mdlen;
	int rc;
	size_t i;

	if ((rc = json_user_args(ra, argc, argv,
		 _("Usage: p11enroll-ra admin-code CONTRACT USER_ID "
		   "[--json]\n"),
		 &u, target, sizeof(target))) != P11E_RA_EXIT_OK)
		return rc;
	if (!u.admin) {
		p11e_error(_("%s is not an administrator (管理者): admin codes "
			     "are for an administrator's first certificate"),
		    target);
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	now = time(NULL);
	if ((err = p11e_db_window_open_get(
		 ra->db, u.id, now, &window, &closes)) != P11E_OK) {
		if (err == P11E_ERR_NOT_FOUND)
			p11e_error(_("%s has no open acquisition window "
				     "(取得可能期間)"),
			    target);
		goto out;
	}
	/* a code to type: 16 random bytes as 32 hex digits in groups */
	if (RAND_bytes(raw, sizeof(raw)) != 1 ||
	    (code = p11e_secret_new(2 * CODE_BYTES + CODE_BYTES / 2)) == NULL) {
		err = code == NULL ? P11E_ERR_NOMEM : P11E_ERR_CRYPTO;
		goto out;
	}
	for (i = 0; i < CODE_BYTES; i++) {
		char h[3];

		snprintf(h, sizeof(h), "%02x", raw[i]);
		if (i > 0 && i % 4 == 0)
			(void)p11e_secret_append(code, "-", 1);
		(void)p11e_secret_append(code, h, 2);
		p11e_wipe(h, sizeof(h));
	}
	p11e_wipe(raw, sizeof(raw));
	if (EVP_Digest(p11e_secret_data(code), p11e_secret_len(code), md,
		&mdlen, EVP_sha256(), NULL) != 1) {
		err = P11E_ERR_CRYPTO;
		goto out;
	}
	if ((err = p11e_db_begin(ra->db)) != P11E_OK ||
	    (err = p11e_db_prepare(ra->db,
		 "UPDATE enroll_codes SET used = ? WHERE user = ?"
		 " AND kind = 'admin-code' AND used IS NULL",
		 &st)) != P11E_OK)
		goto out;
	/* a new code replaces any unused one */
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	sqlite3_bind_int64(st, 2, u.id);
	if ((err = p11e_db_step_done(ra->db, st)) != P11E_OK ||
	    (err = p11e_db_prepare(ra->db,
		 "INSERT INTO enroll_codes (hash, user, kind, window, created,"
		 " expires) VALUES (?, ?, 'admin-code', ?, ?, ?)",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_blob(st, 1, md, sizeof(md), SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, u.id);
	sqlite3_bind_int64(st, 3, window);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)closes);
	if ((err = p11e_db_step_done(ra->db, st)) != P11E_OK ||
	    (err = audit(ra, "admin-code", target, "ok", NULL)) != P11E_OK ||
	    (err = p11e_db_commit(ra->db)) != P11E_OK)
		goto out;
	p11e_ra_iso_time(closes, closes_s, sizeof(closes_s));
	if (ra->json) {
		json_t *j = json_pack("{s:s, s:s, s:s%, s:s}", "contract_id",
		    u.contract_id, "user_id", u.user_id, "code",
		    p11e_secret_str(code), p11e_secret_len(code), "expires",
		    closes_s);

		print_json(j);
		json_decref(j);
	} else {
		printf(_("One-time enrollment code for administrator %s "
			 "(shown only once, valid until %s):\n  %s\n"),
		    target, closes_s, p11e_secret_str(code));
	}
out:
	p11e_secret_free(code);
	return command_end(ra, err,
	    err == P11E_ERR_NOT_FOUND || err == P11E_ERR_INVALID_PARAMETER);
}

/* ---- cert revoke, crl ---- */

/* Upper-case hex without separators or leading zero pairs. */
static bool
normalise_serial(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (; *in != '\0'; in++) {
		char c = *in;

		if (c == ':')
			continue;
		if (c >= 'a' && c <= 'f')
			c = (char)(c - 'a' + 'A');
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return false;
		if (n + 1 >= len)
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	while (n > 2 && out[0] == '0' && out[1] == '0') {
		memmove(out, out + 2, n - 1);
		n -= 2;
	}
	return n > 0;
}

static int
cert_revoke(struct p11e_ra *ra, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *reason_name = "unspecified";
	char serial[41], detail[64];
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int c, reason, changes;
	time_t now = time(NULL);

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r')
			reason_name = optarg;
		else if (c == 'j')
			ra->json = true;
		else
			goto usage;
	}
	if (optind != argc - 1)
		goto usage;
	reason = p11e_ca_reason_code(reason_name);
	if (reason < 0 || reason == 8) {
		p11e_error(_("unknown --reason %s (unspecified, keyCompromise, "
			     "affiliationChanged, superseded, "
			     "cessationOfOperation, certificateHold, "
			     "privilegeWithdrawn)"),
		    reason_name);
		return P11E_RA_EXIT_USAGE;
	}
	if (!normalise_serial(argv[optind], serial, sizeof(serial))) {
		p11e_error(_("invalid serial number: hexadecimal digits "
			     "(colons allowed), at most 40"));
		return P11E_RA_EXIT_FAILURE;
	}
	if (p11e_ra_open(ra) != P11E_OK)
		return P11E_RA_EXIT_FAILURE;
	if ((err = p11e_db_begin(ra->db)) != P11E_OK ||
	    (err = p11e_db_prepare(ra->db,
		 "UPDATE certificates SET status = 'revoked', revoked_at = ?,"
		 " reason = ? WHERE serial = ? AND status != 'revoked'",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	sqlite3_bind_int(st, 2, reason);
	sqlite3_bind_text(st, 3, serial, -1, SQLITE_STATIC);
	if ((err = p11e_db_step_done(ra->db, st)) != P11E_OK)
		goto out;
	changes = p11e_db_changes(ra->db);
	if (changes == 0) {
		sqlite3_stmt *q = NULL;

		if ((err = p11e_db_prepare(ra->db,
			 "SELECT status FROM certificates WHERE serial = ?",
			 &q)) != P11E_OK)
			goto out;
		sqlite3_bind_text(q, 1, serial, -1, SQLITE_STATIC);
		if (sqlite3_step(q) == SQLITE_ROW) {
			p11e_error(
			    _("certificate %s is already revoked"), serial);
			err = P11E_ERR_EXISTS;
		} else {
			p11e_error(_("no certificate with serial %s"), serial);
			err = P11E_ERR_NOT_FOUND;
		}
		sqlite3_finalize(q);
		goto out;
	}
	snprintf(detail, sizeof(detail), "reason=%s", reason_name);
	if ((err = audit(ra, "cert-revoke", serial, "ok", detail)) != P11E_OK ||
	    (err = p11e_db_commit(ra->db)) != P11E_OK)
		goto out;
	if (ra->json) {
		json_t *j = json_pack(
		    "{s:s, s:s}", "revoked", serial, "reason", reason_name);

		print_json(j);
		json_decref(j);
	} else {
		printf(
		    _("Certificate %s revoked (%s).\n"), serial, reason_name);
	}
out:
	return command_end(
	    ra, err, err == P11E_ERR_NOT_FOUND || err == P11E_ERR_EXISTS);
usage:
	return usage_error(_("Usage: p11enroll-ra cert revoke SERIAL [--reason "
			     "REASON] [--json]\n"));
}

int
p11e_ra_cmd_cert(struct p11e_ra *ra, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "revoke") == 0)
		return cert_revoke(ra, argc - 1, argv + 1);
	return usage_error(_("Usage: p11enroll-ra cert revoke SERIAL [--reason "
			     "REASON]\n"));
}

int
p11e_ra_cmd_crl(struct p11e_ra *ra, int argc, char **argv)
{
	struct p11e_ca_crl_entry *entries = NULL;
	struct p11e_db_revoked *list = NULL;
	struct p11e_ca *ca = NULL;
	struct p11e_buf der;
	enum p11e_err err;
	time_t now = time(NULL);
	size_t n = 0, i;

	(void)argv;
	p11e_buf_init(&der, 16 * 1024 * 1024);
	if (argc != 1) {
		return usage_error(_("Usage: p11enroll-ra crl\n"));
	}
	if (p11e_ra_open(ra) != P11E_OK)
		return P11E_RA_EXIT_FAILURE;
	if ((err = p11e_db_revoked_list(ra->db, now, &list, &n)) != P11E_OK ||
	    (err = p11e_ca_load(ra->cfg.ca_cert, ra->cfg.ca_key,
		 ra->cfg.ca_key_uri, &ca)) != P11E_OK)
		goto out;
	if (n > 0 && (entries = calloc(n, sizeof(*entries))) == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		entries[i].serial = list[i].serial;
		entries[i].revoked_at = list[i].revoked_at;
		entries[i].reason = list[i].reason;
	}
	/* CRL number: the time, which only grows */
	if ((err = p11e_ca_crl(
		 ca, entries, n, now, 7 * 86400, (long)now, &der)) != P11E_OK)
		goto out;
	{
		const unsigned char *p = der.data;
		X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)der.len);

		if (crl == NULL || PEM_write_X509_CRL(stdout, crl) != 1)
			err = P11E_ERR_CRYPTO;
		X509_CRL_free(crl);
	}
out:
	if (err != P11E_OK)
		p11e_ra_fail(err, NULL);
	p11e_buf_clear(&der);
	free(entries);
	free(list);
	p11e_ca_free(ca);
	return p11e_ra_exit(err);
}

/* ---- unlock ---- */

int
p11e_ra_cmd_unlock(struct p11e_ra *ra, int argc, char **argv)
{
	struct p11e_db_user u;
	sqlite3_stmt *st = NULL;
	char target[64], detail[64];
	enum p11e_err err;
	int rc;

	if ((rc = json_user_args(ra, argc, argv,
		 _("Usage: p11enroll-ra unlock CONTRACT USER_ID [--json]\n"),
		 &u, target, sizeof(target))) != P11E_RA_EXIT_OK)
		return rc;
	snprintf(detail, sizeof(detail), "failures=%d grid=%d locked=%d",
	    u.failures, u.grid_failures, u.locked ? 1 : 0);
	if ((err = p11e_db_begin(ra->db)) != P11E_OK ||
	    (err = p11e_db_prepare(ra->db,
		 "UPDATE users SET failures = 0, grid_failures = 0,"
		 " locked = 0 WHERE id = ?",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, u.id);
	if ((err = p11e_db_step_done(ra->db, st)) != P11E_OK ||
	    (err = audit(ra, "unlock", target, "ok", detail)) != P11E_OK ||
	    (err = p11e_db_commit(ra->db)) != P11E_OK)
		goto out;
	if (ra->json) {
		json_t *j =
		    json_pack("{s:s, s:s, s:b}", "contract_id", u.contract_id,
			"user_id", u.user_id, "was_locked", u.locked);

		print_json(j);
		json_decref(j);
	} else {
		printf(_("%s unlocked (was: %s).\n"), target, detail);
	}
out:
	return command_end(ra, err, err == P11E_ERR_NOT_FOUND);
}

/* ---- list, audit ---- */

static json_t *
query_json(struct p11e_ra *ra, const char *sql, const char *contract)
{
	json_t *rows = json_array(), *row;
	sqlite3_stmt *st = NULL;
	int i, n;

	if (p11e_db_prepare(ra->db, sql, &st) != P11E_OK) {
		json_decref(rows);
		return NULL;
	}
	if (contract != NULL)
		sqlite3_bind_text(st, 1, contract, -1, SQLITE_STATIC);
	n = sqlite3_column_count(st);
	while (sqlite3_step(st) == SQLITE_ROW) {
		row = json_object();
		for (i = 0; i < n; i++) {
			const char *name = sqlite3_column_name(st, i);

			switch (sqlite3_column_type(st, i)) {
			case SQLITE_INTEGER:
				json_object_set_new(row, name,
				    json_integer(sqlite3_column_int64(st, i)));
				break;
			case SQLITE_NULL:
				json_object_set_new(row, name, json_null());
				break;
			default:
				json_object_set_new(row, name,
				    json_string(
					(const char *)sqlite3_column_text(
					    st, i)));
				break;
			}
		}
		json_array_append_new(rows, row);
	}
	sqlite3_finalize(st);
	return rows;
}

static void
print_table(const char *title, json_t *rows, const char *const *cols)
{
	size_t i, k;
	json_t *row, *v;

	printf("%s:\n", title);
	if (json_array_size(rows) == 0) {
		printf(_("  (none)\n"));
		return;
	}
	json_array_foreach(rows, i, row)
	{
		printf(" ");
		for (k = 0; cols[k] != NULL; k++) {
			v = json_object_get(row, cols[k]);
			if (json_is_integer(v) &&
			    (strcmp(cols[k], "closes") == 0 ||
				strcmp(cols[k], "not_after") == 0 ||
				strcmp(cols[k], "at") == 0)) {
				char t[32];

				p11e_ra_iso_time((time_t)json_integer_value(v),
				    t, sizeof(t));
				printf(" %s=%s", cols[k], t);
			} else if (json_is_integer(v)) {
				printf(" %s=%" JSON_INTEGER_FORMAT, cols[k],
				    json_integer_value(v));
			} else if (json_is_string(v)) {
				printf(" %s=%s", cols[k], json_string_value(v));
			}
		}
		printf("\n");
	}
}

int
p11e_ra_cmd_list(struct p11e_ra *ra, int argc, char **argv)
{
	static const char *const ccols[] = { "contract_id", "name", NULL };
	static const char *const ucols[] = { "contract_id", "user_id", "name",
		"role", "failures", "locked", "otp_serial", NULL };
	static const char *const xcols[] = { "serial", "contract_id", "user_id",
		"issue_no", "status", "key_type", "not_after", NULL };
	static const char *const wcols[] = { "contract_id", "user_id", "reason",
		"state", "closes", NULL };
	/* ?1 is NULL (every contract) when no CONTRACT is given */
	static const struct {
		const char *key, *title, *sql;
		const char *const *cols;
	} tables[] = {
		{ "contracts", "Contracts (ご契約先)",
		    "SELECT contract_id, name, created FROM contracts c"
		    " WHERE ?1 IS NULL OR c.contract_id = ?1"
		    " ORDER BY contract_id",
		    ccols },
		{ "users", "Users (利用者)",
		    "SELECT c.contract_id, u.user_id, u.name, u.role,"
		    " u.failures, u.grid_failures, u.locked, o.serial AS"
		    " otp_serial, u.created FROM users u JOIN contracts c ON"
		    " c.id = u.contract LEFT JOIN otp_tokens o ON o.user = u.id"
		    " WHERE ?1 IS NULL OR c.contract_id = ?1"
		    " ORDER BY c.contract_id, u.user_id",
		    ucols },
		{ "certificates", "Certificates (電子証明書)",
		    "SELECT x.serial, c.contract_id, u.user_id, x.issue_no,"
		    " x.status, x.key_type, x.not_before, x.not_after,"
		    " x.revoked_at, x.reason, x.issued_from FROM certificates x"
		    " JOIN users u ON u.id = x.user JOIN contracts c ON"
		    " c.id = u.contract WHERE ?1 IS NULL OR c.contract_id = ?1"
		    " ORDER BY x.created",
		    xcols },
		{ "windows", "Windows (取得可能期間)",
		    "SELECT c.contract_id, u.user_id, w.reason, w.state,"
		    " w.opened, w.closes, w.opened_by FROM windows w JOIN users"
		    " u ON u.id = w.user JOIN contracts c ON c.id = u.contract"
		    " WHERE ?1 IS NULL OR c.contract_id = ?1 ORDER BY w.opened",
		    wcols },
	};
	const size_t n = sizeof(tables) / sizeof(tables[0]);
	const char *contract = NULL;
	json_t *rows[sizeof(tables) / sizeof(tables[0])], *j;
	bool failed = false;
	size_t t;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			ra->json = true;
		else if (argv[i][0] != '-' && contract == NULL)
			contract = argv[i];
		else {
			return usage_error(
			    _("Usage: p11enroll-ra list [CONTRACT] "
			      "[--json]\n"));
		}
	}
	if (contract != NULL && check_ids(contract, NULL) != P11E_OK)
		return P11E_RA_EXIT_FAILURE;
	if (p11e_ra_open(ra) != P11E_OK)
		return P11E_RA_EXIT_FAILURE;
	if (contract != NULL) {
		struct p11e_db_contract c;

		if (p11e_db_contract_find(ra->db, contract, &c) != P11E_OK) {
			p11e_error(_("unknown contract %s"), contract);
			return P11E_RA_EXIT_FAILURE;
		}
	}
	for (t = 0; t < n; t++)
		failed |=
		    (rows[t] = query_json(ra, tables[t].sql, contract)) == NULL;
	if (!failed && ra->json) {
		j = json_object();
		for (t = 0; t < n; t++) {
			json_object_set_new(j, tables[t].key, rows[t]);
			rows[t] = NULL; /* transferred */
		}
		print_json(j);
		json_decref(j);
	} else if (!failed) {
		for (t = 0; t < n; t++)
			print_table(tables[t].title, rows[t], tables[t].cols);
	}
	for (t = 0; t < n; t++)
		json_decref(rows[t]);
	return failed ? P11E_RA_EXIT_FAILURE : P11E_RA_EXIT_OK;
}

int
p11e_ra_cmd_audit(struct p11e_ra *ra, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cols[] = { "at", "actor", "action", "target",
		"result", "peer", "detail", NULL };
	int64_t since = 0;
	sqlite3_stmt *st = NULL;
	json_t *rows;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's') {
			struct tm tm;
			const char *end;

			memset(&tm, 0, sizeof(tm));
			if (p11e_num_parse_i64(optarg, 0, INT64_MAX, &since) ==
			    P11E_OK)
				continue;
			end = strptime(optarg, "%Y-%m-%dT%H:%M:%S", &tm);
			if (end == NULL)
				end = strptime(optarg, "%Y-%m-%d", &tm);
			if (end == NULL || (*end != '\0' && strcmp(end, "Z"))) {
				p11e_error(
				    _("--since: seconds since the epoch, "
				      "YYYY-MM-DD or "
				      "YYYY-MM-DDTHH:MM:SSZ (UTC)"));
				return P11E_RA_EXIT_USAGE;
			}
			since = (int64_t)timegm(&tm);
		} else if (c == 'j') {
			ra->json = true;
		} else {
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	if (p11e_ra_open(ra) != P11E_OK)
		return P11E_RA_EXIT_FAILURE;
	(void)st;
	{
		char since_s[32];

		snprintf(since_s, sizeof(since_s), "%lld", (long long)since);
		rows = query_json(ra,
		    "SELECT id, at, actor, action, target, result, peer,"
		    " detail FROM audit WHERE at >= CAST(?1 AS INTEGER)"
		    " ORDER BY id",
		    since_s);
	}
	if (rows == NULL)
		return P11E_RA_EXIT_FAILURE;
	if (ra->json)
		print_json(rows);
	else
		print_table("Audit (操作履歴)", rows, cols);
	json_decref(rows);
	return P11E_RA_EXIT_OK;
usage:
	return usage_error(
	    _("Usage: p11enroll-ra audit [--since TIME] [--json]\n"));
}
