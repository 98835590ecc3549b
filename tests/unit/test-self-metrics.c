/* SPDX-License-Identifier: MIT */
/* GET /metrics: the exact exposition text rendered from telemetry counters and store
 * snapshots (HELP/TYPE lines, label escaping, cumulative buckets, _sum/_count, absent
 * samples), the route through sm_api_handle, and n_fallbacks on API answers. */
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
#include "scalemetrics/series.h"
#include "scalemetrics/store.h"
#include "scalemetrics/telemetry.h"

#include "../../src/api/api-internal.h"

/* 2024-05-01T12:00:00Z */
#define WALL_MS 1714564800000LL
#define MONO_MS 1000000LL
#define NOW_MS  (MONO_MS + 500)

#define CT_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

static char *namespaces[] = {"default"};

static struct sm_metric_def jobs_metrics[] = {
    {.name = "queue_length", .scope = SM_METRIC_EXTERNAL},
};
static struct sm_metric_def weird_metrics[] = {
    {.name = "weird_metric", .scope = SM_METRIC_EXTERNAL},
};
static struct sm_metric_def idle_metrics[] = {
    {.name = "idle_metric", .scope = SM_METRIC_EXTERNAL},
};
static struct sm_metric_def db_metrics[] = {
    {.name = "pending_jobs", .scope = SM_METRIC_EXTERNAL, .fallback = {.set = true, .value = 7}},
};

#define SOURCE(NAME, METRICS)                                                                      \
	{                                                                                          \
		.name = NAME, .type = "test", .interval_ms = 5000, .timeout_ms = 1000,             \
		.max_age_ms = 15000, .namespaces = {.v = namespaces, .n = 1}, .max_series = 2,     \
		.metrics = METRICS, .n_metrics = sizeof(METRICS) / sizeof(METRICS[0]),             \
	}

static struct sm_source_config sources[] = {
    SOURCE("jobs", jobs_metrics),
    /* Not a name config.c accepts: here to prove label values are escaped. */
    SOURCE("a\"b\\c\nd", weird_metrics),
    SOURCE("idle", idle_metrics),
    SOURCE("db", db_metrics),
};

static struct sm_config config = {
    .path = "test.yaml",
    .server = {.namespace = "default"},
    .sources = sources,
    .n_sources = sizeof(sources) / sizeof(sources[0]),
};

struct fixture {
	struct sm_store *store;
	struct sm_telemetry *telemetry;
};

static void add(struct sm_batch *b, const char *queue, double v, int want)
{
	struct sm_label l = {"queue", queue};

	assert_int_equal(sm_batch_add(b, &(struct sm_series_in){.metric = "queue_length",
	                                                        .labels = &l,
	                                                        .n_labels = 1,
	                                                        .value = v}),
	                 want);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sm_batch *b;

	assert_non_null(f);
	f->store = sm_store_new(&config);
	f->telemetry = sm_telemetry_new();
	assert_non_null(f->store);
	assert_non_null(f->telemetry);

	/* jobs: a success with 2 series (a third dropped by max_series), then a failure. */
	b = sm_batch_new(2);
	assert_non_null(b);
	add(b, "emails", 42, 0);
	add(b, "jobs", 8, 0);
	add(b, "more", 1, -E2BIG);
	sm_store_note_round_us(f->store, 0, 800);
	assert_int_equal(sm_store_publish_success(f->store, 0, b, MONO_MS - 2000, WALL_MS - 2000),
	                 0);
	sm_store_note_round_us(f->store, 0, 2500000);
	assert_int_equal(sm_store_publish_failure(f->store, 0, "timeout", MONO_MS - 1000), 0);
	/* The weird one failed once; idle never ran; db failed without a noted duration. */
	sm_store_note_round_us(f->store, 1, 1500);
	assert_int_equal(sm_store_publish_failure(f->store, 1, "refused", MONO_MS), 0);
	assert_int_equal(sm_store_publish_failure(f->store, 3, "refused", MONO_MS), 0);

	/* Requests, in no particular order. */
	sm_telemetry_request(f->telemetry, SM_TELEMETRY_GROUP_NONE, SM_TELEMETRY_ROUTE_OTHER, 404,
	                     2000000, 0);
	sm_telemetry_request(f->telemetry, SM_TELEMETRY_GROUP_EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL,
	                     200, 50, 1);
	sm_telemetry_request(f->telemetry, SM_TELEMETRY_GROUP_EXTERNAL, SM_TELEMETRY_ROUTE_OTHER,
	                     403, 120, 0);
	sm_telemetry_request(f->telemetry, SM_TELEMETRY_GROUP_NONE, SM_TELEMETRY_ROUTE_HEALTH, 200,
	                     20, 0);
	sm_telemetry_request(f->telemetry, SM_TELEMETRY_GROUP_EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL,
	                     200, 300, 0);
	sm_telemetry_auth_decision(f->telemetry, SM_TELEMETRY_AUTH_ALLOWED);
	sm_telemetry_auth_decision(f->telemetry, SM_TELEMETRY_AUTH_DENIED);
	sm_telemetry_auth_decision(f->telemetry, SM_TELEMETRY_AUTH_ALLOWED);
	sm_telemetry_answer_cache(f->telemetry, true);
	sm_telemetry_answer_cache(f->telemetry, true);
	sm_telemetry_answer_cache(f->telemetry, false);
	sm_telemetry_auth_cache(f->telemetry, SM_TELEMETRY_CACHE_TOKENREVIEW, false);
	sm_telemetry_auth_cache(f->telemetry, SM_TELEMETRY_CACHE_TOKENREVIEW, true);
	sm_telemetry_auth_cache(f->telemetry, SM_TELEMETRY_CACHE_TOKENREVIEW, false);
	/* Loaded at start, one reload applied, then one refused. */
	sm_telemetry_config_loaded(f->telemetry, WALL_MS - 60000);
	sm_telemetry_config_reload(f->telemetry, true, WALL_MS - 30000, NULL);
	sm_telemetry_config_reload(f->telemetry, false, WALL_MS - 1500, "c.yaml:3:1: bad");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sm_telemetry_free(f->telemetry);
	sm_store_free(f->store);
	free(f);
	return 0;
}

