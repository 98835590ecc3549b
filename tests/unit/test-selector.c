/* SPDX-License-Identifier: MIT */
/* Label selectors: labels.Parse grammar, validation, error texts, matching, String(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/selector.h"
#include "scalemetrics/series.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* Sample label sets the cases match against; a case's `match` has one '1'/'0' per set. */
static const struct sm_label set0[] = {{.name = "unrelated", .value = "x"}};
static const struct sm_label set1[] = {
    {.name = "app", .value = "web"},
    {.name = "tier", .value = "frontend"},
    {.name = "version", .value = "3"},
};
static const struct sm_label set2[] = {
    {.name = "version", .value = "12"},
    {.name = "app", .value = "db"},
    {.name = "tier", .value = "backend"},
    {.name = "env", .value = "prod"},
};
static const struct sm_label set3[] = {
    {.name = "a", .value = "b"},
    {.name = "in", .value = "notin"},
    {.name = "x", .value = "in"},
};
static const struct sm_label set4[] = {
    {.name = "A_b.c-d", .value = "V.1_2"},
    {.name = "example.com/app", .value = "web"},
    {.name = "scaledobject.keda.sh/name", .value = "my-so"},
};
static const struct sm_label set5[] = {
    {.name = "k", .value = ""},
    {.name = "version", .value = "abc"},
};

static const struct {
	const struct sm_label *labels;
	size_t n;
} sets[] = {
    {set0, 0}, /* no labels at all */
    {set1, N_ELEMENTS(set1)},
    {set2, N_ELEMENTS(set2)},
    {set3, N_ELEMENTS(set3)},
    {set4, N_ELEMENTS(set4)},
    {set5, N_ELEMENTS(set5)},
};

struct selector_case {
	const char *text;
	const char *canonical; /* NULL: a parse error is expected */
	const char *match;     /* valid: per sample set; error: a substring of the message */
};

