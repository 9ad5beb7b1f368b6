/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "agent/http.h"
#include "agent/methods.h"
#include "common/buf.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/secret.h"
#include "pkcs11/evp.h"
#include "pkcs11/p11.h"

/*
 * The administrator's side of the admin API (doc/protocol.md,
 * doc/ipc.md "Admin"): AdminLogin (client certificate on the token +
 * contract PIN: the grid challenge), AdminGrid (the card numbers: the
 * admin token), AdminStatus, AdminUsers, AdminCertificate, AdminAudit,
 * AdminLogout.
 *
 * Every call is a TLS connection with client authentication by the
 * administrator's key on the token: the token is opened and logged in
 * for the call and closed after it (DESIGN §6), so each call takes the
 * token PIN (or the pin-source of the URI).  The admin token and the
 * pending session id live only in this process's memory, in struct
 * p11e_secret (locked, wiped), never on disk; they are forgotten at
 * logout, on an answer saying they ended, and once the server's idle
 * timeout has passed since the last call (a deadline of the agent's
 * scheduler, p11e_agent_admin_tick()).  One admin session per agent.
 */

#define ADMIN_PARAMS                          \
	{ "pin", JSON_STRING, false },        \
	{                                     \
		"final_try", JSON_TRUE, false \
	}

static struct {
	char service[128];
	char uri[1024];
	unsigned char id[P11E_ID_MAX];
	size_t idlen;
	struct p11e_secret *session; /* pending: waiting for the grid */
	char challenge[2][16];
	struct p11e_secret *token; /* logged in */
	uint64_t idle; /* the server's idle timeout, s */
	time_t last_used;
	char expires[32];
} adm;

static void
forget(void)
{
	p11e_secret_free(adm.session);
	p11e_secret_free(adm.token);
	memset(&adm, 0, sizeof(adm));
}

/* Forgets a token idle for longer than the server keeps it. */
static void
expire(time_t now)
{
	if (adm.token != NULL && adm.idle > 0 &&
	    now - adm.last_used > (time_t)adm.idle) {
		p11e_info("the admin session ended after %llu idle seconds",
		    (unsigned long long)adm.idle);
		forget();
	}
}

bool
p11e_agent_admin_busy(void)
{
	return adm.session != NULL || adm.token != NULL;
}

time_t
p11e_agent_admin_tick(time_t now)
{
	expire(now);
	return adm.token != NULL ? adm.last_used + (time_t)adm.idle + 1 : 0;
}

/* ---- the connection: token, key, certificate, service ---- */

struct conn {
	struct p11e_p11 *p11;
	struct p11e_token *tok;
	struct p11e_evp_key *key;
	X509 *cert;
	struct p11e_http *h;
};

static void
conn_close(struct conn *c)
{
	/* the TLS client key goes before the libp11 context it lives in */
	p11e_http_free(c->h);
	p11e_evp_key_free(c->key);
	X509_free(c->cert);
	p11e_token_close(c->tok);
	p11e_p11_free(c->p11);
	memset(c, 0, sizeof(*c));
}

struct find {
	unsigned char id[P11E_ID_MAX];
	size_t idlen; /* 0: any */
	unsigned char key_ids[16][P11E_ID_MAX];
	size_t key_idlens[16];
	size_t n_keys;
	X509 *found;
	unsigned char found_id[P11E_ID_MAX];
	size_t found_idlen;
	size_t n_found;
};

static void
collect_keys(void *data, const struct p11e_object_info *o)
{
	struct find *f = data;

	if (strcmp(o->kind, "private-key") == 0 && f->n_keys < 16) {
		memcpy(f->key_ids[f->n_keys], o->id, o->idlen);
		f->key_idlens[f->n_keys++] = o->idlen;
	}
}

static void
collect_cert(void *data, const struct p11e_object_info *o)
{
	struct find *f = data;
	const unsigned char *p = o->der;
	bool has_key = false;
	size_t i;

	if (strcmp(o->kind, "certificate") != 0 || o->authority ||
	    o->der == NULL)
		return;
	if (f->idlen > 0 &&
	    (o->idlen != f->idlen || memcmp(o->id, f->id, f->idlen) != 0))
		return;
	for (i = 0; i < f->n_keys; i++)
		if (f->key_idlens[i] == o->idlen &&
		    memcmp(f->key_ids[i], o->id, o->idlen) == 0)
			has_key = true;
	if (!has_key)
		return;
	f->n_found++;
	X509_free(f->found);
	f->found = d2i_X509(NULL, &p, (long)o->der_len);
	memcpy(f->found_id, o->id, o->idlen);
	f->found_idlen = o->idlen;
}

