/* SPDX-License-Identifier: MIT */
/* The Redis collector: queue backlogs (lists, sorted sets, sets, hashes, streams and their
 * consumer groups) of exact keys, SCAN globs and job-framework presets, read with pipelined
 * commands over one lazily (re)connected hiredis context, directly or through Sentinel.
 * This file holds the ops, the round and the series it emits; redis-internal.h names the
 * others (connection, discovery, keys, replies, config, presets, derived, sentinel).
 *
 * Design: one round rebuilds its list of keys ("entries") from scratch: exact keys, SCAN
 * globs, and the queue names a preset discovers (an index set, SCAN of marker keys, Kombu
 * bindings). Keys of unknown type are resolved with TYPE, then every read (lengths, XINFO
 * GROUPS, ZCOUNT, LINDEX, counters) is pipelined SM_REDIS_PIPELINE_BATCH commands per round
 * trip, so a round over N keys costs O(N / batch) round trips. Entries that give the same
 * label value in one rule are summed into one series. Only the derived-metric history
 * survives a round. */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/file.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"
#include "scalemetrics/template.h"

#include "redis-internal.h"

#define PASSWORD_MAX 4096

static int read_password(const struct redis_config *c, char **ret, char *err, size_t errlen)
{
	struct sm_error e = {0};
	int r;

	*ret = NULL;
	r = sm_secret_read(c->password_env, c->password_file, PASSWORD_MAX, "password", ret, &e);
	if (r < 0)
		snprintf(err, errlen, "%s", e.message);
	return r;
}

static void redis_destroy(void *state)
{
	struct redis_state *s = state;

	if (!s)
		return;
	sm_redis_disconnect(s);
	sm_redis_entries_free(s);
	sm_redis_names_clear(&s->names);
	free(s->names.v);
	free(s->rule_errors);
	free(s->cur_host);
	sm_redis_history_free(s->history);
	if (s->password) {
		/* Not a guarantee (the allocator may have copies), but do not leave it lying
		 * around. */
		memset(s->password, 0, strlen(s->password));
		free(s->password);
	}
	free(s);
}

static int redis_create(const struct sm_source_config *src, void **ret_state)
{
	struct redis_state *s;
	int r = -ENOMEM;

	if (!src->priv || ((const struct redis_config *)src->priv)->rules.n > UINT32_MAX)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->src = src;
	s->cfg = src->priv;
	s->entries_hint = 64;
	s->history = sm_redis_history_new();
	s->rule_errors = calloc(s->cfg->rules.n ? s->cfg->rules.n : 1, sizeof(*s->rule_errors));
	if (!s->history || !s->rule_errors)
		goto out;
	for (size_t i = 0; i < s->cfg->rules.n; i++)
		if (s->cfg->rules.v[i].derived && s->cfg->rules.v[i].window_ms > s->max_window_ms)
			s->max_window_ms = s->cfg->rules.v[i].window_ms;
	/* A missing secret fails each round with a clear error rather than the whole start. */
	s->password_r =
	    read_password(s->cfg, &s->password, s->password_error, sizeof(s->password_error));
	if (s->password_r == -ENOMEM)
		goto out;
	*ret_state = s;
	s = NULL;
	r = 0;
out:
	redis_destroy(s);
	return r;
}

/* A per-series problem. The messages are joined in reterr while they fit (the scheduler logs
 * the whole when it changes); the keys of the rest are listed at the end of the round. */
void sm_redis_note(struct redis_state *s, struct sm_error *reterr, const char *key, const char *fmt,
                   ...)
{
	char msg[320];
	size_t used = strlen(reterr->message);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strstr(reterr->message, msg))
		return; /* said already */
	if (used + strlen(msg) + 2 + 120 < sizeof(reterr->message)) {
		snprintf(reterr->message + used, sizeof(reterr->message) - used, "%s%s",
		         used ? "; " : "", msg);
		return;
	}
	s->n_notes++;
	used = strlen(s->more);
	if (used + 8 < sizeof(s->more))
		snprintf(s->more + used, sizeof(s->more) - used, "%s'%s'", used ? ", " : "", key);
}

/* A key that could not be read: noted as "MESSAGE; then", skipped, and its series served as a
 * failure with MESSAGE as the reason (a failure without reason when memory is short: the
 * replies still pending must be read, so this cannot fail). */
