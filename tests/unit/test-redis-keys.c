/* SPDX-License-Identifier: MIT */
/* The Redis collector's keys (redis-keys.c): Redis' glob syntax and what its '*'s capture, the
 * label a glob gives a key, and the per-rule key set with its max_series bound. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/config.h"

#include "../../src/collectors/redis-internal.h"

static bool glob(const char *pat, const char *str)
{
	size_t budget = 100000;

	return sm_redis_glob_match(pat, strlen(pat), str, strlen(str), NULL, 0, &budget);
}

static void test_glob_match(void **state)
{
	static const struct {
		const char *pat;
		const char *str;
		bool match;
	} cases[] = {
	    {"", "", true},
	    {"", "a", false},
	    {"*", "", true},
	    {"*", "anything:at:all", true},
	    {"q:*", "q:", true},
	    {"q:*", "q:a", true},
	    {"q:*", "r:a", false},
	    {"q:*:jobs", "q:x:y:jobs", true},
	    {"q:*:jobs", "q:x:job", false},
	    {"a**b", "axxb", true},
	    {"?", "a", true},
	    {"?", "", false},
	    {"?", "ab", false},
	    {"q?", "q", false},
	    {"[abc]", "b", true},
	    {"[abc]", "d", false},
	    {"[^abc]", "d", true},
	    {"[^abc]", "a", false},
	    {"[a-c]x", "bx", true},
	    {"[a-c]x", "dx", false},
	    {"[c-a]", "b", true}, /* a reversed range is swapped, as Redis does */
	    {"[\\]]", "]", true},
	    {"[\\]]", "\\", false},
	    {"[ab", "a", true}, /* unterminated: the end stands for ']' */
	    {"[ab", "ab", false},
	    {"[]", "a", false},
	    {"\\*", "*", true},
	    {"\\*", "x", false},
	    {"\\?", "?", true},
	    {"a\\[b", "a[b", true},
	    {"a\\", "a\\", true}, /* a trailing backslash is literal */
	    {"é*", "été", true},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (glob(cases[i].pat, cases[i].str) != cases[i].match)
			fail_msg("case %zu: '%s' against '%s': expected %s", i, cases[i].pat,
			         cases[i].str, cases[i].match ? "a match" : "no match");
	}
}

static void test_glob_captures(void **state)
{
	struct redis_capture caps[3] = {{0}};
	const char *key = "q:a:b:c";
	size_t budget = 100000;

	(void)state;
	/* Shortest first: the first '*' takes "a", the last the rest. */
	assert_true(sm_redis_glob_match("q:*:*", 5, key, strlen(key), caps, 2, &budget));
	assert_int_equal(caps[0].len, 1);
	assert_memory_equal(caps[0].p, "a", 1);
	assert_int_equal(caps[1].len, 3);
	assert_memory_equal(caps[1].p, "b:c", 3);

	/* Fewer captures than stars: the later ones are matched, not recorded. */
	budget = 100000;
	caps[1] = (struct redis_capture){0};
	assert_true(sm_redis_glob_match("q:*:*", 5, key, strlen(key), caps, 1, &budget));
	assert_int_equal(caps[0].len, 1);
	assert_null(caps[1].p);
}

static void test_glob_budget(void **state)
{
	const char *pat = "*a*a*a*a*a*a*b";
	char str[200];
	size_t budget = 1000;

	(void)state;
	memset(str, 'a', sizeof(str) - 1);
	str[sizeof(str) - 1] = '\0';
	/* Exponential backtracking is cut short: no match, and the budget is spent. */
	assert_false(sm_redis_glob_match(pat, strlen(pat), str, strlen(str), NULL, 0, &budget));
	assert_int_equal(budget, 0);
}

