/* SPDX-License-Identifier: MIT */
/* Deadline-bounded libpq calls for the PostgreSQL and PgBouncer collectors. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/file.h"

#include "pq-internal.h"

#define DSN_MAX_BYTES 8192

static void set_pq_error(struct sm_error *e, const char *what, PGconn *conn)
{
	const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
	size_t n = strlen(msg);

	/* libpq messages end in a newline; keep them on one log line. */
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	sm_error_set(e, "%s: %.*s", what, (int)n, msg);
}

/* A known conninfo keyword ("password", "host", ...), or the "=" or "]" libpq looked for: safe
 * to show. */
static bool is_keyword(const PQconninfoOption *opts, const char *s, size_t n)
{
	if (n == 1 && (s[0] == '=' || s[0] == ']'))
		return true;
	for (const PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strlen(o->keyword) == n && strncmp(o->keyword, s, n) == 0)
			return true;
	return false;
}

/* libpq's parse errors quote pieces of the DSN ('invalid percent-encoded token: "pa%zz"', the
 * whole URI with its password): each quoted piece is kept only when it is a keyword, a URI
 * loses its userinfo, anything else becomes "***". */
static void redact_parse_error(const char *msg, char *buf, size_t len)
{
	PQconninfoOption *opts = PQconndefaults();
	size_t used = 0;

	buf[0] = '\0';
	while (*msg && used + 1 < len) {
		const char *q = strchr(msg, '"');
		const char *end;
		char piece[1024];
		size_t n;
		int k;

		if (!q) {
			(void)snprintf(buf + used, len - used, "%s", msg);
			break;
		}
		end = strchr(q + 1, '"');
		n = end ? (size_t)(end - q - 1) : strlen(q + 1);
		if (is_keyword(opts, q + 1, n)) {
			(void)snprintf(piece, sizeof(piece), "%.*s", (int)n, q + 1);
		} else if (n < sizeof(piece) && strstr(q + 1, "://") &&
		           strstr(q + 1, "://") < q + 1 + n) {
			char uri[sizeof(piece)];

			(void)snprintf(uri, sizeof(uri), "%.*s", (int)n, q + 1);
			sm_config_url_redact(uri, piece, sizeof(piece));
		} else {
			(void)snprintf(piece, sizeof(piece), "***");
		}
		k = snprintf(buf + used, len - used, "%.*s\"%s\"", (int)(q - msg), msg, piece);
		if (k < 0)
			break;
		used += (size_t)k;
		if (used >= len) {
			used = len - 1;
			break;
		}
		msg = end ? end + 1 : q + 1 + n;
	}
	PQconninfoFree(opts);
}

/* A URI whose userinfo holds an unescaped '/' or '?': libpq ends the authority there and
 * takes the rest of the password for a host, port or database name, which its errors then
 * quote ("invalid integer value "Ab3" for connection option "port""). */
static bool uri_userinfo_spills(const char *dsn)
{
	const char *p = NULL;
	const char *end;

	if (strncmp(dsn, "postgresql://", 13) == 0)
		p = dsn + 13;
	else if (strncmp(dsn, "postgres://", 11) == 0)
		p = dsn + 11;
	if (!p)
		return false;
	end = p + strcspn(p, "/?");
	return strchr(end, '@') != NULL;
}

int sm_pq_dsn_check(const char *dsn, struct sm_error *reterr)
{
	char *errmsg = NULL;
	PQconninfoOption *parsed;
	char msg[sizeof(reterr->message)];
	size_t n;

	if (uri_userinfo_spills(dsn)) {
		sm_error_set(reterr, "invalid DSN: its user name or password holds a '/' or '?': "
		                     "percent-encode them (%%2F, %%3F)");
		return -EINVAL;
	}
	parsed = PQconninfoParse(dsn, &errmsg);
	if (parsed) {
		PQconninfoFree(parsed);
		return 0;
	}
	if (!errmsg)
		return -ENOMEM;
	redact_parse_error(errmsg, msg, sizeof(msg));
	PQfreemem(errmsg);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	sm_error_set(reterr, "invalid DSN: %s", msg);
	return -EINVAL;
}

/* Waits until the socket is readable or writable; 0, or -ETIMEDOUT. */
static int wait_socket(PGconn *conn, bool for_write, int64_t deadline_ms)
{
	struct pollfd pfd = {.fd = PQsocket(conn), .events = for_write ? POLLOUT : POLLIN};

	for (;;) {
		int64_t left = deadline_ms - sm_time_mono_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)(left > 1000000 ? 1000000 : left));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

