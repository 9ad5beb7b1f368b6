/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "agent/est.h"
#include "agent/http.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/secret.h"

/*
 * The only includer of curl (STYLE "Layout").  One easy handle per
 * struct p11e_http (one service, made for one method call or one
 * administrator's session and freed at its end): the requests it makes
 * (the CA certificates, the session, the certificate request) go over
 * one kept-alive connection, as a browser's would, and nothing is carried
 * across services.  A connection made without the TLS client key is not
 * reused once the key is set (p11e_http_set_client_key()).
 */

#define URL_MAX 2048

struct p11e_http {
	char *url;
	char *server_pin;
	char *ca_file;
	char *proxy;
	EVP_PKEY *client_key;
	X509 *client_cert;
	STACK_OF(X509) * client_chain;
	const char *method; /* "DELETE" for the next request, else NULL */
	char *basic_user; /* HTTP Basic for simpleenroll (admin code) */
	const struct p11e_secret *basic_pass; /* borrowed */
	CURL *curl; /* the handle of the requests so far, and its connection */
};

struct response {
	long status;
	struct p11e_buf body;
	char ctype[128];
	char retry_after[128];
	time_t date; /* the Date header, 0 without one */
	bool too_large;
};

/*
 * The server's clock against ours (doc/p11enrolld.8 "Clock"), for the
 * whole process: the last Date header seen and how far it was from the
 * local time, used only beyond skew_limit.
 */
static uint64_t skew_limit = P11E_HTTP_SKEW_LIMIT;
static long long skew; /* server - local, seconds; 0 within the limit */
static long long skew_warned; /* the skew last logged */

static bool curl_ready;

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

enum p11e_err
p11e_http_new(const struct p11e_http_service *svc, struct p11e_http **out)
{
	struct p11e_http *h;
	size_t n;

	*out = NULL;
	p11e_return_val_if_fail(
	    svc != NULL && svc->url != NULL, P11E_ERR_INVALID_PARAMETER);
	if (!curl_ready) {
		/*
		 * curl builds a small request in one buffer, headers and
		 * body (the password and the one-time password): every
		 * block it frees is wiped.
		 */
		if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, p11e_wipe_malloc,
			p11e_wipe_free, p11e_wipe_realloc, p11e_wipe_strdup,
			p11e_wipe_calloc) != CURLE_OK)
			return P11E_ERR_NOMEM;
		curl_ready = true;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return P11E_ERR_NOMEM;
	h->url = strdup(svc->url);
	h->server_pin = dup_or_null(svc->server_pin);
	h->ca_file = dup_or_null(svc->ca_file);
	h->proxy = dup_or_null(svc->proxy);
	if (h->url == NULL || (svc->server_pin && !h->server_pin) ||
	    (svc->ca_file && !h->ca_file) || (svc->proxy && !h->proxy)) {
		p11e_http_free(h);
		return P11E_ERR_NOMEM;
	}
	/* the paths are appended with their own '/' */
	n = strlen(h->url);
	while (n > 0 && h->url[n - 1] == '/')
		h->url[--n] = '\0';
	*out = h;
	return P11E_OK;
}

void
p11e_http_free(struct p11e_http *h)
{
	if (h == NULL)
		return;
	/* its connection first: it holds the TLS client key */
	if (h->curl != NULL)
		curl_easy_cleanup(h->curl);
	free(h->url);
	free(h->server_pin);
	free(h->ca_file);
	free(h->proxy);
	EVP_PKEY_free(h->client_key);
	X509_free(h->client_cert);
	sk_X509_pop_free(h->client_chain, X509_free);
	free(h->basic_user);
	free(h);
}

enum p11e_err
p11e_http_set_basic(
    struct p11e_http *h, const char *user, const struct p11e_secret *password)
{
	free(h->basic_user);
	h->basic_user = NULL;
	h->basic_pass = NULL;
	if (user == NULL || password == NULL)
		return P11E_OK;
	if ((h->basic_user = strdup(user)) == NULL)
		return P11E_ERR_NOMEM;
	h->basic_pass = password;
	return P11E_OK;
}

