/* SPDX-License-Identifier: MIT */
#ifndef SM_POSTGRES_INTERNAL_H
#define SM_POSTGRES_INTERNAL_H

/* The PostgreSQL collector's pure part, for its unit test: a custom query's rows as series.
 * Only postgres.c and tests/unit/test-postgres.c include it. */

#include <libpq-fe.h>
#include <stdint.h>

struct sm_batch;
struct sm_error;

#define SM_POSTGRES_MAX_LABEL_COLUMNS 16

/* The rows of metric's query into batch: label columns first (their names the label names),
 * the value last; one row of one column is a series without labels. A problem with the rows
 * (none, too many, a bad column name, a NULL or non-numeric value) is appended to
 * series_err and served as a failure (series.h) with the same text. 0, or -ENOMEM (and
 * -EINVAL for what the batch refuses). */
int sm_postgres_rows_to_series(const PGresult *res, const char *metric, uint32_t max_series,
                               struct sm_batch *batch, struct sm_error *series_err);

#endif
