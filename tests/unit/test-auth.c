/* SPDX-License-Identifier: MIT */
/* Authentication and authorization pieces: request attributes (requestinfo.go), request
 * headers (docs/api.md "Front-proxy authentication"), the ConfigMap, bearer tokens, review
 * documents, Forbidden texts, the cache. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/api.h"
#include "scalemetrics/auth.h"
#include "scalemetrics/authz.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

static void check_str(const char *what, const char *field, const char *got, const char *want)
{
	if (strcmp(got, want) != 0)
		fail_msg("case '%s': %s is '%s', want '%s'", what, field, got, want);
}

/* ---- attributes ---- */

struct attr_case {
	const char *method, *path, *query;
	int ret;
	bool resource;
	const char *verb, *npath, *group, *version, *ns, *resource_name, *sub, *name;
};

#define CM "/apis/custom.metrics.k8s.io"
#define EM "/apis/external.metrics.k8s.io"

static const struct attr_case attr_cases[] = {
    /* docs/api.md "Authorization", its examples */
    {"GET", CM "/v1beta2/namespaces/default/pods/%2A/http_requests", NULL, 0, true, "get", "",
     "custom.metrics.k8s.io", "v1beta2", "default", "pods", "http_requests", "*"},
    {"GET", CM "/v1beta2/namespaces/team-a/metrics/queue_depth", NULL, 0, true, "get", "",
     "custom.metrics.k8s.io", "v1beta2", "team-a", "metrics", "", "queue_depth"},
    {"GET", CM "/v1beta2/nodes/n1/cpu_temp", NULL, 0, true, "get", "", "custom.metrics.k8s.io",
     "v1beta2", "", "nodes", "cpu_temp", "n1"},
    {"GET", EM "/v1beta1/namespaces/default/queue_messages_ready", "labelSelector=a%3Db", 0, true,
     "list", "", "external.metrics.k8s.io", "v1beta1", "default", "queue_messages_ready", "", ""},
    /* non-resource */
    {"GET", "/apis", NULL, 0, false, "get", "/apis", "", "", "", "", "", ""},
    {"GET", CM, NULL, 0, false, "get", CM, "", "", "", "", "", ""},
    {"GET", CM "/v1beta1", NULL, 0, false, "get", CM "/v1beta1", "", "", "", "", "", ""},
    {"GET", CM "/v1beta1/", NULL, 0, false, "get", CM "/v1beta1/", "", "", "", "", "", ""},
    {"HEAD", "/version", NULL, 0, false, "head", "/version", "", "", "", "", "", ""},
    {"GET", "/openapi/v2", NULL, 0, false, "get", "/openapi/v2", "", "", "", "", "", ""},
    {"GET", "/", NULL, 0, false, "get", "/", "", "", "", "", "", ""},
    {"GET", "/metrics/a/b/c", NULL, 0, false, "get", "/metrics/a/b/c", "", "", "", "", "", ""},
    {"GET", "/a%2Fb", NULL, 0, false, "get", "/a/b", "", "", "", "", "", ""},
    /* core group, verbs */
    {"GET", "/api/v1/namespaces/ns/pods", NULL, 0, true, "list", "", "", "v1", "ns", "pods", "",
     ""},
    {"GET", "/api/v1/namespaces/ns", NULL, 0, true, "get", "", "", "v1", "ns", "namespaces", "",
     "ns"},
    {"GET", "/api/v1/namespaces/ns/status", NULL, 0, true, "get", "", "", "v1", "ns", "namespaces",
     "status", "ns"},
    {"POST", EM "/v1beta1/namespaces/default/m", NULL, 0, true, "create", "",
     "external.metrics.k8s.io", "v1beta1", "default", "m", "", ""},
    {"DELETE", EM "/v1beta1/namespaces/default/m", NULL, 0, true, "deletecollection", "",
     "external.metrics.k8s.io", "v1beta1", "default", "m", "", ""},
    {"DELETE", EM "/v1beta1/namespaces/default/m/x", NULL, 0, true, "delete", "",
     "external.metrics.k8s.io", "v1beta1", "default", "m", "", "x"},
    {"PUT", EM "/v1beta1/a/b", NULL, 0, true, "update", "", "external.metrics.k8s.io", "v1beta1",
     "", "a", "", "b"},
    {"OPTIONS", EM "/v1beta1/a/b", NULL, 0, true, "", "", "external.metrics.k8s.io", "v1beta1", "",
     "a", "", "b"},
    {"GET", EM "/v1beta1/proxy/a/b/c", NULL, 0, true, "proxy", "", "external.metrics.k8s.io",
     "v1beta1", "", "a", "", "b"},
    {"GET", EM "/v1beta1/watch/m", NULL, 0, true, "watch", "", "external.metrics.k8s.io", "v1beta1",
     "", "m", "", ""},
    /* watch through the query (ListOptions) */
    {"GET", EM "/v1beta1/namespaces/d/m", "watch=true", 0, true, "watch", "",
     "external.metrics.k8s.io", "v1beta1", "d", "m", "", ""},
    {"GET", EM "/v1beta1/namespaces/d/m", "a=b&watch=1", 0, true, "watch", "",
     "external.metrics.k8s.io", "v1beta1", "d", "m", "", ""},
    {"GET", EM "/v1beta1/namespaces/d/m", "watch=false", 0, true, "list", "",
     "external.metrics.k8s.io", "v1beta1", "d", "m", "", ""},
    {"GET", EM "/v1beta1/namespaces/d/m", "watch=", 0, true, "watch", "", "external.metrics.k8s.io",
     "v1beta1", "d", "m", "", ""},
    {"GET", EM "/v1beta1/namespaces/d/m", "watch=FALSE", 0, true, "list", "",
     "external.metrics.k8s.io", "v1beta1", "d", "m", "", ""},
    {"GET", EM "/v1beta1/namespaces/d/m/x", "watch=true", 0, true, "get", "",
     "external.metrics.k8s.io", "v1beta1", "d", "m", "", "x"},
    /* an encoded '/' stays inside its segment, as in the router */
    {"GET", EM "/v1beta1/namespaces/a%2Fb/m", NULL, 0, true, "list", "", "external.metrics.k8s.io",
     "v1beta1", "a/b", "m", "", ""},
    /* malformed */
    {"GET", "apis", NULL, -EINVAL, false, "", "", "", "", "", "", "", ""},
    {"GET", "", NULL, -EINVAL, false, "", "", "", "", "", "", "", ""},
    {"GET", EM "//v1beta1", NULL, -EINVAL, false, "", "", "", "", "", "", "", ""},
    {"GET", EM "/v1beta1/namespaces/%zz/m", NULL, -EINVAL, false, "", "", "", "", "", "", "", ""},
    {"GET", EM "/v1beta1/namespaces/%00/m", NULL, -EINVAL, false, "", "", "", "", "", "", "", ""},
    {"GET", EM "/v1beta1/namespaces/%2", NULL, -EINVAL, false, "", "", "", "", "", "", "", ""},
    {"GET", EM "/v1beta1/proxy", NULL, -EINVAL, false, "", "", "", "", "", "", "", ""},
};

