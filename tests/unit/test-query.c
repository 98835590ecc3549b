/* SPDX-License-Identifier: MIT */
/* Unit tests for query: the Metrics model (external, one object, objects, namespace totals),
 * namespace visibility, selectors, sums, order, staleness with and without fallback, empty
 * queues answered as 0 and series that could not be read answered as 503. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka needs the headers above, so it stays out of their sorted block. */
#include <cmocka.h>

#include "scalemetrics/config.h"
#include "scalemetrics/query.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series-index.h"
#include "scalemetrics/series.h"
#include "scalemetrics/store.h"

#define T0_MONO 100000
#define T0_WALL 1700000000000

enum { SRC_JOBS, SRC_BACKEND, SRC_DB, SRC_CACHE, N_SRC };

struct world {
	char *ns_jobs[2];
	char *ns_default[1];
	char *ns_ops[1];
	struct sm_metric_def jobs_metrics[2];
	struct sm_metric_def backend_metrics[1];
	struct sm_metric_def db_metrics[1];
	struct sm_metric_def cache_metrics[1];
	struct sm_source_config sources[N_SRC];
	struct sm_config cfg;
	struct sm_store *st;
};

struct in_series {
	const char *metric;
	const char *label_name; /* one metric label, or NULL */
	const char *label_value;
	double value;
	const char *resource; /* object, or NULL */
	const char *name;
	const char *namespace;
	const char *app; /* object label app=..., or NULL */
};

static void add_series(struct sm_batch *b, const struct in_series *in)
{
	struct sm_label label = {in->label_name, in->label_value};
	struct sm_label app = {"app", in->app};
	struct sm_object_ref obj = {in->resource, in->name, in->namespace};
	struct sm_series_in s = {
	    .metric = in->metric,
	    .labels = in->label_name ? &label : NULL,
	    .n_labels = in->label_name ? 1 : 0,
	    .value = in->value,
	    .object = in->resource ? &obj : NULL,
	    .object_labels = in->app ? &app : NULL,
	    .n_object_labels = in->app ? 1 : 0,
	};

	assert_int_equal(sm_batch_add(b, &s), 0);
}

/* The series in[], between `filler` series of another metric that carry the same labels and
 * objects (half before, half after): enough filler gives the snapshot an index
 * (series-index.h), and every answer must be the same as without. */
static struct sm_batch *batch_padded(const struct in_series *in, size_t n, size_t filler)
{
	struct sm_batch *b = sm_batch_new(n + filler);

	assert_non_null(b);
	for (size_t i = 0; i < filler / 2; i++)
		add_series(b,
		           &(struct in_series){"filler", "queue", "emails", 1, "deployments.apps",
		                               "worker-emails", NULL, "web"});
	for (size_t i = 0; i < n; i++)
		add_series(b, &in[i]);
	for (size_t i = filler / 2; i < filler; i++)
		add_series(b, &(struct in_series){"filler", "code", "200", 1, "pods", "web-1",
		                                  "prod", "web"});
	return b;
}

static struct sm_batch *batch_of(const struct in_series *in, size_t n)
{
	return batch_padded(in, n, 0);
}

static const struct in_series jobs_series[] = {
    {"redis_queue_length", "queue", "emails", 5, "deployments.apps", "worker-emails", NULL, NULL},
    {"redis_queue_length", "queue", "sms", 3, "deployments.apps", "worker-sms", NULL, NULL},
    {"redis_queue_length", "queue", "push", 2, "deployments.apps", "worker-emails", NULL, NULL},
    {"jobs_backlog", "queue", "a", 1, NULL, NULL, NULL, NULL},
    {"jobs_backlog", "queue", "b", 4, NULL, NULL, NULL, NULL},
};

static const struct in_series backend_series[] = {
    {"http_rps", "code", "500", 1, "pods", "web-1", "prod", "web"},
    {"http_rps", "code", "200", 10, "pods", "web-1", "prod", "web"},
    {"http_rps", "code", "200", 20, "pods", "web-2", "prod", "web"},
    {"http_rps", "code", "200", 30, "pods", "api-1", "prod", "api"},
    {"http_rps", "code", "200", 40, "pods", "web-3", "staging", "web"},
};

static void world_init(struct world *w, size_t filler)
{
	memset(w, 0, sizeof(*w));
	w->ns_jobs[0] = "default";
	w->ns_jobs[1] = "prod";
	w->ns_default[0] = "default";
	w->ns_ops[0] = "ops";

	w->jobs_metrics[0] = (struct sm_metric_def){
	    .name = "redis_queue_length",
	    .scope = SM_METRIC_OBJECT,
	    .resource = "deployments.apps",
	};
	w->jobs_metrics[1] = (struct sm_metric_def){
	    .name = "jobs_backlog",
	    .scope = SM_METRIC_EXTERNAL,
	    .fallback = {.set = true, .value = 7},
	    .window_s = 60,
	};
	w->backend_metrics[0] = (struct sm_metric_def){.name = "http_rps", .scope = SM_METRIC_PODS};
	w->db_metrics[0] = (struct sm_metric_def){.name = "pending_jobs"};
	w->cache_metrics[0] = (struct sm_metric_def){
	    .name = "cache_len",
	    .fallback = {.set = true, .value = 0},
	};

	w->sources[SRC_JOBS] = (struct sm_source_config){
	    .name = "jobs",
	    .interval_ms = 5000,
	    .max_age_ms = 15000,
	    .namespaces = {w->ns_jobs, 2},
	    .metrics = w->jobs_metrics,
	    .n_metrics = 2,
	};
	w->sources[SRC_BACKEND] = (struct sm_source_config){
	    .name = "backend",
	    .interval_ms = 5000,
	    .max_age_ms = 15000,
	    .namespaces = {w->ns_default, 1},
	    .metrics = w->backend_metrics,
	    .n_metrics = 1,
	};
	w->sources[SRC_DB] = (struct sm_source_config){
	    .name = "app-db",
	    .interval_ms = 10000,
	    .max_age_ms = 30500,
	    .namespaces = {w->ns_ops, 1},
	    .metrics = w->db_metrics,
	    .n_metrics = 1,
	};
	w->sources[SRC_CACHE] = (struct sm_source_config){
	    .name = "cache",
	    .interval_ms = 5000,
	    .max_age_ms = 15000,
	    .namespaces = {w->ns_default, 1},
	    .metrics = w->cache_metrics,
	    .n_metrics = 1,
	};
	w->cfg.sources = w->sources;
	w->cfg.n_sources = N_SRC;
	w->st = sm_store_new(&w->cfg);
	assert_non_null(w->st);
	assert_int_equal(
	    sm_store_publish_success(
	        w->st, SRC_JOBS,
	        batch_padded(jobs_series, sizeof(jobs_series) / sizeof(jobs_series[0]), filler),
	        T0_MONO, T0_WALL),
	    0);
	assert_int_equal(
	    sm_store_publish_success(
	        w->st, SRC_BACKEND,
	        batch_padded(backend_series, sizeof(backend_series) / sizeof(backend_series[0]),
	                     filler),
	        T0_MONO, T0_WALL),
	    0);
}

static int setup(void **state)
{
	static struct world w;

	world_init(&w, 0);
	*state = &w;
	return 0;
}

