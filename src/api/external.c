/* SPDX-License-Identifier: MIT */
/* external.metrics.k8s.io/v1beta1: the namespaces/NS/METRIC route and the
 * ExternalMetricValueList encoding (k8s-metrics-api.md §2.3, §3.3). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/query.h"
#include "scalemetrics/selector.h"

#include "api-internal.h"

static bool encode_item(cJSON *items, const struct sm_query_item *it, int64_t now_wall_ms)
{
	char ts[32];
	cJSON *o = cJSON_CreateObject();
	cJSON *labels;
	bool ok;

	sm_api_format_timestamp(it->timestamp_wall_ms > 0 ? it->timestamp_wall_ms : now_wall_ms, ts,
	                        sizeof(ts));
	ok = cJSON_AddItemToArray(items, o) &&
	     cJSON_AddStringToObject(o, "metricName", it->metric ? it->metric : "");
	labels = ok ? cJSON_AddObjectToObject(o, "metricLabels") : NULL;
	ok = ok && labels;
	for (size_t i = 0; i < it->n_labels && ok; i++)
		ok =
		    cJSON_AddStringToObject(labels, it->labels[i].name,
		                            it->labels[i].value ? it->labels[i].value : "") != NULL;
	ok = ok && cJSON_AddStringToObject(o, "timestamp", ts) &&
	     (it->window_s == 0 || cJSON_AddNumberToObject(o, "window", it->window_s)) &&
	     sm_api_add_quantity(o, "value", it->value);
	return ok;
}

int sm_api_external_encode(const struct sm_query_result *r, int64_t now_wall_ms, char **ret_body,
                           size_t *ret_len)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *items;
	char *body = NULL;
	bool ok;

	ok = doc && cJSON_AddStringToObject(doc, "kind", "ExternalMetricValueList") &&
	     cJSON_AddStringToObject(doc, "apiVersion", SM_API_EXTERNAL_GROUP "/v1beta1") &&
	     cJSON_AddObjectToObject(doc, "metadata");
	items = ok ? cJSON_AddArrayToObject(doc, "items") : NULL;
	ok = ok && items;
	for (size_t i = 0; i < r->n_items && ok; i++) {
		/* NaN has no Quantity form; such a series is left out. */
		if (isnan(r->items[i].value))
			continue;
		ok = encode_item(items, &r->items[i], now_wall_ms);
	}
	if (ok)
		body = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	if (!body)
		return -ENOMEM;
	*ret_body = body;
	*ret_len = strlen(body);
	return 0;
}

int sm_api_handle_external(const struct sm_api_call *c, struct sm_api_response *ret)
{
	struct sm_selector *sel = NULL;
	struct sm_error err = {0};
	struct sm_query q = {
	    .kind = SM_QUERY_EXTERNAL,
	    .now_mono_ms = c->req->now_mono_ms,
	    .now_wall_ms = c->req->now_wall_ms,
	};
	int r;

	if (c->n_segs != 3 || strcmp(c->segs[0], "namespaces") != 0)
		return sm_api_status(404, "NotFound",
		                     "the server could not find the requested resource", ret);
	q.namespace = c->segs[1];
	q.metric = c->segs[2];
	if (c->label_selector) {
		r = sm_selector_parse(c->label_selector, &sel, &err);
		if (r == -EINVAL)
			return sm_api_status(400, "BadRequest", err.message, ret);
		if (r < 0)
			return r;
	}
	q.metric_selector = sel;
	r = sm_api_run_and_encode(c, &q, ret);
	sm_selector_free(sel);
	return r;
}
