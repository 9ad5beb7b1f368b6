/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include "common/log.h"
#include "common/secret.h"
#include "pkcs11/token-private.h"

#define PIN_MAX 256

/* ---- details and return values ---------------------------------------- */

static void
vdetail(struct p11e_p11 *p11, int append, const char *fmt, va_list ap)
{
	size_t off = append ? strlen(p11->detail) : 0;

	if (off >= sizeof(p11->detail) - 1)
		return;
	vsnprintf(p11->detail + off, sizeof(p11->detail) - off, fmt, ap);
}

void
p11e_p11_set_detail(struct p11e_p11 *p11, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdetail(p11, 0, fmt, ap);
	va_end(ap);
}

void
p11e_p11_add_detail(struct p11e_p11 *p11, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdetail(p11, 1, fmt, ap);
	va_end(ap);
}

const char *
p11e_p11_detail(const struct p11e_p11 *p11)
{
	return p11 ? p11->detail : "";
}

const char *
p11e_ckr_name(CK_RV rv)
{
	static char other[32];

	switch (rv) {
#define N(x)    \
	case x: \
		return #x
		N(CKR_OK);
		N(CKR_CANCEL);
		N(CKR_HOST_MEMORY);
		N(CKR_SLOT_ID_INVALID);
		N(CKR_GENERAL_ERROR);
		N(CKR_FUNCTION_FAILED);
		N(CKR_ARGUMENTS_BAD);
		N(CKR_ATTRIBUTE_READ_ONLY);
		N(CKR_ATTRIBUTE_SENSITIVE);
		N(CKR_ATTRIBUTE_TYPE_INVALID);
		N(CKR_ATTRIBUTE_VALUE_INVALID);
		N(CKR_DATA_LEN_RANGE);
		N(CKR_DEVICE_ERROR);
		N(CKR_DEVICE_MEMORY);
		N(CKR_DEVICE_REMOVED);
		N(CKR_FUNCTION_NOT_SUPPORTED);
		N(CKR_KEY_HANDLE_INVALID);
		N(CKR_KEY_SIZE_RANGE);
		N(CKR_KEY_TYPE_INCONSISTENT);
		N(CKR_KEY_UNEXTRACTABLE);
		N(CKR_MECHANISM_INVALID);
		N(CKR_MECHANISM_PARAM_INVALID);
		N(CKR_OBJECT_HANDLE_INVALID);
		N(CKR_OPERATION_ACTIVE);
		N(CKR_OPERATION_NOT_INITIALIZED);
		N(CKR_PIN_INCORRECT);
		N(CKR_PIN_INVALID);
		N(CKR_PIN_LEN_RANGE);
		N(CKR_PIN_EXPIRED);
		N(CKR_PIN_LOCKED);
		N(CKR_SESSION_CLOSED);
		N(CKR_SESSION_HANDLE_INVALID);
		N(CKR_SESSION_READ_ONLY);
		N(CKR_TEMPLATE_INCOMPLETE);
		N(CKR_TEMPLATE_INCONSISTENT);
		N(CKR_TOKEN_NOT_PRESENT);
		N(CKR_TOKEN_NOT_RECOGNIZED);
		N(CKR_TOKEN_WRITE_PROTECTED);
		N(CKR_USER_ALREADY_LOGGED_IN);
		N(CKR_USER_NOT_LOGGED_IN);
		N(CKR_USER_PIN_NOT_INITIALIZED);
		N(CKR_USER_TYPE_INVALID);
		N(CKR_DOMAIN_PARAMS_INVALID);
		N(CKR_CRYPTOKI_NOT_INITIALIZED);
		N(CKR_CRYPTOKI_ALREADY_INITIALIZED);
		N(CKR_BUFFER_TOO_SMALL);
#undef N
	}
	snprintf(other, sizeof(other), "CKR_0x%08lx", (unsigned long)rv);
	return other;
}

