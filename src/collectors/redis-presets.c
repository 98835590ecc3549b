/* SPDX-License-Identifier: MIT */
/* Redis job-framework presets: a `preset:` queue item expands into the rules that read the
 * framework's own keys (docs/redis-presets.md has the layouts), plus the two payload parsers
 * the presets need (Kombu binding members, Sidekiq job JSON).
 *
 * Key layouts ("{p}" is the prefix, default in brackets; NAME a discovered queue name):
 *   sidekiq [""]:    set {p}queues holds NAME; list {p}queue:NAME (oldest job = last element,
 *                    its JSON enqueued_at: float seconds <= Sidekiq 7, integer ms >= 8);
 *                    sorted sets {p}schedule, {p}retry, {p}dead.
 *   celery [""]:     lists {p}NAME and its priority lists {p}NAME\x06\x163, \x06\x166,
 *                    \x06\x169 (Kombu's priority_steps, summed into NAME); NAME from the
 *                    Kombu binding sets {p}_kombu.binding.* (member: routing_key \x06\x16
 *                    pattern \x06\x16 NAME; *.pidbox and celeryev.* are Celery's own) and
 *                    `names:` (default [celery]); hash {p}unacked.
 *   rq ["rq:"]:      set {p}queues holds {p}queue:NAME; list {p}queue:NAME; sorted sets
 *                    {p}wip:NAME (started), {p}failed:NAME, {p}scheduled:NAME.
 *   bullmq ["bull"]: NAME from SCAN {p}:*:meta and {p}:*:id; lists {p}:NAME:wait, :active,
 *                    :paused (only served where it exists; BullMQ 6 has none); sorted sets
 *                    {p}:NAME:prioritized, :delayed (score = due_ms * 0x1000 + a 12-bit
 *                    counter, so "due now" is ZCOUNT -inf now_ms*4096+4095). */

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/config.h"

#include "redis-internal.h"

#define KOMBU_SEP "\x06\x16"

static const char *const preset_names[] = {
    [REDIS_PRESET_SIDEKIQ] = "sidekiq", [REDIS_PRESET_CELERY] = "celery", [REDIS_PRESET_RQ] = "rq",
    [REDIS_PRESET_BULLMQ] = "bullmq",   [REDIS_PRESET_MAX] = NULL,
};
_Static_assert(sizeof(preset_names) / sizeof(preset_names[0]) == REDIS_PRESET_MAX + 1,
               "preset_names");

#define MAX_TEMPLATES 4

struct preset_metric {
	const char *metric;
	const char *keys[MAX_TEMPLATES]; /* "{p}": prefix; "{name}": the queue name */
	enum redis_key_type type;
	enum redis_read read;
	bool per_queue; /* label queue=NAME; else one series, no label */
	bool optional;
	bool derivable; /* the backlog metric: `derived: true` applies to it */
};

#define MAX_METRICS 6

struct preset {
	const char *default_prefix;
	enum redis_discover discover;
	const char *index[2]; /* SET: set keys; SCAN/KOMBU: globs ("{p}" escaped) */
	const char *member_prefix;
	const char *default_names[2];
	struct preset_metric metrics[MAX_METRICS];
};

