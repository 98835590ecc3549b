/* SPDX-License-Identifier: MIT */
/* The HTTPS server: libmicrohttpd (GnuTLS inside) with the serving certificate taken per
 * handshake from a pair that a watcher thread reloads when its files change, the limits from
 * the config, and every request handed to the pure API layer (sm_api_handle).
 *
 * Design:
 * - Threads: MHD's internal pool (POOL_THREADS) runs handshakes and requests; one accept
 *   thread hands it the connections; one watcher thread (only with cert_file/key_file) stats
 *   both files every second. main() starts and stops the server.
 * - Accepting: the listening socket is ours, not MHD's. When every pool thread polls the
 *   listening socket itself, whichever wakes first accepts up to 10 connections in a row, so
 *   a burst of connections lands unevenly (6 and 44 of 50 in bench/README.md, "Fairness
 *   under overload"); each thread then gets the same CPU, and the connections of the
 *   crowded one wait several times longer. The accept thread passes each connection to
 *   MHD_add_connection(), which gives it to pool thread fd % POOL_THREADS (the next one
 *   with room, at the limits): consecutive descriptors alternate, and a closed connection's
 *   descriptor is reused by the next one, on the same thread, so the threads stay even.
 * - Certificates: every handshake calls retrieve_cert(), which reads s->current with one
 *   atomic load. The watcher builds a new struct creds completely, then publishes it with one
 *   atomic store. Retired credentials are never freed before sm_http_server_stop(): a
 *   handshake that loaded the old pointer may still be using it, and rotations are rare
 *   (cert-manager renews every few weeks; re-touched files with an unchanged certificate
 *   do not add credentials), so keeping them costs a few kilobytes per rotation.
 * - Requests: the URI log callback runs once per request, before MHD percent-decodes
 *   anything, and keeps the raw request target (the API layer decodes path and query
 *   itself); the completion callback frees it. A counter of requests in flight lets
 *   stop() drain: stop accepting, wait for those requests to finish (bounded), then close
 *   the remaining (idle keep-alive) connections.
 * - Slow clients: MHD's connection timeout is an idle timeout, which a client trickling a
 *   header line now and then never hits (slowloris). Each connection therefore has a
 *   deadline: its TLS handshake and each request (line, headers, body) must arrive within
 *   connection_timeout of the connection opening or of the previous response. A reaper
 *   thread shuts down the socket of a connection past its deadline; MHD then sees the
 *   connection end and closes it. The connection registry entry lives from MHD's STARTED
 *   to its CLOSED notification, and MHD closes the socket only after CLOSED, so the reaper
 *   (holding the registry lock) never touches a closed or reused descriptor.
 * - Authentication and authorization (server.auth.mode delegated): a client certificate is
 *   requested (not required) on every connection. Before sm_api_handle(), every request but
 *   the health endpoints is checked in MHD's thread with sm_auth_check_cached(), which
 *   decides whatever needs no call to the Kubernetes API (client certificates, tokens and
 *   decisions in the caches: the steady state of an HPA controller's requests). A request
 *   that needs a TokenReview or a SubjectAccessReview is suspended
 *   (MHD_suspend_connection) and handed, with its headers and the TLS peer's certificates,
 *   to a small pool of auth worker threads that run sm_auth_check(); the worker stores the
 *   verdict in the request and resumes the connection, and MHD calls on_request() again,
 *   which answers. A slow API server thus never blocks MHD's threads: health checks and
 *   other connections go on. The header strings and certificates stay valid while the
 *   connection is suspended (they live in the connection's memory pool and TLS session).
 *   stop() drains requests, then lets the workers finish their queue (each job resumes its
 *   connection) before stopping MHD.
 * - Access log (server.access_log): finish() writes one line per answered request but the
 *   probes, with the identity the access check found (struct sm_auth_outcome, kept in the
 *   request until it completes). A 401 or 403 from the access check is written even when the
 *   access log is off: it is the only record of the refusal. Off, the cost is one test.
 */
/* accept4(): a connection's descriptor is close-on-exec from the start. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
#include "scalemetrics/tls.h"
#include "scalemetrics/upstream.h"

#define LOG_CTX "http"
/* Request targets longer than this get 414 (a Status document). */
#define URL_MAX 8192
/* Certificates in the served chain (leaf plus intermediates). */
#define CHAIN_MAX    16
#define POOL_THREADS 2u
/* How long the accept thread pauses after accept() fails (out of descriptors, ...). */
#define ACCEPT_PAUSE_MS 100
/* TLS 1.2 and 1.3 only; MHD advertises only http/1.1 and http/1.0 in ALPN, never h2. */
#define HTTPS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* Request line plus headers are limited to max_header_bytes by on_request() (431, a Status
 * document), and to AUTH_HEADERS_MAX lines. MHD keeps them in a per-connection memory pool
 * that also holds its header records (56 bytes per line) and the response header, so the
 * pool holds the byte limit (or a URL_MAX request line), AUTH_HEADERS_MAX records and 8 KiB
 * more: every request within both limits is answered, and requests somewhat over them still
 * reach on_request() and get a clear answer. Far bigger ones fill the pool and MHD answers
 * 431 itself (an HTML body; 414 if the request line alone is that big). MHD zeroes the whole
 * pool after every request (bench/README.md, profile findings): a smaller max_header_bytes
 * makes that cheaper. */
#define POOL_SIZE(max_header_bytes)                                                                \
	((size_t)((max_header_bytes) > URL_MAX + 1024 ? (max_header_bytes) : URL_MAX + 1024) +     \
	 AUTH_HEADERS_MAX * 64 + 8192)
