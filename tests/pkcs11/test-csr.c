/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tests of p11e_token_csr() (pkcs11/csr.c, pkcs11/evp.c) on a fresh
 * SoftHSM2 token, through the p11.h verbs.  Run by tests/pkcs11/csr.sh,
 * which exports SOFTHSM_LABEL and SOFTHSM_PIN.
 *
 * Also proves the rules of DESIGN §3 for libp11 next to p11-kit: the
 * login made through p11-kit is the one libp11's session uses (no login
 * makes the key invisible to libp11, a login makes it sign), unloading
 * libp11 leaves our login alone, and a key with CKA_ALWAYS_AUTHENTICATE
 * fails without prompting.
 */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/secret.h"
#include "pkcs11/p11.h"
#include "pkcs11/token-private.h"

#define CSR_MAX 65536
#define SUBJECT_UTF8 \
	"/CN=\xe5\xb1\xb1\xe7\x94\xb0\xe5\xa4\xaa\xe9\x83\x8e/O=Example"
#define CN_UTF8 "\xe5\xb1\xb1\xe7\x94\xb0\xe5\xa4\xaa\xe9\x83\x8e"

struct key {
	enum p11e_key_type type;
	unsigned char id[P11E_ID_RANDOM_LEN];
	struct p11e_buf spki;
	int sig_nid; /* expected signature algorithm */
};

static struct p11e_p11 *p11;
static struct p11e_token *tok;
static struct p11e_secret *pin;
static struct key keys[3] = {
	{ P11E_KEY_EC_P256, { 0 }, { 0 }, NID_ecdsa_with_SHA256 },
	{ P11E_KEY_EC_P384, { 0 }, { 0 }, NID_ecdsa_with_SHA384 },
	{ P11E_KEY_RSA_2048, { 0 }, { 0 }, NID_sha256WithRSAEncryption },
};

static int
setup(void **state)
{
	const char *label = getenv("SOFTHSM_LABEL");
	const char *pintext = getenv("SOFTHSM_PIN");
	char uri[256];
	enum p11e_err err;
	size_t i;

	(void)state;
	p11e_log_init("test-csr");
	if (label == NULL || pintext == NULL) {
		fprintf(stderr, "SOFTHSM_LABEL and SOFTHSM_PIN must be set\n");
		return -1;
	}
	snprintf(uri, sizeof(uri), "pkcs11:token=%s", label);
	if ((pin = p11e_secret_new_from(pintext, strlen(pintext))) == NULL)
		return -1;
	if ((err = p11e_p11_new(&p11)) != P11E_OK ||
	    (err = p11e_token_open(p11, uri, &tok)) != P11E_OK ||
	    (err = p11e_token_login(tok, pin, false)) != P11E_OK) {
		fprintf(stderr, "%s: %s\n", p11e_strerror(err),
		    p11 != NULL ? p11e_p11_detail(p11) : "");
		return -1;
	}
	for (i = 0; i < 3; i++) {
		p11e_buf_init(&keys[i].spki, 4096);
		if ((err = p11e_token_new_id(
			 tok, keys[i].id, sizeof(keys[i].id))) != P11E_OK ||
		    (err = p11e_token_keygen(tok, keys[i].type, keys[i].id,
			 sizeof(keys[i].id), "csr-test", &keys[i].spki)) !=
			P11E_OK) {
			fprintf(stderr, "keygen %s: %s: %s\n",
			    p11e_key_type_name(keys[i].type),
			    p11e_strerror(err), p11e_p11_detail(p11));
			return -1;
		}
	}
	return 0;
}

static int
teardown(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++)
		p11e_buf_clear(&keys[i].spki);
	p11e_token_close(tok);
	p11e_p11_free(p11);
	p11e_secret_free(pin);
	return 0;
}

static enum p11e_err
make_csr(const struct key *k, const unsigned char *spki, size_t spkilen,
    const char *subject, const unsigned char *copy_from, size_t copy_len,
    struct p11e_buf *out)
{
	struct p11e_csr_template t = { subject, copy_from, copy_len };

	return p11e_token_csr(
	    tok, k->id, sizeof(k->id), spki, spkilen, &t, out);
}

static X509_REQ *
parse_csr(const struct p11e_buf *b)
{
	const unsigned char *p = b->data;
	X509_REQ *req;

	req = d2i_X509_REQ(NULL, &p, (long)b->len);
	assert_non_null(req);
	assert_ptr_equal(p, b->data + b->len);
	return req;
}

