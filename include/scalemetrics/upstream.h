/* SPDX-License-Identifier: MIT */
#ifndef SM_UPSTREAM_H
#define SM_UPSTREAM_H

#include <stddef.h>

#include "scalemetrics/error.h"

struct sm_api_context;
struct sm_api_response;
struct sm_forward;

/* The I/O of forwarding (forward.h has the decisions): the requests the API marked for
 * another adapter (the upstream) sent to it with libcurl on a small pool of worker threads,
 * each with a keep-alive connection, behind a bounded queue; and a refresher thread that
 * keeps the upstreams' resource lists (discovery) current. Logs, once per change of state. */

struct sm_upstream;

struct sm_upstream_request {
	size_t upstream;   /* its index in the forward table */
	const char *path;  /* raw, still percent-encoded, as received */
	const char *query; /* raw, or NULL */
};

/* The answer to one submitted request, on a worker thread (or in sm_upstream_free): the
 * upstream's own status, body and Content-Type (content_type owned by the callee, NULL when
 * the upstream sent none; resp->content_type is then set), or our 503 naming the upstream
 * (content_type NULL). The callee takes resp's body. */
typedef void (*sm_upstream_done_fn)(void *userdata, struct sm_api_response *resp,
                                    char *content_type);
/* Called with the queue locked, just before the request becomes visible to the workers: done
 * may run from then on (the HTTP layer suspends the connection here). */
typedef void (*sm_upstream_queued_fn)(void *userdata);

/* Starts the workers and the refresher for every upstream of fwd; api (whose config says
 * which metric names are ours, for the log of name clashes) and fwd are borrowed and outlive
 * the result. Logs each upstream, and loudly an unverified TLS one. -EINVAL (a ca_file or
 * token_file that cannot be read; reterr says which), -ENOMEM, or pthread's error. */
int sm_upstream_start(struct sm_forward *fwd, const struct sm_api_context *api,
                      struct sm_upstream **ret, struct sm_error *reterr) SM_MUSTCHECK;
/* Queues req (its strings are copied). 0: queued, queued() ran and done() will run exactly
 * once; -EAGAIN: the queue is full; -ESHUTDOWN: stopping; -ENOMEM. On failure neither
 * callback runs. */
int sm_upstream_submit(struct sm_upstream *u, const struct sm_upstream_request *req,
                       sm_upstream_queued_fn queued, sm_upstream_done_fn done,
                       void *userdata) SM_MUSTCHECK;
/* Answers the queued requests with a 503 at once, ends the transfers in flight (503 too),
 * stops the threads: every done() has run when it returns, and sm_upstream_submit returns
 * -ESHUTDOWN from then on (u stays valid until sm_upstream_free). Accepts NULL; idempotent. */
void sm_upstream_stop(struct sm_upstream *u);
/* sm_upstream_stop, then frees u. Only once no thread may call sm_upstream_submit. Accepts
 * NULL. */
void sm_upstream_free(struct sm_upstream *u);

#endif
