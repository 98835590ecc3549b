/* SPDX-License-Identifier: MIT */
/* Shared inside src/api only: the route table, the handlers it names, and the JSON
 * helpers the encoders have in common. Nothing outside src/api includes this. */
#ifndef SM_API_INTERNAL_H
#define SM_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/api.h"

struct cJSON;
struct sm_query;
struct sm_query_result;

#define SM_API_CUSTOM_GROUP   "custom.metrics.k8s.io"
#define SM_API_EXTERNAL_GROUP "external.metrics.k8s.io"

#define SM_API_CT_JSON "application/json"
#define SM_API_CT_TEXT "text/plain; charset=utf-8"
/* The Prometheus text exposition format, /metrics. */
#define SM_API_CT_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

/* Which API a group/version route serves. */
enum sm_api_kind {
	SM_API_NONE,
	SM_API_CUSTOM,
	SM_API_EXTERNAL,
	SM_API_KIND_MAX,
};

/* One decoded request on its way to a handler. */
struct sm_api_call {
	const struct sm_api_context *ctx;
	const struct sm_api_request *req;
	const struct sm_api_route *route;
	char *const *segs; /* percent-decoded segments after the route's literal ones */
	size_t n_segs;
	const char *label_selector;        /* form-decoded, first value; NULL when absent */
	const char *metric_label_selector; /* idem */
	const char *filter;                /* idem, for /status */
};

/* Handlers fill ret (a success document or a Status) and return 0, or -ENOMEM. */
typedef int (*sm_api_handler_fn)(const struct sm_api_call *c, struct sm_api_response *ret);

#define SM_API_ROUTE_SEGS 3

/* A route: literal leading segments, then between min_extra and max_extra more. Discovery
 * (APIGroupList, APIGroup, OpenAPI) is built from this same table: a route with a group and
 * no version is an API group, a route with both and max_extra == 0 is a served version,
 * listed in table order (so the first one of a group is the preferred version). */
struct sm_api_route {
	const char *name; /* static route name for metrics and logs */
	const char *segs[SM_API_ROUTE_SEGS];
	size_t n_segs;
	size_t min_extra, max_extra;
	const char *group;   /* NULL when not an API group route */
	const char *version; /* NULL when not a group/version route */
	enum sm_api_kind kind;
	bool json; /* answers JSON: the Accept header is checked */
	sm_api_handler_fn handler;
};

/* json-writer.c: JSON written straight into one growing buffer (the metric lists; Status and
 * discovery documents stay on cJSON). Appends never fail on their own: the first allocation
 * failure frees the buffer, marks the writer failed and makes later appends no-ops;
 * sm_api_jsonw_finish then returns -ENOMEM. */
struct sm_api_jsonw {
	char *buf;
	size_t len, cap; /* cap > len once anything is allocated: room for the final NUL */
	bool failed;
};
/* Bytes already written, to be copied again (offsets stay valid when the buffer moves). */
struct sm_api_jsonw_span {
	size_t off, len;
};
/* A string written once and copied while the same pointer comes again; zero-initialise. */
struct sm_api_jsonw_memo {
	const char *key;
	struct sm_api_jsonw_span span; /* len 0: nothing written yet */
};
/* Starts an empty writer with cap_hint bytes allocated (0: none yet). */
void sm_api_jsonw_init(struct sm_api_jsonw *w, size_t cap_hint);
/* Frees the buffer; accepts NULL, a finished and a failed writer. */
void sm_api_jsonw_done(struct sm_api_jsonw *w);
void sm_api_jsonw_raw(struct sm_api_jsonw *w, const char *s, size_t n);
#define SM_API_JSONW_LIT(w, lit) sm_api_jsonw_raw((w), "" lit, sizeof(lit) - 1)
/* Appends a copy of earlier bytes of the same writer. */
void sm_api_jsonw_copy(struct sm_api_jsonw *w, struct sm_api_jsonw_span span);
/* Appends s quoted and escaped as cJSON_PrintUnformatted does: \" \\ \b \f \n \r \t, other
 * bytes below 0x20 as \u00xx (lower-case hex), every other byte (UTF-8 included) as is.
 * NULL is written as "". */
void sm_api_jsonw_string(struct sm_api_jsonw *w, const char *s);
/* sm_api_jsonw_string, or a copy of what m recorded when s is m's key; m records s. */
void sm_api_jsonw_string_memo(struct sm_api_jsonw *w, struct sm_api_jsonw_memo *m, const char *s);
/* Appends v in decimal, as cJSON prints any integral number below 2^53. */
void sm_api_jsonw_uint(struct sm_api_jsonw *w, uint64_t v);
/* Hands the NUL-terminated text (the caller frees it) and its length over and resets w.
 * -ENOMEM, with w reset, when an append failed. */
int sm_api_jsonw_finish(struct sm_api_jsonw *w, char **ret_body, size_t *ret_len) SM_MUSTCHECK;

