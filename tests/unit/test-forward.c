/* SPDX-License-Identifier: MIT */
/* Forwarding's pure parts: the `forward` config list, which requests go to the upstream, the
 * union of discovery lists, which upstream answers are passed on, and the reload's restart
 * key. */
/* cmocka needs setjmp.h, stdarg.h and stddef.h before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/config.h"
#include "scalemetrics/forward.h"
#include "scalemetrics/source.h"
#include "scalemetrics/store.h"
#include "scalemetrics/upstream.h"

#define MAX_EXPECTED 4
#define REDIS                                                                                      \
	"sources:\n  - {name: q, type: redis, address: '127.0.0.1:1', queues: [{metric: ours, "    \
	"keys: ['q:*']}]}\n"

/* ---- config ---- */

struct config_case {
	const char *name;
	const char *yaml;
	const char *errors[MAX_EXPECTED]; /* none: must load */
};

static const struct config_case config_cases[] = {
    {.name = "none", .yaml = "forward: []\n"},
    {.name = "null", .yaml = "forward:\n"},
    {.name = "both groups",
     .yaml = "forward:\n"
             "  - {group: external.metrics.k8s.io, url: 'https://keda.keda.svc:443'}\n"
             "  - {group: custom.metrics.k8s.io, url: 'http://adapter:6443/', timeout: 2s,\n"
             "     token_file: /t, insecure_skip_tls_verify: true}\n"},
    {.name = "not a list",
     .yaml = "forward: {group: custom.metrics.k8s.io}\n",
     .errors = {"cfg.yaml:1:10: \"forward\" must be a list of entries (group, url, ...), not "
                "a mapping"}},
    {.name = "missing url and group",
     .yaml = "forward:\n  - {timeout: 1s}\n",
     .errors = {"cfg.yaml:2:5: missing required key \"group\" in forward entry #1",
                "cfg.yaml:2:5: missing required key \"url\" in forward entry #1"}},
    {.name = "unknown group",
     .yaml = "forward:\n  - {group: metrics.k8s.io, url: 'https://x'}\n",
     .errors = {"cfg.yaml:2:13: invalid value 'metrics.k8s.io' for \"group\" in forward entry "
                "#1 (expected one of: custom.metrics.k8s.io, external.metrics.k8s.io)"}},
    {.name = "bad scheme",
     .yaml = "forward:\n  - {group: custom.metrics.k8s.io, url: 'ftp://u:pw@x'}\n",
     .errors = {"cfg.yaml:2:41: invalid url 'ftp://***@x' in forward entry #1 (expected an "
                "https:// or http:// URL)"}},
    {.name = "url with a query",
     .yaml = "forward:\n  - {group: custom.metrics.k8s.io, url: 'https://x/?a=b'}\n",
     .errors = {"cfg.yaml:2:41: invalid url 'https://x/?a=b' in forward entry #1 (expected a "
                "server's URL, like https://keda-operator-metrics-apiserver.keda.svc:443, "
                "without a path or query)"}},
    {.name = "url with a path",
     .yaml = "forward:\n  - {group: custom.metrics.k8s.io, url: 'https://x:443/prefix'}\n",
     .errors = {"cfg.yaml:2:41: invalid url 'https://x:443/prefix' in forward entry #1 "
                "(expected a server's URL, like "
                "https://keda-operator-metrics-apiserver.keda.svc:443, without a path or "
                "query)"}},
    {.name = "url with a path, trailing slash",
     .yaml = "forward:\n  - {group: custom.metrics.k8s.io, url: 'https://x/a/b/'}\n",
     .errors = {"cfg.yaml:2:41: invalid url 'https://x/a/b/' in forward entry #1 (expected a "
                "server's URL, like https://keda-operator-metrics-apiserver.keda.svc:443, "
                "without a path or query)"}},
    {.name = "no host",
     .yaml = "forward:\n  - {group: custom.metrics.k8s.io, url: 'https:///'}\n",
     .errors = {"cfg.yaml:2:41: invalid url 'https:///' in forward entry #1 (expected a "
                "server's URL, like https://keda-operator-metrics-apiserver.keda.svc:443, "
                "without a path or query)"}},
    {.name = "two for one group",
     .yaml = "forward:\n"
             "  - {group: custom.metrics.k8s.io, url: 'https://a'}\n"
             "  - {group: custom.metrics.k8s.io, url: 'https://b'}\n",
     .errors = {"cfg.yaml:3:13: forward entry #2: group 'custom.metrics.k8s.io' already has "
                "an entry (#1); one adapter per group"}},
    {.name = "ca_file and insecure",
     .yaml = "forward:\n  - {group: custom.metrics.k8s.io, url: 'https://a', ca_file: /ca,\n"
             "     insecure_skip_tls_verify: true}\n",
     .errors = {"cfg.yaml:3:32: forward entry #1: give ca_file or insecure_skip_tls_verify, "
                "not both"}},
    {.name = "timeout bounds",
     .yaml = "forward:\n  - {group: custom.metrics.k8s.io, url: 'https://a', timeout: 2m}\n",
     .errors = {"cfg.yaml:2:63: \"timeout\" in forward entry #1 must be between 100ms and 1m "
                "(got '2m')"}},
    {.name = "unknown key",
     .yaml = "forward:\n  - {group: custom.metrics.k8s.io, url: 'https://a', token: x}\n",
     .errors = {"cfg.yaml:2:54: unknown key \"token\" in forward entry #1 (secrets are given "
                "by token_file)"}},
};