/* The whole document, one line per element (one literal would be over C's 4095). */
static const char *const expected_lines[] = {
    "# HELP scalemetrics_build_info Always 1; the labels say which build of scalemetrics is "
    "running.\n",
    "# TYPE scalemetrics_build_info gauge\n",
    "scalemetrics_build_info{version=\"0.1.0\",commit=\"abc1234\"} 1\n",
    "# HELP scalemetrics_http_requests_total HTTP requests answered, by API group (\"\" "
    "outside the metrics APIs), the route that answered (\"other\": none did) and status "
    "code.\n",
    "# TYPE scalemetrics_http_requests_total counter\n",
    "scalemetrics_http_requests_total{group=\"\",route=\"health\",code=\"200\"} 1\n",
    "scalemetrics_http_requests_total{group=\"\",route=\"other\",code=\"404\"} 1\n",
    "scalemetrics_http_requests_total{group=\"external.metrics.k8s.io\",route=\"external\","
    "code=\"200\"} 2\n",
    "scalemetrics_http_requests_total{group=\"external.metrics.k8s.io\",route=\"other\","
    "code=\"403\"} 1\n",
    "# HELP scalemetrics_http_request_duration_seconds Time from the request line to the "
    "response, access check included, by route.\n",
    "# TYPE scalemetrics_http_request_duration_seconds histogram\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.0001\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.00025\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.0005\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.001\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.0025\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.005\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.01\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.025\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.05\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.1\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.25\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"0.5\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"1\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"external\",le=\"+Inf\"} 2\n",
    "scalemetrics_http_request_duration_seconds_sum{route=\"external\"} 0.000350\n",
    "scalemetrics_http_request_duration_seconds_count{route=\"external\"} 2\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.0001\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.00025\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.0005\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.001\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.0025\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.005\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.01\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.025\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.05\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.1\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.25\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"0.5\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"1\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"health\",le=\"+Inf\"} 1\n",
    "scalemetrics_http_request_duration_seconds_sum{route=\"health\"} 0.000020\n",
    "scalemetrics_http_request_duration_seconds_count{route=\"health\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.0001\"} 0\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.00025\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.0005\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.001\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.0025\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.005\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.01\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.025\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.05\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.1\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.25\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"0.5\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"1\"} 1\n",
    "scalemetrics_http_request_duration_seconds_bucket{route=\"other\",le=\"+Inf\"} 2\n",
    "scalemetrics_http_request_duration_seconds_sum{route=\"other\"} 2.000120\n",
    "scalemetrics_http_request_duration_seconds_count{route=\"other\"} 2\n",
    "# HELP scalemetrics_fallbacks_served_total Metric values served from a rule's fallback "
    "because its source was stale, by API group.\n",
    "# TYPE scalemetrics_fallbacks_served_total counter\n",
    "scalemetrics_fallbacks_served_total{group=\"custom.metrics.k8s.io\"} 0\n",
    "scalemetrics_fallbacks_served_total{group=\"external.metrics.k8s.io\"} 1\n",
    "# HELP scalemetrics_auth_decisions_total Access checks of requests "
    "(server.auth.mode delegated; not the health endpoints), by outcome: allowed, denied "
    "(403), unauthenticated (401), error (no decision could be made).\n",
    "# TYPE scalemetrics_auth_decisions_total counter\n",
    "scalemetrics_auth_decisions_total{decision=\"allowed\"} 2\n",
    "scalemetrics_auth_decisions_total{decision=\"denied\"} 1\n",
    "scalemetrics_auth_decisions_total{decision=\"unauthenticated\"} 0\n",
    "scalemetrics_auth_decisions_total{decision=\"error\"} 0\n",
    "# HELP scalemetrics_auth_cache_lookups_total Lookups in the TokenReview and "
    "SubjectAccessReview caches, by result (a miss asks the Kubernetes API).\n",
    "# TYPE scalemetrics_auth_cache_lookups_total counter\n",
    "scalemetrics_auth_cache_lookups_total{cache=\"tokenreview\",result=\"hit\"} 1\n",
    "scalemetrics_auth_cache_lookups_total{cache=\"tokenreview\",result=\"miss\"} 2\n",
    "scalemetrics_auth_cache_lookups_total{cache=\"subjectaccessreview\",result=\"hit\"} 0\n",
    "scalemetrics_auth_cache_lookups_total{cache=\"subjectaccessreview\",result=\"miss\"} 0\n",
    "# HELP scalemetrics_answer_cache_lookups_total Answers that can be reused (metric lists "
    "and discovery while no source changed), by result: hit (copied from the answer cache) or "
    "miss (built).\n",
    "# TYPE scalemetrics_answer_cache_lookups_total counter\n",
    "scalemetrics_answer_cache_lookups_total{result=\"hit\"} 2\n",
    "scalemetrics_answer_cache_lookups_total{result=\"miss\"} 1\n",
    "# HELP scalemetrics_config_last_reload_successful 1 when the last config reload was "
    "applied (and before any), 0 when it was refused: the config in use is then older than "
    "the file.\n",
    "# TYPE scalemetrics_config_last_reload_successful gauge\n",
    "scalemetrics_config_last_reload_successful 0\n",
    "# HELP scalemetrics_config_last_reload_timestamp_seconds When the last config reload was "
    "tried, or the config loaded at start, in seconds since the epoch.\n",
    "# TYPE scalemetrics_config_last_reload_timestamp_seconds gauge\n",
    "scalemetrics_config_last_reload_timestamp_seconds 1714564798.500\n",
    "# HELP scalemetrics_config_reloads_total Config reloads (SIGHUP or a change of the file) "
    "by result: success (applied) or failure (refused, the running config kept).\n",
    "# TYPE scalemetrics_config_reloads_total counter\n",
    "scalemetrics_config_reloads_total{result=\"success\"} 1\n",
    "scalemetrics_config_reloads_total{result=\"failure\"} 1\n",
    "# HELP scalemetrics_source_series Series the source's last successful round produced.\n",
    "# TYPE scalemetrics_source_series gauge\n",
    "scalemetrics_source_series{source=\"jobs\"} 2\n",
    "scalemetrics_source_series{source=\"a\\\"b\\\\c\\nd\"} 0\n",
    "scalemetrics_source_series{source=\"idle\"} 0\n",
    "scalemetrics_source_series{source=\"db\"} 0\n",
    "# HELP scalemetrics_source_series_dropped Series cut by max_series in the source's last "
    "successful round.\n",
    "# TYPE scalemetrics_source_series_dropped gauge\n",
    "scalemetrics_source_series_dropped{source=\"jobs\"} 1\n",
    "scalemetrics_source_series_dropped{source=\"a\\\"b\\\\c\\nd\"} 0\n",
    "scalemetrics_source_series_dropped{source=\"idle\"} 0\n",
    "scalemetrics_source_series_dropped{source=\"db\"} 0\n",
    "# HELP scalemetrics_source_rounds_total Collection rounds of the source, by result "
    "(success or failure).\n",
    "# TYPE scalemetrics_source_rounds_total counter\n",
    "scalemetrics_source_rounds_total{source=\"jobs\",result=\"success\"} 1\n",
    "scalemetrics_source_rounds_total{source=\"jobs\",result=\"failure\"} 1\n",
    "scalemetrics_source_rounds_total{source=\"a\\\"b\\\\c\\nd\",result=\"success\"} 0\n",
    "scalemetrics_source_rounds_total{source=\"a\\\"b\\\\c\\nd\",result=\"failure\"} 1\n",
    "scalemetrics_source_rounds_total{source=\"idle\",result=\"success\"} 0\n",
    "scalemetrics_source_rounds_total{source=\"idle\",result=\"failure\"} 0\n",
    "scalemetrics_source_rounds_total{source=\"db\",result=\"success\"} 0\n",
    "scalemetrics_source_rounds_total{source=\"db\",result=\"failure\"} 1\n",
    "# HELP scalemetrics_source_last_round_duration_seconds How long the source's last round "
    "took, success or failure (absent before the first round).\n",
    "# TYPE scalemetrics_source_last_round_duration_seconds gauge\n",
    "scalemetrics_source_last_round_duration_seconds{source=\"jobs\"} 2.500000\n",
    "scalemetrics_source_last_round_duration_seconds{source=\"a\\\"b\\\\c\\nd\"} 0.001500\n",
    "scalemetrics_source_last_round_duration_seconds{source=\"db\"} 0.000000\n",
    "# HELP scalemetrics_source_last_success_timestamp_seconds Unix time of the source's last "
    "successful round (absent until one).\n",
    "# TYPE scalemetrics_source_last_success_timestamp_seconds gauge\n",
    "scalemetrics_source_last_success_timestamp_seconds{source=\"jobs\"} 1714564798.000\n",
    "# HELP scalemetrics_source_sample_age_seconds Age of the source's samples: seconds since "
    "its last successful round (absent until one).\n",
    "# TYPE scalemetrics_source_sample_age_seconds gauge\n",
    "scalemetrics_source_sample_age_seconds{source=\"jobs\"} 2.500\n",
    "# HELP scalemetrics_source_stale 1 when the source's samples are older than its max_age "
    "or it never succeeded: its metrics answer 503, or their fallback.\n",
    "# TYPE scalemetrics_source_stale gauge\n",
    "scalemetrics_source_stale{source=\"jobs\"} 0\n",
    "scalemetrics_source_stale{source=\"a\\\"b\\\\c\\nd\"} 1\n",
    "scalemetrics_source_stale{source=\"idle\"} 1\n",
    "scalemetrics_source_stale{source=\"db\"} 1\n",
    NULL,
};

