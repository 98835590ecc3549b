/* SPDX-License-Identifier: MIT */
/* The Redis collector: queue lengths (lists, sorted sets, sets, streams, hashes) of exact keys
 * and SCAN globs, read with pipelined commands over one lazily (re)connected hiredis context. */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "scalemetrics/config.h"
#include "scalemetrics/number.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"

#define DEFAULT_ADDRESS   "127.0.0.1:6379"
#define DEFAULT_LABEL     "queue"
#define PIPELINE_BATCH    1000   /* commands per round trip */
#define SCAN_COUNT        "1000" /* SCAN's COUNT hint */
#define MAX_STARS         16     /* '*' captured per glob */
#define PASSWORD_MAX      4096
#define MAX_PATTERN_BYTES 1024

enum redis_key_type {
	REDIS_KEY_AUTO,
	REDIS_KEY_LIST,
	REDIS_KEY_ZSET,
	REDIS_KEY_SET,
	REDIS_KEY_STREAM,
	REDIS_KEY_HASH,
	REDIS_KEY_TYPE_MAX,
	REDIS_KEY_TYPE_INVALID = -1,
};

/* Indexed by enum redis_key_type: the TYPE reply and the length command. */
static const char *const key_type_names[] = {
    [REDIS_KEY_AUTO] = "auto",   [REDIS_KEY_LIST] = "list",     [REDIS_KEY_ZSET] = "zset",
    [REDIS_KEY_SET] = "set",     [REDIS_KEY_STREAM] = "stream", [REDIS_KEY_HASH] = "hash",
    [REDIS_KEY_TYPE_MAX] = NULL,
};
static_assert(sizeof(key_type_names) / sizeof(key_type_names[0]) == REDIS_KEY_TYPE_MAX + 1,
              "key_type_names");

static const char *const length_commands[] = {
    [REDIS_KEY_AUTO] = NULL,   [REDIS_KEY_LIST] = "LLEN",   [REDIS_KEY_ZSET] = "ZCARD",
    [REDIS_KEY_SET] = "SCARD", [REDIS_KEY_STREAM] = "XLEN", [REDIS_KEY_HASH] = "HLEN",
};
static_assert(sizeof(length_commands) / sizeof(length_commands[0]) == REDIS_KEY_TYPE_MAX,
              "length_commands");

static const char *const preset_names[] = {"sidekiq", "celery", "rq", "bullmq", NULL};

/* ---- configuration ---- */

struct redis_object {
	char *resource;
	char *name; /* template: "{label}" is replaced by the series' label value */
};

struct redis_rule {
	char *metric;
	struct sm_strv keys;
	char *label;
	int type; /* enum redis_key_type */
	struct sm_opt_double fallback;
	struct redis_object object;
	bool has_object;
	/* Accepted so that they are not "unknown keys", refused as not supported yet. */
	char *preset;
	char *prefix;
	bool derived;
	int64_t window_ms; /* -1: not set */
	struct sm_opt_double drain_cap;
};

struct redis_rules {
	struct redis_rule *v;
	size_t n;
};

struct redis_sentinel {
	struct sm_strv addresses;
	char *master;
};

struct redis_config {
	char *address;
	char *host; /* TCP; NULL for a unix socket */
	int port;
	char *unix_path; /* unix socket; NULL for TCP */
	int64_t db;
	char *username;
	char *password_file;
	char *password_env;
	struct redis_rules rules;
	bool has_sentinel;
};

static void rule_done(struct redis_rule *r)
{
	free(r->metric);
	sm_strv_done(&r->keys);
	free(r->label);
	free(r->object.resource);
	free(r->object.name);
	free(r->preset);
	free(r->prefix);
}

static void redis_config_free(void *priv)
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
	free(c);
}

static bool metric_name_is_valid(const char *s)
{
	if (!s || !*s)
		return false;
	for (size_t i = 0; s[i]; i++) {
		char ch = s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
		          ch == ':' || (i > 0 && ch >= '0' && ch <= '9');

		if (!ok)
			return false;
	}
	return true;
}

static bool pattern_is_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* "host:port", "[v6]:port" or "unix:/path". */
static int parse_address(struct sm_config_parser *p, const struct sm_config_node *node,
                         struct redis_config *c)
{
	const char *a = c->address;
	const char *colon;
	const char *host;
	size_t host_len;
	int64_t port;

	if (strncmp(a, "unix:", 5) == 0) {
		if (a[5] != '/')
			return sm_config_report(p, node,
			                        "address '%s': expected unix:/absolute/path", a);
		c->unix_path = strdup(a + 5);
		return c->unix_path ? 0 : -ENOMEM;
	}
	colon = strrchr(a, ':');
	if (!colon || colon == a)
		return sm_config_report(p, node, "address '%s': expected host:port or unix:/path",
		                        a);
	host = a;
	host_len = (size_t)(colon - a);
	if (host[0] == '[') {
		if (host_len < 3 || host[host_len - 1] != ']')
			return sm_config_report(p, node, "address '%s': expected [ipv6]:port", a);
		host++;
		host_len -= 2;
	}
	if (sm_number_parse_int64(colon + 1, &port) < 0 || port < 1 || port > 65535)
		return sm_config_report(p, node, "address '%s': port must be 1..65535", a);
	c->host = strndup(host, host_len);
	if (!c->host)
		return -ENOMEM;
	c->port = (int)port;
	return 0;
}

