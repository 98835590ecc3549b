/* SPDX-License-Identifier: MIT */
/* The metrics the sources declare (sm_config_add_metric), and the check, once all are read,
 * that a name several sources define can still be told apart by namespace. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/config.h"
#include "scalemetrics/resource-kind.h"

#include "config-internal.h"

struct sm_source_config *sm_config_parser_source(struct sm_config_parser *p)
{
	return p->src;
}

const struct sm_kube_config *sm_config_parser_kube(struct sm_config_parser *p)
{
	return &p->cfg->kubernetes;
}

int sm_config_add_metric(struct sm_config_parser *p, const struct sm_config_node *node,
                         const struct sm_metric_def *def)
{
	struct sm_source_config *src = p->src;
	struct sm_metric_def *m, copy = {0};

	if (!node)
		node = p->map;
	if (!src)
		return sm_config_report(p, node, "metric '%s' is not inside a source",
		                        def->name ? def->name : "");
	if (!def->name || !*def->name)
		return sm_config_report(p, node, "a metric needs a name");
	if (p->n_metrics == p->cap_metrics) {
		size_t cap = p->cap_metrics ? 2 * p->cap_metrics : 16;
		struct sm_config_metric_seen *seen = realloc(p->metrics, cap * sizeof(*seen));

		if (!seen)
			return sm_config_oom(p);
		p->metrics = seen;
		p->cap_metrics = cap;
	}
	m = realloc(src->metrics, (src->n_metrics + 1) * sizeof(*m));
	if (!m)
		return sm_config_oom(p);
	src->metrics = m;
	copy = *def;
	copy.name = strdup(def->name);
	copy.resource = def->resource ? strdup(def->resource) : NULL;
	copy.zero_label = def->zero_label ? strdup(def->zero_label) : NULL;
	copy.object_template = def->object_template ? strdup(def->object_template) : NULL;
	copy.pods_namespace = def->pods_namespace ? strdup(def->pods_namespace) : NULL;
	if (!copy.name || (def->resource && !copy.resource) ||
	    (def->zero_label && !copy.zero_label) ||
	    (def->object_template && !copy.object_template) ||
	    (def->pods_namespace && !copy.pods_namespace)) {
		free(copy.name);
		free(copy.resource);
		free(copy.zero_label);
		free(copy.object_template);
		free(copy.pods_namespace);
		return sm_config_oom(p);
	}
	p->metrics[p->n_metrics] = (struct sm_config_metric_seen){
	    .name = copy.name,
	    .source = (size_t)(src - p->cfg->sources),
	    .def = src->n_metrics,
	    .mark = node ? node->mark : (struct sm_config_mark){0},
	    .seq = p->n_metrics,
	};
	src->metrics[src->n_metrics++] = copy;
	p->n_metrics++;
	return 0;
}

static int compare_seen(const void *a, const void *b)
{
	const struct sm_config_metric_seen *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static const char *const scope_names[] = {
    [SM_METRIC_EXTERNAL] = "an external metric",
    [SM_METRIC_OBJECT] = "a metric on objects",
    [SM_METRIC_PODS] = "a metric on pods",
};
static_assert(SM_CONFIG_ARRAY_SIZE(scope_names) == SM_METRIC_SCOPE_MAX, "a name per metric scope");

/* Does def, of src, serve its metric in namespace ns (docs/configuration.md "Where series are
 * served")? The source's namespaces (external metrics, namespace totals, objects), and for a
 * pods metric also the pods' own namespace. */
static bool def_serves_in(const struct sm_source_config *src, const struct sm_metric_def *def,
                          const char *ns)
{
	if (def->pods_namespace && strcmp(def->pods_namespace, ns) == 0)
		return true;
	for (size_t i = 0; i < src->namespaces.n; i++)
		if (strcmp(src->namespaces.v[i], ns) == 0)
			return true;
	return false;
}

