/* SPDX-License-Identifier: MIT */
/* What a reload compares between the running config and a new one: which sources are
 * unchanged (by the canonical text of their YAML, written out while loading), and which keys
 * only a restart can apply. Pure functions. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/buf.h"
#include "scalemetrics/config.h"

#include "config-internal.h"

/* NULL and "" are both "not set". */
static bool str_equal(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool strv_equal(const struct sm_strv *a, const struct sm_strv *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!str_equal(a->v[i], b->v[i]))
			return false;
	return true;
}

bool sm_source_config_equal(const struct sm_source_config *a, const struct sm_source_config *b)
{
	if (!a || !b || !a->name || !b->name || !a->canonical || !b->canonical)
		return false;
	/* The canonical text holds name, type and everything else written in the entry; the
	 * namespaces may also come from server.namespace (a default applied after parsing). */
	return strcmp(a->name, b->name) == 0 && str_equal(a->type, b->type) &&
	       strcmp(a->canonical, b->canonical) == 0 &&
	       strv_equal(&a->namespaces, &b->namespaces);
}

size_t sm_config_match_sources(const struct sm_config *running, const struct sm_config *next,
                               size_t *ret_from)
{
	size_t kept = 0;

	for (size_t i = 0; i < next->n_sources; i++) {
		ret_from[i] = SIZE_MAX;
		/* Names are unique within a config, so at most one running source matches. */
		for (size_t j = 0; j < running->n_sources; j++) {
			if (sm_source_config_equal(&running->sources[j], &next->sources[i])) {
				ret_from[i] = j;
				kept++;
				break;
			}
		}
	}
	return kept;
}

/* ---- keys that need a restart ---- */

enum field_kind {
	FIELD_STRING,
	FIELD_STRV,
	FIELD_BOOL,
	FIELD_INT64,
	FIELD_UINT32,
	FIELD_AUTH_MODE,
};

struct field {
	const char *name;
	enum field_kind kind;
	size_t offset; /* in struct sm_config */
};

#define SERVER(f) offsetof(struct sm_config, server) + offsetof(struct sm_server_config, f)
#define KUBE(f)   offsetof(struct sm_config, kubernetes) + offsetof(struct sm_kube_config, f)

/* Read once, when the HTTP server, its access checks and the Kubernetes client start.
 * server.namespace is not here: it only gives sources their default namespaces, which
 * sm_source_config_equal compares; nor are log_level and log_format, which apply at once. */
static const struct field restart_fields[] = {
    {"server.listen", FIELD_STRING, SERVER(listen)},
    {"server.access_log", FIELD_BOOL, SERVER(access_log)},
    {"server.tls.cert_file", FIELD_STRING, SERVER(cert_file)},
    {"server.tls.key_file", FIELD_STRING, SERVER(key_file)},
    {"server.auth.mode", FIELD_AUTH_MODE, SERVER(auth_mode)},
    {"server.auth.always_allow_paths", FIELD_STRV, SERVER(always_allow_paths)},
    {"server.auth.cache_ttl", FIELD_INT64, SERVER(cache_ttl_ms)},
    {"server.auth.client_ca_file", FIELD_STRING, SERVER(client_ca_file)},
    {"server.auth.refresh_interval", FIELD_INT64, SERVER(auth_refresh_interval_ms)},
    {"server.auth.requestheader_allowed_names", FIELD_STRV, SERVER(requestheader_allowed_names)},
    {"server.auth.requestheader_client_ca_file", FIELD_STRING,
     SERVER(requestheader_client_ca_file)},
    {"server.auth.requestheader_extra_headers_prefix", FIELD_STRV,
     SERVER(requestheader_extra_headers_prefix)},
    {"server.auth.requestheader_group_headers", FIELD_STRV, SERVER(requestheader_group_headers)},
    {"server.auth.requestheader_username_headers", FIELD_STRV,
     SERVER(requestheader_username_headers)},
    {"server.limits.connection_timeout", FIELD_INT64, SERVER(connection_timeout_ms)},
    {"server.limits.max_connections", FIELD_UINT32, SERVER(max_connections)},
    {"server.limits.max_connections_per_ip", FIELD_UINT32, SERVER(max_connections_per_ip)},
    {"server.limits.max_header_bytes", FIELD_UINT32, SERVER(max_header_bytes)},
    {"kubernetes.ca_file", FIELD_STRING, KUBE(ca_file)},
    {"kubernetes.context", FIELD_STRING, KUBE(context)},
    {"kubernetes.insecure_skip_tls_verify", FIELD_BOOL, KUBE(insecure_skip_tls_verify)},
    {"kubernetes.kubeconfig", FIELD_STRING, KUBE(kubeconfig)},
    {"kubernetes.server", FIELD_STRING, KUBE(server)},
    {"kubernetes.token_file", FIELD_STRING, KUBE(token_file)},
};

static bool field_equal(const struct field *f, const struct sm_config *a, const struct sm_config *b)
{
	const char *pa = (const char *)a + f->offset, *pb = (const char *)b + f->offset;

	switch (f->kind) {
	case FIELD_STRING:
		return str_equal(*(char *const *)(const void *)pa,
		                 *(char *const *)(const void *)pb);
	case FIELD_STRV:
		return strv_equal((const struct sm_strv *)(const void *)pa,
		                  (const struct sm_strv *)(const void *)pb);
	case FIELD_BOOL:
		return *(const bool *)(const void *)pa == *(const bool *)(const void *)pb;
	case FIELD_INT64:
		return *(const int64_t *)(const void *)pa == *(const int64_t *)(const void *)pb;
	case FIELD_UINT32:
		return *(const uint32_t *)(const void *)pa == *(const uint32_t *)(const void *)pb;
	case FIELD_AUTH_MODE:
		return *(const enum sm_auth_mode *)(const void *)pa ==
		       *(const enum sm_auth_mode *)(const void *)pb;
	}
	return false;
}

