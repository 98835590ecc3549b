/* SPDX-License-Identifier: MIT */
/* Authorization: request attributes derived like kube-apiserver's requestinfo.go, the
 * always-open and discovery paths, SubjectAccessReviews (cached), and the Forbidden Status. */
#include "scalemetrics/authz.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scalemetrics/api.h"
#include "scalemetrics/auth.h"
#include "scalemetrics/buf.h"
#include "scalemetrics/kube.h"
#include "scalemetrics/telemetry.h"
#include "scalemetrics/ttl-cache.h"
#include "scalemetrics/urlenc.h"

#define SAR_PATH          "/apis/authorization.k8s.io/v1/subjectaccessreviews"
#define CACHE_MAX_ENTRIES 4096
#define MASTERS           "system:masters"

/* ---- attributes ---- */

static bool str_in(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(s, *set) == 0)
			return true;
	return false;
}

/* strconv.ParseBool */
static int parse_go_bool(const char *s)
{
	static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True", NULL};
	static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False", NULL};

	if (str_in(s, t))
		return 1;
	if (str_in(s, f))
		return 0;
	return -1;
}

/* Whether the query asks to watch (ListOptions.Watch as requestinfo.go decodes it). */
static bool query_watch(const char *query, char *scratch)
{
	const char *p = query;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;

		if (sm_url_decode(p, klen, scratch, true) == 0 && strcmp(scratch, "watch") == 0) {
			const char *v = eq ? eq + 1 : p + len;
			size_t vlen = eq ? len - klen - 1 : 0;
			int b;

			if (sm_url_decode(v, vlen, scratch, true) < 0)
				return true;
			b = parse_go_bool(scratch);
			if (b >= 0)
				return b == 1;
			return strcasecmp(scratch, "false") != 0 && strcmp(scratch, "0") != 0;
		}
		p = amp ? amp + 1 : NULL;
	}
	return false;
}

void sm_authz_attributes_done(struct sm_authz_attributes *a)
{
	if (!a)
		return;
	free(a->buf);
	*a = (struct sm_authz_attributes){0};
}

#define MAX_SEGS 64

int sm_authz_attributes_from_request(const char *method, const char *path, const char *query,
                                     struct sm_authz_attributes *ret, struct sm_error *reterr)
{
	static const char *const empty = "";
	struct sm_authz_attributes a = {.verb = empty,
	                                .path = empty,
	                                .group = empty,
	                                .version = empty,
	                                .namespace = empty,
	                                .resource = empty,
	                                .subresource = empty,
	                                .name = empty};
	size_t len, n = 0, qlen;
	char *segs_buf, *path_buf, *verb_buf, *scratch;
	char *segs[MAX_SEGS];
	char **rest;
	size_t n_rest;
	bool proxy = false;
	int r;

	if (!path || path[0] != '/') {
		sm_error_set(reterr, "invalid request path: must start with '/'");
		return -EINVAL;
	}
	if (!method)
		method = "";
	len = strlen(path);
	qlen = query ? strlen(query) : 0;
	/* segments | decoded path | lower-case method | query scratch */
	a.buf = malloc(2 * (len + 1) + strlen(method) + 1 + qlen + 1);
	if (!a.buf)
		return -ENOMEM;
	segs_buf = a.buf;
	path_buf = segs_buf + len + 1;
	verb_buf = path_buf + len + 1;
	scratch = verb_buf + strlen(method) + 1;

	if (sm_url_decode(path, len, path_buf, false) < 0) {
		sm_error_set(reterr, "invalid request path: invalid percent-encoding");
		r = -EINVAL;
		goto fail;
	}
	a.path = path_buf;
	for (size_t i = 0; method[i]; i++)
		verb_buf[i] =
		    (char)(method[i] >= 'A' && method[i] <= 'Z' ? method[i] + 32 : method[i]);
	verb_buf[strlen(method)] = '\0';
	a.verb = verb_buf;

