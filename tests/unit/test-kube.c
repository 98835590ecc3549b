/* SPDX-License-Identifier: MIT */
/* The Kubernetes client's offline parts: PodList parsing (which pods can serve), escaping,
 * server resolution. The HTTP side is covered by tests/integration/test_scrape.py. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/kube.h"

/* A PodList as the API server sends it (trimmed of fields nobody reads). */
static const char pod_list[] =
    "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"4711\"},"
    "\"items\":["
    /* Ready and running: kept. */
    "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"prod\",\"uid\":\"u-1\","
    "\"labels\":{\"app\":\"web\",\"pod-template-hash\":\"7d9\"}},"
    "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.2.3\",\"podIPs\":[{\"ip\":\"10.1.2.3\"}],"
    "\"conditions\":[{\"type\":\"Initialized\",\"status\":\"True\"},"
    "{\"type\":\"Ready\",\"status\":\"True\"}]}},"
    /* Running, not ready. */
    "{\"metadata\":{\"name\":\"web-2\",\"namespace\":\"prod\",\"uid\":\"u-2\"},"
    "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.2.4\","
    "\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}]}},"
    /* Pending, no IP yet. */
    "{\"metadata\":{\"name\":\"web-3\",\"namespace\":\"prod\",\"uid\":\"u-3\"},"
    "\"status\":{\"phase\":\"Pending\",\"conditions\":[{\"type\":\"PodScheduled\","
    "\"status\":\"True\"}]}},"
    /* Finished. */
    "{\"metadata\":{\"name\":\"job-1\",\"namespace\":\"prod\",\"uid\":\"u-4\"},"
    "\"status\":{\"phase\":\"Succeeded\",\"podIP\":\"10.1.2.5\","
    "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}},"
    /* Ready, IPv6, no labels: kept. */
    "{\"metadata\":{\"name\":\"web-4\",\"namespace\":\"prod\",\"uid\":\"u-5\"},"
    "\"status\":{\"phase\":\"Running\",\"podIP\":\"fd00::5\","
    "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}},"
    /* Ready but no conditions at all (impossible in practice): dropped. */
    "{\"metadata\":{\"name\":\"odd\",\"namespace\":\"prod\"},"
    "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.2.6\"}}"
    "]}";

static void test_pod_list(void **state)
{
	struct sm_kube_pod_list l = {0};
	struct sm_error err = {0};
	cJSON *doc = cJSON_Parse(pod_list);

	(void)state;
	assert_non_null(doc);
	assert_int_equal(sm_kube_pod_list_from_json(doc, &l, &err), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.resource_version, "4711");
	assert_string_equal(l.items[0].name, "web-1");
	assert_string_equal(l.items[0].namespace, "prod");
	assert_string_equal(l.items[0].uid, "u-1");
	assert_string_equal(l.items[0].ip, "10.1.2.3");
	assert_int_equal(l.items[0].n_labels, 2);
	assert_string_equal(l.items[0].labels[0].name, "app");
	assert_string_equal(l.items[0].labels[0].value, "web");
	assert_string_equal(l.items[0].labels[1].name, "pod-template-hash");
	assert_string_equal(l.items[1].name, "web-4");
	assert_string_equal(l.items[1].ip, "fd00::5");
	assert_int_equal(l.items[1].n_labels, 0);
	sm_kube_pod_list_done(&l);
	sm_kube_pod_list_done(&l); /* idempotent */
	cJSON_Delete(doc);
}

static void test_not_a_pod_list(void **state)
{
	struct sm_kube_pod_list l = {.n = 77};
	struct sm_error err = {0};
	cJSON *doc = cJSON_Parse("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"code\":403}");

	(void)state;
	assert_int_equal(sm_kube_pod_list_from_json(doc, &l, &err), -EPROTO);
	assert_int_equal(l.n, 77); /* untouched */
	assert_non_null(strstr(err.message, "Status"));
	cJSON_Delete(doc);

	doc = cJSON_Parse("{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{},"
	                  "\"items\":null}");
	assert_int_equal(sm_kube_pod_list_from_json(doc, &l, &err), 0);
	assert_int_equal(l.n, 0);
	sm_kube_pod_list_done(&l);
	cJSON_Delete(doc);
}

static void test_escape(void **state)
{
	char *e = sm_kube_escape("app=web,tier in (a,b)");

	(void)state;
	assert_string_equal(e, "app%3Dweb%2Ctier%20in%20%28a%2Cb%29");
	free(e);
}

static void test_client_resolution(void **state)
{
	struct sm_kube_client *c = NULL;
	struct sm_error err = {0};
	struct sm_kube_options o = {.server = "http://127.0.0.1:8001//"};

	(void)state;
	assert_int_equal(sm_kube_client_new(&o, &c, &err), 0);
	assert_string_equal(sm_kube_client_server(c), "http://127.0.0.1:8001");
	sm_kube_client_free(c);
	c = NULL;

	o.server = "ftp://x";
	assert_int_equal(sm_kube_client_new(&o, &c, &err), -EINVAL);
	assert_null(c);

	/* A kubeconfig is not read yet: said so, never silently ignored. */
	o.server = NULL;
	o.kubeconfig = "/root/.kube/config";
	assert_int_equal(sm_kube_client_new(&o, &c, &err), -EINVAL);
	assert_non_null(strstr(err.message, "not supported"));
	o.kubeconfig = NULL;

	/* Not in a cluster and nothing configured. */
	assert_int_equal(unsetenv("KUBERNETES_SERVICE_HOST"), 0);
	o.server = NULL;
	assert_int_equal(sm_kube_client_new(&o, &c, &err), -EINVAL);
	assert_non_null(strstr(err.message, "KUBERNETES_SERVICE_HOST"));
	assert_null(c);

	/* In a cluster: the service host and port, https, brackets for IPv6. */
	assert_int_equal(setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1), 0);
	assert_int_equal(setenv("KUBERNETES_SERVICE_PORT", "443", 1), 0);
	assert_int_equal(sm_kube_client_new(&o, &c, &err), 0);
	assert_string_equal(sm_kube_client_server(c), "https://[fd00::1]:443");
	sm_kube_client_free(c);
	sm_kube_client_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pod_list),
	    cmocka_unit_test(test_not_a_pod_list),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_client_resolution),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
