/* SPDX-License-Identifier: MIT */
/* The Redis source's configuration: its keys (address or sentinel, auth, db, scan_count) and
 * its queue rules (plain rules here, presets in redis-presets.c), parsed into the immutable
 * struct redis_config of redis-internal.h, every metric declared. */

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scalemetrics/config.h"
#include "scalemetrics/number.h"
#include "scalemetrics/promtext.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/source.h"

#include "redis-internal.h"

#define DEFAULT_ADDRESS    "127.0.0.1:6379"
#define DEFAULT_LABEL      "queue"
#define DEFAULT_SCAN_COUNT 1000
#define DEFAULT_WINDOW_MS  60000
#define DEFAULT_DRAIN_CAP  3600.0
#define MAX_PATTERN_BYTES  1024

/* Indexed by enum redis_key_type: the TYPE reply and the length command. */
const char *const sm_redis_key_type_names[] = {
    [REDIS_KEY_AUTO] = "auto",   [REDIS_KEY_LIST] = "list",     [REDIS_KEY_ZSET] = "zset",
    [REDIS_KEY_SET] = "set",     [REDIS_KEY_STREAM] = "stream", [REDIS_KEY_HASH] = "hash",
    [REDIS_KEY_TYPE_MAX] = NULL,
};
static_assert(sizeof(sm_redis_key_type_names) / sizeof(sm_redis_key_type_names[0]) ==
                  REDIS_KEY_TYPE_MAX + 1,
              "sm_redis_key_type_names");

/* ---- configuration ---- */

static void rule_done(struct redis_rule *r)
{
	free(r->metric);
	sm_strv_done(&r->keys);
	free(r->label);
	sm_strv_done(&r->index);
	free(r->member_prefix);
	sm_strv_done(&r->names);
	free(r->object.resource);
	free(r->object.name);
	free(r->dequeue_counter);
	free(r->growth_metric);
	free(r->drain_metric);
}

void sm_redis_config_free(void *priv)
{
	struct redis_config *c = priv;

	if (!c)
		return;
	free(c->address);
	free(c->host);
	free(c->unix_path);
	free(c->username);
	free(c->password_file);
	free(c->password_env);
	for (size_t i = 0; i < c->rules.n; i++)
		rule_done(&c->rules.v[i]);
	free(c->rules.v);
	for (size_t i = 0; i < c->n_sentinels; i++)
		free(c->sentinels[i].host);
	free(c->sentinels);
	free(c->sentinel_master);
	free(c);
}

struct redis_rule *sm_redis_rules_push(struct redis_rules *rules)
{
	if (rules->n == rules->cap) {
		size_t cap = rules->cap ? rules->cap * 2 : 8;
		struct redis_rule *v = realloc(rules->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		rules->v = v;
		rules->cap = cap;
	}
	rules->v[rules->n] = (struct redis_rule){0};
	return &rules->v[rules->n++];
}

bool sm_redis_pattern_is_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* Is an absent series of r an empty queue (config.h zero_label)? Yes for globs (SCAN finds
 * every key that exists) and for the index sets and marker keys that Sidekiq, RQ and BullMQ
 * write with every job. Not for Kombu bindings (a Celery list can hold jobs before anything
 * declared its queue, so a name not discovered may be a backlog that was not read), exact
 * keys (a missing one is read as 0 anyway), optional keys (absent means not served), streams
 * (Redis keeps an emptied stream) or rules without label. */
static bool absent_is_empty(const struct redis_rule *r)
{
	bool found = r->discover == REDIS_DISCOVER_SET || r->discover == REDIS_DISCOVER_SCAN;

	for (size_t i = 0; i < r->keys.n && !found && !r->literal; i++)
		found = sm_redis_pattern_is_glob(r->keys.v[i]);
	return found && r->label && !r->optional && r->type != REDIS_KEY_STREAM;
}

int sm_redis_parse_host_port(const char *a, struct redis_endpoint *ret)
{
	const char *colon = strrchr(a, ':');
	const char *host = a;
	size_t host_len;
	int64_t port;
	char *h;

	if (!colon || colon == a)
		return -EINVAL;
	host_len = (size_t)(colon - a);
	if (host[0] == '[') {
		if (host_len < 3 || host[host_len - 1] != ']')
			return -EINVAL;
		host++;
		host_len -= 2;
	}
	if (sm_number_parse_int64(colon + 1, &port) < 0 || port < 1 || port > 65535)
		return -EINVAL;
	h = strndup(host, host_len);
	if (!h)
		return -ENOMEM;
	ret->host = h;
	ret->port = (int)port;
	return 0;
}

/* "host:port", "[v6]:port" or "unix:/path". */
static int parse_address(struct sm_config_parser *p, const struct sm_config_node *node,
                         struct redis_config *c)
{
	const char *a = c->address;
	struct redis_endpoint ep = {0};
	int r;