enum p11e_err
p11e_ckr_err(struct p11e_token *tok, const char *fn, CK_RV rv)
{
	enum p11e_err err;

	switch (rv) {
	case CKR_OK:
		return P11E_OK;
	case CKR_HOST_MEMORY:
		err = P11E_ERR_NOMEM;
		break;
	case CKR_PIN_INCORRECT:
		err = P11E_ERR_PIN_INCORRECT;
		break;
	case CKR_PIN_LOCKED:
		err = P11E_ERR_PIN_LOCKED;
		break;
	case CKR_PIN_EXPIRED:
		err = P11E_ERR_PIN_EXPIRED;
		break;
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
		err = P11E_ERR_TOKEN_ABSENT;
		break;
	case CKR_TOKEN_WRITE_PROTECTED:
	case CKR_SESSION_READ_ONLY:
		err = P11E_ERR_TOKEN_READ_ONLY;
		break;
	case CKR_DEVICE_MEMORY:
		err = P11E_ERR_TOKEN_FULL;
		break;
	case CKR_MECHANISM_INVALID:
	case CKR_MECHANISM_PARAM_INVALID:
	case CKR_DOMAIN_PARAMS_INVALID:
	case CKR_KEY_SIZE_RANGE:
		err = P11E_ERR_MECHANISM_UNSUPPORTED;
		break;
	default:
		err = P11E_ERR_TOKEN;
		break;
	}
	p11e_error(
	    "%s: %s (0x%08lx)", fn, p11e_ckr_name(rv), (unsigned long)rv);
	if (tok != NULL)
		p11e_p11_set_detail(tok->p11,
		    "%s on token '%s' (serial %s) "
		    "returned %s.",
		    fn, tok->info.label, tok->info.serial, p11e_ckr_name(rv));
	return err;
}

/* ---- context ----------------------------------------------------------- */

struct mapped {
	char *names[256];
	size_t n;
};

static int
mapped_one(struct dl_phdr_info *info, size_t size, void *data)
{
	struct mapped *m = data;

	(void)size;
	if (info->dlpi_name != NULL && info->dlpi_name[0] == '/' &&
	    m->n < sizeof(m->names) / sizeof(m->names[0]) &&
	    (m->names[m->n] = strdup(info->dlpi_name)) != NULL)
		m->n++;
	return 0;
}

/*
 * Once per process, after the first module load: the libraries then
 * mapped (the modules and what they link) stay mapped when p11-kit
 * releases the modules.  Each p11e_p11_new() still initializes every
 * module afresh and p11e_p11_free() finalizes it (a new token shows, no
 * login or session survives), but the dynamic linking of the modules,
 * most of a load, is done once (doc/benchmarks.md).
 */
static void
keep_mapped(void)
{
	static bool done;
	struct mapped m = { { NULL }, 0 };
	void *h;
	size_t i;

	if (done)
		return;
	done = true;
	/* dlopen() is not for inside dl_iterate_phdr()'s callback */
	(void)dl_iterate_phdr(mapped_one, &m);
	for (i = 0; i < m.n; i++) {
		h = dlopen(m.names[i], RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
		if (h != NULL)
			(void)dlclose(h);
		free(m.names[i]);
	}
}

enum p11e_err
p11e_p11_new(struct p11e_p11 **out)
{
	struct p11e_p11 *p11;

	*out = NULL;
	if ((p11 = calloc(1, sizeof(*p11))) == NULL)
		return P11E_ERR_NOMEM;
	/*
	 * Registered modules only: the module list never comes from a peer.
	 * Managed modules share one C_Initialize with p11-kit-proxy in this
	 * process, which is what lets libp11 use our login.
	 */
	p11->modules = p11_kit_modules_load_and_initialize(0);
	if (p11->modules == NULL) {
		p11e_error("p11-kit cannot load its modules: %s",
		    p11_kit_message() ? p11_kit_message() : "?");
		free(p11);
		return P11E_ERR_TOKEN;
	}
	keep_mapped();
	*out = p11;
	return P11E_OK;
}

void
p11e_p11_free(struct p11e_p11 *p11)
{
	if (p11 == NULL)
		return;
	p11_kit_modules_finalize_and_release(p11->modules);
	free(p11);
}

/* ---- token information ------------------------------------------------- */

/* Turns NUL padding into the blanks PKCS#11 asks for. */
static void
blank_nuls(unsigned char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\0')
			s[i] = ' ';
	}
}

