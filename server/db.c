/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/log.h"
#include "server/db.h"

/*
 * Schema v1.  Times are seconds since the epoch; hashes are raw SHA-256
 * (BLOB, 32 bytes); sealed values are AES-256-GCM blobs of server/seal.h
 * (key outside the database, R13).  Secrets themselves are never stored:
 * PINs and passwords only as Argon2id encoded hashes, codes and tokens
 * only as SHA-256.
 *
 * contracts     one per customer (ご契約先): 11-digit contract ID (契約者ID),
 *               name, contract PIN (ご契約先暗証番号) and confirmation PIN
 *               (ご契約先確認暗証番号) hashes, the sealed customer card
 *               (お客様カード), the pending grid challenge (kept until
 *               answered or locked, R12)
 * users         利用者 / 管理者 of a contract: user ID (利用者ID), role,
 *               password hash, the failure counters (one across password,
 *               PIN and OTP; one for the grid) and the lock
 * otp_tokens    one per user: serial, sealed secret, digits, step and
 *               last_used_step (the highest step accepted, R02)
 * windows       acquisition windows (取得可能期間) / reissue authorisations:
 *               at most one open per user
 * enroll_codes  one-time admin enrollment codes and enrollment tokens,
 *               by SHA-256 only, bound to the SPKI of their first CSR
 * certificates  every certificate issued: serial (upper-case hex), the
 *               user's issue number, DER, the CSR's and SPKI's SHA-256
 *               (idempotent re-delivery, unique keys), validity, status,
 *               revocation time and reason, peer address, key type
 * audit         who did what to whom, when, from where, with what result
 */
static const char schema_v1[] =
    "CREATE TABLE contracts ("
    " id INTEGER PRIMARY KEY,"
    " contract_id TEXT NOT NULL UNIQUE"
    "  CHECK (length(contract_id) = 11 AND contract_id NOT GLOB '*[^0-9]*'),"
    " name TEXT NOT NULL,"
    " pin_hash TEXT NOT NULL,"
    " confirm_pin_hash TEXT NOT NULL,"
    " card BLOB NOT NULL,"
    " grid_challenge TEXT,"
    " created INTEGER NOT NULL);"
    "CREATE TABLE users ("
    " id INTEGER PRIMARY KEY,"
    " contract INTEGER NOT NULL REFERENCES contracts(id),"
    " user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 30"
    "  AND user_id NOT GLOB '*[^0-9A-Za-z]*'),"
    " name TEXT NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('user', 'admin')),"
    " password_hash TEXT NOT NULL,"
    " failures INTEGER NOT NULL DEFAULT 0,"
    " grid_failures INTEGER NOT NULL DEFAULT 0,"
    " locked INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " UNIQUE (contract, user_id));"
    "CREATE TABLE otp_tokens ("
    " id INTEGER PRIMARY KEY,"
    " user INTEGER NOT NULL UNIQUE REFERENCES users(id),"
    " serial TEXT NOT NULL,"
    " secret BLOB NOT NULL,"
    " digits INTEGER NOT NULL DEFAULT 6 CHECK (digits BETWEEN 6 AND 8),"
    " step INTEGER NOT NULL DEFAULT 30 CHECK (step IN (30, 60)),"
    " last_used_step INTEGER NOT NULL DEFAULT -1,"
    " created INTEGER NOT NULL);"
    "CREATE TABLE windows ("
    " id INTEGER PRIMARY KEY,"
    " user INTEGER NOT NULL REFERENCES users(id),"
    " opened INTEGER NOT NULL,"
    " closes INTEGER NOT NULL,"
    " reason TEXT NOT NULL"
    "  CHECK (reason IN ('initial', 'expired', 'lost', 'compromised')),"
    " state TEXT NOT NULL DEFAULT 'open'"
    "  CHECK (state IN ('open', 'used', 'closed')),"
    " opened_by TEXT NOT NULL,"
    " used_at INTEGER);"
    "CREATE UNIQUE INDEX windows_one_open ON windows(user)"
    " WHERE state = 'open';"
    "CREATE TABLE enroll_codes ("
    " id INTEGER PRIMARY KEY,"
    " hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),"
    " user INTEGER NOT NULL REFERENCES users(id),"
    " kind TEXT NOT NULL CHECK (kind IN ('admin-code', 'token')),"
    " window INTEGER REFERENCES windows(id),"
    " created INTEGER NOT NULL,"
    " expires INTEGER NOT NULL,"
    " spki_sha256 BLOB,"
    " used INTEGER);"
    "CREATE TABLE certificates ("
    " serial TEXT PRIMARY KEY,"
    " user INTEGER NOT NULL REFERENCES users(id),"
    " issue_no INTEGER NOT NULL,"
    " der BLOB NOT NULL,"
    " csr_sha256 BLOB NOT NULL,"
    " spki_sha256 BLOB NOT NULL,"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'valid'"
    "  CHECK (status IN ('valid', 'revoked', 'superseded')),"
    " revoked_at INTEGER,"
    " reason INTEGER,"
    " issued_from TEXT,"
    " key_type TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " UNIQUE (user, issue_no));"
    "CREATE INDEX certificates_csr ON certificates(csr_sha256);"
    "CREATE INDEX certificates_spki ON certificates(spki_sha256);"
    "CREATE INDEX certificates_user ON certificates(user);"
    "CREATE TABLE audit ("
    " id INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " target TEXT,"
    " result TEXT NOT NULL,"
    " peer TEXT,"
    " detail TEXT);"
    "CREATE INDEX audit_at ON audit(at);";