static bool
has_service(const struct p11e_conf *conf, const char *name)
{
	char section[160];

	snprintf(section, sizeof(section), "service %s", name);
	return conf != NULL && p11e_conf_get_str(conf, section, "url") != NULL;
}

static enum p11e_err
http_for(struct p11e_agent *agent, const char *name, struct p11e_http **out,
    char *detail)
{
	struct p11e_http_service svc;
	struct p11e_conf *user = NULL;
	const struct p11e_conf *conf = NULL;
	char section[160];
	enum p11e_err err;

	if (has_service(agent->conf, name))
		conf = agent->conf;
	else if (p11e_agent_user_conf(agent, &user) == P11E_OK &&
	    has_service(user, name))
		conf = user;
	if (conf == NULL) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "no service '%.64s' with a url (p11enroll status lists "
		    "the services)",
		    name);
		p11e_conf_free(user);
		return P11E_ERR_UNKNOWN_SERVICE;
	}
	snprintf(section, sizeof(section), "service %s", name);
	memset(&svc, 0, sizeof(svc));
	svc.url = p11e_conf_get_str(conf, section, "url");
	svc.server_pin = p11e_conf_get_str(conf, section, "server-pin");
	svc.ca_file = p11e_conf_get_str(conf, section, "ca-file");
	svc.proxy = p11e_conf_get_str(conf, section, "proxy");
	err = p11e_http_new(&svc, out);
	p11e_conf_free(user);
	return err;
}

/*
 * Opens the token of adm.uri with the call's PIN, finds the
 * administrator's certificate (adm.id, or the only certificate with a
 * private key), and a client for adm.service with that key.
 */
static enum p11e_err
conn_open(
    struct p11e_agent *agent, json_t *params, struct conn *c, char *detail)
{
	json_t *jpin = json_object_get(params, "pin");
	struct p11e_secret *pin = NULL;
	struct find f;
	enum p11e_err err;

	memset(c, 0, sizeof(*c));
	memset(&f, 0, sizeof(f));
	if (jpin != NULL &&
	    (pin = p11e_secret_new_from(
		 json_string_value(jpin), json_string_length(jpin))) == NULL) {
		snprintf(
		    detail, P11E_DETAIL_MAX, "the PIN is empty or too long");
		return P11E_ERR_INVALID_PARAMETER;
	}
	if ((err = p11e_p11_new(&c->p11)) != P11E_OK ||
	    (err = p11e_token_open(c->p11, adm.uri, &c->tok)) != P11E_OK ||
	    (err = p11e_token_login(c->tok, pin,
		 json_is_true(json_object_get(params, "final_try")))) !=
		P11E_OK) {
		if (c->p11 != NULL && p11e_p11_detail(c->p11)[0] != '\0')
			snprintf(detail, P11E_DETAIL_MAX, "%s",
			    p11e_p11_detail(c->p11));
		goto out;
	}
	memcpy(f.id, adm.id, adm.idlen);
	f.idlen = adm.idlen;
	if ((err = p11e_token_objects(c->tok, collect_keys, &f)) != P11E_OK ||
	    (err = p11e_token_objects(c->tok, collect_cert, &f)) != P11E_OK)
		goto out;
	if (f.n_found != 1 || f.found == NULL) {
		snprintf(detail, P11E_DETAIL_MAX,
		    f.n_found == 0
			? "no certificate with its private key on the token%s"
			: "several certificates with keys on the token: give "
			  "the administrator's with --id%s",
		    adm.idlen > 0 ? " for that id" : "");
		err = f.n_found == 0 ? P11E_ERR_KEY_NOT_FOUND
				     : P11E_ERR_TOKEN_AMBIGUOUS;
		goto out;
	}
	c->cert = f.found;
	f.found = NULL;
	memcpy(adm.id, f.found_id, f.found_idlen);
	adm.idlen = f.found_idlen;
	if ((err = p11e_token_evp_key(c->tok, adm.id, adm.idlen, &c->key)) !=
		P11E_OK ||
	    (err = http_for(agent, adm.service, &c->h, detail)) != P11E_OK ||
	    (err = p11e_http_set_client_key(
		 c->h, p11e_evp_key_pkey(c->key), c->cert, NULL)) != P11E_OK)
		goto out;
out:
	X509_free(f.found);
	p11e_secret_free(pin);
	if (err != P11E_OK)
		conn_close(c);
	return err;
}

