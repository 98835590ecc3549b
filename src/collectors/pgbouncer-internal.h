/* SPDX-License-Identifier: MIT */
#ifndef SM_PGBOUNCER_INTERNAL_H
#define SM_PGBOUNCER_INTERNAL_H

/* The PgBouncer collector's pure part, for its unit test: the admin console's answers as
 * series. Only pgbouncer.c and tests/unit/test-pgbouncer.c include it. */

#include <libpq-fe.h>

struct sm_batch;
struct sm_error;

/* The series of each pool in SHOW POOLS (labels database and user; the admin console's own
 * "pgbouncer" database left out), with pool size and utilisation where SHOW DATABASES gives
 * the pool's size. Columns are read by name and count as 0 when absent. 0; -EPROTO with
 * reterr when SHOW POOLS has no database or user column; -ENOMEM or -EINVAL from the batch. */
int sm_pgbouncer_pools_to_series(const PGresult *pools, const PGresult *dbs, struct sm_batch *batch,
                                 struct sm_error *reterr);

#endif