void
p11e_uri_set_token(P11KitUri *uri, const CK_TOKEN_INFO *ti)
{
	CK_TOKEN_INFO *ut = p11_kit_uri_get_token_info(uri);

	memcpy(ut, ti, sizeof(*ti));
	/* some modules pad with NULs, which would end up in the URI */
	blank_nuls(ut->label, sizeof(ut->label));
	blank_nuls(ut->manufacturerID, sizeof(ut->manufacturerID));
	blank_nuls(ut->model, sizeof(ut->model));
	blank_nuls(ut->serialNumber, sizeof(ut->serialNumber));
}

/* Copies a blank-padded PKCS#11 string, trimmed, NUL-terminated. */
static void
padded(char *dst, size_t dstlen, const unsigned char *src, size_t srclen)
{
	size_t n = srclen;

	while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\0'))
		n--;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The slot's mechanism list (at most max entries). */
struct mechs {
	CK_MECHANISM_TYPE list[256];
	CK_ULONG n;
};

static bool
has_mech(CK_FUNCTION_LIST *m, CK_SLOT_ID slot, const struct mechs *ms,
    CK_MECHANISM_TYPE type, CK_FLAGS need, CK_ULONG bits)
{
	CK_MECHANISM_INFO mi;
	CK_ULONG i;

	/* only ask about listed mechanisms: some modules do not expect more */
	for (i = 0; i < ms->n && ms->list[i] != type; i++)
		;
	if (i == ms->n || m->C_GetMechanismInfo(slot, type, &mi) != CKR_OK)
		return false;
	if ((mi.flags & need) != need)
		return false;
	/* some tokens report 0 for "no limit" */
	if (bits > 0 && mi.ulMaxKeySize > 0 &&
	    (bits < mi.ulMinKeySize || bits > mi.ulMaxKeySize))
		return false;
	return true;
}

static void
fill_mechanisms(
    CK_FUNCTION_LIST *m, CK_SLOT_ID slot, struct p11e_token_info *info)
{
	struct mechs ms;
	bool ec, rsa;

	ms.n = sizeof(ms.list) / sizeof(ms.list[0]);
	if (m->C_GetMechanismList(slot, ms.list, &ms.n) != CKR_OK)
		return;
	ec = has_mech(m, slot, &ms, CKM_ECDSA, CKF_SIGN, 0);
	rsa = has_mech(m, slot, &ms, CKM_RSA_PKCS, CKF_SIGN, 0);
	info->keygen[P11E_KEY_EC_P256] = ec &&
	    has_mech(
		m, slot, &ms, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, 256);
	info->keygen[P11E_KEY_EC_P384] = ec &&
	    has_mech(
		m, slot, &ms, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, 384);
	info->keygen[P11E_KEY_RSA_2048] = rsa &&
	    has_mech(m, slot, &ms, CKM_RSA_PKCS_KEY_PAIR_GEN,
		CKF_GENERATE_KEY_PAIR, 2048);
	info->keygen[P11E_KEY_RSA_3072] = rsa &&
	    has_mech(m, slot, &ms, CKM_RSA_PKCS_KEY_PAIR_GEN,
		CKF_GENERATE_KEY_PAIR, 3072);
	info->keygen[P11E_KEY_RSA_4096] = rsa &&
	    has_mech(m, slot, &ms, CKM_RSA_PKCS_KEY_PAIR_GEN,
		CKF_GENERATE_KEY_PAIR, 4096);
	info->rsa_tls13 = has_mech(m, slot, &ms, CKM_RSA_X_509, CKF_SIGN, 0) ||
	    has_mech(m, slot, &ms, CKM_RSA_PKCS_PSS, CKF_SIGN, 0);
}

static void
fill_flags(const CK_TOKEN_INFO *ti, struct p11e_token_info *info)
{
	info->login_required = (ti->flags & CKF_LOGIN_REQUIRED) != 0;
	info->protected_auth =
	    (ti->flags & CKF_PROTECTED_AUTHENTICATION_PATH) != 0;
	info->write_protected = (ti->flags & CKF_WRITE_PROTECTED) != 0;
	info->pin_count_low = (ti->flags & CKF_USER_PIN_COUNT_LOW) != 0;
	info->pin_final_try = (ti->flags & CKF_USER_PIN_FINAL_TRY) != 0;
	info->pin_locked = (ti->flags & CKF_USER_PIN_LOCKED) != 0;
	info->pin_to_be_changed = (ti->flags & CKF_USER_PIN_TO_BE_CHANGED) != 0;
	info->initialized = (ti->flags & CKF_TOKEN_INITIALIZED) != 0;
}

static void
fill_info(CK_FUNCTION_LIST *m, CK_SLOT_ID slot, const CK_INFO *mi,
    const CK_TOKEN_INFO *ti, struct p11e_token_info *info)
{
	P11KitUri *uri;
	char *name, *s = NULL;

	memset(info, 0, sizeof(*info));
	name = p11_kit_module_get_name(m);
	snprintf(info->module, sizeof(info->module), "%s", name ? name : "?");
	free(name);
	padded(info->library, sizeof(info->library), mi->libraryDescription,
	    sizeof(mi->libraryDescription));
	if (ti == NULL)
		return;
	info->present = true;
	padded(info->label, sizeof(info->label), ti->label, sizeof(ti->label));
	padded(info->manufacturer, sizeof(info->manufacturer),
	    ti->manufacturerID, sizeof(ti->manufacturerID));
	padded(info->model, sizeof(info->model), ti->model, sizeof(ti->model));
	padded(info->serial, sizeof(info->serial), ti->serialNumber,
	    sizeof(ti->serialNumber));
	fill_flags(ti, info);
	fill_mechanisms(m, slot, info);
	if ((uri = p11_kit_uri_new()) != NULL) {
		p11e_uri_set_token(uri, ti);
		if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_TOKEN, &s) ==
		    P11_KIT_URI_OK)
			snprintf(info->uri, sizeof(info->uri), "%s", s);
		free(s);
		p11_kit_uri_free(uri);
	}
}

