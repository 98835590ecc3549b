/* SPDX-License-Identifier: MIT */
/* The HTTPS server: libmicrohttpd (GnuTLS inside) with the limits from the config, and every
 * request handed to the pure API layer (sm_api_handle), or to an upstream adapter
 * (upstream.h) when the API marks it for forwarding.
 *
 * Design:
 * - Threads: MHD's internal pool (POOL_THREADS) runs handshakes and requests; one accept
 *   thread hands it the connections (server-listen.c); one watcher thread (only with
 *   cert_file/key_file) reloads the serving certificate (server-tls.c); one reaper closes
 *   connections too slow to send a request (server-conns.c); auth workers make the access
 *   checks that need the API server (server-auth.c). main() starts and stops the server.
 * - Requests: the URI log callback runs once per request, before MHD percent-decodes
 *   anything, and keeps the raw request target (the API layer decodes path and query
 *   itself); the completion callback frees it. A counter of requests in flight lets
 *   stop() drain: stop accepting, wait for those requests to finish (bounded), then close
 *   the remaining (idle keep-alive) connections.
 * - Access log: finish() writes it (server-access-log.c).
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "scalemetrics/api.h"
#include "scalemetrics/auth.h"
#include "scalemetrics/authz.h"
#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/forward.h"
#include "scalemetrics/http.h"
#include "scalemetrics/log.h"
#include "scalemetrics/number.h"
#include "scalemetrics/telemetry.h"
#include "scalemetrics/upstream.h"

#include "server-internal.h"

#define LOG_CTX "http"
/* Request targets longer than this get 414 (a Status document). */
#define URL_MAX      8192
#define POOL_THREADS 2u
/* TLS 1.2 and 1.3 only; MHD advertises only http/1.1 and http/1.0 in ALPN, never h2. */
#define HTTPS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* Request line plus headers are limited to max_header_bytes by on_request() (431, a Status
 * document), and to SM_HTTP_AUTH_HEADERS_MAX lines. MHD keeps them in a per-connection memory
 * pool that also holds its header records (56 bytes per line) and the response header, so the
 * pool holds the byte limit (or a URL_MAX request line), SM_HTTP_AUTH_HEADERS_MAX records and
 * 8 KiB more: every request within both limits is answered, and requests somewhat over them
 * still reach on_request() and get a clear answer. Far bigger ones fill the pool and MHD
 * answers 431 itself (an HTML body; 414 if the request line alone is that big). MHD zeroes the
 * whole pool after every request (bench/README.md, profile findings): a smaller
 * max_header_bytes makes that cheaper. */
#define POOL_SIZE(max_header_bytes)                                                                \
	((size_t)((max_header_bytes) > URL_MAX + 1024 ? (max_header_bytes) : URL_MAX + 1024) +     \
	 SM_HTTP_AUTH_HEADERS_MAX * 64 + 8192)
/* Request bodies (no route takes one) are read and dropped up to this size. */
#define BODY_DISCARD_MAX (64 * 1024)
/* How long stop() waits for requests in flight before closing everything. */
#define DRAIN_MAX_MS 10000

/* ---- MHD callbacks ---- */

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[1024];
	size_t n;

	(void)cls;
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	sm_log_info(LOG_CTX, "libmicrohttpd: %s", buf);
}

static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct sm_http_server *s = cls;
	struct sm_http_request *rq;

	(void)conn;
	rq = calloc(1, sizeof(*rq));
	if (!rq)
		return NULL;
	rq->start_mono_ms = sm_time_mono_ms();
	rq->start_mono_us = sm_time_mono_us();
	rq->target_len = strlen(uri);
	if (rq->target_len <= URL_MAX) {
		rq->target = strdup(uri);
		if (!rq->target) {
			free(rq);
			return NULL;
		}
	}
	atomic_fetch_add(&s->in_flight, 1);
	return rq;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct sm_http_server *s = cls;
	struct sm_http_request *rq = *con_cls;

	if (!rq)
		return;
	/* The next request on this connection has connection_timeout to arrive. */
	sm_http_conn_deadline(s, conn, sm_time_mono_ms() + s->conn_timeout_ms);
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		sm_log_debug(LOG_CTX, "request ended before its response was sent (%s)",
		             toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
		             : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN
		                 ? "shutdown"
		                 : "error or closed by client");
	sm_api_response_done(&rq->auth_resp);
	sm_auth_outcome_done(&rq->outcome);
	sm_api_response_done(&rq->fwd_resp);
	free(rq->fwd_ct);
	free(rq->target);
	free(rq);
	*con_cls = NULL;
	atomic_fetch_sub(&s->in_flight, 1);
}

