/* SPDX-License-Identifier: MIT */
/* The series history: identity, ordering, the adaptive resolution, the series cap, expiry of
 * points and of series, and the hash table's deletions. */
/* cmocka needs setjmp.h, stdarg.h and stddef.h before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <string.h>

#include "scalemetrics/history.h"
#include "scalemetrics/series.h"

#define SEC  1000LL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
/* Any base: the history counts from its first record. */
#define T0 5000000LL

static struct sm_label queue_a[] = {{"queue", "a"}};
static struct sm_label queue_b[] = {{"queue", "b"}};

static struct sm_series series(const char *metric, struct sm_label *labels, size_t n, double value)
{
	return (struct sm_series){
	    .metric = metric, .labels = labels, .n_labels = n, .value = value};
}

static void record1(struct sm_history *h, size_t src, struct sm_series s, int64_t t)
{
	assert_int_equal(sm_history_record(h, src, &s, 1, t), 1);
}

static size_t get(struct sm_history *h, size_t src, struct sm_series s, int64_t now,
                  struct sm_history_point *pts)
{
	return sm_history_get(h, src, &s, now, pts, SM_HISTORY_POINTS);
}

static void test_null_and_empty(void **state)
{
	struct sm_history_point pts[SM_HISTORY_POINTS];
	struct sm_series s = series("m", NULL, 0, 1);
	struct sm_history_stats st;
	struct sm_history *h;

	(void)state;
	assert_int_equal(sm_history_record(NULL, 0, &s, 1, T0), 0);
	assert_int_equal(sm_history_get(NULL, 0, &s, T0, pts, SM_HISTORY_POINTS), 0);
	sm_history_stats(NULL, T0, &st);
	assert_int_equal(st.n_series, 0);
	sm_history_free(NULL);

	h = sm_history_new(0);
	assert_non_null(h);
	assert_int_equal(get(h, 0, s, T0, pts), 0);
	sm_history_stats(h, T0, &st);
	assert_int_equal(st.max_series, SM_HISTORY_DEFAULT_MAX_SERIES);
	assert_int_equal(st.n_series, 0);
	assert_false(st.capped);
	assert_int_equal(sm_history_record(h, 0, &s, 0, T0), 0);
	sm_history_free(h);
}

/* Every value of the first rounds is a point, oldest first, with its time. */
static void test_points_in_order(void **state)
{
	struct sm_history_point pts[SM_HISTORY_POINTS];
	struct sm_history *h = sm_history_new(10);
	size_t n;

	(void)state;
	assert_non_null(h);
	for (int i = 0; i < 5; i++)
		record1(h, 0, series("depth", queue_a, 1, 10.0 * i + 0.5), T0 + i * SEC);
	n = get(h, 0, series("depth", queue_a, 1, 0), T0 + 5 * SEC, pts);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		assert_true(pts[i].mono_ms == T0 + (int64_t)i * SEC);
		assert_true(pts[i].value == 10.0 * (double)i + 0.5);
	}
	/* cap smaller than the points: the oldest ones. */
	n = sm_history_get(h, 0,
	                   &(struct sm_series){.metric = "depth", .labels = queue_a, .n_labels = 1},
	                   T0 + 5 * SEC, pts, 2);
	assert_int_equal(n, 2);
	assert_true(pts[1].mono_ms == T0 + SEC);
	sm_history_free(h);
}

