/* SPDX-License-Identifier: MIT */
/* The scrape collector's rules: rates, quantiles, averages and gauges computed over one
 * target's series and grouped by the rule's `by` labels, per pod and summed over targets
 * (the aggregate); and which targets may stand in the sums. Pure: no I/O. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/series.h"
#include "scalemetrics/window.h"

#include "scrape-internal.h"

int sm_scrape_rule_bind(struct scrape_rule *rule, struct scrape_names *names)
{
	int k = 0;

	rule->name_idx = rule->sum_idx = rule->count_idx = -1;
	switch (rule->kind) {
	case RULE_RATE:
		k = rule->name_idx =
		    sm_scrape_names_add(names, rule->counter, "", rule->window_ms, false);
		break;
	case RULE_GAUGE:
		k = rule->name_idx = sm_scrape_names_add(names, rule->gauge, "", 0, false);
		break;
	case RULE_QUANTILE:
		k = rule->name_idx =
		    sm_scrape_names_add(names, rule->histogram, "_bucket", rule->window_ms, true);
		break;
	case RULE_AVERAGE:
		k = rule->sum_idx =
		    sm_scrape_names_add(names, rule->histogram, "_sum", rule->window_ms, false);
		if (k >= 0)
			k = rule->count_idx = sm_scrape_names_add(names, rule->histogram, "_count",
			                                          rule->window_ms, false);
		break;
	case RULE_KIND_MAX:
		break;
	}
	return k < 0 ? k : 0;
}

void sm_scrape_pod_done(struct scrape_pod *pod)
{
	free(pod->name);
	free(pod->namespace);
	for (size_t i = 0; i < pod->n_labels; i++) {
		free((char *)pod->labels[i].name);
		free((char *)pod->labels[i].value);
	}
	free(pod->labels);
	*pod = (struct scrape_pod){0};
}

enum scrape_part sm_scrape_part(bool ok, bool has_ok, int64_t last_ok_ms, int64_t now_ms,
                                int64_t max_age_ms)
{
	if (ok)
		return SCRAPE_PART_FRESH;
	/* One slow scrape should not make the sum drop: the last values stand in while recent. */
	if (has_ok && now_ms - last_ok_ms <= max_age_ms)
		return SCRAPE_PART_RECENT;
	return SCRAPE_PART_MISSING;
}

static uint32_t rule_window_s(const struct scrape_rule *rule)
{
	return (uint32_t)(rule->kind == RULE_GAUGE ? 0 : rule->window_ms / 1000);
}

static void acc_set_clear(struct scrape_acc_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].key);
		free(s->v[i].buckets);
	}
	s->n = 0;
}

static void acc_set_done(struct scrape_acc_set *s)
{
	acc_set_clear(s);
	free(s->v);
	*s = (struct scrape_acc_set){0};
}

static struct scrape_acc *acc_get(struct scrape_acc_set *set, const char *key, size_t len)
{
	struct scrape_acc *a;

	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].key_len == len && memcmp(set->v[i].key, key, len) == 0)
			return &set->v[i];
	if (set->n == set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 8;
		struct scrape_acc *v = realloc(set->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		set->v = v;
		set->cap = cap;
	}
	a = &set->v[set->n];
	*a = (struct scrape_acc){.key = malloc(len ? len : 1), .key_len = len};
	if (!a->key)
		return NULL;
	memcpy(a->key, key, len);
	set->n++;
	return a;
}

static int acc_add_bucket(struct scrape_acc *a, double le, double count)
{
	for (size_t i = 0; i < a->n_buckets; i++) {
		if (a->buckets[i].le == le) {
			a->buckets[i].count += count;
			return 0;
		}
	}
	if (a->n_buckets == a->cap_buckets) {
		size_t cap = a->cap_buckets ? 2 * a->cap_buckets : 16;
		struct scrape_bucket *b = realloc(a->buckets, cap * sizeof(*b));

		if (!b)
			return -ENOMEM;
		a->buckets = b;
		a->cap_buckets = cap;
	}
	a->buckets[a->n_buckets++] = (struct scrape_bucket){.le = le, .count = count};
	return 0;
}

