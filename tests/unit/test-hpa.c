/* SPDX-License-Identifier: MIT */
/* The HPA replica arithmetic against the Kubernetes documentation's worked examples and the
 * cases of the controller's replica_calculator_test.go (custom and external metrics). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/error.h"
#include "scalemetrics/hpa.h"

#define TOL SM_HPA_DEFAULT_TOLERANCE

static void expect_proposal(const char *name, int r, const struct sm_hpa_proposal *p,
                            int32_t replicas, int64_t current_milli, bool within)
{
	if (r != 0)
		fail_msg("%s: returned %d", name, r);
	if (p->replicas != replicas)
		fail_msg("%s: %d replicas, expected %d (ratio %.17g)", name, p->replicas, replicas,
		         p->ratio);
	if (p->current_milli != current_milli)
		fail_msg("%s: current value %lld, expected %lld", name, (long long)p->current_milli,
		         (long long)current_milli);
	if (p->within_tolerance != within)
		fail_msg("%s: within_tolerance %d, expected %d", name, p->within_tolerance, within);
}

/* ---- Target type Value: Object Value and External Value (sum) ---- */

struct value_case {
	const char *name;
	int32_t current, ready;
	int64_t usage, target;
	int32_t expect;
	bool within;
};

static const struct value_case value_cases[] = {
    /* kubernetes.io HPA docs: "if the current metric value is 200m, and the desired value
     * is 100m, the number of replicas will be doubled". */
    {"docs: 200m vs 100m doubles", 3, 3, 200, 100, 6, false},
    /* "If the current value is instead 50m, we'll halve the number of replicas". */
    {"docs: 50m vs 100m halves", 4, 4, 50, 100, 2, false},
    /* "within a globally-configurable tolerance, 0.1 by default": no change. */
    {"docs: 105m vs 100m within tolerance", 4, 4, 105, 100, 4, true},
    {"TestReplicaCalcScaleUpCMObject", 3, 3, 20000, 15000, 4, false},
    {"TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods", 3, 1, 50000, 10000, 5, false},
    {"TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods", 3, 1, 8600, 4400, 2, false},
    {"TestReplicaCalcScaleDownCMObject", 5, 5, 12000, 20000, 3, false},
    {"TestReplicaCalcScaleDownCMExternal", 5, 5, 8600, 14334, 3, false},
    {"TestReplicaCalcToleranceCMObject", 3, 3, 20666, 20000, 3, true},
    {"TestReplicaCalcToleranceCMExternal", 3, 3, 8600, 8888, 3, true},
    /* float64: |1 - 0.9| = 0.09999999999999998 <= 0.1, kept; |1 - 1.1| =
     * 0.10000000000000009 > 0.1, so 1.1 already scales (ceil(1.1 x 10) = 11). */
    {"tolerance boundary 0.9 keeps", 10, 10, 90000, 100000, 10, true},
    {"tolerance boundary 1.1 scales", 10, 10, 110000, 100000, 11, false},
    {"just inside 1.1 keeps", 10, 10, 109999, 100000, 10, true},
    {"just outside 0.9 scales", 10, 10, 89999, 100000, 9, false},
    {"usage 0 proposes 0 (clamped later)", 4, 4, 0, 1000, 0, false},
    {"scale from zero ignores tolerance", 0, 0, 2500, 1000, 3, false},
    {"scale from zero, nothing to do", 0, 0, 0, 1000, 0, false},
};

static void test_value_replicas(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++) {
		const struct value_case *c = &value_cases[i];
		struct sm_hpa_proposal p = {0};
		int r = sm_hpa_value_replicas(c->current, c->ready, c->usage, c->target, TOL, &p);

		expect_proposal(c->name, r, &p, c->expect, c->usage, c->within);
	}
}

/* ---- Target type AverageValue of Object and External metrics ---- */

struct average_case {
	const char *name;
	int32_t current;
	int64_t usage, target;
	int32_t expect;
	int64_t per_pod;
	bool within;
};