/* Signature, version and public key: what every request must have. */
static void
check_signed(X509_REQ *req, const struct key *k)
{
	const unsigned char *p = k->spki.data;
	unsigned char *der = NULL;
	EVP_PKEY *pub;
	int n;

	pub = d2i_PUBKEY(NULL, &p, (long)k->spki.len);
	assert_non_null(pub);
	assert_int_equal(X509_REQ_get_version(req), 0);
	assert_int_equal(X509_REQ_verify(req, pub), 1);
	assert_int_equal(X509_REQ_get_signature_nid(req), k->sig_nid);
	n = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &der);
	assert_int_equal(n, (int)k->spki.len);
	assert_memory_equal(der, k->spki.data, k->spki.len);
	OPENSSL_free(der);
	EVP_PKEY_free(pub);
}

static void
check_subject(const struct key *k)
{
	struct p11e_buf out;
	X509_NAME_ENTRY *e;
	const ASN1_STRING *s;
	X509_NAME *name;
	X509_REQ *req;

	p11e_buf_init(&out, CSR_MAX);
	assert_int_equal(
	    make_csr(k, k->spki.data, k->spki.len, SUBJECT_UTF8, NULL, 0, &out),
	    P11E_OK);
	req = parse_csr(&out);
	check_signed(req, k);

	name = X509_REQ_get_subject_name(req);
	assert_int_equal(X509_NAME_entry_count(name), 2);
	e = X509_NAME_get_entry(name, 0);
	assert_int_equal(
	    OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)), NID_commonName);
	s = X509_NAME_ENTRY_get_data(e);
	assert_int_equal(ASN1_STRING_type(s), V_ASN1_UTF8STRING);
	assert_int_equal(ASN1_STRING_length(s), (int)strlen(CN_UTF8));
	assert_memory_equal(ASN1_STRING_get0_data(s), CN_UTF8, strlen(CN_UTF8));
	e = X509_NAME_get_entry(name, 1);
	assert_int_equal(
	    OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)), NID_organizationName);
	s = X509_NAME_ENTRY_get_data(e);
	assert_int_equal(ASN1_STRING_length(s), 7);
	assert_memory_equal(ASN1_STRING_get0_data(s), "Example", 7);
	/* No extension request when none was asked for. */
	assert_int_equal(X509_REQ_get_attr_count(req), 0);
	X509_REQ_free(req);
	p11e_buf_clear(&out);
}

static void
test_subject_p256(void **state)
{
	(void)state;
	check_subject(&keys[0]);
}

static void
test_subject_p384(void **state)
{
	(void)state;
	check_subject(&keys[1]);
}

static void
test_subject_rsa2048(void **state)
{
	(void)state;
	check_subject(&keys[2]);
}

static void
test_subject_escapes(void **state)
{
	struct p11e_buf out;
	X509_NAME *name;
	X509_REQ *req;
	char text[64];

	(void)state;
	p11e_buf_init(&out, CSR_MAX);
	assert_int_equal(make_csr(&keys[0], keys[0].spki.data, keys[0].spki.len,
			     "/CN=a\\/b/O=x\\=y\\\\", NULL, 0, &out),
	    P11E_OK);
	req = parse_csr(&out);
	name = X509_REQ_get_subject_name(req);
	assert_int_equal(
	    X509_NAME_get_text_by_NID(name, NID_commonName, text, sizeof(text)),
	    3);
	assert_string_equal(text, "a/b");
	assert_int_equal(X509_NAME_get_text_by_NID(
			     name, NID_organizationName, text, sizeof(text)),
	    4);
	assert_string_equal(text, "x=y\\");
	X509_REQ_free(req);
	p11e_buf_clear(&out);
}

/*
 * A certificate whose subject OpenSSL would not encode the same way from
 * text (PrintableString, T61String, IA5String), with a critical
 * subjectAltName and a keyUsage that must not be copied.
 */
