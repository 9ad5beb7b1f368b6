/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "agent/est.h"
#include "agent/http.h"
#include "agent/journal.h"
#include "agent/methods.h"
#include "common/conf.h"
#include "common/crashpoint.h"
#include "common/log.h"
#include "common/rundir.h"
#include "common/secret.h"
#include "pkcs11/p11.h"

/*
 * The user enrollment (DESIGN §6, doc/ipc.md "Enrollment methods"):
 * EnrollKey journals the key id, generates the key and journals its
 * SPKI; Enroll takes the record from whatever state it is in to
 * INSTALLED, journaling each step before its side effect.  Both block
 * the agent while they run (XXX: the agent is single-threaded; an
 * enrollment takes about a second on SoftHSM2, longer on a card).
 */

#define RETRY_202_MAX 3
/*
 * A busy session endpoint (429 + Retry-After) is asked again this many
 * times, waiting at most this long in all: the same one-time password is
 * sent again (the RA limits the rate before it checks any factor), and
 * the RA takes a code only within a step of its time.
 */
#define SESSION_RETRY_MAX 3
#define SESSION_WAIT_MAX 30

/*
 * Every enrollment method works in the state directory; an agent without
 * one (the IPC fuzz target) must not touch the file system or network.
 */
static enum p11e_err
need_state_dir(const struct p11e_agent *agent, char *detail)
{
	if (agent->state_dir[0] == '/')
		return P11E_OK;
	snprintf(detail, P11E_DETAIL_MAX, "the agent has no state directory");
	return P11E_ERR_CONFIG;
}

/* ---- services: the system configuration, then the user's ---- */

struct find {
	const char *name;
	bool found;
};

static void
find_cb(void *data, const char *name)
{
	struct find *f = data;

	if (strcmp(f->name, name) == 0)
		f->found = true;
}

static bool
has_service(const struct p11e_conf *conf, const char *name)
{
	struct find f = { name, false };

	if (conf != NULL)
		(void)p11e_conf_sections(conf, "service", find_cb, &f);
	return f.found;
}

enum p11e_err
p11e_agent_user_conf(struct p11e_agent *agent, struct p11e_conf **out)
{
	char main_path[4200], dropin[4200];

	*out = NULL;
	snprintf(
	    main_path, sizeof(main_path), "%s/services.conf", agent->state_dir);
	snprintf(dropin, sizeof(dropin), "%s/services.d", agent->state_dir);
	return p11e_conf_load(
	    p11e_agent_schema, main_path, dropin, NULL, NULL, out);
}

static bool
valid_service_name(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
			(s[i] >= 'A' && s[i] <= 'Z') ||
			(s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
			s[i] == '_' || s[i] == '.'))
			return false;
	}
	return i > 0 && i <= P11E_CONF_NAME_MAX;
}

/*
 * The client for service name.  A system service (MDM) wins over a
 * user's service of the same name.
 */
static enum p11e_err
service_open(struct p11e_agent *agent, const char *name, struct p11e_http **out,
    char *detail)
{
	struct p11e_conf *user = NULL;
	const struct p11e_conf *conf = NULL;
	struct p11e_http_service svc;
	char section[128];
	enum p11e_err err;

	*out = NULL;
	if (!valid_service_name(name)) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "'%.64s' is not a service name", name);
		return P11E_ERR_INVALID_PARAMETER;
	}
	if (has_service(agent->conf, name)) {
		conf = agent->conf;
	} else {
		if ((err = p11e_agent_user_conf(agent, &user)) != P11E_OK) {
			snprintf(detail, P11E_DETAIL_MAX,
			    "the user's services in %.1024s/services.d are "
			    "invalid "
			    "(the agent log says why)",
			    agent->state_dir);
			return err;
		}
		if (has_service(user, name))
			conf = user;
	}
	snprintf(section, sizeof(section), "service %s", name);
	if (conf == NULL || p11e_conf_get_str(conf, section, "url") == NULL) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "no service '%s' with a url (p11enroll status lists the "
		    "services)",
		    name);
		p11e_conf_free(user);
		return P11E_ERR_UNKNOWN_SERVICE;
	}
	svc.url = p11e_conf_get_str(conf, section, "url");
	svc.server_pin = p11e_conf_get_str(conf, section, "server-pin");
	svc.ca_file = p11e_conf_get_str(conf, section, "ca-file");
	svc.proxy = p11e_conf_get_str(conf, section, "proxy");
	err = p11e_http_new(&svc, out);
	p11e_conf_free(user);
	return err;
}

enum p11e_err
p11e_agent_service_http(struct p11e_agent *agent, const char *name,
    struct p11e_http **out, char *detail)
{
	return service_open(agent, name, out, detail);
}

/* Whether path holds exactly text (an invitation used again). */
static bool
same_file(const char *path, const char *text, size_t len)
{
	char have[4097];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return false;
	n = read(fd, have, sizeof(have));
	close(fd);
	return n == (ssize_t)len && memcmp(have, text, len) == 0;
}

