/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_JOURNAL_H
#define P11E_JOURNAL_H

/*
 * The credential journal (DESIGN §6, R30-R34): one JSON file per tracked
 * credential, STATE_DIR/credentials/NAME.json, mode 0600, replaced
 * atomically (temporary file, fsync, rename, fsync of the directory).
 * Every external side effect is preceded by a saved record that says
 * what is about to happen, so kill -9 at any point resumes without a
 * second key or certificate.  No secret is ever written here (no PIN,
 * password, OTP or enrollment token).  Format: doc/p11enrolld.8.
 *
 * States, in order of a user enrollment:
 *   KEY_PENDING  the CKA_ID is chosen and saved; C_GenerateKeyPair may or
 *                may not have run (recovery: adopt a key with that id,
 *                else generate)
 *   KEY_READY    the key pair exists; its SPKI is saved
 *   SUBMITTED    the CSR is saved and may have reached the server
 *                (recovery: send the same bytes again)
 *   ISSUED       the checked certificate and CA chain are saved; the token
 *                write may or may not have happened (recovery: write
 *                again: an identical object is not duplicated)
 *   INSTALLED    on the token, the pair verified
 * and side states:
 *   REJECTED       the server refused for good (last_error says why)
 *   NEEDS_OPERATOR something only a person can decide (several keys
 *                  with the id, a damaged record)
 * Renewal of an INSTALLED credential (agent/renew.c); id, spki and cert
 * stay the current pair until the new one is verified on the token:
 *   RENEW_DUE        renewal decided; new_id, once set, is the intent of
 *                    the new key (recovery: adopt a key with new_id, else
 *                    generate; an empty new_id: choose one)
 *   RENEW_KEY_READY  the new key exists; new_spki is saved
 *   RENEW_SUBMITTED  the re-enrollment CSR (csr) is saved and may have
 *                    reached the server (recovery: the same bytes again)
 *   RENEW_ISSUED     the checked new certificate (new_cert) is saved; the
 *                    token write may or may not have happened
 *   then INSTALLED with the new pair, the old one in old_id/old_cert until
 *   old_remove_at (the grace period).
 *   EXPIRED          past notAfter: only an administrator's reissue helps
 *   REVOKED          the server refused the renewal because the
 *                    certificate is revoked or no longer current
 * A credential waits (wait) for a PIN, the server or the token without
 * leaving its state; next_action says when the agent acts on it again.
 */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "pkcs11/p11.h"

enum p11e_cred_state {
	P11E_CRED_KEY_PENDING = 0,
	P11E_CRED_KEY_READY,
	P11E_CRED_SUBMITTED,
	P11E_CRED_ISSUED,
	P11E_CRED_INSTALLED,
	P11E_CRED_REJECTED,
	P11E_CRED_NEEDS_OPERATOR,
	/* appended: names, not numbers, are journaled */
	P11E_CRED_RENEW_DUE,
	P11E_CRED_RENEW_KEY_READY,
	P11E_CRED_RENEW_SUBMITTED,
	P11E_CRED_RENEW_ISSUED,
	P11E_CRED_EXPIRED,
	P11E_CRED_REVOKED,
};

/* What a credential waits for, besides time (shown as its state). */
enum p11e_cred_wait {
	P11E_WAIT_NONE = 0,
	P11E_WAIT_PIN, /* WAITING_PIN: no unattended PIN; p11enroll renew */
	P11E_WAIT_SERVER, /* WAITING_SERVER: backoff until next_action */
	P11E_WAIT_TOKEN, /* WAITING_TOKEN: the token is absent */
};

#define P11E_CRED_NAME_MAX 64
#define P11E_CRED_CHAIN_MAX 8
/* Largest journal file read back. */
#define P11E_JOURNAL_FILE_MAX (256 * 1024)

/* One DER object (owned). */
struct p11e_der {
	unsigned char *data;
	size_t len;
};

/* One credential record.  Embedded: p11e_cred_init() / _clear(). */
struct p11e_cred {
	char name[P11E_CRED_NAME_MAX + 1]; /* file name without .json */
	char service[P11E_CRED_NAME_MAX + 1];
	enum p11e_cred_state state;
	/* the token, by identity (DESIGN §3: never by slot id) */
	char token_uri[1024];
	char token_serial[17];
	char token_label[33];
	enum p11e_key_type key_type;
	unsigned char id[P11E_ID_MAX];
	size_t idlen;
	struct p11e_der spki;
	/* who (not secret; shown by list) */
	char contract_id[32];
	char user_id[64];
	struct p11e_der csr;
	struct p11e_der cert;
	struct p11e_der chain[P11E_CRED_CHAIN_MAX];
	size_t nchain;
	/* from the certificate, for list/status */
	char subject[512];
	char serial[80];
	time_t not_before, not_after;
	time_t created, updated;
	/* the last failure (name from doc/errors.md, one sentence) */
	enum p11e_err last_err;
	char last_error[512];
	/* scheduling and renewal (optional in the file: "renewal") */
	time_t next_action; /* 0: compute from the certificate */
	long long renew_before; /* the server's policy (s); -1 unknown */
	enum p11e_cred_wait wait;
	unsigned int retries; /* consecutive failed attempts (backoff) */
	bool same_key; /* this renewal keeps the key */
	unsigned char new_id[P11E_ID_MAX];
	size_t new_idlen;
	struct p11e_der new_spki;
	struct p11e_der new_cert;
	/* the replaced pair, removed after old_remove_at */
	unsigned char old_id[P11E_ID_MAX];
	size_t old_idlen;
	struct p11e_der old_cert;
	time_t old_remove_at;
	bool old_same_key; /* the old certificate shares the current key */
	/* the expiry notices told for the current certificate (P11E_NOTICE_) */
	unsigned int notices;
};

