/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/secret.h"
#include "server/admin.h"
#include "server/ca.h"
#include "server/card.h"
#include "server/db-pool.h"
#include "server/hash.h"
#include "server/seal.h"
#include "server/totp.h"

/*
 * The administrator API (DESIGN §4, doc/protocol.md "Administrator API").
 *
 * Every request is first authenticated by the client certificate: GnuTLS
 * verified it against the issuing CA, OpenSSL verifies the chain again
 * for clientAuth at now, and the database maps (issuer, serial) to the
 * certificate row, which must be valid (not revoked or superseded), hold
 * the very DER presented, have been issued for the admin role, and
 * belong to a user who is still an administrator.  This happens on every
 * request, so a revocation takes effect on the next one (R11).  The
 * contract is the certificate's user's; nothing in a request names it.
 *
 * Then: the contract PIN opens a pending session (kind 'grid') and
 * presents the contract's grid challenge (two cells drawn once with the
 * CSPRNG and kept in contracts.grid_challenge until answered or locked,
 * R12); the right answer turns it into an admin token (kind 'token'),
 * bound to the SHA-256 of the certificate, with an idle timeout and an
 * absolute lifetime.  Session ids and tokens are 32 random bytes,
 * stored as SHA-256 only.  Wrong contract and confirmation PINs count
 * in users.failures (lock at policy max-failures), wrong grid answers in
 * users.grid_failures (lock at grid-max-failures); every decision is
 * made and audited in one transaction.
 */

#define PIN_MAX 64
#define ANSWER_MAX 8
#define AUDIT_ROWS 500

struct p11e_admin {
	struct p11e_ra *ra;
	const struct p11e_ra_policy *policy;
	struct p11e_db_pool *pool; /* the server's */
	X509_STORE *store;
	uint64_t idle; /* s */
	uint64_t lifetime; /* s */
	char server_pin[128];
};

/* One request being answered. */
struct acall {
	struct p11e_admin *a;
	const struct p11e_http_request *req;
	struct p11e_http_response *resp;
	struct p11e_db *db;
	time_t now;
	/* the administrator, from the client certificate */
	struct p11e_db_user u;
	unsigned char cert_md[32];
	char serial[64];
	char actor[80]; /* "admin:CONTRACT/USER" */
	int64_t session; /* admin_sessions rowid of the token */
};

/* ---- helpers ---- */

static void
unavailable(struct acall *c)
{
	p11e_http_unavailable(c->resp,
	    "the store is full or failing; nothing was changed, try again");
}

/* The store failed in the middle of an action: it is undone; 503. */
static void
undo_unavailable(struct acall *c)
{
	p11e_db_rollback(c->db);
	unavailable(c);
}

static enum p11e_err
audit(struct acall *c, const char *actor, const char *action,
    const char *target, const char *result, const char *detail)
{
	return p11e_db_audit(
	    c->db, actor, action, target, result, c->req->peer, detail);
}

/* ---- the client certificate (every request) ---- */

/*
 * Authenticates the administrator by the client certificate into c->u,
 * c->cert_md, c->serial and c->actor.  False when the request was
 * answered (refused or failed).
 */
static bool
admin_cert(struct acall *c)
{
	char detail[200], status[16] = "", role[16] = "";
	sqlite3_stmt *st = NULL;
	enum p11e_err err = P11E_OK;
	X509 *x = NULL;
	int64_t user = 0;
	bool ok = false, same = false;
	int rc;

	detail[0] = '\0';
	if ((x = p11e_ca_client_cert(c->req, c->a->store, c->now, detail,
		 sizeof(detail))) == NULL) {
		p11e_http_problem(c->resp, 403, "certificate-required",
		    "An administrator's client certificate is required",
		    detail);
		return false;
	}
	/* identity by issuer (the CA, verified above) and serial only */
	if ((err = p11e_ca_serial_hex(x, c->serial, sizeof(c->serial))) !=
	    P11E_OK)
		goto out;
	p11e_hash_sha256(c->req->cert_der[0], c->req->cert_len[0], c->cert_md);
	if ((c->db = p11e_db_pool_take(c->a->pool)) == NULL) {
		err = P11E_ERR_DB;
		goto out;
	}
	if ((err = p11e_db_prepare(c->db,
		 "SELECT user, status, role, der FROM certificates"
		 " WHERE serial = ?",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_text(st, 1, c->serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		user = sqlite3_column_int64(st, 0);
		snprintf(status, sizeof(status), "%s",
		    (const char *)sqlite3_column_text(st, 1));
		snprintf(role, sizeof(role), "%s",
		    sqlite3_column_type(st, 2) == SQLITE_NULL
			? ""
			: (const char *)sqlite3_column_text(st, 2));
		same = (size_t)sqlite3_column_bytes(st, 3) ==
			c->req->cert_len[0] &&
		    memcmp(sqlite3_column_blob(st, 3), c->req->cert_der[0],
			c->req->cert_len[0]) == 0;
	} else if (rc != SQLITE_DONE) {
		err = p11e_db_error(c->db, rc, "certificate");
	}
	sqlite3_finalize(st);
	if (err != P11E_OK)
		goto out;
	if (rc == SQLITE_DONE || !same || strcmp(status, "valid") != 0) {
		if ((err = audit(c, "admin", "admin-auth", c->serial, "refused",
			 rc == SQLITE_DONE || !same ? "unknown certificate"
						    : status)) != P11E_OK)
			goto out;
		p11e_http_problem(c->resp, 403, "certificate-revoked",
		    "Certificate not accepted",
		    "the certificate is revoked, superseded or unknown");
		goto out;
	}
	if ((err = p11e_db_user_get(c->db, user, &c->u)) != P11E_OK)
		goto out;
	snprintf(c->actor, sizeof(c->actor), "admin:%s/%s", c->u.contract_id,
	    c->u.user_id);
	if (strcmp(role, "admin") != 0 || !c->u.admin) {
		if ((err = audit(c, "user", "admin-auth", c->actor + 6,
			 "refused", "not an administrator's certificate")) !=
		    P11E_OK)
			goto out;
		p11e_http_problem(c->resp, 403, "not-admin",
		    "Not an administrator",
		    "this certificate was not issued to an administrator");
		goto out;
	}
	ok = true;
out:
	if (err != P11E_OK)
		unavailable(c);
	X509_free(x);
	return ok;
}

static bool
locked_refusal(struct acall *c, const char *action)
{
	if (!c->u.locked)
		return false;
	if (audit(c, c->actor, action, c->actor + 6, "refused", "locked") !=
	    P11E_OK) {
		unavailable(c);
		return true;
	}
	p11e_http_problem(c->resp, 403, "account-locked", "Account locked",
	    "too many failed attempts; ask the bank to unlock it");
	return true;
}

/* ---- request bodies ---- */

/*
 * The JSON object of a POST, or NULL when the request was answered (405,
 * 415, 400).
 */
static json_t *
body_object(struct acall *c)
{
	json_error_t je;
	json_t *j;

	if (strcmp(c->req->method, "POST") != 0) {
		p11e_http_method_not_allowed(c->resp, "POST");
		return NULL;
	}
	if (!p11e_http_media_type_is(
		c->req->content_type, "application/json")) {
		p11e_http_problem(c->resp, 415, "unsupported-media-type",
		    "Unsupported media type",
		    "send Content-Type: application/json");
		return NULL;
	}
	j = json_loadb((const char *)c->req->body, c->req->body_len,
	    JSON_REJECT_DUPLICATES, &je);
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		p11e_http_problem(c->resp, 400, "invalid-request",
		    "Invalid request", "expected a JSON object");
		return NULL;
	}
	return j;
}

/* Only the keys of allowed (NULL-terminated) in j. */
static bool
keys_only(json_t *j, const char *const *allowed)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(j, key, v)
	{
		(void)v;
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL)
			return false;
	}
	return true;
}