static bool run_config_case(const struct config_case *c)
{
	struct sm_config sentinel = {0};
	struct sm_config *cfg = &sentinel;
	struct sm_error_list errs = {0};
	size_t n = 0;
	bool ok = true;
	char buf[1024];
	int r;

	while (n < MAX_EXPECTED && c->errors[n])
		n++;
	r = sm_config_load_string("cfg.yaml", c->yaml, strlen(c->yaml), &cfg, &errs);
	if (n == 0) {
		ok = r == 0 && errs.n == 0 && cfg != &sentinel;
	} else {
		ok = r == -EINVAL && errs.n == n && cfg == &sentinel;
		for (size_t i = 0; ok && i < n; i++) {
			sm_error_format(&errs.items[i], buf, sizeof(buf));
			ok = strcmp(buf, c->errors[i]) == 0;
		}
	}
	if (!ok) {
		fprintf(stderr, "case '%s': r=%d, %zu error(s), expected %zu:\n", c->name, r,
		        errs.n, n);
		for (size_t i = 0; i < errs.n; i++) {
			sm_error_format(&errs.items[i], buf, sizeof(buf));
			fprintf(stderr, "  got:      %s\n", buf);
		}
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "  expected: %s\n", c->errors[i]);
	}
	if (cfg != &sentinel)
		sm_config_free(cfg);
	sm_error_list_done(&errs);
	return ok;
}

static void test_config_cases(void **state)
{
	size_t failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(config_cases) / sizeof(config_cases[0]); i++)
		if (!run_config_case(&config_cases[i]))
			failed++;
	if (failed)
		fail_msg("%zu config cases failed (named above)", failed);
}

static struct sm_config *load(const char *yaml)
{
	struct sm_config *cfg = NULL;
	struct sm_error_list errs = {0};
	char buf[1024];

	if (sm_config_load_string("cfg.yaml", yaml, strlen(yaml), &cfg, &errs) != 0) {
		for (size_t i = 0; i < errs.n; i++) {
			sm_error_format(&errs.items[i], buf, sizeof(buf));
			fprintf(stderr, "  %s\n", buf);
		}
		fail_msg("load failed");
	}
	sm_error_list_done(&errs);
	return cfg;
}

static void test_config_values(void **state)
{
	struct sm_config *cfg =
	    load("forward:\n"
	         "  - {group: external.metrics.k8s.io, url: 'https://keda.keda.svc:443//'}\n"
	         "  - {group: custom.metrics.k8s.io, url: 'http://adapter', timeout: 250ms,\n"
	         "     token_file: /t, ca_file: '/ca'}\n");
	const struct sm_forward_config *e = cfg->forward.v;

	(void)state;
	assert_int_equal(cfg->forward.n, 2);
	assert_int_equal(e[0].group, SM_FORWARD_EXTERNAL);
	assert_string_equal(e[0].url, "https://keda.keda.svc:443");
	assert_null(e[0].ca_file);
	assert_null(e[0].token_file);
	assert_false(e[0].insecure_skip_tls_verify);
	assert_int_equal(e[0].timeout_ms, 5000);
	assert_int_equal(e[1].group, SM_FORWARD_CUSTOM);
	assert_string_equal(e[1].url, "http://adapter");
	assert_string_equal(e[1].ca_file, "/ca");
	assert_string_equal(e[1].token_file, "/t");
	assert_int_equal(e[1].timeout_ms, 250);
	assert_string_equal(sm_forward_group_to_string(SM_FORWARD_CUSTOM), "custom.metrics.k8s.io");
	assert_null(sm_forward_group_to_string(SM_FORWARD_GROUP_INVALID));
	sm_config_free(cfg);
}