enum p11e_err
p11e_http_set_client_key(
    struct p11e_http *h, EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain)
{
	p11e_return_val_if_fail(
	    key != NULL && cert != NULL, P11E_ERR_INVALID_PARAMETER);
	/* the next request authenticates on a new connection */
	if (h->curl != NULL)
		curl_easy_cleanup(h->curl);
	h->curl = NULL;
	EVP_PKEY_free(h->client_key);
	X509_free(h->client_cert);
	sk_X509_pop_free(h->client_chain, X509_free);
	h->client_key = NULL;
	h->client_cert = NULL;
	h->client_chain = NULL;
	if (!EVP_PKEY_up_ref(key))
		return P11E_ERR_CRYPTO;
	h->client_key = key;
	if (!X509_up_ref(cert))
		return P11E_ERR_CRYPTO;
	h->client_cert = cert;
	if (chain != NULL &&
	    (h->client_chain = X509_chain_up_ref(chain)) == NULL)
		return P11E_ERR_NOMEM;
	return P11E_OK;
}

/*
 * TLS client authentication with the token key: the certificate, the key
 * (signing on the token through libp11) and exactly the intended chain.
 */
static CURLcode
ssl_ctx_cb(CURL *curl, void *sslctx, void *data)
{
	struct p11e_http *h = data;
	SSL_CTX *ctx = sslctx;

	(void)curl;
	if (h->client_key == NULL)
		return CURLE_OK;
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	if (SSL_CTX_use_certificate(ctx, h->client_cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, h->client_key) != 1 ||
	    (h->client_chain != NULL &&
		SSL_CTX_set1_chain(ctx, h->client_chain) != 1)) {
		p11e_error("cannot set the TLS client key");
		ERR_clear_error();
		return CURLE_SSL_CERTPROBLEM;
	}
	return CURLE_OK;
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *data)
{
	struct response *r = data;
	size_t n = size * nmemb;

	if (p11e_buf_append(&r->body, ptr, n) != P11E_OK) {
		r->too_large = true;
		return 0;
	}
	return n;
}

static size_t
header_cb(char *ptr, size_t size, size_t nmemb, void *data)
{
	static const char ra[] = "retry-after:", dh[] = "date:";
	struct response *r = data;
	size_t n = size * nmemb, len;
	char date[128];

	if (n > sizeof(dh) - 1 && n - (sizeof(dh) - 1) < sizeof(date) &&
	    strncasecmp(ptr, dh, sizeof(dh) - 1) == 0) {
		len = n - (sizeof(dh) - 1);
		memcpy(date, ptr + sizeof(dh) - 1, len);
		date[len] = '\0';
		date[strcspn(date, "\r\n")] = '\0';
		/* an HTTP-date; -1 for anything else */
		if ((r->date = curl_getdate(date, NULL)) < 0)
			r->date = 0;
	}

	if (n > sizeof(ra) - 1 && strncasecmp(ptr, ra, sizeof(ra) - 1) == 0) {
		len = n - (sizeof(ra) - 1);
		while (len > 0 &&
		    (ptr[sizeof(ra) - 1 + len - 1] == '\r' ||
			ptr[sizeof(ra) - 1 + len - 1] == '\n'))
			len--;
		if (len < sizeof(r->retry_after)) {
			memcpy(r->retry_after, ptr + sizeof(ra) - 1, len);
			r->retry_after[len] = '\0';
		}
	}
	return n;
}

void
p11e_http_set_skew_limit(uint64_t limit)
{
	skew_limit = limit;
}

long long
p11e_http_skew(void)
{
	return skew;
}

void
p11e_http_restore_skew(long long s)
{
	skew = s;
	skew_warned = s;
}