static void test_attributes(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(attr_cases); i++) {
		const struct attr_case *c = &attr_cases[i];
		struct sm_authz_attributes a;
		struct sm_error err = {0};
		char what[300];
		int r;

		(void)snprintf(what, sizeof(what), "%s %s?%s", c->method, c->path,
		               c->query ? c->query : "");
		r = sm_authz_attributes_from_request(c->method, c->path, c->query, &a, &err);
		if (r != c->ret)
			fail_msg("case '%s': returned %d, want %d (%s)", what, r, c->ret,
			         err.message);
		if (r < 0) {
			if (!err.message[0])
				fail_msg("case '%s': no error message", what);
			continue;
		}
		if (a.resource_request != c->resource)
			fail_msg("case '%s': resource_request %d", what, a.resource_request);
		check_str(what, "verb", a.verb, c->verb);
		if (!c->resource)
			check_str(what, "path", a.path, c->npath);
		check_str(what, "group", a.group, c->group);
		check_str(what, "version", a.version, c->version);
		check_str(what, "namespace", a.namespace, c->ns);
		check_str(what, "resource", a.resource, c->resource_name);
		check_str(what, "subresource", a.subresource, c->sub);
		check_str(what, "name", a.name, c->name);
		sm_authz_attributes_done(&a);
	}
}