static void test_restart_key(void **state)
{
	struct sm_config *a =
	    load("forward: [{group: external.metrics.k8s.io, url: 'https://a'}]\n");
	struct sm_config *b =
	    load("forward: [{group: external.metrics.k8s.io, url: 'https://a'}]\n");
	struct sm_config *c =
	    load("forward: [{group: external.metrics.k8s.io, url: 'https://b'}]\n");
	struct sm_config *d = load("server: {namespace: x}\n");
	const char *keys[4];

	(void)state;
	assert_int_equal(sm_config_restart_keys(a, b, keys, 4), 0);
	assert_int_equal(sm_config_restart_keys(a, c, keys, 4), 1);
	assert_string_equal(keys[0], "forward");
	assert_int_equal(sm_config_restart_keys(a, d, keys, 4), 1);
	assert_string_equal(keys[0], "forward");
	sm_config_free(a);
	sm_config_free(b);
	sm_config_free(c);
	sm_config_free(d);
}

/* ---- which requests go ---- */

struct decide_case {
	const char *group, *version, *path; /* path: the segments after the version */
	int expected;
};

static const struct decide_case decide_cases[] = {
    {"external.metrics.k8s.io", "v1beta1", "namespaces/default/theirs", 0},
    {"external.metrics.k8s.io", "v1beta1", "namespaces/default/ours", -1},
    {"external.metrics.k8s.io", "v1beta1", "namespaces/default", -1},
    {"external.metrics.k8s.io", "v1beta1", "namespaces/default/theirs/x", -1},
    {"external.metrics.k8s.io", "v1beta1", "nodes/default/theirs", -1},
    {"external.metrics.k8s.io", "v1beta1", "namespaces/../theirs", -1},
    {"external.metrics.k8s.io", "v1beta1", "namespaces/default/..", -1},
    {"external.metrics.k8s.io", "v1beta1", "namespaces/./theirs", -1},
    {"external.metrics.k8s.io", "v1beta1", "namespaces/a%2Fb/theirs", -1},
    /* the custom group has no entry here */
    {"custom.metrics.k8s.io", "v1beta2", "namespaces/default/pods/*/theirs", -1},
    {"custom.metrics.k8s.io", "v1beta1", "nodes/n1/theirs", -1},
    {NULL, NULL, "namespaces/default/theirs", -1},
};

static int decide(struct sm_forward *f, const struct sm_config *cfg, const struct decide_case *c)
{
	char buf[256];
	char *segs[16];
	size_t n = 0;

	(void)snprintf(buf, sizeof(buf), "%s", c->path);
	for (char *p = buf; p && n < 16;) {
		char *slash = strchr(p, '/');

		if (slash)
			*slash = '\0';
		segs[n++] = p;
		p = slash ? slash + 1 : NULL;
	}
	/* %2F stands for a decoded '/' inside a segment. */
	for (size_t i = 0; i < n; i++) {
		char *e = strstr(segs[i], "%2F");

		if (e) {
			*e = '/';
			memmove(e + 1, e + 3, strlen(e + 3) + 1);
		}
	}
	return sm_forward_decide(f, cfg, c->group, c->version, segs, n);
}

static void test_decide(void **state)
{
	struct sm_config *cfg =
	    load(REDIS "forward: [{group: external.metrics.k8s.io, url: 'https://keda'}]\n");
	struct sm_forward *f = sm_forward_new(&cfg->forward);
	size_t failed = 0;

	(void)state;
	assert_non_null(f);
	assert_int_equal(sm_forward_count(f), 1);
	assert_string_equal(sm_forward_version(f, 0, 0), "v1beta1");
	assert_null(sm_forward_version(f, 0, 1));
	for (size_t i = 0; i < sizeof(decide_cases) / sizeof(decide_cases[0]); i++) {
		int got = decide(f, cfg, &decide_cases[i]);

		if (got != decide_cases[i].expected) {
			fprintf(stderr, "decide %s %s: got %d, expected %d\n",
			        decide_cases[i].group ? decide_cases[i].group : "(none)",
			        decide_cases[i].path, got, decide_cases[i].expected);
			failed++;
		}
	}
	if (failed)
		fail_msg("%zu decide cases failed", failed);
	/* theirs is in no list yet: a refresh is asked for, once. */
	assert_true(sm_forward_take_refresh(f, 0));
	assert_false(sm_forward_take_refresh(f, 0));
	sm_forward_free(f);
	sm_config_free(cfg);
}