/*
 * A copy of ti with NUL bytes in its padded strings turned into spaces.
 * XXX: tpm2-pkcs11 1.9 pads model with NULs ("SW   TPM\0\0..."), not the
 * blanks PKCS#11 requires; p11-kit formats such a field up to the NUL
 * but p11_kit_uri_match_token_info compares all 16 bytes, so the URI we
 * print for that token would never match it again.
 */
static void
blank_padded(const CK_TOKEN_INFO *ti, CK_TOKEN_INFO *out)
{
	CK_UTF8CHAR *f[] = { out->label, out->manufacturerID, out->model,
		out->serialNumber };
	size_t n[] = { sizeof(out->label), sizeof(out->manufacturerID),
		sizeof(out->model), sizeof(out->serialNumber) };
	size_t i, j;

	*out = *ti;
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		for (j = 0; j < n[i]; j++)
			if (f[i][j] == '\0')
				f[i][j] = ' ';
}

/* Whether module m matches the module parts of uri. */
static bool
module_matches(P11KitUri *uri, CK_FUNCTION_LIST *m, const CK_INFO *mi)
{
	const char *want = p11_kit_uri_get_module_name(uri);
	char *name;
	bool ok;

	if (!p11_kit_uri_match_module_info(uri, mi))
		return false;
	if (want == NULL)
		return true;
	name = p11_kit_module_get_name(m);
	ok = name != NULL && strcmp(name, want) == 0;
	free(name);
	return ok;
}

