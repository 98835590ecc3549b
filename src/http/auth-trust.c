/* SPDX-License-Identifier: MIT */
/* The trust material of client certificates: the CAs, allowed names and header names, from
 * files and/or kube-system/extension-apiserver-authentication (docs/api.md "The
 * extension-apiserver-authentication ConfigMap"), and the thread that re-reads them. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scalemetrics/auth.h"
#include "scalemetrics/clock.h"
#include "scalemetrics/file.h"
#include "scalemetrics/kube.h"
#include "scalemetrics/log.h"
#include "scalemetrics/ttl-cache.h"

#include "auth-internal.h"

/*
 * Design: the material lives in an immutable, reference counted struct sm_auth_trust. The
 * refresh thread builds a new one from the files and/or the ConfigMap and swaps it in under
 * a->lock; each request takes a reference for its duration (sm_auth_trust_get), so a swap
 * never pulls a CA store from under a verification.
 */

#define LOG_CTX     "auth"
#define CM_PATH     "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
#define RETRY_MS    5000
#define CA_FILE_MAX (4 * 1024 * 1024)

/* ---- the ConfigMap ---- */

void sm_auth_trust_data_done(struct sm_auth_trust_data *t)
{
	if (!t)
		return;
	free(t->client_ca_pem);
	free(t->requestheader_ca_pem);
	sm_strv_done(&t->allowed_names);
	sm_strv_done(&t->headers.username);
	sm_strv_done(&t->headers.group);
	sm_strv_done(&t->headers.extra_prefix);
	*t = (struct sm_auth_trust_data){0};
}

/* A data value holding a JSON array of strings; "" or absent or null: empty. */
static int json_list(const cJSON *data, const char *key, struct sm_strv *ret,
                     struct sm_error *reterr)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);
	cJSON *arr;
	const cJSON *it;
	int r = 0;

	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return 0;
	arr = cJSON_Parse(v->valuestring);
	if (!arr || (!cJSON_IsArray(arr) && !cJSON_IsNull(arr))) {
		cJSON_Delete(arr);
		sm_error_set(reterr, "ConfigMap key %s is not a JSON array of strings", key);
		return -EPROTO;
	}
	cJSON_ArrayForEach(it, arr)
	{
		if (!cJSON_IsString(it)) {
			sm_error_set(reterr, "ConfigMap key %s is not a JSON array of strings",
			             key);
			r = -EPROTO;
			break;
		}
		if (it->valuestring[0] &&
		    sm_auth_strv_push(ret, it->valuestring, strlen(it->valuestring)) < 0) {
			r = -ENOMEM;
			break;
		}
	}
	cJSON_Delete(arr);
	return r;
}

static int pem_value(const cJSON *data, const char *key, char **ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);

	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return 0;
	*ret = strdup(v->valuestring);
	return *ret ? 0 : -ENOMEM;
}

int sm_auth_trust_from_configmap(const cJSON *cm, struct sm_auth_trust_data *ret,
                                 struct sm_error *reterr)
{
	struct sm_auth_trust_data t = {0};
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(cm, "kind");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(cm, "data");
	int r;

	if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "ConfigMap") != 0) {
		sm_error_set(reterr, "the answer is not a ConfigMap");
		return -EPROTO;
	}
	if (!cJSON_IsObject(data)) {
		*ret = t;
		return 0;
	}
	r = pem_value(data, "client-ca-file", &t.client_ca_pem);
	if (r == 0)
		r = pem_value(data, "requestheader-client-ca-file", &t.requestheader_ca_pem);
	if (r == 0)
		r = json_list(data, "requestheader-allowed-names", &t.allowed_names, reterr);
	if (r == 0)
		r = json_list(data, "requestheader-username-headers", &t.headers.username, reterr);
	if (r == 0)
		r = json_list(data, "requestheader-group-headers", &t.headers.group, reterr);
	if (r == 0)
		r = json_list(data, "requestheader-extra-headers-prefix", &t.headers.extra_prefix,
		              reterr);
	if (r < 0) {
		sm_auth_trust_data_done(&t);
		return r;
	}
	*ret = t;
	return 0;
}

/* ---- trust material ---- */

void sm_auth_trust_unref(struct sm_auth_trust *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	X509_STORE_free(t->requestheader);
	X509_STORE_free(t->client);
	sm_ttl_cache_free(t->verified);
	sm_strv_done(&t->allowed_names);
	sm_strv_done(&t->headers.username);
	sm_strv_done(&t->headers.group);
	sm_strv_done(&t->headers.extra_prefix);
	free(t->summary);
	free(t);
}

/* A store holding every certificate of a PEM bundle; NULL with reterr when none. */
static X509_STORE *store_from_pem(const char *pem, const char *what, struct sm_error *reterr)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509_STORE *st = X509_STORE_new();
	X509 *x;
	int n = 0;

	if (!bio || !st)
		goto fail;
	for (;;) {
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!x)
			break;
		if (X509_STORE_add_cert(st, x) == 1)
			n++;
		X509_free(x);
	}
	ERR_clear_error();
	if (n == 0) {
		sm_error_set(reterr, "%s holds no PEM certificate", what);
		goto fail;
	}
	BIO_free(bio);
	return st;
