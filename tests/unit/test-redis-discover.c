/* SPDX-License-Identifier: MIT */
/* The Redis collector's queue-name discovery (redis-discover.c) without a server: the names in
 * an SMEMBERS reply (RQ's prefixed members, Kombu bindings) and their sorting and de-duplication.
 */
#include <hiredis/hiredis.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/config.h"

#include "../../src/collectors/redis-internal.h"

#define SEP "\x06\x16"

static redisReply member(const char *s)
{
	return (redisReply){.type = REDIS_REPLY_STRING, .str = (char *)s, .len = strlen(s)};
}

static void names_free(struct redis_names *n)
{
	sm_redis_names_clear(n);
	free(n->v);
}

static void assert_names(const struct redis_names *n, const char *const *want, size_t n_want)
{
	if (n->n != n_want)
		fail_msg("%zu names, expected %zu", n->n, n_want);
	for (size_t i = 0; i < n_want; i++)
		if (strcmp(n->v[i], want[i]) != 0)
			fail_msg("name %zu: '%s', expected '%s'", i, n->v[i], want[i]);
}

static void test_take_members_strip(void **state)
{
	redisReply m[] = {member("rq:queue:default"), member("rq:queue:high"), member("other"),
	                  member("rq:queue:"), member("")};
	redisReply nil = {.type = REDIS_REPLY_NIL};
	redisReply *el[] = {&m[0], &m[1], &nil, &m[2], &m[3], &m[4]};
	redisReply reply = {.type = REDIS_REPLY_ARRAY, .element = el, .elements = 6};
	/* A member that is just the prefix is kept whole; an empty one and nil are not names. */
	const char *const want[] = {"default", "high", "other", "rq:queue:"};
	struct redis_names n = {0};

	(void)state;
	assert_int_equal(sm_redis_take_members(&n, &reply, "rq:queue:", false), 0);
	assert_names(&n, want, 4);
	names_free(&n);
}

static void test_take_members_plain(void **state)
{
	redisReply m[] = {member("default"), member("rq:queue:x")};
	redisReply *el[] = {&m[0], &m[1]};
	redisReply reply = {.type = REDIS_REPLY_ARRAY, .element = el, .elements = 2};
	const char *const want[] = {"default", "rq:queue:x"};
	struct redis_names n = {0};

	(void)state;
	assert_int_equal(sm_redis_take_members(&n, &reply, NULL, false), 0);
	assert_names(&n, want, 2);
	names_free(&n);
}

static void test_take_members_kombu(void **state)
{
	redisReply m[] = {member("celery" SEP SEP "celery"),
	                  member("w1.celery.pidbox" SEP SEP "w1.celery.pidbox"),
	                  member("emails" SEP "emails" SEP "emails"), member("no separators")};
	redisReply *el[] = {&m[0], &m[1], &m[2], &m[3]};
	redisReply reply = {.type = REDIS_REPLY_ARRAY, .element = el, .elements = 4};
	const char *const want[] = {"celery", "emails"};
	struct redis_names n = {0};

	(void)state;
	/* strip does not apply to Kombu members. */
	assert_int_equal(sm_redis_take_members(&n, &reply, "cel", true), 0);
	assert_names(&n, want, 2);
	names_free(&n);
}

static void test_sort_unique(void **state)
{
	const char *in[] = {"b", "a", "c", "a", "b", "b", "aa"};
	const char *const want[] = {"a", "aa", "b", "c"};
	struct redis_names n = {0};

	(void)state;
	sm_redis_names_sort_unique(&n); /* empty */
	assert_int_equal(n.n, 0);
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		assert_int_equal(sm_redis_names_push(&n, in[i], strlen(in[i])), 0);
	sm_redis_names_sort_unique(&n);
	assert_names(&n, want, 4);
	/* Again: nothing changes. */
	sm_redis_names_sort_unique(&n);
	assert_names(&n, want, 4);
	names_free(&n);
}

static void test_names_push_grows(void **state)
{
	struct redis_names n = {0};

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(sm_redis_names_push(&n, "queue:abc", 5), 0);
	assert_int_equal(n.n, 1000);
	assert_string_equal(n.v[999], "queue");
	sm_redis_names_sort_unique(&n);
	assert_int_equal(n.n, 1);
	names_free(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_take_members_strip), cmocka_unit_test(test_take_members_plain),
	    cmocka_unit_test(test_take_members_kombu), cmocka_unit_test(test_sort_unique),
	    cmocka_unit_test(test_names_push_grows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