time_t
p11e_http_now(void)
{
	return time(NULL) + (time_t)skew;
}

/*
 * One server's Date against the local clock.  A Date has a resolution of
 * one second and the answer took a moment: only a difference beyond the
 * limit counts, and it is logged when it first appears or moves by more
 * than the limit again (not at every request).
 */
static void
note_date(time_t date)
{
	long long d = (long long)date - (long long)time(NULL);
	long long lim = skew_limit > (uint64_t)LLONG_MAX
	    ? LLONG_MAX
	    : (long long)skew_limit;

	if (d <= lim && d >= -lim) {
		if (skew != 0)
			p11e_info("the local clock agrees with the server's "
				  "again (within %lld s)",
			    lim);
		skew = 0;
		skew_warned = 0;
		return;
	}
	skew = d;
	if (skew_warned == 0 || d - skew_warned > lim ||
	    skew_warned - d > lim) {
		p11e_error("warning: the local clock is off by %lld s (%s the "
			   "server's Date): renewal is scheduled by the "
			   "server's time; set the clock right (NTP, "
			   "timedatectl)",
		    -d, d > 0 ? "behind" : "ahead of");
		skew_warned = d;
	}
}

/* The one place a CURLcode becomes an error value. */
static enum p11e_err
curl_fail(CURLcode cc, const char *errbuf, const char *what, char *detail,
    size_t dlen)
{
	enum p11e_err err;

	/* -Wswitch-enum would want every CURLcode listed */
	if (cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
	    cc == CURLE_PEER_FAILED_VERIFICATION ||
	    cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_CONNECT_ERROR)
		err = P11E_ERR_SERVER_UNTRUSTED;
	else if (cc == CURLE_WRITE_ERROR)
		err = P11E_ERR_BAD_RESPONSE;
	else if (cc == CURLE_OUT_OF_MEMORY)
		err = P11E_ERR_NOMEM;
	else
		err = P11E_ERR_SERVER_UNREACHABLE;
	p11e_error("%s: %s (curl: %s)", what,
	    errbuf[0] ? errbuf : curl_easy_strerror(cc),
	    curl_easy_strerror(cc));
	snprintf(detail, dlen, "%s: %s", what,
	    errbuf[0] ? errbuf : curl_easy_strerror(cc));
	return err;
}

/*
 * One request.  body (len bytes) is sent with Content-Type ctype when not
 * NULL (POST); bearer adds an Authorization header.  Fills r; an HTTP
 * error status is not an error here.
 */
