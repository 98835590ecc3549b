/* SPDX-License-Identifier: MIT */
/* Batches of series: copying, limits, validation, label sorting and sanitising, stealing. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/selector.h"
#include "scalemetrics/series.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

static void test_add_copies_and_sorts(void **state)
{
	char metric[] = "redis_queue_length";
	char name_q[] = "queue", value_q[] = "emails";
	struct sm_label labels[] = {
	    {.name = "zone", .value = "eu west"},
	    {.name = name_q, .value = value_q},
	    {.name = "db", .value = "0"},
	};
	struct sm_label pod_labels[] = {
	    {.name = "tier", .value = "backend"},
	    {.name = "app", .value = "web"},
	};
	struct sm_object_ref obj = {.resource = "pods", .name = "web-1", .namespace = "prod"};
	struct sm_series_in in = {
	    .metric = metric,
	    .labels = labels,
	    .n_labels = N_ELEMENTS(labels),
	    .value = 42.5,
	    .object = &obj,
	    .object_labels = pod_labels,
	    .n_object_labels = N_ELEMENTS(pod_labels),
	    .window_s = 60,
	};
	struct sm_batch *b = sm_batch_new(10);
	const struct sm_series *s;

	(void)state;
	assert_non_null(b);
	assert_int_equal(sm_batch_add(b, &in), 0);
	/* the batch owns copies */
	memset(metric, 'X', sizeof(metric) - 1);
	memset(name_q, 'X', sizeof(name_q) - 1);
	memset(value_q, 'X', sizeof(value_q) - 1);

	assert_int_equal(sm_batch_count(b), 1);
	s = sm_batch_get(b, 0);
	assert_non_null(s);
	assert_string_equal(s->metric, "redis_queue_length");
	assert_true(s->value == 42.5);
	assert_int_equal(s->window_s, 60);
	assert_int_equal(s->n_labels, 3);
	assert_string_equal(s->labels[0].name, "db");
	assert_string_equal(s->labels[0].value, "0");
	assert_string_equal(s->labels[1].name, "queue");
	assert_string_equal(s->labels[1].value, "emails");
	assert_string_equal(s->labels[2].name, "zone");
	assert_string_equal(s->labels[2].value, "eu_west");
	assert_non_null(s->object);
	assert_string_equal(s->object->resource, "pods");
	assert_string_equal(s->object->name, "web-1");
	assert_string_equal(s->object->namespace, "prod");
	assert_int_equal(s->n_object_labels, 2);
	assert_string_equal(s->object_labels[0].name, "app");
	assert_string_equal(s->object_labels[1].name, "tier");
	assert_null(sm_batch_get(b, 1));
	sm_batch_free(b);
}

static void test_minimal_series(void **state)
{
	struct sm_object_ref obj = {.resource = "deployments.apps", .name = "worker"};
	struct sm_series_in in = {.metric = "m", .value = -1.5};
	struct sm_batch *b = sm_batch_new(4);
	const struct sm_series *s;

	(void)state;
	assert_int_equal(sm_batch_add(b, &in), 0);
	s = sm_batch_get(b, 0);
	assert_int_equal(s->n_labels, 0);
	assert_int_equal(s->n_object_labels, 0);
	assert_null(s->object);
	assert_true(s->value == -1.5);
	assert_int_equal(s->timestamp_wall_ms, 0);

	in.object = &obj;
	assert_int_equal(sm_batch_add(b, &in), 0);
	s = sm_batch_get(b, 1);
	assert_non_null(s->object);
	assert_null(s->object->namespace);
	assert_string_equal(s->object->resource, "deployments.apps");
	sm_batch_free(b);
}

