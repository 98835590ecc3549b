/* SPDX-License-Identifier: MIT */
/* The per-request gate: the authenticators in turn (front-proxy certificate and headers,
 * client certificate, bearer token), anonymous otherwise, then the authorizer (authz.c). */
#include "scalemetrics/auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "scalemetrics/api.h"
#include "scalemetrics/authz.h"
#include "scalemetrics/kube.h"
#include "scalemetrics/log.h"
#include "scalemetrics/telemetry.h"
#include "scalemetrics/ttl-cache.h"

#include "auth-internal.h"

/*
 * Design:
 * - The pieces: users and front-proxy headers (auth-user.c), the trust material and its
 *   refresh thread (auth-trust.c), client certificates (auth-x509.c), bearer tokens
 *   (auth-token.c). This file builds them and runs them per request.
 * - The Kubernetes client is ours (its own connection and lock), shared by TokenReviews,
 *   SubjectAccessReviews and the ConfigMap reads.
 * - Failures close: a presented certificate that no authenticator accepts, a token that cannot
 *   be checked -> 401; a needed SubjectAccessReview that cannot be made -> 503 (transport) or
 *   500 (the API server refused it); never served.
 */

#define LOG_CTX             "auth"
#define TOKEN_CACHE_MAX     4096
#define AUTHENTICATED_GROUP "system:authenticated"
#define ANONYMOUS_USER      "system:anonymous"
#define ANONYMOUS_GROUP     "system:unauthenticated"

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

void sm_auth_free(struct sm_auth *a)
{
	if (!a)
		return;
	sm_auth_trust_stop(a);
	sm_auth_trust_unref(a->trust);
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
	    sm_auth_strv_copy(&a->allowed_names, &sc->requestheader_allowed_names) < 0 ||
	    sm_auth_strv_copy(&a->headers.username, &sc->requestheader_username_headers) < 0 ||
	    sm_auth_strv_copy(&a->headers.group, &sc->requestheader_group_headers) < 0 ||
	    sm_auth_strv_copy(&a->headers.extra_prefix, &sc->requestheader_extra_headers_prefix) <
	        0)
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

	r = sm_auth_trust_start(a, reterr);
	if (r < 0)
		goto fail;
	*ret = a;
	return 0;
fail:
	sm_auth_free(a);
	return r;
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
	struct sm_auth_trust *t = sm_auth_trust_get(a);
	enum sm_authn_result res = SM_AUTHN_NONE;
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
			res = sm_auth_x509_front_proxy(t, req, now_ms, ret, why, why_len);
			failed |= res == SM_AUTHN_ERROR;
			if (res != SM_AUTHN_NONE)
				method = SM_AUTH_METHOD_FRONT_PROXY;
		}
		if (res != SM_AUTHN_OK && t->client) {
			res = sm_auth_x509_client_cert(t, req, now_ms, ret, why, why_len);
			failed |= res == SM_AUTHN_ERROR;
			if (res != SM_AUTHN_NONE)
				method = SM_AUTH_METHOD_CLIENT_CERT;
		}
	}
	sm_auth_trust_unref(t);
	if (res != SM_AUTHN_OK &&
	    sm_auth_bearer_token(header(req, "Authorization"), &token, &token_len)) {
		res = sm_auth_token_authenticate(a, token, token_len, now_ms, cached_only,
		                                 ret_token_hit, ret, why, why_len);
		if (res == SM_AUTHN_WOULD_BLOCK)
			return -EWOULDBLOCK;
		failed |= res == SM_AUTHN_ERROR;
		if (res != SM_AUTHN_NONE)
			method = SM_AUTH_METHOD_TOKEN;
	}
	*ret_method = method;
	if (res == SM_AUTHN_OK) {
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
