/* SPDX-License-Identifier: MIT */
/* kubeconfig files (libyaml): kubectl's merge of several files, one context resolved to a
 * server, its trust and the user's credentials, with file:line:col on every error. */
#include "scalemetrics/kubeconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "scalemetrics/config.h"
#include "scalemetrics/file.h"

#define MAX_FILE_BYTES (8u << 20) /* kubeconfigs with many clusters are still a few 100 KiB */
#define NAMES_SHOWN    256        /* of the known contexts, in a "not found" message */

struct kfile {
	char *path;
	char *dir; /* what relative paths in it are relative to */
	yaml_document_t doc;
	bool loaded;
};

struct loader {
	struct kfile *files;
	size_t n;
	struct sm_error *err;
};

/* A named entry of clusters, contexts or users, and the file it came from. */
struct entry {
	struct kfile *f;
	yaml_node_t *body; /* the inner cluster/context/user mapping; NULL when null */
	yaml_node_t *name;
};

static int fail(struct sm_error *e, const struct kfile *f, const yaml_node_t *at, int code,
                const char *fmt, ...) SM_PRINTF(5, 6);

static int fail(struct sm_error *e, const struct kfile *f, const yaml_node_t *at, int code,
                const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	sm_error_clear(e);
	if (f && f->path)
		(void)snprintf(e->file, sizeof(e->file), "%s", f->path);
	if (at) {
		e->line = (unsigned)at->start_mark.line + 1;
		e->column = (unsigned)at->start_mark.column + 1;
	}
	va_start(ap, fmt);
	(void)vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return code;
}

static int oom(struct loader *l)
{
	return fail(l->err, NULL, NULL, -ENOMEM, "out of memory");
}

static bool is_null(const yaml_node_t *n)
{
	const char *s;

	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE)
		return false;
	s = (const char *)n->data.scalar.value;
	return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	        !strcmp(s, "NULL"));
}

/* The value of key in mapping m, or NULL; *ret_key (optional) gets the key node. */
static yaml_node_t *map_get(struct kfile *f, const yaml_node_t *m, const char *key,
                            yaml_node_t **ret_key)
{
	if (!m || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(&f->doc, p->key);

		if (k && k->type == YAML_SCALAR_NODE &&
		    !strcmp((const char *)k->data.scalar.value, key)) {
			if (ret_key)
				*ret_key = k;
			return yaml_document_get_node(&f->doc, p->value);
		}
	}
	return NULL;
}

/* A string field of a mapping: *ret is NULL when absent, null or "". */
static int get_string(struct loader *l, struct kfile *f, const yaml_node_t *m, const char *key,
                      const char *what, const char **ret, yaml_node_t **ret_node)
{
	yaml_node_t *v = map_get(f, m, key, NULL);

	*ret = NULL;
	if (ret_node)
		*ret_node = v;
	if (is_null(v))
		return 0;
	if (v->type != YAML_SCALAR_NODE)
		return fail(l->err, f, v, -EINVAL, "'%s' of %s must be a string", key, what);
	if (strlen((const char *)v->data.scalar.value) != v->data.scalar.length)
		return fail(l->err, f, v, -EINVAL, "'%s' of %s holds a NUL character", key, what);
	if (v->data.scalar.length > 0)
		*ret = (const char *)v->data.scalar.value;
	return 0;
}

static int get_bool(struct loader *l, struct kfile *f, const yaml_node_t *m, const char *key,
                    const char *what, bool *ret)
{
	static const char *const yes[] = {"true", "True", "TRUE"};
	static const char *const no[] = {"false", "False", "FALSE"};
	yaml_node_t *v = map_get(f, m, key, NULL);
	const char *s;

	*ret = false;
	if (is_null(v))
		return 0;
	s = v->type == YAML_SCALAR_NODE ? (const char *)v->data.scalar.value : "";
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcmp(s, yes[i])) {
			*ret = true;
			return 0;
		}
		if (!strcmp(s, no[i]))
			return 0;
	}
	return fail(l->err, f, v, -EINVAL, "'%s' of %s must be true or false", key, what);
}