	if (strncmp(a, "unix:", 5) == 0) {
		if (a[5] != '/')
			return sm_config_report(p, node,
			                        "address '%s': expected unix:/absolute/path", a);
		c->unix_path = strdup(a + 5);
		return c->unix_path ? 0 : -ENOMEM;
	}
	r = sm_redis_parse_host_port(a, &ep);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return sm_config_report(p, node,
		                        "address '%s': expected host:port (port 1..65535), "
		                        "[ipv6]:port or unix:/path",
		                        a);
	c->host = ep.host;
	c->port = ep.port;
	return 0;
}

struct sentinel_input {
	struct sm_strv addresses;
	char *master;
};

static const struct sm_config_key sentinel_keys[] = {
    {.name = "addresses",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct sentinel_input, addresses),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "master",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct sentinel_input, master),
     .flags = SM_CONFIG_REQUIRED},
};

/* target: the struct redis_config (the table entry's offset is 0). */
static int parse_sentinel(struct sm_config_parser *p, const struct sm_config_node *node,
                          void *target)
{
	struct redis_config *c = target;
	struct sentinel_input s = {0};
	int r;

	c->has_sentinel = true;
	if (!sm_config_node_is_mapping(node))
		return sm_config_report(p, node,
		                        "sentinel: expected a mapping with addresses and master");
	r = sm_config_parse_mapping(p, node, sentinel_keys,
	                            sizeof(sentinel_keys) / sizeof(sentinel_keys[0]), &s,
	                            "sentinel");
	if (r < 0)
		goto out;
	if (s.addresses.n == 0) {
		r = sm_config_report(p, sm_config_node_get(p, node, "addresses"),
		                     "sentinel addresses: at least one host:port is required");
		goto out;
	}
	if (!*s.master) {
		r = sm_config_report(p, sm_config_node_get(p, node, "master"),
		                     "sentinel master: the service name is required");
		goto out;
	}
	c->sentinels = calloc(s.addresses.n, sizeof(*c->sentinels));
	if (!c->sentinels) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < s.addresses.n; i++) {
		int k = sm_redis_parse_host_port(s.addresses.v[i], &c->sentinels[c->n_sentinels]);

		if (k == -ENOMEM) {
			r = k;
			goto out;
		}
		if (k < 0)
			r = sm_config_report(p, sm_config_node_get(p, node, "addresses"),
			                     "sentinel address '%s': expected host:port",
			                     s.addresses.v[i]);
		else
			c->n_sentinels++;
	}
	c->sentinel_master = s.master;
	s.master = NULL;
out:
	sm_strv_done(&s.addresses);
	free(s.master);
	return r;
}

static const struct sm_config_key object_keys[] = {
    {.name = "name",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct redis_object, name),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "resource",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct redis_object, resource),
     .flags = SM_CONFIG_REQUIRED},
};

int sm_redis_parse_object(struct sm_config_parser *p, const struct sm_config_node *node,
                          void *target)
{
	struct redis_object *o = target;

	if (!sm_config_node_is_mapping(node))
		return sm_config_report(p, node,
		                        "object: expected a mapping with resource and name");
	return sm_config_parse_mapping(p, node, object_keys,
	                               sizeof(object_keys) / sizeof(object_keys[0]), o, "object");
}

/* A plain queue rule as written. */
struct rule_input {
	struct redis_rule r;
	struct sm_opt_double drain_cap;
	char *prefix; /* refused: only for presets */
};

