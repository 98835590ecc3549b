/* SPDX-License-Identifier: MIT */
/* Which keys each Redis rule reads this round: exact keys, what SCAN MATCH finds for a glob,
 * and for the presets the queue names found in an index set (SMEMBERS), in the '*' of marker
 * keys (SCAN) or in Kombu's binding sets, each name expanded through the rule's key
 * templates. */

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/source.h"
#include "scalemetrics/template.h"

#include "redis-internal.h"

void sm_redis_names_clear(struct redis_names *n)
{
	for (size_t i = 0; i < n->n; i++)
		free(n->v[i]);
	n->n = 0;
}

int sm_redis_names_push(struct redis_names *n, const char *s, size_t len)
{
	char *copy;

	if (n->n == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 32;
		char **v = realloc(n->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		n->v = v;
		n->cap = cap;
	}
	copy = strndup(s, len);
	if (!copy)
		return -ENOMEM;
	n->v[n->n++] = copy;
	return 0;
}

typedef int (*scan_fn)(struct redis_state *s, const char *pat, const char *key, size_t len,
                       void *ctx);

/* SCAN MATCH pat over the whole keyspace, calling fn for each key found. */
static int scan_keys(struct redis_state *s, const char *pat, scan_fn fn, void *ctx,
                     struct sm_error *reterr)
{
	char cursor[32] = "0";
	int r = 0;

	do {
		redisReply *reply = NULL;
		const redisReply *keys;

		r = sm_redis_command(s, &reply, reterr, "SCAN %s MATCH %b COUNT %lld", cursor, pat,
		                     strlen(pat), (long long)s->cfg->scan_count);
		if (r < 0)
			return r;
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		    reply->element[0]->type != REDIS_REPLY_STRING ||
		    reply->element[0]->len >= sizeof(cursor) ||
		    reply->element[1]->type != REDIS_REPLY_ARRAY) {
			r = sm_redis_fail_reply(s, sm_redis_error_code(reply), reterr, "SCAN",
			                        reply);
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
			r = fn(s, pat, k->str, k->len, ctx);
		}
		freeReplyObject(reply);
		if (r < 0)
			return r;
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

static int add_scanned_key(struct redis_state *s, const char *pat, const char *key, size_t len,
                           void *ctx)
{
	size_t rule = *(const size_t *)ctx;
	const char *label;
	size_t label_len;

	if (sm_redis_label_for(&s->scratch, &s->scratch_cap, pat, key, len, &label, &label_len) < 0)
		return -ENOMEM;
	return sm_redis_key_add(s, rule, key, len, label, label_len);
}

/* A queue name from a marker key: what the glob's first '*' matched. */
static int add_scanned_name(struct redis_state *s, const char *pat, const char *key, size_t len,
                            void *ctx)
{
	struct redis_capture caps[1];
	size_t budget = 100000;

	(void)s;
	if (!sm_redis_glob_match(pat, strlen(pat), key, len, caps, 1, &budget))
		return 0;
	return sm_redis_names_push(ctx, caps[0].p, caps[0].len);
}

static int add_found_key(struct redis_state *s, const char *pat, const char *key, size_t len,
                         void *ctx)
{
	(void)s;
	(void)pat;
	return sm_redis_names_push(ctx, key, len);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int sm_redis_take_members(struct redis_names *out, const redisReply *reply, const char *strip,
                          bool kombu)
{
	size_t strip_len = strip ? strlen(strip) : 0;
	int r = 0;

	for (size_t k = 0; r >= 0 && k < reply->elements; k++) {
		const redisReply *m = reply->element[k];
		const char *name = m->str;
		size_t len = m->len;

		if (m->type != REDIS_REPLY_STRING)
			continue;
		if (kombu) {
			if (!sm_redis_kombu_queue(m->str, m->len, &name, &len))
				continue;
		} else if (strip && len > strip_len && memcmp(name, strip, strip_len) == 0) {
			name += strip_len;
			len -= strip_len;
		}
		if (len > 0)
			r = sm_redis_names_push(out, name, len);
	}
	return r;
}

void sm_redis_names_sort_unique(struct redis_names *n)
{
	size_t w = 0;

	if (n->n > 1)
		qsort(n->v, n->n, sizeof(*n->v), cmp_str);
	for (size_t i = 0; i < n->n; i++) {
		if (w > 0 && strcmp(n->v[w - 1], n->v[i]) == 0)
			free(n->v[i]);
		else
			n->v[w++] = n->v[i];
	}
	n->n = w;
}

/* SMEMBERS of each key, pipelined; the members through sm_redis_take_members. */
static int read_members(struct redis_state *s, const struct redis_names *keys, const char *strip,
                        bool kombu, struct redis_names *out, struct sm_error *reterr)
{
	size_t i = 0;

	while (i < keys->n) {
		size_t first = i, n;

		for (; i < keys->n && i - first < SM_REDIS_PIPELINE_BATCH; i++)
			if (redisAppendCommand(s->ctx, "SMEMBERS %s", keys->v[i]) != REDIS_OK)
				return sm_redis_fail_ctx(s, errno, false, reterr);
		n = i - first;
		s->round_trips++;
		for (size_t j = 0; j < n; j++) {
			redisReply *reply = NULL;
			int r = sm_redis_next_reply(s, &reply, reterr);

			if (r < 0)
				return r;
			if (sm_redis_is_wrongtype(reply)) {
				sm_redis_note(s, reterr, keys->v[first + j],
				              "queue index '%s' is not a set; ignored",
				              keys->v[first + j]);
				if (!s->names_error[0])
					snprintf(s->names_error, sizeof(s->names_error),
					         "queue index '%s' is not a set",
					         keys->v[first + j]);
			} else if (reply->type == REDIS_REPLY_ARRAY) {
				r = sm_redis_take_members(out, reply, strip, kombu);
			} else {
				r = sm_redis_fail_reply(s, sm_redis_error_code(reply), reterr,
				                        "SMEMBERS", reply);
			}
			freeReplyObject(reply);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* The queue names of a preset rule's group, once per round. */
static int discover_names(struct redis_state *s, const struct redis_rule *rule,
                          struct sm_error *reterr)
{
	struct redis_names *out = &s->names;
	struct redis_names found = {0};
	int r = 0;

	if (s->names_valid && s->names_group == rule->group)
		return 0;
	sm_redis_names_clear(out);
	s->names_valid = false;
	s->names_error[0] = '\0';
	switch (rule->discover) {
	case REDIS_DISCOVER_SET:
		for (size_t i = 0; i < rule->index.n && r >= 0; i++)
			r = sm_redis_names_push(&found, rule->index.v[i], strlen(rule->index.v[i]));
		if (r >= 0)
			r = read_members(s, &found, rule->member_prefix, false, out, reterr);
		break;
	case REDIS_DISCOVER_SCAN:
		for (size_t i = 0; i < rule->index.n && r >= 0; i++)
			r = scan_keys(s, rule->index.v[i], add_scanned_name, out, reterr);
		break;
	case REDIS_DISCOVER_KOMBU:
		for (size_t i = 0; i < rule->index.n && r >= 0; i++)
			r = scan_keys(s, rule->index.v[i], add_found_key, &found, reterr);
		if (r >= 0)
			r = read_members(s, &found, NULL, true, out, reterr);
		break;
	default:
		break;
	}
	for (size_t i = 0; i < rule->names.n && r >= 0; i++)
		r = sm_redis_names_push(out, rule->names.v[i], strlen(rule->names.v[i]));
	sm_redis_names_clear(&found);
	free(found.v);
	if (r < 0)
		return r;
	sm_redis_names_sort_unique(out);
	s->names_group = rule->group;
	s->names_valid = true;
	return 0;
}

int sm_redis_collect_keys(struct redis_state *s, size_t ri, struct sm_error *reterr)
{
	const struct redis_rule *rule = &s->cfg->rules.v[ri];
	int r = 0;

	if (rule->discover == REDIS_DISCOVER_KEYS) {
		for (size_t k = 0; k < rule->keys.n && r >= 0; k++) {
			const char *pat = rule->keys.v[k];

			if (!rule->literal && sm_redis_pattern_is_glob(pat)) {
				r = scan_keys(s, pat, add_scanned_key, &ri, reterr);
				continue;
			}
			r = sm_redis_key_add(s, ri, pat, strlen(pat), rule->label ? pat : NULL,
			                     strlen(pat));
		}
		return r;
	}
	r = discover_names(s, rule, reterr);
	if (r >= 0 && s->names_error[0]) {
		s->rule_errors[ri] = strdup(s->names_error);
		if (!s->rule_errors[ri])
			return -ENOMEM;
	}
	for (size_t i = 0; i < s->names.n && r >= 0; i++) {
		/* All keys of a queue or none: a partial sum would be a wrong number. */
		if (s->n_entries + rule->keys.n > s->src->max_series) {
			s->overflow += rule->keys.n;
			continue;
		}
		for (size_t k = 0; k < rule->keys.n && r >= 0; k++) {
			size_t len;
			char *key =
			    sm_template_expand(rule->keys.v[k], "{name}", s->names.v[i], &len);

			if (!key)
				return -ENOMEM;
			r = sm_redis_key_add(s, ri, key, len, rule->label ? s->names.v[i] : NULL,
			                     strlen(s->names.v[i]));
			free(key);
		}
	}
	return r;
}
