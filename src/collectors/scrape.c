/* SPDX-License-Identifier: MIT */
/* The scrape collector: reads Prometheus text endpoints (static URLs and/or pods discovered
 * through the Kubernetes API) concurrently with libcurl multi, keeps a short history of the
 * series its rules use, and serves per-pod and aggregate rates, quantiles, averages, gauges.
 * This file holds the round; its parts are scrape-config.c, scrape-fetch.c (step 2 below),
 * scrape-series.c (3, 4) and scrape-rules.c (5). */
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/buf.h"
#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/kube.h"
#include "scalemetrics/source.h"

#include "scrape-internal.h"

/*
 * Design. A round: (1) with `pods:`, list the namespace's Running+Ready pods matching the
 * selector, and match them to the targets kept from earlier rounds by pod UID (a vanished pod's
 * target and history are dropped; it is no longer served); (2) fetch every target at once on
 * one curl multi handle, each transfer bounded by the source timeout and max_body_bytes;
 * (3) parse each body; a target whose transfer or parse fails keeps its history but serves
 * nothing this round (never 0: a pod's series are failures naming the error, series.h), and
 * never affects the others; (4) append one point per series the rules use, timestamped with
 * our monotonic clock when its body arrived (exposition timestamps are ignored), and drop
 * points older than the longest window that uses the series; (5) compute each rule per target and
 * sum the targets into the aggregate.
 *
 * What is served, per rule metric M with `by` labels B:
 *  - per pod (with `pods:`): M{B} on object pods/NAME in the pod's namespace, with the pod's
 *    labels as object labels, so `pods/ * /M?labelSelector=app=x` picks pods;
 *  - aggregate: M{B} without an object (the external metric): the sum over every target that
 *    succeeded this round (rates, averages' inputs and gauges summed; for quantiles the buckets
 *    are summed, then the quantile is taken), plus, with their last values, targets whose
 *    scrape failed this round but succeeded within max_age (so one slow scrape does not make
 *    the sum drop; a pod that vanished from the pod list is gone at once). A target that failed
 *    with nothing that recent would make the sums partial, a wrong number: the aggregate is
 *    then a failure naming it instead.
 * Static `targets:` are not pods: they add to the aggregate only and carry no label of their
 * own, so the aggregate stays one series per B. Rates are PromQL rate() per series (window.h:
 * resets and extrapolation), summed by B. Quantiles and averages use per-bucket (per
 * _sum/_count) increases between the oldest and newest point in the window, with the same
 * reset handling: histogram_quantile(q, sum by (B, le) (increase(h_bucket[w]))). A value that
 * cannot be computed yet (fewer than two points in the window, no observations in it) is
 * absent rather than 0. The round fails only if every target failed (or the pod list could not
 * be read); otherwise the failed targets are named in the round's note.
 */

#define MAX_ERRORS_SHOWN 3
#define ACCEPT_HEADER    "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1"

struct scrape_state {
	const struct sm_source_config *src;
	const struct scrape_config *cfg;
	struct sm_kube_client *kube;
	CURLM *multi;
	struct scrape_target **targets;
	size_t n_targets, cap_targets;
	size_t fetch_first; /* where the next round starts fetching (sm_scrape_fetch_all) */
	struct scrape_names names;
	struct scrape_rule **rules; /* all rules, borrowed from cfg */
	size_t n_rules;
	struct scrape_aggregate agg;
	struct scrape_fetch_opts fetch;
	bool curl_initialised; /* holds a curl_global_init reference */
	uint64_t round;
	struct sm_buf key; /* building series keys while a body is parsed */
};

static void scrape_destroy(void *state)
{
	struct scrape_state *s = state;

	if (!s)
		return;
	for (size_t i = 0; i < s->n_targets; i++) {
		if (s->multi && s->targets[i]->easy)
			(void)curl_multi_remove_handle(s->multi, s->targets[i]->easy);
		sm_scrape_target_free(s->targets[i]);
	}
	free(s->targets);
	if (s->multi)
		(void)curl_multi_cleanup(s->multi);
	sm_kube_client_free(s->kube);
	sm_scrape_names_done(&s->names);
	sm_scrape_aggregate_done(&s->agg);
	free(s->rules);
	curl_slist_free_all(s->fetch.headers);
	free(s->key.data);
	if (s->curl_initialised)
		curl_global_cleanup();
	free(s);
}

