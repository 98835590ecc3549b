/* SPDX-License-Identifier: MIT */
/* The bounded body buffer the HTTP clients share: growth, NUL termination, the bound. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/buf.h"

static void test_grows_and_stays_terminated(void **state)
{
	struct sm_buf b = {0};
	char chunk[5000];

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 10; i++)
		assert_int_equal(sm_buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 50000);
	assert_true(b.cap > b.len);
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(strlen(b.data), 50000);
	assert_false(b.too_big);
	free(b.data);
}

static void test_bound_refuses_and_keeps_what_was_there(void **state)
{
	struct sm_buf b = {.max = 8};

	(void)state;
	assert_int_equal(sm_buf_append(&b, "abcde", 5), 0);
	assert_int_equal(sm_buf_append(&b, "fgh", 3), 0); /* exactly max */
	assert_int_equal(sm_buf_append(&b, "i", 1), -EFBIG);
	assert_true(b.too_big);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "abcdefgh");
	free(b.data);
}

static void test_failure_is_sticky(void **state)
{
	struct sm_buf b = {.max = 4};

	(void)state;
	assert_int_equal(sm_buf_puts(&b, "abcde"), -EFBIG);
	/* Would fit, but the buffer already lost bytes: it stays failed. */
	assert_int_equal(sm_buf_putc(&b, 'a'), -EFBIG);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	/* Reset clears the failure and keeps the bound. */
	sm_buf_reset(&b);
	assert_int_equal(sm_buf_puts(&b, "abcd"), 0);
	assert_int_equal(sm_buf_putc(&b, 'e'), -EFBIG);
	sm_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(sm_buf_puts(&b, "xy"), 0);
	assert_string_equal(b.data, "xy");
	free(b.data);
}

static void test_putc_puts(void **state)
{
	struct sm_buf b = {0};

	(void)state;
	assert_int_equal(sm_buf_puts(&b, "ab"), 0);
	assert_int_equal(sm_buf_putc(&b, 'c'), 0);
	assert_int_equal(sm_buf_puts(&b, ""), 0);
	assert_int_equal(sm_buf_append(&b, NULL, 0), 0); /* nothing from nowhere is fine */
	assert_string_equal(b.data, "abc");
	assert_int_equal(b.len, 3);
	free(b.data);
}

static void test_curl_write_counts(void **state)
{
	struct sm_buf b = {.max = 4};
	char data[] = "abcdef";

	(void)state;
	assert_int_equal(sm_buf_curl_write(data, 1, 3, &b), 3);
	assert_int_equal(sm_buf_curl_write(data, 1, 3, &b), 0); /* past max: curl fails */
	assert_true(b.too_big);
	assert_string_equal(b.data, "abc");
	free(b.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grows_and_stays_terminated),
	    cmocka_unit_test(test_bound_refuses_and_keeps_what_was_there),
	    cmocka_unit_test(test_failure_is_sticky),
	    cmocka_unit_test(test_putc_puts),
	    cmocka_unit_test(test_curl_write_counts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
