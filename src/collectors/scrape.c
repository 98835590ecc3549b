/* SPDX-License-Identifier: MIT */
/* The scrape collector: reads Prometheus text endpoints (static URLs and/or pods discovered
 * through the Kubernetes API) concurrently with libcurl multi, keeps a short history of the
 * series its rules use, and serves per-pod and aggregate rates, quantiles, averages, gauges. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/hash.h"
#include "scalemetrics/kube.h"
#include "scalemetrics/number.h"
#include "scalemetrics/promtext.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"
#include "scalemetrics/window.h"

/*
 * Design. A round: (1) with `pods:`, list the namespace's Running+Ready pods matching the
 * selector, and match them to the targets kept from earlier rounds by pod UID (a vanished pod's
 * target and history are dropped; it is no longer served); (2) fetch every target at once on
 * one curl multi handle, each transfer bounded by the source timeout and max_body_bytes;
 * (3) parse each body; a target whose transfer or parse fails keeps its history but serves
 * nothing this round (never 0: a pod's series are failures naming the error, series.h), and
 * never affects the others; (4) append one point per
 * series the rules use, timestamped with our monotonic clock when its body arrived (exposition
 * timestamps are ignored), and drop points older than the longest window that uses the series;
 * (5) compute each rule per target and sum the targets into the aggregate.
 *
 * What is served, per rule metric M with `by` labels B:
 *  - per pod (with `pods:`): M{B} on object pods/NAME in the pod's namespace, with the pod's
 *    labels as object labels, so `pods/ * /M?labelSelector=app=x` picks pods;
 *  - aggregate: M{B} without an object (the external metric): the sum over every target that
 *    succeeded this round (rates, averages' inputs and gauges summed; for quantiles the buckets
 *    are summed, then the quantile is taken), plus, with their last values, targets whose
 *    scrape failed this round but succeeded within max_age (so one slow scrape does not make
 *    the sum drop; a pod that vanished from the pod list is gone at once). Static `targets:` are
 * not pods: they add to the aggregate only and carry no label of their own, so the aggregate stays
 * one series per B. Rates are PromQL rate() per series (window.h: resets and extrapolation), summed
 * by B. Quantiles and averages use per-bucket (per _sum/_count) increases between the oldest and
 * newest point in the window, with the same reset handling: histogram_quantile(q,
 * sum by (B, le) (increase(h_bucket[w]))). A value that cannot be computed yet (fewer than two
 * points in the window, no observations in it) is absent rather than 0.
 * The round fails only if every target failed (or the pod list could not be read); otherwise
 * the failed targets are named in the round's note.
 */

#define DEFAULT_MAX_BODY (10 * 1024 * 1024)
#define DEFAULT_RATE_WIN 60000
#define DEFAULT_HIST_WIN 300000
#define DEFAULT_PATH     "/metrics"
#define MAX_ERRORS_SHOWN 3
#define MAX_BY           16 /* labels in a rule's `by` */
#define ACCEPT_HEADER    "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1"

enum rule_kind {
	RULE_RATE,
	RULE_QUANTILE,
	RULE_AVERAGE,
	RULE_GAUGE,
	RULE_KIND_MAX,
};

static const char *const rule_kind_names[] = {
    [RULE_RATE] = "rate",
    [RULE_QUANTILE] = "quantile",
    [RULE_AVERAGE] = "average",
    [RULE_GAUGE] = "gauge",
};
_Static_assert(sizeof(rule_kind_names) / sizeof(rule_kind_names[0]) == RULE_KIND_MAX, "kinds");

static const char *const scheme_names[] = {"http", "https", NULL};

/* ---- configuration ---- */

struct scrape_rule {
	enum rule_kind kind;
	char *metric;
	char *counter;   /* rates */
	char *histogram; /* quantiles, averages */
	char *gauge;     /* gauges */
	struct sm_opt_double quantile;
	int64_t window_ms; /* -1 until parsed */
	struct sm_strv by;
	struct sm_opt_double fallback;
	/* Indexes into the state's name table, set by create(). */
	int name_idx;  /* counter, gauge or the histogram's _bucket */
	int sum_idx;   /* histogram _sum (averages) */
	int count_idx; /* histogram _count (averages) */
};

struct scrape_rules {
	struct scrape_rule *v;
	size_t n;
};

struct scrape_pods {
	char *namespace;
	char *selector;
	int64_t port;
	char *path;
	int scheme; /* index in scheme_names */
};

struct scrape_config {
	struct sm_strv targets;
	bool has_pods;
	struct scrape_pods pods;
	int64_t max_body_bytes;
	char *ca_file;
	bool insecure_skip_verify;
	struct scrape_rules rates, quantiles, averages, gauges;
	const struct sm_kube_config *kube; /* borrowed from the loaded config; may be NULL */
};

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

static void scrape_config_free(void *priv)
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
    {.name = "histogram",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct scrape_rule, histogram),
     .flags = SM_CONFIG_REQUIRED},
    RULE_KEY_METRIC,
    {.name = "quantile",
     .type = SM_CONFIG_DOUBLE,
     .offset = offsetof(struct scrape_rule, quantile),
     .flags = SM_CONFIG_REQUIRED},
    RULE_KEY_WINDOW,
};

