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
#include "scalemetrics/series-index.h"
#include "scalemetrics/series.h"

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
 *   with the index over them (series-index.h, built by the publishing thread before any lock)
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
 *
 * Reloads: a store belongs to one config. A reload makes a new store for the new config and
 * sm_store_take_over() fills the slots of the sources that did not change with a copy of
 * their current snapshot (same block, same health and counters, the new config's source),
 * while the scheduler holds off their publishers; the generation goes on from the old
 * store's. The store itself is reference-counted: the server's sm_store_live hands each
 * request a reference to the current store, so a request answers from one store (and so one
 * config) from start to end, and an old store is freed by the last request that used it.
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
	atomic_size_t refs;
	const struct sm_config *cfg;
	size_t n_slots;
	struct slot *slots;
	size_t *history_keys;             /* per slot: the source's key in the history */
	size_t next_history_key;          /* the key a source new in a successor gets */
	atomic_uint_least64_t generation; /* bumped after every publish */
	struct sm_history *history;       /* borrowed; NULL: no history is recorded */
	bool was_ready; /* the store it took over from was ready (sm_store_take_over) */
};

/* The store the server answers from; replaced whole by a reload. */
struct sm_store_live {
	pthread_mutex_t lock; /* only around "load the pointer + ref" and the replacement */
	struct sm_store *current;
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
	atomic_init(&st->refs, 1);
	st->cfg = cfg;
	atomic_init(&st->generation, 0);
	if (n) {
		st->slots = calloc(n, sizeof(*st->slots));
		st->history_keys = calloc(n, sizeof(*st->history_keys));
		if (!st->slots || !st->history_keys)
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
		st->history_keys[i] = i;
	}
	st->n_slots = n;
	st->next_history_key = n;
	return st;

fail:
	sm_store_free(st);
	return NULL;
}

struct sm_store *sm_store_ref(struct sm_store *st)
{
	if (st)
		atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
	return st;
}

void sm_store_unref(struct sm_store *st)
{
	if (!st)
		return;
	if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1)
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
	free(st->history_keys);
	free(st);
}

void sm_store_free(struct sm_store *st)
{
	sm_store_unref(st);
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

/* The end of every publish, under sl->publish_lock (released here): next takes the round's
 * time and becomes current, and the generation moves so cached answers are rebuilt. */
static void publish_unlock(struct sm_store *st, struct slot *sl, struct snapshot *next)
{
	next->pub.last_round_us = sl->round_us;
	sl->round_us = 0;
	slot_swap(sl, next);
	(void)pthread_mutex_unlock(&sl->publish_lock);
	atomic_fetch_add_explicit(&st->generation, 1, memory_order_release);
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
	(void)sm_history_record(st->history, st->history_keys[idx], block->series, block->n_series,
	                        mono_ms);

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
	publish_unlock(st, sl, next);
	next = NULL;
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
	publish_unlock(st, sl, next);
	next = NULL;
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
	if (st->was_ready)
		return true;
	for (size_t i = 0; i < st->n_slots; i++) {
		struct sm_snapshot *snap = sm_store_acquire(st, i);
		bool done = snap->has_completed;

		sm_snapshot_unref(snap);
		if (!done)
			return false;
	}
	return true;
}

size_t sm_store_history_key(const struct sm_store *st, size_t idx)
{
	return st && idx < st->n_slots ? st->history_keys[idx] : SIZE_MAX;
}

/* ---- reloads ---- */

/* Turns st's fresh slot snapshot s into a copy of prev's, for st's own source. s is not
 * published yet (st is not), so nobody else can see it change. */
static int adopt(struct snapshot *s, const struct snapshot *prev)
{
	const struct sm_source_config *source = s->pub.source;
	char *text = NULL;

	if (prev->error) {
		text = strdup(prev->error);
		if (!text)
			return -ENOMEM;
	}
	s->pub = prev->pub;
	s->pub.source = source;
	block_ref(prev->block);
	snapshot_set_block(s, prev->block);
	s->error = text;
	s->pub.last_error = text ? text : "";
	return 0;
}

int sm_store_take_over(struct sm_store *st, const struct sm_store *prev, const size_t *from)
{
	size_t key = prev->next_history_key;
	int r;

	for (size_t i = 0; i < st->n_slots; i++) {
		struct sm_snapshot *old;

		if (from[i] == SIZE_MAX || from[i] >= prev->n_slots)
			continue;
		old = sm_store_acquire(prev, from[i]);
		r = adopt(st->slots[i].current, (const struct snapshot *)old);
		sm_snapshot_unref(old);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < st->n_slots; i++)
		st->history_keys[i] = from[i] == SIZE_MAX || from[i] >= prev->n_slots
		                          ? key++
		                          : prev->history_keys[from[i]];
	st->next_history_key = key;
	st->was_ready = sm_store_is_ready(prev);
	/* Past every generation prev has had, so no answer kept for prev is reused for st. */
	atomic_store_explicit(&st->generation, sm_store_generation(prev) + 1, memory_order_release);
	return 0;
}

struct sm_store_live *sm_store_live_new(struct sm_store *st)
{
	struct sm_store_live *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	if (pthread_mutex_init(&l->lock, NULL) != 0) {
		free(l);
		return NULL;
	}
	l->current = sm_store_ref(st);
	return l;
}

void sm_store_live_free(struct sm_store_live *l)
{
	if (!l)
		return;
	sm_store_unref(l->current);
	(void)pthread_mutex_destroy(&l->lock);
	free(l);
}

struct sm_store *sm_store_live_acquire(struct sm_store_live *l)
{
	struct sm_store *st;

	(void)pthread_mutex_lock(&l->lock);
	st = sm_store_ref(l->current);
	(void)pthread_mutex_unlock(&l->lock);
	return st;
}

void sm_store_live_replace(struct sm_store_live *l, struct sm_store *st)
{
	struct sm_store *old;

	(void)sm_store_ref(st);
	(void)pthread_mutex_lock(&l->lock);
	old = l->current;
	l->current = st;
	(void)pthread_mutex_unlock(&l->lock);
	sm_store_unref(old);
}
