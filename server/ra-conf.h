/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_RA_CONF_H
#define P11E_RA_CONF_H

/*
 * The RA's configuration, DIR/ra.conf (common/conf.h format, own
 * schema), and the policy read from it with its defaults (DESIGN §4).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/err.h"

/* The schema of ra.conf; documented in p11enroll-ra(8). */
extern const struct p11e_conf_key p11e_ra_schema[];

/* File names inside the RA directory. */
#define P11E_RA_CONF "ra.conf"
#define P11E_RA_DB "ra.db"
#define P11E_RA_DATA_KEY "data.key"
#define P11E_RA_CA_CERT "ca.crt"
#define P11E_RA_CA_KEY "ca.key"
#define P11E_RA_ROOT_CA_CERT "root-ca.crt"
#define P11E_RA_ROOT_CA_KEY "root-ca.key"
#define P11E_RA_TLS_CERT "tls.crt"
#define P11E_RA_TLS_KEY "tls.key"
#define P11E_RA_SERVER_CA_CERT "server-ca.crt"
#define P11E_RA_SERVER_CA_KEY "server-ca.key"

struct p11e_ra_policy {
	uint64_t validity; /* s; default 366 d */
	uint64_t user_validity; /* s, role user; default validity */
	uint64_t backdate; /* s; default 5 min */
	uint64_t renew_before; /* s; default 30 d */
	uint64_t window; /* acquisition window, s; default 14 d */
	uint64_t token_lifetime; /* enrollment token, s; default 10 min */
	unsigned int otp_step; /* s; default 30 */
	unsigned int otp_skew; /* steps; default 1 */
	unsigned int max_failures; /* password, PIN, OTP; default 5 */
	unsigned int grid_max_failures; /* default 3 */
	unsigned int key_types; /* mask of enum p11e_ca_key */
};

/* Everything the RA reads from its directory's ra.conf. */
struct p11e_ra_config {
	struct p11e_conf *conf; /* owned */
	const char *listen; /* borrowed from conf; default "127.0.0.1:8443" */
	const char *url; /* may be NULL */
	const char *tls_cert, *tls_key;
	const char *ca_cert, *ca_key, *ca_key_uri;
	struct p11e_ra_policy policy;
};

/* The defaults of struct p11e_ra_policy. */
void p11e_ra_policy_defaults(struct p11e_ra_policy *policy);

/*
 * Loads path (problems are logged as "file:line: message") and fills
 * cfg.  P11E_ERR_CONFIG when the file is invalid (also for a bad
 * key-types list, or [ca] with both key and key-uri or neither).
 */
enum p11e_err p11e_ra_config_load(const char *path, struct p11e_ra_config *cfg);

/* Frees what cfg holds; the struct can be reused. */
void p11e_ra_config_clear(struct p11e_ra_config *cfg);

#endif /* P11E_RA_CONF_H */
