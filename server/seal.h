/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_SEAL_H
#define P11E_SEAL_H

/*
 * Values the RA must read back but must not keep in clear in its
 * database (R13): customer cards and OTP secrets.  AES-256-GCM with the
 * 32-byte data key of the RA directory (a 0400 file outside the
 * database); each value is bound to what it belongs to by the
 * associated data (e.g. "card:00012345678"), so a sealed value copied to
 * another row does not open.
 *
 * Format: 0x01 (version) || 12-byte random nonce || ciphertext || 16-byte
 * tag.
 */

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/secret.h"

#define P11E_SEAL_KEY_LEN 32
#define P11E_SEAL_OVERHEAD (1 + 12 + 16)

/*
 * Reads the data key file (exactly 32 bytes; owned by the caller and not
 * readable by others: P11E_ERR_UNSAFE_PATH otherwise) into a new secret.
 */
enum p11e_err p11e_seal_key_load(const char *path, struct p11e_secret **key);

/*
 * Creates path (O_EXCL, mode 0400) holding 32 random bytes.
 */
enum p11e_err p11e_seal_key_create(const char *path);

/* Appends the sealed form of plain to out. */
enum p11e_err p11e_seal(const struct p11e_secret *key, const char *aad,
    const struct p11e_secret *plain, struct p11e_buf *out);

/*
 * Opens sealed (len bytes) into a new secret.  P11E_ERR_CRYPTO when the
 * tag does not verify (wrong key, wrong aad, damaged).
 */
enum p11e_err p11e_unseal(const struct p11e_secret *key, const char *aad,
    const unsigned char *sealed, size_t len, struct p11e_secret **plain);

#endif /* P11E_SEAL_H */
