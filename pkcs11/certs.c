/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "pkcs11/token-private.h"

#define CERT_MAX (64 * 1024)

/* Parses DER that must be exactly one certificate. */
static X509 *
parse_cert(struct p11e_token *tok, const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x;

	x = d2i_X509(NULL, &p, (long)len);
	if (x == NULL || p != der + len) {
		X509_free(x);
		p11e_log_openssl("parsing a certificate");
		p11e_p11_set_detail(tok->p11,
		    "The certificate is not one "
		    "DER X.509 certificate.");
		return NULL;
	}
	return x;
}

/* DER of a certificate's SubjectPublicKeyInfo, appended to out. */
static enum p11e_err
cert_spki(X509 *x, struct p11e_buf *out)
{
	unsigned char *der = NULL;
	enum p11e_err err;
	int len;

	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (len <= 0)
		return P11E_ERR_CRYPTO;
	err = p11e_buf_append(out, der, (size_t)len);
	OPENSSL_free(der);
	return err;
}

/* Finds certificate objects whose CKA_VALUE is der. */
static enum p11e_err
find_cert_value(struct p11e_token *tok, const unsigned char *der, size_t len,
    CK_OBJECT_HANDLE *h, CK_ULONG *n)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_VALUE, (void *)der, len },
	};
	CK_RV rv;

	*n = 0;
	rv = tok->module->C_FindObjectsInit(tok->session, t, 2);
	if (rv != CKR_OK)
		return p11e_ckr_err(tok, "C_FindObjectsInit", rv);
	rv = tok->module->C_FindObjects(tok->session, h, 1, n);
	(void)tok->module->C_FindObjectsFinal(tok->session);
	if (rv != CKR_OK)
		return p11e_ckr_err(tok, "C_FindObjects", rv);
	return P11E_OK;
}

/* Writes a certificate object. */
static enum p11e_err
create_cert(struct p11e_token *tok, X509 *x, const unsigned char *der,
    size_t len, const unsigned char *id, size_t idlen, const char *label,
    CK_ULONG category, CK_OBJECT_HANDLE *out)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE ct = CKC_X_509;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	unsigned char *subj = NULL, *iss = NULL, *ser = NULL;
	int ls, li, lr;
	enum p11e_err err = P11E_ERR_CRYPTO;
	CK_RV rv;

	ls = i2d_X509_NAME(X509_get_subject_name(x), &subj);
	li = i2d_X509_NAME(X509_get_issuer_name(x), &iss);
	lr = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &ser);
	if (ls > 0 && li > 0 && lr > 0) {
		CK_ATTRIBUTE t[] = {
			{ CKA_CLASS, &cls, sizeof(cls) },
			{ CKA_CERTIFICATE_TYPE, &ct, sizeof(ct) },
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &no, sizeof(no) },
			{ CKA_CERTIFICATE_CATEGORY, &category,
			    sizeof(category) },
			{ CKA_SUBJECT, subj, (CK_ULONG)ls },
			{ CKA_ISSUER, iss, (CK_ULONG)li },
			{ CKA_SERIAL_NUMBER, ser, (CK_ULONG)lr },
			{ CKA_VALUE, (void *)der, len },
			{ CKA_LABEL, (void *)label, strlen(label) },
			{ CKA_ID, (void *)id, idlen },
		};

		rv = tok->module->C_CreateObject(
		    tok->session, t, sizeof(t) / sizeof(t[0]), out);
		err = p11e_ckr_err(tok, "C_CreateObject", rv);
	}
	OPENSSL_free(subj);
	OPENSSL_free(iss);
	OPENSSL_free(ser);
	return err;
}