static const struct sm_config_key average_keys[] = {
    RULE_KEY_BY,
    RULE_KEY_FALLBACK,
    {.name = "histogram",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct scrape_rule, histogram),
     .flags = SM_CONFIG_REQUIRED},
    RULE_KEY_METRIC,
    RULE_KEY_WINDOW,
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
	if (r->by.n > MAX_BY)
		k = sm_config_report(p, sm_config_node_get(p, item, "by"), "by: at most %d labels",
		                     MAX_BY);
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
     .enum_names = scheme_names},
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

static int scrape_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
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

/* ---- runtime state ---- */

/* One series a target exposes that a rule uses, and its recent points. Its key holds
 * "name\0l1\0v1\0l2\0v2\0" with labels sorted by name; name and labels point into it. */
struct entry {
	char *key;
	size_t key_len;
	uint64_t hash;
	int name_idx;
	struct sm_label *labels;
	size_t n_labels;
	double le; /* _bucket entries: the le label */
	uint64_t seen_round;
	double pending;
	struct sm_window_point *pts;
	size_t n_pts, cap_pts;
};

struct target {
	char *id; /* pod UID or the static URL */
	char *url;
	char *shown_url; /* url without its userinfo (a password), for messages */
	bool is_pod;
	char *pod_name;
	char *pod_namespace;
	struct sm_label *pod_labels;
	size_t n_pod_labels;
	bool listed; /* seen in this round's pod list */

	CURL *easy;
	char *body;
	size_t body_len, body_cap;
	size_t max_body;
	bool too_big;
	char errbuf[CURL_ERROR_SIZE];
	bool done;
	CURLcode result;

	bool ok;            /* this round's scrape and parse succeeded */
	bool has_ok;        /* some round's did */
	int64_t last_ok_ms; /* when the body of the last successful round arrived */
	int64_t t_ms;       /* when this round's body arrived */
	char error[384];    /* this round's failure */

	struct entry **slots; /* open addressing, linear probing */
	size_t cap_slots, n_entries;
};

struct name_info {
	char *name;
	int64_t keep_ms; /* the longest window of a rule that reads it; 0: the last point only */
	bool is_bucket;
};

/* One output group (by-values) of a rule: per target, then summed over targets. */
struct bucket_acc {
	double le;
	double count;
};

struct acc {
	char *key; /* by-values, each NUL-terminated */
	size_t key_len;
	bool has;
	double value;               /* rates, gauges */
	double sum_inc, count_inc;  /* averages */
	struct bucket_acc *buckets; /* quantiles */
	size_t n_buckets, cap_buckets;
};

struct acc_set {
	struct acc *v;
	size_t n, cap;
};

struct scrape_state {
	const struct sm_source_config *src;
	const struct scrape_config *cfg;
	struct sm_kube_client *kube;
	CURLM *multi;
	struct target **targets;
	size_t n_targets, cap_targets;
	struct name_info *names;
	size_t n_names;
	struct scrape_rule **rules; /* all rules, borrowed from cfg */
	size_t n_rules;
	struct acc_set *totals;     /* per rule */
	struct acc_set local;       /* one target, one rule */
	struct curl_slist *headers; /* Accept */
	bool curl_initialised;      /* holds a curl_global_init reference */
	uint64_t round;
	char *keybuf; /* building keys in the parse callback */
	size_t keybuf_cap;
};

static void entry_free(struct entry *e)
{
	if (!e)
		return;
	free(e->key);
	free(e->labels);
	free(e->pts);
	free(e);
}

static void target_free(struct target *t)
{
	if (!t)
		return;
	if (t->easy)
		curl_easy_cleanup(t->easy);
	free(t->id);
	free(t->url);
	free(t->shown_url);
	free(t->pod_name);
	free(t->pod_namespace);
	for (size_t i = 0; i < t->n_pod_labels; i++) {
		free((char *)t->pod_labels[i].name);
		free((char *)t->pod_labels[i].value);
	}
	free(t->pod_labels);
	free(t->body);
	for (size_t i = 0; i < t->cap_slots; i++)
		entry_free(t->slots[i]);
	free(t->slots);
	free(t);
}

static void acc_set_clear(struct acc_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].key);
		free(s->v[i].buckets);
	}
	s->n = 0;
}

static void acc_set_done(struct acc_set *s)
{
	acc_set_clear(s);
	free(s->v);
	*s = (struct acc_set){0};
}

static void scrape_destroy(void *state)
{
	struct scrape_state *s = state;

	if (!s)
		return;
	for (size_t i = 0; i < s->n_targets; i++) {
		if (s->multi && s->targets[i]->easy)
			(void)curl_multi_remove_handle(s->multi, s->targets[i]->easy);
		target_free(s->targets[i]);
	}
	free(s->targets);
	if (s->multi)
		(void)curl_multi_cleanup(s->multi);
	sm_kube_client_free(s->kube);
	for (size_t i = 0; i < s->n_names; i++)
		free(s->names[i].name);
	free(s->names);
	if (s->totals)
		for (size_t i = 0; i < s->n_rules; i++)
			acc_set_done(&s->totals[i]);
	free(s->totals);
	acc_set_done(&s->local);
	free(s->rules);
	curl_slist_free_all(s->headers);
	free(s->keybuf);
	if (s->curl_initialised)
		curl_global_cleanup();
	free(s);
}

