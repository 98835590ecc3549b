/* SPDX-License-Identifier: MIT */
/* The config file: libyaml's document API turned into a tree of nodes with 1-based positions,
 * then parsed through descriptor tables into an immutable struct sm_config. Every problem is
 * reported at its file:line:col, all of them, before anything starts. */
#include "scalemetrics/config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "scalemetrics/api.h"
#include "scalemetrics/file.h"
#include "scalemetrics/number.h"
#include "scalemetrics/source.h"

#include "config-internal.h"

/* A ConfigMap holds at most 1 MiB, so a bigger file is a mistake. */
#define MAX_FILE_BYTES (1024 * 1024)
/* Errors kept per load; the rest are counted in one last message. */
#define MAX_ERRORS   100
#define MAX_SOURCES  1000
#define MAX_NAME_LEN 63
/* How much of a user value is echoed in a message. */
#define MAX_ECHO 100
/* Flow collections ([ and {) nested deeper than this are refused (see flow_too_deep). */
#define MAX_FLOW_DEPTH 64

#define DEFAULT_LISTEN     "0.0.0.0:6443"
#define DEFAULT_NAMESPACE  "default"
#define DEFAULT_LOG_LEVEL  "info"
#define DEFAULT_LOG_FORMAT "logfmt"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum node_kind {
	NODE_SCALAR,
	NODE_SEQUENCE,
	NODE_MAPPING,
};

struct sm_config_node {
	enum node_kind kind;
	bool null;          /* plain "", "~" or "null": an empty value */
	const char *scalar; /* NODE_SCALAR; owned by the yaml document */
	struct sm_config_mark mark;
	/* NODE_SEQUENCE: n items; NODE_MAPPING: n pairs as key, value, key, value, ... */
	struct sm_config_node **items;
	size_t n;
};

/* Where each metric was declared, for the check of names defined twice (check_metrics). */
struct metric_seen {
	const char *name; /* borrowed from the source's sm_metric_def */
	size_t source;    /* index into cfg->sources */
	size_t def;       /* index into that source's metrics */
	struct sm_config_mark mark;
	size_t seq;
};

struct sm_config_parser {
	const char *file;
	struct sm_error_list *errs;
	size_t first_error; /* errs->n when the load started */
	size_t n_errors;    /* reported, including those past MAX_ERRORS */
	bool oom;
	struct sm_config *cfg;

	struct sm_config_node *nodes;
	size_t n_nodes;

	/* The mapping being parsed (for reports with node == NULL), its description and the
	 * key whose value is being parsed (for custom parsers' messages). */
	const struct sm_config_node *map;
	const char *desc;
	const char *key;

	struct sm_source_config *src; /* the source being parsed, or NULL */
	const struct sm_config_node *src_node;
	char src_what[96]; /* "source 'jobs'" or "source #2" */

	struct metric_seen *metrics;
	size_t n_metrics;
	size_t cap_metrics;
};

static_assert(sizeof(enum sm_auth_mode) == sizeof(int), "SM_CONFIG_ENUM stores an int");

/* ---- nodes ---- */

bool sm_config_node_is_scalar(const struct sm_config_node *n)
{
	return n && n->kind == NODE_SCALAR;
}

bool sm_config_node_is_sequence(const struct sm_config_node *n)
{
	return n && n->kind == NODE_SEQUENCE;
}

bool sm_config_node_is_mapping(const struct sm_config_node *n)
{
	return n && n->kind == NODE_MAPPING;
}

const char *sm_config_node_scalar(const struct sm_config_node *n)
{
	return n && n->kind == NODE_SCALAR ? n->scalar : NULL;
}

size_t sm_config_node_length(const struct sm_config_node *n)
{
	return n && n->kind != NODE_SCALAR ? n->n : 0;
}

const struct sm_config_node *sm_config_node_item(const struct sm_config_parser *p,
                                                 const struct sm_config_node *seq, size_t i)
{
	(void)p;
	if (!seq || seq->kind != NODE_SEQUENCE || i >= seq->n)
		return NULL;
	return seq->items[i];
}

const struct sm_config_node *sm_config_node_get(const struct sm_config_parser *p,
                                                const struct sm_config_node *map, const char *key)
{
	(void)p;
	if (!map || map->kind != NODE_MAPPING || !key)
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

static const char *kind_name(const struct sm_config_node *n)
{
	if (!n)
		return "nothing";
	switch (n->kind) {
	case NODE_SEQUENCE:
		return "a list";
	case NODE_MAPPING:
		return "a mapping";
	case NODE_SCALAR:
		break;
	}
	return "a scalar";
}

/* ---- errors ---- */

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

static int report_at(struct sm_config_parser *p, const struct sm_config_mark *mark, const char *fmt,
                     ...) SM_PRINTF(3, 4);

static int report_at(struct sm_config_parser *p, const struct sm_config_mark *mark, const char *fmt,
                     ...)
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

static int oom(struct sm_config_parser *p)
{
	p->oom = true;
	return -ENOMEM;
}

/* " 'value'" for messages, or "" for secrets; long values are cut. */
static void echo(const struct sm_config_key *k, const char *value, char *buf, size_t len)
{
	if (k && (k->flags & SM_CONFIG_SECRET))
		buf[0] = '\0';
	else
		(void)snprintf(buf, len, " '%.*s%s'", MAX_ECHO, value,
		               strlen(value) > MAX_ECHO ? "..." : "");
}

static void format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % 3600000 == 0)
		(void)snprintf(buf, len, "%" PRId64 "h", ms / 3600000);
	else if (ms != 0 && ms % 60000 == 0)
		(void)snprintf(buf, len, "%" PRId64 "m", ms / 60000);
	else if (ms != 0 && ms % 1000 == 0)
		(void)snprintf(buf, len, "%" PRId64 "s", ms / 1000);
	else
		(void)snprintf(buf, len, "%" PRId64 "ms", ms);
}