static const struct average_case average_cases[] = {
    {"TestReplicaCalcScaleUpCMPerPodObject", 3, 20000, 5000, 4, 6667, false},
    {"TestReplicaCalcTolerancePerPodCMObject", 4, 20166, 5000, 4, 5042, true},
    {"TestReplicaCalcScaleDownPerPodCMObject", 5, 6000, 2000, 3, 1200, false},
    {"TestReplicaCalcScaleUpPerPodCMExternal", 3, 8600, 2150, 4, 2867, false},
    {"TestReplicaCalcTolerancePerPodCMExternal", 3, 8600, 2900, 3, 2867, true},
    {"TestReplicaCalcScaleDownPerPodCMExternal", 5, 8600, 2867, 3, 1720, false},
    /* kubernetes.io HPA walkthrough: queue_messages_ready with averageValue 30; a backlog
     * of 120 on 2 replicas asks for 120 / 30 = 4. */
    {"docs: queue 120 at averageValue 30 on 2 replicas", 2, 120000, 30000, 4, 60000, false},
    {"empty queue asks for 0 (clamped later)", 3, 0, 30000, 0, 0, false},
    {"per-pod boundary 0.9 keeps", 10, 270000, 30000, 10, 27000, true},
};

static void test_average_value_replicas(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(average_cases) / sizeof(average_cases[0]); i++) {
		const struct average_case *c = &average_cases[i];
		struct sm_hpa_proposal p = {0};
		int r = sm_hpa_average_value_replicas(c->current, c->usage, c->target, TOL, &p);

		expect_proposal(c->name, r, &p, c->expect, c->per_pod, c->within);
	}
}

/* ---- Pods metrics ---- */

struct pods_case {
	const char *name;
	int32_t current;
	int64_t values[8];
	size_t n, missing, ignored;
	int64_t target;
	int32_t expect;
	int64_t average;
	bool within;
};

static const struct pods_case pods_cases[] = {
    {"TestReplicaCalcScaleUpCM", 3, {20000, 10000, 30000}, 3, 0, 0, 15000, 4, 20000, false},
    {"TestReplicaCalcScaleDownCM",
     5,
     {12000, 12000, 12000, 12000, 12000},
     5,
     0,
     0,
     20000,
     3,
     12000,
     false},
    {"TestReplicaCalcToleranceCM", 3, {20000, 21000, 21000}, 3, 0, 0, 20000, 3, 20666, true},
    /* Readiness only matters for CPU: unready pods with a custom metric count. */
    {"TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale",
     3,
     {50000, 10000, 30000},
     3,
     0,
     0,
     15000,
     6,
     30000,
     false},
    {"TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown",
     3,
     {50000, 15000, 30000},
     3,
     0,
     0,
     15000,
     7,
     31666,
     false},
    {"TestReplicaCalcScaleUpCMExternal (pods)", 1, {8600}, 1, 0, 0, 4400, 2, 8600, false},
    /* Missing pods: the target on a scale-down, 0 on a scale-up. */
    {"missing pods on a scale-down count as the target",
     4,
     {500, 500},
     2,
     2,
     0,
     1000,
     3,
     500,
     false},
    {"missing pods on a scale-up count as 0", 4, {3000, 3000}, 2, 2, 0, 1000, 6, 3000, false},
    {"missing pods that reverse the direction keep the count",
     3,
     {1200},
     1,
     2,
     0,
     1000,
     3,
     1200,
     false},
    {"pending pods count as 0 on a scale-up", 3, {3000, 3000}, 2, 0, 1, 1000, 6, 3000, false},
    {"pending pods ignored on a scale-down", 3, {500, 500}, 2, 0, 1, 1000, 1, 500, false},
    /* Integer average: (1 + 2) / 2 = 1, not 1.5. */
    {"integer average truncates", 2, {1, 2}, 2, 0, 0, 1, 2, 1, true},
};

static void test_pods_replicas(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pods_cases) / sizeof(pods_cases[0]); i++) {
		const struct pods_case *c = &pods_cases[i];
		struct sm_hpa_proposal p = {0};
		int r = sm_hpa_pods_replicas(c->current, c->values, c->n, c->missing, c->ignored,
		                             c->target, TOL, &p);

		expect_proposal(c->name, r, &p, c->expect, c->average, c->within);
	}
}

