/* SPDX-License-Identifier: MIT */
/* Authentication (front-proxy request headers, client certificates, TokenReview, anonymous)
 * and the per-request gate that runs it and then the authorizer (authz.c). */
#include "scalemetrics/auth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "scalemetrics/api.h"
#include "scalemetrics/authz.h"
#include "scalemetrics/file.h"
#include "scalemetrics/kube.h"
#include "scalemetrics/log.h"
#include "scalemetrics/telemetry.h"
#include "scalemetrics/ttl-cache.h"
#include "scalemetrics/urlenc.h"

/*
 * Design:
 * - Trust material (CA stores, allowed names, header names) lives in an immutable, reference
 *   counted struct trust. The refresh thread builds a new one from the files and/or the
 *   ConfigMap and swaps it in under a mutex; each request takes a reference for its duration.
 * - The Kubernetes client is ours (its own connection and lock), shared by TokenReviews,
 *   SubjectAccessReviews and the ConfigMap reads.
 * - Failures close: a presented certificate that no authenticator accepts, a token that cannot
 *   be checked -> 401; a needed SubjectAccessReview that cannot be made -> 503 (transport) or
 *   500 (the API server refused it); never served.
 */

#define LOG_CTX             "auth"
#define CM_PATH             "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
#define TOKENREVIEW_PATH    "/apis/authentication.k8s.io/v1/tokenreviews"
#define TOKEN_CACHE_MAX     4096
#define RETRY_MS            5000
#define AUTHENTICATED_GROUP "system:authenticated"
#define ANONYMOUS_USER      "system:anonymous"
#define ANONYMOUS_GROUP     "system:unauthenticated"
#define MAX_PEER_CERTS      16
#define VERIFIED_MAX        1024
#define CA_FILE_MAX         (4 * 1024 * 1024)
#define VERIFIED_TTL_S      300

/* ---- users ---- */

static const char *const method_names[] = {
    [SM_AUTH_METHOD_NONE] = "none",
    [SM_AUTH_METHOD_ANONYMOUS] = "anonymous",
    [SM_AUTH_METHOD_FRONT_PROXY] = "front-proxy",
    [SM_AUTH_METHOD_CLIENT_CERT] = "client-cert",
    [SM_AUTH_METHOD_TOKEN] = "token",
};
_Static_assert(sizeof(method_names) / sizeof(method_names[0]) == SM_AUTH_METHOD_MAX,
               "method_names must have SM_AUTH_METHOD_MAX entries");

const char *sm_auth_method_to_string(enum sm_auth_method m)
{
	if (m < 0 || m >= SM_AUTH_METHOD_MAX)
		return NULL;
	return method_names[m];
}

void sm_auth_outcome_done(struct sm_auth_outcome *o)
{
	if (!o)
		return;
	sm_auth_user_done(&o->user);
	free(o->reason);
	*o = (struct sm_auth_outcome){0};
}

void sm_auth_user_done(struct sm_auth_user *u)
{
	if (!u)
		return;
	free(u->name);
	free(u->uid);
	sm_strv_done(&u->groups);
	for (size_t i = 0; i < u->n_extra; i++) {
		free(u->extra[i].key);
		sm_strv_done(&u->extra[i].values);
	}
	free(u->extra);
	*u = (struct sm_auth_user){0};
}

static int strv_push(struct sm_strv *v, const char *s, size_t len)
{
	char **nv;
	char *copy = strndup(s, len);

	if (!copy)
		return -ENOMEM;
	nv = realloc(v->v, (v->n + 2) * sizeof(char *));
	if (!nv) {
		free(copy);
		return -ENOMEM;
	}
	v->v = nv;
	v->v[v->n++] = copy;
	v->v[v->n] = NULL;
	return 0;
}

bool sm_auth_user_in_group(const struct sm_auth_user *u, const char *g)
{
	for (size_t i = 0; u && i < u->groups.n; i++)
		if (strcmp(u->groups.v[i], g) == 0)
			return true;
	return false;
}

int sm_auth_user_add_group(struct sm_auth_user *u, const char *g)
{
	if (sm_auth_user_in_group(u, g))
		return 0;
	return strv_push(&u->groups, g, strlen(g));
}

static struct sm_auth_extra *extra_get(struct sm_auth_user *u, const char *key, size_t klen)
{
	struct sm_auth_extra *ne;

	for (size_t i = 0; i < u->n_extra; i++)
		if (strlen(u->extra[i].key) == klen && memcmp(u->extra[i].key, key, klen) == 0)
			return &u->extra[i];
	ne = realloc(u->extra, (u->n_extra + 1) * sizeof(*ne));
	if (!ne)
		return NULL;
	u->extra = ne;
	ne = &u->extra[u->n_extra];
	*ne = (struct sm_auth_extra){.key = strndup(key, klen)};
	if (!ne->key)
		return NULL;
	u->n_extra++;
	return ne;
}

cJSON *sm_auth_strv_to_json(const struct sm_strv *v)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < v->n; i++) {
		cJSON *s = cJSON_CreateString(v->v[i]);

		if (!s || !cJSON_AddItemToArray(a, s)) {
			cJSON_Delete(s);
			cJSON_Delete(a);
			return NULL;
		}
	}
	return a;
}

