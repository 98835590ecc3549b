/* SPDX-License-Identifier: MIT */
/* Forwarding, the pure part: which metric requests go to another adapter, that adapter's
 * resource lists merged into our discovery documents, and what of its answers is passed on
 * (forward.h; the I/O is src/http/upstream.c).
 *
 * Design: one struct upstream per `forward` entry, immutable but for its resource lists (one
 * per API version of its group that we serve), which the refresher replaces and the API
 * reads under f->lock; the lists are small (an adapter's metric names) and copied in once
 * per refresh. The refresh request is an atomic flag set by request threads. */
#include "scalemetrics/forward.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/config.h"

#include "api-internal.h"

#define MAX_VERSIONS 4
/* Resources kept per list: an adapter with more is cut (and discovery with it). */
#define MAX_RESOURCES 10000

struct resource {
	char *name;         /* "pods/m", "namespaces/m", "m" */
	const char *metric; /* into name: after the last '/' */
	bool namespaced;
};

struct resource_list {
	const char *version; /* static, from the route table */
	struct resource *items;
	size_t n;
};

struct upstream {
	const struct sm_forward_config *cfg;
	const char *group; /* static */
	char name[1024];   /* the URL, userinfo hidden */
	struct resource_list lists[MAX_VERSIONS];
	size_t n_lists;
	atomic_bool want_refresh;
};

struct sm_forward {
	const struct sm_forward_list *list;
	pthread_mutex_t lock; /* guards every upstream's lists */
	struct upstream *ups;
	size_t n;
};

static void list_clear(struct resource_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].name);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

void sm_forward_free(struct sm_forward *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		for (size_t k = 0; k < f->ups[i].n_lists; k++)
			list_clear(&f->ups[i].lists[k]);
	free(f->ups);
	(void)pthread_mutex_destroy(&f->lock);
	free(f);
}

struct sm_forward *sm_forward_new(const struct sm_forward_list *list)
{
	struct sm_forward *f = calloc(1, sizeof(*f));
	const struct sm_api_route *rt;
	size_t n_routes;

	if (!f)
		return NULL;
	if (pthread_mutex_init(&f->lock, NULL) != 0) {
		free(f);
		return NULL;
	}
	f->list = list;
	f->ups = calloc(list->n ? list->n : 1, sizeof(*f->ups));
	if (!f->ups) {
		sm_forward_free(f);
		return NULL;
	}
	rt = sm_api_routes(&n_routes);
	for (size_t i = 0; i < list->n; i++) {
		struct upstream *u = &f->ups[i];

		u->cfg = &list->v[i];
		u->group = sm_forward_group_to_string(u->cfg->group);
		sm_config_url_redact(u->cfg->url ? u->cfg->url : "", u->name, sizeof(u->name));
		atomic_init(&u->want_refresh, false);
		/* The versions we serve, in the table's (preference) order. */
		for (size_t k = 0; k < n_routes && u->group && u->n_lists < MAX_VERSIONS; k++) {
			if (!rt[k].group || !rt[k].version || rt[k].max_extra != 0 ||
			    strcmp(rt[k].group, u->group) != 0)
				continue;
			u->lists[u->n_lists++].version = rt[k].version;
		}
		f->n++;
	}
	return f;
}

size_t sm_forward_count(const struct sm_forward *f)
{
	return f ? f->n : 0;
}

const struct sm_forward_list *sm_forward_list(const struct sm_forward *f)
{
	return f->list;
}

const char *sm_forward_name(const struct sm_forward *f, size_t upstream)
{
	return f->ups[upstream].name;
}

const char *sm_forward_version(const struct sm_forward *f, size_t upstream, size_t k)
{
	const struct upstream *u = &f->ups[upstream];

	return k < u->n_lists ? u->lists[k].version : NULL;
}

static struct resource_list *find_list(struct upstream *u, const char *version)
{
	for (size_t k = 0; k < u->n_lists; k++)
		if (strcmp(u->lists[k].version, version) == 0)
			return &u->lists[k];
	return NULL;
}

static bool declared(const struct sm_config *cfg, const char *metric)
{
	if (!cfg)
		return false;
	for (size_t i = 0; i < cfg->n_sources; i++) {
		const struct sm_source_config *src = &cfg->sources[i];

		for (size_t j = 0; j < src->n_metrics; j++)
			if (src->metrics[j].name && strcmp(src->metrics[j].name, metric) == 0)
				return true;
	}
	return false;
}

static bool segment_ok(const char *s)
{
	return *s && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/');
}

