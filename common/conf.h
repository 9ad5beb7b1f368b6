/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_CONF_H
#define P11E_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/*
 * The configuration: an INI file (default
 * $(sysconfdir)/p11enroll/p11enroll.conf, or $P11ENROLL_CONF) plus the
 * drop-in files in the directory conf.d beside it whose names end in
 * ".conf", read in strcmp() order of their names; a later file overrides
 * an earlier one key by key.  The format,
 * every key and the limits are described in p11enroll.conf(5).
 *
 * Values are checked against a schema given by the caller.  Every problem
 * (syntax, unknown section or key, bad value, unreadable file) is reported
 * as "FILE:LINE: message" and loading fails as a whole: a configuration
 * is either fully valid or not used at all.
 *
 * There is no key for a PIN, password or other secret, and there must
 * never be one: secrets do not go into files.
 */

/* The longest name in [service NAME] and similar named sections. */
#define P11E_CONF_NAME_MAX 64

/* Limits that keep a hostile or broken file from costing much. */
#define P11E_CONF_FILE_MAX (1024 * 1024) /* bytes per file */
#define P11E_CONF_SECTIONS_MAX 256 /* distinct sections */
#define P11E_CONF_PROBLEMS_MAX 100 /* reported, then loading stops */

enum p11e_conf_type {
	/* Non-empty text; max > 0 limits its length in bytes; arg, when
	 * not NULL, is a prefix it must start with ("pkcs11:"). */
	P11E_CONF_STRING,
	/* An absolute path. */
	P11E_CONF_PATH,
	/* yes/true/on/1 or no/false/off/0 (see p11e_num_parse_bool). */
	P11E_CONF_BOOL,
	/* A decimal number in [min, max]. */
	P11E_CONF_UINT,
	/* Seconds in [min, max], with an optional unit s, m, h or d. */
	P11E_CONF_DURATION,
	/* An https:// URL (no other scheme). */
	P11E_CONF_URL,
	/* One of the words in arg, separated by '|' ("error|info"). */
	P11E_CONF_ENUM,
	/* A public key pin: "sha256//" and the base64 (44 characters with
	 * its '=' padding) of a 32-byte SHA-256 digest, as curl takes it. */
	P11E_CONF_PIN_SHA256,
	/* One of the words in arg ("auto|no") or an absolute path. */
	P11E_CONF_WORD_OR_PATH,
};

/*
 * One key of a schema.  A schema is an array ended by an entry whose
 * section is NULL; it must outlive every struct p11e_conf loaded with it
 * (use a static table).  section is a fixed name ("agent") or a kind
 * followed by " *" ("service *"), which stands for the sections
 * [service NAME] with NAME 1 to P11E_CONF_NAME_MAX of A-Z a-z 0-9 . _ -.
 */
struct p11e_conf_key {
	const char *section;
	const char *key;
	enum p11e_conf_type type;
	uint64_t min, max; /* UINT, DURATION: range; STRING: max length */
	const char *arg; /* ENUM, WORD_OR_PATH: the words; STRING: prefix */
	const char *help; /* one line, for "config check" and docs */
};

/* The schema of p11enrolld and p11enroll, in common/conf-schema.c. */
extern const struct p11e_conf_key p11e_agent_schema[];

/* A loaded, valid configuration.  Opaque; free with p11e_conf_free(). */
struct p11e_conf;

/*
 * Returns the path of the main file: $P11ENROLL_CONF when it is set and
 * not empty, otherwise SYSCONFDIR "/p11enroll/p11enroll.conf".  The string
 * is static or the environment's: do not free it, and copy it before
 * changing the environment.
 */
const char *p11e_conf_default_path(void);

/*
 * Loads main_path (NULL: p11e_conf_default_path()) and then every
 * "*.conf" file in dropin_dir (NULL: the directory "conf.d" next to the
 * main file), in strcmp() order, skipping names that start with '.'.
 * A missing main file or drop-in directory is not an error (defaults).
 *
 * Each problem is passed to report (file, line, message without the
 * "file:line: " prefix; line is 0 for a problem with a whole file), or
 * logged as "file:line: message" when report is NULL.  The strings are
 * only valid during the call.
 *
 * Returns P11E_OK and sets *out (free with p11e_conf_free()) when there
 * was no problem at all; P11E_ERR_CONFIG when there was at least one;
 * P11E_ERR_NOMEM.  *out is NULL on any error.
 */
enum p11e_err p11e_conf_load(const struct p11e_conf_key *schema,
    const char *main_path, const char *dropin_dir,
    void (*report)(
	void *data, const char *file, unsigned int line, const char *msg),
    void *data, struct p11e_conf **out);

/*
 * As p11e_conf_load() for a single file already in memory (len bytes of
 * buf, which may hold any byte), reported under the name name.  For tests
 * and fuzzing.
 */
enum p11e_err p11e_conf_load_buffer(const struct p11e_conf_key *schema,
    const char *name, const void *buf, size_t len,
    void (*report)(
	void *data, const char *file, unsigned int line, const char *msg),
    void *data, struct p11e_conf **out);

/* Frees conf and everything it holds; NULL is a no-op. */
void p11e_conf_free(struct p11e_conf *conf);

/*
 * The value of key in section ("agent", "service bank"), as written in
 * the file without surrounding space; NULL when it is not set.  The string
 * belongs to conf.  section and key must be in the schema (a precondition:
 * it catches a misspelt name in the code).
 */
const char *p11e_conf_get_str(
    const struct p11e_conf *conf, const char *section, const char *key);

/*
 * The number of a UINT key, or the seconds of a DURATION key; def when
 * the key is not set or conf is NULL.
 */
uint64_t p11e_conf_get_u64(const struct p11e_conf *conf, const char *section,
    const char *key, uint64_t def);

/* The value of a BOOL key; def when it is not set or conf is NULL. */
bool p11e_conf_get_bool(const struct p11e_conf *conf, const char *section,
    const char *key, bool def);

/*
 * Calls cb (when not NULL) with the NAME of every section [kind NAME]
 * found in the files, in strcmp() order, also for sections without keys.
 * kind is the first word of a named schema section ("service").  Returns
 * the number of such sections.  name is only valid during the call; the
 * full section name for the getters is kind, a space and name.
 */
size_t p11e_conf_sections(const struct p11e_conf *conf, const char *kind,
    void (*cb)(void *data, const char *name), void *data);

/*
 * Where key in section was set: returns the file name (owned by conf)
 * and sets *line, or returns NULL (and sets *line to 0) when the key was
 * not set and its default applies.
 */
const char *p11e_conf_origin(const struct p11e_conf *conf, const char *section,
    const char *key, unsigned int *line);

#endif /* P11E_CONF_H */
