/* SPDX-License-Identifier: MIT */
/* The Redis presets' pure helpers (redis-presets.c): the queue a Kombu binding names (Celery's
 * queue discovery) and the age of Sidekiq's oldest job from its enqueued_at. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/config.h"

#include "../../src/collectors/redis-internal.h"

#define SEP "\x06\x16"

static void test_kombu_queue(void **state)
{
	static const struct {
		const char *member;
		const char *queue; /* NULL: not a queue */
	} cases[] = {
	    {"celery" SEP SEP "celery", "celery"},
	    {"emails" SEP "emails.*" SEP "emails", "emails"},
	    {"rk" SEP "" SEP "a" SEP "b", "a" SEP "b"}, /* the queue is all after the second */
	    {"celery" SEP "celery", NULL},              /* one separator */
	    {"celery", NULL},
	    {"", NULL},
	    {"rk" SEP "p" SEP, NULL}, /* empty queue */
	    {"rk" SEP "p" SEP "worker1.celery.pidbox", NULL},
	    {"rk" SEP "p" SEP ".pidbox", ".pidbox"}, /* only the suffix of a longer name */
	    {"rk" SEP "p" SEP "celeryev.1234", NULL},
	    {"rk" SEP "p" SEP "celeryev.", "celeryev."},
	    {"rk" SEP "p" SEP "celeryevents", "celeryevents"}, /* the '.' is part of the prefix */
	    {"rk\x06"
	     "p" SEP "q",
	     NULL}, /* half a separator */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *q = NULL;
		size_t len = 12345;
		bool ok = sm_redis_kombu_queue(cases[i].member, strlen(cases[i].member), &q, &len);

		if (!cases[i].queue) {
			if (ok)
				fail_msg("case %zu: a queue '%.*s' where none is", i, (int)len, q);
			if (q || len != 12345)
				fail_msg("case %zu: outputs touched on failure", i);
			continue;
		}
		if (!ok)
			fail_msg("case %zu: no queue, expected '%s'", i, cases[i].queue);
		if (len != strlen(cases[i].queue) || memcmp(q, cases[i].queue, len) != 0)
			fail_msg("case %zu: '%.*s', expected '%s'", i, (int)len, q, cases[i].queue);
	}
}

static void test_sidekiq_age(void **state)
{
	static const int64_t now = 1700000000000; /* ms */
	static const struct {
		const char *json;
		int r;
		double age;
		const char *err;
	} cases[] = {
	    /* Sidekiq up to 7: float seconds. */
	    {"{\"class\":\"X\",\"enqueued_at\":1699999990.5}", 0, 9.5, NULL},
	    /* Sidekiq 8: integer milliseconds. */
	    {"{\"enqueued_at\":1699999990500}", 0, 9.5, NULL},
	    /* A producer's clock ahead of ours: 0, not negative. */
	    {"{\"enqueued_at\":1700000010}", 0, 0, NULL},
	    {"{\"enqueued_at\":1700000010000}", 0, 0, NULL},
	    {"{\"enqueued_at\":\"1699999990\"}", -EINVAL, 0, "no numeric enqueued_at"},
	    {"{\"class\":\"X\"}", -EINVAL, 0, "no numeric enqueued_at"},
	    {"{\"enqueued_at\":0}", -EINVAL, 0, "enqueued_at 0 is not a time"},
	    {"{\"enqueued_at\":-5}", -EINVAL, 0, "enqueued_at -5 is not a time"},
	    {"[1,2]", -EINVAL, 0, "not a JSON object"},
	    {"{\"enqueued_at\":", -EINVAL, 0, "not a JSON object"},
	    {"", -EINVAL, 0, "not a JSON object"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[100] = "";
		double age = -1;
		int r = sm_redis_sidekiq_age(cases[i].json, strlen(cases[i].json), now, &age, err,
		                             sizeof(err));

		if (r != cases[i].r)
			fail_msg("case %zu '%s': %d, expected %d (%s)", i, cases[i].json, r,
			         cases[i].r, err);
		if (r < 0) {
			if (strcmp(err, cases[i].err) != 0)
				fail_msg("case %zu: '%s', expected '%s'", i, err, cases[i].err);
			if (age != -1)
				fail_msg("case %zu: age touched on failure", i);
		} else if (fabs(age - cases[i].age) > 1e-6) {
			fail_msg("case %zu '%s': age %g, expected %g", i, cases[i].json, age,
			         cases[i].age);
		}
	}
}

/* Milliseconds from 1e11 on (1973): a clock in the 1970s is no reason to read them as
 * seconds. */
static void test_sidekiq_age_threshold(void **state)
{
	const char *ms = "{\"enqueued_at\":299999990000}";
	const char *s = "{\"enqueued_at\":99999999990}";
	char err[100];
	double age = -1;

	(void)state;
	assert_int_equal(sm_redis_sidekiq_age(ms, strlen(ms), 300000000000, &age, err, sizeof(err)),
	                 0);
	assert_true(fabs(age - 10) < 1e-6);
	assert_int_equal(
	    sm_redis_sidekiq_age(s, strlen(s), 100000000000000, &age, err, sizeof(err)), 0);
	assert_true(fabs(age - 10) < 1e-6);
}

/* The JSON is read with its length: what follows is not part of it. */
static void test_sidekiq_age_length(void **state)
{
	const char *json = "{\"enqueued_at\":1699999999}garbage";
	char err[100];
	double age = -1;

	(void)state;
	assert_int_equal(
	    sm_redis_sidekiq_age(json, strlen(json) - 7, 1700000000000, &age, err, sizeof(err)), 0);
	assert_true(fabs(age - 1) < 1e-6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kombu_queue),
	    cmocka_unit_test(test_sidekiq_age),
	    cmocka_unit_test(test_sidekiq_age_threshold),
	    cmocka_unit_test(test_sidekiq_age_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