enum p11e_err
p11e_token_store_cert(struct p11e_token *tok, const unsigned char *id,
    size_t idlen, const unsigned char *der, size_t len, const char *label)
{
	CK_OBJECT_HANDLE same, old[8], created;
	struct p11e_buf want, have;
	enum p11e_err err;
	CK_ULONG n, nold, i;
	X509 *x;

	p11e_return_val_if_fail(label != NULL, P11E_ERR_INVALID_PARAMETER);
	p11e_buf_init(&want, 4096);
	p11e_buf_init(&have, 4096);
	if ((x = parse_cert(tok, der, len)) == NULL)
		return P11E_ERR_PARSE;
	if ((err = p11e_tok_spki(tok, id, idlen, &want)) != P11E_OK ||
	    (err = cert_spki(x, &have)) != P11E_OK)
		goto out;
	if (want.len != have.len || memcmp(want.data, have.data, want.len)) {
		p11e_p11_set_detail(tok->p11,
		    "The certificate's public key is "
		    "not the key with this id on "
		    "'%s': nothing stored.",
		    tok->info.label);
		err = P11E_ERR_CERT_KEY_MISMATCH;
		goto out;
	}
	if ((err = find_cert_value(tok, der, len, &same, &n)) != P11E_OK)
		goto out;
	if (n > 0)
		goto out; /* already there */
	if ((err = p11e_tok_find(
		 tok, CKO_CERTIFICATE, id, idlen, old, 8, &nold)) != P11E_OK ||
	    (err = create_cert(
		 tok, x, der, len, id, idlen, label, 1, &created)) != P11E_OK)
		goto out;
	/*
	 * A new certificate for the same key (same-key renewal) replaces the
	 * old one, only once the new one is written.
	 */
	for (i = 0; i < nold; i++)
		(void)tok->module->C_DestroyObject(tok->session, old[i]);
out:
	X509_free(x);
	p11e_buf_clear(&want);
	p11e_buf_clear(&have);
	return err;
}

enum p11e_err
p11e_token_store_ca(
    struct p11e_token *tok, const unsigned char *der, size_t len, bool *added)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const ASN1_OCTET_STRING *skid;
	const unsigned char *id;
	CK_OBJECT_HANDLE h;
	char label[128] = "CA certificate";
	enum p11e_err err;
	size_t idlen;
	CK_ULONG n;
	X509 *x;

	*added = false;
	if ((x = parse_cert(tok, der, len)) == NULL)
		return P11E_ERR_PARSE;
	if ((err = find_cert_value(tok, der, len, &h, &n)) != P11E_OK || n > 0)
		goto out;
	/* the subject key identifier, as browsers and libp11 expect */
	skid = X509_get0_subject_key_id(x);
	if (skid != NULL && ASN1_STRING_length(skid) > 0 &&
	    ASN1_STRING_length(skid) <= P11E_ID_MAX) {
		id = ASN1_STRING_get0_data(skid);
		idlen = (size_t)ASN1_STRING_length(skid);
	} else {
		if (!X509_pubkey_digest(x, EVP_sha1(), md, &mdlen)) {
			err = P11E_ERR_CRYPTO;
			goto out;
		}
		id = md;
		idlen = mdlen;
	}
	(void)X509_NAME_get_text_by_NID(
	    X509_get_subject_name(x), NID_commonName, label, sizeof(label));
	err = create_cert(tok, x, der, len, id, idlen, label, 2, &h);
	if (err == P11E_OK)
		*added = true;
out:
	X509_free(x);
	return err;
}

/*
 * Signs data on the token with the private key priv and verifies the
 * signature with pkey.
 */
static enum p11e_err
sign_verify(struct p11e_token *tok, CK_OBJECT_HANDLE priv, EVP_PKEY *pkey)
{
	unsigned char data[32], md[32];
	struct p11e_buf sig;
	EVP_PKEY_CTX *ctx = NULL;
	enum p11e_err err;
	int ok;

	if (getrandom(data, sizeof(data), 0) != (ssize_t)sizeof(data) ||
	    !EVP_Digest(data, sizeof(data), md, NULL, EVP_sha256(), NULL))
		return P11E_ERR_SYSTEM;
	p11e_buf_init(&sig, 1024);
	if ((err = p11e_tok_sign_digest(tok, priv, EVP_PKEY_base_id(pkey),
		 NID_sha256, md, sizeof(md), &sig)) != P11E_OK)
		goto out;
	err = P11E_ERR_CRYPTO;
	if ((ctx = EVP_PKEY_CTX_new(pkey, NULL)) == NULL ||
	    EVP_PKEY_verify_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) <= 0)
		goto out;
	if (EVP_PKEY_base_id(pkey) == EVP_PKEY_RSA &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0)
		goto out;
	ok = EVP_PKEY_verify(ctx, sig.data, sig.len, md, sizeof(md));
	err = ok == 1 ? P11E_OK : P11E_ERR_CERT_KEY_MISMATCH;
	ERR_clear_error();
