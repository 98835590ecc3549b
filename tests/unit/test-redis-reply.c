/* SPDX-License-Identifier: MIT */
/* The Redis collector's reply walking (redis-reply.c) over hand-built hiredis replies: TYPE
 * answers, the main read of each rule kind, XINFO GROUPS and dequeue counters, with the
 * per-key failures and notes they give. No server is needed. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <math.h>
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
#include "scalemetrics/error.h"

#include "../../src/collectors/redis-internal.h"

static redisReply str_reply(int type, const char *s)
{
	return (redisReply){.type = type, .str = (char *)s, .len = strlen(s)};
}

static redisReply int_reply(long long v)
{
	return (redisReply){.type = REDIS_REPLY_INTEGER, .integer = v};
}

static redisReply array_reply(redisReply **v, size_t n)
{
	return (redisReply){.type = REDIS_REPLY_ARRAY, .element = v, .elements = n};
}

enum { RULE_AUTO, RULE_LIST, RULE_OPTIONAL, RULE_BULLMQ, RULE_SIDEKIQ, RULE_MAX };

struct fixture {
	struct sm_source_config src;
	struct redis_config cfg;
	struct redis_rule rules[RULE_MAX];
	struct redis_state s;
	struct sm_error err;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->rules[RULE_AUTO] = (struct redis_rule){.metric = "a", .type = REDIS_KEY_AUTO};
	f->rules[RULE_LIST] = (struct redis_rule){.metric = "b", .type = REDIS_KEY_LIST};
	f->rules[RULE_OPTIONAL] =
	    (struct redis_rule){.metric = "c", .type = REDIS_KEY_ZSET, .optional = true};
	f->rules[RULE_BULLMQ] = (struct redis_rule){
	    .metric = "d", .type = REDIS_KEY_ZSET, .read = REDIS_READ_DUE_BULLMQ};
	f->rules[RULE_SIDEKIQ] = (struct redis_rule){
	    .metric = "e", .type = REDIS_KEY_LIST, .read = REDIS_READ_OLDEST_SIDEKIQ};
	f->cfg.rules = (struct redis_rules){.v = f->rules, .n = RULE_MAX, .cap = RULE_MAX};
	f->src.max_series = 1000;
	f->s.src = &f->src;
	f->s.cfg = &f->cfg;
	f->s.entries_hint = 64;
	f->s.now_wall_ms = 1700000000000;
	if (sm_redis_keyset_reset(&f->s) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sm_redis_entries_free(&f->s);
	free(f);
	return 0;
}

/* A fresh entry for key under rule. */
static struct redis_entry *entry(struct fixture *f, size_t rule, const char *key)
{
	assert_int_equal(sm_redis_key_add(&f->s, rule, key, strlen(key), NULL, 0), 0);
	return &f->s.entries[f->s.n_entries - 1];
}

static void test_map_get(void **state)
{
	redisReply k1 = str_reply(REDIS_REPLY_STRING, "name");
	redisReply v1 = str_reply(REDIS_REPLY_STRING, "g1");
	redisReply k2 = int_reply(7); /* not a field name */
	redisReply v2 = str_reply(REDIS_REPLY_STRING, "x");
	redisReply k3 = str_reply(REDIS_REPLY_STRING, "pending");
	redisReply v3 = int_reply(3);
	redisReply k4 = str_reply(REDIS_REPLY_STRING, "lag"); /* no value: odd count */
	redisReply *el[] = {&k1, &v1, &k2, &v2, &k3, &v3, &k4};
	redisReply m = array_reply(el, 7);

	(void)state;
	assert_ptr_equal(sm_redis_map_get(&m, "name"), &v1);
	assert_ptr_equal(sm_redis_map_get(&m, "pending"), &v3);
	assert_null(sm_redis_map_get(&m, "lag"));
	assert_null(sm_redis_map_get(&m, "x"));
	assert_null(sm_redis_map_get(&m, "missing"));
}