/* Request headers handed to the authenticator, and peer certificates read. */
#define AUTH_HEADERS_MAX 256
#define PEER_CERTS_MAX   16
#define AUTH_WORKERS     4
/* Request bodies (no route takes one) are read and dropped up to this size. */
#define BODY_DISCARD_MAX  (64 * 1024)
#define WATCH_INTERVAL_MS 1000
#define REAP_INTERVAL_MS  200
/* How long stop() waits for requests in flight before closing everything. */
#define DRAIN_MAX_MS 10000

/* One serving certificate chain and key, as GnuTLS wants them. Immutable once published. */
struct creds {
	gnutls_pcert_st pcerts[CHAIN_MAX];
	unsigned int n_pcerts;
	gnutls_privkey_t key;
	char fingerprint[96];
	struct creds *older; /* every credential ever published, newest first */
};

/* What identifies a file's content without reading it (stat follows symlinks, so a
 * Kubernetes secret volume swapping its ..data link shows up as a new inode). */
struct file_id {
	bool present;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
	struct timespec ctim;
};

/* One connection, from MHD's STARTED notification to its CLOSED one (the socket context). */
struct conn {
	struct sm_http_server *s;
	int fd;
	int64_t deadline_ms; /* 0: none (a request is being answered) */
	bool shut;
	struct conn *prev, *next;
};

enum auth_state {
	AUTH_NONE,    /* not asked (yet), or answered */
	AUTH_PENDING, /* with an auth worker; the connection is suspended */
	AUTH_DONE,    /* verdict in auth_ok / auth_resp, to be answered */
	AUTH_STATE_MAX,
};

enum forward_state {
	FORWARD_NONE,    /* answered here, or not yet */
	FORWARD_PENDING, /* with a forward worker; the connection is suspended */
	FORWARD_DONE,    /* the upstream's answer (or our 503) in fwd_resp, to be sent */
	FORWARD_STATE_MAX,
};

/* One HTTP request, from the URI log callback to the completion callback. */
struct request {
	int64_t start_mono_ms;
	/* For the latency histogram (telemetry.h). */
	int64_t start_mono_us;
	char *target; /* the raw request target; NULL when longer than URL_MAX */
	size_t target_len;
	size_t body_bytes; /* request body read and dropped so far */
	bool headers_seen;
	bool answered;
	/* Access check (delegated auth): written by an auth worker while the connection is
	 * suspended, read by the MHD thread after it is resumed. */
	enum auth_state auth;
	bool auth_ok;
	struct sm_api_response auth_resp; /* the refusal when !auth_ok */
	struct sm_auth_outcome outcome;   /* who asked (delegated auth), for the access log */
	const char *path, *query;         /* into target, once split */
	/* Forwarding (upstream.h): written by a forward worker while the connection is
	 * suspended, read by the MHD thread after it is resumed. */
	struct MHD_Connection *conn;
	enum forward_state fwd;
	struct sm_api_response fwd_resp;
	char *fwd_ct;          /* the upstream's Content-Type, owned; fwd_resp points to it */
	const char *fwd_route; /* static: the route that marked the request */
};

/* One access check for the auth workers. */
struct auth_job {
	struct sm_http_server *s;
	struct MHD_Connection *conn;
	struct request *rq;
	struct sm_auth_request ar;
	struct sm_auth_header headers[AUTH_HEADERS_MAX];
	const unsigned char *certs[PEER_CERTS_MAX];
	size_t cert_lens[PEER_CERTS_MAX];
	struct auth_job *next;
};

struct sm_http_server {
	struct MHD_Daemon *daemon;
	const struct sm_api_context *api;
	struct sm_auth *auth; /* NULL: server.auth.mode none */
	/* With `forward` entries: the API context with the forward table set (api points to
	 * it), and the workers that send to the upstreams. */
	struct sm_api_context api_forward;
	struct sm_forward *forward;
	struct sm_upstream *upstream;
	/* Auth workers and their queue (only with auth). */
	pthread_mutex_t jobs_lock;
	pthread_cond_t jobs_cond;
	bool jobs_init;
	bool jobs_stop;
	struct auth_job *jobs_head, *jobs_tail;
	pthread_t workers[AUTH_WORKERS];
	unsigned n_workers;
	char *cert_file; /* NULL: self-signed */
	char *key_file;
	_Atomic(struct creds *) current;
	struct creds *creds; /* list of all of them; written by start and the watcher only */

	pthread_mutex_t lock; /* guards stopping, with cond */
	pthread_cond_t cond;
	bool sync_init;
	bool stopping;
	bool watcher_started;
	pthread_t watcher;
	/* Watcher thread only (after start). */
	struct file_id cert_id, key_id;         /* the pair being served */
	struct file_id bad_cert_id, bad_key_id; /* the last pair that failed (reported once) */

	size_t max_header_bytes;
	int64_t conn_timeout_ms;
	pthread_mutex_t conns_lock; /* guards conns and every struct conn's fields */
	bool conns_init;
	struct conn *conns;
	bool reaper_started;
	atomic_bool reaper_stop;
	pthread_t reaper;
	/* The listening socket and the thread accepting on it. */
	int listen_fd; /* -1: none */
	bool acceptor_started;
	atomic_bool acceptor_stop;
	pthread_t acceptor;
	atomic_bool draining;
	atomic_uint_fast64_t in_flight;
	int64_t drain_max_ms;
	bool access_log;   /* server.access_log */
	char address[128]; /* "127.0.0.1:6443", "[::1]:6443", for logs */
	/* Seals session tickets; made at start, in memory only (a restart invalidates the
	 * tickets, which costs clients one full handshake). GnuTLS derives rotating keys from
	 * it. data NULL: no tickets. */
	gnutls_datum_t ticket_key;
};

