/* SPDX-License-Identifier: MIT */
/* Reading an autoscaling/v2 HorizontalPodAutoscaler as the HPA controller would: its bounds,
 * current replicas and metrics, each metric's selector in canonical form and its target as a
 * milli-value. libyaml's document API: the whole tree, then lookups. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "scalemetrics/error.h"
#include "scalemetrics/hpa.h"
#include "scalemetrics/number.h"
#include "scalemetrics/selector.h"

#include "explain-internal.h"

static yaml_node_t *ynode(const struct sm_explain_doc *d, yaml_node_item_t id)
{
	return yaml_document_get_node(d->doc, id);
}

static yaml_node_t *yget(const struct sm_explain_doc *d, const yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = ynode(d, p->key);

		if (k && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return ynode(d, p->value);
	}
	return NULL;
}

static const char *yscalar(const yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)n->data.scalar.value;
}

static const char *ystr(const struct sm_explain_doc *d, const yaml_node_t *map, const char *key)
{
	return yscalar(yget(d, map, key));
}

static size_t yseq_len(const yaml_node_t *n)
{
	if (!n || n->type != YAML_SEQUENCE_NODE)
		return 0;
	return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *yseq_item(const struct sm_explain_doc *d, const yaml_node_t *n, size_t i)
{
	return ynode(d, n->data.sequence.items.start[i]);
}

static bool yis_null(const yaml_node_t *n)
{
	const char *s = yscalar(n);

	return !n || (s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	              (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0));
}

static void where(const struct sm_explain_doc *d, const yaml_node_t *n, char *buf, size_t size)
{
	if (n)
		(void)snprintf(buf, size, "%s:%zu:%zu", d->file, n->start_mark.line + 1,
		               n->start_mark.column + 1);
	else
		(void)snprintf(buf, size, "%s", d->file);
}

static int int32_field(const struct sm_explain_doc *d, const yaml_node_t *map, const char *key,
                       int32_t *ret, bool *ret_found)
{
	const yaml_node_t *n = yget(d, map, key);
	char at[300];
	int64_t v;

	*ret_found = false;
	if (yis_null(n))
		return 0;
	if (!yscalar(n) || sm_number_parse_int64(yscalar(n), &v) < 0 || v < 0 || v > INT32_MAX) {
		where(d, n, at, sizeof(at));
		(void)fprintf(stderr, "%s: %s must be a non-negative integer\n", at, key);
		return -EINVAL;
	}
	*ret = (int32_t)v;
	*ret_found = true;
	return 0;
}

/* metav1.LabelSelectorAsSelector(...).String(): matchLabels as k=v, matchExpressions as
 * "k in (a,b)", "k notin (a,b)", "k", "!k"; then canonical (sorted) through our parser. */