static void test_count_stars(void **state)
{
	(void)state;
	assert_int_equal(sm_redis_count_stars(""), 0);
	assert_int_equal(sm_redis_count_stars("queue"), 0);
	assert_int_equal(sm_redis_count_stars("q:*"), 1);
	assert_int_equal(sm_redis_count_stars("q:**"), 1);
	assert_int_equal(sm_redis_count_stars("*:*:x*"), 3);
	assert_int_equal(sm_redis_count_stars("q:\\*:*"), 1);
	assert_int_equal(sm_redis_count_stars("trailing\\"), 0);
	/* A '*' in a class is a character, as glob_match reads it. */
	assert_int_equal(sm_redis_count_stars("q:[*]:*"), 1);
	assert_int_equal(sm_redis_count_stars("q:[^*x]*"), 1);
	assert_int_equal(sm_redis_count_stars("q:[\\]*]*"), 1);
	assert_int_equal(sm_redis_count_stars("q:[a-]*]*"), 1); /* ']' ends the range a-] */
	assert_int_equal(sm_redis_count_stars("q:[*"), 0);      /* unterminated: all class */
}

static void test_label_for(void **state)
{
	static const struct {
		const char *pat;
		const char *key;
		const char *label;
	} cases[] = {
	    {"q:*", "q:emails", "emails"},
	    {"q:*:jobs:*", "q:a:jobs:b", "a:b"},
	    {"q:*", "r:emails", "r:emails"}, /* no match: the whole key */
	    {"exact", "exact", "exact"},     /* no '*': the whole key */
	    {NULL, "k", "k"},
	    {"*", "", ""},
	    {"q:[*]:*", "q:*:emails", "emails"},
	    {"*[*2j[", "a*2", "a*"}, /* the class, unterminated, takes the last character */
	};
	char *scratch = NULL;
	size_t cap = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *label = NULL;
		size_t len = 0;

		assert_int_equal(sm_redis_label_for(&scratch, &cap, cases[i].pat, cases[i].key,
		                                    strlen(cases[i].key), &label, &len),
		                 0);
		if (strcmp(label, cases[i].label) != 0 || len != strlen(cases[i].label))
			fail_msg("case %zu: '%s' for '%s': '%s', expected '%s'", i,
			         cases[i].pat ? cases[i].pat : "(none)", cases[i].key, label,
			         cases[i].label);
	}
	/* A key holding a NUL: the label stops there. */
	{
		const char *label = NULL;
		size_t len = 0;

		assert_int_equal(
		    sm_redis_label_for(&scratch, &cap, "q:*", "q:a\0b", 5, &label, &len), 0);
		assert_string_equal(label, "a");
		assert_int_equal(len, 1);
	}
	free(scratch);
}

struct fixture {
	struct sm_source_config src;
	struct redis_config cfg;
	struct redis_rule rules[2];
	struct redis_state s;
};

static struct fixture *fixture_new(uint32_t max_series)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->rules[0] = (struct redis_rule){.metric = "a", .type = REDIS_KEY_LIST, .label = "q"};
	f->rules[1] = (struct redis_rule){.metric = "b", .type = REDIS_KEY_AUTO};
	f->cfg.rules = (struct redis_rules){.v = f->rules, .n = 2, .cap = 2};
	f->src.max_series = max_series;
	f->s.src = &f->src;
	f->s.cfg = &f->cfg;
	f->s.entries_hint = 64;
	return f;
}

static void fixture_free(struct fixture *f)
{
	sm_redis_entries_free(&f->s);
	free(f);
}

