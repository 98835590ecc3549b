/* SPDX-License-Identifier: MIT */
#ifndef SM_STORE_H
#define SM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"

struct sm_batch;
struct sm_config;
struct sm_history;
struct sm_series;
struct sm_series_failure;
struct sm_series_index;
struct sm_source_config;

/* Per source, an immutable reference-counted snapshot of its series plus its health.
 * Publishing is one atomic pointer swap; readers take a reference and never wait on a
 * collector's I/O. */

struct sm_snapshot {
	/* Read-only after publication. */
	const struct sm_source_config *source; /* borrowed from the config */
	const struct sm_series *series;        /* from the last successful round */
	size_t n_series;
	const struct sm_series_index *index; /* over series; NULL: scan them (series-index.h) */
	/* Series the last successful round could not read (series.h), in the order the
	 * collector found them; few, so queries scan them. */
	const struct sm_series_failure *failures;
	size_t n_failures;
	bool has_succeeded;           /* any round ever succeeded */
	bool has_completed;           /* any round ever finished, success or failure */
	int64_t last_success_mono_ms; /* monotonic clock; valid if has_succeeded */
	int64_t last_success_wall_ms;
	int64_t last_attempt_mono_ms;
	const char *last_error; /* "" when the last round succeeded */
	uint64_t rounds_ok;
	uint64_t rounds_failed;
	size_t series_dropped; /* cut by max_series in the last successful round */
	int64_t last_round_us; /* how long the last round took (success or failure); 0: not noted */
};

struct sm_store;

/* One slot per config source, in config order. The store borrows cfg, which must outlive
 * every reference to the store and to its snapshots. */
struct sm_store *sm_store_new(const struct sm_config *cfg);
/* Stores are reference-counted (atomically): sm_store_new returns the first reference,
 * sm_store_free drops it like sm_store_unref, and the last unref frees the store (snapshots
 * still referenced stay valid). All accept NULL; sm_store_ref returns st. */
void sm_store_free(struct sm_store *st);
struct sm_store *sm_store_ref(struct sm_store *st);
void sm_store_unref(struct sm_store *st);
size_t sm_store_count(const struct sm_store *st);
/* The config the store was made with (borrowed), for the query module. */
const struct sm_config *sm_store_config(const struct sm_store *st);
/* From now on every successful publish records its series' values in h (history.h), before
 * the swap and outside the store's locks. h is borrowed and must outlive the store; NULL
 * stops recording. Not synchronised: call it before the collectors start. */
void sm_store_set_history(struct sm_store *st, struct sm_history *h);

/* Takes ownership of batch (frees it). Series timestamps are set to wall_ms. */
int sm_store_publish_success(struct sm_store *st, size_t idx, struct sm_batch *batch,
                             int64_t mono_ms, int64_t wall_ms) SM_MUSTCHECK;
/* Keeps the previous series (they become stale with age), records error text. */
int sm_store_publish_failure(struct sm_store *st, size_t idx, const char *error,
                             int64_t mono_ms) SM_MUSTCHECK;
/* Notes how long the round about to be published took: the next sm_store_publish_success or
 * _failure of idx copies it into its snapshot's last_round_us (a snapshot is immutable once
 * published, and this keeps the publish signatures as they are). Called by the thread that
 * ran the round, before publishing it; rounds not noted publish 0. */
void sm_store_note_round_us(struct sm_store *st, size_t idx, int64_t duration_us);

/* Returns a referenced snapshot (never NULL: an empty "never ran" one before the first
 * round; idx must be < sm_store_count). Thread-safe; pair with sm_snapshot_unref. */
struct sm_snapshot *sm_store_acquire(const struct sm_store *st, size_t idx);
void sm_snapshot_unref(struct sm_snapshot *snap);

/* Bumped after every publish (success or failure), so anything derived from the store's
 * contents stays right while the generation is unchanged, up to sm_store_fresh_until_ms. */
uint64_t sm_store_generation(const struct sm_store *st);
/* The last monotonic time at which every source that is fresh now is still fresh
 * (sm_snapshot_is_stale), INT64_MAX when none turns stale without a publish. */
int64_t sm_store_fresh_until_ms(const struct sm_store *st);

/* True once every source has completed a first round (success or failure). */
bool sm_store_is_ready(const struct sm_store *st);

/* Stale: never succeeded, or now - last_success > source->max_age_ms. */
bool sm_snapshot_is_stale(const struct sm_snapshot *snap, int64_t now_mono_ms);
/* The max_age that sm_snapshot_is_stale applies (3 x interval when the source has none);
 * 0: never stale once it has succeeded. */
int64_t sm_snapshot_max_age_ms(const struct sm_snapshot *snap);

/* The key under which slot idx's series are recorded in the history (history.h): its index
 * for a store from sm_store_new, kept by a source across reloads (sm_store_take_over).
 * SIZE_MAX when idx is out of range. */
size_t sm_store_history_key(const struct sm_store *st, size_t idx);

/* Reloads. st, made by sm_store_new for the new config and not yet seen by any other
 * thread, takes over from prev, the store of the running config: for each slot i with
 * from[i] != SIZE_MAX (an unchanged source, sm_config_match_sources), its snapshot becomes a
 * copy of prev's current snapshot of slot from[i] (the same series, health and counters, for
 * st's source) and its history key stays; other slots keep their "never ran" snapshot and
 * get history keys never used before. st's generation continues past prev's, and st counts
 * as ready if prev was. Publishing to those slots of prev must be held off meanwhile (the
 * scheduler does). 0 or -ENOMEM (st half taken over: free it). */
int sm_store_take_over(struct sm_store *st, const struct sm_store *prev,
                       const size_t *from) SM_MUSTCHECK;

/* The store the server answers from, replaced whole by a reload. Thread-safe. */
struct sm_store_live;
/* Takes a reference to st. NULL: out of memory. */
struct sm_store_live *sm_store_live_new(struct sm_store *st);
void sm_store_live_free(struct sm_store_live *l);
/* A referenced store (pair with sm_store_unref): the current one. A lock is held only for
 * the load and the reference, never while a store is built or freed. */
struct sm_store *sm_store_live_acquire(struct sm_store_live *l);
/* Makes st (a new reference is taken) the current store; drops the reference to the old one,
 * which is freed once no request holds it any more. */
void sm_store_live_replace(struct sm_store_live *l, struct sm_store *st);

#endif
