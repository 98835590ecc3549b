/* SPDX-License-Identifier: MIT */
/* external.metrics.k8s.io/v1beta1: the namespaces/NS/METRIC route and the
 * ExternalMetricValueList encoding (docs/api.md "External metrics path",
 * "ExternalMetricValueList"). */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/query.h"
#include "scalemetrics/selector.h"

#include "api-internal.h"

/* One ExternalMetricValue, keys in a fixed order: the one test-json-writer.c's cJSON
 * reference writes, so the two compare byte for byte. */
static void write_item(struct sm_api_jsonw *w, struct sm_api_jsonw_memo *metric,
                       struct sm_api_item_memo *memo, const struct sm_query_item *it,
                       int64_t now_wall_ms)
{
	SM_API_JSONW_LIT(w, "{\"metricName\":");
	sm_api_jsonw_string_memo(w, metric, it->metric ? it->metric : "");
	SM_API_JSONW_LIT(w, ",\"metricLabels\":{");
	for (size_t i = 0; i < it->n_labels; i++) {
		if (i > 0)
			SM_API_JSONW_LIT(w, ",");
		sm_api_jsonw_string(w, it->labels[i].name);
		SM_API_JSONW_LIT(w, ":");
		sm_api_jsonw_string(w, it->labels[i].value ? it->labels[i].value : "");
	}
	SM_API_JSONW_LIT(w, "},\"timestamp\":");
	sm_api_write_timestamp(w, memo,
	                       it->timestamp_wall_ms > 0 ? it->timestamp_wall_ms : now_wall_ms);
	if (it->window_s != 0) {
		SM_API_JSONW_LIT(w, ",\"window\":");
		sm_api_jsonw_uint(w, it->window_s);
	}
	SM_API_JSONW_LIT(w, ",\"value\":");
	sm_api_write_quantity(w, memo, it->value);
	SM_API_JSONW_LIT(w, "}");
}

/* Keys, punctuation, a timestamp, the longest window and quantity of one item; per label. */
#define EXTERNAL_ITEM_FIXED  128
#define EXTERNAL_LABEL_FIXED 6

int sm_api_external_encode(const struct sm_query_result *r, int64_t now_wall_ms, char **ret_body,
                           size_t *ret_len)
{
	struct sm_api_jsonw w;
	struct sm_api_jsonw_memo metric = {0};
	struct sm_api_item_memo memo = {0};
	size_t size = 128;
	bool first = true;

	/* Sized up front from the items' strings (escaping aside): one allocation. */
	for (size_t i = 0; i < r->n_items; i++) {
		const struct sm_query_item *it = &r->items[i];

		size += EXTERNAL_ITEM_FIXED + (it->metric ? strlen(it->metric) : 0);
		for (size_t k = 0; k < it->n_labels; k++)
			size += EXTERNAL_LABEL_FIXED +
			        (it->labels[k].name ? strlen(it->labels[k].name) : 0) +
			        (it->labels[k].value ? strlen(it->labels[k].value) : 0);
	}
	sm_api_jsonw_init(&w, size);
	SM_API_JSONW_LIT(
	    &w, "{\"kind\":\"ExternalMetricValueList\",\"apiVersion\":\"" SM_API_EXTERNAL_GROUP
	        "/v1beta1\",\"metadata\":{},\"items\":[");
	for (size_t i = 0; i < r->n_items; i++) {
		/* NaN has no Quantity form; such a series is left out. */
		if (isnan(r->items[i].value))
			continue;
		if (!first)
			SM_API_JSONW_LIT(&w, ",");
		first = false;
		write_item(&w, &metric, &memo, &r->items[i], now_wall_ms);
	}
	SM_API_JSONW_LIT(&w, "]}");
	return sm_api_jsonw_finish(&w, ret_body, ret_len);
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
