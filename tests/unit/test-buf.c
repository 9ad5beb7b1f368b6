/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"

static void
test_append_and_limit(void **state)
{
	struct p11e_buf buf;
	char big[300];

	(void)state;
	memset(big, 'x', sizeof(big));
	p11e_buf_init(&buf, 100);
	assert_int_equal(p11e_buf_append_str(&buf, "hello"), P11E_OK);
	assert_int_equal(buf.len, 5);
	assert_string_equal((char *)buf.data, "hello");
	assert_int_equal(p11e_buf_append(&buf, big, 95), P11E_OK);
	assert_int_equal(buf.len, 100);
	/* one byte more is refused and nothing changes */
	assert_int_equal(p11e_buf_append(&buf, "y", 1), P11E_ERR_TOO_LARGE);
	assert_int_equal(buf.len, 100);
	assert_int_equal(buf.data[100], '\0');
	/* a huge n must not overflow the check */
	assert_int_equal(
	    p11e_buf_append(&buf, big, SIZE_MAX), P11E_ERR_TOO_LARGE);
	assert_int_equal(buf.len, 100);
	p11e_buf_clear(&buf);
	assert_null(buf.data);
}

static void
test_consume_and_steal(void **state)
{
	struct p11e_buf buf;
	unsigned char *p;
	size_t len;

	(void)state;
	p11e_buf_init_wiped(&buf, 1 << 20);
	assert_int_equal(p11e_buf_append_str(&buf, "abc\0def"), P11E_OK);
	assert_int_equal(p11e_buf_append(&buf, "\0def", 4), P11E_OK);
	p11e_buf_consume(&buf, 4);
	assert_int_equal(buf.len, 3);
	assert_memory_equal(buf.data, "def", 4);
	p = p11e_buf_steal(&buf, &len);
	assert_int_equal(len, 3);
	assert_null(buf.data);
	assert_int_equal(buf.len, 0);
	free(p);
	p11e_buf_clear(&buf);
}

static void
test_growth_many(void **state)
{
	struct p11e_buf buf;
	int i;

	(void)state;
	p11e_buf_init_wiped(&buf, 65536);
	for (i = 0; i < 65536; i++)
		assert_int_equal(p11e_buf_append(&buf, "z", 1), P11E_OK);
	assert_int_equal(p11e_buf_append(&buf, "z", 1), P11E_ERR_TOO_LARGE);
	assert_int_equal(buf.cap, 65536);
	p11e_buf_reset(&buf);
	assert_int_equal(buf.len, 0);
	assert_int_equal(buf.data[0], 0);
	p11e_buf_clear(&buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_limit),
		cmocka_unit_test(test_consume_and_steal),
		cmocka_unit_test(test_growth_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