/* The metric a request of this shape asks for, or NULL when it is not a metric request. */
static const char *metric_of(enum sm_forward_group g, char *const *segs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!segment_ok(segs[i]))
			return NULL;
	if (g == SM_FORWARD_EXTERNAL)
		return n == 3 && strcmp(segs[0], "namespaces") == 0 ? segs[2] : NULL;
	if (n == 3)
		return segs[2];
	if (n == 4 && strcmp(segs[0], "namespaces") == 0 && strcmp(segs[2], "metrics") == 0)
		return segs[3];
	if (n == 5 && strcmp(segs[0], "namespaces") == 0)
		return segs[4];
	return NULL;
}

int sm_forward_decide(struct sm_forward *f, const struct sm_config *cfg, const char *group,
                      const char *version, char *const *segs, size_t n_segs)
{
	struct upstream *u = NULL;
	struct resource_list *l;
	const char *metric;
	bool listed = false;
	size_t i;

	if (!f || !group)
		return -1;
	for (i = 0; i < f->n; i++) {
		if (f->ups[i].group && strcmp(f->ups[i].group, group) == 0) {
			u = &f->ups[i];
			break;
		}
	}
	if (!u)
		return -1;
	metric = metric_of(u->cfg->group, segs, n_segs);
	if (!metric || declared(cfg, metric))
		return -1;
	(void)pthread_mutex_lock(&f->lock);
	l = version ? find_list(u, version) : NULL;
	for (size_t k = 0; l && k < l->n && !listed; k++)
		listed = strcmp(l->items[k].metric, metric) == 0;
	(void)pthread_mutex_unlock(&f->lock);
	if (!listed)
		atomic_store(&u->want_refresh, true);
	return (int)i;
}

bool sm_forward_take_refresh(struct sm_forward *f, size_t upstream)
{
	return atomic_exchange(&f->ups[upstream].want_refresh, false);
}

int sm_forward_unavailable(const struct sm_forward *f, size_t upstream, const char *why,
                           struct sm_api_response *ret)
{
	const struct upstream *u = &f->ups[upstream];
	char msg[2048];

	(void)snprintf(msg, sizeof(msg),
	               "the metric is served by '%s' (forward for %s), which did not answer: %s",
	               u->name, u->group ? u->group : "?", why);
	return sm_api_status(503, "ServiceUnavailable", msg, ret);
}

int sm_forward_mark(const struct sm_forward *f, size_t upstream, struct sm_api_response *ret)
{
	int r = sm_forward_unavailable(f, upstream, "this server does not forward requests", ret);

	if (r < 0)
		return r;
	ret->forward = true;
	ret->forward_to = (unsigned)upstream;
	return 0;
}

/* ---- resource lists ---- */