static enum p11e_err
parse_uri(struct p11e_p11 *p11, const char *text, P11KitUri **out)
{
	P11KitUri *uri;
	int rc;

	*out = NULL;
	if ((uri = p11_kit_uri_new()) == NULL)
		return P11E_ERR_NOMEM;
	rc = p11_kit_uri_parse(
	    text ? text : "pkcs11:", P11_KIT_URI_FOR_ANY, uri);
	if (rc != P11_KIT_URI_OK) {
		p11e_p11_set_detail(p11, "'%s' is not a PKCS#11 URI: %s.", text,
		    p11_kit_uri_message(rc));
		p11_kit_uri_free(uri);
		return P11E_ERR_PARSE;
	}
	if (p11_kit_uri_any_unrecognized(uri)) {
		p11e_p11_set_detail(p11,
		    "'%s' has an attribute p11enroll "
		    "does not know.",
		    text);
		p11_kit_uri_free(uri);
		return P11E_ERR_PARSE;
	}
	*out = uri;
	return P11E_OK;
}

/*
 * Walks every slot of every module that uri matches; calls fn for each
 * with the module, slot and token info (ti NULL for an empty slot, only
 * when empty is set).  Stops early when fn returns non-zero.
 */
static void
walk_slots(struct p11e_p11 *p11, P11KitUri *uri, bool empty,
    int (*fn)(void *data, CK_FUNCTION_LIST *m, CK_SLOT_ID slot,
	const CK_INFO *mi, const CK_TOKEN_INFO *ti),
    void *data)
{
	CK_SLOT_ID slots[64];
	CK_SLOT_INFO si;
	CK_TOKEN_INFO ti, tb;
	CK_INFO mi;
	CK_ULONG n, i;
	size_t k;

	for (k = 0; p11->modules[k] != NULL; k++) {
		CK_FUNCTION_LIST *m = p11->modules[k];

		if (m->C_GetInfo(&mi) != CKR_OK || !module_matches(uri, m, &mi))
			continue;
		n = sizeof(slots) / sizeof(slots[0]);
		if (m->C_GetSlotList(empty ? CK_FALSE : CK_TRUE, slots, &n) !=
		    CKR_OK)
			continue;
		for (i = 0; i < n; i++) {
			if (m->C_GetSlotInfo(slots[i], &si) != CKR_OK ||
			    !p11_kit_uri_match_slot_info(uri, &si))
				continue;
			if ((si.flags & CKF_TOKEN_PRESENT) &&
			    m->C_GetTokenInfo(slots[i], &ti) == CKR_OK) {
				blank_padded(&ti, &tb);
				if (!p11_kit_uri_match_token_info(uri, &tb))
					continue;
				if (fn(data, m, slots[i], &mi, &ti) != 0)
					return;
			} else if (empty && fn(data, m, slots[i], &mi, NULL)) {
				return;
			}
		}
	}
}

struct list_ctx {
	void (*cb)(void *data, const struct p11e_token_info *info);
	void *data;
	size_t count;
};

static int
list_one(void *data, CK_FUNCTION_LIST *m, CK_SLOT_ID slot, const CK_INFO *mi,
    const CK_TOKEN_INFO *ti)
{
	struct list_ctx *lc = data;
	struct p11e_token_info info;

	fill_info(m, slot, mi, ti, &info);
	lc->count++;
	if (lc->cb != NULL)
		lc->cb(lc->data, &info);
	return 0;
}

enum p11e_err
p11e_p11_tokens(struct p11e_p11 *p11, const char *uri,
    void (*cb)(void *data, const struct p11e_token_info *info), void *data,
    size_t *count)
{
	struct list_ctx lc = { cb, data, 0 };
	P11KitUri *u;
	enum p11e_err err;

	*count = 0;
	p11e_p11_set_detail(p11, "%s", "");
	if ((err = parse_uri(p11, uri, &u)) != P11E_OK)
		return err;
	walk_slots(p11, u, uri == NULL, list_one, &lc);
	p11_kit_uri_free(u);
	*count = lc.count;
	return P11E_OK;
}

/* ---- opening ------------------------------------------------------------ */

#define MAX_MATCHES 8

struct match_ctx {
	struct p11e_p11 *p11;
	size_t n;
	CK_FUNCTION_LIST *module;
	CK_SLOT_ID slot;
	struct p11e_token_info info;
};

