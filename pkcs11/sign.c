/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include "common/log.h"
#include "pkcs11/token-private.h"

/*
 * Signatures made on the token with C_Sign through the session tok
 * already holds: no second module load, no libp11.  CKM_ECDSA over a
 * digest made here, and CKM_RSA_PKCS over a DigestInfo made here: the
 * two mechanisms every token with such keys has.
 */

/* DER DigestInfo prefixes (RFC 8017 §9.2, note 1). */
static const unsigned char prefix_sha256[] = { 0x30, 0x31, 0x30, 0x0d, 0x06,
	0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
	0x04, 0x20 };
static const unsigned char prefix_sha384[] = { 0x30, 0x41, 0x30, 0x0d, 0x06,
	0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00,
	0x04, 0x30 };
static const unsigned char prefix_sha512[] = { 0x30, 0x51, 0x30, 0x0d, 0x06,
	0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00,
	0x04, 0x40 };

/* PKCS#11's r || s as a DER ECDSA-Sig-Value. */
static enum p11e_err
ecdsa_der(const unsigned char *rs, size_t len, struct p11e_buf *out)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	enum p11e_err err = P11E_ERR_CRYPTO;
	int n;

	if (len == 0 || len % 2 != 0 || (es = ECDSA_SIG_new()) == NULL ||
	    (r = BN_bin2bn(rs, (int)len / 2, NULL)) == NULL ||
	    (s = BN_bin2bn(rs + len / 2, (int)len / 2, NULL)) == NULL ||
	    ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL; /* es owns them */
	if ((n = i2d_ECDSA_SIG(es, &der)) <= 0)
		goto out;
	err = p11e_buf_append(out, der, (size_t)n);
out:
	if (err == P11E_ERR_CRYPTO)
		p11e_log_openssl("encoding an ECDSA signature");
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	BN_free(r);
	BN_free(s);
	return err;
}

enum p11e_err
p11e_tok_sign_digest(struct p11e_token *tok, CK_OBJECT_HANDLE priv,
    int key_type, int md_nid, const unsigned char *dgst, size_t dlen,
    struct p11e_buf *sig)
{
	unsigned char in[128], raw[1024];
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	CK_ULONG rawlen = sizeof(raw), inlen = 0;
	const unsigned char *prefix = NULL;
	size_t plen = 0;
	CK_RV rv;

	p11e_return_val_if_fail(dlen <= 64, P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(
	    key_type == EVP_PKEY_EC || key_type == EVP_PKEY_RSA,
	    P11E_ERR_INVALID_PARAMETER);
	switch (md_nid) {
	case NID_sha256:
		prefix = prefix_sha256;
		plen = sizeof(prefix_sha256);
		break;
	case NID_sha384:
		prefix = prefix_sha384;
		plen = sizeof(prefix_sha384);
		break;
	case NID_sha512:
		prefix = prefix_sha512;
		plen = sizeof(prefix_sha512);
		break;
	default:
		p11e_return_val_if_fail(
		    !"SHA-256, -384 or -512", P11E_ERR_INVALID_PARAMETER);
	}
	if (key_type == EVP_PKEY_RSA) {
		mech.mechanism = CKM_RSA_PKCS;
		memcpy(in, prefix, plen);
		inlen = (CK_ULONG)plen;
	}
	memcpy(in + inlen, dgst, dlen);
	inlen += (CK_ULONG)dlen;
	rv = tok->module->C_SignInit(tok->session, &mech, priv);
	if (rv == CKR_OK)
		rv = tok->module->C_Sign(tok->session, in, inlen, raw, &rawlen);
	if (rv != CKR_OK)
		return p11e_ckr_err(tok, "C_Sign", rv);
	if (key_type == EVP_PKEY_EC)
		return ecdsa_der(raw, rawlen, sig);
	return p11e_buf_append(sig, raw, rawlen);
}