/* ---- listen address ---- */

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	bool v6;
	bool any; /* a wildcard address */
};

static int parse_port(const char *s, uint16_t *ret)
{
	uint64_t v;

	if (sm_number_parse_uint64(s, &v) < 0 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

/* "host:port", "[v6]:port", ":port" (all IPv4 interfaces). Host names are resolved once. */
static int parse_listen(const char *listen, struct listen_addr *ret, struct sm_error *reterr)
{
	struct listen_addr a = {0};
	char host[256];
	const char *port_s;
	const char *colon;
	size_t host_len;
	uint16_t port;
	bool bracketed = false;
	int r;

	if (!listen || listen[0] == '\0') {
		sm_error_set(reterr, "empty listen address");
		return -EINVAL;
	}
	if (listen[0] == '[') {
		const char *end = strchr(listen, ']');

		if (!end || end[1] != ':') {
			sm_error_set(reterr, "listen address '%s': expected [IPv6]:port", listen);
			return -EINVAL;
		}
		host_len = (size_t)(end - listen - 1);
		if (host_len >= sizeof(host))
			goto bad;
		memcpy(host, listen + 1, host_len);
		port_s = end + 2;
		bracketed = true;
	} else {
		colon = strrchr(listen, ':');
		if (!colon) {
			sm_error_set(reterr, "listen address '%s': expected host:port", listen);
			return -EINVAL;
		}
		host_len = (size_t)(colon - listen);
		if (host_len >= sizeof(host))
			goto bad;
		memcpy(host, listen, host_len);
		port_s = colon + 1;
	}
	host[host_len] = '\0';
	if (parse_port(port_s, &port) < 0) {
		sm_error_set(reterr, "listen address '%s': bad port '%s' (0-65535)", listen,
		             port_s);
		return -EINVAL;
	}

	if (bracketed) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;

		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
			sm_error_set(reterr, "listen address '%s': '%s' is not an IPv6 address",
			             listen, host);
			return -EINVAL;
		}
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		a.len = sizeof(*in6);
		a.v6 = true;
		a.any = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
	} else if (strchr(host, ':')) {
		sm_error_set(reterr,
		             "listen address '%s': write IPv6 addresses in brackets, "
		             "like [::1]:6443",
		             listen);
		return -EINVAL;
	} else {
		struct sockaddr_in *in4 = (struct sockaddr_in *)&a.ss;

		if (host[0] == '\0') {
			in4->sin_addr.s_addr = htonl(INADDR_ANY);
		} else if (inet_pton(AF_INET, host, &in4->sin_addr) != 1) {
			struct addrinfo hints = {.ai_family = AF_UNSPEC,
			                         .ai_socktype = SOCK_STREAM};
			struct addrinfo *res = NULL;

			r = getaddrinfo(host, NULL, &hints, &res);
			if (r != 0 || !res) {
				sm_error_set(reterr, "listen address '%s': cannot resolve '%s': %s",
				             listen, host, gai_strerror(r));
				return -EINVAL;
			}
			if (res->ai_family == AF_INET6) {
				struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;

				memcpy(in6, res->ai_addr, sizeof(*in6));
				in6->sin6_port = htons(port);
				a.len = sizeof(*in6);
				a.v6 = true;
				freeaddrinfo(res);
				*ret = a;
				return 0;
			}
			memcpy(in4, res->ai_addr, sizeof(*in4));
			freeaddrinfo(res);
		}
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		a.len = sizeof(*in4);
		a.any = in4->sin_addr.s_addr == htonl(INADDR_ANY);
	}
	*ret = a;
	return 0;
bad:
	sm_error_set(reterr, "listen address '%s' is too long", listen);
	return -EINVAL;
}

static void format_address(const struct sockaddr_storage *ss, uint16_t port, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		(void)inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host,
		                sizeof(host));
		(void)snprintf(buf, len, "[%s]:%u", host, port);
	} else {
		(void)inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host,
		                sizeof(host));
		(void)snprintf(buf, len, "%s:%u", host, port);
	}
}

/* ---- credentials ---- */

static void creds_free(struct creds *c)
{
	if (!c)
		return;
	for (unsigned int i = 0; i < c->n_pcerts; i++)
		gnutls_pcert_deinit(&c->pcerts[i]);
	if (c->key)
		gnutls_privkey_deinit(c->key);
	free(c);
}

