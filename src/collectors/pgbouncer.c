/* SPDX-License-Identifier: MIT */
/* The PgBouncer source: per-pool clients active/waiting, servers in use and pool
 * utilisation, read from the admin console (SHOW POOLS, SHOW DATABASES). */

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/config.h"
#include "scalemetrics/number.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"

#include "pgbouncer-internal.h"
#include "pq-internal.h"

struct pgb_config {
	char *dsn_env;
	char *dsn_file;
};

struct pgb_state {
	const struct sm_source_config *src;
	const struct pgb_config *cfg;
	struct sm_pq_conn pq;
};

static const struct sm_config_key pgb_keys[] = {
    {.name = "dsn_env", .type = SM_CONFIG_STRING, .offset = offsetof(struct pgb_config, dsn_env)},
    {.name = "dsn_file", .type = SM_CONFIG_STRING, .offset = offsetof(struct pgb_config, dsn_file)},
};

static const char *const pgb_metrics[] = {
    "pgbouncer_clients_active", "pgbouncer_clients_waiting",  "pgbouncer_max_wait_seconds",
    "pgbouncer_pool_size",      "pgbouncer_pool_utilization", "pgbouncer_servers_active",
    "pgbouncer_servers_idle",   "pgbouncer_servers_used",
};

static void pgb_config_free(void *priv)
{
	struct pgb_config *c = priv;

	if (!c)
		return;
	free(c->dsn_env);
	free(c->dsn_file);
	free(c);
}

static int pgb_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                            struct sm_source_config *src)
{
	struct pgb_config *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	src->priv = c;
	r = sm_config_parse_mapping(p, node, pgb_keys, sizeof(pgb_keys) / sizeof(pgb_keys[0]), c,
	                            "pgbouncer source");
	if (sm_pq_config_check_dsn(p, node, c->dsn_env, c->dsn_file) < 0)
		r = -EINVAL;
	for (size_t i = 0; i < sizeof(pgb_metrics) / sizeof(pgb_metrics[0]); i++) {
		struct sm_metric_def def = {.name = (char *)pgb_metrics[i],
		                            .scope = SM_METRIC_EXTERNAL};

		if (sm_config_add_metric(p, node, &def) < 0)
			r = -EINVAL;
	}
	return r < 0 ? -EINVAL : 0;
}

static int pgb_create(const struct sm_source_config *src, void **ret_state)
{
	struct pgb_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->src = src;
	s->cfg = src->priv;
	*ret_state = s;
	return 0;
}

static void pgb_destroy(void *state)
{
	struct pgb_state *s = state;

	if (!s)
		return;
	sm_pq_conn_done(&s->pq);
	free(s);
}

/* A column by name (the admin console's column set grows between releases); -1 if absent. */
static double column_double(const PGresult *res, int row, const char *name)
{
	int col = PQfnumber(res, name);
	double v = 0;

	if (col < 0 || PQgetisnull(res, row, col))
		return 0;
	if (sm_number_parse_double(PQgetvalue(res, row, col), &v) < 0)
		return 0;
	return v;
}

static int show(struct pgb_state *s, const char *what, PGresult **ret, struct sm_error *reterr)
{
	PGresult *res = NULL;
	int r = sm_pq_conn_exec(&s->pq, what, true, s->src->timeout_ms, &res, reterr);

	if (r < 0)
		return r;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		sm_error_set(reterr, "%s: %s", what, PQresultErrorMessage(res));
		PQclear(res);
		return -EPROTO;
	}
	*ret = res;
	return 0;
}

/* pool_size of a database row in SHOW DATABASES; 0 when unknown. */
static double pool_size_for(const PGresult *dbs, const char *database)
{
	int name_col = PQfnumber(dbs, "name");

	if (name_col < 0)
		return 0;
	for (int i = 0; i < PQntuples(dbs); i++)
		if (strcmp(PQgetvalue(dbs, i, name_col), database) == 0)
			return column_double(dbs, i, "pool_size");
	return 0;
}

/* The series read straight from a SHOW POOLS column. */
static const struct {
	const char *metric;
	const char *column;
} pool_columns[] = {
    {.metric = "pgbouncer_clients_active", .column = "cl_active"},
    {.metric = "pgbouncer_clients_waiting", .column = "cl_waiting"},
    {.metric = "pgbouncer_servers_active", .column = "sv_active"},
    {.metric = "pgbouncer_servers_idle", .column = "sv_idle"},
    {.metric = "pgbouncer_servers_used", .column = "sv_used"},
};

static int add(struct sm_batch *batch, const char *metric, const struct sm_label *labels,
               double value)
{
	struct sm_series_in in = {
	    .metric = metric, .labels = labels, .n_labels = 2, .value = value};
	int r = sm_batch_add(batch, &in);

	return r == -E2BIG ? 0 : r;
}

int sm_pgbouncer_pools_to_series(const PGresult *pools, const PGresult *dbs, struct sm_batch *batch,
                                 struct sm_error *reterr)
{
	int db_col = PQfnumber(pools, "database");
	int user_col = PQfnumber(pools, "user");

	if (db_col < 0 || user_col < 0) {
		sm_error_set(reterr, "SHOW POOLS: no database/user columns");
		return -EPROTO;
	}
	for (int i = 0; i < PQntuples(pools); i++) {
		const char *database = PQgetvalue(pools, i, db_col);
		struct sm_label labels[] = {
		    {.name = "database", .value = database},
		    {.name = "user", .value = PQgetvalue(pools, i, user_col)},
		};
		double sv_active = column_double(pools, i, "sv_active");
		double size = pool_size_for(dbs, database);
		double wait = column_double(pools, i, "maxwait") +
		              column_double(pools, i, "maxwait_us") / 1e6;
		int r = 0;

		/* The admin console's own pseudo-pool is not a pool of servers. */
		if (strcmp(database, "pgbouncer") == 0)
			continue;
		for (size_t k = 0; k < sizeof(pool_columns) / sizeof(pool_columns[0]) && r == 0;
		     k++)
			r = add(batch, pool_columns[k].metric, labels,
			        column_double(pools, i, pool_columns[k].column));
		if (r == 0)
			r = add(batch, "pgbouncer_max_wait_seconds", labels, wait);
		if (r == 0 && size > 0) {
			r = add(batch, "pgbouncer_pool_size", labels, size);
			if (r == 0)
				r = add(batch, "pgbouncer_pool_utilization", labels,
				        sv_active / size);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int pgb_collect(void *state, struct sm_batch *batch, struct sm_error *reterr)
{
	struct pgb_state *s = state;
	PGresult *pools = NULL;
	PGresult *dbs = NULL;
	int r;

	r = sm_pq_conn_open(&s->pq, s->cfg->dsn_env, s->cfg->dsn_file, s->src->timeout_ms, reterr);
	if (r < 0)
		goto out;
	r = show(s, "SHOW POOLS", &pools, reterr);
	if (r < 0)
		goto out;
	r = show(s, "SHOW DATABASES", &dbs, reterr);
	if (r < 0)
		goto out;
	r = sm_pgbouncer_pools_to_series(pools, dbs, batch, reterr);
out:
	PQclear(pools);
	PQclear(dbs);
	return r;
}

const struct sm_source_ops sm_source_pgbouncer = {
    .type = "pgbouncer",
    .config_parse = pgb_config_parse,
    .config_free = pgb_config_free,
    .create = pgb_create,
    .collect = pgb_collect,
    .destroy = pgb_destroy,
};
