/* SPDX-License-Identifier: MIT */
/* The HPA controller's arithmetic on the server's answers, printed step by step: per metric
 * the request, the items, the value the HPA uses, the target, the ratio and the proposal;
 * then the decision over all metrics (largest proposal, tolerance, min/max, scale-up limit).
 * The arithmetic itself is hpa.c's; this file fetches and explains. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/error.h"
#include "scalemetrics/hpa.h"
#include "scalemetrics/selector.h"

#include "explain-internal.h"

#define MAX_ITEMS_SHOWN 20

const char *sm_explain_milli_text(int64_t m, char buf[40])
{
	uint64_t a = m < 0 ? (uint64_t)0 - (uint64_t)m : (uint64_t)m;
	unsigned frac = (unsigned)(a % 1000);
	int n;

	n = snprintf(buf, 40, "%s%llu", m < 0 ? "-" : "", (unsigned long long)(a / 1000));
	if (frac != 0 && n > 0 && n < 30) {
		(void)snprintf(buf + n, (size_t)(40 - n), ".%03u", frac);
		for (char *e = buf + strlen(buf) - 1; *e == '0'; e--)
			*e = '\0';
	}
	return buf;
}

/* "37000m (37)" */
static const char *milli_both(int64_t m, char buf[96])
{
	char t[40];

	(void)snprintf(buf, 96, "%lldm (%s)", (long long)m, sm_explain_milli_text(m, t));
	return buf;
}

void sm_explain_line_add(struct sm_explain_line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->len, l->size - l->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= l->size - l->len) {
		l->overflow = true;
		l->buf[l->len] = '\0';
		return;
	}
	l->len += (size_t)n;
}

/* Prints one item as the HPA reads it, and returns its value.MilliValue(). */
static int read_item(const cJSON *item, size_t i, bool show, int64_t *ret_milli,
                     struct sm_error *reterr)
{
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(item, "value");
	const cJSON *mname = cJSON_GetObjectItemCaseSensitive(item, "metricName");
	const cJSON *metric = cJSON_GetObjectItemCaseSensitive(item, "metric");
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(item, "metricLabels");
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(item, "describedObject");
	const cJSON *okind = cJSON_GetObjectItemCaseSensitive(obj, "kind");
	const cJSON *oname = cJSON_GetObjectItemCaseSensitive(obj, "name");
	const cJSON *l;
	struct sm_error err = {0};
	char line[1024] = "";
	struct sm_explain_line sb = {line, sizeof(line), 0, false};
	int64_t milli;

	if (!cJSON_IsString(value)) {
		sm_error_set(reterr, "item %zu has no value", i);
		return -EPROTO;
	}
	if (sm_hpa_milli_value(value->valuestring, &milli, &err) < 0) {
		sm_error_set(reterr, "item %zu: %s", i, err.message);
		return -EPROTO;
	}
	*ret_milli = milli;
	if (!show)
		return 0;
	/* v1beta1 items name the metric in metricName, v1beta2 in metric.name. */
	if (!cJSON_IsString(mname))
		mname = cJSON_GetObjectItemCaseSensitive(metric, "name");
	if (cJSON_IsString(okind) && cJSON_IsString(oname))
		sm_explain_line_add(&sb, "%s/%s ", okind->valuestring, oname->valuestring);
	sm_explain_line_add(&sb, "%s", cJSON_IsString(mname) ? mname->valuestring : "?");
	if (cJSON_IsObject(labels) && labels->child) {
		sm_explain_line_add(&sb, "{");
		cJSON_ArrayForEach(l, labels)
		{
			sm_explain_line_add(&sb, "%s%s=\"%s\"", l == labels->child ? "" : ",",
			                    l->string, cJSON_IsString(l) ? l->valuestring : "?");
		}
		sm_explain_line_add(&sb, "}");
	}
	(void)printf("    %s%s = %s   (%lldm)\n", line, sb.overflow ? "..." : "",
	             value->valuestring, (long long)milli);
	return 0;
}