void sm_redis_fail_entry(struct redis_state *s, struct sm_error *reterr, struct redis_entry *e,
                         const char *then, const char *fmt, ...)
{
	char msg[320];
	struct redis_extra *x;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sm_redis_note(s, reterr, e->key, "%s; %s", msg, then);
	e->skip = true;
	e->failed = true;
	x = sm_redis_entry_extra(s, e);
	if (x && !x->error)
		x->error = strdup(msg);
}

/* The object name: the template with "{label}" replaced by the served label value. */
static char *object_name(const struct redis_rule *r, const char *value)
{
	char clean[64];
	char token[80];

	sm_label_value_sanitize(value, clean);
	snprintf(token, sizeof(token), "{%s}", r->label);
	return sm_template_expand(r->object.name, token, clean, NULL);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct redis_entry *x = *(const struct redis_entry *const *)a;
	const struct redis_entry *y = *(const struct redis_entry *const *)b;
	int c;

	if (x->rule != y->rule)
		return x->rule < y->rule ? -1 : 1;
	c = strcmp(x->has_label ? sm_redis_entry_label(x) : "",
	           y->has_label ? sm_redis_entry_label(y) : "");
	if (c != 0)
		return c;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return memcmp(x->key, y->key, x->key_len);
}

static bool same_series(const struct redis_entry *x, const struct redis_entry *y)
{
	return x->rule == y->rule && strcmp(x->has_label ? sm_redis_entry_label(x) : "",
	                                    y->has_label ? sm_redis_entry_label(y) : "") == 0;
}

/* -E2BIG (max_series: the batch counts it) and -EINVAL (a value the batch refuses) drop
 * that one series; only -ENOMEM ends the round. */
static int add_series(struct sm_batch *batch, const struct sm_series_in *in)
{
	int r = sm_batch_add(batch, in);

	return r == -ENOMEM ? r : 0;
}

struct group_out {
	const struct redis_rule *rule;
	size_t rule_idx;
	const char *label;
	struct sm_label labels[3];
	struct sm_object_ref obj;
	char *obj_name;
};

static int emit_one(struct sm_batch *batch, struct group_out *g, const char *metric, double value,
                    const char *kind, const char *group, uint32_t window_s)
{
	struct sm_series_in in = {
	    .metric = metric, .labels = g->labels, .value = value, .window_s = window_s};
	size_t n = 0;

	if (g->label)
		g->labels[n++] = (struct sm_label){.name = g->rule->label, .value = g->label};
	if (kind)
		g->labels[n++] = (struct sm_label){.name = "kind", .value = kind};
	if (group)
		g->labels[n++] = (struct sm_label){.name = "group", .value = group};
	in.n_labels = n;
	if (g->obj_name)
		in.object = &g->obj;
	return add_series(batch, &in);
}

/* The series of g (and its derived ones) could not be read: why, for queries to say so.
 * partial: labels beyond g's are not known (a stream's kind and group, every queue of a rule
 * whose queue names could not be read). */
static int emit_failure(struct sm_batch *batch, struct group_out *g, bool partial,
                        const char *error)
{
	const struct redis_rule *rule = g->rule;
	const char *metrics[] = {rule->metric, rule->growth_metric, rule->drain_metric};
	struct sm_series_in in = {.labels = g->labels};
	int r = 0;

	if (g->label) {
		g->labels[0] = (struct sm_label){.name = rule->label, .value = g->label};
		in.n_labels = 1;
	}
	if (g->obj_name)
		in.object = &g->obj;
	for (size_t i = 0; i < (rule->derived ? 3u : 1u) && r >= 0; i++) {
		in.metric = metrics[i];
		in.window_s = i > 0 ? (uint32_t)(rule->window_ms / 1000) : 0;
		r = sm_batch_add_failure(batch, &in, partial, error);
		/* -E2BIG is counted as dropped, -EINVAL cannot be: only -ENOMEM ends the round. */
		if (r != -ENOMEM)
			r = 0;
	}
	return r;
}

/* A rule whose queue names could not all be discovered: any of its queues may be missing, so
 * each of its metrics is a failure that stands for every queue (partial labels). */
