/* SPDX-License-Identifier: MIT */
/* Shared by the Redis collector's files (redis.c, redis-presets.c, redis-derived.c,
 * redis-sentinel.c): the parsed configuration, the per-source state, and the few functions
 * one file offers another. Nobody outside src/collectors/redis*.c includes it. */
#ifndef SM_REDIS_INTERNAL_H
#define SM_REDIS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/config.h"
#include "scalemetrics/error.h"

struct redisContext;
struct sm_batch;
struct sm_source_config;

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

/* What is read from each key of a rule. */
enum redis_read {
	REDIS_READ_LENGTH,         /* LLEN/ZCARD/SCARD/HLEN; streams: XLEN + XINFO GROUPS */
	REDIS_READ_DUE_BULLMQ,     /* ZCOUNT key -inf now_ms*4096+4095 (BullMQ delayed scores) */
	REDIS_READ_OLDEST_SIDEKIQ, /* LINDEX key -1: now - the JSON job's enqueued_at, seconds */
	REDIS_READ_MAX,
};

/* Where a rule's keys come from. */
enum redis_discover {
	REDIS_DISCOVER_KEYS,  /* keys: exact keys and SCAN globs */
	REDIS_DISCOVER_SET,   /* queue names: SMEMBERS index (minus member_prefix), + names */
	REDIS_DISCOVER_SCAN,  /* queue names: what '*' matched in the index globs, + names */
	REDIS_DISCOVER_KOMBU, /* queue names: Kombu binding sets found by the index glob */
	REDIS_DISCOVER_MAX,
};

enum redis_preset {
	REDIS_PRESET_SIDEKIQ,
	REDIS_PRESET_CELERY,
	REDIS_PRESET_RQ,
	REDIS_PRESET_BULLMQ,
	REDIS_PRESET_MAX,
	REDIS_PRESET_INVALID = -1,
};

struct redis_object {
	char *resource;
	char *name; /* template: "{label}" is replaced by the series' label value */
};

/* One metric to serve. A plain queue rule is one; a preset expands to several, which share
 * `group` so that their queue names are discovered once per round. */
struct redis_rule {
	char *metric;
	/* REDIS_DISCOVER_KEYS: exact keys and globs. Otherwise key templates, "{name}" standing
	 * for the queue name; the keys of one name are summed into one series. */
	struct sm_strv keys;
	char *label;          /* NULL: one series without labels (e.g. sidekiq_dead) */
	int type;             /* enum redis_key_type */
	int read;             /* enum redis_read */
	int discover;         /* enum redis_discover */
	struct sm_strv index; /* SET: set keys; SCAN/KOMBU: globs (already escaped) */
	char *member_prefix;  /* SET: stripped from members when present (RQ) */
	struct sm_strv names; /* queue names always included (preset `names:`) */
	size_t group;         /* rules with equal group share discovered names */
	bool optional;        /* a missing key gives no series, rather than 0 */
	bool literal;         /* KEYS: never globs (a preset's prefix may hold '*') */
	struct sm_opt_double fallback;
	struct redis_object object;
	bool has_object;
	bool derived;
	int64_t window_ms;     /* derived: default 60s */
	double drain_cap;      /* derived: default 3600 */
	char *dequeue_counter; /* derived, optional: a counter key template ("{label}") */
	char *growth_metric;   /* derived: METRIC_growth_per_second */
	char *drain_metric;    /* derived: METRIC_drain_seconds */
};

struct redis_rules {
	struct redis_rule *v;
	size_t n;
	size_t cap;
};

struct redis_endpoint {
	char *host;
	int port;
};

struct redis_config {
	char *address;
	char *host; /* TCP; NULL for a unix socket or sentinel */
	int port;
	char *unix_path; /* unix socket; NULL for TCP */
	int64_t db;
	char *username;
	char *password_file;
	char *password_env;
	int64_t scan_count; /* SCAN's COUNT hint, default 1000 */
	struct redis_rules rules;
	bool has_sentinel;
	struct redis_endpoint *sentinels;
	size_t n_sentinels;
	char *sentinel_master;
	size_t n_groups;
};

