/* SPDX-License-Identifier: MIT */
/* Unit tests for what a reload compares (config-reload.c): when a source counts as unchanged
 * (its canonical text, its namespaces), which running source each new one matches, which keys
 * need a restart, and keeping the running kubernetes section. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* cmocka needs the headers above, so it stays out of their sorted block. */
#include <cmocka.h>

#include "scalemetrics/config.h"
#include "scalemetrics/error.h"
#include "scalemetrics/source.h"

#include "../../src/config/config-internal.h"

static struct sm_config *load(const char *yaml)
{
	struct sm_config *cfg = NULL;
	struct sm_error_list errs = {0};
	char buf[1024];
	int r = sm_config_load_string("cfg.yaml", yaml, strlen(yaml), &cfg, &errs);

	for (size_t i = 0; i < errs.n; i++) {
		sm_error_format(&errs.items[i], buf, sizeof(buf));
		print_error("%s\n", buf);
	}
	assert_int_equal(r, 0);
	sm_error_list_done(&errs);
	return cfg;
}

#define SRC(name, extra)                                                                           \
	"- name: " name "\n"                                                                       \
	"  type: redis\n"                                                                          \
	"  address: 127.0.0.1:6379\n" extra "  queues:\n"                                          \
	"  - metric: " name "_len\n"                                                               \
	"    keys: ['" name ":*']\n"

static const char base[] = "server:\n  namespace: default\nsources:\n" SRC("a", "")
    SRC("b", "  interval: 2s\n") SRC("c", "");

/* Cases against base: each is the whole file, and what should count as unchanged. */
static const struct {
	const char *what;
	const char *yaml;
	size_t from[3]; /* for the sources of yaml, in order */
	size_t n;
	size_t kept;
} cases[] = {
    {"same file",
     "server:\n  namespace: default\nsources:\n" SRC("a", "") SRC("b", "  interval: 2s\n")
         SRC("c", ""),
     {0, 1, 2},
     3,
     3},
    {"comments, quoting, key order and source order",
     "# a comment\nserver: {namespace: default}\nsources:\n"
     "- queues: [{keys: [\"c:*\"], metric: c_len}]\n  address: '127.0.0.1:6379'\n"
     "  type: redis\n  name: c\n" SRC("a", "") SRC("b", "  interval: 2s   # same\n"),
     {2, 0, 1},
     3,
     3},
    {"one value changed, one source removed, one added",
     "server:\n  namespace: default\nsources:\n" SRC("a", "") SRC("b", "  interval: 3s\n")
         SRC("d", ""),
     {0, SIZE_MAX, SIZE_MAX},
     3,
     1},
    {"a default written out is a change of the entry",
     "server:\n  namespace: default\nsources:\n" SRC("a", "  timeout: 1s\n")
         SRC("b", "  interval: 2s\n") SRC("c", ""),
     {SIZE_MAX, 1, 2},
     3,
     2},
    {"server.namespace gives the sources other namespaces",
     "server:\n  namespace: other\nsources:\n" SRC("a", "") SRC("b", "  interval: 2s\n")
         SRC("c", "  namespaces: [default]\n"),
     {SIZE_MAX, SIZE_MAX, SIZE_MAX},
     3,
     0},
    {"a source renamed",
     "server:\n  namespace: default\nsources:\n" SRC("x", "") SRC("b", "  interval: 2s\n"),
     {SIZE_MAX, 1},
     2,
     1},
};

static void test_match_sources(void **state)
{
	struct sm_config *running = load(base);
	size_t failed = 0;

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct sm_config *next = load(cases[k].yaml);
		size_t from[8];
		size_t kept;
		bool ok;

		assert_int_equal(next->n_sources, cases[k].n);
		kept = sm_config_match_sources(running, next, from);
		ok = kept == cases[k].kept;
		for (size_t i = 0; i < cases[k].n; i++)
			ok = ok && from[i] == cases[k].from[i];
		if (!ok) {
			print_error("case '%s': kept %zu, from", cases[k].what, kept);
			for (size_t i = 0; i < cases[k].n; i++)
				print_error(" %zd",
				            from[i] == SIZE_MAX ? (ssize_t)-1 : (ssize_t)from[i]);
			print_error("\n");
			failed++;
		}
		sm_config_free(next);
	}
	sm_config_free(running);
	if (failed)
		fail_msg("%zu cases failed (named above)", failed);
}

static void test_source_equal(void **state)
{
	struct sm_config *a = load(base), *b = load(base);

	(void)state;
	assert_non_null(a->sources[0].canonical);
	assert_true(sm_source_config_equal(&a->sources[0], &b->sources[0]));
	assert_false(sm_source_config_equal(&a->sources[0], &b->sources[1]));
	assert_false(sm_source_config_equal(NULL, &b->sources[1]));
	/* Without a canonical text (too big to write out), never equal, not even to itself. */
	free(b->sources[0].canonical);
	b->sources[0].canonical = NULL;
	assert_false(sm_source_config_equal(&b->sources[0], &b->sources[0]));
	assert_false(sm_source_config_equal(&a->sources[0], &b->sources[0]));
	sm_config_free(a);
	sm_config_free(b);
}

