/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * p11e_token_csr(): a PKCS#10 request signed on the token (see p11.h).
 *
 * The public key in the request is the one journaled at key generation
 * (expect_spki), never what libp11 reconstructs; the token signs; the
 * signature is verified against expect_spki before the request leaves
 * this function, so a journal that names the wrong key, or a token that
 * signs with another one, stops here.
 */
#include "config.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "pkcs11/token-private.h"

/* Longest subject string accepted (the CSR is read by people and CAs). */
#define SUBJECT_MAX 4096

/* Puts the detail of the first queued OpenSSL error after msg. */
static void
parse_detail(struct p11e_token *tok, const char *msg, const char *what)
{
	char esc[200];
	unsigned long e = ERR_peek_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	p11e_log_escape(esc, sizeof(esc), what, strlen(what));
	p11e_p11_set_detail(tok->p11, "Subject: %s \"%s\"%s%s.", msg, esc,
	    reason != NULL ? ": " : "", reason != NULL ? reason : "");
	ERR_clear_error();
}

/*
 * Copies s[0..len) into dst without its backslash escapes; returns the
 * length, or -1 for a trailing lone backslash.  dst has room for len + 1.
 */
static long
unescape(char *dst, const char *s, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '\\') {
			if (++i == len)
				return -1;
		}
		dst[o++] = s[i];
	}
	dst[o] = '\0';
	return (long)o;
}

/* Length of s up to the first unescaped c (or the end). */
static size_t
span_unescaped(const char *s, size_t len, char c)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == c)
			return i;
	}
	return len;
}

/*
 * Parses OpenSSL's oneline form "/CN=Taro/O=Example" (UTF-8 values, "\"
 * escapes the next character; no multi-valued RDNs) into a new name.
 */
static enum p11e_err
parse_subject(struct p11e_token *tok, const char *subject, X509_NAME **out)
{
	X509_NAME *name = NULL;
	char *type = NULL, *value = NULL;
	size_t len, off, clen, tlen;
	enum p11e_err err = P11E_ERR_PARSE;
	const char *c;
	long n;

	*out = NULL;
	len = strlen(subject);
	if (len > SUBJECT_MAX) {
		p11e_p11_set_detail(
		    tok->p11, "Subject: longer than %d bytes.", SUBJECT_MAX);
		goto out;
	}
	if (len == 0 || subject[0] != '/') {
		parse_detail(
		    tok, "expected \"/CN=name/O=organisation\", got", subject);
		goto out;
	}
	if (len == 1) {
		/* "/": an empty subject (the server fills it in) */
		if ((*out = X509_NAME_new()) == NULL)
			return P11E_ERR_NOMEM;
		return P11E_OK;
	}
	/* Each part is shorter than the whole string. */
	if ((type = malloc(len + 1)) == NULL ||
	    (value = malloc(len + 1)) == NULL ||
	    (name = X509_NAME_new()) == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	for (off = 1; off <= len; off += clen + 1) {
		c = subject + off;
		clen = span_unescaped(c, len - off, '/');
		tlen = span_unescaped(c, clen, '=');
		if (clen == 0) {
			p11e_p11_set_detail(tok->p11,
			    "Subject: empty component at byte %zu.", off);
			goto out;
		}
		if (tlen == clen || tlen == 0 || tlen + 1 == clen) {
			memcpy(type, c, clen);
			type[clen] = '\0';
			parse_detail(tok, "expected TYPE=value, got", type);
			goto out;
		}
		if (unescape(type, c, tlen) < 0 ||
		    (n = unescape(value, c + tlen + 1, clen - tlen - 1)) < 0) {
			p11e_p11_set_detail(tok->p11,
			    "Subject: a component ends in a lone backslash.");
			goto out;
		}
		if (X509_NAME_add_entry_by_txt(name, type, MBSTRING_UTF8,
			(const unsigned char *)value, (int)n, -1, 0) != 1) {
			if (OBJ_txt2nid(type) == NID_undef)
				parse_detail(
				    tok, "unknown attribute type", type);
			else
				parse_detail(
				    tok, "cannot use the value of", type);
			goto out;
		}
	}
	*out = name;
	name = NULL; /* transferred */
	err = P11E_OK;
out:
	free(type);
	free(value);
	X509_NAME_free(name);
	return err;
}

/*
 * Copies the Subject and the subjectAltName extension of the certificate
 * der[0..len) into req, byte for byte.
 */
static enum p11e_err
copy_from_cert(
    struct p11e_token *tok, const unsigned char *der, size_t len, X509_REQ *req)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	X509_NAME *name = NULL;
	const unsigned char *p = der;
	X509 *cert = NULL;
	enum p11e_err err = P11E_ERR_CRYPTO;
	int idx;

	if (len > LONG_MAX || (cert = d2i_X509(NULL, &p, (long)len)) == NULL ||
	    p != der + len) {
		ERR_clear_error();
		p11e_p11_set_detail(tok->p11,
		    "The certificate to copy the subject from is not one DER "
		    "certificate.");
		err = P11E_ERR_PARSE;
		goto out;
	}
	/* The decoded name keeps its encoding: the dup is byte-exact. */
	if ((name = X509_NAME_dup(X509_get_subject_name(cert))) == NULL ||
	    X509_REQ_set_subject_name(req, name) != 1) {
		p11e_log_openssl("X509_REQ_set_subject_name");
		goto out;
	}
	idx = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
	if (idx >= 0 &&
	    X509_get_ext_by_NID(cert, NID_subject_alt_name, idx) >= 0) {
		p11e_p11_set_detail(tok->p11,
		    "The certificate to copy from has two subjectAltName "
		    "extensions.");
		err = P11E_ERR_PARSE;
		goto out;
	}
	if (idx >= 0) {
		if ((exts = sk_X509_EXTENSION_new_null()) == NULL ||
		    (ext = X509_EXTENSION_dup(X509_get_ext(cert, idx))) ==
			NULL ||
		    sk_X509_EXTENSION_push(exts, ext) <= 0) {
			p11e_log_openssl("X509_EXTENSION_dup");
			goto out;
		}
		ext = NULL; /* transferred */
		if (X509_REQ_add_extensions(req, exts) != 1) {
			p11e_log_openssl("X509_REQ_add_extensions");
			goto out;
		}
	}
	err = P11E_OK;
out:
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	X509_free(cert);
	return err;
}