static bool add_header(struct MHD_Response *r, const char *name, const char *value)
{
	return MHD_add_response_header(r, name, value) == MHD_YES;
}

/* Queues resp (taking its body). */
static enum MHD_Result send_response(struct sm_http_server *s, struct MHD_Connection *conn,
                                     struct sm_api_response *resp)
{
	struct MHD_Response *mr;
	enum MHD_Result ret;
	bool ok;

	if (resp->body) {
		mr = MHD_create_response_from_buffer(resp->body_len, resp->body,
		                                     MHD_RESPMEM_MUST_FREE);
		if (mr)
			resp->body = NULL; /* MHD frees it */
	} else {
		mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	if (!mr)
		return MHD_NO; /* out of memory: MHD closes the connection */
	ok = (!resp->content_type ||
	      add_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type)) &&
	     add_header(mr, "X-Content-Type-Options", "nosniff") &&
	     (!resp->content_security_policy ||
	      add_header(mr, "Content-Security-Policy", resp->content_security_policy)) &&
	     /* Every answer is live state (metric values, health, staleness errors). */
	     add_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (ok && atomic_load(&s->draining))
		ok = add_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
	if (!ok) {
		MHD_destroy_response(mr);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, (unsigned int)resp->status, mr);
	MHD_destroy_response(mr);
	return ret;
}

void sm_http_split_target(char *target, const char **ret_path, const char **ret_query)
{
	const char *path = target;
	char *q;

	/* absolute-form (RFC 9112 3.2.2): skip scheme and authority */
	if (strncasecmp(path, "https://", 8) == 0 || strncasecmp(path, "http://", 7) == 0) {
		const char *slash = strchr(strstr(path, "://") + 3, '/');

		path = slash ? slash : "/";
	}
	q = strchr(target, '?');
	if (q) {
		*q = '\0';
		*ret_query = q + 1;
	} else {
		*ret_query = NULL;
	}
	if (q && path > q)
		path = "/"; /* "http://host?x": the '?' was in the authority part */
	*ret_path = path;
}

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
	size_t *n = cls;

	(void)kind;
	*n += strlen(key) + 2 + (value ? strlen(value) : 0) + 2; /* "key: value\r\n" */
	return MHD_YES;
}

/* Bytes of the request line and headers as sent (give or take whitespace). */
static size_t header_bytes(struct MHD_Connection *conn, const struct sm_http_request *rq,
                           const char *method, const char *version)
{
	size_t n = strlen(method) + 1 + rq->target_len + 1 + strlen(version) + 2 + 2;

	(void)MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header_size, &n);
	return n;
}

/* A declared body larger than we read: answer before it arrives. */
static bool body_too_big(struct MHD_Connection *conn)
{
	const char *cl =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t n;

	return cl && sm_number_parse_uint64(cl, &n) == 0 && n > BODY_DISCARD_MAX;
}

/* Sends resp (taking its body) and logs the request. */
static enum MHD_Result finish(struct sm_http_server *s, struct MHD_Connection *conn,
                              struct sm_http_request *rq, const char *method,
                              struct sm_api_response *resp)
{
	const char *path = rq->path ? rq->path : "?";
	enum MHD_Result ret;
	int64_t now, duration_us;
	bool logged = false;