cJSON *sm_auth_user_to_json(const struct sm_auth_user *u)
{
	cJSON *j = cJSON_CreateObject();
	cJSON *g, *ex;

	if (!j || !cJSON_AddStringToObject(j, "username", u->name ? u->name : ""))
		goto fail;
	if (u->uid && !cJSON_AddStringToObject(j, "uid", u->uid))
		goto fail;
	g = sm_auth_strv_to_json(&u->groups);
	if (!g || !cJSON_AddItemToObject(j, "groups", g)) {
		cJSON_Delete(g);
		goto fail;
	}
	ex = cJSON_AddObjectToObject(j, "extra");
	if (!ex)
		goto fail;
	for (size_t i = 0; i < u->n_extra; i++) {
		cJSON *vals = sm_auth_strv_to_json(&u->extra[i].values);

		if (!vals || !cJSON_AddItemToObject(ex, u->extra[i].key, vals)) {
			cJSON_Delete(vals);
			goto fail;
		}
	}
	return j;
fail:
	cJSON_Delete(j);
	return NULL;
}

/* Appends the strings of a JSON array (others are skipped). */
static int strv_from_json(const cJSON *a, struct sm_strv *v)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, a)
	{
		if (cJSON_IsString(it) &&
		    strv_push(v, it->valuestring, strlen(it->valuestring)) < 0)
			return -ENOMEM;
	}
	return 0;
}

int sm_auth_user_from_json(const cJSON *j, struct sm_auth_user *ret)
{
	struct sm_auth_user u = {0};
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "username");
	const cJSON *uid = cJSON_GetObjectItemCaseSensitive(j, "uid");
	const cJSON *extra = cJSON_GetObjectItemCaseSensitive(j, "extra");
	const cJSON *it;

	if (!cJSON_IsString(name) || !name->valuestring[0])
		return -EPROTO;
	u.name = strdup(name->valuestring);
	if (!u.name)
		goto oom;
	if (cJSON_IsString(uid) && uid->valuestring[0]) {
		u.uid = strdup(uid->valuestring);
		if (!u.uid)
			goto oom;
	}
	if (strv_from_json(cJSON_GetObjectItemCaseSensitive(j, "groups"), &u.groups) < 0)
		goto oom;
	if (cJSON_IsObject(extra)) {
		cJSON_ArrayForEach(it, extra)
		{
			struct sm_auth_extra *e;

			if (!it->string)
				continue;
			e = extra_get(&u, it->string, strlen(it->string));
			if (!e || strv_from_json(it, &e->values) < 0)
				goto oom;
		}
	}
	*ret = u;
	return 0;
oom:
	sm_auth_user_done(&u);
	return -ENOMEM;
}

/* ---- request headers (docs/api.md "Front-proxy authentication") ---- */

static const char *const default_user_headers[] = {"X-Remote-User", NULL};
static const char *const default_group_headers[] = {"X-Remote-Group", NULL};
static const char *const default_extra_prefixes[] = {"X-Remote-Extra-", NULL};

static const char *const *names_or(const struct sm_strv *v, const char *const *def)
{
	return v && v->n > 0 ? (const char *const *)v->v : def;
}

int sm_auth_user_from_headers(const struct sm_auth_header_names *names,
                              const struct sm_auth_header *headers, size_t n_headers,
                              struct sm_auth_user *ret)
{
	const char *const *user_h = names_or(names ? &names->username : NULL, default_user_headers);
	const char *const *group_h = names_or(names ? &names->group : NULL, default_group_headers);
	const char *const *extra_p =
	    names_or(names ? &names->extra_prefix : NULL, default_extra_prefixes);
	struct sm_auth_user u = {0};
	const char *user = NULL;

	for (const char *const *h = user_h; *h && !user; h++)
		for (size_t i = 0; i < n_headers && !user; i++)
			if (strcasecmp(headers[i].name, *h) == 0 && headers[i].value &&
			    headers[i].value[0])
				user = headers[i].value;
	if (!user)
		return 0;
	u.name = strdup(user);
	if (!u.name)
		goto oom;
	for (const char *const *h = group_h; *h; h++)
		for (size_t i = 0; i < n_headers; i++)
			if (strcasecmp(headers[i].name, *h) == 0 && headers[i].value &&
			    headers[i].value[0] &&
			    strv_push(&u.groups, headers[i].value, strlen(headers[i].value)) < 0)
				goto oom;
	for (size_t i = 0; i < n_headers; i++) {
		for (const char *const *p = extra_p; *p; p++) {
			size_t plen = strlen(*p);
			const char *rest;
			struct sm_auth_extra *e;
			char *key, *dec;
			const char *name;

			if (strncasecmp(headers[i].name, *p, plen) != 0)
				continue;
			rest = headers[i].name + plen;
			key = strdup(rest);
			dec = malloc(strlen(rest) + 1);
			if (!key || !dec) {
				free(key);
				free(dec);
				goto oom;
			}
			for (char *c = key; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c + 32);
			/* url.PathUnescape, as the apiserver does; undecodable: as sent. */
			name = sm_url_decode(key, strlen(key), dec, false) == 0 ? dec : key;
			e = extra_get(&u, name, strlen(name));
			free(key);
			free(dec);
			if (!e || strv_push(&e->values, headers[i].value ? headers[i].value : "",
			                    strlen(headers[i].value ? headers[i].value : "")) < 0)
				goto oom;
			break;
		}
	}
	*ret = u;
	return 1;
oom:
	sm_auth_user_done(&u);
	return -ENOMEM;
}

