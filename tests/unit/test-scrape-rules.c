/* SPDX-License-Identifier: MIT */
/* The scrape collector's pure parts (scrape-internal.h): the sample table (which series a
 * body adds, keyed by name and sorted labels, and its errors) and the rules over it (rate,
 * quantile, average and gauge per pod, grouped by `by`, summed over targets, and withheld when
 * a target's part is missing). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/buf.h"
#include "scalemetrics/error.h"
#include "scalemetrics/series.h"
#include "scalemetrics/window.h"

#include "../../src/collectors/scrape-internal.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_SERIES    100

/* A rule as the config parser leaves it; the strings are literals, never freed here. */
static struct scrape_rule rule_of(enum rule_kind kind, const char *metric, const char *from,
                                  int64_t window_ms)
{
	struct scrape_rule r = {.kind = kind, .metric = (char *)metric, .window_ms = window_ms};

	switch (kind) {
	case RULE_RATE:
		r.counter = (char *)from;
		break;
	case RULE_GAUGE:
		r.gauge = (char *)from;
		break;
	case RULE_QUANTILE:
	case RULE_AVERAGE:
		r.histogram = (char *)from;
		break;
	case RULE_KIND_MAX:
		break;
	}
	return r;
}

static void set_by(struct scrape_rule *r, const char **by, size_t n)
{
	r->by.v = (char **)by;
	r->by.n = n;
}

/* One scrape of one target: the body arrives at at_ms as round number round. */
static int ingest(struct scrape_table *t, const struct scrape_names *names, const char *body,
                  uint64_t round, int64_t at_ms, struct sm_error *err)
{
	struct sm_buf key = {0};
	int r = sm_scrape_table_ingest(t, names, body, strlen(body), round, at_ms, MAX_SERIES, &key,
	                               err);

	free(key.data);
	return r;
}

static const struct scrape_series *find_series(const struct scrape_table *t, const char *name,
                                               const char *label, const char *value)
{
	for (size_t i = 0; i < t->cap; i++) {
		const struct scrape_series *e = t->slots[i];

		if (!e || strcmp(e->key, name) != 0)
			continue;
		if (!label)
			return e;
		for (size_t j = 0; j < e->n_labels; j++)
			if (strcmp(e->labels[j].name, label) == 0 &&
			    strcmp(e->labels[j].value, value) == 0)
				return e;
	}
	return NULL;
}

static const char *label_value(const struct sm_series *s, const char *name)
{
	for (size_t i = 0; i < s->n_labels; i++)
		if (strcmp(s->labels[i].name, name) == 0)
			return s->labels[i].value;
	return NULL;
}

/* The batch's series of metric with (when label is not NULL) label=value and on pod (NULL:
 * the aggregate, no object). */
static const struct sm_series *find_out(const struct sm_batch *b, const char *metric,
                                        const char *pod, const char *label, const char *value)
{
	for (size_t i = 0; i < sm_batch_count(b); i++) {
		const struct sm_series *s = sm_batch_get(b, i);
		const char *v;

		if (strcmp(s->metric, metric) != 0)
			continue;
		if (pod ? !s->object || strcmp(s->object->name, pod) != 0 : s->object != NULL)
			continue;
		if (!label)
			return s;
		v = label_value(s, label);
		if (value ? v && strcmp(v, value) == 0 : v == NULL)
			return s;
	}
	return NULL;
}

/* ---- the sample table ---- */

static void test_table_keeps_only_used_names(void **state)
{
	struct scrape_names names = {0};
	struct scrape_table t = {0};
	struct sm_error err = {0};

	(void)state;
	assert_int_equal(sm_scrape_names_add(&names, "req_total", "", 60000, false), 0);
	assert_int_equal(sm_scrape_names_add(&names, "lat", "_bucket", 300000, true), 1);
	/* The same name again: the same index, the longer window kept. */
	assert_int_equal(sm_scrape_names_add(&names, "req_total", "", 120000, false), 0);
	assert_int_equal(names.v[0].keep_ms, 120000);
	assert_int_equal(ingest(&t, &names,
	                        "other_total 5\n"
	                        "req_total{code=\"200\"} 1\n"
	                        "req_total{code=\"500\"} 2\n"
	                        "lat_bucket{le=\"0.5\"} 3\n"
	                        "lat_bucket{le=\"+Inf\"} 4\n"
	                        "lat_sum 9\n",
	                        1, 1000, &err),
	                 0);
	assert_int_equal(t.n, 4);
	assert_null(find_series(&t, "other_total", NULL, NULL));
	assert_null(find_series(&t, "lat_sum", NULL, NULL));
	assert_non_null(find_series(&t, "req_total", "code", "500"));
	assert_true(isinf(find_series(&t, "lat_bucket", "le", "+Inf")->le));
	assert_true(find_series(&t, "lat_bucket", "le", "0.5")->le == 0.5);
	sm_scrape_table_done(&t);
	sm_scrape_names_done(&names);
}