/* expected_lines joined; the caller frees it. */
static char *expected_text(void)
{
	size_t len = 0;
	char *s, *p;

	for (size_t i = 0; expected_lines[i]; i++)
		len += strlen(expected_lines[i]);
	s = malloc(len + 1);
	assert_non_null(s);
	p = s;
	for (size_t i = 0; expected_lines[i]; i++) {
		size_t n = strlen(expected_lines[i]);

		memcpy(p, expected_lines[i], n);
		p += n;
	}
	*p = '\0';
	return s;
}

static void test_render_exact(void **state)
{
	struct fixture *f = *state;
	char *expected = expected_text();
	char *body = NULL;
	size_t len = 0;

	assert_int_equal(
	    sm_api_metrics_render(f->telemetry, f->store, NOW_MS, "0.1.0", "abc1234", &body, &len),
	    0);
	assert_non_null(body);
	assert_int_equal(len, strlen(body));
	assert_string_equal(body, expected);
	free(body);
	free(expected);
}

/* Lines starting with prefix. */
static size_t count_lines(const char *body, const char *prefix)
{
	size_t n = 0;

	for (const char *p = body; p && *p;) {
		const char *nl = strchr(p, '\n');

		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
		p = nl ? nl + 1 : NULL;
	}
	return n;
}

