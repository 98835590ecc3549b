/* SPDX-License-Identifier: MIT */
/* The Redis collector's reads: TYPE for keys of unknown type, then each key's length (or
 * ZCOUNT, LINDEX), a stream's XINFO GROUPS and a dequeue counter, pipelined
 * SM_REDIS_PIPELINE_BATCH commands per round trip, and each reply walked into its entry. */

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/number.h"
#include "scalemetrics/template.h"

#include "redis-internal.h"

/* Indexed by enum redis_key_type. */
static const char *const length_commands[] = {
    [REDIS_KEY_AUTO] = NULL,   [REDIS_KEY_LIST] = "LLEN",   [REDIS_KEY_ZSET] = "ZCARD",
    [REDIS_KEY_SET] = "SCARD", [REDIS_KEY_STREAM] = "XLEN", [REDIS_KEY_HASH] = "HLEN",
};
static_assert(sizeof(length_commands) / sizeof(length_commands[0]) == REDIS_KEY_TYPE_MAX,
              "length_commands");

static bool needs_type(const struct redis_state *s, const struct redis_entry *e)
{
	return e->type == REDIS_KEY_AUTO || s->cfg->rules.v[e->rule].optional;
}

int sm_redis_take_type(struct redis_state *s, struct redis_entry *e, const redisReply *reply,
                       struct sm_error *reterr)
{
	const struct redis_rule *rule = &s->cfg->rules.v[e->rule];
	int t;

	if (reply->type != REDIS_REPLY_STATUS)
		return 1;
	for (t = REDIS_KEY_AUTO + 1; t < REDIS_KEY_TYPE_MAX; t++)
		if (strcmp(reply->str, sm_redis_key_type_names[t]) == 0)
			break;
	if (strcmp(reply->str, "none") == 0) {
		/* Missing: an empty queue (0), or no series for an optional key. */
		e->value = 0;
		e->ready = true;
		e->skip = rule->optional;
		if (e->type == REDIS_KEY_AUTO)
			e->type = REDIS_KEY_TYPE_MAX;
	} else if (t == REDIS_KEY_TYPE_MAX) {
		sm_redis_fail_entry(s, reterr, e, "skipped",
		                    "key '%s' is a %s, not a list, zset, set, stream or hash",
		                    e->key, reply->str);
	} else if (e->type != REDIS_KEY_AUTO && e->type != t) {
		sm_redis_fail_entry(s, reterr, e, "skipped", "key '%s' is a %s, not a %s", e->key,
		                    reply->str, sm_redis_key_type_names[e->type]);
	} else {
		e->type = (int8_t)t;
	}
	return 0;
}

/* TYPE for each entry of an auto or optional rule, in batches of SM_REDIS_PIPELINE_BATCH. */
int sm_redis_resolve_types(struct redis_state *s, struct sm_error *reterr)
{
	size_t idx[SM_REDIS_PIPELINE_BATCH];
	size_t i = 0;

	while (i < s->n_entries) {
		size_t n = 0;

		for (; i < s->n_entries && n < SM_REDIS_PIPELINE_BATCH; i++) {
			struct redis_entry *e = &s->entries[i];

			if (!needs_type(s, e))
				continue;
			if (redisAppendCommand(s->ctx, "TYPE %b", e->key, e->key_len) != REDIS_OK)
				return sm_redis_fail_ctx(s, errno, false, reterr);
			idx[n++] = i;
		}
		if (n == 0)
			break;
		s->round_trips++;
		for (size_t j = 0; j < n; j++) {
			redisReply *reply = NULL;
			int r;

			r = sm_redis_next_reply(s, &reply, reterr);
			if (r < 0)
				return r;
			if (sm_redis_take_type(s, &s->entries[idx[j]], reply, reterr) > 0) {
				r = sm_redis_fail_reply(s, sm_redis_error_code(reply), reterr,
				                        "TYPE", reply);
				freeReplyObject(reply);
				return r;
			}
			freeReplyObject(reply);
		}
	}
	return 0;
}

/* The dequeue counter key of e's series (a rule with one); NULL when out of memory. */
static char *counter_key(const struct redis_rule *rule, const struct redis_entry *e)
{
	char token[80];

	if (!rule->label)
		return strdup(rule->dequeue_counter);
	snprintf(token, sizeof(token), "{%s}", rule->label);
	return sm_template_expand(rule->dequeue_counter, token,
	                          e->has_label ? sm_redis_entry_label(e) : "", NULL);
}

/* How many commands append_reads queues for e. */
static size_t reads_needed(const struct redis_state *s, const struct redis_entry *e)
{
	const struct redis_rule *rule = &s->cfg->rules.v[e->rule];
	size_t n = 1;

	if (rule->read == REDIS_READ_LENGTH && e->type == REDIS_KEY_STREAM)
		n++;
	if (rule->derived && rule->dequeue_counter)
		n++;
	return n;
}

