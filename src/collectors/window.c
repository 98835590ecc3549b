/* SPDX-License-Identifier: MIT */
/* Windowed arithmetic over sampled series with PromQL's semantics: rate() with counter resets
 * and extrapolation, increase without it, histogram_quantile(), averages from _sum/_count. */
#include "scalemetrics/window.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* The points inside [start, end]: *ret_first and the count. */
static int range_points(const struct sm_window_point *pts, size_t n, int64_t start_ms,
                        int64_t end_ms, size_t *ret_first, size_t *ret_n)
{
	size_t first = 0, count = 0;

	if (start_ms >= end_ms || (n && !pts))
		return -EINVAL;
	for (size_t i = 1; i < n; i++)
		if (pts[i].t_ms <= pts[i - 1].t_ms)
			return -EINVAL;
	while (first < n && pts[first].t_ms < start_ms)
		first++;
	while (first + count < n && pts[first + count].t_ms <= end_ms)
		count++;
	if (count < 2)
		return -ENODATA;
	*ret_first = first;
	*ret_n = count;
	return 0;
}

/* last - first, plus every value lost to a reset. */
static double increase_of(const struct sm_window_point *p, size_t n)
{
	double inc = p[n - 1].v - p[0].v;

	for (size_t i = 1; i < n; i++)
		if (p[i].v < p[i - 1].v)
			inc += p[i - 1].v;
	return inc;
}

int sm_window_increase(const struct sm_window_point *pts, size_t n, int64_t start_ms,
                       int64_t end_ms, double *ret)
{
	size_t first, count;
	int r = range_points(pts, n, start_ms, end_ms, &first, &count);

	if (r < 0)
		return r;
	*ret = increase_of(pts + first, count);
	return 0;
}

/* PromQL extrapolatedRate (promql/functions.go) with isCounter and isRate set. */
int sm_window_rate(const struct sm_window_point *pts, size_t n, int64_t start_ms, int64_t end_ms,
                   double *ret)
{
	const struct sm_window_point *p;
	double result, to_start, to_end, sampled, average, threshold, interval;
	size_t first, count;
	int r = range_points(pts, n, start_ms, end_ms, &first, &count);

	if (r < 0)
		return r;
	p = pts + first;
	result = increase_of(p, count);
	to_start = (double)(p[0].t_ms - start_ms) / 1000.0;
	to_end = (double)(end_ms - p[count - 1].t_ms) / 1000.0;
	sampled = (double)(p[count - 1].t_ms - p[0].t_ms) / 1000.0;
	average = sampled / (double)(count - 1);

	if (result > 0 && p[0].v >= 0) {
		/* Not back past the point where the counter would have been zero. */
		double to_zero = sampled * (p[0].v / result);

		if (to_zero < to_start)
			to_start = to_zero;
	}
	threshold = average * 1.1;
	interval = sampled;
	interval += to_start < threshold ? to_start : average / 2;
	interval += to_end < threshold ? to_end : average / 2;
	result = result * (interval / sampled);
	*ret = result / ((double)(end_ms - start_ms) / 1000.0);
	return 0;
}

static int cmp_bucket(const void *a, const void *b)
{
	const struct sm_window_bucket *x = a, *y = b;

	return (x->upper_bound > y->upper_bound) - (x->upper_bound < y->upper_bound);
}

/* PromQL bucketQuantile (promql/quantile.go). */
int sm_window_histogram_quantile(double q, struct sm_window_bucket *b, size_t n, double *ret)
{
	double observations, rank, start, end, count;
	size_t m = 0, i;

	if (isnan(q))
		return -EINVAL;
	if (q < 0) {
		*ret = -INFINITY;
		return 0;
	}
	if (q > 1) {
		*ret = INFINITY;
		return 0;
	}
	if (n < 2 || !b)
		return -ENODATA;
	for (i = 0; i < n; i++)
		if (isnan(b[i].upper_bound) || isnan(b[i].count))
			return -ENODATA;
	qsort(b, n, sizeof(*b), cmp_bucket);
	if (!isinf(b[n - 1].upper_bound) || b[n - 1].upper_bound < 0)
		return -ENODATA;
	/* Coalesce equal bounds (the same le written differently, "1" and "1.0"). */
	for (i = 0; i < n; i++) {
		if (m > 0 && b[m - 1].upper_bound == b[i].upper_bound)
			b[m - 1].count += b[i].count;
		else
			b[m++] = b[i];
	}
	if (m < 2)
		return -ENODATA;
	/* Force monotonic cumulative counts: a scrape can catch buckets mid-update, and
	 * deltas of independently reset buckets can disagree slightly. */
	for (i = 1; i < m; i++)
		if (b[i].count < b[i - 1].count)
			b[i].count = b[i - 1].count;
	observations = b[m - 1].count;
	if (!(observations > 0))
		return -ENODATA;
	rank = q * observations;
	for (i = 0; i < m - 1; i++)
		if (b[i].count >= rank)
			break;
	if (i == m - 1) {
		*ret = b[m - 2].upper_bound;
		return 0;
	}
	if (i == 0 && b[0].upper_bound <= 0) {
		*ret = b[0].upper_bound;
		return 0;
	}
	start = 0;
	end = b[i].upper_bound;
	count = b[i].count;
	if (i > 0) {
		start = b[i - 1].upper_bound;
		count -= b[i - 1].count;
		rank -= b[i - 1].count;
	}
	*ret = start + (end - start) * (rank / count);
	return 0;
}

int sm_window_average(double sum_increase, double count_increase, double *ret)
{
	if (!(count_increase > 0) || isnan(sum_increase))
		return -ENODATA;
	*ret = sum_increase / count_increase;
	return 0;
}
