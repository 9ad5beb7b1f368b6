/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_TOKEN_PRIVATE_H
#define P11E_TOKEN_PRIVATE_H

/*
 * Shared by the files of pkcs11/ only: the structures behind the opaque
 * types of p11.h and helpers over p11-kit's function lists.
 */

#include <stdarg.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include "pkcs11/p11.h"

struct p11e_p11 {
	CK_FUNCTION_LIST *
	    *modules; /* from p11_kit_modules_load_and_initialize */
	char detail[2048];
};

struct p11e_token {
	struct p11e_p11 *p11; /* not owned */
	CK_FUNCTION_LIST *module; /* not owned */
	CK_SLOT_ID slot; /* in module's numbering: never outside */
	CK_SESSION_HANDLE session;
	P11KitUri *uri; /* what the caller asked for */
	struct p11e_token_info info;
	bool logged_in;
};

/*
 * Puts ti's token fields into uri, with NUL padding turned into blanks
 * (tpm2-pkcs11 pads its model with NULs).
 */
void p11e_uri_set_token(P11KitUri *uri, const CK_TOKEN_INFO *ti);

/* Sets the context's detail (printf-like); replaces the previous one. */
void p11e_p11_set_detail(struct p11e_p11 *p11, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends to the context's detail. */
void p11e_p11_add_detail(struct p11e_p11 *p11, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Symbolic name of a CK_RV ("CKR_PIN_INCORRECT"), or "CKR_0x...". */
const char *p11e_ckr_name(CK_RV rv);

/*
 * Translates a CK_RV from function fn into our error, logs
 * "fn: CKR_NAME (0x..)" and sets the detail.  The one place where CK_RVs
 * become enum p11e_err.
 */
enum p11e_err p11e_ckr_err(struct p11e_token *tok, const char *fn, CK_RV rv);

/*
 * Finds the objects of class cls (CKO_*) with CKA_ID id on tok; up to max
 * handles into out, the number found in *n.
 */
enum p11e_err p11e_tok_find(struct p11e_token *tok, CK_OBJECT_CLASS cls,
    const unsigned char *id, size_t idlen, CK_OBJECT_HANDLE *out, CK_ULONG max,
    CK_ULONG *n);

/*
 * Reads one attribute of variable length into buf (allocated, caller
 * frees).  A value longer than max is refused (P11E_ERR_TOO_LARGE): a
 * module's ulValueLen is not trusted.
 */
enum p11e_err p11e_tok_attr(struct p11e_token *tok, CK_OBJECT_HANDLE obj,
    CK_ATTRIBUTE_TYPE type, size_t max, struct p11e_buf *out);

/*
 * The DER SubjectPublicKeyInfo of the public key object with CKA_ID id,
 * appended to spki.
 */
enum p11e_err p11e_tok_spki(struct p11e_token *tok, const unsigned char *id,
    size_t idlen, struct p11e_buf *spki);

/*
 * The p11enroll name of the key object's type ("ec-p256", "rsa-2048"),
 * "ec" or "rsa" for other sizes, "" for other keys.  Static.
 */
const char *p11e_tok_key_type(struct p11e_token *tok, CK_OBJECT_HANDLE h);

/*
 * Signs the digest dgst (of md_nid: NID_sha256, NID_sha384, NID_sha512)
 * with the private key priv through tok's session, on the token (C_Sign:
 * CKM_ECDSA, or CKM_RSA_PKCS over the DigestInfo); key_type is
 * EVP_PKEY_EC or EVP_PKEY_RSA.  The signature as X.509 carries it (DER
 * ECDSA-Sig-Value, or the RSA block) is appended to sig (pkcs11/sign.c).
 */
enum p11e_err p11e_tok_sign_digest(struct p11e_token *tok,
    CK_OBJECT_HANDLE priv, int key_type, int md_nid, const unsigned char *dgst,
    size_t dlen, struct p11e_buf *sig);

/*
 * Drains OpenSSL's error queue into the log, one line per entry, each
 * prefixed with what (the operation that failed).  The one place where
 * OpenSSL errors are reported (pkcs11/ossl.c).
 */
void p11e_log_openssl(const char *what);

#endif /* P11E_TOKEN_PRIVATE_H */