static const struct preset presets[] = {
    [REDIS_PRESET_SIDEKIQ] =
        {
            .default_prefix = "",
            .discover = REDIS_DISCOVER_SET,
            .index = {"{p}queues"},
            .metrics =
                {
                    {.metric = "sidekiq_queue_length",
                     .keys = {"{p}queue:{name}"},
                     .type = REDIS_KEY_LIST,
                     .per_queue = true,
                     .derivable = true},
                    {.metric = "sidekiq_queue_latency_seconds",
                     .keys = {"{p}queue:{name}"},
                     .type = REDIS_KEY_LIST,
                     .read = REDIS_READ_OLDEST_SIDEKIQ,
                     .per_queue = true},
                    {.metric = "sidekiq_scheduled",
                     .keys = {"{p}schedule"},
                     .type = REDIS_KEY_ZSET},
                    {.metric = "sidekiq_retries", .keys = {"{p}retry"}, .type = REDIS_KEY_ZSET},
                    {.metric = "sidekiq_dead", .keys = {"{p}dead"}, .type = REDIS_KEY_ZSET},
                },
        },
    [REDIS_PRESET_CELERY] =
        {
            .default_prefix = "",
            .discover = REDIS_DISCOVER_KOMBU,
            .index = {"{p}_kombu.binding.*"},
            .default_names = {"celery"},
            .metrics =
                {
                    {.metric = "celery_queue_length",
                     .keys = {"{p}{name}", "{p}{name}" KOMBU_SEP "3", "{p}{name}" KOMBU_SEP "6",
                              "{p}{name}" KOMBU_SEP "9"},
                     .type = REDIS_KEY_LIST,
                     .per_queue = true,
                     .derivable = true},
                    {.metric = "celery_unacked", .keys = {"{p}unacked"}, .type = REDIS_KEY_HASH},
                },
        },
    [REDIS_PRESET_RQ] =
        {
            .default_prefix = "rq:",
            .discover = REDIS_DISCOVER_SET,
            .index = {"{p}queues"},
            .member_prefix = "{p}queue:",
            .metrics =
                {
                    {.metric = "rq_queue_length",
                     .keys = {"{p}queue:{name}"},
                     .type = REDIS_KEY_LIST,
                     .per_queue = true,
                     .derivable = true},
                    {.metric = "rq_started",
                     .keys = {"{p}wip:{name}"},
                     .type = REDIS_KEY_ZSET,
                     .per_queue = true},
                    {.metric = "rq_failed",
                     .keys = {"{p}failed:{name}"},
                     .type = REDIS_KEY_ZSET,
                     .per_queue = true},
                    {.metric = "rq_scheduled",
                     .keys = {"{p}scheduled:{name}"},
                     .type = REDIS_KEY_ZSET,
                     .per_queue = true},
                },
        },
    [REDIS_PRESET_BULLMQ] =
        {
            .default_prefix = "bull",
            .discover = REDIS_DISCOVER_SCAN,
            .index = {"{p}:*:meta", "{p}:*:id"},
            .metrics =
                {
                    {.metric = "bullmq_waiting",
                     .keys = {"{p}:{name}:wait"},
                     .type = REDIS_KEY_LIST,
                     .per_queue = true,
                     .derivable = true},
                    {.metric = "bullmq_active",
                     .keys = {"{p}:{name}:active"},
                     .type = REDIS_KEY_LIST,
                     .per_queue = true},
                    {.metric = "bullmq_delayed",
                     .keys = {"{p}:{name}:delayed"},
                     .type = REDIS_KEY_ZSET,
                     .per_queue = true},
                    {.metric = "bullmq_delayed_due",
                     .keys = {"{p}:{name}:delayed"},
                     .type = REDIS_KEY_ZSET,
                     .read = REDIS_READ_DUE_BULLMQ,
                     .per_queue = true},
                    {.metric = "bullmq_prioritized",
                     .keys = {"{p}:{name}:prioritized"},
                     .type = REDIS_KEY_ZSET,
                     .per_queue = true},
                    {.metric = "bullmq_paused",
                     .keys = {"{p}:{name}:paused"},
                     .type = REDIS_KEY_LIST,
                     .per_queue = true,
                     .optional = true},
                },
        },
};
_Static_assert(sizeof(presets) / sizeof(presets[0]) == REDIS_PRESET_MAX, "presets");

struct preset_input {
	int preset;
	char *prefix;
	struct sm_strv names;
	bool derived;
	int64_t window_ms;
	struct sm_opt_double drain_cap;
	struct sm_opt_double fallback;
	struct redis_object object;
};

static const struct sm_config_key preset_keys[] = {
    {.name = "derived", .type = SM_CONFIG_BOOL, .offset = offsetof(struct preset_input, derived)},
    {.name = "drain_cap",
     .type = SM_CONFIG_DOUBLE,
     .offset = offsetof(struct preset_input, drain_cap)},
    {.name = "fallback",
     .type = SM_CONFIG_DOUBLE,
     .offset = offsetof(struct preset_input, fallback)},
    {.name = "names",
     .type = SM_CONFIG_STRING_LIST,
     .offset = offsetof(struct preset_input, names)},
    {.name = "object",
     .type = SM_CONFIG_CUSTOM,
     .offset = offsetof(struct preset_input, object),
     .parse = sm_redis_parse_object},
    {.name = "prefix", .type = SM_CONFIG_STRING, .offset = offsetof(struct preset_input, prefix)},
    {.name = "preset",
     .type = SM_CONFIG_ENUM,
     .offset = offsetof(struct preset_input, preset),
     .enum_names = preset_names,
     .flags = SM_CONFIG_REQUIRED},
    {.name = "window",
     .type = SM_CONFIG_DURATION,
     .offset = offsetof(struct preset_input, window_ms),
     .min = 1000,
     .max = 86400000},
};