/* ---- the ConfigMap (docs/api.md "The extension-apiserver-authentication ConfigMap") ---- */

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
		    strv_push(ret, it->valuestring, strlen(it->valuestring)) < 0) {
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

/* ---- tokens ---- */

bool sm_auth_bearer_token(const char *value, const char **ret_token, size_t *ret_len)
{
	const char *p, *end;

	if (!value)
		return false;
	/* strings.TrimSpace, then "scheme token[ rest]" split on single spaces. */
	while (*value == ' ' || *value == '\t')
		value++;
	if (strncasecmp(value, "bearer ", 7) != 0)
		return false;
	p = value + 7;
	end = strchr(p, ' ');
	if (!end)
		end = p + strlen(p);
	while (end > p && (end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if (end == p)
		return false;
	*ret_token = p;
	*ret_len = (size_t)(end - p);
	return true;
}

cJSON *sm_auth_token_review_request(const char *token)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *spec;

	if (!doc || !cJSON_AddStringToObject(doc, "apiVersion", "authentication.k8s.io/v1") ||
	    !cJSON_AddStringToObject(doc, "kind", "TokenReview"))
		goto fail;
	spec = cJSON_AddObjectToObject(doc, "spec");
	if (!spec || !cJSON_AddStringToObject(spec, "token", token))
		goto fail;
	return doc;
fail:
	cJSON_Delete(doc);
	return NULL;
}

int sm_auth_token_review_parse(const cJSON *doc, struct sm_auth_user *ret_user,
                               struct sm_error *reterr)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(doc, "kind");
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(doc, "status");
	const cJSON *err;
	int r;

	if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "TokenReview") != 0) {
		sm_error_set(reterr, "the answer is not a TokenReview");
		return -EPROTO;
	}
	if (!cJSON_IsObject(status) ||
	    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(status, "authenticated"))) {
		err = cJSON_GetObjectItemCaseSensitive(status, "error");
		sm_error_set(reterr, "token not authenticated%s%s", cJSON_IsString(err) ? ": " : "",
		             cJSON_IsString(err) ? err->valuestring : "");
		return 0;
	}
	r = sm_auth_user_from_json(cJSON_GetObjectItemCaseSensitive(status, "user"), ret_user);
	if (r == -EPROTO) {
		sm_error_set(reterr, "TokenReview authenticated the token without a username");
		return 0;
	}
	return r < 0 ? r : 1;
}

/* ---- trust material ---- */

struct trust {
	atomic_int refs;
	bool loaded; /* false: nothing could be read yet (no certificate is trusted) */
	X509_STORE *requestheader;
	X509_STORE *client;
	struct sm_ttl_cache *verified; /* see peer_subject() */
	struct sm_strv allowed_names;
	struct sm_auth_header_names headers;
	char *summary; /* what it was built from, to log changes */
};

static void trust_unref(struct trust *t)
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

static int strv_copy(struct sm_strv *dst, const struct sm_strv *src)
{
	for (size_t i = 0; i < src->n; i++)
		if (strv_push(dst, src->v[i], strlen(src->v[i])) < 0)
			return -ENOMEM;
	return 0;
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

/* ---- the authenticator and gate ---- */

struct sm_auth {
	struct sm_kube_client *kube;
	struct sm_authz *authz;
	struct sm_ttl_cache *tokens;
	struct sm_telemetry *telemetry; /* borrowed; may be NULL */
	/* From the config (copies). */
	char *requestheader_ca_file;
	char *client_ca_file;
	struct sm_strv allowed_names;
	struct sm_auth_header_names headers;
	int64_t refresh_ms;
	bool need_configmap;

	pthread_mutex_t lock; /* guards trust, stopping; with cond */
	pthread_cond_t cond;
	struct trust *trust;
	bool stopping;
	bool thread_started;
	pthread_t thread;
	bool last_load_failed;
};

static struct trust *trust_get(struct sm_auth *a)
{
	struct trust *t;

	(void)pthread_mutex_lock(&a->lock);
	t = a->trust;
	atomic_fetch_add(&t->refs, 1);
	(void)pthread_mutex_unlock(&a->lock);
	return t;
}

/* Builds trust from the files and, when needed, the ConfigMap. */
static int trust_build(struct sm_auth *a, struct trust **ret, struct sm_error *reterr)
{
	struct sm_auth_trust_data cm = {0};
	struct trust *t = NULL;
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
	t->verified = sm_ttl_cache_new(VERIFIED_MAX, (int64_t)VERIFIED_TTL_S * 1000);
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
	if (strv_copy(&t->allowed_names, names) < 0 || strv_copy(&t->headers.username, uh) < 0 ||
	    strv_copy(&t->headers.group, gh) < 0 || strv_copy(&t->headers.extra_prefix, ep) < 0)
		goto out;
	{
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		size_t pos = 0;

		if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
			(void)EVP_DigestUpdate(ctx, rh_pem ? rh_pem : "",
			                       rh_pem ? strlen(rh_pem) : 0);
			(void)EVP_DigestUpdate(ctx, "|", 1);
			(void)EVP_DigestUpdate(ctx, client_pem ? client_pem : "",
			                       client_pem ? strlen(client_pem) : 0);
			(void)EVP_DigestFinal_ex(ctx, md, &mdlen);
		}
		EVP_MD_CTX_free(ctx);
		pos += (size_t)snprintf(summary, sizeof(summary),
		                        "front-proxy CA %s, client CA %s, allowed names [",
		                        rh_pem ? "set" : "none", client_pem ? "set" : "none");
		for (size_t i = 0; i < t->allowed_names.n && pos < sizeof(summary); i++)
			pos += (size_t)snprintf(summary + pos, sizeof(summary) - pos, "%s%s",
			                        i ? " " : "", t->allowed_names.v[i]);
		if (pos < sizeof(summary))
			pos +=
			    (size_t)snprintf(summary + pos, sizeof(summary) - pos, "], CA digest ");
		for (unsigned int i = 0; i < 6 && i < mdlen && pos + 3 < sizeof(summary); i++)
			pos +=
			    (size_t)snprintf(summary + pos, sizeof(summary) - pos, "%02x", md[i]);
		t->summary = strdup(summary);
		if (!t->summary)
			goto out;
	}
	*ret = t;
	t = NULL;
	r = 0;
out:
	if (t)
		trust_unref(t);
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
	struct trust *t = NULL, *old;
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
	trust_unref(old);
	return true;
}

