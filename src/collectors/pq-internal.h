/* SPDX-License-Identifier: MIT */
#ifndef SM_PQ_INTERNAL_H
#define SM_PQ_INTERNAL_H

/* Non-blocking libpq, shared by the postgresql and pgbouncer collectors: every call is
 * bounded by a deadline, so a hung database cannot stall a collector thread. */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "scalemetrics/error.h"

struct sm_config_parser;
struct sm_config_node;

/* One reused connection per source. */
struct sm_pq_conn {
	PGconn *conn;
	char *dsn; /* owned; a secret: never logged */
};

/* Whether libpq can parse dsn (key=value or URI): 0, -EINVAL with libpq's message in reterr,
 * its quoted pieces of the DSN redacted (keywords kept, a URI without its userinfo, anything
 * else "***"), or -ENOMEM. A URI whose user name or password holds an unescaped '/' or '?'
 * is refused too (libpq would read the rest of the password as a host, port or database
 * and quote it in its errors). */
int sm_pq_dsn_check(const char *dsn, struct sm_error *reterr);

/* Connects when not connected (or the connection went bad), within timeout_ms.
 * 0, or -ECONNREFUSED / -ETIMEDOUT with libpq's message verbatim in reterr; -EINVAL when the
 * DSN does not parse (sm_pq_dsn_check). */
int sm_pq_conn_ensure(struct sm_pq_conn *c, int64_t timeout_ms, struct sm_error *reterr);

/* Runs one statement and returns its last result (caller PQclear()s it), within timeout_ms.
 * simple: the simple query protocol (PgBouncer's admin console needs it); otherwise the
 * extended protocol with no parameters, which refuses several statements in one string.
 * Returns 0 with *ret set when the server answered (check PQresultStatus: a SQL error is a
 * result, not a connection failure); -ETIMEDOUT (query cancelled, connection dropped) or
 * -EIO (connection lost, dropped) with reterr filled. */
int sm_pq_conn_exec(struct sm_pq_conn *c, const char *sql, bool simple, int64_t timeout_ms,
                    PGresult **ret, struct sm_error *reterr);

/* For a collector round: reads the DSN on first use (sm_pq_dsn_read), then sm_pq_conn_ensure. */
int sm_pq_conn_open(struct sm_pq_conn *c, const char *dsn_env, const char *dsn_file,
                    int64_t timeout_ms, struct sm_error *reterr);

void sm_pq_conn_close(struct sm_pq_conn *c);
/* Closes and forgets the DSN (a collector's destroy). */
void sm_pq_conn_done(struct sm_pq_conn *c);

/* Reads a DSN from the environment variable or the file (one of them set), trailing newline
 * stripped. -ENOENT/-EACCES/-EINVAL with the reason (never the DSN) in reterr. */
int sm_pq_dsn_read(const char *dsn_env, const char *dsn_file, char **ret, struct sm_error *reterr);

/* Config-time check shared by both collectors: exactly one of dsn_env / dsn_file is set, and
 * the env variable exists or the file is readable. Reports at node. */
int sm_pq_config_check_dsn(struct sm_config_parser *p, const struct sm_config_node *node,
                           const char *dsn_env, const char *dsn_file);

#endif