static const struct sm_config_key sentinel_keys[] = {
    {.name = "addresses",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct redis_sentinel, addresses),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "master",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct redis_sentinel, master),
     .flags = SM_CONFIG_REQUIRED},
};

static int parse_sentinel(struct sm_config_parser *p, const struct sm_config_node *node,
                          void *target)
{
	struct redis_sentinel s = {0};
	bool *has_sentinel = target;

	*has_sentinel = true;
	if (!sm_config_node_is_mapping(node))
		(void)sm_config_report(p, node, "sentinel: expected a mapping");
	else
		(void)sm_config_parse_mapping(p, node, sentinel_keys,
		                              sizeof(sentinel_keys) / sizeof(sentinel_keys[0]), &s,
		                              "sentinel");
	sm_strv_done(&s.addresses);
	free(s.master);
	return sm_config_report(p, node, "sentinel is not supported yet; use address");
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

static int parse_object(struct sm_config_parser *p, const struct sm_config_node *node, void *target)
{
	struct redis_object *o = target;

	if (!sm_config_node_is_mapping(node))
		return sm_config_report(p, node,
		                        "object: expected a mapping with resource and name");
	return sm_config_parse_mapping(p, node, object_keys,
	                               sizeof(object_keys) / sizeof(object_keys[0]), o, "object");
}

static const struct sm_config_key rule_keys[] = {
    {.name = "derived", .type = SM_CONFIG_BOOL, .offset = offsetof(struct redis_rule, derived)},
    {.name = "drain_cap",
     .type = SM_CONFIG_DOUBLE,
     .offset = offsetof(struct redis_rule, drain_cap)},
    {.name = "fallback", .type = SM_CONFIG_DOUBLE, .offset = offsetof(struct redis_rule, fallback)},
    {.name = "keys",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct redis_rule, keys),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "label", .type = SM_CONFIG_STRING, .offset = offsetof(struct redis_rule, label)},
    {.name = "metric",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct redis_rule, metric),
     .flags = SM_CONFIG_REQUIRED},
    {.name = "object",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct redis_rule, object),
     .parse = parse_object},
    {.name = "prefix", .type = SM_CONFIG_STRING, .offset = offsetof(struct redis_rule, prefix)},
    {.name = "preset", .type = SM_CONFIG_STRING, .offset = offsetof(struct redis_rule, preset)},
    {.name = "type",
     .type = SM_CONFIG_ENUM,
     .offset = offsetof(struct redis_rule, type),
     .enum_names = key_type_names},
    {.name = "window",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct redis_rule, window_ms),
     .min = 1000,
     .max = 86400000},
};

/* Every "{...}" in the object name must be "{label}". */
static int check_object_template(struct sm_config_parser *p, const struct sm_config_node *node,
                                 const struct redis_rule *r)
{
	const char *s = r->object.name;
	size_t label_len = strlen(r->label);

	for (;;) {
		const char *open = strchr(s, '{');
		const char *close;

		if (!open)
			break;
		close = strchr(open, '}');
		if (!close)
			return sm_config_report(p, node, "object name '%s': unclosed '{'",
			                        r->object.name);
		if ((size_t)(close - open - 1) != label_len ||
		    strncmp(open + 1, r->label, label_len) != 0)
			return sm_config_report(p, node,
			                        "object name '%s': unknown placeholder '%.*s'; "
			                        "only '{%s}' is available",
			                        r->object.name, (int)(close - open + 1), open,
			                        r->label);
		s = close + 1;
	}
	if (strchr(s, '}'))
		return sm_config_report(p, node, "object name '%s': unmatched '}'", r->object.name);
	return 0;
}

static int check_preset(struct sm_config_parser *p, const struct sm_config_node *item)
{
	const struct sm_config_node *n = sm_config_node_get(p, item, "preset");
	const char *v = sm_config_node_scalar(n);

	if (!v)
		return sm_config_report(p, n,
		                        "preset: expected one of sidekiq, celery, rq, bullmq");
	for (size_t i = 0; preset_names[i]; i++)
		if (strcmp(v, preset_names[i]) == 0)
			return sm_config_report(p, n, "preset '%s' is not supported yet", v);
	return sm_config_report(p, n,
	                        "unknown preset '%s', expected one of sidekiq, celery, rq, "
	                        "bullmq",
	                        v);
}

static int parse_rule(struct sm_config_parser *p, const struct sm_config_node *item,
                      struct redis_rule *r)
{
	struct sm_metric_def def = {0};
	const struct sm_config_node *n;
	int r1;

	if (!sm_config_node_is_mapping(item))
		return sm_config_report(p, item,
		                        "queue rule: expected a mapping with metric and "
		                        "keys (or preset)");
	if (sm_config_node_get(p, item, "preset"))
		return check_preset(p, item);

	r->window_ms = -1;
	r1 = sm_config_parse_mapping(p, item, rule_keys, sizeof(rule_keys) / sizeof(rule_keys[0]),
	                             r, "queue rule");
	/* Go on checking what did parse: every problem is reported at once. */
	if (r1 == -ENOMEM)
		return r1;
	r->has_object = sm_config_node_get(p, item, "object") != NULL;
	if (!r->label) {
		r->label = strdup(DEFAULT_LABEL);
		if (!r->label)
			return -ENOMEM;
	}