static void *refresh_thread(void *arg)
{
	struct sm_auth *a = arg;
	bool ok = !a->last_load_failed;

	(void)pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		struct timespec deadline;
		int64_t wait_ms = ok || a->refresh_ms < RETRY_MS ? a->refresh_ms : RETRY_MS;

		(void)clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += (time_t)(wait_ms / 1000);
		deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
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

void sm_auth_free(struct sm_auth *a)
{
	if (!a)
		return;
	if (a->thread_started) {
		(void)pthread_mutex_lock(&a->lock);
		a->stopping = true;
		(void)pthread_cond_broadcast(&a->cond);
		(void)pthread_mutex_unlock(&a->lock);
		(void)pthread_join(a->thread, NULL);
	}
	trust_unref(a->trust);
	(void)pthread_cond_destroy(&a->cond);
	(void)pthread_mutex_destroy(&a->lock);
	sm_authz_free(a->authz);
	sm_ttl_cache_free(a->tokens);
	sm_kube_client_free(a->kube);
	free(a->requestheader_ca_file);
	free(a->client_ca_file);
	sm_strv_done(&a->allowed_names);
	sm_strv_done(&a->headers.username);
	sm_strv_done(&a->headers.group);
	sm_strv_done(&a->headers.extra_prefix);
	free(a);
}

int sm_auth_new(const struct sm_config *cfg, struct sm_telemetry *telemetry, struct sm_auth **ret,
                struct sm_error *reterr)
{
	const struct sm_server_config *sc = &cfg->server;
	struct sm_kube_options ko;
	struct sm_auth *a;
	pthread_condattr_t ca;
	int r;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (pthread_condattr_init(&ca) != 0) {
		free(a);
		return -ENOMEM;
	}
	(void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&a->lock, NULL) != 0 || pthread_cond_init(&a->cond, &ca) != 0) {
		(void)pthread_condattr_destroy(&ca);
		free(a);
		return -ENOMEM;
	}
	(void)pthread_condattr_destroy(&ca);
	a->trust = calloc(1, sizeof(*a->trust));
	if (!a->trust) {
		r = -ENOMEM;
		goto fail;
	}
	atomic_init(&a->trust->refs, 1);
	a->telemetry = telemetry;
	a->refresh_ms = sc->auth_refresh_interval_ms > 0 ? sc->auth_refresh_interval_ms : 60000;
	r = -ENOMEM;
	if (sc->requestheader_client_ca_file)
		a->requestheader_ca_file = strdup(sc->requestheader_client_ca_file);
	if (sc->client_ca_file)
		a->client_ca_file = strdup(sc->client_ca_file);
	if (!!a->requestheader_ca_file != !!sc->requestheader_client_ca_file ||
	    !!a->client_ca_file != !!sc->client_ca_file ||
	    strv_copy(&a->allowed_names, &sc->requestheader_allowed_names) < 0 ||
	    strv_copy(&a->headers.username, &sc->requestheader_username_headers) < 0 ||
	    strv_copy(&a->headers.group, &sc->requestheader_group_headers) < 0 ||
	    strv_copy(&a->headers.extra_prefix, &sc->requestheader_extra_headers_prefix) < 0)
		goto fail;
	a->need_configmap = !a->requestheader_ca_file || !a->client_ca_file;

	sm_kube_options_from_config(&cfg->kubernetes, &ko);
	r = sm_kube_client_new(&ko, &a->kube, reterr);
	if (r < 0) {
		char why[sizeof(reterr->message)];

		(void)snprintf(why, sizeof(why), "%s", reterr ? reterr->message : "");
		sm_error_set(
		    reterr,
		    "server.auth.mode delegated needs the Kubernetes API for "
		    "TokenReview and SubjectAccessReview: %s (set kubernetes.kubeconfig or "
		    "kubernetes.server, run in a cluster, or use server.auth.mode none for "
		    "local runs)",
		    why);
		goto fail;
	}
	{
		char shown[1024];

		sm_config_url_redact(sm_kube_client_server(a->kube), shown, sizeof(shown));
		sm_log_info(LOG_CTX, "Kubernetes API for access reviews: %s (from %s)", shown,
		            sm_kube_client_origin(a->kube));
	}
	a->tokens = sm_ttl_cache_new(TOKEN_CACHE_MAX, sc->cache_ttl_ms);
	if (!a->tokens) {
		r = -ENOMEM;
		goto fail;
	}
	r = sm_authz_new(a->kube, sc->cache_ttl_ms, &sc->always_allow_paths, telemetry, &a->authz);
	if (r < 0)
		goto fail;

	/* The files must be readable at start; the ConfigMap may come later. */
	{
		struct sm_error err = {0};
		struct trust *t = NULL;

		r = check_ca_file(a->requestheader_ca_file,
		                  "server.auth.requestheader_client_ca_file", reterr);
		if (r == 0)
			r = check_ca_file(a->client_ca_file, "server.auth.client_ca_file", reterr);
		if (r < 0)
			goto fail;
		r = trust_build(a, &t, &err);
		if (r < 0 && !a->need_configmap) {
			sm_error_set(reterr, "%s", err.message);
			goto fail;
		}
		if (r < 0) {
			sm_log_error(
			    LOG_CTX,
			    "cannot load the client certificate authorities: %s; no client "
			    "certificate is trusted until they load (retrying every %ds)",
			    err.message, RETRY_MS / 1000);
			a->last_load_failed = true;
		} else {
			sm_log_info(LOG_CTX, "authentication trust: %s", t->summary);
			trust_unref(a->trust);
			a->trust = t;
		}
	}
	r = -pthread_create(&a->thread, NULL, refresh_thread, a);
	if (r < 0) {
		sm_error_set(reterr, "cannot start the authentication refresh thread: %s",
		             strerror(-r));
		goto fail;
	}
	a->thread_started = true;
	*ret = a;
	return 0;
fail:
	sm_auth_free(a);
	return r;
}