static void test_open_and_discovery_paths(void **state)
{
	char *extra_v[] = {"/metrics", "/debug/*", NULL};
	struct sm_strv extra = {.v = extra_v, .n = 2};
	static const struct {
		const char *path;
		bool open;
	} open_cases[] = {
	    {"/healthz", true},   {"/livez", true},   {"/readyz", true},     {"/healthz/", false},
	    {"/healthzz", false}, {"/metrics", true}, {"/metrics/x", false}, {"/debug/pprof", true},
	    {"/debug", false},    {"/", false},
	};
	static const struct {
		const char *method, *path;
		bool discovery;
	} disc_cases[] = {
	    {"GET", "/apis", true},
	    {"GET", CM, true},
	    {"GET", CM "/v1beta2", true},
	    {"HEAD", CM "/v1beta2", true},
	    {"POST", CM "/v1beta2", false},
	    {"GET", "/openapi/v2", true},
	    {"GET", "/openapi/v3/apis/custom.metrics.k8s.io/v1beta2", true},
	    {"GET", "/version", true},
	    {"GET", "/version/", true},
	    {"GET", "/versionx", false},
	    {"GET", "/metrics", false},
	    {"GET", CM "/v1beta2/namespaces/default/metrics/x", false},
	    {"GET", "/api/v1/namespaces/x/pods", false},
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(open_cases); i++)
		if (sm_authz_path_always_allowed(&extra, open_cases[i].path) != open_cases[i].open)
			fail_msg("case '%s': open should be %d", open_cases[i].path,
			         open_cases[i].open);
	assert_false(sm_authz_path_always_allowed(NULL, "/metrics"));
	for (size_t i = 0; i < N_ELEMENTS(disc_cases); i++) {
		struct sm_authz_attributes a;
		struct sm_error err = {0};

		assert_int_equal(sm_authz_attributes_from_request(
		                     disc_cases[i].method, disc_cases[i].path, NULL, &a, &err),
		                 0);
		if (sm_authz_is_discovery(&a) != disc_cases[i].discovery)
			fail_msg("case '%s %s': discovery should be %d", disc_cases[i].method,
			         disc_cases[i].path, disc_cases[i].discovery);
		sm_authz_attributes_done(&a);
	}
}

/* ---- request headers ---- */

static char *user_string(const struct sm_auth_user *u)
{
	cJSON *j = sm_auth_user_to_json(u);
	char *s = cJSON_PrintUnformatted(j);

	cJSON_Delete(j);
	return s;
}

struct header_case {
	const char *what;
	const struct sm_auth_header *h;
	size_t n;
	bool custom;
	int ret;
	const char *user_json;
};

static const struct sm_auth_header h_basic[] = {
    {"X-Remote-User", "hpa"},
    {"X-Remote-Group", "g1"},
    {"Accept", "*/*"},
    {"x-remote-group", "g2"},
    {"X-REMOTE-GROUP", ""},
    {"X-Remote-Extra-Scopes", "a"},
    {"x-remote-extra-scopes", "b"},
    {"X-Remote-Extra-Authentication.kubernetes.io%2fcredential-Id", "JTI=1"},
    {"X-Remote-Extra-Bad%zzKey", "v"},
};
static const struct sm_auth_header h_empty_user[] = {
    {"X-Remote-User", ""},
    {"X-Remote-Group", "system:masters"},
};
static const struct sm_auth_header h_first_nonempty[] = {
    {"X-Remote-User", ""},
    {"X-Remote-User", "second"},
};
static const struct sm_auth_header h_custom[] = {
    {"X-Remote-User", "ignored"},
    {"X-Other-User", ""},
    {"X-User", "u1"},
    {"X-Other-User", "u0"},
    {"X-Groups", "a"},
    {"X-Remote-Group", "ignored"},
    {"X-Ex-K", "v"},
};

static const struct header_case header_cases[] = {
    {"defaults, repeated groups and extras", h_basic, N_ELEMENTS(h_basic), false, 1,
     "{\"username\":\"hpa\",\"groups\":[\"g1\",\"g2\"],\"extra\":{\"scopes\":[\"a\",\"b\"],"
     "\"authentication.kubernetes.io/credential-id\":[\"JTI=1\"],\"bad%zzkey\":[\"v\"]}}"},
    {"empty user", h_empty_user, N_ELEMENTS(h_empty_user), false, 0, NULL},
    {"no headers", NULL, 0, false, 0, NULL},
    {"first non-empty value", h_first_nonempty, N_ELEMENTS(h_first_nonempty), false, 1,
     "{\"username\":\"second\",\"groups\":[],\"extra\":{}}"},
    /* names in the order listed: X-Other-User first (u0), then X-User */
    {"custom names", h_custom, N_ELEMENTS(h_custom), true, 1,
     "{\"username\":\"u0\",\"groups\":[\"a\"],\"extra\":{\"k\":[\"v\"]}}"},
};

