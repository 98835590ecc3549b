/* SPDX-License-Identifier: MIT */
/* Query: resolves a parsed metrics request against the store's snapshots (docs/design.md "Query",
 * "Failure semantics"): which series answer it, whether they are fresh, what value. Empty
 * queues (absent series answered as 0) are query-zeros.c. About 850 lines: the rules of
 * visibility, failure and fallback below are one decision and read best in one place. */
#include "scalemetrics/query.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series-index.h"
#include "scalemetrics/store.h"

#include "query-internal.h"

/*
 * Visibility: a series whose object names a namespace (scraped pods) is visible in that
 * namespace only; any other series is visible in every namespace its source lists. Root-scoped
 * custom requests (namespace NULL) see only series whose object has no namespace.
 *
 * A metric name belongs to one source in each namespace (several sources may share it when
 * the namespaces they serve it in are disjoint; the config rejects overlaps), so one snapshot
 * answers a query; the result holds a reference to it, and items borrow its strings. The
 * strings that come from the request (namespace, resource, name) are copied behind the items
 * array, and so are the series made up for empty queues (below).
 *
 * What is absent (docs/configuration.md "Empty queues and failed series"), while the source is
 * fresh:
 * - A failure (a series the round could not read, store.h) that would answer the query makes
 *   it 503 naming the metric, the source and the error, when nothing read answers it, when
 *   the selector names label values (k=v, k in (a,b)), or when the answer is one sum (one
 *   object, a namespace total): serving what was read would then be a wrong number. A
 *   selector that names no value gets what was read (each series is its own item, none of
 *   them wrong; the log names the failures); a list of objects leaves out the objects a
 *   failure is about. With `fallback`, each failure answers with the fallback value instead,
 *   as stale data does.
 * - A metric with a zero_label (config.h) answers 0 for a value of that label that the
 *   selector names (or an object name that fits the template) and that no series and no
 *   failure carries: an empty queue, deleted by Redis. Not when the round dropped series
 *   (max_series): an absent series may then be one that was not read.
 */

static const char *query_what(const struct sm_query *q, char *buf, size_t len)
{
	switch (q->kind) {
	case SM_QUERY_EXTERNAL:
		return "external metrics";
	case SM_QUERY_OBJECT:
		(void)snprintf(buf, len, "%s %s", q->resource, q->name);
		return buf;
	case SM_QUERY_OBJECTS:
		return q->resource;
	case SM_QUERY_NAMESPACE:
		(void)snprintf(buf, len, "namespaces %s", q->namespace);
		return buf;
	case SM_QUERY_KIND_MAX:
		break;
	}
	return "?";
}

static int not_found(const struct sm_query *q, struct sm_error *reterr)
{
	char buf[512];

	sm_error_set(reterr, "the server could not find the metric %s for %s", q->metric,
	             query_what(q, buf, sizeof(buf)));
	return -ENOENT;
}

static bool source_lists_namespace(const struct sm_source_config *src, const char *ns)
{
	for (size_t i = 0; i < src->namespaces.n; i++)
		if (src->namespaces.v[i] && strcmp(src->namespaces.v[i], ns) == 0)
			return true;
	return false;
}

/* The definition of metric that answers in ns, and its source's index. Sources may share a
 * name when the namespaces they serve it in are disjoint (config-metrics.c), so it is the one that
 * serves it in ns: its source lists ns, or ns is where its pods are. Root-scoped (ns NULL),
 * or when none serves it in ns, the first: it then answers 404 as it would alone. */
static const struct sm_metric_def *find_def(const struct sm_config *cfg, const char *metric,
                                            const char *ns, size_t *ret_idx)
{
	const struct sm_metric_def *first = NULL;
	size_t first_idx = 0;

	if (!cfg)
		return NULL;
	for (size_t i = 0; i < cfg->n_sources; i++) {
		const struct sm_source_config *src = &cfg->sources[i];

		for (size_t j = 0; j < src->n_metrics; j++) {
			const struct sm_metric_def *def = &src->metrics[j];

			if (!def->name || strcmp(def->name, metric) != 0)
				continue;
			if (!ns || source_lists_namespace(src, ns) ||
			    (def->pods_namespace && strcmp(def->pods_namespace, ns) == 0)) {
				*ret_idx = i;
				return def;
			}
			if (!first) {
				first = def;
				first_idx = i;
			}
			break; /* a source defines a name once */
		}
	}
	if (first)
		*ret_idx = first_idx;
	return first;
}

