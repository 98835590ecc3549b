/* SPDX-License-Identifier: MIT */
/* The Redis collector's series (sm_redis_emit in redis.c) from hand-made entries: keys giving
 * one label value are summed (Sidekiq latencies: the largest), streams give kind=length, lag
 * and pending series per group, object names are filled in, and what could not be read is
 * served as a failure with its reason. */
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
#include "scalemetrics/series.h"

#include "../../src/collectors/redis-internal.h"

enum { R_LIST, R_LATENCY, R_STREAM, R_OBJECT, R_PLAIN, R_DISCOVERED, R_MAX };

struct fixture {
	struct sm_source_config src;
	struct redis_config cfg;
	struct redis_rule rules[R_MAX];
	struct redis_state s;
	struct sm_batch *batch;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->rules[R_LIST] =
	    (struct redis_rule){.metric = "queue_length", .label = "queue", .type = REDIS_KEY_LIST};
	f->rules[R_LATENCY] = (struct redis_rule){.metric = "latency_seconds",
	                                          .label = "queue",
	                                          .type = REDIS_KEY_LIST,
	                                          .read = REDIS_READ_OLDEST_SIDEKIQ};
	f->rules[R_STREAM] = (struct redis_rule){
	    .metric = "stream_backlog", .label = "stream", .type = REDIS_KEY_STREAM};
	f->rules[R_OBJECT] = (struct redis_rule){
	    .metric = "worker_backlog",
	    .label = "queue",
	    .type = REDIS_KEY_LIST,
	    .object = {.resource = "deployments.apps", .name = "worker-{queue}"},
	    .has_object = true};
	f->rules[R_PLAIN] = (struct redis_rule){.metric = "dead", .type = REDIS_KEY_ZSET};
	f->rules[R_DISCOVERED] = (struct redis_rule){
	    .metric = "rq_queue_length", .label = "queue", .type = REDIS_KEY_LIST};
	f->cfg.rules = (struct redis_rules){.v = f->rules, .n = R_MAX, .cap = R_MAX};
	f->src.max_series = 1000;
	f->s.src = &f->src;
	f->s.cfg = &f->cfg;
	f->s.entries_hint = 64;
	f->s.rule_errors = calloc(R_MAX, sizeof(*f->s.rule_errors));
	f->batch = sm_batch_new(1000);
	if (!f->s.rule_errors || !f->batch)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sm_redis_entries_free(&f->s);
	free(f->s.rule_errors);
	sm_batch_free(f->batch);
	free(f);
	return 0;
}

static struct redis_entry *add(struct fixture *f, size_t rule, const char *key, const char *label,
                               double value)
{
	assert_int_equal(sm_redis_keyset_reset(&f->s), 0);
	assert_int_equal(
	    sm_redis_key_add(&f->s, rule, key, strlen(key), label, label ? strlen(label) : 0), 0);
	f->s.entries[f->s.n_entries - 1].value = value;
	return &f->s.entries[f->s.n_entries - 1];
}

/* The series of metric whose labels, in name order, are the NULL-ended name, value pairs. */
static const struct sm_series *find(const struct sm_batch *b, const char *metric, ...)
{
	for (size_t i = 0; i < sm_batch_count(b); i++) {
		const struct sm_series *s = sm_batch_get(b, i);
		size_t n = 0;
		bool same = strcmp(s->metric, metric) == 0;
		va_list ap;

		va_start(ap, metric);
		while (same) {
			const char *name = va_arg(ap, const char *);
			const char *value;

			if (!name)
				break;
			value = va_arg(ap, const char *);

			same = n < s->n_labels && strcmp(s->labels[n].name, name) == 0 &&
			       strcmp(s->labels[n].value, value) == 0;
			n++;
		}
		va_end(ap);
		if (same && n == s->n_labels)
			return s;
	}
	return NULL;
}

static void test_sums_and_max(void **state)
{
	struct fixture *f = *state;
	const struct sm_series *s;

	add(f, R_LIST, "q:emails", "emails", 3);
	add(f, R_LIST, "q:emails:priority", "emails", 4);
	add(f, R_LIST, "q:other", "other", 1);
	add(f, R_LATENCY, "queue:a1", "a", 2.5);
	add(f, R_LATENCY, "queue:a2", "a", 7.5);
	add(f, R_LATENCY, "queue:a3", "a", 1);
	add(f, R_PLAIN, "dead", NULL, 9);
	assert_int_equal(sm_redis_emit(&f->s, f->batch, 1000), 0);

	assert_int_equal(sm_batch_count(f->batch), 4);
	assert_int_equal(sm_batch_failure_count(f->batch), 0);
	s = find(f->batch, "queue_length", "queue", "emails", NULL);
	assert_non_null(s);
	assert_true(s->value == 7);
	assert_null(s->object);
	s = find(f->batch, "queue_length", "queue", "other", NULL);
	assert_non_null(s);
	assert_true(s->value == 1);
	s = find(f->batch, "latency_seconds", "queue", "a", NULL);
	assert_non_null(s);
	assert_true(s->value == 7.5);
	s = find(f->batch, "dead", NULL);
	assert_non_null(s);
	assert_true(s->value == 9);
}