	memcpy(segs_buf, path + 1, len); /* with the NUL */
	if (len > 1 && segs_buf[len - 2] == '/')
		segs_buf[len - 2] = '\0';
	for (char *p = *segs_buf ? segs_buf : NULL; p;) {
		char *slash = strchr(p, '/');

		if (slash)
			*slash = '\0';
		if (*p == '\0') {
			sm_error_set(reterr, "invalid request path: empty path segment");
			r = -EINVAL;
			goto fail;
		}
		if (sm_url_decode(p, strlen(p), p, false) < 0) {
			sm_error_set(reterr, "invalid request path: invalid percent-encoding");
			r = -EINVAL;
			goto fail;
		}
		if (n == MAX_SEGS) {
			/* Deeper than anything served: a non-resource request the router
			 * answers with 404. */
			n = 0;
			goto done;
		}
		segs[n++] = p;
		p = slash ? slash + 1 : NULL;
	}

	if (n < 3 || (strcmp(segs[0], "api") != 0 && strcmp(segs[0], "apis") != 0))
		goto done;
	rest = segs + 1;
	n_rest = n - 1;
	if (strcmp(segs[0], "apis") == 0) {
		if (n_rest < 3)
			goto done;
		a.group = rest[0];
		rest++;
		n_rest--;
	}
	a.resource_request = true;
	a.version = rest[0];
	rest++;
	n_rest--;

	if (strcmp(rest[0], "proxy") == 0 || strcmp(rest[0], "watch") == 0) {
		if (n_rest < 2) {
			sm_error_set(
			    reterr, "unable to determine kind and namespace from the request path");
			r = -EINVAL;
			goto fail;
		}
		a.verb = rest[0];
		proxy = strcmp(rest[0], "proxy") == 0;
		rest++;
		n_rest--;
	} else if (strcmp(method, "POST") == 0) {
		a.verb = "create";
	} else if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
		a.verb = "get";
	} else if (strcmp(method, "PUT") == 0) {
		a.verb = "update";
	} else if (strcmp(method, "PATCH") == 0) {
		a.verb = "patch";
	} else if (strcmp(method, "DELETE") == 0) {
		a.verb = "delete";
	} else {
		a.verb = empty;
	}

	if (strcmp(rest[0], "namespaces") == 0) {
		if (n_rest > 1) {
			a.namespace = rest[1];
			if (n_rest > 2 && strcmp(rest[2], "status") != 0 &&
			    strcmp(rest[2], "finalize") != 0) {
				rest += 2;
				n_rest -= 2;
			}
		}
	}
	if (n_rest >= 3 && !proxy)
		a.subresource = rest[2];
	if (n_rest >= 2)
		a.name = rest[1];
	if (n_rest >= 1)
		a.resource = rest[0];

	if (a.name[0] == '\0' && strcmp(a.verb, "get") == 0)
		a.verb = query && query_watch(query, scratch) ? "watch" : "list";
	if (a.name[0] == '\0' && strcmp(a.verb, "delete") == 0)
		a.verb = "deletecollection";
done:
	*ret = a;
	return 0;
fail:
	free(a.buf);
	return r;
}

bool sm_authz_path_always_allowed(const struct sm_strv *extra, const char *path)
{
	static const char *const health[] = {"/healthz", "/livez", "/readyz", NULL};

	if (!path)
		return false;
	if (str_in(path, health))
		return true;
	for (size_t i = 0; extra && i < extra->n; i++) {
		const char *p = extra->v[i];
		size_t len = strlen(p);

		if (len > 0 && p[len - 1] == '*') {
			if (strncmp(path, p, len - 1) == 0)
				return true;
		} else if (strcmp(path, p) == 0) {
			return true;
		}
	}
	return false;
}

bool sm_authz_is_discovery(const struct sm_authz_attributes *a)
{
	static const char *const exact[] = {"/api",     "/apis",     "/openapi",
	                                    "/version", "/version/", NULL};
	static const char *const prefixes[] = {"/api/", "/apis/", "/openapi/", NULL};

	if (a->resource_request)
		return false;
	if (strcmp(a->verb, "get") != 0 && strcmp(a->verb, "head") != 0)
		return false;
	if (str_in(a->path, exact))
		return true;
	for (const char *const *p = prefixes; *p; p++)
		if (strncmp(a->path, *p, strlen(*p)) == 0)
			return true;
	return false;
}

/* ---- SubjectAccessReview ---- */

