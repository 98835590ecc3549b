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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

	/* Not in a cluster and nothing configured (no $KUBECONFIG, no ~/.kube/config). */
	assert_int_equal(unsetenv("KUBERNETES_SERVICE_HOST"), 0);
	assert_int_equal(unsetenv("KUBECONFIG"), 0);
	assert_int_equal(setenv("HOME", "/nonexistent", 1), 0);
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

static char dir[256];

static void put(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void rm(const char *rel)
{
	char path[512];

	(void)snprintf(path, sizeof(path), "%s/%s", dir, rel);
	(void)unlink(path);
	(void)rmdir(path);
}

#define KUBECONFIG(name, server, user_body)                                                        \
	"apiVersion: v1\n"                                                                         \
	"kind: Config\n"                                                                           \
	"clusters:\n"                                                                              \
	"- name: " name "\n"                                                                       \
	"  cluster:\n"                                                                             \
	"    server: " server "\n"                                                                 \
	"    tls-server-name: api.internal\n"                                                      \
	"contexts:\n"                                                                              \
	"- name: " name "\n"                                                                       \
	"  context: {cluster: " name ", user: " name "}\n"                                         \
	"current-context: " name "\n"                                                              \
	"users:\n"                                                                                 \
	"- name: " name "\n"                                                                       \
	"  user:\n" user_body

/* Which of kubernetes.kubeconfig, kubernetes.server, the service account, $KUBECONFIG and
 * ~/.kube/config wins (kube.h), and the explicit keys over a kubeconfig. */
static void test_kubeconfig_precedence(void **state)
{
	struct sm_kube_client *c = NULL;
	struct sm_error err = {0};
	struct sm_kube_options o = {0};
	char path[512], home[512], env[1100], want[1200];

	(void)state;
	(void)snprintf(dir, sizeof(dir), "/tmp/test-kube-XXXXXX");
	assert_non_null(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/.kube", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	put("token", "t\n");
	put("a.yaml", KUBECONFIG("a", "https://a.example:6443/", "    tokenFile: token\n"));
	put("b.yaml", KUBECONFIG("b", "https://b.example", "    token: inline\n"));
	put("exec.yaml", KUBECONFIG("e", "https://e.example", "    exec:\n      command: aws\n"));
	(void)snprintf(path, sizeof(path), "%s/a.yaml", dir);
	(void)snprintf(home, sizeof(home), "%s", dir);
	assert_int_equal(unsetenv("KUBECONFIG"), 0);
	assert_int_equal(setenv("HOME", home, 1), 0);
	assert_int_equal(setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1), 0);
	assert_int_equal(setenv("KUBERNETES_SERVICE_PORT", "443", 1), 0);

	/* kubernetes.kubeconfig, even in a cluster. */
	o.kubeconfig = path;
	assert_int_equal(sm_kube_client_new(&o, &c, &err), 0);
	assert_string_equal(sm_kube_client_server(c), "https://a.example:6443");
	(void)snprintf(want, sizeof(want), "kubeconfig '%s', context 'a'", path);
	assert_string_equal(sm_kube_client_origin(c), want);
	sm_kube_client_free(c);
	c = NULL;

	/* kubernetes.server replaces the kubeconfig's. */
	o.server = "http://127.0.0.1:8001";
	assert_int_equal(sm_kube_client_new(&o, &c, &err), 0);
	assert_string_equal(sm_kube_client_server(c), "http://127.0.0.1:8001");
	sm_kube_client_free(c);
	c = NULL;

	/* A context the kubeconfig lacks. */
	o.server = NULL;
	o.context = "b";
	assert_int_equal(sm_kube_client_new(&o, &c, &err), -EINVAL);
	(void)snprintf(want, sizeof(want),
	               "kubeconfig %s: context 'b' is not in the kubeconfig (contexts: 'a')", path);
	assert_string_equal(err.message, want);
	assert_null(c);

	/* Its position goes into the message (main shows only the message). */
	(void)snprintf(path, sizeof(path), "%s/exec.yaml", dir);
	o.context = NULL;
	assert_int_equal(sm_kube_client_new(&o, &c, &err), -EOPNOTSUPP);
	(void)snprintf(want, sizeof(want), "kubeconfig %s:15:5: user 'e' uses an exec", path);
	assert_memory_equal(err.message, want, strlen(want));
	assert_string_equal(err.file, "");
	assert_null(c);

	/* kubernetes.server alone reads no kubeconfig, and a context means nothing there. */
	o.kubeconfig = NULL;
	o.server = "https://explicit:6443";
	assert_int_equal(sm_kube_client_new(&o, &c, &err), 0);
	assert_string_equal(sm_kube_client_origin(c), "kubernetes.server");
	sm_kube_client_free(c);
	c = NULL;
	o.context = "a";
	assert_int_equal(sm_kube_client_new(&o, &c, &err), -EINVAL);
	assert_non_null(strstr(err.message, "kubernetes.context 'a' needs a kubeconfig"));
	o.context = NULL;
	o.server = NULL;

	/* In a cluster, the service account wins over $KUBECONFIG... */
	(void)snprintf(env, sizeof(env), "%s/missing.yaml:%s/b.yaml:%s/a.yaml", dir, dir, dir);
	assert_int_equal(setenv("KUBECONFIG", env, 1), 0);
	assert_int_equal(sm_kube_client_new(&o, &c, &err), 0);
	assert_string_equal(sm_kube_client_server(c), "https://10.96.0.1:443");
	assert_string_equal(sm_kube_client_origin(c), "the in-cluster service account");
	sm_kube_client_free(c);
	c = NULL;

	/* ...unless a context is asked for. */
	o.context = "a";
	assert_int_equal(sm_kube_client_new(&o, &c, &err), 0);
	assert_string_equal(sm_kube_client_server(c), "https://a.example:6443");
	(void)snprintf(want, sizeof(want), "$KUBECONFIG '%s', context 'a'", env);
	assert_string_equal(sm_kube_client_origin(c), want);
	sm_kube_client_free(c);
	c = NULL;
	o.context = NULL;

	/* Outside one, $KUBECONFIG: the first current-context of the merged files. */
	assert_int_equal(unsetenv("KUBERNETES_SERVICE_HOST"), 0);
	assert_int_equal(sm_kube_client_new(&o, &c, &err), 0);
	assert_string_equal(sm_kube_client_server(c), "https://b.example");
	sm_kube_client_free(c);
	c = NULL;

	/* Else ~/.kube/config. */
	assert_int_equal(unsetenv("KUBECONFIG"), 0);
	assert_int_equal(sm_kube_client_new(&o, &c, &err), -EINVAL);
	assert_non_null(strstr(err.message, "no Kubernetes API server"));
	put(".kube/config", KUBECONFIG("home", "https://home.example:443", "    token: x\n"));
	assert_int_equal(sm_kube_client_new(&o, &c, &err), 0);
	assert_string_equal(sm_kube_client_server(c), "https://home.example:443");
	(void)snprintf(want, sizeof(want), "kubeconfig '%s/.kube/config', context 'home'", dir);
	assert_string_equal(sm_kube_client_origin(c), want);
	sm_kube_client_free(c);
	c = NULL;

	/* A context and no kubeconfig anywhere. */
	rm(".kube/config");
	o.context = "a";
	assert_int_equal(sm_kube_client_new(&o, &c, &err), -EINVAL);
	assert_non_null(strstr(err.message, "kubernetes.context 'a' is set, but there is no "
	                                    "kubeconfig"));

	rm(".kube");
	rm("token");
	rm("a.yaml");
	rm("b.yaml");
	rm("exec.yaml");
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pod_list),
	    cmocka_unit_test(test_not_a_pod_list),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_client_resolution),
	    cmocka_unit_test(test_kubeconfig_precedence),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