/* ---- reading and checking the files ---- */

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int yaml_failed(struct loader *l, struct kfile *f, const yaml_parser_t *y)
{
	yaml_node_t at = {.start_mark = y->problem_mark};

	if (y->error == YAML_MEMORY_ERROR)
		return oom(l);
	if (y->error == YAML_READER_ERROR)
		return fail(l->err, f, NULL, -EINVAL, "invalid YAML: %s at byte %zu",
		            y->problem ? y->problem : "unreadable input", y->problem_offset);
	return fail(l->err, f, &at, -EINVAL, "invalid YAML: %s%s%s",
	            y->problem ? y->problem : "syntax error", y->context ? " " : "",
	            y->context ? y->context : "");
}

/* 1: loaded; 0: missing and skipped; < 0: error. */
static int read_file(struct loader *l, struct kfile *f, bool skip_missing)
{
	yaml_parser_t parser;
	struct sm_error e = {0};
	char *buf = NULL;
	size_t len = 0;
	int r;

	r = sm_file_read(f->path, MAX_FILE_BYTES, SM_FILE_REGULAR | SM_FILE_SECRET, &buf, &len, &e);
	if (r == -ENOENT && skip_missing)
		return 0;
	if (r == -ENOMEM)
		return oom(l);
	if (r == -EFBIG)
		return fail(l->err, f, NULL, -EINVAL, "the kubeconfig is larger than %u bytes",
		            MAX_FILE_BYTES);
	if (r < 0)
		return fail(l->err, f, NULL, r == -ENOENT ? -ENOENT : -EACCES,
		            "cannot read the kubeconfig: %s", e.message);
	if (!yaml_parser_initialize(&parser)) {
		r = oom(l);
		goto out;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (yaml_parser_load(&parser, &f->doc)) {
		f->loaded = true;
		r = 1;
	} else {
		r = yaml_failed(l, f, &parser);
	}
	yaml_parser_delete(&parser);
out:
	if (buf)
		memset(buf, 0, len); /* tokens and keys */
	free(buf);
	return r;
}

/* The shapes kubectl itself would refuse: the lists, their names, current-context. Only
 * what scalemetrics reads is checked; other keys (preferences, extensions) are left alone. */
static int check_file(struct loader *l, struct kfile *f)
{
	static const struct {
		const char *list, *inner;
	} lists[] = {
	    {"clusters", "cluster"},
	    {"contexts", "context"},
	    {"users", "user"},
	};
	yaml_node_t *root = yaml_document_get_root_node(&f->doc);
	const char *s;
	int r;

	if (is_null(root))
		return 0; /* an empty file is an empty kubeconfig */
	if (root->type != YAML_MAPPING_NODE)
		return fail(
		    l->err, f, root, -EINVAL,
		    "not a kubeconfig: expected a mapping with clusters, contexts and users");
	r = get_string(l, f, root, "kind", "the kubeconfig", &s, NULL);
	if (r < 0)
		return r;
	if (s && strcmp(s, "Config") != 0)
		return fail(l->err, f, map_get(f, root, "kind", NULL), -EINVAL,
		            "not a kubeconfig: kind is '%s', expected 'Config'", s);
	r = get_string(l, f, root, "current-context", "the kubeconfig", &s, NULL);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		yaml_node_t *seq = map_get(f, root, lists[i].list, NULL);

		if (is_null(seq))
			continue;
		if (seq->type != YAML_SEQUENCE_NODE)
			return fail(l->err, f, seq, -EINVAL, "'%s' must be a list", lists[i].list);
		for (yaml_node_item_t *it = seq->data.sequence.items.start;
		     it < seq->data.sequence.items.top; it++) {
			yaml_node_t *item = yaml_document_get_node(&f->doc, *it);
			yaml_node_t *body, *name_node;
			char what[64];

			(void)snprintf(what, sizeof(what), "an entry of %s", lists[i].list);
			if (!item || item->type != YAML_MAPPING_NODE)
				return fail(l->err, f, item, -EINVAL,
				            "%s must be a mapping with 'name' and '%s'", what,
				            lists[i].inner);
			r = get_string(l, f, item, "name", what, &s, &name_node);
			if (r < 0)
				return r;
			if (!s)
				return fail(l->err, f, item, -EINVAL, "%s has no name", what);
			body = map_get(f, item, lists[i].inner, NULL);
			if (!is_null(body) && body->type != YAML_MAPPING_NODE)
				return fail(l->err, f, body, -EINVAL,
				            "'%s' of %s '%s' must be a mapping", lists[i].inner,
				            lists[i].inner, s);
		}
	}
	return 0;
}

