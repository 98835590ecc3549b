/* SPDX-License-Identifier: MIT */
/* custom.metrics.k8s.io: request shapes to queries, MetricValueList encoding (v1beta1 and
 * v1beta2, k8s-metrics-api.md §2.2 and §3), and the resource -> kind table. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scalemetrics/api.h"
#include "scalemetrics/quantity.h"
#include "scalemetrics/query.h"
#include "scalemetrics/selector.h"

#include "api-internal.h"

struct object_kind {
	const char *resource; /* GroupResource.String() */
	const char *kind;
	const char *api_version;
	bool namespaced;
};

static const struct object_kind object_kinds[] = {
    {"apiservices.apiregistration.k8s.io", "APIService", "apiregistration.k8s.io/v1", false},
    {"certificatesigningrequests.certificates.k8s.io", "CertificateSigningRequest",
     "certificates.k8s.io/v1", false},
    {"clusterrolebindings.rbac.authorization.k8s.io", "ClusterRoleBinding",
     "rbac.authorization.k8s.io/v1", false},
    {"clusterroles.rbac.authorization.k8s.io", "ClusterRole", "rbac.authorization.k8s.io/v1",
     false},
    {"componentstatuses", "ComponentStatus", "v1", false},
    {"configmaps", "ConfigMap", "v1", true},
    {"cronjobs.batch", "CronJob", "batch/v1", true},
    {"csidrivers.storage.k8s.io", "CSIDriver", "storage.k8s.io/v1", false},
    {"csinodes.storage.k8s.io", "CSINode", "storage.k8s.io/v1", false},
    {"customresourcedefinitions.apiextensions.k8s.io", "CustomResourceDefinition",
     "apiextensions.k8s.io/v1", false},
    {"daemonsets.apps", "DaemonSet", "apps/v1", true},
    {"deployments.apps", "Deployment", "apps/v1", true},
    {"endpoints", "Endpoints", "v1", true},
    {"horizontalpodautoscalers.autoscaling", "HorizontalPodAutoscaler", "autoscaling/v2", true},
    {"ingressclasses.networking.k8s.io", "IngressClass", "networking.k8s.io/v1", false},
    {"ingresses.networking.k8s.io", "Ingress", "networking.k8s.io/v1", true},
    {"jobs.batch", "Job", "batch/v1", true},
    {"mutatingwebhookconfigurations.admissionregistration.k8s.io", "MutatingWebhookConfiguration",
     "admissionregistration.k8s.io/v1", false},
    {"namespaces", "Namespace", "v1", false},
    {"nodes", "Node", "v1", false},
    {"persistentvolumeclaims", "PersistentVolumeClaim", "v1", true},
    {"persistentvolumes", "PersistentVolume", "v1", false},
    {"poddisruptionbudgets.policy", "PodDisruptionBudget", "policy/v1", true},
    {"pods", "Pod", "v1", true},
    {"priorityclasses.scheduling.k8s.io", "PriorityClass", "scheduling.k8s.io/v1", false},
    {"replicasets.apps", "ReplicaSet", "apps/v1", true},
    {"replicationcontrollers", "ReplicationController", "v1", true},
    {"runtimeclasses.node.k8s.io", "RuntimeClass", "node.k8s.io/v1", false},
    {"scaledobjects.keda.sh", "ScaledObject", "keda.sh/v1alpha1", true},
    {"secrets", "Secret", "v1", true},
    {"serviceaccounts", "ServiceAccount", "v1", true},
    {"services", "Service", "v1", true},
    {"statefulsets.apps", "StatefulSet", "apps/v1", true},
    {"storageclasses.storage.k8s.io", "StorageClass", "storage.k8s.io/v1", false},
    {"validatingwebhookconfigurations.admissionregistration.k8s.io",
     "ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1", false},
    {"volumeattachments.storage.k8s.io", "VolumeAttachment", "storage.k8s.io/v1", false},
};

static const struct object_kind *find_kind(const char *resource)
{
	for (size_t i = 0; i < sizeof(object_kinds) / sizeof(object_kinds[0]); i++) {
		if (strcmp(object_kinds[i].resource, resource) == 0)
			return &object_kinds[i];
	}
	return NULL;
}

