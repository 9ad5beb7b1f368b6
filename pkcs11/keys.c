/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <string.h>
#include <sys/random.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "common/crashpoint.h"
#include "common/log.h"
#include "pkcs11/token-private.h"

static const struct {
	const char *name;
	CK_KEY_TYPE ck;
	CK_ULONG bits;
	const char *group; /* EC: OpenSSL group name */
	const unsigned char *params;
	size_t params_len;
} key_types[P11E_KEY_TYPE_COUNT] = {
	/* DER OIDs of the curves, as CKA_EC_PARAMS wants them */
	{ "ec-p256", CKK_EC, 256, "P-256",
	    (const unsigned char *)"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07",
	    10 },
	{ "ec-p384", CKK_EC, 384, "P-384",
	    (const unsigned char *)"\x06\x05\x2b\x81\x04\x00\x22", 7 },
	{ "rsa-2048", CKK_RSA, 2048, NULL, NULL, 0 },
	{ "rsa-3072", CKK_RSA, 3072, NULL, NULL, 0 },
	{ "rsa-4096", CKK_RSA, 4096, NULL, NULL, 0 },
};

const char *
p11e_key_type_name(enum p11e_key_type type)
{
	if ((unsigned int)type >= P11E_KEY_TYPE_COUNT)
		return "?";
	return key_types[type].name;
}

enum p11e_err
p11e_key_type_parse(const char *name, enum p11e_key_type *type)
{
	int i;

	for (i = 0; i < P11E_KEY_TYPE_COUNT; i++) {
		if (strcmp(name, key_types[i].name) == 0) {
			*type = (enum p11e_key_type)i;
			return P11E_OK;
		}
	}
	return P11E_ERR_PARSE;
}

const char *
p11e_tok_key_type(struct p11e_token *tok, CK_OBJECT_HANDLE h)
{
	CK_KEY_TYPE kt;
	CK_ATTRIBUTE a = { CKA_KEY_TYPE, &kt, sizeof(kt) };
	CK_ATTRIBUTE m = { CKA_MODULUS, NULL, 0 };
	struct p11e_buf b;
	const char *name = "";
	int i;

	if (tok->module->C_GetAttributeValue(tok->session, h, &a, 1) != CKR_OK)
		return "";
	p11e_buf_init(&b, 256);
	if (kt == CKK_EC) {
		name = "ec";
		if (p11e_tok_attr(tok, h, CKA_EC_PARAMS, 256, &b) != P11E_OK)
			goto out;
	} else if (kt == CKK_RSA) {
		name = "rsa";
		/* the modulus is public on private keys too: its length */
		if (tok->module->C_GetAttributeValue(tok->session, h, &m, 1) !=
			CKR_OK ||
		    m.ulValueLen == CK_UNAVAILABLE_INFORMATION)
			goto out;
	} else {
		goto out;
	}
	for (i = 0; i < P11E_KEY_TYPE_COUNT; i++) {
		if (key_types[i].ck != kt)
			continue;
		if (kt == CKK_EC ? b.len == key_types[i].params_len &&
			    memcmp(b.data, key_types[i].params, b.len) == 0
				 : m.ulValueLen * 8 == key_types[i].bits) {
			name = key_types[i].name;
			break;
		}
	}
out:
	p11e_buf_clear(&b);
	return name;
}

/* Whether any object on the token carries CKA_ID id. */
static enum p11e_err
id_used(
    struct p11e_token *tok, const unsigned char *id, size_t idlen, bool *used)
{
	CK_OBJECT_HANDLE h;
	enum p11e_err err;
	CK_ULONG n;

	err = p11e_tok_find(tok, (CK_OBJECT_CLASS)-1, id, idlen, &h, 1, &n);
	if (err == P11E_OK)
		*used = n > 0;
	return err;
}

enum p11e_err
p11e_token_new_id(struct p11e_token *tok, unsigned char *id, size_t len)
{
	enum p11e_err err;
	bool used = true;
	int tries;

	p11e_return_val_if_fail(len >= P11E_ID_MIN && len <= P11E_ID_MAX,
	    P11E_ERR_INVALID_PARAMETER);
	for (tries = 0; tries < 8 && used; tries++) {
		if (getrandom(id, len, 0) != (ssize_t)len)
			return P11E_ERR_SYSTEM;
		if ((err = id_used(tok, id, len, &used)) != P11E_OK)
			return err;
	}
	return used ? P11E_ERR_ID_IN_USE : P11E_OK;
}

/*
 * The SubjectPublicKeyInfo of a public key object, rebuilt from its
 * attributes (tokens do not all offer CKA_PUBLIC_KEY_INFO).
 */
