/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libp11 glue: a token private key as an EVP_PKEY, see evp.h.
 *
 * libp11.h does not compile with OPENSSL_API_COMPAT=30000, so this file
 * must not set it (DESIGN §3).
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libp11.h>
#include <openssl/ui.h>

#include "common/log.h"
#include "pkcs11/evp.h"
#include "pkcs11/token-private.h"

struct p11e_evp_key {
	PKCS11_CTX *ctx;
	bool loaded; /* PKCS11_CTX_load succeeded: unload on free */
	PKCS11_SLOT *slots; /* from PKCS11_enumerate_slots */
	unsigned int nslots;
	UI_METHOD *ui; /* must outlive ctx */
	EVP_PKEY *pkey; /* our reference */
};

/*
 * The UI reader libp11 calls for a CKU_CONTEXT_SPECIFIC PIN: refuses, so
 * a key with CKA_ALWAYS_AUTHENTICATE fails to sign instead of prompting
 * on a terminal in the middle of a TLS handshake.
 */
static int
ui_refuse(UI *ui, UI_STRING *uis)
{
	(void)ui;
	(void)uis;
	p11e_error("the token asks for a PIN for this one operation "
		   "(CKA_ALWAYS_AUTHENTICATE); p11enroll does not prompt "
		   "for it");
	return -1;
}

/* Both NULL, or both the same string (libp11 trims trailing blanks). */
static bool
field_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b || (a == NULL ? b[0] == '\0' : a[0] == '\0');
	return strcmp(a, b) == 0;
}

/* The slot whose token has tok's serial, manufacturer, model and label. */
static enum p11e_err
find_slot(struct p11e_token *tok, PKCS11_SLOT *slots, unsigned int nslots,
    PKCS11_SLOT **out)
{
	const struct p11e_token_info *ti = &tok->info;
	PKCS11_SLOT *found = NULL;
	PKCS11_TOKEN *t;
	unsigned int i, n = 0;
	char esc[128];

	*out = NULL;
	for (i = 0; i < nslots; i++) {
		if ((t = slots[i].token) == NULL)
			continue;
		if (!field_equal(t->serialnr, ti->serial) ||
		    !field_equal(t->manufacturer, ti->manufacturer) ||
		    !field_equal(t->model, ti->model) ||
		    !field_equal(t->label, ti->label))
			continue;
		found = &slots[i];
		n++;
	}
	p11e_log_escape(esc, sizeof(esc), ti->label, strlen(ti->label));
	if (n == 0) {
		p11e_p11_set_detail(tok->p11,
		    "Token \"%s\" (serial %s) is not visible through "
		    "p11-kit-proxy.",
		    esc, ti->serial);
		return P11E_ERR_TOKEN_NOT_FOUND;
	}
	if (n > 1) {
		p11e_p11_set_detail(tok->p11,
		    "p11-kit-proxy shows %u tokens like \"%s\" (serial %s).", n,
		    esc, ti->serial);
		return P11E_ERR_TOKEN_AMBIGUOUS;
	}
	*out = found;
	return P11E_OK;
}

/* The one private key with CKA_ID id. */
static enum p11e_err
find_key(struct p11e_token *tok, PKCS11_SLOT *slot, const unsigned char *id,
    size_t idlen, PKCS11_KEY **out)
{
	PKCS11_KEY *keys = NULL, *found = NULL;
	unsigned int nkeys = 0, i, n = 0;

	*out = NULL;
	/* Private keys need the login, which tok's session holds. */
	if (PKCS11_enumerate_keys(slot->token, &keys, &nkeys) != 0) {
		p11e_log_openssl("PKCS11_enumerate_keys");
		p11e_p11_set_detail(
		    tok->p11, "libp11 could not list the private keys.");
		return P11E_ERR_TOKEN;
	}
	for (i = 0; i < nkeys; i++) {
		if (!keys[i].isPrivate || keys[i].id == NULL ||
		    keys[i].id_len != idlen ||
		    memcmp(keys[i].id, id, idlen) != 0)
			continue;
		found = &keys[i];
		n++;
	}
	if (n == 0) {
		p11e_p11_set_detail(tok->p11,
		    "No private key with this id is visible on the token%s.",
		    tok->logged_in ? "" : " (not logged in)");
		return P11E_ERR_KEY_NOT_FOUND;
	}
	if (n > 1) {
		p11e_p11_set_detail(
		    tok->p11, "%u private keys on the token share this id.", n);
		return P11E_ERR_ID_IN_USE;
	}
	*out = found;
	return P11E_OK;
}