	if (r->metric && !metric_name_is_valid(r->metric))
		r1 = sm_config_report(p, sm_config_node_get(p, item, "metric"),
		                      "invalid metric name '%s': expected [a-zA-Z_:][a-zA-Z0-9_:]*",
		                      r->metric);
	if (!sm_label_key_is_valid(r->label))
		r1 = sm_config_report(p, sm_config_node_get(p, item, "label"),
		                      "invalid label name '%s'", r->label);
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
	if (r->derived)
		r1 = sm_config_report(p, sm_config_node_get(p, item, "derived"),
		                      "derived metrics are not supported yet");
	else if (r->window_ms >= 0)
		r1 = sm_config_report(p, sm_config_node_get(p, item, "window"),
		                      "window only applies with derived: true");
	else if (r->drain_cap.set)
		r1 = sm_config_report(p, sm_config_node_get(p, item, "drain_cap"),
		                      "drain_cap only applies with derived: true");
	if (r->prefix)
		r1 = sm_config_report(p, sm_config_node_get(p, item, "prefix"),
		                      "prefix only applies with preset");
	if (r->has_object && r->object.name && r->label)
		if (check_object_template(p, sm_config_node_get(p, item, "object"), r) < 0)
			r1 = -EINVAL;
	if (r1 < 0)
		return r1;

	def.name = r->metric;
	def.scope = r->has_object ? SM_METRIC_OBJECT : SM_METRIC_EXTERNAL;
	def.resource = r->has_object ? r->object.resource : NULL;
	def.fallback = r->fallback;
	return sm_config_add_metric(p, item, &def);
}

static int parse_queues(struct sm_config_parser *p, const struct sm_config_node *node, void *target)
{
	struct redis_rules *rules = target;
	size_t n;
	int r = 0;

	if (!sm_config_node_is_sequence(node))
		return sm_config_report(p, node, "queues: expected a list of queue rules");
	n = sm_config_node_length(node);
	if (n == 0)
		return sm_config_report(p, node, "queues: at least one queue rule is required");
	rules->v = calloc(n, sizeof(*rules->v));
	if (!rules->v)
		return -ENOMEM;
	rules->n = n;
	for (size_t i = 0; i < n; i++) {
		int k = parse_rule(p, sm_config_node_item(p, node, i), &rules->v[i]);

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
    {.name = "interval", .type = SM_CONFIG_CUSTOM},
    {.name = "max_age", .type = SM_CONFIG_CUSTOM},
    {.name = "max_series", .type = SM_CONFIG_CUSTOM},
    {.name = "name", .type = SM_CONFIG_CUSTOM},
    {.name = "namespaces", .type = SM_CONFIG_CUSTOM},
    {.name = "password_env",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct redis_config, password_env)},
    {.name = "password_file",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct redis_config, password_file)},
    {.name = "queues",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct redis_config, rules),
     .parse = parse_queues,
     .flags = SM_CONFIG_REQUIRED},
    {.name = "sentinel",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct redis_config, has_sentinel),
     .parse = parse_sentinel},
    {.name = "timeout", .type = SM_CONFIG_CUSTOM},
    {.name = "type", .type = SM_CONFIG_CUSTOM},
    {.name = "username",
     .type = SM_CONFIG_STRING,
     .offset = offsetof(struct redis_config, username)},
};

