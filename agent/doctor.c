/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "agent/http.h"
#include "agent/journal.h"
#include "agent/methods.h"
#include "common/log.h"
#include "pkcs11/p11.h"

/*
 * Doctor (doc/ipc.md): what the agent can see of the user's setup — the
 * p11-kit modules, each credential's token, its key and certificate
 * there, its chain and expiry, and each service over TLS with its pinned
 * key.  Reads only: no login, no object written or removed, no record
 * saved.
 */

#define MODULES_MAX 16
#define SERVICES_MAX 32

static enum p11e_err
add(json_t *checks, const char *check, const char *subject, const char *status,
    const char *message, const char *fix)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "check", check, "subject",
	    subject, "status", status, "message", message);

	if (o == NULL)
		return P11E_ERR_NOMEM;
	if (fix != NULL && fix[0] != '\0')
		json_object_set_new(o, "fix", json_string(fix));
	return json_array_append_new(checks, o) == 0 ? P11E_OK : P11E_ERR_NOMEM;
}

/* ---- p11-kit ---- */

struct modules {
	char name[MODULES_MAX][128];
	unsigned int tokens[MODULES_MAX];
	size_t n;
};

static void
module_cb(void *data, const struct p11e_token_info *info)
{
	struct modules *m = data;
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcmp(m->name[i], info->module) == 0)
			break;
	if (i == m->n) {
		if (m->n == MODULES_MAX)
			return;
		snprintf(m->name[i], sizeof(m->name[i]), "%s", info->module);
		m->n++;
	}
	if (info->present)
		m->tokens[i]++;
}

static enum p11e_err
check_modules(json_t *checks)
{
	const char *dbg = getenv("P11_KIT_DEBUG");
	struct modules m;
	struct p11e_p11 *p11 = NULL;
	char msg[1024];
	size_t count = 0, i, off = 0;
	enum p11e_err err;

	memset(&m, 0, sizeof(m));
	if (dbg != NULL &&
	    (strstr(dbg, "rpc") != NULL || strstr(dbg, "all") != NULL)) {
		snprintf(msg, sizeof(msg),
		    "the agent runs with P11_KIT_DEBUG=%s: p11-kit logs the "
		    "PKCS#11 calls, the PIN of C_Login included",
		    dbg);
		if ((err = add(checks, "p11kit-logging", "agent", "problem",
			 msg,
			 "unset P11_KIT_DEBUG where the agent is started "
			 "(the login session, the systemd user unit), then "
			 "stop the agent: the next p11enroll command starts it "
			 "again")) != P11E_OK)
			return err;
	}
	if ((err = p11e_p11_new(&p11)) != P11E_OK ||
	    (err = p11e_p11_tokens(p11, NULL, module_cb, &m, &count)) !=
		P11E_OK) {
		snprintf(msg, sizeof(msg),
		    "p11-kit could not load the modules%s%s",
		    p11 != NULL && p11e_p11_detail(p11)[0] ? ": " : "",
		    p11 != NULL ? p11e_p11_detail(p11) : "");
		p11e_p11_free(p11);
		return add(checks, "p11kit-modules", "p11-kit", "problem", msg,
		    "check the module files (p11-kit list-modules shows "
		    "what p11-kit makes of them)");
	}
	p11e_p11_free(p11);
	if (m.n == 0)
		return add(checks, "p11kit-modules", "p11-kit", "problem",
		    "p11-kit lists no PKCS#11 module",
		    "install the module of your token (for smart cards the "
		    "Debian package opensc; it registers itself with "
		    "p11-kit)");
	off = (size_t)snprintf(msg, sizeof(msg), "modules:");
	for (i = 0; i < m.n && off < sizeof(msg); i++)
		off += (size_t)snprintf(msg + off, sizeof(msg) - off,
		    " %s (%u token%s)%s", m.name[i], m.tokens[i],
		    m.tokens[i] == 1 ? "" : "s", i + 1 < m.n ? "," : "");
	return add(checks, "p11kit-modules", "p11-kit", "ok", msg, NULL);
}

/* ---- one credential on its token ---- */

struct found {
	const struct p11e_cred *c;
	bool cert, cert_same, pub;
};

static void
object_cb(void *data, const struct p11e_object_info *o)
{
	struct found *f = data;

	if (o->idlen != f->c->idlen || memcmp(o->id, f->c->id, o->idlen) != 0 ||
	    o->authority)
		return;
	if (strcmp(o->kind, "certificate") == 0) {
		f->cert = true;
		f->cert_same |= o->der_len == f->c->cert.len &&
		    memcmp(o->der, f->c->cert.data, o->der_len) == 0;
	} else if (strcmp(o->kind, "public-key") == 0) {
		f->pub = true;
	}
}

