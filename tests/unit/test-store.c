/* SPDX-License-Identifier: MIT */
/* Unit tests for the store: publish/acquire/unref, failures keeping series, staleness,
 * readiness, and a concurrent stress test of acquire against publish. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka needs the headers above, so it stays out of their sorted block. */
#include <cmocka.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/series.h"
#include "scalemetrics/store.h"

struct fixture {
	struct sm_source_config sources[3];
	struct sm_config cfg;
	struct sm_store *st;
};

static void fixture_init(struct fixture *f, size_t n_sources)
{
	static char *const names[] = {"jobs", "app-db", "backend"};

	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < n_sources; i++) {
		f->sources[i].name = names[i];
		f->sources[i].type = "redis";
		f->sources[i].interval_ms = 5000;
		f->sources[i].max_age_ms = 15000;
		f->sources[i].max_series = 100;
	}
	f->cfg.sources = f->sources;
	f->cfg.n_sources = n_sources;
	f->st = sm_store_new(&f->cfg);
	assert_non_null(f->st);
}

/* A batch of n series "m{k=<value>}" = value, the first with an object. */
static struct sm_batch *make_batch(size_t n, double value)
{
	struct sm_batch *b = sm_batch_new(100);
	char text[64];

	assert_non_null(b);
	(void)snprintf(text, sizeof(text), "%.0f", value);
	for (size_t i = 0; i < n; i++) {
		char idx[24];
		struct sm_label labels[] = {{"k", text}, {"i", idx}};
		struct sm_label olabels[] = {{"app", "web"}};
		struct sm_object_ref obj = {"deployments.apps", "worker", NULL};
		struct sm_series_in in = {
		    .metric = "m",
		    .labels = labels,
		    .n_labels = 2,
		    .value = value,
		    .object = i == 0 ? &obj : NULL,
		    .object_labels = i == 0 ? olabels : NULL,
		    .n_object_labels = i == 0 ? 1 : 0,
		};

		(void)snprintf(idx, sizeof(idx), "%zu", i);
		assert_int_equal(sm_batch_add(b, &in), 0);
	}
	return b;
}

static const char *label_value(const struct sm_series *s, const char *name)
{
	for (size_t i = 0; i < s->n_labels; i++)
		if (strcmp(s->labels[i].name, name) == 0)
			return s->labels[i].value;
	return NULL;
}

static void test_initial_snapshot(void **state)
{
	struct fixture f;
	struct sm_snapshot *snap;

	(void)state;
	fixture_init(&f, 2);
	assert_int_equal(sm_store_count(f.st), 2);
	assert_ptr_equal(sm_store_config(f.st), &f.cfg);
	snap = sm_store_acquire(f.st, 1);
	assert_non_null(snap);
	assert_ptr_equal(snap->source, &f.sources[1]);
	assert_false(snap->has_completed);
	assert_false(snap->has_succeeded);
	assert_int_equal(snap->n_series, 0);
	assert_string_equal(snap->last_error, "");
	assert_true(sm_snapshot_is_stale(snap, 0));
	sm_snapshot_unref(snap);
	sm_snapshot_unref(NULL);
	sm_store_free(f.st);
	sm_store_free(NULL);
}

static void test_publish_acquire(void **state)
{
	struct fixture f;
	struct sm_snapshot *a, *b;

	(void)state;
	fixture_init(&f, 1);
	assert_int_equal(sm_store_publish_success(f.st, 0, make_batch(3, 7), 1000, 1700000000000),
	                 0);
	a = sm_store_acquire(f.st, 0);
	assert_true(a->has_succeeded);
	assert_true(a->has_completed);
	assert_int_equal(a->n_series, 3);
	assert_int_equal(a->rounds_ok, 1);
	assert_int_equal(a->rounds_failed, 0);
	assert_int_equal(a->last_success_mono_ms, 1000);
	assert_int_equal(a->last_success_wall_ms, 1700000000000);
	assert_int_equal(a->last_attempt_mono_ms, 1000);
	assert_string_equal(a->last_error, "");
	assert_int_equal(a->series_dropped, 0);
	for (size_t i = 0; i < a->n_series; i++) {
		const struct sm_series *s = &a->series[i];

		assert_string_equal(s->metric, "m");
		assert_true(s->value == 7);
		assert_int_equal(s->timestamp_wall_ms, 1700000000000);
		assert_string_equal(label_value(s, "k"), "7");
	}
	/* The batch was freed by the publish; the object and object labels were copied. */
	{
		bool seen = false;

		for (size_t i = 0; i < a->n_series; i++) {
			const struct sm_series *s = &a->series[i];

			if (!s->object)
				continue;
			seen = true;
			assert_string_equal(s->object->resource, "deployments.apps");
			assert_string_equal(s->object->name, "worker");
			assert_null(s->object->namespace);
			assert_int_equal(s->n_object_labels, 1);
			assert_string_equal(s->object_labels[0].name, "app");
			assert_string_equal(s->object_labels[0].value, "web");
		}
		assert_true(seen);
	}

	/* A held snapshot is unchanged by later publishes. */
	assert_int_equal(sm_store_publish_success(f.st, 0, make_batch(1, 8), 2000, 1700000001000),
	                 0);
	b = sm_store_acquire(f.st, 0);
	assert_ptr_not_equal(a, b);
	assert_int_equal(a->n_series, 3);
	assert_true(a->series[2].value == 7);
	assert_int_equal(b->n_series, 1);
	assert_true(b->series[0].value == 8);
	assert_int_equal(b->rounds_ok, 2);
	sm_store_free(f.st); /* snapshots outlive the store that published them */
	assert_true(a->series[0].value == 7);
	sm_snapshot_unref(a);
	sm_snapshot_unref(b);
}