static void test_rejects(void **state)
{
	static const struct sm_label dup[] = {{.name = "a", .value = "1"},
	                                      {.name = "a", .value = "2"}};
	static const struct sm_label null_value[] = {{.name = "a", .value = NULL}};
	static const struct sm_label null_name[] = {{.name = NULL, .value = "x"}};
	static const struct sm_object_ref no_name = {.resource = "pods"};
	static const struct {
		const char *what;
		struct sm_series_in in;
	} rows[] = {
	    {"NULL metric", {.metric = NULL, .value = 1}},
	    {"empty metric", {.metric = "", .value = 1}},
	    {"NaN", {.metric = "m", .value = NAN}},
	    {"+Inf", {.metric = "m", .value = INFINITY}},
	    {"-Inf", {.metric = "m", .value = -INFINITY}},
	    {"duplicate label", {.metric = "m", .value = 1, .labels = dup, .n_labels = 2}},
	    {"NULL label value", {.metric = "m", .value = 1, .labels = null_value, .n_labels = 1}},
	    {"NULL label name", {.metric = "m", .value = 1, .labels = null_name, .n_labels = 1}},
	    {"duplicate object label",
	     {.metric = "m", .value = 1, .object_labels = dup, .n_object_labels = 2}},
	    {"object without name", {.metric = "m", .value = 1, .object = &no_name}},
	    {"labels NULL, n 1", {.metric = "m", .value = 1, .labels = NULL, .n_labels = 1}},
	    /* Counts are checked before any label is read. */
	    {"too many labels",
	     {.metric = "m",
	      .value = 1,
	      .labels = dup,
	      .n_labels = (size_t)SM_SERIES_MAX_LABELS + 1}},
	    {"too many object labels",
	     {.metric = "m",
	      .value = 1,
	      .object_labels = dup,
	      .n_object_labels = (size_t)SM_SERIES_MAX_LABELS + 1}},
	};
	struct sm_batch *b = sm_batch_new(100);
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(rows); i++) {
		int r = sm_batch_add(b, &rows[i].in);

		if (r != -EINVAL) {
			print_error("reject row %zu (%s): got %d, want -EINVAL\n", i, rows[i].what,
			            r);
			failures++;
		}
	}
	assert_int_equal(sm_batch_count(b), 0);
	assert_int_equal(sm_batch_dropped(b), 0);
	sm_batch_free(b);
	assert_int_equal(failures, 0);
}

static void test_max_series(void **state)
{
	struct sm_series_in in = {.metric = "m", .value = 1};
	struct sm_batch *b = sm_batch_new(100);
	struct sm_batch *none = sm_batch_new(0);

	(void)state;
	for (int i = 0; i < 100; i++) {
		in.value = i;
		assert_int_equal(sm_batch_add(b, &in), 0);
	}
	assert_int_equal(sm_batch_add(b, &in), -E2BIG);
	assert_int_equal(sm_batch_add(b, &in), -E2BIG);
	in.value = NAN; /* invalid is reported as invalid, not counted as dropped */
	assert_int_equal(sm_batch_add(b, &in), -EINVAL);
	assert_int_equal(sm_batch_count(b), 100);
	assert_int_equal(sm_batch_dropped(b), 2);
	assert_true(sm_batch_get(b, 99)->value == 99);

	in.value = 1;
	assert_int_equal(sm_batch_add(none, &in), -E2BIG);
	assert_int_equal(sm_batch_count(none), 0);
	assert_int_equal(sm_batch_dropped(none), 1);

	sm_batch_free(none);
	sm_batch_free(b);
	sm_batch_free(NULL);
	assert_int_equal(sm_batch_count(NULL), 0);
	assert_int_equal(sm_batch_dropped(NULL), 0);
	assert_null(sm_batch_get(NULL, 0));
}

/* Many series with long strings: the arena spans several chunks. */
static void test_many_series(void **state)
{
	struct sm_batch *b = sm_batch_new(5000);
	char value[200];
	char metric[64];

	(void)state;
	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	for (int i = 0; i < 5000; i++) {
		struct sm_label l[] = {{.name = "k", .value = value},
		                       {.name = "i", .value = metric}};
		struct sm_series_in in = {.metric = metric, .labels = l, .n_labels = 2, .value = i};

		(void)snprintf(metric, sizeof(metric), "metric_%d", i);
		assert_int_equal(sm_batch_add(b, &in), 0);
	}
	for (int i = 0; i < 5000; i += 499) {
		const struct sm_series *s = sm_batch_get(b, (size_t)i);

		(void)snprintf(metric, sizeof(metric), "metric_%d", i);
		assert_string_equal(s->metric, metric);
		assert_string_equal(s->labels[0].name, "i");
		assert_string_equal(s->labels[0].value, metric);
		assert_int_equal(strlen(s->labels[1].value), 63);
	}
	sm_batch_free(b);
}

