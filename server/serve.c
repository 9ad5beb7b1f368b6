/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/crashpoint.h"
#include "common/log.h"
#include "common/secret.h"
#include "server/admin.h"
#include "server/ca.h"
#include "server/db-pool.h"
#include "server/hash.h"
#include "server/http.h"
#include "server/ra.h"
#include "server/seal.h"
#include "server/totp.h"

/*
 * p11enroll-ra serve: EST (RFC 7030) under /.well-known/est/, the user
 * enrollment session, /api/v1/policy and /crl over server/http.c
 * (doc/protocol.md is the contract).
 *
 * Threads: the front end calls handle() from a pool of threads.  Each
 * call borrows a database connection from a small pool (SQLite
 * connections are not shared between threads), signs under ca_lock (the
 * CA object is not thread-safe), and takes the rate-limit tables'
 * mutexes for a few instructions.  Every decision that consumes
 * something (an OTP step, a window, a token) is made inside one
 * transaction — a SAVEPOINT in the batch of the writer connection (group
 * commit, txn_begin below) — and a reply goes out only after the COMMIT
 * that holds it.
 */

#define MAX_DBS 64
#define RL_SLOTS 512
#define FAIL_SLOTS 1024
#define PASSWORD_MAX 1024
#define OTP_MAX 32
#define EST "/.well-known/est/"
#define PKCS7_CERTS "application/pkcs7-mime; smime-type=certs-only"

/* A token bucket per source address (R06). */
struct rl_entry {
	char ip[48];
	double tokens;
	double t;
};

struct ratelimit {
	pthread_mutex_t lock;
	double rate; /* tokens per second */
	double burst;
	struct rl_entry e[RL_SLOTS];
};

/*
 * Consecutive login failures per (contract, user) name, whether the user
 * exists or not, for the progressive slow-down: the same delay for a
 * name that does not exist (R05).  The lock itself is the database's
 * per-user counter.
 */
struct fail_entry {
	unsigned char key[32];
	unsigned int n;
	double t;
};

struct server {
	struct p11e_ra *ra;
	const struct p11e_ra_policy *policy;
	char db_path[4096];
	struct p11e_db_pool *pool; /* also the admin API's */
	pthread_mutex_t ca_lock;
	struct p11e_ca *ca;
	X509_STORE *store;
	struct p11e_buf cacerts; /* base64 certs-only PKCS#7 */
	struct p11e_buf csrattrs; /* base64 CsrAttrs */
	struct ratelimit login_rl, redeliver_rl;
	pthread_mutex_t fail_lock;
	struct fail_entry fails[FAIL_SLOTS];
	atomic_uint hashing;
	unsigned int hash_workers;
	struct p11e_admin *admin; /* the admin API, server/admin.c */
	/*
	 * Group commit: every transaction of a request runs as a SAVEPOINT
	 * on one writer connection, inside the open BEGIN IMMEDIATE of the
	 * current batch; the last request in line COMMITs for all (one
	 * fsync), and each reply goes out only after the COMMIT that holds
	 * its transaction.  w_lock owns the writer connection; w_want counts
	 * the requests waiting for it.
	 */
	pthread_mutex_t w_lock;
	struct p11e_db *w_db;
	atomic_uint w_want;
	struct member *w_members; /* released savepoints, not committed */
	size_t w_n;
	bool w_issuing;
	pthread_mutex_t w_done_lock;
	pthread_cond_t w_done;
};

/* One request being answered. */
struct call {
	struct server *s;
	const struct p11e_http_request *req;
	struct p11e_http_response *resp;
	struct p11e_db *db;
	struct p11e_db *pool_db; /* c->db while it is the writer's */
	bool in_batch;
	bool issuing; /* the transaction records a certificate */
	time_t now;
};

/* A member of a group commit waiting for the COMMIT that holds it. */
struct member {
	struct member *next;
	enum p11e_err err;
	bool done;
};

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- rate limits ---- */

static void
rl_init(struct ratelimit *rl, unsigned int per_minute, unsigned int burst)
{
	memset(rl, 0, sizeof(*rl));
	pthread_mutex_init(&rl->lock, NULL);
	rl->rate = per_minute / 60.0;
	rl->burst = burst;
}

/* Takes a token for ip; false with the seconds to wait when none is left. */
static bool
rl_take(struct ratelimit *rl, const char *ip, unsigned int *retry_after)
{
	struct rl_entry *e = NULL, *oldest = &rl->e[0];
	double now = mono_now();
	bool ok;
	size_t i;

	pthread_mutex_lock(&rl->lock);
	for (i = 0; i < RL_SLOTS; i++) {
		if (strcmp(rl->e[i].ip, ip) == 0) {
			e = &rl->e[i];
			break;
		}
		if (rl->e[i].t < oldest->t)
			oldest = &rl->e[i];
	}
	if (e == NULL) {
		/* XXX: the least recently used address is forgotten: a
		 * flood of addresses resets others' buckets; the hash worker
		 * cap still bounds the cost. */
		e = oldest;
		snprintf(e->ip, sizeof(e->ip), "%s", ip);
		e->tokens = rl->burst;
		e->t = now;
	}
	e->tokens = fmin(rl->burst, e->tokens + (now - e->t) * rl->rate);
	e->t = now;
	ok = e->tokens >= 1.0;
	if (ok)
		e->tokens -= 1.0;
	else
		*retry_after = (unsigned int)ceil((1.0 - e->tokens) / rl->rate);
	pthread_mutex_unlock(&rl->lock);
	return ok;
}

static void
name_key(const char *contract_id, const char *user_id, unsigned char key[32])
{
	char buf[64];
	unsigned int len;

	snprintf(buf, sizeof(buf), "%s/%s", contract_id, user_id);
	EVP_Digest(buf, strlen(buf), key, &len, EVP_sha256(), NULL);
}

/*
 * Records a failure (fail) or a success for the name; returns the
 * number of consecutive failures now.
 */
static unsigned int
fail_note(struct server *s, const unsigned char key[32], bool fail)
{
	struct fail_entry *e = NULL, *oldest = &s->fails[0];
	unsigned int n;
	size_t i;

	pthread_mutex_lock(&s->fail_lock);
	for (i = 0; i < FAIL_SLOTS; i++) {
		if (memcmp(s->fails[i].key, key, 32) == 0) {
			e = &s->fails[i];
			break;
		}
		if (s->fails[i].t < oldest->t)
			oldest = &s->fails[i];
	}
	if (e == NULL) {
		e = oldest;
		memcpy(e->key, key, 32);
		e->n = 0;
	}
	e->t = mono_now();
	e->n = fail ? e->n + 1 : 0;
	n = e->n;
	pthread_mutex_unlock(&s->fail_lock);
	return n;
}

