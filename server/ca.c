/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "pkcs11/evp.h"
#include "pkcs11/p11.h"
#include "server/ca.h"
#include "server/http.h"

#define SERIAL_LEN 16

struct p11e_ca {
	X509 *cert;
	STACK_OF(X509) * chain; /* after cert in its file, up to the root */
	EVP_PKEY *key;
	/* a token key: kept open and logged in while the CA is loaded */
	struct p11e_p11 *p11;
	struct p11e_token *tok;
	struct p11e_evp_key *evp;
	/*
	 * The signing context made once (a file key): each issuance signs
	 * with a copy, without OpenSSL 3 fetching the digest and the
	 * signature implementation again.  NULL: X509_sign each time.
	 */
	EVP_MD_CTX *sign_tmpl;
	/*
	 * The extensions that are the same in every certificate, made once
	 * from their configuration strings: basicConstraints, keyUsage,
	 * extKeyUsage, authorityKeyIdentifier (NULL: made per issuance).
	 */
	X509_EXTENSION *ext_bc, *ext_ku, *ext_eku, *ext_aki;
};

void
p11e_ca_log_ossl(const char *what)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		p11e_error("%s: %s", what, buf);
	}
}

static const struct {
	const char *name;
	unsigned int bit;
} key_names[] = {
	{ "ec-p256", P11E_CA_KEY_EC_P256 },
	{ "ec-p384", P11E_CA_KEY_EC_P384 },
	{ "rsa-2048", P11E_CA_KEY_RSA_2048 },
	{ "rsa-3072", P11E_CA_KEY_RSA_3072 },
	{ "rsa-4096", P11E_CA_KEY_RSA_4096 },
};

enum p11e_err
p11e_ca_key_types_parse(
    const char *list, unsigned int *mask, char *detail, size_t detail_len)
{
	unsigned int m = 0;
	const char *p = list, *end;
	size_t i, n;

	while (*p != '\0') {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		for (end = p;
		     *end && *end != ',' && *end != ' ' && *end != '\t'; end++)
			;
		n = (size_t)(end - p);
		for (i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++)
			if (strlen(key_names[i].name) == n &&
			    memcmp(key_names[i].name, p, n) == 0)
				break;
		if (i == sizeof(key_names) / sizeof(key_names[0])) {
			snprintf(detail, detail_len,
			    "unknown key type '%.*s' (known: ec-p256, ec-p384, "
			    "rsa-2048, rsa-3072, rsa-4096)",
			    (int)(n > 32 ? 32 : n), p);
			return P11E_ERR_PARSE;
		}
		m |= key_names[i].bit;
		p = end;
	}
	if (m == 0) {
		snprintf(detail, detail_len, "no key type given");
		return P11E_ERR_PARSE;
	}
	*mask = m;
	return P11E_OK;
}

enum p11e_err
p11e_ca_key_policy(EVP_PKEY *pkey, unsigned int key_types,
    const char **key_type, char *detail, size_t detail_len)
{
	const char *name = NULL;
	unsigned int bit = 0;
	char group[64] = "";
	BIGNUM *e = NULL;
	size_t glen = 0;
	int bits;

	*key_type = NULL;
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(pkey,
			OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
			&glen) != 1)
			snprintf(group, sizeof(group), "explicit parameters");
		if (strcmp(group, "prime256v1") == 0) {
			name = "ec-p256";
			bit = P11E_CA_KEY_EC_P256;
		} else if (strcmp(group, "secp384r1") == 0) {
			name = "ec-p384";
			bit = P11E_CA_KEY_EC_P384;
		} else {
			snprintf(detail, detail_len,
			    "EC curve %s is not allowed", group);
			return P11E_ERR_KEY_POLICY;
		}
		break;
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(pkey);
		if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) !=
			1 ||
		    !BN_is_word(e, 65537)) {
			snprintf(detail, detail_len,
			    "RSA public exponent must be 65537");
			BN_free(e);
			return P11E_ERR_KEY_POLICY;
		}
		BN_free(e);
		if (bits == 2048) {
			name = "rsa-2048";
			bit = P11E_CA_KEY_RSA_2048;
		} else if (bits == 3072) {
			name = "rsa-3072";
			bit = P11E_CA_KEY_RSA_3072;
		} else if (bits == 4096) {
			name = "rsa-4096";
			bit = P11E_CA_KEY_RSA_4096;
		} else {
			snprintf(detail, detail_len,
			    "RSA key of %d bits is not allowed (2048, 3072 or "
			    "4096)",
			    bits);
			return P11E_ERR_KEY_POLICY;
		}
		break;
	default:
		snprintf(detail, detail_len, "key type %s is not allowed",
		    OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)));
		return P11E_ERR_KEY_POLICY;
	}
	if ((key_types & bit) == 0) {
		snprintf(detail, detail_len,
		    "key type %s is not allowed by this server's policy", name);
		return P11E_ERR_KEY_POLICY;
	}
	*key_type = name;
	return P11E_OK;
}

static X509_NAME *
profile_name(const struct p11e_ca_profile *p)
{
	X509_NAME *name = X509_NAME_new();

	if (name == NULL)
		return NULL;
	if ((p->organization != NULL &&
		X509_NAME_add_entry_by_NID(name, NID_organizationName,
		    MBSTRING_UTF8, (const unsigned char *)p->organization, -1,
		    -1, 0) != 1) ||
	    (p->organizational_unit != NULL &&
		X509_NAME_add_entry_by_NID(name, NID_organizationalUnitName,
		    MBSTRING_UTF8,
		    (const unsigned char *)p->organizational_unit, -1, -1,
		    0) != 1) ||
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
		(const unsigned char *)p->common_name, -1, -1, 0) != 1) {
		X509_NAME_free(name);
		return NULL;
	}
	return name;
}