enum p11e_err
p11e_token_evp_key(struct p11e_token *tok, const unsigned char *id,
    size_t idlen, struct p11e_evp_key **out)
{
	struct p11e_evp_key *key = NULL;
	PKCS11_SLOT *slot = NULL;
	PKCS11_KEY *pk = NULL;
	enum p11e_err err;

	p11e_return_val_if_fail(out != NULL, P11E_ERR_INVALID_PARAMETER);
	*out = NULL;
	p11e_return_val_if_fail(tok != NULL, P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(id != NULL, P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(idlen >= P11E_ID_MIN && idlen <= P11E_ID_MAX,
	    P11E_ERR_INVALID_PARAMETER);

	if ((key = calloc(1, sizeof(*key))) == NULL)
		return P11E_ERR_NOMEM;
	if ((key->ctx = PKCS11_CTX_new()) == NULL) {
		p11e_log_openssl("PKCS11_CTX_new");
		err = P11E_ERR_NOMEM;
		goto out;
	}
	if ((key->ui = UI_create_method("p11enroll: no prompt")) == NULL ||
	    UI_method_set_reader(key->ui, ui_refuse) != 0 ||
	    PKCS11_set_ui_method(key->ctx, key->ui, NULL) != 0) {
		p11e_log_openssl("UI_create_method");
		p11e_p11_set_detail(
		    tok->p11, "Could not set up libp11's PIN prompt refusal.");
		err = P11E_ERR_CRYPTO;
		goto out;
	}
	if (PKCS11_CTX_load(key->ctx, P11KIT_PROXY_MODULE) != 0) {
		p11e_log_openssl("PKCS11_CTX_load");
		p11e_p11_set_detail(
		    tok->p11, "libp11 could not load %s.", P11KIT_PROXY_MODULE);
		err = P11E_ERR_TOKEN;
		goto out;
	}
	key->loaded = true;
	if (PKCS11_enumerate_slots(key->ctx, &key->slots, &key->nslots) != 0) {
		p11e_log_openssl("PKCS11_enumerate_slots");
		p11e_p11_set_detail(tok->p11,
		    "libp11 could not list the slots of %s.",
		    P11KIT_PROXY_MODULE);
		key->slots = NULL;
		key->nslots = 0;
		err = P11E_ERR_TOKEN;
		goto out;
	}
	if ((err = find_slot(tok, key->slots, key->nslots, &slot)) != P11E_OK)
		goto out;
	/* Read-write, before anything else touches the slot. */
	if (PKCS11_open_session(slot, 1) != 0) {
		p11e_log_openssl("PKCS11_open_session");
		p11e_p11_set_detail(
		    tok->p11, "libp11 could not open a session on the token.");
		err = P11E_ERR_TOKEN;
		goto out;
	}
	if ((err = find_key(tok, slot, id, idlen, &pk)) != P11E_OK)
		goto out;
	/* A new reference, cached by libp11 until the slots go. */
	if ((key->pkey = PKCS11_get_private_key(pk)) == NULL) {
		p11e_log_openssl("PKCS11_get_private_key");
		p11e_p11_set_detail(tok->p11,
		    "libp11 could not make an OpenSSL key of the private key "
		    "(for an EC key the public key object must be on the "
		    "token too).");
		err = P11E_ERR_CRYPTO;
		goto out;
	}
	p11e_debug(P11E_DEBUG_PKCS11, "libp11 key on %s: %s, %d bits",
	    P11KIT_PROXY_MODULE, EVP_PKEY_get0_type_name(key->pkey),
	    EVP_PKEY_get_bits(key->pkey));
	*out = key;
	key = NULL; /* transferred */
	err = P11E_OK;
out:
	p11e_evp_key_free(key);
	return err;
}

EVP_PKEY *
p11e_evp_key_pkey(struct p11e_evp_key *key)
{
	p11e_return_val_if_fail(key != NULL, NULL);
	return key->pkey;
}

void
p11e_evp_key_free(struct p11e_evp_key *key)
{
	if (key == NULL)
		return;
	/* Before the slots: libp11's key object holds a reference too. */
	EVP_PKEY_free(key->pkey);
	if (key->slots != NULL)
		PKCS11_release_all_slots(key->ctx, key->slots, key->nslots);
	if (key->ctx != NULL) {
		/*
		 * C_Finalize on the proxy: p11-kit counts initialisations,
		 * so the modules stay initialised for our own p11e_p11.
		 */
		if (key->loaded)
			PKCS11_CTX_unload(key->ctx);
		PKCS11_CTX_free(key->ctx);
	}
	if (key->ui != NULL)
		UI_destroy_method(key->ui);
	free(key);
}
