/* SPDX-License-Identifier: MIT */
#ifndef SM_API_H
#define SM_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"

struct sm_forward;
struct sm_history;
struct sm_store;
struct sm_store_live;
struct sm_telemetry;

/* Pure functions from a parsed request and the store to response bytes: URL routing,
 * discovery documents, MetricValueList / ExternalMetricValueList encoding, metav1.Status
 * errors. No sockets, no files: unit-testable. */

struct sm_api_request {
	const char *method; /* "GET", ... */
	const char *path;   /* raw, still percent-encoded, without the query */
	const char *query;  /* raw query string without '?', or NULL */
	const char *accept; /* Accept header or NULL */
	int64_t now_mono_ms;
	int64_t now_wall_ms;
};

struct sm_api_response {
	int status;               /* HTTP status, equals Status.code for errors */
	const char *content_type; /* static string: "application/json" exactly, or text/plain */
	char *body;               /* owned; freed by sm_api_response_done */
	size_t body_len;
	const char *reason; /* Status reason ("NotFound") or NULL on success; static */
	/* A static Content-Security-Policy header value, or NULL for none (HTML pages). */
	const char *content_security_policy;
	const char *route; /* a static name of the route that answered, for metrics/logs:
	                    * "discovery", "custom", "external", "health", "openapi", ... */
	bool reusable;     /* set by handlers: the same request gets these bytes again until the
	                    * store changes (sm_store_generation) or a source turns stale */
	bool from_cache;   /* the body was copied from the answer cache */
	/* Items whose value is a rule's fallback (source stale), for /metrics. */
	unsigned n_fallbacks;
	/* Set with forward_to when another adapter answers this request (forward.h): the HTTP
	 * layer sends it to upstream forward_to and answers with what comes back. The rest of
	 * the response is a 503 naming that upstream, for callers that do not forward. */
	bool forward;
	unsigned forward_to;
};

struct sm_api_cache;

struct sm_api_context {
	/* Where answers come from: with live set, each request takes the store current at its
	 * start and answers from it alone (a reload never mixes two configs into one answer),
	 * and store is ignored; else store, fixed. */
	struct sm_store_live *live;
	const struct sm_store *store;
	struct sm_api_cache *cache; /* NULL: every answer is built anew */
	/* The server's counters, rendered at /metrics and fed by the HTTP layer; NULL: /metrics
	 * answers 404 like an unknown path, and nothing is counted. */
	struct sm_telemetry *telemetry;
	/* The series' value history for the /status page (history.h; it has its own lock);
	 * NULL: the page shows no sparklines. */
	struct sm_history *history;
	/* Requests for metrics no source declares, in a group with a `forward` entry, are marked
	 * for that group's adapter, and discovery lists its metrics too (forward.h); NULL:
	 * everything is answered here. */
	struct sm_forward *forward;
	const char *version;    /* scalemetrics version string */
	const char *git_commit; /* may be "" */
};

/* Always fills ret (a Status document on every error). Returns 0, or -ENOMEM when even the
 * error body could not be built (then ret->status is 500 and body may be NULL). */
int sm_api_handle(const struct sm_api_context *ctx, const struct sm_api_request *req,
                  struct sm_api_response *ret);
void sm_api_response_done(struct sm_api_response *r);

/* The answer cache: HPAs repeat the same few URLs every 15 s, and an answer stays the same
 * while the store does not change and no source turns stale, so sm_api_handle keeps the
 * reusable 200 answers to GET/HEAD (keyed by raw path, query and Accept header) and copies
 * them out while they are still right. Direct-mapped: max_entries slots (rounded up to a
 * power of two), a newer answer replaces whatever shares its slot; bodies bigger than
 * max_bytes / 8, or that would take the total over max_bytes, are not kept. Thread-safe.
 * NULL on allocation failure or when max_entries or max_bytes is 0. */
struct sm_api_cache *sm_api_cache_new(size_t max_entries, size_t max_bytes);
void sm_api_cache_free(struct sm_api_cache *c);

/* A metav1.Status failure document; also used by the HTTP layer (401, 403, 413, 414...). */
int sm_api_status(int code, const char *reason, const char *message, struct sm_api_response *ret);

#endif
