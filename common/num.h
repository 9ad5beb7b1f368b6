/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_NUM_H
#define P11E_NUM_H

#include <stdint.h>

#include "common/err.h"

/*
 * The one checked number parser.  The whole string must be decimal
 * digits (no sign, no space, no "0x", no trailing text; leading zeros
 * are fine).  P11E_ERR_PARSE for anything that is not a number,
 * P11E_ERR_RANGE for a number outside [min, max] (including overflow).
 * *out is written only on success.
 */
enum p11e_err
p11e_num_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Same with an optional leading '-'. */
enum p11e_err
p11e_num_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/*
 * A duration: a number with an optional unit s, m, h or d ("90", "90s",
 * "15m", "14d"), in seconds, within [min, max] seconds.
 */
enum p11e_err p11e_num_parse_duration(
    const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* "yes/true/on/1" and "no/false/off/0" (lower case). */
enum p11e_err p11e_num_parse_bool(const char *s, int *out);

#endif /* P11E_NUM_H */