/* AddService: a user-level service in STATE/services.d/NAME.conf. */
enum p11e_err
p11e_method_add_service(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		{ "name", JSON_STRING, true },
		{ "url", JSON_STRING, true },
		{ "server_pin", JSON_STRING, false },
		{ "replace", JSON_TRUE, false },
		{ NULL, 0, false },
	};
	const char *name = json_string_value(json_object_get(params, "name"));
	const char *url = json_string_value(json_object_get(params, "url"));
	const char *pin =
	    json_string_value(json_object_get(params, "server_pin"));
	char dir[4200], path[4400], file[256], text[4096], seen[128];
	struct p11e_http_service svc = { url, pin, NULL, NULL };
	struct p11e_conf *check = NULL, *user = NULL;
	struct p11e_http *h = NULL;
	STACK_OF(X509) *ca = NULL;
	enum p11e_err err;
	int n;

	if ((err = need_state_dir(agent, detail)) != P11E_OK)
		return err;
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		return err;
	if (!valid_service_name(name)) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "a service name is 1 to 64 of A-Z a-z 0-9 . _ -");
		return P11E_ERR_INVALID_PARAMETER;
	}
	if (has_service(agent->conf, name)) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "the system configuration has a service '%s' already",
		    name);
		return P11E_ERR_EXISTS;
	}
	if (!json_is_true(json_object_get(params, "replace")) &&
	    p11e_agent_user_conf(agent, &user) == P11E_OK &&
	    has_service(user, name)) {
		p11e_conf_free(user);
		snprintf(detail, P11E_DETAIL_MAX,
		    "you have a service '%s' already", name);
		return P11E_ERR_EXISTS;
	}
	p11e_conf_free(user);
	n = snprintf(text, sizeof(text),
	    "# written by p11enroll (AddService)\n[service %s]\nurl = "
	    "%s\n%s%s%s",
	    name, url, pin ? "server-pin = " : "", pin ? pin : "",
	    pin ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof(text) || strchr(url, '\n') ||
	    (pin && strchr(pin, '\n'))) {
		snprintf(detail, P11E_DETAIL_MAX, "url or pin too long");
		return P11E_ERR_INVALID_PARAMETER;
	}
	/* the same checks as the configuration file gets */
	if (p11e_conf_load_buffer(p11e_agent_schema, "service", text, (size_t)n,
		NULL, NULL, &check) != P11E_OK) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "the URL must be https:// and the pin sha256//BASE64 "
		    "(the agent log says which)");
		return P11E_ERR_INVALID_PARAMETER;
	}
	p11e_conf_free(check);
	/* without a pin: the system trust store must know the server */
	if (pin == NULL) {
		if ((err = p11e_http_new(&svc, &h)) != P11E_OK)
			goto out;
		err = p11e_http_cacerts(h, &ca, detail, P11E_DETAIL_MAX);
		if (err == P11E_ERR_SERVER_UNTRUSTED &&
		    p11e_http_server_pin(h, seen, sizeof(seen), detail,
			P11E_DETAIL_MAX) == P11E_OK) {
			snprintf(detail, P11E_DETAIL_MAX,
			    "the system does not trust this server.  Its key "
			    "is %s.  Compare it with what your administrator "
			    "gave you (an invitation has it), and only if it "
			    "is the same add the service with "
			    "--trust-fingerprint %s: a fingerprint confirmed "
			    "by eye is weaker than an invitation",
			    seen, seen);
			goto out;
		}
		if (err != P11E_OK)
			goto out;
	}
	snprintf(dir, sizeof(dir), "%s/services.d", agent->state_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		err = P11E_ERR_IO;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s.conf", dir, name);
	if (same_file(path, text, (size_t)n)) {
		/* written and synced before: no second write and sync */
		*result = json_pack("{s:s, s:s}", "name", name, "file", path);
		err = *result ? P11E_OK : P11E_ERR_NOMEM;
		goto out;
	}
	snprintf(file, sizeof(file), "%s.conf", name);
	if ((err = p11e_file_replace(dir, file, text, (size_t)n)) != P11E_OK) {
		snprintf(detail, P11E_DETAIL_MAX, "cannot write %.1024s: %s",
		    path, strerror(errno));
		goto out;
	}
	p11e_info("service %s added (%s)", name, path);
	*result = json_pack("{s:s, s:s}", "name", name, "file", path);
	err = *result ? P11E_OK : P11E_ERR_NOMEM;
out:
	sk_X509_pop_free(ca, X509_free);
	p11e_http_free(h);
	return err;
}

/* ---- token sessions (methods.h) ---- */

void
p11e_session_close(struct p11e_session *s)
{
	p11e_token_close(s->tok);
	p11e_p11_free(s->p11);
	s->tok = NULL;
	s->p11 = NULL;
}

enum p11e_err
p11e_session_fail(struct p11e_session *s, enum p11e_err err, char *detail)
{
	if (s->p11 != NULL && p11e_p11_detail(s->p11)[0] != '\0')
		snprintf(
		    detail, P11E_DETAIL_MAX, "%s", p11e_p11_detail(s->p11));
	return err;
}

enum p11e_err
p11e_session_open(const char *uri, const struct p11e_secret *pin,
    bool final_try, struct p11e_session *s, char *detail)
{
	enum p11e_err err;

	memset(s, 0, sizeof(*s));
	if ((err = p11e_p11_new(&s->p11)) != P11E_OK ||
	    (err = p11e_token_open(s->p11, uri, &s->tok)) != P11E_OK ||
	    (err = p11e_token_login(s->tok, pin, final_try)) != P11E_OK) {
		(void)p11e_session_fail(s, err, detail);
		p11e_session_close(s);
	}
	return err;
}

bool
p11e_agent_uri_pin_source(
    const char *base, const char *from, char *out, size_t outlen)
{
	const char *p;
	size_t n;

	snprintf(out, outlen, "%s", base);
	if (from == NULL || (p = strstr(from, "pin-source=")) == NULL)
		return false;
	n = strcspn(p, ";&?");
	if ((size_t)snprintf(out, outlen, "%s%c%.*s", base,
		strchr(base, '?') ? '&' : '?', (int)n, p) >= outlen) {
		snprintf(out, outlen, "%s", base);
		return false;
	}
	return true;
}

/* ---- the modules from EnrollKey to its Enroll (methods.h) ---- */

static struct {
	struct p11e_p11 *p11; /* initialized; no session, no login */
	char cred[P11E_CRED_NAME_MAX + 1];
	time_t until; /* CLOCK_MONOTONIC seconds */
} kept;

static time_t
mono_now(void)
{
	return (time_t)(p11e_agent_mono_ms() / 1000);
}

void
p11e_agent_modules_drop(void)
{
	if (kept.p11 == NULL)
		return;
	p11e_p11_free(kept.p11);
	kept.p11 = NULL;
	p11e_debug(
	    P11E_DEBUG_PKCS11, "modules kept for %s released", kept.cred);
}

time_t
p11e_agent_modules_tick(time_t now)
{
	time_t mono = mono_now();

	if (kept.p11 == NULL)
		return 0;
	if (mono >= kept.until) {
		p11e_agent_modules_drop();
		return 0;
	}
	return now + (kept.until - mono);
}

/* s's modules, with its token closed (logged out), kept for cred. */
static void
modules_keep(struct p11e_session *s, const char *cred)
{
	p11e_agent_modules_drop();
	p11e_token_close(s->tok);
	s->tok = NULL;
	kept.p11 = s->p11;
	s->p11 = NULL;
	snprintf(kept.cred, sizeof(kept.cred), "%s", cred);
	kept.until = mono_now() + P11E_MODULES_KEEP;
}

