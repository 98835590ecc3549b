/* SPDX-License-Identifier: MIT */
/* Shared by the Redis collector's files (redis*.c): the parsed configuration, the per-source
 * state, and the functions one file offers another. Outside src/collectors/redis*.c only their
 * unit tests, the fuzz target and bench/redis include it. */
#ifndef SM_REDIS_INTERNAL_H
#define SM_REDIS_INTERNAL_H

#include <assert.h>
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

/* ---- the collector's state (redis.c and its round's files) ---- */

#define SM_REDIS_PIPELINE_BATCH 1000 /* commands per round trip */

struct redis_group_stat {
	char *name;
	double lag;
	bool has_lag;
	double pending;
};

/* What few entries have: a stream's consumer groups, a dequeue counter, why it failed. */
struct redis_extra {
	struct redis_group_stat *groups;
	size_t n_groups;
	bool has_counter; /* the dequeue counter's value */
	double counter;
	char *error; /* the entry could not be read (entry.failed) */
};

/* One key read in a round: 40 bytes, there may be max_series of them. */
struct redis_entry {
	/* In the round's string pool: key_len bytes of key (binary-safe), a NUL (for
	 * messages), then, if has_label, the label value (raw; the batch sanitises it) and a
	 * NUL; see sm_redis_entry_label(). */
	char *key;
	double value;
	uint32_t key_len; /* Redis keys are at most 512 MB */
	uint32_t rule;    /* index in cfg->rules */
	uint32_t extra;   /* index + 1 in the state's extras; 0: none */
	int8_t type;      /* enum redis_key_type resolved for this key; AUTO until TYPE answered */
	bool has_label;
	bool skip;   /* per-series problem, or an optional key that does not exist */
	bool failed; /* the per-series problem: its series is served as a failure */
	bool ready;  /* value known without a read command (TYPE said "none") */
	bool stream; /* value is XLEN; the extra's groups hold XINFO GROUPS */
};
static_assert(sizeof(struct redis_entry) <= 40 || sizeof(void *) > 8, "struct redis_entry grew");
static_assert(REDIS_KEY_TYPE_MAX <= INT8_MAX, "enum redis_key_type fits struct redis_entry's type");

/* Where the keys and labels of a round live: chunks kept from round to round (a round needs
 * about what the previous one did), so a round costs no allocation per key, no page faults
 * and no holes in the heap. Chunks are big enough for malloc to map them on their own. */
struct redis_pool_chunk {
	struct redis_pool_chunk *next;
	size_t size; /* bytes in data */
	size_t used;
	char data[];
};

struct redis_pool {
	struct redis_pool_chunk *head;
	struct redis_pool_chunk *cur; /* being filled; the ones after it are unused this round */
	bool dirty;                   /* allocated from since the last reset */
};

struct redis_names {
	char **v;
	size_t n;
	size_t cap;
};

struct redis_state {
	const struct sm_source_config *src;
	const struct redis_config *cfg;
	struct redisContext *ctx;
	char *cur_host; /* the node connected to (the master the sentinels named) */
	int cur_port;
	size_t sentinel_next; /* the sentinel asked first */
	bool role_checked;    /* ROLE said master since this round began */
	char *password;       /* a secret: never logged */
	int password_r;       /* <0: reading it failed, every round reports it */
	char password_error[256];
	uint64_t round_trips; /* since start, for the benchmark and the tests */
	struct redis_history *history;
	int64_t max_window_ms;

	/* Per round, reused. */
	struct redis_entry *entries;
	size_t n_entries;
	size_t cap_entries;
	size_t entries_hint;    /* the first capacity: the last round's count, at least 64 */
	struct redis_pool pool; /* the entries' keys and labels */
	struct redis_extra *extras;
	size_t n_extras;
	size_t cap_extras;
	char *scratch; /* a glob's label being built */
	size_t scratch_cap;
	uint32_t *set; /* open addressing: entry index + 1, 0 = empty; keys of the current rule */
	size_t set_cap;
	size_t set_first; /* first entry of the current rule */
	size_t overflow;  /* keys not read because max_series was reached */
	size_t n_notes;
	char more[200];           /* keys of the problems after the first */
	struct redis_names names; /* the queue names of names_group, discovered this round */
	size_t names_group;
	bool names_valid;
	char names_error[256]; /* why names may be missing from names ("": none) */
	char **rule_errors;    /* per rule: its queue names could not all be discovered */
	char due_max[32];      /* ZCOUNT's max for BullMQ "due now" */
	int64_t now_wall_ms;
};

