/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include <argon2.h>
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