/* ---- lookups across the files ---- */

static bool find_entry(struct loader *l, const char *list, const char *inner, const char *name,
                       struct entry *ret)
{
	for (size_t i = 0; i < l->n; i++) {
		struct kfile *f = &l->files[i];
		yaml_node_t *seq;

		if (!f->loaded)
			continue;
		seq = map_get(f, yaml_document_get_root_node(&f->doc), list, NULL);
		if (!seq || seq->type != YAML_SEQUENCE_NODE)
			continue;
		for (yaml_node_item_t *it = seq->data.sequence.items.start;
		     it < seq->data.sequence.items.top; it++) {
			yaml_node_t *item = yaml_document_get_node(&f->doc, *it);
			yaml_node_t *n = map_get(f, item, "name", NULL);

			if (n && n->type == YAML_SCALAR_NODE &&
			    !strcmp((const char *)n->data.scalar.value, name)) {
				yaml_node_t *body = map_get(f, item, inner, NULL);

				*ret = (struct entry){
				    .f = f, .body = is_null(body) ? NULL : body, .name = n};
				return true;
			}
		}
	}
	return false;
}

/* "'a', 'b', 'c'" of every context name, cut to fit buf. */
static void context_names(struct loader *l, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->n; i++) {
		struct kfile *f = &l->files[i];
		yaml_node_t *seq;

		if (!f->loaded)
			continue;
		seq = map_get(f, yaml_document_get_root_node(&f->doc), "contexts", NULL);
		if (!seq || seq->type != YAML_SEQUENCE_NODE)
			continue;
		for (yaml_node_item_t *it = seq->data.sequence.items.start;
		     it < seq->data.sequence.items.top && used < size; it++) {
			yaml_node_t *n =
			    map_get(f, yaml_document_get_node(&f->doc, *it), "name", NULL);
			int k;

			if (!n || n->type != YAML_SCALAR_NODE)
				continue;
			k = snprintf(buf + used, size - used, "%s'%s'", used ? ", " : "",
			             (const char *)n->data.scalar.value);
			used = k < 0 ? size : used + (size_t)k;
		}
	}
}

/* ---- values ---- */

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Standard base64 with padding, as Go decodes []byte fields: line breaks are skipped. */
static int b64_decode(const char *in, unsigned char **ret, size_t *ret_len)
{
	size_t n = strlen(in), len = 0, quad = 0, pad = 0;
	unsigned char *out = malloc(n / 4 * 3 + 3);
	uint32_t acc = 0;

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;

		if (c == '\n' || c == '\r')
			continue;
		if (c == '=') {
			pad++;
			if (pad > 2 || quad < 2)
				goto bad;
			acc <<= 6;
			quad++;
		} else {
			v = b64_value(c);
			if (v < 0 || pad > 0)
				goto bad;
			acc = acc << 6 | (uint32_t)v;
			quad++;
		}
		if (quad == 4) {
			out[len++] = (unsigned char)(acc >> 16);
			if (pad < 2)
				out[len++] = (unsigned char)(acc >> 8);
			if (pad < 1)
				out[len++] = (unsigned char)acc;
			quad = 0;
			acc = 0;
			if (pad)
				pad = 3; /* nothing may follow the padding */
		}
	}
	if (quad != 0 || len == 0)
		goto bad;
	*ret = out;
	*ret_len = len;
	return 0;
bad:
	free(out);
	return -EINVAL;
}

static bool has_pem_header(const unsigned char *p, size_t len)
{
	static const char begin[] = "-----BEGIN ";

	for (size_t i = 0; i + sizeof(begin) - 1 <= len; i++) {
		if (!memcmp(p + i, begin, sizeof(begin) - 1))
			return true;
	}
	return false;
}

static int resolve_path(struct loader *l, const struct kfile *f, const char *p, char **ret)
{
	size_t len;

	if (p[0] == '/') {
		*ret = strdup(p);
	} else {
		len = strlen(f->dir) + strlen(p) + 2;
		*ret = malloc(len);
		if (*ret)
			(void)snprintf(*ret, len, "%s/%s", f->dir, p);
	}
	return *ret ? 0 : oom(l);
}