static int redis_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                              struct sm_source_config *src)
{
	struct redis_config *c = calloc(1, sizeof(*c));
	bool has_file, has_env;
	int r;

	if (!c)
		return -ENOMEM;
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
	if (c->address && *c->address) {
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

/* ---- runtime ---- */

/* One key read in a round. */
struct entry {
	char *key; /* binary-safe: key_len bytes, NUL-terminated for messages */
	size_t key_len;
	char *label; /* the label value (raw; the batch sanitises it) */
	size_t rule;
	int type; /* enum redis_key_type resolved for this key; AUTO until TYPE answered */
	long long value;
	bool skip;  /* per-series problem, or TYPE said "none" (value 0, no length command) */
	bool ready; /* value known without a length command */
};

struct redis_state {
	const struct sm_source_config *src;
	const struct redis_config *cfg;
	redisContext *ctx;
	char *password; /* a secret: never logged */
	int password_r; /* <0: reading it failed, every round reports it */
	char password_error[256];
	uint64_t round_trips;

	/* Per round, reused. */
	struct entry *entries;
	size_t n_entries;
	size_t cap_entries;
	size_t *set; /* open addressing: entry index + 1, 0 = empty; keys of the current rule */
	size_t set_cap;
	size_t set_first; /* first entry of the current rule */
	size_t overflow;  /* keys not read because max_series was reached */
	size_t n_notes;
};

static int read_password(const struct redis_config *c, char **ret, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t n = 0;
	int fd = -1;
	int r = 0;

	if (c->password_env && *c->password_env) {
		const char *v = getenv(c->password_env);

		if (!v || !*v) {
			snprintf(err, errlen, "environment variable '%s' (password_env) is not set",
			         c->password_env);
			return -ENOENT;
		}
		buf = strdup(v);
		if (!buf)
			return -ENOMEM;
		n = strlen(buf);
	} else if (c->password_file && *c->password_file) {
		fd = open(c->password_file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot read password_file '%s': %s",
			         c->password_file, strerror(errno));
			goto out;
		}
		buf = malloc(PASSWORD_MAX + 1);
		if (!buf) {
			r = -ENOMEM;
			goto out;
		}
		while (n < PASSWORD_MAX) {
			ssize_t got = read(fd, buf + n, PASSWORD_MAX - n);

			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0) {
				r = -errno;
				snprintf(err, errlen, "cannot read password_file '%s': %s",
				         c->password_file, strerror(errno));
				goto out;
			}
			if (got == 0)
				break;
			n += (size_t)got;
		}
		buf[n] = '\0';
		/* One trailing newline, as `echo` or an editor leaves it. */
		if (n > 0 && buf[n - 1] == '\n')
			buf[--n] = '\0';
		if (n > 0 && buf[n - 1] == '\r')
			buf[--n] = '\0';
		if (n == 0) {
			snprintf(err, errlen, "password_file '%s' is empty", c->password_file);
			r = -EINVAL;
			goto out;
		}
	} else {
		*ret = NULL;
		return 0;
	}
	*ret = buf;
	buf = NULL;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

static int redis_create(const struct sm_source_config *src, void **ret_state)
{
	struct redis_state *s;

	if (!src->priv)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->src = src;
	s->cfg = src->priv;
	/* A missing secret fails each round with a clear error rather than the whole start. */
	s->password_r =
	    read_password(s->cfg, &s->password, s->password_error, sizeof(s->password_error));
	if (s->password_r == -ENOMEM) {
		free(s);
		return -ENOMEM;
	}
	*ret_state = s;
	return 0;
}

static void entries_clear(struct redis_state *s)
{
	for (size_t i = 0; i < s->n_entries; i++) {
		free(s->entries[i].key);
		free(s->entries[i].label);
	}
	s->n_entries = 0;
}

static void disconnect(struct redis_state *s)
{
	if (s->ctx)
		redisFree(s->ctx);
	s->ctx = NULL;
}

static void redis_destroy(void *state)
{
	struct redis_state *s = state;

	if (!s)
		return;
	disconnect(s);
	entries_clear(s);
	free(s->entries);
	free(s->set);
	if (s->password) {
		/* Not a guarantee (the allocator may have copies), but do not leave it lying
		 * around. */
		memset(s->password, 0, strlen(s->password));
		free(s->password);
	}
	free(s);
}

static void address_string(const struct redis_config *c, char *buf, size_t len)
{
	if (c->unix_path)
		snprintf(buf, len, "unix:%s", c->unix_path);
	else if (strchr(c->host, ':'))
		snprintf(buf, len, "[%s]:%d", c->host, c->port);
	else
		snprintf(buf, len, "%s:%d", c->host, c->port);
}

static struct timeval ms_to_timeval(int64_t ms)
{
	if (ms <= 0)
		ms = 1;
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
	                        .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* Turns the context's error into a code and message, and drops the connection (the next
 * round reconnects). errno_saved is errno right after the failing hiredis call. */
static int fail_ctx(struct redis_state *s, int errno_saved, bool connecting,
                    struct sm_error *reterr)
{
	char addr[300];
	int err = s->ctx ? s->ctx->err : REDIS_ERR_OOM;
	const char *errstr = s->ctx ? s->ctx->errstr : "out of memory";
	int r;

	address_string(s->cfg, addr, sizeof(addr));
	switch (err) {
	case REDIS_ERR_IO:
		if (errno_saved == EAGAIN || errno_saved == EWOULDBLOCK ||
		    errno_saved == ETIMEDOUT || errno_saved == EINPROGRESS) {
			r = -ETIMEDOUT;
			sm_error_set(reterr, "%s: %s (no answer within %lldms)", addr, errstr,
			             (long long)s->src->timeout_ms);
			goto out;
		}
		if (errno_saved == ECONNREFUSED || errno_saved == ENOENT ||
		    errno_saved == ECONNRESET || errno_saved == EPIPE ||
		    errno_saved == EHOSTUNREACH || errno_saved == ENETUNREACH ||
		    errno_saved == EACCES)
			r = -errno_saved;
		else
			r = connecting ? -ECONNREFUSED : -EIO;
		break;
	case REDIS_ERR_EOF:
		r = -EIO;
		break;
	case REDIS_ERR_PROTOCOL:
		r = -EPROTO;
		break;
	case REDIS_ERR_OOM:
		r = -ENOMEM;
		break;
	default:
		r = connecting ? -EHOSTUNREACH : -EIO;
		break;
	}
	sm_error_set(reterr, "%s: %s", addr, errstr);
out:
	disconnect(s);
	return r;
}

/* A reply that is not what the protocol promises: drop the connection. */
static int fail_reply(struct redis_state *s, int r, struct sm_error *reterr, const char *what,
                      const redisReply *reply)
{
	char addr[300];

	address_string(s->cfg, addr, sizeof(addr));
	if (reply && reply->type == REDIS_REPLY_ERROR)
		sm_error_set(reterr, "%s: %s: %s", addr, what, reply->str);
	else
		sm_error_set(reterr, "%s: %s: unexpected reply type %d", addr, what,
		             reply ? reply->type : -1);
	disconnect(s);
	return r;
}

static int error_code(const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_ERROR)
		return -EPROTO;
	if (strncmp(reply->str, "NOAUTH", 6) == 0 || strncmp(reply->str, "WRONGPASS", 9) == 0 ||
	    strncmp(reply->str, "NOPERM", 6) == 0)
		return -EACCES;
	return -EIO;
}

