/* SPDX-License-Identifier: MIT */
/* The PostgreSQL source: connection counts and pool utilisation from pg_stat_activity, and
 * SQL-defined metrics run read-only with a statement_timeout. */

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/config.h"
#include "scalemetrics/number.h"
#include "scalemetrics/promtext.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"

#include "postgres-internal.h"
#include "pq-internal.h"

struct pg_query_rule {
	char *metric;
	char *sql;
	struct sm_opt_double fallback;
};

struct pg_rules {
	struct pg_query_rule *v;
	size_t n;
};

struct pg_config {
	bool builtin;
	char *dsn_env;
	char *dsn_file;
	struct pg_rules queries;
};

struct pg_state {
	const struct sm_source_config *src;
	const struct pg_config *cfg;
	struct sm_pq_conn pq;
};

static const struct sm_config_key query_keys[] = {
    {.name = "fallback",
     .type = SM_CONFIG_DOUBLE,
     .offset = offsetof(struct pg_query_rule, fallback)},
    {.name = "metric",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct pg_query_rule, metric),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "sql",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct pg_query_rule, sql),
     .flags = SM_CONFIG_REQUIRED},
};

static void query_rule_done(struct pg_query_rule *r)
{
	free(r->metric);
	free(r->sql);
}

static int parse_queries(struct sm_config_parser *p, const struct sm_config_node *node,
                         void *target)
{
	struct pg_rules *rules = target;
	size_t n = sm_config_node_length(node);
	int r = 0;

	if (!sm_config_node_is_sequence(node))
		return sm_config_report(p, node, "queries must be a list of {metric, sql}");
	rules->v = calloc(n ? n : 1, sizeof(*rules->v));
	if (!rules->v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct sm_config_node *item = sm_config_node_item(p, node, i);
		struct pg_query_rule *rule = &rules->v[rules->n++];
		struct sm_metric_def def;

		if (sm_config_parse_mapping(p, item, query_keys,
		                            sizeof(query_keys) / sizeof(query_keys[0]), rule,
		                            "query") < 0) {
			r = -EINVAL;
			continue;
		}
		if (!sm_promtext_metric_name_is_valid(rule->metric)) {
			r = sm_config_report(p, item, "invalid metric name '%s'", rule->metric);
			continue;
		}
		def = (struct sm_metric_def){
		    .name = rule->metric, .scope = SM_METRIC_EXTERNAL, .fallback = rule->fallback};
		if (sm_config_add_metric(p, item, &def) < 0)
			r = -EINVAL;
	}
	return r;
}

static const struct sm_config_key pg_keys[] = {
    {.name = "builtin", .type = SM_CONFIG_BOOL, .offset = offsetof(struct pg_config, builtin)},
    {.name = "dsn_env", .type = SM_CONFIG_STRING, .offset = offsetof(struct pg_config, dsn_env)},
    {.name = "dsn_file", .type = SM_CONFIG_STRING, .offset = offsetof(struct pg_config, dsn_file)},
    {.name = "queries",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct pg_config, queries),
     .parse = parse_queries},
};

static const char *const builtin_metrics[] = {
    "postgresql_connections",
    "postgresql_connections_max",
    "postgresql_connection_utilization",
    "postgresql_oldest_transaction_seconds",
    "postgresql_replication_lag_seconds",
};

static void pg_config_free(void *priv)
{
	struct pg_config *c = priv;

	if (!c)
		return;
	for (size_t i = 0; i < c->queries.n; i++)
		query_rule_done(&c->queries.v[i]);
	free(c->queries.v);
	free(c->dsn_env);
	free(c->dsn_file);
	free(c);
}

static int pg_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                           struct sm_source_config *src)
{
	struct pg_config *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->builtin = true;
	src->priv = c;
	r = sm_config_parse_mapping(p, node, pg_keys, sizeof(pg_keys) / sizeof(pg_keys[0]), c,
	                            "postgresql source");
	if (sm_pq_config_check_dsn(p, node, c->dsn_env, c->dsn_file) < 0)
		r = -EINVAL;
	if (c->builtin) {
		for (size_t i = 0; i < sizeof(builtin_metrics) / sizeof(builtin_metrics[0]); i++) {
			struct sm_metric_def def = {.name = (char *)builtin_metrics[i],
			                            .scope = SM_METRIC_EXTERNAL};

			if (sm_config_add_metric(p, node, &def) < 0)
				r = -EINVAL;
		}
	}
	if (!c->builtin && c->queries.n == 0)
		r = sm_config_report(p, node,
		                     "source '%s' serves nothing: set builtin: true or "
		                     "give queries",
		                     src->name);
	return r < 0 ? -EINVAL : 0;
}

static int pg_create(const struct sm_source_config *src, void **ret_state)
{
	struct pg_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->src = src;
	s->cfg = src->priv;
	*ret_state = s;
	return 0;
}

static void pg_destroy(void *state)
{
	struct pg_state *s = state;

	if (!s)
		return;
	sm_pq_conn_done(&s->pq);
	free(s);
}

