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
	const struct sm_object_ref *object;   /* NULL: not tied to an object */
	const struct sm_label *object_labels; /* e.g. a pod's labels, for labelSelector */
	size_t n_object_labels;
	uint32_t window_s; /* 0: instantaneous */
};

/* A published series. Strings are owned by the snapshot; labels sorted by name,
 * values sanitised to valid Kubernetes label values (docs/configuration.md "Label values"). 56
 * bytes on 64-bit machines: a snapshot holds one per series and a round builds the next beside it.
 */
#define SM_SERIES_MAX_LABELS UINT16_MAX
struct sm_series {
	const char *metric;
	struct sm_label *labels;
	double value;
	int64_t timestamp_wall_ms;          /* for the API's timestamp */
	const struct sm_object_ref *object; /* NULL: not tied to an object */
	struct sm_label *object_labels;
	uint32_t window_s;
	uint16_t n_labels;
	uint16_t n_object_labels;
};

/* A series a collector is configured to serve but could not read this round (a key of the
 * wrong type, a query that failed, a target that did not answer), named as it would have been
 * served, with the reason. It keeps a query that only it would answer from getting an empty
 * answer (docs/configuration.md "Empty queues and failed series"; query.h). */
struct sm_series_failure {
	struct sm_series series; /* value 0; labels and object as the series would have had */
	const char *error;       /* why, e.g. "key 'queue:emails' is a string, not a list" */
	/* The series would carry labels beyond series.labels (not known: a query that failed
	 * before giving rows, a stream's kind): a selector's requirements on other keys are
	 * taken as met. */
	bool labels_partial;
};

/* A collector's output for one round, bounded by max_series (0 admits none). All strings and
 * label arrays live in one arena owned by the batch (a few allocations per batch, not per
 * string). */
struct sm_batch;

/* Owns a stolen series array and everything its series point to (see sm_batch_steal). */
struct sm_series_arena;

struct sm_batch *sm_batch_new(size_t max_series);
void sm_batch_free(struct sm_batch *b);
/* Copies in. -E2BIG when max_series is reached (the series is dropped and counted),
 * -EINVAL for a NULL or empty metric name, a NaN or infinite value, a NULL label name or
 * value, a label name given twice, more than SM_SERIES_MAX_LABELS labels or object labels, or
 * an object with a NULL resource or name; -ENOMEM.
 * Labels and object labels are sorted by name and their values sanitised
 * (sm_label_value_sanitize). timestamp_wall_ms is left 0 for the store to set. */
int sm_batch_add(struct sm_batch *b, const struct sm_series_in *in) SM_MUSTCHECK;
size_t sm_batch_count(const struct sm_batch *b);
size_t sm_batch_dropped(const struct sm_batch *b); /* series refused with -E2BIG */
const struct sm_series *sm_batch_get(const struct sm_batch *b, size_t i);
/* Counts n series the collector left out because max_series was reached before it read them
 * (keys not read), as if each had been refused with -E2BIG. */
void sm_batch_add_dropped(struct sm_batch *b, size_t n);

/* Records a struct sm_series_failure: in names the series (copied as by sm_batch_add; its value
 * is ignored), error says why (copied). At most max_series failures are kept besides the
 * series: -E2BIG beyond (counted as dropped, since an answer can no longer tell an absent
 * series from one not read); -EINVAL for what sm_batch_add refuses or a NULL error; -ENOMEM. */
int sm_batch_add_failure(struct sm_batch *b, const struct sm_series_in *in, bool labels_partial,
                         const char *error) SM_MUSTCHECK;
size_t sm_batch_failure_count(const struct sm_batch *b);
const struct sm_series_failure *sm_batch_get_failure(const struct sm_batch *b, size_t i);

/* Takes the series out of b without copying, for the store to keep as snapshot contents.
 * Returns the array of *ret_n series (NULL when there are none); the caller may modify it
 * (e.g. set timestamps, reorder), and owns it through *ret_arena, which holds the array, the
 * batch's failures (sm_series_arena_failures) and every string and label array they point
 * to: release all of it with one sm_series_arena_free(*ret_arena), whatever *ret_n is (it is
 * NULL when nothing was ever added). Never fails. b is left empty and reusable; its dropped
 * count is kept. */
struct sm_series *sm_batch_steal(struct sm_batch *b, size_t *ret_n,
                                 struct sm_series_arena **ret_arena);
/* The failures of the batch a (NULL: none), *ret_n of them; they live as long as a. */
const struct sm_series_failure *sm_series_arena_failures(const struct sm_series_arena *a,
                                                         size_t *ret_n);
void sm_series_arena_free(struct sm_series_arena *a);

/* docs/configuration.md "Label values": characters outside [A-Za-z0-9._-] become '_', cut to 63
 * characters, then leading and trailing characters that are not [A-Za-z0-9] trimmed, so
 * the result always passes sm_label_value_is_valid() (it may be empty).
 * Writes at most 64 bytes including NUL into out. */
void sm_label_value_sanitize(const char *raw, char out[64]);

#endif
