/* SPDX-License-Identifier: MIT */
/* Window math against hand-computed values: rate() with resets and extrapolation, increase,
 * histogram_quantile interpolation and edge cases, averages. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/window.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_POINTS    8

struct rate_case {
	const char *name;
	struct sm_window_point pts[MAX_POINTS];
	size_t n;
	int64_t start_ms, end_ms;
	int ret;
	double rate;     /* rate() */
	double increase; /* increase without extrapolation */
};

static const struct rate_case rate_cases[] = {
    {.name = "steady, points on the edges",
     .pts = {{0, 100},
             {10000, 110},
             {20000, 120},
             {30000, 130},
             {40000, 140},
             {50000, 150},
             {60000, 160}},
     .n = 7,
     .start_ms = 0,
     .end_ms = 60000,
     .rate = 1.0,
     .increase = 60},
    /* First point 5s after the range start (< 1.1 x 10s): extrapolated to the edge:
     * 60 x 65/60 = 65 over 65s. */
    {.name = "extrapolated to a near edge",
     .pts = {{0, 100},
             {10000, 110},
             {20000, 120},
             {30000, 130},
             {40000, 140},
             {50000, 150},
             {60000, 160}},
     .n = 7,
     .start_ms = -5000,
     .end_ms = 60000,
     .rate = 1.0,
     .increase = 60},
    /* A restart between 120 and 5: the increase is 20 + 5 + 10 = 35 over 40s. */
    {.name = "counter reset",
     .pts = {{0, 100}, {10000, 110}, {20000, 120}, {30000, 5}, {40000, 15}},
     .n = 5,
     .start_ms = 0,
     .end_ms = 40000,
     .rate = 0.875,
     .increase = 35},
    /* Reset to exactly 0: 10 + 0 + 10 = 20 over 30s. */
    {.name = "reset to zero",
     .pts = {{0, 50}, {10000, 60}, {20000, 0}, {30000, 10}},
     .n = 4,
     .start_ms = 0,
     .end_ms = 30000,
     .rate = 20.0 / 30.0,
     .increase = 20},
    /* Two resets. 10 + 3 + 7 + 2 + 4 = 26 over 50s. */
    {.name = "two resets",
     .pts = {{0, 10}, {10000, 20}, {20000, 3}, {30000, 10}, {40000, 2}, {50000, 6}},
     .n = 6,
     .start_ms = 0,
     .end_ms = 50000,
     .rate = 26.0 / 50.0,
     .increase = 26},
    /* Points only from 20s to 40s in a 60s range: gaps of 20s exceed 1.1 x 10s, so each side
     * gets half an interval: 20 x 30/20 = 30 over 60s. */
    {.name = "series starts and ends inside the range",
     .pts = {{20000, 100}, {30000, 110}, {40000, 120}},
     .n = 3,
     .start_ms = 0,
     .end_ms = 60000,
     .rate = 0.5,
     .increase = 20},
    /* Start side limited by the zero point: 5 at t=10s growing 1/s was 0 at t=5s:
     * 20 x 25/20 = 25 over 30s. */
    {.name = "not extrapolated below zero",
     .pts = {{10000, 5}, {20000, 15}, {30000, 25}},
     .n = 3,
     .start_ms = 0,
     .end_ms = 30000,
     .rate = 25.0 / 30.0,
     .increase = 20},
    /* Points outside the range are ignored: only 30..60s count (30 over 30s). */
    {.name = "points outside the range",
     .pts = {{0, 0},
             {10000, 1000},
             {30000, 100},
             {40000, 110},
             {50000, 120},
             {60000, 130},
             {70000, 5000}},
     .n = 7,
     .start_ms = 30000,
     .end_ms = 60000,
     .rate = 1.0,
     .increase = 30},
    {.name = "flat counter",
     .pts = {{0, 7}, {10000, 7}},
     .n = 2,
     .start_ms = 0,
     .end_ms = 10000,
     .rate = 0,
     .increase = 0},
    {.name = "one point", .pts = {{0, 7}}, .n = 1, .start_ms = 0, .end_ms = 10000, .ret = -ENODATA},
    {.name = "one point in range",
     .pts = {{0, 7}, {20000, 8}},
     .n = 2,
     .start_ms = 10000,
     .end_ms = 30000,
     .ret = -ENODATA},
    {.name = "no points", .n = 0, .start_ms = 0, .end_ms = 10000, .ret = -ENODATA},
    {.name = "unordered",
     .pts = {{10000, 1}, {0, 2}},
     .n = 2,
     .start_ms = 0,
     .end_ms = 20000,
     .ret = -EINVAL},
    {.name = "empty range",
     .pts = {{0, 1}, {10000, 2}},
     .n = 2,
     .start_ms = 10000,
     .end_ms = 10000,
     .ret = -EINVAL},
};