/* Messages name the mapping: inside a source, the source's own mapping is "source 'jobs'"
 * whatever the collector passed, and nested mappings get " of source 'jobs'". */
static void describe(struct sm_config_parser *p, const struct sm_config_node *node,
                     const char *what, char *buf, size_t len)
{
	if (p->src && (!what || node == p->src_node))
		(void)snprintf(buf, len, "%s", p->src_what);
	else if (p->src)
		(void)snprintf(buf, len, "%s of %s", what, p->src_what);
	else
		(void)snprintf(buf, len, "%s", what ? what : "the configuration");
}

/* ---- scalar values ---- */

bool sm_config_dns_label_is_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

void sm_config_url_redact(const char *url, char *buf, size_t len)
{
	const char *rest = strstr(url, "://");
	const char *at;

	if (len == 0)
		return;
	/* The last '@' anywhere: a password may hold an unescaped '/', '?', '#' or '@' (which
	 * curl then refuses, with the URL in its error). A path or query with an '@' is shown
	 * cut short: over-redacting is the safe mistake. Without a scheme, from the start. */
	rest = rest ? rest + 3 : url;
	at = strrchr(rest, '@');
	if (!at) {
		(void)snprintf(buf, len, "%s", url);
		return;
	}
	(void)snprintf(buf, len, "%.*s***%s", (int)(rest - url), url, at);
}

static bool is_source_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MAX_NAME_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static int type_error(struct sm_config_parser *p, const struct sm_config_node *v, const char *key,
                      const char *desc, const char *expected)
{
	return sm_config_report(p, v, "\"%s\" in %s must be %s, not %s", key, desc, expected,
	                        kind_name(v));
}

static int replace_string(struct sm_config_parser *p, char **dst, const char *value)
{
	char *copy = strdup(value);

	if (!copy)
		return oom(p);
	free(*dst);
	*dst = copy;
	return 0;
}

static int parse_strv(struct sm_config_parser *p, const struct sm_config_key *k,
                      const struct sm_config_node *v, struct sm_strv *dst, const char *desc)
{
	struct sm_strv nv = {0};
	size_t n;
	int r = 0;

	if (v->kind == NODE_MAPPING)
		return type_error(p, v, k->name, desc, "a list of strings");
	n = v->kind == NODE_SEQUENCE ? v->n : (v->null ? 0 : 1);
	for (size_t i = 0; v->kind == NODE_SEQUENCE && i < n; i++)
		if (v->items[i]->kind != NODE_SCALAR)
			r = sm_config_report(p, v->items[i],
			                     "items of \"%s\" in %s must be strings, not %s",
			                     k->name, desc, kind_name(v->items[i]));
	if (r < 0)
		return r;
	nv.v = calloc(n + 1, sizeof(*nv.v));
	if (!nv.v)
		return oom(p);
	for (size_t i = 0; i < n; i++) {
		const struct sm_config_node *item = v->kind == NODE_SEQUENCE ? v->items[i] : v;

		nv.v[i] = strdup(item->null ? "" : item->scalar);
		if (!nv.v[i]) {
			sm_strv_done(&nv);
			return oom(p);
		}
		nv.n++;
	}
	sm_strv_done(dst);
	*dst = nv;
	return 0;
}

