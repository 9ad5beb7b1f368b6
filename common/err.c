/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <string.h>

#include "common/err.h"

/*
 * No default: with -Wswitch (part of -Wall) a value added to the enum but
 * not here is a compile error under --enable-werror.
 */
const char *
p11e_strerror(enum p11e_err err)
{
	switch (err) {
	case P11E_OK:
		return "success";
	case P11E_ERR_NOMEM:
		return "out of memory";
	case P11E_ERR_SYSTEM:
		return "system call failed";
	case P11E_ERR_IO:
		return "input/output error";
	case P11E_ERR_CONFIG:
		return "configuration error";
	case P11E_ERR_PARSE:
		return "malformed input";
	case P11E_ERR_TOO_LARGE:
		return "input too large";
	case P11E_ERR_RANGE:
		return "number out of range";
	case P11E_ERR_AGENT_UNREACHABLE:
		return "the agent is not running";
	case P11E_ERR_AGENT_RUNNING:
		return "another agent is already running for this user";
	case P11E_ERR_PEER_REFUSED:
		return "connection refused: the peer is not the agent's user";
	case P11E_ERR_PROTOCOL:
		return "protocol error between the command and the agent";
	case P11E_ERR_UNKNOWN_METHOD:
		return "the agent does not know this method";
	case P11E_ERR_INVALID_PARAMETER:
		return "invalid parameter";
	case P11E_ERR_NO_RUNTIME_DIR:
		return "no runtime directory: XDG_RUNTIME_DIR is not set";
	case P11E_ERR_UNSAFE_PATH:
		return "unsafe ownership or permissions on a private path";
	case P11E_ERR_CONNECTION_CLOSED:
		return "the connection was closed before the reply";
	case P11E_ERR_TIMEOUT:
		return "timed out";
	}
	return "unknown error";
}

const char *
p11e_err_name(enum p11e_err err)
{
	switch (err) {
	case P11E_OK:
		return "Ok";
	case P11E_ERR_NOMEM:
		return "NoMemory";
	case P11E_ERR_SYSTEM:
		return "System";
	case P11E_ERR_IO:
		return "IO";
	case P11E_ERR_CONFIG:
		return "Config";
	case P11E_ERR_PARSE:
		return "Parse";
	case P11E_ERR_TOO_LARGE:
		return "TooLarge";
	case P11E_ERR_RANGE:
		return "Range";
	case P11E_ERR_AGENT_UNREACHABLE:
		return "AgentUnreachable";
	case P11E_ERR_AGENT_RUNNING:
		return "AgentRunning";
	case P11E_ERR_PEER_REFUSED:
		return "PeerRefused";
	case P11E_ERR_PROTOCOL:
		return "Protocol";
	case P11E_ERR_UNKNOWN_METHOD:
		return "UnknownMethod";
	case P11E_ERR_INVALID_PARAMETER:
		return "InvalidParameter";
	case P11E_ERR_NO_RUNTIME_DIR:
		return "NoRuntimeDir";
	case P11E_ERR_UNSAFE_PATH:
		return "UnsafePath";
	case P11E_ERR_CONNECTION_CLOSED:
		return "ConnectionClosed";
	case P11E_ERR_TIMEOUT:
		return "Timeout";
	}
	return NULL;
}

enum p11e_err
p11e_err_from_name(const char *name, enum p11e_err *err)
{
	int i;

	if (name == NULL)
		return P11E_ERR_PARSE;
	for (i = 0; i <= P11E_ERR_LAST; i++) {
		const char *n = p11e_err_name((enum p11e_err)i);

		if (n != NULL && strcmp(n, name) == 0) {
			*err = (enum p11e_err)i;
			return P11E_OK;
		}
	}
	return P11E_ERR_PARSE;
}