static int targets_append(struct scrape_state *s, struct scrape_target *t)
{
	if (s->n_targets == s->cap_targets) {
		size_t cap = s->cap_targets ? 2 * s->cap_targets : 16;
		struct scrape_target **v = realloc(s->targets, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->targets = v;
		s->cap_targets = cap;
	}
	s->targets[s->n_targets++] = t;
	return 0;
}

static char *pod_url(const struct scrape_config *c, const char *ip)
{
	size_t len = strlen(ip) + strlen(c->pods.path) + 32;
	char *url = malloc(len);

	if (!url)
		return NULL;
	(void)snprintf(url, len, strchr(ip, ':') ? "%s://[%s]:%lld%s" : "%s://%s:%lld%s",
	               sm_scrape_scheme_names[c->pods.scheme], ip, (long long)c->pods.port,
	               c->pods.path);
	return url;
}

static int cmp_target_id(const void *a, const void *b)
{
	const struct scrape_target *x = *(const struct scrape_target *const *)a;
	const struct scrape_target *y = *(const struct scrape_target *const *)b;

	return strcmp(x->id, y->id);
}

/* Labels and names may change on a live pod: each round takes them from the pod list. */
static int pod_refresh(struct scrape_pod *to, const struct sm_kube_pod *pod)
{
	sm_scrape_pod_done(to);
	to->name = strdup(pod->name);
	to->namespace = strdup(pod->namespace);
	to->labels = calloc(pod->n_labels ? pod->n_labels : 1, sizeof(*to->labels));
	if (!to->name || !to->namespace || !to->labels)
		return -ENOMEM;
	for (size_t i = 0; i < pod->n_labels; i++) {
		to->labels[i].name = strdup(pod->labels[i].name);
		to->labels[i].value = strdup(pod->labels[i].value);
		to->n_labels++;
		if (!to->labels[i].name || !to->labels[i].value)
			return -ENOMEM;
	}
	return 0;
}

static int sync_pods(struct scrape_state *s, struct sm_error *reterr)
{
	const struct scrape_config *c = s->cfg;
	struct sm_kube_pod_list list = {0};
	struct scrape_target **known = NULL;
	size_t kept = 0, n_known = 0;
	int r;

	if (!s->kube) {
		struct sm_kube_options o;

		sm_kube_options_from_config(c->kube, &o);
		o.timeout_ms = s->src->timeout_ms;
		r = sm_kube_client_new(&o, &s->kube, reterr);
		if (r < 0)
			return r;
	}
	r = sm_kube_list_ready_pods(s->kube, c->pods.namespace, c->pods.selector, &list, reterr);
	if (r < 0)
		return r;
	/* The pods known from the last round, by id: thousands of pods are looked up once
	 * each, so a sorted copy rather than a scan per pod. */
	known = malloc((s->n_targets ? s->n_targets : 1) * sizeof(*known));
	if (!known) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < s->n_targets; i++) {
		s->targets[i]->listed = false;
		if (s->targets[i]->is_pod)
			known[n_known++] = s->targets[i];
	}
	qsort(known, n_known, sizeof(*known), cmp_target_id);
	for (size_t i = 0; i < list.n; i++) {
		const struct sm_kube_pod *pod = &list.items[i];
		struct scrape_target key = {.id = (char *)(*pod->uid ? pod->uid : pod->name)};
		const struct scrape_target *kp = &key;
		struct scrape_target *t = NULL, **found;
		char *url = pod_url(c, pod->ip);

		if (!url) {
			r = -ENOMEM;
			goto out;
		}
		found = bsearch(&kp, known, n_known, sizeof(*known), cmp_target_id);
		/* The same pod at a new address is a new target (and the old one goes below). */
		if (found && strcmp((*found)->url, url) == 0)
			t = *found;
		if (!t) {
			r = sm_scrape_target_new(&s->fetch, key.id, url, &t);
			if (r == 0) {
				t->is_pod = true;
				r = targets_append(s, t);
				if (r < 0)
					sm_scrape_target_free(t);
			}
		}
		free(url);
		if (r < 0)
			goto out;
		r = pod_refresh(&t->pod, pod);
		if (r < 0)
			goto out;
		t->listed = true;
	}
	/* Pods that vanished (or stopped being ready) are forgotten. */
	for (size_t i = 0; i < s->n_targets; i++) {
		struct scrape_target *t = s->targets[i];

		if (t->is_pod && !t->listed)
			sm_scrape_target_free(t);
		else
			s->targets[kept++] = t;
	}
	s->n_targets = kept;
	r = 0;
out:
	free(known);
	sm_kube_pod_list_done(&list);
	return r;
}

/* A body arrived: on success its points join the target's history; on failure the history
 * is left as it was and the target serves nothing this round. */
static int on_body(struct scrape_target *t, void *userdata)
{
	struct scrape_state *s = userdata;
	struct sm_error err = {0};
	int r;

	r = sm_scrape_table_ingest(&t->table, &s->names, t->body.data, t->body.len, s->round,
	                           t->t_ms, s->src->max_series, &s->key, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		sm_scrape_target_set_error(t, "%s", err.message);
		return 0;
	}
	t->ok = true;
	t->has_ok = true;
	t->last_ok_ms = t->t_ms;
	return 0;
}

/* A failed target: a failure as a pod; in the sums with its last values while they are
 * recent, else the sums' failures name it. */
static int target_failed(struct scrape_state *s, struct scrape_target *t, int64_t now_ms,
                         struct sm_batch *batch)
{
	char error[sizeof(t->error) + 512];
	int r = 0;