out:
	if (err == P11E_ERR_CRYPTO)
		p11e_log_openssl("verifying a token signature");
	EVP_PKEY_CTX_free(ctx);
	p11e_buf_clear(&sig);
	return err;
}

enum p11e_err
p11e_token_verify_pair(
    struct p11e_token *tok, const unsigned char *id, size_t idlen)
{
	CK_OBJECT_HANDLE cert[2], priv[2];
	struct p11e_buf der;
	CK_ULONG nc, np;
	enum p11e_err err;
	X509 *x = NULL;

	p11e_buf_init(&der, CERT_MAX);
	if ((err = p11e_tok_find(
		 tok, CKO_CERTIFICATE, id, idlen, cert, 2, &nc)) != P11E_OK ||
	    (err = p11e_tok_find(
		 tok, CKO_PRIVATE_KEY, id, idlen, priv, 2, &np)) != P11E_OK)
		goto out;
	if (nc != 1 || np != 1) {
		p11e_p11_set_detail(tok->p11,
		    "Expected one certificate and one "
		    "private key with this id on '%s', "
		    "found %lu and %lu.",
		    tok->info.label, (unsigned long)nc, (unsigned long)np);
		err = P11E_ERR_KEY_NOT_FOUND;
		goto out;
	}
	if ((err = p11e_tok_attr(tok, cert[0], CKA_VALUE, CERT_MAX, &der)) !=
	    P11E_OK)
		goto out;
	if ((x = parse_cert(tok, der.data, der.len)) == NULL) {
		err = P11E_ERR_PARSE;
		goto out;
	}
	err = sign_verify(tok, priv[0], X509_get0_pubkey(x));
	if (err == P11E_ERR_CERT_KEY_MISMATCH)
		p11e_p11_set_detail(tok->p11,
		    "The certificate on '%s' does not "
		    "verify a signature of the key "
		    "with the same id.",
		    tok->info.label);
out:
	X509_free(x);
	p11e_buf_clear(&der);
	return err;
}

/* ---- listing ------------------------------------------------------------ */

static void
hex(char *dst, size_t dstlen, const unsigned char *p, size_t len)
{
	size_t i;

	dst[0] = '\0';
	for (i = 0; i < len && 2 * i + 2 < dstlen; i++)
		snprintf(dst + 2 * i, 3, "%02x", p[i]);
}

static void
object_uri(
    struct p11e_token *tok, struct p11e_object_info *o, CK_OBJECT_CLASS cls)
{
	CK_TOKEN_INFO ti;
	CK_ATTRIBUTE a;
	P11KitUri *uri;
	char *s = NULL;

	o->uri[0] = '\0';
	if (tok->module->C_GetTokenInfo(tok->slot, &ti) != CKR_OK ||
	    (uri = p11_kit_uri_new()) == NULL)
		return;
	p11e_uri_set_token(uri, &ti);
	a.type = CKA_ID;
	a.pValue = o->id;
	a.ulValueLen = o->idlen;
	(void)p11_kit_uri_set_attribute(uri, &a);
	a.type = CKA_CLASS;
	a.pValue = &cls;
	a.ulValueLen = sizeof(cls);
	(void)p11_kit_uri_set_attribute(uri, &a);
	if (o->label[0] != '\0') {
		a.type = CKA_LABEL;
		a.pValue = o->label;
		a.ulValueLen = strlen(o->label);
		(void)p11_kit_uri_set_attribute(uri, &a);
	}
	if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, &s) ==
	    P11_KIT_URI_OK)
		snprintf(o->uri, sizeof(o->uri), "%s", s);
	free(s);
	p11_kit_uri_free(uri);
}