	ret = send_response(s, conn, resp);
	now = sm_time_mono_ms();
	duration_us = sm_time_mono_us() - rq->start_mono_us;
	sm_telemetry_request(s->api ? s->api->telemetry : NULL,
	                     sm_telemetry_group_from_path(rq->path),
	                     sm_telemetry_route_from_name(resp->route), resp->status, duration_us,
	                     resp->n_fallbacks);
	if (resp->reusable)
		sm_telemetry_answer_cache(s->api ? s->api->telemetry : NULL, resp->from_cache);
	/* Refusals are logged whether or not the access log is on. */
	if (s->access_log || resp->status == 401 || resp->status == 403)
		logged = sm_http_log_request(
		    conn, rq, method, resp->status,
		    strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 ? 0 : resp->body_len, duration_us);
	if (!logged) {
		if (resp->status >= 500)
			sm_log_info(LOG_CTX, "%s '%s' %d %s %" PRId64 "ms", method, path,
			            resp->status, resp->reason ? resp->reason : "",
			            now - rq->start_mono_ms);
		else
			sm_log_debug(LOG_CTX, "%s '%s' %d %s %" PRId64 "ms", method, path,
			             resp->status, resp->route ? resp->route : "",
			             now - rq->start_mono_ms);
	}
	sm_api_response_done(resp);
	return ret;
}

static void handle(struct sm_http_server *s, struct MHD_Connection *conn,
                   struct sm_http_request *rq, const char *method, struct sm_api_response *resp)
{
	struct sm_api_request req = {
	    .method = method,
	    .path = rq->path,
	    .query = rq->query,
	    .accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
	    .now_mono_ms = sm_time_mono_ms(),
	    .now_wall_ms = sm_time_wall_ms(),
	};

	(void)sm_api_handle(s->api, &req, resp);
}

/* Under the forward queue's lock, before a worker can see the request. */
static void forward_queued(void *userdata)
{
	struct sm_http_request *rq = userdata;

	rq->fwd = SM_HTTP_FORWARD_PENDING;
	MHD_suspend_connection(rq->conn);
}

/* On a forward worker: the answer is in; MHD calls on_request() again, which sends it. */
static void forward_done(void *userdata, struct sm_api_response *resp, char *content_type)
{
	struct sm_http_request *rq = userdata;

	rq->fwd_resp = *resp;
	*resp = (struct sm_api_response){0};
	rq->fwd_ct = content_type;
	rq->fwd = SM_HTTP_FORWARD_DONE;
	/* After this, the connection (and rq) may go on in MHD's thread. */
	(void)MHD_resume_connection(rq->conn);
}

/* Answers the request into *resp, or hands it to the adapter the API marked it for
 * (forward.h): -EINPROGRESS then, the connection suspended until a forward worker has the
 * answer. A full queue is a 503 at once. */
static int serve(struct sm_http_server *s, struct MHD_Connection *conn, struct sm_http_request *rq,
                 const char *method, struct sm_api_response *resp)
{
	struct sm_upstream_request ur;
	const char *why;
	int r;

	handle(s, conn, rq, method, resp);
	if (!resp->forward || !s->upstream)
		return 0;
	ur = (struct sm_upstream_request){
	    .upstream = resp->forward_to, .path = rq->path, .query = rq->query};
	rq->conn = conn;
	rq->fwd_route = resp->route;
	r = sm_upstream_submit(s->upstream, &ur, forward_queued, forward_done, rq);
	sm_api_response_done(resp);
	if (r == 0)
		return -EINPROGRESS;
	why = r == -EAGAIN      ? "too many forwarded requests are waiting already"
	      : r == -ESHUTDOWN ? "this server is shutting down"
	                        : "out of memory";
	(void)sm_forward_unavailable(s->forward, ur.upstream, why, resp);
	resp->route = rq->fwd_route;
	return 0;
}

/* The connection was resumed with the upstream's answer. */
static enum MHD_Result answer_forwarded(struct sm_http_server *s, struct MHD_Connection *conn,
                                        struct sm_http_request *rq, const char *method)
{
	struct sm_api_response resp = rq->fwd_resp;

	rq->fwd = SM_HTTP_FORWARD_NONE;
	rq->fwd_resp = (struct sm_api_response){0};
	resp.route = rq->fwd_route;
	return finish(s, conn, rq, method, &resp);
}

/* The connection was resumed with the access check's verdict. */
static enum MHD_Result answer_checked(struct sm_http_server *s, struct MHD_Connection *conn,
                                      struct sm_http_request *rq, const char *method)
{
	struct sm_api_response resp = {0};