static bool add_nonempty(cJSON *o, const char *k, const char *v)
{
	return !v || !*v || cJSON_AddStringToObject(o, k, v);
}

cJSON *sm_authz_sar_request(const struct sm_auth_user *u, const struct sm_authz_attributes *a)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *spec, *attrs;
	bool ok;

	ok = doc && cJSON_AddStringToObject(doc, "apiVersion", "authorization.k8s.io/v1") &&
	     cJSON_AddStringToObject(doc, "kind", "SubjectAccessReview");
	spec = ok ? cJSON_AddObjectToObject(doc, "spec") : NULL;
	if (!spec)
		goto fail;
	if (a->resource_request) {
		attrs = cJSON_AddObjectToObject(spec, "resourceAttributes");
		ok = attrs && add_nonempty(attrs, "namespace", a->namespace) &&
		     add_nonempty(attrs, "verb", a->verb) &&
		     add_nonempty(attrs, "group", a->group) &&
		     add_nonempty(attrs, "version", a->version) &&
		     add_nonempty(attrs, "resource", a->resource) &&
		     add_nonempty(attrs, "subresource", a->subresource) &&
		     add_nonempty(attrs, "name", a->name);
	} else {
		attrs = cJSON_AddObjectToObject(spec, "nonResourceAttributes");
		ok = attrs && add_nonempty(attrs, "path", a->path) &&
		     add_nonempty(attrs, "verb", a->verb);
	}
	if (!ok || !add_nonempty(spec, "user", u->name))
		goto fail;
	if (u->groups.n > 0) {
		cJSON *g = sm_auth_strv_to_json(&u->groups);

		if (!g || !cJSON_AddItemToObject(spec, "groups", g)) {
			cJSON_Delete(g);
			goto fail;
		}
	}
	if (u->n_extra > 0) {
		cJSON *ex = sm_auth_extra_to_json(u);

		if (!ex || !cJSON_AddItemToObject(spec, "extra", ex)) {
			cJSON_Delete(ex);
			goto fail;
		}
	}
	if (!add_nonempty(spec, "uid", u->uid))
		goto fail;
	return doc;
fail:
	cJSON_Delete(doc);
	return NULL;
}

int sm_authz_sar_parse(const cJSON *doc, enum sm_authz_decision *ret, char **ret_reason,
                       struct sm_error *reterr)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(doc, "kind");
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(doc, "status");
	const cJSON *allowed, *denied, *reason;
	char *rs = NULL;

	if (!cJSON_IsObject(doc) || !cJSON_IsString(kind) ||
	    strcmp(kind->valuestring, "SubjectAccessReview") != 0 || !cJSON_IsObject(status)) {
		sm_error_set(reterr, "the answer is not a SubjectAccessReview with a status");
		return -EPROTO;
	}
	allowed = cJSON_GetObjectItemCaseSensitive(status, "allowed");
	denied = cJSON_GetObjectItemCaseSensitive(status, "denied");
	reason = cJSON_GetObjectItemCaseSensitive(status, "reason");
	if (!cJSON_IsBool(allowed) || (denied && !cJSON_IsBool(denied))) {
		sm_error_set(reterr, "SubjectAccessReview status.allowed is missing or not a bool");
		return -EPROTO;
	}
	if (cJSON_IsString(reason) && reason->valuestring[0]) {
		rs = strdup(reason->valuestring);
		if (!rs)
			return -ENOMEM;
	}
	if (cJSON_IsTrue(denied))
		*ret = SM_AUTHZ_DENY;
	else if (cJSON_IsTrue(allowed))
		*ret = SM_AUTHZ_ALLOW;
	else
		*ret = SM_AUTHZ_NO_OPINION;
	*ret_reason = rs;
	return 0;
}

/* ---- Forbidden ---- */

