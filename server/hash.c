/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include <argon2.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "server/hash.h"

#define SALT_LEN 16
#define HASH_LEN 32

const struct p11e_hash_params p11e_hash_default_params = { 2, 19456, 1 };

static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy[P11E_HASH_ENCODED_MAX];

enum p11e_err
p11e_hash_secret(const struct p11e_secret *secret,
    const struct p11e_hash_params *params, char encoded[P11E_HASH_ENCODED_MAX])
{
	unsigned char salt[SALT_LEN];
	int rc;

	encoded[0] = '\0';
	p11e_return_val_if_fail(secret != NULL, P11E_ERR_INVALID_PARAMETER);
	if (params == NULL)
		params = &p11e_hash_default_params;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return P11E_ERR_CRYPTO;
	rc = argon2id_hash_encoded(params->t_cost, params->m_cost_kib,
	    params->parallelism, p11e_secret_data(secret),
	    p11e_secret_len(secret), salt, sizeof(salt), HASH_LEN, encoded,
	    P11E_HASH_ENCODED_MAX);
	if (rc != ARGON2_OK) {
		p11e_error("argon2id: %s", argon2_error_message(rc));
		encoded[0] = '\0';
		return rc == ARGON2_MEMORY_ALLOCATION_ERROR ? P11E_ERR_NOMEM
							    : P11E_ERR_CRYPTO;
	}
	return P11E_OK;
}

static void
make_dummy(void)
{
	unsigned char junk[32];
	struct p11e_secret *s;

	if (RAND_bytes(junk, sizeof(junk)) != 1)
		memset(junk, 0x5a, sizeof(junk));
	s = p11e_secret_new_from(junk, sizeof(junk));
	if (s != NULL)
		(void)p11e_hash_secret(s, NULL, dummy);
	p11e_secret_free(s);
}

enum p11e_err
p11e_hash_verify(const char *encoded, const struct p11e_secret *secret)
{
	bool unknown = encoded == NULL;
	int rc;

	p11e_return_val_if_fail(secret != NULL, P11E_ERR_INVALID_PARAMETER);
	if (unknown) {
		pthread_once(&dummy_once, make_dummy);
		encoded = dummy;
	}
	if (strncmp(encoded, "$argon2id$", 10) != 0)
		return unknown ? P11E_ERR_AUTH_FAILED : P11E_ERR_PARSE;
	rc = argon2id_verify(
	    encoded, p11e_secret_data(secret), p11e_secret_len(secret));
	if (unknown)
		return P11E_ERR_AUTH_FAILED;
	switch (rc) {
	case ARGON2_OK:
		return P11E_OK;
	case ARGON2_VERIFY_MISMATCH:
		return P11E_ERR_AUTH_FAILED;
	case ARGON2_MEMORY_ALLOCATION_ERROR:
		return P11E_ERR_NOMEM;
	default:
		p11e_error("argon2id verify: %s", argon2_error_message(rc));
		return P11E_ERR_PARSE;
	}
}

/* SHA-256 fetched once: EVP_sha256() makes OpenSSL 3 fetch it per use. */
static EVP_MD *sha256_md;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void
p11e_hash_sha256(const void *data, size_t len, unsigned char md[32])
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	unsigned int mdlen;

	pthread_once(&once, sha256_fetch);
	EVP_Digest(data, len, md, &mdlen,
	    sha256_md != NULL ? sha256_md : EVP_sha256(), NULL);
}

enum p11e_err
p11e_hash_token_new(struct p11e_secret **token, unsigned char md[32])
{
	unsigned char raw[P11E_HASH_TOKEN_BYTES];
	unsigned char b64[4 * P11E_HASH_TOKEN_BYTES / 3 + 4];
	int n, i, j;

	*token = NULL;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return P11E_ERR_CRYPTO;
	n = EVP_EncodeBlock(b64, raw, sizeof(raw));
	p11e_wipe(raw, sizeof(raw));
	for (i = 0, j = 0; i < n; i++) {
		if (b64[i] == '=')
			continue;
		b64[j++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	}
	*token = p11e_secret_new_from(b64, (size_t)j);
	p11e_hash_sha256(b64, (size_t)j, md);
	p11e_wipe(b64, sizeof(b64));
	return *token ? P11E_OK : P11E_ERR_NOMEM;
}
