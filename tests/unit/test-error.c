/* SPDX-License-Identifier: MIT */
/* Error detail: message formatting, positions, the accumulating list. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/error.h"

static void test_set_and_format(void **state)
{
	struct sm_error e = {0};
	char buf[600];

	(void)state;
	sm_error_set(&e, "unknown key '%s'", "intervall");
	assert_string_equal(e.message, "unknown key 'intervall'");
	sm_error_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "unknown key 'intervall'");

	(void)snprintf(e.file, sizeof(e.file), "%s", "config.yaml");
	e.line = 12;
	e.column = 5;
	sm_error_set(&e, "expected %s", "a duration");
	/* position untouched by sm_error_set */
	assert_int_equal(e.line, 12);
	sm_error_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "config.yaml:12:5: expected a duration");
	e.column = 0;
	sm_error_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "config.yaml:12: expected a duration");
	e.line = 0;
	sm_error_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "config.yaml: expected a duration");

	sm_error_format(&e, buf, 8);
	assert_string_equal(buf, "config.");

	sm_error_clear(&e);
	assert_string_equal(e.message, "");
	assert_string_equal(e.file, "");
	assert_int_equal(e.line, 0);

	/* NULL is a no-op */
	sm_error_set(NULL, "x %d", 1);
	sm_error_clear(NULL);
}

static void test_truncation(void **state)
{
	struct sm_error e = {0};
	char big[2000];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sm_error_set(&e, "%s", big);
	assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
}

static void test_list(void **state)
{
	struct sm_error_list l = {0};
	struct sm_error e = {0};

	(void)state;
	for (unsigned i = 0; i < 100; i++) {
		sm_error_set(&e, "error %u", i);
		e.line = i + 1;
		assert_int_equal(sm_error_list_add(&l, &e), 0);
	}
	assert_int_equal(l.n, 100);
	assert_string_equal(l.items[0].message, "error 0");
	assert_string_equal(l.items[99].message, "error 99");
	assert_int_equal(l.items[41].line, 42);
	sm_error_list_done(&l);
	assert_null(l.items);
	assert_int_equal(l.n, 0);
	sm_error_list_done(&l);
	sm_error_list_done(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_set_and_format),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