static void test_failure_keeps_series(void **state)
{
	struct fixture f;
	struct sm_snapshot *ok, *failed, *again;

	(void)state;
	fixture_init(&f, 1);
	assert_int_equal(sm_store_publish_success(f.st, 0, make_batch(2, 5), 1000, 9000), 0);
	ok = sm_store_acquire(f.st, 0);
	assert_int_equal(sm_store_publish_failure(f.st, 0, "Connection refused", 6000), 0);
	failed = sm_store_acquire(f.st, 0);

	/* Same series block, shared rather than copied. */
	assert_ptr_equal(failed->series, ok->series);
	assert_int_equal(failed->n_series, 2);
	assert_string_equal(failed->last_error, "Connection refused");
	assert_true(failed->has_succeeded);
	assert_true(failed->has_completed);
	assert_int_equal(failed->rounds_ok, 1);
	assert_int_equal(failed->rounds_failed, 1);
	assert_int_equal(failed->last_success_mono_ms, 1000);
	assert_int_equal(failed->last_success_wall_ms, 9000);
	assert_int_equal(failed->last_attempt_mono_ms, 6000);
	assert_string_equal(ok->last_error, "");

	/* The shared series outlive the snapshot that first published them. */
	sm_snapshot_unref(ok);
	assert_int_equal(sm_store_publish_failure(f.st, 0, "timeout", 11000), 0);
	again = sm_store_acquire(f.st, 0);
	assert_ptr_equal(again->series, failed->series);
	assert_string_equal(again->last_error, "timeout");
	assert_string_equal(failed->last_error, "Connection refused");
	assert_int_equal(again->rounds_failed, 2);
	sm_snapshot_unref(failed);
	assert_true(again->series[1].value == 5);
	assert_string_equal(label_value(&again->series[1], "k"), "5");

	/* A success after failures clears the error and replaces the series. */
	assert_int_equal(sm_store_publish_success(f.st, 0, make_batch(1, 6), 12000, 20000), 0);
	sm_snapshot_unref(again);
	again = sm_store_acquire(f.st, 0);
	assert_string_equal(again->last_error, "");
	assert_int_equal(again->rounds_ok, 2);
	assert_int_equal(again->rounds_failed, 2);
	assert_int_equal(again->n_series, 1);
	sm_snapshot_unref(again);
	sm_store_free(f.st);
}

/* The series a round could not read travel with its series: in the snapshot, kept by a failed
 * round, replaced by the next success. */
static void test_series_failures(void **state)
{
	struct sm_label labels[] = {{"queue", "emails"}};
	struct sm_series_in in = {.metric = "m", .labels = labels, .n_labels = 1};
	struct sm_batch *b = make_batch(1, 5);
	struct sm_snapshot *snap;
	struct fixture f;

	(void)state;
	fixture_init(&f, 1);
	snap = sm_store_acquire(f.st, 0);
	assert_null(snap->failures);
	assert_int_equal(snap->n_failures, 0);
	sm_snapshot_unref(snap);

	assert_int_equal(sm_batch_add_failure(b, &in, false, "key 'q:emails' is a string"), 0);
	assert_int_equal(sm_store_publish_success(f.st, 0, b, 1000, 9000), 0);
	assert_int_equal(sm_store_publish_failure(f.st, 0, "Connection refused", 2000), 0);
	snap = sm_store_acquire(f.st, 0);
	assert_int_equal(snap->n_series, 1);
	assert_int_equal(snap->n_failures, 1);
	assert_string_equal(snap->failures[0].error, "key 'q:emails' is a string");
	assert_string_equal(label_value(&snap->failures[0].series, "queue"), "emails");
	sm_snapshot_unref(snap);

	assert_int_equal(sm_store_publish_success(f.st, 0, make_batch(1, 6), 3000, 9000), 0);
	snap = sm_store_acquire(f.st, 0);
	assert_int_equal(snap->n_failures, 0);
	assert_null(snap->failures);
	sm_snapshot_unref(snap);
	sm_store_free(f.st);
}

