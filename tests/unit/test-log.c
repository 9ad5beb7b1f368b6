/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"

static void
test_parse_debug(void **state)
{
	unsigned int unknown = 9, mask;

	(void)state;
	mask = p11e_log_parse_debug("ipc,conf", &unknown);
	assert_int_equal(mask, P11E_DEBUG_IPC | P11E_DEBUG_CONF);
	assert_int_equal(unknown, 0);
	mask = p11e_log_parse_debug("all", &unknown);
	assert_true(mask & P11E_DEBUG_PKCS11);
	assert_true(mask & P11E_DEBUG_HTTP);
	mask = p11e_log_parse_debug("ipc,,bogus,ipcx", &unknown);
	assert_int_equal(mask, P11E_DEBUG_IPC);
	assert_int_equal(unknown, 2);
	assert_string_equal(p11e_log_cat_name(P11E_DEBUG_PKCS11), "pkcs11");
}

static void
test_escape(void **state)
{
	char out[32];

	(void)state;
	assert_string_equal(
	    p11e_log_escape(out, sizeof(out), "a\nb\\c", 5), "a\\x0ab\\\\c");
	assert_string_equal(
	    p11e_log_escape(out, sizeof(out), "x\0y", 3), "x\\x00y");
	assert_string_equal(
	    p11e_log_escape(out, sizeof(out), "\xe3\x82\xaa", 3),
	    "\\xe3\\x82\\xaa");
	/* cut, marked, terminated and within the buffer */
	assert_string_equal(
	    p11e_log_escape(out, 8, "0123456789", 10), "0123...");
	assert_string_equal(p11e_log_escape(out, 8, "\n\n\n", 3), "\\x0a...");
	assert_string_equal(p11e_log_escape(out, 4, "abc", 3), "abc");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_debug),
		cmocka_unit_test(test_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