static void test_headers(void **state)
{
	char *un[] = {"X-Other-User", "X-User", NULL};
	char *gr[] = {"X-Groups", NULL};
	char *ex[] = {"X-Ex-", NULL};
	struct sm_auth_header_names custom = {
	    .username = {un, 2}, .group = {gr, 1}, .extra_prefix = {ex, 1}};

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(header_cases); i++) {
		const struct header_case *c = &header_cases[i];
		struct sm_auth_user u = {0};
		int r = sm_auth_user_from_headers(c->custom ? &custom : NULL, c->h, c->n, &u);

		if (r != c->ret)
			fail_msg("case '%s': returned %d, want %d", c->what, r, c->ret);
		if (r == 1) {
			char *s = user_string(&u);

			check_str(c->what, "user", s, c->user_json);
			free(s);
			sm_auth_user_done(&u);
		}
	}
}

/* ---- ConfigMap ---- */

static void test_configmap(void **state)
{
	static const struct {
		const char *what, *json;
		int ret;
		bool client, rh;
		const char *names, *uh, *gh, *ep;
	} cases[] = {
	    {"full",
	     "{\"kind\":\"ConfigMap\",\"data\":{\"client-ca-file\":\"PEM1\","
	     "\"requestheader-client-ca-file\":\"PEM2\","
	     "\"requestheader-allowed-names\":\"[\\\"front-proxy-client\\\",\\\"b\\\"]\","
	     "\"requestheader-username-headers\":\"[\\\"X-Remote-User\\\"]\","
	     "\"requestheader-group-headers\":\"[\\\"X-Remote-Group\\\"]\","
	     "\"requestheader-extra-headers-prefix\":\"[\\\"X-Remote-Extra-\\\"]\","
	     "\"requestheader-uid-headers\":\"null\"}}",
	     0, true, true, "front-proxy-client,b", "X-Remote-User", "X-Remote-Group",
	     "X-Remote-Extra-"},
	    {"null and empty lists",
	     "{\"kind\":\"ConfigMap\",\"data\":{\"client-ca-file\":\"PEM1\","
	     "\"requestheader-allowed-names\":\"null\","
	     "\"requestheader-username-headers\":\"[]\","
	     "\"requestheader-group-headers\":\"\"}}",
	     0, true, false, "", "", "", ""},
	    {"no data", "{\"kind\":\"ConfigMap\"}", 0, false, false, "", "", "", ""},
	    {"not a ConfigMap", "{\"kind\":\"Status\"}", -EPROTO, false, false, "", "", "", ""},
	    {"bad list",
	     "{\"kind\":\"ConfigMap\",\"data\":{\"requestheader-allowed-names\":\"[a\"}}", -EPROTO,
	     false, false, "", "", "", ""},
	    {"list of numbers",
	     "{\"kind\":\"ConfigMap\",\"data\":{\"requestheader-group-headers\":\"[1]\"}}", -EPROTO,
	     false, false, "", "", "", ""},
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		cJSON *doc = cJSON_Parse(cases[i].json);
		struct sm_auth_trust_data t = {0};
		struct sm_error err = {0};
		int r;

		assert_non_null(doc);
		r = sm_auth_trust_from_configmap(doc, &t, &err);
		cJSON_Delete(doc);
		if (r != cases[i].ret)
			fail_msg("case '%s': returned %d (%s)", cases[i].what, r, err.message);
		if (r < 0)
			continue;
		if (!!t.client_ca_pem != cases[i].client || !!t.requestheader_ca_pem != cases[i].rh)
			fail_msg("case '%s': CA presence", cases[i].what);
		{
			const struct sm_strv *lists[] = {&t.allowed_names, &t.headers.username,
			                                 &t.headers.group, &t.headers.extra_prefix};
			const char *want[] = {cases[i].names, cases[i].uh, cases[i].gh,
			                      cases[i].ep};

			for (size_t k = 0; k < 4; k++) {
				char joined[256] = "";
				size_t len = 0;

				for (size_t j = 0; j < lists[k]->n && len < sizeof(joined); j++)
					len +=
					    (size_t)snprintf(joined + len, sizeof(joined) - len,
					                     "%s%s", j ? "," : "", lists[k]->v[j]);
				check_str(cases[i].what, "list", joined, want[k]);
			}
		}
		sm_auth_trust_data_done(&t);
	}
}

