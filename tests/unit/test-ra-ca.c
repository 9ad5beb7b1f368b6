/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "server/ca.h"

static struct p11e_ca *ca;
static EVP_PKEY *p256;

static const struct p11e_ca_profile profile = {
	"00012345678 S0001",
	"しんきん商事",
	"urn:p11enroll:00012345678:S0001",
	0,
	-1,
	NULL,
};

static EVP_PKEY *
gen_rsa(unsigned int bits, unsigned long e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	BIGNUM *bn = BN_new();
	EVP_PKEY *k = NULL;

	assert_non_null(ctx);
	BN_set_word(bn, e);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits), 1);
	assert_int_equal(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, bn), 1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);
	BN_free(bn);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static int
setup(void **state)
{
	X509_NAME *n = X509_NAME_new();
	X509V3_CTX v3;
	X509 *x = X509_new();
	X509_EXTENSION *ext;

	(void)state;
	p256 = EVP_EC_gen("P-256");
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)"test CA", -1, -1, 0);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, p256);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(
	    NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext =
	    X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (X509_sign(x, p256, EVP_sha256()) <= 0)
		return -1;
	if (p11e_ca_from(x, p256, &ca) != P11E_OK)
		return -1;
	X509_NAME_free(n);
	X509_free(x);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	p11e_ca_free(ca);
	EVP_PKEY_free(p256);
	return 0;
}

/* A DER CSR for key with the given subject CN and extensions (conf). */
static unsigned char *
make_csr(EVP_PKEY *key, const char *cn, const char *org, const char *exts,
    size_t *len)
{
	STACK_OF(X509_EXTENSION) *sk = NULL;
	X509_REQ *req = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	unsigned char *der = NULL;
	int l;

	if (org != NULL)
		X509_NAME_add_entry_by_NID(n, NID_organizationName,
		    MBSTRING_UTF8, (const unsigned char *)org, -1, -1, 0);
	if (cn != NULL)
		X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
		    (const unsigned char *)cn, -1, -1, 0);
	X509_REQ_set_subject_name(req, n);
	X509_REQ_set_pubkey(req, key);
	if (exts != NULL) {
		char buf[512], *p, *bar;

		sk = sk_X509_EXTENSION_new_null();
		snprintf(buf, sizeof(buf), "%s", exts);
		for (p = buf; p != NULL; p = bar != NULL ? bar + 1 : NULL) {
			char *eq;
			X509_EXTENSION *e;

			if ((bar = strchr(p, '|')) != NULL)
				*bar = '\0';
			eq = strchr(p, '=');
			*eq = '\0';
			e = X509V3_EXT_conf(NULL, NULL, p, eq + 1);
			assert_non_null(e);
			sk_X509_EXTENSION_push(sk, e);
		}
		X509_REQ_add_extensions(req, sk);
		sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
	}
	assert_true(X509_REQ_sign(req, key,
			EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519
			    ? NULL
			    : EVP_sha256()) > 0);
	l = i2d_X509_REQ(req, &der);
	assert_true(l > 0);
	*len = (size_t)l;
	X509_NAME_free(n);
	X509_REQ_free(req);
	return der;
}

static enum p11e_err
check(EVP_PKEY *key, const char *cn, const char *org, const char *exts,
    const char **type)
{
	char detail[256];
	X509_REQ *req = NULL;
	enum p11e_err err;
	unsigned char *der;
	size_t len;

	der = make_csr(key, cn, org, exts, &len);
	err = p11e_ca_check_csr(der, len, P11E_CA_KEY_ALL, &profile, &req, type,
	    detail, sizeof(detail));
	if (err != P11E_OK)
		assert_true(detail[0] != '\0');
	X509_REQ_free(req);
	OPENSSL_free(der);
	return err;
}

static void
test_key_policy(void **state)
{
	const char *type = NULL;
	EVP_PKEY *k;

	(void)state;
	assert_int_equal(check(p256, NULL, NULL, NULL, &type), P11E_OK);
	assert_string_equal(type, "ec-p256");
	k = EVP_EC_gen("P-384");
	assert_int_equal(check(k, NULL, NULL, NULL, &type), P11E_OK);
	assert_string_equal(type, "ec-p384");
	EVP_PKEY_free(k);
	k = gen_rsa(2048, 65537);
	assert_int_equal(check(k, NULL, NULL, NULL, &type), P11E_OK);
	assert_string_equal(type, "rsa-2048");
	EVP_PKEY_free(k);
	k = gen_rsa(1024, 65537);
	assert_int_equal(
	    check(k, NULL, NULL, NULL, &type), P11E_ERR_KEY_POLICY);
	assert_null(type);
	EVP_PKEY_free(k);
	k = gen_rsa(2048, 3);
	assert_int_equal(
	    check(k, NULL, NULL, NULL, &type), P11E_ERR_KEY_POLICY);
	EVP_PKEY_free(k);
	k = EVP_EC_gen("secp256k1");
	assert_non_null(k);
	assert_int_equal(
	    check(k, NULL, NULL, NULL, &type), P11E_ERR_KEY_POLICY);
	EVP_PKEY_free(k);
	/* P-192: only when this OpenSSL still builds it */
	if ((k = EVP_EC_gen("prime192v1")) != NULL) {
		assert_int_equal(
		    check(k, NULL, NULL, NULL, &type), P11E_ERR_KEY_POLICY);
		EVP_PKEY_free(k);
	}
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(k);
	assert_int_equal(
	    check(k, NULL, NULL, NULL, &type), P11E_ERR_KEY_POLICY);
	EVP_PKEY_free(k);
}

