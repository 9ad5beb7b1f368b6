/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stddef.h>

#include "common/conf.h"

/*
 * The keys of p11enrolld and p11enroll.  Documented in
 * doc/p11enroll.conf.5: change both together.  Defaults live with the
 * code that reads a key (the getters take them).  No key may ever hold a
 * PIN, password or other secret.
 */
const struct p11e_conf_key p11e_agent_schema[] = {
	{ "agent", "state-dir", P11E_CONF_PATH, 0, 0, NULL,
	    "directory for the agent's journal and state" },
	{ "agent", "log-level", P11E_CONF_ENUM, 0, 0,
	    "error|info|verbose|debug", "how much the agent logs" },
	{ "agent", "clock-skew-limit", P11E_CONF_DURATION, 1, 3650ULL * 86400,
	    NULL,
	    "a server Date further off than this corrects the schedule "
	    "(default 5m)" },
	{ "agent", "rest-after", P11E_CONF_DURATION, 0, 86400, NULL,
	    "with nothing to do for this long the agent rests in a small "
	    "process until the next deadline or connection; 0: never "
	    "(default 1m)" },
	{ "agent", "pinentry", P11E_CONF_WORD_OR_PATH, 0, 0, "auto|no",
	    "the PIN dialog of background renewals: auto (pinentry on PATH "
	    "when there is a display or a pinentry-tty), no, or a program" },
	{ "agent", "pinentry-tty", P11E_CONF_PATH, 0, 0, NULL,
	    "the terminal a PIN dialog is shown on (OPTION ttyname)" },
	{ "agent", "pinentry-timeout", P11E_CONF_DURATION, 5, 3600, NULL,
	    "how long a PIN dialog stays open (default 2m)" },
	{ "notify", "hook", P11E_CONF_PATH, 0, 0, NULL,
	    "command run at expiry notices, expiry, renewals and when a "
	    "renewal needs the PIN" },
	{ "notify", "desktop", P11E_CONF_BOOL, 0, 0, NULL,
	    "desktop notifications when a session bus exists (default yes)" },
	{ "cli", "autostart", P11E_CONF_BOOL, 0, 0, NULL,
	    "start the agent when it is not running (default yes)" },
	{ "service *", "url", P11E_CONF_URL, 0, 0, NULL,
	    "base URL of the enrollment service (https only)" },
	{ "service *", "server-pin", P11E_CONF_PIN_SHA256, 0, 0, NULL,
	    "pin of the server's public key: sha256//BASE64" },
	{ "service *", "ca-file", P11E_CONF_PATH, 0, 0, NULL,
	    "CA certificates (PEM) that verify the server" },
	{ "service *", "proxy", P11E_CONF_STRING, 0, 0, NULL,
	    "HTTP proxy for this service, as curl takes it" },
	{ "service *", "token", P11E_CONF_STRING, 0, 0,
	    "pkcs11:", "PKCS#11 URI of the token that holds the key" },
	{ "service *", "renew-key", P11E_CONF_ENUM, 0, 0, "new|same",
	    "renew with a new key (default) or the same key" },
	{ "service *", "grace-period", P11E_CONF_DURATION, 0, 366ULL * 86400,
	    NULL,
	    "how long the replaced key and certificate stay (default 1d)" },
	{ NULL, NULL, P11E_CONF_STRING, 0, 0, NULL, NULL },
};
