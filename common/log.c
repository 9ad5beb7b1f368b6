/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static const char *log_progname = "p11enroll";
static enum p11e_log_level log_level = P11E_LOG_INFO;
static unsigned int debug_mask;

static const struct {
	enum p11e_debug_cat cat;
	const char *name;
} debug_cats[] = {
	{ P11E_DEBUG_IPC, "ipc" },
	{ P11E_DEBUG_PKCS11, "pkcs11" },
	{ P11E_DEBUG_HTTP, "http" },
	{ P11E_DEBUG_CONF, "conf" },
	{ P11E_DEBUG_AGENT, "agent" },
	{ P11E_DEBUG_CLI, "cli" },
	{ P11E_DEBUG_DB, "db" },
};

#define N_CATS (sizeof(debug_cats) / sizeof(debug_cats[0]))

unsigned int
p11e_log_parse_debug(const char *spec, unsigned int *unknown)
{
	unsigned int mask = 0;
	const char *p = spec;
	size_t i, len;

	*unknown = 0;
	while (p != NULL && *p != '\0') {
		len = strcspn(p, ",");
		if (len == 3 && strncmp(p, "all", 3) == 0) {
			for (i = 0; i < N_CATS; i++)
				mask |= (unsigned int)debug_cats[i].cat;
		} else if (len > 0) {
			for (i = 0; i < N_CATS; i++) {
				if (strlen(debug_cats[i].name) == len &&
				    memcmp(debug_cats[i].name, p, len) == 0)
					break;
			}
			if (i < N_CATS)
				mask |= (unsigned int)debug_cats[i].cat;
			else
				(*unknown)++;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return mask;
}

const char *
p11e_log_cat_name(enum p11e_debug_cat cat)
{
	size_t i;

	for (i = 0; i < N_CATS; i++) {
		if (debug_cats[i].cat == cat)
			return debug_cats[i].name;
	}
	return NULL;
}

void
p11e_log_init(const char *progname)
{
	const char *spec;
	unsigned int unknown = 0;

	if (progname != NULL)
		log_progname = progname;
	spec = getenv("P11ENROLL_DEBUG");
	debug_mask = spec ? p11e_log_parse_debug(spec, &unknown) : 0;
	if (unknown > 0)
		p11e_error("P11ENROLL_DEBUG: %u unknown categor%s ignored "
			   "(known: ipc,pkcs11,http,conf,agent,cli,db,all)",
		    unknown, unknown == 1 ? "y" : "ies");
}

void
p11e_log_set_level(enum p11e_log_level level)
{
	log_level = level;
}

unsigned int
p11e_log_debug_mask(void)
{
	return debug_mask;
}

static const char *
level_name(enum p11e_log_level level)
{
	switch (level) {
	case P11E_LOG_ERROR:
		return "error: ";
	case P11E_LOG_INFO:
	case P11E_LOG_VERBOSE:
		return "";
	case P11E_LOG_DEBUG:
		return "debug: ";
	}
	return "";
}

static void log_line(const char *prefix, const char *func, const char *tail,
    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void
log_line(const char *prefix, const char *func, const char *tail,
    const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	fprintf(stderr, "%s: %s%s%s%s%s\n", log_progname, prefix,
	    func ? func : "", func ? ": " : "", msg, tail ? tail : "");
	fflush(stderr);
}

void
p11e_log_msg(enum p11e_log_level level, const char *func, const char *fmt, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_line(level_name(level), func, NULL, fmt, ap);
	va_end(ap);
}

void
p11e_log_err(enum p11e_log_level level, const char *func, enum p11e_err err,
    const char *fmt, ...)
{
	char tail[256];
	va_list ap;

	if (level > log_level)
		return;
	snprintf(tail, sizeof(tail), ": %s", p11e_strerror(err));
	va_start(ap, fmt);
	log_line(level_name(level), func, tail, fmt, ap);
	va_end(ap);
}

void
p11e_log_debug_cat(
    enum p11e_debug_cat cat, const char *func, const char *fmt, ...)
{
	char prefix[32];
	va_list ap;

	if ((debug_mask & (unsigned int)cat) == 0)
		return;
	snprintf(prefix, sizeof(prefix), "debug[%s]: ",
	    p11e_log_cat_name(cat) ? p11e_log_cat_name(cat) : "?");
	va_start(ap, fmt);
	log_line(prefix, func, NULL, fmt, ap);
	va_end(ap);
}

static size_t
escaped_len(unsigned char c)
{
	if (c == '\\')
		return 2;
	return (c < 0x20 || c >= 0x7f) ? 4 : 1;
}

char *
p11e_log_escape(char *dst, size_t dstlen, const void *src, size_t srclen)
{
	const unsigned char *s = src;
	size_t i, o = 0, total = 0, room;

	if (dstlen < 4) {
		if (dstlen > 0)
			dst[0] = '\0';
		return dst;
	}
	for (i = 0; i < srclen && total < dstlen; i++)
		total += escaped_len(s[i]);
	/* all of it fits, or keep room for "..." and the NUL */
	room = total < dstlen ? dstlen - 1 : dstlen - 4;
	for (i = 0; i < srclen; i++) {
		unsigned char c = s[i];
		size_t need = escaped_len(c);

		if (need > room - o)
			break;
		if (need == 2) {
			dst[o++] = '\\';
			dst[o++] = '\\';
		} else if (need == 4) {
			snprintf(dst + o, 5, "\\x%02x", c);
			o += 4;
		} else {
			dst[o++] = (char)c;
		}
	}
	if (i < srclen) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

void
p11e_precondition_failed(const char *expr, const char *func)
{
	const char *strict = getenv("P11ENROLL_STRICT");

	p11e_log_msg(P11E_LOG_ERROR, func, "precondition failed: %s", expr);
	if (strict != NULL && strcmp(strict, "1") == 0)
		abort();
}
