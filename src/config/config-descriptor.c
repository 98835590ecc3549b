/* SPDX-License-Identifier: MIT */
/* The descriptor engine: a mapping node parsed against a sorted table of keys (struct
 * sm_config_key) into a struct, by value type (string, duration, integers with bounds, bool,
 * enumeration, string list, or a custom parser), with "unknown key", "duplicate key" and
 * "missing required key" found by the table alone. Every problem is reported, at its node. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/config.h"
#include "scalemetrics/number.h"

#include "config-internal.h"

/* " 'value'" for messages, or "" for secrets; long values are cut. */
static void echo(const struct sm_config_key *k, const char *value, char *buf, size_t len)
{
	if (k && (k->flags & SM_CONFIG_SECRET))
		buf[0] = '\0';
	else
		(void)snprintf(buf, len, " '%.*s%s'", SM_CONFIG_MAX_ECHO, value,
		               strlen(value) > SM_CONFIG_MAX_ECHO ? "..." : "");
}

void sm_config_format_duration(int64_t ms, char *buf, size_t len)
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

int sm_config_type_error(struct sm_config_parser *p, const struct sm_config_node *v,
                         const char *key, const char *desc, const char *expected)
{
	return sm_config_report(p, v, "\"%s\" in %s must be %s, not %s", key, desc, expected,
	                        sm_config_node_kind_name(v));
}

static int replace_string(struct sm_config_parser *p, char **dst, const char *value)
{
	char *copy = strdup(value);

	if (!copy)
		return sm_config_oom(p);
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

	if (v->kind == SM_CONFIG_NODE_MAPPING)
		return sm_config_type_error(p, v, k->name, desc, "a list of strings");
	n = v->kind == SM_CONFIG_NODE_SEQUENCE ? v->n : (v->null ? 0 : 1);
	for (size_t i = 0; v->kind == SM_CONFIG_NODE_SEQUENCE && i < n; i++)
		if (v->items[i]->kind != SM_CONFIG_NODE_SCALAR)
			r = sm_config_report(p, v->items[i],
			                     "items of \"%s\" in %s must be strings, not %s",
			                     k->name, desc, sm_config_node_kind_name(v->items[i]));
	if (r < 0)
		return r;
	nv.v = calloc(n + 1, sizeof(*nv.v));
	if (!nv.v)
		return sm_config_oom(p);
	for (size_t i = 0; i < n; i++) {
		const struct sm_config_node *item =
		    v->kind == SM_CONFIG_NODE_SEQUENCE ? v->items[i] : v;

		nv.v[i] = strdup(item->null ? "" : item->scalar);
		if (!nv.v[i]) {
			sm_strv_done(&nv);
			return sm_config_oom(p);
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
	char val[SM_CONFIG_MAX_ECHO + 8];
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

int sm_config_take_string(struct sm_config_parser *p, const struct sm_config_node *v, char **dst)
{
	if (v->kind != SM_CONFIG_NODE_SCALAR)
		return sm_config_type_error(p, v, p->key, p->desc, "a string");
	return replace_string(p, dst, v->null ? "" : v->scalar);
}

void sm_config_empty_to_null(char **s)
{
	if (*s && !**s) {
		free(*s);
		*s = NULL;
	}
}

int sm_config_take_name(struct sm_config_parser *p, const struct sm_config_node *v, char **dst,
                        const char *const *names)
{
	const struct sm_config_key k = {
	    .name = p->key, .type = SM_CONFIG_ENUM, .enum_names = names};
	int i;

	if (v->kind != SM_CONFIG_NODE_SCALAR)
		return sm_config_type_error(p, v, p->key, p->desc, "a string");
	if (v->null)
		return sm_config_report(p, v, "missing value for \"%s\" in %s", p->key, p->desc);
	if (parse_enum_value(p, &k, v, p->desc, &i) < 0)
		return -EINVAL;
	return replace_string(p, dst, names[i]);
}

static int range_error(struct sm_config_parser *p, const struct sm_config_key *k,
                       const struct sm_config_node *v, const char *desc, int64_t lo, int64_t hi,
                       bool duration)
{
	char a[32], b[32], val[SM_CONFIG_MAX_ECHO + 8];

	echo(k, v->scalar, val, sizeof(val));
	if (duration) {
		sm_config_format_duration(lo, a, sizeof(a));
		sm_config_format_duration(hi, b, sizeof(b));
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
	char val[SM_CONFIG_MAX_ECHO + 8];
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
	char val[SM_CONFIG_MAX_ECHO + 8];
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
		if (v->kind != SM_CONFIG_NODE_SCALAR)
			return sm_config_type_error(p, v, k->name, desc, expected[k->type]);
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

	for (size_t i = 0; i < SM_CONFIG_ARRAY_SIZE(words); i++)
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
	return sm_config_report(p, key, "unknown key \"%.*s%s\" in %s%s", SM_CONFIG_MAX_ECHO, name,
	                        strlen(name) > SM_CONFIG_MAX_ECHO ? "..." : "", desc, hint);
}

int sm_config_parse_keys(struct sm_config_parser *p, const struct sm_config_node *node,
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
	if (node && !node->null && node->kind != SM_CONFIG_NODE_MAPPING)
		return sm_config_report(p, node, "%s must be a mapping, not %s", desc,
		                        sm_config_node_kind_name(node));
	n_pairs = node && node->kind == SM_CONFIG_NODE_MAPPING ? node->n : 0;
	first = calloc(n_keys ? n_keys : 1, sizeof(*first));
	if (!first)
		return sm_config_oom(p);
	if (node)
		p->map = node;
	p->desc = desc;

	for (size_t i = 0; i < n_pairs; i++) {
		const struct sm_config_node *key = node->items[2 * i];
		const struct sm_config_node *value = node->items[2 * i + 1];
		const struct sm_config_key *k;
		bool elsewhere;
		size_t idx;

		if (key->kind != SM_CONFIG_NODE_SCALAR) {
			r = sm_config_report(p, key, "keys in %s must be strings, not %s", desc,
			                     sm_config_node_kind_name(key));
			continue;
		}
		k = find_key(keys, n_keys, key->scalar);
		if (!k) {
			/* A collector's table for the source mapping need not list the common keys
			 * (name, type, interval, ...): config-sources.c has parsed them already. */
			bool common = node == p->src_node &&
			              find_key(p->src_keys, p->n_src_keys, key->scalar);

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
	return sm_config_parse_keys(p, node, keys, n_keys, target, what, false);
}

/* Checks of values that several tables' custom parsers share. */

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
