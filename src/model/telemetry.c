/* SPDX-License-Identifier: MIT */
/* The server's own counters for /metrics: fixed label sets, one relaxed atomic add per
 * event, no allocation after sm_telemetry_new. */
#include "scalemetrics/telemetry.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Design
 *
 * Threads: MHD's request threads and the auth workers record; the thread serving /metrics
 * reads. Every counter is an independent atomic incremented with memory_order_relaxed:
 * nothing is ordered against anything else, and a scrape may see one request counted in
 * requests_total before its histogram bucket. Prometheus tolerates that; a lock on the
 * request path would cost more than it is worth. A histogram's _count is rendered as the
 * sum of its buckets, so the two always agree within one scrape.
 *
 * Memory: requests are counted per (group, route, exact status code) in one dense table,
 * about 130 KB, allocated once; every other table is tiny.
 */

typedef atomic_uint_least64_t counter;

struct counters {
	counter requests[SM_TELEMETRY_GROUP_MAX][SM_TELEMETRY_ROUTE_MAX][SM_TELEMETRY_CODES];
	counter latency[SM_TELEMETRY_ROUTE_MAX][SM_TELEMETRY_BUCKETS + 1];
	counter latency_sum_us[SM_TELEMETRY_ROUTE_MAX];
	counter fallbacks[SM_TELEMETRY_GROUP_MAX];
	counter auth_decisions[SM_TELEMETRY_AUTH_DECISION_MAX];
	counter cache_lookups[SM_TELEMETRY_CACHE_MAX][2]; /* [which][hit] */
	counter answer_lookups[2];                        /* [hit] */
};

struct sm_telemetry {
	struct counters c;
	/* The config reloads: rare, and read together, so under one mutex. */
	pthread_mutex_t reload_lock;
	struct sm_telemetry_reload reload;
};

static const char *const group_names[] = {
    [SM_TELEMETRY_GROUP_NONE] = "",
    [SM_TELEMETRY_GROUP_CUSTOM] = "custom.metrics.k8s.io",
    [SM_TELEMETRY_GROUP_EXTERNAL] = "external.metrics.k8s.io",
};
static_assert(sizeof(group_names) / sizeof(group_names[0]) == SM_TELEMETRY_GROUP_MAX,
              "one name per group");

static const char *const route_names[] = {
    [SM_TELEMETRY_ROUTE_DISCOVERY] = "discovery", [SM_TELEMETRY_ROUTE_CUSTOM] = "custom",
    [SM_TELEMETRY_ROUTE_EXTERNAL] = "external",   [SM_TELEMETRY_ROUTE_HEALTH] = "health",
    [SM_TELEMETRY_ROUTE_VERSION] = "version",     [SM_TELEMETRY_ROUTE_OPENAPI] = "openapi",
    [SM_TELEMETRY_ROUTE_METRICS] = "metrics",     [SM_TELEMETRY_ROUTE_STATUS] = "status",
    [SM_TELEMETRY_ROUTE_OTHER] = "other",
};
static_assert(sizeof(route_names) / sizeof(route_names[0]) == SM_TELEMETRY_ROUTE_MAX,
              "one name per route");

static const char *const decision_names[] = {
    [SM_TELEMETRY_AUTH_ALLOWED] = "allowed",
    [SM_TELEMETRY_AUTH_DENIED] = "denied",
    [SM_TELEMETRY_AUTH_UNAUTHENTICATED] = "unauthenticated",
    [SM_TELEMETRY_AUTH_ERROR] = "error",
};
static_assert(sizeof(decision_names) / sizeof(decision_names[0]) == SM_TELEMETRY_AUTH_DECISION_MAX,
              "one name per decision");

static const char *const cache_names[] = {
    [SM_TELEMETRY_CACHE_TOKENREVIEW] = "tokenreview",
    [SM_TELEMETRY_CACHE_SUBJECTACCESSREVIEW] = "subjectaccessreview",
};
static_assert(sizeof(cache_names) / sizeof(cache_names[0]) == SM_TELEMETRY_CACHE_MAX,
              "one name per cache");

/* For a server that answers from memory in well under a millisecond, up to the 1 s where
 * something is badly wrong (an API server slow to review). */
static const struct {
	int64_t us;
	const char *le;
} buckets[] = {
    {100, "0.0001"},  {250, "0.00025"}, {500, "0.0005"},  {1000, "0.001"}, {2500, "0.0025"},
    {5000, "0.005"},  {10000, "0.01"},  {25000, "0.025"}, {50000, "0.05"}, {100000, "0.1"},
    {250000, "0.25"}, {500000, "0.5"},  {1000000, "1"},
};
static_assert(sizeof(buckets) / sizeof(buckets[0]) == SM_TELEMETRY_BUCKETS,
              "SM_TELEMETRY_BUCKETS bounds");

