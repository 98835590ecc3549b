/* SPDX-License-Identifier: MIT */
/* The API layer end to end (router, discovery, encoders, Status errors) against a hand-built
 * config and a store with published batches; plus the encoders on hand-made query results. */
/* cmocka needs setjmp.h, stdarg.h and stddef.h before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/config.h"
#include "scalemetrics/query.h"
#include "scalemetrics/resource-kind.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series.h"
#include "scalemetrics/store.h"

#include "../../src/api/api-internal.h"

/* 2024-05-01T12:00:00Z */
#define WALL_MS 1714564800000LL
#define MONO_MS 1000000LL

#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"

/* ---- fixture: a config with four sources, a store with their first rounds ---- */

static char *namespaces[] = {"default", "prod"};

static struct sm_metric_def jobs_metrics[] = {
    {.name = "queue_length", .scope = SM_METRIC_EXTERNAL},
    {.name = "queue_rate",
     .scope = SM_METRIC_OBJECT,
     .resource = "deployments.apps",
     .window_s = 60},
    {.name = "node_temp", .scope = SM_METRIC_OBJECT, .resource = "nodes"},
};
static struct sm_metric_def web_metrics[] = {
    {.name = "http_requests", .scope = SM_METRIC_PODS, .window_s = 60},
};
static struct sm_metric_def db_metrics[] = {
    {.name = "pending_jobs", .scope = SM_METRIC_EXTERNAL, .fallback = {.set = true}},
};
static struct sm_metric_def cache_metrics[] = {
    {.name = "cache_hits", .scope = SM_METRIC_EXTERNAL},
};

#define SOURCE(NAME, METRICS)                                                                      \
	{                                                                                          \
		.name = NAME, .type = "test", .interval_ms = 5000, .timeout_ms = 1000,             \
		.max_age_ms = 15000, .namespaces = {.v = namespaces, .n = 2}, .max_series = 100,   \
		.metrics = METRICS, .n_metrics = sizeof(METRICS) / sizeof(METRICS[0]),             \
	}

static struct sm_source_config sources[] = {
    SOURCE("jobs", jobs_metrics),
    SOURCE("web", web_metrics),
    SOURCE("db", db_metrics),
    SOURCE("cache", cache_metrics),
};

static struct sm_config config = {
    .path = "test.yaml",
    .server = {.namespace = "default"},
    .sources = sources,
    .n_sources = sizeof(sources) / sizeof(sources[0]),
};

struct fixture {
	struct sm_store *store;
	struct sm_api_context ctx;
};

