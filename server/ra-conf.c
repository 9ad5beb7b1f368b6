/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "server/ca.h"
#include "server/ra-conf.h"

/*
 * Documented in p11enroll-ra(8): change both together.  No key may ever
 * hold a PIN, password or other secret (the CA key's PIN comes from the
 * pin-source file the key-uri names).
 */
const struct p11e_conf_key p11e_ra_schema[] = {
	{ "server", "listen", P11E_CONF_STRING, 0, 128, NULL,
	    "address and port to listen on (127.0.0.1:8443)" },
	{ "server", "url", P11E_CONF_URL, 0, 0, NULL,
	    "the service URL users are given in invitations" },
	{ "server", "tls-cert", P11E_CONF_PATH, 0, 0, NULL,
	    "the server's TLS certificate chain (PEM)" },
	{ "server", "tls-key", P11E_CONF_PATH, 0, 0, NULL,
	    "the server's TLS key (PEM, 0600)" },
	{ "server", "threads", P11E_CONF_UINT, 1, 256, NULL,
	    "request handler threads (default: 2 per CPU, at least 4)" },
	{ "server", "rate-limit", P11E_CONF_UINT, 1, 100000, NULL,
	    "login and re-delivery attempts per minute and source address "
	    "(10)" },
	{ "server", "rate-burst", P11E_CONF_UINT, 1, 100000, NULL,
	    "attempts allowed at once per source address (5)" },
	{ "server", "hash-workers", P11E_CONF_UINT, 1, 256, NULL,
	    "password hashes computed at once (default: the CPUs)" },
	{ "ca", "cert", P11E_CONF_PATH, 0, 0, NULL,
	    "the issuing CA certificate (PEM)" },
	{ "ca", "key", P11E_CONF_PATH, 0, 0, NULL,
	    "the issuing CA key (PEM, 0600)" },
	{ "ca", "key-uri", P11E_CONF_STRING, 0, 1024, "pkcs11:",
	    "PKCS#11 URI of the CA key (with id= and pin-source=file:)" },
	{ "policy", "validity", P11E_CONF_DURATION, 60, 3650ULL * 86400, NULL,
	    "certificate lifetime (default 366d)" },
	{ "policy", "user-validity", P11E_CONF_DURATION, 1, 3650ULL * 86400,
	    NULL,
	    "lifetime of users' certificates (default: validity; "
	    "administrators' always have validity)" },
	{ "policy", "backdate", P11E_CONF_DURATION, 0, 86400, NULL,
	    "notBefore this long before issuance (default 5m)" },
	{ "policy", "renew-before", P11E_CONF_DURATION, 0, 3650ULL * 86400,
	    NULL, "re-enrollment allowed this long before expiry (30d)" },
	{ "policy", "window", P11E_CONF_DURATION, 60, 366ULL * 86400, NULL,
	    "acquisition window after user add or reissue (14d)" },
	{ "policy", "token-lifetime", P11E_CONF_DURATION, 600, 86400, NULL,
	    "enrollment token lifetime (10m, at least 10m)" },
	{ "policy", "otp-step", P11E_CONF_ENUM, 0, 0, "30|60",
	    "TOTP time step in seconds (30)" },
	{ "policy", "otp-skew", P11E_CONF_UINT, 0, 1, NULL,
	    "TOTP steps accepted either side of now (1)" },
	{ "policy", "max-failures", P11E_CONF_UINT, 1, 10, NULL,
	    "consecutive password/PIN/OTP failures before the lock (5)" },
	{ "policy", "grid-max-failures", P11E_CONF_UINT, 1, 5, NULL,
	    "consecutive grid-card failures before the lock (3)" },
	{ "policy", "admin-idle-timeout", P11E_CONF_DURATION, 1, 86400, NULL,
	    "an admin token ends after this long unused (15m)" },
	{ "policy", "admin-lifetime", P11E_CONF_DURATION, 60, 7ULL * 86400,
	    NULL, "an admin token ends this long after login at most (12h)" },
	{ "policy", "key-types", P11E_CONF_STRING, 0, 128, NULL,
	    "key types accepted in CSRs (ec-p256,ec-p384,rsa-2048,...)" },
	{ NULL, NULL, P11E_CONF_STRING, 0, 0, NULL, NULL },
};