static int parse_enum_value(struct sm_config_parser *p, const struct sm_config_key *k,
                            const struct sm_config_node *v, const char *desc, int *ret)
{
	char list[256] = "";
	char val[MAX_ECHO + 8];
	size_t used = 0;

	for (int i = 0; k->enum_names[i]; i++) {
		if (strcmp(v->scalar, k->enum_names[i]) == 0) {
			*ret = i;
			return 0;
		}
	}
	for (size_t i = 0; k->enum_names[i] && used < sizeof(list); i++) {
		int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
		                 k->enum_names[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
	echo(k, v->scalar, val, sizeof(val));
	return sm_config_report(p, v, "invalid value%s for \"%s\" in %s (expected one of: %s)", val,
	                        k->name, desc, list);
}

static int range_error(struct sm_config_parser *p, const struct sm_config_key *k,
                       const struct sm_config_node *v, const char *desc, int64_t lo, int64_t hi,
                       bool duration)
{
	char a[32], b[32], val[MAX_ECHO + 8];

	echo(k, v->scalar, val, sizeof(val));
	if (duration) {
		format_duration(lo, a, sizeof(a));
		format_duration(hi, b, sizeof(b));
	} else {
		(void)snprintf(a, sizeof(a), "%" PRId64, lo);
		(void)snprintf(b, sizeof(b), "%" PRId64, hi);
	}
	if (hi == INT64_MAX)
		return sm_config_report(p, v, "\"%s\" in %s must be at least %s%s%s%s", k->name,
		                        desc, a, *val ? " (got" : "", val, *val ? ")" : "");
	return sm_config_report(p, v, "\"%s\" in %s must be between %s and %s%s%s%s", k->name, desc,
	                        a, b, *val ? " (got" : "", val, *val ? ")" : "");
}

/* Bounds of an INT, UINT32 or DURATION key: both 0 means none; a max of 0 above a positive
 * min means no upper bound. */
static void bounds(const struct sm_config_key *k, int64_t *lo, int64_t *hi)
{
	*lo = INT64_MIN;
	*hi = INT64_MAX;
	if (k->min == 0 && k->max == 0)
		return;
	*lo = k->min;
	if (!(k->max == 0 && k->min > 0))
		*hi = k->max;
}

static int parse_number(struct sm_config_parser *p, const struct sm_config_key *k,
                        const struct sm_config_node *v, void *dst, const char *desc)
{
	char val[MAX_ECHO + 8];
	int64_t lo, hi, x = 0;
	int r;

	bounds(k, &lo, &hi);
	if (k->type == SM_CONFIG_UINT32) {
		lo = lo < 0 ? 0 : lo;
		hi = hi > UINT32_MAX ? UINT32_MAX : hi;
	} else if (k->type == SM_CONFIG_DURATION) {
		lo = lo < 0 ? 0 : lo;
	}
	echo(k, v->scalar, val, sizeof(val));
	if (k->type == SM_CONFIG_DURATION)
		r = sm_number_parse_duration_ms(v->scalar, &x);
	else
		r = sm_number_parse_int64(v->scalar, &x);
	if (r == -ERANGE)
		return range_error(p, k, v, desc, lo, hi, k->type == SM_CONFIG_DURATION);
	if (r < 0 && k->type == SM_CONFIG_DURATION)
		return sm_config_report(p, v,
		                        "invalid duration%s for \"%s\" in %s (expected a number "
		                        "with a unit: 500ms, 5s, 1m, 1h)",
		                        val, k->name, desc);
	if (r < 0)
		return sm_config_report(p, v, "invalid integer%s for \"%s\" in %s", val, k->name,
		                        desc);
	if (x < lo || x > hi)
		return range_error(p, k, v, desc, lo, hi, k->type == SM_CONFIG_DURATION);
	if (k->type == SM_CONFIG_UINT32)
		*(uint32_t *)dst = (uint32_t)x;
	else
		*(int64_t *)dst = x;
	return 0;
}

static int parse_value(struct sm_config_parser *p, const struct sm_config_key *k,
                       const struct sm_config_node *v, void *dst, const char *desc)
{
	static const char *const expected[SM_CONFIG_TYPE_MAX] = {
	    [SM_CONFIG_STRING] = "a string", [SM_CONFIG_DURATION] = "a duration",
	    [SM_CONFIG_INT] = "an integer",  [SM_CONFIG_UINT32] = "an integer",
	    [SM_CONFIG_DOUBLE] = "a number", [SM_CONFIG_BOOL] = "true or false",
	    [SM_CONFIG_ENUM] = "a string",
	};
	char val[MAX_ECHO + 8];
	double d;
	int e;

	switch (k->type) {
	case SM_CONFIG_CUSTOM:
		return k->parse(p, v, dst);
	case SM_CONFIG_STRING_LIST:
		return parse_strv(p, k, v, dst, desc);
	case SM_CONFIG_TYPE_MAX:
		break;
	default:
		if (v->kind != NODE_SCALAR)
			return type_error(p, v, k->name, desc, expected[k->type]);
		break;
	}

	echo(k, v->scalar, val, sizeof(val));
	switch (k->type) {
	case SM_CONFIG_STRING:
		return replace_string(p, dst, v->null ? "" : v->scalar);
	case SM_CONFIG_DOUBLE:
		if (v->null) {
			*(struct sm_opt_double *)dst = (struct sm_opt_double){0};
			return 0;
		}
		if (sm_number_parse_double(v->scalar, &d) < 0)
			return sm_config_report(p, v, "invalid number%s for \"%s\" in %s", val,
			                        k->name, desc);
		*(struct sm_opt_double *)dst = (struct sm_opt_double){.set = true, .value = d};
		return 0;
	default:
		break;
	}

	if (v->null)
		return sm_config_report(p, v, "missing value for \"%s\" in %s", k->name, desc);
	switch (k->type) {
	case SM_CONFIG_DURATION:
	case SM_CONFIG_INT:
	case SM_CONFIG_UINT32:
		return parse_number(p, k, v, dst, desc);
	case SM_CONFIG_BOOL:
		if (strcmp(v->scalar, "true") == 0)
			*(bool *)dst = true;
		else if (strcmp(v->scalar, "false") == 0)
			*(bool *)dst = false;
		else
			return sm_config_report(
			    p, v,
			    "invalid value%s for \"%s\" in %s (expected true or "
			    "false)",
			    val, k->name, desc);
		return 0;
	case SM_CONFIG_ENUM:
		if (parse_enum_value(p, k, v, desc, &e) < 0)
			return -EINVAL;
		*(int *)dst = e;
		return 0;
	default:
		break;
	}
	assert(!"unhandled config key type");
	return -EINVAL;
}

/* ---- mappings ---- */

static const struct sm_config_key *find_key(const struct sm_config_key *keys, size_t n_keys,
                                            const char *name)
{
	for (size_t i = 0; i < n_keys; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static bool is_secret_word(const char *name)
{
	static const char *const words[] = {"api_key", "apikey",   "dsn",    "pass",
	                                    "passwd",  "password", "secret", "token"};

	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (strcmp(name, words[i]) == 0)
			return true;
	return false;
}

static int report_unknown(struct sm_config_parser *p, const struct sm_config_node *key,
                          const struct sm_config_key *keys, size_t n_keys, const char *desc)
{
	char file_key[128], env_key[128], hint[300] = "";
	const char *name = key->scalar;
	bool has_file, has_env;

	(void)snprintf(file_key, sizeof(file_key), "%.100s_file", name);
	(void)snprintf(env_key, sizeof(env_key), "%.100s_env", name);
	has_file = find_key(keys, n_keys, file_key) != NULL;
	has_env = find_key(keys, n_keys, env_key) != NULL;
	if (has_file && has_env)
		(void)snprintf(hint, sizeof(hint), " (secrets are given by %s or %s)", file_key,
		               env_key);
	else if (has_file || has_env)
		(void)snprintf(hint, sizeof(hint), " (secrets are given by %s)",
		               has_file ? file_key : env_key);
	else if (is_secret_word(name))
		(void)snprintf(hint, sizeof(hint), " (secrets are never written inline)");
	return sm_config_report(p, key, "unknown key \"%.*s%s\" in %s%s", MAX_ECHO, name,
	                        strlen(name) > MAX_ECHO ? "..." : "", desc, hint);
}

static const struct sm_config_key source_keys[7];

static int parse_mapping(struct sm_config_parser *p, const struct sm_config_node *node,
                         const struct sm_config_key *keys, size_t n_keys, void *target,
                         const char *what, bool only_known)
{
	const struct sm_config_node *saved_map = p->map;
	const char *saved_desc = p->desc, *saved_key = p->key;
	size_t errors = p->n_errors;
	size_t *first = NULL; /* 1 + the pair where each key was first seen */
	size_t n_pairs;
	char desc[256];
	int r = 0;

	for (size_t i = 1; i < n_keys; i++)
		assert(strcmp(keys[i - 1].name, keys[i].name) < 0);

	describe(p, node, what, desc, sizeof(desc));
	if (node && !node->null && node->kind != NODE_MAPPING)
		return sm_config_report(p, node, "%s must be a mapping, not %s", desc,
		                        kind_name(node));
	n_pairs = node && node->kind == NODE_MAPPING ? node->n : 0;
	first = calloc(n_keys ? n_keys : 1, sizeof(*first));
	if (!first)
		return oom(p);
	if (node)
		p->map = node;
	p->desc = desc;

	for (size_t i = 0; i < n_pairs; i++) {
		const struct sm_config_node *key = node->items[2 * i];
		const struct sm_config_node *value = node->items[2 * i + 1];
		const struct sm_config_key *k;
		bool elsewhere;
		size_t idx;

		if (key->kind != NODE_SCALAR) {
			r = sm_config_report(p, key, "keys in %s must be strings, not %s", desc,
			                     kind_name(key));
			continue;
		}
		k = find_key(keys, n_keys, key->scalar);
		if (!k) {
			/* A collector's table for the source mapping need not list the common keys
			 * (name, type, interval, ...): config.c has parsed them already. */
			bool common = node == p->src_node &&
			              find_key(source_keys, ARRAY_SIZE(source_keys), key->scalar);

			if (!only_known && !common)
				r = report_unknown(p, key, keys, n_keys, desc);
			continue;
		}
		idx = (size_t)(k - keys);
		elsewhere = k->type == SM_CONFIG_CUSTOM && !k->parse;
		if (first[idx]) {
			if (!elsewhere)
				r = sm_config_report(
				    p, key, "duplicate key \"%s\" in %s (first at line %u)",
				    k->name, desc, node->items[2 * (first[idx] - 1)]->mark.line);
			continue;
		}
		first[idx] = i + 1;
		if (elsewhere)
			continue;
		p->key = k->name;
		if (parse_value(p, k, value, (char *)target + k->offset, desc) < 0)
			r = -EINVAL;
		if (p->oom)
			goto out;
	}
	for (size_t i = 0; i < n_keys; i++)
		if ((keys[i].flags & SM_CONFIG_REQUIRED) && !first[i])
			r = sm_config_report(p, node, "missing required key \"%s\" in %s",
			                     keys[i].name, desc);
out:
	free(first);
	p->map = saved_map;
	p->desc = saved_desc;
	p->key = saved_key;
	if (p->oom)
		return -ENOMEM;
	return r < 0 || p->n_errors > errors ? -EINVAL : 0;
}

int sm_config_parse_mapping(struct sm_config_parser *p, const struct sm_config_node *node,
                            const struct sm_config_key *keys, size_t n_keys, void *target,
                            const char *what)
{
	return parse_mapping(p, node, keys, n_keys, target, what, false);
}

/* ---- server and kubernetes ---- */

/* The string value of the key being parsed by a custom parser, into *dst. */
static int take_string(struct sm_config_parser *p, const struct sm_config_node *v, char **dst)
{
	if (v->kind != NODE_SCALAR)
		return type_error(p, v, p->key, p->desc, "a string");
	return replace_string(p, dst, v->null ? "" : v->scalar);
}

/* "" means unset for optional file paths. */
static void empty_to_null(char **s)
{
	if (*s && !**s) {
		free(*s);
		*s = NULL;
	}
}

static bool listen_is_valid(const char *s)
{
	const char *port, *host_end;
	char host[64];
	uint64_t n;

	if (s[0] == '[') {
		host_end = strchr(s, ']');
		if (!host_end || host_end[1] != ':' || (size_t)(host_end - s - 1) >= sizeof(host))
			return false;
		memcpy(host, s + 1, (size_t)(host_end - s - 1));
		host[host_end - s - 1] = '\0';
		if (inet_pton(AF_INET6, host, &(struct in6_addr){0}) != 1)
			return false;
		port = host_end + 2;
	} else {
		host_end = strrchr(s, ':');
		if (!host_end || host_end == s || host_end - s > 253)
			return false;
		for (const char *c = s; c < host_end; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'))
				return false;
		port = host_end + 1;
	}
	return sm_number_parse_uint64(port, &n) == 0 && n >= 1 && n <= 65535;
}

static int parse_listen(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	char **dst = target;
	int r = take_string(p, v, dst);

	if (r < 0)
		return r;
	if (!listen_is_valid(*dst))
		return sm_config_report(p, v,
		                        "invalid listen address '%.*s' in %s (expected host:port "
		                        "or [ipv6]:port, port 1-65535)",
		                        MAX_ECHO, *dst, p->desc);
	return 0;
}

static int parse_namespace(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	char **dst = target;
	int r = take_string(p, v, dst);

	if (r < 0)
		return r;
	if (!sm_config_dns_label_is_valid(*dst))
		return sm_config_report(
		    p, v,
		    "invalid namespace '%.*s' in %s (expected a DNS-1123 label: "
		    "a-z, 0-9 and '-', at most 63 characters)",
		    MAX_ECHO, *dst, p->desc);
	return 0;
}

static int parse_name_from(struct sm_config_parser *p, const struct sm_config_node *v, char **dst,
                           const char *const *names)
{
	const struct sm_config_key k = {
	    .name = p->key, .type = SM_CONFIG_ENUM, .enum_names = names};
	int i;

	if (v->kind != NODE_SCALAR)
		return type_error(p, v, p->key, p->desc, "a string");
	if (v->null)
		return sm_config_report(p, v, "missing value for \"%s\" in %s", p->key, p->desc);
	if (parse_enum_value(p, &k, v, p->desc, &i) < 0)
		return -EINVAL;
	return replace_string(p, dst, names[i]);
}

static int parse_log_level(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	static const char *const names[] = {"error", "warn", "info", "debug", NULL};

	return parse_name_from(p, v, target, names);
}

static int parse_log_format(struct sm_config_parser *p, const struct sm_config_node *v,
                            void *target)
{
	static const char *const names[] = {"logfmt", "json", NULL};

	return parse_name_from(p, v, target, names);
}

static const char *const auth_mode_names[] = {
    [SM_AUTH_DELEGATED] = "delegated",
    [SM_AUTH_NONE] = "none",
    NULL,
};
static_assert(ARRAY_SIZE(auth_mode_names) == SM_AUTH_MODE_MAX + 1, "auth mode names");

static const struct sm_config_key auth_keys[] = {
    {.name = "always_allow_paths",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_server_config, always_allow_paths)},
    {.name = "cache_ttl",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct sm_server_config, cache_ttl_ms),
     .min = 0,
     .max = 3600000},
    {.name = "client_ca_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_server_config, client_ca_file)},
    {.name = "mode",
     .type = SM_CONFIG_ENUM,
     .offset = offsetof(struct sm_server_config, auth_mode),
     .enum_names = auth_mode_names},
    {.name = "refresh_interval",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct sm_server_config, auth_refresh_interval_ms),
     .min = 1000,
     .max = 86400000},
    {.name = "requestheader_allowed_names",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_server_config, requestheader_allowed_names)},
    {.name = "requestheader_client_ca_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_server_config, requestheader_client_ca_file)},
    {.name = "requestheader_extra_headers_prefix",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_server_config, requestheader_extra_headers_prefix)},
    {.name = "requestheader_group_headers",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_server_config, requestheader_group_headers)},
    {.name = "requestheader_username_headers",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sm_server_config, requestheader_username_headers)},
};