/* The recomputed ratio explain shows when pods are missing or pending. */
static void test_pods_adjustment_details(void **state)
{
	const int64_t down[] = {500, 500}, reverse[] = {1200}, plain[] = {3000};
	struct sm_hpa_proposal p = {0};

	(void)state;
	assert_int_equal(sm_hpa_pods_replicas(4, down, 2, 2, 0, 1000, TOL, &p), 0);
	assert_int_equal(p.adjusted_pods, 4);
	assert_int_equal(p.adjusted_milli, 750); /* (500 + 500 + 1000 + 1000) / 4 */
	assert_true(p.adjusted_ratio == 0.75);
	assert_false(p.direction_reversed);
	assert_int_equal(p.replicas, 3);

	assert_int_equal(sm_hpa_pods_replicas(3, reverse, 1, 2, 0, 1000, TOL, &p), 0);
	assert_int_equal(p.adjusted_pods, 3);
	assert_int_equal(p.adjusted_milli, 400);
	assert_true(p.direction_reversed);
	assert_false(p.within_tolerance);
	assert_int_equal(p.replicas, 3);

	/* Filled in, the ratio lands within the tolerance: 2100 x 1 + 0 over 2 = 1050. */
	assert_int_equal(sm_hpa_pods_replicas(2, (const int64_t[]){2100}, 1, 1, 0, 1000, TOL, &p),
	                 0);
	assert_int_equal(p.adjusted_milli, 1050);
	assert_true(p.within_tolerance);
	assert_false(p.direction_reversed);
	assert_int_equal(p.replicas, 2);

	assert_int_equal(sm_hpa_pods_replicas(1, plain, 1, 0, 0, 1000, TOL, &p), 0);
	assert_int_equal(p.adjusted_pods, 0);
	assert_int_equal(p.replicas, 3);
}

/* A Pods AverageValue target of 1m with every pod at 1001u: MilliValue rounds each pod up to
 * 2m, so the HPA triples (ratio 2 on 3 pods = 6), where rounding down would keep 3. */
static void test_pods_milli_value_rounds_up(void **state)
{
	const char *pods[] = {"1001u", "1001u", "1001u"};
	int64_t values[3], target;
	struct sm_hpa_proposal p = {0};

	(void)state;
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(sm_hpa_milli_value(pods[i], &values[i], NULL), 0);
	assert_int_equal(sm_hpa_milli_value("1m", &target, NULL), 0);
	assert_int_equal(values[0], 2);
	expect_proposal("1001u per pod vs 1m",
	                sm_hpa_pods_replicas(3, values, 3, 0, 0, target, TOL, &p), &p, 6, 2, false);
}

struct milli_case {
	const char *in;
	int64_t milli;
	int err;
};

static const struct milli_case milli_cases[] = {
    {"1", 1000, 0},       {"100m", 100, 0},    {"0.1", 100, 0},     {"1500u", 2, 0},
    {"1n", 1, 0},         {"2.5", 2500, 0},    {"1k", 1000000, 0},  {"1Ki", 1024000, 0},
    {"0", 0, 0},          {"-1500u", -2, 0},   {"30", 30000, 0},    {"1e3", 1000000, 0},
    {"", 0, -EINVAL},     {"abc", 0, -EINVAL}, {"10 ", 0, -EINVAL}, {"1Z", 0, -EINVAL},
    {"100E", 0, -ERANGE},
};

static void test_milli_value(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(milli_cases) / sizeof(milli_cases[0]); i++) {
		const struct milli_case *c = &milli_cases[i];
		struct sm_error err = {0};
		int64_t v = 4242;
		int r = sm_hpa_milli_value(c->in, &v, &err);

		if (r != c->err)
			fail_msg("'%s': returned %d, expected %d", c->in, r, c->err);
		if (r == 0 && v != c->milli)
			fail_msg("'%s': %lld, expected %lld", c->in, (long long)v,
			         (long long)c->milli);
		if (r < 0 && v != 4242)
			fail_msg("'%s': ret touched on error", c->in);
		if (r < 0 && err.message[0] == '\0')
			fail_msg("'%s': no error message", c->in);
	}
}