/* The same world, each published source padded to well over SM_SERIES_INDEX_MIN series. */
static int setup_indexed(void **state)
{
	static struct world w;
	struct sm_snapshot *snap;

	world_init(&w, 4 * SM_SERIES_INDEX_MIN);
	for (size_t i = SRC_JOBS; i <= SRC_BACKEND; i++) {
		snap = sm_store_acquire(w.st, i);
		assert_non_null(snap->index);
		sm_snapshot_unref(snap);
	}
	*state = &w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	sm_store_free(w->st);
	return 0;
}

static struct sm_selector *parse(const char *text)
{
	struct sm_selector *sel = NULL;
	struct sm_error err = {0};

	assert_int_equal(sm_selector_parse(text, &sel, &err), 0);
	return sel;
}

/* ---- table of queries that succeed ---- */

struct expect_item {
	const char *object_name; /* NULL: no described object (external) */
	const char *label_value; /* the single metric label's value, NULL: no labels */
	double value;
};

struct ok_case {
	const char *what;
	enum sm_query_kind kind;
	const char *namespace;
	const char *resource;
	const char *name;
	const char *metric;
	const char *object_selector;
	const char *metric_selector;
	size_t n_items;
	struct expect_item items[4];
};

static const struct ok_case ok_cases[] = {
    {"external, all series, ordered by labels",
     SM_QUERY_EXTERNAL,
     "default",
     NULL,
     NULL,
     "redis_queue_length",
     NULL,
     NULL,
     3,
     {{NULL, "emails", 5}, {NULL, "push", 2}, {NULL, "sms", 3}}},
    {"external, second namespace of the source",
     SM_QUERY_EXTERNAL,
     "prod",
     NULL,
     NULL,
     "redis_queue_length",
     NULL,
     NULL,
     3,
     {{NULL, "emails", 5}, {NULL, "push", 2}, {NULL, "sms", 3}}},
    {"external, equality selector",
     SM_QUERY_EXTERNAL,
     "default",
     NULL,
     NULL,
     "redis_queue_length",
     NULL,
     "queue=sms",
     1,
     {{NULL, "sms", 3}}},
    {"external, set selector",
     SM_QUERY_EXTERNAL,
     "default",
     NULL,
     NULL,
     "redis_queue_length",
     NULL,
     "queue in (sms,push)",
     2,
     {{NULL, "push", 2}, {NULL, "sms", 3}}},
    {"external, selector matching nothing",
     SM_QUERY_EXTERNAL,
     "default",
     NULL,
     NULL,
     "redis_queue_length",
     NULL,
     "queue=nope",
     0,
     {{0}}},
    {"external, selector on a missing label",
     SM_QUERY_EXTERNAL,
     "default",
     NULL,
     NULL,
     "redis_queue_length",
     NULL,
     "!queue",
     0,
     {{0}}},
    /* External answers of a pods metric are its aggregate series only (none here): the
     * per-pod series would double what an HPA sums. */
    {"external, pod series are not external items",
     SM_QUERY_EXTERNAL,
     "staging",
     NULL,
     NULL,
     "http_rps",
     NULL,
     NULL,
     0,
     {{0}}},
    {"object, several series summed",
     SM_QUERY_OBJECT,
     "default",
     "deployments.apps",
     "worker-emails",
     "redis_queue_length",
     NULL,
     NULL,
     1,
     {{"worker-emails", NULL, 7}}},
    {"object, metric selector narrows the sum",
     SM_QUERY_OBJECT,
     "prod",
     "deployments.apps",
     "worker-emails",
     "redis_queue_length",
     NULL,
     "queue=push",
     1,
     {{"worker-emails", NULL, 2}}},
    {"object, single series",
     SM_QUERY_OBJECT,
     "default",
     "deployments.apps",
     "worker-sms",
     "redis_queue_length",
     NULL,
     NULL,
     1,
     {{"worker-sms", NULL, 3}}},
    {"object, one pod",
     SM_QUERY_OBJECT,
     "prod",
     "pods",
     "web-1",
     "http_rps",
     NULL,
     NULL,
     1,
     {{"web-1", NULL, 11}}},
    {"objects, pods by object selector, summed per pod",
     SM_QUERY_OBJECTS,
     "prod",
     "pods",
     "*",
     "http_rps",
     "app=web",
     NULL,
     2,
     {{"web-1", NULL, 11}, {"web-2", NULL, 20}}},
    {"objects, every pod ordered by name",
     SM_QUERY_OBJECTS,
     "prod",
     "pods",
     "*",
     "http_rps",
     NULL,
     NULL,
     3,
     {{"api-1", NULL, 30}, {"web-1", NULL, 11}, {"web-2", NULL, 20}}},
    {"objects, metric selector",
     SM_QUERY_OBJECTS,
     "prod",
     "pods",
     "*",
     "http_rps",
     "app=web",
     "code=500",
     1,
     {{"web-1", NULL, 1}}},
    {"objects, other namespace",
     SM_QUERY_OBJECTS,
     "staging",
     "pods",
     "*",
     "http_rps",
     NULL,
     NULL,
     1,
     {{"web-3", NULL, 40}}},
    {"objects, source namespace without pods",
     SM_QUERY_OBJECTS,
     "default",
     "pods",
     "*",
     "http_rps",
     NULL,
     NULL,
     0,
     {{0}}},
    {"objects, object selector matching nothing",
     SM_QUERY_OBJECTS,
     "prod",
     "pods",
     "*",
     "http_rps",
     "app=db",
     NULL,
     0,
     {{0}}},
    {"objects, deployments",
     SM_QUERY_OBJECTS,
     "default",
     "deployments.apps",
     "*",
     "redis_queue_length",
     NULL,
     NULL,
     2,
     {{"worker-emails", NULL, 7}, {"worker-sms", NULL, 3}}},
    /* Per-pod series are not summed into the total (the aggregate series is the total). */
    {"namespace total, pods: per-pod series not summed",
     SM_QUERY_NAMESPACE,
     "prod",
     NULL,
     NULL,
     "http_rps",
     NULL,
     NULL,
     1,
     {{"prod", NULL, 0}}},
    {"namespace total, external series",
     SM_QUERY_NAMESPACE,
     "prod",
     NULL,
     NULL,
     "redis_queue_length",
     NULL,
     NULL,
     1,
     {{"prod", NULL, 10}}},
    {"namespace total, metric selector",
     SM_QUERY_NAMESPACE,
     "default",
     NULL,
     NULL,
     "redis_queue_length",
     NULL,
     "queue!=sms",
     1,
     {{"default", NULL, 7}}},
    {"namespace total, nothing matches: 0",
     SM_QUERY_NAMESPACE,
     "default",
     NULL,
     NULL,
     "redis_queue_length",
     NULL,
     "queue=nope",
     1,
     {{"default", NULL, 0}}},
    {"namespace total, no pods there: 0",
     SM_QUERY_NAMESPACE,
     "default",
     NULL,
     NULL,
     "http_rps",
     NULL,
     NULL,
     1,
     {{"default", NULL, 0}}},
    {"root-scoped object: series whose object has no namespace",
     SM_QUERY_OBJECT,
     NULL,
     "deployments.apps",
     "worker-sms",
     "redis_queue_length",
     NULL,
     NULL,
     1,
     {{"worker-sms", NULL, 3}}},
    {"root-scoped namespaces/NAME/METRIC",
     SM_QUERY_OBJECT,
     NULL,
     "namespaces",
     "prod",
     "http_rps",
     NULL,
     NULL,
     1,
     {{"prod", NULL, 0}}}, /* per-pod series are not summed */
};

