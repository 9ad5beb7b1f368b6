/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_ADMIN_H
#define P11E_ADMIN_H

/*
 * The administrator API of p11enroll-ra serve, /api/v1/admin/ (DESIGN §4,
 * doc/protocol.md): the admin session (client certificate + contract PIN
 * + grid challenge), the user list, reissue / revoke / keep with the
 * confirmation PIN, user registration, unlock and OTP-token assignment,
 * the audit trail and logout.  server/serve.c routes
 * every path under /api/v1/admin/ here; this module borrows its
 * database connections from the server's pool.
 */

#include <stdbool.h>
#include <time.h>

#include <openssl/x509.h>

#include "common/err.h"
#include "server/db-pool.h"
#include "server/http.h"
#include "server/ra.h"

#define P11E_ADMIN_PREFIX "/api/v1/admin/"

struct p11e_admin;

/*
 * The admin API of ra (borrowed, outlives it), with the connections of
 * pool (borrowed, outlives it) and the store of the issuing CA (borrowed)
 * to verify client certificates against.
 */
enum p11e_err p11e_admin_new(struct p11e_ra *ra, struct p11e_db_pool *pool,
    X509_STORE *store, struct p11e_admin **out);

void p11e_admin_free(struct p11e_admin *a);

/* Whether path belongs to the admin API. */
bool p11e_admin_path(const char *path);

/* Answers one request under P11E_ADMIN_PREFIX (thread-safe). */
void
p11e_admin_handle(struct p11e_admin *a, const struct p11e_http_request *req,
    struct p11e_http_response *resp, time_t now);

#endif /* P11E_ADMIN_H */
