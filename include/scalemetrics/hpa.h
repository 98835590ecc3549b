/* SPDX-License-Identifier: MIT */
#ifndef SM_HPA_H
#define SM_HPA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"

/* The HorizontalPodAutoscaler's replica arithmetic (autoscaling/v2), on milli-values as the
 * controller computes it (kube-controller-manager pkg/controller/podautoscaler,
 * replica_calculator.go and horizontal.go), for `scalemetrics explain`. Ratios are IEEE
 * doubles exactly as Go's float64, so boundary cases (a ratio of 1.1) come out the same.
 * Pure: no I/O, no logging. */

/* --horizontal-pod-autoscaler-tolerance default. */
#define SM_HPA_DEFAULT_TOLERANCE 0.1

enum sm_hpa_metric_type {
	SM_HPA_METRIC_CONTAINER_RESOURCE, /* "ContainerResource" */
	SM_HPA_METRIC_EXTERNAL,           /* "External" */
	SM_HPA_METRIC_OBJECT,             /* "Object" */
	SM_HPA_METRIC_PODS,               /* "Pods" */
	SM_HPA_METRIC_RESOURCE,           /* "Resource" */
	SM_HPA_METRIC_TYPE_MAX,
	SM_HPA_METRIC_TYPE_INVALID = -1,
};

enum sm_hpa_target_type {
	SM_HPA_TARGET_AVERAGE_VALUE, /* "AverageValue" */
	SM_HPA_TARGET_UTILIZATION,   /* "Utilization" */
	SM_HPA_TARGET_VALUE,         /* "Value" */
	SM_HPA_TARGET_TYPE_MAX,
	SM_HPA_TARGET_TYPE_INVALID = -1,
};

const char *sm_hpa_metric_type_to_string(enum sm_hpa_metric_type t); /* NULL if out of range */
enum sm_hpa_metric_type sm_hpa_metric_type_from_string(const char *s);
const char *sm_hpa_target_type_to_string(enum sm_hpa_target_type t);
enum sm_hpa_target_type sm_hpa_target_type_from_string(const char *s);

/* A Quantity string as the HPA sees it: value.MilliValue(), i.e. x 1000 rounded away from
 * zero ("1500u" -> 2, "1n" -> 1, "2.5" -> 2500). -EINVAL (syntax, message in reterr),
 * -ERANGE (does not fit an int64 of milli-units). */
int sm_hpa_milli_value(const char *quantity, int64_t *ret, struct sm_error *reterr) SM_MUSTCHECK;

/* Sum of n milli-values (what the HPA does with every item of an External metric).
 * -ERANGE on int64 overflow. n == 0 gives 0. */
int sm_hpa_sum_milli(const int64_t *values, size_t n, int64_t *ret) SM_MUSTCHECK;

/* One metric's proposal. */
struct sm_hpa_proposal {
	int32_t replicas;      /* the replica count this metric asks for */
	int64_t current_milli; /* what the HPA reports as the current value in its status:
	                        * the value (Object Value), the sum (External Value), the
	                        * per-pod average (Pods), ceil(value / current replicas) for
	                        * AverageValue of Object and External */
	double ratio;          /* usage ratio compared with 1.0 against the tolerance */
	bool within_tolerance; /* |1 - ratio| <= tolerance (the adjusted ratio when there is
	                        * one): the current count was kept */
	/* Pods metrics with missing or pending pods: the ratio recomputed with them filled
	 * in, over adjusted_pods pods (0: no adjustment was made). */
	size_t adjusted_pods;
	int64_t adjusted_milli;
	double adjusted_ratio;
	bool direction_reversed; /* the adjustment reversed the direction: count kept */
};

/* Target type Value (Object Value with the object's value, External Value with the sum):
 * GetObjectMetricReplicas / GetExternalMetricReplicas. ratio = usage / target; within the
 * tolerance the current count is kept, else ceil(ratio x ready_pods). With
 * current_replicas == 0 (scale-to-zero HPAs) the tolerance is not applied and the proposal is
 * ceil(ratio). -EINVAL: target <= 0 or negative counts; -ERANGE: proposal beyond int32. */
