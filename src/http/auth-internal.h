/* SPDX-License-Identifier: MIT */
/* Shared by the files of authentication (auth.c, auth-user.c, auth-trust.c, auth-x509.c,
 * auth-token.c); only they and the unit tests include it. */
#ifndef SM_AUTH_INTERNAL_H
#define SM_AUTH_INTERNAL_H

#include <openssl/types.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/auth.h"
#include "scalemetrics/config.h"
#include "scalemetrics/error.h"

struct sm_authz;
struct sm_kube_client;
struct sm_telemetry;
struct sm_ttl_cache;

/* A verified client certificate chain is remembered this long (when every certificate of it
 * is still valid by then), at most this many per trust. */
#define SM_AUTH_VERIFIED_TTL_S 300
#define SM_AUTH_VERIFIED_MAX   1024

/* Trust material: immutable once built, reference counted (auth-trust.c). */
struct sm_auth_trust {
	atomic_int refs;
	bool loaded; /* false: nothing could be read yet (no certificate is trusted) */
	X509_STORE *requestheader;
	X509_STORE *client;
	struct sm_ttl_cache *verified; /* see peer_subject() in auth-x509.c */
	struct sm_strv allowed_names;
	struct sm_auth_header_names headers;
	char *summary; /* what it was built from, to log changes */
};

struct sm_auth {
	struct sm_kube_client *kube;
	struct sm_authz *authz;
	struct sm_ttl_cache *tokens;
	struct sm_telemetry *telemetry; /* borrowed; may be NULL */
	/* From the config (copies). */
	char *requestheader_ca_file;
	char *client_ca_file;
	struct sm_strv allowed_names;
	struct sm_auth_header_names headers;
	int64_t refresh_ms;
	bool need_configmap;

	pthread_mutex_t lock; /* guards trust, stopping; with cond */
	pthread_cond_t cond;
	struct sm_auth_trust *trust;
	bool stopping;
	bool thread_started;
	pthread_t thread;
	bool last_load_failed;
};

/* What one authenticator made of a request. */
enum sm_authn_result {
	SM_AUTHN_OK,
	SM_AUTHN_NONE,        /* nothing applied */
	SM_AUTHN_ERROR,       /* a credential was presented and did not authenticate */
	SM_AUTHN_WOULD_BLOCK, /* cached_only, and the answer needs the API server */
};

/* ---- auth-user.c ---- */

/* Appends a copy of s[0..len) (NULL-terminated vector). -ENOMEM. */
int sm_auth_strv_push(struct sm_strv *v, const char *s, size_t len) SM_MUSTCHECK;
/* Appends copies of every string of src. -ENOMEM. */
int sm_auth_strv_copy(struct sm_strv *dst, const struct sm_strv *src) SM_MUSTCHECK;

/* ---- auth-trust.c ---- */

/* A reference to the current trust, for the length of one request. */
struct sm_auth_trust *sm_auth_trust_get(struct sm_auth *a);
void sm_auth_trust_unref(struct sm_auth_trust *t);
/* The line logged when the trust changes: which CAs are set, the allowed names, and the
 * first 6 bytes of the SHA-256 of both CA bundles, truncated to len. */
void sm_auth_trust_summary(const char *rh_pem, const char *client_pem,
                           const struct sm_strv *allowed_names, char *buf, size_t len);
/* Checks the CA files, loads the trust once (a ConfigMap that cannot be read yet is logged
 * and retried) and starts the refresh thread. -EINVAL with reterr. */
int sm_auth_trust_start(struct sm_auth *a, struct sm_error *reterr) SM_MUSTCHECK;
/* Stops and joins the refresh thread, if it runs. */
void sm_auth_trust_stop(struct sm_auth *a);

/* ---- auth-x509.c ---- */

/* The subject of leaf as a user: the last CN as name (NULL when none), the non-empty O's as
 * groups. -ENOMEM. */
int sm_auth_x509_subject_user(X509 *leaf, struct sm_auth_user *ret) SM_MUSTCHECK;
/* The front proxy: its certificate verified against the requestheader CA and in the allowed
 * names, then the user its headers name. why: the failure, for the log. */
enum sm_authn_result sm_auth_x509_front_proxy(struct sm_auth_trust *t,
                                              const struct sm_auth_request *req, int64_t now_ms,
                                              struct sm_auth_user *ret, char *why, size_t why_len);
/* A client certificate verified against the client CA: the user its subject names. */
enum sm_authn_result sm_auth_x509_client_cert(struct sm_auth_trust *t,
                                              const struct sm_auth_request *req, int64_t now_ms,
                                              struct sm_auth_user *ret, char *why, size_t why_len);

/* ---- auth-token.c ---- */

/* A bearer token, from the cache or by a TokenReview. cached_only: SM_AUTHN_WOULD_BLOCK
 * instead of a review, and a hit is not counted but noted in *ret_hit, for the gate to count
 * once the request is decided (a request handed to a worker looks the token up again). */
enum sm_authn_result sm_auth_token_authenticate(struct sm_auth *a, const char *token, size_t len,
                                                int64_t now_ms, bool cached_only, bool *ret_hit,
                                                struct sm_auth_user *ret, char *why,
                                                size_t why_len);

#endif