static int creds_new(const struct sm_tls_pem *pem, struct creds **ret, struct sm_error *reterr)
{
	struct creds *c = NULL;
	gnutls_datum_t d;
	unsigned int n = CHAIN_MAX;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		sm_error_set(reterr, "out of memory");
		return -ENOMEM;
	}
	d = (gnutls_datum_t){.data = (unsigned char *)pem->cert_pem,
	                     .size = (unsigned int)strlen(pem->cert_pem)};
	r = gnutls_pcert_list_import_x509_raw(c->pcerts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
	if (r < 0) {
		sm_error_set(reterr, "GnuTLS cannot use the certificate chain (at most %d): %s",
		             CHAIN_MAX, gnutls_strerror(r));
		r = -EINVAL;
		goto out;
	}
	c->n_pcerts = n;
	r = gnutls_privkey_init(&c->key);
	if (r < 0) {
		c->key = NULL;
		sm_error_set(reterr, "GnuTLS: %s", gnutls_strerror(r));
		r = -ENOMEM;
		goto out;
	}
	d = (gnutls_datum_t){.data = (unsigned char *)pem->key_pem,
	                     .size = (unsigned int)strlen(pem->key_pem)};
	r = gnutls_privkey_import_x509_raw(c->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0) {
		sm_error_set(reterr, "GnuTLS cannot use the private key: %s", gnutls_strerror(r));
		r = -EINVAL;
		goto out;
	}
	memcpy(c->fingerprint, pem->fingerprint_sha256, sizeof(c->fingerprint));
	*ret = c;
	c = NULL;
	r = 0;
out:
	creds_free(c);
	return r;
}

static void publish_creds(struct sm_http_server *s, struct creds *c)
{
	c->older = s->creds;
	s->creds = c;
	atomic_store(&s->current, c);
}

/* GnuTLS asks for the serving certificate during each handshake. The session's pointer is
 * MHD's connection, whose socket context on_connection() set to the server. */
static int retrieve_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **pcert, unsigned int *pcert_length,
                         gnutls_privkey_t *privkey)
{
	struct MHD_Connection *conn = gnutls_session_get_ptr(session);
	const union MHD_ConnectionInfo *info;
	struct sm_http_server *s;
	struct creds *c;

	(void)req_ca_rdn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	if (!conn)
		return -1;
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (!info || !info->socket_context)
		return -1;
	s = ((struct conn *)info->socket_context)->s;
	c = atomic_load(&s->current);
	*pcert = c->pcerts;
	*pcert_length = c->n_pcerts;
	*privkey = c->key;
	return 0;
}

/* ---- certificate files watcher ---- */

static void file_id_get(const char *path, struct file_id *ret)
{
	struct stat st;

	*ret = (struct file_id){0};
	if (stat(path, &st) < 0)
		return;
	*ret = (struct file_id){
	    .present = true,
	    .dev = st.st_dev,
	    .ino = st.st_ino,
	    .size = st.st_size,
	    .mtim = st.st_mtim,
	    .ctim = st.st_ctim,
	};
}

static bool file_id_eq(const struct file_id *a, const struct file_id *b)
{
	return a->present == b->present && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtim.tv_sec == b->mtim.tv_sec &&
	       a->mtim.tv_nsec == b->mtim.tv_nsec && a->ctim.tv_sec == b->ctim.tv_sec &&
	       a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* Loads cert_file/key_file into new credentials. */
static int load_creds(const char *cert_file, const char *key_file, struct creds **ret,
                      struct sm_error *reterr)
{
	struct sm_tls_pem pem = {0};
	int r;

	r = sm_tls_load_files(cert_file, key_file, &pem, reterr);
	if (r < 0)
		return r;
	r = creds_new(&pem, ret, reterr);
	sm_tls_pem_done(&pem);
	return r;
}

static void check_files(struct sm_http_server *s)
{
	struct file_id cert_id, key_id;
	struct creds *c = NULL;
	struct creds *cur;
	struct sm_error err = {0};
	int r;

	file_id_get(s->cert_file, &cert_id);
	file_id_get(s->key_file, &key_id);
	if (file_id_eq(&cert_id, &s->cert_id) && file_id_eq(&key_id, &s->key_id))
		return;
	if (file_id_eq(&cert_id, &s->bad_cert_id) && file_id_eq(&key_id, &s->bad_key_id))
		return; /* this very pair failed already and was reported */

	cur = atomic_load(&s->current);
	r = load_creds(s->cert_file, s->key_file, &c, &err);
	if (r < 0) {
		s->bad_cert_id = cert_id;
		s->bad_key_id = key_id;
		sm_log_error(LOG_CTX,
		             "reloading the serving certificate failed: %s; keeping the current "
		             "one (sha256 fingerprint %s)",
		             err.message, cur->fingerprint);
		return;
	}
	s->cert_id = cert_id;
	s->key_id = key_id;
	s->bad_cert_id = (struct file_id){0};
	s->bad_key_id = (struct file_id){0};
	if (strcmp(c->fingerprint, cur->fingerprint) == 0) {
		/* Touched or rewritten with the same content: nothing to swap. */
		creds_free(c);
		return;
	}
	publish_creds(s, c);
	sm_log_info(LOG_CTX,
	            "reloaded serving certificate from '%s', sha256 fingerprint %s (was %s)",
	            s->cert_file, c->fingerprint, cur->fingerprint);
}

static void *watch_files(void *arg)
{
	struct sm_http_server *s = arg;
	struct timespec deadline;

	(void)pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		(void)clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_nsec += (long)(WATCH_INTERVAL_MS % 1000) * 1000000L;
		deadline.tv_sec += WATCH_INTERVAL_MS / 1000 + deadline.tv_nsec / 1000000000L;
		deadline.tv_nsec %= 1000000000L;
		while (!s->stopping &&
		       pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != ETIMEDOUT)
			;
		if (s->stopping)
			break;
		(void)pthread_mutex_unlock(&s->lock);
		check_files(s);
		(void)pthread_mutex_lock(&s->lock);
	}
	(void)pthread_mutex_unlock(&s->lock);
	return NULL;
}

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