static void add(struct sm_batch *b, const struct sm_series_in *in)
{
	assert_int_equal(sm_batch_add(b, in), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sm_batch *b;

	assert_non_null(f);
	f->store = sm_store_new(&config);
	assert_non_null(f->store);
	f->ctx =
	    (struct sm_api_context){.store = f->store, .version = "0.1.0", .git_commit = "abc1234"};

	/* jobs: an external metric, an object metric on a deployment, one on a node. */
	b = sm_batch_new(100);
	add(b, &(struct sm_series_in){.metric = "queue_length",
	                              .labels = (struct sm_label[]){{"queue", "emails"}},
	                              .n_labels = 1,
	                              .value = 42});
	add(b,
	    &(struct sm_series_in){.metric = "queue_length",
	                           .labels = (struct sm_label[]){{"queue", "jobs"}, {"shard", "2"}},
	                           .n_labels = 2,
	                           .value = 8});
	add(b,
	    &(struct sm_series_in){.metric = "queue_rate",
	                           .labels = (struct sm_label[]){{"queue", "emails"}},
	                           .n_labels = 1,
	                           .value = 42.5,
	                           .object = &(struct sm_object_ref){.resource = "deployments.apps",
	                                                             .name = "worker",
	                                                             .namespace = "default"},
	                           .window_s = 60});
	add(b, &(struct sm_series_in){
	           .metric = "node_temp",
	           .value = 55,
	           .object = &(struct sm_object_ref){.resource = "nodes", .name = "n1"}});
	assert_int_equal(sm_store_publish_success(f->store, 0, b, MONO_MS, WALL_MS), 0);

	/* web: three pods in default, two of them app=web. */
	b = sm_batch_new(100);
	add(b, &(struct sm_series_in){.metric = "http_requests",
	                              .labels = (struct sm_label[]){{"tier", "a"}},
	                              .n_labels = 1,
	                              .value = 1.5,
	                              .object = &(struct sm_object_ref){.resource = "pods",
	                                                                .name = "web-1",
	                                                                .namespace = "default"},
	                              .object_labels = (struct sm_label[]){{"app", "web"}},
	                              .n_object_labels = 1,
	                              .window_s = 60});
	add(b, &(struct sm_series_in){.metric = "http_requests",
	                              .labels = (struct sm_label[]){{"tier", "c"}},
	                              .n_labels = 1,
	                              .value = 2,
	                              .object = &(struct sm_object_ref){.resource = "pods",
	                                                                .name = "web-2",
	                                                                .namespace = "default"},
	                              .object_labels = (struct sm_label[]){{"app", "web"}},
	                              .n_object_labels = 1,
	                              .window_s = 60});
	add(b, &(struct sm_series_in){.metric = "http_requests",
	                              .labels = (struct sm_label[]){{"tier", "a"}},
	                              .n_labels = 1,
	                              .value = 3,
	                              .object = &(struct sm_object_ref){.resource = "pods",
	                                                                .name = "other-1",
	                                                                .namespace = "default"},
	                              .object_labels = (struct sm_label[]){{"app", "other"}},
	                              .n_object_labels = 1,
	                              .window_s = 60});
	assert_int_equal(sm_store_publish_success(f->store, 1, b, MONO_MS, WALL_MS), 0);

	/* db and cache never succeed: db has a fallback, cache does not. */
	assert_int_equal(sm_store_publish_failure(f->store, 2, "connection refused", MONO_MS), 0);
	assert_int_equal(
	    sm_store_publish_failure(f->store, 3, "dial tcp 10.0.0.1:6379: timeout", MONO_MS), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sm_store_free(f->store);
	free(f);
	return 0;
}

/* ---- request helpers ---- */

struct reply {
	struct sm_api_response r;
	cJSON *json; /* parsed body when JSON */
};

static struct reply request(const struct sm_api_context *ctx, const char *method, const char *path,
                            const char *query, const char *accept)
{
	struct sm_api_request req = {
	    .method = method,
	    .path = path,
	    .query = query,
	    .accept = accept,
	    .now_mono_ms = MONO_MS + 1000,
	    .now_wall_ms = WALL_MS + 1000,
	};
	struct reply rep = {0};

	assert_int_equal(sm_api_handle(ctx, &req, &rep.r), 0);
	assert_non_null(rep.r.content_type);
	assert_non_null(rep.r.body);
	assert_int_equal(strlen(rep.r.body), rep.r.body_len);
	if (strcmp(rep.r.content_type, CT_JSON) == 0) {
		rep.json = cJSON_Parse(rep.r.body);
		if (!rep.json)
			fail_msg("%s: body is not JSON: %s", path, rep.r.body);
	}
	return rep;
}

static struct reply get(const struct fixture *f, const char *path, const char *query)
{
	return request(&f->ctx, "GET", path, query, NULL);
}

static void reply_done(struct reply *rep)
{
	cJSON_Delete(rep->json);
	sm_api_response_done(&rep->r);
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *item(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* A Status document with this code and reason, whose message contains `needle`. */
static void expect_status(const char *what, struct reply *rep, int code, const char *reason,
                          const char *needle)
{
	const char *msg;

	if (rep->r.status != code)
		fail_msg("%s: status %d, want %d (%s)", what, rep->r.status, code, rep->r.body);
	assert_string_equal(rep->r.content_type, CT_JSON);
	assert_non_null(rep->json);
	assert_string_equal(str(rep->json, "kind"), "Status");
	assert_string_equal(str(rep->json, "apiVersion"), "v1");
	assert_true(cJSON_IsObject(item(rep->json, "metadata")));
	assert_string_equal(str(rep->json, "status"), "Failure");
	assert_string_equal(str(rep->json, "reason"), reason);
	assert_string_equal(rep->r.reason, reason);
	assert_int_equal(cJSON_GetNumberValue(item(rep->json, "code")), code);
	msg = str(rep->json, "message");
	assert_non_null(msg);
	if (needle && !strstr(msg, needle))
		fail_msg("%s: message '%s' lacks '%s'", what, msg, needle);
	assert_null(item(rep->json, "retryAfterSeconds"));
	assert_null(item(rep->json, "details"));
}

/* ---- discovery ---- */

static void check_gv(const cJSON *gv, const char *group, const char *version)
{
	char want[128];

	(void)snprintf(want, sizeof(want), "%s/%s", group, version);
	assert_string_equal(str(gv, "groupVersion"), want);
	assert_string_equal(str(gv, "version"), version);
}

static void check_group(const cJSON *g, const char *name, const char *const *versions, size_t n)
{
	const cJSON *vs = item(g, "versions");

	assert_string_equal(str(g, "name"), name);
	assert_int_equal(cJSON_GetArraySize(vs), n);
	for (size_t i = 0; i < n; i++)
		check_gv(cJSON_GetArrayItem(vs, (int)i), name, versions[i]);
	check_gv(item(g, "preferredVersion"), name, versions[0]);
}

static const char *const custom_versions[] = {"v1beta2", "v1beta1"};
static const char *const external_versions[] = {"v1beta1"};

static void test_group_list(void **state)
{
	const char *accepts[] = {
	    NULL, "application/json",
	    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"};

	for (size_t i = 0; i < sizeof(accepts) / sizeof(accepts[0]); i++) {
		struct fixture *f = *state;
		struct reply rep = request(&f->ctx, "GET", "/apis", NULL, accepts[i]);
		const cJSON *groups;

		assert_int_equal(rep.r.status, 200);
		assert_string_equal(rep.r.content_type, "application/json");
		assert_string_equal(rep.r.route, "discovery");
		assert_string_equal(str(rep.json, "kind"), "APIGroupList");
		assert_string_equal(str(rep.json, "apiVersion"), "v1");
		groups = item(rep.json, "groups");
		assert_int_equal(cJSON_GetArraySize(groups), 2);
		check_group(cJSON_GetArrayItem(groups, 0), "custom.metrics.k8s.io", custom_versions,
		            2);
		check_group(cJSON_GetArrayItem(groups, 1), "external.metrics.k8s.io",
		            external_versions, 1);
		assert_null(item(cJSON_GetArrayItem(groups, 0), "kind"));
		reply_done(&rep);
	}
}

static void test_group(void **state)
{
	struct fixture *f = *state;
	struct reply rep = get(f, "/apis/custom.metrics.k8s.io", NULL);

	assert_int_equal(rep.r.status, 200);
	assert_string_equal(
	    rep.r.body, "{\"kind\":\"APIGroup\",\"apiVersion\":\"v1\",\"name\":\"custom.metrics."
	                "k8s.io\",\"versions\":[{\"groupVersion\":\"custom.metrics.k8s.io/"
	                "v1beta2\",\"version\":\"v1beta2\"},{\"groupVersion\":\"custom.metrics."
	                "k8s.io/v1beta1\",\"version\":\"v1beta1\"}],\"preferredVersion\":{"
	                "\"groupVersion\":\"custom.metrics.k8s.io/v1beta2\",\"version\":"
	                "\"v1beta2\"}}");
	reply_done(&rep);

	rep = get(f, "/apis/external.metrics.k8s.io", NULL);
	assert_int_equal(rep.r.status, 200);
	assert_string_equal(str(rep.json, "kind"), "APIGroup");
	check_group(rep.json, "external.metrics.k8s.io", external_versions, 1);
	reply_done(&rep);
}

struct want_resource {
	const char *name;
	bool namespaced;
};

static void check_resource_list(const char *what, const cJSON *doc, const char *gv,
                                const char *kind, const struct want_resource *want, size_t n)
{
	const cJSON *res = item(doc, "resources");
	const cJSON *r;
	size_t i = 0;

	assert_string_equal(str(doc, "kind"), "APIResourceList");
	assert_string_equal(str(doc, "apiVersion"), "v1");
	assert_string_equal(str(doc, "groupVersion"), gv);
	if ((size_t)cJSON_GetArraySize(res) != n)
		fail_msg("%s: %d resources, want %zu", what, cJSON_GetArraySize(res), n);
	cJSON_ArrayForEach(r, res)
	{
		const cJSON *verbs = item(r, "verbs");
		const cJSON *other;

		assert_string_equal(str(r, "name"), want[i].name);
		assert_string_equal(str(r, "singularName"), "");
		assert_true(cJSON_IsBool(item(r, "namespaced")));
		if (cJSON_IsTrue(item(r, "namespaced")) != want[i].namespaced)
			fail_msg("%s: %s namespaced wrong", what, want[i].name);
		assert_string_equal(str(r, "kind"), kind);
		assert_int_equal(cJSON_GetArraySize(verbs), 1);
		assert_string_equal(cJSON_GetArrayItem(verbs, 0)->valuestring, "get");
		assert_null(item(r, "group"));
		assert_null(item(r, "version"));
		/* Sorted, unique, and one scope per resource prefix (docs/api.md "Aggregated
		 * discovery and resource scopes"). */
		if (i > 0)
			assert_true(strcmp(want[i - 1].name, want[i].name) < 0);
		cJSON_ArrayForEach(other, res)
		{
			const char *a = str(r, "name"), *b = str(other, "name");
			size_t pa = strcspn(a, "/"), pb = strcspn(b, "/");

			if (pa == pb && strncmp(a, b, pa) == 0 &&
			    cJSON_IsTrue(item(r, "namespaced")) !=
			        cJSON_IsTrue(item(other, "namespaced")))
				fail_msg("%s: %s and %s disagree on namespaced", what, a, b);
		}
		i++;
	}
}

static void test_resource_lists(void **state)
{
	static const struct want_resource custom[] = {
	    {"deployments.apps/queue_rate", true}, {"namespaces/cache_hits", false},
	    {"namespaces/http_requests", false},   {"namespaces/node_temp", false},
	    {"namespaces/pending_jobs", false},    {"namespaces/queue_length", false},
	    {"namespaces/queue_rate", false},      {"nodes/node_temp", false},
	    {"pods/http_requests", true},
	};
	static const struct want_resource external[] = {
	    {"cache_hits", true},   {"http_requests", true}, {"node_temp", true},
	    {"pending_jobs", true}, {"queue_length", true},  {"queue_rate", true},
	};
	static const struct {
		const char *path, *query, *gv, *kind;
		const struct want_resource *want;
		size_t n;
	} cases[] = {
	    {"/apis/custom.metrics.k8s.io/v1beta1", NULL, "custom.metrics.k8s.io/v1beta1",
	     "MetricValueList", custom, 9},
	    {"/apis/custom.metrics.k8s.io/v1beta2", "timeout=32s", "custom.metrics.k8s.io/v1beta2",
	     "MetricValueList", custom, 9},
	    {"/apis/custom.metrics.k8s.io/v1beta2/", NULL, "custom.metrics.k8s.io/v1beta2",
	     "MetricValueList", custom, 9},
	    {"/apis/external.metrics.k8s.io/v1beta1", "pretty=true&timeout=32s",
	     "external.metrics.k8s.io/v1beta1", "ExternalMetricValueList", external, 6},
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reply rep =
		    request(&f->ctx, "GET", cases[i].path, cases[i].query, "application/json");

		if (rep.r.status != 200)
			fail_msg("%s: status %d", cases[i].path, rep.r.status);
		assert_string_equal(rep.r.content_type, "application/json");
		check_resource_list(cases[i].path, rep.json, cases[i].gv, cases[i].kind,
		                    cases[i].want, cases[i].n);
		reply_done(&rep);
	}
}

/* ---- external ---- */

static void test_external(void **state)
{
	struct fixture *f = *state;
	struct reply rep;
	const cJSON *items;

	rep = get(f, "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_length", NULL);
	assert_int_equal(rep.r.status, 200);
	assert_string_equal(rep.r.route, "external");
	assert_string_equal(str(rep.json, "kind"), "ExternalMetricValueList");
	assert_string_equal(str(rep.json, "apiVersion"), "external.metrics.k8s.io/v1beta1");
	items = item(rep.json, "items");
	assert_int_equal(cJSON_GetArraySize(items), 2);
	reply_done(&rep);

	rep = get(f, "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/queue_length",
	          "labelSelector=queue%3Demails");
	assert_int_equal(rep.r.status, 200);
	assert_string_equal(
	    rep.r.body, "{\"kind\":\"ExternalMetricValueList\",\"apiVersion\":\"external.metrics."
	                "k8s.io/v1beta1\",\"metadata\":{},\"items\":[{\"metricName\":\"queue_"
	                "length\",\"metricLabels\":{\"queue\":\"emails\"},\"timestamp\":\"2024-"
	                "05-01T12:00:00Z\",\"value\":\"42\"}]}");
	reply_done(&rep);

	/* Form decoding: '+' is a space, %28 %2C %29 are ( , ). */
	rep = get(f, "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_length",
	          "labelSelector=queue+in+%28jobs%2Cx%29&labelSelector=queue%3Demails");
	assert_int_equal(rep.r.status, 200);
	items = item(rep.json, "items");
	assert_int_equal(cJSON_GetArraySize(items), 1);
	assert_string_equal(str(item(cJSON_GetArrayItem(items, 0), "metricLabels"), "shard"), "2");
	reply_done(&rep);

	/* A selector matching nothing: an empty list. */
	rep = get(f, "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_length",
	          "labelSelector=queue%3Dnone");
	assert_int_equal(rep.r.status, 200);
	assert_int_equal(cJSON_GetArraySize(item(rep.json, "items")), 0);
	reply_done(&rep);
}

/* ---- custom ---- */

static void test_custom_pods_v1beta1(void **state)
{
	static const char *const paths[] = {
	    "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/%2A/http_requests",
	    "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/http_requests",
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < 2; i++) {
		struct reply rep = get(f, paths[i], "labelSelector=app%3Dweb");
		const cJSON *items, *it;
		size_t seen = 0;

		if (rep.r.status != 200)
			fail_msg("%s: %d %s", paths[i], rep.r.status, rep.r.body);
		assert_string_equal(rep.r.route, "custom");
		assert_string_equal(str(rep.json, "kind"), "MetricValueList");
		assert_string_equal(str(rep.json, "apiVersion"), "custom.metrics.k8s.io/v1beta1");
		assert_true(cJSON_IsObject(item(rep.json, "metadata")));
		items = item(rep.json, "items");
		assert_int_equal(cJSON_GetArraySize(items), 2);
		cJSON_ArrayForEach(it, items)
		{
			const cJSON *obj = item(it, "describedObject");
			const char *name = str(obj, "name");

			assert_string_equal(str(obj, "kind"), "Pod");
			assert_string_equal(str(obj, "apiVersion"), "v1");
			assert_string_equal(str(obj, "namespace"), "default");
			assert_string_equal(str(it, "metricName"), "http_requests");
			assert_string_equal(str(it, "timestamp"), "2024-05-01T12:00:00Z");
			assert_int_equal(cJSON_GetNumberValue(item(it, "window")), 60);
			assert_null(item(it, "windowSeconds"));
			assert_true(cJSON_IsNull(item(it, "selector")));
			if (strcmp(name, "web-1") == 0) {
				assert_string_equal(str(it, "value"), "1500m");
				seen |= 1;
			} else if (strcmp(name, "web-2") == 0) {
				assert_string_equal(str(it, "value"), "2");
				seen |= 2;
			}
		}
		assert_int_equal(seen, 3);
		reply_done(&rep);
	}
}

static void test_custom_metric_selector(void **state)
{
	struct fixture *f = *state;
	struct reply rep;
	const cJSON *items, *sel;

	/* v1beta2, `tier in (a,b)` form-encoded. */
	rep =
	    get(f, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/http_requests",
	        "labelSelector=app%3Dweb&metricLabelSelector=tier+in+%28a%2Cb%29");
	assert_int_equal(rep.r.status, 200);
	assert_string_equal(str(rep.json, "apiVersion"), "custom.metrics.k8s.io/v1beta2");
	items = item(rep.json, "items");
	assert_int_equal(cJSON_GetArraySize(items), 1);
	assert_string_equal(str(item(cJSON_GetArrayItem(items, 0), "describedObject"), "name"),
	                    "web-1");
	assert_int_equal(cJSON_GetNumberValue(item(cJSON_GetArrayItem(items, 0), "windowSeconds")),
	                 60);
	assert_null(item(cJSON_GetArrayItem(items, 0), "window"));
	assert_null(item(cJSON_GetArrayItem(items, 0), "metricName"));
	sel = item(item(cJSON_GetArrayItem(items, 0), "metric"), "selector");
	{
		char *s = cJSON_PrintUnformatted(sel);

		assert_string_equal(
		    s, "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\",\"values\":"
		       "[\"a\",\"b\"]}]}");
		free(s);
	}
	reply_done(&rep);
}

static void test_custom_object_v1beta2(void **state)
{
	struct fixture *f = *state;
	struct reply rep;

	rep = get(f,
	          "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/"
	          "worker/queue_rate",
	          "metricLabelSelector=queue%3Demails");
	assert_int_equal(rep.r.status, 200);
	assert_string_equal(
	    rep.r.body,
	    "{\"kind\":\"MetricValueList\",\"apiVersion\":\"custom.metrics.k8s.io/v1beta2\","
	    "\"metadata\":{},\"items\":[{\"describedObject\":{\"kind\":\"Deployment\","
	    "\"namespace\":\"default\",\"name\":\"worker\",\"apiVersion\":\"apps/v1\"},"
	    "\"metric\":{\"name\":\"queue_rate\",\"selector\":{\"matchLabels\":{\"queue\":"
	    "\"emails\"}}},\"timestamp\":\"2024-05-01T12:00:00Z\",\"windowSeconds\":60,"
	    "\"value\":\"42500m\"}]}");
	reply_done(&rep);

	/* The same in v1beta1: window, metricName, selector. */
	rep = get(f,
	          "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/deployments.apps/"
	          "worker/queue_rate",
	          "metricLabelSelector=queue%3Demails");
	assert_int_equal(rep.r.status, 200);
	assert_string_equal(
	    rep.r.body,
	    "{\"kind\":\"MetricValueList\",\"apiVersion\":\"custom.metrics.k8s.io/v1beta1\","
	    "\"metadata\":{},\"items\":[{\"describedObject\":{\"kind\":\"Deployment\","
	    "\"namespace\":\"default\",\"name\":\"worker\",\"apiVersion\":\"apps/v1\"},"
	    "\"metricName\":\"queue_rate\",\"timestamp\":\"2024-05-01T12:00:00Z\",\"window\":"
	    "60,\"value\":\"42500m\",\"selector\":{\"matchLabels\":{\"queue\":\"emails\"}}}]}");
	reply_done(&rep);

	/* Root-scoped node: no namespace in describedObject. */
	rep = get(f, "/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/node_temp", NULL);
	if (rep.r.status != 200)
		fail_msg("nodes/n1: %d %s", rep.r.status, rep.r.body);
	assert_int_equal(cJSON_GetArraySize(item(rep.json, "items")), 1);
	{
		const cJSON *it = cJSON_GetArrayItem(item(rep.json, "items"), 0);
		const cJSON *obj = item(it, "describedObject");

		assert_string_equal(str(obj, "kind"), "Node");
		assert_string_equal(str(obj, "name"), "n1");
		assert_null(item(obj, "namespace"));
		assert_null(item(it, "window"));
		assert_string_equal(str(it, "value"), "55");
	}
	reply_done(&rep);
}

static void test_custom_namespace_metric(void **state)
{
	static const char *const paths[] = {
	    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/queue_length",
	    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/queue_length",
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < 2; i++) {
		struct reply rep = get(f, paths[i], NULL);
		const cJSON *it, *obj;

		if (rep.r.status != 200)
			fail_msg("%s: %d %s", paths[i], rep.r.status, rep.r.body);
		assert_int_equal(cJSON_GetArraySize(item(rep.json, "items")), 1);
		it = cJSON_GetArrayItem(item(rep.json, "items"), 0);
		obj = item(it, "describedObject");
		assert_string_equal(str(obj, "kind"), "Namespace");
		assert_string_equal(str(obj, "name"), "default");
		assert_string_equal(str(obj, "apiVersion"), "v1");
		assert_null(item(obj, "namespace"));
		assert_string_equal(str(item(it, "metric"), "name"), "queue_length");
		assert_string_equal(str(it, "value"), "50");
		reply_done(&rep);
	}
}

/* ---- errors ---- */

static void test_errors(void **state)
{
	static const struct {
		const char *method, *path, *query, *accept;
		int code;
		const char *reason, *needle;
	} cases[] = {
	    /* selectors */
	    {"GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_length",
	     "labelSelector=a%3Db%2C", NULL, 400, "BadRequest", "identifier"},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/http_requests",
	     "labelSelector=a+b", NULL, 400, "BadRequest", NULL},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/http_requests",
	     "metricLabelSelector=%2Ca", NULL, 400, "BadRequest", "expected"},
	    {"GET",
	     "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/deployments.apps/"
	     "worker/queue_rate",
	     "metricLabelSelector=Example.com%2Fapp%3Dweb", NULL, 400, "BadRequest", NULL},
	    {"GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_length",
	     "labelSelector=%zz", NULL, 400, "BadRequest", NULL},
	    /* path decoding */
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/%2/m", NULL, NULL,
	     400, "BadRequest", "percent"},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/%zz/m", NULL, NULL,
	     400, "BadRequest", "percent"},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1/namespaces/de%00fault/pods/a/m", NULL,
	     NULL, 400, "BadRequest", NULL},
	    {"GET", "/apis//custom.metrics.k8s.io", NULL, NULL, 400, "BadRequest", "empty"},
	    {"GET", "apis", NULL, NULL, 400, "BadRequest", NULL},
	    /* unknown metrics and routes */
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/%2A/nope", NULL,
	     NULL, 404, "NotFound", "nope"},
	    {"GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/nope", NULL, NULL,
	     404, "NotFound", "nope"},
	    {"GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/a%2Fb", NULL, NULL,
	     404, "NotFound", "a/b"},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1/services/web/queue_rate", NULL, NULL, 404,
	     "NotFound", NULL},
	    {"GET", "/foo", NULL, NULL, 404, "NotFound", "could not find"},
	    {"GET", "/", NULL, NULL, 404, "NotFound", NULL},
	    {"GET", "/apis/other.k8s.io", NULL, NULL, 404, "NotFound", NULL},
	    {"GET", "/apis/custom.metrics.k8s.io/v1", NULL, NULL, 404, "NotFound", NULL},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1/nodes/foo", NULL, NULL, 404, "NotFound",
	     "could not find the requested"},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/pods/bar", NULL, NULL, 404,
	     "NotFound", "could not find the requested"},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/pods/bar/m/x", NULL, NULL,
	     404, "NotFound", "could not find the requested"},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1/a/b/c/d/e/f/g/h", NULL, NULL, 404,
	     "NotFound", "could not find the requested"},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1/pods", NULL, NULL, 404, "NotFound",
	     "could not find the requested"},
	    {"GET", "/apis/external.metrics.k8s.io/v1beta1/foo", NULL, NULL, 404, "NotFound",
	     "could not find the requested"},
	    {"GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/foo/group/metric", NULL, NULL,
	     404, "NotFound", "could not find the requested"},
	    {"GET", "/openapi/v3/apis/custom.metrics.k8s.io/v1", NULL, NULL, 404, "NotFound", NULL},
	    {"GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/1/2/3/4/5/6/7/8/9", NULL,
	     NULL, 404, "NotFound", NULL},
	    /* methods and content negotiation */
	    {"POST", "/apis/custom.metrics.k8s.io/v1beta1", NULL, NULL, 405, "MethodNotAllowed",
	     NULL},
	    {"DELETE", "/apis", NULL, NULL, 405, "MethodNotAllowed", NULL},
	    {"GET", "/apis/custom.metrics.k8s.io/v1beta1", NULL, "text/html", 406, "NotAcceptable",
	     NULL},
	    {"GET", "/apis", NULL, "application/vnd.kubernetes.protobuf", 406, "NotAcceptable",
	     NULL},
	    {"GET", "/apis", NULL, "application/json;q=0, text/html", 406, "NotAcceptable", NULL},
	    /* stale without fallback */
	    {"GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/cache_hits", NULL,
	     NULL, 503, "ServiceUnavailable", "cache"},
	    {"GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/cache_hits", NULL,
	     NULL, 503, "ServiceUnavailable", "timeout"},
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[512];
		struct reply rep = request(&f->ctx, cases[i].method, cases[i].path, cases[i].query,
		                           cases[i].accept);

		(void)snprintf(what, sizeof(what), "case %zu: %s %s?%s", i, cases[i].method,
		               cases[i].path, cases[i].query ? cases[i].query : "");
		expect_status(what, &rep, cases[i].code, cases[i].reason, cases[i].needle);
		reply_done(&rep);
	}
}