bool sm_api_resource_is_namespaced(const char *resource)
{
	const struct object_kind *k = resource ? find_kind(resource) : NULL;

	return k ? k->namespaced : true;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

void sm_api_resource_kind(const char *resource, char *kind, size_t kind_len, char *api_version,
                          size_t api_version_len)
{
	const struct object_kind *k = resource ? find_kind(resource) : NULL;
	const char *dot;
	size_t plural_len;

	if (k) {
		(void)snprintf(kind, kind_len, "%s", k->kind);
		(void)snprintf(api_version, api_version_len, "%s", k->api_version);
		return;
	}
	if (!resource)
		resource = "";
	dot = strchr(resource, '.');
	plural_len = dot ? (size_t)(dot - resource) : strlen(resource);
	if (dot)
		(void)snprintf(api_version, api_version_len, "%s/v1", dot + 1);
	else
		(void)snprintf(api_version, api_version_len, "v1");

	/* Singular of the plural: policies -> policy, classes -> class, statuses -> status,
	 * widgets -> widget. */
	if (ends_with(resource, plural_len, "ies")) {
		(void)snprintf(kind, kind_len, "%.*sy", (int)(plural_len - 3), resource);
	} else if (ends_with(resource, plural_len, "uses") ||
	           ends_with(resource, plural_len, "sses") ||
	           ends_with(resource, plural_len, "shes") ||
	           ends_with(resource, plural_len, "ches") ||
	           ends_with(resource, plural_len, "xes") ||
	           ends_with(resource, plural_len, "zes")) {
		(void)snprintf(kind, kind_len, "%.*s", (int)(plural_len - 2), resource);
	} else if (ends_with(resource, plural_len, "s") && !ends_with(resource, plural_len, "ss") &&
	           !ends_with(resource, plural_len, "us")) {
		(void)snprintf(kind, kind_len, "%.*s", (int)(plural_len - 1), resource);
	} else {
		(void)snprintf(kind, kind_len, "%.*s", (int)plural_len, resource);
	}
	if (kind[0])
		kind[0] = (char)toupper((unsigned char)kind[0]);
}

void sm_api_format_timestamp(int64_t wall_ms, char *buf, size_t len)
{
	int64_t secs = wall_ms / 1000 - (wall_ms % 1000 < 0 ? 1 : 0);
	time_t t = (time_t)secs;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(buf, len, "1970-01-01T00:00:00Z");
}

bool sm_api_add_quantity(struct cJSON *obj, const char *key, double v)
{
	char buf[SM_QUANTITY_MAX];

	if (isnan(v))
		return false;
	if (sm_quantity_format(v, buf, sizeof(buf)) < 0)
		/* Beyond int64 (or infinite): the nearest representable quantity. */
		(void)snprintf(buf, sizeof(buf), "%s",
		               v < 0 ? "-9223372036854775808" : "9223372036854775807");
	return cJSON_AddStringToObject(obj, key, buf) != NULL;
}

/* The metric selector echoed as a metav1.LabelSelector, or JSON null when there is none.
 * =, == -> matchLabels; in/notin -> In/NotIn; != -> NotIn with one value; k -> Exists;
 * !k -> DoesNotExist; > and < have no LabelSelector form and are left out. */
static cJSON *selector_echo(const struct sm_selector *sel)
{
	static const char *const ops[SM_SELECTOR_OP_MAX] = {
	    [SM_SELECTOR_OP_IN] = "In",
	    [SM_SELECTOR_OP_NOT_IN] = "NotIn",
	    [SM_SELECTOR_OP_NOT_EQUALS] = "NotIn",
	    [SM_SELECTOR_OP_EXISTS] = "Exists",
	    [SM_SELECTOR_OP_DOES_NOT_EXIST] = "DoesNotExist",
	};
	cJSON *o, *labels = NULL, *exprs = NULL;
	size_t n = sm_selector_count(sel);
	bool ok = true;

	if (sm_selector_is_empty(sel))
		return cJSON_CreateNull();
	o = cJSON_CreateObject();
	if (!o)
		return NULL;
	for (size_t i = 0; i < n && ok; i++) {
		const struct sm_selector_requirement *req = sm_selector_get(sel, i);
		const char *op;
		cJSON *e, *values;

		if (!req || req->op < 0 || req->op >= SM_SELECTOR_OP_MAX)
			continue;
		if ((req->op == SM_SELECTOR_OP_EQUALS || req->op == SM_SELECTOR_OP_DOUBLE_EQUALS) &&
		    req->n_values == 1 &&
		    !(labels && cJSON_GetObjectItemCaseSensitive(labels, req->key))) {
			if (!labels)
				labels = cJSON_AddObjectToObject(o, "matchLabels");
			ok = labels && cJSON_AddStringToObject(labels, req->key, req->values[0]);
			continue;
		}
		op = ops[req->op];
		if (req->op == SM_SELECTOR_OP_EQUALS || req->op == SM_SELECTOR_OP_DOUBLE_EQUALS)
			op = "In"; /* a repeated key: k=a,k=b */
		if (!op)
			continue;
		if (!exprs)
			exprs = cJSON_AddArrayToObject(o, "matchExpressions");
		e = cJSON_CreateObject();
		ok = exprs && cJSON_AddItemToArray(exprs, e) &&
		     cJSON_AddStringToObject(e, "key", req->key) &&
		     cJSON_AddStringToObject(e, "operator", op);
		if (ok && req->n_values > 0) {
			values = cJSON_AddArrayToObject(e, "values");
			ok = values != NULL;
			for (size_t k = 0; k < req->n_values && ok; k++)
				ok = cJSON_AddItemToArray(values,
				                          cJSON_CreateString(req->values[k]));
		}
		if (!e)
			ok = false;
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *described_object(const struct sm_query *q, const struct sm_query_item *it)
{
	char kind[128], api_version[128];
	const char *resource = it->object.resource ? it->object.resource : q->resource;
	const char *name = it->object.name ? it->object.name : q->name;
	const char *ns = it->object.namespace ? it->object.namespace : q->namespace;
	cJSON *o = cJSON_CreateObject();
	bool ok;

	if (q->kind == SM_QUERY_NAMESPACE) {
		resource = "namespaces";
		name = q->namespace;
		ns = NULL;
	}
	if (!resource)
		resource = "";
	if (!name)
		name = "";
	sm_api_resource_kind(resource, kind, sizeof(kind), api_version, sizeof(api_version));
	ok = o && cJSON_AddStringToObject(o, "kind", kind) &&
	     (!ns || !*ns || !sm_api_resource_is_namespaced(resource) ||
	      cJSON_AddStringToObject(o, "namespace", ns)) &&
	     cJSON_AddStringToObject(o, "name", name) &&
	     cJSON_AddStringToObject(o, "apiVersion", api_version);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static bool encode_item(cJSON *items, bool v1beta2, const struct sm_query *q,
                        const struct sm_query_item *it, const cJSON *selector, int64_t now_wall_ms)
{
	char ts[32];
	const char *metric = it->metric ? it->metric : q->metric;
	cJSON *o = cJSON_CreateObject();
	bool ok;

	sm_api_format_timestamp(it->timestamp_wall_ms > 0 ? it->timestamp_wall_ms : now_wall_ms, ts,
	                        sizeof(ts));
	ok = cJSON_AddItemToArray(items, o) &&
	     cJSON_AddItemToObject(o, "describedObject", described_object(q, it));
	if (!o)
		return false;
	if (v1beta2) {
		cJSON *m = ok ? cJSON_AddObjectToObject(o, "metric") : NULL;

		ok = m && cJSON_AddStringToObject(m, "name", metric) &&
		     cJSON_AddItemToObject(m, "selector", cJSON_Duplicate(selector, true)) &&
		     cJSON_AddStringToObject(o, "timestamp", ts) &&
		     (it->window_s == 0 ||
		      cJSON_AddNumberToObject(o, "windowSeconds", it->window_s)) &&
		     sm_api_add_quantity(o, "value", it->value);
	} else {
		ok = ok && cJSON_AddStringToObject(o, "metricName", metric) &&
		     cJSON_AddStringToObject(o, "timestamp", ts) &&
		     (it->window_s == 0 || cJSON_AddNumberToObject(o, "window", it->window_s)) &&
		     sm_api_add_quantity(o, "value", it->value) &&
		     cJSON_AddItemToObject(o, "selector", cJSON_Duplicate(selector, true));
	}
	return ok;
}

int sm_api_custom_encode(const char *version, const struct sm_query *q,
                         const struct sm_query_result *r, int64_t now_wall_ms, char **ret_body,
                         size_t *ret_len)
{
	char api_version[64];
	bool v1beta2 = strcmp(version, "v1beta2") == 0;
	cJSON *doc = cJSON_CreateObject();
	cJSON *selector = selector_echo(q->metric_selector);
	cJSON *items;
	char *body = NULL;
	bool ok;

	(void)snprintf(api_version, sizeof(api_version), "%s/%s", SM_API_CUSTOM_GROUP, version);
	ok = doc && selector && cJSON_AddStringToObject(doc, "kind", "MetricValueList") &&
	     cJSON_AddStringToObject(doc, "apiVersion", api_version) &&
	     cJSON_AddObjectToObject(doc, "metadata");
	items = ok ? cJSON_AddArrayToObject(doc, "items") : NULL;
	ok = ok && items;
	for (size_t i = 0; i < r->n_items && ok; i++) {
		/* NaN has no Quantity form; such a series is left out. */
		if (isnan(r->items[i].value))
			continue;
		ok = encode_item(items, v1beta2, q, &r->items[i], selector, now_wall_ms);
	}
	if (ok)
		body = cJSON_PrintUnformatted(doc);
	cJSON_Delete(selector);
	cJSON_Delete(doc);
	if (!body)
		return -ENOMEM;
	*ret_body = body;
	*ret_len = strlen(body);
	return 0;
}

/* Parses a selector parameter; on error fills a 400 Status into ret and returns 1. */
static int parse_selector(const char *text, struct sm_selector **sel, struct sm_api_response *ret)
{
	struct sm_error err = {0};
	int r;

	if (!text)
		return 0;
	r = sm_selector_parse(text, sel, &err);
	if (r == -EINVAL) {
		r = sm_api_status(400, "BadRequest", err.message, ret);
		return r < 0 ? r : 1;
	}
	return r;
}

/* Runs q and encodes the answer for the call's API (or the query's error as a Status). */
int sm_api_run_and_encode(const struct sm_api_call *c, const struct sm_query *q,
                          struct sm_api_response *ret)
{
	struct sm_query_result res = {0};
	struct sm_error err = {0};
	char *body = NULL;
	size_t len = 0;
	bool reusable = true;
	unsigned n_fallbacks = 0;
	int r;

	if (!c->ctx->store)
		return sm_api_status(503, "ServiceUnavailable", "no metrics store", ret);
	r = sm_query_run(c->ctx->store, q, &res, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return sm_api_status_from_errno(r, err.message, ret);
	if (c->route->kind == SM_API_EXTERNAL)
		r = sm_api_external_encode(&res, c->req->now_wall_ms, &body, &len);
	else
		r = sm_api_custom_encode(c->route->version, q, &res, c->req->now_wall_ms, &body,
		                         &len);
	/* Fallback items carry the time of the request. */
	for (size_t i = 0; i < res.n_items; i++)
		reusable = reusable && !res.items[i].is_fallback;
	for (size_t i = 0; i < res.n_items; i++)
		n_fallbacks += res.items[i].is_fallback ? 1u : 0u;
	sm_query_result_done(&res);
	if (r < 0)
		return r;
	*ret = (struct sm_api_response){
	    .status = 200,
	    .content_type = SM_API_CT_JSON,
	    .body = body,
	    .body_len = len,
	    .route = c->route->name,
	    .reusable = reusable,
	    .n_fallbacks = n_fallbacks,
	};
	return 0;
}

int sm_api_handle_custom(const struct sm_api_call *c, struct sm_api_response *ret)
{
	char *const *s = c->segs;
	struct sm_selector *object_sel = NULL, *metric_sel = NULL;
	struct sm_query q = {.now_mono_ms = c->req->now_mono_ms,
	                     .now_wall_ms = c->req->now_wall_ms};
	int r;

	if (c->n_segs == 4 && strcmp(s[0], "namespaces") == 0 && strcmp(s[2], "metrics") == 0) {
		/* namespaces/NS/metrics/M: the namespace object itself */
		q.kind = SM_QUERY_NAMESPACE;
		q.namespace = s[1];
		q.resource = "namespaces";
		q.metric = s[3];
	} else if (c->n_segs == 5 && strcmp(s[0], "namespaces") == 0) {
		q.kind = strcmp(s[3], "*") == 0 ? SM_QUERY_OBJECTS : SM_QUERY_OBJECT;
		q.namespace = s[1];
		q.resource = s[2];
		q.name = q.kind == SM_QUERY_OBJECT ? s[3] : NULL;
		q.metric = s[4];
	} else if (c->n_segs == 3 && strcmp(s[0], "namespaces") == 0) {
		/* Root-scoped namespaces/NS/M: the namespace metric of NS. */
		if (strcmp(s[1], "*") == 0)
			return sm_api_status(400, "BadRequest",
			                     "cannot fetch metrics for multiple namespaces at once",
			                     ret);
		q.kind = SM_QUERY_NAMESPACE;
		q.namespace = s[1];
		q.resource = "namespaces";
		q.metric = s[2];
	} else if (c->n_segs == 3) {
		/* A namespaced object (a Deployment) has no root-scoped name: nothing to find. */
		if (sm_api_resource_is_namespaced(s[0])) {
			char msg[512];

			(void)snprintf(
			    msg, sizeof(msg),
			    "%s is a namespaced resource: ask for it under namespaces/NS/", s[0]);
			return sm_api_status(404, "NotFound", msg, ret);
		}
		q.kind = strcmp(s[1], "*") == 0 ? SM_QUERY_OBJECTS : SM_QUERY_OBJECT;
		q.resource = s[0];
		q.name = q.kind == SM_QUERY_OBJECT ? s[1] : NULL;
		q.metric = s[2];
	} else {
		return sm_api_status(404, "NotFound",
		                     "the server could not find the requested resource", ret);
	}

	r = parse_selector(c->label_selector, &object_sel, ret);
	if (r != 0)
		goto out;
	r = parse_selector(c->metric_label_selector, &metric_sel, ret);
	if (r != 0)
		goto out;
	if (q.kind == SM_QUERY_OBJECTS)
		q.object_selector = object_sel;
	q.metric_selector = metric_sel;
	r = sm_api_run_and_encode(c, &q, ret);
out:
	sm_selector_free(object_sel);
	sm_selector_free(metric_sel);
	return r < 0 ? r : 0;
}