int sm_pq_conn_ensure(struct sm_pq_conn *c, int64_t timeout_ms, struct sm_error *reterr)
{
	int64_t deadline = sm_time_mono_ms() + timeout_ms;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int r;

	if (c->conn && PQstatus(c->conn) == CONNECTION_OK)
		return 0;
	sm_pq_conn_close(c);

	/* libpq's own message for a DSN it cannot parse may quote the password. */
	r = sm_pq_dsn_check(c->dsn, reterr);
	if (r < 0)
		return r;
	c->conn = PQconnectStart(c->dsn);
	if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
		set_pq_error(reterr, "connect", c->conn);
		sm_pq_conn_close(c);
		return -ECONNREFUSED;
	}
	for (;;) {
		if (st == PGRES_POLLING_OK)
			break;
		if (st == PGRES_POLLING_FAILED) {
			set_pq_error(reterr, "connect", c->conn);
			sm_pq_conn_close(c);
			return -ECONNREFUSED;
		}
		if (wait_socket(c->conn, st == PGRES_POLLING_WRITING, deadline) < 0) {
			sm_error_set(reterr, "connect: timed out after %lldms",
			             (long long)timeout_ms);
			sm_pq_conn_close(c);
			return -ETIMEDOUT;
		}
		st = PQconnectPoll(c->conn);
	}
	if (PQsetnonblocking(c->conn, 1) != 0) {
		set_pq_error(reterr, "connect", c->conn);
		sm_pq_conn_close(c);
		return -EIO;
	}
	return 0;
}

static void cancel_query(PGconn *conn)
{
	PGcancel *cancel = PQgetCancel(conn);
	char buf[256];

	if (cancel) {
		(void)PQcancel(cancel, buf, sizeof(buf));
		PQfreeCancel(cancel);
	}
}

int sm_pq_conn_exec(struct sm_pq_conn *c, const char *sql, bool simple, int64_t timeout_ms,
                    PGresult **ret, struct sm_error *reterr)
{
	int64_t deadline = sm_time_mono_ms() + timeout_ms;
	PGresult *last = NULL;
	PGresult *res;
	int sent;
	int r;

	sent = simple ? PQsendQuery(c->conn, sql)
	              : PQsendQueryParams(c->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	if (!sent)
		goto lost;
	for (;;) {
		r = PQflush(c->conn);
		if (r == 0)
			break;
		if (r < 0 || wait_socket(c->conn, true, deadline) < 0)
			goto timeout_or_lost;
	}
	for (;;) {
		while (PQisBusy(c->conn)) {
			if (wait_socket(c->conn, false, deadline) < 0)
				goto timeout;
			if (!PQconsumeInput(c->conn))
				goto lost;
		}
		res = PQgetResult(c->conn);
		if (!res)
			break;
		PQclear(last);
		last = res;
	}
	if (!last)
		goto lost;
	*ret = last;
	return 0;

timeout_or_lost:
	if (PQstatus(c->conn) == CONNECTION_BAD)
		goto lost;
timeout:
	PQclear(last);
	cancel_query(c->conn);
	sm_error_set(reterr, "query timed out after %lldms", (long long)timeout_ms);
	sm_pq_conn_close(c);
	return -ETIMEDOUT;
lost:
	PQclear(last);
	set_pq_error(reterr, "query", c->conn);
	sm_pq_conn_close(c);
	return -EIO;
}

int sm_pq_conn_open(struct sm_pq_conn *c, const char *dsn_env, const char *dsn_file,
                    int64_t timeout_ms, struct sm_error *reterr)
{
	if (!c->dsn) {
		int r = sm_pq_dsn_read(dsn_env, dsn_file, &c->dsn, reterr);

		if (r < 0)
			return r;
	}
	return sm_pq_conn_ensure(c, timeout_ms, reterr);
}

void sm_pq_conn_done(struct sm_pq_conn *c)
{
	sm_pq_conn_close(c);
	free(c->dsn);
	c->dsn = NULL;
}

void sm_pq_conn_close(struct sm_pq_conn *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
}

int sm_pq_dsn_read(const char *dsn_env, const char *dsn_file, char **ret, struct sm_error *reterr)
{
	int r = sm_secret_read(dsn_env, dsn_file, DSN_MAX_BYTES, "dsn", ret, reterr);

	if (r == 0 && !*ret) {
		sm_error_set(reterr, "no dsn_env or dsn_file given");
		return -EINVAL;
	}
	return r;
}

int sm_pq_config_check_dsn(struct sm_config_parser *p, const struct sm_config_node *node,
                           const char *dsn_env, const char *dsn_file)
{
	bool has_env = dsn_env && *dsn_env;
	bool has_file = dsn_file && *dsn_file;

	if (has_env == has_file)
		return sm_config_report(p, node, "exactly one of dsn_env or dsn_file is required");
	if (has_file && access(dsn_file, R_OK) != 0)
		return sm_config_report(p, node, "dsn_file '%s' is not readable: %s", dsn_file,
		                        strerror(errno));
	return 0;
}