static int emit_rule_failure(struct sm_batch *batch, const struct redis_rule *rule,
                             const char *error)
{
	struct group_out g = {.rule = rule};

	/* No label and no object: the query layer takes it as any queue's and any object's. */
	return emit_failure(batch, &g, true, error);
}

/* One series per (rule, label value): keys that give the same value (two globs, a glob and
 * an exact key, a Celery queue and its priority lists) are summed (latencies: the largest),
 * so a label never names two series. Streams give kind=length/lag/pending series. */
int sm_redis_emit(struct redis_state *s, struct sm_batch *batch, int64_t now_mono_ms)
{
	struct redis_entry **ord;
	size_t i = 0;
	int r = 0;

	for (size_t ri = 0; ri < s->cfg->rules.n && r >= 0; ri++)
		if (s->rule_errors[ri])
			r = emit_rule_failure(batch, &s->cfg->rules.v[ri], s->rule_errors[ri]);
	if (s->n_entries == 0 || r < 0)
		return r;
	/* Sorting pointers: an entry is five times their size. */
	ord = malloc(s->n_entries * sizeof(*ord));
	if (!ord)
		return -ENOMEM;
	for (size_t k = 0; k < s->n_entries; k++)
		ord[k] = &s->entries[k];
	qsort(ord, s->n_entries, sizeof(*ord), cmp_entry);
	while (i < s->n_entries && r >= 0) {
		const struct redis_entry *first = ord[i];
		const struct redis_rule *rule = &s->cfg->rules.v[first->rule];
		const char *label = sm_redis_entry_label(first);
		struct group_out g = {.rule = rule, .rule_idx = first->rule, .label = label};
		bool max = rule->read == REDIS_READ_OLDEST_SIDEKIQ;
		bool any = false, any_stream = false, has_counter = false;
		double sum = 0, ssum = 0, counter = 0;
		const struct redis_entry *failed = NULL;
		size_t end = i;

		for (; end < s->n_entries && same_series(ord[end], first); end++) {
			const struct redis_entry *e = ord[end];
			const struct redis_extra *x = sm_redis_entry_extra_get(s, e);

			if (e->failed && !failed)
				failed = e;
			if (e->skip)
				continue;
			if (x && x->has_counter && !has_counter) {
				has_counter = true;
				counter = x->counter;
			}
			if (e->stream) {
				any_stream = true;
				ssum += e->value;
			} else if (max) {
				sum = any && sum > e->value ? sum : e->value;
				any = true;
			} else {
				sum += e->value;
				any = true;
			}
		}
		if (rule->has_object && rule->label && label) {
			g.obj_name = object_name(rule, label);
			if (!g.obj_name) {
				r = -ENOMEM;
				break;
			}
			g.obj = (struct sm_object_ref){.resource = rule->object.resource,
			                               .name = g.obj_name};
		}
		/* One key of the series not read: any sum of the others would be a wrong number. */
		if (failed) {
			const struct redis_extra *x = sm_redis_entry_extra_get(s, failed);

			r = emit_failure(batch, &g, rule->type == REDIS_KEY_STREAM,
			                 x && x->error ? x->error : "could not be read");
			any = any_stream = false;
		}
		if (any) {
			r = emit_one(batch, &g, rule->metric, sum, NULL, NULL, 0);
			if (r >= 0 && rule->derived) {
				double growth, drain;
				int k = sm_redis_history_update(
				    s->history, rule, first->rule, label ? label : "", now_mono_ms,
				    sum, has_counter, counter, &growth, &drain);
				uint32_t w = (uint32_t)(rule->window_ms / 1000);

				if (k < 0)
					r = k;
				else if (k == 0) {
					r = emit_one(batch, &g, rule->growth_metric, growth, NULL,
					             NULL, w);
					if (r >= 0)
						r = emit_one(batch, &g, rule->drain_metric, drain,
						             NULL, NULL, w);
				}
			}
		}
		if (any_stream && r >= 0)
			r = emit_one(batch, &g, rule->metric, ssum, "length", NULL, 0);
		for (size_t k = i; any_stream && k < end && r >= 0; k++) {
			const struct redis_entry *e = ord[k];
			const struct redis_extra *x = sm_redis_entry_extra_get(s, e);

			for (size_t j = 0; x && !e->skip && j < x->n_groups && r >= 0; j++) {
				const struct redis_group_stat *gs = &x->groups[j];

				if (gs->has_lag)
					r = emit_one(batch, &g, rule->metric, gs->lag, "lag",
					             gs->name, 0);
				if (r >= 0)
					r = emit_one(batch, &g, rule->metric, gs->pending,
					             "pending", gs->name, 0);
			}
		}
		free(g.obj_name);
		i = end;
	}
	free(ord);
	return r;
}