	(void)snprintf(error, sizeof(error), "%s: %s", t->shown_url, t->error);
	if (t->is_pod)
		r = sm_scrape_pod_fail(s->rules, s->n_rules, &t->pod, error, batch);
	if (r < 0)
		return r;
	if (sm_scrape_part(t->ok, t->has_ok, t->last_ok_ms, now_ms, s->src->max_age_ms) ==
	    SCRAPE_PART_RECENT)
		return sm_scrape_aggregate_add(&s->agg, &t->table, t->last_ok_ms, NULL, batch);
	return sm_scrape_aggregate_miss(&s->agg, error, batch);
}

static int scrape_collect(void *state, struct sm_batch *batch, struct sm_error *reterr)
{
	struct scrape_state *s = state;
	size_t n_ok = 0, n_failed = 0, shown = 0, pos = 0;
	char note[sizeof(reterr->message)];
	int64_t now_ms, deadline_ms = sm_time_mono_ms() + s->src->interval_ms;
	int r;

	s->round++;
	if (s->cfg->has_pods) {
		r = sync_pods(s, reterr);
		if (r < 0)
			return r;
	}
	r = sm_scrape_fetch_all(s->multi, s->targets, s->n_targets, deadline_ms, &s->fetch_first,
	                        on_body, s, reterr);
	if (r < 0)
		return r;
	now_ms = sm_time_mono_ms();
	sm_scrape_aggregate_begin(&s->agg);
	note[0] = '\0';
	for (size_t i = 0; i < s->n_targets; i++) {
		struct scrape_target *t = s->targets[i];

		if (!t->ok) {
			n_failed++;
			if (shown < MAX_ERRORS_SHOWN && pos < sizeof(note)) {
				int k = snprintf(note + pos, sizeof(note) - pos, "%s%s: %s",
				                 shown ? "; " : "", t->shown_url, t->error);

				if (k > 0)
					pos += (size_t)k;
				shown++;
			}
			r = target_failed(s, t, now_ms, batch);
		} else {
			n_ok++;
			r = sm_scrape_aggregate_add(&s->agg, &t->table, t->last_ok_ms,
			                            t->is_pod ? &t->pod : NULL, batch);
		}
		if (r < 0)
			return r;
	}
	if (n_failed && n_ok == 0) {
		sm_error_set(reterr, "all %zu targets failed: %s", n_failed, note);
		return -EPROTO;
	}
	r = sm_scrape_aggregate_finish(&s->agg, batch);
	if (r < 0)
		return r;
	if (n_failed)
		sm_error_set(reterr, "%zu of %zu targets failed: %s", n_failed, n_ok + n_failed,
		             note);
	return 0;
}

static int add_rules(struct scrape_state *s, struct scrape_rules *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		int r = sm_scrape_rule_bind(&rs->v[i], &s->names);

		if (r < 0)
			return r;
		s->rules[s->n_rules++] = &rs->v[i];
	}
	return 0;
}

static int scrape_create(const struct sm_source_config *src, void **ret_state)
{
	struct scrape_config *c = src->priv;
	struct scrape_state *s = NULL;
	size_t n_rules;
	int r = -ENOMEM;

	if (!c)
		return -EINVAL;
	n_rules = c->rates.n + c->quantiles.n + c->averages.n + c->gauges.n;
	/* Reference-counted; here on the main thread, before any collector thread uses curl. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	s->curl_initialised = true;
	s->src = src;
	s->cfg = c;
	s->fetch = (struct scrape_fetch_opts){
	    .cfg = c,
	    .timeout_ms = src->timeout_ms,
	    .headers = curl_slist_append(NULL, ACCEPT_HEADER),
	};
	s->rules = calloc(n_rules ? n_rules : 1, sizeof(*s->rules));
	s->multi = curl_multi_init();
	if (!s->rules || !s->multi || !s->fetch.headers)
		goto out;
	r = add_rules(s, &c->rates);
	if (r == 0)
		r = add_rules(s, &c->quantiles);
	if (r == 0)
		r = add_rules(s, &c->averages);
	if (r == 0)
		r = add_rules(s, &c->gauges);
	if (r == 0)
		r = sm_scrape_aggregate_init(&s->agg, s->rules, s->n_rules);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < c->targets.n; i++) {
		struct scrape_target *t = NULL;

		r = sm_scrape_target_new(&s->fetch, c->targets.v[i], c->targets.v[i], &t);
		if (r < 0)
			goto out;
		r = targets_append(s, t);
		if (r < 0) {
			sm_scrape_target_free(t);
			goto out;
		}
	}
	*ret_state = s;
	s = NULL;
	r = 0;
out:
	scrape_destroy(s);
	return r;
}

const struct sm_source_ops sm_source_scrape = {
    .type = "scrape",
    .config_parse = sm_scrape_config_parse,
    .config_free = sm_scrape_config_free,
    .create = scrape_create,
    .collect = scrape_collect,
    .destroy = scrape_destroy,
};
