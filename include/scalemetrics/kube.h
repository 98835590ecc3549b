/* SPDX-License-Identifier: MIT */
#ifndef SM_KUBE_H
#define SM_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"
#include "scalemetrics/series.h"

struct cJSON;
struct sm_buf;
struct sm_kube_config;

/* A small Kubernetes API client (libcurl, JSON through cJSON): pod discovery for scraping,
 * TokenReview, SubjectAccessReview and the auth ConfigMap. One client may be used from several
 * threads: each call takes the client's lock for its round trip (the connection is reused). */

struct sm_kube_client;

/* The largest bearer token file read (a service account token is about 1 KiB). */
#define SM_KUBE_TOKEN_MAX 16384

/* Where the API server is and how to authenticate (NULL and "" mean unset), first match wins:
 *   1. kubeconfig: that file, its context (or current-context);
 *   2. server: that URL, with token_file and ca_file (no kubeconfig is read);
 *   3. in a cluster (KUBERNETES_SERVICE_HOST and _PORT set, context unset): the service
 *      account, https://HOST:PORT with the token and CA under
 *      /var/run/secrets/kubernetes.io/serviceaccount/;
 *   4. $KUBECONFIG (a ':'-separated list, merged as kubectl does), else ~/.kube/config.
 * server (with 1), token_file, ca_file, cert_file, key_file and insecure_skip_tls_verify
 * replace what a kubeconfig or the service account says, as kubectl's flags do. */
struct sm_kube_options {
	const char *kubeconfig; /* one file; relative paths inside are relative to its directory */
	const char *context;    /* a context of the kubeconfig instead of its current-context */
	const char *server;     /* "https://10.0.0.1:443" or "http://127.0.0.1:8001" */
	const char *token_file; /* re-read when it changes (projected tokens rotate) */
	const char *ca_file;    /* PEM bundle to verify the server; NULL: system store */
	const char *cert_file;  /* client certificate (PEM), with key_file */
	const char *key_file;
	bool insecure_skip_tls_verify;
	const char *user_agent; /* NULL: libcurl sends none */
	int64_t timeout_ms;     /* per request; 0: 10s */
	size_t max_body_bytes;  /* per response; 0: 64 MiB */
};

/* The options a `kubernetes:` config section describes (borrowed strings). */
void sm_kube_options_from_config(const struct sm_kube_config *cfg, struct sm_kube_options *ret);

/* Resolves the options (environment, kubeconfig files and the files they name; no network).
 * -EINVAL with reterr when no server is known (not in a cluster and nothing configured);
 * a kubeconfig's errors (see sm_kubeconfig_load) with "kubeconfig FILE:LINE:COL: " in the
 * message; -ENOMEM. */
int sm_kube_client_new(const struct sm_kube_options *opts, struct sm_kube_client **ret,
                       struct sm_error *reterr) SM_MUSTCHECK;
void sm_kube_client_free(struct sm_kube_client *c);
/* The base URL in use (borrowed), for messages. */
const char *sm_kube_client_server(const struct sm_kube_client *c);
/* Where the server and credentials came from (borrowed), for a log line: "kubeconfig
 * '/root/.kube/config', context 'kind-kind'", "the in-cluster service account",
 * "kubernetes.server". */
const char *sm_kube_client_origin(const struct sm_kube_client *c);

/* GET path (starting with '/', query string already escaped) or POST body to it. On an HTTP
 * answer (any status) returns 0 with *ret_status and *ret_json (the parsed body; NULL if the
 * body was not JSON). Transport failures: -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -EPROTO,
 * -E2BIG (body over the limit), -EACCES (token file unreadable), with reterr. */
int sm_kube_get(struct sm_kube_client *c, const char *path, long *ret_status,
                struct cJSON **ret_json, struct sm_error *reterr) SM_MUSTCHECK;
int sm_kube_post(struct sm_kube_client *c, const char *path, const struct cJSON *body,
                 long *ret_status, struct cJSON **ret_json, struct sm_error *reterr) SM_MUSTCHECK;

/* GET path, keeping the body as it came (ret_body, zero-initialised by the caller, who frees
 * its data): for a caller that shows a non-JSON answer's text, as `explain` does. Returns as
 * sm_kube_get. */
int sm_kube_get_body(struct sm_kube_client *c, const char *path, long *ret_status,
                     struct sm_buf *ret_body, struct sm_error *reterr) SM_MUSTCHECK;

/* URL-escapes s for a query parameter value, as curl_easy_escape does (RFC 3986: a space is
 * %20, where sm_url_escape's Go form writes '+'; the apiserver reads both). NULL on out of
 * memory; free() the result. */
char *sm_kube_escape(const char *s);

struct sm_kube_pod {
	char *name;
	char *namespace;
	char *uid;
	char *ip;                /* status.podIP */
	struct sm_label *labels; /* owned strings */
	size_t n_labels;
};

struct sm_kube_pod_list {
	struct sm_kube_pod *items;
	size_t n;
	char *resource_version;
};

/* From a PodList document, the pods that can serve: status.phase "Running", condition Ready
 * "True", and a podIP. -EPROTO with reterr if doc is not a PodList, -ENOMEM. */
int sm_kube_pod_list_from_json(const struct cJSON *doc, struct sm_kube_pod_list *ret,
                               struct sm_error *reterr) SM_MUSTCHECK;
void sm_kube_pod_list_done(struct sm_kube_pod_list *l);

/* GET /api/v1/namespaces/NS/pods?labelSelector=SEL and keep the ready pods. An HTTP status
 * other than 200 is -EACCES (401/403), -ENOENT (404) or -EPROTO, with the Status message in
 * reterr. */
int sm_kube_list_ready_pods(struct sm_kube_client *c, const char *namespace,
                            const char *label_selector, struct sm_kube_pod_list *ret,
                            struct sm_error *reterr) SM_MUSTCHECK;

#endif