static void test_render_without_telemetry_and_store(void **state)
{
	char *body = NULL;
	size_t len = 0;

	(void)state;
	/* No counters, no sources: every family is declared, only fixed label sets have samples,
	 * and HELP text escaping holds for the empty version and commit too. */
	assert_int_equal(sm_api_metrics_render(NULL, NULL, NOW_MS, NULL, NULL, &body, &len), 0);
	assert_non_null(strstr(body, "scalemetrics_build_info{version=\"\",commit=\"\"} 1\n"));
	assert_int_equal(count_lines(body, "# TYPE "), 17);
	assert_int_equal(count_lines(body, "# HELP "), 17);
	assert_int_equal(count_lines(body, "scalemetrics_http_requests_total{"), 0);
	assert_int_equal(count_lines(body, "scalemetrics_http_request_duration_seconds_"), 0);
	assert_int_equal(count_lines(body, "scalemetrics_auth_decisions_total{"), 4);
	assert_int_equal(count_lines(body, "scalemetrics_auth_cache_lookups_total{"), 4);
	assert_int_equal(count_lines(body, "scalemetrics_source_"), 0);
	assert_int_equal(body[len - 1], '\n');
	free(body);
}

static void handle(const struct sm_api_context *ctx, const char *method, const char *path,
                   const char *accept, struct sm_api_response *ret)
{
	struct sm_api_request req = {.method = method,
	                             .path = path,
	                             .accept = accept,
	                             .now_mono_ms = NOW_MS,
	                             .now_wall_ms = WALL_MS + 500};

	*ret = (struct sm_api_response){0};
	assert_int_equal(sm_api_handle(ctx, &req, ret), 0);
}