static void test_table_label_order_is_one_series(void **state)
{
	struct scrape_names names = {0};
	struct scrape_table t = {0};
	struct sm_error err = {0};
	const struct scrape_series *e;

	(void)state;
	assert_int_equal(sm_scrape_names_add(&names, "x_total", "", 60000, false), 0);
	assert_int_equal(ingest(&t, &names, "x_total{a=\"1\",b=\"2\"} 1\n", 1, 1000, &err), 0);
	assert_int_equal(ingest(&t, &names, "x_total{b=\"2\",a=\"1\"} 3\n", 2, 2000, &err), 0);
	assert_int_equal(t.n, 1);
	e = find_series(&t, "x_total", "b", "2");
	assert_non_null(e);
	assert_int_equal(e->n_pts, 2);
	assert_true(e->pts[0].v == 1 && e->pts[1].v == 3);
	assert_int_equal(e->pts[1].t_ms, 2000);
	sm_scrape_table_done(&t);
	sm_scrape_names_done(&names);
}

static void test_table_forgets_vanished_and_drops_old_points(void **state)
{
	struct scrape_names names = {0};
	struct scrape_table t = {0};
	struct sm_error err = {0};
	const struct scrape_series *e;

	(void)state;
	assert_int_equal(sm_scrape_names_add(&names, "x_total", "", 10000, false), 0);
	assert_int_equal(ingest(&t, &names, "x_total{p=\"a\"} 1\nx_total{p=\"b\"} 1\n", 1, 0, &err),
	                 0);
	assert_int_equal(ingest(&t, &names, "x_total{p=\"a\"} 2\n", 2, 5000, &err), 0);
	assert_int_equal(t.n, 1);
	assert_null(find_series(&t, "x_total", "p", "b"));
	assert_int_equal(ingest(&t, &names, "x_total{p=\"a\"} 3\n", 3, 12000, &err), 0);
	e = find_series(&t, "x_total", "p", "a");
	/* keep_ms 10s: the point at 0 is older than 12s - 10s. */
	assert_int_equal(e->n_pts, 2);
	assert_int_equal(e->pts[0].t_ms, 5000);
	sm_scrape_table_done(&t);
	sm_scrape_names_done(&names);
}

static const struct {
	const char *name;
	const char *body;
	int r;
	const char *message;
} bad_bodies[] = {
    {"duplicate series", "x_total{a=\"1\"} 1\nx_total{a=\"1\"} 2\n", -EINVAL,
     "line 2: duplicate series 'x_total'"},
    {"bucket without le", "h_bucket{a=\"1\"} 1\n", -EINVAL,
     "line 1: 'h_bucket' needs a numeric 'le' label"},
    {"bucket with NaN le", "h_bucket{le=\"NaN\"} 1\n", -EINVAL,
     "line 1: 'h_bucket' needs a numeric 'le' label"},
    {"malformed line", "x_total{a=1} 1\n", -EINVAL, "line 1: "},
};

static void test_table_errors_leave_points(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(bad_bodies); i++) {
		struct scrape_names names = {0};
		struct scrape_table t = {0};
		struct sm_error err = {0};
		const struct scrape_series *e;

		print_message("case: %s\n", bad_bodies[i].name);
		assert_int_equal(sm_scrape_names_add(&names, "x_total", "", 60000, false), 0);
		assert_int_equal(sm_scrape_names_add(&names, "h", "_bucket", 60000, true), 1);
		assert_int_equal(ingest(&t, &names, "x_total{a=\"1\"} 7\n", 1, 1000, &err), 0);
		assert_int_equal(ingest(&t, &names, bad_bodies[i].body, 2, 2000, &err),
		                 bad_bodies[i].r);
		assert_non_null(strstr(err.message, bad_bodies[i].message));
		e = find_series(&t, "x_total", "a", "1");
		assert_non_null(e);
		assert_int_equal(e->n_pts, 1);
		assert_true(e->pts[0].v == 7);
		sm_scrape_table_done(&t);
		sm_scrape_names_done(&names);
	}
}