/* Go's %q for the strings we quote (byte-wise; bytes >= 0x80 kept as they are). */
static void put_go_quoted(struct sm_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	(void)sm_buf_putc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"':
			(void)sm_buf_puts(b, "\\\"");
			break;
		case '\\':
			(void)sm_buf_puts(b, "\\\\");
			break;
		case '\n':
			(void)sm_buf_puts(b, "\\n");
			break;
		case '\t':
			(void)sm_buf_puts(b, "\\t");
			break;
		case '\r':
			(void)sm_buf_puts(b, "\\r");
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				(void)sm_buf_puts(b, "\\x");
				(void)sm_buf_putc(b, hex[c >> 4]);
				(void)sm_buf_putc(b, hex[c & 15]);
			} else {
				(void)sm_buf_putc(b, (char)c);
			}
		}
	}
	(void)sm_buf_putc(b, '"');
}

/* forbiddenMessage() through the &, <, > sanitizer. */
static void forbidden_message(struct sm_buf *b, const struct sm_auth_user *u,
                              const struct sm_authz_attributes *a)
{
	struct sm_buf m = {0};

	(void)sm_buf_puts(&m, "User ");
	put_go_quoted(&m, u && u->name ? u->name : "");
	(void)sm_buf_puts(&m, " cannot ");
	(void)sm_buf_puts(&m, a->verb);
	if (!a->resource_request) {
		(void)sm_buf_puts(&m, " path ");
		put_go_quoted(&m, a->path);
	} else {
		struct sm_buf res = {0};

		(void)sm_buf_puts(&res, a->resource);
		if (a->subresource[0]) {
			(void)sm_buf_putc(&res, '/');
			(void)sm_buf_puts(&res, a->subresource);
		}
		(void)sm_buf_puts(&m, " resource ");
		put_go_quoted(&m, res.data ? res.data : "");
		(void)sm_buf_puts(&m, " in API group ");
		put_go_quoted(&m, a->group);
		if (a->namespace[0]) {
			(void)sm_buf_puts(&m, " in the namespace ");
			put_go_quoted(&m, a->namespace);
		} else {
			(void)sm_buf_puts(&m, " at the cluster scope");
		}
		m.oom |= res.oom;
		free(res.data);
	}
	for (size_t i = 0; m.data && i < m.len; i++) {
		if (m.data[i] == '&')
			(void)sm_buf_puts(b, "&amp;");
		else if (m.data[i] == '<')
			(void)sm_buf_puts(b, "&lt;");
		else if (m.data[i] == '>')
			(void)sm_buf_puts(b, "&gt;");
		else
			(void)sm_buf_putc(b, m.data[i]);
	}
	b->oom |= m.oom;
	free(m.data);
}

int sm_authz_forbidden(const struct sm_auth_user *u, const struct sm_authz_attributes *a,
                       const char *reason, struct sm_api_response *ret)
{
	struct sm_buf msg = {0};
	cJSON *doc = NULL, *details;
	char *body = NULL;
	bool ok;

	/* apierrors.NewForbidden(GroupResource, name, err) */
	if (a->resource_request && (a->resource[0] || a->group[0])) {
		(void)sm_buf_puts(&msg, a->resource);
		if (a->group[0]) {
			(void)sm_buf_putc(&msg, '.');
			(void)sm_buf_puts(&msg, a->group);
		}
		if (a->name[0]) {
			(void)sm_buf_putc(&msg, ' ');
			put_go_quoted(&msg, a->name);
		}
		(void)sm_buf_puts(&msg, " is forbidden: ");
	} else {
		(void)sm_buf_puts(&msg, "forbidden: ");
	}
	forbidden_message(&msg, u, a);
	if (reason && *reason) {
		(void)sm_buf_puts(&msg, ": ");
		(void)sm_buf_puts(&msg, reason);
	}
	if (msg.oom)
		goto oom;

	doc = cJSON_CreateObject();
	ok = doc && cJSON_AddStringToObject(doc, "kind", "Status") &&
	     cJSON_AddStringToObject(doc, "apiVersion", "v1") &&
	     cJSON_AddObjectToObject(doc, "metadata") &&
	     cJSON_AddStringToObject(doc, "status", "Failure") &&
	     cJSON_AddStringToObject(doc, "message", msg.data) &&
	     cJSON_AddStringToObject(doc, "reason", "Forbidden");
	details = ok ? cJSON_AddObjectToObject(doc, "details") : NULL;
	ok = details &&
	     (!a->resource_request ||
	      (add_nonempty(details, "name", a->name) && add_nonempty(details, "group", a->group) &&
	       add_nonempty(details, "kind", a->resource))) &&
	     cJSON_AddNumberToObject(doc, "code", 403);
	if (ok)
		body = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	if (!body)
		goto oom;
	free(msg.data);
	*ret = (struct sm_api_response){.status = 403,
	                                .content_type = "application/json",
	                                .body = body,
	                                .body_len = strlen(body),
	                                .reason = "Forbidden",
	                                .route = "authz"};
	return 0;
oom:
	free(msg.data);
	return sm_api_status(500, "InternalError", "Internal error occurred: out of memory", ret);
}