static const struct selector_case cases[] = {
    /* docs/api.md "Selector edge cases", every row */
    {"", "", "111111"},
    {"   \t\n\r  ", "", "111111"},
    {"a=b,", NULL, "found '', expected: identifier after ','"},
    {",a", NULL, "found ',', expected: !, identifier, or 'end of string'"},
    {"a=b c=d", NULL, "found 'c', expected: ',' or 'end of string'"},
    {"a=b=c", NULL, "found '=', expected: ',' or 'end of string'"},
    {"!a=b", NULL, "found '=', expected: ',' or 'end of string'"},
    {"a!b", NULL, "found '!', expected: in, notin, =, ==, !=, gt, lt"},
    {"a in (b", NULL, "found '', expected: ',' or ')'"},
    {"a in b", NULL, "found 'b', expected: '('"},
    {"a=(b)", NULL, "found '(', expected: identifier"},
    {"A_b.c-d=V.1_2", "A_b.c-d=V.1_2", "000010"},
    {"example.com/app=web", "example.com/app=web", "000010"},
    {"Example.com/app=web", NULL, "invalid label key \"Example.com/app\": prefix part"},
    {"a/b/c=d", NULL, "invalid label key \"a/b/c\": a qualified name must consist"},
    {"-a=b", NULL, "invalid label key \"-a\": name part must consist of alphanumeric"},
    {"a-=b", NULL, "invalid label key \"a-\": name part must consist"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=b", NULL,
     "name part must be no more than 63 characters"},
    {"a=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL,
     "must be no more than 63 characters"},
    {"a>1.5", NULL, "invalid value \"1.5\": for 'gt', 'lt' operators, the value must be an"},
    {"scaledobject.keda.sh/name=my-so", "scaledobject.keda.sh/name=my-so", "000010"},

    /* operators and matching */
    {"app=web", "app=web", "010000"},
    {"app==web", "app==web", "010000"},
    {"app!=web", "app!=web", "101111"},
    {"app in (web,db)", "app in (db,web)", "011000"},
    {"app notin (web,db)", "app notin (db,web)", "100111"},
    {"app", "app", "011000"},
    {"!app", "!app", "100111"},
    {" !app ", "!app", "100111"},
    {"version>5", "version>5", "001000"},
    {"version<5", "version<5", "010000"},
    {"version>0", "version>0", "011000"},
    {"version<13,version>2", "version<13,version>2", "011000"},
    {"a>007", "a>007", "000000"},
    {"app=web,tier", "app=web,tier", "010000"},
    {"a=b,a!=c", "a=b,a!=c", "000100"},
    {"a=c,a=b", "a=c,a=b", "000000"}, /* repeated keys kept, order stable */
    {"b=1,a=2,c,!d", "a=2,b=1,c,!d", "000000"},
    {"tier,app=web", "app=web,tier", "010000"},

    /* whitespace anywhere */
    {"  app  =  web  ,  tier in ( frontend , backend )  ", "app=web,tier in (backend,frontend)",
     "010000"},
    {"app\t=\nweb\r\n,\ttier", "app=web,tier", "010000"},
    {"app=web\n", "app=web", "010000"},
    {"app\tin\t(web)", "app in (web)", "010000"},

    /* keywords as identifiers, no space before '(' */
    {"x in(a,b)", "x in (a,b)", "000000"},
    {"x in (in)", "x in (in)", "000100"},
    {"in=notin", "in=notin", "000100"},
    {"in in (notin)", "in in (notin)", "000100"},
    {"notin notin (in)", "notin notin (in)", "111111"},
    {"!in", "!in", "111011"},
    {"x notin(in,notin)", "x notin (in,notin)", "111011"},
    {"in", "in", "000100"},

    /* empty values and sets, duplicates */
    {"k in ()", "k in ()", "000001"},
    {"k in (,)", "k in ()", "000001"},
    {"k in (a,,b)", "k in (,a,b)", "000001"},
    {"k in (a,)", "k in (,a)", "000001"},
    {"k in (,a)", "k in (,a)", "000001"},
    {"k in (a,,)", NULL, "found ')', expected: ',', or identifier"},
    {"k=", "k=", "000001"},
    {"k==", "k==", "000001"},
    {"k!=", "k!=", "111110"},
    {"k=,app", "app,k=", "000000"},
    {"k notin ()", "k notin ()", "111110"},
    {"a in (b,b,a)", "a in (a,b)", "000100"},

    /* validation */
    {"a.b-c.d/e=f", "a.b-c.d/e=f", "000000"},
    {"/a=b", NULL, "prefix part must be non-empty"},
    {"a/=b", NULL, "name part must be non-empty"},
    {"a_b/c=d", NULL, "prefix part a lowercase RFC 1123 subdomain"},
    {"-a.com/b=c", NULL, "prefix part"},
    {"a..b/c=d", NULL, "prefix part"},
    {"a.-b/c=d", NULL, "prefix part"},
    {"a=-b", NULL, "invalid label value \"-b\": a valid label must be an empty string or"},
    {"a=b-", NULL, "invalid label value \"b-\""},
    {"a in (b,c_)", NULL, "invalid label value \"c_\""},
    {"a=b_c.d-E", "a=b_c.d-E", "000000"},
    {"\xc3\xa4=b", NULL, "invalid label key"},
    {"a=b\"", NULL, "invalid label value"},
    {"a>", NULL, "the value must be an integer"},
    {"a<b", NULL, "the value must be an integer"},
    {"a>99999999999999999999", NULL, "the value must be an integer"},
    {"version>-1", NULL, "invalid label value \"-1\""},

    /* syntax errors */
    {"a>=5", NULL, "found '=', expected: identifier"},
    {"a<>5", NULL, "found '>', expected: identifier"},
    {"a in (b c)", NULL, "found 'c', expected: ',' or ')'"},
    {"a in", NULL, "found '', expected: '('"},
    {"a in (", NULL, "found '', expected: ',', ')' or identifier"},
    {"a in (=)", NULL, "found '=', expected: ',', ')' or identifier"},
    {"!", NULL, "found '', expected: identifier"},
    {"!!a", NULL, "found '!', expected: identifier"},
    {"a,,b", NULL, "found ',', expected: identifier after ','"},
    {"=a", NULL, "found '=', expected: !, identifier, or 'end of string'"},
    {"(a)", NULL, "found '(', expected: !, identifier, or 'end of string'"},
    {"a b", NULL, "found 'b', expected: in, notin, =, ==, !=, gt, lt"},
    {"a===b", NULL, "found '=', expected: identifier"},
    {"a!==b", NULL, "found '=', expected: identifier"},
    {"a=b)", NULL, "found ')', expected: ',' or 'end of string'"},
    {"a=b,!", NULL, "found '', expected: identifier"},
    {"a in (b))", NULL, "found ')', expected: ',' or 'end of string'"},
};