static GENERAL_NAMES *
profile_san(const struct p11e_ca_profile *p)
{
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gen = NULL;
	ASN1_IA5STRING *ia5 = NULL;

	if (p->san_uri == NULL)
		return NULL;
	if ((gens = GENERAL_NAMES_new()) == NULL ||
	    (gen = GENERAL_NAME_new()) == NULL ||
	    (ia5 = ASN1_IA5STRING_new()) == NULL ||
	    ASN1_STRING_set(ia5, p->san_uri, -1) != 1)
		goto fail;
	GENERAL_NAME_set0_value(gen, GEN_URI, ia5);
	ia5 = NULL; /* transferred */
	if (sk_GENERAL_NAME_push(gens, gen) == 0)
		goto fail;
	return gens;
fail:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	return NULL;
}

/* Whether the CSR's SAN extension is byte for byte the one we would issue. */
static bool
san_matches(X509_EXTENSION *ext, const struct p11e_ca_profile *p)
{
	ASN1_OCTET_STRING *data = X509_EXTENSION_get_data(ext);
	GENERAL_NAMES *gens = profile_san(p);
	unsigned char *der = NULL;
	bool ok = false;
	int len;

	if (gens == NULL)
		return false;
	len = i2d_GENERAL_NAMES(gens, &der);
	ok = len > 0 && ASN1_STRING_length(data) == len &&
	    memcmp(ASN1_STRING_get0_data(data), der, (size_t)len) == 0;
	OPENSSL_free(der);
	GENERAL_NAMES_free(gens);
	return ok;
}

static bool
extension_allowed(X509_EXTENSION *ext, const struct p11e_ca_profile *p,
    char *detail, size_t detail_len)
{
	int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
	BASIC_CONSTRAINTS *bc;
	ASN1_BIT_STRING *ku;
	EXTENDED_KEY_USAGE *eku;
	bool ok = false;
	int i;

	switch (nid) {
	case NID_basic_constraints:
		bc = X509V3_EXT_d2i(ext);
		ok = bc != NULL && !bc->ca && bc->pathlen == NULL;
		BASIC_CONSTRAINTS_free(bc);
		if (!ok)
			snprintf(detail, detail_len,
			    "the request asks for a CA certificate");
		return ok;
	case NID_key_usage:
		ku = X509V3_EXT_d2i(ext);
		ok = ku != NULL;
		for (i = 1; ok && i < 16; i++)
			if (ASN1_BIT_STRING_get_bit(ku, i))
				ok = false;
		ASN1_BIT_STRING_free(ku);
		if (!ok)
			snprintf(detail, detail_len,
			    "the request asks for key usages other than "
			    "digitalSignature");
		return ok;
	case NID_ext_key_usage:
		eku = X509V3_EXT_d2i(ext);
		ok = eku != NULL && sk_ASN1_OBJECT_num(eku) > 0;
		for (i = 0; ok && i < sk_ASN1_OBJECT_num(eku); i++)
			if (OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) !=
			    NID_client_auth)
				ok = false;
		sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
		if (!ok)
			snprintf(detail, detail_len,
			    "the request asks for extended key usages other "
			    "than clientAuth");
		return ok;
	case NID_subject_alt_name:
		ok = san_matches(ext, p);
		if (!ok)
			snprintf(detail, detail_len,
			    "the request asks for a subjectAltName that would "
			    "not be issued");
		return ok;
	case NID_subject_key_identifier:
		return true;
	default: {
		char oid[80];

		OBJ_obj2txt(
		    oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
		snprintf(detail, detail_len,
		    "the request asks for extension %s, which is not issued",
		    oid);
		return false;
	}
	}
}

/*
 * One definite-length DER TLV of tag at *p (before end): its content's
 * length in *len, *p moved to the content.  Long form only where the
 * short one would not do (DER).
 */
static bool
der_tlv(const unsigned char **p, const unsigned char *end, unsigned char tag,
    size_t *len)
{
	const unsigned char *q = *p;
	size_t n = 0, bytes, i;

	if (end - q < 2 || q[0] != tag)
		return false;
	if (q[1] < 0x80) {
		n = q[1];
		q += 2;
	} else {
		bytes = q[1] & 0x7f;
		if (bytes == 0 || bytes > 3 || (size_t)(end - q) < 2 + bytes ||
		    q[2] == 0)
			return false;
		for (i = 0; i < bytes; i++)
			n = (n << 8) | q[2 + i];
		if (n < 0x80)
			return false;
		q += 2 + bytes;
	}
	if ((size_t)(end - q) < n)
		return false;
	*p = q;
	*len = n;
	return true;
}

/*
 * The fast path of p11e_ca_check_csr, for the requests of an EC key on
 * P-256 or P-384 in its usual encoding (named curve, uncompressed point)
 * signed with ECDSA: the request is walked as DER here, its key made
 * from the point (EVP_PKEY_fromdata, which checks that it is on the
 * curve) and its signature verified over the request info's bytes as
 * sent, and *req is then built from the parts (subject, key and
 * attributes; no signature), because d2i_X509_REQ decodes the key
 * through OpenSSL 3's decoder machinery, about 0.3 ms of each request.
 * The key type is read from the SPKI's curve OID (the prefixes below).
 * Returns -1 when the request is not of that shape (the caller takes
 * the general path), else the result, with detail as the general path
 * words it.
 */
static const unsigned char spki_p256[] = { 0x30, 0x59, 0x30, 0x13, 0x06, 0x07,
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
	0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04 };
static const unsigned char spki_p384[] = { 0x30, 0x76, 0x30, 0x10, 0x06, 0x07,
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
	0x00, 0x22, 0x03, 0x62, 0x00, 0x04 };
/* ecdsa-with-SHA256, -SHA384, -SHA512 without parameters (RFC 5758) */
static const unsigned char alg_ecdsa[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
	0x48, 0xce, 0x3d, 0x04, 0x03 };