static void test_steal(void **state)
{
	struct sm_series_in in = {.metric = "m", .value = 1};
	struct sm_batch *b = sm_batch_new(3);
	struct sm_series_arena *arena = (struct sm_series_arena *)(uintptr_t)1;
	struct sm_series *series;
	size_t n = 99;

	(void)state;
	/* empty batch */
	series = sm_batch_steal(b, &n, &arena);
	assert_null(series);
	assert_int_equal(n, 0);
	assert_null(arena);

	for (int i = 0; i < 3; i++)
		assert_int_equal(sm_batch_add(b, &in), 0);
	assert_int_equal(sm_batch_add(b, &in), -E2BIG);
	series = sm_batch_steal(b, &n, &arena);
	assert_non_null(series);
	assert_non_null(arena);
	assert_int_equal(n, 3);
	assert_string_equal(series[2].metric, "m");
	series[2].timestamp_wall_ms = 1234; /* the store may write */

	/* the batch is empty and reusable; dropped is kept */
	assert_int_equal(sm_batch_count(b), 0);
	assert_int_equal(sm_batch_dropped(b), 1);
	assert_null(sm_batch_get(b, 0));
	in.metric = "again";
	assert_int_equal(sm_batch_add(b, &in), 0);
	assert_string_equal(sm_batch_get(b, 0)->metric, "again");
	sm_batch_free(b);

	/* the stolen series outlive the batch */
	assert_string_equal(series[0].metric, "m");
	sm_series_arena_free(arena);
	sm_series_arena_free(NULL);
}