/* What an admin problem means for the administrator. */
static enum p11e_err
admin_problem(
    const struct p11e_http_admin_reply *r, enum p11e_err err, char *detail)
{
	static const struct {
		const char *type;
		enum p11e_err err;
		const char *text;
	} texts[] = {
		{ "invalid-credentials", P11E_ERR_AUTH_FAILED,
		    "the contract PIN (ご契約先暗証番号) is wrong (5 failures "
		    "in a row lock the administrator)" },
		{ "grid-mismatch", P11E_ERR_AUTH_FAILED,
		    "the customer card numbers are wrong: the same two cells "
		    "are asked again (3 failures in a row lock the "
		    "administrator)" },
		{ "confirmation-pin-mismatch", P11E_ERR_AUTH_FAILED,
		    "the confirmation PIN (ご契約先確認暗証番号) is wrong: "
		    "nothing was done" },
		{ "account-locked", P11E_ERR_LOCKED,
		    "the administrator is locked after too many failures: ask "
		    "the bank to unlock it" },
		{ "invalid-token", P11E_ERR_CREDENTIALS_REQUIRED,
		    "the admin session has ended (idle timeout, logout or "
		    "lock): p11enroll admin login" },
		{ "not-admin", P11E_ERR_SERVER_REFUSED,
		    "this certificate is not an administrator's" },
		{ "unknown-user", P11E_ERR_NOT_FOUND,
		    "no such user in the contract" },
		{ "user-exists", P11E_ERR_EXISTS,
		    "the contract has a user with this ID already" },
		{ "window-open", P11E_ERR_EXISTS,
		    "an acquisition window is open already: admin keep closes "
		    "it" },
		{ "certificate-revoked", P11E_ERR_CERT_REVOKED,
		    "the administrator's certificate is revoked or no longer "
		    "current" },
		{ "certificate-required", P11E_ERR_CERT_REVOKED,
		    "the server does not accept the administrator's "
		    "certificate (expired, or not issued by its CA)" },
	};
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (strcmp(r->type, texts[i].type) == 0) {
			snprintf(detail, P11E_DETAIL_MAX, "%s", texts[i].text);
			err = texts[i].err;
			break;
		}
	if (strcmp(r->type, "invalid-token") == 0 ||
	    strcmp(r->type, "account-locked") == 0 ||
	    strcmp(r->type, "certificate-revoked") == 0)
		forget();
	return err;
}

/*
 * One call on an open connection: body (a JSON object that may hold
 * PINs: serialised into wiped memory) or NULL.
 */
static enum p11e_err
call(struct conn *c, const char *method, const char *path, json_t *body,
    bool bearer, struct p11e_http_admin_reply *r, char *detail)
{
	struct p11e_buf b;
	enum p11e_err err = P11E_OK;
	json_malloc_t jm;
	json_free_t jf;
	char *text = NULL;

	p11e_buf_init_wiped(&b, 64 * 1024);
	if (body != NULL) {
		if ((text = json_dumps(body, JSON_COMPACT)) == NULL ||
		    (err = p11e_buf_append(&b, text, strlen(text))) !=
			P11E_OK) {
			err = err != P11E_OK ? err : P11E_ERR_NOMEM;
			goto out;
		}
	}
	err = p11e_http_admin(c->h, method, path, body ? &b : NULL,
	    bearer ? adm.token : NULL, r, detail, P11E_DETAIL_MAX);
	if (err != P11E_OK && r->type[0] != '\0')
		err = admin_problem(r, err, detail);
	if (err == P11E_OK && bearer)
		adm.last_used = time(NULL);
out:
	if (text != NULL) {
		p11e_wipe(text, strlen(text));
		json_get_alloc_funcs(&jm, &jf);
		jf(text);
	}
	p11e_buf_clear(&b);
	return err;
}

