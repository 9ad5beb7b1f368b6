/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_SECRET_H
#define P11E_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/*
 * A PIN, password, OTP or grid answer.  The bytes live in a private
 * mapping of their own that is locked in memory where the system allows
 * it (RLIMIT_MEMLOCK) and excluded from core dumps; they are wiped on
 * free.  Nothing else in p11enroll may hold a secret.  Opaque.
 */
struct p11e_secret;

/* Largest capacity accepted by p11e_secret_new (bytes). */
#define P11E_SECRET_MAX 4096

/*
 * Creates an empty secret that can hold up to cap bytes (1..P11E_SECRET_MAX).
 * Returns NULL when out of memory or cap is out of range.  Free with
 * p11e_secret_free().
 */
struct p11e_secret *p11e_secret_new(size_t cap);

/* As p11e_secret_new(len) plus p11e_secret_append(data, len). */
struct p11e_secret *p11e_secret_new_from(const void *data, size_t len);

/*
 * Appends len bytes.  P11E_ERR_TOO_LARGE if they do not fit (the secret
 * is left unchanged).
 */
enum p11e_err
p11e_secret_append(struct p11e_secret *s, const void *data, size_t len);

/* Wipes the content and sets the length to 0 (capacity kept). */
void p11e_secret_reset(struct p11e_secret *s);

/* Borrowed view of the bytes; valid until the next change or free. */
const unsigned char *p11e_secret_data(const struct p11e_secret *s);
size_t p11e_secret_len(const struct p11e_secret *s);
size_t p11e_secret_cap(const struct p11e_secret *s);

/*
 * NUL-terminated view for APIs that want a C string.  The secret always
 * keeps a NUL after its bytes.  Embedded NULs are the caller's concern.
 */
const char *p11e_secret_str(const struct p11e_secret *s);

/* Whether the bytes are locked in memory (mlock succeeded). */
bool p11e_secret_is_locked(const struct p11e_secret *s);

/*
 * Constant-time comparison: the time depends on the lengths only, never
 * on the content.  Returns true when both hold the same bytes.
 */
bool
p11e_secret_equal(const struct p11e_secret *a, const struct p11e_secret *b);

/* Same, against a plain buffer. */
bool
p11e_secret_equal_mem(const struct p11e_secret *a, const void *b, size_t blen);

/* Wipes and releases; NULL is a no-op. */
void p11e_secret_free(struct p11e_secret *s);

/* Wipes len bytes at p in a way the compiler cannot drop. */
void p11e_wipe(void *p, size_t len);

/*
 * An allocator whose blocks are wiped when freed or moved (a size header
 * in front of each block), for the libraries that copy secrets into
 * memory of their own: jansson (p11e_ipc_json_init) and libcurl (the
 * request it builds holds the password and the one-time password).
 */
void *p11e_wipe_malloc(size_t size);
void *p11e_wipe_calloc(size_t n, size_t size);
void *p11e_wipe_realloc(void *p, size_t size);
char *p11e_wipe_strdup(const char *s);
void p11e_wipe_free(void *p);

#endif /* P11E_SECRET_H */
