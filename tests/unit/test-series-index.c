/* SPDX-License-Identifier: MIT */
/* Unit tests for series-index: every lookup gives a superset of the series that carry the key,
 * in ascending order and each once (also when two labels of one series share a bucket), keys
 * of one metric never stand in for another's, and small inputs get no index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/series-index.h"
#include "scalemetrics/series.h"

#define N_SERIES 1000
#define N_WIDE   64  /* series with many labels, for shared buckets within one series */
#define WIDE     200 /* labels on each: about one pair per series shares a bucket */

struct world {
	struct sm_series series[N_SERIES];
	struct sm_label labels[N_SERIES][2];
	struct sm_object_ref objects[N_SERIES];
	char strings[N_SERIES][3][24];
};

static const char *get_label(const struct sm_series *s, const char *name)
{
	for (size_t i = 0; i < s->n_labels; i++)
		if (strcmp(s->labels[i].name, name) == 0)
			return s->labels[i].value;
	return NULL;
}

/* Walks a cursor: candidates strictly ascending and in range; returns how many carry
 * name=a on metric (b unused), or, name NULL, are about object a/b. */
static size_t walk(const struct sm_series *series, size_t n, struct sm_series_cursor *c,
                   const char *metric, const char *name, const char *a, const char *b,
                   size_t *ret_candidates, size_t *ret_first)
{
	size_t idx, prev = SIZE_MAX, hits = 0, candidates = 0;

	*ret_first = SIZE_MAX;
	while (sm_series_cursor_next(c, &idx)) {
		const struct sm_series *s;

		assert_true(idx < n);
		if (prev != SIZE_MAX)
			assert_true(idx > prev);
		prev = idx;
		candidates++;
		s = &series[idx];
		if (strcmp(s->metric, metric) != 0)
			continue;
		if (name) {
			const char *v = get_label(s, name);

			if (!v || strcmp(v, a) != 0)
				continue;
		} else if (!s->object || strcmp(s->object->resource, a) != 0 ||
		           strcmp(s->object->name, b) != 0) {
			continue;
		}
		if (hits++ == 0)
			*ret_first = idx;
	}
	*ret_candidates = candidates;
	return hits;
}

/* Series i: metric "m" (the first 100: "m2"), labels queue=q<i> and type=list, and for even i
 * the object deployments.apps/w-q<i>; series 901 is about w-q900 too. */
static void world_init(struct world *w)
{
	for (size_t i = 0; i < N_SERIES; i++) {
		(void)snprintf(w->strings[i][0], sizeof(w->strings[i][0]), "q%zu", i);
		(void)snprintf(w->strings[i][1], sizeof(w->strings[i][1]), "w-q%zu", i);
		w->labels[i][0] = (struct sm_label){"queue", w->strings[i][0]};
		w->labels[i][1] = (struct sm_label){"type", "list"};
		w->objects[i] = (struct sm_object_ref){"deployments.apps", w->strings[i][1], NULL};
		w->series[i] = (struct sm_series){
		    .metric = i < 100 ? "m2" : "m",
		    .labels = w->labels[i],
		    .n_labels = 2,
		    .value = (double)i,
		    .object = i % 2 == 0 ? &w->objects[i] : NULL,
		};
	}
	w->series[901].object = &w->objects[900]; /* two series about one object */
}

struct fixture {
	struct world w;
	struct sm_series_index *ix;
};

static int setup(void **state)
{
	static struct fixture f;

	world_init(&f.w);
	f.ix = sm_series_index_build(f.w.series, N_SERIES);
	assert_non_null(f.ix);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sm_series_index_free(f->ix);
	return 0;
}

static void test_small_gets_none(void **state)
{
	static struct world w;

	(void)state;
	world_init(&w);
	assert_null(sm_series_index_build(NULL, N_SERIES));
	assert_null(sm_series_index_build(w.series, SM_SERIES_INDEX_MIN - 1));
	assert_int_equal(sm_series_index_bytes(NULL), 0);
}