/*
 * v2: the role a certificate was issued for, so that re-enrollment
 * keeps it (an administrator's certificate renews only as an
 * administrator's, a user's never into one, R14); certificates of v1 take
 * their user's role of the time of the migration.
 */
static const char schema_v2[] =
    "ALTER TABLE certificates ADD COLUMN role TEXT"
    " CHECK (role IN ('user', 'admin'));"
    "UPDATE certificates SET role ="
    " (SELECT role FROM users WHERE users.id = certificates.user);";

/*
 * v3: administrator sessions (server/admin.c).  kind 'grid' is the
 * pending session after the contract PIN, waiting for the grid answer;
 * kind 'token' an admin token.  Both are stored as the SHA-256 of the
 * random value only and bound to the SHA-256 of the client certificate
 * they were opened with; last_used drives the idle timeout, expires is
 * the absolute end, ended is set by logout.  The pending grid challenge
 * itself stays in contracts.grid_challenge (R12).
 */
static const char schema_v3[] =
    "CREATE TABLE admin_sessions ("
    " id INTEGER PRIMARY KEY,"
    " hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),"
    " user INTEGER NOT NULL REFERENCES users(id),"
    " kind TEXT NOT NULL CHECK (kind IN ('grid', 'token')),"
    " cert_sha256 BLOB NOT NULL CHECK (length(cert_sha256) = 32),"
    " created INTEGER NOT NULL,"
    " last_used INTEGER NOT NULL,"
    " expires INTEGER NOT NULL,"
    " ended INTEGER);"
    "CREATE INDEX admin_sessions_user ON admin_sessions(user);";

const struct p11e_db_migration p11e_db_migrations[] = {
	{ 1, schema_v1 },
	{ 2, schema_v2 },
	{ 3, schema_v3 },
};
const size_t p11e_db_n_migrations =
    sizeof(p11e_db_migrations) / sizeof(p11e_db_migrations[0]);

#define DB_CACHE 48

struct p11e_db {
	sqlite3 *h;
	int version;
	bool writer; /* holds write_lock */
	/* statements of p11e_db_prepare_cached, by their SQL's address */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[DB_CACHE];
	size_t n_cache;
};

/*
 * One writer at a time among this process's connections.  Without it,
 * the threads of `serve` meet at BEGIN IMMEDIATE inside SQLite, whose
 * busy handler sleeps 1, 2, 5, 10... ms between attempts: most of the
 * time of a loaded server went to those sleeps.  Waiting here is
 * bounded like the busy timeout (BUSY_MS); other processes still meet
 * SQLite's own lock.
 */
#define BUSY_MS 5000
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

static enum p11e_err
writer_take(struct p11e_db *db)
{
	struct timespec ts;

	if (db->writer)
		return P11E_OK;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += BUSY_MS / 1000;
	if (pthread_mutex_timedlock(&write_lock, &ts) != 0) {
		p11e_error(
		    "database: begin: another writer for %d ms", BUSY_MS);
		return P11E_ERR_TIMEOUT;
	}
	db->writer = true;
	return P11E_OK;
}

