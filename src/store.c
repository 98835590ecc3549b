/* SPDX-License-Identifier: MIT */
/* The store: per source, the immutable reference-counted snapshot of its last round's series
 * and its health, swapped on every round; plus the two clocks everything uses. */
#include "scalemetrics/store.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scalemetrics/config.h"
#include "scalemetrics/history.h"
#include "scalemetrics/series.h"
#include "scalemetrics/series_index.h"

/*
 * Design
 *
 * Threads: one collector thread at a time publishes for a given source (the scheduler never
 * runs two rounds of one source concurrently, and publish serialises them anyway); any number
 * of serving threads acquire snapshots of any source.
 *
 * Objects:
 * - struct series_block: the series of one successful round, taken out of the collector's
 *   batch without copying (sm_batch_steal: the arena owns the array, labels and strings, and
 *   the failures: the series the round could not read),
 *   with the index over them (series_index.h, built by the publishing thread before any lock)
 *   and an atomic reference count. Consecutive snapshots share it: a failed round's
 *   snapshot references the previous block instead of copying series.
 * - struct snapshot: the public struct sm_snapshot (first member, so the public pointer is the
 *   private one) plus an atomic reference count, its block reference and its own error text.
 *   Never modified after publication.
 *
 * Locks: each slot has two mutexes.
 * - `lock` is held ONLY around "load the current pointer + increment its count" (acquire) and
 *   around "store the new pointer" (publish). Neither does I/O or allocation, so a reader
 *   waits at most for a few instructions, never for a collector's round. This is what makes
 *   acquire safe against a concurrent publish dropping the last reference: the publisher
 *   cannot drop the slot's reference to the old snapshot until it has swapped it under the
 *   lock, and a reader that loaded the old pointer under the lock has already taken its own
 *   reference by then. (A lock-free scheme needs hazard pointers or split counts for this;
 *   the mutex is simpler and its critical section is a handful of instructions.)
 * - `publish_lock` serialises publishers of one slot, so building a snapshot from the current
 *   one (counters, shared series) cannot lose an update. Readers never take it. Allocation
 *   happens before it is taken; under it only a few fields are filled in.
 *
 * Guarantees: a snapshot obtained from sm_store_acquire stays valid and unchanged until the
 * caller's sm_snapshot_unref, whatever is published meanwhile. The last unref (by a reader or
 * by the publisher that replaced it) frees the snapshot, and its block if no later snapshot
 * shares it.
 */

struct series_block {
	atomic_size_t refs;
	struct sm_series *series; /* stolen from the round's batch */
	size_t n_series;
	struct sm_series_arena *arena; /* owns series and everything they point to */
	struct sm_series_index *index; /* NULL: too few series to be worth it, or no memory */
	const struct sm_series_failure *failures; /* in the arena */
	size_t n_failures;
};

struct snapshot {
	struct sm_snapshot pub; /* first: sm_snapshot_unref casts back */
	atomic_size_t refs;
	struct series_block *block; /* referenced; NULL before the first success */
	char *error;                /* owned copy behind pub.last_error; NULL: "" */
};

struct slot {
	pthread_mutex_t lock;         /* only around the pointer load+ref and the swap */
	pthread_mutex_t publish_lock; /* serialises publishers of this slot */
	bool locks_ready;
	struct snapshot *current; /* the slot's own reference; guarded by lock */
	int64_t round_us;         /* noted for the next publish; guarded by publish_lock */
};

struct sm_store {
	const struct sm_config *cfg;
	size_t n_slots;
	struct slot *slots;
	atomic_uint_least64_t generation; /* bumped after every publish */
	struct sm_history *history;       /* borrowed; NULL: no history is recorded */
};

/* ---- series blocks ---- */