static void test_errors(void **state)
{
	struct sm_hpa_proposal p = {.replicas = 77};
	int64_t values[2] = {INT64_MAX, 1}, sum = 5;

	(void)state;
	assert_int_equal(sm_hpa_value_replicas(3, 3, 10, 0, TOL, &p), -EINVAL);
	assert_int_equal(sm_hpa_value_replicas(-1, 3, 10, 10, TOL, &p), -EINVAL);
	assert_int_equal(sm_hpa_average_value_replicas(3, 10, -5, TOL, &p), -EINVAL);
	assert_int_equal(sm_hpa_pods_replicas(3, values, 0, 0, 0, 1000, TOL, &p), -ENODATA);
	assert_int_equal(sm_hpa_pods_replicas(3, values, 2, 0, 0, 1000, TOL, &p), -ERANGE);
	assert_int_equal(sm_hpa_sum_milli(values, 2, &sum), -ERANGE);
	assert_int_equal(sum, 5);
	/* A proposal beyond int32 is refused rather than wrapped. */
	assert_int_equal(sm_hpa_value_replicas(3, 3, INT64_MAX / 2, 1, TOL, &p), -ERANGE);
	assert_int_equal(p.replicas, 77);
	assert_int_equal(sm_hpa_sum_milli(values + 1, 1, &sum), 0);
	assert_int_equal(sum, 1);
}

/* ---- The decision across metrics ---- */

struct decide_case {
	const char *name;
	int32_t current, min, max;
	bool behavior;
	int32_t proposals[4];
	size_t n;
	enum sm_hpa_outcome outcome;
	enum sm_hpa_limit limit;
	int32_t desired;
	int32_t proposal;
	size_t winner;
};

static const struct decide_case decide_cases[] = {
    {"largest proposal wins",
     3,
     1,
     10,
     false,
     {4, 6, 5},
     3,
     SM_HPA_OUTCOME_COMPUTED,
     SM_HPA_LIMIT_NONE,
     6,
     6,
     1},
    {"first of equal proposals wins",
     3,
     1,
     10,
     false,
     {5, 5},
     2,
     SM_HPA_OUTCOME_COMPUTED,
     SM_HPA_LIMIT_NONE,
     5,
     5,
     0},
    {"never below minReplicas 1",
     3,
     1,
     10,
     false,
     {0},
     1,
     SM_HPA_OUTCOME_COMPUTED,
     SM_HPA_LIMIT_TOO_FEW,
     1,
     0,
     0},
    {"minReplicas 2",
     3,
     2,
     10,
     false,
     {1, 0},
     2,
     SM_HPA_OUTCOME_COMPUTED,
     SM_HPA_LIMIT_TOO_FEW,
     2,
     1,
     0},
    {"maxReplicas clamp",
     8,
     1,
     10,
     false,
     {15},
     1,
     SM_HPA_OUTCOME_COMPUTED,
     SM_HPA_LIMIT_TOO_MANY,
     10,
     15,
     0},
    {"scale-up limit 2 x current",
     3,
     1,
     20,
     false,
     {9},
     1,
     SM_HPA_OUTCOME_COMPUTED,
     SM_HPA_LIMIT_SCALE_UP_LIMIT,
     6,
     9,
     0},
    {"scale-up limit at least 4",
     1,
     1,
     20,
     false,
     {10},
     1,
     SM_HPA_OUTCOME_COMPUTED,
     SM_HPA_LIMIT_SCALE_UP_LIMIT,
     4,
     10,
     0},
    {"behavior replaces the fixed scale-up limit",
     3,
     1,
     20,
     true,
     {9},
     1,
     SM_HPA_OUTCOME_COMPUTED,
     SM_HPA_LIMIT_NONE,
     9,
     9,
     0},
    {"scale down", 6, 1, 10, false, {2, 3}, 2, SM_HPA_OUTCOME_COMPUTED, SM_HPA_LIMIT_NONE, 3, 3, 1},
    {"current 0 with minReplicas 1: disabled",
     0,
     1,
     10,
     false,
     {5},
     1,
     SM_HPA_OUTCOME_DISABLED,
     SM_HPA_LIMIT_NONE,
     0,
     -1,
     0},
    {"current above max",
     12,
     1,
     10,
     false,
     {20},
     1,
     SM_HPA_OUTCOME_ABOVE_MAX,
     SM_HPA_LIMIT_NONE,
     10,
     -1,
     0},
    {"current below min",
     1,
     2,
     10,
     false,
     {1},
     1,
     SM_HPA_OUTCOME_BELOW_MIN,
     SM_HPA_LIMIT_NONE,
     2,
     -1,
     0},
    {"every metric failed",
     3,
     1,
     10,
     false,
     {-1, -1},
     2,
     SM_HPA_OUTCOME_ALL_FAILED,
     SM_HPA_LIMIT_NONE,
     3,
     -1,
     0},
    {"failed metric blocks a scale-down",
     3,
     1,
     10,
     false,
     {-1, 2},
     2,
     SM_HPA_OUTCOME_FAILED_DOWN,
     SM_HPA_LIMIT_NONE,
     3,
     2,
     1},
    {"failed metric does not block a scale-up",
     3,
     1,
     10,
     false,
     {-1, 5},
     2,
     SM_HPA_OUTCOME_COMPUTED,
     SM_HPA_LIMIT_NONE,
     5,
     5,
     1},
    {"scale to zero allowed with minReplicas 0",
     2,
     0,
     10,
     false,
     {0},
     1,
     SM_HPA_OUTCOME_COMPUTED,
     SM_HPA_LIMIT_NONE,
     0,
     0,
     0},
};

