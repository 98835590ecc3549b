/* SPDX-License-Identifier: MIT */
/* Discovery documents (APIGroupList, APIGroup, APIResourceList), /version and the OpenAPI
 * v2/v3 documents, all built from the router's table (docs/api.md "Discovery"). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/config.h"
#include "scalemetrics/forward.h"
#include "scalemetrics/hash.h"
#include "scalemetrics/query.h"
#include "scalemetrics/resource-kind.h"
#include "scalemetrics/store.h"

#include "api-internal.h"

#define DEF_RESOURCE_LIST "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"
#define DEF_STATUS        "io.k8s.apimachinery.pkg.apis.meta.v1.Status"

static bool is_group_route(const struct sm_api_route *rt)
{
	return rt->group && !rt->version;
}

static bool is_version_route(const struct sm_api_route *rt)
{
	return rt->group && rt->version && rt->max_extra == 0;
}

static cJSON *group_version(const char *group, const char *version)
{
	char gv[128];
	cJSON *o = cJSON_CreateObject();

	(void)snprintf(gv, sizeof(gv), "%s/%s", group, version);
	if (!cJSON_AddStringToObject(o, "groupVersion", gv) ||
	    !cJSON_AddStringToObject(o, "version", version)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* An APIGroup object; with_type adds kind/apiVersion (the standalone document). */
static cJSON *api_group(const char *group, bool with_type)
{
	const struct sm_api_route *rt;
	cJSON *o = cJSON_CreateObject();
	cJSON *versions;
	const char *preferred = NULL;
	size_t n;
	bool ok;

	ok = o && (!with_type || (cJSON_AddStringToObject(o, "kind", "APIGroup") &&
	                          cJSON_AddStringToObject(o, "apiVersion", "v1")));
	ok = ok && cJSON_AddStringToObject(o, "name", group);
	versions = ok ? cJSON_AddArrayToObject(o, "versions") : NULL;
	ok = ok && versions;
	rt = sm_api_routes(&n);
	for (size_t i = 0; i < n && ok; i++) {
		if (!is_version_route(&rt[i]) || strcmp(rt[i].group, group) != 0)
			continue;
		if (!preferred)
			preferred = rt[i].version;
		ok = cJSON_AddItemToArray(versions, group_version(group, rt[i].version));
	}
	if (ok && preferred)
		ok = cJSON_AddItemToObject(o, "preferredVersion", group_version(group, preferred));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int sm_api_handle_group_list(const struct sm_api_call *c, struct sm_api_response *ret)
{
	const struct sm_api_route *rt;
	cJSON *doc = cJSON_CreateObject();
	cJSON *groups;
	size_t n;
	bool ok;
	int r = -ENOMEM;

	ok = doc && cJSON_AddStringToObject(doc, "kind", "APIGroupList") &&
	     cJSON_AddStringToObject(doc, "apiVersion", "v1");
	groups = ok ? cJSON_AddArrayToObject(doc, "groups") : NULL;
	ok = ok && groups;
	rt = sm_api_routes(&n);
	for (size_t i = 0; i < n && ok; i++) {
		if (is_group_route(&rt[i]))
			ok = cJSON_AddItemToArray(groups, api_group(rt[i].group, false));
	}
	if (ok)
		r = sm_api_respond_json(doc, c->route->name, ret);
	cJSON_Delete(doc);
	return r;
}

int sm_api_handle_group(const struct sm_api_call *c, struct sm_api_response *ret)
{
	cJSON *doc = api_group(c->route->group, true);
	int r = -ENOMEM;

	if (doc)
		r = sm_api_respond_json(doc, c->route->name, ret);
	cJSON_Delete(doc);
	return r;
}

/* ---- APIResourceList ---- */

struct resource_entry {
	char *name;
	bool namespaced;
};

struct resource_set {
	enum sm_api_kind kind;
	struct resource_entry *items;
	size_t n, cap;
	bool oom;
};

static void resource_add(struct resource_set *s, const char *prefix, const char *metric,
                         bool namespaced)
{
	size_t len;
	char *name;

	if (s->oom)
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct resource_entry *items = realloc(s->items, cap * sizeof(*items));

		if (!items) {
			s->oom = true;
			return;
		}
		s->items = items;
		s->cap = cap;
	}
	len = (prefix ? strlen(prefix) + 1 : 0) + strlen(metric) + 1;
	name = malloc(len);
	if (!name) {
		s->oom = true;
		return;
	}
	if (prefix)
		(void)snprintf(name, len, "%s/%s", prefix, metric);
	else
		(void)snprintf(name, len, "%s", metric);
	s->items[s->n++] = (struct resource_entry){.name = name, .namespaced = namespaced};
}