static void run_ok_case(struct world *w, const struct ok_case *c)
{
	struct sm_selector *osel = c->object_selector ? parse(c->object_selector) : NULL;
	struct sm_selector *msel = c->metric_selector ? parse(c->metric_selector) : NULL;
	/* The request's strings live in a buffer that is scribbled over before the result is
	 * read: items must not borrow from the request. */
	char ns[64] = "", name[64] = "", resource[64] = "";
	struct sm_query q = {
	    .kind = c->kind,
	    .namespace = c->namespace ? ns : NULL,
	    .resource = c->resource ? resource : NULL,
	    .name = c->name ? name : NULL,
	    .metric = c->metric,
	    .object_selector = osel,
	    .metric_selector = msel,
	    .now_mono_ms = T0_MONO + 1000,
	};
	struct sm_query_result res = {0};
	struct sm_error err = {0};
	int r;

	(void)snprintf(ns, sizeof(ns), "%s", c->namespace ? c->namespace : "");
	(void)snprintf(resource, sizeof(resource), "%s", c->resource ? c->resource : "");
	(void)snprintf(name, sizeof(name), "%s", c->name ? c->name : "");
	r = sm_query_run(w->st, &q, &res, &err);
	memset(ns, 'x', sizeof(ns) - 1);
	memset(resource, 'x', sizeof(resource) - 1);
	memset(name, 'x', sizeof(name) - 1);

	if (r != 0)
		fail_msg("case '%s': returned %d (%s)", c->what, r, err.message);
	if (res.n_items != c->n_items)
		fail_msg("case '%s': %zu items, expected %zu", c->what, res.n_items, c->n_items);
	assert_int_equal(res.n_held, 1);
	assert_non_null(res.source);
	for (size_t i = 0; i < c->n_items; i++) {
		const struct sm_query_item *it = &res.items[i];
		const struct expect_item *e = &c->items[i];

		if (it->value != e->value)
			fail_msg("case '%s': item %zu value %g, expected %g", c->what, i, it->value,
			         e->value);
		if (strcmp(it->metric, c->metric) != 0)
			fail_msg("case '%s': item %zu metric '%s'", c->what, i, it->metric);
		if (it->is_fallback)
			fail_msg("case '%s': item %zu is a fallback", c->what, i);
		if (it->timestamp_wall_ms != T0_WALL)
			fail_msg("case '%s': item %zu timestamp %lld", c->what, i,
			         (long long)it->timestamp_wall_ms);
		if (!e->label_value && c->kind != SM_QUERY_EXTERNAL && it->n_labels != 0)
			fail_msg("case '%s': item %zu has labels", c->what, i);
		if (e->label_value &&
		    (it->n_labels != 1 || strcmp(it->labels[0].value, e->label_value) != 0))
			fail_msg("case '%s': item %zu labels differ (want %s)", c->what, i,
			         e->label_value);
		if (c->kind == SM_QUERY_EXTERNAL) {
			if (it->object.name || it->object.resource)
				fail_msg("case '%s': external item %zu has an object", c->what, i);
			continue;
		}
		if (!it->object.name || strcmp(it->object.name, e->object_name) != 0)
			fail_msg("case '%s': item %zu object '%s', expected '%s'", c->what, i,
			         it->object.name ? it->object.name : "(null)", e->object_name);
		if (c->kind == SM_QUERY_NAMESPACE ||
		    (c->resource && strcmp(c->resource, "namespaces") == 0)) {
			if (strcmp(it->object.resource, "namespaces") != 0 || it->object.namespace)
				fail_msg("case '%s': item %zu is not a namespace object", c->what,
				         i);
		} else {
			if (strcmp(it->object.resource, c->resource) != 0)
				fail_msg("case '%s': item %zu resource '%s'", c->what, i,
				         it->object.resource);
			if (!c->namespace && it->object.namespace)
				fail_msg("case '%s': item %zu has a namespace", c->what, i);
			if (c->namespace && (!it->object.namespace ||
			                     strcmp(it->object.namespace, c->namespace) != 0))
				fail_msg("case '%s': item %zu namespace not filled in", c->what, i);
		}
	}
	sm_query_result_done(&res);
	assert_null(res.items);
	assert_int_equal(res.n_items, 0);
	sm_selector_free(osel);
	sm_selector_free(msel);
}

static void test_ok_cases(void **state)
{
	struct world *w = *state;

	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++)
		run_ok_case(w, &ok_cases[i]);
}

/* ---- table of queries that fail ---- */

struct err_case {
	const char *what;
	enum sm_query_kind kind;
	const char *namespace;
	const char *resource;
	const char *name;
	const char *metric;
	int expected;
	const char *message;
};

static const struct err_case err_cases[] = {
    {"unknown metric, external", SM_QUERY_EXTERNAL, "default", NULL, NULL, "nope", -ENOENT,
     "the server could not find the metric nope for external metrics"},
    {"unknown metric, pods", SM_QUERY_OBJECTS, "prod", "pods", "*", "nope", -ENOENT,
     "the server could not find the metric nope for pods"},
    {"unknown metric, one object", SM_QUERY_OBJECT, "prod", "deployments.apps", "web", "nope",
     -ENOENT, "the server could not find the metric nope for deployments.apps web"},
    {"external in a namespace the source does not list", SM_QUERY_EXTERNAL, "kube-system", NULL,
     NULL, "redis_queue_length", -ENOENT,
     "the server could not find the metric redis_queue_length for external metrics"},
    {"pod series are not external in the source's other namespaces", SM_QUERY_EXTERNAL, "ops", NULL,
     NULL, "http_rps", -ENOENT,
     "the server could not find the metric http_rps for external metrics"},
    {"object not described by any series", SM_QUERY_OBJECT, "default", "deployments.apps",
     "worker-nope", "redis_queue_length", -ENOENT,
     "the server could not find the metric redis_queue_length for deployments.apps "
     "worker-nope"},
    {"object in a namespace the source does not list", SM_QUERY_OBJECT, "kube-system",
     "deployments.apps", "worker-sms", "redis_queue_length", -ENOENT,
     "the server could not find the metric redis_queue_length for deployments.apps "
     "worker-sms"},
    {"metric asked on the wrong resource", SM_QUERY_OBJECT, "default", "pods", "worker-sms",
     "redis_queue_length", -ENOENT,
     "the server could not find the metric redis_queue_length for pods worker-sms"},
    {"external-only metric asked as custom", SM_QUERY_OBJECTS, "default", "pods", "*",
     "jobs_backlog", -ENOENT, "the server could not find the metric jobs_backlog for pods"},
    {"pod in another namespace", SM_QUERY_OBJECT, "staging", "pods", "web-1", "http_rps", -ENOENT,
     "the server could not find the metric http_rps for pods web-1"},
    {"root-scoped pod: pod series are namespaced", SM_QUERY_OBJECT, NULL, "pods", "web-1",
     "http_rps", -ENOENT, "the server could not find the metric http_rps for pods web-1"},
    {"namespace total where the metric is not served", SM_QUERY_NAMESPACE, "nowhere", NULL, NULL,
     "redis_queue_length", -ENOENT,
     "the server could not find the metric redis_queue_length for namespaces nowhere"},
    {"never-run source", SM_QUERY_EXTERNAL, "ops", NULL, NULL, "pending_jobs", -EAGAIN,
     "metric 'pending_jobs' is unavailable: source 'app-db' has not completed a successful "
     "round yet: first round pending"},
    {"invalid query: no metric", SM_QUERY_EXTERNAL, "default", NULL, NULL, NULL, -EINVAL, NULL},
    {"invalid query: object without a name", SM_QUERY_OBJECT, "default", "pods", NULL, "http_rps",
     -EINVAL, NULL},
};