static const struct sm_config_key rule_keys[] = {
    {.name = "dequeue_counter",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct rule_input, r.dequeue_counter)},
    {.name = "derived", .type = SM_CONFIG_BOOL, .offset = offsetof(struct rule_input, r.derived)},
    {.name = "drain_cap",
     .type = SM_CONFIG_DOUBLE,
     .offset = offsetof(struct rule_input, drain_cap)},
    {.name = "fallback",
     .type = SM_CONFIG_DOUBLE,
     .offset = offsetof(struct rule_input, r.fallback)},
    {.name = "keys",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct rule_input, r.keys),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "label", .type = SM_CONFIG_STRING, .offset = offsetof(struct rule_input, r.label)},
    {.name = "metric",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct rule_input, r.metric),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "object",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct rule_input, r.object),
     .parse = sm_redis_parse_object},
    {.name = "prefix", .type = SM_CONFIG_STRING, .offset = offsetof(struct rule_input, prefix)},
    {.name = "type",
     .type = SM_CONFIG_ENUM,
     .offset = offsetof(struct rule_input, r.type),
     .enum_names = sm_redis_key_type_names},
    {.name = "window",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct rule_input, r.window_ms),
     .min = 1000,
     .max = 86400000},
};

/* Every "{...}" in the object name must be "{label}". */
static int check_object_template(struct sm_config_parser *p, const struct sm_config_node *node,
                                 const struct redis_rule *r)
{
	const char *s = r->object.name;
	const char *label = r->label ? r->label : "";
	size_t label_len = strlen(label);

	for (;;) {
		const char *open = strchr(s, '{');
		const char *close;

		if (!open)
			break;
		close = strchr(open, '}');
		if (!close)
			return sm_config_report(p, node, "object name '%s': unclosed '{'",
			                        r->object.name);
		if (!r->label || (size_t)(close - open - 1) != label_len ||
		    strncmp(open + 1, label, label_len) != 0)
			return sm_config_report(p, node,
			                        "object name '%s': unknown placeholder '%.*s'; "
			                        "only '{%s}' is available",
			                        r->object.name, (int)(close - open + 1), open,
			                        label);
		s = close + 1;
	}
	if (strchr(s, '}'))
		return sm_config_report(p, node, "object name '%s': unmatched '}'", r->object.name);
	return 0;
}

