/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/num.h"

/*
 * Debian's libinih cuts lines at 200 bytes without a word, gives the
 * handler no line number, joins a line that starts with white space to
 * the previous value, and keeps only 49 bytes of a section name.  So
 * conf_reader() below reads whole lines itself: it counts them (the
 * handler runs before the next line is read, so ld->lineno is the line
 * of the key), refuses a line that would not fit into inih's buffer,
 * strips leading white space (no line can continue another; this, not
 * the process-wide ini_allow_multiline, is what guarantees it), checks
 * the syntax of every line so that all errors are reported and not only
 * the first, and follows the sections itself.  inih splits key = value
 * and strips comments.
 */

struct entry {
	const char *section; /* in conf->sections */
	const struct p11e_conf_key *key; /* row of the schema */
	char *value; /* owned */
	uint64_t num; /* UINT, DURATION, BOOL, ENUM */
	const char *file; /* in conf->files */
	unsigned int line;
};

struct p11e_conf {
	const struct p11e_conf_key *schema;
	struct entry *entries;
	size_t n_entries, cap_entries;
	char **sections; /* normalized names of all sections seen, owned */
	size_t n_sections, cap_sections;
	char **files; /* names of the files read, owned */
	size_t n_files, cap_files;
};

struct load {
	struct p11e_conf *conf;
	void (*report)(
	    void *data, const char *file, unsigned int line, const char *msg);
	void *data;
	unsigned int problems;
	enum p11e_err err; /* P11E_ERR_NOMEM stops everything */
	bool halt; /* too many problems: read no further */

	/* The file being read. */
	FILE *fp;
	const char *file;
	unsigned int lineno;
	bool stop; /* the reader returns end of file */
	const char *section; /* in conf->sections; NULL before the first */
	bool section_bad; /* its header was refused: skip its keys */
};

