/* SPDX-License-Identifier: MIT */
/* The kubeconfig reader: kubeconfigs as kubectl and kind write them, each case with what it
 * resolves to or the exact error and its position; kubectl's merge of several files. */
/* cmocka.h needs these first, so the includes keep this order */
/* clang-format off */
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

#include <cmocka.h>
/* clang-format on */

#include "scalemetrics/kubeconfig.h"

/* PEM texts and their base64, as the -data fields hold them. */
#define CA_PEM "-----BEGIN CERTIFICATE-----\nTUlJQ0E=\n-----END CERTIFICATE-----\n"
#define CA_B64                                                                                     \
	"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClRVbEpRMEU9Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nY2xpZW50\n-----END CERTIFICATE-----\n"
#define CERT_B64                                                                                   \
	"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClkyeHBaVzUwCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
#define KEY_PEM "-----BEGIN EC PRIVATE KEY-----\na2V5\n-----END EC PRIVATE KEY-----\n"
#define KEY_B64                                                                                    \
	"LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCmEyVjUKLS0tLS1FTkQgRUMgUFJJVkFURSBLRVktLS0tLQo="

/* `kubectl config view --raw` of a kind cluster, plus a second cluster and token user the way
 * `kubectl config set-cluster/set-credentials/set-context` add them. */
static const char kind_raw[] = "apiVersion: v1\n"
                               "clusters:\n"
                               "- cluster:\n"
                               "    certificate-authority-data: " CA_B64 "\n"
                               "    server: https://127.0.0.1:41203\n"
                               "  name: kind-kind\n"
                               "- cluster:\n"
                               "    certificate-authority: ../certs/ca.crt\n"
                               "    proxy-url: socks5://127.0.0.1:1080\n"
                               "    server: https://10.0.0.1:6443/prefix\n"
                               "    tls-server-name: api.staging.internal\n"
                               "  name: staging\n"
                               "contexts:\n"
                               "- context:\n"
                               "    cluster: kind-kind\n"
                               "    user: kind-kind\n"
                               "  name: kind-kind\n"
                               "- context:\n"
                               "    cluster: staging\n"
                               "    namespace: jobs\n"
                               "    user: deployer\n"
                               "  name: staging\n"
                               "current-context: kind-kind\n"
                               "kind: Config\n"
                               "preferences: {}\n"
                               "users:\n"
                               "- name: kind-kind\n"
                               "  user:\n"
                               "    client-certificate-data: " CERT_B64 "\n"
                               "    client-key-data: " KEY_B64 "\n"
                               "- name: deployer\n"
                               "  user:\n"
                               "    token: s3cret-token\n";

/* The same shape as `kubectl config view --raw -o json` prints it. */
static const char kind_json[] =
    "{\n"
    "    \"kind\": \"Config\",\n"
    "    \"apiVersion\": \"v1\",\n"
    "    \"preferences\": {},\n"
    "    \"clusters\": [{\"name\": \"kind-kind\", \"cluster\": {\"server\": "
    "\"https://127.0.0.1:41203\", \"certificate-authority-data\": \"" CA_B64 "\"}}],\n"
    "    \"users\": [{\"name\": \"kind-kind\", \"user\": {\"token\": \"json-token\"}}],\n"
    "    \"contexts\": [{\"name\": \"kind-kind\", \"context\": {\"cluster\": \"kind-kind\", "
    "\"user\": \"kind-kind\"}}],\n"
    "    \"current-context\": \"kind-kind\"\n"
    "}\n";

/* One cluster, one context, and a user whose body is the case's. */
#define WITH_USER(user_body)                                                                       \
	"apiVersion: v1\n"                                                                         \
	"kind: Config\n"                                                                           \
	"clusters:\n"                                                                              \
	"- name: c\n"                                                                              \
	"  cluster:\n"                                                                             \
	"    server: https://127.0.0.1:6443\n"                                                     \
	"contexts:\n"                                                                              \
	"- name: x\n"                                                                              \
	"  context: {cluster: c, user: u}\n"                                                       \
	"current-context: x\n"                                                                     \
	"users:\n"                                                                                 \
	"- name: u\n"                                                                              \
	"  user:\n" user_body