/* The string member key as a new secret of 1..max bytes, or NULL. */
static struct p11e_secret *
secret_member(json_t *j, const char *key, size_t max)
{
	json_t *v = json_object_get(j, key);

	if (!json_is_string(v) || json_string_length(v) < 1 ||
	    json_string_length(v) > max)
		return NULL;
	return p11e_secret_new_from(
	    json_string_value(v), json_string_length(v));
}

static void
bad_request(struct acall *c, const char *detail)
{
	p11e_http_problem(
	    c->resp, 400, "invalid-request", "Invalid request", detail);
}

/* ---- PINs and failure counters ---- */

/* The contract's pin_hash or confirm_pin_hash (column) into out. */
static enum p11e_err
pin_hash_get(struct acall *c, bool confirmation, char *out, size_t len)
{
	return p11e_db_text_by_id(c->db,
	    confirmation ? "SELECT confirm_pin_hash FROM contracts WHERE id = ?"
			 : "SELECT pin_hash FROM contracts WHERE id = ?",
	    c->u.contract, "contract", out, len);
}

/* Verifies the contract (or confirmation) PIN: *ok set. */
static enum p11e_err
pin_verify(
    struct acall *c, bool confirmation, const struct p11e_secret *pin, bool *ok)
{
	char hash[P11E_HASH_ENCODED_MAX];
	enum p11e_err err;

	*ok = false;
	if ((err = pin_hash_get(c, confirmation, hash, sizeof(hash))) !=
	    P11E_OK)
		return err;
	*ok = p11e_hash_verify(hash, pin) == P11E_OK;
	p11e_wipe(hash, sizeof(hash));
	return P11E_OK;
}

/*
 * Inside the open transaction: counts one failure of the administrator
 * (grid: the grid counter), locks at the threshold, audits, commits.
 * *locked says whether it locked now.
 */
static enum p11e_err
count_failure(struct acall *c, bool grid, const char *action,
    const char *target, const char *why, bool *locked)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	unsigned int max =
	    grid ? c->a->policy->grid_max_failures : c->a->policy->max_failures;
	unsigned int n =
	    (unsigned int)(grid ? c->u.grid_failures : c->u.failures) + 1;

	*locked = n >= max;
	if ((err = p11e_db_prepare(c->db,
		 grid ? "UPDATE users SET grid_failures = grid_failures + 1,"
			" locked = locked OR ? WHERE id = ?"
		      : "UPDATE users SET failures = failures + 1,"
			" locked = locked OR ? WHERE id = ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int(st, 1, *locked ? 1 : 0);
	sqlite3_bind_int64(st, 2, c->u.id);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
	    (err = audit(c, c->actor, action, target, "refused", why)) !=
		P11E_OK)
		return err;
	if (*locked) {
		/*
		 * Locked: the challenge is dropped (a new one after the
		 * audited unlock) and every session of the user ends.
		 */
		if ((err = p11e_db_prepare(c->db,
			 "UPDATE contracts SET grid_challenge = NULL"
			 " WHERE id = ?",
			 &st)) != P11E_OK)
			return err;
		sqlite3_bind_int64(st, 1, c->u.contract);
		if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
		    (err = p11e_db_prepare(c->db,
			 "UPDATE admin_sessions SET ended = ?"
			 " WHERE user = ? AND ended IS NULL",
			 &st)) != P11E_OK)
			return err;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)c->now);
		sqlite3_bind_int64(st, 2, c->u.id);
		if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
		    (err = audit(c, "system", "lock", c->actor + 6, "ok",
			 grid ? "grid-max-failures reached"
			      : "max-failures reached")) != P11E_OK)
			return err;
	}
	return p11e_db_commit(c->db);
}

/* Begins and re-reads the administrator (the counters and the lock). */
static enum p11e_err
begin_fresh(struct acall *c)
{
	enum p11e_err err;

	if ((err = p11e_db_begin(c->db)) != P11E_OK)
		return err;
	return p11e_db_user_get(c->db, c->u.id, &c->u);
}

static enum p11e_err
reset_failures(struct acall *c, bool grid)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;

	if ((err = p11e_db_prepare(c->db,
		 grid ? "UPDATE users SET grid_failures = 0 WHERE id = ?"
		      : "UPDATE users SET failures = 0 WHERE id = ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, c->u.id);
	return p11e_db_step_done(c->db, st);
}

/*
 * The decision on a PIN of the administrator (confirmation: the
 * confirmation PIN, else the contract PIN) that pin_verify() found ok or
 * not: begins (begin_fresh), refuses a locked administrator (audited as
 * action) or counts a wrong PIN (audited as action on target with why;
 * 403, or 401 for the contract PIN), and commits that.  *go is true when
 * the request goes on: in the transaction, the failures reset.
 */
static enum p11e_err
pin_decided(struct acall *c, bool confirmation, bool ok, const char *action,
    const char *target, const char *why, bool *go)
{
	enum p11e_err err;
	bool locked;

	*go = false;
	if ((err = begin_fresh(c)) != P11E_OK)
		return err;
	if (locked_refusal(c, action))
		return p11e_db_commit(c->db);
	if (!ok) {
		if ((err = count_failure(
			 c, false, action, target, why, &locked)) != P11E_OK)
			return err;
		if (locked)
			p11e_http_problem(c->resp, 403, "account-locked",
			    "Account locked",
			    "too many failed attempts; ask the bank to "
			    "unlock it");
		else if (confirmation)
			p11e_http_problem(c->resp, 403,
			    "confirmation-pin-mismatch",
			    "Wrong confirmation PIN", "nothing was done");
		else
			p11e_http_problem(c->resp, 401, "invalid-credentials",
			    "Invalid credentials", "wrong contract PIN");
		return P11E_OK;
	}
	if ((err = reset_failures(c, false)) != P11E_OK)
		return err;
	*go = true;
	return P11E_OK;
}

/*
 * The user user_id of the administrator's contract into *t and
 * "CONTRACT/USER" into target (64 bytes); *found is false when the
 * request was answered (404 unknown-user: not in this contract).
 */
static enum p11e_err
target_user(struct acall *c, const char *user_id, struct p11e_db_user *t,
    char target[64], bool *found)
{
	enum p11e_err err = P11E_OK;

	*found = false;
	if (!p11e_db_valid_user_id(user_id) ||
	    (err = p11e_db_user_find(c->db, c->u.contract_id, user_id, t)) ==
		P11E_ERR_NOT_FOUND) {
		p11e_http_problem(c->resp, 404, "unknown-user", "Unknown user",
		    "no such user in this contract");
		return P11E_OK;
	}
	if (err != P11E_OK)
		return err;
	snprintf(target, 64, "%s/%s", t->contract_id, t->user_id);
	*found = true;
	return P11E_OK;
}

/* ---- the grid challenge ---- */

/* The contract's pending challenge into cells[2]; P11E_ERR_NOT_FOUND: none */
static enum p11e_err
challenge_get(struct acall *c, int cells[2])
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	const char *s;
	char *end;
	long v0, v1;
	int rc;

	if ((err = p11e_db_prepare(c->db,
		 "SELECT grid_challenge FROM contracts WHERE id = ?", &st)) !=
	    P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, c->u.contract);
	rc = sqlite3_step(st);
	err = P11E_ERR_NOT_FOUND;
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		s = (const char *)sqlite3_column_text(st, 0);
		v0 = strtol(s, &end, 10);
		if (*end == ',') {
			v1 = strtol(end + 1, &end, 10);
			if (*end == '\0' && v0 >= 0 && v0 < P11E_CARD_CELLS &&
			    v1 >= 0 && v1 < P11E_CARD_CELLS && v0 != v1) {
				cells[0] = (int)v0;
				cells[1] = (int)v1;
				err = P11E_OK;
			}
		}
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		err = p11e_db_error(c->db, rc, "grid challenge");
	}
	sqlite3_finalize(st);
	return err;
}