static const char *string_member(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int sm_forward_set_resources(struct sm_forward *f, size_t upstream, const char *version,
                             const char *body, size_t len, struct sm_error *reterr)
{
	struct upstream *u = &f->ups[upstream];
	struct resource_list *l = find_list(u, version);
	struct resource_list nl = {0};
	cJSON *doc = NULL;
	const cJSON *resources, *res;
	const char *kind, *gv;
	char want_gv[128];
	size_t n;
	int r = -EPROTO;

	if (!l) {
		sm_error_set(reterr, "version '%s' is not one of %s that we serve", version,
		             u->group ? u->group : "?");
		return -EPROTO;
	}
	(void)snprintf(want_gv, sizeof(want_gv), "%s/%s", u->group, version);
	doc = cJSON_ParseWithLength(body, len);
	if (!cJSON_IsObject(doc)) {
		sm_error_set(reterr, "GET /apis/%s: the answer is not a JSON object", want_gv);
		goto out;
	}
	kind = string_member(doc, "kind");
	gv = string_member(doc, "groupVersion");
	resources = cJSON_GetObjectItemCaseSensitive(doc, "resources");
	if (!kind || strcmp(kind, "APIResourceList") != 0 || !gv || strcmp(gv, want_gv) != 0 ||
	    !cJSON_IsArray(resources)) {
		sm_error_set(
		    reterr,
		    "GET /apis/%s: the answer is not an APIResourceList of %s (kind '%.64s', "
		    "groupVersion '%.128s')",
		    want_gv, want_gv, kind ? kind : "", gv ? gv : "");
		goto out;
	}
	n = (size_t)cJSON_GetArraySize(resources);
	if (n > MAX_RESOURCES)
		n = MAX_RESOURCES;
	r = -ENOMEM;
	nl.items = calloc(n ? n : 1, sizeof(*nl.items));
	if (!nl.items)
		goto out;
	cJSON_ArrayForEach(res, resources)
	{
		const char *name = string_member(res, "name");
		const cJSON *ns = cJSON_GetObjectItemCaseSensitive(res, "namespaced");
		const char *slash;
		struct resource *it;

		if (nl.n == n)
			break;
		if (!name || !*name)
			continue;
		it = &nl.items[nl.n];
		it->name = strdup(name);
		if (!it->name)
			goto out;
		slash = strrchr(it->name, '/');
		it->metric = slash ? slash + 1 : it->name;
		it->namespaced = cJSON_IsTrue(ns);
		nl.n++;
	}
	nl.version = l->version;
	(void)pthread_mutex_lock(&f->lock);
	list_clear(l);
	*l = nl;
	(void)pthread_mutex_unlock(&f->lock);
	nl = (struct resource_list){0};
	r = 0;
out:
	list_clear(&nl);
	cJSON_Delete(doc);
	return r;
}

void sm_forward_clear_resources(struct sm_forward *f, size_t upstream, const char *version)
{
	struct resource_list *l = find_list(&f->ups[upstream], version);

	if (!l)
		return;
	(void)pthread_mutex_lock(&f->lock);
	list_clear(l);
	(void)pthread_mutex_unlock(&f->lock);
}

bool sm_forward_for_each_resource(struct sm_forward *f, const struct sm_config *cfg,
                                  const char *group, const char *version, sm_forward_resource_fn fn,
                                  void *userdata)
{
	bool found = false;

	if (!f || !group)
		return false;
	(void)pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->n; i++) {
		struct upstream *u = &f->ups[i];
		struct resource_list *l;

		if (!u->group || strcmp(u->group, group) != 0)
			continue;
		found = true;
		l = find_list(u, version);
		for (size_t k = 0; l && k < l->n; k++)
			if (!declared(cfg, l->items[k].metric))
				fn(l->items[k].name, l->items[k].namespaced, userdata);
	}
	(void)pthread_mutex_unlock(&f->lock);
	return found;
}

void sm_forward_for_each_clash(struct sm_forward *f, size_t upstream, const struct sm_config *cfg,
                               sm_forward_clash_fn fn, void *userdata)
{
	struct upstream *u = &f->ups[upstream];

	(void)pthread_mutex_lock(&f->lock);
	for (size_t v = 0; v < u->n_lists; v++) {
		const struct resource_list *l = &u->lists[v];

		for (size_t k = 0; k < l->n; k++) {
			const char *m = l->items[k].metric;
			bool seen = false;

			if (!declared(cfg, m))
				continue;
			/* Once per name: "pods/m" and "namespaces/m", and every version. */
			for (size_t w = 0; w <= v && !seen; w++) {
				const struct resource_list *e = &u->lists[w];
				size_t end = w == v ? k : e->n;

				for (size_t j = 0; j < end && !seen; j++)
					seen = strcmp(e->items[j].metric, m) == 0;
			}
			if (!seen)
				fn(m, userdata);
		}
	}
	(void)pthread_mutex_unlock(&f->lock);
}

/* ---- answers ---- */

int sm_forward_check_answer(const struct sm_forward *f, size_t upstream, long status,
                            const char *body, size_t len, struct sm_error *reterr)
{
	const struct upstream *u = &f->ups[upstream];
	const char *want =
	    u->cfg->group == SM_FORWARD_EXTERNAL ? "ExternalMetricValueList" : "MetricValueList";
	cJSON *doc = body && len ? cJSON_ParseWithLength(body, len) : NULL;
	const char *kind = cJSON_IsObject(doc) ? string_member(doc, "kind") : NULL;
	int r = -EPROTO;

	if (!cJSON_IsObject(doc))
		sm_error_set(reterr, "it answered HTTP %ld with %s", status,
		             len ? "a body that is not a JSON object" : "an empty body");
	else if (kind && strcmp(kind, "Status") == 0)
		r = 0; /* its own error (or success) document, passed on */
	else if (status < 200 || status > 299)
		sm_error_set(reterr, "it answered HTTP %ld without a Status", status);
	else if (!kind || strcmp(kind, want) != 0 ||
	         !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "items")))
		sm_error_set(reterr, "it answered HTTP %ld with kind '%.64s', not a %s with items",
		             status, kind ? kind : "", want);
	else
		r = 0;
	cJSON_Delete(doc);
	return r;
}