static void test_take_type(void **state)
{
	struct fixture *f = *state;
	struct redis_entry *e;
	redisReply list = str_reply(REDIS_REPLY_STATUS, "list");
	redisReply none = str_reply(REDIS_REPLY_STATUS, "none");
	redisReply string = str_reply(REDIS_REPLY_STATUS, "string");
	redisReply hash = str_reply(REDIS_REPLY_STATUS, "hash");
	redisReply error = str_reply(REDIS_REPLY_ERROR, "ERR something");

	/* Auto: the type Redis says. */
	e = entry(f, RULE_AUTO, "k1");
	assert_int_equal(sm_redis_take_type(&f->s, e, &list, &f->err), 0);
	assert_int_equal(e->type, REDIS_KEY_LIST);
	assert_false(e->skip || e->failed || e->ready);

	/* Missing: 0 without a read... */
	e = entry(f, RULE_AUTO, "k2");
	assert_int_equal(sm_redis_take_type(&f->s, e, &none, &f->err), 0);
	assert_true(e->ready);
	assert_false(e->skip);
	assert_true(e->value == 0);
	/* ...or, for an optional key, no series. */
	e = entry(f, RULE_OPTIONAL, "k3");
	assert_int_equal(sm_redis_take_type(&f->s, e, &none, &f->err), 0);
	assert_true(e->ready && e->skip);
	assert_false(e->failed);
	assert_string_equal(f->err.message, "");

	/* A type no rule reads. */
	e = entry(f, RULE_AUTO, "k4");
	assert_int_equal(sm_redis_take_type(&f->s, e, &string, &f->err), 0);
	assert_true(e->skip && e->failed);
	assert_string_equal(sm_redis_entry_extra_get(&f->s, e)->error,
	                    "key 'k4' is a string, not a list, zset, set, stream or hash");

	/* Not the type configured. */
	e = entry(f, RULE_OPTIONAL, "k5");
	assert_int_equal(sm_redis_take_type(&f->s, e, &hash, &f->err), 0);
	assert_true(e->skip && e->failed);
	assert_string_equal(sm_redis_entry_extra_get(&f->s, e)->error,
	                    "key 'k5' is a hash, not a zset");
	assert_string_equal(f->err.message,
	                    "key 'k4' is a string, not a list, zset, set, stream or hash; "
	                    "skipped; key 'k5' is a hash, not a zset; skipped");

	/* Not a status: the caller fails the round. */
	e = entry(f, RULE_AUTO, "k6");
	assert_int_equal(sm_redis_take_type(&f->s, e, &error, &f->err), 1);
	assert_false(e->skip || e->failed);
}

static void test_take_value(void **state)
{
	struct fixture *f = *state;
	struct redis_entry *e;
	redisReply n42 = int_reply(42);
	redisReply wrongtype = str_reply(
	    REDIS_REPLY_ERROR, "WRONGTYPE Operation against a key holding the wrong kind");
	redisReply other = str_reply(REDIS_REPLY_ERROR, "ERR other");
	redisReply nil = {.type = REDIS_REPLY_NIL};
	redisReply job = str_reply(REDIS_REPLY_STRING, "{\"enqueued_at\":1699999988}");
	redisReply junk = str_reply(REDIS_REPLY_STRING, "{\"class\":\"X\"}");

	e = entry(f, RULE_LIST, "list");
	assert_int_equal(sm_redis_take_value(&f->s, e, &n42, &f->err), 0);
	assert_true(e->value == 42);
	assert_false(e->stream);

	e = entry(f, RULE_AUTO, "stream");
	e->type = REDIS_KEY_STREAM;
	assert_int_equal(sm_redis_take_value(&f->s, e, &n42, &f->err), 0);
	assert_true(e->stream);

	e = entry(f, RULE_LIST, "changed");
	assert_int_equal(sm_redis_take_value(&f->s, e, &wrongtype, &f->err), 0);
	assert_true(e->skip && e->failed);
	assert_string_equal(sm_redis_entry_extra_get(&f->s, e)->error,
	                    "key 'changed' is not a list");
	e = entry(f, RULE_BULLMQ, "delayed");
	assert_int_equal(sm_redis_take_value(&f->s, e, &wrongtype, &f->err), 0);
	assert_string_equal(sm_redis_entry_extra_get(&f->s, e)->error,
	                    "key 'delayed' is not a zset");

	/* Sidekiq: an empty queue has no latency; a job's age; a job without enqueued_at. */
	e = entry(f, RULE_SIDEKIQ, "queue:empty");
	e->value = -1;
	assert_int_equal(sm_redis_take_value(&f->s, e, &nil, &f->err), 0);
	assert_true(e->value == 0);
	e = entry(f, RULE_SIDEKIQ, "queue:default");
	assert_int_equal(sm_redis_take_value(&f->s, e, &job, &f->err), 0);
	assert_true(fabs(e->value - 12) < 1e-9);
	assert_false(e->failed);
	e = entry(f, RULE_SIDEKIQ, "queue:odd");
	assert_int_equal(sm_redis_take_value(&f->s, e, &junk, &f->err), 0);
	assert_true(e->failed);
	assert_string_equal(sm_redis_entry_extra_get(&f->s, e)->error,
	                    "queue 'queue:odd': the oldest job: no numeric enqueued_at");
	assert_non_null(strstr(f->err.message, "no numeric enqueued_at; no latency series"));

	/* What the command cannot answer: the caller fails the round. */
	e = entry(f, RULE_LIST, "x1");
	assert_int_equal(sm_redis_take_value(&f->s, e, &other, &f->err), 1);
	e = entry(f, RULE_SIDEKIQ, "x2");
	assert_int_equal(sm_redis_take_value(&f->s, e, &n42, &f->err), 1);
	e = entry(f, RULE_LIST, "x3");
	assert_int_equal(sm_redis_take_value(&f->s, e, &job, &f->err), 1);
	assert_false(e->failed);
}

