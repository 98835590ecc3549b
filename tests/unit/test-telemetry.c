/* SPDX-License-Identifier: MIT */
/* The /metrics counters: label tables, path and route mapping, histogram bucket placement,
 * NULL safety, and counts under concurrent recording. */
/* cmocka needs setjmp.h, stdarg.h and stddef.h before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "scalemetrics/telemetry.h"

#define EXTERNAL SM_TELEMETRY_GROUP_EXTERNAL
#define CUSTOM   SM_TELEMETRY_GROUP_CUSTOM
#define NOGROUP  SM_TELEMETRY_GROUP_NONE

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(sm_telemetry_group_to_string(NOGROUP), "");
	assert_string_equal(sm_telemetry_group_to_string(CUSTOM), "custom.metrics.k8s.io");
	assert_string_equal(sm_telemetry_group_to_string(EXTERNAL), "external.metrics.k8s.io");
	assert_null(sm_telemetry_group_to_string(SM_TELEMETRY_GROUP_MAX));
	assert_string_equal(sm_telemetry_route_to_string(SM_TELEMETRY_ROUTE_METRICS), "metrics");
	assert_string_equal(sm_telemetry_route_to_string(SM_TELEMETRY_ROUTE_OTHER), "other");
	assert_null(sm_telemetry_route_to_string(SM_TELEMETRY_ROUTE_MAX));
	assert_string_equal(sm_telemetry_auth_decision_to_string(SM_TELEMETRY_AUTH_UNAUTHENTICATED),
	                    "unauthenticated");
	assert_null(sm_telemetry_auth_decision_to_string(SM_TELEMETRY_AUTH_DECISION_MAX));
	assert_string_equal(sm_telemetry_cache_to_string(SM_TELEMETRY_CACHE_SUBJECTACCESSREVIEW),
	                    "subjectaccessreview");
	assert_null(sm_telemetry_cache_to_string(SM_TELEMETRY_CACHE_MAX));
	/* Every route name maps back to its route. */
	for (int r = 0; r < SM_TELEMETRY_ROUTE_MAX; r++)
		assert_int_equal(sm_telemetry_route_from_name(sm_telemetry_route_to_string(r)), r);
}

static void test_group_from_path(void **state)
{
	static const struct {
		const char *path;
		enum sm_telemetry_group want;
	} cases[] = {
	    {"/apis/external.metrics.k8s.io/v1beta1/namespaces/default/m", EXTERNAL},
	    {"/apis/external.metrics.k8s.io", EXTERNAL},
	    {"/apis/external.metrics.k8s.io/", EXTERNAL},
	    {"/apis/custom.metrics.k8s.io/v1beta2/namespaces/d/pods/*/m", CUSTOM},
	    {"/apis/custom.metrics.k8s.io", CUSTOM},
	    {"/apis/custom.metrics.k8s.iox", NOGROUP},
	    {"/apis/external.metrics.k8s.io.evil/v1beta1", NOGROUP},
	    {"/apis", NOGROUP},
	    {"/apis/", NOGROUP},
	    {"/metrics", NOGROUP},
	    {"/healthz", NOGROUP},
	    {"apis/custom.metrics.k8s.io", NOGROUP},
	    {"", NOGROUP},
	    {NULL, NOGROUP},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sm_telemetry_group got = sm_telemetry_group_from_path(cases[i].path);

		if (got != cases[i].want)
			fail_msg("case %zu '%s': group %d, want %d", i,
			         cases[i].path ? cases[i].path : "(null)", got, cases[i].want);
	}
}

