/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/est.h"
#include "common/i18n.h"
#include "common/log.h"
#include "common/num.h"

bool
p11e_est_media_is(const char *ctype, const char *want)
{
	size_t n = strlen(want);

	if (ctype == NULL)
		return false;
	while (*ctype == ' ' || *ctype == '\t')
		ctype++;
	if (strncasecmp(ctype, want, n) != 0)
		return false;
	ctype += n;
	while (*ctype == ' ' || *ctype == '\t')
		ctype++;
	return *ctype == '\0' || *ctype == ';';
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

enum p11e_err
p11e_est_b64_decode(const void *in, size_t len, struct p11e_buf *out)
{
	const unsigned char *p = in;
	unsigned char o[3];
	unsigned int acc = 0;
	size_t i, n = 0, pad = 0, start = out->len;
	enum p11e_err err;
	int v;

	/* trailing NULs (libest's csrattrs) */
	while (len > 0 && p[len - 1] == '\0')
		len--;
	for (i = 0; i < len; i++) {
		if (p[i] == '\r' || p[i] == '\n' || p[i] == ' ' || p[i] == '\t')
			continue;
		if (p[i] == '=') {
			pad++;
			continue;
		}
		/* data after padding */
		if (pad > 0 || (v = b64_value(p[i])) < 0)
			goto bad;
		acc = (acc << 6) | (unsigned int)v;
		if (++n % 4 == 0) {
			o[0] = (unsigned char)(acc >> 16);
			o[1] = (unsigned char)(acc >> 8);
			o[2] = (unsigned char)acc;
			if ((err = p11e_buf_append(out, o, 3)) != P11E_OK)
				goto fail;
			acc = 0;
		}
	}
	/* the padding must complete the last group exactly */
	if (pad > 2 || (n % 4 != 0 && n % 4 + pad != 4) ||
	    (n % 4 == 0 && pad != 0) || n % 4 == 1)
		goto bad;
	if (n % 4 == 2) {
		o[0] = (unsigned char)(acc >> 4);
		err = p11e_buf_append(out, o, 1);
	} else if (n % 4 == 3) {
		o[0] = (unsigned char)(acc >> 10);
		o[1] = (unsigned char)(acc >> 2);
		err = p11e_buf_append(out, o, 2);
	} else {
		err = P11E_OK;
	}
	if (err != P11E_OK)
		goto fail;
	if (out->len == start)
		goto bad;
	return P11E_OK;
bad:
	err = P11E_ERR_PARSE;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return err;
}

enum p11e_err
p11e_est_retry_after(
    const char *value, time_t now, uint64_t max, uint64_t *delay)
{
	struct tm tm;
	const char *end;
	uint64_t v;
	time_t t;

	if (value == NULL)
		return P11E_ERR_PARSE;
	while (*value == ' ')
		value++;
	if (p11e_num_parse_u64(value, 0, UINT64_MAX, &v) == P11E_OK) {
		*delay = v > max ? max : v;
		return P11E_OK;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL || (*end != '\0' && strcmp(end, " ") != 0))
		return P11E_ERR_PARSE;
	if ((t = timegm(&tm)) == (time_t)-1)
		return P11E_ERR_PARSE;
	v = t > now ? (uint64_t)(t - now) : 0;
	*delay = v > max ? max : v;
	return P11E_OK;
}

/* One sentence per problem type: what happened and what to do. */
static const struct {
	const char *type;
	enum p11e_err err;
	const char *text;
	bool with_detail; /* the server's detail helps (a date) */
} problems[] = {
	{ "invalid-credentials", P11E_ERR_AUTH_FAILED,
	    N_("the contract ID, user ID, password or one-time password is "
	       "wrong: check them and try again with the next one-time "
	       "password (5 failures in a row lock the account)"),
	    false },
	{ "account-locked", P11E_ERR_LOCKED,
	    N_("the account is locked after too many failures: ask your "
	       "administrator to unlock it"),
	    false },
	{ "otp-replayed", P11E_ERR_OTP_REPLAYED,
	    N_("this one-time password was already used: wait for the next "
	       "code and try again"),
	    false },
	{ "no-enrollment-window", P11E_ERR_NO_ENROLLMENT_WINDOW,
	    N_("the acquisition window has expired: ask your administrator to "
	       "reissue"),
	    false },
	{ "grid-mismatch", P11E_ERR_AUTH_FAILED,
	    N_("the customer card answer is wrong: look the cells up again"),
	    false },
	{ "confirmation-pin-mismatch", P11E_ERR_AUTH_FAILED,
	    N_("the confirmation PIN is wrong"), false },
	{ "csr-invalid", P11E_ERR_CSR_INVALID,
	    N_("the server could not read the certificate request: report this "
	       "to its operator"),
	    true },
	{ "key-policy-violation", P11E_ERR_KEY_POLICY,
	    N_("the server does not accept this key type: enroll again with "
	       "another --key-type"),
	    true },
	{ "extension-not-allowed", P11E_ERR_CSR_EXTENSIONS,
	    N_("the server refused the request's subject or extensions"),
	    true },
	{ "key-in-use", P11E_ERR_KEY_IN_USE,
	    N_("this key is already certified for someone else: enroll again "
	       "with a new key"),
	    false },
	{ "certificate-revoked", P11E_ERR_CERT_REVOKED,
	    N_("the certificate is revoked or no longer current: ask your "
	       "administrator to reissue"),
	    false },
	{ "too-early", P11E_ERR_TOO_EARLY, N_("it is too early to renew"),
	    true },
	{ "rate-limited", P11E_ERR_SERVER_BUSY,
	    N_("the server asks to slow down: try again in a minute"), false },
	{ "unavailable", P11E_ERR_SERVER_BUSY,
	    N_("the server is unavailable (nothing was consumed): try again "
	       "later"),
	    false },
	{ "invalid-request", P11E_ERR_SERVER_REFUSED,
	    N_("the server refused the request as malformed"), true },
	{ "unsupported-media-type", P11E_ERR_SERVER_REFUSED,
	    N_("the server does not speak this protocol version"), true },
	{ "method-not-allowed", P11E_ERR_SERVER_REFUSED,
	    N_("the server does not speak this protocol version"), true },
	{ "request-too-large", P11E_ERR_SERVER_REFUSED,
	    N_("the server found the request too large"), true },
};

enum p11e_err
p11e_est_problem(long status, const char *ctype, const unsigned char *body,
    size_t len, char *detail, size_t dlen)
{
	char esc[256] = "", tesc[128];
	const char *type = NULL, *d = NULL;
	enum p11e_err err;
	json_t *j = NULL;
	size_t i;

	if (p11e_est_media_is(ctype, "application/problem+json") &&
	    body != NULL)
		j = json_loadb(
		    (const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(j)) {
		type = json_string_value(json_object_get(j, "type"));
		d = json_string_value(json_object_get(j, "detail"));
		if (d != NULL)
			p11e_log_escape(esc, sizeof(esc), d, strlen(d));
	}
	for (i = 0; type != NULL && i < sizeof(problems) / sizeof(problems[0]);
	     i++) {
		if (strcmp(problems[i].type, type) != 0)
			continue;
		if (problems[i].with_detail && esc[0] != '\0')
			snprintf(detail, dlen, _("%s (server: %s)"),
			    _(problems[i].text), esc);
		else
			snprintf(detail, dlen, "%s", _(problems[i].text));
		err = problems[i].err;
		goto out;
	}
	if (status == 401) {
		err = P11E_ERR_AUTH_FAILED;
		snprintf(
		    detail, dlen, _("the server wants credentials (HTTP 401)"));
	} else if (status == 429 || status == 503) {
		err = P11E_ERR_SERVER_BUSY;
		snprintf(
		    detail, dlen, _("the server is busy (HTTP %ld)"), status);
	} else {
		err = P11E_ERR_SERVER_REFUSED;
		if (type != NULL) {
			p11e_log_escape(tesc, sizeof(tesc), type, strlen(type));
			snprintf(detail, dlen, "HTTP %ld, problem '%s'%s%s",
			    status, tesc, esc[0] ? ": " : "", esc);
		} else {
			snprintf(detail, dlen, "HTTP %ld", status);
		}
	}
out:
	json_decref(j);
	return err;
}

enum p11e_err
p11e_est_certs_only(const void *b64, size_t len, STACK_OF(X509) * *out,
    char *detail, size_t dlen)
{
	STACK_OF(X509) *certs = NULL, *in;
	const unsigned char *p;
	struct p11e_buf der;
	PKCS7 *p7 = NULL;
	enum p11e_err err = P11E_ERR_BAD_RESPONSE;
	int i;

	*out = NULL;
	p11e_buf_init(&der, 256 * 1024);
	if (p11e_est_b64_decode(b64, len, &der) != P11E_OK) {
		snprintf(detail, dlen, "the answer is not base64");
		goto out;
	}
	p = der.data;
	p7 = d2i_PKCS7(NULL, &p, (long)der.len);
	if (p7 == NULL || p != der.data + der.len) {
		snprintf(
		    detail, dlen, "the answer is not one PKCS#7 structure");
		goto out;
	}
	if (!PKCS7_type_is_signed(p7) || p7->d.sign == NULL) {
		snprintf(detail, dlen, "the PKCS#7 answer is not SignedData");
		goto out;
	}
	in = p7->d.sign->cert;
	if (sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info) > 0) {
		snprintf(detail, dlen, "the PKCS#7 answer is not certs-only");
		goto out;
	}
	if (sk_X509_num(in) < 1 || sk_X509_num(in) > P11E_EST_CERTS_MAX) {
		snprintf(detail, dlen,
		    "the PKCS#7 answer holds %d certificates (1 to %d "
		    "expected)",
		    sk_X509_num(in), P11E_EST_CERTS_MAX);
		goto out;
	}
	if ((certs = sk_X509_new_null()) == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < sk_X509_num(in); i++) {
		X509 *x = sk_X509_value(in, i);

		if (!X509_up_ref(x) || !sk_X509_push(certs, x)) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
	}
	*out = certs;
	certs = NULL; /* transferred */
	err = P11E_OK;
out:
	ERR_clear_error();
	sk_X509_pop_free(certs, X509_free);
	PKCS7_free(p7);
	p11e_buf_clear(&der);
	return err;
}

static bool
has_spki(X509 *x, const unsigned char *spki, size_t len)
{
	unsigned char *der = NULL;
	bool same;
	int n;

	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	same = n > 0 && (size_t)n == len && memcmp(der, spki, len) == 0;
	OPENSSL_free(der);
	return same;
}

enum p11e_err
p11e_est_check_issued(STACK_OF(X509) * issued, STACK_OF(X509) * cacerts,
    const unsigned char *spki, size_t spki_len, time_t now, X509 **leaf,
    char *detail, size_t dlen)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *untrusted = NULL;
	enum p11e_err err = P11E_ERR_BAD_RESPONSE;
	X509 *x = NULL;
	int i, rc;

	*leaf = NULL;
	for (i = 0; i < sk_X509_num(issued); i++) {
		if (has_spki(sk_X509_value(issued, i), spki, spki_len)) {
			x = sk_X509_value(issued, i);
			break;
		}
	}
	if (x == NULL) {
		snprintf(detail, dlen,
		    "no certificate in the answer carries the key generated on "
		    "the token");
		return P11E_ERR_BAD_RESPONSE;
	}
	if (X509_cmp_time(X509_get0_notBefore(x), &now) >= 0 ||
	    X509_cmp_time(X509_get0_notAfter(x), &now) <= 0) {
		snprintf(detail, dlen,
		    "the issued certificate is not valid now (check the "
		    "clock)");
		return P11E_ERR_BAD_RESPONSE;
	}
	if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) == 0 ||
	    (X509_get_extended_key_usage(x) & XKU_SSL_CLIENT) == 0) {
		snprintf(detail, dlen,
		    "the issued certificate is not for client authentication "
		    "(no extendedKeyUsage clientAuth)");
		return P11E_ERR_BAD_RESPONSE;
	}
	if ((store = X509_STORE_new()) == NULL ||
	    (ctx = X509_STORE_CTX_new()) == NULL ||
	    (untrusted = sk_X509_new_null()) == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < sk_X509_num(cacerts); i++) {
		if (!X509_STORE_add_cert(store, sk_X509_value(cacerts, i))) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
	}
	for (i = 0; i < sk_X509_num(issued); i++) {
		if (sk_X509_value(issued, i) != x &&
		    !sk_X509_push(untrusted, sk_X509_value(issued, i))) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
	}
	/* an intermediate CA from cacerts may be the anchor */
	X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
	if (!X509_STORE_CTX_init(ctx, store, x, untrusted)) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, now);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	rc = X509_verify_cert(ctx);
	if (rc != 1) {
		snprintf(detail, dlen,
		    "the issued certificate does not chain to the service's CA "
		    "certificates (%s)",
		    X509_verify_cert_error_string(
			X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	if (!X509_up_ref(x)) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	*leaf = x;
	err = P11E_OK;
out:
	ERR_clear_error();
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return err;
}

enum p11e_err
p11e_est_spki_pin(X509 *cert, char *out, size_t outlen)
{
	unsigned char *der = NULL, md[32], b64[64];
	unsigned int mdlen = 0;
	int n;

	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	if (n <= 0 ||
	    !EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL)) {
		OPENSSL_free(der);
		return P11E_ERR_CRYPTO;
	}
	OPENSSL_free(der);
	EVP_EncodeBlock(b64, md, (int)mdlen);
	if ((size_t)snprintf(out, outlen, "sha256//%s", b64) >= outlen)
		return P11E_ERR_TOO_LARGE;
	return P11E_OK;
}