/* An alias that expands ten-billion-fold gets no canonical text (its budget runs out) instead
 * of exhausting memory or time. */
static void test_alias_expansion_is_bounded(void **state)
{
	char yaml[4096];
	struct sm_config *cfg = NULL;
	struct sm_error_list errs = {0};
	size_t len = 0;
	int r;

	(void)state;
	/* Ten levels of ten aliases each, hung under the source as an unknown key: the load fails
	 * for that key, after the source's canonical text was tried. */
	len += (size_t)snprintf(yaml + len, sizeof(yaml) - len, "l0: &l0 [%s]\n",
	                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	for (int i = 1; i <= 10; i++)
		len += (size_t)snprintf(
		    yaml + len, sizeof(yaml) - len,
		    "l%d: &l%d [*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d]\n", i, i, i - 1,
		    i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
	len += (size_t)snprintf(yaml + len, sizeof(yaml) - len,
	                        "sources:\n- name: a\n  type: redis\n  address: 127.0.0.1:6379\n"
	                        "  bomb: *l10\n  queues:\n  - metric: a_len\n    keys: ['a:*']\n");
	assert_true(len < sizeof(yaml));
	r = sm_config_load_string("bomb.yaml", yaml, len, &cfg, &errs);
	assert_int_equal(r, -EINVAL); /* the unknown keys */
	assert_null(cfg);
	sm_error_list_done(&errs);
}

/* The canonical text of a YAML node, NULL if it cannot be parsed or written. */
static char *canonical(const char *yaml)
{
	struct sm_error_list errs = {0};
	struct sm_config_parser p = {.file = "t.yaml", .errs = &errs};
	struct sm_config_yaml *y = NULL;
	char *text = NULL;

	if (sm_config_yaml_parse(&p, yaml, strlen(yaml), &y) == 0 && errs.n == 0)
		text = sm_config_canonical_text(sm_config_yaml_root(y));
	sm_config_yaml_free(y);
	sm_error_list_done(&errs);
	return text;
}

/* Mappings with their pairs sorted, sequences in order, scalars with their lengths, null as
 * ~: equal text exactly when the YAML means the same. */
static void test_canonical_text(void **state)
{
	static const struct {
		const char *yaml, *text;
	} texts[] = {
	    {"x", "1:x"},
	    {"~", "~"},
	    {"'~'", "1:~"},
	    {"''", "0:"},
	    {"[a, ~, bc]", "[ 1:a ~ 2:bc]"},
	    {"{b: 1, a: [x]}", "{ 1:a [ 1:x] 1:b 1:1}"},
	    {"a: [x]\nb: 1\n", "{ 1:a [ 1:x] 1:b 1:1}"},
	    {"{a: {d: 2, c: 1}}", "{ 1:a { 1:c 1:1 1:d 1:2}}"},
	    {"{k: &v [1], l: *v}", "{ 1:k [ 1:1] 1:l [ 1:1]}"},
	    {"[]", "[]"},
	    {"{}", "{}"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char *text = canonical(texts[i].yaml);

		if (!text || strcmp(text, texts[i].text) != 0)
			fail_msg("case %zu: '%s', expected '%s'", i, text ? text : "(null)",
			         texts[i].text);
		free(text);
	}
}

static void test_restart_keys(void **state)
{
	struct sm_config *a = load("server:\n  listen: 127.0.0.1:8443\n  log_level: info\n"
	                           "kubernetes:\n  server: https://k:6443\n");
	struct sm_config *b = load("server:\n  listen: 127.0.0.1:9443\n  log_level: debug\n"
	                           "  limits: {max_connections: 7}\n  namespace: other\n"
	                           "kubernetes:\n  server: https://k2:6443\n");
	const char *keys[8];

	(void)state;
	assert_int_equal(sm_config_restart_keys(a, a, keys, 8), 0);
	assert_int_equal(sm_config_restart_keys(a, b, keys, 8), 3);
	assert_string_equal(keys[0], "server.listen");
	assert_string_equal(keys[1], "server.limits.max_connections");
	assert_string_equal(keys[2], "kubernetes.server");
	/* Counted beyond cap, stored up to it. */
	assert_int_equal(sm_config_restart_keys(a, b, keys, 1), 3);

	assert_int_equal(sm_config_keep_kubernetes(b, a), 0);
	assert_string_equal(b->kubernetes.server, "https://k:6443");
	assert_null(b->kubernetes.context);
	assert_int_equal(sm_config_restart_keys(a, b, keys, 8), 2);
	sm_config_free(a);
	sm_config_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_sources), cmocka_unit_test(test_canonical_text),
	    cmocka_unit_test(test_source_equal),  cmocka_unit_test(test_alias_expansion_is_bounded),
	    cmocka_unit_test(test_restart_keys),
	};

	sm_config_set_source_parser(sm_source_config_parse);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
