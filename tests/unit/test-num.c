/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/num.h"

static void
test_u64(void **state)
{
	uint64_t v = 42;

	(void)state;
	assert_int_equal(p11e_num_parse_u64("0", 0, 10, &v), P11E_OK);
	assert_int_equal(v, 0);
	assert_int_equal(p11e_num_parse_u64("007", 0, 10, &v), P11E_OK);
	assert_int_equal(v, 7);
	assert_int_equal(
	    p11e_num_parse_u64("18446744073709551615", 0, UINT64_MAX, &v),
	    P11E_OK);
	assert_true(v == UINT64_MAX);
	v = 42;
	assert_int_equal(
	    p11e_num_parse_u64("18446744073709551616", 0, UINT64_MAX, &v),
	    P11E_ERR_RANGE);
	assert_int_equal(p11e_num_parse_u64("11", 0, 10, &v), P11E_ERR_RANGE);
	assert_int_equal(p11e_num_parse_u64("4", 5, 10, &v), P11E_ERR_RANGE);
	assert_int_equal(v, 42); /* untouched on error */
}

static void
test_u64_garbage(void **state)
{
	static const char *const bad[] = { "", " 1", "1 ", "+1", "-1", "0x10",
		"1e3", "1.0", "12a", "\xef\xbc\x91" /* full-width 1 */ };
	uint64_t v = 42;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(p11e_num_parse_u64(bad[i], 0, UINT64_MAX, &v),
		    P11E_ERR_PARSE);
		assert_int_equal(v, 42);
	}
}

static void
test_i64(void **state)
{
	int64_t v = 42;

	(void)state;
	assert_int_equal(p11e_num_parse_i64(
			     "-9223372036854775808", INT64_MIN, INT64_MAX, &v),
	    P11E_OK);
	assert_true(v == INT64_MIN);
	assert_int_equal(
	    p11e_num_parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, &v),
	    P11E_OK);
	assert_true(v == INT64_MAX);
	assert_int_equal(
	    p11e_num_parse_i64("9223372036854775808", INT64_MIN, INT64_MAX, &v),
	    P11E_ERR_RANGE);
	assert_int_equal(p11e_num_parse_i64(
			     "-9223372036854775809", INT64_MIN, INT64_MAX, &v),
	    P11E_ERR_RANGE);
	assert_int_equal(p11e_num_parse_i64("-5", -4, 4, &v), P11E_ERR_RANGE);
	assert_int_equal(p11e_num_parse_i64("-", -4, 4, &v), P11E_ERR_PARSE);
	assert_int_equal(p11e_num_parse_i64("--1", -4, 4, &v), P11E_ERR_PARSE);
	assert_int_equal(p11e_num_parse_i64("-3", -4, 4, &v), P11E_OK);
	assert_int_equal(v, -3);
}

static void
test_duration(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(
	    p11e_num_parse_duration("90", 0, UINT64_MAX, &v), P11E_OK);
	assert_int_equal(v, 90);
	assert_int_equal(
	    p11e_num_parse_duration("15m", 0, UINT64_MAX, &v), P11E_OK);
	assert_int_equal(v, 900);
	assert_int_equal(
	    p11e_num_parse_duration("2h", 0, UINT64_MAX, &v), P11E_OK);
	assert_int_equal(v, 7200);
	assert_int_equal(
	    p11e_num_parse_duration("14d", 0, UINT64_MAX, &v), P11E_OK);
	assert_int_equal(v, 14 * 86400);
	assert_int_equal(
	    p11e_num_parse_duration("s", 0, UINT64_MAX, &v), P11E_ERR_PARSE);
	assert_int_equal(
	    p11e_num_parse_duration("5w", 0, UINT64_MAX, &v), P11E_ERR_PARSE);
	assert_int_equal(
	    p11e_num_parse_duration("1d", 0, 3600, &v), P11E_ERR_RANGE);
	assert_int_equal(
	    p11e_num_parse_duration("213503982334602d", 0, UINT64_MAX, &v),
	    P11E_ERR_RANGE);
}

static void
test_bool(void **state)
{
	int b = 7;

	(void)state;
	assert_int_equal(p11e_num_parse_bool("yes", &b), P11E_OK);
	assert_int_equal(b, 1);
	assert_int_equal(p11e_num_parse_bool("off", &b), P11E_OK);
	assert_int_equal(b, 0);
	b = 7;
	assert_int_equal(p11e_num_parse_bool("Yes", &b), P11E_ERR_PARSE);
	assert_int_equal(p11e_num_parse_bool("", &b), P11E_ERR_PARSE);
	assert_int_equal(b, 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_u64_garbage),
		cmocka_unit_test(test_i64),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_bool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
