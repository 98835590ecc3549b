/* SPDX-License-Identifier: MIT */
/* The number parser: integers, floats, Prometheus specials and durations. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/number.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

struct int_case {
	const char *text;
	int64_t expected;
	int error;
};

static const struct int_case int64_cases[] = {
    {"0", 0, 0},
    {"42", 42, 0},
    {"-42", -42, 0},
    {"+42", 42, 0},
    {"007", 7, 0},
    {"9223372036854775807", INT64_MAX, 0},
    {"-9223372036854775808", INT64_MIN, 0},
    {"9223372036854775808", 0, -ERANGE},
    {"-9223372036854775809", 0, -ERANGE},
    {"99999999999999999999999", 0, -ERANGE},
    {"", 0, -EINVAL},
    {"-", 0, -EINVAL},
    {"+", 0, -EINVAL},
    {" 1", 0, -EINVAL},
    {"1 ", 0, -EINVAL},
    {"\t1", 0, -EINVAL},
    {"1\n", 0, -EINVAL},
    {"1a", 0, -EINVAL},
    {"0x10", 0, -EINVAL},
    {"1.0", 0, -EINVAL},
    {"1e3", 0, -EINVAL},
    {"--1", 0, -EINVAL},
    {"+-1", 0, -EINVAL},
    {NULL, 0, -EINVAL},
};

static void test_int64(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(int64_cases); i++) {
		const struct int_case *c = &int64_cases[i];
		int64_t v = 12345;
		int r = sm_number_parse_int64(c->text, &v);

		if (r != c->error || (r == 0 && v != c->expected) || (r != 0 && v != 12345)) {
			print_error("int64 case %zu '%s': got %d %lld\n", i,
			            c->text ? c->text : "NULL", r, (long long)v);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

struct uint_case {
	const char *text;
	uint64_t expected;
	int error;
};

static const struct uint_case uint64_cases[] = {
    {"0", 0, 0},
    {"42", 42, 0},
    {"18446744073709551615", UINT64_MAX, 0},
    {"18446744073709551616", 0, -ERANGE},
    {"-1", 0, -EINVAL},
    {"+1", 0, -EINVAL},
    {"-0", 0, -EINVAL},
    {"", 0, -EINVAL},
    {" 1", 0, -EINVAL},
    {"1 ", 0, -EINVAL},
    {"12x", 0, -EINVAL},
    {NULL, 0, -EINVAL},
};

static void test_uint64(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(uint64_cases); i++) {
		const struct uint_case *c = &uint64_cases[i];
		uint64_t v = 12345;
		int r = sm_number_parse_uint64(c->text, &v);

		if (r != c->error || (r == 0 && v != c->expected) || (r != 0 && v != 12345)) {
			print_error("uint64 case %zu '%s': got %d %llu\n", i,
			            c->text ? c->text : "NULL", r, (unsigned long long)v);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

struct double_case {
	const char *text;
	double expected;
	int error;
	int special; /* 1: only valid for sm_number_parse_float_special; 2: expect NaN */
};

static const struct double_case double_cases[] = {
    {"0", 0, 0, 0},
    {"1", 1, 0, 0},
    {"-1.5", -1.5, 0, 0},
    {"+1.5", 1.5, 0, 0},
    {"1.", 1, 0, 0},
    {".5", 0.5, 0, 0},
    {"1e3", 1000, 0, 0},
    {"1E-3", 0.001, 0, 0},
    {"2.5e+2", 250, 0, 0},
    {"0.29", 0.29, 0, 0},
    {"1e-400", 0, 0, 0}, /* underflow is zero, like Go */
    {"1e400", 0, -ERANGE, 0},
    {"-1e400", 0, -ERANGE, 0},
    {"", 0, -EINVAL, 0},
    {".", 0, -EINVAL, 0},
    {"e3", 0, -EINVAL, 0},
    {"1e", 0, -EINVAL, 0},
    {"1e+", 0, -EINVAL, 0},
    {" 1", 0, -EINVAL, 0},
    {"1 ", 0, -EINVAL, 0},
    {"1x", 0, -EINVAL, 0},
    {"0x1p3", 0, -EINVAL, 0},
    {"1,5", 0, -EINVAL, 0},
    {"--1", 0, -EINVAL, 0},
    {"NaN", 0, 0, 2},
    {"nan", 0, 0, 2},
    {"+Inf", INFINITY, 0, 1},
    {"-Inf", -INFINITY, 0, 1},
    {"Inf", INFINITY, 0, 1},
    {"+inf", INFINITY, 0, 1},
    {"Infinity", INFINITY, 0, 1},
    {"-Infinityx", 0, -EINVAL, 0},
    {"Nan1", 0, -EINVAL, 0},
    {NULL, 0, -EINVAL, 0},
};