/* The certificate's SubjectPublicKeyInfo equals the journaled key's. */
static bool
spki_matches(const struct p11e_cred *c, X509 *x)
{
	unsigned char *der = NULL;
	bool same;
	int len;

	if ((len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der)) <= 0)
		return false;
	same = (size_t)len == c->spki.len &&
	    memcmp(der, c->spki.data, c->spki.len) == 0;
	OPENSSL_free(der);
	return same;
}

static enum p11e_err
check_token(json_t *checks, const struct p11e_cred *c, X509 *x)
{
	struct p11e_p11 *p11 = NULL;
	struct p11e_token *tok = NULL;
	struct found f = { c, false, false, false };
	char msg[1600];
	enum p11e_err err;

	if ((err = p11e_p11_new(&p11)) != P11E_OK ||
	    (err = p11e_token_open(p11, c->token_uri, &tok)) != P11E_OK) {
		snprintf(msg, sizeof(msg),
		    "the token '%s' (serial %s) is not present%s%.1024s",
		    c->token_label, c->token_serial,
		    p11 != NULL && p11e_p11_detail(p11)[0] ? ": " : "",
		    p11 != NULL ? p11e_p11_detail(p11) : "");
		p11e_p11_free(p11);
		return add(checks, "token", c->name, "problem", msg,
		    "insert the token (or start its service), and check that "
		    "p11-kit lists its module (p11enroll tokens)");
	}
	snprintf(msg, sizeof(msg), "the token '%s' (serial %s) is present",
	    c->token_label, c->token_serial);
	if ((err = add(checks, "token", c->name, "ok", msg, NULL)) != P11E_OK ||
	    (err = p11e_token_objects(tok, object_cb, &f)) != P11E_OK) {
		p11e_token_close(tok);
		p11e_p11_free(p11);
		return err == P11E_ERR_NOMEM ? err : P11E_OK;
	}
	p11e_token_close(tok);
	p11e_p11_free(p11);
	if (!f.cert || !f.cert_same)
		return add(checks, "pairing", c->name, "problem",
		    f.cert ? "the certificate with the key's id on the token "
			     "is not the one the agent enrolled"
			   : "the certificate is not on the token",
		    "put it back from the agent's record: p11enroll enroll "
		    "--resume, or enroll again");
	if (!f.pub)
		return add(checks, "pairing", c->name, "problem",
		    "the certificate is on the token, but no key with its id "
		    "is: browsers cannot use it",
		    "enroll again (p11enroll enroll): the certificate is "
		    "useless without its key");
	if (!spki_matches(c, x))
		return add(checks, "pairing", c->name, "problem",
		    "the certificate's public key is not the key the agent "
		    "made",
		    "enroll again (p11enroll enroll)");
	return add(checks, "pairing", c->name, "ok",
	    "certificate and key with the same id, the certificate's public "
	    "key the one the agent made",
	    NULL);
}

