/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "server/db-pool.h"

struct p11e_db_pool {
	char *path;
	pthread_mutex_t lock;
	size_t max;
	size_t n; /* idle connections in dbs */
	struct p11e_db *dbs[]; /* max of them */
};

enum p11e_err
p11e_db_pool_new(const char *path, size_t max, struct p11e_db_pool **out)
{
	struct p11e_db_pool *pool;

	*out = NULL;
	if ((pool = calloc(1, sizeof(*pool) + max * sizeof(pool->dbs[0]))) ==
		NULL ||
	    (pool->path = strdup(path)) == NULL) {
		free(pool);
		return P11E_ERR_NOMEM;
	}
	pthread_mutex_init(&pool->lock, NULL);
	pool->max = max;
	*out = pool;
	return P11E_OK;
}

void
p11e_db_pool_free(struct p11e_db_pool *pool)
{
	size_t i;

	if (pool == NULL)
		return;
	for (i = 0; i < pool->n; i++)
		p11e_db_close(pool->dbs[i]);
	pthread_mutex_destroy(&pool->lock);
	free(pool->path);
	free(pool);
}

struct p11e_db *
p11e_db_pool_take(struct p11e_db_pool *pool)
{
	struct p11e_db *db = NULL;

	pthread_mutex_lock(&pool->lock);
	if (pool->n > 0)
		db = pool->dbs[--pool->n];
	pthread_mutex_unlock(&pool->lock);
	if (db == NULL && p11e_db_open(pool->path, false, &db) != P11E_OK)
		return NULL;
	return db;
}

void
p11e_db_pool_give(struct p11e_db_pool *pool, struct p11e_db *db)
{
	if (db == NULL)
		return;
	if (p11e_db_in_transaction(db))
		p11e_db_rollback(db);
	pthread_mutex_lock(&pool->lock);
	if (pool->n < pool->max) {
		pool->dbs[pool->n++] = db;
		db = NULL;
	}
	pthread_mutex_unlock(&pool->lock);
	p11e_db_close(db);
}