/* ---- redis-config.c ---- */

extern const char *const sm_redis_key_type_names[];

/* The ops' config_parse and config_free (source.h). */
int sm_redis_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                          struct sm_source_config *src);
void sm_redis_config_free(void *priv);

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

/* ---- redis.c: the round ---- */

/* Round trips made by a collector state since create (bench/redis, tests). */
uint64_t sm_redis_round_trips(const void *state);
/* The round's series into batch, from the entries read: one per (rule, label value), summed
 * (Sidekiq latencies: the largest); streams' kind=length/lag/pending; failures for entries
 * that could not be read and rules whose names could not be discovered; derived metrics
 * through the history at now_mono_ms. Only -ENOMEM fails. */
int sm_redis_emit(struct redis_state *s, struct sm_batch *batch, int64_t now_mono_ms);
/* A per-series problem, joined into reterr while it fits; the keys of the rest are listed at
 * the end of the round. */
void sm_redis_note(struct redis_state *s, struct sm_error *reterr, const char *key, const char *fmt,
                   ...) SM_PRINTF(4, 5);
/* A key that could not be read: noted as "MESSAGE; then", skipped, its series served as a
 * failure with MESSAGE as the reason. Cannot fail (short of memory: no reason kept). */
void sm_redis_fail_entry(struct redis_state *s, struct sm_error *reterr, struct redis_entry *e,
                         const char *then, const char *fmt, ...) SM_PRINTF(5, 6);

/* ---- redis-conn.c: the connection, commands, error mapping ---- */

struct redisReply;

/* Connects (through the sentinels when configured), AUTH, SELECT and, with sentinels, ROLE;
 * a no-op when connected. 0 or a negative errno with reterr filled. */
int sm_redis_connect(struct redis_state *s, struct sm_error *reterr);
void sm_redis_disconnect(struct redis_state *s);
/* ROLE must say "master"; -EAGAIN (disconnected) otherwise, so the sentinels are asked again. */
int sm_redis_check_role(struct redis_state *s, struct sm_error *reterr);
/* One command, one round trip. 0 with *ret set (any reply type), or a failure. */
int sm_redis_command(struct redis_state *s, struct redisReply **ret, struct sm_error *reterr,
                     const char *fmt, ...);
/* The next reply of a pipeline; a failure drops the connection. */
int sm_redis_next_reply(struct redis_state *s, struct redisReply **ret, struct sm_error *reterr);
/* The context's error as a code and message; drops the connection. errno_saved: errno right
 * after the failing hiredis call. */
int sm_redis_fail_ctx(struct redis_state *s, int errno_saved, bool connecting,
                      struct sm_error *reterr);
/* The code for a hiredis context error err (REDIS_ERR_*) with errno_saved: -ETIMEDOUT for a
 * socket timeout; the errno itself for refused, reset, unreachable and the like; -EIO, -EPROTO,
 * -ENOMEM; an unknown I/O error is -ECONNREFUSED while connecting. */
int sm_redis_ctx_error_code(int err, int errno_saved, bool connecting);
/* A reply that is not what the protocol promises: r, reterr filled, connection dropped. */
int sm_redis_fail_reply(struct redis_state *s, int r, struct sm_error *reterr, const char *what,
                        const struct redisReply *reply);
/* The code of an unexpected reply: -EACCES for NOAUTH/WRONGPASS/NOPERM, -EIO for other
 * errors, -EPROTO for a reply of the wrong type. */
int sm_redis_error_code(const struct redisReply *reply);

/* ---- redis-keys.c: the round's keys (glob labels, storage, the key set) ---- */

#define SM_REDIS_MAX_STARS 16 /* '*' captured per glob */

struct redis_capture {
	const char *p;
	size_t len;
};

/* Redis' glob (stringmatchlen: * ? [...] [^...] [a-z] \x), recording in caps what each of the
 * first ncap '*' matched (shortest first, as Redis does). *budget bounds backtracking: false
 * once it runs out. */
bool sm_redis_glob_match(const char *pat, size_t plen, const char *str, size_t slen,
                         struct redis_capture *caps, size_t ncap, size_t *budget);
