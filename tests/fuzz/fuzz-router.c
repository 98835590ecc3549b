/* SPDX-License-Identifier: MIT */
/* The URL router and handlers (sm_api_handle) on any method, path, query and Accept, against a
 * small store with external, object and pod series. Input: METHOD\nPATH\nQUERY\nACCEPT. */
#include <stdbool.h>

#include "scalemetrics/api.h"
#include "scalemetrics/config.h"
#include "scalemetrics/series.h"
#include "scalemetrics/store.h"

#include "fuzz.h"

#define MONO_MS 1000000
#define WALL_MS 1714564800000

static char *namespaces[] = {"default", "team-a", NULL};
static struct sm_metric_def jobs_metrics[] = {
    {.name = "queue_length", .scope = SM_METRIC_EXTERNAL},
    {.name = "queue_rate",
     .scope = SM_METRIC_OBJECT,
     .resource = "deployments.apps",
     .window_s = 60},
    {.name = "node_temp", .scope = SM_METRIC_OBJECT, .resource = "nodes"},
};
static struct sm_metric_def web_metrics[] = {
    {.name = "http_requests", .scope = SM_METRIC_PODS, .window_s = 60},
};
static struct sm_metric_def db_metrics[] = {
    {.name = "pending_jobs", .scope = SM_METRIC_EXTERNAL, .fallback = {.set = true}},
};
static struct sm_source_config sources[] = {
    {.name = "jobs",
     .type = "test",
     .interval_ms = 5000,
     .timeout_ms = 1000,
     .max_age_ms = 15000,
     .namespaces = {.v = namespaces, .n = 2},
     .max_series = 100,
     .metrics = jobs_metrics,
     .n_metrics = 3},
    {.name = "web",
     .type = "test",
     .interval_ms = 5000,
     .timeout_ms = 1000,
     .max_age_ms = 15000,
     .namespaces = {.v = namespaces, .n = 2},
     .max_series = 100,
     .metrics = web_metrics,
     .n_metrics = 1},
    {.name = "db",
     .type = "test",
     .interval_ms = 5000,
     .timeout_ms = 1000,
     .max_age_ms = 15000,
     .namespaces = {.v = namespaces, .n = 2},
     .max_series = 100,
     .metrics = db_metrics,
     .n_metrics = 1},
};
static struct sm_config config = {
    .path = "fuzz.yaml",
    .server = {.namespace = "default"},
    .sources = sources,
    .n_sources = 3,
};

static void add(struct sm_batch *b, const struct sm_series_in *in)
{
	if (sm_batch_add(b, in) != 0)
		abort();
}

static struct sm_store *make_store(void)
{
	struct sm_store *st = sm_store_new(&config);
	struct sm_batch *b = sm_batch_new(100);

	if (!st || !b)
		abort();
	add(b, &(struct sm_series_in){.metric = "queue_length",
	                              .labels = (struct sm_label[]){{"queue", "emails"}},
	                              .n_labels = 1,
	                              .value = 42});
	add(b,
	    &(struct sm_series_in){.metric = "queue_rate",
	                           .value = 0.5,
	                           .object = &(struct sm_object_ref){.resource = "deployments.apps",
	                                                             .name = "worker",
	                                                             .namespace = "default"},
	                           .window_s = 60});
	add(b, &(struct sm_series_in){
	           .metric = "node_temp",
	           .value = 1e300,
	           .object = &(struct sm_object_ref){.resource = "nodes", .name = "n1"}});
	if (sm_store_publish_success(st, 0, b, MONO_MS, WALL_MS) != 0)
		abort();
	b = sm_batch_new(100);
	if (!b)
		abort();
	add(b, &(struct sm_series_in){.metric = "http_requests",
	                              .labels = (struct sm_label[]){{"tier", "a"}},
	                              .n_labels = 1,
	                              .value = -1.5,
	                              .object = &(struct sm_object_ref){.resource = "pods",
	                                                                .name = "web-1",
	                                                                .namespace = "default"},
	                              .object_labels = (struct sm_label[]){{"app", "web"}},
	                              .n_object_labels = 1,
	                              .window_s = 60});
	if (sm_store_publish_success(st, 1, b, MONO_MS, WALL_MS) != 0)
		abort();
	if (sm_store_publish_failure(st, 2, "connection refused", MONO_MS) != 0)
		abort();
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Built once: the store is read-only here (libFuzzer runs one input at a time). */
	static struct sm_store *store;
	struct sm_api_context ctx;
	struct sm_api_request req = {.now_mono_ms = MONO_MS + 2000, .now_wall_ms = WALL_MS + 2000};
	struct sm_api_response resp = {0};
	const char *parts[4];
	char *text;

	if (!store)
		store = make_store();
	ctx = (struct sm_api_context){.store = store, .version = "0.1.0", .git_commit = ""};
	text = fuzz_string(data, size);
	fuzz_split(text, parts, 4);
	req.method = parts[0];
	req.path = parts[1];
	req.query = parts[2][0] ? parts[2] : NULL;
	req.accept = parts[3][0] ? parts[3] : NULL;
	(void)sm_api_handle(&ctx, &req, &resp);
	if (resp.status < 100 || resp.status > 599 ||
	    (resp.body && strlen(resp.body) != resp.body_len))
		abort();
	sm_api_response_done(&resp);
	free(text);
	return 0;
}