static int selector_string(const struct sm_explain_doc *d, const yaml_node_t *sel, char **ret,
                           char *err, size_t errlen)
{
	char text[8192] = "", canon[8192];
	struct sm_explain_line sb = {text, sizeof(text), 0, false};
	const yaml_node_t *ml, *me;
	struct sm_selector *parsed = NULL;
	struct sm_error perr = {0};
	int r;

	if (!yis_null(sel) && sel->type != YAML_MAPPING_NODE) {
		(void)snprintf(err, errlen, "selector must be a mapping");
		return -EINVAL;
	}
	ml = yget(d, sel, "matchLabels");
	if (ml && ml->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = ml->data.mapping.pairs.start;
		     p < ml->data.mapping.pairs.top; p++) {
			const char *k = yscalar(ynode(d, p->key));
			const char *v = yscalar(ynode(d, p->value));

			if (!k || !v) {
				(void)snprintf(err, errlen,
				               "matchLabels must map strings to strings");
				return -EINVAL;
			}
			sm_explain_line_add(&sb, "%s%s=%s", sb.len ? "," : "", k, v);
		}
	}
	me = yget(d, sel, "matchExpressions");
	for (size_t i = 0; i < yseq_len(me); i++) {
		const yaml_node_t *e = yseq_item(d, me, i);
		const char *key = ystr(d, e, "key"), *op = ystr(d, e, "operator");
		const yaml_node_t *vals = yget(d, e, "values");

		if (!key || !op) {
			(void)snprintf(err, errlen, "matchExpressions[%zu] needs key and operator",
			               i);
			return -EINVAL;
		}
		if (strcmp(op, "In") == 0 || strcmp(op, "NotIn") == 0) {
			if (yseq_len(vals) == 0) {
				(void)snprintf(
				    err, errlen,
				    "matchExpressions[%zu]: for 'In', 'NotIn' operators, "
				    "values set can't be empty",
				    i);
				return -EINVAL;
			}
			sm_explain_line_add(&sb, "%s%s %s (", sb.len ? "," : "", key,
			                    strcmp(op, "In") == 0 ? "in" : "notin");
			for (size_t j = 0; j < yseq_len(vals); j++) {
				const char *v = yscalar(yseq_item(d, vals, j));

				sm_explain_line_add(&sb, "%s%s", j ? "," : "", v ? v : "");
			}
			sm_explain_line_add(&sb, ")");
		} else if (strcmp(op, "Exists") == 0) {
			sm_explain_line_add(&sb, "%s%s", sb.len ? "," : "", key);
		} else if (strcmp(op, "DoesNotExist") == 0) {
			sm_explain_line_add(&sb, "%s!%s", sb.len ? "," : "", key);
		} else {
			(void)snprintf(err, errlen, "'%s' is not a valid label selector operator",
			               op);
			return -EINVAL;
		}
	}
	if (sb.overflow) {
		(void)snprintf(err, errlen, "selector too long");
		return -EINVAL;
	}
	r = sm_selector_parse(text, &parsed, &perr);
	if (r < 0) {
		(void)snprintf(err, errlen, "invalid selector '%.200s': %.250s", text,
		               perr.message);
		return r;
	}
	(void)sm_selector_format(parsed, canon, sizeof(canon));
	sm_selector_free(parsed);
	*ret = strdup(canon);
	return *ret ? 0 : -ENOMEM;
}

/* The MetricTarget: type and the quantity for it, as milli-values. */
static void parse_target(const struct sm_explain_doc *d, const yaml_node_t *target,
                         struct sm_explain_metric *m)
{
	const char *type = ystr(d, target, "type");
	const char *field;
	struct sm_error err = {0};

	m->target_type = sm_hpa_target_type_from_string(type);
	switch (m->target_type) {
	case SM_HPA_TARGET_VALUE:
		field = "value";
		break;
	case SM_HPA_TARGET_AVERAGE_VALUE:
		field = "averageValue";
		break;
	case SM_HPA_TARGET_UTILIZATION:
		m->target_text = ystr(d, target, "averageUtilization");
		return;
	default:
		(void)snprintf(m->error, sizeof(m->error),
		               "target.type '%s' is not Value, AverageValue or Utilization",
		               type ? type : "");
		return;
	}
	m->target_text = ystr(d, target, field);
	if (!m->target_text) {
		(void)snprintf(m->error, sizeof(m->error), "target.type %s needs target.%s", type,
		               field);
		return;
	}
	if (sm_hpa_milli_value(m->target_text, &m->target_milli, &err) < 0) {
		(void)snprintf(m->error, sizeof(m->error), "target.%s: %.400s", field, err.message);
		return;
	}
	if (m->target_milli <= 0)
		(void)snprintf(m->error, sizeof(m->error), "target.%s must be positive", field);
}

static const char *const metric_keys[SM_HPA_METRIC_TYPE_MAX] = {
    [SM_HPA_METRIC_CONTAINER_RESOURCE] = "containerResource",
    [SM_HPA_METRIC_EXTERNAL] = "external",
    [SM_HPA_METRIC_OBJECT] = "object",
    [SM_HPA_METRIC_PODS] = "pods",
    [SM_HPA_METRIC_RESOURCE] = "resource",
};