static char *join2(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

/* Called with window_ms -1 when not set, drain_cap already defaulted by the caller. */
int sm_redis_rule_check(struct sm_config_parser *p, const struct sm_config_node *item,
                        struct redis_rule *r)
{
	int ret = 0;

	if (r->has_object && r->object.name)
		if (check_object_template(p, sm_config_node_get(p, item, "object"), r) < 0)
			ret = -EINVAL;
	if (!r->derived) {
		if (r->window_ms >= 0)
			ret = sm_config_report(p, sm_config_node_get(p, item, "window"),
			                       "window only applies with derived: true");
		if (r->dequeue_counter)
			ret = sm_config_report(p, sm_config_node_get(p, item, "dequeue_counter"),
			                       "dequeue_counter only applies with derived: true");
		return ret;
	}
	if (r->window_ms < 0)
		r->window_ms = DEFAULT_WINDOW_MS;
	if (!(r->drain_cap > 0) || !isfinite(r->drain_cap))
		ret = sm_config_report(p, sm_config_node_get(p, item, "drain_cap"),
		                       "drain_cap must be a positive number of seconds");
	if (r->dequeue_counter) {
		const char *s = r->dequeue_counter;
		const char *open = strchr(s, '{');

		if (!*s)
			ret = sm_config_report(p, sm_config_node_get(p, item, "dequeue_counter"),
			                       "dequeue_counter: empty key");
		else if (open && (!r->label || strncmp(open + 1, r->label, strlen(r->label)) != 0 ||
		                  open[1 + strlen(r->label)] != '}'))
			ret = sm_config_report(p, sm_config_node_get(p, item, "dequeue_counter"),
			                       "dequeue_counter '%s': only '{%s}' may be used", s,
			                       r->label ? r->label : "");
	}
	if (r->metric) {
		r->growth_metric = join2(r->metric, "_growth_per_second");
		r->drain_metric = join2(r->metric, "_drain_seconds");
		if (!r->growth_metric || !r->drain_metric)
			return -ENOMEM;
	}
	return ret;
}

int sm_redis_rule_declare(struct sm_config_parser *p, const struct sm_config_node *node,
                          struct redis_rule *r)
{
	struct sm_metric_def def = {0};
	bool object = r->has_object && r->label;
	int ret;

	def.name = r->metric;
	def.scope = object ? SM_METRIC_OBJECT : SM_METRIC_EXTERNAL;
	def.resource = object ? r->object.resource : NULL;
	def.fallback = r->fallback;
	if (absent_is_empty(r)) {
		def.zero_label = r->label;
		def.object_template = object ? r->object.name : NULL;
	}
	ret = sm_config_add_metric(p, node, &def);
	if (ret < 0 || !r->derived)
		return ret;
	/* Growth and drain time need two samples of a queue that exists. */
	def.zero_label = NULL;
	def.object_template = NULL;
	def.window_s = (uint32_t)(r->window_ms / 1000);
	def.name = r->growth_metric;
	ret = sm_config_add_metric(p, node, &def);
	if (ret < 0)
		return ret;
	def.name = r->drain_metric;
	return sm_config_add_metric(p, node, &def);
}

static int parse_rule(struct sm_config_parser *p, const struct sm_config_node *item,
                      struct redis_config *c)
{
	struct rule_input in = {.r = {.window_ms = -1, .type = REDIS_KEY_AUTO}};
	struct redis_rule *r = &in.r;
	const struct sm_config_node *n;
	int r1;

	r1 = sm_config_parse_mapping(p, item, rule_keys, sizeof(rule_keys) / sizeof(rule_keys[0]),
	                             &in, "queue rule");
	/* Go on checking what did parse: every problem is reported at once. */
	if (r1 == -ENOMEM)
		goto out;
	r->has_object = sm_config_node_get(p, item, "object") != NULL;
	r->drain_cap = in.drain_cap.set ? in.drain_cap.value : DEFAULT_DRAIN_CAP;
	r->read = REDIS_READ_LENGTH;
	r->discover = REDIS_DISCOVER_KEYS;
	if (!r->label) {
		r->label = strdup(DEFAULT_LABEL);
		if (!r->label) {
			r1 = -ENOMEM;
			goto out;
		}
	}

	if (r->metric && !sm_promtext_metric_name_is_valid(r->metric))
		r1 = sm_config_report(p, sm_config_node_get(p, item, "metric"),
		                      "invalid metric name '%s': expected [a-zA-Z_:][a-zA-Z0-9_:]*",
		                      r->metric);
	if (!sm_label_key_is_valid(r->label))
		r1 = sm_config_report(p, sm_config_node_get(p, item, "label"),
		                      "invalid label name '%s'", r->label);
	else if (strcmp(r->label, "kind") == 0 || strcmp(r->label, "group") == 0)
		r1 = sm_config_report(p, sm_config_node_get(p, item, "label"),
		                      "label name '%s' is reserved for stream series", r->label);
	n = sm_config_node_get(p, item, "keys");
	if (n && r->keys.n == 0)
		r1 = sm_config_report(p, n, "keys: at least one key or glob is required");
	for (size_t i = 0; i < r->keys.n; i++) {
		if (!*r->keys.v[i])
			r1 = sm_config_report(p, n, "keys: empty key");
		else if (strlen(r->keys.v[i]) > MAX_PATTERN_BYTES)
			r1 = sm_config_report(p, n, "keys: key longer than %d bytes",
			                      MAX_PATTERN_BYTES);
	}
	if (in.prefix)
		r1 = sm_config_report(p, sm_config_node_get(p, item, "prefix"),
		                      "prefix only applies with preset");
	if (!r->derived && in.drain_cap.set)
		r1 = sm_config_report(p, sm_config_node_get(p, item, "drain_cap"),
		                      "drain_cap only applies with derived: true");
	{
		int k = sm_redis_rule_check(p, item, r);

		if (k < 0)
			r1 = k;
	}
	if (r1 < 0)
		goto out;
	r1 = sm_redis_rule_declare(p, item, r);
	if (r1 < 0)
		goto out;
	{
		struct redis_rule *dst = sm_redis_rules_push(&c->rules);

		if (!dst) {
			r1 = -ENOMEM;
			goto out;
		}
		*dst = *r;
		dst->group = c->n_groups++;
		*r = (struct redis_rule){0}; /* moved */
	}
out:
	rule_done(r);
	free(in.prefix);
	return r1;
}

/* target: the struct redis_config (offset 0). */
static int parse_queues(struct sm_config_parser *p, const struct sm_config_node *node, void *target)
{
	struct redis_config *c = target;
	size_t n;
	int r = 0;

	if (!sm_config_node_is_sequence(node))
		return sm_config_report(p, node, "queues: expected a list of queue rules");
	n = sm_config_node_length(node);
	if (n == 0)
		return sm_config_report(p, node, "queues: at least one queue rule is required");
	for (size_t i = 0; i < n; i++) {
		const struct sm_config_node *item = sm_config_node_item(p, node, i);
		int k;

		if (!sm_config_node_is_mapping(item))
			k = sm_config_report(p, item,
			                     "queue rule: expected a mapping with metric and keys "
			                     "(or preset)");
		else if (sm_config_node_get(p, item, "preset"))
			k = sm_redis_preset_expand(p, item, c);
		else
			k = parse_rule(p, item, c);
		if (k == -ENOMEM)
			return k;
		if (k < 0)
			r = k;
	}
	return r;
}

static const struct sm_config_key source_keys[] = {
    {.name = "address", .type = SM_CONFIG_STRING, .offset = offsetof(struct redis_config, address)},
    {.name = "db",
     .type = SM_CONFIG_INT,
     .offset = offsetof(struct redis_config, db),
     .min = 0,
     .max = 15},
    {.name = "password_env",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct redis_config, password_env)},
    {.name = "password_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct redis_config, password_file)},
    {.name = "queues",
     .type = SM_CONFIG_CUSTOM,
     .parse = parse_queues,
     .flags = SM_CONFIG_REQUIRED},
    {.name = "scan_count",
     .type = SM_CONFIG_INT,
     .offset = offsetof(struct redis_config, scan_count),
     .min = 1,
     .max = 1000000},
    {.name = "sentinel", .type = SM_CONFIG_CUSTOM, .parse = parse_sentinel},
    {.name = "username",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct redis_config, username)},
};