/* cache.c */
/* On a hit, fills ret with a copy of the kept answer (from_cache set) and returns true. */
bool sm_api_cache_get(struct sm_api_cache *c, const struct sm_api_request *req, uint64_t generation,
                      struct sm_api_response *ret);
/* Keeps a copy of resp if it is a reusable 200 answer; it is served for req while the store
 * generation is unchanged and now <= valid_until_mono_ms. Failing to keep it is silent. */
void sm_api_cache_put(struct sm_api_cache *c, const struct sm_api_request *req, uint64_t generation,
                      int64_t valid_until_mono_ms, const struct sm_api_response *resp);

/* router.c */
const struct sm_api_route *sm_api_routes(size_t *ret_n);

/* discovery.c */
int sm_api_handle_group_list(const struct sm_api_call *c, struct sm_api_response *ret);
int sm_api_handle_group(const struct sm_api_call *c, struct sm_api_response *ret);
int sm_api_handle_resource_list(const struct sm_api_call *c, struct sm_api_response *ret);
int sm_api_handle_version(const struct sm_api_call *c, struct sm_api_response *ret);
int sm_api_handle_openapi_v2(const struct sm_api_call *c, struct sm_api_response *ret);
int sm_api_handle_openapi_v3(const struct sm_api_call *c, struct sm_api_response *ret);
int sm_api_handle_openapi_v3_gv(const struct sm_api_call *c, struct sm_api_response *ret);

/* custom.c */
int sm_api_handle_custom(const struct sm_api_call *c, struct sm_api_response *ret);
/* Encodes a custom MetricValueList for version "v1beta1" or "v1beta2". */
int sm_api_custom_encode(const char *version, const struct sm_query *q,
                         const struct sm_query_result *r, int64_t now_wall_ms, char **ret_body,
                         size_t *ret_len);
/* Runs q and fills ret with the encoded list for the call's API, or the query's error as a
 * Status (404 unknown, 503 stale, ...). -ENOMEM. */
int sm_api_run_and_encode(const struct sm_api_call *c, const struct sm_query *q,
                          struct sm_api_response *ret);
/* Kubernetes object kinds by resource ("deployments.apps" -> Deployment, apps/v1). Unknown
 * resources get a derived kind (singular, capitalised) and "<group>/v1" or "v1". */
void sm_api_resource_kind(const char *resource, char *kind, size_t kind_len, char *api_version,
                          size_t api_version_len);
/* RFC 3339 UTC, whole seconds: "2024-05-01T12:00:00Z". buf needs 21 bytes. */
void sm_api_format_timestamp(int64_t wall_ms, char *buf, size_t len);
/* What repeats from item to item of one answer, formatted once and copied afterwards: the
 * last second stamped and the last value. Zero-initialise one per answer and writer. */
struct sm_api_item_memo {
	int64_t ts_secs;
	double value;
	struct sm_api_jsonw_span ts, quantity; /* len 0: nothing written yet */
};
/* Appends the quoted RFC 3339 time of wall_ms (sm_api_format_timestamp). */
void sm_api_write_timestamp(struct sm_api_jsonw *w, struct sm_api_item_memo *m, int64_t wall_ms);
/* Appends v as a quoted Quantity, clamping values outside int64 to its range. v is not NaN
 * (NaN has no quantity; callers leave such items out). */
void sm_api_write_quantity(struct sm_api_jsonw *w, struct sm_api_item_memo *m, double v);

/* external.c */
int sm_api_handle_external(const struct sm_api_call *c, struct sm_api_response *ret);
int sm_api_external_encode(const struct sm_query_result *r, int64_t now_wall_ms, char **ret_body,
                           size_t *ret_len);

/* self-metrics.c */
/* GET /metrics; 404 when the context has no telemetry. */
int sm_api_handle_metrics(const struct sm_api_call *c, struct sm_api_response *ret);
/* The /metrics document for these counters (t may be NULL: all zero) and the store's
 * sources at now_mono_ms. -ENOMEM. */
int sm_api_metrics_render(const struct sm_telemetry *t, const struct sm_store *st,
                          int64_t now_mono_ms, const char *version, const char *git_commit,
                          char **ret_body, size_t *ret_len);

/* status-page.c */
/* GET /status: the HTML status page (sources, series, sparklines; `filter` applied). */
int sm_api_handle_status_page(const struct sm_api_call *c, struct sm_api_response *ret);

/* errors.c */
/* Prints doc into ret with status 200 and Content-Type application/json, marked reusable
 * (its callers' documents depend on the config and the store only); does not free doc.
 * -ENOMEM when printing fails. */
int sm_api_respond_json(const struct cJSON *doc, const char *route, struct sm_api_response *ret);
/* Fills ret with a text body. -ENOMEM. */
int sm_api_respond_text(int status, const char *text, const char *route,
                        struct sm_api_response *ret);
/* Maps a query error (-ENOENT, -EAGAIN, -EINVAL, other) to its Status document. */
int sm_api_status_from_errno(int err, const char *message, struct sm_api_response *ret);

#endif