size_t sm_config_restart_keys(const struct sm_config *running, const struct sm_config *next,
                              const char **ret_keys, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < SM_CONFIG_ARRAY_SIZE(restart_fields); i++) {
		if (field_equal(&restart_fields[i], running, next))
			continue;
		if (n < cap)
			ret_keys[n] = restart_fields[i].name;
		n++;
	}
	/* The forwarding workers and their connections are made when the server starts. */
	if (!sm_config_forward_equal(&running->forward, &next->forward)) {
		if (n < cap)
			ret_keys[n] = "forward";
		n++;
	}
	return n;
}

/* ---- kubernetes ---- */

static int dup_or_null(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static void kube_done(struct sm_kube_config *k)
{
	free(k->kubeconfig);
	free(k->context);
	free(k->server);
	free(k->token_file);
	free(k->ca_file);
}

int sm_config_keep_kubernetes(struct sm_config *next, const struct sm_config *running)
{
	const struct sm_kube_config *from = &running->kubernetes;
	struct sm_kube_config copy = {.insecure_skip_tls_verify = from->insecure_skip_tls_verify};

	if (dup_or_null(from->kubeconfig, &copy.kubeconfig) < 0 ||
	    dup_or_null(from->context, &copy.context) < 0 ||
	    dup_or_null(from->server, &copy.server) < 0 ||
	    dup_or_null(from->token_file, &copy.token_file) < 0 ||
	    dup_or_null(from->ca_file, &copy.ca_file) < 0) {
		kube_done(&copy);
		return -ENOMEM;
	}
	/* In place: sources of next keep pointers to next->kubernetes (sm_config_parser_kube). */
	kube_done(&next->kubernetes);
	next->kubernetes = copy;
	return 0;
}

/* ---- the canonical text of a source, made while loading ---- */

/* A source's entry written out so that two entries are equal exactly when their YAML is:
 * mappings as {key value ...} with the pairs sorted, sequences as [item ...], scalars as their
 * length and bytes (null as ~). Aliases are followed, so the work is bounded: every node
 * written costs at least one byte of CANON_MAX_BYTES, which also counts each copy of a sorted
 * pair into its mapping; past it or past CANON_MAX_DEPTH (a recursive alias) the source gets
 * no text and counts as changed on every reload. */
#define CANON_MAX_BYTES (4u << 20)
#define CANON_MAX_DEPTH 256

struct canon {
	struct sm_buf text; /* unbounded itself: the shared budget bounds it */
	bool failed;
	size_t *budget; /* bytes left to write, shared by a text and the pieces it is made of */
};

static void canon_put(struct canon *c, const char *s, size_t n)
{
	if (c->failed)
		return;
	if (n > *c->budget) {
		c->failed = true;
		return;
	}
	*c->budget -= n;
	if (sm_buf_append(&c->text, s, n) < 0)
		c->failed = true;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void canon_mapping(struct canon *c, const struct sm_config_node *n, unsigned depth);

static void canon_node(struct canon *c, const struct sm_config_node *n, unsigned depth)
{
	char len[32];

	if (c->failed)
		return;
	if (depth > CANON_MAX_DEPTH) {
		c->failed = true;
		return;
	}
	if (n->kind == SM_CONFIG_NODE_SCALAR) {
		if (n->null) {
			canon_put(c, "~", 1);
			return;
		}
		(void)snprintf(len, sizeof(len), "%zu:", strlen(n->scalar));
		canon_put(c, len, strlen(len));
		canon_put(c, n->scalar, strlen(n->scalar));
		return;
	}
	if (n->kind == SM_CONFIG_NODE_SEQUENCE) {
		canon_put(c, "[", 1);
		for (size_t i = 0; i < n->n; i++) {
			canon_put(c, " ", 1);
			canon_node(c, n->items[i], depth + 1);
		}
		canon_put(c, "]", 1);
		return;
	}
	canon_mapping(c, n, depth);
}

/* A mapping: each pair written on its own, then sorted. The pairs' texts hold no NUL
 * (scalars with one are refused), so strcmp orders them. */
static void canon_mapping(struct canon *c, const struct sm_config_node *n, unsigned depth)
{
	char **pairs = NULL;
	size_t done = 0;

	pairs = calloc(n->n ? n->n : 1, sizeof(*pairs));
	if (!pairs) {
		c->failed = true;
		return;
	}
	for (; done < n->n && !c->failed; done++) {
		struct canon pc = {.budget = c->budget};

		canon_node(&pc, n->items[2 * done], depth + 1);
		canon_put(&pc, " ", 1);
		canon_node(&pc, n->items[2 * done + 1], depth + 1);
		if (pc.failed)
			c->failed = true;
		pairs[done] = pc.text.data;
	}
	if (!c->failed) {
		qsort(pairs, n->n, sizeof(*pairs), compare_strings);
		canon_put(c, "{", 1);
		for (size_t i = 0; i < n->n; i++) {
			canon_put(c, " ", 1);
			canon_put(c, pairs[i], strlen(pairs[i]));
		}
		canon_put(c, "}", 1);
	}
	for (size_t i = 0; i < done; i++)
		free(pairs[i]);
	free(pairs);
}

char *sm_config_canonical_text(const struct sm_config_node *node)
{
	size_t budget = CANON_MAX_BYTES;
	struct canon c = {.budget = &budget};

	canon_node(&c, node, 0);
	if (c.failed || !c.text.data) {
		free(c.text.data);
		return NULL;
	}
	return c.text.data;
}
