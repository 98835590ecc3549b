/* SPDX-License-Identifier: MIT */
/* The Redis collector's derived metrics (redis-derived.c): growth over the window, drain time
 * from the decreases seen or a dequeue counter, its cap, the window's baseline, and series
 * kept apart and forgotten. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/config.h"

#include "../../src/collectors/redis-internal.h"

static const struct redis_rule rule = {.metric = "q", .window_ms = 10000, .drain_cap = 3600};

struct out {
	int r;
	double growth;
	double drain;
};

static struct out update(struct redis_history *h, const char *label, int64_t t_ms, double value)
{
	struct out o = {.growth = -1, .drain = -1};

	o.r =
	    sm_redis_history_update(h, &rule, 0, label, t_ms, value, false, 0, &o.growth, &o.drain);
	return o;
}

static struct out update_counter(struct redis_history *h, int64_t t_ms, double value,
                                 double counter)
{
	struct out o = {.growth = -1, .drain = -1};

	o.r = sm_redis_history_update(h, &rule, 0, "c", t_ms, value, true, counter, &o.growth,
	                              &o.drain);
	return o;
}

#define assert_near(a, b) assert_true(fabs((a) - (b)) < 1e-9)

static void test_first_sample(void **state)
{
	struct redis_history *h = sm_redis_history_new();
	struct out o;

	(void)state;
	o = update(h, "a", 1000, 5);
	assert_int_equal(o.r, 1);
	assert_true(o.growth == -1 && o.drain == -1); /* untouched */
	/* A second sample at the same time: still nothing to compare with. */
	assert_int_equal(update(h, "a", 1000, 6).r, 1);
	sm_redis_history_free(h);
}

static void test_growth_and_drain(void **state)
{
	struct redis_history *h = sm_redis_history_new();
	struct out o;

	(void)state;
	/* Growing, nothing dequeued: not draining, drain_cap. */
	update(h, "grow", 0, 100);
	o = update(h, "grow", 10000, 120);
	assert_int_equal(o.r, 0);
	assert_near(o.growth, 2);
	assert_near(o.drain, 3600);

	/* Shrinking by 20 in 10s: 2/s dequeued, 80 left: 40s. */
	update(h, "shrink", 0, 100);
	o = update(h, "shrink", 10000, 80);
	assert_int_equal(o.r, 0);
	assert_near(o.growth, -2);
	assert_near(o.drain, 40);

	/* Empty: nothing to drain. */
	update(h, "empty", 0, 10);
	o = update(h, "empty", 10000, 0);
	assert_near(o.drain, 0);

	/* Slow: 1 item in 10s, 100000 left: capped. */
	update(h, "slow", 0, 100001);
	o = update(h, "slow", 10000, 100000);
	assert_near(o.drain, 3600);
	sm_redis_history_free(h);
}

static void test_counter(void **state)
{
	struct redis_history *h = sm_redis_history_new();
	struct out o;

	(void)state;
	/* The counter sees 50 dequeued in 10s although the length did not change. */
	update_counter(h, 0, 100, 1000);
	o = update_counter(h, 10000, 100, 1050);
	assert_int_equal(o.r, 0);
	assert_near(o.growth, 0);
	assert_near(o.drain, 20);
	/* A counter reset (lower than the baseline): the decreases seen instead, 10 in 10s. */
	o = update_counter(h, 20000, 90, 3);
	assert_near(o.drain, 90);
	sm_redis_history_free(h);
}

static void test_window_baseline(void **state)
{
	struct redis_history *h = sm_redis_history_new();
	struct out o = {0};

	(void)state;
	/* One sample a second, growing by 1 a second, then a jump: growth is measured against
	 * the newest sample at least the window (10s) old. */
	for (int t = 0; t <= 30; t++)
		o = update(h, "w", t * 1000LL, t);
	assert_near(o.growth, 1);
	o = update(h, "w", 31000, 131);
	/* Baseline: t=21 (value 21), 10s before: (131 - 21) / 10. */
	assert_near(o.growth, 11);
	sm_redis_history_free(h);
}

static void test_series_apart_and_swept(void **state)
{
	struct redis_history *h = sm_redis_history_new();
	char label[32];
	struct out o;

	(void)state;
	/* Many series (the table grows): each compared with its own history. */
	for (int i = 0; i < 1000; i++) {
		snprintf(label, sizeof(label), "q%d", i);
		assert_int_equal(update(h, label, 0, i).r, 1);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(label, sizeof(label), "q%d", i);
		o = update(h, label, 10000, 2 * i);
		assert_int_equal(o.r, 0);
		assert_near(o.growth, i / 10.0);
	}
	/* Another rule with the same label is another series. */
	{
		double g, d;

		assert_int_equal(
		    sm_redis_history_update(h, &rule, 1, "q5", 10000, 1, false, 0, &g, &d), 1);
	}
	/* Not seen for longer than keep: forgotten, so the next sample is a first one. */
	sm_redis_history_sweep(h, 10000 + 60001, 60000);
	assert_int_equal(update(h, "q5", 80000, 1).r, 1);
	sm_redis_history_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_sample),
	    cmocka_unit_test(test_growth_and_drain),
	    cmocka_unit_test(test_counter),
	    cmocka_unit_test(test_window_baseline),
	    cmocka_unit_test(test_series_apart_and_swept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
