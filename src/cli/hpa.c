/* SPDX-License-Identifier: MIT */
/* The HorizontalPodAutoscaler's replica arithmetic on milli-values, step for step as the
 * controller's replica calculator and reconcile loop, so `explain` predicts what it does. */
#include "scalemetrics/hpa.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "scalemetrics/quantity.h"

static const char *const metric_type_names[] = {
    [SM_HPA_METRIC_CONTAINER_RESOURCE] = "ContainerResource",
    [SM_HPA_METRIC_EXTERNAL] = "External",
    [SM_HPA_METRIC_OBJECT] = "Object",
    [SM_HPA_METRIC_PODS] = "Pods",
    [SM_HPA_METRIC_RESOURCE] = "Resource",
};
static_assert(sizeof(metric_type_names) / sizeof(metric_type_names[0]) == SM_HPA_METRIC_TYPE_MAX,
              "one name per metric type");

static const char *const target_type_names[] = {
    [SM_HPA_TARGET_AVERAGE_VALUE] = "AverageValue",
    [SM_HPA_TARGET_UTILIZATION] = "Utilization",
    [SM_HPA_TARGET_VALUE] = "Value",
};
static_assert(sizeof(target_type_names) / sizeof(target_type_names[0]) == SM_HPA_TARGET_TYPE_MAX,
              "one name per target type");

const char *sm_hpa_metric_type_to_string(enum sm_hpa_metric_type t)
{
	if ((int)t < 0 || t >= SM_HPA_METRIC_TYPE_MAX)
		return NULL;
	return metric_type_names[t];
}

enum sm_hpa_metric_type sm_hpa_metric_type_from_string(const char *s)
{
	for (int i = 0; s && i < SM_HPA_METRIC_TYPE_MAX; i++)
		if (strcmp(s, metric_type_names[i]) == 0)
			return (enum sm_hpa_metric_type)i;
	return SM_HPA_METRIC_TYPE_INVALID;
}

const char *sm_hpa_target_type_to_string(enum sm_hpa_target_type t)
{
	if ((int)t < 0 || t >= SM_HPA_TARGET_TYPE_MAX)
		return NULL;
	return target_type_names[t];
}

enum sm_hpa_target_type sm_hpa_target_type_from_string(const char *s)
{
	for (int i = 0; s && i < SM_HPA_TARGET_TYPE_MAX; i++)
		if (strcmp(s, target_type_names[i]) == 0)
			return (enum sm_hpa_target_type)i;
	return SM_HPA_TARGET_TYPE_INVALID;
}

int sm_hpa_milli_value(const char *quantity, int64_t *ret, struct sm_error *reterr)
{
	long long milli;
	double v;
	int r;

	r = sm_quantity_parse(quantity, &v);
	if (r < 0) {
		sm_error_set(reterr, "'%s' is not a valid quantity", quantity ? quantity : "");
		return -EINVAL;
	}
	milli = sm_quantity_milli_value(v);
	if (milli == LLONG_MAX || milli == LLONG_MIN) {
		sm_error_set(reterr, "'%s' is too large for the HPA's milli-values", quantity);
		return -ERANGE;
	}
	*ret = milli;
	return 0;
}

int sm_hpa_sum_milli(const int64_t *values, size_t n, int64_t *ret)
{
	int64_t sum = 0;

	for (size_t i = 0; i < n; i++) {
		if (__builtin_add_overflow(sum, values[i], &sum))
			return -ERANGE;
	}
	*ret = sum;
	return 0;
}

/* int32(math.Ceil(x)), refusing what an int32 cannot hold (Go would wrap silently). */
static int ceil_replicas(double x, int32_t *ret)
{
	double c = ceil(x);

	if (isnan(c) || c > (double)INT32_MAX || c < (double)INT32_MIN)
		return -ERANGE;
	*ret = (int32_t)c;
	return 0;
}

static bool within(double ratio, double tolerance)
{
	return fabs(1.0 - ratio) <= tolerance;
}