/* Bits of notices: 30, 14, 7 and 1 day before notAfter, and expiry. */
#define P11E_NOTICE_DAYS_N 4
#define P11E_NOTICE_EXPIRED (1U << P11E_NOTICE_DAYS_N)

/* "KEY_PENDING", ...; NULL for a value out of range. */
const char *p11e_cred_state_name(enum p11e_cred_state s);

/*
 * The state as users see it: "WAITING_PIN", "WAITING_SERVER" or
 * "WAITING_TOKEN" while c waits, else the state's name.
 */
const char *p11e_cred_display_state(const struct p11e_cred *c);

void p11e_cred_init(struct p11e_cred *c);

/* Frees the DER objects and wipes the record. */
void p11e_cred_clear(struct p11e_cred *c);

/* Replaces d with a copy of data (len bytes). */
enum p11e_err
p11e_der_set(struct p11e_der *d, const unsigned char *data, size_t len);

/*
 * Encodes c as the journal's JSON text (appended to out, no NUL).
 */
enum p11e_err
p11e_journal_encode(const struct p11e_cred *c, struct p11e_buf *out);

/*
 * Parses a journal text into c (initialised by the caller).  Strict:
 * unknown version, missing or mistyped members, bad base64, a state that
 * lacks what it needs (KEY_READY without SPKI, SUBMITTED without CSR,
 * ISSUED without certificate) all give P11E_ERR_JOURNAL_CORRUPT with a
 * sentence in detail.
 */
enum p11e_err p11e_journal_parse(const void *buf, size_t len,
    struct p11e_cred *c, char *detail, size_t dlen);

/*
 * Writes c to DIR/credentials/<name>.json atomically (creating the
 * credentials directory 0700).  c->updated is set to now.  Any failure
 * (ENOSPC, EIO) is returned and logged: the caller must then not perform
 * the side effect this record announces (R34).
 */
enum p11e_err p11e_journal_save(const char *dir, struct p11e_cred *c);

/* Reads DIR/credentials/<name>.json.  P11E_ERR_NOT_FOUND if absent. */
enum p11e_err p11e_journal_load(const char *dir, const char *name,
    struct p11e_cred *c, char *detail, size_t dlen);

/*
 * Calls cb for every record file in DIR/credentials, in name order,
 * with the parsed record or, for a damaged one, NULL and the error
 * sentence.  Returns the number of files.
 */
size_t p11e_journal_list(const char *dir,
    void (*cb)(void *data, const char *name, const struct p11e_cred *c,
	const char *problem),
    void *data);

/* What the scheduler needs of a record (p11e_journal_scan). */
struct p11e_cred_brief {
	char name[P11E_CRED_NAME_MAX + 1];
	bool damaged; /* unreadable: nothing below is set */
	enum p11e_cred_state state;
	enum p11e_cred_wait wait;
	time_t next_action, not_before, not_after, old_remove_at;
	long long renew_before;
	unsigned int notices;
	bool has_old; /* a replaced pair waits for removal */
	bool has_cert;
};

/*
 * Like p11e_journal_list() with the brief of each record, for the
 * scheduler: a record whose file is unchanged since the last scan (inode,
 * mtime, size) is not read again, and the briefs are kept in
 * DIR/schedule.idx so that a restarted agent reads no record that did
 * not change.  Returns the number of records.
 */
size_t p11e_journal_scan(const char *dir,
    void (*cb)(void *data, const struct p11e_cred_brief *b), void *data);

/* The fields of b into c (initialised): enough for p11e_cred_due(). */
void p11e_cred_from_brief(const struct p11e_cred_brief *b, struct p11e_cred *c);

/*
 * Removes DIR/credentials/<name>.json durably (the directory synced).
 * P11E_ERR_NOT_FOUND if absent.
 */
enum p11e_err p11e_journal_remove(const char *dir, const char *name);

/* A fresh record name: "c-" and 16 random hex digits. */
enum p11e_err p11e_journal_new_name(char *out, size_t outlen);

/* What resuming a record does next (tests the recovery decisions). */
enum p11e_cred_step {
	P11E_STEP_ADOPT_OR_GENERATE, /* KEY_PENDING */
	P11E_STEP_SUBMIT_NEW, /* KEY_READY: session, CSR, submit */
	P11E_STEP_RESUBMIT, /* SUBMITTED: same CSR bytes again */
	P11E_STEP_STORE, /* ISSUED: write to the token, verify */
	P11E_STEP_NONE, /* INSTALLED: nothing left */
	P11E_STEP_OPERATOR, /* REJECTED, NEEDS_OPERATOR, EXPIRED, REVOKED */
	P11E_STEP_RENEW, /* RENEW_*: the renewal continues (agent/renew.c) */
};

enum p11e_cred_step p11e_cred_next_step(const struct p11e_cred *c);

#endif /* P11E_JOURNAL_H */