	rq->auth = SM_HTTP_AUTH_NONE;
	if (rq->auth_ok) {
		if (serve(s, conn, rq, method, &resp) == -EINPROGRESS)
			return MHD_YES;
	} else {
		resp = rq->auth_resp;
		rq->auth_resp = (struct sm_api_response){0};
	}
	return finish(s, conn, rq, method, &resp);
}

static enum MHD_Result answer(struct sm_http_server *s, struct MHD_Connection *conn,
                              struct sm_http_request *rq, const char *method, bool headers_too_big)
{
	struct sm_api_response resp = {0};
	char msg[128];

	rq->answered = true;
	sm_http_conn_deadline(s, conn, 0);
	if (!rq->target) {
		(void)snprintf(msg, sizeof(msg), "the request URI is longer than %d bytes",
		               URL_MAX);
		(void)sm_api_status(414, NULL, msg, &resp);
	} else if (headers_too_big) {
		(void)snprintf(msg, sizeof(msg),
		               "the request line and headers are longer than %zu bytes",
		               s->max_header_bytes);
		(void)sm_api_status(431, NULL, msg, &resp);
	} else {
		int r = 1;

		sm_http_split_target(rq->target, &rq->path, &rq->query);
		if (s->auth && !sm_authz_path_always_allowed(NULL, rq->path))
			r = sm_http_access_check(s, conn, rq, method, &resp);
		if (r == -EINPROGRESS)
			return MHD_YES; /* suspended until an auth worker resumes it */
		if (r > 0 && serve(s, conn, rq, method, &resp) == -EINPROGRESS)
			return MHD_YES; /* suspended until a forward worker resumes it */
	}
	return finish(s, conn, rq, method, &resp);
}

/* MHD calls this once when the headers are in, then once per piece of request body, then
 * once more with nothing. It keeps a connection open only when the response is queued in
 * that last call (queueing earlier makes MHD 0.9.75 close the connection after the
 * response), so a GET is answered on its second call. Bodies are read and dropped, up to
 * BODY_DISCARD_MAX; a bigger declared one is answered at once (and its connection closed),
 * a bigger chunked one closes the connection. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct sm_http_server *s = cls;
	struct sm_http_request *rq = *con_cls;
	struct sm_api_response resp = {0};
	enum MHD_Result ret;

	(void)url;
	(void)upload_data;
	if (!rq) {
		/* The URI log callback ran out of memory. */
		*upload_data_size = 0;
		if (sm_api_status(500, "InternalError", "Internal error occurred: out of memory",
		                  &resp) < 0)
			resp.content_type = NULL;
		ret = send_response(s, conn, &resp);
		sm_api_response_done(&resp);
		return ret;
	}
	if (!rq->headers_seen) {
		rq->headers_seen = true;
		/* Answering now makes MHD close the connection after the response. */
		if (header_bytes(conn, rq, method, version) > s->max_header_bytes)
			return answer(s, conn, rq, method, true);
		if (body_too_big(conn))
			return answer(s, conn, rq, method, false);
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		rq->body_bytes += *upload_data_size;
		*upload_data_size = 0;
		if (rq->body_bytes > BODY_DISCARD_MAX) {
			sm_log_debug(LOG_CTX,
			             "%s request body over %d bytes, closing the connection",
			             method, BODY_DISCARD_MAX);
			return MHD_NO;
		}
		return MHD_YES;
	}
	if (rq->fwd == SM_HTTP_FORWARD_DONE)
		return answer_forwarded(s, conn, rq, method);
	if (rq->auth == SM_HTTP_AUTH_DONE)
		return answer_checked(s, conn, rq, method);
	if (rq->answered)
		return MHD_YES;
	return answer(s, conn, rq, method, false);
}

/* ---- start / stop ---- */

int sm_http_server_start(const struct sm_config *cfg, const struct sm_api_context *api,
                         struct sm_http_server **ret, struct sm_error *reterr)
{
	const struct sm_server_config *sc = &cfg->server;
	const char *listen = sc->listen ? sc->listen : "0.0.0.0:6443";
	struct sm_http_server *s = NULL;
	struct sm_http_listen_addr la;
	pthread_condattr_t ca;
	unsigned int flags;
	unsigned int timeout_s;
	size_t pool_size;
	struct sockaddr_storage bound;
	socklen_t bound_len;
	uint16_t port;
	int r;

