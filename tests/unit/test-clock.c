/* SPDX-License-Identifier: MIT */
/* The clocks: monotonic readings agree in ms and us, deadlines carry into seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/clock.h"

static int64_t ts_ms(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_units_agree(void **state)
{
	int64_t ms, us;

	(void)state;
	ms = sm_time_mono_ms();
	us = sm_time_mono_us();
	assert_true(us / 1000 >= ms && us / 1000 - ms < 1000);
	assert_true(sm_time_wall_ms() > 1600000000000); /* after 2020 */
}

static void test_deadline(void **state)
{
	static const int64_t waits[] = {0, 1, 999, 1000, 1500, 61999};

	(void)state;
	for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
		int64_t before = sm_time_mono_ms();
		struct timespec d = sm_time_mono_deadline(waits[i]);
		int64_t after = sm_time_mono_ms();

		assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
		assert_true(ts_ms(d) >= before + waits[i]);
		assert_true(ts_ms(d) <= after + waits[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_units_agree),
	    cmocka_unit_test(test_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