static void test_failure_first(void **state)
{
	struct fixture f;
	struct sm_snapshot *snap;

	(void)state;
	fixture_init(&f, 1);
	assert_int_equal(sm_store_publish_failure(f.st, 0, "NOAUTH Authentication required.", 50),
	                 0);
	snap = sm_store_acquire(f.st, 0);
	assert_true(snap->has_completed);
	assert_false(snap->has_succeeded);
	assert_int_equal(snap->n_series, 0);
	assert_string_equal(snap->last_error, "NOAUTH Authentication required.");
	assert_true(sm_snapshot_is_stale(snap, 50));
	sm_snapshot_unref(snap);

	/* An empty error text still reads as an error. */
	assert_int_equal(sm_store_publish_failure(f.st, 0, "", 60), 0);
	snap = sm_store_acquire(f.st, 0);
	assert_string_not_equal(snap->last_error, "");
	sm_snapshot_unref(snap);
	sm_store_free(f.st);
}

static void test_staleness(void **state)
{
	struct fixture f;
	struct sm_snapshot *snap;

	(void)state;
	fixture_init(&f, 2);
	f.sources[1].max_age_ms = 0; /* falls back to 3 x interval */
	assert_int_equal(sm_store_publish_success(f.st, 0, make_batch(1, 1), 1000, 1), 0);
	assert_int_equal(sm_store_publish_success(f.st, 1, make_batch(1, 1), 1000, 1), 0);

	snap = sm_store_acquire(f.st, 0);
	assert_int_equal(sm_snapshot_max_age_ms(snap), 15000);
	assert_false(sm_snapshot_is_stale(snap, 1000));
	assert_false(sm_snapshot_is_stale(snap, 16000)); /* exactly max_age old: fresh */
	assert_true(sm_snapshot_is_stale(snap, 16001));
	sm_snapshot_unref(snap);

	/* A failure does not refresh: staleness counts from the last success. */
	assert_int_equal(sm_store_publish_failure(f.st, 0, "down", 15000), 0);
	snap = sm_store_acquire(f.st, 0);
	assert_true(sm_snapshot_is_stale(snap, 16001));
	sm_snapshot_unref(snap);

	f.sources[1].interval_ms = 2000;
	snap = sm_store_acquire(f.st, 1);
	assert_int_equal(sm_snapshot_max_age_ms(snap), 6000);
	assert_false(sm_snapshot_is_stale(snap, 7000));
	assert_true(sm_snapshot_is_stale(snap, 7001));
	sm_snapshot_unref(snap);
	assert_true(sm_snapshot_is_stale(NULL, 0));
	sm_store_free(f.st);
}

static void test_readiness(void **state)
{
	struct fixture f;
	struct sm_store *empty;
	struct sm_config none = {0};

	(void)state;
	fixture_init(&f, 3);
	assert_false(sm_store_is_ready(f.st));
	assert_int_equal(sm_store_publish_failure(f.st, 0, "refused", 1), 0);
	assert_false(sm_store_is_ready(f.st));
	assert_int_equal(sm_store_publish_success(f.st, 2, make_batch(0, 0), 1, 1), 0);
	assert_false(sm_store_is_ready(f.st));
	assert_int_equal(sm_store_publish_success(f.st, 1, make_batch(1, 0), 1, 1), 0);
	assert_true(sm_store_is_ready(f.st));
	sm_store_free(f.st);

	empty = sm_store_new(&none);
	assert_non_null(empty);
	assert_int_equal(sm_store_count(empty), 0);
	assert_true(sm_store_is_ready(empty));
	sm_store_free(empty);
}

