/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/secret.h"

void
p11e_buf_init(struct p11e_buf *buf, size_t max)
{
	memset(buf, 0, sizeof(*buf));
	buf->max = max;
}

void
p11e_buf_init_wiped(struct p11e_buf *buf, size_t max)
{
	p11e_buf_init(buf, max);
	buf->wipe = true;
}

static enum p11e_err
buf_grow(struct p11e_buf *buf, size_t need)
{
	unsigned char *p;
	size_t cap = buf->cap ? buf->cap : 64;

	while (cap < need)
		cap = cap > buf->max / 2 ? buf->max : cap * 2;
	if (cap < need)
		cap = need;
	if (buf->wipe) {
		/* realloc could leave a copy of the old bytes behind */
		if ((p = malloc(cap + 1)) == NULL)
			return P11E_ERR_NOMEM;
		if (buf->data != NULL) {
			memcpy(p, buf->data, buf->len + 1);
			p11e_wipe(buf->data, buf->cap + 1);
			free(buf->data);
		}
	} else if ((p = realloc(buf->data, cap + 1)) == NULL) {
		return P11E_ERR_NOMEM;
	}
	buf->data = p;
	buf->cap = cap;
	return P11E_OK;
}

enum p11e_err
p11e_buf_append(struct p11e_buf *buf, const void *data, size_t n)
{
	enum p11e_err err;

	p11e_return_val_if_fail(buf != NULL, P11E_ERR_INVALID_PARAMETER);
	p11e_return_val_if_fail(
	    data != NULL || n == 0, P11E_ERR_INVALID_PARAMETER);
	if (n > buf->max - buf->len)
		return P11E_ERR_TOO_LARGE;
	if (buf->data == NULL || n > buf->cap - buf->len) {
		if ((err = buf_grow(buf, buf->len + n)) != P11E_OK)
			return err;
	}
	if (n > 0)
		memcpy(buf->data + buf->len, data, n);
	buf->len += n;
	buf->data[buf->len] = '\0';
	return P11E_OK;
}

enum p11e_err
p11e_buf_append_str(struct p11e_buf *buf, const char *s)
{
	p11e_return_val_if_fail(s != NULL, P11E_ERR_INVALID_PARAMETER);
	return p11e_buf_append(buf, s, strlen(s));
}

void
p11e_buf_reset(struct p11e_buf *buf)
{
	if (buf->data != NULL) {
		if (buf->wipe)
			p11e_wipe(buf->data, buf->cap + 1);
		buf->data[0] = '\0';
	}
	buf->len = 0;
}

void
p11e_buf_consume(struct p11e_buf *buf, size_t n)
{
	p11e_return_if_fail(n <= buf->len);
	if (n == 0)
		return;
	memmove(buf->data, buf->data + n, buf->len - n);
	buf->len -= n;
	if (buf->wipe)
		p11e_wipe(buf->data + buf->len, n);
	buf->data[buf->len] = '\0';
}

unsigned char *
p11e_buf_steal(struct p11e_buf *buf, size_t *len)
{
	unsigned char *p = buf->data;

	if (len != NULL)
		*len = buf->len;
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
	return p;
}

void
p11e_buf_clear(struct p11e_buf *buf)
{
	if (buf == NULL)
		return;
	if (buf->data != NULL && buf->wipe)
		p11e_wipe(buf->data, buf->cap + 1);
	free(buf->data);
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}