static enum p11e_err
perform(struct p11e_http *h, const char *path, const char *ctype,
    const void *body, size_t len, const struct p11e_secret *bearer,
    const char *accept, bool certinfo, struct response *r, char *detail,
    size_t dlen, CURL **keep)
{
	char url[URL_MAX], errbuf[CURL_ERROR_SIZE] = "", hdr[160];
	struct curl_slist *headers = NULL, *tmp;
	enum p11e_err err = P11E_OK;
	char *ct = NULL;
	CURLcode cc;
	CURL *c;

	if ((size_t)snprintf(url, sizeof(url), "%s%s", h->url, path) >=
	    sizeof(url))
		return P11E_ERR_TOO_LARGE;
	/* the handle of the earlier requests: its options go, its
	 * connection stays for this one */
	if ((c = h->curl) != NULL)
		curl_easy_reset(c);
	else if ((c = curl_easy_init()) == NULL)
		return P11E_ERR_NOMEM;
	h->curl = NULL;
	/* Expect: 100-continue is not for these small bodies */
	headers = curl_slist_append(NULL, "Expect:");
	if (ctype != NULL && headers != NULL) {
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
		tmp = curl_slist_append(headers, hdr);
		headers = tmp ? tmp : headers;
	}
	if (accept != NULL && headers != NULL) {
		snprintf(hdr, sizeof(hdr), "Accept: %s", accept);
		tmp = curl_slist_append(headers, hdr);
		headers = tmp ? tmp : headers;
	}
	if (headers == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	/* the configuration's proxy or none: "" overrides the environment */
	curl_easy_setopt(c, CURLOPT_PROXY, h->proxy ? h->proxy : "");
	if (certinfo) {
		/* only to show the key to a person: nothing is sent */
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(c, CURLOPT_CERTINFO, 1L);
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (h->server_pin != NULL && h->ca_file == NULL) {
		/* the pinned key is the trust anchor */
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, h->server_pin);
	} else {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
		if (h->ca_file != NULL)
			curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
		if (h->server_pin != NULL)
			curl_easy_setopt(
			    c, CURLOPT_PINNEDPUBLICKEY, h->server_pin);
	}
	if (h->client_key != NULL) {
		curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
		curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, h);
	}
	if (bearer == NULL && h->basic_user != NULL && h->basic_pass != NULL) {
		/* XXX as for the bearer token: curl keeps a copy until the
		 * handle is cleaned up; the code is good for one issuance */
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, h->basic_user);
		curl_easy_setopt(
		    c, CURLOPT_PASSWORD, p11e_secret_str(h->basic_pass));
	}
	if (bearer != NULL) {
		/*
		 * XXX curl keeps a copy of the token in its heap until the
		 * handle is cleaned up (unwiped); the token is good for one
		 * issuance only and bound to our key.
		 */
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		curl_easy_setopt(
		    c, CURLOPT_XOAUTH2_BEARER, p11e_secret_str(bearer));
	}
	if (h->method != NULL)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, h->method);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		if (r->too_large)
			snprintf(errbuf, sizeof(errbuf),
			    "the answer is larger than %d bytes",
			    P11E_HTTP_BODY_MAX);
		err = curl_fail(cc, errbuf, url, detail, dlen);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->date > 0)
		note_date(r->date);
	if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK &&
	    ct != NULL)
		snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
	p11e_debug(P11E_DEBUG_HTTP, "%s %s: %ld, %s, %zu bytes",
	    h->method  ? h->method
		: body ? "POST"
		       : "GET",
	    url, r->status, r->ctype[0] ? r->ctype : "no type", r->body.len);
	if (keep != NULL) {
		*keep = c;
		c = NULL; /* transferred */
	}
out:
	curl_slist_free_all(headers);
	/*
	 * Kept for the next request of h (curl closes a connection it cannot
	 * reuse), without the options that point into this call.
	 */
	if (c != NULL && err == P11E_OK) {
		curl_easy_reset(c);
		h->curl = c;
	} else if (c != NULL) {
		curl_easy_cleanup(c);
	}
	return err;
}

static void
response_init(struct response *r, bool wiped)
{
	memset(r, 0, sizeof(*r));
	if (wiped)
		p11e_buf_init_wiped(&r->body, P11E_HTTP_BODY_MAX);
	else
		p11e_buf_init(&r->body, P11E_HTTP_BODY_MAX);
}

static enum p11e_err
problem(const struct response *r, char *detail, size_t dlen)
{
	enum p11e_err err = p11e_est_problem(
	    r->status, r->ctype, r->body.data, r->body.len, detail, dlen);

	p11e_info("the server answered HTTP %ld: %s", r->status, detail);
	return err;
}

enum p11e_err
p11e_http_cacerts(
    struct p11e_http *h, STACK_OF(X509) * *out, char *detail, size_t dlen)
{
	struct response r;
	enum p11e_err err;