static void run_err_case(struct world *w, const struct err_case *c, int64_t now)
{
	struct sm_query q = {
	    .kind = c->kind,
	    .namespace = c->namespace,
	    .resource = c->resource,
	    .name = c->name,
	    .metric = c->metric,
	    .now_mono_ms = now,
	};
	struct sm_query_result res = {.n_items = 4242};
	struct sm_error err = {0};
	int r = sm_query_run(w->st, &q, &res, &err);

	if (r != c->expected)
		fail_msg("case '%s': returned %d, expected %d (%s)", c->what, r, c->expected,
		         err.message);
	if (c->message && strcmp(err.message, c->message) != 0)
		fail_msg("case '%s': message '%s'\n  expected '%s'", c->what, err.message,
		         c->message);
	if (res.n_items != 4242 || res.items)
		fail_msg("case '%s': result touched on failure", c->what);
}

static void test_err_cases(void **state)
{
	struct world *w = *state;

	for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++)
		run_err_case(w, &err_cases[i], T0_MONO + 1000);
}

/* ---- staleness ---- */

static int run_external(struct world *w, const char *ns, const char *metric, int64_t now,
                        struct sm_query_result *res, struct sm_error *err)
{
	struct sm_query q = {
	    .kind = SM_QUERY_EXTERNAL,
	    .namespace = ns,
	    .metric = metric,
	    .now_mono_ms = now,
	};

	return sm_query_run(w->st, &q, res, err);
}

static void test_stale_without_fallback(void **state)
{
	struct world *w = *state;
	struct sm_query_result res = {0};
	struct sm_error err = {0};

	/* Exactly max_age old: still served. */
	assert_int_equal(
	    run_external(w, "default", "redis_queue_length", T0_MONO + 15000, &res, &err), 0);
	assert_int_equal(res.n_items, 3);
	sm_query_result_done(&res);

	/* Older: 503 naming the source; no error text while rounds keep not finishing. */
	assert_int_equal(
	    run_external(w, "default", "redis_queue_length", T0_MONO + 42000, &res, &err), -EAGAIN);
	assert_string_equal(err.message,
	                    "metric 'redis_queue_length' is unavailable: source 'jobs' "
	                    "has had no successful round for 42s (max_age 15s)");

	assert_int_equal(
	    sm_store_publish_failure(w->st, SRC_JOBS, "Connection refused", T0_MONO + 20000), 0);
	assert_int_equal(
	    run_external(w, "default", "redis_queue_length", T0_MONO + 42000, &res, &err), -EAGAIN);
	assert_string_equal(err.message,
	                    "metric 'redis_queue_length' is unavailable: source 'jobs' "
	                    "has had no successful round for 42s (max_age 15s): "
	                    "Connection refused");

	/* Object queries too: staleness is decided before looking for the object. */
	{
		struct sm_query q = {
		    .kind = SM_QUERY_OBJECT,
		    .namespace = "default",
		    .resource = "deployments.apps",
		    .name = "worker-nope",
		    .metric = "redis_queue_length",
		    .now_mono_ms = T0_MONO + 42000,
		};

		assert_int_equal(sm_query_run(w->st, &q, &res, &err), -EAGAIN);
	}

	/* A failed round does not make a fresh answer stale before max_age. */
	assert_int_equal(
	    run_external(w, "default", "redis_queue_length", T0_MONO + 14000, &res, &err), 0);
	assert_int_equal(res.n_items, 3);
	sm_query_result_done(&res);

	/* max_age that is not whole seconds. */
	assert_int_equal(
	    sm_store_publish_success(w->st, SRC_DB, batch_of(NULL, 0), T0_MONO, T0_WALL), 0);
	assert_int_equal(run_external(w, "ops", "pending_jobs", T0_MONO + 31000, &res, &err),
	                 -EAGAIN);
	assert_string_equal(err.message,
	                    "metric 'pending_jobs' is unavailable: source 'app-db' has "
	                    "had no successful round for 31s (max_age 30500ms)");
}

static void test_never_succeeded(void **state)
{
	struct world *w = *state;
	struct sm_query_result res = {0};
	struct sm_error err = {0};

	assert_int_equal(
	    sm_store_publish_failure(w->st, SRC_DB, "password authentication failed", T0_MONO), 0);
	assert_int_equal(run_external(w, "ops", "pending_jobs", T0_MONO, &res, &err), -EAGAIN);
	assert_string_equal(err.message,
	                    "metric 'pending_jobs' is unavailable: source 'app-db' has "
	                    "not completed a successful round yet: password "
	                    "authentication failed");

	/* Fallback with no series ever known: the fallback stands for the metric. */
	assert_int_equal(run_external(w, "default", "cache_len", T0_MONO, &res, &err), 0);
	assert_int_equal(res.n_items, 1);
	assert_true(res.items[0].is_fallback);
	assert_true(res.items[0].value == 0);
	assert_int_equal(res.items[0].n_labels, 0);
	assert_string_equal(res.source, "cache");
	sm_query_result_done(&res);
}

static void test_fallback(void **state)
{
	struct world *w = *state;
	struct sm_query_result res = {0};
	struct sm_error err = {0};
	struct sm_query q = {
	    .kind = SM_QUERY_NAMESPACE,
	    .namespace = "default",
	    .metric = "jobs_backlog",
	    .now_mono_ms = T0_MONO + 16000,
	};

	/* Fresh: the real values. */
	assert_int_equal(run_external(w, "default", "jobs_backlog", T0_MONO, &res, &err), 0);
	assert_int_equal(res.n_items, 2);
	assert_true(res.items[0].value == 1);
	assert_false(res.items[0].is_fallback);
	assert_int_equal(res.items[0].window_s, 60); /* from the metric definition */
	sm_query_result_done(&res);

	/* Stale: the last known series, each with the fallback value. */
	assert_int_equal(run_external(w, "default", "jobs_backlog", T0_MONO + 16000, &res, &err),
	                 0);
	assert_int_equal(res.n_items, 2);
	for (size_t i = 0; i < res.n_items; i++) {
		assert_true(res.items[i].is_fallback);
		assert_true(res.items[i].value == 7);
	}
	assert_string_equal(res.items[0].labels[0].value, "a");
	assert_string_equal(res.items[1].labels[0].value, "b");
	sm_query_result_done(&res);

	/* A namespace total of a stale metric is the fallback, not a sum of fallbacks. */
	assert_int_equal(sm_query_run(w->st, &q, &res, &err), 0);
	assert_int_equal(res.n_items, 1);
	assert_true(res.items[0].is_fallback);
	assert_true(res.items[0].value == 7);
	sm_query_result_done(&res);
}

