/* SPDX-License-Identifier: MIT */
/* The scrape collector's sample table: of each body, the series whose names a rule reads,
 * keyed by name and sorted labels, each with the recent points its longest window needs. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/buf.h"
#include "scalemetrics/error.h"
#include "scalemetrics/hash.h"
#include "scalemetrics/number.h"
#include "scalemetrics/promtext.h"
#include "scalemetrics/window.h"

#include "scrape-internal.h"

int sm_scrape_names_add(struct scrape_names *names, const char *base, const char *suffix,
                        int64_t keep_ms, bool is_bucket)
{
	size_t len = strlen(base) + strlen(suffix) + 1;
	char *name = malloc(len);
	struct scrape_name *v;

	if (!name)
		return -ENOMEM;
	(void)snprintf(name, len, "%s%s", base, suffix);
	for (size_t i = 0; i < names->n; i++) {
		if (strcmp(names->v[i].name, name) == 0) {
			free(name);
			if (keep_ms > names->v[i].keep_ms)
				names->v[i].keep_ms = keep_ms;
			return (int)i;
		}
	}
	v = realloc(names->v, (names->n + 1) * sizeof(*v));
	if (!v) {
		free(name);
		return -ENOMEM;
	}
	names->v = v;
	names->v[names->n] =
	    (struct scrape_name){.name = name, .keep_ms = keep_ms, .is_bucket = is_bucket};
	return (int)names->n++;
}

void sm_scrape_names_done(struct scrape_names *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i].name);
	free(names->v);
	*names = (struct scrape_names){0};
}

static int names_find(const struct scrape_names *names, const char *name)
{
	for (size_t i = 0; i < names->n; i++)
		if (strcmp(names->v[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void series_free(struct scrape_series *e)
{
	if (!e)
		return;
	free(e->key);
	free(e->labels);
	free(e->pts);
	free(e);
}

void sm_scrape_table_done(struct scrape_table *t)
{
	for (size_t i = 0; i < t->cap; i++)
		series_free(t->slots[i]);
	free(t->slots);
	*t = (struct scrape_table){0};
}

static struct scrape_series **slot_for(struct scrape_table *t, const char *key, size_t len,
                                       uint64_t hash)
{
	size_t mask = t->cap - 1;

	for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
		struct scrape_series *e = t->slots[i];

		if (!e || (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0))
			return &t->slots[i];
	}
}

/* Re-inserts the series that keep (all, or those seen in this round) into a table of cap. */
static int table_rebuild(struct scrape_table *t, size_t cap, bool drop_unseen, uint64_t round)
{
	struct scrape_series **old = t->slots;
	size_t old_cap = t->cap;
	struct scrape_series **fresh = calloc(cap, sizeof(*fresh));

	if (!fresh)
		return -ENOMEM;
	t->slots = fresh;
	t->cap = cap;
	t->n = 0;
	for (size_t i = 0; i < old_cap; i++) {
		struct scrape_series *e = old[i];

		if (!e)
			continue;
		if (drop_unseen && e->seen_round != round) {
			series_free(e);
			continue;
		}
		*slot_for(t, e->key, e->key_len, e->hash) = e;
		t->n++;
	}
	free(old);
	return 0;
}

struct parse_ctx {
	struct scrape_table *t;
	const struct scrape_names *names;
	uint64_t round;
	size_t max_series;
	struct sm_buf *key;
	struct sm_error *reterr;
};

static int cmp_label_ptr(const void *a, const void *b)
{
	const struct sm_label *x = *(const struct sm_label *const *)a;
	const struct sm_label *y = *(const struct sm_label *const *)b;

	return strcmp(x->name, y->name);
}

/* Builds "name\0l1\0v1\0..." with labels sorted by name into key. */
static int build_key(const struct sm_prom_sample *smp, struct sm_buf *key)
{
	const struct sm_label *sorted[SM_PROMTEXT_MAX_LABELS];
	int r;

	for (size_t i = 0; i < smp->n_labels; i++)
		sorted[i] = &smp->labels[i];
	qsort(sorted, smp->n_labels, sizeof(sorted[0]), cmp_label_ptr);
	sm_buf_reset(key); /* reused for every sample, and after a round that ran out of memory */
	r = sm_buf_append(key, smp->name, strlen(smp->name) + 1);
	for (size_t i = 0; i < smp->n_labels && r == 0; i++) {
		r = sm_buf_append(key, sorted[i]->name, strlen(sorted[i]->name) + 1);
		if (r == 0)
			r = sm_buf_append(key, sorted[i]->value, strlen(sorted[i]->value) + 1);
	}
	return r;
}