/* Queues the commands of one entry; returns how many, or a failure. */
static int append_reads(struct redis_state *s, struct redis_entry *e, struct sm_error *reterr)
{
	const struct redis_rule *rule = &s->cfg->rules.v[e->rule];
	char *ckey;
	int n = 1, r;

	switch (rule->read) {
	case REDIS_READ_DUE_BULLMQ:
		r = redisAppendCommand(s->ctx, "ZCOUNT %b -inf %s", e->key, e->key_len, s->due_max);
		break;
	case REDIS_READ_OLDEST_SIDEKIQ:
		r = redisAppendCommand(s->ctx, "LINDEX %b -1", e->key, e->key_len);
		break;
	default:
		r = redisAppendCommand(s->ctx, "%s %b", length_commands[e->type], e->key,
		                       e->key_len);
		if (r == REDIS_OK && e->type == REDIS_KEY_STREAM) {
			r = redisAppendCommand(s->ctx, "XINFO GROUPS %b", e->key, e->key_len);
			n++;
		}
		break;
	}
	if (r != REDIS_OK)
		return sm_redis_fail_ctx(s, errno, false, reterr);
	if (rule->derived && rule->dequeue_counter) {
		ckey = counter_key(rule, e);
		if (!ckey)
			return -ENOMEM; /* not "no counter": take_reads expects its reply */
		r = redisAppendCommand(s->ctx, "GET %s", ckey);
		free(ckey);
		if (r != REDIS_OK)
			return sm_redis_fail_ctx(s, errno, false, reterr);
		n++;
	}
	return n;
}

bool sm_redis_is_wrongtype(const redisReply *reply)
{
	return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "WRONGTYPE", 9) == 0;
}

const redisReply *sm_redis_map_get(const redisReply *m, const char *field)
{
	for (size_t i = 0; i + 1 < m->elements; i += 2)
		if (m->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(m->element[i]->str, field) == 0)
			return m->element[i + 1];
	return NULL;
}

/* XINFO GROUPS (RESP2: each group a flat name/value array). */
int sm_redis_take_groups(struct redis_state *s, struct redis_entry *e, const redisReply *reply,
                         struct sm_error *reterr)
{
	struct redis_extra *x;

	if (reply->type != REDIS_REPLY_ARRAY) {
		sm_redis_note(s, reterr, e->key,
		              "stream '%s': XINFO GROUPS failed: %s; no group series", e->key,
		              reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
		return 0;
	}
	if (reply->elements == 0)
		return 0;
	x = sm_redis_entry_extra(s, e);
	if (!x)
		return -ENOMEM;
	x->groups = calloc(reply->elements, sizeof(*x->groups));
	if (!x->groups)
		return -ENOMEM;
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply *g = reply->element[i];
		const redisReply *name, *pending, *lag;
		struct redis_group_stat *gs;

		if (g->type != REDIS_REPLY_ARRAY)
			continue;
		name = sm_redis_map_get(g, "name");
		pending = sm_redis_map_get(g, "pending");
		lag = sm_redis_map_get(g, "lag");
		if (!name || name->type != REDIS_REPLY_STRING || !pending ||
		    pending->type != REDIS_REPLY_INTEGER)
			continue;
		gs = &x->groups[x->n_groups];
		gs->name = strndup(name->str, name->len);
		if (!gs->name)
			return -ENOMEM;
		x->n_groups++;
		gs->pending = (double)pending->integer;
		if (lag && lag->type == REDIS_REPLY_INTEGER) {
			gs->lag = (double)lag->integer;
			gs->has_lag = true;
		} else if (lag) {
			sm_redis_note(
			    s, reterr, e->key,
			    "stream '%s' group '%s': Redis cannot tell the lag (XINFO GROUPS says "
			    "nil: entries were deleted or trimmed past the group's position, or "
			    "its last-delivered-id was set by hand); no kind=lag series until it "
			    "can",
			    e->key, gs->name);
		} else {
			sm_redis_note(
			    s, reterr, e->key,
			    "stream '%s' group '%s': XINFO GROUPS has no lag (Redis < 7); no "
			    "kind=lag series",
			    e->key, gs->name);
		}
	}
	return 0;
}

static int set_counter(struct redis_state *s, struct redis_entry *e, double v)
{
	struct redis_extra *x = sm_redis_entry_extra(s, e);

	if (!x)
		return -ENOMEM;
	x->counter = v;
	x->has_counter = true;
	return 0;
}