/* A path field: resolved against the kubeconfig's directory, and readable now (so a typo
 * is reported here, with its line, rather than at the first request). */
static int take_file(struct loader *l, struct kfile *f, yaml_node_t *node, const char *path,
                     const char *what, char **ret)
{
	char *full = NULL;
	FILE *in;
	int r;

	r = resolve_path(l, f, path, &full);
	if (r < 0)
		return r;
	in = fopen(full, "re");
	if (!in) {
		r = errno == ENOENT ? -ENOENT : -EACCES;
		(void)fail(l->err, f, node, r, "%s '%s': %s", what, full, strerror(errno));
		free(full);
		return r;
	}
	(void)fclose(in);
	*ret = full;
	return 0;
}

/* A certificate or key from `key` (a file) or `key-data` (base64 PEM; wins, as in kubectl). */
static int take_pem(struct loader *l, struct kfile *f, const yaml_node_t *body, const char *key,
                    const char *what, struct sm_kubeconfig_pem *ret)
{
	char data_key[64], desc[128];
	const char *file, *data;
	yaml_node_t *file_node, *data_node;
	int r;

	(void)snprintf(data_key, sizeof(data_key), "%s-data", key);
	r = get_string(l, f, body, key, what, &file, &file_node);
	if (r == 0)
		r = get_string(l, f, body, data_key, what, &data, &data_node);
	if (r < 0)
		return r;
	if (data) {
		r = b64_decode(data, &ret->data, &ret->len);
		if (r == -ENOMEM)
			return oom(l);
		if (r < 0)
			return fail(l->err, f, data_node, -EINVAL, "'%s' of %s is not valid base64",
			            data_key, what);
		if (!has_pem_header(ret->data, ret->len))
			return fail(l->err, f, data_node, -EINVAL,
			            "'%s' of %s does not hold PEM (no '-----BEGIN' line)", data_key,
			            what);
		return 0;
	}
	if (file) {
		(void)snprintf(desc, sizeof(desc), "'%s' of %s", key, what);
		return take_file(l, f, file_node, file, desc, &ret->file);
	}
	return 0;
}

static int take_string(struct loader *l, const char *s, char **ret)
{
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : oom(l);
}

static bool has_url_scheme(const char *s)
{
	return !strncmp(s, "https://", 8) || !strncmp(s, "http://", 7);
}

static int resolve_cluster(struct loader *l, const struct entry *e, struct sm_kubeconfig *k)
{
	const char *server, *sni, *proxy;
	yaml_node_t *server_node, *proxy_node;
	char what[320];
	int r;

	(void)snprintf(what, sizeof(what), "cluster '%s'", k->cluster);
	r = get_string(l, e->f, e->body, "server", what, &server, &server_node);
	if (r < 0)
		return r;
	if (!server)
		return fail(l->err, e->f, e->body ? e->body : e->name, -EINVAL, "%s has no server",
		            what);
	if (!has_url_scheme(server)) {
		char shown[256];

		/* A password in a URL's userinfo is a secret: never echoed. */
		sm_config_url_redact(server, shown, sizeof(shown));
		return fail(l->err, e->f, server_node, -EINVAL,
		            "server of %s: expected an https:// URL, got '%s'", what, shown);
	}
	r = get_string(l, e->f, e->body, "tls-server-name", what, &sni, NULL);
	if (r == 0)
		r = get_string(l, e->f, e->body, "proxy-url", what, &proxy, &proxy_node);
	if (r == 0)
		r = get_bool(l, e->f, e->body, "insecure-skip-tls-verify", what,
		             &k->insecure_skip_tls_verify);
	if (r < 0)
		return r;
	if (proxy && !has_url_scheme(proxy) && strncmp(proxy, "socks5://", 9) != 0)
		return fail(l->err, e->f, proxy_node, -EINVAL,
		            "proxy-url of %s: expected an http://, https:// or socks5:// URL",
		            what);
	r = take_pem(l, e->f, e->body, "certificate-authority", what, &k->ca);
	if (r < 0)
		return r;
	if (k->insecure_skip_tls_verify && (k->ca.file || k->ca.data))
		return fail(
		    l->err, e->f, map_get(e->f, e->body, "insecure-skip-tls-verify", NULL), -EINVAL,
		    "%s sets both insecure-skip-tls-verify and a certificate authority; keep "
		    "one",
		    what);
	r = take_string(l, server, &k->server);
	if (r == 0)
		r = take_string(l, sni, &k->tls_server_name);
	if (r == 0)
		r = take_string(l, proxy, &k->proxy_url);
	return r;
}