static const struct sm_config_key limits_keys[] = {
    {.name = "connection_timeout",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct sm_server_config, connection_timeout_ms),
     .min = 1000,
     .max = 3600000},
    {.name = "max_connections",
     .type = SM_CONFIG_UINT32,
     .offset = offsetof(struct sm_server_config, max_connections),
     .min = 1,
     .max = 1000000},
    {.name = "max_connections_per_ip",
     .type = SM_CONFIG_UINT32,
     .offset = offsetof(struct sm_server_config, max_connections_per_ip),
     .min = 1,
     .max = 1000000},
    {.name = "max_header_bytes",
     .type = SM_CONFIG_UINT32,
     .offset = offsetof(struct sm_server_config, max_header_bytes),
     .min = 1024,
     .max = 1048576},
};

static const struct sm_config_key tls_keys[] = {
    {.name = "cert_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_server_config, cert_file)},
    {.name = "key_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_server_config, key_file)},
};

static int parse_auth(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	struct sm_server_config *s = target;
	int r = sm_config_parse_mapping(p, v, auth_keys, ARRAY_SIZE(auth_keys), s, "server.auth");

	empty_to_null(&s->client_ca_file);
	empty_to_null(&s->requestheader_client_ca_file);
	return r;
}

static int parse_limits(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	return sm_config_parse_mapping(p, v, limits_keys, ARRAY_SIZE(limits_keys), target,
	                               "server.limits");
}

static int parse_tls(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	struct sm_server_config *s = target;
	int r = sm_config_parse_mapping(p, v, tls_keys, ARRAY_SIZE(tls_keys), s, "server.tls");

	empty_to_null(&s->cert_file);
	empty_to_null(&s->key_file);
	if (r == 0 && !s->cert_file != !s->key_file)
		r = sm_config_report(p, v,
		                     "server.tls needs both cert_file and key_file, or neither "
		                     "(%s is missing)",
		                     s->cert_file ? "key_file" : "cert_file");
	return r;
}

static const struct sm_config_key server_keys[] = {
    {.name = "access_log",
     .type = SM_CONFIG_BOOL,
     .offset = offsetof(struct sm_server_config, access_log)},
    {.name = "auth", .type = SM_CONFIG_CUSTOM, .parse = parse_auth},
    {.name = "limits", .type = SM_CONFIG_CUSTOM, .parse = parse_limits},
    {.name = "listen",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_server_config, listen),
     .parse = parse_listen,
     .flags = SM_CONFIG_NO_RELOAD},
    {.name = "log_format",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_server_config, log_format),
     .parse = parse_log_format},
    {.name = "log_level",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_server_config, log_level),
     .parse = parse_log_level},
    {.name = "namespace",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_server_config, namespace),
     .parse = parse_namespace},
    {.name = "tls", .type = SM_CONFIG_CUSTOM, .parse = parse_tls},
};