/* A uniform cell index from the CSPRNG. */
static enum p11e_err
random_cell(int *out)
{
	unsigned char b;

	do {
		if (RAND_bytes(&b, 1) != 1)
			return P11E_ERR_CRYPTO;
	} while (b >= 256 - 256 % P11E_CARD_CELLS);
	*out = b % P11E_CARD_CELLS;
	return P11E_OK;
}

/*
 * Inside the transaction: the pending challenge, or a new one drawn now
 * and stored (R12: never re-rolled by a new session).
 */
static enum p11e_err
challenge_take(struct acall *c, int cells[2])
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	char text[16];

	if ((err = challenge_get(c, cells)) != P11E_ERR_NOT_FOUND)
		return err;
	if ((err = random_cell(&cells[0])) != P11E_OK)
		return err;
	do {
		if ((err = random_cell(&cells[1])) != P11E_OK)
			return err;
	} while (cells[1] == cells[0]);
	snprintf(text, sizeof(text), "%d,%d", cells[0], cells[1]);
	if ((err = p11e_db_prepare(c->db,
		 "UPDATE contracts SET grid_challenge = ? WHERE id = ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, c->u.contract);
	return p11e_db_step_done(c->db, st);
}

/* The answers against the sealed card: *ok set. */
static enum p11e_err
grid_check(struct acall *c, const int cells[2], json_t *answers, bool *ok)
{
	struct p11e_secret *card = NULL;
	sqlite3_stmt *st = NULL;
	char aad[32], v[3];
	enum p11e_err err;
	bool good = true;
	json_t *ans;
	size_t i;
	int rc;

	*ok = false;
	if ((err = p11e_db_prepare(c->db,
		 "SELECT card FROM contracts WHERE id = ?", &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, c->u.contract);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		err = rc == SQLITE_DONE ? P11E_ERR_NOT_FOUND
					: p11e_db_error(c->db, rc, "card");
		sqlite3_finalize(st);
		return err;
	}
	snprintf(aad, sizeof(aad), "card:%s", c->u.contract_id);
	err = p11e_unseal(c->a->ra->data_key, aad, sqlite3_column_blob(st, 0),
	    (size_t)sqlite3_column_bytes(st, 0), &card);
	sqlite3_finalize(st);
	if (err != P11E_OK)
		return err;
	for (i = 0; i < 2; i++) {
		ans = json_array_get(answers, i);
		if ((err = p11e_card_value(card, (size_t)cells[i], v)) !=
		    P11E_OK)
			break;
		/* both compared, in constant time */
		if (json_string_length(ans) != 2 ||
		    CRYPTO_memcmp(json_string_value(ans), v, 2) != 0)
			good = false;
	}
	p11e_wipe(v, sizeof(v));
	p11e_secret_free(card);
	*ok = err == P11E_OK && good;
	return err;
}

/* ---- sessions and tokens ---- */

static enum p11e_err
session_insert(struct acall *c, const char *kind, const unsigned char md[32],
    time_t expires)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;

	if ((err = p11e_db_prepare(c->db,
		 "INSERT INTO admin_sessions (hash, user, kind, cert_sha256,"
		 " created, last_used, expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_blob(st, 1, md, 32, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, c->u.id);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, c->cert_md, 32, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)c->now);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)c->now);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)expires);
	return p11e_db_step_done(c->db, st);
}

/*
 * The time the grid step of a login may take: its own, so that a short
 * admin-idle-timeout never cuts the administrator off while reading the
 * customer card.
 */
#define GRID_SECONDS 300

/* How long a session of kind may sit idle. */
static uint64_t
session_idle(const struct acall *c, const char *kind)
{
	return strcmp(kind, "grid") == 0 ? GRID_SECONDS : c->a->idle;
}

/*
 * The live session of kind with SHA-256 md, of this administrator and
 * certificate: its rowid, or P11E_ERR_NOT_FOUND (unknown, ended, idle
 * too long, past its end, another certificate's).
 */
static enum p11e_err
session_find(
    struct acall *c, const char *kind, const unsigned char md[32], int64_t *id)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	if ((err = p11e_db_prepare(c->db,
		 "SELECT id FROM admin_sessions WHERE hash = ? AND kind = ?"
		 " AND user = ? AND cert_sha256 = ? AND ended IS NULL"
		 " AND expires > ? AND last_used + ? >= ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_blob(st, 1, md, 32, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, c->u.id);
	sqlite3_bind_blob(st, 4, c->cert_md, 32, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)c->now);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)session_idle(c, kind));
	sqlite3_bind_int64(st, 7, (sqlite3_int64)c->now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	else
		err = rc == SQLITE_DONE ? P11E_ERR_NOT_FOUND
					: p11e_db_error(c->db, rc, "session");
	sqlite3_finalize(st);
	return err;
}

static void
invalid_token(struct acall *c, const char *detail)
{
	p11e_http_problem(c->resp, 401, "invalid-token",
	    "Invalid or expired admin session", detail);
	snprintf(c->resp->www_authenticate, sizeof(c->resp->www_authenticate),
	    "Bearer realm=\"p11enroll\"");
}

/*
 * The certificate, then the Bearer admin token bound to it; the token's
 * idle time restarts.  False when the request was answered.
 */
static bool
admin_token(struct acall *c, const char *action)
{
	const char *h = c->req->authorization;
	unsigned char md[32];
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	size_t len;

	if (!admin_cert(c))
		return false;
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
		invalid_token(c, "send Authorization: Bearer <admin token>");
		return false;
	}
	h += 7;
	len = strlen(h);
	if (len < 1 || len > 128) {
		invalid_token(c, NULL);
		return false;
	}
	p11e_hash_sha256(h, len, md);
	err = session_find(c, "token", md, &c->session);
	if (err == P11E_ERR_NOT_FOUND) {
		if (audit(c, c->actor, action, c->actor + 6, "refused",
			"invalid or expired admin token") != P11E_OK) {
			unavailable(c);
			return false;
		}
		invalid_token(c, "log in again");
		return false;
	}
	if (err != P11E_OK) {
		unavailable(c);
		return false;
	}
	if (locked_refusal(c, action))
		return false;
	if ((err = p11e_db_prepare(c->db,
		 "UPDATE admin_sessions SET last_used = ? WHERE id = ?",
		 &st)) != P11E_OK) {
		unavailable(c);
		return false;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)c->now);
	sqlite3_bind_int64(st, 2, c->session);
	if (p11e_db_step_done(c->db, st) != P11E_OK) {
		unavailable(c);
		return false;
	}
	return true;
}

/* ---- POST /api/v1/admin/session {pin} ---- */

static void
session_open(struct acall *c)
{
	static const char *const keys[] = { "pin", NULL };
	struct p11e_secret *pin = NULL, *sid = NULL;
	unsigned char md[32];
	char exp_s[32];
	enum p11e_err err = P11E_OK;
	int cells[2];
	bool ok, go;
	json_t *j;

	if ((j = body_object(c)) == NULL)
		return;
	if (!keys_only(j, keys) ||
	    (pin = secret_member(j, "pin", PIN_MAX)) == NULL) {
		json_decref(j);
		bad_request(c, "expected {\"pin\": \"...\"}");
		return;
	}
	json_decref(j);
	if (!admin_cert(c) || locked_refusal(c, "admin-session"))
		goto out;
	if ((err = pin_verify(c, false, pin, &ok)) != P11E_OK ||
	    (err = pin_decided(c, false, ok, "admin-session", c->actor + 6,
		 "contract PIN wrong", &go)) != P11E_OK ||
	    !go)
		goto out;
	if ((err = challenge_take(c, cells)) != P11E_OK ||
	    (err = p11e_hash_token_new(&sid, md)) != P11E_OK ||
	    (err = session_insert(c, "grid", md, c->now + GRID_SECONDS)) !=
		P11E_OK ||
	    (err = audit(c, c->actor, "admin-session", c->actor + 6, "ok",
		 "grid challenge presented")) != P11E_OK ||
	    (err = p11e_db_commit(c->db)) != P11E_OK)
		goto out;
	p11e_ra_iso_time(c->now + GRID_SECONDS, exp_s, sizeof(exp_s));
	j = json_pack("{s:s%, s:[s,s], s:s}", "session", p11e_secret_str(sid),
	    p11e_secret_len(sid), "challenge",
	    p11e_card_label((size_t)cells[0]),
	    p11e_card_label((size_t)cells[1]), "expires", exp_s);
	p11e_http_json(c->resp, j);
	json_decref(j);
out:
	if (err != P11E_OK)
		unavailable(c);
	p11e_secret_free(pin);
	p11e_secret_free(sid);
}

/* ---- POST /api/v1/admin/session/grid {session, answers} ---- */

static void
session_grid(struct acall *c)
{
	static const char *const keys[] = { "session", "answers", NULL };
	struct p11e_secret *tok = NULL;
	unsigned char md[32];
	sqlite3_stmt *st = NULL;
	char exp_s[32];
	enum p11e_err err = P11E_OK;
	json_t *j, *answers, *sv;
	int64_t sess;
	int cells[2];
	bool ok, locked;

	if ((j = body_object(c)) == NULL)
		return;
	sv = json_object_get(j, "session");
	answers = json_object_get(j, "answers");
	if (!keys_only(j, keys) || !json_is_string(sv) ||
	    json_string_length(sv) < 1 || json_string_length(sv) > 128 ||
	    !json_is_array(answers) || json_array_size(answers) != 2 ||
	    !json_is_string(json_array_get(answers, 0)) ||
	    !json_is_string(json_array_get(answers, 1)) ||
	    json_string_length(json_array_get(answers, 0)) > ANSWER_MAX ||
	    json_string_length(json_array_get(answers, 1)) > ANSWER_MAX) {
		json_decref(j);
		bad_request(c,
		    "expected {\"session\": \"...\", \"answers\": "
		    "[\"NN\", \"NN\"]}");
		return;
	}
	p11e_hash_sha256(json_string_value(sv), json_string_length(sv), md);
	if (!admin_cert(c))
		goto out;
	if ((err = begin_fresh(c)) != P11E_OK)
		goto out;
	if (locked_refusal(c, "admin-grid"))
		goto commit;
	if ((err = session_find(c, "grid", md, &sess)) == P11E_ERR_NOT_FOUND) {
		err = P11E_OK;
		if ((err = audit(c, c->actor, "admin-grid", c->actor + 6,
			 "refused", "unknown or expired session")) != P11E_OK)
			goto out;
		invalid_token(c,
		    "unknown or expired session; send the "
		    "contract PIN again");
		goto commit;
	}
	if (err != P11E_OK)
		goto out;
	if ((err = challenge_get(c, cells)) == P11E_ERR_NOT_FOUND) {
		err = P11E_OK;
		invalid_token(c,
		    "no pending challenge; send the contract "
		    "PIN again");
		goto commit;
	}
	if (err != P11E_OK ||
	    (err = grid_check(c, cells, answers, &ok)) != P11E_OK)
		goto out;
	if (!ok) {
		if ((err = count_failure(c, true, "admin-grid", c->actor + 6,
			 "grid answer wrong", &locked)) != P11E_OK)
			goto out;
		if (locked)
			p11e_http_problem(c->resp, 403, "account-locked",
			    "Account locked",
			    "too many wrong grid answers; ask the bank to "
			    "unlock it");
		else
			p11e_http_problem(c->resp, 401, "grid-mismatch",
			    "Wrong customer card numbers",
			    "the same two cells are asked again");
		goto out;
	}
	/* answered: the challenge is done, the pending session ends */
	if ((err = reset_failures(c, true)) != P11E_OK ||
	    (err = p11e_db_prepare(c->db,
		 "UPDATE contracts SET grid_challenge = NULL WHERE id = ?",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, c->u.contract);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
	    (err = p11e_db_prepare(c->db,
		 "UPDATE admin_sessions SET ended = ? WHERE id = ?", &st)) !=
		P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)c->now);
	sqlite3_bind_int64(st, 2, sess);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
	    (err = p11e_hash_token_new(&tok, md)) != P11E_OK ||
	    (err = session_insert(
		 c, "token", md, c->now + (time_t)c->a->lifetime)) != P11E_OK ||
	    (err = audit(c, c->actor, "admin-login", c->actor + 6, "ok",
		 NULL)) != P11E_OK ||
	    (err = p11e_db_commit(c->db)) != P11E_OK)
		goto out;
	p11e_ra_iso_time(c->now + (time_t)c->a->lifetime, exp_s, sizeof(exp_s));
	json_decref(j);
	j = json_pack("{s:s%, s:I, s:s}", "token", p11e_secret_str(tok),
	    p11e_secret_len(tok), "idle_timeout", (json_int_t)c->a->idle,
	    "expires", exp_s);
	p11e_http_json(c->resp, j);
	goto out;
commit:
	if (err == P11E_OK)
		err = p11e_db_commit(c->db);
out:
	if (err != P11E_OK)
		unavailable(c);
	json_decref(j);
	p11e_secret_free(tok);
}

/* ---- DELETE /api/v1/admin/session ---- */

static void
session_close(struct acall *c)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;

	if (!admin_token(c, "admin-logout"))
		return;
	if ((err = p11e_db_begin(c->db)) != P11E_OK ||
	    (err = p11e_db_prepare(c->db,
		 "UPDATE admin_sessions SET ended = ? WHERE id = ?", &st)) !=
		P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)c->now);
	sqlite3_bind_int64(st, 2, c->session);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
	    (err = audit(c, c->actor, "admin-logout", c->actor + 6, "ok",
		 NULL)) != P11E_OK ||
	    (err = p11e_db_commit(c->db)) != P11E_OK)
		goto out;
	c->resp->status = 204;
	p11e_buf_reset(&c->resp->body);
	c->resp->content_type[0] = '\0';
