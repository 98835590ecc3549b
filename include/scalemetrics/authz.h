/* SPDX-License-Identifier: MIT */
#ifndef SM_AUTHZ_H
#define SM_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>

#include "scalemetrics/config.h"
#include "scalemetrics/error.h"

/* Authorization (docs/api.md "Authorization"): system:masters always; /healthz, /livez,
 * /readyz (and server.auth.always_allow_paths) for anyone; discovery, OpenAPI and /version
 * for any authenticated user; everything else by a SubjectAccessReview, with allowed and
 * denied decisions cached separately. */

struct cJSON;
struct sm_api_response;
struct sm_auth_user;
struct sm_kube_client;
struct sm_telemetry;

/* authorizer.Attributes, derived from the request like requestinfo.go does, with the path
 * split and decoded the way the API router does it (split on '/', then percent-decode each
 * segment, one trailing '/' ignored). Strings point into buf; "" when not set. */
struct sm_authz_attributes {
	bool resource_request;
	const char *verb;
	const char *path; /* non-resource requests: the decoded path */
	const char *group;
	const char *version;
	const char *namespace;
	const char *resource;
	const char *subresource;
	const char *name;
	char *buf;
};

/* -EINVAL with reterr (bad percent-encoding, empty segment, not starting with '/'),
 * -ENOMEM. */
int sm_authz_attributes_from_request(const char *method, const char *path, const char *query,
                                     struct sm_authz_attributes *ret,
                                     struct sm_error *reterr) SM_MUSTCHECK;
void sm_authz_attributes_done(struct sm_authz_attributes *a);

/* Open to anyone: /healthz, /livez, /readyz and the extra paths (exact, or a prefix when the
 * entry ends in '*'). path is the raw request path. */
bool sm_authz_path_always_allowed(const struct sm_strv *extra, const char *path);
/* Discovery, OpenAPI and version non-resource GET/HEAD paths (system:discovery). */
bool sm_authz_is_discovery(const struct sm_authz_attributes *a);

/* SubjectAccessReview (authorization.k8s.io/v1) request document. */
struct cJSON *sm_authz_sar_request(const struct sm_auth_user *u,
                                   const struct sm_authz_attributes *a);

/* The decision cache's key: a digest (sm_auth_digest_key) of exactly what the review above
 * sends (attributes, user, uid, groups, extra), each field length-prefixed so no two reviews
 * share a key. -ENOMEM, -EIO. */
int sm_authz_cache_key(const struct sm_auth_user *u, const struct sm_authz_attributes *a,
                       char out[65]) SM_MUSTCHECK;

enum sm_authz_decision {
	SM_AUTHZ_ALLOW,
	SM_AUTHZ_DENY,
	SM_AUTHZ_NO_OPINION,
	SM_AUTHZ_DECISION_MAX,
};

/* Reads a SubjectAccessReview answer: denied -> DENY, allowed -> ALLOW, both -> DENY,
 * neither -> NO_OPINION; *ret_reason a malloc'd copy of status.reason (may be NULL).
 * -EPROTO with reterr when status.allowed is missing or it is not a SubjectAccessReview. */
int sm_authz_sar_parse(const struct cJSON *doc, enum sm_authz_decision *ret, char **ret_reason,
                       struct sm_error *reterr) SM_MUSTCHECK;

/* The 403 Forbidden Status as kube-apiserver words it (responsewriters.Forbidden). */
int sm_authz_forbidden(const struct sm_auth_user *u, const struct sm_authz_attributes *a,
                       const char *reason, struct sm_api_response *ret) SM_MUSTCHECK;

struct sm_authz;

/* kube is borrowed. cache_ttl_ms 0 disables caching. extra_paths: always_allow_paths (copied).
 * telemetry (borrowed, may be NULL) counts the lookups in the decision cache: one hit or miss
 * per SubjectAccessReview that would be sent. */
int sm_authz_new(struct sm_kube_client *kube, int64_t cache_ttl_ms,
                 const struct sm_strv *extra_paths, struct sm_telemetry *telemetry,
                 struct sm_authz **ret) SM_MUSTCHECK;
void sm_authz_free(struct sm_authz *z);

/* Decides. 0 with *ret (and a malloc'd reason or NULL) when decided; when a
 * SubjectAccessReview was needed and failed: -EHOSTUNREACH (transport: unreachable,
 * timeout) or -EPROTO (the API server answered something else than a review), with
 * reterr. cached_only: never asks the API server; -EWOULDBLOCK (nothing counted) when the
 * decision would need it. */
int sm_authz_authorize(struct sm_authz *z, const struct sm_auth_user *u,
                       const struct sm_authz_attributes *a, int64_t now_mono_ms, bool cached_only,
                       enum sm_authz_decision *ret, char **ret_reason,
                       struct sm_error *reterr) SM_MUSTCHECK;

#endif