/* The modules kept for cred, if any and in time (else none kept). */
static struct p11e_p11 *
modules_take(const char *cred)
{
	struct p11e_p11 *p11 = NULL;

	if (kept.p11 != NULL && strcmp(kept.cred, cred) == 0 &&
	    mono_now() < kept.until) {
		p11 = kept.p11;
		kept.p11 = NULL;
		p11e_debug(
		    P11E_DEBUG_PKCS11, "modules kept for %s taken", cred);
	}
	p11e_agent_modules_drop();
	return p11;
}

/*
 * The call's session, opened on its first use and kept until the call
 * ends: one module load and one login (one PIN on a PIN pad) per call;
 * on the modules kept since EnrollKey when s->p11 holds them.
 */
static enum p11e_err
session_need(struct p11e_session *s, const char *uri,
    const struct p11e_secret *pin, bool final_try, char *detail)
{
	enum p11e_err err;

	if (s->tok != NULL)
		return P11E_OK;
	if (s->p11 == NULL)
		return p11e_session_open(uri, pin, final_try, s, detail);
	if ((err = p11e_token_open(s->p11, uri, &s->tok)) != P11E_OK ||
	    (err = p11e_token_login(s->tok, pin, final_try)) != P11E_OK) {
		(void)p11e_session_fail(s, err, detail);
		p11e_session_close(s);
	}
	return err;
}

/* ---- steps with their durations ---- */

struct steps {
	json_t *list;
	struct timespec t0;
};

static void
step_start(struct steps *st)
{
	clock_gettime(CLOCK_MONOTONIC, &st->t0);
}

static void
step_done(struct steps *st, const char *name)
{
	struct timespec t1;
	double ms;

	if (st == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - st->t0.tv_sec) * 1000.0 +
	    (double)(t1.tv_nsec - st->t0.tv_nsec) / 1e6;
	json_array_append_new(
	    st->list, json_pack("{s:s, s:f}", "step", name, "ms", ms));
	p11e_verbose("%s: %.1f ms", name, ms);
	st->t0 = t1;
}

/* ---- records ---- */

static void
hex(char *dst, const unsigned char *p, size_t len)
{
	size_t i;

	dst[0] = '\0';
	for (i = 0; i < len; i++)
		snprintf(dst + 2 * i, 3, "%02x", p[i]);
}

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static void
name_text(const X509_NAME *n, char *out, size_t outlen)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	long len;

	out[0] = '\0';
	if (bio == NULL)
		return;
	if (X509_NAME_print_ex(bio, n, 0,
		XN_FLAG_RFC2253 & ~(unsigned long)ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (len = BIO_get_mem_data(bio, &p)) > 0)
		snprintf(out, outlen, "%.*s", (int)len, p);
	BIO_free(bio);
}

/* Saves the record's last error; the record keeps its state. */
static void
record_error(struct p11e_agent *agent, struct p11e_cred *c, enum p11e_err err,
    const char *detail)
{
	c->last_err = err;
	snprintf(c->last_error, sizeof(c->last_error), "%s%s%s",
	    p11e_strerror(err), detail[0] ? ": " : "", detail);
	if (p11e_journal_save(agent->state_dir, c) != P11E_OK)
		p11e_error("cannot save the error of %s", c->name);
}

json_t *
p11e_agent_cred_json(const struct p11e_cred *c)
{
	char idhex[2 * P11E_ID_MAX + 1];
	time_t next;
	json_t *j;

	hex(idhex, c->id, c->idlen);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, "
		      "s:I, s:I, s:I, s:I}",
	    "credential", c->name, "service", c->service, "state",
	    p11e_cred_display_state(c), "token_uri", c->token_uri,
	    "token_label", c->token_label, "key_type",
	    p11e_key_type_name(c->key_type), "id", idhex, "user_id", c->user_id,
	    "subject", c->subject, "serial", c->serial, "not_before",
	    (json_int_t)c->not_before, "not_after", (json_int_t)c->not_after,
	    "created", (json_int_t)c->created, "updated",
	    (json_int_t)c->updated);
	if (j != NULL && c->contract_id[0])
		json_object_set_new(
		    j, "contract_id", json_string(c->contract_id));
	if (j != NULL && c->last_err != P11E_OK) {
		json_object_set_new(j, "last_error",
		    json_pack("{s:s, s:s}", "name",
			p11e_err_name(c->last_err) ? p11e_err_name(c->last_err)
						   : "?",
			"message", c->last_error));
	}
	/* renewal: when the agent acts next, and a pair in its grace */
	if (j != NULL && c->wait != P11E_WAIT_NONE)
		json_object_set_new(
		    j, "step", json_string(p11e_cred_state_name(c->state)));
	if (j != NULL && (next = p11e_cred_due(c, p11e_http_now())) != 0)
		json_object_set_new(j, "next_action", json_integer(next));
	if (j != NULL && c->renew_before >= 0)
		json_object_set_new(
		    j, "renew_before", json_integer(c->renew_before));
	if (j != NULL && c->old_idlen > 0) {
		hex(idhex, c->old_id, c->old_idlen);
		json_object_set_new(j, "old_id", json_string(idhex));
		json_object_set_new(
		    j, "old_remove_at", json_integer(c->old_remove_at));
	}
	return j;
}

static struct p11e_secret *
param_secret(json_t *params, const char *key)
{
	json_t *v = json_object_get(params, key);

	if (v == NULL)
		return NULL;
	return p11e_secret_new_from(
	    json_string_value(v), json_string_length(v));
}

static bool
bad_secret(json_t *params, const char *key, struct p11e_secret *s)
{
	return json_object_get(params, key) != NULL && s == NULL;
}

/*
 * KEY_PENDING → KEY_READY: adopt a key with the id, else generate; on
 * the caller's session s (opened here when it is not yet).
 */