/* Progressive slow-down: 0, 0, 0.25, 0.5, 1, 2, 2... seconds. */
static void
fail_delay(unsigned int n)
{
	unsigned int ms;
	struct timespec ts;

	if (n < 2)
		return;
	ms = n - 2 >= 3 ? 2000 : 250u << (n - 2);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- group commit ---- */

#define BATCH_MAX 256

/* Under w_lock: tells the batch's members their result. */
static void
batch_notify(struct server *s, enum p11e_err err)
{
	struct member *m;

	pthread_mutex_lock(&s->w_done_lock);
	for (m = s->w_members; m != NULL; m = m->next) {
		m->err = err;
		m->done = true;
	}
	s->w_members = NULL;
	s->w_n = 0;
	s->w_issuing = false;
	pthread_cond_broadcast(&s->w_done);
	pthread_mutex_unlock(&s->w_done_lock);
}

/* Under w_lock: COMMITs the batch (when open) and tells its members. */
static enum p11e_err
batch_commit(struct server *s)
{
	enum p11e_err err = P11E_OK;
	bool issuing = s->w_issuing;

	if (!p11e_db_in_transaction(s->w_db)) {
		/* SQLite rolled it back (I/O error, full disk) */
		err = s->w_members != NULL ? P11E_ERR_DB : P11E_OK;
	} else if (s->w_members == NULL) {
		p11e_db_rollback(s->w_db);
	} else {
		if (issuing)
			p11e_crashpoint("ra-before-commit");
		err = p11e_db_commit(s->w_db);
		if (err == P11E_OK && issuing)
			p11e_crashpoint("ra-after-commit");
	}
	batch_notify(s, err);
	return err;
}

/*
 * Starts the request's transaction: a SAVEPOINT in the batch on the
 * writer connection (which becomes c->db until txn_commit/txn_rollback).
 */
static enum p11e_err
txn_begin(struct call *c)
{
	struct server *s = c->s;
	enum p11e_err err;

	p11e_return_val_if_fail(!c->in_batch, P11E_ERR_INVALID_PARAMETER);
	atomic_fetch_add(&s->w_want, 1);
	pthread_mutex_lock(&s->w_lock);
	atomic_fetch_sub(&s->w_want, 1);
	if (!p11e_db_in_transaction(s->w_db)) {
		if (s->w_members != NULL)
			batch_notify(s, P11E_ERR_DB);
		if ((err = p11e_db_begin(s->w_db)) != P11E_OK)
			goto fail;
	}
	if ((err = p11e_db_exec(s->w_db, "SAVEPOINT request")) != P11E_OK)
		goto fail;
	c->pool_db = c->db;
	c->db = s->w_db;
	c->in_batch = true;
	c->issuing = false;
	return P11E_OK;
fail:
	if (s->w_members == NULL)
		p11e_db_rollback(s->w_db);
	pthread_mutex_unlock(&s->w_lock);
	return err;
}

/*
 * Leaves the writer: COMMITs the batch when nobody else is in line
 * (or it is full), else hands the writer on.  Returns the batch's
 * result for a member (wait true: after its COMMIT).
 */
static enum p11e_err
txn_leave(struct call *c, struct member *me)
{
	struct server *s = c->s;
	enum p11e_err err = P11E_OK;

	c->db = c->pool_db;
	c->pool_db = NULL;
	c->in_batch = false;
	if (me != NULL) {
		me->next = s->w_members;
		s->w_members = me;
		s->w_n++;
		s->w_issuing |= c->issuing;
	}
	if (atomic_load(&s->w_want) == 0 || s->w_n >= BATCH_MAX ||
	    !p11e_db_in_transaction(s->w_db)) {
		err = batch_commit(s);
		pthread_mutex_unlock(&s->w_lock);
		return me != NULL ? err : P11E_OK;
	}
	pthread_mutex_unlock(&s->w_lock);
	if (me == NULL)
		return P11E_OK;
	pthread_mutex_lock(&s->w_done_lock);
	while (!me->done)
		pthread_cond_wait(&s->w_done, &s->w_done_lock);
	pthread_mutex_unlock(&s->w_done_lock);
	return me->err;
}

/* Ends the request's transaction; returns after the COMMIT holding it. */
static enum p11e_err
txn_commit(struct call *c)
{
	struct member me;
	enum p11e_err err;

	p11e_return_val_if_fail(c->in_batch, P11E_ERR_INVALID_PARAMETER);
	memset(&me, 0, sizeof(me));
	if ((err = p11e_db_exec(c->db, "RELEASE request")) != P11E_OK) {
		if (p11e_db_in_transaction(c->db) &&
		    p11e_db_exec(c->db, "ROLLBACK TO request") == P11E_OK)
			(void)p11e_db_exec(c->db, "RELEASE request");
		(void)txn_leave(c, NULL);
		return err;
	}
	return txn_leave(c, &me);
}

/* Undoes the request's transaction (no-op outside one). */
static void
txn_rollback(struct call *c)
{
	if (!c->in_batch)
		return;
	if (p11e_db_in_transaction(c->db) &&
	    p11e_db_exec(c->db, "ROLLBACK TO request") == P11E_OK)
		(void)p11e_db_exec(c->db, "RELEASE request");
	(void)txn_leave(c, NULL);
}

/* ---- responses ---- */

static void
unavailable(struct call *c)
{
	p11e_http_unavailable(c->resp,
	    "the store is full or failing; nothing was consumed, try again");
}

static void
rate_limited(struct call *c, unsigned int retry)
{
	p11e_http_problem(
	    c->resp, 429, "rate-limited", "Too many requests", NULL);
	snprintf(c->resp->retry_after, sizeof(c->resp->retry_after), "%u",
	    retry > 0 ? retry : 1);
}

static void
unsupported_media_type(struct call *c, const char *want)
{
	char detail[96];

	snprintf(detail, sizeof(detail), "send Content-Type: %s", want);
	p11e_http_problem(c->resp, 415, "unsupported-media-type",
	    "Unsupported media type", detail);
}

/* ---- base64 ---- */

static int
b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/*
 * Decodes RFC 4648 base64 as RFC 8951 asks: CR, LF, spaces and tabs are
 * skipped, one trailing NUL is tolerated, '=' only at the end (the
 * padding may be missing); anything else is P11E_ERR_PARSE.
 */
static enum p11e_err
b64_decode(const unsigned char *in, size_t len, struct p11e_buf *out)
{
	unsigned int acc = 0, nbits = 0, npad = 0, nchars = 0;
	unsigned char byte;
	size_t i;
	int v;

	if (len > 0 && in[len - 1] == '\0')
		len--;
	for (i = 0; i < len; i++) {
		unsigned char ch = in[i];

		if (ch == '\r' || ch == '\n' || ch == ' ' || ch == '\t')
			continue;
		if (ch == '=') {
			npad++;
			continue;
		}
		if (npad > 0 || (v = b64_value(ch)) < 0)
			return P11E_ERR_PARSE;
		nchars++;
		acc = (acc << 6) | (unsigned int)v;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			byte = (unsigned char)(acc >> nbits);
			if (p11e_buf_append(out, &byte, 1) != P11E_OK)
				return P11E_ERR_TOO_LARGE;
		}
		acc &= (1u << nbits) - 1;
	}
	if (nchars % 4 == 1 || npad > 2 ||
	    (npad > 0 && (nchars + npad) % 4 != 0) || acc != 0 || out->len == 0)
		return P11E_ERR_PARSE;
	return P11E_OK;
}

/* Appends base64 in lines of 64 characters, each ended by LF. */
static enum p11e_err
b64_encode(const unsigned char *in, size_t len, struct p11e_buf *out)
{
	unsigned char line[70];
	enum p11e_err err;
	size_t off, n;
	int m;

	for (off = 0; off < len; off += n) {
		n = len - off > 48 ? 48 : len - off;
		m = EVP_EncodeBlock(line, in + off, (int)n);
		if ((err = p11e_buf_append(out, line, (size_t)m)) != P11E_OK ||
		    (err = p11e_buf_append(out, "\n", 1)) != P11E_OK)
			return err;
	}
	return P11E_OK;
}

/* The base64 certs-only PKCS#7 holding one certificate. */
static enum p11e_err
reply_cert(struct call *c, const unsigned char *der, size_t len)
{
	const unsigned char *ders[1] = { der };
	size_t lens[1] = { len };
	struct p11e_buf p7, b64;
	enum p11e_err err;

	p11e_buf_init(&p7, 256 * 1024);
	p11e_buf_init(&b64, 512 * 1024);
	if ((err = p11e_ca_pkcs7_certs(ders, lens, 1, &p7)) == P11E_OK &&
	    (err = b64_encode(p7.data, p7.len, &b64)) == P11E_OK)
		p11e_http_body(c->resp, PKCS7_CERTS, b64.data, b64.len);
	p11e_buf_clear(&p7);
	p11e_buf_clear(&b64);
	return err;
}

/* ---- lookups ---- */

struct code_row {
	int64_t id, user, window;
	time_t expires;
	bool used;
	bool has_spki;
	unsigned char spki[32];
};

static enum p11e_err
code_find(struct p11e_db *db, const unsigned char hash[32], const char *kind,
    struct code_row *out)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((err = p11e_db_prepare_cached(db,
		 "SELECT id, user, window, expires, used IS NOT NULL,"
		 " spki_sha256 FROM enroll_codes WHERE hash = ? AND kind = ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		out->user = sqlite3_column_int64(st, 1);
		out->window = sqlite3_column_int64(st, 2);
		out->expires = (time_t)sqlite3_column_int64(st, 3);
		out->used = sqlite3_column_int(st, 4) != 0;
		if (sqlite3_column_bytes(st, 5) == 32) {
			out->has_spki = true;
			memcpy(out->spki, sqlite3_column_blob(st, 5), 32);
		}
		err = P11E_OK;
	} else {
		err = rc == SQLITE_DONE ? P11E_ERR_NOT_FOUND
					: p11e_db_error(db, rc, "code");
	}
	p11e_db_finish(db, st);
	return err;
}

/*
 * A certificate (DER into der) found by one blob column; revoked ones
 * are never handed out again.
 */
static enum p11e_err
cert_find(struct p11e_db *db, const char *sql, int64_t user,
    const unsigned char md[32], struct p11e_buf *der)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	if ((err = p11e_db_prepare_cached(db, sql, &st)) != P11E_OK)
		return err;
	sqlite3_bind_blob(st, 1, md, 32, SQLITE_STATIC);
	if (user != 0)
		sqlite3_bind_int64(st, 2, user);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = p11e_buf_append(der, sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0));
	else
		err = rc == SQLITE_DONE ? P11E_ERR_NOT_FOUND
					: p11e_db_error(db, rc, "certificate");
	p11e_db_finish(db, st);
	return err;
}