static void problem(struct load *ld, const char *file, unsigned int line,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
problem(
    struct load *ld, const char *file, unsigned int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (ld->halt)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (;;) {
		ld->problems++;
		if (ld->report != NULL)
			ld->report(ld->data, file, line, msg);
		else if (line > 0)
			p11e_error("%s:%u: %s", file, line, msg);
		else
			p11e_error("%s: %s", file, msg);
		if (ld->problems < P11E_CONF_PROBLEMS_MAX || ld->halt)
			break;
		ld->halt = true;
		ld->stop = true;
		line = 0;
		snprintf(
		    msg, sizeof(msg), "too many problems; stopped reading");
	}
}

static void
nomem(struct load *ld)
{
	ld->err = P11E_ERR_NOMEM;
	ld->stop = true;
}

/* Escapes a name from a file for a message. */
static const char *
esc(char *buf, size_t len, const char *s)
{
	return p11e_log_escape(buf, len, s, strlen(s));
}

/*
 * Makes room in arr (n used of *cap) for one more element of size bytes;
 * returns the array, maybe moved, or NULL (arr is unchanged).
 */
static void *
grow(void *arr, size_t *cap, size_t n, size_t size)
{
	size_t newcap;
	void *mem;

	if (n < *cap)
		return arr;
	newcap = *cap == 0 ? 8 : *cap * 2;
	if ((mem = reallocarray(arr, newcap, size)) == NULL)
		return NULL;
	*cap = newcap;
	return mem;
}

/*
 * Does the schema section pattern match the kind (len bytes), as a fixed
 * section or, when named, as "kind *"?
 */
static bool
section_matches(const char *pattern, const char *kind, size_t len, bool named)
{
	size_t plen = strlen(pattern);

	if (plen < len || memcmp(pattern, kind, len) != 0)
		return false;
	if (named)
		return strcmp(pattern + len, " *") == 0;
	return plen == len;
}

static bool
schema_has_section(const struct p11e_conf_key *schema, const char *kind,
    size_t len, bool named)
{
	const struct p11e_conf_key *k;

	for (k = schema; k->section != NULL; k++) {
		if (section_matches(k->section, kind, len, named))
			return true;
	}
	return false;
}

/* Finds key in the section ("agent", "service bank"); NULL if unknown. */
static const struct p11e_conf_key *
schema_find(
    const struct p11e_conf_key *schema, const char *section, const char *key)
{
	const struct p11e_conf_key *k;
	size_t len = strcspn(section, " ");
	bool named = section[len] != '\0';

	for (k = schema; k->section != NULL; k++) {
		if (section_matches(k->section, section, len, named) &&
		    strcmp(k->key, key) == 0)
			return k;
	}
	return NULL;
}

static bool
valid_name(const char *name)
{
	size_t len = strlen(name);

	return len >= 1 && len <= P11E_CONF_NAME_MAX &&
	    strspn(name,
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789._-") == len;
}

/* Returns the stored copy of section, adding it when new; NULL on error. */
static const char *
add_section(struct load *ld, const char *section)
{
	struct p11e_conf *conf = ld->conf;
	char *copy, **sections;
	size_t i;

	for (i = 0; i < conf->n_sections; i++) {
		if (strcmp(conf->sections[i], section) == 0)
			return conf->sections[i];
	}
	if (conf->n_sections >= P11E_CONF_SECTIONS_MAX) {
		problem(ld, ld->file, ld->lineno,
		    "too many sections (at most %d)", P11E_CONF_SECTIONS_MAX);
		ld->stop = true;
		return NULL;
	}
	if ((sections = grow(conf->sections, &conf->cap_sections,
		 conf->n_sections, sizeof(*sections))) == NULL) {
		nomem(ld);
		return NULL;
	}
	conf->sections = sections;
	if ((copy = strdup(section)) == NULL) {
		nomem(ld);
		return NULL;
	}
	conf->sections[conf->n_sections++] = copy;
	return copy;
}

/*
 * Opens the section whose header text (between the brackets) is text:
 * "agent" or "service NAME", with any white space around the words.
 */
static void
open_section(struct load *ld, char *text)
{
	const struct p11e_conf_key *schema = ld->conf->schema;
	char etext[128], *name, *full = NULL;
	size_t kind_len, len;

	ld->section = NULL;
	ld->section_bad = true;
	while (isspace((unsigned char)*text))
		text++;
	len = strlen(text);
	while (len > 0 && isspace((unsigned char)text[len - 1]))
		text[--len] = '\0';
	esc(etext, sizeof(etext), text);
	kind_len = strcspn(text, " \t");
	name = text + kind_len;
	while (*name == ' ' || *name == '\t')
		name++;
	if (*name == '\0') {
		if (schema_has_section(schema, text, kind_len, false)) {
			full = strdup(text);
			if (full == NULL) {
				nomem(ld);
				return;
			}
		} else if (schema_has_section(schema, text, kind_len, true)) {
			problem(ld, ld->file, ld->lineno,
			    "missing name in [%s]: expected [%s NAME]", etext,
			    etext);
		} else {
			problem(ld, ld->file, ld->lineno,
			    "unknown section [%s]", etext);
		}
	} else if (!schema_has_section(schema, text, kind_len, true)) {
		problem(
		    ld, ld->file, ld->lineno, "unknown section [%s]", etext);
	} else if (!valid_name(name)) {
		problem(ld, ld->file, ld->lineno,
		    "bad name in [%s]: expected 1 to %d of A-Z a-z 0-9 . _ -",
		    etext, P11E_CONF_NAME_MAX);
	} else {
		if ((full = malloc(kind_len + 1 + strlen(name) + 1)) == NULL) {
			nomem(ld);
			return;
		}
		memcpy(full, text, kind_len);
		full[kind_len] = ' ';
		memcpy(full + kind_len + 1, name, strlen(name) + 1);
	}
	if (full != NULL && (ld->section = add_section(ld, full)) != NULL)
		ld->section_bad = false;
	free(full);
}

/* inih's ini_find_chars_or_comment(), with its run-time settings. */
static const char *
find_chars_or_comment(const char *s, const char *chars)
{
	bool was_space = false;

	while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
	    !(ini_allow_inline_comments && was_space &&
		strchr(ini_inline_comment_prefixes, *s) != NULL)) {
		was_space = isspace((unsigned char)*s) != 0;
		s++;
	}
	return s;
}

static bool
is_comment(char c)
{
	return c != '\0' && strchr(ini_start_comment_prefixes, c) != NULL;
}

/*
 * Checks one line (leading space stripped, ends in '\n') as inih will
 * read it, and follows section headers.  Returns false for a line inih
 * must not see: it was reported here.
 */
static bool
check_line(struct load *ld, const char *line)
{
	const char *end, *rest;
	char *text;

	if (*line == '\n' || is_comment(*line))
		return true;
	if (*line == '[') {
		end = find_chars_or_comment(line + 1, "]");
		rest = end;
		if (*rest == ']') {
			for (rest++; isspace((unsigned char)*rest); rest++)
				;
		}
		if (*end != ']' || (*rest != '\0' && !is_comment(*rest))) {
			problem(ld, ld->file, ld->lineno,
			    "syntax error: expected [section]");
			ld->section = NULL;
			ld->section_bad = true;
			return false;
		}
		if ((text = strndup(line + 1, (size_t)(end - line - 1))) ==
		    NULL) {
			nomem(ld);
			return false;
		}
		open_section(ld, text);
		free(text);
		return true;
	}
	end = find_chars_or_comment(line, "=:");
	if (*end != '=' && *end != ':') {
		problem(ld, ld->file, ld->lineno,
		    "syntax error: expected key = value");
		return false;
	}
	return true;
}

/*
 * The ini_reader: hands inih one whole line at a time (see the comment at
 * the top).  A line longer than num - 2 bytes (inih needs room for the
 * '\n' and the NUL) or holding a NUL byte ends the file.
 */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct load *ld = stream;
	size_t max, len = 0, skip = 0;
	bool newline = false, nul = false;
	int c;

	if (ld->stop || num < 3)
		return NULL;
	max = (size_t)num - 2;
	while ((c = getc(ld->fp)) != EOF) {
		if (c == '\n') {
			newline = true;
			break;
		}
		if (c == '\0')
			nul = true;
		if (len < max)
			str[len] = (char)c;
		if (len < SIZE_MAX)
			len++;
	}
	if (c == EOF && ferror(ld->fp)) {
		problem(ld, ld->file, 0, "read error");
		return NULL;
	}
	if (len == 0 && !newline)
		return NULL;
	ld->lineno++;
	if (len > max) {
		problem(ld, ld->file, ld->lineno,
		    "line too long (%zu bytes; at most %zu)", len, max);
		ld->stop = true;
		return NULL;
	}
	if (nul) {
		problem(ld, ld->file, ld->lineno, "NUL byte in line");
		ld->stop = true;
		return NULL;
	}
	if (ld->lineno == 1 && len >= 3 && memcmp(str, "\xef\xbb\xbf", 3) == 0)
		skip = 3; /* UTF-8 byte order mark */
	while (skip < len && isspace((unsigned char)str[skip]))
		skip++;
	memmove(str, str + skip, len - skip);
	len -= skip;
	str[len] = '\n';
	str[len + 1] = '\0';
	if (!check_line(ld, str)) {
		str[0] = '\n';
		str[1] = '\0';
	}
	return str;
}