/* One command, one round trip. 0 with *ret set (any reply type), or a failure. */
static int command(struct redis_state *s, redisReply **ret, struct sm_error *reterr,
                   const char *fmt, ...)
{
	va_list ap;
	redisReply *reply;

	va_start(ap, fmt);
	reply = redisvCommand(s->ctx, fmt, ap);
	va_end(ap);
	s->round_trips++;
	if (!reply)
		return fail_ctx(s, errno, false, reterr);
	*ret = reply;
	return 0;
}

static int ensure_connected(struct redis_state *s, struct sm_error *reterr)
{
	const struct redis_config *c = s->cfg;
	struct timeval tv = ms_to_timeval(s->src->timeout_ms);
	redisReply *reply = NULL;
	int r;

	if (s->ctx)
		return 0;
	errno = 0;
	if (c->unix_path)
		s->ctx = redisConnectUnixWithTimeout(c->unix_path, tv);
	else
		s->ctx = redisConnectWithTimeout(c->host, c->port, tv);
	if (!s->ctx || s->ctx->err)
		return fail_ctx(s, errno, true, reterr);
	if (redisSetTimeout(s->ctx, tv) != REDIS_OK)
		return fail_ctx(s, errno, true, reterr);

	if (s->password) {
		/* Never the text of the command in errors: it holds the password. */
		if (c->username && *c->username)
			r = command(s, &reply, reterr, "AUTH %s %s", c->username, s->password);
		else
			r = command(s, &reply, reterr, "AUTH %s", s->password);
		if (r < 0)
			return r;
		if (reply->type != REDIS_REPLY_STATUS) {
			r = fail_reply(s, reply->type == REDIS_REPLY_ERROR ? -EACCES : -EPROTO,
			               reterr, "AUTH", reply);
			goto out;
		}
		freeReplyObject(reply);
		reply = NULL;
	}
	if (c->db != 0) {
		r = command(s, &reply, reterr, "SELECT %lld", (long long)c->db);
		if (r < 0)
			return r;
		if (reply->type != REDIS_REPLY_STATUS) {
			r = fail_reply(s, error_code(reply), reterr, "SELECT", reply);
			goto out;
		}
	}
	r = 0;
out:
	freeReplyObject(reply);
	return r;
}

/* ---- keys and labels ---- */

struct capture {
	const char *p;
	size_t len;
};

/* Redis' glob (stringmatchlen: * ? [...] [^...] [a-z] \x), recording what each '*' matched.
 * Shortest match first for each '*', as Redis does. *budget bounds backtracking. */
static bool glob_match(const char *pat, size_t plen, const char *str, size_t slen,
                       struct capture *caps, size_t ncap, size_t *budget)
{
	while (plen > 0) {
		if ((*budget)-- == 0)
			return false;
		switch (pat[0]) {
		case '*':
			while (plen > 1 && pat[1] == '*') {
				pat++;
				plen--;
			}
			if (plen == 1) {
				if (ncap > 0)
					caps[0] = (struct capture){str, slen};
				return true;
			}
			for (size_t k = 0; k <= slen; k++) {
				if (glob_match(pat + 1, plen - 1, str + k, slen - k,
				               ncap > 0 ? caps + 1 : caps, ncap > 0 ? ncap - 1 : 0,
				               budget)) {
					if (ncap > 0)
						caps[0] = (struct capture){str, k};
					return true;
				}
				if (*budget == 0)
					return false;
			}
			return false;
		case '?':
			if (slen == 0)
				return false;
			str++;
			slen--;
			break;
		case '[': {
			bool neg, found = false;

			pat++;
			plen--;
			if (slen == 0)
				return false;
			neg = plen > 0 && pat[0] == '^';
			if (neg) {
				pat++;
				plen--;
			}
			for (;;) {
				if (plen == 0) {
					/* Unterminated: Redis treats the end as ']'. */
					break;
				}
				if (pat[0] == '\\' && plen >= 2) {
					pat++;
					plen--;
					if (pat[0] == str[0])
						found = true;
				} else if (pat[0] == ']') {
					break;
				} else if (plen >= 3 && pat[1] == '-') {
					unsigned char lo = (unsigned char)pat[0];
					unsigned char hi = (unsigned char)pat[2];
					unsigned char ch = (unsigned char)str[0];

					if (lo > hi) {
						unsigned char t = lo;

						lo = hi;
						hi = t;
					}
					pat += 2;
					plen -= 2;
					if (ch >= lo && ch <= hi)
						found = true;
				} else if (pat[0] == str[0]) {
					found = true;
				}
				pat++;
				plen--;
			}
			if (neg)
				found = !found;
			if (!found)
				return false;
			str++;
			slen--;
			if (plen == 0)
				return slen == 0;
			break;
		}
		case '\\':
			if (plen >= 2) {
				pat++;
				plen--;
			}
			/* fall through */
		default:
			if (slen == 0 || pat[0] != str[0])
				return false;
			str++;
			slen--;
			break;
		}
		pat++;
		plen--;
	}
	return slen == 0;
}