static void
writer_give(struct p11e_db *db)
{
	if (db->writer) {
		db->writer = false;
		pthread_mutex_unlock(&write_lock);
	}
}

enum p11e_err
p11e_db_error(struct p11e_db *db, int rc, const char *what)
{
	int prim = rc & 0xff;

	if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
		return P11E_OK;
	p11e_error("database: %s: %s (%d)", what,
	    db != NULL && db->h != NULL ? sqlite3_errmsg(db->h)
					: sqlite3_errstr(rc),
	    rc);
	switch (prim) {
	case SQLITE_FULL:
		return P11E_ERR_STORAGE_FULL;
	case SQLITE_IOERR:
		/* a full disk shows as a write or fsync error on WAL */
		if (errno == ENOSPC || errno == EDQUOT)
			return P11E_ERR_STORAGE_FULL;
		return P11E_ERR_DB;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return P11E_ERR_TIMEOUT;
	case SQLITE_CONSTRAINT:
		return P11E_ERR_EXISTS;
	case SQLITE_NOMEM:
		return P11E_ERR_NOMEM;
	default:
		return P11E_ERR_DB;
	}
}

enum p11e_err
p11e_db_prepare(struct p11e_db *db, const char *sql, sqlite3_stmt **st)
{
	int rc;

	*st = NULL;
	rc = sqlite3_prepare_v2(db->h, sql, -1, st, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(*st);
		*st = NULL;
		return p11e_db_error(db, rc, "prepare");
	}
	return P11E_OK;
}

enum p11e_err
p11e_db_prepare_cached(struct p11e_db *db, const char *sql, sqlite3_stmt **st)
{
	enum p11e_err err;
	size_t i;
	int rc;

	*st = NULL;
	for (i = 0; i < db->n_cache; i++)
		if (db->cache[i].sql == sql) {
			/* in case a use was not ended */
			*st = db->cache[i].st;
			sqlite3_reset(*st);
			return P11E_OK;
		}
	if (db->n_cache == DB_CACHE)
		return p11e_db_prepare(db, sql, st);
	rc = sqlite3_prepare_v3(
	    db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
	if (rc != SQLITE_OK) {
		err = p11e_db_error(db, rc, "prepare");
		sqlite3_finalize(*st);
		*st = NULL;
		return err;
	}
	db->cache[db->n_cache].sql = sql;
	db->cache[db->n_cache].st = *st;
	db->n_cache++;
	return P11E_OK;
}

void
p11e_db_finish(struct p11e_db *db, sqlite3_stmt *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < db->n_cache; i++)
		if (db->cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	sqlite3_finalize(st);
}

enum p11e_err
p11e_db_text_by_id(struct p11e_db *db, const char *sql, int64_t id,
    const char *what, char *out, size_t len)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	out[0] = '\0';
	if ((err = p11e_db_prepare(db, sql, &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(
		    out, len, "%s", (const char *)sqlite3_column_text(st, 0));
	else
		err = rc == SQLITE_DONE ? P11E_ERR_NOT_FOUND
					: p11e_db_error(db, rc, what);
	sqlite3_finalize(st);
	return err;
}

enum p11e_err
p11e_db_step_done(struct p11e_db *db, sqlite3_stmt *st)
{
	enum p11e_err err = P11E_OK;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE)
		err = p11e_db_error(db, rc, "step");
	p11e_db_finish(db, st);
	return err;
}

static enum p11e_err
exec(struct p11e_db *db, const char *sql, const char *what)
{
	char *msg = NULL;
	int rc;

	rc = sqlite3_exec(db->h, sql, NULL, NULL, &msg);
	sqlite3_free(msg);
	return rc == SQLITE_OK ? P11E_OK : p11e_db_error(db, rc, what);
}

enum p11e_err
p11e_db_exec(struct p11e_db *db, const char *sql)
{
	return exec(db, sql, sql);
}

static enum p11e_err
pragma_int(struct p11e_db *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	if ((err = p11e_db_prepare(db, sql, &st)) != P11E_OK)
		return err;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		err = rc == SQLITE_DONE ? P11E_ERR_DB
					: p11e_db_error(db, rc, "pragma");
	sqlite3_finalize(st);
	return err;
}

enum p11e_err
p11e_db_check_durability(struct p11e_db *db)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int64_t sync = -1;
	const unsigned char *mode;
	bool wal = false;

	if ((err = pragma_int(db, "PRAGMA synchronous", &sync)) != P11E_OK)
		return err;
	if (sync != 2) {
		p11e_error("database: synchronous is %lld, not FULL (2): "
			   "refusing to run without durable commits",
		    (long long)sync);
		return P11E_ERR_DB;
	}
	if ((err = p11e_db_prepare(db, "PRAGMA journal_mode", &st)) != P11E_OK)
		return err;
	if (sqlite3_step(st) == SQLITE_ROW &&
	    (mode = sqlite3_column_text(st, 0)) != NULL)
		wal = strcmp((const char *)mode, "wal") == 0;
	sqlite3_finalize(st);
	if (!wal) {
		p11e_error("database: journal_mode is not WAL");
		return P11E_ERR_DB;
	}
	return P11E_OK;
}

static enum p11e_err
read_version(struct p11e_db *db, int *version)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	*version = 0;
	if ((err = p11e_db_prepare(db,
		 "SELECT value FROM meta WHERE key = 'schema_version'", &st)) !=
	    P11E_OK)
		return err;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	else if (rc != SQLITE_DONE)
		err = p11e_db_error(db, rc, "schema version");
	sqlite3_finalize(st);
	return err;
}