/* Sets the connection's deadline (0: none). */
static void conn_deadline(struct sm_http_server *s, struct MHD_Connection *conn, int64_t deadline)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *c = info ? info->socket_context : NULL;

	if (!c)
		return;
	(void)pthread_mutex_lock(&s->conns_lock);
	c->deadline_ms = deadline;
	(void)pthread_mutex_unlock(&s->conns_lock);
}

static void *reap_slow(void *arg)
{
	struct sm_http_server *s = arg;
	const struct timespec tick = {.tv_nsec = REAP_INTERVAL_MS * 1000000L};

	while (!atomic_load(&s->reaper_stop)) {
		int64_t now = sm_time_mono_ms();
		unsigned n = 0;

		(void)pthread_mutex_lock(&s->conns_lock);
		for (struct conn *c = s->conns; c; c = c->next) {
			if (c->shut || c->deadline_ms == 0 || now < c->deadline_ms)
				continue;
			(void)shutdown(c->fd, SHUT_RDWR);
			c->shut = true;
			n++;
		}
		(void)pthread_mutex_unlock(&s->conns_lock);
		if (n > 0)
			sm_log_debug(LOG_CTX,
			             "closed %u connection%s that sent no complete request within "
			             "%" PRId64 "ms",
			             n, n == 1 ? "" : "s", s->conn_timeout_ms);
		(void)nanosleep(&tick, NULL);
	}
	return NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	struct sm_http_server *s = cls;
	const union MHD_ConnectionInfo *info;
	struct conn *c;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		c = *socket_context;
		if (!c)
			return;
		(void)pthread_mutex_lock(&s->conns_lock);
		if (c->prev)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		(void)pthread_mutex_unlock(&s->conns_lock);
		free(c);
		*socket_context = NULL;
		return;
	}
	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	/* Without a context the handshake fails (retrieve_cert), closing the connection. */
	c = calloc(1, sizeof(*c));
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!c || !info) {
		free(c);
		return;
	}
	c->s = s;
	c->fd = info->connect_fd;
	c->deadline_ms = sm_time_mono_ms() + s->conn_timeout_ms;
	(void)pthread_mutex_lock(&s->conns_lock);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	(void)pthread_mutex_unlock(&s->conns_lock);
	*socket_context = c;
	/* Answers go out in more than one write (headers, body); without this, Nagle holds the
	 * second until the client's delayed ACK, 40 ms on Linux, on every new connection. */
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	/* MHD made the TLS session but has not started the handshake yet. */
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!info || !info->tls_session)
		return;
	/* Session resumption: TLS 1.3 tickets (and TLS 1.2 ones) sealed with the server's
	 * ticket key, so a reconnecting client skips the certificate and its signature (and
	 * keeps the identity its client certificate proved). libmicrohttpd does not enable
	 * them itself. */
	if (s->ticket_key.data)
		(void)gnutls_session_ticket_enable_server((gnutls_session_t)info->tls_session,
		                                          &s->ticket_key);
	/* Ask for a client certificate without requiring one (docs/api.md "TLS and client
	 * certificates": Go's RequestClientCert). No CA names are sent, so clients offer their
	 * certificate whatever signed it; GnuTLS checks only that the client holds its key, and the
	 * authenticator verifies the chain. */
	if (s->auth)
		gnutls_certificate_server_set_request((gnutls_session_t)info->tls_session,
		                                      GNUTLS_CERT_REQUEST);
}

static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct sm_http_server *s = cls;
	struct request *rq;

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
	struct request *rq = *con_cls;

	if (!rq)
		return;
	/* The next request on this connection has connection_timeout to arrive. */
	conn_deadline(s, conn, sm_time_mono_ms() + s->conn_timeout_ms);
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

static void split_target(char *target, const char **ret_path, const char **ret_query)
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
static size_t header_bytes(struct MHD_Connection *conn, const struct request *rq,
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

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
	struct auth_job *j = cls;

	(void)kind;
	if (j->ar.n_headers == AUTH_HEADERS_MAX) {
		j->ar.n_headers++; /* too many: refused */
		return MHD_NO;
	}
	j->headers[j->ar.n_headers++] =
	    (struct sm_auth_header){.name = key, .value = value ? value : ""};
	return MHD_YES;
}

static void *auth_worker(void *arg)
{
	struct sm_http_server *s = arg;

	for (;;) {
		struct auth_job *j;

		(void)pthread_mutex_lock(&s->jobs_lock);
		while (!s->jobs_head && !s->jobs_stop)
			(void)pthread_cond_wait(&s->jobs_cond, &s->jobs_lock);
		j = s->jobs_head;
		if (j) {
			s->jobs_head = j->next;
			if (!s->jobs_head)
				s->jobs_tail = NULL;
		}
		(void)pthread_mutex_unlock(&s->jobs_lock);
		if (!j)
			return NULL; /* stopping, and the queue is empty */
		j->rq->auth_ok = sm_auth_check(s->auth, &j->ar, sm_time_mono_ms(),
		                               &j->rq->auth_resp, &j->rq->outcome);
		j->rq->auth = AUTH_DONE;
		/* After this, the connection (and rq) may go on in MHD's thread. */
		(void)MHD_resume_connection(j->conn);
		free(j);
	}
}

/* Checks the request's access. 1: serve it now; 0: answer with *resp (refused, or the check
 * could not be made); -EINPROGRESS: the decision needs the API server, so the connection is
 * suspended and its check queued for an auth worker. */