static void test_accept_ok(void **state)
{
	static const char *const accepts[] = {
	    "application/vnd.kubernetes.protobuf, */*",
	    "application/json",
	    "Application/JSON; charset=utf-8",
	    "text/html, application/*",
	    "",
	    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(accepts) / sizeof(accepts[0]); i++) {
		struct reply rep = request(&f->ctx, "GET",
		                           "/apis/external.metrics.k8s.io/v1beta1/namespaces/"
		                           "default/queue_length",
		                           NULL, accepts[i]);

		if (rep.r.status != 200)
			fail_msg("accept '%s': %d", accepts[i], rep.r.status);
		assert_string_equal(rep.r.content_type, "application/json");
		reply_done(&rep);
	}
	/* HEAD is GET. */
	{
		struct reply rep = request(&f->ctx, "HEAD", "/apis", NULL, NULL);

		assert_int_equal(rep.r.status, 200);
		reply_done(&rep);
	}
	/* Health endpoints answer text whatever the Accept. */
	{
		struct reply rep = request(&f->ctx, "GET", "/healthz", NULL, "text/plain");

		assert_int_equal(rep.r.status, 200);
		reply_done(&rep);
	}
}

static void test_fallback(void **state)
{
	struct fixture *f = *state;
	struct reply rep =
	    get(f, "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/pending_jobs", NULL);
	const cJSON *it;

	if (rep.r.status != 200)
		fail_msg("fallback: %d %s", rep.r.status, rep.r.body);
	assert_int_equal(cJSON_GetArraySize(item(rep.json, "items")), 1);
	it = cJSON_GetArrayItem(item(rep.json, "items"), 0);
	assert_string_equal(str(it, "metricName"), "pending_jobs");
	assert_string_equal(str(it, "value"), "0");
	assert_true(cJSON_IsObject(item(it, "metricLabels")));
	assert_non_null(str(it, "timestamp"));
	assert_true(strlen(str(it, "timestamp")) == 20);
	reply_done(&rep);
}

