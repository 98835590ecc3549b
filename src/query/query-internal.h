/* SPDX-License-Identifier: MIT */
/* Shared between query.c (answering) and query-zeros.c (empty queues), and reachable from
 * tests/unit; nothing outside src/query/ includes it. */
#ifndef SM_QUERY_INTERNAL_H
#define SM_QUERY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "scalemetrics/config.h"
#include "scalemetrics/query.h"
#include "scalemetrics/series.h"
#include "scalemetrics/store.h"

/* Does series s answer the (normalised) query, selectors included? labels_partial: s's labels
 * are known only in part (a failure, series.h). */
bool sm_query_series_matches(const struct sm_query *q, const struct sm_source_config *src,
                             const struct sm_metric_def *def, const struct sm_series *s,
                             bool labels_partial);

/* A value of the zero label that answers 0, and the object it is served on. */
struct sm_query_zero {
	char *value;       /* NULL: none (an object template without placeholder) */
	char *object_name; /* NULL: no object (external) */
};

/* The empty queues that answer q (none found: *ret NULL). Called while the source is fresh,
 * with no failure answering q; n_match: the series that do. 0 or -ENOMEM. */
int sm_query_find_zeros(const struct sm_query *q, const struct sm_source_config *src,
                        const struct sm_metric_def *def, const struct sm_snapshot *snap,
                        size_t n_match, struct sm_query_zero **ret, size_t *ret_n);
void sm_query_zeros_free(struct sm_query_zero *z, size_t n);

#endif