static int
match_one(void *data, CK_FUNCTION_LIST *m, CK_SLOT_ID slot, const CK_INFO *mi,
    const CK_TOKEN_INFO *ti)
{
	struct match_ctx *mc = data;
	struct p11e_token_info info;

	fill_info(m, slot, mi, ti, &info);
	if (mc->n == 0) {
		mc->module = m;
		mc->slot = slot;
		mc->info = info;
	}
	mc->n++;
	p11e_p11_add_detail(
	    mc->p11, "\n  %s (module %s)", info.uri, info.module);
	return 0;
}

enum p11e_err
p11e_token_open(struct p11e_p11 *p11, const char *uri, struct p11e_token **out)
{
	struct match_ctx mc;
	struct p11e_token *tok = NULL;
	P11KitUri *u = NULL, *all = NULL;
	enum p11e_err err;
	CK_RV rv;

	*out = NULL;
	memset(&mc, 0, sizeof(mc));
	mc.p11 = p11;
	if ((err = parse_uri(p11, uri, &u)) != P11E_OK)
		goto out;
	if (p11_kit_uri_get_pin_value(u) != NULL) {
		p11e_p11_set_detail(p11,
		    "The URI carries pin-value: PINs do "
		    "not go into URIs; use pin-source=file:"
		    "PATH or the prompt.");
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	p11e_p11_set_detail(p11, "Tokens matching %s:", uri);
	walk_slots(p11, u, false, match_one, &mc);
	if (mc.n == 0) {
		err = P11E_ERR_TOKEN_NOT_FOUND;
		if ((err = parse_uri(p11, NULL, &all)) != P11E_OK)
			goto out;
		p11e_p11_set_detail(
		    p11, "No token matches %s. Tokens present:", uri);
		walk_slots(p11, all, false, match_one, &mc);
		if (mc.n == 0)
			p11e_p11_add_detail(p11, " none.");
		err = P11E_ERR_TOKEN_NOT_FOUND;
		goto out;
	}
	if (mc.n > 1) {
		p11e_p11_add_detail(p11,
		    "\nAdd serial= to the URI to choose "
		    "one.");
		err = P11E_ERR_TOKEN_AMBIGUOUS;
		goto out;
	}
	if ((tok = calloc(1, sizeof(*tok))) == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	tok->p11 = p11;
	tok->module = mc.module;
	tok->slot = mc.slot;
	tok->info = mc.info;
	tok->session = CK_INVALID_HANDLE;
	rv = tok->module->C_OpenSession(tok->slot,
	    CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &tok->session);
	if (rv == CKR_TOKEN_WRITE_PROTECTED)
		/* still good for reading; writes fail as TokenReadOnly */
		rv = tok->module->C_OpenSession(
		    tok->slot, CKF_SERIAL_SESSION, NULL, NULL, &tok->session);
	if (rv != CKR_OK) {
		err = p11e_ckr_err(tok, "C_OpenSession", rv);
		goto out;
	}
	p11e_p11_set_detail(p11, "%s", "");
	tok->uri = u;
	u = NULL; /* transferred */
	*out = tok;
	tok = NULL; /* transferred */
	p11e_debug(P11E_DEBUG_PKCS11, "opened %s", (*out)->info.uri);
out:
	if (tok != NULL)
		p11e_token_close(tok);
	p11_kit_uri_free(u);
	p11_kit_uri_free(all);
	return err;
}

void
p11e_token_close(struct p11e_token *tok)
{
	if (tok == NULL)
		return;
	p11e_token_logout(tok);
	if (tok->session != CK_INVALID_HANDLE)
		(void)tok->module->C_CloseSession(tok->session);
	p11_kit_uri_free(tok->uri);
	free(tok);
}

enum p11e_err
p11e_token_info(struct p11e_token *tok, struct p11e_token_info *info)
{
	CK_TOKEN_INFO ti;
	CK_RV rv;

	rv = tok->module->C_GetTokenInfo(tok->slot, &ti);
	if (rv != CKR_OK)
		return p11e_ckr_err(tok, "C_GetTokenInfo", rv);
	fill_flags(&ti, &tok->info);
	*info = tok->info;
	return P11E_OK;
}

/* ---- login -------------------------------------------------------------- */

/* Reads the first line of a PIN file named by a pin-source. */
static enum p11e_err
pin_from_source(
    struct p11e_token *tok, const char *source, struct p11e_secret **out)
{
	const char *path = source;
	struct p11e_secret *pin = NULL;
	unsigned char c;
	struct stat st;
	enum p11e_err err = P11E_OK;
	ssize_t n;
	int fd;

	*out = NULL;
	if (strncmp(path, "file:", 5) == 0)
		path += 5;
	if (path[0] != '/') {
		p11e_p11_set_detail(tok->p11,
		    "pin-source must be file: and an "
		    "absolute path, not '%s'.",
		    source);
		return P11E_ERR_INVALID_PARAMETER;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		p11e_p11_set_detail(tok->p11,
		    "Cannot open the PIN file %s: %s.", path, strerror(errno));
		return P11E_ERR_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 077) != 0 || st.st_uid != geteuid()) {
		p11e_p11_set_detail(tok->p11,
		    "The PIN file %s must be a regular "
		    "file of yours, mode 0600 or "
		    "0400.",
		    path);
		err = P11E_ERR_UNSAFE_PATH;
		goto out;
	}
	if ((pin = p11e_secret_new(PIN_MAX)) == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	/* byte by byte: no stdio buffer keeps a copy */
	while ((n = read(fd, &c, 1)) == 1 && c != '\n') {
		if (c == '\r')
			continue;
		if (p11e_secret_append(pin, &c, 1) != P11E_OK) {
			p11e_p11_set_detail(tok->p11,
			    "The PIN in %s is longer "
			    "than %d bytes.",
			    path, PIN_MAX);
			err = P11E_ERR_TOO_LARGE;
			break;
		}
	}
	c = 0;
	if (err == P11E_OK && n < 0) {
		p11e_p11_set_detail(
		    tok->p11, "Cannot read %s: %s.", path, strerror(errno));
		err = P11E_ERR_IO;
	}
	if (err == P11E_OK && p11e_secret_len(pin) == 0) {
		p11e_p11_set_detail(
		    tok->p11, "The PIN file %s is empty.", path);
		err = P11E_ERR_PARSE;
	}
	if (err == P11E_OK) {
		*out = pin;
		pin = NULL; /* transferred */
	}
out:
	p11e_secret_free(pin);
	close(fd);
	return err;
}

static void
pin_counter_detail(struct p11e_token *tok)
{
	struct p11e_token_info info;

	if (p11e_token_info(tok, &info) != P11E_OK)
		return;
	if (info.pin_locked)
		p11e_p11_add_detail(tok->p11, " The PIN is now locked.");
	else if (info.pin_final_try)
		p11e_p11_add_detail(tok->p11,
		    " One more wrong PIN will lock "
		    "the token.");
	else if (info.pin_count_low)
		p11e_p11_add_detail(tok->p11,
		    " The token says few tries are "
		    "left.");
}

enum p11e_err
p11e_token_login(
    struct p11e_token *tok, const struct p11e_secret *pin, bool allow_final_try)
{
	struct p11e_secret *filepin = NULL;
	struct p11e_token_info info;
	const char *source;
	enum p11e_err err;
	CK_RV rv;

	if ((err = p11e_token_info(tok, &info)) != P11E_OK)
		return err;
	if (info.pin_locked) {
		p11e_p11_set_detail(
		    tok->p11, "The user PIN of '%s' is locked.", info.label);
		return P11E_ERR_PIN_LOCKED;
	}
	if (info.pin_to_be_changed) {
		p11e_p11_set_detail(tok->p11,
		    "'%s' requires its PIN to be "
		    "changed before use.",
		    info.label);
		return P11E_ERR_PIN_EXPIRED;
	}
	if (info.pin_final_try && !allow_final_try) {
		p11e_p11_set_detail(tok->p11,
		    "'%s': one more wrong PIN locks "
		    "it; not trying without an "
		    "explicit confirmation.",
		    info.label);
		return P11E_ERR_PIN_FINAL_TRY;
	}
	source = p11_kit_uri_get_pin_source(tok->uri);
	if (pin == NULL && source != NULL) {
		if ((err = pin_from_source(tok, source, &filepin)) != P11E_OK)
			return err;
		pin = filepin;
	}
	if (pin != NULL) {
		rv = tok->module->C_Login(tok->session, CKU_USER,
		    (CK_UTF8CHAR_PTR)p11e_secret_data(pin),
		    p11e_secret_len(pin));
	} else if (info.protected_auth) {
		p11e_info("enter the PIN on the reader of '%s'", info.label);
		rv = tok->module->C_Login(tok->session, CKU_USER, NULL, 0);
	} else {
		p11e_p11_set_detail(
		    tok->p11, "'%s' needs its PIN.", info.label);
		return P11E_ERR_PIN_REQUIRED;
	}
	p11e_secret_free(filepin);
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
		tok->logged_in = true;
		return P11E_OK;
	}
	err = p11e_ckr_err(tok, "C_Login", rv);
	if (err == P11E_ERR_PIN_INCORRECT) {
		p11e_p11_set_detail(tok->p11,
		    "'%s' refused the PIN; it is not tried again.", info.label);
		pin_counter_detail(tok);
	}
	return err;
}

void
p11e_token_logout(struct p11e_token *tok)
{
	CK_RV rv;

	if (tok == NULL || !tok->logged_in)
		return;
	rv = tok->module->C_Logout(tok->session);
	if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN)
		(void)p11e_ckr_err(tok, "C_Logout", rv);
	tok->logged_in = false;
}

