/* SPDX-License-Identifier: MIT */
/* URL routing: the route table (also the source of the discovery documents), path and
 * query decoding, method and Accept checks, and the health endpoints. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scalemetrics/api.h"
#include "scalemetrics/config.h"
#include "scalemetrics/forward.h"
#include "scalemetrics/store.h"
#include "scalemetrics/urlenc.h"

#include "api-internal.h"

/* Paths deeper than this match no route; refuse them before decoding. */
#define MAX_SEGS 32

static int handle_health(const struct sm_api_call *c, struct sm_api_response *ret);
static int handle_readyz(const struct sm_api_call *c, struct sm_api_response *ret);

#define CUSTOM   SM_API_CUSTOM_GROUP
#define EXTERNAL SM_API_EXTERNAL_GROUP

/* First match wins. Versions of a group are listed in preference order. */
static const struct sm_api_route routes[] = {
    {
        .name = "discovery",
        .segs = {"apis"},
        .n_segs = 1,
        .json = true,
        .handler = sm_api_handle_group_list,
    },
    {
        .name = "discovery",
        .segs = {"apis", CUSTOM},
        .n_segs = 2,
        .group = CUSTOM,
        .kind = SM_API_CUSTOM,
        .json = true,
        .handler = sm_api_handle_group,
    },
    {
        .name = "discovery",
        .segs = {"apis", CUSTOM, "v1beta2"},
        .n_segs = 3,
        .group = CUSTOM,
        .version = "v1beta2",
        .kind = SM_API_CUSTOM,
        .json = true,
        .handler = sm_api_handle_resource_list,
    },
    {
        .name = "custom",
        .segs = {"apis", CUSTOM, "v1beta2"},
        .n_segs = 3,
        .min_extra = 1,
        .max_extra = MAX_SEGS,
        .group = CUSTOM,
        .version = "v1beta2",
        .kind = SM_API_CUSTOM,
        .json = true,
        .handler = sm_api_handle_custom,
    },
    {
        .name = "discovery",
        .segs = {"apis", CUSTOM, "v1beta1"},
        .n_segs = 3,
        .group = CUSTOM,
        .version = "v1beta1",
        .kind = SM_API_CUSTOM,
        .json = true,
        .handler = sm_api_handle_resource_list,
    },
    {
        .name = "custom",
        .segs = {"apis", CUSTOM, "v1beta1"},
        .n_segs = 3,
        .min_extra = 1,
        .max_extra = MAX_SEGS,
        .group = CUSTOM,
        .version = "v1beta1",
        .kind = SM_API_CUSTOM,
        .json = true,
        .handler = sm_api_handle_custom,
    },
    {
        .name = "discovery",
        .segs = {"apis", EXTERNAL},
        .n_segs = 2,
        .group = EXTERNAL,
        .kind = SM_API_EXTERNAL,
        .json = true,
        .handler = sm_api_handle_group,
    },
    {
        .name = "discovery",
        .segs = {"apis", EXTERNAL, "v1beta1"},
        .n_segs = 3,
        .group = EXTERNAL,
        .version = "v1beta1",
        .kind = SM_API_EXTERNAL,
        .json = true,
        .handler = sm_api_handle_resource_list,
    },
    {
        .name = "external",
        .segs = {"apis", EXTERNAL, "v1beta1"},
        .n_segs = 3,
        .min_extra = 1,
        .max_extra = MAX_SEGS,
        .group = EXTERNAL,
        .version = "v1beta1",
        .kind = SM_API_EXTERNAL,
        .json = true,
        .handler = sm_api_handle_external,
    },
    {
        .name = "health",
        .segs = {"healthz"},
        .n_segs = 1,
        .handler = handle_health,
    },
    {
        .name = "health",
        .segs = {"livez"},
        .n_segs = 1,
        .handler = handle_health,
    },
    {
        .name = "health",
        .segs = {"readyz"},
        .n_segs = 1,
        .handler = handle_readyz,
    },
    {
        .name = "status",
        .segs = {"status"},
        .n_segs = 1,
        .handler = sm_api_handle_status_page,
    },
    {
        .name = "version",
        .segs = {"version"},
        .n_segs = 1,
        .json = true,
        .handler = sm_api_handle_version,
    },
    {
        .name = "metrics",
        .segs = {"metrics"},
        .n_segs = 1,
        .handler = sm_api_handle_metrics,
    },
    {
        .name = "openapi",
        .segs = {"openapi", "v2"},
        .n_segs = 2,
        .json = true,
        .handler = sm_api_handle_openapi_v2,
    },
    {
        .name = "openapi",
        .segs = {"openapi", "v3"},
        .n_segs = 2,
        .json = true,
        .handler = sm_api_handle_openapi_v3,
    },
    {
        .name = "openapi",
        .segs = {"openapi", "v3", "apis"},
        .n_segs = 3,
        .min_extra = 2,
        .max_extra = 2,
        .json = true,
        .handler = sm_api_handle_openapi_v3_gv,
    },
};

const struct sm_api_route *sm_api_routes(size_t *ret_n)
{
	*ret_n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}