static int
check_csr_ec(const unsigned char *der, size_t len, unsigned int key_types,
    X509_REQ **out, const char **key_type, char *detail, size_t detail_len)
{
	const unsigned char *p = der, *end = der + len, *info, *info_end;
	const unsigned char *subj, *spki, *attrs, *sig, *q;
	size_t n, subj_len, spki_len, attrs_len, sig_len, point_len;
	const char *md, *group;
	unsigned int bit;
	int curve, ret = -1;
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY *pkey = NULL;
	X509_NAME *name = NULL;
	X509_ATTRIBUTE *attr = NULL;
	X509_REQ *req = NULL;
	unsigned char *point = NULL;

	/* CertificationRequest: info, signatureAlgorithm, signature */
	if (!der_tlv(&p, end, 0x30, &n) || p + n != end)
		return -1;
	info = p;
	if (!der_tlv(&p, end, 0x30, &n))
		return -1;
	info_end = p + n;
	p = info_end;
	if ((size_t)(end - p) < sizeof(alg_ecdsa) + 1 ||
	    memcmp(p, alg_ecdsa, sizeof(alg_ecdsa)) != 0)
		return -1;
	switch (p[sizeof(alg_ecdsa)]) {
	case 0x02:
		md = "SHA256";
		break;
	case 0x03:
		md = "SHA384";
		break;
	case 0x04:
		md = "SHA512";
		break;
	default:
		return -1;
	}
	p += sizeof(alg_ecdsa) + 1;
	if (!der_tlv(&p, end, 0x03, &sig_len) || p + sig_len != end ||
	    sig_len < 2 || p[0] != 0)
		return -1;
	sig = p + 1;
	sig_len--;
	/* info: version 0, subject, subjectPKInfo, [0] attributes */
	p = info;
	(void)der_tlv(&p, end, 0x30, &n);
	if (info_end - p < 3 || p[0] != 0x02 || p[1] != 0x01 || p[2] != 0)
		return -1;
	p += 3;
	subj = p;
	if (!der_tlv(&p, info_end, 0x30, &n))
		return -1;
	p += n;
	subj_len = (size_t)(p - subj);
	spki = p;
	if ((size_t)(info_end - p) >= sizeof(spki_p256) + 64 &&
	    memcmp(p, spki_p256, sizeof(spki_p256)) == 0) {
		spki_len = sizeof(spki_p256) + 64;
		curve = NID_X9_62_prime256v1;
		group = "prime256v1";
		*key_type = "ec-p256";
		bit = P11E_CA_KEY_EC_P256;
	} else if ((size_t)(info_end - p) >= sizeof(spki_p384) + 96 &&
	    memcmp(p, spki_p384, sizeof(spki_p384)) == 0) {
		spki_len = sizeof(spki_p384) + 96;
		curve = NID_secp384r1;
		group = "secp384r1";
		*key_type = "ec-p384";
		bit = P11E_CA_KEY_EC_P384;
	} else {
		*key_type = NULL;
		return -1;
	}
	p += spki_len;
	if (!der_tlv(&p, info_end, 0xa0, &attrs_len) ||
	    p + attrs_len != info_end) {
		*key_type = NULL;
		return -1;
	}
	attrs = p;
	/* the shape is known: from here on, the answer is ours */
	point_len = spki[1] == 0x59 ? 65 : 97;
	q = spki + spki_len - point_len;
	ret = P11E_ERR_CSR_INVALID;
	if ((point = OPENSSL_memdup(q, point_len)) == NULL) {
		ret = P11E_ERR_NOMEM;
		goto out;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(
	    OSSL_PKEY_PARAM_PUB_KEY, point, point_len);
	params[2] = OSSL_PARAM_construct_end();
	if ((pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		snprintf(detail, detail_len, "the request's key is unreadable");
		goto out;
	}
	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(mctx, NULL, md, NULL, NULL, pkey, NULL) !=
		1 ||
	    EVP_DigestVerify(
		mctx, sig, sig_len, info, (size_t)(info_end - info)) != 1) {
		snprintf(detail, detail_len,
		    "the request's signature does not verify");
		goto out;
	}
	if ((key_types & bit) == 0) {
		snprintf(detail, detail_len,
		    "key type %s is not allowed by this server's policy",
		    *key_type);
		ret = P11E_ERR_KEY_POLICY;
		goto out;
	}
	/* the X509_REQ: subject, key (as sent) and attributes */
	q = subj;
	if ((req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    (name = d2i_X509_NAME(NULL, &q, (long)subj_len)) == NULL ||
	    q != subj + subj_len || X509_REQ_set_subject_name(req, name) != 1) {
		snprintf(detail, detail_len, "not a DER PKCS#10 request");
		goto out;
	}
	if (X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(req),
		OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
		OBJ_nid2obj(curve), point, (int)point_len) != 1) {
		ret = P11E_ERR_NOMEM;
		goto out;
	}
	point = NULL; /* transferred */
	p = attrs;
	while (p < info_end) {
		q = p;
		if (!der_tlv(&q, info_end, 0x30, &n) ||
		    (attr = d2i_X509_ATTRIBUTE(NULL, &p, (long)(q + n - p))) ==
			NULL ||
		    p != q + n || X509_REQ_add1_attr(req, attr) != 1) {
			snprintf(
			    detail, detail_len, "not a DER PKCS#10 request");
			goto out;
		}
		X509_ATTRIBUTE_free(attr);
		attr = NULL;
	}
	*out = req;
	req = NULL; /* transferred */
	ret = P11E_OK;
out:
	if (ret != P11E_OK)
		*key_type = NULL;
	ERR_clear_error();
	X509_ATTRIBUTE_free(attr);
	X509_REQ_free(req);
	X509_NAME_free(name);
	OPENSSL_free(point);
	EVP_MD_CTX_free(mctx);
	EVP_PKEY_CTX_free(pctx);
	EVP_PKEY_free(pkey);
	return ret;
}

enum p11e_err
p11e_ca_check_csr(const unsigned char *der, size_t len, unsigned int key_types,
    const struct p11e_ca_profile *profile, X509_REQ **out,
    const char **key_type, char *detail, size_t detail_len)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	const unsigned char *p = der;
	enum p11e_err err = P11E_ERR_CSR_INVALID;
	X509_NAME *want = NULL, *have;
	X509_REQ *req = NULL;
	EVP_PKEY *pkey;
	int i, fast;

	*out = NULL;
	*key_type = NULL;
	detail[0] = '\0';
	if (len > 0 && len <= 65536 &&
	    (fast = check_csr_ec(der, len, key_types, &req, key_type, detail,
		 detail_len)) >= 0) {
		if ((err = (enum p11e_err)fast) != P11E_OK)
			goto out;
		goto checked;
	}
	if (len == 0 || len > 65536 ||
	    (req = d2i_X509_REQ(NULL, &p, (long)len)) == NULL ||
	    p != der + len) {
		snprintf(detail, detail_len, "not a DER PKCS#10 request");
		goto out;
	}
	if ((pkey = X509_REQ_get0_pubkey(req)) == NULL) {
		snprintf(detail, detail_len, "the request's key is unreadable");
		goto out;
	}
	if (X509_REQ_verify(req, pkey) != 1) {
		snprintf(detail, detail_len,
		    "the request's signature does not verify");
		goto out;
	}
	if ((err = p11e_ca_key_policy(
		 pkey, key_types, key_type, detail, detail_len)) != P11E_OK)
		goto out;
checked:
	err = P11E_ERR_CSR_EXTENSIONS;
	have = X509_REQ_get_subject_name(req);
	if (X509_NAME_entry_count(have) > 0) {
		if ((want = profile_name(profile)) == NULL) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
		if (X509_NAME_cmp(have, want) != 0) {
			snprintf(detail, detail_len,
			    "the request asks for a subject that would not be "
			    "issued");
			goto out;
		}
	}
	exts = X509_REQ_get_extensions(req);
	for (i = 0; i < sk_X509_EXTENSION_num(exts); i++)
		if (!extension_allowed(sk_X509_EXTENSION_value(exts, i),
			profile, detail, detail_len))
			goto out;
	*out = req;
	req = NULL; /* transferred */
	err = P11E_OK;
out:
	if (err != P11E_OK)
		*key_type = NULL;
	ERR_clear_error();
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(want);
	X509_REQ_free(req);
	return err;
}