static void test_table(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		const struct selector_case *c = &cases[i];
		struct sm_selector *sentinel = (struct sm_selector *)(uintptr_t)0x5e1ec7;
		struct sm_selector *sel = sentinel;
		struct sm_error err = {0};
		char buf[512];
		int r = sm_selector_parse(c->text, &sel, &err);

		if (!c->canonical) {
			if (r != -EINVAL || sel != sentinel || !strstr(err.message, c->match) ||
			    !strstr(err.message, "(at position ")) {
				print_error("case %zu '%s': want error containing \"%s\", got %d, "
				            "ret %s, message \"%s\"\n",
				            i, c->text, c->match, r,
				            sel == sentinel ? "untouched" : "CHANGED", err.message);
				failures++;
			}
			continue;
		}
		if (r != 0 || sel == sentinel) {
			print_error("case %zu '%s': want success, got %d \"%s\"\n", i, c->text, r,
			            err.message);
			failures++;
			continue;
		}
		if (sm_selector_format(sel, buf, sizeof(buf)) != strlen(c->canonical) ||
		    strcmp(buf, c->canonical) != 0) {
			print_error("case %zu '%s': canonical '%s', want '%s'\n", i, c->text, buf,
			            c->canonical);
			failures++;
		}
		for (size_t j = 0; j < N_ELEMENTS(sets); j++) {
			bool want = c->match[j] == '1';

			if (sm_selector_matches(sel, sets[j].labels, sets[j].n) != want) {
				print_error("case %zu '%s': label set %zu should %smatch\n", i,
				            c->text, j, want ? "" : "not ");
				failures++;
			}
		}
		sm_selector_free(sel);

		/* The canonical form parses to itself. */
		sel = sentinel;
		if (sm_selector_parse(c->canonical, &sel, &err) != 0) {
			print_error("case %zu: canonical '%s' does not parse: %s\n", i,
			            c->canonical, err.message);
			failures++;
			continue;
		}
		(void)sm_selector_format(sel, buf, sizeof(buf));
		if (strcmp(buf, c->canonical) != 0) {
			print_error("case %zu: canonical '%s' re-formats as '%s'\n", i,
			            c->canonical, buf);
			failures++;
		}
		sm_selector_free(sel);
	}
	assert_int_equal(failures, 0);
}

static void test_structure(void **state)
{
	struct sm_selector *sel = NULL;
	const struct sm_selector_requirement *r;
	struct sm_error err = {0};

	(void)state;
	assert_int_equal(sm_selector_parse("tier notin (b,a,b), app=web, !gone, x", &sel, &err), 0);
	assert_int_equal(sm_selector_count(sel), 4);
	assert_false(sm_selector_is_empty(sel));

	r = sm_selector_get(sel, 0);
	assert_string_equal(r->key, "app");
	assert_int_equal(r->op, SM_SELECTOR_OP_EQUALS);
	assert_int_equal(r->n_values, 1);
	assert_string_equal(r->values[0], "web");

	r = sm_selector_get(sel, 1);
	assert_string_equal(r->key, "gone");
	assert_int_equal(r->op, SM_SELECTOR_OP_DOES_NOT_EXIST);
	assert_int_equal(r->n_values, 0);

	r = sm_selector_get(sel, 2);
	assert_string_equal(r->key, "tier");
	assert_int_equal(r->op, SM_SELECTOR_OP_NOT_IN);
	assert_int_equal(r->n_values, 2);
	assert_string_equal(r->values[0], "a");
	assert_string_equal(r->values[1], "b");

	r = sm_selector_get(sel, 3);
	assert_string_equal(r->key, "x");
	assert_int_equal(r->op, SM_SELECTOR_OP_EXISTS);

	assert_null(sm_selector_get(sel, 4));
	sm_selector_free(sel);

	/* NULL text and the empty selector */
	sel = NULL;
	assert_int_equal(sm_selector_parse(NULL, &sel, &err), 0);
	assert_non_null(sel);
	assert_true(sm_selector_is_empty(sel));
	assert_int_equal(sm_selector_count(sel), 0);
	assert_true(sm_selector_matches(sel, set1, N_ELEMENTS(set1)));
	sm_selector_free(sel);

	assert_true(sm_selector_is_empty(NULL));
	assert_int_equal(sm_selector_count(NULL), 0);
	assert_null(sm_selector_get(NULL, 0));
	assert_true(sm_selector_matches(NULL, NULL, 0));
	sm_selector_free(NULL);

	/* a NULL reterr is allowed */
	sel = NULL;
	assert_int_equal(sm_selector_parse("a=", &sel, NULL), 0);
	sm_selector_free(sel);
	assert_int_equal(sm_selector_parse("a==,", &sel, NULL), -EINVAL);
}

static void test_error_position(void **state)
{
	struct sm_selector *sel = NULL;
	struct sm_error err = {0};

	(void)state;
	assert_int_equal(sm_selector_parse("a=b c=d", &sel, &err), -EINVAL);
	assert_string_equal(err.message,
	                    "found 'c', expected: ',' or 'end of string' (at position 5)");
	assert_int_equal(sm_selector_parse("a=b,", &sel, &err), -EINVAL);
	assert_string_equal(err.message,
	                    "found '', expected: identifier after ',' (at position 5)");
	assert_int_equal(sm_selector_parse("x=1, -a=b", &sel, &err), -EINVAL);
	assert_string_equal(err.message,
	                    "invalid label key \"-a\": name part must consist of alphanumeric "
	                    "characters, '-', '_' or '.', and must start and end with an "
	                    "alphanumeric character (at position 6)");
	assert_null(sel);
}

