/* SPDX-License-Identifier: MIT */
/* A small Kubernetes API client over libcurl: a kubeconfig, the in-cluster service account or
 * an explicit server, token and CA; JSON GET/POST, or a GET keeping the raw body. What is
 * asked of it lives with the callers (pods.c: the ready pods of a namespace). */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scalemetrics/buf.h"
#include "scalemetrics/config.h"
#include "scalemetrics/file.h"
#include "scalemetrics/kube.h"
#include "scalemetrics/kubeconfig.h"

/*
 * Design: one curl easy handle per client, behind a mutex, so consecutive calls reuse the
 * connection; calls from several threads are serialised (they are rare: a pod list per scrape
 * round, cached token and access reviews). The token file is re-read whenever it changes
 * (sm_token_file), as projected service-account tokens rotate.
 */

#define SA_DIR           "/var/run/secrets/kubernetes.io/serviceaccount"
#define DEFAULT_TIMEOUT  10000
#define DEFAULT_MAX_BODY (64u << 20)

struct sm_kube_client {
	pthread_mutex_t lock;
	CURL *curl;
	char *server;   /* without a trailing '/': for messages */
	char *url_base; /* where requests go: server, or its host replaced by tls-server-name */
	struct curl_slist *connect_to; /* with tls-server-name: to the server's own address */
	char *origin;
	char *proxy;
	char *user_agent;
	struct sm_token_file token_file; /* path owned here; re-read when it changes */
	struct sm_kubeconfig_pem ca;
	struct sm_kubeconfig_pem cert;
	struct sm_kubeconfig_pem key;
	bool insecure;
	int64_t timeout_ms;
	size_t max_body;
	char *token; /* the kubeconfig's own, without a token file */
};

static bool empty(const char *s)
{
	return !s || !*s;
}

void sm_kube_options_from_config(const struct sm_kube_config *cfg, struct sm_kube_options *ret)
{
	*ret = (struct sm_kube_options){0};
	if (!cfg)
		return;
	ret->kubeconfig = cfg->kubeconfig;
	ret->context = cfg->context;
	ret->server = cfg->server;
	ret->token_file = cfg->token_file;
	ret->ca_file = cfg->ca_file;
	ret->insecure_skip_tls_verify = cfg->insecure_skip_tls_verify;
}

static void secret_free(char *s)
{
	if (s)
		memset(s, 0, strlen(s));
	free(s);
}

static void pem_clear(struct sm_kubeconfig_pem *p)
{
	free(p->file);
	if (p->data)
		memset(p->data, 0, p->len);
	free(p->data);
	*p = (struct sm_kubeconfig_pem){0};
}

void sm_kube_client_free(struct sm_kube_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	pthread_mutex_destroy(&c->lock);
	free(c->server);
	free(c->url_base);
	curl_slist_free_all(c->connect_to);
	free(c->origin);
	free(c->proxy);
	free(c->user_agent);
	free((char *)c->token_file.path);
	sm_token_file_done(&c->token_file);
	pem_clear(&c->ca);
	pem_clear(&c->cert);
	pem_clear(&c->key);
	secret_free(c->token);
	free(c);
}

static int replace(char **dst, const char *s)
{
	char *d = strdup(s);

	if (!d)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

static bool in_cluster(void)
{
	return !empty(getenv("KUBERNETES_SERVICE_HOST")) &&
	       !empty(getenv("KUBERNETES_SERVICE_PORT"));
}

/* https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT and the service account's files. */
static int service_account(struct sm_kubeconfig *k)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	size_t len = strlen(host) + strlen(port) + 16;
	struct stat st;

	k->server = malloc(len);
	if (!k->server)
		return -ENOMEM;
	/* An IPv6 service host needs brackets. */
	if (strchr(host, ':'))
		(void)snprintf(k->server, len, "https://[%s]:%s", host, port);
	else
		(void)snprintf(k->server, len, "https://%s:%s", host, port);
	k->token_file = strdup(SA_DIR "/token");
	if (!k->token_file)
		return -ENOMEM;
	if (stat(SA_DIR "/ca.crt", &st) == 0) {
		k->ca.file = strdup(SA_DIR "/ca.crt");
		if (!k->ca.file)
			return -ENOMEM;
	}
	return 0;
}