/* Source, metric, labels and object make the identity; object labels and values do not. */
static void test_identity(void **state)
{
	struct sm_history_point pts[SM_HISTORY_POINTS];
	struct sm_history *h = sm_history_new(10);
	struct sm_label pod_labels[] = {{"app", "web"}};
	const struct sm_object_ref web1 = {.resource = "pods", .name = "web-1", .namespace = "ns"};
	const struct sm_object_ref web2 = {.resource = "pods", .name = "web-2", .namespace = "ns"};
	const struct sm_object_ref web1_no_ns = {.resource = "pods", .name = "web-1"};
	struct sm_series obj = series("rps", NULL, 0, 7);
	struct sm_series obj2;
	struct sm_series batch[4];
	struct sm_history_stats st;

	(void)state;
	assert_non_null(h);
	obj.object = &web1;
	batch[0] = series("depth", queue_a, 1, 1);
	batch[1] = series("depth", queue_b, 1, 2);
	batch[2] = series("depth", NULL, 0, 3);
	batch[3] = obj;
	assert_int_equal(sm_history_record(h, 0, batch, 4, T0), 4);
	assert_int_equal(sm_history_record(h, 1, batch, 1, T0), 1); /* other source */

	assert_int_equal(get(h, 0, series("depth", queue_b, 1, 0), T0, pts), 1);
	assert_true(pts[0].value == 2);
	assert_int_equal(get(h, 1, series("depth", queue_a, 1, 0), T0, pts), 1);
	assert_int_equal(get(h, 1, series("depth", queue_b, 1, 0), T0, pts), 0);
	assert_int_equal(get(h, 2, series("depth", queue_a, 1, 0), T0, pts), 0);
	assert_int_equal(get(h, 0, series("other", queue_a, 1, 0), T0, pts), 0);

	obj2 = obj;
	obj2.object_labels = pod_labels;
	obj2.n_object_labels = 1;
	obj2.value = 8;
	record1(h, 0, obj2, T0 + SEC);
	assert_int_equal(get(h, 0, obj, T0 + SEC, pts), 2);
	assert_true(pts[1].value == 8);
	obj2.object = &web2;
	assert_int_equal(get(h, 0, obj2, T0 + SEC, pts), 0);
	obj2.object = &web1_no_ns; /* a NULL namespace is not the empty one */
	assert_int_equal(get(h, 0, obj2, T0 + SEC, pts), 0);
	obj2.object = NULL;
	assert_int_equal(get(h, 0, obj2, T0 + SEC, pts), 0);

	sm_history_stats(h, T0 + SEC, &st);
	assert_int_equal(st.n_series, 5);
	assert_true(st.bytes > 5 * SM_HISTORY_POINTS * 8);
	sm_history_free(h);
}

static void check_sane(const struct sm_history_point *pts, size_t n, int64_t now)
{
	assert_true(n >= 1 && n <= SM_HISTORY_POINTS);
	for (size_t i = 1; i < n; i++)
		assert_true(pts[i].mono_ms > pts[i - 1].mono_ms);
	assert_true(pts[0].mono_ms >= now - SM_HISTORY_SPAN_MS);
	assert_true(pts[n - 1].mono_ms <= now);
}

/* One value a second for two hours: never more than SM_HISTORY_POINTS points, always in
 * order, the last always the latest value, and once an hour has passed the points cover
 * (almost) the whole hour, at a spacing that no longer grows. */
static void test_resolution_adapts(void **state)
{
	struct sm_history_point pts[SM_HISTORY_POINTS];
	struct sm_history *h = sm_history_new(4);
	struct sm_series s = series("depth", queue_a, 1, 0);
	int64_t t = T0;
	size_t n = 0;

	(void)state;
	assert_non_null(h);
	for (int i = 0; i < 2 * 3600; i++, t += SEC) {
		s.value = i;
		record1(h, 0, s, t);
		if (i % 97 == 0 || i < 2 * SM_HISTORY_POINTS) {
			n = get(h, 0, s, t, pts);
			check_sane(pts, n, t);
			assert_true(pts[n - 1].value == (double)i);
			assert_true(pts[n - 1].mono_ms == t);
		}
		/* The first SM_HISTORY_POINTS rounds are all kept. */
		if (i == SM_HISTORY_POINTS - 1)
			assert_int_equal(n, SM_HISTORY_POINTS);
		if (i == SM_HISTORY_POINTS)
			assert_true(n < SM_HISTORY_POINTS);
	}
	t -= SEC;
	n = get(h, 0, s, t, pts);
	check_sane(pts, n, t);
	assert_true(pts[0].mono_ms <= t - 55 * MIN);
	assert_true(n >= SM_HISTORY_POINTS * 3 / 4);
	for (size_t i = 1; i + 1 < n; i++) {
		int64_t gap = pts[i].mono_ms - pts[i - 1].mono_ms;

		assert_true(gap >= 30 * SEC && gap <= 3 * MIN);
	}
	/* Values are the last of their point's time: point i holds the value of its second. */
	for (size_t i = 0; i < n; i++)
		assert_true(pts[i].value == (double)((pts[i].mono_ms - T0) / SEC));
	sm_history_free(h);
}