/* The digest that goes with the key: SHA-384 for P-384, else SHA-256. */
static enum p11e_err
pick_digest(struct p11e_token *tok, EVP_PKEY *pub, const EVP_MD **md)
{
	char group[64];
	size_t glen = 0;

	*md = NULL;
	switch (EVP_PKEY_get_base_id(pub)) {
	case EVP_PKEY_RSA:
		*md = EVP_sha256();
		return P11E_OK;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pub, group, sizeof(group), &glen) !=
		    1)
			break;
		if (strcmp(group, SN_X9_62_prime256v1) == 0)
			*md = EVP_sha256();
		else if (strcmp(group, SN_secp384r1) == 0)
			*md = EVP_sha384();
		else if (strcmp(group, SN_secp521r1) == 0)
			*md = EVP_sha512();
		else
			break;
		return P11E_OK;
	default:
		break;
	}
	ERR_clear_error();
	p11e_p11_set_detail(tok->p11,
	    "The journaled public key is a %s key p11enroll does not sign "
	    "requests with.",
	    EVP_PKEY_get0_type_name(pub) != NULL ? EVP_PKEY_get0_type_name(pub)
						 : "kind of");
	return P11E_ERR_MECHANISM_UNSUPPORTED;
}

/* The request's SubjectPublicKeyInfo is expect_spki, byte for byte. */
static bool
spki_is(X509_REQ *req, const unsigned char *spki, size_t len)
{
	unsigned char *der = NULL;
	bool same;
	int n;

	if ((n = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &der)) <= 0) {
		p11e_log_openssl("i2d_X509_PUBKEY");
		return false;
	}
	same = (size_t)n == len && memcmp(der, spki, len) == 0;
	OPENSSL_free(der);
	return same;
}