/* Puts the kubeconfig's position in the message: main and the collectors show only that. */
static int kubeconfig_failed(int r, const char *from, struct sm_error *reterr)
{
	char pos[sizeof(reterr->file) + 32] = "", msg[sizeof(reterr->message)];

	if (!reterr || r == -ENOMEM)
		return r;
	(void)snprintf(msg, sizeof(msg), "%s", reterr->message);
	if (reterr->file[0] && reterr->line)
		(void)snprintf(pos, sizeof(pos), "%s:%u:%u", reterr->file, reterr->line,
		               reterr->column);
	else if (reterr->file[0])
		(void)snprintf(pos, sizeof(pos), "%s", reterr->file);
	sm_error_clear(reterr);
	if (*pos)
		sm_error_set(reterr, "kubeconfig %s: %s", pos, msg);
	else
		sm_error_set(reterr, "%s: %s", from, msg);
	return r;
}

/* $KUBECONFIG's files, then ~/.kube/config. 0 with *ret_origin NULL: neither is there. */
static int default_kubeconfig(const char *context, struct sm_kubeconfig *k, char **ret_origin,
                              struct sm_error *reterr)
{
	const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
	const char **paths = NULL;
	char *list = NULL, *origin = NULL;
	size_t n = 0, len;
	struct stat st;
	int r = -ENOMEM;

	if (!empty(env)) {
		list = strdup(env);
		paths = calloc(strlen(env) + 1, sizeof(*paths)); /* one more than the ':' */
		if (!list || !paths)
			goto out;
		for (char *p = list;;) {
			char *colon = strchr(p, ':');

			paths[n++] = p;
			if (!colon)
				break;
			*colon = '\0';
			p = colon + 1;
		}
		len = strlen(env) + 32;
		origin = malloc(len);
		if (!origin)
			goto out;
		(void)snprintf(origin, len, "$KUBECONFIG '%s'", env);
		r = sm_kubeconfig_load(paths, n, true, context, k, reterr);
	} else if (!empty(home)) {
		len = strlen(home) + 16;
		list = malloc(len);
		if (!list)
			goto out;
		(void)snprintf(list, len, "%s/.kube/config", home);
		r = 0;
		if (stat(list, &st) != 0)
			goto out;
		len += 16;
		origin = malloc(len);
		if (!origin) {
			r = -ENOMEM;
			goto out;
		}
		(void)snprintf(origin, len, "kubeconfig '%s'", list);
		r = sm_kubeconfig_load((const char *const *)&list, 1, false, context, k, reterr);
	} else {
		r = 0;
	}
	if (r < 0) {
		r = kubeconfig_failed(r, origin, reterr);
		goto out;
	}
	*ret_origin = origin;
	origin = NULL;
out:
	free(origin);
	free(paths);
	free(list);
	return r;
}

/* The server, trust and credentials the options select, in k; a description in *ret_origin. */
static int resolve(const struct sm_kube_options *opts, struct sm_kubeconfig *k, char **ret_origin,
                   struct sm_error *reterr)
{
	const char *origin = NULL;
	char *found = NULL;
	int r;

	if (!empty(opts->kubeconfig)) {
		size_t len = strlen(opts->kubeconfig) + 16;

		found = malloc(len);
		if (!found)
			return -ENOMEM;
		(void)snprintf(found, len, "kubeconfig '%s'", opts->kubeconfig);
		r = sm_kubeconfig_load(&opts->kubeconfig, 1, false, opts->context, k, reterr);
		if (r < 0) {
			free(found);
			return kubeconfig_failed(r, "kubernetes.kubeconfig", reterr);
		}
	} else if (!empty(opts->server)) {
		if (!empty(opts->context)) {
			sm_error_set(reterr,
			             "kubernetes.context '%s' needs a kubeconfig, and "
			             "kubernetes.server is set without kubernetes.kubeconfig",
			             opts->context);
			return -EINVAL;
		}
		origin = "kubernetes.server";
	} else if (empty(opts->context) && in_cluster()) {
		r = service_account(k);
		if (r < 0)
			return r;
		origin = "the in-cluster service account";
	} else {
		r = default_kubeconfig(opts->context, k, &found, reterr);
		if (r < 0)
			return r;
		if (!found) {
			if (!empty(opts->context))
				sm_error_set(
				    reterr,
				    "kubernetes.context '%s' is set, but there is no "
				    "kubeconfig: kubernetes.kubeconfig and $KUBECONFIG are "
				    "not set and ~/.kube/config does not exist",
				    opts->context);
			else
				sm_error_set(
				    reterr,
				    "no Kubernetes API server: not running in a cluster "
				    "(KUBERNETES_SERVICE_HOST/PORT are not set), and neither "
				    "kubernetes.kubeconfig, kubernetes.server, $KUBECONFIG nor "
				    "~/.kube/config gives one");
			return -EINVAL;
		}
	}
	if (found) {
		size_t len = strlen(found) + strlen(k->context) + 16;

		*ret_origin = malloc(len);
		if (*ret_origin)
			(void)snprintf(*ret_origin, len, "%s, context '%s'", found, k->context);
		free(found);
	} else {
		*ret_origin = strdup(origin);
	}
	if (!*ret_origin)
		return -ENOMEM;