/* The index of name in the table, added if new; keep_ms grows to the longest window. */
static int name_add(struct scrape_state *s, const char *base, const char *suffix, int64_t keep_ms,
                    bool is_bucket)
{
	size_t len = strlen(base) + strlen(suffix) + 1;
	char *name = malloc(len);
	struct name_info *v;

	if (!name)
		return -ENOMEM;
	(void)snprintf(name, len, "%s%s", base, suffix);
	for (size_t i = 0; i < s->n_names; i++) {
		if (strcmp(s->names[i].name, name) == 0) {
			free(name);
			if (keep_ms > s->names[i].keep_ms)
				s->names[i].keep_ms = keep_ms;
			return (int)i;
		}
	}
	v = realloc(s->names, (s->n_names + 1) * sizeof(*v));
	if (!v) {
		free(name);
		return -ENOMEM;
	}
	s->names = v;
	s->names[s->n_names] =
	    (struct name_info){.name = name, .keep_ms = keep_ms, .is_bucket = is_bucket};
	return (int)s->n_names++;
}

static void target_set_error(struct target *t, const char *fmt, ...) SM_PRINTF(2, 3);

static void target_set_error(struct target *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(t->error, sizeof(t->error), fmt, ap);
	va_end(ap);
	t->ok = false;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct target *t = userdata;
	size_t n = size * nmemb;

	if (n > t->max_body - t->body_len) {
		t->too_big = true;
		return 0;
	}
	if (t->body_len + n + 1 > t->body_cap) {
		size_t cap = t->body_cap ? t->body_cap : 16384;
		char *b;

		while (cap < t->body_len + n + 1)
			cap *= 2;
		b = realloc(t->body, cap);
		if (!b)
			return 0;
		t->body = b;
		t->body_cap = cap;
	}
	memcpy(t->body + t->body_len, ptr, n);
	t->body_len += n;
	return n;
}

static int target_new(struct scrape_state *s, const char *id, const char *url, struct target **ret)
{
	const struct scrape_config *c = s->cfg;
	struct target *t = calloc(1, sizeof(*t));
	CURL *e;
	int r = -ENOMEM;

	if (!t)
		return -ENOMEM;
	t->id = strdup(id);
	t->url = strdup(url);
	t->shown_url = malloc(strlen(url) + 4);
	t->easy = curl_easy_init();
	if (!t->id || !t->url || !t->shown_url || !t->easy)
		goto out;
	sm_config_url_redact(url, t->shown_url, strlen(url) + 4);
	t->max_body = (size_t)c->max_body_bytes;
	e = t->easy;
	(void)curl_easy_setopt(e, CURLOPT_URL, t->url);
	(void)curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	(void)curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	(void)curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	(void)curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	(void)curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	(void)curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->src->timeout_ms);
	(void)curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->src->timeout_ms);
	(void)curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	(void)curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body_bytes);
	(void)curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
	(void)curl_easy_setopt(e, CURLOPT_USERAGENT, "scalemetrics/" SM_VERSION);
	if (c->ca_file)
		(void)curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->insecure_skip_verify) {
		(void)curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		(void)curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	*ret = t;
	t = NULL;
	r = 0;
out:
	target_free(t);
	return r;
}

static int targets_append(struct scrape_state *s, struct target *t)
{
	if (s->n_targets == s->cap_targets) {
		size_t cap = s->cap_targets ? 2 * s->cap_targets : 16;
		struct target **v = realloc(s->targets, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->targets = v;
		s->cap_targets = cap;
	}
	s->targets[s->n_targets++] = t;
	return 0;
}

/* ---- a target's series table ---- */

static struct entry **slot_for(struct target *t, const char *key, size_t len, uint64_t hash)
{
	size_t mask = t->cap_slots - 1;

	for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
		struct entry *e = t->slots[i];

		if (!e || (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0))
			return &t->slots[i];
	}
}

/* Re-inserts the entries that keep (all, or those seen in this round) into a table of cap. */
static int table_rebuild(struct target *t, size_t cap, bool drop_unseen, uint64_t round)
{
	struct entry **old = t->slots;
	size_t old_cap = t->cap_slots;
	struct entry **fresh = calloc(cap, sizeof(*fresh));

	if (!fresh)
		return -ENOMEM;
	t->slots = fresh;
	t->cap_slots = cap;
	t->n_entries = 0;
	for (size_t i = 0; i < old_cap; i++) {
		struct entry *e = old[i];

		if (!e)
			continue;
		if (drop_unseen && e->seen_round != round) {
			entry_free(e);
			continue;
		}
		*slot_for(t, e->key, e->key_len, e->hash) = e;
		t->n_entries++;
	}
	free(old);
	return 0;
}

struct parse_ctx {
	struct scrape_state *s;
	struct target *t;
	char message[384];
};

static int cmp_label_ptr(const void *a, const void *b)
{
	const struct sm_label *x = *(const struct sm_label *const *)a;
	const struct sm_label *y = *(const struct sm_label *const *)b;

	return strcmp(x->name, y->name);
}

