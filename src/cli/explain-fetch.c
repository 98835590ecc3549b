/* SPDX-License-Identifier: MIT */
/* Asking the server what the HPA controller asks it: the request paths (escaped as Go's
 * net/url does), discovery of the custom metrics API version, and the answers read as
 * client-go reads them. The HTTP itself is the kube client's. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/buf.h"
#include "scalemetrics/error.h"
#include "scalemetrics/file.h"
#include "scalemetrics/kube.h"
#include "scalemetrics/urlenc.h"

#include "explain-internal.h"

#define MAX_RESPONSE_BYTES (16u << 20) /* one metric list */

int sm_explain_client_init(struct sm_explain_client *c, const struct sm_explain_options *opt,
                           struct sm_error *reterr)
{
	struct sm_kube_options ko = {
	    .server = opt->server,
	    .token_file = opt->token_file,
	    .ca_file = opt->ca_file,
	    .cert_file = opt->cert_file,
	    .key_file = opt->key_file,
	    .insecure_skip_tls_verify = opt->insecure,
	    .user_agent = "scalemetrics-explain/" SM_VERSION,
	    .timeout_ms = opt->timeout_ms,
	    .max_body_bytes = MAX_RESPONSE_BYTES,
	};
	char *token = NULL;
	size_t len = 0;
	int r;

	*c = (struct sm_explain_client){.opt = opt};
	/* The kube client reads the token at each request. Reading it once here makes a wrong
	 * --token-file a usage error, before any request, instead of a failure per metric. */
	if (opt->token_file) {
		r = sm_file_read(opt->token_file, SM_KUBE_TOKEN_MAX, SM_FILE_SECRET, &token, &len,
		                 NULL);
		if (r < 0) {
			sm_error_set(reterr, "cannot read --token-file '%s': %s", opt->token_file,
			             strerror(-r));
			return r;
		}
		memset(token, 0, len);
		free(token);
	}
	return sm_kube_client_new(&ko, &c->kube, reterr);
}

void sm_explain_client_done(struct sm_explain_client *c)
{
	sm_kube_client_free(c->kube);
	free(c->custom_version);
	*c = (struct sm_explain_client){0};
}