/* The one private key with CKA_ID id on tok (logged in). */
static enum p11e_err
private_key(struct p11e_token *tok, const unsigned char *id, size_t idlen,
    CK_OBJECT_HANDLE *out)
{
	CK_OBJECT_HANDLE h[2];
	enum p11e_err err;
	CK_ULONG n;

	if ((err = p11e_tok_find(tok, CKO_PRIVATE_KEY, id, idlen, h, 2, &n)) !=
	    P11E_OK)
		return err;
	if (n == 0) {
		p11e_p11_set_detail(tok->p11,
		    "No private key with this id is visible on the token%s.",
		    tok->logged_in ? "" : " (not logged in)");
		return P11E_ERR_KEY_NOT_FOUND;
	}
	if (n > 1) {
		p11e_p11_set_detail(tok->p11,
		    "Several private keys on the token share this id.");
		return P11E_ERR_ID_IN_USE;
	}
	*out = h[0];
	return P11E_OK;
}

/*
 * The private key can sign for pub here: of pub's kind, and without a
 * PIN of its own for each signature (CKA_ALWAYS_AUTHENTICATE, which
 * p11enroll does not prompt for).
 */
static enum p11e_err
key_usable(struct p11e_token *tok, CK_OBJECT_HANDLE priv, int key_type)
{
	CK_BBOOL always = CK_FALSE;
	CK_KEY_TYPE kt = CKK_VENDOR_DEFINED;
	CK_ATTRIBUTE a[] = {
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_ALWAYS_AUTHENTICATE, &always, sizeof(always) },
	};

	/* a token without the second attribute leaves it unset (-1) */
	(void)tok->module->C_GetAttributeValue(tok->session, priv, a, 2);
	if (a[1].ulValueLen == sizeof(always) && always) {
		p11e_error("the token asks for a PIN for this one operation "
			   "(CKA_ALWAYS_AUTHENTICATE); p11enroll does not "
			   "prompt for it");
		p11e_p11_set_detail(tok->p11,
		    "The key needs a PIN for each signature "
		    "(CKA_ALWAYS_AUTHENTICATE): p11enroll cannot use it.");
		return P11E_ERR_CRYPTO;
	}
	if (a[0].ulValueLen != sizeof(kt) ||
	    (kt == CKK_EC) != (key_type == EVP_PKEY_EC) ||
	    (kt == CKK_RSA) != (key_type == EVP_PKEY_RSA)) {
		p11e_p11_set_detail(tok->p11,
		    "The token key with this id is not of the journaled "
		    "public key's kind: it is not the key that was "
		    "generated.");
		return P11E_ERR_CERT_KEY_MISMATCH;
	}
	return P11E_OK;
}

/*
 * Signs req with the token's private key id: the digest of its
 * to-be-signed part is made here and signed on the token with C_Sign.
 */
static enum p11e_err
sign_on_token(struct p11e_token *tok, const unsigned char *id, size_t idlen,
    EVP_PKEY *pub, const EVP_MD *md, X509_REQ *req)
{
	unsigned char dgst[EVP_MAX_MD_SIZE], *tbs = NULL;
	unsigned int dlen = 0;
	int tlen, sig_nid, key_type = EVP_PKEY_get_base_id(pub);
	ASN1_BIT_STRING *bits = NULL;
	X509_ALGOR *alg = NULL;
	CK_OBJECT_HANDLE priv;
	struct p11e_buf sig;
	enum p11e_err err;

	p11e_buf_init(&sig, 1024);
	if ((err = private_key(tok, id, idlen, &priv)) != P11E_OK ||
	    (err = key_usable(tok, priv, key_type)) != P11E_OK)
		goto out;
	err = P11E_ERR_CRYPTO;
	if ((tlen = i2d_re_X509_REQ_tbs(req, &tbs)) <= 0 ||
	    EVP_Digest(tbs, (size_t)tlen, dgst, &dlen, md, NULL) != 1 ||
	    OBJ_find_sigid_by_algs(&sig_nid, EVP_MD_get_type(md), key_type) !=
		1) {
		p11e_log_openssl("preparing the request");
		goto out;
	}
	if ((err = p11e_tok_sign_digest(tok, priv, key_type,
		 EVP_MD_get_type(md), dgst, dlen, &sig)) != P11E_OK) {
		p11e_p11_add_detail(
		    tok->p11, "The token did not sign the request.");
		goto out;
	}
	err = P11E_ERR_CRYPTO;
	if ((alg = X509_ALGOR_new()) == NULL ||
	    X509_ALGOR_set0(alg, OBJ_nid2obj(sig_nid),
		key_type == EVP_PKEY_RSA ? V_ASN1_NULL : V_ASN1_UNDEF,
		NULL) != 1 ||
	    X509_REQ_set1_signature_algo(req, alg) != 1 ||
	    (bits = ASN1_BIT_STRING_new()) == NULL ||
	    ASN1_BIT_STRING_set(bits, sig.data, (int)sig.len) != 1) {
		p11e_log_openssl("setting the request's signature");
		goto out;
	}
	/* every bit used: without the flag, trailing zero bits are cut */
	bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	X509_REQ_set0_signature(req, bits);
	bits = NULL;
	err = P11E_OK;
out:
	ASN1_BIT_STRING_free(bits);
	X509_ALGOR_free(alg);
	OPENSSL_free(tbs);
	p11e_buf_clear(&sig);
	return err;
}