/*
 * An EC key with a named curve and an uncompressed point of a supported
 * size: its X509_PUBKEY encodes exactly as i2d_PUBKEY would re-encode
 * the key, so it can be used as is, without OpenSSL 3's encoder
 * machinery (the top of a loaded server's profile).
 */
static bool
spki_canonical_ec(const X509_PUBKEY *pub)
{
	ASN1_OBJECT *alg = NULL;
	const unsigned char *pk = NULL;
	const void *pval = NULL;
	X509_ALGOR *pa = NULL;
	int pklen = 0, ptype = 0;

	if (pub == NULL ||
	    X509_PUBKEY_get0_param(&alg, &pk, &pklen, &pa, pub) != 1 ||
	    OBJ_obj2nid(alg) != NID_X9_62_id_ecPublicKey || pa == NULL)
		return false;
	X509_ALGOR_get0(NULL, &ptype, &pval, pa);
	return ptype == V_ASN1_OBJECT && pk != NULL && pk[0] == 0x04 &&
	    ((pklen == 65 && OBJ_obj2nid(pval) == NID_X9_62_prime256v1) ||
		(pklen == 97 && OBJ_obj2nid(pval) == NID_secp384r1));
}

enum p11e_err
p11e_ca_req_spki_sha256(X509_REQ *req, unsigned char out[32])
{
	X509_PUBKEY *pub = X509_REQ_get_X509_PUBKEY(req);
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	enum p11e_err err = P11E_ERR_CRYPTO;
	int len;

	if (!spki_canonical_ec(pub))
		return X509_REQ_get0_pubkey(req) == NULL
		    ? P11E_ERR_CRYPTO
		    : p11e_ca_spki_sha256(X509_REQ_get0_pubkey(req), out);
	if ((len = i2d_X509_PUBKEY(pub, &der)) > 0 &&
	    EVP_Digest(der, (size_t)len, out, &mdlen, EVP_sha256(), NULL) == 1)
		err = P11E_OK;
	OPENSSL_free(der);
	return err;
}

/*
 * The request's public key into x: its algorithm, curve and point set
 * directly when canonical (above), else through the EVP_PKEY.
 */
static bool
set_pubkey(X509 *x, X509_REQ *req)
{
	X509_PUBKEY *pub = X509_REQ_get_X509_PUBKEY(req);
	X509_PUBKEY *xpk = X509_get_X509_PUBKEY(x);
	ASN1_OBJECT *alg = NULL, *aobj = NULL, *curve = NULL;
	const unsigned char *pk = NULL;
	unsigned char *penc = NULL;
	const void *pval = NULL;
	X509_ALGOR *pa = NULL;
	int pklen = 0, ptype = 0;

	if (xpk == NULL || !spki_canonical_ec(pub))
		return X509_set_pubkey(x, X509_REQ_get0_pubkey(req)) == 1;
	if (X509_PUBKEY_get0_param(&alg, &pk, &pklen, &pa, pub) != 1)
		return false;
	X509_ALGOR_get0(NULL, &ptype, &pval, pa);
	if ((aobj = OBJ_dup(alg)) == NULL || (curve = OBJ_dup(pval)) == NULL ||
	    (penc = OPENSSL_memdup(pk, (size_t)pklen)) == NULL ||
	    X509_PUBKEY_set0_param(
		xpk, aobj, V_ASN1_OBJECT, curve, penc, pklen) != 1) {
		ASN1_OBJECT_free(aobj);
		ASN1_OBJECT_free(curve);
		OPENSSL_free(penc);
		return false;
	}
	return true;
}

const EVP_MD *
p11e_ca_sign_md(EVP_PKEY *key)
{
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
	    EVP_PKEY_get_bits(key) >= 384)
		return EVP_sha384();
	return EVP_sha256();
}