	*out = NULL;
	response_init(&r, false);
	if ((err = perform(h, "/.well-known/est/cacerts", NULL, NULL, 0, NULL,
		 "application/pkcs7-mime", false, &r, detail, dlen, NULL)) !=
	    P11E_OK)
		goto out;
	if (r.status != 200) {
		err = problem(&r, detail, dlen);
		goto out;
	}
	if (!p11e_est_media_is(r.ctype, "application/pkcs7-mime")) {
		snprintf(detail, dlen, "cacerts came as '%.60s'", r.ctype);
		err = P11E_ERR_BAD_RESPONSE;
		goto out;
	}
	err = p11e_est_certs_only(r.body.data, r.body.len, out, detail, dlen);
out:
	if (err == P11E_ERR_BAD_RESPONSE)
		p11e_error("cacerts: %s", detail);
	p11e_buf_clear(&r.body);
	return err;
}

enum p11e_err
p11e_http_policy(struct p11e_http *h, struct p11e_http_policy *pol,
    char *detail, size_t dlen)
{
	struct response r;
	enum p11e_err err;
	json_t *j = NULL, *rb, *va;

	memset(pol, 0, sizeof(*pol));
	response_init(&r, false);
	if ((err = perform(h, "/api/v1/policy", NULL, NULL, 0, NULL,
		 "application/json", false, &r, detail, dlen, NULL)) != P11E_OK)
		goto out;
	if (r.status != 200) {
		err = problem(&r, detail, dlen);
		goto out;
	}
	j = json_loadb((const char *)r.body.data, r.body.len,
	    JSON_REJECT_DUPLICATES, NULL);
	rb = json_object_get(j, "renew_before");
	va = json_object_get(j, "validity");
	if (!p11e_est_media_is(r.ctype, "application/json") ||
	    !json_is_integer(rb) || json_integer_value(rb) < 0 ||
	    (va != NULL &&
		(!json_is_integer(va) || json_integer_value(va) < 0))) {
		snprintf(detail, dlen,
		    "the policy is not JSON with renew_before and validity");
		err = P11E_ERR_BAD_RESPONSE;
		p11e_error("policy: %s", detail);
		goto out;
	}
	pol->renew_before = (uint64_t)json_integer_value(rb);
	pol->validity = va ? (uint64_t)json_integer_value(va) : 0;
out:
	json_decref(j);
	p11e_buf_clear(&r.body);
	return err;
}

/* Appends s as a JSON string (quoted, escaped). */
static enum p11e_err
json_str(struct p11e_buf *b, const unsigned char *s, size_t len)
{
	enum p11e_err err = p11e_buf_append(b, "\"", 1);
	char esc[8];
	size_t i;

	for (i = 0; err == P11E_OK && i < len; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)s[i];
			err = p11e_buf_append(b, esc, 2);
		} else if (s[i] < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
			err = p11e_buf_append(b, esc, 6);
		} else {
			err = p11e_buf_append(b, &s[i], 1);
		}
	}
	p11e_wipe(esc, sizeof(esc));
	return err == P11E_OK ? p11e_buf_append(b, "\"", 1) : err;
}