/* What a user may carry that scalemetrics cannot act on, and what to use instead. */
static const struct {
	const char *key;
	const char *why;
} unsupported_user_keys[] = {
    {"auth-provider", "an auth-provider plugin, which scalemetrics does not support"},
    {"exec", "an exec credential plugin, which scalemetrics does not run"},
    {"password", "basic authentication, which Kubernetes no longer accepts"},
    {"username", "basic authentication, which Kubernetes no longer accepts"},
    {"as", "impersonation ('as'), which scalemetrics does not support"},
    {"as-groups", "impersonation ('as-groups'), which scalemetrics does not support"},
    {"as-uid", "impersonation ('as-uid'), which scalemetrics does not support"},
    {"as-user-extra", "impersonation ('as-user-extra'), which scalemetrics does not support"},
};

static int resolve_user(struct loader *l, const struct entry *e, struct sm_kubeconfig *k)
{
	const char *token, *token_file;
	yaml_node_t *token_file_node;
	char what[320];
	int r;

	(void)snprintf(what, sizeof(what), "user '%s'", k->user);
	for (size_t i = 0; i < sizeof(unsupported_user_keys) / sizeof(unsupported_user_keys[0]);
	     i++) {
		yaml_node_t *key = NULL,
		            *v = map_get(e->f, e->body, unsupported_user_keys[i].key, &key);

		if (is_null(v) || (v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0))
			continue;
		return fail(
		    l->err, e->f, key, -EOPNOTSUPP,
		    "%s uses %s; give it a token ('token' or 'tokenFile', e.g. from `kubectl "
		    "create token SERVICEACCOUNT`) or a client certificate, or set "
		    "kubernetes.server and kubernetes.token_file instead",
		    what, unsupported_user_keys[i].why);
	}
	r = get_string(l, e->f, e->body, "token", what, &token, NULL);
	if (r == 0)
		r = get_string(l, e->f, e->body, "tokenFile", what, &token_file, &token_file_node);
	if (r == 0)
		r = take_pem(l, e->f, e->body, "client-certificate", what, &k->client_cert);
	if (r == 0)
		r = take_pem(l, e->f, e->body, "client-key", what, &k->client_key);
	if (r < 0)
		return r;
	if (!!(k->client_cert.file || k->client_cert.data) !=
	    !!(k->client_key.file || k->client_key.data))
		return fail(l->err, e->f, e->body, -EINVAL,
		            "%s has a client %s without a client %s", what,
		            k->client_key.file || k->client_key.data ? "key" : "certificate",
		            k->client_key.file || k->client_key.data ? "certificate" : "key");
	if (token_file) {
		char desc[352];

		(void)snprintf(desc, sizeof(desc), "'tokenFile' of %s", what);
		r = take_file(l, e->f, token_file_node, token_file, desc, &k->token_file);
		if (r < 0)
			return r;
	} else {
		r = take_string(l, token, &k->token);
	}
	return r;
}