static void test_custom_shapes(void **state)
{
	struct sm_config *cfg =
	    load(REDIS "forward: [{group: custom.metrics.k8s.io, url: 'https://adapter'}]\n");
	struct sm_forward *f = sm_forward_new(&cfg->forward);
	static const struct decide_case cases[] = {
	    {"custom.metrics.k8s.io", "v1beta2", "namespaces/default/pods/*/theirs", 0},
	    {"custom.metrics.k8s.io", "v1beta1", "namespaces/default/metrics/theirs", 0},
	    {"custom.metrics.k8s.io", "v1beta1", "nodes/n1/theirs", 0},
	    {"custom.metrics.k8s.io", "v1beta1", "nodes/n1/ours", -1},
	    {"custom.metrics.k8s.io", "v1beta1", "namespaces/default/pods/theirs", -1},
	    {"custom.metrics.k8s.io", "v1beta1", "namespaces/default/pods/p/x/theirs", -1},
	    {"external.metrics.k8s.io", "v1beta1", "namespaces/default/theirs", -1},
	};

	(void)state;
	assert_string_equal(sm_forward_version(f, 0, 0), "v1beta2");
	assert_string_equal(sm_forward_version(f, 0, 1), "v1beta1");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (decide(f, cfg, &cases[i]) != cases[i].expected)
			fail_msg("custom case %zu '%s'", i, cases[i].path);
	}
	sm_forward_free(f);
	sm_config_free(cfg);
}

/* ---- discovery union, through the API ---- */

static const char upstream_list[] =
    "{\"kind\":\"APIResourceList\",\"apiVersion\":\"v1\","
    "\"groupVersion\":\"external.metrics.k8s.io/v1beta1\",\"resources\":["
    "{\"name\":\"theirs\",\"namespaced\":true,\"kind\":\"ExternalMetricValueList\","
    "\"verbs\":[\"get\"]},"
    "{\"name\":\"ours\",\"namespaced\":true,\"kind\":\"ExternalMetricValueList\","
    "\"verbs\":[\"get\"]},"
    "{\"name\":\"aaa_first\",\"namespaced\":true},{\"namespaced\":true}]}";

static const char other_group[] =
    "{\"kind\":\"APIResourceList\",\"groupVersion\":\"custom.metrics.k8s.io/v1beta1\","
    "\"resources\":[]}";

static void names_of(const char *body, char *buf, size_t len)
{
	cJSON *doc = cJSON_Parse(body);
	const cJSON *res;
	size_t used = 0;

	buf[0] = '\0';
	cJSON_ArrayForEach(res, cJSON_GetObjectItem(doc, "resources"))
	{
		int w = snprintf(buf + used, len - used, "%s%s", used ? "," : "",
		                 cJSON_GetObjectItem(res, "name")->valuestring);

		used += w > 0 ? (size_t)w : 0;
	}
	cJSON_Delete(doc);
}

struct clash_seen {
	char names[256];
};

static void on_clash(const char *metric, void *userdata)
{
	struct clash_seen *s = userdata;

	(void)snprintf(s->names + strlen(s->names), sizeof(s->names) - strlen(s->names), "%s;",
	               metric);
}