static enum p11e_err
spki_in_use(struct p11e_db *db, const unsigned char spki[32], bool *used)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	*used = false;
	if ((err = p11e_db_prepare_cached(db,
		 "SELECT 1 FROM certificates WHERE spki_sha256 = ? LIMIT 1",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_blob(st, 1, spki, 32, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*used = true;
	else if (rc != SQLITE_DONE)
		err = p11e_db_error(db, rc, "certificate");
	p11e_db_finish(db, st);
	return err;
}

/* The profile of what the RA issues to a user; strings in the rows. */
static void
user_profile(struct server *s, const struct p11e_db_user *u,
    const struct p11e_db_contract *k, struct p11e_ca_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->common_name = u->user_id;
	p->organization = k->name;
	p->organizational_unit = u->contract_id;
	p->validity =
	    (long)(u->admin ? s->policy->validity : s->policy->user_validity);
	p->backdate = (long)s->policy->backdate;
}

/*
 * Appends "/TYPE=value" to buf (of len, NUL-terminated) with '/' and '\\'
 * of the value escaped by a backslash, as the client's subject parser
 * (pkcs11/csr.c) reads them: a contract named "A/B" must not become two
 * RDNs.  Truncates (still terminated) when buf is too small.
 */
static void
subject_add(char *buf, size_t len, const char *type, const char *value)
{
	size_t o = strlen(buf);
	const char *p;
	int n;

	n = snprintf(buf + o, len - o, "/%s=", type);
	if (n < 0 || (size_t)n >= len - o)
		return; /* truncated, terminated */
	o += (size_t)n;
	for (p = value; *p != '\0' && o + 2 < len; p++) {
		if (*p == '/' || *p == '\\')
			buf[o++] = '\\';
		buf[o++] = *p;
	}
	buf[o] = '\0';
}

static void
subject_text(const struct p11e_db_user *u, const struct p11e_db_contract *k,
    char *buf, size_t len)
{
	buf[0] = '\0';
	subject_add(buf, len, "O", k->name);
	subject_add(buf, len, "OU", u->contract_id);
	subject_add(buf, len, "CN", u->user_id);
}

static json_t *
key_policy_json(unsigned int mask)
{
	static const struct {
		unsigned int bit;
		const char *name;
	} names[] = {
		{ P11E_CA_KEY_EC_P256, "ec-p256" },
		{ P11E_CA_KEY_EC_P384, "ec-p384" },
		{ P11E_CA_KEY_RSA_2048, "rsa-2048" },
		{ P11E_CA_KEY_RSA_3072, "rsa-3072" },
		{ P11E_CA_KEY_RSA_4096, "rsa-4096" },
	};
	json_t *a = json_array();
	size_t i;

	for (i = 0; a != NULL && i < sizeof(names) / sizeof(names[0]); i++)
		if (mask & names[i].bit)
			json_array_append_new(a, json_string(names[i].name));
	return a;
}

/* ---- the user session ---- */

static enum p11e_err
password_hash_get(struct p11e_db *db, int64_t user, char *out, size_t len)
{
	return p11e_db_text_by_id(db,
	    "SELECT password_hash FROM users WHERE id = ?", user, "user", out,
	    len);
}

/*
 * Counts a failed login of u inside the open transaction (locking at
 * max-failures), audits it and commits.
 */
static enum p11e_err
login_failed(struct call *c, const struct p11e_db_user *u, const char *target,
    const char *why)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	bool locks =
	    (unsigned int)u->failures + 1 >= c->s->policy->max_failures;

	if ((err = p11e_db_prepare(c->db,
		 "UPDATE users SET failures = failures + 1,"
		 " locked = locked OR ? WHERE id = ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int(st, 1, locks ? 1 : 0);
	sqlite3_bind_int64(st, 2, u->id);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
	    (err = p11e_db_audit(c->db, "user", "session", target, "refused",
		 c->req->peer, why)) != P11E_OK)
		return err;
	if (locks &&
	    (err = p11e_db_audit(c->db, "system", "lock", target, "ok",
		 c->req->peer, "max-failures reached")) != P11E_OK)
		return err;
	return txn_commit(c);
}

/* A refused login: the slow-down of its name (key), then 401. */
static void
login_refused(struct call *c, const unsigned char key[32])
{
	fail_delay(fail_note(c->s, key, true));
	p11e_http_problem(
	    c->resp, 401, "invalid-credentials", "Invalid credentials", NULL);
}

static void
session_ok(struct call *c, const struct p11e_db_user *u, int64_t window,
    time_t closes, const char *target)
{
	struct p11e_db_contract k;
	struct p11e_secret *token = NULL;
	unsigned char md[32];
	sqlite3_stmt *st = NULL;
	char exp_s[32], closes_s[32], subject[400];
	time_t expires = c->now + (time_t)c->s->policy->token_lifetime;
	enum p11e_err err;
	json_t *j;

	if ((err = p11e_db_contract_find(c->db, u->contract_id, &k)) !=
		P11E_OK ||
	    (err = p11e_hash_token_new(&token, md)) != P11E_OK ||
	    (err = p11e_db_prepare(c->db,
		 "INSERT INTO enroll_codes (hash, user, kind, window,"
		 " created, expires) VALUES (?, ?, 'token', ?, ?, ?)",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_blob(st, 1, md, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, u->id);
	sqlite3_bind_int64(st, 3, window);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)c->now);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)expires);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
	    (err = p11e_db_audit(c->db, "user", "session", target, "ok",
		 c->req->peer, NULL)) != P11E_OK ||
	    (err = txn_commit(c)) != P11E_OK)
		goto out;
	p11e_ra_iso_time(expires, exp_s, sizeof(exp_s));
	p11e_ra_iso_time(closes, closes_s, sizeof(closes_s));
	subject_text(u, &k, subject, sizeof(subject));
	j = json_pack("{s:s%, s:s, s:s, s:o, s:s}", "token",
	    p11e_secret_str(token), p11e_secret_len(token), "expires", exp_s,
	    "subject", subject, "key_policy",
	    key_policy_json(c->s->policy->key_types), "window_closes",
	    closes_s);
	p11e_http_json(c->resp, j);
	json_decref(j);
out:
	if (err != P11E_OK)
		unavailable(c);
	p11e_secret_free(token);
}

static void
session(struct call *c)
{
	struct server *s = c->s;
	struct p11e_secret *pw = NULL, *otp = NULL;
	const char *key;
	char contract_id[12], user_id[31];
	struct p11e_db_user u, u2;
	unsigned char nkey[32];
	char hash[P11E_HASH_ENCODED_MAX], target[64];
	json_t *j = NULL, *v;
	json_error_t je;
	sqlite3_stmt *st = NULL;
	enum p11e_err err = P11E_OK, verr;
	int64_t window;
	time_t closes;
	unsigned int retry = 0, n;
	bool slot = false, pw_ok;

	if (strcmp(c->req->method, "POST") != 0) {
		p11e_http_method_not_allowed(c->resp, "POST");
		return;
	}
	if (!p11e_http_media_type_is(
		c->req->content_type, "application/json")) {
		unsupported_media_type(c, "application/json");
		return;
	}
	/* before anything costs (R06) */
	if (!rl_take(&s->login_rl, c->req->peer, &retry)) {
		rate_limited(c, retry);
		return;
	}
	j = json_loadb((const char *)c->req->body, c->req->body_len,
	    JSON_REJECT_DUPLICATES, &je);
	if (j == NULL || !json_is_object(j) || json_object_size(j) != 4)
		goto bad;
	json_object_foreach(j, key, v)
	{
		if (!json_is_string(v) ||
		    (strcmp(key, "contract_id") != 0 &&
			strcmp(key, "user_id") != 0 &&
			strcmp(key, "password") != 0 &&
			strcmp(key, "otp") != 0))
			goto bad;
	}
	v = json_object_get(j, "password");
	if (json_string_length(v) < 1 || json_string_length(v) > PASSWORD_MAX ||
	    json_string_length(json_object_get(j, "otp")) > OTP_MAX ||
	    !p11e_db_valid_contract_id(
		json_string_value(json_object_get(j, "contract_id"))) ||
	    !p11e_db_valid_user_id(
		json_string_value(json_object_get(j, "user_id"))))
		goto bad;
	/* checked: 11 and at most 30 characters */
	snprintf(contract_id, sizeof(contract_id), "%s",
	    json_string_value(json_object_get(j, "contract_id")));
	snprintf(user_id, sizeof(user_id), "%s",
	    json_string_value(json_object_get(j, "user_id")));
	if ((pw = p11e_secret_new_from(
		 json_string_value(v), json_string_length(v))) == NULL ||
	    (otp = p11e_secret_new(OTP_MAX + 1)) == NULL ||
	    p11e_secret_append(otp,
		json_string_value(json_object_get(j, "otp")),
		json_string_length(json_object_get(j, "otp"))) != P11E_OK) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	snprintf(target, sizeof(target), "%s/%s", contract_id, user_id);
	name_key(contract_id, user_id, nkey);
	json_decref(j); /* wiped by the allocator */
	j = NULL;

	/* a cap on concurrent hashes (R06) */
	if (atomic_fetch_add(&s->hashing, 1) >= s->hash_workers) {
		atomic_fetch_sub(&s->hashing, 1);
		rate_limited(c, 1);
		goto out;
	}
	slot = true;
	if ((c->db = p11e_db_pool_take(s->pool)) == NULL) {
		err = P11E_ERR_DB;
		goto out;
	}
	err = p11e_db_user_find(c->db, contract_id, user_id, &u);
	if (err == P11E_OK)
		err = password_hash_get(c->db, u.id, hash, sizeof(hash));
	if (err == P11E_ERR_NOT_FOUND) {
		/* as long as for a user who exists (R05) */
		(void)p11e_hash_verify(NULL, pw);
		atomic_fetch_sub(&s->hashing, 1);
		slot = false;
		if ((err = p11e_db_audit(c->db, "user", "session", target,
			 "refused", c->req->peer, "unknown user")) != P11E_OK)
			goto out;
		login_refused(c, nkey);
		goto out;
	}
	if (err != P11E_OK)
		goto out;
	pw_ok = p11e_hash_verify(hash, pw) == P11E_OK;
	p11e_wipe(hash, sizeof(hash));
	atomic_fetch_sub(&s->hashing, 1);
	slot = false;

	/* the decision and the OTP step in one transaction (R02) */
	if ((err = txn_begin(c)) != P11E_OK ||
	    (err = p11e_db_user_get(c->db, u.id, &u2)) != P11E_OK)
		goto out;
	if (u2.locked) {
		if ((err = p11e_db_audit(c->db, "user", "session", target,
			 "refused", c->req->peer, "locked")) != P11E_OK ||
		    (err = txn_commit(c)) != P11E_OK)
			goto out;
		p11e_http_problem(c->resp, 403, "account-locked",
		    "Account locked",
		    "too many failed attempts; ask your administrator to "
		    "unlock the account");
		goto out;
	}
	if (!pw_ok) {
		if ((err = login_failed(c, &u2, target, "password")) != P11E_OK)
			goto out;
		login_refused(c, nkey);
		goto out;
	}
	err = p11e_totp_check(c->db, s->ra->data_key, u.id, otp,
	    s->policy->otp_skew, c->now, &verr);
	if (err == P11E_ERR_NOT_FOUND) {
		if ((err = login_failed(c, &u2, target, "no otp token")) !=
		    P11E_OK)
			goto out;
		login_refused(c, nkey);
		goto out;
	}
	if (err != P11E_OK)
		goto out;
	if (verr != P11E_OK) {
		bool replay = verr == P11E_ERR_OTP_REPLAYED;

		if ((err = login_failed(c, &u2, target,
			 replay ? "otp replayed" : "otp")) != P11E_OK)
			goto out;
		n = fail_note(s, nkey, true);
		fail_delay(n);
		/* said only after the password was right */
		if (replay)
			p11e_http_problem(c->resp, 401, "otp-replayed",
			    "One-time password already used",
			    "wait for the next code");
		else
			p11e_http_problem(c->resp, 401, "invalid-credentials",
			    "Invalid credentials", NULL);
		goto out;
	}
	if ((err = p11e_db_prepare(c->db,
		 "UPDATE users SET failures = 0 WHERE id = ?", &st)) != P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, u.id);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK)
		goto out;
	(void)fail_note(s, nkey, false);
	err = p11e_db_window_open_get(c->db, u.id, c->now, &window, &closes);
	if (err == P11E_ERR_NOT_FOUND) {
		/* authenticated: the step stays used */
		if ((err = p11e_db_audit(c->db, "user", "session", target,
			 "refused", c->req->peer, "no enrollment window")) !=
			P11E_OK ||
		    (err = txn_commit(c)) != P11E_OK)
			goto out;
		p11e_http_problem(c->resp, 403, "no-enrollment-window",
		    "No open acquisition window",
		    "ask your administrator to reissue");
		goto out;
	}
	if (err != P11E_OK)
		goto out;
	session_ok(c, &u, window, closes, target);
	goto out;
bad:
	p11e_http_problem(c->resp, 400, "invalid-request", "Invalid request",
	    "expected {\"contract_id\": 11 digits, \"user_id\": 1-30 letters "
	    "and digits, \"password\", \"otp\"}, all strings");
out:
	if (slot)
		atomic_fetch_sub(&s->hashing, 1);
	if (err != P11E_OK)
		unavailable(c);
	json_decref(j);
	p11e_secret_free(pw);
	p11e_secret_free(otp);
}

/* ---- issuance ---- */

/* What an enrollment request carries once decoded and checked. */
struct csr_in {
	struct p11e_buf der;
	unsigned char csr_md[32];
	unsigned char spki_md[32];
	X509_REQ *req;
	const char *key_type;
};

static void
csr_in_clear(struct csr_in *in)
{
	p11e_buf_clear(&in->der);
	X509_REQ_free(in->req);
	memset(in, 0, sizeof(*in));
}

/*
 * The common start of both enroll operations: method, media type,
 * base64; then a CSR already certified is sent back (lost response,
 * R17), rate-limited, without a credential.  true when the call has
 * been answered.
 */
static bool
enroll_start(struct call *c, struct csr_in *in)
{
	struct p11e_buf der;
	enum p11e_err err;
	unsigned int retry = 0;

	p11e_buf_init(&in->der, 64 * 1024);
	if (strcmp(c->req->method, "POST") != 0) {
		p11e_http_method_not_allowed(c->resp, "POST");
		return true;
	}
	if (!p11e_http_media_type_is(
		c->req->content_type, "application/pkcs10")) {
		unsupported_media_type(c, "application/pkcs10");
		return true;
	}
	if (b64_decode(c->req->body, c->req->body_len, &in->der) != P11E_OK) {
		p11e_http_problem(c->resp, 400, "csr-invalid", "Invalid CSR",
		    "the body is not base64 (RFC 4648) of a DER PKCS#10 "
		    "request");
		return true;
	}
	p11e_hash_sha256(in->der.data, in->der.len, in->csr_md);
	if ((c->db = p11e_db_pool_take(c->s->pool)) == NULL) {
		unavailable(c);
		return true;
	}
	p11e_buf_init(&der, 64 * 1024);
	err = cert_find(c->db,
	    "SELECT der FROM certificates WHERE csr_sha256 = ?"
	    " AND status != 'revoked' ORDER BY created DESC LIMIT 1",
	    0, in->csr_md, &der);
	if (err == P11E_OK) {
		if (!rl_take(&c->s->redeliver_rl, c->req->peer, &retry))
			rate_limited(c, retry);
		else if (reply_cert(c, der.data, der.len) != P11E_OK)
			unavailable(c);
		else
			p11e_verbose("re-delivered the certificate of a CSR "
				     "already certified to %s",
			    c->req->peer);
	} else if (err != P11E_ERR_NOT_FOUND) {
		unavailable(c);
	}
	p11e_buf_clear(&der);
	return err != P11E_ERR_NOT_FOUND;
}

/* p11e_ca_check_csr for u; false (answered) when refused. */
static bool
csr_check(struct call *c, struct csr_in *in, const struct p11e_ca_profile *p)
{
	char detail[200];
	enum p11e_err err;

	detail[0] = '\0';
	err = p11e_ca_check_csr(in->der.data, in->der.len,
	    c->s->policy->key_types, p, &in->req, &in->key_type, detail,
	    sizeof(detail));
	if (err == P11E_ERR_KEY_POLICY) {
		p11e_http_problem(c->resp, 400, "key-policy-violation",
		    "Key not allowed", detail);
		return false;
	}
	if (err == P11E_ERR_CSR_EXTENSIONS) {
		p11e_http_problem(c->resp, 400, "extension-not-allowed",
		    "Extension or subject not allowed", detail);
		return false;
	}
	if (err != P11E_OK) {
		p11e_http_problem(c->resp, 400, "csr-invalid", "Invalid CSR",
		    detail[0] ? detail : NULL);
		return false;
	}
	if (p11e_ca_req_spki_sha256(in->req, in->spki_md) != P11E_OK) {
		p11e_http_problem(
		    c->resp, 400, "csr-invalid", "Invalid CSR", NULL);
		return false;
	}
	return true;
}

/*
 * Inside the open transaction: signs, records the certificate (issue
 * number previous + 1), supersedes the user's other valid certificates,
 * audits, commits and answers.  Everything before is the caller's.
 */
static enum p11e_err
issue_commit(struct call *c, const struct p11e_db_user *u,
    const struct p11e_ca_profile *p, struct csr_in *in, const char *action,
    const char *target)
{
	struct p11e_ca_issued out;
	sqlite3_stmt *st = NULL;
	char detail[128];
	enum p11e_err err;

	memset(&out, 0, sizeof(out));
	pthread_mutex_lock(&c->s->ca_lock);
	err = p11e_ca_issue(c->s->ca, in->req, p, c->now, &out);
	pthread_mutex_unlock(&c->s->ca_lock);
	if (err != P11E_OK)
		return err;
	if ((err = p11e_db_prepare_cached(c->db,
		 "UPDATE certificates SET status = 'superseded'"
		 " WHERE user = ? AND status = 'valid'",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, u->id);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
	    (err = p11e_db_prepare_cached(c->db,
		 "INSERT INTO certificates (serial, user, issue_no, der,"
		 " csr_sha256, spki_sha256, not_before, not_after,"
		 " issued_from, key_type, created, role) VALUES (?, ?,"
		 " (SELECT COALESCE(MAX(issue_no), 0) + 1 FROM certificates"
		 "  WHERE user = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_text(st, 1, out.serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, u->id);
	sqlite3_bind_int64(st, 3, u->id);
	sqlite3_bind_blob(st, 4, out.der.data, (int)out.der.len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, in->csr_md, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, in->spki_md, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)out.not_before);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)out.not_after);
	sqlite3_bind_text(st, 9, c->req->peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, in->key_type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 11, (sqlite3_int64)c->now);
	sqlite3_bind_text(
	    st, 12, u->admin ? "admin" : "user", -1, SQLITE_STATIC);
	snprintf(
	    detail, sizeof(detail), "serial %s, %s", out.serial, in->key_type);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
	    (err = p11e_db_audit(c->db, "user", action, target, "ok",
		 c->req->peer, detail)) != P11E_OK)
		goto out;
	/* ra-before-commit and ra-after-commit: around the batch's COMMIT */
	c->issuing = true;
	if ((err = txn_commit(c)) != P11E_OK)
		goto out;
	if (reply_cert(c, out.der.data, out.der.len) != P11E_OK)
		p11e_http_problem(c->resp, 500, "internal-error",
		    "Internal error",
		    "issued; send the same CSR again to receive it");
out:
	p11e_buf_clear(&out.der);
	return err;
}

/* The credential of simpleenroll: a token (Bearer) or an admin code. */
static bool
enroll_credential(struct call *c, unsigned char md[32], const char **kind,
    char *who, size_t wlen)
{
	const char *a = c->req->authorization;
	struct p11e_buf dec;
	const char *colon;
	bool ok = false;

	who[0] = '\0';
	if (a == NULL)
		return false;
	if (strncasecmp(a, "Bearer ", 7) == 0) {
		a += 7;
		while (*a == ' ')
			a++;
		if (strlen(a) == 0 || strlen(a) > 128)
			return false;
		p11e_hash_sha256(a, strlen(a), md);
		*kind = "token";
		return true;
	}
	if (strncasecmp(a, "Basic ", 6) != 0)
		return false;
	p11e_buf_init_wiped(&dec, 512);
	if (b64_decode((const unsigned char *)a + 6, strlen(a + 6), &dec) ==
		P11E_OK &&
	    (colon = memchr(dec.data, ':', dec.len)) != NULL &&
	    (size_t)(colon - (const char *)dec.data) < wlen) {
		size_t ulen = (size_t)(colon - (const char *)dec.data);

		memcpy(who, dec.data, ulen);
		who[ulen] = '\0';
		p11e_hash_sha256(colon + 1, dec.len - ulen - 1, md);
		*kind = "admin-code";
		ok = true;
	}
	p11e_buf_clear(&dec);
	return ok;
}

static void
simpleenroll(struct call *c)
{
	struct csr_in in;
	struct code_row code;
	struct p11e_db_user u;
	struct p11e_db_contract k;
	struct p11e_ca_profile p;
	struct p11e_buf der;
	unsigned char md[32];
	const char *kind = NULL;
	char who[64], target[64];
	sqlite3_stmt *st = NULL;
	enum p11e_err err = P11E_OK;
	bool used;
	int64_t w_id = 0;
	time_t closes = 0;

	memset(&in, 0, sizeof(in));
	p11e_buf_init(&der, 64 * 1024);
	if (enroll_start(c, &in))
		goto out;
	if (!enroll_credential(c, md, &kind, who, sizeof(who))) {
		p11e_http_problem(c->resp, 401, "invalid-credentials",
		    "Authentication required",
		    "send Authorization: Bearer <enrollment token> or Basic "
		    "with a one-time enrollment code");
		snprintf(c->resp->www_authenticate,
		    sizeof(c->resp->www_authenticate),
		    "Basic realm=\"p11enroll\"");
		goto out;
	}
	err = code_find(c->db, md, kind, &code);
	if (err == P11E_OK &&
	    (err = p11e_db_user_get(c->db, code.user, &u)) == P11E_OK)
		err = p11e_db_contract_find(c->db, u.contract_id, &k);
	if (err == P11E_OK && strcmp(kind, "admin-code") == 0) {
		char expect[64];

		snprintf(
		    expect, sizeof(expect), "%s/%s", u.contract_id, u.user_id);
		if (strcmp(expect, who) != 0)
			err = P11E_ERR_NOT_FOUND;
	}
	if (err == P11E_ERR_NOT_FOUND ||
	    (err == P11E_OK && code.expires <= c->now)) {
		err = P11E_OK;
		(void)p11e_db_audit(c->db, "user", "simpleenroll", NULL,
		    "refused", c->req->peer, "unknown or expired credential");
		p11e_http_problem(c->resp, 401, "invalid-credentials",
		    "Invalid credentials",
		    "the enrollment token or code is unknown or expired");
		goto out;
	}
	if (err != P11E_OK)
		goto out;
	snprintf(target, sizeof(target), "%s/%s", u.contract_id, u.user_id);
	user_profile(c->s, &u, &k, &p);
	if (!csr_check(c, &in, &p))
		goto out;

	if ((err = txn_begin(c)) != P11E_OK ||
	    (err = code_find(c->db, md, kind, &code)) != P11E_OK)
		goto out;
	if (code.has_spki && memcmp(code.spki, in.spki_md, 32) != 0) {
		txn_rollback(c);
		p11e_http_problem(c->resp, 403, "key-mismatch",
		    "Token bound to another key",
		    "the enrollment token was first used with another "
		    "public key");
		goto out;
	}
	if (code.used) {
		/* the same key again: the certificate it got (R17) */
		txn_rollback(c);
		err = cert_find(c->db,
		    "SELECT der FROM certificates WHERE spki_sha256 = ?"
		    " AND user = ? AND status != 'revoked'"
		    " ORDER BY issue_no DESC LIMIT 1",
		    u.id, in.spki_md, &der);
		if (err == P11E_OK) {
			if (reply_cert(c, der.data, der.len) != P11E_OK)
				unavailable(c);
			goto out;
		}
		if (err != P11E_ERR_NOT_FOUND)
			goto out;
		err = P11E_OK;
		p11e_http_problem(c->resp, 403, "no-enrollment-window",
		    "No open acquisition window",
		    "this enrollment token or code was already used");
		goto out;
	}
	err = p11e_db_window_open_get(c->db, u.id, c->now, &w_id, &closes);
	if (err == P11E_ERR_NOT_FOUND ||
	    (err == P11E_OK && w_id != code.window)) {
		err = p11e_db_audit(c->db, "user", "simpleenroll", target,
		    "refused", c->req->peer, "no enrollment window");
		if (err == P11E_OK)
			err = txn_commit(c);
		if (err != P11E_OK)
			goto out;
		p11e_http_problem(c->resp, 403, "no-enrollment-window",
		    "No open acquisition window",
		    "the window expired, was used or was closed: ask your "
		    "administrator to reissue");
		goto out;
	}
	if (err != P11E_OK ||
	    (err = spki_in_use(c->db, in.spki_md, &used)) != P11E_OK)
		goto out;
	/* bound to its first key even when that key is refused below */
	if (!code.has_spki) {
		if ((err = p11e_db_prepare_cached(c->db,
			 "UPDATE enroll_codes SET spki_sha256 = ?"
			 " WHERE id = ?",
			 &st)) != P11E_OK)
			goto out;
		sqlite3_bind_blob(st, 1, in.spki_md, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, code.id);
		if ((err = p11e_db_step_done(c->db, st)) != P11E_OK)
			goto out;
	}
	if (used) {
		if ((err = p11e_db_audit(c->db, "user", "simpleenroll", target,
			 "refused", c->req->peer, "key in use")) != P11E_OK ||
		    (err = txn_commit(c)) != P11E_OK)
			goto out;
		p11e_http_problem(c->resp, 409, "key-in-use",
		    "Key already certified", "generate a new key");
		goto out;
	}
	if ((err = p11e_db_prepare_cached(c->db,
		 "UPDATE windows SET state = 'used', used_at = ?"
		 " WHERE id = ?",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)c->now);
	sqlite3_bind_int64(st, 2, w_id);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK ||
	    (err = p11e_db_prepare_cached(c->db,
		 "UPDATE enroll_codes SET used = ? WHERE id = ?", &st)) !=
		P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)c->now);
	sqlite3_bind_int64(st, 2, code.id);
	if ((err = p11e_db_step_done(c->db, st)) != P11E_OK)
		goto out;
	err = issue_commit(c, &u, &p, &in,
	    strcmp(kind, "token") == 0 ? "simpleenroll" : "simpleenroll-code",
	    target);
out:
	if (err != P11E_OK) {
		txn_rollback(c);
		unavailable(c);
	}
	p11e_buf_clear(&der);
	csr_in_clear(&in);
}