static void test_table_max_series(void **state)
{
	struct scrape_names names = {0};
	struct scrape_table t = {0};
	struct sm_error err = {0};
	struct sm_buf key = {0};
	const char *body = "x_total{a=\"1\"} 1\nx_total{a=\"2\"} 1\nx_total{a=\"3\"} 1\n";

	(void)state;
	assert_int_equal(sm_scrape_names_add(&names, "x_total", "", 60000, false), 0);
	assert_int_equal(
	    sm_scrape_table_ingest(&t, &names, body, strlen(body), 1, 1000, 2, &key, &err), -E2BIG);
	assert_string_equal(err.message, "line 3: more than 2 series used by the rules");
	assert_int_equal(
	    sm_scrape_table_ingest(&t, &names, body, strlen(body), 2, 2000, 3, &key, &err), 0);
	free(key.data);
	sm_scrape_table_done(&t);
	sm_scrape_names_done(&names);
}

/* ---- rules ---- */

/* Two pods, a and b, each with one table; rules bound to one name table. */
struct fixture {
	struct scrape_names names;
	struct scrape_table a, b;
	struct scrape_pod pod_a, pod_b;
	struct scrape_aggregate agg;
	struct sm_batch *batch;
};

static void fixture_init(struct fixture *f, struct scrape_rule **rules, size_t n)
{
	*f = (struct fixture){
	    .pod_a = {.name = "a", .namespace = "ns"},
	    .pod_b = {.name = "b", .namespace = "ns"},
	};
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sm_scrape_rule_bind(rules[i], &f->names), 0);
	assert_int_equal(sm_scrape_aggregate_init(&f->agg, rules, n), 0);
	f->batch = sm_batch_new(MAX_SERIES);
	assert_non_null(f->batch);
	sm_scrape_aggregate_begin(&f->agg);
}

static void fixture_done(struct fixture *f)
{
	sm_batch_free(f->batch);
	sm_scrape_aggregate_done(&f->agg);
	sm_scrape_table_done(&f->a);
	sm_scrape_table_done(&f->b);
	sm_scrape_names_done(&f->names);
}

static void feed(struct fixture *f, struct scrape_table *t, const char *body, uint64_t round,
                 int64_t at_ms)
{
	struct sm_error err = {0};

	assert_int_equal(ingest(t, &f->names, body, round, at_ms, &err), 0);
}

static void test_rate_per_pod_and_sum(void **state)
{
	struct scrape_rule rate = rule_of(RULE_RATE, "rps", "req_total", 20000);
	struct scrape_rule *rules[] = {&rate};
	struct fixture f;
	const struct sm_series *s;

	(void)state;
	fixture_init(&f, rules, N_ELEMENTS(rules));
	/* a: +10 every 10s (1/s over the 20s window, points on both edges); b: 3/s. */
	feed(&f, &f.a, "req_total 100\n", 1, 0);
	feed(&f, &f.b, "req_total 0\n", 1, 0);
	feed(&f, &f.a, "req_total 110\n", 2, 10000);
	feed(&f, &f.b, "req_total 30\n", 2, 10000);
	feed(&f, &f.a, "req_total 120\n", 3, 20000);
	feed(&f, &f.b, "req_total 60\n", 3, 20000);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.a, 20000, &f.pod_a, f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.b, 20000, &f.pod_b, f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_finish(&f.agg, f.batch), 0);
	s = find_out(f.batch, "rps", "a", NULL, NULL);
	assert_non_null(s);
	assert_float_equal(s->value, 1.0, 1e-9);
	assert_int_equal(s->window_s, 20);
	assert_string_equal(s->object->namespace, "ns");
	assert_float_equal(find_out(f.batch, "rps", "b", NULL, NULL)->value, 3.0, 1e-9);
	s = find_out(f.batch, "rps", NULL, NULL, NULL);
	assert_non_null(s);
	assert_float_equal(s->value, 4.0, 1e-9);
	assert_int_equal(sm_batch_count(f.batch), 3);
	fixture_done(&f);
}