static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static bool
valid_url(const char *v)
{
	return strncmp(v, "https://", 8) == 0 && v[8] != '\0' && v[8] != '/' &&
	    strchr(v, ' ') == NULL;
}

static bool
valid_pin(const char *v)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = NULL;
	size_t i;

	if (strncmp(v, "sha256//", 8) != 0)
		return false;
	v += 8;
	if (strlen(v) != 44 || v[43] != '=')
		return false;
	for (i = 0; i < 43; i++) {
		if ((p = strchr(b64, v[i])) == NULL)
			return false;
	}
	/* 32 bytes use only the top 4 bits of the 43rd character */
	return ((p - b64) & 3) == 0;
}

/* Returns the index of v among the '|'-separated words, or -1. */
static int
enum_index(const char *words, const char *v)
{
	size_t len, vlen = strlen(v);
	int i;

	for (i = 0; *words != '\0'; i++) {
		len = strcspn(words, "|");
		if (len == vlen && memcmp(words, v, len) == 0)
			return i;
		words += len;
		if (*words == '|')
			words++;
	}
	return -1;
}

/* Appends the '|'-separated words to why as "a, b"; returns why. */
static char *
words(const char *list, char *why, size_t whylen)
{
	size_t o = strlen(why);

	for (; *list != '\0' && o + 3 < whylen; list++) {
		if (*list == '|') {
			why[o++] = ',';
			why[o++] = ' ';
		} else {
			why[o++] = *list;
		}
	}
	why[o] = '\0';
	return why;
}