static enum p11e_err
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (ext == NULL)
		return P11E_ERR_CRYPTO;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? P11E_OK : P11E_ERR_CRYPTO;
}

#define EXT_BC "critical,CA:FALSE"
#define EXT_KU "critical,digitalSignature"
#define EXT_EKU "clientAuth"
#define EXT_AKI "keyid:always"

/* A copy of the made-once extension tmpl into x, or one made now. */
static enum p11e_err
ext_put(
    X509 *x, X509V3_CTX *ctx, X509_EXTENSION *tmpl, int nid, const char *value)
{
	if (tmpl == NULL)
		return add_ext(x, ctx, nid, value);
	return X509_add_ext(x, tmpl, -1) == 1 ? P11E_OK : P11E_ERR_CRYPTO;
}

/* The extensions of every certificate, made once (best effort). */
static void
ext_templates(struct p11e_ca *ca)
{
	X509V3_CTX ctx;
	X509 *dummy = X509_new();

	if (dummy == NULL)
		return;
	X509V3_set_ctx(&ctx, ca->cert, dummy, NULL, NULL, 0);
	ca->ext_bc =
	    X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, EXT_BC);
	ca->ext_ku = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, EXT_KU);
	ca->ext_eku =
	    X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, EXT_EKU);
	ca->ext_aki = X509V3_EXT_conf_nid(
	    NULL, &ctx, NID_authority_key_identifier, EXT_AKI);
	X509_free(dummy);
	ERR_clear_error();
}

enum p11e_err
p11e_ca_issue(struct p11e_ca *ca, X509_REQ *req,
    const struct p11e_ca_profile *profile, time_t now,
    struct p11e_ca_issued *out)
{
	unsigned char serial[SERIAL_LEN], *der = NULL;
	long validity = profile->validity > 0 ? profile->validity
					      : P11E_CA_DEFAULT_VALIDITY;
	long backdate = profile->backdate >= 0 ? profile->backdate
					       : P11E_CA_DEFAULT_BACKDATE;
	enum p11e_err err = P11E_ERR_CRYPTO;
	ASN1_INTEGER *ai = NULL;
	GENERAL_NAMES *san = NULL;
	X509_NAME *name = NULL;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	X509V3_CTX ctx;
	EVP_MD_CTX *mctx = NULL;
	X509 *x = NULL;
	int len;

	memset(out, 0, sizeof(*out));
	p11e_buf_init(&out->der, 64 * 1024);
	out->not_before = now - backdate;
	out->not_after = out->not_before + validity;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f; /* positive */
	if (serial[0] == 0)
		serial[0] = 0x01; /* and 16 octets long */
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    (hex = BN_bn2hex(bn)) == NULL ||
	    (name = profile_name(profile)) == NULL || (x = X509_new()) == NULL)
		goto out;
	if (profile->san_uri != NULL && (san = profile_san(profile)) == NULL)
		goto out;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_set_serialNumber(x, ai) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), out->not_before) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), out->not_after) == NULL ||
	    !set_pubkey(x, req))
		goto out;
	X509V3_set_ctx(&ctx, ca->cert, x, NULL, NULL, 0);
	if ((err = ext_put(x, &ctx, ca->ext_bc, NID_basic_constraints,
		 EXT_BC)) != P11E_OK ||
	    (err = ext_put(x, &ctx, ca->ext_ku, NID_key_usage, EXT_KU)) !=
		P11E_OK ||
	    (err = ext_put(x, &ctx, ca->ext_eku, NID_ext_key_usage, EXT_EKU)) !=
		P11E_OK ||
	    (err = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) !=
		P11E_OK ||
	    (err = ext_put(x, &ctx, ca->ext_aki, NID_authority_key_identifier,
		 EXT_AKI)) != P11E_OK)
		goto out;
	err = P11E_ERR_CRYPTO;
	if (san != NULL &&
	    X509_add1_ext_i2d(
		x, NID_subject_alt_name, san, 0, X509V3_ADD_DEFAULT) != 1)
		goto out;
	if (ca->sign_tmpl != NULL) {
		if ((mctx = EVP_MD_CTX_new()) == NULL ||
		    EVP_MD_CTX_copy_ex(mctx, ca->sign_tmpl) != 1 ||
		    X509_sign_ctx(x, mctx) <= 0)
			goto out;
	} else if (X509_sign(x, ca->key, p11e_ca_sign_md(ca->key)) <= 0) {
		goto out;
	}
	if ((len = i2d_X509(x, &der)) <= 0)
		goto out;
	if ((err = p11e_buf_append(&out->der, der, (size_t)len)) != P11E_OK)
		goto out;
	snprintf(out->serial, sizeof(out->serial), "%s", hex);
	err = P11E_OK;
out:
	if (err != P11E_OK) {
		p11e_ca_log_ossl("issue");
		p11e_buf_clear(&out->der);
	}
	EVP_MD_CTX_free(mctx);
	OPENSSL_free(der);
	OPENSSL_free(hex);
	GENERAL_NAMES_free(san);
	X509_NAME_free(name);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	X509_free(x);
	return err;
}

/* Appends a DER tag and length (definite form) for a content of len. */
static enum p11e_err
der_header(struct p11e_buf *out, unsigned char tag, size_t len)
{
	unsigned char h[6];
	size_t n = 0, i;

	if (len > 0xffffff)
		return P11E_ERR_TOO_LARGE;
	h[n++] = tag;
	if (len < 0x80) {
		h[n++] = (unsigned char)len;
	} else {
		size_t bytes = len > 0xffff ? 3 : len > 0xff ? 2 : 1;

		h[n++] = (unsigned char)(0x80 | bytes);
		for (i = bytes; i > 0; i--)
			h[n++] = (unsigned char)(len >> (8 * (i - 1)));
	}
	return p11e_buf_append(out, h, n);
}