void sm_explain_failure(long code, const char *body, size_t len, struct sm_error *reterr)
{
	cJSON *doc = body ? cJSON_ParseWithLength(body, len) : NULL;
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(doc, "kind");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(doc, "message");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(doc, "reason");

	if (cJSON_IsString(kind) && strcmp(kind->valuestring, "Status") == 0 &&
	    cJSON_IsString(msg)) {
		sm_error_set(reterr, "HTTP %ld %s: %s", code,
		             cJSON_IsString(reason) ? reason->valuestring : "(no reason)",
		             msg->valuestring);
	} else {
		int shown = len > 300 ? 300 : (int)len;

		sm_error_set(reterr, "HTTP %ld: %.*s", code, shown, body ? body : "");
		for (char *p = reterr ? reterr->message : NULL; p && *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
	}
	cJSON_Delete(doc);
}

/* The kube client's transport errors start "GET SERVER/PATH: "; the report prints the
 * request on the line above, so the message keeps only what went wrong. */
static void drop_request_prefix(const struct sm_explain_client *c, const char *path,
                                struct sm_error *reterr)
{
	char prefix[8192];
	size_t n;
	int k;

	if (!reterr)
		return;
	k = snprintf(prefix, sizeof(prefix), "GET %s%s: ", sm_kube_client_server(c->kube), path);
	if (k < 0 || (size_t)k >= sizeof(prefix))
		return;
	n = (size_t)k;
	if (strncmp(reterr->message, prefix, n) == 0)
		memmove(reterr->message, reterr->message + n, strlen(reterr->message + n) + 1);
}

int sm_explain_get_json(struct sm_explain_client *c, const char *path, cJSON **ret,
                        struct sm_error *reterr)
{
	struct sm_buf body = {0};
	cJSON *doc = NULL;
	long code = 0;
	int r;

	r = sm_kube_get_body(c->kube, path, &code, &body, reterr);
	if (r < 0) {
		drop_request_prefix(c, path, reterr);
		goto out;
	}
	if (code < 200 || code > 299) {
		sm_explain_failure(code, body.data, body.len, reterr);
		r = -EPROTO;
		goto out;
	}
	doc = cJSON_ParseWithLength(body.data ? body.data : "", body.len);
	if (!doc) {
		sm_error_set(reterr, "HTTP %ld with a body that is not JSON", code);
		r = -EPROTO;
		goto out;
	}
	*ret = doc;
	r = 0;
out:
	free(body.data);
	return r;
}

const char *sm_explain_preferred_version(const cJSON *doc)
{
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(doc, "groups"), *g;
	const char *found = NULL;

	cJSON_ArrayForEach(g, groups)
	{
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(g, "name");
		const cJSON *pref = cJSON_GetObjectItemCaseSensitive(g, "preferredVersion");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(pref, "version");

		if (cJSON_IsString(name) &&
		    strcmp(name->valuestring, SM_EXPLAIN_CUSTOM_GROUP) == 0 && cJSON_IsString(v))
			found = v->valuestring;
	}
	return found;
}

/* v1beta2 when discovery does not say: what the HPA's client falls back to. */
const char *sm_explain_custom_version(struct sm_explain_client *c)
{
	struct sm_error err = {0};
	cJSON *doc = NULL;
	const char *found = NULL;

	if (c->custom_version)
		return c->custom_version;
	if (sm_explain_get_json(c, "/apis", &doc, &err) < 0) {
		(void)printf("note: discovery GET /apis failed (%s); using %s/v1beta2\n",
		             err.message, SM_EXPLAIN_CUSTOM_GROUP);
	} else {
		found = sm_explain_preferred_version(doc);
		if (!found)
			(void)printf("note: /apis does not list %s; using v1beta2\n",
			             SM_EXPLAIN_CUSTOM_GROUP);
	}
	c->custom_version = strdup(found ? found : "v1beta2");
	cJSON_Delete(doc);
	return c->custom_version ? c->custom_version : "v1beta2";
}

int sm_explain_object_resource(const char *kind, const char *api_version, char *buf, size_t size)
{
	char lower[256];
	size_t n = strlen(kind), glen = 0;
	const char *slash = api_version ? strchr(api_version, '/') : NULL;
	int r;

	if (n == 0 || n >= sizeof(lower) - 4)
		return -EINVAL;
	for (size_t i = 0; i <= n; i++)
		lower[i] =
		    (char)((kind[i] >= 'A' && kind[i] <= 'Z') ? kind[i] - 'A' + 'a' : kind[i]);
	if (lower[n - 1] == 's') {
		memcpy(lower + n, "es", 3);
	} else if (lower[n - 1] == 'y') {
		memcpy(lower + n - 1, "ies", 4);
	} else {
		memcpy(lower + n, "s", 2);
	}
	if (slash)
		glen = (size_t)(slash - api_version);
	if (glen > 0)
		r = snprintf(buf, size, "%s.%.*s", lower, (int)glen, api_version);
	else
		r = snprintf(buf, size, "%s", lower);
	return r < 0 || (size_t)r >= size ? -ENAMETOOLONG : 0;
}

/* Appends "?k=v" or "&k=v" (v escaped) when v is not empty. Keys must come sorted, as Go's
 * url.Values.Encode() writes them. */
static int add_query(char *path, size_t size, const char *key, const char *value)
{
	char esc[4096];
	size_t len = strlen(path);
	int r;

	if (!value || value[0] == '\0')
		return 0;
	r = sm_url_escape(value, SM_URL_QUERY, esc, sizeof(esc));
	if (r < 0)
		return r;
	r = snprintf(path + len, size - len, "%c%s=%s", strchr(path, '?') ? '&' : '?', key, esc);
	if (r < 0 || (size_t)r >= size - len)
		return -ENAMETOOLONG;
	return 0;
}

int sm_explain_build_path(const struct sm_explain_hpa *h, const struct sm_explain_metric *m,
                          const char *version, const char *pod_selector, char *path, size_t size)
{
	char ns[512], name[1024], obj[1024], res[300];
	int r;

	r = sm_url_escape(h->namespace, SM_URL_PATH, ns, sizeof(ns));
	if (r == 0)
		r = sm_url_escape(m->name, SM_URL_PATH, name, sizeof(name));
	if (r < 0)
		return r;
	switch (m->type) {
	case SM_HPA_METRIC_EXTERNAL:
		r = snprintf(path, size, SM_EXPLAIN_EXTERNAL_BASE "/namespaces/%s/%s", ns, name);
		if (r < 0 || (size_t)r >= size)
			return -ENAMETOOLONG;
		return add_query(path, size, "labelSelector", m->selector);
	case SM_HPA_METRIC_PODS:
		r = snprintf(path, size,
		             "/apis/" SM_EXPLAIN_CUSTOM_GROUP "/%s/namespaces/%s/pods/%%2A/%s",
		             version, ns, name);
		if (r < 0 || (size_t)r >= size)
			return -ENAMETOOLONG;
		r = add_query(path, size, "labelSelector", pod_selector);
		if (r < 0)
			return r;
		return add_query(path, size, "metricLabelSelector", m->selector);
	case SM_HPA_METRIC_OBJECT:
		if (strcmp(m->object_kind, "Namespace") == 0) {
			/* The HPA ignores the name: objects never leave the HPA's namespace. */
			r = snprintf(path, size,
			             "/apis/" SM_EXPLAIN_CUSTOM_GROUP
			             "/%s/namespaces/%s/metrics/%s",
			             version, ns, name);
		} else {
			if (sm_explain_object_resource(m->object_kind, m->object_api_version, res,
			                               sizeof(res)) < 0 ||
			    sm_url_escape(m->object_name, SM_URL_PATH, obj, sizeof(obj)) < 0)
				return -EINVAL;
			r = snprintf(path, size,
			             "/apis/" SM_EXPLAIN_CUSTOM_GROUP "/%s/namespaces/%s/%s/%s/%s",
			             version, ns, res, obj, name);
		}
		if (r < 0 || (size_t)r >= size)
			return -ENAMETOOLONG;
		return add_query(path, size, "metricLabelSelector", m->selector);
	default:
		return -EINVAL;
	}
}