/* ---- tokens and reviews ---- */

static void test_bearer(void **state)
{
	static const struct {
		const char *value, *token;
	} cases[] = {
	    {"Bearer abc", "abc"},
	    {"bearer abc", "abc"},
	    {"BEARER abc def", "abc"},
	    {"  Bearer abc", "abc"},
	    {"Bearer ", NULL},
	    {"Bearer", NULL},
	    {"Basic abc", NULL},
	    {"Bearerabc", NULL},
	    {"", NULL},
	    {NULL, NULL},
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		const char *t = NULL;
		size_t len = 0;
		bool ok = sm_auth_bearer_token(cases[i].value, &t, &len);

		if (ok != !!cases[i].token)
			fail_msg("case '%s': found %d", cases[i].value ? cases[i].value : "(null)",
			         ok);
		if (ok && (len != strlen(cases[i].token) || memcmp(t, cases[i].token, len) != 0))
			fail_msg("case '%s': token '%.*s'", cases[i].value, (int)len, t);
	}
}

static void test_token_review(void **state)
{
	static const struct {
		const char *what, *json;
		int ret;
		const char *user_json, *err;
	} cases[] = {
	    {"authenticated",
	     "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"user\":{\"username\":"
	     "\"sa\",\"uid\":\"u1\",\"groups\":[\"g\"],\"extra\":{\"k\":[\"v\"]}}}}",
	     1, "{\"username\":\"sa\",\"uid\":\"u1\",\"groups\":[\"g\"],\"extra\":{\"k\":[\"v\"]}}",
	     NULL},
	    {"not authenticated with error",
	     "{\"kind\":\"TokenReview\",\"status\":{\"error\":\"invalid bearer token\"}}", 0, NULL,
	     "token not authenticated: invalid bearer token"},
	    {"authenticated false",
	     "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":false}}", 0, NULL,
	     "token not authenticated"},
	    {"no status", "{\"kind\":\"TokenReview\"}", 0, NULL, "token not authenticated"},
	    {"no username",
	     "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"user\":{}}}", 0, NULL,
	     NULL},
	    {"not a TokenReview", "{\"kind\":\"Status\",\"code\":403}", -EPROTO, NULL, NULL},
	};
	cJSON *req = sm_auth_token_review_request("t0k");
	char *s = cJSON_PrintUnformatted(req);

	(void)state;
	assert_string_equal(s, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":"
	                       "\"TokenReview\",\"spec\":{\"token\":\"t0k\"}}");
	free(s);
	cJSON_Delete(req);
	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		cJSON *doc = cJSON_Parse(cases[i].json);
		struct sm_auth_user u = {0};
		struct sm_error err = {0};
		int r = sm_auth_token_review_parse(doc, &u, &err);

		cJSON_Delete(doc);
		if (r != cases[i].ret)
			fail_msg("case '%s': returned %d", cases[i].what, r);
		if (r == 1) {
			s = user_string(&u);
			check_str(cases[i].what, "user", s, cases[i].user_json);
			free(s);
			sm_auth_user_done(&u);
		}
		if (cases[i].err)
			check_str(cases[i].what, "error", err.message, cases[i].err);
	}
}

