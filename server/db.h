/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_DB_H
#define P11E_DB_H

/*
 * The RA's store: one SQLite file, opened with journal_mode=WAL,
 * synchronous=FULL (read back: anything else refuses to open, R33),
 * foreign_keys=ON and a busy timeout of 5 s.  The schema is versioned
 * (meta.schema_version) and migrated forward in one transaction per
 * step; a database newer than this code is refused.  The schema is
 * described in server/db.c and in p11enroll-ra(8).
 *
 * All SQL is prepared with bound parameters; nothing is ever built from
 * input.  Not thread-safe: one struct p11e_db per thread (SQLite's own
 * locking serialises writers between connections and processes).
 *
 * Times are seconds since the epoch (UTC) in INTEGER columns.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sqlite3.h>

#include "common/err.h"

/* The schema version this code writes and understands. */
#define P11E_DB_SCHEMA_VERSION 3

/* One step of the migration list: the SQL that brings version-1 to it. */
struct p11e_db_migration {
	int version;
	const char *sql;
};

/* The built-in migration list (P11E_DB_SCHEMA_VERSION entries). */
extern const struct p11e_db_migration p11e_db_migrations[];
extern const size_t p11e_db_n_migrations;

struct p11e_db;

/*
 * Opens (create: creating it, 0600) the database at path, sets and checks
 * the pragmas and applies the pending migrations.  P11E_ERR_DB_VERSION for
 * a database newer than the code, P11E_ERR_DB when a pragma does not take
 * (not WAL, synchronous not FULL) or SQLite fails, P11E_ERR_NOT_FOUND when
 * the file does not exist and create is false.  Free with p11e_db_close().
 */
enum p11e_err p11e_db_open(const char *path, bool create, struct p11e_db **out);

/*
 * As p11e_db_open() with another migration list (n entries, versions 1..n
 * in order): for tests of the migration machinery.
 */
enum p11e_err p11e_db_open_with(const char *path, bool create,
    const struct p11e_db_migration *migrations, size_t n, struct p11e_db **out);

/* Closes; NULL is a no-op.  An open transaction is rolled back. */
void p11e_db_close(struct p11e_db *db);

/* The SQLite handle (borrowed) for prepared statements of the caller. */
sqlite3 *p11e_db_handle(struct p11e_db *db);

/* The schema version of the open database. */
int p11e_db_schema_version(struct p11e_db *db);

/*
 * Reads synchronous and journal_mode back: P11E_OK only for FULL (2) and
 * wal.  Done by p11e_db_open(); exposed for the server's start and tests.
 */
enum p11e_err p11e_db_check_durability(struct p11e_db *db);

/*
 * BEGIN IMMEDIATE (the write lock is taken now, so the decisions made in
 * the transaction cannot be invalidated by another writer), COMMIT and
 * ROLLBACK.  Commit failure leaves nothing applied (it rolls back).
 * Errors: P11E_ERR_STORAGE_FULL for SQLITE_FULL (and I/O errors of a full
 * disk), P11E_ERR_TIMEOUT for SQLITE_BUSY after the busy timeout,
 * P11E_ERR_DB otherwise.  Rollback never fails (it is logged).
 */
enum p11e_err p11e_db_begin(struct p11e_db *db);
enum p11e_err p11e_db_commit(struct p11e_db *db);
void p11e_db_rollback(struct p11e_db *db);
bool p11e_db_in_transaction(struct p11e_db *db);

/* Runs sql (no rows, no parameters), e.g. SAVEPOINT name. */
enum p11e_err p11e_db_exec(struct p11e_db *db, const char *sql);

/*
 * Translates a SQLite result code (and logs SQLite's message with what)
 * into an enum p11e_err, as above; SQLITE_CONSTRAINT gives
 * P11E_ERR_EXISTS.
 */
enum p11e_err p11e_db_error(struct p11e_db *db, int rc, const char *what);

/*
 * Prepares sql (a literal of the caller) on the handle.  *st must be
 * finalised by the caller (sqlite3_finalize accepts NULL).
 */
enum p11e_err
p11e_db_prepare(struct p11e_db *db, const char *sql, sqlite3_stmt **st);

/*
 * The text of the one column that sql (a literal of the caller with one
 * parameter, bound to id) selects, into out (len bytes, "" unless
 * found).  P11E_ERR_NOT_FOUND when no row; what names the row in the
 * log of a failure.
 */
