/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_CRASHPOINT_H
#define P11E_CRASHPOINT_H

/*
 * Crash points for kill -9 tests.  Code calls p11e_crashpoint("name") at
 * each step whose interruption matters (after a journal write, after a
 * key generation, ...).  When the environment variable
 * P11ENROLL_CRASHPOINT names that point, the process kills itself with
 * SIGKILL right there: no atexit handlers, no stdio flush, no cleanup,
 * exactly as an outside `kill -9` would leave things.
 *
 * P11ENROLL_CRASHPOINT is a comma separated list of entries, each either
 * "name" (crash the first time the point is reached) or "name:N" (crash
 * the N-th time, N >= 1).  Names match exactly.  The variable is read
 * once, at the first call; a malformed entry is reported on standard
 * error and ignored.  At most P11E_CRASHPOINT_MAX entries are used.
 *
 * Without the variable a call costs one branch.  Safe to call from
 * several threads (the hit counters are atomic).
 */

#define P11E_CRASHPOINT_MAX 16

void p11e_crashpoint(const char *name);

#endif /* P11E_CRASHPOINT_H */
