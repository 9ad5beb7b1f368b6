/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_ERR_H
#define P11E_ERR_H

/*
 * The single error type of p11enroll.  Values cross the agent socket and
 * appear in doc/errors.md: append only, never renumber, never reuse.
 * Only conditions a user can act on get a value of their own; bugs are
 * preconditions (see p11e_return_val_if_fail in log.h).
 */
enum p11e_err {
	P11E_OK = 0,
	P11E_ERR_NOMEM = 1,
	P11E_ERR_SYSTEM = 2,
	P11E_ERR_IO = 3,
	P11E_ERR_CONFIG = 4,
	P11E_ERR_PARSE = 5,
	P11E_ERR_TOO_LARGE = 6,
	P11E_ERR_RANGE = 7,
	P11E_ERR_AGENT_UNREACHABLE = 8,
	P11E_ERR_AGENT_RUNNING = 9,
	P11E_ERR_PEER_REFUSED = 10,
	P11E_ERR_PROTOCOL = 11,
	P11E_ERR_UNKNOWN_METHOD = 12,
	P11E_ERR_INVALID_PARAMETER = 13,
	P11E_ERR_NO_RUNTIME_DIR = 14,
	P11E_ERR_UNSAFE_PATH = 15,
	P11E_ERR_CONNECTION_CLOSED = 16,
	P11E_ERR_TIMEOUT = 17,
	P11E_ERR_TOKEN_NOT_FOUND = 18,
	P11E_ERR_TOKEN_AMBIGUOUS = 19,
	P11E_ERR_TOKEN_ABSENT = 20,
	P11E_ERR_PIN_REQUIRED = 21,
	P11E_ERR_PIN_INCORRECT = 22,
	P11E_ERR_PIN_LOCKED = 23,
	P11E_ERR_PIN_FINAL_TRY = 24,
	P11E_ERR_PIN_EXPIRED = 25,
	P11E_ERR_TOKEN_READ_ONLY = 26,
	P11E_ERR_TOKEN_FULL = 27,
	P11E_ERR_MECHANISM_UNSUPPORTED = 28,
	P11E_ERR_KEY_NOT_FOUND = 29,
	P11E_ERR_ID_IN_USE = 30,
	P11E_ERR_KEY_UNPROTECTED = 31,
	P11E_ERR_CERT_KEY_MISMATCH = 32,
	P11E_ERR_TOKEN = 33,
	P11E_ERR_CRYPTO = 34,
	P11E_ERR_KEY_POLICY = 35,
	P11E_ERR_CSR_INVALID = 36,
	P11E_ERR_CSR_EXTENSIONS = 37,
	P11E_ERR_NOT_FOUND = 38,
	P11E_ERR_EXISTS = 39,
	P11E_ERR_DB_VERSION = 40,
	P11E_ERR_DB = 41,
	P11E_ERR_STORAGE_FULL = 42,
	P11E_ERR_OTP_INVALID = 43,
	P11E_ERR_OTP_REPLAYED = 44,
	P11E_ERR_AUTH_FAILED = 45,
	P11E_ERR_LOCKED = 46,
	P11E_ERR_NO_ENROLLMENT_WINDOW = 47,
	P11E_ERR_SERVER_REFUSED = 48,
	P11E_ERR_SERVER_UNREACHABLE = 49,
	P11E_ERR_SERVER_UNTRUSTED = 50,
	P11E_ERR_BAD_RESPONSE = 51,
	P11E_ERR_JOURNAL_CORRUPT = 52,
	P11E_ERR_UNKNOWN_SERVICE = 53,
	P11E_ERR_SERVER_BUSY = 54,
	P11E_ERR_CERT_REVOKED = 55,
	P11E_ERR_TOO_EARLY = 56,
	P11E_ERR_KEY_IN_USE = 57,
	P11E_ERR_CREDENTIALS_REQUIRED = 58,
	P11E_ERR_CERT_EXPIRED = 59,
};

/* The highest value in use; tests walk 0..P11E_ERR_LAST. */
#define P11E_ERR_LAST P11E_ERR_CERT_EXPIRED

/*
 * Returns a static, human readable sentence for err (English; never NULL).
 * Unknown values (from a newer agent) give a generic text.
 */
const char *p11e_strerror(enum p11e_err err);

/*
 * Returns the stable name of err as used on the wire and in doc/errors.md,
 * e.g. "AgentUnreachable".  Static; NULL for values this build does not know.
 */
const char *p11e_err_name(enum p11e_err err);

/*
 * Looks a wire name up; returns P11E_OK and sets *err on success,
 * P11E_ERR_PARSE for a name this build does not know (*err untouched).
 */
enum p11e_err p11e_err_from_name(const char *name, enum p11e_err *err);

#endif /* P11E_ERR_H */