static redisReply *group(redisReply *el, redisReply *g, const char *name, long long pending,
                         int lag_type, long long lag)
{
	size_t n = 0;

	el[n++] = str_reply(REDIS_REPLY_STRING, "name");
	el[n++] = str_reply(REDIS_REPLY_STRING, name);
	el[n++] = str_reply(REDIS_REPLY_STRING, "pending");
	el[n++] = int_reply(pending);
	if (lag_type >= 0) {
		el[n++] = str_reply(REDIS_REPLY_STRING, "lag");
		el[n++] = lag_type == REDIS_REPLY_INTEGER ? int_reply(lag)
		                                          : (redisReply){.type = lag_type};
	}
	g->type = REDIS_REPLY_ARRAY;
	g->elements = n;
	return g;
}

static void test_take_groups(void **state)
{
	struct fixture *f = *state;
	redisReply el[4][6];
	redisReply *ptr[4][6];
	redisReply g[4] = {{0}};
	redisReply bad_pending[4];
	redisReply *bad_ptr[4];
	redisReply *groups[5];
	redisReply reply, error, empty = {.type = REDIS_REPLY_ARRAY};
	const struct redis_extra *x;
	struct redis_entry *e;

	for (size_t i = 0; i < 4; i++) {
		for (size_t j = 0; j < 6; j++)
			ptr[i][j] = &el[i][j];
		g[i].element = ptr[i];
	}
	groups[0] = group(el[0], &g[0], "fast", 2, REDIS_REPLY_INTEGER, 10);
	groups[1] = group(el[1], &g[1], "trimmed", 5, REDIS_REPLY_NIL, 0);
	groups[2] = group(el[2], &g[2], "old", 1, -1, 0);
	/* A group whose pending is not a number is skipped. */
	bad_pending[0] = str_reply(REDIS_REPLY_STRING, "name");
	bad_pending[1] = str_reply(REDIS_REPLY_STRING, "odd");
	bad_pending[2] = str_reply(REDIS_REPLY_STRING, "pending");
	bad_pending[3] = str_reply(REDIS_REPLY_STRING, "3");
	for (size_t i = 0; i < 4; i++)
		bad_ptr[i] = &bad_pending[i];
	g[3] = array_reply(bad_ptr, 4);
	groups[3] = &g[3];
	groups[4] = &(redisReply){.type = REDIS_REPLY_INTEGER}; /* not a group */
	reply = array_reply(groups, 5);

	e = entry(f, RULE_AUTO, "s");
	assert_int_equal(sm_redis_take_groups(&f->s, e, &reply, &f->err), 0);
	x = sm_redis_entry_extra_get(&f->s, e);
	assert_non_null(x);
	assert_int_equal(x->n_groups, 3);
	assert_string_equal(x->groups[0].name, "fast");
	assert_true(x->groups[0].has_lag && x->groups[0].lag == 10 && x->groups[0].pending == 2);
	assert_string_equal(x->groups[1].name, "trimmed");
	assert_false(x->groups[1].has_lag);
	assert_true(x->groups[1].pending == 5);
	assert_string_equal(x->groups[2].name, "old");
	assert_false(x->groups[2].has_lag);
	assert_non_null(strstr(f->err.message, "stream 's' group 'trimmed': Redis cannot tell the "
	                                       "lag"));
	assert_non_null(strstr(f->err.message, "stream 's' group 'old': XINFO GROUPS has no lag "
	                                       "(Redis < 7)"));
	assert_false(e->failed);

	/* No groups: no extra. */
	e = entry(f, RULE_AUTO, "s2");
	assert_int_equal(sm_redis_take_groups(&f->s, e, &empty, &f->err), 0);
	assert_null(sm_redis_entry_extra_get(&f->s, e));

	/* XINFO refused: a note, the stream's length still served. */
	sm_error_clear(&f->err);
	error = str_reply(REDIS_REPLY_ERROR, "NOPERM no");
	e = entry(f, RULE_AUTO, "s3");
	assert_int_equal(sm_redis_take_groups(&f->s, e, &error, &f->err), 0);
	assert_string_equal(f->err.message,
	                    "stream 's3': XINFO GROUPS failed: NOPERM no; no group series");
	assert_false(e->failed || e->skip);
}