static void print_tolerance(const struct sm_hpa_proposal *p)
{
	if (p->within_tolerance)
		(void)printf(", within the tolerance (|1 - ratio| <= %.1f): the HPA keeps the "
		             "current count\n",
		             SM_HPA_DEFAULT_TOLERANCE);
	else
		(void)printf(", outside the tolerance [%.1f, %.1f]\n",
		             1.0 - SM_HPA_DEFAULT_TOLERANCE, 1.0 + SM_HPA_DEFAULT_TOLERANCE);
}

/* Computes and prints one metric's proposal; -1 when it failed. */
static int32_t explain_metric(struct sm_explain_client *c, const struct sm_explain_hpa *h,
                              size_t idx, bool *ret_ok)
{
	const struct sm_explain_metric *m = &h->metrics[idx];
	const char *type = sm_hpa_metric_type_to_string(m->type), *version = NULL;
	char path[8192], a[96], b[96], t[40], pod_sel[4096] = "";
	struct sm_error err = {0};
	struct sm_hpa_proposal p = {0};
	cJSON *doc = NULL;
	const cJSON *items, *item;
	int64_t *values = NULL, usage = 0;
	size_t n = 0, i = 0, missing = 0;
	int32_t proposal = -1;
	int r;

	*ret_ok = false;
	(void)printf("\nmetric %zu of %zu: %s", idx + 1, h->n_metrics, type ? type : "(invalid)");
	if (m->name)
		(void)printf(" '%s'", m->name);
	if (m->selector && m->selector[0])
		(void)printf(" with selector '%s'", m->selector);
	if (m->type == SM_HPA_METRIC_OBJECT && m->object_kind)
		(void)printf(" on %s/%s", m->object_kind, m->object_name ? m->object_name : "?");
	if (m->type == SM_HPA_METRIC_RESOURCE || m->type == SM_HPA_METRIC_CONTAINER_RESOURCE)
		(void)printf(" '%s'%s%s", m->resource_name ? m->resource_name : "?",
		             m->container ? " of container " : "",
		             m->container ? m->container : "");
	if (m->target_text && m->target_type != SM_HPA_TARGET_TYPE_INVALID)
		(void)printf(", target %s %s", sm_hpa_target_type_to_string(m->target_type),
		             m->target_text);
	(void)printf("\n");

	if (m->type == SM_HPA_METRIC_RESOURCE || m->type == SM_HPA_METRIC_CONTAINER_RESOURCE) {
		(void)printf("  not served by scalemetrics: %s metrics come from metrics.k8s.io "
		             "(metrics-server); left out of the decision below, although the HPA "
		             "counts it\n",
		             type);
		*ret_ok = true;
		return -2;
	}
	if (m->error[0]) {
		(void)printf("  FAILED: invalid metric spec: %s\n", m->error);
		return -1;
	}
	if (m->target_type == SM_HPA_TARGET_UTILIZATION ||
	    (m->type == SM_HPA_METRIC_PODS && m->target_type != SM_HPA_TARGET_AVERAGE_VALUE)) {
		(void)printf("  FAILED: a %s metric cannot have a %s target (the API server would "
		             "refuse this HPA)\n",
		             type, sm_hpa_target_type_to_string(m->target_type));
		return -1;
	}

	if (m->type == SM_HPA_METRIC_PODS) {
		if (c->opt->pod_selector) {
			struct sm_selector *ps = NULL;

			if (sm_selector_parse(c->opt->pod_selector, &ps, &err) < 0) {
				(void)printf("  FAILED: --pod-selector: %s\n", err.message);
				return -1;
			}
			(void)sm_selector_format(ps, pod_sel, sizeof(pod_sel));
			sm_selector_free(ps);
		} else {
			(void)printf(
			    "  note: the HPA asks for the pods of %s/%s with the target's "
			    "own selector (its scale subresource's status.selector); without "
			    "--pod-selector this asks for every pod in namespace '%s'\n",
			    h->target_kind ? h->target_kind : "?",
			    h->target_name ? h->target_name : "?", h->namespace);
		}
	}
	if (m->type == SM_HPA_METRIC_PODS || m->type == SM_HPA_METRIC_OBJECT)
		version = sm_explain_custom_version(c);
	r = sm_explain_build_path(h, m, version, pod_sel, path, sizeof(path));
	if (r < 0) {
		(void)printf("  FAILED: cannot build the request path: %s\n", strerror(-r));
		return -1;
	}
	(void)printf("  GET %s\n", path);
	r = sm_explain_get_json(c, path, &doc, &err);
	if (r < 0) {
		(void)printf("  FAILED: %s\n", err.message);
		goto out;
	}
	items = cJSON_GetObjectItemCaseSensitive(doc, "items");
	if (!cJSON_IsArray(items)) {
		(void)printf("  FAILED: the answer has no items list\n");
		goto out;
	}
	n = (size_t)cJSON_GetArraySize(items);
	(void)printf("  %zu item%s%s\n", n, n == 1 ? "" : "s", n ? ":" : "");
	if (n == 0) {
		(void)printf("  FAILED: %s\n", m->type == SM_HPA_METRIC_EXTERNAL
		                                   ? "no metrics returned from external metrics API"
		                                   : "no metrics returned from custom metrics API");
		goto out;
	}
	if (m->type == SM_HPA_METRIC_OBJECT && n != 1) {
		(void)printf("  FAILED: the custom metrics API server returned %zu results when we "
		             "asked for exactly one\n",
		             n);
		goto out;
	}
	values = calloc(n, sizeof(*values));
	if (!values) {
		(void)printf("  FAILED: out of memory\n");
		goto out;
	}
	cJSON_ArrayForEach(item, items)
	{
		if (read_item(item, i, i < MAX_ITEMS_SHOWN, &values[i], &err) < 0) {
			(void)printf("  FAILED: %s\n", err.message);
			goto out;
		}
		i++;
	}
	if (n > MAX_ITEMS_SHOWN)
		(void)printf("    ... and %zu more\n", n - MAX_ITEMS_SHOWN);

	switch (m->type) {
	case SM_HPA_METRIC_EXTERNAL:
		if (sm_hpa_sum_milli(values, n, &usage) < 0) {
			(void)printf("  FAILED: the sum overflows\n");
			goto out;
		}
		(void)printf("  value the HPA uses: the sum of the %zu item%s = %s\n", n,
		             n == 1 ? "" : "s", milli_both(usage, a));
		break;
	case SM_HPA_METRIC_OBJECT:
		usage = values[0];
		(void)printf("  value the HPA uses: %s\n", milli_both(usage, a));
		break;
	default:
		break;
	}

	if (m->type == SM_HPA_METRIC_PODS) {
		missing = h->current > 0 && (size_t)h->current > n ? (size_t)h->current - n : 0;
		r = sm_hpa_pods_replicas(h->current, values, n, missing, 0, m->target_milli,
		                         SM_HPA_DEFAULT_TOLERANCE, &p);
		if (r < 0) {
			(void)printf("  FAILED: %s\n", strerror(-r));
			goto out;
		}
		(void)printf("  value the HPA uses: the average of the %zu pod value%s (integer "
		             "milli division) = %s\n",
		             n, n == 1 ? "" : "s", milli_both(p.current_milli, a));
		(void)printf("  target: averageValue %s = %s per pod\n", m->target_text,
		             milli_both(m->target_milli, b));
		(void)printf("  ratio: %lldm / %lldm = %.4f", (long long)p.current_milli,
		             (long long)m->target_milli, p.ratio);
		if (p.adjusted_pods == 0) {
			print_tolerance(&p);
			if (p.within_tolerance)
				(void)printf("  proposal: %d replicas (the current count)\n",
				             p.replicas);
			else
				(void)printf("  proposal: ceil(%.4f x %zu pods) = %d replicas\n",
				             p.ratio, n, p.replicas);
		} else {
			(void)printf(
			    "\n  %zu of the %d current replicas reported no value: the HPA "
			    "counts them as %s\n",
			    missing, h->current,
			    p.ratio < 1.0 ? "using the target (this is a scale-down)"
			                  : "using 0 (this is a scale-up)");
			(void)printf("  recomputed over %zu pods: average %s, ratio %.4f",
			             p.adjusted_pods, milli_both(p.adjusted_milli, b),
			             p.adjusted_ratio);
			if (p.direction_reversed)
				(void)printf(", which reverses the direction: the HPA keeps the "
				             "current count\n");
			else
				print_tolerance(&p);
			if (p.within_tolerance || p.direction_reversed)
				(void)printf("  proposal: %d replicas (the current count)\n",
				             p.replicas);
			else
				(void)printf("  proposal: ceil(%.4f x %zu pods) = %d replicas\n",
				             p.adjusted_ratio, p.adjusted_pods, p.replicas);
		}
	} else if (m->target_type == SM_HPA_TARGET_VALUE) {
		r = sm_hpa_value_replicas(h->current, h->current, usage, m->target_milli,
		                          SM_HPA_DEFAULT_TOLERANCE, &p);
		if (r < 0) {
			(void)printf("  FAILED: %s\n", strerror(-r));
			goto out;
		}
		(void)printf("  target: value %s = %s in total\n", m->target_text,
		             milli_both(m->target_milli, b));
		(void)printf("  ratio: %lldm / %lldm = %.4f", (long long)usage,
		             (long long)m->target_milli, p.ratio);
		if (h->current == 0) {
			(void)printf(" (current replicas 0: no tolerance)\n");
			(void)printf("  proposal: ceil(%.4f) = %d replicas\n", p.ratio, p.replicas);
		} else {
			print_tolerance(&p);
			if (p.within_tolerance)
				(void)printf("  proposal: %d replicas (the current count)\n",
				             p.replicas);
			else
				(void)printf("  proposal: ceil(%.4f x %d ready pods) = %d replicas "
				             "(assuming all %d current replicas are ready)\n",
				             p.ratio, h->current, p.replicas, h->current);
		}
	} else {
		r = sm_hpa_average_value_replicas(h->current, usage, m->target_milli,
		                                  SM_HPA_DEFAULT_TOLERANCE, &p);
		if (r < 0) {
			(void)printf("  FAILED: %s\n", strerror(-r));
			goto out;
		}
		(void)printf("  target: averageValue %s = %s per replica\n", m->target_text,
		             milli_both(m->target_milli, b));
		(void)printf("  ratio: %lldm / (%lldm x %d current replicas) = %.4f",
		             (long long)usage, (long long)m->target_milli, h->current, p.ratio);
		print_tolerance(&p);
		if (h->current > 0)
			(void)printf("  per replica now: %s (what kubectl describe hpa shows)\n",
			             sm_explain_milli_text(p.current_milli, t));
		if (p.within_tolerance)
			(void)printf("  proposal: %d replicas (the current count)\n", p.replicas);
		else
			(void)printf("  proposal: ceil(%lldm / %lldm) = %d replicas\n",
			             (long long)usage, (long long)m->target_milli, p.replicas);
	}
	proposal = p.replicas;
	*ret_ok = true;
out:
	free(values);
	cJSON_Delete(doc);
	return proposal;
}

