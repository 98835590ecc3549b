/* SPDX-License-Identifier: MIT */
/* The config file: read, parsed and validated whole into an immutable struct sm_config, with
 * every problem reported at its file:line:col before anything starts. This file holds the
 * load (the top-level mapping's table, the passes after it), the error list and the struct's
 * lifetime; config-internal.h says which file does the rest. */
#include "scalemetrics/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/file.h"

#include "config-internal.h"

/* Errors kept per load; the rest are counted in one last message. */
#define MAX_ERRORS 100

static void vreport_at(struct sm_config_parser *p, const struct sm_config_mark *mark,
                       const char *fmt, va_list ap) SM_PRINTF(3, 0);

static void vreport_at(struct sm_config_parser *p, const struct sm_config_mark *mark,
                       const char *fmt, va_list ap)
{
	struct sm_error e = {0};

	p->n_errors++;
	if (p->n_errors > MAX_ERRORS)
		return;
	(void)vsnprintf(e.message, sizeof(e.message), fmt, ap);
	(void)snprintf(e.file, sizeof(e.file), "%s", p->file);
	if (mark) {
		e.line = mark->line;
		e.column = mark->column;
	}
	if (sm_error_list_add(p->errs, &e) < 0)
		p->oom = true;
}

int sm_config_report_at(struct sm_config_parser *p, const struct sm_config_mark *mark,
                        const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport_at(p, mark, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int sm_config_report(struct sm_config_parser *p, const struct sm_config_node *node, const char *fmt,
                     ...)
{
	va_list ap;

	if (!node)
		node = p->map;
	va_start(ap, fmt);
	vreport_at(p, node ? &node->mark : NULL, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int sm_config_oom(struct sm_config_parser *p)
{
	p->oom = true;
	return -ENOMEM;
}

static const struct sm_config_key top_keys[] = {
    {.name = "forward",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_config, forward),
     .parse = sm_config_parse_forward},
    {.name = "kubernetes",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_config, kubernetes),
     .parse = sm_config_parse_kubernetes},
    {.name = "server",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_config, server),
     .parse = sm_config_parse_server},
    {.name = "sources", .type = SM_CONFIG_CUSTOM, .parse = sm_config_parse_sources},
};

void sm_strv_done(struct sm_strv *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

void sm_config_free(struct sm_config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->server.listen);
	free(c->server.cert_file);
	free(c->server.key_file);
	free(c->server.requestheader_client_ca_file);
	sm_strv_done(&c->server.requestheader_allowed_names);
	sm_strv_done(&c->server.requestheader_username_headers);
	sm_strv_done(&c->server.requestheader_group_headers);
	sm_strv_done(&c->server.requestheader_extra_headers_prefix);
	sm_strv_done(&c->server.always_allow_paths);
	free(c->server.client_ca_file);
	free(c->server.namespace);
	free(c->server.log_level);
	free(c->server.log_format);
	free(c->kubernetes.kubeconfig);
	free(c->kubernetes.context);
	free(c->kubernetes.server);
	free(c->kubernetes.token_file);
	free(c->kubernetes.ca_file);
	for (size_t i = 0; i < c->n_sources; i++)
		sm_config_source_done(&c->sources[i]);
	free(c->sources);
	sm_config_forward_done(&c->forward);
	free(c);
}

static struct sm_config *config_new(const char *path)
{
	struct sm_config *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->path = strdup(path);
	if (!c->path || sm_config_server_init(&c->server) < 0) {
		sm_config_free(c);
		return NULL;
	}
	return c;
}

/* Stable, so errors found after parsing (metrics, defaults) land in file order. */
static void finish_errors(struct sm_config_parser *p)
{
	size_t n = p->errs->n - p->first_error;
	struct sm_error *v;

	if (n < 2)
		return; /* also: items may be NULL, and NULL + 0 is undefined */
	v = p->errs->items + p->first_error;
	for (size_t i = 1; i < n; i++) {
		struct sm_error e = v[i];
		size_t j = i;

		while (j > 0 && (v[j - 1].line > e.line ||
		                 (v[j - 1].line == e.line && v[j - 1].column > e.column))) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = e;
	}
	if (p->n_errors > MAX_ERRORS) {
		size_t more = p->n_errors - MAX_ERRORS;

		p->n_errors = 0; /* let this one through */
		(void)sm_config_report_at(p, NULL, "%zu more error%s not shown", more,
		                          more == 1 ? "" : "s");
	}
}

/* keys == NULL: the whole config into a new struct sm_config (*ret); else the root mapping
 * against keys into target (tests of the table machinery). */
static int load_text(const char *name, const char *text, size_t len,
                     const struct sm_config_key *keys, size_t n_keys, void *target,
                     struct sm_config **ret, struct sm_error_list *reterrs)
{
	struct sm_config_parser p = {
	    .file = name ? name : "<string>",
	    .errs = reterrs,
	    .first_error = reterrs->n,
	};
	struct sm_config_yaml *tree = NULL;
	struct sm_config *cfg = NULL;
	int r;

	r = sm_config_yaml_parse(&p, text, len, &tree);
	if (r < 0)
		goto out;
	if (!keys) {
		cfg = config_new(p.file);
		if (!cfg) {
			r = sm_config_oom(&p);
			goto out;
		}
		p.cfg = cfg;
		keys = top_keys;
		n_keys = SM_CONFIG_ARRAY_SIZE(top_keys);
		target = cfg;
	}
	(void)sm_config_parse_keys(&p, sm_config_yaml_root(tree), keys, n_keys, target,
	                           "the top-level mapping", false);
	if (cfg && !p.oom)
		sm_config_sources_finish(&p);
	if (cfg && !p.oom)
		sm_config_check_metrics(&p);
	r = p.oom ? -ENOMEM : p.n_errors ? -EINVAL : 0;
	if (r == 0 && cfg) {
		*ret = cfg;
		cfg = NULL;
	}
out:
	finish_errors(&p);
	sm_config_free(cfg);
	free(p.metrics);
	sm_config_yaml_free(tree);
	return r;
}

int sm_config_load_string(const char *name, const char *text, size_t len, struct sm_config **ret,
                          struct sm_error_list *reterrs)
{
	return load_text(name, text, len, NULL, 0, NULL, ret, reterrs);
}

int sm_config_parse_table_string(const char *name, const char *text, size_t len,
                                 const struct sm_config_key *keys, size_t n_keys, void *target,
                                 struct sm_error_list *reterrs)
{
	return load_text(name, text, len, keys, n_keys, target, NULL, reterrs);
}

int sm_config_read_file(const char *path, char **ret_text, size_t *ret_len,
                        struct sm_error_list *reterrs)
{
	struct sm_error e = {0};
	int r;

	r = sm_file_read(path, SM_CONFIG_MAX_FILE_BYTES, 0, ret_text, ret_len, &e);
	if (r < 0 && r != -ENOMEM)
		(void)sm_error_list_add(reterrs, &e);
	return r;
}

int sm_config_load(const char *path, struct sm_config **ret, struct sm_error_list *reterrs)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	r = sm_config_read_file(path, &text, &len, reterrs);
	if (r == 0)
		r = sm_config_load_string(path, text, len, ret, reterrs);
	free(text);
	return r;
}
