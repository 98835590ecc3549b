/* SPDX-License-Identifier: MIT */
#ifndef SM_AUTH_H
#define SM_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/config.h"
#include "scalemetrics/error.h"

/* Authentication of an aggregated API server (docs/api.md "Authentication and authorization"):
 * front-proxy (request-header) client certificates, client-CA certificates, bearer tokens checked
 * with a TokenReview, anonymous otherwise; then the authorizer (authz.h). The trust material comes
 * from kube-system/extension-apiserver-authentication (refreshed) or from files. */

struct cJSON;
struct sm_api_response;
struct sm_kube_client;
struct sm_telemetry;

struct sm_auth_extra {
	char *key;
	struct sm_strv values;
};

/* user.Info */
struct sm_auth_user {
	char *name;
	char *uid; /* NULL when none */
	struct sm_strv groups;
	struct sm_auth_extra *extra;
	size_t n_extra;
};

void sm_auth_user_done(struct sm_auth_user *u);
/* Appends group g unless present. */
int sm_auth_user_add_group(struct sm_auth_user *u, const char *g) SM_MUSTCHECK;
bool sm_auth_user_in_group(const struct sm_auth_user *u, const char *g);
/* {"username", "uid", "groups", "extra"} (the TokenReview status.user shape) and back. */
struct cJSON *sm_auth_user_to_json(const struct sm_auth_user *u);
/* A JSON array of the strings (TokenReview/SubjectAccessReview groups and extra values). */
struct cJSON *sm_auth_strv_to_json(const struct sm_strv *v);
/* The user's extra as a JSON object of arrays (TokenReview/SubjectAccessReview "extra"). */
struct cJSON *sm_auth_extra_to_json(const struct sm_auth_user *u);
int sm_auth_user_from_json(const struct cJSON *j, struct sm_auth_user *ret) SM_MUSTCHECK;

/* One request header as received; repeated header lines appear once each, in order. */
struct sm_auth_header {
	const char *name;
	const char *value;
};

/* The request-header names (docs/api.md "Front-proxy authentication"). Empty lists mean the
 * defaults X-Remote-User, X-Remote-Group, X-Remote-Extra-. */
struct sm_auth_header_names {
	struct sm_strv username;
	struct sm_strv group;
	struct sm_strv extra_prefix;
};

/* docs/api.md "Front-proxy authentication", steps 2-4: user = first non-empty value of the username
 * headers (in the order the names are listed), groups = every non-empty value of every group header
 * in order, extra keys lower-cased then percent-decoded. Returns 1 with *ret filled when a user
 * name was found, 0 when not (ret untouched), -ENOMEM. system:authenticated is NOT added here. */
int sm_auth_user_from_headers(const struct sm_auth_header_names *names,
                              const struct sm_auth_header *headers, size_t n_headers,
                              struct sm_auth_user *ret) SM_MUSTCHECK;

/* What kube-system/extension-apiserver-authentication holds (docs/api.md "The
 * extension-apiserver-authentication ConfigMap"). */
struct sm_auth_trust_data {
	char *client_ca_pem;        /* NULL: key absent or empty */
	char *requestheader_ca_pem; /* NULL: no front-proxy authentication */
	struct sm_strv allowed_names;
	struct sm_auth_header_names headers;
};

/* From a v1 ConfigMap document. -EPROTO with reterr if it is not one or a JSON-array value
 * does not parse; -ENOMEM. */
int sm_auth_trust_from_configmap(const struct cJSON *cm, struct sm_auth_trust_data *ret,
                                 struct sm_error *reterr) SM_MUSTCHECK;
void sm_auth_trust_data_done(struct sm_auth_trust_data *t);

/* The bearer token of an Authorization header value ("Bearer TOKEN", scheme
 * case-insensitive), as a pointer into value and its length; false when there is none. */
bool sm_auth_bearer_token(const char *value, const char **ret_token, size_t *ret_len);

/* TokenReview (authentication.k8s.io/v1) request document for token. */
struct cJSON *sm_auth_token_review_request(const char *token);
/* Reads a TokenReview answer: 1 with *ret_user (system:authenticated not added) when
 * status.authenticated is true and a username is given, 0 when not authenticated (the
 * status.error text, if any, in reterr), -EPROTO when the document is not a TokenReview. */