static int parse_metric(const struct sm_explain_doc *d, const yaml_node_t *node,
                        struct sm_explain_metric *m)
{
	const char *type = ystr(d, node, "type");
	const yaml_node_t *src, *metric;
	int r;

	*m = (struct sm_explain_metric){.type = sm_hpa_metric_type_from_string(type)};
	if (m->type == SM_HPA_METRIC_TYPE_INVALID) {
		(void)snprintf(m->error, sizeof(m->error), "unknown metric type '%s'",
		               type ? type : "");
		return 0;
	}
	src = yget(d, node, metric_keys[m->type]);
	if (!src || src->type != YAML_MAPPING_NODE) {
		(void)snprintf(m->error, sizeof(m->error), "type %s needs a '%s' mapping", type,
		               metric_keys[m->type]);
		return 0;
	}
	if (m->type == SM_HPA_METRIC_RESOURCE || m->type == SM_HPA_METRIC_CONTAINER_RESOURCE) {
		m->resource_name = ystr(d, src, "name");
		m->container = ystr(d, src, "container");
		parse_target(d, yget(d, src, "target"), m);
		m->error[0] = '\0'; /* not ours to judge */
		return 0;
	}
	metric = yget(d, src, "metric");
	m->name = ystr(d, metric, "name");
	if (!m->name || m->name[0] == '\0') {
		(void)snprintf(m->error, sizeof(m->error), "%s.metric.name is missing",
		               metric_keys[m->type]);
		return 0;
	}
	r = selector_string(d, yget(d, metric, "selector"), &m->selector, m->error,
	                    sizeof(m->error));
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return 0;
	if (m->type == SM_HPA_METRIC_OBJECT) {
		const yaml_node_t *obj = yget(d, src, "describedObject");

		m->object_kind = ystr(d, obj, "kind");
		m->object_name = ystr(d, obj, "name");
		m->object_api_version = ystr(d, obj, "apiVersion");
		if (!m->object_kind || !m->object_name) {
			(void)snprintf(m->error, sizeof(m->error),
			               "object.describedObject needs kind and name");
			return 0;
		}
	}
	parse_target(d, yget(d, src, "target"), m);
	return 0;
}

void sm_explain_hpa_done(struct sm_explain_hpa *h)
{
	for (size_t i = 0; i < h->n_metrics; i++)
		free(h->metrics[i].selector);
	free(h->metrics);
	h->metrics = NULL;
	h->n_metrics = 0;
}

/* Reads one HorizontalPodAutoscaler mapping. Problems with the document itself go to stderr
 * and return -EINVAL; a single unusable metric is kept, with its error, to be reported in
 * its place. */
