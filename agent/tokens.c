/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/methods.h"
#include "common/log.h"
#include "common/secret.h"
#include "pkcs11/p11.h"

/*
 * The token methods.  Each call loads the p11-kit modules afresh, opens
 * the one token its URI names, logs in if it needs to, does one thing
 * and closes (which logs out): the agent never leaves a token logged in.
 */

#define PEM_MAX (256 * 1024)

/* Parameters shared by the methods that open a token. */
#define TOKEN_PARAMS                                                 \
	{ "uri", JSON_STRING, true }, { "pin", JSON_STRING, false }, \
	{                                                            \
		"final_try", JSON_TRUE, false                        \
	}

struct session {
	struct p11e_p11 *p11;
	struct p11e_token *tok;
};

static void
session_close(struct session *s)
{
	p11e_token_close(s->tok);
	p11e_p11_free(s->p11);
	s->tok = NULL;
	s->p11 = NULL;
}

/* Copies the token layer's detail for the reply. */
static enum p11e_err
fail(struct session *s, enum p11e_err err, char *detail)
{
	if (s->p11 != NULL && p11e_p11_detail(s->p11)[0] != '\0')
		snprintf(
		    detail, P11E_DETAIL_MAX, "%s", p11e_p11_detail(s->p11));
	return err;
}

/*
 * Opens the token of params' "uri"; logs in when login is set or a PIN
 * was given.  The PIN goes from the (wiped) JSON string straight into a
 * struct p11e_secret.
 */
static enum p11e_err
session_open(json_t *params, bool login, struct session *s, char *detail)
{
	json_t *jpin = json_object_get(params, "pin");
	struct p11e_secret *pin = NULL;
	enum p11e_err err;

	memset(s, 0, sizeof(*s));
	if ((err = p11e_p11_new(&s->p11)) != P11E_OK ||
	    (err = p11e_token_open(s->p11,
		 json_string_value(json_object_get(params, "uri")), &s->tok)) !=
		P11E_OK)
		return fail(s, err, detail);
	if (jpin != NULL) {
		pin = p11e_secret_new_from(
		    json_string_value(jpin), json_string_length(jpin));
		if (pin == NULL) {
			snprintf(detail, P11E_DETAIL_MAX,
			    "the PIN is empty or "
			    "too long");
			return P11E_ERR_INVALID_PARAMETER;
		}
	}
	if (login || pin != NULL)
		err = p11e_token_login(s->tok, pin,
		    json_is_true(json_object_get(params, "final_try")));
	p11e_secret_free(pin);
	return err == P11E_OK ? P11E_OK : fail(s, err, detail);
}

static json_t *
token_json(const struct p11e_token_info *info)
{
	json_t *types = json_array();
	int i;

	for (i = 0; i < P11E_KEY_TYPE_COUNT; i++) {
		if (info->keygen[i])
			json_array_append_new(types,
			    json_string(
				p11e_key_type_name((enum p11e_key_type)i)));
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, "
			 "s:{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b}, "
			 "s:o, s:b}",
	    "uri", info->uri, "module", info->module, "library", info->library,
	    "label", info->label, "manufacturer", info->manufacturer, "model",
	    info->model, "serial", info->serial, "present", info->present,
	    "flags", "login_required", info->login_required, "protected_auth",
	    info->protected_auth, "write_protected", info->write_protected,
	    "pin_count_low", info->pin_count_low, "pin_final_try",
	    info->pin_final_try, "pin_locked", info->pin_locked,
	    "pin_to_be_changed", info->pin_to_be_changed, "initialized",
	    info->initialized, "key_types", types, "rsa_tls13",
	    info->rsa_tls13);
}

static void
add_token(void *data, const struct p11e_token_info *info)
{
	json_array_append_new(data, token_json(info));
}

enum p11e_err
p11e_method_list_tokens(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		{ "uri", JSON_STRING, false },
		{ NULL, 0, false },
	};
	struct session s = { NULL, NULL };
	json_t *tokens;
	enum p11e_err err;
	size_t n;

	(void)agent;
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		return err;
	if ((err = p11e_p11_new(&s.p11)) != P11E_OK)
		return err;
	tokens = json_array();
	err = p11e_p11_tokens(s.p11,
	    json_string_value(json_object_get(params, "uri")), add_token,
	    tokens, &n);
	if (err == P11E_OK)
		*result = json_pack("{s:o}", "tokens", tokens);
	else
		json_decref(tokens);
	err = err == P11E_OK ? P11E_OK : fail(&s, err, detail);
	session_close(&s);
	return err;
}