/* How many '*' runs pat holds (escaped ones do not count). */
size_t sm_redis_count_stars(const char *pat);
/* The label value of key found by glob pat: what the '*'s matched, joined by ':'; else the
 * whole key. Built in *scratch (grown as needed, valid until the next call); -ENOMEM. */
int sm_redis_label_for(char **scratch, size_t *scratch_cap, const char *pat, const char *key,
                       size_t key_len, const char **ret, size_t *ret_len);
/* Starts the key set of a new rule (its keys are the entries added from now on). */
int sm_redis_keyset_reset(struct redis_state *s);
/* Adds key to the current rule unless already there, with label_len bytes of label (NULL for
 * a rule without label); both copied. Beyond max_series it counts s->overflow instead. */
int sm_redis_key_add(struct redis_state *s, size_t rule, const char *key, size_t key_len,
                     const char *label, size_t label_len);
/* e's extra, added if it has none; NULL when out of memory. */
struct redis_extra *sm_redis_entry_extra(struct redis_state *s, struct redis_entry *e);
/* Empties the entries for a new round (keeping their memory). */
void sm_redis_entries_clear(struct redis_state *s);
/* At the end of a round: entries_clear, and large arrays go back to the system. */
void sm_redis_entries_release(struct redis_state *s);
/* Frees all the round's memory (the collector's destroy). */
void sm_redis_entries_free(struct redis_state *s);

/* e's extra, or NULL when it has none. */
static inline const struct redis_extra *sm_redis_entry_extra_get(const struct redis_state *s,
                                                                 const struct redis_entry *e)
{
	return e->extra ? &s->extras[e->extra - 1] : NULL;
}

/* The label value, or NULL for a rule without label. */
static inline const char *sm_redis_entry_label(const struct redis_entry *e)
{
	return e->has_label ? e->key + e->key_len + 1 : NULL;
}

/* ---- redis-discover.c: which keys a rule reads this round ---- */

/* Adds the keys of rule ri: its exact keys, what its globs SCAN, or its key templates for
 * each queue name discovered (once per group and round). */
int sm_redis_collect_keys(struct redis_state *s, size_t ri, struct sm_error *reterr);
void sm_redis_names_clear(struct redis_names *n);
/* Appends a copy of len bytes of s; -ENOMEM. */
int sm_redis_names_push(struct redis_names *n, const char *s, size_t len);
/* Sorts the names and drops repeats. */
void sm_redis_names_sort_unique(struct redis_names *n);
/* The queue names in an SMEMBERS array reply: with kombu, the queue of each binding member
 * (sm_redis_kombu_queue); otherwise each member, strip removed from its start when there
 * (and something is left). Empty names and non-string members are skipped; -ENOMEM. */
int sm_redis_take_members(struct redis_names *out, const struct redisReply *reply,
                          const char *strip, bool kombu);

/* ---- redis-reply.c: pipelined reads and their replies ---- */

/* TYPE for each entry of an auto or optional rule. */
int sm_redis_resolve_types(struct redis_state *s, struct sm_error *reterr);
/* Every read of every entry still to read, pipelined. */
int sm_redis_read_values(struct redis_state *s, struct sm_error *reterr);
/* A WRONGTYPE error: the key holds another type than the command reads. */
bool sm_redis_is_wrongtype(const struct redisReply *reply);
/* The value of field in a RESP2 flat name/value array, or NULL. */
const struct redisReply *sm_redis_map_get(const struct redisReply *m, const char *field);
/* Takes e's TYPE reply: the type, a missing key, or a per-key failure. 0, or 1 when the
 * reply is not a status (the caller fails the round). */
int sm_redis_take_type(struct redis_state *s, struct redis_entry *e, const struct redisReply *reply,
                       struct sm_error *reterr);
/* Takes the reply of e's main read (length, ZCOUNT, LINDEX). 0, or 1 when the reply is not
 * what the command answers (the caller fails the round). */
int sm_redis_take_value(struct redis_state *s, struct redis_entry *e,
                        const struct redisReply *reply, struct sm_error *reterr);
/* Takes XINFO GROUPS (RESP2: each group a flat name/value array) into e's extra. -ENOMEM. */
int sm_redis_take_groups(struct redis_state *s, struct redis_entry *e,
                         const struct redisReply *reply, struct sm_error *reterr);
/* Takes the dequeue counter's GET reply (a number, or nothing); -ENOMEM. */
int sm_redis_take_counter(struct redis_state *s, struct redis_entry *e,
                          const struct redisReply *reply);

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
