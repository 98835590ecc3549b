/* SPDX-License-Identifier: MIT */
/* The access log (server.access_log): one line per answered request but the probes, with the
 * identity the access check found (struct sm_auth_outcome, kept in the request until it
 * completes). A 401 or 403 from the access check is written even when the access log is off:
 * it is the only record of the refusal. Off, the cost is one test (in finish(), server.c). */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "scalemetrics/auth.h"
#include "scalemetrics/authz.h"
#include "scalemetrics/log.h"

#include "server-internal.h"

#define LOG_CTX "http"

/* Query parameters whose values the access log hides. No route takes a credential, so one in
 * a query is a client's mistake, and it must not reach the logs. Compared as lower-case
 * substrings of the parameter name. */
static const char *const secret_params[] = {"auth", "key", "pass", "secret", "sig", "token"};

static bool secret_param(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(secret_params) / sizeof(secret_params[0]); i++) {
		size_t n = strlen(secret_params[i]);

		for (size_t at = 0; at + n <= len; at++)
			if (strncasecmp(name + at, secret_params[i], n) == 0)
				return true;
	}
	return false;
}

char *sm_http_shown_target(const char *path, const char *query)
{
	size_t plen = strlen(path);
	size_t qlen = query ? strlen(query) : 0;
	/* A hidden parameter ("k=" at least, with its '&' 3 bytes) grows by 3 bytes at most, so
	 * the query at most doubles. */
	char *buf = malloc(plen + 1 + 2 * qlen + 4);
	char *o;

	if (!buf)
		return NULL;
	memcpy(buf, path, plen);
	o = buf + plen;
	if (query) {
		const char *p = query;

		*o++ = '?';
		for (;;) {
			size_t len = strcspn(p, "&");
			const char *eq = memchr(p, '=', len);

			if (eq && secret_param(p, (size_t)(eq - p))) {
				memcpy(o, p, (size_t)(eq - p) + 1);
				o += eq - p + 1;
				memcpy(o, "***", 3);
				o += 3;
			} else {
				memcpy(o, p, len);
				o += len;
			}
			if (p[len] == '\0')
				break;
			*o++ = '&';
			p += len + 1;
		}
	}
	*o = '\0';
	return buf;
}

bool sm_http_log_request(struct MHD_Connection *conn, struct sm_http_request *rq,
                         const char *method, int status, size_t bytes, int64_t duration_us)
{
	const struct sm_auth_outcome *o = &rq->outcome;
	const union MHD_ConnectionInfo *info;
	const char *path = rq->path, *query = rq->query;
	char *target = NULL;
	char remote[INET6_ADDRSTRLEN + 16] = "";

	if (SM_LOG_INFO > sm_log_level_current)
		return true; /* below info, finish() has nothing to write either */
	/* A request refused for its size (431) was not split yet; nothing reads target after
	 * this. */
	if (!path && rq->target)
		sm_http_split_target(rq->target, &path, &query);
	if (path && sm_authz_path_always_allowed(NULL, path))
		return false;
	if (path)
		target = sm_http_shown_target(path, query);
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (info && info->client_addr) {
		const struct sockaddr_storage *ss =
		    (const struct sockaddr_storage *)info->client_addr;
		uint16_t port =
		    ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
		                                    : ((const struct sockaddr_in *)ss)->sin_port);

		sm_http_address_format(ss, port, remote, sizeof(remote));
	}
	{
		const struct sm_log_field fields[] = {
		    {.key = "method", .type = SM_LOG_FIELD_STRING, .str = method},
		    {.key = "path", .type = SM_LOG_FIELD_STRING, .str = target ? target : path},
		    {.key = "status", .type = SM_LOG_FIELD_INT, .num = status},
		    {.key = "bytes", .type = SM_LOG_FIELD_INT, .num = (int64_t)bytes},
		    {.key = "duration_ms", .type = SM_LOG_FIELD_MILLIS, .num = duration_us},
		    {.key = "auth",
		     .type = SM_LOG_FIELD_STRING,
		     .str = sm_auth_method_to_string(o->method)},
		    {.key = "user", .type = SM_LOG_FIELD_STRING, .str = o->user.name},
		    {.key = "groups",
		     .type = SM_LOG_FIELD_STRV,
		     .strv = (const char *const *)o->user.groups.v,
		     .n_strv = o->user.groups.n},
		    {.key = "reason", .type = SM_LOG_FIELD_STRING, .str = o->reason},
		    {.key = "remote",
		     .type = SM_LOG_FIELD_STRING,
		     .str = remote[0] ? remote : NULL},
		    {.key = "user_agent",
		     .type = SM_LOG_FIELD_STRING,
		     .str = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                        MHD_HTTP_HEADER_USER_AGENT)},
		};

		sm_log_fields(SM_LOG_INFO, LOG_CTX, "request", fields,
		              sizeof(fields) / sizeof(fields[0]));
	}
	free(target);
	return true;
}