static void test_take_counter(void **state)
{
	struct fixture *f = *state;
	redisReply text = str_reply(REDIS_REPLY_STRING, "12.5");
	redisReply integer = int_reply(7);
	redisReply junk = str_reply(REDIS_REPLY_STRING, "12 jobs");
	redisReply nil = {.type = REDIS_REPLY_NIL};
	struct redis_entry *e;

	e = entry(f, RULE_LIST, "c1");
	assert_int_equal(sm_redis_take_counter(&f->s, e, &text), 0);
	assert_true(sm_redis_entry_extra_get(&f->s, e)->has_counter);
	assert_true(sm_redis_entry_extra_get(&f->s, e)->counter == 12.5);
	e = entry(f, RULE_LIST, "c2");
	assert_int_equal(sm_redis_take_counter(&f->s, e, &integer), 0);
	assert_true(sm_redis_entry_extra_get(&f->s, e)->counter == 7);
	/* Not a number, or no counter yet: no counter, and no failure. */
	e = entry(f, RULE_LIST, "c3");
	assert_int_equal(sm_redis_take_counter(&f->s, e, &junk), 0);
	assert_null(sm_redis_entry_extra_get(&f->s, e));
	e = entry(f, RULE_LIST, "c4");
	assert_int_equal(sm_redis_take_counter(&f->s, e, &nil), 0);
	assert_null(sm_redis_entry_extra_get(&f->s, e));
}

static void test_error_code(void **state)
{
	static const struct {
		int type;
		const char *str;
		int code;
	} cases[] = {
	    {REDIS_REPLY_ERROR, "NOAUTH Authentication required.", -EACCES},
	    {REDIS_REPLY_ERROR, "WRONGPASS invalid username-password pair", -EACCES},
	    {REDIS_REPLY_ERROR, "NOPERM this user has no permissions", -EACCES},
	    {REDIS_REPLY_ERROR, "ERR unknown command 'ROLE'", -EIO},
	    {REDIS_REPLY_ERROR, "LOADING Redis is loading the dataset in memory", -EIO},
	    {REDIS_REPLY_STATUS, "OK", -EPROTO},
	    {REDIS_REPLY_STRING, "NOAUTH", -EPROTO}, /* only an error reply is refused access */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		redisReply r = str_reply(cases[i].type, cases[i].str);

		if (sm_redis_error_code(&r) != cases[i].code)
			fail_msg("case %zu '%s': %d, expected %d", i, cases[i].str,
			         sm_redis_error_code(&r), cases[i].code);
	}
}

static void test_ctx_error_code(void **state)
{
	static const struct {
		int err;
		int errno_saved;
		bool connecting;
		int code;
	} cases[] = {
	    {REDIS_ERR_IO, EAGAIN, false, -ETIMEDOUT},
	    {REDIS_ERR_IO, EINPROGRESS, true, -ETIMEDOUT},
	    {REDIS_ERR_IO, ETIMEDOUT, false, -ETIMEDOUT},
	    {REDIS_ERR_IO, ECONNREFUSED, true, -ECONNREFUSED},
	    {REDIS_ERR_IO, ENOENT, true, -ENOENT}, /* a unix socket that is not there */
	    {REDIS_ERR_IO, ECONNRESET, false, -ECONNRESET},
	    {REDIS_ERR_IO, EPIPE, false, -EPIPE},
	    {REDIS_ERR_IO, EACCES, true, -EACCES},
	    {REDIS_ERR_IO, 0, true, -ECONNREFUSED},
	    {REDIS_ERR_IO, EBADF, false, -EIO},
	    {REDIS_ERR_EOF, 0, false, -EIO},
	    {REDIS_ERR_PROTOCOL, 0, false, -EPROTO},
	    {REDIS_ERR_OOM, 0, false, -ENOMEM},
	    {REDIS_ERR_OTHER, 0, true, -EHOSTUNREACH}, /* e.g. a name that does not resolve */
	    {REDIS_ERR_OTHER, 0, false, -EIO},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int code = sm_redis_ctx_error_code(cases[i].err, cases[i].errno_saved,
		                                   cases[i].connecting);

		if (code != cases[i].code)
			fail_msg("case %zu: %d, expected %d", i, code, cases[i].code);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_map_get),
	    cmocka_unit_test(test_error_code),
	    cmocka_unit_test(test_ctx_error_code),
	    cmocka_unit_test_setup_teardown(test_take_type, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_take_value, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_take_groups, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_take_counter, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
