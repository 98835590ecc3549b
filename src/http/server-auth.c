/* SPDX-License-Identifier: MIT */
/* Access checks (server.auth.mode delegated) without blocking MHD's threads.
 *
 * Design: a client certificate is requested (not required) on every connection
 * (server-conns.c). Before sm_api_handle(), every request but the health endpoints is checked
 * in MHD's thread with sm_auth_check_cached(), which decides whatever needs no call to the
 * Kubernetes API (client certificates, tokens and decisions in the caches: the steady state of
 * an HPA controller's requests). A request that needs a TokenReview or a SubjectAccessReview
 * is suspended (MHD_suspend_connection) and handed, with its headers and the TLS peer's
 * certificates, to a small pool of auth worker threads that run sm_auth_check(); the worker
 * stores the verdict in the request and resumes the connection, and MHD calls server.c's
 * on_request() again, which answers. A slow API server thus never blocks MHD's threads: health
 * checks and other connections go on. The header strings and certificates stay valid while the
 * connection is suspended (they live in the connection's memory pool and TLS session).
 * sm_http_server_stop() drains requests, then lets the workers finish their queue (each job
 * resumes its connection) before stopping MHD. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/auth.h"
#include "scalemetrics/clock.h"

#include "server-internal.h"

/* Peer certificates read from the TLS session. */
#define PEER_CERTS_MAX 16

/* One access check for the auth workers. */
struct sm_http_auth_job {
	struct sm_http_server *s;
	struct MHD_Connection *conn;
	struct sm_http_request *rq;
	struct sm_auth_request ar;
	struct sm_auth_header headers[SM_HTTP_AUTH_HEADERS_MAX];
	const unsigned char *certs[PEER_CERTS_MAX];
	size_t cert_lens[PEER_CERTS_MAX];
	struct sm_http_auth_job *next;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
	struct sm_http_auth_job *j = cls;

	(void)kind;
	if (j->ar.n_headers == SM_HTTP_AUTH_HEADERS_MAX) {
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
		struct sm_http_auth_job *j;

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
		j->rq->auth = SM_HTTP_AUTH_DONE;
		/* After this, the connection (and rq) may go on in MHD's thread. */
		(void)MHD_resume_connection(j->conn);
		free(j);
	}
}

int sm_http_access_check(struct sm_http_server *s, struct MHD_Connection *conn,
                         struct sm_http_request *rq, const char *method,
                         struct sm_api_response *resp)
{
	const union MHD_ConnectionInfo *info;
	/* On the stack, not zeroed (a few KB): ar counts what headers and certs hold; copied to
	 * the heap only when it goes to a worker, which most requests never need. */
	struct sm_http_auth_job local;
	struct sm_http_auth_job *j = &local;
	int r;

	j->s = s;
	j->conn = conn;
	j->rq = rq;
	j->next = NULL;
	j->ar = (struct sm_auth_request){
	    .method = method, .path = rq->path, .query = rq->query, .headers = j->headers};
	(void)MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, j);
	if (j->ar.n_headers > SM_HTTP_AUTH_HEADERS_MAX) {
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
	rq->auth = SM_HTTP_AUTH_PENDING;
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

int sm_http_auth_start(struct sm_http_server *s, const struct sm_config *cfg,
                       struct sm_error *reterr)
{
	int r;

	r = sm_auth_new(cfg, s->api ? s->api->telemetry : NULL, &s->auth, reterr);
	if (r < 0)
		return r;
	if (pthread_mutex_init(&s->jobs_lock, NULL) != 0) {
		sm_error_set(reterr, "out of memory");
		return -ENOMEM;
	}
	if (pthread_cond_init(&s->jobs_cond, NULL) != 0) {
		(void)pthread_mutex_destroy(&s->jobs_lock);
		sm_error_set(reterr, "out of memory");
		return -ENOMEM;
	}
	s->jobs_init = true;
	for (unsigned i = 0; i < SM_HTTP_AUTH_WORKERS; i++) {
		r = -pthread_create(&s->workers[i], NULL, auth_worker, s);
		if (r < 0) {
			sm_error_set(reterr, "cannot start the auth workers: %s", strerror(-r));
			return r;
		}
		s->n_workers++;
	}
	return 0;
}

void sm_http_auth_workers_stop(struct sm_http_server *s)
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

void sm_http_auth_done(struct sm_http_server *s)
{
	if (s->jobs_init) {
		(void)pthread_cond_destroy(&s->jobs_cond);
		(void)pthread_mutex_destroy(&s->jobs_lock);
	}
	sm_auth_free(s->auth);
	s->auth = NULL;
}
