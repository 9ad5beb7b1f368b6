/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_DB_POOL_H
#define P11E_DB_POOL_H

/*
 * A pool of connections to one database for the threads of a server
 * (a struct p11e_db serves one thread at a time): a request takes one,
 * uses it alone and gives it back.  Up to max idle connections are kept
 * open; the pool itself is thread-safe.
 */

#include <stddef.h>

#include "common/err.h"
#include "server/db.h"

struct p11e_db_pool;

/*
 * A pool for the existing database at path (opened with
 * p11e_db_open(path, false)) that keeps up to max idle connections.
 * Free with p11e_db_pool_free().
 */
enum p11e_err
p11e_db_pool_new(const char *path, size_t max, struct p11e_db_pool **out);

/* Closes the idle connections and frees; NULL is a no-op. */
void p11e_db_pool_free(struct p11e_db_pool *pool);

/*
 * An idle connection, or a new one; NULL when the database cannot be
 * opened (logged by p11e_db_open).  Give it back with
 * p11e_db_pool_give().
 */
struct p11e_db *p11e_db_pool_take(struct p11e_db_pool *pool);

/*
 * Gives db back (NULL is a no-op): an open transaction is rolled back,
 * then db is kept for the next p11e_db_pool_take() or closed when max
 * are already idle.
 */
void p11e_db_pool_give(struct p11e_db_pool *pool, struct p11e_db *db);

#endif /* P11E_DB_POOL_H */