static void test_skipped_and_failed(void **state)
{
	struct fixture *f = *state;
	const struct sm_series_failure *fail;
	struct redis_entry *e;

	/* An optional key that does not exist: no series at all. */
	e = add(f, R_LIST, "q:gone", "gone", 0);
	e->skip = true;
	/* One key of a series failed: the series is a failure, not the sum of the others. */
	add(f, R_LIST, "q:mixed:a", "mixed", 5);
	e = add(f, R_LIST, "q:mixed:b", "mixed", 0);
	sm_redis_fail_entry(&f->s, &(struct sm_error){0}, e, "skipped",
	                    "key 'q:mixed:b' is a string, not a list");
	assert_int_equal(sm_redis_emit(&f->s, f->batch, 1000), 0);

	assert_int_equal(sm_batch_count(f->batch), 0);
	assert_int_equal(sm_batch_failure_count(f->batch), 1);
	fail = sm_batch_get_failure(f->batch, 0);
	assert_string_equal(fail->series.metric, "queue_length");
	assert_int_equal(fail->series.n_labels, 1);
	assert_string_equal(fail->series.labels[0].value, "mixed");
	assert_string_equal(fail->error, "key 'q:mixed:b' is a string, not a list");
	assert_false(fail->labels_partial);
}

static void test_rule_failure(void **state)
{
	struct fixture *f = *state;
	const struct sm_series_failure *fail;

	f->s.rule_errors[R_DISCOVERED] = strdup("queue index 'rq:queues' is not a set");
	assert_int_equal(sm_redis_emit(&f->s, f->batch, 1000), 0);
	assert_int_equal(sm_batch_failure_count(f->batch), 1);
	fail = sm_batch_get_failure(f->batch, 0);
	assert_string_equal(fail->series.metric, "rq_queue_length");
	/* Any queue's: no labels, and the ones it would have are not known. */
	assert_int_equal(fail->series.n_labels, 0);
	assert_true(fail->labels_partial);
	assert_string_equal(fail->error, "queue index 'rq:queues' is not a set");
}

static void test_streams(void **state)
{
	struct fixture *f = *state;
	struct redis_entry *e;
	struct redis_extra *x;
	const struct sm_series *s;

	/* Two streams giving one label: their lengths are summed. */
	e = add(f, R_STREAM, "orders:eu", "orders", 5);
	e->stream = true;
	e = add(f, R_STREAM, "orders", "orders", 7);
	e->stream = true;
	x = sm_redis_entry_extra(&f->s, e);
	assert_non_null(x);
	x->groups = calloc(2, sizeof(*x->groups));
	assert_non_null(x->groups);
	x->n_groups = 2;
	x->groups[0] = (struct redis_group_stat){
	    .name = strdup("billing"), .lag = 4, .has_lag = true, .pending = 2};
	x->groups[1] = (struct redis_group_stat){.name = strdup("audit"), .pending = 1};
	assert_int_equal(sm_redis_emit(&f->s, f->batch, 1000), 0);

	/* length, billing's lag and pending, audit's pending (its lag is not known). */
	assert_int_equal(sm_batch_count(f->batch), 4);
	s = find(f->batch, "stream_backlog", "kind", "length", "stream", "orders", NULL);
	assert_non_null(s);
	assert_true(s->value == 12);
	s = find(f->batch, "stream_backlog", "group", "billing", "kind", "lag", "stream", "orders",
	         NULL);
	assert_non_null(s);
	assert_true(s->value == 4);
	s = find(f->batch, "stream_backlog", "group", "billing", "kind", "pending", "stream",
	         "orders", NULL);
	assert_non_null(s);
	assert_true(s->value == 2);
	assert_null(find(f->batch, "stream_backlog", "group", "audit", "kind", "lag", "stream",
	                 "orders", NULL));
	s = find(f->batch, "stream_backlog", "group", "audit", "kind", "pending", "stream",
	         "orders", NULL);
	assert_non_null(s);
	assert_true(s->value == 1);
	/* No series without kind: a stream's length is kind=length. */
	assert_null(find(f->batch, "stream_backlog", "stream", "orders", NULL));
}

static void test_object(void **state)
{
	struct fixture *f = *state;
	const struct sm_series *s;

	add(f, R_OBJECT, "jobs:Emails/High", "Emails/High", 3);
	assert_int_equal(sm_redis_emit(&f->s, f->batch, 1000), 0);
	assert_int_equal(sm_batch_count(f->batch), 1);
	s = sm_batch_get(f->batch, 0);
	assert_non_null(s->object);
	assert_string_equal(s->object->resource, "deployments.apps");
	{
		/* The served (sanitised) label value goes into the name. */
		char clean[64];
		char want[80];

		sm_label_value_sanitize("Emails/High", clean);
		snprintf(want, sizeof(want), "worker-%s", clean);
		assert_string_equal(s->object->name, want);
		assert_string_equal(s->labels[0].value, clean);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sums_and_max, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_skipped_and_failed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rule_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_streams, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_object, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
