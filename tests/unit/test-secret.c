/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/secret.h"

static void
test_append_and_view(void **state)
{
	struct p11e_secret *s;

	(void)state;
	s = p11e_secret_new(8);
	assert_non_null(s);
	assert_int_equal(p11e_secret_len(s), 0);
	assert_string_equal(p11e_secret_str(s), "");
	assert_int_equal(p11e_secret_append(s, "1234", 4), P11E_OK);
	assert_int_equal(p11e_secret_append(s, "5678", 4), P11E_OK);
	assert_string_equal(p11e_secret_str(s), "12345678");
	/* full: refused, unchanged */
	assert_int_equal(p11e_secret_append(s, "9", 1), P11E_ERR_TOO_LARGE);
	assert_string_equal(p11e_secret_str(s), "12345678");
	p11e_secret_reset(s);
	assert_int_equal(p11e_secret_len(s), 0);
	assert_int_equal(p11e_secret_data(s)[0], 0);
	assert_int_equal(p11e_secret_data(s)[7], 0);
	p11e_secret_free(s);
	p11e_secret_free(NULL);
}

static void
test_equal(void **state)
{
	struct p11e_secret *a, *b, *c, *d;

	(void)state;
	a = p11e_secret_new_from("PINCANARY", 9);
	b = p11e_secret_new_from("PINCANARY", 9);
	c = p11e_secret_new_from("PINCANARx", 9);
	d = p11e_secret_new_from("PINCANAR", 8);
	assert_true(p11e_secret_equal(a, b));
	assert_false(p11e_secret_equal(a, c));
	assert_false(p11e_secret_equal(a, d));
	assert_false(p11e_secret_equal(d, a));
	assert_true(p11e_secret_equal_mem(a, "PINCANARY", 9));
	assert_false(p11e_secret_equal_mem(a, "PINCANARY!", 10));
	p11e_secret_free(a);
	p11e_secret_free(b);
	p11e_secret_free(c);
	p11e_secret_free(d);
}

static void
test_capacity_bounds(void **state)
{
	(void)state;
	/* preconditions are strict in tests: only check the valid edge */
	struct p11e_secret *s = p11e_secret_new(P11E_SECRET_MAX);

	assert_non_null(s);
	assert_int_equal(p11e_secret_cap(s), P11E_SECRET_MAX);
	p11e_secret_free(s);
}

static void
test_wipe(void **state)
{
	unsigned char b[16];

	(void)state;
	memset(b, 0xa5, sizeof(b));
	p11e_wipe(b, sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_view),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_capacity_bounds),
		cmocka_unit_test(test_wipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
