/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_EVP_H
#define P11E_EVP_H

/*
 * A token private key as an OpenSSL EVP_PKEY that signs on the token:
 * libp11 loaded on p11-kit-proxy, for the CSR (pkcs11/csr.c) and for TLS
 * client authentication.  Rules from DESIGN §3 ("libp11 next to p11-kit
 * in one process"):
 *  - the libp11 slot is chosen by the token's serial, manufacturer, model
 *    and label, never by slot id (the proxy numbers slots its own way);
 *  - no PKCS11_login (libp11 keeps a copy of the PIN): the login done by
 *    p11e_token_login() on the direct module is the application's, and
 *    the proxy is libp11-kit itself, so libp11's session shares it;
 *  - a UI_METHOD whose reader fails, so a key with
 *    CKA_ALWAYS_AUTHENTICATE fails its signature instead of prompting on
 *    a terminal.
 * Not thread-safe: use one object from one thread.
 */

#include <stddef.h>

#include <openssl/evp.h>

#include "common/err.h"
#include "pkcs11/p11.h"

/* The libp11 context, its slots and the key.  Opaque. */
struct p11e_evp_key;

/*
 * Loads libp11 on p11-kit-proxy, finds the slot of tok's token and the
 * private key whose CKA_ID is exactly id[0..idlen), and returns an object
 * holding them (free with p11e_evp_key_free()).  tok must be logged in
 * (private keys are invisible otherwise) and must stay logged in and open
 * while the key is used: closing tok's session ends the login.
 * P11E_ERR_KEY_NOT_FOUND when no such private key is visible,
 * P11E_ERR_ID_IN_USE when several share the id, P11E_ERR_TOKEN_NOT_FOUND /
 * P11E_ERR_TOKEN_AMBIGUOUS when the proxy does not show exactly one
 * token like tok's, P11E_ERR_CRYPTO / P11E_ERR_TOKEN when libp11 fails
 * (logged, and a detail set on tok's context).
 */
enum p11e_err p11e_token_evp_key(struct p11e_token *tok,
    const unsigned char *id, size_t idlen, struct p11e_evp_key **out);

/*
 * The private key (borrowed: valid until p11e_evp_key_free(); take a
 * reference with EVP_PKEY_up_ref() to hand it to an SSL_CTX, and free the
 * object only after that SSL_CTX).  Its signing operations call into the
 * token through libp11.
 */
EVP_PKEY *p11e_evp_key_pkey(struct p11e_evp_key *key);

/*
 * Drops the key, releases the slots (closing libp11's sessions, which
 * leaves the login of tok's own session alone), unloads and frees the
 * libp11 context.  NULL is a no-op.
 */
void p11e_evp_key_free(struct p11e_evp_key *key);

#endif /* P11E_EVP_H */