static void test_discovery_union(void **state)
{
	struct sm_config *cfg =
	    load(REDIS "forward: [{group: external.metrics.k8s.io, url: 'https://keda'}]\n");
	struct sm_forward *f = sm_forward_new(&cfg->forward);
	struct sm_store *st = sm_store_new(cfg);
	struct sm_api_context ctx = {.store = st, .forward = f};
	struct sm_api_request req = {.method = "GET",
	                             .path = "/apis/external.metrics.k8s.io/v1beta1",
	                             .now_mono_ms = 1000,
	                             .now_wall_ms = 1714564800000LL};
	struct sm_api_response resp = {0};
	struct sm_error err = {0};
	struct clash_seen clashes = {{0}};
	char names[256];

	(void)state;
	/* Before the first refresh: ours only, and not kept in a cache. */
	assert_int_equal(sm_api_handle(&ctx, &req, &resp), 0);
	names_of(resp.body, names, sizeof(names));
	assert_string_equal(names, "ours");
	assert_false(resp.reusable);
	sm_api_response_done(&resp);

	assert_int_equal(
	    sm_forward_set_resources(f, 0, "v1beta1", upstream_list, strlen(upstream_list), &err),
	    0);
	assert_int_equal(sm_api_handle(&ctx, &req, &resp), 0);
	names_of(resp.body, names, sizeof(names));
	assert_string_equal(names, "aaa_first,ours,theirs");
	sm_api_response_done(&resp);

	sm_forward_for_each_clash(f, 0, cfg, on_clash, &clashes);
	assert_string_equal(clashes.names, "ours;");

	/* A listed metric asks for no refresh. */
	(void)sm_forward_take_refresh(f, 0);
	req.path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/theirs";
	assert_int_equal(sm_api_handle(&ctx, &req, &resp), 0);
	assert_true(resp.forward);
	assert_int_equal(resp.forward_to, 0);
	assert_int_equal(resp.status, 503);
	assert_false(resp.reusable);
	sm_api_response_done(&resp);
	assert_false(sm_forward_take_refresh(f, 0));

	/* Not an APIResourceList of the group: refused, the last list kept. */
	assert_int_equal(sm_forward_set_resources(f, 0, "v1beta1", "[1]", 3, &err), -EPROTO);
	assert_int_equal(
	    sm_forward_set_resources(f, 0, "v1beta1", other_group, strlen(other_group), &err),
	    -EPROTO);
	assert_non_null(strstr(err.message, "not an APIResourceList of external"));
	assert_int_equal(
	    sm_forward_set_resources(f, 0, "v1beta2", upstream_list, strlen(upstream_list), &err),
	    -EPROTO);
	req.path = "/apis/external.metrics.k8s.io/v1beta1";
	assert_int_equal(sm_api_handle(&ctx, &req, &resp), 0);
	names_of(resp.body, names, sizeof(names));
	assert_string_equal(names, "aaa_first,ours,theirs");
	sm_api_response_done(&resp);

	sm_forward_clear_resources(f, 0, "v1beta1");
	assert_int_equal(sm_api_handle(&ctx, &req, &resp), 0);
	names_of(resp.body, names, sizeof(names));
	assert_string_equal(names, "ours");
	sm_api_response_done(&resp);

	sm_store_unref(st);
	sm_forward_free(f);
	sm_config_free(cfg);
}

static void test_ours_and_other_groups_answered_here(void **state)
{
	struct sm_config *cfg =
	    load(REDIS "forward: [{group: external.metrics.k8s.io, url: 'https://keda'}]\n");
	struct sm_forward *f = sm_forward_new(&cfg->forward);
	struct sm_store *st = sm_store_new(cfg);
	struct sm_api_context ctx = {.store = st, .forward = f};
	struct sm_api_request req = {.method = "GET", .now_mono_ms = 1000};
	struct sm_api_response resp = {0};
	static const char *const paths[] = {
	    "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/ours",
	    "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/%2A/theirs",
	    "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/%2E%2E",
	    "/apis/external.metrics.k8s.io/v1beta1",
	    "/healthz",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		req.path = paths[i];
		assert_int_equal(sm_api_handle(&ctx, &req, &resp), 0);
		if (resp.forward)
			fail_msg("'%s' was marked for forwarding", paths[i]);
		sm_api_response_done(&resp);
	}
	/* Without a forward table, an unknown metric is our 404. */
	ctx.forward = NULL;
	req.path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/theirs";
	assert_int_equal(sm_api_handle(&ctx, &req, &resp), 0);
	assert_false(resp.forward);
	assert_int_equal(resp.status, 404);
	sm_api_response_done(&resp);
	sm_store_unref(st);
	sm_forward_free(f);
	sm_config_free(cfg);
}

/* ---- answers ---- */

struct answer_case {
	const char *name;
	long status;
	const char *body;
	const char *why; /* NULL: passed on */
};

static const struct answer_case answer_cases[] = {
    {"list", 200,
     "{\"kind\":\"ExternalMetricValueList\",\"apiVersion\":\"external.metrics.k8s.io/v1beta1\","
     "\"metadata\":{},\"items\":[]}",
     NULL},
    {"status 404", 404, "{\"kind\":\"Status\",\"code\":404}", NULL},
    {"status 200", 200, "{\"kind\":\"Status\"}", NULL},
    {"custom list for external", 200, "{\"kind\":\"MetricValueList\",\"items\":[]}",
     "it answered HTTP 200 with kind 'MetricValueList', not a ExternalMetricValueList with "
     "items"},
    {"no items", 200, "{\"kind\":\"ExternalMetricValueList\"}",
     "it answered HTTP 200 with kind 'ExternalMetricValueList', not a ExternalMetricValueList "
     "with items"},
    {"no kind", 200, "{\"items\":[]}",
     "it answered HTTP 200 with kind '', not a ExternalMetricValueList with items"},
    {"html", 200, "<html></html>", "it answered HTTP 200 with a body that is not a JSON object"},
    {"array", 200, "[]", "it answered HTTP 200 with a body that is not a JSON object"},
    {"empty", 502, "", "it answered HTTP 502 with an empty body"},
    {"500 without Status", 500, "{\"error\":\"x\"}", "it answered HTTP 500 without a Status"},
    {"redirect", 302, "{}", "it answered HTTP 302 without a Status"},
};

