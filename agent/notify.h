/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_NOTIFY_H
#define P11E_NOTIFY_H

/*
 * Events the agent tells the user about by itself (doc/p11enrolld.8
 * "Notices"): a desktop notification when a session bus exists
 * (notify-send, else gdbus; [notify] desktop = no turns it off) and the
 * [notify] hook command, run with P11ENROLL_EVENT, P11ENROLL_CREDENTIAL,
 * P11ENROLL_SERVICE, P11ENROLL_DAYS_LEFT, P11ENROLL_NOT_AFTER,
 * P11ENROLL_SUBJECT, P11ENROLL_SERIAL and P11ENROLL_TOKEN_URI in its
 * environment (and P11ENROLL_COMMAND for pin-needed).  Both run
 * detached: the agent never waits for them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "agent/agent.h"
#include "agent/journal.h"

enum p11e_event {
	P11E_EVENT_EXPIRY_NOTICE, /* 30, 14, 7, 1 days before notAfter */
	P11E_EVENT_EXPIRED,
	P11E_EVENT_RENEWED,
	P11E_EVENT_RENEWAL_FAILED, /* the server refused: REJECTED, REVOKED */
	P11E_EVENT_PIN_NEEDED, /* the agent's renewal entered WAITING_PIN */
};

/*
 * Tells about ev for c (now: the server's time, for the days left).  The
 * expiry notice is logged here; the other events are logged by the code
 * that causes them.  Remembering that an event was told is the caller's.
 */
void p11e_agent_event(struct p11e_agent *agent, enum p11e_event ev,
    const struct p11e_cred *c, time_t now);

/* A helper's environment, built entry by entry (never a secret). */
#define P11E_ENV_MAX 24
struct p11e_env {
	char *v[P11E_ENV_MAX + 1];
	size_t n;
};

/* Adds NAME=value (nothing when value is NULL or the list is full). */
void p11e_env_add(struct p11e_env *e, const char *name, const char *value);

/* Adds the agent's own value of name, when set. */
void p11e_env_pass(struct p11e_env *e, const char *name);

void p11e_env_clear(struct p11e_env *e);

/* The path of an executable name on $PATH into out, or false. */
bool p11e_find_prog(const char *name, char *out, size_t outlen);

#endif /* P11E_NOTIFY_H */