static void test_dropped_and_invalid(void **state)
{
	struct fixture f;
	struct sm_batch *b;
	struct sm_snapshot *snap;
	struct sm_series_in in = {.metric = "m", .value = 1};

	(void)state;
	fixture_init(&f, 1);
	b = sm_batch_new(1);
	assert_non_null(b);
	assert_int_equal(sm_batch_add(b, &in), 0);
	assert_int_equal(sm_batch_add(b, &in), -E2BIG);
	assert_int_equal(sm_store_publish_success(f.st, 0, b, 1, 1), 0);
	snap = sm_store_acquire(f.st, 0);
	assert_int_equal(snap->n_series, 1);
	assert_int_equal(snap->series_dropped, 1);
	assert_int_equal(snap->series[0].n_labels, 0);
	sm_snapshot_unref(snap);

	/* Out-of-range index: -EINVAL, and the batch is still taken (LeakSanitizer checks). */
	assert_int_equal(sm_store_publish_success(f.st, 1, make_batch(2, 1), 1, 1), -EINVAL);
	assert_int_equal(sm_store_publish_failure(f.st, 1, "x", 1), -EINVAL);
	sm_store_free(f.st);
}

static void test_clocks(void **state)
{
	int64_t m1, m2, w;

	(void)state;
	m1 = sm_time_mono_ms();
	m2 = sm_time_mono_ms();
	w = sm_time_wall_ms();
	assert_true(m1 > 0);
	assert_true(m2 >= m1);
	assert_true(w > 1600000000000); /* after 2020 */
}

/* ---- stress: readers against a publishing writer ---- */

#define STRESS_ROUNDS  20000
#define STRESS_READERS 4
#define STRESS_SERIES  4

struct stress {
	struct sm_store *st;
	atomic_bool done;
	atomic_size_t reads;
	atomic_size_t bad; /* inconsistent snapshots seen */
};

/* Every series of a snapshot carries rounds_ok as its value and label; after a failure the
 * error text names rounds_failed. Readers check that, and that the counters never go back. */
static bool snapshot_consistent(const struct sm_snapshot *snap)
{
	char want[64];

	if (!snap->has_succeeded)
		return snap->n_series == 0 && snap->rounds_ok == 0;
	if (snap->n_series != STRESS_SERIES)
		return false;
	(void)snprintf(want, sizeof(want), "%llu", (unsigned long long)snap->rounds_ok);
	for (size_t i = 0; i < snap->n_series; i++) {
		const struct sm_series *s = &snap->series[i];
		const char *k = label_value(s, "k");

		if (s->value != (double)snap->rounds_ok || !k || strcmp(k, want) != 0)
			return false;
		if (s->timestamp_wall_ms != (int64_t)snap->rounds_ok)
			return false;
	}
	if (snap->last_error[0]) {
		(void)snprintf(want, sizeof(want), "failure %llu",
		               (unsigned long long)snap->rounds_failed);
		if (strcmp(snap->last_error, want) != 0)
			return false;
	}
	return true;
}

static void *stress_reader(void *arg)
{
	struct stress *s = arg;
	uint64_t last_ok = 0, last_failed = 0;

	while (!atomic_load(&s->done)) {
		struct sm_snapshot *snap = sm_store_acquire(s->st, 0);

		if (!snapshot_consistent(snap) || snap->rounds_ok < last_ok ||
		    snap->rounds_failed < last_failed)
			atomic_fetch_add(&s->bad, 1);
		last_ok = snap->rounds_ok;
		last_failed = snap->rounds_failed;
		sm_snapshot_unref(snap);
		atomic_fetch_add(&s->reads, 1);
	}
	return NULL;
}

static void test_stress(void **state)
{
	struct fixture f;
	struct stress s = {0};
	pthread_t readers[STRESS_READERS];
	uint64_t ok = 0, failed = 0;
	struct sm_snapshot *snap;

	(void)state;
	fixture_init(&f, 1);
	s.st = f.st;
	atomic_init(&s.done, false);
	for (size_t i = 0; i < STRESS_READERS; i++)
		assert_int_equal(pthread_create(&readers[i], NULL, stress_reader, &s), 0);

	for (size_t round = 0; round < STRESS_ROUNDS; round++) {
		if (round % 2 == 0) {
			ok++;
			assert_int_equal(
			    sm_store_publish_success(f.st, 0, make_batch(STRESS_SERIES, (double)ok),
			                             (int64_t)round, (int64_t)ok),
			    0);
		} else {
			char text[64];

			failed++;
			(void)snprintf(text, sizeof(text), "failure %llu",
			               (unsigned long long)failed);
			assert_int_equal(sm_store_publish_failure(f.st, 0, text, (int64_t)round),
			                 0);
		}
	}
	atomic_store(&s.done, true);
	for (size_t i = 0; i < STRESS_READERS; i++)
		assert_int_equal(pthread_join(readers[i], NULL), 0);

	snap = sm_store_acquire(f.st, 0);
	assert_int_equal(snap->rounds_ok, ok);
	assert_int_equal(snap->rounds_failed, failed);
	assert_true(snapshot_consistent(snap));
	sm_snapshot_unref(snap);
	print_message("stress: %zu reads during %d publishes\n", atomic_load(&s.reads),
	              STRESS_ROUNDS);
	assert_int_equal(atomic_load(&s.bad), 0);
	assert_true(atomic_load(&s.reads) > 0);
	sm_store_free(f.st);
}