static enum p11e_err
make_key(struct p11e_agent *agent, struct p11e_cred *c, struct p11e_session *s,
    const struct p11e_secret *pin, bool final_try, struct steps *st,
    char *detail)
{
	struct p11e_buf spki;
	enum p11e_err err;
	char label[128];

	p11e_buf_init(&spki, 8192);
	if ((err = session_need(s, c->token_uri, pin, final_try, detail)) !=
	    P11E_OK)
		goto out;
	err = p11e_token_key_adopt(s->tok, c->id, c->idlen, &spki);
	if (err == P11E_OK) {
		p11e_info(
		    "%s: adopted the key generated before a restart", c->name);
	} else if (err == P11E_ERR_KEY_NOT_FOUND) {
		snprintf(label, sizeof(label), "p11enroll %s", c->service);
		p11e_buf_reset(&spki);
		err = p11e_token_keygen(
		    s->tok, c->key_type, c->id, c->idlen, label, &spki);
		if (err != P11E_OK) {
			err = p11e_session_fail(s, err, detail);
			goto out;
		}
		p11e_crashpoint("enroll-after-keygen");
	} else {
		err = p11e_session_fail(s, err, detail);
		goto out;
	}
	step_done(st, "key generation");
	if ((err = p11e_der_set(&c->spki, spki.data, spki.len)) != P11E_OK)
		goto out;
	c->state = P11E_CRED_KEY_READY;
	c->last_err = P11E_OK;
	c->last_error[0] = '\0';
	if ((err = p11e_journal_save(agent->state_dir, c)) != P11E_OK)
		snprintf(detail, P11E_DETAIL_MAX,
		    "cannot save the credential record");
out:
	p11e_buf_clear(&spki);
	return err;
}

enum p11e_err
p11e_method_enroll_key(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		{ "service", JSON_STRING, true },
		{ "uri", JSON_STRING, true },
		{ "pin", JSON_STRING, false },
		{ "final_try", JSON_TRUE, false },
		{ "key_type", JSON_STRING, false },
		{ "contract_id", JSON_STRING, false },
		{ "user_id", JSON_STRING, false },
		{ NULL, 0, false },
	};
	const char *service =
	    json_string_value(json_object_get(params, "service"));
	const char *t = json_string_value(json_object_get(params, "key_type"));
	const char *v;
	bool final_try = json_is_true(json_object_get(params, "final_try"));
	struct p11e_secret *pin = NULL;
	struct p11e_token_info info;
	struct p11e_http *h = NULL;
	struct steps st = { NULL, { 0, 0 } };
	struct p11e_cred c;
	struct p11e_session s = { NULL, NULL };
	enum p11e_err err;

	p11e_cred_init(&c);
	if ((err = need_state_dir(agent, detail)) != P11E_OK)
		return err;
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		goto out;
	pin = param_secret(params, "pin");
	if (bad_secret(params, "pin", pin)) {
		snprintf(
		    detail, P11E_DETAIL_MAX, "the PIN is empty or too long");
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	if (t != NULL && p11e_key_type_parse(t, &c.key_type) != P11E_OK) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "unknown key type '%.40s' (ec-p256, ec-p384, rsa-2048, "
		    "rsa-3072, rsa-4096)",
		    t);
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	/* the service must exist before anything touches the token */
	if ((err = service_open(agent, service, &h, detail)) != P11E_OK)
		goto out;
	st.list = json_array();
	step_start(&st);
	if ((err = p11e_session_open(
		 json_string_value(json_object_get(params, "uri")), pin,
		 final_try, &s, detail)) != P11E_OK)
		goto out;
	if ((err = p11e_token_info(s.tok, &info)) != P11E_OK ||
	    (err = p11e_token_new_id(s.tok, c.id, P11E_ID_RANDOM_LEN)) !=
		P11E_OK) {
		err = p11e_session_fail(&s, err, detail);
		goto out;
	}
	c.idlen = P11E_ID_RANDOM_LEN;
	snprintf(c.service, sizeof(c.service), "%s", service);
	snprintf(c.token_uri, sizeof(c.token_uri), "%s", info.uri);
	snprintf(c.token_serial, sizeof(c.token_serial), "%s", info.serial);
	snprintf(c.token_label, sizeof(c.token_label), "%s", info.label);
	if ((v = json_string_value(json_object_get(params, "contract_id"))))
		snprintf(c.contract_id, sizeof(c.contract_id), "%s", v);
	if ((v = json_string_value(json_object_get(params, "user_id"))))
		snprintf(c.user_id, sizeof(c.user_id), "%s", v);
	c.state = P11E_CRED_KEY_PENDING;
	c.created = time(NULL);
	/* the intent (the id) is durable before C_GenerateKeyPair */
	if ((err = p11e_journal_new_name(c.name, sizeof(c.name))) != P11E_OK ||
	    (err = p11e_journal_save(agent->state_dir, &c)) != P11E_OK) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "cannot save the credential record: no key was generated");
		goto out;
	}
	p11e_crashpoint("enroll-after-id-journaled");
	if ((err = make_key(agent, &c, &s, pin, final_try, &st, detail)) !=
	    P11E_OK) {
		record_error(agent, &c, err, detail);
		goto out;
	}
	*result = p11e_agent_cred_json(&c);
	json_object_set_new(*result, "steps", st.list);
	st.list = NULL;
	/* logged out; the modules wait for this credential's Enroll */
	modules_keep(&s, c.name);
out:
	json_decref(st.list);
	p11e_session_close(&s);
	p11e_http_free(h);
	p11e_secret_free(pin);
	p11e_cred_clear(&c);
	return err;
}

/* Opens the server session, honouring 429 + Retry-After (bounded). */
static enum p11e_err
open_session(struct p11e_http *h, const struct p11e_cred *c, const char *cid,
    const char *uid, const struct p11e_secret *password,
    const struct p11e_secret *otp, struct p11e_http_session *hs, char *detail)
{
	uint64_t waited = 0;
	enum p11e_err err;
	int i;

	for (i = 0;; i++) {
		err = p11e_http_session(
		    h, cid, uid, password, otp, hs, detail, P11E_DETAIL_MAX);
		if (err != P11E_ERR_SERVER_BUSY || hs->retry_after == 0)
			return err;
		if (i >= SESSION_RETRY_MAX ||
		    waited + hs->retry_after > SESSION_WAIT_MAX) {
			snprintf(detail, P11E_DETAIL_MAX,
			    "the server is busy: try again in %llu s with a "
			    "new one-time password",
			    (unsigned long long)hs->retry_after);
			return err;
		}
		p11e_info("%s: the server is busy, asking again in %llu s",
		    c->name, (unsigned long long)hs->retry_after);
		sleep((unsigned int)hs->retry_after);
		waited += hs->retry_after;
	}
}