enum p11e_err
p11e_token_csr(struct p11e_token *tok, const unsigned char *id, size_t idlen,
    const unsigned char *expect_spki, size_t expect_spki_len,
    const struct p11e_csr_template *tmpl, struct p11e_buf *csr)
{
	const unsigned char *p = expect_spki;
	unsigned char *der = NULL;
	X509_NAME *name = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *pub = NULL;
	const EVP_MD *md = NULL;
	enum p11e_err err = P11E_ERR_CRYPTO;
	int n;

	p11e_return_val_if_fail(tok != NULL, P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(id != NULL, P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(idlen >= P11E_ID_MIN && idlen <= P11E_ID_MAX,
	    P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(expect_spki != NULL && expect_spki_len > 0,
	    P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(tmpl != NULL, P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(
	    (tmpl->subject != NULL) != (tmpl->copy_from != NULL),
	    P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(
	    tmpl->copy_from == NULL || tmpl->copy_from_len > 0,
	    P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(csr != NULL, P11E_ERR_INVALID_PARAMETER);

	ERR_clear_error();
	if (expect_spki_len > LONG_MAX ||
	    (pub = d2i_PUBKEY(NULL, &p, (long)expect_spki_len)) == NULL ||
	    p != expect_spki + expect_spki_len) {
		ERR_clear_error();
		p11e_p11_set_detail(tok->p11,
		    "The journaled public key is not one DER "
		    "SubjectPublicKeyInfo.");
		err = P11E_ERR_PARSE;
		goto out;
	}
	if ((err = pick_digest(tok, pub, &md)) != P11E_OK)
		goto out;

	err = P11E_ERR_CRYPTO;
	if ((req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_pubkey(req, pub) != 1) {
		p11e_log_openssl("X509_REQ_new");
		goto out;
	}
	if (tmpl->subject != NULL) {
		if ((err = parse_subject(tok, tmpl->subject, &name)) != P11E_OK)
			goto out;
		if (X509_REQ_set_subject_name(req, name) != 1) {
			p11e_log_openssl("X509_REQ_set_subject_name");
			err = P11E_ERR_CRYPTO;
			goto out;
		}
	} else if ((err = copy_from_cert(tok, tmpl->copy_from,
			tmpl->copy_from_len, req)) != P11E_OK) {
		goto out;
	}

	if ((err = sign_on_token(tok, id, idlen, pub, md, req)) != P11E_OK)
		goto out;
	/*
	 * XXX: X509_REQ_verify does not tell a wrong key from an internal
	 * failure; both count as a mismatch (the queue is logged).
	 */
	if (X509_REQ_verify(req, pub) != 1) {
		p11e_log_openssl("X509_REQ_verify");
		p11e_p11_set_detail(tok->p11,
		    "The request signed by the token does not verify with "
		    "the journaled public key: the token key with this id "
		    "is not the key that was generated.");
		err = P11E_ERR_CERT_KEY_MISMATCH;
		goto out;
	}
	if (!spki_is(req, expect_spki, expect_spki_len)) {
		p11e_p11_set_detail(tok->p11,
		    "The request's public key is not byte for byte the "
		    "journaled one.");
		err = P11E_ERR_CERT_KEY_MISMATCH;
		goto out;
	}
	if ((n = i2d_X509_REQ(req, &der)) <= 0) {
		p11e_log_openssl("i2d_X509_REQ");
		err = P11E_ERR_CRYPTO;
		goto out;
	}
	err = p11e_buf_append(csr, der, (size_t)n);
out:
	OPENSSL_free(der);
	X509_NAME_free(name);
	X509_REQ_free(req);
	EVP_PKEY_free(pub);
	return err;
}