static void test_sanitize(void **state)
{
	static const struct {
		const char *raw;
		const char *want;
	} rows[] = {
	    {"emails", "emails"},
	    {"idle in transaction", "idle_in_transaction"},
	    {"", ""},
	    {"a.b-c_d", "a.b-c_d"},
	    {"queue:high", "queue_high"},
	    {"_leading", "leading"},
	    {"trailing-", "trailing"},
	    {"..x..", "x"},
	    {"---", ""},
	    {" ", ""},
	    {"caf\xc3\xa9", "caf"},
	    {"\xc3\xa9t\xc3\xa9", "t"},
	    {"a/b", "a_b"},
	    {"123", "123"},
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
	    /* cut to 63 first, then trimmed: char 63 is '-' */
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbb",
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
	    {NULL, ""},
	};
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(rows); i++) {
		char out[64];

		memset(out, 'x', sizeof(out));
		sm_label_value_sanitize(rows[i].raw, out);
		if (strcmp(out, rows[i].want) != 0 || !sm_label_value_is_valid(out)) {
			print_error("sanitize row %zu '%s': got '%s', want '%s'\n", i,
			            rows[i].raw ? rows[i].raw : "NULL", out, rows[i].want);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* Strings that repeat across series are stored once; a caller's buffer reused with other
 * contents is never mistaken for the string it held before; a stolen arena shares nothing
 * with the batch's next series. */
static void test_repeated_strings(void **state)
{
	struct sm_batch *b = sm_batch_new(1000);
	struct sm_series_arena *arena = NULL, *arena2 = NULL;
	const struct sm_series *s;
	struct sm_series *stolen;
	char value[32], name[32], metric[32];
	const char *old_metric;
	size_t n, copies = 0;

	(void)state;
	assert_non_null(b);
	for (int i = 0; i < 1000; i++) {
		struct sm_label labels[] = {{.name = "queue", .value = value},
		                            {.name = "kind", .value = i % 2 ? "lag" : "pending"}};
		struct sm_object_ref obj = {.resource = "deployments.apps", .name = name};
		struct sm_series_in in = {.metric = metric,
		                          .labels = labels,
		                          .n_labels = N_ELEMENTS(labels),
		                          .value = i,
		                          .object = &obj};

		snprintf(metric, sizeof(metric), "%s", i < 500 ? "redis_queue_length" : "redis_q");
		snprintf(value, sizeof(value), "q%d", i);
		snprintf(name, sizeof(name), "w-q%d", i / 2);
		assert_int_equal(sm_batch_add(b, &in), 0);
	}
	for (size_t i = 0; i < 1000; i++) {
		char want[32];

		s = sm_batch_get(b, i);
		assert_string_equal(s->metric, i < 500 ? "redis_queue_length" : "redis_q");
		/* A cache slot taken by another string costs one more copy, now and then. */
		if (i > 0) {
			const struct sm_series *prev = sm_batch_get(b, i - 1);

			copies += i != 500 && s->metric != prev->metric;
			copies += s->labels[1].name != prev->labels[1].name;
			copies += s->object->resource != prev->object->resource;
		}
		assert_string_equal(s->labels[0].name, "kind");
		assert_string_equal(s->labels[0].value, i % 2 ? "lag" : "pending");
		assert_string_equal(s->labels[1].name, "queue");
		snprintf(want, sizeof(want), "q%zu", i);
		assert_string_equal(s->labels[1].value, want);
		assert_string_equal(s->object->resource, "deployments.apps");
		snprintf(want, sizeof(want), "w-q%zu", i / 2);
		assert_string_equal(s->object->name, want);
		assert_true(s->value == (double)i);
	}
	assert_true(copies < 3000 / 10);
	stolen = sm_batch_steal(b, &n, &arena);
	assert_int_equal(n, 1000);
	old_metric = stolen[0].metric;

	{
		struct sm_series_in in = {.metric = "redis_queue_length", .value = 1};

		assert_int_equal(sm_batch_add(b, &in), 0);
	}
	s = sm_batch_get(b, 0);
	assert_ptr_not_equal(s->metric, old_metric);
	sm_series_arena_free(arena);
	assert_string_equal(s->metric, "redis_queue_length");
	stolen = sm_batch_steal(b, &n, &arena2);
	assert_int_equal(n, 1);
	assert_string_equal(stolen[0].metric, "redis_queue_length");
	sm_series_arena_free(arena2);
	sm_batch_free(b);
}

/* A series that could not be read: copied like a series, with its reason; bounded apart from
 * the series; carried by the arena through a steal. */
static void test_failures(void **state)
{
	char error[] = "key 'queue:emails' is a string, not a list";
	char value[] = "emails";
	struct sm_label labels[] = {{.name = "queue", .value = value}};
	struct sm_object_ref obj = {.resource = "deployments.apps", .name = "worker-emails"};
	struct sm_series_in in = {
	    .metric = "q", .labels = labels, .n_labels = 1, .value = NAN, .object = &obj};
	struct sm_series_in series = {.metric = "q", .value = 1};
	struct sm_batch *b = sm_batch_new(2);
	struct sm_series_arena *arena = NULL;
	const struct sm_series_failure *f;
	size_t n = 99;

	(void)state;
	assert_non_null(b);
	assert_int_equal(sm_batch_failure_count(b), 0);
	assert_null(sm_batch_get_failure(b, 0));
	/* The value is ignored: a NaN is no reason to refuse it. */
	assert_int_equal(sm_batch_add_failure(b, &in, false, error), 0);
	memset(error, 'X', sizeof(error) - 1);
	memset(value, 'X', sizeof(value) - 1);
	assert_int_equal(sm_batch_failure_count(b), 1);
	assert_int_equal(sm_batch_count(b), 0);
	f = sm_batch_get_failure(b, 0);
	assert_string_equal(f->error, "key 'queue:emails' is a string, not a list");
	assert_string_equal(f->series.metric, "q");
	assert_int_equal(f->series.n_labels, 1);
	assert_string_equal(f->series.labels[0].value, "emails");
	assert_string_equal(f->series.object->name, "worker-emails");
	assert_true(f->series.value == 0);
	assert_false(f->labels_partial);

	/* Refused like a series, and without a reason. */
	in.metric = "";
	assert_int_equal(sm_batch_add_failure(b, &in, false, "x"), -EINVAL);
	in.metric = "q";
	assert_int_equal(sm_batch_add_failure(b, &in, true, NULL), -EINVAL);
	assert_int_equal(sm_batch_failure_count(b), 1);

	/* max_series failures besides max_series series; beyond, counted as dropped. */
	assert_int_equal(sm_batch_add_failure(b, &(struct sm_series_in){.metric = "p"}, true,
	                                      "query for 'p' failed"),
	                 0);
	assert_int_equal(sm_batch_add(b, &series), 0);
	assert_int_equal(sm_batch_add(b, &series), 0);
	assert_int_equal(sm_batch_add_failure(b, &in, false, "x"), -E2BIG);
	assert_int_equal(sm_batch_dropped(b), 1);
	sm_batch_add_dropped(b, 3);
	assert_int_equal(sm_batch_dropped(b), 4);

	(void)sm_batch_steal(b, &n, &arena);
	assert_int_equal(n, 2);
	assert_int_equal(sm_batch_failure_count(b), 0);
	f = sm_series_arena_failures(arena, &n);
	assert_int_equal(n, 2);
	assert_string_equal(f[1].series.metric, "p");
	assert_true(f[1].labels_partial);
	assert_string_equal(f[1].error, "query for 'p' failed");
	sm_series_arena_free(arena);
	assert_null(sm_series_arena_failures(NULL, &n));
	assert_int_equal(n, 0);

	/* Only failures: the arena still holds them. */
	assert_int_equal(sm_batch_add_failure(b, &in, false, "again"), 0);
	assert_null(sm_batch_steal(b, &n, &arena));
	assert_int_equal(n, 0);
	f = sm_series_arena_failures(arena, &n);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].error, "again");
	sm_series_arena_free(arena);
	sm_batch_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_copies_and_sorts),
	    cmocka_unit_test(test_minimal_series),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_max_series),
	    cmocka_unit_test(test_many_series),
	    cmocka_unit_test(test_steal),
	    cmocka_unit_test(test_sanitize),
	    cmocka_unit_test(test_repeated_strings),
	    cmocka_unit_test(test_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
