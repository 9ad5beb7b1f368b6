/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <liboath/oath.h>
#include <openssl/rand.h>

#include "common/buf.h"
#include "common/log.h"
#include "server/seal.h"
#include "server/totp.h"

const struct p11e_totp_params p11e_totp_default_params = { 6, 30, 1,
	P11E_TOTP_SHA1 };

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_init_rc = OATH_OK;

static void
init_oath(void)
{
	oath_init_rc = oath_init();
}

static bool
digits_only(const struct p11e_secret *code, unsigned int digits)
{
	const unsigned char *p = p11e_secret_data(code);
	size_t i, n = p11e_secret_len(code);

	if (n != digits)
		return false;
	for (i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

enum p11e_err
p11e_totp_verify(const struct p11e_secret *secret,
    const struct p11e_totp_params *params, time_t now, int64_t last_used_step,
    const struct p11e_secret *code, int64_t *matched_step)
{
	uint64_t counter = 0;
	int pos = 0, rc, flags = 0;

	p11e_return_val_if_fail(secret && params && code && matched_step,
	    P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(params->digits >= 6 && params->digits <= 8 &&
		params->step > 0 && params->skew <= 2,
	    P11E_ERR_INVALID_PARAMETER);
	/* liboath takes the number of digits from the code's length: a
	 * 5- or 7-digit code would be checked as such.  Refuse first. */
	if (!digits_only(code, params->digits) || now < 0)
		return P11E_ERR_OTP_INVALID;
	pthread_once(&oath_once, init_oath);
	if (oath_init_rc != OATH_OK)
		return P11E_ERR_CRYPTO;
	if (params->alg == P11E_TOTP_SHA256)
		flags = OATH_TOTP_HMAC_SHA256;
	else if (params->alg == P11E_TOTP_SHA512)
		flags = OATH_TOTP_HMAC_SHA512;
	rc = oath_totp_validate4((const char *)p11e_secret_data(secret),
	    p11e_secret_len(secret), now, params->step, 0, params->skew, &pos,
	    &counter, flags, p11e_secret_str(code));
	if (rc < 0)
		return P11E_ERR_OTP_INVALID;
	/* rc is |pos|, a distance; the step itself is the counter */
	if ((int64_t)counter <= last_used_step)
		return P11E_ERR_OTP_REPLAYED;
	*matched_step = (int64_t)counter;
	return P11E_OK;
}

enum p11e_err
p11e_totp_secret_new(struct p11e_secret **secret)
{
	struct p11e_secret *s;
	unsigned char buf[P11E_TOTP_SECRET_LEN];

	*secret = NULL;
	if (RAND_bytes(buf, sizeof(buf)) != 1)
		return P11E_ERR_CRYPTO;
	s = p11e_secret_new_from(buf, sizeof(buf));
	p11e_wipe(buf, sizeof(buf));
	if (s == NULL)
		return P11E_ERR_NOMEM;
	*secret = s;
	return P11E_OK;
}

/* RFC 4648 base32 without padding (what authenticator apps take). */
static enum p11e_err
append_base32(struct p11e_secret *out, const unsigned char *in, size_t len)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	unsigned int acc = 0, bits = 0;
	enum p11e_err err;
	size_t i;
	char c;

	for (i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			c = alphabet[(acc >> (bits - 5)) & 31];
			if ((err = p11e_secret_append(out, &c, 1)) != P11E_OK)
				return err;
			bits -= 5;
		}
	}
	if (bits > 0) {
		c = alphabet[(acc << (5 - bits)) & 31];
		if ((err = p11e_secret_append(out, &c, 1)) != P11E_OK)
			return err;
	}
	return P11E_OK;
}

static enum p11e_err
append_pct(struct p11e_secret *out, const char *s)
{
	enum p11e_err err = P11E_OK;
	char enc[4];

	for (; *s != '\0' && err == P11E_OK; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			err = p11e_secret_append(out, s, 1);
		} else {
			snprintf(enc, sizeof(enc), "%%%02X", c);
			err = p11e_secret_append(out, enc, 3);
		}
	}
	return err;
}