/* ---- the authorizer ---- */

struct sm_authz {
	struct sm_kube_client *kube;
	struct sm_ttl_cache *allowed;
	struct sm_ttl_cache *denied;
	struct sm_strv extra_paths;
	struct sm_telemetry *telemetry; /* borrowed; may be NULL */
};

int sm_authz_new(struct sm_kube_client *kube, int64_t cache_ttl_ms,
                 const struct sm_strv *extra_paths, struct sm_telemetry *telemetry,
                 struct sm_authz **ret)
{
	struct sm_authz *z = calloc(1, sizeof(*z));

	if (!z)
		return -ENOMEM;
	z->kube = kube;
	z->telemetry = telemetry;
	z->allowed = sm_ttl_cache_new(CACHE_MAX_ENTRIES, cache_ttl_ms);
	z->denied = sm_ttl_cache_new(CACHE_MAX_ENTRIES, cache_ttl_ms);
	if (!z->allowed || !z->denied)
		goto oom;
	if (extra_paths && extra_paths->n > 0) {
		z->extra_paths.v = calloc(extra_paths->n + 1, sizeof(char *));
		if (!z->extra_paths.v)
			goto oom;
		for (size_t i = 0; i < extra_paths->n; i++) {
			z->extra_paths.v[i] = strdup(extra_paths->v[i]);
			if (!z->extra_paths.v[i])
				goto oom;
			z->extra_paths.n++;
		}
	}
	*ret = z;
	return 0;
oom:
	sm_authz_free(z);
	return -ENOMEM;
}

void sm_authz_free(struct sm_authz *z)
{
	if (!z)
		return;
	sm_ttl_cache_free(z->allowed);
	sm_ttl_cache_free(z->denied);
	sm_strv_done(&z->extra_paths);
	free(z);
}

/* A string of the cache key: its length in 8 bytes, then its bytes. NULL is "", as in the
 * review (add_nonempty leaves out both). */
static void key_str(struct sm_buf *b, const char *v)
{
	uint64_t n = v ? strlen(v) : 0;

	(void)sm_buf_append(b, &n, sizeof(n));
	(void)sm_buf_append(b, v, (size_t)n);
}

static void key_strv(struct sm_buf *b, const struct sm_strv *v)
{
	uint64_t n = v->n;

	(void)sm_buf_append(b, &n, sizeof(n));
	for (size_t i = 0; i < v->n; i++)
		key_str(b, v->v[i]);
}

int sm_authz_cache_key(const struct sm_auth_user *u, const struct sm_authz_attributes *a,
                       char out[65])
{
	struct sm_buf b = {0};
	uint64_t n_extra = u->n_extra;
	int r;

	(void)sm_buf_putc(&b, a->resource_request ? 'R' : 'N');
	key_str(&b, a->verb);
	if (a->resource_request) {
		key_str(&b, a->namespace);
		key_str(&b, a->group);
		key_str(&b, a->version);
		key_str(&b, a->resource);
		key_str(&b, a->subresource);
		key_str(&b, a->name);
	} else {
		key_str(&b, a->path);
	}
	key_str(&b, u->name);
	key_str(&b, u->uid);
	key_strv(&b, &u->groups);
	(void)sm_buf_append(&b, &n_extra, sizeof(n_extra));
	for (size_t i = 0; i < u->n_extra; i++) {
		key_str(&b, u->extra[i].key);
		key_strv(&b, &u->extra[i].values);
	}
	r = b.oom ? -ENOMEM : sm_auth_digest_key(b.data, b.len, out);
	free(b.data);
	return r;
}