/* Sends the CSR, honouring 202 + Retry-After a few times. */
static enum p11e_err
submit(struct p11e_http *h, const struct p11e_secret *bearer,
    const struct p11e_cred *c, STACK_OF(X509) * *issued, char *detail)
{
	uint64_t wait;
	enum p11e_err err;
	int i;

	for (i = 0;; i++) {
		err = p11e_http_enroll(h, false, bearer, c->csr.data,
		    c->csr.len, issued, &wait, detail, P11E_DETAIL_MAX);
		if (err != P11E_ERR_SERVER_BUSY || wait == 0 ||
		    i >= RETRY_202_MAX)
			return err;
		p11e_info("%s: the server asks to come back in %llu s", c->name,
		    (unsigned long long)wait);
		sleep((unsigned int)wait);
	}
}

/* SUBMITTED → ISSUED: check the answer, journal it (R24, R31). */
static enum p11e_err
accept_issued(struct p11e_agent *agent, struct p11e_cred *c,
    STACK_OF(X509) * issued, STACK_OF(X509) * cacerts, char *detail)
{
	unsigned char *der = NULL;
	X509 *leaf = NULL;
	enum p11e_err err;
	ASN1_INTEGER *sn;
	BIGNUM *bn = NULL;
	char *shex = NULL;
	int len, i;

	if ((err = p11e_est_check_issued(issued, cacerts, c->spki.data,
		 c->spki.len, p11e_http_now(), &leaf, detail,
		 P11E_DETAIL_MAX)) != P11E_OK) {
		p11e_error(
		    "%s: refusing the issued certificate: %s", c->name, detail);
		return err;
	}
	err = P11E_ERR_CRYPTO;
	if ((len = i2d_X509(leaf, &der)) <= 0 ||
	    p11e_der_set(&c->cert, der, (size_t)len) != P11E_OK)
		goto out;
	for (i = 0; i < sk_X509_num(cacerts) && i < P11E_CRED_CHAIN_MAX; i++) {
		OPENSSL_free(der);
		der = NULL;
		if ((len = i2d_X509(sk_X509_value(cacerts, i), &der)) <= 0 ||
		    p11e_der_set(&c->chain[i], der, (size_t)len) != P11E_OK)
			goto out;
	}
	c->nchain = (size_t)i;
	name_text(X509_get_subject_name(leaf), c->subject, sizeof(c->subject));
	sn = X509_get_serialNumber(leaf);
	if ((bn = ASN1_INTEGER_to_BN(sn, NULL)) == NULL ||
	    (shex = BN_bn2hex(bn)) == NULL)
		goto out;
	snprintf(c->serial, sizeof(c->serial), "%s", shex);
	c->not_before = asn1_time(X509_get0_notBefore(leaf));
	c->not_after = asn1_time(X509_get0_notAfter(leaf));
	c->state = P11E_CRED_ISSUED;
	c->last_err = P11E_OK;
	c->last_error[0] = '\0';
	/* the certificate is durable before the token write (R31) */
	if ((err = p11e_journal_save(agent->state_dir, c)) != P11E_OK) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "cannot save the issued certificate: the server will give "
		    "it again for the same request");
		goto out;
	}
	p11e_crashpoint("enroll-after-cert-journaled");
	err = P11E_OK;
out:
	OPENSSL_free(shex);
	BN_free(bn);
	OPENSSL_free(der);
	X509_free(leaf);
	return err;
}

/* KEY_READY/SUBMITTED → ISSUED; the CSR on the caller's session s. */
static enum p11e_err
obtain(struct p11e_agent *agent, struct p11e_cred *c, struct p11e_session *s,
    const char *uri, json_t *params, const struct p11e_secret *pin,
    bool final_try, struct steps *st, char *detail)
{
	struct p11e_secret *password = NULL, *otp = NULL, *code = NULL;
	struct p11e_http_session hs = { NULL, "", "", 0 };
	char basic[160];
	STACK_OF(X509) *cacerts = NULL, *issued = NULL;
	struct p11e_csr_template tmpl = { NULL, NULL, 0 };
	const char *cid, *uid;
	struct p11e_http *h = NULL;
	struct p11e_buf csr;
	enum p11e_err err;

	p11e_buf_init(&csr, 64 * 1024);
	cid = json_string_value(json_object_get(params, "contract_id"));
	uid = json_string_value(json_object_get(params, "user_id"));
	if (cid == NULL && c->contract_id[0])
		cid = c->contract_id;
	if (uid == NULL && c->user_id[0])
		uid = c->user_id;
	password = param_secret(params, "password");
	otp = param_secret(params, "otp");
	code = param_secret(params, "admin_code");
	if (bad_secret(params, "password", password) ||
	    bad_secret(params, "otp", otp) ||
	    bad_secret(params, "admin_code", code)) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "the password or one-time password is empty or too long");
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	if ((err = service_open(agent, c->service, &h, detail)) != P11E_OK)
		goto out;
	/* the server's trust is checked here, before any credential */
	if ((err = p11e_http_cacerts(h, &cacerts, detail, P11E_DETAIL_MAX)) !=
	    P11E_OK)
		goto out;
	step_done(st, "CA certificates");
	if (c->state == P11E_CRED_SUBMITTED) {
		/* a lost answer comes back for the same CSR (R17) */
		err = submit(h, NULL, c, &issued, detail);
		if (err == P11E_OK)
			goto issued;
		if (err != P11E_ERR_AUTH_FAILED)
			goto out;
		p11e_info(
		    "%s: nothing issued yet for the saved request", c->name);
	}
	if (code != NULL && cid != NULL && uid != NULL) {
		/*
		 * An administrator's first certificate: HTTP Basic with
		 * the bank's one-time code instead of a session, and an
		 * empty subject (the server issues the one it holds).
		 */
		snprintf(basic, sizeof(basic), "%s/%s", cid, uid);
		if ((err = p11e_http_set_basic(h, basic, code)) != P11E_OK)
			goto out;
		snprintf(hs.subject, sizeof(hs.subject), "/");
	} else if (password == NULL || otp == NULL || cid == NULL ||
	    uid == NULL) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "give the contract ID, user ID, password and one-time "
		    "password");
		err = P11E_ERR_CREDENTIALS_REQUIRED;
		goto out;
	} else if ((err = open_session(h, c, cid, uid, password, otp, &hs,
			detail)) != P11E_OK) {
		goto out;
	}
	snprintf(c->contract_id, sizeof(c->contract_id), "%s", cid);
	snprintf(c->user_id, sizeof(c->user_id), "%s", uid);
	step_done(st, "server session");
	if (c->state == P11E_CRED_KEY_READY) {
		if (hs.subject[0] == '\0') {
			snprintf(hs.subject, sizeof(hs.subject), "/CN=%s", uid);
		}
		tmpl.subject = hs.subject;
		if ((err = session_need(s, uri, pin, final_try, detail)) !=
		    P11E_OK)
			goto out;
		if ((err = p11e_token_csr(s->tok, c->id, c->idlen, c->spki.data,
			 c->spki.len, &tmpl, &csr)) != P11E_OK) {
			err = p11e_session_fail(s, err, detail);
			goto out;
		}
		step_done(st, "certificate request");
		if ((err = p11e_der_set(&c->csr, csr.data, csr.len)) != P11E_OK)
			goto out;
		c->state = P11E_CRED_SUBMITTED;
		/* the CSR is durable before it is sent */
		if ((err = p11e_journal_save(agent->state_dir, c)) != P11E_OK) {
			snprintf(detail, P11E_DETAIL_MAX,
			    "cannot save the certificate request: nothing was "
			    "sent");
			goto out;
		}
		p11e_crashpoint("enroll-after-csr-journaled");
	}
	if ((err = submit(h, hs.token, c, &issued, detail)) != P11E_OK)
		goto out;
