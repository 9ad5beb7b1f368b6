/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/x509.h>

#include "agent/est.h"
#include "agent/http.h"
#include "agent/journal.h"
#include "agent/methods.h"
#include "agent/notify.h"
#include "agent/pinentry.h"
#include "common/conf.h"
#include "common/crashpoint.h"
#include "common/log.h"
#include "common/secret.h"
#include "pkcs11/evp.h"
#include "pkcs11/p11.h"

/*
 * Renewal (DESIGN §6, doc/p11enrolld.8 "Renewal"): the scheduler that
 * says when each credential needs the agent next, and the re-enrollment
 * itself.  A credential renews at the later of two thirds of its
 * certificate's lifetime and the opening of the server's re-enrollment
 * window (notAfter - renew_before of GET /api/v1/policy, cached in the
 * record); each step is journaled before its side effect, as in
 * agent/enroll.c, and the current pair stays until the new one is
 * verified on the token, then through a grace period.
 */

/* Backoff after a failed attempt: 30 s doubling up to 6 hours, ±25 %. */
#define RETRY_MIN 30
#define RETRY_MAX (6 * 3600)
#define GRACE_DEFAULT 86400
/* Records acted on in one scheduler pass; the rest wait a second. */
#define DUE_MAX 64

static const char expired_msg[] =
    "the certificate has expired: ask your administrator to reissue";

/* ---- when ---- */

static time_t
renew_time(const struct p11e_cred *c)
{
	time_t life = c->not_after - c->not_before, t;

	t = c->not_before + life / 3 * 2 + (life % 3) * 2 / 3;
	if (c->renew_before >= 0 && c->not_after - (time_t)c->renew_before > t)
		t = c->not_after - (time_t)c->renew_before;
	return t;
}

static time_t
min_time(time_t a, time_t b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

/* Expiry notices: days before notAfter, largest first (P11E_NOTICE_). */
static const unsigned int notice_days[P11E_NOTICE_DAYS_N] = { 30, 14, 7, 1 };

/*
 * The time of the next notice not yet told for the current certificate
 * (0: none).  A notice longer before expiry than the certificate's
 * lifetime is never told (a 7-day certificate gets no 30-day notice).
 */
static time_t
notice_time(const struct p11e_cred *c)
{
	time_t life = c->not_after - c->not_before;
	unsigned int i;

	for (i = 0; i < P11E_NOTICE_DAYS_N; i++) {
		if ((c->notices & (1U << i)) == 0 &&
		    life > (time_t)notice_days[i] * 86400)
			return c->not_after - (time_t)notice_days[i] * 86400;
	}
	return 0;
}

/*
 * Tells the latest notice due at now (one, not a burst after a long
 * sleep) and marks it and the earlier ones told.  Returns whether c
 * changed.
 */
static bool
notices(struct p11e_agent *agent, struct p11e_cred *c, time_t now)
{
	time_t life = c->not_after - c->not_before;
	unsigned int i, fire = P11E_NOTICE_DAYS_N;

	if (c->cert.len == 0 || now >= c->not_after)
		return false;
	for (i = 0; i < P11E_NOTICE_DAYS_N; i++) {
		if (life > (time_t)notice_days[i] * 86400 &&
		    now >= c->not_after - (time_t)notice_days[i] * 86400 &&
		    (c->notices & (1U << i)) == 0)
			fire = i;
	}
	if (fire == P11E_NOTICE_DAYS_N)
		return false;
	for (i = 0; i <= fire; i++)
		c->notices |= 1U << i;
	p11e_agent_event(agent, P11E_EVENT_EXPIRY_NOTICE, c, now);
	return true;
}

/* The certificate is past notAfter: EXPIRED, told once. */
static void
expire(struct p11e_agent *agent, struct p11e_cred *c, time_t now)
{
	c->state = P11E_CRED_EXPIRED;
	c->wait = P11E_WAIT_NONE;
	c->next_action = 0;
	c->last_err = P11E_ERR_CERT_EXPIRED;
	snprintf(c->last_error, sizeof(c->last_error), "%s", expired_msg);
	if ((c->notices & P11E_NOTICE_EXPIRED) == 0) {
		c->notices |= P11E_NOTICE_EXPIRED;
		p11e_error("credential %s (service %s, %s): %s", c->name,
		    c->service, c->subject, expired_msg);
		p11e_agent_event(agent, P11E_EVENT_EXPIRED, c, now);
	}
	(void)p11e_journal_save(agent->state_dir, c);
}

/* Whether the renewal itself (not a notice or the old pair) is due. */
static bool
renewal_due(const struct p11e_cred *c, time_t now)
{
	if (c->wait == P11E_WAIT_PIN)
		return false;
	if (c->state == P11E_CRED_INSTALLED)
		return (c->next_action ? c->next_action : renew_time(c)) <= now;
	return p11e_cred_next_step(c) == P11E_STEP_RENEW &&
	    c->next_action <= now;
}

time_t
p11e_cred_due(const struct p11e_cred *c, time_t now)
{
	time_t t = 0;

	(void)now;
	switch (c->state) {
	case P11E_CRED_INSTALLED:
		t = min_time(c->not_after, notice_time(c));
		if (c->wait == P11E_WAIT_PIN)
			break;
		t = min_time(
		    t, c->next_action ? c->next_action : renew_time(c));
		if (c->old_idlen > 0 && c->old_remove_at > 0)
			t = min_time(t, c->old_remove_at);
		break;
	case P11E_CRED_RENEW_DUE:
	case P11E_CRED_RENEW_KEY_READY:
	case P11E_CRED_RENEW_SUBMITTED:
	case P11E_CRED_RENEW_ISSUED:
		t = min_time(c->not_after, notice_time(c));
		if (c->wait != P11E_WAIT_PIN)
			t = min_time(t, c->next_action ? c->next_action : 1);
		break;
	case P11E_CRED_ISSUED:
		/* the token was away at the write: the agent looks for it */
		if (c->wait == P11E_WAIT_TOKEN)
			t = c->next_action ? c->next_action : 1;
		break;
	case P11E_CRED_KEY_PENDING:
	case P11E_CRED_KEY_READY:
	case P11E_CRED_SUBMITTED:
	case P11E_CRED_REJECTED:
	case P11E_CRED_NEEDS_OPERATOR:
	case P11E_CRED_EXPIRED:
	case P11E_CRED_REVOKED:
		break;
	}
	return t;
}

/* The next try after a failure: exponential, with jitter. */
static time_t
backoff(struct p11e_cred *c, time_t now)
{
	uint64_t d = RETRY_MIN;
	unsigned int i, r = 0;

	for (i = 0; i < c->retries && d < RETRY_MAX; i++)
		d *= 2;
	if (d > RETRY_MAX)
		d = RETRY_MAX;
	if (c->retries < 1000)
		c->retries++;
	(void)getrandom(&r, sizeof(r), 0);
	/* ±25 %: many agents of one company do not come back together */
	d = d * 3 / 4 + r % (d / 2 + 1);
	return now + (time_t)d;
}

/* ---- the service and the token ---- */

struct svc {
	struct p11e_conf *user; /* owned */
	const struct p11e_conf *conf; /* the one holding the section */
	char section[128];
};

static void
find_cb(void *data, const char *name)
{
	const char **want = data;

	if (*want != NULL && strcmp(*want, name) == 0)
		*want = NULL;
}

static bool
has_service(const struct p11e_conf *conf, const char *name)
{
	const char *want = name;

	if (conf != NULL)
		(void)p11e_conf_sections(conf, "service", find_cb, &want);
	return want == NULL;
}

static void
svc_find(struct p11e_agent *agent, const char *name, struct svc *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->section, sizeof(s->section), "service %s", name);
	if (has_service(agent->conf, name)) {
		s->conf = agent->conf;
		return;
	}
	if (p11e_agent_user_conf(agent, &s->user) == P11E_OK &&
	    has_service(s->user, name))
		s->conf = s->user;
}

