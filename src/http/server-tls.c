/* SPDX-License-Identifier: MIT */
/* The serving certificate: GnuTLS credentials made from the PEM pair, handed to each
 * handshake, and reloaded by a watcher thread when the files change on disk.
 *
 * Design: every handshake calls sm_http_creds_retrieve(), which reads s->current with one
 * atomic load. The watcher builds a new struct sm_http_creds completely, then publishes it
 * with one atomic store. Retired credentials are never freed before sm_http_server_stop(): a
 * handshake that loaded the old pointer may still be using it, and rotations are rare
 * (cert-manager renews every few weeks; re-touched files with an unchanged certificate do not
 * add credentials), so keeping them costs a few kilobytes per rotation. */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/log.h"
#include "scalemetrics/tls.h"

#include "server-internal.h"

#define LOG_CTX           "http"
#define WATCH_INTERVAL_MS 1000

static void creds_free(struct sm_http_creds *c)
{
	if (!c)
		return;
	for (unsigned int i = 0; i < c->n_pcerts; i++)
		gnutls_pcert_deinit(&c->pcerts[i]);
	if (c->key)
		gnutls_privkey_deinit(c->key);
	free(c);
}

static int creds_new(const struct sm_tls_pem *pem, struct sm_http_creds **ret,
                     struct sm_error *reterr)
{
	struct sm_http_creds *c = NULL;
	gnutls_datum_t d;
	unsigned int n = SM_HTTP_CHAIN_MAX;
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
		             SM_HTTP_CHAIN_MAX, gnutls_strerror(r));
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

static void publish_creds(struct sm_http_server *s, struct sm_http_creds *c)
{
	c->older = s->creds;
	s->creds = c;
	atomic_store(&s->current, c);
}

/* GnuTLS asks for the serving certificate during each handshake. The session's pointer is
 * MHD's connection, whose socket context sm_http_on_connection() set to the server. */
int sm_http_creds_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                           const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                           gnutls_pcert_st **pcert, unsigned int *pcert_length,
                           gnutls_privkey_t *privkey)
{
	struct MHD_Connection *conn = gnutls_session_get_ptr(session);
	const union MHD_ConnectionInfo *info;
	struct sm_http_server *s;
	struct sm_http_creds *c;

	(void)req_ca_rdn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	if (!conn)
		return -1;
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (!info || !info->socket_context)
		return -1;
	s = ((struct sm_http_conn *)info->socket_context)->s;
	c = atomic_load(&s->current);
	*pcert = c->pcerts;
	*pcert_length = c->n_pcerts;
	*privkey = c->key;
	return 0;
}

/* ---- certificate files watcher ---- */

static void file_id_get(const char *path, struct sm_http_file_id *ret)
{
	struct stat st;

	*ret = (struct sm_http_file_id){0};
	if (stat(path, &st) < 0)
		return;
	*ret = (struct sm_http_file_id){
	    .present = true,
	    .dev = st.st_dev,
	    .ino = st.st_ino,
	    .size = st.st_size,
	    .mtim = st.st_mtim,
	    .ctim = st.st_ctim,
	};
}

static bool file_id_eq(const struct sm_http_file_id *a, const struct sm_http_file_id *b)
{
	return a->present == b->present && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtim.tv_sec == b->mtim.tv_sec &&
	       a->mtim.tv_nsec == b->mtim.tv_nsec && a->ctim.tv_sec == b->ctim.tv_sec &&
	       a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* Loads cert_file/key_file into new credentials. */
static int load_creds(const char *cert_file, const char *key_file, struct sm_http_creds **ret,
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
	struct sm_http_file_id cert_id, key_id;
	struct sm_http_creds *c = NULL;
	struct sm_http_creds *cur;
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
	s->bad_cert_id = (struct sm_http_file_id){0};
	s->bad_key_id = (struct sm_http_file_id){0};
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
		deadline = sm_time_mono_deadline(WATCH_INTERVAL_MS);
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

int sm_http_creds_setup(struct sm_http_server *s, const struct sm_server_config *sc,
                        const struct sm_http_listen_addr *la, struct sm_error *reterr)
{
	struct sm_tls_pem pem = {0};
	struct sm_http_creds *c = NULL;
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

int sm_http_watcher_start(struct sm_http_server *s, struct sm_error *reterr)
{
	int r;

	r = -pthread_create(&s->watcher, NULL, watch_files, s);
	if (r < 0) {
		sm_error_set(reterr, "cannot start the certificate watcher: %s", strerror(-r));
		return r;
	}
	s->watcher_started = true;
	return 0;
}

void sm_http_watcher_stop(struct sm_http_server *s)
{
	if (!s->watcher_started)
		return;
	(void)pthread_mutex_lock(&s->lock);
	s->stopping = true;
	(void)pthread_cond_broadcast(&s->cond);
	(void)pthread_mutex_unlock(&s->lock);
	(void)pthread_join(s->watcher, NULL);
	s->watcher_started = false;
}

void sm_http_creds_free_all(struct sm_http_server *s)
{
	struct sm_http_creds *c = s->creds;

	while (c) {
		struct sm_http_creds *older = c->older;

		creds_free(c);
		c = older;
	}
	s->creds = NULL;
	atomic_store(&s->current, NULL);
}