static enum p11e_err
spki_of(struct p11e_token *tok, CK_OBJECT_HANDLE pub, struct p11e_buf *out)
{
	struct p11e_buf a, b;
	CK_KEY_TYPE kt;
	CK_ATTRIBUTE attr = { CKA_KEY_TYPE, &kt, sizeof(kt) };
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *n = NULL, *e = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	ASN1_OCTET_STRING *os = NULL;
	ASN1_OBJECT *oid = NULL;
	enum p11e_err err = P11E_ERR_CRYPTO;
	const char *group;
	int len;
	CK_RV rv;

	p11e_buf_init(&a, 4096);
	p11e_buf_init(&b, 4096);
	rv = tok->module->C_GetAttributeValue(tok->session, pub, &attr, 1);
	if (rv != CKR_OK) {
		err = p11e_ckr_err(tok, "C_GetAttributeValue", rv);
		goto out;
	}
	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL)
		goto out;
	if (kt == CKK_EC) {
		if ((err = p11e_tok_attr(tok, pub, CKA_EC_PARAMS, 256, &a)) !=
			P11E_OK ||
		    (err = p11e_tok_attr(tok, pub, CKA_EC_POINT, 1024, &b)) !=
			P11E_OK)
			goto out;
		err = P11E_ERR_CRYPTO;
		p = a.data;
		if ((oid = d2i_ASN1_OBJECT(NULL, &p, (long)a.len)) == NULL ||
		    (group = OBJ_nid2sn(OBJ_obj2nid(oid))) == NULL)
			goto out;
		/* CKA_EC_POINT is a DER OCTET STRING; some tokens give it raw */
		p = b.data;
		os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)b.len);
		if (!OSSL_PARAM_BLD_push_utf8_string(
			bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld,
			OSSL_PKEY_PARAM_PUB_KEY,
			os ? ASN1_STRING_get0_data(os) : b.data,
			os ? (size_t)ASN1_STRING_length(os) : b.len))
			goto out;
		pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	} else if (kt == CKK_RSA) {
		if ((err = p11e_tok_attr(tok, pub, CKA_MODULUS, 1024, &a)) !=
			P11E_OK ||
		    (err = p11e_tok_attr(
			 tok, pub, CKA_PUBLIC_EXPONENT, 64, &b)) != P11E_OK)
			goto out;
		err = P11E_ERR_CRYPTO;
		n = BN_bin2bn(a.data, (int)a.len, NULL);
		e = BN_bin2bn(b.data, (int)b.len, NULL);
		if (n == NULL || e == NULL ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
			goto out;
		pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	} else {
		p11e_p11_set_detail(tok->p11,
		    "Key type 0x%lx is not one "
		    "p11enroll uses.",
		    (unsigned long)kt);
		err = P11E_ERR_MECHANISM_UNSUPPORTED;
		goto out;
	}
	if (pctx == NULL || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    EVP_PKEY_fromdata_init(pctx) <= 0 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0 ||
	    (len = i2d_PUBKEY(pkey, &der)) <= 0)
		goto out;
	err = p11e_buf_append(out, der, (size_t)len);
out:
	if (err == P11E_ERR_CRYPTO) {
		p11e_log_openssl("building the public key");
		p11e_p11_set_detail(tok->p11,
		    "The token's public key could "
		    "not be read as a key.");
	}
	OPENSSL_free(der);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(oid);
	p11e_buf_clear(&a);
	p11e_buf_clear(&b);
	return err;
}

/* Checks the protection of a private key (DESIGN §5). */
static enum p11e_err
check_protected(struct p11e_token *tok, CK_OBJECT_HANDLE priv)
{
	CK_BBOOL always = CK_FALSE, never = CK_FALSE, sens = CK_FALSE,
		 extr = CK_TRUE;
	CK_ATTRIBUTE a[] = {
		{ CKA_ALWAYS_SENSITIVE, &always, sizeof(always) },
		{ CKA_NEVER_EXTRACTABLE, &never, sizeof(never) },
		{ CKA_SENSITIVE, &sens, sizeof(sens) },
		{ CKA_EXTRACTABLE, &extr, sizeof(extr) },
	};
	CK_RV rv;

	rv = tok->module->C_GetAttributeValue(tok->session, priv, a, 4);
	if (rv != CKR_OK)
		return p11e_ckr_err(tok, "C_GetAttributeValue", rv);
	if (always != CK_TRUE || never != CK_TRUE || sens != CK_TRUE ||
	    extr != CK_FALSE) {
		p11e_p11_set_detail(tok->p11,
		    "The key is not protected: "
		    "always-sensitive %s, "
		    "never-extractable %s, sensitive "
		    "%s, extractable %s.",
		    always ? "yes" : "no", never ? "yes" : "no",
		    sens ? "yes" : "no", extr ? "yes" : "no");
		return P11E_ERR_KEY_UNPROTECTED;
	}
	return P11E_OK;
}

