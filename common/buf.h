/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_BUF_H
#define P11E_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/*
 * A growable byte buffer with a maximum set at creation, for data from
 * outside (sockets, files, HTTP bodies).  Always NUL-terminated one byte
 * past len.  Embedded: p11e_buf_init() / p11e_buf_clear().
 */
struct p11e_buf {
	unsigned char *data; /* owned; NULL until the first append */
	size_t len;
	size_t cap; /* allocated, not counting the NUL */
	size_t max; /* len never exceeds this */
	bool wipe; /* wipe old storage on growth and on clear */
};

/* Starts an empty buffer that will refuse to grow past max bytes. */
void p11e_buf_init(struct p11e_buf *buf, size_t max);

/* As p11e_buf_init, and the bytes are wiped whenever they are released. */
void p11e_buf_init_wiped(struct p11e_buf *buf, size_t max);

/*
 * Appends n bytes.  P11E_ERR_TOO_LARGE if len + n would pass max,
 * P11E_ERR_NOMEM if growing failed; on error the buffer is unchanged.
 */
enum p11e_err p11e_buf_append(struct p11e_buf *buf, const void *data, size_t n);

/* Appends a NUL-terminated string (without its NUL). */
enum p11e_err p11e_buf_append_str(struct p11e_buf *buf, const char *s);

/* Sets len to 0 (wiping when the buffer wipes); keeps the storage. */
void p11e_buf_reset(struct p11e_buf *buf);

/*
 * Removes the first n bytes (n <= len), moving the rest to the front.
 */
void p11e_buf_consume(struct p11e_buf *buf, size_t n);

/*
 * Hands the storage to the caller (free() it, or wipe first if it held
 * secrets); the buffer is left empty.  Returns NULL for an empty buffer
 * that never allocated.
 */
unsigned char *p11e_buf_steal(struct p11e_buf *buf, size_t *len);

/* Releases the storage (wiping when asked at init). */
void p11e_buf_clear(struct p11e_buf *buf);

#endif /* P11E_BUF_H */