static void test_rate_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(rate_cases); i++) {
		const struct rate_case *c = &rate_cases[i];
		double rate = -12345, inc = -12345;
		int r1 = sm_window_rate(c->pts, c->n, c->start_ms, c->end_ms, &rate);
		int r2 = sm_window_increase(c->pts, c->n, c->start_ms, c->end_ms, &inc);

		if (r1 != c->ret || r2 != c->ret) {
			print_error("case '%s': returned %d/%d, expected %d\n", c->name, r1, r2,
			            c->ret);
			fail();
		}
		if (c->ret < 0) {
			if (rate != -12345 || inc != -12345) {
				print_error("case '%s': output touched on error\n", c->name);
				fail();
			}
			continue;
		}
		if (fabs(rate - c->rate) > 1e-9 || fabs(inc - c->increase) > 1e-9) {
			print_error("case '%s': rate %.12g increase %.12g, expected %.12g %.12g\n",
			            c->name, rate, inc, c->rate, c->increase);
			fail();
		}
		if (rate < 0) {
			print_error("case '%s': negative rate\n", c->name);
			fail();
		}
	}
}

#define MAX_BUCKETS 8

struct quantile_case {
	const char *name;
	double q;
	struct sm_window_bucket b[MAX_BUCKETS];
	size_t n;
	int ret;
	double value;
};

static const struct quantile_case quantile_cases[] = {
    /* 100 observations: 10 <= 0.1, 20 in (0.1,0.25], 40 in (0.25,0.5], 20 in (0.5,1], 10
     * above 1. */
    {.name = "median interpolated",
     .q = 0.5,
     .b = {{0.1, 10}, {0.25, 30}, {0.5, 70}, {1, 90}, {INFINITY, 100}},
     .n = 5,
     .value = 0.375}, /* rank 50: 0.25 + 0.25 x 20/40 */
    {.name = "in the first bucket",
     .q = 0.05,
     .b = {{0.1, 10}, {0.25, 30}, {0.5, 70}, {1, 90}, {INFINITY, 100}},
     .n = 5,
     .value = 0.05}, /* 0 + 0.1 x 5/10 */
    {.name = "exactly a bucket bound",
     .q = 0.9,
     .b = {{0.1, 10}, {0.25, 30}, {0.5, 70}, {1, 90}, {INFINITY, 100}},
     .n = 5,
     .value = 1},
    {.name = "p95 in +Inf bucket gives highest finite bound",
     .q = 0.95,
     .b = {{0.1, 10}, {0.25, 30}, {0.5, 70}, {1, 90}, {INFINITY, 100}},
     .n = 5,
     .value = 1},
    {.name = "p95 interpolated",
     .q = 0.95,
     .b = {{0.1, 10}, {0.25, 30}, {0.5, 70}, {1, 98}, {INFINITY, 100}},
     .n = 5,
     .value = 0.5 + 0.5 * (25.0 / 28.0)}, /* rank 95: 0.5 + 0.5 x (95-70)/28 */
    {.name = "unsorted",
     .q = 0.5,
     .b = {{1, 90}, {INFINITY, 100}, {0.25, 30}, {0.1, 10}, {0.5, 70}},
     .n = 5,
     .value = 0.375},
    {.name = "duplicate bounds merged",
     .q = 0.5,
     .b = {{0.1, 5}, {0.1, 5}, {0.25, 30}, {0.5, 70}, {1, 90}, {INFINITY, 100}},
     .n = 6,
     .value = 0.375},
    /* 0.5 bucket lower than 0.25 one: forced up to 30, so rank 50 lies in (0.5, 1]:
     * 0.5 + 0.5 x 20/60. */
    {.name = "non-monotonic fixed",
     .q = 0.5,
     .b = {{0.1, 10}, {0.25, 30}, {0.5, 25}, {1, 90}, {INFINITY, 100}},
     .n = 5,
     .value = 0.5 + 0.5 * (20.0 / 60.0)},
    {.name = "negative first bound",
     .q = 0.1,
     .b = {{-1, 20}, {0, 50}, {INFINITY, 100}},
     .n = 3,
     .value = -1},
    {.name = "q above 1", .q = 1.5, .b = {{1, 1}, {INFINITY, 1}}, .n = 2, .value = INFINITY},
    {.name = "q below 0", .q = -0.5, .b = {{1, 1}, {INFINITY, 1}}, .n = 2, .value = -INFINITY},
    {.name = "no +Inf bucket", .q = 0.5, .b = {{0.1, 10}, {1, 20}}, .n = 2, .ret = -ENODATA},
    {.name = "one bucket", .q = 0.5, .b = {{INFINITY, 20}}, .n = 1, .ret = -ENODATA},
    {.name = "no observations",
     .q = 0.5,
     .b = {{0.1, 0}, {1, 0}, {INFINITY, 0}},
     .n = 3,
     .ret = -ENODATA},
    {.name = "NaN q", .q = NAN, .b = {{1, 1}, {INFINITY, 1}}, .n = 2, .ret = -EINVAL},
};

