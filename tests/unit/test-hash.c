/* SPDX-License-Identifier: MIT */
/* FNV-1a 64 against the published test vectors, and the incremental form against the one-shot
 * form at every split point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/hash.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

struct vector {
	const char *input;
	size_t len;
	uint64_t hash;
};

/* From the FNV reference test suite (fnv_test_str / fnv1a_64_vector). */
static const struct vector vectors[] = {
    {.input = "", .len = 0, .hash = 0xcbf29ce484222325ULL},
    {.input = "a", .len = 1, .hash = 0xaf63dc4c8601ec8cULL},
    {.input = "b", .len = 1, .hash = 0xaf63df4c8601f1a5ULL},
    {.input = "foo", .len = 3, .hash = 0xdcb27518fed9d577ULL},
    {.input = "foobar", .len = 6, .hash = 0x85944171f73967e8ULL},
    /* a NUL byte is data like any other */
    {.input = "a\0", .len = 2, .hash = 0x089be207b544f1e4ULL},
};

static void test_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(vectors); i++) {
		uint64_t got = sm_hash_bytes(vectors[i].input, vectors[i].len);

		if (got != vectors[i].hash)
			fail_msg("case %zu (len %zu): got %016llx, want %016llx", i, vectors[i].len,
			         (unsigned long long)got, (unsigned long long)vectors[i].hash);
	}
}

static void test_empty(void **state)
{
	(void)state;
	assert_true(sm_hash_bytes(NULL, 0) == SM_HASH_INIT);
	assert_true(sm_hash_update(12345, NULL, 0) == 12345);
	assert_true(sm_hash_update(SM_HASH_INIT, "foobar", 6) == 0x85944171f73967e8ULL);
}

static void test_incremental(void **state)
{
	static const char text[] = "apis/external.metrics.k8s.io/v1beta1\nqueue:jobs\0tail";
	const size_t len = sizeof(text) - 1;
	const uint64_t whole = sm_hash_bytes(text, len);

	(void)state;
	for (size_t cut = 0; cut <= len; cut++) {
		uint64_t h = sm_hash_update(sm_hash_bytes(text, cut), text + cut, len - cut);

		if (h != whole)
			fail_msg("split at %zu: got %016llx, want %016llx", cut,
			         (unsigned long long)h, (unsigned long long)whole);
	}
	/* three pieces, from the initial value */
	assert_true(sm_hash_update(sm_hash_update(sm_hash_update(SM_HASH_INIT, "fo", 2), "ob", 2),
	                           "ar", 2) == 0x85944171f73967e8ULL);
}

static void test_distinct(void **state)
{
	(void)state;
	/* order matters, and so does length */
	assert_true(sm_hash_bytes("ab", 2) != sm_hash_bytes("ba", 2));
	assert_true(sm_hash_bytes("a", 1) != sm_hash_bytes("a\0", 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_incremental),
	    cmocka_unit_test(test_distinct),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
