/* SPDX-License-Identifier: MIT */
/* Shared by the files of the HTTPS server (server.c, server-listen.c, server-tls.c,
 * server-conns.c, server-auth.c, server-access-log.c); only they and the unit tests include
 * it. */
#ifndef SM_SERVER_INTERNAL_H
#define SM_SERVER_INTERNAL_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "scalemetrics/api.h"
#include "scalemetrics/auth.h"
#include "scalemetrics/error.h"

struct sm_config;
struct sm_forward;
struct sm_http_auth_job;
struct sm_server_config;
struct sm_upstream;

/* Certificates in the served chain (leaf plus intermediates). */
#define SM_HTTP_CHAIN_MAX 16
/* Request headers handed to the authenticator (and the lines a request may have). */
#define SM_HTTP_AUTH_HEADERS_MAX 256
#define SM_HTTP_AUTH_WORKERS     4

/* One serving certificate chain and key, as GnuTLS wants them. Immutable once published. */
struct sm_http_creds {
	gnutls_pcert_st pcerts[SM_HTTP_CHAIN_MAX];
	unsigned int n_pcerts;
	gnutls_privkey_t key;
	char fingerprint[96];
	struct sm_http_creds *older; /* every credential ever published, newest first */
};

/* What identifies a file's content without reading it (stat follows symlinks, so a
 * Kubernetes secret volume swapping its ..data link shows up as a new inode). */
struct sm_http_file_id {
	bool present;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
	struct timespec ctim;
};

/* One connection, from MHD's STARTED notification to its CLOSED one (the socket context). */
struct sm_http_conn {
	struct sm_http_server *s;
	int fd;
	int64_t deadline_ms; /* 0: none (a request is being answered) */
	bool shut;
	struct sm_http_conn *prev, *next;
};

enum sm_http_auth_state {
	SM_HTTP_AUTH_NONE,    /* not asked (yet), or answered */
	SM_HTTP_AUTH_PENDING, /* with an auth worker; the connection is suspended */
	SM_HTTP_AUTH_DONE,    /* verdict in auth_ok / auth_resp, to be answered */
	SM_HTTP_AUTH_STATE_MAX,
};

enum sm_http_forward_state {
	SM_HTTP_FORWARD_NONE,    /* answered here, or not yet */
	SM_HTTP_FORWARD_PENDING, /* with a forward worker; the connection is suspended */
	SM_HTTP_FORWARD_DONE,    /* the upstream's answer (or our 503) in fwd_resp, to be sent */
	SM_HTTP_FORWARD_STATE_MAX,
};

/* One HTTP request, from the URI log callback to the completion callback. */
struct sm_http_request {
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
	enum sm_http_auth_state auth;
	bool auth_ok;
	struct sm_api_response auth_resp; /* the refusal when !auth_ok */
	struct sm_auth_outcome outcome;   /* who asked (delegated auth), for the access log */
	const char *path, *query;         /* into target, once split */
	/* Forwarding (upstream.h): written by a forward worker while the connection is
	 * suspended, read by the MHD thread after it is resumed. */
	struct MHD_Connection *conn;
	enum sm_http_forward_state fwd;
	struct sm_api_response fwd_resp;
	char *fwd_ct;          /* the upstream's Content-Type, owned; fwd_resp points to it */
	const char *fwd_route; /* static: the route that marked the request */
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
	struct sm_http_auth_job *jobs_head, *jobs_tail;
	pthread_t workers[SM_HTTP_AUTH_WORKERS];
	unsigned n_workers;
	char *cert_file; /* NULL: self-signed */
	char *key_file;
	_Atomic(struct sm_http_creds *) current;
	struct sm_http_creds
	    *creds; /* list of all of them; written by start and the watcher only */

	pthread_mutex_t lock; /* guards stopping, with cond */
	pthread_cond_t cond;
	bool sync_init;
	bool stopping;
	bool watcher_started;
	pthread_t watcher;
	/* Watcher thread only (after start). */
	struct sm_http_file_id cert_id, key_id; /* the pair being served */
	struct sm_http_file_id bad_cert_id,
	    bad_key_id; /* the last pair that failed (reported once) */

	size_t max_header_bytes;
	int64_t conn_timeout_ms;
	pthread_mutex_t conns_lock; /* guards conns and every struct sm_http_conn's fields */
	bool conns_init;
	struct sm_http_conn *conns;
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

struct sm_http_listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	bool v6;
	bool any; /* a wildcard address */
};