	r = sm_http_listen_parse(listen, &la, reterr);
	if (r < 0)
		return r;

	s = calloc(1, sizeof(*s));
	if (!s) {
		sm_error_set(reterr, "out of memory");
		return -ENOMEM;
	}
	s->api = api;
	s->listen_fd = -1;
	atomic_init(&s->acceptor_stop, false);
	atomic_init(&s->current, NULL);
	atomic_init(&s->draining, false);
	atomic_init(&s->in_flight, 0);
	if (pthread_condattr_init(&ca) != 0) {
		r = -ENOMEM;
		sm_error_set(reterr, "out of memory");
		goto out;
	}
	(void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		(void)pthread_condattr_destroy(&ca);
		r = -ENOMEM;
		sm_error_set(reterr, "out of memory");
		goto out;
	}
	if (pthread_cond_init(&s->cond, &ca) != 0) {
		(void)pthread_mutex_destroy(&s->lock);
		(void)pthread_condattr_destroy(&ca);
		r = -ENOMEM;
		sm_error_set(reterr, "out of memory");
		goto out;
	}
	(void)pthread_condattr_destroy(&ca);
	s->sync_init = true;
	if (pthread_mutex_init(&s->conns_lock, NULL) != 0) {
		r = -ENOMEM;
		sm_error_set(reterr, "out of memory");
		goto out;
	}
	s->conns_init = true;
	atomic_init(&s->reaper_stop, false);

	r = sm_http_creds_setup(s, sc, &la, reterr);
	if (r < 0)
		goto out;
	if (sc->auth_mode != SM_AUTH_NONE) {
		r = sm_http_auth_start(s, cfg, reterr);
		if (r < 0)
			goto out;
	}

	timeout_s = sc->connection_timeout_ms <= 1000
	                ? 1u
	                : (unsigned int)((sc->connection_timeout_ms + 999) / 1000);
	s->drain_max_ms =
	    sc->connection_timeout_ms < DRAIN_MAX_MS ? sc->connection_timeout_ms : DRAIN_MAX_MS;
	s->conn_timeout_ms = sc->connection_timeout_ms > 0 ? sc->connection_timeout_ms : 30000;
	pool_size = POOL_SIZE(sc->max_header_bytes);
	s->max_header_bytes = sc->max_header_bytes;
	s->access_log = sc->access_log;
	/* Without a key the server works, without resumption. */
	if (gnutls_session_ticket_key_generate(&s->ticket_key) != GNUTLS_E_SUCCESS) {
		s->ticket_key = (gnutls_datum_t){0};
		sm_log_warn(LOG_CTX, "cannot make a TLS session ticket key: no session resumption");
	}

	if (cfg->forward.n > 0) {
		s->forward = sm_forward_new(&cfg->forward);
		if (!s->forward) {
			r = -ENOMEM;
			sm_error_set(reterr, "out of memory");
			goto out;
		}
		s->api_forward = api ? *api : (struct sm_api_context){0};
		s->api_forward.forward = s->forward;
		s->api = &s->api_forward;
		r = sm_upstream_start(s->forward, s->api, &s->upstream, reterr);
		if (r < 0)
			goto out;
	}

	r = sm_http_listen_open(&la, &s->listen_fd);
	if (r < 0) {
		sm_error_set(reterr, "cannot serve HTTPS on '%s': %s", listen, strerror(-r));
		goto out;
	}
	/* The accept thread adds the connections (see "Accepting" above); MHD_USE_ITC lets
	 * it wake the pool thread that gets one. */
	flags = MHD_USE_TLS | MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
	        MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET;
	if (s->auth || s->upstream)
		flags |= MHD_ALLOW_SUSPEND_RESUME;

