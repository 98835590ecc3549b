/* SPDX-License-Identifier: MIT */
/* The PostgreSQL collector's custom queries (sm_postgres_rows_to_series) over results built by
 * hand with libpq's PQmakeEmptyPGresult, no server: label columns then the value, one series
 * per row, and each problem with the rows served as a failure with its reason. */
#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/error.h"
#include "scalemetrics/series.h"

#include "../../src/collectors/postgres-internal.h"
#include "pgresult.h"

static void test_rows(void **state)
{
	const char *names[] = {"queue", "tenant", "n"};
	const char *cells[] = {"emails", "a", "3", "reports", NULL, "4.5"};
	PGresult *res = pgresult(names, 3, cells, 2);
	struct sm_batch *b = sm_batch_new(100);
	struct sm_error err = {0};
	const struct sm_series *s;

	(void)state;
	assert_int_equal(sm_postgres_rows_to_series(res, "jobs", 100, b, &err), 0);
	assert_string_equal(err.message, "");
	assert_int_equal(sm_batch_count(b), 2);
	s = sm_batch_get(b, 0);
	assert_string_equal(s->metric, "jobs");
	assert_int_equal(s->n_labels, 2);
	assert_string_equal(s->labels[0].name, "queue");
	assert_string_equal(s->labels[0].value, "emails");
	assert_string_equal(s->labels[1].value, "a");
	assert_true(s->value == 3);
	s = sm_batch_get(b, 1);
	assert_string_equal(s->labels[1].name, "tenant");
	assert_string_equal(s->labels[1].value, ""); /* a NULL label is empty */
	assert_true(s->value == 4.5);
	PQclear(res);
	sm_batch_free(b);
}

static void test_one_value(void **state)
{
	const char *names[] = {"count"};
	const char *cells[] = {"17"};
	PGresult *res = pgresult(names, 1, cells, 1);
	struct sm_batch *b = sm_batch_new(100);
	struct sm_error err = {0};

	(void)state;
	assert_int_equal(sm_postgres_rows_to_series(res, "backlog", 100, b, &err), 0);
	assert_int_equal(sm_batch_count(b), 1);
	assert_int_equal(sm_batch_get(b, 0)->n_labels, 0);
	assert_true(sm_batch_get(b, 0)->value == 17);
	PQclear(res);
	sm_batch_free(b);
}

/* Whole-query problems: one failure without labels (labels_partial), the reason in err. */
static void test_query_failures(void **state)
{
	const char *one[] = {"n"};
	const char *two_rows[] = {"1", "2"};
	const char *bad_name[] = {"Queue Name", "n"};
	const char *bad_cells[] = {"a", "1"};
	const char *labels3[] = {"q", "n"};
	const char *three[] = {"a", "1", "b", "2", "c", "3"};
	const char *wide[18];
	const char *wide_cells[18];
	const struct {
		PGresult *res;
		uint32_t max_series;
		const char *error;
	} cases[] = {
	    {pgresult(one, 1, two_rows, 2), 100,
	     "query for 'm' returned 2 rows of one column (expected one row, or label columns "
	     "before the value)"},
	    {pgresult(bad_name, 2, bad_cells, 1), 100,
	     "query for 'm': column name 'Queue Name' is not a valid label name"},
	    {pgresult(labels3, 2, three, 3), 2, "query for 'm' returned 3 rows (max_series 2)"},
	    {NULL, 100, "query for 'm' returned 18 columns (expected 1 to 17)"},
	};
	char name[18][8];

	(void)state;
	for (int c = 0; c < 18; c++) {
		snprintf(name[c], sizeof(name[c]), "c%d", c);
		wide[c] = name[c];
		wide_cells[c] = "1";
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		PGresult *res = cases[i].res ? cases[i].res : pgresult(wide, 18, wide_cells, 1);
		struct sm_batch *b = sm_batch_new(100);
		struct sm_error err = {0};
		const struct sm_series_failure *f;

		assert_int_equal(sm_postgres_rows_to_series(res, "m", cases[i].max_series, b, &err),
		                 0);
		if (strcmp(err.message, cases[i].error) != 0)
			fail_msg("case %zu: '%s', expected '%s'", i, err.message, cases[i].error);
		assert_int_equal(sm_batch_count(b), 0);
		assert_int_equal(sm_batch_failure_count(b), 1);
		f = sm_batch_get_failure(b, 0);
		assert_string_equal(f->error, cases[i].error);
		assert_true(f->labels_partial);
		assert_int_equal(f->series.n_labels, 0);
		PQclear(res);
		sm_batch_free(b);
	}
}

/* Row problems: that row's series is a failure with its labels; the other rows are served. */
static void test_row_failures(void **state)
{
	const char *names[] = {"queue", "n"};
	const char *cells[] = {"a", "1", "b", NULL, "c", "many"};
	PGresult *res = pgresult(names, 2, cells, 3);
	struct sm_batch *b = sm_batch_new(100);
	struct sm_error err = {0};
	const struct sm_series_failure *f;

	(void)state;
	assert_int_equal(sm_postgres_rows_to_series(res, "m", 100, b, &err), 0);
	assert_string_equal(err.message, "query for 'm' returned NULL in row 2; query for 'm' "
	                                 "returned a non-numeric value in row 3");
	assert_int_equal(sm_batch_count(b), 1);
	assert_string_equal(sm_batch_get(b, 0)->labels[0].value, "a");
	assert_int_equal(sm_batch_failure_count(b), 2);
	f = sm_batch_get_failure(b, 0);
	assert_false(f->labels_partial);
	assert_string_equal(f->series.labels[0].value, "b");
	assert_string_equal(f->error, "query for 'm' returned NULL in row 2");
	f = sm_batch_get_failure(b, 1);
	assert_string_equal(f->series.labels[0].value, "c");
	PQclear(res);
	sm_batch_free(b);
}

/* No rows: noted, but no failure (an empty result is an answer). */
static void test_no_rows(void **state)
{
	const char *names[] = {"queue", "n"};
	PGresult *res = pgresult(names, 2, NULL, 0);
	struct sm_batch *b = sm_batch_new(100);
	struct sm_error err = {0};

	(void)state;
	assert_int_equal(sm_postgres_rows_to_series(res, "m", 100, b, &err), 0);
	assert_string_equal(err.message, "query for 'm' returned no rows");
	assert_int_equal(sm_batch_count(b), 0);
	assert_int_equal(sm_batch_failure_count(b), 0);
	PQclear(res);
	sm_batch_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rows),           cmocka_unit_test(test_one_value),
	    cmocka_unit_test(test_query_failures), cmocka_unit_test(test_row_failures),
	    cmocka_unit_test(test_no_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