static void test_quantile_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(quantile_cases); i++) {
		const struct quantile_case *c = &quantile_cases[i];
		struct sm_window_bucket b[MAX_BUCKETS];
		double v = -12345;
		int r;

		for (size_t j = 0; j < c->n; j++)
			b[j] = c->b[j];
		r = sm_window_histogram_quantile(c->q, b, c->n, &v);
		if (r != c->ret) {
			print_error("case '%s': returned %d, expected %d\n", c->name, r, c->ret);
			fail();
		}
		if (r < 0) {
			if (v != -12345) {
				print_error("case '%s': output touched on error\n", c->name);
				fail();
			}
			continue;
		}
		if (isinf(c->value) ? v != c->value : fabs(v - c->value) > 1e-12) {
			print_error("case '%s': %.15g, expected %.15g\n", c->name, v, c->value);
			fail();
		}
	}
}

static void test_average(void **state)
{
	double v = -1;

	(void)state;
	assert_int_equal(sm_window_average(10, 4, &v), 0);
	assert_true(fabs(v - 2.5) < 1e-12);
	v = -1;
	assert_int_equal(sm_window_average(10, 0, &v), -ENODATA);
	assert_int_equal(sm_window_average(NAN, 2, &v), -ENODATA);
	assert_true(v == -1);
}

/* A counter driven at 7/s sampled every second with a restart in the middle: the rate over
 * the window stays 7/s (no spike, no dip beyond one interval's loss). */
static void test_restart_no_spike(void **state)
{
	struct sm_window_point pts[61];
	double v = 0;

	(void)state;
	for (int i = 0; i <= 60; i++) {
		pts[i].t_ms = i * 1000;
		pts[i].v = i < 30 ? 1000.0 + 7.0 * i : 7.0 * (i - 30 + 1);
	}
	for (int end = 10; end <= 60; end++) {
		assert_int_equal(sm_window_rate(pts, 61, (end - 10) * 1000, end * 1000, &v), 0);
		if (v < 0 || v > 7.0 * 1.0001) {
			print_error("window ending at %ds: rate %g\n", end, v);
			fail();
		}
	}
	/* Window fully after the restart: exactly 7. */
	assert_int_equal(sm_window_rate(pts, 61, 40000, 60000, &v), 0);
	assert_true(fabs(v - 7.0) < 1e-9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rate_table),
	    cmocka_unit_test(test_quantile_table),
	    cmocka_unit_test(test_average),
	    cmocka_unit_test(test_restart_no_spike),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
