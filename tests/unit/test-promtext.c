/* SPDX-License-Identifier: MIT */
/* The Prometheus text parser: a table of valid and invalid expositions, escaping, special
 * values, timestamps, exemplars, family types and error lines. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/promtext.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

struct render {
	char buf[4096];
	size_t len;
};

static void put(struct render *r, const char *fmt, ...) SM_PRINTF(2, 3);

static void put(struct render *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(r->buf) - r->len);
	r->len += (size_t)n;
}

/* Renders each sample as: name{k="v",...} value[@ts]:type| with value escapes made visible
 * (\n as \n, '"' as \"), so that expectations read like the input. */
static int render_sample(const struct sm_prom_sample *s, void *userdata)
{
	struct render *r = userdata;

	put(r, "%s", s->name);
	if (s->n_labels) {
		put(r, "{");
		for (size_t i = 0; i < s->n_labels; i++) {
			put(r, "%s%s=\"", i ? "," : "", s->labels[i].name);
			for (const char *c = s->labels[i].value; *c; c++) {
				if (*c == '\n')
					put(r, "\\n");
				else if (*c == '"' || *c == '\\')
					put(r, "\\%c", *c);
				else
					put(r, "%c", *c);
			}
			put(r, "\"");
		}
		put(r, "}");
	}
	if (isnan(s->value))
		put(r, " NaN");
	else if (isinf(s->value))
		put(r, " %cInf", s->value > 0 ? '+' : '-');
	else
		put(r, " %.15g", s->value);
	if (s->has_timestamp)
		put(r, "@%lld", (long long)s->timestamp_ms);
	put(r, ":%s|", sm_prom_type_to_string(s->type));
	return 0;
}

struct parse_case {
	const char *name;
	const char *input;
	int ret;             /* sample count, or negative errno */
	const char *samples; /* rendered, for successes */
	unsigned err_line;   /* for errors */
	const char *err_has; /* a substring of the message */
};