/*
 * The certificate with serial: its user, status, notAfter, DER and the
 * role it was issued for ("user" or "admin", in role[16]).
 */
static enum p11e_err
cert_by_serial(struct p11e_db *db, const char *serial, int64_t *user,
    char *status, size_t slen, time_t *not_after, struct p11e_buf *der,
    char role[16])
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	if ((err = p11e_db_prepare_cached(db,
		 "SELECT user, status, not_after, der, role FROM certificates"
		 " WHERE serial = ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*user = sqlite3_column_int64(st, 0);
		snprintf(status, slen, "%s",
		    (const char *)sqlite3_column_text(st, 1));
		*not_after = (time_t)sqlite3_column_int64(st, 2);
		p11e_buf_reset(der);
		snprintf(role, 16, "%s",
		    sqlite3_column_type(st, 4) == SQLITE_NULL
			? ""
			: (const char *)sqlite3_column_text(st, 4));
		err = p11e_buf_append(der, sqlite3_column_blob(st, 3),
		    (size_t)sqlite3_column_bytes(st, 3));
	} else {
		err = rc == SQLITE_DONE ? P11E_ERR_NOT_FOUND
					: p11e_db_error(db, rc, "certificate");
	}
	p11e_db_finish(db, st);
	return err;
}

static void
simplereenroll(struct call *c)
{
	struct csr_in in;
	struct p11e_db_user u;
	struct p11e_db_contract k;
	struct p11e_ca_profile p;
	struct p11e_buf der;
	char detail[200], serial[64], status[16], target[64], when[32];
	char role[16];
	enum p11e_err err = P11E_OK;
	X509 *x = NULL;
	int64_t user = 0;
	time_t not_after = 0;
	bool used;

	memset(&in, 0, sizeof(in));
	p11e_buf_init(&der, 64 * 1024);
	detail[0] = '\0';
	if (enroll_start(c, &in))
		goto out;
	if ((x = p11e_ca_client_cert(c->req, c->s->store, c->now, detail,
		 sizeof(detail))) == NULL) {
		p11e_http_problem(c->resp, 403, "certificate-required",
		    "A valid client certificate is required", detail);
		goto out;
	}
	/* identity by issuer (the CA, verified above) and serial only */
	if ((err = p11e_ca_serial_hex(x, serial, sizeof(serial))) != P11E_OK)
		goto out;
	err = cert_by_serial(c->db, serial, &user, status, sizeof(status),
	    &not_after, &der, role);
	if (err == P11E_ERR_NOT_FOUND ||
	    (err == P11E_OK &&
		(strcmp(status, "valid") != 0 ||
		    der.len != c->req->cert_len[0] ||
		    memcmp(der.data, c->req->cert_der[0], der.len) != 0))) {
		err = p11e_db_audit(c->db, "user", "simplereenroll", serial,
		    "refused", c->req->peer,
		    err == P11E_OK ? status : "unknown certificate");
		if (err != P11E_OK)
			goto out;
		p11e_http_problem(c->resp, 403, "certificate-revoked",
		    "Certificate not renewable",
		    "the certificate is revoked, superseded or not the "
		    "current one");
		goto out;
	}
	if (err != P11E_OK ||
	    (err = p11e_db_user_get(c->db, user, &u)) != P11E_OK ||
	    (err = p11e_db_contract_find(c->db, u.contract_id, &k)) != P11E_OK)
		goto out;
	snprintf(target, sizeof(target), "%s/%s", u.contract_id, u.user_id);
	/*
	 * The role stays what the certificate was issued for: an
	 * administrator's renews only as an administrator's, and a user
	 * made administrator meanwhile gets that role only out of band
	 * (R14), never by renewing a user's certificate.
	 */
	if (strcmp(role, u.admin ? "admin" : "user") != 0) {
		if ((err = p11e_db_audit(c->db, "user", "simplereenroll",
			 target, "refused", c->req->peer,
			 "role changed since issuance")) != P11E_OK)
			goto out;
		p11e_http_problem(c->resp, 403, "certificate-revoked",
		    "Certificate not renewable",
		    "the certificate was issued for another role; ask "
		    "your bank for a new one");
		goto out;
	}
	if (c->now < not_after - (time_t)c->s->policy->renew_before) {
		p11e_ra_iso_time(not_after - (time_t)c->s->policy->renew_before,
		    when, sizeof(when));
		snprintf(
		    detail, sizeof(detail), "re-enrollment opens at %s", when);
		p11e_http_problem(
		    c->resp, 403, "too-early", "Too early to renew", detail);
		goto out;
	}
	user_profile(c->s, &u, &k, &p);
	if (!csr_check(c, &in, &p))
		goto out;
	/* RFC 7030 §4.2.2: the Subject copied from the current certificate */
	if (X509_NAME_cmp(X509_REQ_get_subject_name(in.req),
		X509_get_subject_name(x)) != 0) {
		p11e_http_problem(c->resp, 400, "extension-not-allowed",
		    "Extension or subject not allowed",
		    "the CSR's subject must be the current certificate's");
		goto out;
	}
	if ((err = txn_begin(c)) != P11E_OK ||
	    (err = cert_by_serial(c->db, serial, &user, status, sizeof(status),
		 &not_after, &der, role)) != P11E_OK)
		goto out;
	if (strcmp(status, "valid") != 0) {
		txn_rollback(c);
		p11e_http_problem(c->resp, 403, "certificate-revoked",
		    "Certificate not renewable",
		    "the certificate was renewed or revoked meanwhile");
		goto out;
	}
	if ((err = spki_in_use(c->db, in.spki_md, &used)) != P11E_OK)
		goto out;
	if (used) {
		txn_rollback(c);
		p11e_http_problem(c->resp, 409, "key-in-use",
		    "Key already certified", "generate a new key");
		goto out;
	}
	err = issue_commit(c, &u, &p, &in, "simplereenroll", target);
out:
	if (err != P11E_OK) {
		txn_rollback(c);
		unavailable(c);
	}
	X509_free(x);
	p11e_buf_clear(&der);
	csr_in_clear(&in);
}

/* ---- public documents ---- */

static void
policy(struct call *c)
{
	const struct p11e_ra_policy *p = c->s->policy;
	json_t *j;

	j = json_pack("{s:I, s:I, s:I, s:I, s:o, s:i, s:I, s:I}", "validity",
	    (json_int_t)p->validity, "user_validity",
	    (json_int_t)p->user_validity, "renew_before",
	    (json_int_t)p->renew_before, "window", (json_int_t)p->window,
	    "key_policy", key_policy_json(p->key_types), "otp_step",
	    (int)p->otp_step, "token_lifetime", (json_int_t)p->token_lifetime,
	    "backdate", (json_int_t)p->backdate);
	p11e_http_json(c->resp, j);
	json_decref(j);
}

static void
crl(struct call *c)
{
	struct p11e_ca_crl_entry *entries = NULL;
	struct p11e_db_revoked *list = NULL;
	struct p11e_buf der;
	enum p11e_err err;
	size_t n = 0, i;

	p11e_buf_init(&der, 16 * 1024 * 1024);
	if ((c->db = p11e_db_pool_take(c->s->pool)) == NULL ||
	    (err = p11e_db_revoked_list(c->db, c->now, &list, &n)) != P11E_OK) {
		unavailable(c);
		goto out;
	}
	if (n > 0 && (entries = calloc(n, sizeof(*entries))) == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		entries[i].serial = list[i].serial;
		entries[i].revoked_at = list[i].revoked_at;
		entries[i].reason = list[i].reason;
	}
	pthread_mutex_lock(&c->s->ca_lock);
	/* CRL number: the time, which only grows (as `p11enroll-ra crl`) */
	err = p11e_ca_crl(
	    c->s->ca, entries, n, c->now, 7 * 86400, (long)c->now, &der);
	pthread_mutex_unlock(&c->s->ca_lock);
	if (err != P11E_OK)
		goto fail;
	p11e_http_body(c->resp, "application/pkix-crl", der.data, der.len);
	goto out;
fail:
	p11e_http_problem(
	    c->resp, 500, "internal-error", "Internal error", NULL);
out:
	p11e_buf_clear(&der);
	free(entries);
	free(list);
}

static bool
is_get(struct call *c)
{
	if (strcmp(c->req->method, "GET") == 0 ||
	    strcmp(c->req->method, "HEAD") == 0)
		return true;
	p11e_http_method_not_allowed(c->resp, "GET, HEAD");
	return false;
}

static void
handle(void *ctx, const struct p11e_http_request *req,
    struct p11e_http_response *resp)
{
	struct call c;
	char path[96];
	double t0 = mono_now();

	memset(&c, 0, sizeof(c));
	c.s = ctx;
	c.req = req;
	c.resp = resp;
	c.now = time(NULL);
	if (strcmp(req->path, EST "cacerts") == 0) {
		if (is_get(&c))
			p11e_http_body(c.resp, "application/pkcs7-mime",
			    c.s->cacerts.data, c.s->cacerts.len);
	} else if (strcmp(req->path, EST "csrattrs") == 0) {
		if (is_get(&c))
			p11e_http_body(c.resp, "application/csrattrs",
			    c.s->csrattrs.data, c.s->csrattrs.len);
	} else if (strcmp(req->path, EST "simpleenroll") == 0) {
		simpleenroll(&c);
	} else if (strcmp(req->path, EST "simplereenroll") == 0) {
		simplereenroll(&c);
	} else if (strcmp(req->path, "/api/v1/enrollment/session") == 0) {
		session(&c);
	} else if (strcmp(req->path, "/api/v1/policy") == 0) {
		if (is_get(&c))
			policy(&c);
	} else if (strcmp(req->path, "/crl") == 0) {
		if (is_get(&c))
			crl(&c);
	} else if (p11e_admin_path(req->path)) {
		/* the admin API lives in server/admin.c */
		p11e_admin_handle(c.s->admin, req, resp, c.now);
	} else {
		p11e_http_problem(c.resp, 404, "not-found", "Not found", NULL);
	}
	txn_rollback(&c);
	p11e_db_pool_give(c.s->pool, c.db);
	p11e_verbose("%s %s %u %s %.1f ms", req->method,
	    p11e_log_escape(path, sizeof(path), req->path, strlen(req->path)),
	    resp->status, req->peer, (mono_now() - t0) * 1000.0);
}

/* ---- start and stop ---- */

/* A value of a CsrAttrs attribute (DER), there when bit is allowed. */
struct attr_value {
	unsigned int bit;
	const unsigned char *der;
	size_t len;
};

/*
 * Appends to out at *n the attribute SEQUENCE { type, SET { the values
 * of v (nv) allowed by mask } }, or nothing when mask allows none.
 * Every length is below 128: short form.
 */
static void
csrattr_put(unsigned char *out, size_t *n, unsigned int mask,
    const unsigned char *type, size_t type_len, const struct attr_value *v,
    size_t nv)
{
	unsigned char set[64], attr[96];
	size_t sn = 2, an = 2, i;

	for (i = 0; i < nv; i++) {
		if (mask & v[i].bit) {
			memcpy(set + sn, v[i].der, v[i].len);
			sn += v[i].len;
		}
	}
	if (sn == 2)
		return;
	set[0] = 0x31;
	set[1] = (unsigned char)(sn - 2);
	memcpy(attr + an, type, type_len);
	an += type_len;
	memcpy(attr + an, set, sn);
	an += sn;
	attr[0] = 0x30;
	attr[1] = (unsigned char)(an - 2);
	memcpy(out + *n, attr, an);
	*n += an;
}

/*
 * CsrAttrs (RFC 7030 §4.5.2) for the key policy: an attribute
 * id-ecPublicKey with the allowed curves, and one rsaEncryption with the
 * allowed modulus sizes (as draft-ietf-lamps-rfc7030-csrattrs does).
 */
static enum p11e_err
csrattrs_build(unsigned int mask, struct p11e_buf *b64)
{
	static const unsigned char ec_oid[] = { 0x06, 0x07, 0x2a, 0x86, 0x48,
		0xce, 0x3d, 0x02, 0x01 };
	static const unsigned char p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48,
		0xce, 0x3d, 0x03, 0x01, 0x07 };
	static const unsigned char p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04,
		0x00, 0x22 };
	static const unsigned char rsa_oid[] = { 0x06, 0x09, 0x2a, 0x86, 0x48,
		0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
	static const unsigned char r2048[] = { 0x02, 0x02, 0x08, 0x00 };
	static const unsigned char r3072[] = { 0x02, 0x02, 0x0c, 0x00 };
	static const unsigned char r4096[] = { 0x02, 0x02, 0x10, 0x00 };
	static const struct attr_value ec[] = {
		{ P11E_CA_KEY_EC_P256, p256, sizeof(p256) },
		{ P11E_CA_KEY_EC_P384, p384, sizeof(p384) },
	};
	static const struct attr_value rsa[] = {
		{ P11E_CA_KEY_RSA_2048, r2048, sizeof(r2048) },
		{ P11E_CA_KEY_RSA_3072, r3072, sizeof(r3072) },
		{ P11E_CA_KEY_RSA_4096, r4096, sizeof(r4096) },
	};
	unsigned char out[160];
	size_t n = 2;

	csrattr_put(out, &n, mask, ec_oid, sizeof(ec_oid), ec,
	    sizeof(ec) / sizeof(ec[0]));
	csrattr_put(out, &n, mask, rsa_oid, sizeof(rsa_oid), rsa,
	    sizeof(rsa) / sizeof(rsa[0]));
	out[0] = 0x30;
	out[1] = (unsigned char)(n - 2);
	return b64_encode(out, n, b64);
}