static int parse_hpa(const struct sm_explain_doc *d, const yaml_node_t *root,
                     const struct sm_explain_options *opt, struct sm_explain_hpa *h)
{
	const char *api = ystr(d, root, "apiVersion");
	const yaml_node_t *meta = yget(d, root, "metadata"), *spec = yget(d, root, "spec");
	const yaml_node_t *status = yget(d, root, "status"), *metrics, *ref;
	char at[300];
	bool found;
	int r;

	*h = (struct sm_explain_hpa){.min_replicas = 1};
	where(d, root, at, sizeof(at));
	if (!api ||
	    (strcmp(api, "autoscaling/v2") != 0 && strcmp(api, "autoscaling/v2beta2") != 0)) {
		(void)fprintf(
		    stderr,
		    "%s: apiVersion '%s': explain reads autoscaling/v2 (autoscaling/v1 has "
		    "no custom or external metrics; `kubectl get hpa.v2.autoscaling NAME "
		    "-o yaml` prints v2)\n",
		    at, api ? api : "");
		return -EINVAL;
	}
	if (!spec || spec->type != YAML_MAPPING_NODE) {
		(void)fprintf(stderr, "%s: the HorizontalPodAutoscaler has no spec\n", at);
		return -EINVAL;
	}
	h->name = ystr(d, meta, "name");
	if (!h->name)
		h->name = "(unnamed)";
	h->namespace = opt->namespace ? opt->namespace : ystr(d, meta, "namespace");
	if (!h->namespace || h->namespace[0] == '\0')
		h->namespace = "default";
	ref = yget(d, spec, "scaleTargetRef");
	h->target_kind = ystr(d, ref, "kind");
	h->target_name = ystr(d, ref, "name");
	h->has_behavior = !yis_null(yget(d, spec, "behavior"));

	if (int32_field(d, spec, "minReplicas", &h->min_replicas, &found) < 0)
		return -EINVAL;
	if (!found)
		h->min_replicas = 1;
	if (int32_field(d, spec, "maxReplicas", &h->max_replicas, &found) < 0)
		return -EINVAL;
	if (!found || h->max_replicas < 1 || h->max_replicas < h->min_replicas) {
		(void)fprintf(stderr,
		              "%s: spec.maxReplicas must be set, at least 1 and at least "
		              "minReplicas\n",
		              at);
		return -EINVAL;
	}

	if (opt->has_current) {
		h->current = opt->current;
		h->current_from = "--current-replicas";
	} else if (status && status->type == YAML_MAPPING_NODE) {
		if (int32_field(d, status, "currentReplicas", &h->current, &found) < 0)
			return -EINVAL;
		h->current_from =
		    found ? "status.currentReplicas" : "status without currentReplicas, i.e. 0";
	} else {
		(void)fprintf(stderr,
		              "%s: HPA '%s' has no status.currentReplicas: pass --current-replicas "
		              "N\n",
		              at, h->name);
		return -EINVAL;
	}

	metrics = yget(d, spec, "metrics");
	if (yseq_len(metrics) == 0) {
		(void)fprintf(stderr,
		              "%s: spec.metrics is empty: the HPA then scales on 80%% CPU, which "
		              "scalemetrics does not serve\n",
		              at);
		return -EINVAL;
	}
	h->metrics = calloc(yseq_len(metrics), sizeof(*h->metrics));
	if (!h->metrics)
		return -ENOMEM;
	for (size_t i = 0; i < yseq_len(metrics); i++) {
		r = parse_metric(d, yseq_item(d, metrics, i), &h->metrics[i]);
		h->n_metrics = i + 1;
		if (r < 0)
			return r;
	}
	return 0;
}

size_t sm_explain_doc_count(const struct sm_explain_doc *d)
{
	yaml_node_t *root = yaml_document_get_root_node(d->doc);
	const char *kind = ystr(d, root, "kind");

	if (kind && strcmp(kind, "List") == 0)
		return yseq_len(yget(d, root, "items"));
	return root ? 1 : 0;
}

int sm_explain_doc_hpa(const struct sm_explain_doc *d, size_t i,
                       const struct sm_explain_options *opt, struct sm_explain_hpa *ret)
{
	yaml_node_t *root = yaml_document_get_root_node(d->doc);
	const char *kind = ystr(d, root, "kind");
	const yaml_node_t *node = root;
	char at[300];

	*ret = (struct sm_explain_hpa){0};
	if (kind && strcmp(kind, "List") == 0) {
		const yaml_node_t *items = yget(d, root, "items");

		if (i >= yseq_len(items))
			return -EINVAL;
		node = yseq_item(d, items, i);
	}
	kind = ystr(d, node, "kind");
	if (!kind || strcmp(kind, "HorizontalPodAutoscaler") != 0) {
		where(d, node, at, sizeof(at));
		(void)fprintf(stderr, "%s: kind '%s' is not a HorizontalPodAutoscaler\n", at,
		              kind ? kind : "");
		return -EINVAL;
	}
	return parse_hpa(d, node, opt, ret);
}
