/* SPDX-License-Identifier: MIT */
/* The config's node tree (config-yaml.c): the 1-based positions every error is reported at,
 * which plain scalars count as null, aliases, and the documents refused before any table
 * sees them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka needs the headers above, so it stays out of their sorted block. */
#include <cmocka.h>

#include "scalemetrics/config.h"
#include "scalemetrics/error.h"

#include "../../src/config/config-internal.h"

struct tree {
	struct sm_config_parser p;
	struct sm_error_list errs;
	struct sm_config_yaml *y;
	int r;
};

static void parse(struct tree *t, const char *text, size_t len)
{
	*t = (struct tree){0};
	t->p = (struct sm_config_parser){.file = "t.yaml", .errs = &t->errs};
	t->r = sm_config_yaml_parse(&t->p, text, len, &t->y);
}

static void tree_done(struct tree *t)
{
	sm_config_yaml_free(t->y);
	sm_error_list_done(&t->errs);
}

/* The only error reported, formatted. */
static void assert_one_error(const struct tree *t, const char *expected)
{
	char buf[1024];

	assert_int_equal(t->errs.n, 1);
	sm_error_format(&t->errs.items[0], buf, sizeof(buf));
	assert_string_equal(buf, expected);
}

static void assert_mark(const struct sm_config_node *n, unsigned line, unsigned column)
{
	struct sm_config_mark m = sm_config_node_mark(n);

	assert_non_null(n);
	if (m.line != line || m.column != column)
		fail_msg("at %u:%u, expected %u:%u", m.line, m.column, line, column);
}

static void test_positions(void **state)
{
	static const char text[] = "a: 1\n"
	                           "b:\n"
	                           "  - x\n"
	                           "  - {c: d}\n";
	const struct sm_config_node *root, *b, *item;
	struct tree t;

	(void)state;
	parse(&t, text, strlen(text));
	assert_int_equal(t.r, 0);
	assert_int_equal(t.errs.n, 0);
	root = sm_config_yaml_root(t.y);
	assert_true(sm_config_node_is_mapping(root));
	assert_int_equal(sm_config_node_length(root), 2);
	assert_mark(root, 1, 1);
	assert_mark(root->items[0], 1, 1); /* key a */
	assert_mark(root->items[1], 1, 4); /* 1 */
	b = sm_config_node_get(&t.p, root, "b");
	assert_true(sm_config_node_is_sequence(b));
	assert_mark(b, 3, 3);
	assert_mark(sm_config_node_item(&t.p, b, 0), 3, 5);
	item = sm_config_node_item(&t.p, b, 1);
	assert_true(sm_config_node_is_mapping(item));
	assert_mark(item, 4, 5);
	assert_mark(sm_config_node_get(&t.p, item, "c"), 4, 9);
	assert_string_equal(sm_config_node_scalar(sm_config_node_get(&t.p, item, "c")), "d");
	assert_string_equal(sm_config_node_kind_name(root), "a mapping");
	assert_string_equal(sm_config_node_kind_name(b), "a list");
	assert_string_equal(sm_config_node_kind_name(root->items[0]), "a scalar");
	assert_string_equal(sm_config_node_kind_name(NULL), "nothing");
	tree_done(&t);
}

/* Plain empty, ~ and YAML 1.1's three spellings of null are null; quoted, or another case,
 * they are strings. */
static void test_nulls(void **state)
{
	static const char text[] = "a:\n"
	                           "b: ~\n"
	                           "c: null\n"
	                           "d: Null\n"
	                           "e: NULL\n"
	                           "f: 'null'\n"
	                           "g: \"\"\n"
	                           "h: nULL\n"
	                           "i: \"~\"\n";
	static const struct {
		const char *key;
		bool null;
	} cases[] = {
	    {"a", true},  {"b", true},  {"c", true},  {"d", true},  {"e", true},
	    {"f", false}, {"g", false}, {"h", false}, {"i", false},
	};
	const struct sm_config_node *root;
	struct tree t;

	(void)state;
	parse(&t, text, strlen(text));
	assert_int_equal(t.r, 0);
	root = sm_config_yaml_root(t.y);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct sm_config_node *v = sm_config_node_get(&t.p, root, cases[i].key);

		assert_true(sm_config_node_is_scalar(v));
		if (v->null != cases[i].null)
			fail_msg("%s: null is %d", cases[i].key, v->null);
	}
	tree_done(&t);
}

