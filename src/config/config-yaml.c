/* SPDX-License-Identifier: MIT */
/* libyaml's document turned into a tree of nodes that keep their 1-based line and column, so
 * every later error can name its file:line:col; and the node accessors the collectors'
 * config_parse use. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "scalemetrics/config.h"

#include "config-internal.h"

/* Flow collections ([ and {) nested deeper than this are refused (see flow_too_deep). */
#define MAX_FLOW_DEPTH 64

struct sm_config_yaml {
	yaml_document_t doc; /* owns the scalars the nodes point to */
	struct sm_config_node *nodes;
	size_t n_nodes;
};

bool sm_config_node_is_scalar(const struct sm_config_node *n)
{
	return n && n->kind == SM_CONFIG_NODE_SCALAR;
}

bool sm_config_node_is_sequence(const struct sm_config_node *n)
{
	return n && n->kind == SM_CONFIG_NODE_SEQUENCE;
}

bool sm_config_node_is_mapping(const struct sm_config_node *n)
{
	return n && n->kind == SM_CONFIG_NODE_MAPPING;
}

const char *sm_config_node_scalar(const struct sm_config_node *n)
{
	return n && n->kind == SM_CONFIG_NODE_SCALAR ? n->scalar : NULL;
}

size_t sm_config_node_length(const struct sm_config_node *n)
{
	return n && n->kind != SM_CONFIG_NODE_SCALAR ? n->n : 0;
}

const struct sm_config_node *sm_config_node_item(const struct sm_config_parser *p,
                                                 const struct sm_config_node *seq, size_t i)
{
	(void)p;
	if (!seq || seq->kind != SM_CONFIG_NODE_SEQUENCE || i >= seq->n)
		return NULL;
	return seq->items[i];
}

const struct sm_config_node *sm_config_node_get(const struct sm_config_parser *p,
                                                const struct sm_config_node *map, const char *key)
{
	(void)p;
	if (!map || map->kind != SM_CONFIG_NODE_MAPPING || !key)
		return NULL;
	for (size_t i = 0; i < map->n; i++) {
		const char *k = sm_config_node_scalar(map->items[2 * i]);

		if (k && strcmp(k, key) == 0)
			return map->items[2 * i + 1];
	}
	return NULL;
}

struct sm_config_mark sm_config_node_mark(const struct sm_config_node *n)
{
	if (!n)
		return (struct sm_config_mark){0};
	return n->mark;
}

const char *sm_config_node_kind_name(const struct sm_config_node *n)
{
	if (!n)
		return "nothing";
	switch (n->kind) {
	case SM_CONFIG_NODE_SEQUENCE:
		return "a list";
	case SM_CONFIG_NODE_MAPPING:
		return "a mapping";
	case SM_CONFIG_NODE_SCALAR:
		break;
	}
	return "a scalar";
}

static int build_tree(struct sm_config_parser *p, struct sm_config_yaml *t)
{
	const yaml_document_t *doc = &t->doc;
	size_t n = (size_t)(doc->nodes.top - doc->nodes.start);

	t->nodes = calloc(n ? n : 1, sizeof(*t->nodes));
	if (!t->nodes)
		return sm_config_oom(p);
	t->n_nodes = n;
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *y = &doc->nodes.start[i];
		struct sm_config_node *c = &t->nodes[i];
		size_t m = 0;

		c->mark = (struct sm_config_mark){.line = (unsigned)y->start_mark.line + 1,
		                                  .column = (unsigned)y->start_mark.column + 1};
		c->kind = SM_CONFIG_NODE_SCALAR;
		c->scalar = "";
		c->null = true;
		if (y->type == YAML_SCALAR_NODE) {
			const char *s = (const char *)y->data.scalar.value;

			c->scalar = s;
			c->null = y->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
			          (!*s || !strcmp(s, "~") || !strcmp(s, "null") ||
			           !strcmp(s, "Null") || !strcmp(s, "NULL"));
			if (strlen(s) != y->data.scalar.length)
				(void)sm_config_report(p, c, "NUL characters are not allowed");
			continue;
		}
		c->null = false;
		if (y->type == YAML_SEQUENCE_NODE) {
			c->kind = SM_CONFIG_NODE_SEQUENCE;
			m = (size_t)(y->data.sequence.items.top - y->data.sequence.items.start);
		} else if (y->type == YAML_MAPPING_NODE) {
			c->kind = SM_CONFIG_NODE_MAPPING;
			m = 2 * (size_t)(y->data.mapping.pairs.top - y->data.mapping.pairs.start);
		}
		c->items = calloc(m ? m : 1, sizeof(*c->items));
		if (!c->items)
			return sm_config_oom(p);
		for (size_t j = 0; j < m; j++) {
			int idx;

			if (c->kind == SM_CONFIG_NODE_SEQUENCE)
				idx = y->data.sequence.items.start[j];
			else if (j % 2 == 0)
				idx = y->data.mapping.pairs.start[j / 2].key;
			else
				idx = y->data.mapping.pairs.start[j / 2].value;
			assert(idx >= 1 && (size_t)idx <= n);
			c->items[j] = &t->nodes[idx - 1];
		}
		c->n = c->kind == SM_CONFIG_NODE_SEQUENCE ? m : m / 2;
	}
	return 0;
}

