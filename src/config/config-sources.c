/* SPDX-License-Identifier: MIT */
/* The `sources` list: each source's common keys (name, type, interval, timeout, max_age,
 * namespaces, max_series) through their table, then the whole mapping handed to the source
 * parser a program registers (the collectors' registry, which finds the collector by `type:`
 * and lets it parse the rest). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/config.h"

#include "config-internal.h"

#define MAX_SOURCES 1000

static sm_config_source_parse_fn source_parser;

void sm_config_set_source_parser(sm_config_source_parse_fn parse)
{
	source_parser = parse;
}

static bool is_source_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SM_CONFIG_MAX_NAME_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* Keys common to every source; its collector's table has the rest. */
static const struct sm_config_key source_keys[] = {
    {.name = "interval",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct sm_source_config, interval_ms),
     .min = 100,
     .max = 3600000},
    {.name = "max_age",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct sm_source_config, max_age_ms),
     .min = 100,
     .max = 86400000},
    {.name = "max_series",
     .type = SM_CONFIG_UINT32,
     .offset = offsetof(struct sm_source_config, max_series),
     .min = 1,
     .max = 1000000},
    {.name = "name",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_source_config, name),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "namespaces",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_source_config, namespaces)},
    {.name = "timeout",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct sm_source_config, timeout_ms),
     .min = 10,
     .max = 300000},
    {.name = "type",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_source_config, type),
     .flags = SM_CONFIG_REQUIRED},
};

static void check_namespaces(struct sm_config_parser *p, const struct sm_config_node *node,
                             const struct sm_source_config *src)
{
	const struct sm_config_node *v = sm_config_node_get(p, node, "namespaces");

	if (!v)
		return;
	if (src->namespaces.n == 0) {
		(void)sm_config_report(p, v, "\"namespaces\" in %s must not be empty", p->src_what);
		return;
	}
	for (size_t i = 0; i < src->namespaces.n; i++) {
		const struct sm_config_node *at =
		    v->kind == SM_CONFIG_NODE_SEQUENCE ? v->items[i] : v;

		if (!sm_config_dns_label_is_valid(src->namespaces.v[i]))
			(void)sm_config_report(p, at,
			                       "invalid namespace '%.*s' in %s (expected a "
			                       "DNS-1123 label: a-z, 0-9 and '-', at most 63 "
			                       "characters)",
			                       SM_CONFIG_MAX_ECHO, src->namespaces.v[i],
			                       p->src_what);
	}
}

static void check_source_name(struct sm_config_parser *p, const struct sm_config_node *node,
                              const struct sm_source_config *src)
{
	const struct sm_config_node *v = sm_config_node_get(p, node, "name");

	if (!src->name)
		return;
	if (!is_source_name(src->name)) {
		(void)sm_config_report(p, v,
		                       "invalid source name '%.*s' (expected 1-63 characters of "
		                       "a-z, 0-9 and '-')",
		                       SM_CONFIG_MAX_ECHO, src->name);
		return;
	}
	for (const struct sm_source_config *o = p->cfg->sources; o < src; o++) {
		if (o->name && strcmp(o->name, src->name) == 0) {
			(void)sm_config_report(p, v,
			                       "duplicate source name '%s' (first defined at line "
			                       "%u)",
			                       src->name, o->mark.line);
			return;
		}
	}
}

static int parse_source(struct sm_config_parser *p, const struct sm_config_node *node,
                        struct sm_source_config *src, size_t index)
{
	const char *name = sm_config_node_scalar(sm_config_node_get(p, node, "name"));
	size_t errors = p->n_errors;
	const struct sm_config_node *v;
	int r;

	*src = (struct sm_source_config){
	    .interval_ms = 5000,
	    .timeout_ms = 1000,
	    .max_series = 10000,
	    .mark = node->mark,
	};
	if (name && *name)
		(void)snprintf(p->src_what, sizeof(p->src_what), "source '%.*s'",
		               SM_CONFIG_MAX_NAME_LEN + 1, name);
	else
		(void)snprintf(p->src_what, sizeof(p->src_what), "source #%zu", index + 1);
	if (node->kind != SM_CONFIG_NODE_MAPPING)
		return sm_config_report(p, node, "%s must be a mapping, not %s", p->src_what,
		                        sm_config_node_kind_name(node));