static unsigned char *
make_cert(size_t *len)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509_EXTENSION *ext;
	unsigned char *der = NULL;
	int n;

	assert_non_null(k);
	assert_non_null(x);
	assert_non_null(name);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 4711), 1);
	assert_int_equal(X509_NAME_add_entry_by_NID(name, NID_commonName,
			     V_ASN1_PRINTABLESTRING,
			     (const unsigned char *)"Taro Yamada", -1, -1, 0),
	    1);
	assert_int_equal(
	    X509_NAME_add_entry_by_NID(name, NID_organizationName,
		V_ASN1_T61STRING, (const unsigned char *)"Example", -1, -1, 0),
	    1);
	assert_int_equal(
	    X509_NAME_add_entry_by_NID(name, NID_pkcs9_emailAddress,
		V_ASN1_IA5STRING, (const unsigned char *)"taro@example.com", -1,
		-1, 0),
	    1);
	assert_int_equal(X509_set_subject_name(x, name), 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, k), 1);
	ext = X509V3_EXT_conf_nid(
	    NULL, NULL, NID_key_usage, "critical,digitalSignature");
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    "critical,DNS:host.example,email:taro@example.com");
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	n = i2d_X509(x, &der);
	assert_true(n > 0);
	*len = (size_t)n;
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(k);
	return der;
}

static void
test_copy_from(void **state)
{
	STACK_OF(X509_EXTENSION) * exts;
	const unsigned char *p;
	unsigned char *cert_der, *a = NULL, *b = NULL;
	struct p11e_buf out;
	X509_REQ *req;
	X509 *cert;
	size_t cert_len;
	int na, nb, idx;

	(void)state;
	cert_der = make_cert(&cert_len);
	p = cert_der;
	cert = d2i_X509(NULL, &p, (long)cert_len);
	assert_non_null(cert);

	p11e_buf_init(&out, CSR_MAX);
	assert_int_equal(make_csr(&keys[0], keys[0].spki.data, keys[0].spki.len,
			     NULL, cert_der, cert_len, &out),
	    P11E_OK);
	req = parse_csr(&out);
	check_signed(req, &keys[0]);

	/* The subject, byte for byte. */
	na = i2d_X509_NAME(X509_get_subject_name(cert), &a);
	nb = i2d_X509_NAME(X509_REQ_get_subject_name(req), &b);
	assert_true(na > 0);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, (size_t)na);
	OPENSSL_free(a);
	OPENSSL_free(b);
	a = b = NULL;

	/* The subjectAltName only, byte for byte, critical flag included. */
	exts = X509_REQ_get_extensions(req);
	assert_non_null(exts);
	assert_int_equal(sk_X509_EXTENSION_num(exts), 1);
	idx = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
	assert_true(idx >= 0);
	na = i2d_X509_EXTENSION(X509_get_ext(cert, idx), &a);
	nb = i2d_X509_EXTENSION(sk_X509_EXTENSION_value(exts, 0), &b);
	assert_true(na > 0);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, (size_t)na);
	assert_int_equal(
	    X509_EXTENSION_get_critical(sk_X509_EXTENSION_value(exts, 0)), 1);
	OPENSSL_free(a);
	OPENSSL_free(b);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);

	X509_REQ_free(req);
	X509_free(cert);
	OPENSSL_free(cert_der);
	p11e_buf_clear(&out);
}