enum p11e_err
p11e_http_session(struct p11e_http *h, const char *contract_id,
    const char *user_id, const struct p11e_secret *password,
    const struct p11e_secret *otp, struct p11e_http_session *s, char *detail,
    size_t dlen)
{
	struct p11e_buf body;
	struct response r;
	enum p11e_err err;
	json_t *j = NULL;
	const char *v;

	memset(s, 0, sizeof(*s));
	/* the password goes only into this wiped buffer (never logged) */
	p11e_buf_init_wiped(&body, 2 * P11E_SECRET_MAX * 6 + 256);
	response_init(&r, true);
	if ((err = p11e_buf_append_str(&body, "{\"contract_id\":")) !=
		P11E_OK ||
	    (err = json_str(&body, (const unsigned char *)contract_id,
		 strlen(contract_id))) != P11E_OK ||
	    (err = p11e_buf_append_str(&body, ",\"user_id\":")) != P11E_OK ||
	    (err = json_str(&body, (const unsigned char *)user_id,
		 strlen(user_id))) != P11E_OK ||
	    (err = p11e_buf_append_str(&body, ",\"password\":")) != P11E_OK ||
	    (err = json_str(&body, p11e_secret_data(password),
		 p11e_secret_len(password))) != P11E_OK ||
	    (err = p11e_buf_append_str(&body, ",\"otp\":")) != P11E_OK ||
	    (err = json_str(&body, p11e_secret_data(otp),
		 p11e_secret_len(otp))) != P11E_OK ||
	    (err = p11e_buf_append_str(&body, "}")) != P11E_OK)
		goto out;
	if ((err = perform(h, "/api/v1/enrollment/session", "application/json",
		 body.data, body.len, NULL, "application/json", false, &r,
		 detail, dlen, NULL)) != P11E_OK)
		goto out;
	if (r.status != 200 && r.status != 201) {
		err = problem(&r, detail, dlen);
		if (err == P11E_ERR_SERVER_BUSY &&
		    p11e_est_retry_after(r.retry_after,
			r.date > 0 ? r.date : time(NULL), P11E_HTTP_RETRY_MAX,
			&s->retry_after) != P11E_OK)
			s->retry_after = 0;
		goto out;
	}
	j = json_loadb((const char *)r.body.data, r.body.len,
	    JSON_REJECT_DUPLICATES, NULL);
	v = json_string_value(json_object_get(j, "token"));
	if (v == NULL || v[0] == '\0' ||
	    (s->token = p11e_secret_new_from(v, strlen(v))) == NULL) {
		snprintf(detail, dlen, "the session answer has no token");
		err = P11E_ERR_BAD_RESPONSE;
		goto out;
	}
	if ((v = json_string_value(json_object_get(j, "subject"))) != NULL)
		snprintf(s->subject, sizeof(s->subject), "%s", v);
	if ((v = json_string_value(json_object_get(j, "window_closes"))) !=
	    NULL)
		snprintf(s->window_closes, sizeof(s->window_closes), "%s", v);
	err = P11E_OK;
out:
	json_decref(j);
	p11e_buf_clear(&body);
	p11e_buf_clear(&r.body);
	return err;
}

enum p11e_err
p11e_http_enroll(struct p11e_http *h, bool reenroll,
    const struct p11e_secret *bearer, const unsigned char *csr, size_t len,
    STACK_OF(X509) * *out, uint64_t *retry_after, char *detail, size_t dlen)
{
	struct p11e_buf b64;
	struct response r;
	enum p11e_err err;
	int n;

	*out = NULL;
	*retry_after = 0;
	p11e_buf_init(&b64, 4 * (len / 3 + 1) + 1);
	response_init(&r, false);
	/* base64 on one line: every EST server takes it */
	{
		unsigned char *tmp = malloc(4 * (len / 3 + 1) + 1);

		if (tmp == NULL) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
		n = EVP_EncodeBlock(tmp, csr, (int)len);
		err = p11e_buf_append(&b64, tmp, (size_t)n);
		free(tmp);
		if (err != P11E_OK)
			goto out;
	}
	if ((err = perform(h,
		 reenroll ? "/.well-known/est/simplereenroll"
			  : "/.well-known/est/simpleenroll",
		 "application/pkcs10", b64.data, b64.len, bearer,
		 "application/pkcs7-mime", false, &r, detail, dlen, NULL)) !=
	    P11E_OK)
		goto out;
	if (r.status == 202) {
		if (p11e_est_retry_after(r.retry_after,
			r.date > 0 ? r.date : time(NULL), P11E_HTTP_RETRY_MAX,
			retry_after) != P11E_OK)
			*retry_after = 60;
		snprintf(detail, dlen,
		    "the server will answer later (retry in %llu s)",
		    (unsigned long long)*retry_after);
		err = P11E_ERR_SERVER_BUSY;
		goto out;
	}
	if (r.status != 200 && r.status != 201) {
		err = problem(&r, detail, dlen);
		goto out;
	}
	if (!p11e_est_media_is(r.ctype, "application/pkcs7-mime")) {
		snprintf(
		    detail, dlen, "the certificate came as '%.60s'", r.ctype);
		err = P11E_ERR_BAD_RESPONSE;
		goto out;
	}
	err = p11e_est_certs_only(r.body.data, r.body.len, out, detail, dlen);
out:
	if (err == P11E_ERR_BAD_RESPONSE)
		p11e_error("enroll: %s", detail);
	p11e_buf_clear(&b64);
	p11e_buf_clear(&r.body);
	return err;
}