static void test_format_truncation(void **state)
{
	struct sm_selector *sel = NULL;
	struct sm_error err = {0};
	char buf[8];

	(void)state;
	assert_int_equal(sm_selector_parse("zeta in (b,a),alpha=1", &sel, &err), 0);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(sm_selector_format(sel, buf, sizeof(buf)),
	                 strlen("alpha=1,zeta in (a,b)"));
	assert_string_equal(buf, "alpha=1");
	assert_int_equal(sm_selector_format(sel, NULL, 0), strlen("alpha=1,zeta in (a,b)"));
	sm_selector_free(sel);
	assert_int_equal(sm_selector_format(NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
}

/* Length limits and prefix rules, with generated strings. */
static void test_limits(void **state)
{
	char name63[64], name64[65], prefix253[254], prefix254[255], text[700];
	struct sm_selector *sel = NULL;
	struct sm_error err = {0};

	(void)state;
	memset(name63, 'n', 63);
	name63[63] = '\0';
	memset(name64, 'n', 64);
	name64[64] = '\0';
	/* 4 labels of 63 chars + 3 dots = 255: use 62-char labels: 4*62 + 3 = 251, +".ab" */
	memset(prefix253, 'p', 253);
	for (size_t i = 62; i < 253; i += 63)
		prefix253[i] = '.';
	prefix253[253] = '\0';
	memcpy(prefix254, prefix253, 253);
	prefix254[252] = 'p';
	prefix254[253] = 'q';
	prefix254[254] = '\0';

	assert_true(sm_label_key_is_valid(name63));
	assert_false(sm_label_key_is_valid(name64));
	assert_true(sm_label_value_is_valid(name63));
	assert_false(sm_label_value_is_valid(name64));

	(void)snprintf(text, sizeof(text), "%s=%s", name63, name63);
	assert_int_equal(sm_selector_parse(text, &sel, &err), 0);
	sm_selector_free(sel);
	sel = NULL;
	(void)snprintf(text, sizeof(text), "%s/%s=v", prefix253, name63);
	assert_int_equal(sm_selector_parse(text, &sel, &err), 0);
	sm_selector_free(sel);
	sel = NULL;
	(void)snprintf(text, sizeof(text), "%s/%s=v", prefix254, name63);
	assert_int_equal(sm_selector_parse(text, &sel, &err), -EINVAL);
	assert_non_null(strstr(err.message, "prefix part must be no more than 253 characters"));
	(void)snprintf(text, sizeof(text), "a in (x,%s)", name64);
	assert_int_equal(sm_selector_parse(text, &sel, &err), -EINVAL);
	assert_non_null(strstr(err.message, "must be no more than 63 characters"));
	assert_null(sel);
}

static void test_validity_helpers(void **state)
{
	static const struct {
		const char *s;
		bool key, value;
	} rows[] = {
	    {"a", true, true},
	    {"", false, true},
	    {"A_b.c-d", true, true},
	    {"-a", false, false},
	    {"a-", false, false},
	    {"a_", false, false},
	    {"1", true, true},
	    {"a.b", true, true},
	    {"example.com/app", true, false},
	    {"Example.com/app", false, false},
	    {"a/b/c", false, false},
	    {"/a", false, false},
	    {"a/", false, false},
	    {"a b", false, false},
	    {"a=b", false, false},
	    {"k8s.io/x_y", true, false},
	    {"my-prefix.io/My.Name", true, false},
	    {"-x.io/a", false, false},
	    {"x-.io/a", false, false},
	    {"x..io/a", false, false},
	    {"x_y.io/a", false, false},
	};
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(rows); i++) {
		if (sm_label_key_is_valid(rows[i].s) != rows[i].key ||
		    sm_label_value_is_valid(rows[i].s) != rows[i].value) {
			print_error("validity row %zu '%s': key %d value %d\n", i, rows[i].s,
			            sm_label_key_is_valid(rows[i].s),
			            sm_label_value_is_valid(rows[i].s));
			failures++;
		}
	}
	assert_false(sm_label_key_is_valid(NULL));
	assert_false(sm_label_value_is_valid(NULL));
	assert_int_equal(failures, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),          cmocka_unit_test(test_structure),
	    cmocka_unit_test(test_error_position), cmocka_unit_test(test_format_truncation),
	    cmocka_unit_test(test_limits),         cmocka_unit_test(test_validity_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
