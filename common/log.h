/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_LOG_H
#define P11E_LOG_H

#include <stddef.h>

#include "common/err.h"

/*
 * Logging in the style of OpenSSH: error/info/verbose/debug, with _f
 * variants that prefix the calling function and _r variants that append
 * the text of an enum p11e_err.  Messages go to standard error, one line
 * each, prefixed with the program name.  Never pass a secret.
 */

enum p11e_log_level {
	P11E_LOG_ERROR = 0,
	P11E_LOG_INFO = 1,
	P11E_LOG_VERBOSE = 2,
	P11E_LOG_DEBUG = 3,
};

/* Debug categories, selected with P11ENROLL_DEBUG=ipc,pkcs11,...|all. */
enum p11e_debug_cat {
	P11E_DEBUG_IPC = 1 << 0,
	P11E_DEBUG_PKCS11 = 1 << 1,
	P11E_DEBUG_HTTP = 1 << 2,
	P11E_DEBUG_CONF = 1 << 3,
	P11E_DEBUG_AGENT = 1 << 4,
	P11E_DEBUG_CLI = 1 << 5,
	P11E_DEBUG_DB = 1 << 6,
};

/*
 * Sets the program name used as prefix (kept by reference: pass a string
 * that lives as long as the process) and reads P11ENROLL_DEBUG.  Unknown
 * category names are reported once as an error and ignored.
 */
void p11e_log_init(const char *progname);

/* Sets the highest level printed (default P11E_LOG_INFO). */
void p11e_log_set_level(enum p11e_log_level level);

/* Returns the debug categories enabled (a mask of enum p11e_debug_cat). */
unsigned int p11e_log_debug_mask(void);

/*
 * Parses a comma separated category list ("ipc,conf", "all").  Returns the
 * mask; names it does not know are skipped and counted in *unknown.
 */
unsigned int p11e_log_parse_debug(const char *spec, unsigned int *unknown);

/* Returns the name of one category ("ipc"), or NULL. */
const char *p11e_log_cat_name(enum p11e_debug_cat cat);

void p11e_log_msg(enum p11e_log_level level, const char *func, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
void
p11e_log_err(enum p11e_log_level level, const char *func, enum p11e_err err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void p11e_log_debug_cat(enum p11e_debug_cat cat, const char *func,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define p11e_error(...) p11e_log_msg(P11E_LOG_ERROR, NULL, __VA_ARGS__)
#define p11e_error_f(...) p11e_log_msg(P11E_LOG_ERROR, __func__, __VA_ARGS__)
#define p11e_error_r(err, ...) \
	p11e_log_err(P11E_LOG_ERROR, NULL, (err), __VA_ARGS__)
#define p11e_error_fr(err, ...) \
	p11e_log_err(P11E_LOG_ERROR, __func__, (err), __VA_ARGS__)
#define p11e_info(...) p11e_log_msg(P11E_LOG_INFO, NULL, __VA_ARGS__)
#define p11e_info_f(...) p11e_log_msg(P11E_LOG_INFO, __func__, __VA_ARGS__)
#define p11e_verbose(...) p11e_log_msg(P11E_LOG_VERBOSE, NULL, __VA_ARGS__)
#define p11e_verbose_f(...) \
	p11e_log_msg(P11E_LOG_VERBOSE, __func__, __VA_ARGS__)
#define p11e_debug(cat, ...) p11e_log_debug_cat((cat), __func__, __VA_ARGS__)

/*
 * Copies at most max bytes of untrusted src (srclen bytes, may hold NUL)
 * into dst as printable ASCII: control and non-ASCII bytes become \xNN,
 * backslash becomes \\, and a cut is marked with "...".  dst is always
 * NUL-terminated; returns dst.  dstlen must be at least 4.
 */
char *p11e_log_escape(char *dst, size_t dstlen, const void *src, size_t srclen);

/*
 * Preconditions: a failed one is a bug.  It is logged with the expression
 * and function and, in strict mode (P11ENROLL_STRICT=1, always set by the
 * test suite), aborts.  Otherwise the function returns val.
 */
void p11e_precondition_failed(const char *expr, const char *func);

#define p11e_return_val_if_fail(expr, val)                         \
	do {                                                       \
		if (!(expr)) {                                     \
			p11e_precondition_failed(#expr, __func__); \
			return (val);                              \
		}                                                  \
	} while (0)

#define p11e_return_if_fail(expr)                                  \
	do {                                                       \
		if (!(expr)) {                                     \
			p11e_precondition_failed(#expr, __func__); \
			return;                                    \
		}                                                  \
	} while (0)

#endif /* P11E_LOG_H */