static void test_sar(void **state)
{
	static const struct {
		const char *what, *json;
		int ret;
		enum sm_authz_decision d;
		const char *reason;
	} cases[] = {
	    {"allowed",
	     "{\"kind\":\"SubjectAccessReview\",\"status\":{\"allowed\":true,\"reason\":\"rbac\"}}",
	     0, SM_AUTHZ_ALLOW, "rbac"},
	    {"denied",
	     "{\"kind\":\"SubjectAccessReview\",\"status\":{\"allowed\":false,\"denied\":true}}", 0,
	     SM_AUTHZ_DENY, NULL},
	    {"both",
	     "{\"kind\":\"SubjectAccessReview\",\"status\":{\"allowed\":true,\"denied\":true}}", 0,
	     SM_AUTHZ_DENY, NULL},
	    {"neither", "{\"kind\":\"SubjectAccessReview\",\"status\":{\"allowed\":false}}", 0,
	     SM_AUTHZ_NO_OPINION, NULL},
	    {"no allowed", "{\"kind\":\"SubjectAccessReview\",\"status\":{}}", -EPROTO, 0, NULL},
	    {"allowed a string",
	     "{\"kind\":\"SubjectAccessReview\",\"status\":{\"allowed\":\"true\"}}", -EPROTO, 0,
	     NULL},
	    {"a Status", "{\"kind\":\"Status\",\"code\":403}", -EPROTO, 0, NULL},
	};
	char *g[] = {"g1", "system:authenticated", NULL};
	char *ev[] = {"x", NULL};
	struct sm_auth_extra extra = {.key = "k/1", .values = {ev, 1}};
	struct sm_auth_user u = {
	    .name = "hpa", .uid = "u1", .groups = {g, 2}, .extra = &extra, .n_extra = 1};
	struct sm_authz_attributes a;
	struct sm_error err = {0};
	cJSON *doc;
	char *s;

	(void)state;
	assert_int_equal(
	    sm_authz_attributes_from_request(
	        "GET", CM "/v1beta2/namespaces/default/pods/%2A/http_requests", NULL, &a, &err),
	    0);
	doc = sm_authz_sar_request(&u, &a);
	s = cJSON_PrintUnformatted(doc);
	assert_string_equal(
	    s, "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\","
	       "\"spec\":{\"resourceAttributes\":{\"namespace\":\"default\",\"verb\":\"get\","
	       "\"group\":\"custom.metrics.k8s.io\",\"version\":\"v1beta2\",\"resource\":\"pods\","
	       "\"subresource\":\"http_requests\",\"name\":\"*\"},\"user\":\"hpa\",\"groups\":["
	       "\"g1\",\"system:authenticated\"],\"extra\":{\"k/1\":[\"x\"]},\"uid\":\"u1\"}}");
	free(s);
	cJSON_Delete(doc);
	sm_authz_attributes_done(&a);

	assert_int_equal(sm_authz_attributes_from_request("GET", "/apis", NULL, &a, &err), 0);
	u = (struct sm_auth_user){.name = "system:anonymous"};
	doc = sm_authz_sar_request(&u, &a);
	s = cJSON_PrintUnformatted(doc);
	assert_string_equal(
	    s, "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\","
	       "\"spec\":{\"nonResourceAttributes\":{\"path\":\"/apis\",\"verb\":\"get\"},"
	       "\"user\":\"system:anonymous\"}}");
	free(s);
	cJSON_Delete(doc);
	sm_authz_attributes_done(&a);

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		enum sm_authz_decision d = SM_AUTHZ_DECISION_MAX;
		char *reason = NULL;
		int r;

		doc = cJSON_Parse(cases[i].json);
		r = sm_authz_sar_parse(doc, &d, &reason, &err);
		cJSON_Delete(doc);
		if (r != cases[i].ret)
			fail_msg("case '%s': returned %d", cases[i].what, r);
		if (r == 0 && d != cases[i].d)
			fail_msg("case '%s': decision %d", cases[i].what, d);
		if (r == 0 && !!reason != !!cases[i].reason)
			fail_msg("case '%s': reason", cases[i].what);
		if (reason)
			check_str(cases[i].what, "reason", reason, cases[i].reason);
		free(reason);
	}
}

/* The decision cache's key stands for the review: two requests share a key exactly when
 * their SubjectAccessReviews are the same document. */