static enum p11e_err
need_token(char *detail)
{
	expire(time(NULL));
	if (adm.token != NULL)
		return P11E_OK;
	snprintf(
	    detail, P11E_DETAIL_MAX, "no admin session: p11enroll admin login");
	return P11E_ERR_CREDENTIALS_REQUIRED;
}

/* ---- methods ---- */

enum p11e_err
p11e_method_admin_login(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		{ "service", JSON_STRING, true },
		{ "uri", JSON_STRING, true },
		{ "id", JSON_STRING, false },
		{ "contract_pin", JSON_STRING, true },
		ADMIN_PARAMS,
		{ NULL, 0, false },
	};
	struct p11e_http_admin_reply r;
	const char *s, *id;
	json_t *body = NULL, *ch;
	struct conn c;
	enum p11e_err err;
	size_t i, n;

	memset(&r, 0, sizeof(r));
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		return err;
	/* a new login replaces the session this agent held */
	forget();
	snprintf(adm.service, sizeof(adm.service), "%s",
	    json_string_value(json_object_get(params, "service")));
	snprintf(adm.uri, sizeof(adm.uri), "%s",
	    json_string_value(json_object_get(params, "uri")));
	if ((id = json_string_value(json_object_get(params, "id"))) != NULL) {
		n = strlen(id);
		if (n == 0 || n % 2 != 0 || n / 2 > P11E_ID_MAX) {
			snprintf(detail, P11E_DETAIL_MAX,
			    "an id is 1 to %d bytes in hex", P11E_ID_MAX);
			forget();
			return P11E_ERR_INVALID_PARAMETER;
		}
		for (i = 0; i < n / 2; i++) {
			unsigned int v;

			if (sscanf(id + 2 * i, "%2x", &v) != 1) {
				snprintf(detail, P11E_DETAIL_MAX,
				    "'%.80s' is not hex", id);
				forget();
				return P11E_ERR_INVALID_PARAMETER;
			}
			adm.id[i] = (unsigned char)v;
		}
		adm.idlen = n / 2;
	}
	if ((err = conn_open(agent, params, &c, detail)) != P11E_OK) {
		forget();
		return err;
	}
	body =
	    json_pack("{s:O}", "pin", json_object_get(params, "contract_pin"));
	err =
	    call(&c, "POST", "/api/v1/admin/session", body, false, &r, detail);
	json_decref(body);
	conn_close(&c);
	if (err != P11E_OK)
		goto fail;
	ch = json_object_get(r.json, "challenge");
	s = json_string_value(json_object_get(r.json, "session"));
	if (s == NULL || json_array_size(ch) != 2 ||
	    !json_is_string(json_array_get(ch, 0)) ||
	    !json_is_string(json_array_get(ch, 1)) ||
	    (adm.session = p11e_secret_new_from(s, strlen(s))) == NULL) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "the server's session answer is not as expected");
		err = P11E_ERR_BAD_RESPONSE;
		goto fail;
	}
	for (i = 0; i < 2; i++)
		snprintf(adm.challenge[i], sizeof(adm.challenge[i]), "%s",
		    json_string_value(json_array_get(ch, i)));
	*result = json_pack("{s:[s,s], s:s?}", "challenge", adm.challenge[0],
	    adm.challenge[1], "expires",
	    json_string_value(json_object_get(r.json, "expires")));
	json_decref(r.json);
	return *result ? P11E_OK : P11E_ERR_NOMEM;
fail:
	json_decref(r.json);
	forget();
	return err;
}