int sm_hpa_value_replicas(int32_t current_replicas, int32_t ready_pods, int64_t usage_milli,
                          int64_t target_milli, double tolerance, struct sm_hpa_proposal *ret)
{
	struct sm_hpa_proposal p = {.current_milli = usage_milli};
	int r;

	if (target_milli <= 0 || current_replicas < 0 || ready_pods < 0)
		return -EINVAL;
	p.ratio = (double)usage_milli / (double)target_milli;
	if (current_replicas != 0) {
		if (within(p.ratio, tolerance)) {
			p.replicas = current_replicas;
			p.within_tolerance = true;
		} else {
			r = ceil_replicas(p.ratio * (double)ready_pods, &p.replicas);
			if (r < 0)
				return r;
		}
	} else {
		/* Scale from zero: neither ready pods nor the tolerance apply. */
		r = ceil_replicas(p.ratio, &p.replicas);
		if (r < 0)
			return r;
	}
	*ret = p;
	return 0;
}

int sm_hpa_average_value_replicas(int32_t current_replicas, int64_t usage_milli,
                                  int64_t target_milli, double tolerance,
                                  struct sm_hpa_proposal *ret)
{
	struct sm_hpa_proposal p = {.replicas = current_replicas};
	double per_pod;
	int r;

	if (target_milli <= 0 || current_replicas < 0)
		return -EINVAL;
	p.ratio = (double)usage_milli / ((double)target_milli * (double)current_replicas);
	/* With no replicas the ratio is +Inf (or NaN for no usage, which compares false):
	 * the controller then proposes ceil(usage / target), or keeps 0. */
	if (fabs(1.0 - p.ratio) > tolerance) {
		r = ceil_replicas((double)usage_milli / (double)target_milli, &p.replicas);
		if (r < 0)
			return r;
	} else {
		p.within_tolerance = !isnan(p.ratio);
	}
	if (current_replicas > 0) {
		per_pod = ceil((double)usage_milli / (double)current_replicas);
		if (per_pod >= 0x1p63 || per_pod < -0x1p63)
			return -ERANGE;
		p.current_milli = (int64_t)per_pod;
	}
	*ret = p;
	return 0;
}

/* metricsclient.GetMetricUsageRatio: integer average of the values, over the target. */
static int usage_ratio(const int64_t *values, size_t n, int64_t extra_each, size_t n_extra,
                       int64_t target_milli, double *ret_ratio, int64_t *ret_average)
{
	int64_t total = 0, extra, average;
	int r;

	r = sm_hpa_sum_milli(values, n, &total);
	if (r < 0)
		return r;
	if (n_extra > 0) {
		if (__builtin_mul_overflow(extra_each, (int64_t)n_extra, &extra) ||
		    __builtin_add_overflow(total, extra, &total))
			return -ERANGE;
	}
	average = total / (int64_t)(n + n_extra);
	*ret_ratio = (double)average / (double)target_milli;
	*ret_average = average;
	return 0;
}