	/* The explicit keys win over a kubeconfig and the service account, as kubectl's flags
	 * (--server, --token, --certificate-authority, --insecure-skip-tls-verify) do. */
	if (!empty(opts->server) && replace(&k->server, opts->server) < 0)
		return -ENOMEM;
	if (!empty(opts->token_file)) {
		if (replace(&k->token_file, opts->token_file) < 0)
			return -ENOMEM;
		secret_free(k->token);
		k->token = NULL;
	}
	if (!empty(opts->ca_file)) {
		pem_clear(&k->ca);
		k->ca.file = strdup(opts->ca_file);
		if (!k->ca.file)
			return -ENOMEM;
		k->insecure_skip_tls_verify = false;
	}
	if (!empty(opts->cert_file)) {
		pem_clear(&k->client_cert);
		k->client_cert.file = strdup(opts->cert_file);
		if (!k->client_cert.file)
			return -ENOMEM;
	}
	if (!empty(opts->key_file)) {
		pem_clear(&k->client_key);
		k->client_key.file = strdup(opts->key_file);
		if (!k->client_key.file)
			return -ENOMEM;
	}
	if (opts->insecure_skip_tls_verify) {
		pem_clear(&k->ca);
		k->insecure_skip_tls_verify = true;
	}
	return 0;
}

/* With tls-server-name, requests name that host (so SNI and the certificate check use it)
 * and CURLOPT_CONNECT_TO sends them to the server's own address, as Go's ServerName does. */
static int set_url_base(struct sm_kube_client *c, const char *tls_server_name,
                        struct sm_error *reterr)
{
	CURLU *u = NULL;
	char *host = NULL, *port = NULL, *url = NULL, *to = NULL;
	struct curl_slist *l;
	size_t len;
	int r = -ENOMEM;

	if (empty(tls_server_name)) {
		c->url_base = strdup(c->server);
		return c->url_base ? 0 : -ENOMEM;
	}
	u = curl_url();
	if (!u)
		goto out;
	if (curl_url_set(u, CURLUPART_URL, c->server, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_HOST, tls_server_name, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
		sm_error_set(reterr, "tls-server-name '%s' with server '%s': not a valid URL",
		             tls_server_name, c->server);
		r = -EINVAL;
		goto out;
	}
	len = strlen(url);
	while (len > 0 && url[len - 1] == '/')
		len--;
	c->url_base = strndup(url, len);
	len = strlen(tls_server_name) + strlen(host) + 2 * strlen(port) + 4;
	to = malloc(len);
	if (!c->url_base || !to)
		goto out;
	(void)snprintf(to, len, "%s:%s:%s:%s", tls_server_name, port, host, port);
	l = curl_slist_append(NULL, to);
	if (!l)
		goto out;
	c->connect_to = l;
	r = 0;
out:
	free(to);
	curl_free(url);
	curl_free(port);
	curl_free(host);
	curl_url_cleanup(u);
	return r;
}

int sm_kube_client_new(const struct sm_kube_options *opts, struct sm_kube_client **ret,
                       struct sm_error *reterr)
{
	struct sm_kube_client *c = NULL;
	struct sm_kubeconfig k = {0};
	size_t len;
	int r = -ENOMEM;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		return -ENOMEM;
	}
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT;
	c->max_body = opts->max_body_bytes ? opts->max_body_bytes : DEFAULT_MAX_BODY;

