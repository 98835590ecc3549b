/* SPDX-License-Identifier: MIT */
/* The scrape source's config mapping: its descriptor tables (source, pods, one per rule kind)
 * and the checks the tables cannot express. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/config.h"
#include "scalemetrics/promtext.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/source.h"

#include "scrape-internal.h"

#define DEFAULT_MAX_BODY (10 * 1024 * 1024)
#define DEFAULT_RATE_WIN 60000
#define DEFAULT_HIST_WIN 300000
#define DEFAULT_PATH     "/metrics"

static const char *const rule_kind_names[] = {
    [RULE_RATE] = "rate",
    [RULE_QUANTILE] = "quantile",
    [RULE_AVERAGE] = "average",
    [RULE_GAUGE] = "gauge",
};
_Static_assert(sizeof(rule_kind_names) / sizeof(rule_kind_names[0]) == RULE_KIND_MAX, "kinds");

const char *const sm_scrape_scheme_names[] = {"http", "https", NULL};

static void rules_done(struct scrape_rules *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		struct scrape_rule *r = &rs->v[i];

		free(r->metric);
		free(r->counter);
		free(r->histogram);
		free(r->gauge);
		sm_strv_done(&r->by);
	}
	free(rs->v);
}

void sm_scrape_config_free(void *priv)
{
	struct scrape_config *c = priv;

	if (!c)
		return;
	sm_strv_done(&c->targets);
	free(c->pods.namespace);
	free(c->pods.selector);
	free(c->pods.path);
	free(c->ca_file);
	rules_done(&c->rates);
	rules_done(&c->quantiles);
	rules_done(&c->averages);
	rules_done(&c->gauges);
	free(c);
}

#define RULE_KEY_BY                                                                                \
	{                                                                                          \
		.name = "by", .type = SM_CONFIG_STRING_LIST,                                       \
		.offset = offsetof(struct scrape_rule, by)                                         \
	}
#define RULE_KEY_FALLBACK                                                                          \
	{                                                                                          \
		.name = "fallback", .type = SM_CONFIG_DOUBLE,                                      \
		.offset = offsetof(struct scrape_rule, fallback)                                   \
	}
#define RULE_KEY_HISTOGRAM                                                                         \
	{                                                                                          \
		.name = "histogram", .type = SM_CONFIG_STRING,                                     \
		.offset = offsetof(struct scrape_rule, histogram), .flags = SM_CONFIG_REQUIRED     \
	}
#define RULE_KEY_METRIC                                                                            \
	{                                                                                          \
		.name = "metric", .type = SM_CONFIG_STRING,                                        \
		.offset = offsetof(struct scrape_rule, metric), .flags = SM_CONFIG_REQUIRED        \
	}
#define RULE_KEY_WINDOW                                                                            \
	{                                                                                          \
		.name = "window", .type = SM_CONFIG_DURATION,                                      \
		.offset = offsetof(struct scrape_rule, window_ms), .min = 1000, .max = 86400000    \
	}

static const struct sm_config_key rate_keys[] = {
    RULE_KEY_BY,
    {.name = "counter",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct scrape_rule, counter),
     .flags = SM_CONFIG_REQUIRED},
    RULE_KEY_FALLBACK,
    RULE_KEY_METRIC,
    RULE_KEY_WINDOW,
};

static const struct sm_config_key quantile_keys[] = {
    RULE_KEY_BY,
    RULE_KEY_FALLBACK,
    RULE_KEY_HISTOGRAM,
    RULE_KEY_METRIC,
    {.name = "quantile",
     .type = SM_CONFIG_DOUBLE,
     .offset = offsetof(struct scrape_rule, quantile),
     .flags = SM_CONFIG_REQUIRED},
    RULE_KEY_WINDOW,
};

static const struct sm_config_key average_keys[] = {
    RULE_KEY_BY, RULE_KEY_FALLBACK, RULE_KEY_HISTOGRAM, RULE_KEY_METRIC, RULE_KEY_WINDOW,
};

static const struct sm_config_key gauge_keys[] = {
    RULE_KEY_BY,
    RULE_KEY_FALLBACK,
    {.name = "gauge",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct scrape_rule, gauge),
     .flags = SM_CONFIG_REQUIRED},
    RULE_KEY_METRIC,
};

struct rule_table {
	const struct sm_config_key *keys;
	size_t n_keys;
	const char *what;
	int64_t default_window_ms;
};

static const struct rule_table rule_tables[] = {
    [RULE_RATE] = {rate_keys, sizeof(rate_keys) / sizeof(rate_keys[0]), "rate rule",
                   DEFAULT_RATE_WIN},
    [RULE_QUANTILE] = {quantile_keys, sizeof(quantile_keys) / sizeof(quantile_keys[0]),
                       "quantile rule", DEFAULT_HIST_WIN},
    [RULE_AVERAGE] = {average_keys, sizeof(average_keys) / sizeof(average_keys[0]), "average rule",
                      DEFAULT_HIST_WIN},
    [RULE_GAUGE] = {gauge_keys, sizeof(gauge_keys) / sizeof(gauge_keys[0]), "gauge rule", 0},
};

static int parse_rule(struct sm_config_parser *p, const struct sm_config_node *item,
                      enum rule_kind kind, struct scrape_rule *r)
{
	const struct rule_table *t = &rule_tables[kind];
	struct sm_source_config *src = sm_config_parser_source(p);
	const char *source_name = NULL;
	struct sm_metric_def def = {0};
	int k;

	r->kind = kind;
	r->window_ms = -1;
	if (!sm_config_node_is_mapping(item))
		return sm_config_report(p, item, "%s: expected a mapping", t->what);
	k = sm_config_parse_mapping(p, item, t->keys, t->n_keys, r, t->what);
	if (k == -ENOMEM)
		return k;
	if (r->window_ms < 0)
		r->window_ms = t->default_window_ms;
	switch (kind) {
	case RULE_RATE:
		source_name = r->counter;
		break;
	case RULE_QUANTILE:
	case RULE_AVERAGE:
		source_name = r->histogram;
		break;
	case RULE_GAUGE:
		source_name = r->gauge;
		break;
	case RULE_KIND_MAX:
		break;
	}
	if (r->metric && !sm_promtext_metric_name_is_valid(r->metric))
		k = sm_config_report(p, sm_config_node_get(p, item, "metric"),
		                     "invalid metric name '%s': expected [a-zA-Z_:][a-zA-Z0-9_:]*",
		                     r->metric);
	if (source_name && !sm_promtext_metric_name_is_valid(source_name))
		k = sm_config_report(p, item, "invalid scraped metric name '%s' in %s", source_name,
		                     t->what);
	if (r->by.n > SCRAPE_MAX_BY)
		k = sm_config_report(p, sm_config_node_get(p, item, "by"), "by: at most %d labels",
		                     SCRAPE_MAX_BY);
	for (size_t i = 0; i < r->by.n; i++)
		if (!sm_promtext_label_name_is_valid(r->by.v[i]) || strcmp(r->by.v[i], "le") == 0)
			k = sm_config_report(p, sm_config_node_get(p, item, "by"),
			                     "by: invalid label name '%s'", r->by.v[i]);
	if (kind == RULE_QUANTILE && r->quantile.set &&
	    !(r->quantile.value >= 0 && r->quantile.value <= 1))
		k = sm_config_report(p, sm_config_node_get(p, item, "quantile"),
		                     "quantile must be between 0 and 1");
	if (kind != RULE_GAUGE && src && r->window_ms < 2 * src->interval_ms)
		k = sm_config_report(
		    p, sm_config_node_get(p, item, "window"),
		    "window (%lldms) must cover at least two scrapes (2 x interval "
		    "%lldms)",
		    (long long)r->window_ms, (long long)src->interval_ms);
	if (k < 0)
		return k;
	def.name = r->metric;
	def.scope = SM_METRIC_EXTERNAL; /* set to PODS by the caller when pods: is given */
	def.fallback = r->fallback;
	def.window_s = (uint32_t)(r->window_ms / 1000);
	return sm_config_add_metric(p, item, &def);
}

