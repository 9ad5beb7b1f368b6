/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <p11-kit/p11-kit.h>

/*
 * The floor of one user enrollment (bench/enroll.sh runs it next to
 * `p11enroll enroll`; doc/benchmarks.md has the figures).  Not a test.
 *
 * One process does only what an enrollment cannot do without, with no
 * agent, no journal, no checks: load the token's module, log in,
 * generate an EC P-256 key pair on the token, sign a CSR with it (one
 * C_Sign), open the user's session on the RA and post the CSR to
 * simpleenroll over one TLS connection, and write the issued
 * certificate as one object on the token.  The PIN, the password and the
 * OTP are read from stdin, one a line.
 *
 *   enroll-floor --module SO --token LABEL --url URL --cacert PEM \
 *       --contract ID --user ID
 *
 * Prints one line: "step ms" pairs, then "total ms".
 */

#define DIE(...)                                               \
	do {                                                   \
		fprintf(stderr, "enroll-floor: " __VA_ARGS__); \
		fputc('\n', stderr);                           \
		exit(1);                                       \
	} while (0)
#define CK(call)                                                     \
	do {                                                         \
		CK_RV rv_ = (call);                                  \
		if (rv_ != CKR_OK)                                   \
			DIE("%s: %s", #call, p11_kit_strerror(rv_)); \
	} while (0)

static double t0;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
lap(const char *step)
{
	double t = now_ms();

	printf("%s %.2f ", step, t - t0);
	t0 = t;
}

static void
read_line(char *buf, size_t len)
{
	if (fgets(buf, (int)len, stdin) == NULL)
		DIE("stdin: the PIN, the password and the OTP, one a line");
	buf[strcspn(buf, "\r\n")] = '\0';
}

struct reply {
	char data[65536];
	size_t len;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;

	if (size * n > sizeof(r->data) - 1 - r->len)
		return 0;
	memcpy(r->data + r->len, p, size * n);
	r->len += size * n;
	r->data[r->len] = '\0';
	return size * n;
}

static long
post(CURL *c, const char *url, const char *type, const char *auth,
    const char *body, size_t len, struct reply *r)
{
	struct curl_slist *h = NULL;
	char line[512];
	long status = 0;

	snprintf(line, sizeof(line), "Content-Type: %s", type);
	h = curl_slist_append(h, line);
	if (auth != NULL) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", auth);
		h = curl_slist_append(h, line);
	}
	r->len = 0;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	if (curl_easy_perform(c) != CURLE_OK)
		DIE("POST %s failed", url);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	return status;
}