static void test_rate_reset_and_too_few_points(void **state)
{
	struct scrape_rule rate = rule_of(RULE_RATE, "rps", "req_total", 20000);
	struct scrape_rule *rules[] = {&rate};
	struct fixture f;

	(void)state;
	fixture_init(&f, rules, N_ELEMENTS(rules));
	/* a restarted: 100 -> 110 -> 10 is an increase of 10 + 10 (not a drop of 100). */
	feed(&f, &f.a, "req_total 100\n", 1, 0);
	feed(&f, &f.a, "req_total 110\n", 2, 10000);
	feed(&f, &f.a, "req_total 10\n", 3, 20000);
	/* b has one point: no rate yet, absent rather than 0. */
	feed(&f, &f.b, "req_total 5\n", 3, 20000);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.a, 20000, &f.pod_a, f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.b, 20000, &f.pod_b, f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_finish(&f.agg, f.batch), 0);
	assert_float_equal(find_out(f.batch, "rps", "a", NULL, NULL)->value, 1.0, 1e-9);
	assert_null(find_out(f.batch, "rps", "b", NULL, NULL));
	assert_float_equal(find_out(f.batch, "rps", NULL, NULL, NULL)->value, 1.0, 1e-9);
	fixture_done(&f);
}

static void test_by_groups_and_missing_label(void **state)
{
	static const char *by[] = {"code"};
	struct scrape_rule rate = rule_of(RULE_RATE, "rps", "req_total", 10000);
	struct scrape_rule *rules[] = {&rate};
	struct fixture f;
	const struct sm_series *s;

	(void)state;
	set_by(&rate, by, N_ELEMENTS(by));
	fixture_init(&f, rules, N_ELEMENTS(rules));
	/* Two paths with code 200 sum into one group; a series without code is its own group,
	 * served without the label. */
	feed(&f, &f.a,
	     "req_total{code=\"200\",path=\"/x\"} 0\nreq_total{code=\"200\",path=\"/y\"} 0\n"
	     "req_total{code=\"500\"} 0\nreq_total{path=\"/z\"} 0\n",
	     1, 0);
	feed(&f, &f.a,
	     "req_total{path=\"/x\",code=\"200\"} 10\nreq_total{code=\"200\",path=\"/y\"} 20\n"
	     "req_total{code=\"500\"} 50\nreq_total{path=\"/z\"} 70\n",
	     2, 10000);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.a, 10000, NULL, f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_finish(&f.agg, f.batch), 0);
	/* No pod given: the aggregate only. */
	assert_int_equal(sm_batch_count(f.batch), 3);
	s = find_out(f.batch, "rps", NULL, "code", "200");
	assert_non_null(s);
	assert_float_equal(s->value, 3.0, 1e-9);
	assert_int_equal(s->n_labels, 1);
	assert_float_equal(find_out(f.batch, "rps", NULL, "code", "500")->value, 5.0, 1e-9);
	s = find_out(f.batch, "rps", NULL, "code", NULL);
	assert_non_null(s);
	assert_float_equal(s->value, 7.0, 1e-9);
	assert_int_equal(s->n_labels, 0);
	fixture_done(&f);
}