static size_t count_stars(const char *pat)
{
	size_t n = 0;

	for (size_t i = 0; pat[i]; i++) {
		if (pat[i] == '\\' && pat[i + 1]) {
			i++;
		} else if (pat[i] == '*') {
			n++;
			while (pat[i + 1] == '*')
				i++;
		}
	}
	return n;
}

/* The label value: what the '*'s matched, joined by ':'; else the whole key. */
static char *label_for(const char *pat, const char *key, size_t key_len)
{
	struct capture caps[MAX_STARS];
	size_t stars = pat ? count_stars(pat) : 0;
	size_t budget = 100000;
	size_t len = 0;
	char *out;

	if (stars > MAX_STARS)
		stars = MAX_STARS;
	if (stars == 0 || !glob_match(pat, strlen(pat), key, key_len, caps, stars, &budget))
		return strndup(key, key_len);
	for (size_t i = 0; i < stars; i++)
		len += caps[i].len + 1;
	out = malloc(len + 1);
	if (!out)
		return NULL;
	len = 0;
	for (size_t i = 0; i < stars; i++) {
		if (i > 0)
			out[len++] = ':';
		memcpy(out + len, caps[i].p, caps[i].len);
		len += caps[i].len;
	}
	out[len] = '\0';
	/* Keys may hold NUL bytes; the label is a C string and stops at the first. */
	return out;
}