static void
hex(char *dst, const unsigned char *p, size_t len)
{
	size_t i;

	dst[0] = '\0'; /* len 0: a CA-only import has no key id */
	for (i = 0; i < len; i++)
		snprintf(dst + 2 * i, 3, "%02x", p[i]);
}

/* Parses a hex CKA_ID; P11E_ERR_INVALID_PARAMETER with detail. */
static enum p11e_err
unhex(const char *s, unsigned char *id, size_t *len, char *detail)
{
	size_t n = strlen(s), i;

	if (n == 0 || n % 2 != 0 || n / 2 > P11E_ID_MAX) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "an id is 1 to %d bytes in "
		    "hex",
		    P11E_ID_MAX);
		return P11E_ERR_INVALID_PARAMETER;
	}
	for (i = 0; i < n; i += 2) {
		unsigned int v = 0, k;

		for (k = 0; k < 2; k++) {
			char c = s[i + k];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned int)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned int)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned int)(c - 'A' + 10);
			else {
				snprintf(detail, P11E_DETAIL_MAX,
				    "'%.80s' is not hex", s);
				return P11E_ERR_INVALID_PARAMETER;
			}
		}
		id[i / 2] = (unsigned char)v;
	}
	*len = n / 2;
	return P11E_OK;
}

static void
add_object(void *data, const struct p11e_object_info *o)
{
	char id[2 * P11E_ID_MAX + 1];
	json_t *j;

	hex(id, o->id, o->idlen);
	j = json_pack("{s:s, s:s, s:s, s:s}", "kind", o->kind, "uri", o->uri,
	    "id", id, "label", o->label);
	if (j == NULL)
		return;
	if (o->key_type[0] != '\0')
		json_object_set_new(j, "key_type", json_string(o->key_type));
	if (strcmp(o->kind, "certificate") == 0) {
		json_object_set_new(j, "subject", json_string(o->subject));
		json_object_set_new(j, "issuer", json_string(o->issuer));
		json_object_set_new(j, "serial", json_string(o->serial));
		json_object_set_new(j, "not_after", json_string(o->not_after));
		json_object_set_new(j, "authority", json_boolean(o->authority));
	}
	json_array_append_new(data, j);
}

enum p11e_err
p11e_method_list_objects(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = { TOKEN_PARAMS,
		{ "login", JSON_TRUE, false }, { NULL, 0, false } };
	/* a pin-source in the URI sends no PIN: "login" asks for one */
	bool login = json_is_true(json_object_get(params, "login")) ||
	    json_object_get(params, "pin") != NULL;
	struct p11e_token_info info;
	struct session s;
	json_t *objects = NULL;
	enum p11e_err err;

	(void)agent;
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		return err;
	if ((err = session_open(params, login, &s, detail)) != P11E_OK)
		goto out;
	objects = json_array();
	if ((err = p11e_token_objects(s.tok, add_object, objects)) != P11E_OK ||
	    (err = p11e_token_info(s.tok, &info)) != P11E_OK) {
		err = fail(&s, err, detail);
		goto out;
	}
	*result = json_pack("{s:o, s:b, s:O}", "token", token_json(&info),
	    "logged_in", login, "objects", objects);
out:
	json_decref(objects);
	session_close(&s);
	return err;
}

