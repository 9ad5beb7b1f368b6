/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crashpoint.h"
#include "common/log.h"
#include "common/num.h"

#define NAME_MAX_LEN 63

struct crashpoint {
	char name[NAME_MAX_LEN + 1];
	uint64_t at; /* crash at this hit (1 = first) */
	uint64_t hits; /* updated atomically */
};

static struct crashpoint points[P11E_CRASHPOINT_MAX];
static size_t n_points;
static pthread_once_t points_once = PTHREAD_ONCE_INIT;

/* Parses one "name" or "name:N" entry of len bytes into points[]. */
static void
add_entry(const char *entry, size_t len)
{
	struct crashpoint *cp;
	const char *colon;
	char num[24];
	size_t name_len;
	uint64_t at = 1;

	if (len == 0)
		return;
	colon = memchr(entry, ':', len);
	name_len = colon != NULL ? (size_t)(colon - entry) : len;
	if (colon != NULL) {
		size_t num_len = len - name_len - 1;

		if (num_len >= sizeof(num))
			goto bad;
		memcpy(num, colon + 1, num_len);
		num[num_len] = '\0';
		if (p11e_num_parse_u64(num, 1, UINT64_MAX, &at) != P11E_OK)
			goto bad;
	}
	if (name_len == 0 || name_len > NAME_MAX_LEN)
		goto bad;
	if (n_points == P11E_CRASHPOINT_MAX) {
		p11e_error("P11ENROLL_CRASHPOINT: more than %d entries, "
			   "the rest is ignored",
		    P11E_CRASHPOINT_MAX);
		return;
	}
	cp = &points[n_points++];
	memcpy(cp->name, entry, name_len);
	cp->name[name_len] = '\0';
	cp->at = at;
	cp->hits = 0;
	return;
bad:
	p11e_error("P11ENROLL_CRASHPOINT: ignoring malformed entry '%.*s'",
	    (int)(len > 80 ? 80 : len), entry);
}

static void
load_points(void)
{
	const char *spec, *p;
	size_t len;

	spec = getenv("P11ENROLL_CRASHPOINT");
	if (spec == NULL)
		return;
	for (p = spec; *p != '\0'; p += len + (p[len] == ',')) {
		len = strcspn(p, ",");
		add_entry(p, len);
	}
}

void
p11e_crashpoint(const char *name)
{
	size_t i;

	if (name == NULL)
		return;
	(void)pthread_once(&points_once, load_points);
	for (i = 0; i < n_points; i++) {
		if (strcmp(points[i].name, name) != 0)
			continue;
		if (__atomic_add_fetch(&points[i].hits, 1, __ATOMIC_SEQ_CST) !=
		    points[i].at)
			continue;
		/*
		 * No message, no flush: the point is to leave files,
		 * buffers and the token as an outside kill -9 would.
		 */
		(void)raise(SIGKILL);
		_exit(137);
	}
}