/* Appends "; msg" (or msg) to a per-series error text. */
static void note_series_error(struct sm_error *e, const char *fmt, ...) SM_PRINTF(2, 3);
static void note_series_error(struct sm_error *e, const char *fmt, ...)
{
	size_t used = strlen(e->message);
	va_list ap;

	if (used + 3 >= sizeof(e->message))
		return;
	if (used > 0) {
		memcpy(e->message + used, "; ", 3);
		used += 2;
	}
	va_start(ap, fmt);
	(void)vsnprintf(e->message + used, sizeof(e->message) - used, fmt, ap);
	va_end(ap);
}

static int query_failed(struct sm_batch *batch, struct sm_error *series_err, const char *metric,
                        const struct sm_label *labels, size_t n_labels, const char *fmt, ...)
    SM_PRINTF(6, 7);

/* A query's series that could not be read: noted, and served as a failure (series.h) with the
 * same text, so that a query for it gets 503 saying why rather than nothing. labels: the row's,
 * when known; NULL: the query gave no usable row, so any label set may be missing. */
static int query_failed(struct sm_batch *batch, struct sm_error *series_err, const char *metric,
                        const struct sm_label *labels, size_t n_labels, const char *fmt, ...)
{
	struct sm_series_in in = {.metric = metric, .labels = labels, .n_labels = n_labels};
	char msg[sizeof(series_err->message)];
	va_list ap;
	int r;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	note_series_error(series_err, "%s", msg);
	r = sm_batch_add_failure(batch, &in, labels == NULL, msg);
	return r == -ENOMEM ? r : 0;
}

static int add_series(struct sm_batch *batch, const char *metric, const struct sm_label *labels,
                      size_t n_labels, double value)
{
	struct sm_series_in in = {
	    .metric = metric, .labels = labels, .n_labels = n_labels, .value = value};
	int r = sm_batch_add(batch, &in);

	return r == -E2BIG ? 0 : r;
}

static const char builtin_activity_sql[] =
    "SELECT coalesce(datname, ''), coalesce(usename, ''), "
    "CASE WHEN wait_event_type = 'Lock' THEN 'waiting' ELSE coalesce(state, 'unknown') END, "
    "count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1, 2, 3";

static const char builtin_settings_sql[] =
    "SELECT current_setting('max_connections')::int"
    " - current_setting('superuser_reserved_connections')::int"
    " - coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0),"
    " (SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0) FROM pg_stat_activity"
    "   WHERE backend_type = 'client backend' AND xact_start IS NOT NULL"
    "   AND pid <> pg_backend_pid()),"
    " pg_is_in_recovery(),"
    " coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)";

static int collect_builtin(struct pg_state *s, struct sm_batch *batch, struct sm_error *reterr)
{
	PGresult *act = NULL;
	PGresult *set = NULL;
	double total = 0;
	double max_usable = 0;
	int r;

	r = sm_pq_conn_exec(&s->pq, builtin_activity_sql, false, s->src->timeout_ms, &act, reterr);
	if (r < 0)
		goto out;
	if (PQresultStatus(act) != PGRES_TUPLES_OK) {
		sm_error_set(reterr, "pg_stat_activity: %s", PQresultErrorMessage(act));
		r = -EPROTO;
		goto out;
	}
	r = sm_pq_conn_exec(&s->pq, builtin_settings_sql, false, s->src->timeout_ms, &set, reterr);
	if (r < 0)
		goto out;
	if (PQresultStatus(set) != PGRES_TUPLES_OK || PQntuples(set) != 1) {
		sm_error_set(reterr, "settings: %s", PQresultErrorMessage(set));
		r = -EPROTO;
		goto out;
	}
	for (int i = 0; i < PQntuples(act); i++) {
		struct sm_label labels[] = {
		    {.name = "database", .value = PQgetvalue(act, i, 0)},
		    {.name = "state", .value = PQgetvalue(act, i, 2)},
		    {.name = "user", .value = PQgetvalue(act, i, 1)},
		};
		double n = 0;

		if (sm_number_parse_double(PQgetvalue(act, i, 3), &n) < 0)
			continue;
		total += n;
		r = add_series(batch, "postgresql_connections", labels, 3, n);
		if (r < 0)
			goto out;
	}
	if (sm_number_parse_double(PQgetvalue(set, 0, 0), &max_usable) < 0 || max_usable <= 0) {
		sm_error_set(reterr, "cannot read max_connections");
		r = -EPROTO;
		goto out;
	}
	r = add_series(batch, "postgresql_connections_max", NULL, 0, max_usable);
	if (r == 0)
		r = add_series(batch, "postgresql_connection_utilization", NULL, 0,
		               total / max_usable);
	if (r == 0) {
		double age = 0;

		if (sm_number_parse_double(PQgetvalue(set, 0, 1), &age) == 0)
			r = add_series(batch, "postgresql_oldest_transaction_seconds", NULL, 0,
			               age);
	}
	if (r == 0 && strcmp(PQgetvalue(set, 0, 2), "t") == 0) {
		double lag = 0;

		if (sm_number_parse_double(PQgetvalue(set, 0, 3), &lag) == 0)
			r = add_series(batch, "postgresql_replication_lag_seconds", NULL, 0, lag);
	}
out:
	PQclear(act);
	PQclear(set);
	return r;
}