/* Splits path into decoded segments inside *ret_buf. -EINVAL: malformed (message in err),
 * -E2BIG: too deep to match anything, -ENOMEM. */
static int split_path(const char *path, char **ret_buf, char **segs, size_t *ret_n,
                      struct sm_error *err)
{
	char *buf = NULL;
	size_t n = 0, len;
	char *p;
	int r;

	if (!path || path[0] != '/') {
		sm_error_set(err, "invalid request path: must start with '/'");
		return -EINVAL;
	}
	buf = strdup(path + 1);
	if (!buf)
		return -ENOMEM;
	/* One trailing slash is allowed ("/apis/g/v/" is the same document). */
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '/')
		buf[len - 1] = '\0';

	/* "/" has no segments. */
	for (p = *buf ? buf : NULL; p;) {
		char *slash = strchr(p, '/');

		if (n == MAX_SEGS) {
			r = -E2BIG;
			goto out;
		}
		if (slash)
			*slash = '\0';
		if (*p == '\0') {
			sm_error_set(err, "invalid request path: empty path segment");
			r = -EINVAL;
			goto out;
		}
		/* After the split, so an encoded '/' stays inside its segment. */
		if (sm_url_decode(p, strlen(p), p, false) < 0) {
			sm_error_set(err, "invalid request path: invalid percent-encoding in '%s'",
			             p);
			r = -EINVAL;
			goto out;
		}
		segs[n++] = p;
		p = slash ? slash + 1 : NULL;
	}
	*ret_buf = buf;
	*ret_n = n;
	buf = NULL;
	r = 0;
out:
	free(buf);
	return r;
}

/* Form-decodes the query into *ret_buf and points the call at the parameters we know.
 * First value wins; unknown parameters are ignored. -EINVAL (message in err), -ENOMEM. */
static int parse_query(const char *query, char **ret_buf, struct sm_api_call *c,
                       struct sm_error *err)
{
	char *buf;
	char *p;

	*ret_buf = NULL;
	if (!query || !*query)
		return 0;
	buf = strdup(query);
	if (!buf)
		return -ENOMEM;
	*ret_buf = buf;

	p = buf;
	for (;;) {
		char *amp = strchr(p, '&');
		char *eq;
		const char **target = NULL;

		if (amp)
			*amp = '\0';
		eq = strchr(p, '=');
		if (eq)
			*eq = '\0';
		/* A key that does not decode is not one we know: skip it. */
		if (sm_url_decode(p, strlen(p), p, true) == 0) {
			if (strcmp(p, "labelSelector") == 0)
				target = &c->label_selector;
			else if (strcmp(p, "metricLabelSelector") == 0)
				target = &c->metric_label_selector;
			else if (strcmp(p, "filter") == 0)
				target = &c->filter;
		}
		if (target && !*target) {
			char *value = eq ? eq + 1 : p + strlen(p);

			if (sm_url_decode(value, strlen(value), value, true) < 0) {
				sm_error_set(
				    err, "invalid query parameter %s: invalid percent-encoding", p);
				return -EINVAL;
			}
			*target = value;
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	return 0;
}

static bool method_allowed(const char *method)
{
	return method && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* A media range with q=0 is explicitly refused. */
static bool params_refuse(const char *params, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start, end;

		while (i < len && (is_space(params[i]) || params[i] == ';'))
			i++;
		start = i;
		while (i < len && params[i] != ';')
			i++;
		end = i;
		while (end > start && is_space(params[end - 1]))
			end--;
		if (end - start >= 2 && (params[start] == 'q' || params[start] == 'Q') &&
		    params[start + 1] == '=') {
			bool zero = true;

			for (size_t k = start + 2; k < end; k++) {
				if (params[k] != '0' && params[k] != '.')
					zero = false;
			}
			return zero;
		}
	}
	return false;
}

/* True unless an Accept header is present that rules out application/json. */
static bool accept_allows_json(const char *accept)
{
	static const char *const ok[] = {"application/json", "application/*", "*/*"};
	const char *p = accept;
	bool any = false;

	if (!accept)
		return true;
	while (*p) {
		const char *end = strchr(p, ',');
		const char *semi;
		size_t len, tlen;

		if (!end)
			end = p + strlen(p);
		while (p < end && is_space(*p))
			p++;
		len = (size_t)(end - p);
		semi = memchr(p, ';', len);
		tlen = semi ? (size_t)(semi - p) : len;
		while (tlen > 0 && is_space(p[tlen - 1]))
			tlen--;
		if (tlen > 0) {
			any = true;
			for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
				if (strlen(ok[i]) == tlen && strncasecmp(p, ok[i], tlen) == 0 &&
				    !(semi && params_refuse(semi, (size_t)(end - semi))))
					return true;
			}
		}
		p = *end ? end + 1 : end;
	}
	/* An empty header says nothing. */
	return !any;
}

static const struct sm_api_route *find_route(char *const *segs, size_t n)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct sm_api_route *rt = &routes[i];
		bool match = true;

