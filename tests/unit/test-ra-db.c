/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "server/db-pool.h"
#include "server/db.h"

static char dir[] = "/tmp/test-ra-db.XXXXXX";
static char path[256];

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/ra.db", dir);
	return 0;
}

static int
teardown(void **state)
{
	char p[300];

	(void)state;
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	rmdir(dir);
	return 0;
}

static void
reset(void)
{
	teardown(NULL);
	(void)mkdir(dir, 0700);
}

static void
test_fresh_schema(void **state)
{
	struct p11e_db *db = NULL;
	sqlite3_stmt *st = NULL;

	(void)state;
	reset();
	assert_int_equal(p11e_db_open(path, false, &db), P11E_ERR_NOT_FOUND);
	assert_int_equal(p11e_db_open(path, true, &db), P11E_OK);
	assert_int_equal(p11e_db_schema_version(db), P11E_DB_SCHEMA_VERSION);
	assert_int_equal(p11e_db_check_durability(db), P11E_OK);
	/* every table of v1 is there */
	assert_int_equal(p11e_db_prepare(db,
			     "SELECT count(*) FROM sqlite_master WHERE type ="
			     " 'table' AND name IN ('contracts', 'users',"
			     " 'otp_tokens', 'windows', 'enroll_codes',"
			     " 'certificates', 'audit', 'meta')",
			     &st),
	    P11E_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 8);
	sqlite3_finalize(st);
	p11e_db_close(db);
	/* reopening migrates nothing */
	assert_int_equal(p11e_db_open(path, false, &db), P11E_OK);
	assert_int_equal(p11e_db_schema_version(db), P11E_DB_SCHEMA_VERSION);
	p11e_db_close(db);
}

