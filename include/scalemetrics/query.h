/* SPDX-License-Identifier: MIT */
#ifndef SM_QUERY_H
#define SM_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"
#include "scalemetrics/series.h"

struct sm_selector;
struct sm_store;
struct sm_snapshot;

/* Resolves a parsed metrics request against the store: which series answer it, whether
 * they are fresh, and what value to serve (the series value or a configured fallback). */

enum sm_query_kind {
	SM_QUERY_EXTERNAL,  /* external: namespace + metric (+ metric selector) */
	SM_QUERY_OBJECT,    /* custom: one named object: resource/name/metric */
	SM_QUERY_OBJECTS,   /* custom: resource/ * /metric with an object label selector */
	SM_QUERY_NAMESPACE, /* custom: namespaces/NS/metrics/METRIC (per-namespace total) */
	SM_QUERY_KIND_MAX,
};

struct sm_query {
	enum sm_query_kind kind;
	const char *namespace; /* NULL: root-scoped (custom only) */
	const char *resource;  /* custom: "pods", "deployments.apps", "nodes"; NULL otherwise */
	const char *name;      /* SM_QUERY_OBJECT only */
	const char *metric;
	const struct sm_selector *object_selector; /* SM_QUERY_OBJECTS; NULL = everything */
	const struct sm_selector *metric_selector; /* NULL = everything */
	int64_t now_mono_ms;
	int64_t now_wall_ms; /* stamps fallback items; 0: read the clock */
};

struct sm_query_item {
	const char *metric;
	const struct sm_label *labels; /* metric labels */
	size_t n_labels;
	struct sm_object_ref object; /* described object (custom); namespace filled in */
	double value;
	int64_t timestamp_wall_ms;
	uint32_t window_s;
	bool is_fallback; /* value is the configured fallback (source stale) */
};

/* Items borrow strings from snapshots that the result holds references to. */
struct sm_query_result {
	struct sm_query_item *items;
	size_t n_items;
	struct sm_snapshot **held;
	size_t n_held;
	const char *source; /* the source that answered (first one), for logs/metrics */
};

/* Returns 0 (items may be empty for EXTERNAL/OBJECTS selectors matching nothing),
 * -ENOENT: metric unknown (or unknown for that resource / object, or not visible in that
 *          namespace); reterr says which, in the style of the Go library
 *          ("the server could not find the metric m for pods").
 * -EAGAIN: the answering source is stale and the metric has no fallback; reterr names the
 *          source and its last error.
 * -ENOMEM. */
int sm_query_run(const struct sm_store *st, const struct sm_query *q, struct sm_query_result *ret,
                 struct sm_error *reterr) SM_MUSTCHECK;
void sm_query_result_done(struct sm_query_result *r);

/* Every metric the store can answer, for discovery. Callback per (metric def, source): a
 * name that several sources share (in disjoint namespaces) comes once per source. */
struct sm_metric_def;
typedef void (*sm_query_metric_fn)(const struct sm_metric_def *def, void *userdata);
void sm_query_for_each_metric(const struct sm_store *st, sm_query_metric_fn fn, void *userdata);

#endif