static void
test_policy_mask(void **state)
{
	unsigned int mask = 0;
	const char *type;
	char detail[128];

	(void)state;
	assert_int_equal(p11e_ca_key_types_parse("ec-p384, rsa-3072", &mask,
			     detail, sizeof(detail)),
	    P11E_OK);
	assert_int_equal(mask, P11E_CA_KEY_EC_P384 | P11E_CA_KEY_RSA_3072);
	assert_int_equal(p11e_ca_key_types_parse(
			     "ec-p256,dsa-1024", &mask, detail, sizeof(detail)),
	    P11E_ERR_PARSE);
	assert_non_null(strstr(detail, "dsa-1024"));
	assert_int_equal(p11e_ca_key_policy(p256, P11E_CA_KEY_EC_P384, &type,
			     detail, sizeof(detail)),
	    P11E_ERR_KEY_POLICY);
	/* the same through a request (the EC fast path) */
	{
		X509_REQ *req = NULL;
		unsigned char *der;
		size_t len;

		der = make_csr(p256, NULL, NULL, NULL, &len);
		type = "x";
		assert_int_equal(
		    p11e_ca_check_csr(der, len, P11E_CA_KEY_EC_P384, &profile,
			&req, &type, detail, sizeof(detail)),
		    P11E_ERR_KEY_POLICY);
		assert_null(req);
		assert_null(type);
		assert_non_null(strstr(detail, "ec-p256"));
		OPENSSL_free(der);
	}
}

static void
test_extensions(void **state)
{
	const char *t;

	(void)state;
	/* what we would issue anyway is fine, and a copied subject/SAN */
	assert_int_equal(check(p256, "00012345678 S0001", "しんきん商事",
			     "basicConstraints=critical,CA:FALSE|keyUsage="
			     "critical,digitalSignature|extendedKeyUsage="
			     "clientAuth|subjectAltName=URI:urn:p11enroll:"
			     "00012345678:S0001",
			     &t),
	    P11E_OK);
	assert_int_equal(
	    check(p256, NULL, NULL, "basicConstraints=CA:TRUE", &t),
	    P11E_ERR_CSR_EXTENSIONS);
	assert_int_equal(check(p256, NULL, NULL,
			     "extendedKeyUsage=clientAuth,serverAuth", &t),
	    P11E_ERR_CSR_EXTENSIONS);
	assert_int_equal(
	    check(p256, NULL, NULL, "extendedKeyUsage=codeSigning", &t),
	    P11E_ERR_CSR_EXTENSIONS);
	assert_int_equal(
	    check(p256, NULL, NULL, "subjectAltName=DNS:evil.example", &t),
	    P11E_ERR_CSR_EXTENSIONS);
	assert_int_equal(check(p256, NULL, NULL,
			     "subjectAltName=URI:urn:p11enroll:00012345678:"
			     "S0002",
			     &t),
	    P11E_ERR_CSR_EXTENSIONS);
	assert_int_equal(check(p256, NULL, NULL,
			     "keyUsage=digitalSignature,keyCertSign", &t),
	    P11E_ERR_CSR_EXTENSIONS);
	assert_int_equal(
	    check(p256, "00012345678 S0002", "しんきん商事", NULL, &t),
	    P11E_ERR_CSR_EXTENSIONS);
	assert_int_equal(check(p256, NULL, NULL, "nsComment=hello", &t),
	    P11E_ERR_CSR_EXTENSIONS);
}

