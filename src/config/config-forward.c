/* SPDX-License-Identifier: MIT */
/* The `forward` list of the config file: which adapter answers each metrics API group for the
 * metrics no source declares (docs/configuration.md, "Sharing the metrics APIs with another
 * adapter"). Parsed with the descriptor tables of config-descriptor.c. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/config.h"

#include "config-internal.h"

#define DEFAULT_TIMEOUT_MS 5000

static const char *const group_names[] = {
    [SM_FORWARD_CUSTOM] = "custom.metrics.k8s.io",
    [SM_FORWARD_EXTERNAL] = "external.metrics.k8s.io",
    NULL,
};
static_assert(SM_CONFIG_ARRAY_SIZE(group_names) == SM_FORWARD_GROUP_MAX + 1, "a name per group");
static_assert(sizeof(enum sm_forward_group) == sizeof(int), "SM_CONFIG_ENUM stores an int");

const char *sm_forward_group_to_string(enum sm_forward_group g)
{
	return g >= 0 && g < SM_FORWARD_GROUP_MAX ? group_names[g] : NULL;
}

static const struct sm_config_key forward_keys[] = {
    {.name = "ca_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_forward_config, ca_file)},
    {.name = "group",
     .type = SM_CONFIG_ENUM,
     .offset = offsetof(struct sm_forward_config, group),
     .enum_names = group_names,
     .flags = SM_CONFIG_REQUIRED},
    {.name = "insecure_skip_tls_verify",
     .type = SM_CONFIG_BOOL,
     .offset = offsetof(struct sm_forward_config, insecure_skip_tls_verify)},
    {.name = "timeout",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct sm_forward_config, timeout_ms),
     .min = 100,
     .max = 60000},
    {.name = "token_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_forward_config, token_file)},
    {.name = "url",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_forward_config, url),
     .flags = SM_CONFIG_REQUIRED},
};

static void entry_done(struct sm_forward_config *e)
{
	free(e->url);
	free(e->ca_file);
	free(e->token_file);
}

void sm_config_forward_done(struct sm_forward_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		entry_done(&l->v[i]);
	free(l->v);
	*l = (struct sm_forward_list){0};
}

/* An http(s) URL naming a server only: requests add their own path and query. */
static int check_url(struct sm_config_parser *p, const struct sm_config_node *node,
                     struct sm_forward_config *e, const char *what)
{
	const char *host;
	size_t len;
	char shown[SM_CONFIG_MAX_ECHO + 8];

	sm_config_url_redact(e->url, shown, sizeof(shown));
	if (strncmp(e->url, "https://", 8) == 0)
		host = e->url + 8;
	else if (strncmp(e->url, "http://", 7) == 0)
		host = e->url + 7;
	else
		return sm_config_report(p, node,
		                        "invalid url '%s' in %s (expected an https:// or http:// "
		                        "URL)",
		                        shown, what);
	len = strlen(e->url);
	while (len > (size_t)(host - e->url) && e->url[len - 1] == '/')
		e->url[--len] = '\0';
	/* Requests keep their own path: a prefix would be dropped or doubled. */
	if (*host == '\0' || strpbrk(host, "/?# \t\r\n"))
		return sm_config_report(p, node,
		                        "invalid url '%s' in %s (expected a server's URL, like "
		                        "https://keda-operator-metrics-apiserver.keda.svc:443, "
		                        "without a path or query)",
		                        shown, what);
	return 0;
}

static int parse_entry(struct sm_config_parser *p, const struct sm_config_node *node,
                       struct sm_forward_config *e, size_t index)
{
	char what[64];
	int r;

	(void)snprintf(what, sizeof(what), "forward entry #%zu", index + 1);
	r = sm_config_parse_mapping(p, node, forward_keys, SM_CONFIG_ARRAY_SIZE(forward_keys), e,
	                            what);
	if (r == -ENOMEM)
		return r;
	sm_config_empty_to_null(&e->ca_file);
	sm_config_empty_to_null(&e->token_file);
	if (e->url && check_url(p, sm_config_node_get(p, node, "url"), e, what) < 0)
		r = -EINVAL;
	if (e->ca_file && e->insecure_skip_tls_verify)
		r = sm_config_report(p, sm_config_node_get(p, node, "insecure_skip_tls_verify"),
		                     "%s: give ca_file or insecure_skip_tls_verify, not both",
		                     what);
	return r;
}

int sm_config_parse_forward(struct sm_config_parser *p, const struct sm_config_node *v,
                            void *target)
{
	struct sm_forward_list *l = target;
	size_t n;
	int r = 0;

	if (sm_config_node_is_scalar(v)) {
		const char *s = sm_config_node_scalar(v);

		if (strcmp(s, "") == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0)
			return 0;
	}
	if (!sm_config_node_is_sequence(v))
		return sm_config_report(p, v,
		                        "\"forward\" must be a list of entries (group, url, ...), "
		                        "not a %s",
		                        sm_config_node_is_mapping(v) ? "mapping" : "scalar");
	n = sm_config_node_length(v);
	l->v = calloc(n ? n : 1, sizeof(*l->v));
	if (!l->v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct sm_config_node *item = sm_config_node_item(p, v, i);
		struct sm_forward_config *e = &l->v[i];

		*e = (struct sm_forward_config){
		    .group = SM_FORWARD_GROUP_INVALID,
		    .timeout_ms = DEFAULT_TIMEOUT_MS,
		    .mark = sm_config_node_mark(item),
		};
		l->n++;
		if (parse_entry(p, item, e, i) == -ENOMEM)
			return -ENOMEM;
		for (size_t k = 0; k < i && e->group != SM_FORWARD_GROUP_INVALID; k++) {
			if (l->v[k].group == e->group)
				r = sm_config_report(
				    p, sm_config_node_get(p, item, "group"),
				    "forward entry #%zu: group '%s' already has an "
				    "entry (#%zu); one adapter per group",
				    i + 1, group_names[e->group], k + 1);
		}
	}
	return r;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool sm_config_forward_equal(const struct sm_forward_list *a, const struct sm_forward_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct sm_forward_config *x = &a->v[i], *y = &b->v[i];

		if (x->group != y->group || !str_eq(x->url, y->url) ||
		    !str_eq(x->ca_file, y->ca_file) ||
		    x->insecure_skip_tls_verify != y->insecure_skip_tls_verify ||
		    !str_eq(x->token_file, y->token_file) || x->timeout_ms != y->timeout_ms)
			return false;
	}
	return true;
}
