/* SPDX-License-Identifier: MIT */
/* The /status page through sm_api_handle, against a hand-built config, a store and a
 * history: source health, series rows, sparklines, the filter, and HTML escaping of
 * everything that comes from series, errors or the request. */
/* cmocka needs setjmp.h, stdarg.h and stddef.h before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/config.h"
#include "scalemetrics/history.h"
#include "scalemetrics/series.h"
#include "scalemetrics/store.h"

#define WALL_MS 1714564800000LL
#define MONO_MS 1000000LL

static char *namespaces[] = {"default"};

static struct sm_metric_def jobs_metrics[] = {
    {.name = "queue_length", .scope = SM_METRIC_EXTERNAL},
};

#define SOURCE(NAME, TYPE)                                                                         \
	{                                                                                          \
		.name = NAME, .type = TYPE, .interval_ms = 1000, .timeout_ms = 500,                \
		.max_age_ms = 3000, .namespaces = {.v = namespaces, .n = 1}, .max_series = 100,    \
		.metrics = jobs_metrics, .n_metrics = 1,                                           \
	}

static struct sm_source_config sources[] = {
    SOURCE("jobs", "redis"),
    SOURCE("db", "postgresql"),
    SOURCE("idle", "scrape"),
    SOURCE("old", "redis"),
};

static struct sm_config config = {
    .path = "test.yaml",
    .server = {.namespace = "default"},
    .sources = sources,
    .n_sources = sizeof(sources) / sizeof(sources[0]),
};

struct fixture {
	struct sm_store *store;
	struct sm_history *history;
	struct sm_api_context ctx;
};

/* jobs: three series, published four times (values i, 2i, 0.8), so each has four points. */
static void publish_jobs(struct sm_store *st, int round)
{
	struct sm_batch *b = sm_batch_new(100);

	assert_non_null(b);
	assert_int_equal(sm_batch_add(b,
	                              &(struct sm_series_in){
	                                  .metric = "queue_length",
	                                  .labels = (struct sm_label[]){{"queue", "emails"}},
	                                  .n_labels = 1,
	                                  .value = round,
	                              }),
	                 0);
	assert_int_equal(sm_batch_add(b,
	                              &(struct sm_series_in){
	                                  .metric = "queue_length",
	                                  .labels = (struct sm_label[]){{"queue", "reports"}},
	                                  .n_labels = 1,
	                                  .value = 2.0 * round,
	                              }),
	                 0);
	/* A label name and a metric name that HTML would take for markup. */
	assert_int_equal(
	    sm_batch_add(b,
	                 &(struct sm_series_in){
	                     .metric = "busy<i>ness",
	                     .labels = (struct sm_label[]){{"<b>x", "y"}},
	                     .n_labels = 1,
	                     .value = 0.8,
	                     .object = &(struct sm_object_ref){.resource = "deployments.apps",
	                                                       .name = "worker",
	                                                       .namespace = "default"},
	                 }),
	    0);
	assert_int_equal(
	    sm_store_publish_success(st, 0, b, MONO_MS + round * 1000LL, WALL_MS + round * 1000LL),
	    0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sm_batch *b;

	assert_non_null(f);
	f->store = sm_store_new(&config);
	f->history = sm_history_new(0);
	assert_non_null(f->store);
	assert_non_null(f->history);
	sm_store_set_history(f->store, f->history);
	f->ctx = (struct sm_api_context){
	    .store = f->store, .history = f->history, .version = "1.2.3", .git_commit = "abc1234"};
	for (int round = 1; round <= 4; round++)
		publish_jobs(f->store, round);
	/* db: never succeeded, failing with an error that carries markup. */
	assert_int_equal(sm_store_publish_failure(f->store, 1,
	                                          "connect to '<script>alert(1)</script>' & "
	                                          "\"q\" failed",
	                                          MONO_MS + 4000),
	                 0);
	/* old: succeeded long ago (stale now), one series. */
	b = sm_batch_new(10);
	assert_non_null(b);
	assert_int_equal(sm_batch_add(b, &(struct sm_series_in){.metric = "ancient", .value = 1}),
	                 0);
	assert_int_equal(sm_store_publish_success(f->store, 3, b, MONO_MS - 60000, WALL_MS), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sm_store_free(f->store);
	sm_history_free(f->history);
	free(f);
	return 0;
}

struct page {
	int status;
	char *body;
	const char *content_type;
};

static struct page get(const struct fixture *f, const char *method, const char *query)
{
	struct sm_api_response r = {0};
	struct sm_api_request req = {
	    .method = method,
	    .path = "/status",
	    .query = query,
	    .accept = "text/html,*/*;q=0.8",
	    .now_mono_ms = MONO_MS + 4500,
	    .now_wall_ms = WALL_MS + 4500,
	};
	struct page p;

	assert_int_equal(sm_api_handle(&f->ctx, &req, &r), 0);
	p = (struct page){.status = r.status, .content_type = r.content_type};
	p.body = r.body ? strndup(r.body, r.body_len) : NULL;
	assert_true(!r.body || strlen(p.body) == r.body_len);
	sm_api_response_done(&r);
	return p;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* The text of the table row that contains needle (the row is cut out in buf). */
static const char *row_with(const char *body, const char *needle, char *buf, size_t len)
{
	const char *at = strstr(body, needle);
	const char *start, *end;

	assert_non_null(at);
	for (start = at; start > body && strncmp(start, "<tr", 3) != 0; start--)
		;
	end = strstr(at, "</tr>");
	assert_non_null(end);
	assert_true((size_t)(end - start) < len);
	memcpy(buf, start, (size_t)(end - start));
	buf[end - start] = '\0';
	return buf;
}

static void test_sources(void **state)
{
	const struct fixture *f = *state;
	struct page p = get(f, "GET", NULL);
	char row[4096];

	assert_int_equal(p.status, 200);
	assert_string_equal(p.content_type, "text/html; charset=utf-8");
	assert_true(strncmp(p.body, "<!DOCTYPE html>", 15) == 0);
	assert_non_null(strstr(p.body, "</html>\n"));
	assert_non_null(strstr(p.body, "1.2.3 (abc1234)"));

	row_with(p.body, "data-source=\"jobs\"", row, sizeof(row));
	assert_non_null(strstr(row, "data-health=\"ok\""));
	assert_non_null(strstr(row, "<td>redis</td>"));
	assert_non_null(strstr(row, ">ok</span>"));
	assert_non_null(strstr(row, "500ms ago")); /* last success at +4 s, now +4.5 s */
	assert_non_null(strstr(row, "<td class=\"num\">4</td><td class=\"num\">0</td>"));

	row_with(p.body, "data-source=\"db\"", row, sizeof(row));
	assert_non_null(strstr(row, ">failing</span>"));
	assert_non_null(strstr(row, ">never</span>"));
	assert_non_null(strstr(row, "connect to &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; "
	                            "&amp; &quot;q&quot; failed"));

	row_with(p.body, "data-source=\"idle\"", row, sizeof(row));
	assert_non_null(strstr(row, ">never ran</span>"));

	row_with(p.body, "data-source=\"old\"", row, sizeof(row));
	assert_non_null(strstr(row, ">stale</span>"));
	assert_non_null(strstr(row, "1m04s ago"));
	free(p.body);
}

static void test_series_and_sparklines(void **state)
{
	const struct fixture *f = *state;
	struct page p = get(f, "GET", NULL);
	char row[4096];

	assert_int_equal(count(p.body, "<tr class=\"series\""), 4);
	row_with(p.body, "queue=reports", row, sizeof(row));
	assert_non_null(strstr(row, "<td>jobs</td>"));
	assert_non_null(strstr(row, ">queue_length</td>"));
	assert_non_null(strstr(row, "<td class=\"num value\">8</td>"));
	assert_non_null(strstr(row, "data-points=\"4\""));
	assert_non_null(strstr(row, "<title>min 2, max 8, last 8; 4 points over 3s</title>"));
	/* Time on x from 0 to 120, values 2..8 from the bottom (22) to the top (2). */
	assert_non_null(strstr(row, "points=\"0.0,22.0 40.0,15.3 80.0,8.7 120.0,2.0\""));

	/* Quantity as the API writes it; object; markup in names escaped. */
	row_with(p.body, "busy&lt;i&gt;ness", row, sizeof(row));
	assert_non_null(strstr(row, "<td class=\"num value\">800m</td>"));
	assert_non_null(strstr(row, "&lt;b&gt;x=y"));
	assert_non_null(strstr(row, "deployments.apps default/worker"));
	/* A constant value: a flat line in the middle. */
	assert_non_null(strstr(row, "points=\"0.0,12.0 40.0,12.0 80.0,12.0 120.0,12.0\""));

	/* The stale source's series is listed (one point, recorded long ago) with its age. */
	row_with(p.body, ">ancient<", row, sizeof(row));
	assert_non_null(strstr(row, "<td class=\"num\">1m04s</td>"));
	assert_non_null(strstr(row, "data-points=\"1\""));

	/* Nothing from the data made it out as markup: the page's own script is the only one,
	 * and no <b> or <i> elements exist. */
	assert_int_equal(count(p.body, "<script"), 1);
	assert_int_equal(count(p.body, "<b>"), 0);
	assert_int_equal(count(p.body, "<i>"), 0);
	assert_non_null(strstr(p.body, "<span id=\"shown\">4</span> shown; 4 of 4 series match"));
	free(p.body);
}

static void test_filter(void **state)
{
	const struct fixture *f = *state;
	struct page p = get(f, "GET", "filter=emails");

	assert_int_equal(p.status, 200);
	assert_int_equal(count(p.body, "<tr class=\"series\""), 1);
	assert_non_null(strstr(p.body, "queue=emails"));
	assert_null(strstr(p.body, "queue=reports"));
	assert_non_null(strstr(p.body, "value=\"emails\""));
	assert_non_null(strstr(p.body, "1 of 4 series match"));
	/* Sources are all listed whatever the filter. */
	assert_int_equal(count(p.body, "<tr class=\"source\""), 4);
	free(p.body);

	/* Matches the source name, the object, and decodes the query; the echo is escaped. */
	p = get(f, "GET", "filter=old");
	assert_int_equal(count(p.body, "<tr class=\"series\""), 1);
	free(p.body);
	p = get(f, "GET", "other=1&filter=default%2Fworker");
	assert_int_equal(count(p.body, "<tr class=\"series\""), 1);
	assert_non_null(strstr(p.body, "busy&lt;i&gt;ness"));
	free(p.body);
	p = get(f, "GET", "filter=%3Cb%3E");
	assert_int_equal(count(p.body, "<tr class=\"series\""), 1);
	assert_non_null(strstr(p.body, "value=\"&lt;b&gt;\""));
	free(p.body);
	p = get(f, "GET", "filter=%22%3E%3Cscript%3Ex");
	assert_int_equal(count(p.body, "<tr class=\"series\""), 0);
	assert_int_equal(count(p.body, "<script"), 1);
	assert_non_null(strstr(p.body, "value=\"&quot;&gt;&lt;script&gt;x\""));
	assert_non_null(strstr(p.body, "0 of 4 series match"));
	free(p.body);
	/* Empty: everything. */
	p = get(f, "GET", "filter=");
	assert_int_equal(count(p.body, "<tr class=\"series\""), 4);
	free(p.body);
}

static void test_methods_and_no_history(void **state)
{
	struct fixture *f = *state;
	struct page p = get(f, "HEAD", NULL);
	struct sm_api_context saved = f->ctx;

	assert_int_equal(p.status, 200);
	free(p.body);
	p = get(f, "POST", NULL);
	assert_int_equal(p.status, 405);
	free(p.body);

	/* Without a history the page still works, without sparklines. */
	f->ctx.history = NULL;
	p = get(f, "GET", NULL);
	f->ctx = saved;
	assert_int_equal(p.status, 200);
	assert_int_equal(count(p.body, "<svg"), 0);
	assert_int_equal(count(p.body, "no history"), 4);
	assert_non_null(strstr(p.body, "No history is kept."));
	free(p.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sources),
	    cmocka_unit_test(test_series_and_sparklines),
	    cmocka_unit_test(test_filter),
	    cmocka_unit_test(test_methods_and_no_history),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
