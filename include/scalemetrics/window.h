/* SPDX-License-Identifier: MIT */
#ifndef SM_WINDOW_H
#define SM_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"

/* Windowed arithmetic on sampled series, as PromQL does it: rate/increase of counters,
 * histogram_quantile, and the average from _sum/_count. Pure functions. */

struct sm_window_point {
	int64_t t_ms; /* any monotonic timeline; points in increasing t order */
	double v;
};

/*
 * Per-second rate of a counter over the range [start_ms, end_ms], exactly like PromQL's
 * rate(): only points inside the range count; at least two are needed (-ENODATA otherwise).
 *
 * Counter resets: whenever a point is lower than the one before, the counter restarted and
 * the lower value is the whole increase since the restart (the previous value is added back),
 * so a restart never yields a negative rate nor a spike.
 *
 * Extrapolation: the increase between the first and last point is extrapolated to the range
 * edges, each side by the gap to the edge if that gap is under 1.1 x the average interval
 * between points, else by half an average interval (the series started or ended inside the
 * range). The start side is never extrapolated below zero: not further back than the point
 * where the counter, going back at its average slope, would be 0.
 *
 * Returns 0 and *ret (>= 0 for a counter that only grows or resets), -ENODATA, -EINVAL for
 * an empty range or unordered points. */
int sm_window_rate(const struct sm_window_point *pts, size_t n, int64_t start_ms, int64_t end_ms,
                   double *ret) SM_MUSTCHECK;

/* The increase of a counter across the points inside [start_ms, end_ms], with the same reset
 * handling and no extrapolation (last - first + corrections). Needs two points (-ENODATA).
 * Used for histogram buckets and _sum/_count, where only ratios matter. */
int sm_window_increase(const struct sm_window_point *pts, size_t n, int64_t start_ms,
                       int64_t end_ms, double *ret) SM_MUSTCHECK;

struct sm_window_bucket {
	double upper_bound; /* the le label; +Inf for the last */
	double count;       /* cumulative */
};

/*
 * PromQL's histogram_quantile(q, ...) over cumulative buckets (sorted in place by upper bound,
 * equal bounds merged by summing, counts forced monotonic). Linear interpolation inside the
 * bucket where rank q x total falls, assuming the lowest bucket starts at 0 (or is returned
 * as is when its bound is <= 0). If the rank falls in the +Inf bucket, the highest finite
 * bound is returned. Results: q < 0 gives -Inf, q > 1 gives +Inf.
 * Returns 0 and *ret, or -ENODATA: fewer than two buckets, no +Inf bucket, or no
 * observations (PromQL's NaN), -EINVAL for a NaN q. */
int sm_window_histogram_quantile(double q, struct sm_window_bucket *b, size_t n,
                                 double *ret) SM_MUSTCHECK;

/* sum_increase / count_increase; -ENODATA when count_increase is not > 0. */
int sm_window_average(double sum_increase, double count_increase, double *ret) SM_MUSTCHECK;

#endif
