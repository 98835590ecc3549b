/* SPDX-License-Identifier: MIT */
/* custom.metrics.k8s.io: request shapes to queries, MetricValueList encoding (v1beta1 and
 * v1beta2, docs/api.md "Custom metrics paths" and "MetricValueList"), and the kind of a resource
 * (util/resource-kind.c's table, else guessed from the plural). */
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
#include "scalemetrics/resource-kind.h"
#include "scalemetrics/selector.h"

#include "api-internal.h"

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

void sm_api_resource_kind(const char *resource, char *kind, size_t kind_len, char *api_version,
                          size_t api_version_len)
{
	const struct sm_resource_kind *k = sm_resource_kind_find(resource);
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

void sm_api_write_timestamp(struct sm_api_jsonw *w, struct sm_api_item_memo *m, int64_t wall_ms)
{
	int64_t secs = wall_ms / 1000 - (wall_ms % 1000 < 0 ? 1 : 0);
	size_t off = w->len;
	char ts[32];

	if (m->ts.len > 0 && m->ts_secs == secs) {
		sm_api_jsonw_copy(w, m->ts);
		return;
	}
	sm_api_format_timestamp(wall_ms, ts, sizeof(ts));
	sm_api_jsonw_string(w, ts);
	m->ts_secs = secs;
	m->ts = (struct sm_api_jsonw_span){.off = off, .len = w->failed ? 0 : w->len - off};
}

void sm_api_write_quantity(struct sm_api_jsonw *w, struct sm_api_item_memo *m, double v)
{
	char buf[SM_QUANTITY_MAX];
	const char *text = buf;
	size_t off = w->len;
	int n;

	/* Equal values have one quantity (0 and -0 both "0"). */
	if (m->quantity.len > 0 && m->value == v) {
		sm_api_jsonw_copy(w, m->quantity);
		return;
	}
	n = sm_quantity_format(v, buf, sizeof(buf));
	if (n < 0)
		/* Beyond int64 (or infinite): the nearest representable quantity. */
		text = v < 0 ? "-9223372036854775808" : "9223372036854775807";
	/* Digits, sign and suffix letters only: nothing to escape. */
	SM_API_JSONW_LIT(w, "\"");
	sm_api_jsonw_raw(w, text, n < 0 ? strlen(text) : (size_t)n);
	SM_API_JSONW_LIT(w, "\"");
	m->value = v;
	m->quantity = (struct sm_api_jsonw_span){.off = off, .len = w->failed ? 0 : w->len - off};
}

/* Whether requirement i of sel goes to matchLabels: a single-valued = or ==, and the first
 * such one of its key (a repeated key, k=a,k=b, becomes an In expression). */
static bool is_match_label(const struct sm_selector *sel, size_t i)
{
	const struct sm_selector_requirement *req = sm_selector_get(sel, i);
	bool eq =
	    req && (req->op == SM_SELECTOR_OP_EQUALS || req->op == SM_SELECTOR_OP_DOUBLE_EQUALS);

	if (!eq || req->n_values != 1)
		return false;
	for (size_t j = 0; j < i; j++) {
		const struct sm_selector_requirement *prev = sm_selector_get(sel, j);

		if (prev && prev->key && req->key &&
		    (prev->op == SM_SELECTOR_OP_EQUALS ||
		     prev->op == SM_SELECTOR_OP_DOUBLE_EQUALS) &&
		    prev->n_values == 1 && strcmp(prev->key, req->key) == 0)
			return false;
	}
	return true;
}

/* The LabelSelector operator of a requirement that is not a match label; NULL: left out.
 * = and == come here only for a repeated key (k=a,k=b): In. */
static const char *expression_op(const struct sm_selector_requirement *req)
{
	static const char *const ops[SM_SELECTOR_OP_MAX] = {
	    [SM_SELECTOR_OP_EQUALS] = "In",
	    [SM_SELECTOR_OP_DOUBLE_EQUALS] = "In",
	    [SM_SELECTOR_OP_IN] = "In",
	    [SM_SELECTOR_OP_NOT_IN] = "NotIn",
	    [SM_SELECTOR_OP_NOT_EQUALS] = "NotIn",
	    [SM_SELECTOR_OP_EXISTS] = "Exists",
	    [SM_SELECTOR_OP_DOES_NOT_EXIST] = "DoesNotExist",
	};

	if (!req || req->op < 0 || req->op >= SM_SELECTOR_OP_MAX)
		return NULL;
	return ops[req->op];
}

static void write_match_labels(struct sm_api_jsonw *w, const struct sm_selector *sel, size_t n)
{
	bool first = true;

	SM_API_JSONW_LIT(w, "\"matchLabels\":{");
	for (size_t i = 0; i < n; i++) {
		const struct sm_selector_requirement *req = sm_selector_get(sel, i);

		if (!is_match_label(sel, i))
			continue;
		if (!first)
			SM_API_JSONW_LIT(w, ",");
		first = false;
		sm_api_jsonw_string(w, req->key);
		SM_API_JSONW_LIT(w, ":");
		sm_api_jsonw_string(w, req->values[0]);
	}
	SM_API_JSONW_LIT(w, "}");
}

static void write_match_expressions(struct sm_api_jsonw *w, const struct sm_selector *sel, size_t n)
{
	bool first = true;

	SM_API_JSONW_LIT(w, "\"matchExpressions\":[");
	for (size_t i = 0; i < n; i++) {
		const struct sm_selector_requirement *req = sm_selector_get(sel, i);
		const char *op = expression_op(req);

		if (!op || is_match_label(sel, i))
			continue;
		if (!first)
			SM_API_JSONW_LIT(w, ",");
		first = false;
		SM_API_JSONW_LIT(w, "{\"key\":");
		sm_api_jsonw_string(w, req->key);
		SM_API_JSONW_LIT(w, ",\"operator\":");
		sm_api_jsonw_string(w, op);
		if (req->n_values > 0) {
			SM_API_JSONW_LIT(w, ",\"values\":[");
			for (size_t k = 0; k < req->n_values; k++) {
				if (k > 0)
					SM_API_JSONW_LIT(w, ",");
				sm_api_jsonw_string(w, req->values[k]);
			}
			SM_API_JSONW_LIT(w, "]");
		}
		SM_API_JSONW_LIT(w, "}");
	}
	SM_API_JSONW_LIT(w, "]");
}

/* The metric selector echoed as a metav1.LabelSelector, or JSON null when there is none.
 * =, == -> matchLabels; in/notin -> In/NotIn; != -> NotIn with one value; k -> Exists;
 * !k -> DoesNotExist; > and < have no LabelSelector form and are left out. The two members
 * come in the order of their first requirement. */
static void write_selector_echo(struct sm_api_jsonw *w, const struct sm_selector *sel)
{
	size_t n = sm_selector_count(sel);
	bool labels = false, exprs = false, labels_first = false;

	if (sm_selector_is_empty(sel)) {
		SM_API_JSONW_LIT(w, "null");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (is_match_label(sel, i)) {
			labels_first = labels_first || !exprs;
			labels = true;
		} else if (expression_op(sm_selector_get(sel, i))) {
			exprs = true;
		}
	}
	SM_API_JSONW_LIT(w, "{");
	if (labels && labels_first)
		write_match_labels(w, sel, n);
	if (exprs) {
		if (labels && labels_first)
			SM_API_JSONW_LIT(w, ",");
		write_match_expressions(w, sel, n);
	}
	if (labels && !labels_first) {
		SM_API_JSONW_LIT(w, ",");
		write_match_labels(w, sel, n);
	}
	SM_API_JSONW_LIT(w, "}");
}

/* A rough length of the selector echo, for sizing the answer. */
static size_t selector_echo_len(const struct sm_selector *sel)
{
	size_t n = sm_selector_count(sel), len = 40;

	for (size_t i = 0; i < n; i++) {
		const struct sm_selector_requirement *req = sm_selector_get(sel, i);

		if (!req)
			continue;
		len += 32 + (req->key ? strlen(req->key) : 0);
		for (size_t k = 0; k < req->n_values; k++)
			len += 3 + (req->values[k] ? strlen(req->values[k]) : 0);
	}
	return len;
}

/* The object an item describes. */
struct described {
	const char *resource, *name, *ns; /* never NULL; ns may be "" */
};

static struct described describe(const struct sm_query *q, const struct sm_query_item *it)
{
	struct described d = {
	    .resource = it->object.resource ? it->object.resource : q->resource,
	    .name = it->object.name ? it->object.name : q->name,
	    .ns = it->object.namespace ? it->object.namespace : q->namespace,
	};

	if (q->kind == SM_QUERY_NAMESPACE) {
		d.resource = "namespaces";
		d.name = q->namespace;
		d.ns = NULL;
	}
	if (!d.resource)
		d.resource = "";
	if (!d.name)
		d.name = "";
	if (!d.ns)
		d.ns = "";
	return d;
}

/* Kind, apiVersion and scope of the last resource described; derived again only when the
 * resource changes, and written as text once per derivation. */
struct kind_memo {
	char resource[256]; /* the resource they belong to; "" with !valid */
	bool valid, namespaced;
	char kind[128], api_version[128];
	struct sm_api_jsonw_memo kind_text, api_version_text;
};

static void kind_memo_update(struct kind_memo *k, const char *resource)
{
	size_t n = strlen(resource);

	if (k->valid && strcmp(k->resource, resource) == 0)
		return;
	sm_api_resource_kind(resource, k->kind, sizeof(k->kind), k->api_version,
	                     sizeof(k->api_version));
	k->namespaced = sm_resource_is_namespaced(resource);
	/* A resource too long to keep is derived again for every item that names it. */
	k->valid = n < sizeof(k->resource);
	if (k->valid)
		memcpy(k->resource, resource, n + 1);
	k->kind_text = (struct sm_api_jsonw_memo){0};
	k->api_version_text = (struct sm_api_jsonw_memo){0};
}

/* Everything one answer's items have in common. */
struct custom_writer {
	struct sm_api_jsonw w;
	bool v1beta2;
	const struct sm_query *q;
	int64_t now_wall_ms;
	const struct sm_selector *selector;
	struct sm_api_jsonw_span selector_text; /* len 0: not written yet */
	struct kind_memo kind;
	struct sm_api_jsonw_memo metric, ns;
	struct sm_api_item_memo item;
};

static void write_selector(struct custom_writer *cw)
{
	size_t off = cw->w.len;

	if (cw->selector_text.len > 0) {
		sm_api_jsonw_copy(&cw->w, cw->selector_text);
		return;
	}
	write_selector_echo(&cw->w, cw->selector);
	cw->selector_text =
	    (struct sm_api_jsonw_span){.off = off, .len = cw->w.failed ? 0 : cw->w.len - off};
}

/* One MetricValue, keys in a fixed order: the one test-json-writer.c's cJSON reference
 * writes, so the two compare byte for byte. */
static void write_custom_item(struct custom_writer *cw, const struct sm_query_item *it)
{
	struct sm_api_jsonw *w = &cw->w;
	struct described d = describe(cw->q, it);
	const char *metric = it->metric ? it->metric : cw->q->metric;

	kind_memo_update(&cw->kind, d.resource);
	SM_API_JSONW_LIT(w, "{\"describedObject\":{\"kind\":");
	sm_api_jsonw_string_memo(w, &cw->kind.kind_text, cw->kind.kind);
	if (*d.ns && cw->kind.namespaced) {
		SM_API_JSONW_LIT(w, ",\"namespace\":");
		sm_api_jsonw_string_memo(w, &cw->ns, d.ns);
	}
	SM_API_JSONW_LIT(w, ",\"name\":");
	sm_api_jsonw_string(w, d.name);
	SM_API_JSONW_LIT(w, ",\"apiVersion\":");
	sm_api_jsonw_string_memo(w, &cw->kind.api_version_text, cw->kind.api_version);
	if (cw->v1beta2) {
		SM_API_JSONW_LIT(w, "},\"metric\":{\"name\":");
		sm_api_jsonw_string_memo(w, &cw->metric, metric);
		SM_API_JSONW_LIT(w, ",\"selector\":");
		write_selector(cw);
		SM_API_JSONW_LIT(w, "},\"timestamp\":");
	} else {
		SM_API_JSONW_LIT(w, "},\"metricName\":");
		sm_api_jsonw_string_memo(w, &cw->metric, metric);
		SM_API_JSONW_LIT(w, ",\"timestamp\":");
	}
	sm_api_write_timestamp(w, &cw->item,
	                       it->timestamp_wall_ms > 0 ? it->timestamp_wall_ms : cw->now_wall_ms);
	if (it->window_s != 0) {
		if (cw->v1beta2)
			SM_API_JSONW_LIT(w, ",\"windowSeconds\":");
		else
			SM_API_JSONW_LIT(w, ",\"window\":");
		sm_api_jsonw_uint(w, it->window_s);
	}
	SM_API_JSONW_LIT(w, ",\"value\":");
	sm_api_write_quantity(w, &cw->item, it->value);
	if (!cw->v1beta2) {
		SM_API_JSONW_LIT(w, ",\"selector\":");
		write_selector(cw);
	}
	SM_API_JSONW_LIT(w, "}");
}

/* Keys, punctuation, a timestamp, the longest window and quantity of one item. */
#define CUSTOM_ITEM_FIXED 200

int sm_api_custom_encode(const char *version, const struct sm_query *q,
                         const struct sm_query_result *r, int64_t now_wall_ms, char **ret_body,
                         size_t *ret_len)
{
	char api_version[64];
	struct custom_writer cw = {
	    .v1beta2 = strcmp(version, "v1beta2") == 0,
	    .q = q,
	    .now_wall_ms = now_wall_ms,
	    .selector = q->metric_selector,
	};
	size_t size, shared;
	bool first = true;

	(void)snprintf(api_version, sizeof(api_version), "%s/%s", SM_API_CUSTOM_GROUP, version);

	/* Sized up front from the items' own strings (escaping aside) and what every item
	 * repeats, so a typical answer is one allocation. */
	kind_memo_update(&cw.kind, q->kind == SM_QUERY_NAMESPACE ? "namespaces"
	                           : q->resource                 ? q->resource
	                                                         : "");
	shared = CUSTOM_ITEM_FIXED + strlen(cw.kind.kind) + strlen(cw.kind.api_version) +
	         selector_echo_len(q->metric_selector);
	size = 128 + sizeof(api_version);
	for (size_t i = 0; i < r->n_items; i++) {
		const struct sm_query_item *it = &r->items[i];
		struct described d = describe(q, it);
		const char *metric = it->metric ? it->metric : q->metric;

		size += shared + strlen(d.name) + strlen(d.ns) + (metric ? strlen(metric) : 0);
	}
	sm_api_jsonw_init(&cw.w, size);

	SM_API_JSONW_LIT(&cw.w, "{\"kind\":\"MetricValueList\",\"apiVersion\":");
	sm_api_jsonw_string(&cw.w, api_version);
	SM_API_JSONW_LIT(&cw.w, ",\"metadata\":{},\"items\":[");
	for (size_t i = 0; i < r->n_items; i++) {
		/* NaN has no Quantity form; such a series is left out. */
		if (isnan(r->items[i].value))
			continue;
		if (!first)
			SM_API_JSONW_LIT(&cw.w, ",");
		first = false;
		write_custom_item(&cw, &r->items[i]);
	}
	SM_API_JSONW_LIT(&cw.w, "]}");
	return sm_api_jsonw_finish(&cw.w, ret_body, ret_len);
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
		if (sm_resource_is_namespaced(s[0])) {
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