issued:
	p11e_crashpoint("enroll-after-submit");
	step_done(st, "issuance");
	err = accept_issued(agent, c, issued, cacerts, detail);
out:
	sk_X509_pop_free(cacerts, X509_free);
	sk_X509_pop_free(issued, X509_free);
	p11e_secret_free(hs.token);
	p11e_secret_free(password);
	p11e_secret_free(otp);
	p11e_http_free(h);
	p11e_secret_free(code); /* after h, which borrowed it */
	p11e_buf_clear(&csr);
	return err;
}

/* The records an enrollment replaces (retire_replaced). */
struct replaced {
	const struct p11e_cred *by;
	struct {
		char name[P11E_CRED_NAME_MAX + 1];
		char token_serial[17];
		/* its pair, a renewal's old pair in its grace period and a
		 * refused renewal's new key */
		unsigned char id[3][P11E_ID_MAX];
		size_t idlen[3];
	} old[16];
	size_t n;
};

static void
replaced_cb(void *data, const char *name, const struct p11e_cred *c,
    const char *problem)
{
	struct replaced *r = data;

	(void)problem;
	if (c == NULL || strcmp(name, r->by->name) == 0 ||
	    r->n == sizeof(r->old) / sizeof(r->old[0]) ||
	    strcmp(c->service, r->by->service) != 0 ||
	    strcmp(c->contract_id, r->by->contract_id) != 0 ||
	    strcmp(c->user_id, r->by->user_id) != 0)
		return;
	/* what the server has superseded; never one still under way */
	switch (c->state) {
	case P11E_CRED_INSTALLED:
	case P11E_CRED_EXPIRED:
	case P11E_CRED_REVOKED:
	case P11E_CRED_REJECTED:
		break;
	case P11E_CRED_KEY_PENDING:
	case P11E_CRED_KEY_READY:
	case P11E_CRED_SUBMITTED:
	case P11E_CRED_ISSUED:
	case P11E_CRED_NEEDS_OPERATOR:
	case P11E_CRED_RENEW_DUE:
	case P11E_CRED_RENEW_KEY_READY:
	case P11E_CRED_RENEW_SUBMITTED:
	case P11E_CRED_RENEW_ISSUED:
		return;
	}
	snprintf(r->old[r->n].name, sizeof(r->old[0].name), "%s", name);
	snprintf(r->old[r->n].token_serial, sizeof(r->old[0].token_serial),
	    "%s", c->token_serial);
	memcpy(r->old[r->n].id[0], c->id, c->idlen);
	r->old[r->n].idlen[0] = c->idlen;
	if (!c->old_same_key) {
		memcpy(r->old[r->n].id[1], c->old_id, c->old_idlen);
		r->old[r->n].idlen[1] = c->old_idlen;
	}
	memcpy(r->old[r->n].id[2], c->new_id, c->new_idlen);
	r->old[r->n].idlen[2] = c->new_idlen;
	r->n++;
}

/*
 * The pair of a replaced record, if it is on the token of the session
 * (logged in, the new pair verified on it) under another CKA_ID: removed.
 * A pair on another token stays, and the log says where.
 */
static void
remove_replaced_pair(struct p11e_session *s, const struct p11e_cred *by,
    const char *name, const char *serial, const unsigned char *id, size_t idlen)
{
	char idhex[2 * P11E_ID_MAX + 1];
	unsigned int deleted = 0;
	enum p11e_err err;

	if (idlen == 0 ||
	    (idlen == by->idlen && memcmp(id, by->id, idlen) == 0))
		return;
	hex(idhex, id, idlen);
	if (s->tok == NULL || serial[0] == '\0' ||
	    strcmp(serial, by->token_serial) != 0) {
		p11e_info("%s: its key and certificate (id %s) stay on the "
			  "token with serial %s (p11enroll token delete "
			  "removes them)",
		    name, idhex, serial[0] ? serial : "?");
		return;
	}
	err = p11e_token_delete(s->tok, id, idlen, &deleted);
	if (err == P11E_OK)
		p11e_info("%s: its key and certificate are removed from the "
			  "token (%u objects)",
		    name, deleted);
	else if (err != P11E_ERR_KEY_NOT_FOUND)
		p11e_error_r(err,
		    "%s: its key and certificate (id %s) could not be removed "
		    "from the token: 'p11enroll token delete' removes them",
		    name, idhex);
}

/*
 * A new certificate of a user for a service replaces the earlier ones
 * the server now considers superseded (a reissue).  Their key and
 * certificate leave the token when it is the same one (a browser would
 * otherwise still offer the old certificate), on the session the new
 * pair was just verified on; then, once the new record says INSTALLED,
 * their records are retired, so that an expired or revoked predecessor
 * neither renews nor keeps `status` asking for a reissue.
 */
