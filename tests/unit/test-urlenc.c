/* SPDX-License-Identifier: MIT */
/* Percent-decoding and -escaping as Go's net/url does them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/urlenc.h"

static void test_hex_value(void **state)
{
	(void)state;
	assert_int_equal(sm_hex_value('0'), 0);
	assert_int_equal(sm_hex_value('9'), 9);
	assert_int_equal(sm_hex_value('a'), 10);
	assert_int_equal(sm_hex_value('F'), 15);
	assert_int_equal(sm_hex_value('g'), -1);
	assert_int_equal(sm_hex_value('\0'), -1);
}

static void test_decode(void **state)
{
	static const struct {
		const char *in;
		bool plus;
		int r;
		const char *out;
	} cases[] = {
	    {"queue%3Dnope", false, 0, "queue=nope"},
	    {"a+b%20c", false, 0, "a+b c"},
	    {"a+b%20c", true, 0, "a b c"},
	    {"%2a%2A", false, 0, "**"},
	    {"", false, 0, ""},
	    {"tail%", false, -EINVAL, NULL},
	    {"tail%4", false, -EINVAL, NULL},
	    {"%zz", false, -EINVAL, NULL},
	    {"nul%00", false, -EINVAL, NULL}, /* would cut a C string short */
	    {"%e2%9c%93", false, 0, "\xe2\x9c\x93"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[32] = "untouched";

		assert_int_equal(
		    sm_url_decode(cases[i].in, strlen(cases[i].in), out, cases[i].plus),
		    cases[i].r);
		assert_string_equal(out, cases[i].out ? cases[i].out : "untouched");
	}
}

static void test_decode_in_place_and_by_length(void **state)
{
	char s[] = "a%2Fb";
	char t[] = "%41%42junk";
	char out[8];

	(void)state;
	assert_int_equal(sm_url_decode(s, strlen(s), s, false), 0);
	assert_string_equal(s, "a/b");
	/* Only len bytes count: an escape cut by len is malformed. */
	assert_int_equal(sm_url_decode(t, 6, out, false), 0);
	assert_string_equal(out, "AB");
	assert_int_equal(sm_url_decode(t, 5, out, false), -EINVAL);
}

static void test_escape(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(sm_url_escape("app in (a,b) & x=y", SM_URL_QUERY, out, sizeof(out)), 0);
	assert_string_equal(out, "app+in+%28a%2Cb%29+%26+x%3Dy");
	assert_int_equal(sm_url_escape("*", SM_URL_PATH, out, sizeof(out)), 0);
	assert_string_equal(out, "%2A");
	assert_int_equal(sm_url_escape("a b/c:d@e", SM_URL_PATH, out, sizeof(out)), 0);
	assert_string_equal(out, "a%20b%2Fc:d@e");
	assert_int_equal(sm_url_escape("abc", SM_URL_QUERY, out, 4), 0);
	assert_string_equal(out, "abc");
	assert_int_equal(sm_url_escape("abcd", SM_URL_QUERY, out, 4), -ENAMETOOLONG);
	assert_int_equal(sm_url_escape("a/", SM_URL_QUERY, out, 5), 0);
	assert_string_equal(out, "a%2F");
	assert_int_equal(sm_url_escape("a/", SM_URL_QUERY, out, 4), -ENAMETOOLONG);
	assert_int_equal(sm_url_escape("", SM_URL_QUERY, out, 0), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hex_value),
	    cmocka_unit_test(test_decode),
	    cmocka_unit_test(test_decode_in_place_and_by_length),
	    cmocka_unit_test(test_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
