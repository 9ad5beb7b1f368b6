/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_HTTP_H
#define P11E_HTTP_H

/*
 * The enrollment-protocol client (doc/protocol.md): the only file of
 * p11enroll that includes curl.  HTTPS with TLS 1.2 or later, HTTP/1.1,
 * requests with Content-Length, no redirects, connect timeout 10 s and
 * 60 s per request.  Trust in the server, per service:
 *  - server-pin (sha256//BASE64) and no ca-file: the pinned key is the
 *    trust (the RA's self-signed TLS certificate): curl checks the pin
 *    and nothing else;
 *  - ca-file: those CA certificates (plus the pin when set);
 *  - neither: the system trust store.
 * The proxy comes from the service configuration only (a systemd user
 * service does not see the shell's environment; a proxy in the
 * environment is ignored).  Nothing carrying a secret is logged; curl's
 * own error text (CURLOPT_ERRORBUFFER) is logged here and only here.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/secret.h"

/* Where and how to reach one service (strings borrowed). */
struct p11e_http_service {
	const char *url; /* https://host[:port][/path], no trailing '/' */
	const char *server_pin; /* "sha256//BASE64" or NULL */
	const char *ca_file; /* PEM path or NULL */
	const char *proxy; /* curl proxy string or NULL for none */
};

/* Default of [agent] clock-skew-limit (seconds). */
#define P11E_HTTP_SKEW_LIMIT 300

/*
 * The server's clock (doc/p11enrolld.8 "Clock"): the Date header of
 * every answer is compared with the local clock.  Beyond limit seconds
 * (default P11E_HTTP_SKEW_LIMIT) a warning is logged saying by how much
 * the local clock is off, and p11e_http_now() is the local time
 * corrected by the difference, so that certificate times (the server's)
 * are compared with the server's time.  The correction is process-wide
 * and lasts until an answer within the limit.
 */
void p11e_http_set_skew_limit(uint64_t limit);

/* The server's time as far as known: time(NULL) plus the skew. */
time_t p11e_http_now(void);

/* The skew in use (server - local, seconds); 0 within the limit. */
long long p11e_http_skew(void);

/* Takes up a skew known before a rest (already logged). */
void p11e_http_restore_skew(long long skew);

/* A client for one service.  Opaque. */
struct p11e_http;

/* Largest answer body accepted. */
#define P11E_HTTP_BODY_MAX (256 * 1024)

/* The longest wait a Retry-After may ask for (seconds). */
#define P11E_HTTP_RETRY_MAX 600

/*
 * Creates a client; nothing is sent yet.  Free with p11e_http_free().
 * The strings of svc are copied.
 */
enum p11e_err
p11e_http_new(const struct p11e_http_service *svc, struct p11e_http **out);

/* NULL is a no-op. */
void p11e_http_free(struct p11e_http *h);

/*
 * TLS client authentication for the next requests (simplereenroll):
 * key (a token key from p11e_token_evp_key(); a reference is taken) and
 * cert, sent with exactly chain (may be NULL; no automatic chain
 * building).  The token must stay logged in while requests run.
 */
enum p11e_err p11e_http_set_client_key(
    struct p11e_http *h, EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain);

/*
 * HTTP Basic authentication (user "CONTRACT/USER", password the one-time
 * enrollment code, borrowed until the next call) for the next
 * simpleenroll without a bearer token: an administrator's first
 * certificate (doc/protocol.md).  user NULL clears it.
 */
enum p11e_err p11e_http_set_basic(
    struct p11e_http *h, const char *user, const struct p11e_secret *password);

/*
 * GET cacerts: the issuing CA certificates (new stack for the caller).
 * Errors: P11E_ERR_SERVER_UNREACHABLE, P11E_ERR_SERVER_UNTRUSTED,
 * P11E_ERR_BAD_RESPONSE, or what p11e_est_problem() maps; detail (dlen
 * bytes) has one sentence.
 */
enum p11e_err p11e_http_cacerts(
    struct p11e_http *h, STACK_OF(X509) * *out, char *detail, size_t dlen);

/* The parts of GET /api/v1/policy the agent uses (seconds). */
struct p11e_http_policy {
	uint64_t renew_before; /* re-enrollment opens this long before expiry */
	uint64_t validity; /* lifetime of new certificates (0: not said) */
};

/*
 * GET /api/v1/policy (doc/protocol.md).  Errors as p11e_http_cacerts();
 * P11E_ERR_BAD_RESPONSE when renew_before is missing or not a number.
 */
enum p11e_err p11e_http_policy(struct p11e_http *h,
    struct p11e_http_policy *pol, char *detail, size_t dlen);

/* What the user session answered. */
struct p11e_http_session {
	struct p11e_secret *token; /* the enrollment token (free it) */
	char subject[512]; /* the subject the server will issue */
	char window_closes[64];
	/* on P11E_ERR_SERVER_BUSY (429, 503): the Retry-After in seconds
	 * (capped at P11E_HTTP_RETRY_MAX), 0 when the server gave none */
	uint64_t retry_after;
};

/*
 * POST /api/v1/enrollment/session with the four factors.  The JSON body
 * is built in wiped memory and never logged.  On success fills s (free
 * s->token with p11e_secret_free()).  A busy server (429, 503) gives
 * P11E_ERR_SERVER_BUSY with s->retry_after set when it said when to
 * come back.
 */
enum p11e_err p11e_http_session(struct p11e_http *h, const char *contract_id,
    const char *user_id, const struct p11e_secret *password,
    const struct p11e_secret *otp, struct p11e_http_session *s, char *detail,
    size_t dlen);

/*
 * POST simpleenroll (or simplereenroll when reenroll) with the DER CSR,
 * authenticated with bearer (may be NULL: a lost-response retry, or TLS
 * client auth).  A 202 sets *retry_after (seconds) and returns
 * P11E_ERR_SERVER_BUSY: the caller sends the same CSR again after that.
 * On success *out holds the answer's certificates.
 */
enum p11e_err p11e_http_enroll(struct p11e_http *h, bool reenroll,
    const struct p11e_secret *bearer, const unsigned char *csr, size_t len,
    STACK_OF(X509) * *out, uint64_t *retry_after, char *detail, size_t dlen);

/*
 * Connects without trusting anything, to show the server's key to a
 * user who will compare it out of band (RFC 7030 §4.1.1): writes its pin
 * ("sha256//BASE64") into pin.  Sends no request body.
 */
enum p11e_err p11e_http_server_pin(
    struct p11e_http *h, char *pin, size_t pinlen, char *detail, size_t dlen);

/* What an admin API call answered. */
struct p11e_http_admin_reply {
	long status; /* 200, 204, or the error status */
	json_t *json; /* the 200 answer (free it); NULL otherwise */
	char type[64]; /* the problem type of an error answer, or "" */
};

/*
 * One call of the administrator API (doc/protocol.md): method "GET",
 * "POST" or "DELETE", path under /api/v1/admin/, body (JSON, may hold a
 * PIN: a wiped buffer of the caller; NULL for none), bearer (the admin
 * token or NULL), with the TLS client key set before.  P11E_OK for 200
 * (out->json set) and 204; a problem answer gives what
 * p11e_est_problem() maps with out->type set.
 */
enum p11e_err
p11e_http_admin(struct p11e_http *h, const char *method, const char *path,
    const struct p11e_buf *body, const struct p11e_secret *bearer,
    struct p11e_http_admin_reply *out, char *detail, size_t dlen);

#endif /* P11E_HTTP_H */