/* Can the metric be asked for on objects of `resource` (custom metrics)? */
static bool def_serves_resource(const struct sm_metric_def *def, const char *resource)
{
	switch (def->scope) {
	case SM_METRIC_EXTERNAL:
		return false;
	case SM_METRIC_PODS:
		return strcmp(resource, "pods") == 0;
	case SM_METRIC_OBJECT:
		return !def->resource || strcmp(def->resource, resource) == 0;
	case SM_METRIC_SCOPE_MAX:
		break;
	}
	return false;
}

static bool series_visible(const struct sm_source_config *src, const struct sm_series *s,
                           const char *ns)
{
	const char *own = s->object ? s->object->namespace : NULL;

	if (!ns)
		return s->object && !own;
	if (own)
		return strcmp(own, ns) == 0;
	return source_lists_namespace(src, ns);
}

/* Is the metric served in ns at all (before any selector)? */
static bool metric_visible(const struct sm_source_config *src, const struct sm_snapshot *snap,
                           const char *metric, const char *ns)
{
	if (source_lists_namespace(src, ns))
		return true;
	for (size_t i = 0; i < snap->n_series; i++) {
		const struct sm_series *s = &snap->series[i];

		if (s->object && s->object->namespace && strcmp(s->metric, metric) == 0 &&
		    strcmp(s->object->namespace, ns) == 0)
			return true;
	}
	return false;
}

static void format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms % 1000 == 0)
		(void)snprintf(buf, len, "%" PRId64 "s", ms / 1000);
	else
		(void)snprintf(buf, len, "%" PRId64 "ms", ms);
}

static int unavailable(const struct sm_query *q, const struct sm_snapshot *snap,
                       struct sm_error *reterr)
{
	const char *name = snap->source && snap->source->name ? snap->source->name : "?";
	const char *err = snap->last_error ? snap->last_error : "";
	char max_age[32];

	if (!snap->has_succeeded) {
		sm_error_set(
		    reterr,
		    "metric '%s' is unavailable: source '%s' has not completed a successful "
		    "round yet: %s",
		    q->metric, name, *err ? err : "first round pending");
	} else {
		int64_t age_ms = q->now_mono_ms - snap->last_success_mono_ms;

		format_duration(sm_snapshot_max_age_ms(snap), max_age, sizeof(max_age));
		sm_error_set(reterr,
		             "metric '%s' is unavailable: source '%s' has had no successful round "
		             "for %" PRId64 "s (max_age %s)%s%s",
		             q->metric, name, age_ms / 1000, max_age, *err ? ": " : "", err);
	}
	return -EAGAIN;
}

static bool selector_ok(const struct sm_selector *sel, const struct sm_label *labels, size_t n)
{
	return !sel || sm_selector_matches(sel, labels, n);
}

bool sm_query_series_matches(const struct sm_query *q, const struct sm_source_config *src,
                             const struct sm_metric_def *def, const struct sm_series *s,
                             bool labels_partial)
{
	if (strcmp(s->metric, q->metric) != 0)
		return false;
	if (!series_visible(src, s, q->namespace)) {
		/* EXTERNAL and NAMESPACE need a namespace; series_visible(NULL) is root scope. */
		return false;
	}
	switch (q->kind) {
	case SM_QUERY_EXTERNAL:
	case SM_QUERY_NAMESPACE:
		/* A pods metric is served per pod as a custom metric and as its aggregate series
		 * (no object) as an external one: counting the pods too would double it. */
		if (def->scope == SM_METRIC_PODS && s->object)
			return false;
		break;
	case SM_QUERY_OBJECT:
	case SM_QUERY_OBJECTS:
		/* A failure with no object that stands for series not known (a rule whose queue
		 * index could not be read) may be about any object of the metric. */
		if (!s->object && labels_partial && def->scope == SM_METRIC_OBJECT)
			break;
		if (!s->object || strcmp(s->object->resource, q->resource) != 0)
			return false;
		if (q->kind == SM_QUERY_OBJECT && strcmp(s->object->name, q->name) != 0)
			return false;
		if (q->kind == SM_QUERY_OBJECTS &&
		    !selector_ok(q->object_selector, s->object_labels, s->n_object_labels))
			return false;
		break;
	case SM_QUERY_KIND_MAX:
		return false;
	}
	if (labels_partial)
		return sm_selector_may_match(q->metric_selector, s->labels, s->n_labels);
	return selector_ok(q->metric_selector, s->labels, s->n_labels);
}