static void test_route(void **state)
{
	struct fixture *f = *state;
	struct sm_api_context ctx = {.store = f->store,
	                             .telemetry = f->telemetry,
	                             .version = "0.1.0",
	                             .git_commit = "abc1234"};
	struct sm_api_response resp;
	char *expected = expected_text();

	handle(&ctx, "GET", "/metrics", NULL, &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.content_type, CT_PROMETHEUS);
	assert_string_equal(resp.route, "metrics");
	assert_false(resp.reusable); /* live counters: never from the answer cache */
	assert_int_equal(resp.body_len, strlen(expected));
	assert_memory_equal(resp.body, expected, resp.body_len);
	sm_api_response_done(&resp);
	free(expected);

	/* Text, not JSON: an Accept header without JSON does not matter; HEAD is like GET. */
	handle(&ctx, "HEAD", "/metrics/", "text/plain", &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.content_type, CT_PROMETHEUS);
	sm_api_response_done(&resp);

	handle(&ctx, "POST", "/metrics", NULL, &resp);
	assert_int_equal(resp.status, 405);
	sm_api_response_done(&resp);
	handle(&ctx, "GET", "/metrics/x", NULL, &resp);
	assert_int_equal(resp.status, 404);
	sm_api_response_done(&resp);

	/* Without telemetry the endpoint does not exist. */
	ctx.telemetry = NULL;
	handle(&ctx, "GET", "/metrics", NULL, &resp);
	assert_int_equal(resp.status, 404);
	assert_string_equal(resp.content_type, "application/json");
	assert_non_null(strstr(resp.body, "\"reason\":\"NotFound\""));
	sm_api_response_done(&resp);
}

static size_t items_in(const struct sm_api_response *resp)
{
	cJSON *doc = cJSON_ParseWithLength(resp->body, resp->body_len);
	size_t n;

	assert_non_null(doc);
	n = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "items"));
	cJSON_Delete(doc);
	return n;
}

static void test_n_fallbacks(void **state)
{
	struct fixture *f = *state;
	struct sm_api_context ctx = {.store = f->store, .version = "0.1.0", .git_commit = ""};
	struct sm_api_response resp;

	/* db never succeeded and its rule has a fallback: served, and counted. */
	handle(&ctx, "GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/pending_jobs",
	       NULL, &resp);
	assert_int_equal(resp.status, 200);
	assert_int_equal(items_in(&resp), 1);
	assert_int_equal(resp.n_fallbacks, 1);
	assert_non_null(strstr(resp.body, "\"value\":\"7\""));
	sm_api_response_done(&resp);

	/* jobs is fresh: real values, no fallback. */
	handle(&ctx, "GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_length",
	       NULL, &resp);
	assert_int_equal(resp.status, 200);
	assert_int_equal(items_in(&resp), 2);
	assert_int_equal(resp.n_fallbacks, 0);
	sm_api_response_done(&resp);

	/* The weird source has no fallback: 503, nothing served. */
	handle(&ctx, "GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/weird_metric",
	       NULL, &resp);
	assert_int_equal(resp.status, 503);
	assert_int_equal(resp.n_fallbacks, 0);
	sm_api_response_done(&resp);
}

static void test_round_duration_is_per_publish(void **state)
{
	struct fixture *f = *state;
	struct sm_snapshot *snap;

	(void)state;
	snap = sm_store_acquire(f->store, 0);
	assert_int_equal(snap->last_round_us, 2500000);
	sm_snapshot_unref(snap);
	/* A publish without a note does not inherit the previous round's duration. */
	assert_int_equal(sm_store_publish_failure(f->store, 0, "again", MONO_MS), 0);
	snap = sm_store_acquire(f->store, 0);
	assert_int_equal(snap->last_round_us, 0);
	assert_int_equal(snap->rounds_failed, 2);
	sm_snapshot_unref(snap);
	/* Out-of-range index: ignored. */
	sm_store_note_round_us(f->store, 99, 5);
	sm_store_note_round_us(NULL, 0, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_render_exact, setup, teardown),
	    cmocka_unit_test(test_render_without_telemetry_and_store),
	    cmocka_unit_test_setup_teardown(test_route, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_n_fallbacks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_duration_is_per_publish, setup, teardown),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
