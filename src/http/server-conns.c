/* SPDX-License-Identifier: MIT */
/* The connections: a registry from MHD's STARTED notification to its CLOSED one, each
 * connection's TLS settings, and the reaper that closes connections too slow to send a
 * request.
 *
 * Design: MHD's connection timeout is an idle timeout, which a client trickling a header line
 * now and then never hits (slowloris). Each connection therefore has a deadline: its TLS
 * handshake and each request (line, headers, body) must arrive within connection_timeout of
 * the connection opening or of the previous response. A reaper thread shuts down the socket
 * of a connection past its deadline; MHD then sees the connection end and closes it. The
 * registry entry lives from STARTED to CLOSED, and MHD closes the socket only after CLOSED, so
 * the reaper (holding the registry lock) never touches a closed or reused descriptor. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/log.h"

#include "server-internal.h"

#define LOG_CTX          "http"
#define REAP_INTERVAL_MS 200

void sm_http_conn_deadline(struct sm_http_server *s, struct MHD_Connection *conn, int64_t deadline)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct sm_http_conn *c = info ? info->socket_context : NULL;

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
		for (struct sm_http_conn *c = s->conns; c; c = c->next) {
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

void sm_http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode code)
{
	struct sm_http_server *s = cls;
	const union MHD_ConnectionInfo *info;
	struct sm_http_conn *c;

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
	/* Without a context the handshake fails (sm_http_creds_retrieve), closing the connection.
	 */
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

int sm_http_reaper_start(struct sm_http_server *s, struct sm_error *reterr)
{
	int r;

	r = -pthread_create(&s->reaper, NULL, reap_slow, s);
	if (r < 0) {
		sm_error_set(reterr, "cannot start the connection reaper: %s", strerror(-r));
		return r;
	}
	s->reaper_started = true;
	return 0;
}

void sm_http_reaper_stop(struct sm_http_server *s)
{
	if (s->reaper_started) {
		atomic_store(&s->reaper_stop, true);
		(void)pthread_join(s->reaper, NULL);
		s->reaper_started = false;
	}
}