/*
 * Checks value against k; returns NULL and sets *num, or a reason built
 * in why.
 */
static const char *
check_value(const struct p11e_conf_key *k, const char *value, uint64_t *num,
    char *why, size_t whylen)
{
	size_t o;
	int b, i;

	*num = 0;
	if (*value == '\0')
		return "empty value";
	if (has_control(value))
		return "control character in value";
	switch (k->type) {
	case P11E_CONF_STRING:
		if (k->arg != NULL &&
		    strncmp(value, k->arg, strlen(k->arg)) != 0)
			snprintf(why, whylen,
			    "expected a value starting with '%s'", k->arg);
		else if (k->max > 0 && strlen(value) > k->max)
			snprintf(why, whylen, "longer than %" PRIu64 " bytes",
			    k->max);
		else
			return NULL;
		return why;
	case P11E_CONF_PATH:
		return value[0] == '/' ? NULL : "expected an absolute path";
	case P11E_CONF_BOOL:
		if (p11e_num_parse_bool(value, &b) != P11E_OK)
			return "expected yes or no";
		*num = (uint64_t)b;
		return NULL;
	case P11E_CONF_UINT:
		if (p11e_num_parse_u64(value, k->min, k->max, num) == P11E_OK)
			return NULL;
		snprintf(why, whylen,
		    "expected a number from %" PRIu64 " to %" PRIu64, k->min,
		    k->max);
		return why;
	case P11E_CONF_DURATION:
		if (p11e_num_parse_duration(value, k->min, k->max, num) ==
		    P11E_OK)
			return NULL;
		snprintf(why, whylen,
		    "expected a duration from %" PRIu64 " to %" PRIu64
		    " seconds (units s, m, h, d)",
		    k->min, k->max);
		return why;
	case P11E_CONF_URL:
		return valid_url(value) ? NULL : "expected an https:// URL";
	case P11E_CONF_ENUM:
		if ((i = enum_index(k->arg, value)) >= 0) {
			*num = (uint64_t)i;
			return NULL;
		}
		snprintf(why, whylen, "expected one of ");
		return words(k->arg, why, whylen);
	case P11E_CONF_WORD_OR_PATH:
		if (value[0] == '/' || enum_index(k->arg, value) >= 0)
			return NULL;
		snprintf(why, whylen, "expected ");
		o = strlen(words(k->arg, why, whylen));
		snprintf(why + o, whylen - o, " or an absolute path");
		return why;
	case P11E_CONF_PIN_SHA256:
		return valid_pin(value) ? NULL
					: "expected sha256// and the base64 "
					  "of a SHA-256 digest (44 characters)";
	}
	return "unknown type";
}

static struct entry *
find_entry(const struct p11e_conf *conf, const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < conf->n_entries; i++) {
		if (strcmp(conf->entries[i].key->key, key) == 0 &&
		    strcmp(conf->entries[i].section, section) == 0)
			return &conf->entries[i];
	}
	return NULL;
}

static void
store(struct load *ld, const struct p11e_conf_key *k, const char *value,
    uint64_t num)
{
	struct p11e_conf *conf = ld->conf;
	struct entry *e = find_entry(conf, ld->section, k->key);
	struct entry *entries;
	char *copy;

	if (e != NULL && e->file == ld->file) {
		problem(ld, ld->file, ld->lineno,
		    "duplicate key '%s' in [%s] (first on line %u)", k->key,
		    ld->section, e->line);
		return;
	}
	if ((copy = strdup(value)) == NULL) {
		nomem(ld);
		return;
	}
	if (e == NULL) {
		if ((entries = grow(conf->entries, &conf->cap_entries,
			 conf->n_entries, sizeof(*entries))) == NULL) {
			free(copy);
			nomem(ld);
			return;
		}
		conf->entries = entries;
		e = &conf->entries[conf->n_entries++];
		e->section = ld->section;
		e->key = k;
		e->value = NULL;
	}
	free(e->value);
	e->value = copy;
	copy = NULL; /* transferred */
	e->num = num;
	e->file = ld->file;
	e->line = ld->lineno;
}