/* Rounds two minutes apart (an hour fits): every one is a point, and only the last hour
 * is kept. */
static void test_points_expire(void **state)
{
	struct sm_history_point pts[SM_HISTORY_POINTS];
	struct sm_history *h = sm_history_new(4);
	struct sm_series s = series("depth", NULL, 0, 0);
	size_t n;

	(void)state;
	assert_non_null(h);
	for (int i = 0; i <= 90; i += 2) {
		s.value = i;
		record1(h, 0, s, T0 + i * MIN);
	}
	n = get(h, 0, s, T0 + 90 * MIN, pts);
	assert_int_equal(n, 31); /* minutes 30..90: exactly an hour old is kept */
	assert_true(pts[0].value == 30);
	assert_true(pts[0].mono_ms == T0 + 30 * MIN);
	assert_true(pts[30].value == 90);
	/* Reading later hides what has aged out, without a record. */
	n = get(h, 0, s, T0 + 120 * MIN, pts);
	assert_int_equal(n, 16);
	assert_true(pts[0].value == 60);
	n = get(h, 0, s, T0 + 151 * MIN, pts);
	assert_int_equal(n, 0);
	sm_history_free(h);
}

/* Beyond max_series nothing is stored and the stats say so; forgetting makes room again. */
static void test_cap_and_forget(void **state)
{
	struct sm_history_point pts[SM_HISTORY_POINTS];
	struct sm_history *h = sm_history_new(3);
	struct sm_series batch[5];
	struct sm_history_stats st;
	char names[5][8];

	(void)state;
	assert_non_null(h);
	for (int i = 0; i < 5; i++) {
		(void)snprintf(names[i], sizeof(names[i]), "m%d", i);
		batch[i] = series(names[i], NULL, 0, i);
	}
	assert_int_equal(sm_history_record(h, 0, batch, 5, T0), 3);
	for (int i = 0; i < 5; i++)
		assert_int_equal(get(h, 0, batch[i], T0, pts), i < 3 ? 1 : 0);
	sm_history_stats(h, T0, &st);
	assert_int_equal(st.n_series, 3);
	assert_int_equal(st.max_series, 3);
	assert_true(st.capped);
	/* Still counted as capped for an hour after the last refusal. */
	sm_history_stats(h, T0 + SM_HISTORY_SPAN_MS + 1, &st);
	assert_false(st.capped);

	/* m0 alone for an hour and more: m1 and m2 are forgotten (at most a minute late),
	 * so m3 and m4 get their places. */
	for (int64_t t = T0 + MIN; t <= T0 + HOUR + 2 * MIN; t += MIN)
		record1(h, 0, batch[0], t);
	sm_history_stats(h, T0 + HOUR + 2 * MIN, &st);
	assert_int_equal(st.n_series, 1);
	assert_int_equal(get(h, 0, batch[1], T0 + HOUR + 2 * MIN, pts), 0);
	assert_int_equal(sm_history_record(h, 0, batch + 3, 2, T0 + HOUR + 3 * MIN), 2);
	assert_int_equal(get(h, 0, batch[4], T0 + HOUR + 3 * MIN, pts), 1);
	assert_true(get(h, 0, batch[0], T0 + HOUR + 3 * MIN, pts) > 30);
	sm_history_free(h);
}

/* Many series forgotten at once: the survivors stay reachable (the table moves entries back
 * over the holes), and the freed places are reused. */
static void test_sweep_keeps_table_consistent(void **state)
{
	enum { N = 64 };
	struct sm_history_point pts[SM_HISTORY_POINTS];
	struct sm_history *h = sm_history_new(N);
	struct sm_series all[N];
	struct sm_series odd[N / 2];
	struct sm_history_stats st;
	char names[N][8];

	(void)state;
	assert_non_null(h);
	for (int i = 0; i < N; i++) {
		(void)snprintf(names[i], sizeof(names[i]), "s%d", i);
		all[i] = series(names[i], NULL, 0, i);
		if (i % 2)
			odd[i / 2] = all[i];
	}
	assert_int_equal(sm_history_record(h, 0, all, N, T0), N);
	assert_int_equal(sm_history_record(h, 0, all, N, T0 + SEC), N);
	for (int64_t t = T0 + MIN; t <= T0 + HOUR + 2 * MIN; t += MIN)
		assert_int_equal(sm_history_record(h, 0, odd, N / 2, t), N / 2);
	sm_history_stats(h, T0 + HOUR + 2 * MIN, &st);
	assert_int_equal(st.n_series, N / 2);
	for (int i = 0; i < N; i++)
		assert_int_equal(get(h, 0, all[i], T0 + HOUR + 2 * MIN, pts) > 0, i % 2 == 1);
	/* The even ones come back as new series, each with one point. */
	assert_int_equal(sm_history_record(h, 0, all, N, T0 + HOUR + 3 * MIN), N);
	for (int i = 0; i < N; i++) {
		size_t n = get(h, 0, all[i], T0 + HOUR + 3 * MIN, pts);

		if (i % 2)
			assert_true(n > 1);
		else
			assert_int_equal(n, 1);
	}
	sm_history_free(h);
}