/* ---- health, version, openapi ---- */

static void test_health(void **state)
{
	static const char *const paths[] = {"/healthz", "/livez", "/readyz"};
	struct fixture *f = *state;

	for (size_t i = 0; i < 3; i++) {
		struct reply rep = get(f, paths[i], NULL);

		assert_int_equal(rep.r.status, 200);
		assert_string_equal(rep.r.content_type, "text/plain; charset=utf-8");
		assert_string_equal(rep.r.body, "ok");
		assert_string_equal(rep.r.route, "health");
		reply_done(&rep);
	}
}

static void test_readyz_first_round(void **state)
{
	struct sm_store *st = sm_store_new(&config);
	struct sm_api_context ctx = {.store = st, .version = "0.1.0", .git_commit = ""};
	struct reply rep;

	(void)state;
	assert_non_null(st);
	rep = request(&ctx, "GET", "/readyz", NULL, NULL);
	assert_int_equal(rep.r.status, 503);
	assert_string_equal(rep.r.content_type, "text/plain; charset=utf-8");
	assert_non_null(strstr(rep.r.body, "'jobs'"));
	assert_non_null(strstr(rep.r.body, "'cache'"));
	reply_done(&rep);

	for (size_t i = 0; i < 3; i++)
		assert_int_equal(sm_store_publish_failure(st, i, "boom", MONO_MS), 0);
	rep = request(&ctx, "GET", "/readyz", NULL, NULL);
	assert_int_equal(rep.r.status, 503);
	assert_null(strstr(rep.r.body, "'jobs'"));
	assert_non_null(strstr(rep.r.body, "'cache'"));
	reply_done(&rep);

	assert_int_equal(sm_store_publish_success(st, 3, sm_batch_new(10), MONO_MS, WALL_MS), 0);
	rep = request(&ctx, "GET", "/readyz", NULL, NULL);
	assert_int_equal(rep.r.status, 200);
	assert_string_equal(rep.r.body, "ok");
	reply_done(&rep);

	/* Liveness does not wait for sources. */
	sm_store_free(st);
	st = sm_store_new(&config);
	ctx.store = st;
	rep = request(&ctx, "GET", "/livez", NULL, NULL);
	assert_int_equal(rep.r.status, 200);
	reply_done(&rep);
	sm_store_free(st);
}

