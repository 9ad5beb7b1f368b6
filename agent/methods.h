/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_METHODS_H
#define P11E_METHODS_H

#include <stdbool.h>

#include <jansson.h>

#include "agent/agent.h"
#include "agent/journal.h"
#include "common/err.h"

/*
 * The agent's IPC methods (doc/ipc.md).  Each takes the call's parameters
 * (borrowed), sets *result to a new object on success, and on failure may
 * write a sentence for the user into detail (P11E_DETAIL_MAX bytes).
 */

#define P11E_DETAIL_MAX 2048

struct p11e_http;

/* One allowed parameter of a method. */
struct p11e_param {
	const char *name; /* NULL ends the list */
	json_type type;
	bool required;
};

/*
 * Checks params against allowed: required ones present, types right, no
 * unknown name.  P11E_ERR_INVALID_PARAMETER with detail otherwise.
 */
enum p11e_err p11e_params_check(
    json_t *params, const struct p11e_param *allowed, char *detail);

/* agent/tokens.c: the token layer's verbs. */
enum p11e_err p11e_method_list_tokens(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_list_objects(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_generate_key(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_make_csr(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_import_certificates(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_delete_objects(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);

/* agent/enroll.c: services, enrollment, the credential list. */
enum p11e_err p11e_method_add_service(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_enroll_key(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_enroll(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_list_credentials(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);

/*
 * A credential waiting for its token (WAITING_TOKEN) is looked at again
 * this often (seconds), and at once on a udev event, only while one
 * waits.
 */
#define P11E_TOKEN_POLL 3

/* Whether err means the token is not there (absent or not found). */
bool p11e_token_absent(enum p11e_err err);

/* Puts "insert the token 'LABEL' (serial S): ..." for c before detail. */
void p11e_agent_insert_token(const struct p11e_cred *c, char *detail);

/*
 * A token opened and logged in for one agent call (agent/enroll.c):
 * p11e_session_open() loads the modules, opens uri's token and logs in
 * (the detail set on failure, nothing left open); _close() logs out and
 * releases (also on a closed one); _fail() copies the token layer's
 * detail for err.
 */
struct p11e_session {
	struct p11e_p11 *p11;
	struct p11e_token *tok;
};

enum p11e_err p11e_session_open(const char *uri, const struct p11e_secret *pin,
    bool final_try, struct p11e_session *s, char *detail);
void p11e_session_close(struct p11e_session *s);
enum p11e_err
p11e_session_fail(struct p11e_session *s, enum p11e_err err, char *detail);

/*
 * The modules initialized for EnrollKey stay so, with no session and no
 * login, for the Enroll of the same credential only (the password and
 * one-time password are asked in between): kept at most
 * P11E_MODULES_KEEP seconds, released at that Enroll's end (done or
 * failed), and before any other call or scheduled work uses a token (a
 * fresh C_Initialize is what shows SoftHSM2 a new token).  _drop()
 * releases them now; _tick() releases them once expired and returns when
 * to look again (0: none kept); called by p11e_agent_schedule().
 */
#define P11E_MODULES_KEEP 30
void p11e_agent_modules_drop(void);
time_t p11e_agent_modules_tick(time_t now);

/*
 * base (a credential's token URI) with the pin-source attribute of the
 * URI from (a service's or the caller's), when from has one: the PIN
 * file of unattended work, the token still the journaled one.  Returns
 * whether one was added (agent/enroll.c).
 */
bool p11e_agent_uri_pin_source(
    const char *base, const char *from, char *out, size_t outlen);

/*
 * An ISSUED record waiting for its token, at a poll or a token event:
 * when the token with c's identity (serial included) is present, writes
 * and verifies the certificate through uri (c's token URI with the
 * service's pin-source when unattended) and saves c INSTALLED; without
 * an unattended PIN it only stops waiting and says to resume.  Still
 * absent: c->next_action is the next poll.  Saves c.
 */
enum p11e_err p11e_agent_enroll_finish(struct p11e_agent *agent,
    struct p11e_cred *c, const char *uri, bool unattended, char *detail);

/*
 * agent/enroll.c: the HTTP client of the service name (a system service
 * wins over a user's of the same name); detail says what is missing.
 */
enum p11e_err p11e_agent_service_http(struct p11e_agent *agent,
    const char *name, struct p11e_http **out, char *detail);

/* agent/doctor.c: the checks of p11enroll doctor (reads only). */
enum p11e_err p11e_method_doctor(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);

/* agent/renew.c: renewal by hand. */
enum p11e_err p11e_method_renew(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);

/* agent/admin.c: the administrator API (doc/ipc.md "Admin"). */
enum p11e_err p11e_method_admin_login(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_admin_grid(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_admin_status(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_admin_users(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_admin_certificate(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_admin_user_add(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_admin_unlock(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_admin_otp(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_admin_audit(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);
enum p11e_err p11e_method_admin_logout(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);

/*
 * Forgets an admin session idle for longer than the server keeps it;
 * returns when to look again (0: no admin session).  Called by
 * p11e_agent_schedule().
 */
time_t p11e_agent_admin_tick(time_t now);

/* An admin session (or its pending grid step) is held in memory. */
bool p11e_agent_admin_busy(void);

struct p11e_conf;
struct p11e_cred;

/* A credential record as ListCredentials shows it (a new object). */
json_t *p11e_agent_cred_json(const struct p11e_cred *c);

/*
 * When the agent must next act on c (expiry, renewal, the end of a
 * replaced pair's grace period, a retry), as a time; 0 for never (the
 * credential waits for a person).  A time <= now is due.
 */
time_t p11e_cred_due(const struct p11e_cred *c, time_t now);

/*
 * Acts on every due credential (agent/renew.c) and returns the next
 * deadline, 0 when nothing is scheduled.
 */
time_t p11e_agent_schedule(struct p11e_agent *agent);

/*
 * The user's own services (AddService): STATE_DIR/services.d/ *.conf,
 * loaded afresh (free with p11e_conf_free()).
 */
enum p11e_err
p11e_agent_user_conf(struct p11e_agent *agent, struct p11e_conf **out);

/*
 * Logs b's credential if it did not finish (the scheduler's first pass,
 * at agent start: an INSTALLED record is not read).
 */
void p11e_agent_recover_one(
    struct p11e_agent *agent, const struct p11e_cred_brief *b);

#endif /* P11E_METHODS_H */
