/* SPDX-License-Identifier: MIT */
#ifndef SM_API_H
#define SM_API_H

#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"

struct sm_store;

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
	const char *route;  /* a static name of the route that answered, for metrics/logs:
	                     * "discovery", "custom", "external", "health", "openapi", ... */
};

struct sm_api_context {
	const struct sm_store *store;
	const char *version;    /* scalemetrics version string */
	const char *git_commit; /* may be "" */
};

/* Always fills ret (a Status document on every error). Returns 0, or -ENOMEM when even the
 * error body could not be built (then ret->status is 500 and body may be NULL). */
int sm_api_handle(const struct sm_api_context *ctx, const struct sm_api_request *req,
                  struct sm_api_response *ret);
void sm_api_response_done(struct sm_api_response *r);

/* A metav1.Status failure document; also used by the HTTP layer (401, 403, 413, 414...). */
int sm_api_status(int code, const char *reason, const char *message, struct sm_api_response *ret);

#endif