static int access_check(struct sm_http_server *s, struct MHD_Connection *conn, struct request *rq,
                        const char *method, struct sm_api_response *resp)
{
	const union MHD_ConnectionInfo *info;
	/* On the stack, not zeroed (4.6 KB): ar counts what headers and certs hold; copied to
	 * the heap only when it goes to a worker. */
	struct auth_job local;
	struct auth_job *j = &local;
	int r;

	j->s = s;
	j->conn = conn;
	j->rq = rq;
	j->next = NULL;
	j->ar = (struct sm_auth_request){
	    .method = method, .path = rq->path, .query = rq->query, .headers = j->headers};
	(void)MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, j);
	if (j->ar.n_headers > AUTH_HEADERS_MAX) {
		(void)sm_api_status(431, NULL, "too many request header lines", resp);
		return 0;
	}
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (info && info->tls_session) {
		unsigned int n = 0;
		const gnutls_datum_t *peers =
		    gnutls_certificate_get_peers((gnutls_session_t)info->tls_session, &n);

		for (unsigned int i = 0; peers && i < n && i < PEER_CERTS_MAX; i++) {
			j->certs[i] = peers[i].data;
			j->cert_lens[i] = peers[i].size;
			j->ar.n_peer_certs++;
		}
		j->ar.peer_certs = j->certs;
		j->ar.peer_cert_lens = j->cert_lens;
	}
	/* Most requests are decided here, in MHD's thread: a client certificate, or a token and a
	 * decision the caches hold. Only the rest pay the hand-off to a worker and back. */
	r = sm_auth_check_cached(s->auth, &j->ar, sm_time_mono_ms(), resp, &rq->outcome);
	if (r != -EWOULDBLOCK)
		return r;
	j = malloc(sizeof(*j));
	if (!j) {
		(void)sm_api_status(500, "InternalError", "Internal error occurred: out of memory",
		                    resp);
		return 0;
	}
	*j = local;
	j->ar.headers = j->headers;
	if (j->ar.peer_certs) {
		j->ar.peer_certs = j->certs;
		j->ar.peer_cert_lens = j->cert_lens;
	}
	rq->auth = AUTH_PENDING;
	/* Suspend before a worker can resume. */
	MHD_suspend_connection(conn);
	(void)pthread_mutex_lock(&s->jobs_lock);
	if (s->jobs_tail)
		s->jobs_tail->next = j;
	else
		s->jobs_head = j;
	s->jobs_tail = j;
	(void)pthread_cond_signal(&s->jobs_cond);
	(void)pthread_mutex_unlock(&s->jobs_lock);
	return -EINPROGRESS;
}

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

/* path?query for the access log, with secret_params' values replaced by "***"; NULL on
 * ENOMEM. */
static char *shown_target(const char *path, const char *query)
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

/* The access log line: one per request but the probes; false when it was not written.
 * bytes: the response body sent (send_response() keeps body_len). */
static bool log_request(struct MHD_Connection *conn, struct request *rq, const char *method,
                        int status, size_t bytes, int64_t duration_us)
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
		split_target(rq->target, &path, &query);
	if (path && sm_authz_path_always_allowed(NULL, path))
		return false;
	if (path)
		target = shown_target(path, query);
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (info && info->client_addr) {
		const struct sockaddr_storage *ss =
		    (const struct sockaddr_storage *)info->client_addr;
		uint16_t port =
		    ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
		                                    : ((const struct sockaddr_in *)ss)->sin_port);

		format_address(ss, port, remote, sizeof(remote));
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

/* Sends resp (taking its body) and logs the request. */
static enum MHD_Result finish(struct sm_http_server *s, struct MHD_Connection *conn,
                              struct request *rq, const char *method, struct sm_api_response *resp)
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
		logged = log_request(conn, rq, method, resp->status,
		                     strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 ? 0 : resp->body_len,
		                     duration_us);
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

static void handle(struct sm_http_server *s, struct MHD_Connection *conn, struct request *rq,
                   const char *method, struct sm_api_response *resp)
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
	struct request *rq = userdata;

	rq->fwd = FORWARD_PENDING;
	MHD_suspend_connection(rq->conn);
}

/* On a forward worker: the answer is in; MHD calls on_request() again, which sends it. */
static void forward_done(void *userdata, struct sm_api_response *resp, char *content_type)
{
	struct request *rq = userdata;

	rq->fwd_resp = *resp;
	*resp = (struct sm_api_response){0};
	rq->fwd_ct = content_type;
	rq->fwd = FORWARD_DONE;
	/* After this, the connection (and rq) may go on in MHD's thread. */
	(void)MHD_resume_connection(rq->conn);
}

/* Answers the request into *resp, or hands it to the adapter the API marked it for
 * (forward.h): -EINPROGRESS then, the connection suspended until a forward worker has the
 * answer. A full queue is a 503 at once. */
static int serve(struct sm_http_server *s, struct MHD_Connection *conn, struct request *rq,
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
                                        struct request *rq, const char *method)
{
	struct sm_api_response resp = rq->fwd_resp;

	rq->fwd = FORWARD_NONE;
	rq->fwd_resp = (struct sm_api_response){0};
	resp.route = rq->fwd_route;
	return finish(s, conn, rq, method, &resp);
}

/* The connection was resumed with the access check's verdict. */
static enum MHD_Result answer_checked(struct sm_http_server *s, struct MHD_Connection *conn,
                                      struct request *rq, const char *method)
{
	struct sm_api_response resp = {0};

	rq->auth = AUTH_NONE;
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
                              struct request *rq, const char *method, bool headers_too_big)
{
	struct sm_api_response resp = {0};
	char msg[128];