void
p11e_ra_policy_defaults(struct p11e_ra_policy *p)
{
	p->validity = (uint64_t)P11E_CA_DEFAULT_VALIDITY;
	p->user_validity = p->validity;
	p->backdate = (uint64_t)P11E_CA_DEFAULT_BACKDATE;
	p->renew_before = 30ULL * 86400;
	p->window = 14ULL * 86400;
	p->token_lifetime = 600;
	p->otp_step = 30;
	p->otp_skew = 1;
	p->max_failures = 5;
	p->grid_max_failures = 3;
	p->key_types = P11E_CA_KEY_ALL;
}

enum p11e_err
p11e_ra_config_load(const char *path, struct p11e_ra_config *cfg)
{
	struct p11e_ra_policy *p = &cfg->policy;
	const struct p11e_conf *c;
	const char *s;
	char detail[160];
	enum p11e_err err;

	memset(cfg, 0, sizeof(*cfg));
	p11e_ra_policy_defaults(p);
	/* drop-ins: ra.conf.d beside the file */
	{
		char dropin[4096];

		snprintf(dropin, sizeof(dropin), "%s.d", path);
		if ((err = p11e_conf_load(p11e_ra_schema, path, dropin, NULL,
			 NULL, &cfg->conf)) != P11E_OK)
			return err;
	}
	c = cfg->conf;
	cfg->listen = p11e_conf_get_str(c, "server", "listen");
	if (cfg->listen == NULL)
		cfg->listen = "127.0.0.1:8443";
	cfg->url = p11e_conf_get_str(c, "server", "url");
	cfg->tls_cert = p11e_conf_get_str(c, "server", "tls-cert");
	cfg->tls_key = p11e_conf_get_str(c, "server", "tls-key");
	cfg->ca_cert = p11e_conf_get_str(c, "ca", "cert");
	cfg->ca_key = p11e_conf_get_str(c, "ca", "key");
	cfg->ca_key_uri = p11e_conf_get_str(c, "ca", "key-uri");
	if ((cfg->ca_key != NULL) == (cfg->ca_key_uri != NULL)) {
		p11e_error(
		    "%s: [ca] needs exactly one of key and key-uri", path);
		goto bad;
	}
	p->validity = p11e_conf_get_u64(c, "policy", "validity", p->validity);
	p->user_validity =
	    p11e_conf_get_u64(c, "policy", "user-validity", p->validity);
	p->backdate = p11e_conf_get_u64(c, "policy", "backdate", p->backdate);
	p->renew_before =
	    p11e_conf_get_u64(c, "policy", "renew-before", p->renew_before);
	p->window = p11e_conf_get_u64(c, "policy", "window", p->window);
	p->token_lifetime =
	    p11e_conf_get_u64(c, "policy", "token-lifetime", p->token_lifetime);
	s = p11e_conf_get_str(c, "policy", "otp-step");
	if (s != NULL)
		p->otp_step = strcmp(s, "60") == 0 ? 60 : 30;
	p->otp_skew = (unsigned int)p11e_conf_get_u64(
	    c, "policy", "otp-skew", p->otp_skew);
	p->max_failures = (unsigned int)p11e_conf_get_u64(
	    c, "policy", "max-failures", p->max_failures);
	p->grid_max_failures = (unsigned int)p11e_conf_get_u64(
	    c, "policy", "grid-max-failures", p->grid_max_failures);
	s = p11e_conf_get_str(c, "policy", "key-types");
	if (s != NULL &&
	    p11e_ca_key_types_parse(s, &p->key_types, detail, sizeof(detail)) !=
		P11E_OK) {
		p11e_error("%s: key-types: %s", path, detail);
		goto bad;
	}
	return P11E_OK;
bad:
	p11e_ra_config_clear(cfg);
	return P11E_ERR_CONFIG;
}

void
p11e_ra_config_clear(struct p11e_ra_config *cfg)
{
	p11e_conf_free(cfg->conf);
	memset(cfg, 0, sizeof(*cfg));
}