static int parse_server(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	return sm_config_parse_mapping(p, v, server_keys, ARRAY_SIZE(server_keys), target,
	                               "server");
}

static const struct sm_config_key kube_keys[] = {
    {.name = "ca_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_kube_config, ca_file)},
    {.name = "context",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_kube_config, context),
     .flags = SM_CONFIG_NO_RELOAD},
    {.name = "insecure_skip_tls_verify",
     .type = SM_CONFIG_BOOL,
     .offset = offsetof(struct sm_kube_config, insecure_skip_tls_verify)},
    {.name = "kubeconfig",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_kube_config, kubeconfig),
     .flags = SM_CONFIG_NO_RELOAD},
    {.name = "server",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_kube_config, server),
     .flags = SM_CONFIG_NO_RELOAD},
    {.name = "token_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sm_kube_config, token_file)},
};

static int parse_kubernetes(struct sm_config_parser *p, const struct sm_config_node *v,
                            void *target)
{
	struct sm_kube_config *k = target;
	int r = sm_config_parse_mapping(p, v, kube_keys, ARRAY_SIZE(kube_keys), k, "kubernetes");

	empty_to_null(&k->context);
	empty_to_null(&k->server);
	empty_to_null(&k->token_file);
	empty_to_null(&k->ca_file);
	/* A server without a kubeconfig reads none, so a context would mean nothing. */
	if (k->context && k->server && (!k->kubeconfig || !*k->kubeconfig))
		r = sm_config_report(p, sm_config_node_get(p, v, "context"),
		                     "context in kubernetes needs kubernetes.kubeconfig: with "
		                     "kubernetes.server alone no kubeconfig is read");
	if (k->server && strncmp(k->server, "https://", 8) != 0 &&
	    strncmp(k->server, "http://", 7) != 0) {
		char shown[MAX_ECHO + 4];

		sm_config_url_redact(k->server, shown, sizeof(shown));
		r = sm_config_report(p, sm_config_node_get(p, v, "server"),
		                     "invalid server '%s' in kubernetes (expected an https:// or "
		                     "http:// URL)",
		                     shown);
	}
	return r;
}

