/* SPDX-License-Identifier: MIT */
/* The pods of a namespace that can serve, from a PodList (scrape targets): running, Ready,
 * with an IP. The request goes through the client (client.c). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/kube.h"
#include "scalemetrics/series.h"

static void pod_done(struct sm_kube_pod *p)
{
	free(p->name);
	free(p->namespace);
	free(p->uid);
	free(p->ip);
	for (size_t i = 0; i < p->n_labels; i++) {
		free((char *)p->labels[i].name);
		free((char *)p->labels[i].value);
	}
	free(p->labels);
}

void sm_kube_pod_list_done(struct sm_kube_pod_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		pod_done(&l->items[i]);
	free(l->items);
	free(l->resource_version);
	*l = (struct sm_kube_pod_list){0};
}

static const char *get_string(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool pod_is_ready(const cJSON *status)
{
	const cJSON *conds = cJSON_GetObjectItemCaseSensitive(status, "conditions");
	const cJSON *cond;
	const char *phase = get_string(status, "phase");

	if (!phase || strcmp(phase, "Running") != 0 || !cJSON_IsArray(conds))
		return false;
	cJSON_ArrayForEach(cond, conds)
	{
		const char *type = get_string(cond, "type");
		const char *st = get_string(cond, "status");

		if (type && st && strcmp(type, "Ready") == 0)
			return strcmp(st, "True") == 0;
	}
	return false;
}

static int pod_from_json(const cJSON *item, struct sm_kube_pod *p)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(item, "metadata");
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(item, "status");
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
	const char *name = get_string(meta, "name"), *ns = get_string(meta, "namespace");
	const char *uid = get_string(meta, "uid"), *ip = get_string(status, "podIP");
	const cJSON *l;
	size_t n = 0;

	if (!name || !ns || !ip || !*ip || !pod_is_ready(status))
		return 0; /* not a pod that can serve */
	p->name = strdup(name);
	p->namespace = strdup(ns);
	p->uid = strdup(uid ? uid : "");
	p->ip = strdup(ip);
	if (!p->name || !p->namespace || !p->uid || !p->ip)
		return -ENOMEM;
	if (cJSON_IsObject(labels)) {
		cJSON_ArrayForEach(l, labels)
		{
			n++;
		}
		p->labels = calloc(n ? n : 1, sizeof(*p->labels));
		if (!p->labels)
			return -ENOMEM;
		cJSON_ArrayForEach(l, labels)
		{
			struct sm_label *dst = &p->labels[p->n_labels];

			if (!cJSON_IsString(l) || !l->string)
				continue;
			dst->name = strdup(l->string);
			dst->value = strdup(l->valuestring);
			p->n_labels++;
			if (!dst->name || !dst->value)
				return -ENOMEM;
		}
	}
	return 1;
}

int sm_kube_pod_list_from_json(const struct cJSON *doc, struct sm_kube_pod_list *ret,
                               struct sm_error *reterr)
{
	struct sm_kube_pod_list l = {0};
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(doc, "items");
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "metadata");
	const char *kind = get_string(doc, "kind"), *rv = get_string(meta, "resourceVersion");
	const cJSON *item;
	int r = -ENOMEM;

	if (!kind || strcmp(kind, "PodList") != 0 ||
	    !(cJSON_IsArray(items) || cJSON_IsNull(items))) {
		sm_error_set(reterr, "expected a PodList, got %s", kind ? kind : "no kind");
		return -EPROTO;
	}
	l.items = calloc((size_t)cJSON_GetArraySize(items) + 1, sizeof(*l.items));
	if (!l.items)
		goto out;
	l.resource_version = strdup(rv ? rv : "");
	if (!l.resource_version)
		goto out;
	cJSON_ArrayForEach(item, items)
	{
		int k = pod_from_json(item, &l.items[l.n]);

		if (k < 0) {
			l.n++; /* free the half-built one */
			goto out;
		}
		if (k > 0)
			l.n++; /* k == 0 (a pod that cannot serve) allocated nothing */
	}
	*ret = l;
	l = (struct sm_kube_pod_list){0};
	r = 0;
out:
	sm_kube_pod_list_done(&l);
	return r;
}

static int status_error(long status, const cJSON *doc, const char *what, struct sm_error *reterr)
{
	const char *msg = get_string(doc, "message");

	sm_error_set(reterr, "%s: HTTP %ld%s%s", what, status, msg ? ": " : "", msg ? msg : "");
	if (status == 401 || status == 403)
		return -EACCES;
	if (status == 404)
		return -ENOENT;
	return -EPROTO;
}

int sm_kube_list_ready_pods(struct sm_kube_client *c, const char *namespace,
                            const char *label_selector, struct sm_kube_pod_list *ret,
                            struct sm_error *reterr)
{
	char *ns = NULL, *sel = NULL, *path = NULL;
	cJSON *doc = NULL;
	long status = 0;
	size_t len;
	int r = -ENOMEM;

	ns = sm_kube_escape(namespace);
	sel = sm_kube_escape(label_selector ? label_selector : "");
	if (!ns || !sel)
		goto out;
	len = strlen(ns) + strlen(sel) + 64;
	path = malloc(len);
	if (!path)
		goto out;
	if (*sel)
		(void)snprintf(path, len, "/api/v1/namespaces/%s/pods?labelSelector=%s", ns, sel);
	else
		(void)snprintf(path, len, "/api/v1/namespaces/%s/pods", ns);
	r = sm_kube_get(c, path, &status, &doc, reterr);
	if (r < 0)
		goto out;
	if (status != 200) {
		char what[256];

		(void)snprintf(what, sizeof(what), "listing pods in '%s'", namespace);
		r = status_error(status, doc, what, reterr);
		goto out;
	}
	if (!doc) {
		sm_error_set(reterr, "listing pods in '%s': the answer is not JSON", namespace);
		r = -EPROTO;
		goto out;
	}
	r = sm_kube_pod_list_from_json(doc, ret, reterr);
out:
	cJSON_Delete(doc);
	free(path);
	free(sel);
	free(ns);
	return r;
}