static enum p11e_err
migrate(
    struct p11e_db *db, const struct p11e_db_migration *migrations, size_t n)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	size_t i;

	if ((err = exec(db,
		 "CREATE TABLE IF NOT EXISTS meta ("
		 " key TEXT PRIMARY KEY, value TEXT NOT NULL)",
		 "meta table")) != P11E_OK ||
	    (err = read_version(db, &db->version)) != P11E_OK)
		return err;
	if (db->version < 0 || (size_t)db->version > n) {
		p11e_error("database: schema version %d is newer than this "
			   "program's (%zu)",
		    db->version, n);
		return P11E_ERR_DB_VERSION;
	}
	for (i = (size_t)db->version; i < n; i++) {
		p11e_return_val_if_fail(
		    migrations[i].version == (int)i + 1, P11E_ERR_DB);
		if ((err = p11e_db_begin(db)) != P11E_OK)
			return err;
		/* re-read under the write lock: another process may have
		 * migrated in between */
		if ((err = read_version(db, &db->version)) != P11E_OK)
			goto fail;
		if (db->version > (int)i) {
			p11e_db_rollback(db);
			i = (size_t)db->version - 1;
			continue;
		}
		if ((err = exec(db, migrations[i].sql, "migration")) !=
			P11E_OK ||
		    (err = p11e_db_prepare(db,
			 "INSERT OR REPLACE INTO meta (key, value)"
			 " VALUES ('schema_version', ?)",
			 &st)) != P11E_OK)
			goto fail;
		sqlite3_bind_int(st, 1, migrations[i].version);
		if ((err = p11e_db_step_done(db, st)) != P11E_OK ||
		    (err = p11e_db_commit(db)) != P11E_OK)
			goto fail;
		db->version = migrations[i].version;
		p11e_debug(P11E_DEBUG_DB, "migrated to schema %d", db->version);
	}
	return P11E_OK;
fail:
	p11e_db_rollback(db);
	return err;
}

/*
 * Storage faults for tests (test-only, like the crash points of
 * common/crashpoint.h): when P11ENROLL_RA_TEST_FAULT names a file,
 * databases are opened through a VFS that forwards to the default one,
 * except that while that file holds "full" every write and sync fails
 * with SQLITE_FULL (a full disk), and while it holds "io" with
 * SQLITE_IOERR_WRITE / SQLITE_IOERR_FSYNC.  The file is read at each
 * write, so a test fills and frees the "disk" of a running server.
 * Without the variable nothing changes: the default VFS is used.
 */
#define FAULT_VFS "p11e-fault"

struct fault_file {
	sqlite3_file base;
	sqlite3_file *real; /* right after this struct, in the same block */
};