enum p11e_err
p11e_method_admin_grid(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		{ "answers", JSON_ARRAY, true },
		ADMIN_PARAMS,
		{ NULL, 0, false },
	};
	struct p11e_http_admin_reply r;
	json_t *body = NULL, *ans = json_object_get(params, "answers");
	const char *t;
	struct conn c;
	enum p11e_err err;

	memset(&r, 0, sizeof(r));
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		return err;
	if (json_array_size(ans) != 2 ||
	    !json_is_string(json_array_get(ans, 0)) ||
	    !json_is_string(json_array_get(ans, 1))) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "answers: the two numbers of the card, as strings");
		return P11E_ERR_INVALID_PARAMETER;
	}
	if (adm.session == NULL) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "no pending login: p11enroll admin login");
		return P11E_ERR_CREDENTIALS_REQUIRED;
	}
	if ((err = conn_open(agent, params, &c, detail)) != P11E_OK)
		return err;
	body = json_pack("{s:s%, s:O}", "session", p11e_secret_str(adm.session),
	    p11e_secret_len(adm.session), "answers", ans);
	err = call(
	    &c, "POST", "/api/v1/admin/session/grid", body, false, &r, detail);
	json_decref(body);
	conn_close(&c);
	if (err != P11E_OK) {
		json_decref(r.json);
		return err;
	}
	t = json_string_value(json_object_get(r.json, "token"));
	if (t == NULL ||
	    (adm.token = p11e_secret_new_from(t, strlen(t))) == NULL) {
		json_decref(r.json);
		snprintf(detail, P11E_DETAIL_MAX,
		    "the server's answer has no admin token");
		return P11E_ERR_BAD_RESPONSE;
	}
	p11e_secret_free(adm.session);
	adm.session = NULL;
	adm.idle = (uint64_t)json_integer_value(
	    json_object_get(r.json, "idle_timeout"));
	adm.last_used = time(NULL);
	snprintf(adm.expires, sizeof(adm.expires), "%s",
	    json_string_value(json_object_get(r.json, "expires"))
		? json_string_value(json_object_get(r.json, "expires"))
		: "");
	json_decref(r.json);
	*result = json_pack("{s:I, s:s}", "idle_timeout", (json_int_t)adm.idle,
	    "expires", adm.expires);
	return *result ? P11E_OK : P11E_ERR_NOMEM;
}

enum p11e_err
p11e_method_admin_status(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = { { NULL, 0, false } };
	enum p11e_err err;
	time_t now = time(NULL);

	(void)agent;
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		return err;
	expire(now);
	*result = json_pack("{s:b, s:b, s:s?, s:s?}", "logged_in",
	    adm.token != NULL, "pending", adm.session != NULL, "service",
	    adm.service[0] ? adm.service : NULL, "uri",
	    adm.uri[0] ? adm.uri : NULL);
	if (*result != NULL && adm.session != NULL)
		json_object_set_new(*result, "challenge",
		    json_pack("[s,s]", adm.challenge[0], adm.challenge[1]));
	if (*result != NULL && adm.token != NULL) {
		json_object_set_new(*result, "idle_left",
		    json_integer((json_int_t)adm.idle -
			(json_int_t)(now - adm.last_used)));
		json_object_set_new(
		    *result, "expires", json_string(adm.expires));
	}
	return *result ? P11E_OK : P11E_ERR_NOMEM;
}

/* GET path with the admin token: the server's answer as the result. */
static enum p11e_err
admin_get(struct p11e_agent *agent, json_t *params, const char *path,
    json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		ADMIN_PARAMS,
		{ NULL, 0, false },
	};
	struct p11e_http_admin_reply r;
	struct conn c;
	enum p11e_err err;

	memset(&r, 0, sizeof(r));
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK ||
	    (err = need_token(detail)) != P11E_OK ||
	    (err = conn_open(agent, params, &c, detail)) != P11E_OK)
		return err;
	err = call(&c, "GET", path, NULL, true, &r, detail);
	conn_close(&c);
	if (err != P11E_OK) {
		json_decref(r.json);
		return err;
	}
	*result = r.json;
	return P11E_OK;
}

enum p11e_err
p11e_method_admin_users(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	return admin_get(agent, params, "/api/v1/admin/users", result, detail);
}

enum p11e_err
p11e_method_admin_audit(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	return admin_get(agent, params, "/api/v1/admin/audit", result, detail);
}

/*
 * POST users/{user}/what (certificate, unlock or otp) with the checked
 * params.
 */
