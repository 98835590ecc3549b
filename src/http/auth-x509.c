/* SPDX-License-Identifier: MIT */
/* Client certificates: the peer's chain verified against the front proxy's or the client CA,
 * and the user its subject names, as Kubernetes' x509 authenticator reads it. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scalemetrics/auth.h"
#include "scalemetrics/log.h"
#include "scalemetrics/ttl-cache.h"

#include "auth-internal.h"

#define LOG_CTX        "auth"
#define MAX_PEER_CERTS 16

/* Verifies the peer's chain against store for client use; the leaf on success (owned), with
 * *ret_keep true when every certificate of the verified chain is still valid SM_AUTH_VERIFIED_TTL_S
 * from now (the verdict may then be remembered that long). */
static X509 *verify_peer(X509_STORE *store, const struct sm_auth_request *req, bool *ret_keep,
                         char *why, size_t why_len)
{
	const unsigned char *p;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	X509_STORE_CTX *ctx = NULL;
	bool ok = false;

	p = req->peer_certs[0];
	leaf = d2i_X509(NULL, &p, (long)req->peer_cert_lens[0]);
	if (!leaf) {
		(void)snprintf(why, why_len, "the certificate does not parse");
		goto out;
	}
	chain = sk_X509_new_null();
	ctx = X509_STORE_CTX_new();
	if (!chain || !ctx) {
		(void)snprintf(why, why_len, "out of memory");
		goto out;
	}
	for (size_t i = 1; i < req->n_peer_certs && i < MAX_PEER_CERTS; i++) {
		X509 *x;

		p = req->peer_certs[i];
		x = d2i_X509(NULL, &p, (long)req->peer_cert_lens[i]);
		if (x && !sk_X509_push(chain, x))
			X509_free(x);
	}
	if (X509_STORE_CTX_init(ctx, store, leaf, chain) != 1 ||
	    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
		(void)snprintf(why, why_len, "cannot set up the verification");
		goto out;
	}
	ok = X509_verify_cert(ctx) == 1;
	if (!ok) {
		(void)snprintf(why, why_len, "%s",
		               X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	} else {
		STACK_OF(X509) *verified = X509_STORE_CTX_get0_chain(ctx);
		time_t limit = time(NULL) + SM_AUTH_VERIFIED_TTL_S;

		*ret_keep = verified != NULL;
		for (int i = 0; verified && i < sk_X509_num(verified); i++)
			if (X509_cmp_time(X509_get0_notAfter(sk_X509_value(verified, i)), &limit) !=
			    1)
				*ret_keep = false;
	}
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	if (!ok) {
		X509_free(leaf);
		return NULL;
	}
	return leaf;
}

/* The last value of nid in name (Go keeps the last CommonName), malloc'd; NULL if none. */
static char *name_entry(const X509_NAME *name, int nid, int *pos)
{
	int i = X509_NAME_get_index_by_NID(name, nid, *pos);
	const ASN1_STRING *d;
	unsigned char *utf8 = NULL;
	char *s;
	int len;

	if (i < 0)
		return NULL;
	*pos = i;
	d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	len = ASN1_STRING_to_UTF8(&utf8, d);
	if (len < 0)
		return strdup("");
	s = strndup((const char *)utf8, (size_t)len);
	OPENSSL_free(utf8);
	return s;
}

static char *common_name(X509 *x)
{
	const X509_NAME *n = X509_get_subject_name(x);
	char *cn = NULL, *next;
	int pos = -1;

	for (;;) {
		next = name_entry(n, NID_commonName, &pos);
		if (!next)
			break;
		free(cn);
		cn = next;
	}
	return cn;
}

/* The subject of the leaf as a user: the last CN as name (NULL when none), the non-empty
 * O's as groups, as Kubernetes' x509 authenticator reads it. */
int sm_auth_x509_subject_user(X509 *leaf, struct sm_auth_user *ret)
{
	struct sm_auth_user u = {0};
	char *o;
	int pos = -1;

	u.name = common_name(leaf);
	for (;;) {
		int r;

		o = name_entry(X509_get_subject_name(leaf), NID_organizationName, &pos);
		if (!o)
			break;
		r = o[0] ? sm_auth_strv_push(&u.groups, o, strlen(o)) : 0;
		free(o);
		if (r < 0) {
			sm_auth_user_done(&u);
			return -ENOMEM;
		}
	}
	*ret = u;
	return 0;
}

/* The subject of the peer's leaf certificate once its chain verifies against store: 1 with
 * *ret, 0 (with why) when it does not verify, -ENOMEM. Parsing the certificates and checking
 * their signatures cost most of a request (bench/README.md, "Delegated auth on the serving
 * path"), and the front proxy presents the same chain on every request, so a verified chain
 * is remembered per trust (a new trust starts afresh) for SM_AUTH_VERIFIED_TTL_S, and only
 * when all of it is still valid by then. The key is a digest of the store's role and every
 * certificate presented; a failure is never kept. */
static int peer_subject(struct sm_auth_trust *t, X509_STORE *store, char role,
                        const struct sm_auth_request *req, int64_t now_ms, struct sm_auth_user *ret,
                        char *why, size_t why_len)
{
	size_t n = req->n_peer_certs < MAX_PEER_CERTS ? req->n_peer_certs : MAX_PEER_CERTS;
	size_t len = 1;
	unsigned char *data = NULL;
	char key[65] = "";
	char *cached = NULL;
	bool keep = false;
	X509 *leaf;
	int r;

	for (size_t i = 0; i < n; i++)
		len += sizeof(uint64_t) + req->peer_cert_lens[i];
	data = malloc(len);
	if (data) {
		unsigned char *p = data;

		*p++ = (unsigned char)role;
		for (size_t i = 0; i < n; i++) {
			uint64_t l = req->peer_cert_lens[i];

			memcpy(p, &l, sizeof(l));
			memcpy(p + sizeof(l), req->peer_certs[i], req->peer_cert_lens[i]);
			p += sizeof(l) + req->peer_cert_lens[i];
		}
		if (sm_auth_digest_key(data, len, key) < 0)
			key[0] = '\0';
		free(data);
	}
	if (key[0] && sm_ttl_cache_get(t->verified, key, now_ms, &cached)) {
		cJSON *j = cJSON_Parse(cached);

		free(cached);
		r = j ? sm_auth_user_from_json(j, ret) : -ENOMEM;
		cJSON_Delete(j);
		if (r == 0)
			return 1;
		if (r == -ENOMEM)
			return r;
	}
	leaf = verify_peer(store, req, &keep, why, why_len);
	if (!leaf)
		return 0;
	r = sm_auth_x509_subject_user(leaf, ret);
	X509_free(leaf);
	if (r < 0)
		return r;
	/* Kept only with a name: sm_auth_user_from_json wants one. */
	if (key[0] && keep && ret->name && ret->name[0]) {
		cJSON *j = sm_auth_user_to_json(ret);
		char *v = j ? cJSON_PrintUnformatted(j) : NULL;

		if (!v || sm_ttl_cache_put(t->verified, key, v, now_ms) < 0)
			sm_log_debug(LOG_CTX, "verified certificates: out of memory");
		free(v);
		cJSON_Delete(j);
	}
	return 1;
}

enum sm_authn_result sm_auth_x509_front_proxy(struct sm_auth_trust *t,
                                              const struct sm_auth_request *req, int64_t now_ms,
                                              struct sm_auth_user *ret, char *why, size_t why_len)
{
	struct sm_auth_user subject = {0};
	bool allowed = t->allowed_names.n == 0;
	int r;

	r = peer_subject(t, t->requestheader, 'R', req, now_ms, &subject, why, why_len);
	if (r <= 0) {
		if (r < 0)
			(void)snprintf(why, why_len, "out of memory");
		return SM_AUTHN_ERROR;
	}
	for (size_t i = 0; subject.name && i < t->allowed_names.n; i++)
		allowed = allowed || strcmp(subject.name, t->allowed_names.v[i]) == 0;
	if (!allowed) {
		(void)snprintf(why, why_len, "subject with cn=%s is not in the allowed list",
		               subject.name ? subject.name : "");
		sm_auth_user_done(&subject);
		return SM_AUTHN_ERROR;
	}
	sm_auth_user_done(&subject);
	r = sm_auth_user_from_headers(&t->headers, req->headers, req->n_headers, ret);
	if (r < 0) {
		(void)snprintf(why, why_len, "out of memory");
		return SM_AUTHN_ERROR;
	}
	return r == 1 ? SM_AUTHN_OK : SM_AUTHN_NONE;
}

enum sm_authn_result sm_auth_x509_client_cert(struct sm_auth_trust *t,
                                              const struct sm_auth_request *req, int64_t now_ms,
                                              struct sm_auth_user *ret, char *why, size_t why_len)
{
	struct sm_auth_user u = {0};
	int r = peer_subject(t, t->client, 'C', req, now_ms, &u, why, why_len);

	if (r <= 0) {
		if (r < 0)
			(void)snprintf(why, why_len, "out of memory");
		return SM_AUTHN_ERROR;
	}
	if (!u.name || !u.name[0]) {
		sm_auth_user_done(&u);
		return SM_AUTHN_NONE;
	}
	*ret = u;
	return SM_AUTHN_OK;
}