	rq->answered = true;
	conn_deadline(s, conn, 0);
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

		split_target(rq->target, &rq->path, &rq->query);
		if (s->auth && !sm_authz_path_always_allowed(NULL, rq->path))
			r = access_check(s, conn, rq, method, &resp);
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
	struct request *rq = *con_cls;
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
	if (rq->fwd == FORWARD_DONE)
		return answer_forwarded(s, conn, rq, method);
	if (rq->auth == AUTH_DONE)
		return answer_checked(s, conn, rq, method);
	if (rq->answered)
		return MHD_YES;
	return answer(s, conn, rq, method, false);
}

/* ---- accepting ---- */

/* A bound, listening socket for la; dual-stack for the IPv6 wildcard, as MHD made it. */
static int listen_open(const struct listen_addr *la, int *ret_fd)
{
	int fd;
	int r;

	fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
	if (la->v6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){la->any ? 0 : 1},
		                 sizeof(int));
	if (bind(fd, (const struct sockaddr *)&la->ss, la->len) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		(void)close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static void *accept_loop(void *arg)
{
	struct sm_http_server *s = arg;
	const struct timespec pause = {.tv_nsec = ACCEPT_PAUSE_MS * 1000000L};
	int failing = 0; /* the errno being reported, 0: none */

	while (!atomic_load(&s->acceptor_stop)) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &len,
		                 SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			int e = errno;

			if (e == EINTR || e == ECONNABORTED || atomic_load(&s->acceptor_stop))
				continue;
			if (e != failing)
				sm_log_warn(LOG_CTX,
				            "cannot accept connections on https://%s: %s, retrying "
				            "every %dms",
				            s->address, strerror(e), ACCEPT_PAUSE_MS);
			failing = e;
			(void)nanosleep(&pause, NULL);
			continue;
		}
		if (failing) {
			sm_log_info(LOG_CTX, "accepting connections on https://%s again",
			            s->address);
			failing = 0;
		}
		/* MHD closes the socket itself when it refuses it (connection limits). */
		(void)MHD_add_connection(s->daemon, fd, (const struct sockaddr *)&ss, len);
	}
	return NULL;
}

/* Stops accepting: a blocked accept() returns once the socket is shut down, and
 * connections still in the backlog are refused instead of left waiting. */
static void stop_accepting(struct sm_http_server *s)
{
	if (s->listen_fd < 0)
		return;
	atomic_store(&s->acceptor_stop, true);
	(void)shutdown(s->listen_fd, SHUT_RDWR);
	if (s->acceptor_started) {
		(void)pthread_join(s->acceptor, NULL);
		s->acceptor_started = false;
	}
	(void)close(s->listen_fd);
	s->listen_fd = -1;
}

/* ---- start / stop ---- */

static int setup_creds(struct sm_http_server *s, const struct sm_server_config *sc,
                       const struct listen_addr *la, struct sm_error *reterr)
{
	struct sm_tls_pem pem = {0};
	struct creds *c = NULL;
	const char *names[2];
	size_t n_names = 0;
	char hostname[256];
	char ip[INET6_ADDRSTRLEN];
	int r;

	if (!!sc->cert_file != !!sc->key_file) {
		sm_error_set(reterr, "server.tls: give both cert_file and key_file, or neither");
		return -EINVAL;
	}
	if (sc->cert_file) {
		s->cert_file = strdup(sc->cert_file);
		s->key_file = strdup(sc->key_file);
		if (!s->cert_file || !s->key_file) {
			sm_error_set(reterr, "out of memory");
			return -ENOMEM;
		}
		/* Identify the files before reading them: a change while we read shows up at
		 * the watcher's first look. */
		file_id_get(s->cert_file, &s->cert_id);
		file_id_get(s->key_file, &s->key_id);
		r = load_creds(s->cert_file, s->key_file, &c, reterr);
		if (r < 0)
			return r;
		publish_creds(s, c);
		sm_log_info(LOG_CTX, "loaded serving certificate from '%s', sha256 fingerprint %s",
		            s->cert_file, c->fingerprint);
		return 0;
	}

	/* Self-signed: also valid for this host's name and a specific listen address. */
	if (gethostname(hostname, sizeof(hostname)) == 0) {
		hostname[sizeof(hostname) - 1] = '\0';
		if (hostname[0] && strcmp(hostname, "localhost") != 0)
			names[n_names++] = hostname;
	}
	if (!la->any) {
		const void *addr =
		    la->v6 ? (const void *)&((const struct sockaddr_in6 *)&la->ss)->sin6_addr
		           : (const void *)&((const struct sockaddr_in *)&la->ss)->sin_addr;

		if (inet_ntop(la->v6 ? AF_INET6 : AF_INET, addr, ip, sizeof(ip)) &&
		    strcmp(ip, "127.0.0.1") != 0 && strcmp(ip, "::1") != 0)
			names[n_names++] = ip;
	}
	r = sm_tls_make_self_signed(names, n_names, &pem, reterr);
	if (r < 0)
		return r;
	r = creds_new(&pem, &c, reterr);
	sm_tls_pem_done(&pem);
	if (r < 0)
		return r;
	publish_creds(s, c);
	sm_log_info(LOG_CTX, "generated self-signed serving certificate, sha256 fingerprint %s",
	            c->fingerprint);
	return 0;
}