static int yaml_error(struct sm_config_parser *p, const yaml_parser_t *y)
{
	struct sm_config_mark mark = {.line = (unsigned)y->problem_mark.line + 1,
	                              .column = (unsigned)y->problem_mark.column + 1};

	if (y->error == YAML_MEMORY_ERROR)
		return sm_config_oom(p);
	if (y->error == YAML_READER_ERROR)
		return sm_config_report_at(p, NULL, "invalid YAML: %s at byte %zu",
		                           y->problem ? y->problem : "unreadable input",
		                           y->problem_offset);
	if (y->context)
		return sm_config_report_at(p, &mark, "invalid YAML: %s (%s at line %u)",
		                           y->problem ? y->problem : "syntax error", y->context,
		                           (unsigned)y->context_mark.line + 1);
	return sm_config_report_at(p, &mark, "invalid YAML: %s",
	                           y->problem ? y->problem : "syntax error");
}

/* libyaml's scanner is quadratic in the depth of flow collections ([ and {), so a small
 * file of nested brackets would stall the load. Real configs nest a few levels: refuse deep
 * nesting up front. Quotes and comments are skipped roughly; a stray bracket in a plain
 * scalar counts, which only matters past MAX_FLOW_DEPTH of them. */
static bool flow_too_deep(const char *text, size_t len, struct sm_config_mark *ret)
{
	struct sm_config_mark at = {.line = 1, .column = 0};
	char quote = 0;
	bool comment = false;
	size_t depth = 0;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		at.column++;
		if (c == '\n') {
			at.line++;
			at.column = 0;
			comment = false;
			continue;
		}
		if (comment)
			continue;
		if (quote) {
			if (c == quote)
				quote = 0;
			else if (c == '\\' && quote == '"' && i + 1 < len)
				i++;
			continue;
		}
		if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t'))
			comment = true;
		else if (c == '\'' || c == '"')
			quote = c;
		else if (c == '[' || c == '{')
			depth++;
		else if ((c == ']' || c == '}') && depth > 0)
			depth--;
		if (depth > MAX_FLOW_DEPTH) {
			*ret = at;
			return true;
		}
	}
	return false;
}

const struct sm_config_node *sm_config_yaml_root(const struct sm_config_yaml *y)
{
	return y && y->n_nodes ? &y->nodes[0] : NULL;
}

void sm_config_yaml_free(struct sm_config_yaml *y)
{
	if (!y)
		return;
	for (size_t i = 0; i < y->n_nodes; i++)
		free(y->nodes[i].items);
	free(y->nodes);
	yaml_document_delete(&y->doc);
	free(y);
}

int sm_config_yaml_parse(struct sm_config_parser *p, const char *text, size_t len,
                         struct sm_config_yaml **ret)
{
	struct sm_config_yaml *t = NULL;
	yaml_parser_t parser;
	yaml_document_t extra;
	bool parser_ok = false, doc_ok = false;
	struct sm_config_mark deep;
	int r;

	*ret = NULL;
	if (len > SM_CONFIG_MAX_FILE_BYTES)
		return sm_config_report_at(p, NULL, "the file is larger than %d bytes",
		                           SM_CONFIG_MAX_FILE_BYTES);
	if (flow_too_deep(text, len, &deep))
		return sm_config_report_at(p, &deep, "[ and { nested deeper than %d levels",
		                           MAX_FLOW_DEPTH);
	t = calloc(1, sizeof(*t));
	if (!t)
		return sm_config_oom(p);
	if (!yaml_parser_initialize(&parser)) {
		r = sm_config_oom(p);
		goto out;
	}
	parser_ok = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &t->doc)) {
		r = yaml_error(p, &parser);
		goto out;
	}
	doc_ok = true;
	if (yaml_document_get_root_node(&t->doc)) {
		if (!yaml_parser_load(&parser, &extra)) {
			r = yaml_error(p, &parser);
			goto out;
		}
		if (yaml_document_get_root_node(&extra)) {
			struct sm_config_mark mark = {
			    .line = (unsigned)extra.start_mark.line + 1,
			    .column = (unsigned)extra.start_mark.column + 1,
			};
			(void)sm_config_report_at(p, &mark, "only one YAML document is allowed");
		}
		yaml_document_delete(&extra);
	}
	r = build_tree(p, t);
	if (r == 0) {
		*ret = t;
		t = NULL;
	}
out:
	if (doc_ok)
		sm_config_yaml_free(t);
	else
		free(t);
	if (parser_ok)
		yaml_parser_delete(&parser);
	return r;
}