static json_t *
b64(const unsigned char *p, size_t len)
{
	unsigned char *out;
	json_t *j;

	if ((out = OPENSSL_malloc(4 * ((len + 2) / 3) + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock(out, p, (int)len);
	j = json_string((char *)out);
	OPENSSL_free(out);
	return j;
}

enum p11e_err
p11e_method_generate_key(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = { TOKEN_PARAMS,
		{ "type", JSON_STRING, false }, { "id", JSON_STRING, false },
		{ "label", JSON_STRING, false }, { NULL, 0, false } };
	enum p11e_key_type type = P11E_KEY_EC_P256;
	unsigned char id[P11E_ID_MAX];
	char idhex[2 * P11E_ID_MAX + 1];
	const char *label = json_string_value(json_object_get(params, "label"));
	const char *t = json_string_value(json_object_get(params, "type"));
	const char *idtext = json_string_value(json_object_get(params, "id"));
	size_t idlen = P11E_ID_RANDOM_LEN;
	struct p11e_buf spki;
	struct session s;
	enum p11e_err err;

	(void)agent;
	memset(&s, 0, sizeof(s));
	p11e_buf_init(&spki, 4096);
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		goto out;
	if (t != NULL && p11e_key_type_parse(t, &type) != P11E_OK) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "unknown key type '%.40s' "
		    "(ec-p256, ec-p384, "
		    "rsa-2048, rsa-3072, "
		    "rsa-4096)",
		    t);
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	if (idtext != NULL &&
	    (err = unhex(idtext, id, &idlen, detail)) != P11E_OK)
		goto out;
	if ((err = session_open(params, true, &s, detail)) != P11E_OK)
		goto out;
	if (idtext == NULL &&
	    (err = p11e_token_new_id(s.tok, id, idlen)) != P11E_OK) {
		err = fail(&s, err, detail);
		goto out;
	}
	err = p11e_token_keygen(
	    s.tok, type, id, idlen, label ? label : "p11enroll", &spki);
	if (err != P11E_OK) {
		err = fail(&s, err, detail);
		goto out;
	}
	hex(idhex, id, idlen);
	*result = json_pack("{s:s, s:s, s:o}", "id", idhex, "key_type",
	    p11e_key_type_name(type), "spki", b64(spki.data, spki.len));
	{
		struct p11e_token_info info;

		if (type >= P11E_KEY_RSA_2048 &&
		    p11e_token_info(s.tok, &info) == P11E_OK && !info.rsa_tls13)
			json_object_set_new(*result, "note",
			    json_string("this token has neither CKM_RSA_X_509 "
					"nor RSA-PSS: TLS client "
					"authentication with this key is "
					"limited to TLS 1.2"));
	}
out:
	p11e_buf_clear(&spki);
	session_close(&s);
	return err;
}

/* Reads every certificate of a PEM text, in order. */
static enum p11e_err
read_pem(const char *pem, STACK_OF(X509) * *out, char *detail)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x;

	*out = NULL;
	if (certs == NULL || bio == NULL) {
		sk_X509_free(certs);
		BIO_free(bio);
		return P11E_ERR_NOMEM;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		sk_X509_push(certs, x);
	ERR_clear_error();
	BIO_free(bio);
	if (sk_X509_num(certs) == 0) {
		sk_X509_free(certs);
		snprintf(detail, P11E_DETAIL_MAX, "no PEM certificate found");
		return P11E_ERR_PARSE;
	}
	*out = certs;
	return P11E_OK;
}

enum p11e_err
p11e_method_make_csr(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = { TOKEN_PARAMS,
		{ "id", JSON_STRING, true }, { "subject", JSON_STRING, false },
		{ "copy_from", JSON_STRING, false }, { NULL, 0, false } };
	struct p11e_csr_template tmpl = { NULL, NULL, 0 };
	unsigned char id[P11E_ID_MAX], *der = NULL;
	const char *copy =
	    json_string_value(json_object_get(params, "copy_from"));
	STACK_OF(X509) *certs = NULL;
	struct p11e_buf spki, csr;
	struct session s;
	enum p11e_err err;
	size_t idlen;
	BIO *bio = NULL;
	char *pem;
	long pemlen;
	int len;

	(void)agent;
	memset(&s, 0, sizeof(s));
	p11e_buf_init(&spki, 4096);
	p11e_buf_init(&csr, 64 * 1024);
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK ||
	    (err = unhex(json_string_value(json_object_get(params, "id")), id,
		 &idlen, detail)) != P11E_OK)
		goto out;
	tmpl.subject = json_string_value(json_object_get(params, "subject"));
	if ((tmpl.subject == NULL) == (copy == NULL)) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "give either a subject or a "
		    "certificate to copy it "
		    "from");
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	if (copy != NULL) {
		if ((err = read_pem(copy, &certs, detail)) != P11E_OK)
			goto out;
		if ((len = i2d_X509(sk_X509_value(certs, 0), &der)) <= 0) {
			err = P11E_ERR_CRYPTO;
			goto out;
		}
		tmpl.copy_from = der;
		tmpl.copy_from_len = (size_t)len;
	}
	if ((err = session_open(params, true, &s, detail)) != P11E_OK)
		goto out;
	if ((err = p11e_token_key_adopt(s.tok, id, idlen, &spki)) != P11E_OK ||
	    (err = p11e_token_csr(s.tok, id, idlen, spki.data, spki.len, &tmpl,
		 &csr)) != P11E_OK) {
		err = fail(&s, err, detail);
		goto out;
	}
	/* PEM for people and for EST servers that take it */
	err = P11E_ERR_CRYPTO;
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio(
		bio, "CERTIFICATE REQUEST", "", csr.data, (long)csr.len) ||
	    (pemlen = BIO_get_mem_data(bio, &pem)) <= 0)
		goto out;
	*result = json_pack("{s:s%}", "csr", pem, (size_t)pemlen);
	err = P11E_OK;