static void test_one_label_value(void **state)
{
	struct fixture *f = *state;
	struct world *w = &f->w;
	const struct sm_series_index *ix = f->ix;
	struct sm_series_cursor c;
	size_t candidates, first, most = 0;

	/* Load factor at most 1: 2,501 keys (labels and objects) in 4,096 buckets, 8 bytes an
	 * entry. */
	assert_true(sm_series_index_bytes(ix) <= 4096 * 4 + 2501 * 8 + 64);
	for (size_t i = 0; i < N_SERIES; i++) {
		const char *metric = i < 100 ? "m2" : "m";

		sm_series_index_label(ix, metric, "queue", w->strings[i][0], &c);
		assert_int_equal(walk(w->series, N_SERIES, &c, metric, "queue", w->strings[i][0],
		                      "", &candidates, &first),
		                 1);
		assert_int_equal(first, i);
		if (candidates > most)
			most = candidates;
		/* The other metric's name finds nothing of this one. */
		sm_series_index_label(ix, i < 100 ? "m" : "m2", "queue", w->strings[i][0], &c);
		assert_int_equal(walk(w->series, N_SERIES, &c, i < 100 ? "m" : "m2", "queue",
		                      w->strings[i][0], "", &candidates, &first),
		                 0);
	}
	/* A chain is a bucket: a handful of candidates, not a scan. */
	assert_true(most <= 8);

	sm_series_index_label(ix, "m", "queue", "absent", &c);
	assert_int_equal(
	    walk(w->series, N_SERIES, &c, "m", "queue", "absent", "", &candidates, &first), 0);
	sm_series_index_label(ix, "m", "absent", "q5", &c);
	assert_int_equal(
	    walk(w->series, N_SERIES, &c, "m", "absent", "q5", "", &candidates, &first), 0);
}

static void test_shared_value_lists_all(void **state)
{
	struct fixture *f = *state;
	struct world *w = &f->w;
	const struct sm_series_index *ix = f->ix;
	struct sm_series_cursor c;
	size_t candidates, first;

	sm_series_index_label(ix, "m", "type", "list", &c);
	assert_int_equal(
	    walk(w->series, N_SERIES, &c, "m", "type", "list", "", &candidates, &first),
	    N_SERIES - 100);
	assert_int_equal(first, 100);
}

static void test_objects(void **state)
{
	struct fixture *f = *state;
	struct world *w = &f->w;
	const struct sm_series_index *ix = f->ix;
	struct sm_series_cursor c;
	size_t candidates, first;

	for (size_t i = 100; i < N_SERIES; i += 2) {
		sm_series_index_object(ix, "m", "deployments.apps", w->strings[i][1], &c);
		assert_int_equal(walk(w->series, N_SERIES, &c, "m", NULL, "deployments.apps",
		                      w->strings[i][1], &candidates, &first),
		                 i == 900 ? 2 : 1);
		assert_int_equal(first, i);
		sm_series_index_object(ix, "m", "pods", w->strings[i][1], &c);
		assert_int_equal(walk(w->series, N_SERIES, &c, "m", NULL, "pods", w->strings[i][1],
		                      &candidates, &first),
		                 0);
	}
	sm_series_index_object(ix, "m", "deployments.apps", "w-q101", &c); /* odd: no object */
	assert_int_equal(walk(w->series, N_SERIES, &c, "m", NULL, "deployments.apps", "w-q101",
	                      &candidates, &first),
	                 0);
}

/* N_WIDE series of WIDE labels each, l<j>=v<i>: many pairs of one series' labels share a
 * bucket, and the cursor must still give each series once and every series it should. */
static void test_wide_series_each_once(void **state)
{
	static struct sm_series series[N_WIDE];
	static struct sm_label labels[N_WIDE][WIDE];
	static char names[WIDE][8], values[N_WIDE][8];
	struct sm_series_index *ix;
	struct sm_series_cursor c;
	size_t candidates, first, idx;

	(void)state;
	for (size_t j = 0; j < WIDE; j++)
		(void)snprintf(names[j], sizeof(names[j]), "l%03zu", j);
	for (size_t i = 0; i < N_WIDE; i++) {
		(void)snprintf(values[i], sizeof(values[i]), "v%zu", i);
		for (size_t j = 0; j < WIDE; j++)
			labels[i][j] = (struct sm_label){names[j], values[i]};
		series[i] =
		    (struct sm_series){.metric = "w", .labels = labels[i], .n_labels = WIDE};
	}
	ix = sm_series_index_build(series, N_WIDE);
	assert_non_null(ix);
	for (size_t i = 0; i < N_WIDE; i++) {
		for (size_t j = 0; j < WIDE; j++) {
			sm_series_index_label(ix, "w", names[j], values[i], &c);
			assert_int_equal(walk(series, N_WIDE, &c, "w", names[j], values[i], "",
			                      &candidates, &first),
			                 1);
			assert_int_equal(first, i);
		}
	}
	/* A NULL index walks nothing (callers scan instead). */
	sm_series_index_label(NULL, "w", "l000", "v0", &c);
	assert_false(sm_series_cursor_next(&c, &idx));
	sm_series_index_free(ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_small_gets_none),
	    cmocka_unit_test_setup_teardown(test_one_label_value, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shared_value_lists_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_objects, setup, teardown),
	    cmocka_unit_test(test_wide_series_each_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