/* Line 14 onwards is user_body. */
#define USER_LINE 14

/* One user, one context, and a cluster whose body is the case's (line 6 onwards). */
#define WITH_CLUSTER(cluster_body)                                                                 \
	"apiVersion: v1\n"                                                                         \
	"kind: Config\n"                                                                           \
	"clusters:\n"                                                                              \
	"- name: c\n"                                                                              \
	"  cluster:\n" cluster_body "contexts:\n"                                                  \
	"- name: x\n"                                                                              \
	"  context: {cluster: c, user: u}\n"                                                       \
	"current-context: x\n"                                                                     \
	"users:\n"                                                                                 \
	"- name: u\n"                                                                              \
	"  user: {token: t}\n"

struct kc_case {
	const char *name;
	const char *yaml;
	const char *context; /* NULL: current-context */
	int rc;
	/* On error: a part of the message, and the position (0: none). */
	const char *error;
	unsigned line, column;
	/* On success ("" expects NULL; paths are relative to the test's directory). */
	const char *server, *used_context, *user, *sni, *proxy, *token, *token_file;
	const char *ca_pem, *ca_file, *cert_pem, *cert_file, *key_pem, *key_file;
	bool insecure;
};

static const struct kc_case cases[] = {
    {.name = "kind current-context",
     .yaml = kind_raw,
     .server = "https://127.0.0.1:41203",
     .used_context = "kind-kind",
     .user = "kind-kind",
     .ca_pem = CA_PEM,
     .cert_pem = CERT_PEM,
     .key_pem = KEY_PEM},
    {.name = "context \"\": current-context",
     .yaml = kind_raw,
     .context = "",
     .server = "https://127.0.0.1:41203",
     .used_context = "kind-kind",
     .user = "kind-kind",
     .ca_pem = CA_PEM,
     .cert_pem = CERT_PEM,
     .key_pem = KEY_PEM},
    {.name = "named context, relative CA, token",
     .yaml = kind_raw,
     .context = "staging",
     .server = "https://10.0.0.1:6443/prefix",
     .used_context = "staging",
     .user = "deployer",
     .sni = "api.staging.internal",
     .proxy = "socks5://127.0.0.1:1080",
     .token = "s3cret-token",
     .ca_file = "kc/../certs/ca.crt"},
    {.name = "kubectl -o json",
     .yaml = kind_json,
     .server = "https://127.0.0.1:41203",
     .used_context = "kind-kind",
     .user = "kind-kind",
     .token = "json-token",
     .ca_pem = CA_PEM},
    {.name = "named context missing",
     .yaml = kind_raw,
     .context = "prod",
     .rc = -EINVAL,
     .error = "context 'prod' is not in the kubeconfig (contexts: 'kind-kind', 'staging')"},
    {.name = "current-context missing",
     .yaml = "kind: Config\n"
             "current-context: gone\n"
             "contexts: []\n",
     .rc = -EINVAL,
     .error = "context 'gone' is not in the kubeconfig (it has no contexts)",
     .line = 2,
     .column = 18},
    {.name = "no current-context",
     .yaml = "apiVersion: v1\nclusters: null\ncontexts: null\ncurrent-context: \"\"\nkind: "
             "Config\npreferences: {}\nusers: null\n",
     .rc = -EINVAL,
     .error = "no current-context in the kubeconfig, and kubernetes.context is not set"},
    {.name = "empty file", .yaml = "", .rc = -EINVAL, .error = "no current-context"},
    {.name = "exec plugin",
     .yaml = WITH_USER("    exec:\n"
                       "      apiVersion: client.authentication.k8s.io/v1beta1\n"
                       "      args: null\n"
                       "      command: gke-gcloud-auth-plugin\n"
                       "      env: null\n"
                       "      provideClusterInfo: true\n"),
     .rc = -EOPNOTSUPP,
     .error = "user 'u' uses an exec credential plugin, which scalemetrics does not run; give "
              "it a token ('token' or 'tokenFile'",
     .line = USER_LINE,
     .column = 5},
    {.name = "exec plugin of another user",
     .yaml = WITH_USER("    token: t\n"
                       "- name: gke\n"
                       "  user:\n"
                       "    exec: {command: gke-gcloud-auth-plugin}\n"),
     .server = "https://127.0.0.1:6443",
     .used_context = "x",
     .user = "u",
     .token = "t"},
    {.name = "auth-provider",
     .yaml = WITH_USER("    auth-provider:\n"
                       "      name: oidc\n"),
     .rc = -EOPNOTSUPP,
     .error = "an auth-provider plugin",
     .line = USER_LINE,
     .column = 5},
    {.name = "basic auth",
     .yaml = WITH_USER("    username: admin\n"
                       "    password: secret\n"),
     .rc = -EOPNOTSUPP,
     .error = "basic authentication",
     .line = USER_LINE + 1},
    {.name = "impersonation",
     .yaml = WITH_USER("    token: t\n"
                       "    as: system:admin\n"),
     .rc = -EOPNOTSUPP,
     .error = "impersonation ('as')",
     .line = USER_LINE + 1,
     .column = 5},
    {.name = "bad base64",
     .yaml = WITH_USER("    client-certificate-data: " CERT_B64 "\n"
                       "    client-key-data: not*base64\n"),
     .rc = -EINVAL,
     .error = "'client-key-data' of user 'u' is not valid base64",
     .line = USER_LINE + 1,
     .column = 22},
    {.name = "base64 cut short",
     .yaml = WITH_USER("    client-certificate-data: LS0tLS1\n"
                       "    client-key-data: " KEY_B64 "\n"),
     .rc = -EINVAL,
     .error = "'client-certificate-data' of user 'u' is not valid base64",
     .line = USER_LINE,
     .column = 30},
    {.name = "base64 of something else",
     .yaml = WITH_USER("    client-certificate-data: aGVsbG8gd29ybGQ=\n"
                       "    client-key-data: " KEY_B64 "\n"),
     .rc = -EINVAL,
     .error = "'client-certificate-data' of user 'u' does not hold PEM",
     .line = USER_LINE},
    {.name = "relative client files",
     .yaml = WITH_USER("    client-certificate: ../certs/client.crt\n"
                       "    client-key: ../certs/client.key\n"),
     .server = "https://127.0.0.1:6443",
     .used_context = "x",
     .user = "u",
     .cert_file = "kc/../certs/client.crt",
     .key_file = "kc/../certs/client.key"},
    {.name = "data wins over file",
     .yaml = WITH_USER("    client-certificate: /nonexistent/client.crt\n"
                       "    client-certificate-data: " CERT_B64 "\n"
                       "    client-key: ../certs/client.key\n"),
     .server = "https://127.0.0.1:6443",
     .used_context = "x",
     .user = "u",
     .cert_pem = CERT_PEM,
     .key_file = "kc/../certs/client.key"},
    {.name = "certificate without key",
     .yaml = WITH_USER("    client-certificate: ../certs/client.crt\n"),
     .rc = -EINVAL,
     .error = "user 'u' has a client certificate without a client key",
     .line = USER_LINE},
    {.name = "tokenFile, relative",
     .yaml = WITH_USER("    tokenFile: token\n"),
     .server = "https://127.0.0.1:6443",
     .used_context = "x",
     .user = "u",
     .token_file = "kc/token"},
    {.name = "token and tokenFile: the file wins",
     .yaml = WITH_USER("    token: inline\n"
                       "    tokenFile: token\n"),
     .server = "https://127.0.0.1:6443",
     .used_context = "x",
     .user = "u",
     .token_file = "kc/token"},
    {.name = "tokenFile missing",
     .yaml = WITH_USER("    tokenFile: nope\n"),
     .rc = -ENOENT,
     .error = "'tokenFile' of user 'u' '",
     .line = USER_LINE,
     .column = 16},
    {.name = "user not defined: no credentials",
     .yaml = "kind: Config\n"
             "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:8001'}}]\n"
             "contexts: [{name: x, context: {cluster: c, user: ghost}}]\n"
             "current-context: x\n",
     .server = "http://127.0.0.1:8001",
     .used_context = "x",
     .user = "ghost"},
    {.name = "CA file missing",
     .yaml = WITH_CLUSTER("    server: https://127.0.0.1:6443\n"
                          "    certificate-authority: /nonexistent/ca.crt\n"),
     .rc = -ENOENT,
     .error = "'certificate-authority' of cluster 'c' '/nonexistent/ca.crt': No such file",
     .line = 7,
     .column = 28},
    {.name = "insecure",
     .yaml = WITH_CLUSTER("    server: https://127.0.0.1:6443\n"
                          "    insecure-skip-tls-verify: true\n"),
     .server = "https://127.0.0.1:6443",
     .used_context = "x",
     .user = "u",
     .token = "t",
     .insecure = true},
    {.name = "insecure with a CA",
     .yaml = WITH_CLUSTER("    server: https://127.0.0.1:6443\n"
                          "    certificate-authority-data: " CA_B64 "\n"
                          "    insecure-skip-tls-verify: true\n"),
     .rc = -EINVAL,
     .error = "cluster 'c' sets both insecure-skip-tls-verify and a certificate authority",
     .line = 8,
     .column = 31},
    {.name = "insecure not a bool",
     .yaml = WITH_CLUSTER("    server: https://127.0.0.1:6443\n"
                          "    insecure-skip-tls-verify: maybe\n"),
     .rc = -EINVAL,
     .error = "'insecure-skip-tls-verify' of cluster 'c' must be true or false",
     .line = 7,
     .column = 31},
    {.name = "cluster without server",
     .yaml = WITH_CLUSTER("    certificate-authority-data: " CA_B64 "\n"),
     .rc = -EINVAL,
     .error = "cluster 'c' has no server",
     .line = 6,
     .column = 5},
    {.name = "server without scheme",
     .yaml = WITH_CLUSTER("    server: 127.0.0.1:6443\n"),
     .rc = -EINVAL,
     .error = "server of cluster 'c': expected an https:// URL, got '127.0.0.1:6443'",
     .line = 6,
     .column = 13},
    {.name = "server without scheme never echoes its password",
     .yaml = WITH_CLUSTER("    server: admin:s3cr3t@127.0.0.1:6443\n"),
     .rc = -EINVAL,
     .error = "server of cluster 'c': expected an https:// URL, got '***@127.0.0.1:6443'",
     .line = 6,
     .column = 13},
    {.name = "context names a missing cluster",
     .yaml = "kind: Config\n"
             "contexts:\n"
             "- name: x\n"
             "  context:\n"
             "    cluster: elsewhere\n"
             "current-context: x\n",
     .rc = -EINVAL,
     .error = "cluster 'elsewhere' of context 'x' is not in the kubeconfig",
     .line = 5,
     .column = 14},
    {.name = "not a kubeconfig",
     .yaml = "apiVersion: apps/v1\nkind: Deployment\n",
     .rc = -EINVAL,
     .error = "not a kubeconfig: kind is 'Deployment', expected 'Config'",
     .line = 2,
     .column = 7},
    {.name = "clusters not a list",
     .yaml = "kind: Config\nclusters:\n  c: {server: x}\n",
     .rc = -EINVAL,
     .error = "'clusters' must be a list",
     .line = 3,
     .column = 3},
    {.name = "entry without a name",
     .yaml = "kind: Config\nusers:\n- user: {token: t}\n",
     .rc = -EINVAL,
     .error = "an entry of users has no name",
     .line = 3,
     .column = 3},
    {.name = "invalid YAML",
     .yaml = "kind: Config\nclusters:\n- name: c\n  cluster: {server: x\ncontexts: []\n",
     .rc = -EINVAL,
     .error = "invalid YAML: did not find expected ',' or '}' while parsing a flow mapping",
     .line = 5,
     .column = 9},
};

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

