/* SPDX-License-Identifier: MIT */
#ifndef SM_EXPLAIN_INTERNAL_H
#define SM_EXPLAIN_INTERNAL_H

/* `scalemetrics explain` in four files, one step each: explain.c (the command line and the
 * YAML stream), explain-hpa.c (an HPA document into struct sm_explain_hpa), explain-fetch.c
 * (the requests the HPA controller makes, through the kube client) and explain-report.c (the
 * controller's arithmetic, printed). Only those files and tests/unit/test-explain.c include
 * this header. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"
#include "scalemetrics/hpa.h"

struct cJSON;
struct sm_kube_client;
struct yaml_document_s;

#define SM_EXPLAIN_EXTERNAL_BASE "/apis/external.metrics.k8s.io/v1beta1"
#define SM_EXPLAIN_CUSTOM_GROUP  "custom.metrics.k8s.io"

struct sm_explain_options {
	const char *hpa_path;
	const char *server; /* scheme://host:port */
	const char *ca_file;
	const char *token_file;
	const char *cert_file;
	const char *key_file;
	bool insecure;
	bool has_current;
	int32_t current;
	const char *namespace;
	const char *pod_selector;
	int64_t timeout_ms;
};

/* One HPA metric, its strings borrowed from the YAML document. */
struct sm_explain_metric {
	enum sm_hpa_metric_type type;
	const char *name;
	char *selector; /* canonical metric selector; "" when none */
	enum sm_hpa_target_type target_type;
	const char *target_text; /* the quantity as written */
	int64_t target_milli;
	const char *object_kind;
	const char *object_name;
	const char *object_api_version;
	const char *resource_name; /* Resource and ContainerResource */
	const char *container;     /* ContainerResource */
	char error[512];           /* set when the spec itself is unusable */
};

struct sm_explain_hpa {
	const char *name;
	const char *namespace;
	const char *target_kind;
	const char *target_name;
	int32_t min_replicas;
	int32_t max_replicas;
	bool has_behavior;
	int32_t current;
	const char *current_from;
	struct sm_explain_metric *metrics;
	size_t n_metrics;
};

/* ---- explain-hpa.c: reading the HPA ---- */

/* One YAML document of the input; file names it in messages ("(stdin)" for -). */
struct sm_explain_doc {
	struct yaml_document_s *doc;
	const char *file;
};

/* How many objects the document holds: the items of a List, else 1. */
size_t sm_explain_doc_count(const struct sm_explain_doc *d);

/* Reads object i of the document, which must be an autoscaling/v2 HorizontalPodAutoscaler.
 * Problems with the document itself go to stderr as "FILE:LINE:COL: ..." and return -EINVAL
 * (-ENOMEM); a single unusable metric is kept, with its error, to be reported in its place.
 * Free with sm_explain_hpa_done() whatever the result. */
int sm_explain_doc_hpa(const struct sm_explain_doc *d, size_t i,
                       const struct sm_explain_options *opt, struct sm_explain_hpa *ret);
void sm_explain_hpa_done(struct sm_explain_hpa *h);

/* ---- explain-fetch.c: asking the server ---- */

struct sm_explain_client {
	const struct sm_explain_options *opt;
	struct sm_kube_client *kube;
	char *custom_version; /* preferred custom.metrics.k8s.io version, found lazily */
};

/* -errno with reterr (an unreadable --token-file is found here, before any request). */
int sm_explain_client_init(struct sm_explain_client *c, const struct sm_explain_options *opt,
                           struct sm_error *reterr);
void sm_explain_client_done(struct sm_explain_client *c);

/* GET path and parse a 2xx JSON answer. A transport failure keeps the kube client's code;
 * any other answer is -EPROTO with sm_explain_failure()'s text in reterr. */
int sm_explain_get_json(struct sm_explain_client *c, const char *path, struct cJSON **ret,
                        struct sm_error *reterr);

/* The preferred custom.metrics.k8s.io version, asked once from /apis (a note on stdout when
 * discovery does not say; v1beta2 then). */
const char *sm_explain_custom_version(struct sm_explain_client *c);

/* The version /apis prefers for custom.metrics.k8s.io; NULL when doc does not list it. */
const char *sm_explain_preferred_version(const struct cJSON *doc);

/* What a non-2xx answer stands for, into reterr: a Status document's "HTTP CODE REASON:
 * MESSAGE", else "HTTP CODE: " and the first 300 bytes of body on one line, as client-go
 * quotes it. */
void sm_explain_failure(long code, const char *body, size_t len, struct sm_error *reterr);

/* Kind -> plural resource, as the RESTMapper guesses it (Deployment -> deployments, Ingress
 * -> ingresses, NetworkPolicy -> networkpolicies), plus ".group" for non-core groups.
 * -EINVAL (empty or huge kind), -ENAMETOOLONG. */
int sm_explain_object_resource(const char *kind, const char *api_version, char *buf, size_t size);

/* The path the HPA controller GETs for metric m (External, Pods or Object) of h: version is
 * the custom metrics API version, pod_selector the canonical pod selector of a Pods metric
 * ("" for none). Path segments and query values are escaped as Go does. -EINVAL (not one
 * of those types, or an unusable object kind), -ENAMETOOLONG. */
int sm_explain_build_path(const struct sm_explain_hpa *h, const struct sm_explain_metric *m,
                          const char *version, const char *pod_selector, char *path, size_t size);

/* ---- explain-report.c: the HPA's arithmetic ---- */

/* Fetches and prints every metric of h and the decision. false when any metric failed. */
bool sm_explain_hpa_report(struct sm_explain_client *c, const struct sm_explain_hpa *h);

/* A milli-value as a plain decimal: 37000 -> "37", 1500 -> "1.5", -2 -> "-0.002". */
const char *sm_explain_milli_text(int64_t m, char buf[40]);

/* A bounded line builder: appends until full, then only remembers that it overflowed. */
struct sm_explain_line {
	char *buf;
	size_t size;
	size_t len;
	bool overflow;
};

void sm_explain_line_add(struct sm_explain_line *l, const char *fmt, ...) SM_PRINTF(2, 3);

#endif