static const struct parse_case cases[] = {
    {.name = "empty", .input = "", .ret = 0, .samples = ""},
    {.name = "blank lines", .input = "\n\n  \t\n", .ret = 0, .samples = ""},
    {.name = "plain sample", .input = "up 1\n", .ret = 1, .samples = "up 1:untyped|"},
    {.name = "no final newline", .input = "up 1", .ret = 1, .samples = "up 1:untyped|"},
    {.name = "crlf", .input = "up 1\r\nb 2\r\n", .ret = 2, .samples = "up 1:untyped|b 2:untyped|"},
    {.name = "leading blanks", .input = "   up 1\n", .ret = 1, .samples = "up 1:untyped|"},
    {.name = "colon name",
     .input = "job:rate5m 0.5\n",
     .ret = 1,
     .samples = "job:rate5m 0.5:untyped|"},
    {.name = "labels",
     .input = "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n",
     .ret = 1,
     .samples = "http_requests_total{method=\"post\",code=\"200\"} 1027@1395066363000:untyped|"},
    {.name = "trailing comma",
     .input = "a{x=\"1\",} 2\n",
     .ret = 1,
     .samples = "a{x=\"1\"} 2:untyped|"},
    {.name = "empty label set", .input = "a{} 2\n", .ret = 1, .samples = "a 2:untyped|"},
    {.name = "blanks in label set",
     .input = "a { x = \"1\" , y=\"2\" } 3\n",
     .ret = 1,
     .samples = "a{x=\"1\",y=\"2\"} 3:untyped|"},
    {.name = "no blank before value after brace",
     .input = "a{x=\"1\"}3\n",
     .ret = 1,
     .samples = "a{x=\"1\"} 3:untyped|"},
    {.name = "escapes",
     .input = "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\","
              "error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n",
     .ret = 1,
     .samples = "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot "
                "find file:\\n\\\"FILE.TXT\\\"\"} 1458255915:untyped|"},
    {.name = "utf-8 and braces in value",
     .input = "a{x=\"h\xc3\xa9{},=\"} 1\n",
     .ret = 1,
     .samples = "a{x=\"h\xc3\xa9{},=\"} 1:untyped|"},
    {.name = "special values",
     .input = "a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\n",
     .ret = 5,
     .samples = "a NaN:untyped|b +Inf:untyped|c -Inf:untyped|d +Inf:untyped|e NaN:untyped|"},
    {.name = "exponent and sign",
     .input = "a -1.5e-3\nb +12\nc .5\n",
     .ret = 3,
     .samples = "a -0.0015:untyped|b 12:untyped|c 0.5:untyped|"},
    {.name = "negative timestamp", .input = "a 1 -5\n", .ret = 1, .samples = "a 1@-5:untyped|"},
    {.name = "trailing blanks", .input = "a 1 5  \t\n", .ret = 1, .samples = "a 1@5:untyped|"},
    {.name = "exemplar ignored",
     .input = "foo_bucket{le=\"0.5\"} 4 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n",
     .ret = 1,
     .samples = "foo_bucket{le=\"0.5\"} 4:untyped|"},
    {.name = "exemplar after timestamp",
     .input = "a 1 10 # {x=\"y\"} 1 2\n",
     .ret = 1,
     .samples = "a 1@10:untyped|"},
    {.name = "comments skipped",
     .input = "# just a comment\n#\n# HELPER x\na 1\n",
     .ret = 1,
     .samples = "a 1:untyped|"},
    {.name = "help with escapes",
     .input = "# HELP a Some \\\\ text\\n here\na 1\n",
     .ret = 1,
     .samples = "a 1:untyped|"},
    {.name = "help without text", .input = "# HELP a\na 1\n", .ret = 1, .samples = "a 1:untyped|"},
    {.name = "types",
     .input = "# TYPE c counter\nc 1\n# TYPE g gauge\ng 2\n"
              "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
              "h_sum 0.3\nh_count 2\n"
              "# TYPE s summary\ns{quantile=\"0.5\"} 0.1\ns_sum 1\ns_count 3\nother 4\n",
     .ret = 10,
     .samples = "c 1:counter|g 2:gauge|h_bucket{le=\"0.1\"} 1:histogram|"
                "h_bucket{le=\"+Inf\"} 2:histogram|h_sum 0.3:histogram|h_count 2:histogram|"
                "s{quantile=\"0.5\"} 0.1:summary|s_sum 1:summary|s_count 3:summary|"
                "other 4:untyped|"},
    {.name = "python client exposition",
     .input = "# HELP http_requests_total Requests\n"
              "# TYPE http_requests_total counter\n"
              "http_requests_total{code=\"200\",method=\"get\"} 12.0\n"
              "# HELP http_requests_created Requests\n"
              "# TYPE http_requests_created gauge\n"
              "http_requests_created{code=\"200\",method=\"get\"} 1.7e+09\n",
     .ret = 2,
     .samples = "http_requests_total{code=\"200\",method=\"get\"} 12:counter|"
                "http_requests_created{code=\"200\",method=\"get\"} 1700000000:gauge|"},

    /* Invalid lines: each names its line. */
    {.name = "bad name",
     .input = "up 1\n0up 1\n",
     .ret = -EINVAL,
     .err_line = 2,
     .err_has = "invalid metric name"},
    {.name = "missing value",
     .input = "up\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "missing value"},
    {.name = "missing value after labels",
     .input = "up{a=\"b\"}\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "missing value"},
    {.name = "bad value",
     .input = "\n\nup one\n",
     .ret = -EINVAL,
     .err_line = 3,
     .err_has = "invalid value 'one'"},
    {.name = "hex value",
     .input = "up 0x1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "invalid value"},
    {.name = "bad timestamp",
     .input = "up 1 1.5\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "invalid timestamp"},
    {.name = "text after timestamp",
     .input = "up 1 2 3\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "after the timestamp"},
    {.name = "unterminated labels",
     .input = "up{a=\"b\" 1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "expected ',' or '}'"},
    {.name = "unterminated value",
     .input = "up{a=\"b} 1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "unterminated label value"},
    {.name = "unquoted value",
     .input = "up{a=b} 1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "expected '\"'"},
    {.name = "missing equals",
     .input = "up{a\"b\"} 1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "expected '='"},
    {.name = "bad label name",
     .input = "up{1a=\"b\"} 1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "invalid label name"},
    {.name = "colon in label name",
     .input = "up{a:b=\"b\"} 1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "expected '='"},
    {.name = "bad escape",
     .input = "up{a=\"\\t\"} 1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "invalid escape"},
    {.name = "duplicate label",
     .input = "up{a=\"1\",a=\"2\"} 1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "duplicate label 'a'"},
    {.name = "double comma",
     .input = "up{a=\"1\",,b=\"2\"} 1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "invalid label name"},
    {.name = "bad type",
     .input = "# TYPE up countr\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "unknown type 'countr'"},
    {.name = "type without type",
     .input = "# TYPE up\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "expected a type"},
    {.name = "type with extra",
     .input = "# TYPE up gauge x\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "unexpected text"},
    {.name = "help bad name",
     .input = "# HELP 9x text\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "invalid metric name"},
    {.name = "help bad escape",
     .input = "# HELP x bad \\q\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "invalid escape"},
    {.name = "bucket without le",
     .input = "# TYPE h histogram\nh_bucket 1\n",
     .ret = -EINVAL,
     .err_line = 2,
     .err_has = "'le'"},
    {.name = "bucket with bad le",
     .input = "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
     .ret = -EINVAL,
     .err_line = 2,
     .err_has = "'le'"},
    {.name = "summary without quantile",
     .input = "# TYPE s summary\ns 1\n",
     .ret = -EINVAL,
     .err_line = 2,
     .err_has = "'quantile'"},
    {.name = "name glued to value",
     .input = "up\"x\" 1\n",
     .ret = -EINVAL,
     .err_line = 1,
     .err_has = "after the metric name"},
    {.name = "nul byte",
     .input = "up 1\nup\0 1\n",
     .ret = -EINVAL,
     .err_line = 2,
     .err_has = "NUL"},
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		const struct parse_case *c = &cases[i];
		struct render r = {.len = 0};
		struct sm_error err = {.line = 0};
		size_t len = strlen(c->input);
		int ret;

		if (strcmp(c->name, "nul byte") == 0)
			len = 11;
		ret = sm_promtext_parse(c->input, len, render_sample, &r, &err);
		if (ret != c->ret) {
			print_error("case '%s': returned %d, expected %d (%s)\n", c->name, ret,
			            c->ret, err.message);
			fail();
		}
		if (ret >= 0) {
			if (strcmp(r.buf, c->samples) != 0) {
				print_error("case '%s':\n got      %s\n expected %s\n", c->name,
				            r.buf, c->samples);
				fail();
			}
			continue;
		}
		if (err.line != c->err_line || !strstr(err.message, c->err_has)) {
			print_error("case '%s': error line %u '%s', expected line %u containing "
			            "'%s'\n",
			            c->name, err.line, err.message, c->err_line, c->err_has);
			fail();
		}
		{
			char prefix[32];

			(void)snprintf(prefix, sizeof(prefix), "line %u: ", c->err_line);
			if (strncmp(err.message, prefix, strlen(prefix)) != 0) {
				print_error("case '%s': message '%s' does not start with '%s'\n",
				            c->name, err.message, prefix);
				fail();
			}
		}
	}
}

static int stop_at_second(const struct sm_prom_sample *s, void *userdata)
{
	int *seen = userdata;

	(void)s;
	if (++*seen == 2)
		return -ECANCELED;
	return 0;
}

static void test_callback_stops(void **state)
{
	int seen = 0;

	(void)state;
	assert_int_equal(sm_promtext_parse("a 1\nb 2\nc 3\n", 12, stop_at_second, &seen, NULL),
	                 -ECANCELED);
	assert_int_equal(seen, 2);
}

static void test_not_nul_terminated(void **state)
{
	struct render r = {.len = 0};
	const char text[] = {'a', ' ', '1', '\n', 'b', ' ', '2'};

	(void)state;
	assert_int_equal(sm_promtext_parse(text, sizeof(text), render_sample, &r, NULL), 2);
	assert_string_equal(r.buf, "a 1:untyped|b 2:untyped|");
}

static void test_sample_lines(void **state)
{
	struct render r = {.len = 0};
	struct sm_error err = {.line = 0};

	(void)state;
	/* Too many labels. */
	{
		char line[4096];
		size_t n = 0;

		n += (size_t)snprintf(line + n, sizeof(line) - n, "x{");
		for (int i = 0; i <= SM_PROMTEXT_MAX_LABELS; i++)
			n += (size_t)snprintf(line + n, sizeof(line) - n, "l%d=\"v\",", i);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "} 1\n");
		assert_int_equal(sm_promtext_parse(line, n, render_sample, &r, &err), -EINVAL);
		assert_non_null(strstr(err.message, "more than 64 labels"));
	}
}

static void test_names_and_types(void **state)
{
	(void)state;
	assert_true(sm_promtext_metric_name_is_valid("a:b_c9"));
	assert_false(sm_promtext_metric_name_is_valid("9a"));
	assert_false(sm_promtext_metric_name_is_valid(""));
	assert_true(sm_promtext_label_name_is_valid("_a9"));
	assert_false(sm_promtext_label_name_is_valid("a:b"));
	assert_int_equal(sm_prom_type_from_string("histogram"), SM_PROM_HISTOGRAM);
	assert_int_equal(sm_prom_type_from_string("Histogram"), SM_PROM_TYPE_INVALID);
	assert_string_equal(sm_prom_type_to_string(SM_PROM_COUNTER), "counter");
	assert_null(sm_prom_type_to_string(SM_PROM_TYPE_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),        cmocka_unit_test(test_callback_stops),
	    cmocka_unit_test(test_not_nul_terminated), cmocka_unit_test(test_sample_lines),
	    cmocka_unit_test(test_names_and_types),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