static void test_version(void **state)
{
	struct fixture *f = *state;
	struct reply rep = get(f, "/version", NULL);
	static const char *const keys[] = {"major",     "minor",        "gitVersion",
	                                   "gitCommit", "gitTreeState", "buildDate",
	                                   "goVersion", "compiler",     "platform"};

	assert_int_equal(rep.r.status, 200);
	assert_string_equal(rep.r.content_type, "application/json");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_non_null(str(rep.json, keys[i]));
	assert_string_equal(str(rep.json, "major"), "0");
	assert_string_equal(str(rep.json, "minor"), "1");
	assert_string_equal(str(rep.json, "gitVersion"), "v0.1.0");
	assert_string_equal(str(rep.json, "gitCommit"), "abc1234");
	assert_string_equal(str(rep.json, "goVersion"), "");
	assert_string_equal(str(rep.json, "compiler"), "gcc");
	reply_done(&rep);
}

static void test_openapi(void **state)
{
	struct fixture *f = *state;
	struct reply rep = get(f, "/openapi/v2", NULL);
	const cJSON *p, *paths;
	size_t n = 0;

	assert_int_equal(rep.r.status, 200);
	assert_string_equal(rep.r.content_type, "application/json");
	assert_string_equal(rep.r.route, "openapi");
	assert_string_equal(str(rep.json, "swagger"), "2.0");
	assert_string_equal(str(item(rep.json, "info"), "title"), "scalemetrics");
	assert_string_equal(str(item(rep.json, "info"), "version"), "v0.1.0");
	paths = item(rep.json, "paths");
	assert_non_null(item(paths, "/apis/custom.metrics.k8s.io/v1beta2/"));
	assert_non_null(item(paths, "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/"
	                            "{metric}"));
	/* Every $ref resolves; every templated path declares its parameters. */
	cJSON_ArrayForEach(p, paths)
	{
		const cJSON *get_op = item(p, "get");
		const char *ref =
		    str(item(item(item(get_op, "responses"), "200"), "schema"), "$ref");
		size_t braces = 0, path_params = 0;
		const cJSON *param;

		assert_non_null(ref);
		assert_true(strncmp(ref, "#/definitions/", 14) == 0);
		assert_non_null(item(item(rep.json, "definitions"), ref + 14));
		for (const char *c = p->string; *c; c++)
			braces += *c == '{';
		cJSON_ArrayForEach(param, item(get_op, "parameters"))
		{
			path_params += strcmp(str(param, "in"), "path") == 0;
		}
		assert_int_equal(braces, path_params);
		n++;
	}
	assert_int_equal(n, 10); /* 2 custom GVs x 4, external x 2 */
	reply_done(&rep);

	rep = get(f, "/openapi/v3", NULL);
	assert_int_equal(rep.r.status, 200);
	paths = item(rep.json, "paths");
	assert_int_equal(cJSON_GetArraySize(paths), 3);
	cJSON_ArrayForEach(p, paths)
	{
		const char *url = str(p, "serverRelativeURL");
		char path[256];
		const char *q;
		struct reply doc;

		assert_non_null(url);
		q = strchr(url, '?');
		assert_non_null(q);
		assert_true(strncmp(q, "?hash=", 6) == 0 && strlen(q) > 6);
		(void)snprintf(path, sizeof(path), "/openapi/v3/%s", p->string);
		assert_true(strncmp(url, path, strlen(path)) == 0);
		doc = get(f, path, q + 1);
		assert_int_equal(doc.r.status, 200);
		assert_string_equal(doc.r.content_type, "application/json");
		assert_string_equal(str(doc.json, "openapi"), "3.0.0");
		assert_true(cJSON_IsObject(item(doc.json, "info")));
		assert_true(cJSON_GetArraySize(item(doc.json, "paths")) >= 2);
		assert_true(cJSON_GetArraySize(item(item(doc.json, "components"), "schemas")) >= 2);
		reply_done(&doc);
	}
	assert_non_null(item(paths, "apis/custom.metrics.k8s.io/v1beta1"));
	assert_non_null(item(paths, "apis/custom.metrics.k8s.io/v1beta2"));
	assert_non_null(item(paths, "apis/external.metrics.k8s.io/v1beta1"));
	reply_done(&rep);
}