out:
	if (err != P11E_OK)
		unavailable(c);
}

/* ---- GET /api/v1/admin/users ---- */

static json_t *
col_text(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL
	    ? json_null()
	    : json_string((const char *)sqlite3_column_text(st, i));
}

static json_t *
col_time(sqlite3_stmt *st, int i)
{
	char buf[32];

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	p11e_ra_iso_time((time_t)sqlite3_column_int64(st, i), buf, sizeof(buf));
	return json_string(buf);
}

/* A row of a listing as a new JSON object (NULL: out of memory). */
typedef json_t *(*list_row)(struct acall *c, sqlite3_stmt *st);

/*
 * Answers a listing of the administrator's contract: the rows of st
 * (bound; the caller finalises it), each made by row, as
 * {"contract_id": ..., key: [...]}, audited as action; what names the
 * query in the log.
 */
static enum p11e_err
list_answer(struct acall *c, sqlite3_stmt *st, list_row row, const char *what,
    const char *action, const char *key)
{
	enum p11e_err err = P11E_OK;
	json_t *rows, *r, *j;
	int rc;

	if ((rows = json_array()) == NULL)
		return P11E_ERR_NOMEM;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = row(c, st);
		if (r == NULL || json_array_append_new(rows, r) != 0) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		err = p11e_db_error(c->db, rc, what);
		goto out;
	}
	if ((err = audit(c, c->actor, action, c->actor + 6, "ok", NULL)) !=
	    P11E_OK)
		goto out;
	j = json_pack("{s:s, s:O}", "contract_id", c->u.contract_id, key, rows);
	p11e_http_json(c->resp, j);
	json_decref(j);