	p->src = src;
	p->src_node = node;
	p->src_keys = source_keys;
	p->n_src_keys = SM_CONFIG_ARRAY_SIZE(source_keys);
	r = sm_config_parse_keys(p, node, source_keys, SM_CONFIG_ARRAY_SIZE(source_keys), src, NULL,
	                         true);
	if (r == -ENOMEM)
		goto out;
	check_source_name(p, node, src);
	check_namespaces(p, node, src);
	v = sm_config_node_get(p, node, "max_age");
	if (p->n_errors == errors && v && src->max_age_ms < src->interval_ms) {
		char a[32], b[32];

		sm_config_format_duration(src->max_age_ms, a, sizeof(a));
		sm_config_format_duration(src->interval_ms, b, sizeof(b));
		(void)sm_config_report(p, v,
		                       "\"max_age\" (%s) in %s must be at least the interval (%s)",
		                       a, p->src_what, b);
	}
	if (src->type && !source_parser) {
		(void)sm_config_report(p, sm_config_node_get(p, node, "type"),
		                       "unknown source type '%.*s' (no collectors are registered)",
		                       SM_CONFIG_MAX_ECHO, src->type);
	} else if (src->type) {
		const struct sm_config_node *saved_map = p->map;
		size_t before = p->n_errors;

		p->map = node;
		r = source_parser(p, node, src);
		p->map = saved_map;
		if (r == -ENOMEM)
			p->oom = true;
		else if (r < 0 && p->n_errors == before)
			(void)sm_config_report(p, node, "%s is not valid", p->src_what);
	}
	src->canonical = sm_config_canonical_text(node);
	r = p->oom ? -ENOMEM : 0;
out:
	p->src = NULL;
	p->src_node = NULL;
	p->src_keys = NULL;
	p->n_src_keys = 0;
	return r;
}

int sm_config_parse_sources(struct sm_config_parser *p, const struct sm_config_node *v,
                            void *target)
{
	struct sm_config *cfg = p->cfg;

	(void)target;
	if (v->null)
		return 0;
	if (v->kind != SM_CONFIG_NODE_SEQUENCE)
		return sm_config_report(p, v, "\"sources\" must be a list of sources, not %s",
		                        sm_config_node_kind_name(v));
	if (v->n > MAX_SOURCES)
		return sm_config_report(p, v, "too many sources (%zu, at most %d)", v->n,
		                        MAX_SOURCES);
	cfg->sources = calloc(v->n ? v->n : 1, sizeof(*cfg->sources));
	if (!cfg->sources)
		return sm_config_oom(p);
	for (size_t i = 0; i < v->n; i++) {
		cfg->n_sources++;
		if (parse_source(p, v->items[i], &cfg->sources[i], i) == -ENOMEM)
			return -ENOMEM;
	}
	return 0;
}

void sm_config_source_done(struct sm_source_config *s)
{
	free(s->canonical);
	free(s->name);
	free(s->type);
	sm_strv_done(&s->namespaces);
	for (size_t i = 0; i < s->n_metrics; i++) {
		free(s->metrics[i].name);
		free(s->metrics[i].resource);
		free(s->metrics[i].zero_label);
		free(s->metrics[i].object_template);
		free(s->metrics[i].pods_namespace);
	}
	free(s->metrics);
	if (s->priv_free)
		s->priv_free(s->priv);
}

void sm_config_sources_finish(struct sm_config_parser *p)
{
	struct sm_config *c = p->cfg;

	for (size_t i = 0; i < c->n_sources; i++) {
		struct sm_source_config *s = &c->sources[i];

		if (s->max_age_ms == 0)
			s->max_age_ms = 3 * s->interval_ms;
		if (s->namespaces.n == 0) {
			sm_strv_done(&s->namespaces);
			s->namespaces.v = calloc(2, sizeof(*s->namespaces.v));
			if (!s->namespaces.v) {
				(void)sm_config_oom(p);
				return;
			}
			s->namespaces.v[0] = strdup(c->server.namespace);
			if (!s->namespaces.v[0]) {
				(void)sm_config_oom(p);
				return;
			}
			s->namespaces.n = 1;
		}
	}
}