/*
 * "/CN=山田太郎/O=Example": the form p11e_token_csr() takes, with UTF-8
 * values (X509_NAME_oneline escapes every non-ASCII byte).
 */
static void
name_oneline(const X509_NAME *name, char *dst, size_t dstlen)
{
	size_t off = 0;
	int i, n;

	dst[0] = '\0';
	for (i = 0; i < X509_NAME_entry_count(name); i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
		const char *sn =
		    OBJ_nid2sn(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)));
		unsigned char *utf8 = NULL;

		if (ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) < 0)
			continue;
		n = snprintf(
		    dst + off, dstlen - off, "/%s=%s", sn ? sn : "?", utf8);
		OPENSSL_free(utf8);
		if (n < 0 || (size_t)n >= dstlen - off) {
			dst[off] = '\0';
			break;
		}
		off += (size_t)n;
	}
}

static void
cert_fields(X509 *x, struct p11e_object_info *o)
{
	const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
	struct tm tm;

	name_oneline(X509_get_subject_name(x), o->subject, sizeof(o->subject));
	name_oneline(X509_get_issuer_name(x), o->issuer, sizeof(o->issuer));
	hex(o->serial, sizeof(o->serial), ASN1_STRING_get0_data(sn),
	    (size_t)ASN1_STRING_length(sn));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		strftime(o->not_after, sizeof(o->not_after),
		    "%Y-%m-%d %H:%M:%S", &tm);
}

enum p11e_err
p11e_token_objects(struct p11e_token *tok,
    void (*cb)(void *data, const struct p11e_object_info *obj), void *data)
{
	static const struct {
		CK_OBJECT_CLASS cls;
		const char *kind;
	} kinds[] = {
		{ CKO_PRIVATE_KEY, "private-key" },
		{ CKO_PUBLIC_KEY, "public-key" },
		{ CKO_CERTIFICATE, "certificate" },
	};
	CK_OBJECT_HANDLE h[256];
	struct p11e_object_info o;
	struct p11e_buf b;
	enum p11e_err err;
	CK_ULONG n, i;
	size_t k;

	p11e_buf_init(&b, CERT_MAX);
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		err = p11e_tok_find(tok, kinds[k].cls, NULL, 0, h, 256, &n);
		if (err != P11E_OK)
			goto out;
		for (i = 0; i < n; i++) {
			CK_ULONG cat = 0;
			CK_ATTRIBUTE ca = { CKA_CERTIFICATE_CATEGORY, &cat,
				sizeof(cat) };

			memset(&o, 0, sizeof(o));
			o.kind = kinds[k].kind;
			o.key_type = "";
			p11e_buf_reset(&b);
			if (p11e_tok_attr(tok, h[i], CKA_ID, P11E_ID_MAX, &b) ==
			    P11E_OK) {
				memcpy(o.id, b.data, b.len);
				o.idlen = b.len;
			}
			p11e_buf_reset(&b);
			if (p11e_tok_attr(tok, h[i], CKA_LABEL,
				sizeof(o.label) - 1, &b) == P11E_OK)
				memcpy(o.label, b.data, b.len);
			p11e_buf_reset(&b);
			if (kinds[k].cls != CKO_CERTIFICATE) {
				o.key_type = p11e_tok_key_type(tok, h[i]);
			} else if (p11e_tok_attr(tok, h[i], CKA_VALUE, CERT_MAX,
				       &b) == P11E_OK) {
				const unsigned char *p = b.data;
				X509 *x = d2i_X509(NULL, &p, (long)b.len);

				if (x != NULL)
					cert_fields(x, &o);
				X509_free(x);
				o.der = b.data;
				o.der_len = b.len;
				if (tok->module->C_GetAttributeValue(
					tok->session, h[i], &ca, 1) == CKR_OK)
					o.authority = cat == 2;
			}
			object_uri(tok, &o, kinds[k].cls);
			cb(data, &o);
		}
	}
	err = P11E_OK;
out:
	p11e_buf_clear(&b);
	return err;
}
