/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <string.h>

#include "common/err.h"
#include "common/i18n.h"

/*
 * No default: with -Wswitch (part of -Wall) a value added to the enum but
 * not here is a compile error under --enable-werror.
 */
const char *
p11e_strerror(enum p11e_err err)
{
	switch (err) {
	case P11E_OK:
		return _("success");
	case P11E_ERR_NOMEM:
		return _("out of memory");
	case P11E_ERR_SYSTEM:
		return _("system call failed");
	case P11E_ERR_IO:
		return _("input/output error");
	case P11E_ERR_CONFIG:
		return _("configuration error");
	case P11E_ERR_PARSE:
		return _("malformed input");
	case P11E_ERR_TOO_LARGE:
		return _("input too large");
	case P11E_ERR_RANGE:
		return _("number out of range");
	case P11E_ERR_AGENT_UNREACHABLE:
		return _("the agent is not running");
	case P11E_ERR_AGENT_RUNNING:
		return _("another agent is already running for this user");
	case P11E_ERR_PEER_REFUSED:
		return _(
		    "connection refused: the peer is not the agent's user");
	case P11E_ERR_PROTOCOL:
		return _("protocol error between the command and the agent");
	case P11E_ERR_UNKNOWN_METHOD:
		return _("the agent does not know this method");
	case P11E_ERR_INVALID_PARAMETER:
		return _("invalid parameter");
	case P11E_ERR_NO_RUNTIME_DIR:
		return _("no runtime directory: XDG_RUNTIME_DIR is not set");
	case P11E_ERR_UNSAFE_PATH:
		return _("unsafe ownership or permissions on a private path");
	case P11E_ERR_CONNECTION_CLOSED:
		return _("the connection was closed before the reply");
	case P11E_ERR_TIMEOUT:
		return _("timed out");
	case P11E_ERR_TOKEN_NOT_FOUND:
		return _("no token matches the URI");
	case P11E_ERR_TOKEN_AMBIGUOUS:
		return _("several tokens match the URI");
	case P11E_ERR_TOKEN_ABSENT:
		return _("the token is not present");
	case P11E_ERR_PIN_REQUIRED:
		return _("a PIN is needed for this token");
	case P11E_ERR_PIN_INCORRECT:
		return _("the PIN is incorrect");
	case P11E_ERR_PIN_LOCKED:
		return _("the PIN is locked");
	case P11E_ERR_PIN_FINAL_TRY:
		return _("one more wrong PIN locks the token");
	case P11E_ERR_PIN_EXPIRED:
		return _("the token requires its PIN to be changed first");
	case P11E_ERR_TOKEN_READ_ONLY:
		return _("the token is write-protected");
	case P11E_ERR_TOKEN_FULL:
		return _("the token has no room left");
	case P11E_ERR_MECHANISM_UNSUPPORTED:
		return _(
		    "the token does not support this key type or mechanism");
	case P11E_ERR_KEY_NOT_FOUND:
		return _("no key with this id on the token");
	case P11E_ERR_ID_IN_USE:
		return _("an object with this id already exists on the token");
	case P11E_ERR_KEY_UNPROTECTED:
		return _("the key on the token is not protected (not always "
			 "sensitive or not never-extractable)");
	case P11E_ERR_CERT_KEY_MISMATCH:
		return _("the certificate does not belong to the key");
	case P11E_ERR_TOKEN:
		return _("the token operation failed");
	case P11E_ERR_CRYPTO:
		return _("a cryptographic operation failed");
	case P11E_ERR_KEY_POLICY:
		return _(
		    "the key type or size is not allowed by the key policy");
	case P11E_ERR_CSR_INVALID:
		return _("the certificate request is invalid");
	case P11E_ERR_CSR_EXTENSIONS:
		return _("the certificate request asks for a subject or "
			 "extensions that would not be issued");
	case P11E_ERR_NOT_FOUND:
		return _("no such contract, user or certificate");
	case P11E_ERR_EXISTS:
		return _("it already exists");
	case P11E_ERR_DB_VERSION:
		return _("the database was written by a newer version of "
			 "p11enroll-ra");
	case P11E_ERR_DB:
		return _("the database operation failed");
	case P11E_ERR_STORAGE_FULL:
		return _("no space left to store the change");
	case P11E_ERR_OTP_INVALID:
		return _("the one-time password is not valid");
	case P11E_ERR_OTP_REPLAYED:
		return _("the one-time password was already used");
	case P11E_ERR_AUTH_FAILED:
		return _("authentication failed");
	case P11E_ERR_LOCKED:
		return _("the account is locked after too many failures");
	case P11E_ERR_NO_ENROLLMENT_WINDOW:
		return _("the acquisition window has expired or was used");
	case P11E_ERR_SERVER_REFUSED:
		return _("the enrollment server refused the request");
	case P11E_ERR_SERVER_UNREACHABLE:
		return _("cannot reach the enrollment server");
	case P11E_ERR_SERVER_UNTRUSTED:
		return _("the enrollment server's certificate is not trusted");
	case P11E_ERR_BAD_RESPONSE:
		return _("the enrollment server sent an unusable answer");
	case P11E_ERR_JOURNAL_CORRUPT:
		return _("a credential record is damaged");
	case P11E_ERR_UNKNOWN_SERVICE:
		return _("no such enrollment service is configured");
	case P11E_ERR_SERVER_BUSY:
		return _("the enrollment server is busy or unavailable");
	case P11E_ERR_CERT_REVOKED:
		return _("the certificate is revoked or no longer current");
	case P11E_ERR_TOO_EARLY:
		return _("it is too early to renew this certificate");
	case P11E_ERR_KEY_IN_USE:
		return _("this public key is already certified (the server "
			 "certifies a key once)");
	case P11E_ERR_CREDENTIALS_REQUIRED:
		return _("the server needs your credentials again");
	case P11E_ERR_CERT_EXPIRED:
		return _(
		    "the certificate has expired: ask your administrator to "
		    "reissue");
	}
	return _("unknown error");
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
	case P11E_ERR_TOKEN_NOT_FOUND:
		return "TokenNotFound";
	case P11E_ERR_TOKEN_AMBIGUOUS:
		return "TokenAmbiguous";
	case P11E_ERR_TOKEN_ABSENT:
		return "TokenAbsent";
	case P11E_ERR_PIN_REQUIRED:
		return "PinRequired";
	case P11E_ERR_PIN_INCORRECT:
		return "PinIncorrect";
	case P11E_ERR_PIN_LOCKED:
		return "PinLocked";
	case P11E_ERR_PIN_FINAL_TRY:
		return "PinFinalTry";
	case P11E_ERR_PIN_EXPIRED:
		return "PinExpired";
	case P11E_ERR_TOKEN_READ_ONLY:
		return "TokenReadOnly";
	case P11E_ERR_TOKEN_FULL:
		return "TokenFull";
	case P11E_ERR_MECHANISM_UNSUPPORTED:
		return "MechanismUnsupported";
	case P11E_ERR_KEY_NOT_FOUND:
		return "KeyNotFound";
	case P11E_ERR_ID_IN_USE:
		return "IdInUse";
	case P11E_ERR_KEY_UNPROTECTED:
		return "KeyUnprotected";
	case P11E_ERR_CERT_KEY_MISMATCH:
		return "CertKeyMismatch";
	case P11E_ERR_TOKEN:
		return "Token";
	case P11E_ERR_CRYPTO:
		return "Crypto";
	case P11E_ERR_KEY_POLICY:
		return "KeyPolicy";
	case P11E_ERR_CSR_INVALID:
		return "CsrInvalid";
	case P11E_ERR_CSR_EXTENSIONS:
		return "CsrExtensions";
	case P11E_ERR_NOT_FOUND:
		return "NotFound";
	case P11E_ERR_EXISTS:
		return "Exists";
	case P11E_ERR_DB_VERSION:
		return "DbVersion";
	case P11E_ERR_DB:
		return "Db";
	case P11E_ERR_STORAGE_FULL:
		return "StorageFull";
	case P11E_ERR_OTP_INVALID:
		return "OtpInvalid";
	case P11E_ERR_OTP_REPLAYED:
		return "OtpReplayed";
	case P11E_ERR_AUTH_FAILED:
		return "AuthFailed";
	case P11E_ERR_LOCKED:
		return "Locked";
	case P11E_ERR_NO_ENROLLMENT_WINDOW:
		return "NoEnrollmentWindow";
	case P11E_ERR_SERVER_REFUSED:
		return "ServerRefused";
	case P11E_ERR_SERVER_UNREACHABLE:
		return "ServerUnreachable";
	case P11E_ERR_SERVER_UNTRUSTED:
		return "ServerUntrusted";
	case P11E_ERR_BAD_RESPONSE:
		return "BadResponse";
	case P11E_ERR_JOURNAL_CORRUPT:
		return "JournalCorrupt";
	case P11E_ERR_UNKNOWN_SERVICE:
		return "UnknownService";
	case P11E_ERR_SERVER_BUSY:
		return "ServerBusy";
	case P11E_ERR_CERT_REVOKED:
		return "CertRevoked";
	case P11E_ERR_TOO_EARLY:
		return "TooEarly";
	case P11E_ERR_KEY_IN_USE:
		return "KeyInUse";
	case P11E_ERR_CREDENTIALS_REQUIRED:
		return "CredentialsRequired";
	case P11E_ERR_CERT_EXPIRED:
		return "CertExpired";
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
