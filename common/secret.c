/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "common/secret.h"

struct p11e_secret {
	size_t len;
	size_t cap;
	size_t maplen;
	bool locked;
	unsigned char data[];
};

void
p11e_wipe(void *p, size_t len)
{
	if (p == NULL || len == 0)
		return;
#ifdef HAVE_EXPLICIT_BZERO
	explicit_bzero(p, len);
#else
	{
		volatile unsigned char *v = p;

		while (len--)
			*v++ = 0;
	}
#endif
}

struct p11e_secret *
p11e_secret_new(size_t cap)
{
	struct p11e_secret *s;
	long page = sysconf(_SC_PAGESIZE);
	size_t need, maplen;
	void *map;

	p11e_return_val_if_fail(cap > 0 && cap <= P11E_SECRET_MAX, NULL);
	if (page <= 0)
		page = 4096;
	/* header, bytes and the trailing NUL, rounded up to whole pages */
	need = sizeof(*s) + cap + 1;
	maplen = (need + (size_t)page - 1) / (size_t)page * (size_t)page;
	map = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return NULL;
	s = map;
	s->len = 0;
	s->cap = cap;
	s->maplen = maplen;
	/* Not fatal: an unprivileged user may have a small RLIMIT_MEMLOCK. */
	s->locked = mlock(map, maplen) == 0;
#ifdef MADV_DONTDUMP
	(void)madvise(map, maplen, MADV_DONTDUMP);
#endif
#ifdef MADV_WIPEONFORK
	(void)madvise(map, maplen, MADV_WIPEONFORK);
#endif
	s->data[0] = '\0';
	return s;
}

struct p11e_secret *
p11e_secret_new_from(const void *data, size_t len)
{
	struct p11e_secret *s = p11e_secret_new(len > 0 ? len : 1);

	if (s != NULL && p11e_secret_append(s, data, len) != P11E_OK) {
		p11e_secret_free(s);
		return NULL;
	}
	return s;
}

enum p11e_err
p11e_secret_append(struct p11e_secret *s, const void *data, size_t len)
{
	p11e_return_val_if_fail(s != NULL, P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(
	    data != NULL || len == 0, P11E_ERR_INVALID_PARAMETER);
	if (len > s->cap - s->len)
		return P11E_ERR_TOO_LARGE;
	if (len > 0)
		memcpy(s->data + s->len, data, len);
	s->len += len;
	s->data[s->len] = '\0';
	return P11E_OK;
}

void
p11e_secret_reset(struct p11e_secret *s)
{
	if (s == NULL)
		return;
	p11e_wipe(s->data, s->cap + 1);
	s->len = 0;
}

const unsigned char *
p11e_secret_data(const struct p11e_secret *s)
{
	p11e_return_val_if_fail(s != NULL, NULL);
	return s->data;
}

size_t
p11e_secret_len(const struct p11e_secret *s)
{
	return s ? s->len : 0;
}

size_t
p11e_secret_cap(const struct p11e_secret *s)
{
	return s ? s->cap : 0;
}

const char *
p11e_secret_str(const struct p11e_secret *s)
{
	p11e_return_val_if_fail(s != NULL, NULL);
	return (const char *)s->data;
}

bool
p11e_secret_is_locked(const struct p11e_secret *s)
{
	return s ? s->locked : false;
}

bool
p11e_secret_equal_mem(const struct p11e_secret *a, const void *b, size_t blen)
{
	const volatile unsigned char *x, *y;
	unsigned char diff;
	size_t i;

	p11e_return_val_if_fail(a != NULL, false);
	p11e_return_val_if_fail(b != NULL || blen == 0, false);
	x = a->data;
	y = b;
	diff = a->len != blen;
	/*
	 * Walk the shorter length whatever the content, so the time tells
	 * only the lengths.
	 */
	for (i = 0; i < a->len && i < blen; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

bool
p11e_secret_equal(const struct p11e_secret *a, const struct p11e_secret *b)
{
	p11e_return_val_if_fail(a != NULL && b != NULL, false);
	return p11e_secret_equal_mem(a, b->data, b->len);
}

void
p11e_secret_free(struct p11e_secret *s)
{
	size_t maplen;

	if (s == NULL)
		return;
	maplen = s->maplen;
	p11e_wipe(s, maplen);
	munlock(s, maplen);
	munmap(s, maplen);
}

/* ---- the wiping allocator ---- */

union wipe_header {
	size_t size;
	max_align_t align;
};

void *
p11e_wipe_malloc(size_t size)
{
	union wipe_header *h;

	if (size > SIZE_MAX - sizeof(*h))
		return NULL;
	if ((h = malloc(sizeof(*h) + size)) == NULL)
		return NULL;
	h->size = size;
	return h + 1;
}

void *
p11e_wipe_calloc(size_t n, size_t size)
{
	void *p;

	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	if ((p = p11e_wipe_malloc(n * size)) != NULL)
		memset(p, 0, n * size);
	return p;
}

void
p11e_wipe_free(void *p)
{
	union wipe_header *h;

	if (p == NULL)
		return;
	h = (union wipe_header *)p - 1;
	p11e_wipe(h, sizeof(*h) + h->size);
	free(h);
}

void *
p11e_wipe_realloc(void *p, size_t size)
{
	union wipe_header *h;
	void *n;

	if (p == NULL)
		return p11e_wipe_malloc(size);
	if (size == 0) {
		p11e_wipe_free(p);
		return NULL;
	}
	h = (union wipe_header *)p - 1;
	/* always moved: the old block is wiped, never left behind */
	if ((n = p11e_wipe_malloc(size)) == NULL)
		return NULL;
	memcpy(n, p, h->size < size ? h->size : size);
	p11e_wipe_free(p);
	return n;
}

char *
p11e_wipe_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p;

	if ((p = p11e_wipe_malloc(n)) != NULL)
		memcpy(p, s, n);
	return p;
}
