/* SPDX-License-Identifier: MIT */
/* The scheduler's backoff (scheduler-backoff.c): a failing source's backoff doubles from its
 * interval up to max(interval, 10s), scaled by a jitter in [0.5, 1]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "../../src/collectors/scheduler-internal.h"

static void test_backoff(void **state)
{
	static const struct {
		int64_t interval_ms;
		unsigned k;
		double jitter;
		int64_t ms;
	} cases[] = {
	    /* Doubling from the interval up to the 10s floor. */
	    {1000, 1, 1.0, 1000},
	    {1000, 2, 1.0, 2000},
	    {1000, 3, 1.0, 4000},
	    {1000, 4, 1.0, 8000},
	    {1000, 5, 1.0, 10000},
	    {1000, 60, 1.0, 10000},
	    {1000, 4000000000u, 1.0, 10000}, /* no overflow however long it fails */
	    {3000, 3, 1.0, 10000},           /* 12s capped */
	    /* An interval above the floor: the interval itself, never longer. */
	    {30000, 1, 1.0, 30000},
	    {30000, 5, 1.0, 30000},
	    /* Jitter scales the capped wait. */
	    {1000, 2, 0.5, 1000},
	    {1000, 9, 0.75, 7500},
	    /* At least 1 ms. */
	    {1, 1, 0.5, 1},
	    {0, 3, 1.0, 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms =
		    sm_scheduler_backoff_ms(cases[i].interval_ms, cases[i].k, cases[i].jitter);

		if (ms != cases[i].ms)
			fail_msg(
			    "case %zu: interval %lldms, failure %u, jitter %g: %lldms, expected "
			    "%lldms",
			    i, (long long)cases[i].interval_ms, cases[i].k, cases[i].jitter,
			    (long long)ms, (long long)cases[i].ms);
	}
}

static void test_jitter(void **state)
{
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	double lo = 1, hi = 0, sum = 0;
	const int n = 100000;

	(void)state;
	for (int i = 0; i < n; i++) {
		uint64_t before = rng;
		double j = sm_scheduler_jitter(&rng);

		assert_true(j >= 0.5 && j <= 1.0);
		assert_true(rng != before);
		assert_true(rng != 0);
		lo = j < lo ? j : lo;
		hi = j > hi ? j : hi;
		sum += j;
	}
	/* Spread over the whole range, centred on 0.75. */
	assert_true(lo < 0.51);
	assert_true(hi > 0.99);
	assert_true(sum / n > 0.74 && sum / n < 0.76);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_jitter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