/* The ini_handler; section is ignored (inih cuts it at 49 bytes). */
static int
conf_handler(
    void *user, const char *section, const char *name, const char *value)
{
	struct load *ld = user;
	const struct p11e_conf_key *k;
	char ename[80], esect[128], why[160];
	const char *bad;
	uint64_t num;

	(void)section;
	if (ld->stop || ld->section_bad)
		return 1;
	esc(ename, sizeof(ename), name);
	if (*name == '\0') {
		problem(ld, ld->file, ld->lineno,
		    "syntax error: expected key = value");
	} else if (ld->section == NULL) {
		problem(ld, ld->file, ld->lineno,
		    "key '%s' outside of a section", ename);
	} else if ((k = schema_find(ld->conf->schema, ld->section, name)) ==
	    NULL) {
		problem(ld, ld->file, ld->lineno, "unknown key '%s' in [%s]",
		    ename, esc(esect, sizeof(esect), ld->section));
	} else if ((bad = check_value(k, value, &num, why, sizeof(why))) !=
	    NULL) {
		problem(ld, ld->file, ld->lineno, "bad value for '%s': %s",
		    k->key, bad);
	} else {
		store(ld, k, value, num);
	}
	return 1;
}

/* Parses one open file, reported as name. */
static void
parse_stream(struct load *ld, FILE *fp, const char *name)
{
	struct p11e_conf *conf = ld->conf;
	char *copy, **files;
	int rc;

	if ((files = grow(conf->files, &conf->cap_files, conf->n_files,
		 sizeof(*files))) == NULL) {
		nomem(ld);
		return;
	}
	conf->files = files;
	if ((copy = strdup(name)) == NULL) {
		nomem(ld);
		return;
	}
	conf->files[conf->n_files++] = copy;
	ld->fp = fp;
	ld->file = copy;
	ld->lineno = 0;
	ld->stop = ld->halt;
	ld->section = NULL;
	ld->section_bad = false;
	p11e_debug(P11E_DEBUG_CONF, "reading %s", name);
	rc = ini_parse_stream(conf_reader, ld, conf_handler, ld);
	if (rc < 0 && ld->err == P11E_OK)
		nomem(ld);
	else if (rc > 0)
		/* XXX: check_line() passes only lines inih accepts; kept so
		 * that a difference in a later inih cannot go unreported. */
		problem(ld, ld->file, (unsigned int)rc, "syntax error");
	ld->fp = NULL;
	ld->file = NULL;
}

/* Reads one file; a missing file is skipped when optional. */
static void
read_file(struct load *ld, const char *path, bool optional)
{
	struct stat st;
	FILE *fp;

	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == ENOENT && optional)
			p11e_debug(P11E_DEBUG_CONF, "%s: not found", path);
		else if (errno == ENOMEM)
			nomem(ld);
		else
			problem(
			    ld, path, 0, "cannot open: %s", strerror(errno));
		return;
	}
	if (fstat(fileno(fp), &st) != 0)
		problem(ld, path, 0, "cannot stat: %s", strerror(errno));
	else if (!S_ISREG(st.st_mode))
		problem(ld, path, 0, "not a regular file");
	else if (st.st_size > P11E_CONF_FILE_MAX)
		problem(ld, path, 0, "file too large (%jd bytes; at most %d)",
		    (intmax_t)st.st_size, P11E_CONF_FILE_MAX);
	else
		parse_stream(ld, fp, path);
	fclose(fp);
}

static int
dropin_filter(const struct dirent *d)
{
	size_t len = strlen(d->d_name);

	return d->d_name[0] != '.' && len > 5 &&
	    strcmp(d->d_name + len - 5, ".conf") == 0;
}