enum p11e_err p11e_db_text_by_id(struct p11e_db *db, const char *sql,
    int64_t id, const char *what, char *out, size_t len);

/*
 * Runs a statement of the caller that returns no rows (or whose rows do
 * not matter) to completion; finalises it.
 */
enum p11e_err p11e_db_step_done(struct p11e_db *db, sqlite3_stmt *st);

/*
 * p11e_db_prepare for a statement used again and again: sql must be a
 * string constant (the cache knows it by its address).  The statement
 * stays db's: end each use with p11e_db_finish (or p11e_db_step_done),
 * never sqlite3_finalize.
 */
enum p11e_err
p11e_db_prepare_cached(struct p11e_db *db, const char *sql, sqlite3_stmt **st);

/* Ends a use of st: resets a cached statement, finalises any other. */
void p11e_db_finish(struct p11e_db *db, sqlite3_stmt *st);

/* The rowid of the last INSERT. */
int64_t p11e_db_last_id(struct p11e_db *db);

/* The number of rows changed by the last statement. */
int p11e_db_changes(struct p11e_db *db);

/*
 * Appends an audit record (at = now).  actor, action and result are
 * required; target, peer and detail may be NULL.  Every string is stored
 * escaped (control characters, CR, LF, backslash and non-UTF-8 bytes as
 * \xNN; at most 512 bytes each): callers never pass a secret.  Part of
 * the caller's transaction when one is open.
 */
enum p11e_err p11e_db_audit(struct p11e_db *db, const char *actor,
    const char *action, const char *target, const char *result,
    const char *peer, const char *detail);

/* Rows used by several callers. */
struct p11e_db_contract {
	int64_t id; /* rowid */
	char contract_id[12];
	char name[256];
};

struct p11e_db_user {
	int64_t id; /* rowid */
	int64_t contract; /* contracts rowid */
	char contract_id[12];
	char user_id[31];
	char name[256];
	bool admin;
	int failures;
	int grid_failures;
	bool locked;
};

/* The contract with this 11-digit ID: P11E_ERR_NOT_FOUND when none. */
enum p11e_err p11e_db_contract_find(
    struct p11e_db *db, const char *contract_id, struct p11e_db_contract *out);

/* The user (contract ID, user ID): P11E_ERR_NOT_FOUND when none. */
enum p11e_err p11e_db_user_find(struct p11e_db *db, const char *contract_id,
    const char *user_id, struct p11e_db_user *out);

/* The user with this rowid: P11E_ERR_NOT_FOUND when none. */
enum p11e_err
p11e_db_user_get(struct p11e_db *db, int64_t id, struct p11e_db_user *out);

/*
 * Registers a user (利用者情報登録) of the contract with rowid contract,
 * inside the caller's open transaction: the users row (role "admin" or
 * "user", the password's encoded hash) and its initial acquisition
 * window from now to closes, opened by actor.  *id is the new rowid.
 * Shared by `p11enroll-ra user add|import` and the admin API.
 */
enum p11e_err p11e_db_user_register(struct p11e_db *db, int64_t contract,
    const char *user_id, const char *name, bool admin, const char *hash,
    time_t now, time_t closes, const char *actor, int64_t *id);

/*
 * The user's open acquisition window closing after now: P11E_OK with its
 * rowid and end, P11E_ERR_NOT_FOUND when there is none.
 */
enum p11e_err p11e_db_window_open_get(struct p11e_db *db, int64_t user,
    time_t now, int64_t *window, time_t *closes);

/* A revoked certificate, for the CRL. */
struct p11e_db_revoked {
	char serial[41]; /* upper-case hex */
	time_t revoked_at;
	int reason; /* RFC 5280 CRLReason */
};

/*
 * All revoked certificates (status revoked, not yet expired at now - the
 * ones past their notAfter may leave the CRL), in a malloc'd array the
 * caller frees; *n set.
 */
enum p11e_err p11e_db_revoked_list(
    struct p11e_db *db, time_t now, struct p11e_db_revoked **out, size_t *n);

/*
 * Format checks of identifiers (R09): exactly 11 ASCII digits; 1..30
 * ASCII letters and digits.
 */
bool p11e_db_valid_contract_id(const char *s);
bool p11e_db_valid_user_id(const char *s);

#endif /* P11E_DB_H */