out:
	json_decref(rows);
	return err;
}

/* A row of GET users: the user, its last certificate and open window. */
static json_t *
user_row(struct acall *c, sqlite3_stmt *st)
{
	json_t *cert, *win;
	const char *status;

	cert = json_null();
	if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
		status = (const char *)sqlite3_column_text(st, 6);
		if (strcmp(status, "valid") == 0 &&
		    sqlite3_column_int64(st, 9) <= c->now)
			status = "expired";
		cert = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o}",
		    "issue_no", (json_int_t)sqlite3_column_int64(st, 5),
		    "status", status, "registered", col_time(st, 7), "serial",
		    col_text(st, 8), "not_after", col_time(st, 9),
		    "issued_from", col_text(st, 10), "key_type",
		    col_text(st, 11));
	}
	win = json_null();
	if (sqlite3_column_type(st, 12) != SQLITE_NULL)
		win = json_pack("{s:o, s:o}", "closes", col_time(st, 12),
		    "reason", col_text(st, 13));
	return json_pack("{s:o, s:o, s:o, s:b, s:o, s:o, s:o}", "user_id",
	    col_text(st, 0), "name", col_text(st, 1), "role", col_text(st, 2),
	    "locked", sqlite3_column_int(st, 3) != 0, "created",
	    col_time(st, 4), "certificate", cert, "window", win);
}

static void
users_list(struct acall *c)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;

	if (strcmp(c->req->method, "GET") != 0) {
		p11e_http_method_not_allowed(c->resp, "GET, POST");
		return;
	}
	if (!admin_token(c, "admin-users"))
		return;
	if ((err = p11e_db_prepare(c->db,
		 "SELECT u.user_id, u.name, u.role, u.locked, u.created,"
		 " x.issue_no, x.status, x.created, x.serial, x.not_after,"
		 " x.issued_from, x.key_type, w.closes, w.reason"
		 " FROM users u"
		 " LEFT JOIN certificates x ON x.user = u.id AND x.issue_no ="
		 "  (SELECT max(issue_no) FROM certificates WHERE user = u.id)"
		 " LEFT JOIN windows w ON w.user = u.id AND w.state = 'open'"
		 "  AND w.closes > ?"
		 " WHERE u.contract = ? ORDER BY u.user_id",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)c->now);
	sqlite3_bind_int64(st, 2, c->u.contract);
	err = list_answer(c, st, user_row, "users", "admin-users", "users");
out:
	sqlite3_finalize(st);
	if (err != P11E_OK)
		unavailable(c);
}

/* ---- GET /api/v1/admin/audit ---- */

/* A row of GET audit. */
static json_t *
audit_row(struct acall *c, sqlite3_stmt *st)
{
	(void)c;
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "at",
	    col_time(st, 0), "actor", col_text(st, 1), "action",
	    col_text(st, 2), "target", col_text(st, 3), "result",
	    col_text(st, 4), "peer", col_text(st, 5), "detail",
	    col_text(st, 6));
}