/* strcmp(), not alphasort()'s strcoll(): the order must not vary. */
static int
dropin_compare(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void
read_dropins(struct load *ld, const char *dir)
{
	struct dirent **list = NULL;
	char *path;
	size_t len;
	int i, n;

	if ((n = scandir(dir, &list, dropin_filter, dropin_compare)) < 0) {
		if (errno == ENOMEM)
			nomem(ld);
		else if (errno != ENOENT)
			problem(ld, dir, 0, "cannot read directory: %s",
			    strerror(errno));
		return;
	}
	for (i = 0; i < n; i++) {
		if (!ld->halt && ld->err == P11E_OK) {
			len = strlen(dir) + 1 + strlen(list[i]->d_name) + 1;
			if ((path = malloc(len)) == NULL) {
				nomem(ld);
			} else {
				snprintf(
				    path, len, "%s/%s", dir, list[i]->d_name);
				read_file(ld, path, false);
				free(path);
			}
		}
		free(list[i]);
	}
	free(list);
}

static int
compare_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum p11e_err
load_begin(struct load *ld, const struct p11e_conf_key *schema,
    void (*report)(void *, const char *, unsigned int, const char *),
    void *data)
{
	memset(ld, 0, sizeof(*ld));
	ld->report = report;
	ld->data = data;
	ld->err = P11E_OK;
	if ((ld->conf = calloc(1, sizeof(*ld->conf))) == NULL)
		return P11E_ERR_NOMEM;
	ld->conf->schema = schema;
	return P11E_OK;
}

static enum p11e_err
load_end(struct load *ld, struct p11e_conf **out)
{
	struct p11e_conf *conf = ld->conf;

	ld->conf = NULL;
	if (ld->err != P11E_OK || ld->problems > 0) {
		p11e_conf_free(conf);
		return ld->err != P11E_OK ? ld->err : P11E_ERR_CONFIG;
	}
	if (conf->n_sections > 1)
		qsort(conf->sections, conf->n_sections, sizeof(*conf->sections),
		    compare_str);
	*out = conf;
	conf = NULL; /* transferred */
	return P11E_OK;
}

const char *
p11e_conf_default_path(void)
{
	const char *env = getenv("P11ENROLL_CONF");

	if (env != NULL && *env != '\0')
		return env;
	return SYSCONFDIR "/p11enroll/p11enroll.conf";
}

enum p11e_err
p11e_conf_load(const struct p11e_conf_key *schema, const char *main_path,
    const char *dropin_dir,
    void (*report)(
	void *data, const char *file, unsigned int line, const char *msg),
    void *data, struct p11e_conf **out)
{
	struct load ld;
	const char *slash;
	char *dir = NULL;
	enum p11e_err err;
	size_t len;

	p11e_return_val_if_fail(out != NULL, P11E_ERR_INVALID_PARAMETER);
	*out = NULL;
	p11e_return_val_if_fail(schema != NULL, P11E_ERR_INVALID_PARAMETER);
	if (main_path == NULL)
		main_path = p11e_conf_default_path();
	if (dropin_dir == NULL) {
		slash = strrchr(main_path, '/');
		len = slash == NULL ? 0 : (size_t)(slash - main_path) + 1;
		if ((dir = malloc(len + sizeof("conf.d"))) == NULL) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
		memcpy(dir, main_path, len);
		memcpy(dir + len, "conf.d", sizeof("conf.d"));
		dropin_dir = dir;
	}
	if ((err = load_begin(&ld, schema, report, data)) != P11E_OK)
		goto out;
	read_file(&ld, main_path, true);
	if (!ld.halt && ld.err == P11E_OK)
		read_dropins(&ld, dropin_dir);
	err = load_end(&ld, out);
out:
	free(dir);
	return err;
}

enum p11e_err
p11e_conf_load_buffer(const struct p11e_conf_key *schema, const char *name,
    const void *buf, size_t len,
    void (*report)(
	void *data, const char *file, unsigned int line, const char *msg),
    void *data, struct p11e_conf **out)
{
	struct load ld;
	enum p11e_err err;
	FILE *fp;

	p11e_return_val_if_fail(out != NULL, P11E_ERR_INVALID_PARAMETER);
	*out = NULL;
	p11e_return_val_if_fail(
	    schema != NULL && name != NULL && (buf != NULL || len == 0),
	    P11E_ERR_INVALID_PARAMETER);
	if ((err = load_begin(&ld, schema, report, data)) != P11E_OK)
		return err;
	if (len > P11E_CONF_FILE_MAX) {
		problem(&ld, name, 0, "file too large (%zu bytes; at most %d)",
		    len, P11E_CONF_FILE_MAX);
	} else if (len > 0) {
		/* "r" never writes to the buffer */
		if ((fp = fmemopen((void *)(uintptr_t)buf, len, "r")) == NULL) {
			nomem(&ld);
		} else {
			parse_stream(&ld, fp, name);
			fclose(fp);
		}
	}
	return load_end(&ld, out);
}

void
p11e_conf_free(struct p11e_conf *conf)
{
	size_t i;

	if (conf == NULL)
		return;
	for (i = 0; i < conf->n_entries; i++)
		free(conf->entries[i].value);
	free(conf->entries);
	for (i = 0; i < conf->n_sections; i++)
		free(conf->sections[i]);
	free(conf->sections);
	for (i = 0; i < conf->n_files; i++)
		free(conf->files[i]);
	free(conf->files);
	free(conf);
}

/* The entry of a key that must be in the schema; NULL when unset. */
static const struct entry *
lookup(const struct p11e_conf *conf, const char *section, const char *key,
    const struct p11e_conf_key **k)
{
	*k = NULL;
	if (conf == NULL)
		return NULL;
	*k = schema_find(conf->schema, section, key);
	p11e_return_val_if_fail(*k != NULL, NULL);
	return find_entry(conf, section, key);
}

const char *
p11e_conf_get_str(
    const struct p11e_conf *conf, const char *section, const char *key)
{
	const struct p11e_conf_key *k;
	const struct entry *e;

	p11e_return_val_if_fail(section != NULL && key != NULL, NULL);
	e = lookup(conf, section, key, &k);
	return e != NULL ? e->value : NULL;
}

uint64_t
p11e_conf_get_u64(const struct p11e_conf *conf, const char *section,
    const char *key, uint64_t def)
{
	const struct p11e_conf_key *k;
	const struct entry *e;

	p11e_return_val_if_fail(section != NULL && key != NULL, def);
	if ((e = lookup(conf, section, key, &k)) == NULL)
		return def;
	p11e_return_val_if_fail(
	    k->type == P11E_CONF_UINT || k->type == P11E_CONF_DURATION, def);
	return e->num;
}

bool
p11e_conf_get_bool(const struct p11e_conf *conf, const char *section,
    const char *key, bool def)
{
	const struct p11e_conf_key *k;
	const struct entry *e;

	p11e_return_val_if_fail(section != NULL && key != NULL, def);
	if ((e = lookup(conf, section, key, &k)) == NULL)
		return def;
	p11e_return_val_if_fail(k->type == P11E_CONF_BOOL, def);
	return e->num != 0;
}

size_t
p11e_conf_sections(const struct p11e_conf *conf, const char *kind,
    void (*cb)(void *data, const char *name), void *data)
{
	size_t i, n = 0, len;

	p11e_return_val_if_fail(kind != NULL, 0);
	if (conf == NULL)
		return 0;
	len = strlen(kind);
	for (i = 0; i < conf->n_sections; i++) {
		if (strncmp(conf->sections[i], kind, len) != 0 ||
		    conf->sections[i][len] != ' ')
			continue;
		if (cb != NULL)
			cb(data, conf->sections[i] + len + 1);
		n++;
	}
	return n;
}

const char *
p11e_conf_origin(const struct p11e_conf *conf, const char *section,
    const char *key, unsigned int *line)
{
	const struct p11e_conf_key *k;
	const struct entry *e;

	p11e_return_val_if_fail(line != NULL, NULL);
	*line = 0;
	p11e_return_val_if_fail(section != NULL && key != NULL, NULL);
	if ((e = lookup(conf, section, key, &k)) == NULL)
		return NULL;
	*line = e->line;
	return e->file;
}