enum p11e_err
p11e_token_keygen(struct p11e_token *tok, enum p11e_key_type type,
    const unsigned char *id, size_t idlen, const char *label,
    struct p11e_buf *spki)
{
	CK_OBJECT_CLASS pubc = CKO_PUBLIC_KEY, privc = CKO_PRIVATE_KEY;
	CK_KEY_TYPE kt;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_BYTE exponent[] = { 0x01, 0x00, 0x01 };
	CK_ULONG bits;
	CK_MECHANISM mech = { 0, NULL, 0 };
	CK_ATTRIBUTE pub[12], priv[14];
	CK_ULONG npub = 0, npriv = 0;
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	struct p11e_buf out;
	enum p11e_err err;
	bool used;
	int i;
	CK_RV rv;

#define ADD(t, a, v, l)                         \
	do {                                    \
		(t)[n##t].type = (a);           \
		(t)[n##t].pValue = (void *)(v); \
		(t)[n##t].ulValueLen = (l);     \
		n##t++;                         \
	} while (0)

	p11e_return_val_if_fail((unsigned int)type < P11E_KEY_TYPE_COUNT,
	    P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(idlen >= P11E_ID_MIN && idlen <= P11E_ID_MAX,
	    P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(label != NULL, P11E_ERR_INVALID_PARAMETER);
	p11e_buf_init(&out, 4096);
	if (!tok->info.keygen[type]) {
		p11e_p11_set_detail(tok->p11,
		    "'%s' cannot generate %s keys. "
		    "It can generate:",
		    tok->info.label, key_types[type].name);
		for (i = 0; i < P11E_KEY_TYPE_COUNT; i++) {
			if (tok->info.keygen[i])
				p11e_p11_add_detail(
				    tok->p11, " %s", key_types[i].name);
		}
		return P11E_ERR_MECHANISM_UNSUPPORTED;
	}
	if ((err = id_used(tok, id, idlen, &used)) != P11E_OK)
		return err;
	if (used) {
		p11e_p11_set_detail(tok->p11,
		    "An object with this CKA_ID is "
		    "already on '%s'.",
		    tok->info.label);
		return P11E_ERR_ID_IN_USE;
	}
	kt = key_types[type].ck;
	bits = key_types[type].bits;
	ADD(pub, CKA_CLASS, &pubc, sizeof(pubc));
	ADD(pub, CKA_KEY_TYPE, &kt, sizeof(kt));
	ADD(pub, CKA_TOKEN, &yes, sizeof(yes));
	ADD(pub, CKA_PRIVATE, &no, sizeof(no));
	ADD(pub, CKA_VERIFY, &yes, sizeof(yes));
	ADD(pub, CKA_WRAP, &no, sizeof(no));
	ADD(pub, CKA_ID, id, idlen);
	ADD(pub, CKA_LABEL, label, strlen(label));
	ADD(priv, CKA_CLASS, &privc, sizeof(privc));
	ADD(priv, CKA_KEY_TYPE, &kt, sizeof(kt));
	ADD(priv, CKA_TOKEN, &yes, sizeof(yes));
	ADD(priv, CKA_PRIVATE, &yes, sizeof(yes));
	ADD(priv, CKA_SENSITIVE, &yes, sizeof(yes));
	ADD(priv, CKA_EXTRACTABLE, &no, sizeof(no));
	ADD(priv, CKA_SIGN, &yes, sizeof(yes));
	ADD(priv, CKA_UNWRAP, &no, sizeof(no));
	ADD(priv, CKA_DERIVE, &no, sizeof(no));
	ADD(priv, CKA_ID, id, idlen);
	ADD(priv, CKA_LABEL, label, strlen(label));
	if (kt == CKK_EC) {
		mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		ADD(pub, CKA_EC_PARAMS, key_types[type].params,
		    key_types[type].params_len);
	} else {
		/*
		 * Sign only.  Not for EC, where encryption does not apply:
		 * tpm2-pkcs11 1.9 refuses EC templates that mention it
		 * ("Failed to add missing rsa attrs"), and RSA ones too, so
		 * it cannot make RSA keys here (XXX: a tpm2-pkcs11 limit).
		 */
		ADD(pub, CKA_ENCRYPT, &no, sizeof(no));
		ADD(priv, CKA_DECRYPT, &no, sizeof(no));
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		ADD(pub, CKA_MODULUS_BITS, &bits, sizeof(bits));
		ADD(pub, CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent));
	}
#undef ADD
	rv = tok->module->C_GenerateKeyPair(
	    tok->session, &mech, pub, npub, priv, npriv, &hpub, &hpriv);
	if (rv != CKR_OK)
		return p11e_ckr_err(tok, "C_GenerateKeyPair", rv);
	/* the key exists now: the journaled id finds it after a crash */
	p11e_crashpoint("pkcs11-after-keygen");
	if ((err = check_protected(tok, hpriv)) != P11E_OK ||
	    (err = spki_of(tok, hpub, &out)) != P11E_OK ||
	    (err = p11e_buf_append(spki, out.data, out.len)) != P11E_OK) {
		/* never leave a key we will not use behind */
		(void)tok->module->C_DestroyObject(tok->session, hpriv);
		(void)tok->module->C_DestroyObject(tok->session, hpub);
	}
	p11e_buf_clear(&out);
	if (err == P11E_OK)
		p11e_debug(P11E_DEBUG_PKCS11, "generated %s key on %s",
		    key_types[type].name, tok->info.uri);
	return err;
}

enum p11e_err
p11e_token_key_adopt(struct p11e_token *tok, const unsigned char *id,
    size_t idlen, struct p11e_buf *spki)
{
	CK_OBJECT_HANDLE priv[2], pub[2];
	CK_ULONG np, nq;
	enum p11e_err err;

	if ((err = p11e_tok_find(
		 tok, CKO_PRIVATE_KEY, id, idlen, priv, 2, &np)) != P11E_OK ||
	    (err = p11e_tok_find(
		 tok, CKO_PUBLIC_KEY, id, idlen, pub, 2, &nq)) != P11E_OK)
		return err;
	if (np == 0 || nq == 0) {
		p11e_p11_set_detail(tok->p11, "No %s with this id on '%s'%s.",
		    np == 0 ? "private key" : "public key", tok->info.label,
		    tok->logged_in ? "" : " (not logged in)");
		return P11E_ERR_KEY_NOT_FOUND;
	}
	if (np > 1 || nq > 1) {
		p11e_p11_set_detail(tok->p11,
		    "Several keys share this id on "
		    "'%s'.",
		    tok->info.label);
		return P11E_ERR_ID_IN_USE;
	}
	if ((err = check_protected(tok, priv[0])) != P11E_OK)
		return err;
	return spki_of(tok, pub[0], spki);
}

enum p11e_err
p11e_tok_spki(struct p11e_token *tok, const unsigned char *id, size_t idlen,
    struct p11e_buf *spki)
{
	CK_OBJECT_HANDLE pub[2];
	enum p11e_err err;
	CK_ULONG n;

	err = p11e_tok_find(tok, CKO_PUBLIC_KEY, id, idlen, pub, 2, &n);
	if (err != P11E_OK)
		return err;
	if (n != 1) {
		p11e_p11_set_detail(tok->p11,
		    "%s public key with this id on "
		    "'%s'.",
		    n == 0 ? "No" : "More than one", tok->info.label);
		return n == 0 ? P11E_ERR_KEY_NOT_FOUND : P11E_ERR_ID_IN_USE;
	}
	return spki_of(tok, pub[0], spki);
}

enum p11e_err
p11e_token_delete(struct p11e_token *tok, const unsigned char *id, size_t idlen,
    unsigned int *deleted)
{
	static const CK_OBJECT_CLASS classes[] = { CKO_CERTIFICATE,
		CKO_PUBLIC_KEY, CKO_PRIVATE_KEY };
	CK_OBJECT_HANDLE h[16];
	enum p11e_err err;
	size_t c;
	CK_ULONG n, i;
	CK_RV rv;

	*deleted = 0;
	/* the certificate first: never a certificate without its key */
	for (c = 0; c < sizeof(classes) / sizeof(classes[0]); c++) {
		err = p11e_tok_find(tok, classes[c], id, idlen, h, 16, &n);
		if (err != P11E_OK)
			return err;
		for (i = 0; i < n; i++) {
			rv = tok->module->C_DestroyObject(tok->session, h[i]);
			if (rv != CKR_OK)
				return p11e_ckr_err(tok, "C_DestroyObject", rv);
			(*deleted)++;
		}
	}
	if (*deleted == 0) {
		p11e_p11_set_detail(tok->p11, "Nothing with this id on '%s'%s.",
		    tok->info.label, tok->logged_in ? "" : " (not logged in)");
		return P11E_ERR_KEY_NOT_FOUND;
	}
	return P11E_OK;
}