out:
	BIO_free(bio);
	OPENSSL_free(der);
	sk_X509_pop_free(certs, X509_free);
	p11e_buf_clear(&spki);
	p11e_buf_clear(&csr);
	session_close(&s);
	return err;
}

struct key_ids {
	unsigned char id[16][P11E_ID_MAX];
	size_t len[16];
	int n;
};

static void
collect_key(void *data, const struct p11e_object_info *o)
{
	struct key_ids *k = data;

	if (strcmp(o->kind, "private-key") != 0 || k->n >= 16)
		return;
	memcpy(k->id[k->n], o->id, o->idlen);
	k->len[k->n] = o->idlen;
	k->n++;
}

/* Whether certificate x's public key is spki. */
static bool
cert_has_key(X509 *x, const struct p11e_buf *spki)
{
	unsigned char *der = NULL;
	bool same;
	int len;

	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	same = len > 0 && (size_t)len == spki->len &&
	    memcmp(der, spki->data, spki->len) == 0;
	OPENSSL_free(der);
	return same;
}

/*
 * Finds the certificate in certs whose key is on the token: with an id,
 * the key with that id; else any private key's.  Sets *leaf (index) and
 * the id.
 */
static enum p11e_err
find_leaf(struct session *s, STACK_OF(X509) * certs, unsigned char *id,
    size_t *idlen, bool have_id, int *leaf, char *detail)
{
	struct key_ids keys;
	struct p11e_buf spki;
	enum p11e_err err;
	int k, c;

	memset(&keys, 0, sizeof(keys));
	if (have_id) {
		memcpy(keys.id[0], id, *idlen);
		keys.len[0] = *idlen;
		keys.n = 1;
	} else if ((err = p11e_token_objects(s->tok, collect_key, &keys)) !=
	    P11E_OK) {
		return fail(s, err, detail);
	}
	p11e_buf_init(&spki, 4096);
	for (k = 0; k < keys.n; k++) {
		p11e_buf_reset(&spki);
		err = p11e_token_key_adopt(
		    s->tok, keys.id[k], keys.len[k], &spki);
		if (err != P11E_OK && have_id) {
			p11e_buf_clear(&spki);
			return fail(s, err, detail);
		}
		for (c = 0; err == P11E_OK && c < sk_X509_num(certs); c++) {
			if (cert_has_key(sk_X509_value(certs, c), &spki)) {
				memcpy(id, keys.id[k], keys.len[k]);
				*idlen = keys.len[k];
				*leaf = c;
				p11e_buf_clear(&spki);
				return P11E_OK;
			}
		}
	}
	p11e_buf_clear(&spki);
	snprintf(detail, P11E_DETAIL_MAX, "%s: nothing stored",
	    have_id ? "no certificate in the file belongs to the key with this "
		      "id"
		    : "no certificate in the file belongs to a key on the "
		      "token");
	return P11E_ERR_CERT_KEY_MISMATCH;
}

static bool
all_ca(STACK_OF(X509) * certs)
{
	int c;

	for (c = 0; c < sk_X509_num(certs); c++) {
		if (X509_check_ca(sk_X509_value(certs, c)) != 1)
			return false;
	}
	return true;
}