/* tmpl with "{p}" replaced by prefix, glob characters of prefix escaped when glob. */
static char *fill(const char *tmpl, const char *prefix, bool glob)
{
	size_t need = strlen(tmpl) + 2 * strlen(prefix) + 1;
	char *out = malloc(need);
	char *o = out;

	if (!out)
		return NULL;
	for (const char *t = tmpl; *t;) {
		if (strncmp(t, "{p}", 3) == 0) {
			for (const char *q = prefix; *q; q++) {
				if (glob && strchr("*?[]\\", *q))
					*o++ = '\\';
				*o++ = *q;
			}
			t += 3;
		} else {
			*o++ = *t++;
		}
	}
	*o = '\0';
	return out;
}

static int strv_push(struct sm_strv *v, char *s)
{
	char **n;

	if (!s)
		return -ENOMEM;
	n = realloc(v->v, (v->n + 1) * sizeof(*n));
	if (!n) {
		free(s);
		return -ENOMEM;
	}
	v->v = n;
	v->v[v->n++] = s;
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Fills one rule of preset pr from metric m. -ENOMEM only. */
static int fill_rule(struct redis_rule *r, const struct preset *pr, const struct preset_metric *m,
                     const struct preset_input *in, const char *prefix, size_t group)
{
	bool glob_index = pr->discover != REDIS_DISCOVER_SET;
	int k = 0;

	r->metric = strdup(m->metric);
	r->type = (int)m->type;
	r->read = (int)m->read;
	r->optional = m->optional;
	r->group = group;
	r->fallback = in->fallback;
	r->window_ms = -1;
	r->drain_cap = in->drain_cap.set ? in->drain_cap.value : 3600.0;
	if (!r->metric)
		return -ENOMEM;
	for (size_t i = 0; i < MAX_TEMPLATES && m->keys[i] && k >= 0; i++)
		k = strv_push(&r->keys, fill(m->keys[i], prefix, false));
	if (k < 0)
		return k;
	if (!m->per_queue) {
		r->discover = REDIS_DISCOVER_KEYS;
		r->literal = true;
		return 0;
	}
	r->discover = (int)pr->discover;
	r->label = strdup("queue");
	if (!r->label)
		return -ENOMEM;
	for (size_t i = 0; i < 2 && pr->index[i] && k >= 0; i++)
		k = strv_push(&r->index, fill(pr->index[i], prefix, glob_index));
	if (k < 0)
		return k;
	if (pr->member_prefix) {
		r->member_prefix = fill(pr->member_prefix, prefix, false);
		if (!r->member_prefix)
			return -ENOMEM;
	}
	if (in->names.n > 0) {
		for (size_t i = 0; i < in->names.n && k >= 0; i++)
			k = strv_push(&r->names, strdup(in->names.v[i]));
	} else {
		for (size_t i = 0; i < 2 && pr->default_names[i] && k >= 0; i++)
			k = strv_push(&r->names, strdup(pr->default_names[i]));
	}
	if (k < 0)
		return k;
	if (in->object.name) {
		r->has_object = true;
		r->object.name = dup_or_null(in->object.name);
		r->object.resource = dup_or_null(in->object.resource);
		if (!r->object.name || !r->object.resource)
			return -ENOMEM;
	}
	if (m->derivable && in->derived) {
		r->derived = true;
		r->window_ms = in->window_ms;
	}
	return 0;
}

int sm_redis_preset_expand(struct sm_config_parser *p, const struct sm_config_node *item,
                           struct redis_config *c)
{
	struct preset_input in = {.preset = REDIS_PRESET_INVALID, .window_ms = -1};
	const struct preset *pr;
	const char *prefix;
	size_t group;
	int r;

	r = sm_config_parse_mapping(p, item, preset_keys,
	                            sizeof(preset_keys) / sizeof(preset_keys[0]), &in, "preset");
	if (r < 0)
		goto out;
	if (in.preset < 0 || in.preset >= REDIS_PRESET_MAX) {
		r = sm_config_report(p, sm_config_node_get(p, item, "preset"),
		                     "preset: expected one of sidekiq, celery, rq, bullmq");
		goto out;
	}
	if (!in.derived && (in.window_ms >= 0 || in.drain_cap.set)) {
		r = sm_config_report(p, item, "window and drain_cap only apply with derived: true");
		goto out;
	}
	for (size_t i = 0; i < in.names.n; i++)
		if (!*in.names.v[i]) {
			r = sm_config_report(p, sm_config_node_get(p, item, "names"),
			                     "names: empty queue name");
			goto out;
		}
	pr = &presets[in.preset];
	prefix = in.prefix ? in.prefix : pr->default_prefix;
	group = c->n_groups++;
	for (size_t i = 0; i < MAX_METRICS && pr->metrics[i].metric; i++) {
		struct redis_rule *rule = sm_redis_rules_push(&c->rules);
		int k;

		if (!rule) {
			r = -ENOMEM;
			goto out;
		}
		r = fill_rule(rule, pr, &pr->metrics[i], &in, prefix, group);
		if (r < 0)
			goto out;
		k = sm_redis_rule_check(p, item, rule);
		if (k == -ENOMEM) {
			r = k;
			goto out;
		}
		if (k == 0)
			k = sm_redis_rule_declare(p, item, rule);
		if (k < 0)
			r = k;
		/* The rule check reports a problem of the preset item once, not per metric. */
		if (r < 0)
			goto out;
	}
out:
	free(in.prefix);
	sm_strv_done(&in.names);
	free(in.object.name);
	free(in.object.resource);
	return r;
}

bool sm_redis_kombu_queue(const char *member, size_t len, const char **ret, size_t *ret_len)
{
	const char *end = member + len;
	const char *q = member;

	/* routing_key SEP pattern SEP queue */
	for (int field = 0; field < 2; field++) {
		const char *sep = NULL;

		for (const char *x = q; x + 1 < end; x++)
			if (x[0] == KOMBU_SEP[0] && x[1] == KOMBU_SEP[1]) {
				sep = x;
				break;
			}
		if (!sep)
			return false;
		q = sep + 2;
	}
	if (q >= end)
		return false;
	/* Celery's own fan-out queues: remote control replies and event receivers. */
	if ((size_t)(end - q) > 7 && memcmp(end - 7, ".pidbox", 7) == 0)
		return false;
	if ((size_t)(end - q) > 9 && memcmp(q, "celeryev.", 9) == 0)
		return false;
	*ret = q;
	*ret_len = (size_t)(end - q);
	return true;
}

int sm_redis_sidekiq_age(const char *json, size_t len, int64_t now_wall_ms, double *ret_age,
                         char *err, size_t errlen)
{
	cJSON *doc = cJSON_ParseWithLength(json, len);
	const cJSON *at;
	double v, age;
	int r = -EINVAL;

	if (!doc || !cJSON_IsObject(doc)) {
		snprintf(err, errlen, "not a JSON object");
		goto out;
	}
	at = cJSON_GetObjectItemCaseSensitive(doc, "enqueued_at");
	if (!cJSON_IsNumber(at)) {
		snprintf(err, errlen, "no numeric enqueued_at");
		goto out;
	}
	v = at->valuedouble;
	if (!(v > 0)) {
		snprintf(err, errlen, "enqueued_at %g is not a time", v);
		goto out;
	}
	/* Sidekiq 8 writes integer milliseconds, earlier ones float seconds: 1e11 seconds is the
	 * year 5138, 1e11 milliseconds 1973, so the magnitude tells them apart. */
	if (v >= 1e11)
		age = ((double)now_wall_ms - v) / 1000.0;
	else
		age = (double)now_wall_ms / 1000.0 - v;
	*ret_age = age > 0 ? age : 0; /* a producer's clock ahead of ours: not negative */
	r = 0;
out:
	cJSON_Delete(doc);
	return r;
}
