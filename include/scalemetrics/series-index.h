/* SPDX-License-Identifier: MIT */
#ifndef SM_SERIES_INDEX_H
#define SM_SERIES_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sm_series;

/* An index over one round's series, built once when the round is published and read by every
 * query of that snapshot: from (metric, label name, label value) and from (metric, object
 * resource, object name) to the series that carry them, so that an answer about one queue or
 * one object does not scan all of a source's series (bench/README.md section 4).
 *
 * Lookups give candidates in ascending series order, each once. They are a superset: keys that
 * share a bucket share a chain, so the caller checks every candidate as if it had scanned.
 * Keys are hashed with hash.h (not keyed): input chosen to collide only makes chains as long as
 * a scan. Immutable once built; lookups from many threads are safe. */
struct sm_series_index;

/* Below this many series the index is not built: a scan costs no more than a lookup. */
#define SM_SERIES_INDEX_MIN 64

/* NULL when n < SM_SERIES_INDEX_MIN, when n does not fit 32 bits, or when memory is short:
 * the caller then scans. The series must outlive the index. */
struct sm_series_index *sm_series_index_build(const struct sm_series *series, size_t n);
void sm_series_index_free(struct sm_series_index *ix);
/* What the index holds, in bytes (0 for NULL). */
size_t sm_series_index_bytes(const struct sm_series_index *ix);

struct sm_series_cursor {
	const struct sm_series_index *ix;
	uint32_t entry;
	uint32_t last;
};

/* Starts a walk over the series that may carry label name=value on metric. */
void sm_series_index_label(const struct sm_series_index *ix, const char *metric, const char *name,
                           const char *value, struct sm_series_cursor *ret);
/* Starts a walk over the series that may be about object resource/name on metric. */
void sm_series_index_object(const struct sm_series_index *ix, const char *metric,
                            const char *resource, const char *name, struct sm_series_cursor *ret);
/* The next candidate's position in the indexed series array; false at the end. */
bool sm_series_cursor_next(struct sm_series_cursor *c, size_t *ret_idx);

#endif
