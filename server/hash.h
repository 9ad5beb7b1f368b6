/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_HASH_H
#define P11E_HASH_H

/*
 * Password and PIN hashing: Argon2id (libargon2) with a random 16-byte
 * salt; the parameters are part of the encoded string
 * ("$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH"), so they can be raised
 * later without breaking stored hashes (R07).  Throttle before calling
 * (R06): a verification costs about 19 MiB and tens of milliseconds.
 * Codes and tokens, random and long, are stored as plain SHA-256.
 */

#include <stddef.h>

#include "common/err.h"
#include "common/secret.h"

/* Cost parameters of new hashes (OWASP 2023: 19 MiB, t = 2, p = 1). */
struct p11e_hash_params {
	unsigned int t_cost;
	unsigned int m_cost_kib;
	unsigned int parallelism;
};

/* The defaults above. */
extern const struct p11e_hash_params p11e_hash_default_params;

/* The longest encoded hash (bytes, with its NUL). */
#define P11E_HASH_ENCODED_MAX 128

/*
 * Hashes secret (1..P11E_SECRET_MAX bytes) into encoded (NUL-terminated,
 * P11E_HASH_ENCODED_MAX bytes) with params (NULL: the defaults).
 * P11E_ERR_CRYPTO when libargon2 fails.
 */
enum p11e_err p11e_hash_secret(const struct p11e_secret *secret,
    const struct p11e_hash_params *params, char encoded[P11E_HASH_ENCODED_MAX]);

/*
 * Verifies secret against encoded.  P11E_OK when it matches,
 * P11E_ERR_AUTH_FAILED when it does not or when encoded is NULL (an
 * unknown user): then a dummy hash of the default cost is verified
 * instead, so the time spent does not say whether the user exists (R05).
 * P11E_ERR_PARSE for an encoded string that is not Argon2id.
 */
enum p11e_err
p11e_hash_verify(const char *encoded, const struct p11e_secret *secret);

/* The SHA-256 of data (the digest is fetched from OpenSSL once). */
void p11e_hash_sha256(const void *data, size_t len, unsigned char md[32]);

/* The length of a token of p11e_hash_token_new(). */
#define P11E_HASH_TOKEN_BYTES 32

/*
 * A new bearer token: P11E_HASH_TOKEN_BYTES random bytes in base64url
 * without padding into *token (free with p11e_secret_free), and the
 * SHA-256 of that text into md, the only form in which it is stored.
 * P11E_ERR_CRYPTO when the random generator fails, P11E_ERR_NOMEM.
 */
enum p11e_err
p11e_hash_token_new(struct p11e_secret **token, unsigned char md[32]);

#endif /* P11E_HASH_H */
