/* SPDX-License-Identifier: MIT */
#ifndef SM_KUBECONFIG_H
#define SM_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "scalemetrics/error.h"

/* kubeconfig files as kubectl writes them: one context's cluster and user, resolved to what
 * an HTTP client needs. Reads the files it is given and the files they name; no network. */

/* A PEM certificate or key: from a file (path), or decoded from a `-data` field (data).
 * Never both; neither when the kubeconfig gives none. */
struct sm_kubeconfig_pem {
	char *file; /* relative paths in the kubeconfig are made relative to its directory */
	unsigned char *data;
	size_t len;
};

struct sm_kubeconfig {
	char *context; /* the names in use, for messages */
	char *cluster;
	char *user;            /* "" when the context names none */
	char *server;          /* "https://host:port[/path]" */
	char *tls_server_name; /* NULL: the server URL's host */
	char *proxy_url;       /* NULL: none (the environment's proxy variables apply) */
	bool insecure_skip_tls_verify;
	struct sm_kubeconfig_pem ca; /* neither: the system's trust store */
	struct sm_kubeconfig_pem client_cert;
	struct sm_kubeconfig_pem client_key; /* secret; zeroed when freed */
	char *token;                         /* secret; NULL when none */
	char *token_file; /* NULL when none; when both are set the file wins, as in kubectl */
};

/* Loads paths[0..n) as kubectl merges $KUBECONFIG: a cluster, user or context is taken from
 * the first file that names it, current-context from the first file that sets one. With
 * skip_missing, files that do not exist are skipped (as kubectl does for $KUBECONFIG), but
 * at least one must exist. context NULL or "": current-context.
 *
 * Only the entries in use are resolved and checked: a context's cluster must have a server;
 * files it names must be readable; `-data` fields must be base64. A user with an exec or
 * auth-provider plugin, basic auth or impersonation is refused (-EOPNOTSUPP), since nothing
 * here can run them. Every error names the file in reterr->file, and the line and column
 * where the YAML gives one. Returns 0, -ENOENT or -EACCES (a file), -EINVAL (its content, an
 * unknown context), -EOPNOTSUPP, -ENOMEM. */
int sm_kubeconfig_load(const char *const *paths, size_t n, bool skip_missing, const char *context,
                       struct sm_kubeconfig *ret, struct sm_error *reterr) SM_MUSTCHECK;
void sm_kubeconfig_done(struct sm_kubeconfig *k);

#endif