static void block_ref(struct series_block *b)
{
	if (b)
		atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

static void block_unref(struct series_block *b)
{
	if (!b)
		return;
	if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
		return;
	sm_series_index_free(b->index);
	sm_series_arena_free(b->arena);
	free(b);
}

/* Takes the batch's series without copying them, stamped with wall_ms. */
static struct series_block *block_from_batch(struct sm_batch *batch, int64_t wall_ms)
{
	struct series_block *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->series = sm_batch_steal(batch, &b->n_series, &b->arena);
	for (size_t i = 0; i < b->n_series; i++)
		b->series[i].timestamp_wall_ms = wall_ms;
	b->index = sm_series_index_build(b->series, b->n_series);
	b->failures = sm_series_arena_failures(b->arena, &b->n_failures);
	return b;
}

/* ---- snapshots ---- */

static struct snapshot *snapshot_new(const struct sm_source_config *source)
{
	struct snapshot *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	atomic_init(&s->refs, 1);
	s->pub.source = source;
	s->pub.last_error = "";
	return s;
}

static void snapshot_set_block(struct snapshot *s, struct series_block *b)
{
	s->block = b;
	s->pub.series = b ? b->series : NULL;
	s->pub.n_series = b ? b->n_series : 0;
	s->pub.index = b ? b->index : NULL;
	s->pub.failures = b ? b->failures : NULL;
	s->pub.n_failures = b ? b->n_failures : 0;
}

void sm_snapshot_unref(struct sm_snapshot *snap)
{
	struct snapshot *s = (struct snapshot *)snap;

	if (!s)
		return;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	block_unref(s->block);
	free(s->error);
	free(s);
}

int64_t sm_snapshot_max_age_ms(const struct sm_snapshot *snap)
{
	if (!snap || !snap->source)
		return 0;
	if (snap->source->max_age_ms > 0)
		return snap->source->max_age_ms;
	if (snap->source->interval_ms > 0)
		return 3 * snap->source->interval_ms; /* the documented default */
	return 0;
}

bool sm_snapshot_is_stale(const struct sm_snapshot *snap, int64_t now_mono_ms)
{
	int64_t max_age_ms = sm_snapshot_max_age_ms(snap);

	if (!snap || !snap->has_succeeded)
		return true;
	if (max_age_ms <= 0)
		return false;
	/* Exactly max_age old is still fresh: stale means older than max_age. */
	return now_mono_ms - snap->last_success_mono_ms > max_age_ms;
}

/* ---- the store ---- */

struct sm_store *sm_store_new(const struct sm_config *cfg)
{
	struct sm_store *st = NULL;
	size_t n = cfg ? cfg->n_sources : 0;

	st = calloc(1, sizeof(*st));
	if (!st)
		goto fail;
	st->cfg = cfg;
	atomic_init(&st->generation, 0);
	if (n) {
		st->slots = calloc(n, sizeof(*st->slots));
		if (!st->slots)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		struct slot *sl = &st->slots[i];

		sl->current = snapshot_new(&cfg->sources[i]);
		if (!sl->current)
			goto fail;
		if (pthread_mutex_init(&sl->lock, NULL) != 0)
			goto fail;
		if (pthread_mutex_init(&sl->publish_lock, NULL) != 0) {
			pthread_mutex_destroy(&sl->lock);
			goto fail;
		}
		sl->locks_ready = true;
	}
	st->n_slots = n;
	return st;

fail:
	sm_store_free(st);
	return NULL;
}

void sm_store_free(struct sm_store *st)
{
	if (!st)
		return;
	if (st->slots) {
		/* Half-built stores: calloc left unused slots zeroed. */
		for (size_t i = 0; i < (st->cfg ? st->cfg->n_sources : 0); i++) {
			struct slot *sl = &st->slots[i];

			sm_snapshot_unref(sl->current ? &sl->current->pub : NULL);
			if (sl->locks_ready) {
				pthread_mutex_destroy(&sl->lock);
				pthread_mutex_destroy(&sl->publish_lock);
			}
		}
	}
	free(st->slots);
	free(st);
}

size_t sm_store_count(const struct sm_store *st)
{
	return st ? st->n_slots : 0;
}

const struct sm_config *sm_store_config(const struct sm_store *st)
{
	return st ? st->cfg : NULL;
}

void sm_store_set_history(struct sm_store *st, struct sm_history *h)
{
	if (st)
		st->history = h;
}

struct sm_snapshot *sm_store_acquire(const struct sm_store *st, size_t idx)
{
	struct slot *sl;
	struct snapshot *s;

	assert(st && idx < st->n_slots);
	if (!st || idx >= st->n_slots)
		return NULL;
	sl = &st->slots[idx];
	(void)pthread_mutex_lock(&sl->lock);
	s = sl->current;
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	(void)pthread_mutex_unlock(&sl->lock);
	return &s->pub;
}

/* Installs next as the slot's snapshot and drops the slot's reference to the old one.
 * Called with publish_lock held. */
static void slot_swap(struct slot *sl, struct snapshot *next)
{
	struct snapshot *old;

	(void)pthread_mutex_lock(&sl->lock);
	old = sl->current;
	sl->current = next;
	(void)pthread_mutex_unlock(&sl->lock);
	sm_snapshot_unref(&old->pub);
}

int sm_store_publish_success(struct sm_store *st, size_t idx, struct sm_batch *batch,
                             int64_t mono_ms, int64_t wall_ms)
{
	struct series_block *block = NULL;
	struct snapshot *next = NULL;
	const struct snapshot *prev;
	struct slot *sl;
	int r;

	if (!st || idx >= st->n_slots || !batch) {
		r = -EINVAL;
		goto out;
	}
	sl = &st->slots[idx];

	/* Built before taking any lock. */
	block = block_from_batch(batch, wall_ms);
	next = snapshot_new(&st->cfg->sources[idx]);
	if (!block || !next) {
		r = -ENOMEM;
		goto out;
	}
	/* Best effort, under the history's own lock: a series it cannot keep only lacks a
	 * sparkline. */
	(void)sm_history_record(st->history, idx, block->series, block->n_series, mono_ms);

	(void)pthread_mutex_lock(&sl->publish_lock);
	prev = sl->current; /* only publishers change it, and we hold publish_lock */
	snapshot_set_block(next, block);
	block = NULL;
	next->pub.has_succeeded = true;
	next->pub.has_completed = true;
	next->pub.last_success_mono_ms = mono_ms;
	next->pub.last_success_wall_ms = wall_ms;
	next->pub.last_attempt_mono_ms = mono_ms;
	next->pub.rounds_ok = prev->pub.rounds_ok + 1;
	next->pub.rounds_failed = prev->pub.rounds_failed;
	next->pub.series_dropped = sm_batch_dropped(batch);
	next->pub.last_round_us = sl->round_us;
	sl->round_us = 0;
	slot_swap(sl, next);
	next = NULL;
	(void)pthread_mutex_unlock(&sl->publish_lock);
	atomic_fetch_add_explicit(&st->generation, 1, memory_order_release);
	r = 0;

out:
	sm_snapshot_unref(next ? &next->pub : NULL);
	block_unref(block);
	sm_batch_free(batch);
	return r;
}

int sm_store_publish_failure(struct sm_store *st, size_t idx, const char *error, int64_t mono_ms)
{
	struct snapshot *next = NULL;
	const struct snapshot *prev;
	char *text = NULL;
	struct slot *sl;
	int r;

	if (!st || idx >= st->n_slots) {
		r = -EINVAL;
		goto out;
	}
	sl = &st->slots[idx];

	next = snapshot_new(&st->cfg->sources[idx]);
	text = strdup(error && *error ? error : "unknown error");
	if (!next || !text) {
		r = -ENOMEM;
		goto out;
	}

	(void)pthread_mutex_lock(&sl->publish_lock);
	prev = sl->current;
	next->pub = prev->pub; /* success times, counters, series_dropped carry over */
	block_ref(prev->block);
	snapshot_set_block(next, prev->block);
	next->error = text;
	next->pub.last_error = text;
	text = NULL;
	next->pub.has_completed = true;
	next->pub.last_attempt_mono_ms = mono_ms;
	next->pub.rounds_failed = prev->pub.rounds_failed + 1;
	next->pub.last_round_us = sl->round_us;
	sl->round_us = 0;
	slot_swap(sl, next);
	next = NULL;
	(void)pthread_mutex_unlock(&sl->publish_lock);
	atomic_fetch_add_explicit(&st->generation, 1, memory_order_release);
	r = 0;

out:
	sm_snapshot_unref(next ? &next->pub : NULL);
	free(text);
	return r;
}

uint64_t sm_store_generation(const struct sm_store *st)
{
	return st ? atomic_load_explicit(&st->generation, memory_order_acquire) : 0;
}

int64_t sm_store_fresh_until_ms(const struct sm_store *st)
{
	int64_t until = INT64_MAX;

	for (size_t i = 0; st && i < st->n_slots; i++) {
		struct sm_snapshot *snap = sm_store_acquire(st, i);
		int64_t max_age = sm_snapshot_max_age_ms(snap);

		/* Stale or never run: stays so until the next publish. */
		if (snap->has_succeeded && max_age > 0 &&
		    snap->last_success_mono_ms + max_age < until)
			until = snap->last_success_mono_ms + max_age;
		sm_snapshot_unref(snap);
	}
	return until;
}

void sm_store_note_round_us(struct sm_store *st, size_t idx, int64_t duration_us)
{
	struct slot *sl;

	if (!st || idx >= st->n_slots)
		return;
	sl = &st->slots[idx];
	(void)pthread_mutex_lock(&sl->publish_lock);
	sl->round_us = duration_us;
	(void)pthread_mutex_unlock(&sl->publish_lock);
}

bool sm_store_is_ready(const struct sm_store *st)
{
	if (!st)
		return false;
	for (size_t i = 0; i < st->n_slots; i++) {
		struct sm_snapshot *snap = sm_store_acquire(st, i);
		bool done = snap->has_completed;

		sm_snapshot_unref(snap);
		if (!done)
			return false;
	}
	return true;
}

/* ---- clocks ---- */

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sm_time_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t sm_time_mono_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sm_time_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}