static void test_check_answer(void **state)
{
	struct sm_config *cfg =
	    load("forward: [{group: external.metrics.k8s.io, url: 'https://u:pw@keda'}]\n");
	struct sm_forward *f = sm_forward_new(&cfg->forward);
	struct sm_api_response resp = {0};
	size_t failed = 0;
	cJSON *doc;

	(void)state;
	for (size_t i = 0; i < sizeof(answer_cases) / sizeof(answer_cases[0]); i++) {
		const struct answer_case *c = &answer_cases[i];
		struct sm_error err = {0};
		int r = sm_forward_check_answer(f, 0, c->status, c->body, strlen(c->body), &err);

		if (c->why ? r != -EPROTO || strcmp(err.message, c->why) != 0 : r != 0) {
			fprintf(stderr, "answer case '%s': r=%d '%s'\n", c->name, r, err.message);
			failed++;
		}
	}
	if (failed)
		fail_msg("%zu answer cases failed", failed);

	assert_string_equal(sm_forward_name(f, 0), "https://***@keda");
	assert_int_equal(sm_forward_unavailable(f, 0, "no answer within 5000ms", &resp), 0);
	assert_int_equal(resp.status, 503);
	doc = cJSON_Parse(resp.body);
	assert_string_equal(cJSON_GetObjectItem(doc, "reason")->valuestring, "ServiceUnavailable");
	assert_string_equal(cJSON_GetObjectItem(doc, "message")->valuestring,
	                    "the metric is served by 'https://***@keda' (forward for "
	                    "external.metrics.k8s.io), which did not answer: no answer within "
	                    "5000ms");
	cJSON_Delete(doc);
	sm_api_response_done(&resp);
	sm_forward_free(f);
	sm_config_free(cfg);
}

/* ---- stopping the upstream I/O (the HTTP layer stops it before MHD, frees it after) ---- */

static void never_queued(void *userdata)
{
	(void)userdata;
	fail_msg("queued() ran after sm_upstream_stop");
}

static void never_done(void *userdata, struct sm_api_response *resp, char *content_type)
{
	(void)userdata;
	(void)resp;
	(void)content_type;
	fail_msg("done() ran after sm_upstream_stop");
}

static void test_upstream_stop_then_submit(void **state)
{
	struct sm_config *cfg =
	    load(REDIS "forward: [{group: external.metrics.k8s.io, url: 'http://127.0.0.1:1'}]\n");
	struct sm_forward *f = sm_forward_new(&cfg->forward);
	struct sm_upstream_request req = {.upstream = 0, .path = "/apis/x", .query = NULL};
	struct sm_upstream *u = NULL;
	struct sm_error err = {0};

	(void)state;
	assert_non_null(f);
	assert_int_equal(sm_upstream_start(f, NULL, &u, &err), 0);
	sm_upstream_stop(u);
	/* An HTTP thread still serving a keep-alive connection: refused, u still valid. */
	assert_int_equal(sm_upstream_submit(u, &req, never_queued, never_done, NULL), -ESHUTDOWN);
	sm_upstream_stop(u);
	assert_int_equal(sm_upstream_submit(u, &req, never_queued, never_done, NULL), -ESHUTDOWN);
	sm_upstream_free(u);
	sm_upstream_stop(NULL);
	sm_upstream_free(NULL);
	sm_forward_free(f);
	sm_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_cases),
	    cmocka_unit_test(test_config_values),
	    cmocka_unit_test(test_restart_key),
	    cmocka_unit_test(test_decide),
	    cmocka_unit_test(test_custom_shapes),
	    cmocka_unit_test(test_discovery_union),
	    cmocka_unit_test(test_ours_and_other_groups_answered_here),
	    cmocka_unit_test(test_check_answer),
	    cmocka_unit_test(test_upstream_stop_then_submit),
	};

	sm_config_set_source_parser(sm_source_config_parse);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