/* One round on a connected context. The batch is only touched once all I/O is done. */
static int read_round(struct redis_state *s, struct sm_batch *batch, struct sm_error *reterr)
{
	const struct redis_config *c = s->cfg;
	int64_t now_mono = sm_time_mono_ms();
	int r;

	sm_redis_entries_clear(s);
	s->overflow = 0;
	s->n_notes = 0;
	s->more[0] = '\0';
	s->names_valid = false;
	s->now_wall_ms = sm_time_wall_ms();
	/* BullMQ delayed scores are timestamp_ms * 0x1000 + a 12-bit counter. */
	snprintf(s->due_max, sizeof(s->due_max), "%lld",
	         (long long)s->now_wall_ms * 4096LL + 4095LL);
	if (c->has_sentinel && !s->role_checked) {
		r = sm_redis_check_role(s, reterr);
		if (r < 0)
			goto out;
	}
	s->role_checked = false; /* checked again at the start of the next round */
	for (size_t ri = 0; ri < c->rules.n; ri++) {
		r = sm_redis_keyset_reset(s);
		if (r < 0)
			goto out;
		r = sm_redis_collect_keys(s, ri, reterr);
		if (r < 0)
			goto out;
	}
	r = sm_redis_resolve_types(s, reterr);
	if (r < 0)
		goto out;
	r = sm_redis_read_values(s, reterr);
	if (r < 0)
		goto out;
	r = sm_redis_emit(s, batch, now_mono);
	if (r < 0)
		goto out;
	if (s->max_window_ms > 0)
		sm_redis_history_sweep(s->history, now_mono,
		                       s->max_window_ms + 3 * s->src->interval_ms);
	/* Keys beyond max_series were never stored: the batch counts them as dropped, so the
	 * store's series_dropped and the scheduler's warning include them, and no query takes
	 * a queue that was not read for an empty one. */
	sm_batch_add_dropped(batch, s->overflow);
	if (s->overflow > 0) {
		char first[sizeof(reterr->message)];

		memcpy(first, reterr->message, sizeof(first));
		sm_error_set(
		    reterr,
		    "max_series (%u) reached: %zu more keys matched and were not read%s%.300s",
		    s->src->max_series, s->overflow, first[0] ? "; " : "", first);
	} else if (s->n_notes > 0) {
		size_t used = strlen(reterr->message);

		snprintf(reterr->message + used, sizeof(reterr->message) - used,
		         " (and %zu more: %s)", s->n_notes, s->more);
	}
out:
	s->entries_hint = s->n_entries > 64 ? s->n_entries : 64;
	sm_redis_entries_release(s);
	if (r == -ENOMEM) {
		/* Commands may be queued or replies pending: the next round would read them as
		 * its own. */
		sm_redis_disconnect(s);
		sm_error_set(reterr, "out of memory");
	}
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
	r = sm_redis_connect(s, reterr);
	if (r < 0)
		return r;
	r = read_round(s, batch, reterr);
	/* A kept connection may have been closed meanwhile (server restart, its idle `timeout`,
	 * a failover demoting it): that is no reason to fail the round, one fresh connection
	 * (through the sentinels, if configured) is. */
	if (reused && (r == -EPIPE || r == -ECONNRESET || r == -EIO || r == -EAGAIN)) {
		sm_redis_disconnect(s);
		sm_error_clear(reterr);
		r = sm_redis_connect(s, reterr);
		if (r < 0)
			return r;
		r = read_round(s, batch, reterr);
	}
	return r;
}

uint64_t sm_redis_round_trips(const void *state)
{
	return ((const struct redis_state *)state)->round_trips;
}

const struct sm_source_ops sm_source_redis = {
    .type = "redis",
    .config_parse = sm_redis_config_parse,
    .config_free = sm_redis_config_free,
    .create = redis_create,
    .collect = redis_collect,
    .destroy = redis_destroy,
};