static uint64_t hash_key(const char *k, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)k[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static int set_reset(struct redis_state *s)
{
	if (!s->set) {
		s->set_cap = 256;
		s->set = calloc(s->set_cap, sizeof(*s->set));
		if (!s->set)
			return -ENOMEM;
	} else {
		memset(s->set, 0, s->set_cap * sizeof(*s->set));
	}
	s->set_first = s->n_entries;
	return 0;
}

/* The slot for key: holding its entry, or empty. */
static size_t *set_slot(struct redis_state *s, const char *key, size_t len)
{
	size_t mask = s->set_cap - 1;
	size_t i = (size_t)hash_key(key, len) & mask;

	for (;;) {
		size_t *slot = &s->set[i];
		const struct entry *e;

		if (*slot == 0)
			return slot;
		e = &s->entries[*slot - 1];
		if (e->key_len == len && memcmp(e->key, key, len) == 0)
			return slot;
		i = (i + 1) & mask;
	}
}

static int set_grow(struct redis_state *s)
{
	size_t n = s->n_entries - s->set_first;
	size_t *old = s->set;

	if ((n + 1) * 2 <= s->set_cap)
		return 0;
	s->set = calloc(s->set_cap * 2, sizeof(*s->set));
	if (!s->set) {
		s->set = old;
		return -ENOMEM;
	}
	s->set_cap *= 2;
	free(old);
	for (size_t i = s->set_first; i < s->n_entries; i++)
		*set_slot(s, s->entries[i].key, s->entries[i].key_len) = i + 1;
	return 0;
}

/* Adds key to the current rule unless already there. pat: the glob it matched, or NULL. */
static int add_key(struct redis_state *s, size_t rule, const char *pat, const char *key,
                   size_t key_len)
{
	struct entry *e;
	size_t *slot;
	int r;

	slot = set_slot(s, key, key_len);
	if (*slot != 0)
		return 0;
	if (s->n_entries >= s->src->max_series) {
		s->overflow++;
		return 0;
	}
	if (s->n_entries == s->cap_entries) {
		size_t cap = s->cap_entries ? s->cap_entries * 2 : 64;
		struct entry *v;

		if (cap > s->src->max_series)
			cap = s->src->max_series;
		v = realloc(s->entries, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->entries = v;
		s->cap_entries = cap;
	}
	e = &s->entries[s->n_entries];
	*e = (struct entry){.rule = rule, .type = s->cfg->rules.v[rule].type};
	e->key = malloc(key_len + 1);
	if (!e->key)
		return -ENOMEM;
	memcpy(e->key, key, key_len);
	e->key[key_len] = '\0';
	e->key_len = key_len;
	e->label = label_for(pat, key, key_len);
	if (!e->label) {
		free(e->key);
		return -ENOMEM;
	}
	*slot = ++s->n_entries;
	r = set_grow(s);
	return r;
}

static int scan_glob(struct redis_state *s, size_t rule, const char *pat, struct sm_error *reterr)
{
	char cursor[32] = "0";
	int r = 0;

	do {
		redisReply *reply = NULL;
		const redisReply *keys;

		r = command(s, &reply, reterr, "SCAN %s MATCH %b COUNT " SCAN_COUNT, cursor, pat,
		            strlen(pat));
		if (r < 0)
			return r;
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		    reply->element[0]->type != REDIS_REPLY_STRING ||
		    reply->element[0]->len >= sizeof(cursor) ||
		    reply->element[1]->type != REDIS_REPLY_ARRAY) {
			r = fail_reply(s, error_code(reply), reterr, "SCAN", reply);
			freeReplyObject(reply);
			return r;
		}
		memcpy(cursor, reply->element[0]->str, reply->element[0]->len);
		cursor[reply->element[0]->len] = '\0';
		keys = reply->element[1];
		for (size_t i = 0; i < keys->elements && r >= 0; i++) {
			const redisReply *k = keys->element[i];

			if (k->type != REDIS_REPLY_STRING)
				continue;
			r = add_key(s, rule, pat, k->str, k->len);
		}
		freeReplyObject(reply);
		if (r < 0)
			return r;
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

static void note(struct redis_state *s, struct sm_error *reterr, const char *fmt, ...)
    SM_PRINTF(3, 4);

/* A per-series problem: the first in full; the count of others is appended at the end of the
 * round. */
static void note(struct redis_state *s, struct sm_error *reterr, const char *fmt, ...)
{
	va_list ap;

	if (s->n_notes++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(reterr->message, sizeof(reterr->message), fmt, ap);
	va_end(ap);
}

/* ---- pipelined reads ---- */

/* TYPE for each entry of an auto rule, in batches of PIPELINE_BATCH per round trip. */
static int resolve_types(struct redis_state *s, struct sm_error *reterr)
{
	size_t idx[PIPELINE_BATCH];
	size_t i = 0;

	while (i < s->n_entries) {
		size_t n = 0;

		for (; i < s->n_entries && n < PIPELINE_BATCH; i++) {
			struct entry *e = &s->entries[i];

			if (e->type != REDIS_KEY_AUTO)
				continue;
			if (redisAppendCommand(s->ctx, "TYPE %b", e->key, e->key_len) != REDIS_OK)
				return fail_ctx(s, errno, false, reterr);
			idx[n++] = i;
		}
		if (n == 0)
			break;
		s->round_trips++;
		for (size_t j = 0; j < n; j++) {
			struct entry *e = &s->entries[idx[j]];
			redisReply *reply = NULL;
			int t;

			if (redisGetReply(s->ctx, (void **)&reply) != REDIS_OK || !reply)
				return fail_ctx(s, errno, false, reterr);
			if (reply->type != REDIS_REPLY_STATUS) {
				int r = fail_reply(s, error_code(reply), reterr, "TYPE", reply);

				freeReplyObject(reply);
				return r;
			}
			if (strcmp(reply->str, "none") == 0) {
				e->value = 0;
				e->ready = true;
				e->type = REDIS_KEY_TYPE_MAX; /* resolved, nothing to read */
				freeReplyObject(reply);
				continue;
			}
			for (t = REDIS_KEY_AUTO + 1; t < REDIS_KEY_TYPE_MAX; t++)
				if (strcmp(reply->str, key_type_names[t]) == 0)
					break;
			if (t == REDIS_KEY_TYPE_MAX) {
				note(s, reterr,
				     "key '%s' is a %s, not a list, zset, set, stream or hash; "
				     "skipped",
				     e->key, reply->str);
				e->skip = true;
				e->type = REDIS_KEY_TYPE_MAX;
			} else {
				e->type = t;
			}
			freeReplyObject(reply);
		}
	}
	return 0;
}

static int read_lengths(struct redis_state *s, struct sm_error *reterr)
{
	size_t idx[PIPELINE_BATCH];
	size_t i = 0;

	while (i < s->n_entries) {
		size_t n = 0;

		for (; i < s->n_entries && n < PIPELINE_BATCH; i++) {
			struct entry *e = &s->entries[i];

			if (e->skip || e->ready)
				continue;
			if (redisAppendCommand(s->ctx, "%s %b", length_commands[e->type], e->key,
			                       e->key_len) != REDIS_OK)
				return fail_ctx(s, errno, false, reterr);
			idx[n++] = i;
		}
		if (n == 0)
			break;
		s->round_trips++;
		for (size_t j = 0; j < n; j++) {
			struct entry *e = &s->entries[idx[j]];
			redisReply *reply = NULL;

			if (redisGetReply(s->ctx, (void **)&reply) != REDIS_OK || !reply)
				return fail_ctx(s, errno, false, reterr);
			if (reply->type == REDIS_REPLY_INTEGER) {
				e->value = reply->integer;
				e->ready = true;
			} else if (reply->type == REDIS_REPLY_ERROR &&
			           strncmp(reply->str, "WRONGTYPE", 9) == 0) {
				note(s, reterr, "key '%s' is not a %s; skipped", e->key,
				     key_type_names[e->type]);
				e->skip = true;
			} else {
				int r = fail_reply(s, error_code(reply), reterr,
				                   length_commands[e->type], reply);

				freeReplyObject(reply);
				return r;
			}
			freeReplyObject(reply);
		}
	}
	return 0;
}

/* ---- series ---- */

/* The object name: the template with "{label}" replaced by the served label value. */
static char *object_name(const struct redis_rule *r, const char *value)
{
	char clean[64];
	size_t label_len = strlen(r->label);
	size_t need = 1;
	const char *t;
	char *out, *o;

	sm_label_value_sanitize(value, clean);
	for (t = r->object.name; *t; t++)
		need += (t[0] == '{') ? sizeof(clean) : 1;
	out = malloc(need);
	if (!out)
		return NULL;
	o = out;
	for (t = r->object.name; *t;) {
		if (t[0] == '{' && strncmp(t + 1, r->label, label_len) == 0 &&
		    t[1 + label_len] == '}') {
			size_t n = strlen(clean);

			memcpy(o, clean, n);
			o += n;
			t += label_len + 2;
		} else {
			*o++ = *t++;
		}
	}
	*o = '\0';
	return out;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c;

	if (x->rule != y->rule)
		return x->rule < y->rule ? -1 : 1;
	c = strcmp(x->label, y->label);
	if (c != 0)
		return c;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return memcmp(x->key, y->key, x->key_len);
}

/* One series per (rule, label value): keys that give the same value (two globs, or a glob
 * and an exact key) are summed, so a label never names two series. */
static int emit(struct redis_state *s, struct sm_batch *batch)
{
	size_t i = 0;

	qsort(s->entries, s->n_entries, sizeof(*s->entries), cmp_entry);
	while (i < s->n_entries) {
		const struct entry *first = &s->entries[i];
		const struct redis_rule *rule = &s->cfg->rules.v[first->rule];
		struct sm_label label = {.name = rule->label, .value = first->label};
		struct sm_object_ref obj = {.resource = rule->object.resource};
		struct sm_series_in in = {.metric = rule->metric, .labels = &label, .n_labels = 1};
		bool any = false;
		double sum = 0;
		char *name = NULL;
		int r;

		for (; i < s->n_entries && s->entries[i].rule == first->rule &&
		       strcmp(s->entries[i].label, first->label) == 0;
		     i++) {
			if (s->entries[i].skip)
				continue;
			any = true;
			sum += (double)s->entries[i].value;
		}
		if (!any)
			continue;
		in.value = sum;
		if (rule->has_object) {
			name = object_name(rule, first->label);
			if (!name)
				return -ENOMEM;
			obj.name = name;
			in.object = &obj;
		}
		r = sm_batch_add(batch, &in);
		free(name);
		if (r == -E2BIG)
			return 0;
		if (r < 0 && r != -EINVAL)
			return r;
	}
	return 0;
}

/* One round on a connected context. The batch is only touched once all I/O is done. */
static int read_round(struct redis_state *s, struct sm_batch *batch, struct sm_error *reterr)
{
	const struct redis_config *c = s->cfg;
	int r;

	entries_clear(s);
	s->overflow = 0;
	s->n_notes = 0;
	for (size_t ri = 0; ri < c->rules.n; ri++) {
		const struct redis_rule *rule = &c->rules.v[ri];

		r = set_reset(s);
		if (r < 0)
			goto out;
		for (size_t k = 0; k < rule->keys.n; k++) {
			const char *pat = rule->keys.v[k];

			if (pattern_is_glob(pat))
				r = scan_glob(s, ri, pat, reterr);
			else
				r = add_key(s, ri, NULL, pat, strlen(pat));
			if (r < 0)
				goto out;
		}
	}
	r = resolve_types(s, reterr);
	if (r < 0)
		goto out;
	r = read_lengths(s, reterr);
	if (r < 0)
		goto out;
	r = emit(s, batch);
	if (r < 0)
		goto out;
	/* Keys beyond max_series were never stored: let the full batch count them as dropped. */
	if (s->overflow > 0 && sm_batch_count(batch) >= s->src->max_series) {
		const struct redis_rule *rule = &c->rules.v[c->rules.n - 1];
		struct sm_label label = {.name = rule->label, .value = ""};
		struct sm_series_in in = {.metric = rule->metric, .labels = &label, .n_labels = 1};

		for (size_t i = 0; i < s->overflow; i++)
			if (sm_batch_add(batch, &in) != -E2BIG)
				break;
		s->overflow = 0;
	}

	if (s->overflow > 0 && s->n_notes == 0)
		sm_error_set(reterr,
		             "more keys match than max_series (%u) allows; the rest are "
		             "not read",
		             s->src->max_series);
	else if (s->n_notes > 1) {
		char first[sizeof(reterr->message)];

		memcpy(first, reterr->message, sizeof(first));
		sm_error_set(reterr, "%.400s (and %zu more keys)", first, s->n_notes - 1);
	}
out:
	entries_clear(s);
	if (r == -ENOMEM)
		sm_error_set(reterr, "out of memory");
	return r;
}

static int redis_collect(void *state, struct sm_batch *batch, struct sm_error *reterr)
{
	struct redis_state *s = state;
	bool reused = s->ctx != NULL;
	int r;

	sm_error_clear(reterr);
	if (s->password_r < 0) {
		sm_error_set(reterr, "%s", s->password_error);
		return s->password_r;
	}
	r = ensure_connected(s, reterr);
	if (r < 0)
		return r;
	r = read_round(s, batch, reterr);
	/* A kept connection may have been closed meanwhile (server restart, its idle `timeout`):
	 * that is no reason to fail the round, one fresh connection is. */
	if (reused && (r == -EPIPE || r == -ECONNRESET || r == -EIO)) {
		sm_error_clear(reterr);
		r = ensure_connected(s, reterr);
		if (r < 0)
			return r;
		r = read_round(s, batch, reterr);
	}
	return r;
}

const struct sm_source_ops sm_source_redis = {
    .type = "redis",
    .config_parse = redis_config_parse,
    .config_free = redis_config_free,
    .create = redis_create,
    .collect = redis_collect,
    .destroy = redis_destroy,
};