static enum p11e_err
read_file(const char *path, char **out)
{
	struct p11e_buf b;
	char chunk[4096];
	size_t n;
	FILE *f;
	enum p11e_err err = P11E_OK;

	*out = NULL;
	p11e_buf_init_wiped(&b, 1024 * 1024);
	if ((f = fopen(path, "re")) == NULL) {
		p11e_error("%s: %s", path, strerror(errno));
		return P11E_ERR_IO;
	}
	while (err == P11E_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		err = p11e_buf_append(&b, chunk, n);
	p11e_wipe(chunk, sizeof(chunk));
	if (ferror(f))
		err = P11E_ERR_IO;
	fclose(f);
	if (err == P11E_OK && b.len > 0) {
		*out = (char *)p11e_buf_steal(&b, &n);
		return P11E_OK;
	}
	p11e_buf_clear(&b);
	return err != P11E_OK ? err : P11E_ERR_PARSE;
}

static void
free_pem(char *pem)
{
	if (pem != NULL) {
		p11e_wipe(pem, strlen(pem));
		free(pem);
	}
}

static enum p11e_err
write_port_file(const char *path, unsigned int port)
{
	char tmp[4200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "we")) == NULL)
		return P11E_ERR_IO;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		return P11E_ERR_IO;
	return P11E_OK;
}