struct sm_telemetry *sm_telemetry_new(void)
{
	/* calloc's zero bytes are valid zero atomics on every platform we build for; the
	 * explicit atomic_init below keeps that a fact of the code, not of the platform. */
	struct sm_telemetry *t = calloc(1, sizeof(*t));
	counter *all;
	size_t n = sizeof(t->c) / sizeof(counter);

	static_assert(sizeof(struct counters) % sizeof(counter) == 0, "only counters");
	if (!t)
		return NULL;
	all = (counter *)&t->c;
	for (size_t i = 0; i < n; i++)
		atomic_init(&all[i], 0);
	if (pthread_mutex_init(&t->reload_lock, NULL) != 0) {
		free(t);
		return NULL;
	}
	t->reload.last_successful = true;
	return t;
}

void sm_telemetry_free(struct sm_telemetry *t)
{
	if (!t)
		return;
	(void)pthread_mutex_destroy(&t->reload_lock);
	free(t);
}

const char *sm_telemetry_group_to_string(enum sm_telemetry_group g)
{
	return (unsigned)g < SM_TELEMETRY_GROUP_MAX ? group_names[g] : NULL;
}

const char *sm_telemetry_route_to_string(enum sm_telemetry_route r)
{
	return (unsigned)r < SM_TELEMETRY_ROUTE_MAX ? route_names[r] : NULL;
}

const char *sm_telemetry_auth_decision_to_string(enum sm_telemetry_auth_decision d)
{
	return (unsigned)d < SM_TELEMETRY_AUTH_DECISION_MAX ? decision_names[d] : NULL;
}

const char *sm_telemetry_cache_to_string(enum sm_telemetry_cache c)
{
	return (unsigned)c < SM_TELEMETRY_CACHE_MAX ? cache_names[c] : NULL;
}

/* path is exactly "/apis/<group>" or starts with "/apis/<group>/". */
static bool path_in_group(const char *path, const char *group)
{
	size_t len = strlen(group);

	if (strncmp(path, "/apis/", 6) != 0 || strncmp(path + 6, group, len) != 0)
		return false;
	return path[6 + len] == '\0' || path[6 + len] == '/';
}

enum sm_telemetry_group sm_telemetry_group_from_path(const char *path)
{
	if (!path)
		return SM_TELEMETRY_GROUP_NONE;
	for (size_t g = SM_TELEMETRY_GROUP_NONE + 1; g < SM_TELEMETRY_GROUP_MAX; g++)
		if (path_in_group(path, group_names[g]))
			return (enum sm_telemetry_group)g;
	return SM_TELEMETRY_GROUP_NONE;
}

enum sm_telemetry_route sm_telemetry_route_from_name(const char *name)
{
	if (!name)
		return SM_TELEMETRY_ROUTE_OTHER;
	for (size_t r = 0; r < SM_TELEMETRY_ROUTE_OTHER; r++)
		if (strcmp(name, route_names[r]) == 0)
			return (enum sm_telemetry_route)r;
	return SM_TELEMETRY_ROUTE_OTHER;
}

int64_t sm_telemetry_bucket_us(size_t i)
{
	if (i < SM_TELEMETRY_BUCKETS)
		return buckets[i].us;
	return i == SM_TELEMETRY_BUCKETS ? INT64_MAX : -1;
}

const char *sm_telemetry_bucket_le(size_t i)
{
	if (i < SM_TELEMETRY_BUCKETS)
		return buckets[i].le;
	return i == SM_TELEMETRY_BUCKETS ? "+Inf" : NULL;
}