static int status_message(const cJSON *doc, char *buf, size_t len)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");

	return snprintf(buf, len, "%s", cJSON_IsString(m) ? m->valuestring : "");
}

int sm_authz_authorize(struct sm_authz *z, const struct sm_auth_user *u,
                       const struct sm_authz_attributes *a, int64_t now_mono_ms, bool cached_only,
                       enum sm_authz_decision *ret, char **ret_reason, struct sm_error *reterr)
{
	cJSON *req = NULL, *resp = NULL;
	char *cached = NULL, *reason = NULL;
	char key[65];
	char msg[256];
	enum sm_authz_decision d;
	long status = 0;
	int r;

	if (sm_auth_user_in_group(u, MASTERS) ||
	    sm_authz_path_always_allowed(&z->extra_paths, a->path)) {
		*ret = SM_AUTHZ_ALLOW;
		*ret_reason = NULL;
		return 0;
	}
	if (sm_authz_is_discovery(a) && sm_auth_user_in_group(u, "system:authenticated")) {
		*ret = SM_AUTHZ_ALLOW;
		*ret_reason = NULL;
		return 0;
	}

	r = sm_authz_cache_key(u, a, key);
	if (r < 0) {
		sm_error_set(reterr, "cannot make the decision cache's key (SHA-256)");
		goto out;
	}
	if (sm_ttl_cache_get(z->allowed, key, now_mono_ms, &cached)) {
		sm_telemetry_auth_cache(z->telemetry, SM_TELEMETRY_CACHE_SUBJECTACCESSREVIEW, true);
		*ret = SM_AUTHZ_ALLOW;
		*ret_reason = NULL;
		r = 0;
		goto out;
	}
	if (sm_ttl_cache_get(z->denied, key, now_mono_ms, &cached)) {
		sm_telemetry_auth_cache(z->telemetry, SM_TELEMETRY_CACHE_SUBJECTACCESSREVIEW, true);
		*ret = cached[0] == 'D' ? SM_AUTHZ_DENY : SM_AUTHZ_NO_OPINION;
		*ret_reason = cached[1] ? strdup(cached + 1) : NULL;
		r = 0;
		goto out;
	}
	if (cached_only) {
		r = -EWOULDBLOCK;
		goto out;
	}
	sm_telemetry_auth_cache(z->telemetry, SM_TELEMETRY_CACHE_SUBJECTACCESSREVIEW, false);
	if (!z->kube) {
		sm_error_set(reterr, "no Kubernetes API client to ask");
		r = -EHOSTUNREACH;
		goto out;
	}
	req = sm_authz_sar_request(u, a);
	if (!req) {
		r = -ENOMEM;
		goto out;
	}
	r = sm_kube_post(z->kube, SAR_PATH, req, &status, &resp, reterr);
	if (r == -ENOMEM)
		goto out;
	if (r < 0) {
		r = -EHOSTUNREACH;
		goto out;
	}
	if (status != 201 && status != 200) {
		(void)status_message(resp, msg, sizeof(msg));
		sm_error_set(reterr,
		             "the Kubernetes API answered the SubjectAccessReview with %ld%s%s",
		             status, msg[0] ? ": " : "", msg);
		r = -EPROTO;
		goto out;
	}
	r = sm_authz_sar_parse(resp, &d, &reason, reterr);
	if (r < 0)
		goto out;
	if (d == SM_AUTHZ_ALLOW) {
		r = sm_ttl_cache_put(z->allowed, key, "A", now_mono_ms);
	} else {
		size_t rl = reason ? strlen(reason) : 0;
		char *v = malloc(rl + 2);

		if (!v) {
			r = -ENOMEM;
			goto out;
		}
		v[0] = d == SM_AUTHZ_DENY ? 'D' : 'N';
		memcpy(v + 1, reason ? reason : "", rl + 1);
		r = sm_ttl_cache_put(z->denied, key, v, now_mono_ms);
		free(v);
	}
	if (r < 0)
		goto out;
	*ret = d;
	*ret_reason = reason;
	reason = NULL;
	r = 0;
out:
	free(reason);
	free(cached);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return r;
}