/* The group key of an entry: its values of the rule's `by` labels, each NUL-terminated. */
/* The group key of an entry: its values of the rule's `by` labels, each NUL-terminated. */
static size_t group_key(const struct scrape_rule *rule, const struct scrape_series *e, char *buf,
                        size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < rule->by.n; i++) {
		const char *v = "";
		size_t len;

		for (size_t j = 0; j < e->n_labels; j++)
			if (strcmp(e->labels[j].name, rule->by.v[i]) == 0)
				v = e->labels[j].value;
		len = strlen(v) + 1;
		if (len > cap - n)
			len = cap - n; /* cut: keys are compared, never printed */
		memcpy(buf + n, v, len);
		n += len;
	}
	return n;
}

static int series_contribute(const struct scrape_rule *rule, const struct scrape_series *e,
                             int64_t now_ms, struct scrape_acc *a)
{
	int64_t start = now_ms - rule->window_ms;
	double v;

	switch (rule->kind) {
	case RULE_RATE:
		if (sm_window_rate(e->pts, e->n_pts, start, now_ms, &v) < 0)
			return 0;
		a->value += v;
		a->has = true;
		return 0;
	case RULE_GAUGE:
		if (!e->n_pts || isnan(e->pts[e->n_pts - 1].v))
			return 0;
		a->value += e->pts[e->n_pts - 1].v;
		a->has = true;
		return 0;
	case RULE_QUANTILE:
		if (sm_window_increase(e->pts, e->n_pts, start, now_ms, &v) < 0)
			return 0;
		a->has = true;
		return acc_add_bucket(a, e->le, v);
	case RULE_AVERAGE:
		if (sm_window_increase(e->pts, e->n_pts, start, now_ms, &v) < 0)
			return 0;
		if (e->name_idx == rule->sum_idx) {
			a->sum_inc += v;
		} else {
			a->count_inc += v;
			a->has = true;
		}
		return 0;
	case RULE_KIND_MAX:
		break;
	}
	return 0;
}

/* The served value of a group; false when there is none (absent, not 0). */
static bool acc_value(const struct scrape_rule *rule, const struct scrape_acc *a, double *ret)
{
	struct sm_window_bucket stack[64], *b = stack;
	bool ok = false;
	double v = NAN;

	if (!a->has)
		return false;
	switch (rule->kind) {
	case RULE_RATE:
	case RULE_GAUGE:
		v = a->value;
		ok = true;
		break;
	case RULE_AVERAGE:
		ok = sm_window_average(a->sum_inc, a->count_inc, &v) == 0;
		break;
	case RULE_QUANTILE:
		if (a->n_buckets > 64) {
			b = malloc(a->n_buckets * sizeof(*b));
			if (!b)
				return false;
		}
		for (size_t i = 0; i < a->n_buckets; i++)
			b[i] = (struct sm_window_bucket){.upper_bound = a->buckets[i].le,
			                                 .count = a->buckets[i].count};
		ok = sm_window_histogram_quantile(rule->quantile.value, b, a->n_buckets, &v) == 0;
		if (b != stack)
			free(b);
		break;
	case RULE_KIND_MAX:
		break;
	}
	if (!ok || !isfinite(v))
		return false;
	*ret = v;
	return true;
}

static int emit(const struct scrape_rule *rule, const struct scrape_pod *pod,
                const struct scrape_acc *a, struct sm_batch *batch)
{
	struct sm_label labels[SCRAPE_MAX_BY];
	struct sm_object_ref obj;
	struct sm_series_in in = {0};
	const char *v = a->key;
	size_t n = 0;
	double value;
	int r;

	if (!acc_value(rule, a, &value))
		return 0;
	for (size_t i = 0; i < rule->by.n && i < SCRAPE_MAX_BY; i++) {
		if (*v)
			labels[n++] = (struct sm_label){.name = rule->by.v[i], .value = v};
		v += strlen(v) + 1;
	}
	in.metric = rule->metric;
	in.labels = labels;
	in.n_labels = n;
	in.value = value;
	in.window_s = rule_window_s(rule);
	if (pod) {
		obj = (struct sm_object_ref){
		    .resource = "pods", .name = pod->name, .namespace = pod->namespace};
		in.object = &obj;
		in.object_labels = pod->labels;
		in.n_object_labels = pod->n_labels;
	}
	r = sm_batch_add(batch, &in);
	/* Over max_series: dropped and counted by the batch; a NaN: skipped. */
	return r == -ENOMEM ? r : 0;
}