enum p11e_err
p11e_method_import_certificates(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = { TOKEN_PARAMS,
		{ "pem", JSON_STRING, true }, { "id", JSON_STRING, false },
		{ "label", JSON_STRING, false }, { NULL, 0, false } };
	const char *idtext = json_string_value(json_object_get(params, "id"));
	const char *label = json_string_value(json_object_get(params, "label"));
	unsigned char id[P11E_ID_MAX], *der = NULL;
	char idhex[2 * P11E_ID_MAX + 1];
	STACK_OF(X509) *certs = NULL;
	struct session s;
	enum p11e_err err;
	size_t idlen = 0;
	int leaf = -1, c, len, added = 0, present = 0;
	bool a;

	(void)agent;
	memset(&s, 0, sizeof(s));
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		goto out;
	if (json_string_length(json_object_get(params, "pem")) > PEM_MAX) {
		snprintf(
		    detail, P11E_DETAIL_MAX, "over %d bytes of PEM", PEM_MAX);
		err = P11E_ERR_TOO_LARGE;
		goto out;
	}
	if (idtext != NULL &&
	    (err = unhex(idtext, id, &idlen, detail)) != P11E_OK)
		goto out;
	if ((err = read_pem(json_string_value(json_object_get(params, "pem")),
		 &certs, detail)) != P11E_OK)
		goto out;
	if ((err = session_open(params, true, &s, detail)) != P11E_OK)
		goto out;
	err = find_leaf(&s, certs, id, &idlen, idtext != NULL, &leaf, detail);
	/* a chain alone: CA certificates and no certificate of a key */
	if (err == P11E_ERR_CERT_KEY_MISMATCH && idtext == NULL &&
	    all_ca(certs))
		err = P11E_OK;
	if (err != P11E_OK)
		goto out;
	/* the leaf first: nothing else is stored when it cannot be */
	for (c = leaf < 0 ? 0 : -1; c < sk_X509_num(certs); c++) {
		X509 *x = sk_X509_value(certs, c < 0 ? leaf : c);

		if (c == leaf)
			continue;
		OPENSSL_free(der);
		der = NULL;
		if ((len = i2d_X509(x, &der)) <= 0) {
			err = P11E_ERR_CRYPTO;
			goto out;
		}
		if (c < 0)
			err = p11e_token_store_cert(s.tok, id, idlen, der,
			    (size_t)len, label ? label : "p11enroll");
		else if ((err = p11e_token_store_ca(
			      s.tok, der, (size_t)len, &a)) == P11E_OK)
			a ? added++ : present++;
		if (err != P11E_OK) {
			err = fail(&s, err, detail);
			goto out;
		}
	}
	if (leaf >= 0 &&
	    (err = p11e_token_verify_pair(s.tok, id, idlen)) != P11E_OK) {
		err = fail(&s, err, detail);
		goto out;
	}
	hex(idhex, id, idlen);
	*result = json_pack("{s:s, s:b, s:i, s:i}", "id", idhex, "verified",
	    leaf >= 0, "ca_added", added, "ca_present", present);
out:
	OPENSSL_free(der);
	sk_X509_pop_free(certs, X509_free);
	session_close(&s);
	return err;
}

enum p11e_err
p11e_method_delete_objects(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = { TOKEN_PARAMS,
		{ "id", JSON_STRING, true }, { NULL, 0, false } };
	unsigned char id[P11E_ID_MAX];
	unsigned int deleted = 0;
	struct session s;
	enum p11e_err err;
	size_t idlen;

	(void)agent;
	memset(&s, 0, sizeof(s));
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK ||
	    (err = unhex(json_string_value(json_object_get(params, "id")), id,
		 &idlen, detail)) != P11E_OK)
		goto out;
	if ((err = session_open(params, true, &s, detail)) != P11E_OK)
		goto out;
	if ((err = p11e_token_delete(s.tok, id, idlen, &deleted)) != P11E_OK) {
		err = fail(&s, err, detail);
		goto out;
	}
	*result = json_pack("{s:i}", "deleted", (int)deleted);
out:
	session_close(&s);
	return err;
}