int sm_postgres_rows_to_series(const PGresult *res, const char *metric, uint32_t max_series,
                               struct sm_batch *batch, struct sm_error *series_err)
{
	struct sm_label labels[SM_POSTGRES_MAX_LABEL_COLUMNS];
	int rows = PQntuples(res);
	int cols = PQnfields(res);

	if (rows == 0) {
		note_series_error(series_err, "query for '%s' returned no rows", metric);
		return 0;
	}
	if (cols < 1 || cols - 1 > SM_POSTGRES_MAX_LABEL_COLUMNS)
		return query_failed(batch, series_err, metric, NULL, 0,
		                    "query for '%s' returned %d columns (expected 1 to %d)", metric,
		                    cols, SM_POSTGRES_MAX_LABEL_COLUMNS + 1);
	if (cols == 1 && rows > 1)
		return query_failed(batch, series_err, metric, NULL, 0,
		                    "query for '%s' returned %d rows of one column (expected one "
		                    "row, or label columns before the value)",
		                    metric, rows);
	if ((size_t)rows > max_series)
		return query_failed(batch, series_err, metric, NULL, 0,
		                    "query for '%s' returned %d rows (max_series %u)", metric, rows,
		                    (unsigned)max_series);
	for (int c = 0; c + 1 < cols; c++) {
		labels[c].name = PQfname(res, c);
		if (!sm_label_key_is_valid(labels[c].name))
			return query_failed(
			    batch, series_err, metric, NULL, 0,
			    "query for '%s': column name '%s' is not a valid label name", metric,
			    labels[c].name);
	}
	for (int i = 0; i < rows; i++) {
		size_t n_labels = (size_t)(cols - 1);
		double v = 0;
		int r;

		for (int c = 0; c + 1 < cols; c++)
			labels[c].value = PQgetisnull(res, i, c) ? "" : PQgetvalue(res, i, c);
		if (PQgetisnull(res, i, cols - 1))
			r = query_failed(batch, series_err, metric, labels, n_labels,
			                 "query for '%s' returned NULL in row %d", metric, i + 1);
		else if (sm_number_parse_double(PQgetvalue(res, i, cols - 1), &v) < 0)
			r = query_failed(batch, series_err, metric, labels, n_labels,
			                 "query for '%s' returned a non-numeric value in row %d",
			                 metric, i + 1);
		else
			r = add_series(batch, metric, labels, n_labels, v);
		if (r < 0)
			return r;
	}
	return 0;
}

static int collect_query(struct pg_state *s, const struct pg_query_rule *rule,
                         struct sm_batch *batch, struct sm_error *series_err,
                         struct sm_error *reterr)
{
	char begin[128];
	PGresult *res = NULL;
	int64_t net_timeout = s->src->timeout_ms + 1000;
	int r;

	/* Our own text, simple protocol; the user's SQL goes through the extended protocol,
	 * which runs exactly one statement. */
	(void)snprintf(begin, sizeof(begin),
	               "BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = %lld",
	               (long long)s->src->timeout_ms);
	r = sm_pq_conn_exec(&s->pq, begin, true, net_timeout, &res, reterr);
	if (r < 0)
		return r;
	PQclear(res);
	res = NULL;

	r = sm_pq_conn_exec(&s->pq, rule->sql, false, net_timeout, &res, reterr);
	if (r < 0)
		return r;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		r = query_failed(batch, series_err, rule->metric, NULL, 0,
		                 "query for '%s' failed: %s", rule->metric,
		                 msg ? msg : PQresStatus(PQresultStatus(res)));
	} else {
		r = sm_postgres_rows_to_series(res, rule->metric, s->src->max_series, batch,
		                               series_err);
	}
	PQclear(res);
	res = NULL;
	if (r < 0)
		return r;

	r = sm_pq_conn_exec(&s->pq, "ROLLBACK", true, net_timeout, &res, reterr);
	PQclear(res);
	return r;
}

static int pg_collect(void *state, struct sm_batch *batch, struct sm_error *reterr)
{
	struct pg_state *s = state;
	struct sm_error series_err = {.message = ""};
	int r;

	r = sm_pq_conn_open(&s->pq, s->cfg->dsn_env, s->cfg->dsn_file, s->src->timeout_ms, reterr);
	if (r < 0)
		return r;
	if (s->cfg->builtin) {
		r = collect_builtin(s, batch, reterr);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < s->cfg->queries.n; i++) {
		r = collect_query(s, &s->cfg->queries.v[i], batch, &series_err, reterr);
		if (r < 0)
			return r;
	}
	if (series_err.message[0])
		sm_error_set(reterr, "%s", series_err.message);
	return 0;
}

const struct sm_source_ops sm_source_postgresql = {
    .type = "postgresql",
    .config_parse = pg_config_parse,
    .config_free = pg_config_free,
    .create = pg_create,
    .collect = pg_collect,
    .destroy = pg_destroy,
};