enum p11e_err
p11e_totp_uri(const struct p11e_secret *secret,
    const struct p11e_totp_params *params, const char *issuer,
    const char *account, struct p11e_secret **uri)
{
	static const char *algs[] = { "SHA1", "SHA256", "SHA512" };
	struct p11e_secret *u;
	enum p11e_err err;
	char tail[128];

	*uri = NULL;
	if ((u = p11e_secret_new(P11E_SECRET_MAX)) == NULL)
		return P11E_ERR_NOMEM;
	snprintf(tail, sizeof(tail), "&digits=%u&period=%u&algorithm=%s",
	    params->digits, params->step, algs[params->alg]);
	if ((err = p11e_secret_append(u, "otpauth://totp/", 15)) != P11E_OK ||
	    (err = append_pct(u, issuer)) != P11E_OK ||
	    (err = p11e_secret_append(u, ":", 1)) != P11E_OK ||
	    (err = append_pct(u, account)) != P11E_OK ||
	    (err = p11e_secret_append(u, "?secret=", 8)) != P11E_OK ||
	    (err = append_base32(u, p11e_secret_data(secret),
		 p11e_secret_len(secret))) != P11E_OK ||
	    (err = p11e_secret_append(u, "&issuer=", 8)) != P11E_OK ||
	    (err = append_pct(u, issuer)) != P11E_OK ||
	    (err = p11e_secret_append(u, tail, strlen(tail))) != P11E_OK) {
		p11e_secret_free(u);
		return err;
	}
	*uri = u;
	return P11E_OK;
}

enum p11e_err
p11e_totp_soft_new(struct p11e_secret **secret, char *serial)
{
	unsigned char r[4];
	enum p11e_err err;

	*secret = NULL;
	if (RAND_bytes(r, sizeof(r)) != 1)
		return P11E_ERR_CRYPTO;
	if ((err = p11e_totp_secret_new(secret)) != P11E_OK)
		return err;
	snprintf(serial, P11E_TOTP_SERIAL_MAX, "soft-%02x%02x%02x%02x", r[0],
	    r[1], r[2], r[3]);
	return P11E_OK;
}

enum p11e_err
p11e_totp_assign(struct p11e_db *db, const struct p11e_secret *data_key,
    int64_t user, const char *serial, const struct p11e_secret *secret,
    const struct p11e_totp_params *params, time_t now)
{
	struct p11e_buf sealed;
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	char aad[64];

	p11e_buf_init(&sealed, 4096);
	snprintf(aad, sizeof(aad), "otp:%lld", (long long)user);
	if ((err = p11e_seal(data_key, aad, secret, &sealed)) != P11E_OK ||
	    (err = p11e_db_prepare(db,
		 "INSERT INTO otp_tokens (user, serial, secret, digits, step,"
		 " created) VALUES (?, ?, ?, ?, ?, ?)"
		 " ON CONFLICT (user) DO UPDATE SET serial = excluded.serial,"
		 " secret = excluded.secret, digits = excluded.digits,"
		 " step = excluded.step, last_used_step = -1,"
		 " created = excluded.created",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, user);
	sqlite3_bind_text(st, 2, serial, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, sealed.data, (int)sealed.len, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, (int)params->digits);
	sqlite3_bind_int(st, 5, (int)params->step);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
	err = p11e_db_step_done(db, st);
out:
	p11e_buf_clear(&sealed);
	return err;
}

enum p11e_err
p11e_totp_check(struct p11e_db *db, const struct p11e_secret *data_key,
    int64_t user, const struct p11e_secret *code, unsigned int skew, time_t now,
    enum p11e_err *verdict)
{
	struct p11e_totp_params params = p11e_totp_default_params;
	struct p11e_secret *secret = NULL;
	int64_t last, matched = -1, token;
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	char aad[64];

	*verdict = P11E_ERR_OTP_INVALID;
	if ((err = p11e_db_prepare(db,
		 "SELECT id, secret, digits, step, last_used_step"
		 " FROM otp_tokens WHERE user = ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, user);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return P11E_ERR_NOT_FOUND;
	}
	snprintf(aad, sizeof(aad), "otp:%lld", (long long)user);
	token = sqlite3_column_int64(st, 0);
	params.digits = (unsigned int)sqlite3_column_int(st, 2);
	params.step = (unsigned int)sqlite3_column_int(st, 3);
	params.skew = skew;
	last = sqlite3_column_int64(st, 4);
	err = p11e_unseal(data_key, aad, sqlite3_column_blob(st, 1),
	    (size_t)sqlite3_column_bytes(st, 1), &secret);
	sqlite3_finalize(st);
	if (err != P11E_OK)
		return err;
	*verdict = p11e_totp_verify(secret, &params, now, last, code, &matched);
	p11e_secret_free(secret);
	if (*verdict != P11E_OK)
		return P11E_OK;
	if ((err = p11e_db_prepare(db,
		 "UPDATE otp_tokens SET last_used_step = ?"
		 " WHERE id = ? AND last_used_step < ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, matched);
	sqlite3_bind_int64(st, 2, token);
	sqlite3_bind_int64(st, 3, matched);
	return p11e_db_step_done(db, st);
}

enum p11e_err
p11e_totp_user_uri(const struct p11e_secret *secret,
    const struct p11e_totp_params *params, const char *contract_id,
    const char *user_id, struct p11e_secret **uri)
{
	char account[64];

	snprintf(account, sizeof(account), "%s %s", contract_id, user_id);
	return p11e_totp_uri(secret, params, "p11enroll", account, uri);
}