/* ---- encoders and helpers without the store ---- */

static void test_encode_custom_selector_echo(void **state)
{
	struct sm_selector *sel = NULL;
	struct sm_error err = {0};
	struct sm_query_item items[] = {
	    {.metric = "m",
	     .object = {.resource = "nodes", .name = "n1", .namespace = "default"},
	     .value = 1e20,
	     .timestamp_wall_ms = WALL_MS + 999},
	    {.metric = "m",
	     .object = {.resource = "widgets.example.com", .name = "w", .namespace = "ns"},
	     .value = -0.0005,
	     .window_s = 30},
	};
	struct sm_query_result res = {.items = items, .n_items = 2};
	struct sm_query q = {
	    .kind = SM_QUERY_OBJECTS, .namespace = "ns", .resource = "x", .metric = "m"};
	char *body = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(
	    sm_selector_parse("a=b,c!=d,e in (y,x),f notin (z),g,!h,i>5,a==c", &sel, &err), 0);
	q.metric_selector = sel;
	assert_int_equal(sm_api_custom_encode("v1beta1", &q, &res, WALL_MS, &body, &len), 0);
	assert_int_equal(strlen(body), len);
	assert_string_equal(
	    body,
	    "{\"kind\":\"MetricValueList\",\"apiVersion\":\"custom.metrics.k8s.io/v1beta1\","
	    "\"metadata\":{},\"items\":[{\"describedObject\":{\"kind\":\"Node\",\"name\":\"n1\","
	    "\"apiVersion\":\"v1\"},\"metricName\":\"m\",\"timestamp\":\"2024-05-01T12:00:00Z\","
	    "\"value\":\"9223372036854775807\",\"selector\":{\"matchLabels\":{\"a\":\"b\"},"
	    "\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"c\"]},{"
	    "\"key\":\"c\",\"operator\":\"NotIn\",\"values\":[\"d\"]},{\"key\":\"e\","
	    "\"operator\":\"In\",\"values\":[\"x\",\"y\"]},{\"key\":\"f\",\"operator\":"
	    "\"NotIn\",\"values\":[\"z\"]},{\"key\":\"g\",\"operator\":\"Exists\"},{\"key\":"
	    "\"h\",\"operator\":\"DoesNotExist\"}]}},{\"describedObject\":{\"kind\":\"Widget\","
	    "\"namespace\":\"ns\",\"name\":\"w\",\"apiVersion\":\"example.com/v1\"},"
	    "\"metricName\":\"m\",\"timestamp\":\"2024-05-01T12:00:00Z\",\"window\":30,"
	    "\"value\":\"-500u\",\"selector\":{\"matchLabels\":{\"a\":\"b\"},"
	    "\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"c\"]},{"
	    "\"key\":\"c\",\"operator\":\"NotIn\",\"values\":[\"d\"]},{\"key\":\"e\","
	    "\"operator\":\"In\",\"values\":[\"x\",\"y\"]},{\"key\":\"f\",\"operator\":"
	    "\"NotIn\",\"values\":[\"z\"]},{\"key\":\"g\",\"operator\":\"Exists\"},{\"key\":"
	    "\"h\",\"operator\":\"DoesNotExist\"}]}}]}");
	free(body);

	/* v1beta2 keys; an empty selector echoes null; a timestamp of 0 becomes now. */
	sm_selector_free(sel);
	sel = NULL;
	assert_int_equal(sm_selector_parse("", &sel, &err), 0);
	q.metric_selector = sel;
	items[0].value = -1e300;
	items[0].timestamp_wall_ms = 0;
	res.n_items = 1;
	assert_int_equal(sm_api_custom_encode("v1beta2", &q, &res, WALL_MS + 61000, &body, &len),
	                 0);
	assert_string_equal(
	    body,
	    "{\"kind\":\"MetricValueList\",\"apiVersion\":\"custom.metrics.k8s.io/v1beta2\","
	    "\"metadata\":{},\"items\":[{\"describedObject\":{\"kind\":\"Node\",\"name\":\"n1\","
	    "\"apiVersion\":\"v1\"},\"metric\":{\"name\":\"m\",\"selector\":null},\"timestamp\":"
	    "\"2024-05-01T12:01:01Z\",\"value\":\"-9223372036854775808\"}]}");
	free(body);
	sm_selector_free(sel);

	/* No items: an empty list, never a missing one. */
	res.n_items = 0;
	q.metric_selector = NULL;
	assert_int_equal(sm_api_custom_encode("v1beta2", &q, &res, WALL_MS, &body, &len), 0);
	assert_string_equal(body, "{\"kind\":\"MetricValueList\",\"apiVersion\":\"custom.metrics."
	                          "k8s.io/v1beta2\",\"metadata\":{},\"items\":[]}");
	free(body);
}

