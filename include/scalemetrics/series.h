/* SPDX-License-Identifier: MIT */
#ifndef SM_SERIES_H
#define SM_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"

/* A series is a metric name plus a label set plus its latest sample. Collectors produce
 * them into a batch; the store publishes a batch as an immutable snapshot. */

struct sm_label {
	const char *name;
	const char *value;
};

/* The Kubernetes object a series describes, for custom metrics. resource is the plural
 * resource with its group for non-core groups ("pods", "deployments.apps", "nodes").
 * namespace NULL means: every namespace in the source's `namespaces`. */
struct sm_object_ref {
	const char *resource;
	const char *name;
	const char *namespace;
};

/* What a collector hands in. All strings are copied. */
struct sm_series_in {
	const char *metric;
	const struct sm_label *labels; /* metric labels (external metricLabels) */
	size_t n_labels;
	double value;
	const struct sm_object_ref *object; /* NULL: not tied to an object */
	const struct sm_label *object_labels; /* e.g. a pod's labels, for labelSelector */
	size_t n_object_labels;
	uint32_t window_s; /* 0: instantaneous */
};

/* A published series. Strings are owned by the snapshot; labels sorted by name,
 * values sanitised to valid Kubernetes label values (CONFIG.md "Label values"). */
struct sm_series {
	const char *metric;
	struct sm_label *labels;
	size_t n_labels;
	double value;
	int64_t timestamp_wall_ms; /* for the API's timestamp */
	bool has_object;
	struct sm_object_ref object;
	struct sm_label *object_labels;
	size_t n_object_labels;
	uint32_t window_s;
};

/* A collector's output for one round, bounded by max_series. */
struct sm_batch;

struct sm_batch *sm_batch_new(size_t max_series);
void sm_batch_free(struct sm_batch *b);
/* Copies in. -E2BIG when max_series is reached (the series is dropped and counted),
 * -EINVAL for an empty metric name or a NaN value, -ENOMEM. */
int sm_batch_add(struct sm_batch *b, const struct sm_series_in *in) SM_MUSTCHECK;
size_t sm_batch_count(const struct sm_batch *b);
size_t sm_batch_dropped(const struct sm_batch *b); /* series refused with -E2BIG */
const struct sm_series *sm_batch_get(const struct sm_batch *b, size_t i);

/* CONFIG.md "Label values": characters outside [A-Za-z0-9._-] become '_', cut to 63
 * characters, then leading and trailing characters that are not [A-Za-z0-9] trimmed, so
 * the result always passes sm_label_value_is_valid() (it may be empty).
 * Writes at most 64 bytes including NUL into out. */
void sm_label_value_sanitize(const char *raw, char out[64]);

#endif