static void
replaced_find(
    struct p11e_agent *agent, const struct p11e_cred *by, struct replaced *r)
{
	memset(r, 0, sizeof(*r));
	r->by = by;
	if (by->contract_id[0] != '\0' && by->user_id[0] != '\0')
		(void)p11e_journal_list(agent->state_dir, replaced_cb, r);
}

static void
retire_replaced(struct p11e_agent *agent, const struct replaced *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		if (p11e_journal_remove(agent->state_dir, r->old[i].name) ==
		    P11E_OK)
			p11e_info("%s: replaced by %s (the same user of %s): "
				  "its record is retired",
			    r->old[i].name, r->by->name, r->by->service);
	}
}

/*
 * ISSUED → INSTALLED: the token write (idempotent) and the proof, on the
 * caller's session s (opened on uri when it is not yet; closed here).
 */
static enum p11e_err
install(struct p11e_agent *agent, struct p11e_cred *c, struct p11e_session *s,
    const char *uri, const struct p11e_secret *pin, bool final_try,
    struct steps *st, char *detail)
{
	struct replaced r;
	enum p11e_err err;
	char label[128];
	bool added;
	size_t i, k;

	snprintf(label, sizeof(label), "p11enroll %s", c->service);
	if ((err = session_need(s, uri, pin, final_try, detail)) != P11E_OK)
		return err;
	if ((err = p11e_token_store_cert(s->tok, c->id, c->idlen, c->cert.data,
		 c->cert.len, label)) != P11E_OK)
		goto fail;
	for (i = 0; i < c->nchain; i++) {
		if ((err = p11e_token_store_ca(s->tok, c->chain[i].data,
			 c->chain[i].len, &added)) != P11E_OK)
			goto fail;
	}
	p11e_crashpoint("enroll-after-token-write");
	step_done(st, "token write");
	if ((err = p11e_token_verify_pair(s->tok, c->id, c->idlen)) != P11E_OK)
		goto fail;
	replaced_find(agent, c, &r);
	for (i = 0; i < r.n; i++) {
		for (k = 0; k < 3; k++)
			remove_replaced_pair(s, c, r.old[i].name,
			    r.old[i].token_serial, r.old[i].id[k],
			    r.old[i].idlen[k]);
	}
	/* the login ends before the record says INSTALLED */
	p11e_session_close(s);
	step_done(st, "pair verified");
	c->state = P11E_CRED_INSTALLED;
	c->wait = P11E_WAIT_NONE;
	c->next_action = 0;
	c->last_err = P11E_OK;
	c->last_error[0] = '\0';
	if ((err = p11e_journal_save(agent->state_dir, c)) != P11E_OK)
		snprintf(detail, P11E_DETAIL_MAX,
		    "the certificate is on the token but the record could not "
		    "be saved");
	else
		retire_replaced(agent, &r);
	return err;
fail:
	err = p11e_session_fail(s, err, detail);
	p11e_session_close(s);
	return err;
}

enum p11e_err
p11e_method_enroll(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		{ "credential", JSON_STRING, true },
		{ "pin", JSON_STRING, false },
		{ "final_try", JSON_TRUE, false },
		{ "contract_id", JSON_STRING, false },
		{ "user_id", JSON_STRING, false },
		{ "password", JSON_STRING, false },
		{ "otp", JSON_STRING, false },
		{ "admin_code", JSON_STRING, false },
		{ "uri", JSON_STRING, false },
		{ NULL, 0, false },
	};
	bool final_try = json_is_true(json_object_get(params, "final_try"));
	struct p11e_secret *pin = NULL;
	struct steps st = { NULL, { 0, 0 } };
	struct p11e_session s = { NULL, NULL };
	struct p11e_cred c;
	char uri[sizeof(c.token_uri) + 1024];
	const char *name =
	    json_string_value(json_object_get(params, "credential"));
	enum p11e_err err;

	p11e_cred_init(&c);
	/* the modules EnrollKey kept for it: released at this call's end */
	s.p11 = modules_take(name != NULL ? name : "");
	if ((err = need_state_dir(agent, detail)) != P11E_OK)
		goto out;
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		goto out;
	if ((err = p11e_journal_load(agent->state_dir,
		 json_string_value(json_object_get(params, "credential")), &c,
		 detail, P11E_DETAIL_MAX)) != P11E_OK)
		goto out;
	pin = param_secret(params, "pin");
	if (bad_secret(params, "pin", pin)) {
		snprintf(
		    detail, P11E_DETAIL_MAX, "the PIN is empty or too long");
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	/* the record's token, with the PIN file of the caller's URI */
	(void)p11e_agent_uri_pin_source(c.token_uri,
	    json_string_value(json_object_get(params, "uri")), uri,
	    sizeof(uri));
	st.list = json_array();
	step_start(&st);
	switch (p11e_cred_next_step(&c)) {
	case P11E_STEP_OPERATOR:
		snprintf(detail, P11E_DETAIL_MAX,
		    "credential %s is %s: %s; remove it with p11enroll forget "
		    "%s and enroll again",
		    c.name, p11e_cred_state_name(c.state),
		    c.last_error[0] ? c.last_error : "no detail", c.name);
		err = c.last_err != P11E_OK ? c.last_err
					    : P11E_ERR_JOURNAL_CORRUPT;
		goto out;
	case P11E_STEP_RENEW:
		snprintf(detail, P11E_DETAIL_MAX,
		    "credential %s is being renewed (%s): p11enroll renew "
		    "--credential %s continues",
		    c.name, p11e_cred_state_name(c.state), c.name);
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	case P11E_STEP_ADOPT_OR_GENERATE:
		if ((err = session_need(&s, uri, pin, final_try, detail)) !=
			P11E_OK ||
		    (err = make_key(agent, &c, &s, pin, final_try, &st,
			 detail)) != P11E_OK)
			goto fail;
		/* fall through */
	case P11E_STEP_SUBMIT_NEW:
	case P11E_STEP_RESUBMIT:
		if ((err = obtain(agent, &c, &s, uri, params, pin, final_try,
			 &st, detail)) != P11E_OK)
			goto fail;
		/* fall through */
	case P11E_STEP_STORE:
		if ((err = install(agent, &c, &s, uri, pin, final_try, &st,
			 detail)) != P11E_OK)
			goto fail;
		/* fall through */
	case P11E_STEP_NONE:
		break;
	}
	*result = p11e_agent_cred_json(&c);
	json_object_set_new(*result, "steps", st.list);
	st.list = NULL;
	goto out;
fail:
	/* the record keeps its state: a later call resumes from there */
	if (c.state == P11E_CRED_ISSUED && p11e_token_absent(err)) {
		/* the agent looks for the token and finishes by itself */
		c.wait = P11E_WAIT_TOKEN;
		c.next_action = 0;
		p11e_agent_insert_token(&c, detail);
		p11e_info("%s: %s", c.name, detail);
	}
	if (err != P11E_ERR_CREDENTIALS_REQUIRED)
		record_error(agent, &c, err, detail);
out:
	p11e_session_close(&s);
	json_decref(st.list);
	p11e_secret_free(pin);
	p11e_cred_clear(&c);
	return err;
}