static void
test_copy_from_garbage(void **state)
{
	static const unsigned char junk[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	struct p11e_buf out;

	(void)state;
	p11e_buf_init(&out, CSR_MAX);
	assert_int_equal(make_csr(&keys[0], keys[0].spki.data, keys[0].spki.len,
			     NULL, junk, sizeof(junk), &out),
	    P11E_ERR_PARSE);
	assert_int_equal(out.len, 0);
	p11e_buf_clear(&out);
}

/* A buffer holding a canary that an error must leave as it was. */
static void
canary(struct p11e_buf *b)
{
	p11e_buf_init(b, CSR_MAX);
	assert_int_equal(p11e_buf_append_str(b, "canary"), P11E_OK);
}

static void
assert_canary(const struct p11e_buf *b)
{
	assert_int_equal(b->len, 6);
	assert_memory_equal(b->data, "canary", 6);
}

static void
test_wrong_spki(void **state)
{
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unsigned char *der = NULL;
	struct p11e_buf out;
	int n;

	(void)state;
	/* Another P-256 key: same algorithms, only the signature differs. */
	assert_non_null(other);
	n = i2d_PUBKEY(other, &der);
	assert_true(n > 0);
	canary(&out);
	assert_int_equal(
	    make_csr(&keys[0], der, (size_t)n, "/CN=x", NULL, 0, &out),
	    P11E_ERR_CERT_KEY_MISMATCH);
	assert_canary(&out);
	assert_true(strlen(p11e_p11_detail(p11)) > 0);

	/* Another token key of another type. */
	assert_int_equal(make_csr(&keys[0], keys[2].spki.data, keys[2].spki.len,
			     "/CN=x", NULL, 0, &out),
	    P11E_ERR_CERT_KEY_MISMATCH);
	assert_canary(&out);
	/* Another token key of the same type. */
	assert_int_equal(make_csr(&keys[1], keys[0].spki.data, keys[0].spki.len,
			     "/CN=x", NULL, 0, &out),
	    P11E_ERR_CERT_KEY_MISMATCH);
	assert_canary(&out);
	/* Not an SPKI at all. */
	assert_int_equal(make_csr(&keys[0], (const unsigned char *)"junk", 4,
			     "/CN=x", NULL, 0, &out),
	    P11E_ERR_PARSE);
	assert_canary(&out);
	p11e_buf_clear(&out);
	OPENSSL_free(der);
	EVP_PKEY_free(other);
}

static void
test_unknown_id(void **state)
{
	struct key k = keys[0];
	struct p11e_buf out;

	(void)state;
	k.id[0] ^= 0xff;
	canary(&out);
	assert_int_equal(make_csr(&k, keys[0].spki.data, keys[0].spki.len,
			     "/CN=x", NULL, 0, &out),
	    P11E_ERR_KEY_NOT_FOUND);
	assert_canary(&out);
	/* A prefix of a real id is not that id. */
	assert_int_equal(
	    p11e_token_csr(tok, keys[0].id, sizeof(keys[0].id) - 1,
		keys[0].spki.data, keys[0].spki.len,
		&(struct p11e_csr_template){ "/CN=x", NULL, 0 }, &out),
	    P11E_ERR_KEY_NOT_FOUND);
	assert_canary(&out);
	p11e_buf_clear(&out);
}

static void
test_malformed_subject(void **state)
{
	static const char *const bad[] = {
		"", "CN=x", "/CN", "/XX=y", "/CN=x/", "/CN=", "/=x", "/CN=x\\",
		"/CN=x//O=y", "/C=JPN", /* countryName is two letters */
		"/CN=\xff\xfe", /* not UTF-8 */
		"/CN=x+O=y/NOPE=z", /* the last component is bad */
	};
	struct p11e_buf out;
	char esc[64];
	size_t i;

	(void)state;
	canary(&out);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p11e_p11_set_detail(p11, "%s", "");
		assert_int_equal(make_csr(&keys[0], keys[0].spki.data,
				     keys[0].spki.len, bad[i], NULL, 0, &out),
		    P11E_ERR_PARSE);
		assert_canary(&out);
		p11e_log_escape(esc, sizeof(esc), bad[i], strlen(bad[i]));
		printf("# \"%s\": %s\n", esc, p11e_p11_detail(p11));
		assert_true(strlen(p11e_p11_detail(p11)) > 0);
	}
	p11e_buf_clear(&out);
}

/* "/" alone is the empty name (an administrator's first request). */
static void
test_empty_subject(void **state)
{
	const unsigned char *p;
	struct p11e_buf out;
	X509_REQ *req;

	(void)state;
	p11e_buf_init(&out, 64 * 1024);
	assert_int_equal(make_csr(&keys[0], keys[0].spki.data, keys[0].spki.len,
			     "/", NULL, 0, &out),
	    P11E_OK);
	p = out.data;
	req = d2i_X509_REQ(NULL, &p, (long)out.len);
	assert_non_null(req);
	assert_int_equal(
	    X509_NAME_entry_count(X509_REQ_get_subject_name(req)), 0);
	X509_REQ_free(req);
	p11e_buf_clear(&out);
}

/*
 * The login belongs to the application: without ours libp11 sees no
 * private key, with it libp11's session signs, and unloading libp11
 * leaves our session logged in.
 */
