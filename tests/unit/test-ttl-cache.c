/* SPDX-License-Identifier: MIT */
/* The TTL cache: expiry, replacement, capacity eviction (expired entries first, then the
 * oldest), and concurrent use. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/ttl-cache.h"

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

static void test_cache_ttl_and_bounds(void **state)
{
	struct sm_ttl_cache *c = sm_ttl_cache_new(3, 1000);
	char *v = NULL;

	(void)state;
	assert_non_null(c);
	assert_false(sm_ttl_cache_get(c, "a", 0, &v));
	assert_int_equal(sm_ttl_cache_put(c, "a", "1", 0), 0);
	assert_true(sm_ttl_cache_get(c, "a", 999, &v));
	assert_string_equal(v, "1");
	free(v);
	assert_false(sm_ttl_cache_get(c, "a", 1000, &v)); /* expired, and removed */
	assert_int_equal(sm_ttl_cache_count(c), 0);

	/* Replacing a key keeps one entry with the new value and time. */
	assert_int_equal(sm_ttl_cache_put(c, "a", "1", 0), 0);
	assert_int_equal(sm_ttl_cache_put(c, "a", "2", 500), 0);
	assert_int_equal(sm_ttl_cache_count(c), 1);
	assert_true(sm_ttl_cache_get(c, "a", 1400, &v));
	assert_string_equal(v, "2");
	free(v);

	/* Full: the oldest goes. */
	assert_int_equal(sm_ttl_cache_put(c, "b", "x", 600), 0);
	assert_int_equal(sm_ttl_cache_put(c, "c", "x", 700), 0);
	assert_int_equal(sm_ttl_cache_put(c, "d", "x", 800), 0);
	assert_int_equal(sm_ttl_cache_count(c), 3);
	assert_false(sm_ttl_cache_get(c, "a", 800, &v));
	assert_true(sm_ttl_cache_get(c, "d", 800, &v));
	free(v);
	/* Full with expired entries: those go first. */
	assert_int_equal(sm_ttl_cache_put(c, "e", "x", 1650), 0);
	assert_int_equal(sm_ttl_cache_count(c), 3); /* b (expired at 1600) went, not c */
	assert_false(sm_ttl_cache_get(c, "b", 1650, &v));
	assert_true(sm_ttl_cache_get(c, "c", 1650, &v));
	free(v);
	sm_ttl_cache_free(c);

	/* TTL 0: nothing is kept. */
	c = sm_ttl_cache_new(3, 0);
	assert_int_equal(sm_ttl_cache_put(c, "a", "1", 0), 0);
	assert_false(sm_ttl_cache_get(c, "a", 0, &v));
	sm_ttl_cache_free(c);
	sm_ttl_cache_free(NULL);
}

static void *hammer(void *arg)
{
	struct sm_ttl_cache *c = arg;
	char key[32];
	char *v;

	for (int i = 0; i < 20000; i++) {
		(void)snprintf(key, sizeof(key), "k%d", i % 300);
		if (i % 3 == 0) {
			if (sm_ttl_cache_put(c, key, key, i) < 0)
				return (void *)1;
		} else if (sm_ttl_cache_get(c, key, i, &v)) {
			if (strcmp(v, key) != 0)
				return (void *)1;
			free(v);
		}
	}
	return NULL;
}

static void test_cache_threads(void **state)
{
	struct sm_ttl_cache *c = sm_ttl_cache_new(100, 50);
	pthread_t t[4];
	void *res;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, c), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &res), 0);
		assert_null(res);
	}
	assert_true(sm_ttl_cache_count(c) <= 100);
	sm_ttl_cache_free(c);
}

/* Many more keys than room: only the newest max_entries stay, in any bucket. */
static void test_cache_eviction_keeps_newest(void **state)
{
	struct sm_ttl_cache *c = sm_ttl_cache_new(5, 1000000);
	char key[32];
	char *v = NULL;

	(void)state;
	assert_non_null(c);
	for (int i = 0; i < 100; i++) {
		(void)snprintf(key, sizeof(key), "key-%d", i);
		assert_int_equal(sm_ttl_cache_put(c, key, key, i), 0);
		assert_true(sm_ttl_cache_count(c) <= 5);
	}
	assert_int_equal(sm_ttl_cache_count(c), 5);
	for (int i = 0; i < 100; i++) {
		bool want = i >= 95;

		(void)snprintf(key, sizeof(key), "key-%d", i);
		if (sm_ttl_cache_get(c, key, 100, &v) != want)
			fail_msg("key '%s': %s, want %s", key, want ? "missing" : "present",
			         want ? "present" : "missing");
		if (want) {
			assert_string_equal(v, key);
			free(v);
		}
	}
	sm_ttl_cache_free(c);
}

/* A zero capacity still holds one entry; a negative TTL stores nothing; a NULL cache is
 * empty and ignores puts. */
static void test_cache_edges(void **state)
{
	struct sm_ttl_cache *c = sm_ttl_cache_new(0, 1000);
	char *v = NULL;

	(void)state;
	assert_int_equal(sm_ttl_cache_put(c, "a", "1", 0), 0);
	assert_int_equal(sm_ttl_cache_put(c, "b", "2", 1), 0);
	assert_int_equal(sm_ttl_cache_count(c), 1);
	assert_false(sm_ttl_cache_get(c, "a", 2, &v));
	assert_true(sm_ttl_cache_get(c, "b", 2, &v));
	assert_string_equal(v, "2");
	free(v);
	sm_ttl_cache_free(c);

	c = sm_ttl_cache_new(3, -5);
	assert_int_equal(sm_ttl_cache_put(c, "a", "1", 0), 0);
	assert_int_equal(sm_ttl_cache_count(c), 0);
	sm_ttl_cache_free(c);

	assert_int_equal(sm_ttl_cache_put(NULL, "a", "1", 0), 0);
	assert_false(sm_ttl_cache_get(NULL, "a", 0, &v));
	assert_int_equal(sm_ttl_cache_count(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cache_ttl_and_bounds),
	    cmocka_unit_test(test_cache_threads),
	    cmocka_unit_test(test_cache_eviction_keeps_newest),
	    cmocka_unit_test(test_cache_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