static void test_keyset(void **state)
{
	struct fixture *f = fixture_new(100000);
	struct redis_state *s = &f->s;
	char key[32];

	(void)state;
	assert_int_equal(sm_redis_keyset_reset(s), 0);
	/* Enough keys to grow the set several times; "q:0".."q:4999" share FNV's low bits. */
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof(key), "q:%d", i);

		assert_int_equal(sm_redis_key_add(s, 0, key, (size_t)n, key + 2, (size_t)n - 2), 0);
	}
	assert_int_equal(s->n_entries, 5000);
	/* Again: every key is in the set already. */
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof(key), "q:%d", i);

		assert_int_equal(sm_redis_key_add(s, 0, key, (size_t)n, "other", 5), 0);
	}
	assert_int_equal(s->n_entries, 5000);
	assert_string_equal(s->entries[1234].key, "q:1234");
	assert_int_equal(s->entries[1234].key_len, 6);
	assert_int_equal(s->entries[1234].rule, 0);
	assert_int_equal(s->entries[1234].type, REDIS_KEY_LIST);
	assert_string_equal(sm_redis_entry_label(&s->entries[1234]), "1234");

	/* The next rule has a set of its own: the same key is read again for it. */
	assert_int_equal(sm_redis_keyset_reset(s), 0);
	assert_int_equal(sm_redis_key_add(s, 1, "q:1", 3, NULL, 0), 0);
	assert_int_equal(s->n_entries, 5001);
	assert_null(sm_redis_entry_label(&s->entries[5000]));
	assert_int_equal(s->entries[5000].type, REDIS_KEY_AUTO);

	/* Binary keys: "a\0b" and "a\0c" are two keys. */
	assert_int_equal(sm_redis_key_add(s, 1, "a\0b", 3, NULL, 0), 0);
	assert_int_equal(sm_redis_key_add(s, 1, "a\0c", 3, NULL, 0), 0);
	assert_int_equal(sm_redis_key_add(s, 1, "a\0b", 3, NULL, 0), 0);
	assert_int_equal(s->n_entries, 5003);

	/* A new round starts empty, and may add the same keys again. */
	sm_redis_entries_clear(s);
	assert_int_equal(s->n_entries, 0);
	assert_int_equal(sm_redis_keyset_reset(s), 0);
	assert_int_equal(sm_redis_key_add(s, 0, "q:1", 3, "1", 1), 0);
	assert_int_equal(s->n_entries, 1);
	assert_string_equal(sm_redis_entry_label(&s->entries[0]), "1");
	sm_redis_entries_release(s);
	fixture_free(f);
}

static void test_keyset_max_series(void **state)
{
	struct fixture *f = fixture_new(3);
	struct redis_state *s = &f->s;
	const char *keys[] = {"a", "b", "c", "d", "e"};

	(void)state;
	assert_int_equal(sm_redis_keyset_reset(s), 0);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(sm_redis_key_add(s, 1, keys[i], 1, NULL, 0), 0);
	assert_int_equal(s->n_entries, 3);
	assert_int_equal(s->overflow, 2);
	/* A key already read is no overflow. */
	assert_int_equal(sm_redis_key_add(s, 1, "a", 1, NULL, 0), 0);
	assert_int_equal(s->overflow, 2);
	fixture_free(f);
}

static void test_entry_extra(void **state)
{
	struct fixture *f = fixture_new(100);
	struct redis_state *s = &f->s;
	struct redis_extra *x;

	(void)state;
	assert_int_equal(sm_redis_keyset_reset(s), 0);
	assert_int_equal(sm_redis_key_add(s, 1, "a", 1, NULL, 0), 0);
	assert_int_equal(sm_redis_key_add(s, 1, "b", 1, NULL, 0), 0);
	assert_null(sm_redis_entry_extra_get(s, &s->entries[0]));
	x = sm_redis_entry_extra(s, &s->entries[1]);
	assert_non_null(x);
	x->error = strdup("why");
	assert_ptr_equal(sm_redis_entry_extra(s, &s->entries[1]), x);
	assert_ptr_equal(sm_redis_entry_extra_get(s, &s->entries[1]), x);
	assert_null(sm_redis_entry_extra_get(s, &s->entries[0]));
	fixture_free(f); /* frees the extra's error */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_glob_match),        cmocka_unit_test(test_glob_captures),
	    cmocka_unit_test(test_glob_budget),       cmocka_unit_test(test_count_stars),
	    cmocka_unit_test(test_label_for),         cmocka_unit_test(test_keyset),
	    cmocka_unit_test(test_keyset_max_series), cmocka_unit_test(test_entry_extra),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