/* A new series for the key in ctx->key; -EINVAL (reterr) for a bucket without a numeric le. */
static int series_new(const struct parse_ctx *ctx, const struct sm_prom_sample *smp, int idx,
                      uint64_t hash, struct scrape_series **ret)
{
	const char *key = ctx->key->data, *q;
	size_t len = ctx->key->len;
	struct scrape_series *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->key = malloc(len);
	e->labels = calloc(smp->n_labels ? smp->n_labels : 1, sizeof(*e->labels));
	if (!e->key || !e->labels) {
		series_free(e);
		return -ENOMEM;
	}
	memcpy(e->key, key, len);
	e->key_len = len;
	e->hash = hash;
	e->name_idx = idx;
	e->n_labels = smp->n_labels;
	q = e->key + strlen(e->key) + 1;
	for (size_t i = 0; i < smp->n_labels; i++) {
		e->labels[i].name = q;
		q += strlen(q) + 1;
		e->labels[i].value = q;
		q += strlen(q) + 1;
	}
	e->le = NAN;
	if (ctx->names->v[idx].is_bucket) {
		const char *le = NULL;

		for (size_t i = 0; i < e->n_labels; i++)
			if (strcmp(e->labels[i].name, "le") == 0)
				le = e->labels[i].value;
		if (!le || sm_number_parse_float_special(le, &e->le) < 0 || isnan(e->le)) {
			sm_error_set(ctx->reterr, "line %u: '%s' needs a numeric 'le' label",
			             smp->line, smp->name);
			series_free(e);
			return -EINVAL;
		}
	}
	*ret = e;
	return 0;
}

static int on_sample(const struct sm_prom_sample *smp, void *userdata)
{
	struct parse_ctx *ctx = userdata;
	struct scrape_table *t = ctx->t;
	int idx = names_find(ctx->names, smp->name);
	struct scrape_series **slot, *e;
	uint64_t hash;
	int r;

	if (idx < 0)
		return 0;
	r = build_key(smp, ctx->key);
	if (r < 0)
		return -ENOMEM;
	hash = sm_hash_bytes(ctx->key->data, ctx->key->len);
	if ((t->n + 1) * 2 > t->cap) {
		r = table_rebuild(t, t->cap ? 2 * t->cap : 64, false, 0);
		if (r < 0)
			return r;
	}
	slot = slot_for(t, ctx->key->data, ctx->key->len, hash);
	e = *slot;
	if (!e) {
		if (t->n >= ctx->max_series) {
			sm_error_set(ctx->reterr, "line %u: more than %zu series used by the rules",
			             smp->line, ctx->max_series);
			return -E2BIG;
		}
		r = series_new(ctx, smp, idx, hash, &e);
		if (r < 0)
			return r;
		*slot = e;
		t->n++;
	} else if (e->seen_round == ctx->round) {
		sm_error_set(ctx->reterr, "line %u: duplicate series '%s'", smp->line, smp->name);
		return -EINVAL;
	}
	e->seen_round = ctx->round;
	e->pending = smp->value;
	return 0;
}

static int series_push(struct scrape_series *e, int64_t t_ms, double v, int64_t keep_ms)
{
	size_t drop = 0;

	if (e->n_pts && e->pts[e->n_pts - 1].t_ms >= t_ms) {
		e->pts[e->n_pts - 1].v = v; /* same millisecond: the newer value wins */
		return 0;
	}
	if (e->n_pts == e->cap_pts) {
		size_t cap = e->cap_pts ? 2 * e->cap_pts : 4;
		struct sm_window_point *p = realloc(e->pts, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		e->pts = p;
		e->cap_pts = cap;
	}
	e->pts[e->n_pts++] = (struct sm_window_point){.t_ms = t_ms, .v = v};
	while (drop + 1 < e->n_pts && e->pts[drop].t_ms < t_ms - keep_ms)
		drop++;
	if (drop) {
		memmove(e->pts, e->pts + drop, (e->n_pts - drop) * sizeof(*e->pts));
		e->n_pts -= drop;
	}
	return 0;
}

int sm_scrape_table_ingest(struct scrape_table *t, const struct scrape_names *names,
                           const char *body, size_t len, uint64_t round, int64_t at_ms,
                           size_t max_series, struct sm_buf *key, struct sm_error *reterr)
{
	struct parse_ctx ctx = {
	    .t = t,
	    .names = names,
	    .round = round,
	    .max_series = max_series,
	    .key = key,
	    .reterr = reterr,
	};
	bool unseen = false;
	int r;

	r = sm_promtext_parse(body ? body : "", len, on_sample, &ctx, reterr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < t->cap; i++) {
		struct scrape_series *e = t->slots[i];

		if (!e)
			continue;
		if (e->seen_round != round) {
			unseen = true;
			continue;
		}
		r = series_push(e, at_ms, e->pending, names->v[e->name_idx].keep_ms);
		if (r < 0)
			return r;
	}
	if (unseen)
		return table_rebuild(t, t->cap, true, round);
	return 0;
}
