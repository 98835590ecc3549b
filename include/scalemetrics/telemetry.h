/* SPDX-License-Identifier: MIT */
#ifndef SM_TELEMETRY_H
#define SM_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The server's own counters for /metrics: requests by API group, route and status code, a
 * request latency histogram per route, fallback values served, authorization decisions and
 * auth cache lookups. Every label set is fixed (the enums below), so recording never
 * allocates: one relaxed atomic add per counter. Every function accepts t == NULL and then
 * records nothing (reads return 0), so code paths without telemetry (unit tests, `check`)
 * need no special case. Recording and reading are thread-safe; a reader sees each counter
 * at some recent value, not all counters at one instant. Also the state of config reloads
 * (sm_telemetry_config_*), for /metrics and /status. */

struct sm_telemetry;

/* The API group a request was for, from its path. */
enum sm_telemetry_group {
	SM_TELEMETRY_GROUP_NONE, /* "": anything else (health, discovery root, /metrics...) */
	SM_TELEMETRY_GROUP_CUSTOM,
	SM_TELEMETRY_GROUP_EXTERNAL,
	SM_TELEMETRY_GROUP_MAX,
};

/* The route that answered (struct sm_api_response.route). */
enum sm_telemetry_route {
	SM_TELEMETRY_ROUTE_DISCOVERY,
	SM_TELEMETRY_ROUTE_CUSTOM,
	SM_TELEMETRY_ROUTE_EXTERNAL,
	SM_TELEMETRY_ROUTE_HEALTH,
	SM_TELEMETRY_ROUTE_VERSION,
	SM_TELEMETRY_ROUTE_OPENAPI,
	SM_TELEMETRY_ROUTE_METRICS,
	SM_TELEMETRY_ROUTE_STATUS,
	SM_TELEMETRY_ROUTE_OTHER, /* no route answered: unknown path, refused by the access
	                           * check, request limits */
	SM_TELEMETRY_ROUTE_MAX,
};

enum sm_telemetry_auth_decision {
	SM_TELEMETRY_AUTH_ALLOWED,
	SM_TELEMETRY_AUTH_DENIED,          /* 403 */
	SM_TELEMETRY_AUTH_UNAUTHENTICATED, /* 401 */
	SM_TELEMETRY_AUTH_ERROR, /* no decision: malformed path, a review failed, no memory */
	SM_TELEMETRY_AUTH_DECISION_MAX,
};

enum sm_telemetry_cache {
	SM_TELEMETRY_CACHE_TOKENREVIEW,         /* bearer token -> user */
	SM_TELEMETRY_CACHE_SUBJECTACCESSREVIEW, /* review -> allowed / denied */
	SM_TELEMETRY_CACHE_MAX,
};

/* Status codes are counted exactly: 100-599; anything else counts as code 0. */
#define SM_TELEMETRY_CODES 600
/* Latency histogram buckets (upper bounds), plus the +Inf bucket at index
 * SM_TELEMETRY_BUCKETS. */
#define SM_TELEMETRY_BUCKETS 13

/* NULL when out of memory. */
struct sm_telemetry *sm_telemetry_new(void);
void sm_telemetry_free(struct sm_telemetry *t);

/* Label values, from fixed tables: "", "custom.metrics.k8s.io", ...; "discovery", ...,
 * "other"; "allowed", "denied", "unauthenticated", "error"; "tokenreview",
 * "subjectaccessreview". NULL for a value out of range. */
const char *sm_telemetry_group_to_string(enum sm_telemetry_group g);
const char *sm_telemetry_route_to_string(enum sm_telemetry_route r);
const char *sm_telemetry_auth_decision_to_string(enum sm_telemetry_auth_decision d);
const char *sm_telemetry_cache_to_string(enum sm_telemetry_cache c);

/* The group of a raw request path: "/apis/custom.metrics.k8s.io" and below -> CUSTOM,
 * likewise EXTERNAL, everything else (and NULL) -> NONE. */
enum sm_telemetry_group sm_telemetry_group_from_path(const char *path);
/* A route name as the API layer sets it; NULL and unknown names -> OTHER. */
enum sm_telemetry_route sm_telemetry_route_from_name(const char *name);

/* Bucket i's upper bound in microseconds, and as the `le` label text ("0.0001", ..., "1",
 * "+Inf" for i == SM_TELEMETRY_BUCKETS; -1 and NULL beyond). */
int64_t sm_telemetry_bucket_us(size_t i);
const char *sm_telemetry_bucket_le(size_t i);

/* One answered request: counted under (group, route, code), its duration (microseconds,
 * negative counts as 0) into route's histogram, and fallbacks (values served from a rule's
 * fallback) under group. */
void sm_telemetry_request(struct sm_telemetry *t, enum sm_telemetry_group group,
                          enum sm_telemetry_route route, int code, int64_t duration_us,
                          unsigned fallbacks);
void sm_telemetry_auth_decision(struct sm_telemetry *t, enum sm_telemetry_auth_decision d);
void sm_telemetry_auth_cache(struct sm_telemetry *t, enum sm_telemetry_cache which, bool hit);
/* One reusable answer (api.h's answer cache): copied from the cache (hit) or built (miss). */
void sm_telemetry_answer_cache(struct sm_telemetry *t, bool hit);

/* The config in use and its reloads, for /metrics and /status. */
struct sm_telemetry_reload {
	bool last_successful;  /* the last reload was applied (true before any) */
	int64_t last_wall_ms;  /* when the config in use was loaded, or the last reload failed */
	uint64_t attempts[2];  /* reloads tried: [0] failed, [1] applied */
	char last_error[1024]; /* why the last reload failed; "" when it did not */
};
/* The config was loaded at start (not counted as a reload). */
void sm_telemetry_config_loaded(struct sm_telemetry *t, int64_t wall_ms);
/* A reload was applied (ok) or refused, with the reason (error, may be NULL when ok). */
void sm_telemetry_config_reload(struct sm_telemetry *t, bool ok, int64_t wall_ms,
                                const char *error);
/* A consistent copy; t NULL: last_successful and nothing else. Unlike the counters, this
 * takes a mutex (reloads are rare). */
void sm_telemetry_config_status(const struct sm_telemetry *t, struct sm_telemetry_reload *ret);

/* Reading, for the /metrics renderer. */
uint64_t sm_telemetry_requests(const struct sm_telemetry *t, enum sm_telemetry_group group,
                               enum sm_telemetry_route route, int code);
/* Fills ret_buckets[0..SM_TELEMETRY_BUCKETS] with per-bucket (not cumulative) counts; the
 * last is the +Inf bucket. *ret_sum_us: the sum of the durations. */
void sm_telemetry_latency(const struct sm_telemetry *t, enum sm_telemetry_route route,
                          uint64_t ret_buckets[SM_TELEMETRY_BUCKETS + 1], uint64_t *ret_sum_us);
uint64_t sm_telemetry_fallbacks(const struct sm_telemetry *t, enum sm_telemetry_group group);
uint64_t sm_telemetry_auth_decisions(const struct sm_telemetry *t,
                                     enum sm_telemetry_auth_decision d);
uint64_t sm_telemetry_auth_cache_lookups(const struct sm_telemetry *t,
                                         enum sm_telemetry_cache which, bool hit);
uint64_t sm_telemetry_answer_cache_lookups(const struct sm_telemetry *t, bool hit);

#endif