static void
audit_list(struct acall *c)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	char prefix[16];

	if (strcmp(c->req->method, "GET") != 0) {
		p11e_http_method_not_allowed(c->resp, "GET");
		return;
	}
	if (!admin_token(c, "admin-audit"))
		return;
	/* the contract's records: its users as target or as admin actor */
	snprintf(prefix, sizeof(prefix), "%s/", c->u.contract_id);
	if ((err = p11e_db_prepare(c->db,
		 "SELECT at, actor, action, target, result, peer, detail"
		 " FROM audit WHERE target = ? OR substr(target, 1, 12) = ?"
		 " OR substr(actor, 1, 18) = 'admin:' || ?"
		 " ORDER BY id DESC LIMIT ?",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_text(st, 1, c->u.contract_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, prefix, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, AUDIT_ROWS);
	err = list_answer(c, st, audit_row, "audit", "admin-audit", "audit");
out:
	sqlite3_finalize(st);
	if (err != P11E_OK)
		unavailable(c);
}

/* ---- POST /api/v1/admin/users/{user}/certificate ---- */

/*
 * Revokes the user's certificates still in use (valid, or superseded
 * but not expired: a superseded one still logs in until its end) with
 * reason; their serials are appended to list.
 */
static enum p11e_err
revoke_all(struct acall *c, int64_t user, int reason, json_t *list)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	if ((err = p11e_db_prepare(c->db,
		 "SELECT serial FROM certificates WHERE user = ?"
		 " AND status IN ('valid', 'superseded') AND not_after > ?"
		 " ORDER BY issue_no",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, user);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)c->now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(list,
		    json_string((const char *)sqlite3_column_text(st, 0)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return p11e_db_error(c->db, rc, "certificates");
	if ((err = p11e_db_prepare(c->db,
		 "UPDATE certificates SET status = 'revoked', revoked_at = ?,"
		 " reason = ? WHERE user = ? AND status IN ('valid',"
		 " 'superseded') AND not_after > ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)c->now);
	sqlite3_bind_int(st, 2, reason);
	sqlite3_bind_int64(st, 3, user);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)c->now);
	return p11e_db_step_done(c->db, st);
}

/* Closes the user's open windows (also the lapsed ones): *closed set. */
static enum p11e_err
windows_close(struct acall *c, int64_t user, bool *closed)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int64_t window;
	time_t closes;

	err = p11e_db_window_open_get(c->db, user, c->now, &window, &closes);
	if (err != P11E_OK && err != P11E_ERR_NOT_FOUND)
		return err;
	*closed = err == P11E_OK;
	if ((err = p11e_db_prepare(c->db,
		 "UPDATE windows SET state = 'closed' WHERE user = ?"
		 " AND state = 'open'",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, user);
	return p11e_db_step_done(c->db, st);
}

enum action { ACT_REISSUE, ACT_REVOKE, ACT_KEEP };

static void
certificate_action(struct acall *c, const char *user_id)
{
	static const char *const keys[] = { "action", "reason",
		"confirmation_pin", NULL };
	static const char *const actions[] = { "reissue", "revoke", "keep" };
	struct p11e_secret *cpin = NULL;
	struct p11e_db_user t;
	sqlite3_stmt *st = NULL;
	enum p11e_err err = P11E_OK;
	char target[64], detail[160], why[64], closes_s[32];
	const char *reason = NULL, *act_s;
	json_t *j, *v, *revoked = NULL, *inv;
	enum action act;
	bool ok, go, found, closed = false;
	int64_t window;
	time_t closes;
	int crl_reason;

	if ((j = body_object(c)) == NULL)
		return;
	act_s = json_string_value(json_object_get(j, "action"));
	v = json_object_get(j, "reason");
	if (!keys_only(j, keys) || act_s == NULL ||
	    (v != NULL && !json_is_string(v)))
		goto bad;
	for (act = ACT_REISSUE; act <= ACT_KEEP; act++)
		if (strcmp(act_s, actions[act]) == 0)
			break;
	if (act > ACT_KEEP)
		goto bad;
	act_s = actions[act];
	reason = v != NULL	 ? json_string_value(v)
	    : act == ACT_REISSUE ? "expired"
				 : NULL;
	if (reason != NULL) {
		if (strcmp(reason, "expired") == 0)
			reason = "expired";
		else if (strcmp(reason, "lost") == 0)
			reason = "lost";
		else if (strcmp(reason, "compromised") == 0)
			reason = "compromised";
		else
			goto bad;
	}
	if (act == ACT_KEEP && reason != NULL)
		goto bad;
	if ((cpin = secret_member(j, "confirmation_pin", PIN_MAX)) == NULL)
		goto bad;
	json_decref(j);
	j = NULL;
	if (!admin_token(c, "admin-certificate") ||
	    (err = target_user(c, user_id, &t, target, &found)) != P11E_OK ||
	    !found)
		goto out;
	snprintf(detail, sizeof(detail), "%s%s%s", act_s,
	    reason != NULL ? " reason=" : "", reason != NULL ? reason : "");
	snprintf(
	    why, sizeof(why), "%s: confirmation PIN wrong, not done", act_s);
	if ((err = pin_verify(c, true, cpin, &ok)) != P11E_OK ||
	    (err = pin_decided(c, true, ok, "admin-certificate", target, why,
		 &go)) != P11E_OK ||
	    !go)
		goto out;
	if ((revoked = json_array()) == NULL) {
		if (err == P11E_OK)
			err = P11E_ERR_NOMEM;
		goto out;
	}
	crl_reason = reason != NULL && strcmp(reason, "expired") != 0
	    ? 1 /* keyCompromise */
	    : 0; /* unspecified */
	switch (act) {
	case ACT_REISSUE:
		err = p11e_db_window_open_get(
		    c->db, t.id, c->now, &window, &closes);
		if (err == P11E_OK) {
			p11e_db_rollback(c->db);
			if ((err = audit(c, c->actor, "admin-certificate",
				 target, "refused",
				 "reissue: a window is open already")) !=
			    P11E_OK)
				goto out;
			p11e_http_problem(c->resp, 409, "window-open",
			    "An acquisition window is open already",
			    "keep closes it; then reissue again");
			goto out;
		}
		if (err != P11E_ERR_NOT_FOUND)
			goto out;
		closes = c->now + (time_t)c->a->policy->window;
		/* a lapsed window still 'open' would hold the index */
		if ((err = windows_close(c, t.id, &closed)) != P11E_OK ||
		    (crl_reason == 1 &&
			(err = revoke_all(c, t.id, crl_reason, revoked)) !=
			    P11E_OK) ||
		    (err = p11e_db_prepare(c->db,
			 "INSERT INTO windows (user, opened, closes, reason,"
			 " opened_by) VALUES (?, ?, ?, ?, ?)",
			 &st)) != P11E_OK)
			goto out;
		sqlite3_bind_int64(st, 1, t.id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)c->now);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)closes);
		sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, c->actor, -1, SQLITE_STATIC);
		if ((err = p11e_db_step_done(c->db, st)) != P11E_OK)
			goto out;
		break;
	case ACT_REVOKE:
		/* no enrollment after a revoke: its window closes too */
		if ((err = revoke_all(c, t.id, crl_reason, revoked)) !=
			P11E_OK ||
		    (err = windows_close(c, t.id, &closed)) != P11E_OK)
			goto out;
		break;
	case ACT_KEEP:
		if ((err = windows_close(c, t.id, &closed)) != P11E_OK)
			goto out;
		break;
	}
	if (json_array_size(revoked) > 0) {
		size_t n = strlen(detail);

		snprintf(detail + n, sizeof(detail) - n, " revoked %zu",
		    json_array_size(revoked));
	}
	if (closed) {
		size_t n = strlen(detail);

		snprintf(detail + n, sizeof(detail) - n, " window closed");
	}
	if ((err = audit(c, c->actor, "admin-certificate", target, "ok",
		 detail)) != P11E_OK ||
	    (err = p11e_db_commit(c->db)) != P11E_OK)
		goto out;
	j = json_pack("{s:s, s:s, s:s?, s:O, s:b}", "action", act_s, "user_id",
	    t.user_id, "reason", reason, "revoked", revoked, "window_closed",
	    closed);
	if (j != NULL && act == ACT_REISSUE) {
		p11e_ra_iso_time(closes, closes_s, sizeof(closes_s));
		inv = p11e_ra_invitation(c->a->ra, c->a->server_pin,
		    t.contract_id, t.user_id, t.admin, closes_s);
		json_object_set_new(j, "window_closes", json_string(closes_s));
		json_object_set_new(j, "invitation", inv);
	}
	p11e_http_json(c->resp, j);
	goto out;
bad:
	json_decref(j);
	j = NULL;
	bad_request(c,
	    "expected {\"action\": \"reissue|revoke|keep\", \"reason\": "
	    "\"expired|lost|compromised\", \"confirmation_pin\": \"...\"}");
out:
	if (err != P11E_OK)
		undo_unavailable(c);
	json_decref(j);
	json_decref(revoked);
	p11e_secret_free(cpin);
}

/* ---- POST /api/v1/admin/users: registration (利用者情報登録) ---- */

#define NAME_MAX_LEN 200 /* as p11enroll-ra user add */
#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024

static bool
valid_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > NAME_MAX_LEN || strlen(s) != n)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true; /* jansson checked UTF-8 */
}

