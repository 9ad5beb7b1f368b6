/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/est.h"
#include "common/ipc.h"

static void
test_media(void **state)
{
	(void)state;
	assert_true(
	    p11e_est_media_is("application/pkcs7-mime; smime-type=certs-only",
		"application/pkcs7-mime"));
	assert_true(p11e_est_media_is(
	    "Application/PKCS7-MIME", "application/pkcs7-mime"));
	assert_true(p11e_est_media_is(
	    " application/pkcs7-mime ;x=1", "application/pkcs7-mime"));
	assert_false(p11e_est_media_is(
	    "application/pkcs7-mimex", "application/pkcs7-mime"));
	assert_false(p11e_est_media_is("text/plain", "application/pkcs7-mime"));
	assert_false(p11e_est_media_is(NULL, "application/pkcs7-mime"));
}

static void
check_b64(const char *in, size_t len, const char *want, size_t wantlen)
{
	struct p11e_buf b;

	p11e_buf_init(&b, 1024);
	assert_int_equal(p11e_est_b64_decode(in, len, &b), P11E_OK);
	assert_int_equal(b.len, wantlen);
	assert_memory_equal(b.data, want, wantlen);
	p11e_buf_clear(&b);
}

static void
test_b64(void **state)
{
	static const char nul[] = "Zm9v\r\nYmFy\n\0\0";
	struct p11e_buf b;

	(void)state;
	check_b64("Zm9vYmFy", 8, "foobar", 6);
	check_b64("Zm9v\r\nYmE=", 10, "fooba", 5);
	check_b64(" Zm9v YmFy\t", 11, "foobar", 6);
	check_b64("Zg==", 4, "f", 1);
	check_b64(nul, sizeof(nul) - 1, "foobar", 6);
	p11e_buf_init(&b, 1024);
	assert_int_equal(p11e_est_b64_decode("Zm9v!", 5, &b), P11E_ERR_PARSE);
	assert_int_equal(p11e_est_b64_decode("Zm9=v", 5, &b), P11E_ERR_PARSE);
	assert_int_equal(p11e_est_b64_decode("Zm9", 3, &b), P11E_ERR_PARSE);
	assert_int_equal(p11e_est_b64_decode("Z===", 4, &b), P11E_ERR_PARSE);
	assert_int_equal(p11e_est_b64_decode("", 0, &b), P11E_ERR_PARSE);
	assert_int_equal(p11e_est_b64_decode("\0a", 2, &b), P11E_ERR_PARSE);
	assert_int_equal(b.len, 0);
	p11e_buf_clear(&b);
	/* larger than the buffer may grow */
	p11e_buf_init(&b, 2);
	assert_int_equal(
	    p11e_est_b64_decode("Zm9vYmFy", 8, &b), P11E_ERR_TOO_LARGE);
	assert_int_equal(b.len, 0);
	p11e_buf_clear(&b);
}

static void
test_retry_after(void **state)
{
	uint64_t d = 99;

	(void)state;
	assert_int_equal(p11e_est_retry_after("120", 0, 600, &d), P11E_OK);
	assert_int_equal(d, 120);
	assert_int_equal(p11e_est_retry_after("99999", 0, 600, &d), P11E_OK);
	assert_int_equal(d, 600);
	/* 1994-11-06 08:49:37 UTC = 784111777 (RFC 9110's example) */
	assert_int_equal(p11e_est_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
			     784111777 - 30, 600, &d),
	    P11E_OK);
	assert_int_equal(d, 30);
	assert_int_equal(p11e_est_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
			     784111777 + 30, 600, &d),
	    P11E_OK);
	assert_int_equal(d, 0);
	assert_int_equal(
	    p11e_est_retry_after("-5", 0, 600, &d), P11E_ERR_PARSE);
	assert_int_equal(
	    p11e_est_retry_after("soon", 0, 600, &d), P11E_ERR_PARSE);
	assert_int_equal(
	    p11e_est_retry_after(NULL, 0, 600, &d), P11E_ERR_PARSE);
}

static enum p11e_err
prob(long status, const char *type, char *detail)
{
	char body[256];
	int n;

	n = snprintf(body, sizeof(body),
	    "{\"type\":\"%s\",\"title\":\"t\",\"status\":%ld,"
	    "\"detail\":\"from 2026-12-01\"}",
	    type, status);
	return p11e_est_problem(status,
	    "application/problem+json; charset=utf-8",
	    (const unsigned char *)body, (size_t)n, detail, 512);
}