	errno = 0;
	/* One option and its arguments per line. */
	/* clang-format off */
	s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
		MHD_OPTION_THREAD_POOL_SIZE, POOL_THREADS,
		MHD_OPTION_HTTPS_CERT_CALLBACK, sm_http_creds_retrieve,
		MHD_OPTION_HTTPS_PRIORITIES, HTTPS_PRIORITIES,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)sc->max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)sc->max_connections_per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool_size,
		MHD_OPTION_NOTIFY_CONNECTION, sm_http_on_connection, s,
		MHD_OPTION_URI_LOG_CALLBACK, on_request_line, s,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_END);
	/* clang-format on */
	if (!s->daemon) {
		r = errno ? -errno : -EIO;
		sm_error_set(reterr, "cannot serve HTTPS on '%s'%s%s", listen,
		             errno ? ": " : " (see the libmicrohttpd messages above)",
		             errno ? strerror(errno) : "");
		goto out;
	}
	bound_len = sizeof(bound);
	if (getsockname(s->listen_fd, (struct sockaddr *)&bound, &bound_len) == 0)
		port =
		    ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
		                                      : ((struct sockaddr_in *)&bound)->sin_port);
	else
		port = ntohs(la.v6 ? ((struct sockaddr_in6 *)&la.ss)->sin6_port
		                   : ((struct sockaddr_in *)&la.ss)->sin_port);
	sm_http_address_format(&la.ss, port, s->address, sizeof(s->address));
	r = sm_http_accept_start(s, reterr);
	if (r < 0)
		goto out;

	r = sm_http_reaper_start(s, reterr);
	if (r < 0)
		goto out;
	if (s->cert_file) {
		r = sm_http_watcher_start(s, reterr);
		if (r < 0)
			goto out;
	}
	sm_log_info(LOG_CTX, "listening on https://%s", s->address);
	*ret = s;
	s = NULL;
	r = 0;
out:
	sm_http_server_stop(s);
	return r;
}

static void drain(struct sm_http_server *s)
{
	int64_t deadline = sm_time_mono_ms() + s->drain_max_ms;
	const struct timespec tick = {.tv_nsec = 10 * 1000000L};
	uint_fast64_t n;

	for (;;) {
		n = atomic_load(&s->in_flight);
		if (n == 0)
			return;
		if (sm_time_mono_ms() >= deadline) {
			sm_log_warn(LOG_CTX,
			            "%" PRIuFAST64 " requests still running after %" PRId64
			            "ms, closing their connections",
			            n, s->drain_max_ms);
			return;
		}
		(void)nanosleep(&tick, NULL);
	}
}

void sm_http_server_stop(struct sm_http_server *s)
{
	if (!s)
		return;
	if (s->daemon) {
		atomic_store(&s->draining, true);
		sm_http_accept_stop(s);
		drain(s);
		/* Every queued access check resumes its connection; MHD must not stop with
		 * suspended connections. */
		sm_http_auth_workers_stop(s);
		/* Likewise every forwarded request, answered 503 if it is still waiting. HTTP
		 * threads may still call serve() (keep-alive, resumed connections) until
		 * MHD_stop_daemon: s->upstream stays valid, refusing with -ESHUTDOWN, and is
		 * freed below. */
		sm_upstream_stop(s->upstream);
		sm_http_reaper_stop(s);
		MHD_stop_daemon(s->daemon);
		s->daemon = NULL;
		sm_log_info(LOG_CTX, "stopped serving on https://%s", s->address);
	}
	sm_http_accept_stop(s);
	sm_http_auth_workers_stop(s);
	sm_http_auth_done(s);
	sm_upstream_free(s->upstream);
	s->upstream = NULL;
	sm_forward_free(s->forward);
	sm_http_watcher_stop(s);
	if (s->sync_init) {
		(void)pthread_cond_destroy(&s->cond);
		(void)pthread_mutex_destroy(&s->lock);
	}
	if (s->conns_init)
		(void)pthread_mutex_destroy(&s->conns_lock);
	sm_http_creds_free_all(s);
	if (s->ticket_key.data) {
		gnutls_memset(s->ticket_key.data, 0, s->ticket_key.size);
		gnutls_free(s->ticket_key.data);
	}
	free(s->cert_file);
	free(s->key_file);
	free(s);
}