/* ---- redis-config.c ---- */

extern const char *const sm_redis_key_type_names[];

/* The ops' config_parse and config_free (source.h). */
int sm_redis_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                          struct sm_source_config *src);
void sm_redis_config_free(void *priv);

bool sm_redis_metric_name_is_valid(const char *s);
/* Does a `keys:` entry hold a glob character (read with SCAN MATCH)? */
bool sm_redis_pattern_is_glob(const char *s);
/* An `object: {resource, name}` mapping into the struct redis_object at target. */
int sm_redis_parse_object(struct sm_config_parser *p, const struct sm_config_node *node,
                          void *target);
/* Appends a zeroed rule to rules; NULL when out of memory. */
struct redis_rule *sm_redis_rules_push(struct redis_rules *rules);
/* Declares r's metrics (and its derived ones) with sm_config_add_metric at node. */
int sm_redis_rule_declare(struct sm_config_parser *p, const struct sm_config_node *node,
                          struct redis_rule *r);
/* Checks the object template and the derived keys of r; reports at item. */
int sm_redis_rule_check(struct sm_config_parser *p, const struct sm_config_node *item,
                        struct redis_rule *r);
/* "host:port" or "[v6]:port" into *ret; -EINVAL on syntax, -ENOMEM. */
int sm_redis_parse_host_port(const char *a, struct redis_endpoint *ret);

/* ---- redis.c ---- */

/* Round trips made by a collector state since create (bench/redis, tests). */
uint64_t sm_redis_round_trips(const void *state);

/* ---- redis-presets.c ---- */

/* Expands one `preset:` queue item into rules. Reports problems at item. */
int sm_redis_preset_expand(struct sm_config_parser *p, const struct sm_config_node *item,
                           struct redis_config *c);
/* The Kombu binding set member "routing_key\x06\x16pattern\x06\x16queue": the queue, as a
 * pointer into member and its length; false when it has no such shape. */
bool sm_redis_kombu_queue(const char *member, size_t len, const char **ret, size_t *ret_len);
/* Age in seconds at now_wall_ms of the Sidekiq job JSON (its enqueued_at: float seconds up to
 * Sidekiq 7, integer milliseconds from Sidekiq 8). -EINVAL with a reason in err. */
int sm_redis_sidekiq_age(const char *json, size_t len, int64_t now_wall_ms, double *ret_age,
                         char *err, size_t errlen);

/* ---- redis-derived.c ---- */

struct redis_history;

struct redis_history *sm_redis_history_new(void);
void sm_redis_history_free(struct redis_history *h);
/* Records a sample of the series (rule, label) and computes growth (items/s) and drain time
 * (s). counter: the configured dequeue counter's value, when has_counter. Returns 0 with both
 * set, 1 when there is not yet a second sample to compare with, -ENOMEM. */
int sm_redis_history_update(struct redis_history *h, const struct redis_rule *r, size_t rule,
                            const char *label, int64_t now_ms, double value, bool has_counter,
                            double counter, double *ret_growth, double *ret_drain);
/* Forgets series not updated for keep_ms (vanished queues). */
void sm_redis_history_sweep(struct redis_history *h, int64_t now_ms, int64_t keep_ms);

/* ---- redis-sentinel.c ---- */

/* Asks the sentinels, in order starting with the one that answered last, for the master of
 * c->sentinel_master. 0 with *ret_host (malloc'd) and *ret_port, or a negative errno with
 * every sentinel's answer in reterr. *start is updated to the sentinel that answered. */
int sm_redis_sentinel_master(const struct redis_config *c, int64_t timeout_ms, size_t *start,
                             char **ret_host, int *ret_port, struct sm_error *reterr);

#endif