/* ---- sources ---- */

static const struct sm_config_key source_keys[7] = {
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
		const struct sm_config_node *at = v->kind == NODE_SEQUENCE ? v->items[i] : v;

		if (!sm_config_dns_label_is_valid(src->namespaces.v[i]))
			(void)sm_config_report(p, at,
			                       "invalid namespace '%.*s' in %s (expected a "
			                       "DNS-1123 label: a-z, 0-9 and '-', at most 63 "
			                       "characters)",
			                       MAX_ECHO, src->namespaces.v[i], p->src_what);
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
		                       MAX_ECHO, src->name);
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

/* ---- canonical text of a source, for reloads ---- */

/* A source's entry written out so that two entries are equal exactly when their YAML is:
 * mappings as {key value ...} with the pairs sorted, sequences as [item ...], scalars as their
 * length and bytes (null as ~). Aliases are followed, so the work is bounded: every node
 * written costs at least one byte of CANON_MAX_BYTES, which also counts each copy of a sorted
 * pair into its mapping; past it or past CANON_MAX_DEPTH (a recursive alias) the source gets
 * no text and counts as changed on every reload. */
#define CANON_MAX_BYTES (4u << 20)
#define CANON_MAX_DEPTH 256

struct canon {
	char *buf;
	size_t len, cap;
	bool failed;
	size_t *budget; /* bytes left to write, shared by a text and the pieces it is made of */
};

static void canon_put(struct canon *c, const char *s, size_t n)
{
	char *nb;
	size_t want;

	if (c->failed)
		return;
	if (n > *c->budget) {
		c->failed = true;
		return;
	}
	*c->budget -= n;
	if (c->len + n + 1 > c->cap) {
		want = c->cap ? c->cap : 256;
		while (want < c->len + n + 1)
			want *= 2;
		nb = realloc(c->buf, want);
		if (!nb) {
			c->failed = true;
			return;
		}
		c->buf = nb;
		c->cap = want;
	}
	memcpy(c->buf + c->len, s, n);
	c->len += n;
	c->buf[c->len] = '\0';
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
	if (n->kind == NODE_SCALAR) {
		if (n->null) {
			canon_put(c, "~", 1);
			return;
		}
		(void)snprintf(len, sizeof(len), "%zu:", strlen(n->scalar));
		canon_put(c, len, strlen(len));
		canon_put(c, n->scalar, strlen(n->scalar));
		return;
	}
	if (n->kind == NODE_SEQUENCE) {
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
		pairs[done] = pc.buf;
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

/* NULL when too big, too deep or out of memory: the source then never equals another. */
static char *canonical_text(const struct sm_config_node *node)
{
	size_t budget = CANON_MAX_BYTES;
	struct canon c = {.budget = &budget};

	canon_node(&c, node, 0);
	if (c.failed || !c.buf) {
		free(c.buf);
		return NULL;
	}
	return c.buf;
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
		(void)snprintf(p->src_what, sizeof(p->src_what), "source '%.*s'", MAX_NAME_LEN + 1,
		               name);
	else
		(void)snprintf(p->src_what, sizeof(p->src_what), "source #%zu", index + 1);
	if (node->kind != NODE_MAPPING)
		return sm_config_report(p, node, "%s must be a mapping, not %s", p->src_what,
		                        kind_name(node));

	p->src = src;
	p->src_node = node;
	r = parse_mapping(p, node, source_keys, ARRAY_SIZE(source_keys), src, NULL, true);
	if (r == -ENOMEM)
		goto out;
	check_source_name(p, node, src);
	check_namespaces(p, node, src);
	v = sm_config_node_get(p, node, "max_age");
	if (p->n_errors == errors && v && src->max_age_ms < src->interval_ms) {
		char a[32], b[32];

		format_duration(src->max_age_ms, a, sizeof(a));
		format_duration(src->interval_ms, b, sizeof(b));
		(void)sm_config_report(p, v,
		                       "\"max_age\" (%s) in %s must be at least the interval (%s)",
		                       a, p->src_what, b);
	}
	if (src->type) {
		src->ops = sm_source_ops_find(src->type);
		if (!src->ops)
			(void)sm_config_report(p, sm_config_node_get(p, node, "type"),
			                       "unknown source type '%.*s' (expected one of: %s)",
			                       MAX_ECHO, src->type, sm_source_types_list());
	}
	if (src->ops) {
		const struct sm_config_node *saved_map = p->map;
		size_t before = p->n_errors;

		p->map = node;
		r = src->ops->config_parse(p, node, src);
		p->map = saved_map;
		if (r == -ENOMEM)
			p->oom = true;
		else if (r < 0 && p->n_errors == before)
			(void)sm_config_report(p, node, "%s is not valid", p->src_what);
	}
	src->canonical = canonical_text(node);
	r = p->oom ? -ENOMEM : 0;
out:
	p->src = NULL;
	p->src_node = NULL;
	return r;
}

static int parse_sources(struct sm_config_parser *p, const struct sm_config_node *v, void *target)
{
	struct sm_config *cfg = p->cfg;

	(void)target;
	if (v->null)
		return 0;
	if (v->kind != NODE_SEQUENCE)
		return sm_config_report(p, v, "\"sources\" must be a list of sources, not %s",
		                        kind_name(v));
	if (v->n > MAX_SOURCES)
		return sm_config_report(p, v, "too many sources (%zu, at most %d)", v->n,
		                        MAX_SOURCES);
	cfg->sources = calloc(v->n ? v->n : 1, sizeof(*cfg->sources));
	if (!cfg->sources)
		return oom(p);
	for (size_t i = 0; i < v->n; i++) {
		cfg->n_sources++;
		if (parse_source(p, v->items[i], &cfg->sources[i], i) == -ENOMEM)
			return -ENOMEM;
	}
	return 0;
}

static const struct sm_config_key top_keys[] = {
    {.name = "forward",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_config, forward),
     .parse = sm_config_parse_forward},
    {.name = "kubernetes",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_config, kubernetes),
     .parse = parse_kubernetes},
    {.name = "server",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct sm_config, server),
     .parse = parse_server},
    {.name = "sources", .type = SM_CONFIG_CUSTOM, .parse = parse_sources},
};

