/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <string.h>

#include "common/log.h"
#include "common/num.h"

/* Parses len digits of s; P11E_ERR_RANGE on overflow past limit. */
static enum p11e_err
parse_digits(const char *s, size_t len, uint64_t limit, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0)
		return P11E_ERR_PARSE;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return P11E_ERR_PARSE;
	}
	for (i = 0; i < len; i++) {
		unsigned int d = (unsigned int)(s[i] - '0');

		if (v > (limit - d) / 10)
			return P11E_ERR_RANGE;
		v = v * 10 + d;
	}
	*out = v;
	return P11E_OK;
}

enum p11e_err
p11e_num_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	enum p11e_err err;
	uint64_t v;

	p11e_return_val_if_fail(
	    s != NULL && out != NULL, P11E_ERR_INVALID_PARAMETER);
	if ((err = parse_digits(s, strlen(s), UINT64_MAX, &v)) != P11E_OK)
		return err;
	if (v < min || v > max)
		return P11E_ERR_RANGE;
	*out = v;
	return P11E_OK;
}

enum p11e_err
p11e_num_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	enum p11e_err err;
	int neg = 0;
	uint64_t v;
	int64_t r;

	p11e_return_val_if_fail(
	    s != NULL && out != NULL, P11E_ERR_INVALID_PARAMETER);
	if (*s == '-') {
		neg = 1;
		s++;
	}
	err = parse_digits(s, strlen(s),
	    neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v);
	if (err != P11E_OK)
		return err;
	if (neg)
		r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		r = (int64_t)v;
	if (r < min || r > max)
		return P11E_ERR_RANGE;
	*out = r;
	return P11E_OK;
}

enum p11e_err
p11e_num_parse_duration(
    const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	enum p11e_err err;
	uint64_t v, unit = 1;
	size_t len;

	p11e_return_val_if_fail(
	    s != NULL && out != NULL, P11E_ERR_INVALID_PARAMETER);
	len = strlen(s);
	if (len > 0) {
		switch (s[len - 1]) {
		case 's':
			unit = 1;
			len--;
			break;
		case 'm':
			unit = 60;
			len--;
			break;
		case 'h':
			unit = 3600;
			len--;
			break;
		case 'd':
			unit = 86400;
			len--;
			break;
		default:
			break;
		}
	}
	if ((err = parse_digits(s, len, UINT64_MAX / unit, &v)) != P11E_OK)
		return err;
	v *= unit;
	if (v < min || v > max)
		return P11E_ERR_RANGE;
	*out = v;
	return P11E_OK;
}

enum p11e_err
p11e_num_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	p11e_return_val_if_fail(
	    s != NULL && out != NULL, P11E_ERR_INVALID_PARAMETER);
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = 1;
			return P11E_OK;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = 0;
			return P11E_OK;
		}
	}
	return P11E_ERR_PARSE;
}
