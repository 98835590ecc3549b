/* SPDX-License-Identifier: MIT */
/* Where the server listens: the listen address, the socket, and the thread that accepts on
 * it and hands each connection to libmicrohttpd.
 *
 * Design: the listening socket is ours, not MHD's. When every pool thread polls the
 * listening socket itself, whichever wakes first accepts up to 10 connections in a row, so a
 * burst of connections lands unevenly (bench/README.md, "Fairness under overload"); each
 * thread then gets the same CPU, and the connections of the crowded one wait several times
 * longer. The accept thread passes each connection to MHD_add_connection(), which gives it to
 * pool thread fd % POOL_THREADS (the next one with room, at the limits): consecutive
 * descriptors alternate, and a closed connection's descriptor is reused by the next one, on
 * the same thread, so the threads stay even. */
/* accept4(): a connection's descriptor is close-on-exec from the start. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "scalemetrics/log.h"
#include "scalemetrics/number.h"

#include "server-internal.h"

#define LOG_CTX "http"
/* How long the accept thread pauses after accept() fails (out of descriptors, ...). */
#define ACCEPT_PAUSE_MS 100

static int parse_port(const char *s, uint16_t *ret)
{
	uint64_t v;

	if (sm_number_parse_uint64(s, &v) < 0 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

int sm_http_listen_parse(const char *listen, struct sm_http_listen_addr *ret,
                         struct sm_error *reterr)
{
	struct sm_http_listen_addr a = {0};
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

void sm_http_address_format(const struct sockaddr_storage *ss, uint16_t port, char *buf, size_t len)
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

/* A bound, listening socket for la; dual-stack for the IPv6 wildcard, as MHD made it. */
int sm_http_listen_open(const struct sm_http_listen_addr *la, int *ret_fd)
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
void sm_http_accept_stop(struct sm_http_server *s)
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

int sm_http_accept_start(struct sm_http_server *s, struct sm_error *reterr)
{
	int r;

	r = -pthread_create(&s->acceptor, NULL, accept_loop, s);
	if (r < 0) {
		sm_error_set(reterr, "cannot start the accept thread: %s", strerror(-r));
		return r;
	}
	s->acceptor_started = true;
	return 0;
}