int sm_auth_token_review_parse(const struct cJSON *doc, struct sm_auth_user *ret_user,
                               struct sm_error *reterr) SM_MUSTCHECK;

/* ---- the caches' keys (auth-digest.c) ---- */

/* A cache key: the SHA-256 of data as 64 lowercase hex digits and a NUL in out. The digest
 * is fetched once per process (an implicit fetch per call costs more than hashing a few
 * hundred bytes). -EIO when OpenSSL fails: then nothing may be looked up or stored. */
int sm_auth_digest_key(const void *data, size_t len, char out[65]) SM_MUSTCHECK;

/* ---- the request gate ---- */

struct sm_auth_request {
	const char *method;
	const char *path;  /* raw (percent-encoded), without the query */
	const char *query; /* raw, or NULL */
	/* The TLS peer's certificates as sent, leaf first (DER); n 0 when none. */
	const unsigned char *const *peer_certs;
	const size_t *peer_cert_lens;
	size_t n_peer_certs;
	const struct sm_auth_header *headers;
	size_t n_headers;
};

struct sm_auth;

/* How a request's user was established, for the access log. */
enum sm_auth_method {
	SM_AUTH_METHOD_NONE,        /* not checked (the request was refused before) */
	SM_AUTH_METHOD_ANONYMOUS,   /* no credential: system:anonymous */
	SM_AUTH_METHOD_FRONT_PROXY, /* the front proxy's certificate and X-Remote-* headers */
	SM_AUTH_METHOD_CLIENT_CERT, /* a certificate signed by the client CA */
	SM_AUTH_METHOD_TOKEN,       /* a bearer token (TokenReview) */
	SM_AUTH_METHOD_MAX,
};

/* "none", "anonymous", "front-proxy", "client-cert", "token"; NULL out of range. */
const char *sm_auth_method_to_string(enum sm_auth_method m);

/* Who made a request and why it was refused. */
struct sm_auth_outcome {
	enum sm_auth_method method; /* for a 401: the credential that failed last */
	struct sm_auth_user user;   /* name NULL when nobody was authenticated (401) */
	/* Why a 401 or 403 was given (the failed credential's error, the authorizer's reason;
	 * never a credential), or NULL. */
	char *reason;
};

void sm_auth_outcome_done(struct sm_auth_outcome *o);

/* For server.auth.mode delegated: builds the authenticator and authorizer, with a Kubernetes
 * API client made from cfg->kubernetes, reads the trust material once (files, or the
 * ConfigMap; a ConfigMap that cannot be read is logged and retried in the background: until
 * then, certificates are not trusted) and starts the refresh thread. telemetry (borrowed, may
 * be NULL) counts every decision of sm_auth_check and every token and review cache lookup.
 * -EINVAL with reterr when the Kubernetes API is not configured or a file cannot be read,
 * -ENOMEM. */
int sm_auth_new(const struct sm_config *cfg, struct sm_telemetry *telemetry, struct sm_auth **ret,
                struct sm_error *reterr) SM_MUSTCHECK;
void sm_auth_free(struct sm_auth *a);

/* Authenticates and authorizes one request. true: serve it. false: *ret holds the Status
 * answer (400 malformed path, 401 Unauthorized, 403 Forbidden, 500 a review the API server
 * refused, 503 the API server unreachable for a needed SubjectAccessReview). Either way
 * *ret_outcome (which may be NULL) says who asked and, for a 401 or 403, why it was refused;
 * the caller logs that (the refusal is not logged here). */
bool sm_auth_check(struct sm_auth *a, const struct sm_auth_request *req, int64_t now_mono_ms,
                   struct sm_api_response *ret, struct sm_auth_outcome *ret_outcome);
/* The same without waiting: decides only what needs no TokenReview or SubjectAccessReview
 * beyond the caches (client certificates, cached tokens and decisions). 1: serve; 0:
 * refused, *ret holds the answer (both counted like sm_auth_check, *ret_outcome set);
 * -EWOULDBLOCK: the decision needs the API server, nothing counted, *ret and *ret_outcome
 * untouched: call sm_auth_check from a thread that may wait. */
int sm_auth_check_cached(struct sm_auth *a, const struct sm_auth_request *req, int64_t now_mono_ms,
                         struct sm_api_response *ret, struct sm_auth_outcome *ret_outcome);

#endif