static int parse_rules(struct sm_config_parser *p, const struct sm_config_node *node,
                       enum rule_kind kind, struct scrape_rules *rs)
{
	size_t n;
	int r = 0;

	if (!sm_config_node_is_sequence(node))
		return sm_config_report(p, node, "%ss: expected a list of rules",
		                        rule_kind_names[kind]);
	n = sm_config_node_length(node);
	rs->v = calloc(n ? n : 1, sizeof(*rs->v));
	if (!rs->v)
		return -ENOMEM;
	rs->n = n;
	for (size_t i = 0; i < n; i++) {
		int k = parse_rule(p, sm_config_node_item(p, node, i), kind, &rs->v[i]);

		if (k == -ENOMEM)
			return k;
		if (k < 0)
			r = k;
	}
	return r;
}

static int parse_rates(struct sm_config_parser *p, const struct sm_config_node *n, void *t)
{
	return parse_rules(p, n, RULE_RATE, t);
}

static int parse_quantiles(struct sm_config_parser *p, const struct sm_config_node *n, void *t)
{
	return parse_rules(p, n, RULE_QUANTILE, t);
}

static int parse_averages(struct sm_config_parser *p, const struct sm_config_node *n, void *t)
{
	return parse_rules(p, n, RULE_AVERAGE, t);
}

static int parse_gauges(struct sm_config_parser *p, const struct sm_config_node *n, void *t)
{
	return parse_rules(p, n, RULE_GAUGE, t);
}

static const struct sm_config_key pods_keys[] = {
    {.name = "namespace",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct scrape_pods, namespace),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "path", .type = SM_CONFIG_STRING, .offset = offsetof(struct scrape_pods, path)},
    {.name = "port",
     .type = SM_CONFIG_INT,
     .offset = offsetof(struct scrape_pods, port),
     .min = 1,
     .max = 65535,
     .flags = SM_CONFIG_REQUIRED},
    {.name = "scheme",
     .type = SM_CONFIG_ENUM,
     .offset = offsetof(struct scrape_pods, scheme),
     .enum_names = sm_scrape_scheme_names},
    {.name = "selector",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct scrape_pods, selector)},
};