static void
test_bad_csr(void **state)
{
	X509_REQ *req = NULL;
	const char *t;
	char detail[128];
	unsigned char *der, *copy;
	size_t len;

	(void)state;
	der = make_csr(p256, NULL, NULL, NULL, &len);
	copy = malloc(len + 1);
	memcpy(copy, der, len);
	copy[len] = 0;
	/* trailing garbage */
	assert_int_equal(p11e_ca_check_csr(copy, len + 1, P11E_CA_KEY_ALL,
			     &profile, &req, &t, detail, sizeof(detail)),
	    P11E_ERR_CSR_INVALID);
	/* truncated */
	assert_int_equal(p11e_ca_check_csr(copy, len - 1, P11E_CA_KEY_ALL,
			     &profile, &req, &t, detail, sizeof(detail)),
	    P11E_ERR_CSR_INVALID);
	/* one bit flipped in the signature's last byte */
	copy[len - 1] ^= 0x01;
	assert_int_equal(p11e_ca_check_csr(copy, len, P11E_CA_KEY_ALL, &profile,
			     &req, &t, detail, sizeof(detail)),
	    P11E_ERR_CSR_INVALID);
	assert_null(req);
	copy[len - 1] ^= 0x01;
	/* a point that is not on the curve */
	{
		static const unsigned char ec_p256_spki[] = { 0x30, 0x59, 0x30,
			0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
			0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
			0x01, 0x07, 0x03, 0x42, 0x00, 0x04 };
		unsigned char *at =
		    memmem(copy, len, ec_p256_spki, sizeof(ec_p256_spki));

		assert_non_null(at);
		at[sizeof(ec_p256_spki) + 40] ^= 0x01;
		assert_int_equal(
		    p11e_ca_check_csr(copy, len, P11E_CA_KEY_ALL, &profile,
			&req, &t, detail, sizeof(detail)),
		    P11E_ERR_CSR_INVALID);
		assert_null(req);
		assert_string_equal(detail, "the request's key is unreadable");
	}
	free(copy);
	OPENSSL_free(der);
}

static void
test_issue(void **state)
{
	struct p11e_ca_issued out;
	const unsigned char *p;
	BASIC_CONSTRAINTS *bc;
	EXTENDED_KEY_USAGE *eku;
	ASN1_BIT_STRING *ku;
	X509_REQ *req = NULL;
	const char *t;
	char detail[128];
	unsigned char *der;
	size_t len;
	X509 *x;
	int crit = 0;
	time_t now = 1700000000;

	(void)state;
	der = make_csr(p256, NULL, NULL, "basicConstraints=CA:FALSE", &len);
	assert_int_equal(p11e_ca_check_csr(der, len, P11E_CA_KEY_ALL, &profile,
			     &req, &t, detail, sizeof(detail)),
	    P11E_OK);
	assert_int_equal(p11e_ca_issue(ca, req, &profile, now, &out), P11E_OK);
	assert_int_equal(out.not_before, now - 300);
	assert_int_equal(out.not_after, now - 300 + 366 * 86400);
	assert_int_equal(strlen(out.serial), 32);
	p = out.der.data;
	x = d2i_X509(NULL, &p, (long)out.der.len);
	assert_non_null(x);
	assert_int_equal(X509_verify(x, p256), 1);
	{
		BIGNUM *sbn =
		    ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);

		assert_int_equal(BN_num_bytes(sbn), 16);
		BN_free(sbn);
	}
	assert_false(X509_get0_serialNumber(x)->type & V_ASN1_NEG);
	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_false(bc->ca);
	assert_int_equal(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
	assert_non_null(ku);
	assert_int_equal(crit, 1);
	assert_true(ASN1_BIT_STRING_get_bit(ku, 0));
	assert_false(ASN1_BIT_STRING_get_bit(ku, 5));
	ASN1_BIT_STRING_free(ku);
	eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	assert_int_equal(
	    OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	assert_non_null(X509_get0_subject_key_id(x));
	assert_non_null(X509_get0_authority_key_id(x));
	assert_true(X509_get_ext_by_NID(x, NID_subject_alt_name, -1) >= 0);
	assert_int_equal(X509_check_ca(x), 0);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x),
			     X509_get_subject_name(p11e_ca_cert(ca))),
	    0);
	/* the re-enrollment CSR copying Subject and SAN from x passes */
	{
		X509_REQ *r2 = X509_REQ_new();
		STACK_OF(X509_EXTENSION) *sk = sk_X509_EXTENSION_new_null();
		X509_REQ *req2 = NULL;
		unsigned char *d2 = NULL;
		int l2;

		X509_REQ_set_subject_name(r2, X509_get_subject_name(x));
		X509_REQ_set_pubkey(r2, p256);
		sk_X509_EXTENSION_push(sk,
		    X509_EXTENSION_dup(X509_get_ext(
			x, X509_get_ext_by_NID(x, NID_subject_alt_name, -1))));
		X509_REQ_add_extensions(r2, sk);
		sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
		X509_REQ_sign(r2, p256, EVP_sha256());
		l2 = i2d_X509_REQ(r2, &d2);
		assert_int_equal(
		    p11e_ca_check_csr(d2, (size_t)l2, P11E_CA_KEY_ALL, &profile,
			&req2, &t, detail, sizeof(detail)),
		    P11E_OK);
		X509_REQ_free(req2);
		X509_REQ_free(r2);
		OPENSSL_free(d2);
	}
	/* PKCS#7 certs-only round trip */
	{
		const unsigned char *ders[1] = { out.der.data };
		size_t lens[1] = { out.der.len };
		struct p11e_buf p7buf;
		PKCS7 *p7;

		p11e_buf_init(&p7buf, 1 << 20);
		assert_int_equal(
		    p11e_ca_pkcs7_certs(ders, lens, 1, &p7buf), P11E_OK);
		p = p7buf.data;
		p7 = d2i_PKCS7(NULL, &p, (long)p7buf.len);
		assert_non_null(p7);
		assert_true(PKCS7_type_is_signed(p7));
		assert_int_equal(sk_X509_num(p7->d.sign->cert), 1);
		assert_int_equal(
		    X509_cmp(sk_X509_value(p7->d.sign->cert, 0), x), 0);
		assert_int_equal(
		    sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 0);
		PKCS7_free(p7);
		p11e_buf_clear(&p7buf);
		/* not exactly one DER certificate: refused, nothing added */
		{
			unsigned char *longer = malloc(out.der.len + 1);

			assert_non_null(longer);
			memcpy(longer, out.der.data, out.der.len);
			longer[out.der.len] = 0;
			ders[0] = longer;
			lens[0] = out.der.len + 1;
			assert_int_equal(
			    p11e_ca_pkcs7_certs(ders, lens, 1, &p7buf),
			    P11E_ERR_CRYPTO);
			lens[0] = out.der.len - 1;
			assert_int_equal(
			    p11e_ca_pkcs7_certs(ders, lens, 1, &p7buf),
			    P11E_ERR_CRYPTO);
			assert_int_equal(p7buf.len, 0);
			free(longer);
		}
	}
	X509_free(x);
	X509_REQ_free(req);
	OPENSSL_free(der);
	p11e_buf_clear(&out.der);
}