/* The EC public key of the token's CKA_EC_POINT (a DER OCTET STRING). */
static EVP_PKEY *
ec_public(const unsigned char *point, size_t len)
{
	const unsigned char *p = point;
	ASN1_OCTET_STRING *os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)len);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pk = NULL;
	OSSL_PARAM params[3];

	if (os == NULL || ctx == NULL)
		DIE("EC point");
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0);
	params[1] = OSSL_PARAM_construct_octet_string(
	    OSSL_PKEY_PARAM_PUB_KEY, os->data, (size_t)os->length);
	params[2] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		DIE("EC point");
	EVP_PKEY_CTX_free(ctx);
	ASN1_OCTET_STRING_free(os);
	return pk;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = { { "module", 1, NULL, 'm' },
		{ "token", 1, NULL, 't' }, { "url", 1, NULL, 'u' },
		{ "cacert", 1, NULL, 'c' }, { "contract", 1, NULL, 'C' },
		{ "user", 1, NULL, 'U' }, { NULL, 0, NULL, 0 } };
	const char *module = NULL, *label = NULL, *url = NULL, *cacert = NULL,
		   *contract = NULL, *user = NULL;
	static const unsigned char p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48,
		0xce, 0x3d, 0x03, 0x01, 0x07 };
	CK_OBJECT_CLASS pubc = CKO_PUBLIC_KEY, privc = CKO_PRIVATE_KEY,
			certc = CKO_CERTIFICATE;
	CK_KEY_TYPE kt = CKK_EC;
	CK_CERTIFICATE_TYPE ct = CKC_X_509;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_MECHANISM gen = { CKM_EC_KEY_PAIR_GEN, NULL, 0 },
		     sig = { CKM_ECDSA, NULL, 0 };
	unsigned char id[20], point[256], rs[128], md[32], *tbs = NULL, *der;
	char pin[256], pw[256], otp[32], body[1024], u[1024], *b64;
	CK_FUNCTION_LIST *m;
	CK_SLOT_ID slots[64];
	CK_ULONG n_slots = 64, rs_len = sizeof(rs);
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub, priv, obj;
	CK_TOKEN_INFO ti;
	X509_REQ *req;
	X509 *cert = NULL;
	EVP_PKEY *pk;
	ECDSA_SIG *es;
	X509_ALGOR *alg;
	ASN1_BIT_STRING *bits;
	PKCS7 *p7;
	BIO *bio;
	struct reply *r = calloc(1, sizeof(*r));
	double start;
	CURL *c;
	char *tok, *e;
	int len, opt, i;
	size_t k;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			module = optarg;
			break;
		case 't':
			label = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'c':
			cacert = optarg;
			break;
		case 'C':
			contract = optarg;
			break;
		case 'U':
			user = optarg;
			break;
		default:
			return 2;
		}
	}
	if (module == NULL || label == NULL || url == NULL || cacert == NULL ||
	    contract == NULL || user == NULL || r == NULL)
		DIE("usage: --module --token --url --cacert --contract --user");
	read_line(pin, sizeof(pin));
	read_line(pw, sizeof(pw));
	read_line(otp, sizeof(otp));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	t0 = start = now_ms();

	/* the token: load, find by label, log in */
	if ((m = p11_kit_module_load(module, 0)) == NULL)
		DIE("%s: %s", module, p11_kit_message());
	CK(p11_kit_module_initialize(m));
	CK(m->C_GetSlotList(CK_TRUE, slots, &n_slots));
	for (k = 0; k < n_slots; k++) {
		CK(m->C_GetTokenInfo(slots[k], &ti));
		len = (int)strlen(label);
		if (memcmp(ti.label, label, (size_t)len) == 0 &&
		    (len == 32 || ti.label[len] == ' '))
			break;
	}
	if (k == n_slots)
		DIE("no token %s", label);
	CK(m->C_OpenSession(
	    slots[k], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
	CK(m->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin)));
	lap("login");

	/* the key pair */
	if (RAND_bytes(id, sizeof(id)) != 1)
		DIE("RAND_bytes");
	{
		CK_ATTRIBUTE pt[] = { { CKA_CLASS, &pubc, sizeof(pubc) },
			{ CKA_KEY_TYPE, &kt, sizeof(kt) },
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_VERIFY, &yes, sizeof(yes) },
			{ CKA_ID, id, sizeof(id) },
			{ CKA_EC_PARAMS, (void *)p256, sizeof(p256) } };
		CK_ATTRIBUTE vt[] = { { CKA_CLASS, &privc, sizeof(privc) },
			{ CKA_KEY_TYPE, &kt, sizeof(kt) },
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &yes, sizeof(yes) },
			{ CKA_SENSITIVE, &yes, sizeof(yes) },
			{ CKA_EXTRACTABLE, &no, sizeof(no) },
			{ CKA_SIGN, &yes, sizeof(yes) },
			{ CKA_ID, id, sizeof(id) } };
		CK_ATTRIBUTE ep = { CKA_EC_POINT, point, sizeof(point) };

		CK(m->C_GenerateKeyPair(s, &gen, pt, 6, vt, 8, &pub, &priv));
		CK(m->C_GetAttributeValue(s, pub, &ep, 1));
		pk = ec_public(point, ep.ulValueLen);
	}
	lap("keygen");

	/* the CSR, signed on the token */
	req = X509_REQ_new();
	if (req == NULL || X509_REQ_set_pubkey(req, pk) != 1 ||
	    (len = i2d_re_X509_REQ_tbs(req, &tbs)) <= 0 ||
	    EVP_Digest(tbs, (size_t)len, md, NULL, EVP_sha256(), NULL) != 1)
		DIE("CSR");
	CK(m->C_SignInit(s, &sig, priv));
	CK(m->C_Sign(s, md, sizeof(md), rs, &rs_len));
	es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(rs, (int)rs_len / 2, NULL),
	    BN_bin2bn(rs + rs_len / 2, (int)rs_len / 2, NULL));
	der = NULL;
	len = i2d_ECDSA_SIG(es, &der);
	X509_REQ_get0_signature(
	    req, (const ASN1_BIT_STRING **)&bits, (const X509_ALGOR **)&alg);
	X509_ALGOR_set0(
	    alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL);
	ASN1_BIT_STRING_set(bits, der, len);
	/* all bits used: without the flag, trailing zero bits are cut */
	bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	OPENSSL_free(tbs);
	der = NULL;
	len = i2d_X509_REQ(req, &der);
	b64 = malloc((size_t)len * 4 / 3 + 4);
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	OPENSSL_free(der);
	lap("csr");

	/* the session and issuance on one TLS connection */
	c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
	snprintf(body, sizeof(body),
	    "{\"contract_id\":\"%s\",\"user_id\":\"%s\",\"password\":\"%s\","
	    "\"otp\":\"%s\"}",
	    contract, user, pw, otp);
	snprintf(u, sizeof(u), "%s/api/v1/enrollment/session", url);
	if (post(c, u, "application/json", NULL, body, strlen(body), r) != 200)
		DIE("session: %s", r->data);
	if ((tok = strstr(r->data, "\"token\"")) == NULL ||
	    (tok = strchr(tok + 7, '"')) == NULL ||
	    (e = strchr(++tok, '"')) == NULL)
		DIE("session: no token");
	*e = '\0';
	tok = strdup(tok);
	lap("session");
	snprintf(u, sizeof(u), "%s/.well-known/est/simpleenroll", url);
	if (post(c, u, "application/pkcs10", tok, b64, strlen(b64), r) != 200)
		DIE("simpleenroll: %s", r->data);
	bio = BIO_push(
	    BIO_new(BIO_f_base64()), BIO_new_mem_buf(r->data, (int)r->len));
	p7 = d2i_PKCS7_bio(bio, NULL);
	if (p7 == NULL || !PKCS7_type_is_signed(p7) ||
	    sk_X509_num(p7->d.sign->cert) < 1)
		DIE("simpleenroll: no certificate");
	for (i = 0; i < sk_X509_num(p7->d.sign->cert); i++) {
		X509 *x = sk_X509_value(p7->d.sign->cert, i);
		if (X509_check_private_key(x, pk) == 1 ||
		    EVP_PKEY_eq(X509_get0_pubkey(x), pk) == 1)
			cert = x;
	}
	if (cert == NULL)
		DIE("simpleenroll: not our key");
	lap("issuance");

	/* the certificate object */
	{
		unsigned char *sub = NULL, *iss = NULL, *ser = NULL,
			      *val = NULL;
		int ls = i2d_X509_NAME(X509_get_subject_name(cert), &sub);
		int li = i2d_X509_NAME(X509_get_issuer_name(cert), &iss);
		int lr = i2d_ASN1_INTEGER(X509_get_serialNumber(cert), &ser);
		int lv = i2d_X509(cert, &val);
		CK_ATTRIBUTE ctpl[] = { { CKA_CLASS, &certc, sizeof(certc) },
			{ CKA_CERTIFICATE_TYPE, &ct, sizeof(ct) },
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_ID, id, sizeof(id) },
			{ CKA_SUBJECT, sub, (CK_ULONG)ls },
			{ CKA_ISSUER, iss, (CK_ULONG)li },
			{ CKA_SERIAL_NUMBER, ser, (CK_ULONG)lr },
			{ CKA_VALUE, val, (CK_ULONG)lv } };

		CK(m->C_CreateObject(s, ctpl, 8, &obj));
		OPENSSL_free(sub);
		OPENSSL_free(iss);
		OPENSSL_free(ser);
		OPENSSL_free(val);
	}
	CK(m->C_Logout(s));
	CK(m->C_CloseSession(s));
	lap("write");
	CK(p11_kit_module_finalize(m));
	p11_kit_module_release(m);
	printf("total %.2f\n", now_ms() - start);

	OPENSSL_cleanse(pin, sizeof(pin));
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(body, sizeof(body));
	curl_easy_cleanup(c);
	PKCS7_free(p7);
	BIO_free_all(bio);
	X509_REQ_free(req);
	EVP_PKEY_free(pk);
	free(b64);
	free(tok);
	free(r);
	curl_global_cleanup();
	return 0;
}