/* A result keeps its snapshot alive across publishes and store teardown order. */
static void test_result_holds_snapshot(void **state)
{
	struct world *w = *state;
	struct sm_query_result res = {0};
	struct sm_error err = {0};
	static const struct in_series next[] = {
	    {"redis_queue_length", "queue", "other", 99, NULL, NULL, NULL, NULL},
	};

	assert_int_equal(run_external(w, "default", "redis_queue_length", T0_MONO, &res, &err), 0);
	assert_int_equal(
	    sm_store_publish_success(w->st, SRC_JOBS, batch_of(next, 1), T0_MONO + 1, T0_WALL + 1),
	    0);
	assert_int_equal(sm_store_publish_failure(w->st, SRC_JOBS, "x", T0_MONO + 2), 0);
	assert_int_equal(res.n_items, 3);
	assert_string_equal(res.items[0].labels[0].name, "queue");
	assert_string_equal(res.items[0].labels[0].value, "emails");
	assert_string_equal(res.items[0].metric, "redis_queue_length");
	sm_query_result_done(&res);
	sm_query_result_done(&res); /* twice is harmless */
	sm_query_result_done(NULL);

	assert_int_equal(run_external(w, "default", "redis_queue_length", T0_MONO + 3, &res, &err),
	                 0);
	assert_int_equal(res.n_items, 1);
	assert_true(res.items[0].value == 99);
	sm_query_result_done(&res);
}

/* ---- empty queues and series that could not be read (docs/configuration.md "Empty queues and
 * failed series") ---- */

enum { QW_LEN, QW_FB, QW_SQL, QW_PLAIN, QW_IDX, QW_IDX_FB, QW_NOLABEL, QW_N };

struct queue_world {
	char *ns[1];
	struct sm_metric_def metrics[QW_N];
	struct sm_source_config source;
	struct sm_config cfg;
	struct sm_store *st;
};

static void add_queue(struct sm_batch *b, const char *metric, const char *queue, double value,
                      const char *error, bool partial)
{
	struct sm_label label = {"queue", queue};
	char name[64];
	struct sm_object_ref obj = {"deployments.apps", name, NULL};
	struct sm_series_in in = {
	    .metric = metric,
	    .labels = queue ? &label : NULL,
	    .n_labels = queue ? 1 : 0,
	    .value = value,
	    .object = queue && (strcmp(metric, "q_len") == 0 || strncmp(metric, "q_idx", 5) == 0)
	                  ? &obj
	                  : NULL,
	};

	(void)snprintf(name, sizeof(name), "worker-%s", queue ? queue : "");
	if (error)
		assert_int_equal(sm_batch_add_failure(b, &in, partial, error), 0);
	else
		assert_int_equal(sm_batch_add(b, &in), 0);
}

/* q_len (object worker-{queue}) and q_fb (fallback 9) are glob rules: an absent queue is
 * empty; q_plain is not (absent is absent). q_sql's query failed. q_idx (object
 * worker-{queue}) and q_idx_fb (the same with fallback 9) are a preset's queues whose index
 * could not be read: one failure with no label and no object (a rule-level failure, partial
 * labels), beside a queue another rule read. q_nolabel's failure has no label either, but
 * its labels are not partial. */
static struct queue_world *queue_world_new(size_t filler, size_t dropped)
{
	static struct queue_world w;
	struct sm_batch *b = sm_batch_new(1000);

	memset(&w, 0, sizeof(w));
	w.ns[0] = "default";
	w.metrics[QW_LEN] = (struct sm_metric_def){
	    .name = "q_len",
	    .scope = SM_METRIC_OBJECT,
	    .resource = "deployments.apps",
	    .zero_label = "queue",
	    .object_template = "worker-{queue}",
	};
	w.metrics[QW_FB] = (struct sm_metric_def){
	    .name = "q_fb", .fallback = {.set = true, .value = 9}, .zero_label = "queue"};
	w.metrics[QW_SQL] = (struct sm_metric_def){.name = "q_sql"};
	w.metrics[QW_PLAIN] = (struct sm_metric_def){.name = "q_plain"};
	w.metrics[QW_IDX] = (struct sm_metric_def){
	    .name = "q_idx",
	    .scope = SM_METRIC_OBJECT,
	    .resource = "deployments.apps",
	    .zero_label = "queue",
	    .object_template = "worker-{queue}",
	};
	w.metrics[QW_IDX_FB] = w.metrics[QW_IDX];
	w.metrics[QW_IDX_FB].name = "q_idx_fb";
	w.metrics[QW_IDX_FB].fallback = (struct sm_opt_double){.set = true, .value = 9};
	w.metrics[QW_NOLABEL] = (struct sm_metric_def){.name = "q_nolabel", .zero_label = "queue"};
	w.source = (struct sm_source_config){
	    .name = "queues",
	    .interval_ms = 5000,
	    .max_age_ms = 15000,
	    .namespaces = {w.ns, 1},
	    .metrics = w.metrics,
	    .n_metrics = QW_N,
	};
	w.cfg.sources = &w.source;
	w.cfg.n_sources = 1;
	w.st = sm_store_new(&w.cfg);
	assert_non_null(w.st);
	assert_non_null(b);
	for (size_t i = 0; i < filler; i++)
		add_queue(b, "filler", "emails", 1, NULL, false);
	add_queue(b, "q_len", "emails", 5, NULL, false);
	add_queue(b, "q_len", "sms", 2, NULL, false);
	add_queue(b, "q_len", "bad", 0, "key 'queue:bad' is a string, not a list", false);
	add_queue(b, "q_fb", "emails", 4, NULL, false);
	add_queue(b, "q_fb", "bad", 0, "key 'fb:bad' is a string, not a list", false);
	add_queue(b, "q_sql", NULL, 0, "query for 'q_sql' failed: relation \"t\" does not exist",
	          true);
	add_queue(b, "q_plain", "emails", 1, NULL, false);
	add_queue(b, "q_idx", "sms", 2, NULL, false);
	add_queue(b, "q_idx", NULL, 0, "key 'queues' is a string, not a set", true);
	add_queue(b, "q_idx_fb", NULL, 0, "key 'queues' is a string, not a set", true);
	add_queue(b, "q_nolabel", NULL, 0, "key 'idx' is a string, not a set", false);
	sm_batch_add_dropped(b, dropped);
	assert_int_equal(sm_store_publish_success(w.st, 0, b, T0_MONO, T0_WALL), 0);
	return &w;
}

static int queue_setup(void **state)
{
	*state = queue_world_new(0, 0);
	return 0;
}

static int queue_setup_indexed(void **state)
{
	struct queue_world *w = queue_world_new(4 * SM_SERIES_INDEX_MIN, 0);
	struct sm_snapshot *snap = sm_store_acquire(w->st, 0);

	assert_non_null(snap->index);
	sm_snapshot_unref(snap);
	*state = w;
	return 0;
}

static int queue_teardown(void **state)
{
	struct queue_world *w = *state;

	sm_store_free(w->st);
	return 0;
}

struct queue_case {
	const char *what;
	enum sm_query_kind kind;
	const char *name; /* OBJECT: the deployment; NULL: external (or OBJECTS with "*") */
	const char *metric;
	const char *selector;
	int expected;
	const char *message; /* -EAGAIN: the whole message */
	size_t n_items;
	/* Each item: "queue=V value" for external items, "OBJECT value" for objects; a '!'
	 * after the value marks a fallback. */
	const char *items[4];
};

