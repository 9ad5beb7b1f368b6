/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_P11_H
#define P11E_P11_H

/*
 * The token layer: the only part of p11enroll that touches PKCS#11.  It
 * speaks to the modules registered with p11-kit (never to a module named
 * by a peer), selects tokens by RFC 7512 URI, logs in through p11-kit,
 * generates keys with C_GenerateKeyPair, builds CSRs signed on the token
 * (libp11's EVP_PKEY on p11-kit-proxy), and stores certificates.
 *
 * Nothing here includes pkcs11.h, p11-kit or OpenSSL headers: the verbs
 * take and give DER bytes, so this layer could move into a helper process.
 *
 * Errors: every function returns an enum p11e_err; a human readable
 * detail for the last failure (what was found, which PKCS#11 call
 * failed, how many PIN tries are left) is kept in the context, see
 * p11e_p11_detail().
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/secret.h"

/* CKA_ID lengths: what we generate, and what we accept from a token. */
#define P11E_ID_RANDOM_LEN 20
#define P11E_ID_MIN 1
#define P11E_ID_MAX 64

/* Key types p11enroll generates. */
enum p11e_key_type {
	P11E_KEY_EC_P256 = 0, /* default */
	P11E_KEY_EC_P384,
	P11E_KEY_RSA_2048,
	P11E_KEY_RSA_3072,
	P11E_KEY_RSA_4096,
};
#define P11E_KEY_TYPE_COUNT 5

/* "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096". */
const char *p11e_key_type_name(enum p11e_key_type type);

/* Parses a name as above; P11E_ERR_PARSE for anything else. */
enum p11e_err p11e_key_type_parse(const char *name, enum p11e_key_type *type);

/* The loaded modules.  Opaque. */
struct p11e_p11;

/* One token, opened with a read-write session.  Opaque. */
struct p11e_token;

/* What a token says about itself (strings are NUL-terminated, trimmed). */
struct p11e_token_info {
	char uri
	    [1024]; /* pkcs11:model=...;manufacturer=...;serial=...;token=... */
	char module[128]; /* p11-kit's name of the module ("softhsm2") */
	char library[256]; /* CK_INFO library description */
	char label[33];
	char manufacturer[33];
	char model[17];
	char serial[17];
	bool present; /* false: an empty slot (then only module set) */
	bool login_required;
	bool protected_auth; /* PIN pad */
	bool write_protected;
	bool pin_count_low;
	bool pin_final_try;
	bool pin_locked;
	bool pin_to_be_changed;
	bool initialized;
	/* key types the token can generate and sign with (by enum index) */
	bool keygen[P11E_KEY_TYPE_COUNT];
	/* RSA keys can sign TLS 1.3 handshakes (CKM_RSA_X_509 or PSS) */
	bool rsa_tls13;
};

/*
 * Loads and initialises the modules registered with p11-kit.  Free with
 * p11e_p11_free().  P11E_ERR_TOKEN when p11-kit cannot load them.
 */
enum p11e_err p11e_p11_new(struct p11e_p11 **out);

/* Finalises the modules; NULL is a no-op.  Close every token first. */
void p11e_p11_free(struct p11e_p11 *p11);

/*
 * The detail of the last failure on this context or any of its tokens:
 * one or more sentences for people, "" when there is none.  Valid until
 * the next call.
 */
const char *p11e_p11_detail(const struct p11e_p11 *p11);

/*
 * Calls cb for every slot of every module whose token matches uri (NULL or
 * "pkcs11:" for all; module-name, library-*, token, manufacturer, model and
 * serial attributes are honoured), including empty slots when uri is NULL.
 * Returns the number of calls in *count.  P11E_ERR_PARSE for a bad URI.
 */
enum p11e_err p11e_p11_tokens(struct p11e_p11 *p11, const char *uri,
    void (*cb)(void *data, const struct p11e_token_info *info), void *data,
    size_t *count);

/*
 * Opens the one token that uri matches, with a read-write session.
 * P11E_ERR_TOKEN_NOT_FOUND (detail lists the tokens present) or
 * P11E_ERR_TOKEN_AMBIGUOUS (detail lists the matches) otherwise.  A URI
 * with pin-value is refused (P11E_ERR_INVALID_PARAMETER): PINs do not go
 * into URIs; pin-source=file:PATH is honoured by p11e_token_login().
 */
enum p11e_err
p11e_token_open(struct p11e_p11 *p11, const char *uri, struct p11e_token **out);

/* Logs out if needed and closes the session; NULL is a no-op. */
void p11e_token_close(struct p11e_token *tok);

/* Fresh token flags (PIN counters change with every login). */
enum p11e_err
p11e_token_info(struct p11e_token *tok, struct p11e_token_info *info);

/*
 * Logs the user in through p11-kit.  The PIN comes from pin; when pin is
 * NULL, from the URI's pin-source (file:PATH, first line), else from the
 * PIN pad when the token has one (C_Login with no PIN), else
 * P11E_ERR_PIN_REQUIRED.  The PIN flags are read first:
 * P11E_ERR_PIN_LOCKED and P11E_ERR_PIN_EXPIRED stop before C_Login;
 * P11E_ERR_PIN_FINAL_TRY unless allow_final_try.  A wrong PIN gives
 * P11E_ERR_PIN_INCORRECT and is never retried.  Already logged in counts
 * as success.  The login lasts until p11e_token_logout() or
 * p11e_token_close(): open, log in, do one operation, close.
 */