fail:
	BIO_free(bio);
	X509_STORE_free(st);
	return NULL;
}

/* A CA bundle (PEM), whole. */
static char *read_file(const char *path, struct sm_error *reterr)
{
	struct sm_error e = {0};
	char *buf = NULL;

	if (sm_file_read(path, CA_FILE_MAX, 0, &buf, NULL, &e) < 0) {
		sm_error_set(reterr, "cannot read '%s': %s", path, e.message);
		return NULL;
	}
	return buf;
}

/* A CA file given in the config must be readable and hold a certificate at start. */
static int check_ca_file(const char *path, const char *key, struct sm_error *reterr)
{
	struct sm_error err = {0};
	X509_STORE *st;
	char *pem;

	if (!path)
		return 0;
	pem = read_file(path, &err);
	st = pem ? store_from_pem(pem, "it", &err) : NULL;
	free(pem);
	if (!st) {
		sm_error_set(reterr, "%s '%s': %s", key, path, err.message);
		return -EINVAL;
	}
	X509_STORE_free(st);
	return 0;
}

void sm_auth_trust_summary(const char *rh_pem, const char *client_pem,
                           const struct sm_strv *allowed_names, char *buf, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t pos = 0;

	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
		(void)EVP_DigestUpdate(ctx, rh_pem ? rh_pem : "", rh_pem ? strlen(rh_pem) : 0);
		(void)EVP_DigestUpdate(ctx, "|", 1);
		(void)EVP_DigestUpdate(ctx, client_pem ? client_pem : "",
		                       client_pem ? strlen(client_pem) : 0);
		(void)EVP_DigestFinal_ex(ctx, md, &mdlen);
	}
	EVP_MD_CTX_free(ctx);
	pos += (size_t)snprintf(buf, len, "front-proxy CA %s, client CA %s, allowed names [",
	                        rh_pem ? "set" : "none", client_pem ? "set" : "none");
	for (size_t i = 0; i < allowed_names->n && pos < len; i++)
		pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", i ? " " : "",
		                        allowed_names->v[i]);
	if (pos < len)
		pos += (size_t)snprintf(buf + pos, len - pos, "], CA digest ");
	for (unsigned int i = 0; i < 6 && i < mdlen && pos + 3 < len; i++)
		pos += (size_t)snprintf(buf + pos, len - pos, "%02x", md[i]);
}

struct sm_auth_trust *sm_auth_trust_get(struct sm_auth *a)
{
	struct sm_auth_trust *t;

	(void)pthread_mutex_lock(&a->lock);
	t = a->trust;
	atomic_fetch_add(&t->refs, 1);
	(void)pthread_mutex_unlock(&a->lock);
	return t;
}

/* Builds trust from the files and, when needed, the ConfigMap. */
static int trust_build(struct sm_auth *a, struct sm_auth_trust **ret, struct sm_error *reterr)
{
	struct sm_auth_trust_data cm = {0};
	struct sm_auth_trust *t = NULL;
	char *rh_pem = NULL, *client_pem = NULL;
	const struct sm_strv *names, *uh, *gh, *ep;
	char summary[512];
	int r;

	if (a->need_configmap) {
		cJSON *doc = NULL;
		long status = 0;
		char msg[200] = "";

		r = sm_kube_get(a->kube, CM_PATH, &status, &doc, reterr);
		if (r < 0)
			return r;
		if (status != 200) {
			const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");

			if (cJSON_IsString(m))
				(void)snprintf(msg, sizeof(msg), ": %s", m->valuestring);
			cJSON_Delete(doc);
			sm_error_set(reterr,
			             "reading kube-system/extension-apiserver-authentication: the "
			             "API server answered %ld%s",
			             status, msg);
			return status == 401 || status == 403 ? -EACCES : -EPROTO;
		}
		r = sm_auth_trust_from_configmap(doc, &cm, reterr);
		cJSON_Delete(doc);
		if (r < 0)
			return r;
	}
	r = -ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto out;
	atomic_init(&t->refs, 1);
	t->loaded = true;
	t->verified =
	    sm_ttl_cache_new(SM_AUTH_VERIFIED_MAX, (int64_t)SM_AUTH_VERIFIED_TTL_S * 1000);
	if (!t->verified)
		goto out;
	if (a->requestheader_ca_file) {
		rh_pem = read_file(a->requestheader_ca_file, reterr);
		if (!rh_pem) {
			r = -EINVAL;
			goto out;
		}
	} else {
		rh_pem = cm.requestheader_ca_pem;
		cm.requestheader_ca_pem = NULL;
	}
	if (a->client_ca_file) {
		client_pem = read_file(a->client_ca_file, reterr);
		if (!client_pem) {
			r = -EINVAL;
			goto out;
		}
	} else {
		client_pem = cm.client_ca_pem;
		cm.client_ca_pem = NULL;
	}
	if (rh_pem) {
		t->requestheader = store_from_pem(rh_pem, "the requestheader client CA", reterr);
		if (!t->requestheader) {
			r = -EINVAL;
			goto out;
		}
	}
	if (client_pem) {
		t->client = store_from_pem(client_pem, "the client CA", reterr);
		if (!t->client) {
			r = -EINVAL;
			goto out;
		}
	}
	/* The config's lists win over the ConfigMap's; with the CA from a file, only the
	 * config's count. */
	names =
	    a->allowed_names.n || a->requestheader_ca_file ? &a->allowed_names : &cm.allowed_names;
	uh = a->headers.username.n ? &a->headers.username : &cm.headers.username;
	gh = a->headers.group.n ? &a->headers.group : &cm.headers.group;
	ep = a->headers.extra_prefix.n ? &a->headers.extra_prefix : &cm.headers.extra_prefix;
	if (sm_auth_strv_copy(&t->allowed_names, names) < 0 ||
	    sm_auth_strv_copy(&t->headers.username, uh) < 0 ||
	    sm_auth_strv_copy(&t->headers.group, gh) < 0 ||
	    sm_auth_strv_copy(&t->headers.extra_prefix, ep) < 0)
		goto out;
	sm_auth_trust_summary(rh_pem, client_pem, &t->allowed_names, summary, sizeof(summary));
	t->summary = strdup(summary);
	if (!t->summary)
		goto out;
	*ret = t;
	t = NULL;
	r = 0;
out:
	if (t)
		sm_auth_trust_unref(t);
	if (rh_pem != cm.requestheader_ca_pem)
		free(rh_pem);
	if (client_pem != cm.client_ca_pem)
		free(client_pem);
	sm_auth_trust_data_done(&cm);
	return r;
}