/* Verifies the peer's chain against store for client use; the leaf on success (owned), with
 * *ret_keep true when every certificate of the verified chain is still valid VERIFIED_TTL_S
 * from now (the verdict may then be remembered that long). */
static X509 *verify_peer(X509_STORE *store, const struct sm_auth_request *req, bool *ret_keep,
                         char *why, size_t why_len)
{
	const unsigned char *p;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	X509_STORE_CTX *ctx = NULL;
	bool ok = false;

	p = req->peer_certs[0];
	leaf = d2i_X509(NULL, &p, (long)req->peer_cert_lens[0]);
	if (!leaf) {
		(void)snprintf(why, why_len, "the certificate does not parse");
		goto out;
	}
	chain = sk_X509_new_null();
	ctx = X509_STORE_CTX_new();
	if (!chain || !ctx) {
		(void)snprintf(why, why_len, "out of memory");
		goto out;
	}
	for (size_t i = 1; i < req->n_peer_certs && i < MAX_PEER_CERTS; i++) {
		X509 *x;

		p = req->peer_certs[i];
		x = d2i_X509(NULL, &p, (long)req->peer_cert_lens[i]);
		if (x && !sk_X509_push(chain, x))
			X509_free(x);
	}
	if (X509_STORE_CTX_init(ctx, store, leaf, chain) != 1 ||
	    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
		(void)snprintf(why, why_len, "cannot set up the verification");
		goto out;
	}
	ok = X509_verify_cert(ctx) == 1;
	if (!ok) {
		(void)snprintf(why, why_len, "%s",
		               X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	} else {
		STACK_OF(X509) *verified = X509_STORE_CTX_get0_chain(ctx);
		time_t limit = time(NULL) + VERIFIED_TTL_S;

		*ret_keep = verified != NULL;
		for (int i = 0; verified && i < sk_X509_num(verified); i++)
			if (X509_cmp_time(X509_get0_notAfter(sk_X509_value(verified, i)), &limit) !=
			    1)
				*ret_keep = false;
	}
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	if (!ok) {
		X509_free(leaf);
		return NULL;
	}
	return leaf;
}

/* The last value of nid in name (Go keeps the last CommonName), malloc'd; NULL if none. */
static char *name_entry(const X509_NAME *name, int nid, int *pos)
{
	int i = X509_NAME_get_index_by_NID(name, nid, *pos);
	const ASN1_STRING *d;
	unsigned char *utf8 = NULL;
	char *s;
	int len;

	if (i < 0)
		return NULL;
	*pos = i;
	d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	len = ASN1_STRING_to_UTF8(&utf8, d);
	if (len < 0)
		return strdup("");
	s = strndup((const char *)utf8, (size_t)len);
	OPENSSL_free(utf8);
	return s;
}

static char *common_name(X509 *x)
{
	const X509_NAME *n = X509_get_subject_name(x);
	char *cn = NULL, *next;
	int pos = -1;

	for (;;) {
		next = name_entry(n, NID_commonName, &pos);
		if (!next)
			break;
		free(cn);
		cn = next;
	}
	return cn;
}

enum authn_result {
	AUTHN_OK,
	AUTHN_NONE,        /* nothing applied */
	AUTHN_ERROR,       /* a credential was presented and did not authenticate */
	AUTHN_WOULD_BLOCK, /* cached_only, and the answer needs the API server */
};

/* The subject of the leaf as a user: the last CN as name (NULL when none), the non-empty
 * O's as groups, as Kubernetes' x509 authenticator reads it. */
static int subject_user(X509 *leaf, struct sm_auth_user *ret)
{
	struct sm_auth_user u = {0};
	char *o;
	int pos = -1;

	u.name = common_name(leaf);
	for (;;) {
		int r;

		o = name_entry(X509_get_subject_name(leaf), NID_organizationName, &pos);
		if (!o)
			break;
		r = o[0] ? strv_push(&u.groups, o, strlen(o)) : 0;
		free(o);
		if (r < 0) {
			sm_auth_user_done(&u);
			return -ENOMEM;
		}
	}
	*ret = u;
	return 0;
}

/* The subject of the peer's leaf certificate once its chain verifies against store: 1 with
 * *ret, 0 (with why) when it does not verify, -ENOMEM. Parsing the certificates and checking
 * their signatures cost about 20 times the rest of a request, and the front proxy presents
 * the same chain on every request, so a verified chain is remembered per trust (a new trust
 * starts afresh) for VERIFIED_TTL_S, and only when all of it is still valid by then. The key
 * is a digest of the store's role and every certificate presented; a failure is never kept. */
static int peer_subject(struct trust *t, X509_STORE *store, char role,
                        const struct sm_auth_request *req, int64_t now_ms, struct sm_auth_user *ret,
                        char *why, size_t why_len)
{
	size_t n = req->n_peer_certs < MAX_PEER_CERTS ? req->n_peer_certs : MAX_PEER_CERTS;
	size_t len = 1;
	unsigned char *data = NULL;
	char key[65] = "";
	char *cached = NULL;
	bool keep = false;
	X509 *leaf;
	int r;

	for (size_t i = 0; i < n; i++)
		len += sizeof(uint64_t) + req->peer_cert_lens[i];
	data = malloc(len);
	if (data) {
		unsigned char *p = data;

		*p++ = (unsigned char)role;
		for (size_t i = 0; i < n; i++) {
			uint64_t l = req->peer_cert_lens[i];

			memcpy(p, &l, sizeof(l));
			memcpy(p + sizeof(l), req->peer_certs[i], req->peer_cert_lens[i]);
			p += sizeof(l) + req->peer_cert_lens[i];
		}
		if (sm_auth_cache_key(data, len, key) < 0)
			key[0] = '\0';
		free(data);
	}
	if (key[0] && sm_ttl_cache_get(t->verified, key, now_ms, &cached)) {
		cJSON *j = cJSON_Parse(cached);

		free(cached);
		r = j ? sm_auth_user_from_json(j, ret) : -ENOMEM;
		cJSON_Delete(j);
		if (r == 0)
			return 1;
		if (r == -ENOMEM)
			return r;
	}
	leaf = verify_peer(store, req, &keep, why, why_len);
	if (!leaf)
		return 0;
	r = subject_user(leaf, ret);
	X509_free(leaf);
	if (r < 0)
		return r;
	/* Kept only with a name: sm_auth_user_from_json wants one. */
	if (key[0] && keep && ret->name && ret->name[0]) {
		cJSON *j = sm_auth_user_to_json(ret);
		char *v = j ? cJSON_PrintUnformatted(j) : NULL;

		if (!v || sm_ttl_cache_put(t->verified, key, v, now_ms) < 0)
			sm_log_debug(LOG_CTX, "verified certificates: out of memory");
		free(v);
		cJSON_Delete(j);
	}
	return 1;
}

static enum authn_result authn_requestheader(struct trust *t, const struct sm_auth_request *req,
                                             int64_t now_ms, struct sm_auth_user *ret, char *why,
                                             size_t why_len)
{
	struct sm_auth_user subject = {0};
	bool allowed = t->allowed_names.n == 0;
	int r;

	r = peer_subject(t, t->requestheader, 'R', req, now_ms, &subject, why, why_len);
	if (r <= 0) {
		if (r < 0)
			(void)snprintf(why, why_len, "out of memory");
		return AUTHN_ERROR;
	}
	for (size_t i = 0; subject.name && i < t->allowed_names.n; i++)
		allowed = allowed || strcmp(subject.name, t->allowed_names.v[i]) == 0;
	if (!allowed) {
		(void)snprintf(why, why_len, "subject with cn=%s is not in the allowed list",
		               subject.name ? subject.name : "");
		sm_auth_user_done(&subject);
		return AUTHN_ERROR;
	}
	sm_auth_user_done(&subject);
	r = sm_auth_user_from_headers(&t->headers, req->headers, req->n_headers, ret);
	if (r < 0) {
		(void)snprintf(why, why_len, "out of memory");
		return AUTHN_ERROR;
	}
	return r == 1 ? AUTHN_OK : AUTHN_NONE;
}

static enum authn_result authn_client_cert(struct trust *t, const struct sm_auth_request *req,
                                           int64_t now_ms, struct sm_auth_user *ret, char *why,
                                           size_t why_len)
{
	struct sm_auth_user u = {0};
	int r = peer_subject(t, t->client, 'C', req, now_ms, &u, why, why_len);

	if (r <= 0) {
		if (r < 0)
			(void)snprintf(why, why_len, "out of memory");
		return AUTHN_ERROR;
	}
	if (!u.name || !u.name[0]) {
		sm_auth_user_done(&u);
		return AUTHN_NONE;
	}
	*ret = u;
	return AUTHN_OK;
}

/* cached_only: a hit is not counted but noted in *ret_hit, for check() to count once the
 * request is decided (a request handed to a worker looks the token up again). */
static enum authn_result authn_token(struct sm_auth *a, const char *token, size_t len,
                                     int64_t now_ms, bool cached_only, bool *ret_hit,
                                     struct sm_auth_user *ret, char *why, size_t why_len)
{
	struct sm_error err = {0};
	struct sm_auth_user u = {0};
	cJSON *req = NULL, *resp = NULL;
	char key[65];
	char *cached = NULL, *tok = NULL;
	enum authn_result res = AUTHN_ERROR;
	long status = 0;
	int r;

	if (sm_auth_cache_key(token, len, key) < 0) {
		(void)snprintf(why, why_len, "cannot hash the token");
		return AUTHN_ERROR;
	}
	if (sm_ttl_cache_get(a->tokens, key, now_ms, &cached)) {
		cJSON *j = cached[0] ? cJSON_Parse(cached) : NULL;

		if (cached_only)
			*ret_hit = true;
		else
			sm_telemetry_auth_cache(a->telemetry, SM_TELEMETRY_CACHE_TOKENREVIEW, true);

		if (j && sm_auth_user_from_json(j, &u) == 0) {
			*ret = u;
			res = AUTHN_OK;
		} else {
			(void)snprintf(why, why_len, "token not authenticated (cached)");
		}
		cJSON_Delete(j);
		free(cached);
		return res;
	}
	if (cached_only)
		return AUTHN_WOULD_BLOCK;
	sm_telemetry_auth_cache(a->telemetry, SM_TELEMETRY_CACHE_TOKENREVIEW, false);
	tok = strndup(token, len);
	req = tok ? sm_auth_token_review_request(tok) : NULL;
	if (!req) {
		(void)snprintf(why, why_len, "out of memory");
		goto out;
	}
	r = sm_kube_post(a->kube, TOKENREVIEW_PATH, req, &status, &resp, &err);
	if (r < 0) {
		(void)snprintf(why, why_len, "TokenReview failed: %s", err.message);
		sm_log_warn(LOG_CTX, "cannot check a bearer token (answering 401): %s",
		            err.message);
		goto out;
	}
	if (status != 201 && status != 200) {
		(void)snprintf(why, why_len, "the API server answered the TokenReview with %ld",
		               status);
		sm_log_warn(LOG_CTX, "cannot check a bearer token (answering 401): %s", why);
		goto out;
	}
	r = sm_auth_token_review_parse(resp, &u, &err);
	if (r < 0) {
		(void)snprintf(why, why_len, "%s", err.message);
		goto out;
	}
	if (r == 0) {
		(void)snprintf(why, why_len, "%s", err.message);
		if (sm_ttl_cache_put(a->tokens, key, "", now_ms) < 0)
			sm_log_debug(LOG_CTX, "token cache: out of memory");
		goto out;
	}
	{
		cJSON *j = sm_auth_user_to_json(&u);
		char *s = j ? cJSON_PrintUnformatted(j) : NULL;

		if (s && sm_ttl_cache_put(a->tokens, key, s, now_ms) < 0)
			sm_log_debug(LOG_CTX, "token cache: out of memory");
		free(s);
		cJSON_Delete(j);
	}
	*ret = u;
	u = (struct sm_auth_user){0};
	res = AUTHN_OK;
out:
	sm_auth_user_done(&u);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	if (tok) {
		OPENSSL_cleanse(tok, len);
		free(tok);
	}
	return res;
}

static const char *header(const struct sm_auth_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_headers; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

/* The union of authenticators, then anonymous (docs/api.md "Other authenticators and anonymous
 * requests"). 0 with *ret, or -EACCES (401); either
 * way *ret_method: the authenticator that succeeded, or the last that failed. cached_only:
 * -EWOULDBLOCK when a bearer token would need a TokenReview, and *ret_token_hit set (not
 * counted) when it was found in the cache. */
static int authenticate(struct sm_auth *a, const struct sm_auth_request *req, int64_t now_ms,
                        bool cached_only, bool *ret_token_hit, struct sm_auth_user *ret,
                        enum sm_auth_method *ret_method, char *why, size_t why_len)
{
	struct trust *t = trust_get(a);
	enum authn_result res = AUTHN_NONE;
	enum sm_auth_method method = SM_AUTH_METHOD_NONE;
	bool failed = false;
	const char *token;
	size_t token_len;
	int r;

	why[0] = '\0';
	if (req->n_peer_certs > 0) {
		if (!t->loaded) {
			failed = true;
			method = SM_AUTH_METHOD_CLIENT_CERT;
			(void)snprintf(why, why_len, "no client certificate authority loaded yet");
		}
		if (t->requestheader) {
			res = authn_requestheader(t, req, now_ms, ret, why, why_len);
			failed |= res == AUTHN_ERROR;
			if (res != AUTHN_NONE)
				method = SM_AUTH_METHOD_FRONT_PROXY;
		}
		if (res != AUTHN_OK && t->client) {
			res = authn_client_cert(t, req, now_ms, ret, why, why_len);
			failed |= res == AUTHN_ERROR;
			if (res != AUTHN_NONE)
				method = SM_AUTH_METHOD_CLIENT_CERT;
		}
	}
	trust_unref(t);
	if (res != AUTHN_OK &&
	    sm_auth_bearer_token(header(req, "Authorization"), &token, &token_len)) {
		res = authn_token(a, token, token_len, now_ms, cached_only, ret_token_hit, ret, why,
		                  why_len);
		if (res == AUTHN_WOULD_BLOCK)
			return -EWOULDBLOCK;
		failed |= res == AUTHN_ERROR;
		if (res != AUTHN_NONE)
			method = SM_AUTH_METHOD_TOKEN;
	}
	*ret_method = method;
	if (res == AUTHN_OK) {
		r = sm_auth_user_add_group(ret, AUTHENTICATED_GROUP);
		if (r < 0) {
			sm_auth_user_done(ret);
			return r;
		}
		return 0;
	}
	if (failed)
		return -EACCES;
	*ret_method = SM_AUTH_METHOD_ANONYMOUS;
	*ret = (struct sm_auth_user){0};
	ret->name = strdup(ANONYMOUS_USER);
	if (!ret->name || sm_auth_user_add_group(ret, ANONYMOUS_GROUP) < 0) {
		sm_auth_user_done(ret);
		return -ENOMEM;
	}
	return 0;
}

static void oom_status(struct sm_api_response *ret)
{
	(void)sm_api_status(500, "InternalError", "Internal error occurred: out of memory", ret);
}

/* 1: serve; 0: refused, *ret holds the answer; either way *ret_outcome (may be NULL) is set.
 * -EWOULDBLOCK (cached_only: the decision needs the API server; nothing counted, *ret and
 * *ret_outcome untouched). */
static int check(struct sm_auth *a, const struct sm_auth_request *req, int64_t now_mono_ms,
                 bool cached_only, struct sm_api_response *ret, struct sm_auth_outcome *ret_outcome)
{
	struct sm_authz_attributes attrs = {0};
	struct sm_auth_user user = {0};
	enum sm_auth_method method = SM_AUTH_METHOD_NONE;
	struct sm_error err = {0};
	enum sm_authz_decision d = SM_AUTHZ_DENY;
	/* What /metrics counts; anything that ends without a decision is an error. */
	enum sm_telemetry_auth_decision verdict = SM_TELEMETRY_AUTH_ERROR;
	char *reason = NULL;
	char *refusal = NULL; /* the outcome's reason */
	char why[256];
	char msg[700];
	bool token_hit = false;
	int r, result = 0;

	/* Health endpoints answer everyone without asking anything (kubelet probes must not
	 * depend on the API server). */
	if (sm_authz_path_always_allowed(NULL, req->path)) {
		if (ret_outcome)
			*ret_outcome = (struct sm_auth_outcome){0};
		return 1;
	}
	r = sm_authz_attributes_from_request(req->method, req->path, req->query, &attrs, &err);
	if (r == -EINVAL) {
		(void)sm_api_status(400, "BadRequest", err.message, ret);
		goto out;
	}
	if (r < 0) {
		oom_status(ret);
		goto out;
	}
	r = authenticate(a, req, now_mono_ms, cached_only, &token_hit, &user, &method, why,
	                 sizeof(why));
	if (r == -EWOULDBLOCK) {
		result = r;
		goto out;
	}
	if (r == -EACCES) {
		/* The caller logs the refusal with this. */
		refusal = why[0] ? strdup(why) : NULL;
		(void)sm_api_status(401, "Unauthorized", "Unauthorized", ret);
		verdict = SM_TELEMETRY_AUTH_UNAUTHENTICATED;
		goto out;
	}
	if (r < 0) {
		oom_status(ret);
		goto out;
	}
	r = sm_authz_authorize(a->authz, &user, &attrs, now_mono_ms, cached_only, &d, &reason,
	                       &err);
	if (r == -EWOULDBLOCK) {
		result = r;
		goto out;
	}
	if (r == -EHOSTUNREACH) {
		sm_log_warn(LOG_CTX, "cannot authorize %s '%s' for user '%s': %s (answering 503)",
		            req->method, req->path, user.name, err.message);
		(void)snprintf(msg, sizeof(msg),
		               "the access check (SubjectAccessReview) for this request cannot be "
		               "made: the Kubernetes API server is unreachable: %s",
		               err.message);
		(void)sm_api_status(503, "ServiceUnavailable", msg, ret);
		goto out;
	}
	if (r == -ENOMEM) {
		oom_status(ret);
		goto out;
	}
	if (r < 0) {
		sm_log_warn(LOG_CTX, "cannot authorize %s '%s' for user '%s': %s (answering 500)",
		            req->method, req->path, user.name, err.message);
		(void)snprintf(msg, sizeof(msg), "Internal error occurred: access check failed: %s",
		               err.message);
		(void)sm_api_status(500, "InternalError", msg, ret);
		goto out;
	}
	if (d == SM_AUTHZ_ALLOW) {
		result = 1;
		verdict = SM_TELEMETRY_AUTH_ALLOWED;
		goto out;
	}
	verdict = SM_TELEMETRY_AUTH_DENIED;
	if (sm_authz_forbidden(&user, &attrs, reason, ret) < 0)
		oom_status(ret);
	refusal = reason;
	reason = NULL;
out:
	if (result != -EWOULDBLOCK) {
		if (token_hit)
			sm_telemetry_auth_cache(a->telemetry, SM_TELEMETRY_CACHE_TOKENREVIEW, true);
		sm_telemetry_auth_decision(a->telemetry, verdict);
		if (ret_outcome) {
			*ret_outcome = (struct sm_auth_outcome){
			    .method = method, .user = user, .reason = refusal};
			user = (struct sm_auth_user){0};
			refusal = NULL;
		}
	}
	free(refusal);
	free(reason);
	sm_auth_user_done(&user);
	sm_authz_attributes_done(&attrs);
	return result;
}

bool sm_auth_check(struct sm_auth *a, const struct sm_auth_request *req, int64_t now_mono_ms,
                   struct sm_api_response *ret, struct sm_auth_outcome *ret_outcome)
{
	return check(a, req, now_mono_ms, false, ret, ret_outcome) > 0;
}

int sm_auth_check_cached(struct sm_auth *a, const struct sm_auth_request *req, int64_t now_mono_ms,
                         struct sm_api_response *ret, struct sm_auth_outcome *ret_outcome)
{
	return check(a, req, now_mono_ms, true, ret, ret_outcome);
}