#define CACERTS_MAX 8

/*
 * The trust store of client certificates (the issuing CA and, for an
 * intermediate, its chain up to the root) and the EST cacerts answer:
 * the issuing CA first, then its chain.
 */
static enum p11e_err
cacerts_build(struct server *s)
{
	STACK_OF(X509) *chain = p11e_ca_chain(s->ca);
	unsigned char *ders[CACERTS_MAX] = { NULL };
	size_t lens[CACERTS_MAX], n = 0, i;
	enum p11e_err err = P11E_ERR_CRYPTO;
	struct p11e_buf p7;
	X509 *x;
	int len;

	if ((s->store = X509_STORE_new()) == NULL)
		return P11E_ERR_NOMEM;
	p11e_buf_init(&p7, 256 * 1024);
	for (i = 0; i <= (size_t)sk_X509_num(chain); i++) {
		x = i == 0 ? p11e_ca_cert(s->ca)
			   : sk_X509_value(chain, (int)i - 1);
		if (n == CACERTS_MAX) {
			p11e_error("CA certificate file: more than %d "
				   "certificates in the chain",
			    CACERTS_MAX);
			err = P11E_ERR_TOO_LARGE;
			goto out;
		}
		if ((len = i2d_X509(x, &ders[n])) <= 0 ||
		    X509_STORE_add_cert(s->store, x) != 1)
			goto out;
		lens[n++] = (size_t)len;
	}
	if ((err = p11e_ca_pkcs7_certs(
		 (const unsigned char *const *)ders, lens, n, &p7)) == P11E_OK)
		err = b64_encode(p7.data, p7.len, &s->cacerts);
out:
	for (i = 0; i < n + 1 && i < CACERTS_MAX; i++)
		OPENSSL_free(ders[i]);
	p11e_buf_clear(&p7);
	return err;
}

