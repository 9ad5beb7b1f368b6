/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/secret.h"
#include "server/hash.h"
#include "server/totp.h"

/* RFC 6238 Appendix B (security.md section (c)). */
static const struct {
	int64_t t;
	const char *sha1, *sha256, *sha512;
} vectors[] = {
	{ 59, "94287082", "46119246", "90693936" },
	{ 1111111109, "07081804", "68084774", "25091201" },
	{ 1111111111, "14050471", "67062674", "99943326" },
	{ 1234567890, "89005924", "91819424", "93441116" },
	{ 2000000000, "69279037", "90698825", "38618901" },
	{ 20000000000LL, "65353130", "77737706", "47863826" },
};

static const char seed1[] = "12345678901234567890";
static const char seed256[] = "12345678901234567890123456789012";
static const char seed512[] =
    "1234567890123456789012345678901234567890123456789012345678901234";

static enum p11e_err
check(const char *seed, enum p11e_totp_alg alg, unsigned int digits,
    unsigned int skew, int64_t t, int64_t last, const char *code,
    int64_t *matched)
{
	struct p11e_totp_params p = { digits, 30, skew, alg };
	struct p11e_secret *s = p11e_secret_new_from(seed, strlen(seed));
	struct p11e_secret *c = p11e_secret_new_from(code, strlen(code));
	enum p11e_err err;

	assert_non_null(s);
	assert_non_null(c);
	err = p11e_totp_verify(s, &p, (time_t)t, last, c, matched);
	p11e_secret_free(s);
	p11e_secret_free(c);
	return err;
}

static void
test_rfc6238_vectors(void **state)
{
	int64_t m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		int64_t step = vectors[i].t / 30;

		m = -5;
		assert_int_equal(check(seed1, P11E_TOTP_SHA1, 8, 0,
				     vectors[i].t, -1, vectors[i].sha1, &m),
		    P11E_OK);
		assert_int_equal(m, step);
		assert_int_equal(check(seed256, P11E_TOTP_SHA256, 8, 0,
				     vectors[i].t, -1, vectors[i].sha256, &m),
		    P11E_OK);
		assert_int_equal(check(seed512, P11E_TOTP_SHA512, 8, 0,
				     vectors[i].t, -1, vectors[i].sha512, &m),
		    P11E_OK);
		/* the 6-digit code is the last 6 digits */
		assert_int_equal(check(seed1, P11E_TOTP_SHA1, 6, 0,
				     vectors[i].t, -1, vectors[i].sha1 + 2, &m),
		    P11E_OK);
	}
	/* the classic bug: SHA-256 with the 20-byte seed gives another code */
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA256, 8, 0, 59, -1, "46119246", &m),
	    P11E_ERR_OTP_INVALID);
}

static void
test_window_and_replay(void **state)
{
	const int64_t t = 1111111111, T = 0x23523ED;
	int64_t m = 0, last;

	(void)state;
	/* T-2 and T+2 rejected */
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, "731029", &m),
	    P11E_ERR_OTP_INVALID);
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, "306183", &m),
	    P11E_ERR_OTP_INVALID);
	/* T+1 accepted, and its step reported (not the distance) */
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, "266759", &m), P11E_OK);
	assert_int_equal(m, T + 1);
	/* the sequence of security.md: T-1, T, T-1 again, T again */
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, "081804", &m), P11E_OK);
	assert_int_equal(m, T - 1);
	last = m;
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, last, "050471", &m), P11E_OK);
	assert_int_equal(m, T);
	last = m;
	m = 42;
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, last, "081804", &m),
	    P11E_ERR_OTP_REPLAYED);
	assert_int_equal(m, 42);
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, last, "050471", &m),
	    P11E_ERR_OTP_REPLAYED);
	/* skew 0: only T */
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 0, t, -1, "081804", &m),
	    P11E_ERR_OTP_INVALID);
}