static void add(counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(const counter *c)
{
	/* C17 atomic_load takes a pointer to non-const (fixed only in C23). */
	return atomic_load_explicit((counter *)c, memory_order_relaxed);
}

static size_t code_index(int code)
{
	return code >= 100 && code < SM_TELEMETRY_CODES ? (size_t)code : 0;
}

void sm_telemetry_request(struct sm_telemetry *t, enum sm_telemetry_group group,
                          enum sm_telemetry_route route, int code, int64_t duration_us,
                          unsigned fallbacks)
{
	size_t b = 0;

	if (!t)
		return;
	if ((unsigned)group >= SM_TELEMETRY_GROUP_MAX)
		group = SM_TELEMETRY_GROUP_NONE;
	if ((unsigned)route >= SM_TELEMETRY_ROUTE_MAX)
		route = SM_TELEMETRY_ROUTE_OTHER;
	if (duration_us < 0)
		duration_us = 0;
	while (b < SM_TELEMETRY_BUCKETS && duration_us > buckets[b].us)
		b++;
	add(&t->c.requests[group][route][code_index(code)], 1);
	add(&t->c.latency[route][b], 1);
	add(&t->c.latency_sum_us[route], (uint64_t)duration_us);
	if (fallbacks > 0)
		add(&t->c.fallbacks[group], fallbacks);
}

void sm_telemetry_auth_decision(struct sm_telemetry *t, enum sm_telemetry_auth_decision d)
{
	if (t && (unsigned)d < SM_TELEMETRY_AUTH_DECISION_MAX)
		add(&t->c.auth_decisions[d], 1);
}

void sm_telemetry_auth_cache(struct sm_telemetry *t, enum sm_telemetry_cache which, bool hit)
{
	if (t && (unsigned)which < SM_TELEMETRY_CACHE_MAX)
		add(&t->c.cache_lookups[which][hit ? 1 : 0], 1);
}

void sm_telemetry_answer_cache(struct sm_telemetry *t, bool hit)
{
	if (t)
		add(&t->c.answer_lookups[hit ? 1 : 0], 1);
}

uint64_t sm_telemetry_requests(const struct sm_telemetry *t, enum sm_telemetry_group group,
                               enum sm_telemetry_route route, int code)
{
	if (!t || (unsigned)group >= SM_TELEMETRY_GROUP_MAX ||
	    (unsigned)route >= SM_TELEMETRY_ROUTE_MAX)
		return 0;
	return get(&t->c.requests[group][route][code_index(code)]);
}

void sm_telemetry_latency(const struct sm_telemetry *t, enum sm_telemetry_route route,
                          uint64_t ret_buckets[SM_TELEMETRY_BUCKETS + 1], uint64_t *ret_sum_us)
{
	bool ok = t && (unsigned)route < SM_TELEMETRY_ROUTE_MAX;

	for (size_t b = 0; b <= SM_TELEMETRY_BUCKETS; b++)
		ret_buckets[b] = ok ? get(&t->c.latency[route][b]) : 0;
	*ret_sum_us = ok ? get(&t->c.latency_sum_us[route]) : 0;
}

uint64_t sm_telemetry_fallbacks(const struct sm_telemetry *t, enum sm_telemetry_group group)
{
	if (!t || (unsigned)group >= SM_TELEMETRY_GROUP_MAX)
		return 0;
	return get(&t->c.fallbacks[group]);
}

uint64_t sm_telemetry_auth_decisions(const struct sm_telemetry *t,
                                     enum sm_telemetry_auth_decision d)
{
	if (!t || (unsigned)d >= SM_TELEMETRY_AUTH_DECISION_MAX)
		return 0;
	return get(&t->c.auth_decisions[d]);
}

uint64_t sm_telemetry_auth_cache_lookups(const struct sm_telemetry *t,
                                         enum sm_telemetry_cache which, bool hit)
{
	if (!t || (unsigned)which >= SM_TELEMETRY_CACHE_MAX)
		return 0;
	return get(&t->c.cache_lookups[which][hit ? 1 : 0]);
}

uint64_t sm_telemetry_answer_cache_lookups(const struct sm_telemetry *t, bool hit)
{
	return t ? get(&t->c.answer_lookups[hit ? 1 : 0]) : 0;
}

void sm_telemetry_config_loaded(struct sm_telemetry *t, int64_t wall_ms)
{
	if (!t)
		return;
	(void)pthread_mutex_lock(&t->reload_lock);
	t->reload.last_successful = true;
	t->reload.last_wall_ms = wall_ms;
	t->reload.last_error[0] = '\0';
	(void)pthread_mutex_unlock(&t->reload_lock);
}

void sm_telemetry_config_reload(struct sm_telemetry *t, bool ok, int64_t wall_ms, const char *error)
{
	if (!t)
		return;
	(void)pthread_mutex_lock(&t->reload_lock);
	t->reload.last_successful = ok;
	t->reload.last_wall_ms = wall_ms;
	t->reload.attempts[ok ? 1 : 0]++;
	(void)snprintf(t->reload.last_error, sizeof(t->reload.last_error), "%s",
	               ok || !error ? "" : error);
	(void)pthread_mutex_unlock(&t->reload_lock);
}

void sm_telemetry_config_status(const struct sm_telemetry *t, struct sm_telemetry_reload *ret)
{
	/* Reading is logically const; the mutex is not (as with get() for the atomics). */
	struct sm_telemetry *m = (struct sm_telemetry *)t;

	if (!m) {
		*ret = (struct sm_telemetry_reload){.last_successful = true};
		return;
	}
	(void)pthread_mutex_lock(&m->reload_lock);
	*ret = m->reload;
	(void)pthread_mutex_unlock(&m->reload_lock);
}