static enum p11e_err
server_init(struct server *s, struct p11e_ra *ra)
{
	struct p11e_conf *conf = ra->cfg.conf;
	enum p11e_err err;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	s->ra = ra;
	s->policy = &ra->cfg.policy;
	pthread_mutex_init(&s->ca_lock, NULL);
	pthread_mutex_init(&s->fail_lock, NULL);
	pthread_mutex_init(&s->w_lock, NULL);
	pthread_mutex_init(&s->w_done_lock, NULL);
	pthread_cond_init(&s->w_done, NULL);
	p11e_buf_init(&s->cacerts, 256 * 1024);
	p11e_buf_init(&s->csrattrs, 1024);
	rl_init(&s->login_rl,
	    (unsigned int)p11e_conf_get_u64(conf, "server", "rate-limit", 10),
	    (unsigned int)p11e_conf_get_u64(conf, "server", "rate-burst", 5));
	rl_init(&s->redeliver_rl,
	    (unsigned int)p11e_conf_get_u64(conf, "server", "rate-limit", 10),
	    (unsigned int)p11e_conf_get_u64(conf, "server", "rate-burst", 5));
	s->hash_workers = (unsigned int)p11e_conf_get_u64(
	    conf, "server", "hash-workers", ncpu > 0 ? (uint64_t)ncpu : 1);
	if ((err = p11e_ra_path(
		 ra, P11E_RA_DB, s->db_path, sizeof(s->db_path))) != P11E_OK ||
	    (err = p11e_db_pool_new(s->db_path, MAX_DBS, &s->pool)) !=
		P11E_OK ||
	    (err = p11e_db_open(s->db_path, false, &s->w_db)) != P11E_OK ||
	    (err = p11e_ca_load(ra->cfg.ca_cert, ra->cfg.ca_key,
		 ra->cfg.ca_key_uri, &s->ca)) != P11E_OK)
		return err;
	if ((err = cacerts_build(s)) != P11E_OK)
		return err;
	if (err == P11E_OK)
		err = csrattrs_build(s->policy->key_types, &s->csrattrs);
	if (err == P11E_OK)
		err = p11e_admin_new(ra, s->pool, s->store, &s->admin);
	return err;
}