static int setup(void **state)
{
	char sub[512];

	(void)state;
	(void)snprintf(dir, sizeof(dir), "%s/test-kubeconfig-XXXXXX",
	               getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	(void)snprintf(sub, sizeof(sub), "%s/kc", dir);
	if (mkdir(sub, 0700) != 0)
		return -1;
	(void)snprintf(sub, sizeof(sub), "%s/certs", dir);
	if (mkdir(sub, 0700) != 0)
		return -1;
	(void)snprintf(sub, sizeof(sub), "%s/other", dir);
	if (mkdir(sub, 0700) != 0)
		return -1;
	put("certs/ca.crt", CA_PEM);
	put("certs/client.crt", CERT_PEM);
	put("certs/client.key", KEY_PEM);
	put("kc/token", "file-token\n");
	put("other/token", "other-token\n");
	return 0;
}

static int teardown(void **state)
{
	static const char *const files[] = {
	    "certs/ca.crt", "certs/client.crt", "certs/client.key", "kc/token", "kc/config", "kc/a",
	    "kc/b",         "other/token",      "other/c",          NULL,
	};
	static const char *const dirs[] = {"kc", "certs", "other", NULL};
	char path[512];

	(void)state;
	for (size_t i = 0; files[i]; i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		(void)unlink(path);
	}
	for (size_t i = 0; dirs[i]; i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", dir, dirs[i]);
		(void)rmdir(path);
	}
	return rmdir(dir);
}

static void check_str(const char *name, const char *field, const char *got, const char *want)
{
	if (!want || !*want) {
		if (got)
			fail_msg("%s: %s is '%s', expected none", name, field, got);
		return;
	}
	if (!got || strcmp(got, want) != 0)
		fail_msg("%s: %s is '%s', expected '%s'", name, field, got ? got : "(none)", want);
}

static void check_path(const char *name, const char *field, const char *got, const char *rel)
{
	char want[512];

	if (!rel) {
		check_str(name, field, got, NULL);
		return;
	}
	(void)snprintf(want, sizeof(want), "%s/%s", dir, rel);
	check_str(name, field, got, want);
}

static void check_pem(const char *name, const char *field, const struct sm_kubeconfig_pem *got,
                      const char *want_pem, const char *want_file)
{
	char f[64];

	(void)snprintf(f, sizeof(f), "%s file", field);
	check_path(name, f, got->file, want_file);
	if (!want_pem) {
		if (got->data)
			fail_msg("%s: %s data set, expected none", name, field);
		return;
	}
	if (!got->data || got->len != strlen(want_pem) || memcmp(got->data, want_pem, got->len))
		fail_msg("%s: %s data is not the PEM expected", name, field);
}

static void test_cases(void **state)
{
	char path[512];
	const char *paths[] = {path};

	(void)state;
	(void)snprintf(path, sizeof(path), "%s/kc/config", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct kc_case *c = &cases[i];
		struct sm_kubeconfig k = {.server = (char *)"untouched"};
		struct sm_error err = {0};
		int r;

		put("kc/config", c->yaml);
		r = sm_kubeconfig_load(paths, 1, false, c->context, &k, &err);
		if (r != c->rc)
			fail_msg("%s: returned %d, expected %d (%s)", c->name, r, c->rc,
			         err.message);
		if (c->rc < 0) {
			if (!strstr(err.message, c->error))
				fail_msg("%s: error '%s' lacks '%s'", c->name, err.message,
				         c->error);
			check_str(c->name, "error file", err.file, path);
			if (err.line != c->line || (c->column && err.column != c->column))
				fail_msg("%s: error at %u:%u, expected %u:%u (%s)", c->name,
				         err.line, err.column, c->line, c->column, err.message);
			/* ret_ untouched on failure. */
			check_str(c->name, "server", k.server, "untouched");
			continue;
		}
		check_str(c->name, "server", k.server, c->server);
		check_str(c->name, "context", k.context, c->used_context);
		check_str(c->name, "user", k.user, c->user);
		check_str(c->name, "tls-server-name", k.tls_server_name, c->sni);
		check_str(c->name, "proxy-url", k.proxy_url, c->proxy);
		check_str(c->name, "token", k.token, c->token);
		check_path(c->name, "tokenFile", k.token_file, c->token_file);
		check_pem(c->name, "CA", &k.ca, c->ca_pem, c->ca_file);
		check_pem(c->name, "client certificate", &k.client_cert, c->cert_pem, c->cert_file);
		check_pem(c->name, "client key", &k.client_key, c->key_pem, c->key_file);
		if (k.insecure_skip_tls_verify != c->insecure)
			fail_msg("%s: insecure-skip-tls-verify is %d", c->name,
			         k.insecure_skip_tls_verify);
		sm_kubeconfig_done(&k);
		sm_kubeconfig_done(&k); /* done twice is harmless */
	}
}

/* $KUBECONFIG=a:missing:b:c as kubectl merges it: the first file to name an entry wins,
 * current-context from the first file that sets one, relative paths from each entry's file. */
static void test_merge(void **state)
{
	char a[512], b[512], c[512], missing[512];
	const char *paths[] = {a, missing, b, c, a};
	struct sm_kubeconfig k = {0};
	struct sm_error err = {0};
	char want[512];

	(void)state;
	(void)snprintf(a, sizeof(a), "%s/kc/a", dir);
	(void)snprintf(b, sizeof(b), "%s/kc/b", dir);
	(void)snprintf(c, sizeof(c), "%s/other/c", dir);
	(void)snprintf(missing, sizeof(missing), "%s/kc/missing", dir);
	put("kc/a", "kind: Config\n"
	            "current-context: dev\n"
	            "users:\n"
	            "- name: me\n"
	            "  user: {token: from-a}\n");
	put("kc/b", "kind: Config\n"
	            "current-context: ignored\n"
	            "contexts:\n"
	            "- name: dev\n"
	            "  context: {cluster: dev, user: me}\n"
	            "- name: other\n"
	            "  context: {cluster: other, user: other-user}\n"
	            "clusters:\n"
	            "- name: dev\n"
	            "  cluster: {server: 'https://dev:6443'}\n"
	            "users:\n"
	            "- name: me\n"
	            "  user: {token: from-b}\n");
	put("other/c", "kind: Config\n"
	               "clusters:\n"
	               "- name: dev\n"
	               "  cluster: {server: 'https://not-this-one'}\n"
	               "- name: other\n"
	               "  cluster: {server: 'https://other:6443', certificate-authority: "
	               "../certs/ca.crt}\n"
	               "users:\n"
	               "- name: other-user\n"
	               "  user: {tokenFile: token}\n");

	assert_int_equal(sm_kubeconfig_load(paths, 5, true, NULL, &k, &err), 0);
	assert_string_equal(k.context, "dev");
	assert_string_equal(k.server, "https://dev:6443");
	assert_string_equal(k.token, "from-a");
	sm_kubeconfig_done(&k);

	assert_int_equal(sm_kubeconfig_load(paths, 5, true, "other", &k, &err), 0);
	assert_string_equal(k.server, "https://other:6443");
	(void)snprintf(want, sizeof(want), "%s/other/../certs/ca.crt", dir);
	assert_string_equal(k.ca.file, want);
	(void)snprintf(want, sizeof(want), "%s/other/token", dir);
	assert_string_equal(k.token_file, want);
	assert_null(k.token);
	sm_kubeconfig_done(&k);

	/* Without skip_missing, a missing file is an error that names it. */
	assert_int_equal(sm_kubeconfig_load(paths, 5, false, NULL, &k, &err), -ENOENT);
	assert_string_equal(err.file, missing);
	assert_non_null(strstr(err.message, "No such file"));

	/* With it, at least one file must exist. */
	paths[0] = missing;
	assert_int_equal(sm_kubeconfig_load(paths, 2, true, NULL, &k, &err), -ENOENT);
	assert_non_null(strstr(err.message, "none of the kubeconfig files exists"));
	assert_null(k.server);

	/* A broken file among them is an error even when the entries in use are elsewhere. */
	put("kc/a", "kind: Config\nusers: {}\n");
	paths[0] = a;
	assert_int_equal(sm_kubeconfig_load(paths, 3, true, "dev", &k, &err), -EINVAL);
	assert_string_equal(err.file, a);
	assert_int_equal(err.line, 2);
	assert_null(k.server);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_merge),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