static sqlite3_vfs fault_vfs;
static sqlite3_io_methods fault_methods;
static const char *fault_path;

/* 0: none; SQLITE_FULL or SQLITE_IOERR. */
static int
fault_now(void)
{
	char buf[8] = { 0 };
	ssize_t n;
	int fd;

	if ((fd = open(fault_path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n >= 4 && memcmp(buf, "full", 4) == 0)
		return SQLITE_FULL;
	if (n >= 2 && memcmp(buf, "io", 2) == 0)
		return SQLITE_IOERR;
	return 0;
}

#define REAL(f) (((struct fault_file *)(f))->real)

static int
ff_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int
ff_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int
ff_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	int fault = fault_now();

	if (fault != 0) {
		errno = fault == SQLITE_FULL ? ENOSPC : EIO;
		return fault == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_WRITE;
	}
	return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int
ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int
ff_sync(sqlite3_file *f, int flags)
{
	int fault = fault_now();

	if (fault != 0) {
		errno = fault == SQLITE_FULL ? ENOSPC : EIO;
		return fault == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_FSYNC;
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int
ff_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int
ff_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int
ff_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int
ff_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int
ff_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int
ff_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int
ff_device(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int
ff_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **p)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, p);
}

static int
ff_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void
ff_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int
ff_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int
ff_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, p);
}

static int
ff_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int
ff_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *out_flags)
{
	sqlite3_vfs *real = vfs->pAppData;
	struct fault_file *ff = (struct fault_file *)f;
	int rc;

	ff->real = (sqlite3_file *)(ff + 1);
	rc = real->xOpen(real, name, ff->real, flags, out_flags);
	/* a failed xOpen may still set pMethods, then xClose is called */
	f->pMethods = ff->real->pMethods != NULL ? &fault_methods : NULL;
	return rc;
}

static void
fault_vfs_register(void)
{
	sqlite3_vfs *real = sqlite3_vfs_find(NULL);

	if (real == NULL || real->iVersion < 1)
		return;
	fault_methods = (sqlite3_io_methods){
		.iVersion = 3,
		.xClose = ff_close,
		.xRead = ff_read,
		.xWrite = ff_write,
		.xTruncate = ff_truncate,
		.xSync = ff_sync,
		.xFileSize = ff_size,
		.xLock = ff_lock,
		.xUnlock = ff_unlock,
		.xCheckReservedLock = ff_check_reserved,
		.xFileControl = ff_control,
		.xSectorSize = ff_sector,
		.xDeviceCharacteristics = ff_device,
		.xShmMap = ff_shm_map,
		.xShmLock = ff_shm_lock,
		.xShmBarrier = ff_shm_barrier,
		.xShmUnmap = ff_shm_unmap,
		.xFetch = ff_fetch,
		.xUnfetch = ff_unfetch,
	};
	fault_vfs = *real;
	fault_vfs.zName = FAULT_VFS;
	fault_vfs.pAppData = real;
	fault_vfs.szOsFile = (int)sizeof(struct fault_file) + real->szOsFile;
	fault_vfs.xOpen = ff_open;
	fault_vfs.pNext = NULL;
	if (sqlite3_vfs_register(&fault_vfs, 0) == SQLITE_OK)
		p11e_info(
		    "database: test faults from %s (test only)", fault_path);
}

/* The VFS to open databases with: NULL (the default) outside tests. */
static const char *
fault_vfs_name(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if ((fault_path = getenv("P11ENROLL_RA_TEST_FAULT")) == NULL ||
	    fault_path[0] == '\0')
		return NULL;
	pthread_once(&once, fault_vfs_register);
	return sqlite3_vfs_find(FAULT_VFS) != NULL ? FAULT_VFS : NULL;
}

