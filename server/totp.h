/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_TOTP_H
#define P11E_TOTP_H

/*
 * TOTP (RFC 6238) verification with liboath, and what an operator needs to
 * hand a secret out (otpauth:// URI).  The caller keeps each token's
 * last_used_step and stores the step this returns in the SAME
 * transaction as the authentication decision (R01, R02):
 *
 *   BEGIN IMMEDIATE; read secret + last_used_step;
 *   p11e_totp_verify(...) == P11E_OK -> UPDATE otp_tokens SET
 *   last_used_step = matched; ...; COMMIT
 *
 * so of two concurrent submissions of one code exactly one wins.
 */

#include <stdint.h>
#include <time.h>

#include "common/err.h"
#include "common/secret.h"
#include "server/db.h"

enum p11e_totp_alg {
	P11E_TOTP_SHA1 = 0, /* hardware tokens, authenticator apps */
	P11E_TOTP_SHA256,
	P11E_TOTP_SHA512,
};

struct p11e_totp_params {
	unsigned int digits; /* 6..8 */
	unsigned int step; /* seconds: 30 or 60 */
	unsigned int skew; /* steps accepted on either side: 0 or 1 */
	enum p11e_totp_alg alg;
};

/* 6 digits, 30 s, +-1 step, SHA-1. */
extern const struct p11e_totp_params p11e_totp_default_params;

/* Length of generated secrets (bytes; RFC 4226 recommends 160 bits). */
#define P11E_TOTP_SECRET_LEN 20

/*
 * Verifies code (exactly params->digits ASCII digits: anything else,
 * including full-width digits and spaces, is P11E_ERR_OTP_INVALID without
 * any computation) against secret at time now: the code must be the one
 * of a step T-skew..T+skew, T = floor(now / step).  A match at a step
 * <= last_used_step (-1 for a token never used) is P11E_ERR_OTP_REPLAYED.
 * On P11E_OK, *matched_step is the step to store as last_used_step; it is
 * left alone otherwise.  The matched step comes from liboath's counter
 * out-parameter, never from its return value (a distance).
 */
enum p11e_err p11e_totp_verify(const struct p11e_secret *secret,
    const struct p11e_totp_params *params, time_t now, int64_t last_used_step,
    const struct p11e_secret *code, int64_t *matched_step);

/*
 * Generates a new secret (P11E_TOTP_SECRET_LEN random bytes).
 */
enum p11e_err p11e_totp_secret_new(struct p11e_secret **secret);

/*
 * The otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=...&digits=
 * &period=&algorithm= URI for an authenticator app, as a new secret (it
 * holds the key).  issuer and account are percent-encoded.
 */
enum p11e_err p11e_totp_uri(const struct p11e_secret *secret,
    const struct p11e_totp_params *params, const char *issuer,
    const char *account, struct p11e_secret **uri);

/* Longest serial of a token (PSKC device serial or generated). */
#define P11E_TOTP_SERIAL_MAX 40

/*
 * A new software token: a new secret (P11E_TOTP_SECRET_LEN random bytes)
 * and its serial "soft-" + 8 random hex digits into serial (at least
 * P11E_TOTP_SERIAL_MAX bytes).
 */
enum p11e_err p11e_totp_soft_new(struct p11e_secret **secret, char *serial);

/*
 * The OTP-token assignment (the seed's ワンタイムパスワード登録), shared by
 * `p11enroll-ra otp assign` and the admin API: inside the caller's open
 * transaction on db, stores secret sealed with data_key (bound to
 * "otp:ROWID") as the token of the user with rowid user, with serial,
 * params->digits and params->step, replacing the user's earlier token
 * (the old secret stops working, last_used_step starts again).  The
 * caller audits and commits.
 */
enum p11e_err
p11e_totp_assign(struct p11e_db *db, const struct p11e_secret *data_key,
    int64_t user, const char *serial, const struct p11e_secret *secret,
    const struct p11e_totp_params *params, time_t now);

/*
 * The OTP check of a login or of `p11enroll-ra otp check`, inside the
 * caller's open transaction on db: code against the token of the user
 * with rowid user (its secret unsealed with data_key, its digits and
 * step, skew steps either way) at now.  *verdict is what
 * p11e_totp_verify() said; on P11E_OK the matched step is stored as the
 * token's last_used_step, so the code cannot be used again.  Returns
 * P11E_OK when the check was made, P11E_ERR_NOT_FOUND when the user's
 * token cannot be read (there is none), else the error of the store or
 * of unsealing.  The caller audits and commits.
 */
enum p11e_err
p11e_totp_check(struct p11e_db *db, const struct p11e_secret *data_key,
    int64_t user, const struct p11e_secret *code, unsigned int skew, time_t now,
    enum p11e_err *verdict);

/*
 * The otpauth:// URI of a user's token for an authenticator app: issuer
 * "p11enroll", account "CONTRACT_ID USER_ID" (as p11e_totp_uri).
 */
enum p11e_err p11e_totp_user_uri(const struct p11e_secret *secret,
    const struct p11e_totp_params *params, const char *contract_id,
    const char *user_id, struct p11e_secret **uri);

#endif /* P11E_TOTP_H */