static size_t
der_size(size_t len)
{
	return 1 +
	    (len < 0x80		    ? 1
		    : len <= 0xff   ? 2
		    : len <= 0xffff ? 3
				    : 4) +
	    len;
}

/*
 * Whether der is exactly one DER Certificate as far as its outer
 * structure goes: a SEQUENCE of exactly len bytes holding a SEQUENCE
 * (tbsCertificate), a SEQUENCE (signatureAlgorithm) and a BIT STRING,
 * and nothing else.  Without decoding it: d2i_X509 also decodes the
 * public key through OpenSSL 3's decoders, about a quarter of a
 * millisecond for a certificate the RA has just made or stored.
 */
static bool
der_is_certificate(const unsigned char *der, size_t len)
{
	const unsigned char *p = der, *end = der + len;
	size_t n;

	if (!der_tlv(&p, end, 0x30, &n) || p + n != end)
		return false;
	if (!der_tlv(&p, end, 0x30, &n))
		return false;
	p += n;
	if (!der_tlv(&p, end, 0x30, &n))
		return false;
	p += n;
	if (!der_tlv(&p, end, 0x03, &n))
		return false;
	return p + n == end;
}

/*
 * The certificates are written as they are (a certs-only SignedData is
 * a fixed wrapper around them), the bytes i2d_PKCS7 gives for
 * PKCS7_set_type(signed) + PKCS7_content_new(data) + the certificates;
 * each is checked to be one DER certificate first (its outer structure:
 * they are the RA's own, just issued or read from its database).
 */
enum p11e_err
p11e_ca_pkcs7_certs(const unsigned char *const *ders, const size_t *lens,
    size_t n, struct p11e_buf *out)
{
	static const unsigned char oid_signed[] = { 0x06, 0x09, 0x2a, 0x86,
		0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02 };
	/* version 1, digestAlgorithms {}, contentInfo { data } */
	static const unsigned char sd_head[] = { 0x02, 0x01, 0x01, 0x31, 0x00,
		0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
		0x01, 0x07, 0x01 };
	static const unsigned char signer_infos[] = { 0x31, 0x00 };
	enum p11e_err err = P11E_OK;
	size_t i, certs = 0, sd, explicit;

	for (i = 0; i < n; i++) {
		if (lens[i] > 0xffff || !der_is_certificate(ders[i], lens[i])) {
			p11e_error("pkcs7: certificate %zu is not one DER "
				   "certificate",
			    i + 1);
			return P11E_ERR_CRYPTO;
		}
		certs += lens[i];
	}
	sd = sizeof(sd_head) + der_size(certs) + sizeof(signer_infos);
	explicit = der_size(sd);
	if ((err = der_header(out, 0x30,
		 sizeof(oid_signed) + der_size(explicit))) != P11E_OK ||
	    (err = p11e_buf_append(out, oid_signed, sizeof(oid_signed))) !=
		P11E_OK ||
	    (err = der_header(out, 0xa0, explicit)) != P11E_OK ||
	    (err = der_header(out, 0x30, sd)) != P11E_OK ||
	    (err = p11e_buf_append(out, sd_head, sizeof(sd_head))) != P11E_OK ||
	    (err = der_header(out, 0xa0, certs)) != P11E_OK)
		return err;
	for (i = 0; i < n && err == P11E_OK; i++)
		err = p11e_buf_append(out, ders[i], lens[i]);
	if (err == P11E_OK)
		err = p11e_buf_append(out, signer_infos, sizeof(signer_infos));
	return err;
}

static const char *const reasons[] = {
	"unspecified",
	"keyCompromise",
	"cACompromise",
	"affiliationChanged",
	"superseded",
	"cessationOfOperation",
	"certificateHold",
	NULL, /* 7 is not used */
	"removeFromCRL",
	"privilegeWithdrawn",
	"aACompromise",
};

int
p11e_ca_reason_code(const char *name)
{
	int i;

	for (i = 0; i < (int)(sizeof(reasons) / sizeof(reasons[0])); i++)
		if (reasons[i] != NULL && strcmp(reasons[i], name) == 0)
			return i;
	return -1;
}

const char *
p11e_ca_reason_name(int code)
{
	if (code < 0 || code >= (int)(sizeof(reasons) / sizeof(reasons[0])))
		return NULL;
	return reasons[code];
}

enum p11e_err
p11e_ca_crl(struct p11e_ca *ca, const struct p11e_ca_crl_entry *entries,
    size_t n, time_t now, long next_update, long crl_number,
    struct p11e_buf *out)
{
	enum p11e_err err = P11E_ERR_CRYPTO;
	ASN1_TIME *this_t = NULL, *next_t = NULL, *rt = NULL;
	ASN1_INTEGER *num = NULL, *sn = NULL;
	ASN1_ENUMERATED *reason = NULL;
	X509_EXTENSION *aki = NULL;
	X509_REVOKED *r = NULL;
	unsigned char *der = NULL;
	X509_CRL *crl = NULL;
	BIGNUM *bn = NULL;
	X509V3_CTX ctx;
	size_t i;
	int len;