int sm_redis_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                          struct sm_source_config *src)
{
	struct redis_config *c = calloc(1, sizeof(*c));
	bool has_file, has_env;
	int r;

	if (!c)
		return -ENOMEM;
	c->scan_count = DEFAULT_SCAN_COUNT;
	r = sm_config_parse_mapping(p, node, source_keys,
	                            sizeof(source_keys) / sizeof(source_keys[0]), c, "source");
	if (r == -ENOMEM)
		goto out;

	if (!c->address && !c->has_sentinel) {
		c->address = strdup(DEFAULT_ADDRESS);
		if (!c->address) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (c->address && c->has_sentinel)
		r = sm_config_report(p, sm_config_node_get(p, node, "sentinel"),
		                     "address and sentinel are mutually exclusive");
	else if (c->address && *c->address) {
		int k = parse_address(p, sm_config_node_get(p, node, "address"), c);

		if (k < 0)
			r = k;
		if (k == -ENOMEM)
			goto out;
	} else if (c->address) {
		r = sm_config_report(p, sm_config_node_get(p, node, "address"),
		                     "address: expected host:port or unix:/path");
	}

	has_file = c->password_file && *c->password_file;
	has_env = c->password_env && *c->password_env;
	if (has_file && has_env)
		r = sm_config_report(p, sm_config_node_get(p, node, "password_env"),
		                     "password_file and password_env are mutually exclusive");
	else if (has_file && access(c->password_file, R_OK) != 0)
		r = sm_config_report(p, sm_config_node_get(p, node, "password_file"),
		                     "password_file '%s' is not readable: %s", c->password_file,
		                     strerror(errno));
	if (c->username && *c->username && !has_file && !has_env)
		r = sm_config_report(p, sm_config_node_get(p, node, "username"),
		                     "username needs password_file or password_env");
out:
	/* Even on error src->priv holds what was parsed, so config_free releases it. */
	src->priv = c;
	return r < 0 ? r : 0;
}
