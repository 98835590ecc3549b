/* SPDX-License-Identifier: MIT */
/* One-placeholder name templates: expanding, and finding the value back from a name. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/template.h"

static void test_expand(void **state)
{
	size_t len = 0;
	char *s;

	(void)state;
	s = sm_template_expand("worker-{queue}-{queue}", "{queue}", "mail", &len);
	assert_string_equal(s, "worker-mail-mail");
	assert_int_equal(len, strlen("worker-mail-mail"));
	free(s);
	s = sm_template_expand("fixed", "{queue}", "mail", NULL);
	assert_string_equal(s, "fixed");
	free(s);
	s = sm_template_expand("bull:{name}:wait", "{name}", "", &len);
	assert_string_equal(s, "bull::wait");
	assert_int_equal(len, 10);
	free(s);
}

static void test_fit(void **state)
{
	static const struct {
		const char *tmpl, *name;
		int r;
		const char *value;
	} cases[] = {
	    {"worker-{queue}", "worker-mail", 1, "mail"},
	    {"{queue}-{queue}", "ab-ab", 1, "ab"},
	    {"{queue}-{queue}", "ab-ac", -1, NULL},  /* occurrences must agree */
	    {"worker-{queue}", "worker-", -1, NULL}, /* an empty value is no value */
	    {"worker-{queue}", "runner-mail", -1, NULL},
	    {"worker-{queue}-x", "worker-mail-y", -1, NULL},
	    {"worker", "worker", 0, NULL},
	    {"worker", "other", -1, NULL},
	    {"w-{queue}", "w-0123456789", -1, NULL}, /* longer than max_len (8) */
	    {"w-{queue}", "w-01234567", 1, "01234567"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *v = NULL;

		assert_int_equal(sm_template_fit(cases[i].tmpl, "{queue}", cases[i].name, 8, &v),
		                 cases[i].r);
		if (cases[i].value) {
			assert_string_equal(v, cases[i].value);
			free(v);
		} else {
			assert_null(v);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_expand),
	    cmocka_unit_test(test_fit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