int sm_hpa_pods_replicas(int32_t current_replicas, const int64_t *values, size_t n,
                         size_t missing_pods, size_t ignored_pods, int64_t target_milli,
                         double tolerance, struct sm_hpa_proposal *ret)
{
	struct sm_hpa_proposal p = {.replicas = current_replicas};
	double new_ratio;
	int64_t average, missing_value;
	size_t n_filled;
	bool rebalance_ignored;
	int r;

	if (target_milli <= 0 || current_replicas < 0 || n > INT32_MAX ||
	    missing_pods > INT32_MAX || ignored_pods > INT32_MAX)
		return -EINVAL;
	if (n == 0)
		return -ENODATA;
	r = usage_ratio(values, n, 0, 0, target_milli, &p.ratio, &p.current_milli);
	if (r < 0)
		return r;

	rebalance_ignored = ignored_pods > 0 && p.ratio > 1.0;
	if (!rebalance_ignored && missing_pods == 0) {
		if (within(p.ratio, tolerance)) {
			p.within_tolerance = true;
		} else {
			r = ceil_replicas(p.ratio * (double)n, &p.replicas);
			if (r < 0)
				return r;
		}
		*ret = p;
		return 0;
	}

	/* Missing pods use the target on a scale-down and nothing on a scale-up; unready pods
	 * nothing on a scale-up. Then the ratio is computed again over all of them. */
	missing_value = p.ratio < 1.0 ? target_milli : 0;
	/* Rebalancing only happens on a scale-up (ratio > 1), where missing pods count 0 too. */
	n_filled = missing_pods + (rebalance_ignored ? ignored_pods : 0);
	r = usage_ratio(values, n, missing_value, n_filled, target_milli, &new_ratio, &average);
	if (r < 0)
		return r;
	p.adjusted_pods = n + n_filled;
	p.adjusted_milli = average;
	p.adjusted_ratio = new_ratio;
	if (within(new_ratio, tolerance) || (p.ratio < 1.0 && new_ratio > 1.0) ||
	    (p.ratio > 1.0 && new_ratio < 1.0)) {
		p.within_tolerance = within(new_ratio, tolerance);
		p.direction_reversed = !p.within_tolerance;
		*ret = p;
		return 0;
	}
	r = ceil_replicas(new_ratio * (double)(n + n_filled), &p.replicas);
	if (r < 0)
		return r;
	*ret = p;
	return 0;
}

int sm_hpa_decide(int32_t current_replicas, const struct sm_hpa_bounds *bounds,
                  const int32_t *proposals, size_t n, struct sm_hpa_decision *ret)
{
	struct sm_hpa_decision d = {.proposal = -1, .desired = current_replicas};
	int32_t min = bounds->min_replicas, max = bounds->max_replicas, allowed_max, up_limit;
	size_t failed = 0;
	bool any = false;

	if (current_replicas < 0 || min < 0 || max < 1 || min > max)
		return -EINVAL;

	if (current_replicas == 0 && min != 0) {
		d.outcome = SM_HPA_OUTCOME_DISABLED;
		d.desired = 0;
		goto out;
	}
	if (current_replicas > max) {
		d.outcome = SM_HPA_OUTCOME_ABOVE_MAX;
		d.desired = max;
		goto out;
	}
	if (current_replicas < min) {
		d.outcome = SM_HPA_OUTCOME_BELOW_MIN;
		d.desired = min;
		goto out;
	}

	for (size_t i = 0; i < n; i++) {
		if (proposals[i] < 0) {
			failed++;
			continue;
		}
		if (!any || proposals[i] > d.proposal) {
			d.proposal = proposals[i];
			d.winner = i;
			any = true;
		}
	}
	if (!any) {
		d.outcome = SM_HPA_OUTCOME_ALL_FAILED;
		goto out;
	}
	if (failed > 0 && d.proposal < current_replicas) {
		d.outcome = SM_HPA_OUTCOME_FAILED_DOWN;
		goto out;
	}

	d.outcome = SM_HPA_OUTCOME_COMPUTED;
	allowed_max = max;
	d.limit = SM_HPA_LIMIT_TOO_MANY;
	if (!bounds->has_behavior) {
		/* calculateScaleUpLimit: max(2 x current, 4). */
		up_limit = current_replicas > INT32_MAX / 2 ? INT32_MAX : 2 * current_replicas;
		if (up_limit < 4)
			up_limit = 4;
		if (max > up_limit) {
			allowed_max = up_limit;
			d.limit = SM_HPA_LIMIT_SCALE_UP_LIMIT;
		}
	}
	if (d.proposal < min) {
		d.desired = min;
		d.limit = SM_HPA_LIMIT_TOO_FEW;
	} else if (d.proposal > allowed_max) {
		d.desired = allowed_max;
	} else {
		d.desired = d.proposal;
		d.limit = SM_HPA_LIMIT_NONE;
	}
out:
	*ret = d;
	return 0;
}