static int parse_pods(struct sm_config_parser *p, const struct sm_config_node *node, void *target)
{
	struct scrape_config *c = target;
	struct sm_selector *sel = NULL;
	struct sm_error err = {0};
	int r;

	c->has_pods = true;
	if (!sm_config_node_is_mapping(node))
		return sm_config_report(p, node,
		                        "pods: expected a mapping with namespace, selector, port");
	r = sm_config_parse_mapping(p, node, pods_keys, sizeof(pods_keys) / sizeof(pods_keys[0]),
	                            &c->pods, "pods");
	if (r == -ENOMEM)
		return r;
	if (c->pods.selector && *c->pods.selector) {
		int k = sm_selector_parse(c->pods.selector, &sel, &err);

		if (k == -ENOMEM)
			return k;
		if (k < 0)
			r = sm_config_report(p, sm_config_node_get(p, node, "selector"),
			                     "pods: selector '%s': %s", c->pods.selector,
			                     err.message);
		sm_selector_free(sel);
	}
	if (c->pods.namespace && !sm_config_dns_label_is_valid(c->pods.namespace))
		r = sm_config_report(p, sm_config_node_get(p, node, "namespace"),
		                     "pods: invalid namespace '%s' (expected a DNS-1123 label)",
		                     c->pods.namespace);
	if (c->pods.path && c->pods.path[0] != '/')
		r = sm_config_report(p, sm_config_node_get(p, node, "path"),
		                     "pods: path '%s' must start with '/'", c->pods.path);
	return r;
}

static const struct sm_config_key source_keys[] = {
    {.name = "averages",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct scrape_config, averages),
     .parse = parse_averages},
    {.name = "ca_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct scrape_config, ca_file)},
    {.name = "gauges",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct scrape_config, gauges),
     .parse = parse_gauges},
    {.name = "insecure_skip_verify",
     .type = SM_CONFIG_BOOL,
     .offset = offsetof(struct scrape_config, insecure_skip_verify)},
    {.name = "max_body_bytes",
     .type = SM_CONFIG_INT,
     .offset = offsetof(struct scrape_config, max_body_bytes),
     .min = 1024,
     .max = 1024 * 1024 * 1024},
    {.name = "pods", .type = SM_CONFIG_CUSTOM, .parse = parse_pods},
    {.name = "quantiles",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct scrape_config, quantiles),
     .parse = parse_quantiles},
    {.name = "rates",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct scrape_config, rates),
     .parse = parse_rates},
    {.name = "targets",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct scrape_config, targets)},
};

int sm_scrape_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                           struct sm_source_config *src)
{
	struct scrape_config *c = calloc(1, sizeof(*c));
	size_t n_metrics_before = src->n_metrics;
	int r;

	if (!c)
		return -ENOMEM;
	c->max_body_bytes = DEFAULT_MAX_BODY;
	/* The pods mapping is parsed into c itself (has_pods and pods). */
	r = sm_config_parse_mapping(p, node, source_keys,
	                            sizeof(source_keys) / sizeof(source_keys[0]), c, "source");
	if (r == -ENOMEM)
		goto out;
	c->kube = sm_config_parser_kube(p);
	for (size_t i = 0; i < c->targets.n; i++) {
		const char *t = c->targets.v[i];

		if (strncmp(t, "http://", 7) != 0 && strncmp(t, "https://", 8) != 0) {
			char shown[200];

			sm_config_url_redact(t, shown, sizeof(shown));
			r = sm_config_report(p, sm_config_node_get(p, node, "targets"),
			                     "target '%s': expected an http:// or https:// URL",
			                     shown);
		}
	}
	if (!c->has_pods && c->targets.n == 0)
		r = sm_config_report(p, node, "a scrape source needs targets or pods");
	if (c->rates.n + c->quantiles.n + c->averages.n + c->gauges.n == 0)
		r = sm_config_report(p, node,
		                     "a scrape source needs at least one of rates, quantiles, "
		                     "averages, gauges");
	if (c->has_pods && !c->pods.path) {
		c->pods.path = strdup(DEFAULT_PATH);
		if (!c->pods.path) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = n_metrics_before; c->has_pods && i < src->n_metrics; i++) {
		struct sm_metric_def *def = &src->metrics[i];

		def->scope = SM_METRIC_PODS;
		if (c->pods.namespace && !def->pods_namespace) {
			def->pods_namespace = strdup(c->pods.namespace);
			if (!def->pods_namespace) {
				r = -ENOMEM;
				goto out;
			}
		}
	}
	/* The aggregate is asked for where the HPA lives: by default the pods' namespace. */
	if (c->has_pods && c->pods.namespace && src->namespaces.n == 0) {
		src->namespaces.v = calloc(2, sizeof(*src->namespaces.v));
		if (!src->namespaces.v) {
			r = -ENOMEM;
			goto out;
		}
		src->namespaces.v[0] = strdup(c->pods.namespace);
		if (!src->namespaces.v[0]) {
			r = -ENOMEM;
			goto out;
		}
		src->namespaces.n = 1;
	}
out:
	src->priv = c;
	return r < 0 ? r : 0;
}