/* The command of e's main read, for messages. */
static const char *read_command(const struct redis_rule *rule, const struct redis_entry *e)
{
	return rule->read == REDIS_READ_LENGTH       ? length_commands[e->type]
	       : rule->read == REDIS_READ_DUE_BULLMQ ? "ZCOUNT"
	                                             : "LINDEX";
}

int sm_redis_take_value(struct redis_state *s, struct redis_entry *e, const redisReply *reply,
                        struct sm_error *reterr)
{
	const struct redis_rule *rule = &s->cfg->rules.v[e->rule];
	char err[200];

	if (sm_redis_is_wrongtype(reply)) {
		sm_redis_fail_entry(s, reterr, e, "skipped", "key '%s' is not a %s", e->key,
		                    rule->read == REDIS_READ_LENGTH
		                        ? sm_redis_key_type_names[e->type]
		                    : rule->read == REDIS_READ_DUE_BULLMQ ? "zset"
		                                                          : "list");
	} else if (rule->read == REDIS_READ_OLDEST_SIDEKIQ && reply->type == REDIS_REPLY_NIL) {
		e->value = 0; /* empty queue: no latency, as Sidekiq's Queue#latency says */
	} else if (rule->read == REDIS_READ_OLDEST_SIDEKIQ && reply->type == REDIS_REPLY_STRING) {
		if (sm_redis_sidekiq_age(reply->str, reply->len, s->now_wall_ms, &e->value, err,
		                         sizeof(err)) < 0)
			sm_redis_fail_entry(s, reterr, e, "no latency series",
			                    "queue '%s': the oldest job: %s", e->key, err);
	} else if (reply->type == REDIS_REPLY_INTEGER && rule->read != REDIS_READ_OLDEST_SIDEKIQ) {
		e->value = (double)reply->integer;
		e->stream = rule->read == REDIS_READ_LENGTH && e->type == REDIS_KEY_STREAM;
	} else {
		return 1;
	}
	return 0;
}

int sm_redis_take_counter(struct redis_state *s, struct redis_entry *e, const redisReply *reply)
{
	if (reply->type == REDIS_REPLY_STRING) {
		char buf[64];
		double v;

		snprintf(buf, sizeof(buf), "%.*s", (int)reply->len, reply->str);
		if (sm_number_parse_double(buf, &v) == 0)
			return set_counter(s, e, v);
	} else if (reply->type == REDIS_REPLY_INTEGER) {
		return set_counter(s, e, (double)reply->integer);
	}
	return 0;
}

/* Takes the replies of one entry's commands, in order. */
static int take_reads(struct redis_state *s, struct redis_entry *e, struct sm_error *reterr)
{
	const struct redis_rule *rule = &s->cfg->rules.v[e->rule];
	redisReply *reply = NULL;
	int r;

	r = sm_redis_next_reply(s, &reply, reterr);
	if (r < 0)
		return r;
	if (sm_redis_take_value(s, e, reply, reterr) > 0) {
		r = sm_redis_fail_reply(s, sm_redis_error_code(reply), reterr,
		                        read_command(rule, e), reply);
		freeReplyObject(reply);
		return r;
	}
	freeReplyObject(reply);
	reply = NULL;

	if (rule->read == REDIS_READ_LENGTH && e->type == REDIS_KEY_STREAM) {
		r = sm_redis_next_reply(s, &reply, reterr);
		if (r < 0)
			return r;
		if (!e->skip)
			r = sm_redis_take_groups(s, e, reply, reterr);
		freeReplyObject(reply);
		reply = NULL;
		if (r < 0)
			return r;
	}
	if (rule->derived && rule->dequeue_counter) {
		r = sm_redis_next_reply(s, &reply, reterr);
		if (r < 0)
			return r;
		r = sm_redis_take_counter(s, e, reply);
		freeReplyObject(reply);
	}
	return r;
}

int sm_redis_read_values(struct redis_state *s, struct sm_error *reterr)
{
	size_t idx[SM_REDIS_PIPELINE_BATCH];
	size_t i = 0;

	while (i < s->n_entries) {
		size_t n = 0, cmds = 0;

		for (; i < s->n_entries; i++) {
			struct redis_entry *e = &s->entries[i];
			int k;

			if (e->skip || e->ready)
				continue;
			if (cmds + reads_needed(s, e) > SM_REDIS_PIPELINE_BATCH)
				break;
			k = append_reads(s, e, reterr);
			if (k < 0)
				return k;
			cmds += (size_t)k;
			idx[n++] = i;
		}
		if (n == 0)
			break;
		s->round_trips++;
		for (size_t j = 0; j < n; j++) {
			int r = take_reads(s, &s->entries[idx[j]], reterr);

			if (r < 0)
				return r;
		}
	}
	return 0;
}