/*
 * A new user (role user: administrators come from the bank) with the
 * initial password the administrator sets, and its first acquisition
 * window; the answer is the invitation.
 */
static void
user_add(struct acall *c)
{
	static const char *const keys[] = { "user_id", "name", "password",
		"confirmation_pin", NULL };
	struct p11e_secret *cpin = NULL, *pw = NULL;
	struct p11e_db_user t;
	char hash[P11E_HASH_ENCODED_MAX], target[64], closes_s[32];
	char user_id[31], name[NAME_MAX_LEN + 1];
	enum p11e_err err = P11E_OK;
	json_t *j, *inv = NULL;
	bool ok, go;
	int64_t row;
	time_t closes;

	hash[0] = '\0';
	if ((j = body_object(c)) == NULL)
		return;
	if (!keys_only(j, keys) ||
	    !json_is_string(json_object_get(j, "user_id")) ||
	    !p11e_db_valid_user_id(
		json_string_value(json_object_get(j, "user_id"))) ||
	    !json_is_string(json_object_get(j, "name")) ||
	    !valid_name(json_string_value(json_object_get(j, "name")),
		json_string_length(json_object_get(j, "name"))) ||
	    (pw = secret_member(j, "password", PASSWORD_MAX)) == NULL ||
	    p11e_secret_len(pw) < PASSWORD_MIN ||
	    (cpin = secret_member(j, "confirmation_pin", PIN_MAX)) == NULL) {
		json_decref(j);
		bad_request(c,
		    "expected {\"user_id\": 1-30 letters and digits, "
		    "\"name\", \"password\": 8 to 1024 bytes, "
		    "\"confirmation_pin\"}");
		goto out;
	}
	snprintf(user_id, sizeof(user_id), "%s",
	    json_string_value(json_object_get(j, "user_id")));
	snprintf(name, sizeof(name), "%s",
	    json_string_value(json_object_get(j, "name")));
	json_decref(j);
	j = NULL;
	if (!admin_token(c, "admin-user-add"))
		goto out;
	snprintf(target, sizeof(target), "%s/%s", c->u.contract_id, user_id);
	if ((err = pin_verify(c, true, cpin, &ok)) != P11E_OK ||
	    (ok && (err = p11e_hash_secret(pw, NULL, hash)) != P11E_OK) ||
	    (err = pin_decided(c, true, ok, "admin-user-add", target,
		 "user add: confirmation PIN wrong, not done", &go)) !=
		P11E_OK ||
	    !go)
		goto out;
	err = p11e_db_user_find(c->db, c->u.contract_id, user_id, &t);
	if (err == P11E_OK) {
		p11e_db_rollback(c->db);
		err = P11E_OK;
		p11e_http_problem(c->resp, 409, "user-exists",
		    "User exists already", "choose another user ID");
		goto out;
	}
	closes = c->now + (time_t)c->a->policy->window;
	if (err != P11E_ERR_NOT_FOUND ||
	    (err = p11e_db_user_register(c->db, c->u.contract, user_id, name,
		 false, hash, c->now, closes, c->actor, &row)) != P11E_OK)
		goto out;
	if ((err = audit(c, c->actor, "admin-user-add", target, "ok",
		 "role=user")) != P11E_OK ||
	    (err = p11e_db_commit(c->db)) != P11E_OK)
		goto out;
	p11e_ra_iso_time(closes, closes_s, sizeof(closes_s));
	inv = p11e_ra_invitation(c->a->ra, c->a->server_pin, c->u.contract_id,
	    user_id, false, closes_s);
	j = json_pack("{s:s, s:s, s:o}", "user_id", user_id, "window_closes",
	    closes_s, "invitation", inv);
	p11e_http_json(c->resp, j);
out:
	if (err != P11E_OK)
		undo_unavailable(c);
	p11e_wipe(hash, sizeof(hash));
	json_decref(j);
	p11e_secret_free(cpin);
	p11e_secret_free(pw);
}

/* ---- the other actions on a user: unlock, otp ---- */

/*
 * The start of an action on a user of the administrator's contract
 * whose body is {"confirmation_pin"} only: the admin token, the user
 * into *t and "CONTRACT/USER" into target (64 bytes; 404 unknown-user
 * outside the contract), then the confirmation PIN (a wrong one is
 * counted and audited as action, with why, and nothing else is done).
 * True with a transaction open and the administrator's failures reset;
 * false when the request was answered.
 */
static bool
user_confirmed(struct acall *c, const char *user_id, const char *action,
    const char *why, struct p11e_db_user *t, char target[64])
{
	static const char *const keys[] = { "confirmation_pin", NULL };
	struct p11e_secret *cpin = NULL;
	enum p11e_err err = P11E_OK;
	bool ok = false;
	json_t *j;

	if ((j = body_object(c)) == NULL)
		return false;
	if (!keys_only(j, keys) ||
	    (cpin = secret_member(j, "confirmation_pin", PIN_MAX)) == NULL) {
		json_decref(j);
		bad_request(c, "expected {\"confirmation_pin\": \"...\"}");
		return false;
	}
	json_decref(j);
	if (!admin_token(c, action) ||
	    (err = target_user(c, user_id, t, target, &ok)) != P11E_OK || !ok)
		goto out;
	if ((err = pin_verify(c, true, cpin, &ok)) == P11E_OK)
		err = pin_decided(c, true, ok, action, target, why, &ok);
out:
	if (err != P11E_OK) {
		ok = false;
		undo_unavailable(c);
	}
	p11e_secret_free(cpin);
	return ok;
}

/*
 * POST /api/v1/admin/users/{user}/unlock: clears a user's failure
 * counters and lock (the seed's ロック解除), with the confirmation PIN,
 * as `p11enroll-ra unlock` does in the back office.
 */