static void
list_cb(void *data, const char *name, const struct p11e_cred *c,
    const char *problem)
{
	json_t *j;

	if (c != NULL) {
		j = p11e_agent_cred_json(c);
	} else {
		j = json_pack("{s:s, s:s, s:{s:s, s:s}}", "credential", name,
		    "state", "NEEDS_OPERATOR", "last_error", "name",
		    "JournalCorrupt", "message", problem);
	}
	if (j != NULL)
		json_array_append_new(data, j);
}

enum p11e_err
p11e_method_list_credentials(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param none[] = { { NULL, 0, false } };
	json_t *list;
	enum p11e_err err;

	if ((err = need_state_dir(agent, detail)) != P11E_OK)
		return err;
	if ((err = p11e_params_check(params, none, detail)) != P11E_OK)
		return err;
	if ((list = json_array()) == NULL)
		return P11E_ERR_NOMEM;
	(void)p11e_journal_list(agent->state_dir, list_cb, list);
	*result = json_pack("{s:o}", "credentials", list);
	return *result ? P11E_OK : P11E_ERR_NOMEM;
}

static void
recover_cb(void *data, const char *name, const struct p11e_cred *c,
    const char *problem)
{
	(void)data;
	if (c == NULL)
		p11e_error(
		    "credential %s needs an operator: %s", name, problem);
	else if (p11e_cred_next_step(c) == P11E_STEP_RENEW)
		p11e_info("credential %s (service %s) stopped renewing at %s: "
			  "the agent continues",
		    name, c->service, p11e_cred_state_name(c->state));
	else if (c->state == P11E_CRED_EXPIRED ||
	    c->state == P11E_CRED_REVOKED || c->state == P11E_CRED_REJECTED)
		p11e_info("credential %s (service %s) is %s: %s", name,
		    c->service, p11e_cred_state_name(c->state), c->last_error);
	else if (c->state != P11E_CRED_INSTALLED)
		p11e_info("credential %s (service %s) stopped at %s: "
			  "'p11enroll enroll --resume %s' finishes it",
		    name, c->service, p11e_cred_state_name(c->state), name);
}

void
p11e_agent_recover_one(
    struct p11e_agent *agent, const struct p11e_cred_brief *b)
{
	char detail[1024] = "";
	struct p11e_cred c;

	/* INSTALLED has nothing to report: its record is not read again */
	if (!b->damaged && b->state == P11E_CRED_INSTALLED)
		return;
	p11e_cred_init(&c);
	if (p11e_journal_load(agent->state_dir, b->name, &c, detail,
		sizeof(detail)) == P11E_OK)
		recover_cb(NULL, b->name, &c, NULL);
	else
		recover_cb(NULL, b->name, NULL, detail);
	p11e_cred_clear(&c);
}

bool
p11e_token_absent(enum p11e_err err)
{
	return err == P11E_ERR_TOKEN_ABSENT || err == P11E_ERR_TOKEN_NOT_FOUND;
}

void
p11e_agent_insert_token(const struct p11e_cred *c, char *detail)
{
	char was[P11E_DETAIL_MAX];

	/* first (a record keeps 512 bytes), then what the token layer said */
	snprintf(was, sizeof(was), "%s", detail);
	snprintf(detail, P11E_DETAIL_MAX,
	    "insert the token '%s' (serial %s): the agent looks for it every "
	    "%d s and goes on when it is back (another token is not "
	    "touched)%s%.1500s",
	    c->token_label, c->token_serial, P11E_TOKEN_POLL,
	    was[0] ? "; " : "", was);
}

enum p11e_err
p11e_agent_enroll_finish(struct p11e_agent *agent, struct p11e_cred *c,
    const char *uri, bool unattended, char *detail)
{
	struct p11e_p11 *p11 = NULL;
	struct p11e_token *tok = NULL;
	enum p11e_err err;

	detail[0] = '\0';
	if (unattended) {
		struct p11e_session s = { NULL, NULL };

		err = install(agent, c, &s, uri, NULL, false, NULL, detail);
	} else if ((err = p11e_p11_new(&p11)) == P11E_OK &&
	    (err = p11e_token_open(p11, c->token_uri, &tok)) == P11E_OK) {
		/* back, but only the user has the PIN */
		p11e_token_close(tok);
		c->wait = P11E_WAIT_NONE;
		c->next_action = 0;
		snprintf(detail, P11E_DETAIL_MAX,
		    "the token '%s' is back: 'p11enroll enroll --resume %s' "
		    "writes the certificate",
		    c->token_label, c->name);
		p11e_info("%s: %s", c->name, detail);
		record_error(agent, c, P11E_ERR_PIN_REQUIRED, detail);
	}
	p11e_p11_free(p11);
	if (err == P11E_OK && c->state == P11E_CRED_INSTALLED)
		p11e_info("%s: the token is back: the certificate is written "
			  "and verified (serial %s)",
		    c->name, c->serial);
	else if (p11e_token_absent(err)) {
		/* still away: the scheduler's next poll looks again */
	} else if (err != P11E_OK) {
		c->wait = P11E_WAIT_NONE;
		c->next_action = 0;
		p11e_error("%s: %s", c->name, detail);
		record_error(agent, c, err, detail);
	}
	return err;
}