static void test_decision_key(void **state)
{
	char *g1[] = {"g1", "system:authenticated", NULL};
	char *g2[] = {"g1", NULL};
	char *g3[] = {"system:authenticated", "g1", NULL};
	char *g4[] = {"g", "1system:authenticated", NULL};
	char *ev1[] = {"x", NULL};
	char *ev2[] = {"y", NULL};
	char *ev3[] = {"x", "y", NULL};
	struct sm_auth_extra ex[] = {
	    {.key = "k/1", .values = {ev1, 1}},
	    {.key = "k/1", .values = {ev2, 1}},
	    {.key = "k/2", .values = {ev1, 1}},
	    {.key = "k/1", .values = {ev3, 2}},
	};
	const struct sm_auth_user base_user = {
	    .name = "hpa", .uid = "u1", .groups = {g1, 2}, .extra = &ex[0], .n_extra = 1};
	const struct sm_authz_attributes base_attrs = {.resource_request = true,
	                                               .verb = "get",
	                                               .group = "custom.metrics.k8s.io",
	                                               .version = "v1beta2",
	                                               .namespace = "default",
	                                               .resource = "pods",
	                                               .subresource = "http_requests",
	                                               .name = "*"};
	struct {
		struct sm_auth_user u;
		struct sm_authz_attributes a;
		char key[65];
		char *sar;
	} v[32];
	size_t n = 0;

	(void)state;
#define VARIANT(...)                                                                               \
	do {                                                                                       \
		struct sm_auth_user *u = &v[n].u;                                                  \
		struct sm_authz_attributes *a = &v[n].a;                                           \
		*u = base_user;                                                                    \
		*a = base_attrs;                                                                   \
		__VA_ARGS__;                                                                       \
		(void)u;                                                                           \
		(void)a;                                                                           \
		n++;                                                                               \
	} while (0)
	VARIANT((void)0);
	VARIANT((void)0); /* the same again */
	VARIANT(a->verb = "list");
	VARIANT(a->namespace = "other");
	VARIANT(a->namespace = NULL);
	VARIANT(a->namespace = ""); /* the review leaves out "" as it does NULL */
	VARIANT(a->group = "external.metrics.k8s.io");
	VARIANT(a->version = "v1beta1");
	VARIANT(a->resource = "deployments.apps");
	VARIANT(a->subresource = "http_requests_total");
	VARIANT(a->name = "web-1");
	VARIANT((a->resource = "pods/http_requests", a->subresource = NULL));
	VARIANT((a->resource_request = false, a->path = "/apis"));
	VARIANT((a->resource_request = false, a->path = "/apis/"));
	VARIANT(u->name = "hpa2");
	VARIANT(u->uid = NULL);
	VARIANT(u->uid = "");
	VARIANT(u->uid = "u2");
	VARIANT(u->groups = (struct sm_strv){g2, 1});
	VARIANT(u->groups = (struct sm_strv){g3, 2});
	VARIANT(u->groups = (struct sm_strv){g4, 2});
	VARIANT(u->groups = (struct sm_strv){0});
	VARIANT((u->name = "hpag1", u->groups = (struct sm_strv){&g1[1], 1}));
	VARIANT(u->n_extra = 0);
	VARIANT(u->extra = &ex[1]);
	VARIANT(u->extra = &ex[2]);
	VARIANT(u->extra = &ex[3]);
	VARIANT(u->n_extra = 2);
#undef VARIANT
	for (size_t i = 0; i < n; i++) {
		cJSON *doc = sm_authz_sar_request(&v[i].u, &v[i].a);

		assert_non_null(doc);
		v[i].sar = cJSON_PrintUnformatted(doc);
		cJSON_Delete(doc);
		assert_int_equal(sm_authz_cache_key(&v[i].u, &v[i].a, v[i].key), 0);
		assert_int_equal(strlen(v[i].key), 64);
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++) {
			bool same_review = strcmp(v[i].sar, v[j].sar) == 0;
			bool same_key = strcmp(v[i].key, v[j].key) == 0;

			if (same_review != same_key)
				fail_msg(
				    "variants %zu and %zu: same review %d, same key %d (%s / %s)",
				    i, j, same_review, same_key, v[i].sar, v[j].sar);
		}
	assert_string_equal(v[0].key, v[1].key);
	assert_string_equal(v[3 + 1].key, v[3 + 2].key); /* namespace NULL and "" */
	for (size_t i = 0; i < n; i++)
		free(v[i].sar);
}