static void
test_login_shared(void **state)
{
	CK_SESSION_INFO si;
	struct p11e_buf out;

	(void)state;
	p11e_buf_init(&out, CSR_MAX);
	p11e_token_logout(tok);
	assert_int_equal(make_csr(&keys[0], keys[0].spki.data, keys[0].spki.len,
			     "/CN=x", NULL, 0, &out),
	    P11E_ERR_KEY_NOT_FOUND);
	assert_int_equal(out.len, 0);

	assert_int_equal(p11e_token_login(tok, pin, false), P11E_OK);
	assert_int_equal(make_csr(&keys[0], keys[0].spki.data, keys[0].spki.len,
			     "/CN=x", NULL, 0, &out),
	    P11E_OK);
	assert_int_equal(
	    tok->module->C_GetSessionInfo(tok->session, &si), CKR_OK);
	assert_int_equal(si.state, CKS_RW_USER_FUNCTIONS);
	/* A second libp11 context after the first was unloaded. */
	p11e_buf_reset(&out);
	assert_int_equal(make_csr(&keys[1], keys[1].spki.data, keys[1].spki.len,
			     "/CN=x", NULL, 0, &out),
	    P11E_OK);
	assert_int_equal(
	    tok->module->C_GetSessionInfo(tok->session, &si), CKR_OK);
	assert_int_equal(si.state, CKS_RW_USER_FUNCTIONS);
	p11e_buf_clear(&out);
}

/* Runs the CSR with stderr in a file; returns what was written there. */
static enum p11e_err
csr_capturing(
    const struct key *k, struct p11e_buf *out, char *log, size_t logsize)
{
	char path[] = "/tmp/test-csr.XXXXXX";
	enum p11e_err err;
	int fd, saved;
	ssize_t n;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	saved = dup(2);
	assert_true(saved >= 0);
	dup2(fd, 2);
	err = make_csr(k, k->spki.data, k->spki.len, "/CN=x", NULL, 0, out);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, log, logsize - 1, 0);
	log[n > 0 ? n : 0] = '\0';
	close(fd);
	fputs(log, stderr);
	return err;
}

/*
 * A key with CKA_ALWAYS_AUTHENTICATE: libp11 asks its UI for the PIN,
 * and ours refuses instead of prompting on a terminal.
 */
static void
test_always_authenticate(void **state)
{
	static CK_BYTE p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
		0x03, 0x01, 0x07 };
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	struct key k = { P11E_KEY_EC_P256, { 0 }, { 0 },
		NID_ecdsa_with_SHA256 };
	CK_ATTRIBUTE pub_t[] = { { CKA_EC_PARAMS, p256, sizeof(p256) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_ID, k.id, sizeof(k.id) } };
	CK_ATTRIBUTE priv_t[] = { { CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_ALWAYS_AUTHENTICATE, &yes, sizeof(yes) },
		{ CKA_ID, k.id, sizeof(k.id) } };
	CK_OBJECT_HANDLE pub, priv;
	struct p11e_buf out;
	char log[8192];
	CK_RV rv;

	(void)state;
	assert_int_equal(p11e_token_new_id(tok, k.id, sizeof(k.id)), P11E_OK);
	rv = tok->module->C_GenerateKeyPair(
	    tok->session, &mech, pub_t, 4, priv_t, 7, &pub, &priv);
	assert_int_equal(rv, CKR_OK);
	p11e_buf_init(&k.spki, 4096);
	assert_int_equal(
	    p11e_token_key_adopt(tok, k.id, sizeof(k.id), &k.spki), P11E_OK);

	canary(&out);
	assert_int_equal(
	    csr_capturing(&k, &out, log, sizeof(log)), P11E_ERR_CRYPTO);
	assert_canary(&out);
	assert_non_null(strstr(log, "CKA_ALWAYS_AUTHENTICATE"));

	/* Our login is still there. */
	p11e_buf_reset(&out);
	assert_int_equal(make_csr(&keys[0], keys[0].spki.data, keys[0].spki.len,
			     "/CN=x", NULL, 0, &out),
	    P11E_OK);
	p11e_buf_clear(&out);
	p11e_buf_clear(&k.spki);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subject_p256),
		cmocka_unit_test(test_subject_p384),
		cmocka_unit_test(test_subject_rsa2048),
		cmocka_unit_test(test_subject_escapes),
		cmocka_unit_test(test_copy_from),
		cmocka_unit_test(test_copy_from_garbage),
		cmocka_unit_test(test_wrong_spki),
		cmocka_unit_test(test_unknown_id),
		cmocka_unit_test(test_malformed_subject),
		cmocka_unit_test(test_empty_subject),
		cmocka_unit_test(test_login_shared),
		cmocka_unit_test(test_always_authenticate),
	};

	return cmocka_run_group_tests_name("csr", tests, setup, teardown);
}
