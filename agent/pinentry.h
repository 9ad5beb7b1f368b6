/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_PINENTRY_H
#define P11E_PINENTRY_H

/*
 * The PIN of a background renewal asked through pinentry
 * (doc/p11enrolld.8 "PIN"): when a renewal of the agent's own enters
 * WAITING_PIN and [agent] pinentry finds a program, the agent runs it
 * (fork and exec, no shell) and speaks its Assuan protocol over two
 * pipes watched by the server's poll loop, so a dialog never blocks the
 * agent.  One dialog at a time (others queue), one attempt per entry
 * into WAITING_PIN, killed after [agent] pinentry-timeout.  The PIN
 * lives in a struct p11e_secret only, is used for one renewal and wiped.
 */

#include <stdbool.h>

#include "agent/agent.h"
#include "agent/journal.h"

/*
 * Asks for c's PIN when [agent] pinentry finds a program (auto: pinentry
 * on PATH, when DISPLAY or WAYLAND_DISPLAY is set or [agent]
 * pinentry-tty names a terminal).  Returns whether a dialog was started
 * or queued; the outcome comes later through p11e_pinentry_io() or
 * p11e_pinentry_tick().
 */
bool p11e_pinentry_ask(struct p11e_agent *agent, const struct p11e_cred *c);

/* A dialog is open or queued (the agent does not rest meanwhile). */
bool p11e_pinentry_busy(void);

/* The descriptor the poll loop watches for input (-1: no dialog). */
int p11e_pinentry_fd(void);

/* Milliseconds until the dialog's deadline (-1: no dialog). */
int p11e_pinentry_timeout_ms(void);

/* The descriptor is readable (or hung up): reads and answers. */
void p11e_pinentry_io(struct p11e_agent *agent);

/* Ends a dialog past its deadline (killed, the credential waits). */
void p11e_pinentry_tick(struct p11e_agent *agent);

/*
 * The credential no longer waits for a PIN (p11enroll renew brought
 * one): its dialog is closed (and the next one opened), or it leaves the
 * queue.
 */
void p11e_pinentry_forget(struct p11e_agent *agent, const char *name);

/* At exit: the dialog killed, the queue emptied. */
void p11e_pinentry_stop(void);

/*
 * agent/renew.c: what a dialog brought.  The renewal of name, still
 * waiting for a PIN, goes on with pin exactly as p11enroll renew with a
 * PIN would (one login, logout after; a wrong PIN leaves it in
 * WAITING_PIN, never tried again).
 */
void p11e_agent_renew_pin(
    struct p11e_agent *agent, const char *name, const struct p11e_secret *pin);

/* agent/renew.c: no PIN came (why: cancelled, timed out, failed). */
void p11e_agent_pin_unanswered(
    struct p11e_agent *agent, const char *name, const char *why);

#endif /* P11E_PINENTRY_H */