static void test_encode_external(void **state)
{
	struct sm_query_item items[] = {
	    {.metric = "q", .value = 0.8, .timestamp_wall_ms = WALL_MS, .window_s = 30},
	    {.metric = "q",
	     .labels = (struct sm_label[]){{"a", "1"}, {"b", "2"}},
	     .n_labels = 2,
	     .value = 1500,
	     .timestamp_wall_ms = WALL_MS},
	};
	struct sm_query_result res = {.items = items, .n_items = 2};
	char *body = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(sm_api_external_encode(&res, WALL_MS, &body, &len), 0);
	assert_string_equal(
	    body, "{\"kind\":\"ExternalMetricValueList\",\"apiVersion\":\"external.metrics."
	          "k8s.io/v1beta1\",\"metadata\":{},\"items\":[{\"metricName\":\"q\","
	          "\"metricLabels\":{},\"timestamp\":\"2024-05-01T12:00:00Z\",\"window\":"
	          "30,\"value\":\"800m\"},{\"metricName\":\"q\",\"metricLabels\":{\"a\":"
	          "\"1\",\"b\":\"2\"},\"timestamp\":\"2024-05-01T12:00:00Z\",\"value\":"
	          "\"1500\"}]}");
	free(body);
}

static void test_resource_kind(void **state)
{
	static const struct {
		const char *resource, *kind, *api_version;
		bool namespaced;
	} cases[] = {
	    {"pods", "Pod", "v1", true},
	    {"services", "Service", "v1", true},
	    {"namespaces", "Namespace", "v1", false},
	    {"nodes", "Node", "v1", false},
	    {"persistentvolumes", "PersistentVolume", "v1", false},
	    {"persistentvolumeclaims", "PersistentVolumeClaim", "v1", true},
	    {"deployments.apps", "Deployment", "apps/v1", true},
	    {"statefulsets.apps", "StatefulSet", "apps/v1", true},
	    {"replicasets.apps", "ReplicaSet", "apps/v1", true},
	    {"daemonsets.apps", "DaemonSet", "apps/v1", true},
	    {"jobs.batch", "Job", "batch/v1", true},
	    {"cronjobs.batch", "CronJob", "batch/v1", true},
	    {"ingresses.networking.k8s.io", "Ingress", "networking.k8s.io/v1", true},
	    {"storageclasses.storage.k8s.io", "StorageClass", "storage.k8s.io/v1", false},
	    {"clusterroles.rbac.authorization.k8s.io", "ClusterRole",
	     "rbac.authorization.k8s.io/v1", false},
	    {"customresourcedefinitions.apiextensions.k8s.io", "CustomResourceDefinition",
	     "apiextensions.k8s.io/v1", false},
	    {"widgets.example.com", "Widget", "example.com/v1", true},
	    {"policies.example.com", "Policy", "example.com/v1", true},
	    {"boxes", "Box", "v1", true},
	    {"classes.x.io", "Class", "x.io/v1", true},
	    {"brushes", "Brush", "v1", true},
	    {"status", "Status", "v1", true},
	    {"statuses.x.io", "Status", "x.io/v1", true},
	    {"fish", "Fish", "v1", true},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char kind[64], av[64];

		sm_api_resource_kind(cases[i].resource, kind, sizeof(kind), av, sizeof(av));
		if (strcmp(kind, cases[i].kind) != 0 || strcmp(av, cases[i].api_version) != 0 ||
		    sm_resource_is_namespaced(cases[i].resource) != cases[i].namespaced)
			fail_msg("case %zu '%s': got %s %s", i, cases[i].resource, kind, av);
	}
}

static void test_timestamp(void **state)
{
	static const struct {
		int64_t ms;
		const char *want;
	} cases[] = {
	    {WALL_MS, "2024-05-01T12:00:00Z"},
	    {WALL_MS + 999, "2024-05-01T12:00:00Z"},
	    {0, "1970-01-01T00:00:00Z"},
	    {-1, "1969-12-31T23:59:59Z"},
	    {951782400000LL, "2000-02-29T00:00:00Z"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32];

		sm_api_format_timestamp(cases[i].ms, buf, sizeof(buf));
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("case %zu: %s, want %s", i, buf, cases[i].want);
	}
}

static void test_status_direct(void **state)
{
	struct sm_api_response r;

	(void)state;
	assert_int_equal(sm_api_status(401, "Unauthorized", "Unauthorized", &r), 0);
	assert_int_equal(r.status, 401);
	assert_string_equal(r.content_type, "application/json");
	assert_string_equal(r.body,
	                    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
	                    "\"status\":\"Failure\",\"message\":\"Unauthorized\",\"reason\":"
	                    "\"Unauthorized\",\"code\":401}");
	sm_api_response_done(&r);
	sm_api_response_done(&r);
	sm_api_response_done(NULL);

	/* No reason: omitted, as Go does for a plain error. */
	assert_int_equal(sm_api_status(500, NULL, "boom \"x\"", &r), 0);
	assert_string_equal(r.body,
	                    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
	                    "\"status\":\"Failure\",\"message\":\"boom \\\"x\\\"\",\"code\":"
	                    "500}");
	assert_null(r.reason);
	sm_api_response_done(&r);

	assert_int_equal(sm_api_status_from_errno(-ENOENT, "gone", &r), 0);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.reason, "NotFound");
	sm_api_response_done(&r);
	assert_int_equal(sm_api_status_from_errno(-EAGAIN, "stale", &r), 0);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.reason, "ServiceUnavailable");
	sm_api_response_done(&r);
	assert_int_equal(sm_api_status_from_errno(-EIO, "io", &r), 0);
	assert_int_equal(r.status, 500);
	assert_string_equal(r.reason, "InternalError");
	sm_api_response_done(&r);
}

/* Without a store: discovery still answers (empty lists), metrics are unavailable. */
/* ---- the answer cache ---- */

