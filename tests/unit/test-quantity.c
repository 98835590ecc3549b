/* SPDX-License-Identifier: MIT */
/* resource.Quantity: canonical DecimalSI formatting, ParseQuantity, MilliValue. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/quantity.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

struct format_case {
	double value;
	const char *expected; /* NULL when an error is expected */
	int error;
};

static const struct format_case format_cases[] = {
    /* integers */
    {0, "0", 0},
    {1, "1", 0},
    {10, "10", 0},
    {100, "100", 0},
    {1000, "1k", 0},
    {1500, "1500", 0},
    {2000, "2k", 0},
    {120000, "120k", 0},
    {1e6, "1M", 0},
    {2.5e9, "2500M", 0},
    {123e6, "123M", 0},
    {1e12, "1T", 0},
    {1e15, "1P", 0},
    {1e17, "100P", 0},
    {5.5e17, "550P", 0},
    {1e18, "1E", 0},
    {7, "7", 0},
    {999, "999", 0},
    {1001, "1001", 0},
    /* milli */
    {0.8, "800m", 0},
    {1.5, "1500m", 0},
    {0.05, "50m", 0},
    {0.001, "1m", 0},
    {1.08, "1080m", 0},
    {12.345, "12345m", 0},
    {0.29, "290m", 0},
    {0.1, "100m", 0},
    {0.3, "300m", 0},
    {7.5, "7500m", 0},
    {100.01, "100010m", 0},
    /* micro and nano */
    {0.0005, "500u", 0},
    {0.000001, "1u", 0},
    {2.5e-7, "250n", 0},
    {1e-7, "100n", 0},
    {1e-9, "1n", 0},
    {2e-9, "2n", 0},
    {1.5e-9, "1n", 0}, /* the double is 1.4999...e-9 */
    {2.5e-9, "3n", 0}, /* the double is 2.5000...05e-9 */
    {5e-10, "1n", 0},  /* just above half a nano */
    {4e-10, "0", 0},   /* rounds to zero at nano */
    {1e-10, "0", 0},
    {5e-324, "0", 0},
    {123.456e-9, "123n", 0},
    {0.0009765625, "976563n", 0},  /* exact tie: half away from zero, not to even */
    {0.0048828125, "4882813n", 0}, /* exact tie, even neighbour below */
    {-0.0048828125, "-4882813n", 0},
    {0.0029296875, "2929688n", 0}, /* exact tie, even neighbour above */
    {1234.5678, "1234567800u", 0},
    {999.9999999996, "1k", 0}, /* rounding carries into the integer part */
    {123456789.123456789, "123456789123456791n", 0},
    {4503599627370495.5, "4503599627370495500m", 0},
    /* negatives */
    {-1.5, "-1500m", 0},
    {-0.8, "-800m", 0},
    {-1, "-1", 0},
    {-2000, "-2k", 0},
    {-0.0, "0", 0},
    {-1e-10, "0", 0},
    /* large values */
    {9.1e18, "9100P", 0},
    {9.19e18, "9190P", 0},
    {-9.19e18, "-9190P", 0},
    {4611686018427387904.0, "4611686018427387904", 0},
    {9199999999999998976.0, "9199999999999998976", 0},
    {9.2e18, NULL, -ERANGE},
    {-9.2e18, NULL, -ERANGE},
    {9223372036854775807.0, NULL, -ERANGE},
    {1e19, NULL, -ERANGE},
    {1e300, NULL, -ERANGE},
    /* not numbers */
    {NAN, NULL, -EDOM},
    {-NAN, NULL, -EDOM},
    {INFINITY, NULL, -EDOM},
    {-INFINITY, NULL, -EDOM},
};

