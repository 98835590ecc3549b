/* SPDX-License-Identifier: MIT */
/* Bearer tokens: the Authorization header, the TokenReview documents, and the authenticator
 * that asks the API server, remembering its answers for server.auth.cache_ttl. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scalemetrics/auth.h"
#include "scalemetrics/kube.h"
#include "scalemetrics/log.h"
#include "scalemetrics/telemetry.h"
#include "scalemetrics/ttl-cache.h"

#include "auth-internal.h"

#define LOG_CTX          "auth"
#define TOKENREVIEW_PATH "/apis/authentication.k8s.io/v1/tokenreviews"

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

/* cached_only: a hit is not counted but noted in *ret_hit, for check() (auth.c) to count once the
 * request is decided (a request handed to a worker looks the token up again). */
enum sm_authn_result sm_auth_token_authenticate(struct sm_auth *a, const char *token, size_t len,
                                                int64_t now_ms, bool cached_only, bool *ret_hit,
                                                struct sm_auth_user *ret, char *why, size_t why_len)
{
	struct sm_error err = {0};
	struct sm_auth_user u = {0};
	cJSON *req = NULL, *resp = NULL;
	char key[65];
	char *cached = NULL, *tok = NULL;
	enum sm_authn_result res = SM_AUTHN_ERROR;
	long status = 0;
	int r;

	if (sm_auth_digest_key(token, len, key) < 0) {
		(void)snprintf(why, why_len, "cannot hash the token");
		return SM_AUTHN_ERROR;
	}
	if (sm_ttl_cache_get(a->tokens, key, now_ms, &cached)) {
		cJSON *j = cached[0] ? cJSON_Parse(cached) : NULL;

		if (cached_only)
			*ret_hit = true;
		else
			sm_telemetry_auth_cache(a->telemetry, SM_TELEMETRY_CACHE_TOKENREVIEW, true);

		if (j && sm_auth_user_from_json(j, &u) == 0) {
			*ret = u;
			res = SM_AUTHN_OK;
		} else {
			(void)snprintf(why, why_len, "token not authenticated (cached)");
		}
		cJSON_Delete(j);
		free(cached);
		return res;
	}
	if (cached_only)
		return SM_AUTHN_WOULD_BLOCK;
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
	res = SM_AUTHN_OK;
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