static enum p11e_err
user_post(struct p11e_agent *agent, json_t *params, const char *what,
    json_t **result, char *detail)
{
	struct p11e_http_admin_reply r;
	const char *user = json_string_value(json_object_get(params, "user"));
	char path[128];
	json_t *body;
	struct conn c;
	enum p11e_err err;
	size_t i;

	memset(&r, 0, sizeof(r));
	/* a user ID is 1..30 letters and digits (it goes into the path) */
	for (i = 0; user[i] != '\0'; i++)
		if (!((user[i] >= '0' && user[i] <= '9') ||
			(user[i] >= 'a' && user[i] <= 'z') ||
			(user[i] >= 'A' && user[i] <= 'Z')))
			break;
	if (i == 0 || i > 30 || user[i] != '\0') {
		snprintf(detail, P11E_DETAIL_MAX,
		    "a user ID is 1 to 30 letters and digits");
		return P11E_ERR_INVALID_PARAMETER;
	}
	if ((err = need_token(detail)) != P11E_OK ||
	    (err = conn_open(agent, params, &c, detail)) != P11E_OK)
		return err;
	snprintf(path, sizeof(path), "/api/v1/admin/users/%s/%s", user, what);
	body = json_pack("{s:O}", "confirmation_pin",
	    json_object_get(params, "confirmation_pin"));
	if (body != NULL && json_object_get(params, "action") != NULL)
		json_object_set(
		    body, "action", json_object_get(params, "action"));
	if (body != NULL && json_object_get(params, "reason") != NULL)
		json_object_set(
		    body, "reason", json_object_get(params, "reason"));
	err = call(&c, "POST", path, body, true, &r, detail);
	json_decref(body);
	conn_close(&c);
	if (err != P11E_OK) {
		json_decref(r.json);
		return err;
	}
	*result = r.json;
	return P11E_OK;
}

enum p11e_err
p11e_method_admin_certificate(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		{ "user", JSON_STRING, true },
		{ "action", JSON_STRING, true },
		{ "reason", JSON_STRING, false },
		{ "confirmation_pin", JSON_STRING, true },
		ADMIN_PARAMS,
		{ NULL, 0, false },
	};
	enum p11e_err err;

	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		return err;
	return user_post(agent, params, "certificate", result, detail);
}

/* {user, confirmation_pin} to POST users/{user}/what (unlock, otp). */
static enum p11e_err
user_confirmed(struct p11e_agent *agent, json_t *params, const char *what,
    json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		{ "user", JSON_STRING, true },
		{ "confirmation_pin", JSON_STRING, true },
		ADMIN_PARAMS,
		{ NULL, 0, false },
	};
	enum p11e_err err;

	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		return err;
	return user_post(agent, params, what, result, detail);
}

enum p11e_err
p11e_method_admin_unlock(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	return user_confirmed(agent, params, "unlock", result, detail);
}

enum p11e_err
p11e_method_admin_otp(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	return user_confirmed(agent, params, "otp", result, detail);
}

enum p11e_err
p11e_method_admin_user_add(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		{ "user_id", JSON_STRING, true },
		{ "name", JSON_STRING, true },
		{ "password", JSON_STRING, true },
		{ "confirmation_pin", JSON_STRING, true },
		ADMIN_PARAMS,
		{ NULL, 0, false },
	};
	struct p11e_http_admin_reply r;
	json_t *body;
	struct conn c;
	enum p11e_err err;

	memset(&r, 0, sizeof(r));
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK ||
	    (err = need_token(detail)) != P11E_OK ||
	    (err = conn_open(agent, params, &c, detail)) != P11E_OK)
		return err;
	body = json_pack("{s:O, s:O, s:O, s:O}", "user_id",
	    json_object_get(params, "user_id"), "name",
	    json_object_get(params, "name"), "password",
	    json_object_get(params, "password"), "confirmation_pin",
	    json_object_get(params, "confirmation_pin"));
	err = call(&c, "POST", "/api/v1/admin/users", body, true, &r, detail);
	json_decref(body);
	conn_close(&c);
	if (err != P11E_OK) {
		json_decref(r.json);
		return err;
	}
	*result = r.json;
	return P11E_OK;
}

enum p11e_err
p11e_method_admin_logout(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		ADMIN_PARAMS,
		{ NULL, 0, false },
	};
	struct p11e_http_admin_reply r;
	struct conn c;
	enum p11e_err err;

	memset(&r, 0, sizeof(r));
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		return err;
	expire(time(NULL));
	if (adm.token != NULL) {
		if ((err = conn_open(agent, params, &c, detail)) != P11E_OK)
			return err;
		err = call(&c, "DELETE", "/api/v1/admin/session", NULL, true,
		    &r, detail);
		conn_close(&c);
		json_decref(r.json);
		/* an already-ended session is logged out too */
		if (err == P11E_ERR_CREDENTIALS_REQUIRED)
			err = P11E_OK;
	}
	forget();
	if (err != P11E_OK)
		return err;
	*result = json_object();
	return *result ? P11E_OK : P11E_ERR_NOMEM;
}