	if ((crl = X509_CRL_new()) == NULL ||
	    X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) !=
		1 ||
	    (this_t = ASN1_TIME_set(NULL, now)) == NULL ||
	    (next_t = ASN1_TIME_set(NULL, now + next_update)) == NULL ||
	    X509_CRL_set1_lastUpdate(crl, this_t) != 1 ||
	    X509_CRL_set1_nextUpdate(crl, next_t) != 1)
		goto out;
	for (i = 0; i < n; i++) {
		if (BN_hex2bn(&bn, entries[i].serial) == 0 ||
		    (sn = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
		    (rt = ASN1_TIME_set(NULL, entries[i].revoked_at)) == NULL ||
		    (r = X509_REVOKED_new()) == NULL ||
		    X509_REVOKED_set_serialNumber(r, sn) != 1 ||
		    X509_REVOKED_set_revocationDate(r, rt) != 1)
			goto out;
		if (entries[i].reason > 0) {
			if ((reason = ASN1_ENUMERATED_new()) == NULL ||
			    ASN1_ENUMERATED_set(reason, entries[i].reason) !=
				1 ||
			    X509_REVOKED_add1_ext_i2d(
				r, NID_crl_reason, reason, 0, 0) != 1)
				goto out;
			ASN1_ENUMERATED_free(reason);
			reason = NULL;
		}
		if (X509_CRL_add0_revoked(crl, r) != 1)
			goto out;
		r = NULL; /* transferred */
		ASN1_INTEGER_free(sn);
		sn = NULL;
		ASN1_TIME_free(rt);
		rt = NULL;
	}
	X509V3_set_ctx(&ctx, ca->cert, NULL, NULL, crl, 0);
	if ((aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier,
		 "keyid:always")) == NULL ||
	    X509_CRL_add_ext(crl, aki, -1) != 1 ||
	    (num = ASN1_INTEGER_new()) == NULL ||
	    ASN1_INTEGER_set(num, crl_number) != 1 ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1 ||
	    X509_CRL_sort(crl) != 1 ||
	    X509_CRL_sign(crl, ca->key, p11e_ca_sign_md(ca->key)) <= 0 ||
	    (len = i2d_X509_CRL(crl, &der)) <= 0)
		goto out;
	err = p11e_buf_append(out, der, (size_t)len);
out:
	if (err == P11E_ERR_CRYPTO)
		p11e_ca_log_ossl("crl");
	OPENSSL_free(der);
	X509_EXTENSION_free(aki);
	ASN1_ENUMERATED_free(reason);
	X509_REVOKED_free(r);
	ASN1_INTEGER_free(sn);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(rt);
	ASN1_TIME_free(this_t);
	ASN1_TIME_free(next_t);
	BN_free(bn);
	X509_CRL_free(crl);
	return err;
}

enum p11e_err
p11e_ca_spki_sha256(EVP_PKEY *pkey, unsigned char out[32])
{
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	int len;

	if ((len = i2d_PUBKEY(pkey, &der)) <= 0)
		return P11E_ERR_CRYPTO;
	if (EVP_Digest(der, (size_t)len, out, &mdlen, EVP_sha256(), NULL) !=
	    1) {
		OPENSSL_free(der);
		return P11E_ERR_CRYPTO;
	}
	OPENSSL_free(der);
	return P11E_OK;
}

enum p11e_err
p11e_ca_spki_pin(X509 *cert, char *out, size_t outlen)
{
	unsigned char md[32], b64[64];
	enum p11e_err err;

	if (outlen < 53)
		return P11E_ERR_INVALID_PARAMETER;
	if ((err = p11e_ca_spki_sha256(X509_get0_pubkey(cert), md)) != P11E_OK)
		return err;
	if (EVP_EncodeBlock(b64, md, sizeof(md)) != 44)
		return P11E_ERR_CRYPTO;
	snprintf(out, outlen, "sha256//%s", (const char *)b64);
	return P11E_OK;
}

enum p11e_err
p11e_ca_from(X509 *cert, EVP_PKEY *key, struct p11e_ca **out)
{
	struct p11e_ca *ca;

	*out = NULL;
	if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		return P11E_ERR_CERT_KEY_MISMATCH;
	}
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return P11E_ERR_NOMEM;
	if ((ca->chain = sk_X509_new_null()) == NULL) {
		free(ca);
		return P11E_ERR_NOMEM;
	}
	X509_up_ref(cert);
	EVP_PKEY_up_ref(key);
	ca->cert = cert;
	ca->key = key;
	*out = ca;
	return P11E_OK;
}

/* The id= attribute of a PKCS#11 URI, percent-decoded. */
static enum p11e_err
uri_id(const char *uri, unsigned char *id, size_t *idlen)
{
	const char *p = strchr(uri, ':');
	size_t n = 0;

	while (p != NULL) {
		p++;
		if (strncmp(p, "id=", 3) == 0) {
			p += 3;
			while (*p != '\0' && *p != ';' && *p != '?') {
				unsigned int v;

				if (n == P11E_ID_MAX)
					return P11E_ERR_PARSE;
				if (*p == '%') {
					if (sscanf(p + 1, "%2x", &v) != 1)
						return P11E_ERR_PARSE;
					p += 3;
				} else {
					v = (unsigned char)*p++;
				}
				id[n++] = (unsigned char)v;
			}
			*idlen = n;
			return n > 0 ? P11E_OK : P11E_ERR_PARSE;
		}
		p = strpbrk(p, ";?");
	}
	return P11E_ERR_PARSE;
}

static enum p11e_err
load_token_key(struct p11e_ca *ca, const char *uri)
{
	unsigned char id[P11E_ID_MAX];
	size_t idlen = 0;
	enum p11e_err err;

	if (uri_id(uri, id, &idlen) != P11E_OK) {
		p11e_error("key-uri: no id= attribute naming the CA key");
		return P11E_ERR_INVALID_PARAMETER;
	}
	if ((err = p11e_p11_new(&ca->p11)) != P11E_OK ||
	    (err = p11e_token_open(ca->p11, uri, &ca->tok)) != P11E_OK ||
	    (err = p11e_token_login(ca->tok, NULL, false)) != P11E_OK ||
	    (err = p11e_token_evp_key(ca->tok, id, idlen, &ca->evp)) !=
		P11E_OK) {
		if (ca->p11 != NULL && p11e_p11_detail(ca->p11)[0] != '\0')
			p11e_error_r(
			    err, "CA key: %s", p11e_p11_detail(ca->p11));
		return err;
	}
	ca->key = p11e_evp_key_pkey(ca->evp);
	EVP_PKEY_up_ref(ca->key);
	return P11E_OK;
}