static int merge_into(struct scrape_acc_set *total, const struct scrape_acc *a)
{
	struct scrape_acc *to = acc_get(total, a->key, a->key_len);

	if (!to)
		return -ENOMEM;
	if (!a->has)
		return 0;
	to->has = true;
	to->value += a->value;
	to->sum_inc += a->sum_inc;
	to->count_inc += a->count_inc;
	for (size_t i = 0; i < a->n_buckets; i++)
		if (acc_add_bucket(to, a->buckets[i].le, a->buckets[i].count) < 0)
			return -ENOMEM;
	return 0;
}

static bool series_feeds(const struct scrape_rule *rule, const struct scrape_series *e)
{
	if (rule->kind == RULE_AVERAGE)
		return e->name_idx == rule->sum_idx || e->name_idx == rule->count_idx;
	return e->name_idx == rule->name_idx;
}

int sm_scrape_aggregate_init(struct scrape_aggregate *a, struct scrape_rule **rules, size_t n_rules)
{
	*a = (struct scrape_aggregate){.rules = rules, .n_rules = n_rules};
	a->totals = calloc(n_rules ? n_rules : 1, sizeof(*a->totals));
	return a->totals ? 0 : -ENOMEM;
}

void sm_scrape_aggregate_done(struct scrape_aggregate *a)
{
	if (a->totals)
		for (size_t i = 0; i < a->n_rules; i++)
			acc_set_done(&a->totals[i]);
	free(a->totals);
	acc_set_done(&a->local);
	*a = (struct scrape_aggregate){0};
}

void sm_scrape_aggregate_begin(struct scrape_aggregate *a)
{
	for (size_t i = 0; i < a->n_rules; i++)
		acc_set_clear(&a->totals[i]);
	a->partial = false;
}

int sm_scrape_aggregate_add(struct scrape_aggregate *a, const struct scrape_table *table,
                            int64_t at_ms, const struct scrape_pod *pod, struct sm_batch *batch)
{
	char key[1024];

	for (size_t ri = 0; ri < a->n_rules; ri++) {
		const struct scrape_rule *rule = a->rules[ri];

		acc_set_clear(&a->local);
		for (size_t i = 0; i < table->cap; i++) {
			const struct scrape_series *e = table->slots[i];
			struct scrape_acc *acc;
			size_t len;
			int r;

			if (!e || !series_feeds(rule, e))
				continue;
			len = group_key(rule, e, key, sizeof(key));
			acc = acc_get(&a->local, key, len);
			if (!acc)
				return -ENOMEM;
			r = series_contribute(rule, e, at_ms, acc);
			if (r < 0)
				return r;
		}
		for (size_t i = 0; i < a->local.n; i++) {
			int r = 0;

			if (pod)
				r = emit(rule, pod, &a->local.v[i], batch);
			if (r == 0)
				r = merge_into(&a->totals[ri], &a->local.v[i]);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int sm_scrape_aggregate_miss(struct scrape_aggregate *a, const char *error, struct sm_batch *batch)
{
	a->partial = true;
	for (size_t ri = 0; ri < a->n_rules; ri++) {
		const struct scrape_rule *rule = a->rules[ri];
		struct sm_series_in in = {
		    .metric = rule->metric,
		    .window_s = rule_window_s(rule),
		};
		int r = sm_batch_add_failure(batch, &in, true, error);

		if (r == -ENOMEM)
			return r;
	}
	return 0;
}

int sm_scrape_aggregate_finish(struct scrape_aggregate *a, struct sm_batch *batch)
{
	/* A sum without a target's part is a wrong number: its failures stand instead. */
	if (a->partial)
		return 0;
	for (size_t ri = 0; ri < a->n_rules; ri++)
		for (size_t i = 0; i < a->totals[ri].n; i++) {
			int r = emit(a->rules[ri], NULL, &a->totals[ri].v[i], batch);

			if (r < 0)
				return r;
		}
	return 0;
}

int sm_scrape_pod_fail(struct scrape_rule *const *rules, size_t n_rules,
                       const struct scrape_pod *pod, const char *error, struct sm_batch *batch)
{
	struct sm_object_ref obj = {
	    .resource = "pods", .name = pod->name, .namespace = pod->namespace};

	for (size_t ri = 0; ri < n_rules; ri++) {
		struct sm_series_in in = {
		    .metric = rules[ri]->metric,
		    .object = &obj,
		    .object_labels = pod->labels,
		    .n_object_labels = pod->n_labels,
		};
		int r = sm_batch_add_failure(batch, &in, true, error);

		if (r == -ENOMEM)
			return r;
	}
	return 0;
}