static void test_decide(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(decide_cases) / sizeof(decide_cases[0]); i++) {
		const struct decide_case *c = &decide_cases[i];
		struct sm_hpa_bounds b = {c->min, c->max, c->behavior};
		struct sm_hpa_decision d;
		int r = sm_hpa_decide(c->current, &b, c->proposals, c->n, &d);

		if (r != 0)
			fail_msg("%s: returned %d", c->name, r);
		if (d.outcome != c->outcome || d.desired != c->desired)
			fail_msg("%s: outcome %d desired %d, expected %d and %d", c->name,
			         d.outcome, d.desired, c->outcome, c->desired);
		if (d.outcome == SM_HPA_OUTCOME_COMPUTED && d.limit != c->limit)
			fail_msg("%s: limit %d, expected %d", c->name, d.limit, c->limit);
		if (d.proposal != c->proposal || (c->proposal >= 0 && d.winner != c->winner))
			fail_msg("%s: proposal %d from %zu, expected %d from %zu", c->name,
			         d.proposal, d.winner, c->proposal, c->winner);
	}
}

static void test_decide_invalid(void **state)
{
	struct sm_hpa_bounds b = {5, 3, false};
	struct sm_hpa_decision d = {.desired = 99};
	int32_t p[1] = {1};

	(void)state;
	assert_int_equal(sm_hpa_decide(3, &b, p, 1, &d), -EINVAL);
	b = (struct sm_hpa_bounds){1, 0, false};
	assert_int_equal(sm_hpa_decide(3, &b, p, 1, &d), -EINVAL);
	assert_int_equal(d.desired, 99);
}

static void test_enum_strings(void **state)
{
	(void)state;
	for (int i = 0; i < SM_HPA_METRIC_TYPE_MAX; i++)
		assert_int_equal(sm_hpa_metric_type_from_string(sm_hpa_metric_type_to_string(i)),
		                 i);
	for (int i = 0; i < SM_HPA_TARGET_TYPE_MAX; i++)
		assert_int_equal(sm_hpa_target_type_from_string(sm_hpa_target_type_to_string(i)),
		                 i);
	assert_int_equal(sm_hpa_metric_type_from_string("external"), SM_HPA_METRIC_TYPE_INVALID);
	assert_int_equal(sm_hpa_target_type_from_string(NULL), SM_HPA_TARGET_TYPE_INVALID);
	assert_null(sm_hpa_metric_type_to_string(SM_HPA_METRIC_TYPE_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_value_replicas),
	    cmocka_unit_test(test_average_value_replicas),
	    cmocka_unit_test(test_pods_replicas),
	    cmocka_unit_test(test_pods_adjustment_details),
	    cmocka_unit_test(test_pods_milli_value_rounds_up),
	    cmocka_unit_test(test_milli_value),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_decide),
	    cmocka_unit_test(test_decide_invalid),
	    cmocka_unit_test(test_enum_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