static enum p11e_err
load_key_file(struct p11e_ca *ca, const char *path)
{
	struct stat stb;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL) {
		p11e_error("CA key %s: %s", path, strerror(errno));
		return P11E_ERR_IO;
	}
	if (fstat(fileno(f), &stb) != 0 || (stb.st_mode & 077) != 0) {
		p11e_error(
		    "CA key %s: readable by others (must be 0600)", path);
		fclose(f);
		return P11E_ERR_UNSAFE_PATH;
	}
	ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (ca->key == NULL) {
		p11e_ca_log_ossl(path);
		return P11E_ERR_PARSE;
	}
	return P11E_OK;
}

/*
 * The rest of the CA's file: each certificate must have issued the one
 * before it (an intermediate's chain up to the root), or the file is
 * refused.
 */
static enum p11e_err
read_chain(struct p11e_ca *ca, FILE *f, const char *path)
{
	X509 *prev = ca->cert, *x;

	if ((ca->chain = sk_X509_new_null()) == NULL)
		return P11E_ERR_NOMEM;
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(ca->chain, x)) {
			X509_free(x);
			return P11E_ERR_NOMEM;
		}
		if (X509_check_issued(x, prev) != X509_V_OK) {
			p11e_error("CA certificate %s: certificate %d did not "
				   "issue the one before it; the file holds "
				   "the issuing CA first, then its chain up "
				   "to the root",
			    path, sk_X509_num(ca->chain) + 1);
			return P11E_ERR_PARSE;
		}
		prev = x;
	}
	/* the end of the file */
	ERR_clear_error();
	return P11E_OK;
}

enum p11e_err
p11e_ca_load(const char *cert_path, const char *key_path, const char *key_uri,
    struct p11e_ca **out)
{
	struct p11e_ca *ca;
	enum p11e_err err;
	FILE *f;

	*out = NULL;
	p11e_return_val_if_fail(cert_path != NULL && (key_path || key_uri),
	    P11E_ERR_INVALID_PARAMETER);
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return P11E_ERR_NOMEM;
	if ((f = fopen(cert_path, "re")) == NULL) {
		p11e_error("CA certificate %s: %s", cert_path, strerror(errno));
		err = P11E_ERR_IO;
		goto out;
	}
	ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
	err = ca->cert == NULL ? P11E_ERR_PARSE : read_chain(ca, f, cert_path);
	fclose(f);
	if (err != P11E_OK) {
		p11e_ca_log_ossl(cert_path);
		goto out;
	}
	err = key_uri != NULL ? load_token_key(ca, key_uri)
			      : load_key_file(ca, key_path);
	if (err != P11E_OK)
		goto out;
	if (X509_check_private_key(ca->cert, ca->key) != 1 && ca->evp == NULL) {
		/* a token key has no private half to compare: it is proven
		 * by its first signature */
		ERR_clear_error();
		err = P11E_ERR_CERT_KEY_MISMATCH;
		goto out;
	}
	ERR_clear_error();
	if (ca->evp == NULL &&
	    ((ca->sign_tmpl = EVP_MD_CTX_new()) == NULL ||
		EVP_DigestSignInit(ca->sign_tmpl, NULL,
		    p11e_ca_sign_md(ca->key), NULL, ca->key) != 1)) {
		EVP_MD_CTX_free(ca->sign_tmpl);
		ca->sign_tmpl = NULL;
		ERR_clear_error();
	}
	ext_templates(ca);
	*out = ca;
	ca = NULL; /* transferred */
out:
	p11e_ca_free(ca);
	return err;
}

void
p11e_ca_free(struct p11e_ca *ca)
{
	if (ca == NULL)
		return;
	EVP_MD_CTX_free(ca->sign_tmpl);
	X509_EXTENSION_free(ca->ext_bc);
	X509_EXTENSION_free(ca->ext_ku);
	X509_EXTENSION_free(ca->ext_eku);
	X509_EXTENSION_free(ca->ext_aki);
	EVP_PKEY_free(ca->key);
	p11e_evp_key_free(ca->evp);
	p11e_token_close(ca->tok);
	p11e_p11_free(ca->p11);
	X509_free(ca->cert);
	sk_X509_pop_free(ca->chain, X509_free);
	free(ca);
}

X509 *
p11e_ca_cert(const struct p11e_ca *ca)
{
	return ca->cert;
}

STACK_OF(X509) * p11e_ca_chain(const struct p11e_ca *ca)
{
	return ca->chain;
}

X509 *
p11e_ca_client_cert(const struct p11e_http_request *req, X509_STORE *store,
    time_t now, char *detail, size_t dlen)
{
	const unsigned char *p;
	X509_STORE_CTX *ctx = NULL;
	X509 *x = NULL;
	int ok = 0;

	if (req->n_certs == 0) {
		snprintf(detail, dlen, "no client certificate was presented");
		return NULL;
	}
	if (!req->cert_verified) {
		snprintf(detail, dlen,
		    "the client certificate does not verify against the "
		    "issuing CA (expired, or not issued by it)");
		return NULL;
	}
	p = req->cert_der[0];
	if ((x = d2i_X509(NULL, &p, (long)req->cert_len[0])) == NULL ||
	    p != req->cert_der[0] + req->cert_len[0] ||
	    (ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, store, x, NULL) != 1 ||
	    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1)
		goto out;
	X509_STORE_CTX_set_time(ctx, 0, now);
	ok = X509_verify_cert(ctx) == 1;
	if (!ok)
		snprintf(detail, dlen, "client certificate: %s",
		    X509_verify_cert_error_string(
			X509_STORE_CTX_get_error(ctx)));
out:
	X509_STORE_CTX_free(ctx);
	if (!ok) {
		if (detail[0] == '\0')
			snprintf(detail, dlen, "unreadable client certificate");
		X509_free(x);
		return NULL;
	}
	return x;
}

enum p11e_err
p11e_ca_serial_hex(const X509 *x, char *buf, size_t len)
{
	BIGNUM *bn;
	char *hex = NULL;

	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) ==
		NULL ||
	    (hex = BN_bn2hex(bn)) == NULL) {
		BN_free(bn);
		return P11E_ERR_NOMEM;
	}
	snprintf(buf, len, "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);
	return P11E_OK;
}