enum p11e_err p11e_token_login(struct p11e_token *tok,
    const struct p11e_secret *pin, bool allow_final_try);

/* C_Logout (ignoring "not logged in"). */
void p11e_token_logout(struct p11e_token *tok);

/*
 * Fills id[0..len) with random bytes that no object on the token uses as
 * CKA_ID (len P11E_ID_MIN..P11E_ID_MAX; P11E_ID_RANDOM_LEN is usual).
 * Needs a login to see private objects.
 */
enum p11e_err
p11e_token_new_id(struct p11e_token *tok, unsigned char *id, size_t len);

/*
 * Generates a key pair of type on the token with C_GenerateKeyPair: the
 * private key token, private, sensitive, not extractable, sign only; the
 * public key a token object too; both with CKA_ID id and CKA_LABEL label.
 * Refuses an id already used (P11E_ERR_ID_IN_USE) and a type the token's
 * mechanism list lacks (P11E_ERR_MECHANISM_UNSUPPORTED).  Afterwards
 * checks CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE and deletes a key
 * that fails (P11E_ERR_KEY_UNPROTECTED).  Appends the DER
 * SubjectPublicKeyInfo to spki.  Needs a login.
 */
enum p11e_err p11e_token_keygen(struct p11e_token *tok, enum p11e_key_type type,
    const unsigned char *id, size_t idlen, const char *label,
    struct p11e_buf *spki);

/*
 * Adopts the key pair with CKA_ID id already on the token (after a crash
 * between C_GenerateKeyPair and the journal write): checks it is
 * protected as p11e_token_keygen() does, and appends its DER
 * SubjectPublicKeyInfo to spki (from the public key object).
 * P11E_ERR_KEY_NOT_FOUND if there is no such private key.
 */
enum p11e_err p11e_token_key_adopt(struct p11e_token *tok,
    const unsigned char *id, size_t idlen, struct p11e_buf *spki);

/* What a CSR should say. */
struct p11e_csr_template {
	/*
	 * Either a subject as "/CN=Taro/O=Example" (OpenSSL's oneline form;
	 * UTF-8 values) ...
	 */
	const char *subject;
	/*
	 * ... or a certificate (DER) whose raw Subject and subjectAltName are
	 * copied byte for byte (re-enrollment).
	 */
	const unsigned char *copy_from;
	size_t copy_from_len;
};

/*
 * Builds a PKCS#10 CSR for the key pair id, signed on the token through
 * libp11's EVP_PKEY (libp11 on p11-kit-proxy; the login is ours), and
 * verifies its signature against expect_spki (the SPKI journaled at key
 * generation) before appending the DER CSR to csr.
 */
enum p11e_err p11e_token_csr(struct p11e_token *tok, const unsigned char *id,
    size_t idlen, const unsigned char *expect_spki, size_t expect_spki_len,
    const struct p11e_csr_template *tmpl, struct p11e_buf *csr);

/*
 * Stores a certificate (DER) for the key pair id, with CKA_SUBJECT,
 * CKA_ISSUER, CKA_SERIAL_NUMBER and label, after checking that its public
 * key is the token key's (P11E_ERR_CERT_KEY_MISMATCH, nothing stored).
 * Storing the same certificate again is a no-op.
 */
enum p11e_err
p11e_token_store_cert(struct p11e_token *tok, const unsigned char *id,
    size_t idlen, const unsigned char *der, size_t len, const char *label);

/*
 * Stores a CA certificate (DER) with CKA_CERTIFICATE_CATEGORY authority,
 * unless the token already holds it (same DER): *added tells which.
 */
enum p11e_err p11e_token_store_ca(
    struct p11e_token *tok, const unsigned char *der, size_t len, bool *added);

/*
 * Proves that the certificate stored with id and the private key id
 * belong together: signs fresh random data on the token and verifies it
 * with the certificate's public key.
 */
enum p11e_err p11e_token_verify_pair(
    struct p11e_token *tok, const unsigned char *id, size_t idlen);

/*
 * Deletes the private key, public key and certificate with CKA_ID id.
 * *deleted counts the objects removed; P11E_ERR_KEY_NOT_FOUND when there
 * were none.
 */
enum p11e_err p11e_token_delete(struct p11e_token *tok, const unsigned char *id,
    size_t idlen, unsigned int *deleted);

/* One object, as listed by p11e_token_objects(). */
struct p11e_object_info {
	const char *kind; /* "private-key", "public-key", "certificate" */
	char uri[1024]; /* the object's RFC 7512 URI (token + id + type) */
	unsigned char id[P11E_ID_MAX];
	size_t idlen;
	char label[128];
	const char *key_type; /* "ec-p256"..., "ec", "rsa" or "" */
	bool authority; /* certificate category authority */
	/* certificates only (oneline forms, UTC "YYYY-MM-DD HH:MM:SS") */
	char subject[256];
	char issuer[256];
	char serial[80]; /* hex */
	char not_after[32];
	const unsigned char *der; /* certificate DER (valid during cb) */
	size_t der_len;
};

/*
 * Calls cb for every key and certificate object visible on the token
 * (private keys only after p11e_token_login()).
 */
enum p11e_err p11e_token_objects(struct p11e_token *tok,
    void (*cb)(void *data, const struct p11e_object_info *obj), void *data);

#endif /* P11E_P11_H */