/* ---- metrics ---- */

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
		struct metric_seen *seen = realloc(p->metrics, cap * sizeof(*seen));

		if (!seen)
			return oom(p);
		p->metrics = seen;
		p->cap_metrics = cap;
	}
	m = realloc(src->metrics, (src->n_metrics + 1) * sizeof(*m));
	if (!m)
		return oom(p);
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
		return oom(p);
	}
	p->metrics[p->n_metrics] = (struct metric_seen){
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
	const struct metric_seen *x = a, *y = b;
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
static_assert(ARRAY_SIZE(scope_names) == SM_METRIC_SCOPE_MAX, "a name per metric scope");

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
 * tells two sources apart. The API decides which resources those are. */
static bool def_is_root_scoped(const struct sm_metric_def *def)
{
	return def->scope == SM_METRIC_OBJECT && !sm_api_resource_is_namespaced(def->resource);
}

/* The second definition b of a metric name against an earlier one a: reports why they cannot
 * both be served, and returns whether it did. */
static bool check_shared(struct sm_config_parser *p, const struct metric_seen *a,
                         const struct metric_seen *b)
{
	const struct sm_source_config *sa = &p->cfg->sources[a->source];
	const struct sm_source_config *sb = &p->cfg->sources[b->source];
	const struct sm_metric_def *da = &sa->metrics[a->def], *db = &sb->metrics[b->def];
	const char *na = sa->name ? sa->name : "", *nb = sb->name ? sb->name : "";
	const char *ns;

	if (a->source == b->source) {
		(void)report_at(p, &b->mark,
		                "metric '%s' is already defined at line %u (source '%s')", b->name,
		                a->mark.line, na);
		return true;
	}
	if (da->scope != db->scope) {
		(void)report_at(
		    p, &b->mark,
		    "metric '%s' of source '%s' is %s, but source '%s' defines it as %s "
		    "(sources may share a name only for the same kind of metric)",
		    b->name, nb, scope_names[db->scope], na, scope_names[da->scope]);
		return true;
	}
	if (db->scope == SM_METRIC_OBJECT &&
	    (!da->resource || !db->resource || strcmp(da->resource, db->resource) != 0)) {
		(void)report_at(
		    p, &b->mark,
		    "metric '%s' of source '%s' is served on %s, but source '%s' serves it "
		    "on %s (sources may share a name only on the same resource)",
		    b->name, nb, db->resource ? db->resource : "?", na,
		    da->resource ? da->resource : "?");
		return true;
	}
	if (def_is_root_scoped(db)) {
		(void)report_at(p, &b->mark,
		                "metric '%s' of source '%s' is also served by source '%s' on %s, "
		                "which have no namespace to tell the sources apart",
		                b->name, nb, na, db->resource ? db->resource : "?");
		return true;
	}
	ns = common_namespace(sa, da, sb, db);
	if (ns) {
		(void)report_at(
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
static void check_metrics(struct sm_config_parser *p)
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

/* ---- loading ---- */

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

static void source_done(struct sm_source_config *s)
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
	if (s->ops && s->ops->config_free)
		s->ops->config_free(s->priv);
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
		source_done(&c->sources[i]);
	free(c->sources);
	sm_config_forward_done(&c->forward);
	free(c);
}

static struct sm_config *config_new(const char *path)
{
	struct sm_config *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->server = (struct sm_server_config){
	    .listen = strdup(DEFAULT_LISTEN),
	    .auth_mode = SM_AUTH_DELEGATED,
	    .cache_ttl_ms = 10000,
	    .auth_refresh_interval_ms = 60000,
	    .max_connections = 1024,
	    .max_connections_per_ip = 256,
	    .connection_timeout_ms = 30000,
	    .max_header_bytes = 16384,
	    .namespace = strdup(DEFAULT_NAMESPACE),
	    .log_level = strdup(DEFAULT_LOG_LEVEL),
	    .log_format = strdup(DEFAULT_LOG_FORMAT),
	};
	c->path = strdup(path);
	if (!c->server.listen || !c->server.namespace || !c->server.log_level ||
	    !c->server.log_format || !c->path) {
		sm_config_free(c);
		return NULL;
	}
	return c;
}

/* Defaults that depend on other keys, once the whole document is read. */
static void apply_late_defaults(struct sm_config_parser *p, struct sm_config *c)
{
	for (size_t i = 0; i < c->n_sources; i++) {
		struct sm_source_config *s = &c->sources[i];

		if (s->max_age_ms == 0)
			s->max_age_ms = 3 * s->interval_ms;
		if (s->namespaces.n == 0) {
			sm_strv_done(&s->namespaces);
			s->namespaces.v = calloc(2, sizeof(*s->namespaces.v));
			if (!s->namespaces.v) {
				(void)oom(p);
				return;
			}
			s->namespaces.v[0] = strdup(c->server.namespace);
			if (!s->namespaces.v[0]) {
				(void)oom(p);
				return;
			}
			s->namespaces.n = 1;
		}
	}
}

static int build_tree(struct sm_config_parser *p, yaml_document_t *doc)
{
	size_t n = (size_t)(doc->nodes.top - doc->nodes.start);

	p->nodes = calloc(n ? n : 1, sizeof(*p->nodes));
	if (!p->nodes)
		return oom(p);
	p->n_nodes = n;
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *y = &doc->nodes.start[i];
		struct sm_config_node *c = &p->nodes[i];
		size_t m = 0;

		c->mark = (struct sm_config_mark){.line = (unsigned)y->start_mark.line + 1,
		                                  .column = (unsigned)y->start_mark.column + 1};
		c->kind = NODE_SCALAR;
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
			c->kind = NODE_SEQUENCE;
			m = (size_t)(y->data.sequence.items.top - y->data.sequence.items.start);
		} else if (y->type == YAML_MAPPING_NODE) {
			c->kind = NODE_MAPPING;
			m = 2 * (size_t)(y->data.mapping.pairs.top - y->data.mapping.pairs.start);
		}
		c->items = calloc(m ? m : 1, sizeof(*c->items));
		if (!c->items)
			return oom(p);
		for (size_t j = 0; j < m; j++) {
			int idx;

			if (c->kind == NODE_SEQUENCE)
				idx = y->data.sequence.items.start[j];
			else if (j % 2 == 0)
				idx = y->data.mapping.pairs.start[j / 2].key;
			else
				idx = y->data.mapping.pairs.start[j / 2].value;
			assert(idx >= 1 && (size_t)idx <= n);
			c->items[j] = &p->nodes[idx - 1];
		}
		c->n = c->kind == NODE_SEQUENCE ? m : m / 2;
	}
	return 0;
}

static int yaml_error(struct sm_config_parser *p, const yaml_parser_t *y)
{
	struct sm_config_mark mark = {.line = (unsigned)y->problem_mark.line + 1,
	                              .column = (unsigned)y->problem_mark.column + 1};

	if (y->error == YAML_MEMORY_ERROR)
		return oom(p);
	if (y->error == YAML_READER_ERROR)
		return report_at(p, NULL, "invalid YAML: %s at byte %zu",
		                 y->problem ? y->problem : "unreadable input", y->problem_offset);
	if (y->context)
		return report_at(p, &mark, "invalid YAML: %s (%s at line %u)",
		                 y->problem ? y->problem : "syntax error", y->context,
		                 (unsigned)y->context_mark.line + 1);
	return report_at(p, &mark, "invalid YAML: %s", y->problem ? y->problem : "syntax error");
}

static void free_tree(struct sm_config_parser *p)
{
	for (size_t i = 0; i < p->n_nodes; i++)
		free(p->nodes[i].items);
	free(p->nodes);
	p->nodes = NULL;
	p->n_nodes = 0;
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
		(void)report_at(p, NULL, "%zu more error%s not shown", more, more == 1 ? "" : "s");
	}
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
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	bool parser_ok = false, doc_ok = false;
	struct sm_config *cfg = NULL;
	struct sm_config_mark deep;
	int r;

	if (len > MAX_FILE_BYTES) {
		r = report_at(&p, NULL, "the file is larger than %d bytes", MAX_FILE_BYTES);
		goto out;
	}
	if (flow_too_deep(text, len, &deep)) {
		r = report_at(&p, &deep, "[ and { nested deeper than %d levels", MAX_FLOW_DEPTH);
		goto out;
	}
	if (!yaml_parser_initialize(&parser)) {
		r = oom(&p);
		goto out;
	}
	parser_ok = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = yaml_error(&p, &parser);
		goto out;
	}
	doc_ok = true;
	if (yaml_document_get_root_node(&doc)) {
		if (!yaml_parser_load(&parser, &extra)) {
			r = yaml_error(&p, &parser);
			goto out;
		}
		if (yaml_document_get_root_node(&extra)) {
			struct sm_config_mark mark = {
			    .line = (unsigned)extra.start_mark.line + 1,
			    .column = (unsigned)extra.start_mark.column + 1,
			};
			(void)report_at(&p, &mark, "only one YAML document is allowed");
		}
		yaml_document_delete(&extra);
	}

	if (!keys) {
		cfg = config_new(p.file);
		if (!cfg) {
			r = oom(&p);
			goto out;
		}
		p.cfg = cfg;
		keys = top_keys;
		n_keys = ARRAY_SIZE(top_keys);
		target = cfg;
	}
	if (build_tree(&p, &doc) == 0)
		(void)parse_mapping(&p, p.n_nodes ? &p.nodes[0] : NULL, keys, n_keys, target,
		                    "the top-level mapping", false);
	if (cfg && !p.oom)
		apply_late_defaults(&p, cfg);
	if (cfg && !p.oom)
		check_metrics(&p);
	r = p.oom ? -ENOMEM : p.n_errors ? -EINVAL : 0;
	if (r == 0 && cfg) {
		*ret = cfg;
		cfg = NULL;
	}
out:
	finish_errors(&p);
	sm_config_free(cfg);
	free(p.metrics);
	free_tree(&p);
	if (doc_ok)
		yaml_document_delete(&doc);
	if (parser_ok)
		yaml_parser_delete(&parser);
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

	r = sm_file_read(path, MAX_FILE_BYTES, 0, ret_text, ret_len, &e);
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