static void
test_synchronous_checked(void **state)
{
	struct p11e_db *db = NULL;

	(void)state;
	reset();
	assert_int_equal(p11e_db_open(path, true, &db), P11E_OK);
	assert_int_equal(sqlite3_exec(p11e_db_handle(db),
			     "PRAGMA synchronous = NORMAL", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(p11e_db_check_durability(db), P11E_ERR_DB);
	assert_int_equal(sqlite3_exec(p11e_db_handle(db),
			     "PRAGMA synchronous = FULL", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(p11e_db_check_durability(db), P11E_OK);
	p11e_db_close(db);
}

static void
test_newer_refused(void **state)
{
	struct p11e_db *db = NULL;

	(void)state;
	reset();
	assert_int_equal(p11e_db_open(path, true, &db), P11E_OK);
	assert_int_equal(sqlite3_exec(p11e_db_handle(db),
			     "UPDATE meta SET value = '99' WHERE key ="
			     " 'schema_version'",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	p11e_db_close(db);
	db = NULL;
	assert_int_equal(p11e_db_open(path, false, &db), P11E_ERR_DB_VERSION);
	assert_null(db);
}

static const char v2_sql[] = "ALTER TABLE users ADD COLUMN email TEXT;";
static const char v2_bad[] = "ALTER TABLE users ADD COLUMN email TEXT;"
			     "THIS IS NOT SQL;";

static void
test_migration_steps(void **state)
{
	struct p11e_db_migration list[2];
	struct p11e_db *db = NULL;

	(void)state;
	reset();
	assert_int_equal(
	    p11e_db_open_with(path, true, p11e_db_migrations, 1, &db), P11E_OK);
	p11e_db_close(db);
	db = NULL;
	list[0] = p11e_db_migrations[0];
	/* the real migrations after the first stand aside: a test v2 */
	/* a failing v2 leaves the database at v1, without its column */
	list[1].version = 2;
	list[1].sql = v2_bad;
	assert_int_not_equal(
	    p11e_db_open_with(path, false, list, 2, &db), P11E_OK);
	assert_int_equal(
	    p11e_db_open_with(path, false, p11e_db_migrations, 1, &db),
	    P11E_OK);
	assert_int_equal(p11e_db_schema_version(db), 1);
	assert_int_not_equal(sqlite3_exec(p11e_db_handle(db),
				 "SELECT email FROM users", NULL, NULL, NULL),
	    SQLITE_OK);
	p11e_db_close(db);
	db = NULL;
	/* a good v2 applies once */
	list[1].sql = v2_sql;
	assert_int_equal(p11e_db_open_with(path, false, list, 2, &db), P11E_OK);
	assert_int_equal(p11e_db_schema_version(db), 2);
	assert_int_equal(sqlite3_exec(p11e_db_handle(db),
			     "SELECT email FROM users", NULL, NULL, NULL),
	    SQLITE_OK);
	p11e_db_close(db);
	db = NULL;
	assert_int_equal(p11e_db_open_with(path, false, list, 2, &db), P11E_OK);
	p11e_db_close(db);
	db = NULL;
	/* and the v1 code now refuses it */
	assert_int_equal(
	    p11e_db_open_with(path, false, p11e_db_migrations, 1, &db),
	    P11E_ERR_DB_VERSION);
}

static void
test_transactions_and_audit(void **state)
{
	struct p11e_db *db = NULL;
	sqlite3_stmt *st = NULL;

	(void)state;
	reset();
	assert_int_equal(p11e_db_open(path, true, &db), P11E_OK);
	assert_int_equal(p11e_db_begin(db), P11E_OK);
	assert_true(p11e_db_in_transaction(db));
	assert_int_equal(
	    p11e_db_audit(db, "t", "x", "a\r\nb\\c", "ok", NULL, "\x01\xff"),
	    P11E_OK);
	p11e_db_rollback(db);
	assert_false(p11e_db_in_transaction(db));
	assert_int_equal(p11e_db_audit(db, "t", "x", "a\r\nb\\c", "ok",
			     "127.0.0.1", "名前\x01"),
	    P11E_OK);
	assert_int_equal(p11e_db_prepare(db,
			     "SELECT count(*), max(target), max(detail) FROM"
			     " audit",
			     &st),
	    P11E_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	assert_string_equal(sqlite3_column_text(st, 1), "a\\x0d\\x0ab\\\\c");
	assert_string_equal(sqlite3_column_text(st, 2), "名前\\x01");
	sqlite3_finalize(st);
	/* constraints give Exists, the CHECK on IDs holds */
	assert_int_equal(p11e_db_prepare(db,
			     "INSERT INTO contracts (contract_id, name,"
			     " pin_hash, confirm_pin_hash, card, created)"
			     " VALUES ('1234567890X', 'n', 'h', 'h', x'00', 0)",
			     &st),
	    P11E_OK);
	assert_int_equal(p11e_db_step_done(db, st), P11E_ERR_EXISTS);
	p11e_db_close(db);
}

static void
test_text_by_id(void **state)
{
	static const char sql[] = "SELECT pin_hash FROM contracts WHERE id = ?";
	struct p11e_db *db = NULL;
	sqlite3_stmt *st = NULL;
	char out[16];
	int64_t id;

	(void)state;
	reset();
	assert_int_equal(p11e_db_open(path, true, &db), P11E_OK);
	assert_int_equal(p11e_db_prepare(db,
			     "INSERT INTO contracts (contract_id, name,"
			     " pin_hash, confirm_pin_hash, card, created)"
			     " VALUES ('12345678901', 'n', 'hash-a', 'h',"
			     " x'00', 0)",
			     &st),
	    P11E_OK);
	assert_int_equal(p11e_db_step_done(db, st), P11E_OK);
	id = p11e_db_last_id(db);
	assert_int_equal(
	    p11e_db_text_by_id(db, sql, id, "contract", out, sizeof(out)),
	    P11E_OK);
	assert_string_equal(out, "hash-a");
	/* no row: NotFound and an empty answer */
	assert_int_equal(
	    p11e_db_text_by_id(db, sql, id + 1, "contract", out, sizeof(out)),
	    P11E_ERR_NOT_FOUND);
	assert_string_equal(out, "");
	/* cut to the buffer */
	assert_int_equal(
	    p11e_db_text_by_id(db, sql, id, "contract", out, 5), P11E_OK);
	assert_string_equal(out, "hash");
	p11e_db_close(db);
}

static void
test_pool(void **state)
{
	struct p11e_db_pool *pool = NULL, *none = NULL;
	struct p11e_db *db = NULL, *a, *b;
	char missing[300];

	(void)state;
	reset();
	assert_int_equal(p11e_db_open(path, true, &db), P11E_OK);
	p11e_db_close(db);
	assert_int_equal(p11e_db_pool_new(path, 1, &pool), P11E_OK);
	assert_non_null(a = p11e_db_pool_take(pool));
	assert_non_null(b = p11e_db_pool_take(pool));
	assert_ptr_not_equal(a, b);
	/* given back in a transaction: rolled back, then kept */
	assert_int_equal(p11e_db_begin(a), P11E_OK);
	p11e_db_pool_give(pool, a);
	assert_false(p11e_db_in_transaction(a));
	/* one idle connection at most: b is closed */
	p11e_db_pool_give(pool, b);
	p11e_db_pool_give(pool, NULL);
	assert_ptr_equal(p11e_db_pool_take(pool), a);
	p11e_db_pool_give(pool, a);
	p11e_db_pool_free(pool);
	p11e_db_pool_free(NULL);
	/* a database that is not there: no connection */
	snprintf(missing, sizeof(missing), "%s/none.db", dir);
	assert_int_equal(p11e_db_pool_new(missing, 4, &none), P11E_OK);
	assert_null(p11e_db_pool_take(none));
	p11e_db_pool_free(none);
}

static void
test_id_formats(void **state)
{
	(void)state;
	assert_true(p11e_db_valid_contract_id("00012345678"));
	assert_false(p11e_db_valid_contract_id("0001234567"));
	assert_false(p11e_db_valid_contract_id("000123456789"));
	assert_false(p11e_db_valid_contract_id("0001234-678"));
	assert_false(p11e_db_valid_contract_id("０００12345678"));
	assert_false(p11e_db_valid_contract_id(""));
	assert_true(p11e_db_valid_user_id("S0001"));
	assert_true(p11e_db_valid_user_id("a"));
	assert_true(p11e_db_valid_user_id("abcdefghijabcdefghijabcdefghij"));
	assert_false(p11e_db_valid_user_id("abcdefghijabcdefghijabcdefghijk"));
	assert_false(p11e_db_valid_user_id(""));
	assert_false(p11e_db_valid_user_id("S 001"));
	assert_false(p11e_db_valid_user_id("S0001'--"));
	assert_false(p11e_db_valid_user_id("Ｓ0001"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_schema),
		cmocka_unit_test(test_synchronous_checked),
		cmocka_unit_test(test_newer_refused),
		cmocka_unit_test(test_migration_steps),
		cmocka_unit_test(test_transactions_and_audit),
		cmocka_unit_test(test_text_by_id),
		cmocka_unit_test(test_pool),
		cmocka_unit_test(test_id_formats),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
