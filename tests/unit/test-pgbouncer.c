/* SPDX-License-Identifier: MIT */
/* The PgBouncer collector's series (sm_pgbouncer_pools_to_series) from SHOW POOLS and SHOW
 * DATABASES answers built by hand: columns by name, maxwait in seconds and microseconds, pool
 * size and utilisation from the database's pool_size, the admin console's own pool left out. */
#include <errno.h>
#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/error.h"
#include "scalemetrics/series.h"

#include "../../src/collectors/pgbouncer-internal.h"
#include "pgresult.h"

static const struct sm_series *find(const struct sm_batch *b, const char *metric,
                                    const char *database, const char *user)
{
	for (size_t i = 0; i < sm_batch_count(b); i++) {
		const struct sm_series *s = sm_batch_get(b, i);

		if (strcmp(s->metric, metric) == 0 && s->n_labels == 2 &&
		    strcmp(s->labels[0].value, database) == 0 &&
		    strcmp(s->labels[1].value, user) == 0)
			return s;
	}
	return NULL;
}

static double value(const struct sm_batch *b, const char *metric, const char *database,
                    const char *user)
{
	const struct sm_series *s = find(b, metric, database, user);

	if (!s)
		fail_msg("no %s{database=%s,user=%s}", metric, database, user);
	return s->value;
}

static void test_pools(void **state)
{
	/* Column order as PgBouncer 1.21 answers, plus one it may add later. */
	const char *pool_cols[] = {"database", "user",    "cl_active", "cl_waiting", "sv_active",
	                           "sv_idle",  "sv_used", "maxwait",   "maxwait_us", "new_col"};
	const char *pool_rows[] = {
	    "app",       "web",       "5", "2", "4", "1", "0", "1", "500000", "x",
	    "pgbouncer", "pgbouncer", "1", "0", "0", "0", "0", "0", "0",      "x",
	    "other",     "batch",     "1", "0", "1", "0", "0", "0", "0",      "x",
	};
	const char *db_cols[] = {"name", "host", "pool_size"};
	const char *db_rows[] = {"app", "db", "8", "pgbouncer", NULL, "2"};
	PGresult *pools = pgresult(pool_cols, 10, pool_rows, 3);
	PGresult *dbs = pgresult(db_cols, 3, db_rows, 2);
	struct sm_batch *b = sm_batch_new(100);
	struct sm_error err = {0};

	(void)state;
	assert_int_equal(sm_pgbouncer_pools_to_series(pools, dbs, b, &err), 0);
	assert_true(value(b, "pgbouncer_clients_active", "app", "web") == 5);
	assert_true(value(b, "pgbouncer_clients_waiting", "app", "web") == 2);
	assert_true(value(b, "pgbouncer_servers_active", "app", "web") == 4);
	assert_true(value(b, "pgbouncer_servers_idle", "app", "web") == 1);
	assert_true(value(b, "pgbouncer_servers_used", "app", "web") == 0);
	assert_true(value(b, "pgbouncer_max_wait_seconds", "app", "web") == 1.5);
	assert_true(value(b, "pgbouncer_pool_size", "app", "web") == 8);
	assert_true(value(b, "pgbouncer_pool_utilization", "app", "web") == 0.5);
	/* No pool size known for "other": no size and no utilisation. */
	assert_true(value(b, "pgbouncer_servers_active", "other", "batch") == 1);
	assert_null(find(b, "pgbouncer_pool_size", "other", "batch"));
	assert_null(find(b, "pgbouncer_pool_utilization", "other", "batch"));
	/* The admin console's pool: nothing. */
	assert_null(find(b, "pgbouncer_clients_active", "pgbouncer", "pgbouncer"));
	assert_int_equal(sm_batch_count(b), 8 + 6);
	PQclear(pools);
	PQclear(dbs);
	sm_batch_free(b);
}

/* Older PgBouncers lack columns: they count as 0; a NULL or non-numeric one too. */
static void test_missing_columns(void **state)
{
	const char *pool_cols[] = {"database", "user", "cl_active", "sv_active"};
	const char *pool_rows[] = {"app", "web", NULL, "many"};
	const char *db_cols[] = {"host"}; /* no name column: no pool sizes */
	const char *db_rows[] = {"db"};
	PGresult *pools = pgresult(pool_cols, 4, pool_rows, 1);
	PGresult *dbs = pgresult(db_cols, 1, db_rows, 1);
	struct sm_batch *b = sm_batch_new(100);
	struct sm_error err = {0};

	(void)state;
	assert_int_equal(sm_pgbouncer_pools_to_series(pools, dbs, b, &err), 0);
	assert_int_equal(sm_batch_count(b), 6);
	assert_true(value(b, "pgbouncer_clients_active", "app", "web") == 0);
	assert_true(value(b, "pgbouncer_servers_active", "app", "web") == 0);
	assert_true(value(b, "pgbouncer_max_wait_seconds", "app", "web") == 0);
	PQclear(pools);
	PQclear(dbs);
	sm_batch_free(b);
}

static void test_no_user_column(void **state)
{
	const char *pool_cols[] = {"database", "cl_active"};
	const char *pool_rows[] = {"app", "1"};
	const char *db_cols[] = {"name"};
	PGresult *pools = pgresult(pool_cols, 2, pool_rows, 1);
	PGresult *dbs = pgresult(db_cols, 1, NULL, 0);
	struct sm_batch *b = sm_batch_new(100);
	struct sm_error err = {0};

	(void)state;
	assert_int_equal(sm_pgbouncer_pools_to_series(pools, dbs, b, &err), -EPROTO);
	assert_string_equal(err.message, "SHOW POOLS: no database/user columns");
	assert_int_equal(sm_batch_count(b), 0);
	PQclear(pools);
	PQclear(dbs);
	sm_batch_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pools),
	    cmocka_unit_test(test_missing_columns),
	    cmocka_unit_test(test_no_user_column),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