static void test_route_from_name(void **state)
{
	static const struct {
		const char *name;
		enum sm_telemetry_route want;
	} cases[] = {
	    {"discovery", SM_TELEMETRY_ROUTE_DISCOVERY},
	    {"external", SM_TELEMETRY_ROUTE_EXTERNAL},
	    {"health", SM_TELEMETRY_ROUTE_HEALTH},
	    {"status", SM_TELEMETRY_ROUTE_STATUS},
	    /* What the API and auth layers set when no route answered. */
	    {"error", SM_TELEMETRY_ROUTE_OTHER},
	    {"authz", SM_TELEMETRY_ROUTE_OTHER},
	    {"other", SM_TELEMETRY_ROUTE_OTHER},
	    {"", SM_TELEMETRY_ROUTE_OTHER},
	    {"Metrics", SM_TELEMETRY_ROUTE_OTHER},
	    {NULL, SM_TELEMETRY_ROUTE_OTHER},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sm_telemetry_route got = sm_telemetry_route_from_name(cases[i].name);

		if (got != cases[i].want)
			fail_msg("case %zu '%s': route %d, want %d", i,
			         cases[i].name ? cases[i].name : "(null)", got, cases[i].want);
	}
}

static void test_buckets(void **state)
{
	(void)state;
	assert_int_equal(sm_telemetry_bucket_us(0), 100);
	assert_string_equal(sm_telemetry_bucket_le(0), "0.0001");
	assert_int_equal(sm_telemetry_bucket_us(SM_TELEMETRY_BUCKETS - 1), 1000000);
	assert_string_equal(sm_telemetry_bucket_le(SM_TELEMETRY_BUCKETS - 1), "1");
	assert_string_equal(sm_telemetry_bucket_le(SM_TELEMETRY_BUCKETS), "+Inf");
	assert_int_equal(sm_telemetry_bucket_us(SM_TELEMETRY_BUCKETS), INT64_MAX);
	assert_null(sm_telemetry_bucket_le(SM_TELEMETRY_BUCKETS + 1));
	assert_int_equal(sm_telemetry_bucket_us(SM_TELEMETRY_BUCKETS + 1), -1);
	/* Increasing, and each le text is the bound in seconds. */
	for (size_t i = 0; i < SM_TELEMETRY_BUCKETS; i++) {
		char want[32];
		int64_t us = sm_telemetry_bucket_us(i);

		if (i > 0)
			assert_true(us > sm_telemetry_bucket_us(i - 1));
		(void)snprintf(want, sizeof(want), "%g", (double)us / 1e6);
		assert_string_equal(sm_telemetry_bucket_le(i), want);
	}
}

/* Which bucket one observation of d microseconds lands in. */
static size_t bucket_of(int64_t d)
{
	struct sm_telemetry *t = sm_telemetry_new();
	uint64_t b[SM_TELEMETRY_BUCKETS + 1];
	uint64_t sum;
	size_t found = SIZE_MAX;

	assert_non_null(t);
	sm_telemetry_request(t, NOGROUP, SM_TELEMETRY_ROUTE_HEALTH, 200, d, 0);
	sm_telemetry_latency(t, SM_TELEMETRY_ROUTE_HEALTH, b, &sum);
	for (size_t i = 0; i <= SM_TELEMETRY_BUCKETS; i++) {
		if (b[i] == 0)
			continue;
		assert_int_equal(b[i], 1);
		assert_int_equal(found, SIZE_MAX);
		found = i;
	}
	assert_int_equal(sum, d < 0 ? 0 : d);
	sm_telemetry_free(t);
	return found;
}

static void test_bucket_placement(void **state)
{
	(void)state;
	/* Upper bounds are inclusive (le: less or equal). */
	assert_int_equal(bucket_of(0), 0);
	assert_int_equal(bucket_of(-5), 0);
	assert_int_equal(bucket_of(100), 0);
	assert_int_equal(bucket_of(101), 1);
	assert_int_equal(bucket_of(250), 1);
	assert_int_equal(bucket_of(999), 3);
	assert_int_equal(bucket_of(1000), 3);
	assert_int_equal(bucket_of(1000000), SM_TELEMETRY_BUCKETS - 1);
	assert_int_equal(bucket_of(1000001), SM_TELEMETRY_BUCKETS);
	assert_int_equal(bucket_of(INT64_MAX / 2), SM_TELEMETRY_BUCKETS);
}