static void
test_problem(void **state)
{
	char d[512];

	(void)state;
	assert_int_equal(prob(403, "no-enrollment-window", d),
	    P11E_ERR_NO_ENROLLMENT_WINDOW);
	assert_string_equal(d,
	    "the acquisition window has expired: ask your administrator to "
	    "reissue");
	assert_int_equal(
	    prob(401, "invalid-credentials", d), P11E_ERR_AUTH_FAILED);
	assert_non_null(strstr(d, "password"));
	assert_int_equal(prob(403, "account-locked", d), P11E_ERR_LOCKED);
	assert_int_equal(prob(401, "otp-replayed", d), P11E_ERR_OTP_REPLAYED);
	assert_int_equal(
	    prob(400, "key-policy-violation", d), P11E_ERR_KEY_POLICY);
	assert_int_equal(prob(409, "key-in-use", d), P11E_ERR_KEY_IN_USE);
	assert_int_equal(prob(403, "too-early", d), P11E_ERR_TOO_EARLY);
	assert_non_null(strstr(d, "from 2026-12-01"));
	assert_int_equal(prob(429, "rate-limited", d), P11E_ERR_SERVER_BUSY);
	assert_int_equal(prob(503, "unavailable", d), P11E_ERR_SERVER_BUSY);
	assert_int_equal(
	    prob(418, "teapot\\u0007", d), P11E_ERR_SERVER_REFUSED);
	assert_null(strchr(d, '\a'));
	/* not problem+json: the status decides */
	assert_int_equal(p11e_est_problem(401, "text/plain",
			     (const unsigned char *)"no", 2, d, sizeof(d)),
	    P11E_ERR_AUTH_FAILED);
	assert_int_equal(p11e_est_problem(500, NULL, NULL, 0, d, sizeof(d)),
	    P11E_ERR_SERVER_REFUSED);
	assert_string_equal(d, "HTTP 500");
	assert_int_equal(p11e_est_problem(403, "application/problem+json",
			     (const unsigned char *)"[1", 2, d, sizeof(d)),
	    P11E_ERR_SERVER_REFUSED);
}

/* ---- certificates made here ---- */

static EVP_PKEY *
key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static X509 *
cert(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *signer, long from,
    long to, const char *eku, bool ca)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(
	    x, X509_get_subject_name(issuer != NULL ? issuer : x));
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, pub);
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
	    ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	if (ca) {
		e = X509V3_EXT_conf_nid(
		    NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	if (eku != NULL) {
		e = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, eku);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, signer, EVP_sha256()) > 0);
	return x;
}

struct pki {
	EVP_PKEY *cakey, *leafkey, *otherkey;
	X509 *ca, *other_ca;
	unsigned char *spki;
	int spki_len;
};

static struct pki P;

static int
pki_setup(void **state)
{
	(void)state;
	p11e_ipc_json_init();
	P.cakey = key();
	P.leafkey = key();
	P.otherkey = key();
	P.ca = cert("CA", P.cakey, NULL, P.cakey, -3600, 86400, NULL, true);
	P.other_ca = cert(
	    "Other CA", P.otherkey, NULL, P.otherkey, -3600, 86400, NULL, true);
	P.spki_len = i2d_PUBKEY(P.leafkey, &P.spki);
	return P.spki_len > 0 ? 0 : -1;
}

static int
pki_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(P.cakey);
	EVP_PKEY_free(P.leafkey);
	EVP_PKEY_free(P.otherkey);
	X509_free(P.ca);
	X509_free(P.other_ca);
	OPENSSL_free(P.spki);
	return 0;
}

static STACK_OF(X509) * stack(X509 *a, X509 *b)
{
	STACK_OF(X509) *s = sk_X509_new_null();

	sk_X509_push(s, a);
	if (b != NULL)
		sk_X509_push(s, b);
	return s;
}

static enum p11e_err
check(X509 *leaf, X509 *ca, const unsigned char *spki, int len)
{
	STACK_OF(X509) *issued = stack(leaf, NULL), *cas = stack(ca, NULL);
	char d[512] = "";
	X509 *got = NULL;
	enum p11e_err err;

	err = p11e_est_check_issued(
	    issued, cas, spki, (size_t)len, time(NULL), &got, d, sizeof(d));
	if (err == P11E_OK)
		assert_ptr_equal(got, leaf);
	else
		assert_true(d[0] != '\0');
	X509_free(got);
	sk_X509_free(issued);
	sk_X509_free(cas);
	return err;
}