static void test_quantile_sums_buckets_over_pods(void **state)
{
	struct scrape_rule q = rule_of(RULE_QUANTILE, "p75", "lat", 10000);
	struct scrape_rule *rules[] = {&q};
	struct fixture f;

	(void)state;
	q.quantile = (struct sm_opt_double){.set = true, .value = 0.75};
	fixture_init(&f, rules, N_ELEMENTS(rules));
	feed(&f, &f.a,
	     "lat_bucket{le=\"0.1\"} 0\nlat_bucket{le=\"0.5\"} 0\nlat_bucket{le=\"+Inf\"} 0\n", 1,
	     0);
	feed(&f, &f.b,
	     "lat_bucket{le=\"0.1\"} 0\nlat_bucket{le=\"0.5\"} 0\nlat_bucket{le=\"+Inf\"} 0\n", 1,
	     0);
	/* a: 10 under 0.1, 10 more under 0.5 (p75 = 0.3); b: 10 under 0.1, none above
	 * (p75 = 0.075). Summed: 20 | 30 | 30, rank 22.5 in (0.1, 0.5]: 0.1 + 0.4 x 2.5/10. */
	feed(&f, &f.a,
	     "lat_bucket{le=\"0.1\"} 10\nlat_bucket{le=\"0.5\"} 20\nlat_bucket{le=\"+Inf\"} 20\n",
	     2, 10000);
	feed(&f, &f.b,
	     "lat_bucket{le=\"0.1\"} 10\nlat_bucket{le=\"0.5\"} 10\nlat_bucket{le=\"+Inf\"} 10\n",
	     2, 10000);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.a, 10000, &f.pod_a, f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.b, 10000, &f.pod_b, f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_finish(&f.agg, f.batch), 0);
	assert_float_equal(find_out(f.batch, "p75", "a", NULL, NULL)->value, 0.3, 1e-9);
	assert_float_equal(find_out(f.batch, "p75", "b", NULL, NULL)->value, 0.075, 1e-9);
	assert_float_equal(find_out(f.batch, "p75", NULL, NULL, NULL)->value, 0.2, 1e-9);
	fixture_done(&f);
}

static void test_average_and_gauge(void **state)
{
	struct scrape_rule avg = rule_of(RULE_AVERAGE, "avg_lat", "lat", 10000);
	struct scrape_rule g = rule_of(RULE_GAUGE, "depth", "queue_depth", 0);
	struct scrape_rule *rules[] = {&avg, &g};
	struct fixture f;
	const struct sm_series *s;

	(void)state;
	fixture_init(&f, rules, N_ELEMENTS(rules));
	feed(&f, &f.a, "lat_sum 1\nlat_count 10\nqueue_depth 4\n", 1, 0);
	feed(&f, &f.b, "lat_sum 0\nlat_count 0\nqueue_depth 1\n", 1, 0);
	/* a: 4s over 10 requests; b: 2s over 30. Sum: 6 / 40. */
	feed(&f, &f.a, "lat_sum 5\nlat_count 20\nqueue_depth 7\n", 2, 10000);
	feed(&f, &f.b, "lat_sum 2\nlat_count 30\nqueue_depth NaN\n", 2, 10000);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.a, 10000, &f.pod_a, f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.b, 10000, &f.pod_b, f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_finish(&f.agg, f.batch), 0);
	assert_float_equal(find_out(f.batch, "avg_lat", "a", NULL, NULL)->value, 0.4, 1e-9);
	assert_float_equal(find_out(f.batch, "avg_lat", NULL, NULL, NULL)->value, 0.15, 1e-9);
	s = find_out(f.batch, "depth", "a", NULL, NULL);
	assert_float_equal(s->value, 7.0, 1e-9);
	assert_int_equal(s->window_s, 0);
	/* b's gauge is NaN: absent on the pod, and not in the sum. */
	assert_null(find_out(f.batch, "depth", "b", NULL, NULL));
	assert_float_equal(find_out(f.batch, "depth", NULL, NULL, NULL)->value, 7.0, 1e-9);
	fixture_done(&f);
}