static void test_counts(void **state)
{
	struct sm_telemetry *t = sm_telemetry_new();
	uint64_t b[SM_TELEMETRY_BUCKETS + 1];
	uint64_t sum;

	(void)state;
	assert_non_null(t);
	sm_telemetry_request(t, EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL, 200, 300, 2);
	sm_telemetry_request(t, EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL, 200, 700, 0);
	sm_telemetry_request(t, EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL, 503, 50, 0);
	sm_telemetry_request(t, CUSTOM, SM_TELEMETRY_ROUTE_CUSTOM, 200, 50, 1);
	sm_telemetry_request(t, NOGROUP, SM_TELEMETRY_ROUTE_OTHER, 404, 10, 0);
	/* Codes outside 100-599 count as 0; out-of-range enums as "" / other. */
	sm_telemetry_request(t, NOGROUP, SM_TELEMETRY_ROUTE_OTHER, 42, 10, 0);
	sm_telemetry_request(t, NOGROUP, SM_TELEMETRY_ROUTE_OTHER, 600, 10, 0);
	sm_telemetry_request(t, SM_TELEMETRY_GROUP_MAX, SM_TELEMETRY_ROUTE_MAX, 404, 10, 0);

	assert_int_equal(sm_telemetry_requests(t, EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL, 200), 2);
	assert_int_equal(sm_telemetry_requests(t, EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL, 503), 1);
	assert_int_equal(sm_telemetry_requests(t, EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL, 404), 0);
	assert_int_equal(sm_telemetry_requests(t, CUSTOM, SM_TELEMETRY_ROUTE_CUSTOM, 200), 1);
	assert_int_equal(sm_telemetry_requests(t, CUSTOM, SM_TELEMETRY_ROUTE_EXTERNAL, 200), 0);
	assert_int_equal(sm_telemetry_requests(t, NOGROUP, SM_TELEMETRY_ROUTE_OTHER, 404), 2);
	assert_int_equal(sm_telemetry_requests(t, NOGROUP, SM_TELEMETRY_ROUTE_OTHER, 0), 2);
	assert_int_equal(sm_telemetry_requests(t, SM_TELEMETRY_GROUP_MAX, 0, 200), 0);

	sm_telemetry_latency(t, SM_TELEMETRY_ROUTE_EXTERNAL, b, &sum);
	assert_int_equal(sum, 1050);
	assert_int_equal(b[0], 1); /* 50 */
	assert_int_equal(b[2], 1); /* 300 */
	assert_int_equal(b[3], 1); /* 700 */
	sm_telemetry_latency(t, SM_TELEMETRY_ROUTE_OTHER, b, &sum);
	assert_int_equal(b[0], 4);
	assert_int_equal(sum, 40);

	assert_int_equal(sm_telemetry_fallbacks(t, EXTERNAL), 2);
	assert_int_equal(sm_telemetry_fallbacks(t, CUSTOM), 1);
	assert_int_equal(sm_telemetry_fallbacks(t, NOGROUP), 0);

	sm_telemetry_auth_decision(t, SM_TELEMETRY_AUTH_ALLOWED);
	sm_telemetry_auth_decision(t, SM_TELEMETRY_AUTH_ALLOWED);
	sm_telemetry_auth_decision(t, SM_TELEMETRY_AUTH_DENIED);
	sm_telemetry_auth_decision(t, SM_TELEMETRY_AUTH_DECISION_MAX); /* ignored */
	assert_int_equal(sm_telemetry_auth_decisions(t, SM_TELEMETRY_AUTH_ALLOWED), 2);
	assert_int_equal(sm_telemetry_auth_decisions(t, SM_TELEMETRY_AUTH_DENIED), 1);
	assert_int_equal(sm_telemetry_auth_decisions(t, SM_TELEMETRY_AUTH_UNAUTHENTICATED), 0);
	assert_int_equal(sm_telemetry_auth_decisions(t, SM_TELEMETRY_AUTH_ERROR), 0);

	sm_telemetry_auth_cache(t, SM_TELEMETRY_CACHE_TOKENREVIEW, true);
	sm_telemetry_auth_cache(t, SM_TELEMETRY_CACHE_TOKENREVIEW, false);
	sm_telemetry_auth_cache(t, SM_TELEMETRY_CACHE_TOKENREVIEW, false);
	sm_telemetry_auth_cache(t, SM_TELEMETRY_CACHE_MAX, true); /* ignored */
	assert_int_equal(sm_telemetry_auth_cache_lookups(t, SM_TELEMETRY_CACHE_TOKENREVIEW, true),
	                 1);
	assert_int_equal(sm_telemetry_auth_cache_lookups(t, SM_TELEMETRY_CACHE_TOKENREVIEW, false),
	                 2);
	assert_int_equal(
	    sm_telemetry_auth_cache_lookups(t, SM_TELEMETRY_CACHE_SUBJECTACCESSREVIEW, true), 0);
	sm_telemetry_free(t);
}

