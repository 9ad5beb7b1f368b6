/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_HTTP_H
#define P11E_HTTP_H

/*
 * The RA's HTTPS front end over libmicrohttpd (GnuTLS).  It owns TLS,
 * bodies and limits; what a request means is the handler's business, and
 * the handler sees no socket (it can be fuzzed with a built request).
 * The only file of the RA that includes microhttpd.h and gnutls.
 */

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"

/* The most client certificates looked at in a presented chain. */
#define P11E_HTTP_MAX_CHAIN 4

struct p11e_http_request {
	const char *method;
	const char *path; /* without the query */
	const char *content_type; /* NULL when absent */
	const char *authorization; /* NULL when absent */
	const char *peer; /* "127.0.0.1" or "::1" */
	const unsigned char *body;
	size_t body_len;
	/*
	 * The client certificate chain as presented (DER, leaf first), and
	 * whether GnuTLS verified it against the trust list: the return
	 * value of gnutls_certificate_verify_peers2() was 0 AND its status
	 * was 0 (a forged certificate with the right issuer name gets 0
	 * with a non-zero status).  Handlers must still check the chain,
	 * validity and revocation themselves.
	 */
	const unsigned char *cert_der[P11E_HTTP_MAX_CHAIN];
	size_t cert_len[P11E_HTTP_MAX_CHAIN];
	size_t n_certs;
	bool cert_verified;
};

struct p11e_http_response {
	unsigned int status;
	char content_type[96];
	char retry_after[32]; /* Retry-After, when set */
	char www_authenticate[96]; /* WWW-Authenticate, when set */
	char allow[48]; /* Allow, when set */
	struct p11e_buf body; /* up to P11E_HTTP_RESPONSE_MAX bytes */
};

#define P11E_HTTP_RESPONSE_MAX (1024 * 1024)

/* Called once per complete request, possibly from several threads. */
typedef void (*p11e_http_handler)(void *ctx,
    const struct p11e_http_request *req, struct p11e_http_response *resp);

struct p11e_http_options {
	const char *listen; /* "127.0.0.1:8443", "[::1]:0" (0: any free port) */
	const char *cert_pem; /* server certificate (and chain), PEM text */
	const char *key_pem; /* its key, PEM text */
	const char
	    *trust_pem; /* CAs of client certificates; NULL: none asked */
	size_t max_body; /* larger bodies get 413 (default 16 KiB) */
	unsigned int timeout; /* idle seconds before a connection is closed */
	unsigned int max_connections;
	unsigned int max_per_ip;
	unsigned int threads;
};

struct p11e_http;

/*
 * Starts serving on a thread pool: TLS 1.2 and 1.3 only, HTTP/1.1,
 * bodies up to max_body (also chunked ones), a client certificate asked
 * for (never required) when trust_pem is set.  Logs and returns
 * P11E_ERR_CONFIG for a bad address or key material, P11E_ERR_SYSTEM when
 * the port cannot be bound.
 */
enum p11e_err p11e_http_start(const struct p11e_http_options *opts,
    p11e_http_handler handler, void *ctx, struct p11e_http **out);

/* The port listened on (useful after port 0). */
unsigned int p11e_http_port(const struct p11e_http *http);

/* Stops serving and frees; NULL is a no-op. */
void p11e_http_stop(struct p11e_http *http);

/*
 * Fills resp with an RFC 9457 application/problem+json body:
 * {"type": type, "title": title, "status": status,
 * "detail": detail (omitted when NULL)}.  type is the stable slug
 * ("invalid-credentials"), a relative URI reference as RFC 9457 allows.
 */
void p11e_http_problem(struct p11e_http_response *resp, unsigned int status,
    const char *type, const char *title, const char *detail);

/*
 * A 200 answer of content type ctype with len bytes of data as its body;
 * a 500 problem ("internal-error") when they exceed the response's
 * maximum.
 */
void p11e_http_body(struct p11e_http_response *resp, const char *ctype,
    const void *data, size_t len);

/*
 * A 200 application/json answer with j (borrowed) as compact text; the
 * body is wiped when freed (it may hold a token).  A 500 problem
 * ("internal-error") when j is NULL or cannot be written.
 */
void p11e_http_json(struct p11e_http_response *resp, const json_t *j);

/* A 405 problem ("method-not-allowed") with Allow: allow. */
void p11e_http_method_not_allowed(
    struct p11e_http_response *resp, const char *allow);

/*
 * A 503 problem ("unavailable", "Service unavailable", detail) with
 * Retry-After: 5, for a store that is full or failing.
 */
void p11e_http_unavailable(struct p11e_http_response *resp, const char *detail);

/*
 * Whether the media type in a Content-Type header is type, compared
 * without case and without parameters ("application/pkcs10;
 * charset=x" is application/pkcs10).
 */
bool p11e_http_media_type_is(const char *header, const char *type);

#endif /* P11E_HTTP_H */