static struct sm_api_response ask(const struct sm_api_context *ctx, const char *path,
                                  const char *accept, int64_t now_mono_ms)
{
	struct sm_api_request req = {
	    .method = "GET",
	    .path = path,
	    .accept = accept,
	    .now_mono_ms = now_mono_ms,
	    .now_wall_ms = WALL_MS + (now_mono_ms - MONO_MS),
	};
	struct sm_api_response r = {0};

	assert_int_equal(sm_api_handle(ctx, &req, &r), 0);
	assert_non_null(r.body);
	return r;
}

static void publish_jobs(struct sm_store *st, double value, int64_t mono_ms)
{
	struct sm_batch *b = sm_batch_new(10);

	add(b, &(struct sm_series_in){.metric = "queue_length",
	                              .labels = (struct sm_label[]){{"queue", "emails"}},
	                              .n_labels = 1,
	                              .value = value});
	assert_int_equal(sm_store_publish_success(st, 0, b, mono_ms, WALL_MS), 0);
}

static void test_answer_cache(void **state)
{
	static const char path[] =
	    "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_length";
	static const char fallback[] =
	    "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/pending_jobs";
	struct sm_store *st = sm_store_new(&config);
	struct sm_api_context ctx = {.store = st, .version = "0.1.0"};
	struct sm_api_response a, b;

	(void)state;
	assert_null(sm_api_cache_new(0, 1024));
	assert_null(sm_api_cache_new(16, 0));
	ctx.cache = sm_api_cache_new(16, 1 << 20);
	assert_non_null(st);
	assert_non_null(ctx.cache);
	publish_jobs(st, 42, MONO_MS);
	assert_int_equal(sm_store_publish_failure(st, 2, "connection refused", MONO_MS), 0);

	/* Built, then copied out of the cache: the same bytes, route and type. */
	a = ask(&ctx, path, NULL, MONO_MS + 1000);
	assert_int_equal(a.status, 200);
	assert_false(a.from_cache);
	assert_true(a.reusable);
	b = ask(&ctx, path, NULL, MONO_MS + 1000);
	assert_true(b.from_cache);
	assert_int_equal(b.status, 200);
	assert_string_equal(b.route, "external");
	assert_string_equal(b.content_type, CT_JSON);
	assert_int_equal(a.body_len, b.body_len);
	assert_string_equal(a.body, b.body);
	assert_ptr_not_equal(a.body, b.body);
	sm_api_response_done(&a);
	sm_api_response_done(&b);

	/* Another Accept header is another key. */
	a = ask(&ctx, path, "application/json", MONO_MS + 1000);
	assert_false(a.from_cache);
	sm_api_response_done(&a);

	/* A publish makes every kept answer old: the new value is served at once. */
	publish_jobs(st, 43, MONO_MS + 2000);
	a = ask(&ctx, path, NULL, MONO_MS + 2000);
	assert_false(a.from_cache);
	assert_non_null(strstr(a.body, "\"value\":\"43\""));
	sm_api_response_done(&a);
	/* Exactly max_age (15 s) old is still fresh, and still cached... */
	a = ask(&ctx, path, NULL, MONO_MS + 2000 + 15000);
	assert_true(a.from_cache);
	sm_api_response_done(&a);
	/* ...one millisecond later the source is stale: 503, never the kept 200. */
	a = ask(&ctx, path, NULL, MONO_MS + 2000 + 15001);
	assert_false(a.from_cache);
	assert_int_equal(a.status, 503);
	sm_api_response_done(&a);

	/* Fallback items carry the request's time: never kept. */
	for (int i = 0; i < 2; i++) {
		a = ask(&ctx, fallback, NULL, MONO_MS + 1000 + i);
		assert_int_equal(a.status, 200);
		assert_false(a.reusable);
		assert_false(a.from_cache);
		sm_api_response_done(&a);
	}
	/* Errors are not kept either. */
	for (int i = 0; i < 2; i++) {
		a = ask(&ctx, "/apis/nope", NULL, MONO_MS + 1000);
		assert_int_equal(a.status, 404);
		assert_false(a.from_cache);
		sm_api_response_done(&a);
	}
	sm_api_cache_free(ctx.cache);

	/* Bodies over an eighth of the byte budget are not kept. */
	ctx.cache = sm_api_cache_new(16, 8 * 100);
	for (int i = 0; i < 2; i++) {
		a = ask(&ctx, "/apis/external.metrics.k8s.io/v1beta1", NULL, MONO_MS + 1000);
		assert_int_equal(a.status, 200);
		assert_true(a.body_len > 100);
		assert_false(a.from_cache);
		sm_api_response_done(&a);
	}
	sm_api_cache_free(ctx.cache);
	sm_store_free(st);
}

static void test_no_store(void **state)
{
	struct sm_api_context ctx = {.store = NULL, .version = "v1.2.3"};
	struct reply rep;

	(void)state;
	rep = request(&ctx, "GET", "/apis/external.metrics.k8s.io/v1beta1", NULL, NULL);
	assert_int_equal(rep.r.status, 200);
	assert_int_equal(cJSON_GetArraySize(item(rep.json, "resources")), 0);
	assert_true(cJSON_IsArray(item(rep.json, "resources")));
	reply_done(&rep);
	rep = request(&ctx, "GET", "/version", NULL, NULL);
	assert_string_equal(str(rep.json, "gitVersion"), "v1.2.3");
	assert_string_equal(str(rep.json, "major"), "1");
	assert_string_equal(str(rep.json, "minor"), "2");
	reply_done(&rep);
}

int main(void)
{
	const struct CMUnitTest store_tests[] = {
	    cmocka_unit_test(test_group_list),
	    cmocka_unit_test(test_group),
	    cmocka_unit_test(test_resource_lists),
	    cmocka_unit_test(test_external),
	    cmocka_unit_test(test_custom_pods_v1beta1),
	    cmocka_unit_test(test_custom_metric_selector),
	    cmocka_unit_test(test_custom_object_v1beta2),
	    cmocka_unit_test(test_custom_namespace_metric),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_accept_ok),
	    cmocka_unit_test(test_fallback),
	    cmocka_unit_test(test_health),
	    cmocka_unit_test(test_version),
	    cmocka_unit_test(test_openapi),
	};
	const struct CMUnitTest plain_tests[] = {
	    cmocka_unit_test(test_readyz_first_round),
	    cmocka_unit_test(test_answer_cache),
	    cmocka_unit_test(test_encode_custom_selector_echo),
	    cmocka_unit_test(test_encode_external),
	    cmocka_unit_test(test_resource_kind),
	    cmocka_unit_test(test_timestamp),
	    cmocka_unit_test(test_status_direct),
	    cmocka_unit_test(test_no_store),
	};
	int failed = cmocka_run_group_tests_name("api (store)", store_tests, setup, teardown);

	failed += cmocka_run_group_tests_name("api", plain_tests, NULL, NULL);
	return failed;
}