/* ---- server.c ---- */

/* Splits a raw request target in place: the path (absolute-form's scheme and authority
 * skipped) and the query after '?' (NULL when none). */
void sm_http_split_target(char *target, const char **ret_path, const char **ret_query);

/* ---- server-listen.c: the listening socket and the accept thread ---- */

/* "host:port", "[v6]:port", ":port" (all IPv4 interfaces). Host names are resolved once.
 * -EINVAL with reterr. */
int sm_http_listen_parse(const char *listen, struct sm_http_listen_addr *ret,
                         struct sm_error *reterr) SM_MUSTCHECK;
/* "127.0.0.1:6443", "[::1]:6443" into buf. */
void sm_http_address_format(const struct sockaddr_storage *ss, uint16_t port, char *buf,
                            size_t len);
/* A bound, listening socket for la. Negative errno. */
int sm_http_listen_open(const struct sm_http_listen_addr *la, int *ret_fd) SM_MUSTCHECK;
/* Starts the thread that accepts on s->listen_fd and hands each connection to MHD. */
int sm_http_accept_start(struct sm_http_server *s, struct sm_error *reterr) SM_MUSTCHECK;
/* Stops accepting and closes the listening socket; again is a no-op. */
void sm_http_accept_stop(struct sm_http_server *s);

/* ---- server-tls.c: the serving certificate and its reload ---- */

/* From cert_file/key_file (remembered for the watcher), or self-signed. */
int sm_http_creds_setup(struct sm_http_server *s, const struct sm_server_config *sc,
                        const struct sm_http_listen_addr *la, struct sm_error *reterr) SM_MUSTCHECK;
/* GnuTLS's certificate callback (MHD_OPTION_HTTPS_CERT_CALLBACK). */
int sm_http_creds_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                           const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                           gnutls_pcert_st **pcert, unsigned int *pcert_length,
                           gnutls_privkey_t *privkey);
/* The thread that reloads the pair when its files change (only with cert_file). */
int sm_http_watcher_start(struct sm_http_server *s, struct sm_error *reterr) SM_MUSTCHECK;
void sm_http_watcher_stop(struct sm_http_server *s);
/* Every credential ever published: only when no handshake can run any more. */
void sm_http_creds_free_all(struct sm_http_server *s);

/* ---- server-conns.c: the connection registry and the slow-client reaper ---- */

/* MHD_OPTION_NOTIFY_CONNECTION. */
void sm_http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode code);
/* Sets the connection's deadline (0: none). */
void sm_http_conn_deadline(struct sm_http_server *s, struct MHD_Connection *conn, int64_t deadline);
int sm_http_reaper_start(struct sm_http_server *s, struct sm_error *reterr) SM_MUSTCHECK;
void sm_http_reaper_stop(struct sm_http_server *s);

/* ---- server-auth.c: access checks off MHD's threads ---- */

/* The authenticator (server.auth.mode delegated) and its worker threads. */
int sm_http_auth_start(struct sm_http_server *s, const struct sm_config *cfg,
                       struct sm_error *reterr) SM_MUSTCHECK;
/* Lets the workers finish their queue (each job resumes its connection), then joins them. */
void sm_http_auth_workers_stop(struct sm_http_server *s);
/* After the workers stopped: frees the queue's lock and the authenticator. */
void sm_http_auth_done(struct sm_http_server *s);
/* Checks the request's access. 1: serve it now; 0: answer with *resp (refused, or the check
 * could not be made); -EINPROGRESS: the decision needs the API server, so the connection is
 * suspended and its check queued for an auth worker. */
int sm_http_access_check(struct sm_http_server *s, struct MHD_Connection *conn,
                         struct sm_http_request *rq, const char *method,
                         struct sm_api_response *resp);

/* ---- server-access-log.c ---- */

/* path?query for the access log, with the values of parameters that look like credentials
 * replaced by "***"; NULL on ENOMEM. */
char *sm_http_shown_target(const char *path, const char *query);
/* The access log line: one per request but the probes; false when it was not written.
 * bytes: the response body sent. */
bool sm_http_log_request(struct MHD_Connection *conn, struct sm_http_request *rq,
                         const char *method, int status, size_t bytes, int64_t duration_us);

#endif