enum p11e_err
p11e_http_server_pin(
    struct p11e_http *h, char *pin, size_t pinlen, char *detail, size_t dlen)
{
	struct curl_certinfo *ci = NULL;
	struct curl_slist *sl;
	struct response r;
	enum p11e_err err;
	CURL *c = NULL;
	X509 *x = NULL;
	BIO *bio;

	pin[0] = '\0';
	response_init(&r, false);
	if ((err = perform(h, "/.well-known/est/cacerts", NULL, NULL, 0, NULL,
		 NULL, true, &r, detail, dlen, &c)) != P11E_OK)
		goto out;
	err = P11E_ERR_BAD_RESPONSE;
	if (curl_easy_getinfo(c, CURLINFO_CERTINFO, &ci) != CURLE_OK ||
	    ci == NULL || ci->num_of_certs < 1) {
		snprintf(detail, dlen, "the server showed no certificate");
		goto out;
	}
	for (sl = ci->certinfo[0]; sl != NULL; sl = sl->next) {
		if (strncmp(sl->data, "Cert:", 5) != 0)
			continue;
		if ((bio = BIO_new_mem_buf(sl->data + 5, -1)) != NULL) {
			x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
			BIO_free(bio);
		}
		break;
	}
	if (x == NULL) {
		snprintf(detail, dlen, "cannot read the server certificate");
		goto out;
	}
	err = p11e_est_spki_pin(x, pin, pinlen);
out:
	ERR_clear_error();
	X509_free(x);
	if (c != NULL)
		curl_easy_cleanup(c);
	p11e_buf_clear(&r.body);
	return err;
}

enum p11e_err
p11e_http_admin(struct p11e_http *h, const char *method, const char *path,
    const struct p11e_buf *body, const struct p11e_secret *bearer,
    struct p11e_http_admin_reply *out, char *detail, size_t dlen)
{
	struct response r;
	enum p11e_err err;
	json_t *j = NULL;
	const char *t;

	memset(out, 0, sizeof(*out));
	response_init(&r, true);
	h->method = strcmp(method, "DELETE") == 0 ? "DELETE" : NULL;
	err = perform(h, path, body != NULL ? "application/json" : NULL,
	    body != NULL ? body->data : NULL, body != NULL ? body->len : 0,
	    bearer, "application/json", false, &r, detail, dlen, NULL);
	h->method = NULL;
	if (err != P11E_OK)
		goto out;
	out->status = r.status;
	if (r.status == 204)
		goto out;
	if (r.status != 200) {
		if (p11e_est_media_is(r.ctype, "application/problem+json") &&
		    (j = json_loadb((const char *)r.body.data, r.body.len,
			 JSON_REJECT_DUPLICATES, NULL)) != NULL &&
		    (t = json_string_value(json_object_get(j, "type"))) != NULL)
			snprintf(out->type, sizeof(out->type), "%s", t);
		json_decref(j);
		j = NULL;
		err = problem(&r, detail, dlen);
		goto out;
	}
	if (!p11e_est_media_is(r.ctype, "application/json") ||
	    (out->json = json_loadb((const char *)r.body.data, r.body.len,
		 JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(out->json)) {
		json_decref(out->json);
		out->json = NULL;
		snprintf(detail, dlen, "the server's answer is not JSON");
		err = P11E_ERR_BAD_RESPONSE;
	}
out:
	p11e_buf_clear(&r.body);
	return err;
}
