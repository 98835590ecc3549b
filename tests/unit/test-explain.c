/* SPDX-License-Identifier: MIT */
/* `explain`'s offline parts: reading an HPA document, the paths the HPA controller GETs,
 * the RESTMapper's plural guess, discovery, and how a failed answer is quoted. The HTTP and
 * the printed report are covered by tests/integration/test_explain.py. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/error.h"
#include "scalemetrics/hpa.h"

#include "../../src/cli/explain-internal.h"

static void test_object_resource(void **state)
{
	char buf[300];

	(void)state;
	assert_int_equal(sm_explain_object_resource("Deployment", "apps/v1", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "deployments.apps");
	assert_int_equal(
	    sm_explain_object_resource("Ingress", "networking.k8s.io/v1", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ingresses.networking.k8s.io");
	assert_int_equal(
	    sm_explain_object_resource("NetworkPolicy", "networking.k8s.io/v1", buf, sizeof(buf)),
	    0);
	assert_string_equal(buf, "networkpolicies.networking.k8s.io");
	/* The core group has no ".group". */
	assert_int_equal(sm_explain_object_resource("Service", "v1", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "services");
	assert_int_equal(sm_explain_object_resource("Pod", NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "pods");
	assert_int_equal(sm_explain_object_resource("", "v1", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sm_explain_object_resource("Deployment", "apps/v1", buf, 8),
	                 -ENAMETOOLONG);
}

static void test_build_path(void **state)
{
	struct sm_explain_hpa h = {.namespace = "prod"};
	struct sm_explain_metric m = {
	    .type = SM_HPA_METRIC_EXTERNAL,
	    .name = "redis_queue_length",
	    .selector = "queue in (emails,sms)",
	};
	char path[1024];

	(void)state;
	assert_int_equal(sm_explain_build_path(&h, &m, NULL, "", path, sizeof(path)), 0);
	assert_string_equal(path, "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/"
	                          "redis_queue_length?labelSelector=queue+in+%28emails%2Csms%29");

	/* Pods: the wildcard as %2A, both selectors, in key order. */
	m.type = SM_HPA_METRIC_PODS;
	m.selector = "queue=emails";
	assert_int_equal(sm_explain_build_path(&h, &m, "v1beta2", "app=worker", path, sizeof(path)),
	                 0);
	assert_string_equal(path, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/prod/pods/%2A/"
	                          "redis_queue_length?labelSelector=app%3Dworker&"
	                          "metricLabelSelector=queue%3Demails");

	/* Object: the plural resource with its group; a path segment keeps ':' and '@'. */
	m.type = SM_HPA_METRIC_OBJECT;
	m.selector = "";
	m.object_kind = "Deployment";
	m.object_api_version = "apps/v1";
	m.object_name = "worker a:b@c";
	assert_int_equal(sm_explain_build_path(&h, &m, "v1beta1", "", path, sizeof(path)), 0);
	assert_string_equal(path, "/apis/custom.metrics.k8s.io/v1beta1/namespaces/prod/"
	                          "deployments.apps/worker%20a:b@c/redis_queue_length");

	/* A Namespace object is always the HPA's own namespace. */
	m.object_kind = "Namespace";
	m.object_name = "elsewhere";
	assert_int_equal(sm_explain_build_path(&h, &m, "v1beta2", "", path, sizeof(path)), 0);
	assert_string_equal(path, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/prod/metrics/"
	                          "redis_queue_length");

	assert_int_equal(sm_explain_build_path(&h, &m, "v1beta2", "", path, 20), -ENAMETOOLONG);
	m.type = SM_HPA_METRIC_RESOURCE;
	assert_int_equal(sm_explain_build_path(&h, &m, "v1beta2", "", path, sizeof(path)), -EINVAL);
}

static void test_failure(void **state)
{
	static const char status[] = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":"
	                             "\"Failure\",\"message\":\"no such metric\",\"reason\":"
	                             "\"NotFound\",\"code\":404}";
	char big[1000];
	struct sm_error err = {0};

	(void)state;
	sm_explain_failure(404, status, strlen(status), &err);
	assert_string_equal(err.message, "HTTP 404 NotFound: no such metric");

	sm_error_clear(&err);
	sm_explain_failure(502, "bad\ngateway\r\n", 13, &err);
	assert_string_equal(err.message, "HTTP 502: bad gateway  ");

	/* A long body is cut to 300 bytes. */
	memset(big, 'x', sizeof(big));
	sm_error_clear(&err);
	sm_explain_failure(500, big, sizeof(big), &err);
	assert_int_equal(strlen(err.message), strlen("HTTP 500: ") + 300);

	sm_error_clear(&err);
	sm_explain_failure(503, NULL, 0, &err);
	assert_string_equal(err.message, "HTTP 503: ");
}

static void test_preferred_version(void **state)
{
	cJSON *doc = cJSON_Parse("{\"kind\":\"APIGroupList\",\"groups\":["
	                         "{\"name\":\"apps\",\"preferredVersion\":{\"version\":\"v1\"}},"
	                         "{\"name\":\"custom.metrics.k8s.io\",\"preferredVersion\":{"
	                         "\"version\":\"v1beta1\"}}]}");
	cJSON *none = cJSON_Parse("{\"kind\":\"APIGroupList\",\"groups\":[]}");

	(void)state;
	assert_string_equal(sm_explain_preferred_version(doc), "v1beta1");
	assert_null(sm_explain_preferred_version(none));
	assert_null(sm_explain_preferred_version(NULL));
	cJSON_Delete(doc);
	cJSON_Delete(none);
}

static void test_milli_text(void **state)
{
	char buf[40];

	(void)state;
	assert_string_equal(sm_explain_milli_text(37000, buf), "37");
	assert_string_equal(sm_explain_milli_text(1500, buf), "1.5");
	assert_string_equal(sm_explain_milli_text(-2, buf), "-0.002");
	assert_string_equal(sm_explain_milli_text(0, buf), "0");
	assert_string_equal(sm_explain_milli_text(INT64_MIN, buf), "-9223372036854775.808");
}

/* Loads the first document of text into *doc. */
static void load(const char *text, yaml_document_t *doc)
{
	yaml_parser_t p;

	assert_true(yaml_parser_initialize(&p));
	yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
	assert_true(yaml_parser_load(&p, doc));
	yaml_parser_delete(&p);
}

static const char hpa_list[] = "kind: List\n"
                               "items:\n"
                               "- apiVersion: autoscaling/v2\n"
                               "  kind: HorizontalPodAutoscaler\n"
                               "  metadata: {name: worker}\n"
                               "  spec:\n"
                               "    maxReplicas: 10\n"
                               "    behavior: {}\n"
                               "    metrics:\n"
                               "    - type: External\n"
                               "      external:\n"
                               "        metric:\n"
                               "          name: redis_queue_length\n"
                               "          selector:\n"
                               "            matchLabels: {queue: emails}\n"
                               "            matchExpressions:\n"
                               "            - {key: tier, operator: NotIn, values: [b, a]}\n"
                               "            - {key: canary, operator: DoesNotExist}\n"
                               "        target: {type: AverageValue, averageValue: 1500m}\n"
                               "    - type: Pods\n"
                               "      pods:\n"
                               "        metric: {name: backlog}\n"
                               "        target: {type: AverageValue, averageValue: \"-1\"}\n"
                               "    - type: Object\n"
                               "      object:\n"
                               "        metric: {name: backlog}\n"
                               "        describedObject: {kind: Deployment}\n"
                               "        target: {type: Value, value: \"3\"}\n"
                               "  status: {currentReplicas: 4}\n"
                               "- apiVersion: v1\n"
                               "  kind: ConfigMap\n";

static void test_doc_hpa(void **state)
{
	struct sm_explain_options opt = {0};
	struct sm_explain_hpa h;
	yaml_document_t doc;
	struct sm_explain_doc d = {.doc = &doc, .file = "hpa.yaml"};

	(void)state;
	load(hpa_list, &doc);
	assert_int_equal(sm_explain_doc_count(&d), 2);
	assert_int_equal(sm_explain_doc_hpa(&d, 0, &opt, &h), 0);
	assert_string_equal(h.name, "worker");
	assert_string_equal(h.namespace, "default");
	assert_int_equal(h.min_replicas, 1);
	assert_int_equal(h.max_replicas, 10);
	assert_int_equal(h.current, 4);
	assert_true(h.has_behavior);
	assert_int_equal(h.n_metrics, 3);
	/* Canonical selector: sorted by key, values sorted. */
	assert_string_equal(h.metrics[0].selector, "!canary,queue=emails,tier notin (a,b)");
	assert_int_equal(h.metrics[0].target_type, SM_HPA_TARGET_AVERAGE_VALUE);
	assert_int_equal(h.metrics[0].target_milli, 1500);
	assert_string_equal(h.metrics[0].error, "");
	/* Unusable metrics keep their error, to be reported in their place. */
	assert_string_equal(h.metrics[1].error, "target.averageValue must be positive");
	assert_string_equal(h.metrics[2].error, "object.describedObject needs kind and name");
	sm_explain_hpa_done(&h);

	/* --namespace and --current-replicas win over the document. */
	opt.namespace = "prod";
	opt.has_current = true;
	opt.current = 0;
	assert_int_equal(sm_explain_doc_hpa(&d, 0, &opt, &h), 0);
	assert_string_equal(h.namespace, "prod");
	assert_int_equal(h.current, 0);
	assert_string_equal(h.current_from, "--current-replicas");
	sm_explain_hpa_done(&h);

	/* Not an HPA. */
	assert_int_equal(sm_explain_doc_hpa(&d, 1, &opt, &h), -EINVAL);
	sm_explain_hpa_done(&h);
	yaml_document_delete(&doc);
}

static void test_doc_hpa_invalid(void **state)
{
	static const char *const bad[] = {
	    /* autoscaling/v1 has no custom metrics */
	    "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nspec: {maxReplicas: 1}\n",
	    /* maxReplicas below minReplicas */
	    "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n"
	    "spec: {minReplicas: 3, maxReplicas: 2, metrics: [{type: External}]}\n"
	    "status: {currentReplicas: 1}\n",
	    /* no status and no --current-replicas */
	    "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n"
	    "spec: {maxReplicas: 2, metrics: [{type: External}]}\n",
	    /* no metrics */
	    "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n"
	    "spec: {maxReplicas: 2}\nstatus: {currentReplicas: 1}\n",
	};
	struct sm_explain_options opt = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		yaml_document_t doc;
		struct sm_explain_doc d = {.doc = &doc, .file = "bad.yaml"};
		struct sm_explain_hpa h;

		load(bad[i], &doc);
		assert_int_equal(sm_explain_doc_count(&d), 1);
		assert_int_equal(sm_explain_doc_hpa(&d, 0, &opt, &h), -EINVAL);
		sm_explain_hpa_done(&h);
		yaml_document_delete(&doc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_object_resource), cmocka_unit_test(test_build_path),
	    cmocka_unit_test(test_failure),         cmocka_unit_test(test_preferred_version),
	    cmocka_unit_test(test_milli_text),      cmocka_unit_test(test_doc_hpa),
	    cmocka_unit_test(test_doc_hpa_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