enum p11e_err
p11e_db_open_with(const char *path, bool create,
    const struct p11e_db_migration *migrations, size_t n, struct p11e_db **out)
{
	struct p11e_db *db = NULL;
	enum p11e_err err;
	int rc, fd;

	*out = NULL;
	p11e_return_val_if_fail(path != NULL, P11E_ERR_INVALID_PARAMETER);
	if (access(path, F_OK) != 0) {
		if (!create) {
			p11e_error("database %s: %s", path, strerror(errno));
			return P11E_ERR_NOT_FOUND;
		}
		/* create it 0600 ourselves: SQLite would use the umask */
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			p11e_error("database %s: %s", path, strerror(errno));
			return P11E_ERR_IO;
		}
		close(fd);
	}
	if ((db = calloc(1, sizeof(*db))) == NULL)
		return P11E_ERR_NOMEM;
	rc = sqlite3_open_v2(path, &db->h,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, fault_vfs_name());
	if (rc != SQLITE_OK) {
		err = p11e_db_error(db, rc, path);
		goto out;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, BUSY_MS);
	if ((err = exec(db, "PRAGMA journal_mode = WAL", "journal_mode")) !=
		P11E_OK ||
	    (err = exec(db, "PRAGMA synchronous = FULL", "synchronous")) !=
		P11E_OK ||
	    (err = exec(db, "PRAGMA foreign_keys = ON", "foreign_keys")) !=
		P11E_OK ||
	    (err = exec(db, "PRAGMA secure_delete = ON", "secure_delete")) !=
		P11E_OK ||
	    (err = p11e_db_check_durability(db)) != P11E_OK ||
	    (err = migrate(db, migrations, n)) != P11E_OK)
		goto out;
	*out = db;
	db = NULL; /* transferred */
out:
	p11e_db_close(db);
	return err;
}

enum p11e_err
p11e_db_open(const char *path, bool create, struct p11e_db **out)
{
	return p11e_db_open_with(
	    path, create, p11e_db_migrations, p11e_db_n_migrations, out);
}

void
p11e_db_close(struct p11e_db *db)
{
	if (db == NULL)
		return;
	if (db->h != NULL) {
		if (!sqlite3_get_autocommit(db->h))
			p11e_db_rollback(db);
		while (db->n_cache > 0)
			sqlite3_finalize(db->cache[--db->n_cache].st);
		sqlite3_close_v2(db->h);
	}
	free(db);
}

sqlite3 *
p11e_db_handle(struct p11e_db *db)
{
	return db->h;
}

int
p11e_db_schema_version(struct p11e_db *db)
{
	return db->version;
}

enum p11e_err
p11e_db_begin(struct p11e_db *db)
{
	enum p11e_err err;

	if ((err = writer_take(db)) != P11E_OK)
		return err;
	if ((err = exec(db, "BEGIN IMMEDIATE", "begin")) != P11E_OK)
		writer_give(db);
	return err;
}

enum p11e_err
p11e_db_commit(struct p11e_db *db)
{
	enum p11e_err err = exec(db, "COMMIT", "commit");

	/* A failed COMMIT may leave the transaction open: end it. */
	if (err != P11E_OK && !sqlite3_get_autocommit(db->h))
		p11e_db_rollback(db);
	writer_give(db);
	return err;
}

void
p11e_db_rollback(struct p11e_db *db)
{
	if (db == NULL || db->h == NULL)
		return;
	if (!sqlite3_get_autocommit(db->h))
		(void)exec(db, "ROLLBACK", "rollback");
	writer_give(db);
}

bool
p11e_db_in_transaction(struct p11e_db *db)
{
	return !sqlite3_get_autocommit(db->h);
}

int64_t
p11e_db_last_id(struct p11e_db *db)
{
	return sqlite3_last_insert_rowid(db->h);
}

int
p11e_db_changes(struct p11e_db *db)
{
	return sqlite3_changes(db->h);
}

/*
 * Whether s[0..n) is valid UTF-8 (no overlong forms, no surrogates).
 */
static bool
valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;
	uint32_t cp;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			len = 2;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			len = 3;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			len = 4;
			cp = s[i] & 0x07;
		} else {
			return false;
		}
		if (len > n - i)
			return false;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

#define AUDIT_FIELD_MAX 512

/*
 * Escapes control characters (CR, LF, ...), DEL and backslash as \xNN
 * (backslash as \\), and every byte >= 0x80 too when s is not valid UTF-8
 * (R38); at most AUDIT_FIELD_MAX bytes, a cut marked with "...".
 */