int sm_http_server_start(const struct sm_config *cfg, const struct sm_api_context *api,
                         struct sm_http_server **ret, struct sm_error *reterr)
{
	const struct sm_server_config *sc = &cfg->server;
	const char *listen = sc->listen ? sc->listen : "0.0.0.0:6443";
	struct sm_http_server *s = NULL;
	struct listen_addr la;
	pthread_condattr_t ca;
	unsigned int flags;
	unsigned int timeout_s;
	size_t pool_size;
	struct sockaddr_storage bound;
	socklen_t bound_len;
	uint16_t port;
	int r;

	r = parse_listen(listen, &la, reterr);
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

	r = setup_creds(s, sc, &la, reterr);
	if (r < 0)
		goto out;
	if (sc->auth_mode != SM_AUTH_NONE) {
		r = sm_auth_new(cfg, api ? api->telemetry : NULL, &s->auth, reterr);
		if (r < 0)
			goto out;
		if (pthread_mutex_init(&s->jobs_lock, NULL) != 0 ||
		    pthread_cond_init(&s->jobs_cond, NULL) != 0) {
			r = -ENOMEM;
			sm_error_set(reterr, "out of memory");
			goto out;
		}
		s->jobs_init = true;
		for (unsigned i = 0; i < AUTH_WORKERS; i++) {
			r = -pthread_create(&s->workers[i], NULL, auth_worker, s);
			if (r < 0) {
				sm_error_set(reterr, "cannot start the auth workers: %s",
				             strerror(-r));
				goto out;
			}
			s->n_workers++;
		}
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

	r = listen_open(&la, &s->listen_fd);
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
		MHD_OPTION_HTTPS_CERT_CALLBACK, retrieve_cert,
		MHD_OPTION_HTTPS_PRIORITIES, HTTPS_PRIORITIES,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)sc->max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)sc->max_connections_per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool_size,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
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
	format_address(&la.ss, port, s->address, sizeof(s->address));
	r = -pthread_create(&s->acceptor, NULL, accept_loop, s);
	if (r < 0) {
		sm_error_set(reterr, "cannot start the accept thread: %s", strerror(-r));
		goto out;
	}
	s->acceptor_started = true;

	r = -pthread_create(&s->reaper, NULL, reap_slow, s);
	if (r < 0) {
		sm_error_set(reterr, "cannot start the connection reaper: %s", strerror(-r));
		goto out;
	}
	s->reaper_started = true;
	if (s->cert_file) {
		r = -pthread_create(&s->watcher, NULL, watch_files, s);
		if (r < 0) {
			sm_error_set(reterr, "cannot start the certificate watcher: %s",
			             strerror(-r));
			goto out;
		}
		s->watcher_started = true;
	}
	sm_log_info(LOG_CTX, "listening on https://%s", s->address);
	*ret = s;
	s = NULL;
	r = 0;
out:
	sm_http_server_stop(s);
	return r;
}

static void stop_workers(struct sm_http_server *s)
{
	if (s->n_workers == 0)
		return;
	(void)pthread_mutex_lock(&s->jobs_lock);
	s->jobs_stop = true;
	(void)pthread_cond_broadcast(&s->jobs_cond);
	(void)pthread_mutex_unlock(&s->jobs_lock);
	for (unsigned i = 0; i < s->n_workers; i++)
		(void)pthread_join(s->workers[i], NULL);
	s->n_workers = 0;
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
	struct creds *c;

	if (!s)
		return;
	if (s->daemon) {
		atomic_store(&s->draining, true);
		stop_accepting(s);
		drain(s);
		/* Every queued access check resumes its connection; MHD must not stop with
		 * suspended connections. */
		stop_workers(s);
		/* Likewise every forwarded request, answered 503 if it is still waiting. HTTP
		 * threads may still call serve() (keep-alive, resumed connections) until
		 * MHD_stop_daemon: s->upstream stays valid, refusing with -ESHUTDOWN, and is
		 * freed below. */
		sm_upstream_stop(s->upstream);
		if (s->reaper_started) {
			atomic_store(&s->reaper_stop, true);
			(void)pthread_join(s->reaper, NULL);
			s->reaper_started = false;
		}
		MHD_stop_daemon(s->daemon);
		s->daemon = NULL;
		sm_log_info(LOG_CTX, "stopped serving on https://%s", s->address);
	}
	stop_accepting(s);
	stop_workers(s);
	if (s->jobs_init) {
		(void)pthread_cond_destroy(&s->jobs_cond);
		(void)pthread_mutex_destroy(&s->jobs_lock);
	}
	sm_auth_free(s->auth);
	s->auth = NULL;
	sm_upstream_free(s->upstream);
	s->upstream = NULL;
	sm_forward_free(s->forward);
	if (s->watcher_started) {
		(void)pthread_mutex_lock(&s->lock);
		s->stopping = true;
		(void)pthread_cond_broadcast(&s->cond);
		(void)pthread_mutex_unlock(&s->lock);
		(void)pthread_join(s->watcher, NULL);
	}
	if (s->sync_init) {
		(void)pthread_cond_destroy(&s->cond);
		(void)pthread_mutex_destroy(&s->lock);
	}
	if (s->conns_init)
		(void)pthread_mutex_destroy(&s->conns_lock);
	c = s->creds;
	while (c) {
		struct creds *older = c->older;

		creds_free(c);
		c = older;
	}
	if (s->ticket_key.data) {
		gnutls_memset(s->ticket_key.data, 0, s->ticket_key.size);
		gnutls_free(s->ticket_key.data);
	}
	free(s->cert_file);
	free(s->key_file);
	free(s);
}
