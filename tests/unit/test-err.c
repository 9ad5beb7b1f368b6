/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"

#define MAX_ROWS 256

struct row {
	int value;
	char name[64];
	char message[256];
};

static struct row rows[MAX_ROWS];
static int n_rows;

/* Trims spaces and one pair of backticks. */
static void
cell(char *dst, size_t dstlen, const char *start, size_t len)
{
	while (len > 0 && *start == ' ') {
		start++;
		len--;
	}
	while (len > 0 && start[len - 1] == ' ')
		len--;
	if (len >= 2 && start[0] == '`' && start[len - 1] == '`') {
		start++;
		len -= 2;
	}
	assert_true(len < dstlen);
	memcpy(dst, start, len);
	dst[len] = '\0';
}

static int
load_doc(void **state)
{
	const char *srcdir = getenv("top_srcdir");
	char path[4096], line[1024];
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/doc/errors.md", srcdir ? srcdir : ".");
	f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "cannot open %s\n", path);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *bar[5];
		int i;

		if (strncmp(p, "| ", 2) != 0 || p[2] < '0' || p[2] > '9')
			continue;
		bar[0] = p;
		for (i = 1; i < 5; i++) {
			bar[i] = strchr(bar[i - 1] + 1, '|');
			if (bar[i] == NULL)
				break;
		}
		if (i < 5 || n_rows >= MAX_ROWS)
			return -1;
		rows[n_rows].value = (int)strtol(bar[0] + 1, NULL, 10);
		cell(rows[n_rows].name, sizeof(rows[0].name), bar[1] + 1,
		    (size_t)(bar[2] - bar[1] - 1));
		cell(rows[n_rows].message, sizeof(rows[0].message), bar[2] + 1,
		    (size_t)(bar[3] - bar[2] - 1));
		n_rows++;
	}
	fclose(f);
	return 0;
}

static void
test_doc_matches_code(void **state)
{
	int i;

	(void)state;
	/* one row per value, in order, nothing extra */
	assert_int_equal(n_rows, P11E_ERR_LAST + 1);
	for (i = 0; i <= P11E_ERR_LAST; i++) {
		assert_int_equal(rows[i].value, i);
		assert_non_null(p11e_err_name((enum p11e_err)i));
		assert_string_equal(
		    rows[i].name, p11e_err_name((enum p11e_err)i));
		assert_string_equal(
		    rows[i].message, p11e_strerror((enum p11e_err)i));
	}
}

static void
test_names_unique_and_round_trip(void **state)
{
	enum p11e_err back;
	int i, j;

	(void)state;
	for (i = 0; i <= P11E_ERR_LAST; i++) {
		const char *n = p11e_err_name((enum p11e_err)i);

		assert_int_equal(p11e_err_from_name(n, &back), P11E_OK);
		assert_int_equal(back, i);
		for (j = i + 1; j <= P11E_ERR_LAST; j++)
			assert_string_not_equal(
			    n, p11e_err_name((enum p11e_err)j));
	}
	back = P11E_ERR_IO;
	assert_int_equal(
	    p11e_err_from_name("NoSuchError", &back), P11E_ERR_PARSE);
	assert_int_equal(back, P11E_ERR_IO);
}

static void
test_unknown_value(void **state)
{
	(void)state;
	assert_string_equal(
	    p11e_strerror((enum p11e_err)(P11E_ERR_LAST + 1)), "unknown error");
	assert_null(p11e_err_name((enum p11e_err)(P11E_ERR_LAST + 1)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doc_matches_code),
		cmocka_unit_test(test_names_unique_and_round_trip),
		cmocka_unit_test(test_unknown_value),
	};

	return cmocka_run_group_tests(tests, load_doc, NULL);
}
