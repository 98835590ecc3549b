/* SPDX-License-Identifier: MIT */
/* Empty queues (docs/configuration.md "Empty queues and failed series"): the absent series
 * that answer 0 while their source is fresh, for a label value the selector names or an
 * object name that fits the metric's template, when no series and no failure carries it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/config.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series-index.h"
#include "scalemetrics/series.h"
#include "scalemetrics/store.h"
#include "scalemetrics/template.h"

#include "query-internal.h"

void sm_query_zeros_free(struct sm_query_zero *z, size_t n)
{
	for (size_t i = 0; z && i < n; i++) {
		free(z[i].value);
		free(z[i].object_name);
	}
	free(z);
}

/* The requirement that pins key to one or more values (k=v, k==v, k in (a,b)), or NULL. */
static const struct sm_selector_requirement *pinned_key(const struct sm_selector *sel,
                                                        const char *key)
{
	for (size_t i = 0; i < sm_selector_count(sel); i++) {
		const struct sm_selector_requirement *r = sm_selector_get(sel, i);

		if (strcmp(r->key, key) == 0 &&
		    (r->op == SM_SELECTOR_OP_EQUALS || r->op == SM_SELECTOR_OP_DOUBLE_EQUALS ||
		     r->op == SM_SELECTOR_OP_IN))
			return r;
	}
	return NULL;
}

static bool has_label(const struct sm_series *s, const char *name, const char *value)
{
	for (size_t i = 0; i < s->n_labels; i++)
		if (strcmp(s->labels[i].name, name) == 0)
			return !value || strcmp(s->labels[i].value, value) == 0;
	return false;
}

/* Does any series or failure of metric carry name=value (or may a failure: one without the
 * label)? */
static bool value_is_known(const struct sm_snapshot *snap, const char *metric, const char *name,
                           const char *value)
{
	struct sm_series_cursor c;
	size_t i;

	if (snap->index) {
		sm_series_index_label(snap->index, metric, name, value, &c);
		while (sm_series_cursor_next(&c, &i))
			if (strcmp(snap->series[i].metric, metric) == 0 &&
			    has_label(&snap->series[i], name, value))
				return true;
	} else {
		for (i = 0; i < snap->n_series; i++)
			if (strcmp(snap->series[i].metric, metric) == 0 &&
			    has_label(&snap->series[i], name, value))
				return true;
	}
	for (i = 0; i < snap->n_failures; i++) {
		const struct sm_series_failure *f = &snap->failures[i];

		if (strcmp(f->series.metric, metric) != 0)
			continue;
		/* Without the label, the failure may be about any value of it. */
		if (has_label(&f->series, name, value) || !has_label(&f->series, name, NULL))
			return true;
	}
	return false;
}

/* Does name fit the object name template tmpl? As sm_template_fit, and the value must be one
 * a series could carry (a sanitised label value): 1 with it, 0 (no token, tmpl is name), -1,
 * -ENOMEM. */
static int template_fit(const char *tmpl, const char *token, const char *name, char **ret)
{
	char clean[64];
	char *v = NULL;
	int k = sm_template_fit(tmpl, token, name, sizeof(clean) - 1, &v);

	if (k != 1)
		return k;
	sm_label_value_sanitize(v, clean);
	if (strcmp(clean, v) != 0) {
		free(v);
		return -1;
	}
	*ret = v;
	return 1;
}

/* Keeps z when it answers q as the series it stands for would. */
static bool zero_matches(const struct sm_query *q, const struct sm_source_config *src,
                         const struct sm_metric_def *def, const struct sm_query_zero *z)
{
	struct sm_label label = {.name = def->zero_label, .value = z->value};
	struct sm_object_ref obj = {.resource = def->resource, .name = z->object_name};
	struct sm_series s = {
	    .metric = def->name,
	    .labels = z->value ? &label : NULL,
	    .n_labels = z->value ? 1 : 0,
	    .object = z->object_name ? &obj : NULL,
	};

	return sm_query_series_matches(q, src, def, &s, false);
}

int sm_query_find_zeros(const struct sm_query *q, const struct sm_source_config *src,
                        const struct sm_metric_def *def, const struct sm_snapshot *snap,
                        size_t n_match, struct sm_query_zero **ret, size_t *ret_n)
{
	const struct sm_selector_requirement *pin = pinned_key(q->metric_selector, def->zero_label);
	const char *tmpl =
	    def->scope == SM_METRIC_OBJECT && def->resource ? def->object_template : NULL;
	struct sm_query_zero *z = NULL;
	size_t n = 0, n_cand = 0;
	char token[128];
	char *fit = NULL;
	int r = 0, k;

	if (snap->series_dropped > 0 ||
	    (size_t)snprintf(token, sizeof(token), "{%s}", def->zero_label) >= sizeof(token))
		return 0;
	switch (q->kind) {
	case SM_QUERY_EXTERNAL:
		n_cand = pin ? pin->n_values : 0;
		break;
	case SM_QUERY_OBJECTS:
		n_cand = pin && tmpl ? pin->n_values : 0;
		break;
	case SM_QUERY_OBJECT:
		if (n_match > 0 || !tmpl)
			break;
		k = template_fit(tmpl, token, q->name, &fit);
		if (k == -ENOMEM)
			return k;
		/* No placeholder: every queue is served on this one object. */
		n_cand = k == 1 || (k == 0 && (!pin || pin->n_values == 1)) ? 1 : 0;
		break;
	case SM_QUERY_NAMESPACE: /* a total: already 0 when nothing matches */
	case SM_QUERY_KIND_MAX:
		break;
	}
	if (n_cand == 0)
		goto out;
	z = calloc(n_cand, sizeof(*z));
	if (!z) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_cand; i++) {
		struct sm_query_zero *c = &z[n];
		const char *value = q->kind == SM_QUERY_OBJECT ? fit : pin->values[i];

		if (q->kind == SM_QUERY_OBJECT && !fit && pin)
			value = pin->values[0];
		if (value && value_is_known(snap, def->name, def->zero_label, value))
			continue;
		c->value = value ? strdup(value) : NULL;
		if (q->kind == SM_QUERY_OBJECT)
			c->object_name = strdup(q->name);
		else if (q->kind == SM_QUERY_OBJECTS)
			c->object_name = sm_template_expand(tmpl, token, value, NULL);
		if ((value && !c->value) || (q->kind != SM_QUERY_EXTERNAL && !c->object_name)) {
			r = -ENOMEM;
			goto out;
		}
		if (zero_matches(q, src, def, c)) {
			n++;
		} else {
			free(c->value);
			free(c->object_name);
			*c = (struct sm_query_zero){0};
		}
	}
	if (n > 0) {
		*ret = z;
		*ret_n = n;
		z = NULL;
	}
out:
	sm_query_zeros_free(z, n_cand); /* those not kept are zeroed */
	free(fit);
	return r;
}