static void
test_bad_formats(void **state)
{
	const int64_t t = 1111111111;
	int64_t m = 0;

	(void)state;
	assert_int_equal(check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, "50471", &m),
	    P11E_ERR_OTP_INVALID);
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, "4050471", &m),
	    P11E_ERR_OTP_INVALID);
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, "１４０５０４７１", &m),
	    P11E_ERR_OTP_INVALID);
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, "０５０４７１", &m),
	    P11E_ERR_OTP_INVALID);
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, " 50471", &m),
	    P11E_ERR_OTP_INVALID);
	assert_int_equal(
	    check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, "05047a", &m),
	    P11E_ERR_OTP_INVALID);
	assert_int_equal(check(seed1, P11E_TOTP_SHA1, 6, 1, t, -1, "", &m),
	    P11E_ERR_OTP_INVALID);
}

static void
test_uri(void **state)
{
	struct p11e_secret *s = p11e_secret_new_from(seed1, 20), *u = NULL;

	(void)state;
	assert_int_equal(p11e_totp_uri(s, &p11e_totp_default_params,
			     "p11enroll", "00012345678 S0001", &u),
	    P11E_OK);
	assert_string_equal(p11e_secret_str(u),
	    "otpauth://totp/p11enroll:00012345678%20S0001?secret="
	    "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=p11enroll&digits=6&"
	    "period=30&algorithm=SHA1");
	p11e_secret_free(u);
	p11e_secret_free(s);
}

static void
test_hash(void **state)
{
	struct p11e_hash_params cheap = { 1, 1024, 1 };
	struct p11e_secret *pw = p11e_secret_new_from("correct horse", 13);
	struct p11e_secret *bad = p11e_secret_new_from("correct horsf", 13);
	char enc[P11E_HASH_ENCODED_MAX], enc2[P11E_HASH_ENCODED_MAX];

	(void)state;
	assert_int_equal(p11e_hash_secret(pw, &cheap, enc), P11E_OK);
	assert_memory_equal(enc, "$argon2id$v=19$m=1024,t=1,p=1$", 30);
	assert_null(strstr(enc, "correct"));
	assert_int_equal(p11e_hash_verify(enc, pw), P11E_OK);
	assert_int_equal(p11e_hash_verify(enc, bad), P11E_ERR_AUTH_FAILED);
	/* salted: the same password hashes differently */
	assert_int_equal(p11e_hash_secret(pw, &cheap, enc2), P11E_OK);
	assert_string_not_equal(enc, enc2);
	/* default parameters are in the string */
	assert_int_equal(p11e_hash_secret(pw, NULL, enc2), P11E_OK);
	assert_memory_equal(enc2, "$argon2id$v=19$m=19456,t=2,p=1$", 31);
	assert_int_equal(p11e_hash_verify(enc2, pw), P11E_OK);
	/* unknown user: a dummy verification, always a failure */
	assert_int_equal(p11e_hash_verify(NULL, pw), P11E_ERR_AUTH_FAILED);
	assert_int_equal(p11e_hash_verify("$2y$10$abc", pw), P11E_ERR_PARSE);
	p11e_secret_free(pw);
	p11e_secret_free(bad);
}

static void
test_token(void **state)
{
	/* SHA-256("abc"), FIPS 180-2 */
	static const unsigned char abc[32] = { 0xba, 0x78, 0x16, 0xbf, 0x8f,
		0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22,
		0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4,
		0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };
	struct p11e_secret *t1 = NULL, *t2 = NULL;
	unsigned char md[32], md2[32];
	size_t i;

	(void)state;
	p11e_hash_sha256("abc", 3, md);
	assert_memory_equal(md, abc, 32);
	assert_int_equal(p11e_hash_token_new(&t1, md), P11E_OK);
	assert_int_equal(p11e_hash_token_new(&t2, md2), P11E_OK);
	/* 32 bytes in base64url without padding: 43 characters */
	assert_int_equal(p11e_secret_len(t1), 43);
	for (i = 0; i < 43; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz0123456789-_",
		    p11e_secret_str(t1)[i]));
	assert_string_not_equal(p11e_secret_str(t1), p11e_secret_str(t2));
	/* md is the SHA-256 of the text, the form that is stored */
	p11e_hash_sha256(p11e_secret_str(t1), 43, md2);
	assert_memory_equal(md, md2, 32);
	p11e_secret_free(t1);
	p11e_secret_free(t2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6238_vectors),
		cmocka_unit_test(test_window_and_replay),
		cmocka_unit_test(test_bad_formats),
		cmocka_unit_test(test_uri),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_token),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