static void test_format_table(void **state)
{
	unsigned failures = 0;

	(void)state;
	assert_true(N_ELEMENTS(format_cases) >= 45);
	for (size_t i = 0; i < N_ELEMENTS(format_cases); i++) {
		const struct format_case *c = &format_cases[i];
		char buf[SM_QUANTITY_MAX];
		int r;

		memset(buf, 'x', sizeof(buf));
		r = sm_quantity_format(c->value, buf, sizeof(buf));
		if (c->expected) {
			if (r < 0 || strcmp(buf, c->expected) != 0 ||
			    (size_t)r != strlen(c->expected)) {
				print_error("format case %zu (%.17g): got %d '%s', want '%s'\n", i,
				            c->value, r, r < 0 ? "" : buf, c->expected);
				failures++;
			}
		} else if (r != c->error) {
			print_error("format case %zu (%.17g): got %d, want error %d\n", i, c->value,
			            r, c->error);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void test_format_small_buffer(void **state)
{
	char buf[SM_QUANTITY_MAX];

	(void)state;
	assert_int_equal(sm_quantity_format(1, buf, SM_QUANTITY_MAX - 1), -ENOBUFS);
	assert_int_equal(sm_quantity_format(1, buf, 0), -ENOBUFS);
	assert_int_equal(sm_quantity_format(-9.19e18 + 1024, buf, sizeof(buf)), 20);
}

struct parse_case {
	const char *text;
	double expected;
	int error; /* 0: valid */
};

static const struct parse_case parse_cases[] = {
    {"0", 0, 0},
    {"1", 1, 0},
    {"-1", -1, 0},
    {"+1", 1, 0},
    {"007", 7, 0},
    {"1.", 1, 0},
    {".5", 0.5, 0},
    {"1.5", 1.5, 0},
    {"1500m", 1.5, 0},
    {"800m", 0.8, 0},
    {"-800m", -0.8, 0},
    {"290m", 0.29, 0},
    {"100u", 0.0001, 0},
    {"1n", 1e-9, 0},
    {"0.1m", 0.0001, 0},
    {"1k", 1000, 0},
    {"1.5k", 1500, 0},
    {"2500M", 2.5e9, 0},
    {"1G", 1e9, 0},
    {"1T", 1e12, 0},
    {"1P", 1e15, 0},
    {"1E", 1e18, 0},
    {"9100P", 9.1e18, 0},
    {"1Ki", 1024, 0},
    {"1.5Gi", 1.5 * 1073741824.0, 0},
    {"1024Mi", 1073741824.0, 0},
    {"1Ti", 1099511627776.0, 0},
    {"1Pi", 1125899906842624.0, 0},
    {"1Ei", 1152921504606846976.0, 0},
    {"1e3", 1000, 0},
    {"1E3", 1000, 0},
    {"1e+3", 1000, 0},
    {"1.5E-3", 0.0015, 0},
    {"80e-3", 0.08, 0},
    {"1e0", 1, 0},
    {"1234.568", 1234.568, 0},
    {"1234567800u", 1234.5678, 0},
    {"0.0000000001", 1e-9, 0},   /* rounded up to nano */
    {"-0.0000000001", -1e-9, 0}, /* away from zero */
    {"0.0000000011", 2e-9, 0},
    {"1e-10", 1e-9, 0},
    {"0.9999999999", 1, 0}, /* the carry runs through every digit */
    {"0.000000000000", 0, 0},
    {"-0", 0, 0},
    {"", 0, -EINVAL},
    {"-", 0, -EINVAL},
    {"+", 0, -EINVAL},
    {".", 0, -EINVAL},
    {"m", 0, -EINVAL},
    {"1.1.M", 0, -EINVAL},
    {"1+1.0M", 0, -EINVAL},
    {"0.1mi", 0, -EINVAL},
    {"0.1am", 0, -EINVAL},
    {"aoeu", 0, -EINVAL},
    {".5i", 0, -EINVAL},
    {"1i", 0, -EINVAL},
    {"-3.01i", 0, -EINVAL},
    {"-3.01e-", 0, -EINVAL},
    {"1e", 0, -EINVAL},
    {"1K", 0, -EINVAL},
    {"1ki", 0, -EINVAL},
    {"1 ", 0, -EINVAL},
    {" 1", 0, -EINVAL},
    {"1e3m", 0, -EINVAL},
    {"1mm", 0, -EINVAL},
    {"0x10", 0, -EINVAL},
    {"1e400", 0, -ERANGE},
    {"1e99999999999999999999", 0, -ERANGE},
    {"1e-99999999999999999999", 1e-9, 0},
};

static void test_parse_table(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		double v = 42.5;
		int r = sm_quantity_parse(c->text, &v);

		if (c->error == 0) {
			double tol = fabs(c->expected) * 1e-12;

			if (r != 0 || fabs(v - c->expected) > tol) {
				print_error("parse case %zu '%s': got %d %.17g, want %.17g\n", i,
				            c->text, r, v, c->expected);
				failures++;
			}
		} else if (r != c->error || v != 42.5) {
			print_error("parse case %zu '%s': got %d (value %.17g), want error %d and "
			            "value untouched\n",
			            i, c->text, r, v, c->error);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* Every formatted value reads back as the value, within nano rounding. */
static void test_round_trip(void **state)
{
	static const double values[] = {
	    0,          1,         0.8,
	    1.5,        0.05,      0.001,
	    1.08,       12.345,    0.29,
	    1e-9,       0.0005,    1234.5678,
	    2.5e9,      1e12,      -1.5,
	    -0.8,       1e18,      9.1e18,
	    3.14159265, 1.0 / 3.0, 2.0 / 3,
	    123456.789, 42e-6,     -7.25e-7,
	    1e15,       0.1,       4503599627370495.5,
	    1e-3 / 3,
	};
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(values); i++) {
		char buf[SM_QUANTITY_MAX];
		double back = NAN;
		double tol = fmax(fabs(values[i]) * 1e-9, 0.5e-9 + 1e-18);
		int r = sm_quantity_format(values[i], buf, sizeof(buf));

		if (r < 0 || sm_quantity_parse(buf, &back) != 0 || fabs(back - values[i]) > tol) {
			print_error("round trip %zu (%.17g): formatted %d '%s', parsed %.17g\n", i,
			            values[i], r, r < 0 ? "" : buf, back);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* Integral values take a path of their own: the same text as the general one, which
 * writes the exact digits with trailing zeros folded into k, M, G, T, P. */
static void test_format_integers(void **state)
{
	static const char *const sfx[] = {"", "k", "M", "G", "T", "P"};
	unsigned failures = 0;
	uint64_t x = 88172645463325252u;

	(void)state;
	for (int i = 0; i < 20000 && failures < 10; i++) {
		double v;
		char got[SM_QUANTITY_MAX], want[SM_QUANTITY_MAX];
		uint64_t u;
		int g = 0;

		/* Small ones, round ones, and random ones up to 2^53. */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (i < 5000)
			u = (uint64_t)i;
		else if (i < 10000)
			u = (uint64_t)(i - 5000) * 1000000;
		else
			u = x >> (11 + i % 40);
		v = (i % 2 && u) ? -(double)u : (double)u;
		while (u && u % 1000 == 0) {
			u /= 1000;
			g++;
		}
		(void)snprintf(want, sizeof(want), "%s%llu%s", v < 0 ? "-" : "",
		               (unsigned long long)u, sfx[g]);
		if (sm_quantity_format(v, got, sizeof(got)) < 0 || strcmp(got, want) != 0) {
			print_error("%.17g: got '%s', want '%s'\n", v, got, want);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

struct milli_case {
	double value;
	long long expected;
};

static const struct milli_case milli_cases[] = {
    {0, 0},
    {-0.0, 0},
    {1, 1000},
    {0.29, 290}, /* not 289 (0.29 * 1000 = 289.99...) */
    {0.8, 800},
    {1.5, 1500},
    {-1.5, -1500},
    {0.0001, 1},   /* ceil */
    {-0.0001, -1}, /* away from zero */
    {0.0010001, 2},
    {1e-9, 1},
    {4e-10, 0}, /* rounds to 0 at nano first, as the formatted string says */
    {1.0000000001, 1000},
    {1234.5678, 1234568},
    {12.345, 12345},
    {1e15, 1000000000000000000LL},
    {9.1e15, 9100000000000000000LL},
    {9.3e15, LLONG_MAX},
    {-9.3e15, LLONG_MIN},
    {1e19, LLONG_MAX},
    {-1e19, LLONG_MIN},
    {INFINITY, LLONG_MAX},
    {-INFINITY, LLONG_MIN},
    {NAN, 0},
};

static void test_milli_value(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(milli_cases); i++) {
		long long got = sm_quantity_milli_value(milli_cases[i].value);

		if (got != milli_cases[i].expected) {
			print_error("milli case %zu (%.17g): got %lld, want %lld\n", i,
			            milli_cases[i].value, got, milli_cases[i].expected);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format_table),        cmocka_unit_test(test_format_integers),
	    cmocka_unit_test(test_format_small_buffer), cmocka_unit_test(test_parse_table),
	    cmocka_unit_test(test_round_trip),          cmocka_unit_test(test_milli_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