static void
test_crl(void **state)
{
	struct p11e_ca_crl_entry e[2] = {
		{ "7F0102030405060708090A0B0C0D0E0F", 1700000000, 1 },
		{ "1234", 1700000100, 0 },
	};
	STACK_OF(X509_REVOKED) * revs;
	struct p11e_buf der;
	const unsigned char *p;
	ASN1_ENUMERATED *reason;
	X509_CRL *crl;
	int i, found = 0;

	(void)state;
	p11e_buf_init(&der, 1 << 20);
	assert_int_equal(
	    p11e_ca_crl(ca, e, 2, 1700000200, 86400, 7, &der), P11E_OK);
	p = der.data;
	crl = d2i_X509_CRL(NULL, &p, (long)der.len);
	assert_non_null(crl);
	assert_int_equal(X509_CRL_verify(crl, p256), 1);
	assert_int_equal(X509_CRL_get_version(crl), 1);
	revs = X509_CRL_get_REVOKED(crl);
	assert_int_equal(sk_X509_REVOKED_num(revs), 2);
	for (i = 0; i < 2; i++) {
		X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
		BIGNUM *bn =
		    ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
		char *hex = BN_bn2hex(bn);

		if (strcmp(hex, e[0].serial) == 0) {
			found++;
			reason = X509_REVOKED_get_ext_d2i(
			    r, NID_crl_reason, NULL, NULL);
			assert_non_null(reason);
			assert_int_equal(ASN1_ENUMERATED_get(reason), 1);
			ASN1_ENUMERATED_free(reason);
		} else if (strcmp(hex, e[1].serial) == 0) {
			found++;
			assert_null(X509_REVOKED_get_ext_d2i(
			    r, NID_crl_reason, NULL, NULL));
		}
		OPENSSL_free(hex);
		BN_free(bn);
	}
	assert_int_equal(found, 2);
	X509_CRL_free(crl);
	p11e_buf_clear(&der);
	assert_int_equal(p11e_ca_reason_code("keyCompromise"), 1);
	assert_int_equal(p11e_ca_reason_code("superseded"), 4);
	assert_int_equal(p11e_ca_reason_code("bogus"), -1);
	assert_string_equal(p11e_ca_reason_name(4), "superseded");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_policy),
		cmocka_unit_test(test_policy_mask),
		cmocka_unit_test(test_extensions),
		cmocka_unit_test(test_bad_csr),
		cmocka_unit_test(test_issue),
		cmocka_unit_test(test_crl),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