static const char *outcome_text(const struct sm_hpa_decision *d)
{
	switch (d->outcome) {
	case SM_HPA_OUTCOME_DISABLED:
		return "the target has 0 replicas and minReplicas is not 0: the HPA considers "
		       "autoscaling disabled and does not touch it";
	case SM_HPA_OUTCOME_ABOVE_MAX:
		return "the current count is above maxReplicas: the HPA sets maxReplicas without "
		       "looking at the metrics";
	case SM_HPA_OUTCOME_BELOW_MIN:
		return "the current count is below minReplicas: the HPA sets minReplicas without "
		       "looking at the metrics";
	case SM_HPA_OUTCOME_ALL_FAILED:
		return "no metric could be computed: the HPA keeps the current count (condition "
		       "ScalingActive=False)";
	case SM_HPA_OUTCOME_FAILED_DOWN:
		return "a metric failed and the others would scale down: the HPA keeps the "
		       "current count (it only scales up on partial metrics)";
	default:
		return NULL;
	}
}

bool sm_explain_hpa_report(struct sm_explain_client *c, const struct sm_explain_hpa *h)
{
	struct sm_hpa_bounds bounds = {h->min_replicas, h->max_replicas, h->has_behavior};
	struct sm_hpa_decision d;
	int32_t *proposals = NULL, *decide_in = NULL;
	size_t *decide_idx = NULL, n_in = 0;
	bool all_ok = true, ok;
	const char *why;

	(void)printf("HorizontalPodAutoscaler %s/%s -> %s/%s\n", h->namespace, h->name,
	             h->target_kind ? h->target_kind : "?", h->target_name ? h->target_name : "?");
	(void)printf("  minReplicas %d, maxReplicas %d, current replicas %d (from %s)\n",
	             h->min_replicas, h->max_replicas, h->current, h->current_from);

	proposals = calloc(h->n_metrics, sizeof(*proposals));
	decide_in = calloc(h->n_metrics, sizeof(*decide_in));
	decide_idx = calloc(h->n_metrics, sizeof(*decide_idx));
	if (!proposals || !decide_in || !decide_idx) {
		(void)fprintf(stderr, "scalemetrics explain: out of memory\n");
		all_ok = false;
		goto out;
	}
	for (size_t i = 0; i < h->n_metrics; i++) {
		proposals[i] = explain_metric(c, h, i, &ok);
		all_ok = all_ok && ok;
		if (proposals[i] == -2)
			continue; /* not ours: out of the decision */
		decide_in[n_in] = proposals[i];
		decide_idx[n_in++] = i;
	}

	(void)printf("\ndecision:\n");
	if (sm_hpa_decide(h->current, &bounds, decide_in, n_in, &d) < 0) {
		(void)printf("  cannot decide: invalid replica bounds\n");
		all_ok = false;
		goto out;
	}
	if (n_in == 0) {
		(void)printf("  no metric served by scalemetrics: nothing to decide here\n");
		goto out;
	}
	(void)printf("  proposals:");
	for (size_t i = 0; i < h->n_metrics; i++) {
		if (proposals[i] >= 0)
			(void)printf(" metric %zu: %d;", i + 1, proposals[i]);
		else if (proposals[i] == -1)
			(void)printf(" metric %zu: FAILED;", i + 1);
		else
			(void)printf(" metric %zu: not ours;", i + 1);
	}
	(void)printf("\n");
	why = outcome_text(&d);
	if (why) {
		(void)printf("  %s\n", why);
	} else {
		const struct sm_explain_metric *w = &h->metrics[decide_idx[d.winner]];

		(void)printf("  largest proposal: %d replicas (metric %zu, %s '%s'); the HPA takes "
		             "the largest of all metrics\n",
		             d.proposal, decide_idx[d.winner] + 1,
		             sm_hpa_metric_type_to_string(w->type), w->name);
		switch (d.limit) {
		case SM_HPA_LIMIT_TOO_FEW:
			(void)printf("  raised to minReplicas %d (the HPA never goes below it)\n",
			             h->min_replicas);
			break;
		case SM_HPA_LIMIT_TOO_MANY:
			(void)printf("  lowered to maxReplicas %d\n", h->max_replicas);
			break;
		case SM_HPA_LIMIT_SCALE_UP_LIMIT:
			(void)printf(
			    "  lowered to %d: without spec.behavior the HPA scales up to at "
			    "most max(2 x %d, 4) = %d per step\n",
			    d.desired, h->current, d.desired);
			break;
		default:
			(void)printf("  within minReplicas %d and maxReplicas %d\n",
			             h->min_replicas, h->max_replicas);
			break;
		}
	}
	if (d.desired > h->current)
		(void)printf("  desired replicas: %d (scale up from %d)\n", d.desired, h->current);
	else if (d.desired < h->current)
		(void)printf("  desired replicas: %d (scale down from %d)\n", d.desired,
		             h->current);
	else
		(void)printf("  desired replicas: %d (no change)\n", d.desired);
	if (d.desired < h->current)
		(void)printf(
		    "  note: a scale-down waits for the stabilization window (5 minutes "
		    "by default): the HPA uses the highest recommendation of that window\n");
	if (h->has_behavior)
		(void)printf("  note: spec.behavior policies limit how fast this is reached; they "
		             "depend on the HPA's recent history and are not modelled here\n");
out:
	free(proposals);
	free(decide_in);
	free(decide_idx);
	return all_ok;
}