/* A reload's new store takes over: kept slots start from the old snapshots (series shared,
 * counters and errors kept, the new config's source), new ones from scratch with history keys
 * never used; the generation goes on; an old store outlives its replacement in a live holder
 * while a request holds it. */
static void test_take_over(void **state)
{
	struct fixture old, next;
	struct sm_store_live *live;
	struct sm_store *held;
	struct sm_snapshot *a, *b;
	size_t from[3] = {SIZE_MAX, 0, SIZE_MAX};
	uint64_t gen;

	(void)state;
	fixture_init(&old, 2); /* jobs, app-db */
	assert_int_equal(sm_store_publish_success(old.st, 0, make_batch(3, 7), 1000, 5000), 0);
	assert_int_equal(sm_store_publish_failure(old.st, 0, "timeout", 2000), 0);
	assert_int_equal(sm_store_publish_success(old.st, 1, make_batch(1, 1), 1000, 5000), 0);
	gen = sm_store_generation(old.st);
	live = sm_store_live_new(old.st);
	assert_non_null(live);

	/* The new config: "jobs" first is the same source under a new index 1; 0 and 2 new. */
	fixture_init(&next, 3);
	next.sources[1].name = "jobs";
	next.sources[0].name = "other";
	assert_int_equal(sm_store_take_over(next.st, old.st, from), 0);
	assert_true(sm_store_generation(next.st) > gen);
	assert_true(sm_store_is_ready(next.st)); /* old was: every source completed a round */

	a = sm_store_acquire(old.st, 0);
	b = sm_store_acquire(next.st, 1);
	assert_ptr_equal(b->source, &next.sources[1]);
	assert_ptr_equal(b->series, a->series); /* shared, not copied */
	assert_int_equal(b->n_series, 3);
	assert_int_equal(b->rounds_ok, 1);
	assert_int_equal(b->rounds_failed, 1);
	assert_string_equal(b->last_error, "timeout");
	assert_true(b->last_error != a->last_error);
	assert_int_equal(b->last_success_mono_ms, a->last_success_mono_ms);
	sm_snapshot_unref(a);
	assert_int_equal(sm_store_history_key(next.st, 1), sm_store_history_key(old.st, 0));
	assert_true(sm_store_history_key(next.st, 0) >= 2);
	assert_true(sm_store_history_key(next.st, 2) >= 2);
	assert_true(sm_store_history_key(next.st, 0) != sm_store_history_key(next.st, 2));
	assert_int_equal(sm_store_history_key(next.st, 3), SIZE_MAX);
	a = sm_store_acquire(next.st, 0);
	assert_false(a->has_completed);
	assert_ptr_equal(a->source, &next.sources[0]);
	sm_snapshot_unref(a);

	/* A request holding the old store keeps it (and its snapshots) after the switch. */
	held = sm_store_live_acquire(live);
	assert_ptr_equal(held, old.st);
	sm_store_live_replace(live, next.st);
	sm_store_free(old.st); /* the creator's reference */
	a = sm_store_acquire(held, 0);
	assert_int_equal(a->n_series, 3);
	sm_store_unref(held); /* frees the old store; a and b stay valid */
	assert_int_equal(a->series[0].value, 7);
	sm_snapshot_unref(a);
	assert_int_equal(b->series[2].value, 7);
	sm_snapshot_unref(b);
	held = sm_store_live_acquire(live);
	assert_ptr_equal(held, next.st);
	sm_store_unref(held);
	sm_store_free(next.st);
	sm_store_live_free(live); /* the last reference */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_initial_snapshot),
	    cmocka_unit_test(test_publish_acquire),
	    cmocka_unit_test(test_failure_keeps_series),
	    cmocka_unit_test(test_series_failures),
	    cmocka_unit_test(test_failure_first),
	    cmocka_unit_test(test_staleness),
	    cmocka_unit_test(test_readiness),
	    cmocka_unit_test(test_dropped_and_invalid),
	    cmocka_unit_test(test_clocks),
	    cmocka_unit_test(test_stress),
	    cmocka_unit_test(test_take_over),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
