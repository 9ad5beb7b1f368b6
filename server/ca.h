/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_CA_H
#define P11E_CA_H

/*
 * The issuing CA of the RA: its certificate and signing key (a PEM file,
 * or a key on a PKCS#11 token through pkcs11/), certificate issuance
 * from a checked CSR with the Subject and extensions the RA decides
 * (never copied from the CSR, R18), PKCS#7 certs-only encoding for EST,
 * and the CRL.  OpenSSL 3, no ENGINE, no deprecated API.
 *
 * Not thread-safe: one struct p11e_ca per thread, or a lock around it (a
 * token key in particular goes through one PKCS#11 session).
 */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/err.h"

/* Key types a CSR may carry (a mask of these is the key policy). */
enum p11e_ca_key {
	P11E_CA_KEY_EC_P256 = 1 << 0,
	P11E_CA_KEY_EC_P384 = 1 << 1,
	P11E_CA_KEY_RSA_2048 = 1 << 2,
	P11E_CA_KEY_RSA_3072 = 1 << 3,
	P11E_CA_KEY_RSA_4096 = 1 << 4,
};
#define P11E_CA_KEY_ALL 0x1f

/*
 * Parses a key-types list ("ec-p256,ec-p384,rsa-2048" - the names of
 * pkcs11/p11.h, separated by commas or spaces) into a mask.
 * P11E_ERR_PARSE names the word it does not know in detail.
 */
enum p11e_err p11e_ca_key_types_parse(
    const char *list, unsigned int *mask, char *detail, size_t detail_len);

struct p11e_ca;

/*
 * Loads the CA certificate (PEM) and its key: from key_path (PEM, must
 * not be readable by others: P11E_ERR_UNSAFE_PATH) or, when key_uri is
 * set, from the token it names (a PKCS#11 URI with the key's id=, and
 * pin-source=file:PATH for the PIN; logged in for as long as the CA is
 * loaded).  Checks that the key belongs to the certificate
 * (P11E_ERR_CERT_KEY_MISMATCH).  The certificate file may go on with
 * the chain of an intermediate issuing CA (each certificate issued by
 * the next, up to the root): p11e_ca_chain() then holds them.  Free
 * with p11e_ca_free().
 */
enum p11e_err p11e_ca_load(const char *cert_path, const char *key_path,
    const char *key_uri, struct p11e_ca **out);

/*
 * Makes a CA object from a certificate and a key held by the caller
 * (references are taken).  For init and tests.
 */
enum p11e_err p11e_ca_from(X509 *cert, EVP_PKEY *key, struct p11e_ca **out);

/* Releases everything (logs out of the token); NULL is a no-op. */
void p11e_ca_free(struct p11e_ca *ca);

/* The CA certificate (borrowed). */
X509 *p11e_ca_cert(const struct p11e_ca *ca);

/*
 * The certificates after the CA's in its file: the chain of an
 * intermediate issuing CA up to its root (borrowed; empty, never NULL,
 * for a root issuing CA).
 */
STACK_OF(X509) * p11e_ca_chain(const struct p11e_ca *ca);

/*
 * What the RA decided a certificate says: the subject (UTF-8 values) and
 * an optional SAN, both from the database.
 */
struct p11e_ca_profile {
	const char *common_name; /* required */
	const char *organization; /* may be NULL */
	const char *san_uri; /* may be NULL: no SAN */
	long validity; /* seconds from notBefore; 0: 1 year + 1 day */
	long backdate; /* seconds before now; -1: 5 minutes */
	/* may be NULL; the subject is O, OU, CN in this order */
	const char *organizational_unit;
};

/* The defaults: 366 days and 300 seconds. */
#define P11E_CA_DEFAULT_VALIDITY (366L * 86400L)
#define P11E_CA_DEFAULT_BACKDATE 300L

/*
 * Parses a DER CSR (exactly len bytes: trailing bytes are refused) and
 * checks it, in this order:
 *  - P11E_ERR_CSR_INVALID: not a PKCS#10 request, or its signature does
 *    not verify with its own key (proof of possession);
 *  - P11E_ERR_KEY_POLICY: a key outside key_types (RSA also needs
 *    e = 65537);
 *  - P11E_ERR_CSR_EXTENSIONS: it asks for a subject other than profile's
 *    (an empty subject is fine) or for extensions other than what would
 *    be issued: basicConstraints only CA:FALSE, keyUsage only
 *    digitalSignature, extendedKeyUsage only clientAuth,
 *    subjectAltName only exactly the profile's, subjectKeyIdentifier;
 *    anything else is refused.
 * A detail for people goes to detail.  On success *req (free with
 * X509_REQ_free) and *key_type ("ec-p256", "rsa-3072"... static).
 * For an EC P-256/P-384 key in its usual encoding signed with ECDSA,
 * *req is rebuilt from the checked parts (subject, key as sent,
 * attributes; no signature) without OpenSSL's d2i_X509_REQ, which
 * decodes the key through OpenSSL 3's decoders: read its key with
 * X509_REQ_get_X509_PUBKEY (X509_REQ_get0_pubkey gives NULL for it).
 */