static void
test_check_issued(void **state)
{
	X509 *good, *expired, *server, *noeku, *foreign;
	unsigned char *other = NULL;
	int olen;

	(void)state;
	good = cert("S0001", P.leafkey, P.ca, P.cakey, -300, 86400,
	    "clientAuth", false);
	expired = cert("S0001", P.leafkey, P.ca, P.cakey, -86400, -60,
	    "clientAuth", false);
	server = cert("S0001", P.leafkey, P.ca, P.cakey, -300, 86400,
	    "serverAuth", false);
	noeku =
	    cert("S0001", P.leafkey, P.ca, P.cakey, -300, 86400, NULL, false);
	foreign = cert("S0001", P.leafkey, P.other_ca, P.otherkey, -300, 86400,
	    "clientAuth", false);
	olen = i2d_PUBKEY(P.otherkey, &other);

	assert_int_equal(check(good, P.ca, P.spki, P.spki_len), P11E_OK);
	/* B22: another key, expired, wrong EKU, another CA */
	assert_int_equal(check(good, P.ca, other, olen), P11E_ERR_BAD_RESPONSE);
	assert_int_equal(
	    check(expired, P.ca, P.spki, P.spki_len), P11E_ERR_BAD_RESPONSE);
	assert_int_equal(
	    check(server, P.ca, P.spki, P.spki_len), P11E_ERR_BAD_RESPONSE);
	assert_int_equal(
	    check(noeku, P.ca, P.spki, P.spki_len), P11E_ERR_BAD_RESPONSE);
	assert_int_equal(
	    check(foreign, P.ca, P.spki, P.spki_len), P11E_ERR_BAD_RESPONSE);
	OPENSSL_free(other);
	X509_free(good);
	X509_free(expired);
	X509_free(server);
	X509_free(noeku);
	X509_free(foreign);
}

/* base64 of a certs-only PKCS#7 holding certs */
static char *
p7_b64(STACK_OF(X509) * certs, bool signer)
{
	PKCS7 *p7 = PKCS7_new();
	unsigned char *der = NULL;
	char *out;
	int n, i;

	PKCS7_set_type(p7, NID_pkcs7_signed);
	PKCS7_content_new(p7, NID_pkcs7_data);
	for (i = 0; i < sk_X509_num(certs); i++)
		PKCS7_add_certificate(p7, sk_X509_value(certs, i));
	if (signer)
		assert_non_null(
		    PKCS7_add_signature(p7, P.ca, P.cakey, EVP_sha256()));
	n = i2d_PKCS7(p7, &der);
	assert_true(n > 0);
	out = malloc(4 * ((size_t)n / 3 + 1) + 1);
	EVP_EncodeBlock((unsigned char *)out, der, n);
	OPENSSL_free(der);
	PKCS7_free(p7);
	return out;
}

static void
test_certs_only(void **state)
{
	STACK_OF(X509) *in = stack(P.ca, P.other_ca), *out = NULL, *empty;
	char d[256], *b;
	int i;

	(void)state;
	b = p7_b64(in, false);
	assert_int_equal(
	    p11e_est_certs_only(b, strlen(b), &out, d, sizeof(d)), P11E_OK);
	assert_int_equal(sk_X509_num(out), 2);
	assert_int_equal(X509_cmp(sk_X509_value(out, 0), P.ca), 0);
	sk_X509_pop_free(out, X509_free);
	free(b);
	/* with a signer it is not certs-only */
	b = p7_b64(in, true);
	assert_int_equal(p11e_est_certs_only(b, strlen(b), &out, d, sizeof(d)),
	    P11E_ERR_BAD_RESPONSE);
	assert_null(out);
	free(b);
	/* none, and too many (B22: 0 or 1000 certificates) */
	empty = sk_X509_new_null();
	b = p7_b64(empty, false);
	assert_int_equal(p11e_est_certs_only(b, strlen(b), &out, d, sizeof(d)),
	    P11E_ERR_BAD_RESPONSE);
	free(b);
	for (i = 0; i < P11E_EST_CERTS_MAX + 1; i++)
		sk_X509_push(empty, P.ca);
	b = p7_b64(empty, false);
	assert_int_equal(p11e_est_certs_only(b, strlen(b), &out, d, sizeof(d)),
	    P11E_ERR_BAD_RESPONSE);
	free(b);
	sk_X509_free(empty);
	assert_int_equal(
	    p11e_est_certs_only("bm90IGFzbjE=", 12, &out, d, sizeof(d)),
	    P11E_ERR_BAD_RESPONSE);
	assert_int_equal(p11e_est_certs_only("%%%", 3, &out, d, sizeof(d)),
	    P11E_ERR_BAD_RESPONSE);
	sk_X509_free(in);
}

static void
test_pin(void **state)
{
	char pin[80];

	(void)state;
	assert_int_equal(p11e_est_spki_pin(P.ca, pin, sizeof(pin)), P11E_OK);
	assert_int_equal(strncmp(pin, "sha256//", 8), 0);
	assert_int_equal(strlen(pin), 8 + 44);
	assert_int_equal(p11e_est_spki_pin(P.ca, pin, 20), P11E_ERR_TOO_LARGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_media),
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_problem),
		cmocka_unit_test(test_check_issued),
		cmocka_unit_test(test_certs_only),
		cmocka_unit_test(test_pin),
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