/* ---- object helpers ----------------------------------------------------- */

enum p11e_err
p11e_tok_find(struct p11e_token *tok, CK_OBJECT_CLASS cls,
    const unsigned char *id, size_t idlen, CK_OBJECT_HANDLE *out, CK_ULONG max,
    CK_ULONG *n)
{
	CK_ATTRIBUTE tmpl[2];
	CK_ULONG nt = 0;
	CK_RV rv;

	*n = 0;
	if (cls != (CK_OBJECT_CLASS)-1) {
		tmpl[nt].type = CKA_CLASS;
		tmpl[nt].pValue = &cls;
		tmpl[nt].ulValueLen = sizeof(cls);
		nt++;
	}
	if (id != NULL) {
		tmpl[nt].type = CKA_ID;
		tmpl[nt].pValue = (void *)id;
		tmpl[nt].ulValueLen = idlen;
		nt++;
	}
	rv = tok->module->C_FindObjectsInit(tok->session, tmpl, nt);
	if (rv != CKR_OK)
		return p11e_ckr_err(tok, "C_FindObjectsInit", rv);
	rv = tok->module->C_FindObjects(tok->session, out, max, n);
	(void)tok->module->C_FindObjectsFinal(tok->session);
	if (rv != CKR_OK) {
		*n = 0;
		return p11e_ckr_err(tok, "C_FindObjects", rv);
	}
	return P11E_OK;
}

enum p11e_err
p11e_tok_attr(struct p11e_token *tok, CK_OBJECT_HANDLE obj,
    CK_ATTRIBUTE_TYPE type, size_t max, struct p11e_buf *out)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	enum p11e_err err;
	unsigned char *p;
	CK_RV rv;

	rv = tok->module->C_GetAttributeValue(tok->session, obj, &a, 1);
	if (rv != CKR_OK)
		return p11e_ckr_err(tok, "C_GetAttributeValue", rv);
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > max)
		return P11E_ERR_TOO_LARGE;
	if ((p = malloc(a.ulValueLen ? a.ulValueLen : 1)) == NULL)
		return P11E_ERR_NOMEM;
	a.pValue = p;
	rv = tok->module->C_GetAttributeValue(tok->session, obj, &a, 1);
	/* the module may not grow the value between the two calls */
	if (rv == CKR_OK && a.ulValueLen <= max)
		err = p11e_buf_append(out, p, a.ulValueLen);
	else
		err = rv == CKR_OK
		    ? P11E_ERR_TOO_LARGE
		    : p11e_ckr_err(tok, "C_GetAttributeValue", rv);
	free(p);
	return err;
}