	r = resolve(opts, &k, &c->origin, reterr);
	if (r < 0)
		goto out;
	if (strncmp(k.server, "https://", 8) != 0 && strncmp(k.server, "http://", 7) != 0) {
		char shown[1024];

		sm_config_url_redact(k.server, shown, sizeof(shown));
		sm_error_set(reterr, "kubernetes server '%s': expected an http(s):// URL", shown);
		r = -EINVAL;
		goto out;
	}
	r = -ENOMEM;
	len = strlen(k.server);
	while (len > 0 && k.server[len - 1] == '/')
		len--;
	c->server = strndup(k.server, len);
	if (!c->server)
		goto out;
	r = set_url_base(c, k.tls_server_name, reterr);
	if (r < 0)
		goto out;
	/* Moved, not copied: the secrets exist once. */
	c->insecure = k.insecure_skip_tls_verify;
	c->proxy = k.proxy_url;
	c->token_file.path = k.token_file;
	c->token = k.token;
	c->ca = k.ca;
	c->cert = k.client_cert;
	c->key = k.client_key;
	k.proxy_url = k.token_file = k.token = NULL;
	k.ca = k.client_cert = k.client_key = (struct sm_kubeconfig_pem){0};
	r = -ENOMEM;
	if (!empty(opts->user_agent)) {
		c->user_agent = strdup(opts->user_agent);
		if (!c->user_agent)
			goto out;
	}
	c->curl = curl_easy_init();
	if (!c->curl)
		goto out;
	*ret = c;
	c = NULL;
	r = 0;
out:
	sm_kubeconfig_done(&k);
	sm_kube_client_free(c);
	return r;
}

const char *sm_kube_client_server(const struct sm_kube_client *c)
{
	return c ? c->server : NULL;
}

const char *sm_kube_client_origin(const struct sm_kube_client *c)
{
	return c ? c->origin : NULL;
}

char *sm_kube_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *out;

	if (!e)
		return NULL;
	out = strdup(e);
	curl_free(e);
	return out;
}

/* Under the lock. The token to send: the file's, re-read when it changed, else the
 * kubeconfig's own (or none). */
static int current_token(struct sm_kube_client *c, const char **ret, struct sm_error *reterr)
{
	int r;

	if (!c->token_file.path) {
		*ret = c->token;
		return 0;
	}
	r = sm_token_file_refresh(&c->token_file, SM_KUBE_TOKEN_MAX, reterr);
	if (r < 0) {
		sm_error_clear(reterr);
		sm_error_set(reterr, "token file '%s': %s", c->token_file.path, strerror(-r));
		return r == -ENOMEM ? r : -EACCES;
	}
	*ret = c->token_file.value;
	return 0;
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EPROTO;
	}
}

static void set_pem(CURL *curl, const struct sm_kubeconfig_pem *p, CURLoption file_opt,
                    CURLoption blob_opt)
{
	/* The client outlives every request, so curl need not copy the bytes. */
	struct curl_blob blob = {.data = p->data, .len = p->len, .flags = CURL_BLOB_NOCOPY};

	if (p->data)
		(void)curl_easy_setopt(curl, blob_opt, &blob);
	else if (p->file)
		(void)curl_easy_setopt(curl, file_opt, p->file);
}

/* A configured CA is the only trust (as kubectl has it), not added to the system's. */
static void set_tls(struct sm_kube_client *c)
{
	if (c->ca.data || c->ca.file) {
		set_pem(c->curl, &c->ca, CURLOPT_CAINFO, CURLOPT_CAINFO_BLOB);
		(void)curl_easy_setopt(c->curl, CURLOPT_CAPATH, NULL);
	}
	set_pem(c->curl, &c->cert, CURLOPT_SSLCERT, CURLOPT_SSLCERT_BLOB);
	set_pem(c->curl, &c->key, CURLOPT_SSLKEY, CURLOPT_SSLKEY_BLOB);
}

/* One round trip; the body in *b (its max set here), which the caller frees. */
static int request(struct sm_kube_client *c, const char *method, const char *path,
                   const struct cJSON *json, long *ret_status, struct sm_buf *b,
                   struct sm_error *reterr)
{
	struct curl_slist *headers = NULL, *h;
	char errbuf[CURL_ERROR_SIZE] = "";
	char *url = NULL, *auth = NULL, *payload = NULL;
	const char *token = NULL;
	size_t url_len;
	long status = 0;
	CURLcode rc;
	int r;