static void test_missing_target_withholds_sums(void **state)
{
	struct scrape_rule rate = rule_of(RULE_RATE, "rps", "req_total", 20000);
	struct scrape_rule g = rule_of(RULE_GAUGE, "depth", "queue_depth", 0);
	struct scrape_rule *rules[] = {&rate, &g};
	struct fixture f;
	const struct sm_series_failure *fail;

	(void)state;
	fixture_init(&f, rules, N_ELEMENTS(rules));
	feed(&f, &f.a, "req_total 100\nqueue_depth 1\n", 1, 0);
	feed(&f, &f.a, "req_total 120\nqueue_depth 2\n", 2, 20000);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.a, 20000, &f.pod_a, f.batch), 0);
	/* b failed with nothing recent: a sum without it would be wrong. */
	assert_int_equal(
	    sm_scrape_pod_fail(rules, N_ELEMENTS(rules), &f.pod_b, "b: refused", f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_miss(&f.agg, "b: refused", f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_finish(&f.agg, f.batch), 0);
	/* a's own series stand; no aggregate at all. */
	assert_non_null(find_out(f.batch, "rps", "a", NULL, NULL));
	assert_non_null(find_out(f.batch, "depth", "a", NULL, NULL));
	assert_null(find_out(f.batch, "rps", NULL, NULL, NULL));
	assert_null(find_out(f.batch, "depth", NULL, NULL, NULL));
	assert_int_equal(sm_batch_count(f.batch), 2);
	/* Failures: each rule on pod b, and each rule's aggregate. */
	assert_int_equal(sm_batch_failure_count(f.batch), 4);
	for (size_t i = 0; i < 4; i++) {
		fail = sm_batch_get_failure(f.batch, i);
		assert_string_equal(fail->error, "b: refused");
		assert_true(fail->labels_partial);
		if (i < 2)
			assert_string_equal(fail->series.object->name, "b");
		else
			assert_null(fail->series.object);
	}
	assert_int_equal(sm_batch_get_failure(f.batch, 2)->series.window_s, 20);
	/* The next round starts whole again. */
	sm_scrape_aggregate_begin(&f.agg);
	assert_int_equal(sm_scrape_aggregate_add(&f.agg, &f.a, 20000, NULL, f.batch), 0);
	assert_int_equal(sm_scrape_aggregate_finish(&f.agg, f.batch), 0);
	assert_float_equal(find_out(f.batch, "depth", NULL, NULL, NULL)->value, 2.0, 1e-9);
	fixture_done(&f);
}

static const struct {
	const char *name;
	bool ok, has_ok;
	int64_t last_ok_ms, now_ms, max_age_ms;
	enum scrape_part part;
} parts[] = {
    {"scraped this round", true, true, 1000, 1000, 15000, SCRAPE_PART_FRESH},
    {"failed, last good recent", false, true, 1000, 11000, 15000, SCRAPE_PART_RECENT},
    {"failed, last good exactly max_age ago", false, true, 1000, 16000, 15000, SCRAPE_PART_RECENT},
    {"failed, last good too old", false, true, 1000, 16001, 15000, SCRAPE_PART_MISSING},
    {"never scraped", false, false, 0, 1000, 15000, SCRAPE_PART_MISSING},
};

static void test_part(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(parts); i++) {
		print_message("case: %s\n", parts[i].name);
		assert_int_equal(sm_scrape_part(parts[i].ok, parts[i].has_ok, parts[i].last_ok_ms,
		                                parts[i].now_ms, parts[i].max_age_ms),
		                 parts[i].part);
	}
}

static void test_bind_average_reads_sum_and_count(void **state)
{
	struct scrape_names names = {0};
	struct scrape_rule avg = rule_of(RULE_AVERAGE, "m", "lat", 60000);
	struct scrape_rule q = rule_of(RULE_QUANTILE, "q", "lat", 300000);

	(void)state;
	assert_int_equal(sm_scrape_rule_bind(&avg, &names), 0);
	assert_int_equal(sm_scrape_rule_bind(&q, &names), 0);
	assert_int_equal(avg.name_idx, -1);
	assert_string_equal(names.v[avg.sum_idx].name, "lat_sum");
	assert_string_equal(names.v[avg.count_idx].name, "lat_count");
	assert_string_equal(names.v[q.name_idx].name, "lat_bucket");
	assert_true(names.v[q.name_idx].is_bucket);
	assert_false(names.v[avg.sum_idx].is_bucket);
	assert_int_equal(names.v[q.name_idx].keep_ms, 300000);
	sm_scrape_names_done(&names);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_keeps_only_used_names),
	    cmocka_unit_test(test_table_label_order_is_one_series),
	    cmocka_unit_test(test_table_forgets_vanished_and_drops_old_points),
	    cmocka_unit_test(test_table_errors_leave_points),
	    cmocka_unit_test(test_table_max_series),
	    cmocka_unit_test(test_rate_per_pod_and_sum),
	    cmocka_unit_test(test_rate_reset_and_too_few_points),
	    cmocka_unit_test(test_by_groups_and_missing_label),
	    cmocka_unit_test(test_quantile_sums_buckets_over_pods),
	    cmocka_unit_test(test_average_and_gauge),
	    cmocka_unit_test(test_missing_target_withholds_sums),
	    cmocka_unit_test(test_part),
	    cmocka_unit_test(test_bind_average_reads_sum_and_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