/* An alias is the node it names, not a copy. */
static void test_alias(void **state)
{
	static const char text[] = "a: &x [1, 2]\nb: *x\n";
	const struct sm_config_node *root;
	struct tree t;

	(void)state;
	parse(&t, text, strlen(text));
	assert_int_equal(t.r, 0);
	root = sm_config_yaml_root(t.y);
	assert_ptr_equal(sm_config_node_get(&t.p, root, "a"), sm_config_node_get(&t.p, root, "b"));
	assert_int_equal(sm_config_node_length(sm_config_node_get(&t.p, root, "b")), 2);
	tree_done(&t);
}

static void test_empty(void **state)
{
	struct tree t;

	(void)state;
	parse(&t, "", 0);
	assert_int_equal(t.r, 0);
	assert_non_null(t.y);
	assert_null(sm_config_yaml_root(t.y));
	tree_done(&t);
	parse(&t, "# nothing\n", 10);
	assert_int_equal(t.r, 0);
	assert_null(sm_config_yaml_root(t.y));
	assert_int_equal(t.errs.n, 0);
	tree_done(&t);
}

/* Problems that leave a tree (reported, the tables still run) and those that leave none. */
static void test_refused(void **state)
{
	static const char nul[] = "a: \"x\\0y\"\n";
	static const char two[] = "a: 1\n---\nb: 2\n";
	static const char bad[] = "a: [1, 2\n";
	char *big;
	struct tree t;

	(void)state;
	parse(&t, nul, strlen(nul));
	assert_int_equal(t.r, 0);
	assert_non_null(t.y);
	assert_one_error(&t, "t.yaml:1:4: NUL characters are not allowed");
	tree_done(&t);

	parse(&t, two, strlen(two));
	assert_int_equal(t.r, 0);
	assert_non_null(sm_config_yaml_root(t.y));
	assert_one_error(&t, "t.yaml:2:1: only one YAML document is allowed");
	tree_done(&t);

	parse(&t, bad, strlen(bad));
	assert_int_equal(t.r, -EINVAL);
	assert_null(t.y);
	assert_int_equal(t.errs.n, 1);
	tree_done(&t);

	big = malloc(SM_CONFIG_MAX_FILE_BYTES + 2);
	assert_non_null(big);
	memset(big, '#', SM_CONFIG_MAX_FILE_BYTES + 1);
	big[SM_CONFIG_MAX_FILE_BYTES + 1] = '\0';
	parse(&t, big, SM_CONFIG_MAX_FILE_BYTES); /* at the limit: read */
	assert_int_equal(t.r, 0);
	tree_done(&t);
	parse(&t, big, SM_CONFIG_MAX_FILE_BYTES + 1);
	assert_int_equal(t.r, -EINVAL);
	assert_null(t.y);
	assert_one_error(&t, "t.yaml: the file is larger than 1048576 bytes");
	tree_done(&t);
	free(big);
}

/* Flow nesting is counted before libyaml runs; brackets in quotes and comments are not. */
static void test_flow_depth(void **state)
{
	char text[400];
	size_t n = 0;
	struct tree t;

	(void)state;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "# [[[[ \"\na: '[[[['\nb: ");
	for (int i = 0; i < 64; i++)
		text[n++] = '[';
	for (int i = 0; i < 64; i++)
		text[n++] = ']';
	text[n++] = '\n';
	parse(&t, text, n);
	assert_int_equal(t.r, 0);
	assert_int_equal(t.errs.n, 0);
	tree_done(&t);

	n = (size_t)snprintf(text, sizeof(text), "a: ");
	for (int i = 0; i < 65; i++)
		text[n++] = i % 2 ? '{' : '[';
	parse(&t, text, n);
	assert_int_equal(t.r, -EINVAL);
	assert_one_error(&t, "t.yaml:1:68: [ and { nested deeper than 64 levels");
	tree_done(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_positions), cmocka_unit_test(test_nulls),
	    cmocka_unit_test(test_alias),     cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_refused),   cmocka_unit_test(test_flow_depth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