	if (!path || path[0] != '/')
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	r = current_token(c, &token, reterr);
	if (r < 0)
		goto out;
	b->max = c->max_body;
	r = -ENOMEM;
	url_len = strlen(c->url_base) + strlen(path) + 1;
	url = malloc(url_len);
	if (!url)
		goto out;
	(void)snprintf(url, url_len, "%s%s", c->url_base, path);
	h = curl_slist_append(headers, "Accept: application/json");
	if (!h)
		goto out;
	headers = h;
	if (token && *token) {
		size_t len = strlen(token) + 32;

		auth = malloc(len);
		if (!auth)
			goto out;
		(void)snprintf(auth, len, "Authorization: Bearer %s", token);
		h = curl_slist_append(headers, auth);
		if (!h)
			goto out;
		headers = h;
	}
	if (json) {
		payload = cJSON_PrintUnformatted(json);
		if (!payload)
			goto out;
		h = curl_slist_append(headers, "Content-Type: application/json");
		if (!h)
			goto out;
		headers = h;
	}

	curl_easy_reset(c->curl);
	(void)curl_easy_setopt(c->curl, CURLOPT_URL, url);
	(void)curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	(void)curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	(void)curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	(void)curl_easy_setopt(c->curl, CURLOPT_ACCEPT_ENCODING, "");
	(void)curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, sm_buf_curl_write);
	(void)curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, b);
	if (c->user_agent)
		(void)curl_easy_setopt(c->curl, CURLOPT_USERAGENT, c->user_agent);
	(void)curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
	(void)curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
	set_tls(c);
	if (c->connect_to)
		(void)curl_easy_setopt(c->curl, CURLOPT_CONNECT_TO, c->connect_to);
	if (c->proxy)
		(void)curl_easy_setopt(c->curl, CURLOPT_PROXY, c->proxy);
	if (c->insecure) {
		(void)curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		(void)curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (payload) {
		(void)curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, payload);
	}
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		char shown[1024];

		/* The configured server, not the tls-server-name one the request went to. */
		sm_config_url_redact(c->server, shown, sizeof(shown));
		(void)snprintf(shown + strlen(shown), sizeof(shown) - strlen(shown), "%s", path);
		if (b->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			sm_error_set(reterr, "%s %s: response larger than %zu bytes", method, shown,
			             c->max_body);
			r = -E2BIG;
		} else {
			sm_error_set(reterr, "%s %s: %s", method, shown,
			             *errbuf ? errbuf : curl_easy_strerror(rc));
			r = curl_errno(rc);
		}
		goto out;
	}
	(void)curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	*ret_status = status;
	r = 0;
out:
	/* The handle must not keep pointers into what is freed here. */
	if (c->curl)
		curl_easy_reset(c->curl);
	pthread_mutex_unlock(&c->lock);
	curl_slist_free_all(headers);
	if (auth) {
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	free(payload);
	free(url);
	return r;
}

/* A round trip whose answer is parsed as JSON (NULL when it is not). */
static int request_json(struct sm_kube_client *c, const char *method, const char *path,
                        const struct cJSON *json, long *ret_status, struct cJSON **ret_json,
                        struct sm_error *reterr)
{
	struct sm_buf b = {0};
	long status = 0;
	int r;

	r = request(c, method, path, json, &status, &b, reterr);
	if (r == 0) {
		*ret_status = status;
		*ret_json = b.data ? cJSON_ParseWithLength(b.data, b.len) : NULL;
	}
	free(b.data);
	return r;
}

int sm_kube_get(struct sm_kube_client *c, const char *path, long *ret_status,
                struct cJSON **ret_json, struct sm_error *reterr)
{
	return request_json(c, "GET", path, NULL, ret_status, ret_json, reterr);
}

int sm_kube_get_body(struct sm_kube_client *c, const char *path, long *ret_status,
                     struct sm_buf *ret_body, struct sm_error *reterr)
{
	return request(c, "GET", path, NULL, ret_status, ret_body, reterr);
}

int sm_kube_post(struct sm_kube_client *c, const char *path, const struct cJSON *body,
                 long *ret_status, struct cJSON **ret_json, struct sm_error *reterr)
{
	if (!body)
		return -EINVAL;
	return request_json(c, "POST", path, body, ret_status, ret_json, reterr);
}
