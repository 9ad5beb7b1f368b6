/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_EST_H
#define P11E_EST_H

/*
 * The parts of the enrollment protocol (doc/protocol.md) that need no
 * network: reading what a server sent, liberally (research/est-notes.md),
 * and checking an issued certificate before anything touches the token
 * (R24).  agent/http.c does the transfers; this file never includes curl,
 * so it is unit tested and fuzzed on its own.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "common/buf.h"
#include "common/err.h"

/* Most certificates accepted in one PKCS#7 answer. */
#define P11E_EST_CERTS_MAX 16

/*
 * Whether the Content-Type value ctype (may be NULL) is the media type
 * want ("application/pkcs7-mime"): case-insensitive, parameters and
 * surrounding space ignored.
 */
bool p11e_est_media_is(const char *ctype, const char *want);

/*
 * Decodes base64 (RFC 4648) that may carry CR, LF, spaces, tabs and
 * trailing NULs anywhere (RFC 8951 bodies).  Appends to out.
 * P11E_ERR_PARSE for any other byte, bad padding or an empty result.
 */
enum p11e_err
p11e_est_b64_decode(const void *in, size_t len, struct p11e_buf *out);

/*
 * A Retry-After value: delta-seconds, or an HTTP-date (IMF-fixdate)
 * compared with now.  Sets *delay (seconds, 0 for a date in the past,
 * capped at max).  P11E_ERR_PARSE otherwise.
 */
enum p11e_err p11e_est_retry_after(
    const char *value, time_t now, uint64_t max, uint64_t *delay);

/*
 * Turns an error answer into an error value and one sentence for the
 * user (detail, dlen bytes), from the problem+json `type` when there is
 * one (doc/protocol.md), else from the status.  Never fails.
 */
enum p11e_err p11e_est_problem(long status, const char *ctype,
    const unsigned char *body, size_t len, char *detail, size_t dlen);

/*
 * Parses a base64 certs-only PKCS#7 (SignedData without signers) into
 * its certificates, in order: 1 to P11E_EST_CERTS_MAX of them.  *out is
 * a new stack (sk_X509_pop_free(out, X509_free)).  P11E_ERR_BAD_RESPONSE
 * with detail otherwise.
 */
enum p11e_err p11e_est_certs_only(const void *b64, size_t len,
    STACK_OF(X509) * *out, char *detail, size_t dlen);

/*
 * Checks the certificates of an enrollment answer before they may be
 * written (R24, B22): one of them carries exactly the public key spki
 * (DER SubjectPublicKeyInfo, the journaled one), it is valid at now, has
 * extendedKeyUsage clientAuth and chains to a certificate of cacerts
 * (the answer's other certificates may serve as intermediates).  Sets
 * *leaf to a new reference to it.  P11E_ERR_BAD_RESPONSE with detail
 * otherwise.
 */
enum p11e_err p11e_est_check_issued(STACK_OF(X509) * issued,
    STACK_OF(X509) * cacerts, const unsigned char *spki, size_t spki_len,
    time_t now, X509 **leaf, char *detail, size_t dlen);

/* The SHA-256 of cert's SubjectPublicKeyInfo as "sha256//BASE64". */
enum p11e_err p11e_est_spki_pin(X509 *cert, char *out, size_t outlen);

#endif /* P11E_EST_H */