static void test_forbidden(void **state)
{
	static const struct {
		const char *what, *user, *method, *path, *reason, *message, *details;
	} cases[] = {
	    {"pod metric", "system:anonymous", "GET",
	     CM "/v1beta2/namespaces/default/pods/%2A/http_requests", NULL,
	     "pods.custom.metrics.k8s.io \"*\" is forbidden: User \"system:anonymous\" cannot get "
	     "resource \"pods/http_requests\" in API group \"custom.metrics.k8s.io\" in the "
	     "namespace \"default\"",
	     "{\"name\":\"*\",\"group\":\"custom.metrics.k8s.io\",\"kind\":\"pods\"}"},
	    {"external with reason", "bob", "GET", EM "/v1beta1/namespaces/ns/q", "no <rule> & x",
	     "q.external.metrics.k8s.io is forbidden: User \"bob\" cannot list resource \"q\" in "
	     "API group \"external.metrics.k8s.io\" in the namespace \"ns\": no <rule> & x",
	     "{\"group\":\"external.metrics.k8s.io\",\"kind\":\"q\"}"},
	    {"cluster scope", "a\"b<c>&", "GET", CM "/v1beta1/nodes/n1/t", NULL,
	     "nodes.custom.metrics.k8s.io \"n1\" is forbidden: User \"a\\\"b&lt;c&gt;&amp;\" "
	     "cannot "
	     "get resource \"nodes/t\" in API group \"custom.metrics.k8s.io\" at the cluster scope",
	     "{\"name\":\"n1\",\"group\":\"custom.metrics.k8s.io\",\"kind\":\"nodes\"}"},
	    {"non-resource", "x", "GET", "/openapi/v2", NULL,
	     "forbidden: User \"x\" cannot get path \"/openapi/v2\"", "{}"},
	    {"control characters", "x\ny", "GET", "/a%09b", NULL,
	     "forbidden: User \"x\\ny\" cannot get path \"/a\\tb\"", "{}"},
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		struct sm_auth_user u = {.name = (char *)cases[i].user};
		struct sm_authz_attributes a;
		struct sm_api_response resp = {0};
		struct sm_error err = {0};
		cJSON *doc;
		char *details;

		assert_int_equal(sm_authz_attributes_from_request(cases[i].method, cases[i].path,
		                                                  NULL, &a, &err),
		                 0);
		assert_int_equal(sm_authz_forbidden(&u, &a, cases[i].reason, &resp), 0);
		assert_int_equal(resp.status, 403);
		assert_string_equal(resp.content_type, "application/json");
		doc = cJSON_Parse(resp.body);
		assert_non_null(doc);
		check_str(cases[i].what, "message",
		          cJSON_GetObjectItem(doc, "message")->valuestring, cases[i].message);
		check_str(cases[i].what, "reason", cJSON_GetObjectItem(doc, "reason")->valuestring,
		          "Forbidden");
		assert_int_equal(cJSON_GetObjectItem(doc, "code")->valueint, 403);
		details = cJSON_PrintUnformatted(cJSON_GetObjectItem(doc, "details"));
		check_str(cases[i].what, "details", details, cases[i].details);
		free(details);
		cJSON_Delete(doc);
		sm_api_response_done(&resp);
		sm_authz_attributes_done(&a);
	}
}

static void test_user_json_round_trip(void **state)
{
	static const char *const docs[] = {
	    "{\"username\":\"a\",\"groups\":[],\"extra\":{}}",
	    "{\"username\":\"a\",\"uid\":\"1\",\"groups\":[\"x\",\"y\"],\"extra\":{\"k\":[\"1\","
	    "\"2\"],\"m\":[]}}",
	};

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(docs); i++) {
		cJSON *j = cJSON_Parse(docs[i]);
		struct sm_auth_user u = {0};
		char *s;

		assert_int_equal(sm_auth_user_from_json(j, &u), 0);
		cJSON_Delete(j);
		s = user_string(&u);
		check_str(docs[i], "round trip", s, docs[i]);
		free(s);
		assert_int_equal(sm_auth_user_add_group(&u, "x"), 0);
		assert_int_equal(sm_auth_user_add_group(&u, "system:authenticated"), 0);
		assert_true(sm_auth_user_in_group(&u, "system:authenticated"));
		sm_auth_user_done(&u);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_attributes), cmocka_unit_test(test_open_and_discovery_paths),
	    cmocka_unit_test(test_headers),    cmocka_unit_test(test_configmap),
	    cmocka_unit_test(test_bearer),     cmocka_unit_test(test_token_review),
	    cmocka_unit_test(test_sar),        cmocka_unit_test(test_decision_key),
	    cmocka_unit_test(test_forbidden),  cmocka_unit_test(test_user_json_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