static int resolve(struct loader *l, const char *context, struct sm_kubeconfig *k)
{
	struct entry ctx = {0}, cluster = {0}, user = {0};
	yaml_node_t *current = NULL, *cluster_node;
	struct kfile *only = l->n == 1 ? &l->files[0] : NULL, *current_file = NULL;
	const char *cluster_name, *user_name;
	char what[320];
	int r;

	if (context && !*context)
		context = NULL;
	if (!context) {
		for (size_t i = 0; i < l->n && !context; i++) {
			struct kfile *f = &l->files[i];

			if (!f->loaded)
				continue;
			r = get_string(l, f, yaml_document_get_root_node(&f->doc),
			               "current-context", "the kubeconfig", &context, &current);
			if (r < 0)
				return r;
			current_file = f;
		}
		if (!context)
			return fail(
			    l->err, only, NULL, -EINVAL,
			    "no current-context in the kubeconfig, and kubernetes.context is "
			    "not set");
	}
	if (!find_entry(l, "contexts", "context", context, &ctx)) {
		char names[NAMES_SHOWN];

		context_names(l, names, sizeof(names));
		return fail(l->err, current ? current_file : only, current, -EINVAL,
		            "context '%s' is not in the kubeconfig (%s%s)", context,
		            *names ? "contexts: " : "it has no contexts", names);
	}
	r = take_string(l, context, &k->context);
	if (r < 0)
		return r;
	(void)snprintf(what, sizeof(what), "context '%s'", context);
	r = get_string(l, ctx.f, ctx.body, "cluster", what, &cluster_name, &cluster_node);
	if (r == 0)
		r = get_string(l, ctx.f, ctx.body, "user", what, &user_name, NULL);
	if (r < 0)
		return r;
	if (!cluster_name)
		return fail(l->err, ctx.f, ctx.body ? ctx.body : ctx.name, -EINVAL,
		            "%s names no cluster", what);
	if (!find_entry(l, "clusters", "cluster", cluster_name, &cluster))
		return fail(l->err, ctx.f, cluster_node, -EINVAL,
		            "cluster '%s' of %s is not in the kubeconfig", cluster_name, what);
	r = take_string(l, cluster_name, &k->cluster);
	if (r == 0)
		r = take_string(l, user_name ? user_name : "", &k->user);
	if (r == 0)
		r = resolve_cluster(l, &cluster, k);
	if (r < 0 || !user_name)
		return r;
	/* kubectl treats a user the context names but no file has as one without credentials. */
	if (find_entry(l, "users", "user", user_name, &user))
		r = resolve_user(l, &user, k);
	return r;
}

static void pem_done(struct sm_kubeconfig_pem *p)
{
	free(p->file);
	if (p->data)
		memset(p->data, 0, p->len);
	free(p->data);
}

void sm_kubeconfig_done(struct sm_kubeconfig *k)
{
	if (!k)
		return;
	free(k->context);
	free(k->cluster);
	free(k->user);
	free(k->server);
	free(k->tls_server_name);
	free(k->proxy_url);
	pem_done(&k->ca);
	pem_done(&k->client_cert);
	pem_done(&k->client_key);
	if (k->token)
		memset(k->token, 0, strlen(k->token));
	free(k->token);
	free(k->token_file);
	*k = (struct sm_kubeconfig){0};
}

int sm_kubeconfig_load(const char *const *paths, size_t n, bool skip_missing, const char *context,
                       struct sm_kubeconfig *ret, struct sm_error *reterr)
{
	struct loader l = {.err = reterr};
	struct sm_kubeconfig k = {0};
	size_t found = 0;
	int r;

	if (n == 0)
		return fail(reterr, NULL, NULL, -EINVAL, "no kubeconfig file given");
	l.files = calloc(n, sizeof(*l.files));
	if (!l.files)
		return oom(&l);
	l.n = n;
	for (size_t i = 0; i < n; i++) {
		struct kfile *f = &l.files[i];
		bool seen = false;

		/* The same file twice adds nothing (kubectl also ignores repeats). */
		for (size_t j = 0; j < i && !seen; j++)
			seen = l.files[j].path && !strcmp(l.files[j].path, paths[i]);
		if (seen || !paths[i][0])
			continue;
		f->path = strdup(paths[i]);
		f->dir = dir_of(paths[i]);
		if (!f->path || !f->dir) {
			r = oom(&l);
			goto out;
		}
		r = read_file(&l, f, skip_missing);
		if (r < 0)
			goto out;
		if (r == 0)
			continue;
		found++;
		r = check_file(&l, f);
		if (r < 0)
			goto out;
	}
	if (found == 0) {
		r = fail(reterr, n == 1 ? &l.files[0] : NULL, NULL, -ENOENT,
		         "none of the kubeconfig files exists");
		goto out;
	}
	r = resolve(&l, context, &k);
	if (r < 0)
		goto out;
	*ret = k;
	k = (struct sm_kubeconfig){0};
	r = 0;
out:
	sm_kubeconfig_done(&k);
	for (size_t i = 0; i < n; i++) {
		if (l.files[i].loaded)
			yaml_document_delete(&l.files[i].doc);
		free(l.files[i].path);
		free(l.files[i].dir);
	}
	free(l.files);
	return r;
}