		if (n < rt->n_segs + rt->min_extra || n > rt->n_segs + rt->max_extra)
			continue;
		for (size_t k = 0; k < rt->n_segs && match; k++)
			match = strcmp(segs[k], rt->segs[k]) == 0;
		if (match)
			return rt;
	}
	return NULL;
}

static int handle_health(const struct sm_api_call *c, struct sm_api_response *ret)
{
	return sm_api_respond_text(200, "ok", c->route->name, ret);
}

static int handle_readyz(const struct sm_api_call *c, struct sm_api_response *ret)
{
	const struct sm_store *st = c->ctx->store;
	char text[1024];
	size_t len;
	size_t n;

	if (!st || sm_store_is_ready(st))
		return sm_api_respond_text(200, "ok", c->route->name, ret);

	len = (size_t)snprintf(text, sizeof(text), "not ready: no first round yet for source");
	n = sm_store_count(st);
	for (size_t i = 0, k = 0; i < n && len < sizeof(text); i++) {
		struct sm_snapshot *snap = sm_store_acquire(st, i);
		const char *name = snap->source && snap->source->name ? snap->source->name : "?";

		if (!snap->has_completed) {
			int w =
			    snprintf(text + len, sizeof(text) - len, "%s '%s'", k ? "," : "", name);

			k++;
			len += w > 0 ? (size_t)w : 0;
		}
		sm_snapshot_unref(snap);
	}
	return sm_api_respond_text(503, text, c->route->name, ret);
}

int sm_api_handle(const struct sm_api_context *ctx, const struct sm_api_request *req,
                  struct sm_api_response *ret)
{
	struct sm_error err = {0};
	char *segs[MAX_SEGS];
	char *pathbuf = NULL;
	char *querybuf = NULL;
	size_t n = 0;
	const struct sm_api_route *rt = NULL;
	struct sm_api_context with_store;
	struct sm_store *held = NULL;
	struct sm_api_call call = {.req = req};
	uint64_t generation;
	int r;

	/* One store, and so one config, for the whole request, whatever a reload does
	 * meanwhile; the reference is dropped once the answer is built. */
	if (ctx->live) {
		held = sm_store_live_acquire(ctx->live);
		with_store = *ctx;
		with_store.store = held;
		ctx = &with_store;
	}
	call.ctx = ctx;
	/* Read before anything is looked up, so an answer built across a publish is kept
	 * under the older generation and never outlives it. */
	generation = sm_store_generation(ctx->store);

	if (ctx->cache && method_allowed(req->method) &&
	    sm_api_cache_get(ctx->cache, req, generation, ret)) {
		sm_store_unref(held);
		return 0;
	}
	if (!method_allowed(req->method)) {
		r = sm_api_status(405, "MethodNotAllowed",
		                  "the server does not allow this method on the requested resource",
		                  ret);
		goto out;
	}
	r = split_path(req->path, &pathbuf, segs, &n, &err);
	if (r == -EINVAL) {
		r = sm_api_status(400, "BadRequest", err.message, ret);
		goto out;
	}
	if (r == 0)
		rt = find_route(segs, n);
	else if (r != -E2BIG)
		goto out;
	if (!rt) {
		r = sm_api_status(404, "NotFound",
		                  "the server could not find the requested resource", ret);
		goto out;
	}
	if (rt->json && !accept_allows_json(req->accept)) {
		r = sm_api_status(406, "NotAcceptable",
		                  "the server was unable to respond with a content type that the "
		                  "client supports",
		                  ret);
		goto out;
	}
	/* A metric no source declares, in a group shared with another adapter: that adapter
	 * answers (forward.h), whatever our selector parser would say of the query. */
	if (ctx->forward && rt->group && rt->max_extra > 0) {
		int up = sm_forward_decide(ctx->forward, sm_store_config(ctx->store), rt->group,
		                           rt->version, segs + rt->n_segs, n - rt->n_segs);

		if (up >= 0) {
			r = sm_forward_mark(ctx->forward, (size_t)up, ret);
			goto out;
		}
	}
	r = parse_query(req->query, &querybuf, &call, &err);
	if (r == -EINVAL) {
		r = sm_api_status(400, "BadRequest", err.message, ret);
		goto out;
	}
	if (r < 0)
		goto out;

	call.route = rt;
	call.segs = segs + rt->n_segs;
	call.n_segs = n - rt->n_segs;
	r = rt->handler(&call, ret);
out:
	/* Handlers answer every expected failure with a Status; anything left is ours. */
	if (r < 0)
		r = sm_api_status(500, "InternalError",
		                  r == -ENOMEM ? "Internal error occurred: out of memory"
		                               : "Internal error occurred",
		                  ret);
	if (r == 0 && rt)
		ret->route = rt->name;
	if (r == 0 && ctx->cache && ret->reusable)
		sm_api_cache_put(ctx->cache, req, generation, sm_store_fresh_until_ms(ctx->store),
		                 ret);
	free(pathbuf);
	free(querybuf);
	sm_store_unref(held);
	return r < 0 ? -ENOMEM : 0;
}