static const struct queue_case queue_cases[] = {
    {"drained queue named by the selector: 0",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     "queue=gone",
     0,
     NULL,
     1,
     {"queue=gone 0"}},
    {"... with ==", SM_QUERY_EXTERNAL, NULL, "q_len", "queue==gone", 0, NULL, 1, {"queue=gone 0"}},
    {"... with in",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     "queue in (gone)",
     0,
     NULL,
     1,
     {"queue=gone 0"}},
    {"several named: the present and the absent",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     "queue in (emails,gone,zzz)",
     0,
     NULL,
     3,
     {"queue=emails 5", "queue=gone 0", "queue=zzz 0"}},
    {"a present queue: its value",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     "queue=sms",
     0,
     NULL,
     1,
     {"queue=sms 2"}},
    {"no value named: only what exists",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     "queue!=emails",
     0,
     NULL,
     1,
     {"queue=sms 2"}},
    {"no selector: what was read, without the failure",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     NULL,
     0,
     NULL,
     2,
     {"queue=emails 5", "queue=sms 2"}},
    {"the rest of the selector applies to the made-up series",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     "queue=gone,kind=lag",
     0,
     NULL,
     0,
     {NULL}},
    {"... and may keep it",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     "queue=gone,kind!=lag",
     0,
     NULL,
     1,
     {"queue=gone 0"}},
    {"a rule without zero_label: absent is absent",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_plain",
     "queue=gone",
     0,
     NULL,
     0,
     {NULL}},
    {"object of an absent queue: 0",
     SM_QUERY_OBJECT,
     "worker-gone",
     "q_len",
     NULL,
     0,
     NULL,
     1,
     {"worker-gone 0"}},
    {"object of a present queue",
     SM_QUERY_OBJECT,
     "worker-sms",
     "q_len",
     NULL,
     0,
     NULL,
     1,
     {"worker-sms 2"}},
    {"object, metric selector naming the object's own queue",
     SM_QUERY_OBJECT,
     "worker-gone",
     "q_len",
     "queue=gone",
     0,
     NULL,
     1,
     {"worker-gone 0"}},
    {"object, metric selector excluding the object's queue",
     SM_QUERY_OBJECT,
     "worker-gone",
     "q_len",
     "queue!=gone",
     -ENOENT,
     NULL,
     0,
     {NULL}},
    {"object of a present queue, selector excluding it",
     SM_QUERY_OBJECT,
     "worker-sms",
     "q_len",
     "queue=emails",
     -ENOENT,
     NULL,
     0,
     {NULL}},
    {"object name the template cannot give",
     SM_QUERY_OBJECT,
     "worker-",
     "q_len",
     NULL,
     -ENOENT,
     NULL,
     0,
     {NULL}},
    {"object name the template cannot give (prefix)",
     SM_QUERY_OBJECT,
     "other-gone",
     "q_len",
     NULL,
     -ENOENT,
     NULL,
     0,
     {NULL}},
    {"object name whose value is no label value",
     SM_QUERY_OBJECT,
     "worker-_x",
     "q_len",
     NULL,
     -ENOENT,
     NULL,
     0,
     {NULL}},
    {"objects, queues named",
     SM_QUERY_OBJECTS,
     NULL,
     "q_len",
     "queue in (gone,sms)",
     0,
     NULL,
     2,
     {"worker-gone 0", "worker-sms 2"}},
    {"objects, nothing named: what exists",
     SM_QUERY_OBJECTS,
     NULL,
     "q_len",
     NULL,
     0,
     NULL,
     2,
     {"worker-emails 5", "worker-sms 2"}},
    {"namespace total: unchanged",
     SM_QUERY_NAMESPACE,
     NULL,
     "q_len",
     "queue=gone",
     0,
     NULL,
     1,
     {"default 0"}},
    /* Series that could not be read. */
    {"failed queue named: 503 naming metric, source and error",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     "queue=bad",
     -EAGAIN,
     "metric 'q_len' is unavailable: source 'queues' could not read deployments.apps "
     "worker-bad, queue=bad: key 'queue:bad' is a string, not a list",
     0,
     {NULL}},
    {"failed queue named beside a read one",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     "queue in (bad,sms)",
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"failed queue excluded by the rest of the selector: not 0 either",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_len",
     "queue=bad,kind=lag",
     0,
     NULL,
     0,
     {NULL}},
    {"failed queue's object",
     SM_QUERY_OBJECT,
     "worker-bad",
     "q_len",
     NULL,
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"failed object named in a list",
     SM_QUERY_OBJECTS,
     NULL,
     "q_len",
     "queue=bad",
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"failed object named in a list beside a read one",
     SM_QUERY_OBJECTS,
     NULL,
     "q_len",
     "queue in (bad,emails)",
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"failed object excluded from a list",
     SM_QUERY_OBJECTS,
     NULL,
     "q_len",
     "queue in (emails,sms)",
     0,
     NULL,
     2,
     {"worker-emails 5", "worker-sms 2"}},
    {"namespace total with a failed part",
     SM_QUERY_NAMESPACE,
     NULL,
     "q_len",
     NULL,
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"namespace total, the failed part excluded",
     SM_QUERY_NAMESPACE,
     NULL,
     "q_len",
     "queue!=bad",
     0,
     NULL,
     1,
     {"default 7"}},
    {"failure with fallback: the fallback",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_fb",
     "queue=bad",
     0,
     NULL,
     1,
     {"queue=bad 9!"}},
    {"failure with fallback beside what was read",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_fb",
     NULL,
     0,
     NULL,
     2,
     {"queue=bad 9!", "queue=emails 4"}},
    {"with fallback, an absent queue is still 0",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_fb",
     "queue=gone",
     0,
     NULL,
     1,
     {"queue=gone 0"}},
    {"labels unknown: any selector",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_sql",
     "queue=emails",
     -EAGAIN,
     "metric 'q_sql' is unavailable: source 'queues' could not read it: query for 'q_sql' "
     "failed: relation \"t\" does not exist",
     0,
     {NULL}},
    {"labels unknown: no selector",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_sql",
     NULL,
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    /* A queue index that could not be read: any queue may hold jobs. */
    {"index unread, queue named: 503, not 0",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_idx",
     "queue=emails",
     -EAGAIN,
     "metric 'q_idx' is unavailable: source 'queues' could not read it: key 'queues' is a "
     "string, not a set",
     0,
     {NULL}},
    {"index unread, queues named",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_idx",
     "queue in (emails,sms)",
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"index unread, no value named: what was read",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_idx",
     "queue!=emails",
     0,
     NULL,
     1,
     {"queue=sms 2"}},
    {"index unread, object of an unread queue",
     SM_QUERY_OBJECT,
     "worker-emails",
     "q_idx",
     NULL,
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"index unread, object of a read queue: a part may be missing",
     SM_QUERY_OBJECT,
     "worker-sms",
     "q_idx",
     NULL,
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"index unread, objects, unread queue named",
     SM_QUERY_OBJECTS,
     NULL,
     "q_idx",
     "queue=emails",
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"index unread, objects, a read queue named beside",
     SM_QUERY_OBJECTS,
     NULL,
     "q_idx",
     "queue in (emails,sms)",
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"index unread, objects, nothing named: what was read",
     SM_QUERY_OBJECTS,
     NULL,
     "q_idx",
     NULL,
     0,
     NULL,
     1,
     {"worker-sms 2"}},
    {"index unread, namespace total",
     SM_QUERY_NAMESPACE,
     NULL,
     "q_idx",
     NULL,
     -EAGAIN,
     NULL,
     0,
     {NULL}},
    {"index unread with fallback: the object is the fallback",
     SM_QUERY_OBJECT,
     "worker-emails",
     "q_idx_fb",
     NULL,
     0,
     NULL,
     1,
     {"worker-emails 9!"}},
    {"failure without the zero label: no made-up 0",
     SM_QUERY_EXTERNAL,
     NULL,
     "q_nolabel",
     "queue=emails",
     0,
     NULL,
     0,
     {NULL}},
};

static void run_queue_case(struct queue_world *w, const struct queue_case *c, int64_t now)
{
	struct sm_selector *sel = c->selector ? parse(c->selector) : NULL;
	char ns[64] = "default", name[64] = "", sel_copy[128];
	struct sm_query q = {
	    .kind = c->kind,
	    .namespace = ns,
	    .resource = c->kind == SM_QUERY_EXTERNAL || c->kind == SM_QUERY_NAMESPACE
	                    ? NULL
	                    : "deployments.apps",
	    .name = c->name ? name : NULL,
	    .metric = c->metric,
	    .metric_selector = sel,
	    .now_mono_ms = now,
	    .now_wall_ms = T0_WALL + 1,
	};
	struct sm_query_result res = {.n_items = 4242};
	struct sm_error err = {0};
	int r;

	(void)snprintf(name, sizeof(name), "%s", c->name ? c->name : "");
	(void)snprintf(sel_copy, sizeof(sel_copy), "%s", c->selector ? c->selector : "");
	r = sm_query_run(w->st, &q, &res, &err);
	/* Items must not borrow from the request (its strings, its selector). */
	memset(ns, 'x', sizeof(ns) - 1);
	memset(name, 'x', sizeof(name) - 1);
	sm_selector_free(sel);

	if (r != c->expected)
		fail_msg("case '%s': returned %d, expected %d (%s)", c->what, r, c->expected,
		         err.message);
	if (r < 0) {
		if (c->message && strcmp(err.message, c->message) != 0)
			fail_msg("case '%s': message '%s'\n  expected '%s'", c->what, err.message,
			         c->message);
		if (r == -EAGAIN &&
		    (!strstr(err.message, c->metric) || !strstr(err.message, "source 'queues'")))
			fail_msg("case '%s': message '%s' names no metric or source", c->what,
			         err.message);
		if (res.n_items != 4242 || res.items)
			fail_msg("case '%s': result touched on failure", c->what);
		return;
	}
	if (res.n_items != c->n_items)
		fail_msg("case '%s': %zu items, expected %zu", c->what, res.n_items, c->n_items);
	for (size_t i = 0; i < c->n_items; i++) {
		const struct sm_query_item *it = &res.items[i];
		char got[160];

		if (c->kind == SM_QUERY_EXTERNAL)
			(void)snprintf(got, sizeof(got), "%s=%s %g%s",
			               it->n_labels ? it->labels[0].name : "",
			               it->n_labels ? it->labels[0].value : "", it->value,
			               it->is_fallback ? "!" : "");
		else
			(void)snprintf(got, sizeof(got), "%s %g%s", it->object.name, it->value,
			               it->is_fallback ? "!" : "");
		if (strcmp(got, c->items[i]) != 0)
			fail_msg("case '%s' (%s): item %zu is '%s', expected '%s'", c->what,
			         sel_copy, i, got, c->items[i]);
		if (strcmp(it->metric, c->metric) != 0)
			fail_msg("case '%s': item %zu metric '%s'", c->what, i, it->metric);
		if (it->timestamp_wall_ms != (it->is_fallback ? T0_WALL + 1 : T0_WALL))
			fail_msg("case '%s': item %zu timestamp %lld", c->what, i,
			         (long long)it->timestamp_wall_ms);
		if (c->kind == SM_QUERY_EXTERNAL && it->n_labels != 1)
			fail_msg("case '%s': item %zu has %zu labels", c->what, i, it->n_labels);
		if (c->kind == SM_QUERY_OBJECT || c->kind == SM_QUERY_OBJECTS) {
			if (strcmp(it->object.resource, "deployments.apps") != 0 ||
			    !it->object.namespace || strcmp(it->object.namespace, "default") != 0)
				fail_msg("case '%s': item %zu object %s in %s", c->what, i,
				         it->object.resource,
				         it->object.namespace ? it->object.namespace : "(null)");
		}
	}
	sm_query_result_done(&res);
}

static void test_queue_cases(void **state)
{
	struct queue_world *w = *state;

	for (size_t i = 0; i < sizeof(queue_cases) / sizeof(queue_cases[0]); i++)
		run_queue_case(w, &queue_cases[i], T0_MONO + 1000);
}

/* Stale: 503 (or the fallback) as before; no made-up 0, no failure told apart. */
static void test_queue_stale(void **state)
{
	struct queue_world *w = *state;
	static const struct queue_case cases[] = {
	    {"stale: absent queue",
	     SM_QUERY_EXTERNAL,
	     NULL,
	     "q_len",
	     "queue=gone",
	     -EAGAIN,
	     "metric 'q_len' is unavailable: source 'queues' has had no successful round for "
	     "21s (max_age 15s)",
	     0,
	     {NULL}},
	    {"stale: absent object",
	     SM_QUERY_OBJECT,
	     "worker-gone",
	     "q_len",
	     NULL,
	     -EAGAIN,
	     NULL,
	     0,
	     {NULL}},
	    {"stale: failed queue",
	     SM_QUERY_EXTERNAL,
	     NULL,
	     "q_len",
	     "queue=bad",
	     -EAGAIN,
	     "metric 'q_len' is unavailable: source 'queues' has had no successful round for "
	     "21s (max_age 15s)",
	     0,
	     {NULL}},
	    {"stale with fallback: every known series is the fallback",
	     SM_QUERY_EXTERNAL,
	     NULL,
	     "q_fb",
	     NULL,
	     0,
	     NULL,
	     1,
	     {"queue=emails 9!"}},
	    {"stale with fallback: no made-up series",
	     SM_QUERY_EXTERNAL,
	     NULL,
	     "q_fb",
	     "queue=gone",
	     0,
	     NULL,
	     0,
	     {NULL}},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_queue_case(w, &cases[i], T0_MONO + 21000);
}

/* Series dropped by max_series: an absent queue may be one that was not read. */
static void test_queue_dropped(void **state)
{
	struct queue_world *w = queue_world_new(0, 3);
	static const struct queue_case cases[] = {
	    {"dropped: no made-up 0",
	     SM_QUERY_EXTERNAL,
	     NULL,
	     "q_len",
	     "queue=gone",
	     0,
	     NULL,
	     0,
	     {NULL}},
	    {"dropped: object unknown",
	     SM_QUERY_OBJECT,
	     "worker-gone",
	     "q_len",
	     NULL,
	     -ENOENT,
	     NULL,
	     0,
	     {NULL}},
	    {"dropped: present queues as before",
	     SM_QUERY_EXTERNAL,
	     NULL,
	     "q_len",
	     "queue=sms",
	     0,
	     NULL,
	     1,
	     {"queue=sms 2"}},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_queue_case(w, &cases[i], T0_MONO + 1000);
	sm_store_free(w->st);
}

static void count_metric(const struct sm_metric_def *def, void *userdata)
{
	size_t *n = userdata;

	assert_non_null(def->name);
	(*n)++;
}

static void test_for_each_metric(void **state)
{
	struct world *w = *state;
	size_t n = 0;

	sm_query_for_each_metric(w->st, count_metric, &n);
	assert_int_equal(n, 5);
}

/* ---- a metric name shared by sources of disjoint namespaces ---- */

/* Two sources, one per team, serve the same three metrics (external, on deployments, on pods)
 * with different values; the config allows it because their namespaces are disjoint. Team b's
 * pods are in team-b while its source lists ops-b. */
enum { SH_A, SH_B, SH_N };

struct shared_world {
	char *ns_a[1];
	char *ns_b[1];
	struct sm_metric_def metrics[SH_N][3];
	struct sm_source_config sources[SH_N];
	struct sm_config cfg;
	struct sm_store *st;
};

static void shared_world_init(struct shared_world *w)
{
	static const struct in_series a[] = {
	    {"jobs_waiting", "queue", "emails", 5, NULL, NULL, NULL, NULL},
	    {"worker_backlog", "queue", "emails", 6, "deployments.apps", "worker", NULL, NULL},
	    {"http_rps", NULL, NULL, 10, NULL, NULL, NULL, NULL},
	    {"http_rps", NULL, NULL, 10, "pods", "web-a", "team-a", "web"},
	};
	static const struct in_series b[] = {
	    {"jobs_waiting", "queue", "emails", 50, NULL, NULL, NULL, NULL},
	    {"jobs_waiting", "queue", "sms", 1, NULL, NULL, NULL, NULL},
	    {"worker_backlog", "queue", "emails", 60, "deployments.apps", "worker", NULL, NULL},
	    {"http_rps", NULL, NULL, 100, NULL, NULL, NULL, NULL},
	    {"http_rps", NULL, NULL, 100, "pods", "web-b", "team-b", "web"},
	};

	memset(w, 0, sizeof(*w));
	w->ns_a[0] = "team-a";
	w->ns_b[0] = "ops-b";
	for (size_t i = 0; i < SH_N; i++) {
		w->metrics[i][0] = (struct sm_metric_def){.name = "jobs_waiting"};
		w->metrics[i][1] = (struct sm_metric_def){.name = "worker_backlog",
		                                          .scope = SM_METRIC_OBJECT,
		                                          .resource = "deployments.apps"};
		w->metrics[i][2] =
		    (struct sm_metric_def){.name = "http_rps",
		                           .scope = SM_METRIC_PODS,
		                           .pods_namespace = i == SH_A ? "team-a" : "team-b"};
		w->sources[i] = (struct sm_source_config){
		    .name = i == SH_A ? "team-a-jobs" : "team-b-jobs",
		    .interval_ms = 5000,
		    .max_age_ms = 15000,
		    .namespaces = {i == SH_A ? w->ns_a : w->ns_b, 1},
		    .metrics = w->metrics[i],
		    .n_metrics = 3,
		};
	}
	w->cfg.sources = w->sources;
	w->cfg.n_sources = SH_N;
	w->st = sm_store_new(&w->cfg);
	assert_non_null(w->st);
	assert_int_equal(sm_store_publish_success(w->st, SH_A, batch_of(a, 4), T0_MONO, T0_WALL),
	                 0);
	/* b's last round is 5s older than a's, so b turns stale first. */
	assert_int_equal(
	    sm_store_publish_success(w->st, SH_B, batch_of(b, 5), T0_MONO - 5000, T0_WALL), 0);
}

/* Runs q in ns and checks the answering source and the items' values (in answer order). */
static void expect_shared(struct shared_world *w, struct sm_query q, const char *ns,
                          const char *source, const double *values, size_t n)
{
	struct sm_query_result res = {0};
	struct sm_error err = {0};
	int r;

	q.namespace = ns;
	q.now_mono_ms = T0_MONO;
	r = sm_query_run(w->st, &q, &res, &err);
	if (r != 0)
		fail_msg("%s in %s: returned %d (%s)", q.metric, ns, r, err.message);
	assert_string_equal(res.source, source);
	if (res.n_items != n)
		fail_msg("%s in %s: %zu items, want %zu", q.metric, ns, res.n_items, n);
	for (size_t i = 0; i < n; i++)
		if (res.items[i].value != values[i])
			fail_msg("%s in %s: item %zu is %g, want %g", q.metric, ns, i,
			         res.items[i].value, values[i]);
	sm_query_result_done(&res);
}

static void test_shared_name(void **state)
{
	struct shared_world w;
	struct sm_query ext = {.kind = SM_QUERY_EXTERNAL, .metric = "jobs_waiting"};
	struct sm_query total = {.kind = SM_QUERY_NAMESPACE, .metric = "jobs_waiting"};
	struct sm_query object = {.kind = SM_QUERY_OBJECT,
	                          .resource = "deployments.apps",
	                          .name = "worker",
	                          .metric = "worker_backlog"};
	struct sm_query pods = {.kind = SM_QUERY_OBJECTS, .resource = "pods", .metric = "http_rps"};
	struct sm_query pods_ext = {.kind = SM_QUERY_EXTERNAL, .metric = "http_rps"};
	struct sm_query_result res = {.n_items = 4242};
	struct sm_error err = {0};

	(void)state;
	shared_world_init(&w);

	expect_shared(&w, ext, "team-a", "team-a-jobs", (double[]){5}, 1);
	expect_shared(&w, ext, "ops-b", "team-b-jobs", (double[]){50, 1}, 2);
	expect_shared(&w, total, "team-a", "team-a-jobs", (double[]){5}, 1);
	expect_shared(&w, total, "ops-b", "team-b-jobs", (double[]){51}, 1);
	expect_shared(&w, object, "team-a", "team-a-jobs", (double[]){6}, 1);
	expect_shared(&w, object, "ops-b", "team-b-jobs", (double[]){60}, 1);
	/* Pods: each source answers in its pods' namespace, the aggregate in its namespaces. */
	expect_shared(&w, pods, "team-a", "team-a-jobs", (double[]){10}, 1);
	expect_shared(&w, pods, "team-b", "team-b-jobs", (double[]){100}, 1);
	expect_shared(&w, pods_ext, "ops-b", "team-b-jobs", (double[]){100}, 1);

	/* A namespace neither serves it in: the same 404 as for one source. */
	ext.namespace = "team-c";
	ext.now_mono_ms = T0_MONO;
	assert_int_equal(sm_query_run(w.st, &ext, &res, &err), -ENOENT);
	assert_string_equal(
	    err.message, "the server could not find the metric jobs_waiting for external metrics");
	assert_int_equal(res.n_items, 4242);

	/* Staleness is the answering source's own: b is stale, a still fresh. */
	ext.namespace = "ops-b";
	ext.now_mono_ms = T0_MONO + 12000;
	assert_int_equal(sm_query_run(w.st, &ext, &res, &err), -EAGAIN);
	assert_string_equal(err.message,
	                    "metric 'jobs_waiting' is unavailable: source 'team-b-jobs' has had no "
	                    "successful round for 17s (max_age 15s)");
	ext.namespace = "team-a";
	res = (struct sm_query_result){0};
	assert_int_equal(sm_query_run(w.st, &ext, &res, &err), 0);
	assert_string_equal(res.source, "team-a-jobs");
	sm_query_result_done(&res);

	sm_store_free(w.st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ok_cases, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_err_cases, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ok_cases, setup_indexed, teardown),
	    cmocka_unit_test_setup_teardown(test_err_cases, setup_indexed, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_without_fallback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_never_succeeded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fallback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_result_holds_snapshot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_for_each_metric, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_cases, queue_setup, queue_teardown),
	    cmocka_unit_test_setup_teardown(test_queue_cases, queue_setup_indexed, queue_teardown),
	    cmocka_unit_test_setup_teardown(test_queue_stale, queue_setup, queue_teardown),
	    cmocka_unit_test(test_queue_dropped),
	    cmocka_unit_test(test_shared_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