static void collect_metric(const struct sm_metric_def *def, void *userdata)
{
	struct resource_set *s = userdata;

	if (!def || !def->name)
		return;
	if (s->kind == SM_API_EXTERNAL) {
		resource_add(s, NULL, def->name, true);
		return;
	}
	if (def->scope == SM_METRIC_PODS)
		resource_add(s, "pods", def->name, true);
	else if (def->scope == SM_METRIC_OBJECT && def->resource && *def->resource)
		resource_add(s, def->resource, def->name, sm_resource_is_namespaced(def->resource));
	/* Per-namespace totals: .../namespaces/NS/metrics/M, described object a Namespace. */
	resource_add(s, "namespaces", def->name, false);
}

/* A resource the group's other adapter lists (forward.h), its metric not ours. */
static void collect_forwarded(const char *name, bool namespaced, void *userdata)
{
	resource_add(userdata, NULL, name, namespaced);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct resource_entry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

int sm_api_handle_resource_list(const struct sm_api_call *c, struct sm_api_response *ret)
{
	const struct sm_api_route *rt = c->route;
	struct resource_set set = {.kind = rt->kind};
	const char *kind =
	    rt->kind == SM_API_EXTERNAL ? "ExternalMetricValueList" : "MetricValueList";
	cJSON *doc = NULL;
	cJSON *resources;
	char gv[128];
	bool ok, forwarded;
	int r = -ENOMEM;

	if (c->ctx->store)
		sm_query_for_each_metric(c->ctx->store, collect_metric, &set);
	forwarded = sm_forward_for_each_resource(c->ctx->forward, sm_store_config(c->ctx->store),
	                                         rt->group, rt->version, collect_forwarded, &set);
	if (set.oom)
		goto out;
	if (set.n > 1)
		qsort(set.items, set.n, sizeof(set.items[0]), entry_cmp);

	(void)snprintf(gv, sizeof(gv), "%s/%s", rt->group, rt->version);
	doc = cJSON_CreateObject();
	ok = doc && cJSON_AddStringToObject(doc, "kind", "APIResourceList") &&
	     cJSON_AddStringToObject(doc, "apiVersion", "v1") &&
	     cJSON_AddStringToObject(doc, "groupVersion", gv);
	resources = ok ? cJSON_AddArrayToObject(doc, "resources") : NULL;
	ok = ok && resources;
	for (size_t i = 0; i < set.n && ok; i++) {
		cJSON *res, *verbs;

		if (i > 0 && strcmp(set.items[i].name, set.items[i - 1].name) == 0)
			continue;
		res = cJSON_CreateObject();
		ok = cJSON_AddItemToArray(resources, res) &&
		     cJSON_AddStringToObject(res, "name", set.items[i].name) &&
		     cJSON_AddStringToObject(res, "singularName", "") &&
		     cJSON_AddBoolToObject(res, "namespaced", set.items[i].namespaced) &&
		     cJSON_AddStringToObject(res, "kind", kind);
		verbs = ok ? cJSON_AddArrayToObject(res, "verbs") : NULL;
		ok = ok && verbs && cJSON_AddItemToArray(verbs, cJSON_CreateString("get"));
		if (!res)
			ok = false;
	}
	if (ok)
		r = sm_api_respond_json(doc, rt->name, ret);
	/* The other adapter's part changes without the store knowing. */
	if (r == 0 && forwarded)
		ret->reusable = false;
out:
	cJSON_Delete(doc);
	for (size_t i = 0; i < set.n; i++)
		free(set.items[i].name);
	free(set.items);
	return r;
}

/* ---- /version ---- */

/* "0.1.0" -> "v0.1.0"; an already prefixed version is kept. */
static void git_version(const struct sm_api_context *ctx, char *buf, size_t len)
{
	const char *v = ctx->version && *ctx->version ? ctx->version : "0.0.0";

	(void)snprintf(buf, len, "%s%s", v[0] == 'v' ? "" : "v", v);
}

/* The n-th dot-separated numeric field of the version ("" if missing). */
static void version_field(const char *gitver, size_t field, char *buf, size_t len)
{
	const char *p = gitver + 1;
	size_t k = 0;

	for (size_t i = 0; i < field && *p; p++) {
		if (*p == '.')
			i++;
	}
	while (p[k] >= '0' && p[k] <= '9' && k + 1 < len) {
		buf[k] = p[k];
		k++;
	}
	buf[k] = '\0';
}

static const char *platform(void)
{
#if defined(__x86_64__)
	return "linux/amd64";
#elif defined(__aarch64__)
	return "linux/arm64";
#elif defined(__i386__)
	return "linux/386";
#elif defined(__arm__)
	return "linux/arm";
#else
	return "linux/unknown";
#endif
}

int sm_api_handle_version(const struct sm_api_call *c, struct sm_api_response *ret)
{
	char ver[64], major[16], minor[16];
	cJSON *doc = cJSON_CreateObject();
	bool ok;
	int r = -ENOMEM;

	git_version(c->ctx, ver, sizeof(ver));
	version_field(ver, 0, major, sizeof(major));
	version_field(ver, 1, minor, sizeof(minor));
	ok = doc && cJSON_AddStringToObject(doc, "major", major) &&
	     cJSON_AddStringToObject(doc, "minor", minor) &&
	     cJSON_AddStringToObject(doc, "gitVersion", ver) &&
	     cJSON_AddStringToObject(doc, "gitCommit",
	                             c->ctx->git_commit ? c->ctx->git_commit : "") &&
	     cJSON_AddStringToObject(doc, "gitTreeState", "") &&
	     cJSON_AddStringToObject(doc, "buildDate", "1970-01-01T00:00:00Z") &&
	     cJSON_AddStringToObject(doc, "goVersion", "") &&
	     cJSON_AddStringToObject(doc, "compiler", "gcc") &&
	     cJSON_AddStringToObject(doc, "platform", platform());
	if (ok)
		r = sm_api_respond_json(doc, c->route->name, ret);
	cJSON_Delete(doc);
	return r;
}

/* ---- OpenAPI ---- */

/* The metric paths under a group/version (after "/apis/<g>/<v>"), by API kind. */
struct path_template {
	enum sm_api_kind kind;
	const char *path;
	bool object_selector; /* takes labelSelector as an object selector */
};

static const struct path_template path_templates[] = {
    {SM_API_CUSTOM, "/namespaces/{namespace}/metrics/{metric}", false},
    {SM_API_CUSTOM, "/namespaces/{namespace}/{resource}/{name}/{metric}", true},
    {SM_API_CUSTOM, "/{resource}/{name}/{metric}", true},
    {SM_API_EXTERNAL, "/namespaces/{namespace}/{metric}", true},
};

static void list_definition(const struct sm_api_route *rt, char *buf, size_t len)
{
	if (rt->kind == SM_API_EXTERNAL)
		(void)snprintf(
		    buf, len, "io.k8s.metrics.pkg.apis.external_metrics.%s.ExternalMetricValueList",
		    rt->version);
	else
		(void)snprintf(buf, len,
		               "io.k8s.metrics.pkg.apis.custom_metrics.%s.MetricValueList",
		               rt->version);
}

static cJSON *schema_object(const char *const *required, size_t n_required,
                            const char *const *props, size_t n_props)
{
	cJSON *s = cJSON_CreateObject();
	cJSON *req, *properties;
	bool ok = s && cJSON_AddStringToObject(s, "type", "object");

	req = ok && n_required ? cJSON_AddArrayToObject(s, "required") : NULL;
	ok = ok && (!n_required || req);
	for (size_t i = 0; i < n_required && ok; i++)
		ok = cJSON_AddItemToArray(req, cJSON_CreateString(required[i]));
	properties = ok ? cJSON_AddObjectToObject(s, "properties") : NULL;
	ok = ok && properties;
	for (size_t i = 0; i < n_props && ok; i++) {
		cJSON *p = cJSON_AddObjectToObject(properties, props[i]);
		const char *type = "string";

		if (strcmp(props[i], "items") == 0 || strcmp(props[i], "resources") == 0)
			type = "array";
		else if (strcmp(props[i], "metadata") == 0)
			type = "object";
		else if (strcmp(props[i], "code") == 0)
			type = "integer";
		ok = p && cJSON_AddStringToObject(p, "type", type);
		if (ok && strcmp(type, "array") == 0) {
			cJSON *items = cJSON_AddObjectToObject(p, "items");

			ok = items && cJSON_AddStringToObject(items, "type", "object");
		}
	}
	if (!ok) {
		cJSON_Delete(s);
		return NULL;
	}
	return s;
}

static bool add_definitions(cJSON *defs, const struct sm_api_route *only)
{
	static const char *const list_props[] = {"kind", "apiVersion", "metadata", "items"};
	static const char *const list_req[] = {"items"};
	static const char *const rl_props[] = {"kind", "apiVersion", "groupVersion", "resources"};
	static const char *const rl_req[] = {"groupVersion", "resources"};
	static const char *const st_props[] = {"kind",    "apiVersion", "metadata", "status",
	                                       "message", "reason",     "code"};
	const struct sm_api_route *rt;
	size_t n;
	bool ok;

	ok =
	    cJSON_AddItemToObject(defs, DEF_RESOURCE_LIST, schema_object(rl_req, 2, rl_props, 4)) &&
	    cJSON_AddItemToObject(defs, DEF_STATUS, schema_object(NULL, 0, st_props, 7));
	rt = sm_api_routes(&n);
	for (size_t i = 0; i < n && ok; i++) {
		char name[128];

		if (!is_version_route(&rt[i]) || (only && only != &rt[i]))
			continue;
		list_definition(&rt[i], name, sizeof(name));
		ok = cJSON_AddItemToObject(defs, name, schema_object(list_req, 1, list_props, 4));
	}
	return ok;
}

/* A parameter object; v3 wraps the type in a schema. */
static cJSON *parameter(const char *name, const char *in, bool v3)
{
	cJSON *p = cJSON_CreateObject();
	bool ok = p && cJSON_AddStringToObject(p, "name", name) &&
	          cJSON_AddStringToObject(p, "in", in) &&
	          cJSON_AddBoolToObject(p, "required", strcmp(in, "path") == 0);

	if (ok && v3) {
		cJSON *schema = cJSON_AddObjectToObject(p, "schema");

		ok = schema && cJSON_AddStringToObject(schema, "type", "string");
	} else if (ok) {
		ok = cJSON_AddStringToObject(p, "type", "string");
	}
	if (!ok) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* A GET operation on path (which names its {parameters}) answering the definition def. */
static cJSON *operation(const char *path, const char *def, bool object_selector,
                        bool metric_selector, const char *op_id, bool v3)
{
	char ref[192];
	cJSON *path_item = cJSON_CreateObject();
	cJSON *get = cJSON_AddObjectToObject(path_item, "get");
	cJSON *params = NULL;
	cJSON *responses, *ok200;
	bool ok = get && cJSON_AddStringToObject(get, "operationId", op_id);

	if (ok && !v3) {
		cJSON *produces = cJSON_AddArrayToObject(get, "produces");

		ok = produces && cJSON_AddItemToArray(produces, cJSON_CreateString(SM_API_CT_JSON));
	}
	/* Path parameters, in the order they appear. */
	for (const char *p = strchr(path, '{'); p && ok; p = strchr(p + 1, '{')) {
		const char *end = strchr(p, '}');
		char name[32];

		if (!end || (size_t)(end - p) >= sizeof(name))
			break;
		(void)snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
		if (!params)
			params = cJSON_AddArrayToObject(get, "parameters");
		ok = params && cJSON_AddItemToArray(params, parameter(name, "path", v3));
	}
	if (ok && (object_selector || metric_selector) && !params) {
		params = cJSON_AddArrayToObject(get, "parameters");
		ok = params != NULL;
	}
	if (ok && object_selector)
		ok = cJSON_AddItemToArray(params, parameter("labelSelector", "query", v3));
	if (ok && metric_selector)
		ok = cJSON_AddItemToArray(params, parameter("metricLabelSelector", "query", v3));

	responses = ok ? cJSON_AddObjectToObject(get, "responses") : NULL;
	ok200 = responses ? cJSON_AddObjectToObject(responses, "200") : NULL;
	ok = ok200 && cJSON_AddStringToObject(ok200, "description", "OK");
	(void)snprintf(ref, sizeof(ref), "%s%s", v3 ? "#/components/schemas/" : "#/definitions/",
	               def);
	if (ok && v3) {
		cJSON *content = cJSON_AddObjectToObject(ok200, "content");
		cJSON *json = content ? cJSON_AddObjectToObject(content, SM_API_CT_JSON) : NULL;
		cJSON *schema = json ? cJSON_AddObjectToObject(json, "schema") : NULL;

		ok = schema && cJSON_AddStringToObject(schema, "$ref", ref);
	} else if (ok) {
		cJSON *schema = cJSON_AddObjectToObject(ok200, "schema");

		ok = schema && cJSON_AddStringToObject(schema, "$ref", ref);
	}
	if (!ok) {
		cJSON_Delete(path_item);
		return NULL;
	}
	return path_item;
}

/* Adds the discovery path and the metric paths of one group/version route. */
static bool add_paths(cJSON *paths, const struct sm_api_route *rt, bool v3)
{
	char base[128], path[256], def[128], op_id[128];
	bool ok;

	(void)snprintf(base, sizeof(base), "/apis/%s/%s", rt->group, rt->version);
	(void)snprintf(path, sizeof(path), "%s/", base);
	(void)snprintf(op_id, sizeof(op_id), "get%sResources_%s",
	               rt->kind == SM_API_EXTERNAL ? "External" : "Custom", rt->version);
	ok = cJSON_AddItemToObject(paths, path,
	                           operation(path, DEF_RESOURCE_LIST, false, false, op_id, v3));
	list_definition(rt, def, sizeof(def));
	for (size_t i = 0; i < sizeof(path_templates) / sizeof(path_templates[0]) && ok; i++) {
		const struct path_template *t = &path_templates[i];

		if (t->kind != rt->kind)
			continue;
		(void)snprintf(path, sizeof(path), "%s%s", base, t->path);
		(void)snprintf(op_id, sizeof(op_id), "get%sMetric_%s_%zu",
		               rt->kind == SM_API_EXTERNAL ? "External" : "Custom", rt->version, i);
		ok = cJSON_AddItemToObject(
		    paths, path,
		    operation(path, def, t->object_selector, rt->kind == SM_API_CUSTOM, op_id, v3));
	}
	return ok;
}

static cJSON *info(const struct sm_api_context *ctx)
{
	char ver[64];
	cJSON *o = cJSON_CreateObject();

	git_version(ctx, ver, sizeof(ver));
	if (!cJSON_AddStringToObject(o, "title", "scalemetrics") ||
	    !cJSON_AddStringToObject(o, "version", ver)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int sm_api_handle_openapi_v2(const struct sm_api_call *c, struct sm_api_response *ret)
{
	const struct sm_api_route *rt;
	cJSON *doc = cJSON_CreateObject();
	cJSON *paths = NULL, *defs = NULL;
	size_t n;
	bool ok;
	int r = -ENOMEM;

	ok = doc && cJSON_AddStringToObject(doc, "swagger", "2.0") &&
	     cJSON_AddItemToObject(doc, "info", info(c->ctx));
	paths = ok ? cJSON_AddObjectToObject(doc, "paths") : NULL;
	defs = paths ? cJSON_AddObjectToObject(doc, "definitions") : NULL;
	ok = defs != NULL;
	rt = sm_api_routes(&n);
	for (size_t i = 0; i < n && ok; i++) {
		if (is_version_route(&rt[i]))
			ok = add_paths(paths, &rt[i], false);
	}
	ok = ok && add_definitions(defs, NULL);
	if (ok)
		r = sm_api_respond_json(doc, c->route->name, ret);
	cJSON_Delete(doc);
	return r;
}

/* The OpenAPI 3.0 document of one group/version, printed. NULL: out of memory. */
static char *openapi_v3_gv(const struct sm_api_context *ctx, const struct sm_api_route *rt)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *paths, *components, *schemas;
	char *out = NULL;
	bool ok;

	ok = doc && cJSON_AddStringToObject(doc, "openapi", "3.0.0") &&
	     cJSON_AddItemToObject(doc, "info", info(ctx));
	paths = ok ? cJSON_AddObjectToObject(doc, "paths") : NULL;
	components = paths ? cJSON_AddObjectToObject(doc, "components") : NULL;
	schemas = components ? cJSON_AddObjectToObject(components, "schemas") : NULL;
	ok = schemas && add_paths(paths, rt, true) && add_definitions(schemas, rt);
	if (ok)
		out = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	return out;
}

int sm_api_handle_openapi_v3(const struct sm_api_call *c, struct sm_api_response *ret)
{
	const struct sm_api_route *rt;
	cJSON *doc = cJSON_CreateObject();
	cJSON *paths = cJSON_AddObjectToObject(doc, "paths");
	size_t n;
	bool ok = paths != NULL;
	int r = -ENOMEM;

	rt = sm_api_routes(&n);
	for (size_t i = 0; i < n && ok; i++) {
		char key[128], url[192];
		char *gv_doc;
		cJSON *entry;

		if (!is_version_route(&rt[i]))
			continue;
		gv_doc = openapi_v3_gv(c->ctx, &rt[i]);
		if (!gv_doc) {
			ok = false;
			break;
		}
		(void)snprintf(key, sizeof(key), "apis/%s/%s", rt[i].group, rt[i].version);
		/* A stable content hash of the document, for cache busting only. */
		(void)snprintf(url, sizeof(url), "/openapi/v3/%s?hash=%016llX", key,
		               (unsigned long long)sm_hash_bytes(gv_doc, strlen(gv_doc)));
		free(gv_doc);
		entry = cJSON_AddObjectToObject(paths, key);
		ok = entry && cJSON_AddStringToObject(entry, "serverRelativeURL", url);
	}
	if (ok)
		r = sm_api_respond_json(doc, c->route->name, ret);
	cJSON_Delete(doc);
	return r;
}

int sm_api_handle_openapi_v3_gv(const struct sm_api_call *c, struct sm_api_response *ret)
{
	const struct sm_api_route *rt;
	size_t n;

	rt = sm_api_routes(&n);
	for (size_t i = 0; i < n; i++) {
		char *body;

		if (!is_version_route(&rt[i]) || strcmp(rt[i].group, c->segs[0]) != 0 ||
		    strcmp(rt[i].version, c->segs[1]) != 0)
			continue;
		body = openapi_v3_gv(c->ctx, &rt[i]);
		if (!body)
			return -ENOMEM;
		*ret = (struct sm_api_response){
		    .status = 200,
		    .content_type = SM_API_CT_JSON,
		    .body = body,
		    .body_len = strlen(body),
		    .route = c->route->name,
		};
		return 0;
	}
	return sm_api_status(404, "NotFound", "the server could not find the requested resource",
	                     ret);
}