static enum p11e_err
check_chain(json_t *checks, const struct p11e_cred *c, X509 *x, time_t now)
{
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_STORE *store = NULL;
	char msg[600], when[40];
	struct tm tm;
	size_t i;
	int ok = -1, verr = 0;

	if ((store = X509_STORE_new()) != NULL &&
	    (ctx = X509_STORE_CTX_new()) != NULL) {
		for (i = 0; i < c->nchain; i++) {
			const unsigned char *p = c->chain[i].data;
			X509 *ca = d2i_X509(NULL, &p, (long)c->chain[i].len);

			if (ca != NULL)
				X509_STORE_add_cert(store, ca);
			X509_free(ca);
		}
		X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
		if (X509_STORE_CTX_init(ctx, store, x, untrusted) == 1) {
			X509_STORE_CTX_set_time(ctx, 0, now);
			ok = X509_verify_cert(ctx);
			verr = X509_STORE_CTX_get_error(ctx);
		}
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	gmtime_r(&c->not_after, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	if (verr == X509_V_ERR_CERT_HAS_EXPIRED || c->not_after <= now) {
		snprintf(
		    msg, sizeof(msg), "the certificate expired on %s", when);
		return add(checks, "chain", c->name, "problem", msg,
		    "ask your administrator to reissue, then enroll again");
	}
	if (ok != 1) {
		snprintf(msg, sizeof(msg),
		    "the certificate does not verify to the CA chain the "
		    "service gave (%zu certificate%s): %s",
		    c->nchain, c->nchain == 1 ? "" : "s",
		    X509_verify_cert_error_string(verr));
		return add(checks, "chain", c->name, "problem", msg,
		    "enroll again; if it stays so, tell your administrator");
	}
	if (c->not_after - now < 7 * 86400 && c->state == P11E_CRED_INSTALLED) {
		snprintf(msg, sizeof(msg),
		    "the certificate verifies to the service's CA, but "
		    "expires on %s",
		    when);
		return add(checks, "chain", c->name, "warning", msg,
		    "p11enroll list says when the agent renews it; "
		    "p11enroll renew renews it now");
	}
	snprintf(msg, sizeof(msg),
	    "the certificate verifies to the service's CA (%zu certificate%s), "
	    "valid until %s",
	    c->nchain, c->nchain == 1 ? "" : "s", when);
	return add(checks, "chain", c->name, "ok", msg, NULL);
}

/* ---- the services ---- */

static enum p11e_err
check_service(struct p11e_agent *agent, json_t *checks, const char *name)
{
	char detail[P11E_DETAIL_MAX] = "", msg[P11E_DETAIL_MAX + 200];
	STACK_OF(X509) *ca = NULL;
	struct p11e_http *h = NULL;
	enum p11e_err err;

	if ((err = p11e_agent_service_http(agent, name, &h, detail)) == P11E_OK)
		err = p11e_http_cacerts(h, &ca, detail, sizeof(detail));
	sk_X509_pop_free(ca, X509_free);
	p11e_http_free(h);
	if (err == P11E_ERR_NOMEM)
		return err;
	if (err == P11E_OK)
		return add(checks, "server", name, "ok",
		    "reached over TLS; the server's key is the pinned one",
		    NULL);
	snprintf(msg, sizeof(msg), "%s: %s", p11e_err_name(err),
	    detail[0] ? detail : p11e_strerror(err));
	return add(checks, "server", name, "problem", msg,
	    err == P11E_ERR_SERVER_UNTRUSTED
		? "the server's key is not the one in the invitation: do "
		  "not log in; ask your administrator"
		: "check the network (and proxy) and that the service is "
		  "running; p11enroll status shows its URL");
}

struct walk {
	struct p11e_agent *agent;
	json_t *checks;
	char services[SERVICES_MAX][P11E_CRED_NAME_MAX + 1];
	size_t n_services;
	time_t now;
	enum p11e_err err;
};

static void
cred_cb(void *data, const char *name, const struct p11e_cred *c,
    const char *problem)
{
	struct walk *w = data;
	const unsigned char *p;
	X509 *x = NULL;
	size_t i;

	if (w->err != P11E_OK)
		return;
	if (c == NULL) {
		w->err = add(w->checks, "record", name, "problem", problem,
		    "the agent's log says more; move the file out of the "
		    "credentials directory and enroll again");
		return;
	}
	for (i = 0; i < w->n_services; i++)
		if (strcmp(w->services[i], c->service) == 0)
			break;
	if (i == w->n_services && i < SERVICES_MAX)
		snprintf(w->services[w->n_services++], sizeof(w->services[0]),
		    "%s", c->service);
	p = c->cert.data;
	if (c->cert.len == 0 ||
	    (x = d2i_X509(NULL, &p, (long)c->cert.len)) == NULL) {
		w->err = add(w->checks, "record", name, "warning",
		    "no certificate yet (the enrollment did not finish)",
		    "p11enroll enroll --resume finishes it");
		return;
	}
	if ((w->err = check_token(w->checks, c, x)) == P11E_OK)
		w->err = check_chain(w->checks, c, x, w->now);
	X509_free(x);
}

enum p11e_err
p11e_method_doctor(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param none[] = { { NULL, 0, false } };
	struct walk w;
	enum p11e_err err;
	size_t i;

	if ((err = p11e_params_check(params, none, detail)) != P11E_OK)
		return err;
	memset(&w, 0, sizeof(w));
	w.agent = agent;
	w.now = p11e_http_now();
	if ((w.checks = json_array()) == NULL)
		return P11E_ERR_NOMEM;
	if ((err = check_modules(w.checks)) != P11E_OK)
		goto out;
	if (agent->state_dir[0] != '\0')
		(void)p11e_journal_list(agent->state_dir, cred_cb, &w);
	if ((err = w.err) != P11E_OK)
		goto out;
	for (i = 0; i < w.n_services && err == P11E_OK; i++)
		err = check_service(agent, w.checks, w.services[i]);
	if (err == P11E_OK &&
	    (*result = json_pack("{s:O}", "checks", w.checks)) == NULL)
		err = P11E_ERR_NOMEM;
out:
	json_decref(w.checks);
	return err;
}