static char *
escape(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i, o = 0;
	bool utf8 = valid_utf8(p, n);
	char *out;

	if ((out = malloc(AUDIT_FIELD_MAX + 8)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		size_t need =
		    (p[i] < 0x20 || p[i] == 0x7f || (p[i] >= 0x80 && !utf8)) ? 4
		    : p[i] == '\\'					     ? 2
				   : 1;

		if (o + need > AUDIT_FIELD_MAX) {
			/* do not cut a UTF-8 sequence in half */
			while (utf8 && o > 0 &&
			    ((unsigned char)out[o - 1] & 0xc0) == 0x80)
				o--;
			if (utf8 && o > 0 && (unsigned char)out[o - 1] >= 0xc0)
				o--;
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (need == 4)
			snprintf(out + o, 5, "\\x%02x", p[i]);
		else if (need == 2)
			memcpy(out + o, "\\\\", 2);
		else
			out[o] = (char)p[i];
		o += need;
	}
	out[o] = '\0';
	return out;
}

enum p11e_err
p11e_db_audit(struct p11e_db *db, const char *actor, const char *action,
    const char *target, const char *result, const char *peer,
    const char *detail)
{
	const char *in[6] = { actor, action, target, result, peer, detail };
	char *esc[6] = { NULL };
	sqlite3_stmt *st = NULL;
	enum p11e_err err = P11E_OK;
	int i;

	p11e_return_val_if_fail(
	    actor && action && result, P11E_ERR_INVALID_PARAMETER);
	for (i = 0; i < 6; i++)
		if (in[i] != NULL && (esc[i] = escape(in[i])) == NULL) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
	if ((err = p11e_db_prepare_cached(db,
		 "INSERT INTO audit (at, actor, action, target, result, peer,"
		 " detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
		 &st)) != P11E_OK)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
	for (i = 0; i < 6; i++)
		sqlite3_bind_text(st, 2 + i, esc[i], -1, SQLITE_TRANSIENT);
	err = p11e_db_step_done(db, st);
out:
	for (i = 0; i < 6; i++)
		free(esc[i]);
	return err;
}

static void
copy_col(char *dst, size_t dstlen, sqlite3_stmt *st, int col)
{
	const unsigned char *v = sqlite3_column_text(st, col);

	snprintf(dst, dstlen, "%s", v != NULL ? (const char *)v : "");
}

enum p11e_err
p11e_db_contract_find(
    struct p11e_db *db, const char *contract_id, struct p11e_db_contract *out)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((err = p11e_db_prepare_cached(db,
		 "SELECT id, contract_id, name FROM contracts"
		 " WHERE contract_id = ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_text(st, 1, contract_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		copy_col(out->contract_id, sizeof(out->contract_id), st, 1);
		copy_col(out->name, sizeof(out->name), st, 2);
	} else {
		err = rc == SQLITE_DONE ? P11E_ERR_NOT_FOUND
					: p11e_db_error(db, rc, "contract");
	}
	p11e_db_finish(db, st);
	return err;
}

#define USER_COLUMNS                                                 \
	"SELECT u.id, u.contract, c.contract_id, u.user_id, u.name," \
	" u.role = 'admin', u.failures, u.grid_failures, u.locked"   \
	" FROM users u JOIN contracts c ON c.id = u.contract "

static enum p11e_err
user_row(struct p11e_db *db, sqlite3_stmt *st, struct p11e_db_user *out)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE)
		return P11E_ERR_NOT_FOUND;
	if (rc != SQLITE_ROW)
		return p11e_db_error(db, rc, "user");
	out->id = sqlite3_column_int64(st, 0);
	out->contract = sqlite3_column_int64(st, 1);
	copy_col(out->contract_id, sizeof(out->contract_id), st, 2);
	copy_col(out->user_id, sizeof(out->user_id), st, 3);
	copy_col(out->name, sizeof(out->name), st, 4);
	out->admin = sqlite3_column_int(st, 5) != 0;
	out->failures = sqlite3_column_int(st, 6);
	out->grid_failures = sqlite3_column_int(st, 7);
	out->locked = sqlite3_column_int(st, 8) != 0;
	return P11E_OK;
}

enum p11e_err
p11e_db_user_find(struct p11e_db *db, const char *contract_id,
    const char *user_id, struct p11e_db_user *out)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;

	memset(out, 0, sizeof(*out));
	if ((err = p11e_db_prepare_cached(db,
		 USER_COLUMNS "WHERE c.contract_id = ? AND u.user_id = ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_text(st, 1, contract_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user_id, -1, SQLITE_STATIC);
	err = user_row(db, st, out);
	p11e_db_finish(db, st);
	return err;
}

enum p11e_err
p11e_db_user_register(struct p11e_db *db, int64_t contract, const char *user_id,
    const char *name, bool admin, const char *hash, time_t now, time_t closes,
    const char *actor, int64_t *id)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;

	if ((err = p11e_db_prepare(db,
		 "INSERT INTO users (contract, user_id, name, role,"
		 " password_hash, created) VALUES (?, ?, ?, ?, ?, ?)",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, contract);
	sqlite3_bind_text(st, 2, user_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, admin ? "admin" : "user", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
	if ((err = p11e_db_step_done(db, st)) != P11E_OK)
		return err;
	*id = p11e_db_last_id(db);
	if ((err = p11e_db_prepare(db,
		 "INSERT INTO windows (user, opened, closes, reason,"
		 " opened_by) VALUES (?, ?, ?, 'initial', ?)",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, *id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)closes);
	sqlite3_bind_text(st, 4, actor, -1, SQLITE_STATIC);
	return p11e_db_step_done(db, st);
}

enum p11e_err
p11e_db_user_get(struct p11e_db *db, int64_t id, struct p11e_db_user *out)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;

	memset(out, 0, sizeof(*out));
	if ((err = p11e_db_prepare_cached(
		 db, USER_COLUMNS "WHERE u.id = ?", &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, id);
	err = user_row(db, st, out);
	p11e_db_finish(db, st);
	return err;
}

enum p11e_err
p11e_db_window_open_get(struct p11e_db *db, int64_t user, time_t now,
    int64_t *window, time_t *closes)
{
	sqlite3_stmt *st = NULL;
	enum p11e_err err;
	int rc;

	*window = 0;
	*closes = 0;
	if ((err = p11e_db_prepare_cached(db,
		 "SELECT id, closes FROM windows WHERE user = ?"
		 " AND state = 'open' AND opened <= ? AND closes > ?",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, user);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*window = sqlite3_column_int64(st, 0);
		*closes = (time_t)sqlite3_column_int64(st, 1);
	} else {
		err = rc == SQLITE_DONE ? P11E_ERR_NOT_FOUND
					: p11e_db_error(db, rc, "window");
	}
	p11e_db_finish(db, st);
	return err;
}

enum p11e_err
p11e_db_revoked_list(
    struct p11e_db *db, time_t now, struct p11e_db_revoked **out, size_t *n)
{
	struct p11e_db_revoked *list = NULL, *grown;
	sqlite3_stmt *st = NULL;
	size_t count = 0, cap = 0;
	enum p11e_err err;
	int rc;

	*out = NULL;
	*n = 0;
	if ((err = p11e_db_prepare(db,
		 "SELECT serial, revoked_at, reason FROM certificates"
		 " WHERE status = 'revoked' AND not_after > ?"
		 " ORDER BY revoked_at, serial",
		 &st)) != P11E_OK)
		return err;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			grown = reallocarray(list, cap, sizeof(*list));
			if (grown == NULL) {
				err = P11E_ERR_NOMEM;
				goto out;
			}
			list = grown;
		}
		copy_col(list[count].serial, sizeof(list[count].serial), st, 0);
		list[count].revoked_at = (time_t)sqlite3_column_int64(st, 1);
		list[count].reason = sqlite3_column_int(st, 2);
		count++;
	}
	if (rc != SQLITE_DONE) {
		err = p11e_db_error(db, rc, "revoked list");
		goto out;
	}
	*out = list;
	*n = count;
	list = NULL; /* transferred */
out:
	sqlite3_finalize(st);
	free(list);
	return err;
}

bool
p11e_db_valid_contract_id(const char *s)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if (s[i] < '0' || s[i] > '9' || i >= 11)
			return false;
	return i == 11;
}

bool
p11e_db_valid_user_id(const char *s)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		char c = s[i];

		if (i >= 30 ||
		    !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
			(c >= 'a' && c <= 'z')))
			return false;
	}
	return i >= 1;
}