static void test_double(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(double_cases); i++) {
		const struct double_case *c = &double_cases[i];
		const char *name = c->text ? c->text : "NULL";
		double v = 42.25, w = 42.25;
		int r = sm_number_parse_double(c->text, &v);
		int rs = sm_number_parse_float_special(c->text, &w);
		bool ok = true;

		if (c->special) {
			/* plain parser refuses, special parser accepts */
			ok = r == -EINVAL && v == 42.25 && rs == 0 &&
			     (c->special == 2 ? isnan(w) : w == c->expected);
		} else if (c->error) {
			ok = r == c->error && rs == c->error && v == 42.25 && w == 42.25;
		} else {
			ok = r == 0 && rs == 0 && v == c->expected && w == c->expected;
		}
		if (!ok) {
			print_error("double case %zu '%s': got %d %.17g / special %d %.17g\n", i,
			            name, r, v, rs, w);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static const struct int_case duration_cases[] = {
    {"500ms", 500, 0},
    {"5s", 5000, 0},
    {"1m", 60000, 0},
    {"1h", 3600000, 0},
    {"1m30s", 90000, 0},
    {"1h1m1s1ms", 3661001, 0},
    {"1.5s", 1500, 0},
    {".5s", 500, 0},
    {"1.5h", 5400000, 0},
    {"0s", 0, 0},
    {"0.5ms", 1, 0}, /* rounded to the nearest millisecond */
    {"0.4ms", 0, 0},
    {"10s500ms", 10500, 0},
    {"2562047h", 2562047LL * 3600000, 0},
    {"2562048h", 0, -ERANGE},
    {"99999999999999999999s", 0, -ERANGE},
    {"2562047h47m16s854ms", 9223372036854LL, 0},
    {"2562047h48m", 0, -ERANGE},
    {"5", 0, -EINVAL},
    {"0", 0, -EINVAL},
    {"1.5", 0, -EINVAL},
    {"-5s", 0, -EINVAL},
    {"+5s", 0, -EINVAL},
    {"", 0, -EINVAL},
    {" 5s", 0, -EINVAL},
    {"5s ", 0, -EINVAL},
    {"5 s", 0, -EINVAL},
    {"5x", 0, -EINVAL},
    {"5sec", 0, -EINVAL},
    {"s", 0, -EINVAL},
    {".s", 0, -EINVAL},
    {"5ns", 0, -EINVAL},
    {"5us", 0, -EINVAL},
    {"5d", 0, -EINVAL},
    {"1m30", 0, -EINVAL},
    {"1..5s", 0, -EINVAL},
    {NULL, 0, -EINVAL},
};

static void test_duration(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(duration_cases); i++) {
		const struct int_case *c = &duration_cases[i];
		int64_t v = 12345;
		int r = sm_number_parse_duration_ms(c->text, &v);

		if (r != c->error || (r == 0 && v != c->expected) || (r != 0 && v != 12345)) {
			print_error("duration case %zu '%s': got %d %lld, want %d %lld\n", i,
			            c->text ? c->text : "NULL", r, (long long)v, c->error,
			            (long long)c->expected);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_int64),
	    cmocka_unit_test(test_uint64),
	    cmocka_unit_test(test_double),
	    cmocka_unit_test(test_duration),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