/* A clock that goes back is clamped to the last point, never reorders. */
static void test_time_never_goes_back(void **state)
{
	struct sm_history_point pts[SM_HISTORY_POINTS];
	struct sm_history *h = sm_history_new(4);
	struct sm_series s = series("depth", NULL, 0, 1);
	size_t n;

	(void)state;
	assert_non_null(h);
	record1(h, 0, s, T0 + 10 * SEC);
	s.value = 2;
	record1(h, 0, s, T0 + 5 * SEC);
	n = get(h, 0, s, T0 + 10 * SEC, pts);
	assert_int_equal(n, 1);
	assert_true(pts[0].mono_ms == T0 + 10 * SEC);
	assert_true(pts[0].value == 2);
	/* Within one 100 ms tick: the same point. */
	s.value = 3;
	record1(h, 0, s, T0 + 10 * SEC + 50);
	assert_int_equal(get(h, 0, s, T0 + 11 * SEC, pts), 1);
	assert_true(pts[0].value == 3);
	sm_history_free(h);
}

/* Times are kept as offsets from a series' oldest point: over hours of thinning and expiry
 * (each moving that origin), every point still reads back at the exact time it was recorded. */
static void test_times_exact_over_hours(void **state)
{
	struct sm_history_point pts[SM_HISTORY_POINTS];
	struct sm_history *h = sm_history_new(4);
	struct sm_series s = series("depth", NULL, 0, 0);
	int64_t t = T0;
	size_t n;

	(void)state;
	assert_non_null(h);
	for (int i = 0; i < 3 * 3600 / 7; i++) {
		t = T0 + i * 7 * SEC;
		s.value = i;
		record1(h, 0, s, t);
	}
	n = get(h, 0, s, t, pts);
	assert_true(n > SM_HISTORY_POINTS / 2);
	assert_true(n <= SM_HISTORY_POINTS);
	for (size_t i = 0; i < n; i++) {
		assert_true(pts[i].mono_ms >= t - HOUR);
		assert_int_equal((pts[i].mono_ms - T0) % (7 * SEC), 0);
		/* the value recorded at that time */
		assert_true(pts[i].value == (double)((pts[i].mono_ms - T0) / (7 * SEC)));
		if (i > 0)
			assert_true(pts[i].mono_ms > pts[i - 1].mono_ms);
	}
	assert_true(pts[n - 1].mono_ms == t);

	/* A series back after all its points expired starts again from its new time. */
	s.value = 7;
	record1(h, 0, s, t + 2 * HOUR - 30 * SEC);
	s.value = 8;
	record1(h, 0, s, t + 2 * HOUR);
	n = get(h, 0, s, t + 2 * HOUR, pts);
	assert_int_equal(n, 2);
	assert_true(pts[0].mono_ms == t + 2 * HOUR - 30 * SEC);
	assert_true(pts[0].value == 7);
	assert_true(pts[1].mono_ms == t + 2 * HOUR);
	assert_true(pts[1].value == 8);
	sm_history_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_null_and_empty),
	    cmocka_unit_test(test_points_in_order),
	    cmocka_unit_test(test_identity),
	    cmocka_unit_test(test_resolution_adapts),
	    cmocka_unit_test(test_points_expire),
	    cmocka_unit_test(test_cap_and_forget),
	    cmocka_unit_test(test_sweep_keeps_table_consistent),
	    cmocka_unit_test(test_time_never_goes_back),
	    cmocka_unit_test(test_times_exact_over_hours),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