static void
unlock_action(struct acall *c, const char *user_id)
{
	struct p11e_db_user t;
	sqlite3_stmt *st = NULL;
	enum p11e_err err = P11E_OK;
	char target[64], detail[96];
	json_t *j = NULL;

	if (!user_confirmed(c, user_id, "admin-unlock",
		"unlock: confirmation PIN wrong, not done", &t, target))
		return;
	if ((err = p11e_db_user_get(c->db, t.id, &t)) != P11E_OK ||
	    (err = p11e_db_prepare(c->db,
		 "UPDATE users SET failures = 0, grid_failures = 0,"
		 " locked = 0 WHERE id = ?",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, t.id);
	snprintf(detail, sizeof(detail), "failures=%d grid=%d locked=%d",
	    t.failures, t.grid_failures, t.locked ? 1 : 0);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
	    (err = audit(c, c->actor, "admin-unlock", target, "ok", detail)) !=
		P11E_OK ||
	    (err = p11e_db_commit(c->db)) != P11E_OK)
		goto out;
	j = json_pack("{s:s, s:b, s:i, s:i}", "user_id", t.user_id,
	    "was_locked", t.locked, "failures", t.failures, "grid_failures",
	    t.grid_failures);
	p11e_http_json(c->resp, j);
out:
	if (err != P11E_OK)
		undo_unavailable(c);
	json_decref(j);
}

/*
 * POST /api/v1/admin/users/{user}/otp: a new TOTP token for a user of
 * the contract (the seed's ワンタイムパスワード登録), with the
 * confirmation PIN, as `p11enroll-ra otp assign` does in the back office:
 * the user's earlier token stops working at once.  The otpauth:// URI is
 * in this answer only.
 */
static void
otp_action(struct acall *c, const char *user_id)
{
	struct p11e_totp_params params = p11e_totp_default_params;
	struct p11e_secret *secret = NULL, *uri = NULL;
	char target[64], detail[80], serial[P11E_TOTP_SERIAL_MAX];
	struct p11e_db_user t;
	enum p11e_err err = P11E_OK;
	json_t *j = NULL;

	if (!user_confirmed(c, user_id, "admin-otp-assign",
		"otp assign: confirmation PIN wrong, not done", &t, target))
		return;
	/* the URI first: once committed, the answer is the only copy */
	params.step = c->a->policy->otp_step;
	if ((err = p11e_totp_soft_new(&secret, serial)) != P11E_OK ||
	    (err = p11e_totp_user_uri(
		 secret, &params, t.contract_id, t.user_id, &uri)) != P11E_OK)
		goto out;
	snprintf(detail, sizeof(detail), "serial=%s", serial);
	if ((err = p11e_totp_assign(c->db, c->a->ra->data_key, t.id, serial,
		 secret, &params, c->now)) != P11E_OK ||
	    (err = audit(c, c->actor, "admin-otp-assign", target, "ok",
		 detail)) != P11E_OK ||
	    (err = p11e_db_commit(c->db)) != P11E_OK)
		goto out;
	j = json_pack("{s:s, s:s, s:s%, s:i, s:i}", "user_id", t.user_id,
	    "serial", serial, "otpauth_uri", p11e_secret_str(uri),
	    p11e_secret_len(uri), "digits", (int)params.digits, "period",
	    (int)params.step);
	p11e_http_json(c->resp, j);
out:
	if (err != P11E_OK)
		undo_unavailable(c);
	json_decref(j);
	p11e_secret_free(secret);
	p11e_secret_free(uri);
}

/* ---- routing ---- */

bool
p11e_admin_path(const char *path)
{
	return strncmp(path, P11E_ADMIN_PREFIX, strlen(P11E_ADMIN_PREFIX)) == 0;
}

void
p11e_admin_handle(struct p11e_admin *a, const struct p11e_http_request *req,
    struct p11e_http_response *resp, time_t now)
{
	const char *rest = req->path + strlen(P11E_ADMIN_PREFIX);
	const char *slash;
	char user_id[64];
	struct acall c;

	memset(&c, 0, sizeof(c));
	c.a = a;
	c.req = req;
	c.resp = resp;
	c.now = now;
	if (strcmp(rest, "session") == 0) {
		if (strcmp(req->method, "DELETE") == 0)
			session_close(&c);
		else if (strcmp(req->method, "POST") == 0)
			session_open(&c);
		else
			p11e_http_method_not_allowed(c.resp, "POST, DELETE");
	} else if (strcmp(rest, "session/grid") == 0) {
		session_grid(&c);
	} else if (strcmp(rest, "users") == 0) {
		if (strcmp(req->method, "POST") == 0)
			user_add(&c);
		else
			users_list(&c);
	} else if (strcmp(rest, "audit") == 0) {
		audit_list(&c);
	} else if (strncmp(rest, "users/", 6) == 0 &&
	    (slash = strchr(rest + 6, '/')) != NULL &&
	    (strcmp(slash, "/certificate") == 0 ||
		strcmp(slash, "/unlock") == 0 || strcmp(slash, "/otp") == 0) &&
	    (size_t)(slash - (rest + 6)) < sizeof(user_id)) {
		memcpy(user_id, rest + 6, (size_t)(slash - (rest + 6)));
		user_id[slash - (rest + 6)] = '\0';
		if (strcmp(slash, "/unlock") == 0)
			unlock_action(&c, user_id);
		else if (strcmp(slash, "/otp") == 0)
			otp_action(&c, user_id);
		else
			certificate_action(&c, user_id);
	} else {
		p11e_http_problem(c.resp, 404, "not-found", "Not found", NULL);
	}
	p11e_db_pool_give(a->pool, c.db);
}

/* ---- start and stop ---- */

enum p11e_err
p11e_admin_new(struct p11e_ra *ra, struct p11e_db_pool *pool, X509_STORE *store,
    struct p11e_admin **out)
{
	struct p11e_admin *a;
	enum p11e_err err = P11E_OK;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return P11E_ERR_NOMEM;
	a->ra = ra;
	a->policy = &ra->cfg.policy;
	a->store = store;
	a->pool = pool;
	a->idle = p11e_conf_get_u64(
	    ra->cfg.conf, "policy", "admin-idle-timeout", 15 * 60);
	a->lifetime = p11e_conf_get_u64(
	    ra->cfg.conf, "policy", "admin-lifetime", 12 * 3600);
	/* the server pin of the invitations a reissue hands out */
	if ((err = p11e_ra_server_pin(
		 ra, a->server_pin, sizeof(a->server_pin))) != P11E_OK) {
		p11e_error("admin API: cannot read the server pin of [server] "
			   "tls-cert");
		/* a missing or unreadable certificate is the configuration's */
		if (err == P11E_ERR_PARSE)
			err = P11E_ERR_CONFIG;
		p11e_admin_free(a);
		return err;
	}
	*out = a;
	return P11E_OK;
}

void
p11e_admin_free(struct p11e_admin *a)
{
	free(a);
}