/* Loads the trust material once; true when it is (now) loaded. */
static bool refresh(struct sm_auth *a)
{
	struct sm_error err = {0};
	struct sm_auth_trust *t = NULL, *old;
	int r;

	r = trust_build(a, &t, &err);
	if (r < 0) {
		if (!a->last_load_failed)
			sm_log_error(LOG_CTX,
			             "cannot load the client certificate authorities: %s; %s",
			             err.message,
			             a->trust->loaded ? "keeping the ones loaded before"
			                              : "no client certificate is trusted until "
			                                "they load (retrying)");
		a->last_load_failed = true;
		return false;
	}
	if (a->last_load_failed)
		sm_log_info(LOG_CTX, "client certificate authorities loaded again");
	a->last_load_failed = false;
	(void)pthread_mutex_lock(&a->lock);
	old = a->trust;
	if (!old->loaded || strcmp(old->summary, t->summary) != 0)
		sm_log_info(LOG_CTX, "authentication trust: %s", t->summary);
	a->trust = t;
	(void)pthread_mutex_unlock(&a->lock);
	sm_auth_trust_unref(old);
	return true;
}

static void *refresh_thread(void *arg)
{
	struct sm_auth *a = arg;
	bool ok = !a->last_load_failed;

	(void)pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		int64_t wait_ms = ok || a->refresh_ms < RETRY_MS ? a->refresh_ms : RETRY_MS;
		struct timespec deadline = sm_time_mono_deadline(wait_ms);

		while (!a->stopping &&
		       pthread_cond_timedwait(&a->cond, &a->lock, &deadline) != ETIMEDOUT)
			;
		if (a->stopping)
			break;
		(void)pthread_mutex_unlock(&a->lock);
		ok = refresh(a);
		(void)pthread_mutex_lock(&a->lock);
	}
	(void)pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* The files must be readable at start; the ConfigMap may come later. */
int sm_auth_trust_start(struct sm_auth *a, struct sm_error *reterr)
{
	struct sm_error err = {0};
	struct sm_auth_trust *t = NULL;
	int r;

	r = check_ca_file(a->requestheader_ca_file, "server.auth.requestheader_client_ca_file",
	                  reterr);
	if (r == 0)
		r = check_ca_file(a->client_ca_file, "server.auth.client_ca_file", reterr);
	if (r < 0)
		return r;
	r = trust_build(a, &t, &err);
	if (r < 0 && !a->need_configmap) {
		sm_error_set(reterr, "%s", err.message);
		return r;
	}
	if (r < 0) {
		sm_log_error(LOG_CTX,
		             "cannot load the client certificate authorities: %s; no client "
		             "certificate is trusted until they load (retrying every %ds)",
		             err.message, RETRY_MS / 1000);
		a->last_load_failed = true;
	} else {
		sm_log_info(LOG_CTX, "authentication trust: %s", t->summary);
		sm_auth_trust_unref(a->trust);
		a->trust = t;
	}
	r = -pthread_create(&a->thread, NULL, refresh_thread, a);
	if (r < 0) {
		sm_error_set(reterr, "cannot start the authentication refresh thread: %s",
		             strerror(-r));
		return r;
	}
	a->thread_started = true;
	return 0;
}

void sm_auth_trust_stop(struct sm_auth *a)
{
	if (!a->thread_started)
		return;
	{
		(void)pthread_mutex_lock(&a->lock);
		a->stopping = true;
		(void)pthread_cond_broadcast(&a->cond);
		(void)pthread_mutex_unlock(&a->lock);
		(void)pthread_join(a->thread, NULL);
	}
	a->thread_started = false;
}