static int name_find(const struct scrape_state *s, const char *name)
{
	for (size_t i = 0; i < s->n_names; i++)
		if (strcmp(s->names[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int on_sample(const struct sm_prom_sample *smp, void *userdata)
{
	struct parse_ctx *ctx = userdata;
	struct scrape_state *s = ctx->s;
	struct target *t = ctx->t;
	const struct sm_label *sorted[SM_PROMTEXT_MAX_LABELS];
	int idx = name_find(s, smp->name);
	struct entry **slot, *e;
	size_t len, need;
	uint64_t hash;
	char *p;

	if (idx < 0)
		return 0;
	need = strlen(smp->name) + 1;
	for (size_t i = 0; i < smp->n_labels; i++) {
		sorted[i] = &smp->labels[i];
		need += strlen(smp->labels[i].name) + strlen(smp->labels[i].value) + 2;
	}
	qsort(sorted, smp->n_labels, sizeof(sorted[0]), cmp_label_ptr);
	if (need > s->keybuf_cap) {
		char *b = realloc(s->keybuf, need * 2);

		if (!b)
			return -ENOMEM;
		s->keybuf = b;
		s->keybuf_cap = need * 2;
	}
	p = s->keybuf;
	len = strlen(smp->name) + 1;
	memcpy(p, smp->name, len);
	p += len;
	for (size_t i = 0; i < smp->n_labels; i++) {
		len = strlen(sorted[i]->name) + 1;
		memcpy(p, sorted[i]->name, len);
		p += len;
		len = strlen(sorted[i]->value) + 1;
		memcpy(p, sorted[i]->value, len);
		p += len;
	}
	len = (size_t)(p - s->keybuf);
	hash = sm_hash_bytes(s->keybuf, len);

	if ((t->n_entries + 1) * 2 > t->cap_slots) {
		int r = table_rebuild(t, t->cap_slots ? 2 * t->cap_slots : 64, false, 0);

		if (r < 0)
			return r;
	}
	slot = slot_for(t, s->keybuf, len, hash);
	e = *slot;
	if (!e) {
		const char *q;

		if (t->n_entries >= s->src->max_series) {
			(void)snprintf(ctx->message, sizeof(ctx->message),
			               "line %u: more than %u series used by the rules", smp->line,
			               s->src->max_series);
			return -E2BIG;
		}
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->key = malloc(len);
		e->labels = calloc(smp->n_labels ? smp->n_labels : 1, sizeof(*e->labels));
		if (!e->key || !e->labels) {
			entry_free(e);
			return -ENOMEM;
		}
		memcpy(e->key, s->keybuf, len);
		e->key_len = len;
		e->hash = hash;
		e->name_idx = idx;
		e->n_labels = smp->n_labels;
		q = e->key + strlen(e->key) + 1;
		for (size_t i = 0; i < smp->n_labels; i++) {
			e->labels[i].name = q;
			q += strlen(q) + 1;
			e->labels[i].value = q;
			q += strlen(q) + 1;
		}
		e->le = NAN;
		if (s->names[idx].is_bucket) {
			const char *le = NULL;

			for (size_t i = 0; i < e->n_labels; i++)
				if (strcmp(e->labels[i].name, "le") == 0)
					le = e->labels[i].value;
			if (!le || sm_number_parse_float_special(le, &e->le) < 0 || isnan(e->le)) {
				(void)snprintf(ctx->message, sizeof(ctx->message),
				               "line %u: '%s' needs a numeric 'le' label",
				               smp->line, smp->name);
				entry_free(e);
				return -EINVAL;
			}
		}
		*slot = e;
		t->n_entries++;
	} else if (e->seen_round == s->round) {
		(void)snprintf(ctx->message, sizeof(ctx->message), "line %u: duplicate series '%s'",
		               smp->line, smp->name);
		return -EINVAL;
	}
	e->seen_round = s->round;
	e->pending = smp->value;
	return 0;
}

static int entry_push(struct entry *e, int64_t t_ms, double v, int64_t keep_ms)
{
	size_t drop = 0;

	if (e->n_pts && e->pts[e->n_pts - 1].t_ms >= t_ms) {
		e->pts[e->n_pts - 1].v = v; /* same millisecond: the newer value wins */
		return 0;
	}
	if (e->n_pts == e->cap_pts) {
		size_t cap = e->cap_pts ? 2 * e->cap_pts : 4;
		struct sm_window_point *p = realloc(e->pts, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		e->pts = p;
		e->cap_pts = cap;
	}
	e->pts[e->n_pts++] = (struct sm_window_point){.t_ms = t_ms, .v = v};
	while (drop + 1 < e->n_pts && e->pts[drop].t_ms < t_ms - keep_ms)
		drop++;
	if (drop) {
		memmove(e->pts, e->pts + drop, (e->n_pts - drop) * sizeof(*e->pts));
		e->n_pts -= drop;
	}
	return 0;
}

/* A body arrived: parse it; on success append its points and forget series it no longer
 * has. On failure the target's history is left as it was. */
static int target_ingest(struct scrape_state *s, struct target *t)
{
	struct parse_ctx ctx = {.s = s, .t = t};
	struct sm_error err = {0};
	bool unseen = false;
	int r;

	r = sm_promtext_parse(t->body ? t->body : "", t->body_len, on_sample, &ctx, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		target_set_error(t, "%s", ctx.message[0] ? ctx.message : err.message);
		return 0;
	}
	for (size_t i = 0; i < t->cap_slots; i++) {
		struct entry *e = t->slots[i];

		if (!e)
			continue;
		if (e->seen_round != s->round) {
			unseen = true;
			continue;
		}
		r = entry_push(e, t->t_ms, e->pending, s->names[e->name_idx].keep_ms);
		if (r < 0)
			return r;
	}
	if (unseen) {
		r = table_rebuild(t, t->cap_slots, true, s->round);
		if (r < 0)
			return r;
	}
	t->ok = true;
	t->has_ok = true;
	t->last_ok_ms = t->t_ms;
	return 0;
}

/* ---- rules ---- */

static struct acc *acc_get(struct acc_set *set, const char *key, size_t len)
{
	struct acc *a;

	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].key_len == len && memcmp(set->v[i].key, key, len) == 0)
			return &set->v[i];
	if (set->n == set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 8;
		struct acc *v = realloc(set->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		set->v = v;
		set->cap = cap;
	}
	a = &set->v[set->n];
	*a = (struct acc){.key = malloc(len ? len : 1), .key_len = len};
	if (!a->key)
		return NULL;
	memcpy(a->key, key, len);
	set->n++;
	return a;
}

static int acc_add_bucket(struct acc *a, double le, double count)
{
	for (size_t i = 0; i < a->n_buckets; i++) {
		if (a->buckets[i].le == le) {
			a->buckets[i].count += count;
			return 0;
		}
	}
	if (a->n_buckets == a->cap_buckets) {
		size_t cap = a->cap_buckets ? 2 * a->cap_buckets : 16;
		struct bucket_acc *b = realloc(a->buckets, cap * sizeof(*b));

		if (!b)
			return -ENOMEM;
		a->buckets = b;
		a->cap_buckets = cap;
	}
	a->buckets[a->n_buckets++] = (struct bucket_acc){.le = le, .count = count};
	return 0;
}

/* The group key of an entry: its values of the rule's `by` labels, each NUL-terminated. */
static size_t group_key(const struct scrape_rule *rule, const struct entry *e, char *buf,
                        size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < rule->by.n; i++) {
		const char *v = "";
		size_t len;

		for (size_t j = 0; j < e->n_labels; j++)
			if (strcmp(e->labels[j].name, rule->by.v[i]) == 0)
				v = e->labels[j].value;
		len = strlen(v) + 1;
		if (len > cap - n)
			len = cap - n; /* cut: keys are compared, never printed */
		memcpy(buf + n, v, len);
		n += len;
	}
	return n;
}

static int entry_contribute(const struct scrape_rule *rule, const struct entry *e, int64_t now_ms,
                            struct acc *a)
{
	int64_t start = now_ms - rule->window_ms;
	double v;

	switch (rule->kind) {
	case RULE_RATE:
		if (sm_window_rate(e->pts, e->n_pts, start, now_ms, &v) < 0)
			return 0;
		a->value += v;
		a->has = true;
		return 0;
	case RULE_GAUGE:
		if (!e->n_pts || isnan(e->pts[e->n_pts - 1].v))
			return 0;
		a->value += e->pts[e->n_pts - 1].v;
		a->has = true;
		return 0;
	case RULE_QUANTILE:
		if (sm_window_increase(e->pts, e->n_pts, start, now_ms, &v) < 0)
			return 0;
		a->has = true;
		return acc_add_bucket(a, e->le, v);
	case RULE_AVERAGE:
		if (sm_window_increase(e->pts, e->n_pts, start, now_ms, &v) < 0)
			return 0;
		if (e->name_idx == rule->sum_idx) {
			a->sum_inc += v;
		} else {
			a->count_inc += v;
			a->has = true;
		}
		return 0;
	case RULE_KIND_MAX:
		break;
	}
	return 0;
}

/* The served value of a group; false when there is none (absent, not 0). */
static bool acc_value(const struct scrape_rule *rule, const struct acc *a, double *ret)
{
	struct sm_window_bucket stack[64], *b = stack;
	bool ok = false;
	double v = NAN;

	if (!a->has)
		return false;
	switch (rule->kind) {
	case RULE_RATE:
	case RULE_GAUGE:
		v = a->value;
		ok = true;
		break;
	case RULE_AVERAGE:
		ok = sm_window_average(a->sum_inc, a->count_inc, &v) == 0;
		break;
	case RULE_QUANTILE:
		if (a->n_buckets > 64) {
			b = malloc(a->n_buckets * sizeof(*b));
			if (!b)
				return false;
		}
		for (size_t i = 0; i < a->n_buckets; i++)
			b[i] = (struct sm_window_bucket){.upper_bound = a->buckets[i].le,
			                                 .count = a->buckets[i].count};
		ok = sm_window_histogram_quantile(rule->quantile.value, b, a->n_buckets, &v) == 0;
		if (b != stack)
			free(b);
		break;
	case RULE_KIND_MAX:
		break;
	}
	if (!ok || !isfinite(v))
		return false;
	*ret = v;
	return true;
}

static int emit(const struct scrape_rule *rule, const struct target *t, const struct acc *a,
                struct sm_batch *batch)
{
	struct sm_label labels[MAX_BY];
	struct sm_object_ref obj;
	struct sm_series_in in = {0};
	const char *v = a->key;
	size_t n = 0;
	double value;
	int r;

	if (!acc_value(rule, a, &value))
		return 0;
	for (size_t i = 0; i < rule->by.n && i < MAX_BY; i++) {
		if (*v)
			labels[n++] = (struct sm_label){.name = rule->by.v[i], .value = v};
		v += strlen(v) + 1;
	}
	in.metric = rule->metric;
	in.labels = labels;
	in.n_labels = n;
	in.value = value;
	in.window_s = (uint32_t)(rule->kind == RULE_GAUGE ? 0 : rule->window_ms / 1000);
	if (t) {
		obj = (struct sm_object_ref){
		    .resource = "pods", .name = t->pod_name, .namespace = t->pod_namespace};
		in.object = &obj;
		in.object_labels = t->pod_labels;
		in.n_object_labels = t->n_pod_labels;
	}
	r = sm_batch_add(batch, &in);
	/* Over max_series: dropped and counted by the batch; a NaN: skipped. */
	return r == -ENOMEM ? r : 0;
}

static int merge_into(struct acc_set *total, const struct acc *a)
{
	struct acc *to = acc_get(total, a->key, a->key_len);

	if (!to)
		return -ENOMEM;
	if (!a->has)
		return 0;
	to->has = true;
	to->value += a->value;
	to->sum_inc += a->sum_inc;
	to->count_inc += a->count_inc;
	for (size_t i = 0; i < a->n_buckets; i++)
		if (acc_add_bucket(to, a->buckets[i].le, a->buckets[i].count) < 0)
			return -ENOMEM;
	return 0;
}

static bool entry_feeds(const struct scrape_rule *rule, const struct entry *e)
{
	if (rule->kind == RULE_AVERAGE)
		return e->name_idx == rule->sum_idx || e->name_idx == rule->count_idx;
	return e->name_idx == rule->name_idx;
}

/* Computes every rule over the target's history up to its last successful scrape, adds the
 * per-pod series when serve_pod, and adds its groups to the aggregate. */
static int target_compute(struct scrape_state *s, struct target *t, bool serve_pod,
                          struct sm_batch *batch)
{
	char key[1024];

	for (size_t ri = 0; ri < s->n_rules; ri++) {
		const struct scrape_rule *rule = s->rules[ri];

		acc_set_clear(&s->local);
		for (size_t i = 0; i < t->cap_slots; i++) {
			const struct entry *e = t->slots[i];
			struct acc *a;
			size_t len;
			int r;

			if (!e || !entry_feeds(rule, e))
				continue;
			len = group_key(rule, e, key, sizeof(key));
			a = acc_get(&s->local, key, len);
			if (!a)
				return -ENOMEM;
			r = entry_contribute(rule, e, t->last_ok_ms, a);
			if (r < 0)
				return r;
		}
		for (size_t i = 0; i < s->local.n; i++) {
			int r = 0;

			if (t->is_pod && serve_pod)
				r = emit(rule, t, &s->local.v[i], batch);
			if (r == 0)
				r = merge_into(&s->totals[ri], &s->local.v[i]);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* ---- a round ---- */

/* A pod whose scrape failed: its series (every rule's metric on the pod; their `by` labels
 * are not known) are failures saying why, so that asking for that pod gets 503 rather than
 * nothing. */
static int pod_failed(const struct scrape_state *s, const struct target *t, struct sm_batch *batch)
{
	struct sm_object_ref obj = {
	    .resource = "pods", .name = t->pod_name, .namespace = t->pod_namespace};
	char error[sizeof(t->error) + 512];

	(void)snprintf(error, sizeof(error), "%s: %s", t->shown_url, t->error);
	for (size_t ri = 0; ri < s->n_rules; ri++) {
		struct sm_series_in in = {
		    .metric = s->rules[ri]->metric,
		    .object = &obj,
		    .object_labels = t->pod_labels,
		    .n_object_labels = t->n_pod_labels,
		};
		int r = sm_batch_add_failure(batch, &in, true, error);

		if (r == -ENOMEM)
			return r;
	}
	return 0;
}

/* A target whose values are not in the aggregate (it failed, and its last good values are
 * older than max_age or there are none): the sums would be partial, so each rule's aggregate is
 * a failure saying why instead (no object; labels partial, as the target's `by` values are not
 * known). */
static int total_failed(const struct scrape_state *s, const struct target *t,
                        struct sm_batch *batch)
{
	char error[sizeof(t->error) + 512];

	(void)snprintf(error, sizeof(error), "%s: %s", t->shown_url, t->error);
	for (size_t ri = 0; ri < s->n_rules; ri++) {
		const struct scrape_rule *rule = s->rules[ri];
		struct sm_series_in in = {
		    .metric = rule->metric,
		    .window_s = (uint32_t)(rule->kind == RULE_GAUGE ? 0 : rule->window_ms / 1000),
		};
		int r = sm_batch_add_failure(batch, &in, true, error);

		if (r == -ENOMEM)
			return r;
	}
	return 0;
}

static char *pod_url(const struct scrape_config *c, const char *ip)
{
	size_t len = strlen(ip) + strlen(c->pods.path) + 32;
	char *url = malloc(len);

	if (!url)
		return NULL;
	(void)snprintf(url, len, strchr(ip, ':') ? "%s://[%s]:%lld%s" : "%s://%s:%lld%s",
	               scheme_names[c->pods.scheme], ip, (long long)c->pods.port, c->pods.path);
	return url;
}

static int copy_labels(const struct sm_label *from, size_t n, struct sm_label **ret, size_t *ret_n)
{
	struct sm_label *l = calloc(n ? n : 1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		l[i].name = strdup(from[i].name);
		l[i].value = strdup(from[i].value);
		if (!l[i].name || !l[i].value) {
			for (size_t j = 0; j <= i; j++) {
				free((char *)l[j].name);
				free((char *)l[j].value);
			}
			free(l);
			return -ENOMEM;
		}
	}
	*ret = l;
	*ret_n = n;
	return 0;
}

static int sync_pods(struct scrape_state *s, struct sm_error *reterr)
{
	const struct scrape_config *c = s->cfg;
	struct sm_kube_pod_list list = {0};
	size_t kept = 0;
	int r;

	if (!s->kube) {
		struct sm_kube_options o;

		sm_kube_options_from_config(c->kube, &o);
		o.timeout_ms = s->src->timeout_ms;
		r = sm_kube_client_new(&o, &s->kube, reterr);
		if (r < 0)
			return r;
	}
	r = sm_kube_list_ready_pods(s->kube, c->pods.namespace, c->pods.selector, &list, reterr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->n_targets; i++)
		s->targets[i]->listed = false;
	for (size_t i = 0; i < list.n; i++) {
		const struct sm_kube_pod *pod = &list.items[i];
		const char *id = *pod->uid ? pod->uid : pod->name;
		struct target *t = NULL;
		char *url = pod_url(c, pod->ip);

		if (!url) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t j = 0; j < s->n_targets && !t; j++)
			if (s->targets[j]->is_pod && strcmp(s->targets[j]->id, id) == 0 &&
			    strcmp(s->targets[j]->url, url) == 0)
				t = s->targets[j];
		if (!t) {
			r = target_new(s, id, url, &t);
			if (r == 0) {
				t->is_pod = true;
				r = targets_append(s, t);
				if (r < 0)
					target_free(t);
			}
		}
		free(url);
		if (r < 0)
			goto out;
		/* Labels and names may change on a live pod: refresh them. */
		free(t->pod_name);
		free(t->pod_namespace);
		for (size_t j = 0; j < t->n_pod_labels; j++) {
			free((char *)t->pod_labels[j].name);
			free((char *)t->pod_labels[j].value);
		}
		free(t->pod_labels);
		t->pod_labels = NULL;
		t->n_pod_labels = 0;
		t->pod_name = strdup(pod->name);
		t->pod_namespace = strdup(pod->namespace);
		if (!t->pod_name || !t->pod_namespace) {
			r = -ENOMEM;
			goto out;
		}
		r = copy_labels(pod->labels, pod->n_labels, &t->pod_labels, &t->n_pod_labels);
		if (r < 0)
			goto out;
		t->listed = true;
	}
	/* Pods that vanished (or stopped being ready) are forgotten. */
	for (size_t i = 0; i < s->n_targets; i++) {
		struct target *t = s->targets[i];

		if (t->is_pod && !t->listed)
			target_free(t);
		else
			s->targets[kept++] = t;
	}
	s->n_targets = kept;
	r = 0;
out:
	sm_kube_pod_list_done(&list);
	return r;
}

static void target_finish(struct scrape_state *s, struct target *t, CURLcode rc)
{
	long status = 0;

	t->done = true;
	t->t_ms = sm_time_mono_ms();
	if (rc != CURLE_OK) {
		if (t->too_big || rc == CURLE_FILESIZE_EXCEEDED)
			target_set_error(t, "response larger than max_body_bytes (%lld)",
			                 (long long)s->cfg->max_body_bytes);
		else
			target_set_error(t, "%s",
			                 t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
		return;
	}
	(void)curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		target_set_error(t, "HTTP status %ld", status);
		return;
	}
	t->ok = true;
}

static int drain(struct scrape_state *s)
{
	CURLMsg *m;
	int left;

	for (;;) {
		struct target *t;

		m = curl_multi_info_read(s->multi, &left);
		if (!m)
			break;
		if (m->msg != CURLMSG_DONE)
			continue;
		char *priv = NULL;

		(void)curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		t = (struct target *)priv;
		(void)curl_multi_remove_handle(s->multi, m->easy_handle);
		if (!t)
			continue;
		target_finish(s, t, m->data.result);
		if (t->ok) {
			int r;

			t->ok = false;
			r = target_ingest(s, t);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* Takes every unfinished transfer off the multi handle, so the next round can add it again. */
static void abandon_unfinished(struct scrape_state *s, const char *why)
{
	for (size_t i = 0; i < s->n_targets; i++) {
		struct target *t = s->targets[i];

		if (!t->done) {
			(void)curl_multi_remove_handle(s->multi, t->easy);
			target_set_error(t, "%s", why);
			t->done = true;
		}
	}
}

static int fetch_all(struct scrape_state *s, struct sm_error *reterr)
{
	int running = 0, r;
	CURLMcode mc;

	for (size_t i = 0; i < s->n_targets; i++) {
		struct target *t = s->targets[i];

		t->body_len = 0;
		t->too_big = false;
		t->errbuf[0] = '\0';
		t->error[0] = '\0';
		t->done = false;
		t->ok = false;
		mc = curl_multi_add_handle(s->multi, t->easy);
		if (mc != CURLM_OK) {
			target_set_error(t, "%s", curl_multi_strerror(mc));
			t->done = true;
		}
	}
	for (;;) {
		mc = curl_multi_perform(s->multi, &running);
		if (mc == CURLM_OK) {
			r = drain(s);
			if (r < 0)
				goto fail;
			if (running == 0)
				break;
			mc = curl_multi_poll(s->multi, NULL, 0, 1000, NULL);
		}
		if (mc != CURLM_OK) {
			sm_error_set(reterr, "curl: %s", curl_multi_strerror(mc));
			r = mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EPROTO;
			goto fail;
		}
	}
	abandon_unfinished(s, "transfer did not complete");
	return 0;
fail:
	abandon_unfinished(s, "round aborted");
	return r;
}

static int scrape_collect(void *state, struct sm_batch *batch, struct sm_error *reterr)
{
	struct scrape_state *s = state;
	size_t n_ok = 0, n_failed = 0, shown = 0, pos = 0;
	bool totals_partial = false;
	char note[sizeof(reterr->message)];
	int64_t now_ms;
	int r;

	s->round++;
	if (s->cfg->has_pods) {
		r = sync_pods(s, reterr);
		if (r < 0)
			return r;
	}
	r = fetch_all(s, reterr);
	if (r < 0)
		return r;
	now_ms = sm_time_mono_ms();
	for (size_t i = 0; i < s->n_rules; i++)
		acc_set_clear(&s->totals[i]);
	note[0] = '\0';
	for (size_t i = 0; i < s->n_targets; i++) {
		struct target *t = s->targets[i];

		if (!t->ok) {
			n_failed++;
			if (shown < MAX_ERRORS_SHOWN && pos < sizeof(note)) {
				int k = snprintf(note + pos, sizeof(note) - pos, "%s%s: %s",
				                 shown ? "; " : "", t->shown_url, t->error);

				if (k > 0)
					pos += (size_t)k;
				shown++;
			}
			/* A failure as a pod; in the aggregate with its last values while they
			 * are recent, so one slow scrape does not make the sum drop. */
			if (t->is_pod) {
				r = pod_failed(s, t, batch);
				if (r < 0)
					return r;
			}
			if (t->has_ok && now_ms - t->last_ok_ms <= s->src->max_age_ms) {
				r = target_compute(s, t, false, batch);
			} else {
				totals_partial = true;
				r = total_failed(s, t, batch);
			}
			if (r < 0)
				return r;
			continue;
		}
		n_ok++;
		r = target_compute(s, t, true, batch);
		if (r < 0)
			return r;
	}
	if (n_failed && n_ok == 0) {
		sm_error_set(reterr, "all %zu targets failed: %s", n_failed, note);
		return -EPROTO;
	}
	/* A sum without a target's part is a wrong number: its failures stand instead. */
	for (size_t ri = 0; ri < s->n_rules && !totals_partial; ri++)
		for (size_t i = 0; i < s->totals[ri].n; i++) {
			r = emit(s->rules[ri], NULL, &s->totals[ri].v[i], batch);
			if (r < 0)
				return r;
		}
	if (n_failed)
		sm_error_set(reterr, "%zu of %zu targets failed: %s", n_failed, n_ok + n_failed,
		             note);
	return 0;
}

static int add_rules(struct scrape_state *s, struct scrape_rules *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		struct scrape_rule *rule = &rs->v[i];
		int k = 0;

		rule->sum_idx = rule->count_idx = -1;
		switch (rule->kind) {
		case RULE_RATE:
			k = rule->name_idx = name_add(s, rule->counter, "", rule->window_ms, false);
			break;
		case RULE_GAUGE:
			k = rule->name_idx = name_add(s, rule->gauge, "", 0, false);
			break;
		case RULE_QUANTILE:
			k = rule->name_idx =
			    name_add(s, rule->histogram, "_bucket", rule->window_ms, true);
			break;
		case RULE_AVERAGE:
			rule->name_idx = -1;
			k = rule->sum_idx =
			    name_add(s, rule->histogram, "_sum", rule->window_ms, false);
			if (k >= 0)
				k = rule->count_idx =
				    name_add(s, rule->histogram, "_count", rule->window_ms, false);
			break;
		case RULE_KIND_MAX:
			break;
		}
		if (k < 0)
			return k;
		s->rules[s->n_rules++] = rule;
	}
	return 0;
}

static int scrape_create(const struct sm_source_config *src, void **ret_state)
{
	struct scrape_config *c = src->priv;
	struct scrape_state *s = NULL;
	size_t n_rules;
	int r = -ENOMEM;

	if (!c)
		return -EINVAL;
	n_rules = c->rates.n + c->quantiles.n + c->averages.n + c->gauges.n;
	/* Reference-counted; here on the main thread, before any collector thread uses curl. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	s->curl_initialised = true;
	s->src = src;
	s->cfg = c;
	s->rules = calloc(n_rules ? n_rules : 1, sizeof(*s->rules));
	s->totals = calloc(n_rules ? n_rules : 1, sizeof(*s->totals));
	s->multi = curl_multi_init();
	s->headers = curl_slist_append(NULL, ACCEPT_HEADER);
	if (!s->rules || !s->totals || !s->multi || !s->headers)
		goto out;
	r = add_rules(s, &c->rates);
	if (r == 0)
		r = add_rules(s, &c->quantiles);
	if (r == 0)
		r = add_rules(s, &c->averages);
	if (r == 0)
		r = add_rules(s, &c->gauges);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < c->targets.n; i++) {
		struct target *t = NULL;

		r = target_new(s, c->targets.v[i], c->targets.v[i], &t);
		if (r < 0)
			goto out;
		r = targets_append(s, t);
		if (r < 0) {
			target_free(t);
			goto out;
		}
	}
	*ret_state = s;
	s = NULL;
	r = 0;
out:
	scrape_destroy(s);
	return r;
}

const struct sm_source_ops sm_source_scrape = {
    .type = "scrape",
    .config_parse = scrape_config_parse,
    .config_free = scrape_config_free,
    .create = scrape_create,
    .collect = scrape_collect,
    .destroy = scrape_destroy,
};