static void
server_clear(struct server *s)
{
	p11e_admin_free(s->admin);
	p11e_db_pool_free(s->pool);
	p11e_ca_free(s->ca);
	X509_STORE_free(s->store);
	p11e_buf_clear(&s->cacerts);
	p11e_buf_clear(&s->csrattrs);
}

int
p11e_ra_cmd_serve(struct p11e_ra *ra, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "port-file", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	struct p11e_http_options hopts;
	struct p11e_http *http = NULL;
	const char *listen = NULL, *port_file = NULL;
	char *cert_pem = NULL, *key_pem = NULL, *trust_pem = NULL;
	struct server *s = NULL;
	enum p11e_err err;
	sigset_t set;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int c, sig = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			ra->dir = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'p':
			port_file = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	if (p11e_ra_open(ra) != P11E_OK)
		return P11E_RA_EXIT_FAILURE;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	if ((err = server_init(s, ra)) != P11E_OK ||
	    (err = read_file(ra->cfg.tls_cert, &cert_pem)) != P11E_OK ||
	    (err = read_file(ra->cfg.tls_key, &key_pem)) != P11E_OK ||
	    (err = read_file(ra->cfg.ca_cert, &trust_pem)) != P11E_OK)
		goto out;
	memset(&hopts, 0, sizeof(hopts));
	hopts.listen = listen ? listen : ra->cfg.listen;
	hopts.cert_pem = cert_pem;
	hopts.key_pem = key_pem;
	hopts.trust_pem = trust_pem;
	hopts.threads = (unsigned int)p11e_conf_get_u64(ra->cfg.conf, "server",
	    "threads", ncpu > 2 ? (uint64_t)ncpu * 2 : 4);
	/* the pool's threads inherit this mask: signals come to sigwait */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((err = p11e_http_start(&hopts, handle, s, &http)) != P11E_OK)
		goto out;
	free_pem(key_pem);
	key_pem = NULL;
	if (port_file != NULL &&
	    (err = write_port_file(port_file, p11e_http_port(http))) !=
		P11E_OK) {
		p11e_error("%s: cannot write the port", port_file);
		goto out;
	}
	p11e_info(
	    "serving on %s (port %u)", hopts.listen, p11e_http_port(http));
	while (sigwait(&set, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
		;
	p11e_info("stopping (signal %d)", sig);
out:
	p11e_http_stop(http);
	if (err != P11E_OK)
		p11e_ra_fail(err, NULL);
	if (s != NULL)
		server_clear(s);
	free(s);
	free_pem(cert_pem);
	free_pem(key_pem);
	free_pem(trust_pem);
	return p11e_ra_exit(err);
usage:
	fprintf(stderr,
	    "Usage: p11enroll-ra serve [--dir DIR] [--listen ADDR:PORT] "
	    "[--port-file FILE]\n");
	return P11E_RA_EXIT_USAGE;
}
