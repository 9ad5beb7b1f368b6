/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_CLI_DOCTOR_H
#define P11E_CLI_DOCTOR_H

#include <jansson.h>

#include "cli/cli.h"
#include "common/err.h"

/* cli/doctor.c: p11enroll doctor [--json] (p11enroll(1)). */
int p11e_cmd_doctor(struct p11e_cli *cli, int argc, char **argv);

/*
 * Appends one check to checks: what was checked (check), of what
 * (subject), "ok", "warning" or "problem", a sentence, and what to do
 * (fix, NULL for none).
 */
enum p11e_err
p11e_doctor_add(json_t *checks, const char *check, const char *subject,
    const char *status, const char *message, const char *fix);

/* cli/browser.c: p11-kit-proxy and the browsers' NSS databases. */
enum p11e_err p11e_browser_doctor(json_t *checks);

#endif /* P11E_CLI_DOCTOR_H */