static void test_null_is_a_no_op(void **state)
{
	uint64_t b[SM_TELEMETRY_BUCKETS + 1];
	uint64_t sum = 7;

	(void)state;
	sm_telemetry_request(NULL, EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL, 200, 1, 1);
	sm_telemetry_auth_decision(NULL, SM_TELEMETRY_AUTH_ALLOWED);
	sm_telemetry_auth_cache(NULL, SM_TELEMETRY_CACHE_TOKENREVIEW, true);
	assert_int_equal(sm_telemetry_requests(NULL, EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL, 200),
	                 0);
	assert_int_equal(sm_telemetry_fallbacks(NULL, EXTERNAL), 0);
	assert_int_equal(sm_telemetry_auth_decisions(NULL, SM_TELEMETRY_AUTH_ALLOWED), 0);
	assert_int_equal(sm_telemetry_auth_cache_lookups(NULL, SM_TELEMETRY_CACHE_TOKENREVIEW, 1),
	                 0);
	memset(b, 0xff, sizeof(b));
	sm_telemetry_latency(NULL, SM_TELEMETRY_ROUTE_EXTERNAL, b, &sum);
	for (size_t i = 0; i <= SM_TELEMETRY_BUCKETS; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(sum, 0);
	sm_telemetry_free(NULL);
}

#define THREADS    4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
	struct sm_telemetry *t = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		sm_telemetry_request(t, EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL, 200, i % 3000, 1);
		sm_telemetry_auth_decision(t, SM_TELEMETRY_AUTH_ALLOWED);
		sm_telemetry_auth_cache(t, SM_TELEMETRY_CACHE_SUBJECTACCESSREVIEW, i % 2 == 0);
	}
	return NULL;
}

static void test_concurrent_counts(void **state)
{
	struct sm_telemetry *t = sm_telemetry_new();
	pthread_t th[THREADS];
	uint64_t b[SM_TELEMETRY_BUCKETS + 1];
	uint64_t sum, total = 0, want_sum = 0;

	(void)state;
	assert_non_null(t);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, t), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < PER_THREAD; i++)
		want_sum += (uint64_t)(i % 3000);
	want_sum *= THREADS;

	assert_int_equal(sm_telemetry_requests(t, EXTERNAL, SM_TELEMETRY_ROUTE_EXTERNAL, 200),
	                 THREADS * PER_THREAD);
	assert_int_equal(sm_telemetry_fallbacks(t, EXTERNAL), THREADS * PER_THREAD);
	assert_int_equal(sm_telemetry_auth_decisions(t, SM_TELEMETRY_AUTH_ALLOWED),
	                 THREADS * PER_THREAD);
	assert_int_equal(
	    sm_telemetry_auth_cache_lookups(t, SM_TELEMETRY_CACHE_SUBJECTACCESSREVIEW, true),
	    THREADS * PER_THREAD / 2);
	sm_telemetry_latency(t, SM_TELEMETRY_ROUTE_EXTERNAL, b, &sum);
	for (size_t i = 0; i <= SM_TELEMETRY_BUCKETS; i++)
		total += b[i];
	assert_int_equal(total, THREADS * PER_THREAD);
	assert_int_equal(sum, want_sum);
	sm_telemetry_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_group_from_path),
	    cmocka_unit_test(test_route_from_name),
	    cmocka_unit_test(test_buckets),
	    cmocka_unit_test(test_bucket_placement),
	    cmocka_unit_test(test_counts),
	    cmocka_unit_test(test_null_is_a_no_op),
	    cmocka_unit_test(test_concurrent_counts),
	};

	return cmocka_run_group_tests_name("telemetry", tests, NULL, NULL);
}