enum p11e_err p11e_ca_check_csr(const unsigned char *der, size_t len,
    unsigned int key_types, const struct p11e_ca_profile *profile,
    X509_REQ **req, const char **key_type, char *detail, size_t detail_len);

/*
 * Checks an already decoded public key against key_types (as above).
 */
enum p11e_err p11e_ca_key_policy(EVP_PKEY *pkey, unsigned int key_types,
    const char **key_type, char *detail, size_t detail_len);

/*
 * The result of an issuance.
 */
struct p11e_ca_issued {
	char serial[41]; /* upper-case hex, no leading zero pairs */
	time_t not_before;
	time_t not_after;
	struct p11e_buf der; /* the certificate; p11e_buf_clear() it */
};

/*
 * Issues an X.509 v3 certificate for the public key of req (checked by
 * p11e_ca_check_csr) with profile's subject: serial = 16 random bytes
 * (positive), notBefore = now - backdate, notAfter = notBefore +
 * validity, basicConstraints CA:FALSE (critical), keyUsage
 * digitalSignature (critical), extendedKeyUsage clientAuth, SKI, AKI and
 * the SAN when profile has one.  Signed with SHA-256 (SHA-384 for a P-384
 * CA key).  out is initialised here (cleared on error).
 */
enum p11e_err p11e_ca_issue(struct p11e_ca *ca, X509_REQ *req,
    const struct p11e_ca_profile *profile, time_t now,
    struct p11e_ca_issued *out);

/*
 * Appends the DER of a degenerate PKCS#7 SignedData (certs-only, no
 * signers, RFC 7030 §4.1.3) holding the n certificates ders[i]/lens[i];
 * P11E_ERR_CRYPTO when one is not exactly one DER certificate (its outer
 * SEQUENCE of tbsCertificate, signatureAlgorithm and signature).
 */
enum p11e_err p11e_ca_pkcs7_certs(const unsigned char *const *ders,
    const size_t *lens, size_t n, struct p11e_buf *out);

/* One entry of a CRL. */
struct p11e_ca_crl_entry {
	const char *serial; /* hex */
	time_t revoked_at;
	int reason; /* RFC 5280 CRLReason, 0..10 (7 unused); -1: none */
};

/*
 * Appends the DER of a v2 CRL signed by the CA: thisUpdate now,
 * nextUpdate now + next_update seconds, CRL number crl_number, AKI, and
 * the n entries (with a reasonCode extension when reason > 0).
 */
enum p11e_err p11e_ca_crl(struct p11e_ca *ca,
    const struct p11e_ca_crl_entry *entries, size_t n, time_t now,
    long next_update, long crl_number, struct p11e_buf *out);

/* RFC 5280 CRLReason names ("keyCompromise") <-> codes; -1 unknown. */
int p11e_ca_reason_code(const char *name);
const char *p11e_ca_reason_name(int code);

/*
 * "sha256//BASE64" of the SHA-256 of cert's SubjectPublicKeyInfo, as
 * curl's --pinnedpubkey takes it (out: at least 53 bytes).
 */
enum p11e_err p11e_ca_spki_pin(X509 *cert, char *out, size_t outlen);

/* SHA-256 of a public key's DER SubjectPublicKeyInfo. */
enum p11e_err p11e_ca_spki_sha256(EVP_PKEY *pkey, unsigned char out[32]);

/*
 * The same for the key of req, as p11e_ca_spki_sha256 gives for it (the
 * request's own encoding when that is the canonical one).
 */
enum p11e_err p11e_ca_req_spki_sha256(X509_REQ *req, unsigned char out[32]);

/*
 * The digest of signatures by key: SHA-384 for EC keys of 384 bits or
 * more, SHA-256 otherwise.
 */
const EVP_MD *p11e_ca_sign_md(EVP_PKEY *key);

/* Drains the OpenSSL error queue into the log, prefixed with what. */
void p11e_ca_log_ossl(const char *what);

struct p11e_http_request;

/*
 * The client certificate of req, checked a second time after GnuTLS
 * (req->cert_verified must be set): parsed as exactly one DER certificate
 * and verified with OpenSSL against store (chain, validity at now, client
 * purpose).  Returns a new X509 (X509_free it) or NULL with the reason in
 * detail (dlen bytes).  Used for re-enrollment and every admin request.
 */
X509 *p11e_ca_client_cert(const struct p11e_http_request *req,
    X509_STORE *store, time_t now, char *detail, size_t dlen);

/*
 * The serial number of x as upper-case hex (OpenSSL's BN_bn2hex, the
 * form of certificates.serial) into buf (len bytes, cut when longer).
 * P11E_ERR_NOMEM when OpenSSL cannot allocate.
 */
enum p11e_err p11e_ca_serial_hex(const X509 *x, char *buf, size_t len);

#endif /* P11E_CA_H */