static bool series_matches(const struct sm_query *q, const struct sm_source_config *src,
                           const struct sm_metric_def *def, const struct sm_series *s)
{
	return sm_query_series_matches(q, src, def, s, false);
}

/* The first requirement that pins one label value (k=v, k==v, k in (v)), or NULL. */
static const struct sm_selector_requirement *pinned_label(const struct sm_selector *sel)
{
	for (size_t i = 0; i < sm_selector_count(sel); i++) {
		const struct sm_selector_requirement *r = sm_selector_get(sel, i);

		if (r->op == SM_SELECTOR_OP_EQUALS || r->op == SM_SELECTOR_OP_DOUBLE_EQUALS ||
		    (r->op == SM_SELECTOR_OP_IN && r->n_values == 1))
			return r;
	}
	return NULL;
}

/* Appends s to *match when it answers q. */
static int keep_if_matches(const struct sm_query *q, const struct sm_source_config *src,
                           const struct sm_metric_def *def, const struct sm_series *s,
                           const struct sm_series ***match, size_t *n, size_t *cap)
{
	if (!series_matches(q, src, def, s))
		return 0;
	if (*n == *cap) {
		size_t new_cap = *cap ? 2 * *cap : 16;
		const struct sm_series **m = realloc(*match, new_cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		*match = m;
		*cap = new_cap;
	}
	(*match)[(*n)++] = s;
	return 0;
}

/* The series that answer q, in snapshot order. One object, or a selector that pins a label
 * value, is looked up in the snapshot's index (a superset, checked like a scan); anything
 * else, or a snapshot too small to have an index, is a scan. */
static int collect(const struct sm_query *q, const struct sm_source_config *src,
                   const struct sm_metric_def *def, const struct sm_snapshot *snap,
                   const struct sm_series ***ret, size_t *ret_n)
{
	const struct sm_selector_requirement *pin = pinned_label(q->metric_selector);
	struct sm_series_cursor c;
	size_t i, cap = 0;

	if (!snap->index || (q->kind != SM_QUERY_OBJECT && !pin)) {
		for (i = 0; i < snap->n_series; i++)
			if (keep_if_matches(q, src, def, &snap->series[i], ret, ret_n, &cap) < 0)
				return -ENOMEM;
		return 0;
	}
	if (q->kind == SM_QUERY_OBJECT)
		sm_series_index_object(snap->index, q->metric, q->resource, q->name, &c);
	else
		sm_series_index_label(snap->index, q->metric, pin->key, pin->values[0], &c);
	while (sm_series_cursor_next(&c, &i))
		if (keep_if_matches(q, src, def, &snap->series[i], ret, ret_n, &cap) < 0)
			return -ENOMEM;
	return 0;
}

/* ---- failures: series the last round could not read ---- */

/* The failures that would answer q, in snapshot order, into *ret (malloc'd; NULL when none). */
static int collect_failures(const struct sm_query *q, const struct sm_source_config *src,
                            const struct sm_metric_def *def, const struct sm_snapshot *snap,
                            const struct sm_series_failure ***ret, size_t *ret_n)
{
	const struct sm_series_failure **v = NULL;
	size_t n = 0;

	for (size_t i = 0; i < snap->n_failures; i++) {
		const struct sm_series_failure *f = &snap->failures[i];

		if (!sm_query_series_matches(q, src, def, &f->series, f->labels_partial))
			continue;
		if (!v) {
			/* The first match: room for every failure left, so one allocation. */
			v = malloc((snap->n_failures - i) * sizeof(*v));
			if (!v)
				return -ENOMEM;
		}
		v[n++] = f;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Does the selector name label values (k=v, k==v, k in (a,b))? Then a failure it matches
 * carries one of them, or may. */
static bool names_values(const struct sm_selector *sel)
{
	for (size_t i = 0; i < sm_selector_count(sel); i++) {
		enum sm_selector_op op = sm_selector_get(sel, i)->op;

		if (op == SM_SELECTOR_OP_EQUALS || op == SM_SELECTOR_OP_DOUBLE_EQUALS ||
		    op == SM_SELECTOR_OP_IN)
			return true;
	}
	return false;
}

/* Would serving what was read, without the failures, be a wrong answer? */
static bool failures_refuse(const struct sm_query *q, size_t n_match)
{
	switch (q->kind) {
	case SM_QUERY_EXTERNAL:
	case SM_QUERY_OBJECTS:
		/* A list that names a value a failure carries would leave that one out. */
		return n_match == 0 || names_values(q->metric_selector);
	case SM_QUERY_OBJECT:
	case SM_QUERY_NAMESPACE:
	case SM_QUERY_KIND_MAX:
		break;
	}
	return true;
}

static bool same_object(const struct sm_series *a, const struct sm_series *b)
{
	return a->object && b->object && strcmp(a->object->resource, b->object->resource) == 0 &&
	       strcmp(a->object->name, b->object->name) == 0;
}

/* Objects: leaves out of match the series of an object a failure is about (its sum would be
 * partial). */
static void drop_failed_objects(const struct sm_series **match, size_t *n_match,
                                const struct sm_series_failure **fails, size_t n_fails)
{
	size_t w = 0;

	for (size_t i = 0; i < *n_match; i++) {
		bool failed = false;

		for (size_t j = 0; j < n_fails && !failed; j++)
			failed = same_object(match[i], &fails[j]->series);
		if (!failed)
			match[w++] = match[i];
	}
	*n_match = w;
}

/* "deployments.apps worker-emails, queue=emails", "queue=emails" or "it". */
static void describe_failure(const struct sm_series_failure *f, char *buf, size_t len)
{
	const struct sm_series *s = &f->series;
	size_t used = 0;

	buf[0] = '\0';
	if (s->object)
		used = (size_t)snprintf(buf, len, "%s %s", s->object->resource, s->object->name);
	for (size_t i = 0; i < s->n_labels && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s=%s",
		                         i > 0 ? "," : (used ? ", " : ""), s->labels[i].name,
		                         s->labels[i].value);
	if (!buf[0])
		(void)snprintf(buf, len, "it");
}

static int unreadable(const struct sm_query *q, const struct sm_snapshot *snap,
                      const struct sm_series_failure *const *fails, size_t n_fails,
                      struct sm_error *reterr)
{
	const char *name = snap->source && snap->source->name ? snap->source->name : "?";
	char what[256], more[48] = "";

	describe_failure(fails[0], what, sizeof(what));
	if (n_fails > 1)
		(void)snprintf(more, sizeof(more), " (and %zu more series)", n_fails - 1);
	sm_error_set(reterr, "metric '%s' is unavailable: source '%s' could not read %s: %s%s",
	             q->metric, name, what, fails[0]->error, more);
	return -EAGAIN;
}

static int cmp_str_null_first(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int cmp_labels(const struct sm_label *a, size_t na, const struct sm_label *b, size_t nb)
{
	for (size_t i = 0; i < na && i < nb; i++) {
		int c = cmp_str_null_first(a[i].name, b[i].name);

		if (c == 0)
			c = cmp_str_null_first(a[i].value, b[i].value);
		if (c != 0)
			return c;
	}
	return (na > nb) - (na < nb);
}

static int cmp_series_object(const void *pa, const void *pb)
{
	const struct sm_series *a = *(const struct sm_series *const *)pa;
	const struct sm_series *b = *(const struct sm_series *const *)pb;

	return cmp_str_null_first(a->object ? a->object->name : NULL,
	                          b->object ? b->object->name : NULL);
}

static int cmp_items(const void *pa, const void *pb)
{
	const struct sm_query_item *a = pa;
	const struct sm_query_item *b = pb;
	int c = cmp_str_null_first(a->object.name, b->object.name);

	if (c == 0)
		c = cmp_labels(a->labels, a->n_labels, b->labels, b->n_labels);
	if (c == 0)
		c = (a->value > b->value) - (a->value < b->value);
	return c;
}

struct builder {
	const struct sm_query *q;
	const struct sm_metric_def *def;
	const struct sm_snapshot *snap;
	bool fallback; /* stale: serve def->fallback */
	/* Failures answering the query, each served as def->fallback (never with fallback). */
	const struct sm_series_failure **fails;
	size_t n_fails;
	int64_t now_wall_ms;
	/* Copies of the request's strings, behind the items array. */
	const char *ns; /* NULL: root-scoped */
	const char *resource;
	const char *name;
	struct sm_query_item *items;
	size_t n_items;
};

static void set_fallback(const struct builder *b, struct sm_query_item *it)
{
	it->value = b->def->fallback.value;
	it->is_fallback = true;
	it->timestamp_wall_ms = b->now_wall_ms;
}

/* Starts an item from the first series of a group (s may be NULL: a synthesised item). */
static struct sm_query_item *item_add(struct builder *b, const struct sm_series *s)
{
	struct sm_query_item *it = &b->items[b->n_items++];

	*it = (struct sm_query_item){
	    .metric = b->def->name,
	    .value = s ? s->value : 0,
	    .timestamp_wall_ms = s ? s->timestamp_wall_ms : b->snap->last_success_wall_ms,
	    .window_s = s && s->window_s ? s->window_s : b->def->window_s,
	};
	switch (b->q->kind) {
	case SM_QUERY_EXTERNAL:
		if (s) {
			it->labels = s->labels;
			it->n_labels = s->n_labels;
		}
		break;
	case SM_QUERY_OBJECT:
	case SM_QUERY_OBJECTS:
		/* A failure with no object (matches()) stands for the object queried. */
		it->object.resource = s && s->object ? s->object->resource : b->resource;
		it->object.name = s && s->object ? s->object->name : b->name;
		it->object.namespace = b->ns;
		break;
	case SM_QUERY_NAMESPACE:
		it->object.resource = "namespaces";
		it->object.name = b->ns;
		break;
	case SM_QUERY_KIND_MAX:
		break;
	}
	if (b->fallback)
		set_fallback(b, it);
	return it;
}

/* An item for a failure (s: its series; NULL for a namespace total): the fallback value. */
static struct sm_query_item *fallback_add(struct builder *b, const struct sm_series *s)
{
	struct sm_query_item *it = item_add(b, s);

	set_fallback(b, it);
	return it;
}

/* Adds another series of the same group: sums (a fallback stays the fallback). */
static void item_merge(struct builder *b, struct sm_query_item *it, const struct sm_series *s)
{
	if (!b->fallback) {
		it->value += s->value;
		if (s->timestamp_wall_ms > it->timestamp_wall_ms)
			it->timestamp_wall_ms = s->timestamp_wall_ms;
	}
}

static int cmp_failure_object(const void *pa, const void *pb)
{
	const struct sm_series_failure *a = *(const struct sm_series_failure *const *)pa;
	const struct sm_series_failure *b = *(const struct sm_series_failure *const *)pb;

	return cmp_str_null_first(a->series.object ? a->series.object->name : NULL,
	                          b->series.object ? b->series.object->name : NULL);
}

static void build_items(struct builder *b, const struct sm_series **match, size_t n_match)
{
	struct sm_query_item *it = NULL;

	switch (b->q->kind) {
	case SM_QUERY_EXTERNAL:
		for (size_t i = 0; i < n_match; i++)
			(void)item_add(b, match[i]);
		for (size_t i = 0; i < b->n_fails; i++)
			(void)fallback_add(b, &b->fails[i]->series);
		/* Never succeeded: no series known, the fallback stands for the metric. */
		if (b->fallback && !b->snap->has_succeeded)
			(void)item_add(b, NULL);
		break;
	case SM_QUERY_OBJECT:
		/* A failed part makes the object's sum unknown. */
		if (b->n_fails > 0) {
			(void)fallback_add(b, &b->fails[0]->series);
			break;
		}
		for (size_t i = 0; i < n_match; i++) {
			if (it)
				item_merge(b, it, match[i]);
			else
				it = item_add(b, match[i]);
		}
		if (!it && b->fallback && !b->snap->has_succeeded)
			(void)item_add(b, NULL);
		break;
	case SM_QUERY_OBJECTS:
		/* match holds no object of a failure (drop_failed_objects). */
		if (n_match > 1)
			qsort(match, n_match, sizeof(*match), cmp_series_object);
		for (size_t i = 0; i < n_match; i++) {
			if (it && strcmp(it->object.name, match[i]->object->name) == 0)
				item_merge(b, it, match[i]);
			else
				it = item_add(b, match[i]);
		}
		if (b->n_fails > 1)
			qsort(b->fails, b->n_fails, sizeof(*b->fails), cmp_failure_object);
		/* A failure with no object names none to answer for. */
		for (size_t i = 0; i < b->n_fails; i++)
			if (b->fails[i]->series.object &&
			    (i == 0 || cmp_failure_object(&b->fails[i - 1], &b->fails[i]) != 0))
				(void)fallback_add(b, &b->fails[i]->series);
		break;
	case SM_QUERY_NAMESPACE:
		if (b->n_fails > 0) {
			(void)fallback_add(b, NULL);
			break;
		}
		it = item_add(b, NULL);
		if (!b->fallback)
			for (size_t i = 0; i < n_match; i++)
				item_merge(b, it, match[i]);
		break;
	case SM_QUERY_KIND_MAX:
		break;
	}
}

static size_t str_size(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

static const char *copy_str(char **pos, const char *s)
{
	char *out = *pos;
	size_t len = str_size(s);

	if (!s)
		return NULL;
	memcpy(out, s, len);
	*pos += len;
	return out;
}

static bool query_is_valid(const struct sm_query *q)
{
	if (!q->metric || !*q->metric)
		return false;
	switch (q->kind) {
	case SM_QUERY_EXTERNAL:
	case SM_QUERY_NAMESPACE:
		return q->namespace != NULL;
	case SM_QUERY_OBJECT:
		return q->resource && q->name;
	case SM_QUERY_OBJECTS:
		return q->resource != NULL;
	case SM_QUERY_KIND_MAX:
		break;
	}
	return false;
}

/* Makes the series that zeros stand for in storage behind the items (zs, zl, zo, then their
 * strings at *pos), and appends them to match (room made by the caller). */
static void zeros_to_series(const struct sm_metric_def *def, const struct sm_snapshot *snap,
                            const struct sm_query_zero *z, size_t n, struct sm_series *zs,
                            struct sm_label *zl, struct sm_object_ref *zo, char **pos,
                            const struct sm_series **match, size_t *n_match)
{
	for (size_t i = 0; i < n; i++) {
		zl[i] =
		    (struct sm_label){.name = def->zero_label, .value = copy_str(pos, z[i].value)};
		zo[i] = (struct sm_object_ref){.resource = def->resource,
		                               .name = copy_str(pos, z[i].object_name)};
		zs[i] = (struct sm_series){
		    .metric = def->name,
		    .labels = z[i].value ? &zl[i] : NULL,
		    .n_labels = z[i].value ? 1 : 0,
		    .timestamp_wall_ms = snap->last_success_wall_ms,
		    .object = z[i].object_name ? &zo[i] : NULL,
		};
		match[(*n_match)++] = &zs[i];
	}
}

int sm_query_run(const struct sm_store *st, const struct sm_query *query,
                 struct sm_query_result *ret, struct sm_error *reterr)
{
	const struct sm_config *cfg = sm_store_config(st);
	const struct sm_source_config *src;
	const struct sm_metric_def *def;
	struct sm_snapshot *snap = NULL;
	struct sm_snapshot **held = NULL;
	const struct sm_series **match = NULL;
	const struct sm_series_failure **fails = NULL;
	struct sm_query_item *items = NULL;
	struct sm_query_zero *zeros = NULL;
	struct sm_series *zs;
	struct sm_label *zl;
	struct sm_object_ref *zo;
	struct builder b = {0};
	struct sm_query q;
	size_t idx = 0, n_match = 0, n_fails = 0, n_zeros = 0, n_chars, cap;
	char *pos;
	int r;

	if (!st || !query || !ret || !query_is_valid(query)) {
		sm_error_set(reterr, "invalid metrics query");
		r = -EINVAL;
		goto out;
	}
	q = *query;
	/* Root-scoped namespaces/NAME/METRIC is the per-namespace total of NAME. */
	if (q.kind == SM_QUERY_OBJECT && strcmp(q.resource, "namespaces") == 0) {
		q.kind = SM_QUERY_NAMESPACE;
		q.namespace = q.name;
		q.resource = NULL;
		q.name = NULL;
	}

	def = find_def(cfg, q.metric, q.namespace, &idx);
	if (!def) {
		r = not_found(&q, reterr);
		goto out;
	}
	src = &cfg->sources[idx];
	if ((q.kind == SM_QUERY_OBJECT || q.kind == SM_QUERY_OBJECTS) &&
	    !def_serves_resource(def, q.resource)) {
		r = not_found(&q, reterr);
		goto out;
	}

	snap = sm_store_acquire(st, idx);
	if ((q.kind == SM_QUERY_EXTERNAL || q.kind == SM_QUERY_NAMESPACE) &&
	    !metric_visible(src, snap, q.metric, q.namespace)) {
		r = not_found(&q, reterr);
		goto out;
	}
	if (sm_snapshot_is_stale(snap, q.now_mono_ms)) {
		if (!def->fallback.set) {
			r = unavailable(&q, snap, reterr);
			goto out;
		}
		b.fallback = true;
		b.now_wall_ms = q.now_wall_ms ? q.now_wall_ms : sm_time_wall_ms();
	}

	r = collect(&q, src, def, snap, &match, &n_match);
	if (r < 0)
		goto out;
	/* Stale: everything is the fallback already; fresh: what could not be read. */
	if (!b.fallback) {
		r = collect_failures(&q, src, def, snap, &fails, &n_fails);
		if (r < 0)
			goto out;
	}
	if (n_fails > 0) {
		if (q.kind == SM_QUERY_OBJECTS)
			drop_failed_objects(match, &n_match, fails, n_fails);
		if (!def->fallback.set && failures_refuse(&q, n_match)) {
			r = unreadable(&q, snap, fails, n_fails, reterr);
			goto out;
		}
		if (def->fallback.set) {
			b.fails = fails;
			b.n_fails = n_fails;
			b.now_wall_ms = q.now_wall_ms ? q.now_wall_ms : sm_time_wall_ms();
		}
	} else if (!b.fallback && def->zero_label) {
		r = sm_query_find_zeros(&q, src, def, snap, n_match, &zeros, &n_zeros);
		if (r < 0)
			goto out;
	}

	/* At most one item per matching series and failure, plus one synthesised item; then the
	 * series the empty queues stand for, and the copies of strings. */
	cap = n_match + n_zeros + n_fails + 1;
	n_chars = str_size(q.namespace) + str_size(q.resource) + str_size(q.name);
	for (size_t i = 0; i < n_zeros; i++)
		n_chars += str_size(zeros[i].value) + str_size(zeros[i].object_name);
	items = malloc(cap * sizeof(*items) + n_zeros * (sizeof(*zs) + sizeof(*zl) + sizeof(*zo)) +
	               n_chars);
	held = malloc(sizeof(*held));
	if (!items || !held) {
		r = -ENOMEM;
		goto out;
	}
	if (n_zeros > 0) {
		const struct sm_series **m = realloc(match, (n_match + n_zeros) * sizeof(*m));

		if (!m) {
			r = -ENOMEM;
			goto out;
		}
		match = m;
	}
	zs = (struct sm_series *)(items + cap);
	zl = (struct sm_label *)(zs + n_zeros);
	zo = (struct sm_object_ref *)(zl + n_zeros);
	pos = (char *)(zo + n_zeros);
	b.ns = copy_str(&pos, q.namespace);
	b.resource = copy_str(&pos, q.resource);
	b.name = copy_str(&pos, q.name);
	zeros_to_series(def, snap, zeros, n_zeros, zs, zl, zo, &pos, match, &n_match);

	b.q = &q;
	b.def = def;
	b.snap = snap;
	b.items = items;
	build_items(&b, match, n_match);

	if (q.kind == SM_QUERY_OBJECT && b.n_items == 0) {
		r = not_found(&q, reterr);
		goto out;
	}
	qsort(items, b.n_items, sizeof(*items), cmp_items);

	held[0] = snap;
	*ret = (struct sm_query_result){
	    .items = items,
	    .n_items = b.n_items,
	    .held = held,
	    .n_held = 1,
	    .source = src->name,
	};
	snap = NULL;
	items = NULL;
	held = NULL;
	r = 0;

out:
	free(match);
	free(fails);
	sm_query_zeros_free(zeros, n_zeros);
	free(items);
	free(held);
	sm_snapshot_unref(snap);
	return r;
}

void sm_query_result_done(struct sm_query_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_held; i++)
		sm_snapshot_unref(r->held[i]);
	free(r->held);
	free(r->items);
	*r = (struct sm_query_result){0};
}

void sm_query_for_each_metric(const struct sm_store *st, sm_query_metric_fn fn, void *userdata)
{
	const struct sm_config *cfg = sm_store_config(st);

	if (!cfg || !fn)
		return;
	for (size_t i = 0; i < cfg->n_sources; i++)
		for (size_t j = 0; j < cfg->sources[i].n_metrics; j++)
			fn(&cfg->sources[i].metrics[j], userdata);
}