/* A namespace where both serve the metric, or NULL. */
static const char *common_namespace(const struct sm_source_config *sa,
                                    const struct sm_metric_def *a,
                                    const struct sm_source_config *sb,
                                    const struct sm_metric_def *b)
{
	for (size_t i = 0; i < sb->namespaces.n; i++)
		if (def_serves_in(sa, a, sb->namespaces.v[i]))
			return sb->namespaces.v[i];
	if (b->pods_namespace && def_serves_in(sa, a, b->pods_namespace))
		return b->pods_namespace;
	return NULL;
}

/* Objects without a namespace (nodes) are also asked for at the root, where no namespace
 * tells two sources apart. */
static bool def_is_root_scoped(const struct sm_metric_def *def)
{
	return def->scope == SM_METRIC_OBJECT && !sm_resource_is_namespaced(def->resource);
}

/* The second definition b of a metric name against an earlier one a: reports why they cannot
 * both be served, and returns whether it did. */
static bool check_shared(struct sm_config_parser *p, const struct sm_config_metric_seen *a,
                         const struct sm_config_metric_seen *b)
{
	const struct sm_source_config *sa = &p->cfg->sources[a->source];
	const struct sm_source_config *sb = &p->cfg->sources[b->source];
	const struct sm_metric_def *da = &sa->metrics[a->def], *db = &sb->metrics[b->def];
	const char *na = sa->name ? sa->name : "", *nb = sb->name ? sb->name : "";
	const char *ns;

	if (a->source == b->source) {
		(void)sm_config_report_at(p, &b->mark,
		                          "metric '%s' is already defined at line %u (source '%s')",
		                          b->name, a->mark.line, na);
		return true;
	}
	if (da->scope != db->scope) {
		(void)sm_config_report_at(
		    p, &b->mark,
		    "metric '%s' of source '%s' is %s, but source '%s' defines it as %s "
		    "(sources may share a name only for the same kind of metric)",
		    b->name, nb, scope_names[db->scope], na, scope_names[da->scope]);
		return true;
	}
	if (db->scope == SM_METRIC_OBJECT &&
	    (!da->resource || !db->resource || strcmp(da->resource, db->resource) != 0)) {
		(void)sm_config_report_at(
		    p, &b->mark,
		    "metric '%s' of source '%s' is served on %s, but source '%s' serves it "
		    "on %s (sources may share a name only on the same resource)",
		    b->name, nb, db->resource ? db->resource : "?", na,
		    da->resource ? da->resource : "?");
		return true;
	}
	if (def_is_root_scoped(db)) {
		(void)sm_config_report_at(
		    p, &b->mark,
		    "metric '%s' of source '%s' is also served by source '%s' on %s, "
		    "which have no namespace to tell the sources apart",
		    b->name, nb, na, db->resource ? db->resource : "?");
		return true;
	}
	ns = common_namespace(sa, da, sb, db);
	if (ns) {
		(void)sm_config_report_at(
		    p, &b->mark,
		    "metric '%s' of source '%s' is also served by source '%s' in namespace "
		    "'%s'",
		    b->name, nb, na, ns);
		return true;
	}
	return false;
}

/* A metric name may be defined by several sources when they serve it in disjoint sets of
 * namespaces, as the same kind of metric; the query then picks the source by namespace. Each
 * definition after the first is checked against the earlier ones, and reported once. */
void sm_config_check_metrics(struct sm_config_parser *p)
{
	if (p->n_metrics == 0)
		return;
	qsort(p->metrics, p->n_metrics, sizeof(*p->metrics), compare_seen);
	for (size_t i = 1, first = 0; i < p->n_metrics; i++) {
		if (strcmp(p->metrics[first].name, p->metrics[i].name) != 0) {
			first = i;
			continue;
		}
		for (size_t j = first; j < i; j++)
			if (check_shared(p, &p->metrics[j], &p->metrics[i]))
				break;
	}
}