static const char *
svc_str(const struct svc *s, const char *key)
{
	return s->conf ? p11e_conf_get_str(s->conf, s->section, key) : NULL;
}

/*
 * The URI to open the credential's token with: the journaled identity,
 * plus the pin-source of the service's token URI when there is one (the
 * unattended PIN).  Returns whether a pin-source was added.
 */
static bool
token_uri(
    const struct p11e_cred *c, const struct svc *s, char *out, size_t outlen)
{
	return p11e_agent_uri_pin_source(
	    c->token_uri, svc_str(s, "token"), out, outlen);
}

/* ---- the record ---- */

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* subject, serial, validity of c->cert, for list and the schedule */
static enum p11e_err
cert_meta(struct p11e_cred *c)
{
	const unsigned char *p = c->cert.data;
	X509 *x = d2i_X509(NULL, &p, (long)c->cert.len);
	BIO *bio = NULL;
	BIGNUM *bn = NULL;
	char *shex = NULL, *txt;
	enum p11e_err err = P11E_ERR_CRYPTO;
	long len;

	if (x == NULL || (bio = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	c->subject[0] = '\0';
	if (X509_NAME_print_ex(bio, X509_get_subject_name(x), 0,
		XN_FLAG_RFC2253 & ~(unsigned long)ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (len = BIO_get_mem_data(bio, &txt)) > 0)
		snprintf(c->subject, sizeof(c->subject), "%.*s", (int)len, txt);
	if ((bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(x), NULL)) == NULL ||
	    (shex = BN_bn2hex(bn)) == NULL)
		goto out;
	snprintf(c->serial, sizeof(c->serial), "%s", shex);
	c->not_before = asn1_time(X509_get0_notBefore(x));
	c->not_after = asn1_time(X509_get0_notAfter(x));
	err = P11E_OK;
out:
	OPENSSL_free(shex);
	BN_free(bn);
	BIO_free(bio);
	X509_free(x);
	return err;
}

static void
set_error(struct p11e_cred *c, enum p11e_err err, const char *detail)
{
	c->last_err = err;
	snprintf(c->last_error, sizeof(c->last_error), "%s%s%.400s",
	    p11e_strerror(err), detail[0] ? ": " : "", detail);
}

static void
clear_error(struct p11e_cred *c)
{
	c->last_err = P11E_OK;
	c->last_error[0] = '\0';
}

static enum p11e_err
save(struct p11e_agent *agent, struct p11e_cred *c, char *detail)
{
	enum p11e_err err = p11e_journal_save(agent->state_dir, c);

	if (err != P11E_OK)
		snprintf(detail, P11E_DETAIL_MAX,
		    "cannot save the credential record: nothing more was done");
	return err;
}

/*
 * Parses the "re-enrollment opens at 2027-10-26T00:00:00Z" of a
 * too-early answer.  0 when there is no date.
 */
static time_t
opens_at(const char *detail)
{
	const char *p = strstr(detail, "opens at ");
	struct tm tm;

	if (p == NULL)
		return 0;
	memset(&tm, 0, sizeof(tm));
	p += strlen("opens at ");
	if (strptime(p, "%Y-%m-%dT%H:%M:%SZ", &tm) == NULL)
		return 0;
	return timegm(&tm);
}

static void
utc(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	snprintf(out, outlen, "-");
	if (gmtime_r(&t, &tm) != NULL)
		strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* ---- the steps ---- */

struct run {
	struct p11e_agent *agent;
	struct p11e_cred *c;
	struct svc svc;
	const struct p11e_secret *pin; /* NULL: the pin-source or none */
	bool final_try;
	bool force; /* --now: do not wait for the window we know of */
	bool background; /* the scheduler's: tells when it needs a PIN */
	bool dialog; /* pin came from the agent's pinentry dialog */
	char uri[1200];
	bool unattended; /* uri has a pin-source */
	struct p11e_http *h;
	struct p11e_session s;
	char *detail;
};

/* The server's window, refreshed: too early unless forced. */
static enum p11e_err
check_window(struct run *r, time_t now)
{
	struct p11e_http_policy pol;
	struct p11e_cred *c = r->c;
	char when[40];
	enum p11e_err err;

	err = p11e_http_policy(r->h, &pol, r->detail, P11E_DETAIL_MAX);
	if (err != P11E_OK)
		return err;
	/* the answer's Date may have told us our clock is off */
	now = p11e_http_now();
	c->renew_before = (long long)pol.renew_before;
	if (r->force || now >= c->not_after - (time_t)c->renew_before)
		return P11E_OK;
	c->next_action = renew_time(c);
	utc(c->next_action, when, sizeof(when));
	snprintf(r->detail, P11E_DETAIL_MAX,
	    "re-enrollment opens at %s; the agent renews then "
	    "(--now asks the server anyway)",
	    when);
	return P11E_ERR_TOO_EARLY;
}

/* RENEW_DUE: the new key (or the current one: same-key renewal). */
static enum p11e_err
step_key(struct run *r)
{
	struct p11e_cred *c = r->c;
	struct p11e_buf spki;
	enum p11e_err err;
	char label[128];

	p11e_buf_init(&spki, 8192);
	if (c->new_idlen == 0 && !c->same_key) {
		if ((err = p11e_token_new_id(
			 r->s.tok, c->new_id, P11E_ID_RANDOM_LEN)) != P11E_OK) {
			err = p11e_session_fail(&r->s, err, r->detail);
			goto out;
		}
		c->new_idlen = P11E_ID_RANDOM_LEN;
		/* the intent (the id) is durable before C_GenerateKeyPair */
		if ((err = save(r->agent, c, r->detail)) != P11E_OK)
			goto out;
		p11e_crashpoint("renew-after-id-journaled");
	}
	if (c->same_key) {
		memcpy(c->new_id, c->id, c->idlen);
		c->new_idlen = c->idlen;
		err = p11e_der_set(&c->new_spki, c->spki.data, c->spki.len);
		if (err != P11E_OK)
			goto out;
	} else {
		err = p11e_token_key_adopt(
		    r->s.tok, c->new_id, c->new_idlen, &spki);
		if (err == P11E_ERR_KEY_NOT_FOUND) {
			snprintf(
			    label, sizeof(label), "p11enroll %s", c->service);
			p11e_buf_reset(&spki);
			err = p11e_token_keygen(r->s.tok, c->key_type,
			    c->new_id, c->new_idlen, label, &spki);
			if (err == P11E_ERR_TOKEN_FULL) {
				/* no room for a second key: keep this one */
				p11e_info("%s: the token has no room for a new "
					  "key: renewing with the same key",
				    c->name);
				c->same_key = true;
				c->new_idlen = 0;
				err = step_key(r);
				goto out;
			}
			if (err == P11E_OK)
				p11e_crashpoint("renew-after-keygen");
		} else if (err == P11E_OK) {
			p11e_info("%s: adopted the new key generated before a "
				  "restart",
			    c->name);
		}
		if (err != P11E_OK) {
			err = p11e_session_fail(&r->s, err, r->detail);
			goto out;
		}
		if ((err = p11e_der_set(&c->new_spki, spki.data, spki.len)) !=
		    P11E_OK)
			goto out;
	}
	c->state = P11E_CRED_RENEW_KEY_READY;
	err = save(r->agent, c, r->detail);
out:
	p11e_buf_clear(&spki);
	return err;
}

/* RENEW_KEY_READY: the CSR copies the current Subject and SAN. */
static enum p11e_err
step_csr(struct run *r)
{
	struct p11e_cred *c = r->c;
	struct p11e_csr_template tmpl = { NULL, NULL, 0 };
	struct p11e_buf csr;
	enum p11e_err err;

	p11e_buf_init(&csr, 64 * 1024);
	tmpl.copy_from = c->cert.data;
	tmpl.copy_from_len = c->cert.len;
	if ((err = p11e_token_csr(r->s.tok, c->new_id, c->new_idlen,
		 c->new_spki.data, c->new_spki.len, &tmpl, &csr)) != P11E_OK) {
		err = p11e_session_fail(&r->s, err, r->detail);
		goto out;
	}
	if ((err = p11e_der_set(&c->csr, csr.data, csr.len)) != P11E_OK)
		goto out;
	c->state = P11E_CRED_RENEW_SUBMITTED;
	/* the CSR is durable before it is sent */
	if ((err = save(r->agent, c, r->detail)) != P11E_OK)
		goto out;
	p11e_crashpoint("renew-after-csr-journaled");
out:
	p11e_buf_clear(&csr);
	return err;
}

/*
 * RENEW_SUBMITTED: simplereenroll over TLS authenticated by the current
 * certificate and its token key; the answer checked and journaled.
 */
static enum p11e_err
step_submit(struct run *r)
{
	struct p11e_cred *c = r->c;
	STACK_OF(X509) *cacerts = NULL, *issued = NULL;
	struct p11e_evp_key *key = NULL;
	const unsigned char *p = c->cert.data;
	unsigned char *der = NULL;
	X509 *cur = NULL, *leaf = NULL;
	uint64_t wait = 0;
	enum p11e_err err;
	int len, i;

	if ((err = p11e_http_cacerts(
		 r->h, &cacerts, r->detail, P11E_DETAIL_MAX)) != P11E_OK)
		goto out;
	if ((cur = d2i_X509(NULL, &p, (long)c->cert.len)) == NULL) {
		err = P11E_ERR_CRYPTO;
		goto out;
	}
	if ((err = p11e_token_evp_key(r->s.tok, c->id, c->idlen, &key)) !=
	    P11E_OK) {
		err = p11e_session_fail(&r->s, err, r->detail);
		goto out;
	}
	/* only the leaf: the server knows its CA (SSL_MODE_NO_AUTO_CHAIN) */
	if ((err = p11e_http_set_client_key(
		 r->h, p11e_evp_key_pkey(key), cur, NULL)) != P11E_OK)
		goto out;
	err = p11e_http_enroll(r->h, true, NULL, c->csr.data, c->csr.len,
	    &issued, &wait, r->detail, P11E_DETAIL_MAX);
	if (err == P11E_ERR_SERVER_BUSY && wait > 0)
		c->next_action = p11e_http_now() + (time_t)wait;
	if (err != P11E_OK)
		goto out;
	p11e_crashpoint("renew-after-submit");
	if ((err = p11e_est_check_issued(issued, cacerts, c->new_spki.data,
		 c->new_spki.len, p11e_http_now(), &leaf, r->detail,
		 P11E_DETAIL_MAX)) != P11E_OK) {
		p11e_error("%s: refusing the renewed certificate: %s", c->name,
		    r->detail);
		goto out;
	}
	err = P11E_ERR_CRYPTO;
	if ((len = i2d_X509(leaf, &der)) <= 0 ||
	    p11e_der_set(&c->new_cert, der, (size_t)len) != P11E_OK)
		goto out;
	for (i = 0; i < sk_X509_num(cacerts) && i < P11E_CRED_CHAIN_MAX; i++) {
		OPENSSL_free(der);
		der = NULL;
		if ((len = i2d_X509(sk_X509_value(cacerts, i), &der)) <= 0 ||
		    p11e_der_set(&c->chain[i], der, (size_t)len) != P11E_OK)
			goto out;
	}
	c->nchain = (size_t)i;
	c->state = P11E_CRED_RENEW_ISSUED;
	/* the certificate is durable before the token write (R31) */
	if ((err = save(r->agent, c, r->detail)) != P11E_OK)
		goto out;
	p11e_crashpoint("renew-after-cert-journaled");
out:
	/* the TLS client key goes before the libp11 context it lives in */
	p11e_http_free(r->h);
	r->h = NULL;
	p11e_evp_key_free(key);
	OPENSSL_free(der);
	X509_free(leaf);
	X509_free(cur);
	sk_X509_pop_free(cacerts, X509_free);
	sk_X509_pop_free(issued, X509_free);
	return err;
}

/* RENEW_ISSUED: the new certificate beside the old one, verified. */
static enum p11e_err
step_install(struct run *r, time_t grace)
{
	struct p11e_cred *c = r->c;
	enum p11e_err err;
	char label[128];
	bool added;
	size_t i;

	snprintf(label, sizeof(label), "p11enroll %s", c->service);
	if ((err = p11e_token_store_cert(r->s.tok, c->new_id, c->new_idlen,
		 c->new_cert.data, c->new_cert.len, label)) != P11E_OK)
		return p11e_session_fail(&r->s, err, r->detail);
	for (i = 0; i < c->nchain; i++) {
		if ((err = p11e_token_store_ca(r->s.tok, c->chain[i].data,
			 c->chain[i].len, &added)) != P11E_OK)
			return p11e_session_fail(&r->s, err, r->detail);
	}
	p11e_crashpoint("renew-after-token-write");
	if ((err = p11e_token_verify_pair(r->s.tok, c->new_id, c->new_idlen)) !=
	    P11E_OK)
		return p11e_session_fail(&r->s, err, r->detail);
	/* the new pair becomes the current one; the old one waits */
	memcpy(c->old_id, c->id, c->idlen);
	c->old_idlen = c->idlen;
	if ((err = p11e_der_set(&c->old_cert, c->cert.data, c->cert.len)) !=
		P11E_OK ||
	    (err = p11e_der_set(&c->cert, c->new_cert.data, c->new_cert.len)) !=
		P11E_OK ||
	    (err = p11e_der_set(&c->spki, c->new_spki.data, c->new_spki.len)) !=
		P11E_OK ||
	    (err = cert_meta(c)) != P11E_OK)
		return err;
	c->old_same_key = c->same_key;
	memcpy(c->id, c->new_id, c->new_idlen);
	c->idlen = c->new_idlen;
	c->new_idlen = 0;
	c->same_key = false;
	free(c->new_spki.data);
	free(c->new_cert.data);
	memset(&c->new_spki, 0, sizeof(c->new_spki));
	memset(&c->new_cert, 0, sizeof(c->new_cert));
	c->old_remove_at = p11e_http_now() + grace;
	if (c->old_remove_at == 0)
		c->old_remove_at = 1;
	c->state = P11E_CRED_INSTALLED;
	c->next_action = 0;
	c->retries = 0;
	c->wait = P11E_WAIT_NONE;
	c->notices = 0; /* a new certificate: its own notices */
	clear_error(c);
	if ((err = save(r->agent, c, r->detail)) != P11E_OK)
		return err;
	p11e_info("%s: renewed: serial %s, valid until %lld; the old pair "
		  "stays %lld s",
	    c->name, c->serial, (long long)c->not_after, (long long)grace);
	p11e_agent_event(r->agent, P11E_EVENT_RENEWED, c, p11e_http_now());
	p11e_crashpoint("renew-after-installed");
	return P11E_OK;
}

/*
 * Removes the replaced pair once its grace period is over, after proving
 * once more that the current certificate works with its key on the token.
 */
static enum p11e_err
remove_old(struct run *r)
{
	struct p11e_cred *c = r->c;
	unsigned int deleted = 0;
	enum p11e_err err;

	if (c->old_idlen == 0)
		return P11E_OK;
	if ((err = p11e_token_verify_pair(r->s.tok, c->id, c->idlen)) !=
	    P11E_OK)
		return p11e_session_fail(&r->s, err, r->detail);
	if (c->old_same_key) {
		/*
		 * XXX the old certificate shares the key's CKA_ID and the
		 * token layer deletes by id only: it stays on the token
		 * (expired certificates are ignored by browsers).
		 */
		p11e_info(
		    "%s: the old certificate shares the key: kept", c->name);
	} else {
		err = p11e_token_delete(
		    r->s.tok, c->old_id, c->old_idlen, &deleted);
		if (err != P11E_OK && err != P11E_ERR_KEY_NOT_FOUND)
			return p11e_session_fail(&r->s, err, r->detail);
		p11e_crashpoint("renew-after-old-removed");
		p11e_info("%s: the old key and certificate are removed (%u "
			  "objects)",
		    c->name, deleted);
	}
	c->old_idlen = 0;
	c->old_remove_at = 0;
	c->old_same_key = false;
	free(c->old_cert.data);
	memset(&c->old_cert, 0, sizeof(c->old_cert));
	return save(r->agent, c, r->detail);
}

/* A refused renewal: the old pair stays; the new key goes. */
static void
rejected(struct run *r, enum p11e_err err)
{
	struct p11e_cred *c = r->c;
	unsigned int deleted;

	c->state = err == P11E_ERR_CERT_REVOKED ? P11E_CRED_REVOKED
						: P11E_CRED_REJECTED;
	c->wait = P11E_WAIT_NONE;
	c->next_action = 0;
	set_error(c, err, r->detail);
	if (p11e_journal_save(r->agent->state_dir, c) != P11E_OK)
		return;
	p11e_agent_event(
	    r->agent, P11E_EVENT_RENEWAL_FAILED, c, p11e_http_now());
	if (!c->same_key && c->new_idlen > 0 && r->s.tok != NULL &&
	    p11e_token_delete(r->s.tok, c->new_id, c->new_idlen, &deleted) ==
		P11E_OK)
		p11e_info("%s: the unused new key is removed", c->name);
	c->new_idlen = 0;
	c->same_key = false;
	(void)p11e_journal_save(r->agent->state_dir, c);
}

static bool
server_transient(enum p11e_err err)
{
	return err == P11E_ERR_SERVER_UNREACHABLE ||
	    err == P11E_ERR_SERVER_BUSY || err == P11E_ERR_BAD_RESPONSE ||
	    err == P11E_ERR_SERVER_UNTRUSTED;
}

static bool
pin_problem(enum p11e_err err)
{
	return err == P11E_ERR_PIN_REQUIRED || err == P11E_ERR_PIN_INCORRECT ||
	    err == P11E_ERR_PIN_LOCKED || err == P11E_ERR_PIN_EXPIRED ||
	    err == P11E_ERR_PIN_FINAL_TRY;
}

/*
 * Takes c from INSTALLED (or a RENEW_* state) through the renewal, as far
 * as it goes.  What went wrong is journaled with what happens next.
 */
static enum p11e_err
renew_run(struct run *r)
{
	struct p11e_cred *c = r->c;
	struct p11e_http_service hs;
	time_t now = p11e_http_now(), grace;
	const char *mode = NULL;
	enum p11e_err err = P11E_OK;
	bool entered;
	char when[40];
	size_t n;

	svc_find(r->agent, c->service, &r->svc);
	hs.url = svc_str(&r->svc, "url");
	hs.server_pin = svc_str(&r->svc, "server-pin");
	hs.ca_file = svc_str(&r->svc, "ca-file");
	hs.proxy = svc_str(&r->svc, "proxy");
	if (hs.url == NULL) {
		snprintf(r->detail, P11E_DETAIL_MAX,
		    "the service '%s' is no longer configured", c->service);
		err = P11E_ERR_UNKNOWN_SERVICE;
		goto fail;
	}
	grace = (time_t)p11e_conf_get_u64(
	    r->svc.conf, r->svc.section, "grace-period", GRACE_DEFAULT);
	mode = svc_str(&r->svc, "renew-key");
	r->unattended = token_uri(c, &r->svc, r->uri, sizeof(r->uri));
	if ((err = p11e_http_new(&hs, &r->h)) != P11E_OK)
		goto fail;

	if (c->state == P11E_CRED_INSTALLED) {
		if ((err = check_window(r, now)) != P11E_OK)
			goto fail;
		c->state = P11E_CRED_RENEW_DUE;
		c->same_key = mode != NULL && strcmp(mode, "same") == 0;
		c->new_idlen = 0;
		c->wait = P11E_WAIT_NONE;
		c->next_action = 0;
		if ((err = save(r->agent, c, r->detail)) != P11E_OK)
			goto out;
		p11e_info("%s: renewing (serial %s, valid until %lld)", c->name,
		    c->serial, (long long)c->not_after);
		p11e_crashpoint("renew-after-due");
	}
	if (r->pin == NULL && !r->unattended) {
		snprintf(r->detail, P11E_DETAIL_MAX,
		    "renewal is due and needs the PIN of token '%s' (serial "
		    "%s): run 'p11enroll renew --credential %s'",
		    c->token_label, c->token_serial, c->name);
		err = P11E_ERR_PIN_REQUIRED;
		goto fail;
	}
	if ((err = p11e_session_open(
		 r->uri, r->pin, r->final_try, &r->s, r->detail)) != P11E_OK)
		goto fail;
	/*
	 * An old pair whose grace ended while no PIN was at hand; and one
	 * still in its grace when the next renewal starts (a very short
	 * lifetime): the oldest pair goes first, so there are never three.
	 */
	if (c->old_idlen > 0 &&
	    (c->old_remove_at <= now || c->state == P11E_CRED_RENEW_DUE) &&
	    (err = remove_old(r)) != P11E_OK)
		goto fail;
	if (c->state == P11E_CRED_RENEW_DUE && (err = step_key(r)) != P11E_OK)
		goto fail;
	if (c->state == P11E_CRED_RENEW_KEY_READY &&
	    (err = step_csr(r)) != P11E_OK)
		goto fail;
	if (c->state == P11E_CRED_RENEW_SUBMITTED &&
	    (err = step_submit(r)) != P11E_OK)
		goto fail;
	if (c->state == P11E_CRED_RENEW_ISSUED &&
	    (err = step_install(r, grace)) != P11E_OK)
		goto fail;
	goto out;
fail:
	if (err == P11E_ERR_TOO_EARLY) {
		/* the server's date, else the one we computed */
		time_t t = opens_at(r->detail);

		if (t > now)
			c->next_action = t + 1;
		else if (c->next_action <= now)
			c->next_action = backoff(c, now);
		c->wait = P11E_WAIT_NONE;
		utc(c->next_action, when, sizeof(when));
		p11e_info("%s: too early to renew; next attempt at %s", c->name,
		    when);
		if (c->state == P11E_CRED_INSTALLED)
			clear_error(c);
		else
			set_error(c, err, r->detail);
	} else if (err == P11E_ERR_KEY_IN_USE && c->same_key) {
		/*
		 * The server certifies a key once: the current pair stays
		 * as it is (nothing was generated), the renewal is tried
		 * again later in case the configuration changes.
		 */
		snprintf(r->detail, P11E_DETAIL_MAX,
		    "the server does not certify the same key again: %s, "
		    "then run 'p11enroll renew --credential %s'; the current "
		    "certificate stays until then",
		    mode != NULL && strcmp(mode, "same") == 0
			? "remove 'renew-key = same' from the service's "
			  "configuration (a new key is then generated)"
			: "make room on the token for a new key",
		    c->name);
		p11e_error("%s: renewal refused: %s", c->name, r->detail);
		c->state = P11E_CRED_INSTALLED;
		c->same_key = false;
		c->new_idlen = 0;
		c->wait = P11E_WAIT_NONE;
		c->next_action = backoff(c, now);
		set_error(c, err, r->detail);
		p11e_agent_event(
		    r->agent, P11E_EVENT_RENEWAL_FAILED, c, p11e_http_now());
	} else if (err == P11E_ERR_CERT_REVOKED || err == P11E_ERR_KEY_IN_USE ||
	    err == P11E_ERR_CSR_EXTENSIONS || err == P11E_ERR_KEY_POLICY ||
	    err == P11E_ERR_SERVER_REFUSED || err == P11E_ERR_UNKNOWN_SERVICE) {
		p11e_error("%s: renewal refused: %s", c->name, r->detail);
		rejected(r, err);
		goto out;
	} else if (p11e_token_absent(err)) {
		/*
		 * Looked for at the scheduler's token poll and at a udev
		 * event; still away, the record does not change (no write
		 * every few seconds).
		 */
		if (c->wait == P11E_WAIT_TOKEN)
			goto out;
		p11e_agent_insert_token(c, r->detail);
		p11e_info("%s: renewal: %s", c->name, r->detail);
		set_error(c, err, r->detail);
		c->wait = P11E_WAIT_TOKEN;
	} else if (server_transient(err)) {
		c->wait = P11E_WAIT_SERVER;
		if (c->next_action <= now)
			c->next_action = backoff(c, now);
		utc(c->next_action, when, sizeof(when));
		p11e_info(
		    "%s: %s; trying again at %s", c->name, r->detail, when);
		set_error(c, err, r->detail);
	} else if (pin_problem(err)) {
		/* never tried again by itself: p11enroll renew */
		entered = c->wait != P11E_WAIT_PIN;
		c->wait = P11E_WAIT_PIN;
		if (r->dialog && err != P11E_ERR_PIN_REQUIRED) {
			n = strlen(r->detail);
			snprintf(r->detail + n, P11E_DETAIL_MAX - n,
			    "%sThe PIN came from the PIN dialog: run "
			    "'p11enroll renew --credential %s' with the right "
			    "one",
			    n > 0 ? " " : "", c->name);
		}
		if (err == P11E_ERR_PIN_REQUIRED)
			p11e_info("%s: %s", c->name, r->detail);
		else
			p11e_error("%s: %s", c->name, r->detail);
		set_error(c, err, r->detail);
		if (entered && r->background) {
			/* durable first: told once per entry (the wait) */
			if (p11e_journal_save(r->agent->state_dir, c) !=
			    P11E_OK)
				goto out;
			p11e_agent_event(r->agent, P11E_EVENT_PIN_NEEDED, c,
			    p11e_http_now());
			/* no PIN source at all: ask the user on screen */
			if (err == P11E_ERR_PIN_REQUIRED)
				(void)p11e_pinentry_ask(r->agent, c);
			goto out;
		}
	} else {
		c->wait = P11E_WAIT_SERVER;
		c->next_action = backoff(c, now);
		set_error(c, err, r->detail);
	}
	(void)p11e_journal_save(r->agent->state_dir, c);
out:
	p11e_session_close(&r->s);
	p11e_http_free(r->h);
	r->h = NULL;
	p11e_conf_free(r->svc.user);
	r->svc.user = NULL;
	return err;
}

/* Whatever is due for one record: expiry, renewal, the old pair. */
static void
act(struct p11e_agent *agent, const char *name, time_t now)
{
	char detail[P11E_DETAIL_MAX] = "";
	struct p11e_cred c;
	struct run r;

	p11e_cred_init(&c);
	memset(&r, 0, sizeof(r));
	if (p11e_journal_load(
		agent->state_dir, name, &c, detail, sizeof(detail)) != P11E_OK)
		goto out;
	/* the scheduler's token poll or event: they look now */
	if (c.wait == P11E_WAIT_TOKEN)
		c.next_action = now;
	if (p11e_cred_due(&c, now) == 0 || p11e_cred_due(&c, now) > now)
		goto out;
	if (c.state == P11E_CRED_ISSUED) {
		/* an enrollment whose token was away at the write */
		svc_find(agent, c.service, &r.svc);
		r.unattended = token_uri(&c, &r.svc, r.uri, sizeof(r.uri));
		(void)p11e_agent_enroll_finish(
		    agent, &c, r.uri, r.unattended, detail);
		p11e_conf_free(r.svc.user);
		goto out;
	}
	if (now >= c.not_after) {
		expire(agent, &c, now);
		goto out;
	}
	if (notices(agent, &c, now))
		(void)p11e_journal_save(agent->state_dir, &c);
	memset(&r, 0, sizeof(r));
	r.agent = agent;
	r.c = &c;
	r.detail = detail;
	r.background = true;
	if (c.state == P11E_CRED_INSTALLED && c.old_idlen > 0 &&
	    c.old_remove_at > 0 && c.old_remove_at <= now &&
	    !renewal_due(&c, now)) {
		/* only the old pair is due */
		svc_find(agent, c.service, &r.svc);
		if (!token_uri(&c, &r.svc, r.uri, sizeof(r.uri))) {
			/* removed at the next renewal, which has a PIN */
			c.old_remove_at = 0;
			p11e_info("%s: the old pair is removed at the next "
				  "renewal (no unattended PIN)",
			    c.name);
			(void)p11e_journal_save(agent->state_dir, &c);
		} else if (p11e_session_open(
			       r.uri, NULL, false, &r.s, detail) == P11E_OK) {
			if (remove_old(&r) != P11E_OK)
				p11e_error("%s: %s", c.name, detail);
		} else {
			p11e_error("%s: cannot remove the old pair: %s", c.name,
			    detail);
			c.old_remove_at = now + RETRY_MIN;
			(void)p11e_journal_save(agent->state_dir, &c);
		}
		p11e_session_close(&r.s);
		p11e_conf_free(r.svc.user);
		goto out;
	}
	if (renewal_due(&c, now))
		(void)renew_run(&r);
out:
	p11e_cred_clear(&c);
}

struct scan {
	time_t now, next;
	char *due[DUE_MAX];
	size_t ndue;
	bool more;
	bool token_event; /* WAITING_TOKEN records are due now */
	time_t token_poll; /* else at this time */
	size_t token_waiting;
	struct p11e_agent *report; /* the first pass: what did not finish */
};

static void
scan_cb(void *data, const struct p11e_cred_brief *b)
{
	/* only the scheduling fields are set: enough for p11e_cred_due() */
	static struct p11e_cred c;
	struct scan *s = data;
	time_t t;

	if (s->report != NULL)
		p11e_agent_recover_one(s->report, b);
	if (b->damaged)
		return;
	p11e_cred_from_brief(b, &c);
	if ((t = p11e_cred_due(&c, s->now)) == 0)
		return;
	if (c.wait == P11E_WAIT_TOKEN) {
		/* one poll for all waiting records, not their own times */
		s->token_waiting++;
		t = s->token_event || s->token_poll <= s->now ? s->now
							      : s->token_poll;
	}
	if (t > s->now) {
		s->next = min_time(s->next, t);
	} else if (s->ndue < DUE_MAX) {
		if ((s->due[s->ndue] = strdup(b->name)) != NULL)
			s->ndue++;
	} else {
		s->more = true;
	}
}

time_t
p11e_agent_schedule(struct p11e_agent *agent)
{
	struct scan s;
	size_t i;
	time_t t;
	int pass;

	if (agent->state_dir[0] != '/')
		return p11e_agent_admin_tick(time(NULL));
	for (pass = 0;; pass++) {
		memset(&s, 0, sizeof(s));
		/* certificate times are the server's: so is now */
		s.now = p11e_http_now();
		s.token_event = pass == 0 && agent->token_event;
		s.token_poll = agent->token_poll_at;
		if (pass == 0 && !agent->reported) {
			s.report = agent;
			agent->reported = 1;
		}
		(void)p11e_journal_scan(agent->state_dir, scan_cb, &s);
		agent->token_waiting = s.token_waiting;
		if (s.ndue == 0 && !s.more)
			break;
		if (pass == 2) {
			/* something stays due: look again in a second */
			for (i = 0; i < s.ndue; i++)
				free(s.due[i]);
			s.next = s.now + 1;
			break;
		}
		/* their token work sees the tokens of now */
		p11e_agent_modules_drop();
		for (i = 0; i < s.ndue; i++) {
			act(agent, s.due[i], s.now);
			free(s.due[i]);
		}
		/* the waiting records were looked at: the next poll */
		if (s.token_waiting > 0 &&
		    (s.token_event || agent->token_poll_at <= s.now))
			agent->token_poll_at = s.now + P11E_TOKEN_POLL;
	}
	agent->token_event = 0;
	/* the timer runs on the local clock */
	if (s.next != 0)
		s.next -= (time_t)p11e_http_skew();
	/* the end of an idle admin session is a deadline too */
	if ((t = p11e_agent_admin_tick(time(NULL))) != 0 &&
	    (s.next == 0 || t < s.next))
		s.next = t;
	/* and the release of the modules an enrollment kept */
	if ((t = p11e_agent_modules_tick(time(NULL))) != 0 &&
	    (s.next == 0 || t < s.next))
		s.next = t;
	if (s.next != 0)
		p11e_debug(P11E_DEBUG_AGENT, "next deadline in %lld s",
		    (long long)(s.next - time(NULL)));
	return s.next;
}

/* Renew {credential, pin?, final_try?, now?} (doc/ipc.md). */
enum p11e_err
p11e_method_renew(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param allowed[] = {
		{ "credential", JSON_STRING, true },
		{ "pin", JSON_STRING, false },
		{ "final_try", JSON_TRUE, false },
		{ "now", JSON_TRUE, false },
		{ NULL, 0, false },
	};
	json_t *v = NULL;
	struct p11e_secret *pin = NULL;
	struct p11e_cred c;
	struct run r;
	char when[40];
	enum p11e_err err;

	p11e_cred_init(&c);
	if (agent->state_dir[0] != '/') {
		snprintf(detail, P11E_DETAIL_MAX,
		    "the agent has no state directory");
		return P11E_ERR_CONFIG;
	}
	if ((err = p11e_params_check(params, allowed, detail)) != P11E_OK)
		return err;
	if ((err = p11e_journal_load(agent->state_dir,
		 json_string_value(json_object_get(params, "credential")), &c,
		 detail, P11E_DETAIL_MAX)) != P11E_OK)
		goto out;
	if ((v = json_object_get(params, "pin")) != NULL &&
	    (pin = p11e_secret_new_from(
		 json_string_value(v), json_string_length(v))) == NULL) {
		snprintf(
		    detail, P11E_DETAIL_MAX, "the PIN is empty or too long");
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	if (c.state == P11E_CRED_EXPIRED ||
	    (c.state != P11E_CRED_REVOKED && c.state != P11E_CRED_REJECTED &&
		c.state != P11E_CRED_NEEDS_OPERATOR && c.cert.len > 0 &&
		time(NULL) >= c.not_after)) {
		utc(c.not_after, when, sizeof(when));
		snprintf(detail, P11E_DETAIL_MAX,
		    "credential %s (serial %s) expired at %s", c.name, c.serial,
		    when);
		if (c.state != P11E_CRED_EXPIRED)
			expire(agent, &c, p11e_http_now());
		err = P11E_ERR_CERT_EXPIRED;
		goto out;
	}
	if (c.state != P11E_CRED_INSTALLED &&
	    p11e_cred_next_step(&c) != P11E_STEP_RENEW) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "credential %s is %s%s%s: it cannot renew", c.name,
		    p11e_cred_state_name(c.state), c.last_error[0] ? ": " : "",
		    c.last_error);
		err = c.state == P11E_CRED_REVOKED ? P11E_ERR_CERT_REVOKED
						   : P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	memset(&r, 0, sizeof(r));
	r.agent = agent;
	r.c = &c;
	r.detail = detail;
	r.pin = pin;
	r.final_try = json_is_true(json_object_get(params, "final_try"));
	r.force = json_is_true(json_object_get(params, "now"));
	if (r.force)
		c.next_action = 0;
	err = renew_run(&r);
	/* a PIN dialog for it is not needed any more */
	if (c.wait != P11E_WAIT_PIN)
		p11e_pinentry_forget(agent, c.name);
	if (err == P11E_OK && (*result = p11e_agent_cred_json(&c)) == NULL)
		err = P11E_ERR_NOMEM;
out:
	p11e_secret_free(pin);
	p11e_cred_clear(&c);
	return err;
}

/* Loads the record of name (c initialised) that waits for a PIN. */
static bool
load_waiting_pin(struct p11e_agent *agent, const char *name,
    struct p11e_cred *c, char *detail)
{
	if (p11e_journal_load(agent->state_dir, name, c, detail,
		P11E_DETAIL_MAX) != P11E_OK) {
		p11e_error("%s: %s", name, detail);
		return false;
	}
	if (c->wait != P11E_WAIT_PIN) {
		p11e_info("%s: it no longer waits for a PIN", name);
		return false;
	}
	return true;
}

void
p11e_agent_renew_pin(
    struct p11e_agent *agent, const char *name, const struct p11e_secret *pin)
{
	char detail[P11E_DETAIL_MAX] = "";
	struct p11e_cred c;
	struct run r;

	p11e_cred_init(&c);
	if (!load_waiting_pin(agent, name, &c, detail))
		goto out;
	if (c.state != P11E_CRED_INSTALLED &&
	    p11e_cred_next_step(&c) != P11E_STEP_RENEW) {
		p11e_info("%s: it cannot renew now: the PIN from the dialog "
			  "is not used",
		    name);
		goto out;
	}
	if (c.cert.len > 0 && p11e_http_now() >= c.not_after) {
		expire(agent, &c, p11e_http_now());
		goto out;
	}
	/* as p11enroll renew with a PIN: no final try, no --now */
	r = (struct run){ .agent = agent,
		.c = &c,
		.detail = detail,
		.pin = pin,
		.dialog = true };
	(void)renew_run(&r);
out:
	p11e_cred_clear(&c);
}

void
p11e_agent_pin_unanswered(
    struct p11e_agent *agent, const char *name, const char *why)
{
	char detail[P11E_DETAIL_MAX] = "";
	struct p11e_cred c;

	p11e_cred_init(&c);
	if (!load_waiting_pin(agent, name, &c, detail))
		goto out;
	snprintf(detail, sizeof(detail),
	    "%s; the renewal waits for the PIN of token '%s' (serial %s): "
	    "run 'p11enroll renew --credential %s'",
	    why, c.token_label, c.token_serial, c.name);
	p11e_info("%s: %s", c.name, detail);
	set_error(&c, P11E_ERR_PIN_REQUIRED, detail);
	(void)p11e_journal_save(agent->state_dir, &c);
out:
	p11e_cred_clear(&c);
}
