/* SPDX-License-Identifier: MIT */
#ifndef SM_HISTORY_H
#define SM_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sm_series;

/* The last hour of values of each series, for the status page's sparklines. Bounded: at most
 * SM_HISTORY_POINTS points per series (6 bytes each) and max_series series; a series not
 * recorded for SM_HISTORY_SPAN_MS is forgotten.
 *
 * Resolution adapts: every recorded value is kept until a series has SM_HISTORY_POINTS
 * points; then the points are thinned to about half, and from then on a new point is started
 * only once `step` has passed since the previous one (until then the last point is
 * overwritten, so it always holds the latest value). The step at least doubles at each
 * thinning and stops growing once SM_HISTORY_POINTS points cover the hour: a source polled
 * every second shows its first rounds point by point, and its last hour at about 64 s.
 *
 * A series is identified by its source's key (the store's sm_store_history_key: the source's
 * index, kept by an unchanged source across config reloads), metric, metric labels and
 * described object (object labels, value and timestamp are not part of it).
 *
 * Thread-safe: one mutex; recording (collector threads) costs a hash lookup and a store per
 * series, with no allocation except for a series seen for the first time. */

#define SM_HISTORY_SPAN_MS            (60 * 60 * 1000)
#define SM_HISTORY_POINTS             60
#define SM_HISTORY_DEFAULT_MAX_SERIES 2000

struct sm_history;

struct sm_history_point {
	int64_t mono_ms; /* monotonic clock, to 100 ms */
	double value;    /* kept as a float: about 7 significant digits */
};

struct sm_history_stats {
	size_t n_series;   /* series with history now */
	size_t max_series; /* the cap */
	bool capped;       /* some series were refused for the cap in the last SPAN_MS */
	size_t bytes;      /* memory held, approximately */
};

/* max_series 0: SM_HISTORY_DEFAULT_MAX_SERIES. NULL: out of memory. */
struct sm_history *sm_history_new(size_t max_series);
void sm_history_free(struct sm_history *h);

/* Appends the value of each of series[0..n) of source source_idx, at now_mono_ms (which must
 * not go back in time), and forgets series not recorded for SM_HISTORY_SPAN_MS. h NULL: does
 * nothing. Returns how many series were recorded, or -ENOMEM when a new series could not be
 * stored (the others are recorded). Series beyond max_series are counted, not stored. */
int sm_history_record(struct sm_history *h, size_t source_idx, const struct sm_series *series,
                      size_t n, int64_t now_mono_ms);

/* Copies the points of one series no older than SM_HISTORY_SPAN_MS before now_mono_ms into
 * ret (room for cap points; SM_HISTORY_POINTS is always enough), oldest first. Returns the
 * number copied: 0 when no history is kept for the series or h is NULL. */
size_t sm_history_get(struct sm_history *h, size_t source_idx, const struct sm_series *s,
                      int64_t now_mono_ms, struct sm_history_point *ret, size_t cap);

/* h NULL: all zero. */
void sm_history_stats(struct sm_history *h, int64_t now_mono_ms, struct sm_history_stats *ret);

#endif