int sm_hpa_value_replicas(int32_t current_replicas, int32_t ready_pods, int64_t usage_milli,
                          int64_t target_milli, double tolerance,
                          struct sm_hpa_proposal *ret) SM_MUSTCHECK;

/* Target type AverageValue of an Object or External metric (usage = the object's value or
 * the sum of the external items): GetObjectPerPodMetricReplicas /
 * GetExternalPerPodMetricReplicas. ratio = usage / (target x current_replicas); outside the
 * tolerance the proposal is ceil(usage / target), else current_replicas.
 * current_milli = ceil(usage / current_replicas). -EINVAL, -ERANGE as above. */
int sm_hpa_average_value_replicas(int32_t current_replicas, int64_t usage_milli,
                                  int64_t target_milli, double tolerance,
                                  struct sm_hpa_proposal *ret) SM_MUSTCHECK;

/* A Pods metric (target AverageValue): GetMetricReplicas. values are the per-pod milli-values
 * of the n ready pods that reported one; missing_pods is the count of pods of the target
 * that reported none, ignored_pods the count of pending pods. The average is an integer
 * division, as the controller's. Missing pods count as using the target on a scale-down and
 * 0 on a scale-up; ignored pods as 0 on a scale-up; a change of direction caused by that keeps
 * the current count. -ENODATA when n == 0 ("did not receive metrics for any ready pods"),
 * -EINVAL, -ERANGE as above. */
int sm_hpa_pods_replicas(int32_t current_replicas, const int64_t *values, size_t n,
                         size_t missing_pods, size_t ignored_pods, int64_t target_milli,
                         double tolerance, struct sm_hpa_proposal *ret) SM_MUSTCHECK;

/* What the controller did with the proposals (horizontal.go reconcileAutoscaler). */
enum sm_hpa_outcome {
	SM_HPA_OUTCOME_DISABLED,    /* current replicas 0 and minReplicas > 0: not scaled */
	SM_HPA_OUTCOME_ABOVE_MAX,   /* current > maxReplicas: set to max, metrics not consulted */
	SM_HPA_OUTCOME_BELOW_MIN,   /* current < minReplicas: set to min, metrics not consulted */
	SM_HPA_OUTCOME_ALL_FAILED,  /* no metric could be computed: current count kept */
	SM_HPA_OUTCOME_FAILED_DOWN, /* some failed and the rest would scale down: kept */
	SM_HPA_OUTCOME_COMPUTED,    /* largest proposal, clamped */
	SM_HPA_OUTCOME_MAX,
};

/* Which bound applied to the largest proposal (the ScalingLimited condition's reasons). */
enum sm_hpa_limit {
	SM_HPA_LIMIT_NONE,           /* DesiredWithinRange */
	SM_HPA_LIMIT_TOO_FEW,        /* raised to minReplicas */
	SM_HPA_LIMIT_TOO_MANY,       /* lowered to maxReplicas */
	SM_HPA_LIMIT_SCALE_UP_LIMIT, /* lowered to max(2 x current, 4) (HPAs without behavior) */
	SM_HPA_LIMIT_MAX,
};

struct sm_hpa_bounds {
	int32_t min_replicas; /* spec.minReplicas, default 1 */
	int32_t max_replicas; /* spec.maxReplicas */
	bool has_behavior;    /* spec.behavior set: its policies replace the scale-up limit */
};

struct sm_hpa_decision {
	enum sm_hpa_outcome outcome;
	int32_t proposal; /* the largest valid proposal; -1 when none was consulted */
	size_t winner;    /* index of that proposal (the first of equals) */
	enum sm_hpa_limit limit;
	int32_t desired; /* the replica count the HPA sets */
};

/* proposals[i] < 0 means metric i failed. Scale-up and scale-down policies and stabilization
 * windows (which need the HPA's history) are not applied; without behavior the fixed
 * scale-up limit max(2 x current, 4) is. -EINVAL: negative current, min > max, max < 1. */
int sm_hpa_decide(int32_t current_replicas, const struct sm_hpa_bounds *bounds,
                  const int32_t *proposals, size_t n, struct sm_hpa_decision *ret) SM_MUSTCHECK;

#endif
